//! A SIGTERM under a steady load, with a drain delay, loses nothing: with
//! clients that open a new connection per request and with clients that
//! keep theirs alive, every request routed to the instance is answered
//! with a 2xx, none gets a 5xx or a time-out at any moment, and every write
//! acknowledged, during the drain too, is in Redis after the exit 0.
//!
//! As in the quick start's test, the load balancer routes new connections
//! to the pod until `ROUTED_FOR` after the signal, well within the drain
//! delay; the requests after that still run until the exit but only a 5xx
//! or a time-out counts against the service then: a connection that lands
//! in the accept queue as the listener closes is reset whatever the server
//! does. A keep-alive connection is not re-routed by Kubernetes when the pod
//! leaves the endpoints, so the keep-alive clients' requests are held to
//! more: none may fail on a connection that carried a request before, at
//! any moment, because the service tells them to reconnect during the drain
//! delay (`Connection: close`), long before its listener closes.

// Against a real redis-server started by the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

mod support;

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lifecycle_testing::load::LoadReport;
use lifecycle_testing::service::StopReport;
use lifecycle_testing::{Error, Load, Stop};
use lifecycle_tests::redis::RedisServer;

use support::{builder, hash, Answer, Client};

const DRAIN_DELAY: Duration = Duration::from_millis(500);
/// How long the load balancer goes on routing new connections to the pod
/// after the signal: well within the drain delay.
const ROUTED_FOR: Duration = Duration::from_millis(250);

/// The two cases are timing-sensitive: one at a time on a small machine.
static SERIAL: Mutex<()> = Mutex::new(());

/// What the load's requests saw, beyond what the kit's report counts.
#[derive(Default)]
struct Seen {
    /// The writes acknowledged, by id.
    acknowledged: Mutex<BTreeMap<String, String>>,
    /// Requests sent on a connection that had carried one before, and how
    /// many of them failed.
    reused: AtomicU64,
    failed_on_reused: Mutex<Vec<String>>,
    /// Answers that told the client to close its connection.
    told_to_close: AtomicU64,
}

thread_local! {
    /// Each load client thread's own client, so that a keep-alive client
    /// keeps its connection from one request to the next.
    static CLIENT: RefCell<Option<Client>> = const { RefCell::new(None) };
}

