//! PID 1: in a container without an init, the
//! service is the namespace's PID 1, which the kernel gives no default
//! signal actions and every orphan to reap. There the process does what
//! tini does, first thing in `run_service`, before any thread exists: it
//! blocks every signal, forks, and
//!
//! - the child goes on to run the service, as it would have run without
//!   this (same signal dispositions, same exit codes, its own termination
//!   message);
//! - the parent, PID 1, only waits for signals: it forwards each one to the
//!   child as it arrives, reaps every process that ends (the child and
//!   the orphans handed to it), and when the child is gone exits with the
//!   child's code, 128 + N when it died of signal N. It never sends a
//!   signal of its own: the kubelet owns the grace period, and a second
//!   SIGTERM of ours would read as the user's second signal (exit 143).
//!
//! The parent calls nothing but `sigwaitinfo`, `waitpid`, `kill` and
//! `_exit`: no allocation, no lock, nothing that a fork could have left
//! half-done (and no thread existed to leave anything so).
//!
//! Linux only: PID 1 without an init is the container case. On other
//! systems [`start`] does nothing, whatever `pid1` says (documented so).

#[cfg(target_os = "linux")]
use std::io;
#[cfg(target_os = "linux")]
use std::mem::MaybeUninit;

#[cfg(target_os = "linux")]
use crate::config;
use crate::config::ServiceConfig;

/// What the service's process (the child, or the process itself when no
/// init was started) still has to do once its own signal handlers are
/// installed.
pub(crate) struct Started {
    /// The signal mask from before the fork: every signal stays blocked
    /// until [`Started::unblock`], so that one forwarded in the meantime
    /// is held until a handler is there to record it rather than taking
    /// the default action.
    #[cfg(target_os = "linux")]
    restore: Option<libc::sigset_t>,
    /// Why no init runs although the process is PID 1 (the fork failed):
    /// logged once logging is up.
    pub(crate) warning: Option<String>,
}

impl Started {
    /// Nothing was done: not PID 1, or turned off.
    fn nothing() -> Started {
        Started {
            #[cfg(target_os = "linux")]
            restore: None,
            warning: None,
        }
    }

    /// Restores the signal mask the process started with.
    pub(crate) fn unblock(&mut self) {
        #[cfg(target_os = "linux")]
        if let Some(mask) = self.restore.take() {
            // SAFETY: `mask` is a signal set the kernel filled in; the
            // old-mask pointer may be null.
            unsafe { libc::pthread_sigmask(libc::SIG_SETMASK, &mask, std::ptr::null_mut()) };
        }
    }
}

/// Not Linux: the service runs as it is, PID 1 or not.
#[cfg(not(target_os = "linux"))]
pub(crate) fn start(_config: &ServiceConfig) -> Started {
    Started::nothing()
}

/// This process's PID.
#[cfg(target_os = "linux")]
fn pid() -> libc::pid_t {
    // SAFETY: getpid has no preconditions and cannot fail.
    unsafe { libc::getpid() }
}

#[cfg(target_os = "linux")]
/// Starts the init when the process is PID 1 and `pid1` is not turned off
/// (argument or `LIFECYCLE_PID1`); returns in the process that runs the
/// service. Must run before any thread is started.
pub(crate) fn start(config: &ServiceConfig) -> Started {
    if pid() != 1 || !config::pid1_wanted(config, &config::process_env) {
        return Started::nothing();
    }
    let mut all = empty_set();
    let mut before = empty_set();
    // SAFETY: both sets are valid, initialised sigset_t values; sigfillset
    // only writes to its argument, pthread_sigmask reads the first and
    // writes the second. SIGKILL and SIGSTOP, which cannot be blocked, are
    // left out by the kernel; glibc leaves out its own internal signals.
    unsafe {
        libc::sigfillset(&mut all);
        libc::pthread_sigmask(libc::SIG_SETMASK, &all, &mut before);
    }
    // SAFETY: no other thread exists yet (this is the first thing `main`
    // does), so the child gets a consistent copy of the process; each side
    // goes on below with only what it needs.
    match unsafe { libc::fork() } {
        -1 => {
            let error = io::Error::last_os_error();
            // Served all the same, as PID 1 itself, as with the init off.
            Started {
                restore: Some(before),
                warning: Some(format!(
                    "running as PID 1 without an init: cannot fork ({error}); orphans will not be reaped (LIFECYCLE_PID1=off silences this)"
                )),
            }
        }
        // The child: the service. Signals stay blocked until its handlers
        // are installed (`Started::unblock`).
        0 => Started {
            restore: Some(before),
            warning: None,
        },
        child => supervise(child, &all),
    }
}

