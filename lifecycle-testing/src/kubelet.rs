//! The kubelet's probe loops, simulated from the service's own manifest:
//! what the kubelet would have done with a running service, and why.
//!
//! A [`Manifest`] is what the kubelet reads of the service's pod template
//! (its probes, as [`ProbeSpec`]s); a [`Kubelet`] runs the startup,
//! liveness and readiness probes on that schedule (periods and initial
//! delays optionally scaled down, probe timeouts real) against the
//! service's probe address. [`Kubelet::watch`] runs it for a while and
//! returns a [`KubeletReport`]; [`Kubelet::start`] runs it in the
//! background as a [`KubeletSession`] while the test acts on the service.
//! The report's [`KubeletEvent`]s (restarts, endpoint changes) carry the
//! [`ProbeRecord`]s that decided them.

mod manifest;
mod prober;

use std::fmt;
use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

pub use manifest::{Manifest, PreStop, ProbeKind, ProbeSpec};

use crate::error::{Error, ErrorKind};
use crate::probe::{http_probe, ProbeAnswer};
use crate::service::{Exit, Lines, Service, ServiceBuilder, LOG_TAIL};
use prober::{BackOff, Decision, Pod};

/// The shortest period a time scale leaves.
const MIN_PERIOD: Duration = Duration::from_millis(1);
/// The restart back-off's first delay (`backOffPeriod` in
/// `pkg/kubelet/kubelet.go`), before the time scale.
const BACK_OFF_INITIAL: Duration = Duration::from_secs(10);
/// The restart back-off's cap (`MaxContainerBackOff` in
/// `pkg/kubelet/kubelet.go`), before the time scale.
const BACK_OFF_MAX: Duration = Duration::from_secs(300);
/// The least time a container gets from its stop signal to SIGKILL,
/// whatever the `preStop` hook left of the grace period
/// (`minimumGracePeriodInSeconds` in `pkg/kubelet/kuberuntime`).
const MIN_STOP_WINDOW: Duration = Duration::from_secs(2);
/// How often the kubelet looks whether a container it runs has exited.
const EXIT_POLL: Duration = Duration::from_millis(10);
/// How much of an answer's body a report shows.
const BODY_SHOWN: usize = 400;

/// Something the kubelet would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum EventKind {
    /// The container started: its startup probe passed (at once when it
    /// has none). Liveness and readiness probes begin.
    Started,
    /// The startup probe failed `failureThreshold` times in a row: the
    /// container would be killed and restarted.
    StartupBudgetExceeded,
    /// The liveness probe failed `failureThreshold` times in a row: the
    /// container would be killed and restarted.
    LivenessRestart,
    /// The pod became ready: it joined the Service's endpoints.
    JoinedEndpoints,
    /// The pod stopped being ready (readiness failed, its container
    /// exited, or the pod was deleted): it left the endpoints.
    LeftEndpoints,
    /// The pod was deleted ([`KubeletSession::delete_pod`]): liveness and
    /// startup stop, readiness goes on, the container is killed.
    PodDeleted,
    /// A kill ended: the container's process exited, after its `preStop`
    /// hook, the stop signal and perhaps SIGKILL (the [`Kill`] in
    /// [`KubeletReport::kills`]).
    Killed,
    /// The container's process exited by itself.
    Exited,
    /// The restart waits for its back-off (`CrashLoopBackOff`).
    BackOff,
    /// A new container started, after a kill or an exit.
    Restarted,
    /// An HTTP probe passed with a warning: a redirect it did not follow
    /// ([`ProbeAnswer::warning`]).
    ProbeWarning,
}

impl EventKind {
    /// Whether the container would be killed and restarted.
    pub fn restarts(self) -> bool {
        matches!(
            self,
            EventKind::StartupBudgetExceeded | EventKind::LivenessRestart
        )
    }
}

impl fmt::Display for EventKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            EventKind::Started => "started",
            EventKind::StartupBudgetExceeded => {
                "start-up over its budget: the container would be restarted"
            }
            EventKind::LivenessRestart => "liveness failed: the container would be restarted",
            EventKind::JoinedEndpoints => "joined the endpoints",
            EventKind::LeftEndpoints => "left the endpoints",
            EventKind::PodDeleted => "the pod was deleted",
            EventKind::Killed => "the container was killed",
            EventKind::Exited => "the container exited by itself",
            EventKind::BackOff => "back-off restarting the container",
            EventKind::Restarted => "the container was restarted",
            EventKind::ProbeWarning => "probe warning",
        })
    }
}

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
    /// Every kill, in order (with [`Kubelet::run`], which runs the
    /// process).
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
    log_tail: Vec<String>,
}

