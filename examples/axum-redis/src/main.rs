//! An axum JSON API in front of Redis, made Kubernetes-ready by lifecycle:
//! items are read from an in-process cache warmed from Redis at start-up,
//! and written behind, to the cache at once and to Redis in batches.
//!
//! ```text
//! cargo run -p axum-redis                 # Redis at redis://127.0.0.1:6379
//! curl -X PUT -H 'Content-Type: application/json' -d '{"value":"hi"}' localhost:8080/items/greeting
//! curl localhost:8080/items/greeting      # {"id":"greeting","value":"hi"}
//! curl 'localhost:8081/readyz?verbose'    # [+]redis ok, or why Redis is unreachable
//! ```
//!
//! - `APP_ADDR`: where the API listens (default `0.0.0.0:8080`).
//! - `REDIS_URL`: Redis (default `redis://127.0.0.1:6379`); items live in
//!   the hash `items`.
//! - `FLUSH_INTERVAL_MS`: how often buffered writes go to Redis while the
//!   service runs (default 1000); the rest go at shutdown.
//! - `LIFECYCLE_PROBE_ADDR`: the probes (default `0.0.0.0:8081`).
//!
//! What a Redis outage does: `/readyz` fails with the connection error
//! (the pod leaves rotation) and passes again within a second of Redis
//! answering; `/livez` never asks Redis, so an outage never restarts the
//! pod; a start without Redis starts cold instead of exiting. On SIGTERM
//! `/readyz` fails at once, the API serves through the drain delay telling
//! keep-alive clients to reconnect elsewhere, finishes the requests in
//! flight, then the buffered writes are flushed and the process exits 0
//! (1 if Redis could not take them: the reason is in the termination log).
//! A connection still open `LIFECYCLE_CONNECTION_DRAIN_MS` (5 s) after the
//! drain delay is ended by lifecycle, so that no client can keep the flush
//! from running.

use std::collections::BTreeMap;
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use axum::extract::{ConnectInfo, Path, Request};
use axum::http::{header, HeaderValue, StatusCode};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
// lifecycle's listener rather than tokio's: the stop waits for the
// connections it accepted and ends those still open after the connection
// drain; `PeerAddr` is its `ConnectInfo` (axum's `SocketAddr` one is for
// tokio's listener only).
use lifecycle_runtime::net::{PeerAddr, TcpListener};
use lifecycle_runtime::{
    liveness, on_shutdown, on_startup, preflight, readiness, service_main, Health, Phase,
};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};
use redis::{AsyncCommands, RedisError};
use serde::{Deserialize, Serialize};

/// The Redis hash that holds the items, field = id.
const ITEMS_KEY: &str = "items";

/// How long opening a connection to Redis, and waiting for one answer,
/// may take. Both stay well below the readiness check's `timeout_ms`
/// (900): a failed check then says what Redis did (refused, no answer)
/// instead of the framework's "timed out", even when a check must wait for
/// a connection and then for a PING.
const CONNECT_TIMEOUT: Duration = Duration::from_millis(400);
const RESPONSE_TIMEOUT: Duration = Duration::from_millis(400);

/// The start-up hook's own budget for warming the cache, below its
/// `timeout_ms` (5000): past it the hook gives up and starts cold rather
/// than let the framework fail start-up.
const WARM_BUDGET: Duration = Duration::from_secs(3);

/// The shutdown hook's budget for flushing the buffered writes, below its
/// `timeout_ms` (5000), and how long it waits between two attempts while
/// Redis is unreachable (a Redis restarting at the same moment as this
/// service should not cost the writes).
const FLUSH_BUDGET: Duration = Duration::from_secs(4);
const FLUSH_RETRY: Duration = Duration::from_millis(100);

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

/// `FLUSH_INTERVAL_MS`: how often the buffered writes go to Redis while
/// the service runs.
fn flush_interval() -> Result<Duration, String> {
    match env_or("FLUSH_INTERVAL_MS", "1000").parse::<u64>() {
        Ok(ms) if ms > 0 => Ok(Duration::from_millis(ms)),
        _ => Err("FLUSH_INTERVAL_MS: expected a number of milliseconds above 0".to_owned()),
    }
}

