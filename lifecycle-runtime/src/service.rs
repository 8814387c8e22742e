//! The driver behind `#[service_main]`: configuration, the command-line
//! flags, the application runtime, the probe server, start-up in order,
//! the body of `main`, the graceful stop and the exit code.

use std::future::Future;
use std::io::{self, Write};
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::runtime::{Handle, Runtime};

use crate::call::OwnTask;
use crate::checks::Check;
use crate::config::{self, Flavor, ServiceConfig, Settings};
use crate::exit::{self, Exit};
use crate::flags::{self, Mode};
use crate::hooks;
use crate::lifecycle::Lifecycle;
use crate::panics::contained;
use crate::probe::{self, Evaluator, ProbeServer, Responder};
use crate::registry::{self, CheckKind};
use crate::shutdown::{self, MainEnded};
use crate::signals::{self, Handlers};
use crate::stop_budget::{self, EXIT_TIMEOUT};

/// When `main` started: `lifecycle_startup_duration_seconds` counts from
/// here.
#[cfg(feature = "metrics")]
static MAIN_STARTED: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();

/// Runs a service: what `#[service_main]` expands to. Never returns: the
/// process exits with the code the crate docs' exit-code table gives.
/// `main` is the user's body with its result already converted by
/// [`MainOutcome`](crate::health::MainOutcome).
pub fn run_service<F, Fut>(config: ServiceConfig, main: F) -> !
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    // Before anything else, while no thread exists to fork with: as PID 1,
    // an init stays behind here and the service goes on as its child,
    // with every signal still blocked.
    let mut pid1 = crate::pid1::start(&config);
    // Then, before logging and configuration: from here on SIGTERM, SIGINT
    // and the configured stop signal are recorded, never the default
    // action (a bad stop signal is SIGTERM here, and exits 2 below). Only
    // now are signals let through, so that one forwarded by PID 1
    // meanwhile is recorded too.
    let stop_signal = config::stop_signal_wanted(&config, &config::process_env);
    let handlers = crate::signals::install(stop_signal);
    pid1.unblock();
    #[cfg(feature = "metrics")]
    let _ = MAIN_STARTED.set(std::time::Instant::now());
    run(&config, handlers, pid1.warning, main).exit()
}

/// The service's whole life, up to the exit it ends with. (The signal
/// thread may end the process sooner: a second signal, a missed deadline.)
/// It runs the process-wide lifecycle, the one that `shutdown_signal()`
/// and the other free functions reach.
fn run<F, Fut>(
    config: &ServiceConfig,
    handlers: io::Result<Handlers>,
    pid1_warning: Option<String>,
    main: F,
) -> Exit
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    match prepare(config, handlers, pid1_warning) {
        Ok((settings, handlers)) => serve(
            config,
            &settings,
            handlers,
            Lifecycle::global().clone(),
            main,
        ),
        Err(exit) => exit,
    }
}

