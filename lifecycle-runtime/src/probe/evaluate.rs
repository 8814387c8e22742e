//! Which checks a probe runs and what they say: the endpoint table (the
//! README's "Probe endpoints"), as a function of the lifecycle state and
//! the registered checks. No socket here: the HTTP and gRPC front ends ask
//! this.

#[cfg(feature = "metrics")]
use std::borrow::Cow;
use std::sync::Arc;
use std::time::Duration;

use futures_util::future::join_all;
use tokio::runtime::Handle;

use crate::checks::{Check, CheckResult};
use crate::health::Health;
use crate::lifecycle::Lifecycle;
use crate::probe::builtins::Builtins;
use crate::probe::endpoint::Endpoint;
#[cfg(any(feature = "grpc", feature = "metrics"))]
use crate::probe::endpoint::Target;
use crate::probe::report::{Entry, Evaluation};
use crate::registry::CheckRegistration;

/// Evaluates probes for one service.
pub(crate) struct Evaluator {
    lifecycle: Arc<Lifecycle>,
    app: Handle,
    /// Liveness, readiness and startup checks, each kind by name.
    checks: Vec<Arc<Check>>,
    /// The built-in checks.
    builtins: Builtins,
}

impl Evaluator {
    /// `checks` are the registered liveness, readiness and startup checks
    /// (others are ignored); `app` is the application runtime they run on.
    pub(crate) fn new(
        lifecycle: Arc<Lifecycle>,
        app: Handle,
        stall_threshold: Duration,
        max_tasks: Option<u64>,
        checks: impl IntoIterator<Item = &'static CheckRegistration>,
    ) -> Evaluator {
        Evaluator {
            builtins: Builtins::new(lifecycle.clone(), app.clone(), stall_threshold, max_tasks),
            lifecycle,
            app,
            checks: checks.into_iter().map(Check::new).collect(),
        }
    }

    /// Starts the background runners of the checks with `interval_ms`;
    /// they stop once a stop is requested.
    pub(crate) fn start_background_checks(&self) {
        for check in &self.checks {
            let lifecycle = self.lifecycle.clone();
            check.start_background(
                &self.app,
                self.lifecycle.stop_requested_token(),
                move || lifecycle.note_probe_input_change(),
            );
        }
    }

    fn registered(&self, endpoint: Endpoint) -> impl Iterator<Item = &Arc<Check>> {
        // Kind by kind, in the endpoint's order (liveness before readiness
        // on /healthz).
        endpoint.check_kinds().iter().flat_map(|kind| {
            self.checks
                .iter()
                .filter(move |c| c.registration.kind == *kind)
        })
    }

    /// Runs what `endpoint` (or only its check `only`) needs, leaving out
    /// `excludes`. `None` when `only` names no check of this endpoint.
    pub(crate) async fn evaluate(
        &self,
        endpoint: Endpoint,
        only: Option<&str>,
        excludes: &[String],
    ) -> Option<Evaluation> {
        let mut builtins = self.builtins.results(endpoint);
        let mut checks: Vec<_> = self.registered(endpoint).collect();
        if let Some(name) = only {
            builtins.retain(|b| b.name == name);
            checks.retain(|c| c.name() == name);
            if builtins.is_empty() && checks.is_empty() {
                return None;
            }
        }
        let excluded = |name: &str| excludes.iter().any(|e| e == name);
        let unmatched_excludes = excludes
            .iter()
            .filter(|e| {
                !builtins.iter().any(|b| &b.name == *e) && !checks.iter().any(|c| c.name() == *e)
            })
            .cloned()
            .collect();

        // Once passed, /startupz stays passed: the kubelet has moved on to
        // liveness and readiness, so its checks are not run again.
        let latched = endpoint == Endpoint::Startupz && self.lifecycle.startup_passed();
        let runs = checks
            .iter()
            .filter(|c| !excluded(c.name()) && !latched)
            .map(|c| c.result(&self.app));
        let mut results = join_all(runs).await.into_iter();

        let mut entries = Vec::new();
        for builtin in builtins {
            entries.push(if excluded(&builtin.name) {
                Entry::Excluded(builtin.name)
            } else {
                Entry::Ran(builtin)
            });
        }
        for check in checks {
            let entry = if excluded(check.name()) {
                Entry::Excluded(check.name().to_owned())
            } else if latched {
                Entry::Ran(CheckResult {
                    critical: check.registration.critical,
                    ..CheckResult::without_run(check.name(), Health::up())
                })
            } else {
                match results.next() {
                    Some(result) => Entry::Ran(result),
                    None => unreachable!("one result per check run"),
                }
            };
            entries.push(entry);
        }
        let evaluation = Evaluation {
            endpoint,
            entries,
            unmatched_excludes,
            single: only.is_some(),
        };
        let whole_endpoint = only.is_none() && excludes.is_empty();
        if endpoint == Endpoint::Startupz && whole_endpoint && evaluation.passed() {
            self.lifecycle.latch_startup_passed();
        }
        Some(evaluation)
    }
}

