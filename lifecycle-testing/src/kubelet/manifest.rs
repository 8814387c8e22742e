//! The probes and grace period of a pod template, read as the kubelet
//! reads them: Kubernetes' defaults filled in, its validation applied.

use std::ffi::OsStr;
use std::fmt;
use std::io::Read;
use std::path::Path;
use std::process::Stdio;
use std::time::{Duration, Instant};

use serde::Deserialize;

use crate::error::{Error, ErrorKind};
use crate::service::{tail, Scratch, Service, ServiceBuilder, LOG_TAIL};
use raw::{pod_specs, RawContainer, RawDocument, RawHandler, RawProbe, RawSpec};

mod raw;

/// The address the manifest is rendered for. Its port is never used: the
/// simulation probes the running service where it listens.
const MANIFEST_PROBE_ADDR: &str = "0.0.0.0:8081";

/// What the API server writes into a probe field left out or set to 0
/// (`SetDefaults_Probe` in `pkg/apis/core/v1/defaults.go`);
/// `initialDelaySeconds` stays 0.
pub(crate) mod probe_defaults {
    /// `periodSeconds`.
    pub(crate) const PERIOD_SECONDS: u32 = 10;
    /// `timeoutSeconds`.
    pub(crate) const TIMEOUT_SECONDS: u32 = 1;
    /// `successThreshold`.
    pub(crate) const SUCCESS_THRESHOLD: u32 = 1;
    /// `failureThreshold`.
    pub(crate) const FAILURE_THRESHOLD: u32 = 3;
}

/// A pod's `terminationGracePeriodSeconds` when left out
/// (`DefaultTerminationGracePeriodSeconds`); 0 stays 0.
const DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS: u64 = 30;

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
    /// The probe's own `terminationGracePeriodSeconds` (startup and
    /// liveness only): the grace period of a kill this probe decides, in
    /// place of the pod's.
    pub termination_grace_period: Option<Duration>,
}

/// A container's `lifecycle.preStop` hook, as the kit's kubelet runs it.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum PreStop {
    /// `exec.command`: the kit cannot run it inside a container, so it
    /// runs it on the host, in the service's environment and the
    /// manifest's `env` values.
    Exec(Vec<String>),
    /// `sleep.seconds`: real seconds, as the grace period is real.
    Sleep(Duration),
}

/// The signal names `lifecycle.stopSignal` accepts (the API's `Signal`
/// type).
const STOP_SIGNALS: [&str; 31] = [
    "SIGABRT",
    "SIGALRM",
    "SIGBUS",
    "SIGCHLD",
    "SIGCLD",
    "SIGCONT",
    "SIGFPE",
    "SIGHUP",
    "SIGILL",
    "SIGINT",
    "SIGIO",
    "SIGIOT",
    "SIGKILL",
    "SIGPIPE",
    "SIGPOLL",
    "SIGPROF",
    "SIGPWR",
    "SIGQUIT",
    "SIGSEGV",
    "SIGSTKFLT",
    "SIGSTOP",
    "SIGSYS",
    "SIGTERM",
    "SIGTRAP",
    "SIGTSTP",
    "SIGTTIN",
    "SIGTTOU",
    "SIGURG",
    "SIGUSR1",
    "SIGUSR2",
    "SIGWINCH",
];

/// The number of a signal named as `lifecycle.stopSignal` names it, on
/// this system.
#[cfg(unix)]
pub(crate) fn signal_number(name: &str) -> Option<i32> {
    Some(match name {
        "SIGABRT" | "SIGIOT" => libc::SIGABRT,
        "SIGALRM" => libc::SIGALRM,
        "SIGBUS" => libc::SIGBUS,
        "SIGCHLD" | "SIGCLD" => libc::SIGCHLD,
        "SIGCONT" => libc::SIGCONT,
        "SIGFPE" => libc::SIGFPE,
        "SIGHUP" => libc::SIGHUP,
        "SIGILL" => libc::SIGILL,
        "SIGINT" => libc::SIGINT,
        "SIGIO" | "SIGPOLL" => libc::SIGIO,
        "SIGKILL" => libc::SIGKILL,
        "SIGPIPE" => libc::SIGPIPE,
        "SIGPROF" => libc::SIGPROF,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        "SIGPWR" => libc::SIGPWR,
        "SIGQUIT" => libc::SIGQUIT,
        "SIGSEGV" => libc::SIGSEGV,
        #[cfg(any(target_os = "linux", target_os = "android"))]
        "SIGSTKFLT" => libc::SIGSTKFLT,
        "SIGSTOP" => libc::SIGSTOP,
        "SIGSYS" => libc::SIGSYS,
        "SIGTERM" => libc::SIGTERM,
        "SIGTRAP" => libc::SIGTRAP,
        "SIGTSTP" => libc::SIGTSTP,
        "SIGTTIN" => libc::SIGTTIN,
        "SIGTTOU" => libc::SIGTTOU,
        "SIGURG" => libc::SIGURG,
        "SIGUSR1" => libc::SIGUSR1,
        "SIGUSR2" => libc::SIGUSR2,
        "SIGWINCH" => libc::SIGWINCH,
        _ => return None,
    })
}

