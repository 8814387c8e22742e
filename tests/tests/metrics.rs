//! `GET /metrics` scraped by a real Prometheus: the
//! Debian package's server, started by the test on a port of its own,
//! scraping the service every second, and queried over its HTTP API. A
//! missing `prometheus` fails the test, naming `./scripts/test`, which
//! installs it.
//!
//! The tests run one at a time: each starts a Prometheus beside its
//! service, and their deadlines count on a machine not loaded by the rest
//! of this file.

use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use lifecycle_testing::grpc::ServingStatus;
use lifecycle_testing::{Endpoint, Service};
use lifecycle_tests::prometheus::{sample_lines, Prometheus, Sample, JOB};
use lifecycle_tests::{fixture, http_get, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const SINGLE_THREAD_BLOCK: &str = env!("CARGO_BIN_EXE_single-thread-block");

/// How often Prometheus scrapes.
const SCRAPE_INTERVAL: Duration = Duration::from_secs(1);

/// How long a value may take to reach Prometheus: a scrape a second, and
/// room for a loaded machine.
const DEADLINE: Duration = Duration::from_secs(10);

static SERIAL: Mutex<()> = Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// A Prometheus scraping `service`, once its target is up.
fn scraping(service: &Service) -> Prometheus {
    let prometheus = Prometheus::start(&[service.probe_addr()], SCRAPE_INTERVAL);
    let target = prometheus.wait_target_up(service.probe_addr(), DEADLINE);
    assert_eq!(target.job, JOB);
    assert_eq!(target.last_error, "", "{target:?}");
    prometheus
}

/// The served text of `GET /metrics`, and how long it took.
fn scrape(service: &Service) -> (String, Duration) {
    let started = Instant::now();
    let answer = service.request("GET", "/metrics", &[]);
    let took = started.elapsed();
    assert_eq!(answer.status, 200, "{answer:?}");
    assert_eq!(
        answer.header("content-type"),
        Some("application/openmetrics-text; version=1.0.0; charset=utf-8")
    );
    (answer.body, took)
}

/// The value of the sample line `series` (name and labels exactly as
/// served) in `text`.
fn served(text: &str, series: &str) -> Option<f64> {
    text.lines()
        .find_map(|l| l.strip_prefix(series)?.strip_prefix(' '))
        .map(|v| v.parse().unwrap())
}

/// `series` (name and labels as served) of the scrape target at `addr`
/// in PromQL.
fn at(series: &str, addr: SocketAddr) -> String {
    let selector = format!("job=\"{JOB}\",instance=\"{addr}\"");
    match series.strip_suffix('}') {
        Some(open) => format!("{open},{selector}}}"),
        None => format!("{series}{{{selector}}}"),
    }
}

/// Now, as Prometheus timestamps (seconds since the epoch).
fn now() -> f64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs_f64()
}

/// Waits until Prometheus has ingested a scrape of `addr` that started
/// after `after` (seconds since the epoch), and returns its
/// `scrape_samples_scraped`.
fn scrape_after(prometheus: &Prometheus, addr: SocketAddr, after: f64) -> f64 {
    let scraped = at("scrape_samples_scraped", addr);
    let query = format!("{scraped} and timestamp({scraped}) > {after}");
    prometheus.wait_for(&query, |s| s.len() == 1, DEADLINE)[0].value
}

