//! The process-wide lifecycle state that probes read and the runtime API
//! changes. Plain atomics: probes read it on another runtime's thread and
//! must never wait on the application.

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicU8, Ordering};
use std::sync::Mutex;
use std::time::{Duration, Instant};

use once_cell::sync::Lazy;

/// Where the service is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Phase {
    /// Preflight checks and `on_startup` hooks are running.
    Starting,
    /// Start-up finished; the body of `main` is serving.
    Running,
    /// A stop was requested: out of rotation, waiting for traffic to drain.
    Draining,
    /// `on_shutdown` hooks are running.
    Stopping,
}

impl Phase {
    fn from_u8(value: u8) -> Phase {
        match value {
            0 => Phase::Starting,
            1 => Phase::Running,
            2 => Phase::Draining,
            _ => Phase::Stopping,
        }
    }
}

pub(crate) struct State {
    phase: AtomicU8,
    /// `set_ready(false)` in force.
    withdrawn: AtomicBool,
    broken: Mutex<Option<String>>,
    /// Preflight checks and `on_startup` hooks all succeeded.
    startup_finished: AtomicBool,
    /// `/startupz` has passed once, and so passes from now on.
    startup_passed: AtomicBool,
    origin: Instant,
    /// Milliseconds since `origin` of the application runtime's last beat.
    last_beat_ms: AtomicU64,
}

pub(crate) static STATE: Lazy<State> = Lazy::new(|| State {
    phase: AtomicU8::new(Phase::Starting as u8),
    withdrawn: AtomicBool::new(false),
    broken: Mutex::new(None),
    startup_finished: AtomicBool::new(false),
    startup_passed: AtomicBool::new(false),
    origin: Instant::now(),
    last_beat_ms: AtomicU64::new(0),
});

impl State {
    pub(crate) fn phase(&self) -> Phase {
        Phase::from_u8(self.phase.load(Ordering::SeqCst))
    }

    pub(crate) fn set_phase(&self, phase: Phase) {
        self.phase.store(phase as u8, Ordering::SeqCst);
    }

    /// Moves from `from` to `to`, only if the phase is still `from`.
    pub(crate) fn transition(&self, from: Phase, to: Phase) -> bool {
        self.phase
            .compare_exchange(from as u8, to as u8, Ordering::SeqCst, Ordering::SeqCst)
            .is_ok()
    }

    pub(crate) fn finish_startup(&self) {
        self.startup_finished.store(true, Ordering::SeqCst);
    }

    pub(crate) fn startup_finished(&self) -> bool {
        self.startup_finished.load(Ordering::SeqCst)
    }

    pub(crate) fn withdrawn(&self) -> bool {
        self.withdrawn.load(Ordering::SeqCst)
    }

    pub(crate) fn set_withdrawn(&self, withdrawn: bool) {
        self.withdrawn.store(withdrawn, Ordering::SeqCst);
    }

    pub(crate) fn broken(&self) -> Option<String> {
        self.broken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .clone()
    }

    pub(crate) fn mark_broken(&self, reason: String) {
        let mut broken = self
            .broken
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        // The first reason is the root cause; keep it.
        broken.get_or_insert(reason);
    }

    pub(crate) fn startup_passed(&self) -> bool {
        self.startup_passed.load(Ordering::SeqCst)
    }

    pub(crate) fn latch_startup_passed(&self) {
        self.startup_passed.store(true, Ordering::SeqCst);
    }

    /// Called by the heartbeat task on the application runtime.
    pub(crate) fn beat(&self) {
        let now = self.origin.elapsed().as_millis() as u64;
        self.last_beat_ms.store(now, Ordering::SeqCst);
    }

    /// How long the application runtime has gone without a beat.
    pub(crate) fn since_last_beat(&self) -> Duration {
        let now = self.origin.elapsed().as_millis() as u64;
        Duration::from_millis(now.saturating_sub(self.last_beat_ms.load(Ordering::SeqCst)))
    }
}
