//! What the kubelet did or would have done: the report's events, the
//! answers that decided them, and the kills, with the assertions tests
//! make on them.

use std::fmt;
use std::time::Duration;

use super::back_off::{BACK_OFF_INITIAL, BACK_OFF_MAX};
use super::event::EventKind;
use super::manifest::{ProbeKind, ProbeSpec};
use super::prober::Decision;
use crate::probe::ProbeAnswer;
use crate::service::Exit;

/// How much of an answer's body a report shows.
const BODY_SHOWN: usize = 400;

/// One probe the kubelet sent, and its answer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProbeRecord {
    /// Which probe.
    pub probe: ProbeKind,
    /// When the answer was judged, from the start of the watch.
    pub at: Duration,
    /// The answer.
    pub answer: ProbeAnswer,
}

impl fmt::Display for ProbeRecord {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}: ", self.probe, seconds(self.at))?;
        let answer = &self.answer;
        if answer.grpc_status.is_some() {
            return write!(f, "{answer}");
        }
        match (answer.status, &answer.error) {
            (Some(status), _) => {
                let body = answer.body.trim().replace('\n', " | ");
                let body = match body.char_indices().nth(BODY_SHOWN) {
                    Some((cut, _)) => format!("{}…", &body[..cut]),
                    None => body,
                };
                write!(
                    f,
                    "GET {} -> {status} in {} ms: {body}",
                    answer.path,
                    answer.elapsed.as_millis()
                )
            }
            (None, error) => write!(
                f,
                "GET {} -> no answer: {}",
                answer.path,
                error.as_deref().unwrap_or("?")
            ),
        }
    }
}

/// One thing the kubelet would have done, and the probe answers that
/// decided it (the run of results that reached the threshold).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KubeletEvent {
    /// When, from the start of the watch.
    pub at: Duration,
    /// What.
    pub kind: EventKind,
    /// The answers that decided it; none for a start without a startup
    /// probe.
    pub answers: Vec<ProbeRecord>,
    /// What else the kubelet would say of it: a kill's course, an exit
    /// status, a back-off's length, a probe's warning.
    pub detail: Option<String>,
}

/// How the kubelet killed a container
/// ([`pkg/kubelet/kuberuntime/kuberuntime_container.go`](https://github.com/kubernetes/kubernetes/blob/master/pkg/kubelet/kuberuntime/kuberuntime_container.go),
/// `killContainer`): its `preStop` hook first, within the grace period;
/// then the stop signal, and SIGKILL once what the hook left of the grace
/// period has passed, at least 2 s.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Kill {
    /// When the kill began, from the start of the watch.
    pub at: Duration,
    /// What decided it: [`EventKind::LivenessRestart`],
    /// [`EventKind::StartupBudgetExceeded`] or [`EventKind::PodDeleted`].
    pub reason: EventKind,
    /// The grace period: the pod's `terminationGracePeriodSeconds`, or the
    /// deciding probe's own.
    pub grace: Duration,
    /// How long the `preStop` hook ran, if there is one.
    pub pre_stop: Option<Duration>,
    /// Why the `preStop` hook failed (the kubelet's `FailedPreStopHook`),
    /// if it did: the kill goes on.
    pub pre_stop_error: Option<String>,
    /// The stop signal sent: `SIGTERM`, or `lifecycle.stopSignal` (on
    /// Windows, which has no signals, the process is terminated at once
    /// instead).
    pub signal: String,
    /// From the signal to SIGKILL: the grace period less the whole seconds
    /// the `preStop` hook took, at least 2 s.
    pub stop_window: Duration,
    /// From the signal to the exit.
    pub exited_after: Duration,
    /// The stop window ran out: the container got SIGKILL.
    pub sigkilled: bool,
    /// How the process ended.
    pub exit: Option<Exit>,
    /// Every log line (stderr) of the killed process.
    pub log: Vec<String>,
}

impl fmt::Display for Kill {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "grace {} ms", self.grace.as_millis())?;
        if let Some(took) = self.pre_stop {
            write!(f, "; preStop ran {} ms", took.as_millis())?;
        }
        if let Some(error) = &self.pre_stop_error {
            write!(f, " and failed: {error}")?;
        }
        write!(
            f,
            "; {} with {} ms to stop; exited {} ms after it",
            self.signal,
            self.stop_window.as_millis(),
            self.exited_after.as_millis()
        )?;
        if self.sigkilled {
            f.write_str(", killed with SIGKILL")?;
        }
        if let Some(exit) = self.exit {
            write!(f, " ({exit})")?;
        }
        Ok(())
    }
}

