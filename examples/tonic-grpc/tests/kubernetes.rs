//! The example on Kubernetes: `k8s.yaml` read as Kubernetes reads it
//! (k8s-openapi, every key in its place), its `grpc:` probes the very ones
//! `--lifecycle-manifest` generates from the binary (`probe_protocol =
//! "grpc"`), and the generated manifest never pointing a probe at `""`.

// The manifest read as Kubernetes does, by the Linux harness (lifecycle-tests).
#![cfg(target_os = "linux")]

mod support;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::core::v1::{Probe, Service};
use lifecycle_tests::kubernetes::{container, manifest, parse_exactly, pod_template};

use support::TONIC_GRPC;

const K8S_YAML: &str = include_str!("../k8s.yaml");
const HINT: &str =
    "examples/tonic-grpc/k8s.yaml is out of date: paste in `cargo run -p tonic-grpc -- --lifecycle-manifest`";

/// A `grpc:` probe's (port, service).
fn grpc_probe(probe: &Option<Probe>) -> (i32, String) {
    let probe = probe.as_ref().expect("probe present");
    assert!(
        probe.http_get.is_none() && probe.exec.is_none(),
        "{probe:?}"
    );
    let grpc = probe.grpc.as_ref().expect("a grpc probe");
    (grpc.port, grpc.service.clone().unwrap_or_default())
}

#[test]
fn the_generated_manifest_has_grpc_probes_on_the_probe_port() {
    let generated = manifest(TONIC_GRPC, &[]);
    let generated = container(&generated, "tonic-grpc");
    assert_eq!(
        grpc_probe(&generated.startup_probe),
        (8081, "startupz".into())
    );
    assert_eq!(
        grpc_probe(&generated.liveness_probe),
        (8081, "livez".into())
    );
    assert_eq!(
        grpc_probe(&generated.readiness_probe),
        (8081, "readyz".into())
    );
}

#[test]
fn the_deployment_carries_the_generated_probes() {
    let mut documents = K8S_YAML.split("\n---\n");
    let deployment: Deployment = parse_exactly(documents.next().unwrap());
    let template = deployment.spec.unwrap().template;
    // Prometheus finds the probe port's /metrics as the manifest says.
    assert_eq!(
        template
            .metadata
            .as_ref()
            .and_then(|m| m.annotations.clone()),
        pod_template(TONIC_GRPC, &[])
            .metadata
            .and_then(|m| m.annotations),
        "examples/tonic-grpc/k8s.yaml is out of date: the prometheus.io annotations"
    );
    let pod = template.spec.unwrap();
    let deployed = container(&pod, "tonic-grpc");
    let generated = manifest(TONIC_GRPC, &[]);
    let generated_container = container(&generated, "tonic-grpc");

    assert_eq!(
        deployed.startup_probe, generated_container.startup_probe,
        "{HINT}"
    );
    assert_eq!(
        deployed.liveness_probe, generated_container.liveness_probe,
        "{HINT}"
    );
    assert_eq!(
        deployed.readiness_probe, generated_container.readiness_probe,
        "{HINT}"
    );
    assert_eq!(
        deployed.termination_message_policy, generated_container.termination_message_policy,
        "{HINT}"
    );
    assert_eq!(
        pod.termination_grace_period_seconds, generated.termination_grace_period_seconds,
        "{HINT}"
    );
    let ports = deployed.ports.clone().unwrap();
    for port in generated_container.ports.unwrap() {
        assert!(ports.contains(&port), "{HINT}: no {port:?}");
    }
    // The application's port, where the Service sends the calls.
    assert!(
        ports
            .iter()
            .any(|p| p.name.as_deref() == Some("grpc") && p.container_port == 50051),
        "{ports:?}"
    );

    // The initContainer is the same image in preflight mode, with the same
    // REDIS_URL to check.
    let init = &pod.init_containers.unwrap()[0];
    assert_eq!(init.image, deployed.image);
    assert_eq!(
        init.args.as_deref(),
        Some(&["--lifecycle-preflight".to_string()][..])
    );
    let redis_url = |env: &Option<Vec<k8s_openapi::api::core::v1::EnvVar>>| {
        env.iter()
            .flatten()
            .find(|var| var.name == "REDIS_URL")
            .and_then(|var| var.value.clone())
    };
    assert!(redis_url(&deployed.env).is_some());
    assert_eq!(redis_url(&init.env), redis_url(&deployed.env));

    // The Service in front of it: the application's port, as plaintext
    // HTTP/2.
    let service: Service = parse_exactly(documents.next().expect("a Service"));
    let port = &service.spec.unwrap().ports.unwrap()[0];
    assert_eq!(port.app_protocol.as_deref(), Some("kubernetes.io/h2c"));
    assert!(documents.next().is_none());
}
