//! The pod around the container: stop signal, grace periods, Jobs,
//! workloads without this binary.

use super::*;

/// [`GOOD`] with `lifecycle.stopSignal: signal`, in a pod whose
/// `spec.os.name` is `os`.
fn stopping(signal: &str, os: Option<&str>) -> String {
    let pod = match os {
        Some(os) => format!("terminationGracePeriodSeconds: 30\n      os: {{ name: {os} }}"),
        None => "terminationGracePeriodSeconds: 30".to_owned(),
    };
    good()
        .replace(
            "ports: [{ name: probes, containerPort: 8081 }]",
            &format!("ports: [{{ name: probes, containerPort: 8081 }}]\n        lifecycle: {{ stopSignal: {signal} }}"),
        )
        .replace("terminationGracePeriodSeconds: 30", &pod)
}

#[test]
fn a_stop_signal_that_does_not_stop_the_binary_is_an_error() {
    let signal = |signal: &str| lines(&stopping(signal, Some("linux")));
    assert_eq!(signal("SIGTERM"), [CLEAN]);
    assert_eq!(signal("SIGINT"), [CLEAN]);
    assert_eq!(
        signal("SIGKILL"),
        [
            "error Deployment/web container svc: lifecycle.stopSignal SIGKILL does not stop this binary gracefully; the binary needs SIGTERM or SIGINT; fix: remove lifecycle.stopSignal",
            ONE_ERROR,
        ]
    );
    #[cfg(unix)]
    {
        assert_eq!(
            signal("SIGQUIT"),
            [
                "error Deployment/web container svc: lifecycle.stopSignal SIGQUIT does not stop this binary gracefully; the binary needs SIGTERM or SIGINT; fix: remove lifecycle.stopSignal, or set LIFECYCLE_STOP_SIGNAL to SIGQUIT in the container's env",
                ONE_ERROR,
            ]
        );
        // The container's own stop signal.
        let quit = stopping("SIGUSR1", Some("linux")).replace(
            "env: [{ name: RUST_LOG, valueFrom: { configMapKeyRef: { name: logs, key: level } } }]",
            "env: [{ name: LIFECYCLE_STOP_SIGNAL, value: QUIT }]",
        );
        assert_eq!(
            lines(&quit),
            [
                "error Deployment/web container svc: lifecycle.stopSignal SIGUSR1 does not stop this binary gracefully; the binary needs SIGTERM, SIGINT or its stop signal SIGQUIT; fix: set lifecycle.stopSignal to SIGQUIT, or remove it",
                ONE_ERROR,
            ]
        );
        assert_eq!(lines(&quit.replace("SIGUSR1", "SIGQUIT")), [CLEAN]);
    }
}

#[test]
fn a_stop_signal_needs_the_pod_s_os_named_linux() {
    // Windows takes SIGTERM (and SIGKILL) only.
    for (signal, os) in [("SIGTERM", None), ("SIGINT", Some("windows"))] {
        let named = os.map_or("no spec.os.name".to_owned(), |os| {
            format!("spec.os.name {os}")
        });
        assert_eq!(
            lines(&stopping(signal, os)),
            [
                format!("error Deployment/web container svc: lifecycle.stopSignal {signal} with {named}, which the API server refuses; the binary needs spec.os.name linux, which the API server asks of a pod with a stop signal; fix: set the pod's spec.os.name to linux"),
                ONE_ERROR.to_owned(),
            ]
        );
    }
    assert_eq!(lines(&stopping("SIGTERM", Some("windows"))), [CLEAN]);
}

/// [`GOOD`] with a preStop sleep of `seconds`, the drain delay at 0.
fn sleeping(seconds: u64) -> String {
    good()
        .replace(
            "ports: [{ name: probes, containerPort: 8081 }]",
            &format!("ports: [{{ name: probes, containerPort: 8081 }}]\n        lifecycle: {{ preStop: {{ sleep: {{ seconds: {seconds} }} }} }}"),
        )
        .replace(
            "env: [{ name: RUST_LOG, valueFrom: { configMapKeyRef: { name: logs, key: level } } }]",
            "env: [{ name: LIFECYCLE_DRAIN_DELAY_MS, value: '0' }]",
        )
}

