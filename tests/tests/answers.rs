//! What probe answers carry when checks misbehave or the peer is not to be
//! trusted: bounded whatever the checks return (a reason or a detail value
//! at most 512 bytes, an answer at most 10 KiB with its verdict last), one
//! line per check whatever its reason holds, and reasons withheld from
//! peers outside loopback (reached for real, in a private network
//! namespace: the probe server bound to `0.0.0.0` and asked from the
//! namespace's own address outside loopback).
//! Each answer is read whole (not as the kubelet does, which stops at
//! 10 KiB), so an answer too long shows.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use lifecycle_testing::{Endpoint, Service};
use lifecycle_tests::{fixture, in_private_network, request, Answer, ServiceExt, OUTSIDE_LOOPBACK};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const REASONS_SHOWN: &str = env!("CARGO_BIN_EXE_reasons-shown");
const DEADLINE: Duration = Duration::from_secs(10);

/// `service`'s probe server (bound to an unspecified address) as a peer
/// outside loopback reaches it: through the host's address outside
/// loopback, which the connection then comes from. Only inside
/// [`in_private_network`].
fn from_outside(service: &Service) -> SocketAddr {
    SocketAddr::new(IpAddr::V4(OUTSIDE_LOOPBACK), service.probe_addr().port())
}

/// The JSON answer's check called `name`.
fn json_check(answer: &Answer, name: &str) -> serde_json::Value {
    let doc: serde_json::Value = serde_json::from_str(&answer.body).unwrap();
    doc["checks"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no check {name}: {doc}"))
        .clone()
}

/// The most the kubelet reads of an answer.
const MAX_ANSWER: usize = 10 * 1024;

#[test]
fn a_megabyte_reason_leaves_every_answer_within_10_kib_with_its_verdict_last() {
    let service = fixture(TESTBED)
        .env("TESTBED_HUGE_REASON", "1")
        .start()
        .unwrap();
    let verbose = service.request("GET", "/readyz?verbose", &[]);
    assert_eq!(verbose.status, 503);
    let length: usize = verbose.header("content-length").unwrap().parse().unwrap();
    assert!(length <= MAX_ANSWER, "a {length}-byte answer");
    let lines: Vec<&str> = verbose.body.lines().collect();
    assert_eq!(lines.last(), Some(&"readyz check failed"), "{lines:?}");
    // too-many-details' line alone is longer than an answer: it is left
    // out, and counted.
    assert_eq!(lines[lines.len() - 2], "… 1 more checks");
    let huge = lines
        .iter()
        .find_map(|l| l.strip_prefix("[-]huge-reason failed: "))
        .expect("the huge reason's line");
    let (reason, detail) = huge.split_once(" (dump=").unwrap();
    // "x" then 'é' (two bytes) to 509 bytes, then the 3-byte mark.
    assert_eq!(reason.len(), 512);
    assert!(reason.ends_with("é…"), "cut between characters");
    assert_eq!(detail.strip_suffix(')').unwrap().len(), 512);
    // What the kubelet reads of it: the verdict is in.
    let kubelet = service.probe(Endpoint::Readyz);
    assert_eq!(kubelet.status, Some(503));
    assert!(kubelet.body.len() <= MAX_ANSWER);
    assert!(kubelet.body.starts_with("[-]huge-reason failed: xé"));

    let json = service.request("GET", "/readyz?format=json", &[]);
    assert!(json.body.len() <= MAX_ANSWER, "{}", json.body.len());
    let doc: serde_json::Value = serde_json::from_str(&json.body).expect("valid JSON");
    assert_eq!(doc["status"], "DOWN");
    assert_eq!(doc["truncated"], 1, "too-many-details dropped: {doc}");
    let checks = doc["checks"].as_array().unwrap();
    let huge = checks.iter().find(|c| c["name"] == "huge-reason").unwrap();
    for value in [&huge["data"]["reason"], &huge["data"]["dump"]] {
        let value = value.as_str().unwrap();
        assert!(
            value.len() <= 512 && value.ends_with('…'),
            "{}",
            value.len()
        );
    }
    assert!(checks.iter().all(|c| c["name"] != "too-many-details"));
}

#[test]
fn a_reason_with_newlines_forges_no_line() {
    let service = fixture(TESTBED)
        .env("TESTBED_NEWLINE_REASON", "1")
        .start()
        .unwrap();
    let verbose = service.request("GET", "/readyz?verbose", &[]);
    assert_eq!(verbose.status, 503);
    let lines: Vec<&str> = verbose.body.lines().collect();
    assert!(
        lines.contains(
            &"[-]newline-reason failed: x\\n[+]fake ok\\nreadyz check passed \
              (note=a\\r\\n[+]fake2 ok\\u{1b}[0m)"
        ),
        "{lines:#?}"
    );
    // One line per check and the verdict: nothing forged.
    assert_eq!(lines.iter().filter(|l| l.contains("fake")).count(), 1);
    assert_eq!(lines.last(), Some(&"readyz check failed"));
    assert_eq!(
        lines
            .iter()
            .filter(|l| l.ends_with(" check passed"))
            .count(),
        0,
        "{lines:#?}"
    );
    let parsed = lifecycle_testing::probe::VerboseAnswer::parse(&verbose.body);
    assert_eq!(parsed.passed, Some(false));
    assert!(parsed.check("fake").is_none() && parsed.check("fake2").is_none());
    // The kubelet's plain answer: the one failing line.
    let plain = service.probe(Endpoint::Readyz);
    assert_eq!(plain.body.lines().count(), 1, "{plain}");
    // JSON: the encoder's escaping, and nothing more.
    let json = service.request("GET", "/readyz/newline-reason?format=json", &[]);
    assert_eq!(json.body.lines().count(), 1);
    let doc: serde_json::Value = serde_json::from_str(&json.body).unwrap();
    assert_eq!(
        doc["checks"][0]["data"]["reason"],
        "x\n[+]fake ok\nreadyz check passed"
    );
    assert_eq!(
        doc["checks"][0]["data"]["note"],
        "a\r\n[+]fake2 ok\u{1b}[0m"
    );
}

#[test]
fn reasons_are_withheld_from_peers_outside_loopback_and_logged_once_per_change() {
    in_private_network(
        reasons_are_withheld_from_peers_outside_loopback_and_logged_once_per_change_inside,
    );
}

fn reasons_are_withheld_from_peers_outside_loopback_and_logged_once_per_change_inside() {
    let mut service = fixture(TESTBED)
        .env("LIFECYCLE_PROBE_ADDR", "0.0.0.0:0")
        .start()
        .unwrap();
    let outside = from_outside(&service);
    service.command("set down");
    for _ in 0..3 {
        let plain = request(outside, "GET", "/readyz", &[]);
        assert_eq!(plain.status, 503);
        assert_eq!(plain.body, "[-]toggle failed: reason withheld\n");
    }
    let verbose = request(outside, "GET", "/readyz?verbose", &[]);
    assert!(
        verbose
            .body
            .contains("\n[-]toggle failed: reason withheld\n"),
        "{}",
        verbose.body
    );
    assert!(verbose
        .body
        .contains("\n[-]optional-cache failed: reason withheld\n"));
    assert!(verbose.body.ends_with("\nreadyz check failed\n"));
    for secret in ["toggled down by the test", "cache unreachable"] {
        assert!(!verbose.body.contains(secret), "{}", verbose.body);
    }
    let json = request(outside, "GET", "/readyz?format=json", &[]);
    assert_eq!(
        json_check(&json, "toggle")["data"]["reason"],
        "reason withheld"
    );
    assert!(
        !json.body.contains("toggled down by the test"),
        "{}",
        json.body
    );
    // Detail values too (they may carry secrets as well): keys stay.
    let live = request(outside, "GET", "/livez?verbose", &[]);
    assert!(
        live.body
            .contains("\n[+]event_loop ok (workers=withheld, mode=withheld)\n"),
        "{}",
        live.body
    );
    let live = request(outside, "GET", "/livez?format=json", &[]);
    assert_eq!(json_check(&live, "event_loop")["data"]["mode"], "withheld");

    // On loopback (kubectl port-forward, kubectl exec): shown.
    let local = service.request("GET", "/readyz?verbose", &[]);
    assert!(local
        .body
        .contains("\n[-]toggle failed: toggled down by the test\n"));
    let live = service.request("GET", "/livez?verbose", &[]);
    assert!(live
        .body
        .contains("[+]event_loop ok (workers=2, mode=test)"));

    // The log has the reason, once for the change, not once per probe.
    let failed = "readiness check \"toggle\" fails: toggled down by the test";
    service.wait_for_log(failed, DEADLINE).unwrap();
    service.command("clear down");
    assert_eq!(request(outside, "GET", "/readyz", &[]).status, 200);
    service
        .wait_for_log("readiness check \"toggle\" passes", DEADLINE)
        .unwrap();
    let log = service.log_text();
    assert_eq!(log.matches(failed).count(), 1, "{log}");
}

#[test]
fn lifecycle_reasons_show_shows_them_to_every_peer() {
    in_private_network(lifecycle_reasons_show_shows_them_to_every_peer_inside);
}

fn lifecycle_reasons_show_shows_them_to_every_peer_inside() {
    let service = fixture(TESTBED)
        .env("LIFECYCLE_PROBE_ADDR", "0.0.0.0:0")
        .env("LIFECYCLE_REASONS", "show")
        .start()
        .unwrap();
    let outside = from_outside(&service);
    let verbose = request(outside, "GET", "/readyz?verbose", &[]);
    assert!(
        verbose
            .body
            .contains("\n[-]optional-cache failed: cache unreachable\n"),
        "{}",
        verbose.body
    );
    let live = request(outside, "GET", "/livez?verbose", &[]);
    assert!(live
        .body
        .contains("[+]event_loop ok (workers=2, mode=test)"));
}

#[test]
fn the_reasons_argument_shows_them_and_the_variable_wins_over_it() {
    in_private_network(the_reasons_argument_shows_them_and_the_variable_wins_over_it_inside);
}

fn the_reasons_argument_shows_them_and_the_variable_wins_over_it_inside() {
    let reason = "[-]database failed: cannot reach postgres://app@db.internal:5432\n";
    let shown = fixture(REASONS_SHOWN)
        .env("LIFECYCLE_PROBE_ADDR", "0.0.0.0:0")
        .spawn()
        .unwrap();
    let outside = from_outside(&shown);
    let answer = wait_for_readyz_answer(outside);
    assert_eq!(answer.body, reason);

    let withheld = fixture(REASONS_SHOWN)
        .env("LIFECYCLE_PROBE_ADDR", "0.0.0.0:0")
        .env("LIFECYCLE_REASONS", "loopback")
        .spawn()
        .unwrap();
    let outside = from_outside(&withheld);
    let answer = wait_for_readyz_answer(outside);
    assert_eq!(answer.body, "[-]database failed: reason withheld\n");
    assert_eq!(withheld.request("GET", "/readyz", &[]).body, reason);
}

/// `/readyz` once start-up is over (its `lifecycle` check passes): the
/// answer of the registered checks alone.
fn wait_for_readyz_answer(addr: SocketAddr) -> Answer {
    let until = std::time::Instant::now() + DEADLINE;
    loop {
        let answer = request(addr, "GET", "/readyz", &[]);
        if !answer.body.contains("[-]lifecycle ") {
            return answer;
        }
        assert!(std::time::Instant::now() < until, "{answer:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn ipv4_mapped_loopback_is_loopback_on_a_dual_stack_socket() {
    in_private_network(ipv4_mapped_loopback_is_loopback_on_a_dual_stack_socket_inside);
}

fn ipv4_mapped_loopback_is_loopback_on_a_dual_stack_socket_inside() {
    let mut service = fixture(TESTBED)
        .env("LIFECYCLE_PROBE_ADDR", "[::]:0")
        .start()
        .unwrap();
    service.command("set down");
    let port = service.probe_addr().port();
    // From 127.0.0.1, the peer is ::ffff:127.0.0.1; from ::1, ::1.
    for local in [IpAddr::V4(Ipv4Addr::LOCALHOST), "::1".parse().unwrap()] {
        let answer = request(SocketAddr::new(local, port), "GET", "/readyz", &[]);
        assert_eq!(
            answer.body, "[-]toggle failed: toggled down by the test\n",
            "{local}"
        );
    }
    // From outside loopback, ::ffff:A.B.C.D: withheld.
    let answer = request(from_outside(&service), "GET", "/readyz", &[]);
    assert_eq!(answer.body, "[-]toggle failed: reason withheld\n");
}
