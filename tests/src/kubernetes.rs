//! Reading what `--lifecycle-manifest` prints, as Kubernetes would.

use std::path::Path;

use k8s_openapi::api::batch::v1::{JobSpec, PodFailurePolicy};
use k8s_openapi::api::core::v1::{
    Container, ContainerState, ContainerStateTerminated, ContainerStatus, PodCondition, PodSpec,
    PodStatus, PodTemplateSpec, Probe,
};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use serde::de::DeserializeOwned;
use serde::Serialize;

/// Runs `bin --lifecycle-manifest` with `env` and parses its
/// PodTemplateSpec, every key in the place Kubernetes reads it from.
pub fn pod_template(bin: impl AsRef<Path>, env: &[(&str, &str)]) -> PodTemplateSpec {
    let (code, stdout, stderr) = crate::run(bin, &["--lifecycle-manifest"], env);
    assert_eq!(code, Some(0), "{stderr}");
    parse_exactly(&stdout.join("\n"))
}

/// Runs `bin --lifecycle-manifest job` with `env` and parses its JobSpec,
/// every key in the place Kubernetes reads it from.
pub fn job_spec(bin: impl AsRef<Path>, env: &[(&str, &str)]) -> JobSpec {
    let (code, stdout, stderr) = crate::run(bin, &["--lifecycle-manifest", "job"], env);
    assert_eq!(code, Some(0), "{stderr}");
    parse_exactly(&stdout.join("\n"))
}

/// The status of a failed pod whose containers ended with these
/// `(name, exit code)`, with these pod conditions `(type, status)`.
pub fn failed_pod(containers: &[(&str, i32)], conditions: &[(&str, &str)]) -> PodStatus {
    PodStatus {
        phase: Some("Failed".to_owned()),
        container_statuses: Some(
            containers
                .iter()
                .map(|(name, code)| ContainerStatus {
                    name: (*name).to_owned(),
                    state: Some(ContainerState {
                        terminated: Some(ContainerStateTerminated {
                            exit_code: *code,
                            ..Default::default()
                        }),
                        ..Default::default()
                    }),
                    ..Default::default()
                })
                .collect(),
        ),
        conditions: Some(
            conditions
                .iter()
                .map(|(type_, status)| PodCondition {
                    type_: (*type_).to_owned(),
                    status: (*status).to_owned(),
                    ..Default::default()
                })
                .collect(),
        ),
        ..Default::default()
    }
}

/// What the Job controller does with a failed pod under `policy`, as its
/// `matchPodFailurePolicy` decides (pkg/controller/job/pod_failure_policy.go):
/// the first rule that matches wins, and a pod that matches none is
/// counted against `backoffLimit` (`"Count"`). An `onExitCodes` rule
/// matches a container (of the one named, if it names one) that
/// terminated with a non-zero code `In` (or `NotIn`) its values; an
/// `onPodConditions` rule, a pod condition of the same type and status.
pub fn failure_policy_action(policy: &PodFailurePolicy, pod: &PodStatus) -> String {
    let containers = pod
        .init_container_statuses
        .iter()
        .chain(&pod.container_statuses)
        .flatten();
    for rule in &policy.rules {
        let matched = if let Some(codes) = &rule.on_exit_codes {
            containers.clone().any(|status| {
                let Some(code) = status
                    .state
                    .as_ref()
                    .and_then(|state| state.terminated.as_ref())
                    .map(|terminated| terminated.exit_code)
                else {
                    return false;
                };
                let named = codes
                    .container_name
                    .as_ref()
                    .is_none_or(|name| *name == status.name);
                let listed = codes.values.contains(&code);
                named
                    && code != 0
                    && match codes.operator.as_str() {
                        "In" => listed,
                        "NotIn" => !listed,
                        // Unknown operators are not satisfied.
                        _ => false,
                    }
            })
        } else if let Some(patterns) = &rule.on_pod_conditions {
            pod.conditions.iter().flatten().any(|condition| {
                patterns.iter().any(|pattern| {
                    pattern.type_ == condition.type_ && pattern.status == condition.status
                })
            })
        } else {
            false
        };
        if matched {
            return rule.action.clone();
        }
    }
    "Count".to_owned()
}

/// The pod spec of [`pod_template`].
pub fn manifest(bin: impl AsRef<Path>, env: &[(&str, &str)]) -> PodSpec {
    pod_template(bin, env)
        .spec
        .expect("the template has a spec")
}

/// Parses `yaml` into a k8s-openapi type and checks that serialising it
/// gives back the very document: k8s-openapi silently ignores unknown
/// keys, so only the round trip catches a field in the wrong place.
pub fn parse_exactly<T: DeserializeOwned + Serialize>(yaml: &str) -> T {
    let document: serde_json::Value = serde_norway::from_str(yaml).expect("YAML");
    let parsed: T = serde_json::from_value(document.clone())
        .unwrap_or_else(|e| panic!("not a {}: {e}\n{yaml}", std::any::type_name::<T>()));
    let round_trip = serde_json::to_value(&parsed).unwrap();
    assert_eq!(
        round_trip,
        document,
        "a key is not where {} has it:\n{yaml}",
        std::any::type_name::<T>()
    );
    parsed
}

/// An HTTP probe's (probe, path, numeric port).
pub fn http_probe(probe: &Option<Probe>) -> (&Probe, String, i32) {
    let probe = probe.as_ref().expect("probe present");
    let get = probe.http_get.as_ref().expect("an httpGet probe");
    let port = match &get.port {
        IntOrString::Int(port) => *port,
        other => panic!("numeric port expected, got {other:?}"),
    };
    (probe, get.path.clone().unwrap(), port)
}

/// A gRPC probe's (probe, service, port).
pub fn grpc_probe(probe: &Option<Probe>) -> (&Probe, String, i32) {
    let probe = probe.as_ref().expect("probe present");
    let grpc = probe.grpc.as_ref().expect("a grpc probe");
    let service = grpc.service.clone().expect("a service name");
    (probe, service, grpc.port)
}

/// The container called `name`.
pub fn container(spec: &PodSpec, name: &str) -> Container {
    spec.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("container {name}"))
        .clone()
}
