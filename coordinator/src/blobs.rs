//! The blob store: content-addressed files under `DATA/blobs/<first two hex
//! digits>/<sha256>`, written only whole and verified.
//!
//! An upload streams into `blobs/tmp/` while it is hashed and counted
//! ([`BlobStore::receive`]), is checked against its address, fsync'd and
//! renamed into place ([`Received::persist`]), so a blob file is either
//! absent or complete and correct. Reads are served from the file in chunks
//! (see [`crate::api::blobs`]). At scale the same addresses map onto
//! S3-compatible object storage.
//!
//! The garbage collector ([`crate::gc`]) deletes blobs nothing references.
//! So that it never deletes a blob in the moment something starts to name
//! it, whoever sees a blob present and then references it (a submit, a
//! complete, an upload answered "already stored") holds
//! [`BlobStore::keep`] across both steps; the collector holds
//! [`BlobStore::collecting`] while it picks and deletes.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use bytes::Bytes;
use futures_util::{Stream, StreamExt};
use pictor_protocol::Sha256Digest;
use sha2::{Digest as _, Sha256};
use tokio::io::AsyncWriteExt;

/// Why an upload was refused.
#[derive(Debug, thiserror::Error)]
pub enum BlobError {
    /// More bytes than the server accepts.
    #[error("blob is larger than this coordinator's limit of {limit} bytes")]
    TooLarge {
        /// The limit.
        limit: u64,
    },
    /// The bytes do not hash to the address they were sent to.
    #[error("uploaded bytes hash to {actual}, not to the address {expected}")]
    DigestMismatch {
        /// The address.
        expected: Sha256Digest,
        /// What the bytes hash to.
        actual: Sha256Digest,
    },
    /// The request body broke off.
    #[error("upload interrupted: {0}")]
    Body(String),
    /// The body fell behind the transfer bounds ([`crate::limits::pace`]).
    #[error("upload cut: {0}")]
    TimedOut(String),
    /// A file operation failed.
    #[error("blob store i/o on {}: {source}", path.display())]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}

/// What an upload did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The blob is new.
    Created,
    /// It was already there (the upload was verified and dropped).
    AlreadyPresent,
}

/// The blobs folder.
#[derive(Debug, Clone)]
pub struct BlobStore {
    root: PathBuf,
    max_bytes: u64,
    gc: Arc<tokio::sync::RwLock<()>>,
}

/// A verified upload waiting in `blobs/tmp/`: [`Received::persist`] puts
/// it in place; dropping it deletes it.
#[derive(Debug)]
pub struct Received {
    tmp: Option<PathBuf>,
    path: PathBuf,
    /// The blob's digest (verified).
    pub sha256: Sha256Digest,
    /// Its size in bytes.
    pub size: u64,
}

impl Received {
    /// Moves the upload into place (fsync'd first).
    pub async fn persist(mut self) -> Result<(), BlobError> {
        let Some(tmp) = self.tmp.take() else {
            return Ok(());
        };
        let result = async {
            let file = tokio::fs::File::open(&tmp).await.map_err(io(&tmp))?;
            file.sync_all().await.map_err(io(&tmp))?;
            drop(file);
            if let Some(dir) = self.path.parent() {
                tokio::fs::create_dir_all(dir).await.map_err(io(dir))?;
            }
            tokio::fs::rename(&tmp, &self.path)
                .await
                .map_err(io(&self.path))
        }
        .await;
        if result.is_err() {
            let _ = std::fs::remove_file(&tmp);
        }
        result
    }
}

impl Drop for Received {
    fn drop(&mut self) {
        if let Some(tmp) = self.tmp.take() {
            let _ = std::fs::remove_file(tmp);
        }
    }
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> BlobError + '_ {
    move |source| BlobError::Io {
        path: path.to_path_buf(),
        source,
    }
}

impl BlobStore {
    /// Opens (creating) the store in `root`; leftovers of interrupted uploads are removed.
    pub fn open(root: &Path, max_bytes: u64) -> Result<Self, BlobError> {
        let tmp = root.join("tmp");
        if tmp.exists() {
            std::fs::remove_dir_all(&tmp).map_err(io(&tmp))?;
        }
        std::fs::create_dir_all(&tmp).map_err(io(&tmp))?;
        Ok(BlobStore {
            root: root.to_path_buf(),
            max_bytes,
            gc: Arc::default(),
        })
    }

