//! Each figure of the issue: how it is measured, and its goals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::grpc::Checker;
use crate::http::{probe, wait_for};
use crate::procs::{command, free_addr, Service};
use crate::report::Bound::{AtLeast, AtMost};
use crate::report::{number, Figure, Row};
use crate::stats::{median, quantile_ms};
use crate::wrk;

/// The run's settings.
pub struct Bench {
    /// Where bench/run put the binaries under test.
    pub bin: PathBuf,
    /// The repository, for the build figure.
    pub root: PathBuf,
    pub rounds: usize,
    /// How long each wrk load lasts.
    pub load: Duration,
    /// Processes started per round for the start and stop figures.
    pub samples: usize,
    /// Probes per round for the latency figures.
    pub probes: usize,
    /// Clean builds per contender (0: not measured).
    pub builds: usize,
    /// Alternating pairs of loads (tokio's listener, lifecycle's) per mode
    /// for the application path.
    pub pairs: usize,
}

/// The services, by what they are to the figures.
#[derive(Clone, Copy, PartialEq)]
pub enum Kind {
    Floor,
    Go,
    Axum,
    TonicHealth,
    PlainTokio,
    /// bench/lifecycle, the runtime's default features.
    Lifecycle,
    /// bench/lifecycle built with the `grpc` feature.
    LifecycleGrpc,
    /// bench/lifecycle's fifty checks.
    Lifecycle50,
    Quickstart,
    /// bench-app: one axum app under `#[service_main]`, tokio's listener
    /// or lifecycle's as `BENCH_LISTENER` says.
    App,
}

impl Kind {
    fn binary(self) -> &'static str {
        match self {
            Kind::Floor => "bench-floor",
            Kind::Go => "bench-go",
            Kind::Axum => "bench-axum",
            Kind::TonicHealth => "bench-tonic-health",
            Kind::PlainTokio => "bench-plain-tokio",
            Kind::Lifecycle => "bench-lifecycle",
            Kind::LifecycleGrpc => "bench-lifecycle-grpc",
            Kind::Lifecycle50 => "bench-lifecycle-50",
            Kind::Quickstart => "quickstart",
            Kind::App => "bench-app",
        }
    }

    fn is_lifecycle(self) -> bool {
        matches!(
            self,
            Kind::Lifecycle
                | Kind::LifecycleGrpc
                | Kind::Lifecycle50
                | Kind::Quickstart
                | Kind::App
        )
    }

    /// The path that says the service answers.
    fn ready_path(self) -> &'static str {
        match self {
            Kind::Floor | Kind::PlainTokio => "/",
            Kind::Go | Kind::Axum => "/healthz",
            Kind::TonicHealth => "",
            _ => "/readyz",
        }
    }
}

impl Bench {
    /// Starts `kind` under `load` (idle, busy, block) with `env` on a free
    /// port: lifecycle's probe port, or the baseline's only one.
    fn start(&self, kind: Kind, load: &str, env: &[(&str, &str)]) -> Result<Service, String> {
        let addr = free_addr();
        let mut command = command(&self.bin, kind.binary());
        command.env("BENCH_LOAD", load);
        if kind.is_lifecycle() {
            command
                .env("LIFECYCLE_PROBE_ADDR", addr.to_string())
                .env("LIFECYCLE_DRAIN_DELAY_MS", "0")
                .env("APP_ADDR", free_addr().to_string());
        } else {
            command.env("BENCH_ADDR", addr.to_string());
        }
        for (key, value) in env {
            command.env(key, value);
        }
        Service::start(kind.binary(), command, addr)
    }

    /// Starts `kind` and waits until it answers (lifecycle: `/readyz` 200).
    fn start_ready(&self, kind: Kind, load: &str, env: &[(&str, &str)]) -> Result<Service, String> {
        let mut service = self.start(kind, load, env)?;
        let ready = if kind == Kind::TonicHealth {
            wait_grpc(service.addr, "", Duration::from_secs(10))
        } else {
            wait_for(
                service.addr,
                kind.ready_path(),
                200,
                Duration::from_secs(10),
            )
        };
        ready.map_err(|error| {
            let _ = service.ensure_running();
            format!("{}: {error}\n{}", service.name, service.log_tail())
        })?;
        Ok(service)
    }
}

fn wait_grpc(addr: SocketAddr, service: &str, deadline: Duration) -> Result<(), String> {
    let start = Instant::now();
    let mut last = String::new();
    while start.elapsed() < deadline {
        match Checker::new(addr, false).and_then(|mut c| c.check(service, Duration::from_secs(1))) {
            Ok(_) => return Ok(()),
            Err(error) => last = error,
        }
        std::thread::sleep(Duration::from_millis(5));
    }
    Err(format!(
        "gRPC Check {service:?} on {addr} not SERVING (last: {last})"
    ))
}

/// Clock ticks per second of `/proc/PID/stat`'s CPU times.
fn ticks_per_second() -> f64 {
    // SAFETY: sysconf has no preconditions.
    (unsafe { libc::sysconf(libc::_SC_CLK_TCK) }) as f64
}

