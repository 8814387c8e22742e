//! The `--lifecycle-*` command-line flags, handled before the body of
//! `main` runs. Every other argument is left to the application.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use crate::probe::Endpoint;

/// What the command line asks for, read once.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Flags {
    /// The audit of manifests, asked for rightly or not: its failure is
    /// the CI job's, said on stderr, with no termination message.
    Audit(Result<CheckManifest, FlagError>),
    /// Any other run: the service, or a mode that serves nothing.
    Run(Result<Mode, FlagError>),
}

/// What a run that is no audit is for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Mode {
    /// The service itself.
    Serve,
    /// `--lifecycle-preflight`: the preflight checks only (an initContainer).
    Preflight,
    /// `--lifecycle-probe ENDPOINT`: ask the running instance (an exec probe).
    Probe(Endpoint),
    /// `--lifecycle-manifest [job]`: print the Kubernetes snippet.
    Manifest(Manifest),
}

/// What `--lifecycle-check-manifest` reads, and which container it audits.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct CheckManifest {
    pub(crate) input: Input,
    /// `--lifecycle-container NAME`; `None` takes the binary's name.
    pub(crate) container: Option<String>,
}

/// Where the manifests come from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Input {
    /// `-`.
    Stdin,
    Path(PathBuf),
}

/// Which Kubernetes snippet `--lifecycle-manifest` prints.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Manifest {
    /// A PodTemplateSpec, for a Deployment and the like.
    Pod,
    /// `--lifecycle-manifest job`: a JobSpec, for a Job or a CronJob.
    Job,
}

/// The argument `--lifecycle-manifest` takes.
const JOB: &str = "job";

pub(crate) const PREFLIGHT: &str = "--lifecycle-preflight";
pub(crate) const PROBE: &str = "--lifecycle-probe";
const MANIFEST: &str = "--lifecycle-manifest";
const CHECK_MANIFEST: &str = "--lifecycle-check-manifest";
const CONTAINER: &str = "--lifecycle-container";
/// The value of `--lifecycle-check-manifest` that reads stdin.
const STDIN: &str = "-";
/// `livez|readyz|startupz`.
fn probe_choices(separator: &str) -> String {
    Endpoint::PROBED.map(Endpoint::as_str).join(separator)
}

fn usage() -> String {
    format!(
        "the lifecycle flags are {PREFLIGHT}, {PROBE} {}, {MANIFEST} [{JOB}] and {CHECK_MANIFEST} PATH|{STDIN} [{CONTAINER} NAME]",
        probe_choices("|")
    )
}

/// A `--lifecycle-*` flag given wrongly, as the error names it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum FlagError {
    /// `--lifecycle-preflight=…`, as given.
    PreflightValue(String),
    /// `--lifecycle-manifest` with a value other than `job`, named as
    /// given: `--lifecycle-manifest=jobs` or `--lifecycle-manifest "jobs"`.
    ManifestValue(String),
    /// `--lifecycle-check-manifest=`, as given.
    EmptyManifestPath(String),
    /// `--lifecycle-check-manifest` with no value.
    NoManifestPath,
    /// `--lifecycle-container` with no name, as given.
    NoContainer(String),
    /// `--lifecycle-container NAME` a second time.
    ContainerTwice(String),
    /// `--lifecycle-container NAME` without `--lifecycle-check-manifest`.
    ContainerWithoutAudit(String),
    /// `--lifecycle-probe` with no endpoint or an unknown one.
    ProbeEndpoint(String),
    /// More than one of the flags that say what the run is for.
    SeveralModes,
}

