//! The container that runs this binary, as the findings of its probes and
//! its pod see it, and what its probes may aim at.

use serde_json::Value;

use crate::binary::Binary;
use crate::config::Settings;
use crate::probe::endpoint::Target;
use crate::probe::Endpoint;
use crate::registry::CheckRegistration;

/// The container that runs this binary, with the settings its `env`
/// gives: what the probe and pod findings are methods of.
pub(super) struct Container<'a> {
    pub(super) binary: &'a Binary,
    pub(super) settings: &'a Settings,
    pub(super) container: &'a Value,
}

impl Container<'_> {
    pub(super) fn probe_port(&self) -> u16 {
        self.settings.probe_addr.port()
    }

    /// The registered checks a probe of `target` runs.
    pub(super) fn checks(&self, (endpoint, only): Target<'_>) -> Vec<&'static CheckRegistration> {
        let mut checks = self.binary.endpoint_checks(endpoint);
        if let Some(name) = only {
            checks.retain(|check| check.name == name);
        }
        checks
    }

    /// The check names `/ENDPOINT/NAME` takes.
    pub(super) fn check_names(&self, endpoint: Endpoint) -> Vec<&'static str> {
        let mut names = endpoint.builtin_check_names(self.settings.max_tasks.is_some());
        names.extend(self.checks((endpoint, None)).iter().map(|check| check.name));
        names
    }

    /// `target` when it names something the server answers: an endpoint,
    /// or one of its checks (the parse already refused a check path that
    /// the endpoint does not take).
    pub(super) fn known<'t>(&self, target: Target<'t>) -> Option<Target<'t>> {
        match target {
            (_, None) => Some(target),
            (endpoint, Some(name)) => self.check_names(endpoint).contains(&name).then_some(target),
        }
    }
}
