//! From a Stratum job to block headers: the coinbase transaction
//! (`coinb1 ‖ extranonce1 ‖ extranonce2 ‖ coinb2`), its merkle root with
//! the job's branch, and the 80-byte header.
//!
//! Byte orders, as Stratum v1 sends them (the part every miner gets wrong
//! once):
//! - `version`, `nbits`, `ntime` (and the submitted `nonce`) are 32-bit
//!   numbers in big-endian hex; the header holds them little-endian;
//! - `prevhash` is the header's 32 bytes with each 4-byte word
//!   byte-reversed;
//! - coinbase parts and merkle branch hashes are raw bytes, used as they
//!   are; the merkle root goes into the header as SHA-256d produces it.

use serde_json::Value;

use crate::algorithm::{HEADER_LEN, Header};
use crate::hex;
use crate::sha256d::sha256d;

/// Merkle branch hashes a job may have (2^32 transactions need 32).
pub const MAX_BRANCHES: usize = 32;
/// Bytes a coinbase part may have.
pub const MAX_COINBASE_PART: usize = 64 * 1024;

/// A job from `mining.notify`, decoded.
#[derive(Debug, Clone, PartialEq)]
pub struct JobTemplate {
    /// The pool's job id, echoed in `mining.submit`.
    pub id: String,
    /// Previous block hash, in header byte order.
    pub prevhash: [u8; 32],
    /// Coinbase transaction before the extranonces.
    pub coinb1: Vec<u8>,
    /// Coinbase transaction after the extranonces.
    pub coinb2: Vec<u8>,
    /// Merkle branch from the coinbase to the root.
    pub branches: Vec<[u8; 32]>,
    /// Block version.
    pub version: u32,
    /// Compact block target.
    pub nbits: u32,
    /// Block time.
    pub ntime: u32,
    /// Whether earlier jobs are void.
    pub clean: bool,
}

impl JobTemplate {
    /// Decodes `mining.notify` params: `[job_id, prevhash, coinb1, coinb2,
    /// merkle_branch, version, nbits, ntime, clean_jobs]`.
    pub fn from_notify(params: &Value) -> Result<Self, String> {
        let p = params
            .as_array()
            .filter(|p| p.len() >= 9)
            .ok_or("mining.notify needs 9 params")?;
        let text = |i: usize, name: &str| {
            p[i].as_str()
                .ok_or_else(|| format!("mining.notify `{name}` is not a string"))
        };
        let id = text(0, "job_id")?.to_string();
        if id.is_empty() || id.len() > 128 {
            return Err("mining.notify `job_id` must be 1-128 characters".into());
        }
        let part = |i: usize, name: &str| -> Result<Vec<u8>, String> {
            let t = text(i, name)?;
            if t.len() > 2 * MAX_COINBASE_PART {
                return Err(format!(
                    "mining.notify `{name}` is over {MAX_COINBASE_PART} bytes"
                ));
            }
            hex::decode(t).map_err(|e| format!("mining.notify `{name}`: {e}"))
        };
        let branches = p[4]
            .as_array()
            .ok_or("mining.notify `merkle_branch` is not a list")?;
        if branches.len() > MAX_BRANCHES {
            return Err(format!(
                "mining.notify has {} merkle branches, at most {MAX_BRANCHES} make sense",
                branches.len()
            ));
        }
        let branches = branches
            .iter()
            .map(|b| {
                b.as_str()
                    .ok_or("a merkle branch is not a string".to_string())
                    .and_then(hex::decode_array::<32>)
            })
            .collect::<Result<Vec<_>, _>>()
            .map_err(|e| format!("mining.notify `merkle_branch`: {e}"))?;
        let number = |i: usize, name: &str| {
            hex::decode_u32(text(i, name)?).map_err(|e| format!("mining.notify `{name}`: {e}"))
        };
        Ok(JobTemplate {
            id,
            prevhash: stratum_prevhash(text(1, "prevhash")?)
                .map_err(|e| format!("mining.notify `prevhash`: {e}"))?,
            coinb1: part(2, "coinb1")?,
            coinb2: part(3, "coinb2")?,
            branches,
            version: number(5, "version")?,
            nbits: number(6, "nbits")?,
            ntime: number(7, "ntime")?,
            clean: p[8].as_bool().unwrap_or(false),
        })
    }

