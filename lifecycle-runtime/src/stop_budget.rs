//! The stop's time budget: what the exit keeps free after the
//! `on_shutdown` hooks, and the start-up checks that the drain delay, the
//! connection drain and the hooks fit in the shutdown timeout (and, on
//! Windows, in the time Windows allows).

use std::time::Duration;

use crate::registry::{self, HookKind};

/// How long a stopping probe server lets its connections finish what they
/// are answering (and gRPC `Watch` streams send their end) before it drops
/// them: the process is about to exit. With the application runtime's own
/// shutdown after it ([`EXIT_TIMEOUT`]), within [`EXIT_MARGIN`].
pub(crate) const STOP_GRACE: Duration = Duration::from_millis(150);

/// How long the application runtime's shutdown waits for its blocking
/// threads at the exit. With the probe server's stop ([`STOP_GRACE`]),
/// within [`EXIT_MARGIN`], so that the deadline never overtakes an exit
/// already decided.
pub(crate) const EXIT_TIMEOUT: Duration = Duration::from_millis(50);

/// What the hooks' latest start keeps free before the deadline, beyond
/// their own timeouts: for the probe server's stop, the application
/// runtime's shutdown, the exit and its termination message.
pub(crate) const EXIT_MARGIN: Duration = Duration::from_millis(250);
const _: () = assert!(STOP_GRACE.as_millis() + EXIT_TIMEOUT.as_millis() < EXIT_MARGIN.as_millis());

/// How long Windows lets a process live after `CTRL_SHUTDOWN_EVENT`, a
/// Windows container's stop, by default: the registry's
/// `WaitToKillServiceTimeout` and `cexecsvc`'s
/// `ProcessShutdownTimeoutSeconds`, whatever the grace period says.
const WINDOWS_STOP_WINDOW: Duration = Duration::from_secs(5);

/// The start-up check of Windows' own limit: when the drain delay and the
/// `on_shutdown` hooks' timeouts reach [`WINDOWS_STOP_WINDOW`], Windows
/// ends the process before the stop is done, so say so with each figure
/// and the keys that raise the limit. The connection drain, spent only
/// while connections stay open, is named as what may come on top. `hooks`
/// is the hooks' budget and its parts, as [`registry::hooks_budget`]
/// gives them.
pub(crate) fn windows_stop_window_warning(
    drain_delay: Duration,
    connection_drain: Duration,
    (hooks, parts): (Duration, Vec<String>),
) -> Option<String> {
    let needed = drain_delay.saturating_add(hooks);
    if needed < WINDOWS_STOP_WINDOW {
        return None;
    }
    Some(format!(
        "on Windows the stop may be cut short: a container's process is ended about {} s after CTRL_SHUTDOWN_EVENT, whatever the shutdown timeout says, and drain delay {} ms + on_shutdown hook timeouts {} ms [{}] = {} ms (and up to the connection drain of {} ms on top while connections stay open); lower LIFECYCLE_DRAIN_DELAY_MS or the hooks' timeout_ms, or raise the limit in the image: WaitToKillServiceTimeout (HKLM\\SYSTEM\\CurrentControlSet\\Control, REG_SZ, ms) and ProcessShutdownTimeoutSeconds (HKLM\\SYSTEM\\CurrentControlSet\\Services\\cexecsvc, REG_DWORD, s)",
        WINDOWS_STOP_WINDOW.as_secs(),
        drain_delay.as_millis(),
        hooks.as_millis(),
        parts.join(", "),
        needed.as_millis(),
        connection_drain.as_millis(),
    ))
}

/// The start-up budget check: when the drain delay, the connection drain
/// and the `on_shutdown` hooks' timeouts cannot fit in the shutdown
/// timeout, say so with each figure, before the first rollout rather than
/// during it.
pub(crate) fn budget_warning(
    drain_delay: Duration,
    connection_drain: Duration,
    shutdown_timeout: Duration,
) -> Option<String> {
    let (hooks, parts) = registry::hooks_budget(HookKind::OnShutdown);
    let needed = drain_delay
        .saturating_add(connection_drain)
        .saturating_add(hooks);
    if needed <= shutdown_timeout {
        return None;
    }
    Some(format!(
        "the shutdown budget cannot hold: drain delay {} ms + connection drain {} ms + on_shutdown hook timeouts {} ms [{}] = {} ms, more than the shutdown timeout of {} ms; raise LIFECYCLE_SHUTDOWN_TIMEOUT_MS (and terminationGracePeriodSeconds), or lower the connection drain (LIFECYCLE_CONNECTION_DRAIN_MS) or the hooks' timeout_ms",
        drain_delay.as_millis(),
        connection_drain.as_millis(),
        hooks.as_millis(),
        parts.join(", "),
        needed.as_millis(),
        shutdown_timeout.as_millis(),
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn windows_stop_window_warns_from_five_seconds_with_each_figure() {
        let ms = Duration::from_millis;
        let hooks =
            |total, parts: &[&str]| (ms(total), parts.iter().map(|p| p.to_string()).collect());
        let drain = ms(5000);
        // Within Windows' 5 s: no warning, whatever the connection drain
        // (spent only while connections stay open).
        assert_eq!(
            windows_stop_window_warning(ms(0), drain, hooks(0, &[])),
            None
        );
        assert_eq!(
            windows_stop_window_warning(ms(2999), drain, hooks(2000, &["flush 2000 ms"])),
            None
        );
        // Kubernetes' default drain delay alone fills it: the stop cannot
        // end before Windows' kill.
        assert!(windows_stop_window_warning(ms(5000), drain, hooks(0, &[])).is_some());
        let warning = windows_stop_window_warning(ms(3000), drain, hooks(2001, &["close 2001 ms"]))
            .expect("5001 ms is past the window");
        for figure in [
            "about 5 s after CTRL_SHUTDOWN_EVENT",
            "drain delay 3000 ms",
            "on_shutdown hook timeouts 2001 ms [close 2001 ms]",
            "= 5001 ms",
            "up to the connection drain of 5000 ms on top",
            "WaitToKillServiceTimeout (HKLM\\SYSTEM\\CurrentControlSet\\Control",
            "ProcessShutdownTimeoutSeconds (HKLM\\SYSTEM\\CurrentControlSet\\Services\\cexecsvc",
        ] {
            assert!(warning.contains(figure), "{figure:?} in {warning}");
        }
    }
}
