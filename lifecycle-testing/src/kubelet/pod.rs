//! The pod's container as the kubelet reaches it: the test's process,
//! only probed, or the kubelet's own, which it kills and starts again.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use crate::service::{Service, ServiceBuilder};

/// Who runs the process.
pub(super) enum Target {
    /// The test's service: probed, never touched.
    Borrowed { addr: SocketAddr, spawned: Instant },
    /// The kubelet's own: killed and started again from the builder.
    Owned {
        builder: ServiceBuilder,
        slot: Slot,
        /// The first container's start and probe address.
        first: (Instant, SocketAddr),
    },
}

/// The process the kubelet runs now, if one runs.
pub(super) type Slot = Arc<Mutex<Option<Service>>>;
