//! A container's `env`: the `LIFECYCLE_*` configuration it gives, read by
//! start-up's own code, and what cannot be known from the manifest.

use std::ffi::OsString;

use serde_json::Value;

use super::finding::{error, warning, Finding};
use crate::audit::read::items;
use crate::config::{self, ConfigError, ServiceConfig, Settings};
use crate::exit;

/// Taken as set: the container runs on Kubernetes, whose defaults (the
/// drain delay's) apply.
const KUBERNETES_SERVICE_HOST: &str = "KUBERNETES_SERVICE_HOST";
/// The variables the binary reads all begin so.
const PREFIX: &str = "LIFECYCLE_";

/// The `LIFECYCLE_*` configuration of a container's `env`, and the
/// warnings for what cannot be known from the manifest.
pub(super) struct Env {
    /// `name`, `value` as written; a later entry wins, as in Kubernetes.
    literal: Vec<(String, String)>,
}

pub(super) fn read_env(container: &Value, findings: &mut Vec<Finding>) -> Env {
    let mut literal = Vec::new();
    for entry in items(container, "env") {
        let Some(name) = entry.get("name").and_then(Value::as_str) else {
            continue;
        };
        match entry.get("value") {
            Some(Value::String(value)) => literal.push((name.to_owned(), value.clone())),
            Some(Value::Null) | None if entry.get("valueFrom").is_some() => {
                if name.starts_with(PREFIX) {
                    findings.push(warning(
                        format_args!("env {name} comes from valueFrom, which cannot be checked"),
                        format_args!(
                            "a {name} it accepts, or it exits {} at start-up",
                            exit::Code::BadConfig
                        ),
                        format_args!(
                            "make sure the referenced value is valid, or set {name} with value"
                        ),
                    ));
                }
            }
            Some(Value::Null) | None => literal.push((name.to_owned(), String::new())),
            // Kubernetes refuses a value that is no string; the text is
            // what the user meant.
            Some(other) => literal.push((name.to_owned(), other.to_string())),
        }
    }
    for source in items(container, "envFrom") {
        let prefix = source.get("prefix").and_then(Value::as_str).unwrap_or("");
        let may_set = PREFIX.starts_with(prefix) || prefix.starts_with(PREFIX);
        if !may_set {
            continue;
        }
        let (reference, name) = ["configMapRef", "secretRef"]
            .into_iter()
            .find_map(|key| {
                let name = source.pointer(&format!("/{key}/name"))?.as_str()?;
                Some((key, name))
            })
            .unwrap_or(("source", "unnamed"));
        findings.push(warning(
            format_args!("envFrom {reference} \"{name}\" may set {PREFIX}* variables, which cannot be checked"),
            format_args!("{PREFIX}* values it accepts, or it exits {} at start-up", exit::Code::BadConfig),
            format_args!("set {PREFIX}* variables in env, or give envFrom a prefix"),
        ));
    }
    Env { literal }
}

/// The settings the container's env gives, read by start-up's own code,
/// with one error per value start-up would reject. A rejected value is
/// then taken as unset, so that every bad value is reported at once and
/// the rest of the audit goes on with the others.
pub(super) fn resolve(
    config: &ServiceConfig,
    env: &Env,
    findings: &mut Vec<Finding>,
) -> Option<Settings> {
    let mut rejected: Vec<&'static str> = Vec::new();
    let mut report = |error: ConfigError, rejected: &mut Vec<&'static str>| {
        findings.push(self::error(
            format_args!("{error}"),
            format_args!(
                "a value it accepts, or it exits {} at start-up",
                exit::Code::BadConfig
            ),
            format_args!(
                "correct or remove {} in the container's env",
                error.variable
            ),
        ));
        rejected.push(error.variable);
    };
    let lookup = |rejected: &[&str], name: &str| -> Option<OsString> {
        if name == KUBERNETES_SERVICE_HOST {
            return Some(OsString::from("kubernetes.default.svc"));
        }
        if rejected.contains(&name) {
            return None;
        }
        env.literal
            .iter()
            .rev()
            .find(|(key, _)| key == name)
            .map(|(_, value)| OsString::from(value))
    };
    if let Err(error) = config::log_format(&|name| lookup(&rejected, name)) {
        report(error, &mut rejected);
    }
    loop {
        let resolved = Settings::resolve(config, &|name| lookup(&rejected, name));
        match resolved {
            Ok(settings) => return Some(settings),
            // A value rejected once more would loop: never so, since an
            // unset variable takes the argument or the default, which
            // the macro validated.
            Err(error) if rejected.contains(&error.variable) => return None,
            Err(error) => report(error, &mut rejected),
        }
    }
}
