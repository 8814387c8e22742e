//! `--lifecycle-check-manifest` run by the real binary (testbed) over the
//! corpus in `tests/manifests/`: each `NAME.expected` lists the exact
//! lines and the exit code of the audit of `NAME.yaml` by testbed, or by
//! the fixture its `bin:` line names (`NAME@CASE.expected`: another run of
//! `NAME.yaml`). Then the manifests
//! `--lifecycle-manifest` prints, fed back: no finding at all; and
//! validated by PyPI's `kubernetes-validate --strict` for every Kubernetes
//! version from 1.33 to the newest it knows.

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::{json, Value};

use lifecycle_tests::run_in;

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const CORPUS: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/manifests");
/// The probe address the manifests give testbed (its own, 127.0.0.1:0,
/// is no address the kubelet reaches).
const PROBE_ADDR: &str = "0.0.0.0:9100";
/// The first Kubernetes version with `lifecycle.stopSignal` (alpha).
const OLDEST_VERSION: (u32, u32) = (1, 33);

/// What a run printed and how it ended.
struct Ran {
    code: Option<i32>,
    stdout: Vec<String>,
    stderr: String,
}

/// Runs `bin ARGS` in `dir` with `stdin` and only `env` of lifecycle's
/// and testbed's variables, to its exit.
fn run(bin: &str, args: &[&str], dir: &Path, stdin: &str, env: &[(&str, &str)]) -> Ran {
    let (code, stdout, stderr) = run_in(bin, args, env, Some(dir), Some(stdin));
    Ran {
        code,
        stdout,
        stderr,
    }
}

/// The fixture binaries a corpus case may name.
fn fixture(name: &str) -> &'static str {
    match name {
        "testbed" => TESTBED,
        "stop-signal" => env!("CARGO_BIN_EXE_stop-signal"),
        "background-interval" => env!("CARGO_BIN_EXE_background-interval"),
        other => panic!("no fixture {other} for the corpus"),
    }
}

/// The audit of `args` by testbed, from the corpus directory.
fn audit(args: &[&str], stdin: &str, env: &[(&str, &str)]) -> Ran {
    run(TESTBED, args, Path::new(CORPUS), stdin, env)
}

/// One `.expected` file: the binary, the extra arguments, the exit code,
/// the exact stdout lines, and the start of a stderr line.
struct Expected {
    bin: &'static str,
    args: Vec<String>,
    code: i32,
    stdout: Vec<String>,
    stderr: Option<String>,
}

fn expected(text: &str) -> Expected {
    let mut expected = Expected {
        bin: TESTBED,
        args: Vec::new(),
        code: -1,
        stdout: Vec::new(),
        stderr: None,
    };
    for line in text.lines() {
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        if let Some(bin) = line.strip_prefix("bin: ") {
            expected.bin = fixture(bin);
        } else if let Some(args) = line.strip_prefix("args: ") {
            expected.args = args.split_whitespace().map(str::to_owned).collect();
        } else if let Some(code) = line.strip_prefix("exit: ") {
            expected.code = code.parse().unwrap();
        } else if let Some(stderr) = line.strip_prefix("stderr: ") {
            expected.stderr = Some(stderr.to_owned());
        } else {
            expected.stdout.push(line.to_owned());
        }
    }
    assert!(expected.code >= 0, "no `exit: N` line");
    expected
}

fn corpus() -> Vec<(PathBuf, String)> {
    let mut cases: Vec<(PathBuf, String)> = std::fs::read_dir(CORPUS)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|ext| ext == "expected"))
        .map(|path| {
            let stem = path.file_stem().unwrap().to_str().unwrap();
            let yaml = format!("{}.yaml", stem.split('@').next().unwrap());
            (path, yaml)
        })
        .collect();
    cases.sort();
    cases
}

