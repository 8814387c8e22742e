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

pub use manifest::{Manifest, ProbeKind, ProbeSpec};

use crate::error::{Error, ErrorKind};
use crate::probe::{http_probe, ProbeAnswer};
use crate::service::{Lines, Service, LOG_TAIL};
use prober::{Decision, Pod};

/// The shortest period a time scale leaves.
const MIN_PERIOD: Duration = Duration::from_millis(1);
/// How much of an answer's body a report shows.
const BODY_SHOWN: usize = 400;

/// Something the kubelet would have done.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
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
    /// The pod stopped being ready (readiness failed, or its container
    /// was killed): it left the endpoints.
    LeftEndpoints,
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
    /// Everything above, in order, with the answers that decided it.
    pub events: Vec<KubeletEvent>,
    /// Every answer, in the order they came.
    pub probes: Vec<ProbeRecord>,
    schedule: Vec<(ProbeKind, ProbeSpec)>,
    time_scale: f64,
    log_tail: Vec<String>,
}

impl KubeletReport {
    fn new(schedule: Vec<(ProbeKind, ProbeSpec)>, time_scale: f64) -> KubeletReport {
        KubeletReport {
            watched: Duration::ZERO,
            started_after: None,
            startup_budget_exceeded: None,
            restarts: Vec::new(),
            endpoint_changes: Vec::new(),
            events: Vec::new(),
            probes: Vec::new(),
            schedule,
            time_scale,
            log_tail: Vec::new(),
        }
    }

