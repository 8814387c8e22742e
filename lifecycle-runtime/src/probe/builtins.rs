//! The built-in checks (`lifecycle`, `runtime`, `tasks`): computed from
//! memory, never waiting on the application; each change of their results
//! logged once, and with metrics recorded, per kind of check they count
//! as.

use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;

use crate::call::OwnTask;
use crate::checks::{CheckResult, TransitionLog};
use crate::health::Health;
use crate::lifecycle::{Lifecycle, Phase};
#[cfg(feature = "metrics")]
use crate::metrics::CheckSeries;
use crate::probe::endpoint::{BuiltinCheck, Endpoint};
use crate::registry::CheckKind;

/// The built-in checks of one service.
pub(crate) struct Builtins {
    lifecycle: Arc<Lifecycle>,
    app: Handle,
    stall_threshold: Duration,
    max_tasks: Option<u64>,
    /// Each built-in check of each kind it counts as.
    records: Vec<BuiltinRecord>,
}

/// What is kept of one built-in check, as one kind of check, from probe
/// to probe: `lifecycle` once per kind (its reasons differ), `runtime` and
/// `tasks` once.
struct BuiltinRecord {
    check: BuiltinCheck,
    kind: CheckKind,
    /// Each change of its result, logged once.
    log: TransitionLog,
    #[cfg(feature = "metrics")]
    series: CheckSeries,
}

impl BuiltinRecord {
    /// One per built-in check and kind it counts as.
    fn all() -> Vec<BuiltinRecord> {
        let mut records = Vec::new();
        for check in BuiltinCheck::ALL {
            for &kind in check.kinds() {
                // The lifecycle's own state is logged where it changes (a
                // signal, the end of start-up, mark_broken): its changes
                // here are information.
                let warn = check != BuiltinCheck::Lifecycle;
                records.push(BuiltinRecord {
                    check,
                    kind,
                    log: TransitionLog::new(kind.as_str(), check.as_str(), warn),
                    #[cfg(feature = "metrics")]
                    series: CheckSeries::new(kind.as_str(), check.as_str()),
                });
            }
        }
        records
    }
}

/// Logs `health` in `log` and hands it on.
fn noted(log: &TransitionLog, health: Health, steady: Option<&str>) -> Health {
    log.note(&health, steady);
    health
}

/// The `lifecycle` check's reason during a stop, naming the connections
/// still open: what a stop that takes long is waiting for.
fn shutting_down(open_connections: usize) -> String {
    match open_connections {
        0 => "shutting down".to_owned(),
        1 => "shutting down (1 connection open)".to_owned(),
        n => format!("shutting down ({n} connections open)"),
    }
}

impl Builtins {
    /// `app` is the application runtime `runtime` and `tasks` watch.
    pub(crate) fn new(
        lifecycle: Arc<Lifecycle>,
        app: Handle,
        stall_threshold: Duration,
        max_tasks: Option<u64>,
    ) -> Builtins {
        Builtins {
            lifecycle,
            app,
            stall_threshold,
            max_tasks,
            records: BuiltinRecord::all(),
        }
    }

    /// The record of built-in `check` as a check of `kind`.
    fn record(&self, check: BuiltinCheck, kind: CheckKind) -> &BuiltinRecord {
        match self
            .records
            .iter()
            .find(|record| record.check == check && record.kind == kind)
        {
            Some(record) => record,
            None => unreachable!("one record per built-in check and kind"),
        }
    }

    /// The transition log of built-in `check` as a check of `kind`.
    fn log(&self, check: BuiltinCheck, kind: CheckKind) -> &TransitionLog {
        &self.record(check, kind).log
    }

    /// The `lifecycle` check of an endpoint: as each kind of check it
    /// runs, in order, the first that fails (`/healthz`: liveness, then
    /// readiness).
    fn lifecycle_health(&self, endpoint: Endpoint) -> Health {
        let mut health = Health::up();
        for &kind in endpoint.check_kinds() {
            health = self.lifecycle_as(kind);
            if !health.is_up() {
                break;
            }
        }
        health
    }

