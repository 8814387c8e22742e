//! The Kubernetes story end to end: the preflight initContainer, the exec
//! probe, the generated manifest, the budget warning, the drain default.

mod support;

use std::time::{Duration, Instant};

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use support::{free_port, http_get, termination_log_path, Service};

const DEADLINE: Duration = Duration::from_secs(15);

/// Runs `bin ARGS` to its exit: (exit code, stdout lines, stderr).
fn run(bin: &str, args: &[&str], env: &[(&str, &str)]) -> (Option<i32>, Vec<String>, String) {
    let mut service = Service::spawn_with_args(bin, args, env);
    let status = service.wait_exit(DEADLINE);
    (status.code(), service.stdout_lines(), service.stderr_text())
}

#[test]
fn preflight_mode_runs_only_the_preflight_checks() {
    let (code, stdout, stderr) = run("testbed", &["--lifecycle-preflight"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, ["[+]config_present ok", "[+]disk-writable ok",]);
    assert!(
        !stderr.contains("probe server listening"),
        "no probe server: {stderr}"
    );

    let log = termination_log_path();
    let (code, stdout, stderr) = run(
        "testbed",
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
    let (code, stdout, stderr) = run("testbed", &[], &[("TESTBED_PREFLIGHT_FAIL", "1")]);
    assert_eq!(code, Some(1));
    assert!(!stdout.contains(&"hook warm_up start".to_string()));
    assert!(
        stderr.contains("preflight check \"config_present\" failed: TESTBED_PREFLIGHT_FAIL is set")
    );
}

#[test]
fn the_exec_probe_asks_the_running_instance() {
    let port = free_port();
    // Bound to every address: the exec probe reaches it on loopback.
    let addr = format!("0.0.0.0:{port}");
    let env = [("LIFECYCLE_PROBE_ADDR", addr.as_str())];
    let mut service = Service::start("testbed", &env);
    service.wait_for_status("/readyz", 200, DEADLINE);

    let (code, stdout, _) = run("testbed", &["--lifecycle-probe", "readyz"], &env);
    assert_eq!((code, stdout), (Some(0), vec!["ok".to_string()]));
    let (code, _, _) = run("testbed", &["--lifecycle-probe=livez"], &env);
    assert_eq!(code, Some(0));

    service.command("set down");
    let (code, stdout, _) = run("testbed", &["--lifecycle-probe", "readyz"], &env);
    assert_eq!(code, Some(1));
    assert_eq!(stdout, ["[-]toggle failed: toggled down by the test"]);
    let (code, _, _) = run("testbed", &["--lifecycle-probe", "livez"], &env);
    assert_eq!(code, Some(0));
}

#[test]
fn the_exec_probe_fails_when_nothing_answers() {
    // Nothing listening: refused at once.
    let refused = format!("127.0.0.1:{}", free_port());
    let (code, _, stderr) = run(
        "testbed",
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
        "testbed",
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
    ] {
        let (code, _, stderr) = run("testbed", args, &[]);
        assert_eq!(code, Some(2), "{args:?}");
        assert!(stderr.contains(args[0]), "{stderr}");
    }
}

fn manifest(bin: &str, env: &[(&str, &str)]) -> PodSpec {
    let (code, stdout, stderr) = run(bin, &["--lifecycle-manifest"], env);
    assert_eq!(code, Some(0), "{stderr}");
    serde_yaml::from_str(&stdout.join("\n")).expect("a PodSpec")
}

fn http_probe(probe: &Option<Probe>) -> (&Probe, String, i32) {
    let probe = probe.as_ref().expect("probe present");
    let get = probe.http_get.as_ref().expect("an httpGet probe");
    let port = match &get.port {
        IntOrString::Int(port) => *port,
        other => panic!("numeric port expected, got {other:?}"),
    };
    (probe, get.path.clone().unwrap(), port)
}

fn container(spec: &PodSpec, name: &str) -> Container {
    spec.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("container {name}"))
        .clone()
}

#[test]
fn the_manifest_is_a_pod_spec_derived_from_the_configuration() {
    let spec = manifest("testbed", &[("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100")]);
    assert_eq!(spec.containers.len(), 1);
    let testbed = container(&spec, "testbed");
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
    // -10 (60 s, checks-lib), 0 (warm_up, 30 s) = 160 s = 80 periods + 2.
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
    // Drain on Kubernetes 5 s + shutdown 25 s + 5 s.
    assert_eq!(spec.termination_grace_period_seconds, Some(35));

    // Change the configuration, and the manifest follows.
    let spec = manifest(
        "testbed",
        &[
            ("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9200"),
            ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "40000"),
            ("LIFECYCLE_DRAIN_DELAY_MS", "10000"),
        ],
    );
    assert_eq!(spec.termination_grace_period_seconds, Some(55));
    assert_eq!(
        http_probe(&container(&spec, "testbed").liveness_probe).2,
        9200
    );
    // Another binary, other checks: quickstart's readiness check has 100 ms.
    let quickstart = manifest("quickstart", &[]);
    let quickstart = container(&quickstart, "quickstart");
    let (ready, _, port) = http_probe(&quickstart.readiness_probe);
    assert_eq!((ready.timeout_seconds, port), (Some(1), 8081));
}

