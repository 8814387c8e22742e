//! What a metrics scrape reads of the service: [`Observed`] for the
//! lifecycle, which has the phase, the heartbeat and the connections, with
//! the log's dropped lines beside them.

use std::time::Duration;

use crate::lifecycle::{Lifecycle, Phase};
use crate::metrics::Observed;

impl Observed for Lifecycle {
    fn phases(&self) -> Vec<(&'static str, bool)> {
        let current = self.phase();
        Phase::ALL
            .into_iter()
            .map(|phase| (phase.as_str(), phase == current))
            .collect()
    }

    fn silence(&self) -> Duration {
        self.heartbeat().silence()
    }

    fn log_lines_dropped(&self) -> u64 {
        crate::logging::log_lines_dropped()
    }

    fn connection_counts(&self) -> (usize, u64) {
        let connections = self.connections();
        (connections.open(), connections.ended())
    }
}
