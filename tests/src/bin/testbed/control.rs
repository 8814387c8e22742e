//! Commands from the test driving this process, one per line on stdin:
//! `set FLAG`, `clear FLAG`. Each is acknowledged on stdout with
//! `ack <line>` once applied, so the test knows when it is in force.
//! The flags `unready` and `broken` call the runtime API directly.

use std::collections::BTreeSet;
use std::io::{BufRead, Write};

use once_cell::sync::Lazy;
use tokio::sync::watch;

static FLAGS: Lazy<watch::Sender<BTreeSet<String>>> =
    Lazy::new(|| watch::Sender::new(BTreeSet::new()));

/// Starts the reader thread (once).
pub fn start() {
    static STARTED: std::sync::Once = std::sync::Once::new();
    STARTED.call_once(|| {
        std::thread::spawn(|| {
            for line in std::io::stdin().lock().lines() {
                let Ok(line) = line else { return };
                let line = line.trim().to_owned();
                match line.split_once(' ') {
                    Some(("set", flag)) => {
                        match flag {
                            "unready" => lifecycle_runtime::set_ready(false),
                            "broken" => lifecycle_runtime::mark_broken("database pool poisoned"),
                            _ => {}
                        }
                        FLAGS.send_modify(|flags| {
                            flags.insert(flag.to_owned());
                        });
                    }
                    Some(("clear", flag)) => {
                        if flag == "unready" {
                            lifecycle_runtime::set_ready(true);
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