#[test]
fn prometheus_ingests_every_sample_served_without_an_error() {
    let _serial = serial();
    let service = fixture(TESTBED).start().unwrap();
    let prometheus = scraping(&service);
    let addr = service.probe_addr();
    prometheus.wait_for_value(&at("up", addr), 1.0, DEADLINE);

    // Prometheus' count of a scrape's samples against ours of what the
    // endpoint served. A scrape and our GET never happen at the same
    // moment, but series are only ever added (a label set once recorded
    // stays), so the count served grows monotonically: a scrape that
    // started after one GET and was ingested before a second one saw
    // between the two counts, and exactly their count when both agree.
    // They can differ when a series first appears in between; then we
    // try again, within the deadline.
    let until = Instant::now() + DEADLINE;
    loop {
        let before = sample_lines(&scrape(&service).0).len() as f64;
        let scraped = scrape_after(&prometheus, addr, now());
        let after = sample_lines(&scrape(&service).0).len() as f64;
        assert!(
            before <= scraped && scraped <= after,
            "Prometheus scraped {scraped} samples, the endpoint served {before} then {after}"
        );
        if before == after {
            assert_eq!(scraped, before);
            break;
        }
        assert!(Instant::now() < until, "the series never settled");
    }

    // No sample was rejected: Prometheus counts those it drops (its own
    // metrics, which it scrapes too).
    for counter in [
        "prometheus_target_scrapes_sample_out_of_order_total",
        "prometheus_target_scrapes_sample_duplicate_timestamp_total",
        "prometheus_target_scrapes_sample_out_of_bounds_total",
        "prometheus_target_scrapes_exceeded_sample_limit_total",
        "prometheus_target_scrapes_exceeded_body_size_limit_total",
        "prometheus_target_scrapes_cache_flush_forced_total",
    ] {
        let samples = prometheus.wait_for(counter, |s| !s.is_empty(), DEADLINE);
        assert_eq!(samples[0].value, 0.0, "{counter}: {samples:?}");
    }
    let target = prometheus.wait_target_up(addr, DEADLINE);
    assert_eq!(target.last_error, "", "{target:?}");

    // Every documented series is there.
    for series in [
        "lifecycle_check_up",
        "lifecycle_check_duration_seconds_bucket",
        "lifecycle_check_duration_seconds_sum",
        "lifecycle_check_duration_seconds_count",
        "lifecycle_check_runs_total",
        "lifecycle_probe_requests_total",
        "lifecycle_phase",
        "lifecycle_hook_duration_seconds",
        "lifecycle_startup_duration_seconds",
        "lifecycle_runtime_last_progress_seconds",
        "lifecycle_log_lines_dropped_total",
        "lifecycle_runtime_workers",
        "lifecycle_runtime_alive_tasks",
        "lifecycle_runtime_global_queue_depth",
    ] {
        assert!(
            !prometheus.query(&at(series, addr)).is_empty(),
            "no {series} in Prometheus"
        );
    }

    // The phase: running, and only running.
    let phases = prometheus.query(&at("lifecycle_phase", addr));
    let mut phases: Vec<(&str, f64)> = phases.iter().map(|s| (s.label("phase"), s.value)).collect();
    phases.sort_by(|a, b| a.0.cmp(b.0));
    assert_eq!(
        phases,
        [
            ("draining", 0.0),
            ("running", 1.0),
            ("starting", 0.0),
            ("stopping", 0.0)
        ]
    );
    assert_eq!(
        prometheus.value(&at("lifecycle_runtime_workers", addr)),
        Some(2.0)
    );
    let startup = prometheus
        .value(&at("lifecycle_startup_duration_seconds", addr))
        .unwrap();
    assert!(startup > 0.0 && startup < 30.0, "{startup}");
}

#[test]
fn a_readiness_check_going_down_shows_in_prometheus() {
    let _serial = serial();
    let mut service = fixture(TESTBED).start().unwrap();
    let prometheus = scraping(&service);
    let addr = service.probe_addr();
    let toggle = at(
        "lifecycle_check_up{kind=\"readiness\",name=\"toggle\"}",
        addr,
    );

    assert_eq!(service.probe(Endpoint::Readyz).status, Some(200));
    prometheus.wait_for_value(&toggle, 1.0, DEADLINE);

    service.command("set down");
    // The check runs when probed: probe until Prometheus sees it.
    let until = Instant::now() + DEADLINE;
    loop {
        assert_eq!(service.probe(Endpoint::Readyz).status, Some(503));
        if prometheus.value(&toggle) == Some(0.0) {
            break;
        }
        assert!(
            Instant::now() < until,
            "{toggle} still 1 after {DEADLINE:?}"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    let failed = at(
        "lifecycle_check_runs_total{kind=\"readiness\",name=\"toggle\",result=\"failed\"}",
        addr,
    );
    assert!(prometheus.value(&failed).unwrap() >= 1.0);

    service.command("clear down");
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(200));
    prometheus.wait_for_value(&toggle, 1.0, DEADLINE);
}

#[test]
fn scraping_never_runs_an_on_demand_check() {
    let _serial = serial();
    let service = fixture(TESTBED).start().unwrap();
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(200));
    let prometheus = scraping(&service);
    let addr = service.probe_addr();
    let coalesced_runs = || service.coalesced_runs();
    let toggle_runs =
        "lifecycle_check_runs_total{kind=\"readiness\",name=\"toggle\",result=\"ok\"}";
    let scrapes =
        "lifecycle_probe_requests_total{protocol=\"http\",endpoint=\"metrics\",code=\"200\"}";

    let (text, _) = scrape(&service);
    let (runs_before, scrapes_before) = (served(&text, toggle_runs), served(&text, scrapes));
    let coalesced_before = coalesced_runs();
    assert!(runs_before.unwrap() >= 1.0, "{text}");
    // Prometheus scrapes three more times, and nothing probes.
    prometheus.wait_for(
        &at(scrapes, addr),
        |s| s.len() == 1 && s[0].value >= scrapes_before.unwrap() + 3.0,
        DEADLINE,
    );
    let (text, _) = scrape(&service);
    assert_eq!(served(&text, toggle_runs), runs_before, "{text}");
    assert_eq!(coalesced_runs(), coalesced_before, "the check's own count");
    assert_eq!(prometheus.value(&at(toggle_runs, addr)), runs_before);
}

