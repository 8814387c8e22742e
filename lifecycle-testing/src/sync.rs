//! Locks that outlive a panic: a test that panics while it holds one (a
//! failed assertion in a closure) leaves the data as it was, and the kit
//! still reads it to report.

use std::sync::{Mutex, MutexGuard};

/// Locks `mutex`, poisoned or not.
pub(crate) fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}
