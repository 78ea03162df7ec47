//! The one-copy path of `buffer.write` and `buffer.read`, linked in place of
//! the bindgen versions (which copy twice: once into an owned `Vec`, once
//! more into wgpu or the guest).
//!
//! It leans on wasmtime's doc-hidden `component::__internal` items:
//! [`MappedBytes`] implements `ComponentType` and `Lower` by delegating to
//! `[u8]`'s own implementations, so a mapped staging buffer is lowered as
//! the guest's `list<u8>` straight from the mapping. The tests pin the ABI
//! this relies on, so a wasmtime upgrade that changes it fails here first.

use std::sync::Arc;

use wasmtime::StoreContextMut;
use wasmtime::component::__internal::{
    CanonicalAbiInfo, InstanceType, InterfaceType, LowerContext,
};
use wasmtime::component::{ComponentType, Lower, Resource, WasmList};

use super::GpuView;
use super::device::STAGING_FLUSH_BYTES;
use super::host::{blocking, check_transfer, map_for_read, wait, write_bytes};
use super::session::GpuBuffer;
use crate::bindings::pictor::plugin::gpu::GpuError;

/// The future a one-copy host function returns.
type DirectFuture<'a, R> =
    Box<dyn std::future::Future<Output = wasmtime::Result<(Result<R, GpuError>,)>> + Send + 'a>;

/// `buffer.write` with one copy: guest memory → wgpu staging memory.
///
/// Linked in place of the bindgen version of [`HostBuffer::write`](crate::bindings::pictor::plugin::gpu::HostBuffer::write), which
/// receives the data as an owned `Vec` (a first copy out of guest memory)
/// before `write_buffer` copies it again. Runs on the calling thread: it is a
/// memcpy into memory wgpu already mapped, nothing waits on the GPU.
///
/// Staged bytes are counted per device: past [`STAGING_FLUSH_BYTES`] the
/// host submits them (and waits, on a blocking thread) before staging more,
/// so writes without a `submit` cannot grow host memory without bound.
pub(super) fn write_direct<T: Send>(
    mut store: StoreContextMut<'_, T>,
    (buffer, offset, data): (Resource<GpuBuffer>, u64, WasmList<u8>),
    getter: fn(&mut T) -> GpuView<'_>,
) -> DirectFuture<'_, ()> {
    Box::new(async move {
        let view = getter(store.data_mut());
        let timeout = view.session.quota.submission;
        let len = data.len() as u64;
        if let Err(e) = check_transfer("write", len) {
            return Ok((Err(e),));
        }
        let (device, alloc) = match view.access(&buffer, "write", offset, len)? {
            Ok(target) => target,
            Err(e) => return Ok((Err(e),)),
        };
        if device
            .staged
            .load(std::sync::atomic::Ordering::SeqCst)
            .saturating_add(len)
            > STAGING_FLUSH_BYTES
        {
            let flushing = Arc::clone(&device);
            blocking(move || {
                let index = flushing.queue.submit(std::iter::empty());
                wait(&flushing, index, timeout)
            })
            .await?
            .map_err(wasmtime::Error::new)?;
        }
        device
            .staged
            .fetch_add(len, std::sync::atomic::Ordering::SeqCst);
        Ok((write_bytes(
            &device,
            &alloc,
            offset,
            data.as_le_slice(&store),
        ),))
    })
}

/// `buffer.read` with one copy: wgpu's mapped staging memory → guest memory.
///
/// Linked in place of the bindgen version of [`HostBuffer::read`](crate::bindings::pictor::plugin::gpu::HostBuffer::read), which
/// must return an owned `Vec` (a first copy out of the mapping) that
/// wasmtime then copies into the guest. Here the mapping itself is lowered
/// as the `list<u8>` result. The GPU wait runs on a blocking thread.
pub(super) fn read_direct<T: Send>(
    mut store: StoreContextMut<'_, T>,
    (buffer, offset, size): (Resource<GpuBuffer>, u64, u64),
    getter: fn(&mut T) -> GpuView<'_>,
) -> DirectFuture<'_, MappedBytes> {
    Box::new(async move {
        let view = getter(store.data_mut());
        let timeout = view.session.quota.submission;
        if let Err(e) = check_transfer("read", size) {
            return Ok((Err(e),));
        }
        let (device, alloc) = match view.access(&buffer, "read", offset, size)? {
            Ok(target) => target,
            Err(e) => return Ok((Err(e),)),
        };
        if size == 0 {
            return Ok((Ok(MappedBytes(None)),));
        }
        match blocking(move || map_for_read(&device, &alloc, offset, size, timeout)).await? {
            Ok(result) => Ok((result,)),
            Err(fault) => Err(wasmtime::Error::new(fault)),
        }
    })
}

