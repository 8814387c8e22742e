//! The one lifecycle state: the phase machine, readiness withdrawal, the
//! broken reason, start-up completion, the shutdown tokens, the task
//! tracker and the application runtime's heartbeat.
//!
//! The probe evaluator, the signal watcher and the shutdown sequence each
//! receive a [`Lifecycle`] by reference; the public free functions of the
//! crate are accessors of the one process-wide instance. Everything here is
//! atomics or short critical sections: probes read it from their own
//! runtime's thread and must never wait on the application.

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use once_cell::sync::{Lazy, OnceCell};
use tokio_util::sync::{CancellationToken, WaitForCancellationFuture};
use tokio_util::task::task_tracker::TaskTrackerToken;
use tokio_util::task::TaskTracker;

use crate::address_file::AddressFile;
use crate::net::Connections;

/// Where the service is in its life.
///
/// The phase only moves forward: `Starting → Running → Draining →
/// Stopping`, or `Starting → Draining` when a stop is requested during
/// start-up.
///
/// ```
/// use lifecycle_runtime::Phase;
///
/// // What a handler of the application might report.
/// fn describe(phase: Phase) -> &'static str {
///     match phase {
///         Phase::Running => "serving",
///         Phase::Draining | Phase::Stopping => "on my way out",
///         _ => "warming up",
///     }
/// }
/// assert_eq!(describe(lifecycle_runtime::phase()), "warming up");
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
#[repr(u8)]
pub enum Phase {
    /// Preflight checks and `on_startup` hooks are running.
    Starting,
    /// Start-up finished; the body of `main` is serving.
    Running,
    /// A stop was requested: out of rotation, waiting for traffic to drain
    /// and for the body of `main` to return.
    Draining,
    /// `on_shutdown` hooks are running.
    Stopping,
}

impl Phase {
    pub(crate) const ALL: [Phase; 4] = [
        Phase::Starting,
        Phase::Running,
        Phase::Draining,
        Phase::Stopping,
    ];

    /// The phase's name in lower case: `starting`, `running`, `draining`,
    /// `stopping`.
    pub fn as_str(self) -> &'static str {
        match self {
            Phase::Starting => "starting",
            Phase::Running => "running",
            Phase::Draining => "draining",
            Phase::Stopping => "stopping",
        }
    }

    /// Whether the machine may move from `self` to `next`.
    fn may_become(self, next: Phase) -> bool {
        matches!(
            (self, next),
            (Phase::Starting, Phase::Running)
                | (Phase::Starting, Phase::Draining)
                | (Phase::Running, Phase::Draining)
                | (Phase::Draining, Phase::Stopping)
        )
    }

    fn from_index(index: u8) -> Phase {
        Phase::ALL[usize::from(index)]
    }

    fn index(self) -> u8 {
        self as u8
    }
}

