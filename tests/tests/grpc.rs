//! gRPC health on the probe port (feature `grpc`), from a tonic client
//! through the kit: the answers agree with `/livez`, `/readyz`,
//! `/startupz` and `/healthz` in every phase, names map as the README's
//! gRPC health table says, and `List` gives them all.

use std::time::Duration;

use lifecycle_testing::grpc::{Code, GrpcAnswer, GrpcWatchEvent, ServingStatus};
use lifecycle_testing::Service;
use lifecycle_tests::{fixture, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const DEADLINE: Duration = Duration::from_secs(10);

/// Each service name beside the HTTP path it must agree with.
const PAIRS: &[(&str, &str)] = &[
    ("", "/healthz"),
    ("livez", "/livez"),
    ("readyz", "/readyz"),
    ("startupz", "/startupz"),
    ("livez/event_loop", "/livez/event_loop"),
    ("livez/runtime", "/livez/runtime"),
    ("readyz/toggle", "/readyz/toggle"),
    ("readyz/lifecycle", "/readyz/lifecycle"),
    ("readyz/optional-cache", "/readyz/optional-cache"),
    ("startupz/migrations", "/startupz/migrations"),
    ("readyz/nope", "/readyz/nope"),
    ("livez/toggle", "/livez/toggle"),
];

/// What an HTTP status reads as in gRPC: 200 is SERVING, 503 NOT_SERVING,
/// 404 the NOT_FOUND code.
fn agrees(http: Option<u16>, grpc: &GrpcAnswer) -> bool {
    match http {
        Some(200) => grpc.status == Some(ServingStatus::Serving),
        Some(503) => grpc.status == Some(ServingStatus::NotServing),
        Some(404) => grpc.status.is_none() && grpc.code == Some(Code::NotFound),
        _ => false,
    }
}

/// Asks every pair over both protocols and returns the HTTP statuses.
fn assert_agree(service: &Service, phase: &str) -> Vec<Option<u16>> {
    PAIRS
        .iter()
        .map(|(name, path)| {
            let http = service.get(path);
            let grpc = service.grpc_probe(name);
            assert!(
                agrees(http.status, &grpc),
                "{phase}: {path} answered {:?} but {grpc}",
                http.status
            );
            http.status
        })
        .collect()
}

#[test]
fn grpc_and_http_agree_in_every_phase() {
    let mut service = fixture(TESTBED)
        .env("TESTBED_HOLD_STARTUP", "1")
        .env("LIFECYCLE_DRAIN_DELAY_MS", "3000")
        .spawn()
        .unwrap();
    service.wait_for_stdout("warm_up holding", DEADLINE);

    let starting = assert_agree(&service, "starting");
    assert_eq!(starting[3], Some(503), "startupz fails while starting");
    assert!(!service.grpc_probe("readyz").passed());

    service.command("set release");
    service
        .wait_passing(lifecycle_testing::Endpoint::Readyz, DEADLINE)
        .unwrap();
    let running = assert_agree(&service, "running");
    assert_eq!(&running[..4], &[Some(200); 4]);
    assert_eq!(
        running[8],
        Some(503),
        "optional-cache fails on its own path"
    );
    assert_eq!(running[10], Some(404));

    service.command("set down");
    let down = assert_agree(&service, "a readiness check down");
    assert_eq!(
        (down[0], down[2], down[1]),
        (Some(503), Some(503), Some(200))
    );
    service.command("clear down");

    service.signal(libc::SIGTERM);
    service
        .wait_failing(lifecycle_testing::Endpoint::Readyz, DEADLINE)
        .unwrap();
    let draining = assert_agree(&service, "draining");
    assert_eq!(
        (draining[0], draining[1], draining[2]),
        (Some(503), Some(200), Some(503)),
        "draining: \"\" and readyz fail, livez passes"
    );
    let exit = service.wait_exit(DEADLINE).unwrap();
    assert_eq!(exit.code, Some(0));
}

#[test]
fn mark_broken_fails_livez_and_the_empty_name() {
    let mut service = fixture(TESTBED).start().unwrap();
    assert!(service.grpc_probe("livez").passed());
    service.command("set broken");
    let status = |name: &str| service.grpc_probe(name).status;
    assert_eq!(status("livez"), Some(ServingStatus::NotServing));
    assert_eq!(status(""), Some(ServingStatus::NotServing));
    assert_eq!(status("livez/lifecycle"), Some(ServingStatus::NotServing));
    assert_eq!(
        status("readyz"),
        Some(ServingStatus::Serving),
        "broken is liveness"
    );
}

#[test]
fn unknown_names_are_not_found_from_check_and_service_unknown_from_watch() {
    let service = fixture(TESTBED).start().unwrap();
    for name in [
        "healthz",
        "metrics",
        "readyz/",
        "readyz/nope",
        "startupz/toggle",
        "READYZ",
    ] {
        let answer = service.grpc_probe(name);
        assert_eq!(answer.code, Some(Code::NotFound), "{answer}");
    }
    let mut watch = service.grpc_watch("nope").unwrap();
    assert_eq!(
        watch.next(DEADLINE),
        GrpcWatchEvent::Status(ServingStatus::ServiceUnknown)
    );
    // The protocol keeps the stream open on an unknown name.
    assert_eq!(
        watch.next(Duration::from_millis(1500)),
        GrpcWatchEvent::Silent
    );
}

#[test]
fn list_gives_every_name_as_check_answers_it() {
    let service = fixture(TESTBED).start().unwrap();
    let statuses = lifecycle_tests::grpc_list(service.probe_addr());
    for name in [
        "",
        "livez",
        "readyz",
        "startupz",
        "livez/runtime",
        "readyz/toggle",
    ] {
        assert_eq!(
            statuses.get(name),
            Some(&ServingStatus::Serving),
            "{name:?} in {statuses:?}"
        );
    }
    assert_eq!(
        statuses.get("readyz/optional-cache"),
        Some(&ServingStatus::NotServing)
    );
    for (name, status) in &statuses {
        assert_eq!(
            service.grpc_probe(name).status,
            Some(*status),
            "{name:?}: List and Check disagree"
        );
    }
    assert!(!statuses.contains_key("readyz/nope"));
}

#[test]
fn http2_without_grpc_gets_the_http_answers() {
    // curl --http2-prior-knowledge, or a proxy that speaks h2 upstream.
    let service = fixture(TESTBED).start().unwrap();
    let (status, body) = lifecycle_tests::h2_get(service.probe_addr(), "/readyz?verbose");
    assert_eq!(status, 200);
    assert!(body.ends_with("readyz check passed\n"), "{body}");
}

#[test]
fn the_kits_kubelet_runs_grpc_probes_from_a_manifest() {
    use lifecycle_testing::kubelet::{EventKind, ProbeKind};
    use lifecycle_testing::{Kubelet, Manifest};

    let manifest = Manifest::parse(
        "spec:\n  containers:\n  - name: app\n\
         \x20   startupProbe: {grpc: {port: 8081, service: startupz}, periodSeconds: 1}\n\
         \x20   livenessProbe: {grpc: {port: 8081, service: livez}, periodSeconds: 1}\n\
         \x20   readinessProbe: {grpc: {port: 8081, service: readyz}, periodSeconds: 1, failureThreshold: 1}\n",
    )
    .unwrap();
    let mut service = fixture(TESTBED).start().unwrap();
    let report = Kubelet::new(manifest.clone())
        .time_scale(0.2)
        .watch(&service, Duration::from_secs(1));
    report.assert_started();
    report.assert_joined_endpoints();
    report.assert_never_restarted();
    assert!(
        report
            .probes_of(ProbeKind::Liveness)
            .all(|p| p.answer.grpc_status.as_deref() == Some("SERVING")),
        "{report}"
    );

    service.command("set down");
    let report = Kubelet::new(manifest)
        .time_scale(0.2)
        .watch(&service, Duration::from_secs(1));
    report.assert_never_joined_endpoints();
    report.assert_never_restarted();
    assert!(
        report.events_of(EventKind::Started).next().is_some(),
        "{report}"
    );
    assert!(
        report
            .probes_of(ProbeKind::Readiness)
            .all(|p| p.answer.grpc_status.as_deref() == Some("NOT_SERVING")),
        "{report}"
    );
}
