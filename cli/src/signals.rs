//! Signals: an interrupted or killed `segpack pack -o FILE` removes its
//! temporary file, and a fault on the mapped input (another process
//! truncated it) ends with one line and no output.

use std::io;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

/// Temporary files being written right now, so that a signal handler can
/// remove them ([`remove_temporary_files_on_signals`]).
static PENDING: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());

/// A temporary file's entry in [`PENDING`], for as long as it is written.
pub struct Pending(PathBuf);

impl Pending {
    pub fn register(path: &Path) -> Pending {
        pending().push(path.to_path_buf());
        input_fault::set(Some(path));
        Pending(path.to_path_buf())
    }
}

impl Drop for Pending {
    fn drop(&mut self) {
        input_fault::set(None);
        pending().retain(|p| *p != self.0);
    }
}

/// The input is memory-mapped: if another process truncates the file while
/// segpack reads it, the next read of a page past the new end raises SIGBUS.
/// That cannot be turned into an error, but it must not leave the temporary
/// output behind: the handler removes it (`unlink` is async-signal-safe),
/// says why on stderr, and the fault then ends the process as it would have.
///
/// The handler only reads atomics and C strings that are never freed, and it
/// only handles faults inside the input's map: any other SIGBUS goes to the
/// handler that was installed before (or the default action).
pub mod input_fault {
    use std::ffi::CString;
    use std::os::unix::ffi::OsStrExt;
    use std::path::Path;
    use std::ptr::null_mut;
    use std::sync::Mutex;
    use std::sync::atomic::{AtomicBool, AtomicPtr, AtomicUsize, Ordering};

    /// The temporary file being written, as a C string, or null. Strings
    /// stored here are never freed (one per output file, a few bytes), so
    /// the handler can never read one that another thread just dropped.
    static TEMP: AtomicPtr<libc::c_char> = AtomicPtr::new(null_mut());

    /// The input map's address range; a fault elsewhere is not ours.
    static MAP_START: AtomicUsize = AtomicUsize::new(0);
    static MAP_END: AtomicUsize = AtomicUsize::new(0);

    /// The SIGBUS action before ours, to chain to.
    static PREVIOUS: Mutex<Option<libc::sigaction>> = Mutex::new(None);
    static PREVIOUS_COPY: AtomicPtr<libc::sigaction> = AtomicPtr::new(null_mut());

    pub(crate) fn set(path: Option<&Path>) {
        let new = path
            .and_then(|p| CString::new(p.as_os_str().as_bytes()).ok())
            .map_or(null_mut(), CString::into_raw);
        // The old string is leaked on purpose (see TEMP).
        TEMP.store(new, Ordering::SeqCst);
    }

    /// Faults in `bytes` (the input's map) are the input's.
    pub fn watch(bytes: &[u8]) {
        let start = bytes.as_ptr() as usize;
        MAP_START.store(start, Ordering::SeqCst);
        MAP_END.store(start + bytes.len(), Ordering::SeqCst);
    }

    /// Set by the first thread that faults; the others wait for it.
    static FAULTED: AtomicBool = AtomicBool::new(false);

    extern "C" fn on_fault(
        signal: libc::c_int,
        info: *mut libc::siginfo_t,
        context: *mut libc::c_void,
    ) {
        const MESSAGE: &[u8] =
            b"error: the input file changed (shrank) while it was being read; nothing was written\n";
        // SAFETY: the kernel passes a valid siginfo_t to an SA_SIGINFO handler.
        let address = unsafe { (*info).si_addr() } as usize;
        let ours =
            (MAP_START.load(Ordering::SeqCst)..MAP_END.load(Ordering::SeqCst)).contains(&address);
        if !ours {
            // SAFETY: `chain` only calls the previous handler or restores the
            // default action, both async-signal-safe.
            unsafe { chain(signal, info, context) };
            return;
        }
        // Several scan threads may fault at once. Only the first one reports;
        // the others sleep until it ends the process.
        if FAULTED.swap(true, Ordering::SeqCst) {
            loop {
                // SAFETY: `pause` is async-signal-safe.
                unsafe { libc::pause() };
            }
        }
        let temp = TEMP.load(Ordering::SeqCst);
        // SAFETY: `unlink`, `write` and `sigaction` are async-signal-safe;
        // `temp` is null or a C string that is never freed. Once the default
        // action is back, the fault repeats on return and ends the process.
        unsafe {
            if !temp.is_null() {
                libc::unlink(temp);
            }
            libc::write(2, MESSAGE.as_ptr().cast(), MESSAGE.len());
            restore_default(signal);
        }
    }

