//! `Watch`: one poll per watched name, shared by all its watchers and
//! running only while one is open. It wakes on each change the lifecycle
//! notes (the phase, `out_of_rotation`, `mark_broken`, a background check's
//! result) and once a second for the checks that run on demand.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use futures_util::Stream;
use tokio::sync::watch;
use tokio::task::AbortHandle;
use tokio_util::sync::CancellationToken;
use tonic::Status;

use crate::grpc::names::{known, response, status};
use crate::grpc::proto::health_check_response::ServingStatus;
use crate::grpc::proto::HealthCheckResponse;
use crate::probe::endpoint::parse_service;
use crate::probe::evaluate::Evaluator;

/// How often a watched name's on-demand checks run (and a stall of the
/// application runtime is looked for).
const POLL_PERIOD: Duration = Duration::from_secs(1);

/// The polls of one health service, by name.
#[derive(Default)]
pub(crate) struct Watches {
    polls: Mutex<HashMap<String, Weak<Poll>>>,
}

/// A name's poll: its latest status (`None` before the first), for its
/// watchers to subscribe to. Dropped with its last watcher, which stops it.
struct Poll {
    status: watch::Receiver<Option<ServingStatus>>,
    task: AbortHandle,
}

impl Drop for Poll {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Watches {
    /// A watcher of `name`: the current status, then each change, until
    /// `end` is cancelled.
    pub(crate) fn watch(
        &self,
        evaluator: Arc<Evaluator>,
        name: String,
        end: CancellationToken,
    ) -> impl Stream<Item = Result<HealthCheckResponse, Status>> + Send + 'static {
        #[cfg(feature = "metrics")]
        let label = crate::grpc::names::endpoint_label(&evaluator, &name);
        let poll = self.poll(evaluator, name);
        let status = poll.status.clone();
        let watcher = Watcher {
            _poll: poll,
            status,
            sent: None,
            poll_ended: false,
            end,
        };
        futures_util::stream::unfold(watcher, move |mut watcher| {
            #[cfg(feature = "metrics")]
            let label = label.clone();
            async move {
                let next = watcher.next().await?;
                // Each status sent is a probe answered.
                #[cfg(feature = "metrics")]
                crate::metrics::probe_answered("grpc", label, next.as_str_name().into());
                Some((Ok(response(next)), watcher))
            }
        })
    }

    /// The poll of `name`, started if none runs.
    fn poll(&self, evaluator: Arc<Evaluator>, name: String) -> Arc<Poll> {
        let mut polls = self.polls.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(poll) = polls.get(&name).and_then(Weak::upgrade) {
            return poll;
        }
        polls.retain(|_, poll| poll.strong_count() > 0);
        let (sender, status) = watch::channel(None);
        let task = tokio::spawn(crate::call::task(run_poll(evaluator, name.clone(), sender)))
            .abort_handle();
        let poll = Arc::new(Poll { status, task });
        polls.insert(name, Arc::downgrade(&poll));
        poll
    }
}

/// One watcher's stream state.
struct Watcher {
    /// Keeps the poll running.
    _poll: Arc<Poll>,
    status: watch::Receiver<Option<ServingStatus>>,
    sent: Option<ServingStatus>,
    /// The poll has nothing more to say (the name is unknown for good).
    poll_ended: bool,
    end: CancellationToken,
}

impl Watcher {
    /// The next status to send; `None` once the stream ends.
    async fn next(&mut self) -> Option<ServingStatus> {
        loop {
            let current = *self.status.borrow_and_update();
            if current.is_some() && current != self.sent {
                self.sent = current;
                return current;
            }
            // The protocol keeps a stream on an unknown name open: the
            // client learns of its end only when the server stops.
            tokio::select! {
                _ = self.end.cancelled() => return None,
                changed = self.status.changed(), if !self.poll_ended => {
                    self.poll_ended = changed.is_err();
                }
            }
        }
    }
}

/// Publishes the status of `name` until aborted.
async fn run_poll(
    evaluator: Arc<Evaluator>,
    name: String,
    sender: watch::Sender<Option<ServingStatus>>,
) {
    if !known(&evaluator, &name) {
        // The names are fixed when the service starts: unknown for good.
        sender.send_replace(Some(ServingStatus::ServiceUnknown));
        return;
    }
    let mut changes = evaluator.lifecycle().watch_probe_inputs();
    // A second from one run's start to the next, not from its end: a change
    // shows within a second plus the check's own time.
    let mut ticks = tokio::time::interval(POLL_PERIOD);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // The first tick is now: the first run below is it.
    ticks.tick().await;
    loop {
        changes.borrow_and_update();
        let (now, changed_meanwhile) = evaluate(&evaluator, &name, &mut changes).await;
        sender.send_if_modified(|last| {
            let differs = *last != Some(now);
            *last = Some(now);
            differs
        });
        if changed_meanwhile {
            continue;
        }
        tokio::select! {
            changed = changes.changed() => {
                if changed.is_err() {
                    // The lifecycle is gone: nothing will change.
                    return;
                }
            }
            _ = ticks.tick() => {}
        }
    }
}

/// The status of `name`, and whether something changed while the checks
/// ran. A change that fails the name on its built-in checks (SIGTERM on
/// `readyz`) answers at once, without waiting for the checks in flight.
async fn evaluate(
    evaluator: &Evaluator,
    name: &str,
    changes: &mut watch::Receiver<u64>,
) -> (ServingStatus, bool) {
    let (endpoint, only) = parse_service(name).expect("run_poll checked the name");
    let evaluation = status(evaluator, name);
    tokio::pin!(evaluation);
    let mut changed_meanwhile = false;
    let mut lifecycle_gone = false;
    loop {
        tokio::select! {
            now = &mut evaluation => {
                return (now.unwrap_or(ServingStatus::ServiceUnknown), changed_meanwhile);
            }
            // Armed through every change, so that a SIGTERM after some
            // other change still answers at once.
            changed = changes.changed(), if !lifecycle_gone => {
                if changed.is_err() {
                    lifecycle_gone = true;
                    continue;
                }
                changes.borrow_and_update();
                if evaluator.fails_on_builtins(endpoint, only) {
                    return (ServingStatus::NotServing, false);
                }
                // Evaluated before the change: run again once it ends.
                changed_meanwhile = true;
            }
        }
    }
}