/// Kubelet-style and keep-alive throughput, the server's CPU per probe, and
/// metrics on against off: one set of services, every contender loaded in
/// turn within each round.
pub fn throughput(bench: &Bench) -> Result<Vec<Figure>, String> {
    let floor = bench.start_ready(Kind::Floor, "idle", &[])?;
    let go = bench.start_ready(Kind::Go, "idle", &[])?;
    let axum = bench.start_ready(Kind::Axum, "idle", &[])?;
    let lifecycle = bench.start_ready(Kind::Lifecycle, "idle", &[])?;
    let no_metrics = bench.start_ready(Kind::Lifecycle, "idle", &[("LIFECYCLE_METRICS", "off")])?;
    let with_grpc = bench.start_ready(Kind::LifecycleGrpc, "idle", &[])?;

    let close: Vec<(&str, &Service, &str)> = vec![
        ("floor (raw TCP)", &floor, "/"),
        ("Go net/http", &go, "/healthz"),
        ("axum on the app runtime", &axum, "/healthz"),
        ("lifecycle /livez", &lifecycle, "/livez"),
        ("lifecycle /readyz (3 checks)", &lifecycle, "/readyz"),
        ("lifecycle /livez, metrics off", &no_metrics, "/livez"),
        ("lifecycle /livez, grpc feature", &with_grpc, "/livez"),
    ];
    let keep: Vec<(&str, &Service, &str)> = vec![
        ("Go net/http", &go, "/healthz"),
        ("axum on the app runtime", &axum, "/healthz"),
        ("lifecycle /livez", &lifecycle, "/livez"),
        ("lifecycle /readyz (3 checks)", &lifecycle, "/readyz"),
    ];
    let mut rate = Figure::new(
        "Kubelet-style probes per second",
        &format!(
            "wrk, one thread, 8 connections, `Connection: close` (a new connection per probe, as the kubelet \
             opens), {} s per contender and round.",
            bench.load.as_secs()
        ),
        &["probes/s"],
    );
    let mut cpu = Figure::new(
        "Server CPU per kubelet-style probe",
        "User plus system CPU time of the whole server process (every thread) from `/proc/PID/stat`, over \
         the probes of the rounds above, in µs per probe. The kernel counts it in 10 ms ticks, so a round \
         needs at least 20 000 probes for 1 % resolution at 50 µs per probe.",
        &["µs/probe"],
    );
    let mut alive = Figure::new(
        "Keep-alive probes per second",
        &format!(
            "wrk, one thread, 8 keep-alive connections, {} s per contender and round.",
            bench.load.as_secs()
        ),
        &["probes/s"],
    );
    for (name, ..) in &close {
        rate.rows.push(Row::new(*name, 1));
        cpu.rows.push(Row::new(*name, 1));
    }
    for (name, ..) in &keep {
        alive.rows.push(Row::new(*name, 1));
    }
    let per_tick = 1e6 / ticks_per_second();
    let mut fewest = u64::MAX;
    for _ in 0..bench.rounds {
        for (i, (name, service, path)) in close.iter().enumerate() {
            let before = service.cpu_ticks()?;
            let run = wrk::run(
                &format!("http://{}{path}", service.addr),
                bench.load,
                8,
                true,
            )?;
            let after = service.cpu_ticks()?;
            if run.errors > 0 {
                rate.notes.push(format!(
                    "{name}: {} errors in a round of {} probes.",
                    run.errors, run.requests
                ));
            }
            fewest = fewest.min(run.requests);
            rate.rows[i].values[0].push(run.per_second);
            cpu.rows[i].values[0]
                .push((after - before) as f64 * per_tick / run.requests.max(1) as f64);
        }
        for (i, (name, service, path)) in keep.iter().enumerate() {
            let run = wrk::run(
                &format!("http://{}{path}", service.addr),
                bench.load,
                8,
                false,
            )?;
            if run.errors > 0 {
                alive.notes.push(format!(
                    "{name}: {} errors in a round of {} probes.",
                    run.errors, run.requests
                ));
            }
            alive.rows[i].values[0].push(run.per_second);
        }
    }
    cpu.notes.push(format!(
        "The smallest round counted {} probes.",
        number(fewest as f64)
    ));

    for figure in [&mut rate, &mut cpu] {
        let (floor, go, axum) = (
            clone_row(figure, 0),
            clone_row(figure, 1),
            clone_row(figure, 2),
        );
        for row in figure.rows.iter_mut().skip(1) {
            row.ratio_to(&floor, "floor");
            row.ratio_to(&go, "Go");
            row.ratio_to(&axum, "axum");
        }
    }
    let livez = rate.row("lifecycle /livez").median(0);
    let (go_rate, floor_rate) = (
        rate.row("Go net/http").median(0),
        rate.row("floor (raw TCP)").median(0),
    );
    rate.goal_ratio(
        "lifecycle `/livez` ≥ 1.3× Go",
        (livez, go_rate),
        AtLeast,
        1.3,
        "",
    );
    rate.goal_ratio(
        "lifecycle `/livez` ≥ 0.9× the floor",
        (livez, floor_rate),
        AtLeast,
        0.9,
        "",
    );
    let (axum_ka, live_ka) = (
        alive.row("axum on the app runtime").clone_values(),
        alive.row("lifecycle /livez").clone_values(),
    );
    for row in alive.rows.iter_mut() {
        if row.name != "axum on the app runtime" {
            row.ratio_to(&axum_ka, "axum");
        }
    }
    alive.goal_ratio(
        "lifecycle `/livez` ≥ 1.0× axum on the app runtime",
        (live_ka.median(0), axum_ka.median(0)),
        AtLeast,
        1.0,
        "",
    );
    let (c_live, c_ready) = (
        cpu.row("lifecycle /livez").median(0),
        cpu.row("lifecycle /readyz (3 checks)").median(0),
    );
    let (c_floor, c_go) = (
        cpu.row("floor (raw TCP)").median(0),
        cpu.row("Go net/http").median(0),
    );
    cpu.goal_ratio(
        "`/livez` ≤ 2× the floor",
        (c_live, c_floor),
        AtMost,
        2.0,
        " µs",
    );
    cpu.goal_ratio("`/livez` ≤ 0.7× Go", (c_live, c_go), AtMost, 0.7, " µs");
    cpu.goal_ratio(
        "`/readyz` with three checks ≤ 3× the floor",
        (c_ready, c_floor),
        AtMost,
        3.0,
        " µs",
    );

    let mut metrics = Figure::new(
        "Metrics on against off",
        "The kubelet-style rounds above of lifecycle `/livez` with metrics on (the default) and with \
         `LIFECYCLE_METRICS=off`, side by side.",
        &["probes/s", "µs/probe"],
    );
    for (name, label) in [
        ("lifecycle /livez", "metrics on"),
        ("lifecycle /livez, metrics off", "metrics off"),
    ] {
        let mut row = Row::new(label, 2);
        row.values[0] = rate.row(name).values[0].clone();
        row.values[1] = cpu.row(name).values[0].clone();
        metrics.rows.push(row);
    }
    let (on, off) = (
        metrics.rows[0].clone_values(),
        metrics.rows[1].clone_values(),
    );
    let (rate_ratio, cpu_ratio) = (on.median(0) / off.median(0), off.median(1) / on.median(1));
    metrics.goal(
        "probes/s with metrics on ≥ 0.97× off",
        rate_ratio >= 0.97,
        format!("{rate_ratio:.3}×"),
    );
    metrics.goal(
        "CPU per probe with metrics on: off's ≥ 0.97× on's",
        cpu_ratio >= 0.97,
        format!(
            "{cpu_ratio:.3}× (on {} µs, off {} µs)",
            number(on.median(1)),
            number(off.median(1))
        ),
    );
    Ok(vec![rate, alive, cpu, metrics])
}

