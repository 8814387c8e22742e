use std::io;
use std::sync::atomic::{AtomicU64, Ordering};

use super::request::Record;
use super::*;
use crate::error::ErrorKind;

fn record(sent: Instant, outcome: Option<Result<(), Error>>) -> Record {
    Record {
        sent,
        took: Duration::from_millis(1),
        outcome,
    }
}

#[test]
fn the_report_judges_each_request_by_its_phase() {
    let signalled = Instant::now() + Duration::from_secs(1);
    let ms = |offset: i64| {
        if offset < 0 {
            signalled - Duration::from_millis(offset.unsigned_abs())
        } else {
            signalled + Duration::from_millis(offset.unsigned_abs())
        }
    };
    let records = [
        record(ms(-100), Some(Ok(()))),
        record(
            ms(-50),
            Some(Err(Error::new(ErrorKind::Refused, "before the signal"))),
        ),
        record(ms(10), Some(Ok(()))),
        record(
            ms(100),
            Some(Err(Error::new(ErrorKind::Refused, "closed early"))),
        ),
        record(ms(200), Some(Ok(()))),
        record(
            ms(300),
            Some(Err(Error::new(ErrorKind::Refused, "listener closed"))),
        ),
        record(
            ms(301),
            Some(Err(Error::new(ErrorKind::Reset, "in the close"))),
        ),
        record(
            ms(350),
            Some(Err(Error::new(ErrorKind::TimedOut, "timed out"))),
        ),
        record(ms(400), None),
        record(ms(600), Some(Err(Error::new(ErrorKind::Refused, "gone")))),
        record(ms(601), Some(Ok(()))),
    ];
    let moments = |routed: Option<i64>| Moments {
        signalled,
        exited: ms(500),
        routed_until: routed.map(ms),
    };
    let strict = LoadReport::new(&records, moments(None), Vec::new());
    assert_eq!(strict.sent, 11);
    assert_eq!(
        (
            strict.answered,
            strict.refused,
            strict.reset,
            strict.failed,
            strict.unfinished
        ),
        (4, 4, 1, 1, 1)
    );
    assert_eq!(strict.sent_before_signal, 2);
    assert_eq!(strict.sent_after_signal, 7);
    assert_eq!(strict.answered_after_signal, 2);
    assert_eq!((strict.after_exit, strict.answered_after_exit), (2, 1));
    assert_eq!(strict.unrouted, 0);
    // Refused before the signal, reset, failed, unfinished; not the
    // refusals after the signal nor anything after the exit.
    assert_eq!((strict.lost(), strict.judged), (4, 9));
    let first_lost = strict.first_lost.as_ref().unwrap();
    assert_eq!(first_lost.error.kind(), ErrorKind::Refused);
    assert_eq!(
        first_lost.sent,
        SignalOffset::Before(Duration::from_millis(50))
    );
    assert_eq!(strict.first_failure, strict.first_lost);
    assert_eq!(
        strict.last_answered,
        Some(SignalOffset::After(Duration::from_millis(601)))
    );
    assert_eq!(strict.signal_to_exit, Duration::from_millis(500));

    // A load balancer that stopped routing 250 ms after the signal:
    // the refusal within the window is lost, the later failures are
    // not judged.
    let routed = LoadReport::new(&records, moments(Some(250)), Vec::new());
    assert_eq!(routed.unrouted, 4);
    assert_eq!((routed.lost(), routed.judged), (2, 5));
    assert_eq!(routed.first_failure, strict.first_failure);

    // Routed to for longer than the service lived: the refusal after
    // the exit is lost as well, every failure is.
    let outlived = LoadReport::new(&records, moments(Some(650)), Vec::new());
    assert_eq!((outlived.unrouted, outlived.after_exit), (0, 2));
    assert_eq!((outlived.lost(), outlived.judged), (7, 11));
    let message = outlived.check_nothing_lost().unwrap_err();
    assert!(
        message.starts_with(
            "lost 7 of the 11 requests judged (those sent within 650 ms of the signal, or \
             reset while the service still answered)"
        ),
        "{message}"
    );
}

#[test]
fn a_reset_after_the_routing_window_is_lost_while_the_service_still_answered() {
    let signalled = Instant::now() + Duration::from_secs(1);
    let ms = |offset: u64| signalled + Duration::from_millis(offset);
    let reset = || {
        Some(Err(Error::new(
            ErrorKind::Reset,
            "connection reset by peer",
        )))
    };
    let moments = Moments {
        signalled,
        exited: ms(500),
        routed_until: Some(ms(100)),
    };
    let report = |records: &[Record]| LoadReport::new(records, moments, Vec::new());
    let before = record(signalled - Duration::from_millis(10), Some(Ok(())));
    // Reset at 200 ms, and a request sent at 300 ms answered: the
    // service was serving, it dropped the first.
    let dropped = report(&[
        before.clone(),
        record(ms(200), reset()),
        record(ms(300), Some(Ok(()))),
    ]);
    assert_eq!(
        (dropped.lost(), dropped.judged, dropped.unrouted),
        (1, 2, 1)
    );
    let message = dropped.check_nothing_lost().unwrap_err();
    assert!(
        message.starts_with(
            "lost 1 of the 2 requests judged (those sent within 100 ms of the signal, or \
             reset while the service still answered); the first one: reset, sent at signal + 200.0 ms"
        ),
        "{message}"
    );
    // Reset after the last answer: the listener's close, not judged.
    let closed = report(&[
        before,
        record(ms(200), Some(Ok(()))),
        record(ms(300), reset()),
    ]);
    assert_eq!((closed.lost(), closed.judged, closed.unrouted), (0, 1, 2));
    closed.check_nothing_lost().unwrap();
}

