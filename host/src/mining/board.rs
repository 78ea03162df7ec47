//! The mining figures of this worker: every running miner's reports
//! summed over the totals of finished runs, published for the status line,
//! the status page and metrics.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};

use serde::Serialize;
use tokio::sync::watch;

use pictor_runtime::capabilities::mining::MinerReport;

/// Mining figures of this worker, for the owner: the status line, and the
/// status page and metrics. Share counts and hashes are totals since the
/// worker started (over every miner run and GPU); the hashrate is now.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct MiningSummary {
    /// Hashes per second now, all GPUs together (0 while no miner runs).
    pub hashrate_hps: f64,
    /// Shares the pool accepted since the worker started.
    pub accepted: u64,
    /// Shares the pool rejected since the worker started.
    pub rejected: u64,
    /// Hashes computed since the worker started.
    pub hashes: u64,
    /// The pool, `host:port`.
    pub pool: String,
    /// The coin mined.
    pub coin: String,
    /// Whether a miner is connected to the pool (and authorized) now.
    pub connected: bool,
    /// Miners running now (one per idle GPU; 0 while jobs run).
    pub miners: usize,
    /// The pool's latest share difficulty.
    pub difficulty: f64,
}

/// Keeps [`MiningSummary`] up to date from every running miner's reports
/// and publishes them on a `watch` channel.
#[derive(Debug)]
pub struct MiningBoard {
    state: Mutex<BoardState>,
    published: watch::Sender<Option<MiningSummary>>,
}

#[derive(Debug, Default)]
struct BoardState {
    /// Totals of finished runs, and pool and coin.
    base: MiningSummary,
    /// The latest report of each running miner, by GPU slot.
    live: BTreeMap<usize, MinerReport>,
}

impl MiningBoard {
    /// A board for mining `coin` on `pool`, publishing its first figures.
    pub fn new(pool: String, coin: String) -> Arc<Self> {
        let base = MiningSummary {
            pool,
            coin,
            ..MiningSummary::default()
        };
        let (published, _) = watch::channel(Some(base.clone()));
        Arc::new(MiningBoard {
            state: Mutex::new(BoardState {
                base,
                live: BTreeMap::new(),
            }),
            published,
        })
    }

    /// The figures, updated on every report.
    pub fn subscribe(&self) -> watch::Receiver<Option<MiningSummary>> {
        self.published.subscribe()
    }

    /// The figures now.
    pub fn stats(&self) -> MiningSummary {
        self.state
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .stats()
    }

    /// Records the latest report of the miner on `slot`.
    pub fn update(&self, slot: usize, report: MinerReport) {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        state.live.insert(slot, report);
        self.published.send_replace(Some(state.stats()));
    }

    /// The miner on `slot` ended: its counts join the totals.
    pub fn finish(&self, slot: usize) -> MinerReport {
        let mut state = self.state.lock().unwrap_or_else(PoisonError::into_inner);
        let last = state.live.remove(&slot).unwrap_or_default();
        state.base.accepted += last.accepted;
        state.base.rejected += last.rejected;
        state.base.hashes += last.hashes;
        if last.difficulty > 0.0 {
            state.base.difficulty = last.difficulty;
        }
        self.published.send_replace(Some(state.stats()));
        last
    }
}

impl BoardState {
    fn stats(&self) -> MiningSummary {
        let mut s = self.base.clone();
        for r in self.live.values() {
            s.hashrate_hps += r.hashrate_hps;
            s.accepted += r.accepted;
            s.rejected += r.rejected;
            s.hashes += r.hashes;
            s.connected |= r.connected;
            if r.difficulty > 0.0 {
                s.difficulty = r.difficulty;
            }
        }
        s.miners = self.live.len();
        s
    }
}

/// `12345678.0` → `12.35 MH/s`.
pub fn format_hashrate(hps: f64) -> String {
    let units = ["H/s", "kH/s", "MH/s", "GH/s", "TH/s", "PH/s"];
    let mut value = if hps.is_finite() { hps.max(0.0) } else { 0.0 };
    let mut unit = 0;
    while value >= 1000.0 && unit + 1 < units.len() {
        value /= 1000.0;
        unit += 1;
    }
    format!("{value:.2} {}", units[unit])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_board_sums_live_miners_over_finished_runs() {
        let board = MiningBoard::new("pool.example:3333".into(), "btc".into());
        let rx = board.subscribe();
        let first = rx.borrow().clone().unwrap();
        assert_eq!(
            (
                first.pool.as_str(),
                first.coin.as_str(),
                first.miners,
                first.connected
            ),
            ("pool.example:3333", "btc", 0, false)
        );
        let report = |hps, accepted, connected| MinerReport {
            hashrate_hps: hps,
            hashes: 100,
            accepted,
            rejected: 1,
            connected,
            difficulty: 0.5,
        };
        board.update(0, report(10.0, 3, true));
        board.update(1, report(5.0, 1, false));
        let s = rx.borrow().clone().unwrap();
        assert_eq!(
            (
                s.hashrate_hps,
                s.accepted,
                s.rejected,
                s.hashes,
                s.miners,
                s.connected
            ),
            (15.0, 4, 2, 200, 2, true)
        );
        assert_eq!(board.finish(0).accepted, 3);
        // A new run on slot 0 starts from zero; the totals keep the old one.
        board.update(0, report(7.0, 1, false));
        let s = board.stats();
        assert_eq!(
            (
                s.hashrate_hps,
                s.accepted,
                s.rejected,
                s.miners,
                s.connected
            ),
            (12.0, 5, 3, 2, false)
        );
        board.finish(0);
        board.finish(1);
        let s = board.stats();
        assert_eq!(
            (
                s.hashrate_hps,
                s.accepted,
                s.rejected,
                s.hashes,
                s.miners,
                s.difficulty
            ),
            (0.0, 5, 3, 300, 0, 0.5)
        );
        assert_eq!(*rx.borrow(), Some(s));
    }

    #[test]
    fn hashrates_read_well() {
        assert_eq!(format_hashrate(0.0), "0.00 H/s");
        assert_eq!(format_hashrate(12_345_678.0), "12.35 MH/s");
        assert_eq!(format_hashrate(f64::NAN), "0.00 H/s");
    }
}