/// The application's own requests through lifecycle's listener against
/// tokio's: the same axum app (bench-app) started twice, one per listener,
/// loaded in alternating turns, keep-alive and with a new connection each.
pub fn listener(bench: &Bench) -> Result<Vec<Figure>, String> {
    let listeners = [
        ("tokio", "tokio's listener"),
        ("lifecycle", "lifecycle's listener"),
    ];
    let modes = [("keep-alive", false), ("new connection each", true)];
    let mut services = Vec::new();
    for (listener, _) in listeners {
        let app = free_addr();
        let app_text = app.to_string();
        let service = bench.start_ready(
            Kind::App,
            "idle",
            &[("BENCH_LISTENER", listener), ("BENCH_ADDR", &app_text)],
        )?;
        wait_for(app, "/", 200, Duration::from_secs(10))
            .map_err(|error| format!("bench-app ({listener}): {error}\n{}", service.log_tail()))?;
        services.push((service, app));
    }
    let mut figure = Figure::new(
        "Application path: lifecycle's listener against tokio's",
        &format!(
            "One axum app answering `GET /` with `ok`, under `#[service_main]` in both, served through \
             `tokio::net::TcpListener` or `lifecycle_runtime::net::TcpListener` (`bench-app`, the same \
             binary, `BENCH_LISTENER`). wrk, one thread, 8 connections, {} s per load; {} pair(s) per mode, \
             the two listeners in alternating turns (tokio first in one pair, lifecycle first in the next), \
             since rounds of the same contender differ by up to 25 % here. Server CPU from \
             `/proc/PID/stat` as above, in µs per request.",
            bench.load.as_secs(),
            bench.pairs
        ),
        &["requests/s", "µs/request"],
    );
    for (mode, _) in modes {
        for (_, name) in listeners {
            figure.rows.push(Row::new(format!("{name}, {mode}"), 2));
        }
    }
    let per_tick = 1e6 / ticks_per_second();
    let mut fewest = u64::MAX;
    for pair in 0..bench.pairs {
        for (m, (mode, new_connection_each)) in modes.iter().enumerate() {
            let order = if pair % 2 == 0 { [0, 1] } else { [1, 0] };
            for which in order {
                let (service, app) = &services[which];
                let before = service.cpu_ticks()?;
                let run = wrk::run(
                    &format!("http://{app}/"),
                    bench.load,
                    8,
                    *new_connection_each,
                )?;
                let after = service.cpu_ticks()?;
                if run.errors > 0 {
                    figure.notes.push(format!(
                        "{}, {mode}: {} errors in a load of {} requests.",
                        listeners[which].1, run.errors, run.requests
                    ));
                }
                fewest = fewest.min(run.requests);
                let row = &mut figure.rows[2 * m + which];
                row.values[0].push(run.per_second);
                row.values[1].push((after - before) as f64 * per_tick / run.requests.max(1) as f64);
            }
        }
    }
    for (m, (mode, _)) in modes.iter().enumerate() {
        let (tokio, life) = (
            figure.rows[2 * m].clone_values(),
            figure.rows[2 * m + 1].clone_values(),
        );
        let rate = life.median(0) / tokio.median(0);
        let cpu = life.median(1) / tokio.median(1);
        // Each pair's two loads ran back to back: their ratio leaves out
        // what drifted between pairs.
        let paired = |column: usize| {
            let ratios: Vec<f64> = life.values[column]
                .iter()
                .zip(&tokio.values[column])
                .map(|(life, tokio)| life / tokio)
                .collect();
            median(&ratios)
        };
        figure.rows[2 * m + 1].ratios = format!(
            "{rate:.3}× requests/s, {cpu:.3}× µs/request of tokio's (paired: {:.3}×, {:.3}×)",
            paired(0),
            paired(1)
        );
        figure.goal_ratio(
            &format!("requests/s, {mode}: lifecycle's listener ≥ 0.98× tokio's"),
            (life.median(0), tokio.median(0)),
            AtLeast,
            0.98,
            "",
        );
        figure.goal_ratio(
            &format!("CPU per request, {mode}: lifecycle's listener ≤ 1.02× tokio's"),
            (life.median(1), tokio.median(1)),
            AtMost,
            1.02,
            " µs",
        );
    }
    figure.notes.push(format!(
        "Ratios are of the medians; \"paired\" is the median of each pair's own ratio. The smallest load \
         counted {} requests.",
        number(fewest as f64)
    ));
    Ok(vec![figure])
}

fn clone_row(figure: &Figure, index: usize) -> Row {
    figure.rows[index].clone_values()
}

