//! 256-bit proof-of-work targets: from a pool's share difficulty, from a
//! block's compact `nbits`, and the test of a hash against them.
//!
//! Byte order: a hash (the 32 bytes SHA-256d produces) is read as a
//! **little-endian** number, so its last byte is the most significant; a
//! hash "meets" a target when that number is ≤ the target. [`Target`] keeps
//! its number big-endian (most significant byte first), which is the order
//! block explorers print hashes in.

use std::fmt;

/// A target: a hash meets it when the hash, read as a little-endian number,
/// is at most this number.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct Target([u8; 32]);

/// 2^256 as an `f64`.
const TWO_POW_256: f64 = 1.157_920_892_373_162e77;

impl Target {
    /// The largest target: every hash meets it.
    pub const MAX: Target = Target([0xff; 32]);

    /// A target from its big-endian bytes (most significant first).
    pub const fn from_be_bytes(bytes: [u8; 32]) -> Self {
        Target(bytes)
    }

    /// Its big-endian bytes (most significant first).
    pub fn to_be_bytes(self) -> [u8; 32] {
        self.0
    }

    /// Its eight 32-bit words, most significant first (what the GPU
    /// kernels compare against).
    pub fn words(&self) -> [u32; 8] {
        std::array::from_fn(|i| {
            u32::from_be_bytes([
                self.0[4 * i],
                self.0[4 * i + 1],
                self.0[4 * i + 2],
                self.0[4 * i + 3],
            ])
        })
    }

    /// The target a block header's compact `nbits` encodes (mantissa ×
    /// 256^(exponent − 3)); `None` for a negative or overflowing encoding.
    pub fn from_compact(nbits: u32) -> Option<Self> {
        let exponent = (nbits >> 24) as usize;
        let mantissa = nbits & 0x007f_ffff;
        if nbits & 0x0080_0000 != 0 && mantissa != 0 {
            return None;
        }
        let mut bytes = [0u8; 32];
        let m = mantissa.to_be_bytes(); // m[0] is 0; m[1..4] are the mantissa bytes
        for (i, &b) in m[1..].iter().enumerate() {
            // Byte i of the 3-byte mantissa lands at position `exponent - 1 - i`
            // counted from the least significant end.
            let Some(from_low) = exponent.checked_sub(1 + i) else {
                continue;
            };
            if from_low >= 32 {
                if b != 0 {
                    return None;
                }
                continue;
            }
            bytes[31 - from_low] = b;
        }
        Some(Target(bytes))
    }

    /// `diff1 / difficulty`: the share target of a pool difficulty, for an
    /// algorithm whose difficulty-1 target is `diff1`. Fractional
    /// difficulties (below 1) give targets above `diff1`; `None` unless
    /// `difficulty` is finite and positive.
    pub fn from_difficulty(diff1: &Target, difficulty: f64) -> Option<Self> {
        if !(difficulty.is_finite() && difficulty > 0.0) {
            return None;
        }
        Some(Self::from_f64(diff1.to_f64() / difficulty))
    }

    /// The target nearest to `value` (saturating at 0 and [`Target::MAX`]).
    fn from_f64(value: f64) -> Self {
        if value.is_nan() || value < 1.0 {
            return Target([0; 32]);
        }
        if value >= TWO_POW_256 {
            return Target::MAX;
        }
        // value = mantissa × 2^shift, exactly (an f64 has 53 significant bits).
        let bits = value.to_bits();
        let exponent = ((bits >> 52) & 0x7ff) as i32;
        let mantissa = (bits & ((1u64 << 52) - 1)) | (1u64 << 52);
        let shift = exponent - 1075;
        // Little-endian 64-bit limbs of mantissa << shift (or >> -shift).
        let mut limbs = [0u64; 4];
        if shift >= 0 {
            let (word, bit) = ((shift / 64) as usize, (shift % 64) as u32);
            limbs[word] |= mantissa << bit;
            if bit > 0 && word + 1 < 4 {
                limbs[word + 1] |= mantissa >> (64 - bit);
            }
        } else {
            limbs[0] = mantissa >> (-shift).min(63);
        }
        let mut bytes = [0u8; 32];
        for (i, limb) in limbs.iter().enumerate() {
            bytes[32 - 8 * (i + 1)..32 - 8 * i].copy_from_slice(&limb.to_be_bytes());
        }
        Target(bytes)
    }