#[test]
fn a_manifest_needs_an_address_the_kubelet_can_reach() {
    let (code, _, stderr) = run(
        "testbed",
        &["--lifecycle-manifest"],
        &[("LIFECYCLE_PROBE_ADDR", "0.0.0.0:0")],
    );
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("has port 0, which the kubelet cannot probe"),
        "{stderr}"
    );
    let (code, _, stderr) = run(
        "testbed",
        &["--lifecycle-manifest"],
        &[("LIFECYCLE_PROBE_ADDR", "127.0.0.1:9100")],
    );
    assert_eq!(code, Some(2));
    assert!(stderr.contains("is a loopback address"), "{stderr}");
}

#[test]
fn the_manifest_warns_when_the_shutdown_budget_cannot_hold_in_the_cluster() {
    let env = [("LIFECYCLE_PROBE_ADDR", "0.0.0.0:9100")];
    let (code, stdout, _) = run("testbed", &["--lifecycle-manifest"], &env);
    assert_eq!(code, Some(0));
    // testbed's hooks: 10 s + 60 s + 10 s, and 5 s of drain on Kubernetes.
    assert!(
        stdout[0].starts_with(
            "# WARNING: the shutdown budget cannot hold: drain delay 5000 ms + on_shutdown hook timeouts 80000 ms"
        ),
        "{stdout:?}"
    );
    let (code, stdout, _) = run("quickstart", &["--lifecycle-manifest"], &[]);
    assert_eq!(code, Some(0));
    assert!(!stdout.iter().any(|l| l.contains("WARNING")), "{stdout:?}");
}

#[test]
fn the_exec_probe_waits_as_long_as_the_checks_may_take() {
    // coalesced takes 1.5 s here, within its 3 s timeout.
    let port = free_port();
    let addr = format!("127.0.0.1:{port}");
    let env = [
        ("LIFECYCLE_PROBE_ADDR", addr.as_str()),
        ("TESTBED_SLOW_CHECK_MS", "1500"),
    ];
    let service = Service::start("testbed", &env);
    service.wait_for_status("/readyz", 200, DEADLINE);
    let (code, stdout, stderr) = run("testbed", &["--lifecycle-probe", "readyz"], &env);
    assert_eq!(
        (code, stdout),
        (Some(0), vec!["ok".to_string()]),
        "{stderr}"
    );
}

#[test]
fn the_example_deployment_carries_the_generated_probes() {
    let generated = manifest("quickstart", &[]);
    let generated = container(&generated, "quickstart");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/k8s/deployment.yaml"
    ))
    .unwrap();
    let first = text.split("\n---").next().unwrap();
    let deployment: Deployment = serde_yaml::from_str(first).unwrap();
    let pod = deployment.spec.unwrap().template.spec.unwrap();
    let deployed = container(&pod, "quickstart");
    let hint = "examples/k8s/deployment.yaml is out of date: paste in `cargo run --bin quickstart -- --lifecycle-manifest`";
    assert_eq!(deployed.startup_probe, generated.startup_probe, "{hint}");
    assert_eq!(deployed.liveness_probe, generated.liveness_probe, "{hint}");
    assert_eq!(
        deployed.readiness_probe, generated.readiness_probe,
        "{hint}"
    );
    assert_eq!(
        pod.termination_grace_period_seconds,
        manifest("quickstart", &[]).termination_grace_period_seconds,
        "{hint}"
    );
    let probe_port = &generated.ports.unwrap()[0];
    assert!(deployed.ports.unwrap().contains(probe_port), "{hint}");
    // The initContainer is the same image in preflight mode.
    let init = &pod.init_containers.unwrap()[0];
    assert_eq!(init.image, deployed.image);
    assert_eq!(
        init.args.as_deref(),
        Some(&["--lifecycle-preflight".to_string()][..])
    );
}

