//! `--lifecycle-manifest`: the Kubernetes side of this binary's own
//! configuration, so that the probes, their timeouts and the grace period
//! are derived, not guessed. `--lifecycle-manifest job`: the same container
//! in a JobSpec, whose `podFailurePolicy` is derived from the exit-code
//! table.

use std::time::Duration;

use serde_json::json;

use crate::config::{ProbeProtocol, Settings, StopSignal};
use crate::exit::{self, Exit};
use crate::flags::Manifest;
use crate::probe::Endpoint;
use crate::registry::{self, CheckKind, CheckRegistration, HookKind};
use crate::shutdown::budget_warning;

/// What the generated grace period keeps beyond the deadline: the process
/// has exited by then, but SIGKILL should never be what ends it.
const GRACE_SLACK: Duration = Duration::from_secs(5);
/// What lifecycle promises over a check's timeout for an answer.
const ANSWER_SLACK: Duration = Duration::from_millis(50);
/// Where the probe server serves the metrics.
const METRICS_PATH: &str = "/metrics";
/// A Job's `backoffLimit`: Kubernetes' own default, written out so that
/// the rules of the `podFailurePolicy` read with the count they feed.
const BACKOFF_LIMIT: u32 = 6;

pub(crate) fn ceil_seconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// How long a probe that runs `checks` may take to be answered: the
/// largest timeout of the on-demand ones (background checks answer from
/// memory), plus the promised 50 ms. What the generator's `timeoutSeconds`
/// is rounded up from, and what the audit holds a manifest's to.
pub(crate) fn probe_time_needed<'a>(
    checks: impl IntoIterator<Item = &'a CheckRegistration>,
) -> Duration {
    checks
        .into_iter()
        .filter(|check| check.interval_ms.is_none())
        .map(|check| check.timeout())
        .max()
        .unwrap_or(Duration::ZERO)
        .saturating_add(ANSWER_SLACK)
}

/// `timeoutSeconds` for an endpoint: [`probe_time_needed`] by its checks,
/// rounded up to a whole second.
pub(crate) fn probe_timeout_seconds(endpoint: Endpoint) -> u64 {
    let checks = endpoint
        .check_kinds()
        .iter()
        .flat_map(|kind| registry::checks(*kind));
    ceil_seconds(probe_time_needed(checks)).max(1)
}

/// How long start-up may take before the kubelet may give up on it: the
/// preflight checks (which run together: the largest timeout) and then
/// every `on_startup` hook to its timeout (`hooks`, from
/// [`registry::hooks_budget`]).
pub(crate) fn startup_time_needed<'a>(
    preflight: impl IntoIterator<Item = &'a CheckRegistration>,
    hooks: Duration,
) -> Duration {
    preflight
        .into_iter()
        .map(|check| check.timeout())
        .max()
        .unwrap_or(Duration::ZERO)
        .saturating_add(hooks)
}

/// The least `terminationGracePeriodSeconds` the pod needs, before
/// rounding: the kubelet counts the grace period from the start of the
/// preStop hook (`pre_stop` long), and sends the signal after it; the
/// shutdown timeout counts from the signal and holds the drain delay. The
/// audit's bound and, with the slack, the generator's value.
pub(crate) fn grace_needed(pre_stop: Duration, shutdown_timeout: Duration) -> Duration {
    pre_stop.saturating_add(shutdown_timeout)
}

/// `terminationGracePeriodSeconds` as generated: [`grace_needed`] without a
/// preStop hook, plus the slack, rounded up. Each figure is at most a day
/// (configuration refuses more), and the sum saturates regardless.
pub(crate) fn grace_seconds(settings: &Settings) -> u64 {
    ceil_seconds(
        grace_needed(Duration::ZERO, settings.shutdown_timeout).saturating_add(GRACE_SLACK),
    )
}

