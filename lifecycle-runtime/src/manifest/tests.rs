//! The generator: probes, metadata, the Job and the grace period.

use std::time::Duration;

use serde_json::json;

use super::*;
use crate::audit::read::read_yaml;
use crate::config::ServiceConfig;

/// The one YAML document in `yaml`, as a tool reading the manifest
/// gets it.
pub(super) fn from_yaml(yaml: &str) -> serde_json::Value {
    let mut documents = read_yaml(yaml).unwrap();
    assert_eq!(documents.len(), 1, "{yaml}");
    documents.remove(0)
}

#[test]
fn the_manifest_is_laid_out_as_the_readme_shows_it() {
    let yaml = render("svc", &settings(&[]).unwrap(), Manifest::Job).unwrap();
    let body = yaml
        .lines()
        .skip_while(|line| line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    let expected = "\
backoffLimit: 6
podFailurePolicy:
  rules:
  - action: FailJob
    onExitCodes:
      containerName: svc
      operator: In
      values:
      - 2
  - action: Ignore
    onPodConditions:
    - status: 'True'
      type: DisruptionTarget
template:
  metadata:
{annotations}    labels:
      app.kubernetes.io/name: svc
  spec:
    containers:
    - name: svc
      ports:
      - containerPort: 9100
        name: probes
        protocol: TCP
      terminationMessagePolicy: FallbackToLogsOnError
    restartPolicy: Never
    terminationGracePeriodSeconds: 30";
    // Without the `metrics` feature there is nothing to scrape.
    let annotations = if cfg!(feature = "metrics") {
        "    annotations:
      prometheus.io/path: /metrics
      prometheus.io/port: '9100'
      prometheus.io/scrape: 'true'
"
    } else {
        ""
    };
    assert_eq!(body, expected.replace("{annotations}", annotations));
}

/// The probe of the container in the manifest rendered with `env`,
/// under `key`, as JSON.
fn probes(env: &[(&str, &str)]) -> Vec<(String, serde_json::Value)> {
    let yaml = render("svc", &settings(env).unwrap(), Manifest::Pod).unwrap();
    let template = from_yaml(&yaml);
    let container = &template["spec"]["containers"][0];
    ["startupProbe", "livenessProbe", "readinessProbe"]
        .into_iter()
        .map(|key| (key.to_owned(), container[key].clone()))
        .collect()
}

#[test]
fn http_probes_get_the_endpoints() {
    for (key, probe) in probes(&[]) {
        let path = probe["httpGet"]["path"].as_str().unwrap().to_owned();
        assert_eq!(probe["httpGet"]["port"], 9100, "{key}");
        assert!(probe.get("grpc").is_none(), "{key}: {probe}");
        let expected = match key.as_str() {
            "startupProbe" => "/startupz",
            "livenessProbe" => "/livez",
            _ => "/readyz",
        };
        assert_eq!(path, expected);
    }
}

#[cfg(feature = "grpc")]
#[test]
fn grpc_probes_ask_the_service_named_after_the_endpoint_with_the_same_timings() {
    let http = probes(&[]);
    let grpc = probes(&[("LIFECYCLE_PROBE_PROTOCOL", "grpc")]);
    for ((key, http), (_, grpc)) in http.into_iter().zip(grpc) {
        let service = match key.as_str() {
            "startupProbe" => "startupz",
            "livenessProbe" => "livez",
            _ => "readyz",
        };
        assert_eq!(
            grpc["grpc"],
            json!({ "port": 9100, "service": service }),
            "{key}"
        );
        assert!(grpc.get("httpGet").is_none(), "{key}: {grpc}");
        for timing in [
            "timeoutSeconds",
            "periodSeconds",
            "failureThreshold",
            "successThreshold",
        ] {
            assert_eq!(grpc[timing], http[timing], "{key}.{timing}");
        }
    }
}

fn settings(env: &[(&str, &str)]) -> Result<Settings, crate::config::ConfigError> {
    let config = ServiceConfig {
        probe_addr: Some("0.0.0.0:9100"),
        tracing: false,
        ..ServiceConfig::defaults()
    };
    let env: Vec<(String, String)> = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Settings::resolve(&config, &move |name: &str| {
        env.iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| std::ffi::OsString::from(v))
    })
}

/// The pod template's metadata rendered with `env`, as JSON.
fn rendered_metadata(env: &[(&str, &str)]) -> serde_json::Value {
    let yaml = render("svc", &settings(env).unwrap(), Manifest::Pod).unwrap();
    let template = from_yaml(&yaml);
    template["metadata"].clone()
}

