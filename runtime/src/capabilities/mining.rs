//! `pictor:plugin/mining` (the `miner` world only): a miner's figures,
//! typed, published on a `watch` channel. The worker folds them into its
//! mining summary for the status line, the journal and the status page.
//! Jobs never get this interface.

use tokio::sync::watch;
use wasmtime::component::{HasData, Linker};

use crate::bindings::miner::pictor::plugin::mining::{self, Host, MiningStats};

/// A miner's latest report, as the host keeps it (non-finite or negative
/// figures from the plugin become 0).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct MinerReport {
    /// Hashes per second, recent average.
    pub hashrate_hps: f64,
    /// Hashes since the miner started.
    pub hashes: u64,
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Shares the pool rejected.
    pub rejected: u64,
    /// Connected to the pool and authorized.
    pub connected: bool,
    /// Current share difficulty.
    pub difficulty: f64,
}

/// Per-run state of the mining capability.
#[derive(Default)]
pub struct MiningState {
    updates: Option<watch::Sender<MinerReport>>,
}

impl MiningState {
    /// State that publishes each report on `updates`.
    pub fn new(updates: watch::Sender<MinerReport>) -> Self {
        MiningState {
            updates: Some(updates),
        }
    }
}

fn figure(value: f64) -> f64 {
    if value.is_finite() && value >= 0.0 {
        value
    } else {
        0.0
    }
}

impl Host for MiningState {
    fn report(&mut self, stats: MiningStats) -> wasmtime::Result<()> {
        let report = MinerReport {
            hashrate_hps: figure(stats.hashrate),
            hashes: stats.hashes,
            accepted: stats.accepted,
            rejected: stats.rejected,
            connected: stats.connected,
            difficulty: figure(stats.difficulty),
        };
        tracing::trace!(?report, "mining report");
        if let Some(updates) = &self.updates {
            updates.send_replace(report);
        }
        Ok(())
    }
}

struct HasMining;

impl HasData for HasMining {
    type Data<'a> = &'a mut MiningState;
}

/// Links `pictor:plugin/mining` into `linker` (the miner linker only),
/// reaching the run's state through `getter`.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> &mut MiningState,
) -> wasmtime::Result<()> {
    mining::add_to_linker::<T, HasMining>(linker, getter)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_are_published_with_bad_figures_zeroed() -> wasmtime::Result<()> {
        let (tx, rx) = watch::channel(MinerReport::default());
        let mut state = MiningState::new(tx);
        let stats = MiningStats {
            hashrate: f64::NAN,
            hashes: 7,
            accepted: 2,
            rejected: 1,
            connected: true,
            difficulty: -1.0,
        };
        state.report(stats)?;
        let expected = MinerReport {
            hashrate_hps: 0.0,
            hashes: 7,
            accepted: 2,
            rejected: 1,
            connected: true,
            difficulty: 0.0,
        };
        assert_eq!(*rx.borrow(), expected);
        // Without a listener, reports are dropped quietly.
        MiningState::default().report(MiningStats {
            hashrate: 1.0,
            hashes: 1,
            accepted: 0,
            rejected: 0,
            connected: false,
            difficulty: 1.0,
        })?;
        Ok(())
    }
}
