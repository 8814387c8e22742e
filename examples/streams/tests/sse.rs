//! An SSE client connected across a SIGTERM: its stream ends properly (the
//! final chunk, then the connection's orderly close) once the drain delay
//! is over, the process exits 0 at once rather than after the connection
//! drain, and the messages posted before the signal are in the journal.
//!
//! The client is raw HTTP/1.1 over TCP, so that the test sees the bytes: an
//! HTTP client library would hide whether the body ended with its final
//! chunk or was cut.

// The Linux harness's fixtures and clients (lifecycle-tests).
#![cfg(target_os = "linux")]

mod support;

use std::io::{self, BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::Duration;

use support::{assert_quick_clean_stop, Streams, CONNECTION_DRAIN};

/// How long a read may wait: past the connection drain, so that a stream
/// that did not end is seen cut by lifecycle, not timed out here.
const READ_TIMEOUT: Duration = Duration::from_secs(15);

/// An `EventSource` of sorts: `GET /events`, the chunked body decoded and
/// split into events.
struct SseClient {
    connection: BufReader<TcpStream>,
    /// Decoded body not yet split into events.
    text: String,
}

/// How the body went on: an event's data, or its end.
#[derive(Debug, PartialEq)]
enum Next {
    Data(String),
    /// The final chunk (`0\r\n\r\n`): the server ended the response.
    End,
}

impl SseClient {
    /// Connects and reads the answer's head: once it is in, the handler
    /// has subscribed to the feed.
    fn connect(app: SocketAddr) -> SseClient {
        let mut stream = TcpStream::connect_timeout(&app, READ_TIMEOUT).unwrap();
        stream.set_read_timeout(Some(READ_TIMEOUT)).unwrap();
        stream
            .write_all(
                b"GET /events HTTP/1.1\r\nHost: streams\r\nAccept: text/event-stream\r\n\r\n",
            )
            .unwrap();
        let mut connection = BufReader::new(stream);
        let mut head = Vec::new();
        loop {
            let line = read_line(&mut connection).unwrap();
            if line.is_empty() {
                break;
            }
            head.push(line.to_ascii_lowercase());
        }
        assert_eq!(head[0], "http/1.1 200 ok", "{head:?}");
        for header in [
            "content-type: text/event-stream",
            "transfer-encoding: chunked",
        ] {
            assert!(head.contains(&header.to_owned()), "{header:?} in {head:?}");
        }
        SseClient {
            connection,
            text: String::new(),
        }
    }

    /// The next event that carries data, or the end of the body. Events
    /// without data (the `retry:` hint, keep-alive comments) are skipped.
    fn next(&mut self) -> io::Result<Next> {
        loop {
            while let Some(end) = self.text.find("\n\n") {
                let event: String = self.text.drain(..end + 2).collect();
                let data: Vec<&str> = event
                    .lines()
                    .filter_map(|line| line.strip_prefix("data: "))
                    .collect();
                if !data.is_empty() {
                    return Ok(Next::Data(data.join("\n")));
                }
            }
            match self.chunk()? {
                Some(chunk) => self.text.push_str(&String::from_utf8_lossy(&chunk)),
                None => {
                    assert!(self.text.is_empty(), "a partial event {:?}", self.text);
                    return Ok(Next::End);
                }
            }
        }
    }

    /// One chunk of the body; `None` for the final one.
    fn chunk(&mut self) -> io::Result<Option<Vec<u8>>> {
        let size_line = read_line(&mut self.connection)?;
        let size = size_line.split(';').next().unwrap_or_default();
        let size = usize::from_str_radix(size.trim(), 16).map_err(|_| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                format!("a chunk size {size_line:?}"),
            )
        })?;
        if size == 0 {
            // No trailers: the empty line that ends the body.
            let last = read_line(&mut self.connection)?;
            if !last.is_empty() {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("a trailer {last:?}"),
                ));
            }
            return Ok(None);
        }
        let mut chunk = vec![0; size + 2];
        self.connection.read_exact(&mut chunk)?;
        if !chunk.ends_with(b"\r\n") {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                "a chunk without its CRLF",
            ));
        }
        chunk.truncate(size);
        Ok(Some(chunk))
    }

    /// Once the body has ended: waits for the server to close the
    /// connection, and says how it did.
    fn closed(mut self) -> io::Result<()> {
        let mut rest = Vec::new();
        self.connection.read_to_end(&mut rest)?;
        if !rest.is_empty() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("bytes after the body: {:?}", String::from_utf8_lossy(&rest)),
            ));
        }
        Ok(())
    }
}

/// One line, without its CRLF; an unexpected end of file if the
/// connection ends before it does.
fn read_line(connection: &mut BufReader<TcpStream>) -> io::Result<String> {
    let mut line = String::new();
    if connection.read_line(&mut line)? == 0 || !line.ends_with("\r\n") {
        return Err(io::Error::new(
            io::ErrorKind::UnexpectedEof,
            format!("the connection ended in the middle of the body after {line:?}"),
        ));
    }
    line.truncate(line.len() - 2);
    Ok(line)
}

#[test]
fn an_sse_stream_ends_with_its_final_chunk_and_the_stop_is_quick() {
    let mut streams = Streams::start();
    let mut client = SseClient::connect(streams.app);

    let messages = streams.post_messages(5);
    for message in &messages {
        assert_eq!(client.next().unwrap(), Next::Data(message.clone()));
    }
    // Write-behind: nothing is in the journal before the stop.
    assert_eq!(streams.journal.lines(), Vec::<String>::new());

    // The client goes on reading through the stop, as an EventSource does.
    let reader = std::thread::spawn(move || -> io::Result<()> {
        match client.next()? {
            Next::End => client.closed(),
            Next::Data(data) => Err(io::Error::other(format!(
                "an event after the last: {data:?}"
            ))),
        }
    });
    let stopped = streams.stop();
    let seen = reader.join().unwrap();

    assert!(
        seen.is_ok(),
        "the stream did not end cleanly: {seen:?} (the connection drain is {CONNECTION_DRAIN:?})\n{}",
        stopped.log.join("\n")
    );
    assert_quick_clean_stop(&stopped, messages.len());
    assert_eq!(streams.journal.lines(), messages);
}
