//! The Kubernetes story end to end: the preflight initContainer, the exec
//! probe, the generated manifest, the budget warning, the drain default.
//! The quick start's own manifest, Deployment and budget warning are tested
//! in `examples/quickstart/tests/kubernetes.rs`.

use std::time::{Duration, Instant};

use k8s_openapi::api::batch::v1::{JobSpec, PodFailurePolicy};
use k8s_openapi::api::core::v1::{Container, PodSpec};

use lifecycle_testing::{Endpoint, Service};
use lifecycle_tests::kubernetes::{
    container, failed_pod, failure_policy_action, grpc_probe, http_probe, job_spec, manifest,
    pod_template,
};
use lifecycle_tests::{fixture, free_port, http_get, run, termination_log_path, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const DEADLINE: Duration = Duration::from_secs(15);

#[test]
fn preflight_mode_runs_only_the_preflight_checks() {
    let (code, stdout, stderr) = run(TESTBED, &["--lifecycle-preflight"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, ["[+]config_present ok", "[+]disk-writable ok",]);
    assert!(
        !stderr.contains("probe server listening"),
        "no probe server: {stderr}"
    );

    // Run to its exit (it never serves probes), with a termination log of
    // the test's own.
    let log = termination_log_path();
    let (code, stdout, stderr) = run(
        TESTBED,
        &["--lifecycle-preflight"],
        &[
            ("TESTBED_PREFLIGHT_FAIL", "1"),
            ("LIFECYCLE_TERMINATION_LOG", log.to_str().unwrap()),
        ],
    );
    assert_eq!(code, Some(1));
    assert_eq!(
        stdout,
        [
            "[-]config_present failed: TESTBED_PREFLIGHT_FAIL is set",
            "[+]disk-writable ok",
        ],
        "no on_startup hook ran (warm_up prints when it does)"
    );
    assert!(!stderr.contains("probe server listening"));
    assert_eq!(
        std::fs::read_to_string(&log).unwrap(),
        "preflight failed: [-]config_present failed: TESTBED_PREFLIGHT_FAIL is set"
    );
}

#[test]
fn a_failing_preflight_check_stops_the_service_with_exit_1() {
    let (code, stdout, stderr) = run(TESTBED, &[], &[("TESTBED_PREFLIGHT_FAIL", "1")]);
    assert_eq!(code, Some(1));
    assert!(!stdout.contains(&"hook warm_up start".to_string()));
    assert!(
        stderr.contains("preflight check \"config_present\" failed: TESTBED_PREFLIGHT_FAIL is set")
    );
}

/// The `LIFECYCLE_PROBE_ADDR` that points the exec probe at `service`: the
/// port the kit found, with `host`.
fn probe_addr_of(service: &Service, host: &str) -> String {
    format!("{host}:{}", service.probe_addr().port())
}

#[test]
fn the_exec_probe_asks_the_running_instance() {
    // Bound to every address: the exec probe reaches it on loopback.
    let mut service = fixture(TESTBED)
        .env("LIFECYCLE_PROBE_ADDR", "0.0.0.0:0")
        .start()
        .unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    let addr = probe_addr_of(&service, "0.0.0.0");
    let env = [("LIFECYCLE_PROBE_ADDR", addr.as_str())];

    let (code, stdout, _) = run(TESTBED, &["--lifecycle-probe", "readyz"], &env);
    assert_eq!((code, stdout), (Some(0), vec!["ok".to_string()]));
    let (code, _, _) = run(TESTBED, &["--lifecycle-probe=livez"], &env);
    assert_eq!(code, Some(0));

    service.command("set down");
    let (code, stdout, _) = run(TESTBED, &["--lifecycle-probe", "readyz"], &env);
    assert_eq!(code, Some(1));
    assert_eq!(stdout, ["[-]toggle failed: toggled down by the test"]);
    let (code, _, _) = run(TESTBED, &["--lifecycle-probe", "livez"], &env);
    assert_eq!(code, Some(0));
}

#[test]
fn the_exec_probe_fails_when_nothing_answers() {
    // Nothing listening: refused at once.
    let refused = format!("127.0.0.1:{}", free_port());
    let (code, _, stderr) = run(
        TESTBED,
        &["--lifecycle-probe", "readyz"],
        &[("LIFECYCLE_PROBE_ADDR", &refused)],
    );
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("cannot connect to the probe server"),
        "{stderr}"
    );

    // Listening but never answering: the 1 s timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let (code, _, stderr) = run(
        TESTBED,
        &["--lifecycle-probe", "startupz"],
        &[("LIFECYCLE_PROBE_ADDR", &silent_addr)],
    );
    let took = started.elapsed();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("no answer from the probe server"),
        "{stderr}"
    );
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(took < Duration::from_millis(2000), "{took:?}");
}

