//! A probe server that misbehaving clients cannot break: oversized or
//! garbage requests, bodies, keep-alive and `Connection: close`, over raw
//! TCP.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use lifecycle_testing::{Endpoint, Service};
use lifecycle_tests::{fixture, raw_exchange, status_line};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const WAIT: Duration = Duration::from_secs(5);

fn running_testbed() -> Service {
    fixture(TESTBED).start().unwrap()
}

#[test]
fn an_oversized_header_block_is_refused_and_the_server_keeps_serving() {
    let service = running_testbed();
    let huge = "x".repeat(64 * 1024);
    let request = format!("GET /livez HTTP/1.1\r\nHost: probe\r\nX-Huge: {huge}\r\n\r\n");
    let answer = raw_exchange(service.probe_addr(), request.as_bytes(), WAIT);
    assert!(
        answer.is_empty() || status_line(&answer).starts_with("HTTP/1.1 431"),
        "{}",
        status_line(&answer)
    );

    let mut many = String::from("GET /livez HTTP/1.1\r\nHost: probe\r\n");
    for i in 0..200 {
        many.push_str(&format!("X-Header-{i}: v\r\n"));
    }
    many.push_str("\r\n");
    let answer = raw_exchange(service.probe_addr(), many.as_bytes(), WAIT);
    assert!(
        answer.is_empty() || status_line(&answer).starts_with("HTTP/1.1 431"),
        "{}",
        status_line(&answer)
    );
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
}

#[test]
fn garbage_gets_400_or_a_closed_connection() {
    let service = running_testbed();
    for garbage in [
        &b"\x00\x01\x02\x03 not http at all\r\n\r\n"[..],
        &b"GET /livez HTTP/9.9\r\n\r\n"[..],
        &b"GET\r\n\r\n"[..],
        &b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03"[..], // a TLS ClientHello
    ] {
        let answer = raw_exchange(service.probe_addr(), garbage, WAIT);
        assert!(
            answer.is_empty() || status_line(&answer).starts_with("HTTP/1.1 400"),
            "{garbage:?}: {}",
            status_line(&answer)
        );
    }
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
}

#[test]
fn a_request_body_is_not_buffered() {
    let service = running_testbed();
    // Announces 100 MB and sends 10 bytes: the answer must not wait for
    // the rest.
    let mut stream = TcpStream::connect(service.probe_addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    stream
        .write_all(
            b"GET /livez HTTP/1.1\r\nHost: probe\r\nContent-Length: 100000000\r\n\r\n0123456789",
        )
        .unwrap();
    let mut reader = BufReader::new(stream);
    let mut first = String::new();
    reader.read_line(&mut first).unwrap();
    assert_eq!(first.trim_end(), "HTTP/1.1 200 OK");

    let answer = raw_exchange(
        service.probe_addr(),
        b"POST /readyz HTTP/1.1\r\nHost: probe\r\nContent-Length: 5\r\n\r\nhello",
        WAIT,
    );
    assert_eq!(status_line(&answer), "HTTP/1.1 405 Method Not Allowed");
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));
}

#[test]
fn keep_alive_serves_several_probes_and_connection_close_closes() {
    let service = running_testbed();
    let mut stream = TcpStream::connect(service.probe_addr()).unwrap();
    stream.set_read_timeout(Some(WAIT)).unwrap();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    for path in ["/livez", "/readyz", "/startupz"] {
        write!(stream, "GET {path} HTTP/1.1\r\nHost: probe\r\n\r\n").unwrap();
        let mut status = String::new();
        reader.read_line(&mut status).unwrap();
        assert_eq!(status.trim_end(), "HTTP/1.1 200 OK", "{path}");
        let mut length = 0;
        loop {
            let mut header = String::new();
            reader.read_line(&mut header).unwrap();
            if header == "\r\n" {
                break;
            }
            if let Some(value) = header.to_ascii_lowercase().strip_prefix("content-length:") {
                length = value.trim().parse().unwrap();
            }
        }
        let mut body = vec![0; length];
        reader.read_exact(&mut body).unwrap();
        assert_eq!(body, b"ok");
    }

    let answer = raw_exchange(
        service.probe_addr(),
        b"GET /livez HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n",
        WAIT,
    );
    assert_eq!(status_line(&answer), "HTTP/1.1 200 OK");
    assert!(answer.to_ascii_lowercase().contains("connection: close"));
    assert!(
        answer.ends_with("ok"),
        "read to the end: the server closed it"
    );
}

#[test]
fn a_request_followed_by_the_clients_fin_is_answered() {
    // Some health checkers half-close after sending the request: the answer
    // must still come back on the open read side.
    let service = running_testbed();
    for request in [
        &b"GET /readyz HTTP/1.1\r\nHost: probe\r\n\r\n"[..],
        &b"GET /livez HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n"[..],
        &b"GET /readyz HTTP/1.0\r\n\r\n"[..],
    ] {
        let mut stream = TcpStream::connect(service.probe_addr()).unwrap();
        stream.set_read_timeout(Some(WAIT)).unwrap();
        stream.write_all(request).unwrap();
        stream.shutdown(std::net::Shutdown::Write).unwrap();
        let mut answer = String::new();
        let _ = stream.read_to_string(&mut answer);
        assert!(
            status_line(&answer).ends_with(" 200 OK"),
            "{:?} then FIN: {:?}",
            String::from_utf8_lossy(request),
            status_line(&answer)
        );
    }
}
