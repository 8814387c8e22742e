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
use std::time::Duration;

use super::{EventKind, ProbeKind};

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

/// The kubelet's restart back-off of a container
/// (`k8s.io/client-go/util/flowcontrol/backoff.go`, as
/// `pkg/kubelet/kuberuntime/kuberuntime_manager.go`'s `doBackOff` uses
/// it): the first restart comes at once, the next after `initial`, then
/// twice as long each time up to `max`; a container that ran for more
/// than twice `max` since the last restart starts a fresh back-off.
#[derive(Debug, Clone)]
pub(crate) struct BackOff {
    initial: Duration,
    max: Duration,
    /// The current back-off, and when it was last moved on.
    entry: Option<(Duration, Duration)>,
}

impl BackOff {
    pub(crate) fn new(initial: Duration, max: Duration) -> BackOff {
        BackOff {
            initial,
            max,
            entry: None,
        }
    }

    /// How long after `finished` (the container's exit, on the watch's
    /// clock) the next container starts.
    pub(crate) fn delay(&mut self, finished: Duration) -> Duration {
        match self.entry {
            Some((backoff, last_update))
                if finished.saturating_sub(last_update) <= self.max * 2 =>
            {
                self.entry = Some(((backoff * 2).min(self.max), finished + backoff));
                backoff
            }
            _ => {
                self.entry = Some((self.initial, finished));
                Duration::ZERO
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use EventKind::*;
    use ProbeKind::*;

    /// Feeds `results` (`+` pass, `-` fail), numbering the answers from 0,
    /// and says at which answer the published result changed, to what,
    /// decided by which answers.
    fn run(probe: &mut ProbeLoop<usize>, results: &str) -> Vec<(usize, bool, Vec<usize>)> {
        results
            .chars()
            .enumerate()
            .filter_map(|(i, c)| {
                probe
                    .feed(c == '+', i)
                    .map(|(result, answers)| (i, result, answers))
            })
            .collect()
    }

    #[test]
    fn readiness_starts_failing_and_flips_on_its_thresholds() {
        let mut readiness = ProbeLoop::new(Readiness, 1, 3);
        assert_eq!(readiness.published(), Some(false));
        assert_eq!(
            run(&mut readiness, "--+--+---+"),
            [
                (2, true, vec![2]),
                (8, false, vec![6, 7, 8]),
                (9, true, vec![9])
            ]
        );
    }

    #[test]
    fn readiness_needs_its_success_threshold_in_a_row() {
        let mut readiness = ProbeLoop::new(Readiness, 3, 2);
        assert_eq!(
            run(&mut readiness, "++-+++++--+-++"),
            [(5, true, vec![3, 4, 5]), (9, false, vec![8, 9])]
        );
        assert_eq!(
            readiness.published(),
            Some(false),
            "two successes are not three"
        );
    }

    #[test]
    fn a_failure_run_longer_than_the_threshold_is_one_change() {
        let mut readiness = ProbeLoop::new(Readiness, 1, 2);
        assert_eq!(
            run(&mut readiness, "+------+"),
            [
                (0, true, vec![0]),
                (2, false, vec![1, 2]),
                (7, true, vec![7])
            ]
        );
    }

    #[test]
    fn liveness_starts_passing_and_fails_on_its_threshold() {
        let mut liveness = ProbeLoop::new(Liveness, 1, 3);
        assert_eq!(liveness.published(), Some(true));
        assert_eq!(run(&mut liveness, "++--+--+"), []);
        assert_eq!(run(&mut liveness, "---"), [(2, false, vec![0, 1, 2])]);
    }

    #[test]
    fn startup_is_unknown_until_it_passes_or_runs_out() {
        let mut startup = ProbeLoop::new(Startup, 1, 4);
        assert_eq!(startup.published(), None);
        assert_eq!(run(&mut startup, "---+"), [(3, true, vec![3])]);
        let mut startup = ProbeLoop::new(Startup, 1, 4);
        assert_eq!(run(&mut startup, "-+---"), [(1, true, vec![1])]);
        let mut startup = ProbeLoop::new(Startup, 1, 4);
        assert_eq!(run(&mut startup, "---"), []);
        assert_eq!(run(&mut startup, "-"), [(0, false, vec![0, 1, 2, 0])]);
    }

    #[test]
    fn a_reset_forgets_the_run_and_the_result() {
        let mut readiness = ProbeLoop::new(Readiness, 1, 2);
        assert_eq!(run(&mut readiness, "+-"), [(0, true, vec![0])]);
        readiness.reset();
        assert_eq!(readiness.published(), Some(false));
        assert_eq!(
            run(&mut readiness, "-"),
            [],
            "the run before the reset is gone"
        );
        assert_eq!(run(&mut readiness, "+"), [(0, true, vec![0])]);
    }

    #[test]
    fn thresholds_of_one_decide_on_every_change() {
        let mut readiness = ProbeLoop::new(Readiness, 0, 0);
        assert_eq!(
            run(&mut readiness, "+-+"),
            [(0, true, vec![0]), (1, false, vec![1]), (2, true, vec![2])]
        );
    }

    /// Every sequence of up to 8 results, against a plain recount: the
    /// published result changes exactly when the run of equal results
    /// ending here reaches its threshold and differs from what was
    /// published.
    #[test]
    fn every_short_sequence_agrees_with_a_recount() {
        for (success, failure) in [(1, 1), (1, 3), (2, 2), (3, 1)] {
            for kind in [Readiness, Liveness, Startup] {
                for bits in 0u32..(1 << 8) {
                    let results: Vec<bool> = (0..8).map(|i| bits & (1 << i) != 0).collect();
                    let mut probe = ProbeLoop::new(kind, success, failure);
                    let mut published = probe.published();
                    for (i, &passed) in results.iter().enumerate() {
                        let run = results[..=i]
                            .iter()
                            .rev()
                            .take_while(|&&r| r == passed)
                            .count();
                        let threshold = if passed { success } else { failure } as usize;
                        let expected = (run >= threshold && published != Some(passed))
                            .then(|| (passed, (i + 1 - run.min(threshold)..=i).collect()));
                        if expected.is_some() {
                            published = Some(passed);
                        }
                        assert_eq!(
                            probe.feed(passed, i),
                            expected,
                            "{kind} {success}/{failure} {results:?} at {i}"
                        );
                    }
                }
            }
        }
    }

    fn events(decisions: &[Decision<usize>]) -> Vec<EventKind> {
        decisions.iter().map(|d| d.event).collect()
    }

    fn all_probes() -> Pod<usize> {
        Pod::new([Some((1, 2)), Some((1, 2)), Some((1, 2))])
    }

    #[test]
    fn liveness_and_readiness_wait_for_the_startup_probe() {
        let mut pod = all_probes();
        assert!(pod.start_container().is_empty());
        assert!(pod.wants(Startup) && !pod.wants(Liveness) && !pod.wants(Readiness));
        assert!(pod.feed(Readiness, true, 0).is_empty(), "not sent yet");
        assert!(pod.feed(Liveness, false, 1).is_empty());
        assert!(
            pod.feed(Liveness, false, 2).is_empty(),
            "no restart before start-up"
        );
        assert!(pod.feed(Startup, false, 3).is_empty());
        let started = pod.feed(Startup, true, 4);
        assert_eq!(
            started,
            [Decision {
                event: Started,
                answers: vec![4]
            }]
        );
        assert!(!pod.wants(Startup) && pod.wants(Liveness) && pod.wants(Readiness));
        assert!(!pod.ready(), "not ready until readiness passes");
        assert_eq!(events(&pod.feed(Readiness, true, 5)), [JoinedEndpoints]);
        assert!(pod.ready());
        assert!(pod.feed(Startup, false, 6).is_empty(), "no longer sent");
    }

    #[test]
    fn readiness_takes_the_pod_out_of_rotation_and_back_without_a_restart() {
        let mut pod = all_probes();
        pod.start_container();
        pod.feed(Startup, true, 0);
        pod.feed(Readiness, true, 1);
        assert!(pod.feed(Readiness, false, 2).is_empty());
        let left = pod.feed(Readiness, false, 3);
        assert_eq!(
            left,
            [Decision {
                event: LeftEndpoints,
                answers: vec![2, 3]
            }]
        );
        assert!(pod.feed(Readiness, false, 4).is_empty());
        assert_eq!(events(&pod.feed(Readiness, true, 5)), [JoinedEndpoints]);
        assert_eq!(pod.container(), 0);
        assert!(pod.started());
    }

    #[test]
    fn a_liveness_failure_kills_the_container_and_start_up_runs_again() {
        let mut pod = all_probes();
        pod.start_container();
        pod.feed(Startup, true, 0);
        pod.feed(Readiness, true, 1);
        pod.feed(Liveness, false, 2);
        let restart = pod.feed(Liveness, false, 3);
        assert_eq!(
            restart,
            [Decision {
                event: LivenessRestart,
                answers: vec![2, 3]
            }]
        );
        assert!(!pod.wants(Liveness), "liveness is on hold during the kill");
        assert!(pod.wants(Readiness), "readiness goes on until the exit");
        assert!(pod.ready(), "ready until the container exits");
        assert_eq!(events(&pod.container_exited()), [LeftEndpoints]);
        assert!(!pod.wants(Readiness) && !pod.wants(Startup));
        assert!(pod.start_container().is_empty());
        assert_eq!(pod.container(), 1);
        assert!(!pod.started() && !pod.ready());
        assert!(pod.wants(Startup) && !pod.wants(Liveness));
        assert_eq!(events(&pod.feed(Startup, true, 4)), [Started]);
        // The new container's liveness starts from a clean run.
        assert!(pod.feed(Liveness, false, 5).is_empty());
        assert!(pod.feed(Liveness, true, 6).is_empty());
        assert!(pod.feed(Liveness, false, 7).is_empty());
        assert_eq!(events(&pod.feed(Liveness, false, 8)), [LivenessRestart]);
        pod.container_exited();
        pod.start_container();
        assert_eq!(pod.container(), 2);
    }

    #[test]
    fn a_startup_over_its_budget_kills_the_container() {
        let mut pod = all_probes();
        pod.start_container();
        assert!(pod.feed(Startup, false, 0).is_empty());
        let killed = pod.feed(Startup, false, 1);
        assert_eq!(
            killed,
            [Decision {
                event: StartupBudgetExceeded,
                answers: vec![0, 1]
            }]
        );
        assert!(!pod.wants(Startup), "on hold until the new container");
        assert!(pod.container_exited().is_empty(), "never ready");
        pod.start_container();
        assert_eq!(pod.container(), 1);
        assert!(pod.wants(Startup));
        assert!(pod.feed(Startup, false, 2).is_empty(), "a fresh budget");
        assert_eq!(events(&pod.feed(Startup, true, 3)), [Started]);
    }

    #[test]
    fn a_startup_overdue_fails_at_once_with_the_run() {
        let mut pod: Pod<usize> = Pod::new([Some((1, 5)), None, None]);
        pod.start_container();
        assert!(pod.feed(Startup, false, 0).is_empty());
        assert_eq!(
            pod.startup_overdue(1),
            [Decision {
                event: StartupBudgetExceeded,
                answers: vec![0, 1]
            }]
        );
        assert!(pod.startup_overdue(2).is_empty(), "once");
    }

    #[test]
    fn a_deleted_pod_stops_liveness_and_startup_and_goes_on_probing_readiness() {
        let mut pod = all_probes();
        pod.start_container();
        pod.feed(Startup, true, 0);
        pod.feed(Readiness, true, 1);
        assert_eq!(events(&pod.delete()), [LeftEndpoints]);
        assert!(pod.deleted());
        assert!(!pod.wants(Liveness) && !pod.wants(Startup));
        assert!(pod.wants(Readiness));
        assert!(pod.feed(Liveness, false, 2).is_empty());
        assert!(pod.feed(Liveness, false, 3).is_empty(), "never a restart");
        assert!(pod.feed(Readiness, false, 4).is_empty());
        assert!(
            pod.feed(Readiness, true, 5).is_empty(),
            "a terminating pod does not join the endpoints"
        );
        assert!(pod.container_exited().is_empty());
        assert!(!pod.wants(Readiness));

        // Deleted before start-up: counted as started, readiness probed.
        let mut starting = all_probes();
        starting.start_container();
        assert!(starting.delete().is_empty());
        assert!(starting.started() && starting.wants(Readiness));
        assert!(!starting.wants(Startup));
    }

    #[test]
    fn the_back_off_doubles_to_its_cap_and_resets_after_a_long_run() {
        let s = Duration::from_secs;
        let mut back_off = super::BackOff::new(s(10), s(300));
        // Each container dies 1 s after it starts.
        let mut now = s(0);
        let mut delays = Vec::new();
        for _ in 0..9 {
            let delay = back_off.delay(now);
            delays.push(delay.as_secs());
            now += delay + s(1);
        }
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
        // Ten minutes since the last restart is not enough; more is.
        let restarted = now - s(1);
        assert_eq!(back_off.delay(restarted + s(600)), s(300));
        let restarted = restarted + s(900);
        assert_eq!(back_off.delay(restarted + s(601)), s(0));
        assert_eq!(back_off.delay(restarted + s(602)), s(10));
    }

    #[test]
    fn without_a_startup_probe_the_container_starts_at_once() {
        let mut pod: Pod<usize> = Pod::new([None, Some((1, 1)), Some((1, 1))]);
        assert_eq!(events(&pod.start_container()), [Started]);
        assert!(pod.wants(Liveness) && pod.wants(Readiness) && !pod.wants(Startup));
        assert_eq!(events(&pod.feed(Readiness, true, 0)), [JoinedEndpoints]);
        assert_eq!(events(&pod.feed(Liveness, false, 1)), [LivenessRestart]);
        assert_eq!(events(&pod.container_exited()), [LeftEndpoints]);
        assert_eq!(events(&pod.start_container()), [Started]);
    }

    #[test]
    fn without_a_readiness_probe_the_pod_is_ready_once_started() {
        let mut pod: Pod<usize> = Pod::new([Some((1, 1)), None, None]);
        assert!(pod.start_container().is_empty());
        assert_eq!(
            events(&pod.feed(Startup, true, 0)),
            [Started, JoinedEndpoints]
        );
        let mut bare: Pod<usize> = Pod::new([None, None, None]);
        assert_eq!(events(&bare.start_container()), [Started, JoinedEndpoints]);
        assert!(!bare.wants(Liveness));
        assert!(bare.feed(Liveness, false, 0).is_empty());
    }
}
