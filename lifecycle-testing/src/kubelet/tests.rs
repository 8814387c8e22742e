//! The driver's unit tests, against a fake probe server.

use super::*;
use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::atomic::{AtomicBool, Ordering};

/// A probe server whose endpoints pass while their flag is up.
struct Fake {
    addr: SocketAddr,
    startup: Arc<AtomicBool>,
    live: Arc<AtomicBool>,
    ready: Arc<AtomicBool>,
    /// `/readyz` redirects to `localhost`: another host.
    redirect: Arc<AtomicBool>,
}

impl Fake {
    fn new() -> Fake {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let fake = Fake {
            addr: listener.local_addr().unwrap(),
            startup: Arc::new(AtomicBool::new(true)),
            live: Arc::new(AtomicBool::new(true)),
            ready: Arc::new(AtomicBool::new(true)),
            redirect: Arc::new(AtomicBool::new(false)),
        };
        let redirect = fake.redirect.clone();
        let port = fake.addr.port();
        let flags = [
            ("/startupz", fake.startup.clone()),
            ("/livez", fake.live.clone()),
            ("/readyz", fake.ready.clone()),
        ];
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                let mut request = Vec::new();
                let mut chunk = [0u8; 1024];
                while !request.ends_with(b"\r\n\r\n") {
                    match stream.read(&mut chunk) {
                        Ok(0) | Err(_) => break,
                        Ok(read) => request.extend_from_slice(&chunk[..read]),
                    }
                }
                let request = String::from_utf8_lossy(&request).into_owned();
                let path = request.split_whitespace().nth(1).unwrap_or("");
                let up = flags
                    .iter()
                    .find(|(p, _)| *p == path)
                    .is_some_and(|(_, flag)| flag.load(Ordering::SeqCst));
                if path == "/readyz" && redirect.load(Ordering::SeqCst) {
                    let _ = write!(
                        stream,
                        "HTTP/1.1 302 Found\r\nLocation: http://localhost:{port}/readyz\r\n\
                             Content-Length: 5\r\n\r\nmoved"
                    );
                    continue;
                }
                let (status, body) = if up {
                    (200, "ok")
                } else {
                    (503, "[-]fake failed: down")
                };
                let _ = write!(
                    stream,
                    "HTTP/1.1 {status} X\r\nContent-Length: {}\r\n\r\n{body}",
                    body.len()
                );
            }
        });
        fake
    }
}

const MANIFEST: &str = "\
spec:
  containers:
  - name: fake
    startupProbe:
      httpGet: {path: /startupz}
      periodSeconds: 1
      failureThreshold: 30
    livenessProbe:
      httpGet: {path: /livez}
      initialDelaySeconds: 3
      periodSeconds: 1
      failureThreshold: 2
    readinessProbe:
      httpGet: {path: /readyz}
      periodSeconds: 1
      failureThreshold: 2
";

fn kubelet() -> Kubelet {
    Kubelet::new(Manifest::parse(MANIFEST).unwrap()).time_scale(0.02)
}

#[test]
fn probes_keep_to_the_startup_gate() {
    let fake = Fake::new();
    fake.startup.store(false, Ordering::SeqCst);
    let watch = kubelet().start_at(fake.addr, Instant::now(), Duration::from_secs(20));
    watch
        .wait_until("two startup failures", Duration::from_secs(10), |r| {
            r.probes_of(ProbeKind::Startup).count() >= 2
        })
        .unwrap();
    fake.startup.store(true, Ordering::SeqCst);
    let report = watch
        .wait_until("liveness probes", Duration::from_secs(10), |r| {
            r.probes_of(ProbeKind::Liveness).count() >= 3
        })
        .unwrap();
    drop(watch);
    let started = report.assert_started();
    assert!(
        report.probes_of(ProbeKind::Startup).count() >= 3,
        "{report}"
    );
    assert!(
        report
            .probes
            .iter()
            .filter(|p| p.probe != ProbeKind::Startup)
            .all(|p| p.at >= started),
        "nothing but the startup probe before start-up:\n{report}"
    );
    assert!(
        report
            .probes_of(ProbeKind::Startup)
            .all(|p| p.at <= started),
        "no startup probe after start-up:\n{report}"
    );
    report.assert_joined_endpoints();
    report.assert_never_restarted();
    assert_eq!(report.startup_budget_exceeded, None);
}

#[test]
fn liveness_waits_its_initial_delay_from_the_container_start() {
    // Start-up passes at the first probe: only the initial delay
    // (10 s × 0.02 = 200 ms) holds liveness back, while readiness is
    // probed every 20 ms.
    let fake = Fake::new();
    let manifest = MANIFEST.replace("initialDelaySeconds: 3", "initialDelaySeconds: 10");
    let kubelet = Kubelet::new(Manifest::parse(&manifest).unwrap()).time_scale(0.02);
    let delay = Duration::from_millis(200);
    let spawned = Instant::now();
    let watch = kubelet.start_at(fake.addr, spawned, Duration::from_secs(20));
    let report = watch
        .wait_until("a liveness probe", Duration::from_secs(10), |r| {
            r.probes_of(ProbeKind::Liveness).next().is_some()
        })
        .unwrap();
    let session_start = watch.started;
    drop(watch);
    let started = report.assert_started();
    let first_liveness = report.probes_of(ProbeKind::Liveness).next().unwrap();
    assert!(
        session_start + first_liveness.at >= spawned + delay,
        "liveness waits its initial delay (200 ms) from the container's start:\n{report}"
    );
    let readiness_between = report
        .probes_of(ProbeKind::Readiness)
        .filter(|p| p.at >= started && p.at < first_liveness.at)
        .count();
    assert!(
        readiness_between >= 3,
        "readiness is probed while liveness waits:\n{report}"
    );
}