    /// Held by whoever sees blobs present and then references them: no
    /// blob is collected meanwhile.
    pub async fn keep(&self) -> tokio::sync::RwLockReadGuard<'_, ()> {
        self.gc.read().await
    }

    /// Held by the garbage collector while it picks and deletes blobs.
    pub async fn collecting(&self) -> tokio::sync::RwLockWriteGuard<'_, ()> {
        self.gc.write().await
    }

    /// Deletes blob `sha256`'s file (absent already: fine).
    pub fn delete(&self, sha256: &Sha256Digest) -> Result<(), BlobError> {
        let path = self.path(sha256);
        match std::fs::remove_file(&path) {
            Ok(()) => Ok(()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(io(&path)(e)),
        }
    }

    /// Every blob file in the folder, by digest (files whose names are not
    /// digests are left alone).
    pub fn digests(&self) -> Result<Vec<Sha256Digest>, BlobError> {
        let mut found = Vec::new();
        let entries = std::fs::read_dir(&self.root).map_err(io(&self.root))?;
        for entry in entries {
            let entry = entry.map_err(io(&self.root))?;
            let name = entry.file_name();
            let Some(prefix) = name.to_str() else {
                continue;
            };
            if prefix.len() != 2 || !entry.path().is_dir() {
                continue;
            }
            let dir = entry.path();
            for file in std::fs::read_dir(&dir).map_err(io(&dir))? {
                let file = file.map_err(io(&dir))?;
                let parsed = file
                    .file_name()
                    .to_str()
                    .filter(|n| n.len() == 64 && n.starts_with(prefix))
                    .and_then(|n| n.parse::<Sha256Digest>().ok());
                if let Some(digest) = parsed
                    && file.path().is_file()
                {
                    found.push(digest);
                }
            }
        }
        found.sort();
        Ok(found)
    }

    /// The largest blob accepted, in bytes.
    pub fn max_bytes(&self) -> u64 {
        self.max_bytes
    }

    /// Where blob `sha256` lives (whether or not it exists).
    pub fn path(&self, sha256: &Sha256Digest) -> PathBuf {
        let hex = sha256.to_string();
        self.root.join(&hex[..2]).join(hex)
    }

    /// The size of blob `sha256`, if present.
    pub fn size(&self, sha256: &Sha256Digest) -> Option<u64> {
        std::fs::metadata(self.path(sha256))
            .ok()
            .filter(|m| m.is_file())
            .map(|m| m.len())
    }

    /// Those of `digests` that are not in the store, each once, in order.
    pub fn missing<'a>(
        &self,
        digests: impl IntoIterator<Item = &'a Sha256Digest>,
    ) -> Vec<Sha256Digest> {
        let mut missing = Vec::new();
        for digest in digests {
            if self.size(digest).is_none() && !missing.contains(digest) {
                missing.push(*digest);
            }
        }
        missing
    }

    /// Stores the bytes of `body` as blob `expected`, verifying them (no
    /// record, no quota: for the operator's own blobs and tests).
    pub async fn put(
        &self,
        expected: &Sha256Digest,
        body: impl Stream<Item = std::io::Result<Bytes>>,
    ) -> Result<PutOutcome, BlobError> {
        let received = self.receive(expected, body).await?;
        if self.size(expected).is_some() {
            return Ok(PutOutcome::AlreadyPresent);
        }
        received.persist().await?;
        Ok(PutOutcome::Created)
    }

    /// Streams `body` into a temporary file, hashing and counting it, and
    /// checks it hashes to `expected`. A body error of kind `TimedOut` (see
    /// [`crate::limits::pace`]) is [`BlobError::TimedOut`].
    pub async fn receive(
        &self,
        expected: &Sha256Digest,
        body: impl Stream<Item = std::io::Result<Bytes>>,
    ) -> Result<Received, BlobError> {
        let mut nonce = [0u8; 8];
        getrandom::fill(&mut nonce)
            .map_err(|e| BlobError::Body(format!("no randomness for a temp name: {e}")))?;
        let tmp = self
            .root
            .join("tmp")
            .join(format!("{expected}.{}.part", hex::encode(nonce)));
        let mut file = tokio::fs::File::create(&tmp).await.map_err(io(&tmp))?;
        // From here on the file goes when `received` drops, whatever happens.
        let mut received = Received {
            tmp: Some(tmp.clone()),
            path: self.path(expected),
            sha256: *expected,
            size: 0,
        };
        let mut hasher = Sha256::new();
        let mut body = std::pin::pin!(body);
        while let Some(chunk) = body.next().await {
            let chunk = chunk.map_err(|e| match e.kind() {
                std::io::ErrorKind::TimedOut => BlobError::TimedOut(e.to_string()),
                _ => BlobError::Body(e.to_string()),
            })?;
            received.size += chunk.len() as u64;
            if received.size > self.max_bytes {
                return Err(BlobError::TooLarge {
                    limit: self.max_bytes,
                });
            }
            hasher.update(&chunk);
            file.write_all(&chunk).await.map_err(io(&tmp))?;
        }
        file.flush().await.map_err(io(&tmp))?;
        drop(file);
        let actual = Sha256Digest::from_bytes(hasher.finalize().into());
        if actual != *expected {
            return Err(BlobError::DigestMismatch {
                expected: *expected,
                actual,
            });
        }
        Ok(received)
    }
}

