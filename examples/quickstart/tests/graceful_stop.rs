//! A graceful stop under load loses nothing: the quick-start example keeps
//! serving through its drain delay after SIGTERM, and the load's report
//! would show a request lost if it dropped one.

// The kit's stop is a signal, and its load runs across a stop: Unix only.
#![cfg(unix)]

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use lifecycle_testing::{http_get, Error, ErrorKind, Load, Service, Stop};

const QUICKSTART: &str = env!("CARGO_BIN_EXE_quickstart");
const DRAIN_DELAY: Duration = Duration::from_millis(500);
/// How long the load balancer goes on routing to the pod after the signal:
/// well within the drain delay.
const ROUTED_FOR: Duration = Duration::from_millis(250);

/// Starts the example with a drain delay and returns it with the
/// application's address.
fn start() -> (Service, SocketAddr) {
    let service = Service::builder(QUICKSTART)
        .env("APP_ADDR", "127.0.0.1:0")
        .env(
            "LIFECYCLE_DRAIN_DELAY_MS",
            DRAIN_DELAY.as_millis().to_string(),
        )
        .start()
        .unwrap();
    let app = service.app_addr().unwrap();
    (service, app)
}

#[test]
fn a_graceful_stop_under_load_loses_nothing() {
    let (mut service, app) = start();
    let load = Load::new(move || match http_get(app, "/", Duration::from_secs(2))? {
        (200, body) if body == "hello from lifecycle\n" => Ok(()),
        (200, body) => Err(Error::unexpected_answer(format!(
            "unexpected body {body:?}"
        ))),
        (status, _) => Err(Error::unexpected_status(status)),
    })
    .clients(4)
    .rate(200)
    // Until the load balancer has seen /readyz fail, every request must be
    // answered (a refusal is lost too). The load still runs until the
    // exit; the requests that come later are not judged: one that lands in
    // the accept queue as the listener closes is reset, whatever the
    // server does (that is what the drain delay is for).
    .routed_for(ROUTED_FOR);
    let (report, stopped) = load.across_stop(&mut service, Stop::grace(Duration::from_secs(10)));
    eprintln!("{report}");

    report.assert_nothing_lost();
    assert_eq!(stopped.exit.code, Some(0), "{report}\n{:?}", stopped.log);
    assert!(!stopped.killed);
    // Out of rotation at once…
    let unready = stopped
        .unready_after
        .expect("/readyz failed after the signal");
    assert!(
        unready < DRAIN_DELAY,
        "/readyz failed {unready:?} after the signal"
    );
    // …while the drain delay kept serving: requests sent after the signal
    // were answered, up to the end of the routing window and beyond (a
    // service that closed its listener at the signal answers none).
    assert!(report.answered_after_signal > 0, "{report}");
    let last = report
        .last_answered
        .and_then(|last| last.after_signal())
        .expect("an answer to a request sent after the signal");
    assert!(last >= ROUTED_FOR, "{report}");
    assert!(stopped.signal_to_exit >= DRAIN_DELAY, "{stopped:?}");
    // Once it exited, nothing answers.
    assert_eq!(report.answered_after_exit, 0, "{report}");
}

/// Sends `GET /` in two halves, 300 ms apart: a request that is always in
/// flight for 300 ms, a slow upload of sorts.
fn slow_get(app: SocketAddr) -> Result<(), Error> {
    let mut stream = TcpStream::connect_timeout(&app, Duration::from_secs(2))?;
    stream.set_read_timeout(Some(Duration::from_secs(2)))?;
    stream.write_all(b"GET / HTTP/1.1\r\nHost: quickstart\r\n")?;
    std::thread::sleep(Duration::from_millis(300));
    stream.write_all(b"Connection: close\r\n\r\n")?;
    let mut answer = Vec::new();
    stream.read_to_end(&mut answer)?;
    if answer.is_empty() {
        // The connection closed without a word: an unexpected end.
        return Err(std::io::Error::from(std::io::ErrorKind::UnexpectedEof).into());
    }
    if answer.starts_with(b"HTTP/1.1 200 ") {
        Ok(())
    } else {
        Err(Error::unexpected_answer(
            String::from_utf8_lossy(&answer).into_owned(),
        ))
    }
}

/// The same measure reports a loss when there is one: with no grace
/// period (`Stop::grace(ZERO)` sends SIGKILL right after SIGTERM) the
/// process dies with requests in flight.
///
/// Deterministic: each request takes at least 300 ms (its head is sent in
/// two halves), and the rate of 20 per second staggers the four clients'
/// first requests 50 ms apart, so when the first answer ends the warm-up
/// the three other clients are in the middle of theirs; the kill cuts them
/// (reset). No request sent after the signal can be answered: it would need
/// 300 ms of a process that lives a few.
#[test]
fn a_kill_under_load_is_reported_as_loss() {
    let (mut service, app) = start();
    let load = Load::new(move || slow_get(app))
        .clients(4)
        .rate(20)
        .warmup(Duration::from_millis(100));
    let (report, stopped) = load.across_stop(&mut service, Stop::grace(Duration::ZERO));
    eprintln!("{report}");

    assert!(stopped.killed, "{stopped:?}");
    assert_eq!(stopped.exit.signal, Some(libc::SIGKILL));
    assert!(report.lost() >= 1, "{report}");
    let first_lost = report.first_lost.as_ref().expect("a first lost request");
    assert_eq!(first_lost.error.kind(), ErrorKind::Reset, "{report}");
    assert!(first_lost.sent.after_signal().is_none(), "{first_lost}");
    assert_eq!(report.answered_after_signal, 0, "{report}");
    // The load went on past the exit; those requests were refused and are
    // not counted as lost.
    assert!(report.after_exit > 0, "{report}");
    assert_eq!(report.answered_after_exit, 0, "{report}");
    assert!(report.refused >= report.after_exit, "{report}");

    let message = report
        .check_nothing_lost()
        .expect_err("the loss is reported");
    assert!(
        message.starts_with(&format!("lost {} of the ", report.lost())),
        "{message}"
    );
    assert!(
        message.contains("the first one: reset, sent at signal - "),
        "{message}"
    );
}