/// What the kubelet would have done with the service while it watched.
/// Every time is measured from the start of the watch. Its `Display` form
/// (which the `assert_*` methods print) is the timeline with the deciding
/// answers.
#[derive(Debug, Clone)]
pub struct KubeletReport {
    /// How long the watch ran.
    pub watched: Duration,
    /// When the container first started (its startup probe passed).
    pub started_after: Option<Duration>,
    /// When the startup probe first ran out of its budget
    /// (`failureThreshold` failures in a row).
    pub startup_budget_exceeded: Option<Duration>,
    /// When the container would have been killed and restarted, for a
    /// liveness failure or a start-up over its budget.
    pub restarts: Vec<Duration>,
    /// When the pod joined (`true`) or left (`false`) the endpoints.
    pub endpoint_changes: Vec<(Duration, bool)>,
    /// Every kill, in order (with [`Kubelet::run`](crate::Kubelet::run),
    /// which runs the process).
    pub kills: Vec<Kill>,
    /// The back-off before each restart, in order (scaled): the first is
    /// 0, then 10 s, doubling up to 5 min.
    pub back_offs: Vec<Duration>,
    /// When the pod was deleted.
    pub deleted_at: Option<Duration>,
    /// Everything above, in order, with the answers that decided it.
    pub events: Vec<KubeletEvent>,
    /// Every answer, in the order they came.
    pub probes: Vec<ProbeRecord>,
    schedule: Vec<(ProbeKind, ProbeSpec)>,
    time_scale: f64,
    back_off: (Duration, Duration),
    pub(super) log_tail: Vec<String>,
}

impl KubeletReport {
    pub(super) fn new(schedule: Vec<(ProbeKind, ProbeSpec)>, time_scale: f64) -> KubeletReport {
        let back_off = (
            BACK_OFF_INITIAL.mul_f64(time_scale),
            BACK_OFF_MAX.mul_f64(time_scale),
        );
        KubeletReport {
            watched: Duration::ZERO,
            started_after: None,
            startup_budget_exceeded: None,
            restarts: Vec::new(),
            endpoint_changes: Vec::new(),
            kills: Vec::new(),
            back_offs: Vec::new(),
            deleted_at: None,
            events: Vec::new(),
            probes: Vec::new(),
            schedule,
            time_scale,
            back_off,
            log_tail: Vec::new(),
        }
    }

    pub(super) fn record(&mut self, at: Duration, decision: Decision<ProbeRecord>) {
        self.record_with(at, decision, None);
    }

    pub(super) fn note(&mut self, at: Duration, event: EventKind, detail: String) {
        let decision = Decision {
            event,
            answers: Vec::new(),
        };
        self.record_with(at, decision, Some(detail));
    }

    pub(super) fn record_with(
        &mut self,
        at: Duration,
        decision: Decision<ProbeRecord>,
        detail: Option<String>,
    ) {
        match decision.event {
            EventKind::Started => {
                self.started_after.get_or_insert(at);
            }
            EventKind::StartupBudgetExceeded => {
                self.startup_budget_exceeded.get_or_insert(at);
                self.restarts.push(at);
            }
            EventKind::LivenessRestart => self.restarts.push(at),
            EventKind::JoinedEndpoints => self.endpoint_changes.push((at, true)),
            EventKind::LeftEndpoints => self.endpoint_changes.push((at, false)),
            EventKind::PodDeleted => self.deleted_at = Some(at),
            _ => {}
        }
        self.events.push(KubeletEvent {
            at,
            kind: decision.event,
            answers: decision.answers,
            detail,
        });
    }

    /// Whether the pod was in the endpoints when the watch ended.
    pub fn in_endpoints(&self) -> bool {
        self.endpoint_changes
            .last()
            .is_some_and(|(_, joined)| *joined)
    }

    /// The events of one kind.
    pub fn events_of(&self, kind: EventKind) -> impl Iterator<Item = &KubeletEvent> {
        self.events.iter().filter(move |event| event.kind == kind)
    }

    /// The answers to one probe.
    pub fn probes_of(&self, kind: ProbeKind) -> impl Iterator<Item = &ProbeRecord> {
        self.probes
            .iter()
            .filter(move |probed| probed.probe == kind)
    }

    #[track_caller]
    fn fail(&self, message: &str) -> ! {
        let mut text = format!("{message}\n{self}");
        if !self.log_tail.is_empty() {
            text.push_str("the service's last log lines:");
            for line in &self.log_tail {
                text.push_str("\n  ");
                text.push_str(line);
            }
        }
        panic!("{text}")
    }

    #[track_caller]
    fn first(&self, kind: EventKind, message: &str) -> Duration {
        match self.events_of(kind).next() {
            Some(event) => event.at,
            None => self.fail(message),
        }
    }

    /// Panics, showing the timeline and the last answers, unless the
    /// container started; returns when it first did.
    #[track_caller]
    pub fn assert_started(&self) -> Duration {
        self.first(
            EventKind::Started,
            "the kubelet would never have seen the container start",
        )
    }

    /// Panics unless the kubelet killed the container (with
    /// [`Kubelet::run`](crate::Kubelet::run)); returns the last kill.
    #[track_caller]
    pub fn assert_killed(&self) -> &Kill {
        match self.kills.last() {
            Some(kill) => kill,
            None => self.fail("the kubelet never killed the container"),
        }
    }

