//! Integration tests of `pictor-coordinator`: a real server on loopback, a
//! real SQLite file in a temp folder, real ed25519 proofs. One module per
//! topic.
#![allow(clippy::unwrap_used, missing_docs)]

mod blobs;
mod bounds;
mod cli;
mod containment;
mod issued;
mod jobs;
mod leasing;
mod portal;
mod protocol;
mod restart;
mod results;
mod support;
mod workers;
