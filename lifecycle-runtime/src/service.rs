//! The driver behind `#[service_main]`: configuration, the command-line
//! flags, the application runtime, the probe server, start-up in order,
//! the body of `main`, the graceful stop and the exit code.

use std::future::Future;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::runtime::{Handle, Runtime};

use crate::checks::{Check, CheckResult, OwnTask};
use crate::config::{self, Flavor, LogFormat, ServiceConfig, Settings};
use crate::exit::{self, terminate};
use crate::flags::{self, Mode};
use crate::probe::{ProbeServer, Prober};
use crate::registry::{self, CheckKind, HookKind};
use crate::report;
use crate::shutdown::{self, MainEnded, SHUTDOWN};
use crate::state::{Phase, STATE};

/// How long `--lifecycle-probe` waits for an answer in all.
const EXEC_PROBE_TIMEOUT: Duration = Duration::from_secs(1);

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
    let mode = flags::mode(std::env::args_os())
        .unwrap_or_else(|error| terminate(exit::BAD_CONFIG, &error));
    crate::panics::install(config.panic);
    match mode {
        Mode::Serve => serve(&config, &settings, main),
        Mode::Preflight => preflight_only(&config),
        Mode::Probe(endpoint) => exec_probe(&settings, endpoint),
        Mode::Manifest => print_manifest(&settings),
    }
}

fn serve<F, Fut>(config: &ServiceConfig, settings: &Settings, main: F) -> !
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    if let Err(error) = crate::signals::start(settings.shutdown_timeout) {
        terminate(
            exit::FAILURE,
            &format!("cannot install the SIGTERM and SIGINT handlers: {error}"),
        );
    }
    let runtime = build_runtime(config);
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
        "drain delay {} ms ({}); shutdown timeout {} ms; stall threshold {} ms",
        settings.drain_delay.as_millis(),
        settings.drain_delay_source,
        settings.shutdown_timeout.as_millis(),
        settings.stall_threshold.as_millis(),
    );
    if let Some(warning) = shutdown::budget_warning(settings.drain_delay, settings.shutdown_timeout)
    {
        tracing::warn!("{warning}");
    }

    let handle = runtime.handle().clone();
    let drain_delay = settings.drain_delay;
    let (failures, panicked) = runtime.block_on(async move {
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
        let mut panicked = false;
        match started {
            Ok(true) => {
                STATE.finish_startup();
                STATE.set_phase(Phase::Running);
                tracing::info!("start-up finished; running");
                match shutdown::serve(main(), drain_delay).await {
                    MainEnded::Ok => {}
                    MainEnded::Err(error) => {
                        let error = format!("main returned an error: {error}");
                        tracing::error!("{error}");
                        failures.push(error);
                    }
                    MainEnded::Panicked(message) => {
                        failures.push(format!("main panicked: {message}"));
                        panicked = true;
                    }
                }
            }
            Ok(false) => shutdown::stop_serving(),
            Err(error) => {
                tracing::error!("{error}");
                failures.push(error);
                // What start-up acquired, the shutdown hooks may release.
                SHUTDOWN.requested.cancel();
                shutdown::stop_serving();
            }
        }
        shutdown::wait_for_tracked_tasks().await;
        failures.extend(shutdown::run_shutdown_hooks(&handle).await);
        (failures, panicked)
    });

    probes.stop();
    // Tasks still running are abandoned: the process is about to exit.
    runtime.shutdown_timeout(Duration::from_millis(100));
    if failures.is_empty() {
        tracing::info!("stopped cleanly; exiting with code 0");
        std::process::exit(0)
    }
    let code = if panicked { exit::PANIC } else { exit::FAILURE };
    terminate(code, &failures.join("; "))
}

fn build_runtime(config: &ServiceConfig) -> Runtime {
    let mut builder = match config.flavor {
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    };
    if let Some(threads) = config.worker_threads {
        builder.worker_threads(threads as usize);
    }
    builder.enable_all().build().unwrap_or_else(|error| {
        terminate(
            exit::FAILURE,
            &format!("cannot build the application runtime: {error}"),
        )
    })
}

/// A task on the application runtime that records each tick: when every
/// worker is blocked it stops, and the `runtime` liveness check sees it.
fn start_heartbeat(runtime: &Runtime, stall_threshold: Duration) {
    let period = (stall_threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    STATE.beat();
    let own = OwnTask::start();
    runtime.spawn(async move {
        let _own = own;
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            STATE.beat();
        }
    });
}

async fn run_preflight(app: &Handle) -> Vec<CheckResult> {
    let preflight = registry::checks(CheckKind::Preflight);
    let checks: Vec<_> = preflight.into_iter().map(Check::new).collect();
    join_all(checks.iter().map(|check| check.run(app))).await
}

/// Preflight checks, then the `on_startup` hooks by ascending order, equal
/// orders together. The first failing stage stops start-up.
async fn start_up(app: &Handle) -> Result<(), String> {
    let failures: Vec<String> = run_preflight(app)
        .await
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

/// `--lifecycle-preflight`: the preflight checks alone, one line each on
/// stdout; no probe server, no hooks. The image's own initContainer.
fn preflight_only(config: &ServiceConfig) -> ! {
    let runtime = build_runtime(config);
    let results = runtime.block_on(run_preflight(runtime.handle()));
    for result in &results {
        println!("{}", report::line(result));
    }
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.health.is_up())
        .map(report::line)
        .collect();
    runtime.shutdown_timeout(Duration::from_millis(100));
    if failed.is_empty() {
        std::process::exit(0)
    }
    terminate(
        exit::FAILURE,
        &format!("preflight failed: {}", failed.join("; ")),
    )
}

/// `--lifecycle-probe ENDPOINT`: an exec probe for images without curl.
/// It waits 1 s, or longer when the endpoint's checks may take longer: the
/// same `timeoutSeconds` the manifest gives the kubelet.
fn exec_probe(settings: &Settings, endpoint: &str) -> ! {
    let kind = match endpoint {
        "livez" => CheckKind::Liveness,
        "readyz" => CheckKind::Readiness,
        _ => CheckKind::Startup,
    };
    let timeout = EXEC_PROBE_TIMEOUT.max(Duration::from_secs(
        crate::manifest::probe_timeout_seconds(kind),
    ));
    match flags::probe(settings.probe_addr, endpoint, timeout) {
        Ok((status, body)) => {
            println!("{}", body.trim_end());
            std::process::exit(if status == 200 { 0 } else { 1 })
        }
        Err(error) => {
            // Not a failure of the service's: no termination message.
            eprintln!("{endpoint}: {error}");
            std::process::exit(1)
        }
    }
}

/// `--lifecycle-manifest`: the Kubernetes snippet for this binary.
fn print_manifest(settings: &Settings) -> ! {
    let name = std::env::args_os()
        .next()
        .map(std::path::PathBuf::from)
        .and_then(|path| path.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "service".to_owned());
    match crate::manifest::render(&name, settings) {
        Ok(yaml) => {
            print!("{yaml}");
            std::process::exit(0)
        }
        Err(error) => terminate(exit::BAD_CONFIG, &error),
    }
}