/// A mapped staging buffer whose bytes become a guest `list<u8>`; unmapped
/// and freed when dropped (after lowering).
pub(crate) struct MappedBytes(Option<(wgpu::BufferView, wgpu::Buffer)>);

impl MappedBytes {
    /// The bytes of `view`, a mapping of `staging`.
    pub(super) fn new(view: wgpu::BufferView, staging: wgpu::Buffer) -> Self {
        MappedBytes(Some((view, staging)))
    }

    /// The mapped bytes (none for an empty read).
    pub(super) fn bytes(&self) -> &[u8] {
        self.0.as_ref().map_or(&[], |(view, _)| &view[..])
    }
}

impl Drop for MappedBytes {
    fn drop(&mut self) {
        if let Some((view, staging)) = self.0.take() {
            drop(view);
            staging.unmap();
            staging.destroy();
        }
    }
}

// SAFETY: every item delegates to wasmtime's own implementation for `[u8]`,
// so this type's ABI, type check and lowering are exactly a `list<u8>`'s.
#[allow(unsafe_code)]
unsafe impl ComponentType for MappedBytes {
    type Lower = <[u8] as ComponentType>::Lower;
    const ABI: CanonicalAbiInfo = <[u8] as ComponentType>::ABI;

    fn typecheck(ty: &InterfaceType, types: &InstanceType<'_>) -> wasmtime::Result<()> {
        <[u8] as ComponentType>::typecheck(ty, types)
    }
}

