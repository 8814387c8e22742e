//! What the audit finds in one container, compared with this binary's
//! registered checks and hooks and with the configuration its own `env`
//! gives. Each finding is one line of the output (see [`super::render`]),
//! `error|warning KIND/NAME container C: WHAT; the binary needs NEEDS;
//! fix: FIX`, whose WHAT begins with words that stay the same from one run
//! to the next (the part to grep for), and then the figures of this
//! container. `P` is the probe (`startupProbe`, `livenessProbe`,
//! `readinessProbe`), `/E` the endpoint that probe is for.
//!
//! | severity | WHAT begins with | when |
//! | --- | --- | --- |
//! | error | `P path "X" does not exist on the probe server` | an `httpGet` path that is no endpoint (`/livez`, `/readyz`, `/startupz`, `/healthz`) or names no check of it (`/readyz/NAME`) |
//! | error | `P gRPC service "X" does not exist on the probe server` | a `grpc` service that is none of `""`, `livez`, `readyz`, `startupz`, `ENDPOINT/CHECK` |
//! | error | `P is a gRPC probe, but the binary has no gRPC health` | a `grpc` probe of a binary built without the `grpc` feature |
//! | error | `P runs --lifecycle-probe "X", which does not exist` | an exec probe naming another endpoint |
//! | error | `P port N is not the probe server's port` | an `httpGet` or `grpc` port other than the probe address's |
//! | error | `P port "NAME" is not declared by the container` | a named port missing from the container's `ports` |
//! | error | `P scheme HTTPS, but the probe server speaks plain HTTP` | `httpGet.scheme: HTTPS` |
//! | error | `P cannot reach the probe server, which listens on ADDR` | a loopback probe address or port 0, with an `httpGet` or `grpc` probe |
//! | error | `livenessProbe is aimed at readiness` | liveness asks `/readyz`, `/readyz/NAME`, `/healthz`, gRPC `readyz`, `readyz/NAME` or `""`, or runs `--lifecycle-probe readyz` |
//! | error | `P timeoutSeconds T is shorter than its checks may take` | below the largest on-demand check timeout + 50 ms |
//! | error | `startupProbe allows N ms for start-up` | `initialDelaySeconds + failureThreshold × periodSeconds` below the preflight checks and `on_startup` hooks |
//! | error | `no startupProbe, and livenessProbe allows N ms for start-up` | the same, with the liveness probe's budget |
//! | error | `terminationGracePeriodSeconds G is shorter than the stop takes` | below the preStop sleep + the shutdown timeout |
//! | error | `P terminationGracePeriodSeconds G is shorter than the shutdown timeout` | a probe-level grace period below the shutdown timeout |
//! | error | `lifecycle.stopSignal S does not stop this binary gracefully` | a stop signal other than SIGTERM, SIGINT and the binary's own |
//! | error | `invalid configuration: VARIABLE="VALUE": expected …` | a `LIFECYCLE_*` value the binary rejects at start-up (exit 2), as start-up says it |
//! | error | `the Job does not fail on exit 2` | no `podFailurePolicy`, or its first rule matching exit 2 is not `FailJob` (`FailIndex`) |
//! | error | `restartPolicy OnFailure with a podFailurePolicy` | the API refuses the pair |
//! | warning | `a preStop sleep and the drain delay both hold the pod in rotation` | a preStop `sleep` while the drain delay is not 0 |
//! | warning | `P periodSeconds S is shorter than the interval of background check "NAME"` | the probe reads a result older than its period |
//! | warning | `annotation prometheus.io/port "X" is not the probe server's port` | the scrape goes to another port |
//! | warning | `annotation prometheus.io/path "X" is not where the metrics are served` | the scrape asks another path than `/metrics` |
//! | warning | `prometheus.io annotations, but metrics are off` | Prometheus would scrape a 404 |
//! | warning | `env VARIABLE comes from valueFrom, which cannot be checked` | a `LIFECYCLE_*` variable set by `valueFrom` |
//! | warning | `envFrom REF "NAME" may set LIFECYCLE_* variables, which cannot be checked` | `envFrom` whose prefix may give `LIFECYCLE_*` names |
//! | warning | `lifecycle.preStop runs an exec or httpGet hook, whose duration cannot be checked` | the grace period is checked without it |
//! | warning | `P runs an exec command without --lifecycle-probe, which cannot be checked` | an exec probe of something else |