    /// The `lifecycle` check as a check of `kind`, logged in that kind's
    /// transition log.
    fn lifecycle_as(&self, kind: CheckKind) -> Health {
        let (health, steady) = match kind {
            CheckKind::Liveness => (self.lifecycle_liveness(), None),
            CheckKind::Readiness => self.lifecycle_readiness(),
            CheckKind::Startup => (self.lifecycle_startup(), None),
            CheckKind::Preflight => unreachable!("no endpoint runs preflight checks"),
        };
        noted(self.log(BuiltinCheck::Lifecycle, kind), health, steady)
    }

    fn lifecycle_liveness(&self) -> Health {
        match self.lifecycle.broken() {
            Some(reason) => Health::down(format!("marked broken: {reason}")),
            None => Health::up(),
        }
    }

    /// Readiness follows the phase, then the `out_of_rotation` guards
    /// while `Running`: every stop moves the phase to `Draining` the moment
    /// it is requested. With what stands for its reason in the transition
    /// log, if anything.
    fn lifecycle_readiness(&self) -> (Health, Option<&'static str>) {
        let health = match self.lifecycle.phase() {
            Phase::Running => match self.lifecycle.out_of_rotation_reasons() {
                Some(reasons) => Health::down(format!("out of rotation: {reasons}")),
                None => Health::up(),
            },
            Phase::Starting => Health::down("start-up has not finished"),
            Phase::Draining | Phase::Stopping => {
                let health = Health::down(shutting_down(self.lifecycle.connections().open()));
                // Logged once per stop, not at each count of connections.
                return (health, Some("shutting down"));
            }
        };
        (health, None)
    }

    fn lifecycle_startup(&self) -> Health {
        if self.lifecycle.started() {
            Health::up()
        } else {
            match self.lifecycle.phase() {
                Phase::Starting => {
                    Health::down("preflight checks and on_startup hooks have not finished")
                }
                _ => Health::down("start-up abandoned: shutting down"),
            }
        }
    }

    /// The built-in checks of an endpoint: computed from memory, never
    /// waiting on the application.
    pub(crate) fn results(&self, endpoint: Endpoint) -> Vec<CheckResult> {
        #[cfg(feature = "metrics")]
        let kind = endpoint.check_kind();
        self.checks(endpoint)
            .filter_map(|check| {
                let health = match check {
                    BuiltinCheck::Lifecycle => self.lifecycle_health(endpoint),
                    BuiltinCheck::Runtime => self.runtime_health(),
                    BuiltinCheck::Tasks => self.tasks_health(self.max_tasks?),
                };
                #[cfg(feature = "metrics")]
                if let Some(kind) = kind {
                    self.record(check, kind).series.result(health.is_up());
                }
                Some(CheckResult::without_run(check.as_str(), health))
            })
            .collect()
    }

    fn runtime_health(&self) -> Health {
        let silent = self.lifecycle.heartbeat().silence();
        let health = if silent > self.stall_threshold {
            Health::down(format!("no progress for {} ms", silent.as_millis()))
        } else {
            Health::up()
        };
        noted(
            self.log(BuiltinCheck::Runtime, CheckKind::Liveness),
            health,
            Some("stalled"),
        )
    }

    fn tasks_health(&self, max: u64) -> Health {
        // The application's tasks: lifecycle's own are left out.
        let alive = (self.app.metrics().num_alive_tasks() as u64).saturating_sub(OwnTask::alive());
        let health = if alive > max {
            Health::down(format!("{alive} tasks alive, more than max_tasks = {max}"))
        } else {
            Health::up()
        };
        let health = health.with_detail("alive", alive).with_detail("max", max);
        noted(
            self.log(BuiltinCheck::Tasks, CheckKind::Liveness),
            health,
            Some("too many tasks"),
        )
    }

    /// This service's built-in checks of `endpoint` (`tasks` only with
    /// `max_tasks`).
    pub(crate) fn checks(&self, endpoint: Endpoint) -> impl Iterator<Item = BuiltinCheck> {
        endpoint.builtin_checks(self.max_tasks.is_some())
    }
}
