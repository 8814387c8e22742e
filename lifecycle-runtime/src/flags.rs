//! The `--lifecycle-*` command-line flags, handled before the body of
//! `main` runs. Every other argument is left to the application.

use std::ffi::OsString;
use std::path::PathBuf;

use crate::probe::Endpoint;

/// What this run of the binary is for.
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
    /// `--lifecycle-check-manifest PATH|-`: audit the user's manifests
    /// against this binary.
    CheckManifest(CheckManifest),
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

const PREFLIGHT: &str = "--lifecycle-preflight";
const PROBE: &str = "--lifecycle-probe";
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

/// Whether the arguments (the program name first) ask for the audit,
/// rightly or not: `--lifecycle-check-manifest` or `--lifecycle-container`
/// before any `--`. A flag error of such a run is the CI job's, and
/// writes no termination message.
pub(crate) fn asks_for_audit(args: impl IntoIterator<Item = OsString>) -> bool {
    args.into_iter()
        .skip(1)
        .take_while(|arg| arg != "--")
        .any(|arg| {
            let arg = arg.to_string_lossy();
            [CHECK_MANIFEST, CONTAINER].iter().any(|flag| {
                arg.strip_prefix(flag)
                    .is_some_and(|rest| rest.is_empty() || rest.starts_with('='))
            })
        })
}