impl KubeletReport {
    fn new(schedule: Vec<(ProbeKind, ProbeSpec)>, time_scale: f64) -> KubeletReport {
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

    fn record(&mut self, at: Duration, decision: Decision<ProbeRecord>) {
        self.record_with(at, decision, None);
    }

    fn note(&mut self, at: Duration, event: EventKind, detail: String) {
        let decision = Decision {
            event,
            answers: Vec::new(),
        };
        self.record_with(at, decision, Some(detail));
    }

    fn record_with(
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
    /// [`Kubelet::run`]); returns the last kill.
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

/// Plays the kubelet against a service, on the schedule of its
/// [`Manifest`] (the one the binary derives, or the one you deploy), and
/// reports what the kubelet did or would have done.
///
/// ```no_run
/// use std::time::Duration;
///
/// use lifecycle_testing::{Kubelet, Manifest, Service};
///
/// # fn main() -> Result<(), lifecycle_testing::Error> {
/// # let binary = "my-service";
/// let builder = Service::builder(binary).env("DATABASE_URL", "postgres://127.0.0.1:1/down");
/// let kubelet = Kubelet::new(Manifest::from_builder(&builder)?).time_scale(0.1);
/// let service = builder.start()?;
///
/// // A dependency that is down: out of rotation, never restarted.
/// let report = kubelet.watch(&service, Duration::from_secs(5));
/// report.assert_started();
/// assert!(!report.in_endpoints(), "{report}");
/// report.assert_never_restarted();
/// # Ok(())
/// # }
/// ```
///
/// It follows the kubelet's prober
/// ([`pkg/kubelet/prober/worker.go`](https://github.com/kubernetes/kubernetes/blob/master/pkg/kubelet/prober/worker.go)):
/// each probe is sent at once and then every period, skipped before its
/// initial delay (counted from the container's start, the process's start
/// for the first); a probe that outlasts its period is followed at once by
/// the next. Liveness and readiness probes wait until the startup probe
/// has passed, and readiness is probed at once when it does. The pod is
/// not ready until readiness passes `successThreshold` times in a row; it
/// leaves the endpoints after `failureThreshold` failures in a row, or
/// when its container exits. Start-up runs out of its budget at
/// `failureThreshold` failures in a row, or at the first failure once
/// `initialDelaySeconds + failureThreshold × periodSeconds` have passed
/// since the process started. HTTP probes follow redirects as the kubelet
/// does ([`http_probe`]), and one passing with a warning is a
/// [`EventKind::ProbeWarning`].
///
/// When liveness fails or start-up runs out of its budget, the container
/// is killed; once it has exited, a new one starts after the restart
/// back-off (`CrashLoopBackOff`: at once the first time, then 10 s,
/// doubling up to 5 min, and at once again after a container ran more
/// than 10 min; the back-off is scaled by the [time
/// scale](Self::time_scale)). [`KubeletSession::delete_pod`] deletes the
/// pod: liveness and startup stop, readiness goes on being probed until
/// the container exits, the pod leaves the endpoints and the container is
/// killed, never restarted.
///
/// What a kill does depends on who runs the process:
/// - [`Kubelet::run`] gives the kubelet a [`ServiceBuilder`]: it runs the
///   process and kills it as the kubelet does ([`Kill`]: the `preStop`
///   hook, the stop signal, SIGKILL at the end of the grace period), then
///   really starts a new one after the back-off. A process that exits by
///   itself is restarted the same way (`restartPolicy: Always`).
/// - [`Kubelet::watch`] and [`Kubelet::start`] probe a [`Service`] the
///   test owns, and never touch it: a kill ends at once and the "new
///   container" after the back-off is the same process, whose probes
///   start over. Stop it yourself after [`delete_pod`](KubeletSession::delete_pod).
///
/// Not simulated: `httpGet.httpHeaders`, exec and tcpSocket probes, an
/// httpGet `preStop` hook, other `restartPolicy` values than `Always`,
/// and the random delay before a worker's first probe.
#[derive(Debug, Clone)]
pub struct Kubelet {
    manifest: Manifest,
    time_scale: f64,
}

impl From<Manifest> for Kubelet {
    fn from(manifest: Manifest) -> Kubelet {
        Kubelet::new(manifest)
    }
}

impl Kubelet {
    /// A kubelet for a pod of this manifest, on its real schedule.
    pub fn new(manifest: Manifest) -> Kubelet {
        Kubelet {
            manifest,
            time_scale: 1.0,
        }
    }

    /// Multiplies every probe's period and initial delay, and the restart
    /// back-off, by `scale`: 0.1 runs the schedule ten times faster (a
    /// period stays at least 1 ms). Probe timeouts stay real, as do the
    /// checks' own timeouts, the grace periods and `preStop` sleeps: they
    /// bound the service's real work.
    ///
    /// # Panics
    /// Unless `scale` is finite and above zero.
    #[must_use]
    pub fn time_scale(mut self, scale: f64) -> Kubelet {
        assert!(
            scale.is_finite() && scale > 0.0,
            "a time scale is finite and above zero, not {scale}"
        );
        self.time_scale = scale;
        self
    }

    /// The manifest it follows.
    pub fn manifest(&self) -> &Manifest {
        &self.manifest
    }

    /// Probes `service` on the manifest's schedule for `duration` (real
    /// time: scale the schedule with [`time_scale`](Self::time_scale), not
    /// the duration), then reports what the kubelet would have done.
    pub fn watch(&self, service: &Service, duration: Duration) -> KubeletReport {
        self.start(service, duration).finish()
    }

    /// Starts probing `service` in the background, for `duration` at most
    /// (real time), so that the test can act on the service meanwhile and
    /// [`wait_until`](KubeletSession::wait_until) the kubelet reacts; the
    /// session's [`stop`](KubeletSession::stop) or
    /// [`finish`](KubeletSession::finish) reports. The service stays the
    /// test's: never killed nor restarted (see [`run`](Self::run)).
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use lifecycle_testing::{Kubelet, Manifest, Service};
    ///
    /// # fn main() -> Result<(), lifecycle_testing::Error> {
    /// # let binary = "my-service";
    /// let builder = Service::builder(binary);
    /// let kubelet = Kubelet::new(Manifest::from_builder(&builder)?).time_scale(0.1);
    /// let service = builder.start()?;
    ///
    /// let session = kubelet.start(&service, Duration::from_secs(30));
    /// session.wait_until("the pod joins the endpoints", Duration::from_secs(10), |report| {
    ///     report.in_endpoints()
    /// })?;
    /// // … break the service's dependency here …
    /// session.wait_until("the pod leaves the endpoints", Duration::from_secs(10), |report| {
    ///     !report.in_endpoints()
    /// })?;
    /// session.stop().assert_never_restarted();
    /// # Ok(())
    /// # }
    /// ```
    pub fn start(&self, service: &Service, duration: Duration) -> KubeletSession {
        let target = Target::Borrowed {
            addr: service.probe_addr(),
            spawned: service.spawned(),
        };
        self.begin(target, Some(service.log_lines()), duration)
    }

    /// Starts the service from `builder` and runs it as the kubelet runs a
    /// container, for `duration` at most: probes it, kills it as the
    /// kubelet kills (its `preStop` hook, the stop signal — SIGTERM, or
    /// the manifest's `lifecycle.stopSignal` — and SIGKILL when the grace
    /// period runs out), and starts it again from the builder after the
    /// restart back-off, when liveness fails, start-up runs out of its
    /// budget or the process exits by itself.
    /// [`KubeletSession::delete_pod`] terminates it for good;
    /// [`KubeletSession::with_service`] reaches the process running now.
    /// The session's end kills what still runs. The error is the first
    /// start's, as [`ServiceBuilder::spawn`] returns it; a later start that
    /// fails is an [`EventKind::Exited`] and another back-off.
    ///
    /// An `exec` `preStop` hook cannot run inside a container here: its
    /// command runs on the host, in the service's environment (the
    /// builder's variables, then the manifest's `env` values). On Windows
    /// a kill ends the process with TerminateProcess after the hook.
    ///
    /// ```no_run
    /// use std::time::Duration;
    ///
    /// use lifecycle_testing::{Kubelet, Manifest, Service};
    ///
    /// # fn main() -> Result<(), lifecycle_testing::Error> {
    /// # let binary = "my-service";
    /// let builder = Service::builder(binary);
    /// let kubelet = Kubelet::new(Manifest::from_file("deploy/app.yaml", "app")?).time_scale(0.1);
    /// let session = kubelet.run(builder, Duration::from_secs(60))?;
    /// session.wait_until("the pod joins", Duration::from_secs(10), |r| r.in_endpoints())?;
    /// session.delete_pod();
    /// let report = session.wait_until("the kill", Duration::from_secs(40), |r| {
    ///     !r.kills.is_empty()
    /// })?;
    /// assert!(!report.assert_killed().sigkilled, "{report}");
    /// # Ok(())
    /// # }
    /// ```
    pub fn run(
        &self,
        builder: ServiceBuilder,
        duration: Duration,
    ) -> Result<KubeletSession, Error> {
        let service = builder.clone().spawn()?;
        let spawned = service.spawned();
        let addr = service.probe_addr();
        let slot = Arc::new(Mutex::new(Some(service)));
        let target = Target::Owned {
            builder,
            slot,
            first: (spawned, addr),
        };
        Ok(self.begin(target, None, duration))
    }

    /// The probes, with periods and initial delays scaled.
    fn schedule(&self) -> Vec<(ProbeKind, ProbeSpec)> {
        ProbeKind::ALL
            .into_iter()
            .filter_map(|kind| {
                let mut spec = self.manifest.probe(kind)?.clone();
                spec.period = spec.period.mul_f64(self.time_scale).max(MIN_PERIOD);
                spec.initial_delay = spec.initial_delay.mul_f64(self.time_scale);
                Some((kind, spec))
            })
            .collect()
    }

    /// Probes `addr`, as a process started `spawned`.
    #[cfg(test)]
    fn start_at(&self, addr: SocketAddr, spawned: Instant, duration: Duration) -> KubeletSession {
        self.begin(Target::Borrowed { addr, spawned }, None, duration)
    }

    fn begin(&self, target: Target, log: Option<Lines>, duration: Duration) -> KubeletSession {
        let schedule = self.schedule();
        let started = Instant::now();
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                report: KubeletReport::new(schedule.clone(), self.time_scale),
                finished: None,
            }),
            changed: Condvar::new(),
        });
        let slot = match &target {
            Target::Owned { slot, .. } => Some(slot.clone()),
            Target::Borrowed { .. } => None,
        };
        let (sender, messages) = mpsc::channel();
        let thread = {
            let shared = shared.clone();
            let sender = sender.clone();
            let manifest = self.manifest.clone();
            let time_scale = self.time_scale;
            std::thread::Builder::new()
                .name("kubelet".into())
                .spawn(move || {
                    drive(Driver {
                        schedule,
                        manifest,
                        time_scale,
                        target,
                        started,
                        end: started + duration,
                        shared,
                        messages,
                        sender,
                    })
                })
                .expect("a thread for the kubelet")
        };
        KubeletSession {
            shared,
            commands: sender,
            thread: Some(thread),
            started,
            log,
            slot,
        }
    }
}

