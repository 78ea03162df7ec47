//! Fault injection for end-to-end tests: deliberately broken blob
//! downloads, so tests can prove that workers resume and re-fetch. Off
//! unless a `serve --fault-…` flag turns it on; every injected fault is
//! logged at `warn`.
//!
//! - `cut_blob_after_bytes = N`: the first full (non-`Range`) GET of each
//!   blob larger than N bytes sends N bytes and then aborts the connection
//!   (the response promised the full length), so the client must resume
//!   with `Range: bytes=N-`.
//! - `corrupt_blob_once = [sha…]`: the first GET of each listed blob is
//!   served with its first byte flipped, so the client's digest check fails
//!   and it must fetch again.

use std::collections::HashSet;
use std::sync::Mutex;

use pictor_protocol::Sha256Digest;

/// Which faults to inject.
#[derive(Debug, Clone, Default)]
pub struct FaultConfig {
    /// Cut the first full GET of each blob after this many bytes.
    pub cut_blob_after_bytes: Option<u64>,
    /// Serve each of these blobs once with a flipped byte.
    pub corrupt_blob_once: Vec<Sha256Digest>,
}

impl FaultConfig {
    /// Whether any fault is on.
    pub fn any(&self) -> bool {
        self.cut_blob_after_bytes.is_some() || !self.corrupt_blob_once.is_empty()
    }
}

/// What to do to one blob response.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct BlobFault {
    /// Send this many bytes, then abort the connection.
    pub cut_after: Option<u64>,
    /// Flip the first byte sent.
    pub flip_first_byte: bool,
}

/// The faults still to inject.
#[derive(Debug, Default)]
pub struct Faults {
    cut_after: Option<u64>,
    cut_done: Mutex<HashSet<Sha256Digest>>,
    corrupt_pending: Mutex<HashSet<Sha256Digest>>,
}

impl Faults {
    /// Faults as configured.
    pub fn new(config: &FaultConfig) -> Self {
        Faults {
            cut_after: config.cut_blob_after_bytes,
            cut_done: Mutex::new(HashSet::new()),
            corrupt_pending: Mutex::new(config.corrupt_blob_once.iter().copied().collect()),
        }
    }

    /// The fault for a GET of `sha256` sending `len` bytes (`full`: not a
    /// `Range` request), consuming it.
    pub fn for_get(&self, sha256: &Sha256Digest, full: bool, len: u64) -> BlobFault {
        let mut fault = BlobFault::default();
        if let Some(n) = self.cut_after
            && full
            && n < len
            && self
                .cut_done
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .insert(*sha256)
        {
            tracing::warn!(blob = %sha256, bytes = n, "fault injection: cutting this download");
            fault.cut_after = Some(n);
        }
        if len > 0
            && self
                .corrupt_pending
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .remove(sha256)
        {
            tracing::warn!(blob = %sha256, "fault injection: serving this blob with a flipped byte");
            fault.flip_first_byte = true;
        }
        fault
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_fault_fires_once_per_blob() {
        let a = Sha256Digest::of(b"a");
        let b = Sha256Digest::of(b"b");
        let faults = Faults::new(&FaultConfig {
            cut_blob_after_bytes: Some(10),
            corrupt_blob_once: vec![b],
        });
        assert_eq!(
            faults.for_get(&a, false, 100),
            BlobFault::default(),
            "ranges are not cut"
        );
        assert_eq!(
            faults.for_get(&a, true, 5),
            BlobFault::default(),
            "short blobs are not cut"
        );
        assert_eq!(faults.for_get(&a, true, 100).cut_after, Some(10));
        assert_eq!(faults.for_get(&a, true, 100), BlobFault::default());
        assert_eq!(
            faults.for_get(&b, false, 100),
            BlobFault {
                cut_after: None,
                flip_first_byte: true
            }
        );
        assert_eq!(faults.for_get(&b, false, 100), BlobFault::default());
        assert_eq!(
            Faults::default().for_get(&a, true, 100),
            BlobFault::default()
        );
    }
}
