//! The kubelet's prober as a pure state machine: probe results in, what the
//! kubelet would do out. No clock and no I/O: the timed driver decides when
//! to probe and stamps the decisions with their time.
//!
//! It follows `pkg/kubelet/prober/worker.go`: each probe publishes a result
//! once a run of equal results reaches its threshold (readiness starts as
//! failing, liveness as passing, startup as unknown); liveness and
//! readiness are not probed until the startup probe has passed, nor the
//! startup probe after; a published startup or liveness failure kills the
//! container, and the new one starts over after the restart back-off.

use std::collections::VecDeque;

use super::event::EventKind;
use super::manifest::ProbeKind;

/// One probe's worker: its thresholds, the result it publishes, and the
/// current run of equal results with their answers.
#[derive(Debug, Clone)]
pub(crate) struct ProbeLoop<A> {
    success_threshold: u32,
    failure_threshold: u32,
    initial: Option<bool>,
    published: Option<bool>,
    last: Option<bool>,
    run: u32,
    answers: VecDeque<A>,
}

impl<A: Clone> ProbeLoop<A> {
    /// A worker for a new container. Thresholds below 1 count as 1.
    pub(crate) fn new(kind: ProbeKind, success_threshold: u32, failure_threshold: u32) -> Self {
        let initial = match kind {
            ProbeKind::Startup => None,
            ProbeKind::Liveness => Some(true),
            ProbeKind::Readiness => Some(false),
        };
        ProbeLoop {
            success_threshold: success_threshold.max(1),
            failure_threshold: failure_threshold.max(1),
            initial,
            published: initial,
            last: None,
            run: 0,
            answers: VecDeque::new(),
        }
    }

    /// The result the kubelet acts on: `None` while unknown.
    #[cfg(test)]
    pub(crate) fn published(&self) -> Option<bool> {
        self.published
    }

    /// Takes one probe's result. When it changes the published result,
    /// returns the new result and the answers that decided it (the last
    /// threshold's worth of the run).
    pub(crate) fn feed(&mut self, passed: bool, answer: A) -> Option<(bool, Vec<A>)> {
        if self.last == Some(passed) {
            self.run = self.run.saturating_add(1);
        } else {
            self.last = Some(passed);
            self.run = 1;
            self.answers.clear();
        }
        let threshold = if passed {
            self.success_threshold
        } else {
            self.failure_threshold
        };
        self.answers.push_back(answer);
        while self.answers.len() > threshold as usize {
            self.answers.pop_front();
        }
        if self.run < threshold || self.published == Some(passed) {
            return None;
        }
        self.published = Some(passed);
        Some((passed, self.answers.iter().cloned().collect()))
    }

    /// Counts one more failure and publishes a failure now, whatever the
    /// threshold: the answers of the run of failures, this one last.
    pub(crate) fn fail_now(&mut self, answer: A) -> Vec<A> {
        if self.last != Some(false) {
            self.last = Some(false);
            self.run = 0;
            self.answers.clear();
        }
        self.run = self.run.saturating_add(1);
        self.answers.push_back(answer);
        while self.answers.len() > self.failure_threshold as usize {
            self.answers.pop_front();
        }
        self.published = Some(false);
        self.answers.iter().cloned().collect()
    }

    /// A new container: the initial result again, no run.
    pub(crate) fn reset(&mut self) {
        self.published = self.initial;
        self.last = None;
        self.run = 0;
        self.answers.clear();
    }
}

/// Something the kubelet would do, and the answers that decided it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Decision<A> {
    pub(crate) event: EventKind,
    pub(crate) answers: Vec<A>,
}

/// A pod of one container, as its kubelet sees it.
#[derive(Debug, Clone)]
pub(crate) struct Pod<A> {
    loops: [Option<ProbeLoop<A>>; 3],
    started: bool,
    ready: bool,
    /// The container's process runs (not yet exited, maybe being killed).
    running: bool,
    /// A kill was decided: liveness and startup are on hold until the
    /// next container.
    killing: bool,
    deleted: bool,
    container: u32,
    containers: u32,
}

impl<A: Clone> Pod<A> {
    /// A pod with these probes' (success, failure) thresholds, indexed by
    /// [`ProbeKind`]; call [`start_container`](Self::start_container)
    /// next.
    pub(crate) fn new(thresholds: [Option<(u32, u32)>; 3]) -> Self {
        let mut loops = [None, None, None];
        for kind in ProbeKind::ALL {
            loops[kind.index()] = thresholds[kind.index()]
                .map(|(success, failure)| ProbeLoop::new(kind, success, failure));
        }
        Pod {
            loops,
            started: false,
            ready: false,
            running: false,
            killing: false,
            deleted: false,
            container: 0,
            containers: 0,
        }
    }

    /// Which container this is: 0, then one more at each restart.
    pub(crate) fn container(&self) -> u32 {
        self.container
    }

    /// Whether the container has started (its startup probe passed).
    #[cfg(test)]
    pub(crate) fn started(&self) -> bool {
        self.started
    }

    /// Whether the pod is in the endpoints.
    #[cfg(test)]
    pub(crate) fn ready(&self) -> bool {
        self.ready
    }