impl fmt::Display for FlagError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            FlagError::PreflightValue(given) => {
                write!(f, "invalid flag {given}: {PREFLIGHT} takes no value")
            }
            FlagError::ManifestValue(given) => write!(
                f,
                "invalid flag {given}: {MANIFEST} takes no value (a pod template) or {JOB} (a JobSpec)"
            ),
            FlagError::EmptyManifestPath(given) => write!(
                f,
                "invalid flag {given}: {CHECK_MANIFEST} takes the manifest's path, or {STDIN} for stdin"
            ),
            FlagError::NoManifestPath => write!(
                f,
                "invalid flag {CHECK_MANIFEST}: it takes the manifest's path, or {STDIN} for stdin (a path that starts with a dash as {CHECK_MANIFEST}=PATH)"
            ),
            FlagError::NoContainer(given) => write!(
                f,
                "invalid flag {given}: {CONTAINER} takes the name of the container to check"
            ),
            FlagError::ContainerTwice(name) => {
                write!(f, "invalid flag {CONTAINER} {name:?}: give {CONTAINER} once")
            }
            FlagError::ContainerWithoutAudit(name) => write!(
                f,
                "invalid flag {CONTAINER} {name:?}: it names the container that {CHECK_MANIFEST} checks, and goes with that flag only"
            ),
            FlagError::ProbeEndpoint(value) => write!(
                f,
                "invalid flag {PROBE} {value:?}: expected one of {}",
                probe_choices(", ")
            ),
            FlagError::SeveralModes => {
                write!(f, "give one lifecycle flag at a time: {}", usage())
            }
        }
    }
}

/// Reads the arguments (the program name first, as from
/// `std::env::args_os()`). Only the five flags are lifecycle's; every
/// other argument (another `--lifecycle-…` included, and everything after
/// a `--`) is the application's, and left alone.
pub(crate) fn parse(args: impl IntoIterator<Item = OsString>) -> Flags {
    let args: Vec<OsString> = args.into_iter().collect();
    match read(&args) {
        Ok(Picked::Audit(check)) => Flags::Audit(Ok(check)),
        Ok(Picked::Mode(mode)) => Flags::Run(Ok(mode)),
        Err(error) if asks_for_audit(&args) => Flags::Audit(Err(error)),
        Err(error) => Flags::Run(Err(error)),
    }
}

/// Whether the arguments ask for the audit, rightly or not:
/// `--lifecycle-check-manifest` or `--lifecycle-container` before any
/// `--`.
fn asks_for_audit(args: &[OsString]) -> bool {
    args.iter()
        .skip(1)
        .take_while(|arg| *arg != "--")
        .any(|arg| {
            let arg = arg.to_string_lossy();
            [CHECK_MANIFEST, CONTAINER].iter().any(|flag| {
                arg.strip_prefix(flag)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
            })
        })
}

/// What the arguments read well pick.
enum Picked {
    Mode(Mode),
    Audit(CheckManifest),
}

/// The arguments after the program name, each flag's value taken with it.
type Args<'a> = std::iter::Peekable<std::iter::Cloned<std::slice::Iter<'a, OsString>>>;

/// What one flag asks for: a run of its own, or the container the audit
/// checks.
enum Asked {
    Mode(Mode),
    Audit(Input),
    Container(String),
}

