//! One connection's bytes, as any client could send them, served by the
//! probe server's own connection handling: it must end within its bound
//! after the client's last byte, never panic, and answer only whole,
//! well-formed answers that are never a 500 (`lifecycle_fuzz::answers`);
//! a connection that opens with the HTTP/2 preface is served as gRPC and
//! HTTP over HTTP/2, and must get whole, well-formed frames
//! (`lifecycle_fuzz::frames`).
//!
//! The first byte picks the lifecycle state and the peer, the second how
//! the bytes are sent (in pieces, with pauses, with or without a FIN, read
//! as they come or not until the server closes); the
//! rest is the connection. Seeds: `fuzz/seeds/probe_connection`.

#![no_main]

use libfuzzer_sys::fuzz_target;
use lifecycle_fuzz::{answers, exchange, frames, Sending, PREFACE};

fuzz_target!(|data: &[u8]| {
    let [state, how, bytes @ ..] = data else {
        return;
    };
    let sending = Sending::from_bytes(*state, *how);
    let exchange = exchange(bytes, sending);
    if bytes.starts_with(PREFACE) {
        frames(&exchange.received, !sending.reads);
    } else {
        answers(&exchange.received, !sending.reads);
    }
});