/// What a `Range` header asks of a blob of a known length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeChoice {
    /// No (usable) range: send everything.
    Full,
    /// Bytes `start..=end`.
    Partial {
        /// First byte.
        start: u64,
        /// Last byte (inclusive).
        end: u64,
    },
    /// A well-formed range that lies outside the blob (416).
    Unsatisfiable,
}

/// Interprets a `Range` header value for a blob of `len` bytes: `bytes=a-b`,
/// `bytes=a-` and `bytes=-n`. Multiple ranges and malformed values are
/// ignored (the whole blob is sent), as RFC 9110 allows.
pub fn parse_range(header: &str, len: u64) -> RangeChoice {
    let Some(spec) = header.trim().strip_prefix("bytes=") else {
        return RangeChoice::Full;
    };
    if spec.contains(',') {
        return RangeChoice::Full;
    }
    let Some((first, last)) = spec.trim().split_once('-') else {
        return RangeChoice::Full;
    };
    let (first, last) = (first.trim(), last.trim());
    let number = |s: &str| {
        if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
            None
        } else {
            s.parse::<u64>().ok()
        }
    };
    match (first.is_empty(), number(first), number(last)) {
        // `-n`: the last n bytes.
        (true, _, Some(n)) => {
            if n == 0 || len == 0 {
                RangeChoice::Unsatisfiable
            } else {
                RangeChoice::Partial {
                    start: len.saturating_sub(n),
                    end: len - 1,
                }
            }
        }
        (false, Some(start), None) if last.is_empty() => {
            if start >= len {
                RangeChoice::Unsatisfiable
            } else {
                RangeChoice::Partial {
                    start,
                    end: len - 1,
                }
            }
        }
        (false, Some(start), Some(end)) if start <= end => {
            if start >= len {
                RangeChoice::Unsatisfiable
            } else {
                RangeChoice::Partial {
                    start,
                    end: end.min(len - 1),
                }
            }
        }
        _ => RangeChoice::Full,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges() {
        use RangeChoice::*;
        assert_eq!(parse_range("bytes=0-9", 100), Partial { start: 0, end: 9 });
        assert_eq!(
            parse_range("bytes=90-200", 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=10-", 100),
            Partial { start: 10, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=-10", 100),
            Partial { start: 90, end: 99 }
        );
        assert_eq!(
            parse_range("bytes=-500", 100),
            Partial { start: 0, end: 99 }
        );
        assert_eq!(parse_range("bytes=100-", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=-0", 100), Unsatisfiable);
        assert_eq!(parse_range("bytes=5-1", 100), Full);
        assert_eq!(parse_range("bytes=0-1,5-6", 100), Full);
        assert_eq!(parse_range("items=0-1", 100), Full);
        assert_eq!(parse_range("bytes=a-b", 100), Full);
    }

    #[tokio::test]
    async fn uploads_are_verified_and_stored_once() -> Result<(), Box<dyn std::error::Error>> {
        let dir = tempfile::tempdir()?;
        let store = BlobStore::open(dir.path(), 10)?;
        let data = Bytes::from_static(b"hello");
        let sha = Sha256Digest::of(&data);
        let body = |b: Bytes| futures_util::stream::iter([Ok::<_, std::io::Error>(b)]);
        let x = Sha256Digest::of(b"x");
        assert_eq!(
            store.put(&x, body(Bytes::from_static(b"x"))).await?,
            PutOutcome::Created
        );
        assert_eq!(store.digests()?, vec![Sha256Digest::of(b"x")]);
        store.delete(&Sha256Digest::of(b"x"))?;
        store.delete(&Sha256Digest::of(b"x"))?;
        assert!(store.digests()?.is_empty());
        assert_eq!(
            store.put(&sha, body(data.clone())).await?,
            PutOutcome::Created
        );
        assert_eq!(
            store.put(&sha, body(data.clone())).await?,
            PutOutcome::AlreadyPresent
        );
        assert_eq!(std::fs::read(store.path(&sha))?, b"hello");
        let wrong = Sha256Digest::of(b"other");
        assert!(matches!(
            store.put(&wrong, body(data)).await,
            Err(BlobError::DigestMismatch { .. })
        ));
        let big = Bytes::from_static(b"more than ten bytes");
        assert!(matches!(
            store.put(&Sha256Digest::of(&big), body(big)).await,
            Err(BlobError::TooLarge { limit: 10 })
        ));
        assert_eq!(
            std::fs::read_dir(dir.path().join("tmp"))?.count(),
            0,
            "temp files are cleaned up"
        );
        assert_eq!(store.missing([&sha, &wrong, &wrong]), vec![wrong]);
        Ok(())
    }
}
