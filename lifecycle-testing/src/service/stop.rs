//! Stopping the service with a signal and a grace period, as the kubelet
//! does (Unix only: Windows has no signals).

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::exit::Exit;
use super::process::{Service, POLL};
use crate::probe::{http_probe, Endpoint, DEFAULT_TIMEOUT};

/// How to stop a service: a signal, a grace period, perhaps a second
/// signal. At the end of the grace period the service is killed, as the
/// kubelet does.
///
/// Unix only: the stop is a signal (SIGTERM, as the kubelet sends). On
/// Windows a process gets no signal from another, and std has no way to
/// send it a console event; [`Service::kill`] ends it there.
#[derive(Debug, Clone, Copy)]
pub struct Stop {
    signal: i32,
    grace: Duration,
    second_signal_after: Option<Duration>,
}

impl Stop {
    /// SIGTERM, then SIGKILL after `grace` (the pod's
    /// `terminationGracePeriodSeconds`).
    pub fn grace(grace: Duration) -> Stop {
        Stop {
            signal: libc::SIGTERM,
            grace,
            second_signal_after: None,
        }
    }

    /// Another signal than SIGTERM (SIGINT, as Ctrl-C sends).
    #[must_use]
    pub fn signal(mut self, signal: i32) -> Stop {
        self.signal = signal;
        self
    }

    /// Sends the signal again `after` the first, as an impatient operator
    /// would.
    #[must_use]
    pub fn second_signal_after(mut self, after: Duration) -> Stop {
        self.second_signal_after = Some(after);
        self
    }
}

/// What a stop showed: how the process ended, when, whether `/readyz`
/// failed first, and what it wrote.
///
/// Unix only, as [`Stop`] is.
#[derive(Debug, Clone)]
pub struct StopReport {
    /// How the process ended.
    pub exit: Exit,
    /// From the first signal to the exit.
    pub signal_to_exit: Duration,
    /// When `/readyz` first answered a failing status to a probe sent after
    /// the signal (at most one probe round trip late); `None` if no probe
    /// saw that while the process ran: a service with no drain delay may
    /// exit within milliseconds, before the next probe. A refused
    /// connection does not count: it is not the service saying "not ready".
    pub unready_after: Option<Duration>,
    /// The grace period ran out and the service was killed with SIGKILL.
    pub killed: bool,
    /// What the service wrote to its termination log, if anything.
    pub termination_message: Option<String>,
    /// Every log line (stderr) of the service.
    pub log: Vec<String>,
}

impl Service {
    /// Stops the service as `stop` says, as the kubelet does: the signal
    /// (SIGTERM), then SIGKILL once the grace period has passed;
    /// `Stop::grace(Duration::from_secs(30))` is the kubelet's default
    /// stop. Meanwhile it probes `/readyz` to see when the service took
    /// itself out of rotation. Returns once the process has exited, with
    /// its log and stdout complete.
    ///
    /// Unix only (see [`Stop`]); on Windows, [`kill`](Self::kill).
    pub fn stop(&mut self, stop: Stop) -> StopReport {
        let addr = self.probe_addr();
        let signalled = Instant::now();
        let done = Arc::new(AtomicBool::new(false));
        // Watches for the moment readiness fails, as an endpoints
        // controller would see it.
        let watcher = {
            let done = done.clone();
            std::thread::spawn(move || {
                while !done.load(Ordering::SeqCst) {
                    // Only a probe sent after the signal, answered with a
                    // failing status: a refused connection or a time-out
                    // is not the service saying "not ready".
                    let sent = Instant::now();
                    let answer = http_probe(addr, Endpoint::Readyz.path(), DEFAULT_TIMEOUT);
                    if sent >= signalled && answer.status.is_some() && !answer.passed() {
                        return Some(signalled.elapsed());
                    }
                    std::thread::sleep(POLL);
                }
                None
            })
        };
        self.signal(stop.signal);
        let mut second_sent = false;
        let mut kill_sent = false;
        let exit = loop {
            if let Some(exit) = self.try_exit() {
                break exit;
            }
            let elapsed = signalled.elapsed();
            if let Some(after) = stop.second_signal_after {
                if !second_sent && elapsed >= after {
                    self.signal(stop.signal);
                    second_sent = true;
                }
            }
            if elapsed >= stop.grace && !kill_sent {
                self.send_kill();
                kill_sent = true;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        let signal_to_exit = signalled.elapsed();
        // The process may have exited by itself just before the kill.
        let killed = kill_sent && exit.signal == Some(libc::SIGKILL);
        done.store(true, Ordering::SeqCst);
        // A probe the watcher sent after the exit fails too: only a
        // failure seen while the process still ran counts.
        let unready_after = watcher
            .join()
            .ok()
            .flatten()
            .filter(|after| *after <= signal_to_exit);
        self.drain_output();
        StopReport {
            exit,
            signal_to_exit,
            unready_after,
            killed,
            termination_message: self.termination_message(),
            log: self.log(),
        }
    }
}