use std::ffi::OsString;
use std::fmt;
use std::time::Duration;

use serde_json::Value;

use super::read::{command_line, Workload};
use super::Binary;
use crate::config::{self, ConfigError, ServiceConfig, Settings, StopSignal};
use crate::exit;
use crate::manifest::{ceil_seconds, grace_needed, grace_seconds, probe_time_needed};
use crate::probe::Endpoint;
use crate::registry::CheckRegistration;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Severity {
    Error,
    Warning,
}

impl fmt::Display for Severity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Severity::Error => "error",
            Severity::Warning => "warning",
        })
    }
}

/// One finding about one container.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Finding {
    pub(crate) severity: Severity,
    /// What is wrong, starting with its stable words.
    pub(crate) what: String,
    /// What the binary needs instead.
    pub(crate) needs: String,
    /// How to fix it.
    pub(crate) fix: String,
}

fn error(what: String, needs: String, fix: String) -> Finding {
    Finding {
        severity: Severity::Error,
        what,
        needs,
        fix,
    }
}

fn warning(what: String, needs: String, fix: String) -> Finding {
    Finding {
        severity: Severity::Warning,
        what,
        needs,
        fix,
    }
}

/// Kubernetes' defaults for what a manifest leaves out.
const DEFAULT_TIMEOUT_SECONDS: u64 = 1;
const DEFAULT_PERIOD_SECONDS: u64 = 10;
const DEFAULT_FAILURE_THRESHOLD: u64 = 3;
const DEFAULT_INITIAL_DELAY_SECONDS: u64 = 0;
const DEFAULT_GRACE_SECONDS: u64 = 30;

/// Taken as set: the container runs on Kubernetes, whose defaults (the
/// drain delay's) apply.
const KUBERNETES_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";
/// The variables the binary reads all begin so.
const PREFIX: &str = "LIFECYCLE_";
const PREFLIGHT_FLAG: &str = "--lifecycle-preflight";
const PROBE_FLAG: &str = "--lifecycle-probe";
const METRICS_PATH: &str = "/metrics";

/// The probes, in the order they are reported, with the endpoint each is for.
const PROBES: [(&str, Endpoint); 3] = [
    ("startupProbe", Endpoint::Startupz),
    ("livenessProbe", Endpoint::Livez),
    ("readinessProbe", Endpoint::Readyz),
];

/// A whole number of seconds of a manifest, or `default` when left out.
fn seconds(object: &Value, key: &str, default: u64) -> u64 {
    object.get(key).and_then(Value::as_u64).unwrap_or(default)
}

fn millis(duration: Duration) -> u128 {
    duration.as_millis()
}

/// Whether an init container is this binary's preflight.
pub(crate) fn runs_preflight(container: &Value) -> bool {
    command_line(container).contains(&PREFLIGHT_FLAG)
}

/// The `LIFECYCLE_*` configuration of a container's `env`, and the
/// warnings for what cannot be known from the manifest.
struct Env {
    /// `name`, `value` as written; a later entry wins, as in Kubernetes.
    literal: Vec<(String, String)>,
}