    /// The coinbase transaction with these extranonces.
    pub fn coinbase(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Vec<u8> {
        [&self.coinb1[..], extranonce1, extranonce2, &self.coinb2[..]].concat()
    }

    /// The merkle root of a block whose coinbase is `coinbase`.
    pub fn merkle_root(&self, coinbase: &[u8]) -> [u8; 32] {
        self.branches
            .iter()
            .fold(sha256d(coinbase), |root, branch| {
                let mut pair = [0u8; 64];
                pair[..32].copy_from_slice(&root);
                pair[32..].copy_from_slice(branch);
                sha256d(&pair)
            })
    }

    /// The block header for `merkle_root`, with nonce 0.
    pub fn header(&self, merkle_root: &[u8; 32]) -> Header {
        let mut h = [0u8; HEADER_LEN];
        h[..4].copy_from_slice(&self.version.to_le_bytes());
        h[4..36].copy_from_slice(&self.prevhash);
        h[36..68].copy_from_slice(merkle_root);
        h[68..72].copy_from_slice(&self.ntime.to_le_bytes());
        h[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        h
    }

    /// The header for the coinbase with `extranonce1` and `extranonce2`.
    pub fn header_for(&self, extranonce1: &[u8], extranonce2: &[u8]) -> Header {
        self.header(&self.merkle_root(&self.coinbase(extranonce1, extranonce2)))
    }
}

/// Stratum's `prevhash` (hex, each 4-byte word byte-reversed) in header order.
pub fn stratum_prevhash(text: &str) -> Result<[u8; 32], String> {
    let mut bytes: [u8; 32] = hex::decode_array(text)?;
    for word in bytes.chunks_exact_mut(4) {
        word.reverse();
    }
    Ok(bytes)
}

/// The `n`-th extranonce2 of `size` bytes (little-endian counter, wrapping).
pub fn extranonce2(n: u64, size: usize) -> Vec<u8> {
    let mut bytes = n.to_le_bytes().to_vec();
    bytes.resize(size, 0);
    bytes
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::algorithm::{Algorithm, with_nonce};
    use crate::sha256d::Sha256d;
    use crate::target::{Target, hash_difficulty};

    // Known answers from a real share (Bitcoin mainnet, block height 791433,
    // June 2023, pool `/slush/`): the mining.notify fields, the coinbase
    // with its extranonces already in place, the merkle branch, the merkle
    // root and the share's nonce, whose hash has difficulty 683 (as
    // published with ESP-Miner's stratum tests).
    const PREVHASH: &str = "0c859545a3498373a57452fac22eb7113df2a465000543520000000000000000";
    const COINBASE: &str = "01000000010000000000000000000000000000000000000000000000000000000000000000ffffffff4b0389130cfabe6d6d5cbab26a2599e92916edec5657a94a0708ddb970f5c45b5d12905085617eff8e010000000000000031650707758de07b010000000000001cfd7038212f736c7573682f000000000379ad0c2a000000001976a9147c154ed1dc59609e3d26abb2df2ea3d587cd8c4188ac00000000000000002c6a4c2952534b424c4f434b3ae725d3994b811572c1f345deb98b56b465ef8e153ecbbd27fa37bf1b005161380000000000000000266a24aa21a9ed63b06a7946b190a3fda1d76165b25c9b883bcc6621b040773050ee2a1bb18f1800000000";
    const BRANCHES: [&str; 13] = [
        "2b77d9e413e8121cd7a17ff46029591051d0922bd90b2b2a38811af1cb57a2b2",
        "5c8874cef00f3a233939516950e160949ef327891c9090467cead995441d22c5",
        "2d91ff8e19ac5fa69a40081f26c5852d366d608b04d2efe0d5b65d111d0d8074",
        "0ae96f609ad2264112a0b2dfb65624bedbcea3b036a59c0173394bba3a74e887",
        "e62172e63973d69574a82828aeb5711fc5ff97946db10fc7ec32830b24df7bde",
        "adb49456453aab49549a9eb46bb26787fb538e0a5f656992275194c04651ec97",
        "a7bc56d04d2672a8683892d6c8d376c73d250a4871fdf6f57019bcc737d6d2c2",
        "d94eceb8182b4f418cd071e93ec2a8993a0898d4c93bc33d9302f60dbbd0ed10",
        "5ad7788b8c66f8f50d332b88a80077ce10e54281ca472b4ed9bbbbcb6cf99083",
        "9f9d784b33df1b3ed3edb4211afc0dc1909af9758c6f8267e469f5148ed04809",
        "48fd17affa76b23e6fb2257df30374da839d6cb264656a82e34b350722b05123",
        "c4f5ab01913fc186d550c1a28f3f3e9ffaca2016b961a6a751f8cca0089df924",
        "cff737e1d00176dd6bbfa73071adbb370f227cfb5fba186562e4060fcec877e1",
    ];
    const MERKLE_ROOT: &str = "5bdc1968499c3393873edf8e07a1c3a50a97fc3a9d1a376bbf77087dd63778eb";

    /// The job as the pool sent it; the whole coinbase stands in coinb1
    /// (empty extranonces), which builds the same transaction.
    fn notify() -> Value {
        serde_json::json!([
            "1", PREVHASH, COINBASE, "", BRANCHES, "20000004", "1705ae3a", "647025b5", true
        ])
    }

    #[test]
    fn a_real_share_rebuilds_from_its_notify() {
        let job = JobTemplate::from_notify(&notify()).unwrap();
        let coinbase = job.coinbase(&[], &[]);
        assert_eq!(hex::encode(&job.merkle_root(&coinbase)), MERKLE_ROOT);
        let header = with_nonce(&job.header_for(&[], &[]), 0x0a02_9ed1);
        let hash = Sha256d.hash(&header);
        let difficulty = hash_difficulty(&Sha256d.diff1(), &hash);
        assert_eq!(difficulty as u64, 683, "difficulty {difficulty}");
        assert!(
            Target::from_difficulty(&Sha256d.diff1(), 683.0)
                .unwrap()
                .is_met_by(&hash)
        );
        assert!(
            !Target::from_difficulty(&Sha256d.diff1(), 684.0)
                .unwrap()
                .is_met_by(&hash)
        );
        // The header fields land where Bitcoin puts them.
        assert_eq!(&header[..4], &[0x04, 0, 0, 0x20]);
        assert_eq!(
            &header[4..8],
            &[0x45, 0x95, 0x85, 0x0c],
            "prevhash word byte-reversed"
        );
        assert_eq!(
            &header[68..76],
            &[0xb5, 0x25, 0x70, 0x64, 0x3a, 0xae, 0x05, 0x17]
        );
        assert_eq!(&header[76..], &[0xd1, 0x9e, 0x02, 0x0a]);
    }

    #[test]
    fn prevhash_words_are_byte_reversed() {
        let bytes = stratum_prevhash(PREVHASH).unwrap();
        assert_eq!(hex::encode(&bytes[..8]), "4595850c738349a3");
        // In explorer order (reversed) the previous block's hash starts with zeros.
        assert!(bytes.iter().rev().take(8).all(|&b| b == 0));
    }

    #[test]
    fn extranonces_go_between_the_coinbase_parts() {
        let mut params = notify();
        params[2] = Value::from(&COINBASE[..20]);
        params[3] = Value::from(&COINBASE[28..]);
        let job = JobTemplate::from_notify(&params).unwrap();
        let coinbase = job.coinbase(
            &hex::decode(&COINBASE[20..24]).unwrap(),
            &hex::decode(&COINBASE[24..28]).unwrap(),
        );
        assert_eq!(hex::encode(&coinbase), COINBASE);
        assert_eq!(extranonce2(1, 4), vec![1, 0, 0, 0]);
        assert_eq!(
            extranonce2(0x1_0000_0002, 4),
            vec![2, 0, 0, 0],
            "wraps at its size"
        );
        assert_eq!(extranonce2(1, 10).len(), 10);
    }

    #[test]
    fn malformed_notifies_are_refused_with_the_field() {
        let cases: &[(usize, Value, &str)] = &[
            (1, Value::from("00"), "`prevhash`"),
            (2, Value::from("zz"), "`coinb1`"),
            (4, serde_json::json!(["00"]), "`merkle_branch`"),
            (
                4,
                serde_json::json!(vec!["00".repeat(32); 33]),
                "merkle branches",
            ),
            (5, Value::from(5), "`version` is not a string"),
            (6, Value::from("1705ae"), "`nbits`"),
            (0, Value::from(""), "`job_id`"),
        ];
        for (i, value, expected) in cases {
            let mut params = notify();
            params[*i] = value.clone();
            let err = JobTemplate::from_notify(&params).unwrap_err();
            assert!(err.contains(expected), "{err}");
        }
        assert!(JobTemplate::from_notify(&serde_json::json!([1, 2])).is_err());
    }
}