impl Row {
    fn clone_values(&self) -> Row {
        Row {
            name: self.name.clone(),
            values: self.values.clone(),
            ratios: String::new(),
            note: String::new(),
        }
    }
}

/// Sequential kubelet-style probes of each `(service, path)` in turn,
/// `count` of each, a millisecond apart: every probe's latency, a probe
/// that failed or timed out counted at the 1 s timeout.
fn interleaved(targets: &[(&Service, &str)], count: usize) -> (Vec<Vec<Duration>>, usize) {
    let timeout = Duration::from_secs(1);
    let mut latencies = vec![Vec::with_capacity(count); targets.len()];
    let mut failed = 0;
    for _ in 0..count {
        for (i, (service, path)) in targets.iter().enumerate() {
            match probe(service.addr, path, timeout) {
                Ok(answer) if answer.status == 200 => latencies[i].push(answer.latency),
                _ => {
                    failed += 1;
                    latencies[i].push(timeout);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(1));
    }
    (latencies, failed)
}

/// Probe latency while every application worker is busy with CPU tasks
/// that yield, beside the floor in a separate process under the same load.
pub fn busy(bench: &Bench) -> Result<Vec<Figure>, String> {
    let contenders = [
        ("lifecycle /livez", Kind::Lifecycle, "/livez"),
        ("axum on the app runtime", Kind::Axum, "/healthz"),
        ("Go net/http", Kind::Go, "/healthz"),
    ];
    let mut figure = Figure::new(
        "Probe latency while every application worker is busy",
        &format!(
            "Each service runs four CPU-bound tasks per worker that spin 1 ms and yield (`BENCH_LOAD=busy`; \
             goroutines that spin and `Gosched` for Go), which keeps every core busy. Beside it the floor \
             runs in a separate process, and the two are probed in turn, kubelet-style, {} times each per \
             round, 1 ms apart. Latency in ms from the connect to the last byte.",
            bench.probes
        ),
        &["p99 ms", "p50 ms", "max ms"],
    );
    let mut failures = Vec::new();
    for (name, ..) in &contenders {
        figure.rows.push(Row::new(*name, 3));
        figure
            .rows
            .push(Row::new(format!("floor, beside {name}"), 3));
    }
    for _ in 0..bench.rounds {
        for (i, (name, kind, path)) in contenders.iter().enumerate() {
            let service = bench.start_ready(*kind, "busy", &[])?;
            let floor = bench.start_ready(Kind::Floor, "idle", &[])?;
            std::thread::sleep(Duration::from_millis(200));
            let (latencies, failed) = interleaved(&[(&service, path), (&floor, "/")], bench.probes);
            if failed > 0 {
                failures.push(format!(
                    "{name}: {failed} probes failed or timed out (counted at 1 s)."
                ));
            }
            for (j, samples) in latencies.iter().enumerate() {
                let row = &mut figure.rows[2 * i + j];
                row.values[0].push(quantile_ms(samples, 0.99));
                row.values[1].push(quantile_ms(samples, 0.5));
                row.values[2].push(quantile_ms(samples, 1.0));
            }
        }
    }
    figure.notes.extend(failures);
    // Each contender against the floor probed beside it.
    for pair in figure.rows.chunks_mut(2) {
        let floor = pair[1].clone_values();
        pair[0].ratio_to(&floor, "the floor's p99 beside it");
    }
    let floor = figure.row("floor, beside lifecycle /livez").clone_values();
    let axum = figure.row("axum on the app runtime").clone_values();
    let life = figure.row("lifecycle /livez");
    let (p99, floor_p99) = (life.median(0), floor.median(0));
    let (p50, axum_p50) = (life.median(1), axum.median(1));
    figure.goal_ratio(
        "lifecycle p99 ≤ 1.2× the floor's p99 beside it",
        (p99, floor_p99),
        AtMost,
        1.2,
        " ms",
    );
    figure.goal(
        "lifecycle p50 ≥ 10× better than axum on the app runtime",
        axum_p50 >= 10.0 * p50,
        format!(
            "{:.1}× ({} ms against {} ms)",
            axum_p50 / p50,
            number(p50),
            number(axum_p50)
        ),
    );
    Ok(vec![figure])
}

/// The answer while every application worker is blocked.
pub fn blocked(bench: &Bench) -> Result<Vec<Figure>, String> {
    let mut figure = Figure::new(
        "Probe answer while every application worker is blocked",
        &format!(
            "Each service blocks every worker of its runtime (`BENCH_LOAD=block`: tasks that call \
             `std::thread::sleep`; for Go, goroutines in loops that never yield, which Go preempts). \
             lifecycle runs with `LIFECYCLE_STALL_THRESHOLD_MS=1000`; once `/livez` has turned 503, \
             {} kubelet-style probes per round, with the kubelet's 1 s timeout. Latency in ms.",
            bench.samples
        ),
        &["max ms", "median ms"],
    );
    let timeout = Duration::from_secs(1);
    let mut life = Row::new("lifecycle /livez", 2);
    let mut axum = Row::new("axum on the app runtime", 2);
    let mut go = Row::new("Go net/http", 2);
    let mut tonic = Row::new("tonic-health on the app runtime (gRPC Check)", 2);
    let mut all_named = true;
    let mut all_timed_out = (true, true);
    let mut tonic_timed_out = true;
    let mut go_statuses = Vec::new();
    for _ in 0..bench.rounds {
        // lifecycle: start-up ends, the body of main blocks every worker.
        let service = bench.start(
            Kind::Lifecycle,
            "block",
            &[("LIFECYCLE_STALL_THRESHOLD_MS", "1000")],
        )?;
        wait_for(service.addr, "/startupz", 200, Duration::from_secs(10))?;
        let blocked_at = Instant::now();
        wait_for(service.addr, "/livez", 503, Duration::from_secs(10))?;
        let detected = blocked_at.elapsed();
        let mut samples = Vec::new();
        for _ in 0..bench.samples {
            let answer = probe(service.addr, "/livez", timeout)?;
            all_named &=
                answer.status == 503 && answer.body.contains("runtime failed: no progress for");
            life.note = format!(
                "{} `{}` (turned 503 {} ms after start-up ended)",
                answer.status,
                answer.body.lines().next().unwrap_or(""),
                detected.as_millis()
            );
            samples.push(answer.latency);
        }
        life.values[0].push(quantile_ms(&samples, 1.0));
        life.values[1].push(quantile_ms(&samples, 0.5));
        drop(service);

        for (row, kind, path, timed_out) in [
            (&mut axum, Kind::Axum, "/healthz", &mut all_timed_out.0),
            (&mut go, Kind::Go, "/healthz", &mut all_timed_out.1),
        ] {
            let service = bench.start(kind, "block", &[])?;
            // The listener is bound before the load starts; give it a moment.
            std::thread::sleep(Duration::from_millis(300));
            let mut samples = Vec::new();
            let mut outcomes = Vec::new();
            for _ in 0..3 {
                match probe(service.addr, path, timeout) {
                    Ok(answer) => {
                        *timed_out = false;
                        outcomes.push(format!("{} `{}`", answer.status, answer.body.trim()));
                        samples.push(answer.latency);
                    }
                    Err(error) => {
                        outcomes.push(error);
                        samples.push(timeout);
                    }
                }
            }
            if kind == Kind::Go {
                go_statuses.extend(outcomes.iter().cloned());
            }
            outcomes.dedup();
            row.note = outcomes.join("; ");
            row.values[0].push(quantile_ms(&samples, 1.0));
            row.values[1].push(quantile_ms(&samples, 0.5));
        }

        let service = bench.start(Kind::TonicHealth, "block", &[])?;
        std::thread::sleep(Duration::from_millis(300));
        let mut checker = Checker::new(service.addr, false);
        let started = Instant::now();
        let outcome = checker
            .as_mut()
            .map_err(|e| e.clone())
            .and_then(|c| c.check("", timeout));
        let took = started.elapsed().min(timeout);
        tonic.note = match outcome {
            Ok(_) => {
                tonic_timed_out = false;
                "SERVING".into()
            }
            Err(error) => error,
        };
        tonic.values[0].push(took.as_secs_f64() * 1000.0);
        tonic.values[1].push(took.as_secs_f64() * 1000.0);
    }
    let worst = life.values[0].iter().copied().fold(0.0, f64::max);
    figure.goal(
        "503 naming the stall in < 100 ms",
        all_named && worst < 100.0,
        format!(
            "slowest answer {} ms; {}",
            number(worst),
            if all_named {
                "every answer 503 naming the stall"
            } else {
                "**not every answer named the stall**"
            }
        ),
    );
    // Go's runtime preempts the goroutines that never yield, so it answers:
    // recorded, as the issue asks, not counted against the goal.
    figure.goal(
        "baselines time out (record how)",
        all_timed_out.0 && tonic_timed_out,
        format!(
            "axum: {}; Go: {}; tonic-health: {}",
            axum.note,
            if all_timed_out.1 {
                "timed out".to_string()
            } else {
                format!("answers ({}), unaware of the stuck goroutines", go.note)
            },
            tonic.note
        ),
    );
    figure.rows = vec![life, axum, go, tonic];
    Ok(vec![figure])
}

/// Runs `measure` on fresh processes `samples` times per round: the median
/// of each round, in ms.
fn per_process(
    bench: &Bench,
    row: &mut Row,
    mut measure: impl FnMut() -> Result<Duration, String>,
) -> Result<(), String> {
    let mut samples = Vec::new();
    for _ in 0..bench.samples {
        samples.push(measure()?);
    }
    row.values[0].push(quantile_ms(&samples, 0.5));
    Ok(())
}

/// SIGTERM → exit, and exec → `/startupz` 200, on fresh processes.
pub fn start_and_stop(bench: &Bench) -> Result<Vec<Figure>, String> {
    let mut stop = Figure::new(
        "SIGTERM to exit, idle",
        &format!(
            "A fresh process per sample, ready and idle, no drain delay (`LIFECYCLE_DRAIN_DELAY_MS=0`): the \
             time from `kill(SIGTERM)` to the exit reaped by `waitpid`, exit code 0 required. The median of \
             {} processes per round, in ms.",
            bench.samples
        ),
        &["ms"],
    );
    let mut start = Figure::new(
        "exec to /startupz 200",
        &format!(
            "A fresh process per sample: the time from `spawn` until a kubelet-style probe of `/startupz` \
             answers 200, polled every 100 µs (plain tokio: its first answer on `/`). The median of {} \
             processes per round, in ms.",
            bench.samples
        ),
        &["ms"],
    );
    let stoppers = [
        (
            "lifecycle (one liveness, three readiness checks)",
            Kind::Lifecycle,
        ),
        ("the quick start (lifecycle, with hooks)", Kind::Quickstart),
        ("plain tokio", Kind::PlainTokio),
    ];
    let starters = [
        (
            "lifecycle, no hooks: /startupz",
            Kind::Lifecycle,
            "/startupz",
        ),
        ("plain tokio: first answer", Kind::PlainTokio, "/"),
    ];
    for (name, _) in &stoppers {
        stop.rows.push(Row::new(*name, 1));
    }
    for (name, ..) in &starters {
        start.rows.push(Row::new(*name, 1));
    }
    for _ in 0..bench.rounds {
        for (i, (_, kind)) in stoppers.iter().enumerate() {
            per_process(bench, &mut stop.rows[i], || {
                let mut service = bench.start_ready(*kind, "idle", &[])?;
                std::thread::sleep(Duration::from_millis(20));
                let (took, code) = service.terminate()?;
                if code != Some(0) {
                    return Err(format!("{} exited {code:?} on SIGTERM", service.name));
                }
                Ok(took)
            })?;
        }
        for (i, (_, kind, path)) in starters.iter().enumerate() {
            per_process(bench, &mut start.rows[i], || {
                let begun = Instant::now();
                let service = bench.start(*kind, "idle", &[])?;
                loop {
                    if let Ok(answer) = probe(service.addr, path, Duration::from_millis(200)) {
                        if answer.status == 200 {
                            return Ok(begun.elapsed());
                        }
                    }
                    if begun.elapsed() > Duration::from_secs(10) {
                        return Err(format!("{} never answered 200 on {path}", service.name));
                    }
                    std::thread::sleep(Duration::from_micros(100));
                }
            })?;
        }
    }
    let plain = stop.row("plain tokio").clone_values();
    for row in stop.rows.iter_mut().take(2) {
        row.ratio_to(&plain, "plain tokio");
    }
    let life = stop.rows[0].median(0);
    stop.goal("≤ 2 ms", life <= 2.0, format!("{} ms", number(life)));
    stop.goal_plus("≤ plain tokio + 1 ms", (life, plain.median(0)), 1.0, " ms");
    let plain_start = start.rows[1].clone_values();
    start.rows[0].ratio_to(&plain_start, "plain tokio");
    let startup = start.rows[0].median(0);
    start.goal("≤ 5 ms", startup <= 5.0, format!("{} ms", number(startup)));
    Ok(vec![stop, start])
}

/// Resident memory once ready and idle.
pub fn memory(bench: &Bench) -> Result<Vec<Figure>, String> {
    let mut figure = Figure::new(
        "Idle RSS",
        "`VmRSS` of a fresh process, ready, after one probe of each endpoint (lifecycle: `/livez`, \
         `/readyz`, `/startupz`, `/metrics`; plain tokio: `/`) and 500 ms idle, in MiB; of it, the \
         anonymous memory (`RssAnon`: heap, thread stacks) and the pages of the executable file itself \
         (its code and read-only data as far as they were touched, from `/proc/PID/smaps`). The rest is \
         the shared libraries' pages (libc, libm, the loader).",
        &["MiB", "anonymous MiB", "executable's MiB"],
    );
    let contenders = [
        ("the quick start (lifecycle)", Kind::Quickstart),
        (
            "plain tokio (the quick start without lifecycle)",
            Kind::PlainTokio,
        ),
        ("bench lifecycle service", Kind::Lifecycle),
    ];
    for (name, _) in &contenders {
        figure.rows.push(Row::new(*name, 3));
    }
    for _ in 0..bench.rounds {
        for (i, (_, kind)) in contenders.iter().enumerate() {
            let service = bench.start_ready(*kind, "idle", &[])?;
            let paths: &[&str] = if kind.is_lifecycle() {
                &["/livez", "/readyz", "/startupz", "/metrics"]
            } else {
                &["/"]
            };
            for path in paths {
                probe(service.addr, path, Duration::from_secs(1))?;
            }
            std::thread::sleep(Duration::from_millis(500));
            let memory = service.memory_kib()?;
            let row = &mut figure.rows[i];
            for (column, kib) in [memory.rss, memory.anonymous, memory.executable]
                .into_iter()
                .enumerate()
            {
                row.values[column].push(kib as f64 / 1024.0);
            }
        }
    }
    let plain = figure.rows[1].clone_values();
    for i in [0, 2] {
        figure.rows[i].ratio_to(&plain, "plain tokio");
    }
    let quick = figure.rows[0].median(0);
    figure.goal_plus(
        "the quick start ≤ plain tokio + 1.5 MiB",
        (quick, plain.median(0)),
        1.5,
        " MiB",
    );
    Ok(vec![figure])
}

/// The size of the release binaries, as cargo built them.
pub fn size(bench: &Bench) -> Result<Vec<Figure>, String> {
    let mut figure = Figure::new(
        "Release binary size",
        "The executable as `cargo build --release` leaves it (Rust's release profile: no debug \
         information, symbols kept), in MiB.",
        &["MiB"],
    );
    let contenders = [
        ("the quick start (lifecycle)", Kind::Quickstart),
        (
            "plain tokio (the quick start without lifecycle)",
            Kind::PlainTokio,
        ),
        ("bench lifecycle service", Kind::Lifecycle),
        ("bench lifecycle service, grpc feature", Kind::LifecycleGrpc),
    ];
    for (name, kind) in contenders {
        let path = bench.bin.join(kind.binary());
        let bytes = std::fs::metadata(&path)
            .map_err(|e| format!("{}: {e}", path.display()))?
            .len();
        let mut row = Row::new(name, 1);
        row.values[0].push(bytes as f64 / 1024.0 / 1024.0);
        figure.rows.push(row);
    }
    let plain = figure.rows[1].clone_values();
    for i in [0, 2, 3] {
        let difference = figure.rows[i].median(0) - plain.median(0);
        figure.rows[i].ratio_to(&plain, "plain tokio");
        figure.rows[i]
            .ratios
            .push_str(&format!(" (+{} MiB)", number(difference)));
    }
    Ok(vec![figure])
}

/// gRPC `Check` latency, idle and with every application worker busy.
pub fn grpc(bench: &Bench) -> Result<Vec<Figure>, String> {
    let mut figures = Vec::new();
    for load in ["idle", "busy"] {
        let mut figure = Figure::new(
            &format!("gRPC Check latency, {}", if load == "idle" { "idle" } else { "saturated" }),
            &format!(
                "{} sequential `grpc.health.v1.Health/Check` calls per contender and round with tonic's client: \
                 lifecycle's probe port (service `livez`; the `grpc` feature) against tonic-health on the \
                 application's own runtime (service `\"\"`), either dialling a new connection per call as the \
                 kubelet's gRPC prober does, or on one channel. {} Latency in ms.",
                bench.probes,
                if load == "busy" { "Every application worker is busy as in the latency figure above (`BENCH_LOAD=busy`)." } else { "" }
            ),
            &["p99 ms", "p50 ms"],
        );
        let contenders = [
            ("lifecycle, new connection each", Kind::LifecycleGrpc, false),
            ("lifecycle, one channel", Kind::LifecycleGrpc, true),
            (
                "tonic-health, new connection each",
                Kind::TonicHealth,
                false,
            ),
            ("tonic-health, one channel", Kind::TonicHealth, true),
        ];
        for (name, ..) in &contenders {
            figure.rows.push(Row::new(*name, 2));
        }
        for _ in 0..bench.rounds {
            let lifecycle = bench.start_ready(Kind::LifecycleGrpc, load, &[])?;
            let tonic = bench.start_ready(Kind::TonicHealth, load, &[])?;
            std::thread::sleep(Duration::from_millis(200));
            for (i, (name, kind, one_channel)) in contenders.iter().enumerate() {
                let (service, name_checked) = if *kind == Kind::TonicHealth {
                    (&tonic, "")
                } else {
                    (&lifecycle, "livez")
                };
                let mut checker = Checker::new(service.addr, *one_channel)?;
                let mut samples = Vec::with_capacity(bench.probes);
                for _ in 0..bench.probes {
                    let latency = checker
                        .check(name_checked, Duration::from_secs(1))
                        .map_err(|e| format!("{name}: {e}"))?;
                    samples.push(latency);
                }
                figure.rows[i].values[0].push(quantile_ms(&samples, 0.99));
                figure.rows[i].values[1].push(quantile_ms(&samples, 0.5));
            }
        }
        let (tonic_new, tonic_one) = (figure.rows[2].clone_values(), figure.rows[3].clone_values());
        figure.rows[0].ratio_to(&tonic_new, "tonic-health's p99, new connections");
        figure.rows[1].ratio_to(&tonic_one, "tonic-health's p99, one channel");
        if load == "busy" {
            for (life, tonic) in [(0, &tonic_new), (1, &tonic_one)] {
                let p99 = figure.rows[life].median(0);
                let text = format!(
                    "p99 ≥ 10× better than tonic-health, {}",
                    if life == 0 {
                        "new connection each"
                    } else {
                        "one channel"
                    }
                );
                figure.goal(
                    &text,
                    tonic.median(0) >= 10.0 * p99,
                    format!(
                        "{:.1}× ({} ms against {} ms)",
                        tonic.median(0) / p99,
                        number(p99),
                        number(tonic.median(0))
                    ),
                );
            }
        }
        figures.push(figure);
    }
    Ok(figures)
}

/// A `/metrics` scrape of a service with fifty checks.
pub fn scrape(bench: &Bench) -> Result<Vec<Figure>, String> {
    let mut figure = Figure::new(
        "/metrics scrape with 50 checks",
        &format!(
            "bench/lifecycle's fifty checks (20 liveness, 20 readiness, 10 startup), each probed once \
             first so that every series is there; then {} scrapes per round, a new connection each, 1 ms \
             apart. Latency in ms from the connect to the last byte.",
            bench.probes
        ),
        &["p99 ms", "p50 ms", "max ms"],
    );
    let mut row = Row::new("lifecycle /metrics", 3);
    for _ in 0..bench.rounds {
        let service = bench.start_ready(Kind::Lifecycle50, "idle", &[])?;
        for path in ["/livez", "/readyz", "/startupz"] {
            probe(service.addr, path, Duration::from_secs(1))?;
        }
        let mut samples = Vec::new();
        let (mut size, mut lines) = (0, 0);
        for _ in 0..bench.probes {
            let answer = probe(service.addr, "/metrics", Duration::from_secs(1))?;
            if answer.status != 200
                || !answer
                    .body
                    .contains("lifecycle_check_up{kind=\"liveness\",name=\"l20\"}")
            {
                return Err(format!(
                    "/metrics answered {} without the fifty checks' series",
                    answer.status
                ));
            }
            size = answer.body.len();
            lines = answer.body.lines().count();
            samples.push(answer.latency);
            std::thread::sleep(Duration::from_millis(1));
        }
        row.note = format!("{} KiB, {lines} lines", size / 1024);
        row.values[0].push(quantile_ms(&samples, 0.99));
        row.values[1].push(quantile_ms(&samples, 0.5));
        row.values[2].push(quantile_ms(&samples, 1.0));
    }
    let p99 = row.median(0);
    figure.goal(
        "a scrape < 5 ms",
        p99 < 5.0,
        format!("p99 {} ms, max {} ms", number(p99), number(row.median(2))),
    );
    figure.rows.push(row);
    Ok(vec![figure])
}

/// Clean release builds of the quick start and of plain tokio + hyper,
/// their wall and CPU time, and what the quick start compiles that plain
/// tokio does not, crate by crate.
pub fn build(bench: &Bench) -> Result<Vec<Figure>, String> {
    let mut figure = Figure::new(
        "Clean release build",
        &format!(
            "`cargo build --release --locked --timings -p PACKAGE` into an empty target directory, \
             dependencies already downloaded, {} times each, in s of wall time, and the CPU time (user \
             and system) of cargo and every compiler it ran. plain tokio + hyper is bench/plain-tokio \
             (tokio with every feature, hyper, hyper-util, http-body-util); the quick start has the \
             runtime's default features.",
            bench.builds
        ),
        &["s", "CPU s"],
    );
    let contenders = [
        ("the quick start (lifecycle)", "quickstart"),
        ("plain tokio + hyper", "bench-plain-tokio"),
    ];
    for (name, _) in &contenders {
        figure.rows.push(Row::new(*name, 2));
    }
    if bench.builds == 0 {
        figure
            .notes
            .push("Not measured in this run (`--builds 0`).".into());
        return Ok(vec![figure]);
    }
    // Per contender, each unit's compile time in every build.
    let mut units: [Vec<(String, Vec<f64>)>; 2] = Default::default();
    for _ in 0..bench.builds {
        for (i, (_, package)) in contenders.iter().enumerate() {
            let target = tempdir("build")?;
            let cpu_before = children_cpu_seconds();
            let started = Instant::now();
            let status = Command::new("cargo")
                .args([
                    "build",
                    "--release",
                    "--locked",
                    "--quiet",
                    "--timings",
                    "-p",
                    package,
                ])
                .env("CARGO_TARGET_DIR", &target)
                .current_dir(&bench.root)
                .status()
                .map_err(|e| format!("cargo: {e}"))?;
            let took = started.elapsed();
            let cpu = children_cpu_seconds() - cpu_before;
            let timings = std::fs::read_to_string(target.join("cargo-timings/cargo-timing.html"));
            let _ = std::fs::remove_dir_all(&target);
            if !status.success() {
                return Err(format!("cargo build -p {package} failed ({status})"));
            }
            figure.rows[i].values[0].push(took.as_secs_f64());
            figure.rows[i].values[1].push(cpu);
            let timings = timings.map_err(|e| format!("cargo --timings wrote no report: {e}"))?;
            for (unit, seconds) in unit_seconds(&timings)? {
                match units[i].iter_mut().find(|(name, _)| *name == unit) {
                    Some((_, all)) => all.push(seconds),
                    None => units[i].push((unit, vec![seconds])),
                }
            }
        }
    }
    let plain = figure.rows[1].clone_values();
    figure.rows[0].ratio_to(&plain, "plain tokio + hyper");
    let quick = figure.rows[0].median(0);
    figure.goal_plus(
        "≤ plain tokio + hyper + 20 s",
        (quick, plain.median(0)),
        20.0,
        " s",
    );
    figure.notes.push(crate_account(&units[0], &units[1]));
    Ok(vec![figure])
}

/// User plus system CPU time of every child process waited for so far, and
/// of their own children waited for (cargo's compilers), in s.
fn children_cpu_seconds() -> f64 {
    // SAFETY: getrusage(2) fills the struct it is given.
    let usage = unsafe {
        let mut usage = std::mem::zeroed::<libc::rusage>();
        libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage);
        usage
    };
    let seconds = |time: libc::timeval| time.tv_sec as f64 + time.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

/// Each crate's compile time in one `cargo build --timings` report (its
/// build script's compile and run added to it), by `name version`, and the
/// binary's own (`name "bin"`).
fn unit_seconds(report: &str) -> Result<Vec<(String, f64)>, String> {
    // The report is HTML with its data as a script constant.
    let data = report
        .split_once("const UNIT_DATA = ")
        .and_then(|(_, rest)| rest.split_once(";\n"))
        .map(|(data, _)| data)
        .ok_or("no UNIT_DATA in cargo's timing report")?;
    let data: serde_json::Value =
        serde_json::from_str(data).map_err(|e| format!("cargo's timing report: {e}"))?;
    let mut seconds: Vec<(String, f64)> = Vec::new();
    for unit in data.as_array().ok_or("UNIT_DATA is not a list")? {
        let field = |key: &str| unit[key].as_str().unwrap_or_default();
        let name = if field("target").contains("\"bin\"") {
            format!(
                "{} (the binary: its code generation and link)",
                field("name")
            )
        } else {
            format!("{} {}", field("name"), field("version"))
        };
        let duration = unit["duration"].as_f64().unwrap_or(0.0);
        match seconds.iter_mut().find(|(known, _)| *known == name) {
            Some((_, total)) => *total += duration,
            None => seconds.push((name, duration)),
        }
    }
    Ok(seconds)
}

/// What the quick start compiles beyond plain tokio + hyper: each crate
/// only its build has, and each binary, by median compile time.
fn crate_account(quick: &[(String, Vec<f64>)], plain: &[(String, Vec<f64>)]) -> String {
    let mut extra: Vec<(&str, f64)> = quick
        .iter()
        .filter(|(name, _)| {
            name.ends_with("link)") || !plain.iter().any(|(other, _)| other == name)
        })
        .map(|(name, all)| (name.as_str(), median(all)))
        .collect();
    extra.sort_by(|a, b| b.1.total_cmp(&a.1));
    let binaries: Vec<String> = plain
        .iter()
        .filter(|(name, _)| name.ends_with("link)"))
        .map(|(name, all)| format!("{name} {} s", number(median(all))))
        .collect();
    let listed: Vec<String> = extra
        .iter()
        .filter(|(_, seconds)| *seconds >= 0.3)
        .map(|(name, seconds)| format!("{name} {} s", number(*seconds)))
        .collect();
    let rest: f64 = extra
        .iter()
        .filter(|(_, seconds)| *seconds < 0.3)
        .map(|(_, seconds)| seconds)
        .sum();
    format!(
        "What the quick start compiles that plain tokio + hyper does not, by each crate's compile time \
         (the median over the builds from cargo's `--timings`; on two cores the crates overlap, so they \
         add up to more than the difference in wall time): {}; {} more crates under 0.3 s each, {} s in \
         all. Plain tokio + hyper's own: {}.",
        listed.join(", "),
        extra.len() - listed.len(),
        number(rest),
        binaries.join(", ")
    )
}

fn tempdir(what: &str) -> Result<PathBuf, String> {
    static MADE: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
    let n = MADE.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let dir =
        std::env::temp_dir().join(format!("lifecycle-bench-{what}-{}-{n}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}