/// Everything before serving: logging, the flags, the configuration, and
/// the modes that serve nothing, whose exit is the `Err`. Not generic
/// over `main`, so that it is compiled once in this crate rather than in
/// every service's binary.
fn prepare(
    config: &ServiceConfig,
    handlers: io::Result<Handlers>,
    pid1_warning: Option<String>,
) -> Result<(Settings, Handlers), Exit> {
    let env = config::process_env;
    // The mode before any configuration: the audit of a manifest takes
    // each container's configuration from the manifest, and must not fail
    // on a `LIFECYCLE_*` value of the CI job that runs it.
    let mode = flags::mode(std::env::args_os());
    let audit = matches!(mode, Ok(Mode::CheckManifest(_)));
    // An audit's failure is the CI job's, not a container's: said on
    // stderr, with no termination message.
    let audit_asked = audit || flags::asks_for_audit(std::env::args_os());
    // Logging first, so that every later failure is logged.
    let log_format = if audit {
        Ok(config::LogFormat::default())
    } else {
        config::log_format(&env)
    };
    if config.tracing {
        crate::logging::install(log_format.clone().unwrap_or_default());
    }
    if let Some(warning) = pid1_warning {
        tracing::warn!("{warning}");
    }
    let handlers = match handlers {
        Ok(handlers) => handlers,
        Err(error) => {
            return Err(Exit::failure(
                exit::FAILURE,
                format!(
                    "cannot install the handlers of {}: {error}",
                    signals::watched(config::stop_signal_wanted(config, &env))
                ),
            ))
        }
    };
    if let Err(error) = log_format {
        return Err(Exit::failure(exit::BAD_CONFIG, error.to_string()));
    }
    let mode = match mode {
        Ok(mode) => mode,
        Err(error) if audit_asked => return Err(crate::audit::unusable(&error)),
        Err(error) => return Err(Exit::failure(exit::BAD_CONFIG, error)),
    };
    let duplicates = registry::duplicate_names();
    if !duplicates.is_empty() {
        if audit_asked {
            return Err(crate::audit::unusable(&duplicates.join("; ")));
        }
        return Err(Exit::failure(exit::BAD_CONFIG, duplicates.join("; ")));
    }
    crate::panics::install(config.panic);
    if let Mode::CheckManifest(check) = mode {
        serve_nothing(handlers);
        return Err(crate::audit::run(config, &check));
    }
    let settings = match Settings::resolve(config, &env) {
        Ok(settings) => settings,
        Err(error) => return Err(Exit::failure(exit::BAD_CONFIG, error.to_string())),
    };
    Err(match mode {
        Mode::Serve => return Ok((settings, handlers)),
        Mode::Preflight => {
            serve_nothing(handlers);
            preflight_only(config)
        }
        Mode::Probe(endpoint) => {
            serve_nothing(handlers);
            crate::exec_probe::run(&settings, endpoint)
        }
        Mode::Manifest(manifest) => {
            serve_nothing(handlers);
            crate::manifest::print(&settings, manifest)
        }
        Mode::CheckManifest(_) => unreachable!("the audit has returned above"),
    })
}

/// For the modes that serve nothing: a signal does what its default
/// action would have (it ends the process, or for SIGWINCH nothing).
fn serve_nothing(handlers: Handlers) {
    let watched = signals::watched(handlers.stop_signal());
    if let Err(error) = signals::default_action(handlers) {
        tracing::warn!(
            "cannot watch {watched} ({error}): they {}",
            signals::UNWATCHED
        );
    }
}

