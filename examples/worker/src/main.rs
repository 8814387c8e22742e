//! A job consumer made Kubernetes-ready by lifecycle: no HTTP server of its
//! own, only the probes, and the reliable-queue pattern on Redis, so that
//! whatever stops the worker (a rollout, a crash, a Redis outage) every job
//! is completed, and recorded, exactly once.
//!
//! ```text
//! cargo run -p worker                               # Redis at redis://127.0.0.1:6379
//! redis-cli LPUSH jobs job-1 job-2 job-3            # give it work
//! redis-cli LRANGE done 0 -1                        # what it finished
//! curl 'localhost:8081/readyz?verbose'              # what the kubelet asks
//! ```
//!
//! How a job travels:
//!
//! 1. `BLMOVE jobs processing:ID RIGHT LEFT 1`: taken, atomically, from the
//!    queue into this worker's own processing list. Redis holds it in one
//!    list or the other at every moment.
//! 2. It runs as a tracked task ([`lifecycle_runtime::spawn`]): a graceful
//!    stop waits for it.
//! 3. `MULTI; RPUSH done JOB; LREM processing:ID 1 JOB; EXEC`: its effect
//!    (here, its line in `done`) and its leaving the processing list happen
//!    together or not at all, so no crash can record it without releasing
//!    it, or release it without recording it.
//! 4. A job still in `processing:ID` when the process ends (it outlived the
//!    shutdown deadline, or the process was killed) was never recorded: the
//!    next start of the same identity puts it back on `jobs` to run again.
//!
//! Settings, from the environment: `REDIS_URL` (`redis://127.0.0.1:6379`),
//! `WORKER_ID` (the host name, which is the pod's name on Kubernetes),
//! `JOB_MS` (how long a job takes, 500), `WORKER_CONCURRENCY` (jobs at once,
//! 4), `CONSUMER_STALL_MS` (when liveness gives the consumer loop up for
//! wedged, 10000); `LIFECYCLE_PROBE_ADDR` moves the probes (`0.0.0.0:8081`).

use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant};

use lifecycle_runtime::{
    liveness, on_shutdown, on_startup, preflight, readiness, service_main, CancellationToken,
    Health,
};
use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client, FromRedisValue, RedisResult};
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The queue producers push to (`LPUSH`), consumed from its other end.
const JOBS: &str = "jobs";
/// Every finished job's id, once: the completion record.
const DONE: &str = "done";
/// How long one `BLMOVE` waits for a job. Short, because the consumer
/// loop notices a SIGTERM (and beats its heartbeat) only between two of
/// them: at most a second.
const BLOCK: Duration = Duration::from_secs(1);
/// How long a connection to Redis may take to set up.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(1);
/// How long the client waits for any answer on the blocking connection:
/// longer than the block, or every idle wait would be an error (redis-rs
/// 1.x answers `timed out` after 500 ms by default) and a job Redis moved
/// just as the client gave up would stay in the processing list unrun
/// until the next start; yet finite, so that a hung server or a connection
/// broken without a reset fails the wait instead of wedging the loop.
const BLOCKING_RESPONSE_TIMEOUT: Duration = Duration::from_secs(2);
/// How long the on_startup hook tries to put jobs back before it lets the
/// consumer loop do it: well within the hook's own timeout, so that a Redis
/// outage at start-up never fails the start (a crash loop would not bring
/// Redis back).
const RECOVERY_BUDGET: Duration = Duration::from_secs(3);
/// The longest pause between two attempts while Redis fails.
const MAX_BACKOFF: Duration = Duration::from_millis(500);

/// What the worker was configured with.
#[derive(Debug)]
struct Settings {
    redis_url: String,
    redis_addr: String,
    /// This worker's identity: its processing list is `processing:ID`.
    worker_id: String,
    processing: String,
    job_time: Duration,
    concurrency: usize,
    stall_limit: Duration,
}

/// The settings, read once; an error names the variable to fix.
fn settings() -> Result<&'static Settings, String> {
    static SETTINGS: OnceLock<Result<Settings, String>> = OnceLock::new();
    SETTINGS
        .get_or_init(read_settings)
        .as_ref()
        .map_err(Clone::clone)
}