    /// Panics, showing each restart and the answers that decided it, if
    /// the kubelet would have restarted the container.
    #[track_caller]
    pub fn assert_never_restarted(&self) {
        if !self.restarts.is_empty() {
            self.fail(&format!(
                "the kubelet would have restarted the container {} time(s)",
                self.restarts.len()
            ));
        }
    }

    /// Panics unless the kubelet would have restarted the container;
    /// returns when it first would have.
    #[track_caller]
    pub fn assert_restarted(&self) -> Duration {
        match self.restarts.first() {
            Some(at) => *at,
            None => self.fail("the kubelet would never have restarted the container"),
        }
    }

    /// Panics unless start-up ran out of its budget; returns when it
    /// first did.
    #[track_caller]
    pub fn assert_startup_budget_exceeded(&self) -> Duration {
        self.first(
            EventKind::StartupBudgetExceeded,
            "start-up never ran out of its budget",
        )
    }

    /// Panics unless the pod joined the endpoints; returns when it first
    /// did.
    #[track_caller]
    pub fn assert_joined_endpoints(&self) -> Duration {
        self.first(
            EventKind::JoinedEndpoints,
            "the pod never joined the endpoints",
        )
    }

    /// Panics unless the pod left the endpoints (was taken out of
    /// rotation); returns when it first did.
    #[track_caller]
    pub fn assert_left_endpoints(&self) -> Duration {
        self.first(
            EventKind::LeftEndpoints,
            "the pod was never taken out of the endpoints",
        )
    }

    /// Panics, showing why, if the pod ever left the endpoints.
    #[track_caller]
    pub fn assert_never_left_endpoints(&self) {
        if self.events_of(EventKind::LeftEndpoints).next().is_some() {
            self.fail("the pod left the endpoints");
        }
    }

    /// Panics if the pod ever joined the endpoints: it never took traffic.
    #[track_caller]
    pub fn assert_never_joined_endpoints(&self) {
        if self.events_of(EventKind::JoinedEndpoints).next().is_some() {
            self.fail("the pod joined the endpoints");
        }
    }

    /// Panics unless the pod was in the endpoints when the watch ended.
    #[track_caller]
    pub fn assert_in_endpoints(&self) {
        if !self.in_endpoints() {
            self.fail("the pod was not in the endpoints at the end of the watch");
        }
    }
}

fn seconds(at: Duration) -> String {
    format!("+{:.3} s", at.as_secs_f64())
}

impl fmt::Display for KubeletReport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "the kubelet's view over {:.3} s (periods and initial delays scaled by {}):",
            self.watched.as_secs_f64(),
            self.time_scale
        )?;
        for (kind, spec) in &self.schedule {
            writeln!(
                f,
                "  {kind} probe {} every {} ms (initial delay {} ms), timeout {} ms, thresholds: success {}, failure {}",
                match &spec.grpc_service {
                    Some(service) => format!("gRPC Check {service:?}"),
                    None => format!("GET {}", spec.path),
                },
                spec.period.as_millis(),
                spec.initial_delay.as_millis(),
                spec.timeout.as_millis(),
                spec.success_threshold,
                spec.failure_threshold
            )?;
        }
        writeln!(
            f,
            "  restart back-off {} ms, doubling up to {} ms",
            self.back_off.0.as_millis(),
            self.back_off.1.as_millis()
        )?;
        writeln!(f, "timeline:")?;
        if self.events.is_empty() {
            writeln!(f, "  (nothing happened)")?;
        }
        let mut previous: Option<&KubeletEvent> = None;
        for event in &self.events {
            match &event.detail {
                Some(detail) => writeln!(f, "  {}  {}: {detail}", seconds(event.at), event.kind)?,
                None => writeln!(f, "  {}  {}", seconds(event.at), event.kind)?,
            }
            if previous.is_some_and(|p| !p.answers.is_empty() && p.answers == event.answers) {
                writeln!(f, "      (the same answers)")?;
            } else {
                for answer in &event.answers {
                    writeln!(f, "      {answer}")?;
                }
            }
            previous = Some(event);
        }
        write!(f, "probes sent:")?;
        for (kind, _) in &self.schedule {
            let failed = self.probes_of(*kind).filter(|p| !p.answer.passed()).count();
            write!(
                f,
                " {kind} {} ({failed} failed);",
                self.probes_of(*kind).count()
            )?;
        }
        writeln!(f)?;
        let last: Vec<&ProbeRecord> = self
            .schedule
            .iter()
            .filter_map(|(kind, _)| self.probes_of(*kind).last())
            .collect();
        if !last.is_empty() {
            writeln!(f, "last answers:")?;
            for answer in last {
                writeln!(f, "  {answer}")?;
            }
        }
        Ok(())
    }
}
