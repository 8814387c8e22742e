//! The figures the generator writes and the audit holds a manifest to,
//! computed once for both: Kubernetes' defaults for what a probe leaves
//! out, the generator's own probe timings, and what the binary's checks,
//! hooks and shutdown timeout need of them.

use std::time::Duration;

use crate::config::Settings;
use crate::registry::CheckRegistration;

/// Kubernetes' defaults for a probe's fields that a manifest leaves out or
/// sets to 0 (the API server's `SetDefaults_Probe`).
pub(crate) const DEFAULT_TIMEOUT_SECONDS: u64 = 1;
pub(crate) const DEFAULT_PERIOD_SECONDS: u64 = 10;
pub(crate) const DEFAULT_SUCCESS_THRESHOLD: u64 = 1;
pub(crate) const DEFAULT_FAILURE_THRESHOLD: u64 = 3;
/// The pod's `terminationGracePeriodSeconds` when left out. Unlike the
/// probes' fields, 0 is no default but "kill at once".
pub(crate) const DEFAULT_GRACE_SECONDS: u64 = 30;

/// The generator's probe timings, before background checks lengthen a
/// period (see [`probe_period_seconds`]): the startup probe asks often, so
/// that the service is ready soon after it is up; liveness takes
/// Kubernetes' defaults; readiness takes a pod out of rotation within
/// 10 s of a failure.
pub(crate) const STARTUP_PERIOD_SECONDS: u64 = 2;
pub(crate) const LIVENESS_PERIOD_SECONDS: u64 = DEFAULT_PERIOD_SECONDS;
pub(crate) const LIVENESS_FAILURE_THRESHOLD: u64 = DEFAULT_FAILURE_THRESHOLD;
pub(crate) const READINESS_PERIOD_SECONDS: u64 = 5;
pub(crate) const READINESS_FAILURE_THRESHOLD: u64 = 2;

/// What the generated grace period keeps beyond the deadline: the process
/// has exited by then, but SIGKILL should never be what ends it.
pub(crate) const GRACE_SLACK: Duration = Duration::from_secs(5);
/// What lifecycle promises over a check's timeout for an answer.
const ANSWER_SLACK: Duration = Duration::from_millis(50);

pub(crate) fn ceil_seconds(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis().div_ceil(1000)).unwrap_or(u64::MAX)
}

/// How long a probe that runs `checks` may take to be answered: the
/// largest timeout of the on-demand ones (background checks answer from
/// memory), plus the promised 50 ms. What the generator's `timeoutSeconds`
/// is rounded up from, and what the audit holds a manifest's to.
pub(crate) fn probe_time_needed(checks: &[&CheckRegistration]) -> Duration {
    let mut largest = Duration::ZERO;
    for check in checks {
        if check.interval_ms.is_none() {
            largest = largest.max(check.timeout());
        }
    }
    largest.saturating_add(ANSWER_SLACK)
}

/// `timeoutSeconds` for a probe of `checks`: [`probe_time_needed`],
/// rounded up to a whole second.
pub(crate) fn probe_timeout_seconds(checks: &[&CheckRegistration]) -> u64 {
    ceil_seconds(probe_time_needed(checks)).max(1)
}

/// The least `terminationGracePeriodSeconds` the pod needs, before
/// rounding: the kubelet counts the grace period from the start of the
/// preStop hook (`pre_stop` long), and sends the signal after it; the
/// shutdown timeout counts from the signal and holds the drain delay. The
/// audit's bound and, with the slack, the generator's value.
pub(crate) fn grace_needed(pre_stop: Duration, shutdown_timeout: Duration) -> Duration {
    pre_stop.saturating_add(shutdown_timeout)
}

/// `terminationGracePeriodSeconds` as generated: [`grace_needed`] without a
/// preStop hook, plus the slack, rounded up. Each figure is at most a day
/// (configuration refuses more), and the sum saturates regardless.
pub(crate) fn grace_seconds(settings: &Settings) -> u64 {
    ceil_seconds(
        grace_needed(Duration::ZERO, settings.shutdown_timeout).saturating_add(GRACE_SLACK),
    )
}

/// `periodSeconds` for a probe of `checks`: `base`, or longer when a
/// background check runs less often, since the probe reads the result of
/// its last run and a shorter period only reads it again. The generator's
/// period, and what the audit asks of a manifest's.
pub(crate) fn probe_period_seconds(base: u64, checks: &[&CheckRegistration]) -> u64 {
    let mut period = base;
    for check in checks {
        if let Some(interval) = check.interval_ms {
            period = period.max(interval.div_ceil(1000));
        }
    }
    period
}

/// The startup probe's `failureThreshold` at `period` seconds: enough for
/// `budget` (see [`Binary::startup_needed`](crate::binary::Binary::startup_needed))
/// and one period more, 3 at least.
pub(crate) fn startup_failure_threshold(budget: Duration, period: u64) -> u64 {
    (ceil_seconds(budget) / period.max(1) + 2).max(3)
}