fn read_settings() -> Result<Settings, String> {
    let redis_url = var("REDIS_URL").unwrap_or_else(|| "redis://127.0.0.1:6379".into());
    // Where it is, without the password the URL may hold: for the logs.
    let redis_addr = Client::open(redis_url.as_str())
        .map_err(|e| format!("REDIS_URL: {e}"))?
        .get_connection_info()
        .addr()
        .to_string();
    // The identity must be the same when this worker starts again, or the
    // jobs it held when it stopped are never put back: a job outliving the
    // shutdown deadline, or a process killed (OOM, node lost), leaves its
    // jobs in `processing:ID`, and only a start with that ID returns them
    // to the queue. On Kubernetes the host name is the pod's name. A
    // container restarted in its pod (a liveness failure, an OOM kill)
    // keeps it, so those are covered with any controller; a StatefulSet's
    // pods keep their names (`worker-0`, `worker-1`) across rollouts and
    // rescheduling too. A Deployment's replacement pod gets a new random
    // name: the old pod's processing list is orphaned, and its leftovers
    // wait for a reaper of your own (one that requeues the lists of
    // identities no longer alive) or for a StatefulSet. Two live workers
    // must never share an identity: each start puts back the list's jobs,
    // including those the other one is running, which would then run twice.
    let worker_id = match var("WORKER_ID") {
        Some(id) => id,
        None => host_name().ok_or(
            "WORKER_ID is unset and the host name is unknown: set WORKER_ID to a name stable across restarts",
        )?,
    };
    // A stray space (`WORKER_ID="w1 "`) would name another list than the
    // one an operator types.
    if worker_id.chars().any(char::is_whitespace) {
        return Err(format!("WORKER_ID {worker_id:?} contains white space"));
    }
    let settings = Settings {
        redis_url,
        redis_addr,
        processing: format!("processing:{worker_id}"),
        worker_id,
        job_time: Duration::from_millis(number("JOB_MS", 500)?),
        concurrency: usize::try_from(number("WORKER_CONCURRENCY", 4)?)
            .map_err(|_| "WORKER_CONCURRENCY is too large".to_string())?,
        stall_limit: Duration::from_millis(number("CONSUMER_STALL_MS", 10_000)?),
    };
    if settings.concurrency == 0 {
        return Err("WORKER_CONCURRENCY must be at least 1".into());
    }
    // Between two beats the loop may connect, wait for a BLMOVE's answer
    // and back off: a limit within that would restart a healthy worker.
    let floor = CONNECT_TIMEOUT + BLOCKING_RESPONSE_TIMEOUT + MAX_BACKOFF + Duration::from_secs(1);
    if settings.stall_limit < floor {
        return Err(format!(
            "CONSUMER_STALL_MS must be at least {} (a connection, a blocking wait, a back-off and a margin)",
            floor.as_millis()
        ));
    }
    Ok(settings)
}

/// A non-empty environment variable.
fn var(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|value| !value.is_empty())
}

fn number(name: &str, default: u64) -> Result<u64, String> {
    match var(name) {
        None => Ok(default),
        Some(text) => text
            .parse()
            .map_err(|_| format!("{name} must be a whole number, not {text:?}")),
    }
}

/// The pod's name on Kubernetes (which sets `HOSTNAME` in every container),
/// the kernel's host name elsewhere on Linux.
fn host_name() -> Option<String> {
    var("HOSTNAME").or_else(|| {
        std::fs::read_to_string("/proc/sys/kernel/hostname")
            .ok()
            .map(|name| name.trim().to_owned())
            .filter(|name| !name.is_empty())
    })
}

/// One connection to Redis for one purpose, multiplexed (clones share it),
/// made on first use and made again after any failure: a check or a job
/// after Redis came back gets a fresh connection at once, instead of the
/// error of an attempt made while it was down. A call cut short by its
/// caller's timeout (the readiness check's 500 ms, shorter than the
/// response timeout) counts as a failure too: the connection may be dead
/// without a reset (a partition, a lost or replaced node), and kept, it
/// would fail every later check until TCP gave up on it, minutes after
/// Redis came back.
struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    connection: tokio::sync::Mutex<Option<MultiplexedConnection>>,
}