#[test]
fn every_manifest_of_the_corpus_gets_exactly_its_findings_and_exit_code() {
    let cases = corpus();
    assert!(cases.len() >= 30, "the corpus lost cases: {}", cases.len());
    // Every manifest has its expectation.
    for entry in std::fs::read_dir(CORPUS).unwrap() {
        let path = entry.unwrap().path();
        if path.extension().is_some_and(|ext| ext == "yaml") {
            let name = path.file_name().unwrap().to_str().unwrap().to_owned();
            assert!(
                cases.iter().any(|(_, yaml)| *yaml == name),
                "{name} has no .expected"
            );
        }
    }
    let mut failures = Vec::new();
    for (path, yaml) in &cases {
        let expected = expected(&std::fs::read_to_string(path).unwrap());
        let mut args = vec!["--lifecycle-check-manifest", yaml.as_str()];
        args.extend(expected.args.iter().map(String::as_str));
        let ran = run(expected.bin, &args, Path::new(CORPUS), "", &[]);
        let stderr_ok = match &expected.stderr {
            Some(start) => ran
                .stderr
                .lines()
                .any(|line| line.starts_with(start.as_str())),
            None => true,
        };
        if ran.code != Some(expected.code) || ran.stdout != expected.stdout || !stderr_ok {
            failures.push(format!(
                "{}: exit {:?}, expected {}\nstdout:\n{}\nexpected stdout:\n{}\nstderr:\n{}\nexpected a stderr line starting {:?}",
                path.display(),
                ran.code,
                expected.code,
                ran.stdout.join("\n"),
                expected.stdout.join("\n"),
                ran.stderr,
                expected.stderr,
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

#[test]
fn stdin_is_read_with_a_dash() {
    let yaml = std::fs::read_to_string(Path::new(CORPUS).join("drift-grace.yaml")).unwrap();
    let from_file = audit(&["--lifecycle-check-manifest", "drift-grace.yaml"], "", &[]);
    let from_stdin = audit(&["--lifecycle-check-manifest", "-"], &yaml, &[]);
    assert_eq!(from_stdin.code, Some(1), "{}", from_stdin.stderr);
    assert_eq!(from_stdin.stdout, from_file.stdout);
    assert!(from_stdin.stdout[0].starts_with("error Deployment/testbed container testbed: terminationGracePeriodSeconds 20 is shorter than the stop takes"));
    let empty = audit(&["--lifecycle-check-manifest", "-"], "", &[]);
    assert_eq!(empty.code, Some(2));
    assert!(
        empty.stderr.contains("--lifecycle-check-manifest: no container named \"testbed\" (the binary's name; name another with --lifecycle-container NAME) in stdin: it has no pod template at all"),
        "{}",
        empty.stderr
    );
}

#[test]
fn deeply_nested_input_is_unreadable_not_a_crash() {
    // 2 MB of block sequences, a million levels deep: a recursive reader
    // overflows its stack on a tenth of it.
    let yaml = format!("{}x\n", "- ".repeat(1_000_000));
    let ran = audit(&["--lifecycle-check-manifest", "-"], &yaml, &[]);
    assert_eq!(ran.code, Some(2), "{}", ran.stderr);
    assert!(
        ran.stderr.contains(
            "--lifecycle-check-manifest: cannot read stdin as YAML: nesting deeper than 128 levels at line 1 column 257"
        ),
        "{}",
        ran.stderr
    );
    assert!(ran.stdout.is_empty());
}

#[test]
fn the_audit_s_own_environment_does_not_count() {
    // Each of these alone makes testbed exit 2 at start-up.
    let bad = [
        ("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "soon"),
        ("LIFECYCLE_LOG_FORMAT", "xml"),
        ("LIFECYCLE_PROBE_ADDR", "nowhere"),
        ("LIFECYCLE_METRICS", "sometimes"),
        ("LIFECYCLE_PID1", "maybe"),
        ("LIFECYCLE_STOP_SIGNAL", "SIGKILL"),
    ];
    for (name, value) in bad {
        let served = run(TESTBED, &[], Path::new(CORPUS), "", &[(name, value)]);
        assert_eq!(served.code, Some(2), "{name}={value}: {}", served.stderr);
    }
    let clean = audit(
        &["--lifecycle-check-manifest", "good-deployment.yaml"],
        "",
        &[],
    );
    let polluted = audit(
        &["--lifecycle-check-manifest", "good-deployment.yaml"],
        "",
        &bad,
    );
    assert_eq!(polluted.code, Some(0), "{}", polluted.stderr);
    assert_eq!(polluted.stdout, clean.stdout);
    assert_eq!(
        polluted.stdout,
        ["checked 1 container running testbed: 0 errors, 0 warnings"]
    );
    // Nor does its own address: a shutdown timeout of the CI job's is not
    // the container's either.
    let drift = audit(
        &["--lifecycle-check-manifest", "drift-grace.yaml"],
        "",
        &[("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "5000")],
    );
    assert_eq!(drift.code, Some(1), "{}", drift.stderr);
}

#[test]
fn the_container_flag_needs_the_check_flag() {
    // A flag error of the audit is the CI job's: on stderr, never a
    // termination message.
    let scratch = Scratch::new("flags");
    let termination_log = scratch.0.join("termination-log");
    let log = termination_log.to_str().unwrap();
    let alone = audit(
        &["--lifecycle-container", "web"],
        "",
        &[("LIFECYCLE_TERMINATION_LOG", log)],
    );
    assert!(
        !termination_log.exists(),
        "a termination message was written"
    );
    assert_eq!(alone.code, Some(2));
    assert!(
        alone.stderr.contains("invalid flag --lifecycle-container \"web\": it names the container that --lifecycle-check-manifest checks, and goes with that flag only"),
        "{}",
        alone.stderr
    );
    let missing = audit(
        &["--lifecycle-check-manifest"],
        "",
        &[("LIFECYCLE_TERMINATION_LOG", log)],
    );
    assert!(
        !termination_log.exists(),
        "a termination message was written"
    );
    assert_eq!(missing.code, Some(2));
    assert!(
        missing.stderr.contains(
            "invalid flag --lifecycle-check-manifest: it takes the manifest's path, or - for stdin"
        ),
        "{}",
        missing.stderr
    );
    let unreadable = audit(
        &["--lifecycle-check-manifest", "no-such-file.yaml"],
        "",
        &[],
    );
    assert_eq!(unreadable.code, Some(2));
    assert!(
        unreadable
            .stderr
            .contains("--lifecycle-check-manifest: cannot read no-such-file.yaml: "),
        "{}",
        unreadable.stderr
    );
    assert!(unreadable.stdout.is_empty());
}

/// What `testbed --lifecycle-manifest [job]` prints with `env`, as JSON.
fn generated(args: &[&str], env: &[(&str, &str)]) -> Value {
    let ran = run(TESTBED, args, Path::new(CORPUS), "", env);
    assert_eq!(ran.code, Some(0), "{args:?}: {}", ran.stderr);
    serde_norway::from_str(&ran.stdout.join("\n")).unwrap()
}

/// The generated pod template in a Deployment, the JobSpec in a Job,
/// each container with the `env` the manifest was generated with.
fn wrapped(env: &[(&str, &str)]) -> [(&'static str, Value); 2] {
    let container_env: Vec<Value> = env
        .iter()
        .map(|(name, value)| json!({ "name": name, "value": value }))
        .collect();
    let mut template = generated(&["--lifecycle-manifest"], env);
    template["spec"]["containers"][0]["env"] = json!(container_env);
    let labels = template["metadata"]["labels"].clone();
    let deployment = json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": { "name": "testbed" },
        "spec": {
            "replicas": 2,
            "selector": { "matchLabels": labels },
            "template": template,
        },
    });
    let mut job_spec = generated(&["--lifecycle-manifest", "job"], env);
    job_spec["template"]["spec"]["containers"][0]["env"] = json!(container_env);
    let job = json!({
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": { "name": "testbed" },
        "spec": job_spec,
    });
    [("deployment", deployment), ("job", job)]
}

/// The configurations the generated manifests are checked with: HTTP and
/// gRPC probes, and another stop signal than SIGTERM.
const GENERATED_WITH: [&[(&str, &str)]; 3] = [
    &[("LIFECYCLE_PROBE_ADDR", PROBE_ADDR)],
    &[
        ("LIFECYCLE_PROBE_ADDR", PROBE_ADDR),
        ("LIFECYCLE_PROBE_PROTOCOL", "grpc"),
    ],
    &[
        ("LIFECYCLE_PROBE_ADDR", PROBE_ADDR),
        ("LIFECYCLE_STOP_SIGNAL", "SIGQUIT"),
    ],
];

/// A directory of one test's files, removed with it.
struct Scratch(PathBuf);

impl Scratch {
    fn new(test: &str) -> Scratch {
        let dir = std::env::temp_dir().join(format!(
            "lifecycle-check-manifest-{}-{test}",
            std::process::id()
        ));
        std::fs::create_dir_all(&dir).unwrap();
        Scratch(dir)
    }

    /// Writes `document` as YAML into a file of its own.
    fn written(&self, name: &str, document: &Value) -> PathBuf {
        let path = self.0.join(format!("{name}.yaml"));
        std::fs::write(&path, serde_norway::to_string(document).unwrap()).unwrap();
        path
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

#[test]
fn the_generated_manifests_pass_the_audit_with_nothing_to_say() {
    let scratch = Scratch::new("audit");
    for (i, env) in GENERATED_WITH.iter().enumerate() {
        for (name, document) in wrapped(env) {
            let path = scratch.written(&format!("generated-{i}-{name}"), &document);
            let ran = audit(
                &["--lifecycle-check-manifest", path.to_str().unwrap()],
                "",
                &[],
            );
            assert_eq!(
                (ran.code, ran.stdout.clone()),
                (
                    Some(0),
                    vec!["checked 1 container running testbed: 0 errors, 0 warnings".to_owned()]
                ),
                "{env:?} {name}:\n{}\n{}",
                serde_norway::to_string(&document).unwrap(),
                ran.stderr
            );
        }
    }
    // The grace period the generator prints is the one the audit wants,
    // with the 5 s to exit: 25 s of shutdown timeout, the drain within.
    let [(_, deployment), _] = wrapped(GENERATED_WITH[0]);
    assert_eq!(
        deployment["spec"]["template"]["spec"]["terminationGracePeriodSeconds"],
        30
    );
}

/// The venv's interpreter, with `kubernetes-validate` in it.
fn validator() -> PathBuf {
    let python = lifecycle_tests::python::interpreter();
    let probe = Command::new(&python)
        .args(["-c", "import kubernetes_validate"])
        .output()
        .unwrap();
    assert!(
        probe.status.success(),
        "{} cannot import kubernetes_validate ({}): run ./scripts/test, which installs PyPI's kubernetes-validate into the venv",
        python.display(),
        String::from_utf8_lossy(&probe.stderr).trim()
    );
    python
}

/// The Kubernetes versions `kubernetes-validate` knows, from the oldest
/// with `lifecycle.stopSignal` to its newest, as it lists them.
fn kubernetes_versions(python: &Path) -> Vec<String> {
    let listed = Command::new(python)
        .args([
            "-c",
            "import kubernetes_validate.utils as u; print('\\n'.join(sorted(set(u.all_versions()))))",
        ])
        .output()
        .unwrap();
    assert!(
        listed.status.success(),
        "{}",
        String::from_utf8_lossy(&listed.stderr)
    );
    let minor = |version: &str| -> (u32, u32) {
        let mut parts = version.split('.').map(|part| part.parse::<u32>().unwrap());
        (parts.next().unwrap(), parts.next().unwrap())
    };
    let mut versions: Vec<String> = String::from_utf8(listed.stdout)
        .unwrap()
        .lines()
        .map(str::to_owned)
        .filter(|version| minor(version) >= OLDEST_VERSION)
        .collect();
    versions.sort_by_key(|version| minor(version));
    versions
}

#[test]
fn the_generated_manifests_validate_strictly_on_kubernetes_1_33_and_later() {
    let python = validator();
    let versions = kubernetes_versions(&python);
    assert_eq!(
        versions.first().map(String::as_str),
        Some("1.33.0"),
        "kubernetes-validate knows no 1.33: {versions:?}"
    );
    let scratch = Scratch::new("validate");
    let mut files = Vec::new();
    for (i, env) in GENERATED_WITH.iter().enumerate() {
        for (name, document) in wrapped(env) {
            files.push(scratch.written(&format!("generated-{i}-{name}"), &document));
        }
    }
    let mut failures = Vec::new();
    for version in &versions {
        for file in &files {
            let ran = Command::new(&python)
                .args(["-m", "kubernetes_validate", "--strict", "-k", version])
                .arg(file)
                .output()
                .unwrap();
            if !ran.status.success() {
                failures.push(format!(
                    "{version} {}: {}{}\n{}",
                    file.display(),
                    String::from_utf8_lossy(&ran.stdout),
                    String::from_utf8_lossy(&ran.stderr),
                    std::fs::read_to_string(file).unwrap()
                ));
            }
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}
