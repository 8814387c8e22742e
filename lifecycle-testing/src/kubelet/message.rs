//! What the kubelet's driver hears: the probes' answers, the session's
//! commands, the ends of kills and the starts of containers.

use std::net::SocketAddr;
use std::time::Instant;

use super::manifest::ProbeKind;
use super::report::Kill;
use crate::probe::ProbeAnswer;

/// A message to the driver.
pub(super) enum Message {
    Answer {
        kind: ProbeKind,
        container: u32,
        at: Instant,
        answer: ProbeAnswer,
    },
    /// The test deleted the pod.
    Delete,
    /// A kill ended: the process has exited.
    Killed {
        at: Instant,
        kill: Kill,
    },
    /// A new process was started (its probe address), or could not be.
    Spawned {
        at: Instant,
        addr: Result<SocketAddr, String>,
    },
    Stop,
}