fn read(args: &[OsString]) -> Result<Picked, FlagError> {
    let mut picked = Vec::new();
    let mut container = None;
    let mut rest: Args<'_> = args.get(1..).unwrap_or_default().iter().cloned().peekable();
    while let Some(arg) = rest.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg, None),
        };
        let asked = match flag {
            PREFLIGHT if inline_value.is_some() => {
                return Err(FlagError::PreflightValue(arg.to_owned()))
            }
            PREFLIGHT => Asked::Mode(Mode::Preflight),
            MANIFEST => Asked::Mode(Mode::Manifest(manifest(arg, inline_value, &mut rest)?)),
            CHECK_MANIFEST => Asked::Audit(check_manifest(arg, inline_value, &mut rest)?),
            CONTAINER => Asked::Container(container_name(arg, inline_value, &mut rest)?),
            PROBE => Asked::Mode(Mode::Probe(probe(inline_value, &mut rest)?)),
            _ => continue,
        };
        match asked {
            Asked::Container(name) if container.is_some() => {
                return Err(FlagError::ContainerTwice(name))
            }
            Asked::Container(name) => container = Some(name),
            Asked::Mode(mode) => picked.push(Picked::Mode(mode)),
            Asked::Audit(input) => picked.push(Picked::Audit(CheckManifest {
                input,
                container: None,
            })),
        }
    }
    let picked = match picked.len() {
        0 => Picked::Mode(Mode::Serve),
        1 => picked.remove(0),
        _ => return Err(FlagError::SeveralModes),
    };
    match (picked, container) {
        (Picked::Audit(check), container) => {
            Ok(Picked::Audit(CheckManifest { container, ..check }))
        }
        (picked, None) => Ok(picked),
        (_, Some(name)) => Err(FlagError::ContainerWithoutAudit(name)),
    }
}

/// `--lifecycle-manifest`'s value is optional: `--lifecycle-manifest=job`,
/// or the next argument unless it is another flag (or `--`). Anything else
/// there is an error, not an argument left to the application: the
/// application does not run in this mode, and a typo (`jobs`) must not
/// print a pod template instead.
fn manifest(
    arg: &str,
    inline_value: Option<String>,
    rest: &mut Args<'_>,
) -> Result<Manifest, FlagError> {
    let inline = inline_value.is_some();
    let value = inline_value.or_else(|| {
        rest.next_if(|next| next.to_str().is_none_or(|next| !next.starts_with('-')))
            .map(|next| next.to_string_lossy().into_owned())
    });
    match value.as_deref() {
        None => Ok(Manifest::Pod),
        Some(JOB) => Ok(Manifest::Job),
        Some(_) if inline => Err(FlagError::ManifestValue(arg.to_owned())),
        Some(value) => Err(FlagError::ManifestValue(format!("{MANIFEST} {value:?}"))),
    }
}

/// `--lifecycle-check-manifest`'s value is required: the path (`=PATH` may
/// start with a dash), or `-` for stdin. A flag in its place is a
/// forgotten path, not a file named `--lifecycle-container`.
fn check_manifest(
    arg: &str,
    inline_value: Option<String>,
    rest: &mut Args<'_>,
) -> Result<Input, FlagError> {
    let value = match inline_value {
        Some(value) => Some(OsString::from(value)),
        None => rest.next_if(|next| {
            next == STDIN || next.to_str().is_none_or(|next| !next.starts_with('-'))
        }),
    };
    match value {
        Some(value) if value.is_empty() => Err(FlagError::EmptyManifestPath(arg.to_owned())),
        Some(value) if value == STDIN => Ok(Input::Stdin),
        Some(value) => Ok(Input::Path(PathBuf::from(value))),
        None => Err(FlagError::NoManifestPath),
    }
}

/// `--lifecycle-container NAME`: a name that is no flag.
fn container_name(
    arg: &str,
    inline_value: Option<String>,
    rest: &mut Args<'_>,
) -> Result<String, FlagError> {
    let value = inline_value.or_else(|| {
        rest.next_if(|next| next.to_str().is_some_and(|next| !next.starts_with('-')))
            .and_then(|next| next.into_string().ok())
    });
    match value {
        Some(name) if !name.is_empty() => Ok(name),
        _ => Err(FlagError::NoContainer(arg.to_owned())),
    }
}

