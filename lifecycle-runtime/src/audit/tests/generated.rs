//! The generator's manifests, fed back to the audit: nothing to say,
//! whatever the checks' timings.

use super::*;

#[test]
fn the_generated_manifests_pass_with_nothing_to_say() {
    use crate::flags::Manifest;
    let binary = Binary::registered();
    let protocols = ["http", "grpc"];
    let protocols = &protocols[..if cfg!(feature = "grpc") { 2 } else { 1 }];
    let signals: &[&str] = if cfg!(unix) {
        &["SIGTERM", "SIGQUIT"]
    } else {
        &["SIGTERM"]
    };
    for (protocol, signal) in protocols
        .iter()
        .flat_map(|protocol| signals.iter().map(move |signal| (*protocol, *signal)))
    {
        let env = [
            ("LIFECYCLE_PROBE_PROTOCOL", protocol),
            ("LIFECYCLE_STOP_SIGNAL", signal),
        ];
        let lookup = |name: &str| {
            env.iter()
                .find(|(key, _)| *key == name)
                .map(|(_, value)| std::ffi::OsString::from(value))
        };
        let settings = crate::config::Settings::resolve(&config(), &lookup).unwrap();
        for manifest in [Manifest::Pod, Manifest::Job] {
            let yaml = crate::manifest::render("svc", &settings, manifest).unwrap();
            let mut documents = read::read_yaml(&yaml).unwrap();
            // With the env it was generated with.
            let container = match manifest {
                Manifest::Pod => "/spec/containers/0",
                Manifest::Job => "/template/spec/containers/0",
            };
            documents[0].pointer_mut(container).unwrap()["env"] = serde_json::json!(env
                .iter()
                .map(|(name, value)| serde_json::json!({ "name": name, "value": value }))
                .collect::<Vec<_>>());
            let audit = audit(&config(), &binary, &documents, "svc");
            assert_eq!(audit.services, 1, "{yaml}");
            let lines: Vec<String> = audit.findings.iter().map(render::line).collect();
            assert!(
                lines.is_empty(),
                "{protocol} {signal} {manifest:?}: {lines:#?}\n{yaml}"
            );
        }
    }
}

static REPLICA: CheckRegistration = check(CheckKind::Readiness, "replica", 1000, Some(6000));
static HEARTBEAT: CheckRegistration = check(CheckKind::Liveness, "heartbeat", 1000, Some(15_000));
static WARMUP: CheckRegistration = check(CheckKind::Startup, "warmup", 1000, Some(3000));

#[test]
fn the_generated_probes_wait_for_the_background_checks() {
    use crate::flags::Manifest;
    // Checks run every 6 s, 15 s and 3 s in the background: the periods
    // follow, and the startup probe's failureThreshold its period (30 s
    // of start-up: 30 / 3 + 2).
    let slow = Binary {
        checks: vec![&DB, &REPLICA, &HEARTBEAT, &WARMUP, &SCHEMA],
        startup_hooks: Duration::from_secs(20),
    };
    let settings = crate::config::Settings::resolve(&config(), &|_| None).unwrap();
    let yaml = crate::manifest::render_for(&slow, "svc", &settings, Manifest::Pod).unwrap();
    let documents = read::read_yaml(&yaml).unwrap();
    let container = &documents[0]["spec"]["containers"][0];
    let timing = |key: &str| {
        (
            container[key]["periodSeconds"].as_u64().unwrap(),
            container[key]["failureThreshold"].as_u64().unwrap(),
        )
    };
    assert_eq!(timing("readinessProbe"), (6, 2), "{yaml}");
    assert_eq!(timing("livenessProbe"), (15, 3), "{yaml}");
    assert_eq!(timing("startupProbe"), (3, 12), "{yaml}");
    let audit = audit(&config(), &slow, &documents, "svc");
    let lines: Vec<String> = audit.findings.iter().map(render::line).collect();
    assert!(lines.is_empty(), "{lines:#?}\n{yaml}");
}
