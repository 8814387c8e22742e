//! The fields of a Kubernetes document the kit's kubelet reads, as
//! serde reads them, and where a document keeps its pod specs.

use serde::de::IgnoredAny;
use serde::Deserialize;

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawDocument {
    pub(super) spec: Option<RawSpec>,
    /// A PodTemplate's.
    pub(super) template: Option<RawTemplate>,
    /// A List's.
    pub(super) items: Option<Vec<RawDocument>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawSpec {
    pub(super) containers: Option<Vec<RawContainer>>,
    pub(super) template: Option<RawTemplate>,
    /// A CronJob's.
    pub(super) job_template: Option<RawTemplate>,
    pub(super) termination_grace_period_seconds: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct RawTemplate {
    pub(super) spec: Option<Box<RawSpec>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawContainer {
    pub(super) name: Option<String>,
    pub(super) startup_probe: Option<RawProbe>,
    pub(super) liveness_probe: Option<RawProbe>,
    pub(super) readiness_probe: Option<RawProbe>,
    pub(super) lifecycle: Option<RawLifecycle>,
    pub(super) env: Option<Vec<RawEnv>>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawLifecycle {
    pub(super) pre_stop: Option<RawHandler>,
    pub(super) stop_signal: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawHandler {
    pub(super) exec: Option<RawExec>,
    pub(super) sleep: Option<RawSleep>,
    pub(super) http_get: Option<IgnoredAny>,
    pub(super) tcp_socket: Option<IgnoredAny>,
}

#[derive(Deserialize)]
pub(super) struct RawExec {
    pub(super) command: Option<Vec<String>>,
}

#[derive(Deserialize)]
pub(super) struct RawSleep {
    pub(super) seconds: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct RawEnv {
    pub(super) name: String,
    pub(super) value: Option<String>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
pub(super) struct RawProbe {
    pub(super) http_get: Option<RawHttpGet>,
    pub(super) grpc: Option<RawGrpc>,
    pub(super) exec: Option<IgnoredAny>,
    pub(super) tcp_socket: Option<IgnoredAny>,
    pub(super) initial_delay_seconds: Option<i64>,
    pub(super) period_seconds: Option<i64>,
    pub(super) timeout_seconds: Option<i64>,
    pub(super) success_threshold: Option<i64>,
    pub(super) failure_threshold: Option<i64>,
    pub(super) termination_grace_period_seconds: Option<i64>,
}

#[derive(Deserialize)]
pub(super) struct RawGrpc {
    pub(super) service: Option<String>,
}

#[derive(Deserialize)]
pub(super) struct RawHttpGet {
    pub(super) path: Option<String>,
    pub(super) scheme: Option<String>,
}

/// The pod specs of a document: its own, its template's (a workload, a
/// PodTemplate), its job template's (a CronJob), or its items' (a List).
pub(super) fn pod_specs(document: RawDocument, found: &mut Vec<(RawSpec, Vec<RawContainer>)>) {
    if let Some(spec) = document.spec.and_then(pod_spec) {
        found.push(spec);
    }
    if let Some(spec) = document
        .template
        .and_then(|t| t.spec)
        .and_then(|s| pod_spec(*s))
    {
        found.push(spec);
    }
    for item in document.items.into_iter().flatten() {
        pod_specs(item, found);
    }
}

/// The pod spec of a spec: itself, or its (job) template's.
pub(super) fn pod_spec(mut spec: RawSpec) -> Option<(RawSpec, Vec<RawContainer>)> {
    match spec.containers.take() {
        Some(containers) => Some((spec, containers)),
        None => spec
            .template
            .or(spec.job_template)
            .and_then(|t| t.spec)
            .and_then(|s| pod_spec(*s)),
    }
}
