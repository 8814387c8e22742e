//! A load's request: the closure a client calls to send one, and the
//! record of what became of it.

use std::time::{Duration, Instant};

use crate::error::Error;

/// Sends one request and says what became of it.
pub(super) type Request = dyn Fn() -> Result<(), Error> + Send + Sync;

/// One request's fate.
#[derive(Debug, Clone)]
pub(super) struct Record {
    pub(super) sent: Instant,
    pub(super) took: Duration,
    /// `None`: still running when the load was given up.
    pub(super) outcome: Option<Result<(), Error>>,
}
