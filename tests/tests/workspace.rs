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
