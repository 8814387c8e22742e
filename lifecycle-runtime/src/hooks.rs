//! Running `on_startup` and `on_shutdown` hooks: by ascending `order`,
//! equal orders concurrently, each bounded by its `timeout_ms`, each
//! recorded while it runs so that a missed deadline names it.

use futures_util::future::join_all;
use tokio::runtime::Handle;

use crate::call::run_bounded;
use crate::failures::{Failure, Failures, HookFailure};
use crate::lifecycle::Lifecycle;
use crate::registry::{self, HookKind, HookRegistration};

/// Runs one group of hooks (same `order`) concurrently; returns one
/// failure per hook that failed, timed out or panicked.
async fn run_group(
    lifecycle: &Lifecycle,
    app: &Handle,
    group: &[&'static HookRegistration],
) -> Failures {
    let runs = join_all(group.iter().map(|hook| async move {
        let _running = lifecycle.enter(format!(
            "{} hook \"{}\" ({})",
            hook.kind.as_str(),
            hook.name,
            hook.site
        ));
        tracing::debug!(
            hook = hook.name,
            order = hook.order,
            "{} hook starting",
            hook.kind.as_str()
        );
        // A plain `fn` cannot be cancelled, and an aborted `async fn` stops
        // only at its next `.await`: one that outlives this call (start-up
        // abandoned on a signal, or timed out) stays recorded until it has
        // really ended, and the stop waits for it before the `on_shutdown`
        // hooks.
        let outliving = (hook.kind == HookKind::OnStartup).then(|| {
            lifecycle
                .startup_calls()
                .enter(format!("on_startup hook \"{}\" ({})", hook.name, hook.site))
        });
        let started = std::time::Instant::now();
        let ended = run_bounded(app, &hook.call, hook.timeout(), outliving).await;
        #[cfg(feature = "metrics")]
        crate::metrics::hook_ran(hook.kind.as_str(), hook.name, started.elapsed());
        #[cfg(not(feature = "metrics"))]
        let _ = started;
        (hook, ended)
    }))
    .await;
    runs.into_iter()
        .filter_map(|(hook, ended)| {
            let failure = match ended {
                Ok(Ok(())) => return None,
                Ok(Err(error)) => HookFailure::Failed(error),
                Err(failure) => HookFailure::Call(failure),
            };
            Some(Failure::Hook {
                kind: hook.kind,
                name: hook.name,
                failure,
            })
        })
        .collect()
}

/// Start-up: the `on_startup` hooks group by group; the first group with
/// a failure stops start-up, and its failures are the error.
pub(crate) async fn run_startup_hooks(lifecycle: &Lifecycle, app: &Handle) -> Result<(), Failures> {
    for (order, group) in registry::hook_groups(HookKind::OnStartup) {
        tracing::debug!(order, hooks = group.len(), "running on_startup hooks");
        let failures = run_group(lifecycle, app, &group).await;
        if !failures.is_empty() {
            return Err(failures);
        }
    }
    Ok(())
}

/// The stop: every `on_shutdown` hook group by group; a failure is logged
/// and the later hooks still run. Returns the failures.
pub(crate) async fn run_shutdown_hooks(lifecycle: &Lifecycle, app: &Handle) -> Failures {
    let mut failures = Failures::default();
    for (order, group) in registry::hook_groups(HookKind::OnShutdown) {
        tracing::info!(order, hooks = group.len(), "running on_shutdown hooks");
        for failure in run_group(lifecycle, app, &group).await {
            tracing::error!("{failure}");
            failures.push(failure);
        }
    }
    failures
}
