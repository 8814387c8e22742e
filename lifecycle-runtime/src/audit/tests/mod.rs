//! The audit over made-up registrations: each finding alone, on a
//! manifest that is otherwise right, with its exact line.

use std::time::Duration;

use super::*;
use crate::health::Health;
use crate::registry::{Call, CheckKind, CheckRegistration, Site};

const SITE: Site = Site {
    module: "tests",
    file: file!(),
    line: 0,
};

fn up() -> Health {
    Health::up()
}

const fn check(
    kind: CheckKind,
    name: &'static str,
    timeout_ms: u64,
    interval_ms: Option<u64>,
) -> CheckRegistration {
    CheckRegistration {
        kind,
        name,
        timeout_ms: Some(timeout_ms),
        critical: true,
        interval_ms,
        call: Call::Blocking(up),
        site: SITE,
    }
}

static DB: CheckRegistration = check(CheckKind::Readiness, "db", 3000, None);
static CACHE: CheckRegistration = check(CheckKind::Readiness, "cache", 9000, Some(5000));
static ENGINE: CheckRegistration = check(CheckKind::Liveness, "engine", 100, None);
static MIGRATIONS: CheckRegistration = check(CheckKind::Startup, "migrations", 500, None);
static SCHEMA: CheckRegistration = check(CheckKind::Preflight, "schema", 10_000, None);

/// Start-up may take 10 s of preflight and 20 s of hooks.
fn binary() -> Binary {
    Binary {
        checks: vec![&DB, &CACHE, &ENGINE, &MIGRATIONS, &SCHEMA],
        startup_hooks: Duration::from_secs(20),
    }
}

fn config() -> ServiceConfig {
    ServiceConfig {
        probe_addr: Some("0.0.0.0:8081"),
        tracing: false,
        metrics: cfg!(feature = "metrics"),
        ..ServiceConfig::defaults()
    }
}

/// A Deployment that is right for [`binary`]: the readiness probe's
/// timeout covers `db`, its period `cache`'s interval, the startup probe
/// 30 s, the grace period the default 25 s shutdown timeout.
const GOOD: &str = "\
kind: Deployment
metadata: { name: web }
spec:
  template:
    metadata:
      annotations: { prometheus.io/scrape: 'true', prometheus.io/port: '8081', prometheus.io/path: /metrics }
    spec:
      terminationGracePeriodSeconds: 30
      containers:
      - name: svc
        ports: [{ name: probes, containerPort: 8081 }]
        env: [{ name: RUST_LOG, valueFrom: { configMapKeyRef: { name: logs, key: level } } }]
        startupProbe: { httpGet: { path: /startupz, port: probes }, periodSeconds: 2, failureThreshold: 17 }
        livenessProbe: { httpGet: { path: /livez, port: 8081 } }
        readinessProbe: { httpGet: { path: /readyz, port: 8081 }, timeoutSeconds: 4, periodSeconds: 5 }
";

/// [`GOOD`] for this build: without the `metrics` feature the binary
/// serves no metrics, and the scrape annotations go.
fn good() -> String {
    const ANNOTATIONS: &str = "    metadata:\n      annotations: { prometheus.io/scrape: 'true', prometheus.io/port: '8081', prometheus.io/path: /metrics }\n";
    assert!(GOOD.contains(ANNOTATIONS));
    if cfg!(feature = "metrics") {
        GOOD.to_owned()
    } else {
        GOOD.replace(ANNOTATIONS, "")
    }
}

/// The lines of the audit of `yaml`, the summary last.
fn lines(yaml: &str) -> Vec<String> {
    lines_with(config(), yaml)
}

fn lines_with(config: ServiceConfig, yaml: &str) -> Vec<String> {
    let documents = read::read_yaml(yaml).unwrap();
    let audit = audit(&config, &binary(), &documents, "svc");
    let mut lines: Vec<String> = audit.findings.iter().map(render::line).collect();
    lines.push(render::summary(&audit.findings, audit.containers, "svc"));
    lines
}

