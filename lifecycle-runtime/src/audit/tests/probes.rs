//! Probes by their handlers, their numbers and what they are aimed at.

use super::*;

#[cfg(not(feature = "grpc"))]
#[test]
fn a_grpc_probe_of_a_binary_without_grpc_is_an_error() {
    assert_eq!(
        drift(
            "livenessProbe: { httpGet: { path: /livez, port: 8081 } }",
            "livenessProbe: { grpc: { port: 8081, service: livez } }"
        ),
        [
            "error Deployment/web container svc: livenessProbe is a gRPC probe, but the binary has no gRPC health; the binary needs an httpGet probe (it was built without lifecycle-runtime's cargo feature grpc); fix: replace livenessProbe.grpc with httpGet path /livez port 8081",
            ONE_ERROR,
        ]
    );
}

#[test]
fn exec_probes_are_read_by_their_lifecycle_probe_flag() {
    let liveness = "livenessProbe: { httpGet: { path: /livez, port: 8081 } }";
    assert_eq!(
        drift(
            liveness,
            "livenessProbe: { exec: { command: [/svc, --lifecycle-probe, healthz] } }"
        ),
        [
            "error Deployment/web container svc: livenessProbe runs --lifecycle-probe \"healthz\", which does not exist; the binary needs --lifecycle-probe livez, readyz or startupz; fix: run --lifecycle-probe livez",
            ONE_ERROR,
        ]
    );
    assert_eq!(
        drift(
            liveness,
            "livenessProbe: { exec: { command: [cat, /tmp/healthy] } }"
        ),
        [
            "warning Deployment/web container svc: livenessProbe runs an exec command without --lifecycle-probe, which cannot be checked; the binary needs a probe of /livez; fix: probe /livez with httpGet, or run --lifecycle-probe livez",
            ONE_WARNING,
        ]
    );
    // A tcpSocket probe: only its named port is checked.
    assert_eq!(
        drift(liveness, "livenessProbe: { tcpSocket: { port: probes } }"),
        [CLEAN]
    );
    let http_pre_stop = good().replace(
        "ports: [{ name: probes, containerPort: 8081 }]",
        "ports: [{ name: probes, containerPort: 8081 }]\n        lifecycle: { preStop: { httpGet: { path: /drain, port: 8080 } } }",
    );
    assert!(lines(&http_pre_stop)[0].starts_with(
        "warning Deployment/web container svc: lifecycle.preStop runs an httpGet hook, whose duration cannot be checked;"
    ));
}

#[test]
fn an_exec_probe_through_a_shell_is_read_word_by_word() {
    assert_eq!(
        drift(
            "livenessProbe: { httpGet: { path: /livez, port: 8081 } }",
            "livenessProbe: { exec: { command: [sh, -c, '/svc --lifecycle-probe readyz'] }, timeoutSeconds: 4 }"
        ),
        [
            "error Deployment/web container svc: livenessProbe is aimed at readiness (--lifecycle-probe readyz): a dependency down or a drain restarts the container; the binary needs liveness aimed at livez, which fails only when the process itself is broken; fix: aim livenessProbe at /livez (gRPC service livez, --lifecycle-probe livez)",
            ONE_ERROR,
        ]
    );
}

#[test]
fn startup_aimed_at_readiness_and_readiness_at_liveness_are_warnings() {
    assert_eq!(
        drift("path: /startupz, port: probes }", "path: /readyz, port: probes }, timeoutSeconds: 4"),
        [
            "warning Deployment/web container svc: startupProbe is aimed at readiness (path /readyz): a dependency down at start-up has the container restarted over and over; the binary needs startup aimed at startupz, which passes once start-up is done; fix: aim startupProbe at /startupz (gRPC service startupz, --lifecycle-probe startupz)",
            "warning Deployment/web container svc: startupProbe periodSeconds 2 is shorter than the interval of background check \"cache\" (5000 ms): the probe reads a result older than its period; the binary needs periodSeconds 5 or more; fix: set startupProbe.periodSeconds to 5, or shorten the check's interval_ms",
            "checked 1 container running svc: 0 errors, 2 warnings",
        ]
    );
    assert_eq!(
        drift("path: /readyz, port: 8081 }", "path: /livez, port: 8081 }"),
        [
            "warning Deployment/web container svc: readinessProbe is aimed at liveness (path /livez): the pod stays in rotation while a dependency is down or it drains; the binary needs readiness aimed at readyz, which fails while a dependency is down or the instance drains; fix: aim readinessProbe at /readyz (gRPC service readyz, --lifecycle-probe readyz)",
            ONE_WARNING,
        ]
    );
}

#[test]
fn a_probe_s_0_takes_the_api_s_default_and_a_bad_number_is_an_error() {
    // failureThreshold 0 is 3: 6 s of start-up, not 0 s.
    assert_eq!(
        drift("failureThreshold: 17", "failureThreshold: 0"),
        [
            "error Deployment/web container svc: startupProbe allows 6000 ms for start-up (initialDelaySeconds 0 + failureThreshold 3 × periodSeconds 2); the binary needs 30000 ms (preflight checks 10000 ms + on_startup hooks 20000 ms); fix: set startupProbe.failureThreshold to 15",
            ONE_ERROR,
        ]
    );
    // periodSeconds 0 is 10, timeoutSeconds 0 is 1: enough for livez.
    assert_eq!(
        drift(
            "path: /livez, port: 8081 } }",
            "path: /livez, port: 8081 }, periodSeconds: 0, timeoutSeconds: 0, successThreshold: 0 }"
        ),
        [CLEAN]
    );
    for (written, shown) in [("-4", "-4"), ("'4'", "\"4\""), ("4.5", "4.5")] {
        assert_eq!(
            drift("timeoutSeconds: 4", &format!("timeoutSeconds: {written}")),
            [
                format!("error Deployment/web container svc: readinessProbe timeoutSeconds {shown} is not a whole number of 0 or more, which the API server refuses; the binary needs timeoutSeconds a whole number (0 or none takes Kubernetes' default, 1); fix: set readinessProbe.timeoutSeconds to a whole number, or remove it"),
                ONE_ERROR.to_owned(),
            ]
        );
    }
    assert_eq!(
        drift("failureThreshold: 17", "failureThreshold: 17, initialDelaySeconds: -1"),
        [
            "error Deployment/web container svc: startupProbe initialDelaySeconds -1 is not a whole number of 0 or more, which the API server refuses; the binary needs initialDelaySeconds a whole number (none is 0); fix: set startupProbe.initialDelaySeconds to a whole number, or remove it",
            ONE_ERROR,
        ]
    );
}

#[test]
fn text_of_the_manifest_stays_on_its_finding_s_line() {
    let found = drift(
        "path: /readyz, port: 8081 }",
        "path: \"/ready\\nerror forged\\u001b[2J\", port: 8081 }",
    );
    assert_eq!(
        found,
        [
            "error Deployment/web container svc: readinessProbe path \"/ready\\nerror forged\\u{1b}[2J\" does not exist on the probe server; the binary needs /readyz, or one of its checks: /readyz/NAME; fix: set readinessProbe.httpGet.path to /readyz",
            ONE_ERROR,
        ]
    );
}