#[test]
fn a_background_check_is_counted_as_it_runs_with_no_probe() {
    let _serial = serial();
    let service = fixture(TESTBED).start().unwrap();
    let prometheus = scraping(&service);
    let runs = at(
        "lifecycle_check_runs_total{kind=\"readiness\",name=\"background\",result=\"ok\"}",
        service.probe_addr(),
    );
    let first = prometheus.wait_for(&runs, |s| s.len() == 1, DEADLINE)[0].value;
    // Every 200 ms: at least five more runs in two scrapes' time.
    prometheus.wait_for(
        &runs,
        |s| s.len() == 1 && s[0].value >= first + 5.0,
        DEADLINE,
    );
    let up = at(
        "lifecycle_check_up{kind=\"readiness\",name=\"background\"}",
        service.probe_addr(),
    );
    assert_eq!(prometheus.value(&up), Some(1.0));
}

#[test]
fn probes_are_counted_by_protocol_closed_endpoint_and_code() {
    let _serial = serial();
    let mut service = fixture(TESTBED).start().unwrap();
    let prometheus = scraping(&service);
    let addr = service.probe_addr();
    let requests = |protocol: &str, endpoint: &str, code: &str| {
        format!(
            "lifecycle_probe_requests_total{{protocol=\"{protocol}\",endpoint=\"{endpoint}\",code=\"{code}\"}}"
        )
    };
    let count = |series: &str| served(&scrape(&service).0, series).unwrap_or(0.0);

    let readyz = requests("http", "readyz", "200");
    let before = count(&readyz);
    for _ in 0..7 {
        assert_eq!(service.probe(Endpoint::Readyz).status, Some(200));
    }
    assert_eq!(count(&readyz), before + 7.0);
    prometheus.wait_for_value(&at(&readyz, addr), before + 7.0, DEADLINE);

    // Per-check paths by their check; anything else is `other`.
    assert_eq!(service.get("/livez/event_loop").status, Some(200));
    assert_eq!(service.get("/readyz/nope?x=1").status, Some(404));
    assert_eq!(service.get("/anything/at/all").status, Some(404));
    // Not a probe path: counted as what it was answered for.
    assert_eq!(service.get("//livez").status, Some(404));
    let text = scrape(&service).0;
    assert_eq!(
        served(&text, &requests("http", "livez/event_loop", "200")),
        Some(1.0)
    );
    assert_eq!(
        served(&text, &requests("http", "other", "404")),
        Some(3.0),
        "{text}"
    );

    // gRPC on the same port.
    assert_eq!(
        service.grpc_probe("readyz").status,
        Some(ServingStatus::Serving)
    );
    service.command("set down");
    assert_eq!(
        service.grpc_probe("readyz").status,
        Some(ServingStatus::NotServing)
    );
    assert_eq!(service.grpc_probe("nope/x").status, None);
    assert_eq!(
        service.grpc_probe("readyz/toggle").status,
        Some(ServingStatus::NotServing)
    );
    for (endpoint, code) in [
        ("readyz", "SERVING"),
        ("readyz", "NOT_SERVING"),
        ("other", "NOT_FOUND"),
        ("readyz/toggle", "NOT_SERVING"),
    ] {
        prometheus.wait_for_value(&at(&requests("grpc", endpoint, code), addr), 1.0, DEADLINE);
    }

    // A closed set: nothing a client sent became a label value.
    let endpoints: Vec<Sample> = prometheus.query(&format!(
        "count by (endpoint) ({})",
        at("lifecycle_probe_requests_total", addr)
    ));
    for sample in &endpoints {
        let endpoint = sample.label("endpoint");
        assert!(
            ["livez", "readyz", "startupz", "healthz", "metrics", "other"].contains(&endpoint)
                || endpoint == "livez/event_loop"
                || endpoint == "readyz/toggle",
            "endpoint {endpoint:?}"
        );
    }
}

