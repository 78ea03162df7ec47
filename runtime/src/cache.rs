//! Compiled-component cache on disk.
//!
//! Compiling a component with Cranelift takes ~100 ms per 100 KB; loading a
//! compiled one takes well under a millisecond. Entries are keyed by the
//! component's sha256 and the engine's compatibility hash (wasmtime version
//! and every setting that changes generated code), so an engine upgrade or a
//! config change simply misses.
//!
//! Loading compiled code is trusting it, so an entry is only used when it
//! carries a valid HMAC-SHA256 made with this cache's secret key (a file
//! created on first use, mode 0600, in a folder that only the owner can
//! write). A corrupt, truncated, foreign or tampered entry fails the check,
//! is deleted and rebuilt; it is never deserialized.

use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use hmac::{Hmac, Mac};
use sha2::{Digest as _, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

use pictor_protocol::digest::Sha256Digest;

const MAGIC: &[u8; 8] = b"PICTORCC";
const FORMAT_VERSION: u32 = 1;
const HEADER_LEN: usize = 8 + 4 + 32;
const KEY_FILE: &str = "cache.key";

/// Why the cache could not be opened or written.
#[derive(Debug, thiserror::Error)]
pub enum ComponentCacheError {
    /// The folder or key file could not be created or read.
    #[error("cannot use compiled-component cache at {path}: {source}")]
    Io {
        /// The file or folder involved.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// The folder can be written by other users, so its entries cannot be trusted.
    #[error(
        "compiled-component cache folder {0} is writable by other users; \
         fix with `chmod go-w {0}` (or choose another cache folder)"
    )]
    Insecure(PathBuf),
}

/// The on-disk cache of compiled components for one engine.
pub struct ComponentCache {
    dir: PathBuf,
    key: [u8; 32],
    engine_hash: String,
}

impl ComponentCache {
    /// Opens (creating if needed) the cache in `dir` for `engine`.
    pub fn open(dir: &Path, engine: &Engine) -> Result<Self, ComponentCacheError> {
        let io_err = |path: &Path| {
            let path = path.to_path_buf();
            move |source| ComponentCacheError::Io { path, source }
        };
        create_private_dir(dir).map_err(io_err(dir))?;
        check_not_shared(dir)?;
        let key_path = dir.join(KEY_FILE);
        let key = read_or_create_key(&key_path).map_err(io_err(&key_path))?;
        Ok(ComponentCache {
            dir: dir.to_path_buf(),
            key,
            engine_hash: engine_hash(engine),
        })
    }

    /// The folder this cache lives in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn entry_path(&self, digest: &Sha256Digest) -> PathBuf {
        self.dir
            .join(format!("{digest}-{}.cwasm", self.engine_hash))
    }

    fn mac(&self, digest: &Sha256Digest, payload: &[u8]) -> [u8; 32] {
        // HMAC keys of any length are accepted; this cannot fail.
        let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        mac.update(digest.as_bytes());
        mac.update(self.engine_hash.as_bytes());
        mac.update(payload);
        mac.finalize().into_bytes().into()
    }

    /// The compiled component for `digest`, if a valid entry exists. An
    /// invalid entry is removed (and logged) so the caller recompiles.
    pub fn load(&self, engine: &Engine, digest: &Sha256Digest) -> Option<Component> {
        let path = self.entry_path(digest);
        let bytes = match std::fs::read(&path) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(path = %path.display(), error = %e, "cannot read cache entry; recompiling");
                return None;
            }
        };
        let verified = self.verify(digest, &bytes);
        let component = match verified {
            Ok(payload) => {
                // SAFETY: `payload` was produced by `Component::serialize` on
                // an engine with the same compatibility hash, and its HMAC
                // proves it came from this cache, not from outside.
                #[allow(unsafe_code)]
                let result = unsafe { Component::deserialize(engine, payload) };
                result.map_err(|e| e.to_string())
            }
            Err(reason) => Err(reason.to_string()),
        };
        match component {
            Ok(component) => Some(component),
            Err(reason) => {
                tracing::warn!(path = %path.display(), %reason, "discarding invalid cache entry; recompiling");
                let _ = std::fs::remove_file(&path);
                None
            }
        }
    }

    fn verify<'a>(&self, digest: &Sha256Digest, bytes: &'a [u8]) -> Result<&'a [u8], &'static str> {
        if bytes.len() < HEADER_LEN || &bytes[..8] != MAGIC {
            return Err("not a pictor cache entry");
        }
        if bytes[8..12] != FORMAT_VERSION.to_le_bytes() {
            return Err("cache entry from another format version");
        }
        let (mac, payload) = bytes[12..].split_at(32);
        let mut check = <Hmac<Sha256> as Mac>::new_from_slice(&self.key)
            .unwrap_or_else(|_| unreachable!("HMAC accepts any key length"));
        check.update(digest.as_bytes());
        check.update(self.engine_hash.as_bytes());
        check.update(payload);
        check
            .verify_slice(mac)
            .map_err(|_| "cache entry failed its integrity check")?;
        Ok(payload)
    }

    /// Stores a serialized component (from `Component::serialize`),
    /// atomically: readers see the old entry, no entry, or the whole new one.
    pub fn store(
        &self,
        digest: &Sha256Digest,
        serialized: &[u8],
    ) -> Result<(), ComponentCacheError> {
        let path = self.entry_path(digest);
        let io_err = |source| ComponentCacheError::Io {
            path: path.clone(),
            source,
        };
        let mut tmp = tempfile::NamedTempFile::new_in(&self.dir).map_err(io_err)?;
        tmp.write_all(MAGIC).map_err(io_err)?;
        tmp.write_all(&FORMAT_VERSION.to_le_bytes())
            .map_err(io_err)?;
        tmp.write_all(&self.mac(digest, serialized))
            .map_err(io_err)?;
        tmp.write_all(serialized).map_err(io_err)?;
        tmp.as_file().sync_all().map_err(io_err)?;
        tmp.persist(&path).map_err(|e| io_err(e.error))?;
        Ok(())
    }
}