fn serve<F, Fut>(
    config: &ServiceConfig,
    settings: &Settings,
    handlers: Handlers,
    lifecycle: Arc<Lifecycle>,
    main: F,
) -> Exit
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    // A signal received since the handlers were installed is acted on now.
    if let Err(error) = signals::start(handlers, lifecycle.clone(), settings.shutdown_timeout) {
        return Exit::failure(
            exit::FAILURE,
            format!(
                "cannot start the thread that watches {}: {error}",
                signals::watched(settings.stop_signal)
            ),
        );
    }
    let runtime = match build_runtime(config) {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    start_heartbeat(&runtime, &lifecycle, settings.stall_threshold);
    let evaluator = Arc::new(Evaluator::new(
        lifecycle.clone(),
        runtime.handle().clone(),
        settings.stall_threshold,
        settings.max_tasks,
        registry::probe_checks(),
    ));
    // Started once start-up has finished (below).
    let background_checks = evaluator.clone();
    #[cfg(feature = "grpc")]
    crate::grpc::install(evaluator.clone());
    // Ended before the probe server stops, so that it stops gracefully.
    #[cfg(feature = "grpc")]
    let watch_streams_end = tokio_util::sync::CancellationToken::new();
    let responder = Responder::new(
        evaluator,
        settings.reasons,
        #[cfg(feature = "grpc")]
        watch_streams_end.clone(),
        #[cfg(feature = "metrics")]
        settings.metrics,
    );
    #[cfg(feature = "metrics")]
    {
        crate::metrics::set_recording(settings.metrics);
        if settings.metrics {
            crate::metrics::observe(lifecycle.clone(), runtime.handle().clone());
        }
    }
    let answer = move |request| responder.answer(request);
    let probes = match ProbeServer::start(settings.probe_addr, answer) {
        Ok(probes) => probes,
        Err(error) => {
            return Exit::failure(
                exit::FAILURE,
                format!(
                    "cannot bind the probe server to {} (set LIFECYCLE_PROBE_ADDR to another address): {error}",
                    settings.probe_addr
                ),
            )
        }
    };
    tracing::info!("probe server listening on http://{}", probes.local_addr);
    // The listener is bound and listening: connections queue from now.
    let published = lifecycle
        .addresses()
        .probe_listening(settings.probe_addr_file.as_deref(), probes.local_addr);
    // Only writing a file can fail.
    if let (Err(error), Some(path)) = (published, &settings.probe_addr_file) {
        return Exit::failure(
            exit::BAD_CONFIG,
            format!(
                "invalid configuration: {}={:?}: cannot write the probe address there: {error}",
                config::PROBE_ADDR_FILE,
                path.display()
            ),
        );
    }
    tracing::info!(
        "drain delay {} ms ({}); shutdown timeout {} ms; stall threshold {} ms",
        settings.drain_delay.as_millis(),
        settings.drain_delay_source,
        settings.shutdown_timeout.as_millis(),
        settings.stall_threshold.as_millis(),
    );
    if !matches!(
        settings.stop_signal,
        config::StopSignal::Sigterm | config::StopSignal::Sigint
    ) {
        tracing::info!(
            "stop signal {}: it starts the graceful stop, as SIGTERM and SIGINT do",
            settings.stop_signal
        );
    }
    if let Some(warning) = stop_budget::budget_warning(
        settings.drain_delay,
        settings.connection_drain,
        settings.shutdown_timeout,
    ) {
        tracing::warn!("{warning}");
    }
    if cfg!(windows) {
        let hooks = registry::hooks_budget(registry::HookKind::OnShutdown);
        if let Some(warning) = stop_budget::windows_stop_window_warning(
            settings.drain_delay,
            settings.connection_drain,
            hooks,
        ) {
            tracing::warn!("{warning}");
        }
    }

    let app = runtime.handle().clone();
    let drain_delay = settings.drain_delay;
    let plan = shutdown::Plan {
        shutdown_timeout: settings.shutdown_timeout,
        connection_drain: settings.connection_drain,
    };
    let (failures, panicked) = runtime.block_on(async {
        let mut failures = Vec::new();
        let mut panicked = false;
        let mut main_ended = |ended: MainEnded, failures: &mut Vec<String>| match ended {
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
        };
        // A signal during start-up abandons it: what is running is
        // cancelled (dropped, which aborts it) and main never runs.
        let started = tokio::select! {
            biased;
            _ = lifecycle.stop_requested() => Ok(false),
            result = start_up(&lifecycle, &app) => result.map(|()| true),
        };
        // A signal may also come between the end of start-up and this:
        // the phase machine refuses `Running` once it is `Draining`.
        let started = started.map(|done| {
            if done {
                // Now that the on_startup hooks have made what they check,
                // with a first run at once; before `Running`, so that a
                // probe that sees it finds the first run under way. (A stop
                // requested meanwhile ends them at once.)
                background_checks.start_background_checks();
            }
            done && lifecycle.finish_startup().is_ok()
        });
        let body = shutdown::main_body(&lifecycle, main());
        tokio::pin!(body);
        let mut main_running = false;
        match started {
            Ok(true) => {
                #[cfg(feature = "metrics")]
                if let Some(began) = MAIN_STARTED.get() {
                    crate::metrics::started(began.elapsed());
                }
                tracing::info!("start-up finished; running");
                match shutdown::serve(&lifecycle, body.as_mut(), drain_delay).await {
                    Some(ended) => main_ended(ended, &mut failures),
                    None => main_running = true,
                }
            }
            Ok(false) => tracing::info!("start-up abandoned: stopping before main runs"),
            Err(error) => {
                // Out of rotation for good; what start-up acquired, the
                // shutdown hooks may release.
                lifecycle.request_stop();
                tracing::error!("{error}");
                failures.push(error);
            }
        }
        let main = main_running.then_some(body.as_mut());
        let stopped = shutdown::stop(&lifecycle, &app, main, &plan).await;
        if let Some(ended) = stopped.main {
            main_ended(ended, &mut failures);
        }
        failures.extend(stopped.hook_failures);
        if let Some(running) = stopped.still_running {
            let failure = format!(
                "the on_shutdown hooks ran at their latest start and are done; still running: {running}"
            );
            tracing::error!("{failure}");
            failures.push(failure);
        }
        (failures, panicked)
    });

    #[cfg(feature = "grpc")]
    watch_streams_end.cancel();
    probes.stop();
    // Tasks still running are abandoned: the process is about to exit.
    runtime.shutdown_timeout(EXIT_TIMEOUT);
    if failures.is_empty() {
        tracing::info!("stopped cleanly; exiting with code 0");
        return Exit::success();
    }
    let code = if panicked { exit::PANIC } else { exit::FAILURE };
    Exit::failure(code, failures.join("; "))
}