/// What the kubelet reads of a service's manifest: its container's three
/// probes, its `preStop` hook, `lifecycle.stopSignal` and `env` values,
/// and the pod's `terminationGracePeriodSeconds`.
///
/// Read it from the binary itself ([`Manifest::of`],
/// [`Manifest::from_builder`]: `BINARY --lifecycle-manifest`), from the
/// manifest you deploy ([`Manifest::from_file`]) or from YAML
/// ([`Manifest::parse`], [`Manifest::parse_container`]), then give it to a
/// [`Kubelet`](crate::Kubelet).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Manifest {
    container: String,
    probes: [Option<ProbeSpec>; 3],
    termination_grace_period: Duration,
    pre_stop: Option<PreStop>,
    stop_signal: Option<String>,
    env: Vec<(String, String)>,
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
        let log_tail = tail(&log, LOG_TAIL);
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
        parse(yaml, None).map_err(|message| Error::new(ErrorKind::InvalidManifest, message))
    }

    /// Reads the container named `container` from Kubernetes YAML, one
    /// document or many (what `kubectl get -o yaml`, `helm template` or
    /// `kustomize build` print, `List`s included): the first one of that
    /// name among the containers of a Deployment, StatefulSet, DaemonSet,
    /// ReplicaSet, Job, CronJob, Pod or PodTemplate. Read as
    /// [`parse`](Self::parse) reads, with the same errors, and an error
    /// naming the containers found when none has that name.
    pub fn parse_container(yaml: &str, container: &str) -> Result<Manifest, Error> {
        parse(yaml, Some(container))
            .map_err(|message| Error::new(ErrorKind::InvalidManifest, message))
    }

    /// Reads the container named `container` from the manifest file at
    /// `path`, the one you deploy (see
    /// [`parse_container`](Self::parse_container)): a test then runs the
    /// probes, `preStop` hook and grace periods that will run in the
    /// cluster.
    ///
    /// ```no_run
    /// use lifecycle_testing::{Kubelet, Manifest};
    ///
    /// # fn main() -> Result<(), lifecycle_testing::Error> {
    /// let manifest = Manifest::from_file("deploy/deployment.yaml", "my-service")?;
    /// let kubelet = Kubelet::new(manifest).time_scale(0.1);
    /// # Ok(())
    /// # }
    /// ```
    pub fn from_file(path: impl AsRef<Path>, container: &str) -> Result<Manifest, Error> {
        let path = path.as_ref();
        let yaml = std::fs::read_to_string(path).map_err(|e| {
            Error::new(
                ErrorKind::InvalidManifest,
                format!("cannot read the manifest {}: {e}", path.display()),
            )
        })?;
        parse(&yaml, Some(container)).map_err(|message| {
            Error::new(
                ErrorKind::InvalidManifest,
                format!("{}: {message}", path.display()),
            )
        })
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

    /// The container's `lifecycle.preStop` hook, if it has one.
    pub fn pre_stop(&self) -> Option<&PreStop> {
        self.pre_stop.as_ref()
    }

    /// The container's `lifecycle.stopSignal` (`SIGQUIT`), if set: the
    /// signal a kill sends in place of SIGTERM.
    pub fn stop_signal(&self) -> Option<&str> {
        self.stop_signal.as_deref()
    }

    /// The container's `env` variables that have a `value` (those from
    /// `valueFrom` are left out).
    pub fn env(&self) -> &[(String, String)] {
        &self.env
    }
}

fn read_all(mut stream: impl Read + Send + 'static) -> std::thread::JoinHandle<String> {
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = stream.read_to_end(&mut bytes);
        String::from_utf8_lossy(&bytes).into_owned()
    })
}

