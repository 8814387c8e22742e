//! The panic policy. Under `panic = "crash"` a panic anywhere outside the
//! framework's own calls ends the process at once with 101 and says where:
//! a panic swallowed by a task otherwise leaves a half-dead service behind.
//! Checks and hooks are "contained": their panics are their failures.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::future::Future;
use std::panic::{AssertUnwindSafe, PanicHookInfo};
use std::pin::Pin;
use std::task::{Context, Poll};

use futures_util::FutureExt;

use crate::config::PanicPolicy;
use crate::exit;
use crate::failures::Failure;

thread_local! {
    /// How many contained calls are running on this thread right now.
    static CONTAINED: Cell<u32> = const { Cell::new(0) };
    /// The description (with its location) of the last contained panic on
    /// this thread, for [`contained`] to log: the payload alone has none.
    static LAST_CONTAINED: RefCell<Option<String>> = const { RefCell::new(None) };
}

/// Marks the current thread as inside a contained call until dropped
/// (unwinding included).
struct ContainedScope;

impl ContainedScope {
    fn enter() -> ContainedScope {
        CONTAINED.with(|c| c.set(c.get() + 1));
        ContainedScope
    }
}

impl Drop for ContainedScope {
    fn drop(&mut self) {
        CONTAINED.with(|c| c.set(c.get() - 1));
    }
}

fn is_contained() -> bool {
    CONTAINED.with(|c| c.get() > 0)
}

/// Runs a check's or hook's plain `fn` as a contained call.
pub(crate) fn contain<T>(function: impl FnOnce() -> T) -> T {
    let _scope = ContainedScope::enter();
    function()
}

/// A check's or hook's future, contained while it is polled and when it is
/// dropped (a time-out drops it; a task may move between threads, so the
/// mark is set around each poll).
pub(crate) struct Contained<F: ?Sized>(Option<Pin<Box<F>>>);

impl<F: ?Sized> Contained<F> {
    pub(crate) fn new(future: Pin<Box<F>>) -> Self {
        Contained(Some(future))
    }
}

impl<F: Future + ?Sized> Future for Contained<F> {
    type Output = F::Output;

    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<F::Output> {
        let _scope = ContainedScope::enter();
        match self.0.as_mut() {
            Some(future) => future.as_mut().poll(cx),
            None => Poll::Pending,
        }
    }
}

impl<F: ?Sized> Drop for Contained<F> {
    fn drop(&mut self) {
        let _scope = ContainedScope::enter();
        self.0.take();
    }
}

/// The text of a panic payload, as `std` prints it: the one place that
/// knows a payload is a `&str` or a `String`.
pub(crate) fn payload_text(payload: &(dyn Any + Send)) -> &str {
    payload
        .downcast_ref::<&str>()
        .copied()
        .or_else(|| payload.downcast_ref::<String>().map(String::as_str))
        .unwrap_or("Box<dyn Any>")
}

/// The text of a panic payload, the payload then disposed of. Its drop
/// is user code too (a payload of the user's own type), which may panic
/// in turn: that panic is contained, and its payload forgotten rather
/// than dropped (the one way to be done with a payload whose every drop
/// may panic).
pub(crate) fn payload_message(payload: Box<dyn Any + Send>) -> String {
    let message = payload_text(&*payload).to_owned();
    let _scope = ContainedScope::enter();
    if let Err(again) = std::panic::catch_unwind(AssertUnwindSafe(move || drop(payload))) {
        std::mem::forget(again);
    }
    message
}

/// Runs a check's or hook's plain `fn` as a contained call, its panic
/// caught there: `Err` with the panic's message, the payload disposed of
/// on this thread, contained, whether anyone still waits for the call or
/// not.
pub(crate) fn catch<T>(function: impl FnOnce() -> T) -> Result<T, String> {
    contain(|| std::panic::catch_unwind(AssertUnwindSafe(function)).map_err(payload_message))
}

/// A check's or hook's future as a contained call, its panic caught
/// there, as [`catch`] does for a plain `fn`.
pub(crate) async fn catch_async<F: Future + ?Sized>(
    future: Pin<Box<F>>,
) -> Result<F::Output, String> {
    AssertUnwindSafe(Contained::new(future))
        .catch_unwind()
        .await
        .map_err(payload_message)
}

/// Runs lifecycle's own `future` (the probe server, the heartbeat, a
/// background runner) so that a panic in it, a bug of ours, never reaches
/// the panic policy: it is logged with its location and returned as `Err`.
pub(crate) async fn contained<T>(what: &str, future: impl Future<Output = T>) -> Result<T, ()> {
    match AssertUnwindSafe(Contained::new(Box::pin(future)))
        .catch_unwind()
        .await
    {
        Ok(value) => Ok(value),
        Err(payload) => {
            let message = payload_message(payload);
            let description = LAST_CONTAINED
                .with(|last| last.borrow_mut().take())
                .unwrap_or(message);
            tracing::error!("lifecycle's {what} panicked, and the service goes on: {description}");
            Err(())
        }
    }
}

/// `panicked at FILE:LINE:COL: MESSAGE`, as `std` words it.
fn describe(info: &PanicHookInfo<'_>) -> String {
    let message = payload_text(info.payload());
    let thread = std::thread::current();
    let thread = thread.name().unwrap_or("<unnamed>");
    match info.location() {
        Some(location) => format!("thread '{thread}' panicked at {location}: {message}"),
        None => format!("thread '{thread}' panicked: {message}"),
    }
}

/// Replaces the panic hook for the life of the process.
pub(crate) fn install(policy: PanicPolicy) {
    install_with(move |description| match policy {
        PanicPolicy::Crash => Failure::Crash(description.to_owned()).exit_now(),
        PanicPolicy::Log => exit::log_error(description),
    });
}

/// Replaces the panic hook: a contained panic is left to its caller to
/// report; any other goes to `uncontained`, with its description.
pub(crate) fn install_with(uncontained: impl Fn(&str) + Send + Sync + 'static) {
    std::panic::set_hook(Box::new(move |info| {
        let description = describe(info);
        if is_contained() {
            // Reported by its caller: as the check's or hook's failure, or
            // logged by `contained`.
            tracing::debug!("contained: {description}");
            LAST_CONTAINED.with(|last| *last.borrow_mut() = Some(description));
            return;
        }
        uncontained(&description);
    }));
}
