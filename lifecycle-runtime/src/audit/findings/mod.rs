//! What the audit finds in one container, compared with this binary's
//! registered checks and hooks and with the configuration its own `env`
//! gives. Each finding is one line of the output (see [`super::render`]),
//! `error|warning KIND/NAME container C: WHAT; the binary needs NEEDS;
//! fix: FIX`, whose WHAT begins with words that stay the same from one run
//! to the next (the part to grep for), and then the figures of this
//! container. `P` is the probe (`startupProbe`, `livenessProbe`,
//! `readinessProbe`), `/E` the endpoint that probe is for.
//!
//! | severity | WHAT begins with | when |
//! | --- | --- | --- |
//! | error | `P path "X" does not exist on the probe server` | an `httpGet` path that is no endpoint (`/livez`, `/readyz`, `/startupz`, `/healthz`) or names no check of it (`/readyz/NAME`) |
//! | error | `P gRPC service "X" does not exist on the probe server` | a `grpc` service that is none of `""`, `livez`, `readyz`, `startupz`, `ENDPOINT/CHECK` |
//! | error | `P is a gRPC probe, but the binary has no gRPC health` | a `grpc` probe of a binary built without the `grpc` feature |
//! | error | `P runs --lifecycle-probe "X", which does not exist` | an exec probe naming another endpoint |
//! | error | `P port N is not the probe server's port` | an `httpGet` or `grpc` port other than the probe address's |
//! | error | `P port "NAME" is not declared by the container` | a named port missing from the container's `ports` |
//! | error | `P scheme HTTPS, but the probe server speaks plain HTTP` | `httpGet.scheme: HTTPS` |
//! | error | `P cannot reach the probe server, which listens on ADDR` | a loopback probe address or port 0, with an `httpGet` or `grpc` probe |
//! | error | `livenessProbe is aimed at readiness` | liveness asks `/readyz`, `/readyz/NAME`, `/healthz`, gRPC `readyz`, `readyz/NAME` or `""`, or runs `--lifecycle-probe readyz` (an exec probe's words are split at spaces: `sh -c "…"` counts) |
//! | error | `P F N is not a whole number of 0 or more, which the API server refuses` | a probe's `initialDelaySeconds`, `timeoutSeconds`, `periodSeconds`, `successThreshold`, `failureThreshold` or `terminationGracePeriodSeconds`, or the pod's `terminationGracePeriodSeconds` (then without `P`), that is negative, a fraction or a string; a probe's 0 is Kubernetes' default |
//! | error | `P timeoutSeconds T is shorter than its checks may take` | below the largest on-demand check timeout + 50 ms |
//! | error | `startupProbe allows N ms for start-up` | `initialDelaySeconds + failureThreshold × periodSeconds` below the preflight checks and `on_startup` hooks |
//! | error | `no startupProbe, and livenessProbe allows N ms for start-up` | the same, with the liveness probe's budget |
//! | error | `terminationGracePeriodSeconds G is shorter than the stop takes` | below the preStop sleep + the shutdown timeout |
//! | error | `P terminationGracePeriodSeconds G is shorter than the stop takes` | a liveness or startup probe's own grace period below the preStop sleep + the shutdown timeout |
//! | error | `lifecycle.stopSignal S does not stop this binary gracefully` | a stop signal other than SIGTERM, SIGINT and the binary's own |
//! | error | `lifecycle.stopSignal S with no spec.os.name` (or `with spec.os.name OS`) | a stop signal in a pod without `spec.os.name`, or other than SIGTERM and SIGKILL on Windows, which the API refuses |
//! | error | `invalid configuration: VARIABLE="VALUE": expected …` | a `LIFECYCLE_*` value the binary rejects at start-up (exit 2), as start-up says it |
//! | error | `the Job does not fail on exit 2` | no `podFailurePolicy`, or its first rule matching exit 2 is not `FailJob` (`FailIndex`) |
//! | error | `restartPolicy OnFailure with a podFailurePolicy` | the API refuses the pair |
//! | warning | `startupProbe is aimed at readiness` | startup asks what liveness must not: a dependency down at start-up restarts the container |
//! | warning | `readinessProbe is aimed at liveness` | readiness asks `/livez`, gRPC `livez` or runs `--lifecycle-probe livez` |
//! | warning | `a preStop sleep and the drain delay both hold the pod in rotation` | a preStop `sleep` while the drain delay is not 0 |
//! | warning | `P periodSeconds S is shorter than the interval of background check "NAME"` | the probe reads a result older than its period |
//! | warning | `annotation prometheus.io/port "X" is not the probe server's port` | the scrape goes to another port |
//! | warning | `annotation prometheus.io/path "X" is not where the metrics are served` | the scrape asks another path than `/metrics` |
//! | warning | `prometheus.io annotations, but metrics are off` | Prometheus would scrape a 404 |
//! | warning | `env VARIABLE comes from valueFrom, which cannot be checked` | a `LIFECYCLE_*` variable set by `valueFrom` |
//! | warning | `envFrom REF "NAME" may set LIFECYCLE_* variables, which cannot be checked` | `envFrom` whose prefix may give `LIFECYCLE_*` names |
//! | warning | `lifecycle.preStop runs an exec or httpGet hook, whose duration cannot be checked` | the grace period is checked without it |
//! | warning | `P runs an exec command without --lifecycle-probe, which cannot be checked` | an exec probe of something else |

use serde_json::Value;

mod container;
mod env;
mod finding;
mod numbers;
mod pod;
mod probes;

use super::read::{command_line, container_name, present, Workload};
use crate::binary::Binary;
use crate::config::ServiceConfig;
use crate::flags;
use crate::manifest::{PodProbe, POD_PROBES};
use container::Container;
use env::{read_env, resolve};
pub(crate) use finding::{Finding, Severity};
use pod::job_findings;

/// Whether an init container is this binary's preflight.
pub(crate) fn runs_preflight(container: &Value) -> bool {
    command_line(container).contains(&flags::PREFLIGHT)
}

/// An init container running `--lifecycle-preflight`: its env, read as
/// start-up reads it.
pub(crate) fn preflight_container(config: &ServiceConfig, container: &Value) -> Vec<Finding> {
    let mut findings = Vec::new();
    let env = read_env(container, &mut findings);
    resolve(config, &env, &mut findings);
    findings
}

/// Everything about the container that runs this binary in `workload`.
pub(crate) fn service_container(
    config: &ServiceConfig,
    binary: &Binary,
    workload: &Workload<'_>,
    container: &Value,
) -> Vec<Finding> {
    let mut findings = Vec::new();
    let env = read_env(container, &mut findings);
    let Some(settings) = resolve(config, &env, &mut findings) else {
        return findings;
    };
    let audit = Container {
        binary,
        settings: &settings,
        container,
    };
    for PodProbe { key, endpoint, .. } in POD_PROBES {
        if let Some(probe) = present(container, key) {
            audit.probe(key, endpoint, probe, &mut findings);
        }
    }
    audit.startup_budget(&mut findings);
    audit.grace(workload.pod_spec, &mut findings);
    audit.stop_signal(workload.pod_spec, &mut findings);
    audit.annotations(workload.pod_metadata, &mut findings);
    if let Some(job) = workload.job_spec {
        job_findings(
            job,
            workload.pod_spec,
            container_name(container),
            &mut findings,
        );
    }
    findings
}