fn env_or(name: &str, default: &str) -> String {
    std::env::var(name)
        .ok()
        .filter(|value| !value.is_empty())
        .unwrap_or_else(|| default.to_owned())
}

// ---------------------------------------------------------------------------
// The connection to Redis

/// One multiplexed connection, shared by every request, check and hook
/// (a `ConnectionManager` is a cheap handle to clone). `None` until first
/// used, and again after a time-out (see [`failed`]).
static REDIS: Mutex<Option<ConnectionManager>> = Mutex::new(None);

/// The shared connection. Creating it does no I/O (the manager connects on
/// first use), so it never fails for want of Redis: the service starts
/// whether Redis answers or not, and a command says why it cannot.
fn redis() -> Result<ConnectionManager, String> {
    let mut slot = lock(&REDIS);
    if let Some(manager) = slot.as_ref() {
        return Ok(manager.clone());
    }
    let client = redis::Client::open(redis_url()).map_err(|e| format!("REDIS_URL: {e}"))?;
    let config = ConnectionManagerConfig::new()
        // One attempt per reconnection. With the default (6 retries, an
        // exponential backoff from 100 ms: seconds in all) every command
        // issued during an outage waits on the retries, and when Redis
        // comes back the manager may still be sleeping for seconds. Here a
        // command fails at once while Redis is down, and the readiness
        // check, every 250 ms, is what tries again.
        .set_number_of_retries(0)
        .set_connection_timeout(Some(CONNECT_TIMEOUT))
        .set_response_timeout(Some(RESPONSE_TIMEOUT));
    let manager =
        ConnectionManager::new_lazy_with_config(client, config).map_err(|e| e.to_string())?;
    *slot = Some(manager.clone());
    Ok(manager)
}

