//! Mining while idle: whether this worker may mine, a running miner that
//! the worker can preempt at once when a job arrives, and the figures the
//! owner sees ([`MiningSummary`]).
//!
//! The miner is a plugin of the `miner` world run like a job (same sandbox,
//! same GPU capability, its own quota) plus one TCP grant: the pool's
//! addresses, which the host resolves itself each time the miner starts
//! (the plugin gets no DNS). Preemption is hard: the miner's store is
//! interrupted at the next epoch tick (or dropped at once if it waits in a
//! host call), and the GPU work it left in flight is drained before the job
//! gets the GPU. The time from the stop request to "GPU free" is measured
//! and journaled. The plugin reconnects to the pool by itself when the
//! connection drops; a miner that *ends* (the pool refused the worker, no
//! GPU) is started again by the worker after a growing delay.

//!
//! - [`eligibility`]: whether this worker may mine and the plan to do so;
//! - [`download`]: the miner component fetched from the coordinator;
//! - [`miner`]: the running miner, started and preempted by the worker;
//! - [`board`]: the figures the owner sees ([`MiningSummary`]).

pub mod board;
pub mod download;
pub mod eligibility;
pub mod miner;

pub use board::{MiningBoard, MiningSummary, format_hashrate};
pub use eligibility::{Eligibility, MinerSource, MiningOff, eligibility, plan, requirements};
pub use miner::{
    DRAIN_TIMEOUT, LOG_INTERVAL, Miner, MiningPlan, RESOLVE_TIMEOUT, Stopped, resolve,
};
