//! Connections the graceful stop waits for, and ends when they outlive
//! it.
//!
//! A server's graceful stop waits for its connections, and a long-lived
//! one (an SSE stream, a WebSocket, a gRPC server stream) never ends by
//! itself: `main` would never return, the deadline would pass and the
//! `on_shutdown` hooks would lose their time. Connections accepted
//! through [`TcpListener`] are counted until they close; those still open
//! `connection_drain_ms` after [`shutdown_signal`](crate::shutdown_signal)
//! completes are ended at the socket, in an orderly way, so that the
//! server's wait completes and the stop goes on. Streams that cooperate
//! end sooner and cleaner with [`until_shutdown`](crate::until_shutdown).

#[cfg(feature = "axum")]
mod axum;
mod connections;
mod listener;
mod stream;
#[cfg(feature = "tonic")]
mod tonic;

#[cfg(feature = "axum")]
pub use self::axum::PeerAddr;
pub(crate) use connections::Connections;
pub(crate) use listener::accept_retrying;
pub use listener::{Incoming, TcpListener};
pub use stream::TcpStream;
