//! The service's output streams, collected line by line as they come.

use std::io::{BufRead, BufReader};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::sync::lock;

/// How many log lines a failure shows.
pub(crate) const LOG_TAIL: usize = 20;

/// Lines of one of the service's output streams, collected as they come.
#[derive(Clone, Default)]
pub(crate) struct Lines {
    lines: Arc<Mutex<Vec<String>>>,
    /// The stream has ended: every line is in.
    ended: Arc<AtomicBool>,
}

impl Lines {
    pub(super) fn collect(stream: impl std::io::Read + Send + 'static) -> Lines {
        let lines = Lines::default();
        let sink = lines.clone();
        std::thread::spawn(move || {
            for line in BufReader::new(stream).lines().map_while(Result::ok) {
                lock(&sink.lines).push(line);
            }
            sink.ended.store(true, Ordering::SeqCst);
        });
        lines
    }

    /// Waits until the stream has ended, or `until`.
    pub(super) fn wait_ended(&self, until: Instant) {
        while !self.ended.load(Ordering::SeqCst) && Instant::now() < until {
            std::thread::sleep(Duration::from_millis(2));
        }
    }

    pub(super) fn all(&self) -> Vec<String> {
        lock(&self.lines).clone()
    }

    pub(crate) fn tail(&self, count: usize) -> Vec<String> {
        tail(&self.all(), count)
    }

    pub(super) fn find(&self, needle: &str) -> Option<String> {
        lock(&self.lines)
            .iter()
            .find(|l| l.contains(needle))
            .cloned()
    }
}

/// The last `count` of `lines`, or all of them if there are fewer.
pub(crate) fn tail(lines: &[String], count: usize) -> Vec<String> {
    lines[lines.len().saturating_sub(count)..].to_vec()
}
