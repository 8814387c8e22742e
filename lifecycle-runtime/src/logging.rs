//! Logging that never blocks the lifecycle, and the default `tracing`
//! subscriber (cargo feature `tracing-subscriber`): honours `RUST_LOG`
//! (default `info`), writes to stderr, and JSON lines with
//! `LIFECYCLE_LOG_FORMAT=json`.
//!
//! `RUST_LOG` is read as a list of `level` and `target=level` directives
//! (tracing-subscriber's `Targets`), which needs no regular expressions;
//! the cargo feature `env-filter` reads it with `EnvFilter` instead, for
//! span and field directives, at the cost of the regex crates in the
//! build. A value the filter cannot take is logged once, and `info` is
//! used.
//!
//! Every line lifecycle writes to stderr, through its subscriber or as a
//! fallback without one, goes into a bounded queue that a thread of its
//! own (`lifecycle-log`) writes out. A log pipe that stalls (nobody reads
//! it) blocks that thread alone; the queue then fills and new lines are
//! dropped rather than waited for. A pipe that breaks (the reader went
//! away) fails the writes, which are ignored. Either way the lines lost are
//! counted ([`log_lines_dropped`]) and the count is logged once stderr
//! takes lines again. Nothing waits on that thread: at exit the queue gets
//! a moment to drain only while the thread makes progress.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, Write};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Condvar, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use crate::config::LogFormat;

/// How many bytes of log lines may wait for stderr; a line that does not
/// fit is dropped.
const QUEUE_BYTES: usize = 256 * 1024;
/// At exit, how often to look whether the writer is making progress: when
/// it has not and stderr cannot take a byte, stderr is taken for stalled
/// and the process exits without the rest.
const EXIT_STALL: Duration = Duration::from_millis(20);
/// At exit, the longest wait for the queue to drain at all.
const EXIT_DRAIN_MAX: Duration = Duration::from_millis(250);

/// Lines lost: dropped from a full queue or failed to write.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// Lines the writer is done with (written or failed): its progress.
static DONE: AtomicU64 = AtomicU64::new(0);
/// The writer thread was started (or its start was attempted).
static STARTED: AtomicBool = AtomicBool::new(false);
/// Lifecycle's subscriber is the one installed: the report of dropped
/// lines goes through it, formatted like every other line.
static OWN_SUBSCRIBER: AtomicBool = AtomicBool::new(false);

static QUEUE: Queue = Queue {
    state: Mutex::new(State {
        lines: VecDeque::new(),
        bytes: 0,
        writing: false,
        exiting: false,
    }),
    queued: Condvar::new(),
    progressed: Condvar::new(),
};

struct Queue {
    state: Mutex<State>,
    /// Wakes the writer: a line was queued.
    queued: Condvar,
    /// Wakes an exit waiting for the queue to drain: a line is done.
    progressed: Condvar,
}

struct State {
    lines: VecDeque<Vec<u8>>,
    /// The bytes in `lines`.
    bytes: usize,
    /// The writer is in a write to stderr, which may never return.
    writing: bool,
    /// A thread is ending the process: only its lines are queued now.
    exiting: bool,
}

thread_local! {
    /// This thread is the one ending the process.
    static EXITING_THREAD: Cell<bool> = const { Cell::new(false) };
}

/// Before the exit's reason is logged: from now on only this thread's
/// lines are queued, so that the reason stays the last line logged
/// whatever other threads (hooks still running, the main thread moving
/// on) log in the moments before the process is gone.
pub(crate) fn only_this_thread_from_now() {
    // Set under the lock that every queued line takes: a line of another
    // thread is queued before this, or not at all.
    let mut state = state();
    EXITING_THREAD.with(|exiting| exiting.set(true));
    state.exiting = true;
}

/// The queue, held only to push or pop a line: never across a write.
fn state() -> MutexGuard<'static, State> {
    QUEUE.state.lock().unwrap_or_else(PoisonError::into_inner)
}

/// How many log lines were lost so far, to a full queue or a failed
/// write: `lifecycle_log_lines_dropped_total`.
pub(crate) fn log_lines_dropped() -> u64 {
    DROPPED.load(Ordering::Relaxed)
}

