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

use std::fmt;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use crate::error::{Error, ErrorKind};
use crate::service::{Service, Stop, StopReport};

/// How long [`Load::across_stop`] waits, past its warm-up, for a first
/// answer before it stops the service anyway.
const FIRST_ANSWER_DEADLINE: Duration = Duration::from_secs(10);
/// How long the load goes on after the exit, at most, to see one request
/// meet the closed port.
const AFTER_EXIT: Duration = Duration::from_secs(1);
/// How many of the service's log lines a failed assertion shows.
const LOG_TAIL: usize = 20;

type Request = dyn Fn() -> Result<(), Error> + Send + Sync;

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
        let running = Running::start(self);
        let started = Instant::now();
        let warmup = self.warmup;
        while started.elapsed() < warmup
            || (running.shared.answered.load(Ordering::SeqCst) == 0
                && started.elapsed() < warmup + FIRST_ANSWER_DEADLINE)
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
        let log_tail = stopped.log[stopped.log.len().saturating_sub(LOG_TAIL)..].to_vec();
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

/// One request's fate.
#[derive(Debug, Clone)]
struct Record {
    sent: Instant,
    took: Duration,
    /// `None`: still running when the load was given up.
    outcome: Option<Result<(), Error>>,
}

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    answered: AtomicU64,
    records: Mutex<Vec<Record>>,
    /// When each client's request in flight was sent.
    in_flight: Vec<Mutex<Option<Instant>>>,
}

/// The client threads, stopped when dropped.
struct Running {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    fn start(load: &Load) -> Running {
        let shared = Arc::new(Shared {
            in_flight: (0..load.clients).map(|_| Mutex::new(None)).collect(),
            ..Shared::default()
        });
        let began = Instant::now();
        let threads = (0..load.clients)
            .map(|client| {
                let shared = shared.clone();
                let request = load.request.clone();
                // Client `client` takes every `clients`-th turn.
                let turns = load.rate.map(|rate| {
                    let spacing = Duration::from_secs_f64(1.0 / f64::from(rate));
                    let first = began + spacing * u32::try_from(client).unwrap_or(u32::MAX);
                    (
                        first,
                        spacing * u32::try_from(load.clients).unwrap_or(u32::MAX),
                    )
                });
                std::thread::Builder::new()
                    .name(format!("load-client-{client}"))
                    .spawn(move || send(client, &shared, &*request, turns))
                    .expect("a load client thread starts")
            })
            .collect();
        Running { shared, threads }
    }

    /// Whether a request was sent at `moment` or later.
    fn sent_since(&self, moment: Instant) -> bool {
        let in_flight = self
            .shared
            .in_flight
            .iter()
            .any(|slot| lock(slot).is_some_and(|sent| sent >= moment));
        in_flight || lock(&self.shared.records).iter().any(|r| r.sent >= moment)
    }

    /// Stops the clients, waits up to `timeout` for them, and returns every
    /// request, those still in flight included.
    fn finish(mut self, timeout: Duration) -> Vec<Record> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let until = Instant::now() + timeout;
        while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        for thread in std::mem::take(&mut self.threads) {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        let recorded = lock(&self.shared.records);
        let mut records = recorded.clone();
        let now = Instant::now();
        records.extend(self.shared.in_flight.iter().filter_map(|slot| {
            lock(slot).map(|sent| Record {
                sent,
                took: now - sent,
                outcome: None,
            })
        }));
        drop(recorded);
        records.sort_by_key(|r| r.sent);
        records
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One client's loop.
fn send(client: usize, shared: &Shared, request: &Request, turns: Option<(Instant, Duration)>) {
    let mut next = turns.map(|(first, _)| first);
    while !shared.stop.load(Ordering::SeqCst) {
        if let (Some(at), Some((_, spacing))) = (next, turns) {
            let now = Instant::now();
            if at > now {
                std::thread::sleep((at - now).min(Duration::from_millis(5)));
                continue;
            }
            // A late client takes its next turn from now: no burst.
            let base = if now - at > spacing { now } else { at };
            next = Some(base + spacing);
        }
        let sent = Instant::now();
        *lock(&shared.in_flight[client]) = Some(sent);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(request))
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                Err(Error::new(
                    ErrorKind::Other,
                    format!("the request panicked: {message}"),
                ))
            });
        let took = sent.elapsed();
        if outcome.is_ok() {
            shared.answered.fetch_add(1, Ordering::SeqCst);
        }
        // Recorded and no longer in flight at once (`finish` looks at both
        // under the records' lock).
        let mut records = lock(&shared.records);
        records.push(Record {
            sent,
            took,
            outcome: Some(outcome),
        });
        *lock(&shared.in_flight[client]) = None;
    }
}

