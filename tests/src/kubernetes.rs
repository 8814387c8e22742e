//! Reading what `--lifecycle-manifest` prints, as Kubernetes would.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, PodSpec, PodTemplateSpec, Probe};
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
