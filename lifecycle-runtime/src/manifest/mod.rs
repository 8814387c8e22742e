//! `--lifecycle-manifest`: the Kubernetes side of this binary's own
//! configuration, so that the probes, their timeouts and the grace period
//! are derived, not guessed. `--lifecycle-manifest job`: the same container
//! in a JobSpec, whose `podFailurePolicy` is derived from the exit-code
//! table.

use serde_json::Value;

use crate::binary::Binary;
use crate::config::{ProbeProtocol, Settings, StopSignal};
use crate::exit::{self, Exit};
use crate::failures::{Failure, ManifestError};
use crate::flags::Manifest;
use crate::probe::endpoint::METRICS_PATH;
use crate::probe::Endpoint;
use crate::stop_budget::budget_warning;

/// A Job's `backoffLimit`: Kubernetes' own default, written out so that
/// the rules of the `podFailurePolicy` read with the count they feed.
const BACKOFF_LIMIT: u32 = 6;

mod emit;
#[cfg(test)]
mod tests;
mod timing;

use emit::to_yaml;
pub(crate) use timing::*;

/// The binary's file name, which names its container in the manifest.
pub(crate) fn binary_name() -> String {
    std::env::args_os()
        .next()
        .and_then(|path| name_of(std::path::Path::new(&path), std::env::consts::EXE_SUFFIX))
        .unwrap_or_else(|| "service".to_owned())
}

