//! The graceful stop: drain, tell the application to stop serving, wait for
//! it and its tracked tasks, then run the `on_shutdown` hooks in order.
//! (The deadline over all of it is watched by the signal thread, which no
//! stalled runtime can hold up.)

use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::time::Duration;

use futures_util::FutureExt;
use tokio::runtime::Handle;

use crate::hooks;
use crate::lifecycle::Lifecycle;
use crate::panics::payload_message;
use crate::registry::{self, HookKind};

/// How the body of `main` ended.
pub(crate) enum MainEnded {
    Ok,
    Err(String),
    /// Under `panic = "log"` (under `"crash"` the process is gone already):
    /// caught, so that the hooks still run and the exit code is 101.
    Panicked(String),
}

/// Runs the body of `main` until it returns. On a stop request it drains
/// first: out of rotation (the request did that), still serving for
/// `drain_delay`, then `shutdown_signal()` completes and the body gets to
/// finish its in-flight work.
pub(crate) async fn run_main<Fut>(
    lifecycle: &Lifecycle,
    body: Fut,
    drain_delay: Duration,
) -> MainEnded
where
    Fut: Future<Output = Result<(), String>>,
{
    let _running = lifecycle.enter("the body of main".into());
    let body = AssertUnwindSafe(body)
        .catch_unwind()
        .map(|ended| match ended {
            Ok(Ok(())) => MainEnded::Ok,
            Ok(Err(error)) => MainEnded::Err(error),
            Err(payload) => MainEnded::Panicked(payload_message(payload)),
        });
    let mut body = std::pin::pin!(body);
    tokio::select! {
        ended = &mut body => {
            tracing::info!("main returned; stopping");
            lifecycle.end_serving();
            return ended;
        }
        _ = lifecycle.stop_requested() => {}
    }
    if !drain_delay.is_zero() {
        tracing::info!(
            "draining: out of rotation, still serving for {} ms",
            drain_delay.as_millis()
        );
        tokio::select! {
            ended = &mut body => {
                lifecycle.end_serving();
                return ended;
            }
            // On lifecycle's clock: blocked workers cannot stretch it.
            _ = crate::call::sleep(drain_delay) => {}
        }
    }
    // The state change first: a log line never delays it.
    lifecycle.end_serving();
    tracing::info!("drain over: shutdown_signal() completed; waiting for main to return");
    body.await
}

/// After `main` (or an abandoned or failed start-up): waits for every
/// tracked task, then phase `Stopping` and the `on_shutdown` hooks.
/// Returns the hooks' failures.
pub(crate) async fn stop(lifecycle: &Lifecycle, app: &Handle) -> Vec<String> {
    lifecycle.end_serving();
    wait_for_blocking_startup_hooks(lifecycle).await;
    wait_for_tracked_tasks(lifecycle).await;
    if let Err(refused) = lifecycle.begin_stopping() {
        // Draining is the only way here; anything else is a bug of ours.
        tracing::error!("phase {} cannot become {}", refused.from, refused.to);
    }
    hooks::run_shutdown_hooks(lifecycle, app).await
}

/// Waits for the preflight checks and `on_startup` hooks that an abandoned
/// or failed start-up left running (a plain `fn`, which nothing cancels,
/// or an `async fn` that the abort reaches only at its next `.await`): the
/// `on_shutdown` hooks may release what they are still acquiring. The
/// shutdown deadline bounds the wait.
async fn wait_for_blocking_startup_hooks(lifecycle: &Lifecycle) {
    let running = lifecycle.blocking_startup().running();
    if running.is_empty() {
        return;
    }
    let names = running.join(", ");
    tracing::warn!(
        "waiting for {names} to return before the on_shutdown hooks: a plain fn cannot be cancelled, an aborted async fn stops only at its next .await"
    );
    let _running = lifecycle.enter(names);
    lifecycle.blocking_startup().returned().await;
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

/// The start-up budget check: when the drain delay and the `on_shutdown`
/// hooks' timeouts cannot fit in the shutdown timeout, say so with each
/// figure, before the first rollout rather than during it.
pub(crate) fn budget_warning(drain_delay: Duration, shutdown_timeout: Duration) -> Option<String> {
    let (hooks, parts) = registry::hooks_budget(HookKind::OnShutdown);
    let needed = drain_delay.saturating_add(hooks);
    if needed <= shutdown_timeout {
        return None;
    }
    Some(format!(
        "the shutdown budget cannot hold: drain delay {} ms + on_shutdown hook timeouts {} ms [{}] = {} ms, more than the shutdown timeout of {} ms; raise LIFECYCLE_SHUTDOWN_TIMEOUT_MS (and terminationGracePeriodSeconds) or lower the hooks' timeout_ms",
        drain_delay.as_millis(),
        hooks.as_millis(),
        parts.join(", "),
        needed.as_millis(),
        shutdown_timeout.as_millis(),
    ))
}
