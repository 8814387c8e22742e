//! What probe answers carry when checks misbehave or the peer is not to be
//! trusted: bounded whatever the checks return (a reason or a detail value
//! at most 512 bytes, an answer at most 10 KiB with its verdict last), and
//! one line per check whatever its reason holds.
//! Each answer is read whole (not as the kubelet does, which stops at
//! 10 KiB), so an answer too long shows.

use lifecycle_testing::Endpoint;
use lifecycle_tests::{fixture, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");

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
    let parsed = lifecycle_testing::Verbose::parse(&verbose.body);
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
