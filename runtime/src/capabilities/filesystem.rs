//! `wasi:filesystem` for jobs: wasmtime-wasi's implementation, with every
//! byte a plugin writes, every entry it creates and every file it holds
//! open counted against the job's limits *before* the call goes through.
//!
//! A size poll of `/output` cannot see a file that was unlinked while still
//! open, nor a tree too deep to walk; this layer sees every write instead:
//!
//! - **bytes**: each file's high-water mark (the furthest byte any write,
//!   stream write or `set-size` reached) is charged to the job; the space of
//!   a file comes back only once it is unlinked *and* no handle to it is
//!   left, so unlinking an open file and writing on frees nothing;
//! - **entries**: files, folders and links created, minus those removed;
//! - **open files**: OS descriptors held through descriptors or streams.
//!
//! Going over a limit fails the call (`quota`) and stops the job with a
//! clear reason ([`Interruption::OutputQuota`] or
//! [`Interruption::ResourceLimit`]). Symbolic links cannot be created (an
//! output must be a regular file). Everything else is passed through
//! unchanged, so the sandbox rules (preopens, read-only `/input`) stay
//! wasmtime-wasi's.

use std::collections::HashMap;
use std::sync::{Arc, Mutex, PoisonError};

use wasmtime::component::{HasData, Resource};
use wasmtime_wasi::filesystem::{Descriptor, WasiFilesystemCtxView};
use wasmtime_wasi::p2::bindings::filesystem::preopens;
use wasmtime_wasi::p2::bindings::filesystem::types::{
    self, Advice, DescriptorFlags, DescriptorStat, DescriptorType, DirectoryEntry, ErrorCode,
    Filesize, HostDescriptor, HostDirectoryEntryStream, MetadataHashValue, NewTimestamp, OpenFlags,
    PathFlags,
};
use wasmtime_wasi::p2::{
    FsError, FsResult, InputStream, OutputStream, Pollable, StreamError, StreamResult,
};
use wasmtime_wasi_io::bytes::Bytes;
use wasmtime_wasi_io::streams::{DynInputStream, DynOutputStream};

use crate::control::{Interruption, JobControl};

/// Directory listings a job may hold open at once (each holds the whole
/// listing in host memory).
pub const MAX_DIRECTORY_STREAMS: u32 = 16;

/// What the layer holds a job to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FsLimits {
    /// Bytes of files the job's writes may occupy in all.
    pub output_bytes: u64,
    /// Files, folders and links the job may have created at once.
    pub output_entries: u64,
    /// OS file descriptors the job may hold open at once.
    pub open_files: u32,
}

/// A file's identity as wasmtime-wasi hashes it (device and inode).
type InodeKey = (u64, u64);

/// One file the job opened (one OS descriptor, shared by its WASI
/// descriptor and any streams made from it).
struct OpenFile {
    inode: Option<InodeKey>,
    refs: u32,
}

#[derive(Default)]
struct Inode {
    /// Bytes charged: the furthest any write reached.
    charged: u64,
    /// Open files on it.
    handles: u32,
    /// No name is left: its space comes back with its last handle.
    unlinked: bool,
}

#[derive(Default)]
struct Ledger {
    bytes: u64,
    entries: u64,
    open: u32,
    listings: u32,
    next_open: u64,
    files: HashMap<u64, OpenFile>,
    /// Descriptor resource → its open file.
    descriptors: HashMap<u32, u64>,
    inodes: HashMap<InodeKey, Inode>,
}

impl Ledger {
    fn release_inode(&mut self, key: InodeKey) {
        let Some(inode) = self.inodes.get_mut(&key) else {
            return;
        };
        inode.handles = inode.handles.saturating_sub(1);
        if inode.handles == 0 && (inode.unlinked || inode.charged == 0) {
            self.free(key);
        }
    }

    fn free(&mut self, key: InodeKey) {
        if let Some(inode) = self.inodes.remove(&key) {
            self.bytes = self.bytes.saturating_sub(inode.charged);
        }
    }

