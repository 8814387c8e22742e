//! A tonic gRPC key-value service on Redis, made Kubernetes-ready by
//! lifecycle: `kv.v1.Kv` (`Get`, `Set`, from `proto/kv.proto`) and
//! `grpc.health.v1.Health` on the application's port, the same health
//! answers (and the HTTP ones) on the probe port, and `grpc:` probes in the
//! manifest.
//!
//! ```text
//! cargo run -p tonic-grpc                 # Redis at redis://127.0.0.1:6379
//! grpcurl -plaintext -import-path examples/tonic-grpc/proto -proto kv.proto \
//!   -d '{"key":"greeting","value":"hi"}' localhost:50051 kv.v1.Kv/Set
//! grpc_health_probe -addr=localhost:8081 -service=readyz   # as the kubelet asks
//! curl 'localhost:8081/readyz?verbose'    # the same answer over HTTP, with reasons
//! ```
//!
//! - `APP_ADDR`: where the gRPC server listens (default `0.0.0.0:50051`).
//! - `REDIS_URL`: Redis (default `redis://127.0.0.1:6379`); a key `K` is
//!   the Redis string `kv:K`.
//! - `LIFECYCLE_PROBE_ADDR`: the probes, HTTP/1.1 and gRPC on one port
//!   (default `0.0.0.0:8081`).
//!
//! What a Redis outage does: `readyz` turns `NOT_SERVING` (and `/readyz`
//! 503, with the reason) on both ports, so the kubelet, proxies and gRPC
//! clients that health-check this port stop sending calls here; `livez`
//! never asks Redis, so an outage never restarts the pod; calls answer
//! `UNAVAILABLE`, which clients may retry elsewhere. On SIGTERM `readyz`
//! and the overall status `""` turn `NOT_SERVING` at once, calls are served
//! through the drain delay, then the server stops accepting, tells its
//! clients to go (HTTP/2 GOAWAY), finishes the calls in flight, and the
//! process exits 0. A connection still open `LIFECYCLE_CONNECTION_DRAIN_MS`
//! (5 s) after the drain delay is ended by lifecycle.

use std::sync::{Mutex, MutexGuard};
use std::time::Duration;

// lifecycle's listener rather than tokio's: the stop waits for the
// connections it accepted and ends those still open after the connection
// drain (a client's stream that never ends cannot hold the stop).
use lifecycle_runtime::net::TcpListener;
use lifecycle_runtime::{preflight, readiness, service_main};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError};
use tonic::transport::Server;
use tonic::{Request, Response, Status};

/// What `build.rs` generates from `proto/kv.proto`.
mod kv {
    tonic::include_proto!("kv.v1");
}

use kv::kv_server::{Kv, KvServer};
use kv::{GetRequest, GetResponse, SetRequest, SetResponse};

/// Every key of the API lives in Redis under this prefix, out of the way of
/// whatever else shares the database.
const KEY_PREFIX: &str = "kv:";

/// How long opening a connection to Redis may take, well below the
/// readiness check's `timeout_ms` (900), so that a failed check says what
/// Redis did (refused, no answer) rather than the framework's "timed out".
const CONNECT_TIMEOUT: Duration = Duration::from_millis(400);

/// How long the readiness check waits for `PONG`, for the same reason.
const PING_TIMEOUT: Duration = Duration::from_millis(400);

/// How long a call waits for Redis's answer before it fails with
/// `UNAVAILABLE`. A client's own deadline (`grpc-timeout`), which tonic
/// enforces, cuts it shorter.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);

fn redis_url() -> String {
    env_or("REDIS_URL", "redis://127.0.0.1:6379")
}

