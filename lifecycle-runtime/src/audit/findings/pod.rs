//! What the pod around the container must give the binary: the startup
//! budget, the grace period, the stop signal, the scrape annotations, and
//! a Job's failure policy.

use std::time::Duration;

use serde_json::Value;

use super::container::Container;
use super::finding::{error, warning, Finding};
use super::numbers::{not_a_number, probe_number, whole_number};
use crate::audit::read::{items, present};
use crate::config::{self, ProbeProtocol, StopSignal};
use crate::exit;
use crate::manifest::{
    grace_needed, grace_seconds, probe_period_seconds, startup_failure_threshold,
    DEFAULT_GRACE_SECONDS, STARTUP_PERIOD_SECONDS,
};
use crate::probe::endpoint::METRICS_PATH;
use crate::probe::Endpoint;

impl Container<'_> {
    /// The startup probe's budget (or, without one, the liveness probe's)
    /// against the preflight checks and `on_startup` hooks.
    pub(super) fn startup_budget(&self, findings: &mut Vec<Finding>) {
        let (key, probe, prefix) = match (
            present(self.container, "startupProbe"),
            present(self.container, "livenessProbe"),
        ) {
            (Some(startup), _) => ("startupProbe", startup, ""),
            (None, Some(liveness)) => ("livenessProbe", liveness, "no startupProbe, and "),
            (None, None) => return,
        };
        let numbers = ["initialDelaySeconds", "failureThreshold", "periodSeconds"]
            .map(|number| probe_number(probe, number));
        let [Some(delay), Some(failures), Some(period)] = numbers else {
            return;
        };
        let allowed = u128::from(delay)
            .saturating_add(u128::from(failures).saturating_mul(u128::from(period)))
            .saturating_mul(1000);
        let needed = self.binary.startup_needed();
        if allowed >= needed.as_millis() {
            return;
        }
        let fix = if key == "startupProbe" {
            let rest = needed.as_millis().saturating_sub(u128::from(delay) * 1000);
            let fix = rest.div_ceil(u128::from(period.max(1)) * 1000).max(1);
            format!("set {key}.failureThreshold to {fix}")
        } else {
            self.add_startup_probe()
        };
        findings.push(error(
            format_args!("{prefix}{key} allows {allowed} ms for start-up (initialDelaySeconds {delay} + failureThreshold {failures} × periodSeconds {period})"),
            format_args!(
                "{} ms (preflight checks {} ms + on_startup hooks {} ms)",
                needed.as_millis(),
                self.binary.preflight_needed().as_millis(),
                self.binary.startup_hooks.as_millis(),
            ),
            format_args!("{fix}"),
        ));
    }

    /// The fix for a start-up that only the liveness probe bounds: a
    /// startup probe as the generator writes it, rather than a liveness
    /// probe so lenient that a hung process waits minutes for a restart.
    fn add_startup_probe(&self) -> String {
        let period = probe_period_seconds(
            STARTUP_PERIOD_SECONDS,
            &self.binary.endpoint_checks(Endpoint::Startupz),
        );
        let failures = startup_failure_threshold(self.binary.startup_needed(), period);
        let aimed = match self.settings.probe_protocol {
            ProbeProtocol::Http => format!("httpGet path {}", Endpoint::Startupz.path()),
            ProbeProtocol::Grpc => format!("grpc service {}", Endpoint::Startupz),
        };
        format!(
            "add a startupProbe ({aimed} port {}, periodSeconds {period}, failureThreshold {failures}), as --lifecycle-manifest prints it",
            self.probe_port()
        )
    }

    /// The seconds of the container's preStop `sleep`, 0 without one.
    pub(super) fn pre_stop_sleep(&self) -> Duration {
        let seconds = self
            .container
            .pointer("/lifecycle/preStop/sleep/seconds")
            .and_then(Value::as_u64);
        Duration::from_secs(seconds.unwrap_or(0))
    }

    /// What a grace period must cover: from the preStop hook, or from the
    /// signal without one.
    pub(super) fn stop_needs(&self, needed: Duration, pre_stop: Duration) -> String {
        let from = if pre_stop.is_zero() {
            "the signal"
        } else {
            "the preStop hook"
        };
        format!("{} ms, counted from {from}", needed.as_millis())
    }

    /// `terminationGracePeriodSeconds` against the preStop hook and the
    /// shutdown timeout, and the preStop hook against the drain delay.
    pub(super) fn grace(&self, pod_spec: &Value, findings: &mut Vec<Finding>) {
        self.pre_stop_hook(findings);
        let pre_stop = self.pre_stop_sleep();
        let needed = grace_needed(pre_stop, self.settings.shutdown_timeout);
        let fix = grace_seconds(self.settings).saturating_add(pre_stop.as_secs());
        let key = "terminationGracePeriodSeconds";
        let given = match whole_number(pod_spec, key) {
            Ok(given) => given.unwrap_or(DEFAULT_GRACE_SECONDS),
            Err(written) => {
                findings.push(not_a_number(
                    key,
                    &written,
                    format!("{key} a whole number of seconds (none takes Kubernetes' default, {DEFAULT_GRACE_SECONDS})"),
                    key,
                ));
                return;
            }
        };
        if u128::from(given) * 1000 >= needed.as_millis() {
            return;
        }
        findings.push(error(
            format_args!(
                "terminationGracePeriodSeconds {given} is shorter than the stop takes (preStop sleep {} s + shutdown timeout {} ms)",
                pre_stop.as_secs(),
                self.settings.shutdown_timeout.as_millis()
            ),
            format_args!("{}", self.stop_needs(needed, pre_stop)),
            format_args!("set terminationGracePeriodSeconds to {fix}"),
        ));
    }

    /// The preStop hook against the drain delay, or as something whose
    /// duration cannot be known.
    fn pre_stop_hook(&self, findings: &mut Vec<Finding>) {
        let Some(pre_stop) = self
            .container
            .pointer("/lifecycle/preStop")
            .filter(|hook| !hook.is_null())
        else {
            return;
        };
        let sleep = pre_stop.pointer("/sleep/seconds").and_then(Value::as_u64);
        if let Some(sleep) = sleep {
            if !self.settings.drain_delay.is_zero() {
                findings.push(warning(
                    format_args!(
                        "a preStop sleep and the drain delay both hold the pod in rotation (sleep {sleep} s, drain delay {} ms)",
                        self.settings.drain_delay.as_millis()
                    ),
                    format_args!("one of them: its drain delay, which fails readiness at once while the sleep does not"),
                    format_args!("remove lifecycle.preStop and keep the drain delay ({} sets it)", config::DRAIN_DELAY),
                ));
            }
            return;
        }
        let kind = if present(pre_stop, "exec").is_some() {
            "exec"
        } else if present(pre_stop, "httpGet").is_some() {
            "httpGet"
        } else {
            return;
        };
        findings.push(warning(
            format_args!("lifecycle.preStop runs an {kind} hook, whose duration cannot be checked"),
            format_args!(
                "terminationGracePeriodSeconds to cover the preStop hook + the shutdown timeout ({} ms)",
                self.settings.shutdown_timeout.as_millis()
            ),
            format_args!("use a preStop sleep, or none (the drain delay, {}, does its job)", config::DRAIN_DELAY),
        ));
    }

    /// `lifecycle.stopSignal` against the signals that stop this binary:
    /// SIGTERM, SIGINT and its own stop signal. Any other (SIGKILL, a
    /// signal it does not watch) kills it without the graceful stop, or
    /// not at all until the grace period ends.
    pub(super) fn stop_signal(&self, pod_spec: &Value, findings: &mut Vec<Finding>) {
        let Some(given) = self
            .container
            .pointer("/lifecycle/stopSignal")
            .and_then(Value::as_str)
        else {
            return;
        };
        // The API server takes a stop signal only in a pod that names its
        // OS, and on Windows only SIGTERM and SIGKILL.
        let os = pod_spec.pointer("/os/name").and_then(Value::as_str);
        let refused = match os {
            None => true,
            Some("linux") => false,
            Some(_) => !matches!(given, "SIGTERM" | "SIGKILL"),
        };
        if refused {
            let named = os.map_or_else(
                || "no spec.os.name".to_owned(),
                |os| format!("spec.os.name {os}"),
            );
            findings.push(error(
                format_args!(
                    "lifecycle.stopSignal {given} with {named}, which the API server refuses"
                ),
                format_args!(
                    "spec.os.name linux, which the API server asks of a pod with a stop signal"
                ),
                format_args!("set the pod's spec.os.name to linux"),
            ));
        }
        let own = self.settings.stop_signal;
        let stops = [StopSignal::Sigterm, StopSignal::Sigint, own];
        if stops.iter().any(|stop| stop.as_str() == given) {
            return;
        }
        let needs = if own == StopSignal::Sigterm {
            "SIGTERM or SIGINT".to_owned()
        } else {
            format!("SIGTERM, SIGINT or its stop signal {own}")
        };
        let accepted = cfg!(unix)
            && StopSignal::ALL
                .iter()
                .any(|signal| signal.as_str() == given);
        let fix = if own != StopSignal::Sigterm {
            format!("set lifecycle.stopSignal to {own}, or remove it")
        } else if accepted {
            format!(
                "remove lifecycle.stopSignal, or set {} to {given} in the container's env",
                config::STOP_SIGNAL
            )
        } else {
            "remove lifecycle.stopSignal".to_owned()
        };
        findings.push(error(
            format_args!("lifecycle.stopSignal {given} does not stop this binary gracefully"),
            format_args!("{needs}"),
            format_args!("{fix}"),
        ));
    }

    /// The `prometheus.io/*` annotations against the metrics served.
    pub(super) fn annotations(&self, metadata: Option<&Value>, findings: &mut Vec<Finding>) {
        let annotations = metadata
            .and_then(|metadata| metadata.get("annotations"))
            .and_then(Value::as_object);
        let Some(annotations) = annotations else {
            return;
        };
        let prometheus: Vec<&str> = annotations
            .keys()
            .map(String::as_str)
            .filter(|key| key.starts_with("prometheus.io/"))
            .collect();
        if prometheus.is_empty() {
            return;
        }
        if !self.settings.metrics {
            findings.push(warning(
                format_args!(
                    "prometheus.io annotations, but metrics are off ({})",
                    prometheus.join(", ")
                ),
                format_args!("no scrape: it serves no /metrics with metrics off"),
                format_args!(
                    "remove the prometheus.io annotations, or turn metrics on ({} on)",
                    config::METRICS
                ),
            ));
            return;
        }
        let text = |key: &str| annotations.get(key).and_then(Value::as_str);
        let port = self.probe_port().to_string();
        // Port 0 is no port to scrape: the probes' error says so already.
        let scraped = text("prometheus.io/port").filter(|_| self.probe_port() != 0);
        if let Some(given) = scraped.filter(|given| *given != port) {
            findings.push(warning(
                format_args!(
                    "annotation prometheus.io/port \"{given}\" is not the probe server's port"
                ),
                format_args!("prometheus.io/port \"{port}\", where /metrics is served"),
                format_args!("set prometheus.io/port to \"{port}\""),
            ));
        }
        if let Some(given) = text("prometheus.io/path").filter(|given| *given != METRICS_PATH) {
            findings.push(warning(
                format_args!(
                    "annotation prometheus.io/path \"{given}\" is not where the metrics are served"
                ),
                format_args!("prometheus.io/path \"{METRICS_PATH}\""),
                format_args!("set prometheus.io/path to \"{METRICS_PATH}\""),
            ));
        }
    }
}