#[cfg(target_os = "linux")]
fn empty_set() -> libc::sigset_t {
    let mut set = MaybeUninit::<libc::sigset_t>::uninit();
    // SAFETY: sigemptyset initialises the whole set it is given.
    unsafe {
        libc::sigemptyset(set.as_mut_ptr());
        set.assume_init()
    }
}

#[cfg(target_os = "linux")]
/// PID 1's loop: every signal in `blocked` is taken synchronously, one at
/// a time as it arrives. SIGCHLD means "reap"; every other one is the
/// child's, forwarded once.
fn supervise(child: libc::pid_t, blocked: &libc::sigset_t) -> ! {
    loop {
        // SAFETY: `blocked` is a valid set; the siginfo pointer may be null.
        let signo = unsafe { libc::sigwaitinfo(blocked, std::ptr::null_mut()) };
        if signo == -1 {
            // EINTR (a stop and continue under ptrace): wait again.
            continue;
        }
        if signo == libc::SIGCHLD {
            if let Some(code) = reap(child) {
                // SAFETY: _exit ends the process; nothing here needs
                // flushing (PID 1 wrote nothing) or running at exit.
                unsafe { libc::_exit(code) }
            }
            continue;
        }
        // A child that has just exited is a zombie until reaped here: the
        // signal then reaches no one, which is as it should be.
        // SAFETY: kill takes plain integers.
        unsafe { libc::kill(child, signo) };
    }
}

#[cfg(target_os = "linux")]
/// Reaps every process that has ended, until none is left: SIGCHLDs that
/// arrive together are one pending signal, so one per process cannot be
/// counted on. Returns the exit code to end with once the child is among
/// them (the orphans that ended with it are reaped in the same loop).
fn reap(child: libc::pid_t) -> Option<i32> {
    let mut code = None;
    loop {
        let mut status = 0;
        // SAFETY: waitpid writes the status it is given.
        let pid = unsafe { libc::waitpid(-1, &mut status, libc::WNOHANG) };
        if pid <= 0 {
            // 0: the rest still run; -1: ECHILD, no process left.
            return code;
        }
        if pid == child {
            code = Some(exit_code(status));
        }
    }
}

#[cfg(target_os = "linux")]
/// The shell's convention, which the kubelet reports too: the exit code,
/// or 128 + N for a process killed by signal N.
fn exit_code(status: libc::c_int) -> i32 {
    if libc::WIFSIGNALED(status) {
        128 + libc::WTERMSIG(status)
    } else {
        libc::WEXITSTATUS(status)
    }
}

#[cfg(all(test, target_os = "linux"))]
mod tests {
    use super::*;

    fn config(pid1: bool) -> ServiceConfig {
        ServiceConfig {
            tracing: false,
            pid1,
            ..ServiceConfig::defaults()
        }
    }

    /// The children of this process, from /proc.
    fn children() -> String {
        let me = std::process::id();
        std::fs::read_to_string(format!("/proc/{me}/task/{me}/children")).unwrap_or_default()
    }

    #[test]
    fn when_not_pid1_nothing_forks_and_no_signal_stays_blocked() {
        assert_ne!(pid(), 1, "the unit tests run as a PID other than 1");
        let before = children();
        let mut started = start(&config(true));
        // A fork would have returned here twice; the parent's copy never
        // returns, so a second copy of this test would show as a child.
        assert_eq!(pid() as u32, std::process::id());
        assert_eq!(children(), before, "no child process was started");
        assert!(started.restore.is_none() && started.warning.is_none());
        started.unblock();
        let mut mask = empty_set();
        // SAFETY: a null new set only reads the current mask into `mask`.
        unsafe { libc::pthread_sigmask(libc::SIG_BLOCK, std::ptr::null(), &mut mask) };
        // SAFETY: sigismember reads a valid set.
        assert_eq!(unsafe { libc::sigismember(&mask, libc::SIGTERM) }, 0);
    }

    #[test]
    fn exit_codes_follow_the_shell() {
        // Statuses as the kernel encodes them: code << 8, or the signal.
        assert_eq!(exit_code(0), 0);
        assert_eq!(exit_code(2 << 8), 2);
        assert_eq!(exit_code(101 << 8), 101);
        assert_eq!(exit_code(libc::SIGKILL), 137);
        assert_eq!(exit_code(libc::SIGTERM), 143);
    }
}
