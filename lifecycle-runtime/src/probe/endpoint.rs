//! The probe endpoints and their tables, written once: the endpoints, the
//! kinds of check each runs, the built-in checks each has, and the names
//! probes address them by (`/ENDPOINT/NAME` over HTTP, `ENDPOINT/NAME`
//! over gRPC). The probe server routes by them, the `--lifecycle-probe`
//! flag parses them, the manifest points the kubelet at them and the audit
//! reads them back.

use std::fmt;

use crate::registry::CheckKind;

/// Where the probe server serves the metrics (with the `metrics` feature),
/// and where the pod annotations point Prometheus.
pub(crate) const METRICS_PATH: &str = "/metrics";

/// A probe endpoint: `/livez`, `/readyz`, `/startupz` or `/healthz`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Endpoint {
    Livez,
    Readyz,
    Startupz,
    Healthz,
}

/// What a probe addresses: an endpoint and, for `ENDPOINT/NAME`, one of
/// its checks.
pub(crate) type Target<'a> = (Endpoint, Option<&'a str>);

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
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Endpoint::Livez => "livez",
            Endpoint::Readyz => "readyz",
            Endpoint::Startupz => "startupz",
            Endpoint::Healthz => "healthz",
        }
    }

    /// `/livez` and the like.
    pub(crate) fn path(self) -> String {
        format!("/{}", self.as_str())
    }

    /// The endpoint named `name`, [`as_str`](Self::as_str)'s inverse.
    pub(crate) fn parse(name: &str) -> Option<Endpoint> {
        Endpoint::ALL.into_iter().find(|e| e.as_str() == name)
    }

    /// The probed endpoint named `name`: what `--lifecycle-probe` takes.
    pub(crate) fn parse_probed(name: &str) -> Option<Endpoint> {
        Endpoint::parse(name).filter(|e| Endpoint::PROBED.contains(e))
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

    /// The one kind of check this endpoint runs; `None` for `/healthz`,
    /// which runs two.
    pub(crate) fn check_kind(self) -> Option<CheckKind> {
        match self.check_kinds() {
            [kind] => Some(*kind),
            _ => None,
        }
    }

    /// Whether `/ENDPOINT/NAME` addresses one check here: on an endpoint
    /// of one kind (`/healthz` has no single-check paths: its checks live
    /// under `/livez` and `/readyz`).
    pub(crate) fn has_single_check_paths(self) -> bool {
        self.check_kind().is_some()
    }

    /// This endpoint's built-in checks, in the order they are reported;
    /// `tasks` only with `max_tasks`.
    pub(crate) fn builtin_checks(self, max_tasks: bool) -> impl Iterator<Item = BuiltinCheck> {
        BuiltinCheck::ALL.into_iter().filter(move |check| {
            (max_tasks || *check != BuiltinCheck::Tasks)
                && check.kinds().iter().any(|k| self.check_kinds().contains(k))
        })
    }

    /// The names of this endpoint's built-in checks.
    pub(crate) fn builtin_check_names(self, max_tasks: bool) -> Vec<&'static str> {
        self.builtin_checks(max_tasks)
            .map(BuiltinCheck::as_str)
            .collect()
    }
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A check lifecycle answers itself, from memory: a user's check may not
/// take its name (the check attributes refuse it at compile time).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum BuiltinCheck {
    /// The lifecycle's own state: on every endpoint.
    Lifecycle,
    /// The application runtime's progress: liveness.
    Runtime,
    /// The application's tasks under `max_tasks`: liveness, with it set.
    Tasks,
}

impl BuiltinCheck {
    /// Every built-in check, in the order they are reported.
    pub(crate) const ALL: [BuiltinCheck; 3] = [
        BuiltinCheck::Lifecycle,
        BuiltinCheck::Runtime,
        BuiltinCheck::Tasks,
    ];

    /// Its name, as in probe paths and answers.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            BuiltinCheck::Lifecycle => "lifecycle",
            BuiltinCheck::Runtime => "runtime",
            BuiltinCheck::Tasks => "tasks",
        }
    }

    /// The kinds of check it counts as: its endpoints are those that run
    /// one of them.
    pub(crate) const fn kinds(self) -> &'static [CheckKind] {
        match self {
            BuiltinCheck::Lifecycle => &[
                CheckKind::Liveness,
                CheckKind::Readiness,
                CheckKind::Startup,
            ],
            BuiltinCheck::Runtime | BuiltinCheck::Tasks => &[CheckKind::Liveness],
        }
    }
}

/// The names of the built-in checks, which the macros refuse for a user's
/// check: the macros crate keeps its own copy, which a test compares with
/// this one.
pub const BUILTIN_CHECK_NAMES: [&str; 3] = {
    let mut names = [""; 3];
    let mut i = 0;
    while i < names.len() {
        names[i] = BuiltinCheck::ALL[i].as_str();
        i += 1;
    }
    names
};

