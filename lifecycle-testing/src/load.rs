//! A steady load across a stop: does a graceful stop lose requests?
//!
//! [`Load`] sends requests from a few client threads while the service is
//! stopped, and [`LoadReport`] says what became of each one relative to the
//! signal and to the exit: each request that got no good answer is a
//! [`FailedRequest`], sent at a [`SignalOffset`].
//!
//! Unix only, as the stop it runs across is ([`Service::stop`] sends a
//! signal); what a request's closure uses ([`Error`],
//! [`http_get`](crate::http_get), [`HttpRequest`](crate::HttpRequest)) is
//! on every system.

mod clients;
mod report;
mod request;
#[cfg(test)]
mod tests;

use std::fmt;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::error::Error;
#[cfg(doc)]
use crate::error::ErrorKind;
use crate::service::{tail, Service, Stop, StopReport, LOG_TAIL};
use clients::Running;
use report::Moments;
pub use report::{FailedRequest, LoadReport, SignalOffset};
use request::Request;

/// How long [`Load::across_stop`] waits, past its warm-up, for a first
/// answer before it stops the service anyway.
const FIRST_ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// How long the load goes on after the exit, at most, to see one request
/// meet the closed port.
const AFTER_EXIT: Duration = Duration::from_secs(1);

/// A steady load of requests from a few client threads, kept running
/// across a stop of the service: the proof that a graceful stop loses
/// nothing.
///
/// [`Load::new`] takes a closure that sends one request to the
/// application and says what became of it: `Ok` for an answer it accepts,
/// an error otherwise. Its error is anything that converts into an
/// [`Error`] (an [`io::Error`](std::io::Error) does, so `?` works on
/// `std::net`; [`Error::from_error`] classifies another client's), and the
/// error's [`ErrorKind`] is how the report counts the request. The closure
/// runs on several threads at once, so it must be `Send + Sync`, and it
/// must bound its own request with a time-out.
///
/// Then [`across_stop`](Self::across_stop) runs the load, stops the
/// service in the middle of it, and reports. What the load does is set
/// with these methods; unset, each keeps its default:
///
/// | setting | default | what it is |
/// | --- | --- | --- |
/// | [`clients`](Self::clients) | 4 | client threads, each sending one request at a time |
/// | [`rate`](Self::rate) | none: back to back | requests per second of all the clients together |
/// | [`warmup`](Self::warmup) | 200 ms | how long the load runs before the stop (and until a first answer) |
/// | [`routed_for`](Self::routed_for) | none: every request sent before the exit is judged | how long after the signal a load balancer still routes to the pod |
/// | [`finish_timeout`](Self::finish_timeout) | 10 s | how long the requests in flight at the exit may take to end |
///
/// ```no_run
/// use std::time::Duration;
///
/// use lifecycle_testing::{http_get, Error, Load, Service, Stop};
///
/// # fn main() -> Result<(), lifecycle_testing::Error> {
/// # let binary = "my-service";
/// let mut service = Service::builder(binary)
///     .env("APP_ADDR", "127.0.0.1:0")
///     .env("LIFECYCLE_DRAIN_DELAY_MS", "500")
///     .start()?;
/// // Bound through lifecycle_runtime::net::TcpListener, on port 0.
/// let app = service.app_addr()?;
///
/// let load = Load::new(move || match http_get(app, "/", Duration::from_secs(2))? {
///     (200, _) => Ok(()),
///     (status, _) => Err(Error::unexpected_status(status)),
/// })
/// .clients(4)
/// .rate(200)
/// // The load balancer stops routing to the pod well within the drain delay.
/// .routed_for(Duration::from_millis(250));
/// let (report, stopped) = load.across_stop(&mut service, Stop::grace(Duration::from_secs(10)));
/// report.assert_nothing_lost();
/// assert!(report.answered_after_signal > 0, "the drain delay served: {report}");
/// assert_eq!(stopped.exit.code, Some(0));
/// # Ok(())
/// # }
/// ```
#[derive(Clone)]
pub struct Load {
    request: Arc<Request>,
    clients: usize,
    rate: Option<u32>,
    warmup: Duration,
    routed_for: Option<Duration>,
    finish_timeout: Duration,
}

impl fmt::Debug for Load {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Load")
            .field("clients", &self.clients)
            .field("rate", &self.rate)
            .field("warmup", &self.warmup)
            .field("routed_for", &self.routed_for)
            .field("finish_timeout", &self.finish_timeout)
            .finish_non_exhaustive()
    }
}

impl Load {
    /// A load of `request`s, each a call of the closure (see [`Load`]),
    /// with the default settings: 4 clients sending back to back, a 200 ms
    /// warm-up, every request sent before the exit judged, 10 s for those
    /// in flight to end.
    pub fn new<F, T, E>(request: F) -> Load
    where
        F: Fn() -> Result<T, E> + Send + Sync + 'static,
        E: Into<Error>,
    {
        Load {
            request: Arc::new(move || request().map(drop).map_err(Into::into)),
            clients: 4,
            rate: None,
            warmup: Duration::from_millis(200),
            routed_for: None,
            finish_timeout: Duration::from_secs(10),
        }
    }

