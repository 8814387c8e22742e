//! Prometheus metrics (cargo feature `metrics`, on by default): what
//! lifecycle knows of its checks, probes, phases, hooks and the application
//! runtime, served as `GET /metrics` on the probe port in the OpenMetrics
//! text format, with the application's own metrics if it registers them
//! with [`register`].
//!
//! | series | meaning |
//! | --- | --- |
//! | `lifecycle_check_up{kind, name}` | 1/0, the last result of each check that has run, built-ins included |
//! | `lifecycle_check_duration_seconds{kind, name}` | histogram of run durations |
//! | `lifecycle_check_runs_total{kind, name, result}` | `result`: ok, failed, timeout, panic |
//! | `lifecycle_probe_requests_total{protocol, endpoint, code}` | probes answered over `http` or `grpc`, by endpoint (a closed set) and HTTP status or gRPC health status |
//! | `lifecycle_phase{phase}` | 1 for the current phase, 0 for the others |
//! | `lifecycle_hook_duration_seconds{kind, name}` | `on_startup` and `on_shutdown` hooks |
//! | `lifecycle_startup_duration_seconds` | from the start of `main` to phase `running` |
//! | `lifecycle_runtime_last_progress_seconds` | since the application runtime's heartbeat last ticked |
//! | `lifecycle_log_lines_dropped_total` | log lines lost to a stalled or broken log pipe |
//! | `lifecycle_runtime_workers`, `lifecycle_runtime_alive_tasks`, `lifecycle_runtime_global_queue_depth` | the application runtime's stable tokio metrics |
//! | `lifecycle_connections_open`, `lifecycle_connections_ended_total` | connections accepted through `net::TcpListener` that are open; those lifecycle ended at the end of the connection drain |
//!
//! Checks record their runs as they happen (a background check's on its
//! schedule, an on-demand check's when probed); the phase, the runtime's
//! last progress, dropped log lines and the runtime's tokio metrics are read
//! when scraped. A scrape reads memory only: it never runs a check, and a
//! stalled application runtime never holds it up.
//!
//! ```no_run
//! use lifecycle_runtime::metrics::prometheus_client::metrics::counter::Counter;
//!
//! let orders = Counter::<u64>::default();
//! lifecycle_runtime::metrics::register(|registry| {
//!     registry.register("shop_orders", "Orders taken", orders.clone());
//! });
//! orders.inc(); // served as shop_orders_total on the probe port's /metrics
//! ```

use std::borrow::Cow;
use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, TryLockError};
use std::time::Duration;

use once_cell::sync::{Lazy, OnceCell};
use prometheus_client::collector::Collector;
use prometheus_client::encoding::{DescriptorEncoder, EncodeLabelSet, EncodeMetric};
use prometheus_client::metrics::counter::{ConstCounter, Counter};
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::{ConstGauge, Gauge};
use prometheus_client::metrics::histogram::Histogram;
use prometheus_client::registry::Registry;
use tokio::runtime::Handle;

use hyper::StatusCode;

/// The crate lifecycle's metrics are made with, for the application's own:
/// register them with [`register`] in this version's types.
pub use prometheus_client;

/// Registers the application's metrics in the registry `/metrics` serves,
/// beside lifecycle's own: `register` hands it to `f` and takes it back
/// when `f` returns, so that no guard can be kept, and returns what `f`
/// returns. (kubert's admin server and prometheus-client's examples
/// hand out a `&mut Registry` the same way.) A scrape meanwhile waits for
/// it a little, then answers 503; probes never wait for it.
///
/// ```no_run
/// use lifecycle_runtime::metrics::prometheus_client::metrics::counter::Counter;
/// use lifecycle_runtime::metrics::prometheus_client::metrics::gauge::Gauge;
///
/// let (orders, carts) = lifecycle_runtime::metrics::register(|registry| {
///     let shop = registry.sub_registry_with_prefix("shop");
///     let orders = Counter::<u64>::default();
///     shop.register("orders", "Orders taken", orders.clone());
///     let carts = Gauge::<i64>::default();
///     shop.register("open_carts", "Carts not yet checked out", carts.clone());
///     (orders, carts)
/// });
/// orders.inc();
/// carts.set(3);
/// ```
///
/// # Panics
///
/// When called from inside `f` (the registry is `f`'s already): register
/// everything in the one closure.
pub fn register<R>(f: impl FnOnce(&mut Registry) -> R) -> R {
    thread_local! {
        static REGISTERING: Cell<bool> = const { Cell::new(false) };
    }
    /// Clears the flag however `f` ends, a panic included.
    struct Registering;
    impl Drop for Registering {
        fn drop(&mut self) {
            REGISTERING.with(|registering| registering.set(false));
        }
    }
    if REGISTERING.with(|registering| registering.replace(true)) {
        panic!(
            "lifecycle_runtime::metrics::register called from inside its own closure: \
             register everything with the registry the closure was given"
        );
    }
    let _registering = Registering;
    f(&mut registry())
}

