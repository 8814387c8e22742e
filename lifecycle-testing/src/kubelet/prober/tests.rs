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