    /// Whether the container's process runs.
    pub(crate) fn running(&self) -> bool {
        self.running
    }

    /// Whether the pod was deleted.
    pub(crate) fn deleted(&self) -> bool {
        self.deleted
    }

    /// Whether the kubelet sends this probe now, following
    /// `pkg/kubelet/prober/worker.go`'s `doProbe`: only to a running
    /// container; the startup probe until it has passed, the other two
    /// after; liveness and startup neither once a kill is decided (on
    /// hold until a new container) nor once the pod is deleted, while
    /// readiness goes on until the container exits.
    pub(crate) fn wants(&self, kind: ProbeKind) -> bool {
        let held = self.killing || self.deleted;
        self.running
            && self.loops[kind.index()].is_some()
            && match kind {
                ProbeKind::Startup => !self.started && !held,
                ProbeKind::Liveness => self.started && !held,
                ProbeKind::Readiness => self.started,
            }
    }

    /// A container starts (the first, or a restart's): every probe starts
    /// over; without a startup probe it has started at once, and without
    /// a readiness probe it is ready once started.
    pub(crate) fn start_container(&mut self) -> Vec<Decision<A>> {
        self.container = self.containers;
        self.containers += 1;
        self.running = true;
        self.killing = false;
        self.started = false;
        for probe in self.loops.iter_mut().flatten() {
            probe.reset();
        }
        let mut decisions = Vec::new();
        if self.loops[ProbeKind::Startup.index()].is_none() {
            self.mark_started(Vec::new(), &mut decisions);
        }
        decisions
    }

    /// The container's process ended (killed, or by itself): a container
    /// that does not run is not ready.
    pub(crate) fn container_exited(&mut self) -> Vec<Decision<A>> {
        self.running = false;
        let mut decisions = Vec::new();
        self.set_ready(false, Vec::new(), &mut decisions);
        decisions
    }

    /// The pod is deleted. As in `worker.go`, the liveness and startup
    /// workers record a success and stop: a container not yet started
    /// counts as started, and readiness is probed from then on, until
    /// the container exits. The pod leaves the endpoints at once: a
    /// terminating endpoint is not ready, whatever readiness says.
    pub(crate) fn delete(&mut self) -> Vec<Decision<A>> {
        let mut decisions = Vec::new();
        if self.deleted {
            return decisions;
        }
        self.set_ready(false, Vec::new(), &mut decisions);
        self.deleted = true;
        self.started = true;
        decisions
    }

    /// Takes one probe's result; a probe the kubelet would not have sent
    /// now is ignored.
    pub(crate) fn feed(&mut self, kind: ProbeKind, passed: bool, answer: A) -> Vec<Decision<A>> {
        if !self.wants(kind) {
            return Vec::new();
        }
        let Some((result, answers)) = self.loops[kind.index()]
            .as_mut()
            .and_then(|probe| probe.feed(passed, answer))
        else {
            return Vec::new();
        };
        self.publish(kind, result, answers)
    }

    /// A failed startup answer once the start-up budget's time is over:
    /// the startup probe fails now, with the run's answers.
    pub(crate) fn startup_overdue(&mut self, answer: A) -> Vec<Decision<A>> {
        if !self.wants(ProbeKind::Startup) {
            return Vec::new();
        }
        let Some(probe) = self.loops[ProbeKind::Startup.index()].as_mut() else {
            return Vec::new();
        };
        let answers = probe.fail_now(answer);
        self.publish(ProbeKind::Startup, false, answers)
    }

    fn publish(&mut self, kind: ProbeKind, result: bool, answers: Vec<A>) -> Vec<Decision<A>> {
        let mut decisions = Vec::new();
        match (kind, result) {
            (ProbeKind::Startup, true) => self.mark_started(answers, &mut decisions),
            (ProbeKind::Startup, false) => {
                self.killing = true;
                decisions.push(Decision {
                    event: EventKind::StartupBudgetExceeded,
                    answers,
                });
            }
            (ProbeKind::Liveness, false) => {
                self.killing = true;
                decisions.push(Decision {
                    event: EventKind::LivenessRestart,
                    answers,
                });
            }
            // Liveness starts as passing and is reset to it: never a change.
            (ProbeKind::Liveness, true) => {}
            (ProbeKind::Readiness, ready) => self.set_ready(ready, answers, &mut decisions),
        }
        decisions
    }

    fn mark_started(&mut self, answers: Vec<A>, decisions: &mut Vec<Decision<A>>) {
        self.started = true;
        decisions.push(Decision {
            event: EventKind::Started,
            answers: answers.clone(),
        });
        if self.loops[ProbeKind::Readiness.index()].is_none() {
            self.set_ready(true, answers, decisions);
        }
    }

    fn set_ready(&mut self, ready: bool, answers: Vec<A>, decisions: &mut Vec<Decision<A>>) {
        // A deleted pod's endpoint stays out, whatever readiness says.
        if self.deleted {
            return;
        }
        if self.ready != ready {
            self.ready = ready;
            let event = if ready {
                EventKind::JoinedEndpoints
            } else {
                EventKind::LeftEndpoints
            };
            decisions.push(Decision { event, answers });
        }
    }
}

#[cfg(test)]
mod tests;
