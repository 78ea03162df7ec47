//! SHA-256d (Bitcoin, Bitcoin Cash): the CPU reference with the `sha2`
//! crate, and the GPU nonce search in WGSL (`sha256.wgsl` + `search.wgsl`).

use std::time::Duration;

use pictor_sdk::gpu::{self, BindGroup, Buffer, GpuError, Kernel, Usage};
use sha2::digest::generic_array::GenericArray;
use sha2::{Digest, Sha256};

use crate::algorithm::{Algorithm, Found, Header, MAX_FOUND, NonceSearch};
use crate::target::Target;

/// SHA-256's round constants.
const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The WGSL `compress` function, its 64 rounds unrolled (see sha256.wgsl).
fn compress_wgsl() -> String {
    let mut s = String::from(
        "fn compress(state: array<u32, 8>, block: array<u32, 16>) -> array<u32, 8> {\n",
    );
    for i in 0..16 {
        s += &format!("    var w{i} = block[{i}];\n");
    }
    s += "    var a = state[0]; var b = state[1]; var c = state[2]; var d = state[3];\n";
    s += "    var e = state[4]; var f = state[5]; var g = state[6]; var h = state[7];\n";
    s += "    var t1: u32; var t2: u32;\n";
    for (i, k) in K.iter().enumerate() {
        let j = i % 16;
        if i >= 16 {
            // W[i] = σ1(W[i-2]) + W[i-7] + σ0(W[i-15]) + W[i-16], in a ring of 16.
            s += &format!(
                "    w{j} = w{j} + small0(w{}) + w{} + small1(w{});\n",
                (i + 1) % 16,
                (i + 9) % 16,
                (i + 14) % 16
            );
        }
        s += &format!(
            "    t1 = h + big1(e) + ch(e, f, g) + 0x{k:08x}u + w{j}; t2 = big0(a) + maj(a, b, c);\n"
        );
        s += "    h = g; g = f; f = e; e = d + t1; d = c; c = b; b = a; a = t1 + t2;\n";
    }
    s += "    return array<u32, 8>(state[0] + a, state[1] + b, state[2] + c, state[3] + d, state[4] + e, state[5] + f, state[6] + g, state[7] + h);\n}\n";
    s
}

/// WGSL of the nonce search: the shared SHA-256d code and the entry point.
pub fn search_wgsl() -> String {
    [
        include_str!("sha256.wgsl"),
        &compress_wgsl(),
        include_str!("search.wgsl"),
    ]
    .concat()
}

/// WGSL of the known-answer hashing (every digest of a nonce range).
pub fn hash_wgsl() -> String {
    [
        include_str!("sha256.wgsl"),
        &compress_wgsl(),
        include_str!("hash.wgsl"),
    ]
    .concat()
}

/// Invocations per workgroup in the WGSL (`@workgroup_size(64)`).
const WORKGROUP: u32 = 64;
/// Workgroups per dispatch dimension every WebGPU device allows.
const MAX_WORKGROUPS: u32 = 65_535;

/// SHA-256's initial state.
const IV: [u32; 8] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
];

/// SHA-256d: SHA-256 of SHA-256.
pub struct Sha256d;

impl Algorithm for Sha256d {
    fn name(&self) -> &'static str {
        "sha256d"
    }

    fn diff1(&self) -> Target {
        // nbits 0x1d00ffff: 0x00000000ffff0000…0000 ("bdiff", as pools use).
        let mut bytes = [0u8; 32];
        bytes[4] = 0xff;
        bytes[5] = 0xff;
        Target::from_be_bytes(bytes)
    }

    fn hash(&self, header: &Header) -> [u8; 32] {
        sha256d(header)
    }

    fn gpu_search(&self) -> Result<Box<dyn NonceSearch>, GpuError> {
        Ok(Box::new(GpuSha256d::new()?))
    }
}

/// SHA-256 of SHA-256 of `data`.
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    Sha256::digest(Sha256::digest(data)).into()
}

/// The SHA-256 state after the header's first 64 bytes.
pub fn midstate(header: &Header) -> [u32; 8] {
    let mut state = IV;
    sha2::compress256(
        &mut state,
        std::slice::from_ref(GenericArray::from_slice(&header[..64])),
    );
    state
}

/// Header bytes 64..76 as the big-endian words SHA-256 reads.
fn tail(header: &Header) -> [u32; 3] {
    std::array::from_fn(|i| {
        u32::from_be_bytes([
            header[64 + 4 * i],
            header[65 + 4 * i],
            header[66 + 4 * i],
            header[67 + 4 * i],
        ])
    })
}

