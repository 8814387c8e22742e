//! A probe against the probe server: its handler's target and port, what
//! it is aimed at, its timeout, its period and its own grace period.

use serde_json::Value;

use super::container::Container;
use super::finding::{error, warning, Finding};
use super::numbers::{probe_number, probe_numbers, whole_number};
use crate::audit::read::{command_line, items, present};
use crate::config;
use crate::flags::PROBE as PROBE_FLAG;
use crate::manifest::{
    ceil_seconds, grace_needed, grace_seconds, probe_period_seconds, probe_time_needed,
};
use crate::probe::endpoint::{self, path_of, service_of, Endpoint, Target};
use crate::registry::CheckKind;

impl Container<'_> {
    /// Everything about one probe (`key`, for `expected`).
    pub(super) fn probe(
        &self,
        key: &str,
        expected: Endpoint,
        probe: &Value,
        findings: &mut Vec<Finding>,
    ) {
        probe_numbers(key, probe, findings);
        let target = if let Some(http) = present(probe, "httpGet") {
            self.http_probe(key, expected, http, findings)
        } else if let Some(grpc) = present(probe, "grpc") {
            self.grpc_probe(key, expected, grpc, findings)
        } else if let Some(exec) = present(probe, "exec") {
            exec_probe(key, expected, exec, findings)
        } else {
            if let Some(tcp) = present(probe, "tcpSocket") {
                self.port(key, "tcpSocket", tcp.get("port"), false, findings);
            }
            None
        };
        if let Some(target) = target {
            findings.extend(aimed_elsewhere(key, probe, target));
            self.timeout(key, probe, target, findings);
            self.period(key, probe, target, findings);
        }
        if key != "readinessProbe" {
            self.probe_grace(key, probe, findings);
        }
    }

    fn http_probe<'p>(
        &self,
        key: &str,
        expected: Endpoint,
        http: &'p Value,
        findings: &mut Vec<Finding>,
    ) -> Option<Target<'p>> {
        self.port(key, "httpGet", http.get("port"), true, findings);
        if http
            .get("scheme")
            .and_then(Value::as_str)
            .is_some_and(|scheme| scheme.eq_ignore_ascii_case("HTTPS"))
        {
            findings.push(error(
                format_args!("{key} scheme HTTPS, but the probe server speaks plain HTTP"),
                format_args!("scheme HTTP"),
                format_args!("remove {key}.httpGet.scheme"),
            ));
        }
        let path = http.get("path").and_then(Value::as_str).unwrap_or("/");
        let target = http_target(path).and_then(|target| self.known(target));
        if target.is_none() {
            findings.push(error(
                format_args!("{key} path \"{path}\" does not exist on the probe server"),
                format_args!(
                    "{}, or one of its checks: {}/NAME",
                    expected.path(),
                    expected.path()
                ),
                format_args!("set {key}.httpGet.path to {}", expected.path()),
            ));
        }
        target
    }

    fn grpc_probe<'p>(
        &self,
        key: &str,
        expected: Endpoint,
        grpc: &'p Value,
        findings: &mut Vec<Finding>,
    ) -> Option<Target<'p>> {
        if !cfg!(feature = "grpc") {
            findings.push(error(
                format_args!("{key} is a gRPC probe, but the binary has no gRPC health"),
                format_args!("an httpGet probe (it was built without lifecycle-runtime's cargo feature grpc)"),
                format_args!(
                    "replace {key}.grpc with httpGet path {} port {}",
                    expected.path(),
                    self.probe_port()
                ),
            ));
            return None;
        }
        self.port(key, "grpc", grpc.get("port"), true, findings);
        let service = grpc.get("service").and_then(Value::as_str).unwrap_or("");
        let target = endpoint::parse_service(service).and_then(|target| self.known(target));
        if target.is_none() {
            findings.push(error(
                format_args!("{key} gRPC service \"{service}\" does not exist on the probe server"),
                format_args!("service {expected}, or one of its checks: {expected}/NAME"),
                format_args!("set {key}.grpc.service to {expected}"),
            ));
        }
        target
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
                let declared = items(self.container, "ports")
                    .iter()
                    .find(|port| port.get("name").and_then(Value::as_str) == Some(name.as_str()))
                    .and_then(|port| port.get("containerPort"))
                    .and_then(Value::as_u64);
                match declared {
                    Some(number) => number,
                    None => {
                        findings.push(error(
                            format_args!("{key} port \"{name}\" is not declared by the container"),
                            format_args!("a port the container declares (the probe server's is {})", self.probe_port()),
                            format_args!("add {{name: {name}, containerPort: {}}} to the container's ports, or give {key}.{handler}.port as a number", self.probe_port()),
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
                format_args!("{key} cannot reach the probe server, which listens on {address} with this container's env"),
                format_args!("a probe address the kubelet reaches: not loopback, not port 0"),
                format_args!("set {} to 0.0.0.0:{port} in the container's env", config::PROBE_ADDR),
            ));
        } else if number != u64::from(address.port()) {
            findings.push(error(
                format_args!("{key} port {number} is not the probe server's port"),
                format_args!("port {} (its probe address is {address})", address.port()),
                format_args!("set {key}.{handler}.port to {}", address.port()),
            ));
        }
    }

    fn timeout(&self, key: &str, probe: &Value, target: Target<'_>, findings: &mut Vec<Finding>) {
        let checks = self.checks(target);
        let needed = probe_time_needed(&checks);
        let Some(given) = probe_number(probe, "timeoutSeconds") else {
            return;
        };
        if u128::from(given) * 1000 >= needed.as_millis() {
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
                check.timeout().as_millis()
            ),
            None => "50 ms".to_owned(),
        };
        let fix = ceil_seconds(needed).max(1);
        findings.push(error(
            format_args!("{key} timeoutSeconds {given} is shorter than its checks may take"),
            format_args!("{} ms ({why})", needed.as_millis()),
            format_args!("set {key}.timeoutSeconds to {fix}"),
        ));
    }

    fn period(&self, key: &str, probe: &Value, target: Target<'_>, findings: &mut Vec<Finding>) {
        let Some(period) = probe_number(probe, "periodSeconds") else {
            return;
        };
        let checks = self.checks(target);
        let fix = probe_period_seconds(period, &checks);
        if fix == period {
            return;
        }
        let slowest = checks
            .into_iter()
            .filter_map(|check| Some((check, check.interval_ms?)))
            .max_by_key(|(_, interval)| *interval);
        let Some((check, interval)) = slowest else {
            return;
        };
        findings.push(warning(
            format_args!("{key} periodSeconds {period} is shorter than the interval of background check \"{}\" ({interval} ms): the probe reads a result older than its period", check.name),
            format_args!("periodSeconds {fix} or more"),
            format_args!("set {key}.periodSeconds to {fix}, or shorten the check's interval_ms"),
        ));
    }

    /// A liveness or startup probe's own grace period, which the kubelet
    /// gives the container it kills after the probe failed: the preStop
    /// hook runs in it too.
    fn probe_grace(&self, key: &str, probe: &Value, findings: &mut Vec<Finding>) {
        let Ok(Some(grace)) = whole_number(probe, "terminationGracePeriodSeconds") else {
            return;
        };
        let pre_stop = self.pre_stop_sleep();
        let needed = grace_needed(pre_stop, self.settings.shutdown_timeout);
        if u128::from(grace) * 1000 >= needed.as_millis() {
            return;
        }
        let fix = grace_seconds(self.settings).saturating_add(pre_stop.as_secs());
        findings.push(error(
            format_args!(
                "{key} terminationGracePeriodSeconds {grace} is shorter than the stop takes (preStop sleep {} s + shutdown timeout {} ms)",
                pre_stop.as_secs(),
                self.settings.shutdown_timeout.as_millis()
            ),
            format_args!("{}, after a failed {key}", self.stop_needs(needed, pre_stop)),
            format_args!("set {key}.terminationGracePeriodSeconds to {fix}, or remove it"),
        ));
    }
}