/// The registry, locked, for lifecycle's own use.
fn registry() -> MutexGuard<'static, Registry> {
    METRICS
        .registry
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The media type of the OpenMetrics text format, which Prometheus asks
/// for first.
pub(crate) const CONTENT_TYPE: &str = "application/openmetrics-text; version=1.0.0; charset=utf-8";

/// The registry as text.
#[cfg(test)]
fn encoded() -> String {
    encode_registry(&registry())
}

fn encode_registry(registry: &Registry) -> String {
    let mut text = String::new();
    // Writing into a String does not fail; a collector's error would be
    // ours, and an answer cut short is better than none.
    let _ = prometheus_client::encoding::text::encode(&mut text, registry);
    text
}

/// The registry as text, if the application lets go of it within `wait`.
/// Never blocks the thread: the probe server has one, which every probe
/// shares, and an application may hold the guard for as long as it likes.
pub(crate) async fn encode(wait: Duration) -> Option<String> {
    let until = tokio::time::Instant::now() + wait;
    loop {
        // The guard is dropped before any wait.
        let text = match METRICS.registry.try_lock() {
            Ok(registry) => Some(encode_registry(&registry)),
            Err(TryLockError::Poisoned(poisoned)) => Some(encode_registry(&poisoned.into_inner())),
            Err(TryLockError::WouldBlock) => None,
        };
        if text.is_some() || tokio::time::Instant::now() >= until {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// A check's labels: its kind and name.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct CheckLabels {
    kind: &'static str,
    name: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RunLabels {
    kind: &'static str,
    name: Cow<'static, str>,
    result: &'static str,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct ProbeLabels {
    protocol: &'static str,
    endpoint: Cow<'static, str>,
    code: Cow<'static, str>,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct HookLabels {
    kind: &'static str,
    name: &'static str,
}

/// How a check's run ended, for `lifecycle_check_runs_total{result}`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RunResult {
    Ok,
    Failed,
    Timeout,
    Panic,
}

impl RunResult {
    fn as_str(self) -> &'static str {
        match self {
            RunResult::Ok => "ok",
            RunResult::Failed => "failed",
            RunResult::Timeout => "timeout",
            RunResult::Panic => "panic",
        }
    }
}

/// The registry `/metrics` serves, and the series lifecycle records in it.
struct Metrics {
    registry: Mutex<Registry>,
    series: Series,
}

/// The series lifecycle records as things happen.
struct Series {
    check_up: Family<CheckLabels, Gauge>,
    check_duration: Family<CheckLabels, Histogram, fn() -> Histogram>,
    check_runs: Family<RunLabels, Counter>,
    probe_requests: Family<ProbeLabels, Counter>,
    hook_duration: Family<HookLabels, Gauge<f64, AtomicU64>>,
    startup_duration: Gauge<f64, AtomicU64>,
}

/// Check durations from a millisecond to ten seconds: timeouts are
/// typically a few hundred milliseconds.
fn check_duration_histogram() -> Histogram {
    Histogram::new([
        0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0,
    ])
}

impl Series {
    /// The series, registered in `registry`.
    fn register(registry: &mut Registry) -> Series {
        let series = Series {
            check_up: Family::default(),
            check_duration: Family::new_with_constructor(
                check_duration_histogram as fn() -> Histogram,
            ),
            check_runs: Family::default(),
            probe_requests: Family::default(),
            hook_duration: Family::default(),
            startup_duration: Gauge::default(),
        };
        registry.register(
            "lifecycle_check_up",
            "The last result of each check that has run: 1 passed, 0 failed",
            series.check_up.clone(),
        );
        registry.register(
            "lifecycle_check_duration_seconds",
            "How long each run of a check took",
            series.check_duration.clone(),
        );
        registry.register(
            "lifecycle_check_runs",
            "Runs of each check, by how they ended: ok, failed, timeout, panic",
            series.check_runs.clone(),
        );
        registry.register(
            "lifecycle_probe_requests",
            "Probes answered, by protocol, endpoint and HTTP status or gRPC health status",
            series.probe_requests.clone(),
        );
        registry.register(
            "lifecycle_hook_duration_seconds",
            "How long each on_startup and on_shutdown hook took",
            series.hook_duration.clone(),
        );
        registry.register(
            "lifecycle_startup_duration_seconds",
            "From the start of main to phase running",
            series.startup_duration.clone(),
        );
        series
    }
}

static METRICS: Lazy<Metrics> = Lazy::new(|| {
    let mut registry = Registry::default();
    let series = Series::register(&mut registry);
    Metrics {
        registry: Mutex::new(registry),
        series,
    }
});

/// Whether lifecycle records its series: on unless the service's
/// configuration turned metrics off (`metrics = false`,
/// `LIFECYCLE_METRICS=off`). Nothing serves them then, so a probe does no
/// metric work at all.
static RECORDING: AtomicBool = AtomicBool::new(true);

/// Records lifecycle's series from now on, or stops recording them.
pub(crate) fn set_recording(on: bool) {
    RECORDING.store(on, Ordering::Relaxed);
}

fn recording() -> bool {
    RECORDING.load(Ordering::Relaxed)
}

/// One check's series, looked up in their families the first time each is
/// recorded and then updated in place: a probe records its checks without
/// building labels, allocating or hashing (bench/findings.md). A series
/// appears at its first record, as it would through the family.
pub(crate) struct CheckSeries {
    kind: &'static str,
    name: &'static str,
    up: OnceCell<Gauge>,
    duration: OnceCell<Histogram>,
    /// By [`RunResult`], in its order.
    runs: [OnceCell<Counter>; 4],
}

impl CheckSeries {
    pub(crate) const fn new(kind: &'static str, name: &'static str) -> CheckSeries {
        CheckSeries {
            kind,
            name,
            up: OnceCell::new(),
            duration: OnceCell::new(),
            runs: [const { OnceCell::new() }; 4],
        }
    }

    fn labels(&self) -> CheckLabels {
        CheckLabels {
            kind: self.kind,
            name: Cow::Borrowed(self.name),
        }
    }

    /// A run of the check ended.
    pub(crate) fn ran(&self, result: RunResult, took: Duration) {
        if !recording() {
            return;
        }
        self.duration
            .get_or_init(|| {
                METRICS
                    .series
                    .check_duration
                    .get_or_create_owned(&self.labels())
            })
            .observe(took.as_secs_f64());
        self.result(result == RunResult::Ok);
        self.runs[result as usize]
            .get_or_init(|| {
                METRICS.series.check_runs.get_or_create_owned(&RunLabels {
                    kind: self.kind,
                    name: Cow::Borrowed(self.name),
                    result: result.as_str(),
                })
            })
            .inc();
    }

    /// The check's current result, without a run: a built-in check, or a
    /// background result grown stale.
    pub(crate) fn result(&self, up: bool) {
        if !recording() {
            return;
        }
        self.up
            .get_or_init(|| METRICS.series.check_up.get_or_create_owned(&self.labels()))
            .set(i64::from(up));
    }
}

/// A probe was answered. `endpoint` is one of the closed set the caller
/// made it (never what a client sent); `code` an HTTP status or a gRPC
/// health status name. The usual values are borrowed, so that counting a
/// probe allocates nothing.
pub(crate) fn probe_answered(
    protocol: &'static str,
    endpoint: Cow<'static, str>,
    code: Cow<'static, str>,
) {
    if !recording() {
        return;
    }
    METRICS
        .series
        .probe_requests
        .get_or_create(&ProbeLabels {
            protocol,
            endpoint,
            code,
        })
        .inc();
}

/// The `code` label of an HTTP answer.
pub(crate) fn http_code(status: StatusCode) -> Cow<'static, str> {
    match status {
        StatusCode::OK => Cow::Borrowed("200"),
        StatusCode::SERVICE_UNAVAILABLE => Cow::Borrowed("503"),
        StatusCode::NOT_FOUND => Cow::Borrowed("404"),
        other => Cow::Owned(other.as_str().to_owned()),
    }
}