    fn release_open(&mut self, id: u64) {
        let Some(file) = self.files.get_mut(&id) else {
            return;
        };
        file.refs = file.refs.saturating_sub(1);
        if file.refs == 0 {
            let inode = file.inode;
            self.files.remove(&id);
            self.open = self.open.saturating_sub(1);
            if let Some(key) = inode {
                self.release_inode(key);
            }
        }
    }
}

/// A job's filesystem accounting, shared by its store and its streams.
pub struct OutputLedger {
    limits: FsLimits,
    control: Arc<JobControl>,
    state: Mutex<Ledger>,
}

impl OutputLedger {
    /// A ledger for a job with nothing written yet.
    pub fn new(limits: FsLimits, control: Arc<JobControl>) -> Arc<Self> {
        Arc::new(OutputLedger {
            limits,
            control,
            state: Mutex::default(),
        })
    }

    fn state(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Bytes charged to the job now.
    pub fn bytes(&self) -> u64 {
        self.state().bytes
    }

    /// Entries the job has created (net of removals).
    pub fn entries(&self) -> u64 {
        self.state().entries
    }

    /// OS descriptors the job holds now.
    pub fn open_files(&self) -> u32 {
        self.state().open
    }

    fn refuse(&self, reason: Interruption) -> FsError {
        tracing::warn!(%reason, "stopping job");
        self.control.stop(reason);
        ErrorCode::Quota.into()
    }

    /// Charges a write reaching byte `end` of `inode`.
    fn charge(&self, inode: InodeKey, end: u64) -> Result<(), FsError> {
        let mut state = self.state();
        let charged = state.inodes.get(&inode).map_or(0, |i| i.charged);
        if end <= charged {
            return Ok(());
        }
        let total = state.bytes.saturating_add(end - charged);
        if total > self.limits.output_bytes {
            drop(state);
            let what = format!(
                "{total} bytes written, the limit is {} bytes",
                self.limits.output_bytes
            );
            return Err(self.refuse(Interruption::OutputQuota { what }));
        }
        state.bytes = total;
        state.inodes.entry(inode).or_default().charged = end;
        Ok(())
    }

    fn add_entry(&self) -> Result<(), FsError> {
        let mut state = self.state();
        if state.entries >= self.limits.output_entries {
            drop(state);
            let what = format!(
                "{} files and folders created, the limit is {}",
                self.limits.output_entries + 1,
                self.limits.output_entries
            );
            return Err(self.refuse(Interruption::OutputQuota { what }));
        }
        state.entries += 1;
        Ok(())
    }

    fn remove_entry(&self) {
        let mut state = self.state();
        state.entries = state.entries.saturating_sub(1);
    }

    fn reserve_open(&self) -> Result<(), FsError> {
        let mut state = self.state();
        if state.open >= self.limits.open_files {
            drop(state);
            let what = format!("more than {} files open at once", self.limits.open_files);
            return Err(self.refuse(Interruption::ResourceLimit { what }));
        }
        state.open += 1;
        Ok(())
    }

    fn unreserve_open(&self) {
        let mut state = self.state();
        state.open = state.open.saturating_sub(1);
    }

    /// Records the open file behind descriptor `rep`; returns its id.
    fn opened(&self, rep: u32, inode: Option<InodeKey>) {
        let mut state = self.state();
        state.next_open += 1;
        let id = state.next_open;
        state.files.insert(id, OpenFile { inode, refs: 1 });
        state.descriptors.insert(rep, id);
        if let Some(key) = inode {
            state.inodes.entry(key).or_default().handles += 1;
        }
    }

    /// A new stream on descriptor `rep`'s file: the file stays open until
    /// the stream is dropped too.
    fn stream_of(&self, rep: u32) -> Option<(u64, Option<InodeKey>)> {
        let mut state = self.state();
        let id = *state.descriptors.get(&rep)?;
        let file = state.files.get_mut(&id)?;
        file.refs += 1;
        Some((id, file.inode))
    }

    fn descriptor_dropped(&self, rep: u32) {
        let mut state = self.state();
        if let Some(id) = state.descriptors.remove(&rep) {
            state.release_open(id);
        }
    }

    fn inode_of(&self, rep: u32) -> Option<InodeKey> {
        let state = self.state();
        state
            .descriptors
            .get(&rep)
            .and_then(|id| state.files.get(id))
            .and_then(|f| f.inode)
    }

    /// The last name of `inode` is gone.
    fn unlinked(&self, inode: InodeKey) {
        let mut state = self.state();
        let Some(entry) = state.inodes.get_mut(&inode) else {
            return;
        };
        entry.unlinked = true;
        if entry.handles == 0 {
            state.free(inode);
        }
    }
}

/// What the filesystem host functions see.
pub struct GuardedFs<'a> {
    /// wasmtime-wasi's own view.
    pub inner: WasiFilesystemCtxView<'a>,
    /// The job's ledger.
    pub ledger: Arc<OutputLedger>,
}