#[test]
fn bad_lifecycle_flags_exit_2_naming_them() {
    for args in [
        &["--lifecycle-probe", "healthz"][..],
        &["--lifecycle-probe"][..],
        &["--lifecycle-manifest=yes"][..],
        &["--lifecycle-manifest=jobs"][..],
    ] {
        let (code, _, stderr) = run(TESTBED, args, &[]);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(stderr.contains(args[0]), "{stderr}");
    }
}

#[test]
fn the_manifest_is_a_pod_template_derived_from_the_configuration() {
    let template = pod_template(TESTBED, &[("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100")]);
    let labels = template.metadata.unwrap().labels.unwrap();
    assert_eq!(labels["app.kubernetes.io/name"], "testbed");
    let spec = template.spec.unwrap();
    assert_eq!(spec.containers.len(), 1);
    let testbed = container(&spec, "testbed");
    assert_eq!(
        testbed.termination_message_policy.as_deref(),
        Some("FallbackToLogsOnError")
    );
    let ports = testbed.ports.as_ref().unwrap();
    assert_eq!(ports.len(), 1);
    assert_eq!(ports[0].container_port, 9100);
    assert_eq!(ports[0].name.as_deref(), Some("probes"));

    let (startup, path, port) = http_probe(&testbed.startup_probe);
    assert_eq!((path.as_str(), port), ("/startupz", 9100));
    // drop-guard 100 ms and migrations 500 ms: 550 ms, rounded up.
    assert_eq!(startup.timeout_seconds, Some(1));
    assert_eq!(startup.period_seconds, Some(2));
    // Preflight 10 s (default) + on_startup orders: -100 (60 s default),
    // -10 (60 s, library-checks), 0 (warm_up, 30 s) = 160 s = 80 periods + 2.
    assert_eq!(startup.failure_threshold, Some(82));

    let (live, path, port) = http_probe(&testbed.liveness_probe);
    assert_eq!((path.as_str(), port), ("/livez", 9100));
    assert_eq!(live.timeout_seconds, Some(1)); // 500 ms + 50 ms
    assert_eq!(
        (live.period_seconds, live.failure_threshold),
        (Some(10), Some(3))
    );

    let (ready, path, port) = http_probe(&testbed.readiness_probe);
    assert_eq!((path.as_str(), port), ("/readyz", 9100));
    // coalesced, 3000 ms + 50 ms; the background check does not count.
    assert_eq!(ready.timeout_seconds, Some(4));
    assert_eq!(
        (ready.period_seconds, ready.failure_threshold),
        (Some(5), Some(2))
    );
    for probe in [startup, live, ready] {
        assert_eq!(probe.success_threshold, Some(1));
    }
    // The shutdown timeout (25 s, from the signal: the 5 s of drain on
    // Kubernetes within it) + 5 s.
    assert_eq!(spec.termination_grace_period_seconds, Some(30));

    // Change the configuration, and the manifest follows.
    let spec = manifest(
        TESTBED,
        &[
            ("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9200"),
            ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "40000"),
            ("LIFECYCLE_DRAIN_DELAY_MS", "10000"),
        ],
    );
    // 40 s, the 10 s of drain within it, + 5 s.
    assert_eq!(spec.termination_grace_period_seconds, Some(45));
    assert_eq!(
        http_probe(&container(&spec, "testbed").liveness_probe).2,
        9200
    );
}