/// Queues `line` (a whole line, its newline included) for stderr, or drops
/// it when the queue is full. Never waits on stderr.
pub(crate) fn write_line(line: Vec<u8>) {
    start_writer();
    let mut state = state();
    // A thread being torn down has no flag left: not the exiting one.
    if state.exiting && !EXITING_THREAD.try_with(Cell::get).unwrap_or(false) {
        return;
    }
    if state.bytes + line.len() > QUEUE_BYTES {
        drop(state);
        DROPPED.fetch_add(1, Ordering::Relaxed);
        return;
    }
    state.bytes += line.len();
    state.lines.push_back(line);
    drop(state);
    QUEUE.queued.notify_one();
}

/// A line of lifecycle's own when no subscriber is installed
/// (`tracing = false` and none of the application's yet).
pub(crate) fn fallback_line(text: &str) {
    write_line(format!("{text}\n").into_bytes());
}

/// Before the process exits: lets the queued lines reach stderr while the
/// writer makes progress, so that the last lines (the exit's reason among
/// them) are not lost; returns at once when stderr is stalled. A writer
/// that is merely slow to be scheduled (a loaded node, a CPU limit) is
/// waited for up to `EXIT_DRAIN_MAX`: only a stderr that cannot take a byte
/// means stalled.
pub(crate) fn drain_before_exit() {
    if !STARTED.load(Ordering::SeqCst) {
        return;
    }
    let until = Instant::now() + EXIT_DRAIN_MAX;
    let mut state = state();
    let mut done = DONE.load(Ordering::SeqCst);
    while !state.lines.is_empty() || state.writing {
        let now = Instant::now();
        if now >= until {
            return;
        }
        let (next, waited) = QUEUE
            .progressed
            .wait_timeout(state, EXIT_STALL.min(until - now))
            .unwrap_or_else(PoisonError::into_inner);
        state = next;
        let now_done = DONE.load(Ordering::SeqCst);
        if waited.timed_out() && now_done == done && !stderr_writable() {
            // Stuck in a write: stderr is stalled.
            return;
        }
        done = now_done;
    }
}

/// Whether stderr can take a byte now (poll, without waiting): false for a
/// pipe nobody reads that is full.
#[cfg(unix)]
fn stderr_writable() -> bool {
    let mut stderr = libc::pollfd {
        fd: libc::STDERR_FILENO,
        events: libc::POLLOUT,
        revents: 0,
    };
    // SAFETY: one valid pollfd, a zero timeout.
    let ready = unsafe { libc::poll(&mut stderr, 1, 0) };
    // POLLNVAL: a device poll cannot watch (a terminal, on macOS); it
    // cannot tell, so writable, bounded by `EXIT_DRAIN_MAX` as on Windows.
    ready == 1 && stderr.revents & (libc::POLLOUT | libc::POLLNVAL) != 0
}

/// Windows cannot ask a pipe whether a write would block without writing:
/// stderr counts as writable, so a stalled one holds the exit for
/// `EXIT_DRAIN_MAX` at most, never longer.
#[cfg(not(unix))]
fn stderr_writable() -> bool {
    true
}

fn start_writer() {
    if STARTED.swap(true, Ordering::SeqCst) {
        return;
    }
    // Without the thread, lines queue until the queue is full, then are
    // dropped: logging still never blocks.
    let _ = std::thread::Builder::new()
        .name("lifecycle-log".into())
        .spawn(write_lines);
}

/// The writer thread: one line at a time from the queue to stderr.
fn write_lines() {
    let mut stderr = io::stderr();
    let mut reported = 0;
    loop {
        let line = {
            let mut state = state();
            loop {
                if let Some(line) = state.lines.pop_front() {
                    state.bytes -= line.len();
                    state.writing = true;
                    break line;
                }
                state = QUEUE
                    .queued
                    .wait(state)
                    .unwrap_or_else(PoisonError::into_inner);
            }
        };
        // Blocks while the pipe is full; fails (ignored) once it is broken.
        let written = stderr.write_all(&line).is_ok();
        if !written {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        let drained = {
            let mut state = state();
            state.writing = false;
            DONE.fetch_add(1, Ordering::SeqCst);
            state.lines.is_empty()
        };
        QUEUE.progressed.notify_all();
        // stderr takes lines again and has taken every queued one: say how
        // many were lost.
        let dropped = log_lines_dropped();
        if written && drained && dropped > reported {
            reported = dropped;
            report_dropped(dropped);
        }
    }
}

fn report_dropped(dropped: u64) {
    const WHY: &str = "log lines dropped while stderr was full or closed";
    if OWN_SUBSCRIBER.load(Ordering::SeqCst) {
        tracing::warn!(dropped, "{WHY}");
    } else {
        fallback_line(&format!("lifecycle: {WHY} dropped={dropped}"));
    }
}

/// One log line as the subscriber writes it, queued whole when dropped.
#[cfg(feature = "tracing-subscriber")]
pub(crate) struct LineWriter(Vec<u8>);

#[cfg(feature = "tracing-subscriber")]
impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(feature = "tracing-subscriber")]
impl Drop for LineWriter {
    fn drop(&mut self) {
        if !self.0.is_empty() {
            write_line(std::mem::take(&mut self.0));
        }
    }
}