/// The binary's file name, which names its container in the manifest.
pub(crate) fn binary_name() -> String {
    std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "service".to_owned())
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
fn pod_failure_policy(container_name: &str) -> serde_json::Value {
    json!({
        "rules": [
            {
                "action": "FailJob",
                "onExitCodes": {
                    "containerName": container_name,
                    "operator": "In",
                    "values": [exit::BAD_CONFIG],
                },
            },
            {
                "action": "Ignore",
                "onPodConditions": [{ "type": "DisruptionTarget", "status": "True" }],
            },
        ],
    })
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
            Err(error) => Exit::failure(
                exit::FAILURE,
                format!("cannot write the manifest to stdout: {error}"),
            ),
        },
        Err(error) => Exit::failure(exit::BAD_CONFIG, error),
    }
}

/// A PodTemplateSpec (pod metadata and a spec with one container), or a
/// JobSpec around one, in YAML, with a header comment.
pub(crate) fn render(
    container_name: &str,
    settings: &Settings,
    manifest: Manifest,
) -> Result<String, String> {
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
    let (hooks, _) = registry::hooks_budget(HookKind::OnStartup);
    let startup_period = 2;
    let startup_budget = startup_time_needed(registry::checks(CheckKind::Preflight), hooks);
    let startup_failures = (ceil_seconds(startup_budget) / startup_period + 2).max(3);
    let grace = grace_seconds(settings);

    let mut container = json!({
        "name": container_name,
        // Kept in a Job too: the probe server still serves `/metrics` and
        // the exec probe there.
        "ports": [{ "name": "probes", "containerPort": port, "protocol": "TCP" }],
        // `kubectl describe pod` shows the termination message, or the
        // log's tail when a crash left none.
        "terminationMessagePolicy": "FallbackToLogsOnError",
    });
    let mut spec = json!({
        "terminationGracePeriodSeconds": grace,
    });
    match manifest {
        Manifest::Pod => {
            container["startupProbe"] = probe(Endpoint::Startupz, startup_period, startup_failures);
            container["livenessProbe"] = probe(Endpoint::Livez, 10, 3);
            container["readinessProbe"] = probe(Endpoint::Readyz, 5, 2);
        }
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
        Manifest::Job => spec["restartPolicy"] = json!("Never"),
    }
    // Another stop signal than SIGTERM is asked of the kubelet, which
    // takes `lifecycle.stopSignal` only with the ContainerStopSignals
    // feature gate (alpha in 1.33) and only in a pod that names its OS.
    let stop_signal = settings.stop_signal;
    if stop_signal != StopSignal::Sigterm {
        container["lifecycle"] = json!({ "stopSignal": stop_signal.as_str() });
        spec["os"] = json!({ "name": "linux" });
    }
    spec["containers"] = json!([container]);
    // The same pod metadata in a Job: the probe server serves `/metrics`
    // there as well, and a long run is worth scraping while it lasts
    // (Prometheus' conventional configuration drops finished pods). With
    // metrics off, no annotation, as in the pod template.
    let template = json!({
        "metadata": pod_metadata(container_name, settings, port),
        "spec": spec,
    });
    let document = match manifest {
        Manifest::Pod => template,
        Manifest::Job => json!({
            "backoffLimit": BACKOFF_LIMIT,
            "podFailurePolicy": pod_failure_policy(container_name),
            "template": template,
        }),
    };
    let yaml = to_yaml(&document);
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
    Ok(match manifest {
        Manifest::Pod => format!(
            "{warning}{stop_line}# Generated by `{container_name} --lifecycle-manifest` from its configuration and checks:\n\
             {grace_line};\n\
             # the startup probe allows {} ms of preflight checks and on_startup hooks.\n{yaml}",
            startup_budget.as_millis(),
        ),
        Manifest::Job => format!(
            "{warning}{stop_line}# Generated by `{container_name} --lifecycle-manifest job` from its configuration and exit codes:\n\
             # a JobSpec, for a Job's spec or a CronJob's jobTemplate.spec;\n\
             {grace_line};\n\
             # exit {} (invalid configuration) fails the Job at once, a pod disrupted by the cluster is replaced\n\
             # without counting, any other failure counts against backoffLimit.\n{yaml}",
            exit::BAD_CONFIG,
        ),
    })
}

/// `document` in YAML's block style: keys in the order of the JSON object,
/// a sequence's dashes at its key's indentation, a string plain only where
/// every YAML reader takes it for that string. Written here rather than
/// by a YAML library: the layout and the quoting are the README's, and
/// the emitters at hand leave some strings plain that Kubernetes' YAML 1.1
/// reads as numbers or booleans (`0b101`, `on`).
fn to_yaml(document: &serde_json::Value) -> String {
    let mut yaml = String::new();
    write_block(&mut yaml, document, 0, false);
    yaml
}