/// Who runs the process.
enum Target {
    /// The test's service: probed, never touched.
    Borrowed { addr: SocketAddr, spawned: Instant },
    /// The kubelet's own: killed and started again from the builder.
    Owned {
        builder: ServiceBuilder,
        slot: Slot,
        /// The first container's start and probe address.
        first: (Instant, SocketAddr),
    },
}

/// The process the kubelet runs now, if one runs.
type Slot = Arc<Mutex<Option<Service>>>;

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|p| p.into_inner())
}

/// What the watch has seen so far.
struct Progress {
    report: KubeletReport,
    /// When the watch ended, from its start.
    finished: Option<Duration>,
}

struct Shared {
    progress: Mutex<Progress>,
    changed: Condvar,
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, Progress> {
        lock(&self.progress)
    }

    fn update(&self, change: impl FnOnce(&mut Progress)) {
        change(&mut self.lock());
        self.changed.notify_all();
    }
}

enum Message {
    Answer {
        kind: ProbeKind,
        container: u32,
        at: Instant,
        answer: ProbeAnswer,
    },
    /// The test deleted the pod.
    Delete,
    /// A kill ended: the process has exited.
    Killed {
        at: Instant,
        kill: Kill,
    },
    /// A new process was started (its probe address), or could not be.
    Spawned {
        at: Instant,
        addr: Result<SocketAddr, String>,
    },
    Stop,
}

/// The kubelet running in the background against a service, from
/// [`Kubelet::start`] or [`Kubelet::run`]: look at its
/// [`report`](Self::report) so far, [`wait_until`](Self::wait_until) it
/// shows something, [`delete_pod`](Self::delete_pod), then
/// [`stop`](Self::stop) it or let it [`finish`](Self::finish). Dropping it
/// stops it.
pub struct KubeletSession {
    shared: Arc<Shared>,
    commands: mpsc::Sender<Message>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
    log: Option<Lines>,
    slot: Option<Slot>,
}