/// stderr through the queue, for the subscriber.
#[cfg(feature = "tracing-subscriber")]
#[derive(Clone, Copy)]
struct QueuedStderr;

#[cfg(feature = "tracing-subscriber")]
impl<'a> tracing_subscriber::fmt::MakeWriter<'a> for QueuedStderr {
    type Writer = LineWriter;

    fn make_writer(&'a self) -> LineWriter {
        LineWriter(Vec::new())
    }
}

/// The level for every target when `RUST_LOG` is unset or empty, and when
/// the filter cannot take its value.
#[cfg(feature = "tracing-subscriber")]
const DEFAULT_LEVEL: tracing::level_filters::LevelFilter =
    tracing::level_filters::LevelFilter::INFO;

/// What `RUST_LOG` filters with: tracing-subscriber's `EnvFilter` with the
/// feature `env-filter`, its `Targets` without.
#[cfg(feature = "env-filter")]
type LogFilter = tracing_subscriber::EnvFilter;
#[cfg(all(feature = "tracing-subscriber", not(feature = "env-filter")))]
type LogFilter = tracing_subscriber::filter::Targets;

/// The filter for `RUST_LOG` as read from the environment: `info` when it
/// is unset or empty, or when its value cannot be taken, with the warning
/// that says why.
#[cfg(feature = "tracing-subscriber")]
fn log_filter(rust_log: Result<String, std::env::VarError>) -> (LogFilter, Option<String>) {
    let value = match rust_log {
        // A value with no directive at all (``, ` `, `,`) is unset: `Targets`
        // would read nothing as `error`.
        Ok(value)
            if value
                .split(',')
                .any(|directive| !directive.trim().is_empty()) =>
        {
            value
        }
        Ok(_) | Err(std::env::VarError::NotPresent) => return (default_filter(), None),
        Err(std::env::VarError::NotUnicode(value)) => {
            return (
                default_filter(),
                Some(format!(
                    "RUST_LOG={value:?} is not UTF-8: logging at `{DEFAULT_LEVEL}` instead"
                )),
            )
        }
    };
    match parse_filter(&value) {
        Ok(filter) => (filter, None),
        Err(why) => (
            default_filter(),
            Some(format!(
                "RUST_LOG={value:?} {why}: logging at `{DEFAULT_LEVEL}` instead"
            )),
        ),
    }
}

#[cfg(feature = "env-filter")]
fn default_filter() -> LogFilter {
    tracing_subscriber::EnvFilter::default().add_directive(DEFAULT_LEVEL.into())
}

#[cfg(all(feature = "tracing-subscriber", not(feature = "env-filter")))]
fn default_filter() -> LogFilter {
    tracing_subscriber::filter::Targets::new().with_default(DEFAULT_LEVEL)
}

/// `RUST_LOG`'s full syntax, as `EnvFilter` reads it; the error is the
/// rest of a sentence starting with the value.
#[cfg(feature = "env-filter")]
fn parse_filter(value: &str) -> Result<LogFilter, String> {
    tracing_subscriber::EnvFilter::builder()
        .parse(value)
        .map_err(|error| format!("is not a valid filter ({error})"))
}

