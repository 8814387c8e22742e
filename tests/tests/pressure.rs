//! Probes under pressure that is not about timing: the task ceiling and
//! background checks that probes never run.

use std::time::{Duration, Instant};

use lifecycle_testing::probe::DEFAULT_TIMEOUT;
use lifecycle_testing::{Endpoint, Service};
use lifecycle_tests::{fixture, http_get, ServiceExt};

const TESTBED: &str = env!("CARGO_BIN_EXE_testbed");
const DEADLINE: Duration = Duration::from_secs(10);

fn runs(service: &Service) -> (u64, u64) {
    let (status, body) = http_get(&format!("{}/runs", service.app_url())).unwrap();
    assert_eq!(status, 200);
    let mut numbers = body
        .split(' ')
        .map(|part| part.split('=').nth(1).unwrap().parse::<u64>().unwrap());
    (numbers.next().unwrap(), numbers.next().unwrap())
}

#[test]
fn spawning_past_max_tasks_fails_livez_until_the_tasks_finish() {
    let mut service = fixture(TESTBED).spawn().unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    assert_eq!(service.probe(Endpoint::Livez).status, Some(200));

    service.command("set spawn-many");
    service.wait_for_stdout("spawned many", DEADLINE);
    let live = service.wait_for_status("/livez", 503, DEADLINE);
    let line = live.body.trim_end();
    assert!(
        line.starts_with("[-]tasks failed: ")
            && line.contains(" tasks alive, more than max_tasks = 50"),
        "{line}"
    );
    let alive: u64 = line["[-]tasks failed: ".len()..]
        .split(' ')
        .next()
        .unwrap()
        .parse()
        .unwrap();
    assert!(alive > 100, "{alive}");

    service.command("clear spawn-many");
    service.wait_for_status("/livez", 200, DEADLINE);
}

#[test]
fn a_burst_of_probes_never_runs_a_background_check() {
    let mut service = fixture(TESTBED).spawn().unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    let (_, before) = runs(&service);
    let started = Instant::now();
    let threads: Vec<_> = (0..4)
        .map(|_| {
            let addr = service.probe_addr();
            std::thread::spawn(move || {
                for _ in 0..50 {
                    let answer = lifecycle_testing::probe::http_probe(
                        addr,
                        "/readyz/background",
                        DEFAULT_TIMEOUT,
                    );
                    assert_eq!(answer.status, Some(200), "{answer}");
                }
            })
        })
        .collect();
    for thread in threads {
        thread.join().unwrap();
    }
    let elapsed = started.elapsed();
    let (_, after) = runs(&service);
    // At most one run per 200 ms interval, plus the one under way.
    let allowed = (elapsed.as_millis() / 200) as u64 + 2;
    assert!(
        after - before <= allowed,
        "200 probes in {elapsed:?} saw {} runs (allowed {allowed})",
        after - before
    );

    service.send("set quit");
    assert_eq!(service.wait_exit(DEADLINE).unwrap().code, Some(0));
}

#[test]
fn background_runners_stop_once_shutdown_begins() {
    let service = fixture(TESTBED)
        .env("LIFECYCLE_DRAIN_DELAY_MS", "3000")
        .spawn()
        .unwrap();
    service.wait_passing(Endpoint::Readyz, DEADLINE).unwrap();
    service.wait_for_stdout("main running", DEADLINE);
    let (_, before) = runs(&service);
    std::thread::sleep(Duration::from_millis(500));
    assert!(runs(&service).1 > before, "the runner runs while serving");

    service.signal(libc::SIGTERM);
    service.wait_for_status("/readyz", 503, DEADLINE);
    // A run under way when the signal came may still end; then none.
    std::thread::sleep(Duration::from_millis(300));
    let (_, stopped) = runs(&service);
    std::thread::sleep(Duration::from_millis(800));
    assert_eq!(runs(&service).1, stopped, "no runs during the drain delay");
}
