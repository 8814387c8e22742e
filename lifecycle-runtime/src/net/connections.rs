//! The table of connections accepted through [`TcpListener`], and the
//! connection drain that ends the ones still open at its end.
//!
//! Each connection is one [`Connection`], shared by the stream the
//! application holds and, once the drain has ended it, by the task that
//! reads and discards what the peer still sends. The socket closes when
//! the last of them lets go, and only then does the table forget it: the
//! stop waits for that.
//!
//! [`TcpListener`]: super::TcpListener

use std::collections::HashMap;
use std::io;
use std::net::Shutdown;
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::{Duration, Instant};

use futures_util::task::AtomicWaker;
use socket2::SockRef;
use tokio::sync::Notify;

/// How long an ended connection keeps reading and discarding before it
/// closes: a close with unread bytes sends a reset (on Linux), and a peer
/// that keeps writing (WebSocket pings, HTTP/2 PINGs) always has some in
/// flight. A peer that read our FIN closes within a round trip.
const DISCARD_FOR: Duration = Duration::from_secs(1);

/// Every connection accepted through lifecycle's listeners that has not
/// closed yet.
#[derive(Default)]
pub(crate) struct Connections {
    table: Mutex<Table>,
    /// `table.open.len()`, readable without the lock (probes, scrapes).
    open: AtomicUsize,
    /// Connections the drain ended: `lifecycle_connections_ended_total`.
    ended: AtomicU64,
    /// Notified whenever the table becomes empty.
    all_closed: Notify,
}

#[derive(Default)]
struct Table {
    next_id: u64,
    open: HashMap<u64, Weak<Connection>>,
    /// The connection drain is over: a connection accepted from now on is
    /// ended at once (a server the stop does not reach, still accepting).
    drain_over: bool,
}

impl Connections {
    /// Counts `io` until it closes.
    pub(crate) fn track(self: &Arc<Self>, io: tokio::net::TcpStream) -> Arc<Connection> {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        let id = table.next_id;
        table.next_id += 1;
        let connection = Arc::new(Connection {
            io,
            id,
            opened: Instant::now(),
            ended: AtomicBool::new(false),
            reader: AtomicWaker::new(),
            writer: AtomicWaker::new(),
            table: self.clone(),
        });
        table.open.insert(id, Arc::downgrade(&connection));
        self.open.store(table.open.len(), Ordering::SeqCst);
        let drain_over = table.drain_over;
        drop(table);
        if drain_over {
            self.end_and_discard(connection.clone());
        }
        connection
    }

    fn forget(&self, id: u64) {
        let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
        table.open.remove(&id);
        self.open.store(table.open.len(), Ordering::SeqCst);
        if table.open.is_empty() {
            self.all_closed.notify_waiters();
        }
    }

    /// Connections open now.
    pub(crate) fn open(&self) -> usize {
        self.open.load(Ordering::SeqCst)
    }

    /// Completes when no connection is open.
    pub(crate) async fn closed(&self) {
        loop {
            let notified = self.all_closed.notified();
            tokio::pin!(notified);
            // Registered before the check, so that a close in between
            // is not missed.
            notified.as_mut().enable();
            if self.open() == 0 {
                return;
            }
            notified.await;
        }
    }

    /// The end of the connection drain: ends every connection still open
    /// (see [`Connection::end`]) and leaves a task on the current runtime
    /// to read and discard what each peer still sends, for up to
    /// [`DISCARD_FOR`], before its socket closes. Returns how many it
    /// ended and how long the oldest had been open.
    ///
    /// Connections accepted from then on are ended as they come.
    pub(crate) fn end_all(&self) -> Option<(usize, Duration)> {
        let open: Vec<Arc<Connection>> = {
            let mut table = self.table.lock().unwrap_or_else(|p| p.into_inner());
            table.drain_over = true;
            table.open.values().filter_map(Weak::upgrade).collect()
        };
        let mut ended = 0;
        let mut oldest = Duration::ZERO;
        for connection in open {
            let opened = connection.opened;
            if self.end_and_discard(connection) {
                ended += 1;
                oldest = oldest.max(opened.elapsed());
            }
        }
        (ended > 0).then_some((ended, oldest))
    }

