//! The graceful stop: drain, tell the application to stop serving, wait
//! for it, its tracked tasks and its connections (ending those that
//! outlive the connection drain), then run the `on_shutdown` hooks in
//! order, and in time whatever is still running. (The deadline over all
//! of it is watched by the signal thread, which no stalled runtime can
//! hold up.)

use std::cell::Cell;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::pin::Pin;
use std::time::{Duration, Instant};

use futures_util::FutureExt;
use tokio::runtime::Handle;

use crate::failures::{Failure, Failures};
use crate::hooks;
use crate::lifecycle::{Lifecycle, OPEN_CONNECTIONS};
use crate::panics::payload_message;
use crate::registry::{self, HookKind};
use crate::stop_budget::EXIT_MARGIN;

/// The body of `main`, recorded as running until it returns, with a
/// panic caught: under `panic = "log"` (under `"crash"` the process is
/// gone already), so that the hooks still run and the exit code is 101.
pub(crate) async fn main_body<Fut>(lifecycle: &Lifecycle, body: Fut) -> Result<(), Failure>
where
    Fut: Future<Output = Result<(), String>>,
{
    let _running = lifecycle.enter("the body of main".into());
    match AssertUnwindSafe(body).catch_unwind().await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(error)) => Err(Failure::MainReturned(error)),
        Err(payload) => Err(Failure::MainPanicked(payload_message(payload))),
    }
}

/// Runs the body of `main` until it returns, or until the drain is over:
/// on a stop request, out of rotation (the request did that), still
/// serving for `drain_delay`, then `shutdown_signal()` completes. Returns
/// how `main` ended if it did; otherwise it is still finishing its
/// in-flight work, and [`stop`] goes on polling it.
pub(crate) async fn serve<F>(
    lifecycle: &Lifecycle,
    mut body: Pin<&mut F>,
    drain_delay: Duration,
) -> Option<Result<(), Failure>>
where
    F: Future<Output = Result<(), Failure>>,
{
    tokio::select! {
        ended = body.as_mut() => {
            tracing::info!("main returned; stopping");
            return Some(ended);
        }
        _ = lifecycle.stop_requested() => {}
    }
    if !drain_delay.is_zero() {
        tracing::info!(
            "draining: out of rotation, still serving for {} ms",
            drain_delay.as_millis()
        );
        tokio::select! {
            ended = body.as_mut() => return Some(ended),
            // On lifecycle's clock: blocked workers cannot stretch it.
            _ = crate::call::sleep(drain_delay) => {}
        }
    }
    // The state change first: a log line never delays it.
    lifecycle.signal_shutdown();
    tracing::info!("drain over: shutdown_signal() completed; waiting for main to return");
    None
}

/// What the stop needs to know of the configuration.
pub(crate) struct Plan {
    pub(crate) shutdown_timeout: Duration,
    pub(crate) connection_drain: Duration,
}

/// How the stop went.
pub(crate) struct Stopped {
    /// How `main` ended, when it ended during the stop.
    pub(crate) main: Option<Result<(), Failure>>,
    /// The `on_shutdown` hooks that failed.
    pub(crate) hook_failures: Failures,
    /// What the hooks could wait for no longer (`main`, tracked tasks,
    /// connections…), when something was still running after them.
    pub(crate) still_running: Option<String>,
}

