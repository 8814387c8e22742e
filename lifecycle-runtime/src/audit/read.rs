//! Reading the user's manifests: YAML documents, as `kubectl get -o
//! yaml`, `helm template` or `kustomize build` print them, and the pod
//! templates in them.

use serde_json::Value;

pub(crate) use super::yaml::read_yaml;

/// One pod template of the manifests, with what names it in a finding.
#[derive(Debug)]
pub(crate) struct Workload<'a> {
    /// `Deployment`, `CronJob` and the like; `PodTemplateSpec` or `JobSpec`
    /// for the kind-less documents `--lifecycle-manifest` prints.
    pub(crate) kind: String,
    /// `metadata.name`, or `unnamed`.
    pub(crate) name: String,
    /// The pod's metadata (its annotations): the template's, or the Pod's.
    pub(crate) pod_metadata: Option<&'a Value>,
    /// The PodSpec.
    pub(crate) pod_spec: &'a Value,
    /// The JobSpec, for a Job and a CronJob.
    pub(crate) job_spec: Option<&'a Value>,
}

/// Every pod template in `documents`, in order: those of Deployments,
/// StatefulSets, DaemonSets, ReplicaSets, Jobs, CronJobs, Pods and
/// PodTemplates, of the items of a `List` (or `DeploymentList` and the
/// like), and of the documents without a kind that `--lifecycle-manifest`
/// prints. Anything else (a Service, a ConfigMap) has none.
pub(crate) fn workloads(documents: &[Value]) -> Vec<Workload<'_>> {
    let mut found = Vec::new();
    for document in documents {
        collect(document, &mut found);
    }
    found
}

fn collect<'a>(document: &'a Value, found: &mut Vec<Workload<'a>>) {
    let Some(kind) = document.get("kind").and_then(Value::as_str) else {
        found.extend(kindless(document));
        return;
    };
    let name = document
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("unnamed")
        .to_owned();
    let workload = |template: Option<&'a Value>, job_spec: Option<&'a Value>| {
        let template = template?;
        Some(Workload {
            kind: kind.to_owned(),
            name: name.clone(),
            pod_metadata: template.get("metadata"),
            pod_spec: template.get("spec")?,
            job_spec,
        })
    };
    let one = match kind {
        "Deployment" | "StatefulSet" | "DaemonSet" | "ReplicaSet" => {
            workload(document.pointer("/spec/template"), None)
        }
        "Job" => workload(document.pointer("/spec/template"), document.get("spec")),
        "CronJob" => workload(
            document.pointer("/spec/jobTemplate/spec/template"),
            document.pointer("/spec/jobTemplate/spec"),
        ),
        "Pod" => workload(Some(document), None),
        "PodTemplate" => workload(document.get("template"), None),
        list if list == "List" || list.ends_with("List") => {
            for item in items(document, "items") {
                collect(item, found);
            }
            None
        }
        _ => None,
    };
    found.extend(one);
}

/// A document without a kind, as `--lifecycle-manifest` prints it: a
/// JobSpec (`template` and `podFailurePolicy` or `backoffLimit`) or a
/// PodTemplateSpec (`spec.containers`).
fn kindless(document: &Value) -> Option<Workload<'_>> {
    let is_job = document.get("template").is_some()
        && (document.get("podFailurePolicy").is_some() || document.get("backoffLimit").is_some());
    let (kind, template, job_spec) = if is_job {
        ("JobSpec", document.get("template")?, Some(document))
    } else if document.pointer("/spec/containers").is_some() {
        ("PodTemplateSpec", document, None)
    } else {
        return None;
    };
    Some(Workload {
        kind: kind.to_owned(),
        name: "unnamed".to_owned(),
        pod_metadata: template.get("metadata"),
        pod_spec: template.get("spec")?,
        job_spec,
    })
}

/// The items of the list `key` of `object`: none when it is left out or
/// is no list. A slice rather than an iterator chain: every caller then
/// iterates the same slice iterator, and no adapter is compiled per call.
pub(crate) fn items<'a>(object: &'a Value, key: &str) -> &'a [Value] {
    match object.get(key) {
        Some(Value::Array(items)) => items,
        _ => &[],
    }
}

/// `key` of `object`, unless it is left out or null: Helm's `toYaml`
/// prints `startupProbe: null` for a value left empty, and the API server
/// takes that as no startup probe.
pub(crate) fn present<'a>(object: &'a Value, key: &str) -> Option<&'a Value> {
    object.get(key).filter(|value| !value.is_null())
}

