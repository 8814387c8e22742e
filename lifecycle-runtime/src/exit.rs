//! Exit codes and the termination message: every non-zero exit says why,
//! in the log and where `kubectl describe pod` shows it.

use std::cell::Cell;
use std::fmt;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use crate::config::TERMINATION_LOG;
use crate::special_file::{self, Kind};
use crate::text::one_line;

/// The exit codes, as the crate docs' table gives them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Code {
    /// `main` returned `Ok`, or the stop finished in time with every hook
    /// succeeding.
    Success,
    /// `main` returned `Err`, start-up or shutdown failed, or the deadline
    /// passed.
    Failure,
    /// A bad configuration value or flag, or duplicate check names.
    BadConfig,
    /// A panic under `panic = "crash"`, or of the body of `main`.
    Panic,
    /// Ended by a stop event (a second one during shutdown, or one whose
    /// default action could not be emulated): 128 + the number of the
    /// signal it stands for, as a shell reports it.
    Signal(i32),
    /// Ended by a console event in a mode that serves nothing, as
    /// Windows' default handler ends a process: `STATUS_CONTROL_C_EXIT`,
    /// which shells and cargo report as an interrupt.
    #[cfg(windows)]
    ConsoleInterrupt,
}

impl Code {
    /// The number the process exits with.
    pub(crate) fn as_i32(self) -> i32 {
        match self {
            Code::Success => 0,
            Code::Failure => 1,
            Code::BadConfig => 2,
            Code::Panic => 101,
            Code::Signal(number) => 128 + number,
            // An NTSTATUS: the exit status is its bits, read as an i32.
            #[cfg(windows)]
            Code::ConsoleInterrupt => 0xC000_013A_u32 as i32,
        }
    }
}

/// The number, as messages and manifests name an exit code.
impl fmt::Display for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.as_i32())
    }
}

/// Kubernetes reads at most 4096 bytes of a termination message.
pub(crate) const TERMINATION_MESSAGE_MAX: usize = 4096;
const KUBERNETES_TERMINATION_LOG: &str = "/dev/termination-log";

/// How the process ends: its exit code and, for a failure of the
/// service's, the reason that becomes the termination message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exit {
    code: Code,
    reason: Option<String>,
}

impl Exit {
    pub(crate) fn success() -> Exit {
        Exit {
            code: Code::Success,
            reason: None,
        }
    }

    /// A failure of the service: logged last and written as the
    /// termination message.
    pub(crate) fn failure(code: Code, reason: impl Into<String>) -> Exit {
        Exit {
            code,
            reason: Some(reason.into()),
        }
    }

    /// A code without a termination message, for a run that is not the
    /// container's main process (the exec probe).
    pub(crate) fn quiet(code: Code) -> Exit {
        Exit { code, reason: None }
    }

    /// Ends the process with this exit.
    pub(crate) fn exit(self) -> ! {
        match self.reason {
            Some(reason) => terminate(self.code, &reason),
            None => exit_now(self.code),
        }
    }
}

/// Writes `reason` as the termination message, logs it as the last line,
/// and exits with `code`. Nothing here waits on stderr: the message is
/// written before anything is logged, and logging never blocks. Other
/// threads go on until the exit: their lines are no longer taken.
///
/// The line logged is one line, within the termination message's bound:
/// a longer one would never fit the log queue (and be lost, with the very
/// reason of the exit), and a newline in the reason would end the line
/// early, the last line logged then being whatever the reason says.
pub(crate) fn terminate(code: Code, reason: &str) -> ! {
    claim_exit();
    if code != Code::Success {
        write_termination_message(reason);
    }
    crate::logging::only_this_thread_from_now();
    let logged = one_line(reason, TERMINATION_MESSAGE_MAX);
    log_error(&format!("exiting with code {code}: {logged}"));
    exit_now(code)
}

/// Exits with `code`, after giving the queued log lines the moment they
/// need when stderr takes them (none when it is stalled).
fn exit_now(code: Code) -> ! {
    claim_exit();
    crate::logging::drain_before_exit();
    std::process::exit(code.as_i32())
}

/// A thread has begun ending the process.
static EXIT_CLAIMED: AtomicBool = AtomicBool::new(false);

thread_local! {
    /// This thread is the one ending the process.
    static ENDING_HERE: Cell<bool> = const { Cell::new(false) };
}

/// One exit per process: the first thread to end it goes on; any other
/// that tries meanwhile (a second signal while the main thread exits with
/// the stop's code, the deadline, a panic elsewhere) waits for the process
/// to be gone: two going on could exit 0 with a 143's reason as the
/// termination message. The thread that claimed goes on if it comes again
/// (a panic on its way out).
fn claim_exit() {
    if ENDING_HERE.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    if EXIT_CLAIMED.swap(true, Ordering::SeqCst) {
        // The claimer neither waits on this thread nor on anything it may
        // hold: it only writes, logs without blocking and exits.
        loop {
            std::thread::park();
        }
    }
    let _ = ENDING_HERE.try_with(|here| here.set(true));
}

