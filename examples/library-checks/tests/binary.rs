//! The binary links the library with one line, and with it the library's
//! checks and hooks: its liveness check answers, and its start-up hook
//! ran before it did.

use lifecycle_testing::probe::DEFAULT_TIMEOUT;
use lifecycle_testing::Service;

#[test]
fn the_binary_runs_the_librarys_checks_and_hooks() {
    let mut service = Service::builder(env!("CARGO_BIN_EXE_library-checks"))
        .env("RUST_LOG", "info")
        .start()
        .unwrap();
    let live = service.probe_path("/livez/library_worker?verbose", DEFAULT_TIMEOUT);
    // `connected=true`: set by the library's own on_startup hook.
    assert_eq!(
        (live.status, live.body.as_str()),
        (
            Some(200),
            "[+]library_worker ok (connected=true)\nlivez check passed\n"
        ),
        "{live}"
    );
    // The kit's graceful stop is a signal: Unix only. On Windows it can
    // only kill the service.
    #[cfg(unix)]
    {
        let stopped = service.stop(lifecycle_testing::Stop::grace(
            std::time::Duration::from_secs(15),
        ));
        assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    }
    #[cfg(not(unix))]
    service.kill().unwrap();
}
