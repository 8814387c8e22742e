//! Starting and stopping a service binary as the kubelet runs it: started
//! on probe port 0, probed from outside, stopped with SIGTERM and a grace
//! period (on Unix; on Windows, killed).
//!
//! [`Service::builder`] sets up the program, its arguments and variables
//! ([`ServiceBuilder`]); [`ServiceBuilder::start`] starts it and waits for
//! `/startupz`. A `Stop` says how to stop it, and the `StopReport` what
//! the stop showed (Unix only); an [`Exit`] is how its process ended.

mod builder;
mod exit;
mod output;
mod probes;
mod process;
mod scratch;
// The stop is a signal: Unix only.
#[cfg(unix)]
mod stop;

pub use builder::ServiceBuilder;
pub use exit::Exit;
pub(crate) use output::{tail, Lines, LOG_TAIL};
pub use process::Service;
pub(crate) use scratch::Scratch;
#[cfg(unix)]
pub use stop::{Stop, StopReport};