impl fmt::Debug for KubeletSession {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("KubeletSession")
            .field("elapsed", &self.elapsed())
            .finish_non_exhaustive()
    }
}

impl KubeletSession {
    /// The time since the session started: the clock of the report's
    /// times.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn snapshot(&self, progress: &Progress) -> KubeletReport {
        let mut report = progress.report.clone();
        report.watched = progress.finished.unwrap_or_else(|| self.elapsed());
        report.log_tail = match (&self.log, &self.slot) {
            (Some(log), _) => log.tail(LOG_TAIL),
            (None, Some(slot)) => lock(slot)
                .as_ref()
                .map(|service| service.log_lines().tail(LOG_TAIL))
                .unwrap_or_default(),
            (None, None) => Vec::new(),
        };
        report
    }

    /// What the kubelet would have done so far.
    pub fn report(&self) -> KubeletReport {
        self.snapshot(&self.shared.lock())
    }

    /// Deletes the pod, as `kubectl delete pod` does with its default
    /// grace period: the liveness and startup probes stop (their workers
    /// record a success), readiness goes on being probed until the
    /// container exits, the pod leaves the endpoints (a terminating
    /// endpoint is not ready), and the container is killed with the pod's
    /// `terminationGracePeriodSeconds`, never restarted. With
    /// [`Kubelet::start`] the process is the test's: stop it yourself.
    pub fn delete_pod(&self) {
        let _ = self.commands.send(Message::Delete);
    }

    /// Runs `act` on the process the kubelet runs now (with
    /// [`Kubelet::run`]; after an exit of its own, until the next start,
    /// the exited one), to drive it or read its log; `None` between a kill
    /// and the next start, or for a session of [`Kubelet::start`].
    /// The kubelet waits meanwhile to look at it: keep `act` short.
    pub fn with_service<R>(&self, act: impl FnOnce(&mut Service) -> R) -> Option<R> {
        let slot = self.slot.as_ref()?;
        let mut service = lock(slot);
        service.as_mut().map(act)
    }

    /// Waits until `condition` holds of the report so far (checked at
    /// every answer and event), up to `deadline`, and returns that report.
    /// When the deadline passes or the session ends first, the error
    /// ([`ErrorKind::TimedOut`]) names `what` was awaited and shows the
    /// timeline. See [`Kubelet::start`].
    pub fn wait_until(
        &self,
        what: &str,
        deadline: Duration,
        mut condition: impl FnMut(&KubeletReport) -> bool,
    ) -> Result<KubeletReport, Error> {
        let until = Instant::now() + deadline;
        let mut progress = self.shared.lock();
        loop {
            let report = self.snapshot(&progress);
            if condition(&report) {
                return Ok(report);
            }
            let now = Instant::now();
            let why = if progress.finished.is_some() {
                "the watch ended"
            } else if now >= until {
                "the deadline passed"
            } else {
                progress = self
                    .shared
                    .changed
                    .wait_timeout(progress, until - now)
                    .unwrap_or_else(|p| p.into_inner())
                    .0;
                continue;
            };
            let log_tail = report.log_tail.clone();
            return Err(Error::with_log(
                ErrorKind::TimedOut,
                format!(
                    "{why} ({} ms) before {what}\n{report}",
                    deadline.as_millis()
                ),
                log_tail,
            ));
        }
    }

    fn end(&mut self) {
        let _ = self.commands.send(Message::Stop);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }

    /// Stops the session now and reports.
    pub fn stop(mut self) -> KubeletReport {
        self.end();
        self.report()
    }

    /// Waits until the session's duration has passed and reports.
    pub fn finish(mut self) -> KubeletReport {
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        self.report()
    }
}

impl Drop for KubeletSession {
    fn drop(&mut self) {
        self.end();
        // What the kubelet ran ends with the session.
        if let Some(slot) = &self.slot {
            drop(lock(slot).take());
        }
    }
}

/// One probe's schedule in the driver.
struct Lane {
    kind: ProbeKind,
    spec: ProbeSpec,
    /// To its prober thread: probe now, this container at this address.
    requests: mpsc::Sender<(u32, SocketAddr)>,
    next_tick: Instant,
    in_flight: bool,
    /// Probe at the next chance, tick or not (readiness when start-up
    /// passes).
    triggered: bool,
    /// Whether its last answer came with a warning.
    warned: bool,
}

struct Driver {
    schedule: Vec<(ProbeKind, ProbeSpec)>,
    manifest: Manifest,
    time_scale: f64,
    target: Target,
    started: Instant,
    end: Instant,
    shared: Arc<Shared>,
    messages: mpsc::Receiver<Message>,
    sender: mpsc::Sender<Message>,
}

/// A kill to carry out on the kubelet's own process.
struct KillPlan {
    /// The watch's start: the report's clock.
    started: Instant,
    at: Instant,
    reason: EventKind,
    grace: Duration,
    pre_stop: Option<PreStop>,
    signal: String,
    /// The `exec` hook's environment.
    builder: ServiceBuilder,
    env: Vec<(String, String)>,
}

