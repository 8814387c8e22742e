//! Logging that never blocks the lifecycle, and the default `tracing`
//! subscriber (cargo feature `tracing-subscriber`): honours `RUST_LOG`
//! (default `info`), writes to stderr, and JSON lines with
//! `LIFECYCLE_LOG_FORMAT=json`.
//!
//! Every line lifecycle writes to stderr, through its subscriber or as a
//! fallback without one, goes into a bounded queue that a thread of its
//! own (`lifecycle-log`) writes out. A log pipe that stalls (nobody reads
//! it) blocks that thread alone; the queue then fills and new lines are
//! dropped rather than waited for. A pipe that breaks (the reader went
//! away) fails the writes, which are ignored. Either way the lines lost are
//! counted ([`log_lines_dropped`]) and the count is logged once stderr
//! takes lines again. Nothing waits on that thread: at exit the queue gets
//! a moment to drain (250 ms at most), cut short as soon as the thread is
//! seen stuck in a write.

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
/// At exit, the longest wait for the writer to finish the line it is
/// writing: past it, stderr is taken for stalled and the process exits
/// without the rest.
const EXIT_STALL: Duration = Duration::from_millis(20);
/// At exit, the longest wait for the queue to drain at all.
const EXIT_DRAIN_MAX: Duration = Duration::from_millis(250);

/// Lines lost: dropped from a full queue or failed to write.
static DROPPED: AtomicU64 = AtomicU64::new(0);
/// The writer thread was started (or its start was attempted).
static STARTED: AtomicBool = AtomicBool::new(false);
/// Lifecycle's subscriber is the one installed: the report of dropped
/// lines goes through it, formatted like every other line.
static OWN_SUBSCRIBER: AtomicBool = AtomicBool::new(false);

static QUEUE: Queue = Queue::new();

struct Queue {
    state: Mutex<State>,
    /// Wakes the writer: a line was queued.
    queued: Condvar,
    /// Wakes an exit waiting for the queue to drain: a line is done.
    progressed: Condvar,
    /// Lines the writer is done with (written or failed): its progress.
    done: AtomicU64,
}

struct State {
    lines: VecDeque<Vec<u8>>,
    /// The bytes in `lines`.
    bytes: usize,
    /// The writer is in a write to stderr, which may never return.
    writing: bool,
    /// The last line is in: the process is exiting, and the line that says
    /// why stays the last one; later lines are discarded.
    closed: bool,
}

impl Queue {
    const fn new() -> Queue {
        Queue {
            state: Mutex::new(State {
                lines: VecDeque::new(),
                bytes: 0,
                writing: false,
                closed: false,
            }),
            queued: Condvar::new(),
            progressed: Condvar::new(),
            done: AtomicU64::new(0),
        }
    }

    /// The queue, held only to push or pop a line: never across a write.
    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Queues `line`, unless it does not fit: then `false`. After the last
    /// line, discards it. `last` makes it the last line.
    fn push(&self, line: Vec<u8>, last: bool) -> bool {
        let mut state = self.state();
        if state.closed {
            return true;
        }
        state.closed = last;
        if state.bytes + line.len() > QUEUE_BYTES {
            return false;
        }
        state.bytes += line.len();
        state.lines.push_back(line);
        drop(state);
        self.queued.notify_one();
        true
    }

    /// The writer's next line, once there is one; the writer is then in a
    /// write until [`Queue::done_with`].
    fn next(&self) -> Vec<u8> {
        let mut state = self.state();
        loop {
            if let Some(line) = state.lines.pop_front() {
                state.bytes -= line.len();
                state.writing = true;
                return line;
            }
            state = self
                .queued
                .wait(state)
                .unwrap_or_else(PoisonError::into_inner);
        }
    }

    /// The writer is done with its line (written or failed). Returns
    /// whether the queue is empty.
    fn done_with(&self) -> bool {
        let drained = {
            let mut state = self.state();
            state.writing = false;
            self.done.fetch_add(1, Ordering::SeqCst);
            state.lines.is_empty()
        };
        self.progressed.notify_all();
        drained
    }

    /// Waits until every queued line is done, at most `max`; returns
    /// sooner when the writer is stuck in a write for `stall` (stderr is
    /// stalled). A writer that is not in a write has not been given a core
    /// yet (a fresh thread, a loaded machine): stderr may be fine, and the
    /// last lines (the exit's reason) are waited for, up to `max`.
    fn drain(&self, max: Duration, stall: Duration) {
        let until = Instant::now() + max;
        let mut state = self.state();
        let mut done = self.done.load(Ordering::SeqCst);
        while !state.lines.is_empty() || state.writing {
            let now = Instant::now();
            if now >= until {
                return;
            }
            let (next, waited) = self
                .progressed
                .wait_timeout(state, stall.min(until - now))
                .unwrap_or_else(PoisonError::into_inner);
            state = next;
            let now_done = self.done.load(Ordering::SeqCst);
            if waited.timed_out() && now_done == done && state.writing {
                // Stuck in a write: stderr is stalled.
                return;
            }
            done = now_done;
        }
    }
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
    let last = LAST_LINE.with(Cell::get);
    if !QUEUE.push(line, last) {
        DROPPED.fetch_add(1, Ordering::Relaxed);
    }
}