#[test]
fn a_probe_grace_period_covers_the_pre_stop_sleep_too() {
    // The kubelet runs the preStop hook on a liveness kill as well, within
    // the probe's grace period: 30 s is the shutdown timeout and 5 s, not
    // the sleep's 10 s on top.
    let yaml = sleeping(10)
        .replace(
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSeconds: 40",
        )
        .replace(
            "path: /livez, port: 8081 }",
            "path: /livez, port: 8081 }, terminationGracePeriodSeconds: 30",
        );
    assert_eq!(
        lines(&yaml),
        [
            "error Deployment/web container svc: livenessProbe terminationGracePeriodSeconds 30 is shorter than the stop takes (preStop sleep 10 s + shutdown timeout 25000 ms); the binary needs 35000 ms, counted from the preStop hook, after a failed livenessProbe; fix: set livenessProbe.terminationGracePeriodSeconds to 40, or remove it",
            ONE_ERROR,
        ]
    );
    assert_eq!(
        lines(&yaml.replace(
            "}, terminationGracePeriodSeconds: 30",
            "}, terminationGracePeriodSeconds: 40"
        )),
        [CLEAN]
    );
}

#[test]
fn a_job_that_may_restart_its_pod_is_told_to_set_restart_policy_never() {
    let on_failure = JOB
        .replace(
            "  podFailurePolicy:\n    rules:\n    - { action: FailJob, onExitCodes: { containerName: svc, operator: In, values: [2] } }\n",
            "",
        )
        .replace("restartPolicy: Never", "restartPolicy: OnFailure");
    assert_eq!(
        lines(&on_failure),
        [
            "error Job/batch container svc: the Job does not fail on exit 2 (invalid configuration, which a retry cannot heal): no podFailurePolicy: exit 2 is retried up to backoffLimit; the binary needs a podFailurePolicy whose first rule for exit 2 is FailJob; fix: set the pod template's restartPolicy to Never, and put the rule {action: FailJob, onExitCodes: {containerName: svc, operator: In, values: [2]}} first in podFailurePolicy.rules (--lifecycle-manifest job prints it)",
            ONE_ERROR,
        ]
    );
}

#[test]
fn a_null_field_is_a_field_left_out() {
    // What Helm's toYaml prints for an empty value.
    let null_startup = good().replace(
        "startupProbe: { httpGet: { path: /startupz, port: probes }, periodSeconds: 2, failureThreshold: 17 }",
        "startupProbe: null",
    );
    assert_eq!(lines(&null_startup), [CLEAN]);
    let null_policy = JOB.replace(
        "  podFailurePolicy:\n    rules:\n    - { action: FailJob, onExitCodes: { containerName: svc, operator: In, values: [2] } }\n",
        "  podFailurePolicy: null\n",
    );
    assert!(lines(&null_policy)[0].contains(": no podFailurePolicy: exit 2 is retried"));
    let null_pre_stop = good().replace(
        "ports: [{ name: probes, containerPort: 8081 }]",
        "ports: [{ name: probes, containerPort: 8081 }]\n        lifecycle: { preStop: null }",
    );
    assert_eq!(lines(&null_pre_stop), [CLEAN]);
}

#[test]
fn the_pod_s_grace_period_of_0_is_0_and_a_string_is_refused() {
    assert_eq!(
        drift("terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: 0"),
        [
            "error Deployment/web container svc: terminationGracePeriodSeconds 0 is shorter than the stop takes (preStop sleep 0 s + shutdown timeout 25000 ms); the binary needs 25000 ms, counted from the signal; fix: set terminationGracePeriodSeconds to 30",
            ONE_ERROR,
        ]
    );
    assert_eq!(
        drift("terminationGracePeriodSeconds: 30", "terminationGracePeriodSeconds: '30'"),
        [
            "error Deployment/web container svc: terminationGracePeriodSeconds \"30\" is not a whole number of 0 or more, which the API server refuses; the binary needs terminationGracePeriodSeconds a whole number of seconds (none takes Kubernetes' default, 30); fix: set terminationGracePeriodSeconds to a whole number, or remove it",
            ONE_ERROR,
        ]
    );
}

#[test]
fn preflight_init_containers_are_audited_only_beside_the_binary() {
    // Helm output with two lifecycle services: the other's preflight init
    // container is the other's to audit.
    let other = good()
        .replace("name: web", "name: api")
        .replace("- name: svc", "- name: api")
        .replace(
            "      containers:\n",
            "      initContainers:\n      - name: api-preflight\n        args: [--lifecycle-preflight]\n        env: [{ name: LIFECYCLE_METRICS, value: sometimes }]\n      containers:\n",
        );
    let yaml = format!("{}---\n{other}", good());
    assert_eq!(lines(&yaml), [CLEAN]);
}
