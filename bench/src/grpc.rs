//! gRPC health `Check` calls, timed: on a new connection each (as the
//! kubelet's gRPC prober dials for every probe) or on one channel (as a
//! client-side health checker or a proxy keeps).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use tonic::transport::{Channel, Endpoint};
use tonic_health::pb::health_check_response::ServingStatus;
use tonic_health::pb::health_client::HealthClient;
use tonic_health::pb::HealthCheckRequest;

/// A client for `addr`, either dialling anew for every call or keeping one
/// channel.
pub struct Checker {
    endpoint: Endpoint,
    channel: Option<HealthClient<Channel>>,
    runtime: tokio::runtime::Runtime,
}

impl Checker {
    pub fn new(addr: SocketAddr, one_channel: bool) -> Result<Checker, String> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .map_err(|e| e.to_string())?;
        let endpoint = Endpoint::from_shared(format!("http://{addr}"))
            .map_err(|e| e.to_string())?
            .user_agent("kube-probe/1.33")
            .map_err(|e| e.to_string())?
            .tcp_nodelay(true);
        let channel = if one_channel {
            let channel = runtime
                .block_on(endpoint.connect())
                .map_err(|e| format!("gRPC connect to {addr}: {e}"))?;
            Some(HealthClient::new(channel))
        } else {
            None
        };
        Ok(Checker {
            endpoint,
            channel,
            runtime,
        })
    }

    /// One `Check` of `service`: its latency when it answered SERVING.
    pub fn check(&mut self, service: &str, timeout: Duration) -> Result<Duration, String> {
        let start = Instant::now();
        let request = HealthCheckRequest {
            service: service.to_string(),
        };
        let endpoint = self.endpoint.clone();
        let kept = self.channel.clone();
        let answer = self.runtime.block_on(async move {
            tokio::time::timeout(timeout, async move {
                let mut client = match kept {
                    Some(client) => client,
                    None => HealthClient::new(endpoint.connect().await.map_err(|e| e.to_string())?),
                };
                client
                    .check(request)
                    .await
                    .map_err(|status| status.to_string())
            })
            .await
            .map_err(|_| format!("no answer within {} ms", timeout.as_millis()))?
        })?;
        let latency = start.elapsed();
        match answer.into_inner().status() {
            ServingStatus::Serving => Ok(latency),
            other => Err(format!("{other:?}")),
        }
    }
}
