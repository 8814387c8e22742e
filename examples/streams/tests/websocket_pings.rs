//! A WebSocket client that keeps writing (a ping every few milliseconds)
//! through the drain delay and the close: it still reads an orderly end,
//! the Close frame and then the end of the connection, never a reset.
//! Linux answers bytes that reach a closed socket, or that it closed
//! unread, with a reset: a handler that dropped the connection right after
//! its Close frame, without reading to the client's, would cost this
//! client an `ECONNRESET`.

// The Linux harness's fixtures and clients (lifecycle-tests); Linux's resets.
#![cfg(target_os = "linux")]

mod support;

use std::time::{Duration, Instant};

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error, Message};

use support::{
    assert_quick_clean_stop, connect_websocket, read_to_end, Streams, DRAIN_DELAY,
    WEBSOCKET_READ_TIMEOUT,
};

const PING_EVERY: Duration = Duration::from_millis(2);

#[test]
fn a_client_pinging_through_the_stop_reads_an_orderly_end_never_a_reset() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut streams = Streams::start();
    let messages = streams.post_messages(1);

    let (socket, socket_log) = runtime.block_on(connect_websocket(streams.app));
    let (mut sink, stream) = socket.split();
    let reader = runtime.spawn(read_to_end(stream));
    // Pings until tungstenite refuses to send: once the server's Close
    // frame is in, the client may send nothing but its own.
    let pinger = runtime.spawn(async move {
        let mut sent = 0_usize;
        loop {
            if let Err(error) = sink.send(Message::Ping("ping".into())).await {
                return (sent, error);
            }
            sent += 1;
            tokio::time::sleep(PING_EVERY).await;
        }
    });
    let signalled = Instant::now();
    let stopped = streams.stop();
    let end = runtime.block_on(reader).unwrap();
    let (pings, refusal) = runtime
        .block_on(async { tokio::time::timeout(WEBSOCKET_READ_TIMEOUT, pinger).await })
        .expect("the pinger stopped once the connection closed")
        .unwrap();

    let log = stopped.log.join("\n");
    // The pings went on, answered, through the drain delay.
    let pongs_after_signal = end.pongs.iter().filter(|at| **at > signalled).count();
    assert!(
        pongs_after_signal as u128 >= DRAIN_DELAY.as_millis() / 10,
        "{pongs_after_signal} pong(s) after the signal, {pings} ping(s) in all"
    );
    let close = end
        .close
        .as_ref()
        .unwrap_or_else(|| panic!("no Close frame: {end:?}\n{log}"));
    assert_eq!(close.code, CloseCode::Away, "{end:?}");
    // The orderly end: the closing handshake, then the server's FIN, and
    // no reset on the socket (tungstenite would report one after the
    // Close frame as the end).
    assert_eq!(end.error, None, "{end:?}\n{log}");
    let socket = socket_log.events();
    assert!(socket.errors.is_empty(), "{socket:?}\n{log}");
    assert!(socket.end_of_stream, "{socket:?}");
    // The last ping was refused by the client's own library, after the
    // Close frame, never failed on the socket.
    assert!(!matches!(refusal, Error::Io(_)), "{refusal:?}");
    assert_quick_clean_stop(&stopped, messages.len());
    assert_eq!(streams.journal.lines(), messages);
}