/// A hook ended.
pub(crate) fn hook_ran(kind: &'static str, name: &'static str, took: Duration) {
    if !recording() {
        return;
    }
    METRICS
        .series
        .hook_duration
        .get_or_create(&HookLabels { kind, name })
        .set(took.as_secs_f64());
}

/// Start-up finished, `took` after `main` started.
pub(crate) fn started(took: Duration) {
    if !recording() {
        return;
    }
    METRICS.series.startup_duration.set(took.as_secs_f64());
}

/// What a scrape reads of the service, from memory, as it is at that
/// moment. The lifecycle answers it (`observed.rs`), so that this module
/// depends on nothing of the crate's.
pub(crate) trait Observed: Send + Sync + 'static {
    /// Each phase's name, in order, and whether it is the current one.
    fn phases(&self) -> Vec<(&'static str, bool)>;
    /// Time since the application runtime's heartbeat last ticked.
    fn silence(&self) -> Duration;
    /// Log lines lost to a stalled or broken log pipe.
    fn log_lines_dropped(&self) -> u64;
    /// The connections accepted through lifecycle's listener that are
    /// open, and those lifecycle ended at the end of the connection drain.
    fn connection_counts(&self) -> (usize, u64);
}

/// Registers the series read at each scrape, from `observed` and the
/// application runtime `app`. Once per process.
pub(crate) fn observe<O: Observed>(observed: Arc<O>, app: Handle) {
    static OBSERVED: OnceCell<()> = OnceCell::new();
    if OBSERVED.set(()).is_ok() {
        registry().register_collector(Box::new(Live { observed, app }));
    }
}