/// The target of an HTTP probe's path without its leading slash:
/// `ENDPOINT` or `ENDPOINT/NAME`, `NAME` not empty, on an endpoint with
/// single-check paths. `None` for anything else.
pub(crate) fn parse_path(path: &str) -> Option<Target<'_>> {
    let (endpoint, check) = match path.split_once('/') {
        Some((endpoint, check)) => (endpoint, Some(check)),
        None => (path, None),
    };
    let endpoint = Endpoint::parse(endpoint)?;
    match check {
        Some(name) if name.is_empty() || !endpoint.has_single_check_paths() => None,
        check => Some((endpoint, check)),
    }
}

/// The target of a gRPC health service name: `""` is `/healthz`; a
/// probed endpoint's name and `ENDPOINT/NAME` as over HTTP. `None` for
/// anything else (`healthz` among them).
pub(crate) fn parse_service(name: &str) -> Option<Target<'_>> {
    if name.is_empty() {
        return Some((Endpoint::Healthz, None));
    }
    parse_path(name).filter(|(endpoint, _)| Endpoint::PROBED.contains(endpoint))
}

/// The HTTP path of `target`: [`parse_path`]'s inverse, with the slash.
pub(crate) fn path_of((endpoint, check): Target<'_>) -> String {
    match check {
        Some(name) => format!("{}/{name}", endpoint.path()),
        None => endpoint.path(),
    }
}

/// The gRPC service name of `target`: [`parse_service`]'s inverse.
pub(crate) fn service_of((endpoint, check): Target<'_>) -> String {
    match (endpoint, check) {
        (Endpoint::Healthz, _) => String::new(),
        (endpoint, Some(name)) => format!("{endpoint}/{name}"),
        (endpoint, None) => endpoint.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for endpoint in Endpoint::ALL {
            assert_eq!(Endpoint::parse(endpoint.as_str()), Some(endpoint));
            assert_eq!(endpoint.path(), format!("/{endpoint}"));
        }
        assert_eq!(Endpoint::parse("metrics"), None);
        assert_eq!(Endpoint::parse_probed("healthz"), None);
        assert_eq!(Endpoint::parse_probed("readyz"), Some(Endpoint::Readyz));
    }

    #[test]
    fn each_endpoint_has_its_built_in_checks() {
        for (endpoint, names) in [
            (Endpoint::Livez, &["lifecycle", "runtime", "tasks"][..]),
            (Endpoint::Healthz, &["lifecycle", "runtime", "tasks"]),
            (Endpoint::Readyz, &["lifecycle"]),
            (Endpoint::Startupz, &["lifecycle"]),
        ] {
            assert_eq!(endpoint.builtin_check_names(true), names, "{endpoint}");
            let without_tasks: Vec<_> = names.iter().copied().filter(|n| *n != "tasks").collect();
            assert_eq!(endpoint.builtin_check_names(false), without_tasks);
        }
        assert_eq!(BUILTIN_CHECK_NAMES, ["lifecycle", "runtime", "tasks"]);
    }

    #[test]
    fn paths_and_service_names_map_to_targets() {
        assert_eq!(parse_path("livez"), Some((Endpoint::Livez, None)));
        assert_eq!(parse_path("healthz"), Some((Endpoint::Healthz, None)));
        assert_eq!(
            parse_path("readyz/db"),
            Some((Endpoint::Readyz, Some("db")))
        );
        assert_eq!(
            parse_path("livez/a/b"),
            Some((Endpoint::Livez, Some("a/b")))
        );
        for unknown in ["", "readyz/", "/readyz", "healthz/db", "metrics", "READYZ"] {
            assert_eq!(parse_path(unknown), None, "{unknown:?}");
        }
        assert_eq!(parse_service(""), Some((Endpoint::Healthz, None)));
        assert_eq!(parse_service("startupz"), Some((Endpoint::Startupz, None)));
        assert_eq!(
            parse_service("livez/a/b"),
            Some((Endpoint::Livez, Some("a/b"))),
            "a name no check has: the evaluator says so"
        );
        for unknown in ["healthz", "readyz/", "/readyz", "READYZ", "metrics", " "] {
            assert_eq!(parse_service(unknown), None, "{unknown:?}");
        }
        for target in [
            (Endpoint::Healthz, None),
            (Endpoint::Livez, None),
            (Endpoint::Readyz, Some("db")),
        ] {
            assert_eq!(parse_service(&service_of(target)), Some(target));
            let path = path_of(target);
            assert_eq!(parse_path(&path[1..]), Some(target));
        }
    }
}
