//! What the example's tests share: the service started against a Redis of
//! the test's own, and a real tonic client, for `kv.v1.Kv` and for
//! `grpc.health.v1.Health` on either port, on a runtime of its own so that
//! the tests stay plain blocking code beside the kit.

// Each test file uses its own part of this module.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use lifecycle_runtime::grpc::proto::health_check_response::ServingStatus;
use lifecycle_runtime::grpc::proto::health_client::HealthClient;
use lifecycle_runtime::grpc::proto::{HealthCheckRequest, HealthCheckResponse};
use lifecycle_testing::ServiceBuilder;
use lifecycle_tests::fixture;
use lifecycle_tests::redis::RedisServer;
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tonic::transport::{Channel, Endpoint};
use tonic::{Code, Status};

/// The client side of `proto/kv.proto`, as `build.rs` generated it.
pub mod kv {
    include!(concat!(env!("OUT_DIR"), "/kv.v1.rs"));
}

use kv::kv_client::KvClient;
use kv::{GetRequest, SetRequest};

pub const TONIC_GRPC: &str = env!("CARGO_BIN_EXE_tonic-grpc");

/// How long one call may take before it counts as failed (the client's
/// deadline, sent as `grpc-timeout`).
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The example on a free application port (and, by the kit, a free probe
/// port), talking to `redis`.
pub fn builder(redis: &RedisServer) -> ServiceBuilder {
    fixture(TONIC_GRPC)
        .env("APP_ADDR", "127.0.0.1:0")
        .env("REDIS_URL", redis.url())
}

/// A tonic client of one address: one HTTP/2 connection, opened at once,
/// on a runtime of its own (multi-threaded: a call spawned with
/// [`Client::spawn_set`] goes on while the test blocks).
pub struct Client {
    runtime: Runtime,
    channel: Channel,
}

impl Client {
    /// Connects to `addr` (plaintext HTTP/2, as the kubelet and gRPC
    /// clients in a cluster do); panics when it cannot.
    pub fn connect(addr: SocketAddr) -> Client {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .connect_timeout(CALL_TIMEOUT)
            .timeout(CALL_TIMEOUT);
        let channel = runtime
            .block_on(endpoint.connect())
            .unwrap_or_else(|e| panic!("connect to {addr}: {e:?}"));
        Client { runtime, channel }
    }

    pub fn get(&self, key: &str) -> Result<String, Status> {
        let mut client = KvClient::new(self.channel.clone());
        let request = GetRequest {
            key: key.to_owned(),
        };
        self.runtime
            .block_on(client.get(request))
            .map(|answer| answer.into_inner().value)
    }

    pub fn set(&self, key: &str, value: &str) -> Result<(), Status> {
        self.runtime.block_on(self.spawn_set(key, value)).unwrap()
    }

    /// Starts a `Set` and returns at once: the call goes on on the
    /// client's runtime; [`Client::finish`] waits for its answer.
    pub fn spawn_set(&self, key: &str, value: &str) -> JoinHandle<Result<(), Status>> {
        let mut client = KvClient::new(self.channel.clone());
        let request = SetRequest {
            key: key.to_owned(),
            value: value.to_owned(),
        };
        self.runtime
            .spawn(async move { client.set(request).await.map(drop) })
    }

    /// The answer of a call from [`Client::spawn_set`].
    pub fn finish<T>(&self, call: JoinHandle<T>) -> T {
        self.runtime.block_on(call).unwrap()
    }

    /// `grpc.health.v1.Health/Check` of `service`.
    pub fn check(&self, service: &str) -> Result<ServingStatus, Status> {
        let mut client = HealthClient::new(self.channel.clone());
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        let answer = self.runtime.block_on(client.check(request))?;
        let status = answer.into_inner().status;
        Ok(ServingStatus::try_from(status)
            .unwrap_or_else(|_| panic!("{service:?}: no such serving status: {status}")))
    }

    /// Opens `Watch` on `service`: [`Watcher::next`] reads its updates.
    pub fn watch(&self, service: &str) -> Watcher<'_> {
        let mut client = HealthClient::new(self.channel.clone());
        let request = HealthCheckRequest {
            service: service.to_owned(),
        };
        let stream = self
            .runtime
            .block_on(client.watch(request))
            .unwrap_or_else(|e| panic!("Watch {service:?}: {e:?}"))
            .into_inner();
        Watcher {
            client: self,
            service: service.to_owned(),
            stream,
        }
    }

    /// Asks `Check` of `service` until it answers `expected`, or panics
    /// with the last answer at the deadline; returns how long it took.
    #[track_caller]
    pub fn wait_for(&self, service: &str, expected: ServingStatus, deadline: Duration) -> Duration {
        let start = Instant::now();
        loop {
            let answer = self.check(service);
            if answer.as_ref().ok() == Some(&expected) {
                return start.elapsed();
            }
            assert!(
                start.elapsed() < deadline,
                "{service:?} not {expected:?} within {deadline:?}: the last answer was {answer:?}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }
}

/// An open `Watch`.
pub struct Watcher<'a> {
    client: &'a Client,
    service: String,
    stream: tonic::Streaming<HealthCheckResponse>,
}

impl Watcher<'_> {
    /// The next status the server sends, within `deadline`; panics when
    /// none comes or the stream ends.
    #[track_caller]
    pub fn next(&mut self, deadline: Duration) -> ServingStatus {
        let stream = &mut self.stream;
        let next = self
            .client
            .runtime
            .block_on(async { tokio::time::timeout(deadline, stream.message()).await });
        let service = &self.service;
        match next {
            Ok(Ok(Some(answer))) => ServingStatus::try_from(answer.status).unwrap_or_else(|_| {
                panic!("{service:?}: no such serving status: {}", answer.status)
            }),
            Ok(other) => panic!("Watch {service:?} ended: {other:?}"),
            Err(_) => panic!("Watch {service:?}: nothing within {deadline:?}"),
        }
    }
}

/// Asserts that `Check` of `service` answers `expected`.
#[track_caller]
pub fn assert_status(client: &Client, service: &str, expected: ServingStatus) {
    let answer = client.check(service);
    assert_eq!(
        answer.as_ref().ok(),
        Some(&expected),
        "{service:?}: {answer:?}"
    );
}

/// Asserts that `result` is an error with status code `code`, and returns
/// its message.
#[track_caller]
pub fn assert_code<T: std::fmt::Debug>(result: Result<T, Status>, code: Code) -> String {
    match result {
        Err(status) if status.code() == code => status.message().to_owned(),
        other => panic!("expected {code:?}, got {other:?}"),
    }
}

/// Calls `probe` until it returns `Some`, or panics naming `what` at the
/// deadline.
#[track_caller]
pub fn wait_until<T>(what: &str, deadline: Duration, mut probe: impl FnMut() -> Option<T>) -> T {
    let until = Instant::now() + deadline;
    loop {
        if let Some(value) = probe() {
            return value;
        }
        assert!(Instant::now() < until, "not within {deadline:?}: {what}");
        std::thread::sleep(Duration::from_millis(10));
    }
}