impl fmt::Display for Phase {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A transition the phase machine refused: the phase was `from`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Refused {
    pub(crate) from: Phase,
    pub(crate) to: Phase,
}

/// The lifecycle of one service.
pub(crate) struct Lifecycle {
    phase: AtomicU8,
    /// The reasons of the `out_of_rotation` guards held now, oldest first,
    /// each with its guard's number.
    out_of_rotation: Mutex<Vec<(u64, String)>>,
    /// The number of the next `out_of_rotation` guard.
    next_guard: AtomicU64,
    /// The first reason given to `mark_broken`: the root cause.
    broken: OnceCell<String>,
    /// Preflight checks and `on_startup` hooks all succeeded and the phase
    /// became `Running`.
    started: AtomicBool,
    /// `/startupz` has passed once, and so passes from now on.
    startup_passed: AtomicBool,
    /// A stop was requested: by a signal, because start-up failed, or
    /// because `main` returned. Starts the shutdown deadline.
    stop_requested: CancellationToken,
    /// The application must stop serving (after the drain delay): behind
    /// `shutdown_signal()` and `shutdown_token()`.
    shutdown: CancellationToken,
    /// Tasks from `lifecycle_runtime::spawn`, awaited before the hooks.
    tracker: TaskTracker,
    heartbeat: Heartbeat,
    /// What the stop is waiting for right now, for the deadline's message.
    running: RunningList,
    /// Preflight checks and `on_startup` hooks still running: plain `fn`s
    /// on the blocking pool, `async fn`s an abort has not reached yet.
    startup_calls: StartupCalls,
    /// Connections accepted through `net::TcpListener`, until they close.
    connections: Arc<Connections>,
    /// The address file: the probe server's address and the application's.
    addresses: AddressFile,
    /// When the stop was requested: the shutdown deadline counts from here.
    stop_requested_at: OnceCell<Instant>,
    /// When `shutdown_signal()` completed: the connection drain counts
    /// from here.
    shutdown_signalled_at: OnceCell<Instant>,
    /// The version of what probes answer from: bumped by every change of
    /// the phase, the start-up latch, the `out_of_rotation` guards,
    /// `mark_broken` and background checks' results. gRPC `Watch` streams
    /// wake on it instead of polling.
    probe_inputs_version: tokio::sync::watch::Sender<u64>,
}

/// What the stop waits for while connections accepted through
/// `net::TcpListener` are open; [`Lifecycle::still_running`] adds how many.
pub(crate) const OPEN_CONNECTIONS: &str = "connections accepted through lifecycle's listener";

static GLOBAL: Lazy<Arc<Lifecycle>> = Lazy::new(|| Arc::new(Lifecycle::new()));

impl Lifecycle {
    pub(crate) fn new() -> Lifecycle {
        Lifecycle {
            phase: AtomicU8::new(Phase::Starting.index()),
            out_of_rotation: Mutex::new(Vec::new()),
            next_guard: AtomicU64::new(0),
            broken: OnceCell::new(),
            started: AtomicBool::new(false),
            startup_passed: AtomicBool::new(false),
            stop_requested: CancellationToken::new(),
            shutdown: CancellationToken::new(),
            tracker: TaskTracker::new(),
            heartbeat: Heartbeat::new(),
            running: RunningList::default(),
            startup_calls: StartupCalls::default(),
            probe_inputs_version: tokio::sync::watch::Sender::new(0),
            connections: Arc::default(),
            addresses: AddressFile::default(),
            stop_requested_at: OnceCell::new(),
            shutdown_signalled_at: OnceCell::new(),
        }
    }

    /// Something probes answer from changed: bumps the probe inputs'
    /// version, which wakes every [`watch_probe_inputs`] receiver.
    ///
    /// [`watch_probe_inputs`]: Lifecycle::watch_probe_inputs
    pub(crate) fn note_probe_input_change(&self) {
        self.probe_inputs_version
            .send_modify(|version| *version = version.wrapping_add(1));
    }

    /// The process-wide instance that `#[service_main]` runs and the
    /// crate's free functions reach.
    pub(crate) fn global() -> &'static Arc<Lifecycle> {
        &GLOBAL
    }

    // The phase machine.

    pub(crate) fn phase(&self) -> Phase {
        Phase::from_index(self.phase.load(Ordering::SeqCst))
    }

    /// Moves to `to` if the machine allows it from the current phase, and
    /// returns the phase it left. The named transitions below are the ones
    /// the crate takes; they log the move once every state change is done.
    fn advance(&self, to: Phase) -> Result<Phase, Refused> {
        let mut current = self.phase.load(Ordering::SeqCst);
        loop {
            let from = Phase::from_index(current);
            if !from.may_become(to) {
                return Err(Refused { from, to });
            }
            match self.phase.compare_exchange(
                current,
                to.index(),
                Ordering::SeqCst,
                Ordering::SeqCst,
            ) {
                Ok(_) => return Ok(from),
                Err(actual) => current = actual,
            }
        }
    }

    /// Start-up succeeded: `Starting → Running`. Refused when a stop was
    /// requested first (the phase is `Draining`): start-up is then
    /// abandoned, and `/startupz` never passes.
    pub(crate) fn finish_startup(&self) -> Result<(), Refused> {
        let from = self.advance(Phase::Running)?;
        self.started.store(true, Ordering::SeqCst);
        self.note_probe_input_change();
        tracing::debug!("phase {from} → {}", Phase::Running);
        Ok(())
    }

