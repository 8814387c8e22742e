//! lifecycle handles only its own `--lifecycle-*` flags and leaves every
//! other argument to the application; without lifecycle's logging, its
//! errors still reach stderr.

use lifecycle_tests::run;

const CLI_ARGS: &str = env!("CARGO_BIN_EXE_cli-args");

#[test]
fn the_application_keeps_its_own_arguments() {
    let (code, stdout, stderr) = run(CLI_ARGS, &["--message", "hi", "--repeat", "2"], &[]);
    assert_eq!(code, Some(0), "{stderr}");
    assert_eq!(stdout, ["message=hi", "message=hi"]);

    // lifecycle's flags are handled before main (and clap) run; cli-args
    // has no preflight checks, so nothing to print.
    let (code, stdout, _) = run(CLI_ARGS, &["--message", "hi", "--lifecycle-preflight"], &[]);
    assert_eq!((code, stdout.len()), (Some(0), 0));

    // Any other argument is the application's, `--lifecycle-…` or not.
    let (code, stdout, _) = run(CLI_ARGS, &["--message=--lifecycle-v2"], &[]);
    assert_eq!(
        (code, stdout),
        (Some(0), vec!["message=--lifecycle-v2".to_string()])
    );
    let (code, _, stderr) = run(CLI_ARGS, &["--lifecycle-v2"], &[]);
    assert_eq!(code, Some(2), "clap's own exit code for a bad argument");
    assert!(
        stderr.contains("unexpected argument '--lifecycle-v2'"),
        "{stderr}"
    );
}

#[test]
fn without_lifecycle_logging_errors_still_reach_stderr() {
    // cli-args says `tracing = false`.
    let (code, stdout, stderr) = run(CLI_ARGS, &["--lifecycle-manifest=yes"], &[]);
    assert_eq!(code, Some(2));
    assert!(stdout.is_empty());
    assert_eq!(
        stderr,
        "error: exiting with code 2: invalid flag --lifecycle-manifest=yes: --lifecycle-manifest takes no value"
    );
}