/// `RUST_LOG` as comma-separated `level`, `target=level` and `target`
/// directives (`info`, `my_crate=debug,hyper=warn`), spaces around each
/// ignored. `Targets` takes all of the value or none
/// of it, and would read a span directive (`my_crate[span]=debug`) as an
/// odd target name: one of those, or a directive it rejects, is named in
/// the error, with the feature that reads it. The error is the rest of a
/// sentence starting with the value.
#[cfg(all(feature = "tracing-subscriber", not(feature = "env-filter")))]
fn parse_filter(value: &str) -> Result<LogFilter, String> {
    use std::str::FromStr;
    use tracing_subscriber::filter::Targets;

    const FEATURE: &str = "lifecycle-runtime's cargo feature `env-filter`";
    let directives: Vec<&str> = value
        .split(',')
        .map(str::trim)
        .filter(|directive| !directive.is_empty())
        .collect();
    for directive in &directives {
        if directive.contains(['[', ']', '{', '}']) {
            return Err(format!(
                "has the span or field directive `{directive}`, which needs {FEATURE}"
            ));
        }
        // Not a target: `Targets` would take it for one matching every
        // target.
        let parsed = if directive.starts_with('=') {
            Err("no target before `=`".to_owned())
        } else if directive.ends_with('=') {
            // `Targets` would read a missing level as `error`.
            Err("no level after `=`".to_owned())
        } else {
            Targets::from_str(directive).map_err(|error| error.to_string())
        };
        if let Err(error) = parsed {
            return Err(format!(
                "has the directive `{directive}`, which is not `level`, `target=level` or `target` \
                 ({error}); the full syntax needs {FEATURE}"
            ));
        }
    }
    Targets::from_str(&directives.join(","))
        .map_err(|error| format!("is not a valid filter ({error})"))
}

#[cfg(feature = "tracing-subscriber")]
pub(crate) fn install(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::layer::SubscriberExt;
    use tracing_subscriber::util::SubscriberInitExt;

    let (filter, warning) = log_filter(std::env::var("RUST_LOG"));
    let layer = tracing_subscriber::fmt::layer()
        .with_writer(QueuedStderr)
        .with_ansi(std::io::stderr().is_terminal())
        // Its own report of a failed write goes to stderr with
        // `eprintln!`, which panics on a closed pipe. (The queue never
        // fails a write anyway.)
        .log_internal_errors(false);
    // The filter under the formatter: its level is the subscriber's
    // hint, so `tracing`'s and `log`'s macros below it (debug and trace
    // by default) are cut at the call site instead of reaching it.
    // `try_init` fails only when the application already installed a
    // subscriber, which is then the one to use, with its own filter.
    let registry = tracing_subscriber::registry().with(filter);
    let installed = match format {
        LogFormat::Json => registry.with(layer.json()).try_init(),
        LogFormat::Text => registry.with(layer).try_init(),
    };
    OWN_SUBSCRIBER.store(installed.is_ok(), Ordering::SeqCst);
    if let (Ok(()), Some(warning)) = (installed, warning) {
        tracing::warn!("{warning}");
    }
}

/// Without the feature, `#[service_main]` with `tracing = true` does not
/// compile (see `require_default_subscriber!` below), so this is never
/// reached with `tracing = true`.
#[cfg(not(feature = "tracing-subscriber"))]
pub(crate) fn install(_format: LogFormat) {}

/// Expands to nothing when the default subscriber is built in, and to a
/// compile error naming the feature when it is not: what
/// `#[service_main]` with `tracing = true` (the default) invokes.
#[cfg(feature = "tracing-subscriber")]
#[doc(hidden)]
#[macro_export]
macro_rules! require_default_subscriber {
    () => {};
}

/// Expands to nothing when the default subscriber is built in, and to a
/// compile error naming the feature when it is not: what
/// `#[service_main]` with `tracing = true` (the default) invokes.
#[cfg(not(feature = "tracing-subscriber"))]
#[doc(hidden)]
#[macro_export]
macro_rules! require_default_subscriber {
    () => {
        ::core::compile_error!(
            "#[service_main] installs a log subscriber unless `tracing = false`, and that needs lifecycle-runtime's cargo feature `tracing-subscriber` (on by default): enable it, or write #[service_main(tracing = false)] and install your own subscriber"
        );
    };
}

#[cfg(all(test, feature = "tracing-subscriber"))]
mod tests {
    use super::*;
    use std::env::VarError;
    #[cfg(not(feature = "env-filter"))]
    use tracing::level_filters::LevelFilter;

    fn read(value: &str) -> (LogFilter, Option<String>) {
        log_filter(Ok(value.to_owned()))
    }

    /// The level `filter` lets through for `target`.
    #[cfg(not(feature = "env-filter"))]
    fn level(filter: &LogFilter, target: &str) -> LevelFilter {
        [
            LevelFilter::TRACE,
            LevelFilter::DEBUG,
            LevelFilter::INFO,
            LevelFilter::WARN,
            LevelFilter::ERROR,
        ]
        .into_iter()
        .find(|level| {
            level
                .into_level()
                .is_some_and(|level| filter.would_enable(target, &level))
        })
        .unwrap_or(LevelFilter::OFF)
    }