    /// Whether start-up finished and the service ran.
    pub(crate) fn started(&self) -> bool {
        self.started.load(Ordering::SeqCst)
    }

    /// Requests a stop: the phase becomes `Draining` at once (out of
    /// rotation) if it was `Starting` or `Running`, and the shutdown
    /// deadline starts. The one way to cancel the stop token, so that the
    /// phase and the token never disagree.
    pub(crate) fn request_stop(&self) {
        // Draining already (or Stopping) is what a stop asks for.
        let moved = self.advance(Phase::Draining);
        let _ = self.stop_requested_at.set(Instant::now());
        self.stop_requested.cancel();
        self.note_probe_input_change();
        // Logged after the change, which never waits on a log line.
        if let Ok(from) = moved {
            tracing::debug!("phase {from} → {}", Phase::Draining);
        }
    }

    /// Completes when a stop is requested.
    pub(crate) fn stop_requested(&self) -> WaitForCancellationFuture<'_> {
        self.stop_requested.cancelled()
    }

    /// A token cancelled when a stop is requested, for tasks that outlive
    /// a borrow (cancelling it stops only its holder).
    pub(crate) fn stop_requested_token(&self) -> CancellationToken {
        self.stop_requested.child_token()
    }

    /// The drain is over: `shutdown_signal()` completes. Requests the stop
    /// too, when nothing had.
    pub(crate) fn signal_shutdown(&self) {
        self.request_stop();
        let _ = self.shutdown_signalled_at.set(Instant::now());
        self.shutdown.cancel();
    }

    /// When the stop was requested, if it was.
    pub(crate) fn stop_requested_at(&self) -> Option<Instant> {
        self.stop_requested_at.get().copied()
    }

    /// When `shutdown_signal()` completed, if it did.
    pub(crate) fn shutdown_signalled_at(&self) -> Option<Instant> {
        self.shutdown_signalled_at.get().copied()
    }

    /// Cancelled when the application must stop serving: when
    /// `shutdown_signal()` completes.
    pub(crate) fn shutdown_token(&self) -> &CancellationToken {
        &self.shutdown
    }

    /// `Draining → Stopping`: the `on_shutdown` hooks run.
    pub(crate) fn begin_stopping(&self) -> Result<(), Refused> {
        let from = self.advance(Phase::Stopping)?;
        self.note_probe_input_change();
        tracing::debug!("phase {from} → {}", Phase::Stopping);
        Ok(())
    }

    // Readiness and liveness by hand.

    /// Takes the instance out of rotation for `reason` until
    /// [`back_in_rotation`](Lifecycle::back_in_rotation) is called with the
    /// number returned.
    pub(crate) fn out_of_rotation(&self, reason: String) -> u64 {
        let guard = self.next_guard.fetch_add(1, Ordering::SeqCst);
        self.out_of_rotation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push((guard, reason));
        self.note_probe_input_change();
        guard
    }

    pub(crate) fn back_in_rotation(&self, guard: u64) {
        self.out_of_rotation
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|(held, _)| *held != guard);
        self.note_probe_input_change();
    }

    /// Why the instance is out of rotation by hand, the reasons of the
    /// guards held, oldest first; `None` when none is.
    pub(crate) fn out_of_rotation_reasons(&self) -> Option<String> {
        let held = self
            .out_of_rotation
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        (!held.is_empty()).then(|| {
            let reasons: Vec<&str> = held.iter().map(|(_, reason)| reason.as_str()).collect();
            reasons.join("; ")
        })
    }

    /// Keeps the first reason: it is the root cause.
    pub(crate) fn mark_broken(&self, reason: String) {
        let _ = self.broken.set(reason);
        self.note_probe_input_change();
    }

    pub(crate) fn broken(&self) -> Option<&str> {
        self.broken.get().map(String::as_str)
    }

    // The /startupz latch.

    pub(crate) fn startup_passed(&self) -> bool {
        self.startup_passed.load(Ordering::SeqCst)
    }

    pub(crate) fn latch_startup_passed(&self) {
        // Every passing /startupz latches: only the first is a change.
        if !self.startup_passed.swap(true, Ordering::SeqCst) {
            self.note_probe_input_change();
        }
    }

    // Tracked tasks.

    pub(crate) fn tracker(&self) -> &TaskTracker {
        &self.tracker
    }

    pub(crate) fn connections(&self) -> &Arc<Connections> {
        &self.connections
    }

    pub(crate) fn addresses(&self) -> &AddressFile {
        &self.addresses
    }

    pub(crate) fn heartbeat(&self) -> &Heartbeat {
        &self.heartbeat
    }

    /// Preflight checks and `on_startup` hooks that have not ended yet.
    pub(crate) fn startup_calls(&self) -> &StartupCalls {
        &self.startup_calls
    }

    // What the stop is waiting for.

    /// Records `what` as running until the guard is dropped.
    pub(crate) fn enter(&self, what: String) -> RunningEntry {
        self.running.enter(what)
    }

    /// What is still running, for the message of a missed deadline.
    pub(crate) fn still_running(&self) -> String {
        let mut running: Vec<String> = self
            .running
            .entries()
            .into_iter()
            .map(|what| match what.as_str() {
                // Counted now, not when the wait began.
                OPEN_CONNECTIONS => format!("{what} ({} open)", self.connections.open()),
                _ => what,
            })
            .collect();
        let tasks = self.tracker.len();
        if tasks > 0 && !running.iter().any(|r| r.starts_with("tracked tasks")) {
            running.push(format!("{tasks} tracked task(s)"));
        }
        if running.is_empty() {
            "nothing recorded (the process was exiting)".to_owned()
        } else {
            running.join(", ")
        }
    }
}

