//! What this binary registered, as the manifest generator derives a pod
//! from it and the audit holds a manifest to it: the checks of every
//! kind and the `on_startup` hooks' time, and what start-up needs of
//! them.

use std::time::Duration;

use crate::probe::Endpoint;
use crate::registry::{self, CheckKind, CheckRegistration, HookKind};

/// What this binary registered, that a manifest is held to.
pub(crate) struct Binary {
    /// Every registered check, of every kind.
    pub(crate) checks: Vec<&'static CheckRegistration>,
    /// How long the `on_startup` hooks may take in all.
    pub(crate) startup_hooks: Duration,
}

impl Binary {
    pub(crate) fn registered() -> Binary {
        let mut checks = Vec::new();
        for kind in [
            CheckKind::Liveness,
            CheckKind::Readiness,
            CheckKind::Startup,
            CheckKind::Preflight,
        ] {
            checks.extend(registry::checks(kind));
        }
        Binary {
            checks,
            startup_hooks: registry::hooks_budget(HookKind::OnStartup).0,
        }
    }

    /// The checks a probe of `endpoint` runs.
    pub(crate) fn endpoint_checks(&self, endpoint: Endpoint) -> Vec<&'static CheckRegistration> {
        self.of_kinds(endpoint.check_kinds())
    }

    fn of_kinds(&self, kinds: &[CheckKind]) -> Vec<&'static CheckRegistration> {
        let mut checks = self.checks.clone();
        checks.retain(|check| kinds.contains(&check.kind));
        checks
    }

    /// The preflight checks' part of start-up: they run together, so the
    /// largest timeout.
    pub(crate) fn preflight_needed(&self) -> Duration {
        let mut largest = Duration::ZERO;
        for check in self.of_kinds(&[CheckKind::Preflight]) {
            largest = largest.max(check.timeout());
        }
        largest
    }

    /// How long start-up may take before the kubelet may give up on it,
    /// as the generator's startup probe allows: the preflight checks and
    /// then every `on_startup` hook to its timeout.
    pub(crate) fn startup_needed(&self) -> Duration {
        self.preflight_needed().saturating_add(self.startup_hooks)
    }
}