    #[cfg(not(feature = "env-filter"))]
    fn assert_default(filter: &LogFilter) {
        assert_eq!(level(filter, "my_crate"), LevelFilter::INFO);
        assert_eq!(
            level(filter, "lifecycle_runtime::logging"),
            LevelFilter::INFO
        );
    }

    #[cfg(feature = "env-filter")]
    fn assert_default(filter: &LogFilter) {
        assert_eq!(filter.to_string(), "info");
    }

    #[test]
    fn unset_or_empty_is_info_without_a_warning() {
        for (filter, warning) in [
            log_filter(Err(VarError::NotPresent)),
            read(""),
            read("  "),
            // No directive at all: as empty, not `error`.
            read(","),
            read(" , "),
        ] {
            assert_default(&filter);
            assert_eq!(warning, None);
        }
    }

    #[test]
    fn a_value_that_is_not_utf8_is_info_with_a_warning() {
        let (filter, warning) = log_filter(Err(VarError::NotUnicode("in\u{fffd}fo".into())));
        assert_default(&filter);
        let warning = warning.unwrap();
        assert!(warning.contains("not UTF-8"), "{warning}");
        assert!(warning.contains("logging at `info`"), "{warning}");
    }

    #[test]
    #[cfg(not(feature = "env-filter"))]
    fn everyday_directives_are_read_without_env_filter() {
        let (filter, warning) = read("my_crate=debug,hyper=warn");
        assert_eq!(warning, None);
        assert_eq!(level(&filter, "my_crate"), LevelFilter::DEBUG);
        assert_eq!(level(&filter, "my_crate::db"), LevelFilter::DEBUG);
        assert_eq!(level(&filter, "hyper"), LevelFilter::WARN);
        // No default level: the other targets are off.
        assert_eq!(level(&filter, "tokio"), LevelFilter::OFF);

        let (filter, warning) = read(" warn , my_crate=TRACE, ,my_crate::noisy=off,");
        assert_eq!(warning, None);
        assert_eq!(level(&filter, "tokio"), LevelFilter::WARN);
        assert_eq!(level(&filter, "my_crate"), LevelFilter::TRACE);
        assert_eq!(level(&filter, "my_crate::noisy::inner"), LevelFilter::OFF);

        // A bare target: every level of it, as with `EnvFilter`.
        let (filter, warning) = read("error,my_crate");
        assert_eq!(warning, None);
        assert_eq!(level(&filter, "my_crate"), LevelFilter::TRACE);
        assert_eq!(level(&filter, "hyper"), LevelFilter::ERROR);
    }

    #[test]
    #[cfg(not(feature = "env-filter"))]
    fn a_directive_targets_cannot_take_is_info_with_a_warning_naming_env_filter() {
        for (value, named) in [
            ("info,my_crate[request]=debug", "`my_crate[request]=debug`"),
            ("my_crate[{id}]=trace", "`my_crate[{id}]=trace`"),
            ("[request{id=7}]=debug", "`[request{id=7}]=debug`"),
            ("info,my_crate=verbose", "`my_crate=verbose`"),
            ("my_crate=debug=trace", "`my_crate=debug=trace`"),
            ("=debug", "`=debug`"),
            // `Targets` would read a missing level as `error`.
            ("info,my_crate=", "`my_crate=`"),
        ] {
            let (filter, warning) = read(value);
            assert_default(&filter);
            let warning = warning.unwrap_or_else(|| panic!("{value}: no warning"));
            assert!(warning.contains(named), "{value}: {warning}");
            assert!(warning.contains("`env-filter`"), "{value}: {warning}");
            assert!(warning.contains("logging at `info`"), "{value}: {warning}");
        }
    }

    #[test]
    #[cfg(feature = "env-filter")]
    fn env_filter_reads_span_and_field_directives() {
        let (filter, warning) = read("info,my_crate[request{id=7}]=debug");
        assert_eq!(warning, None);
        assert_eq!(filter.to_string(), "info,my_crate[request{id=7}]=debug");
    }

    #[test]
    #[cfg(feature = "env-filter")]
    fn env_filter_rejects_a_bad_directive_with_a_warning() {
        let (filter, warning) = read("info,my_crate=verbose");
        assert_default(&filter);
        let warning = warning.unwrap();
        assert!(warning.contains("not a valid filter"), "{warning}");
        assert!(warning.contains("logging at `info`"), "{warning}");
    }
}
