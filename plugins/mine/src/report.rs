//! What the miner tells the host: typed figures through
//! `pictor:plugin/mining.report` and a one-line message through `progress`
//! (the host shows the figures; the message is for logs and `exec`).

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use pictor_sdk::Job;

/// How often figures are reported without a reason to.
pub const REPORT_INTERVAL: Duration = Duration::from_secs(1);
/// The hashrate is averaged over this long.
const WINDOW: Duration = Duration::from_secs(5);

/// A miner's figures (the WIT `mining-stats` record).
pub use pictor_sdk::mining::MiningStats;

/// Hashes per second over a sliding window.
#[derive(Debug)]
pub struct Meter {
    started: Instant,
    samples: VecDeque<(Instant, u64)>,
}

impl Default for Meter {
    fn default() -> Self {
        Meter {
            started: Instant::now(),
            samples: VecDeque::new(),
        }
    }
}

impl Meter {
    /// Counts `hashes` done just now.
    pub fn add(&mut self, hashes: u64) {
        let now = Instant::now();
        self.samples.push_back((now, hashes));
        while self
            .samples
            .front()
            .is_some_and(|(t, _)| now.duration_since(*t) > WINDOW)
        {
            self.samples.pop_front();
        }
    }

    /// Hashes per second over the window (0 after a pause longer than it).
    pub fn rate(&self) -> f64 {
        let now = Instant::now();
        let span = now.duration_since(self.started).min(WINDOW).as_secs_f64();
        if span <= 0.0 {
            return 0.0;
        }
        let hashes: u64 = self
            .samples
            .iter()
            .filter(|(t, _)| now.duration_since(*t) <= WINDOW)
            .map(|(_, n)| n)
            .sum();
        hashes as f64 / span
    }
}

/// `1234567.0` → `1.23 MH/s`.
pub fn format_rate(hps: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"];
    let mut value = hps.max(0.0);
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}

/// Sends figures and a message to the host, at most every
/// [`REPORT_INTERVAL`] unless forced.
pub struct Reporter<'a> {
    job: &'a Job,
    last: Option<Instant>,
}

impl<'a> Reporter<'a> {
    /// A reporter for `job`.
    pub fn new(job: &'a Job) -> Self {
        Reporter { job, last: None }
    }

    /// Reports `stats` and `message` if the interval has passed or `force`.
    pub fn report(&mut self, stats: &MiningStats, message: &str, force: bool) {
        if !force && self.last.is_some_and(|at| at.elapsed() < REPORT_INTERVAL) {
            return;
        }
        self.last = Some(Instant::now());
        self.job.progress(0.0, message);
        pictor_sdk::mining::report(stats);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_are_formatted_with_units() {
        assert_eq!(format_rate(0.0), "0.00 H/s");
        assert_eq!(format_rate(1_234_567.0), "1.23 MH/s");
        assert_eq!(format_rate(2.5e12), "2.50 TH/s");
    }

    #[test]
    fn the_meter_averages_over_its_window() {
        let mut meter = Meter::default();
        assert_eq!(meter.rate(), 0.0);
        std::thread::sleep(Duration::from_millis(20));
        meter.add(1000);
        let rate = meter.rate();
        assert!(rate > 1000.0 && rate < 1000.0 / 0.019, "{rate}");
    }
}
