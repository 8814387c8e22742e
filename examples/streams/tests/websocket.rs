//! A WebSocket connected across a SIGTERM: once the drain delay is over the
//! handler sends a Close frame with code 1001 (Going Away), the closing
//! handshake and the connection's orderly close follow, the process exits
//! 0 at once rather than after the connection drain, and the messages
//! posted before the signal are in the journal.

// The Linux harness's fixtures and clients (lifecycle-tests).
#![cfg(target_os = "linux")]

mod support;

use futures_util::{SinkExt, StreamExt};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::Message;

use support::{
    assert_quick_clean_stop, connect_websocket, read_to_end, Streams, WEBSOCKET_READ_TIMEOUT,
};

#[test]
fn a_websocket_gets_close_1001_going_away_and_the_stop_is_quick() {
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let mut streams = Streams::start();
    let messages = streams.post_messages(2);

    let (mut socket, socket_log) = runtime.block_on(connect_websocket(streams.app));
    runtime.block_on(async {
        socket.send(Message::text("echo me")).await.unwrap();
        let echoed = tokio::time::timeout(WEBSOCKET_READ_TIMEOUT, socket.next()).await;
        assert!(
            matches!(&echoed, Ok(Some(Ok(Message::Text(text)))) if text.as_str() == "echo me"),
            "{echoed:?}"
        );
    });
    // The client goes on reading through the stop, on the runtime's
    // threads, while this one sends the signal.
    let reader = runtime.spawn(read_to_end(socket));
    let stopped = streams.stop();
    let end = runtime.block_on(reader).unwrap();

    let log = stopped.log.join("\n");
    let close = end
        .close
        .as_ref()
        .unwrap_or_else(|| panic!("no Close frame: {end:?}\n{log}"));
    assert_eq!(close.code, CloseCode::Away, "{end:?}");
    assert!(close.reason.contains("shutting down"), "{end:?}");
    // The closing handshake, then the connection's orderly close: no
    // error (a close without the handshake), nothing else, and on the
    // socket the server's FIN, no reset.
    assert_eq!(end.error, None, "{end:?}\n{log}");
    assert!(end.others.is_empty(), "{end:?}");
    let socket = socket_log.events();
    assert!(socket.errors.is_empty(), "{socket:?}\n{log}");
    assert!(socket.end_of_stream, "{socket:?}");
    assert_quick_clean_stop(&stopped, messages.len());
    assert_eq!(streams.journal.lines(), messages);
}