fn read_env(container: &Value, findings: &mut Vec<Finding>) -> Env {
    let mut literal = Vec::new();
    for entry in container
        .get("env")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            continue;
        };
        match entry.get("value") {
            Some(Value::String(value)) => literal.push((name.to_owned(), value.clone())),
            Some(Value::Null) | None if entry.get("valueFrom").is_some() => {
                if name.starts_with(PREFIX) {
                    findings.push(warning(
                        format!("env {name} comes from valueFrom, which cannot be checked"),
                        format!(
                            "a {name} it accepts, or it exits {} at start-up",
                            exit::BAD_CONFIG
                        ),
                        format!(
                            "make sure the referenced value is valid, or set {name} with value"
                        ),
                    ));
                }
            }
            Some(Value::Null) | None => literal.push((name.to_owned(), String::new())),
            // Kubernetes refuses a value that is no string; the text is
            // what the user meant.
            Some(other) => literal.push((name.to_owned(), other.to_string())),
        }
    }
    for source in container
        .get("envFrom")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        let prefix = source.get("prefix").and_then(Value::as_str).unwrap_or("");
        let may_set = PREFIX.starts_with(prefix) || prefix.starts_with(PREFIX);
        if !may_set {
            continue;
        }
        let (reference, name) = ["configMapRef", "secretRef"]
            .into_iter()
            .find_map(|key| {
                let name = source.pointer(&format!("/{key}/name"))?.as_str()?;
                Some((key, name))
            })
            .unwrap_or(("source", "unnamed"));
        findings.push(warning(
            format!("envFrom {reference} \"{name}\" may set {PREFIX}* variables, which cannot be checked"),
            format!("{PREFIX}* values it accepts, or it exits {} at start-up", exit::BAD_CONFIG),
            format!("set {PREFIX}* variables in env, or give envFrom a prefix"),
        ));
    }
    Env { literal }
}

/// The settings the container's env gives, read by start-up's own code,
/// with one error per value start-up would reject. A rejected value is
/// then taken as unset, so that every bad value is reported at once and
/// the rest of the audit goes on with the others.
fn resolve(config: &ServiceConfig, env: &Env, findings: &mut Vec<Finding>) -> Option<Settings> {
    let mut rejected: Vec<&'static str> = Vec::new();
    let mut report = |error: ConfigError, rejected: &mut Vec<&'static str>| {
        findings.push(self::error(
            error.to_string(),
            format!(
                "a value it accepts, or it exits {} at start-up",
                exit::BAD_CONFIG
            ),
            format!(
                "correct or remove {} in the container's env",
                error.variable
            ),
        ));
        rejected.push(error.variable);
    };
    let lookup = |rejected: &[&str], name: &str| -> Option<OsString> {
        if name == KUBERNETES_SERVICE_HOST {
            return Some(OsString::from("kubernetes.default.svc"));
        }
        if rejected.contains(&name) {
            return None;
        }
        env.literal
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| OsString::from(value))
    };
    if let Err(error) = config::log_format(&|name| lookup(&rejected, name)) {
        report(error, &mut rejected);
    }
    loop {
        let resolved = Settings::resolve(config, &|name| lookup(&rejected, name));
        match resolved {
            Ok(settings) => return Some(settings),
            // A value rejected once more would loop: never so, since an
            // unset variable takes the argument or the default, which
            // the macro validated.
            Err(error) if rejected.contains(&error.variable) => return None,
            Err(error) => report(error, &mut rejected),
        }
    }
}

/// An init container running `--lifecycle-preflight`: its env, read as
/// start-up reads it.
pub(crate) fn preflight_container(config: &ServiceConfig, container: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    let env = read_env(container, &mut findings);
    resolve(config, &env, &mut findings);
    findings
}

/// Everything about the container that runs this binary in `workload`.
pub(crate) fn service_container(
    config: &ServiceConfig,
    binary: &Binary,
    workload: &Workload<'_>,
    container: &Value,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let env = read_env(container, &mut findings);
    let Some(settings) = resolve(config, &env, &mut findings) else {
        return findings;
    };
    let audit = Container {
        binary,
        settings: &settings,
        container,
    };
    for (key, endpoint) in PROBES {
        if let Some(probe) = container.get(key) {
            audit.probe(key, endpoint, probe, &mut findings);
        }
    }
    audit.startup_budget(&mut findings);
    audit.grace(workload.pod_spec, &mut findings);
    audit.stop_signal(&mut findings);
    audit.annotations(workload.pod_metadata, &mut findings);
    if let Some(job) = workload.job_spec {
        job_findings(
            job,
            workload.pod_spec,
            super::read::container_name(container),
            &mut findings,
        );
    }
    findings
}

