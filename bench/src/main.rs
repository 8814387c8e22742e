//! The benchmark driver that `bench/run` starts once it has built every
//! service: it runs lifecycle and its baselines side by side, round after
//! round, and writes BENCHMARKS.md.
//!
//! ```text
//! bench --bin DIR --root DIR --out FILE [--rounds N] [--seconds S]
//!       [--samples N] [--probes N] [--builds N] [--pairs N]
//!       [--command TEXT] [--only WORD]...
//! ```

// Linux only, not ported: on another system this is the first error, and
// it says why.
#[cfg(not(target_os = "linux"))]
compile_error!("lifecycle-bench is lifecycle's Linux benchmark (bench/run: CPU and memory from /proc, wrk, Debian packages); it is not built for other systems");

mod figures;
mod grpc;
mod http;
mod procs;
mod report;
mod stats;
mod wrk;

use std::path::PathBuf;
use std::process::{Command, ExitCode};
use std::time::{Duration, Instant};

use figures::Bench;
use report::{Context, Figure};

struct Options {
    bench: Bench,
    out: PathBuf,
    command: String,
    /// Steps to run (by a word of their name), all when empty: for
    /// profiling one figure, not for BENCHMARKS.md.
    only: Vec<String>,
}

fn parse() -> Result<Options, String> {
    let mut bench = Bench {
        bin: PathBuf::new(),
        root: PathBuf::from("."),
        rounds: 3,
        load: Duration::from_secs(3),
        samples: 20,
        probes: 1000,
        builds: 3,
        pairs: 12,
    };
    let mut out = PathBuf::from("BENCHMARKS.md");
    let mut command = String::from("bench/run");
    let mut only = Vec::new();
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let value = args.next().ok_or_else(|| format!("{flag} needs a value"))?;
        let number = || {
            value
                .parse::<usize>()
                .map_err(|_| format!("{flag} takes a number, not {value:?}"))
        };
        match flag.as_str() {
            "--bin" => bench.bin = PathBuf::from(&value),
            "--root" => bench.root = PathBuf::from(&value),
            "--out" => out = PathBuf::from(&value),
            "--command" => command = value.clone(),
            "--rounds" => bench.rounds = number()?.max(1),
            "--seconds" => bench.load = Duration::from_secs(number()?.max(1) as u64),
            "--samples" => bench.samples = number()?.max(1),
            "--probes" => bench.probes = number()?.max(1),
            "--builds" => bench.builds = number()?,
            "--pairs" => bench.pairs = number()?.max(1),
            "--only" => only.push(value.clone()),
            _ => return Err(format!("unknown flag {flag}")),
        }
    }
    if bench.bin.as_os_str().is_empty() {
        return Err("--bin DIR is required (bench/run sets it)".into());
    }
    Ok(Options {
        bench,
        out,
        command,
        only,
    })
}

/// The commit measured, and whether the tree differed from it: figures
/// name the code they came from.
fn commit(root: &std::path::Path) -> String {
    let root = root.to_string_lossy();
    let head = first_line("git", &["-C", &root, "rev-parse", "--short", "HEAD"]);
    let changed = first_line(
        "git",
        &["-C", &root, "status", "--porcelain", "--untracked-files=no"],
    );
    if changed.is_empty() {
        format!("commit {head}")
    } else {
        format!("commit {head} with uncommitted changes")
    }
}

fn first_line(program: &str, args: &[&str]) -> String {
    Command::new(program)
        .args(args)
        .output()
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .lines()
                .next()
                .unwrap_or("")
                .trim()
                .to_string()
        })
        .unwrap_or_else(|e| format!("{program}: {e}"))
}

fn machine() -> Vec<(String, String)> {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find_map(|line| line.strip_prefix("model name"))
        .map(|rest| rest.trim_start_matches([' ', '\t', ':']).to_string())
        .unwrap_or_else(|| "unknown".into());
    let memory = std::fs::read_to_string("/proc/meminfo")
        .unwrap_or_default()
        .lines()
        .find_map(|line| line.strip_prefix("MemTotal:"))
        .and_then(|kib| kib.split_whitespace().next()?.parse::<f64>().ok())
        .map(|kib| format!("{:.1} GiB", kib / 1024.0 / 1024.0))
        .unwrap_or_default();
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let load = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    vec![
        ("CPU".into(), format!("{cores} × {model}")),
        ("memory".into(), memory),
        ("kernel".into(), first_line("uname", &["-sr"])),
        ("rustc".into(), first_line("rustc", &["-V"])),
        ("go".into(), first_line("go", &["version"])),
        ("wrk".into(), wrk::version()),
        (
            "load average at the start".into(),
            load.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" "),
        ),
    ]
}

fn main() -> ExitCode {
    let options = match parse() {
        Ok(options) => options,
        Err(error) => {
            eprintln!("bench: {error}");
            return ExitCode::from(2);
        }
    };
    let bench = &options.bench;
    let machine = machine();
    let started = Instant::now();
    let started_at = first_line("date", &["-u", "+%Y-%m-%d %H:%M UTC"]);
    let commit = commit(&bench.root);
    type Measure = fn(&Bench) -> Result<Vec<Figure>, String>;
    let steps: [(&str, Measure); 10] = [
        ("throughput and CPU", figures::throughput),
        ("the application's listener", figures::listener),
        ("latency under a busy runtime", figures::busy),
        ("a blocked runtime", figures::blocked),
        ("start and stop", figures::start_and_stop),
        ("memory", figures::memory),
        ("binary size", figures::size),
        ("gRPC", figures::grpc),
        ("/metrics", figures::scrape),
        ("clean builds", figures::build),
    ];
    let mut figures = Vec::new();
    for (name, measure) in steps {
        if !options.only.is_empty() && !options.only.iter().any(|word| name.contains(word.as_str()))
        {
            continue;
        }
        eprintln!("bench: {name}…");
        let step = Instant::now();
        match measure(bench) {
            Ok(done) => figures.extend(done),
            Err(error) => {
                eprintln!("bench: {name}: {error}");
                return ExitCode::FAILURE;
            }
        }
        eprintln!("bench: {name}: {:.1} s", step.elapsed().as_secs_f64());
    }
    let findings =
        std::fs::read_to_string(bench.root.join("bench/findings.md")).unwrap_or_default();
    let context = Context {
        command: options.command.clone(),
        machine,
        rounds: bench.rounds,
        started: started_at,
        commit,
        minutes: started.elapsed().as_secs_f64() / 60.0,
    };
    let text = report::markdown(&context, &figures, &findings);
    if let Err(error) = std::fs::write(&options.out, &text) {
        eprintln!("bench: {}: {error}", options.out.display());
        return ExitCode::FAILURE;
    }
    let missed: Vec<String> = figures
        .iter()
        .flat_map(|figure| {
            figure
                .goals
                .iter()
                .filter(|goal| !goal.met)
                .map(move |goal| format!("{}: {}", figure.title, goal.text))
        })
        .collect();
    let goals: usize = figures.iter().map(|figure| figure.goals.len()).sum();
    eprintln!(
        "bench: wrote {}: {} of {goals} goals met",
        options.out.display(),
        goals - missed.len()
    );
    for goal in missed {
        eprintln!("bench: missed: {goal}");
    }
    ExitCode::SUCCESS
}