#[test]
fn an_unknown_manifest_kind_exits_2_naming_it() {
    let (code, stdout, stderr) = run(TESTBED, &["--lifecycle-manifest", "cronjob"], &[]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty(), "{stdout:?}");
    assert!(
        stderr.contains("invalid flag --lifecycle-manifest \"cronjob\""),
        "{stderr}"
    );
}

/// Both of testbed's manifests at port 9100, with `env` besides.
fn pod_and_job(env: &[(&str, &str)]) -> (k8s_openapi::api::core::v1::PodTemplateSpec, JobSpec) {
    let env: Vec<(&str, &str)> = [("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100")]
        .into_iter()
        .chain(env.iter().copied())
        .collect();
    (pod_template(TESTBED, &env), job_spec(TESTBED, &env))
}

#[test]
fn the_job_manifest_is_a_job_spec_of_the_same_container_without_probes() {
    // Parsed and round-tripped by k8s-openapi's batch/v1 JobSpec: every key
    // where Kubernetes reads it, `onPodConditions`' required `status` too.
    for protocol in ["http", "grpc"] {
        let (pod, job) = pod_and_job(&[("LIFECYCLE_PROBE_PROTOCOL", protocol)]);
        assert_eq!(job.backoff_limit, Some(6), "{protocol}");
        assert_eq!(job.template.metadata, pod.metadata, "{protocol}");
        let pod_spec = pod.spec.unwrap();
        let spec = job.template.spec.expect("the template has a spec");
        // podFailurePolicy is refused with any other restart policy.
        assert_eq!(spec.restart_policy.as_deref(), Some("Never"));
        assert_eq!(
            spec.termination_grace_period_seconds,
            pod_spec.termination_grace_period_seconds
        );
        assert_eq!(spec.termination_grace_period_seconds, Some(30));
        assert_eq!(spec.containers.len(), 1);
        let testbed = container(&spec, "testbed");
        assert_eq!(testbed.liveness_probe, None, "{protocol}");
        assert_eq!(testbed.readiness_probe, None, "{protocol}");
        assert_eq!(testbed.startup_probe, None, "{protocol}");
        assert_eq!(
            testbed.termination_message_policy.as_deref(),
            Some("FallbackToLogsOnError")
        );
        // Otherwise the very container of the pod template.
        let in_pod = Container {
            startup_probe: None,
            liveness_probe: None,
            readiness_probe: None,
            ..container(&pod_spec, "testbed")
        };
        assert_eq!(testbed, in_pod, "{protocol}");
        // Both manifests have the pod-level keys they share in common.
        assert_eq!(
            PodSpec {
                restart_policy: None,
                containers: Vec::new(),
                ..spec
            },
            PodSpec {
                containers: Vec::new(),
                ..pod_spec
            }
        );
    }
}

#[test]
fn the_job_s_failure_policy_has_the_two_rules_of_the_exit_code_table() {
    let (_, job) = pod_and_job(&[]);
    let policy = job.pod_failure_policy.expect("a podFailurePolicy");
    assert_eq!(policy.rules.len(), 2, "{policy:?}");
    let fail = &policy.rules[0];
    assert_eq!(fail.action, "FailJob");
    let codes = fail.on_exit_codes.as_ref().unwrap();
    assert_eq!(
        (codes.container_name.as_deref(), codes.operator.as_str()),
        (Some("testbed"), "In")
    );
    assert_eq!(codes.values, [2]);
    let ignore = &policy.rules[1];
    assert_eq!(ignore.action, "Ignore");
    let conditions = ignore.on_pod_conditions.as_ref().unwrap();
    assert_eq!(conditions.len(), 1);
    assert_eq!(
        (conditions[0].type_.as_str(), conditions[0].status.as_str()),
        ("DisruptionTarget", "True")
    );
}