/// A Job (or a CronJob's job template) must fail at once on exit 2, which
/// a retry cannot heal.
pub(super) fn job_findings(
    job: &Value,
    pod_spec: &Value,
    container: &str,
    findings: &mut Vec<Finding>,
) {
    let code = exit::Code::BadConfig.as_i32();
    let rule = format!(
        "{{action: FailJob, onExitCodes: {{containerName: {container}, operator: In, values: [{code}]}}}}"
    );
    let policy = present(job, "podFailurePolicy");
    let rules = policy.map_or(&[][..], |policy| items(policy, "rules"));
    let restart = pod_spec.get("restartPolicy").and_then(Value::as_str);
    if policy.is_some() && restart == Some("OnFailure") {
        findings.push(error(
            format_args!("restartPolicy OnFailure with a podFailurePolicy, which the API refuses"),
            format_args!("restartPolicy Never, so that exit {code} fails the pod and the policy fails the Job"),
            format_args!("set the pod template's restartPolicy to Never"),
        ));
    }
    let first = rules.iter().find(|rule| {
        let Some(codes) = rule.get("onExitCodes") else {
            return false;
        };
        let ours = codes
            .get("containerName")
            .and_then(Value::as_str)
            .is_none_or(|name| name == container);
        let listed = codes
            .get("values")
            .and_then(Value::as_array)
            .is_some_and(|values| values.iter().any(|v| v.as_i64() == Some(i64::from(code))));
        let matches = match codes.get("operator").and_then(Value::as_str) {
            Some("In") => listed,
            Some("NotIn") => !listed,
            _ => false,
        };
        ours && matches
    });
    let why = match (policy, first) {
        (None, _) => format!("no podFailurePolicy: exit {code} is retried up to backoffLimit"),
        (Some(_), None) => format!("no podFailurePolicy rule matches exit {code} of container {container}: it is retried up to backoffLimit"),
        (Some(_), Some(rule)) => {
            let action = rule.get("action").and_then(Value::as_str).unwrap_or("");
            if matches!(action, "FailJob" | "FailIndex") {
                return;
            }
            format!("podFailurePolicy's first rule matching exit {code} has action {action}")
        }
    };
    // A podFailurePolicy needs restartPolicy Never: say so unless the
    // error above does.
    let never = if restart == Some("Never") || (policy.is_some() && restart == Some("OnFailure")) {
        ""
    } else {
        "set the pod template's restartPolicy to Never, and "
    };
    findings.push(error(
        format_args!("the Job does not fail on exit {code} (invalid configuration, which a retry cannot heal): {why}"),
        format_args!("a podFailurePolicy whose first rule for exit {code} is FailJob"),
        format_args!("{never}put the rule {rule} first in podFailurePolicy.rules (--lifecycle-manifest job prints it)"),
    ));
}