/// Marker for [`add_to_linker`].
pub struct GuardedFilesystem;

impl HasData for GuardedFilesystem {
    type Data<'a> = GuardedFs<'a>;
}

/// Links `wasi:filesystem/types` and `preopens` through the ledger.
pub fn add_to_linker<T: Send + 'static>(
    linker: &mut wasmtime::component::Linker<T>,
    getter: fn(&mut T) -> GuardedFs<'_>,
) -> wasmtime::Result<()> {
    types::add_to_linker::<T, GuardedFilesystem>(linker, getter)?;
    preopens::add_to_linker::<T, GuardedFilesystem>(linker, getter)?;
    Ok(())
}

fn borrow<T: 'static>(r: &Resource<T>) -> Resource<T> {
    Resource::new_borrow(r.rep())
}

fn key(hash: MetadataHashValue) -> InodeKey {
    (hash.lower, hash.upper)
}

impl GuardedFs<'_> {
    /// The file `path` names in `dir` (links not followed): its identity
    /// and link count, or `None` if there is nothing there.
    async fn existing(
        &mut self,
        dir: &Resource<Descriptor>,
        path: &str,
    ) -> Option<(InodeKey, DescriptorStat)> {
        let stat = self
            .inner
            .stat_at(borrow(dir), PathFlags::empty(), path.to_string())
            .await
            .ok()?;
        let hash = self
            .inner
            .metadata_hash_at(borrow(dir), PathFlags::empty(), path.to_string())
            .await
            .ok()?;
        Some((key(hash), stat))
    }

    /// The identity of the file behind `fd`, if it is a file.
    async fn file_key(&mut self, fd: &Resource<Descriptor>) -> Option<InodeKey> {
        if !matches!(self.inner.table.get(fd).ok()?, Descriptor::File(_)) {
            return None;
        }
        self.inner.metadata_hash(borrow(fd)).await.ok().map(key)
    }

    fn file_handle(&self, fd: &Resource<Descriptor>) -> Option<Arc<std::fs::File>> {
        match self.inner.table.get(fd).ok()? {
            Descriptor::File(f) => Some(Arc::clone(&f.file)),
            Descriptor::Dir(_) => None,
        }
    }
}

impl types::Host for GuardedFs<'_> {
    fn convert_error_code(&mut self, err: FsError) -> wasmtime::Result<ErrorCode> {
        self.inner.convert_error_code(err)
    }

    fn filesystem_error_code(
        &mut self,
        err: Resource<wasmtime::Error>,
    ) -> wasmtime::Result<Option<ErrorCode>> {
        self.inner.filesystem_error_code(err)
    }
}

impl preopens::Host for GuardedFs<'_> {
    fn get_directories(&mut self) -> wasmtime::Result<Vec<(Resource<Descriptor>, String)>> {
        preopens::Host::get_directories(&mut self.inner)
    }
}

