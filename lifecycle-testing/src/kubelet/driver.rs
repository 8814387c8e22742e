//! The kubelet's timed loop: sends each probe when due on its own thread
//! (a slow answer delays no other probe), feeds the answers to the pure
//! prober, records what it decides, and carries out kills and restarts.

use std::net::SocketAddr;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::sync::Arc;
use std::time::{Duration, Instant};

use super::back_off::{BackOff, BACK_OFF_INITIAL, BACK_OFF_MAX};
use super::event::EventKind;
use super::kill::begin_kill;
use super::manifest::{Manifest, ProbeKind, ProbeSpec};
use super::message::Message;
use super::pod::Target;
use super::prober::{Decision, Pod};
use super::report::{Kill, KubeletReport, ProbeRecord};
use super::session::Shared;
use crate::probe::{http_probe, ProbeAnswer};
use crate::sync::lock;

/// How often the kubelet looks whether a container it runs has exited.
const EXIT_POLL: Duration = Duration::from_millis(10);

/// What a session gives its driver.
pub(super) struct Driver {
    pub(super) schedule: Vec<(ProbeKind, ProbeSpec)>,
    pub(super) manifest: Manifest,
    pub(super) time_scale: f64,
    pub(super) target: Target,
    pub(super) started: Instant,
    pub(super) end: Instant,
    pub(super) shared: Arc<Shared>,
    pub(super) messages: mpsc::Receiver<Message>,
    pub(super) sender: mpsc::Sender<Message>,
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

/// The driver's state between two messages.
struct Run {
    manifest: Manifest,
    target: Target,
    /// The watch's start: the report's clock.
    started: Instant,
    end: Instant,
    shared: Arc<Shared>,
    sender: mpsc::Sender<Message>,
    lanes: Vec<Lane>,
    pod: Pod<ProbeRecord>,
    back_off: BackOff,
    /// The stop signal a kill sends.
    signal: String,
    /// When the container probed now started.
    container_start: Instant,
    /// Its probe address, while one runs.
    addr: Option<SocketAddr>,
    /// When the next container starts, after a back-off.
    next_start: Option<Instant>,
    /// A kill of the kubelet's own process is under way.
    killing: bool,
}

/// Runs the kubelet until the session's end or its stop.
pub(super) fn drive(driver: Driver) {
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
    for (kind, spec) in &schedule {
        thresholds[kind.index()] = Some((spec.success_threshold, spec.failure_threshold));
    }
    let (container_start, addr) = match &target {
        Target::Borrowed { addr, spawned } => (*spawned, *addr),
        Target::Owned { first, .. } => *first,
    };
    let mut run = Run {
        lanes: schedule
            .into_iter()
            .map(|(kind, spec)| start_lane(kind, spec, started, &sender))
            .collect(),
        signal: manifest.stop_signal().unwrap_or("SIGTERM").to_owned(),
        manifest,
        target,
        started,
        end,
        shared,
        sender,
        pod: Pod::new(thresholds),
        back_off: BackOff::new(
            BACK_OFF_INITIAL.mul_f64(time_scale),
            BACK_OFF_MAX.mul_f64(time_scale),
        ),
        container_start,
        addr: Some(addr),
        next_start: None,
        killing: false,
    };
    let decisions = run.pod.start_container();
    run.record(started, decisions);
    while run.step(&messages) {}
    let watched = started.elapsed().min(end - started);
    run.shared
        .update(|progress| progress.finished = Some(watched));
}

/// Starts the prober thread of one probe: it sends the probe each time
/// the driver asks, and the answer back to the driver.
fn start_lane(
    kind: ProbeKind,
    spec: ProbeSpec,
    started: Instant,
    sender: &mpsc::Sender<Message>,
) -> Lane {
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
    Lane {
        kind,
        spec,
        requests,
        next_tick: started,
        in_flight: false,
        triggered: false,
        warned: false,
    }
}

impl Run {
    /// `at` on the report's clock.
    fn since(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.started)
    }

    /// Records the prober's decisions, taken at `at`.
    fn record(&self, at: Instant, decisions: Vec<Decision<ProbeRecord>>) {
        self.note_and_record(at, None, decisions);
    }

    /// Records what the kubelet did at `at` (an event and its detail) and
    /// the prober's decisions that follow, in one change of the report.
    fn note_and_record(
        &self,
        at: Instant,
        note: Option<(EventKind, String)>,
        decisions: Vec<Decision<ProbeRecord>>,
    ) {
        let at = self.since(at);
        self.shared.update(|progress| {
            if let Some((event, detail)) = note {
                progress.report.note(at, event, detail);
            }
            for decision in decisions {
                progress.report.record(at, decision);
            }
        });
    }

