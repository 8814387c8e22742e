//! What a check says about itself, and the conversions from the return
//! types the attributes accept.

use std::cell::Cell;
use std::error::Error;
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
            Err(e) => Health::down(display_reason(&e)),
        }
    }
}

/// The reason of an error known only as `Display`: its alternate form,
/// which is the whole chain for `anyhow::Error` and `eyre::Report`
/// ("outer: inner") and the plain message for most other types.
fn display_reason(error: &impl Display) -> String {
    format!("{error:#}")
}

/// The reason of a `std::error::Error`: its message and each of its
/// causes (`source()`), joined with ": " as anyhow's `{:#}` does, so
/// "error connecting to server" keeps its "Connection refused (os error
/// 111)". A cause whose message the text so far already ends with is left
/// out (errors that print their source themselves). The bound on a
/// reason's length applies where it is reported.
pub(crate) fn chain_reason(error: &(dyn Error + 'static)) -> String {
    let mut reason = error.to_string();
    let mut cause = error.source();
    // A bound on the walk: a cyclic or endless chain must not hang a probe.
    for _ in 0..16 {
        let Some(next) = cause else { break };
        let message = next.to_string();
        if !message.is_empty() && !reason.ends_with(&message) {
            reason.push_str(": ");
            reason.push_str(&message);
        }
        cause = next.source();
    }
    reason
}

/// What a check or hook returned, as the generated code hands it to the
/// conversion: a `Result` whose error is a `std::error::Error` is turned
/// into a reason with its causes ([`chain_reason`]); any other supported
/// type goes through [`IntoHealth`] or [`IntoHookOutcome`]. The choice
/// is made by method resolution on `&&Returned<T>` (autoref
/// specialisation: the impl for `&&Returned<Result<(), E: Error>>` is
/// found first when it applies, and before it the impls for a boxed
/// `dyn Error`, which is no `Error` itself), which needs the concrete type the
/// generated code has; the value moves out through the `Cell`.
#[doc(hidden)]
pub struct Returned<T>(Cell<Option<T>>);

impl<T> Returned<T> {
    #[doc(hidden)]
    pub fn new(value: T) -> Returned<T> {
        Returned(Cell::new(Some(value)))
    }

    fn take(&self) -> T {
        self.0.take().expect("a returned value is converted once")
    }
}

/// A `Result<(), Box<dyn Error …>>` check (the boxed error implements
/// no `Error` of its own): the reason keeps the causes.
#[doc(hidden)]
pub trait HealthWithBoxedCauses {
    fn lifecycle_into_health(self) -> Health;
}

/// A `Result<(), Box<dyn Error …>>` hook: the reason keeps the causes.
#[doc(hidden)]
pub trait HookOutcomeWithBoxedCauses {
    fn lifecycle_into_hook_outcome(self) -> HookOutcome;
}

/// The boxed errors a check or hook may return, each with its causes.
macro_rules! boxed_errors_keep_their_causes {
    ($($boxed:ty),*) => {$(
        impl HealthWithBoxedCauses for &&&Returned<Result<(), $boxed>> {
            fn lifecycle_into_health(self) -> Health {
                match self.take() {
                    Ok(()) => Health::up(),
                    Err(error) => Health::down(chain_reason(&*error)),
                }
            }
        }

        impl HookOutcomeWithBoxedCauses for &&&Returned<Result<(), $boxed>> {
            fn lifecycle_into_hook_outcome(self) -> HookOutcome {
                self.take().map_err(|error| chain_reason(&*error))
            }
        }
    )*};
}

boxed_errors_keep_their_causes!(
    Box<dyn Error + 'static>,
    Box<dyn Error + Send + 'static>,
    Box<dyn Error + Send + Sync + 'static>
);

/// A `Result<(), E: Error>` check: the reason keeps the causes.
#[doc(hidden)]
pub trait HealthWithCauses {
    fn lifecycle_into_health(self) -> Health;
}

impl<E: Error + 'static> HealthWithCauses for &&Returned<Result<(), E>> {
    fn lifecycle_into_health(self) -> Health {
        match self.take() {
            Ok(()) => Health::up(),
            Err(error) => Health::down(chain_reason(&error)),
        }
    }
}

/// Any other check: through [`IntoHealth`], whose bound sits on the
/// method, so that an unsupported type is reported with that trait's
/// message on the return type.
#[doc(hidden)]
pub trait HealthFromReturn<T> {
    fn lifecycle_into_health(self) -> Health
    where
        T: IntoHealth;
}

