//! Exit codes and the termination message: every non-zero exit says why,
//! in the log and where `kubectl describe pod` shows it.

use std::io::Write;
use std::path::{Path, PathBuf};

use crate::config::TERMINATION_LOG;

/// `main` returned `Err`, start-up or shutdown failed, or the deadline passed.
pub(crate) const FAILURE: i32 = 1;
/// A bad configuration value or duplicate check names.
pub(crate) const BAD_CONFIG: i32 = 2;

/// A panic under `panic = "crash"`.
pub(crate) const PANIC: i32 = 101;

/// Kubernetes reads at most 4096 bytes of a termination message.
const TERMINATION_MESSAGE_MAX: usize = 4096;
const KUBERNETES_TERMINATION_LOG: &str = "/dev/termination-log";

/// How the process ends: its exit code and, for a failure of the
/// service's, the reason that becomes the termination message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Exit {
    code: i32,
    reason: Option<String>,
}

impl Exit {
    pub(crate) fn success() -> Exit {
        Exit {
            code: 0,
            reason: None,
        }
    }

    /// A failure of the service: logged last and written as the
    /// termination message.
    pub(crate) fn failure(code: i32, reason: impl Into<String>) -> Exit {
        Exit {
            code,
            reason: Some(reason.into()),
        }
    }

    /// A code without a termination message, for a run that is not the
    /// container's main process (the exec probe).
    pub(crate) fn quiet(code: i32) -> Exit {
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
/// written before anything is logged, and logging never blocks.
pub(crate) fn terminate(code: i32, reason: &str) -> ! {
    if code != 0 {
        if let Some(path) = termination_log_path() {
            write_termination_message(&path, reason);
        }
    }
    log_error(&format!("exiting with code {code}: {reason}"));
    exit_now(code)
}

/// Exits with `code`, after giving the queued log lines the moment they
/// need when stderr takes them (none when it is stalled).
fn exit_now(code: i32) -> ! {
    crate::logging::drain_before_exit();
    std::process::exit(code)
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

/// `LIFECYCLE_TERMINATION_LOG` if set, else Kubernetes' default file when
/// it exists and is writable.
fn termination_log_path() -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(TERMINATION_LOG).filter(|p| !p.is_empty()) {
        return Some(PathBuf::from(path));
    }
    let default = Path::new(KUBERNETES_TERMINATION_LOG);
    let writable = std::fs::OpenOptions::new()
        .write(true)
        .open(default)
        .is_ok();
    writable.then(|| default.to_path_buf())
}

fn write_termination_message(path: &Path, reason: &str) {
    let message = truncate_on_char_boundary(reason, TERMINATION_MESSAGE_MAX);
    let written = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .open(path)
        .and_then(|mut file| file.write_all(message.as_bytes()));
    if let Err(e) = written {
        log_error(&format!(
            "could not write the termination message to {}: {e}",
            path.display()
        ));
    }
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
    use super::truncate_on_char_boundary;

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
