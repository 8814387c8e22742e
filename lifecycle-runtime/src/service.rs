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
use crate::exit::Exit;
use crate::failures::{Failure, Failures};
use crate::flags::{self, CheckManifest, FlagError, Flags, Mode};
use crate::hooks;
use crate::lifecycle::Lifecycle;
use crate::panics::contained;
use crate::probe::{self, Evaluator, ProbeServer, Responder};
use crate::registry::{self, CheckKind};
use crate::shutdown;
use crate::signals::{self, Handlers};
use crate::stop_budget::{self, EXIT_TIMEOUT};

/// When `main` started: `lifecycle_startup_duration_seconds` counts from
/// here.
#[cfg(feature = "metrics")]
static MAIN_STARTED: once_cell::sync::OnceCell<std::time::Instant> =
    once_cell::sync::OnceCell::new();

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
    // The flags before any configuration: the audit of a manifest takes
    // each container's configuration from the manifest, and must not fail
    // on a `LIFECYCLE_*` value of the CI job that runs it.
    let flags = flags::parse(std::env::args_os());
    // Logging first, so that every later failure is logged.
    let log_format = match flags {
        Flags::Audit(Ok(_)) => Ok(config::LogFormat::default()),
        _ => config::log_format(&env),
    };
    if config.tracing {
        crate::logging::install(log_format.clone().unwrap_or_default());
    }
    if let Some(warning) = pid1_warning {
        tracing::warn!("{warning}");
    }
    let handlers = handlers.map_err(|error| Failure::SignalHandlers {
        watched: signals::watched(config::stop_signal_wanted(config, &env)),
        error,
    })?;
    log_format.map_err(Failure::Config)?;
    let mode = match flags {
        Flags::Audit(check) => return Err(audit(config, handlers, check)),
        Flags::Run(mode) => mode.map_err(Failure::Flags)?,
    };
    registrations_usable(config)?;
    let settings = Settings::resolve(config, &env).map_err(Failure::Config)?;
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
    })
}

/// What every mode that runs or reads the registrations needs first:
/// names unique per kind, then the panic policy installed.
fn registrations_usable(config: &ServiceConfig) -> Result<(), Failure> {
    let duplicates = registry::duplicate_names();
    if !duplicates.is_empty() {
        return Err(Failure::DuplicateNames(duplicates));
    }
    crate::panics::install(config.panic);
    Ok(())
}

/// `--lifecycle-check-manifest`. Its failure is the CI job's, not a
/// container's: said on stderr, with no termination message.
fn audit(
    config: &ServiceConfig,
    handlers: Handlers,
    check: Result<CheckManifest, FlagError>,
) -> Exit {
    let check = match check {
        Ok(check) => check,
        Err(error) => return crate::audit::unusable(&error.to_string()),
    };
    if let Err(failure) = registrations_usable(config) {
        return crate::audit::unusable(&failure.to_string());
    }
    serve_nothing(handlers);
    crate::audit::run(config, &check)
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

/// The service: the signal thread, the application runtime and the probe
/// server, then start-up, `main` and the stop on that runtime; the exit
/// follows from what failed.
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
    let (runtime, probes) = match start_serving(config, settings, handlers, &lifecycle) {
        Ok(started) => started,
        Err(failure) => return failure.into(),
    };
    let app = runtime.handle().clone();
    let failures = runtime.block_on(start_up_run_and_stop(
        &lifecycle,
        &app,
        &probes.evaluator,
        settings,
        main,
    ));
    probes.stop();
    // Tasks still running are abandoned: the process is about to exit.
    runtime.shutdown_timeout(EXIT_TIMEOUT);
    if failures.is_empty() {
        tracing::info!("stopped cleanly; exiting with code 0");
    }
    failures.exit()
}

/// Everything that serving needs before start-up: the signal thread (a
/// signal received since the handlers were installed is acted on now), the
/// application runtime with its heartbeat, and the probe server. Not
/// generic over `main`, as [`prepare`].
fn start_serving(
    config: &ServiceConfig,
    settings: &Settings,
    handlers: Handlers,
    lifecycle: &Arc<Lifecycle>,
) -> Result<(Runtime, Probes), Failure> {
    signals::start(handlers, lifecycle.clone(), settings.shutdown_timeout).map_err(|error| {
        Failure::SignalThread {
            watched: signals::watched(settings.stop_signal),
            error,
        }
    })?;
    let runtime = build_runtime(config)?;
    start_heartbeat(&runtime, lifecycle, settings.stall_threshold);
    let probes = Probes::start(settings, lifecycle, runtime.handle())?;
    log_settings(settings);
    Ok((runtime, probes))
}

/// The probe server, and what stops with it.
struct Probes {
    server: ProbeServer,
    /// What the probes evaluate: its background checks start once
    /// start-up has finished.
    evaluator: Arc<Evaluator>,
    /// Ended before the probe server stops, so that it stops gracefully.
    #[cfg(feature = "grpc")]
    watch_streams_end: tokio_util::sync::CancellationToken,
}