/// A probe's target on the probe server: the endpoint and, for
/// `/ENDPOINT/NAME`, the one check.
type Target<'a> = (Endpoint, Option<&'a str>);

struct Container<'a> {
    binary: &'a Binary,
    settings: &'a Settings,
    container: &'a Value,
}

impl Container<'_> {
    fn probe_port(&self) -> u16 {
        self.settings.probe_addr.port()
    }

    /// The registered checks a probe of `target` runs.
    fn checks(&self, (endpoint, only): Target<'_>) -> Vec<&'static CheckRegistration> {
        self.binary
            .checks
            .iter()
            .copied()
            .filter(|check| endpoint.check_kinds().contains(&check.kind))
            .filter(|check| only.is_none_or(|name| name == check.name))
            .collect()
    }

    /// The check names `/ENDPOINT/NAME` takes.
    fn check_names(&self, endpoint: Endpoint) -> Vec<&'static str> {
        let mut names = endpoint.builtin_check_names(self.settings.max_tasks.is_some());
        names.extend(self.checks((endpoint, None)).iter().map(|check| check.name));
        names
    }

    /// `endpoint` and `only` when they name something the server answers.
    fn known<'t>(&self, endpoint: Endpoint, only: Option<&'t str>) -> Option<Target<'t>> {
        match only {
            None => Some((endpoint, None)),
            Some(name) if endpoint.has_single_check_paths() && !name.is_empty() => self
                .check_names(endpoint)
                .contains(&name)
                .then_some((endpoint, Some(name))),
            Some(_) => None,
        }
    }

    fn probe(&self, key: &str, expected: Endpoint, probe: &Value, findings: &mut Vec<Finding>) {
        let target = if let Some(http) = probe.get("httpGet") {
            self.port(key, "httpGet", http.get("port"), true, findings);
            if http
                .get("scheme")
                .and_then(Value::as_str)
                .is_some_and(|scheme| scheme.eq_ignore_ascii_case("HTTPS"))
            {
                findings.push(error(
                    format!("{key} scheme HTTPS, but the probe server speaks plain HTTP"),
                    "scheme HTTP".to_owned(),
                    format!("remove {key}.httpGet.scheme"),
                ));
            }
            let path = http.get("path").and_then(Value::as_str).unwrap_or("/");
            let target = http_target(path).and_then(|(e, only)| self.known(e, only));
            if target.is_none() {
                findings.push(error(
                    format!("{key} path \"{path}\" does not exist on the probe server"),
                    format!(
                        "{}, or one of its checks: {}/NAME",
                        expected.path(),
                        expected.path()
                    ),
                    format!("set {key}.httpGet.path to {}", expected.path()),
                ));
            }
            target
        } else if let Some(grpc) = probe.get("grpc") {
            if cfg!(feature = "grpc") {
                self.port(key, "grpc", grpc.get("port"), true, findings);
                let service = grpc.get("service").and_then(Value::as_str).unwrap_or("");
                let target = grpc_target(service).and_then(|(e, only)| self.known(e, only));
                if target.is_none() {
                    findings.push(error(
                        format!(
                            "{key} gRPC service \"{service}\" does not exist on the probe server"
                        ),
                        format!("service {expected}, or one of its checks: {expected}/NAME"),
                        format!("set {key}.grpc.service to {expected}"),
                    ));
                }
                target
            } else {
                findings.push(error(
                    format!("{key} is a gRPC probe, but the binary has no gRPC health"),
                    "an httpGet probe (it was built without lifecycle-runtime's cargo feature grpc)".to_owned(),
                    format!("replace {key}.grpc with httpGet path {} port {}", expected.path(), self.probe_port()),
                ));
                None
            }
        } else if let Some(exec) = probe.get("exec") {
            let words = command_line(exec);
            let value = words.iter().enumerate().find_map(|(i, word)| {
                if *word == PROBE_FLAG {
                    Some(words.get(i + 1).copied().unwrap_or(""))
                } else {
                    word.strip_prefix(PROBE_FLAG)?.strip_prefix('=')
                }
            });
            match value {
                Some(value) => {
                    let target = Endpoint::PROBED
                        .into_iter()
                        .find(|endpoint| endpoint.name() == value)
                        .map(|endpoint| (endpoint, None));
                    if target.is_none() {
                        findings.push(error(
                            format!("{key} runs {PROBE_FLAG} \"{value}\", which does not exist"),
                            format!("{PROBE_FLAG} livez, readyz or startupz"),
                            format!("run {PROBE_FLAG} {expected}"),
                        ));
                    }
                    target
                }
                None => {
                    findings.push(warning(
                        format!("{key} runs an exec command without {PROBE_FLAG}, which cannot be checked"),
                        format!("a probe of {}", expected.path()),
                        format!("probe {} with httpGet, or run {PROBE_FLAG} {expected}", expected.path()),
                    ));
                    None
                }
            }
        } else {
            if let Some(tcp) = probe.get("tcpSocket") {
                self.port(key, "tcpSocket", tcp.get("port"), false, findings);
            }
            None
        };
        if let Some(target) = target {
            if key == "livenessProbe" && matches!(target.0, Endpoint::Readyz | Endpoint::Healthz) {
                let asked = if probe.get("grpc").is_some() {
                    format!("gRPC service \"{}\"", grpc_service_of(target))
                } else if probe.get("exec").is_some() {
                    format!("{PROBE_FLAG} {}", target.0)
                } else {
                    format!("path {}", http_path_of(target))
                };
                findings.push(error(
                    format!("livenessProbe is aimed at readiness ({asked}): a dependency down or a drain restarts the container"),
                    "liveness aimed at livez, which fails only when the process itself is broken".to_owned(),
                    "aim livenessProbe at /livez (gRPC service livez, --lifecycle-probe livez)".to_owned(),
                ));
            }
            self.timeout(key, probe, target, findings);
            self.period(key, probe, target, findings);
        }
        if key != "readinessProbe" {
            self.probe_grace(key, probe, findings);
        }
    }

    /// A probe's port: declared when named; the probe server's, for the
    /// handlers that talk to it (`server`).
    fn port(
        &self,
        key: &str,
        handler: &str,
        port: Option<&Value>,
        server: bool,
        findings: &mut Vec<Finding>,
    ) {
        let number = match port {
            Some(Value::String(name)) => {
                let declared = self
                    .container
                    .get("ports")
                    .and_then(Value::as_array)
                    .into_iter()
                    .flatten()
                    .find(|port| port.get("name").and_then(Value::as_str) == Some(name.as_str()))
                    .and_then(|port| port.get("containerPort"))
                    .and_then(Value::as_u64);
                match declared {
                    Some(number) => number,
                    None => {
                        findings.push(error(
                            format!("{key} port \"{name}\" is not declared by the container"),
                            format!("a port the container declares (the probe server's is {})", self.probe_port()),
                            format!("add {{name: {name}, containerPort: {}}} to the container's ports, or give {key}.{handler}.port as a number", self.probe_port()),
                        ));
                        return;
                    }
                }
            }
            Some(Value::Number(number)) => match number.as_u64() {
                Some(number) => number,
                None => return,
            },
            _ => return,
        };
        if !server {
            return;
        }
        let address = self.settings.probe_addr;
        if address.ip().is_loopback() || address.port() == 0 {
            let port = if number == 0 { 8081 } else { number };
            findings.push(error(
                format!("{key} cannot reach the probe server, which listens on {address} with this container's env"),
                "a probe address the kubelet reaches: not loopback, not port 0".to_owned(),
                format!("set {} to 0.0.0.0:{port} in the container's env", config::PROBE_ADDR),
            ));
        } else if number != u64::from(address.port()) {
            findings.push(error(
                format!("{key} port {number} is not the probe server's port"),
                format!("port {} (its probe address is {address})", address.port()),
                format!("set {key}.{handler}.port to {}", address.port()),
            ));
        }
    }

    fn timeout(&self, key: &str, probe: &Value, target: Target<'_>, findings: &mut Vec<Finding>) {
        let checks = self.checks(target);
        let needed = probe_time_needed(checks.iter().copied());
        let given = seconds(probe, "timeoutSeconds", DEFAULT_TIMEOUT_SECONDS);
        if u128::from(given) * 1000 >= millis(needed) {
            return;
        }
        let largest = checks
            .iter()
            .filter(|check| check.interval_ms.is_none())
            .max_by_key(|check| check.timeout());
        let why = match largest {
            Some(check) => format!(
                "check \"{}\" {} ms + 50 ms",
                check.name,
                millis(check.timeout())
            ),
            None => "50 ms".to_owned(),
        };
        let fix = ceil_seconds(needed).max(1);
        findings.push(error(
            format!("{key} timeoutSeconds {given} is shorter than its checks may take"),
            format!("{} ms ({why})", millis(needed)),
            format!("set {key}.timeoutSeconds to {fix}"),
        ));
    }

    fn period(&self, key: &str, probe: &Value, target: Target<'_>, findings: &mut Vec<Finding>) {
        let period = seconds(probe, "periodSeconds", DEFAULT_PERIOD_SECONDS);
        let slowest = self
            .checks(target)
            .into_iter()
            .filter_map(|check| Some((check, check.interval_ms?)))
            .max_by_key(|(_, interval)| *interval);
        let Some((check, interval)) = slowest else {
            return;
        };
        if u128::from(period) * 1000 >= u128::from(interval) {
            return;
        }
        let fix = interval.div_ceil(1000);
        findings.push(warning(
            format!("{key} periodSeconds {period} is shorter than the interval of background check \"{}\" ({interval} ms): the probe reads a result older than its period", check.name),
            format!("periodSeconds {fix} or more"),
            format!("set {key}.periodSeconds to {fix}, or shorten the check's interval_ms"),
        ));
    }

    fn probe_grace(&self, key: &str, probe: &Value, findings: &mut Vec<Finding>) {
        let Some(grace) = probe
            .get("terminationGracePeriodSeconds")
            .and_then(Value::as_u64)
        else {
            return;
        };
        let timeout = self.settings.shutdown_timeout;
        if u128::from(grace) * 1000 >= millis(timeout) {
            return;
        }
        let fix = ceil_seconds(timeout);
        findings.push(error(
            format!("{key} terminationGracePeriodSeconds {grace} is shorter than the shutdown timeout ({} ms)", millis(timeout)),
            format!("{fix} s to stop after a failed {key}"),
            format!("set {key}.terminationGracePeriodSeconds to {fix}, or remove it"),
        ));
    }

    /// The startup probe's budget (or, without one, the liveness probe's)
    /// against the preflight checks and `on_startup` hooks.
    fn startup_budget(&self, findings: &mut Vec<Finding>) {
        let (key, probe, prefix) = match (
            self.container.get("startupProbe"),
            self.container.get("livenessProbe"),
        ) {
            (Some(startup), _) => ("startupProbe", startup, ""),
            (None, Some(liveness)) => ("livenessProbe", liveness, "no startupProbe, and "),
            (None, None) => return,
        };
        let delay = seconds(probe, "initialDelaySeconds", DEFAULT_INITIAL_DELAY_SECONDS);
        let failures = seconds(probe, "failureThreshold", DEFAULT_FAILURE_THRESHOLD);
        let period = seconds(probe, "periodSeconds", DEFAULT_PERIOD_SECONDS);
        let allowed = u128::from(delay)
            .saturating_add(u128::from(failures).saturating_mul(u128::from(period)))
            .saturating_mul(1000);
        let needed = self.binary.startup_needed();
        if allowed >= millis(needed) {
            return;
        }
        let rest = millis(needed).saturating_sub(u128::from(delay) * 1000);
        let fix = rest.div_ceil(u128::from(period.max(1)) * 1000).max(1);
        findings.push(error(
            format!("{prefix}{key} allows {allowed} ms for start-up (initialDelaySeconds {delay} + failureThreshold {failures} × periodSeconds {period})"),
            format!(
                "{} ms (preflight checks {} ms + on_startup hooks {} ms)",
                millis(needed),
                millis(self.binary.preflight_needed()),
                millis(self.binary.startup_hooks),
            ),
            format!("set {key}.failureThreshold to {fix}"),
        ));
    }

    /// `terminationGracePeriodSeconds` against the preStop hook and the
    /// shutdown timeout, and the preStop hook against the drain delay.
    fn grace(&self, pod_spec: &Value, findings: &mut Vec<Finding>) {
        let pre_stop = self.container.pointer("/lifecycle/preStop");
        let sleep = pre_stop
            .and_then(|hook| hook.pointer("/sleep/seconds"))
            .and_then(Value::as_u64);
        if let Some(sleep) = sleep {
            if !self.settings.drain_delay.is_zero() {
                findings.push(warning(
                    format!(
                        "a preStop sleep and the drain delay both hold the pod in rotation (sleep {sleep} s, drain delay {} ms)",
                        millis(self.settings.drain_delay)
                    ),
                    "one of them: its drain delay, which fails readiness at once while the sleep does not".to_owned(),
                    format!("remove lifecycle.preStop and keep the drain delay ({} sets it)", config::DRAIN_DELAY),
                ));
            }
        } else if let Some(hook) =
            pre_stop.filter(|hook| hook.get("exec").is_some() || hook.get("httpGet").is_some())
        {
            let kind = if hook.get("exec").is_some() {
                "exec"
            } else {
                "httpGet"
            };
            findings.push(warning(
                format!("lifecycle.preStop runs an {kind} hook, whose duration cannot be checked"),
                format!(
                    "terminationGracePeriodSeconds to cover the preStop hook + the shutdown timeout ({} ms)",
                    millis(self.settings.shutdown_timeout)
                ),
                format!("use a preStop sleep, or none (the drain delay, {}, does its job)", config::DRAIN_DELAY),
            ));
        }
        let pre_stop = Duration::from_secs(sleep.unwrap_or(0));
        let needed = grace_needed(pre_stop, self.settings.shutdown_timeout);
        let given = seconds(
            pod_spec,
            "terminationGracePeriodSeconds",
            DEFAULT_GRACE_SECONDS,
        );
        if u128::from(given) * 1000 >= millis(needed) {
            return;
        }
        let fix = grace_seconds(self.settings).saturating_add(pre_stop.as_secs());
        findings.push(error(
            format!(
                "terminationGracePeriodSeconds {given} is shorter than the stop takes (preStop sleep {} s + shutdown timeout {} ms)",
                pre_stop.as_secs(),
                millis(self.settings.shutdown_timeout)
            ),
            format!("{} ms, counted from the preStop hook", millis(needed)),
            format!("set terminationGracePeriodSeconds to {fix}"),
        ));
    }

    /// `lifecycle.stopSignal` against the signals that stop this binary:
    /// SIGTERM, SIGINT and its own stop signal. Any other (SIGKILL, a
    /// signal it does not watch) kills it without the graceful stop, or
    /// not at all until the grace period ends.
    fn stop_signal(&self, findings: &mut Vec<Finding>) {
        let Some(given) = self
            .container
            .pointer("/lifecycle/stopSignal")
            .and_then(Value::as_str)
        else {
            return;
        };
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
            format!("lifecycle.stopSignal {given} does not stop this binary gracefully"),
            needs,
            fix,
        ));
    }

    /// The `prometheus.io/*` annotations against the metrics served.
    fn annotations(&self, metadata: Option<&Value>, findings: &mut Vec<Finding>) {
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
                format!(
                    "prometheus.io annotations, but metrics are off ({})",
                    prometheus.join(", ")
                ),
                "no scrape: it serves no /metrics with metrics off".to_owned(),
                format!(
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
                format!("annotation prometheus.io/port \"{given}\" is not the probe server's port"),
                format!("prometheus.io/port \"{port}\", where /metrics is served"),
                format!("set prometheus.io/port to \"{port}\""),
            ));
        }
        if let Some(given) = text("prometheus.io/path").filter(|given| *given != METRICS_PATH) {
            findings.push(warning(
                format!(
                    "annotation prometheus.io/path \"{given}\" is not where the metrics are served"
                ),
                format!("prometheus.io/path \"{METRICS_PATH}\""),
                format!("set prometheus.io/path to \"{METRICS_PATH}\""),
            ));
        }
    }
}

