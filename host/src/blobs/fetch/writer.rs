//! Writing a download to its partial file on one thread while another
//! hashes the same bytes.

use std::io::{self, IoSlice, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::Arc;

use sha2::{Digest as _, Sha256};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::Flight;

/// Bytes per batch handed to the writer and hasher threads.
const BATCH_BYTES: usize = 256 << 10;
/// Batches queued per thread (8 MiB): deep enough that a hasher or writer
/// thread descheduled for a moment does not stall the socket reads.
const QUEUE_BATCHES: usize = 32;

/// Appends chunks to a file on one blocking thread while another hashes
/// them, so hashing overlaps both the network and the disk.
pub(super) struct PartWriter<B> {
    batch: Vec<B>,
    batch_bytes: usize,
    to_file: mpsc::Sender<Arc<Vec<B>>>,
    to_hasher: Option<mpsc::Sender<Arc<Vec<B>>>>,
    file_task: JoinHandle<io::Result<u64>>,
    hash_task: Option<JoinHandle<Sha256>>,
}

impl<B: AsRef<[u8]> + Send + Sync + 'static> PartWriter<B> {
    /// Writes `path` from `offset` on (truncating anything after it),
    /// hashing into `hasher` if given. The writer thread holds `flight`
    /// until its last write, so that if the download is cancelled the
    /// next one for the digest waits for the file to settle.
    pub(super) fn start(
        path: PathBuf,
        offset: u64,
        hasher: Option<Sha256>,
        flight: Option<Flight>,
    ) -> Self {
        let (to_file, mut file_rx) = mpsc::channel::<Arc<Vec<B>>>(QUEUE_BATCHES);
        let file_task = tokio::task::spawn_blocking(move || {
            let _flight = flight;
            let mut file = std::fs::OpenOptions::new()
                .create(true)
                .write(true)
                .truncate(false)
                .open(&path)?;
            file.set_len(offset)?;
            file.seek(SeekFrom::Start(offset))?;
            let mut len = offset;
            while let Some(batch) = file_rx.blocking_recv() {
                len += write_batch(&mut file, &batch)?;
            }
            Ok(len)
        });
        let (to_hasher, hash_task) = match hasher {
            None => (None, None),
            Some(mut hasher) => {
                let (tx, mut rx) = mpsc::channel::<Arc<Vec<B>>>(QUEUE_BATCHES);
                let task = tokio::task::spawn_blocking(move || {
                    while let Some(batch) = rx.blocking_recv() {
                        for chunk in batch.iter() {
                            hasher.update(chunk.as_ref());
                        }
                    }
                    hasher
                });
                (Some(tx), Some(task))
            }
        };
        PartWriter {
            batch: Vec::new(),
            batch_bytes: 0,
            to_file,
            to_hasher,
            file_task,
            hash_task,
        }
    }

    /// Queues a chunk; false if the writer thread has stopped (an I/O
    /// error that [`PartWriter::finish`] returns).
    pub(super) async fn push(&mut self, chunk: B) -> bool {
        self.batch_bytes += chunk.as_ref().len();
        self.batch.push(chunk);
        if self.batch_bytes < BATCH_BYTES {
            return true;
        }
        self.send().await
    }

    async fn send(&mut self) -> bool {
        let batch = Arc::new(std::mem::take(&mut self.batch));
        self.batch_bytes = 0;
        let mut alive = self.to_file.send(Arc::clone(&batch)).await.is_ok();
        if let Some(to_hasher) = &self.to_hasher {
            alive &= to_hasher.send(batch).await.is_ok();
        }
        alive
    }

    /// Writes what is queued and returns the file's length and the hash
    /// state.
    pub(super) async fn finish(mut self) -> io::Result<(u64, Option<Sha256>)> {
        if !self.batch.is_empty() {
            self.send().await;
        }
        let PartWriter {
            to_file,
            to_hasher,
            file_task,
            hash_task,
            ..
        } = self;
        drop((to_file, to_hasher));
        let len = file_task.await.map_err(io::Error::other)??;
        let hasher = match hash_task {
            Some(task) => Some(task.await.map_err(io::Error::other)?),
            None => None,
        };
        Ok((len, hasher))
    }
}

/// Writes a batch of chunks with vectored writes (no copy); returns its
/// length.
fn write_batch<B: AsRef<[u8]>>(file: &mut std::fs::File, batch: &[B]) -> io::Result<u64> {
    let mut slices: Vec<IoSlice<'_>> = batch
        .iter()
        .map(|chunk| IoSlice::new(chunk.as_ref()))
        .collect();
    let total = slices.iter().map(|s| s.len() as u64).sum();
    let mut rest = &mut slices[..];
    while !rest.is_empty() {
        let n = file.write_vectored(rest)?;
        if n == 0 {
            return Err(io::ErrorKind::WriteZero.into());
        }
        IoSlice::advance_slices(&mut rest, n);
    }
    Ok(total)
}