#[test]
fn the_budget_warning_appears_exactly_when_the_budget_cannot_hold() {
    let warning = "the shutdown budget cannot hold";
    // 500 ms drain + 2000 ms hook <= 3000 ms: no warning.
    let fits = Service::start(
        "quickstart",
        &[
            ("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0"),
            ("APP_ADDR", "127.0.0.1:0"),
            ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "3000"),
            ("LIFECYCLE_DRAIN_DELAY_MS", "500"),
        ],
    );
    fits.wait_for_log("start-up finished", DEADLINE).unwrap();
    assert!(
        !fits.stderr_text().contains(warning),
        "{}",
        fits.stderr_text()
    );

    // 1500 ms drain + 2000 ms hook > 3000 ms: a warning with each figure.
    let overruns = Service::start(
        "quickstart",
        &[
            ("LIFECYCLE_PROBE_ADDR", "127.0.0.1:0"),
            ("APP_ADDR", "127.0.0.1:0"),
            ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "3000"),
            ("LIFECYCLE_DRAIN_DELAY_MS", "1500"),
        ],
    );
    let line = overruns
        .wait_for_log(warning, DEADLINE)
        .expect("a budget warning");
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains(
            "drain delay 1500 ms + on_shutdown hook timeouts 2000 ms \
             [order 0: 2000 ms (report_requests_served)] = 3500 ms, \
             more than the shutdown timeout of 3000 ms"
        ),
        "{line}"
    );
}

#[test]
fn on_kubernetes_the_default_drain_delay_keeps_serving_for_5_s() {
    let mut service = Service::start("testbed", &[("KUBERNETES_SERVICE_HOST", "10.96.0.1")]);
    service.wait_for_status("/readyz", 200, DEADLINE);
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
    assert_eq!(service.wait_exit(DEADLINE).code(), Some(0));
}

#[test]
fn off_kubernetes_there_is_no_drain_delay_by_default() {
    let service = Service::start("testbed", &[]);
    service
        .wait_for_log(
            "drain delay 0 ms (the default off Kubernetes: KUBERNETES_SERVICE_HOST is not set)",
            DEADLINE,
        )
        .unwrap();
}

#[test]
fn the_application_keeps_its_own_arguments() {
    let (code, stdout, stderr) = run("cli-args", &["--message", "hi", "--repeat", "2"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, ["message=hi", "message=hi"]);

    // lifecycle's flags are handled before main (and clap) run; cli-args
    // has no preflight checks, so nothing to print.
    let (code, stdout, _) = run(
        "cli-args",
        &["--message", "hi", "--lifecycle-preflight"],
        &[],
    );
    assert_eq!((code, stdout.len()), (Some(0), 0));

    // Any other argument is the application's, `--lifecycle-…` or not.
    let (code, stdout, _) = run("cli-args", &["--message=--lifecycle-v2"], &[]);
    assert_eq!(
        (code, stdout),
        (Some(0), vec!["message=--lifecycle-v2".to_string()])
    );
    let (code, _, stderr) = run("cli-args", &["--lifecycle-v2"], &[]);
    assert_eq!(code, Some(2), "clap's own exit code for a bad argument");
    assert!(
        stderr.contains("unexpected argument '--lifecycle-v2'"),
        "{stderr}"
    );
}

#[test]
fn without_lifecycle_logging_errors_still_reach_stderr() {
    // cli-args says `tracing = false`.
    let (code, stdout, stderr) = run("cli-args", &["--lifecycle-manifest=yes"], &[]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert_eq!(
        stderr,
        "error: exiting with code 2: invalid flag --lifecycle-manifest=yes: --lifecycle-manifest takes no value"
    );
}