/// The containers of `key` (`containers`, `initContainers`) of a PodSpec.
pub(crate) fn containers<'a>(pod_spec: &'a Value, key: &str) -> &'a [Value] {
    items(pod_spec, key)
}

/// A container's `name`.
pub(crate) fn container_name(container: &Value) -> &str {
    container
        .get("name")
        .and_then(Value::as_str)
        .unwrap_or("unnamed")
}

/// A container's `command` and `args`, as strings, up to a `--`: what the
/// binary's own flags are read from.
pub(crate) fn command_line(container: &Value) -> Vec<&str> {
    let mut words = Vec::new();
    for word in items(container, "command")
        .iter()
        .chain(items(container, "args"))
    {
        match word.as_str() {
            Some("--") => break,
            Some(word) => words.push(word),
            None => {}
        }
    }
    words
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kinds(yaml: &str) -> Vec<String> {
        let documents = read_yaml(yaml).unwrap();
        workloads(&documents)
            .iter()
            .map(|w| format!("{}/{}", w.kind, w.name))
            .collect()
    }

    const CONTAINER: &str = "{ containers: [{ name: svc }] }";

    #[test]
    fn every_kind_s_pod_template_is_found_in_every_document() {
        let yaml = format!(
            "\
kind: Deployment
metadata: {{ name: d }}
spec: {{ template: {{ spec: {CONTAINER} }} }}
---
kind: Service
metadata: {{ name: s }}
spec: {{ ports: [] }}
---
# An empty document, as Helm prints between templates.
---
kind: StatefulSet
metadata: {{ name: ss }}
spec: {{ template: {{ spec: {CONTAINER} }} }}
---
kind: DaemonSet
metadata: {{ name: ds }}
spec: {{ template: {{ spec: {CONTAINER} }} }}
---
kind: ReplicaSet
metadata: {{ name: rs }}
spec: {{ template: {{ spec: {CONTAINER} }} }}
---
kind: Job
metadata: {{ name: j }}
spec: {{ template: {{ spec: {CONTAINER} }} }}
---
kind: CronJob
metadata: {{ name: cj }}
spec: {{ jobTemplate: {{ spec: {{ template: {{ spec: {CONTAINER} }} }} }} }}
---
kind: Pod
metadata: {{ name: p }}
spec: {CONTAINER}
---
kind: PodTemplate
metadata: {{ name: pt }}
template: {{ spec: {CONTAINER} }}
---
kind: List
items:
- kind: Deployment
  metadata: {{ name: in-list }}
  spec: {{ template: {{ spec: {CONTAINER} }} }}
- kind: ConfigMap
  metadata: {{ name: cm }}
---
kind: DeploymentList
items:
- kind: Deployment
  metadata: {{ name: in-typed-list }}
  spec: {{ template: {{ spec: {CONTAINER} }} }}
---
spec: {CONTAINER}
---
backoffLimit: 6
template: {{ spec: {CONTAINER} }}
"
        );
        assert_eq!(
            kinds(&yaml),
            [
                "Deployment/d",
                "StatefulSet/ss",
                "DaemonSet/ds",
                "ReplicaSet/rs",
                "Job/j",
                "CronJob/cj",
                "Pod/p",
                "PodTemplate/pt",
                "Deployment/in-list",
                "Deployment/in-typed-list",
                "PodTemplateSpec/unnamed",
                "JobSpec/unnamed",
            ]
        );
        let documents = read_yaml(&yaml).unwrap();
        let found = workloads(&documents);
        let job_specs: Vec<_> = found
            .iter()
            .filter(|w| w.job_spec.is_some())
            .map(|w| w.kind.as_str())
            .collect();
        assert_eq!(job_specs, ["Job", "CronJob", "JobSpec"]);
    }

    #[test]
    fn the_command_line_stops_at_a_double_dash() {
        let documents = read_yaml(
            "{ command: [/app, --lifecycle-preflight], args: [--port, '1', --, --lifecycle-probe] }",
        )
        .unwrap();
        assert_eq!(
            command_line(&documents[0]),
            ["/app", "--lifecycle-preflight", "--port", "1"]
        );
    }

    #[test]
    fn garbage_is_an_error_not_an_empty_manifest() {
        assert!(read_yaml("kind: [Deployment\n  metadata: {").is_err());
        assert!(read_yaml("name: 'unterminated\n").is_err());
        assert!(read_yaml("a: b\n  c: d\n").is_err());
    }
}
