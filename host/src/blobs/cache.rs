//! The content-addressed blob cache: verified files by sha256, a byte
//! limit, least-recently-used eviction, and pins for blobs in use.
//!
//! Layout under the cache root:
//!
//! ```text
//! blobs/<sha256>          complete files, verified when they were written
//! partial/<sha256>.part   downloads in progress, kept across restarts to resume
//! ```
//!
//! The in-memory index holds each file's size and its place in the
//! last-use order; the order survives restarts as the files' mtimes
//! (set on every use). [`BlobCache::open`] scans the folder, deletes stray
//! files, and trusts nothing it did not write in this process: every blob
//! found on open is re-hashed the first time it is used (lazily, so a
//! large cache opens at once; [`BlobCache::get`] and the fetcher do it).
//! A blob found empty on open whose digest is not that of the empty file
//! is deleted at once.
//!
//! Every byte on disk counts against the limit: complete blobs, partial
//! downloads, and the full expected size of downloads in progress
//! (reserved when they start). Making room evicts the least recently
//! used blobs and abandoned partial downloads, never a pinned blob
//! ([`BlobCache::pin`]: a running job uses it).
//!
//! One process owns a cache folder. The index is behind a std mutex that
//! is never held across an await; file operations under it are single
//! renames, deletes and stats.

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::fs;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError, Weak};
use std::time::SystemTime;

use crate::digest::Sha256Digest;

/// An error of the blob cache.
#[derive(Debug, thiserror::Error)]
pub enum CacheError {
    /// A file operation in the cache folder failed.
    #[error("cannot {action} {}: {source}", path.display())]
    Io {
        /// What was being done, e.g. `create cache folder`.
        action: &'static str,
        /// The file or folder.
        path: PathBuf,
        /// The underlying error.
        source: io::Error,
    },
    /// The blob alone is larger than the whole cache.
    #[error(
        "blob {blob} is {} MiB, larger than the whole download cache ({} MiB); raise `limits.cache_mib` in worker.json",
        Mib(*size),
        Mib(*limit)
    )]
    TooLarge {
        /// The blob.
        blob: Sha256Digest,
        /// Its size in bytes.
        size: u64,
        /// The cache limit in bytes.
        limit: u64,
    },
    /// No room can be made: what is left is pinned or being downloaded.
    #[error(
        "cache full: {} MiB pinned by running jobs, limit {} MiB; raise `limits.cache_mib` in worker.json \
         (blob {blob} needs {} MiB more; downloads in progress hold {} MiB)",
        Mib(*pinned),
        Mib(*limit),
        Mib(*needed),
        Mib(*downloading)
    )]
    Full {
        /// The blob that needs room.
        blob: Sha256Digest,
        /// The bytes it needs.
        needed: u64,
        /// Bytes of pinned blobs.
        pinned: u64,
        /// Bytes reserved by downloads in progress.
        downloading: u64,
        /// The cache limit in bytes.
        limit: u64,
    },
    /// [`BlobCache::remove`] of a blob that a job has pinned.
    #[error("blob {blob} is pinned by a running job and cannot be removed")]
    Pinned {
        /// The blob.
        blob: Sha256Digest,
    },
}

/// Bytes shown in MiB with one decimal.
struct Mib(u64);

impl fmt::Display for Mib {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mib = self.0 as f64 / (1u64 << 20) as f64;
        if self.0.is_multiple_of(1 << 20) {
            write!(f, "{mib:.0}")
        } else {
            write!(f, "{mib:.1}")
        }
    }
}

/// What the cache holds, in bytes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CacheUsage {
    /// Number of complete blobs.
    pub blobs: usize,
    /// Bytes of complete blobs.
    pub blob_bytes: u64,
    /// Bytes of partial downloads not in progress (kept to resume).
    pub partial_bytes: u64,
    /// Bytes reserved by downloads in progress (their full expected size).
    pub reserved_bytes: u64,
    /// Bytes of complete blobs that are pinned.
    pub pinned_bytes: u64,
    /// The limit.
    pub limit_bytes: u64,
}