/// Logs through `tracing`, or to stderr when no subscriber is installed
/// (`tracing = false` and none of the application's own yet), so that an
/// error is never silent. Never blocks on stderr, never panics.
pub(crate) fn log_error(message: &str) {
    if tracing::dispatcher::has_been_set() {
        tracing::error!("{message}");
    } else {
        crate::logging::fallback_line(&format!("error: {message}"));
    }
}

/// Writes `reason` as the termination message: to
/// `LIFECYCLE_TERMINATION_LOG` if set (created if missing), else to
/// Kubernetes' default file when it exists and can be opened for writing.
/// Never blocks: see [`write_message`]. A failure is logged.
fn write_termination_message(reason: &str) {
    let message = truncate_on_char_boundary(reason, TERMINATION_MESSAGE_MAX);
    let (path, explicit) = match std::env::var_os(TERMINATION_LOG).filter(|p| !p.is_empty()) {
        Some(path) => (PathBuf::from(path), true),
        None => (PathBuf::from(KUBERNETES_TERMINATION_LOG), false),
    };
    match write_message(&path, explicit, message) {
        Ok(()) => {}
        // Kubernetes' file is used only when it is there for us to write.
        Err(e)
            if !explicit
                && matches!(
                    e.kind(),
                    io::ErrorKind::NotFound
                        | io::ErrorKind::PermissionDenied
                        | io::ErrorKind::ReadOnlyFilesystem
                ) => {}
        Err(e) => log_error(&format!(
            "could not write the termination message to {}: {e}",
            path.display()
        )),
    }
}

/// Writes `message` to `path` without ever blocking
/// ([`special_file::open_for_writing`]), created only when `create`; then
/// written only if it is a regular file (truncated first) or a character
/// device.
fn write_message(path: &Path, create: bool, message: &str) -> io::Result<()> {
    let mut file = special_file::open_for_writing(path, create, false)?;
    match Kind::of(file.metadata()?.file_type()) {
        Kind::Regular => file.set_len(0)?,
        #[cfg(unix)]
        Kind::CharDevice => {}
        other => {
            return Err(io::Error::other(format!(
                "it is {}, not a regular file or a character device",
                other.as_str()
            )))
        }
    }
    file.write_all(message.as_bytes())
}

/// The longest prefix of `text` of at most `max` bytes that ends on a
/// character boundary.
pub(crate) fn truncate_on_char_boundary(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

#[cfg(test)]
mod tests {
    use super::{truncate_on_char_boundary, write_message};
    use std::path::PathBuf;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("lifecycle-exit-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        dir
    }

    #[test]
    fn writes_a_regular_file_whole_and_a_character_device() {
        let dir = scratch("regular");
        let path = dir.join("termination-log");
        write_message(&path, true, "a longer first message").unwrap();
        write_message(&path, true, "second").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "second");
        #[cfg(unix)]
        write_message("/dev/null".as_ref(), false, "gone").unwrap();
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[cfg(target_os = "linux")]
    #[test]
    fn never_blocks_on_odd_files_and_says_what_they_are() {
        use std::os::unix::fs::OpenOptionsExt;

        let dir = scratch("odd");
        let fifo = dir.join("fifo");
        let c_path = std::ffi::CString::new(fifo.to_str().unwrap()).unwrap();
        // SAFETY: mkfifo(3) with a valid C string.
        assert_eq!(unsafe { libc::mkfifo(c_path.as_ptr(), 0o600) }, 0);
        let error = write_message(&fifo, true, "x").unwrap_err();
        assert!(error.to_string().contains("a FIFO nobody reads"), "{error}");

        // A FIFO with a reader opens, and still is no file to write.
        let reader = std::fs::OpenOptions::new()
            .read(true)
            .custom_flags(libc::O_NONBLOCK)
            .open(&fifo)
            .unwrap();
        let error = write_message(&fifo, true, "x").unwrap_err();
        assert!(error.to_string().contains("it is a FIFO"), "{error}");
        drop(reader);

        let error = write_message(&dir, true, "x").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::IsADirectory, "{error}");
        let error = write_message("/dev/full".as_ref(), true, "x").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::StorageFull, "{error}");
        let missing = dir.join("missing").join("termination-log");
        let error = write_message(&missing, true, "x").unwrap_err();
        assert_eq!(error.kind(), std::io::ErrorKind::NotFound, "{error}");
        std::fs::remove_dir_all(dir).unwrap();
    }

    #[test]
    fn cuts_on_a_character_boundary() {
        let text = "é".repeat(3000); // 6000 bytes, 2 bytes a character
        let cut = truncate_on_char_boundary(&text, 4096);
        assert_eq!(cut.len(), 4096);
        let text = "€".repeat(2000); // 3 bytes a character
        let cut = truncate_on_char_boundary(&text, 4096);
        assert_eq!(cut.len(), 4095);
        assert_eq!(truncate_on_char_boundary("short", 4096), "short");
    }
}
