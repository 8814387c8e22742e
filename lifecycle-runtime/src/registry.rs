//! What the attributes register, collected through `inventory` from every
//! crate linked into the binary, and the start-up validation of it.

use std::fmt;
use std::future::Future;
use std::pin::Pin;
use std::time::Duration;

use crate::health::{Health, HookOutcome};

/// A boxed future as the generated code produces it.
pub type BoxFuture<T> = Pin<Box<dyn Future<Output = T> + Send + 'static>>;

/// How to call a registered function: a plain `fn` runs on the blocking
/// pool (it may block), an `async fn` is spawned as a task.
pub enum Call<T: 'static> {
    /// A plain `fn`.
    Blocking(fn() -> T),
    /// An `async fn`.
    Async(fn() -> BoxFuture<T>),
}

/// Where a registration was written, for messages that name it.
#[derive(Debug, Clone, Copy)]
pub struct Site {
    /// `module_path!()` of the function.
    pub module: &'static str,
    /// `file!()`.
    pub file: &'static str,
    /// `line!()` of the function's name.
    pub line: u32,
}

impl fmt::Display for Site {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.file, self.line)
    }
}

/// Which attribute registered a check.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum CheckKind {
    /// `#[liveness]`.
    Liveness,
    /// `#[readiness]`.
    Readiness,
    /// `#[startup]`.
    Startup,
    /// `#[preflight]`.
    Preflight,
}

impl CheckKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            CheckKind::Liveness => "liveness",
            CheckKind::Readiness => "readiness",
            CheckKind::Startup => "startup",
            CheckKind::Preflight => "preflight",
        }
    }

    /// Under the kubelet's default 1 s probe timeout, so that it reads our
    /// reason rather than its own time-out; preflight checks get longer.
    fn default_timeout(self) -> Duration {
        match self {
            CheckKind::Preflight => Duration::from_millis(10_000),
            _ => Duration::from_millis(500),
        }
    }
}

/// Which attribute registered a hook.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum HookKind {
    /// `#[on_startup]`.
    OnStartup,
    /// `#[on_shutdown]`.
    OnShutdown,
}

impl HookKind {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            HookKind::OnStartup => "on_startup",
            HookKind::OnShutdown => "on_shutdown",
        }
    }

    fn default_timeout(self) -> Duration {
        match self {
            HookKind::OnStartup => Duration::from_millis(60_000),
            HookKind::OnShutdown => Duration::from_millis(10_000),
        }
    }
}

/// A check registered by `#[liveness]`, `#[readiness]`, `#[startup]` or
/// `#[preflight]`.
pub struct CheckRegistration {
    /// The attribute.
    pub kind: CheckKind,
    /// `name`, or the function's name.
    pub name: &'static str,
    /// `timeout_ms`; `None` takes the kind's default.
    pub timeout_ms: Option<u64>,
    /// `critical`.
    pub critical: bool,
    /// `interval_ms`: run in the background.
    pub interval_ms: Option<u64>,
    /// The function, its result converted.
    pub call: Call<Health>,
    /// Where it was written.
    pub site: Site,
}

impl CheckRegistration {
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout_ms
            .map(Duration::from_millis)
            .unwrap_or_else(|| self.kind.default_timeout())
    }
}

/// A hook registered by `#[on_startup]` or `#[on_shutdown]`.
pub struct HookRegistration {
    /// The attribute.
    pub kind: HookKind,
    /// `name`, or the function's name.
    pub name: &'static str,
    /// `order`: ascending, equal orders together.
    pub order: i32,
    /// `timeout_ms`; `None` takes the kind's default.
    pub timeout_ms: Option<u64>,
    /// The function, its result converted.
    pub call: Call<HookOutcome>,
    /// Where it was written.
    pub site: Site,
}

impl HookRegistration {
    pub(crate) fn timeout(&self) -> Duration {
        self.timeout_ms
            .map(Duration::from_millis)
            .unwrap_or_else(|| self.kind.default_timeout())
    }
}

