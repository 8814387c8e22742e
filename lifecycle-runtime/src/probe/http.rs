//! The probe endpoints over HTTP: routing, query parameters, content
//! negotiation and the answer's headers; with the `metrics` feature,
//! `GET /metrics` too.

#[cfg(feature = "metrics")]
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::header::{self, HeaderValue};
use hyper::{Method, Request, Response, StatusCode};

use crate::config::ReasonsPolicy;
#[cfg(feature = "metrics")]
use crate::probe::endpoint::METRICS_PATH;
use crate::probe::endpoint::{self, Target};
use crate::probe::evaluate::Evaluator;
use crate::probe::reasons::{Peer, Reasons};
use crate::probe::report;

/// What a request to the probe port speaks, told once per request by the
/// server: an HTTP probe, or with the `grpc` feature a gRPC call (HTTP/2
/// with a gRPC content type). Not the `probe_protocol` setting, which only
/// says how the kubelet is told to probe: a gRPC call is answered either
/// way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum RequestProtocol {
    Http,
    #[cfg(feature = "grpc")]
    Grpc,
}

/// An answer of the probe server.
pub(crate) type Answer = Response<AnswerBody>;

/// The body of an answer: with the `grpc` feature, tonic's, which gRPC
/// answers stream theirs in.
#[cfg(not(feature = "grpc"))]
pub(crate) type AnswerBody = Full<Bytes>;
#[cfg(feature = "grpc")]
pub(crate) type AnswerBody = tonic::body::Body;

fn body(bytes: Bytes) -> AnswerBody {
    #[cfg(not(feature = "grpc"))]
    return Full::new(bytes);
    #[cfg(feature = "grpc")]
    return tonic::body::Body::new(Full::new(bytes));
}

/// Answers one HTTP request to the probe port, routed once: `GET /metrics`
/// when `metrics` says it is served, a probe otherwise; with the `metrics`
/// feature, each answer counted under its endpoint's label.
pub(crate) async fn route<B>(
    evaluator: &Evaluator,
    reasons: ReasonsPolicy,
    #[cfg(feature = "metrics")] metrics: bool,
    request: Request<B>,
) -> Answer {
    #[cfg(feature = "metrics")]
    {
        let (label, answer) = if metrics && request.uri().path() == METRICS_PATH {
            ("metrics".into(), self::metrics(&request).await)
        } else {
            let label = evaluator.endpoint_label(target(request.uri().path()));
            (label, answer(evaluator, reasons, request).await)
        };
        crate::metrics::probe_answered("http", label, crate::metrics::http_code(answer.status()));
        answer
    }
    #[cfg(not(feature = "metrics"))]
    answer(evaluator, reasons, request).await
}

/// Answers one probe request. Its reasons are for the peer that the server
/// put in the request's extensions, as `reasons` allows.
async fn answer<B>(evaluator: &Evaluator, reasons: ReasonsPolicy, request: Request<B>) -> Answer {
    if let Some(refused) = refuse_method(&request) {
        return refused;
    }
    let Some((endpoint, only)) = target(request.uri().path()) else {
        return not_found();
    };
    let query = Query::parse(request.uri().query().unwrap_or(""));
    let wants_json = query.json
        || request
            .headers()
            .get_all(header::ACCEPT)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .any(|v| v.contains("application/json"));
    let Some(evaluation) = evaluator.evaluate(endpoint, only, &query.excludes).await else {
        return not_found();
    };
    let reasons = Reasons::for_peer(reasons, request.extensions().get::<Peer>().copied());
    let status = if evaluation.passed() {
        StatusCode::OK
    } else {
        StatusCode::SERVICE_UNAVAILABLE
    };
    if wants_json {
        respond(
            status,
            "application/json",
            report::json(&evaluation, reasons),
        )
    } else {
        respond(
            status,
            "text/plain; charset=utf-8",
            report::text(&evaluation, query.verbose, reasons),
        )
    }
}

/// The target of a request for `path`: what it is answered for, and the
/// `endpoint` label it is counted under.
fn target(path: &str) -> Option<Target<'_>> {
    endpoint::parse_path(path.strip_prefix('/').unwrap_or(path))
}

/// How long a scrape waits for the registry while an application's
/// registration has it, before it answers 503.
#[cfg(feature = "metrics")]
const REGISTRY_WAIT: Duration = Duration::from_millis(250);

/// `GET /metrics`: 503 while the application holds the registry longer
/// than [`REGISTRY_WAIT`].
#[cfg(feature = "metrics")]
fn metrics<B>(request: &Request<B>) -> impl std::future::Future<Output = Answer> + Send {
    let refused = refuse_method(request);
    async move {
        if let Some(refused) = refused {
            return refused;
        }
        match crate::metrics::encode(REGISTRY_WAIT).await {
            Some(text) => respond(StatusCode::OK, crate::metrics::CONTENT_TYPE, text),
            None => respond(
                StatusCode::SERVICE_UNAVAILABLE,
                "text/plain; charset=utf-8",
                "the metrics registry is held by the application\n".to_owned(),
            ),
        }
    }
}

/// A 405 for any method but `GET` and `HEAD`.
fn refuse_method<B>(request: &Request<B>) -> Option<Answer> {
    let method = request.method();
    if method == Method::GET || method == Method::HEAD {
        return None;
    }
    let mut response = plain(StatusCode::METHOD_NOT_ALLOWED, "method not allowed\n");
    response
        .headers_mut()
        .insert(header::ALLOW, HeaderValue::from_static("GET, HEAD"));
    Some(response)
}

/// The query parameters probes understand.
#[derive(Debug, Default)]
struct Query {
    verbose: bool,
    json: bool,
    excludes: Vec<String>,
}

impl Query {
    fn parse(query: &str) -> Query {
        let mut parsed = Query::default();
        for (key, value) in form_urlencoded::parse(query.as_bytes()) {
            match &*key {
                "verbose" => parsed.verbose = !matches!(&*value, "false" | "0"),
                "format" => parsed.json = value == "json",
                "exclude" => parsed.excludes.push(value.into_owned()),
                _ => {}
            }
        }
        parsed
    }
}

fn respond(status: StatusCode, content_type: &'static str, body: String) -> Answer {
    let mut response = Response::new(self::body(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(content_type));
    headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    response
}

pub(crate) fn plain(status: StatusCode, body: &'static str) -> Answer {
    respond(status, "text/plain; charset=utf-8", body.to_owned())
}

fn not_found() -> Answer {
    plain(StatusCode::NOT_FOUND, "not found\n")
}
