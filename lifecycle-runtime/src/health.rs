//! What a check says about itself, and the conversions from the return
//! types the attributes accept.

use std::fmt::{Debug, Display};

/// The result of a health check: up or down, a reason when down, and
/// key/value details shown in `?verbose` and JSON answers.
///
/// ```
/// use lifecycle_runtime::Health;
///
/// let health = Health::down("pool exhausted").with_detail("in_use", 32).with_detail("max", 32);
/// assert!(!health.is_up());
/// assert_eq!(health.reason(), Some("pool exhausted"));
/// ```
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    up: bool,
    reason: Option<String>,
    details: Vec<(String, serde_json::Value)>,
}

impl Health {
    /// A passing check.
    #[must_use]
    pub fn up() -> Self {
        Health {
            up: true,
            reason: None,
            details: Vec::new(),
        }
    }

    /// A failing check; `reason` is what probes report.
    #[must_use]
    pub fn down(reason: impl Into<String>) -> Self {
        Health {
            up: false,
            reason: Some(reason.into()),
            details: Vec::new(),
        }
    }

    /// Adds a detail, shown in verbose (`key=value`) and JSON (`data`) output.
    #[must_use]
    pub fn with_detail(
        mut self,
        key: impl Into<String>,
        value: impl Into<serde_json::Value>,
    ) -> Self {
        self.details.push((key.into(), value.into()));
        self
    }

    /// Whether the check passed.
    pub fn is_up(&self) -> bool {
        self.up
    }

    /// Why the check failed, if it did.
    pub fn reason(&self) -> Option<&str> {
        self.reason.as_deref()
    }

    /// The details, in the order they were added.
    pub fn details(&self) -> &[(String, serde_json::Value)] {
        &self.details
    }
}

/// The return types a check may have: `bool`, `()`, `Result<(), E: Display>`
/// and [`Health`].
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a supported return type for a lifecycle check",
    label = "a check returns `bool`, `()`, `Result<(), E: Display>` or `lifecycle_runtime::Health`"
)]
pub trait IntoHealth {
    /// Converts the check's result.
    fn into_health(self) -> Health;
}

impl IntoHealth for Health {
    fn into_health(self) -> Health {
        self
    }
}

impl IntoHealth for bool {
    fn into_health(self) -> Health {
        if self {
            Health::up()
        } else {
            Health::down("returned false")
        }
    }
}

impl IntoHealth for () {
    fn into_health(self) -> Health {
        Health::up()
    }
}

impl<E: Display> IntoHealth for Result<(), E> {
    fn into_health(self) -> Health {
        match self {
            Ok(()) => Health::up(),
            Err(e) => Health::down(e.to_string()),
        }
    }
}

/// The outcome of a hook: `Err` carries the reason.
pub type HookOutcome = Result<(), String>;

/// The return types a hook may have: `()` and `Result<(), E: Display>`.
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a supported return type for a lifecycle hook",
    label = "a hook returns `()` or `Result<(), E: Display>`"
)]
pub trait IntoHookOutcome {
    /// Converts the hook's result.
    fn into_hook_outcome(self) -> HookOutcome;
}

impl IntoHookOutcome for () {
    fn into_hook_outcome(self) -> HookOutcome {
        Ok(())
    }
}

impl<E: Display> IntoHookOutcome for Result<(), E> {
    fn into_hook_outcome(self) -> HookOutcome {
        self.map_err(|e| e.to_string())
    }
}

/// The return types `main` may have under `#[service_main]`: `()` and
/// `Result<(), E: Debug>` (as with `std`'s `main`).
#[diagnostic::on_unimplemented(
    message = "`{Self}` is not a supported return type for `#[service_main]`",
    label = "`main` returns `()` or `Result<(), E: Debug>`"
)]
pub trait MainOutcome {
    /// `Err` carries the error, formatted with `Debug` like `std` does.
    fn into_main_outcome(self) -> Result<(), String>;
}

impl MainOutcome for () {
    fn into_main_outcome(self) -> Result<(), String> {
        Ok(())
    }
}

impl<E: Debug> MainOutcome for Result<(), E> {
    fn into_main_outcome(self) -> Result<(), String> {
        self.map_err(|e| format!("{e:?}"))
    }
}
