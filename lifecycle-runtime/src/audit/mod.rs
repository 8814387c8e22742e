//! `--lifecycle-check-manifest PATH|-`: the user's own manifests checked
//! against this binary. Every container that runs it (by default the one
//! named like the binary, else `--lifecycle-container NAME`) is compared
//! with the checks and hooks it registers and with the configuration its
//! own `env` gives, read by start-up's code, on Kubernetes: never the
//! environment the audit itself runs in. Init containers running
//! `--lifecycle-preflight` are its preflight, their `env` read the same
//! way. One line per finding on stdout, for CI logs; exit 0 without
//! errors, 1 with one at least, 2 when the input cannot be read or no
//! container runs the binary.

pub(crate) mod findings;
pub(crate) mod read;
mod render;
mod yaml;

#[cfg(test)]
mod tests;

use std::io::{Read, Write};

use serde_json::Value;

use crate::binary::Binary;
use crate::config::ServiceConfig;
use crate::exit::{self, Exit};
use crate::flags::{CheckManifest, Input};
use crate::manifest::binary_name;
use findings::{Finding, Severity};
use render::Located;

/// What the audit of some manifests found.
pub(crate) struct Audit {
    pub(crate) findings: Vec<Located>,
    /// The containers running the binary, init containers included.
    pub(crate) containers: usize,
    /// The containers running the binary as the service.
    pub(crate) services: usize,
    /// Every container seen, `NAME in KIND/NAME`, for the message when
    /// none runs the binary.
    pub(crate) seen: Vec<String>,
}

impl Audit {
    fn errors(&self) -> usize {
        self.findings
            .iter()
            .filter(|f| f.finding.severity == Severity::Error)
            .count()
    }
}

/// Audits the containers named `container` in `documents`.
pub(crate) fn audit(
    config: &ServiceConfig,
    binary: &Binary,
    documents: &[Value],
    container: &str,
) -> Audit {
    let mut audit = Audit {
        findings: Vec::new(),
        containers: 0,
        services: 0,
        seen: Vec::new(),
    };
    for workload in read::workloads(documents) {
        let mut found = |name: &str, findings: Vec<Finding>| {
            audit
                .findings
                .extend(findings.into_iter().map(|finding| Located {
                    kind: workload.kind.clone(),
                    name: workload.name.clone(),
                    container: name.to_owned(),
                    finding,
                }));
        };
        let services: Vec<&Value> = read::containers(workload.pod_spec, "containers")
            .iter()
            .filter(|candidate| read::container_name(candidate) == container)
            .collect();
        // Init containers are this binary's preflight only in a pod where
        // it runs: another lifecycle service's (Helm output with two of
        // them) is that service's to audit.
        let preflight: Vec<&Value> = if services.is_empty() {
            Vec::new()
        } else {
            read::containers(workload.pod_spec, "initContainers")
                .iter()
                .filter(|init| findings::runs_preflight(init))
                .collect()
        };
        for init in &preflight {
            found(
                read::container_name(init),
                findings::preflight_container(config, init),
            );
        }
        for candidate in &services {
            found(
                container,
                findings::service_container(config, binary, &workload, candidate),
            );
        }
        let seen = read::containers(workload.pod_spec, "containers")
            .iter()
            .map(read::container_name)
            .filter(|name| *name != container)
            .map(|name| format!("{name} in {}/{}", workload.kind, workload.name));
        audit.seen.extend(seen);
        audit.containers += services.len() + preflight.len();
        audit.services += services.len();
    }
    audit
}

/// Runs the audit, and prints it.
pub(crate) fn run(config: &ServiceConfig, check: &CheckManifest) -> Exit {
    let (source, text) = match read_input(&check.input) {
        Ok(read) => read,
        Err(error) => return unusable(&error),
    };
    let documents = match read::read_yaml(&text) {
        Ok(documents) => documents,
        Err(error) => return unusable(&format!("cannot read {source} as YAML: {error}")),
    };
    let container = check.container.clone().unwrap_or_else(binary_name);
    let audit = audit(config, &Binary::registered(), &documents, &container);
    if audit.services == 0 {
        let given = if check.container.is_some() {
            "given by --lifecycle-container"
        } else {
            "the binary's name; name another with --lifecycle-container NAME"
        };
        let seen = if audit.seen.is_empty() {
            "no pod template at all (Deployment, StatefulSet, DaemonSet, ReplicaSet, Job, CronJob, Pod, PodTemplate, List)".to_owned()
        } else {
            format!("only {}", audit.seen.join(", "))
        };
        return unusable(&format!(
            "no container named \"{container}\" ({given}) in {source}: it has {seen}"
        ));
    }
    // A closed stdout loses the lines, never the verdict.
    let mut stdout = std::io::stdout().lock();
    for finding in &audit.findings {
        let _ = writeln!(stdout, "{}", render::line(finding));
    }
    let _ = writeln!(
        stdout,
        "{}",
        render::summary(&audit.findings, audit.containers, &binary_name())
    );
    let _ = stdout.flush();
    Exit::quiet(if audit.errors() > 0 {
        exit::Code::Failure
    } else {
        exit::Code::Success
    })
}

/// The input's name for messages, and its text.
fn read_input(input: &Input) -> Result<(String, String), String> {
    match input {
        Input::Stdin => {
            let mut text = String::new();
            std::io::stdin()
                .read_to_string(&mut text)
                .map_err(|error| format!("cannot read the manifests from stdin: {error}"))?;
            Ok(("stdin".to_owned(), text))
        }
        Input::Path(path) => {
            let text = std::fs::read_to_string(path)
                .map_err(|error| format!("cannot read {}: {error}", path.display()))?;
            Ok((path.display().to_string(), text))
        }
    }
}

/// Exit 2, saying why: not a finding about a container, but an audit that
/// could not be made. Not a failure of a service: no termination message.
pub(crate) fn unusable(reason: &str) -> Exit {
    let _ = writeln!(
        std::io::stderr(),
        "--lifecycle-check-manifest: {}",
        render::one_line(reason)
    );
    Exit::quiet(exit::Code::BadConfig)
}