#[test]
#[cfg(feature = "metrics")]
fn with_metrics_on_the_pod_is_annotated_for_prometheus_with_strings() {
    let metadata = rendered_metadata(&[]);
    assert_eq!(
        metadata["annotations"],
        json!({
            "prometheus.io/scrape": "true",
            "prometheus.io/port": "9100",
            "prometheus.io/path": "/metrics",
        })
    );
    assert_eq!(
        metadata["labels"],
        json!({ "app.kubernetes.io/name": "svc" })
    );
    // The port follows the probe address.
    let moved = rendered_metadata(&[("LIFECYCLE_PROBE_ADDR", "[::]:9300")]);
    assert_eq!(moved["annotations"]["prometheus.io/port"], "9300");
}

#[test]
fn with_metrics_off_the_pod_has_no_annotations() {
    for off in ["off", "false", "0"] {
        let metadata = rendered_metadata(&[("LIFECYCLE_METRICS", off)]);
        assert!(metadata.get("annotations").is_none(), "{off}: {metadata}");
        assert_eq!(
            metadata["labels"],
            json!({ "app.kubernetes.io/name": "svc" })
        );
    }
}

/// The JobSpec rendered with `env`, as JSON, and its header.
fn job(env: &[(&str, &str)]) -> (serde_json::Value, String) {
    let yaml = render("svc", &settings(env).unwrap(), Manifest::Job).unwrap();
    let header = yaml
        .lines()
        .take_while(|line| line.starts_with('#'))
        .collect::<Vec<_>>()
        .join("\n");
    (from_yaml(&yaml), header)
}

fn pod(env: &[(&str, &str)]) -> serde_json::Value {
    from_yaml(&render("svc", &settings(env).unwrap(), Manifest::Pod).unwrap())
}