    fn record(&mut self, at: Duration, decision: Decision<ProbeRecord>) {
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
        }
        self.events.push(KubeletEvent {
            at,
            kind: decision.event,
            answers: decision.answers,
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
        writeln!(f, "timeline:")?;
        if self.events.is_empty() {
            writeln!(f, "  (nothing happened)")?;
        }
        let mut previous: Option<&KubeletEvent> = None;
        for event in &self.events {
            writeln!(f, "  {}  {}", seconds(event.at), event.kind)?;
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

/// Plays the kubelet's prober against a running [`Service`], on the
/// schedule of the service's own [`Manifest`], and reports what the
/// kubelet would have done.
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
/// It follows the kubelet's prober: each probe is sent at once and then
/// every period, skipped before its initial delay (counted from the
/// container's start); a probe that outlasts its period is followed at
/// once by the next. Liveness and readiness probes wait until the startup
/// probe has passed, and readiness is probed at once when it does. The
/// pod is not ready until readiness passes `successThreshold` times in a
/// row; it leaves the endpoints after `failureThreshold` failures in a row.
///
/// The real process is never restarted. When the kubelet would restart
/// the container (liveness, or start-up over its budget), the simulation
/// does at once what the kubelet does for the new container: the pod
/// leaves the endpoints, every threshold count starts over, the startup
/// probe runs again (its initial delay counted from the restart), and the
/// same process answers. Not simulated: the kill's grace period, the
/// restart back-off (`CrashLoopBackOff`), the termination of the pod,
/// `httpGet.httpHeaders`, and the process exiting by itself (its probes
/// just fail).
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

    /// Multiplies every probe's period and initial delay by `scale`: 0.1
    /// runs the schedule ten times faster (a period stays at least 1 ms).
    /// Probe timeouts stay real, as do the checks' own timeouts.
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
    /// [`finish`](KubeletSession::finish) reports.
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
        self.start_at(service.probe_addr(), Some(service.log_lines()), duration)
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

    fn start_at(&self, addr: SocketAddr, log: Option<Lines>, duration: Duration) -> KubeletSession {
        let schedule = self.schedule();
        let started = Instant::now();
        let shared = Arc::new(Shared {
            progress: Mutex::new(Progress {
                report: KubeletReport::new(schedule.clone(), self.time_scale),
                finished: None,
            }),
            changed: Condvar::new(),
        });
        let (sender, messages) = mpsc::channel();
        let thread = {
            let shared = shared.clone();
            let sender = sender.clone();
            std::thread::Builder::new()
                .name("kubelet".into())
                .spawn(move || {
                    drive(Driver {
                        schedule,
                        addr,
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
            stop: sender,
            thread: Some(thread),
            started,
            log,
        }
    }
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
        self.progress.lock().unwrap_or_else(|p| p.into_inner())
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
    Stop,
}

/// The kubelet's probe loops running in the background against a service,
/// from [`Kubelet::start`]: look at its [`report`](Self::report) so far,
/// [`wait_until`](Self::wait_until) it shows something, then
/// [`stop`](Self::stop) it or let it [`finish`](Self::finish). Dropping it
/// stops it.
pub struct KubeletSession {
    shared: Arc<Shared>,
    stop: mpsc::Sender<Message>,
    thread: Option<JoinHandle<()>>,
    started: Instant,
    log: Option<Lines>,
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
        report.log_tail = self
            .log
            .as_ref()
            .map(|log| log.tail(LOG_TAIL))
            .unwrap_or_default();
        report
    }

    /// What the kubelet would have done so far.
    pub fn report(&self) -> KubeletReport {
        self.snapshot(&self.shared.lock())
    }

    /// Waits until `condition` holds of the report so far (checked at
    /// every answer), up to `deadline`, and returns that report. When the
    /// deadline passes or the session ends first, the error
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
        let _ = self.stop.send(Message::Stop);
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
    }
}

/// One probe's schedule in the driver.
struct Lane {
    kind: ProbeKind,
    spec: ProbeSpec,
    /// To its prober thread: probe now, for this container.
    requests: mpsc::Sender<u32>,
    next_tick: Instant,
    in_flight: bool,
    /// Probe at the next chance, tick or not (readiness when start-up
    /// passes).
    triggered: bool,
}

struct Driver {
    schedule: Vec<(ProbeKind, ProbeSpec)>,
    addr: SocketAddr,
    started: Instant,
    end: Instant,
    shared: Arc<Shared>,
    messages: mpsc::Receiver<Message>,
    sender: mpsc::Sender<Message>,
}

/// The timed loop: sends each probe when due on its own thread (a slow
/// answer delays no other probe), feeds the answers to the pure prober,
/// records what it decides.
fn drive(driver: Driver) {
    let Driver {
        schedule,
        addr,
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
        let (requests, inbox) = mpsc::channel::<u32>();
        let answers = sender.clone();
        let (path, grpc_service, timeout) =
            (spec.path.clone(), spec.grpc_service.clone(), spec.timeout);
        std::thread::Builder::new()
            .name(format!("kubelet-{kind}"))
            .spawn(move || {
                for container in inbox {
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
        });
    }
    drop(sender);
    let mut pod: Pod<ProbeRecord> = Pod::new(thresholds);
    let mut container_start = started;
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
            if pod.wants(lane.kind) && delay_over && lane.requests.send(pod.container()).is_ok() {
                lane.in_flight = true;
            }
        }
        let wake = lanes
            .iter()
            .filter(|lane| !lane.in_flight)
            .map(|lane| lane.next_tick)
            .fold(end, Instant::min);
        let message = match messages.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => continue,
            Err(RecvTimeoutError::Disconnected) => break,
        };
        let Message::Answer {
            kind,
            container,
            at,
            answer,
        } = message
        else {
            break;
        };
        if at >= end {
            break;
        }
        if let Some(lane) = lanes.iter_mut().find(|lane| lane.kind == kind) {
            lane.in_flight = false;
        }
        let at_watch = at.saturating_duration_since(started);
        let probed = ProbeRecord {
            probe: kind,
            at: at_watch,
            answer,
        };
        // An answer for a container the kubelet has since killed counts
        // for nothing.
        let decisions = if container == pod.container() {
            pod.feed(kind, probed.answer.passed(), probed.clone())
        } else {
            Vec::new()
        };
        for decision in &decisions {
            match decision.event {
                EventKind::Started => {
                    for lane in &mut lanes {
                        lane.triggered |= lane.kind == ProbeKind::Readiness;
                    }
                }
                event if event.restarts() => container_start = at,
                _ => {}
            }
        }
        shared.update(|progress| {
            progress.report.probes.push(probed);
            for decision in decisions {
                progress.report.record(at_watch, decision);
            }
        });
    }
    let watched = started.elapsed().min(end - started);
    shared.update(|progress| progress.finished = Some(watched));
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
    }

    impl Fake {
        fn new() -> Fake {
            let listener = TcpListener::bind("127.0.0.1:0").unwrap();
            let fake = Fake {
                addr: listener.local_addr().unwrap(),
                startup: Arc::new(AtomicBool::new(true)),
                live: Arc::new(AtomicBool::new(true)),
                ready: Arc::new(AtomicBool::new(true)),
            };
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
        let watch = kubelet().start_at(fake.addr, None, Duration::from_secs(20));
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
        let watch = kubelet().start_at(fake.addr, None, Duration::from_secs(20));
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
        let watch = kubelet().start_at(fake.addr, None, Duration::from_millis(300));
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
        let short = kubelet().start_at(fake.addr, None, Duration::from_secs(60));
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
    #[should_panic(expected = "a time scale is finite and above zero")]
    fn a_time_scale_must_be_positive() {
        let _ = kubelet().time_scale(0.0);
    }
}