/// The lines of [`GOOD`] with `from` replaced by `to`.
fn drift(from: &str, to: &str) -> Vec<String> {
    let good = good();
    assert!(good.contains(from), "{from}");
    lines(&good.replacen(from, to, 1))
}

/// The lines of [`GOOD`] with its container's `env` replaced by `env`.
fn with_env(env: &str) -> Vec<String> {
    drift(
        "env: [{ name: RUST_LOG, valueFrom: { configMapKeyRef: { name: logs, key: level } } }]",
        &format!("env: {env}"),
    )
}

const CLEAN: &str = "checked 1 container running svc: 0 errors, 0 warnings";
const ONE_ERROR: &str = "checked 1 container running svc: 1 error, 0 warnings";
const ONE_WARNING: &str = "checked 1 container running svc: 0 errors, 1 warning";

#[test]
fn a_manifest_that_fits_the_binary_has_no_finding() {
    assert_eq!(lines(&good()), [CLEAN]);
}

#[test]
fn a_probe_of_a_path_the_server_does_not_serve_is_an_error() {
    for (path, shown) in [
        ("/live", "/live"),
        ("/livez/", "/livez/"),
        ("/livez/db", "/livez/db"),
        ("/healthz/engine", "/healthz/engine"),
        ("livez", "livez"),
    ] {
        assert_eq!(
            drift("path: /livez", &format!("path: '{path}'")),
            [
                format!("error Deployment/web container svc: livenessProbe path \"{shown}\" does not exist on the probe server; the binary needs /livez, or one of its checks: /livez/NAME; fix: set livenessProbe.httpGet.path to /livez"),
                ONE_ERROR.to_owned(),
            ],
            "{path}"
        );
    }
    // A check of the endpoint, a built-in one, a query: all served.
    for path in ["/livez/engine", "/livez/runtime", "/livez?verbose"] {
        assert_eq!(drift("path: /livez", &format!("path: '{path}'")), [CLEAN]);
    }
}

#[test]
fn a_probe_of_another_port_or_an_undeclared_name_is_an_error() {
    assert_eq!(
        drift("path: /livez, port: 8081", "path: /livez, port: 8080"),
        [
            "error Deployment/web container svc: livenessProbe port 8080 is not the probe server's port; the binary needs port 8081 (its probe address is 0.0.0.0:8081); fix: set livenessProbe.httpGet.port to 8081",
            ONE_ERROR,
        ]
    );
    assert_eq!(
        drift("port: probes", "port: health"),
        [
            "error Deployment/web container svc: startupProbe port \"health\" is not declared by the container; the binary needs a port the container declares (the probe server's is 8081); fix: add {name: health, containerPort: 8081} to the container's ports, or give startupProbe.httpGet.port as a number",
            ONE_ERROR,
        ]
    );
    // The port follows the container's env.
    // Three probes on another port, and the scrape annotation (with
    // metrics), and the summary.
    assert_eq!(
        with_env("[{ name: LIFECYCLE_PROBE_ADDR, value: '[::]:9000' }]").len(),
        if cfg!(feature = "metrics") { 5 } else { 4 },
    );
}

#[test]
fn an_address_the_kubelet_cannot_reach_is_an_error() {
    let lines = with_env("[{ name: LIFECYCLE_PROBE_ADDR, value: '127.0.0.1:8081' }]");
    assert_eq!(lines.len(), 4, "{lines:#?}");
    assert_eq!(
        lines[1],
        "error Deployment/web container svc: livenessProbe cannot reach the probe server, which listens on 127.0.0.1:8081 with this container's env; the binary needs a probe address the kubelet reaches: not loopback, not port 0; fix: set LIFECYCLE_PROBE_ADDR to 0.0.0.0:8081 in the container's env"
    );
}

