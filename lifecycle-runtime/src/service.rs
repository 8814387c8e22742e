//! The driver behind `#[service_main]`: configuration, the application
//! runtime, the probe server, start-up in order, the body of `main`, and
//! the exit code.

use std::future::Future;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::runtime::{Handle, Runtime};

use crate::checks::run_check;
use crate::config::{self, Flavor, LogFormat, ServiceConfig, Settings};
use crate::exit::{self, terminate};
use crate::probe::{ProbeServer, Prober};
use crate::registry::{self, CheckKind, HookKind};
use crate::shutdown::{self, SHUTDOWN};
use crate::state::{Phase, STATE};

/// Runs a service: what `#[service_main]` expands to. Never returns: the
/// process exits with the code the contract gives.
/// `main` is the user's body with its result already converted by
/// [`MainOutcome`](crate::health::MainOutcome).
pub fn run_service<F, Fut>(config: ServiceConfig, main: F) -> !
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let env = |name: &str| std::env::var(name).ok();
    // Logging first, so that every later failure is logged.
    let log_format = config::log_format(&env);
    if config.tracing {
        crate::logging::install(*log_format.as_ref().unwrap_or(&LogFormat::Text));
    }
    if let Err(error) = log_format {
        terminate(exit::BAD_CONFIG, &error.to_string());
    }
    let settings = Settings::resolve(&config, &env)
        .unwrap_or_else(|error| terminate(exit::BAD_CONFIG, &error.to_string()));
    let duplicates = registry::duplicate_names();
    if !duplicates.is_empty() {
        terminate(exit::BAD_CONFIG, &duplicates.join("; "));
    }

    crate::panics::install(config.panic);
    if let Err(error) = crate::signals::start(settings.shutdown_timeout) {
        terminate(
            exit::FAILURE,
            &format!("cannot install the SIGTERM and SIGINT handlers: {error}"),
        );
    }

    let runtime = build_runtime(&config).unwrap_or_else(|error| {
        terminate(
            exit::FAILURE,
            &format!("cannot build the application runtime: {error}"),
        )
    });
    start_heartbeat(&runtime, settings.stall_threshold);
    let prober = Prober::new(
        runtime.handle().clone(),
        settings.stall_threshold,
        settings.max_tasks,
    );
    let probes = ProbeServer::start(settings.probe_addr, prober).unwrap_or_else(|error| {
        terminate(
            exit::FAILURE,
            &format!(
                "cannot bind the probe server to {} (set LIFECYCLE_PROBE_ADDR to another address): {error}",
                settings.probe_addr
            ),
        )
    });
    tracing::info!("probe server listening on http://{}", probes.local_addr);
    tracing::info!(
        drain_delay_ms = settings.drain_delay.as_millis() as u64,
        shutdown_timeout_ms = settings.shutdown_timeout.as_millis() as u64,
        stall_threshold_ms = settings.stall_threshold.as_millis() as u64,
        "starting"
    );

    let handle = runtime.handle().clone();
    let drain_delay = settings.drain_delay;
    let failures = runtime.block_on(async move {
        // A signal during start-up abandons it: what is running is
        // cancelled (dropped, which aborts it) and main never runs.
        let started = tokio::select! {
            biased;
            _ = SHUTDOWN.requested.cancelled() => {
                tracing::info!("start-up abandoned: stopping before main runs");
                Ok(false)
            }
            result = start_up(&handle) => result.map(|()| true),
        };
        let mut failures = Vec::new();
        match started {
            Ok(true) => {
                STATE.set_phase(Phase::Running);
                tracing::info!("start-up finished; running");
                let body = async {
                    main()
                        .await
                        .map_err(|e| format!("main returned an error: {e}"))
                };
                if let Err(error) = shutdown::serve(body, drain_delay).await {
                    tracing::error!("{error}");
                    failures.push(error);
                }
                shutdown::wait_for_tracked_tasks().await;
            }
            Ok(false) => {}
            Err(error) => {
                tracing::error!("{error}");
                failures.push(error);
                // What start-up acquired, the shutdown hooks may release.
                SHUTDOWN.requested.cancel();
            }
        }
        failures.extend(shutdown::run_shutdown_hooks(&handle).await);
        failures
    });

    probes.stop();
    // Tasks still running are abandoned: the process is about to exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    if failures.is_empty() {
        tracing::info!("stopped cleanly; exiting with code 0");
        std::process::exit(0)
    }
    terminate(exit::FAILURE, &failures.join("; "))
}

fn build_runtime(config: &ServiceConfig) -> std::io::Result<Runtime> {
    let mut builder = match config.flavor {
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    };
    if let Some(threads) = config.worker_threads {
        builder.worker_threads(threads as usize);
    }
    builder.enable_all().build()
}

/// A task on the application runtime that records each tick: when every
/// worker is blocked it stops, and the `runtime` liveness check sees it.
fn start_heartbeat(runtime: &Runtime, stall_threshold: Duration) {
    let period = (stall_threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    STATE.beat();
    runtime.spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            STATE.beat();
        }
    });
}

/// Preflight checks, then the `on_startup` hooks by ascending order, equal
/// orders together. The first failing stage stops start-up.
async fn start_up(app: &Handle) -> Result<(), String> {
    let preflight = registry::checks(CheckKind::Preflight);
    let results = join_all(preflight.iter().map(|check| run_check(app, check))).await;
    let failures: Vec<String> = results
        .iter()
        .filter(|r| !r.health.is_up())
        .map(|r| {
            format!(
                "preflight check \"{}\" failed: {}",
                r.name,
                r.health.reason().unwrap_or("no reason given")
            )
        })
        .collect();
    if !failures.is_empty() {
        return Err(failures.join("; "));
    }
    for (order, group) in registry::hook_groups(HookKind::OnStartup) {
        tracing::debug!(order, hooks = group.len(), "running on_startup hooks");
        let failures = shutdown::run_hook_group(app, &group).await;
        if !failures.is_empty() {
            return Err(failures.join("; "));
        }
    }
    Ok(())
}