/// What is running now, in the order it started: each entry stays until
/// the [`RunningEntry`] guard that [`enter`](RunningList::enter) returned is
/// dropped.
#[derive(Default)]
pub(crate) struct RunningList {
    entries: Arc<Mutex<Vec<String>>>,
}

impl RunningList {
    /// Records `what` as running until the guard is dropped.
    pub(crate) fn enter(&self, what: String) -> RunningEntry {
        self.enter_tracked(what, None)
    }

    /// As [`enter`](RunningList::enter); the guard also holds `tracked`.
    fn enter_tracked(&self, what: String, tracked: Option<TaskTrackerToken>) -> RunningEntry {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(what.clone());
        RunningEntry {
            entries: self.entries.clone(),
            what,
            _tracked: tracked,
        }
    }

    /// What is running now, in the order it started.
    pub(crate) fn entries(&self) -> Vec<String> {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// One entry of a [`RunningList`]; removes it when dropped. It owns what
/// it needs, so that it can move into a call on another thread.
pub(crate) struct RunningEntry {
    entries: Arc<Mutex<Vec<String>>>,
    what: String,
    /// Keeps a [`TaskTracker`] waiting until the guard is dropped.
    _tracked: Option<TaskTrackerToken>,
}

impl Drop for RunningEntry {
    fn drop(&mut self) {
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = entries.iter().position(|r| *r == self.what) {
            entries.remove(index);
        }
    }
}

/// Start-up calls that may outlive start-up: preflight checks and
/// `on_startup` hooks, plain `fn`s on the blocking pool, which nothing can
/// cancel, and `async fn`s, which an abort stops only at their next
/// `.await`. A start-up abandoned on SIGTERM, or whose hook timed out,
/// leaves them running, and the `on_shutdown` hooks must wait for them
/// (they may release what such a call is still acquiring).
#[derive(Default)]
pub(crate) struct StartupCalls {
    tracker: TaskTracker,
    running: RunningList,
}

impl StartupCalls {
    /// Records `what` as running until the guard, moved into the call, is
    /// dropped: when the function has really returned.
    pub(crate) fn enter(&self, what: String) -> RunningEntry {
        self.running.enter_tracked(what, Some(self.tracker.token()))
    }

    /// What is still running, in the order it started.
    pub(crate) fn running(&self) -> Vec<String> {
        self.running.entries()
    }

    /// Until every recorded call has returned.
    pub(crate) async fn returned(&self) {
        self.tracker.close();
        self.tracker.wait().await;
    }
}

/// The application runtime's heartbeat: a task there records each tick;
/// when every worker is blocked it stops, and the `runtime` check sees it.
pub(crate) struct Heartbeat {
    origin: Instant,
    /// Milliseconds since `origin` of the last beat.
    last_beat_ms: AtomicU64,
}

impl Heartbeat {
    fn new() -> Heartbeat {
        Heartbeat {
            origin: Instant::now(),
            last_beat_ms: AtomicU64::new(0),
        }
    }

    pub(crate) fn beat(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_beat_ms.store(now, Ordering::SeqCst);
    }

    /// How long the application runtime has gone without a beat.
    pub(crate) fn silence(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_beat_ms.load(Ordering::SeqCst)))
    }
}

