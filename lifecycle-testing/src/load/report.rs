//! What became of the requests of a load, judged against the signal, the
//! exit and the routing window.

use std::fmt;
use std::time::{Duration, Instant};

use super::request::Record;
use crate::error::{Error, ErrorKind};

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

/// The moments a load's requests are judged against.
#[derive(Clone, Copy)]
pub(super) struct Moments {
    /// The stop's signal.
    pub(super) signalled: Instant,
    /// The process's exit.
    pub(super) exited: Instant,
    /// The end of the routing window
    /// ([`Load::routed_for`](crate::Load::routed_for)), if one is set.
    pub(super) routed_until: Option<Instant>,
}

impl Moments {
    /// Whether `record`'s loss counts, given when the service last
    /// answered a request sent before its exit (`last_served`).
    fn judges(self, record: &Record, last_served: Option<Instant>) -> bool {
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
        match self.routed_until {
            Some(until) => record.sent < until || dropped_while_serving,
            None => record.sent < self.exited,
        }
    }
}

/// What became of the requests of a [`Load`](crate::Load) across a stop.
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
    /// ([`Load::finish_timeout`](crate::Load::finish_timeout) after the exit).
    pub unfinished: u64,
    /// Sent before the signal.
    pub sent_before_signal: u64,
    /// Sent after the signal and answered: the drain delay at work.
    pub answered_after_signal: u64,
    /// Sent after the signal, before the exit.
    pub sent_after_signal: u64,
    /// Sent after the routing window
    /// ([`Load::routed_for`](crate::Load::routed_for)), before the exit:
    /// not judged (but for a reset while the service still answered).
    pub unrouted: u64,
    /// Sent after the exit: they should all be refused. Not judged, unless
    /// sent within the routing window
    /// ([`Load::routed_for`](crate::Load::routed_for)): a load balancer
    /// still sent them to the pod.
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
    /// when [`Load::routed_for`](crate::Load::routed_for) set a routing
    /// window, those sent within it and those reset after it while the
    /// service still answered.
    pub judged: u64,
    lost: u64,
    routed_for: Option<Duration>,
    log_tail: Vec<String>,
}

impl LoadReport {
    /// The report on `records`, judged against the moments `at`, with the
    /// service's last log lines.
    pub(super) fn new(records: &[Record], at: Moments, log_tail: Vec<String>) -> LoadReport {
        let mut report = LoadReport::empty(at, log_tail);
        // The last request the service answered before its exit: it was
        // still serving then.
        let last_served = records
            .iter()
            .filter(|record| record.sent < at.exited && matches!(record.outcome, Some(Ok(()))))
            .map(|record| record.sent)
            .max();
        for record in records {
            report.count(record, at, last_served);
        }
        report
    }

    /// A report with no request counted yet.
    fn empty(at: Moments, log_tail: Vec<String>) -> LoadReport {
        LoadReport {
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
        }
    }

    /// Counts one request: its phase, whether it is judged, and its fate.
    fn count(&mut self, record: &Record, at: Moments, last_served: Option<Instant>) {
        self.sent += 1;
        self.slowest = self.slowest.max(record.took);
        let before_signal = record.sent < at.signalled;
        let after_exit = record.sent >= at.exited;
        let judged = at.judges(record, last_served);
        if judged {
            self.judged += 1;
        }
        if before_signal {
            self.sent_before_signal += 1;
        } else if after_exit {
            self.after_exit += 1;
        } else {
            self.sent_after_signal += 1;
            if !judged {
                self.unrouted += 1;
            }
        }
        let failure = match &record.outcome {
            Some(Ok(())) => {
                self.answered += 1;
                if after_exit {
                    self.answered_after_exit += 1;
                } else if !before_signal {
                    self.answered_after_signal += 1;
                }
                self.last_answered = Some(SignalOffset::of(record.sent, at.signalled));
                return;
            }
            Some(Err(error)) => error.clone(),
            None => {
                self.unfinished += 1;
                Error::new(
                    ErrorKind::TimedOut,
                    format!(
                        "still running {} ms after it was sent",
                        record.took.as_millis()
                    ),
                )
            }
        };
        // A refusal is lost only when the service should have been
        // listening: before the signal, or while still routed to.
        let listening = before_signal || (at.routed_until.is_some() && judged);
        self.count_failure(record, failure, at.signalled, judged, listening);
    }

    /// Counts a request that got no good answer (`error`), and whether it
    /// is lost.
    fn count_failure(
        &mut self,
        record: &Record,
        error: Error,
        signalled: Instant,
        judged: bool,
        listening: bool,
    ) {
        let kind = error.kind();
        if record.outcome.is_some() {
            *match kind {
                ErrorKind::Refused => &mut self.refused,
                ErrorKind::Reset => &mut self.reset,
                _ => &mut self.failed,
            } += 1;
        }
        let failure = FailedRequest {
            error,
            sent: SignalOffset::of(record.sent, signalled),
            took: record.took,
        };
        let lost = judged && (kind != ErrorKind::Refused || listening);
        if lost {
            self.lost += 1;
            if self.first_lost.is_none() {
                self.first_lost = Some(failure.clone());
            }
        }
        if self.first_failure.is_none() {
            self.first_failure = Some(failure);
        }
    }

    /// The requests lost: among those judged (sent before the exit, or
    /// within the routing window when
    /// [`Load::routed_for`](crate::Load::routed_for) set one), the ones
    /// reset, failed or unfinished, and the ones refused while the
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