impl Link {
    fn new(client: Client, response_timeout: Duration) -> Link {
        Link {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(CONNECT_TIMEOUT))
                .set_response_timeout(Some(response_timeout)),
            connection: tokio::sync::Mutex::new(None),
        }
    }

    async fn connection(&self) -> RedisResult<MultiplexedConnection> {
        let mut held = self.connection.lock().await;
        if let Some(connection) = held.as_ref() {
            return Ok(connection.clone());
        }
        let connection = self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await?;
        *held = Some(connection.clone());
        Ok(connection)
    }

    /// Runs one command. A failure, or the call's cancellation, drops the
    /// connection, so that the next call connects anew.
    async fn query<T: FromRedisValue>(&self, cmd: &redis::Cmd) -> RedisResult<T> {
        let mut connection = self.connection().await?;
        let in_flight = InFlight(Some(self));
        let result = cmd.query_async(&mut connection).await;
        in_flight.settle(&result).await;
        result
    }

    /// Runs a transaction (`MULTI` … `EXEC`), the same way.
    async fn exec(&self, transaction: &redis::Pipeline) -> RedisResult<()> {
        let mut connection = self.connection().await?;
        let in_flight = InFlight(Some(self));
        let result = transaction.query_async(&mut connection).await;
        in_flight.settle(&result).await;
        result
    }
}

/// A call on a [`Link`] that has not answered yet: dropped before it did
/// (its future was cancelled), it drops the link's connection.
struct InFlight<'a>(Option<&'a Link>);

impl InFlight<'_> {
    /// The call answered: a failure drops the connection.
    async fn settle<T>(mut self, result: &RedisResult<T>) {
        let link = self.0.take().expect("settled once");
        if result.is_err() {
            *link.connection.lock().await = None;
        }
    }
}

impl Drop for InFlight<'_> {
    fn drop(&mut self) {
        // Cancelled: no await here, so only when no other call holds the
        // lock, which none does for long (a clone, or a connect that is
        // replacing the connection anyway).
        if let Some(link) = self.0 {
            if let Ok(mut connection) = link.connection.try_lock() {
                *connection = None;
            }
        }
    }
}

/// The worker's two connections.
struct Redis {
    /// For `BLMOVE` only: a blocked connection answers nothing else until
    /// the block ends, so nothing else may queue behind it.
    blocking: Link,
    /// For everything else, all tasks at once: completions, put-backs and
    /// the readiness `PING`.
    commands: Link,
}

fn redis() -> Result<&'static Redis, String> {
    static REDIS: OnceLock<Redis> = OnceLock::new();
    let settings = settings()?;
    Ok(REDIS.get_or_init(|| {
        // Checked by read_settings.
        let client = Client::open(settings.redis_url.as_str()).expect("a valid REDIS_URL");
        Redis {
            blocking: Link::new(client.clone(), BLOCKING_RESPONSE_TIMEOUT),
            commands: Link::new(client, Duration::from_secs(2)),
        }
    }))
}

/// The consumer loop's heartbeat, as milliseconds since `EPOCH` (0: the
/// loop has not started).
static HEARTBEAT: AtomicU64 = AtomicU64::new(0);
static EPOCH: OnceLock<Instant> = OnceLock::new();
/// The consumer loop ended because the service is stopping.
static CONSUMER_STOPPED: AtomicBool = AtomicBool::new(false);
/// Whether this start put back the jobs a previous run left in its
/// processing list. Until then no job is taken: putting back a list that
/// holds running jobs would run them twice.
static PUT_BACK: AtomicBool = AtomicBool::new(false);
static RUNNING: AtomicUsize = AtomicUsize::new(0);
static FINISHED: AtomicUsize = AtomicUsize::new(0);
/// The jobs finished after the stop began: those a graceful stop waited for.
static FINISHED_WHILE_STOPPING: Mutex<Vec<String>> = Mutex::new(Vec::new());

fn beat() {
    let epoch = EPOCH.get_or_init(Instant::now);
    let now = u64::try_from(epoch.elapsed().as_millis()).unwrap_or(u64::MAX);
    HEARTBEAT.store(now.max(1), Ordering::SeqCst);
}

/// How long ago the consumer loop last beat, if it has started.
fn since_last_beat() -> Option<Duration> {
    let last = HEARTBEAT.load(Ordering::SeqCst);
    let epoch = EPOCH.get()?;
    (last != 0).then(|| epoch.elapsed().saturating_sub(Duration::from_millis(last)))
}

/// Checked before anything else starts, and alone by `worker
/// --lifecycle-preflight` (an initContainer): a bad setting stops the
/// rollout before the pod takes a job.
#[preflight]
fn settings_are_valid() -> Result<(), String> {
    settings().map(drop)
}

