//! `pictor:plugin/checkpoint`: one opaque, durable blob per job.

use std::io::Write;
use std::path::PathBuf;

use wasmtime::StoreContextMut;
use wasmtime::component::{HasData, Linker, WasmList};

use crate::bindings::pictor::plugin::checkpoint::{self, CheckpointError, Host};

/// Where a job's checkpoint lives.
#[derive(Debug, Clone)]
pub enum CheckpointStore {
    /// In memory, for this run only.
    Memory(Option<Vec<u8>>),
    /// In a file, replaced atomically (write, fsync, rename) on each save, so
    /// a crash leaves either the old or the new checkpoint.
    File(PathBuf),
}

/// Per-job state of the checkpoint capability.
pub struct CheckpointState {
    store: CheckpointStore,
    limit: u64,
    saves: u64,
}

impl CheckpointState {
    /// State over `store`, refusing blobs larger than `limit` bytes.
    pub fn new(store: CheckpointStore, limit: u64) -> Self {
        CheckpointState {
            store,
            limit,
            saves: 0,
        }
    }

    /// How many checkpoints the job saved.
    pub fn saves(&self) -> u64 {
        self.saves
    }

    fn write_file(path: &PathBuf, data: &[u8]) -> std::io::Result<()> {
        let dir = path
            .parent()
            .filter(|p| !p.as_os_str().is_empty())
            .unwrap_or(std::path::Path::new("."));
        std::fs::create_dir_all(dir)?;
        let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
        tmp.write_all(data)?;
        tmp.as_file().sync_all()?;
        tmp.persist(path).map_err(|e| e.error)?;
        // The rename is durable only once its folder is synced.
        std::fs::File::open(dir)?.sync_all()?;
        crate::faults::crash_point("checkpoint-after-write");
        Ok(())
    }
}

impl Host for CheckpointState {
    fn save(&mut self, data: Vec<u8>) -> wasmtime::Result<Result<(), CheckpointError>> {
        if data.len() as u64 > self.limit {
            return Ok(Err(CheckpointError::TooLarge(self.limit)));
        }
        match &mut self.store {
            CheckpointStore::Memory(slot) => *slot = Some(data),
            CheckpointStore::File(path) => {
                if let Err(e) = Self::write_file(path, &data) {
                    tracing::warn!(path = %path.display(), error = %e, "checkpoint not saved");
                    return Ok(Err(CheckpointError::Storage(e.to_string())));
                }
            }
        }
        self.saves += 1;
        Ok(Ok(()))
    }

    fn load(&mut self) -> wasmtime::Result<Option<Vec<u8>>> {
        Ok(match &self.store {
            CheckpointStore::Memory(slot) => slot.clone(),
            CheckpointStore::File(path) => match std::fs::read(path) {
                Ok(data) => Some(data),
                Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
                Err(e) => {
                    tracing::warn!(path = %path.display(), error = %e, "checkpoint unreadable; starting fresh");
                    None
                }
            },
        })
    }
}

struct HasCheckpoint;

impl HasData for HasCheckpoint {
    type Data<'a> = &'a mut CheckpointState;
}

/// The interface's name as components import it.
pub const INTERFACE: &str = "pictor:plugin/checkpoint@0.2.0";

/// Links `pictor:plugin/checkpoint` into `linker`, reaching the job's state
/// through `getter`; `save` checks the size before the blob leaves guest
/// memory and writes it from there (no copy).
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> &mut CheckpointState,
) -> wasmtime::Result<()> {
    checkpoint::add_to_linker::<T, HasCheckpoint>(linker, getter)?;
    linker.allow_shadowing(true);
    let linked = linker.instance(INTERFACE).and_then(|mut checkpoint| {
        checkpoint.func_wrap("save", move |store, (data,)| {
            save_borrowed(store, data, getter)
        })
    });
    linker.allow_shadowing(false);
    linked
}

/// `checkpoint.save` straight from guest memory.
fn save_borrowed<T>(
    mut store: StoreContextMut<'_, T>,
    data: WasmList<u8>,
    getter: fn(&mut T) -> &mut CheckpointState,
) -> wasmtime::Result<(Result<(), CheckpointError>,)> {
    let state = getter(store.data_mut());
    if data.len() as u64 > state.limit {
        return Ok((Err(CheckpointError::TooLarge(state.limit)),));
    }
    let file = match &state.store {
        CheckpointStore::File(path) => Some(path.clone()),
        CheckpointStore::Memory(_) => None,
    };
    let saved = match file {
        Some(path) => {
            let written = CheckpointState::write_file(&path, data.as_le_slice(&store));
            written.map(|()| None).map_err(|e| {
                tracing::warn!(path = %path.display(), error = %e, "checkpoint not saved");
                CheckpointError::Storage(e.to_string())
            })
        }
        None => Ok(Some(data.as_le_slice(&store).to_vec())),
    };
    let state = getter(store.data_mut());
    Ok((saved.map(|kept| {
        if let Some(blob) = kept {
            state.store = CheckpointStore::Memory(Some(blob));
        }
        state.saves += 1;
    }),))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_checkpoint_survives_a_new_state_and_quota_is_typed() -> wasmtime::Result<()> {
        let dir = tempfile::tempdir()?;
        let path = dir.path().join("job.ckpt");
        let mut state = CheckpointState::new(CheckpointStore::File(path.clone()), 8);
        assert_eq!(state.load()?, None);
        assert!(state.save(b"step=1".to_vec())?.is_ok());
        assert!(state.save(b"step=2".to_vec())?.is_ok());
        assert!(matches!(
            state.save(vec![0; 9])?,
            Err(CheckpointError::TooLarge(8))
        ));
        let mut next_attempt = CheckpointState::new(CheckpointStore::File(path), 8);
        assert_eq!(next_attempt.load()?, Some(b"step=2".to_vec()));
        assert_eq!(state.saves(), 2);
        Ok(())
    }
}
