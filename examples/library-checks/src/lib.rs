//! A library crate of the user's own: the checks and hooks it declares are
//! registered in every binary that links it, with no call from `main`.
//!
//! A binary links a crate only if it names it; `use library_checks as _;` is
//! enough when nothing else of it is used.

use std::sync::atomic::{AtomicBool, Ordering};

use lifecycle_runtime::{liveness, on_startup, Health};

static CONNECTED: AtomicBool = AtomicBool::new(false);

/// Runs before the binary's own hooks (lower `order` first).
#[on_startup(order = -10)]
async fn connect_upstream() -> Result<(), std::io::Error> {
    CONNECTED.store(true, Ordering::SeqCst);
    Ok(())
}

/// Reports whether this crate's start-up hook has run.
#[liveness]
fn library_worker() -> Health {
    Health::up().with_detail("connected", CONNECTED.load(Ordering::SeqCst))
}