thread_local! {
    /// The line this thread writes now is the last of the process.
    static LAST_LINE: Cell<bool> = const { Cell::new(false) };
}

/// Logs, through `log`, the last line of the process (the exit's reason):
/// any line another thread logs after it is discarded, so that it stays
/// the last line logged, as the contract has it.
pub(crate) fn last_line(log: impl FnOnce()) {
    LAST_LINE.with(|last| last.set(true));
    log();
    LAST_LINE.with(|last| last.set(false));
}

/// A line of lifecycle's own when no subscriber is installed
/// (`tracing = false` and none of the application's yet).
pub(crate) fn fallback_line(text: &str) {
    write_line(format!("{text}\n").into_bytes());
}

/// Before the process exits: lets the queued lines reach stderr while the
/// writer makes progress, so that the last lines (the exit's reason among
/// them) are not lost; returns at once when stderr is stalled.
pub(crate) fn drain_before_exit() {
    if !STARTED.load(Ordering::SeqCst) {
        return;
    }
    QUEUE.drain(EXIT_DRAIN_MAX, EXIT_STALL);
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
        let line = QUEUE.next();
        // Blocks while the pipe is full; fails (ignored) once it is broken.
        let written = stderr.write_all(&line).is_ok();
        if !written {
            DROPPED.fetch_add(1, Ordering::Relaxed);
        }
        let drained = QUEUE.done_with();
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
#[cfg_attr(not(feature = "tracing-subscriber"), allow(dead_code))]
pub(crate) struct LineWriter(Vec<u8>);

impl Write for LineWriter {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.0.extend_from_slice(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

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

#[cfg(feature = "tracing-subscriber")]
pub(crate) fn install(format: LogFormat) {
    use std::io::IsTerminal;
    use tracing_subscriber::EnvFilter;

    let filter = EnvFilter::try_from_default_env().unwrap_or_else(|_| EnvFilter::new("info"));
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(QueuedStderr)
        .with_ansi(std::io::stderr().is_terminal())
        // Its own report of a failed write goes to stderr with
        // `eprintln!`, which panics on a closed pipe. (The queue never
        // fails a write anyway.)
        .log_internal_errors(false);
    // `try_init` fails only when the application already installed a
    // subscriber, which is then the one to use.
    let installed = match format {
        LogFormat::Json => builder.json().try_init(),
        LogFormat::Text => builder.try_init(),
    };
    OWN_SUBSCRIBER.store(installed.is_ok(), Ordering::SeqCst);
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

#[cfg(test)]
mod tests {
    use super::*;

    const MAX: Duration = Duration::from_millis(2000);
    const STALL: Duration = Duration::from_millis(20);

    #[test]
    fn an_exit_waits_for_a_writer_that_is_late_to_run() {
        // A loaded machine: the writer thread gets to run only after a
        // while (a fresh thread, a busy core); stderr itself is fine.
        static QUEUE: Queue = Queue::new();
        assert!(QUEUE.push(b"exiting with code 1: the reason\n".to_vec(), false));
        let late = Duration::from_millis(150);
        let writer = std::thread::spawn(move || {
            std::thread::sleep(late);
            let line = QUEUE.next();
            QUEUE.done_with();
            line
        });
        let started = Instant::now();
        QUEUE.drain(MAX, STALL);
        let waited = started.elapsed();
        assert!(QUEUE.state().lines.is_empty(), "gave up after {waited:?}");
        assert!(waited >= late && waited < MAX, "{waited:?}");
        assert_eq!(writer.join().unwrap(), b"exiting with code 1: the reason\n");
    }

    #[test]
    fn nothing_comes_after_the_last_line() {
        static QUEUE: Queue = Queue::new();
        assert!(QUEUE.push(b"before\n".to_vec(), false));
        assert!(QUEUE.push(b"exiting with code 1: why\n".to_vec(), true));
        assert!(QUEUE.push(b"after\n".to_vec(), false));
        let lines: Vec<Vec<u8>> = QUEUE.state().lines.iter().cloned().collect();
        assert_eq!(
            lines,
            [&b"before\n"[..], &b"exiting with code 1: why\n"[..]]
        );
    }

    #[test]
    fn an_exit_gives_up_at_once_on_a_writer_stuck_in_a_write() {
        // A stalled pipe: the writer took a line and never comes back.
        static QUEUE: Queue = Queue::new();
        assert!(QUEUE.push(b"stuck\n".to_vec(), false));
        assert!(QUEUE.push(b"never written\n".to_vec(), false));
        let _line = QUEUE.next();
        let started = Instant::now();
        QUEUE.drain(MAX, STALL);
        let waited = started.elapsed();
        assert!(waited < MAX / 4, "waited {waited:?} on a stalled stderr");
        assert_eq!(QUEUE.state().lines.len(), 1);
    }
}