    /// Ends `connection` (false when it was already) and leaves a task on
    /// the current runtime that reads and discards what the peer still
    /// sends, for up to [`DISCARD_FOR`]. The connection then no longer
    /// counts, even if the application still holds its stream (a handler
    /// that waits on something else and never reads it): what the stop
    /// waits for is over, and the socket closes when that stream drops.
    fn end_and_discard(&self, connection: Arc<Connection>) -> bool {
        if !connection.end() {
            return false;
        }
        self.ended.fetch_add(1, Ordering::SeqCst);
        tokio::spawn(crate::call::task(async move {
            let _ = tokio::time::timeout(DISCARD_FOR, connection.discard_until_eof()).await;
            connection.table.forget(connection.id);
        }));
        true
    }
}

#[cfg(any(feature = "metrics", test))]
impl Connections {
    /// Connections the connection drain has ended, in all.
    pub(crate) fn ended(&self) -> u64 {
        self.ended.load(Ordering::SeqCst)
    }
}

/// One accepted connection: the socket, and what ending it needs.
pub(crate) struct Connection {
    pub(crate) io: tokio::net::TcpStream,
    id: u64,
    opened: Instant,
    /// Set by the drain: reads see end-of-stream, writes fail.
    ended: AtomicBool,
    /// The tasks last blocked reading or writing through the stream: the
    /// drain wakes them, so that a task idle on the stream sees the end.
    pub(crate) reader: AtomicWaker,
    pub(crate) writer: AtomicWaker,
    table: Arc<Connections>,
}

impl Connection {
    pub(crate) fn is_ended(&self) -> bool {
        self.ended.load(Ordering::SeqCst)
    }

    /// Ends the connection at the socket: the write side is shut down, so
    /// the peer gets a FIN; the tasks blocked on the stream wake and find
    /// reads at end-of-stream and writes failing. Returns false when it
    /// was ended already.
    fn end(&self) -> bool {
        if self.ended.swap(true, Ordering::SeqCst) {
            return false;
        }
        // Through the socket the connection owns, alive as long as `self`:
        // nothing here can touch a descriptor its owner has closed.
        if let Err(error) = SockRef::from(&self.io).shutdown(Shutdown::Write) {
            // Already gone (the peer reset it): nothing left to end.
            tracing::debug!("ending a connection: {error}");
        }
        self.reader.wake();
        self.writer.wake();
        true
    }

    /// Reads and discards until the peer's FIN (or an error). A small
    /// buffer: pings and the like are small, and ten thousand WebSockets
    /// ended at once hold one each.
    async fn discard_until_eof(&self) {
        let mut scratch = [0u8; 256];
        loop {
            if self.io.readable().await.is_err() {
                return;
            }
            match self.io.try_read(&mut scratch) {
                Ok(0) => return,
                Ok(_) => {}
                Err(error) if error.kind() == io::ErrorKind::WouldBlock => {}
                Err(_) => return,
            }
        }
    }
}

impl Drop for Connection {
    fn drop(&mut self) {
        self.table.forget(self.id);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};

    use tokio::io::{AsyncReadExt, AsyncWriteExt};

    use super::*;
    use crate::net::TcpStream;