/// A content-addressed cache folder with a byte limit; share it as
/// `Arc<BlobCache>`.
pub struct BlobCache {
    root: PathBuf,
    limit: u64,
    index: Mutex<Index>,
    /// Per-digest download locks, so one digest downloads once at a time.
    flights: Mutex<HashMap<Sha256Digest, Weak<tokio::sync::Mutex<()>>>>,
}

impl fmt::Debug for BlobCache {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("BlobCache")
            .field("root", &self.root)
            .field("limit", &self.limit)
            .finish_non_exhaustive()
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Blob,
    Partial,
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    size: u64,
    tick: u64,
    /// Hashed since this process opened the cache (always true for a
    /// partial, which is verified when it completes).
    verified: bool,
}

#[derive(Default)]
struct Index {
    blobs: HashMap<Sha256Digest, Entry>,
    /// Partial downloads not in progress.
    partials: HashMap<Sha256Digest, Entry>,
    /// Last-use order: tick → file; oldest first.
    order: BTreeMap<u64, (Sha256Digest, Kind)>,
    next_tick: u64,
    /// Bytes of `blobs` and `partials`.
    used: u64,
    /// Bytes reserved by downloads in progress.
    reserved: u64,
    pins: HashMap<Sha256Digest, usize>,
}

impl Index {
    fn tick(&mut self) -> u64 {
        self.next_tick += 1;
        self.next_tick
    }

    fn map(&mut self, kind: Kind) -> &mut HashMap<Sha256Digest, Entry> {
        match kind {
            Kind::Blob => &mut self.blobs,
            Kind::Partial => &mut self.partials,
        }
    }

    fn insert(&mut self, blob: Sha256Digest, kind: Kind, size: u64, verified: bool) {
        self.forget(blob, kind);
        let tick = self.tick();
        self.map(kind).insert(
            blob,
            Entry {
                size,
                tick,
                verified,
            },
        );
        self.order.insert(tick, (blob, kind));
        self.used += size;
    }

    /// Drops an entry from the index (not its file).
    fn forget(&mut self, blob: Sha256Digest, kind: Kind) -> Option<Entry> {
        let entry = self.map(kind).remove(&blob)?;
        self.order.remove(&entry.tick);
        self.used -= entry.size;
        Some(entry)
    }

    fn touch(&mut self, blob: Sha256Digest) -> Option<Entry> {
        let tick = self.tick();
        let entry = self.blobs.get_mut(&blob)?;
        self.order.remove(&entry.tick);
        entry.tick = tick;
        let entry = *entry;
        self.order.insert(tick, (blob, Kind::Blob));
        Some(entry)
    }

