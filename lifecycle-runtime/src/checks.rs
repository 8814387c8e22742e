//! Running a registered check as probes need it: bounded by its timeout,
//! on demand with concurrent probes sharing one run, or in the background
//! every `interval_ms` with probes reading the latest result; and logging
//! each change of a check's result with its reason ([`TransitionLog`]),
//! since answers to the network withhold reasons.

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures_util::future::{FutureExt, WeakShared};
use tokio::runtime::Handle;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use crate::call::{run_bounded, OwnTask};
#[cfg(feature = "metrics")]
use crate::failures::CallFailure;
use crate::health::Health;
#[cfg(feature = "metrics")]
use crate::metrics::{CheckSeries, RunResult};
use crate::panics::contained;
use crate::registry::{BoxFuture, Call, CheckRegistration};
use crate::text::{one_line, MAX_VALUE};

/// How long past its interval and timeout a background result is trusted.
const STALE_SLACK: Duration = Duration::from_secs(1);

/// The start of the reason of a background result too old to trust; the
/// rest (its age) changes with every probe.
const STALE: &str = "stale: the last result is";

/// The start of the reason of a plain `fn` check still blocked in an
/// earlier run; the rest (for how long) changes with every probe.
const BLOCKED: &str = "the previous run has not returned after";

/// The longest a probe waits for a background check's first run: within
/// the 1 s that `--lifecycle-manifest` gives an endpoint whose checks all
/// answer from memory (`timeoutSeconds`), whatever the check's own
/// timeout.
const FIRST_RUN_WAIT: Duration = Duration::from_millis(800);

/// The reason of a background check before its runner starts, which is
/// when start-up has finished: what it checks may not exist before the
/// `on_startup` hooks have run.
const NOT_STARTED: &str = "not yet run: background checks start when start-up has finished";

/// Logs each change of one check's result, once, with its reason: up to
/// down, a new reason, down to up. Answers to peers outside loopback
/// withhold reasons (`probe::reasons`); the log always has them, and
/// operators read them there.
pub(crate) struct TransitionLog {
    /// `readiness check "db"` and the like.
    what: String,
    /// Whether a failure is logged as a warning (else as information:
    /// the framework's own state, logged where it changes too).
    warn: bool,
    /// `None` while up (and before the first result); the reason, or what
    /// stands for it, while down.
    last: Mutex<Option<String>>,
}

impl TransitionLog {
    pub(crate) fn new(kind: &str, name: &str, warn: bool) -> TransitionLog {
        TransitionLog {
            what: format!("{kind} check \"{name}\""),
            warn,
            last: Mutex::new(None),
        }
    }

    /// Logs `health` if it differs from the last one noted. `steady`
    /// stands for its reason in the comparison when the reason holds a
    /// figure that changes on its own (a time, a count): the change is the
    /// cause, not the figure. Returns whether it logged.
    pub(crate) fn note(&self, health: &Health, steady: Option<&str>) -> bool {
        let now = match health.reason() {
            None if health.is_up() => None,
            reason => {
                let reason = reason.unwrap_or("no reason given");
                Some(steady.unwrap_or(reason).to_owned())
            }
        };
        let mut last = self.last.lock().unwrap_or_else(|p| p.into_inner());
        if *last == now {
            return false;
        }
        *last = now;
        drop(last);
        match health.reason() {
            None if health.is_up() => tracing::info!("{} passes", self.what),
            reason => {
                // One line, bounded: the log is text too.
                let reason = one_line(reason.unwrap_or("no reason given"), MAX_VALUE);
                if self.warn {
                    tracing::warn!("{} fails: {reason}", self.what);
                } else {
                    tracing::info!("{} fails: {reason}", self.what);
                }
            }
        }
        true
    }
}

/// What stands for a registered check's reason in its [`TransitionLog`]:
/// the framework's own reasons that carry an age.
fn steady(health: &Health) -> Option<&'static str> {
    let reason = health.reason()?;
    [STALE, BLOCKED]
        .into_iter()
        .find(|start| reason.starts_with(start))
}

/// One check's answer, as probes report it and [`run_checks`] returns it.
///
/// [`run_checks`]: crate::run_checks
#[derive(Debug, Clone)]
pub struct CheckResult {
    pub(crate) name: String,
    pub(crate) critical: bool,
    pub(crate) health: Health,
    pub(crate) duration: Duration,
}

impl CheckResult {
    /// The check's name, as in probe paths.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Whether it fails its endpoint when down (`critical`, true unless
    /// `critical = false`).
    pub fn critical(&self) -> bool {
        self.critical
    }

    /// What it said; a time-out or a panic is a `down` with its reason.
    pub fn health(&self) -> &Health {
        &self.health
    }