/// What the Job controller does with a failed pod whose testbed container
/// exited with `code`, under testbed's own `podFailurePolicy`.
fn job_outcome(policy: &PodFailurePolicy, code: i32) -> String {
    failure_policy_action(policy, &failed_pod(&[("testbed", code)], &[]))
}

#[test]
fn a_bad_configuration_fails_the_job_at_once_by_its_failure_policy() {
    let policy = pod_and_job(&[]).1.pod_failure_policy.unwrap();
    // Bad LIFECYCLE_* values, as a misconfigured Job would have them.
    for bad in [
        ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "soon"),
        ("LIFECYCLE_PROBE_PROTOCOL", "carrier-pigeon"),
        ("LIFECYCLE_DRAIN_DELAY_MS", "86400001"),
    ] {
        let (code, _, stderr) = run(TESTBED, &[], &[bad]);
        let code = code.expect("an exit code");
        assert_eq!(code, 2, "{bad:?}: {stderr}");
        assert_eq!(job_outcome(&policy, code), "FailJob", "{bad:?}");
    }
    // The rule is this container's: a sidecar's 2 is its own business.
    let sidecar = failed_pod(&[("testbed", 0), ("proxy", 2)], &[]);
    assert_eq!(failure_policy_action(&policy, &sidecar), "Count");
}

#[test]
fn other_failures_count_against_the_backoff_limit_and_disruptions_are_ignored() {
    let policy = pod_and_job(&[]).1.pod_failure_policy.unwrap();
    // A panic, for real: 101 matches no rule.
    let mut service = fixture(TESTBED).start().unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    service.send("set spawn-panic");
    let code = service.wait_exit(DEADLINE).unwrap().code.unwrap();
    assert_eq!(code, 101);
    assert_eq!(job_outcome(&policy, code), "Count");
    // A failed preflight check: 1.
    let (code, _, _) = run(TESTBED, &[], &[("TESTBED_PREFLIGHT_FAIL", "1")]);
    let code = code.expect("an exit code");
    assert_eq!(code, 1);
    assert_eq!(job_outcome(&policy, code), "Count");
    // A second signal, and the kubelet's SIGKILL.
    for code in [130, 143, 137] {
        assert_eq!(job_outcome(&policy, code), "Count", "{code}");
    }
    // Preempted or evicted, whatever the exit code: replaced, not counted.
    for code in [0, 1, 143, 137] {
        let disrupted = failed_pod(&[("testbed", code)], &[("DisruptionTarget", "True")]);
        assert_eq!(
            failure_policy_action(&policy, &disrupted),
            "Ignore",
            "{code}"
        );
    }
    // The pattern needs the condition's status to match, as the controller
    // does.
    let not_disrupted = failed_pod(&[("testbed", 1)], &[("DisruptionTarget", "False")]);
    assert_eq!(failure_policy_action(&policy, &not_disrupted), "Count");
    // A bad configuration in a disrupted pod still fails the Job: the
    // first rule wins, and a retry would fail the same way.
    let both = failed_pod(&[("testbed", 2)], &[("DisruptionTarget", "True")]);
    assert_eq!(failure_policy_action(&policy, &both), "FailJob");
}

#[test]
fn with_metrics_on_the_pod_template_is_annotated_for_prometheus() {
    // Parsed by k8s-openapi, where annotations are a map of strings: a
    // port or a bool written as a number or a YAML bool would not parse,
    // as the API server would refuse it.
    let template = pod_template(TESTBED, &[("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100")]);
    let metadata = template.metadata.unwrap();
    let annotations = metadata.annotations.expect("annotations");
    let expected = [
        ("prometheus.io/scrape", "true"),
        ("prometheus.io/port", "9100"),
        ("prometheus.io/path", "/metrics"),
    ];
    assert_eq!(
        annotations,
        expected
            .iter()
            .map(|(key, value)| (key.to_string(), value.to_string()))
            .collect(),
    );
    // The port annotated is the probe port, wherever it moves.
    let moved = pod_template(TESTBED, &[("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9200")]);
    let annotations = moved.metadata.unwrap().annotations.unwrap();
    assert_eq!(annotations["prometheus.io/port"], "9200");
    let ports = container(moved.spec.as_ref().unwrap(), "testbed").ports;
    assert_eq!(ports.unwrap()[0].container_port, 9200);
}