/// `value` where a node starts: a non-empty map or sequence as a block of
/// lines `indent` columns in, its first line going on the current one
/// when `inline` (after a sequence's dash); anything else on the current
/// line.
fn write_block(yaml: &mut String, value: &serde_json::Value, indent: usize, inline: bool) {
    use serde_json::Value;
    match value {
        Value::Object(fields) if !fields.is_empty() => {
            for (i, (key, value)) in fields.iter().enumerate() {
                if i > 0 || !inline {
                    push_indent(yaml, indent);
                }
                write_string(yaml, key);
                yaml.push(':');
                match value {
                    Value::Object(fields) if !fields.is_empty() => {
                        yaml.push('\n');
                        write_block(yaml, value, indent + 2, false);
                    }
                    // Dashes at the key's indentation, as kubectl writes
                    // them.
                    Value::Array(items) if !items.is_empty() => {
                        yaml.push('\n');
                        write_block(yaml, value, indent, false);
                    }
                    _ => {
                        yaml.push(' ');
                        write_block(yaml, value, indent, true);
                    }
                }
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, item) in items.iter().enumerate() {
                if i > 0 || !inline {
                    push_indent(yaml, indent);
                }
                yaml.push_str("- ");
                write_block(yaml, item, indent + 2, true);
            }
        }
        scalar => {
            match scalar {
                Value::Null => yaml.push_str("null"),
                Value::Bool(value) => yaml.push_str(if *value { "true" } else { "false" }),
                // JSON's digits, exponent and all, are YAML's too.
                Value::Number(number) => yaml.push_str(&number.to_string()),
                Value::String(text) => write_string(yaml, text),
                Value::Array(_) => yaml.push_str("[]"),
                Value::Object(_) => yaml.push_str("{}"),
            }
            yaml.push('\n');
        }
    }
}

fn push_indent(yaml: &mut String, indent: usize) {
    yaml.extend(std::iter::repeat_n(' ', indent));
}

/// A string as a key or a value. Plain when it is a letter or `/` and then
/// letters, digits, `.`, `_`, `/` and `-` only (`/livez`,
/// `prometheus.io/port`), unless it is one of YAML 1.1's booleans or null
/// in any case (`yes`, `On`, `n`, `NULL`): nothing else a reader could take
/// for a number, a boolean, a comment, a key or a tag. Otherwise
/// single-quoted (`'8081'`, `'True'`), and double-quoted with escapes when
/// it holds a character a single-quoted string cannot carry as it is (a
/// line break, a tab, a control character).
fn write_string(yaml: &mut String, text: &str) {
    const YAML_1_1_WORDS: [&str; 9] = ["y", "n", "yes", "no", "true", "false", "on", "off", "null"];
    let plain = text.starts_with(|c: char| c.is_ascii_alphabetic() || c == '/')
        && text
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '/' | '-'))
        && !YAML_1_1_WORDS
            .iter()
            .any(|word| word.eq_ignore_ascii_case(text));
    if plain {
        yaml.push_str(text);
    } else if text.chars().all(single_quotable) {
        yaml.push('\'');
        yaml.push_str(&text.replace('\'', "''"));
        yaml.push('\'');
    } else {
        yaml.push('"');
        for c in text.chars() {
            match c {
                '"' => yaml.push_str("\\\""),
                '\\' => yaml.push_str("\\\\"),
                '\n' => yaml.push_str("\\n"),
                '\t' => yaml.push_str("\\t"),
                '\r' => yaml.push_str("\\r"),
                c if single_quotable(c) => yaml.push(c),
                c if u32::from(c) <= 0xff => yaml.push_str(&format!("\\x{:02x}", u32::from(c))),
                c if u32::from(c) <= 0xffff => yaml.push_str(&format!("\\u{:04x}", u32::from(c))),
                c => yaml.push_str(&format!("\\U{:08x}", u32::from(c))),
            }
        }
        yaml.push('"');
    }
}