    /// A connection through a fresh table: the client's end (blocking
    /// std) and the server's tracked stream.
    async fn connected(table: &Arc<Connections>) -> (std::net::TcpStream, TcpStream) {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let client = tokio::task::spawn_blocking(move || std::net::TcpStream::connect(addr));
        let (io, _) = listener.accept().await.unwrap();
        let client = client.await.unwrap().unwrap();
        (client, TcpStream::new(table.track(io)))
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn connections_are_counted_until_they_close() {
        let table = Arc::new(Connections::default());
        let (_client, server) = connected(&table).await;
        let (_client2, server2) = connected(&table).await;
        assert_eq!(table.open(), 2);
        drop(server);
        assert_eq!(table.open(), 1);
        drop(server2);
        tokio::time::timeout(Duration::from_secs(5), table.closed())
            .await
            .expect("closed() completes once the last one is dropped");
        assert_eq!(table.ended(), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ended_connection_its_owner_never_touches_stops_counting_after_the_discard() {
        let table = Arc::new(Connections::default());
        // Held, never read nor written, never dropped: as a handler that
        // waits on something else keeps its stream.
        let (mut client, _held) = connected(&table).await;
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        table.end_all().expect("one connection ended");
        tokio::time::timeout(DISCARD_FOR + Duration::from_secs(4), table.closed())
            .await
            .expect("no longer counted once the discard is over");
        let read = tokio::task::spawn_blocking(move || client.read(&mut [0; 16]))
            .await
            .unwrap();
        assert_eq!(read.expect("the FIN, not a reset"), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_connection_accepted_after_the_drain_is_ended_at_once() {
        let table = Arc::new(Connections::default());
        assert_eq!(table.end_all(), None);
        let (mut client, server) = connected(&table).await;
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let mut server = server;
        let mut buf = [0u8; 16];
        let read = tokio::time::timeout(Duration::from_secs(5), server.read(&mut buf))
            .await
            .expect("ended at once: end-of-stream, not a wait");
        assert_eq!(read.unwrap(), 0);
        assert_eq!(table.ended(), 1);
        let read = tokio::task::spawn_blocking(move || client.read(&mut [0; 16]))
            .await
            .unwrap();
        assert_eq!(read.expect("the FIN"), 0);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn an_ended_connection_wakes_its_reader_fails_writes_and_closes_in_order() {
        let table = Arc::new(Connections::default());
        let (mut client, server) = connected(&table).await;
        client
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let (mut reading, mut writing) = tokio::io::split(server);
        // A task idle on the stream, as a WebSocket handler waiting for the
        // next message is.
        let idle = tokio::spawn(async move {
            let mut buf = [0u8; 16];
            reading.read(&mut buf).await
        });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!idle.is_finished(), "nothing to read yet");

        let (ended, _oldest) = table.end_all().expect("one connection ended");
        assert_eq!(ended, 1);
        assert_eq!(table.ended(), 1);
        let read = tokio::time::timeout(Duration::from_secs(5), idle)
            .await
            .expect("the idle reader wakes")
            .unwrap();
        assert_eq!(read.unwrap(), 0, "reads see end-of-stream");
        let error = writing.write_all(b"late").await.unwrap_err();
        assert_eq!(error.kind(), io::ErrorKind::BrokenPipe);

        // A peer that keeps writing through the drain, as one sending
        // pings does: its bytes arrive after the end, and are discarded.
        let mut writer = client.try_clone().unwrap();
        let pings = std::thread::spawn(move || -> io::Result<()> {
            for _ in 0..20 {
                writer.write_all(b"ping")?;
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        });

        // The application lets go at once; the peer's pings still come.
        drop(writing);
        pings
            .join()
            .unwrap()
            .expect("the peer's writes meet no reset");
        // The peer reads our FIN, never a reset: a close with its pings
        // unread would have sent one, and the read would fail.
        let mut rest = Vec::new();
        let read = tokio::task::spawn_blocking(move || client.read_to_end(&mut rest))
            .await
            .unwrap();
        assert_eq!(read.expect("an orderly end, not a reset"), 0);

        tokio::time::timeout(Duration::from_secs(5), table.closed())
            .await
            .expect("closed once discarded and dropped");
        assert_eq!(table.end_all(), None, "nothing left to end");
    }
}