/// Puts back on `jobs` what a previous run of this identity left in its
/// processing list (jobs that outlived its shutdown deadline, or that it
/// held when it was killed). Never fails the start: with Redis down it
/// logs why, and the consumer loop puts them back once Redis answers,
/// before it takes any job.
#[on_startup(timeout_ms = 10000)]
async fn put_back_unfinished_jobs() {
    match tokio::time::timeout(RECOVERY_BUDGET, put_back()).await {
        Ok(Ok(())) => {}
        Ok(Err(e)) => tracing::warn!(
            "cannot put back unfinished jobs yet ({e}); the consumer will once Redis answers"
        ),
        Err(_) => tracing::warn!(
            "putting back unfinished jobs took over {} ms; the consumer will finish it",
            RECOVERY_BUDGET.as_millis()
        ),
    }
}

/// Moves every job of this worker's processing list back to the end of
/// `jobs` that consumers take from, oldest first to be taken again. One
/// `LMOVE` at a time: each is atomic, so a job is in one list or the
/// other whatever stops this midway.
async fn put_back() -> RedisResult<()> {
    if PUT_BACK.load(Ordering::SeqCst) {
        return Ok(());
    }
    let (settings, redis) = (
        settings().map_err(config_error)?,
        redis().map_err(config_error)?,
    );
    let mut moved = Vec::new();
    loop {
        beat();
        let job: Option<String> = redis
            .commands
            .query(
                redis::cmd("LMOVE")
                    .arg(&settings.processing)
                    .arg(JOBS)
                    .arg("LEFT")
                    .arg("RIGHT"),
            )
            .await?;
        match job {
            Some(job) => moved.push(job),
            None => break,
        }
    }
    PUT_BACK.store(true, Ordering::SeqCst);
    if moved.is_empty() {
        tracing::info!("{} holds no unfinished job", settings.processing);
    } else {
        tracing::info!(
            "put back {} unfinished job(s) from {} on {JOBS}: {}",
            moved.len(),
            settings.processing,
            moved.join(" ")
        );
    }
    Ok(())
}

fn config_error(message: String) -> redis::RedisError {
    redis::RedisError::from((redis::ErrorKind::Client, "bad settings", message))
}

/// Readiness is where dependencies belong: without Redis the worker stays
/// up, out of rotation (a worker has no Service traffic, but the rollout
/// waits for ready pods, and dashboards see it), and comes back by itself.
/// The PING goes through the commands connection, never behind a
/// `BLMOVE`; the reason is Redis's own error.
#[readiness(name = "redis", timeout_ms = 500)]
async fn redis_answers() -> Result<(), String> {
    let redis = redis()?;
    let pong: String = redis
        .commands
        .query(&redis::cmd("PING"))
        .await
        .map_err(|e| e.to_string())?;
    match pong.as_str() {
        "PONG" => Ok(()),
        other => Err(format!("PING answered {other:?}")),
    }
}

/// Liveness asks only "is this process beyond repair?", from its own
/// state, never Redis (an outage would restart every replica, which
/// would not bring Redis back): the consumer loop beats at least once per
/// blocking wait, so a heartbeat older than `CONSUMER_STALL_MS` means the
/// loop is wedged and only a restart frees it.
#[liveness(name = "consumer")]
fn consumer_loop_advances() -> Health {
    let Ok(settings) = settings() else {
        // Reported by the preflight check; the loop never ran.
        return Health::up();
    };
    consumer_health(
        since_last_beat(),
        CONSUMER_STOPPED.load(Ordering::SeqCst),
        settings.stall_limit,
    )
    .with_detail("running_jobs", RUNNING.load(Ordering::SeqCst))
    .with_detail("finished_jobs", FINISHED.load(Ordering::SeqCst))
}

/// The liveness verdict from the heartbeat's age.
fn consumer_health(since_last_beat: Option<Duration>, stopped: bool, limit: Duration) -> Health {
    match since_last_beat {
        // Start-up has not reached the loop yet.
        None => Health::up().with_detail("consumer", "not started"),
        // Stopped taking jobs for a graceful stop: not a reason to be
        // killed while the running jobs finish.
        Some(_) if stopped => Health::up().with_detail("consumer", "stopped"),
        Some(age) if age > limit => Health::down(format!(
            "the consumer loop has not advanced for {} ms (limit {} ms): wedged",
            age.as_millis(),
            limit.as_millis()
        )),
        Some(age) => Health::up().with_detail(
            "last_beat_ms_ago",
            u64::try_from(age.as_millis()).unwrap_or(u64::MAX),
        ),
    }
}

