//! The Pictor coordinator protocol, shared by `pictor-host` (the worker) and
//! `pictor-coordinator`: the JSON bodies of every endpoint ([`api`]), the
//! sha256 identity of blobs ([`digest`]) and signed result proofs
//! ([`proof`]), and the mining settings both sides check ([`mining`]). `docs/protocol.md` describes the exchange; `docs/openapi.yaml`
//! is its machine-readable form.
#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod api;
pub mod digest;
pub mod mining;
pub mod proof;

pub use digest::Sha256Digest;
