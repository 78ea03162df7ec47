//! The proof-of-work hash, behind a small trait so the Stratum code never
//! names one. A coin's algorithm says how to hash an 80-byte block header
//! on the CPU (to check every share before it is sent), what difficulty 1
//! means on its pools, and how to search nonces on the GPU. Adding a coin
//! with another hash (kHeavyHash, scrypt, …) is one more [`Algorithm`]
//! impl and one more line in [`by_name`]; the host's config maps the coin to
//! the algorithm's name.

use std::time::Duration;

use pictor_sdk::gpu::GpuError;

use crate::target::Target;

/// Length of the block headers Stratum v1 jobs build (the nonce is the
/// little-endian `u32` in the last 4 bytes).
pub const HEADER_LEN: usize = 80;

/// A block header; its nonce is `header[76..80]`, little-endian.
pub type Header = [u8; HEADER_LEN];

/// Nonce candidates one search returns at most; more are dropped (the
/// share rate is bounded anyway).
pub const MAX_FOUND: usize = 63;

/// A coin's proof-of-work hash.
pub trait Algorithm {
    /// Its name, as the host's config gives it (`sha256d`).
    fn name(&self) -> &'static str;

    /// The target of share difficulty 1 on this algorithm's pools.
    fn diff1(&self) -> Target;

    /// The proof-of-work hash of a complete header, on the CPU: the
    /// reference every GPU candidate is checked against before it is sent.
    fn hash(&self, header: &Header) -> [u8; 32];

    /// A nonce searcher on the job's GPU.
    fn gpu_search(&self) -> Result<Box<dyn NonceSearch>, GpuError>;
}

/// Searches a range of nonces of a header for hashes that meet a target.
pub trait NonceSearch {
    /// Hashes `header` with each nonce in `first..first + count` (wrapping
    /// at 2^32 is the caller's business: `first + count` must not exceed
    /// 2^32) and returns those whose hash meets `target` (at most
    /// [`MAX_FOUND`]).
    fn search(
        &mut self,
        header: &Header,
        target: &Target,
        first: u32,
        count: u32,
    ) -> Result<Found, GpuError>;
}

/// What one search found.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Found {
    /// Nonces whose hash met the target (unordered, unverified).
    pub nonces: Vec<u32>,
    /// Time the device took (GPU submission time), for sizing batches.
    pub elapsed: Duration,
}

/// The algorithms this plugin has, by name.
pub const ALGORITHMS: &[&str] = &["sha256d"];

/// The algorithm called `name`, if this plugin has it.
pub fn by_name(name: &str) -> Option<Box<dyn Algorithm>> {
    match name {
        "sha256d" => Some(Box::new(crate::sha256d::Sha256d)),
        _ => None,
    }
}

/// A nonce search on the CPU with an algorithm's reference hash: the
/// oracle the GPU search is tested against, and the searcher of native
/// tests (where there is no GPU).
pub struct CpuSearch<'a>(pub &'a dyn Algorithm);

impl NonceSearch for CpuSearch<'_> {
    fn search(
        &mut self,
        header: &Header,
        target: &Target,
        first: u32,
        count: u32,
    ) -> Result<Found, GpuError> {
        let started = std::time::Instant::now();
        let mut header = *header;
        let mut nonces = Vec::new();
        for offset in 0..count {
            let nonce = first.wrapping_add(offset);
            header[76..].copy_from_slice(&nonce.to_le_bytes());
            if target.is_met_by(&self.0.hash(&header)) && nonces.len() < MAX_FOUND {
                nonces.push(nonce);
            }
        }
        Ok(Found {
            nonces,
            elapsed: started.elapsed(),
        })
    }
}

/// `header` with `nonce` in place.
pub fn with_nonce(header: &Header, nonce: u32) -> Header {
    let mut h = *header;
    h[76..].copy_from_slice(&nonce.to_le_bytes());
    h
}
