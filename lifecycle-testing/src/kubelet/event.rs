//! What the kubelet would have done: the kinds of the report's events,
//! which the prober decides and the report records.

use std::fmt;

#[cfg(doc)]
use crate::probe::ProbeAnswer;

/// Something the kubelet would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The container started: its startup probe passed (at once when it
    /// has none). Liveness and readiness probes begin.
    Started,
    /// The startup probe failed `failureThreshold` times in a row: the
    /// container would be killed and restarted.
    StartupBudgetExceeded,
    /// The liveness probe failed `failureThreshold` times in a row: the
    /// container would be killed and restarted.
    LivenessRestart,
    /// The pod became ready: it joined the Service's endpoints.
    JoinedEndpoints,
    /// The pod stopped being ready (readiness failed, its container
    /// exited, or the pod was deleted): it left the endpoints.
    LeftEndpoints,
    /// The pod was deleted
    /// ([`KubeletSession::delete_pod`](crate::kubelet::KubeletSession::delete_pod)):
    /// liveness and startup stop, readiness goes on, the container is
    /// killed.
    PodDeleted,
    /// A kill ended: the container's process exited, after its `preStop`
    /// hook, the stop signal and perhaps SIGKILL (the
    /// [`Kill`](crate::kubelet::Kill) in
    /// [`KubeletReport::kills`](crate::kubelet::KubeletReport::kills)).
    Killed,
    /// The container's process exited by itself.
    Exited,
    /// The restart waits for its back-off (`CrashLoopBackOff`).
    BackOff,
    /// A new container started, after a kill or an exit.
    Restarted,
    /// An HTTP probe passed with a warning: a redirect it did not follow
    /// ([`ProbeAnswer::warning`]).
    ProbeWarning,
}

impl EventKind {
    /// Whether the container would be killed and restarted.
    pub fn restarts(self) -> bool {
        matches!(
            self,
            EventKind::StartupBudgetExceeded | EventKind::LivenessRestart
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventKind::Started => "started",
            EventKind::StartupBudgetExceeded => {
                "start-up over its budget: the container would be restarted"
            }
            EventKind::LivenessRestart => "liveness failed: the container would be restarted",
            EventKind::JoinedEndpoints => "joined the endpoints",
            EventKind::LeftEndpoints => "left the endpoints",
            EventKind::PodDeleted => "the pod was deleted",
            EventKind::Killed => "the container was killed",
            EventKind::Exited => "the container exited by itself",
            EventKind::BackOff => "back-off restarting the container",
            EventKind::Restarted => "the container was restarted",
            EventKind::ProbeWarning => "probe warning",
        })
    }
}