/// The stop, once `main` has returned or the drain is over (or after an
/// abandoned or failed start-up): `shutdown_signal()` completes (if it
/// had not); `main` (when it is still running), the start-up calls an
/// abandoned start-up left running, the tracked tasks and the connections
/// are waited for, the connections still open `connection_drain` later
/// ended; then phase `Stopping` and the `on_shutdown` hooks.
///
/// The hooks always get their time: they start at the latest at
/// max(`shutdown_signal()`, deadline − their budget − [`EXIT_MARGIN`]).
/// What was waited for is not cancelled, only no longer waited for: it
/// goes on (`main` is still polled) while the hooks run, and whatever had
/// not ended when they are over is named in [`Stopped::still_running`].
pub(crate) async fn stop<F>(
    lifecycle: &Lifecycle,
    app: &Handle,
    main: Option<Pin<&mut F>>,
    plan: &Plan,
) -> Stopped
where
    F: Future<Output = Result<(), Failure>>,
{
    lifecycle.signal_shutdown();
    let shutdown_signalled = lifecycle
        .shutdown_signalled_at()
        .unwrap_or_else(Instant::now);
    let main_ended = Cell::new(None);
    let waited = async {
        // First `main`: until it returns it may spawn tasks and accept
        // connections.
        if let Some(main) = main {
            main_ended.set(Some(main.await));
        }
        wait_for_outliving_startup_calls(lifecycle).await;
        wait_for_tracked_tasks(lifecycle).await;
        wait_for_connections(lifecycle).await;
    };
    let ended = end_connections_after(lifecycle, shutdown_signalled + plan.connection_drain);
    // The connection drain ends connections while `main` (or whatever
    // else) is still waited for: what makes a server's graceful wait
    // complete.
    let waited = async {
        tokio::pin!(ended);
        tokio::pin!(waited);
        loop {
            tokio::select! {
                () = &mut waited => return,
                () = &mut ended => {}
            }
        }
    };
    tokio::pin!(waited);

    let latest_start = hooks_latest_start(lifecycle, shutdown_signalled, plan.shutdown_timeout);
    let mut done = tokio::select! {
        () = &mut waited => true,
        () = crate::call::sleep(latest_start.saturating_duration_since(Instant::now())) => false,
    };
    if !done {
        tracing::warn!(
            "the on_shutdown hooks start now, to have their time before the deadline; still running: {}",
            lifecycle.still_running()
        );
    }
    if let Err(refused) = lifecycle.begin_stopping() {
        // Draining is the only way here; anything else is a bug of ours.
        tracing::error!("phase {} cannot become {}", refused.from, refused.to);
    }
    let hooks = hooks::run_shutdown_hooks(lifecycle, app);
    tokio::pin!(hooks);
    let hook_failures = loop {
        tokio::select! {
            failures = &mut hooks => break failures,
            () = &mut waited, if !done => done = true,
        }
    };
    let still_running = (!done).then(|| lifecycle.still_running());
    Stopped {
        main: main_ended.take(),
        hook_failures,
        still_running,
    }
}

/// The latest moment the `on_shutdown` hooks may start and still have
/// their whole budget before the deadline (counted from the stop request),
/// though never before `shutdown_signal()`.
fn hooks_latest_start(
    lifecycle: &Lifecycle,
    shutdown_signalled: Instant,
    shutdown_timeout: Duration,
) -> Instant {
    let (budget, _) = registry::hooks_budget(HookKind::OnShutdown);
    let deadline = lifecycle.stop_requested_at().unwrap_or(shutdown_signalled) + shutdown_timeout;
    deadline
        .checked_sub(budget.saturating_add(EXIT_MARGIN))
        .map_or(shutdown_signalled, |latest| latest.max(shutdown_signalled))
}

/// Waits for the preflight checks and `on_startup` hooks that an abandoned
/// or failed start-up left running (a plain `fn`, which nothing cancels,
/// or an `async fn` that the abort reaches only at its next `.await`): the
/// `on_shutdown` hooks may release what they are still acquiring.
async fn wait_for_outliving_startup_calls(lifecycle: &Lifecycle) {
    let running = lifecycle.startup_calls().running();
    if running.is_empty() {
        return;
    }
    let names = running.join(", ");
    tracing::warn!(
        "waiting for {names} to return before the on_shutdown hooks: a plain fn cannot be cancelled, an aborted async fn stops only at its next .await"
    );
    let _running = lifecycle.enter(names);
    lifecycle.startup_calls().returned().await;
}

/// Waits for every task from `lifecycle_runtime::spawn`.
async fn wait_for_tracked_tasks(lifecycle: &Lifecycle) {
    let tracker = lifecycle.tracker();
    tracker.close();
    if tracker.is_empty() {
        return;
    }
    let _running = lifecycle.enter(format!("tracked tasks ({} alive)", tracker.len()));
    tracing::info!(tasks = tracker.len(), "waiting for tracked tasks");
    tracker.wait().await;
}

/// Waits for every connection accepted through `net::TcpListener` to
/// close.
async fn wait_for_connections(lifecycle: &Lifecycle) {
    let connections = lifecycle.connections();
    let open = connections.open();
    if open == 0 {
        return;
    }
    let _running = lifecycle.enter(OPEN_CONNECTIONS.to_owned());
    tracing::info!(connections = open, "waiting for open connections to close");
    connections.closed().await;
}

/// At `when`, the end of the connection drain, ends the connections still
/// open and logs how many; then never completes.
async fn end_connections_after(lifecycle: &Lifecycle, when: Instant) {
    crate::call::sleep(when.saturating_duration_since(Instant::now())).await;
    if let Some((ended, oldest)) = lifecycle.connections().end_all() {
        let plural = if ended == 1 { "" } else { "s" };
        tracing::info!(
            "connection drain over: ended {ended} connection{plural} still open (the oldest open {} s)",
            oldest.as_secs()
        );
    }
    std::future::pending::<()>().await
}