/// The timed loop: sends each probe when due on its own thread (a slow
/// answer delays no other probe), feeds the answers to the pure prober,
/// records what it decides, and carries out kills and restarts.
fn drive(driver: Driver) {
    let Driver {
        schedule,
        manifest,
        time_scale,
        target,
        started,
        end,
        shared,
        messages,
        sender,
    } = driver;
    let mut thresholds = [None, None, None];
    let mut lanes: Vec<Lane> = Vec::new();
    for (kind, spec) in schedule {
        thresholds[kind.index()] = Some((spec.success_threshold, spec.failure_threshold));
        let (requests, inbox) = mpsc::channel::<(u32, SocketAddr)>();
        let answers = sender.clone();
        let (path, grpc_service, timeout) =
            (spec.path.clone(), spec.grpc_service.clone(), spec.timeout);
        std::thread::Builder::new()
            .name(format!("kubelet-{kind}"))
            .spawn(move || {
                for (container, addr) in inbox {
                    let answer = match &grpc_service {
                        #[cfg(feature = "grpc")]
                        Some(service) => crate::grpc::grpc_probe(addr, service, timeout).into(),
                        // The manifest parser refuses `grpc` probes then.
                        #[cfg(not(feature = "grpc"))]
                        Some(_) => unreachable!("a grpc probe without the grpc feature"),
                        None => http_probe(addr, &path, timeout),
                    };
                    let at = Instant::now();
                    let message = Message::Answer {
                        kind,
                        container,
                        at,
                        answer,
                    };
                    if answers.send(message).is_err() {
                        return;
                    }
                }
            })
            .expect("a thread for a prober");
        lanes.push(Lane {
            kind,
            spec,
            requests,
            next_tick: started,
            in_flight: false,
            triggered: false,
            warned: false,
        });
    }
    let since = |at: Instant| at.saturating_duration_since(started);
    let signal = manifest.stop_signal().unwrap_or("SIGTERM").to_owned();
    let mut back_off = BackOff::new(
        BACK_OFF_INITIAL.mul_f64(time_scale),
        BACK_OFF_MAX.mul_f64(time_scale),
    );
    let mut pod: Pod<ProbeRecord> = Pod::new(thresholds);
    let (mut container_start, mut addr) = match &target {
        Target::Borrowed { addr, spawned } => (*spawned, Some(*addr)),
        Target::Owned { first, .. } => (first.0, Some(first.1)),
    };
    // When the next container starts, after a back-off.
    let mut next_start: Option<Instant> = None;
    let mut killing = false;
    let decisions = pod.start_container();
    shared.update(|progress| {
        for decision in decisions {
            progress.report.record(Duration::ZERO, decision);
        }
    });
    loop {
        let now = Instant::now();
        if now >= end {
            break;
        }
        // A container the kubelet runs may exit by itself.
        if let Target::Owned { slot, .. } = &target {
            let exited = match &*lock(slot) {
                Some(service) if pod.running() && !killing => service.try_exit(),
                _ => None,
            };
            if let Some(exit) = exited {
                let decisions = pod.container_exited();
                shared.update(|progress| {
                    progress
                        .report
                        .note(since(now), EventKind::Exited, exit.to_string());
                    for decision in decisions {
                        progress.report.record(since(now), decision);
                    }
                });
                addr = None;
                if !pod.deleted() {
                    next_start = Some(schedule_restart(&mut back_off, now, started, &shared));
                }
            }
        }
        if next_start.is_some_and(|at| at <= now) {
            next_start = None;
            match &target {
                Target::Borrowed { .. } => {
                    container_start = now;
                    restarted(&mut pod, &mut lanes, now, started, &shared);
                }
                Target::Owned { builder, slot, .. } => {
                    let (builder, slot, sender) = (builder.clone(), slot.clone(), sender.clone());
                    std::thread::spawn(move || {
                        let at = Instant::now();
                        let addr = match builder.spawn() {
                            Ok(service) => {
                                let addr = service.probe_addr();
                                *lock(&slot) = Some(service);
                                Ok(addr)
                            }
                            Err(error) => Err(error.to_string()),
                        };
                        let _ = sender.send(Message::Spawned { at, addr });
                    });
                }
            }
        }
        for lane in &mut lanes {
            let ticked = lane.next_tick <= now;
            if lane.in_flight || !(ticked || lane.triggered) {
                continue;
            }
            // Ticks missed while a probe was out are dropped, as a Go
            // ticker drops them.
            while lane.next_tick <= now {
                lane.next_tick += lane.spec.period;
            }
            lane.triggered = false;
            let delay_over = now >= container_start + lane.spec.initial_delay;
            let Some(addr) = addr else { continue };
            if pod.wants(lane.kind)
                && delay_over
                && lane.requests.send((pod.container(), addr)).is_ok()
            {
                lane.in_flight = true;
            }
        }
        let mut wake = lanes
            .iter()
            .filter(|lane| !lane.in_flight)
            .map(|lane| lane.next_tick)
            .fold(end, Instant::min);
        if let Some(at) = next_start {
            wake = wake.min(at);
        }
        if matches!(target, Target::Owned { .. }) && pod.running() && !killing {
            wake = wake.min(now + EXIT_POLL);
        }
        let message = match messages.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        match message {
            Message::Stop => break,
            Message::Delete => {
                let at = Instant::now();
                let decisions = pod.delete();
                shared.update(|progress| {
                    progress.report.note(
                        since(at),
                        EventKind::PodDeleted,
                        "liveness and startup stopped; readiness goes on until the exit".to_owned(),
                    );
                    for decision in decisions {
                        progress.report.record(since(at), decision);
                    }
                });
                next_start = None;
                if pod.running() && !killing {
                    let grace = manifest.termination_grace_period();
                    killing = begin_kill(
                        &target,
                        &manifest,
                        (at, EventKind::PodDeleted, grace, signal.clone()),
                        started,
                        &sender,
                    );
                }
            }
            Message::Killed { at, kill } => {
                killing = false;
                addr = None;
                let decisions = pod.container_exited();
                shared.update(|progress| {
                    progress
                        .report
                        .note(since(at), EventKind::Killed, kill.to_string());
                    progress.report.kills.push(kill);
                    for decision in decisions {
                        progress.report.record(since(at), decision);
                    }
                });
                if !pod.deleted() {
                    next_start = Some(schedule_restart(&mut back_off, at, started, &shared));
                }
            }
            Message::Spawned { at, addr: spawned } => match spawned {
                Ok(spawned) if !pod.deleted() => {
                    addr = Some(spawned);
                    container_start = at;
                    restarted(&mut pod, &mut lanes, at, started, &shared);
                }
                // Deleted while it started: it never runs as the pod's.
                Ok(_) => {
                    if let Target::Owned { slot, .. } = &target {
                        drop(lock(slot).take());
                    }
                }
                Err(error) => {
                    shared.update(|progress| {
                        progress.report.note(since(at), EventKind::Exited, error);
                    });
                    next_start = Some(schedule_restart(&mut back_off, at, started, &shared));
                }
            },
            Message::Answer {
                kind,
                container,
                at,
                answer,
            } => {
                if at >= end {
                    break;
                }
                let Some(lane) = lanes.iter_mut().find(|lane| lane.kind == kind) else {
                    continue;
                };
                lane.in_flight = false;
                let warned = std::mem::replace(&mut lane.warned, answer.warning.is_some());
                let overdue = kind == ProbeKind::Startup
                    && at
                        >= container_start
                            + lane.spec.initial_delay
                            + lane.spec.period * lane.spec.failure_threshold;
                let grace = lane.spec.termination_grace_period;
                let probed = ProbeRecord {
                    probe: kind,
                    at: since(at),
                    answer,
                };
                // An answer for a container the kubelet has since killed
                // counts for nothing.
                let decisions = if container != pod.container() {
                    Vec::new()
                } else if overdue && !probed.answer.passed() {
                    pod.startup_overdue(probed.clone())
                } else {
                    pod.feed(kind, probed.answer.passed(), probed.clone())
                };
                let mut kill = None;
                for decision in &decisions {
                    match decision.event {
                        EventKind::Started => {
                            for lane in &mut lanes {
                                lane.triggered |= lane.kind == ProbeKind::Readiness;
                            }
                        }
                        event if event.restarts() => kill = Some(event),
                        _ => {}
                    }
                }
                let warning = probed
                    .answer
                    .warning
                    .clone()
                    .filter(|_| !warned && container == pod.container());
                shared.update(|progress| {
                    progress.report.probes.push(probed.clone());
                    if let Some(warning) = warning {
                        progress.report.record_with(
                            since(at),
                            Decision {
                                event: EventKind::ProbeWarning,
                                answers: vec![probed],
                            },
                            Some(format!("{kind} probe warning: {warning}")),
                        );
                    }
                    for decision in decisions {
                        progress.report.record(since(at), decision);
                    }
                });
                if let Some(reason) = kill {
                    let grace = grace.unwrap_or(manifest.termination_grace_period());
                    killing = begin_kill(
                        &target,
                        &manifest,
                        (at, reason, grace, signal.clone()),
                        started,
                        &sender,
                    );
                    if !killing {
                        // The test's process is not touched: the container
                        // is gone at once.
                        let decisions = pod.container_exited();
                        shared.update(|progress| {
                            for decision in decisions {
                                progress.report.record(since(at), decision);
                            }
                        });
                        next_start = Some(schedule_restart(&mut back_off, at, started, &shared));
                    }
                }
            }
        }
    }
    let watched = started.elapsed().min(end - started);
    shared.update(|progress| progress.finished = Some(watched));
}

