//! The connection table: which connections are open and which are
//! answering a request right now, so that a flood cannot keep the
//! kubelet's probe out.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use tokio_util::sync::CancellationToken;

/// Sockets the probe server keeps open at most.
const MAX_CONNECTIONS: usize = 512;

/// The open connections, oldest first. At the cap, the oldest connection
/// that is not answering a probe right now (idle, or still sending its
/// headers) is closed to make room, or failing that the oldest of all: a
/// new connection, as the kubelet opens for each probe, always gets in,
/// and the count of sockets stays bounded.
pub(super) struct ConnectionTable {
    open: Mutex<VecDeque<Slot>>,
    next_id: AtomicU64,
}

/// A connection's place in the table.
struct Slot {
    id: u64,
    /// Requests being answered (HTTP/2 answers several at once).
    busy: Arc<AtomicUsize>,
    close: CancellationToken,
}

/// A connection let in by [`ConnectionTable::admit`].
pub(super) struct Admitted {
    /// Its key for [`ConnectionTable::release`].
    pub(super) id: u64,
    /// Counts the requests it is answering, through [`Busy`].
    pub(super) busy: Arc<AtomicUsize>,
    /// Cancelled when it is evicted to make room.
    pub(super) close: CancellationToken,
}

impl ConnectionTable {
    pub(super) fn new() -> ConnectionTable {
        ConnectionTable {
            open: Mutex::new(VecDeque::new()),
            next_id: AtomicU64::new(0),
        }
    }

    /// A slot for a new connection, closing an old one at the cap.
    pub(super) fn admit(&self) -> Admitted {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if open.len() >= MAX_CONNECTIONS {
            let oldest_idle = open
                .iter()
                .position(|slot| slot.busy.load(Ordering::SeqCst) == 0)
                .unwrap_or(0);
            if let Some(evicted) = open.remove(oldest_idle) {
                evicted.close.cancel();
            }
        }
        let slot = Slot {
            id: self.next_id.fetch_add(1, Ordering::Relaxed),
            busy: Arc::new(AtomicUsize::new(0)),
            close: CancellationToken::new(),
        };
        let admitted = Admitted {
            id: slot.id,
            busy: slot.busy.clone(),
            close: slot.close.clone(),
        };
        open.push_back(slot);
        admitted
    }

    /// Frees the slot of connection `id`, which has ended.
    pub(super) fn release(&self, id: u64) {
        let mut open = self.open.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = open.iter().position(|slot| slot.id == id) {
            open.remove(index);
        }
    }
}

/// Marks a connection busy while it answers a request.
pub(super) struct Busy(Arc<AtomicUsize>);

impl Busy {
    pub(super) fn enter(count: &Arc<AtomicUsize>) -> Busy {
        count.fetch_add(1, Ordering::SeqCst);
        Busy(count.clone())
    }
}

impl Drop for Busy {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::SeqCst);
    }
}