    /// How long the run took.
    pub fn duration(&self) -> Duration {
        self.duration
    }
}

impl CheckResult {
    /// A result no run of a check produced: a built-in check's, computed
    /// from memory, or a registered check's that was not run (stale, still
    /// blocked, not yet run, latched).
    pub(crate) fn without_run(name: &str, health: Health) -> CheckResult {
        CheckResult {
            name: name.to_owned(),
            critical: true,
            health,
            duration: Duration::ZERO,
        }
    }
}

/// How a check's call ended, for its series; a cancelled call (the
/// runtime shutting down) is a failure.
#[cfg(feature = "metrics")]
fn run_result(ended: &Result<Health, CallFailure>) -> RunResult {
    match ended {
        Ok(health) if health.is_up() => RunResult::Ok,
        Ok(_) | Err(CallFailure::Cancelled) => RunResult::Failed,
        Err(CallFailure::TimedOut(_)) => RunResult::Timeout,
        Err(CallFailure::Panicked(_)) => RunResult::Panic,
    }
}

/// Set while a check's plain `fn` runs, cleared when it returns (or
/// unwinds): a timed-out call that is still blocked keeps it set.
struct BlockingMark(Arc<Mutex<Option<Instant>>>);

impl Drop for BlockingMark {
    fn drop(&mut self) {
        *self.0.lock().unwrap_or_else(|p| p.into_inner()) = None;
    }
}

/// A registered check as the probe server runs it: on demand with
/// concurrent probes sharing one run, or in the background every
/// `interval_ms` with probes reading the latest result.
pub(crate) struct Check {
    pub(crate) registration: &'static CheckRegistration,
    /// On demand: the run in flight. Weak, so that a run every prober gave
    /// up on is dropped (and its task aborted) rather than resumed later
    /// with a stale clock.
    in_flight: Mutex<Option<WeakShared<BoxFuture<CheckResult>>>>,
    /// In the background: the latest result and when it was taken, if a
    /// run has ended.
    latest: Mutex<Option<(CheckResult, Instant)>>,
    /// In the background: whether the runner has started (start-up has
    /// finished), and the first result's arrival, which a probe in the
    /// meantime waits for rather than answer "not yet run".
    runner_started: AtomicBool,
    /// The runner has ended (a stop), with or without a first result.
    runner_ended: Arc<AtomicBool>,
    first_result: Arc<Notify>,
    /// Since when a plain `fn` call has been running: one that outlived
    /// its timeout cannot be cancelled, so no second one is started
    /// beside it (each would hold a blocking-pool thread).
    blocking_since: Arc<Mutex<Option<Instant>>>,
    /// Each change of its result, logged once.
    transitions: TransitionLog,
    #[cfg(feature = "metrics")]
    series: CheckSeries,
}

impl Check {
    pub(crate) fn new(registration: &'static CheckRegistration) -> Arc<Check> {
        Arc::new(Check {
            registration,
            in_flight: Mutex::new(None),
            latest: Mutex::new(None),
            runner_started: AtomicBool::new(false),
            runner_ended: Arc::default(),
            first_result: Arc::default(),
            blocking_since: Arc::new(Mutex::new(None)),
            transitions: TransitionLog::new(registration.kind.as_str(), registration.name, true),
            #[cfg(feature = "metrics")]
            series: CheckSeries::new(registration.kind.as_str(), registration.name),
        })
    }

    /// Logs `result` if it changed the check's result.
    fn note(&self, result: &CheckResult) {
        self.transitions
            .note(&result.health, steady(&result.health));
    }