impl<T> HealthFromReturn<T> for &Returned<T> {
    fn lifecycle_into_health(self) -> Health
    where
        T: IntoHealth,
    {
        self.take().into_health()
    }
}

/// A `Result<(), E: Error>` hook: the reason keeps the causes.
#[doc(hidden)]
pub trait HookOutcomeWithCauses {
    fn lifecycle_into_hook_outcome(self) -> HookOutcome;
}

impl<E: Error + 'static> HookOutcomeWithCauses for &&Returned<Result<(), E>> {
    fn lifecycle_into_hook_outcome(self) -> HookOutcome {
        self.take().map_err(|error| chain_reason(&error))
    }
}

/// Any other hook: through [`IntoHookOutcome`].
#[doc(hidden)]
pub trait HookOutcomeFromReturn<T> {
    fn lifecycle_into_hook_outcome(self) -> HookOutcome
    where
        T: IntoHookOutcome;
}

impl<T> HookOutcomeFromReturn<T> for &Returned<T> {
    fn lifecycle_into_hook_outcome(self) -> HookOutcome
    where
        T: IntoHookOutcome,
    {
        self.take().into_hook_outcome()
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
        self.map_err(|e| display_reason(&e))
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

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Layer(&'static str, Option<Box<Layer>>);

    impl Display for Layer {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str(self.0)
        }
    }

    impl Error for Layer {
        fn source(&self) -> Option<&(dyn Error + 'static)> {
            self.1
                .as_deref()
                .map(|cause| cause as &(dyn Error + 'static))
        }
    }

    fn chain(messages: &[&'static str]) -> Layer {
        let mut layers = messages.iter().rev();
        let mut error = Layer(layers.next().unwrap(), None);
        for message in layers {
            error = Layer(message, Some(Box::new(error)));
        }
        error
    }

    #[test]
    fn a_reason_joins_an_errors_causes_and_skips_those_it_already_says() {
        let refused = chain(&[
            "error connecting to server",
            "Connection refused (os error 111)",
        ]);
        assert_eq!(
            chain_reason(&refused),
            "error connecting to server: Connection refused (os error 111)"
        );
        // A message that already ends with its cause's, and an empty one.
        let said = chain(&["query failed: timed out", "timed out", "", "deadline"]);
        assert_eq!(chain_reason(&said), "query failed: timed out: deadline");
        // An endless chain is cut, not followed for ever: 16 causes at most.
        let names: Vec<&'static str> = (0..40)
            .map(|n| &*Box::leak(format!("e{n}").into_boxed_str()))
            .collect();
        let long = chain(&names);
        assert_eq!(chain_reason(&long).matches(": ").count(), 16);
    }

    // `&&` as the generated code writes it: method resolution starts there,
    // which is what chooses the conversion.
    #[allow(clippy::needless_borrow)]
    #[test]
    fn the_generated_conversion_keeps_causes_for_std_errors_only() {
        let refused = || -> Result<(), Layer> { Err(chain(&["outer", "inner"])) };
        let health = (&&&Returned::new(refused())).lifecycle_into_health();
        assert_eq!(health.reason(), Some("outer: inner"));
        let outcome = (&&&Returned::new(refused())).lifecycle_into_hook_outcome();
        assert_eq!(outcome, Err("outer: inner".to_owned()));
        // A boxed error, the most common kind, keeps its causes too.
        let boxed = || -> Result<(), Box<dyn Error + Send + Sync>> {
            Err(Box::new(chain(&["outer", "inner"])))
        };
        let health = (&&&Returned::new(boxed())).lifecycle_into_health();
        assert_eq!(health.reason(), Some("outer: inner"));
        let outcome = (&&&Returned::new(boxed())).lifecycle_into_hook_outcome();
        assert_eq!(outcome, Err("outer: inner".to_owned()));
        let boxed = || -> Result<(), Box<dyn Error>> { Err(chain(&["a", "b"]).into()) };
        assert_eq!(
            (&&&Returned::new(boxed())).lifecycle_into_health().reason(),
            Some("a: b")
        );
        // Display only: its alternate form (anyhow's chain), else as is.
        let plain = (&&&Returned::new(Err::<(), _>("plain"))).lifecycle_into_health();
        assert_eq!(plain.reason(), Some("plain"));
        assert!((&&&Returned::new(true)).lifecycle_into_health().is_up());
        assert_eq!((&&&Returned::new(())).lifecycle_into_hook_outcome(), Ok(()));
    }
}
