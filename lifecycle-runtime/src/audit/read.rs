//! Reading the user's manifests: YAML documents, as `kubectl get -o
//! yaml`, `helm template` or `kustomize build` print them, and the pod
//! templates in them.

use serde_json::Value;

/// YAML as JSON values, one per document: YAML 1.2, which takes JSON as it
/// is; aliases expanded, each a copy. How `--lifecycle-check-manifest`
/// reads the user's manifests, and how the generator's tests read the one
/// it writes. yaml-rust2 is the runtime's YAML reader, chosen with both
/// uses in mind: pure Rust, and a third of the build time of the libyaml
/// translation the alternatives bring.
pub(crate) fn read_yaml(text: &str) -> Result<Vec<Value>, String> {
    let documents =
        yaml_rust2::YamlLoader::load_from_str(text).map_err(|error| error.to_string())?;
    documents.iter().map(json_of).collect()
}

fn json_of(node: &yaml_rust2::Yaml) -> Result<Value, String> {
    use yaml_rust2::Yaml;
    Ok(match node {
        Yaml::Null => Value::Null,
        Yaml::Boolean(value) => Value::Bool(*value),
        Yaml::Integer(value) => Value::from(*value),
        Yaml::Real(text) => node
            .as_f64()
            .and_then(serde_json::Number::from_f64)
            .map(Value::Number)
            .ok_or_else(|| format!("the number {text} has no JSON form"))?,
        Yaml::String(text) => Value::String(text.clone()),
        Yaml::Array(items) => Value::Array(items.iter().map(json_of).collect::<Result<_, _>>()?),
        Yaml::Hash(fields) => Value::Object(
            fields
                .iter()
                .map(|(key, value)| Ok((json_key(key)?, json_of(value)?)))
                .collect::<Result<_, String>>()?,
        ),
        Yaml::Alias(_) | Yaml::BadValue => return Err(format!("an unreadable node: {node:?}")),
    })
}

/// A map's key as JSON's string: a scalar as written (`8080: x` is the key
/// `"8080"`, as Kubernetes reads it).
fn json_key(key: &yaml_rust2::Yaml) -> Result<String, String> {
    use yaml_rust2::Yaml;
    match key {
        Yaml::String(text) | Yaml::Real(text) => Ok(text.clone()),
        Yaml::Integer(value) => Ok(value.to_string()),
        Yaml::Boolean(value) => Ok(value.to_string()),
        Yaml::Null => Ok("null".to_owned()),
        _ => Err(format!("a map's key is not a scalar: {key:?}")),
    }
}

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
            for item in document
                .get("items")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
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

/// The containers of `key` (`containers`, `initContainers`) of a PodSpec.
pub(crate) fn containers<'a>(pod_spec: &'a Value, key: &str) -> impl Iterator<Item = &'a Value> {
    pod_spec
        .get(key)
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
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
    let words = ["command", "args"]
        .into_iter()
        .filter_map(|key| container.get(key).and_then(Value::as_array))
        .flatten()
        .filter_map(Value::as_str);
    words.take_while(|word| *word != "--").collect()
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