/// A moment relative to the signal.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum SignalOffset {
    /// This long before the signal.
    Before(Duration),
    /// This long after the signal (or at it).
    After(Duration),
}

impl SignalOffset {
    fn of(moment: Instant, signalled: Instant) -> SignalOffset {
        if moment < signalled {
            SignalOffset::Before(signalled - moment)
        } else {
            SignalOffset::After(moment - signalled)
        }
    }

    /// How long after the signal, `None` before it.
    pub fn after_signal(self) -> Option<Duration> {
        match self {
            SignalOffset::Before(_) => None,
            SignalOffset::After(after) => Some(after),
        }
    }
}

impl fmt::Display for SignalOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (sign, duration) = match self {
            SignalOffset::Before(d) => ('-', d),
            SignalOffset::After(d) => ('+', d),
        };
        write!(f, "signal {sign} {:.1} ms", duration.as_secs_f64() * 1000.0)
    }
}

/// A request of the load that got no good answer: a record of the
/// report, not an error of the kit.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailedRequest {
    /// What went wrong; its [`kind`](Error::kind) is how the report counts
    /// it ([`ErrorKind::Refused`] as refused, [`ErrorKind::Reset`] as
    /// reset, any other kind as failed). A request still running when the
    /// load was given up is [`ErrorKind::TimedOut`], counted as
    /// unfinished.
    pub error: Error,
    /// When it was sent.
    pub sent: SignalOffset,
    /// How long it took to fail.
    pub took: Duration,
}

impl fmt::Display for FailedRequest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}, sent at {}, after {:.1} ms: {}",
            self.error.kind(),
            self.sent,
            self.took.as_secs_f64() * 1000.0,
            self.error
        )
    }
}

#[derive(Clone, Copy)]
struct Moments {
    signalled: Instant,
    exited: Instant,
    routed_until: Option<Instant>,
}

/// What became of the requests of a [`Load`] across a stop.
///
/// The counts `answered + failed + refused + reset + unfinished` make
/// `sent`, the requests sent after the exit included.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoadReport {
    /// Every request sent.
    pub sent: u64,
    /// Answered to the closure's satisfaction.
    pub answered: u64,
    /// Failed otherwise (any other [`ErrorKind`]): time-outs, answers the
    /// closure rejected…
    pub failed: u64,
    /// Refused: nothing listened.
    pub refused: u64,
    /// Reset: the connection broke under the request.
    pub reset: u64,
    /// Still running when the load was given up
    /// ([`Load::finish_timeout`] after the exit).
    pub unfinished: u64,
    /// Sent before the signal.
    pub sent_before_signal: u64,
    /// Sent after the signal and answered: the drain delay at work.
    pub answered_after_signal: u64,
    /// Sent after the signal, before the exit.
    pub sent_after_signal: u64,
    /// Sent after the routing window ([`Load::routed_for`]), before the
    /// exit: not judged (but for a reset while the service still answered).
    pub unrouted: u64,
    /// Sent after the exit: they should all be refused. Not judged, unless
    /// sent within the routing window ([`Load::routed_for`]): a load
    /// balancer still sent them to the pod.
    pub after_exit: u64,
    /// Of those sent after the exit, how many were answered: more than 0
    /// means the closure does not talk to the service.
    pub answered_after_exit: u64,
    /// When the last answered request was sent: how long the service went
    /// on serving.
    pub last_answered: Option<SignalOffset>,
    /// The first request (by the moment it was sent) that got no good
    /// answer, whatever the kind and the phase: usually the first refusal
    /// once the listener closed.
    pub first_failure: Option<FailedRequest>,
    /// The first lost request (see [`lost`](Self::lost)).
    pub first_lost: Option<FailedRequest>,
    /// The longest a request took.
    pub slowest: Duration,
    /// From the signal to the exit.
    pub signal_to_exit: Duration,
    /// The requests whose loss counts: those sent before the exit, or,
    /// when [`Load::routed_for`] set a routing window, those sent within it
    /// and those reset after it while the service still answered.
    pub judged: u64,
    lost: u64,
    routed_for: Option<Duration>,
    log_tail: Vec<String>,
}