/// An exec probe's target: the endpoint its `--lifecycle-probe` names,
/// looked for in every word of the command (`sh -c "/app --lifecycle-probe
/// readyz"` included).
fn exec_probe(
    key: &str,
    expected: Endpoint,
    exec: &Value,
    findings: &mut Vec<Finding>,
) -> Option<Target<'static>> {
    let mut words = Vec::new();
    for line in command_line(exec) {
        words.extend(line.split_whitespace());
    }
    let value = words.iter().enumerate().find_map(|(i, word)| {
        if *word == PROBE_FLAG {
            Some(words.get(i + 1).copied().unwrap_or(""))
        } else {
            word.strip_prefix(PROBE_FLAG)?.strip_prefix('=')
        }
    });
    let Some(value) = value else {
        findings.push(warning(
            format_args!(
                "{key} runs an exec command without {PROBE_FLAG}, which cannot be checked"
            ),
            format_args!("a probe of {}", expected.path()),
            format_args!(
                "probe {} with httpGet, or run {PROBE_FLAG} {expected}",
                expected.path()
            ),
        ));
        return None;
    };
    let target = Endpoint::parse_probed(value).map(|endpoint| (endpoint, None));
    if target.is_none() {
        findings.push(error(
            format_args!("{key} runs {PROBE_FLAG} \"{value}\", which does not exist"),
            format_args!("{PROBE_FLAG} livez, readyz or startupz"),
            format_args!("run {PROBE_FLAG} {expected}"),
        ));
    }
    target
}

