//! The training state saved through the host's `checkpoint` interface:
//! step, parameters, Adam's moments and the loss history, tagged with a
//! fingerprint of everything that shapes the run (params and dataset), so
//! a checkpoint is only resumed by the run it belongs to.
//!
//! Layout (little-endian): `PXTRAIN1`, fingerprint (32 bytes), step (u64),
//! parameter count n (u64), n params, n first moments, n second moments
//! (f32 each), then `step` losses (f32).

/// Leading bytes of a checkpoint.
const MAGIC: &[u8; 8] = b"PXTRAIN1";

/// Everything needed to go on from a step.
#[derive(Debug, Clone, PartialEq)]
pub struct State {
    /// Steps done.
    pub step: u64,
    /// Parameters.
    pub params: Vec<f32>,
    /// Adam's first moments.
    pub m: Vec<f32>,
    /// Adam's second moments.
    pub v: Vec<f32>,
    /// The loss of every step done.
    pub losses: Vec<f32>,
}

/// Serialises `state` under `fingerprint`.
pub fn encode(fingerprint: &[u8; 32], state: &State) -> Vec<u8> {
    let n = state.params.len();
    let mut out = Vec::with_capacity(56 + 12 * n + 4 * state.losses.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(fingerprint);
    out.extend_from_slice(&state.step.to_le_bytes());
    out.extend_from_slice(&(n as u64).to_le_bytes());
    for values in [&state.params, &state.m, &state.v, &state.losses] {
        for v in values.iter() {
            out.extend_from_slice(&v.to_le_bytes());
        }
    }
    out
}

/// Reads a checkpoint of this run (`fingerprint`, `n` parameters); the
/// error says why it cannot be resumed.
pub fn decode(bytes: &[u8], fingerprint: &[u8; 32], n: usize) -> Result<State, String> {
    if bytes.len() < 56 || &bytes[..8] != MAGIC {
        return Err("not a training checkpoint".into());
    }
    if &bytes[8..40] != fingerprint {
        return Err("it belongs to a run with other params or images".into());
    }
    let u64_at = |at: usize| u64::from_le_bytes(bytes[at..at + 8].try_into().unwrap_or([0; 8]));
    let (step, count) = (u64_at(40), u64_at(48));
    if count != n as u64 {
        return Err(format!("it holds {count} parameters; this network has {n}"));
    }
    let expected = (n as u64)
        .checked_mul(3)
        .and_then(|v| v.checked_add(step))
        .and_then(|v| v.checked_mul(4))
        .and_then(|v| v.checked_add(56));
    if expected != Some(bytes.len() as u64) {
        return Err(format!(
            "it is {} bytes, not the {expected:?} its header implies",
            bytes.len()
        ));
    }
    let floats: Vec<f32> = bytes[56..]
        .chunks_exact(4)
        .map(|c| f32::from_le_bytes([c[0], c[1], c[2], c[3]]))
        .collect();
    let (params, rest) = floats.split_at(n);
    let (m, rest) = rest.split_at(n);
    let (v, losses) = rest.split_at(n);
    Ok(State {
        step,
        params: params.to_vec(),
        m: m.to_vec(),
        v: v.to_vec(),
        losses: losses.to_vec(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_refusals() {
        let fp = [7u8; 32];
        let state = State {
            step: 3,
            params: vec![1.0, 2.0],
            m: vec![0.1, 0.2],
            v: vec![0.01, 0.02],
            losses: vec![0.5, 0.4, 0.3],
        };
        let bytes = encode(&fp, &state);
        assert_eq!(decode(&bytes, &fp, 2).unwrap(), state);
        assert!(
            decode(&bytes, &[8u8; 32], 2)
                .unwrap_err()
                .contains("other params")
        );
        assert!(
            decode(&bytes, &fp, 3)
                .unwrap_err()
                .contains("holds 2 parameters")
        );
        assert!(
            decode(&bytes[..bytes.len() - 4], &fp, 2)
                .unwrap_err()
                .contains("bytes")
        );
        assert!(decode(b"garbage", &fp, 2).is_err());
    }
}
