//! Python's `grpcio-health-checking` (a client nobody here wrote) against
//! the testbed's probe port: `Check` on every service name and `List`, in
//! every phase (start-up held, running, draining), each answer agreeing
//! with the HTTP endpoint it maps to: 200 ↔
//! `SERVING`, 503 ↔ `NOT_SERVING`, 404 ↔ the `NOT_FOUND` status code.
//!
//! The interpreter comes from `./scripts/test` (`LIFECYCLE_PYTHON`, see
//! `lifecycle_tests::python`); without it these tests fail, saying how to
//! get it. The timing of `Watch` is in `grpc_python_watch.rs`, serially.

use std::collections::BTreeMap;
use std::time::Duration;

use lifecycle_testing::{Endpoint, Service};
use lifecycle_tests::{fixture, python, ServiceExt, CLIENT_TIMEOUT};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
/// For anything waited on: generous, for a loaded 2-core machine.
const DEADLINE: Duration = Duration::from_secs(10);
/// Long enough for every name to be asked over both protocols while the
/// service drains: two runs of the script and some forty HTTP probes.
const DRAIN_DELAY: Duration = Duration::from_secs(8);

/// Checks no endpoint has: `Check` answers them `NOT_FOUND`, as HTTP
/// answers their paths 404.
const UNKNOWN_CHECKS: [&str; 2] = ["readyz/no-such-check", "startupz/toggle"];

/// Names that are none of the documented ones, whatever HTTP does with a path
/// of that name (`/healthz` is one, but the gRPC name of `/healthz` is
/// `""`): `Check` answers them `NOT_FOUND`.
const NOT_NAMES: [&str; 5] = ["no-such-service", "healthz", "livez/", "READYZ", "/readyz"];

/// Every documented service name, for the testbed's checks as its
/// verbose HTTP answers list them, and a few unknown ones.
fn every_name(service: &Service) -> Vec<String> {
    let mut names = vec![String::new()];
    for endpoint in [Endpoint::Livez, Endpoint::Readyz, Endpoint::Startupz] {
        let name = endpoint.path().trim_start_matches('/');
        names.push(name.to_owned());
        let verbose = service.verbose(endpoint);
        assert!(!verbose.checks.is_empty(), "{name}: no checks listed");
        names.extend(
            verbose
                .checks
                .iter()
                .map(|check| format!("{name}/{}", check.name)),
        );
    }
    names.extend(UNKNOWN_CHECKS.iter().map(|name| name.to_string()));
    names
}

/// The HTTP path a service name answers like.
fn http_path(name: &str) -> String {
    if name.is_empty() {
        "/healthz".to_owned()
    } else {
        format!("/{name}")
    }
}

/// What gRPC must say for an HTTP status.
fn grpc_for(status: u16) -> &'static str {
    match status {
        200 => "SERVING",
        503 => "NOT_SERVING",
        404 => "code:NOT_FOUND",
        other => panic!("an HTTP status the mapping has no place for: {other}"),
    }
}

/// The HTTP answer to each name's path.
fn http_statuses(service: &Service, names: &[String]) -> BTreeMap<String, u16> {
    names
        .iter()
        .map(|name| {
            let path = http_path(name);
            let answer = service.probe_path(&path, CLIENT_TIMEOUT);
            let status = answer
                .status
                .unwrap_or_else(|| panic!("{path}: no answer: {answer}"));
            (name.clone(), status)
        })
        .collect()
}