/// The target of an `httpGet` path: `/E` or `/E/NAME`, the query aside.
fn http_target(path: &str) -> Option<(Endpoint, Option<&str>)> {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    let mut segments = path.strip_prefix('/')?.splitn(2, '/');
    let endpoint = Endpoint::from_name(segments.next()?)?;
    Some((endpoint, segments.next()))
}

/// The target of a gRPC health service name: `""` is `/healthz`; `E` and
/// `E/NAME` for the probed endpoints.
fn grpc_target(service: &str) -> Option<(Endpoint, Option<&str>)> {
    if service.is_empty() {
        return Some((Endpoint::Healthz, None));
    }
    let (endpoint, only) = match service.split_once('/') {
        Some((endpoint, only)) => (endpoint, Some(only)),
        None => (service, None),
    };
    let endpoint = Endpoint::from_name(endpoint).filter(|e| Endpoint::PROBED.contains(e))?;
    Some((endpoint, only))
}

fn http_path_of((endpoint, only): Target<'_>) -> String {
    match only {
        Some(name) => format!("{}/{name}", endpoint.path()),
        None => endpoint.path(),
    }
}

fn grpc_service_of((endpoint, only): Target<'_>) -> String {
    match (endpoint, only) {
        (Endpoint::Healthz, _) => String::new(),
        (endpoint, Some(name)) => format!("{endpoint}/{name}"),
        (endpoint, None) => endpoint.to_string(),
    }
}