impl HostDescriptor for GuardedFs<'_> {
    async fn advise(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
        len: Filesize,
        advice: Advice,
    ) -> FsResult<()> {
        self.inner.advise(fd, offset, len, advice).await
    }

    async fn sync_data(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        self.inner.sync_data(fd).await
    }

    async fn get_flags(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorFlags> {
        self.inner.get_flags(fd).await
    }

    async fn get_type(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorType> {
        self.inner.get_type(fd).await
    }

    async fn set_size(&mut self, fd: Resource<Descriptor>, size: Filesize) -> FsResult<()> {
        if let Some(inode) = self.ledger.inode_of(fd.rep()) {
            self.ledger.charge(inode, size)?;
        }
        self.inner.set_size(fd, size).await
    }

    async fn set_times(
        &mut self,
        fd: Resource<Descriptor>,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        self.inner.set_times(fd, atim, mtim).await
    }

    async fn read(
        &mut self,
        fd: Resource<Descriptor>,
        len: Filesize,
        offset: Filesize,
    ) -> FsResult<(Vec<u8>, bool)> {
        self.inner.read(fd, len, offset).await
    }

    async fn write(
        &mut self,
        fd: Resource<Descriptor>,
        buf: Vec<u8>,
        offset: Filesize,
    ) -> FsResult<Filesize> {
        if let Some(inode) = self.ledger.inode_of(fd.rep()) {
            self.ledger
                .charge(inode, offset.saturating_add(buf.len() as u64))?;
        }
        self.inner.write(fd, buf, offset).await
    }

    async fn read_directory(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<types::DirectoryEntryStream>> {
        {
            let mut state = self.ledger.state();
            if state.listings >= MAX_DIRECTORY_STREAMS {
                drop(state);
                let what =
                    format!("more than {MAX_DIRECTORY_STREAMS} directory listings open at once");
                return Err(self.ledger.refuse(Interruption::ResourceLimit { what }));
            }
            state.listings += 1;
        }
        let listing = self.inner.read_directory(fd).await;
        if listing.is_err() {
            let mut state = self.ledger.state();
            state.listings = state.listings.saturating_sub(1);
        }
        listing
    }

    async fn sync(&mut self, fd: Resource<Descriptor>) -> FsResult<()> {
        self.inner.sync(fd).await
    }

    async fn create_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.ledger.add_entry()?;
        let created = self.inner.create_directory_at(fd, path).await;
        if created.is_err() {
            self.ledger.remove_entry();
        }
        created
    }

    async fn stat(&mut self, fd: Resource<Descriptor>) -> FsResult<DescriptorStat> {
        self.inner.stat(fd).await
    }

    async fn stat_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<DescriptorStat> {
        self.inner.stat_at(fd, path_flags, path).await
    }

    async fn set_times_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        atim: NewTimestamp,
        mtim: NewTimestamp,
    ) -> FsResult<()> {
        self.inner
            .set_times_at(fd, path_flags, path, atim, mtim)
            .await
    }

    async fn link_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path_flags: PathFlags,
        old_path: String,
        new_descriptor: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        self.ledger.add_entry()?;
        let linked = self
            .inner
            .link_at(fd, old_path_flags, old_path, new_descriptor, new_path)
            .await;
        if linked.is_err() {
            self.ledger.remove_entry();
        }
        linked
    }

    async fn open_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
        oflags: OpenFlags,
        flags: DescriptorFlags,
    ) -> FsResult<Resource<Descriptor>> {
        let creates =
            oflags.contains(OpenFlags::CREATE) && self.existing(&fd, &path).await.is_none();
        if creates {
            self.ledger.add_entry()?;
        }
        if let Err(e) = self.ledger.reserve_open() {
            if creates {
                self.ledger.remove_entry();
            }
            return Err(e);
        }
        match self
            .inner
            .open_at(fd, path_flags, path, oflags, flags)
            .await
        {
            Ok(opened) => {
                let inode = self.file_key(&opened).await;
                self.ledger.opened(opened.rep(), inode);
                Ok(opened)
            }
            Err(e) => {
                self.ledger.unreserve_open();
                if creates {
                    self.ledger.remove_entry();
                }
                Err(e)
            }
        }
    }

    fn drop(&mut self, fd: Resource<Descriptor>) -> wasmtime::Result<()> {
        let rep = fd.rep();
        HostDescriptor::drop(&mut self.inner, fd)?;
        self.ledger.descriptor_dropped(rep);
        Ok(())
    }

    async fn readlink_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<String> {
        self.inner.readlink_at(fd, path).await
    }

    async fn remove_directory_at(
        &mut self,
        fd: Resource<Descriptor>,
        path: String,
    ) -> FsResult<()> {
        self.inner.remove_directory_at(fd, path).await?;
        self.ledger.remove_entry();
        Ok(())
    }

    async fn rename_at(
        &mut self,
        fd: Resource<Descriptor>,
        old_path: String,
        new_fd: Resource<Descriptor>,
        new_path: String,
    ) -> FsResult<()> {
        let source = self.existing(&fd, &old_path).await.map(|(key, _)| key);
        let replaced = self.existing(&new_fd, &new_path).await;
        self.inner.rename_at(fd, old_path, new_fd, new_path).await?;
        if let Some((key, stat)) = replaced
            && Some(key) != source
        {
            self.ledger.remove_entry();
            if stat.type_ != DescriptorType::Directory && stat.link_count <= 1 {
                self.ledger.unlinked(key);
            }
        }
        Ok(())
    }

    async fn symlink_at(
        &mut self,
        _fd: Resource<Descriptor>,
        _src_path: String,
        _dest_path: String,
    ) -> FsResult<()> {
        // Outputs are regular files: a link could only point a reader of
        // the outputs somewhere else.
        Err(ErrorCode::NotPermitted.into())
    }

    async fn unlink_file_at(&mut self, fd: Resource<Descriptor>, path: String) -> FsResult<()> {
        let target = self.existing(&fd, &path).await;
        self.inner.unlink_file_at(fd, path).await?;
        self.ledger.remove_entry();
        if let Some((key, stat)) = target
            && stat.link_count <= 1
        {
            self.ledger.unlinked(key);
        }
        Ok(())
    }

    fn read_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<DynInputStream>> {
        let rep = fd.rep();
        let stream = self.inner.read_via_stream(fd, offset)?;
        let Some((open, _)) = self.ledger.stream_of(rep) else {
            return Ok(stream);
        };
        let inner = self.inner.table.delete(stream)?;
        let held: DynInputStream = Box::new(HeldInput {
            inner,
            ledger: Arc::clone(&self.ledger),
            open,
        });
        Ok(self.inner.table.push(held)?)
    }

    fn write_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
        offset: Filesize,
    ) -> FsResult<Resource<DynOutputStream>> {
        let file = self.file_handle(&fd);
        let rep = fd.rep();
        let stream = self.inner.write_via_stream(fd, offset)?;
        self.metered(stream, rep, file, Some(offset))
    }

    fn append_via_stream(
        &mut self,
        fd: Resource<Descriptor>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let file = self.file_handle(&fd);
        let rep = fd.rep();
        let stream = self.inner.append_via_stream(fd)?;
        self.metered(stream, rep, file, None)
    }

    async fn is_same_object(
        &mut self,
        a: Resource<Descriptor>,
        b: Resource<Descriptor>,
    ) -> wasmtime::Result<bool> {
        self.inner.is_same_object(a, b).await
    }

    async fn metadata_hash(&mut self, fd: Resource<Descriptor>) -> FsResult<MetadataHashValue> {
        self.inner.metadata_hash(fd).await
    }

    async fn metadata_hash_at(
        &mut self,
        fd: Resource<Descriptor>,
        path_flags: PathFlags,
        path: String,
    ) -> FsResult<MetadataHashValue> {
        self.inner.metadata_hash_at(fd, path_flags, path).await
    }
}