/// Asks every name over HTTP, then over gRPC with Python's `Check`, then
/// over HTTP again, and asserts that each gRPC answer agrees with HTTP's
/// (which must not have changed meanwhile: the phase is steady). Returns
/// the agreed HTTP statuses.
fn assert_check_agrees(service: &Service, phase: &str) -> BTreeMap<String, u16> {
    let names = every_name(service);
    let before = http_statuses(service, &names);
    let asked: Vec<String> = names
        .iter()
        .cloned()
        .chain(NOT_NAMES.iter().map(|name| name.to_string()))
        .collect();
    let grpc = python::check(service.probe_addr(), &asked);
    let after = http_statuses(service, &names);
    assert_eq!(
        before, after,
        "{phase}: the HTTP answers changed while Python asked"
    );
    let mut disagreements = Vec::new();
    for name in &names {
        let expected = grpc_for(before[name]);
        let got = grpc.get(name).map(String::as_str).unwrap_or("(none)");
        if got != expected {
            disagreements.push(format!(
                "{name:?}: HTTP {} {}, gRPC Check {got}",
                http_path(name),
                before[name]
            ));
        }
    }
    for name in NOT_NAMES {
        let got = grpc.get(name).map(String::as_str).unwrap_or("(none)");
        if got != "code:NOT_FOUND" {
            disagreements.push(format!("{name:?}: gRPC Check {got}, not code:NOT_FOUND"));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{phase}: Python's Check disagrees with HTTP on {} of {} names:\n{}",
        disagreements.len(),
        asked.len(),
        disagreements.join("\n")
    );
    eprintln!(
        "grpc python {phase}: {} names agree ({} SERVING, {} NOT_SERVING, {} NOT_FOUND)",
        asked.len(),
        before.values().filter(|s| **s == 200).count(),
        before.values().filter(|s| **s == 503).count(),
        before.values().filter(|s| **s == 404).count() + NOT_NAMES.len(),
    );
    before
}

/// Asserts that `List` names every known name, and only those, each with
/// the status `Check` (HTTP, which it agrees with) gives it.
fn assert_list_agrees(service: &Service, phase: &str, http: &BTreeMap<String, u16>) {
    let listed = python::list(service.probe_addr());
    let expected: BTreeMap<String, String> = http
        .iter()
        .filter(|(_, status)| **status != 404)
        .map(|(name, status)| (name.clone(), grpc_for(*status).to_owned()))
        .collect();
    assert_eq!(listed, expected, "{phase}: List against Check and HTTP");
}

#[test]
fn check_and_list_agree_with_http_in_every_phase() {
    let mut service = fixture(TESTBED)
        .env("TESTBED_HOLD_STARTUP", "1")
        .env(
            "LIFECYCLE_DRAIN_DELAY_MS",
            DRAIN_DELAY.as_millis().to_string(),
        )
        .spawn()
        .unwrap();

    // Starting: start-up held by the testbed's warm_up hook.
    service.wait_for_stdout("warm_up holding", DEADLINE);
    let starting = assert_check_agrees(&service, "starting");
    assert_eq!(starting["readyz"], 503, "starting: /readyz");
    assert_eq!(starting["startupz"], 503, "starting: /startupz");
    assert_eq!(starting[""], 503, "starting: /healthz");
    assert_eq!(starting["livez"], 200, "starting: /livez");
    assert_list_agrees(&service, "starting", &starting);

    // Running.
    service.command("set release");
    service.wait_for_status("/startupz", 200, DEADLINE);
    service.wait_for_status("/readyz", 200, DEADLINE);
    let running = assert_check_agrees(&service, "running");
    for name in ["", "livez", "readyz", "startupz"] {
        assert_eq!(running[name], 200, "running: {}", http_path(name));
    }
    assert_eq!(
        running["readyz/optional-cache"], 503,
        "running: a failing non-critical check fails its own name"
    );
    assert_list_agrees(&service, "running", &running);

    // One check down: its name and the endpoint follow it.
    service.command("set down");
    service.wait_for_status("/readyz", 503, DEADLINE);
    let down = assert_check_agrees(&service, "running, toggle down");
    assert_eq!(down["readyz/toggle"], 503);
    assert_eq!(down["livez"], 200);
    service.command("clear down");
    service.wait_for_status("/readyz", 200, DEADLINE);

    // Draining: SIGTERM, the drain delay holding the service up.
    service.signal(libc::SIGTERM);
    service.wait_for_status("/readyz", 503, DEADLINE);
    // Background runners stop when the shutdown begins: the background
    // check's last result goes stale (interval + timeout + 1 s) some time
    // into the drain. Compared once it has, both protocols read the same
    // state however long the comparison takes.
    service.wait_for_status("/readyz/background", 503, DEADLINE);
    let draining = assert_check_agrees(&service, "draining");
    assert_eq!(draining[""], 503, "draining: /healthz");
    assert_eq!(draining["livez"], 200, "draining: /livez stays passing");
    assert_eq!(
        draining["startupz"], 200,
        "draining: /startupz stays passed"
    );
    assert_list_agrees(&service, "draining", &draining);
    assert!(
        service.is_running(),
        "the service stopped before the draining phase was checked: \
         the drain delay ({DRAIN_DELAY:?}) is too short for this machine"
    );

    let exit = service.wait_exit(DRAIN_DELAY + DEADLINE).unwrap();
    assert_eq!(exit.code, Some(0), "{exit:?}");
}