    /// How many client threads send requests, each one at a time (4 by
    /// default).
    ///
    /// # Panics
    /// When `clients` is 0.
    #[must_use]
    pub fn clients(mut self, clients: usize) -> Load {
        assert!(clients > 0, "a load needs at least one client");
        self.clients = clients;
        self
    }

    /// How many requests per second all the clients send together, evenly
    /// spaced; `None` (the default): each client sends its next request as
    /// soon as the last one ended. A client whose request outlasts its turn
    /// sends the next one at once, without making up for the turns it
    /// missed.
    ///
    /// # Panics
    /// When the rate is 0.
    #[must_use]
    pub fn rate(mut self, per_second: impl Into<Option<u32>>) -> Load {
        let rate = per_second.into();
        assert!(
            rate != Some(0),
            "a rate of 0 requests per second sends nothing"
        );
        self.rate = rate;
        self
    }

    /// How long the load runs before the service is stopped (200 ms by
    /// default), so that the signal lands in a steady load: the stop also
    /// waits for a first answer, up to 10 s more, since a load that was
    /// never answered proves nothing.
    #[must_use]
    pub fn warmup(mut self, warmup: Duration) -> Load {
        self.warmup = warmup;
        self
    }

    /// Judges the requests sent until `lag` after the signal, as a load
    /// balancer routes to the pod until it has seen its readiness fail:
    /// within that window the service must answer every request (a
    /// refusal, even after the exit, is lost too), and the load runs to its
    /// end; the later requests are still sent, and counted (as
    /// [`unrouted`](LoadReport::unrouted) or
    /// [`after_exit`](LoadReport::after_exit)), but not lost, unless one is
    /// reset while the service still answered requests sent after it (the
    /// service dropped it). Without it (the default), every request sent
    /// before the exit is judged, and a refusal after the signal is not
    /// lost.
    ///
    /// A server that closes its listener while requests keep coming resets
    /// the connections waiting in its accept queue, whatever it does: in
    /// Kubernetes the drain delay keeps the listener open until traffic has
    /// stopped. With a continuous load, set `lag` below the drain delay.
    #[must_use]
    pub fn routed_for(mut self, lag: Duration) -> Load {
        self.routed_for = Some(lag);
        self
    }

    /// How long, once the process has exited, the load waits for the
    /// requests still in flight (10 s by default); those still running are
    /// counted as [`unfinished`](LoadReport::unfinished), and the threads
    /// sending them are left behind.
    #[must_use]
    pub fn finish_timeout(mut self, timeout: Duration) -> Load {
        self.finish_timeout = timeout;
        self
    }

    /// Runs the load across a stop of `service`, and reports what became of
    /// every request and how the service stopped.
    ///
    /// - `service`: the running service; the load's closure should talk to
    ///   it ([`Service::app_addr`]).
    /// - `stop`: how to stop it, as for [`Service::stop`]:
    ///   `Stop::grace(Duration::from_secs(30))` is SIGTERM, then SIGKILL
    ///   30 s later.
    ///
    /// It starts the clients, waits the [`warmup`](Self::warmup) and until
    /// a request was answered (giving up on that 10 s later), stops the
    /// service, goes on through the routing window if there is one
    /// ([`routed_for`](Self::routed_for)) and until a request was sent
    /// after the exit (at most a second more), then stops the clients,
    /// waits for the requests in flight ([`finish_timeout`](Self::finish_timeout))
    /// and reports.
    pub fn across_stop(&self, service: &mut Service, stop: Stop) -> (LoadReport, StopReport) {
        let running = Running::start(&self.request, self.clients, self.rate);
        let started = Instant::now();
        let warmup = self.warmup;
        while started.elapsed() < warmup
            || (!running.answered_any() && started.elapsed() < warmup + FIRST_ANSWER_DEADLINE)
        {
            std::thread::sleep(Duration::from_millis(2));
        }
        let signalled = Instant::now();
        let stopped = service.stop(stop);
        let exited = signalled + stopped.signal_to_exit;
        let routed_until = self.routed_for.map(|lag| signalled + lag);
        // Through the routing window, and until a request met the exit.
        let until = routed_until.map_or(exited, |routed| routed.max(exited));
        while Instant::now() < until
            || (!running.sent_since(exited) && until.elapsed() < AFTER_EXIT)
        {
            std::thread::sleep(Duration::from_millis(1));
        }
        let records = running.finish(self.finish_timeout);
        let log_tail = tail(&stopped.log, LOG_TAIL);
        let report = LoadReport::new(
            &records,
            Moments {
                signalled,
                exited,
                routed_until,
            },
            log_tail,
        );
        (report, stopped)
    }
}
