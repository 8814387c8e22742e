//! The quick start on Kubernetes: its generated manifest, the Deployment in
//! `examples/k8s/` kept in sync with it, and the shutdown budget warning.

// The manifest read as Kubernetes does, by the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use lifecycle_testing::Service;
use lifecycle_tests::kubernetes::{container, http_probe, manifest, parse_exactly, pod_template};
use lifecycle_tests::run;

const QUICKSTART: &str = env!("CARGO_BIN_EXE_quickstart");
const DEADLINE: Duration = Duration::from_secs(15);

#[test]
fn the_manifest_follows_the_quickstarts_own_checks() {
    // Another binary than the testbed (tests/tests/kubernetes.rs), other
    // checks: quickstart's readiness check has 100 ms.
    let quickstart = manifest(QUICKSTART, &[]);
    let quickstart = container(&quickstart, "quickstart");
    let (ready, _, port) = http_probe(&quickstart.readiness_probe);
    assert_eq!((ready.timeout_seconds, port), (Some(1), 8081));
}

#[test]
fn the_quickstart_manifest_carries_no_budget_warning() {
    let (code, stdout, _) = run(QUICKSTART, &["--lifecycle-manifest"], &[]);
    assert_eq!(code, Some(0));
    assert!(!stdout.iter().any(|l| l.contains("WARNING")), "{stdout:?}");
}

#[test]
fn the_example_deployment_carries_the_generated_probes() {
    let generated = manifest(QUICKSTART, &[]);
    let generated = container(&generated, "quickstart");
    let text = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../k8s/deployment.yaml"
    ))
    .unwrap();
    let first = text.split("\n---").next().unwrap();
    let deployment: Deployment = parse_exactly(first);
    let template = deployment.spec.unwrap().template;
    // Prometheus finds the probe port's /metrics as the manifest says.
    assert_eq!(
        template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone()),
        pod_template(QUICKSTART, &[])
            .metadata
            .and_then(|m| m.annotations),
        "examples/k8s/deployment.yaml is out of date: the prometheus.io annotations"
    );
    let pod = template.spec.unwrap();
    let deployed = container(&pod, "quickstart");
    let hint = "examples/k8s/deployment.yaml is out of date: paste in `cargo run -p quickstart -- --lifecycle-manifest`";
    assert_eq!(deployed.startup_probe, generated.startup_probe, "{hint}");
    assert_eq!(deployed.liveness_probe, generated.liveness_probe, "{hint}");
    assert_eq!(
        deployed.readiness_probe, generated.readiness_probe,
        "{hint}"
    );
    assert_eq!(
        deployed.termination_message_policy, generated.termination_message_policy,
        "{hint}"
    );
    assert_eq!(
        pod.termination_grace_period_seconds,
        manifest(QUICKSTART, &[]).termination_grace_period_seconds,
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
    let quickstart = |drain_delay_ms: &str| {
        // The kit puts the probes on a free port; the application too.
        Service::builder(QUICKSTART)
            .env("APP_ADDR", "127.0.0.1:0")
            .env("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "3000")
            .env("LIFECYCLE_DRAIN_DELAY_MS", drain_delay_ms)
            .env("LIFECYCLE_CONNECTION_DRAIN_MS", "400")
            .env("RUST_LOG", "info")
            .spawn()
            .unwrap()
    };
    // 500 ms drain + 400 ms connection drain + 2000 ms hook <= 3000 ms:
    // no warning.
    let fits = quickstart("500");
    fits.wait_for_log("start-up finished", DEADLINE).unwrap();
    assert!(
        !fits.log().iter().any(|line| line.contains(warning)),
        "{:?}",
        fits.log()
    );

    // 1500 ms drain + 400 ms connection drain + 2000 ms hook > 3000 ms: a
    // warning with each figure.
    let overruns = quickstart("1500");
    let line = overruns
        .wait_for_log(warning, DEADLINE)
        .expect("a budget warning");
    assert!(line.contains("WARN"), "{line}");
    assert!(
        line.contains(
            "drain delay 1500 ms + connection drain 400 ms + on_shutdown hook timeouts 2000 ms \
             [order 0: 2000 ms (report_requests_served)] = 3900 ms, \
             more than the shutdown timeout of 3000 ms"
        ),
        "{line}"
    );
}
