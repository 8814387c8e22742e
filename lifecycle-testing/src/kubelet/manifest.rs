//! The probes and grace period of a pod template, read as the kubelet
//! reads them: Kubernetes' defaults filled in, its validation applied.

use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::de::IgnoredAny;
use serde::Deserialize;

use crate::error::{Error, ErrorKind};
use crate::service::{Scratch, Service, ServiceBuilder, LOG_TAIL};

/// The address the manifest is rendered for. Its port is never used: the
/// simulation probes the running service where it listens.
const MANIFEST_PROBE_ADDR: &str = "0.0.0.0:8081";

/// One of the kubelet's three probes of a container.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProbeKind {
    /// `startupProbe`: has the container started? Until it passes, the
    /// other two do not run.
    Startup,
    /// `livenessProbe`: should the container be restarted?
    Liveness,
    /// `readinessProbe`: should the pod be in the endpoints?
    Readiness,
}

impl ProbeKind {
    /// The three, in the order the kubelet cares about them.
    pub const ALL: [ProbeKind; 3] = [
        ProbeKind::Startup,
        ProbeKind::Liveness,
        ProbeKind::Readiness,
    ];

    /// The container's field: `startupProbe`, `livenessProbe`,
    /// `readinessProbe`.
    pub fn field(self) -> &'static str {
        match self {
            ProbeKind::Startup => "startupProbe",
            ProbeKind::Liveness => "livenessProbe",
            ProbeKind::Readiness => "readinessProbe",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl fmt::Display for ProbeKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            ProbeKind::Startup => "startup",
            ProbeKind::Liveness => "liveness",
            ProbeKind::Readiness => "readiness",
        })
    }
}

/// A probe of the manifest, Kubernetes' defaults filled in: `httpGet`, or
/// `grpc` with the kit's `grpc` feature.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct ProbeSpec {
    /// `httpGet.path` (`/` when absent); empty for a `grpc` probe.
    pub path: String,
    /// `grpc.service` of a `grpc` probe (`""` when absent); `None` for an
    /// `httpGet` probe.
    pub grpc_service: Option<String>,
    /// `initialDelaySeconds` (default 0): counted from the container's
    /// start, probes before it are skipped.
    pub initial_delay: Duration,
    /// `periodSeconds` (default 10).
    pub period: Duration,
    /// `timeoutSeconds` (default 1).
    pub timeout: Duration,
    /// `successThreshold` (default 1; always 1 for startup and liveness).
    pub success_threshold: u32,
    /// `failureThreshold` (default 3).
    pub failure_threshold: u32,
}

/// What the kubelet reads of a service's manifest: its container's three
/// probes and the pod's `terminationGracePeriodSeconds`.
///
/// Read it from the binary itself ([`Manifest::of`],
/// [`Manifest::from_builder`]: `BINARY --lifecycle-manifest`) or from YAML
/// ([`Manifest::parse`]), then give it to a [`Kubelet`](crate::Kubelet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    container: String,
    probes: [Option<ProbeSpec>; 3],
    termination_grace_period: Duration,
}

impl Manifest {
    /// Runs `program --lifecycle-manifest` with the variables `env` (as
    /// [`Service::builder`]`(program).env(…)` would set them) and reads
    /// what it prints.
    pub fn of(program: impl AsRef<Path>, env: &[(&str, &str)]) -> Result<Manifest, Error> {
        let builder = env
            .iter()
            .fold(Service::builder(program), |builder, (key, value)| {
                builder.env(key, value)
            });
        Manifest::from_builder(&builder)
    }

