//! The reliable queue on a real Redis: every job runs to completion exactly
//! once, whatever stops the worker, as long as it starts again with the
//! same identity.

// A real redis-server from the Linux harness (lifecycle-tests); libc signals.
#![cfg(target_os = "linux")]

mod support;

use std::collections::BTreeMap;
use std::time::Duration;

use lifecycle_testing::Stop;
use lifecycle_tests::redis::RedisServer;
use support::{blocked_in_blmove, llen, push_jobs, wait_until, worker};

const JOB_COUNT: usize = 300;
const STOPS: usize = 5;
/// Jobs finished in each run before its SIGTERM: mid-stream.
const PER_RUN: usize = 40;
const GRACE: Duration = Duration::from_secs(20);

/// Each job's id, and how many times `done` records it.
fn recorded(redis: &RedisServer) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for job in redis.list("done") {
        *counts.entry(job).or_insert(0) += 1;
    }
    counts
}

/// The number N in the shutdown hook's "…, N of them after the stop
/// began: …" line.
fn finished_while_stopping(log: &[String]) -> usize {
    let line = log
        .iter()
        .find(|line| line.contains("shutdown: finished "))
        .unwrap_or_else(|| panic!("no report from the on_shutdown hook:\n{}", log.join("\n")));
    let (_, rest) = line.split_once(" job(s) in all, ").unwrap();
    rest.split(' ').next().unwrap().parse().unwrap()
}

#[test]
fn every_job_runs_to_completion_exactly_once_across_sigterms_and_restarts() {
    let redis = RedisServer::start();
    let jobs: Vec<String> = (0..JOB_COUNT).map(|i| format!("job-{i:03}")).collect();
    push_jobs(&redis, &jobs);

    // Per stop, how many jobs finished after its signal.
    let mut finished_after_signal = Vec::new();
    for stop in 1..=STOPS {
        let mut service = worker(&redis.url(), "w1", 100).start().unwrap();
        // Mid-stream: this run has finished some jobs and is running
        // others (a job in the processing list is running: one is taken
        // only when a slot is free).
        let target = llen(&redis, "done") + PER_RUN;
        let running = wait_until(
            &format!("{target} jobs done, and some running (stop {stop})"),
            Duration::from_secs(30),
            || {
                let running = redis.list("processing:w1");
                (llen(&redis, "done") >= target && !running.is_empty()).then_some(running)
            },
        );
        let stopped = service.stop(Stop::grace(GRACE));
        let log = stopped.log.join("\n");
        assert_eq!(stopped.exit.code, Some(0), "stop {stop}: {stopped:?}");
        assert!(!stopped.killed);
        // Nothing stays in the processing list: each job running at the
        // signal was finished, not abandoned (or, if the BLMOVE that took
        // it had not answered yet when the stop began, handed back unrun).
        assert_eq!(
            redis.list("processing:w1"),
            Vec::<String>::new(),
            "stop {stop}\n{log}"
        );
        let (done, queued) = (recorded(&redis), redis.list("jobs"));
        for job in &running {
            assert!(
                done.contains_key(job) || queued.contains(job),
                "stop {stop}: {job} was running at the signal and is neither done nor queued\n{log}"
            );
        }
        finished_after_signal.push(finished_while_stopping(&stopped.log));
    }
    eprintln!("jobs finished after each signal: {finished_after_signal:?}");
    // The stops landed mid-job, and waited for the running jobs. (One may
    // land in the instant between a job's end and the next one's start:
    // not all five.)
    assert!(
        finished_after_signal.iter().any(|n| *n > 0),
        "jobs finished after each signal: {finished_after_signal:?}"
    );

    // The last run empties the queue.
    let mut service = worker(&redis.url(), "w1", 100).start().unwrap();
    wait_until(
        "the queue and the processing list empty",
        Duration::from_secs(30),
        || (llen(&redis, "jobs") == 0 && llen(&redis, "processing:w1") == 0).then_some(()),
    );
    let stopped = service.stop(Stop::grace(GRACE));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");

    let done = recorded(&redis);
    let twice: Vec<_> = done.iter().filter(|(_, n)| **n > 1).collect();
    let missing: Vec<_> = jobs.iter().filter(|job| !done.contains_key(*job)).collect();
    assert!(twice.is_empty(), "recorded more than once: {twice:?}");
    assert!(missing.is_empty(), "never recorded: {missing:?}");
    assert_eq!(done.len(), JOB_COUNT, "{done:?}");
}