/// A probe aimed at an endpoint that fails for other reasons than its
/// own: liveness at readiness restarts the container when a dependency is
/// down (an error); startup at readiness restarts it when a dependency is
/// down at start-up, and readiness at liveness keeps it in rotation while
/// a dependency is down or it drains (warnings).
fn aimed_elsewhere(key: &str, probe: &Value, target: Target<'_>) -> Option<Finding> {
    let readiness = target.0.check_kinds().contains(&CheckKind::Readiness);
    let asked = || {
        if present(probe, "grpc").is_some() {
            format!("gRPC service \"{}\"", service_of(target))
        } else if present(probe, "exec").is_some() {
            format!("{PROBE_FLAG} {}", target.0)
        } else {
            format!("path {}", path_of(target))
        }
    };
    match key {
        "livenessProbe" if readiness => Some(error(
            format_args!("livenessProbe is aimed at readiness ({}): a dependency down or a drain restarts the container", asked()),
            format_args!("liveness aimed at livez, which fails only when the process itself is broken"),
            format_args!("aim livenessProbe at /livez (gRPC service livez, --lifecycle-probe livez)"),
        )),
        "startupProbe" if readiness => Some(warning(
            format_args!("startupProbe is aimed at readiness ({}): a dependency down at start-up has the container restarted over and over", asked()),
            format_args!("startup aimed at startupz, which passes once start-up is done"),
            format_args!("aim startupProbe at /startupz (gRPC service startupz, --lifecycle-probe startupz)"),
        )),
        "readinessProbe" if target.0 == Endpoint::Livez => Some(warning(
            format_args!("readinessProbe is aimed at liveness ({}): the pod stays in rotation while a dependency is down or it drains", asked()),
            format_args!("readiness aimed at readyz, which fails while a dependency is down or the instance drains"),
            format_args!("aim readinessProbe at /readyz (gRPC service readyz, --lifecycle-probe readyz)"),
        )),
        _ => None,
    }
}

/// The target of an `httpGet` path: `/E` or `/E/NAME`, the query aside.
fn http_target(path: &str) -> Option<Target<'_>> {
    let path = path.split_once('?').map_or(path, |(path, _)| path);
    endpoint::parse_path(path.strip_prefix('/')?)
}