/// A short hex digest of the engine's compatibility hash.
fn engine_hash(engine: &Engine) -> String {
    struct ShaHasher(Sha256);
    impl Hasher for ShaHasher {
        fn finish(&self) -> u64 {
            0
        }
        fn write(&mut self, bytes: &[u8]) {
            self.0.update(bytes);
        }
    }
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex::encode(&hasher.0.finalize()[..8])
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

fn check_not_shared(dir: &Path) -> Result<(), ComponentCacheError> {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let meta = std::fs::metadata(dir).map_err(|source| ComponentCacheError::Io {
            path: dir.to_path_buf(),
            source,
        })?;
        if meta.permissions().mode() & 0o022 != 0 {
            return Err(ComponentCacheError::Insecure(dir.to_path_buf()));
        }
    }
    Ok(())
}

fn read_or_create_key(path: &Path) -> std::io::Result<[u8; 32]> {
    if let Ok(bytes) = std::fs::read(path) {
        if let Ok(key) = <[u8; 32]>::try_from(bytes.as_slice()) {
            return Ok(key);
        }
        tracing::warn!(path = %path.display(), "cache key file is malformed; making a new key (old entries will be rebuilt)");
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).map_err(std::io::Error::other)?;
    let dir = path.parent().unwrap_or(Path::new("."));
    let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        tmp.as_file()
            .set_permissions(std::fs::Permissions::from_mode(0o600))?;
    }
    tmp.write_all(&key)?;
    tmp.as_file().sync_all()?;
    tmp.persist(path).map_err(|e| e.error)?;
    Ok(key)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny_component(engine: &Engine) -> wasmtime::Result<(Sha256Digest, Component)> {
        let wat = b"(component (core module (func (export \"f\"))))";
        let bytes = wat::parse_bytes(wat)
            .map_err(wasmtime::Error::new)?
            .into_owned();
        Ok((Sha256Digest::of(&bytes), Component::new(engine, &bytes)?))
    }

    #[test]
    fn round_trip_then_tampered_and_foreign_entries_are_discarded() -> wasmtime::Result<()> {
        let engine = super::super::engine::build_engine()?;
        let dir = tempfile::tempdir()?;
        let cache = ComponentCache::open(dir.path(), &engine)?;
        let (digest, component) = tiny_component(&engine)?;
        assert!(
            cache.load(&engine, &digest).is_none(),
            "empty cache must miss"
        );

        cache.store(&digest, &component.serialize()?)?;
        assert!(
            cache.load(&engine, &digest).is_some(),
            "stored entry must hit"
        );

        // Flip one byte of the compiled code: the MAC check must reject it.
        let path = cache.entry_path(&digest);
        let mut bytes = std::fs::read(&path)?;
        let last = bytes.len() - 1;
        bytes[last] ^= 0xff;
        std::fs::write(&path, &bytes)?;
        assert!(
            cache.load(&engine, &digest).is_none(),
            "tampered entry must miss"
        );
        assert!(!path.exists(), "tampered entry must be deleted");

        // An entry made by another cache (another key) is foreign.
        let other_dir = tempfile::tempdir()?;
        let other = ComponentCache::open(other_dir.path(), &engine)?;
        other.store(&digest, &component.serialize()?)?;
        std::fs::copy(other.entry_path(&digest), &path)?;
        assert!(
            cache.load(&engine, &digest).is_none(),
            "foreign entry must miss"
        );

        // Garbage and truncation.
        std::fs::write(&path, b"PICTORCC")?;
        assert!(cache.load(&engine, &digest).is_none());
        Ok(())
    }

    #[cfg(unix)]
    #[test]
    fn world_writable_cache_folder_is_refused() -> Result<(), Box<dyn std::error::Error>> {
        use std::os::unix::fs::PermissionsExt;
        let engine = super::super::engine::build_engine()?;
        let dir = tempfile::tempdir()?;
        std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o777))?;
        let err = ComponentCache::open(dir.path(), &engine)
            .err()
            .ok_or("open must fail")?;
        assert!(err.to_string().contains("chmod go-w"), "{err}");
        Ok(())
    }
}
