//! The graceful stop: drain, tell the application to stop serving, wait for
//! it and its tracked tasks, then run the `on_shutdown` hooks in order.
//! What is running at each moment is recorded, so that a missed deadline
//! names the culprit.

use std::future::Future;
use std::sync::Mutex;
use std::time::Duration;

use std::panic::AssertUnwindSafe;

use futures_util::future::join_all;
use futures_util::FutureExt;
use once_cell::sync::Lazy;
use tokio::runtime::Handle;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

use crate::checks::{panic_message, run_bounded, Outcome};
use crate::registry::{self, HookKind, HookRegistration};
use crate::state::{Phase, STATE};

pub(crate) struct Shutdown {
    /// A stop was requested: by a signal, or because start-up failed or
    /// `main` returned. Starts the shutdown deadline.
    pub(crate) requested: CancellationToken,
    /// The application must stop serving (after the drain delay):
    /// `shutdown_signal()` and `shutdown_token()`.
    pub(crate) serving_ends: CancellationToken,
    /// Tasks from `lifecycle_runtime::spawn`, awaited before the hooks.
    pub(crate) tracker: TaskTracker,
    /// What the stop is waiting for right now, for the deadline's message.
    running: Mutex<Vec<String>>,
}

pub(crate) static SHUTDOWN: Lazy<Shutdown> = Lazy::new(|| Shutdown {
    requested: CancellationToken::new(),
    serving_ends: CancellationToken::new(),
    tracker: TaskTracker::new(),
    running: Mutex::new(Vec::new()),
});

/// Removes its entry from the running list when dropped.
pub(crate) struct Running(String);

impl Drop for Running {
    fn drop(&mut self) {
        let mut running = SHUTDOWN.running.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(index) = running.iter().position(|r| *r == self.0) {
            running.remove(index);
        }
    }
}

impl Shutdown {
    pub(crate) fn enter(&self, what: String) -> Running {
        self.running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(what.clone());
        Running(what)
    }

    /// What is still running, for the message of a missed deadline.
    pub(crate) fn still_running(&self) -> String {
        let mut running = self
            .running
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone();
        let tasks = self.tracker.len();
        if tasks > 0 && !running.iter().any(|r| r.starts_with("tracked tasks")) {
            running.push(format!("{tasks} tracked task(s)"));
        }
        if running.is_empty() {
            "nothing recorded (the process was exiting)".to_owned()
        } else {
            running.join(", ")
        }
    }
}

/// How the body of `main` ended.
pub(crate) enum MainEnded {
    Ok,
    Err(String),
    /// Under `panic = "log"` (under `"crash"` the process is gone already):
    /// caught, so that the hooks still run and the exit code is 101.
    Panicked(String),
}

/// From now on the application must stop serving: `shutdown_signal()`
/// completes; out of rotation if it was not yet.
pub(crate) fn stop_serving() {
    STATE.transition(Phase::Running, Phase::Draining);
    SHUTDOWN.serving_ends.cancel();
}

/// Runs the body of `main` until it returns. On a stop request it drains
/// first: out of rotation (the signal thread already said so), still
/// serving for `drain_delay`, then `shutdown_signal()` completes and the
/// body gets to finish its in-flight work.
pub(crate) async fn serve<Fut>(body: Fut, drain_delay: Duration) -> MainEnded
where
    Fut: Future<Output = Result<(), String>>,
{
    let _running = SHUTDOWN.enter("the body of main".into());
    let body = AssertUnwindSafe(body)
        .catch_unwind()
        .map(|ended| match ended {
            Ok(Ok(())) => MainEnded::Ok,
            Ok(Err(error)) => MainEnded::Err(error),
            Err(payload) => MainEnded::Panicked(panic_message(payload)),
        });
    let mut body = std::pin::pin!(body);
    tokio::select! {
        ended = &mut body => {
            tracing::info!("main returned; stopping");
            SHUTDOWN.requested.cancel();
            stop_serving();
            return ended;
        }
        _ = SHUTDOWN.requested.cancelled() => {}
    }
    // A signal that came before the phase was Running left it as it was.
    STATE.transition(Phase::Running, Phase::Draining);
    if !drain_delay.is_zero() {
        tracing::info!(
            "draining: out of rotation, still serving for {} ms",
            drain_delay.as_millis()
        );
        tokio::select! {
            ended = &mut body => {
                stop_serving();
                return ended;
            }
            _ = tokio::time::sleep(drain_delay) => {}
        }
    }
    tracing::info!("drain over: shutdown_signal() completes; waiting for main to return");
    stop_serving();
    body.await
}

/// Waits for every task from `lifecycle_runtime::spawn`.
pub(crate) async fn wait_for_tracked_tasks() {
    SHUTDOWN.tracker.close();
    if SHUTDOWN.tracker.is_empty() {
        return;
    }
    let _running = SHUTDOWN.enter(format!("tracked tasks ({} alive)", SHUTDOWN.tracker.len()));
    tracing::info!(tasks = SHUTDOWN.tracker.len(), "waiting for tracked tasks");
    SHUTDOWN.tracker.wait().await;
}

/// Runs one group of hooks (same `order`) concurrently, each bounded by
/// its timeout; returns one message per hook that failed, timed out or
/// panicked.
pub(crate) async fn run_hook_group(
    app: &Handle,
    group: &[&'static HookRegistration],
) -> Vec<String> {
    let outcomes = join_all(group.iter().map(|hook| async move {
        let _running = SHUTDOWN.enter(format!(
            "{} hook \"{}\" ({})",
            hook.kind.label(),
            hook.name,
            hook.site
        ));
        tracing::debug!(
            hook = hook.name,
            order = hook.order,
            "{} hook starting",
            hook.kind.label()
        );
        let outcome = run_bounded(app, &hook.call, hook.timeout()).await;
        (hook, outcome)
    }))
    .await;
    outcomes
        .into_iter()
        .filter_map(|(hook, outcome)| {
            let reason = match outcome {
                Outcome::Finished(Ok(())) => return None,
                Outcome::Finished(Err(error)) => format!("failed: {error}"),
                other => other.failure().unwrap_or_default(),
            };
            Some(format!(
                "{} hook \"{}\" {reason}",
                hook.kind.label(),
                hook.name
            ))
        })
        .collect()
}

/// Phase `Stopping`: every `on_shutdown` hook by ascending order; a failure
/// is logged and the later hooks still run. Returns the failures.
pub(crate) async fn run_shutdown_hooks(app: &Handle) -> Vec<String> {
    STATE.set_phase(Phase::Stopping);
    let mut failures = Vec::new();
    for (order, group) in registry::hook_groups(HookKind::OnShutdown) {
        tracing::info!(order, hooks = group.len(), "running on_shutdown hooks");
        for failure in run_hook_group(app, &group).await {
            tracing::error!("{failure}");
            failures.push(failure);
        }
    }
    failures
}

/// The start-up budget check: when the drain delay and the `on_shutdown`
/// hooks' timeouts cannot fit in the shutdown timeout, say so with each
/// figure, before the first rollout rather than during it.
pub(crate) fn budget_warning(drain_delay: Duration, shutdown_timeout: Duration) -> Option<String> {
    let (hooks, parts) = registry::hooks_budget(HookKind::OnShutdown);
    let needed = drain_delay + hooks;
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