impl GuardedFs<'_> {
    /// Wraps a new output stream on descriptor `rep` so its writes are charged.
    fn metered(
        &mut self,
        stream: Resource<DynOutputStream>,
        rep: u32,
        file: Option<Arc<std::fs::File>>,
        position: Option<u64>,
    ) -> FsResult<Resource<DynOutputStream>> {
        let (Some((open, Some(inode))), Some(file)) = (self.ledger.stream_of(rep), file) else {
            return Ok(stream);
        };
        let inner = self.inner.table.delete(stream)?;
        let metered: DynOutputStream = Box::new(MeteredOutput {
            inner,
            ledger: Arc::clone(&self.ledger),
            open,
            inode,
            file,
            position,
        });
        Ok(self.inner.table.push(metered)?)
    }
}

impl HostDirectoryEntryStream for GuardedFs<'_> {
    async fn read_directory_entry(
        &mut self,
        stream: Resource<types::DirectoryEntryStream>,
    ) -> FsResult<Option<DirectoryEntry>> {
        self.inner.read_directory_entry(stream).await
    }

    fn drop(&mut self, stream: Resource<types::DirectoryEntryStream>) -> wasmtime::Result<()> {
        HostDirectoryEntryStream::drop(&mut self.inner, stream)?;
        let mut state = self.ledger.state();
        state.listings = state.listings.saturating_sub(1);
        Ok(())
    }
}

