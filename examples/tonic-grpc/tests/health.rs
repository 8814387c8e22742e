//! gRPC health follows Redis on both ports, and agrees with HTTP: with the
//! `grpc` feature the probe port answers `grpc.health.v1.Health` beside
//! `/readyz`, and `health_service()` gives the application's own port the
//! same answers, so the kubelet, proxies and gRPC clients all see this
//! instance leave rotation when Redis goes away, and come back within a
//! second of its return, while `livez` never asks Redis.

// Against a real redis-server started by the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

mod support;

use std::time::{Duration, Instant};

use lifecycle_runtime::grpc::proto::health_check_response::ServingStatus::{NotServing, Serving};
use lifecycle_testing::{Endpoint, Kubelet, Manifest, Service, Stop};
use lifecycle_tests::redis::RedisServer;
use tonic::Code;

use support::{assert_code, assert_status, builder, Client};

/// The promise: ready again within a second of Redis answering.
const BACK_WITHIN: Duration = Duration::from_secs(1);
/// How long an outage may take to show (the check runs every 250 ms).
const GONE_WITHIN: Duration = Duration::from_secs(2);
const DEADLINE: Duration = Duration::from_secs(10);

/// The two gRPC views of the service, and the HTTP one through the kit.
struct Views {
    app: Client,
    probes: Client,
}

impl Views {
    fn of(service: &Service) -> Views {
        Views {
            app: Client::connect(service.app_addr().unwrap()),
            probes: Client::connect(service.probe_addr()),
        }
    }

    /// `readyz` (and `readyz/redis`) answer `ready` on both ports and
    /// `/readyz` agrees; `livez` is `SERVING` everywhere whatever Redis
    /// does.
    #[track_caller]
    fn assert_ready(&self, service: &Service, ready: bool) {
        let status = if ready { Serving } else { NotServing };
        for client in [&self.app, &self.probes] {
            assert_status(client, "readyz", status);
            assert_status(client, "readyz/redis", status);
            assert_status(client, "", status);
            assert_status(client, "livez", Serving);
        }
        let http = service.probe(Endpoint::Readyz);
        assert_eq!(http.status, Some(if ready { 200 } else { 503 }), "{http:?}");
        service.assert_passing(Endpoint::Livez);
        // The exec probe (`probe_protocol = "grpc"`: it asks over gRPC)
        // agrees too.
        let addr = service.probe_addr().to_string();
        let env = [("LIFECYCLE_PROBE_ADDR", addr.as_str())];
        let (code, _, stderr) =
            lifecycle_tests::run(support::TONIC_GRPC, &["--lifecycle-probe", "readyz"], &env);
        assert_eq!(code, Some(if ready { 0 } else { 1 }), "{stderr}");
    }
}

#[test]
fn readiness_follows_redis_on_both_ports_and_agrees_with_http() {
    let mut redis = RedisServer::start();
    let mut service = builder(&redis).start().unwrap();
    let views = Views::of(&service);
    views.app.wait_for("readyz", Serving, DEADLINE);
    views.assert_ready(&service, true);
    // The same names as HTTP's paths, and the protocol's answer to others.
    for client in [&views.app, &views.probes] {
        assert_status(client, "startupz", Serving);
        assert_code(client.check("nothing"), Code::NotFound);
        assert_code(client.check("readyz/nothing"), Code::NotFound);
    }

    // A client watching `readyz` on the application's port is told of
    // each change.
    let mut watch = views.app.watch("readyz");
    assert_eq!(watch.next(DEADLINE), Serving);

    redis.halt();
    let gone = Instant::now();
    views.app.wait_for("readyz", NotServing, GONE_WITHIN);
    views.assert_ready(&service, false);
    assert_eq!(
        watch.next(GONE_WITHIN.saturating_sub(gone.elapsed())),
        NotServing
    );
    // Over HTTP, the reason: the kubelet's event and the logs say why.
    let ready = service.verbose(Endpoint::Readyz);
    let check = ready.check("redis").expect("a redis check");
    let reason = check.reason.as_deref().unwrap_or_default();
    assert!(
        !check.passed && reason.contains("Connection refused"),
        "{check:?}"
    );

    redis.resume();
    let back = Instant::now();
    let took = views.probes.wait_for("readyz", Serving, BACK_WITHIN);
    eprintln!("SERVING {took:?} after Redis came back");
    assert_eq!(
        watch.next(BACK_WITHIN.saturating_sub(back.elapsed())),
        Serving
    );
    views.assert_ready(&service, true);

    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
}

/// Without Redis at start-up the service starts all the same (`start`
/// waits for `/startupz`), out of rotation on every view, and never
/// restarted: the kit's kubelet, running the probes of the generated
/// manifest (`grpc:` ones), never restarts it nor puts it in the
/// endpoints until Redis answers.
#[test]
fn a_start_without_redis_is_alive_and_out_of_rotation() {
    let mut redis = RedisServer::start();
    redis.halt();
    let builder = builder(&redis);
    let kubelet = Kubelet::new(Manifest::from_builder(&builder).unwrap()).time_scale(0.1);
    let mut service = builder.start().unwrap();
    let views = Views::of(&service);
    views.assert_ready(&service, false);
    assert_status(&views.probes, "startupz", Serving);
    let report = kubelet.watch(&service, Duration::from_secs(2));
    report.assert_never_restarted();
    report.assert_never_joined_endpoints();
    views.assert_ready(&service, false);

    redis.resume();
    views.probes.wait_for("readyz", Serving, BACK_WITHIN);
    views.assert_ready(&service, true);
    let report = kubelet.watch(&service, Duration::from_secs(2));
    report.assert_joined_endpoints();
    report.assert_never_restarted();
    let stopped = service.stop(Stop::grace(Duration::from_secs(15)));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
}