impl Probes {
    /// Binds the probe server, serving at once, and publishes its address.
    fn start(
        settings: &Settings,
        lifecycle: &Arc<Lifecycle>,
        app: &Handle,
    ) -> Result<Probes, Failure> {
        let evaluator = Arc::new(Evaluator::new(
            lifecycle.clone(),
            app.clone(),
            settings.stall_threshold,
            settings.max_tasks,
            registry::probe_checks(),
        ));
        #[cfg(feature = "grpc")]
        crate::grpc::install(evaluator.clone());
        #[cfg(feature = "grpc")]
        let watch_streams_end = tokio_util::sync::CancellationToken::new();
        let responder = Responder::new(
            evaluator.clone(),
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
                crate::metrics::observe(lifecycle.clone(), app.clone());
            }
        }
        let answer = move |request, protocol| responder.answer(request, protocol);
        let server = ProbeServer::start(settings.probe_addr, answer).map_err(|error| {
            Failure::ProbeBind {
                addr: settings.probe_addr,
                error,
            }
        })?;
        tracing::info!("probe server listening on http://{}", server.local_addr);
        // The listener is bound and listening: connections queue from now.
        let published = lifecycle
            .addresses()
            .probe_listening(settings.probe_addr_file.as_deref(), server.local_addr);
        // Only writing a file can fail.
        if let (Err(error), Some(path)) = (published, &settings.probe_addr_file) {
            return Err(Failure::ProbeAddrFile {
                path: path.clone(),
                error,
            });
        }
        Ok(Probes {
            server,
            evaluator,
            #[cfg(feature = "grpc")]
            watch_streams_end,
        })
    }

    fn stop(self) {
        #[cfg(feature = "grpc")]
        self.watch_streams_end.cancel();
        self.server.stop();
    }
}

/// The settings the stop follows, with a warning for what cannot hold.
fn log_settings(settings: &Settings) {
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
}

/// Start-up, the body of `main` and the stop, on the application runtime:
/// returns what failed.
async fn start_up_run_and_stop<F, Fut>(
    lifecycle: &Arc<Lifecycle>,
    app: &Handle,
    evaluator: &Evaluator,
    settings: &Settings,
    main: F,
) -> Failures
where
    F: FnOnce() -> Fut,
    Fut: Future<Output = Result<(), String>>,
{
    let mut failures = Failures::default();
    let started = start_up_unless_stopped(lifecycle, app, evaluator).await;
    let body = shutdown::main_body(lifecycle, main());
    tokio::pin!(body);
    let mut main_running = false;
    match started {
        Ok(true) => {
            #[cfg(feature = "metrics")]
            if let Some(began) = MAIN_STARTED.get() {
                crate::metrics::started(began.elapsed());
            }
            tracing::info!("start-up finished; running");
            match shutdown::serve(lifecycle, body.as_mut(), settings.drain_delay).await {
                Some(ended) => main_ended(ended, &mut failures),
                None => main_running = true,
            }
        }
        Ok(false) => tracing::info!("start-up abandoned: stopping before main runs"),
        Err(failed) => {
            // Out of rotation for good; what start-up acquired, the
            // shutdown hooks may release.
            lifecycle.request_stop();
            tracing::error!("{failed}");
            failures.extend(failed);
        }
    }
    let main = main_running.then_some(body.as_mut());
    let plan = shutdown::Plan {
        shutdown_timeout: settings.shutdown_timeout,
        connection_drain: settings.connection_drain,
    };
    let stopped = shutdown::stop(lifecycle, app, main, &plan).await;
    if let Some(ended) = stopped.main {
        main_ended(ended, &mut failures);
    }
    failures.extend(stopped.hook_failures);
    if let Some(running) = stopped.still_running {
        let failure = Failure::StillRunning(running);
        tracing::error!("{failure}");
        failures.push(failure);
    }
    failures
}

/// How `main` ended, among the failures. A panic is not logged here: the
/// panic hook has logged it with its location.
fn main_ended(ended: Result<(), Failure>, failures: &mut Failures) {
    if let Err(failure) = ended {
        if matches!(failure, Failure::MainReturned(_)) {
            tracing::error!("{failure}");
        }
        failures.push(failure);
    }
}

/// Start-up, then phase `Running`: `Ok(true)` once running, `Ok(false)`
/// when a stop request came first. A signal during start-up abandons it:
/// what is running is cancelled (dropped, which aborts it) and main never
/// runs.
async fn start_up_unless_stopped(
    lifecycle: &Lifecycle,
    app: &Handle,
    evaluator: &Evaluator,
) -> Result<bool, Failures> {
    let done = tokio::select! {
        biased;
        _ = lifecycle.stop_requested() => false,
        result = start_up(lifecycle, app) => {
            result?;
            true
        }
    };
    if done {
        // Now that the on_startup hooks have made what they check, with a
        // first run at once; before `Running`, so that a probe that sees
        // it finds the first run under way. (A stop requested meanwhile
        // ends them at once.)
        evaluator.start_background_checks();
    }
    // A signal may also come between the end of start-up and this: the
    // phase machine refuses `Running` once it is `Draining`.
    Ok(done && lifecycle.finish_startup().is_ok())
}

fn build_runtime(config: &ServiceConfig) -> Result<Runtime, Failure> {
    let mut builder = match config.flavor {
        Flavor::MultiThread => tokio::runtime::Builder::new_multi_thread(),
        Flavor::CurrentThread => tokio::runtime::Builder::new_current_thread(),
    };
    if let Some(threads) = config.worker_threads {
        builder.worker_threads(threads as usize);
    }
    builder.enable_all().build().map_err(Failure::Runtime)
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
async fn start_up(lifecycle: &Lifecycle, app: &Handle) -> Result<(), Failures> {
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
    let failures: Failures = results
        .into_iter()
        .filter(|r| !r.health.is_up())
        .map(|r| Failure::Preflight {
            reason: r.health.reason().unwrap_or("no reason given").to_owned(),
            name: r.name,
        })
        .collect();
    if !failures.is_empty() {
        return Err(failures);
    }
    hooks::run_startup_hooks(lifecycle, app).await
}

/// `--lifecycle-preflight`: the preflight checks alone, one line each on
/// stdout; no probe server, no hooks. The image's own initContainer.
fn preflight_only(config: &ServiceConfig) -> Exit {
    let runtime = match build_runtime(config) {
        Ok(runtime) => runtime,
        Err(failure) => return failure.into(),
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
    Failure::PreflightChecks(failed).into()
}
