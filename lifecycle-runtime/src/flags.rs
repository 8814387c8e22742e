//! The `--lifecycle-*` command-line flags, handled before the body of
//! `main` runs. Every other argument is left to the application.

use std::ffi::OsString;

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
    /// `--lifecycle-manifest`: print the Kubernetes snippet.
    Manifest,
}

const PREFLIGHT: &str = "--lifecycle-preflight";
const PROBE: &str = "--lifecycle-probe";
const MANIFEST: &str = "--lifecycle-manifest";
/// `livez|readyz|startupz`.
fn probe_choices(separator: &str) -> String {
    Endpoint::PROBED.map(Endpoint::name).join(separator)
}

fn usage() -> String {
    format!(
        "the lifecycle flags are {PREFLIGHT}, {PROBE} {} and {MANIFEST}",
        probe_choices("|")
    )
}

/// Reads the mode from the arguments (the program name first, as from
/// `std::env::args_os()`). Only the three flags are lifecycle's; every
/// other argument (another `--lifecycle-…` included, and everything after
/// a `--`) is the application's, and left alone.
pub(crate) fn mode(args: impl IntoIterator<Item = OsString>) -> Result<Mode, String> {
    let mut modes = Vec::new();
    let mut args = args.into_iter().skip(1);
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
            PREFLIGHT | MANIFEST if inline_value.is_some() => {
                return Err(format!("invalid flag {arg}: {flag} takes no value"))
            }
            PREFLIGHT => Mode::Preflight,
            MANIFEST => Mode::Manifest,
            PROBE => {
                let value = inline_value
                    .or_else(|| args.next().and_then(|v| v.into_string().ok()))
                    .unwrap_or_default();
                match Endpoint::PROBED.into_iter().find(|e| e.name() == value) {
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
    match modes.len() {
        0 => Ok(Mode::Serve),
        1 => Ok(modes.remove(0)),
        _ => Err(format!("give one lifecycle flag at a time: {}", usage())),
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
        assert_eq!(parse(&["--lifecycle-manifest"]), Ok(Mode::Manifest));
        assert_eq!(parse(&["--", "--lifecycle-manifest"]), Ok(Mode::Serve));
        assert_eq!(
            parse(&["--lifecycle-v2", "--message=--lifecycle-preflight"]),
            Ok(Mode::Serve)
        );
    }

    #[test]
    fn bad_flags_are_errors_naming_the_flag() {
        assert!(parse(&["--lifecycle-probe", "healthz"])
            .unwrap_err()
            .contains("--lifecycle-probe \"healthz\""));
        assert!(parse(&["--lifecycle-probe"]).is_err());
        assert!(parse(&["--lifecycle-preflight", "--lifecycle-manifest"]).is_err());
    }
}