#[test]
fn with_metrics_off_the_pod_template_has_no_prometheus_annotations() {
    let template = pod_template(
        TESTBED,
        &[
            ("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100"),
            ("LIFECYCLE_METRICS", "off"),
        ],
    );
    let metadata = template.metadata.unwrap();
    // None at all: Prometheus must not be sent to scrape a 404.
    assert_eq!(metadata.annotations, None);
    assert_eq!(
        metadata.labels.unwrap()["app.kubernetes.io/name"],
        "testbed",
        "the rest of the metadata stays"
    );
    // The probes are the same either way.
    let on = manifest(TESTBED, &[("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100")]);
    let off = template.spec.unwrap();
    assert_eq!(
        container(&on, "testbed").readiness_probe,
        container(&off, "testbed").readiness_probe
    );
}

#[test]
fn with_probe_protocol_grpc_the_manifest_has_grpc_probes_with_the_same_timings() {
    let http = container(
        &manifest(TESTBED, &[("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100")]),
        "testbed",
    );
    // Parsed and round-tripped by k8s-openapi: every key where Kubernetes
    // reads it.
    let template = pod_template(
        TESTBED,
        &[
            ("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100"),
            ("LIFECYCLE_PROBE_PROTOCOL", "grpc"),
        ],
    );
    let grpc = container(template.spec.as_ref().unwrap(), "testbed");
    for (probe_kind, http, grpc, service) in [
        (
            "startup",
            &http.startup_probe,
            &grpc.startup_probe,
            "startupz",
        ),
        (
            "liveness",
            &http.liveness_probe,
            &grpc.liveness_probe,
            "livez",
        ),
        (
            "readiness",
            &http.readiness_probe,
            &grpc.readiness_probe,
            "readyz",
        ),
    ] {
        let (http, _, _) = http_probe(http);
        let (grpc, named, port) = grpc_probe(grpc);
        // Never `""` for liveness: that is the server's overall health,
        // which turns NOT_SERVING when a shutdown begins.
        assert_eq!((named.as_str(), port), (service, 9100), "{probe_kind}");
        assert!(grpc.http_get.is_none(), "{probe_kind}: {grpc:?}");
        assert_eq!(
            (
                grpc.timeout_seconds,
                grpc.period_seconds,
                grpc.failure_threshold,
                grpc.success_threshold
            ),
            (
                http.timeout_seconds,
                http.period_seconds,
                http.failure_threshold,
                http.success_threshold
            ),
            "{probe_kind}"
        );
    }
    // What the manifest's readiness probe allows: coalesced's 3 s + 50 ms.
    assert_eq!(grpc_probe(&grpc.readiness_probe).0.timeout_seconds, Some(4));
}

/// `bin --lifecycle-probe ENDPOINT` over gRPC against `addr`: its exit
/// code and stdout.
fn grpc_exec_probe(addr: &str, endpoint: &str) -> (Option<i32>, Vec<String>) {
    let (code, stdout, stderr) = run(
        TESTBED,
        &["--lifecycle-probe", endpoint],
        &[
            ("LIFECYCLE_PROBE_ADDR", addr),
            ("LIFECYCLE_PROBE_PROTOCOL", "grpc"),
        ],
    );
    assert!(
        !stderr.contains("panicked"),
        "{endpoint}: a clean failure:\n{stderr}"
    );
    (code, stdout)
}

