//! Files: mapping the input (stdin spooled to a temporary file first) and
//! writing the output through a temporary file beside the target, renamed
//! into place only when complete.

use std::fs::File;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use memmap2::Mmap;

use crate::error::{Error, Result};

/// The input bytes, mapped from a file.
#[derive(Debug)]
pub struct Input {
    // `None` for an empty file: a zero-length mapping is not allowed.
    map: Option<Mmap>,
    file: File,
    name: String,
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

impl Input {
    /// Maps the file at `path`, or spools stdin to an unnamed temporary file
    /// and maps that when `path` is `None` or `-`.
    ///
    /// The file must not be changed while the input is alive: a mapped file
    /// that shrinks under us would fault on access. segpack's own output goes
    /// to a new file renamed over the target, never into the mapped one.
    ///
    /// # Errors
    /// [`ErrorKind::Io`](crate::ErrorKind::Io) when the file cannot be opened, read or mapped.
    ///
    /// ```no_run
    /// let input = segpack::io::Input::open(Some("module.wasm".as_ref()))?;
    /// println!("{} bytes", input.bytes().len());
    /// # Ok::<(), segpack::Error>(())
    /// ```
    pub fn open(path: Option<&Path>) -> Result<Input> {
        match path {
            Some(p) if p != Path::new("-") => {
                let name = p.display().to_string();
                let file =
                    File::open(p).map_err(|e| Error::io(format!("cannot open {name}"), e))?;
                Self::from_file(file, name)
            }
            _ => {
                let mut file = tempfile::tempfile()
                    .map_err(|e| Error::io("cannot create a temporary file for stdin", e))?;
                io::copy(&mut io::stdin().lock(), &mut file)
                    .map_err(|e| Error::io("cannot read stdin", e))?;
                Self::from_file(file, "<stdin>".to_string())
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
                file,
                name,
                unreleased: Mutex::new(0..0),
            });
        }
        // SAFETY: the map is only read; segpack never writes to its input
        // file (output goes to a new file renamed into place). Another process
        // truncating the file meanwhile is outside what we can prevent, as for
        // every tool that maps its input (see memmap2's docs).
        let map =
            unsafe { Mmap::map(&file) }.map_err(|e| Error::io(format!("cannot map {name}"), e))?;
        #[cfg(unix)]
        let _ = map.advise(memmap2::Advice::Sequential);
        Ok(Input {
            map: Some(map),
            file,
            name,
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
        let range = offset..offset + bytes.len();
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
    pub fn file(&self) -> &File {
        &self.file
    }

    /// The file's name as given, or `<stdin>`.
    pub fn name(&self) -> &str {
        &self.name
    }
}

/// Writes a file atomically: `write` fills a temporary file in the target's
/// directory, which is renamed over `target` only when `write` succeeded.
/// On error the target is untouched and the temporary file removed. An
/// existing target's permissions are kept.
///
/// # Errors
/// [`ErrorKind::Io`](crate::ErrorKind::Io) when the file cannot be created, written or renamed.
///
/// ```
/// let dir = tempfile::tempdir().unwrap();
/// let target = dir.path().join("out.wasm");
/// segpack::io::write_atomically(&target, |mut file| std::io::Write::write_all(&mut file, b"\0asm"))?;
/// assert_eq!(std::fs::read(&target).unwrap(), b"\0asm");
/// # Ok::<(), segpack::Error>(())
/// ```
pub fn write_atomically(target: &Path, write: impl FnOnce(&File) -> io::Result<()>) -> Result<()> {
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
            return write(&file).map_err(|e| Error::io(format!("cannot write {name}"), e));
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
    let resolved = std::fs::canonicalize(target).ok();
    let target = resolved.as_deref().unwrap_or(target);
    let dir = match target.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    let temp = tempfile::Builder::new()
        .prefix(".segpack-")
        .suffix(".tmp")
        // Registered for removal on a signal before it exists, so no signal
        // can find it unregistered.
        .make_in(&dir, |path| {
            let pending = Pending::register(path);
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
    let file = &temp.as_file().0;
    write(file).map_err(|e| Error::io(format!("cannot write {name}"), e))?;
    // Temporary files are private (0600); the result should look like any
    // file the user writes: the target's old permissions, or 0644.
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
    temp.persist(target)
        .map_err(|e| Error::io(format!("cannot replace {name}"), e.error))?;
    Ok(())
}

/// Temporary files being written right now, so that a signal handler can
/// remove them ([`remove_temporary_files_on_signals`]).
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary file's entry in [`PENDING`], for as long as it is written.
struct Pending(PathBuf);

impl Pending {
    fn register(path: &Path) -> Pending {
        pending().push(path.to_path_buf());
        #[cfg(unix)]
        input_fault::set(Some(path));
        Pending(path.to_path_buf())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        #[cfg(unix)]
        input_fault::set(None);
        pending().retain(|p| *p != self.0);
    }
}

/// The input is memory-mapped: if another process truncates the file while
/// segpack reads it, the next read of a page past the new end raises SIGBUS.
/// That cannot be turned into an error, but it must not leave the temporary
/// output behind: the handler removes it (`unlink` is async-signal-safe),
/// says why on stderr, and the fault then ends the process as it would have.
#[cfg(unix)]
mod input_fault {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::null_mut;
    use std::sync::atomic::{AtomicBool, AtomicPtr, Ordering};

    /// The temporary file being written, as a C string, or null.
    static TEMP: AtomicPtr<libc::c_char> = AtomicPtr::new(null_mut());

    pub(super) fn set(path: Option<&Path>) {
        let new = path
            .and_then(|p| CString::new(p.as_os_str().as_bytes()).ok())
            .map_or(null_mut(), CString::into_raw);
        let old = TEMP.swap(new, Ordering::SeqCst);
        if !old.is_null() {
            // SAFETY: `old` came from `CString::into_raw` above and is no
            // longer reachable through TEMP.
            drop(unsafe { CString::from_raw(old) });
        }
    }

    /// Set by the first thread that faults; the others wait for it.
    static FAULTED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_fault(_: libc::c_int) {
        const MESSAGE: &[u8] =
            b"error: the input file changed (shrank) while it was being read; nothing was written\n";
        // Several scan threads may fault at once. Only the first one reports;
        // the others sleep until it ends the process (with SA_RESETHAND, a
        // second fault used to kill the process before the first handler
        // had written its line or removed the file).
        if FAULTED.swap(true, Ordering::SeqCst) {
            loop {
                // SAFETY: `pause` is async-signal-safe.
                unsafe { libc::pause() };
            }
        }
        let temp = TEMP.load(Ordering::SeqCst);
        // SAFETY: `unlink`, `write` and `sigaction` are async-signal-safe;
        // `temp` is null or a valid C string. Once the default action is
        // back, the fault repeats on return and ends the process.
        unsafe {
            if !temp.is_null() {
                libc::unlink(temp);
            }
            libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut default.sa_mask);
            libc::sigaction(libc::SIGBUS, &default, null_mut());
        }
    }

    pub(super) fn install() {
        // SAFETY: a plain sigaction with a handler that only makes
        // async-signal-safe calls.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fault as extern "C" fn(libc::c_int) as usize;
            libc::sigemptyset(&mut action.sa_mask);
            libc::sigaction(libc::SIGBUS, &action, null_mut());
        }
    }
}

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic elsewhere while the lock was held leaves the list usable.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes SIGINT, SIGTERM and SIGHUP remove the temporary file that
/// [`write_atomically`] is writing before the process ends, so an
/// interrupted `segpack pack -o FILE` leaves neither a half-written file nor
/// litter beside it. The process then dies of the signal as it would have.
/// SIGBUS (the mapped input file was truncated by someone else) removes it
/// too, with a one-line error.
///
/// For programs (like the `segpack` CLI) that own their signal handling; a
/// library that embeds segpack keeps its own. A background thread waits for
/// the signals.
///
/// # Errors
/// When the signal handlers cannot be installed.
///
/// ```no_run
/// segpack::io::remove_temporary_files_on_signals()?;
/// # Ok::<(), std::io::Error>(())
/// ```
#[cfg(unix)]
pub fn remove_temporary_files_on_signals() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    input_fault::install();
    let mut signals = signal_hook::iterator::Signals::new([SIGINT, SIGTERM, SIGHUP])?;
    std::thread::Builder::new()
        .name("segpack-signals".into())
        .spawn(move || {
            if let Some(signal) = signals.forever().next() {
                for path in pending().drain(..) {
                    let _ = std::fs::remove_file(path);
                }
                let _ = signal_hook::low_level::emulate_default_handler(signal);
                std::process::exit(128 + signal);
            }
        })?;
    Ok(())
}
