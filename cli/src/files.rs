//! Files: mapping the input (stdin spooled to a temporary file first) and
//! writing the output through a temporary file beside the target, renamed
//! into place only when complete, and synced when it replaces the input
//! (SPEC §8). On WASI, where nothing can be mapped, the input is read into
//! memory.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

#[cfg(not(target_os = "wasi"))]
use memmap2::Mmap;
use segpack::{Error, Result};

/// How the input's bytes are held: mapped, or read where nothing can be
/// mapped (WASI).
#[cfg(not(target_os = "wasi"))]
type Bytes = Mmap;
#[cfg(target_os = "wasi")]
type Bytes = Vec<u8>;

/// The input bytes, mapped from a file.
#[derive(Debug)]
pub struct Input {
    // `None` for an empty file: a zero-length mapping is not allowed.
    map: Option<Bytes>,
    /// The file the bytes come from, for `pread` (for stdin, the spooled copy).
    #[cfg(not(target_os = "wasi"))]
    file: File,
    name: String,
    /// The path the input was opened from (`None` for stdin): where files
    /// have no identity to compare ([`Input::is_file_at`]), paths are.
    #[cfg(not(unix))]
    path: Option<std::path::PathBuf>,
    /// Released bytes not yet handed to the kernel, as a range of the map.
    unreleased: Mutex<std::ops::Range<usize>>,
}

/// Released bytes are handed to the kernel in batches of this size: each
/// `madvise` call costs a TLB flush on every core running a scan thread (an
/// interrupt per core, dear in a VM), and a job releases many small pieces.
const RELEASE_BATCH: usize = 4 << 20;

/// Released ranges this close together are batched as one, the bytes
/// between them included (segment headers, already parsed).
const RELEASE_JOIN: usize = 64 << 10;

/// What the kernel maps around a faulting page of a file mapping: 64 KiB
/// by default (Linux's fault_around_bytes), aligned to its own size.
const FAULT_AROUND: usize = 64 << 10;

/// Standard input as a file, when it is a regular file read from its start
/// (`segpack pack < in.wasm`): it is mapped like a named input, not spooled.
#[cfg(unix)]
fn stdin_file() -> Option<File> {
    use std::io::Seek;
    use std::os::fd::AsFd;
    let mut file = File::from(io::stdin().as_fd().try_clone_to_owned().ok()?);
    let regular = file.metadata().ok()?.is_file();
    (regular && file.stream_position().ok()? == 0).then_some(file)
}

#[cfg(not(unix))]
fn stdin_file() -> Option<File> {
    None
}

/// Asks for a larger buffer when `fd` is a pipe: a pipe holds 64 KiB by
/// default, so a fast reader or writer on the other end waits on every
/// 64 KiB. 1 MiB is what an unprivileged process may ask for
/// (/proc/sys/fs/pipe-max-size). Not a pipe, or refused: nothing changes.
#[cfg(unix)]
pub fn grow_pipe(fd: &impl std::os::fd::AsRawFd) {
    // SAFETY: F_SETPIPE_SZ takes an int and touches no memory of ours; on
    // a descriptor that is not a pipe it fails with EBADF/EINVAL, ignored.
    #[cfg(target_os = "linux")]
    unsafe {
        libc::fcntl(fd.as_raw_fd(), libc::F_SETPIPE_SZ, 1 << 20);
    }
    #[cfg(not(target_os = "linux"))]
    let _ = fd;
}

