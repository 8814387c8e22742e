//! `spawn` is `#[track_caller]`: outside a runtime its panic points at the
//! line that called it, not at lifecycle's own code. (A test binary of its
//! own: it sets the process's panic hook.)

use std::sync::{Arc, Mutex};

#[test]
fn a_spawn_outside_a_runtime_panics_at_the_callers_line() {
    let location = Arc::new(Mutex::new(None));
    let seen = location.clone();
    std::panic::set_hook(Box::new(move |info| {
        *seen.lock().unwrap() = info.location().map(|l| (l.file().to_owned(), l.line()));
    }));
    let line = line!() + 1;
    let panicked = std::panic::catch_unwind(|| lifecycle_runtime::spawn(async {}));
    let _ = std::panic::take_hook();
    assert!(panicked.is_err(), "spawn outside a runtime panics");
    assert_eq!(
        location.lock().unwrap().clone(),
        Some((file!().to_owned(), line)),
        "the panic points at the caller"
    );
}