    /// One turn of the loop: what is due now, then the next message or
    /// the next time something is due. `false` once the session is over.
    fn step(&mut self, messages: &mpsc::Receiver<Message>) -> bool {
        let now = Instant::now();
        if now >= self.end {
            return false;
        }
        self.notice_own_exit(now);
        self.start_due_container(now);
        self.tick_lanes(now);
        let wake = self.next_wake(now);
        let message = match messages.recv_timeout(wake.saturating_duration_since(now)) {
            Ok(message) => message,
            Err(RecvTimeoutError::Timeout) => return true,
            Err(RecvTimeoutError::Disconnected) => return false,
        };
        match message {
            Message::Stop => return false,
            Message::Delete => self.on_delete(),
            Message::Killed { at, kill } => self.on_killed(at, kill),
            Message::Spawned { at, addr } => self.on_spawned(at, addr),
            Message::Answer {
                kind,
                container,
                at,
                answer,
            } => {
                if at >= self.end {
                    return false;
                }
                self.on_answer(kind, container, at, answer);
            }
        }
        true
    }

    /// A container the kubelet runs may exit by itself: it is restarted.
    fn notice_own_exit(&mut self, now: Instant) {
        let Target::Owned { slot, .. } = &self.target else {
            return;
        };
        let exited = match &*lock(slot) {
            Some(service) if self.pod.running() && !self.killing => service.try_exit(),
            _ => None,
        };
        let Some(exit) = exited else { return };
        self.container_gone(now, |report, at| {
            report.note(at, EventKind::Exited, exit.to_string());
        });
    }