fn build_runtime(config: &ServiceConfig) -> Result<Runtime, Exit> {
    let mut builder = match config.flavor {
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    };
    if let Some(threads) = config.worker_threads {
        builder.worker_threads(threads as usize);
    }
    builder.enable_all().build().map_err(|error| {
        Exit::failure(
            exit::FAILURE,
            format!("cannot build the application runtime: {error}"),
        )
    })
}

/// A task on the application runtime that records each tick: when every
/// worker is blocked it stops, and the `runtime` liveness check sees it.
fn start_heartbeat(runtime: &Runtime, lifecycle: &Arc<Lifecycle>, stall_threshold: Duration) {
    let period = (stall_threshold / 4).clamp(Duration::from_millis(1), Duration::from_millis(100));
    lifecycle.heartbeat().beat();
    let own = OwnTask::start();
    let lifecycle = lifecycle.clone();
    runtime.spawn(crate::call::task(contained("the heartbeat", async move {
        let _own = own;
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            ticks.tick().await;
            lifecycle.heartbeat().beat();
        }
    })));
}

/// Preflight checks, then the `on_startup` hooks by ascending order, equal
/// orders together. The first failing stage stops start-up.
async fn start_up(lifecycle: &Lifecycle, app: &Handle) -> Result<(), String> {
    let checks: Vec<_> = registry::checks(CheckKind::Preflight)
        .into_iter()
        .map(|registration| (Check::new(registration), registration.site))
        .collect();
    // A check that outlives an abandoned start-up (a plain fn, or an async
    // fn the abort has not reached yet) stays recorded until it has really
    // ended: the stop waits for it before the on_shutdown hooks, as for the
    // on_startup hooks.
    let results = join_all(checks.iter().map(|(check, site)| {
        let outliving = lifecycle
            .startup_calls()
            .enter(format!("preflight check \"{}\" ({site})", check.name()));
        check.run_outliving(app, outliving)
    }))
    .await;
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
    hooks::run_startup_hooks(lifecycle, app).await
}

/// `--lifecycle-preflight`: the preflight checks alone, one line each on
/// stdout; no probe server, no hooks. The image's own initContainer.
fn preflight_only(config: &ServiceConfig) -> Exit {
    let runtime = match build_runtime(config) {
        Ok(runtime) => runtime,
        Err(exit) => return exit,
    };
    let results = runtime.block_on(crate::run_checks(CheckKind::Preflight));
    // A closed stdout loses the lines, never the verdict (`println!`
    // would panic).
    let mut stdout = std::io::stdout().lock();
    for result in &results {
        let _ = writeln!(stdout, "{}", probe::report::line(result));
    }
    drop(stdout);
    let failed: Vec<String> = results
        .iter()
        .filter(|r| !r.health.is_up())
        .map(probe::report::line)
        .collect();
    runtime.shutdown_timeout(Duration::from_millis(100));
    if failed.is_empty() {
        return Exit::success();
    }
    Exit::failure(
        exit::FAILURE,
        format!("preflight failed: {}", failed.join("; ")),
    )
}