#[test]
fn the_applications_own_metrics_are_served_beside_lifecycles() {
    let _serial = serial();
    let service = fixture(TESTBED).start().unwrap();
    let prometheus = scraping(&service);
    let counter = at("testbed_requests_total", service.probe_addr());
    let app = service.app_url();
    prometheus.wait_for_value(&counter, 0.0, DEADLINE);
    for _ in 0..3 {
        assert_eq!(http_get(&format!("{app}/")).unwrap().0, 200);
    }
    prometheus.wait_for_value(&counter, 3.0, DEADLINE);
    // prometheus-client's registry ends a registered metric's help with
    // a full stop.
    let help = scrape(&service).0;
    assert!(
        help.contains("# HELP testbed_requests Requests the application answered.\n"),
        "{help}"
    );
}

#[test]
fn promtool_finds_nothing_to_lint() {
    let _serial = serial();
    let service = fixture(TESTBED).start().unwrap();
    // Every kind of series present: probes of each kind, a hook ran.
    assert_eq!(service.probe(Endpoint::Readyz).status, Some(200));
    assert_eq!(
        service.grpc_probe("livez").status,
        Some(ServingStatus::Serving)
    );
    let text = scrape(&service).0;

    // promtool (2.42) lints the Prometheus text format (0.0.4) only. In
    // OpenMetrics a counter family is named without its samples' `_total`
    // (`# TYPE lifecycle_check_runs counter`, then
    // `lifecycle_check_runs_total 3`), which that parser reads as an
    // untyped `lifecycle_check_runs_total` without HELP: its only
    // complaint about the text as served, one per counter, and wrong.
    let counters: Vec<&str> = text
        .lines()
        .filter_map(|l| l.strip_prefix("# TYPE ")?.strip_suffix(" counter"))
        .collect();
    assert!(counters.len() >= 4, "{text}");
    let mut expected: Vec<String> = counters
        .iter()
        .map(|c| format!("{c}_total no help text"))
        .collect();
    expected.sort();
    let mut said: Vec<String> = promtool_check_metrics(&text)
        .lines()
        .map(str::to_owned)
        .collect();
    said.sort();
    assert_eq!(said, expected, "promtool check metrics on:\n{text}");

    // The same text as Prometheus reads it, in the format promtool
    // parses: counter families named as their samples, no `# EOF`. Then
    // every lint of names, units, suffixes and help texts applies.
    let as_text_format: String = text
        .lines()
        .filter(|l| *l != "# EOF")
        .map(|l| {
            for prefix in ["# HELP ", "# TYPE "] {
                if let Some(rest) = l.strip_prefix(prefix) {
                    let (name, tail) = rest.split_once(' ').unwrap();
                    if counters.contains(&name) {
                        return format!("{prefix}{name}_total {tail}\n");
                    }
                }
            }
            format!("{l}\n")
        })
        .collect();
    let lint = promtool_check_metrics(&as_text_format);
    assert_eq!(lint, "", "promtool check metrics on:\n{as_text_format}");
}

/// What `promtool check metrics` says of `text` (empty when nothing).
fn promtool_check_metrics(text: &str) -> String {
    use std::io::Write;
    let mut promtool = std::process::Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| {
            panic!(
                "cannot run promtool ({e}): install the Debian package prometheus, \
                 as ./scripts/test does"
            )
        });
    promtool
        .stdin
        .take()
        .unwrap()
        .write_all(text.as_bytes())
        .unwrap();
    let output = promtool.wait_with_output().unwrap();
    let said = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(
        output.status.success() || !said.is_empty(),
        "promtool failed silently: {}",
        output.status
    );
    said
}

#[test]
fn a_stalled_runtime_is_scraped_in_time_and_its_silence_grows() {
    let _serial = serial();
    let service = fixture(SINGLE_THREAD_BLOCK).spawn().unwrap();
    let addr = service.probe_addr();
    service.wait_for_stdout("blocking the runtime thread", DEADLINE);
    let blocked = Instant::now();
    let prometheus = scraping(&service);
    let silence = "lifecycle_runtime_last_progress_seconds";

    // Direct scrapes, each in time, the silence growing with the stall.
    let mut last = 0.0;
    for _ in 0..3 {
        let (text, took) = scrape(&service);
        assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
        let now = served(&text, silence).unwrap();
        assert!(now > last, "{silence} {now} after {last}");
        assert!(
            now <= blocked.elapsed().as_secs_f64() + 1.0,
            "{now} s of silence, blocked {:?} ago",
            blocked.elapsed()
        );
        last = now;
        std::thread::sleep(Duration::from_millis(300));
    }
    // And Prometheus' scrapes: up, and the silence past two seconds.
    prometheus.wait_for(
        &at(silence, addr),
        |s| s.len() == 1 && s[0].value > last + 1.0,
        DEADLINE,
    );
    prometheus.wait_for_value(&at("up", addr), 1.0, DEADLINE);
    let duration = prometheus
        .value(&at("scrape_duration_seconds", addr))
        .unwrap();
    assert!(duration < 1.0, "Prometheus' scrape took {duration} s");
}