    /// The target as an `f64` (rounded).
    pub fn to_f64(&self) -> f64 {
        self.0
            .iter()
            .fold(0.0, |acc, &b| acc * 256.0 + f64::from(b))
    }

    /// Whether `hash` (SHA-256d output, a little-endian number) is ≤ this target.
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        hash.iter().rev().cmp(self.0.iter()) != std::cmp::Ordering::Greater
    }
}

/// The difficulty a hash achieves: `diff1 / hash` (what pools call the
/// share's difficulty; ∞ for a zero hash).
pub fn hash_difficulty(diff1: &Target, hash: &[u8; 32]) -> f64 {
    let value = hash
        .iter()
        .rev()
        .fold(0.0, |acc, &b| acc * 256.0 + f64::from(b));
    diff1.to_f64() / value
}

impl fmt::Debug for Target {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Target({})", crate::hex::encode(&self.0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hex;

    /// Bitcoin's difficulty-1 target (`nbits` 0x1d00ffff).
    fn diff1() -> Target {
        Target::from_be_bytes(
            hex::decode_array("00000000ffff0000000000000000000000000000000000000000000000000000")
                .unwrap(),
        )
    }

    #[test]
    fn compact_targets_decode_like_bitcoin() {
        assert_eq!(Target::from_compact(0x1d00_ffff), Some(diff1()));
        // Block 125552's nbits.
        let t = Target::from_compact(0x1a44_b9f2).unwrap();
        assert_eq!(
            hex::encode(&t.to_be_bytes()),
            "00000000000044b9f20000000000000000000000000000000000000000000000"
        );
        assert_eq!(
            Target::from_compact(0x0300_0001).unwrap().to_be_bytes()[31],
            1
        );
        assert_eq!(
            Target::from_compact(0x0180_0000),
            Some(Target::from_be_bytes([0; 32])),
            "negative zero is zero"
        );
        assert_eq!(Target::from_compact(0x0480_0001), None, "negative");
        assert_eq!(Target::from_compact(0x2301_0000), None, "overflow");
    }

    #[test]
    fn difficulty_divides_the_diff1_target() {
        assert_eq!(Target::from_difficulty(&diff1(), 1.0), Some(diff1()));
        let half = Target::from_difficulty(&diff1(), 2.0).unwrap();
        assert_eq!(
            hex::encode(&half.to_be_bytes()),
            "000000007fff8000000000000000000000000000000000000000000000000000"
        );
        // Fractional difficulty: an easier target than diff1.
        let easy = Target::from_difficulty(&diff1(), 1.0 / 65536.0).unwrap();
        assert_eq!(
            hex::encode(&easy.to_be_bytes()),
            "0000ffff00000000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(Target::from_difficulty(&diff1(), 1e-80), Some(Target::MAX));
        assert_eq!(Target::from_difficulty(&diff1(), 0.0), None);
        assert_eq!(Target::from_difficulty(&diff1(), f64::NAN), None);
        assert_eq!(Target::from_difficulty(&diff1(), -1.0), None);
    }

    #[test]
    fn a_hash_meets_a_target_as_a_little_endian_number() {
        let target = Target::from_compact(0x1d00_ffff).unwrap();
        let mut hash = [0u8; 32];
        hash[27] = 0xff; // number 0xff << 216: below 0xffff << 208
        assert!(target.is_met_by(&hash));
        hash[28] = 1; // now above
        assert!(!target.is_met_by(&hash));
        // Equal is enough.
        let mut equal: [u8; 32] = target.to_be_bytes();
        equal.reverse();
        assert!(target.is_met_by(&equal));
        assert_eq!(target.words()[1], 0xffff_0000);
        assert!((hash_difficulty(&target, &equal) - 1.0).abs() < 1e-12);
    }
}
