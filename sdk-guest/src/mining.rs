//! For miners (world `pictor:plugin/miner`): the figures the owner and
//! the coordinator see. Only a plugin loaded as a miner may call
//! [`report`]; a job that imports it is refused at load.

/// A miner's figures, as `pictor:plugin/mining` carries them.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct MiningStats {
    /// Hashes per second, averaged over the last few seconds.
    pub hashrate: f64,
    /// Hashes computed since the miner started.
    pub hashes: u64,
    /// Shares the pool accepted.
    pub accepted: u64,
    /// Shares the pool rejected.
    pub rejected: u64,
    /// Whether the pool connection is up.
    pub connected: bool,
    /// The pool's current share difficulty.
    pub difficulty: f64,
}

/// Sends `stats` to the host (cheap; the host keeps the latest). Natively
/// (`cargo test`) it does nothing.
pub fn report(stats: &MiningStats) {
    #[cfg(target_arch = "wasm32")]
    {
        use crate::__private::miner_bindings::pictor::plugin::mining;
        mining::report(mining::MiningStats {
            hashrate: stats.hashrate,
            hashes: stats.hashes,
            accepted: stats.accepted,
            rejected: stats.rejected,
            connected: stats.connected,
            difficulty: stats.difficulty,
        });
    }
    #[cfg(not(target_arch = "wasm32"))]
    let _ = stats;
}