#[cfg(feature = "grpc")]
impl Evaluator {
    /// The lifecycle it answers from.
    pub(crate) fn lifecycle(&self) -> &Arc<Lifecycle> {
        &self.lifecycle
    }

    /// Whether `endpoint` (or its check `only`) fails on its built-in
    /// checks alone, which are read from memory: a gRPC answer need not
    /// wait for the registered checks then.
    pub(crate) fn fails_on_builtins(&self, endpoint: Endpoint, only: Option<&str>) -> bool {
        self.builtins
            .results(endpoint)
            .iter()
            .any(|b| !b.health.is_up() && only.is_none_or(|name| name == b.name))
    }

    /// The names of `endpoint`'s checks, built-in ones first: what
    /// `/ENDPOINT/NAME` may name.
    pub(crate) fn check_names(&self, endpoint: Endpoint) -> Vec<String> {
        let builtins = self
            .builtins
            .checks(endpoint)
            .map(|b| b.as_str().to_owned());
        let registered = self.registered(endpoint).map(|c| c.name().to_owned());
        builtins.chain(registered).collect()
    }
}

#[cfg(any(feature = "grpc", feature = "metrics"))]
impl Evaluator {
    /// Whether `target` names something this evaluator answers for: an
    /// endpoint, or one of its checks (`/ENDPOINT/NAME`).
    pub(crate) fn knows(&self, (endpoint, check): Target<'_>) -> bool {
        check.is_none_or(|name| {
            self.builtins.checks(endpoint).any(|b| b.as_str() == name)
                || self.registered(endpoint).any(|c| c.name() == name)
        })
    }
}

#[cfg(feature = "metrics")]
impl Evaluator {
    /// The `endpoint` label of a probe of `target`: `livez`, `healthz`,
    /// `livez/NAME` and the like for what this evaluator answers for,
    /// `other` for anything else. A closed set: no value grows with what
    /// clients send.
    pub(crate) fn endpoint_label(&self, target: Option<Target<'_>>) -> Cow<'static, str> {
        match target {
            Some((endpoint, None)) => Cow::Borrowed(endpoint.as_str()),
            Some((endpoint, Some(check))) if self.knows((endpoint, Some(check))) => {
                Cow::Owned(format!("{endpoint}/{check}"))
            }
            _ => Cow::Borrowed("other"),
        }
    }
}

#[cfg(test)]
mod tests {
    //! The endpoint table, row by row, on fresh instances: no process, no
    //! socket.

    use super::*;
    use crate::lifecycle::Phase;
    use crate::probe::reasons::Reasons;
    use crate::registry::{Call, CheckKind, Site};

    const SITE: Site = Site {
        module: "tests",
        file: file!(),
        line: 0,
    };

    const fn check(
        kind: CheckKind,
        name: &'static str,
        critical: bool,
        call: fn() -> Health,
    ) -> CheckRegistration {
        CheckRegistration {
            kind,
            name,
            timeout_ms: Some(100),
            critical,
            interval_ms: None,
            call: Call::Blocking(call),
            site: SITE,
        }
    }