#[test]
fn the_timeline_shows_the_deciding_answers() {
    let fake = Fake::new();
    let watch = kubelet().start_at(fake.addr, Instant::now(), Duration::from_secs(20));
    watch
        .wait_until(
            "the pod joins",
            Duration::from_secs(10),
            KubeletReport::in_endpoints,
        )
        .unwrap();
    fake.live.store(false, Ordering::SeqCst);
    let report = watch
        .wait_until("a restart", Duration::from_secs(10), |r| {
            !r.restarts.is_empty()
        })
        .unwrap();
    let restart = report.events_of(EventKind::LivenessRestart).next().unwrap();
    assert_eq!(restart.answers.len(), 2, "{report}");
    assert!(restart.answers.iter().all(|p| p.answer.status == Some(503)));
    let text = report.to_string();
    assert!(
        text.contains("liveness failed: the container would be restarted"),
        "{text}"
    );
    assert!(text.contains("GET /livez -> 503"), "{text}");
    assert!(text.contains("[-]fake failed: down"), "{text}");
    let panic = std::panic::catch_unwind(|| report.assert_never_restarted()).unwrap_err();
    let message = panic.downcast_ref::<String>().unwrap();
    assert!(
        message.contains("restarted the container 1 time(s)"),
        "{message}"
    );
    assert!(message.contains("GET /livez -> 503"), "{message}");
}

#[test]
fn a_watch_stops_by_itself_and_a_missed_condition_is_an_error() {
    let fake = Fake::new();
    let watch = kubelet().start_at(fake.addr, Instant::now(), Duration::from_millis(300));
    let error = watch
        .wait_until("a restart", Duration::from_secs(10), |r| {
            !r.restarts.is_empty()
        })
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("the watch ended (10000 ms) before a restart"),
        "{error}"
    );
    let report = watch.finish();
    assert!(report.watched <= Duration::from_millis(300), "{report}");
    assert!(report.in_endpoints(), "{report}");
    let started = Instant::now();
    let short = kubelet().start_at(fake.addr, Instant::now(), Duration::from_secs(60));
    let error = short
        .wait_until("never", Duration::from_millis(100), |_| false)
        .unwrap_err()
        .to_string();
    assert!(
        error.starts_with("the deadline passed (100 ms) before never"),
        "{error}"
    );
    short.stop();
    assert!(
        started.elapsed() < Duration::from_secs(5),
        "stop does not wait for the end"
    );
}

#[test]
fn readiness_joins_at_its_success_threshold_and_a_redirect_elsewhere_warns() {
    let fake = Fake::new();
    let manifest = MANIFEST.replace(
        "      httpGet: {path: /readyz}\n",
        "      httpGet: {path: /readyz}\n      successThreshold: 3\n",
    );
    let kubelet = Kubelet::new(Manifest::parse(&manifest).unwrap()).time_scale(0.02);
    let watch = kubelet.start_at(fake.addr, Instant::now(), Duration::from_secs(20));
    watch
        .wait_until(
            "the pod joins",
            Duration::from_secs(10),
            KubeletReport::in_endpoints,
        )
        .unwrap();
    fake.redirect.store(true, Ordering::SeqCst);
    let report = watch
        .wait_until("a warning", Duration::from_secs(10), |r| {
            r.events_of(EventKind::ProbeWarning).next().is_some()
        })
        .unwrap();
    drop(watch);
    let joined = report.events_of(EventKind::JoinedEndpoints).next().unwrap();
    assert_eq!(joined.answers.len(), 3, "{report}");
    let warning = report.events_of(EventKind::ProbeWarning).next().unwrap();
    assert_eq!(
        warning.detail.as_deref(),
        Some("readiness probe warning: Probe terminated redirects, Response body: moved")
    );
    assert_eq!(warning.answers[0].answer.status, Some(302));
    assert_eq!(
        report.events_of(EventKind::ProbeWarning).count(),
        1,
        "one event while the warning lasts:\n{report}"
    );
    report.assert_in_endpoints();
}

#[test]
fn the_start_up_budget_counts_from_the_process_start() {
    let fake = Fake::new();
    fake.startup.store(false, Ordering::SeqCst);
    // Started 2 s ago: the budget (30 × 20 ms) is spent before the
    // watch, and the first failure is over it.
    let spawned = Instant::now() - Duration::from_secs(2);
    let watch = kubelet().start_at(fake.addr, spawned, Duration::from_secs(20));
    let report = watch
        .wait_until("start-up over its budget", Duration::from_secs(10), |r| {
            r.startup_budget_exceeded.is_some()
        })
        .unwrap();
    drop(watch);
    let exceeded = report
        .events_of(EventKind::StartupBudgetExceeded)
        .next()
        .unwrap();
    let first = report.probes_of(ProbeKind::Startup).next().unwrap();
    assert_eq!(
        exceeded.answers,
        std::slice::from_ref(first),
        "the first answer:\n{report}"
    );
}

#[test]
#[should_panic(expected = "a time scale is finite and above zero")]
fn a_time_scale_must_be_positive() {
    let _ = kubelet().time_scale(0.0);
}
