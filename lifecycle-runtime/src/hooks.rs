//! Running `on_startup` and `on_shutdown` hooks: by ascending `order`,
//! equal orders concurrently, each bounded by its `timeout_ms`, each
//! recorded while it runs so that a missed deadline names it.

use futures_util::future::join_all;
use tokio::runtime::Handle;

use crate::call::{run_bounded, Outcome};
use crate::exit::TERMINATION_MESSAGE_MAX;
use crate::lifecycle::Lifecycle;
use crate::registry::{self, HookKind, HookRegistration};
use crate::text::one_line;

/// Runs one group of hooks (same `order`) concurrently; returns one
/// message per hook that failed, timed out or panicked.
async fn run_group(
    lifecycle: &Lifecycle,
    app: &Handle,
    group: &[&'static HookRegistration],
) -> Vec<String> {
    let outcomes = join_all(group.iter().map(|hook| async move {
        let _running = lifecycle.enter(format!(
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
        // A plain `fn` cannot be cancelled, and an aborted `async fn` stops
        // only at its next `.await`: one that outlives this call (start-up
        // abandoned on a signal, or timed out) stays recorded until it has
        // really ended, and the stop waits for it before the `on_shutdown`
        // hooks.
        let outliving = (hook.kind == HookKind::OnStartup).then(|| {
            lifecycle
                .blocking_startup()
                .enter(format!("on_startup hook \"{}\" ({})", hook.name, hook.site))
        });
        let started = std::time::Instant::now();
        let outcome = run_bounded(app, &hook.call, hook.timeout(), outliving).await;
        #[cfg(feature = "metrics")]
        crate::metrics::hook_ran(hook.kind.label(), hook.name, started.elapsed());
        #[cfg(not(feature = "metrics"))]
        let _ = started;
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
            // The user's words, as a check's reason in the log: on one
            // line (a newline would forge log lines and end the exit's
            // line early), and no longer than a termination message (a
            // megabyte would not fit the log queue, and be lost).
            let reason = one_line(&reason, TERMINATION_MESSAGE_MAX);
            Some(format!(
                "{} hook \"{}\" {reason}",
                hook.kind.label(),
                hook.name
            ))
        })
        .collect()
}

/// Start-up: the `on_startup` hooks group by group; the first group with
/// a failure stops start-up, and its failures are the error.
pub(crate) async fn run_startup_hooks(lifecycle: &Lifecycle, app: &Handle) -> Result<(), String> {
    for (order, group) in registry::hook_groups(HookKind::OnStartup) {
        tracing::debug!(order, hooks = group.len(), "running on_startup hooks");
        let failures = run_group(lifecycle, app, &group).await;
        if !failures.is_empty() {
            return Err(failures.join("; "));
        }
    }
    Ok(())
}

/// The stop: every `on_shutdown` hook group by group; a failure is logged
/// and the later hooks still run. Returns the failures.
pub(crate) async fn run_shutdown_hooks(lifecycle: &Lifecycle, app: &Handle) -> Vec<String> {
    let mut failures = Vec::new();
    for (order, group) in registry::hook_groups(HookKind::OnShutdown) {
        tracing::info!(order, hooks = group.len(), "running on_shutdown hooks");
        for failure in run_group(lifecycle, app, &group).await {
            tracing::error!("{failure}");
            failures.push(failure);
        }
    }
    failures
}