/// Copies all of `from` (standard input, a pipe) into `to` (the spool), a
/// MiB at a time: a pipe holds that much (see [`grow_pipe`]). Plain reads
/// and writes of that size take 0.84x the time of `io::copy`, whose
/// `splice` moves a pipe's pages in smaller steps (1 GiB and 4 GiB
/// snapshots through `cat`).
#[cfg(not(target_os = "wasi"))]
fn spool(from: &mut impl io::Read, to: &mut impl io::Write) -> Result<()> {
    let mut buffer = vec![0u8; 1 << 20];
    loop {
        match from.read(&mut buffer) {
            Ok(0) => return Ok(()),
            Ok(n) => to.write_all(&buffer[..n]).map_err(|e| {
                Error::io(
                    "cannot write stdin to a temporary file (is the disk full?)",
                    e,
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(Error::io("cannot read stdin", e)),
        }
    }
}

/// Maps `file` read-only, or reads it where nothing can be mapped.
///
/// # Safety
/// The bytes must not change while the map is alive: another process that
/// writes or truncates the file changes them under every reader (and a
/// truncation makes reads past the new end fault). Callers make sure
/// segpack never writes its own input (output goes to a new file renamed
/// into place) and catch the fault of a truncation (crate::signals).
#[cfg(not(target_os = "wasi"))]
unsafe fn map(file: &File) -> io::Result<Bytes> {
    // SAFETY: the caller upholds the contract above, which is memmap2's.
    let map = unsafe { Mmap::map(file) }?;
    #[cfg(unix)]
    let _ = map.advise(memmap2::Advice::Sequential);
    Ok(map)
}

/// # Safety
/// None needed: the file is read, not mapped.
#[cfg(target_os = "wasi")]
unsafe fn map(mut file: &File) -> io::Result<Bytes> {
    let mut bytes = Vec::new();
    io::Read::read_to_end(&mut file, &mut bytes)?;
    Ok(bytes)
}

impl Input {
    /// Maps the file at `path`, or spools stdin to an unnamed temporary file
    /// and maps that when `path` is `None` or `-`.
    ///
    /// The file must not be changed while the input is alive: a mapped file
    /// that shrinks under us would fault on access. segpack's own output goes
    /// to a new file renamed over the target, never into the mapped one.
    ///
    /// # Errors
    /// [`ErrorKind::Io`](segpack::ErrorKind::Io) when the file cannot be opened, read or mapped.
    pub fn open(path: Option<&Path>) -> Result<Input> {
        match path {
            Some(p) if p != Path::new("-") => {
                let name = p.display().to_string();
                let file =
                    File::open(p).map_err(|e| Error::io(format!("cannot open {name}"), e))?;
                #[allow(unused_mut)]
                let mut input = Self::from_file(file, name)?;
                #[cfg(not(unix))]
                {
                    input.path = Some(p.to_path_buf());
                }
                Ok(input)
            }
            _ => {
                let name = "<stdin>".to_string();
                if let Some(file) = stdin_file() {
                    return Self::from_file(file, name);
                }
                #[cfg(not(target_os = "wasi"))]
                {
                    #[cfg(unix)]
                    grow_pipe(&io::stdin());
                    let mut file = tempfile::tempfile()
                        .map_err(|e| Error::io("cannot create a temporary file for stdin", e))?;
                    spool(&mut io::stdin().lock(), &mut file)?;
                    Self::from_file(file, name)
                }
                #[cfg(target_os = "wasi")]
                {
                    let mut bytes = Vec::new();
                    io::Read::read_to_end(&mut io::stdin().lock(), &mut bytes)
                        .map_err(|e| Error::io("cannot read stdin", e))?;
                    Ok(Input {
                        map: Some(bytes),
                        name,
                        path: None,
                        unreleased: Mutex::new(0..0),
                    })
                }
            }
        }
    }

    fn from_file(file: File, name: String) -> Result<Input> {
        let len = file
            .metadata()
            .map_err(|e| Error::io(format!("cannot read {name}"), e))?
            .len();
        if len == 0 {
            return Ok(Input {
                map: None,
                #[cfg(not(target_os = "wasi"))]
                file,
                name,
                #[cfg(not(unix))]
                path: None,
                unreleased: Mutex::new(0..0),
            });
        }
        // SAFETY: see `map`: segpack never writes to its input file, and a
        // truncation by another process is caught (crate::signals).
        let map = unsafe { map(&file) }.map_err(|e| Error::io(format!("cannot map {name}"), e))?;
        Ok(Input {
            map: Some(map),
            #[cfg(not(target_os = "wasi"))]
            file,
            name,
            #[cfg(not(unix))]
            path: None,
            unreleased: Mutex::new(0..0),
        })
    }

    /// The input's bytes.
    pub fn bytes(&self) -> &[u8] {
        self.map.as_deref().unwrap_or(&[])
    }

    /// Tells the kernel that `bytes`, a part of [`bytes`](Self::bytes), will
    /// not be read again soon: their pages leave this process's resident set
    /// (they stay in the page cache, and come back on the next read).
    /// Slices that are not part of the input are ignored.
    pub fn release(&self, bytes: &[u8]) {
        let Some(map) = &self.map else { return };
        let Some(offset) = (bytes.as_ptr() as usize).checked_sub(map.as_ptr() as usize) else {
            return;
        };
        if bytes.is_empty() || offset + bytes.len() > map.len() {
            return;
        }
        // Reading one byte maps the pages around it too (the kernel's
        // fault-around), so the release covers those.
        let range = offset & !(FAULT_AROUND - 1)
            ..(offset + bytes.len())
                .next_multiple_of(FAULT_AROUND)
                .min(map.len());
        let mut pending = self.unreleased.lock().unwrap_or_else(|e| e.into_inner());
        let joins = !pending.is_empty()
            && range.start <= pending.end.saturating_add(RELEASE_JOIN)
            && range.end.saturating_add(RELEASE_JOIN) >= pending.start;
        let flush = if joins {
            *pending = pending.start.min(range.start)..pending.end.max(range.end);
            (pending.len() >= RELEASE_BATCH).then(|| std::mem::replace(&mut *pending, 0..0))
        } else {
            let done = std::mem::replace(&mut *pending, range);
            (!done.is_empty()).then_some(done)
        };
        drop(pending);
        if let Some(done) = flush {
            #[cfg(not(unix))]
            let _ = done;
            #[cfg(unix)]
            // SAFETY: the map is a read-only shared mapping of a file; dropping
            // its pages only unmaps them, and a later read faults the same
            // bytes back in from the file. Nothing is lost, no reference is
            // invalidated.
            unsafe {
                let _ = map.unchecked_advise_range(
                    memmap2::UncheckedAdvice::DontNeed,
                    done.start,
                    done.len(),
                );
            }
        }
    }

    /// The file the bytes are mapped from (for stdin, the spooled copy).
    #[cfg(not(target_os = "wasi"))]
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The file's name as given, or `<stdin>`.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether `target` names the input's own file, whatever the path:
    /// the same device and inode (`-o` naming the input, a hard link or a
    /// symbolic link to it, or the file stdin was redirected from). Writing
    /// there replaces the input, which may be the only copy of the user's
    /// data, so that output is synced (SPEC §8). A target that does not
    /// exist is not the input.
    #[cfg(unix)]
    pub fn is_file_at(&self, target: &Path) -> bool {
        // Follows symbolic links, as `write_atomically` does.
        match (self.file.metadata(), std::fs::metadata(target)) {
            (Ok(input), Ok(target)) => same_file(&input, &target),
            _ => false,
        }
    }

    /// Without a stable file identity (Windows, WASI), the same path once
    /// links are resolved (lexically where nothing resolves them): a hard
    /// link to the input is not recognised there.
    #[cfg(not(unix))]
    pub fn is_file_at(&self, target: &Path) -> bool {
        #[cfg(not(target_os = "wasi"))]
        let resolve = |p: &Path| std::fs::canonicalize(p).unwrap_or_else(|_| p.to_path_buf());
        // WASI has no realpath (the build would not link): paths as given.
        #[cfg(target_os = "wasi")]
        let resolve = |p: &Path| p.to_path_buf();
        self.path
            .as_deref()
            .is_some_and(|input| resolve(input) == resolve(target))
    }

    /// Whether standard output is a regular file that is the input's own
    /// file (`segpack pack < x.wasm >> x.wasm`, `segpack pack x.wasm >
    /// x.wasm`): the packed module would be appended to its own input, or
    /// (with `>`, which empties the file before segpack starts) the input
    /// is already gone. `cat` refuses the same ("input file is output file").
    #[cfg(unix)]
    pub fn is_stdout(&self) -> bool {
        use std::os::fd::AsFd;
        let Ok(fd) = io::stdout().as_fd().try_clone_to_owned() else {
            return false;
        };
        match (self.file.metadata(), File::from(fd).metadata()) {
            (Ok(input), Ok(out)) => out.is_file() && same_file(&input, &out),
            _ => false,
        }
    }

    /// Elsewhere standard output has no identity to compare.
    #[cfg(not(unix))]
    pub fn is_stdout(&self) -> bool {
        false
    }
}

/// Planning reads the data segments' headers through the file rather than
/// the map ([`segpack::MappedInput`]): a snapshot's headers are a page
/// apart, and each read in the map would fault in the pages around it.
impl segpack::MappedInput for Input {
    fn release(&self, bytes: &[u8]) {
        Input::release(self, bytes)
    }

    #[cfg(any(unix, windows))]
    fn read_at(&self, offset: u64, buf: &mut [u8]) -> io::Result<usize> {
        crate::write::read_at(&self.file, buf, offset)
    }

    /// WASI: the input was read into memory ([`map`]); no file to read.
    #[cfg(not(any(unix, windows)))]
    fn read_at(&self, _: u64, _: &mut [u8]) -> io::Result<usize> {
        Err(io::ErrorKind::Unsupported.into())
    }
}

/// The same file: the same device and inode.
#[cfg(unix)]
fn same_file(a: &std::fs::Metadata, b: &std::fs::Metadata) -> bool {
    use std::os::unix::fs::MetadataExt;
    a.dev() == b.dev() && a.ino() == b.ino()
}

/// Whether an output file is synced to disk once written (SPEC §8): an
/// output that replaces the input is, and any output with `--sync`; every
/// other output is left to the kernel, as `cp`, compilers and wasm-opt
/// leave theirs (a crash may leave it short; the input is never touched).
/// Devices and pipes are written as they are.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Durability {
    /// Synced before it is renamed into place, and its directory after.
    Synced,
    /// Renamed into place unsynced: left to the kernel.
    Unsynced,
}

impl Durability {
    /// The durability of an output: [`Synced`](Durability::Synced) when it
    /// replaces the input (`in_place`) or the user asked (`--sync`).
    pub fn of(in_place: bool, sync: bool) -> Durability {
        if in_place || sync {
            Durability::Synced
        } else {
            Durability::Unsynced
        }
    }
}

/// Written bytes are handed to the disk in steps of this size: large enough
/// for few calls, small enough that the disk starts early.
#[cfg(any(unix, windows))]
const WRITEBACK_STEP: u64 = 8 << 20;

/// Starts the disk writing a file that will be synced while the rest of it
/// is still being written, so the sync at the end waits for the last
/// [`WRITEBACK_STEP`] rather than for the whole file (Linux's
/// `sync_file_range`; elsewhere the sync does it all).
#[cfg(any(unix, windows))]
#[derive(Debug)]
pub struct Writeback<'a> {
    file: &'a File,
    /// Bytes from the file's start already handed to the disk.
    started: u64,
}

#[cfg(any(unix, windows))]
impl<'a> Writeback<'a> {
    /// Writeback for `file`, written from its start, when it will be synced.
    pub fn new(file: &'a File, durability: Durability) -> Option<Writeback<'a>> {
        (durability == Durability::Synced && cfg!(target_os = "linux"))
            .then_some(Writeback { file, started: 0 })
    }

    /// Says that the file's first `end` bytes are written.
    pub fn written(&mut self, end: u64) {
        if end < self.started + WRITEBACK_STEP {
            return;
        }
        // SAFETY: sync_file_range reads no memory of ours. It only starts
        // the writing (no waiting, no metadata): a failure is reported by
        // the sync that follows, so its result is not needed here.
        #[cfg(target_os = "linux")]
        unsafe {
            use std::os::fd::AsRawFd;
            libc::sync_file_range(
                self.file.as_raw_fd(),
                self.started as libc::off64_t,
                (end - self.started) as libc::off64_t,
                libc::SYNC_FILE_RANGE_WRITE,
            );
        }
        #[cfg(not(target_os = "linux"))]
        let _ = self.file;
        self.started = end;
    }
}

/// Writes a file atomically: `write` fills a temporary file in the target's
/// directory, which is renamed over `target` only when `write` succeeded.
/// On error the target is untouched and the temporary file removed. An
/// existing target's permissions are kept. With [`Durability::Synced`] the
/// file is synced before the rename and the directory after; `write` is
/// told whether the file will be synced (a device written through is not).
///
/// # Errors
/// [`ErrorKind::Io`](segpack::ErrorKind::Io) when the file cannot be created, written or renamed.
pub fn write_atomically(
    target: &Path,
    durability: Durability,
    write: impl FnOnce(&File, Durability) -> io::Result<()>,
) -> Result<()> {
    let name = target.display();
    // Follows symbolic links: what is looked at is what gets replaced.
    let existing = std::fs::metadata(target);
    match &existing {
        // A device or a FIFO (`-o /dev/null`, `-o /dev/stdout`, a named
        // pipe) is written through: renaming a file over it would replace
        // the device node itself.
        Ok(meta) if !meta.is_file() && !meta.is_dir() => {
            let file = File::options()
                .write(true)
                .open(target)
                .map_err(|e| Error::io(format!("cannot open {name}"), e))?;
            return write(&file, Durability::Unsynced)
                .map_err(|e| Error::io(format!("cannot write {name}"), e));
        }
        Ok(meta) if meta.is_dir() => {
            return Err(Error::io(
                format!("cannot write {name}: it is a directory; name a file in it"),
                io::Error::from(io::ErrorKind::IsADirectory),
            ));
        }
        _ => {}
    }
    // A symbolic link stays one: the file it points to is replaced.
    #[cfg(not(target_os = "wasi"))]
    let resolved = std::fs::canonicalize(target).ok();
    // WASI has no realpath: the npm launcher hands over the link's target.
    #[cfg(target_os = "wasi")]
    let resolved: Option<PathBuf> = None;
    let target = resolved.as_deref().unwrap_or(target);
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    #[cfg(not(target_os = "wasi"))]
    let temp = tempfile::Builder::new()
        .prefix(".segpack-")
        .suffix(".tmp")
        // Registered for removal on a signal before it exists, so no signal
        // can find it unregistered.
        .make_in(&dir, |path| {
            #[cfg(unix)]
            let pending = crate::signals::Pending::register(path);
            #[cfg(not(unix))]
            let pending = ();
            let file = File::options()
                .read(true)
                .write(true)
                .create_new(true)
                .open(path)?;
            Ok((file, pending))
        })
        .map_err(|e| {
            Error::io(
                format!("cannot create a temporary file in {}", dir.display()),
                e,
            )
        })?;
    #[cfg(target_os = "wasi")]
    let temp = wasi::Temp::create_in(&dir).map_err(|e| {
        Error::io(
            format!("cannot create a temporary file in {}", dir.display()),
            e,
        )
    })?;
    // Whether the rename replaces a file (read before `existing` is used up).
    #[cfg(target_os = "linux")]
    let replaces_a_file = matches!(&existing, Ok(meta) if meta.is_file());
    #[cfg(not(target_os = "wasi"))]
    let file = &temp.as_file().0;
    #[cfg(target_os = "wasi")]
    let file = temp.file();
    write(file, durability).map_err(|e| Error::io(format!("cannot write {name}"), e))?;
    // Temporary files are private (0600); the result should look like any
    // file the user writes: the target's old permissions, or 0644. (WASI has
    // no permissions: its files are created as the host makes them.)
    #[cfg(not(target_os = "wasi"))]
    match existing {
        Ok(meta) => {
            let _ = file.set_permissions(meta.permissions());
        }
        #[cfg(unix)]
        Err(_) => {
            use std::os::unix::fs::PermissionsExt;
            let _ = file.set_permissions(std::fs::Permissions::from_mode(0o644));
        }
        #[cfg(not(unix))]
        Err(_) => {}
    }
    // Durable: the data reaches the disk before the rename makes it the
    // target, and the rename reaches it after (the directory is synced), so
    // a crash leaves the old file or the new one, never a partial one.
    // Unsynced, a crash may leave the new file short, as after `cp`; the
    // input, a different file, is never touched.
    if durability == Durability::Synced {
        file.sync_all()
            .map_err(|e| Error::io(format!("cannot write {name}"), e))?;
    }
    #[cfg(target_os = "linux")]
    if durability == Durability::Unsynced && replaces_a_file && exchange(temp.path(), target) {
        // The temporary name now holds the old file: remove it, as the
        // rename would have. Failing that, the output is still in place.
        let _ = temp.close();
        return Ok(());
    }
    #[cfg(not(target_os = "wasi"))]
    temp.persist(target)
        .map_err(|e| Error::io(format!("cannot replace {name}"), e.error))?;
    #[cfg(target_os = "wasi")]
    temp.persist(target)
        .map_err(|e| Error::io(format!("cannot replace {name}"), e))?;
    if durability == Durability::Synced {
        sync_directory(&dir).map_err(|e| Error::io(format!("cannot sync {}", dir.display()), e))?;
    }
    Ok(())
}

/// Swaps the files at `temp` and `target` in one step (Linux's
/// `renameat2` with `RENAME_EXCHANGE`), for an unsynced output that
/// replaces a file. A rename over an existing file makes ext4 write the new
/// file's data out first (its `auto_da_alloc`, there for programs that
/// forget to sync): on a 1 GiB snapshot that is most of a pack's time. An
/// exchange is not a rename over a file, and the target still always names
/// a whole file, the old one or the new one. Returns `false`, with nothing
/// changed, where the call or the filesystem does not support it, or when
/// the target is no longer a file (a rename then fails as it should).
#[cfg(target_os = "linux")]
fn exchange(temp: &Path, target: &Path) -> bool {
    use std::os::unix::ffi::OsStrExt;
    let (Ok(from), Ok(to)) = (
        std::ffi::CString::new(temp.as_os_str().as_bytes()),
        std::ffi::CString::new(target.as_os_str().as_bytes()),
    ) else {
        return false;
    };
    let swap = || {
        // SAFETY: two NUL-terminated paths that outlive the call; renameat2
        // reads nothing else of ours.
        unsafe {
            libc::renameat2(
                libc::AT_FDCWD,
                from.as_ptr(),
                libc::AT_FDCWD,
                to.as_ptr(),
                libc::RENAME_EXCHANGE,
            ) == 0
        }
    };
    if !swap() {
        return false;
    }
    // Whatever was at the target is at `temp` now. Only a file may be
    // replaced: a directory that took the target's place since it was
    // looked at goes back.
    if std::fs::symlink_metadata(temp).is_ok_and(|meta| meta.is_dir()) {
        return !swap();
    }
    true
}

/// Syncs standard output once written, with [`Durability::Synced`]
/// (`--sync`), when it is a regular file; a pipe or a device has nothing
/// to sync.
pub fn sync_stdout(out: &File, durability: Durability) -> io::Result<()> {
    if durability == Durability::Synced && out.metadata()?.is_file() {
        out.sync_all()?;
    }
    Ok(())
}

/// Flushes a directory's entries (a rename in it) to disk.
#[cfg(unix)]
fn sync_directory(dir: &Path) -> io::Result<()> {
    File::open(dir)?.sync_all()
}

/// Windows and WASI cannot open a directory to sync it; their renames are
/// as durable as the platform makes them.
#[cfg(not(unix))]
fn sync_directory(_: &Path) -> io::Result<()> {
    Ok(())
}

/// WASI has no `tempfile` (no process id, no `O_TMPFILE`) and no signals to
/// clean up after: a temporary file named `.segpack-<random>-<n>.tmp`,
/// created with `create_new` beside the target and removed unless renamed.
#[cfg(target_os = "wasi")]
mod wasi {
    use std::fs::File;
    use std::hash::BuildHasher;
    use std::io;
    use std::path::{Path, PathBuf};
    use std::sync::atomic::{AtomicU64, Ordering};

    /// Temporary files created by this process so far.
    static COUNTER: AtomicU64 = AtomicU64::new(0);

    /// A temporary file, removed when dropped unless [`persist`](Temp::persist)ed.
    pub struct Temp {
        path: PathBuf,
        file: File,
        kept: bool,
    }

    impl Temp {
        /// Creates a new, empty temporary file in `dir`.
        pub fn create_in(dir: &Path) -> io::Result<Temp> {
            // There is no process id on WASI: a random number (WASI's
            // `random_get`, through the hasher's keys) stands in for it.
            let id = std::collections::hash_map::RandomState::new().hash_one(0u8) as u32;
            loop {
                let n = COUNTER.fetch_add(1, Ordering::Relaxed);
                let path = dir.join(format!(".segpack-{id:08x}-{n}.tmp"));
                match File::options()
                    .read(true)
                    .write(true)
                    .create_new(true)
                    .open(&path)
                {
                    Ok(file) => {
                        return Ok(Temp {
                            path,
                            file,
                            kept: false,
                        });
                    }
                    Err(e) if e.kind() == io::ErrorKind::AlreadyExists && n < 100 => {}
                    Err(e) => return Err(e),
                }
            }
        }

        pub fn file(&self) -> &File {
            &self.file
        }

        /// Renames the file to `target`, replacing what is there.
        pub fn persist(mut self, target: &Path) -> io::Result<()> {
            std::fs::rename(&self.path, target)?;
            self.kept = true;
            Ok(())
        }
    }

    impl Drop for Temp {
        fn drop(&mut self) {
            if !self.kept {
                let _ = std::fs::remove_file(&self.path);
            }
        }
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    /// A reader that hands out its bytes a few at a time, interrupted
    /// before each piece.
    struct Trickle<'a> {
        bytes: &'a [u8],
        interrupted: bool,
    }

    impl io::Read for Trickle<'_> {
        fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            self.interrupted = !self.interrupted;
            if self.interrupted {
                return Err(io::ErrorKind::Interrupted.into());
            }
            let n = self.bytes.len().min(buf.len()).min(777);
            buf[..n].copy_from_slice(&self.bytes[..n]);
            self.bytes = &self.bytes[n..];
            Ok(n)
        }
    }

    /// The spool holds every byte read, through short and interrupted
    /// reads; a spool that cannot be written says so, not that stdin failed.
    #[test]
    fn the_spool_holds_all_of_stdin() {
        let bytes: Vec<u8> = (0..3_000_000u32).map(|i| (i % 251) as u8).collect();
        let mut spooled = Vec::new();
        let mut from = Trickle {
            bytes: &bytes,
            interrupted: false,
        };
        spool(&mut from, &mut spooled).unwrap();
        assert!(spooled == bytes);
        let mut full = [0u8; 10];
        let error = spool(&mut &bytes[..], &mut &mut full[..]).unwrap_err();
        assert!(error.to_string().contains("temporary file"), "{error}");
    }

    /// Two files swap names; a directory that took the target's place is
    /// swapped back, and the caller's rename then fails as it should.
    #[cfg(target_os = "linux")]
    #[test]
    fn exchange_swaps_files_and_never_takes_a_directory() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (dir.path().join("a"), dir.path().join("b"));
        std::fs::write(&a, "new").unwrap();
        std::fs::write(&b, "old").unwrap();
        assert!(exchange(&a, &b));
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old");
        assert_eq!(std::fs::read_to_string(&b).unwrap(), "new");
        let sub = dir.path().join("sub");
        std::fs::create_dir(&sub).unwrap();
        std::fs::write(sub.join("inside"), "kept").unwrap();
        assert!(!exchange(&a, &sub));
        assert_eq!(std::fs::read_to_string(sub.join("inside")).unwrap(), "kept");
        assert_eq!(std::fs::read_to_string(&a).unwrap(), "old");
        assert!(!exchange(&a, &dir.path().join("missing")));
        assert!(a.exists());
    }

    /// Writeback is started for synced files only, in steps of
    /// [`WRITEBACK_STEP`] counted from where the last one ended.
    #[test]
    #[cfg(target_os = "linux")]
    fn writeback_starts_in_steps_for_synced_files_only() {
        let file = tempfile::tempfile().unwrap();
        assert!(Writeback::new(&file, Durability::Unsynced).is_none());
        let mut writeback = Writeback::new(&file, Durability::Synced).unwrap();
        writeback.written(WRITEBACK_STEP - 1);
        assert_eq!(writeback.started, 0);
        writeback.written(WRITEBACK_STEP + 5);
        assert_eq!(writeback.started, WRITEBACK_STEP + 5);
        writeback.written(2 * WRITEBACK_STEP);
        assert_eq!(writeback.started, WRITEBACK_STEP + 5);
        writeback.written(3 * WRITEBACK_STEP);
        assert_eq!(writeback.started, 3 * WRITEBACK_STEP);
    }
}
