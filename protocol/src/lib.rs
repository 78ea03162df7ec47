//! The Pictor coordinator protocol, shared by `pictor-host` (the worker) and
//! `pictor-coordinator`: the JSON bodies of every endpoint ([`api`]), the
//! sha256 identity of blobs ([`digest`]) and signed result proofs
//! ([`proof`]), the names both sides parse once ([`ids`]: worker and job
//! ids, job kinds, wallets), the mining settings both sides check ([`mining`]), what a
//! client does with a reply's version header and error body ([`reply`]),
//! and how text from the other side is made safe to show ([`text`]). `docs/protocol.md` describes the exchange; `docs/openapi.yaml`
//! is its machine-readable form.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod digest;
pub mod ids;
pub mod mining;
pub mod proof;
pub mod reply;
pub mod text;

pub use digest::Sha256Digest;
