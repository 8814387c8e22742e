//! The probe endpoints, named once: the probe server routes by them, the
//! `--lifecycle-probe` flag parses them, the manifest points the kubelet
//! at them.

use std::fmt;

use crate::registry::CheckKind;

/// A probe endpoint: `/livez`, `/readyz`, `/startupz` or `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    Livez,
    Readyz,
    Startupz,
    Healthz,
}

impl Endpoint {
    /// The endpoints the kubelet probes, one per probe kind: what
    /// `--lifecycle-probe` accepts.
    pub(crate) const PROBED: [Endpoint; 3] =
        [Endpoint::Livez, Endpoint::Readyz, Endpoint::Startupz];

    const ALL: [Endpoint; 4] = [
        Endpoint::Livez,
        Endpoint::Readyz,
        Endpoint::Startupz,
        Endpoint::Healthz,
    ];

    /// `livez`, `readyz`, `startupz`, `healthz`: the path's one segment.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
            Endpoint::Startupz => "startupz",
            Endpoint::Healthz => "healthz",
        }
    }

    /// `/livez` and the like.
    pub(crate) fn path(self) -> String {
        format!("/{}", self.name())
    }

    pub(crate) fn from_name(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.name() == name)
    }

    /// The kinds of registered checks a probe of this endpoint runs.
    pub(crate) fn check_kinds(self) -> &'static [CheckKind] {
        match self {
            Endpoint::Livez => &[CheckKind::Liveness],
            Endpoint::Readyz => &[CheckKind::Readiness],
            Endpoint::Startupz => &[CheckKind::Startup],
            Endpoint::Healthz => &[CheckKind::Liveness, CheckKind::Readiness],
        }
    }

    /// The kind of check a single-check path of this endpoint names.
    #[cfg_attr(not(feature = "metrics"), allow(dead_code))]
    pub(crate) fn check_kind(self) -> Option<CheckKind> {
        match self {
            Endpoint::Livez => Some(CheckKind::Liveness),
            Endpoint::Readyz => Some(CheckKind::Readiness),
            Endpoint::Startupz => Some(CheckKind::Startup),
            Endpoint::Healthz => None,
        }
    }

    /// The names of this endpoint's built-in checks: `lifecycle`, and for
    /// liveness `runtime` and, with `max_tasks`, `tasks`.
    pub(crate) fn builtin_check_names(self, max_tasks: bool) -> Vec<&'static str> {
        let mut names = vec!["lifecycle"];
        if matches!(self, Endpoint::Livez | Endpoint::Healthz) {
            names.push("runtime");
            if max_tasks {
                names.push("tasks");
            }
        }
        names
    }

    /// Whether `/ENDPOINT/NAME` addresses one check here (`/healthz` has
    /// no single-check paths: its checks live under `/livez` and `/readyz`).
    pub(crate) fn has_single_check_paths(self) -> bool {
        self != Endpoint::Healthz
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for endpoint in Endpoint::ALL {
            assert_eq!(Endpoint::from_name(endpoint.name()), Some(endpoint));
            assert_eq!(endpoint.path(), format!("/{endpoint}"));
        }
        assert_eq!(Endpoint::from_name("metrics"), None);
    }
}