inventory::collect!(CheckRegistration);
inventory::collect!(HookRegistration);

/// Every registered check of one kind, in a stable order (by name), so
/// probe answers list them the same way each time.
pub(crate) fn checks(kind: CheckKind) -> Vec<&'static CheckRegistration> {
    let mut checks: Vec<_> = inventory::iter::<CheckRegistration>
        .into_iter()
        .filter(|c| c.kind == kind)
        .collect();
    checks.sort_by_key(|c| c.name);
    checks
}

/// Every registered check the probe server runs: liveness, readiness and
/// startup (preflight checks run before it, at start-up only).
pub(crate) fn probe_checks() -> impl Iterator<Item = &'static CheckRegistration> {
    [
        CheckKind::Liveness,
        CheckKind::Readiness,
        CheckKind::Startup,
    ]
    .into_iter()
    .flat_map(checks)
}

/// The hooks of one kind grouped by ascending `order`; hooks within a group
/// run concurrently. `inventory` has no order of its own.
pub(crate) fn hook_groups(kind: HookKind) -> Vec<(i32, Vec<&'static HookRegistration>)> {
    let mut hooks: Vec<_> = inventory::iter::<HookRegistration>
        .into_iter()
        .filter(|h| h.kind == kind)
        .collect();
    hooks.sort_by_key(|h| (h.order, h.name));
    let mut groups: Vec<(i32, Vec<&'static HookRegistration>)> = Vec::new();
    for hook in hooks {
        match groups.last_mut() {
            Some((order, group)) if *order == hook.order => group.push(hook),
            _ => groups.push((hook.order, vec![hook])),
        }
    }
    groups
}

/// Two registrations of one kind sharing a name.
#[derive(Debug, Clone, Copy)]
pub(crate) struct DuplicateName {
    /// The kind, as the attribute names it (`readiness`, `on_shutdown`…).
    pub(crate) kind: &'static str,
    /// `check` or `hook`.
    pub(crate) what: &'static str,
    pub(crate) name: &'static str,
    /// Where the name was registered first, and again.
    pub(crate) first: Site,
    pub(crate) again: Site,
}

/// Names must be unique per kind: probes address checks by name. Returns
/// each clash, naming both places.
pub(crate) fn duplicate_names() -> Vec<DuplicateName> {
    let checks = inventory::iter::<CheckRegistration>
        .into_iter()
        .map(|c| (c.kind.as_str(), "check", c.name, c.site));
    let hooks = inventory::iter::<HookRegistration>
        .into_iter()
        .map(|h| (h.kind.as_str(), "hook", h.name, h.site));
    let entries: Vec<_> = checks.chain(hooks).collect();
    let mut clashes = Vec::new();
    for (i, &(kind, what, name, again)) in entries.iter().enumerate() {
        if let Some(&(_, _, _, first)) = entries[..i]
            .iter()
            .find(|(k, w, n, _)| *k == kind && *w == what && *n == name)
        {
            clashes.push(DuplicateName {
                kind,
                what,
                name,
                first,
                again,
            });
        }
    }
    clashes
}

/// The longest the hooks of one kind can take in all: the largest timeout
/// within each order (equal orders run together), summed over the orders;
/// with one `order N: T ms (name)` entry per order, naming the longest.
pub(crate) fn hooks_budget(kind: HookKind) -> (Duration, Vec<String>) {
    let mut total = Duration::ZERO;
    let mut parts = Vec::new();
    for (order, group) in hook_groups(kind) {
        if let Some(longest) = group.iter().max_by_key(|hook| hook.timeout()) {
            total = total.saturating_add(longest.timeout());
            parts.push(format!(
                "order {order}: {} ms ({})",
                longest.timeout().as_millis(),
                longest.name
            ));
        }
    }
    (total, parts)
}
