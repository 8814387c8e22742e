//! Calling a user's check or hook: on the application runtime (it may use
//! the application's pools and clients), bounded by its timeout, with a
//! panic turned into that call's failure.

use std::cell::Cell;
use std::future::Future;
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use once_cell::sync::Lazy;
use tokio::runtime::Handle;
use tokio_util::task::AbortOnDropHandle;

use crate::failures::CallFailure;
use crate::panics::{catch, catch_async, payload_message};
use crate::registry::Call;

/// A task of the runtime's own, boxed, its output dropped: tokio compiles
/// its task code (polling, waking, cancelling, completing: about 1 200
/// lines of LLVM IR) once per future type and scheduler, so the runtime's
/// tasks share one type. What it costs, one allocation per task and an
/// indirect call per poll, does not show beside a connection's or a
/// timer's own work.
pub(crate) type Task = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

pub(crate) fn task<T>(future: impl Future<Output = T> + Send + 'static) -> Task {
    Box::pin(async move {
        let _ = future.await;
    })
}

/// Runs `call` on the application runtime `app` and waits at most `timeout`
/// for it, on whichever runtime awaits this (the probe server's own, for
/// probes), so a stalled application still gets a timely answer.
///
/// A plain `fn` runs on the blocking pool so that it cannot stall a worker;
/// `on_return` is dropped when it has really returned, which may be long
/// after its time-out. An `async fn` that overruns is aborted at its next
/// `.await`; a blocking one cannot be stopped and is left to finish. For
/// an `async fn` too, `on_return` is dropped only when it has really ended:
/// returned, or dropped by the abort, which may also come late (a blocking
/// call inside it holds the abort off until its next `.await`).
pub(crate) async fn run_bounded<T: Send + 'static>(
    app: &Handle,
    call: &Call<T>,
    timeout: Duration,
    on_return: impl Send + 'static,
) -> Result<T, CallFailure> {
    // A panic is caught in the task, its payload disposed of there: a run
    // that panics after its time-out, when nobody waits for it any more,
    // is contained all the same.
    let task = match call {
        Call::Blocking(function) => {
            let function = *function;
            app.spawn_blocking(move || {
                let _on_return = on_return;
                catch(function)
            })
        }
        Call::Async(function) => {
            let future = function();
            let own = OwnTask::start();
            app.spawn(async move {
                let _own = own;
                let _on_return = on_return;
                catch_async(future).await
            })
        }
    };
    // Dropping the handle aborts the task: a probe that gives up, or a
    // start-up abandoned on SIGTERM, leaves nothing running behind.
    let task = AbortOnDropHandle::new(task);
    tokio::select! {
        biased;
        joined = task => match joined {
            Ok(Ok(value)) => Ok(value),
            Ok(Err(message)) => Err(CallFailure::Panicked(message)),
            Err(error) if error.is_panic() => Err(CallFailure::Panicked(payload_message(error.into_panic()))),
            Err(_) => Err(CallFailure::Cancelled),
        },
        () = sleep(timeout) => Err(CallFailure::TimedOut(timeout)),
    }
}

thread_local! {
    /// This thread's runtime is one whose timers nothing of the user's can
    /// hold up: [`sleep`] needs no other clock there.
    static TIMERS_NEVER_BLOCKED: Cell<bool> = const { Cell::new(false) };
}

/// Marks the calling thread as one whose runtime's timers no user code can
/// hold up (the probe server's: checks run elsewhere). [`sleep`] then uses
/// that runtime's own timer alone, sparing each check run on this thread
/// two hops to and from the clock thread, which cost more than the rest of
/// a probe's answer (bench/findings.md).
pub(crate) fn timers_never_blocked_on_this_thread() {
    TIMERS_NEVER_BLOCKED.with(|never| never.set(true));
}

/// Completes once `duration` has passed, timed on lifecycle's own clock:
/// a runtime of its own on a thread of its own (`lifecycle-clock`), so
/// that the timeout of a hook, awaited in the application runtime's
/// `block_on`, fires even when user code blocks the workers that drive
/// that runtime's timers (tokio's multi-thread timers are driven by a
/// parked worker: with every worker blocked, or just the one holding the
/// driver, none fires). Without the clock thread (it could not start), or
/// on a thread marked by [`timers_never_blocked_on_this_thread`], the
/// awaiting runtime's own timer alone.
pub(crate) async fn sleep(duration: Duration) {
    if TIMERS_NEVER_BLOCKED.with(Cell::get) {
        return tokio::time::sleep(duration).await;
    }
    match clock() {
        Some(clock) => {
            // Made on the clock's runtime, so that its timer is the clock's.
            let timer = clock.spawn(task(async move { tokio::time::sleep(duration).await }));
            // Whichever fires first: the awaiting runtime's own timer still
            // counts (the probe server's, which nothing blocks; a paused
            // clock in tests and fuzzing, which only it follows).
            tokio::select! {
                _ = AbortOnDropHandle::new(timer) => {}
                () = tokio::time::sleep(duration) => {}
            }
        }
        None => tokio::time::sleep(duration).await,
    }
}

/// lifecycle's clock (see [`sleep`]), started on first use.
fn clock() -> Option<&'static Handle> {
    static CLOCK: Lazy<Option<Handle>> = Lazy::new(|| {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .ok()?;
        let handle = runtime.handle().clone();
        std::thread::Builder::new()
            .name("lifecycle-clock".into())
            .spawn(move || runtime.block_on(std::future::pending::<()>()))
            .ok()?;
        Some(handle)
    });
    CLOCK.as_ref()
}

/// Tasks of lifecycle's own alive on the application runtime (heartbeat,
/// background runners, async check and hook runs), which the `tasks`
/// check leaves out of its count. tokio counts spawned tasks only, not
/// blocking-pool calls, and so does this.
static OWN_TASKS: AtomicU64 = AtomicU64::new(0);

/// Counts one of lifecycle's own tasks while it is alive.
pub(crate) struct OwnTask(());

impl OwnTask {
    pub(crate) fn start() -> OwnTask {
        OWN_TASKS.fetch_add(1, Ordering::SeqCst);
        OwnTask(())
    }

    pub(crate) fn alive() -> u64 {
        OWN_TASKS.load(Ordering::SeqCst)
    }
}

impl Drop for OwnTask {
    fn drop(&mut self) {
        OWN_TASKS.fetch_sub(1, Ordering::SeqCst);
    }
}

#[cfg(test)]
mod tests {
    use std::time::Instant;

    use super::*;

    fn blocks_its_worker() -> crate::registry::BoxFuture<()> {
        Box::pin(async { std::thread::sleep(Duration::from_millis(1500)) })
    }

    #[test]
    fn a_call_that_blocks_every_worker_still_times_out_in_time() {
        // Hooks are awaited in the application runtime's `block_on`, whose
        // timers its workers drive: with the only worker blocked by the
        // call itself, a timer of that runtime would fire only once the
        // call lets go of it.
        let app = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let handle = app.handle().clone();
        let started = Instant::now();
        let ended = app.block_on(run_bounded(
            &handle,
            &Call::Async(blocks_its_worker),
            Duration::from_millis(100),
            (),
        ));
        let took = started.elapsed();
        assert!(
            matches!(ended, Err(CallFailure::TimedOut(_))),
            "{:?}",
            ended.err()
        );
        assert!(
            took < Duration::from_millis(1000),
            "timed out after {took:?}"
        );
        app.shutdown_background();
    }
}