    fn pinned_bytes(&self) -> u64 {
        self.pins
            .keys()
            .filter_map(|d| self.blobs.get(d))
            .map(|e| e.size)
            .sum()
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

fn io_err(action: &'static str, path: &Path) -> impl FnOnce(io::Error) -> CacheError + use<> {
    let path = path.to_path_buf();
    move |source| CacheError::Io {
        action,
        path,
        source,
    }
}

/// Sets a file's mtime to now: its place in the last-use order across
/// restarts.
fn set_mtime_now(path: &Path) -> io::Result<()> {
    fs::OpenOptions::new()
        .write(true)
        .open(path)?
        .set_modified(SystemTime::now())
}

const PART_SUFFIX: &str = ".part";

/// A file name that is exactly 64 lowercase hex digits.
fn parse_name(name: &str) -> Option<Sha256Digest> {
    let ok = name.len() == 64 && name.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f'));
    if ok { name.parse().ok() } else { None }
}

impl BlobCache {
    /// Opens (creating if needed) the cache folder `root` with a limit of
    /// `limit_bytes`, scanning what is there: stray files are deleted,
    /// blobs and partial downloads are indexed in last-use order (by
    /// mtime), and if the folder is over the limit (it was lowered) the
    /// least recently used files are evicted. Blobs found here are
    /// re-hashed on first use. Blocking: call from `spawn_blocking` or at
    /// start-up.
    pub fn open(root: impl Into<PathBuf>, limit_bytes: u64) -> Result<Self, CacheError> {
        let root = root.into();
        let blobs_dir = root.join("blobs");
        let partial_dir = root.join("partial");
        for dir in [&blobs_dir, &partial_dir] {
            fs::create_dir_all(dir).map_err(io_err("create cache folder", dir))?;
        }
        let empty = Sha256Digest::of(b"");
        let mut found: Vec<(SystemTime, Sha256Digest, Kind, u64)> = Vec::new();
        for (dir, kind) in [(&blobs_dir, Kind::Blob), (&partial_dir, Kind::Partial)] {
            for item in fs::read_dir(dir).map_err(io_err("read cache folder", dir))? {
                let item = item.map_err(io_err("read cache folder", dir))?;
                let path = item.path();
                let meta = item.metadata().map_err(io_err("stat", &path))?;
                let name = item.file_name();
                let name = name.to_str().unwrap_or("");
                let digest = match kind {
                    Kind::Blob => parse_name(name),
                    Kind::Partial => name.strip_suffix(PART_SUFFIX).and_then(parse_name),
                };
                if !meta.is_file() {
                    tracing::warn!(path = %path.display(), "ignoring a folder or link in the blob cache");
                    continue;
                }
                let stray = match digest {
                    None => Some("stray file"),
                    Some(d) if kind == Kind::Blob && meta.len() == 0 && d != empty => {
                        Some("empty blob")
                    }
                    Some(d)
                        if kind == Kind::Partial
                            && (blobs_dir.join(d.to_string()).is_file() || meta.len() == 0) =>
                    {
                        Some("partial download of a complete or empty blob")
                    }
                    Some(_) => None,
                };
                match (stray, digest) {
                    (Some(why), _) => {
                        tracing::info!(path = %path.display(), why, "deleting from the blob cache");
                        fs::remove_file(&path).map_err(io_err("delete", &path))?;
                    }
                    (None, Some(d)) => {
                        let mtime = meta.modified().unwrap_or(SystemTime::UNIX_EPOCH);
                        found.push((mtime, d, kind, meta.len()));
                    }
                    (None, None) => {}
                }
            }
        }
        found.sort_by_key(|&(mtime, d, kind, _)| (mtime, kind == Kind::Blob, d));
        let mut index = Index::default();
        for (_, d, kind, size) in found {
            index.insert(d, kind, size, false);
        }
        let cache = BlobCache {
            root,
            limit: limit_bytes,
            index: Mutex::new(index),
            flights: Mutex::new(HashMap::new()),
        };
        {
            let mut index = lock(&cache.index);
            let over = index.used.saturating_sub(cache.limit);
            if over > 0 {
                tracing::info!(
                    over_bytes = over,
                    limit = cache.limit,
                    "blob cache over its limit; evicting"
                );
                // Nothing is pinned yet, so this frees enough.
                cache.evict(&mut index, over)?;
            }
            tracing::debug!(root = %cache.root.display(), blobs = index.blobs.len(), used = index.used, "opened blob cache");
        }
        Ok(cache)
    }

    /// The cache folder.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// The byte limit.
    pub fn limit(&self) -> u64 {
        self.limit
    }

    /// Where a complete blob lives (whether or not it is there).
    pub fn blob_path(&self, blob: &Sha256Digest) -> PathBuf {
        self.root.join("blobs").join(blob.to_string())
    }

    /// Where a download in progress is written.
    pub(crate) fn partial_path(&self, blob: &Sha256Digest) -> PathBuf {
        self.root
            .join("partial")
            .join(format!("{blob}{PART_SUFFIX}"))
    }

    /// What the cache holds now.
    pub fn usage(&self) -> CacheUsage {
        let index = lock(&self.index);
        CacheUsage {
            blobs: index.blobs.len(),
            blob_bytes: index.blobs.values().map(|e| e.size).sum(),
            partial_bytes: index.partials.values().map(|e| e.size).sum(),
            reserved_bytes: index.reserved,
            pinned_bytes: index.pinned_bytes(),
            limit_bytes: self.limit,
        }
    }

    /// Whether a complete blob is cached (it may not be verified yet).
    pub fn contains(&self, blob: &Sha256Digest) -> bool {
        lock(&self.index).blobs.contains_key(blob)
    }

    /// Pins `blob` until the guard drops: it will not be evicted. The blob
    /// need not be cached yet (pinning before a download keeps it once it
    /// arrives). Pins are counted: each guard holds one.
    pub fn pin(self: &Arc<Self>, blob: Sha256Digest) -> PinGuard {
        *lock(&self.index).pins.entry(blob).or_insert(0) += 1;
        PinGuard {
            cache: Arc::clone(self),
            blob,
        }
    }

    fn unpin(&self, blob: &Sha256Digest) {
        let mut index = lock(&self.index);
        if let Some(count) = index.pins.get_mut(blob) {
            *count -= 1;
            if *count == 0 {
                index.pins.remove(blob);
            }
        }
    }

    /// A cached blob, pinned and marked used, or `None`. A blob found on
    /// open is re-hashed here on its first use (blocking; one that does
    /// not match, or cannot be read, is deleted and `None` returned).
    pub fn get(self: &Arc<Self>, blob: &Sha256Digest) -> Option<PinnedBlob> {
        let Lookup {
            blob: pinned,
            verified,
        } = self.lookup(blob)?;
        if verified || self.finish_verify(&pinned, Sha256Digest::of_file(&pinned.path)) {
            Some(pinned)
        } else {
            None
        }
    }

    /// Looks up, pins and touches a blob; says whether it still needs
    /// hashing (found on open, not used since). A blob whose file has
    /// gone is forgotten.
    pub(crate) fn lookup(self: &Arc<Self>, blob: &Sha256Digest) -> Option<Lookup> {
        let (entry, pin) = {
            let mut index = lock(&self.index);
            let entry = index.touch(*blob)?;
            *index.pins.entry(*blob).or_insert(0) += 1;
            (
                entry,
                PinGuard {
                    cache: Arc::clone(self),
                    blob: *blob,
                },
            )
        };
        let pinned = PinnedBlob {
            pin,
            path: self.blob_path(blob),
            size: entry.size,
        };
        match set_mtime_now(&pinned.path) {
            Ok(()) => {}
            Err(error) if error.kind() == io::ErrorKind::NotFound => {
                self.discard(&pinned, "its file has gone");
                return None;
            }
            Err(error) => {
                tracing::debug!(path = %pinned.path.display(), %error, "cannot record the last use of a cached blob");
            }
        }
        Some(Lookup {
            blob: pinned,
            verified: entry.verified,
        })
    }

    /// Records the result of hashing a looked-up blob: marks it verified,
    /// or deletes it (even though pinned: its content is wrong or
    /// unreadable). Returns whether it matched.
    pub(crate) fn finish_verify(
        &self,
        pinned: &PinnedBlob,
        actual: io::Result<Sha256Digest>,
    ) -> bool {
        let blob = pinned.digest();
        match actual {
            Ok(actual) if actual == blob => {
                if let Some(entry) = lock(&self.index).blobs.get_mut(&blob) {
                    entry.verified = true;
                }
                true
            }
            Ok(actual) => {
                self.discard(
                    pinned,
                    &format!("it does not match its digest (its sha256 is {actual})"),
                );
                false
            }
            Err(error) => {
                self.discard(pinned, &format!("it cannot be read: {error}"));
                false
            }
        }
    }

    /// Forgets a cached blob and deletes its file, pinned or not.
    fn discard(&self, pinned: &PinnedBlob, why: &str) {
        let blob = pinned.digest();
        tracing::warn!(%blob, path = %pinned.path.display(), "deleting a cached blob: {why}");
        let mut index = lock(&self.index);
        if index.forget(blob, Kind::Blob).is_some()
            && let Err(error) = fs::remove_file(&pinned.path)
            && error.kind() != io::ErrorKind::NotFound
        {
            tracing::warn!(path = %pinned.path.display(), %error, "cannot delete a cached blob");
        }
    }

    /// Deletes a cached blob that is not pinned; `Ok(false)` if it was not
    /// cached.
    pub fn remove(&self, blob: &Sha256Digest) -> Result<bool, CacheError> {
        let mut index = lock(&self.index);
        if index.pins.contains_key(blob) && index.blobs.contains_key(blob) {
            return Err(CacheError::Pinned { blob: *blob });
        }
        if index.forget(*blob, Kind::Blob).is_none() {
            return Ok(false);
        }
        let path = self.blob_path(blob);
        fs::remove_file(&path).map_err(io_err("delete", &path))?;
        Ok(true)
    }

    /// The lock that makes one digest download once at a time, whichever
    /// fetcher asks.
    pub(crate) fn download_lock(&self, blob: &Sha256Digest) -> Arc<tokio::sync::Mutex<()>> {
        let mut flights = lock(&self.flights);
        if let Some(existing) = flights.get(blob).and_then(Weak::upgrade) {
            return existing;
        }
        flights.retain(|_, weak| weak.strong_count() > 0);
        let fresh = Arc::new(tokio::sync::Mutex::new(()));
        flights.insert(*blob, Arc::downgrade(&fresh));
        fresh
    }

    /// Starts a download of `blob`: reserves `size_hint` bytes (or the
    /// size of a partial download already there, if larger), evicting
    /// as needed. The partial file stops being evictable until the
    /// reservation ends.
    pub(crate) fn reserve(
        self: &Arc<Self>,
        blob: Sha256Digest,
        size_hint: u64,
    ) -> Result<Reservation, CacheError> {
        let mut index = lock(&self.index);
        let partial = index.forget(blob, Kind::Partial);
        let bytes = size_hint.max(partial.map_or(0, |e| e.size));
        let made = self
            .check_size(blob, bytes)
            .and_then(|()| self.make_room(&mut index, blob, bytes));
        if let Err(error) = made {
            if let Some(entry) = partial {
                index.partials.insert(blob, entry);
                index.order.insert(entry.tick, (blob, Kind::Partial));
                index.used += entry.size;
            }
            return Err(error);
        }
        index.reserved += bytes;
        Ok(Reservation {
            cache: Arc::clone(self),
            blob,
            bytes,
            done: false,
        })
    }

    fn check_size(&self, blob: Sha256Digest, size: u64) -> Result<(), CacheError> {
        if size > self.limit {
            Err(CacheError::TooLarge {
                blob,
                size,
                limit: self.limit,
            })
        } else {
            Ok(())
        }
    }

    /// Evicts until `needed` more bytes fit, or fails without evicting.
    fn make_room(
        &self,
        index: &mut Index,
        blob: Sha256Digest,
        needed: u64,
    ) -> Result<(), CacheError> {
        let over = (index.used + index.reserved + needed).saturating_sub(self.limit);
        if over == 0 {
            return Ok(());
        }
        let pinned = index.pinned_bytes();
        if pinned + index.reserved + needed > self.limit {
            return Err(CacheError::Full {
                blob,
                needed,
                pinned,
                downloading: index.reserved,
                limit: self.limit,
            });
        }
        self.evict(index, over)
    }

    /// Deletes unpinned files, least recently used first, until `bytes`
    /// are freed or nothing is left to evict.
    fn evict(&self, index: &mut Index, bytes: u64) -> Result<(), CacheError> {
        let victims: Vec<(Sha256Digest, Kind)> = {
            let mut freed = 0;
            let mut victims = Vec::new();
            for &(d, kind) in index.order.values() {
                if freed >= bytes {
                    break;
                }
                if kind == Kind::Blob && index.pins.contains_key(&d) {
                    continue;
                }
                let size = match kind {
                    Kind::Blob => index.blobs[&d].size,
                    Kind::Partial => index.partials[&d].size,
                };
                freed += size;
                victims.push((d, kind));
            }
            victims
        };
        for (d, kind) in victims {
            let path = match kind {
                Kind::Blob => self.blob_path(&d),
                Kind::Partial => self.partial_path(&d),
            };
            match fs::remove_file(&path) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => {
                    return Err(CacheError::Io {
                        action: "evict",
                        path,
                        source,
                    });
                }
            }
            index.forget(d, kind);
            tracing::debug!(blob = %d, ?kind, "evicted from the blob cache");
        }
        Ok(())
    }
}

/// A looked-up blob and whether it is known to match its digest.
pub(crate) struct Lookup {
    pub(crate) blob: PinnedBlob,
    pub(crate) verified: bool,
}

/// Room held for one download in progress. [`Reservation::commit`] turns
/// the verified partial file into a cached blob; dropping it instead
/// keeps the partial file (evictable, resumable later).
pub(crate) struct Reservation {
    cache: Arc<BlobCache>,
    blob: Sha256Digest,
    bytes: u64,
    done: bool,
}

impl Reservation {
    /// Grows the reservation to `total` bytes, evicting as needed.
    pub(crate) fn ensure(&mut self, total: u64) -> Result<(), CacheError> {
        if total <= self.bytes {
            return Ok(());
        }
        self.cache.check_size(self.blob, total)?;
        let extra = total - self.bytes;
        let mut index = lock(&self.cache.index);
        // Our own bytes are reserved already; only the extra needs room.
        self.cache.make_room(&mut index, self.blob, extra)?;
        index.reserved += extra;
        self.bytes = total;
        Ok(())
    }

