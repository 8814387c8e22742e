//! Facts about the workspace that its documents state.

use std::collections::HashMap;
use std::process::Command;

use serde_json::Value;

fn version(text: &str) -> Vec<u64> {
    text.split('.').map(|part| part.parse().unwrap()).collect()
}

/// `cargo metadata` of the workspace, as locked.
fn metadata() -> Value {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--locked"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    serde_json::from_slice(&output.stdout).unwrap()
}

#[test]
fn the_declared_rust_version_is_the_highest_of_the_locked_tree() {
    let metadata = metadata();
    let packages: HashMap<&str, &Value> = metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| (p["id"].as_str().unwrap(), p))
        .collect();
    let members: Vec<&str> = metadata["workspace_members"]
        .as_array()
        .unwrap()
        .iter()
        .map(|m| m.as_str().unwrap())
        .collect();
    let declared: Vec<&str> = members
        .iter()
        .map(|id| {
            packages[id]["rust_version"]
                .as_str()
                .unwrap_or_else(|| panic!("{id} declares no rust-version"))
        })
        .collect();
    assert!(
        declared.iter().all(|v| *v == declared[0]),
        "every member inherits the workspace's rust-version: {declared:?}"
    );
    let highest = packages
        .iter()
        .filter(|(id, _)| !members.contains(id))
        .filter_map(|(_, p)| Some((p["rust_version"].as_str()?, p["name"].as_str()?)))
        .max_by_key(|(v, _)| version(v))
        .unwrap();
    assert_eq!(
        version(declared[0]),
        version(highest.0),
        "the workspace declares rust-version {}, the locked tree needs {} ({}): set [workspace.package] rust-version and the README's figure",
        declared[0],
        highest.0,
        highest.1
    );
}

/// The crates in `lifecycle-runtime`'s normal dependency tree, built with
/// `features` (cargo's own flags), one name a line. `-p` resolves the
/// runtime's features alone, so this crate's `grpc` (and the workspace's
/// feature unification) does not reach it.
fn runtime_dependencies(features: &[&str]) -> Vec<String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let output = Command::new(cargo)
        .args([
            "tree",
            "-p",
            "lifecycle-runtime",
            "-e",
            "normal",
            "--prefix",
            "none",
            "--format",
            "{p}",
            "--locked",
            "--offline",
        ])
        .args(features)
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo tree");
    assert!(
        output.status.success(),
        "{}",
        String::from_utf8_lossy(&output.stderr)
    );
    String::from_utf8(output.stdout)
        .unwrap()
        .lines()
        .filter_map(|line| line.split_whitespace().next())
        .map(str::to_owned)
        .collect()
}

#[test]
fn without_the_grpc_feature_the_runtime_depends_on_nothing_of_tonic() {
    let of_grpc = |crates: &[String]| -> Vec<String> {
        let mut found: Vec<String> = crates
            .iter()
            .filter(|name| name.starts_with("tonic") || name.starts_with("prost"))
            .cloned()
            .collect();
        found.sort();
        found.dedup();
        found
    };
    for features in [&[][..], &["--no-default-features"][..]] {
        let crates = runtime_dependencies(features);
        assert!(
            crates.iter().any(|name| name == "hyper"),
            "{features:?}: a tree was read: {crates:?}"
        );
        assert_eq!(
            of_grpc(&crates),
            Vec::<String>::new(),
            "lifecycle-runtime {features:?} depends on gRPC crates"
        );
    }
    // And the feature does bring them: the check above sees them when
    // they are there.
    let with_grpc = of_grpc(&runtime_dependencies(&["--features", "grpc"]));
    assert!(
        with_grpc.iter().any(|name| name == "tonic")
            && with_grpc.iter().any(|name| name == "prost"),
        "{with_grpc:?}"
    );
}

#[test]
fn the_default_build_compiles_no_regex_and_no_libyaml() {
    let heavy = |crates: &[String]| -> Vec<String> {
        let mut found: Vec<String> = crates
            .iter()
            .filter(|name| {
                name.starts_with("regex")
                    || *name == "serde_norway"
                    || name.starts_with("unsafe-libyaml")
            })
            .cloned()
            .collect();
        found.sort();
        found.dedup();
        found
    };
    let default = runtime_dependencies(&[]);
    assert!(
        default.iter().any(|name| name == "tracing-subscriber"),
        "{default:?}"
    );
    assert_eq!(heavy(&default), Vec::<String>::new(), "the default build");
    // The `env-filter` feature brings the regex crates back: the check
    // above sees them when they are there.
    let with_env_filter = heavy(&runtime_dependencies(&["--features", "env-filter"]));
    assert!(
        with_env_filter.iter().any(|name| name == "regex-automata"),
        "{with_env_filter:?}"
    );
}

/// The macros' copy of the built-in checks' names: a proc-macro crate
/// cannot take the runtime's constant.
mod macros {
    include!("../../lifecycle-macros/src/builtin_checks.rs");
}

#[test]
fn the_macros_copy_of_the_built_in_check_names_is_the_runtimes() {
    assert_eq!(
        macros::BUILTIN_CHECK_NAMES,
        lifecycle_runtime::__private::BUILTIN_CHECK_NAMES
    );
}
