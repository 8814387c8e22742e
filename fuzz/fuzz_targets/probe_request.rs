//! Pipelined requests built from parts a probe request is made of
//! (methods, endpoints and per-check paths, query parameters, headers,
//! framing, sizes), sent on one connection to the probe server's own
//! connection handling. Beyond what every answer must be
//! (`lifecycle_fuzz::answers`), requests that are well formed get one
//! answer each, in order, with the status the documentation gives them.

#![no_main]

use arbitrary::Arbitrary;
use libfuzzer_sys::fuzz_target;
use lifecycle_fuzz::{answers, exchange, Sending, CHECK_NAMES};

#[derive(Arbitrary, Debug)]
struct Input {
    state: u8,
    how: u8,
    requests: Vec<Request>,
}

#[derive(Arbitrary, Debug)]
struct Request {
    method: Method,
    target: Target,
    version: Version,
    headers: Vec<Header>,
    body: Vec<u8>,
    /// An `X-Pad` header of this many bytes (0: none).
    pad: u16,
    /// This many `X-Extra-N` headers.
    extra: u8,
}

#[derive(Arbitrary, Debug, PartialEq)]
enum Method {
    Get,
    Head,
    Post,
    Put,
    Delete,
    Options,
    Patch,
    Trace,
    Connect,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Target {
    /// `/ENDPOINT[/CHECK][?QUERY]`
    Path(Name, Option<Name>, Vec<Param>),
    /// `http://probe/ENDPOINT?QUERY`
    Absolute(Name, Vec<Param>),
    Root,
    Asterisk,
    Raw(String),
}

/// An endpoint's or a check's name.
#[derive(Arbitrary, Debug)]
enum Name {
    Livez,
    Readyz,
    Startupz,
    Healthz,
    Check(u8),
    Other(String),
}

#[derive(Arbitrary, Debug)]
struct Param {
    key: Key,
    value: Value,
}

#[derive(Arbitrary, Debug)]
enum Key {
    Verbose,
    Exclude,
    Format,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Value {
    Empty,
    Json,
    False,
    Check(u8),
    Other(String),
}

#[derive(Arbitrary, Debug, PartialEq)]
enum Version {
    Http11,
    Http10,
    Http2,
    Other(String),
}

#[derive(Arbitrary, Debug)]
enum Header {
    Host(String),
    KubeProbe,
    AcceptJson,
    Accept(String),
    ConnectionClose,
    KeepAlive,
    /// `Content-Length` of the body, and the body.
    ContentLength,
    /// The body, chunked.
    Chunked,
    /// A `Content-Length` of its own, whatever the body.
    Length(String),
    TransferEncoding(String),
    Expect100,
    Upgrade(String),
    Other(String, String),
}

/// Percent-encodes all but unreserved characters.
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

fn is_token(text: &str) -> bool {
    !text.is_empty()
        && text
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

fn is_value(text: &str) -> bool {
    text.bytes().all(|b| (0x20..0x7f).contains(&b))
}

impl Name {
    /// The path segment, and whether it names an endpoint.
    fn segment(&self) -> (String, bool) {
        match self {
            Name::Livez => ("livez".into(), true),
            Name::Readyz => ("readyz".into(), true),
            Name::Startupz => ("startupz".into(), true),
            Name::Healthz => ("healthz".into(), true),
            Name::Check(i) => (
                CHECK_NAMES[usize::from(*i) % CHECK_NAMES.len()].into(),
                false,
            ),
            Name::Other(text) => {
                let named = matches!(text.as_str(), "livez" | "readyz" | "startupz" | "healthz");
                (encode(text), named)
            }
        }
    }
}

fn query(params: &[Param]) -> String {
    let mut query = form_urlencoded::Serializer::new(String::new());
    for param in params {
        let key = match &param.key {
            Key::Verbose => "verbose",
            Key::Exclude => "exclude",
            Key::Format => "format",
            Key::Other(text) => text,
        };
        let value = match &param.value {
            Value::Empty => "",
            Value::Json => "json",
            Value::False => "false",
            Value::Check(i) => CHECK_NAMES[usize::from(*i) % CHECK_NAMES.len()],
            Value::Other(text) => text,
        };
        query.append_pair(key, value);
    }
    let query = query.finish();
    if query.is_empty() {
        query
    } else {
        format!("?{query}")
    }
}

/// The statuses a well-formed request may get.
#[derive(Debug, Clone, Copy)]
enum Expect {
    /// 200 or 503: an endpoint.
    Probe,
    /// 200, 503 or 404: an endpoint's check, or a name that may be one.
    Maybe,
    NotFound,
    NotAllowed,
}

impl Expect {
    fn allows(self, status: u16) -> bool {
        match self {
            Expect::Probe => matches!(status, 200 | 503),
            Expect::Maybe => matches!(status, 200 | 503 | 404),
            Expect::NotFound => status == 404,
            Expect::NotAllowed => status == 405,
        }
    }
}

impl Request {
    /// The bytes; what the answer must be if the request is well formed
    /// and keeps the connection open (`None` otherwise); and whether the
    /// server may close the connection after answering it: it answers
    /// without reading a request's body, and hyper then closes the
    /// connection unless the whole body had already come (a pipelined
    /// request after it goes unanswered, as HTTP/1.1 allows).
    fn render(&self) -> (Vec<u8>, Option<Expect>, bool) {
        let mut clean = true;
        let method = match &self.method {
            Method::Get => "GET",
            Method::Head => "HEAD",
            Method::Post => "POST",
            Method::Put => "PUT",
            Method::Delete => "DELETE",
            Method::Options => "OPTIONS",
            Method::Patch => "PATCH",
            Method::Trace => "TRACE",
            Method::Connect => {
                clean = false;
                "CONNECT"
            }
            Method::Other(text) => {
                clean &= is_token(text);
                text
            }
        };
        let (target, route) = match &self.target {
            Target::Path(endpoint, check, params) => {
                let (segment, named) = endpoint.segment();
                let mut path = format!("/{segment}");
                let route = match check {
                    None if named => Expect::Probe,
                    None => Expect::NotFound,
                    Some(check) => {
                        let (check, _) = check.segment();
                        path.push('/');
                        path.push_str(&check);
                        if named {
                            Expect::Maybe
                        } else {
                            Expect::NotFound
                        }
                    }
                };
                (path + &query(params), route)
            }
            Target::Absolute(endpoint, params) => {
                let (segment, named) = endpoint.segment();
                let route = if named {
                    Expect::Probe
                } else {
                    Expect::NotFound
                };
                (format!("http://probe/{segment}{}", query(params)), route)
            }
            Target::Root => ("/".to_owned(), Expect::NotFound),
            Target::Asterisk => {
                clean = false;
                ("*".to_owned(), Expect::NotFound)
            }
            Target::Raw(text) => {
                clean = false;
                (text.clone(), Expect::NotFound)
            }
        };
        let version = match &self.version {
            Version::Http11 => "HTTP/1.1",
            Version::Http10 => {
                // Closes after its answer.
                clean = false;
                "HTTP/1.0"
            }
            Version::Http2 => {
                clean = false;
                "HTTP/2.0"
            }
            Version::Other(text) => {
                clean = false;
                text
            }
        };
        let mut head = format!("{method} {target} {version}\r\n");
        let mut body = Vec::new();
        let mut framed = false;
        for header in &self.headers {
            let line = match header {
                Header::Host(host) => {
                    clean &= is_value(host);
                    format!("Host: {host}")
                }
                Header::KubeProbe => "User-Agent: kube-probe/1.33".to_owned(),
                Header::AcceptJson => "Accept: application/json".to_owned(),
                Header::Accept(value) => {
                    clean &= is_value(value);
                    format!("Accept: {value}")
                }
                Header::ConnectionClose => {
                    clean = false;
                    "Connection: close".to_owned()
                }
                Header::KeepAlive => "Connection: keep-alive".to_owned(),
                Header::ContentLength | Header::Chunked if framed => {
                    // Two framings: a smuggling shape.
                    clean = false;
                    if matches!(header, Header::Chunked) {
                        "Transfer-Encoding: chunked".to_owned()
                    } else {
                        format!("Content-Length: {}", self.body.len())
                    }
                }
                Header::ContentLength => {
                    framed = true;
                    body = self.body.clone();
                    format!("Content-Length: {}", self.body.len())
                }
                Header::Chunked => {
                    framed = true;
                    if !self.body.is_empty() {
                        body.extend_from_slice(format!("{:x}\r\n", self.body.len()).as_bytes());
                        body.extend_from_slice(&self.body);
                        body.extend_from_slice(b"\r\n");
                    }
                    body.extend_from_slice(b"0\r\n\r\n");
                    "Transfer-Encoding: chunked".to_owned()
                }
                Header::Length(value) => {
                    clean = false;
                    format!("Content-Length: {value}")
                }
                Header::TransferEncoding(value) => {
                    clean = false;
                    format!("Transfer-Encoding: {value}")
                }
                Header::Expect100 => "Expect: 100-continue".to_owned(),
                Header::Upgrade(value) => {
                    clean = false;
                    format!("Connection: upgrade\r\nUpgrade: {value}")
                }
                Header::Other(name, value) => {
                    let lower = name.to_ascii_lowercase();
                    clean &= is_token(name)
                        && is_value(value)
                        && !matches!(
                            lower.as_str(),
                            "content-length" | "transfer-encoding" | "connection" | "upgrade"
                        );
                    format!("{name}: {value}")
                }
            };
            head.push_str(&line);
            head.push_str("\r\n");
        }
        if self.pad > 0 {
            head.push_str(&format!("X-Pad: {}\r\n", "p".repeat(usize::from(self.pad))));
        }
        for n in 0..self.extra {
            head.push_str(&format!("X-Extra-{n}: {n}\r\n"));
        }
        head.push_str("\r\n");
        // Beyond the probe server's caps: refused, not answered.
        clean &= head.len() < 12 * 1024 && self.headers.len() + usize::from(self.extra) < 60;
        let mut bytes = head.into_bytes();
        bytes.extend_from_slice(&body);
        let expect = if !clean {
            None
        } else if !matches!(method, "GET" | "HEAD") {
            Some(Expect::NotAllowed)
        } else {
            Some(route)
        };
        (bytes, expect, !body.is_empty())
    }
}

fuzz_target!(|input: Input| {
    let mut bytes = Vec::new();
    let mut expected = Vec::new();
    // How many answers must come: up to the first request after which the
    // server may close.
    let mut due = 0;
    let mut may_close = false;
    for request in input.requests.iter().take(4) {
        let (rendered, expect, closes) = request.render();
        bytes.extend_from_slice(&rendered);
        expected.push(expect);
        if !may_close {
            due += 1;
        }
        may_close |= closes;
    }
    let sending = Sending::from_bytes(input.state, input.how);
    let exchange = exchange(&bytes, sending);
    let answers = answers(&exchange.received, !sending.reads);
    // Sent at once or quickly, well-formed requests each get their answer,
    // in order (those after one with a body may go unanswered). Sent
    // slowly, the header read timeout may end it first.
    let quick = sending.pause < lifecycle_fuzz::HEADER_READ_TIMEOUT
        && sending
            .pause
            .saturating_mul(bytes.len().div_ceil(sending.piece.max(1)) as u32)
            < lifecycle_fuzz::HEADER_READ_TIMEOUT;
    if quick && sending.reads && expected.iter().all(Option::is_some) {
        assert!(
            (due..=expected.len()).contains(&answers.len()),
            "{} requests ({due} due), {} answers: {:?}\n{}",
            expected.len(),
            answers.len(),
            expected,
            String::from_utf8_lossy(&bytes)
        );
        for (answer, expect) in answers.iter().zip(&expected) {
            let expect = expect.unwrap();
            assert!(
                expect.allows(answer.status),
                "{} for a request that expects {expect:?}\n{}",
                answer.status,
                String::from_utf8_lossy(&bytes)
            );
        }
    }
});