// SAFETY: as above, delegating to `[u8]`'s `Lower`.
#[allow(unsafe_code)]
unsafe impl Lower for MappedBytes {
    fn linear_lower_to_flat<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        dst: &mut std::mem::MaybeUninit<Self::Lower>,
    ) -> wasmtime::Result<()> {
        self.bytes().linear_lower_to_flat(cx, ty, dst)
    }

    fn linear_lower_to_memory<T>(
        &self,
        cx: &mut LowerContext<'_, T>,
        ty: InterfaceType,
        offset: usize,
    ) -> wasmtime::Result<()> {
        self.bytes().linear_lower_to_memory(cx, ty, offset)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::bindings::pictor::plugin::gpu::{BufferUsage, Host, HostBuffer};
    use crate::capabilities::gpu::{AdapterChoice, GpuProvider, GpuQuota, GpuSession};
    use wasmtime::component::{Component, Linker, ResourceTable};
    use wasmtime::{Engine, Store, ValRaw};

    /// A component whose `digest` calls the imported `read` (a
    /// `list<u8>`) and folds what arrived: `len`, then each byte, into
    /// `h = h * 31 + x` (wrapping u32).
    const LIST_READER: &str = r#"(component
        (import "read" (func $read (result (list u8))))
        (core module $libc
            (memory (export "memory") 1)
            (global $next (mut i32) (i32.const 64))
            (func (export "realloc") (param i32 i32 i32 i32) (result i32)
                (local $at i32)
                (local.set $at (global.get $next))
                (global.set $next (i32.add (global.get $next) (local.get 3)))
                (local.get $at)))
        (core instance $libc (instantiate $libc))
        (core func $read (canon lower (func $read)
            (memory (core memory $libc "memory"))
            (realloc (core func $libc "realloc"))))
        (core module $main
            (import "libc" "memory" (memory 1))
            (import "host" "read" (func $read (param i32)))
            (func (export "digest") (result i32)
                (local $ptr i32) (local $len i32) (local $i i32) (local $h i32)
                (call $read (i32.const 0))
                (local.set $ptr (i32.load (i32.const 0)))
                (local.set $len (i32.load (i32.const 4)))
                (local.set $h (local.get $len))
                (block $done
                    (loop $next
                        (br_if $done (i32.ge_u (local.get $i) (local.get $len)))
                        (local.set $h (i32.add (i32.mul (local.get $h) (i32.const 31))
                            (i32.load8_u (i32.add (local.get $ptr) (local.get $i)))))
                        (local.set $i (i32.add (local.get $i) (i32.const 1)))
                        (br $next)))
                (local.get $h)))
        (core instance $main (instantiate $main
            (with "libc" (instance $libc))
            (with "host" (instance (export "read" (func $read))))))
        (func (export "digest") (result u32) (canon lift (core func $main "digest"))))"#;

    fn digest(bytes: &[u8]) -> u32 {
        bytes.iter().fold(bytes.len() as u32, |h, &b| {
            h.wrapping_mul(31).wrapping_add(u32::from(b))
        })
    }

    #[test]
    fn mapped_bytes_has_exactly_the_abi_of_a_list_of_u8() {
        let abi = <MappedBytes as ComponentType>::ABI;
        assert_eq!(abi, <[u8] as ComponentType>::ABI);
        // The canonical ABI of `list<u8>`: a (pointer, length) pair.
        assert_eq!((abi.size32, abi.align32), (8, 4));
        assert_eq!((abi.size64, abi.align64), (16, 8));
        assert_eq!(abi.flat_count, Some(2));
        assert_eq!(
            std::mem::size_of::<<MappedBytes as ComponentType>::Lower>(),
            2 * std::mem::size_of::<ValRaw>()
        );
    }

    #[tokio::test(flavor = "multi_thread")]
    async fn a_mapped_staging_buffer_arrives_in_the_guest_as_its_list_of_u8() -> wasmtime::Result<()>
    {
        let provider = GpuProvider::new(AdapterChoice::Auto);
        let device = provider.device().map_err(wasmtime::Error::msg)?;
        let mut session = GpuSession::new(Ok(Arc::clone(&device)), GpuQuota::default());
        let mut table = ResourceTable::new();
        let mut view = GpuView {
            session: &mut session,
            table: &mut table,
        };
        let sent: Vec<u8> = (0..1024u32).map(|i| (i * 7 + 3) as u8).collect();
        let usage = BufferUsage::STORAGE | BufferUsage::COPY_SRC | BufferUsage::COPY_DST;
        let buffer = view
            .create_buffer(sent.len() as u64, usage)
            .await?
            .map_err(|e| wasmtime::Error::msg(format!("{e:?}")))?;
        let written = view
            .write(Resource::new_borrow(buffer.rep()), 0, sent.clone())
            .await?;
        assert!(written.is_ok(), "{written:?}");
        let (device, alloc) = view
            .access(&buffer, "read", 0, sent.len() as u64)?
            .map_err(|e| wasmtime::Error::msg(format!("{e:?}")))?;
        let timeout = view.session.quota.submission;
        let mapped = map_for_read(&device, &alloc, 0, sent.len() as u64, timeout)?
            .map_err(|e| wasmtime::Error::msg(format!("{e:?}")))?;
        assert_eq!(mapped.bytes(), &sent[..]);

        let engine = Engine::default();
        let component = Component::new(&engine, wat::parse_str(LIST_READER)?)?;
        let mut linker = Linker::<Option<MappedBytes>>::new(&engine);
        linker.root().func_wrap("read", |mut store, ()| {
            let mapped = store.data_mut().take();
            Ok((mapped.ok_or_else(|| wasmtime::Error::msg("read twice"))?,))
        })?;
        let mut store = Store::new(&engine, Some(mapped));
        let instance = linker.instantiate(&mut store, &component)?;
        let run = instance.get_typed_func::<(), (u32,)>(&mut store, "digest")?;
        let (received,) = run.call(&mut store, ())?;
        assert_eq!(received, digest(&sent));
        assert!(store.data().is_none(), "the mapping was lowered once");
        Ok(())
    }
}