    /// Hands a fault that is not ours to the handler installed before.
    ///
    /// # Safety
    /// Only from the SIGBUS handler, with its arguments.
    unsafe fn chain(signal: libc::c_int, info: *mut libc::siginfo_t, context: *mut libc::c_void) {
        let previous = PREVIOUS_COPY.load(Ordering::SeqCst);
        let handler = if previous.is_null() {
            libc::SIG_DFL
        } else {
            // SAFETY: PREVIOUS_COPY is null or points to a leaked, never-changed
            // sigaction (see `install`).
            unsafe { (*previous).sa_sigaction }
        };
        // SAFETY: the previous handler was installed for this signal and
        // expects these arguments (SA_SIGINFO) or just the signal number.
        unsafe {
            if handler == libc::SIG_DFL || handler == libc::SIG_IGN {
                restore_default(signal);
            } else if (*previous).sa_flags & libc::SA_SIGINFO != 0 {
                let f: extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void) =
                    std::mem::transmute(handler);
                f(signal, info, context);
            } else {
                let f: extern "C" fn(libc::c_int) = std::mem::transmute(handler);
                f(signal);
            }
        }
    }

    /// Puts the default action back: the fault repeats on return and ends
    /// the process, as it would have without us.
    ///
    /// # Safety
    /// Async-signal-safe; callable from the handler.
    unsafe fn restore_default(signal: libc::c_int) {
        // SAFETY: a zeroed sigaction with SIG_DFL is a valid argument.
        unsafe {
            let mut default: libc::sigaction = std::mem::zeroed();
            default.sa_sigaction = libc::SIG_DFL;
            libc::sigemptyset(&mut default.sa_mask);
            libc::sigaction(signal, &default, null_mut());
        }
    }

    pub(super) fn install() -> std::io::Result<()> {
        let mut guard = PREVIOUS.lock().unwrap_or_else(|e| e.into_inner());
        if guard.is_some() {
            return Ok(());
        }
        // SAFETY: a plain sigaction with an SA_SIGINFO handler that only
        // makes async-signal-safe calls; the previous action is saved.
        unsafe {
            let mut action: libc::sigaction = std::mem::zeroed();
            action.sa_sigaction = on_fault
                as extern "C" fn(libc::c_int, *mut libc::siginfo_t, *mut libc::c_void)
                as usize;
            action.sa_flags = libc::SA_SIGINFO;
            libc::sigemptyset(&mut action.sa_mask);
            let mut previous: libc::sigaction = std::mem::zeroed();
            if libc::sigaction(libc::SIGBUS, &action, &mut previous) != 0 {
                return Err(std::io::Error::last_os_error());
            }
            *guard = Some(previous);
            PREVIOUS_COPY.store(Box::into_raw(Box::new(previous)), Ordering::SeqCst);
        }
        Ok(())
    }
}

fn pending() -> std::sync::MutexGuard<'static, Vec<PathBuf>> {
    // A panic elsewhere while the lock was held leaves the list usable.
    PENDING.lock().unwrap_or_else(|e| e.into_inner())
}

/// Makes SIGINT, SIGTERM and SIGHUP remove the temporary file that
/// [`write_atomically`](crate::files::write_atomically) is writing before
/// the process ends, so an interrupted `segpack pack -o FILE` leaves neither
/// a half-written file nor litter beside it. The process then dies of the signal as it would have.
/// SIGBUS (the mapped input file was truncated by someone else) removes it
/// too, with a one-line error.
///
/// For programs (like the `segpack` CLI) that own their signal handling; a
/// library that embeds segpack keeps its own. A background thread waits for
/// the signals.
///
/// # Errors
/// When the signal handlers cannot be installed.
pub fn remove_temporary_files_on_signals() -> io::Result<()> {
    use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM};
    input_fault::install()?;
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
