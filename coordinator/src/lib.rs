//! `pictor-coordinator`: the reference coordinator of the Pictor network.
//!
//! It speaks protocol version 1 (`pictor_protocol::api`) to `pictor-host`
//! workers and to job creators: workers register, long-poll for leases,
//! heartbeat, report progress, upload outputs and complete with a signed
//! proof; creators upload plugins and inputs as blobs, submit jobs and
//! fetch results. One data folder holds everything (see [`datadir`]).
//!
//! Modules, one responsibility each:
//!
//! - [`config`] — settings and defaults; [`datadir`] — the data folder,
//!   tokens, the generated `worker.json`;
//! - [`server`] — start, background lease expiry, graceful shutdown;
//! - [`api`] — routes, handlers, version header, JSON errors ([`error`]);
//! - [`state`] — what every handler shares ([`state::AppState`]);
//! - [`admin`] — issuing, revoking and listing workers, for the API and
//!   the portal alike;
//! - [`auth`] — bearer tokens (the folder's two, and each issued worker's
//!   credential) and who may act for which worker;
//! - [`issuing`] — checking a new worker's settings, its id and credential,
//!   its `worker.json`; [`roster`] — the operator's view of every worker;
//! - [`scheduler`] — the rules (leasing, expiry, replication, skipping);
//! - [`store`] — the [`store::Store`] trait and its SQLite backend;
//! - [`blobs`] — the content-addressed blob folder; [`gc`] — deleting the
//!   blobs nothing references; [`faults`] — fault injection for tests;
//! - [`limits`] — every bound on callers (timeouts, long polls, upload
//!   quotas, transfer pace);
//! - [`portal`] — the operator's web pages (workers, jobs, previews, a
//!   form that issues workers);
//! - [`client`] — a small HTTP client of the creator API (used by the CLI).
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod admin;
pub mod api;
pub mod auth;
pub mod blobs;
pub mod client;
pub mod config;
pub mod datadir;
pub mod error;
pub mod faults;
pub mod gc;
pub mod issuing;
pub mod limits;
pub mod portal;
pub mod roster;
pub mod scheduler;
pub mod server;
pub mod state;
pub mod store;

pub use config::Config;
pub use error::ApiError;
pub use server::{Running, start};
