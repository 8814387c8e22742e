//! The kubelet's restart back-off: how long a container waits before it
//! starts again.

use std::time::Duration;

/// The restart back-off's first delay (`backOffPeriod` in
/// `pkg/kubelet/kubelet.go`), before the time scale.
pub(super) const BACK_OFF_INITIAL: Duration = Duration::from_secs(10);
/// The restart back-off's cap (`MaxContainerBackOff` in
/// `pkg/kubelet/kubelet.go`), before the time scale.
pub(super) const BACK_OFF_MAX: Duration = Duration::from_secs(300);

/// The kubelet's restart back-off of a container
/// (`k8s.io/client-go/util/flowcontrol/backoff.go`, as
/// `pkg/kubelet/kuberuntime/kuberuntime_manager.go`'s `doBackOff` uses
/// it): the first restart comes at once, the next after `initial`, then
/// twice as long each time up to `max`; a container that ran for more
/// than twice `max` since the last restart starts a fresh back-off.
#[derive(Debug, Clone)]
pub(crate) struct BackOff {
    initial: Duration,
    max: Duration,
    /// The current back-off, and when it was last moved on.
    entry: Option<(Duration, Duration)>,
}

impl BackOff {
    pub(crate) fn new(initial: Duration, max: Duration) -> BackOff {
        BackOff {
            initial,
            max,
            entry: None,
        }
    }

    /// How long after `finished` (the container's exit, on the watch's
    /// clock) the next container starts.
    pub(crate) fn delay(&mut self, finished: Duration) -> Duration {
        match self.entry {
            Some((backoff, last_update))
                if finished.saturating_sub(last_update) <= self.max * 2 =>
            {
                self.entry = Some(((backoff * 2).min(self.max), finished + backoff));
                backoff
            }
            _ => {
                self.entry = Some((self.initial, finished));
                Duration::ZERO
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_back_off_doubles_to_its_cap_and_resets_after_a_long_run() {
        let s = Duration::from_secs;
        let mut back_off = BackOff::new(s(10), s(300));
        // Each container dies 1 s after it starts.
        let mut now = s(0);
        let mut delays = Vec::new();
        for _ in 0..9 {
            let delay = back_off.delay(now);
            delays.push(delay.as_secs());
            now += delay + s(1);
        }
        assert_eq!(delays, [0, 10, 20, 40, 80, 160, 300, 300, 300]);
        // Ten minutes since the last restart is not enough; more is.
        let restarted = now - s(1);
        assert_eq!(back_off.delay(restarted + s(600)), s(300));
        let restarted = restarted + s(900);
        assert_eq!(back_off.delay(restarted + s(601)), s(0));
        assert_eq!(back_off.delay(restarted + s(602)), s(10));
    }
}
