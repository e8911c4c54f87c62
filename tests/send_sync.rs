//! Every public type is `Send` and `Sync`, as its documentation says (SPEC
//! §7): a producer may hold a `Packer` across an `.await` in a `Send` future,
//! or move a plan to another thread. Checked at compile time: if a type
//! stopped being either, this file would not compile.

fn send_sync<T: Send + Sync>() {}

#[test]
fn producer_types_are_send_and_sync() {
    send_sync::<segpack::Packer>();
    send_sync::<segpack::Packed<segpack::Extent>>();
    send_sync::<segpack::PackedMemory<segpack::Extent>>();
    send_sync::<segpack::Packed<segpack::PackedSegment<'static>>>();
    send_sync::<segpack::PackedMemory<segpack::PackedSegment<'static>>>();
    send_sync::<segpack::Extent>();
    send_sync::<segpack::PackedSegment<'static>>();
    send_sync::<segpack::Part<'static>>();
    send_sync::<segpack::Segment<'static>>();
    send_sync::<segpack::IndexType>();
    send_sync::<segpack::OffsetExpr>();
    send_sync::<segpack::PackOptions>();
    send_sync::<segpack::MaxSegments>();
    send_sync::<segpack::Error>();
    send_sync::<segpack::ErrorKind>();
}

#[cfg(feature = "module")]
#[test]
fn module_types_are_send_and_sync() {
    send_sync::<segpack::Plan<'static>>();
    send_sync::<segpack::Chunk<'static>>();
    send_sync::<segpack::PackReport>();
    send_sync::<segpack::ModuleReport>();
    send_sync::<segpack::Inspection>();
    send_sync::<segpack::MemoryReport>();
    send_sync::<segpack::NotPackable>();
    send_sync::<segpack::VerifyOptions>();
    send_sync::<segpack::Difference>();
}
