//! A network partition between a service and a server on this host (Redis,
//! in the examples' tests): the outage a killed server cannot play. A
//! killed server refuses new connections and resets the open ones, which
//! a client notices at once; a partition, a lost node or a hung server
//! says nothing, and only a client's own time-outs notice it.
//!
//! [`Partition`] is a TCP relay in front of the server: the service is
//! given the relay's address instead of the server's, and the test cuts
//! and restores the path between them.
//!
//! ```ignore
//! // examples/NAME/tests/outage.rs
//! use lifecycle_tests::partition::Partition;
//! use lifecycle_tests::redis::RedisServer;
//!
//! let redis = RedisServer::start();
//! let partition = Partition::new(redis.port());
//! let service = builder.env("REDIS_URL", partition.redis_url()).start().unwrap();
//! partition.cut(); // Redis falls silent: readiness fails on a time-out
//! partition.restore(); // Redis answers new connections again
//! ```

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// A TCP relay from a free port of its own on 127.0.0.1 to a port on
/// 127.0.0.1, that plays a network partition:
///
/// - [`cut`](Partition::cut): nothing passes either way any more on the
///   connections it relays, which stay open, never closed or reset: what
///   each end sends is dropped, as packets are on a lost path. A
///   connection made while cut completes its TCP handshake and is then
///   never answered (nor relayed).
/// - [`restore`](Partition::restore): new connections are relayed again.
///   Those that saw the cut (relayed before it, or made during it) stay
///   open and dead, as a connection to a lost or replaced node does until
///   TCP gives up on it many minutes later: a client must notice with its
///   own time-outs and connect anew, or stay cut off.
///
/// When an end closes a relayed connection, the relay closes the other
/// end's side (so that a server does not keep a client that left, a
/// blocked command of it in particular). Dropping the relay stops it and
/// closes every connection.
pub struct Partition {
    addr: SocketAddr,
    state: Arc<State>,
}

#[derive(Default)]
struct State {
    /// Whether new connections are held instead of relayed.
    cut: AtomicBool,
    /// How many cuts there were: a connection relayed before the last one
    /// is dead.
    cuts: AtomicU64,
    stopped: AtomicBool,
    /// The connections accepted while cut, held open unanswered.
    held: Mutex<Vec<TcpStream>>,
}

impl Partition {
    /// Relays 127.0.0.1:`upstream` on a free port of its own.
    pub fn new(upstream: u16) -> Partition {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(State::default());
        let relay = state.clone();
        std::thread::spawn(move || {
            for client in listener.incoming() {
                if relay.stopped.load(SeqCst) {
                    return;
                }
                let Ok(client) = client else { continue };
                if relay.cut.load(SeqCst) {
                    relay.held.lock().unwrap().push(client);
                    continue;
                }
                let Ok(server) = TcpStream::connect(("127.0.0.1", upstream)) else {
                    continue; // dropped: the client sees the connection close
                };
                let born = relay.cuts.load(SeqCst);
                for (from, to) in [
                    (client.try_clone().unwrap(), server.try_clone().unwrap()),
                    (server, client),
                ] {
                    let relay = relay.clone();
                    std::thread::spawn(move || pump(from, to, born, &relay));
                }
            }
        });
        Partition { addr, state }
    }

    /// The relay's address, to give the service instead of the server's.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// `redis://ADDR` for the relay's address, for `REDIS_URL`.
    pub fn redis_url(&self) -> String {
        format!("redis://{}", self.addr)
    }

    /// From now on nothing passes, either way, on any connection.
    pub fn cut(&self) {
        self.state.cuts.fetch_add(1, SeqCst);
        self.state.cut.store(true, SeqCst);
    }

    /// New connections pass again; those that saw the cut stay dead.
    pub fn restore(&self) {
        self.state.cut.store(false, SeqCst);
    }
}

/// Copies `from` to `to` until either closes or the relay stops; once the
/// relay was cut after this connection was made, reads and drops instead,
/// so that the sender never learns.
fn pump(mut from: TcpStream, mut to: TcpStream, born: u64, relay: &State) {
    // A read time-out, only to notice that the relay was dropped.
    let _ = from.set_read_timeout(Some(Duration::from_millis(100)));
    let mut buffer = [0u8; 16 * 1024];
    while !relay.stopped.load(SeqCst) {
        match from.read(&mut buffer) {
            Ok(0) => break,
            Ok(read) => {
                let dead = relay.cuts.load(SeqCst) > born;
                if !dead && to.write_all(&buffer[..read]).is_err() {
                    break;
                }
            }
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            Err(_) => break,
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

impl Drop for Partition {
    fn drop(&mut self) {
        self.state.stopped.store(true, SeqCst);
        self.state.held.lock().unwrap().clear();
        // Wakes the accept loop so that it sees the stop.
        let _ = TcpStream::connect(self.addr);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A server that echoes what each connection sends.
    fn echo_server() -> u16 {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = listener.local_addr().unwrap().port();
        std::thread::spawn(move || {
            for stream in listener.incoming() {
                let Ok(mut stream) = stream else { continue };
                std::thread::spawn(move || {
                    let mut writer = stream.try_clone().unwrap();
                    let _ = io::copy(&mut stream, &mut writer);
                });
            }
        });
        port
    }

    fn connect(partition: &Partition) -> TcpStream {
        let stream = TcpStream::connect(partition.addr()).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(300)))
            .unwrap();
        stream
    }

    /// Sends `message` and reads what comes back.
    fn echo(stream: &mut TcpStream, message: &str) -> io::Result<String> {
        stream.write_all(message.as_bytes())?;
        let mut buffer = vec![0; message.len()];
        stream.read_exact(&mut buffer)?;
        Ok(String::from_utf8(buffer).unwrap())
    }

    /// Silence: a read that times out, neither an end of file nor a reset.
    #[track_caller]
    fn assert_silent(stream: &mut TcpStream, message: &str) {
        match echo(stream, message) {
            Err(e)
                if matches!(
                    e.kind(),
                    io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                ) => {}
            other => panic!("{message:?}: not silent: {other:?}"),
        }
    }

    #[test]
    fn a_cut_silences_every_connection_and_a_restore_only_new_ones_pass() {
        let partition = Partition::new(echo_server());
        assert!(partition.redis_url().starts_with("redis://127.0.0.1:"));
        let mut before = connect(&partition);
        assert_eq!(echo(&mut before, "a").unwrap(), "a");

        partition.cut();
        assert_silent(&mut before, "b");
        // Accepted, then never answered.
        let mut during = connect(&partition);
        assert_silent(&mut during, "c");

        partition.restore();
        let mut after = connect(&partition);
        assert_eq!(echo(&mut after, "d").unwrap(), "d");
        // What saw the cut stays dead, and open.
        assert_silent(&mut before, "e");
        assert_silent(&mut during, "f");
        assert_eq!(echo(&mut after, "g").unwrap(), "g");
    }
}