    pub(crate) fn name(&self) -> &'static str {
        self.registration.name
    }

    fn interval(&self) -> Option<Duration> {
        self.registration.interval_ms.map(Duration::from_millis)
    }

    fn failed(&self, reason: String) -> CheckResult {
        CheckResult {
            critical: self.registration.critical,
            ..CheckResult::without_run(self.name(), Health::down(reason))
        }
    }

    /// One run: bounded by the timeout; for a plain `fn`, refused while an
    /// earlier call is still blocked.
    pub(crate) async fn run(&self, app: &Handle) -> CheckResult {
        self.run_outliving(app, ()).await
    }

    /// [`run`](Self::run), with `outliving` dropped only when the call has
    /// really ended, which may be after this returns or is dropped (see
    /// [`run_bounded`]).
    pub(crate) async fn run_outliving(
        &self,
        app: &Handle,
        outliving: impl Send + 'static,
    ) -> CheckResult {
        let started = Instant::now();
        let mark = match self.registration.call {
            Call::Async(_) => None,
            Call::Blocking(_) => {
                let mut since = self
                    .blocking_since
                    .lock()
                    .unwrap_or_else(|p| p.into_inner());
                if let Some(since) = *since {
                    #[cfg(feature = "metrics")]
                    self.series.result(false);
                    return self.failed(format!(
                        "{BLOCKED} {} ms (a plain fn cannot be cancelled)",
                        since.elapsed().as_millis()
                    ));
                }
                *since = Some(started);
                Some(BlockingMark(self.blocking_since.clone()))
            }
        };
        let ended = run_bounded(
            app,
            &self.registration.call,
            self.registration.timeout(),
            (mark, outliving),
        )
        .await;
        #[cfg(feature = "metrics")]
        self.series.ran(run_result(&ended), started.elapsed());
        let health = match ended {
            Ok(health) => health,
            Err(failure) => Health::down(failure.to_string()),
        };
        CheckResult {
            name: self.name().to_owned(),
            critical: self.registration.critical,
            health,
            duration: started.elapsed(),
        }
    }

    /// The check's current answer. A background check never runs here: it
    /// answers its latest result, unless that is too old to trust (the
    /// runner lives on the application runtime, which may be stalled); a
    /// probe during its first run waits for it.
    pub(crate) async fn result(self: &Arc<Self>, app: &Handle) -> CheckResult {
        if let Some(interval) = self.interval() {
            let Some((result, taken)) = self.latest() else {
                return self.first_result().await;
            };
            let fresh_for = interval + self.registration.timeout() + STALE_SLACK;
            if taken.elapsed() > fresh_for {
                let stale = self.failed(format!(
                    "{STALE} {} ms old (interval {} ms)",
                    taken.elapsed().as_millis(),
                    interval.as_millis()
                ));
                self.note(&stale);
                #[cfg(feature = "metrics")]
                self.series.result(false);
                return stale;
            }
            return result;
        }
        let run = {
            let mut in_flight = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            match in_flight.as_ref().and_then(WeakShared::upgrade) {
                Some(run) => run,
                None => {
                    let this = self.clone();
                    let app = app.clone();
                    let run = async move {
                        let result = this.run(&app).await;
                        // The next probe starts a fresh run.
                        *this.in_flight.lock().unwrap_or_else(|p| p.into_inner()) = None;
                        this.note(&result);
                        result
                    }
                    .boxed()
                    .shared();
                    *in_flight = run.downgrade();
                    run
                }
            }
        };
        run.await
    }

    fn latest(&self) -> Option<(CheckResult, Instant)> {
        self.latest
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// A background check without a result yet: before start-up has
    /// finished, "not yet run"; during its first run (started when
    /// start-up finished), that run's result, so that `/readyz` can pass
    /// as soon as `/startupz` does. The wait is bounded by the check's
    /// timeout and by [`FIRST_RUN_WAIT`] (the runner lives on the
    /// application runtime, which may be stalled, and the kubelet's probe
    /// has its own timeout), and ends at once if the runner has ended (a
    /// stop) without a result.
    async fn first_result(&self) -> CheckResult {
        if !self.runner_started.load(Ordering::SeqCst) {
            return self.failed(NOT_STARTED.into());
        }
        let arrived = self.first_result.notified();
        tokio::pin!(arrived);
        // Registered before looking, so that a result stored (or the
        // runner's end) in between is not missed.
        arrived.as_mut().enable();
        let bound = self.registration.timeout().min(FIRST_RUN_WAIT);
        if self.latest().is_none() && !self.runner_ended.load(Ordering::SeqCst) {
            tokio::select! {
                () = arrived => {}
                () = tokio::time::sleep(bound) => {}
            }
        }
        match self.latest() {
            Some((result, _)) => result,
            None if self.runner_ended.load(Ordering::SeqCst) => {
                self.failed("not yet run: stopped before its first run ended".into())
            }
            None => self.failed(format!(
                "not yet run: the first run has not ended after {} ms",
                bound.as_millis()
            )),
        }
    }

    /// For a check with `interval_ms`: runs it now and every interval on
    /// the application runtime, until `stop` is cancelled, calling
    /// `changed` after its first result and each that passes where the one
    /// before failed, or fails where it passed.
    /// Returns whether a runner was started.
    pub(crate) fn start_background(
        self: &Arc<Self>,
        app: &Handle,
        stop: CancellationToken,
        changed: impl Fn() + Send + 'static,
    ) -> bool {
        let Some(interval) = self.interval() else {
            return false;
        };
        self.runner_started.store(true, Ordering::SeqCst);
        let this = self.clone();
        let handle = app.clone();
        let own = OwnTask::start();
        let ended = RunnerEnded {
            ended: self.runner_ended.clone(),
            waiters: self.first_result.clone(),
        };
        app.spawn(crate::call::task(contained(
            "a background check runner",
            async move {
                let _own = own;
                let _ended = ended;
                loop {
                    let result = tokio::select! {
                        biased;
                        _ = stop.cancelled() => return,
                        result = this.run(&handle) => result,
                    };
                    this.note(&result);
                    let up = result.health.is_up();
                    let before = this
                        .latest
                        .lock()
                        .unwrap_or_else(|p| p.into_inner())
                        .replace((result, Instant::now()));
                    // A pass turned failure or back, or the first result (which
                    // ends "not yet run"): a reason that changes from run to run
                    // is no change of status.
                    if before.is_none() {
                        this.first_result.notify_waiters();
                    }
                    if before.is_none_or(|(before, _)| before.health.is_up() != up) {
                        changed();
                    }
                    tokio::select! {
                        biased;
                        _ = stop.cancelled() => return,
                        _ = tokio::time::sleep(interval) => {}
                    }
                }
            },
        )));
        true
    }
}

