//! lifecycle handles only its own `--lifecycle-*` flags and leaves every
//! other argument to the application; without lifecycle's logging, its
//! errors still reach stderr.

// Runs the binary to its exit with the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

use std::time::Duration;

use lifecycle_testing::Service;
use lifecycle_tests::run;

const CLI_ARGS: &str = env!("CARGO_BIN_EXE_cli-args");
const DEADLINE: Duration = Duration::from_secs(15);

/// Runs the service with `args` until its main returns: (exit code, stdout
/// lines, log).
fn serve(args: &[&str]) -> (Option<i32>, Vec<String>, Vec<String>) {
    let mut service = Service::builder(CLI_ARGS).args(args).spawn().unwrap();
    let exit = service.wait_exit(DEADLINE).unwrap();
    (exit.code, service.stdout(), service.log())
}

#[test]
fn the_application_keeps_its_own_arguments() {
    let (code, stdout, log) = serve(&["--message", "hi", "--repeat", "2"]);
    assert_eq!(code, Some(0), "{log:?}");
    assert_eq!(stdout, ["message=hi", "message=hi"]);

    // lifecycle's flags are handled before main (and clap) run; cli-args
    // has no preflight checks, so nothing to print. No probe server
    // either: run to its exit.
    let (code, stdout, _) = run(CLI_ARGS, &["--message", "hi", "--lifecycle-preflight"], &[]);
    assert_eq!((code, stdout.len()), (Some(0), 0));

    // Any other argument is the application's, `--lifecycle-…` or not.
    let (code, stdout, _) = serve(&["--message=--lifecycle-v2"]);
    assert_eq!(
        (code, stdout),
        (Some(0), vec!["message=--lifecycle-v2".to_string()])
    );
    let (code, _, log) = serve(&["--lifecycle-v2"]);
    assert_eq!(code, Some(2), "clap's own exit code for a bad argument");
    assert!(
        log.iter()
            .any(|line| line.contains("unexpected argument '--lifecycle-v2'")),
        "{log:?}"
    );
}

#[test]
fn without_lifecycle_logging_errors_still_reach_stderr() {
    // cli-args says `tracing = false`. An invalid flag stops it before it
    // serves probes: run to its exit.
    let (code, stdout, stderr) = run(CLI_ARGS, &["--lifecycle-manifest=yes"], &[]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert_eq!(
        stderr,
        "error: exiting with code 2: invalid flag --lifecycle-manifest=yes: --lifecycle-manifest takes no value (a pod template) or job (a JobSpec)"
    );
}