impl LoadReport {
    fn new(records: &[Record], at: Moments, log_tail: Vec<String>) -> LoadReport {
        let mut report = LoadReport {
            sent: 0,
            answered: 0,
            failed: 0,
            refused: 0,
            reset: 0,
            unfinished: 0,
            sent_before_signal: 0,
            answered_after_signal: 0,
            sent_after_signal: 0,
            unrouted: 0,
            after_exit: 0,
            answered_after_exit: 0,
            last_answered: None,
            first_failure: None,
            first_lost: None,
            slowest: Duration::ZERO,
            signal_to_exit: at.exited.saturating_duration_since(at.signalled),
            judged: 0,
            lost: 0,
            routed_for: at.routed_until.map(|until| until - at.signalled),
            log_tail,
        };
        let routed = at.routed_until.is_some();
        // The last request the service answered before its exit: it was
        // still serving then.
        let last_served = records
            .iter()
            .filter(|record| record.sent < at.exited && matches!(record.outcome, Some(Ok(()))))
            .map(|record| record.sent)
            .max();
        for record in records {
            report.sent += 1;
            report.slowest = report.slowest.max(record.took);
            let before_signal = record.sent < at.signalled;
            let after_exit = record.sent >= at.exited;
            // Routed to, the service must answer even after it exited.
            // Past the routing window, a reset is judged when the service
            // answered a request sent later: it was still serving, so it
            // dropped this one itself. A reset after the last answer is
            // the listener's close catching a request in its accept
            // queue, whatever the server does.
            let dropped_while_serving = matches!(
                &record.outcome,
                Some(Err(error)) if error.kind() == ErrorKind::Reset
            ) && last_served.is_some_and(|last| record.sent < last);
            let judged = match at.routed_until {
                Some(until) => record.sent < until || dropped_while_serving,
                None => !after_exit,
            };
            if judged {
                report.judged += 1;
            }
            if before_signal {
                report.sent_before_signal += 1;
            } else if after_exit {
                report.after_exit += 1;
            } else {
                report.sent_after_signal += 1;
                if !judged {
                    report.unrouted += 1;
                }
            }
            let failure = match &record.outcome {
                Some(Ok(())) => {
                    report.answered += 1;
                    if after_exit {
                        report.answered_after_exit += 1;
                    } else if !before_signal {
                        report.answered_after_signal += 1;
                    }
                    report.last_answered = Some(SignalOffset::of(record.sent, at.signalled));
                    continue;
                }
                Some(Err(error)) => error.clone(),
                None => {
                    report.unfinished += 1;
                    Error::new(
                        ErrorKind::TimedOut,
                        format!(
                            "still running {} ms after it was sent",
                            record.took.as_millis()
                        ),
                    )
                }
            };
            let kind = failure.kind();
            if record.outcome.is_some() {
                *match kind {
                    ErrorKind::Refused => &mut report.refused,
                    ErrorKind::Reset => &mut report.reset,
                    _ => &mut report.failed,
                } += 1;
            }
            let failure = FailedRequest {
                error: failure,
                sent: SignalOffset::of(record.sent, at.signalled),
                took: record.took,
            };
            // A refusal is lost only when the service should have been
            // listening: before the signal, or while still routed to.
            let listening = before_signal || (routed && judged);
            let lost = judged && (kind != ErrorKind::Refused || listening);
            if lost {
                report.lost += 1;
                if report.first_lost.is_none() {
                    report.first_lost = Some(failure.clone());
                }
            }
            if report.first_failure.is_none() {
                report.first_failure = Some(failure);
            }
        }
        report
    }

    /// The requests lost: among those judged (sent before the exit, or
    /// within the routing window when [`Load::routed_for`] set one), the
    /// ones reset, failed or unfinished, and the ones refused while the
    /// service should have been listening: before the signal, and within
    /// the routing window (the load balancer still sent them there).
    /// Without a routing window a refusal after the signal is not lost: the
    /// request was never received, and the service may close its listener
    /// once the drain delay is over.
    pub fn lost(&self) -> u64 {
        self.lost
    }

