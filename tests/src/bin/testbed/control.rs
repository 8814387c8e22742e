//! Commands from the test driving this process, one per line on stdin:
//! `set FLAG`, `clear FLAG`. Each is acknowledged on stdout with
//! `ack <line>` once applied, so the test knows when it is in force.
//! The flags `unready`, `reindex`, `reload` and `broken` call the runtime
//! API directly: `unready` and `reindex` hold an `out_of_rotation` guard
//! until cleared; `reload` moves one into a task that never ends, which
//! `clear reload` cancels (the guard drops with it).

use std::collections::BTreeSet;
use std::io::{BufRead, Write};

use once_cell::sync::Lazy;
use tokio::sync::watch;

static FLAGS: Lazy<watch::Sender<BTreeSet<String>>> =
    Lazy::new(|| watch::Sender::new(BTreeSet::new()));

/// Starts the reader thread (once).
pub fn start() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    // Called from an on_startup hook: the application runtime.
    let runtime = tokio::runtime::Handle::current();
    STARTED.call_once(|| {
        std::thread::spawn(move || {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                let line = line.trim().to_owned();
                match line.split_once(' ') {
                    Some(("set", flag)) => {
                        match flag {
                            "unready" => hold_out_of_rotation("unready", "testbed unready"),
                            "reindex" => hold_out_of_rotation("reindex", "rebuilding index"),
                            "reload" => {
                                let out = lifecycle_runtime::out_of_rotation("reloading config");
                                let task = runtime.spawn(async move {
                                    let _out = out;
                                    std::future::pending::<()>().await
                                });
                                *RELOAD.lock().unwrap() = Some(task);
                            }
                            "broken" => lifecycle_runtime::mark_broken("database pool poisoned"),
                            _ => {}
                        }
                        FLAGS.send_modify(|flags| {
                            flags.insert(flag.to_owned());
                        });
                    }
                    Some(("clear", flag)) => {
                        if flag == "unready" || flag == "reindex" {
                            back_in_rotation(flag);
                        }
                        if flag == "reload" {
                            if let Some(task) = RELOAD.lock().unwrap().take() {
                                task.abort();
                            }
                        }
                        FLAGS.send_modify(|flags| {
                            flags.remove(flag);
                        });
                    }
                    _ => {
                        eprintln!("testbed: unknown command {line:?}");
                        continue;
                    }
                }
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "ack {line}");
                let _ = out.flush();
            }
        });
    });
}

pub fn is_set(flag: &str) -> bool {
    FLAGS.borrow().contains(flag)
}

/// Waits until `flag` is set.
pub async fn wait_for(flag: &str) {
    let mut flags = FLAGS.subscribe();
    let _ = flags.wait_for(|flags| flags.contains(flag)).await;
}

/// Waits until `flag` is not set.
pub async fn wait_until_clear(flag: &str) {
    let mut flags = FLAGS.subscribe();
    let _ = flags.wait_for(|flags| !flags.contains(flag)).await;
}

/// The `out_of_rotation` guards the test holds, by flag: dropped by `clear`.
static OUT_OF_ROTATION: std::sync::Mutex<Vec<(&'static str, lifecycle_runtime::OutOfRotation)>> =
    std::sync::Mutex::new(Vec::new());

/// The task that holds the `reload` guard.
static RELOAD: std::sync::Mutex<Option<tokio::task::JoinHandle<()>>> = std::sync::Mutex::new(None);

fn hold_out_of_rotation(flag: &'static str, reason: &'static str) {
    let guard = lifecycle_runtime::out_of_rotation(reason);
    OUT_OF_ROTATION.lock().unwrap().push((flag, guard));
}

fn back_in_rotation(flag: &str) {
    OUT_OF_ROTATION
        .lock()
        .unwrap()
        .retain(|(held, _)| *held != flag);
}