    /// Starts the next container once its back-off has passed.
    fn start_due_container(&mut self, now: Instant) {
        if self.next_start.is_none_or(|at| at > now) {
            return;
        }
        self.next_start = None;
        match &self.target {
            Target::Borrowed { .. } => {
                self.container_start = now;
                self.restarted(now);
            }
            Target::Owned { builder, slot, .. } => {
                let (builder, slot, sender) = (builder.clone(), slot.clone(), self.sender.clone());
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

    /// Sends each probe that is due, or triggered, and wanted now.
    fn tick_lanes(&mut self, now: Instant) {
        for lane in &mut self.lanes {
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
            let delay_over = now >= self.container_start + lane.spec.initial_delay;
            let Some(addr) = self.addr else { continue };
            if self.pod.wants(lane.kind)
                && delay_over
                && lane.requests.send((self.pod.container(), addr)).is_ok()
            {
                lane.in_flight = true;
            }
        }
    }

    /// When the loop has something to do next, unless a message comes.
    fn next_wake(&self, now: Instant) -> Instant {
        let mut wake = self
            .lanes
            .iter()
            .filter(|lane| !lane.in_flight)
            .map(|lane| lane.next_tick)
            .fold(self.end, Instant::min);
        if let Some(at) = self.next_start {
            wake = wake.min(at);
        }
        if matches!(self.target, Target::Owned { .. }) && self.pod.running() && !self.killing {
            wake = wake.min(now + EXIT_POLL);
        }
        wake
    }

    /// The test deleted the pod.
    fn on_delete(&mut self) {
        let at = Instant::now();
        let decisions = self.pod.delete();
        let note = (
            EventKind::PodDeleted,
            "liveness and startup stopped; readiness goes on until the exit".to_owned(),
        );
        self.note_and_record(at, Some(note), decisions);
        self.next_start = None;
        if self.pod.running() && !self.killing {
            let grace = self.manifest.termination_grace_period();
            self.kill(at, EventKind::PodDeleted, grace);
        }
    }

    /// A kill ended: the process has exited.
    fn on_killed(&mut self, at: Instant, kill: Kill) {
        self.killing = false;
        self.container_gone(at, |report, at| {
            report.note(at, EventKind::Killed, kill.to_string());
            report.kills.push(kill);
        });
    }

    /// A new process was started, or could not be.
    fn on_spawned(&mut self, at: Instant, spawned: Result<SocketAddr, String>) {
        match spawned {
            Ok(spawned) if !self.pod.deleted() => {
                self.addr = Some(spawned);
                self.container_start = at;
                self.restarted(at);
            }
            // Deleted while it started: it never runs as the pod's.
            Ok(_) => {
                if let Target::Owned { slot, .. } = &self.target {
                    drop(lock(slot).take());
                }
            }
            Err(error) => {
                let since = self.since(at);
                self.shared.update(|progress| {
                    progress.report.note(since, EventKind::Exited, error);
                });
                self.schedule_restart(at);
            }
        }
    }

    /// A probe's answer: fed to the prober (unless it is for a container
    /// since killed), recorded with what the prober decides, and a kill if
    /// it decides one.
    fn on_answer(&mut self, kind: ProbeKind, container: u32, at: Instant, answer: ProbeAnswer) {
        let Some(lane) = self.lanes.iter_mut().find(|lane| lane.kind == kind) else {
            return;
        };
        lane.in_flight = false;
        let warned = std::mem::replace(&mut lane.warned, answer.warning.is_some());
        let overdue = kind == ProbeKind::Startup
            && at
                >= self.container_start
                    + lane.spec.initial_delay
                    + lane.spec.period * lane.spec.failure_threshold;
        let probe_grace = lane.spec.termination_grace_period;
        let current = container == self.pod.container();
        let probed = ProbeRecord {
            probe: kind,
            at: self.since(at),
            answer,
        };
        // An answer for a container the kubelet has since killed counts
        // for nothing.
        let decisions = if !current {
            Vec::new()
        } else if overdue && !probed.answer.passed() {
            self.pod.startup_overdue(probed.clone())
        } else {
            self.pod.feed(kind, probed.answer.passed(), probed.clone())
        };
        let mut kill = None;
        for decision in &decisions {
            match decision.event {
                EventKind::Started => {
                    for lane in &mut self.lanes {
                        lane.triggered |= lane.kind == ProbeKind::Readiness;
                    }
                }
                event if event.restarts() => kill = Some(event),
                _ => {}
            }
        }
        let warning = (current && !warned)
            .then(|| probed.answer.warning.clone())
            .flatten();
        self.shared.update(|progress| {
            record_answer(&mut progress.report, probed, warning, decisions);
        });
        if let Some(reason) = kill {
            let grace = probe_grace.unwrap_or(self.manifest.termination_grace_period());
            self.kill(at, reason, grace);
        }
    }

    /// Kills the container for `reason`, with `grace`: the kubelet's own
    /// process on a thread of its own; the test's is not touched, and the
    /// container is gone at once.
    fn kill(&mut self, at: Instant, reason: EventKind, grace: Duration) {
        self.killing = begin_kill(
            &self.target,
            &self.manifest,
            (at, reason, grace, self.signal.clone()),
            self.started,
            &self.sender,
        );
        if !self.killing && reason != EventKind::PodDeleted {
            let decisions = self.pod.container_exited();
            self.record(at, decisions);
            self.schedule_restart(at);
        }
    }

    /// The container has exited at `at` (`note` records how): the pod
    /// leaves the endpoints, and a new container starts after the
    /// back-off unless the pod is deleted.
    fn container_gone(&mut self, at: Instant, note: impl FnOnce(&mut KubeletReport, Duration)) {
        self.addr = None;
        let decisions = self.pod.container_exited();
        let since = self.since(at);
        self.shared.update(|progress| {
            note(&mut progress.report, since);
            for decision in decisions {
                progress.report.record(since, decision);
            }
        });
        if !self.pod.deleted() {
            self.schedule_restart(at);
        }
    }

    /// Records the back-off before the next container, which starts when
    /// it has passed.
    fn schedule_restart(&mut self, finished: Instant) {
        let since = self.since(finished);
        let delay = self.back_off.delay(since);
        self.shared.update(|progress| {
            progress.report.back_offs.push(delay);
            if !delay.is_zero() {
                progress.report.note(
                    since,
                    EventKind::BackOff,
                    format!(
                        "back-off {} ms restarting failed container",
                        delay.as_millis()
                    ),
                );
            }
        });
        self.next_start = Some(finished + delay);
    }

    /// A new container has started: its probes start over.
    fn restarted(&mut self, at: Instant) {
        let decisions = self.pod.start_container();
        // Each worker's ticker keeps its beat: the new container is probed
        // at its next tick, as `worker.go` finds a new container ID.
        for lane in &mut self.lanes {
            lane.warned = false;
        }
        let note = (
            EventKind::Restarted,
            format!("container {}", self.pod.container()),
        );
        self.note_and_record(at, Some(note), decisions);
    }
}

/// Records one answer, its warning as an event (the first of a run of
/// warnings only), and the decisions it led to.
fn record_answer(
    report: &mut KubeletReport,
    probed: ProbeRecord,
    warning: Option<String>,
    decisions: Vec<Decision<ProbeRecord>>,
) {
    let at = probed.at;
    report.probes.push(probed.clone());
    if let Some(warning) = warning {
        let kind = probed.probe;
        report.record_with(
            at,
            Decision {
                event: EventKind::ProbeWarning,
                answers: vec![probed],
            },
            Some(format!("{kind} probe warning: {warning}")),
        );
    }
    for decision in decisions {
        report.record(at, decision);
    }
}