/// `--lifecycle-probe ENDPOINT`: whatever follows is the endpoint.
fn probe(inline_value: Option<String>, rest: &mut Args<'_>) -> Result<Endpoint, FlagError> {
    let value = inline_value
        .or_else(|| rest.next().and_then(|v| v.into_string().ok()))
        .unwrap_or_default();
    Endpoint::parse_probed(&value).ok_or(FlagError::ProbeEndpoint(value))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Flags {
        super::parse(
            std::iter::once("service")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    fn run(mode: Mode) -> Flags {
        Flags::Run(Ok(mode))
    }

    /// The error's text, for a run whose flags are wrong.
    fn error(args: &[&str]) -> String {
        match parse(args) {
            Flags::Run(Err(error)) | Flags::Audit(Err(error)) => error.to_string(),
            flags => panic!("{args:?} read as {flags:?}"),
        }
    }

    #[test]
    fn flags_pick_the_mode_and_leave_other_arguments_alone() {
        assert_eq!(parse(&["--port", "9000", "-v"]), run(Mode::Serve));
        assert_eq!(
            parse(&["--lifecycle-preflight", "--port", "1"]),
            run(Mode::Preflight)
        );
        assert_eq!(
            parse(&["--lifecycle-probe", "readyz"]),
            run(Mode::Probe(Endpoint::Readyz))
        );
        assert_eq!(
            parse(&["--lifecycle-probe=livez"]),
            run(Mode::Probe(Endpoint::Livez))
        );
        assert_eq!(
            parse(&["--lifecycle-manifest"]),
            run(Mode::Manifest(Manifest::Pod))
        );
        assert_eq!(parse(&["--", "--lifecycle-manifest"]), run(Mode::Serve));
        assert_eq!(
            parse(&["--lifecycle-v2", "--message=--lifecycle-preflight"]),
            run(Mode::Serve)
        );
    }

    #[test]
    fn the_manifest_flag_takes_job_as_its_optional_value() {
        let pod = run(Mode::Manifest(Manifest::Pod));
        let job = run(Mode::Manifest(Manifest::Job));
        assert_eq!(parse(&["--lifecycle-manifest", "job"]), job);
        assert_eq!(parse(&["--lifecycle-manifest=job"]), job);
        assert_eq!(parse(&["--port", "1", "--lifecycle-manifest", "job"]), job);
        // Another flag or `--` after it is no value.
        assert_eq!(parse(&["--lifecycle-manifest", "--port", "1"]), pod);
        assert_eq!(parse(&["--lifecycle-manifest", "--", "job"]), pod);
        assert_eq!(parse(&["--lifecycle-manifest", "-v"]), pod);
        // `job` elsewhere is the application's.
        assert_eq!(parse(&["job", "--lifecycle-manifest"]), pod);
        error(&["--lifecycle-manifest", "job", "--lifecycle-preflight"]);
    }

    #[test]
    fn an_unknown_manifest_value_is_an_error_as_given() {
        for (args, named) in [
            (
                &["--lifecycle-manifest", "jobs"][..],
                "--lifecycle-manifest \"jobs\"",
            ),
            (
                &["--lifecycle-manifest", "pod"][..],
                "--lifecycle-manifest \"pod\"",
            ),
            (
                &["--lifecycle-manifest", "JOB"][..],
                "--lifecycle-manifest \"JOB\"",
            ),
            (
                &["--lifecycle-manifest=yes"][..],
                "--lifecycle-manifest=yes",
            ),
            (&["--lifecycle-manifest="][..], "--lifecycle-manifest="),
        ] {
            let error = error(args);
            assert_eq!(
                error,
                format!("invalid flag {named}: --lifecycle-manifest takes no value (a pod template) or job (a JobSpec)"),
                "{args:?}"
            );
        }
    }

    #[test]
    fn bad_flags_are_errors_naming_the_flag() {
        assert!(error(&["--lifecycle-probe", "healthz"]).contains("--lifecycle-probe \"healthz\""));
        error(&["--lifecycle-probe"]);
        error(&["--lifecycle-preflight", "--lifecycle-manifest"]);
    }

    fn check(input: Input, container: Option<&str>) -> Flags {
        Flags::Audit(Ok(CheckManifest {
            input,
            container: container.map(str::to_owned),
        }))
    }

    #[test]
    fn a_run_asks_for_the_audit_by_either_of_its_flags_before_a_double_dash() {
        let asks = |args: &[&str]| {
            let args: Vec<OsString> = std::iter::once("svc")
                .chain(args.iter().copied())
                .map(OsString::from)
                .collect();
            asks_for_audit(&args)
        };
        assert!(asks(&["--lifecycle-check-manifest"]));
        assert!(asks(&["--lifecycle-check-manifest=x.yaml"]));
        assert!(asks(&["--port", "1", "--lifecycle-container", "web"]));
        assert!(asks(&["--lifecycle-container=web"]));
        assert!(!asks(&[]));
        assert!(!asks(&["--lifecycle-manifest"]));
        assert!(!asks(&["--lifecycle-containers"]));
        assert!(!asks(&["--", "--lifecycle-check-manifest"]));
        // A run that asks for the audit wrongly is still the audit's.
        assert!(matches!(
            parse(&["--lifecycle-container", "web"]),
            Flags::Audit(Err(FlagError::ContainerWithoutAudit(_)))
        ));
        assert!(matches!(
            parse(&["--lifecycle-probe"]),
            Flags::Run(Err(FlagError::ProbeEndpoint(_)))
        ));
    }

    #[test]
    fn the_check_flag_takes_a_path_or_stdin_and_the_container_flag_goes_with_it() {
        let path = || Input::Path(PathBuf::from("deploy.yaml"));
        assert_eq!(
            parse(&["--lifecycle-check-manifest", "deploy.yaml"]),
            check(path(), None)
        );
        assert_eq!(
            parse(&["--lifecycle-check-manifest=deploy.yaml"]),
            check(path(), None)
        );
        assert_eq!(
            parse(&["--lifecycle-check-manifest", "-"]),
            check(Input::Stdin, None)
        );
        // `=` carries a path that starts with a dash.
        assert_eq!(
            parse(&["--lifecycle-check-manifest=-x.yaml"]),
            check(Input::Path(PathBuf::from("-x.yaml")), None)
        );
        for args in [
            &[
                "--lifecycle-check-manifest",
                "-",
                "--lifecycle-container",
                "web",
            ][..],
            &[
                "--lifecycle-container=web",
                "--lifecycle-check-manifest",
                "-",
            ][..],
        ] {
            assert_eq!(parse(args), check(Input::Stdin, Some("web")), "{args:?}");
        }
    }

    #[test]
    fn check_flag_mistakes_are_errors_naming_the_flag() {
        for args in [
            &["--lifecycle-check-manifest"][..],
            &["--lifecycle-check-manifest", "--lifecycle-container", "web"][..],
            &["--lifecycle-check-manifest="][..],
        ] {
            let error = error(args);
            assert!(
                error.starts_with("invalid flag --lifecycle-check-manifest")
                    && error.contains("path, or - for stdin"),
                "{args:?}: {error}"
            );
        }
        let alone = error(&["--lifecycle-container", "web"]);
        assert_eq!(
            alone,
            "invalid flag --lifecycle-container \"web\": it names the container that --lifecycle-check-manifest checks, and goes with that flag only"
        );
        error(&["--lifecycle-manifest", "--lifecycle-container", "web"]);
        for args in [
            &["--lifecycle-check-manifest", "-", "--lifecycle-container"][..],
            &["--lifecycle-check-manifest", "-", "--lifecycle-container="][..],
        ] {
            let error = error(args);
            assert!(
                error.starts_with("invalid flag --lifecycle-container"),
                "{args:?}: {error}"
            );
        }
        let twice = error(&[
            "--lifecycle-check-manifest",
            "-",
            "--lifecycle-container=a",
            "--lifecycle-container=b",
        ]);
        assert!(twice.contains("give --lifecycle-container once"), "{twice}");
        error(&["--lifecycle-check-manifest", "-", "--lifecycle-manifest"]);
    }
}