/// Records the back-off before the next container, and returns when it
/// starts.
fn schedule_restart(
    back_off: &mut BackOff,
    finished: Instant,
    started: Instant,
    shared: &Shared,
) -> Instant {
    let delay = back_off.delay(finished.saturating_duration_since(started));
    shared.update(|progress| {
        progress.report.back_offs.push(delay);
        if !delay.is_zero() {
            progress.report.note(
                finished.saturating_duration_since(started),
                EventKind::BackOff,
                format!(
                    "back-off {} ms restarting failed container",
                    delay.as_millis()
                ),
            );
        }
    });
    finished + delay
}

/// A new container has started: its probes start over.
fn restarted(
    pod: &mut Pod<ProbeRecord>,
    lanes: &mut [Lane],
    at: Instant,
    started: Instant,
    shared: &Shared,
) {
    let decisions = pod.start_container();
    // Each worker's ticker keeps its beat: the new container is probed at
    // its next tick, as `worker.go` finds a new container ID.
    for lane in lanes.iter_mut() {
        lane.warned = false;
    }
    let at = at.saturating_duration_since(started);
    shared.update(|progress| {
        progress.report.note(
            at,
            EventKind::Restarted,
            format!("container {}", pod.container()),
        );
        for decision in decisions {
            progress.report.record(at, decision);
        }
    });
}

/// Starts killing the kubelet's own process on a thread of its own;
/// `false` for the test's process, which is not touched.
fn begin_kill(
    target: &Target,
    manifest: &Manifest,
    (at, reason, grace, signal): (Instant, EventKind, Duration, String),
    started: Instant,
    sender: &mpsc::Sender<Message>,
) -> bool {
    let Target::Owned { builder, slot, .. } = target else {
        return false;
    };
    let plan = KillPlan {
        started,
        at,
        reason,
        grace,
        pre_stop: manifest.pre_stop().cloned(),
        signal,
        builder: builder.clone(),
        env: manifest.env().to_vec(),
    };
    let (slot, sender) = (slot.clone(), sender.clone());
    std::thread::Builder::new()
        .name("kubelet-kill".into())
        .spawn(move || {
            let (ended, kill) = kill(&slot, plan);
            let _ = sender.send(Message::Killed { at: ended, kill });
        })
        .expect("a thread for a kill");
    true
}

