//! The machine's floor for a kubelet-style probe: one thread, blocking
//! sockets, no HTTP library. Accepts, reads until the end of the request
//! head, writes a fixed 200 and closes. Serves on `BENCH_ADDR`.

// Linux only, not ported: on another system this is the first error, and
// it says why.
#[cfg(not(target_os = "linux"))]
compile_error!("lifecycle-bench is lifecycle's Linux benchmark (bench/run: CPU and memory from /proc, wrk, Debian packages); it is not built for other systems");

use std::io::{Read, Write};
use std::net::TcpListener;

const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok";

fn main() -> std::io::Result<()> {
    let addr = std::env::var("BENCH_ADDR").unwrap_or_else(|_| "127.0.0.1:8080".into());
    let listener = TcpListener::bind(addr)?;
    let mut head = [0u8; 4096];
    for stream in listener.incoming() {
        let Ok(mut stream) = stream else { continue };
        let mut read = 0;
        while read < head.len() {
            match stream.read(&mut head[read..]) {
                Ok(0) | Err(_) => break,
                Ok(n) => read += n,
            }
            if head[..read].windows(4).any(|w| w == b"\r\n\r\n") {
                let _ = stream.write_all(ANSWER);
                break;
            }
        }
    }
    Ok(())
}
