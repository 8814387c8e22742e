//! gRPC health (cargo feature `grpc`): `grpc.health.v1.Health` answered
//! from the same checks and phase as `/livez`, `/readyz`, `/startupz` and
//! `/healthz`, so the two protocols never disagree.

/// The messages, client and server of `grpc.health.v1`, generated from the
/// upstream `health.proto` (with `List`, gRFC A90).
#[allow(missing_docs, clippy::all, clippy::pedantic)]
pub mod proto {
    include!("generated.rs");
}

pub(crate) mod client;