/// Kills the process in `slot` as `killContainer` does, and takes it out
/// of the slot once it has exited: when, and how it went.
fn kill(slot: &Slot, plan: KillPlan) -> (Instant, Kill) {
    let began = Instant::now();
    let mut pre_stop = None;
    let mut pre_stop_error = None;
    if let Some(hook) = &plan.pre_stop {
        if !plan.grace.is_zero() {
            pre_stop_error = run_pre_stop(hook, &plan, began + plan.grace).err();
            pre_stop = Some(began.elapsed());
        }
    }
    // `executePreStopHook` returns whole seconds; the container gets what
    // is left of the grace period, never less than the minimum.
    let used = Duration::from_secs(began.elapsed().as_secs());
    let stop_window = plan.grace.saturating_sub(used).max(MIN_STOP_WINDOW);
    let signalled = Instant::now();
    #[cfg(unix)]
    if let Some(service) = &*lock(slot) {
        let number = manifest::signal_number(&plan.signal).unwrap_or(libc::SIGTERM);
        service.signal(number);
    }
    #[cfg(not(unix))]
    if let Some(service) = &*lock(slot) {
        // Windows has no signals: the kill is at once.
        service.send_kill();
    }
    let mut sigkilled = false;
    let exit = loop {
        {
            let service = lock(slot);
            let Some(service) = service.as_ref() else {
                break None;
            };
            if let Some(exit) = service.try_exit() {
                break Some(exit);
            }
            if !sigkilled && signalled.elapsed() >= stop_window {
                service.send_kill();
                sigkilled = true;
            }
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let exited_after = signalled.elapsed();
    let ended = Instant::now();
    let log = match lock(slot).take() {
        // Exited: the wait returns at once, with its output complete.
        Some(mut service) => {
            let _ = service.wait_exit(Duration::ZERO);
            service.log()
        }
        None => Vec::new(),
    };
    let kill = Kill {
        at: plan.at.saturating_duration_since(plan.started),
        reason: plan.reason,
        grace: plan.grace,
        pre_stop,
        pre_stop_error,
        signal: plan.signal,
        stop_window,
        exited_after,
        sigkilled,
        exit,
        log,
    };
    (ended, kill)
}

/// Runs a `preStop` hook, giving up at `until` (the end of the grace
/// period), as `executePreStopHook` does.
fn run_pre_stop(hook: &PreStop, plan: &KillPlan, until: Instant) -> Result<(), String> {
    match hook {
        PreStop::Sleep(seconds) => {
            std::thread::sleep((*seconds).min(until.saturating_duration_since(Instant::now())));
            Ok(())
        }
        PreStop::Exec(command) => {
            let mut process = std::process::Command::new(&command[0]);
            process
                .args(&command[1..])
                .stdin(std::process::Stdio::null())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null());
            plan.builder.apply_env(&mut process);
            process.envs(plan.env.iter().map(|(k, v)| (k, v)));
            let mut child = process
                .spawn()
                .map_err(|e| format!("cannot run {:?}: {e}", command[0]))?;
            loop {
                match child.try_wait() {
                    Ok(Some(status)) if status.success() => return Ok(()),
                    Ok(Some(status)) => return Err(format!("{command:?} failed ({status})")),
                    Ok(None) if Instant::now() < until => {
                        std::thread::sleep(Duration::from_millis(5));
                    }
                    _ => {
                        let _ = child.kill();
                        let _ = child.wait();
                        return Err("not completed in the grace period".to_owned());
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{Read, Write};
    use std::net::TcpListener;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// A probe server whose endpoints pass while their flag is up.
    struct Fake {
        addr: SocketAddr,
        startup: Arc<AtomicBool>,
        live: Arc<AtomicBool>,
        ready: Arc<AtomicBool>,
        /// `/readyz` redirects to `localhost`: another host.
        redirect: Arc<AtomicBool>,
    }

    impl Fake {
        fn new() -> Fake {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let fake = Fake {
                addr: listener.local_addr().unwrap(),
                startup: Arc::new(AtomicBool::new(true)),
                live: Arc::new(AtomicBool::new(true)),
                ready: Arc::new(AtomicBool::new(true)),
                redirect: Arc::new(AtomicBool::new(false)),
            };
            let redirect = fake.redirect.clone();
            let port = fake.addr.port();
            let flags = [
                ("/startupz", fake.startup.clone()),
                ("/livez", fake.live.clone()),
                ("/readyz", fake.ready.clone()),
            ];
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    let Ok(mut stream) = stream else { continue };
                    let mut request = Vec::new();
                    let mut chunk = [0u8; 1024];
                    while !request.ends_with(b"\r\n\r\n") {
                        match stream.read(&mut chunk) {
                            Ok(0) | Err(_) => break,
                            Ok(read) => request.extend_from_slice(&chunk[..read]),
                        }
                    }
                    let request = String::from_utf8_lossy(&request).into_owned();
                    let path = request.split_whitespace().nth(1).unwrap_or("");
                    let up = flags
                        .iter()
                        .find(|(p, _)| *p == path)
                        .is_some_and(|(_, flag)| flag.load(Ordering::SeqCst));
                    if path == "/readyz" && redirect.load(Ordering::SeqCst) {
                        let _ = write!(
                            stream,
                            "HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}/readyz\r\n\
                             Content-Length: 5\r\n\r\nmoved"
                        );
                        continue;
                    }
                    let (status, body) = if up {
                        (200, "ok")
                    } else {
                        (503, "[-]fake failed: down")
                    };
                    let _ = write!(
                        stream,
                        "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                        body.len()
                    );
                }
            });
            fake
        }
    }

    const MANIFEST: &str = "\
spec:
  containers:
  - name: fake
    startupProbe:
      httpGet: {path: /startupz}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      httpGet: {path: /livez}
      initialDelaySeconds: 3
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      httpGet: {path: /readyz}
      periodSeconds: 1
      failureThreshold: 2
";

    fn kubelet() -> Kubelet {
        Kubelet::new(Manifest::parse(MANIFEST).unwrap()).time_scale(0.02)
    }

    #[test]
    fn probes_keep_to_the_startup_gate_and_the_initial_delay() {
        let fake = Fake::new();
        fake.startup.store(false, Ordering::SeqCst);
        let watch = kubelet().start_at(fake.addr, Instant::now(), Duration::from_secs(20));
        watch
            .wait_until("two startup failures", Duration::from_secs(10), |r| {
                r.probes_of(ProbeKind::Startup).count() >= 2
            })
            .unwrap();
        fake.startup.store(true, Ordering::SeqCst);
        let report = watch
            .wait_until("liveness probes", Duration::from_secs(10), |r| {
                r.probes_of(ProbeKind::Liveness).count() >= 3
            })
            .unwrap();
        drop(watch);
        let started = report.assert_started();
        assert!(
            report.probes_of(ProbeKind::Startup).count() >= 3,
            "{report}"
        );
        assert!(
            report
                .probes
                .iter()
                .filter(|p| p.probe != ProbeKind::Startup)
                .all(|p| p.at >= started),
            "nothing but the startup probe before start-up:\n{report}"
        );
        assert!(
            report
                .probes_of(ProbeKind::Startup)
                .all(|p| p.at <= started),
            "no startup probe after start-up:\n{report}"
        );
        let first_liveness = report.probes_of(ProbeKind::Liveness).next().unwrap();
        assert!(
            first_liveness.at >= Duration::from_millis(60),
            "liveness waits its initial delay (60 ms):\n{report}"
        );
        report.assert_joined_endpoints();
        report.assert_never_restarted();
        assert_eq!(report.startup_budget_exceeded, None);
    }

    #[test]
    fn the_timeline_shows_the_deciding_answers() {
        let fake = Fake::new();
        let watch = kubelet().start_at(fake.addr, Instant::now(), Duration::from_secs(20));
        watch
            .wait_until(
                "the pod joins",
                Duration::from_secs(10),
                KubeletReport::in_endpoints,
            )
            .unwrap();
        fake.live.store(false, Ordering::SeqCst);
        let report = watch
            .wait_until("a restart", Duration::from_secs(10), |r| {
                !r.restarts.is_empty()
            })
            .unwrap();
        let restart = report.events_of(EventKind::LivenessRestart).next().unwrap();
        assert_eq!(restart.answers.len(), 2, "{report}");
        assert!(restart.answers.iter().all(|p| p.answer.status == Some(503)));
        let text = report.to_string();
        assert!(
            text.contains("liveness failed: the container would be restarted"),
            "{text}"
        );
        assert!(text.contains("GET /livez -> 503"), "{text}");
        assert!(text.contains("[-]fake failed: down"), "{text}");
        let panic = std::panic::catch_unwind(|| report.assert_never_restarted()).unwrap_err();
        let message = panic.downcast_ref::<String>().unwrap();
        assert!(
            message.contains("restarted the container 1 time(s)"),
            "{message}"
        );
        assert!(message.contains("GET /livez -> 503"), "{message}");
    }

    #[test]
    fn a_watch_stops_by_itself_and_a_missed_condition_is_an_error() {
        let fake = Fake::new();
        let watch = kubelet().start_at(fake.addr, Instant::now(), Duration::from_millis(300));
        let error = watch
            .wait_until("a restart", Duration::from_secs(10), |r| {
                !r.restarts.is_empty()
            })
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("the watch ended (10000 ms) before a restart"),
            "{error}"
        );
        let report = watch.finish();
        assert!(report.watched <= Duration::from_millis(300), "{report}");
        assert!(report.in_endpoints(), "{report}");
        let started = Instant::now();
        let short = kubelet().start_at(fake.addr, Instant::now(), Duration::from_secs(60));
        let error = short
            .wait_until("never", Duration::from_millis(100), |_| false)
            .unwrap_err()
            .to_string();
        assert!(
            error.starts_with("the deadline passed (100 ms) before never"),
            "{error}"
        );
        short.stop();
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "stop does not wait for the end"
        );
    }

    #[test]
    fn readiness_joins_at_its_success_threshold_and_a_redirect_elsewhere_warns() {
        let fake = Fake::new();
        let manifest = MANIFEST.replace(
            "      httpGet: {path: /readyz}\n",
            "      httpGet: {path: /readyz}\n      successThreshold: 3\n",
        );
        let kubelet = Kubelet::new(Manifest::parse(&manifest).unwrap()).time_scale(0.02);
        let watch = kubelet.start_at(fake.addr, Instant::now(), Duration::from_secs(20));
        watch
            .wait_until(
                "the pod joins",
                Duration::from_secs(10),
                KubeletReport::in_endpoints,
            )
            .unwrap();
        fake.redirect.store(true, Ordering::SeqCst);
        let report = watch
            .wait_until("a warning", Duration::from_secs(10), |r| {
                r.events_of(EventKind::ProbeWarning).next().is_some()
            })
            .unwrap();
        drop(watch);
        let joined = report.events_of(EventKind::JoinedEndpoints).next().unwrap();
        assert_eq!(joined.answers.len(), 3, "{report}");
        let warning = report.events_of(EventKind::ProbeWarning).next().unwrap();
        assert_eq!(
            warning.detail.as_deref(),
            Some("readiness probe warning: Probe terminated redirects, Response body: moved")
        );
        assert_eq!(warning.answers[0].answer.status, Some(302));
        assert_eq!(
            report.events_of(EventKind::ProbeWarning).count(),
            1,
            "one event while the warning lasts:\n{report}"
        );
        report.assert_in_endpoints();
    }

    #[test]
    fn the_start_up_budget_counts_from_the_process_start() {
        let fake = Fake::new();
        fake.startup.store(false, Ordering::SeqCst);
        // Started 2 s ago: the budget (30 × 20 ms) is spent before the
        // watch, and the first failure is over it.
        let spawned = Instant::now() - Duration::from_secs(2);
        let watch = kubelet().start_at(fake.addr, spawned, Duration::from_secs(20));
        let report = watch
            .wait_until("start-up over its budget", Duration::from_secs(10), |r| {
                r.startup_budget_exceeded.is_some()
            })
            .unwrap();
        drop(watch);
        let exceeded = report
            .events_of(EventKind::StartupBudgetExceeded)
            .next()
            .unwrap();
        let first = report.probes_of(ProbeKind::Startup).next().unwrap();
        assert_eq!(
            exceeded.answers,
            std::slice::from_ref(first),
            "the first answer:\n{report}"
        );
    }

    #[test]
    #[should_panic(expected = "a time scale is finite and above zero")]
    fn a_time_scale_must_be_positive() {
        let _ = kubelet().time_scale(0.0);
    }
}