/// Nonces per invocation and workgroups so that `count` nonces fit one
/// dispatch of at most [`MAX_WORKGROUPS`] workgroups.
fn geometry(count: u32) -> (u32, u32) {
    let per_thread = count.div_ceil(MAX_WORKGROUPS * WORKGROUP).max(1);
    let workgroups = count.div_ceil(per_thread).div_ceil(WORKGROUP).max(1);
    (per_thread, workgroups)
}

/// Words of the WGSL `Work` struct.
pub const WORK_WORDS: usize = 24;

/// The WGSL `Work` struct for `header`'s nonces `first..first + count`
/// (`midstate` is [`midstate`] of the header), and the workgroups of its
/// dispatch.
pub fn work(
    midstate: &[u32; 8],
    header: &Header,
    target: &Target,
    first: u32,
    count: u32,
) -> ([u32; WORK_WORDS], u32) {
    let (per_thread, workgroups) = geometry(count);
    let mut words = [0u32; WORK_WORDS];
    words[..8].copy_from_slice(midstate);
    words[8..11].copy_from_slice(&tail(header));
    words[11] = first;
    words[12..20].copy_from_slice(&target.words());
    words[20] = per_thread;
    words[21] = count;
    (words, workgroups)
}

/// The GPU nonce search: one dispatch per [`NonceSearch::search`] call,
/// then a read of the (small) result buffer.
pub struct GpuSha256d {
    kernel: Kernel,
    work: Buffer<u32>,
    found: Buffer<u32>,
    group: BindGroup,
    /// The last header's first 64 bytes and their midstate.
    cached: Option<([u8; 64], [u32; 8])>,
    /// The known-answer kernel, made on first use.
    hashing: Option<Kernel>,
}

impl GpuSha256d {
    /// Compiles the search kernel and allocates its buffers.
    pub fn new() -> Result<Self, GpuError> {
        let kernel = Kernel::new(&search_wgsl(), "search")?;
        let work = Buffer::zeroed(WORK_WORDS, Usage::STORAGE)?;
        let found = Buffer::zeroed(1 + MAX_FOUND, Usage::STORAGE)?;
        let group = kernel.bind(0, &[work.binding(), found.binding()])?;
        Ok(GpuSha256d {
            kernel,
            work,
            found,
            group,
            cached: None,
            hashing: None,
        })
    }

    /// The `Work` struct for `header`'s nonces `first..first + count`.
    fn work_words(
        &mut self,
        header: &Header,
        target: &Target,
        first: u32,
        count: u32,
    ) -> ([u32; WORK_WORDS], u32) {
        let prefix: [u8; 64] = std::array::from_fn(|i| header[i]);
        let state = match &self.cached {
            Some((p, state)) if *p == prefix => *state,
            _ => {
                let state = midstate(header);
                self.cached = Some((prefix, state));
                state
            }
        };
        work(&state, header, target, first, count)
    }

    /// The SHA-256d digests of `header` with nonces `first..first + count`,
    /// computed by the GPU (the self-test compares them with `sha2`).
    pub fn digests(
        &mut self,
        header: &Header,
        first: u32,
        count: u32,
    ) -> Result<Vec<[u8; 32]>, GpuError> {
        let (words, workgroups) = self.work_words(header, &Target::MAX, first, count);
        if self.hashing.is_none() {
            self.hashing = Some(Kernel::new(&hash_wgsl(), "hash")?);
        }
        let Some(kernel) = &self.hashing else {
            return Ok(Vec::new());
        };
        let out = Buffer::<u32>::zeroed(8 * count as usize, Usage::STORAGE)?;
        let group = kernel.bind(0, &[self.work.binding(), out.binding()])?;
        self.work.write(0, &words)?;
        gpu::submit(&[kernel.dispatch(&[&group], [workgroups, 1, 1])])?;
        let words = out.read()?;
        Ok(words
            .chunks_exact(8)
            .map(|d| {
                let mut digest = [0u8; 32];
                for (i, w) in d.iter().enumerate() {
                    digest[4 * i..4 * i + 4].copy_from_slice(&w.to_be_bytes());
                }
                digest
            })
            .collect())
    }
}