    /// Panics with the message of [`check_nothing_lost`](Self::check_nothing_lost)
    /// unless it passes.
    #[track_caller]
    pub fn assert_nothing_lost(&self) {
        if let Err(message) = self.check_nothing_lost() {
            panic!("{message}");
        }
    }

    /// Passes when no request was lost, some were answered before the
    /// signal (else the load proved nothing), and none sent after the exit
    /// was answered (else the closure does not talk to the service);
    /// otherwise says why, with the counts, the first lost request and the
    /// service's last log lines.
    pub fn check_nothing_lost(&self) -> Result<(), String> {
        let problem = if self.lost > 0 {
            let judged = match self.routed_for {
                Some(lag) => format!(
                    "sent within {} ms of the signal, or reset while the service still answered",
                    lag.as_millis()
                ),
                None => "sent before the exit".to_owned(),
            };
            let mut problem = format!(
                "lost {} of the {} requests judged (those {judged})",
                self.lost, self.judged
            );
            if let Some(first) = &self.first_lost {
                problem.push_str(&format!("; the first one: {first}"));
                if first.sent.after_signal().is_some() && self.routed_for.is_none() {
                    problem.push_str(
                        "\n(a request that comes once the listener has closed meets the close: \
                         give the service a drain delay (LIFECYCLE_DRAIN_DELAY_MS) longer than a \
                         load balancer takes to stop routing to it, and say how long that is with \
                         Load::routed_for)",
                    );
                }
            }
            problem
        } else if self.answered - self.answered_after_signal - self.answered_after_exit == 0 {
            "no request was answered before the signal: the load proved nothing".to_owned()
        } else if self.answered_after_exit > 0 {
            format!(
                "{} requests sent after the exit were answered: the load does not talk to the service",
                self.answered_after_exit
            )
        } else {
            return Ok(());
        };
        let mut message = format!("{problem}\n{self}");
        if !self.log_tail.is_empty() {
            message.push_str("\nthe service's last log lines:");
            for line in &self.log_tail {
                message.push_str("\n  ");
                message.push_str(line);
            }
        }
        Err(message)
    }
}