/// An output stream on a job's file whose every write is charged first.
struct MeteredOutput {
    inner: DynOutputStream,
    ledger: Arc<OutputLedger>,
    open: u64,
    inode: InodeKey,
    file: Arc<std::fs::File>,
    /// Where the next write lands; `None` for an appending stream.
    position: Option<u64>,
}

impl MeteredOutput {
    fn charge(&mut self, len: usize) -> StreamResult<()> {
        let start = match self.position {
            Some(position) => position,
            None => self
                .file
                .metadata()
                .map_err(|e| StreamError::LastOperationFailed(e.into()))?
                .len(),
        };
        let end = start.saturating_add(len as u64);
        self.ledger.charge(self.inode, end).map_err(|_| {
            StreamError::LastOperationFailed(
                std::io::Error::other("the job's output quota is exhausted").into(),
            )
        })?;
        if let Some(position) = &mut self.position {
            *position = end;
        }
        Ok(())
    }
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for MeteredOutput {
    async fn ready(&mut self) {
        self.inner.ready().await;
    }
}

#[wasmtime_wasi_io::async_trait]
impl OutputStream for MeteredOutput {
    fn write(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        self.inner.write(bytes)
    }

    fn flush(&mut self) -> StreamResult<()> {
        self.inner.flush()
    }

    fn check_write(&mut self) -> StreamResult<usize> {
        self.inner.check_write()
    }

    async fn blocking_write_and_flush(&mut self, bytes: Bytes) -> StreamResult<()> {
        self.charge(bytes.len())?;
        self.inner.blocking_write_and_flush(bytes).await
    }

    fn write_zeroes(&mut self, nelem: usize) -> StreamResult<()> {
        self.charge(nelem)?;
        self.inner.write_zeroes(nelem)
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
    }
}

impl Drop for MeteredOutput {
    fn drop(&mut self) {
        self.ledger.state().release_open(self.open);
    }
}

/// An input stream that keeps its file counted as open until dropped.
struct HeldInput {
    inner: DynInputStream,
    ledger: Arc<OutputLedger>,
    open: u64,
}

#[wasmtime_wasi_io::async_trait]
impl Pollable for HeldInput {
    async fn ready(&mut self) {
        self.inner.ready().await;
    }
}

#[wasmtime_wasi_io::async_trait]
impl InputStream for HeldInput {
    fn read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.inner.read(size)
    }

    async fn blocking_read(&mut self, size: usize) -> StreamResult<Bytes> {
        self.inner.blocking_read(size).await
    }

    fn skip(&mut self, nelem: usize) -> StreamResult<usize> {
        self.inner.skip(nelem)
    }

    async fn blocking_skip(&mut self, nelem: usize) -> StreamResult<usize> {
        self.inner.blocking_skip(nelem).await
    }

    async fn cancel(&mut self) {
        self.inner.cancel().await;
    }
}

impl Drop for HeldInput {
    fn drop(&mut self) {
        self.ledger.state().release_open(self.open);
    }
}
