//! `--lifecycle-manifest`: the Kubernetes side of this binary's own
//! configuration, so that the probes, their timeouts and the grace period
//! are derived, not guessed.

use std::time::Duration;

use serde_json::json;

use crate::config::{ProbeProtocol, Settings};
use crate::exit::{self, Exit};
use crate::probe::Endpoint;
use crate::registry::{self, CheckKind, HookKind};
use crate::shutdown::budget_warning;

/// The kubelet's grace after the deadline: the process exits by then, but
/// SIGKILL should never be what ends it.
const GRACE_SLACK: Duration = Duration::from_secs(5);
/// What the contract promises over a check's timeout for an answer.
const ANSWER_SLACK: Duration = Duration::from_millis(50);
/// Where the probe server serves the metrics (contract, section 9).
const METRICS_PATH: &str = "/metrics";

fn ceil_seconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// `timeoutSeconds` for an endpoint: the largest timeout of the checks a
/// probe of it runs (background checks answer from memory), plus the
/// promised 50 ms, rounded up to a whole second.
pub(crate) fn probe_timeout_seconds(endpoint: Endpoint) -> u64 {
    let largest = endpoint
        .check_kinds()
        .iter()
        .flat_map(|kind| registry::checks(*kind))
        .filter(|check| check.interval_ms.is_none())
        .map(|check| check.timeout())
        .max()
        .unwrap_or(Duration::ZERO);
    ceil_seconds(largest.saturating_add(ANSWER_SLACK)).max(1)
}

/// `terminationGracePeriodSeconds`: the drain delay on Kubernetes plus the
/// shutdown timeout plus the slack, rounded up. Each figure is at most a
/// day (configuration refuses more), and the sum saturates regardless.
fn grace_seconds(settings: &Settings) -> u64 {
    ceil_seconds(
        settings
            .cluster_drain_delay
            .saturating_add(settings.shutdown_timeout)
            .saturating_add(GRACE_SLACK),
    )
}

/// The key of a probe's handler in the manifest.
fn handler_key(protocol: ProbeProtocol) -> &'static str {
    match protocol {
        ProbeProtocol::Http => "httpGet",
        ProbeProtocol::Grpc => "grpc",
    }
}

/// What a probe of `endpoint` asks: `GET /livez` and the like, or gRPC
/// health's `Check` of the service named after the endpoint. Never the
/// empty service name: that is `/healthz`, readiness included, and
/// liveness must not fail while the instance drains.
fn handler(protocol: ProbeProtocol, endpoint: Endpoint, port: u16) -> serde_json::Value {
    match protocol {
        ProbeProtocol::Http => json!({ "path": endpoint.path(), "port": port }),
        ProbeProtocol::Grpc => json!({ "port": port, "service": endpoint.name() }),
    }
}

/// The pod's metadata: its name label and, with metrics on, the
/// annotations by which Prometheus' conventional Kubernetes scrape
/// configuration finds the endpoint. Annotation values are strings (the
/// API server refuses a number or a bool there), the port too. With
/// metrics off, no annotation at all: a stale `prometheus.io/scrape`
/// would have Prometheus scrape a 404.
fn pod_metadata(container_name: &str, settings: &Settings, port: u16) -> serde_json::Value {
    let mut metadata = json!({
        "labels": { "app.kubernetes.io/name": container_name },
    });
    if settings.metrics {
        metadata["annotations"] = json!({
            "prometheus.io/scrape": "true",
            "prometheus.io/port": port.to_string(),
            "prometheus.io/path": METRICS_PATH,
        });
    }
    metadata
}

/// `--lifecycle-manifest`: prints the pod template for this binary.
pub(crate) fn print(settings: &Settings) -> Exit {
    let name = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "service".to_owned());
    match render(&name, settings) {
        // A manifest that did not reach stdout (closed, full) is a failure
        // the caller must see, not a panic and not a silent success.
        Ok(yaml) => match std::io::Write::write_all(&mut std::io::stdout().lock(), yaml.as_bytes())
            .and_then(|()| std::io::Write::flush(&mut std::io::stdout().lock()))
        {
            Ok(()) => Exit::success(),
            Err(error) => Exit::failure(
                exit::FAILURE,
                format!("cannot write the manifest to stdout: {error}"),
            ),
        },
        Err(error) => Exit::failure(exit::BAD_CONFIG, error),
    }
}