#[test]
fn the_grpc_exec_probe_asks_the_running_instance_in_every_phase() {
    let serving = || (Some(0), vec!["SERVING".to_string()]);
    let not_serving = || (Some(1), vec!["NOT_SERVING".to_string()]);
    // Bound to every address: the exec probe reaches it on loopback. The
    // drain delay leaves time to probe while draining.
    let mut service = fixture(TESTBED)
        .env("LIFECYCLE_PROBE_ADDR", "0.0.0.0:0")
        .env("TESTBED_HOLD_STARTUP", "1")
        .env("LIFECYCLE_DRAIN_DELAY_MS", "5000")
        .spawn()
        .unwrap();
    service.wait_for_stdout("warm_up holding", DEADLINE);
    let addr = probe_addr_of(&service, "0.0.0.0");

    // Starting: only liveness passes.
    assert_eq!(grpc_exec_probe(&addr, "readyz"), not_serving(), "starting");
    assert_eq!(
        grpc_exec_probe(&addr, "startupz"),
        not_serving(),
        "starting"
    );
    assert_eq!(grpc_exec_probe(&addr, "livez"), serving(), "starting");

    service.command("set release");
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    for endpoint in ["readyz", "startupz", "livez"] {
        assert_eq!(grpc_exec_probe(&addr, endpoint), serving(), "running");
    }

    // A readiness check down fails readyz alone, as over HTTP.
    service.command("set down");
    assert_eq!(grpc_exec_probe(&addr, "readyz"), not_serving(), "down");
    assert_eq!(grpc_exec_probe(&addr, "livez"), serving(), "down");
    service.command("clear down");
    assert_eq!(grpc_exec_probe(&addr, "readyz"), serving(), "back up");

    // Draining: out of rotation, alive.
    service.signal(libc::SIGTERM);
    service.wait_failing(Endpoint::Readyz, DEADLINE).unwrap();
    let drain_began = Instant::now();
    assert_eq!(grpc_exec_probe(&addr, "readyz"), not_serving(), "draining");
    assert_eq!(grpc_exec_probe(&addr, "livez"), serving(), "draining");
    assert!(
        drain_began.elapsed() < Duration::from_millis(5000),
        "the probes ran inside the drain delay: {:?}",
        drain_began.elapsed()
    );
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(0));
}

#[test]
fn the_grpc_exec_probe_fails_when_nothing_answers() {
    let grpc = ("LIFECYCLE_PROBE_PROTOCOL", "grpc");
    // Nothing listening: refused at once.
    let refused = format!("127.0.0.1:{}", free_port());
    let (code, stdout, stderr) = run(
        TESTBED,
        &["--lifecycle-probe", "livez"],
        &[("LIFECYCLE_PROBE_ADDR", &refused), grpc],
    );
    assert_eq!(code, Some(1));
    assert!(stdout.is_empty(), "{stdout:?}");
    assert!(
        stderr.contains("livez: cannot connect to the probe server"),
        "{stderr}"
    );

    // Listening but never answering (not even HTTP/2's settings): the 1 s
    // timeout.
    let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let silent_addr = silent.local_addr().unwrap().to_string();
    let started = Instant::now();
    let (code, _, stderr) = run(
        TESTBED,
        &["--lifecycle-probe", "startupz"],
        &[("LIFECYCLE_PROBE_ADDR", &silent_addr), grpc],
    );
    let took = started.elapsed();
    assert_eq!(code, Some(1));
    assert!(
        stderr.contains("no answer from the probe server"),
        "{stderr}"
    );
    assert!(took >= Duration::from_millis(1000), "{took:?}");
    assert!(took < Duration::from_millis(2000), "{took:?}");
}