/// Runs after the running jobs finished (the stop waits for tracked
/// tasks): says what this run did.
#[on_shutdown(timeout_ms = 1000)]
fn report_finished_jobs() {
    let while_stopping = FINISHED_WHILE_STOPPING
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .clone();
    tracing::info!(
        "shutdown: finished {} job(s) in all, {} of them after the stop began: [{}]; {} still running",
        FINISHED.load(Ordering::SeqCst),
        while_stopping.len(),
        while_stopping.join(" "),
        RUNNING.load(Ordering::SeqCst)
    );
}

/// Takes jobs until the stop: one `BLMOVE` at a time, and only when a slot
/// is free, so a job taken starts at once and a stop never finds one
/// waiting inside this process.
async fn consume(settings: &'static Settings, redis: &'static Redis, stop: CancellationToken) {
    let slots = Arc::new(Semaphore::new(settings.concurrency));
    let mut backoff = Duration::from_millis(50);
    let mut failing = false;
    loop {
        beat();
        // Waited for in steps of the block, so that the heartbeat goes on
        // while every slot runs a long job.
        let slot = tokio::select! {
            biased;
            _ = stop.cancelled() => break,
            slot = slots.clone().acquire_owned() => slot.expect("the semaphore is never closed"),
            _ = tokio::time::sleep(BLOCK) => continue,
        };
        let taken = async {
            put_back().await?;
            redis
                .blocking
                .query::<Option<String>>(
                    redis::cmd("BLMOVE")
                        .arg(JOBS)
                        .arg(&settings.processing)
                        .arg("RIGHT")
                        .arg("LEFT")
                        .arg(BLOCK.as_secs_f64()),
                )
                .await
        }
        .await;
        match taken {
            Ok(job) => {
                if failing {
                    tracing::info!("taking jobs again: Redis answers");
                    failing = false;
                    backoff = Duration::from_millis(50);
                }
                match job {
                    // The stop came while this BLMOVE waited: the job goes
                    // back to the queue for another worker, unrun.
                    Some(job) if stop.is_cancelled() => {
                        hand_back(settings, redis, &job).await;
                        break;
                    }
                    Some(job) => {
                        lifecycle_runtime::spawn(run_job(settings, redis, job, slot));
                    }
                    // The block ended with no job.
                    None => {}
                }
            }
            Err(e) => {
                if !failing {
                    tracing::warn!("taking jobs failed: {e}; trying again until Redis answers");
                    failing = true;
                }
                tokio::select! {
                    _ = stop.cancelled() => break,
                    _ = tokio::time::sleep(backoff) => {}
                }
                backoff = (backoff * 2).min(MAX_BACKOFF);
            }
        }
    }
    CONSUMER_STOPPED.store(true, Ordering::SeqCst);
    tracing::info!(
        "stopped taking jobs; waiting for {} running job(s)",
        RUNNING.load(Ordering::SeqCst)
    );
}

/// Returns a job taken after the stop began to the end of `jobs` consumers
/// take from, leaving the processing list in the same transaction. If that
/// fails, the job stays in the processing list and the next start puts it
/// back.
async fn hand_back(settings: &Settings, redis: &Redis, job: &str) {
    let mut transaction = redis::pipe();
    transaction
        .atomic()
        .cmd("LREM")
        .arg(&settings.processing)
        .arg(1)
        .arg(job)
        .ignore()
        .cmd("RPUSH")
        .arg(JOBS)
        .arg(job)
        .ignore();
    match redis.commands.exec(&transaction).await {
        Ok(()) => tracing::info!("handed {job} back to {JOBS}: taken as the stop began"),
        Err(e) => tracing::warn!(
            "cannot hand {job} back ({e}): it stays in {} until this worker starts again",
            settings.processing
        ),
    }
}

/// Counts a job as running while it lives.
struct Running;

impl Running {
    fn start() -> Running {
        RUNNING.fetch_add(1, Ordering::SeqCst);
        Running
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        RUNNING.fetch_sub(1, Ordering::SeqCst);
    }
}