#[test]
fn a_job_runs_the_pod_s_container_without_probes_and_never_restarts_it() {
    for env in [&[][..], &[("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "40000")][..]] {
        let (job, _) = job(env);
        let pod = pod(env);
        let spec = &job["template"]["spec"];
        assert_eq!(spec["restartPolicy"], "Never", "{job}");
        assert_eq!(
            spec["terminationGracePeriodSeconds"],
            pod["spec"]["terminationGracePeriodSeconds"]
        );
        assert_eq!(job["template"]["metadata"], pod["metadata"]);
        // The pod template's container, less its three probes.
        let mut expected = pod["spec"]["containers"].clone();
        for key in ["startupProbe", "livenessProbe", "readinessProbe"] {
            assert!(expected[0].as_object_mut().unwrap().remove(key).is_some());
        }
        assert_eq!(spec["containers"], expected);
        assert_eq!(
            spec["containers"][0]["terminationMessagePolicy"],
            "FallbackToLogsOnError"
        );
        let keys: Vec<&String> = job.as_object().unwrap().keys().collect();
        assert_eq!(keys, ["backoffLimit", "podFailurePolicy", "template"]);
        assert_eq!(job["backoffLimit"], 6);
    }
    // The pod template has no restart policy (a Deployment's is Always).
    assert!(pod(&[])["spec"].get("restartPolicy").is_none());
}

#[cfg(feature = "grpc")]
#[test]
fn a_job_has_no_probes_under_grpc_either() {
    let (job, _) = job(&[("LIFECYCLE_PROBE_PROTOCOL", "grpc")]);
    let container = job["template"]["spec"]["containers"][0]
        .as_object()
        .unwrap();
    assert!(
        container.keys().all(|key| !key.ends_with("Probe")),
        "{container:?}"
    );
}

#[test]
fn the_job_s_failure_policy_follows_the_exit_code_table() {
    let (job, header) = job(&[]);
    assert_eq!(
        job["podFailurePolicy"],
        json!({
            "rules": [
                {
                    "action": "FailJob",
                    "onExitCodes": {
                        "containerName": "svc",
                        "operator": "In",
                        "values": [2],
                    },
                },
                {
                    "action": "Ignore",
                    "onPodConditions": [{ "type": "DisruptionTarget", "status": "True" }],
                },
            ],
        })
    );
    // The rule names the container by the name the template gives it.
    assert_eq!(job["template"]["spec"]["containers"][0]["name"], "svc");
    assert_eq!(
        job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"],
        json!([exit::Code::BadConfig.as_i32()])
    );
    // None of the other codes of the table fails the Job.
    for code in [
        exit::Code::Failure.as_i32(),
        exit::Code::Panic.as_i32(),
        130,
        143,
        137,
    ] {
        let values = &job["podFailurePolicy"]["rules"][0]["onExitCodes"]["values"];
        assert!(!values.as_array().unwrap().contains(&json!(code)), "{code}");
    }
    assert!(
        header.starts_with("# Generated by `svc --lifecycle-manifest job`"),
        "{header}"
    );
    assert!(
        header.contains("exit 2 (invalid configuration) fails the Job"),
        "{header}"
    );
}

#[test]
fn a_job_carries_the_pod_s_metrics_annotations_or_none() {
    let (on, _) = job(&[]);
    let off = job(&[("LIFECYCLE_METRICS", "off")]).0;
    assert_eq!(on["template"]["metadata"], rendered_metadata(&[]));
    assert!(
        off["template"]["metadata"].get("annotations").is_none(),
        "{off}"
    );
    assert_eq!(
        off["template"]["metadata"],
        rendered_metadata(&[("LIFECYCLE_METRICS", "off")])
    );
}

#[test]
fn a_job_needs_an_address_the_kubelet_can_reach_as_a_pod_does() {
    for addr in ["127.0.0.1:9100", "0.0.0.0:0"] {
        let settings = settings(&[("LIFECYCLE_PROBE_ADDR", addr)]).unwrap();
        assert_eq!(
            render("svc", &settings, Manifest::Job),
            render("svc", &settings, Manifest::Pod),
            "{addr}"
        );
        assert!(render("svc", &settings, Manifest::Job).is_err());
    }
}

#[test]
fn the_grace_period_of_the_largest_values_stays_in_range() {
    let day = "86400000";
    let largest = settings(&[
        ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", day),
        ("LIFECYCLE_DRAIN_DELAY_MS", day),
    ])
    .unwrap();
    // A day (the drain delay is within it) and the 5 s of slack.
    assert_eq!(grace_seconds(&largest), 86_400 + 5);
    // Beyond the bound: a bad value, never a grace period of
    // 36893488147419109 s.
    assert!(settings(&[("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "18446744073709551615")]).is_err());
    let absurd = Settings {
        shutdown_timeout: Duration::MAX,
        cluster_drain_delay: Duration::MAX,
        ..largest
    };
    assert_eq!(grace_seconds(&absurd), u64::MAX, "saturates, never panics");
}

#[cfg(unix)]
#[test]
fn another_stop_signal_is_asked_of_the_kubelet_on_linux_with_its_feature_gate() {
    for manifest in [Manifest::Pod, Manifest::Job] {
        let yaml = render(
            "svc",
            &settings(&[("LIFECYCLE_STOP_SIGNAL", "SIGQUIT")]).unwrap(),
            manifest,
        )
        .unwrap();
        let document = from_yaml(&yaml);
        let spec = match manifest {
            Manifest::Pod => &document["spec"],
            Manifest::Job => &document["template"]["spec"],
        };
        assert_eq!(spec["os"], json!({ "name": "linux" }), "{yaml}");
        assert_eq!(
            spec["containers"][0]["lifecycle"],
            json!({ "stopSignal": "SIGQUIT" }),
            "{yaml}"
        );
        assert!(
            yaml.starts_with("# lifecycle.stopSignal SIGQUIT needs Kubernetes' ContainerStopSignals feature gate (alpha in 1.33),\n"),
            "{yaml}"
        );
    }
    // SIGTERM is what the kubelet sends anyway: nothing to ask.
    let yaml = render("svc", &settings(&[]).unwrap(), Manifest::Pod).unwrap();
    let document = from_yaml(&yaml);
    assert!(document["spec"].get("os").is_none(), "{yaml}");
    assert!(document["spec"]["containers"][0].get("lifecycle").is_none());
    assert!(!yaml.contains("stopSignal"), "{yaml}");
}

#[test]
fn the_container_is_named_after_the_binary_without_the_exe_suffix() {
    let name = |path: &str, suffix: &str| name_of(std::path::Path::new(path), suffix).unwrap();
    assert_eq!(name("C:/app/svc.exe", ".exe"), "svc");
    assert_eq!(name("C:/app/SVC.EXE", ".exe"), "SVC");
    assert_eq!(name("/app/svc.v2", ".exe"), "svc.v2");
    assert_eq!(name("/app/svc.v2", ""), "svc.v2");
    assert_eq!(name(".exe", ".exe"), ".exe");
}