#[test]
fn a_manifest_needs_an_address_the_kubelet_can_reach() {
    let (code, _, stderr) = run(
        TESTBED,
        &["--lifecycle-manifest"],
        &[("LIFECYCLE_PROBE_ADDR", "0.0.0.0:0")],
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("has port 0, which the kubelet cannot probe"),
        "{stderr}"
    );
    let (code, _, stderr) = run(
        TESTBED,
        &["--lifecycle-manifest"],
        &[("LIFECYCLE_PROBE_ADDR", "127.0.0.1:9100")],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is a loopback address"), "{stderr}");
}

#[test]
fn a_manifest_that_cannot_reach_stdout_is_a_failure_not_a_panic() {
    let output = std::process::Command::new(TESTBED)
        .arg("--lifecycle-manifest")
        .env("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100")
        .stdout(std::fs::File::create("/dev/full").unwrap())
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(1), "{stderr}");
    assert!(
        stderr.contains("cannot write the manifest to stdout: No space left on device"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}

#[test]
fn the_manifest_warns_when_the_shutdown_budget_cannot_hold_in_the_cluster() {
    let env = [
        ("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100"),
        ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "20000"),
    ];
    let (code, stdout, _) = run(TESTBED, &["--lifecycle-manifest"], &env);
    assert_eq!(code, Some(0));
    // testbed's hooks: 2 s + 10 s + 2 s, 5 s of drain on Kubernetes and
    // the default 5 s of connection drain: more than 20 s.
    assert!(
        stdout[0].starts_with(
            "# WARNING: the shutdown budget cannot hold: drain delay 5000 ms + connection drain 5000 ms + on_shutdown hook timeouts 14000 ms"
        ),
        "{stdout:?}"
    );
}

#[test]
fn the_exec_probe_waits_as_long_as_the_checks_may_take() {
    // coalesced takes 1.5 s here, within its 3 s timeout.
    let service = fixture(TESTBED)
        .env("TESTBED_SLOW_CHECK_MS", "1500")
        .spawn()
        .unwrap();
    // Past the kubelet's default 1 s, as the manifest's timeout allows.
    service.wait_for_status("/readyz", 200, DEADLINE);
    let addr = probe_addr_of(&service, "127.0.0.1");
    let env = [
        ("LIFECYCLE_PROBE_ADDR", addr.as_str()),
        ("TESTBED_SLOW_CHECK_MS", "1500"),
    ];
    let (code, stdout, stderr) = run(TESTBED, &["--lifecycle-probe", "readyz"], &env);
    assert_eq!(
        (code, stdout),
        (Some(0), vec!["ok".to_string()]),
        "{stderr}"
    );
    // The same wait over gRPC.
    let grpc = [env[0], env[1], ("LIFECYCLE_PROBE_PROTOCOL", "grpc")];
    let (code, stdout, stderr) = run(TESTBED, &["--lifecycle-probe", "readyz"], &grpc);
    assert_eq!(
        (code, stdout),
        (Some(0), vec!["SERVING".to_string()]),
        "{stderr}"
    );
}

#[test]
fn on_kubernetes_the_default_drain_delay_keeps_serving_for_5_s() {
    let mut service = fixture(TESTBED)
        .env("KUBERNETES_SERVICE_HOST", "10.96.0.1")
        .spawn()
        .unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    service
        .wait_for_log(
            "drain delay 5000 ms (the default on Kubernetes: KUBERNETES_SERVICE_HOST is set)",
            DEADLINE,
        )
        .unwrap();
    let app = service.app_url();
    let signalled = Instant::now();
    service.signal(libc::SIGTERM);
    service.wait_for_status("/readyz", 503, DEADLINE);
    // Well inside the 5 s: still serving, on a new connection.
    std::thread::sleep(Duration::from_millis(2500));
    assert_eq!(
        http_get(&format!("{app}/phase")).unwrap(),
        (200, "Draining".into())
    );
    service.wait_for_stdout("main finishing in-flight requests", DEADLINE);
    let drained = signalled.elapsed();
    assert!(
        drained >= Duration::from_millis(5000),
        "stopped serving after {drained:?}"
    );
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(0));
}

#[test]
fn off_kubernetes_there_is_no_drain_delay_by_default() {
    // The kit leaves out the test process's KUBERNETES_SERVICE_HOST.
    let service = fixture(TESTBED).spawn().unwrap();
    service
        .wait_for_log(
            "drain delay 0 ms (the default off Kubernetes: KUBERNETES_SERVICE_HOST is not set)",
            DEADLINE,
        )
        .unwrap();
}