    fn up() -> Health {
        Health::up()
    }
    fn refused() -> Health {
        Health::down("connection refused")
    }

    static ENGINE: CheckRegistration = check(CheckKind::Liveness, "engine", true, up);
    static ENGINE_STUCK: CheckRegistration = check(CheckKind::Liveness, "engine", true, refused);
    static DB: CheckRegistration = check(CheckKind::Readiness, "db", true, up);
    static QUEUE_DOWN: CheckRegistration = check(CheckKind::Readiness, "queue", true, refused);
    static CACHE_OPTIONAL: CheckRegistration = check(CheckKind::Readiness, "cache", false, refused);
    static MIGRATIONS: CheckRegistration = check(CheckKind::Startup, "migrations", true, up);
    static WARM_DOWN: CheckRegistration = check(CheckKind::Startup, "warm", true, refused);

    fn evaluator(checks: &[&'static CheckRegistration]) -> Evaluator {
        evaluator_on(Arc::new(Lifecycle::new()), checks)
    }

    fn evaluator_on(lifecycle: Arc<Lifecycle>, checks: &[&'static CheckRegistration]) -> Evaluator {
        Evaluator::new(
            lifecycle,
            Handle::current(),
            Duration::from_secs(10),
            None,
            checks.iter().copied(),
        )
    }

    fn running(evaluator: &Evaluator) {
        evaluator.lifecycle.finish_startup().unwrap();
    }

    async fn passes(evaluator: &Evaluator, endpoint: Endpoint) -> bool {
        evaluator
            .evaluate(endpoint, None, &[])
            .await
            .unwrap()
            .passed()
    }

    /// The `[+]`/`[-]` lines of a verbose answer.
    async fn lines(evaluator: &Evaluator, endpoint: Endpoint) -> String {
        let evaluation = evaluator.evaluate(endpoint, None, &[]).await.unwrap();
        crate::probe::report::text(&evaluation, true, Reasons::Shown)
    }

    #[tokio::test]
    async fn livez_needs_every_critical_liveness_check_and_the_runtime() {
        let ok = evaluator(&[&ENGINE, &QUEUE_DOWN]);
        ok.lifecycle.heartbeat().beat();
        assert!(
            passes(&ok, Endpoint::Livez).await,
            "readiness is not liveness"
        );
        assert_eq!(
            lines(&ok, Endpoint::Livez).await,
            "[+]lifecycle ok\n[+]runtime ok\n[+]engine ok\nlivez check passed\n"
        );
        let stuck = evaluator(&[&ENGINE_STUCK]);
        assert!(!passes(&stuck, Endpoint::Livez).await);
    }

    #[tokio::test]
    async fn livez_fails_when_the_runtime_stalls() {
        let evaluator = Evaluator::new(
            Arc::new(Lifecycle::new()),
            Handle::current(),
            Duration::from_millis(1),
            None,
            [],
        );
        std::thread::sleep(Duration::from_millis(5));
        let text = lines(&evaluator, Endpoint::Livez).await;
        assert!(
            text.contains("[-]runtime failed: no progress for "),
            "{text}"
        );
        assert!(!passes(&evaluator, Endpoint::Livez).await);
    }

    #[tokio::test]
    async fn mark_broken_fails_livez_and_healthz_for_good() {
        let evaluator = evaluator(&[&ENGINE, &DB]);
        running(&evaluator);
        assert!(passes(&evaluator, Endpoint::Healthz).await);
        evaluator.lifecycle.mark_broken("pool poisoned".into());
        assert!(lines(&evaluator, Endpoint::Livez)
            .await
            .contains("[-]lifecycle failed: marked broken: pool poisoned\n"));
        assert!(!passes(&evaluator, Endpoint::Healthz).await);
        assert!(
            passes(&evaluator, Endpoint::Readyz).await,
            "broken is liveness"
        );
    }

    #[tokio::test]
    async fn readyz_follows_the_phase() {
        let evaluator = evaluator(&[&DB]);
        let lifecycle = evaluator.lifecycle.clone();
        assert_eq!(lifecycle.phase(), Phase::Starting);
        assert!(lines(&evaluator, Endpoint::Readyz)
            .await
            .contains("[-]lifecycle failed: start-up has not finished\n"));
        running(&evaluator);
        assert!(passes(&evaluator, Endpoint::Readyz).await);
        lifecycle.request_stop();
        assert_eq!(lifecycle.phase(), Phase::Draining);
        assert!(lines(&evaluator, Endpoint::Readyz)
            .await
            .contains("[-]lifecycle failed: shutting down\n"));
        assert!(
            passes(&evaluator, Endpoint::Livez).await,
            "liveness stays passing while draining"
        );
        lifecycle.begin_stopping().unwrap();
        assert!(!passes(&evaluator, Endpoint::Readyz).await);
        assert!(passes(&evaluator, Endpoint::Livez).await);
    }

    #[tokio::test]
    async fn a_stop_during_start_up_fails_readyz_and_startupz() {
        let evaluator = evaluator(&[&DB, &MIGRATIONS]);
        evaluator.lifecycle.request_stop();
        assert!(evaluator.lifecycle.finish_startup().is_err());
        assert!(!passes(&evaluator, Endpoint::Readyz).await);
        assert!(lines(&evaluator, Endpoint::Startupz)
            .await
            .contains("[-]lifecycle failed: start-up abandoned: shutting down\n"));
    }

    #[tokio::test]
    async fn max_tasks_adds_the_tasks_check_to_livez() {
        let evaluator = Evaluator::new(
            Arc::new(Lifecycle::new()),
            Handle::current(),
            Duration::from_secs(10),
            Some(1),
            [],
        );
        let text = lines(&evaluator, Endpoint::Livez).await;
        assert!(text.contains("[+]tasks ok (alive="), "{text}");
        // Well above the cap: lifecycle's own tasks in other tests of this
        // binary are subtracted from the count.
        let blockers: Vec<_> = (0..10)
            .map(|_| tokio::spawn(std::future::pending::<()>()))
            .collect();
        let text = lines(&evaluator, Endpoint::Livez).await;
        assert!(text.contains(", more than max_tasks = 1 (alive="), "{text}");
        assert!(!passes(&evaluator, Endpoint::Livez).await);
        assert!(
            !lines(&evaluator, Endpoint::Readyz).await.contains("tasks"),
            "tasks is a liveness check"
        );
        for blocker in blockers {
            blocker.abort();
        }
    }

    #[tokio::test]
    async fn out_of_rotation_guards_list_their_reasons_oldest_first_until_the_last_drops() {
        let evaluator = evaluator(&[&DB]);
        let lifecycle = evaluator.lifecycle.clone();
        // The phase rules win: a guard taken while starting says nothing.
        let early = lifecycle.out_of_rotation("reloading config".into());
        assert!(lines(&evaluator, Endpoint::Readyz)
            .await
            .contains("[-]lifecycle failed: start-up has not finished\n"));
        running(&evaluator);
        let later = lifecycle.out_of_rotation("rebuilding index".into());
        assert!(lines(&evaluator, Endpoint::Readyz).await.contains(
            "[-]lifecycle failed: out of rotation: reloading config; rebuilding index\n"
        ));
        assert!(passes(&evaluator, Endpoint::Livez).await);
        lifecycle.back_in_rotation(early);
        assert!(lines(&evaluator, Endpoint::Readyz)
            .await
            .contains("[-]lifecycle failed: out of rotation: rebuilding index\n"));
        lifecycle.back_in_rotation(later);
        assert!(passes(&evaluator, Endpoint::Readyz).await);
    }

    #[tokio::test]
    async fn critical_false_is_reported_but_never_fails_its_endpoint() {
        let evaluator = evaluator(&[&DB, &CACHE_OPTIONAL]);
        running(&evaluator);
        assert!(passes(&evaluator, Endpoint::Readyz).await);
        assert!(lines(&evaluator, Endpoint::Readyz)
            .await
            .contains("[-]cache failed: connection refused\n"));
        // Its own path: that check decides alone.
        let single = evaluator
            .evaluate(Endpoint::Readyz, Some("cache"), &[])
            .await
            .unwrap();
        assert!(!single.passed());
    }

    #[tokio::test]
    async fn a_critical_readiness_failure_fails_readyz_and_healthz() {
        let evaluator = evaluator(&[&ENGINE, &DB, &QUEUE_DOWN]);
        running(&evaluator);
        assert!(!passes(&evaluator, Endpoint::Readyz).await);
        assert!(!passes(&evaluator, Endpoint::Healthz).await);
        assert!(passes(&evaluator, Endpoint::Livez).await);
        assert_eq!(
            lines(&evaluator, Endpoint::Healthz).await,
            "[+]lifecycle ok\n[+]runtime ok\n[+]engine ok\n[+]db ok\n\
             [-]queue failed: connection refused\nhealthz check failed\n"
        );
    }

    #[tokio::test]
    async fn startupz_passes_after_start_up_and_then_stays_passed() {
        let lifecycle = Arc::new(Lifecycle::new());
        let evaluator = evaluator_on(lifecycle.clone(), &[&MIGRATIONS]);
        assert!(!passes(&evaluator, Endpoint::Startupz).await);
        lifecycle.finish_startup().unwrap();
        assert!(passes(&evaluator, Endpoint::Startupz).await);
        // The same lifecycle with a failing startup check: latched.
        let later = evaluator_on(lifecycle, &[&WARM_DOWN]);
        assert!(passes(&later, Endpoint::Startupz).await);
    }

    #[tokio::test]
    async fn a_failing_startup_check_holds_startupz() {
        let evaluator = evaluator(&[&MIGRATIONS, &WARM_DOWN]);
        running(&evaluator);
        assert!(!passes(&evaluator, Endpoint::Startupz).await);
        assert!(
            passes(&evaluator, Endpoint::Readyz).await,
            "startup checks are not readiness"
        );
    }

    #[tokio::test]
    async fn single_check_paths_answer_for_that_check_only() {
        let evaluator = evaluator(&[&DB, &QUEUE_DOWN]);
        running(&evaluator);
        let db = evaluator
            .evaluate(Endpoint::Readyz, Some("db"), &[])
            .await
            .unwrap();
        assert!(db.passed());
        assert_eq!(db.entries.len(), 1);
        let builtin = evaluator
            .evaluate(Endpoint::Readyz, Some("lifecycle"), &[])
            .await
            .unwrap();
        assert!(builtin.passed());
        assert!(evaluator
            .evaluate(Endpoint::Readyz, Some("nope"), &[])
            .await
            .is_none());
        assert!(
            evaluator
                .evaluate(Endpoint::Livez, Some("db"), &[])
                .await
                .is_none(),
            "a readiness check is not under /livez"
        );
    }

    #[tokio::test]
    async fn exclude_leaves_checks_out_and_names_unmatched_ones() {
        let evaluator = evaluator(&[&DB, &QUEUE_DOWN]);
        running(&evaluator);
        let excludes = ["queue".to_owned(), "nope".to_owned()];
        let evaluation = evaluator
            .evaluate(Endpoint::Readyz, None, &excludes)
            .await
            .unwrap();
        assert!(evaluation.passed());
        assert_eq!(
            crate::probe::report::text(&evaluation, true, Reasons::Shown),
            "[+]lifecycle ok\n[+]db ok\n[+]queue excluded: ok\n\
             warn: some health checks cannot be excluded: no matches for \"nope\"\n\
             readyz check passed\n"
        );
        // An excluded builtin too.
        let evaluator = evaluator_with_lifecycle_excluded().await;
        assert!(evaluator.passed());
    }

    async fn evaluator_with_lifecycle_excluded() -> Evaluation {
        let evaluator = evaluator(&[&DB]);
        evaluator
            .evaluate(Endpoint::Readyz, None, &["lifecycle".to_owned()])
            .await
            .unwrap()
    }
}
