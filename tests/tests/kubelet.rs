//! The kit's kubelet simulation against the testbed: the probe loops run
//! on the testbed's own manifest (scaled down), and report what the
//! kubelet would have done under each fault.

use std::io::Write;
use std::time::{Duration, Instant};

use lifecycle_testing::kubelet::{EventKind, KubeletReport, ProbeKind};
use lifecycle_testing::{Kubelet, Manifest, Service};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
/// For anything waited on: generous, for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(10);
/// The testbed's periods (startup 2 s, readiness 5 s, liveness 10 s) run
/// at 100 ms, 250 ms and 500 ms.
const SCALE: f64 = 0.05;
/// The longest a watch may run: each test stops its watch long before.
const WATCH_LIMIT: Duration = Duration::from_secs(60);

/// Sends a command line to the testbed and waits for its `ack`.
fn command(service: &mut Service, line: &str) {
    let ack = format!("ack {line}");
    let acks = |service: &Service| service.stdout().iter().filter(|l| **l == ack).count();
    let before = acks(service);
    writeln!(service.stdin(), "{line}").unwrap();
    service.stdin().flush().unwrap();
    let until = Instant::now() + DEADLINE;
    while acks(service) == before {
        assert!(
            Instant::now() < until,
            "no {ack:?} within {DEADLINE:?}; stdout: {:?}",
            service.stdout()
        );
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// How many answers to `probe` failed from `from` to `to`, both included.
fn failed(report: &KubeletReport, probe: ProbeKind, from: Duration, to: Duration) -> usize {
    report
        .probes_of(probe)
        .filter(|p| from <= p.at && p.at <= to && !p.answer.passed())
        .count()
}

fn kinds(report: &KubeletReport) -> Vec<EventKind> {
    report.events.iter().map(|event| event.kind).collect()
}

#[test]
fn a_healthy_service_starts_joins_the_endpoints_and_is_never_restarted() {
    let builder = Service::builder(TESTBED);
    let manifest = Manifest::from_builder(&builder).unwrap();
    // The schedule the runtime derives for the testbed.
    let probe = |kind| {
        let spec = manifest.probe(kind).unwrap();
        (
            spec.path.as_str(),
            spec.period.as_secs(),
            spec.failure_threshold,
        )
    };
    assert_eq!(probe(ProbeKind::Startup).0, "/startupz");
    assert_eq!(probe(ProbeKind::Liveness), ("/livez", 10, 3));
    assert_eq!(probe(ProbeKind::Readiness), ("/readyz", 5, 2));
    // The shutdown timeout (25 s, the drain delay in it) + 5 s.
    assert_eq!(manifest.termination_grace_period(), Duration::from_secs(30));

    let service = builder.start().unwrap();
    let report = Kubelet::new(manifest)
        .time_scale(SCALE)
        .watch(&service, Duration::from_secs(2));

    let started = report.assert_started();
    let joined = report.assert_joined_endpoints();
    assert!(started <= joined, "{report}");
    report.assert_never_restarted();
    report.assert_never_left_endpoints();
    report.assert_in_endpoints();
    assert_eq!(
        kinds(&report),
        [EventKind::Started, EventKind::JoinedEndpoints]
    );
    assert_eq!(
        report.probes_of(ProbeKind::Startup).count(),
        1,
        "started already: the first startup probe passes, and is the last:\n{report}"
    );
    assert!(
        report.probes_of(ProbeKind::Liveness).count() >= 2,
        "liveness ran on its schedule:\n{report}"
    );
    assert!(report.probes.iter().all(|p| p.answer.passed()), "{report}");
}

#[test]
fn under_probe_protocol_grpc_the_generated_manifest_probes_over_grpc() {
    // The manifest the binary derives for itself, read as the kubelet
    // reads it, then run against the service: the `grpc:` probes name the
    // endpoints' services, and every answer is a gRPC health status.
    let builder = Service::builder(TESTBED).env("LIFECYCLE_PROBE_PROTOCOL", "grpc");
    let manifest = Manifest::from_builder(&builder).unwrap();
    for (kind, service) in [
        (ProbeKind::Startup, "startupz"),
        (ProbeKind::Liveness, "livez"),
        (ProbeKind::Readiness, "readyz"),
    ] {
        let spec = manifest.probe(kind).unwrap();
        assert_eq!(spec.grpc_service.as_deref(), Some(service), "{kind}");
    }

    let mut service = builder.start().unwrap();
    let report = Kubelet::new(manifest.clone())
        .time_scale(SCALE)
        .watch(&service, Duration::from_secs(2));
    report.assert_started();
    report.assert_joined_endpoints();
    report.assert_never_restarted();
    assert!(
        report
            .probes
            .iter()
            .all(|p| p.answer.grpc_status.as_deref() == Some("SERVING")),
        "{report}"
    );

    // A readiness check down: out of rotation over gRPC too, alive.
    command(&mut service, "set down");
    let report = Kubelet::new(manifest)
        .time_scale(SCALE)
        .watch(&service, Duration::from_secs(2));
    report.assert_never_joined_endpoints();
    report.assert_never_restarted();
    assert!(
        report
            .probes_of(ProbeKind::Readiness)
            .all(|p| p.answer.grpc_status.as_deref() == Some("NOT_SERVING")),
        "{report}"
    );
}

#[test]
fn a_readiness_fault_takes_the_pod_out_of_rotation_and_back_without_a_restart() {
    let kubelet = Kubelet::new(Manifest::of(TESTBED, &[]).unwrap()).time_scale(SCALE);
    let failures = kubelet
        .manifest()
        .probe(ProbeKind::Readiness)
        .unwrap()
        .failure_threshold as usize;
    let mut service = Service::start(TESTBED).unwrap();
    let watch = kubelet.start(&service, WATCH_LIMIT);
    watch
        .wait_until(
            "the pod joins the endpoints",
            DEADLINE,
            KubeletReport::in_endpoints,
        )
        .unwrap();

    let before_down = watch.elapsed();
    command(&mut service, "set down");
    watch
        .wait_until("the pod leaves the endpoints", DEADLINE, |r| {
            !r.in_endpoints()
        })
        .unwrap();
    let before_clear = watch.elapsed();
    command(&mut service, "clear down");
    watch
        .wait_until("the pod rejoins the endpoints", DEADLINE, |r| {
            r.endpoint_changes.len() >= 3
        })
        .unwrap();
    let report = watch.stop();

    report.assert_never_restarted();
    report.assert_in_endpoints();
    let changes: Vec<bool> = report.endpoint_changes.iter().map(|c| c.1).collect();
    assert_eq!(changes, [true, false, true], "{report}");
    let (left, rejoined) = (report.endpoint_changes[1].0, report.endpoint_changes[2].0);
    assert!(
        before_down <= left && left <= before_clear && before_clear <= rejoined,
        "{report}"
    );
    assert_eq!(
        failed(&report, ProbeKind::Readiness, before_down, left),
        failures,
        "out at the threshold's failure, not before or after:\n{report}"
    );
    let left = report.events_of(EventKind::LeftEndpoints).next().unwrap();
    assert_eq!(left.answers.len(), failures, "{report}");
    for probed in &left.answers {
        assert_eq!(probed.probe, ProbeKind::Readiness);
        assert!(probed.at >= before_down, "{report}");
        assert_eq!(probed.answer.status, Some(503), "{report}");
        assert!(
            probed.answer.body.contains("toggled down by the test"),
            "the deciding answers name the failing check:\n{report}"
        );
    }
    assert!(
        report
            .probes_of(ProbeKind::Liveness)
            .all(|p| p.answer.passed()),
        "a readiness fault is not a liveness one:\n{report}"
    );
}

#[test]
fn a_liveness_fault_restarts_the_container_after_its_failure_threshold() {
    let manifest = Manifest::of(TESTBED, &[]).unwrap();
    let liveness = manifest.probe(ProbeKind::Liveness).unwrap().clone();
    let period = liveness.period.mul_f64(SCALE);
    let failures = liveness.failure_threshold as usize;
    let mut service = Service::start(TESTBED).unwrap();
    let watch = Kubelet::new(manifest)
        .time_scale(SCALE)
        .start(&service, WATCH_LIMIT);
    watch
        .wait_until(
            "the pod joins the endpoints",
            DEADLINE,
            KubeletReport::in_endpoints,
        )
        .unwrap();

    let before_broken = watch.elapsed();
    command(&mut service, "set broken");
    // The process is not restarted: still broken, its new container fails
    // liveness again.
    let report = watch
        .wait_until("two restarts", Duration::from_secs(20), |r| {
            r.events_of(EventKind::BackOff).next().is_some()
        })
        .unwrap();
    drop(watch);

    let first = report.assert_restarted();
    assert!(
        first >= before_broken + period / 2,
        "not before the failure threshold's probes:\n{report}"
    );
    assert_eq!(report.startup_budget_exceeded, None, "{report}");
    assert_eq!(
        failed(&report, ProbeKind::Liveness, before_broken, first),
        failures,
        "restarted at the threshold's failure, not before or after:\n{report}"
    );
    for restart in report.events_of(EventKind::LivenessRestart) {
        assert_eq!(restart.answers.len(), failures, "{report}");
        for probed in &restart.answers {
            assert_eq!(probed.probe, ProbeKind::Liveness);
            assert!(probed.at >= before_broken, "{report}");
            assert_eq!(probed.answer.status, Some(503), "{report}");
            assert!(
                probed
                    .answer
                    .body
                    .contains("marked broken: database pool poisoned"),
                "{report}"
            );
        }
        assert!(
            restart.answers.windows(2).all(|w| w[0].at < w[1].at),
            "{report}"
        );
    }
    // Each restart takes the pod out of the endpoints; the new container
    // starts over (the process still answers /startupz and /readyz), at
    // once the first time, after the back-off the next.
    let after_fault: Vec<EventKind> = report
        .events
        .iter()
        .filter(|event| event.at >= before_broken)
        .map(|event| event.kind)
        .take(8)
        .collect();
    assert_eq!(
        after_fault,
        [
            EventKind::LivenessRestart,
            EventKind::LeftEndpoints,
            EventKind::Restarted,
            EventKind::Started,
            EventKind::JoinedEndpoints,
            EventKind::LivenessRestart,
            EventKind::LeftEndpoints,
            EventKind::BackOff,
        ],
        "{report}"
    );
    assert_eq!(
        report.back_offs[..2],
        [Duration::ZERO, Duration::from_secs(10).mul_f64(SCALE)],
        "{report}"
    );
    let panic = std::panic::catch_unwind(|| report.assert_never_restarted()).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("marked broken: database pool poisoned"),
        "the failed assertion shows why: {message}"
    );
}

/// A short startup budget: 5 probes, 2 s apart (200 ms at a scale of 0.1).
const SHORT_STARTUP: &str = "\
spec:
  terminationGracePeriodSeconds: 30
  containers:
  - name: testbed
    startupProbe:
      httpGet: {path: /startupz, port: 8081}
      periodSeconds: 2
      failureThreshold: 5
    livenessProbe:
      httpGet: {path: /livez, port: 8081}
      periodSeconds: 10
    readinessProbe:
      httpGet: {path: /readyz, port: 8081}
      periodSeconds: 5
      failureThreshold: 2
";

#[test]
fn a_start_up_held_past_its_budget_is_reported() {
    let mut service = Service::builder(TESTBED)
        .env("TESTBED_HOLD_STARTUP", "1")
        .spawn()
        .unwrap();
    let watch = Kubelet::new(Manifest::parse(SHORT_STARTUP).unwrap())
        .time_scale(0.1)
        .start(&service, WATCH_LIMIT);
    watch
        .wait_until("start-up runs out of its budget", DEADLINE, |r| {
            r.startup_budget_exceeded.is_some()
        })
        .unwrap();
    let before_release = watch.elapsed();
    command(&mut service, "set release");
    let report = watch
        .wait_until(
            "the container starts and joins the endpoints",
            DEADLINE,
            KubeletReport::in_endpoints,
        )
        .unwrap();
    drop(watch);

    let exceeded = report.assert_startup_budget_exceeded();
    assert_eq!(report.restarts.first(), Some(&exceeded), "{report}");
    assert_eq!(
        failed(&report, ProbeKind::Startup, Duration::ZERO, exceeded),
        5,
        "over budget at the fifth failure, not before or after:\n{report}"
    );
    let event = report
        .events_of(EventKind::StartupBudgetExceeded)
        .next()
        .unwrap();
    assert_eq!(event.answers.len(), 5, "{report}");
    for probed in &event.answers {
        assert_eq!(probed.probe, ProbeKind::Startup);
        assert_eq!(probed.answer.status, Some(503), "{report}");
        assert!(
            probed
                .answer
                .body
                .contains("on_startup hooks have not finished"),
            "{report}"
        );
    }
    let started = report.assert_started();
    assert!(
        exceeded < before_release && before_release <= started,
        "{report}"
    );
    assert!(
        report
            .probes
            .iter()
            .filter(|p| p.probe != ProbeKind::Startup)
            .all(|p| p.at >= started),
        "no liveness or readiness probe before start-up:\n{report}"
    );
    assert!(
        report
            .events
            .iter()
            .filter(|e| e.kind.restarts())
            .all(|e| e.kind == EventKind::StartupBudgetExceeded),
        "{report}"
    );
}

/// A Deployment running the testbed under the kit's own kubelet: the
/// testbed's probes (startup with a roomy budget), the pod-level lines
/// `pod` and the container-level lines `container` (YAML, indented for
/// their place), and a liveness probe with the lines `liveness` added.
fn deployment(pod: &str, container: &str, liveness: &str) -> String {
    format!(
        "\
apiVersion: apps/v1
kind: Deployment
metadata: {{name: testbed}}
spec:
  template:
    spec:
{pod}      containers:
      - name: testbed
{container}        startupProbe:
          httpGet: {{path: /startupz, port: 8081}}
          periodSeconds: 2
          failureThreshold: 30
        livenessProbe:
          httpGet: {{path: /livez, port: 8081}}
          periodSeconds: 10
{liveness}        readinessProbe:
          httpGet: {{path: /readyz, port: 8081}}
          periodSeconds: 5
          failureThreshold: 2
"
    )
}

#[test]
fn a_deleted_pod_runs_its_pre_stop_then_the_signal_and_probes_readiness_alone() {
    // The manifest a team deploys, read from its file: an exec preStop
    // that takes a second, in the service's environment.
    let folder = std::env::temp_dir().join(format!("kubelet-delete-{}", std::process::id()));
    std::fs::create_dir_all(&folder).unwrap();
    let mark = folder.join("pre-stop-ran");
    let file = folder.join("deployment.yaml");
    let pod = "      terminationGracePeriodSeconds: 20\n";
    let container = format!(
        "        lifecycle:\n          preStop:\n            exec:\n              command: \
         [sh, -c, 'echo \"$PRE_STOP_WORD\" > {}; sleep 1']\n",
        mark.display()
    );
    std::fs::write(&file, deployment(pod, &container, "")).unwrap();
    let manifest = Manifest::from_file(&file, "testbed").unwrap();
    let builder = Service::builder(TESTBED)
        .env("PRE_STOP_WORD", "drained")
        .env("LIFECYCLE_DRAIN_DELAY_MS", "800");
    let session = Kubelet::new(manifest)
        .time_scale(SCALE)
        .run(builder, WATCH_LIMIT)
        .unwrap();
    session
        .wait_until("the pod joins", DEADLINE, KubeletReport::in_endpoints)
        .unwrap();
    session.delete_pod();
    let report = session
        .wait_until("the kill", DEADLINE, |r| !r.kills.is_empty())
        .unwrap();
    drop(session);
    let written = std::fs::read_to_string(&mark);
    std::fs::remove_dir_all(&folder).unwrap();

    let deleted = report.deleted_at.expect("deleted");
    assert_eq!(
        report.endpoint_changes.last(),
        Some(&(deleted, false)),
        "{report}"
    );
    let kill = report.assert_killed();
    assert_eq!(kill.reason, EventKind::PodDeleted);
    assert_eq!(kill.grace, Duration::from_secs(20));
    assert_eq!(
        written.unwrap().trim(),
        "drained",
        "the hook ran with the service's env"
    );
    assert_eq!(kill.pre_stop_error, None, "{report}");
    let pre_stop = kill.pre_stop.expect("the hook ran");
    assert!(
        pre_stop >= Duration::from_secs(1) && pre_stop < Duration::from_secs(4),
        "{report}"
    );
    // What the hook took (whole seconds) counts against the grace period.
    assert_eq!(
        kill.stop_window,
        kill.grace - Duration::from_secs(pre_stop.as_secs()),
        "{report}"
    );
    assert_eq!(kill.signal, "SIGTERM");
    assert!(!kill.sigkilled, "{report}");
    assert_eq!(kill.exit.and_then(|exit| exit.code), Some(0), "{report}");
    assert!(
        kill.log
            .iter()
            .any(|line| line.contains("SIGTERM received")),
        "{:?}",
        kill.log
    );
    // The signal came after the hook: readiness passed through it.
    let signalled = kill.at + pre_stop;
    let sent = |p: &&lifecycle_testing::kubelet::ProbeRecord| p.at.saturating_sub(p.answer.elapsed);
    assert!(
        report
            .probes_of(ProbeKind::Readiness)
            .filter(|p| sent(p) > deleted && p.at < signalled)
            .all(|p| p.answer.passed()),
        "{report}"
    );
    // Liveness stopped at the deletion; readiness went on, and saw the
    // drain.
    assert_eq!(
        report
            .probes_of(ProbeKind::Liveness)
            .filter(|p| sent(p) > deleted)
            .count(),
        0,
        "{report}"
    );
    assert!(
        report
            .probes_of(ProbeKind::Readiness)
            .any(|p| sent(&p) > signalled && p.answer.status == Some(503)),
        "{report}"
    );
    assert!(report.back_offs.is_empty(), "never restarted:\n{report}");
    assert_eq!(
        report.events_of(EventKind::Restarted).count(),
        0,
        "{report}"
    );
}

#[test]
fn the_container_gets_sigkill_two_seconds_after_a_pre_stop_that_took_the_grace_period() {
    let yaml = deployment(
        "      terminationGracePeriodSeconds: 1\n",
        "        lifecycle:\n          preStop:\n            sleep: {seconds: 5}\n",
        "",
    );
    // A shutdown that outlasts any grace period here.
    let builder = Service::builder(TESTBED).env("TESTBED_HOOK_SLOW_MS", "20000");
    let session = Kubelet::new(Manifest::parse_container(&yaml, "testbed").unwrap())
        .time_scale(SCALE)
        .run(builder, WATCH_LIMIT)
        .unwrap();
    session
        .wait_until("the pod joins", DEADLINE, KubeletReport::in_endpoints)
        .unwrap();
    session.delete_pod();
    let report = session
        .wait_until("the kill", DEADLINE, |r| !r.kills.is_empty())
        .unwrap();
    drop(session);

    let kill = report.assert_killed();
    let pre_stop = kill.pre_stop.unwrap();
    assert!(
        pre_stop >= Duration::from_secs(1) && pre_stop < Duration::from_millis(1500),
        "the sleep is cut at the grace period:\n{report}"
    );
    assert_eq!(kill.stop_window, Duration::from_secs(2), "{report}");
    assert!(kill.sigkilled, "{report}");
    assert_eq!(kill.exit.and_then(|exit| exit.signal), Some(libc::SIGKILL));
    assert!(
        kill.exited_after >= Duration::from_secs(2)
            && kill.exited_after < Duration::from_millis(3500),
        "{report}"
    );
}

#[test]
fn a_liveness_kill_takes_the_probes_grace_and_stop_signal_and_restarts_the_process() {
    // The pod's grace period would be 30 s; the liveness probe's own is
    // 1 s (2 s at least), and the stop signal SIGINT.
    let yaml = deployment(
        "",
        "        lifecycle: {stopSignal: SIGINT}\n",
        "          terminationGracePeriodSeconds: 1\n",
    );
    let builder = Service::builder(TESTBED).env("TESTBED_HOOK_SLOW_MS", "20000");
    let session = Kubelet::new(Manifest::parse_container(&yaml, "testbed").unwrap())
        .time_scale(SCALE)
        .run(builder, WATCH_LIMIT)
        .unwrap();
    session
        .wait_until("the pod joins", DEADLINE, KubeletReport::in_endpoints)
        .unwrap();
    let first_pid = session.with_service(|service| service.pid()).unwrap();
    session
        .with_service(|service| command(service, "set broken"))
        .unwrap();
    let report = session
        .wait_until("a new process joins", DEADLINE, |r| {
            r.events_of(EventKind::Restarted).next().is_some() && r.in_endpoints()
        })
        .unwrap();
    let second_pid = session.with_service(|service| service.pid()).unwrap();
    drop(session);

    let kill = report.assert_killed();
    assert_eq!(kill.reason, EventKind::LivenessRestart);
    assert_eq!(kill.grace, Duration::from_secs(1), "{report}");
    assert_eq!(kill.stop_window, Duration::from_secs(2), "{report}");
    assert_eq!(kill.signal, "SIGINT");
    assert!(kill.sigkilled, "{report}");
    assert!(
        kill.log.iter().any(|line| line.contains("SIGINT received")),
        "{:?}",
        kill.log
    );
    assert_ne!(first_pid, second_pid, "a new process");
    assert_eq!(
        report.back_offs,
        [Duration::ZERO],
        "the first restart is at once"
    );
    let restarted = report.events_of(EventKind::Restarted).next().unwrap().at;
    let killed = report.events_of(EventKind::Killed).next().unwrap().at;
    assert!(killed <= restarted, "{report}");
    assert!(
        report
            .probes_of(ProbeKind::Startup)
            .any(|p| p.at >= restarted),
        "{report}"
    );
}

#[test]
fn a_crash_loop_backs_off_doubling_on_the_scaled_clock() {
    // Every process fails its start-up hook and exits.
    let scale = 0.01;
    let builder = Service::builder(TESTBED).env("TESTBED_STARTUP_FAIL", "1");
    let yaml = deployment("", "", "");
    let session = Kubelet::new(Manifest::parse_container(&yaml, "testbed").unwrap())
        .time_scale(scale)
        .run(builder, WATCH_LIMIT)
        .unwrap();
    let report = session
        .wait_until("five restarts", Duration::from_secs(20), |r| {
            r.events_of(EventKind::Restarted).count() >= 5
        })
        .unwrap();
    drop(session);

    let ms = Duration::from_millis;
    assert_eq!(
        report.back_offs[..5],
        [ms(0), ms(100), ms(200), ms(400), ms(800)],
        "{report}"
    );
    // Each restart waits its back-off after the exit (or the kill).
    let mut ended = None;
    let mut waits = report.back_offs.iter();
    for event in &report.events {
        match event.kind {
            EventKind::Exited | EventKind::Killed => ended = Some(event.at),
            EventKind::Restarted => {
                let (ended, wait) = (ended.take().unwrap(), *waits.next().unwrap());
                let gap = event.at - ended;
                assert!(
                    gap >= wait && gap < wait + Duration::from_secs(1),
                    "restarted {gap:?} after the end, back-off {wait:?}:\n{report}"
                );
            }
            _ => {}
        }
    }
    assert!(report
        .to_string()
        .contains("back-off 800 ms restarting failed container"));
}