    /// Runs the builder's program with `--lifecycle-manifest`, in the
    /// environment the builder gives the service (its arguments are left
    /// out), and reads what it prints. The manifest is rendered for the
    /// probe address `0.0.0.0:8081` whatever the environment says: the
    /// simulation probes the running service where it listens, never the
    /// manifest's port. The builder's
    /// [`start_deadline`](ServiceBuilder::start_deadline) bounds the run.
    pub fn from_builder(builder: &ServiceBuilder) -> Result<Manifest, Error> {
        let program = builder.program().display().to_string();
        let scratch = Scratch::new().map_err(|e| {
            Error::new(
                ErrorKind::Spawn,
                format!("cannot make a temporary folder: {e}"),
            )
        })?;
        let termination_log = scratch.0.join("termination-log");
        let mut command =
            builder.command(&[("LIFECYCLE_TERMINATION_LOG", termination_log.as_os_str())]);
        command
            .env("LIFECYCLE_PROBE_ADDR", OsStr::new(MANIFEST_PROBE_ADDR))
            .arg("--lifecycle-manifest")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = command.spawn().map_err(|e| {
            Error::new(
                ErrorKind::Spawn,
                format!("cannot run {program} --lifecycle-manifest: {e}"),
            )
        })?;
        let stdout = read_all(child.stdout.take().expect("piped stdout"));
        let stderr = read_all(child.stderr.take().expect("piped stderr"));
        let until = Instant::now() + builder.deadline();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if Instant::now() < until => {
                    std::thread::sleep(Duration::from_millis(10));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let stdout = stdout.join().unwrap_or_default();
        let stderr = stderr.join().unwrap_or_default();
        let log: Vec<String> = stderr.lines().map(str::to_owned).collect();
        let log_tail = log[log.len().saturating_sub(LOG_TAIL)..].to_vec();
        match status {
            None => Err(Error::with_log(
                ErrorKind::TimedOut,
                format!(
                    "{program} --lifecycle-manifest did not exit within {} ms",
                    builder.deadline().as_millis()
                ),
                log_tail,
            )),
            Some(status) if !status.success() => Err(Error::with_log(
                ErrorKind::InvalidManifest,
                format!("{program} --lifecycle-manifest failed ({status})"),
                log_tail,
            )),
            Some(_) => Manifest::parse(&stdout).map_err(|e| {
                Error::with_log(
                    ErrorKind::InvalidManifest,
                    format!(
                        "{program} --lifecycle-manifest printed {}:\n{stdout}",
                        e.message()
                    ),
                    log_tail,
                )
            }),
        }
    }

    /// Reads a PodTemplateSpec or a Pod (`spec.containers`), or a workload
    /// with a pod template (`spec.template.spec`: a Deployment, a
    /// StatefulSet, a Job, …), from the first YAML document that has one;
    /// the probes are those of its first container. Absent fields take
    /// Kubernetes' defaults, and what Kubernetes would reject (a negative
    /// period, a liveness `successThreshold` other than 1) is an error, as
    /// are probes the kit cannot send (`exec`, `tcpSocket`, `scheme:
    /// HTTPS`, and `grpc` without the kit's `grpc` feature). `httpHeaders`
    /// are ignored.
    pub fn parse(yaml: &str) -> Result<Manifest, Error> {
        parse(yaml).map_err(|message| Error::new(ErrorKind::InvalidManifest, message))
    }

    /// The container's name.
    pub fn container(&self) -> &str {
        &self.container
    }

    /// The container's probe of that kind, if it has one.
    pub fn probe(&self, kind: ProbeKind) -> Option<&ProbeSpec> {
        self.probes[kind.index()].as_ref()
    }

    /// `terminationGracePeriodSeconds` (default 30 s).
    pub fn termination_grace_period(&self) -> Duration {
        self.termination_grace_period
    }
}

fn read_all(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

#[derive(Deserialize)]
struct RawDocument {
    spec: Option<RawSpec>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawSpec {
    containers: Option<Vec<RawContainer>>,
    template: Option<RawTemplate>,
    termination_grace_period_seconds: Option<i64>,
}

#[derive(Deserialize)]
struct RawTemplate {
    spec: Option<Box<RawSpec>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawContainer {
    name: Option<String>,
    startup_probe: Option<RawProbe>,
    liveness_probe: Option<RawProbe>,
    readiness_probe: Option<RawProbe>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RawProbe {
    http_get: Option<RawHttpGet>,
    grpc: Option<RawGrpc>,
    exec: Option<IgnoredAny>,
    tcp_socket: Option<IgnoredAny>,
    initial_delay_seconds: Option<i64>,
    period_seconds: Option<i64>,
    timeout_seconds: Option<i64>,
    success_threshold: Option<i64>,
    failure_threshold: Option<i64>,
}

#[derive(Deserialize)]
struct RawGrpc {
    service: Option<String>,
}

#[derive(Deserialize)]
struct RawHttpGet {
    path: Option<String>,
    scheme: Option<String>,
}

/// The pod spec of a document: its own, or its template's.
fn pod_spec(mut spec: RawSpec) -> Option<(RawSpec, Vec<RawContainer>)> {
    match spec.containers.take() {
        Some(containers) => Some((spec, containers)),
        None => spec
            .template
            .and_then(|t| t.spec)
            .and_then(|s| pod_spec(*s)),
    }
}

fn parse(yaml: &str) -> Result<Manifest, String> {
    for document in serde_norway::Deserializer::from_str(yaml) {
        let document = RawDocument::deserialize(document)
            .map_err(|e| format!("not a Kubernetes manifest: {e}"))?;
        let Some((spec, containers)) = document.spec.and_then(pod_spec) else {
            continue;
        };
        let container = containers
            .into_iter()
            .next()
            .ok_or("a pod spec with no container")?;
        let name = container.name.unwrap_or_default();
        let mut probes = [None, None, None];
        for (kind, raw) in [
            (ProbeKind::Startup, container.startup_probe),
            (ProbeKind::Liveness, container.liveness_probe),
            (ProbeKind::Readiness, container.readiness_probe),
        ] {
            if let Some(raw) = raw {
                probes[kind.index()] = Some(
                    probe_spec(kind, raw)
                        .map_err(|e| format!("container {name:?}: {}: {e}", kind.field()))?,
                );
            }
        }
        let grace = match spec.termination_grace_period_seconds {
            None => 30,
            Some(seconds) => u64::try_from(seconds).map_err(|_| {
                format!("terminationGracePeriodSeconds: must be at least 0, not {seconds}")
            })?,
        };
        return Ok(Manifest {
            container: name,
            probes,
            termination_grace_period: Duration::from_secs(grace),
        });
    }
    Err("no pod spec (`spec.containers` or `spec.template.spec.containers`)".to_owned())
}

/// Kubernetes' defaulting: an absent or zero field takes the default; a
/// negative one is rejected.
fn field(value: Option<i64>, name: &str, default: u32) -> Result<u32, String> {
    match value {
        None | Some(0) => Ok(default),
        Some(value) => u32::try_from(value)
            .map_err(|_| format!("{name}: must be between 0 and {}, not {value}", u32::MAX)),
    }
}

fn probe_spec(kind: ProbeKind, raw: RawProbe) -> Result<ProbeSpec, String> {
    if raw.grpc.is_some() && !cfg!(feature = "grpc") {
        return Err(
            "gRPC probes need the `grpc` feature of lifecycle-testing (only httpGet without it)"
                .to_owned(),
        );
    }
    for (present, handler) in [
        (raw.exec.is_some(), "exec"),
        (raw.tcp_socket.is_some(), "tcpSocket"),
    ] {
        if present {
            return Err(format!(
                "{handler} probes are not supported by the kit's kubelet (only httpGet)"
            ));
        }
    }
    let (path, grpc_service) = match (raw.http_get, raw.grpc) {
        (Some(_), Some(_)) => return Err("two handlers (httpGet and grpc)".to_owned()),
        (None, Some(grpc)) => (String::new(), Some(grpc.service.unwrap_or_default())),
        (None, None) => return Err("no handler (httpGet or grpc)".to_owned()),
        (Some(http), None) => {
            if let Some(scheme) = http.scheme.filter(|s| !s.eq_ignore_ascii_case("http")) {
                return Err(format!(
                    "httpGet.scheme {scheme}: the kit's kubelet probes plain HTTP only"
                ));
            }
            let path = match http.path.unwrap_or_default() {
                path if path.starts_with('/') => path,
                path => format!("/{path}"),
            };
            (path, None)
        }
    };
    let success_threshold = field(raw.success_threshold, "successThreshold", 1)?;
    if kind != ProbeKind::Readiness && success_threshold != 1 {
        return Err(format!(
            "successThreshold: must be 1 for a {kind} probe, not {success_threshold}"
        ));
    }
    let initial_delay = match raw.initial_delay_seconds {
        None => 0,
        Some(seconds) => u32::try_from(seconds)
            .map_err(|_| format!("initialDelaySeconds: must be at least 0, not {seconds}"))?,
    };
    Ok(ProbeSpec {
        path,
        grpc_service,
        initial_delay: Duration::from_secs(initial_delay.into()),
        period: Duration::from_secs(field(raw.period_seconds, "periodSeconds", 10)?.into()),
        timeout: Duration::from_secs(field(raw.timeout_seconds, "timeoutSeconds", 1)?.into()),
        success_threshold,
        failure_threshold: field(raw.failure_threshold, "failureThreshold", 3)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What `testbed --lifecycle-manifest` prints, header comments included.
    const GENERATED: &str = "\
# Generated by `testbed --lifecycle-manifest` from its configuration and checks:
# drain delay on Kubernetes 5000 ms + shutdown timeout 25000 ms (+ 5 s slack) = terminationGracePeriodSeconds;
# the startup probe allows 160000 ms of preflight checks and on_startup hooks.
metadata:
  labels:
    app.kubernetes.io/name: testbed
spec:
  containers:
  - livenessProbe:
      failureThreshold: 3
      httpGet:
        path: /livez
        port: 8081
      periodSeconds: 10
      successThreshold: 1
      timeoutSeconds: 1
    name: testbed
    ports:
    - containerPort: 8081
      name: probes
      protocol: TCP
    readinessProbe:
      failureThreshold: 2
      httpGet:
        path: /readyz
        port: 8081
      periodSeconds: 5
      successThreshold: 1
      timeoutSeconds: 4
    startupProbe:
      failureThreshold: 82
      httpGet:
        path: /startupz
        port: 8081
      periodSeconds: 2
      successThreshold: 1
      timeoutSeconds: 1
    terminationMessagePolicy: FallbackToLogsOnError
  terminationGracePeriodSeconds: 35
";

    fn spec(path: &str, period: u64, timeout: u64, failures: u32) -> ProbeSpec {
        ProbeSpec {
            path: path.to_owned(),
            grpc_service: None,
            initial_delay: Duration::ZERO,
            period: Duration::from_secs(period),
            timeout: Duration::from_secs(timeout),
            success_threshold: 1,
            failure_threshold: failures,
        }
    }

    fn error(yaml: &str) -> String {
        Manifest::parse(yaml).unwrap_err().to_string()
    }

    #[test]
    fn the_generated_pod_template_is_read_whole() {
        let manifest = Manifest::parse(GENERATED).unwrap();
        assert_eq!(manifest.container(), "testbed");
        assert_eq!(
            manifest.probe(ProbeKind::Startup),
            Some(&spec("/startupz", 2, 1, 82))
        );
        assert_eq!(
            manifest.probe(ProbeKind::Liveness),
            Some(&spec("/livez", 10, 1, 3))
        );
        assert_eq!(
            manifest.probe(ProbeKind::Readiness),
            Some(&spec("/readyz", 5, 4, 2))
        );
        assert_eq!(manifest.termination_grace_period(), Duration::from_secs(35));
    }

    #[test]
    fn absent_fields_take_kubernetes_defaults() {
        let manifest = Manifest::parse(
            "spec:\n  containers:\n  - name: app\n    livenessProbe:\n      httpGet: {port: 8081}\n",
        )
        .unwrap();
        assert_eq!(
            manifest.probe(ProbeKind::Liveness),
            Some(&spec("/", 10, 1, 3))
        );
        assert_eq!(manifest.probe(ProbeKind::Startup), None);
        assert_eq!(manifest.probe(ProbeKind::Readiness), None);
        assert_eq!(manifest.termination_grace_period(), Duration::from_secs(30));
    }

    #[test]
    fn zero_means_the_default_as_in_the_api_server() {
        let manifest = Manifest::parse(
            "spec:\n  containers:\n  - readinessProbe:\n      httpGet: {path: ready}\n      \
             initialDelaySeconds: 7\n      periodSeconds: 0\n      timeoutSeconds: 0\n      \
             successThreshold: 3\n      failureThreshold: 0\n",
        )
        .unwrap();
        let readiness = manifest.probe(ProbeKind::Readiness).unwrap();
        assert_eq!(readiness.path, "/ready");
        assert_eq!(readiness.initial_delay, Duration::from_secs(7));
        assert_eq!(readiness.period, Duration::from_secs(10));
        assert_eq!(readiness.timeout, Duration::from_secs(1));
        assert_eq!(readiness.success_threshold, 3);
        assert_eq!(readiness.failure_threshold, 3);
        assert_eq!(manifest.container(), "");
    }

    #[test]
    fn a_deployment_is_read_through_its_template_past_other_documents() {
        let manifest = Manifest::parse(
            "# a comment\napiVersion: v1\nkind: ConfigMap\ndata: {a: b}\n---\n\
             apiVersion: apps/v1\nkind: Deployment\nspec:\n  replicas: 2\n  template:\n    spec:\n      \
             terminationGracePeriodSeconds: 35\n      initContainers:\n      - name: preflight\n      \
             containers:\n      - name: app\n        startupProbe:\n          httpGet: {path: /startupz, port: 8081}\n          \
             periodSeconds: 2\n          failureThreshold: 9\n---\nkind: Service\nspec: {ports: []}\n",
        )
        .unwrap();
        assert_eq!(manifest.container(), "app");
        assert_eq!(
            manifest.probe(ProbeKind::Startup),
            Some(&spec("/startupz", 2, 1, 9))
        );
        assert_eq!(manifest.termination_grace_period(), Duration::from_secs(35));
    }

    #[test]
    fn probes_the_kit_cannot_send_are_clear_errors() {
        let grpc =
            "spec:\n  containers:\n  - name: app\n    livenessProbe:\n      grpc: {port: 8081}\n";
        if cfg!(feature = "grpc") {
            let manifest = Manifest::parse(grpc).unwrap();
            let spec = manifest.probe(ProbeKind::Liveness).unwrap();
            assert_eq!(spec.grpc_service.as_deref(), Some(""));
        } else {
            let grpc = error(grpc);
            assert!(
                grpc.contains("livenessProbe") && grpc.contains("need the `grpc` feature"),
                "{grpc}"
            );
        }
        let exec = error("spec:\n  containers:\n  - readinessProbe:\n      exec: {command: [x]}\n");
        assert!(exec.contains("exec probes are not supported"), "{exec}");
        let tcp = error("spec:\n  containers:\n  - startupProbe:\n      tcpSocket: {port: 1}\n");
        assert!(tcp.contains("tcpSocket probes are not supported"), "{tcp}");
        let https =
            error("spec:\n  containers:\n  - startupProbe:\n      httpGet: {scheme: HTTPS}\n");
        assert!(https.contains("plain HTTP only"), "{https}");
        let none = error("spec:\n  containers:\n  - startupProbe:\n      periodSeconds: 1\n");
        assert!(none.contains("no handler"), "{none}");
    }

    #[test]
    fn what_kubernetes_rejects_is_rejected() {
        let liveness = error("spec:\n  containers:\n  - livenessProbe:\n      httpGet: {}\n      successThreshold: 2\n");
        assert!(
            liveness.contains("successThreshold: must be 1 for a liveness probe"),
            "{liveness}"
        );
        let startup = error("spec:\n  containers:\n  - startupProbe:\n      httpGet: {}\n      successThreshold: 2\n");
        assert!(
            startup.contains("must be 1 for a startup probe"),
            "{startup}"
        );
        let negative = error(
            "spec:\n  containers:\n  - startupProbe:\n      httpGet: {}\n      periodSeconds: -1\n",
        );
        assert!(
            negative.contains("periodSeconds: must be between 0"),
            "{negative}"
        );
        let delay = error("spec:\n  containers:\n  - startupProbe:\n      httpGet: {}\n      initialDelaySeconds: -5\n");
        assert!(
            delay.contains("initialDelaySeconds: must be at least 0"),
            "{delay}"
        );
        let grace =
            error("spec:\n  terminationGracePeriodSeconds: -1\n  containers: [{name: a}]\n");
        assert!(grace.contains("terminationGracePeriodSeconds"), "{grace}");
    }

    #[test]
    fn a_document_without_a_pod_spec_is_an_error() {
        assert!(error("kind: Service\nspec: {ports: []}\n").contains("no pod spec"));
        assert!(error("spec:\n  containers: []\n").contains("no container"));
        assert!(error("spec: [1, 2]\n").contains("not a Kubernetes manifest"));
        assert!(error("").contains("no pod spec"));
    }
}
