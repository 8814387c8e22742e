//! The kubelet running in the background: the progress its driver
//! shares with the test, and the session the test holds.

use std::fmt;
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::message::Message;
use super::pod::Slot;
use super::report::KubeletReport;
use crate::error::{Error, ErrorKind};
use crate::service::{Lines, Service, LOG_TAIL};
use crate::sync::lock;

/// What the watch has seen so far.
pub(super) struct Progress {
    pub(super) report: KubeletReport,
    /// When the watch ended, from its start.
    pub(super) finished: Option<Duration>,
}

/// The progress, shared by the driver that makes it and the session that
/// shows it.
pub(super) struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    /// No progress yet on `report`.
    pub(super) fn new(report: KubeletReport) -> Shared {
        Shared {
            progress: Mutex::new(Progress {
                report,
                finished: None,
            }),
            changed: Condvar::new(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, Progress> {
        lock(&self.progress)
    }

    /// Changes the progress and wakes those waiting on it.
    pub(super) fn update(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }
}

/// The kubelet running in the background against a service, from
/// [`Kubelet::start`](crate::Kubelet::start) or
/// [`Kubelet::run`](crate::Kubelet::run): look at its
/// [`report`](Self::report) so far, [`wait_until`](Self::wait_until) it
/// shows something, [`delete_pod`](Self::delete_pod), then
/// [`stop`](Self::stop) it or let it [`finish`](Self::finish). Dropping it
/// stops it.
pub struct KubeletSession {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Message>,
    thread: Option<JoinHandle<()>>,
    /// The report's clock.
    pub(super) started: Instant,
    log: Option<Lines>,
    slot: Option<Slot>,
}

impl fmt::Debug for KubeletSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeletSession")
            .field("elapsed", &self.elapsed())
            .finish_non_exhaustive()
    }
}

impl KubeletSession {
    /// The session of a driver running on `thread`, started at `started`:
    /// `log` is the test's service's, `slot` the kubelet's own process.
    pub(super) fn new(
        shared: Arc<Shared>,
        commands: mpsc::Sender<Message>,
        thread: JoinHandle<()>,
        started: Instant,
        log: Option<Lines>,
        slot: Option<Slot>,
    ) -> KubeletSession {
        KubeletSession {
            shared,
            commands,
            thread: Some(thread),
            started,
            log,
            slot,
        }
    }

    /// The time since the session started: the clock of the report's
    /// times.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn snapshot(&self, progress: &Progress) -> KubeletReport {
        let mut report = progress.report.clone();
        report.watched = progress.finished.unwrap_or_else(|| self.elapsed());
        report.log_tail = match (&self.log, &self.slot) {
            (Some(log), _) => log.tail(LOG_TAIL),
            (None, Some(slot)) => lock(slot)
                .as_ref()
                .map(|service| service.log_lines().tail(LOG_TAIL))
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        report
    }

    /// What the kubelet would have done so far.
    pub fn report(&self) -> KubeletReport {
        self.snapshot(&self.shared.lock())
    }

    /// Deletes the pod, as `kubectl delete pod` does with its default
    /// grace period: the liveness and startup probes stop (their workers
    /// record a success), readiness goes on being probed until the
    /// container exits, the pod leaves the endpoints (a terminating
    /// endpoint is not ready), and the container is killed with the pod's
    /// `terminationGracePeriodSeconds`, never restarted. With
    /// [`Kubelet::start`](crate::Kubelet::start) the process is the
    /// test's: stop it yourself.
    pub fn delete_pod(&self) {
        let _ = self.commands.send(Message::Delete);
    }

    /// Runs `act` on the process the kubelet runs now (with
    /// [`Kubelet::run`](crate::Kubelet::run); after an exit of its own,
    /// until the next start, the exited one), to drive it or read its log;
    /// `None` between a kill and the next start, or for a session of
    /// [`Kubelet::start`](crate::Kubelet::start).
    /// The kubelet waits meanwhile to look at it: keep `act` short.
    pub fn with_service<R>(&self, act: impl FnOnce(&mut Service) -> R) -> Option<R> {
        let slot = self.slot.as_ref()?;
        let mut service = lock(slot);
        service.as_mut().map(act)
    }

    /// Waits until `condition` holds of the report so far (checked at
    /// every answer and event), up to `deadline`, and returns that report.
    /// When the deadline passes or the session ends first, the error
    /// ([`ErrorKind::TimedOut`]) names `what` was awaited and shows the
    /// timeline. See [`Kubelet::start`](crate::Kubelet::start).
    pub fn wait_until(
        &self,
        what: &str,
        deadline: Duration,
        mut condition: impl FnMut(&KubeletReport) -> bool,
    ) -> Result<KubeletReport, Error> {
        let until = Instant::now() + deadline;
        let mut progress = self.shared.lock();
        loop {
            let report = self.snapshot(&progress);
            if condition(&report) {
                return Ok(report);
            }
            let now = Instant::now();
            let why = if progress.finished.is_some() {
                "the watch ended"
            } else if now >= until {
                "the deadline passed"
            } else {
                progress = self
                    .shared
                    .changed
                    .wait_timeout(progress, until - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            };
            let log_tail = report.log_tail.clone();
            return Err(Error::with_log(
                ErrorKind::TimedOut,
                format!(
                    "{why} ({} ms) before {what}\n{report}",
                    deadline.as_millis()
                ),
                log_tail,
            ));
        }
    }

    fn end(&mut self) {
        let _ = self.commands.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stops the session now and reports.
    pub fn stop(mut self) -> KubeletReport {
        self.end();
        self.report()
    }

    /// Waits until the session's duration has passed and reports.
    pub fn finish(mut self) -> KubeletReport {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.report()
    }
}

impl Drop for KubeletSession {
    fn drop(&mut self) {
        self.end();
        // What the kubelet ran ends with the session.
        if let Some(slot) = &self.slot {
            drop(lock(slot).take());
        }
    }
}