/// A Job (or a CronJob's job template) must fail at once on exit 2, which
/// a retry cannot heal.
fn job_findings(job: &Value, pod_spec: &Value, container: &str, findings: &mut Vec<Finding>) {
    let code = exit::BAD_CONFIG;
    let rule = format!(
        "{{action: FailJob, onExitCodes: {{containerName: {container}, operator: In, values: [{code}]}}}}"
    );
    let policy = job.get("podFailurePolicy");
    let rules = policy
        .and_then(|policy| policy.get("rules"))
        .and_then(Value::as_array);
    let restart = pod_spec.get("restartPolicy").and_then(Value::as_str);
    if policy.is_some() && restart == Some("OnFailure") {
        findings.push(error(
            "restartPolicy OnFailure with a podFailurePolicy, which the API refuses".to_owned(),
            format!("restartPolicy Never, so that exit {code} fails the pod and the policy fails the Job"),
            "set the pod template's restartPolicy to Never".to_owned(),
        ));
    }
    let first = rules.into_iter().flatten().enumerate().find(|(_, rule)| {
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
        (Some(_), Some((_, rule))) => {
            let action = rule.get("action").and_then(Value::as_str).unwrap_or("");
            if matches!(action, "FailJob" | "FailIndex") {
                return;
            }
            format!("podFailurePolicy's first rule matching exit {code} has action {action}")
        }
    };
    findings.push(error(
        format!("the Job does not fail on exit {code} (invalid configuration, which a retry cannot heal): {why}"),
        format!("a podFailurePolicy whose first rule for exit {code} is FailJob"),
        format!("put the rule {rule} first in podFailurePolicy.rules (--lifecycle-manifest job prints it)"),
    ));
}