#[test]
fn timeouts_and_panics_are_counted_as_such() {
    let _serial = serial();
    let service = fixture(TESTBED)
        .env("TESTBED_HANG", "1")
        .env("TESTBED_PANIC", "1")
        .start()
        .unwrap();
    for _ in 0..3 {
        assert_eq!(service.probe(Endpoint::Readyz).status, Some(503));
    }
    let text = scrape(&service).0;
    for (series, value) in [
        (
            "lifecycle_check_runs_total{kind=\"readiness\",name=\"hang\",result=\"timeout\"}",
            3.0,
        ),
        (
            "lifecycle_check_runs_total{kind=\"readiness\",name=\"boom\",result=\"panic\"}",
            3.0,
        ),
        ("lifecycle_check_up{kind=\"readiness\",name=\"hang\"}", 0.0),
        ("lifecycle_check_up{kind=\"readiness\",name=\"boom\"}", 0.0),
        (
            "lifecycle_check_duration_seconds_count{kind=\"readiness\",name=\"hang\"}",
            3.0,
        ),
        (
            "lifecycle_probe_requests_total{protocol=\"http\",endpoint=\"readyz\",code=\"503\"}",
            3.0,
        ),
    ] {
        assert_eq!(served(&text, series), Some(value), "{series} in:\n{text}");
    }
    // A run that timed out took its timeout (200 ms), not less.
    let hung = served(
        &text,
        "lifecycle_check_duration_seconds_sum{kind=\"readiness\",name=\"hang\"}",
    )
    .unwrap();
    assert!(hung >= 3.0 * 0.2, "{hung}");
}

#[test]
fn the_phase_follows_a_stop_while_the_probe_port_serves() {
    let _serial = serial();
    let service = fixture(TESTBED)
        .env("LIFECYCLE_DRAIN_DELAY_MS", "1000")
        .env("TESTBED_HOOK_SLOW_MS", "1500")
        .start()
        .unwrap();
    let current = |text: &str| -> Vec<String> {
        ["starting", "running", "draining", "stopping"]
            .into_iter()
            .filter(|p| served(text, &format!("lifecycle_phase{{phase=\"{p}\"}}")) == Some(1.0))
            .map(str::to_owned)
            .collect()
    };
    assert_eq!(current(&scrape(&service).0), ["running"]);
    service.signal(libc::SIGTERM);
    // Each scrape has exactly one current phase, in order; both stop
    // phases are seen (a second of drain, a second and a half of hook).
    let mut seen: Vec<String> = vec!["running".into()];
    let until = Instant::now() + DEADLINE;
    while Instant::now() < until && seen.last().map(String::as_str) != Some("stopping") {
        let answer = service.request("GET", "/metrics", &[]);
        let phases = current(&answer.body);
        assert_eq!(phases.len(), 1, "{}", answer.body);
        if seen.last() != phases.last() {
            seen.push(phases[0].clone());
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert_eq!(seen, ["running", "draining", "stopping"]);
}

#[test]
fn a_registry_held_by_the_application_blocks_neither_probes_nor_scrapes() {
    let _serial = serial();
    let mut service = fixture(TESTBED).start().unwrap();
    assert_eq!(scrape(&service).0.lines().last(), Some("# EOF"));
    service.command("set hold-registry");
    service.wait_for_stdout("registry held", DEADLINE);
    // The probe server's one thread never waits for the application's
    // lock: a probe during a scrape answers as always, the scrape in time,
    // 503 rather than waiting while the registry is held.
    let addr = service.probe_addr();
    let scraping = std::thread::spawn(move || {
        let started = Instant::now();
        let answer = lifecycle_tests::request(addr, "GET", "/metrics", &[]);
        (answer, started.elapsed())
    });
    // A head start for the scrape, so that the probe likely comes while
    // it waits; the scrape's own assertions do not depend on it.
    std::thread::sleep(Duration::from_millis(50));
    let live = service.get("/livez");
    assert_eq!(live.status, Some(200), "{live}");
    assert!(live.elapsed < Duration::from_secs(1), "{live}");
    let (answer, took) = scraping.join().unwrap();
    assert!(took < Duration::from_secs(1), "a scrape took {took:?}");
    assert_eq!(answer.status, 503, "{answer:?}");
    assert_eq!(
        answer.body,
        "the metrics registry is held by the application\n"
    );
}