/// Sends one request: every other one a `PUT` of a new item, the others a
/// `GET` of the seeded item. Only a 2xx with the expected body is `Ok`.
fn one_request(
    app: SocketAddr,
    keep_alive: bool,
    counter: &AtomicU64,
    seen: &Seen,
) -> Result<(), Error> {
    let n = counter.fetch_add(1, Ordering::SeqCst);
    let write = n.is_multiple_of(2);
    CLIENT.with(|client| {
        let mut client = client.borrow_mut();
        let client = client.get_or_insert_with(|| {
            if keep_alive {
                Client::keep_alive(app)
            } else {
                Client::new(app)
            }
        });
        let (id, value) = (format!("load-{n}"), format!("v{n}"));
        let result = if write {
            client.put(&format!("/items/{id}"), &value)
        } else {
            client.get("/items/seed")
        };
        if client.reused() {
            seen.reused.fetch_add(1, Ordering::SeqCst);
            if let Err(error) = &result {
                seen.failed_on_reused
                    .lock()
                    .unwrap()
                    .push(error.to_string());
            }
        }
        let answer: Answer = result?;
        if answer.closes {
            seen.told_to_close.fetch_add(1, Ordering::SeqCst);
        }
        let expected = if write {
            format!(r#"{{"id":"{id}","value":"{value}"}}"#)
        } else {
            r#"{"id":"seed","value":"seeded"}"#.to_owned()
        };
        match answer.status {
            200 if answer.body == expected => {
                if write {
                    seen.acknowledged.lock().unwrap().insert(id, value);
                }
                Ok(())
            }
            200 => Err(Error::unexpected_answer(format!(
                "unexpected body {:?}",
                answer.body
            ))),
            status => Err(Error::unexpected_status(status)),
        }
    })
}

/// Runs the load across a SIGTERM and checks what every case must show.
fn stop_under_load(keep_alive: bool) -> (LoadReport, StopReport, Arc<Seen>) {
    let redis = RedisServer::start();
    let mut service = builder(&redis)
        .env(
            "LIFECYCLE_DRAIN_DELAY_MS",
            DRAIN_DELAY.as_millis().to_string(),
        )
        // Only the shutdown hook writes to Redis: what is there after the
        // exit is what the stop saved.
        .env("FLUSH_INTERVAL_MS", "86400000")
        .start()
        .unwrap();
    let app = service.app_addr().unwrap();
    let seeded = Client::new(app).put("/items/seed", "seeded").unwrap();
    assert_eq!(seeded.status, 200, "{seeded:?}");

    let counter = Arc::new(AtomicU64::new(0));
    let seen = Arc::new(Seen::default());
    let load = {
        let seen = seen.clone();
        Load::new(move || one_request(app, keep_alive, &counter, &seen))
    }
    .clients(4)
    .rate(200)
    .warmup(Duration::from_millis(300))
    .routed_for(ROUTED_FOR);
    let (report, stopped) = load.across_stop(&mut service, Stop::grace(Duration::from_secs(10)));
    eprintln!("{report}");

    report.assert_nothing_lost();
    assert_eq!(stopped.exit.code, Some(0), "{report}\n{:?}", stopped.log);
    assert!(!stopped.killed);
    // Never a 5xx, a wrong body or a time-out, routed or not: the failures
    // outside the routing window are refusals (the listener has closed)
    // or resets (a connection in its accept queue as it closed).
    assert_eq!(report.failed, 0, "{report}");
    assert_eq!(report.unfinished, 0, "{report}");
    // The drain delay served: requests sent after the signal were answered,
    // to the end of the routing window and beyond.
    let last = report
        .last_answered
        .and_then(|last| last.after_signal())
        .expect("an answer to a request sent after the signal");
    assert!(last >= ROUTED_FOR, "{report}");
    assert_eq!(report.answered_after_exit, 0, "{report}");

    // Every write acknowledged, before or after the signal, is in Redis.
    let acknowledged = seen.acknowledged.lock().unwrap().clone();
    assert!(acknowledged.len() > 20, "{} writes", acknowledged.len());
    let stored = hash(&redis, "items");
    let missing: Vec<_> = acknowledged
        .iter()
        .filter(|(id, value)| stored.get(*id) != Some(*value))
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {} acknowledged writes are not in Redis, the first: {:?}",
        missing.len(),
        acknowledged.len(),
        missing.first()
    );
    (report, stopped, seen)
}

#[test]
fn a_stop_under_load_loses_nothing_with_a_new_connection_per_request() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (_, _, seen) = stop_under_load(false);
    assert_eq!(seen.reused.load(Ordering::SeqCst), 0);
}

#[test]
fn a_stop_under_load_loses_nothing_with_keep_alive_connections() {
    let _serial = SERIAL.lock().unwrap_or_else(|p| p.into_inner());
    let (report, _, seen) = stop_under_load(true);
    // Keep-alive was in use: most requests went on a reused connection.
    let reused = seen.reused.load(Ordering::SeqCst);
    assert!(
        reused * 2 > report.sent_before_signal,
        "{reused} reused; {report}"
    );
    // Told to reconnect during the drain delay, no keep-alive client was
    // still on its old connection when the listener closed.
    assert!(seen.told_to_close.load(Ordering::SeqCst) >= 4, "{report}");
    let failed = seen.failed_on_reused.lock().unwrap();
    assert!(
        failed.is_empty(),
        "{} requests failed on a reused connection, the first: {}\n{report}",
        failed.len(),
        failed[0]
    );
}