#[test]
fn https_is_an_error() {
    assert_eq!(
        drift("path: /livez, port: 8081", "path: /livez, port: 8081, scheme: HTTPS"),
        [
            "error Deployment/web container svc: livenessProbe scheme HTTPS, but the probe server speaks plain HTTP; the binary needs scheme HTTP; fix: remove livenessProbe.httpGet.scheme",
            ONE_ERROR,
        ]
    );
}

#[test]
fn liveness_aimed_at_readiness_is_an_error_however_it_asks() {
    let line = |asked: &str| {
        format!("error Deployment/web container svc: livenessProbe is aimed at readiness ({asked}): a dependency down or a drain restarts the container; the binary needs liveness aimed at livez, which fails only when the process itself is broken; fix: aim livenessProbe at /livez (gRPC service livez, --lifecycle-probe livez)")
    };
    for path in ["/readyz/db", "/healthz"] {
        assert_eq!(
            drift(
                "path: /livez, port: 8081 }",
                &format!("path: {path}, port: 8081 }}, timeoutSeconds: 4"),
            ),
            [line(&format!("path {path}")), ONE_ERROR.to_owned()]
        );
    }
    // /readyz runs `db`: 1 s is too short for it, too.
    let lines = drift("path: /livez", "path: /readyz");
    assert_eq!(lines[0], line("path /readyz"));
    assert_eq!(lines.len(), 3, "{lines:#?}");
    assert_eq!(
        drift(
            "livenessProbe: { httpGet: { path: /livez, port: 8081 } }",
            "livenessProbe: { exec: { command: [/svc, --lifecycle-probe, readyz] }, timeoutSeconds: 4 }"
        ),
        [line("--lifecycle-probe readyz"), ONE_ERROR.to_owned()]
    );
    assert_eq!(
        drift(
            "livenessProbe: { httpGet: { path: /livez, port: 8081 } }",
            "livenessProbe: { exec: { command: [/svc, --lifecycle-probe=livez] } }"
        ),
        [CLEAN]
    );
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_probes_are_read_by_their_service_names() {
    let line = |asked: &str| {
        format!("error Deployment/web container svc: livenessProbe is aimed at readiness ({asked}): a dependency down or a drain restarts the container; the binary needs liveness aimed at livez, which fails only when the process itself is broken; fix: aim livenessProbe at /livez (gRPC service livez, --lifecycle-probe livez)")
    };
    let liveness = "livenessProbe: { httpGet: { path: /livez, port: 8081 } }";
    assert_eq!(
        drift(
            liveness,
            "livenessProbe: { grpc: { port: 8081, service: livez } }"
        ),
        [CLEAN]
    );
    assert_eq!(
        drift(
            liveness,
            "livenessProbe: { grpc: { port: 8081 }, timeoutSeconds: 4 }"
        ),
        [line("gRPC service \"\""), ONE_ERROR.to_owned()]
    );
    assert_eq!(
        drift(liveness, "livenessProbe: { grpc: { port: 8081, service: livez/db } }"),
        [
            "error Deployment/web container svc: livenessProbe gRPC service \"livez/db\" does not exist on the probe server; the binary needs service livez, or one of its checks: livez/NAME; fix: set livenessProbe.grpc.service to livez",
            ONE_ERROR,
        ]
    );
    assert_eq!(
        drift(
            liveness,
            "livenessProbe: { grpc: { port: 8081, service: healthz } }"
        )
        .len(),
        2
    );
}

#[test]
fn a_timeout_below_the_checks_is_an_error() {
    assert_eq!(
        drift("timeoutSeconds: 4", "timeoutSeconds: 3"),
        [
            "error Deployment/web container svc: readinessProbe timeoutSeconds 3 is shorter than its checks may take; the binary needs 3050 ms (check \"db\" 3000 ms + 50 ms); fix: set readinessProbe.timeoutSeconds to 4",
            ONE_ERROR,
        ]
    );
    // Left out, it is 1; `cache` (9 s, in the background) never counts.
    assert_eq!(drift("timeoutSeconds: 4, ", "").len(), 2);
    assert_eq!(
        drift(
            "path: /readyz, port: 8081 }, timeoutSeconds: 4",
            "path: /readyz/cache, port: 8081 }, timeoutSeconds: 1"
        ),
        [CLEAN]
    );
}

#[test]
fn a_startup_budget_below_start_up_is_an_error() {
    assert_eq!(
        drift("failureThreshold: 17", "failureThreshold: 14"),
        [
            "error Deployment/web container svc: startupProbe allows 28000 ms for start-up (initialDelaySeconds 0 + failureThreshold 14 × periodSeconds 2); the binary needs 30000 ms (preflight checks 10000 ms + on_startup hooks 20000 ms); fix: set startupProbe.failureThreshold to 15",
            ONE_ERROR,
        ]
    );
    // Without a startup probe, liveness's 3 × 10 s holds just enough.
    let without = good().replace(
        "        startupProbe: { httpGet: { path: /startupz, port: probes }, periodSeconds: 2, failureThreshold: 17 }\n",
        "",
    );
    assert_eq!(lines(&without), [CLEAN]);
    assert_eq!(
        lines(&without.replace("path: /livez, port: 8081 }", "path: /livez, port: 8081 }, periodSeconds: 5")),
        [
            "error Deployment/web container svc: no startupProbe, and livenessProbe allows 15000 ms for start-up (initialDelaySeconds 0 + failureThreshold 3 × periodSeconds 5); the binary needs 30000 ms (preflight checks 10000 ms + on_startup hooks 20000 ms); fix: add a startupProbe (httpGet path /startupz port 8081, periodSeconds 2, failureThreshold 17), as --lifecycle-manifest prints it",
            ONE_ERROR,
        ]
    );
}

#[test]
fn a_grace_period_below_the_stop_is_an_error() {
    assert_eq!(
        drift("terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 20"),
        [
            "error Deployment/web container svc: terminationGracePeriodSeconds 20 is shorter than the stop takes (preStop sleep 0 s + shutdown timeout 25000 ms); the binary needs 25000 ms, counted from the signal; fix: set terminationGracePeriodSeconds to 30",
            ONE_ERROR,
        ]
    );
    // Left out, it is 30: enough.
    assert_eq!(
        drift("      terminationGracePeriodSeconds: 30\n", ""),
        [CLEAN]
    );
    // The shutdown timeout is the container's.
    assert_eq!(
        with_env("[{ name: LIFECYCLE_SHUTDOWN_TIMEOUT_MS, value: '40000' }]")[0],
        "error Deployment/web container svc: terminationGracePeriodSeconds 30 is shorter than the stop takes (preStop sleep 0 s + shutdown timeout 40000 ms); the binary needs 40000 ms, counted from the signal; fix: set terminationGracePeriodSeconds to 45"
    );
}

#[test]
fn a_pre_stop_sleep_counts_in_the_grace_and_doubles_the_drain_delay() {
    let sleep = |seconds: u32| {
        drift(
            "ports: [{ name: probes, containerPort: 8081 }]",
            &format!("ports: [{{ name: probes, containerPort: 8081 }}]\n        lifecycle: {{ preStop: {{ sleep: {{ seconds: {seconds} }} }} }}"),
        )
    };
    assert_eq!(
        sleep(10),
        [
            "warning Deployment/web container svc: a preStop sleep and the drain delay both hold the pod in rotation (sleep 10 s, drain delay 5000 ms); the binary needs one of them: its drain delay, which fails readiness at once while the sleep does not; fix: remove lifecycle.preStop and keep the drain delay (LIFECYCLE_DRAIN_DELAY_MS sets it)",
            "error Deployment/web container svc: terminationGracePeriodSeconds 30 is shorter than the stop takes (preStop sleep 10 s + shutdown timeout 25000 ms); the binary needs 35000 ms, counted from the preStop hook; fix: set terminationGracePeriodSeconds to 40",
            "checked 1 container running svc: 1 error, 1 warning",
        ]
    );
    // The drain delay at 0: the sleep alone, within the grace.
    let alone = good().replace(
        "ports: [{ name: probes, containerPort: 8081 }]",
        "ports: [{ name: probes, containerPort: 8081 }]\n        lifecycle: { preStop: { sleep: { seconds: 5 } } }",
    ).replace(
        "env: [{ name: RUST_LOG, valueFrom: { configMapKeyRef: { name: logs, key: level } } }]",
        "env: [{ name: LIFECYCLE_DRAIN_DELAY_MS, value: '0' }]",
    );
    assert_eq!(lines(&alone), [CLEAN]);
    let exec = good().replace(
        "ports: [{ name: probes, containerPort: 8081 }]",
        "ports: [{ name: probes, containerPort: 8081 }]\n        lifecycle: { preStop: { exec: { command: [sleep, '5'] } } }",
    );
    assert_eq!(
        lines(&exec),
        [
            "warning Deployment/web container svc: lifecycle.preStop runs an exec hook, whose duration cannot be checked; the binary needs terminationGracePeriodSeconds to cover the preStop hook + the shutdown timeout (25000 ms); fix: use a preStop sleep, or none (the drain delay, LIFECYCLE_DRAIN_DELAY_MS, does its job)",
            ONE_WARNING,
        ]
    );
}

#[test]
fn a_probe_grace_period_below_the_shutdown_timeout_is_an_error() {
    assert_eq!(
        drift("path: /livez, port: 8081 }", "path: /livez, port: 8081 }, terminationGracePeriodSeconds: 10"),
        [
            "error Deployment/web container svc: livenessProbe terminationGracePeriodSeconds 10 is shorter than the stop takes (preStop sleep 0 s + shutdown timeout 25000 ms); the binary needs 25000 ms, counted from the signal, after a failed livenessProbe; fix: set livenessProbe.terminationGracePeriodSeconds to 30, or remove it",
            ONE_ERROR,
        ]
    );
}

#[test]
fn a_value_start_up_rejects_is_an_error_with_its_message() {
    let env = with_env;
    assert_eq!(
        env("[{ name: LIFECYCLE_SHUTDOWN_TIMEOUT_MS, value: soon }, { name: LIFECYCLE_LOG_FORMAT, value: xml }]"),
        [
            "error Deployment/web container svc: invalid configuration: LIFECYCLE_LOG_FORMAT=\"xml\": expected \"json\" or \"text\"; the binary needs a value it accepts, or it exits 2 at start-up; fix: correct or remove LIFECYCLE_LOG_FORMAT in the container's env",
            "error Deployment/web container svc: invalid configuration: LIFECYCLE_SHUTDOWN_TIMEOUT_MS=\"soon\": expected a whole number of milliseconds from 1 to 86400000 (a day), e.g. 5000; the binary needs a value it accepts, or it exits 2 at start-up; fix: correct or remove LIFECYCLE_SHUTDOWN_TIMEOUT_MS in the container's env",
            "checked 1 container running svc: 2 errors, 0 warnings",
        ]
    );
    // The later entry wins, as in Kubernetes; blank is unset.
    assert_eq!(
        env("[{ name: LIFECYCLE_PID1, value: maybe }, { name: LIFECYCLE_PID1, value: 'off' }, { name: LIFECYCLE_REASONS, value: '' }]"),
        [CLEAN]
    );
    assert_eq!(
        env("[{ name: LIFECYCLE_DRAIN_DELAY_MS, valueFrom: { secretKeyRef: { name: s, key: k } } }]"),
        [
            "warning Deployment/web container svc: env LIFECYCLE_DRAIN_DELAY_MS comes from valueFrom, which cannot be checked; the binary needs a LIFECYCLE_DRAIN_DELAY_MS it accepts, or it exits 2 at start-up; fix: make sure the referenced value is valid, or set LIFECYCLE_DRAIN_DELAY_MS with value",
            ONE_WARNING,
        ]
    );
    let from = |env_from: &str| {
        drift(
            "env: [{ name: RUST_LOG, valueFrom: { configMapKeyRef: { name: logs, key: level } } }]",
            &format!("envFrom: {env_from}"),
        )
    };
    assert_eq!(
        from("[{ configMapRef: { name: settings } }]"),
        [
            "warning Deployment/web container svc: envFrom configMapRef \"settings\" may set LIFECYCLE_* variables, which cannot be checked; the binary needs LIFECYCLE_* values it accepts, or it exits 2 at start-up; fix: set LIFECYCLE_* variables in env, or give envFrom a prefix",
            ONE_WARNING,
        ]
    );
    assert_eq!(
        from("[{ prefix: APP_, secretRef: { name: app } }]"),
        [CLEAN]
    );
    assert_eq!(
        from("[{ prefix: LIFE, secretRef: { name: app } }]").len(),
        2
    );
}

#[test]
fn a_background_check_slower_than_the_period_is_a_warning() {
    assert_eq!(
        drift("periodSeconds: 5", "periodSeconds: 4"),
        [
            "warning Deployment/web container svc: readinessProbe periodSeconds 4 is shorter than the interval of background check \"cache\" (5000 ms): the probe reads a result older than its period; the binary needs periodSeconds 5 or more; fix: set readinessProbe.periodSeconds to 5, or shorten the check's interval_ms",
            ONE_WARNING,
        ]
    );
}

#[cfg(feature = "metrics")]
#[test]
fn prometheus_annotations_must_point_at_the_metrics() {
    assert_eq!(
        drift("prometheus.io/port: '8081'", "prometheus.io/port: '9090'"),
        [
            "warning Deployment/web container svc: annotation prometheus.io/port \"9090\" is not the probe server's port; the binary needs prometheus.io/port \"8081\", where /metrics is served; fix: set prometheus.io/port to \"8081\"",
            ONE_WARNING,
        ]
    );
    assert_eq!(
        drift("prometheus.io/path: /metrics", "prometheus.io/path: /stats"),
        [
            "warning Deployment/web container svc: annotation prometheus.io/path \"/stats\" is not where the metrics are served; the binary needs prometheus.io/path \"/metrics\"; fix: set prometheus.io/path to \"/metrics\"",
            ONE_WARNING,
        ]
    );
    assert_eq!(
        with_env("[{ name: LIFECYCLE_METRICS, value: 'off' }]"),
        [
            "warning Deployment/web container svc: prometheus.io annotations, but metrics are off (prometheus.io/path, prometheus.io/port, prometheus.io/scrape); the binary needs no scrape: it serves no /metrics with metrics off; fix: remove the prometheus.io annotations, or turn metrics on (LIFECYCLE_METRICS on)",
            ONE_WARNING,
        ]
    );
}

const JOB: &str = "\
kind: Job
metadata: { name: batch }
spec:
  podFailurePolicy:
    rules:
    - { action: FailJob, onExitCodes: { containerName: svc, operator: In, values: [2] } }
  template:
    spec:
      restartPolicy: Never
      containers:
      - name: svc
";

#[test]
fn a_job_must_fail_at_once_on_exit_2() {
    assert_eq!(lines(JOB), [CLEAN]);
    let fix = "fix: put the rule {action: FailJob, onExitCodes: {containerName: svc, operator: In, values: [2]}} first in podFailurePolicy.rules (--lifecycle-manifest job prints it)";
    let line = |why: &str| {
        format!("error Job/batch container svc: the Job does not fail on exit 2 (invalid configuration, which a retry cannot heal): {why}; the binary needs a podFailurePolicy whose first rule for exit 2 is FailJob; {fix}")
    };
    let without = JOB.replace(
        "  podFailurePolicy:\n    rules:\n    - { action: FailJob, onExitCodes: { containerName: svc, operator: In, values: [2] } }\n",
        "",
    );
    assert_eq!(
        lines(&without),
        [
            line("no podFailurePolicy: exit 2 is retried up to backoffLimit"),
            ONE_ERROR.to_owned()
        ]
    );
    assert_eq!(
        lines(&JOB.replace("values: [2]", "values: [1]")),
        [
            line("no podFailurePolicy rule matches exit 2 of container svc: it is retried up to backoffLimit"),
            ONE_ERROR.to_owned()
        ]
    );
    assert_eq!(
        lines(&JOB.replace("containerName: svc", "containerName: sidecar")).len(),
        2
    );
    let ignored_first = JOB.replace(
        "    - { action: FailJob",
        "    - { action: Ignore, onExitCodes: { operator: NotIn, values: [0] } }\n    - { action: FailJob",
    );
    assert_eq!(
        lines(&ignored_first),
        [
            line("podFailurePolicy's first rule matching exit 2 has action Ignore"),
            ONE_ERROR.to_owned()
        ]
    );
    assert_eq!(
        lines(&JOB.replace("restartPolicy: Never", "restartPolicy: OnFailure")),
        [
            "error Job/batch container svc: restartPolicy OnFailure with a podFailurePolicy, which the API refuses; the binary needs restartPolicy Never, so that exit 2 fails the pod and the policy fails the Job; fix: set the pod template's restartPolicy to Never",
            ONE_ERROR,
        ]
    );
    // A CronJob's job template, the same.
    let cron = format!(
        "kind: CronJob\nmetadata: {{ name: nightly }}\nspec:\n  schedule: '@daily'\n  jobTemplate:\n    spec:\n{}",
        without
            .lines()
            .skip_while(|line| *line != "spec:")
            .skip(1)
            .map(|line| format!("    {line}\n"))
            .collect::<String>()
    );
    assert_eq!(
        lines(&cron)[0],
        line("no podFailurePolicy: exit 2 is retried up to backoffLimit")
            .replace("Job/batch", "CronJob/nightly")
    );
}

#[test]
fn a_preflight_init_container_is_this_binary_s_and_its_env_is_read() {
    let yaml = good().replace(
        "      containers:\n",
        "      initContainers:\n      - name: preflight\n        args: [--lifecycle-preflight]\n        env: [{ name: LIFECYCLE_METRICS, value: sometimes }]\n      - name: migrate\n        command: [/migrate]\n      containers:\n",
    );
    assert_eq!(
        lines(&yaml),
        [
            "error Deployment/web container preflight: invalid configuration: LIFECYCLE_METRICS=\"sometimes\": expected \"on\" or \"off\" (or \"true\" or \"false\", \"1\" or \"0\"); the binary needs a value it accepts, or it exits 2 at start-up; fix: correct or remove LIFECYCLE_METRICS in the container's env",
            "checked 2 containers running svc: 1 error, 0 warnings",
        ]
    );
}

#[test]
fn other_containers_and_documents_are_left_alone() {
    let yaml = format!(
        "kind: Service\nmetadata: {{ name: web }}\n---\n{}",
        good().replace(
            "      containers:\n",
            "      containers:\n      - name: proxy\n        livenessProbe: { httpGet: { path: /readyz, port: 1 } }\n",
        )
    );
    assert_eq!(lines(&yaml), [CLEAN]);
    let documents = read::read_yaml(&yaml).unwrap();
    let none = audit(&config(), &binary(), &documents, "other");
    assert_eq!(none.services, 0);
    assert_eq!(
        none.seen,
        ["proxy in Deployment/web", "svc in Deployment/web"]
    );
}

mod generated;
mod pod;
mod probes;
