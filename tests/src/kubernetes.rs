//! Reading what `--lifecycle-manifest` prints, as Kubernetes would.

use std::path::Path;

use k8s_openapi::api::core::v1::{Container, PodSpec, Probe};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;

/// Runs `bin --lifecycle-manifest` with `env` and parses its PodSpec.
pub fn manifest(bin: impl AsRef<Path>, env: &[(&str, &str)]) -> PodSpec {
    let (code, stdout, stderr) = crate::run(bin, &["--lifecycle-manifest"], env);
    assert_eq!(code, Some(0), "{stderr}");
    serde_yaml::from_str(&stdout.join("\n")).expect("a PodSpec")
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

/// The container called `name`.
pub fn container(spec: &PodSpec, name: &str) -> Container {
    spec.containers
        .iter()
        .find(|c| c.name == name)
        .unwrap_or_else(|| panic!("container {name}"))
        .clone()
}