/// Runs one job, a tracked task: a graceful stop waits for it, and the
/// shutdown deadline bounds that wait (past it the job stays in the
/// processing list, unrecorded, and runs again after the next start).
async fn run_job(
    settings: &'static Settings,
    redis: &'static Redis,
    job: String,
    _slot: OwnedSemaphorePermit,
) {
    let _running = Running::start();
    let started = Instant::now();
    // The work itself: a real job computes something here, and puts its
    // writes to Redis in the transaction below.
    tokio::time::sleep(settings.job_time).await;
    record_completion(settings, redis, &job).await;
    FINISHED.fetch_add(1, Ordering::SeqCst);
    if lifecycle_runtime::shutdown_token().is_cancelled() {
        FINISHED_WHILE_STOPPING
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(job.clone());
    }
    tracing::info!("finished {job} in {} ms", started.elapsed().as_millis());
}

/// Records the job as done and takes it out of the processing list, in one
/// transaction; retried until Redis has it (or the process ends: then the
/// job is still in the processing list, and runs again after the next
/// start, its effect never applied).
async fn record_completion(settings: &Settings, redis: &Redis, job: &str) {
    let mut transaction = redis::pipe();
    transaction
        .atomic()
        .cmd("RPUSH")
        .arg(DONE)
        .arg(job)
        .ignore()
        .cmd("LREM")
        .arg(&settings.processing)
        .arg(1)
        .arg(job)
        .ignore();
    let mut backoff = Duration::from_millis(50);
    loop {
        let error = match redis.commands.exec(&transaction).await {
            Ok(()) => return,
            Err(e) => e,
        };
        // The EXEC may have been applied, its answer lost with the
        // connection. Redis runs a transaction's commands all at once,
        // never half of them for a crash or a lost connection, and only
        // this transaction takes a running job out of the list: a job no
        // longer there was recorded, and must not be recorded twice. (A
        // command failing on a key of the wrong type does not undo the
        // others: other types under these names are a bug to fix.)
        let position: RedisResult<Option<i64>> = redis
            .commands
            .query(redis::cmd("LPOS").arg(&settings.processing).arg(job))
            .await;
        if let Ok(None) = position {
            return;
        }
        tracing::warn!("recording {job} failed ({error}); trying again");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_BACKOFF);
    }
}

/// A worker has no traffic to drain: no drain delay, even on Kubernetes
/// (where it is 5 s by default for services behind a load balancer), so
/// a SIGTERM stops the taking of jobs at once.
#[service_main(drain_delay_ms = 0)]
async fn main() -> Result<(), String> {
    let settings = settings()?;
    let redis = redis()?;
    let addr = &settings.redis_addr;
    let (host, port) = addr.rsplit_once(':').unwrap_or((addr, "6379"));
    let probe_port = var("LIFECYCLE_PROBE_ADDR")
        .and_then(|a| a.rsplit_once(':').map(|(_, port)| port.to_owned()))
        .filter(|port| port != "0")
        .unwrap_or_else(|| "8081".into());
    tracing::info!(
        "worker {} taking jobs from {JOBS} at {addr} into {}, {} at a time, {} ms each",
        settings.worker_id,
        settings.processing,
        settings.concurrency,
        settings.job_time.as_millis()
    );
    tracing::info!("try: redis-cli -h {host} -p {port} LPUSH {JOBS} job-1 job-2 job-3");
    tracing::info!("then: redis-cli -h {host} -p {port} LRANGE {DONE} 0 -1");
    tracing::info!(
        "probes: curl 'localhost:{probe_port}/readyz?verbose'; curl 'localhost:{probe_port}/livez?verbose'"
    );
    consume(settings, redis, lifecycle_runtime::shutdown_token()).await;
    // The running jobs are tracked tasks: the stop waits for them before
    // the on_shutdown hook reports.
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMIT: Duration = Duration::from_secs(10);

    #[test]
    fn a_heartbeat_older_than_the_limit_fails_liveness() {
        let health = consumer_health(Some(Duration::from_millis(10_001)), false, LIMIT);
        assert!(!health.is_up());
        assert_eq!(
            health.reason(),
            Some("the consumer loop has not advanced for 10001 ms (limit 10000 ms): wedged")
        );
    }

    #[test]
    fn a_recent_heartbeat_passes() {
        assert!(consumer_health(Some(Duration::from_millis(900)), false, LIMIT).is_up());
        assert!(consumer_health(Some(LIMIT), false, LIMIT).is_up());
    }

    #[test]
    fn before_the_loop_and_after_the_stop_nothing_is_wedged() {
        assert!(consumer_health(None, false, LIMIT).is_up());
        assert!(consumer_health(Some(LIMIT * 3), true, LIMIT).is_up());
    }
}