/// Marks a runner ended however its task ends (a stop, a panic, the
/// runtime's shutdown), and wakes the probes waiting for a first result
/// that will not come.
struct RunnerEnded {
    ended: Arc<AtomicBool>,
    waiters: Arc<Notify>,
}

impl Drop for RunnerEnded {
    fn drop(&mut self) {
        self.ended.store(true, Ordering::SeqCst);
        self.waiters.notify_waiters();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::registry::{CheckKind, Site};

    static RUNS: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);

    fn counted() -> Health {
        RUNS.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        Health::up()
    }

    static BACKGROUND: CheckRegistration = CheckRegistration {
        kind: CheckKind::Readiness,
        name: "background",
        timeout_ms: Some(100),
        critical: true,
        interval_ms: Some(60_000),
        call: Call::Blocking(counted),
        site: Site {
            module: "tests",
            file: file!(),
            line: line!(),
        },
    };

    #[test]
    fn each_change_of_a_result_is_logged_once() {
        let log = TransitionLog::new("readiness", "db", true);
        assert!(
            !log.note(&Health::up(), None),
            "up from the start: no change"
        );
        assert!(log.note(&Health::down("refused"), None), "up to down");
        assert!(
            !log.note(&Health::down("refused"), None),
            "not once per probe"
        );
        assert!(
            log.note(&Health::down("timed out after 500 ms"), None),
            "a new reason"
        );
        assert!(
            log.note(&Health::up().with_detail("pool", 3), None),
            "down to up"
        );
        assert!(!log.note(&Health::up(), None));
        // A reason that carries its age: the cause is the change.
        for age in [1200, 1300, 5000] {
            let stale = Health::down(format!("{STALE} {age} ms old (interval 200 ms)"));
            assert_eq!(log.note(&stale, steady(&stale)), age == 1200, "{age}");
        }
        let blocked = Health::down(format!("{BLOCKED} 900 ms (a plain fn cannot be cancelled)"));
        assert!(log.note(&blocked, steady(&blocked)), "another cause");
        assert!(steady(&Health::down("refused")).is_none());
        // A first result that fails is a change.
        assert!(TransitionLog::new("liveness", "x", true).note(&Health::down("no"), None));
    }

    #[tokio::test]
    async fn a_background_check_waits_for_its_runner_and_a_probe_for_its_first_run() {
        let check = Check::new(&BACKGROUND);
        let app = Handle::current();
        let result = check.result(&app).await;
        assert_eq!(result.health.reason(), Some(NOT_STARTED));
        assert_eq!(RUNS.load(Ordering::SeqCst), 0, "probes never run it");

        // Once the runner starts, the first probe gets the first run's
        // result, not "not yet run": the runner is spawned, the probe
        // comes first and waits for it.
        let stop = CancellationToken::new();
        assert!(check.start_background(&app, stop.clone(), || {}));
        let result = check.result(&app).await;
        assert!(result.health.is_up(), "{result:?}");
        stop.cancel();
        assert_eq!(RUNS.load(Ordering::SeqCst), 1, "one run, from the runner");

        // A runner stopped before its first result: probes are not held.
        let stopped = Check::new(&BACKGROUND);
        let stop = CancellationToken::new();
        stop.cancel();
        assert!(stopped.start_background(&app, stop, || {}));
        let began = Instant::now();
        let result = stopped.result(&app).await;
        assert_eq!(
            result.health.reason(),
            Some("not yet run: stopped before its first run ended")
        );
        assert!(began.elapsed() < FIRST_RUN_WAIT, "{:?}", began.elapsed());
        assert_eq!(
            RUNS.load(Ordering::SeqCst),
            1,
            "a stopped runner never ran it"
        );
    }
}