/// YAML's printable characters less its line breaks (YAML 1.1 counts
/// U+0085, U+2028 and U+2029 among them) and tab, and less the byte order
/// mark: what a single-quoted string carries as it is.
fn single_quotable(c: char) -> bool {
    matches!(c, ' '..='~' | '\u{a0}'..='\u{d7ff}' | '\u{e000}'..='\u{fffd}' | '\u{10000}'..)
        && !matches!(c, '\u{2028}' | '\u{2029}' | '\u{feff}')
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::audit::read::read_yaml;
    use crate::config::{Flavor, PanicPolicy, ServiceConfig};

    /// The one YAML document in `yaml`, as a tool reading the manifest
    /// gets it.
    fn from_yaml(yaml: &str) -> serde_json::Value {
        let mut documents = read_yaml(yaml).unwrap();
        assert_eq!(documents.len(), 1, "{yaml}");
        documents.remove(0)
    }

    /// Strings a YAML reader would take for something else if they went
    /// unquoted (a number, a boolean or null in YAML 1.2 or in Kubernetes'
    /// YAML 1.1, a comment, a key, a tag, an alias), or that plain YAML
    /// cannot carry, as a binary's name (the container's) could be.
    const AWKWARD: [&str; 52] = [
        "8081",
        "1e3",
        "0x1F",
        "0o17",
        "0b101",
        "017",
        "1_000",
        "+1",
        "-1",
        ".5",
        ".inf",
        "1:20",
        "2001-12-14",
        "true",
        "True",
        "yes",
        "on",
        "y",
        "No",
        "OFF",
        "null",
        "NULL",
        "~",
        "",
        " svc",
        "svc ",
        "a: b",
        "svc:",
        "#svc",
        "svc #1",
        "-svc",
        "- svc",
        "!svc",
        "&svc",
        "*svc",
        "?svc",
        "|",
        ">",
        "%svc",
        "@svc",
        "'svc'",
        "\"svc\"",
        "svc\\d",
        "line\nbreak",
        "tab\there",
        "line\n'single' \"double\" \\back",
        "nul\0",
        "\u{7f}\u{85}\u{2028}",
        "\u{feff}svc",
        "ünï-cödé",
        "[svc]",
        "{svc,2}",
    ];

    #[test]
    fn every_value_reads_back_as_written() {
        let document = json!({
            "names": &AWKWARD[..],
            "keyed": AWKWARD
                .iter()
                .map(|name| (name.to_string(), json!(name)))
                .collect::<serde_json::Map<_, _>>(),
            "plain": ["svc", "svc-2.0", "my_service", "/livez", "prometheus.io/port", "e1", "nan"],
            "numbers": [0, 1, 8081, i64::MAX, i64::MIN, 0.5, -1.5e300],
            "flags": [true, false],
            "nothing": null,
            "empty": { "list": [], "map": {} },
            "nested": [[1, [2, []]], [{ "a": [{ "b": "c", "d": [] }] }], { "e": {} }],
        });
        let yaml = to_yaml(&document);
        assert_eq!(from_yaml(&yaml), document, "{yaml}");
    }

    #[test]
    fn only_what_every_yaml_reader_takes_as_text_goes_unquoted() {
        let yaml = to_yaml(&json!({ "names": &AWKWARD[..] }));
        // YAML 1.2 reads these as strings, Kubernetes' YAML 1.1 as numbers,
        // booleans or a date: quoted all the same.
        for hazard in [
            "0b101",
            "1_000",
            "1:20",
            "2001-12-14",
            "y",
            "yes",
            "on",
            "No",
            "OFF",
        ] {
            assert!(
                yaml.contains(&format!("- '{hazard}'\n")),
                "{hazard}: {yaml}"
            );
        }
        for line in yaml.lines().skip(1) {
            let value = line.strip_prefix("- ").unwrap();
            assert!(value.starts_with(['\'', '"']), "unquoted: {line}");
        }
        let yaml = to_yaml(&json!({ "app.kubernetes.io/name": "svc", "path": "/livez" }));
        assert_eq!(yaml, "app.kubernetes.io/name: svc\npath: /livez\n");
    }

    #[test]
    fn the_manifest_is_laid_out_as_the_readme_shows_it() {
        let yaml = render("svc", &settings(&[]).unwrap(), Manifest::Job).unwrap();
        let body = yaml
            .lines()
            .skip_while(|line| line.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        let expected = "\
backoffLimit: 6
podFailurePolicy:
  rules:
  - action: FailJob
    onExitCodes:
      containerName: svc
      operator: In
      values:
      - 2
  - action: Ignore
    onPodConditions:
    - status: 'True'
      type: DisruptionTarget
template:
  metadata:
{annotations}    labels:
      app.kubernetes.io/name: svc
  spec:
    containers:
    - name: svc
      ports:
      - containerPort: 9100
        name: probes
        protocol: TCP
      terminationMessagePolicy: FallbackToLogsOnError
    restartPolicy: Never
    terminationGracePeriodSeconds: 30";
        // Without the `metrics` feature there is nothing to scrape.
        let annotations = if cfg!(feature = "metrics") {
            "    annotations:
      prometheus.io/path: /metrics
      prometheus.io/port: '9100'
      prometheus.io/scrape: 'true'
"
        } else {
            ""
        };
        assert_eq!(body, expected.replace("{annotations}", annotations));
    }

    /// The probe of the container in the manifest rendered with `env`,
    /// under `key`, as JSON.
    fn probes(env: &[(&str, &str)]) -> Vec<(String, serde_json::Value)> {
        let yaml = render("svc", &settings(env).unwrap(), Manifest::Pod).unwrap();
        let template = from_yaml(&yaml);
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
            connection_drain_ms: None,
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
            stop_signal: crate::config::StopSignal::Sigterm,
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
        let yaml = render("svc", &settings(env).unwrap(), Manifest::Pod).unwrap();
        let template = from_yaml(&yaml);
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

    /// The JobSpec rendered with `env`, as JSON, and its header.
    fn job(env: &[(&str, &str)]) -> (serde_json::Value, String) {
        let yaml = render("svc", &settings(env).unwrap(), Manifest::Job).unwrap();
        let header = yaml
            .lines()
            .take_while(|line| line.starts_with('#'))
            .collect::<Vec<_>>()
            .join("\n");
        (from_yaml(&yaml), header)
    }

    fn pod(env: &[(&str, &str)]) -> serde_json::Value {
        from_yaml(&render("svc", &settings(env).unwrap(), Manifest::Pod).unwrap())
    }

    #[test]
    fn a_job_runs_the_pod_s_container_without_probes_and_never_restarts_it() {
        for env in [&[][..], &[("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "40000")][..]] {
            let (job, _) = job(env);
            let pod = pod(env);
            let spec = &job["template"]["spec"];
            assert_eq!(spec["restartPolicy"], "Never", "{job}");
            assert_eq!(
                spec["terminationGracePeriodSeconds"],
                pod["spec"]["terminationGracePeriodSeconds"]
            );
            assert_eq!(job["template"]["metadata"], pod["metadata"]);
            // The pod template's container, less its three probes.
            let mut expected = pod["spec"]["containers"].clone();
            for key in ["startupProbe", "livenessProbe", "readinessProbe"] {
                assert!(expected[0].as_object_mut().unwrap().remove(key).is_some());
            }
            assert_eq!(spec["containers"], expected);
            assert_eq!(
                spec["containers"][0]["terminationMessagePolicy"],
                "FallbackToLogsOnError"
            );
            let keys: Vec<&String> = job.as_object().unwrap().keys().collect();
            assert_eq!(keys, ["backoffLimit", "podFailurePolicy", "template"]);
            assert_eq!(job["backoffLimit"], 6);
        }
        // The pod template has no restart policy (a Deployment's is Always).
        assert!(pod(&[])["spec"].get("restartPolicy").is_none());
    }

    #[cfg(feature = "grpc")]
    #[test]
    fn a_job_has_no_probes_under_grpc_either() {
        let (job, _) = job(&[("LIFECYCLE_PROBE_PROTOCOL", "grpc")]);
        let container = job["template"]["spec"]["containers"][0]
            .as_object()
            .unwrap();
        assert!(
            container.keys().all(|key| !key.ends_with("Probe")),
            "{container:?}"
        );
    }

    #[test]
    fn the_job_s_failure_policy_follows_the_exit_code_table() {
        let (job, header) = job(&[]);
        assert_eq!(
            job["podFailurePolicy"],
            json!({
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "containerName": "svc",
                            "operator": "In",
                            "values": [2],
                        },
                    },
                    {
                        "action": "Ignore",
                        "onPodConditions": [{ "type": "DisruptionTarget", "status": "True" }],
                    },
                ],
            })
        );
        // The rule names the container by the name the template gives it.
        assert_eq!(job["template"]["spec"]["containers"][0]["name"], "svc");
        assert_eq!(
            job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"],
            json!([exit::BAD_CONFIG])
        );
        // None of the other codes of the table fails the Job.
        for code in [exit::FAILURE, exit::PANIC, 130, 143, 137] {
            let values = &job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"];
            assert!(!values.as_array().unwrap().contains(&json!(code)), "{code}");
        }
        assert!(
            header.starts_with("# Generated by `svc --lifecycle-manifest job`"),
            "{header}"
        );
        assert!(
            header.contains("exit 2 (invalid configuration) fails the Job"),
            "{header}"
        );
    }

    #[test]
    fn a_job_carries_the_pod_s_metrics_annotations_or_none() {
        let (on, _) = job(&[]);
        let off = job(&[("LIFECYCLE_METRICS", "off")]).0;
        assert_eq!(on["template"]["metadata"], rendered_metadata(&[]));
        assert!(
            off["template"]["metadata"].get("annotations").is_none(),
            "{off}"
        );
        assert_eq!(
            off["template"]["metadata"],
            rendered_metadata(&[("LIFECYCLE_METRICS", "off")])
        );
    }

    #[test]
    fn a_job_needs_an_address_the_kubelet_can_reach_as_a_pod_does() {
        for addr in ["127.0.0.1:9100", "0.0.0.0:0"] {
            let settings = settings(&[("LIFECYCLE_PROBE_ADDR", addr)]).unwrap();
            assert_eq!(
                render("svc", &settings, Manifest::Job),
                render("svc", &settings, Manifest::Pod),
                "{addr}"
            );
            assert!(render("svc", &settings, Manifest::Job).is_err());
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
        // A day (the drain delay is within it) and the 5 s of slack.
        assert_eq!(grace_seconds(&largest), 86_400 + 5);
        // What was taken before the bound, and printed as 36893488147419109 s.
        assert!(settings(&[("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "18446744073709551615")]).is_err());
        let absurd = Settings {
            shutdown_timeout: Duration::MAX,
            cluster_drain_delay: Duration::MAX,
            ..largest
        };
        assert_eq!(grace_seconds(&absurd), u64::MAX, "saturates, never panics");
    }

    #[cfg(unix)]
    #[test]
    fn another_stop_signal_is_asked_of_the_kubelet_on_linux_with_its_feature_gate() {
        for manifest in [Manifest::Pod, Manifest::Job] {
            let yaml = render(
                "svc",
                &settings(&[("LIFECYCLE_STOP_SIGNAL", "SIGQUIT")]).unwrap(),
                manifest,
            )
            .unwrap();
            let document = from_yaml(&yaml);
            let spec = match manifest {
                Manifest::Pod => &document["spec"],
                Manifest::Job => &document["template"]["spec"],
            };
            assert_eq!(spec["os"], json!({ "name": "linux" }), "{yaml}");
            assert_eq!(
                spec["containers"][0]["lifecycle"],
                json!({ "stopSignal": "SIGQUIT" }),
                "{yaml}"
            );
            assert!(
                yaml.starts_with("# lifecycle.stopSignal SIGQUIT needs Kubernetes' ContainerStopSignals feature gate (alpha in 1.33),\n"),
                "{yaml}"
            );
        }
        // SIGTERM is what the kubelet sends anyway: nothing to ask.
        let yaml = render("svc", &settings(&[]).unwrap(), Manifest::Pod).unwrap();
        let document = from_yaml(&yaml);
        assert!(document["spec"].get("os").is_none(), "{yaml}");
        assert!(document["spec"]["containers"][0].get("lifecycle").is_none());
        assert!(!yaml.contains("stopSignal"), "{yaml}");
    }
}
