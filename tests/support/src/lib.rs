//! # pictor-test-support
//!
//! Helpers the workspace's tests and benchmarks share, kept out of the
//! product crates:
//! - [`hostile`]: property-test strategies for untrusted documents
//!   (`worker.json`, job specs, leases) and the readability rule every
//!   refusal must meet;
//! - [`farm`]: the real `pictor-coordinator` on loopback (built with the
//!   caller's profile; killable and restartable on its port) and stopping
//!   child processes;
//! - [`pool`]: a Stratum v1 pool on loopback that rebuilds and hashes every
//!   share it is sent, for the mining tests, benchmarks and the `testpool`
//!   example.

// A failed unwrap is how a helper reports a broken test step.
#![allow(clippy::unwrap_used)]

pub mod farm;
pub mod hostile;
pub mod pool;