    /// Moves the complete, verified partial file into the cache and pins it.
    pub(crate) fn commit(mut self) -> Result<PinnedBlob, CacheError> {
        let cache = Arc::clone(&self.cache);
        let part = cache.partial_path(&self.blob);
        let path = cache.blob_path(&self.blob);
        let size = fs::metadata(&part).map_err(io_err("stat", &part))?.len();
        set_mtime_now(&part).map_err(io_err("set the mtime of", &part))?;
        let mut index = lock(&cache.index);
        fs::rename(&part, &path).map_err(io_err("move the finished download", &part))?;
        index.reserved -= self.bytes;
        self.done = true;
        index.insert(self.blob, Kind::Blob, size, true);
        *index.pins.entry(self.blob).or_insert(0) += 1;
        let pin = PinGuard {
            cache: Arc::clone(&cache),
            blob: self.blob,
        };
        tracing::debug!(blob = %self.blob, size, "cached blob");
        Ok(PinnedBlob { pin, path, size })
    }
}

impl Drop for Reservation {
    fn drop(&mut self) {
        if self.done {
            return;
        }
        let part = self.cache.partial_path(&self.blob);
        let mut index = lock(&self.cache.index);
        index.reserved -= self.bytes;
        match fs::metadata(&part) {
            Ok(meta) if meta.len() > 0 => index.insert(self.blob, Kind::Partial, meta.len(), true),
            Ok(_) => {
                let _ = fs::remove_file(&part);
            }
            Err(_) => {}
        }
    }
}

/// One pin on a blob: while any guard for it lives, the blob is not
/// evicted. Cloning adds a pin; dropping removes one.
pub struct PinGuard {
    cache: Arc<BlobCache>,
    blob: Sha256Digest,
}

impl PinGuard {
    /// The pinned blob's digest.
    pub fn digest(&self) -> Sha256Digest {
        self.blob
    }
}

impl Clone for PinGuard {
    fn clone(&self) -> Self {
        self.cache.pin(self.blob)
    }
}

impl Drop for PinGuard {
    fn drop(&mut self) {
        self.cache.unpin(&self.blob);
    }
}

impl fmt::Debug for PinGuard {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PinGuard({:?})", self.blob)
    }
}