#[cfg(feature = "grpc")]
impl Lifecycle {
    /// A receiver woken by each
    /// [`note_probe_input_change`](Lifecycle::note_probe_input_change).
    pub(crate) fn watch_probe_inputs(&self) -> tokio::sync::watch::Receiver<u64> {
        self.probe_inputs_version.subscribe()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_phase_only_moves_forward() {
        for from in Phase::ALL {
            for to in Phase::ALL {
                let forward = from.index() < to.index();
                let skips_running = (from, to) == (Phase::Starting, Phase::Draining);
                let skips_more = to.index() > from.index() + 1 && !skips_running;
                assert_eq!(from.may_become(to), forward && !skips_more, "{from} → {to}");
            }
        }
    }

    #[test]
    fn a_stop_during_start_up_drains_at_once_and_start_up_cannot_finish() {
        let lifecycle = Lifecycle::new();
        lifecycle.request_stop();
        assert_eq!(lifecycle.phase(), Phase::Draining);
        assert!(lifecycle.stop_requested_token().is_cancelled());
        assert_eq!(
            lifecycle.finish_startup(),
            Err(Refused {
                from: Phase::Draining,
                to: Phase::Running
            })
        );
        assert!(!lifecycle.started());
        lifecycle.begin_stopping().unwrap();
        assert_eq!(lifecycle.phase(), Phase::Stopping);
        assert!(
            lifecycle.advance(Phase::Draining).is_err(),
            "never backwards"
        );
    }

    #[test]
    fn a_stop_while_running_drains_then_stops() {
        let lifecycle = Lifecycle::new();
        assert!(lifecycle.begin_stopping().is_err(), "no skipping");
        lifecycle.finish_startup().unwrap();
        assert!(lifecycle.started());
        assert_eq!(lifecycle.phase(), Phase::Running);
        assert!(!lifecycle.shutdown_token().is_cancelled());
        lifecycle.signal_shutdown();
        assert_eq!(lifecycle.phase(), Phase::Draining);
        assert!(lifecycle.stop_requested_token().is_cancelled());
        assert!(lifecycle.shutdown_token().is_cancelled());
        lifecycle.begin_stopping().unwrap();
        assert_eq!(lifecycle.phase(), Phase::Stopping);
    }

    #[test]
    fn the_first_broken_reason_is_kept() {
        let lifecycle = Lifecycle::new();
        assert_eq!(lifecycle.broken(), None);
        lifecycle.mark_broken("pool poisoned".into());
        lifecycle.mark_broken("later symptom".into());
        assert_eq!(lifecycle.broken(), Some("pool poisoned"));
    }

    #[test]
    fn the_running_list_names_what_the_stop_waits_for() {
        let lifecycle = Lifecycle::new();
        let hook = lifecycle.enter("on_shutdown hook \"flush\"".into());
        assert_eq!(lifecycle.still_running(), "on_shutdown hook \"flush\"");
        drop(hook);
        assert!(lifecycle.still_running().starts_with("nothing recorded"));
    }

    #[tokio::test]
    async fn startup_calls_are_awaited_until_each_has_returned() {
        let calls = StartupCalls::default();
        let call = calls.enter("on_startup hook \"load\"".into());
        assert_eq!(calls.running(), ["on_startup hook \"load\""]);
        let returned = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(50));
            drop(call);
        });
        tokio::time::timeout(Duration::from_secs(5), calls.returned())
            .await
            .expect("returned() completes once the call is dropped");
        assert!(calls.running().is_empty());
        returned.join().unwrap();
    }
}
