//! gRPC and HTTP/2 beside the kit's probes: `List`, and a plain HTTP/2
//! request (no gRPC) to the probe port.

use std::collections::BTreeMap;
use std::net::SocketAddr;

use bytes::Bytes;
use http_body_util::{BodyExt, Empty};
use hyper_util::rt::{TokioExecutor, TokioIo};
use lifecycle_runtime::grpc::proto::health_client::HealthClient;
use lifecycle_runtime::grpc::proto::HealthListRequest;
use lifecycle_testing::grpc::ServingStatus;

use crate::CLIENT_TIMEOUT;

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// `grpc.health.v1.Health/List` on `addr`: every name and its status.
pub fn grpc_list(addr: SocketAddr) -> BTreeMap<String, ServingStatus> {
    runtime().block_on(async {
        let channel = tonic::transport::Endpoint::from_shared(format!("http://{addr}"))
            .unwrap()
            .timeout(CLIENT_TIMEOUT)
            .connect()
            .await
            .unwrap();
        let answer = HealthClient::new(channel)
            .list(HealthListRequest {})
            .await
            .unwrap()
            .into_inner();
        answer
            .statuses
            .into_iter()
            .map(|(name, response)| (name, response.status()))
            .collect()
    })
}

/// A GET of `path` over HTTP/2 with prior knowledge: its status and body.
pub fn h2_get(addr: SocketAddr, path: &str) -> (u16, String) {
    runtime().block_on(async {
        let stream = tokio::net::TcpStream::connect(addr).await.unwrap();
        let (mut sender, connection) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(connection);
        let request = hyper::Request::get(format!("http://{addr}{path}"))
            .body(Empty::<Bytes>::new())
            .unwrap();
        let answer = tokio::time::timeout(CLIENT_TIMEOUT, sender.send_request(request))
            .await
            .expect("an HTTP/2 answer in time")
            .unwrap();
        let status = answer.status().as_u16();
        let body = answer.into_body().collect().await.unwrap().to_bytes();
        (status, String::from_utf8_lossy(&body).into_owned())
    })
}