/// Reads the mode from the arguments (the program name first, as from
/// `std::env::args_os()`). Only the five flags are lifecycle's; every
/// other argument (another `--lifecycle-…` included, and everything after
/// a `--`) is the application's, and left alone.
pub(crate) fn mode(args: impl IntoIterator<Item = OsString>) -> Result<Mode, String> {
    let mut modes = Vec::new();
    let mut container = None;
    let mut args = args.into_iter().skip(1).peekable();
    while let Some(arg) = args.next() {
        let Some(arg) = arg.to_str() else { continue };
        if arg == "--" {
            break;
        }
        let (flag, inline_value) = match arg.split_once('=') {
            Some((flag, value)) => (flag, Some(value.to_owned())),
            None => (arg, None),
        };
        let mode = match flag {
            PREFLIGHT if inline_value.is_some() => {
                return Err(format!("invalid flag {arg}: {flag} takes no value"))
            }
            PREFLIGHT => Mode::Preflight,
            // The value is optional: `--lifecycle-manifest=job`, or the
            // next argument unless it is another flag (or `--`). Anything
            // else there is an error, not an argument left to the
            // application: the application does not run in this mode, and
            // a typo (`jobs`) must not print a pod template instead.
            MANIFEST => {
                // Named as it was given: `--lifecycle-manifest=jobs` or
                // `--lifecycle-manifest "jobs"`.
                let inline = inline_value.is_some();
                let value = inline_value.or_else(|| {
                    args.next_if(|next| next.to_str().is_none_or(|next| !next.starts_with('-')))
                        .map(|next| next.to_string_lossy().into_owned())
                });
                match value.as_deref() {
                    None => Mode::Manifest(Manifest::Pod),
                    Some(JOB) => Mode::Manifest(Manifest::Job),
                    Some(value) => {
                        let given = if inline {
                            arg.to_owned()
                        } else {
                            format!("{MANIFEST} {value:?}")
                        };
                        return Err(format!(
                            "invalid flag {given}: {MANIFEST} takes no value (a pod template) or {JOB} (a JobSpec)"
                        ));
                    }
                }
            }
            // The value is required: the path (`=PATH` may start with a
            // dash), or `-` for stdin. A flag in its place is a forgotten
            // path, not a file named `--lifecycle-container`.
            CHECK_MANIFEST => {
                let value = match inline_value {
                    Some(value) => Some(OsString::from(value)),
                    None => args.next_if(|next| {
                        next == STDIN || next.to_str().is_none_or(|next| !next.starts_with('-'))
                    }),
                };
                match value {
                    Some(value) if value.is_empty() => {
                        return Err(format!(
                            "invalid flag {arg}: {CHECK_MANIFEST} takes the manifest's path, or {STDIN} for stdin"
                        ))
                    }
                    Some(value) => Mode::CheckManifest(CheckManifest {
                        input: if value == STDIN {
                            Input::Stdin
                        } else {
                            Input::Path(PathBuf::from(value))
                        },
                        container: None,
                    }),
                    None => {
                        return Err(format!(
                            "invalid flag {CHECK_MANIFEST}: it takes the manifest's path, or {STDIN} for stdin (a path that starts with a dash as {CHECK_MANIFEST}=PATH)"
                        ))
                    }
                }
            }
            CONTAINER => {
                let value = inline_value.or_else(|| {
                    args.next_if(|next| next.to_str().is_some_and(|next| !next.starts_with('-')))
                        .and_then(|next| next.into_string().ok())
                });
                match value {
                    Some(name) if !name.is_empty() && container.is_none() => {
                        container = Some(name);
                        continue;
                    }
                    Some(name) if !name.is_empty() => {
                        return Err(format!(
                            "invalid flag {CONTAINER} {name:?}: give {CONTAINER} once"
                        ))
                    }
                    _ => {
                        return Err(format!(
                        "invalid flag {arg}: {CONTAINER} takes the name of the container to check"
                    ))
                    }
                }
            }
            PROBE => {
                let value = inline_value
                    .or_else(|| args.next().and_then(|v| v.into_string().ok()))
                    .unwrap_or_default();
                match Endpoint::parse_probed(&value) {
                    Some(endpoint) => Mode::Probe(endpoint),
                    None => {
                        return Err(format!(
                            "invalid flag {PROBE} {value:?}: expected one of {}",
                            probe_choices(", ")
                        ))
                    }
                }
            }
            _ => continue,
        };
        modes.push(mode);
    }
    let mode = match modes.len() {
        0 => Mode::Serve,
        1 => modes.remove(0),
        _ => return Err(format!("give one lifecycle flag at a time: {}", usage())),
    };
    match (mode, container) {
        (Mode::CheckManifest(check), container) => Ok(Mode::CheckManifest(CheckManifest {
            container,
            ..check
        })),
        (mode, None) => Ok(mode),
        (_, Some(name)) => Err(format!(
            "invalid flag {CONTAINER} {name:?}: it names the container that {CHECK_MANIFEST} checks, and goes with that flag only"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Mode, String> {
        mode(
            std::iter::once("service")
                .chain(args.iter().copied())
                .map(OsString::from),
        )
    }

    #[test]
    fn flags_pick_the_mode_and_leave_other_arguments_alone() {
        assert_eq!(parse(&["--port", "9000", "-v"]), Ok(Mode::Serve));
        assert_eq!(
            parse(&["--lifecycle-preflight", "--port", "1"]),
            Ok(Mode::Preflight)
        );
        assert_eq!(
            parse(&["--lifecycle-probe", "readyz"]),
            Ok(Mode::Probe(Endpoint::Readyz))
        );
        assert_eq!(
            parse(&["--lifecycle-probe=livez"]),
            Ok(Mode::Probe(Endpoint::Livez))
        );
        assert_eq!(
            parse(&["--lifecycle-manifest"]),
            Ok(Mode::Manifest(Manifest::Pod))
        );
        assert_eq!(parse(&["--", "--lifecycle-manifest"]), Ok(Mode::Serve));
        assert_eq!(
            parse(&["--lifecycle-v2", "--message=--lifecycle-preflight"]),
            Ok(Mode::Serve)
        );
    }

    #[test]
    fn the_manifest_flag_takes_job_as_its_optional_value() {
        let pod = Ok(Mode::Manifest(Manifest::Pod));
        let job = Ok(Mode::Manifest(Manifest::Job));
        assert_eq!(parse(&["--lifecycle-manifest", "job"]), job);
        assert_eq!(parse(&["--lifecycle-manifest=job"]), job);
        assert_eq!(parse(&["--port", "1", "--lifecycle-manifest", "job"]), job);
        // Another flag or `--` after it is no value.
        assert_eq!(parse(&["--lifecycle-manifest", "--port", "1"]), pod);
        assert_eq!(parse(&["--lifecycle-manifest", "--", "job"]), pod);
        assert_eq!(parse(&["--lifecycle-manifest", "-v"]), pod);
        // `job` elsewhere is the application's.
        assert_eq!(parse(&["job", "--lifecycle-manifest"]), pod);
        assert!(parse(&["--lifecycle-manifest", "job", "--lifecycle-preflight"]).is_err());
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
            let error = parse(args).unwrap_err();
            assert_eq!(
                error,
                format!("invalid flag {named}: --lifecycle-manifest takes no value (a pod template) or job (a JobSpec)"),
                "{args:?}"
            );
        }
    }

    #[test]
    fn bad_flags_are_errors_naming_the_flag() {
        assert!(parse(&["--lifecycle-probe", "healthz"])
            .unwrap_err()
            .contains("--lifecycle-probe \"healthz\""));
        assert!(parse(&["--lifecycle-probe"]).is_err());
        assert!(parse(&["--lifecycle-preflight", "--lifecycle-manifest"]).is_err());
    }

    fn check(input: Input, container: Option<&str>) -> Result<Mode, String> {
        Ok(Mode::CheckManifest(CheckManifest {
            input,
            container: container.map(str::to_owned),
        }))
    }

    #[test]
    fn a_run_asks_for_the_audit_by_either_of_its_flags_before_a_double_dash() {
        let asks = |args: &[&str]| {
            asks_for_audit(
                std::iter::once("svc")
                    .chain(args.iter().copied())
                    .map(OsString::from),
            )
        };
        assert!(asks(&["--lifecycle-check-manifest"]));
        assert!(asks(&["--lifecycle-check-manifest=x.yaml"]));
        assert!(asks(&["--port", "1", "--lifecycle-container", "web"]));
        assert!(asks(&["--lifecycle-container=web"]));
        assert!(!asks(&[]));
        assert!(!asks(&["--lifecycle-manifest"]));
        assert!(!asks(&["--lifecycle-containers"]));
        assert!(!asks(&["--", "--lifecycle-check-manifest"]));
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
            let error = parse(args).unwrap_err();
            assert!(
                error.starts_with("invalid flag --lifecycle-check-manifest")
                    && error.contains("path, or - for stdin"),
                "{args:?}: {error}"
            );
        }
        let alone = parse(&["--lifecycle-container", "web"]).unwrap_err();
        assert_eq!(
            alone,
            "invalid flag --lifecycle-container \"web\": it names the container that --lifecycle-check-manifest checks, and goes with that flag only"
        );
        assert!(parse(&["--lifecycle-manifest", "--lifecycle-container", "web"]).is_err());
        for args in [
            &["--lifecycle-check-manifest", "-", "--lifecycle-container"][..],
            &["--lifecycle-check-manifest", "-", "--lifecycle-container="][..],
        ] {
            let error = parse(args).unwrap_err();
            assert!(
                error.starts_with("invalid flag --lifecycle-container"),
                "{args:?}: {error}"
            );
        }
        let twice = parse(&[
            "--lifecycle-check-manifest",
            "-",
            "--lifecycle-container=a",
            "--lifecycle-container=b",
        ])
        .unwrap_err();
        assert!(twice.contains("give --lifecycle-container once"), "{twice}");
        assert!(parse(&["--lifecycle-check-manifest", "-", "--lifecycle-manifest"]).is_err());
    }
}