/// The file name of `path` less the executable suffix of the system
/// (`.exe` on Windows): the container of `svc.exe` is `svc`. A dot
/// elsewhere stays (`svc.v2`).
fn name_of(path: &std::path::Path, exe_suffix: &str) -> Option<String> {
    let name = path.file_name()?.to_string_lossy().into_owned();
    let stem = name.len().checked_sub(exe_suffix.len()).filter(|stem| {
        *stem > 0 && !exe_suffix.is_empty() && name[*stem..].eq_ignore_ascii_case(exe_suffix)
    });
    Some(match stem {
        Some(stem) => name[..stem].to_owned(),
        None => name,
    })
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
fn handler(protocol: ProbeProtocol, endpoint: Endpoint, port: u16) -> Value {
    match protocol {
        ProbeProtocol::Http => object(vec![
            ("path", endpoint.path().into()),
            ("port", port.into()),
        ]),
        ProbeProtocol::Grpc => object(vec![
            ("port", port.into()),
            ("service", endpoint.as_str().into()),
        ]),
    }
}

/// A JSON object of `fields` (written out in key order, as every object
/// here). Not `json!`, whose expansion (a `to_value` and its `unwrap` per
/// field) each of the generator's objects would compile anew.
fn object(fields: Vec<(&str, Value)>) -> Value {
    let mut object = serde_json::Map::new();
    for (key, value) in fields {
        object.insert(key.to_owned(), value);
    }
    Value::Object(object)
}

/// The pod's metadata: its name label and, with metrics on, the
/// annotations by which Prometheus' conventional Kubernetes scrape
/// configuration finds the endpoint. Annotation values are strings (the
/// API server refuses a number or a bool there), the port too. With
/// metrics off, no annotation at all: a stale `prometheus.io/scrape`
/// would have Prometheus scrape a 404.
fn pod_metadata(container_name: &str, settings: &Settings, port: u16) -> Value {
    let labels = object(vec![("app.kubernetes.io/name", container_name.into())]);
    let mut metadata = vec![("labels", labels)];
    if settings.metrics {
        let annotations = object(vec![
            ("prometheus.io/scrape", "true".into()),
            ("prometheus.io/port", port.to_string().into()),
            ("prometheus.io/path", METRICS_PATH.into()),
        ]);
        metadata.push(("annotations", annotations));
    }
    object(metadata)
}

/// The Job's `podFailurePolicy`, from the exit-code table. The Job
/// controller takes the first rule that matches a failed pod; a pod that
/// matches none counts against `backoffLimit`, as without a policy.
///
/// 1. Exit 2, invalid configuration (a bad `LIFECYCLE_*` value or flag,
///    duplicate check names), fails the Job at once: the next pod gets the
///    same image and the same configuration, so a retry can only fail the
///    same way. First, since a configuration that is wrong stays wrong
///    whatever else happened to the pod. Restricted to this container, so
///    that a sidecar's 2 means what the sidecar means by it.
/// 2. A pod the cluster disrupted (preemption, eviction, a drained node:
///    condition `DisruptionTarget`) is replaced without counting: the
///    service did not fail. `status` is required by the API's type.
///
/// Every other failure counts: a panic (101), exit 1 (a failed hook or
/// check, `main`'s `Err`, the deadline), a second signal (130, 143), and
/// the kubelet's SIGKILL (137). No explicit `Count` rule: it would say
/// what no rule already says.
fn pod_failure_policy(container_name: &str) -> Value {
    let fail_on_bad_config = object(vec![
        ("action", "FailJob".into()),
        (
            "onExitCodes",
            object(vec![
                ("containerName", container_name.into()),
                ("operator", "In".into()),
                (
                    "values",
                    Value::Array(vec![exit::Code::BadConfig.as_i32().into()]),
                ),
            ]),
        ),
    ]);
    let ignore_disruption = object(vec![
        ("action", "Ignore".into()),
        (
            "onPodConditions",
            Value::Array(vec![object(vec![
                ("type", "DisruptionTarget".into()),
                ("status", "True".into()),
            ])]),
        ),
    ]);
    object(vec![(
        "rules",
        Value::Array(vec![fail_on_bad_config, ignore_disruption]),
    )])
}

/// `--lifecycle-manifest [job]`: prints the pod template, or the JobSpec,
/// for this binary.
pub(crate) fn print(settings: &Settings, manifest: Manifest) -> Exit {
    match render(&binary_name(), settings, manifest) {
        // A manifest that did not reach stdout (closed, full) is a failure
        // the caller must see, not a panic and not a silent success.
        Ok(yaml) => match std::io::Write::write_all(&mut std::io::stdout().lock(), yaml.as_bytes())
            .and_then(|()| std::io::Write::flush(&mut std::io::stdout().lock()))
        {
            Ok(()) => Exit::success(),
            Err(error) => Failure::ManifestStdout(error).into(),
        },
        Err(error) => Failure::Manifest(error).into(),
    }
}

/// A probe of the pod template: what the manifest writes and the audit
/// reads back.
pub(crate) struct PodProbe {
    /// The container's key for it.
    pub(crate) key: &'static str,
    /// The endpoint it probes.
    pub(crate) endpoint: Endpoint,
    /// Its period, before the background checks' intervals lengthen it.
    base_period: u64,
    /// Its failure threshold; the startup probe's follows from the
    /// start-up budget and the period.
    failure_threshold: Option<u64>,
}

/// The pod template's probes, in the order it lists them.
pub(crate) const POD_PROBES: [PodProbe; 3] = [
    PodProbe {
        key: "startupProbe",
        endpoint: Endpoint::Startupz,
        base_period: STARTUP_PERIOD_SECONDS,
        failure_threshold: None,
    },
    PodProbe {
        key: "livenessProbe",
        endpoint: Endpoint::Livez,
        base_period: LIVENESS_PERIOD_SECONDS,
        failure_threshold: Some(LIVENESS_FAILURE_THRESHOLD),
    },
    PodProbe {
        key: "readinessProbe",
        endpoint: Endpoint::Readyz,
        base_period: READINESS_PERIOD_SECONDS,
        failure_threshold: Some(READINESS_FAILURE_THRESHOLD),
    },
];

/// The probes of the pod template, by their keys, for `binary`'s checks:
/// each probe's timeout covers its on-demand checks, its period the
/// background checks' intervals, and the startup probe's budget the
/// preflight checks and `on_startup` hooks.
pub(crate) fn probes(binary: &Binary, settings: &Settings) -> [(&'static str, Value); 3] {
    let port = settings.probe_addr.port();
    let probe = |endpoint: Endpoint, base_period: u64, failures: Option<u64>| {
        let checks = binary.endpoint_checks(endpoint);
        let period = probe_period_seconds(base_period, &checks);
        // The startup probe must let preflight checks and every
        // on_startup hook run to their timeouts before the kubelet gives
        // up, at whatever period.
        let failures =
            failures.unwrap_or_else(|| startup_failure_threshold(binary.startup_needed(), period));
        object(vec![
            ("timeoutSeconds", probe_timeout_seconds(&checks).into()),
            ("periodSeconds", period.into()),
            ("failureThreshold", failures.into()),
            ("successThreshold", DEFAULT_SUCCESS_THRESHOLD.into()),
            (
                handler_key(settings.probe_protocol),
                handler(settings.probe_protocol, endpoint, port),
            ),
        ])
    };
    POD_PROBES.map(|pod_probe| {
        let value = probe(
            pod_probe.endpoint,
            pod_probe.base_period,
            pod_probe.failure_threshold,
        );
        (pod_probe.key, value)
    })
}

/// A PodTemplateSpec (pod metadata and a spec with one container), or a
/// JobSpec around one, in YAML, with a header comment, for this binary's
/// registered checks and hooks.
pub(crate) fn render(
    container_name: &str,
    settings: &Settings,
    manifest: Manifest,
) -> Result<String, ManifestError> {
    render_for(&Binary::registered(), container_name, settings, manifest)
}

/// [`render`] for `binary`'s checks and hooks.
pub(crate) fn render_for(
    binary: &Binary,
    container_name: &str,
    settings: &Settings,
    manifest: Manifest,
) -> Result<String, ManifestError> {
    let port = settings.probe_addr.port();
    if settings.probe_addr.ip().is_loopback() {
        return Err(ManifestError::LoopbackProbeAddr(settings.probe_addr));
    }
    if port == 0 {
        return Err(ManifestError::ProbePortZero(settings.probe_addr));
    }
    let probes_port = object(vec![
        ("name", "probes".into()),
        ("containerPort", port.into()),
        ("protocol", "TCP".into()),
    ]);
    let mut container = vec![
        ("name", container_name.into()),
        // Kept in a Job too: the probe server still serves `/metrics` and
        // the exec probe there.
        ("ports", Value::Array(vec![probes_port])),
        // `kubectl describe pod` shows the termination message, or the
        // log's tail when a crash left none.
        ("terminationMessagePolicy", "FallbackToLogsOnError".into()),
    ];
    let mut spec = vec![(
        "terminationGracePeriodSeconds",
        grace_seconds(settings).into(),
    )];
    match manifest {
        Manifest::Pod => container.extend(probes(binary, settings)),
        // A Job's pod has no probes. Liveness restarts a container, which
        // `restartPolicy: Never` does not do, and a failed one would turn a
        // run into exit 137; readiness only matters behind a Service. The
        // startup probe goes too: all it does in a pod template is hold the
        // other two off, and as a deadline of its own it only duplicates
        // the framework's (preflight checks and on_startup hooks are
        // bounded by their timeouts and exit 1 with the reason), ending in
        // a SIGKILL with no termination message instead. A bound on the
        // whole run is the Job's `activeDeadlineSeconds`, the user's call.
        //
        // With `restartPolicy: Never` a failed container fails its pod,
        // which the Job controller replaces or not by the
        // `podFailurePolicy` (which Kubernetes refuses with any other
        // restart policy).
        Manifest::Job => spec.push(("restartPolicy", "Never".into())),
    }
    // Another stop signal than SIGTERM is asked of the kubelet, which
    // takes `lifecycle.stopSignal` only with the ContainerStopSignals
    // feature gate (alpha in 1.33) and only in a pod that names its OS.
    let stop_signal = settings.stop_signal;
    if stop_signal != StopSignal::Sigterm {
        container.push((
            "lifecycle",
            object(vec![("stopSignal", stop_signal.as_str().into())]),
        ));
        spec.push(("os", object(vec![("name", "linux".into())])));
    }
    spec.push(("containers", Value::Array(vec![object(container)])));
    // The same pod metadata in a Job: the probe server serves `/metrics`
    // there as well, and a long run is worth scraping while it lasts
    // (Prometheus' conventional configuration drops finished pods). With
    // metrics off, no annotation, as in the pod template.
    let template = object(vec![
        ("metadata", pod_metadata(container_name, settings, port)),
        ("spec", object(spec)),
    ]);
    let document = match manifest {
        Manifest::Pod => template,
        Manifest::Job => object(vec![
            ("backoffLimit", BACKOFF_LIMIT.into()),
            ("podFailurePolicy", pod_failure_policy(container_name)),
            ("template", template),
        ]),
    };
    Ok(header(binary, container_name, settings, manifest) + &to_yaml(&document))
}

/// The comment lines above the YAML: the budget warning, if any, the
/// stop signal's feature gate, and how the figures were derived.
fn header(
    binary: &Binary,
    container_name: &str,
    settings: &Settings,
    manifest: Manifest,
) -> String {
    let stop_signal = settings.stop_signal;
    // The budget as it will be in the cluster, with its drain delay.
    let warning = match budget_warning(
        settings.cluster_drain_delay,
        settings.connection_drain,
        settings.shutdown_timeout,
    ) {
        Some(warning) => {
            tracing::warn!("{warning}");
            format!("# WARNING: {warning}\n")
        }
        None => String::new(),
    };
    let grace_line = format!(
        "# shutdown timeout {} ms (from the signal, the drain delay of {} ms on Kubernetes included) + {} s to exit\n\
         # = terminationGracePeriodSeconds",
        settings.shutdown_timeout.as_millis(),
        settings.cluster_drain_delay.as_millis(),
        GRACE_SLACK.as_secs(),
    );
    let stop_line = if stop_signal == StopSignal::Sigterm {
        String::new()
    } else {
        format!(
            "# lifecycle.stopSignal {stop_signal} needs Kubernetes' ContainerStopSignals feature gate (alpha in 1.33),\n\
             # and spec.os.name linux with it.\n"
        )
    };
    match manifest {
        Manifest::Pod => format!(
            "{warning}{stop_line}# Generated by `{container_name} --lifecycle-manifest` from its configuration and checks:\n\
             {grace_line};\n\
             # the startup probe allows {} ms of preflight checks and on_startup hooks.\n",
            binary.startup_needed().as_millis(),
        ),
        Manifest::Job => format!(
            "{warning}{stop_line}# Generated by `{container_name} --lifecycle-manifest job` from its configuration and exit codes:\n\
             # a JobSpec, for a Job's spec or a CronJob's jobTemplate.spec;\n\
             {grace_line};\n\
             # exit {} (invalid configuration) fails the Job at once, a pod disrupted by the cluster is replaced\n\
             # without counting, any other failure counts against backoffLimit.\n",
            exit::Code::BadConfig,
        ),
    }
}