impl fmt::Display for LoadReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} requests sent: {} answered, {} refused, {} reset, {} failed",
            self.sent, self.answered, self.refused, self.reset, self.failed
        )?;
        if self.unfinished > 0 {
            write!(f, ", {} unfinished", self.unfinished)?;
        }
        write!(
            f,
            "; {} sent before the signal; after it, {} sent and {} of them answered",
            self.sent_before_signal, self.sent_after_signal, self.answered_after_signal
        )?;
        if self.unrouted > 0 {
            write!(f, " ({} unrouted)", self.unrouted)?;
        }
        write!(
            f,
            "; exit at signal + {:.1} ms; {} sent after the exit",
            self.signal_to_exit.as_secs_f64() * 1000.0,
            self.after_exit
        )?;
        if let Some(last) = self.last_answered {
            write!(f, "; last answered request sent at {last}")?;
        }
        write!(
            f,
            "; slowest {:.1} ms; lost {} of {} judged",
            self.slowest.as_secs_f64() * 1000.0,
            self.lost,
            self.judged
        )?;
        if let Some(first) = &self.first_failure {
            write!(f, "; first failure: {first}")?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::io;

    use super::*;

    fn record(sent: Instant, outcome: Option<Result<(), Error>>) -> Record {
        Record {
            sent,
            took: Duration::from_millis(1),
            outcome,
        }
    }

    #[test]
    fn the_report_judges_each_request_by_its_phase() {
        let signalled = Instant::now() + Duration::from_secs(1);
        let ms = |offset: i64| {
            if offset < 0 {
                signalled - Duration::from_millis(offset.unsigned_abs())
            } else {
                signalled + Duration::from_millis(offset.unsigned_abs())
            }
        };
        let records = [
            record(ms(-100), Some(Ok(()))),
            record(
                ms(-50),
                Some(Err(Error::new(ErrorKind::Refused, "before the signal"))),
            ),
            record(ms(10), Some(Ok(()))),
            record(
                ms(100),
                Some(Err(Error::new(ErrorKind::Refused, "closed early"))),
            ),
            record(ms(200), Some(Ok(()))),
            record(
                ms(300),
                Some(Err(Error::new(ErrorKind::Refused, "listener closed"))),
            ),
            record(
                ms(301),
                Some(Err(Error::new(ErrorKind::Reset, "in the close"))),
            ),
            record(
                ms(350),
                Some(Err(Error::new(ErrorKind::TimedOut, "timed out"))),
            ),
            record(ms(400), None),
            record(ms(600), Some(Err(Error::new(ErrorKind::Refused, "gone")))),
            record(ms(601), Some(Ok(()))),
        ];
        let moments = |routed: Option<i64>| Moments {
            signalled,
            exited: ms(500),
            routed_until: routed.map(ms),
        };
        let strict = LoadReport::new(&records, moments(None), Vec::new());
        assert_eq!(strict.sent, 11);
        assert_eq!(
            (
                strict.answered,
                strict.refused,
                strict.reset,
                strict.failed,
                strict.unfinished
            ),
            (4, 4, 1, 1, 1)
        );
        assert_eq!(strict.sent_before_signal, 2);
        assert_eq!(strict.sent_after_signal, 7);
        assert_eq!(strict.answered_after_signal, 2);
        assert_eq!((strict.after_exit, strict.answered_after_exit), (2, 1));
        assert_eq!(strict.unrouted, 0);
        // Refused before the signal, reset, failed, unfinished; not the
        // refusals after the signal nor anything after the exit.
        assert_eq!((strict.lost(), strict.judged), (4, 9));
        let first_lost = strict.first_lost.as_ref().unwrap();
        assert_eq!(first_lost.error.kind(), ErrorKind::Refused);
        assert_eq!(
            first_lost.sent,
            SignalOffset::Before(Duration::from_millis(50))
        );
        assert_eq!(strict.first_failure, strict.first_lost);
        assert_eq!(
            strict.last_answered,
            Some(SignalOffset::After(Duration::from_millis(601)))
        );
        assert_eq!(strict.signal_to_exit, Duration::from_millis(500));

        // A load balancer that stopped routing 250 ms after the signal:
        // the refusal within the window is lost, the later failures are
        // not judged.
        let routed = LoadReport::new(&records, moments(Some(250)), Vec::new());
        assert_eq!(routed.unrouted, 4);
        assert_eq!((routed.lost(), routed.judged), (2, 5));
        assert_eq!(routed.first_failure, strict.first_failure);

        // Routed to for longer than the service lived: the refusal after
        // the exit is lost as well, every failure is.
        let outlived = LoadReport::new(&records, moments(Some(650)), Vec::new());
        assert_eq!((outlived.unrouted, outlived.after_exit), (0, 2));
        assert_eq!((outlived.lost(), outlived.judged), (7, 11));
        let message = outlived.check_nothing_lost().unwrap_err();
        assert!(
            message.starts_with(
                "lost 7 of the 11 requests judged (those sent within 650 ms of the signal, or \
                 reset while the service still answered)"
            ),
            "{message}"
        );
    }

    #[test]
    fn a_reset_after_the_routing_window_is_lost_while_the_service_still_answered() {
        let signalled = Instant::now() + Duration::from_secs(1);
        let ms = |offset: u64| signalled + Duration::from_millis(offset);
        let reset = || {
            Some(Err(Error::new(
                ErrorKind::Reset,
                "connection reset by peer",
            )))
        };
        let moments = Moments {
            signalled,
            exited: ms(500),
            routed_until: Some(ms(100)),
        };
        let report = |records: &[Record]| LoadReport::new(records, moments, Vec::new());
        let before = record(signalled - Duration::from_millis(10), Some(Ok(())));
        // Reset at 200 ms, and a request sent at 300 ms answered: the
        // service was serving, it dropped the first.
        let dropped = report(&[
            before.clone(),
            record(ms(200), reset()),
            record(ms(300), Some(Ok(()))),
        ]);
        assert_eq!(
            (dropped.lost(), dropped.judged, dropped.unrouted),
            (1, 2, 1)
        );
        let message = dropped.check_nothing_lost().unwrap_err();
        assert!(
            message.starts_with(
                "lost 1 of the 2 requests judged (those sent within 100 ms of the signal, or \
                 reset while the service still answered); the first one: reset, sent at signal + 200.0 ms"
            ),
            "{message}"
        );
        // Reset after the last answer: the listener's close, not judged.
        let closed = report(&[
            before,
            record(ms(200), Some(Ok(()))),
            record(ms(300), reset()),
        ]);
        assert_eq!((closed.lost(), closed.judged, closed.unrouted), (0, 1, 2));
        closed.check_nothing_lost().unwrap();
    }

    #[test]
    fn assert_nothing_lost_names_the_counts_and_the_first_loss() {
        let signalled = Instant::now();
        let moments = Moments {
            signalled,
            exited: signalled + Duration::from_millis(500),
            routed_until: None,
        };
        let lossy = LoadReport::new(
            &[
                record(signalled - Duration::from_millis(5), Some(Ok(()))),
                record(
                    signalled + Duration::from_millis(20),
                    Some(Err(Error::new(
                        ErrorKind::Reset,
                        "connection reset by peer",
                    ))),
                ),
            ],
            moments,
            vec!["a log line".into()],
        );
        let message = lossy.check_nothing_lost().unwrap_err();
        assert!(message.starts_with("lost 1 of the 2 requests judged (those sent before the exit); the first one: reset, sent at signal + 20.0 ms"), "{message}");
        assert!(message.contains("connection reset by peer"), "{message}");
        assert!(message.contains("Load::routed_for"), "{message}");
        assert!(message.ends_with("\n  a log line"), "{message}");

        let idle = LoadReport::new(
            &[record(signalled + Duration::from_millis(5), Some(Ok(())))],
            moments,
            Vec::new(),
        );
        let message = idle.check_nothing_lost().unwrap_err();
        assert!(message.contains("proved nothing"), "{message}");

        let fine = LoadReport::new(
            &[
                record(signalled - Duration::from_millis(5), Some(Ok(()))),
                record(signalled + Duration::from_millis(5), Some(Ok(()))),
                record(
                    signalled + Duration::from_millis(300),
                    Some(Err(Error::new(ErrorKind::Refused, "closed"))),
                ),
                record(
                    signalled + Duration::from_millis(700),
                    Some(Err(Error::new(ErrorKind::Refused, "gone"))),
                ),
            ],
            moments,
            Vec::new(),
        );
        fine.assert_nothing_lost();
        assert_eq!(fine.answered_after_signal, 1);

        let elsewhere = LoadReport::new(
            &[
                record(signalled - Duration::from_millis(5), Some(Ok(()))),
                record(signalled + Duration::from_millis(600), Some(Ok(()))),
            ],
            moments,
            Vec::new(),
        );
        let message = elsewhere.check_nothing_lost().unwrap_err();
        assert!(
            message.contains("does not talk to the service"),
            "{message}"
        );
    }

    #[test]
    #[should_panic(expected = "lost 1 of the 1 requests judged (those sent before the exit)")]
    fn assert_nothing_lost_panics_on_a_loss() {
        let signalled = Instant::now();
        let report = LoadReport::new(
            &[record(
                signalled,
                Some(Err(Error::new(ErrorKind::TimedOut, "timed out"))),
            )],
            Moments {
                signalled,
                exited: signalled + Duration::from_millis(1),
                routed_until: None,
            },
            Vec::new(),
        );
        report.assert_nothing_lost();
    }

    #[test]
    fn a_rate_spaces_the_requests_and_the_load_stops_when_told() {
        let count = Arc::new(AtomicU64::new(0));
        let counted = count.clone();
        let load = Load::new(move || {
            counted.fetch_add(1, Ordering::SeqCst);
            Ok::<_, Error>(())
        })
        .clients(2)
        .rate(100);
        let running = Running::start(&load);
        std::thread::sleep(Duration::from_millis(300));
        let records = running.finish(Duration::from_secs(5));
        let sent = count.load(Ordering::SeqCst);
        // 30 turns in 300 ms; a loaded machine may miss some, never more.
        assert!((5..=32).contains(&sent), "{sent} requests");
        assert_eq!(records.len() as u64, sent);
        let later = count.load(Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(50));
        assert_eq!(count.load(Ordering::SeqCst), later, "the load stopped");
    }

    #[test]
    fn a_request_that_hangs_is_left_behind_as_unfinished() {
        let load = Load::new(|| {
            std::thread::sleep(Duration::from_secs(3));
            Ok::<_, io::Error>(())
        })
        .clients(1);
        let running = Running::start(&load);
        std::thread::sleep(Duration::from_millis(20));
        let started = Instant::now();
        let records = running.finish(Duration::from_millis(50));
        assert!(started.elapsed() < Duration::from_secs(1));
        assert_eq!(records.len(), 1);
        assert!(records[0].outcome.is_none());
    }
}