/// A complete, verified blob in the cache, pinned while this value (or a
/// clone) lives: hold it for as long as a job reads the file.
#[derive(Debug, Clone)]
pub struct PinnedBlob {
    pin: PinGuard,
    path: PathBuf,
    size: u64,
}

impl PinnedBlob {
    /// The blob's file (read it, copy it or hard-link it; do not modify it).
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Its digest.
    pub fn digest(&self) -> Sha256Digest {
        self.pin.blob
    }

    /// Its size in bytes.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// The pin it holds.
    pub fn pin(&self) -> &PinGuard {
        &self.pin
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Puts `bytes` in the cache the way a finished download does.
    pub(crate) fn insert(cache: &Arc<BlobCache>, bytes: &[u8]) -> Result<PinnedBlob, CacheError> {
        let d = Sha256Digest::of(bytes);
        let reservation = cache.reserve(d, bytes.len() as u64)?;
        fs::write(cache.partial_path(&d), bytes).unwrap();
        reservation.commit()
    }

    fn blob(n: u8) -> Vec<u8> {
        vec![n; 100]
    }

    fn open(dir: &Path, limit: u64) -> Arc<BlobCache> {
        Arc::new(BlobCache::open(dir, limit).unwrap())
    }

    fn d(n: u8) -> Sha256Digest {
        Sha256Digest::of(&blob(n))
    }

    #[test]
    fn evicts_least_recently_used_first() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 300);
        for n in 1..=3 {
            drop(insert(&cache, &blob(n)).unwrap());
        }
        // Use 1: now 2 is the least recently used.
        let hit = cache.get(&d(1)).unwrap();
        assert_eq!(std::fs::read(hit.path()).unwrap(), blob(1));
        drop(hit);
        drop(insert(&cache, &blob(4)).unwrap());
        assert!(!cache.contains(&d(2)), "2 was least recently used");
        assert!(cache.contains(&d(1)) && cache.contains(&d(3)) && cache.contains(&d(4)));
        assert!(!cache.blob_path(&d(2)).exists());
        drop(insert(&cache, &blob(5)).unwrap());
        assert!(!cache.contains(&d(3)), "then 3");
        assert!(cache.contains(&d(1)));
        assert_eq!(cache.usage().blob_bytes, 300);
    }

    #[test]
    fn pinned_blobs_are_never_evicted() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 300);
        let pinned = insert(&cache, &blob(1)).unwrap();
        let early_pin = cache.pin(d(2));
        drop(insert(&cache, &blob(2)).unwrap());
        drop(insert(&cache, &blob(3)).unwrap());
        drop(insert(&cache, &blob(4)).unwrap());
        assert!(
            cache.contains(&d(1)) && cache.contains(&d(2)),
            "pinned 1 and 2 stay"
        );
        assert!(
            !cache.contains(&d(3)) && cache.contains(&d(4)),
            "3 was the oldest unpinned"
        );
        assert_eq!(cache.usage().pinned_bytes, 200);
        assert!(matches!(
            cache.remove(&d(1)),
            Err(CacheError::Pinned { .. })
        ));
        // A clone is a second pin: dropping one keeps the blob pinned.
        let clone = pinned.clone();
        drop(pinned);
        drop(insert(&cache, &blob(5)).unwrap());
        assert!(cache.contains(&d(1)));
        drop((clone, early_pin));
        assert_eq!(cache.usage().pinned_bytes, 0);
        drop(insert(&cache, &blob(6)).unwrap());
        assert!(!cache.contains(&d(1)), "unpinned, 1 is evictable again");
    }

    #[test]
    fn pinned_set_over_the_limit_is_a_clear_error() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 300);
        let pins: Vec<_> = (1..=3).map(|n| insert(&cache, &blob(n)).unwrap()).collect();
        let err = insert(&cache, &blob(4)).err().unwrap();
        assert!(
            matches!(
                err,
                CacheError::Full {
                    pinned: 300,
                    needed: 100,
                    ..
                }
            ),
            "{err:?}"
        );
        let text = err.to_string();
        assert!(
            text.starts_with("cache full: 0.0 MiB pinned by running jobs, limit 0.0 MiB;"),
            "{text}"
        );
        assert!(
            text.contains("raise `limits.cache_mib` in worker.json"),
            "{text}"
        );
        assert!(text.contains(&d(4).to_string()), "{text}");
        assert_eq!(cache.usage().blobs, 3, "nothing evicted");
        assert_eq!(
            cache.usage().reserved_bytes,
            0,
            "failed reservation released"
        );
        drop(pins);
        insert(&cache, &blob(4)).unwrap();
    }

    #[test]
    fn blob_larger_than_the_limit_is_refused_up_front() {
        let dir = tempfile::tempdir().unwrap();
        let cache = open(dir.path(), 3 << 20);
        drop(insert(&cache, &blob(1)).unwrap());
        let big = Sha256Digest::of(b"big");
        let err = cache.reserve(big, (3 << 20) + 1).err().unwrap();
        assert!(matches!(err, CacheError::TooLarge { .. }), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains(&big.to_string()) && text.contains("(3 MiB)"),
            "{text}"
        );
        assert!(
            cache.contains(&d(1)),
            "nothing evicted for a blob that can never fit"
        );
        // Growing a reservation past the limit is refused the same way.
        let mut r = cache.reserve(big, 10).unwrap();
        assert!(matches!(
            r.ensure((3 << 20) + 1),
            Err(CacheError::TooLarge { .. })
        ));
        r.ensure(3 << 20).unwrap();
        assert!(
            !cache.contains(&d(1)),
            "room made for the grown reservation"
        );
    }

    #[test]
    fn reopen_keeps_blobs_and_order_and_drops_strays() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = open(dir.path(), 300);
            for n in 1..=3 {
                drop(insert(&cache, &blob(n)).unwrap());
            }
            drop(cache.get(&d(1)).unwrap());
        }
        std::fs::write(dir.path().join("blobs/tmp.123"), b"junk").unwrap();
        std::fs::write(dir.path().join("partial/other"), b"junk").unwrap();
        let bogus_empty = Sha256Digest::of(b"not empty");
        std::fs::write(dir.path().join(format!("blobs/{bogus_empty}")), b"").unwrap();
        let cache = open(dir.path(), 300);
        assert!(
            !dir.path().join("blobs/tmp.123").exists()
                && !dir.path().join("partial/other").exists()
        );
        assert!(!cache.contains(&bogus_empty));
        let usage = cache.usage();
        assert_eq!((usage.blobs, usage.blob_bytes), (3, 300));
        drop(insert(&cache, &blob(4)).unwrap());
        assert!(
            !cache.contains(&d(2)),
            "2 was least recently used before the restart"
        );
        assert!(cache.contains(&d(1)) && cache.contains(&d(3)));
    }

    #[test]
    fn blob_corrupted_on_disk_is_rehashed_and_dropped_on_first_use() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = open(dir.path(), 1000);
            drop(insert(&cache, &blob(1)).unwrap());
            drop(insert(&cache, &blob(2)).unwrap());
        }
        std::fs::write(dir.path().join(format!("blobs/{}", d(1))), vec![9u8; 100]).unwrap();
        let cache = open(dir.path(), 1000);
        assert!(
            cache.contains(&d(1)),
            "sizes match, so it is listed until first use"
        );
        assert!(cache.get(&d(1)).is_none());
        assert!(!cache.contains(&d(1)) && !cache.blob_path(&d(1)).exists());
        assert_eq!(
            std::fs::read(cache.get(&d(2)).unwrap().path()).unwrap(),
            blob(2)
        );
    }

    #[test]
    fn partial_downloads_count_and_are_evictable_but_not_while_reserved() {
        let dir = tempfile::tempdir().unwrap();
        {
            let cache = open(dir.path(), 300);
            let r = cache.reserve(d(1), 100).unwrap();
            std::fs::write(cache.partial_path(&d(1)), &blob(1)[..60]).unwrap();
            drop(r);
            assert_eq!(
                cache.usage().partial_bytes,
                60,
                "an abandoned download is kept and counted"
            );
        }
        let cache = open(dir.path(), 300);
        assert_eq!(cache.usage().partial_bytes, 60, "and survives a restart");
        let r = cache.reserve(d(1), 100).unwrap();
        assert_eq!(
            (cache.usage().partial_bytes, cache.usage().reserved_bytes),
            (0, 100)
        );
        drop(insert(&cache, &blob(2)).unwrap());
        drop(insert(&cache, &blob(3)).unwrap());
        assert!(
            cache.partial_path(&d(1)).exists(),
            "in progress: not evicted"
        );
        drop(r);
        // The abandoned download is now the most recent file; use 2 and 3
        // so it becomes the least recently used.
        drop(cache.get(&d(2)).unwrap());
        drop(cache.get(&d(3)).unwrap());
        drop(insert(&cache, &blob(4)).unwrap());
        assert!(
            !cache.partial_path(&d(1)).exists(),
            "abandoned again: evicted in LRU order"
        );
        assert!(cache.contains(&d(2)) && cache.contains(&d(3)) && cache.contains(&d(4)));
        assert_eq!(cache.usage().partial_bytes, 0);
    }
}