impl NonceSearch for GpuSha256d {
    fn search(
        &mut self,
        header: &Header,
        target: &Target,
        first: u32,
        count: u32,
    ) -> Result<Found, GpuError> {
        if count == 0 {
            return Ok(Found::default());
        }
        let (words, workgroups) = self.work_words(header, target, first, count);
        self.work.write(0, &words)?;
        self.found.write(0, &[0])?;
        let elapsed = gpu::submit(&[self.kernel.dispatch(&[&self.group], [workgroups, 1, 1])])?;
        let found = self.found.read()?;
        let n = found.first().map_or(0, |&n| n as usize).min(MAX_FOUND);
        Ok(Found {
            nonces: found.get(1..=n).map(<[u32]>::to_vec).unwrap_or_default(),
            elapsed,
        })
    }
}

/// How long a search of `count` nonces took, as nanoseconds per nonce.
pub fn ns_per_nonce(elapsed: Duration, count: u32) -> f64 {
    elapsed.as_nanos() as f64 / f64::from(count.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    /// The Bitcoin genesis block header and its hash (as explorers print it).
    pub const GENESIS: &str = "0100000000000000000000000000000000000000000000000000000000000000000000003ba3edfd7a7b12b27ac72c3e67768f617fc81bc3888a51323a9fb8aa4b1e5e4a29ab5f49ffff001d1dac2b7c";
    const GENESIS_HASH: &str = "000000000019d6689c085ae165831e934ff763ae46a2a6c172b3f1b60a8ce26f";
    /// Block 125552, the example of the Bitcoin wiki's "Block hashing algorithm".
    pub const BLOCK_125552: &str = "0100000081cd02ab7e569e8bcd9317e2fe99f2de44d49ab2b8851ba4a308000000000000e320b6c2fffc8d750423db8b1eb942ae710e951ed797f7affc8892b0f1fc122bc7f5d74df2b9441a42a14695";
    const BLOCK_125552_HASH: &str =
        "00000000000000001e8d6829a8a21adc5d38d0a473b144b6765798e61f98bd1d";

    fn explorer_order(hash: [u8; 32]) -> String {
        let mut h = hash;
        h.reverse();
        hex::encode(&h)
    }

    #[test]
    fn known_block_hashes_and_their_targets() {
        for (header, hash, nbits) in [
            (GENESIS, GENESIS_HASH, 0x1d00_ffff),
            (BLOCK_125552, BLOCK_125552_HASH, 0x1a44_b9f2),
        ] {
            let header: Header = hex::decode_array(header).unwrap();
            let digest = Sha256d.hash(&header);
            assert_eq!(explorer_order(digest), hash);
            assert_eq!(
                u32::from_le_bytes([header[72], header[73], header[74], header[75]]),
                nbits
            );
            let target = Target::from_compact(nbits).unwrap();
            assert!(
                target.is_met_by(&digest),
                "a mined block meets its own target"
            );
            let next = crate::algorithm::with_nonce(
                &header,
                u32::from_le_bytes([header[76], header[77], header[78], header[79]]) + 1,
            );
            assert!(
                !target.is_met_by(&Sha256d.hash(&next)),
                "the next nonce does not"
            );
        }
    }

    #[test]
    fn midstate_then_tail_gives_the_same_digest() {
        let header: Header = hex::decode_array(BLOCK_125552).unwrap();
        let mut state = midstate(&header);
        let mut block = [0u8; 64];
        block[..16].copy_from_slice(&header[64..]);
        block[16] = 0x80;
        block[62..].copy_from_slice(&640u16.to_be_bytes());
        sha2::compress256(
            &mut state,
            std::slice::from_ref(GenericArray::from_slice(&block)),
        );
        let first: Vec<u8> = state.iter().flat_map(|w| w.to_be_bytes()).collect();
        assert_eq!(Sha256::digest(&first).as_slice(), &Sha256d.hash(&header));
        assert_eq!(
            tail(&header)[2],
            u32::from_be_bytes([0xf2, 0xb9, 0x44, 0x1a])
        );
    }

    #[test]
    fn dispatch_geometry_covers_every_nonce_within_limits() {
        for count in [
            1,
            63,
            64,
            65,
            4096,
            65_535 * 64,
            65_535 * 64 + 1,
            100_000_000,
            u32::MAX,
        ] {
            let (per_thread, workgroups) = geometry(count);
            assert!(workgroups <= MAX_WORKGROUPS, "{count}");
            assert!(
                u64::from(per_thread) * u64::from(workgroups) * u64::from(WORKGROUP)
                    >= u64::from(count),
                "{count}"
            );
        }
        assert_eq!(geometry(4096), (1, 64));
    }
}