/// Where Redis is, for the logs: the URL's host and port, without the
/// password it may carry.
fn redis_addr() -> String {
    redis::Client::open(redis_url()).map_or_else(
        |_| "an invalid REDIS_URL".to_owned(),
        |client| client.get_connection_info().addr().to_string(),
    )
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

// ---------------------------------------------------------------------------
// The connection to Redis

/// One multiplexed connection, shared by every call and the readiness
/// check (a `ConnectionManager` is a cheap handle to clone). `None` until
/// first used, and again after a time-out (see [`drop_connection`]).
static REDIS: Mutex<Option<ConnectionManager>> = Mutex::new(None);

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // The slot holds a handle or nothing: consistent whatever panicked.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The shared connection. Creating it does no I/O (the manager connects on
/// first use), so it never fails for want of Redis: the service starts
/// whether Redis answers or not, and a call says why it cannot.
fn redis() -> Result<ConnectionManager, String> {
    let mut slot = lock(&REDIS);
    if let Some(manager) = slot.as_ref() {
        return Ok(manager.clone());
    }
    let client = redis::Client::open(redis_url()).map_err(|e| format!("REDIS_URL: {e}"))?;
    let config = ConnectionManagerConfig::new()
        // One attempt per reconnection. With the default (6 retries, an
        // exponential backoff from 100 ms: seconds in all) every call made
        // during an outage waits on the retries instead of answering
        // UNAVAILABLE, and when Redis comes back the manager may still be
        // sleeping. The readiness check, every 250 ms, is what tries again.
        .set_number_of_retries(0)
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let manager =
        ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
    *slot = Some(manager.clone());
    Ok(manager)
}

/// Forgets the shared connection, so that the next command opens a new
/// one. The manager replaces a connection only when it reports being
/// closed; one that just stops answering (a Redis node lost without a
/// word, a network partition) would otherwise be kept, every command timing
/// out on it long after a replacement Redis answers at the same address.
/// Calls still waiting on it keep their own handle and end on their own.
fn drop_connection() {
    lock(&REDIS).take();
}

/// A command's error, as a reason; a time-out also drops the connection.
fn failed(error: RedisError) -> String {
    if error.is_timeout() {
        drop_connection();
    }
    error.to_string()
}

async fn ping(redis: &mut ConnectionManager) -> Result<(), RedisError> {
    redis::cmd("PING")
        .query_async::<String>(redis)
        .await
        .map(drop)
}

/// Checked before anything else starts, and alone by `--lifecycle-preflight`
/// (an initContainer): a `REDIS_URL` that cannot be parsed is a mistake in
/// the deployment, which should stop the rollout (exit 1) rather than leave
/// pods running that can never be ready. It does no I/O: Redis being down
/// is an outage to wait out, not a reason to stop.
#[preflight]
fn redis_url_is_valid() -> Result<(), String> {
    redis::Client::open(redis_url())
        .map(drop)
        .map_err(|e| format!("REDIS_URL: {e}"))
}

/// Readiness follows Redis: without it no call can succeed, so this
/// instance answers `NOT_SERVING` on `readyz` (gRPC, on both ports) and 503
/// on `/readyz`, and the reason says why. It runs in the background every
/// 250 ms, so probes and health watchers read its last result and never
/// wait on Redis, and it keeps reconnecting during an outage: `readyz` is
/// `SERVING` again within a second of Redis answering.
#[readiness(name = "redis", timeout_ms = 900, interval_ms = 250)]
async fn redis_answers_ping() -> Result<(), String> {
    let mut redis = redis()?;
    let answer = tokio::time::timeout(PING_TIMEOUT, async {
        match ping(&mut redis).await {
            // A dead connection, or the last reconnection failed: the
            // manager returns that failure once more and starts a new
            // attempt. Ask again, so that the answer is about Redis now.
            Err(error) if error.is_connection_dropped() => ping(&mut redis).await,
            answer => answer,
        }
    })
    .await;
    match answer {
        Ok(answer) => answer.map_err(failed),
        Err(_) => {
            drop_connection();
            Err(format!(
                "no answer to PING within {} ms",
                PING_TIMEOUT.as_millis()
            ))
        }
    }
}

// ---------------------------------------------------------------------------
// The API

/// `kv.v1.Kv`: each call is one Redis command on the shared connection.
struct KvService;

/// The Redis key of an API key; an empty key is the caller's mistake.
fn redis_key(key: &str) -> Result<String, Status> {
    if key.is_empty() {
        return Err(Status::invalid_argument("key is empty"));
    }
    Ok(format!("{KEY_PREFIX}{key}"))
}

/// `UNAVAILABLE`: the status gRPC clients may retry, on another instance.
fn unavailable(reason: String) -> Status {
    Status::unavailable(format!("Redis is unreachable: {reason}"))
}

#[tonic::async_trait]
impl Kv for KvService {
    async fn get(&self, request: Request<GetRequest>) -> Result<Response<GetResponse>, Status> {
        let GetRequest { key } = request.into_inner();
        let redis_key = redis_key(&key)?;
        let mut redis = redis().map_err(unavailable)?;
        match redis.get::<_, Option<String>>(redis_key).await {
            Ok(Some(value)) => Ok(Response::new(GetResponse { value })),
            Ok(None) => Err(Status::not_found(format!("no value for key {key:?}"))),
            Err(error) => Err(unavailable(failed(error))),
        }
    }

    async fn set(&self, request: Request<SetRequest>) -> Result<Response<SetResponse>, Status> {
        let SetRequest { key, value } = request.into_inner();
        let redis_key = redis_key(&key)?;
        let mut redis = redis().map_err(unavailable)?;
        // Answered once Redis has it: an acknowledged write is not lost by
        // a stop of this instance.
        redis
            .set::<_, _, ()>(redis_key, value)
            .await
            .map_err(|error| unavailable(failed(error)))?;
        Ok(Response::new(SetResponse {}))
    }
}

/// Where to point the health client: `localhost` and `LIFECYCLE_PROBE_ADDR`'s
/// port, or, when that is 0 (a free port), the address lifecycle logged
/// as it bound it.
fn probe_host() -> String {
    let addr = env_or("LIFECYCLE_PROBE_ADDR", "0.0.0.0:8081");
    match addr.rsplit_once(':') {
        Some((_, port)) if port != "0" => format!("localhost:{port}"),
        _ => "<the address of \"probe server listening\" above>".to_owned(),
    }
}

// `probe_protocol = "grpc"`: `--lifecycle-manifest` prints `grpc:` probes
// (the kubelet calls grpc.health.v1.Health/Check on the probe port), and
// `--lifecycle-probe` asks over gRPC too.
#[service_main(probe_protocol = "grpc")]
async fn main() -> Result<(), Box<dyn std::error::Error>> {
    // Bound here rather than by `serve_with_shutdown(addr, …)`, so that the
    // address actually bound (`APP_ADDR` may ask for port 0) is logged, and
    // a port in use fails the start (exit 1) before anything is served.
    let listener = TcpListener::bind(env_or("APP_ADDR", "0.0.0.0:50051")).await?;
    let addr = listener.local_addr()?;
    tracing::info!("serving gRPC on {addr}; Redis at {}", redis_addr());
    let port = addr.port();
    tracing::info!(
        "try: grpcurl -plaintext -import-path examples/tonic-grpc/proto -proto kv.proto -d '{{\"key\":\"greeting\",\"value\":\"hi\"}}' localhost:{port} kv.v1.Kv/Set"
    );
    tracing::info!(
        "try: grpc_health_probe -addr={} -service=readyz",
        probe_host()
    );
    tracing::info!("try: curl '{}/readyz?verbose'", probe_host());

    Server::builder()
        // The same health answers as the probe port: gRPC clients and
        // proxies that health-check the port they send calls to (grpc's
        // client-side health checking, Envoy) see this instance leave
        // rotation when Redis goes away or a stop begins.
        .add_service(lifecycle_runtime::grpc::health_service()?)
        .add_service(KvServer::new(KvService))
        // After SIGTERM and the drain delay: stop accepting, send GOAWAY
        // on every connection so that clients open their next one
        // elsewhere, and return once the calls in flight have finished.
        // `incoming()` sets TCP_NODELAY on each connection, as tonic's own
        // listener does.
        .serve_with_incoming_shutdown(listener.incoming(), lifecycle_runtime::shutdown_signal())
        .await?;
    tracing::info!("gRPC server stopped; every call in flight was answered");
    Ok(())
}
