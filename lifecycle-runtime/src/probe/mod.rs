//! The probe server and what it answers: hyper on its own OS thread and
//! runtime ([`server`]), the endpoints ([`endpoint`]), which checks a probe
//! runs ([`evaluate`]), the built-in ones among them ([`builtins`]), the
//! HTTP front end ([`http`]) and what answers each request, HTTP or gRPC
//! ([`responder`]), the answer formats ([`report`]), their size bounds
//! ([`bounds`]) and who reads the checks' reasons ([`reasons`]).

pub(crate) mod bounds;
pub(crate) mod builtins;
pub(crate) mod endpoint;
pub(crate) mod evaluate;
pub(crate) mod http;
pub(crate) mod reasons;
pub(crate) mod report;
pub(crate) mod responder;
pub(crate) mod server;

pub(crate) use endpoint::Endpoint;
pub(crate) use evaluate::Evaluator;
pub(crate) use responder::Responder;
pub(crate) use server::ProbeServer;