/// Reads the first container (of the first pod spec), or the first one
/// named `wanted`.
fn parse(yaml: &str, wanted: Option<&str>) -> Result<Manifest, String> {
    let mut names = Vec::new();
    for document in serde_norway::Deserializer::from_str(yaml) {
        let document = RawDocument::deserialize(document)
            .map_err(|e| format!("not a Kubernetes manifest: {e}"))?;
        let mut specs = Vec::new();
        pod_specs(document, &mut specs);
        for (spec, containers) in specs {
            if wanted.is_none() && containers.is_empty() {
                return Err("a pod spec with no container".to_owned());
            }
            for container in containers {
                let name = container.name.clone().unwrap_or_default();
                if wanted.is_some_and(|wanted| wanted != name) {
                    names.push(name);
                    continue;
                }
                return manifest(&spec, container);
            }
        }
    }
    match wanted {
        None => {
            Err("no pod spec (`spec.containers` or `spec.template.spec.containers`)".to_owned())
        }
        Some(wanted) if names.is_empty() => Err(format!(
            "no container named {wanted:?}: no pod spec (`spec.containers`, \
             `spec.template.spec.containers`, `spec.jobTemplate.spec.template.spec.containers`, \
             `template.spec.containers`)"
        )),
        Some(wanted) => Err(format!(
            "no container named {wanted:?}; the containers are: {}",
            names
                .iter()
                .map(|name| format!("{name:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        )),
    }
}

fn manifest(spec: &RawSpec, container: RawContainer) -> Result<Manifest, String> {
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
        None => DEFAULT_TERMINATION_GRACE_PERIOD_SECONDS,
        Some(seconds) => u64::try_from(seconds).map_err(|_| {
            format!("terminationGracePeriodSeconds: must be at least 0, not {seconds}")
        })?,
    };
    let (pre_stop, stop_signal) = match container.lifecycle {
        None => (None, None),
        Some(lifecycle) => (
            lifecycle
                .pre_stop
                .map(pre_stop)
                .transpose()
                .map_err(|e| format!("container {name:?}: lifecycle.preStop: {e}"))?,
            lifecycle
                .stop_signal
                .map(|signal| {
                    if STOP_SIGNALS.contains(&signal.as_str()) {
                        Ok(signal)
                    } else {
                        Err(format!(
                            "container {name:?}: lifecycle.stopSignal: {signal:?} is not a \
                             signal name Kubernetes accepts (SIGTERM, SIGQUIT, SIGUSR1, …)"
                        ))
                    }
                })
                .transpose()?,
        ),
    };
    let env = container
        .env
        .into_iter()
        .flatten()
        .filter_map(|var| Some((var.name, var.value?)))
        .collect();
    Ok(Manifest {
        container: name,
        probes,
        termination_grace_period: Duration::from_secs(grace),
        pre_stop,
        stop_signal,
        env,
    })
}

fn pre_stop(raw: RawHandler) -> Result<PreStop, String> {
    for (present, handler) in [
        (raw.http_get.is_some(), "httpGet"),
        (raw.tcp_socket.is_some(), "tcpSocket"),
    ] {
        if present {
            return Err(format!(
                "{handler} hooks are not supported by the kit's kubelet (exec and sleep only)"
            ));
        }
    }
    match (raw.exec, raw.sleep) {
        (Some(_), Some(_)) => Err("two handlers (exec and sleep)".to_owned()),
        (Some(exec), None) => match exec.command {
            Some(command) if !command.is_empty() => Ok(PreStop::Exec(command)),
            _ => Err("exec.command: required".to_owned()),
        },
        (None, Some(sleep)) => {
            let seconds = sleep.seconds.unwrap_or(0);
            u64::try_from(seconds)
                .map(|seconds| PreStop::Sleep(Duration::from_secs(seconds)))
                .map_err(|_| format!("sleep.seconds: must be at least 0, not {seconds}"))
        }
        (None, None) => Err("no handler (exec or sleep)".to_owned()),
    }
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
    use probe_defaults::{FAILURE_THRESHOLD, PERIOD_SECONDS, SUCCESS_THRESHOLD, TIMEOUT_SECONDS};
    let success_threshold = field(raw.success_threshold, "successThreshold", SUCCESS_THRESHOLD)?;
    if kind != ProbeKind::Readiness && success_threshold != SUCCESS_THRESHOLD {
        return Err(format!(
            "successThreshold: must be 1 for a {kind} probe, not {success_threshold}"
        ));
    }
    let initial_delay = match raw.initial_delay_seconds {
        None => 0,
        Some(seconds) => u32::try_from(seconds)
            .map_err(|_| format!("initialDelaySeconds: must be at least 0, not {seconds}"))?,
    };
    let termination_grace_period = match raw.termination_grace_period_seconds {
        None => None,
        Some(_) if kind == ProbeKind::Readiness => {
            return Err(
                "terminationGracePeriodSeconds: must not be set for readiness probes".to_owned(),
            )
        }
        Some(seconds) if seconds > 0 => Some(Duration::from_secs(seconds.unsigned_abs())),
        Some(seconds) => {
            return Err(format!(
                "terminationGracePeriodSeconds: must be greater than 0, not {seconds}"
            ))
        }
    };
    Ok(ProbeSpec {
        termination_grace_period,
        path,
        grpc_service,
        initial_delay: Duration::from_secs(initial_delay.into()),
        period: Duration::from_secs(
            field(raw.period_seconds, "periodSeconds", PERIOD_SECONDS)?.into(),
        ),
        timeout: Duration::from_secs(
            field(raw.timeout_seconds, "timeoutSeconds", TIMEOUT_SECONDS)?.into(),
        ),
        success_threshold,
        failure_threshold: field(raw.failure_threshold, "failureThreshold", FAILURE_THRESHOLD)?,
    })
}

#[cfg(test)]
mod tests;
