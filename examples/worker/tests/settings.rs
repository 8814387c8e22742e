//! A bad setting stops the worker before it takes a job, naming the
//! variable to fix: `worker --lifecycle-preflight` (an initContainer) and
//! a start alike.

// Runs the binary to its exit with the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

use lifecycle_tests::run;

const WORKER: &str = env!("CARGO_BIN_EXE_worker");

#[test]
fn a_bad_setting_fails_the_preflight_check_naming_the_variable() {
    for (name, value, expected) in [
        (
            "WORKER_CONCURRENCY",
            "0",
            "WORKER_CONCURRENCY must be at least 1",
        ),
        (
            "JOB_MS",
            "soon",
            "JOB_MS must be a whole number, not \"soon\"",
        ),
        (
            "CONSUMER_STALL_MS",
            "1000",
            "CONSUMER_STALL_MS must be at least 4500",
        ),
        ("REDIS_URL", "http://example.invalid", "REDIS_URL: "),
    ] {
        let env = [("WORKER_ID", "w1"), (name, value)];
        let (code, stdout, stderr) = run(WORKER, &["--lifecycle-preflight"], &env);
        assert_eq!(code, Some(1), "{name}={value}: {stdout:?}\n{stderr}");
        assert!(
            stdout
                .iter()
                .any(|line| line.starts_with("[-]settings_are_valid failed: ")
                    && line.contains(expected)),
            "{name}={value}: {stdout:?}"
        );
        // A start stops at the same check, exit 1, before any job.
        let (code, _, stderr) = run(WORKER, &[], &env);
        assert_eq!(code, Some(1), "{name}={value}: {stderr}");
        assert!(stderr.contains(expected), "{name}={value}: {stderr}");
    }
}

#[test]
fn good_settings_pass_the_preflight_check_without_redis() {
    // Preflight checks only the settings: Redis may come up later.
    let env = [("WORKER_ID", "w1"), ("REDIS_URL", "redis://127.0.0.1:1")];
    let (code, stdout, stderr) = run(WORKER, &["--lifecycle-preflight"], &env);
    assert_eq!(code, Some(0), "{stdout:?}\n{stderr}");
    assert!(
        stdout.iter().any(|line| line == "[+]settings_are_valid ok"),
        "{stdout:?}"
    );
}
