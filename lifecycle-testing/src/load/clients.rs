//! The client threads of a load: each sends one request at a time, on
//! its turn when the load has a rate, and records what became of it.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use super::request::{Record, Request};
use crate::error::{Error, ErrorKind};
use crate::sync::lock;

#[derive(Default)]
struct Shared {
    stop: AtomicBool,
    answered: AtomicU64,
    records: Mutex<Vec<Record>>,
    /// When each client's request in flight was sent.
    in_flight: Vec<Mutex<Option<Instant>>>,
}

/// The client threads, stopped when dropped.
pub(super) struct Running {
    shared: Arc<Shared>,
    threads: Vec<JoinHandle<()>>,
}

impl Running {
    /// Starts `clients` threads sending `request`, together `rate`
    /// requests per second, or back to back.
    pub(super) fn start(request: &Arc<Request>, clients: usize, rate: Option<u32>) -> Running {
        let shared = Arc::new(Shared {
            in_flight: (0..clients).map(|_| Mutex::new(None)).collect(),
            ..Shared::default()
        });
        let began = Instant::now();
        let threads = (0..clients)
            .map(|client| {
                let shared = shared.clone();
                let request = request.clone();
                // Client `client` takes every `clients`-th turn.
                let turns = rate.map(|rate| {
                    let spacing = Duration::from_secs_f64(1.0 / f64::from(rate));
                    let first = began + spacing * u32::try_from(client).unwrap_or(u32::MAX);
                    (first, spacing * u32::try_from(clients).unwrap_or(u32::MAX))
                });
                std::thread::Builder::new()
                    .name(format!("load-client-{client}"))
                    .spawn(move || send(client, &shared, &*request, turns))
                    .expect("a load client thread starts")
            })
            .collect();
        Running { shared, threads }
    }

    /// Whether a request was answered yet.
    pub(super) fn answered_any(&self) -> bool {
        self.shared.answered.load(Ordering::SeqCst) > 0
    }

    /// Whether a request was sent at `moment` or later.
    pub(super) fn sent_since(&self, moment: Instant) -> bool {
        let in_flight = self
            .shared
            .in_flight
            .iter()
            .any(|slot| lock(slot).is_some_and(|sent| sent >= moment));
        in_flight || lock(&self.shared.records).iter().any(|r| r.sent >= moment)
    }

    /// Stops the clients, waits up to `timeout` for them, and returns every
    /// request, those still in flight included.
    pub(super) fn finish(mut self, timeout: Duration) -> Vec<Record> {
        self.shared.stop.store(true, Ordering::SeqCst);
        let until = Instant::now() + timeout;
        while self.threads.iter().any(|t| !t.is_finished()) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(1));
        }
        for thread in std::mem::take(&mut self.threads) {
            if thread.is_finished() {
                let _ = thread.join();
            }
        }
        let recorded = lock(&self.shared.records);
        let mut records = recorded.clone();
        let now = Instant::now();
        records.extend(self.shared.in_flight.iter().filter_map(|slot| {
            lock(slot).map(|sent| Record {
                sent,
                took: now - sent,
                outcome: None,
            })
        }));
        drop(recorded);
        records.sort_by_key(|r| r.sent);
        records
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
    }
}

/// One client's loop.
fn send(client: usize, shared: &Shared, request: &Request, turns: Option<(Instant, Duration)>) {
    let mut next = turns.map(|(first, _)| first);
    while !shared.stop.load(Ordering::SeqCst) {
        if let (Some(at), Some((_, spacing))) = (next, turns) {
            let now = Instant::now();
            if at > now {
                std::thread::sleep((at - now).min(Duration::from_millis(5)));
                continue;
            }
            // A late client takes its next turn from now: no burst.
            let base = if now - at > spacing { now } else { at };
            next = Some(base + spacing);
        }
        let sent = Instant::now();
        *lock(&shared.in_flight[client]) = Some(sent);
        let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(request))
            .unwrap_or_else(|panic| {
                let message = panic
                    .downcast_ref::<&str>()
                    .map(|s| (*s).to_owned())
                    .or_else(|| panic.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "a panic".to_owned());
                Err(Error::new(
                    ErrorKind::Other,
                    format!("the request panicked: {message}"),
                ))
            });
        let took = sent.elapsed();
        if outcome.is_ok() {
            shared.answered.fetch_add(1, Ordering::SeqCst);
        }
        // Recorded and no longer in flight at once (`finish` looks at both
        // under the records' lock).
        let mut records = lock(&shared.records);
        records.push(Record {
            sent,
            took,
            outcome: Some(outcome),
        });
        *lock(&shared.in_flight[client]) = None;
    }
}
