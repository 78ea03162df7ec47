//! # pictor-host
//!
//! The worker node of the Pictor GPU compute network. Each job runs as a
//! sandboxed WebAssembly component (a *plugin*) in [`pictor_runtime`],
//! which gives it only a read-only `/input`, a writable `/output` and the
//! host capabilities of the `pictor:plugin` WIT package, each bounded by
//! the job's limits. This crate is everything around that sandbox.
//!
//! Module map (see `docs/architecture.md`):
//! - [`node`]: the whole worker composed, started and stopped as one;
//! - [`config`]: `worker.json`, parsed and validated;
//! - [`activity`]: what the worker is doing, for the owner and heartbeats;
//! - [`blobs`]: blob downloads into a verified, content-addressed cache;
//! - [`coordinator`]: jobs leased from a coordinator, run through the spool,
//!   reported exactly once (client, lease ledger, heartbeat, reporter);
//! - [`worker`], [`spool`], [`journal`]: the worker loop over a local
//!   spool, with a crash-safe journal;
//! - [`mining`]: mining while idle (eligibility, the miner's download, the
//!   running miner, the owner's figures);
//! - [`proof`]: the worker key and signed result proofs;
//! - [`telemetry`]: NVML readings of NVIDIA GPUs;
//! - [`status`]: the owner's local status page, `/status.json`,
//!   Prometheus `/metrics` and the terminal status line;
//! - [`digest`]: sha256 identities of plugins, inputs and outputs.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod activity;
pub mod blobs;
pub mod config;
pub mod coordinator;
pub use pictor_protocol::digest;
pub mod journal;
pub mod mining;
pub mod node;
pub mod proof;
pub mod scaffold;
pub mod spool;
pub mod status;
pub mod telemetry;
pub mod worker;