/// What a scrape reads from memory: the phase, the heartbeat, the log's
/// dropped lines, the connections and the application runtime's stable
/// metrics.
struct Live {
    observed: Arc<dyn Observed>,
    app: Handle,
}

impl std::fmt::Debug for Live {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Live").finish_non_exhaustive()
    }
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PhaseLabels {
    phase: &'static str,
}

impl Collector for Live {
    fn encode(&self, mut encoder: DescriptorEncoder) -> Result<(), std::fmt::Error> {
        let gauge = ConstGauge::new(0i64);
        let mut phases = encoder.encode_descriptor(
            "lifecycle_phase",
            "1 for the current phase, 0 for the others",
            None,
            gauge.metric_type(),
        )?;
        for (phase, current) in self.observed.phases() {
            let labels = PhaseLabels { phase };
            ConstGauge::new(i64::from(current)).encode(phases.encode_family(&labels)?)?;
        }

        let silence = ConstGauge::new(self.observed.silence().as_secs_f64());
        silence.encode(encoder.encode_descriptor(
            "lifecycle_runtime_last_progress_seconds",
            "Time since the application runtime's heartbeat last ticked",
            None,
            silence.metric_type(),
        )?)?;

        let dropped = ConstCounter::new(self.observed.log_lines_dropped());
        dropped.encode(encoder.encode_descriptor(
            "lifecycle_log_lines_dropped",
            "Log lines lost to a stalled or broken log pipe",
            None,
            dropped.metric_type(),
        )?)?;

        let (open, ended) = self.observed.connection_counts();
        let open = ConstGauge::new(open as i64);
        open.encode(encoder.encode_descriptor(
            "lifecycle_connections_open",
            "Connections accepted through lifecycle's listener that are open",
            None,
            open.metric_type(),
        )?)?;
        let ended = ConstCounter::new(ended);
        ended.encode(encoder.encode_descriptor(
            "lifecycle_connections_ended",
            "Connections lifecycle ended at the end of the connection drain",
            None,
            ended.metric_type(),
        )?)?;

        let runtime = self.app.metrics();
        for (name, help, value) in [
            (
                "lifecycle_runtime_workers",
                "Worker threads of the application runtime",
                runtime.num_workers(),
            ),
            (
                "lifecycle_runtime_alive_tasks",
                "Tasks alive on the application runtime",
                runtime.num_alive_tasks(),
            ),
            (
                "lifecycle_runtime_global_queue_depth",
                "Tasks waiting in the application runtime's global queue",
                runtime.global_queue_depth(),
            ),
        ] {
            let gauge = ConstGauge::new(value as i64);
            gauge.encode(encoder.encode_descriptor(name, help, None, gauge.metric_type())?)?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::lifecycle::Lifecycle;

    #[test]
    fn register_lends_the_registry_for_one_closure_and_says_so_when_nested() {
        let counter = register(|registry| {
            let counter = Counter::<u64>::default();
            registry.register(
                "unit_registered",
                "Registered by a unit test",
                counter.clone(),
            );
            counter
        });
        counter.inc();
        assert!(encode_registry(&registry()).contains("unit_registered_total 1"));

        let nested = std::panic::catch_unwind(|| register(|_| register(|_| ())));
        let payload = nested.unwrap_err();
        let message = payload
            .downcast_ref::<&str>()
            .copied()
            .or(payload.downcast_ref::<String>().map(String::as_str))
            .unwrap();
        assert!(
            message.contains("called from inside its own closure"),
            "{message}"
        );
        // Neither the lock nor the flag outlives the panic.
        assert_eq!(register(|_| 7), 7);
    }

    /// The tests that read what was recorded, one at a time: one of them
    /// turns recording off, which is process-wide.
    static RECORDING_TESTS: Mutex<()> = Mutex::new(());

    #[tokio::test]
    async fn with_metrics_off_nothing_is_recorded() {
        let _one = RECORDING_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        set_recording(false);
        let unseen = CheckSeries::new("liveness", "recorded_while_off");
        unseen.ran(RunResult::Ok, Duration::from_millis(1));
        unseen.result(true);
        probe_answered("http", "recorded_while_off".into(), "200".into());
        hook_ran("on_startup", "recorded_while_off", Duration::from_millis(1));
        set_recording(true);
        let text = encoded();
        assert!(!text.contains("recorded_while_off"), "{text}");
        // The series made while off were never looked up: once on again,
        // they appear at their first record.
        unseen.result(true);
        assert!(
            encoded()
                .contains("lifecycle_check_up{kind=\"liveness\",name=\"recorded_while_off\"} 1"),
            "{}",
            encoded()
        );
    }

    #[tokio::test]
    async fn the_series_are_named_and_labelled_as_documented() {
        let _one = RECORDING_TESTS.lock().unwrap_or_else(|p| p.into_inner());
        let db = CheckSeries::new("readiness", "db");
        db.ran(RunResult::Timeout, Duration::from_millis(5));
        db.ran(RunResult::Ok, Duration::from_millis(2));
        CheckSeries::new("liveness", "runtime").result(true);
        probe_answered("http", "readyz".into(), "503".into());
        probe_answered("grpc", "healthz".into(), "NOT_SERVING".into());
        hook_ran("on_startup", "warm_cache", Duration::from_millis(1500));
        started(Duration::from_millis(1750));
        let lifecycle = Arc::new(Lifecycle::new());
        observe(lifecycle.clone(), Handle::current());
        lifecycle.finish_startup().unwrap();

        let text = encoded();
        for line in [
            "lifecycle_check_up{kind=\"readiness\",name=\"db\"} 1",
            "lifecycle_check_up{kind=\"liveness\",name=\"runtime\"} 1",
            "lifecycle_check_runs_total{kind=\"readiness\",name=\"db\",result=\"timeout\"} 1",
            "lifecycle_check_runs_total{kind=\"readiness\",name=\"db\",result=\"ok\"} 1",
            "lifecycle_check_duration_seconds_count{kind=\"readiness\",name=\"db\"} 2",
            "lifecycle_probe_requests_total{protocol=\"http\",endpoint=\"readyz\",code=\"503\"} 1",
            "lifecycle_probe_requests_total{protocol=\"grpc\",endpoint=\"healthz\",code=\"NOT_SERVING\"} 1",
            "lifecycle_hook_duration_seconds{kind=\"on_startup\",name=\"warm_cache\"} 1.5",
            "lifecycle_startup_duration_seconds 1.75",
            "lifecycle_phase{phase=\"starting\"} 0",
            "lifecycle_phase{phase=\"running\"} 1",
            "lifecycle_log_lines_dropped_total 0",
        ] {
            assert!(text.lines().any(|l| l == line), "no {line:?} in:\n{text}");
        }
        for series in [
            "lifecycle_runtime_last_progress_seconds ",
            "lifecycle_runtime_workers ",
            "lifecycle_runtime_alive_tasks ",
            "lifecycle_runtime_global_queue_depth ",
        ] {
            assert!(
                text.lines().any(|l| l.starts_with(series)),
                "no {series:?} in:\n{text}"
            );
        }
        // Every series has its HELP; the text ends as OpenMetrics says.
        let types = text.lines().filter(|l| l.starts_with("# TYPE ")).count();
        let helps = text.lines().filter(|l| l.starts_with("# HELP ")).count();
        assert_eq!(types, helps, "{text}");
        assert!(!text.contains("# TYPE lifecycle_") || !text.contains(" info\n"));
        assert!(text.ends_with("# EOF\n"), "{text}");
    }
}
