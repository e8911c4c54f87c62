//! What packing a whole binary did: per core module, and in total.

/// What packing did to one core module.
///
/// ```
/// let input = wat::parse_str(r#"(component
///     (core module (memory 1) (data (i32.const 0) "a\00\00\00\00\00\00\00\00\00b")))"#).unwrap();
/// let report = segpack::pack_module(&input, Vec::new(), &Default::default())?;
/// let module = &report.modules[0];
/// assert_eq!(module.path, "core module 0");
/// assert_eq!((module.segments_before, module.segments_after), (1, 2));
/// assert!(module.changed && module.data_bytes_after < module.data_bytes_before);
/// # Ok::<(), segpack::Error>(())
/// ```
///
/// `Send` and `Sync`.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ModuleReport {
    /// Where the module is inside a component, e.g. `core module 0`; empty
    /// for a top-level module.
    pub path: String,
    /// Data segments in the input.
    pub segments_before: u64,
    /// Data segments in the output.
    pub segments_after: u64,
    /// Size of the input's data section in bytes, header included (0 if none).
    pub data_bytes_before: u64,
    /// Size of the output's data section in bytes, header included.
    pub data_bytes_after: u64,
    /// Whether the module's bytes changed.
    pub changed: bool,
    /// Things the user should know, e.g. why the data section was left as is.
    pub warnings: Vec<String>,
    /// Memories with segments that were not re-packed, and why.
    pub unpacked_memories: Vec<(u32, crate::NotPackable)>,
    /// Per re-packed memory: (memory index, segments, bytes with headers)
    /// after packing, for `inspect` (so it plans once). Empty when the
    /// module's segments were kept.
    pub(crate) packed_memories: Vec<(u32, u64, u64)>,
    /// What the module would have at [`MaxSegments::ENGINE_LIMIT`], when
    /// [`PackOptions::report_engine_limit`] asked and the cap is below it.
    ///
    /// [`MaxSegments::ENGINE_LIMIT`]: crate::MaxSegments::ENGINE_LIMIT
    /// [`PackOptions::report_engine_limit`]: crate::PackOptions::report_engine_limit
    pub(crate) at_engine_limit: Option<Figures>,
}

/// A data section's segments and bytes (header included), as packing at
/// another cap would leave them: [`PackReport::at_engine_limit`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Figures {
    /// Data segments.
    pub segments: u64,
    /// Data section bytes, header included.
    pub data_bytes: u64,
}

/// What packing did to a binary: one [`ModuleReport`] per core module, in
/// the order they appear.
///
/// ```
/// // Out of bounds: instantiation traps, so the data section is kept, with a warning.
/// let input = wat::parse_str(r#"(module (memory 1) (data (i32.const 65535) "ab"))"#).unwrap();
/// let mut output = Vec::new();
/// let report = segpack::pack_module(&input, &mut output, &Default::default())?;
/// assert!(!report.changed());
/// assert_eq!(output, input);
/// assert_eq!(report.segments_before(), report.segments_after());
/// assert_eq!(report.data_bytes_before(), report.data_bytes_after());
/// assert!(report.warnings().next().unwrap().contains("out of bounds"));
/// # Ok::<(), segpack::Error>(())
/// ```
///
/// `Send` and `Sync`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct PackReport {
    /// One report per core module (one for a plain module).
    pub modules: Vec<ModuleReport>,
    /// Size of the input in bytes.
    pub input_len: u64,
    /// Size of the output in bytes.
    pub output_len: u64,
}

impl PackReport {
    /// Data segments in the input, over all modules.
    pub fn segments_before(&self) -> u64 {
        self.modules.iter().map(|m| m.segments_before).sum()
    }
    /// Data segments in the output, over all modules.
    pub fn segments_after(&self) -> u64 {
        self.modules.iter().map(|m| m.segments_after).sum()
    }
    /// Data section bytes in the input, over all modules.
    pub fn data_bytes_before(&self) -> u64 {
        self.modules.iter().map(|m| m.data_bytes_before).sum()
    }
    /// Data section bytes in the output, over all modules.
    pub fn data_bytes_after(&self) -> u64 {
        self.modules.iter().map(|m| m.data_bytes_after).sum()
    }
    /// What packing would give at [`MaxSegments::ENGINE_LIMIT`] over all
    /// modules, worked out in the same planning pass: `None` unless
    /// [`PackOptions::report_engine_limit`] asked and the cap is below the
    /// limit.
    ///
    /// ```
    /// use segpack::{MaxSegments, PackOptions};
    /// let input = wat::parse_str(r#"(module (memory 1)
    ///     (data (i32.const 0) "a") (data (i32.const 100) "b") (data (i32.const 200) "c"))"#).unwrap();
    /// let options = PackOptions::default()
    ///     .with_max_segments(MaxSegments::new(1).unwrap())
    ///     .with_report_engine_limit(true);
    /// let report = segpack::pack_module(&input, Vec::new(), &options)?;
    /// let at_limit = report.at_engine_limit().unwrap();
    /// // At the cap of 1 the input is kept: one segment would carry 198 zeros.
    /// assert_eq!(report.segments_after(), 3);
    /// assert_eq!((at_limit.segments, at_limit.data_bytes), (3, report.data_bytes_after()));
    /// # Ok::<(), segpack::Error>(())
    /// ```
    ///
    /// [`MaxSegments::ENGINE_LIMIT`]: crate::MaxSegments::ENGINE_LIMIT
    /// [`PackOptions::report_engine_limit`]: crate::PackOptions::report_engine_limit
    pub fn at_engine_limit(&self) -> Option<Figures> {
        self.modules
            .iter()
            .map(|m| m.at_engine_limit)
            .try_fold(Figures::default(), |total, m| {
                let m = m?;
                Some(Figures {
                    segments: total.segments + m.segments,
                    data_bytes: total.data_bytes + m.data_bytes,
                })
            })
            .filter(|_| !self.modules.is_empty())
    }

    /// Whether the output differs from the input.
    pub fn changed(&self) -> bool {
        self.modules.iter().any(|m| m.changed)
    }
    /// Every warning, prefixed with its module's path inside a component.
    pub fn warnings(&self) -> impl Iterator<Item = String> + '_ {
        self.modules.iter().flat_map(|m| {
            m.warnings.iter().map(move |w| {
                if m.path.is_empty() {
                    w.clone()
                } else {
                    format!("{}: {w}", m.path)
                }
            })
        })
    }
}