/// A command's error, as a reason. A time-out also drops the shared
/// connection, so that the next command opens a new one: the manager
/// replaces a connection only when it reports being closed, and one that
/// just stops answering (a Redis node lost without a word, a network
/// partition) would otherwise be kept, every command timing out on it long
/// after a replacement Redis answers at the same address.
fn failed(error: RedisError) -> String {
    if error.is_timeout() {
        lock(&REDIS).take();
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
/// is not a reason to stop, see [`warm_cache`].
#[preflight]
fn redis_url_is_valid() -> Result<(), String> {
    redis::Client::open(redis_url())
        .map(drop)
        .map_err(|e| format!("REDIS_URL: {e}"))
}

/// The rest of the configuration, checked as early.
#[preflight]
fn flush_interval_is_valid() -> Result<(), String> {
    flush_interval().map(drop)
}

/// Readiness follows Redis: without it this instance cannot read what it
/// has not cached nor save what it buffers, so it leaves rotation, and the
/// reason says why. It runs in the background every 250 ms (probes read its
/// last result and never wait on Redis), which also keeps reconnecting
/// during an outage, so that `/readyz` passes within a second of Redis
/// answering again.
#[readiness(name = "redis", timeout_ms = 900, interval_ms = 250)]
async fn redis_answers_ping() -> Result<(), String> {
    let mut redis = redis()?;
    let answer = match ping(&mut redis).await {
        // A dead connection, or the last reconnection failed: the manager
        // returns that failure once more and starts a new attempt. Ask
        // again, so that the answer is about Redis now.
        Err(error) if error.is_connection_dropped() => ping(&mut redis).await,
        answer => answer,
    };
    answer.map_err(failed)
}

// ---------------------------------------------------------------------------
// The cache and the write buffer

/// What this instance knows: the cache it serves reads from, and the
/// writes not yet in Redis. One lock for both, so that the cache and the
/// buffer agree on the last write of an item.
struct Store {
    cache: BTreeMap<String, String>,
    pending: BTreeMap<String, String>,
}

static STORE: Mutex<Store> = Mutex::new(Store {
    cache: BTreeMap::new(),
    pending: BTreeMap::new(),
});

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    // A panic elsewhere while holding the lock leaves consistent maps.
    mutex
        .lock()
        .unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Loads every item from Redis into the cache before the service takes
/// traffic. It never fails: with Redis down it logs why and the service
/// starts cold (`/readyz` fails until Redis answers, then reads fill the
/// cache). Failing here would make an outage of Redis a crash loop of
/// every pod that restarts meanwhile, with growing back-off delays that
/// outlast the outage itself.
#[on_startup(timeout_ms = 5000)]
async fn warm_cache() {
    let load = async {
        let mut redis = redis()?;
        redis
            .hgetall::<_, BTreeMap<String, String>>(ITEMS_KEY)
            .await
            .map_err(failed)
    };
    match tokio::time::timeout(WARM_BUDGET, load).await {
        Ok(Ok(items)) => {
            let count = items.len();
            lock(&STORE).cache.extend(items);
            tracing::info!("cache warmed with {count} item(s) from Redis");
        }
        Ok(Err(reason)) => tracing::warn!(
            "cache not warmed, starting cold: Redis at {}: {reason}; /readyz fails until Redis answers",
            redis_addr()
        ),
        Err(_) => tracing::warn!(
            "cache not warmed, starting cold: Redis at {} did not answer within {} ms; /readyz fails until it does",
            redis_addr(),
            WARM_BUDGET.as_millis()
        ),
    }
}

/// Writes the buffered writes to Redis in one `HSET` and returns how many
/// there were. On failure they go back into the buffer (behind any newer
/// write of the same item) for the next attempt.
async fn flush() -> Result<usize, String> {
    let batch = std::mem::take(&mut lock(&STORE).pending);
    if batch.is_empty() {
        return Ok(0);
    }
    let result = match redis() {
        Ok(mut redis) => redis::cmd("HSET")
            .arg(ITEMS_KEY)
            .arg(&batch)
            .query_async::<()>(&mut redis)
            .await
            .map_err(failed),
        Err(reason) => Err(reason),
    };
    match result {
        Ok(()) => Ok(batch.len()),
        Err(reason) => {
            let mut store = lock(&STORE);
            for (id, value) in batch {
                store.pending.entry(id).or_insert(value);
            }
            Err(reason)
        }
    }
}

/// Flushes the buffer every `interval` while the service runs, so that a
/// crash loses at most that much. A tracked task: the stop waits for it,
/// then [`flush_writes`] takes what is left.
async fn flush_periodically(interval: Duration) {
    let stop = lifecycle_runtime::shutdown_token();
    let mut failing = false;
    loop {
        tokio::select! {
            _ = stop.cancelled() => return,
            _ = tokio::time::sleep(interval) => {}
        }
        // Not raced against the stop: a flush under way finishes.
        match flush().await {
            Ok(_) if failing => {
                failing = false;
                tracing::info!("buffered writes reach Redis again");
            }
            Ok(_) => {}
            Err(reason) if !failing => {
                failing = true;
                tracing::warn!("buffered writes kept for later, Redis unreachable: {reason}");
            }
            Err(_) => {}
        }
    }
}

/// The last step of a stop, after the API finished its requests: every
/// write acknowledged is put in Redis. If Redis cannot take them within
/// the budget, the hook fails, the process exits 1 and the termination
/// message says how many writes were lost.
#[on_shutdown(timeout_ms = 5000)]
async fn flush_writes() -> Result<(), String> {
    let deadline = Instant::now() + FLUSH_BUDGET;
    loop {
        match flush().await {
            Ok(flushed) => {
                tracing::info!("shutdown: {flushed} buffered write(s) flushed to Redis");
                return Ok(());
            }
            Err(reason) if Instant::now() + FLUSH_RETRY >= deadline => {
                let lost = lock(&STORE).pending.len();
                return Err(format!("{lost} write(s) not flushed to Redis: {reason}"));
            }
            Err(_) => tokio::time::sleep(FLUSH_RETRY).await,
        }
    }
}

/// Liveness answers from memory only: never ask Redis here, or a Redis
/// outage would restart every pod at once, which cures nothing.
#[liveness]
fn store() -> Health {
    let store = lock(&STORE);
    Health::up()
        .with_detail("cached_items", store.cache.len())
        .with_detail("pending_writes", store.pending.len())
}

// ---------------------------------------------------------------------------
// The API

#[derive(Serialize)]
struct Item {
    id: String,
    value: String,
}

#[derive(Deserialize)]
struct NewValue {
    value: String,
}

#[derive(Serialize)]
struct Problem {
    error: String,
}

fn problem(status: StatusCode, error: String) -> Response {
    (status, Json(Problem { error })).into_response()
}

/// `GET /items/{id}`: from the cache, else from Redis (an item written by
/// another instance, or one a cold start could not load), then cached.
async fn get_item(Path(id): Path<String>) -> Response {
    if let Some(value) = lock(&STORE).cache.get(&id).cloned() {
        return Json(Item { id, value }).into_response();
    }
    let read = match redis() {
        Ok(mut redis) => redis
            .hget::<_, _, Option<String>>(ITEMS_KEY, &id)
            .await
            .map_err(failed),
        Err(reason) => Err(reason),
    };
    match read {
        Ok(Some(value)) => {
            // A write that came in meanwhile is newer: keep it.
            let value = lock(&STORE)
                .cache
                .entry(id.clone())
                .or_insert(value)
                .clone();
            Json(Item { id, value }).into_response()
        }
        Ok(None) => problem(StatusCode::NOT_FOUND, format!("no item {id:?}")),
        Err(reason) => problem(
            StatusCode::SERVICE_UNAVAILABLE,
            format!("item {id:?} is not cached and Redis is unreachable: {reason}"),
        ),
    }
}

/// `PUT /items/{id}` with `{"value": "…"}`: into the cache and the write
/// buffer; Redis gets it with the next flush. The answer is the item. Who
/// wrote it is logged at `debug` (`RUST_LOG=axum_redis=debug`).
async fn put_item(
    ConnectInfo(PeerAddr(client)): ConnectInfo<PeerAddr>,
    Path(id): Path<String>,
    Json(new): Json<NewValue>,
) -> Json<Item> {
    tracing::debug!("item {id:?} written by {client}");
    let mut store = lock(&STORE);
    store.cache.insert(id.clone(), new.value.clone());
    store.pending.insert(id.clone(), new.value.clone());
    Json(Item {
        id,
        value: new.value,
    })
}

/// From SIGTERM on (the drain delay), every answer carries
/// `Connection: close`. A keep-alive client would otherwise go on sending
/// on its connection to this pod, which Kubernetes does not re-route when
/// the pod leaves the Service's endpoints, until the listener closes and
/// its next request meets the closed connection. Told to close, it opens a
/// new connection, which the load balancer sends to a pod that stays.
async fn close_when_draining(request: Request, next: Next) -> Response {
    let mut response = next.run(request).await;
    if lifecycle_runtime::phase() != Phase::Running {
        response
            .headers_mut()
            .insert(header::CONNECTION, HeaderValue::from_static("close"));
    }
    response
}

/// Where to curl the probes: `localhost` and `LIFECYCLE_PROBE_ADDR`'s
/// port, or, when that is 0 (a free port), the address lifecycle logged
/// as it bound it.
fn probe_host() -> String {
    let addr = env_or("LIFECYCLE_PROBE_ADDR", "0.0.0.0:8081");
    match addr.rsplit_once(':') {
        Some((_, port)) if port != "0" => format!("localhost:{port}"),
        _ => "<the address of \"probe server listening\" above>".to_owned(),
    }
}

#[service_main]
async fn main() -> std::io::Result<()> {
    let flush_interval = flush_interval().map_err(std::io::Error::other)?;
    let listener = TcpListener::bind(env_or("APP_ADDR", "0.0.0.0:8080")).await?;
    let addr = listener.local_addr()?;
    tracing::info!("serving on http://{addr}; Redis at {}", redis_addr());
    let port = addr.port();
    tracing::info!(
        "try: curl -X PUT -H 'Content-Type: application/json' -d '{{\"value\":\"hi\"}}' localhost:{port}/items/greeting"
    );
    tracing::info!("try: curl localhost:{port}/items/greeting");
    tracing::info!("try: curl '{}/readyz?verbose'", probe_host());

    lifecycle_runtime::spawn(flush_periodically(flush_interval));

    let app = Router::new()
        .route("/items/{id}", get(get_item).put(put_item))
        .layer(middleware::from_fn(close_when_draining));
    // After SIGTERM and the drain delay: stop accepting, finish the
    // requests in flight, close idle connections (lifecycle ends those
    // still open after the connection drain); then the shutdown hook
    // flushes the buffer.
    axum::serve(
        listener,
        app.into_make_service_with_connect_info::<PeerAddr>(),
    )
    .with_graceful_shutdown(lifecycle_runtime::shutdown_signal())
    .await
}