#[test]
fn assert_nothing_lost_names_the_counts_and_the_first_loss() {
    let signalled = Instant::now();
    let moments = Moments {
        signalled,
        exited: signalled + Duration::from_millis(500),
        routed_until: None,
    };
    let lossy = LoadReport::new(
        &[
            record(signalled - Duration::from_millis(5), Some(Ok(()))),
            record(
                signalled + Duration::from_millis(20),
                Some(Err(Error::new(
                    ErrorKind::Reset,
                    "connection reset by peer",
                ))),
            ),
        ],
        moments,
        vec!["a log line".into()],
    );
    let message = lossy.check_nothing_lost().unwrap_err();
    assert!(message.starts_with("lost 1 of the 2 requests judged (those sent before the exit); the first one: reset, sent at signal + 20.0 ms"), "{message}");
    assert!(message.contains("connection reset by peer"), "{message}");
    assert!(message.contains("Load::routed_for"), "{message}");
    assert!(message.ends_with("\n  a log line"), "{message}");

    let idle = LoadReport::new(
        &[record(signalled + Duration::from_millis(5), Some(Ok(())))],
        moments,
        Vec::new(),
    );
    let message = idle.check_nothing_lost().unwrap_err();
    assert!(message.contains("proved nothing"), "{message}");

    let fine = LoadReport::new(
        &[
            record(signalled - Duration::from_millis(5), Some(Ok(()))),
            record(signalled + Duration::from_millis(5), Some(Ok(()))),
            record(
                signalled + Duration::from_millis(300),
                Some(Err(Error::new(ErrorKind::Refused, "closed"))),
            ),
            record(
                signalled + Duration::from_millis(700),
                Some(Err(Error::new(ErrorKind::Refused, "gone"))),
            ),
        ],
        moments,
        Vec::new(),
    );
    fine.assert_nothing_lost();
    assert_eq!(fine.answered_after_signal, 1);

    let elsewhere = LoadReport::new(
        &[
            record(signalled - Duration::from_millis(5), Some(Ok(()))),
            record(signalled + Duration::from_millis(600), Some(Ok(()))),
        ],
        moments,
        Vec::new(),
    );
    let message = elsewhere.check_nothing_lost().unwrap_err();
    assert!(
        message.contains("does not talk to the service"),
        "{message}"
    );
}

#[test]
#[should_panic(expected = "lost 1 of the 1 requests judged (those sent before the exit)")]
fn assert_nothing_lost_panics_on_a_loss() {
    let signalled = Instant::now();
    let report = LoadReport::new(
        &[record(
            signalled,
            Some(Err(Error::new(ErrorKind::TimedOut, "timed out"))),
        )],
        Moments {
            signalled,
            exited: signalled + Duration::from_millis(1),
            routed_until: None,
        },
        Vec::new(),
    );
    report.assert_nothing_lost();
}

#[test]
fn a_rate_spaces_the_requests_and_the_load_stops_when_told() {
    let count = Arc::new(AtomicU64::new(0));
    let counted = count.clone();
    let load = Load::new(move || {
        counted.fetch_add(1, Ordering::SeqCst);
        Ok::<_, Error>(())
    })
    .clients(2)
    .rate(100);
    let running = Running::start(&load.request, load.clients, load.rate);
    std::thread::sleep(Duration::from_millis(300));
    let records = running.finish(Duration::from_secs(5));
    let sent = count.load(Ordering::SeqCst);
    // 30 turns in 300 ms; a loaded machine may miss some, never more.
    assert!((5..=32).contains(&sent), "{sent} requests");
    assert_eq!(records.len() as u64, sent);
    let later = count.load(Ordering::SeqCst);
    std::thread::sleep(Duration::from_millis(50));
    assert_eq!(count.load(Ordering::SeqCst), later, "the load stopped");
}

#[test]
fn a_request_that_hangs_is_left_behind_as_unfinished() {
    let load = Load::new(|| {
        std::thread::sleep(Duration::from_secs(3));
        Ok::<_, io::Error>(())
    })
    .clients(1);
    let running = Running::start(&load.request, load.clients, load.rate);
    std::thread::sleep(Duration::from_millis(20));
    let started = Instant::now();
    let records = running.finish(Duration::from_millis(50));
    assert!(started.elapsed() < Duration::from_secs(1));
    assert_eq!(records.len(), 1);
    assert!(records[0].outcome.is_none());
}