#[test]
fn a_job_cut_by_the_deadline_runs_again_when_the_same_identity_starts_again() {
    let redis = RedisServer::start();
    // Taken from the end LPUSH does not write: slow-1 and slow-2 first.
    push_jobs(&redis, &["slow-1".into(), "slow-2".into(), "slow-3".into()]);

    // Two jobs that outlive the shutdown deadline.
    let mut service = worker(&redis.url(), "w1", 60_000)
        .env("WORKER_CONCURRENCY", "2")
        .env("LIFECYCLE_SHUTDOWN_TIMEOUT_MS", "1000")
        .start()
        .unwrap();
    wait_until("two jobs running", Duration::from_secs(10), || {
        (llen(&redis, "processing:w1") == 2).then_some(())
    });
    let stopped = service.stop(Stop::grace(GRACE));
    assert_eq!(
        stopped.exit.code,
        Some(1),
        "the deadline passed: {stopped:?}"
    );
    assert!(!stopped.killed);
    let mut held = redis.list("processing:w1");
    held.sort();
    assert_eq!(held, ["slow-1", "slow-2"], "{:?}", stopped.log);
    assert_eq!(redis.list("done"), Vec::<String>::new());
    assert_eq!(redis.list("jobs"), ["slow-3"]);

    // Another identity never takes them: only the queue's job.
    let mut other = worker(&redis.url(), "w2", 50).start().unwrap();
    wait_until("slow-3 done by w2", Duration::from_secs(10), || {
        (redis.list("done") == ["slow-3"]).then_some(())
    });
    let stopped = other.stop(Stop::grace(GRACE));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    assert_eq!(llen(&redis, "processing:w1"), 2);

    // The same identity puts them back at start, then runs them.
    let mut service = worker(&redis.url(), "w1", 50).start().unwrap();
    service
        .wait_for_log(
            "put back 2 unfinished job(s) from processing:w1 on jobs",
            Duration::from_secs(5),
        )
        .unwrap();
    wait_until("three jobs done", Duration::from_secs(10), || {
        (llen(&redis, "done") >= 3 && llen(&redis, "processing:w1") == 0).then_some(())
    });
    let stopped = service.stop(Stop::grace(GRACE));
    assert_eq!(stopped.exit.code, Some(0), "{stopped:?}");
    let mut done = redis.list("done");
    done.sort();
    assert_eq!(done, ["slow-1", "slow-2", "slow-3"]);
}

#[test]
fn a_job_taken_as_the_stop_begins_goes_back_to_the_queue_unrun() {
    let redis = RedisServer::start();
    // The job must reach a BLMOVE that was waiting when the stop began.
    // The signal is handled on threads of the worker's own, so a job
    // pushed right after it may still come before the stop (then it runs,
    // as it should): tried until one reaches that BLMOVE, and whichever
    // way each try goes, the job is either back on the queue or done once,
    // never stranded in the processing list.
    for attempt in 1..=5 {
        let mut service = worker(&redis.url(), "w1", 100).start().unwrap();
        // The queue is empty: the consumer waits in a BLMOVE, a second at
        // a time.
        wait_until(
            "the consumer waiting in BLMOVE",
            Duration::from_secs(5),
            || blocked_in_blmove(&redis).then_some(()),
        );
        service.signal(libc::SIGTERM);
        service
            .wait_for_log("drain over", Duration::from_secs(5))
            .unwrap();
        push_jobs(&redis, &["late".into()]);
        let exit = service.wait_exit(GRACE).unwrap();
        let log = service.log().join("\n");
        assert_eq!(exit.code, Some(0), "{log}");
        assert_eq!(redis.list("processing:w1"), Vec::<String>::new(), "{log}");
        if log.contains("handed late back to jobs") {
            assert_eq!(redis.list("jobs"), ["late"], "{log}");
            assert_eq!(redis.list("done"), Vec::<String>::new(), "{log}");
            return;
        }
        // Not taken by a BLMOVE after the stop began: left on the queue
        // (the BLMOVE ended just before the push), or run before the stop.
        let (queued, done) = (redis.list("jobs"), redis.list("done"));
        assert!(
            (queued == ["late"] && done.is_empty()) || (queued.is_empty() && done == ["late"]),
            "attempt {attempt}: jobs {queued:?}, done {done:?}\n{log}"
        );
        redis.command(&["DEL", "jobs", "done"]);
    }
    panic!("no job reached a BLMOVE waiting as the stop began in 5 attempts");
}