/// A PodTemplateSpec (pod metadata and a spec with one container) in
/// YAML, with a header comment.
fn render(container_name: &str, settings: &Settings) -> Result<String, String> {
    let port = settings.probe_addr.port();
    if settings.probe_addr.ip().is_loopback() {
        return Err(format!(
            "the probe address {} is a loopback address, which the kubelet (probing the pod's IP) cannot reach: bind 0.0.0.0 or [::] with LIFECYCLE_PROBE_ADDR or #[service_main(probe_addr)]",
            settings.probe_addr
        ));
    }
    if port == 0 {
        return Err(format!(
            "the probe address {} has port 0, which the kubelet cannot probe: set LIFECYCLE_PROBE_ADDR or #[service_main(probe_addr)] to a fixed port",
            settings.probe_addr
        ));
    }
    let probe = |endpoint: Endpoint, period: u64, failures: u64| {
        let mut probe = json!({
            "timeoutSeconds": probe_timeout_seconds(endpoint),
            "periodSeconds": period,
            "failureThreshold": failures,
            "successThreshold": 1,
        });
        probe[handler_key(settings.probe_protocol)] =
            handler(settings.probe_protocol, endpoint, port);
        probe
    };
    // The startup probe must let preflight checks and every on_startup
    // hook run to their timeouts before the kubelet gives up.
    let preflight = registry::checks(CheckKind::Preflight)
        .iter()
        .map(|check| check.timeout())
        .max()
        .unwrap_or(Duration::ZERO);
    let (hooks, _) = registry::hooks_budget(HookKind::OnStartup);
    let startup_period = 2;
    let startup_budget = preflight.saturating_add(hooks);
    let startup_failures = (ceil_seconds(startup_budget) / startup_period + 2).max(3);
    let grace = grace_seconds(settings);

    let template = json!({
        "metadata": pod_metadata(container_name, settings, port),
        "spec": {
            "terminationGracePeriodSeconds": grace,
            "containers": [{
                "name": container_name,
                "ports": [{ "name": "probes", "containerPort": port, "protocol": "TCP" }],
                "startupProbe": probe(Endpoint::Startupz, startup_period, startup_failures),
                "livenessProbe": probe(Endpoint::Livez, 10, 3),
                "readinessProbe": probe(Endpoint::Readyz, 5, 2),
                // `kubectl describe pod` shows the termination message, or
                // the log's tail when a crash left none.
                "terminationMessagePolicy": "FallbackToLogsOnError",
            }],
        },
    });
    let yaml = serde_norway::to_string(&template).map_err(|e| e.to_string())?;
    // The budget as it will be in the cluster, with its drain delay.
    let warning = match budget_warning(settings.cluster_drain_delay, settings.shutdown_timeout) {
        Some(warning) => {
            tracing::warn!("{warning}");
            format!("# WARNING: {warning}\n")
        }
        None => String::new(),
    };
    Ok(format!(
        "{warning}# Generated by `{container_name} --lifecycle-manifest` from its configuration and checks:\n\
         # drain delay on Kubernetes {} ms + shutdown timeout {} ms (+ {} s slack) = terminationGracePeriodSeconds;\n\
         # the startup probe allows {} ms of preflight checks and on_startup hooks.\n{yaml}",
        settings.cluster_drain_delay.as_millis(),
        settings.shutdown_timeout.as_millis(),
        GRACE_SLACK.as_secs(),
        startup_budget.as_millis(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::{Flavor, PanicPolicy, ServiceConfig};

    /// The probe of the container in the manifest rendered with `env`,
    /// under `key`, as JSON.
    fn probes(env: &[(&str, &str)]) -> Vec<(String, serde_json::Value)> {
        let yaml = render("svc", &settings(env).unwrap()).unwrap();
        let template: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        let container = &template["spec"]["containers"][0];
        ["startupProbe", "livenessProbe", "readinessProbe"]
            .into_iter()
            .map(|key| (key.to_owned(), container[key].clone()))
            .collect()
    }

    #[test]
    fn http_probes_get_the_endpoints() {
        for (key, probe) in probes(&[]) {
            let path = probe["httpGet"]["path"].as_str().unwrap().to_owned();
            assert_eq!(probe["httpGet"]["port"], 9100, "{key}");
            assert!(probe.get("grpc").is_none(), "{key}: {probe}");
            let expected = match key.as_str() {
                "startupProbe" => "/startupz",
                "livenessProbe" => "/livez",
                _ => "/readyz",
            };
            assert_eq!(path, expected);
        }
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn grpc_probes_ask_the_service_named_after_the_endpoint_with_the_same_timings() {
        let http = probes(&[]);
        let grpc = probes(&[("LIFECYCLE_PROBE_PROTOCOL", "grpc")]);
        for ((key, http), (_, grpc)) in http.into_iter().zip(grpc) {
            let service = match key.as_str() {
                "startupProbe" => "startupz",
                "livenessProbe" => "livez",
                _ => "readyz",
            };
            assert_eq!(
                grpc["grpc"],
                json!({ "port": 9100, "service": service }),
                "{key}"
            );
            assert!(grpc.get("httpGet").is_none(), "{key}: {grpc}");
            for timing in [
                "timeoutSeconds",
                "periodSeconds",
                "failureThreshold",
                "successThreshold",
            ] {
                assert_eq!(grpc[timing], http[timing], "{key}.{timing}");
            }
        }
    }

    fn settings(env: &[(&str, &str)]) -> Result<Settings, crate::config::ConfigError> {
        let config = ServiceConfig {
            probe_addr: Some("0.0.0.0:9100"),
            shutdown_timeout_ms: None,
            drain_delay_ms: None,
            stall_threshold_ms: None,
            max_tasks: None,
            panic: PanicPolicy::Crash,
            flavor: Flavor::MultiThread,
            worker_threads: None,
            tracing: false,
            reasons: crate::config::ReasonsPolicy::Loopback,
            probe_protocol: crate::config::ProbeProtocol::Http,
            metrics: true,
            pid1: true,
        };
        let env: Vec<(String, String)> = env
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::resolve(&config, &move |name: &str| {
            env.iter()
                .find(|(k, _)| k == name)
                .map(|(_, v)| std::ffi::OsString::from(v))
        })
    }

    /// The pod template's metadata rendered with `env`, as JSON.
    fn rendered_metadata(env: &[(&str, &str)]) -> serde_json::Value {
        let yaml = render("svc", &settings(env).unwrap()).unwrap();
        let template: serde_json::Value = serde_norway::from_str(&yaml).unwrap();
        template["metadata"].clone()
    }

    #[test]
    #[cfg(feature = "metrics")]
    fn with_metrics_on_the_pod_is_annotated_for_prometheus_with_strings() {
        let metadata = rendered_metadata(&[]);
        assert_eq!(
            metadata["annotations"],
            json!({
                "prometheus.io/scrape": "true",
                "prometheus.io/port": "9100",
                "prometheus.io/path": "/metrics",
            })
        );
        assert_eq!(
            metadata["labels"],
            json!({ "app.kubernetes.io/name": "svc" })
        );
        // The port follows the probe address.
        let moved = rendered_metadata(&[("LIFECYCLE_PROBE_ADDR", "[::]:9300")]);
        assert_eq!(moved["annotations"]["prometheus.io/port"], "9300");
    }

    #[test]
    fn with_metrics_off_the_pod_has_no_annotations() {
        for off in ["off", "false", "0"] {
            let metadata = rendered_metadata(&[("LIFECYCLE_METRICS", off)]);
            assert!(metadata.get("annotations").is_none(), "{off}: {metadata}");
            assert_eq!(
                metadata["labels"],
                json!({ "app.kubernetes.io/name": "svc" })
            );
        }
    }

    #[test]
    fn the_grace_period_of_the_largest_values_stays_in_range() {
        let day = "86400000";
        let largest = settings(&[
            ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", day),
            ("LIFECYCLE_DRAIN_DELAY_MS", day),
        ])
        .unwrap();
        // Two days and the 5 s of slack.
        assert_eq!(grace_seconds(&largest), 2 * 86_400 + 5);
        // What was taken before the bound, and printed as 36893488147419109 s.
        assert!(settings(&[("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "18446744073709551615")]).is_err());
        let absurd = Settings {
            shutdown_timeout: Duration::MAX,
            cluster_drain_delay: Duration::MAX,
            ..largest
        };
        assert_eq!(grace_seconds(&absurd), u64::MAX, "saturates, never panics");
    }
}
