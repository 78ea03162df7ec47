//! What a job's wasmtime `Store` holds: WASI context, resource table,
//! resource limits and the state of each host capability.

use std::sync::Arc;

use wasmtime::ResourceLimiter;
use wasmtime::component::ResourceTable;
use wasmtime_wasi::sockets::WasiSocketsCtxView;
use wasmtime_wasi::{WasiCtx, WasiCtxView, WasiView};

use crate::capabilities::checkpoint::CheckpointState;
use crate::capabilities::filesystem::{GuardedFs, OutputLedger};
use crate::capabilities::gpu::{GpuSession, GpuView};
use crate::capabilities::mining::MiningState;
use crate::capabilities::progress::ProgressState;
use crate::capabilities::sockets::{SocketGrant, SocketsView};
use crate::control::{Interruption, JobControl};

/// The data of one job's store. Dropped with the store, whatever way the job
/// ended, which frees every resource the job created.
pub struct StoreState {
    pub(crate) wasi: WasiCtx,
    pub(crate) table: ResourceTable,
    /// What the job's files take: every write is charged here first.
    pub(crate) output: Arc<OutputLedger>,
    pub(crate) limiter: JobLimiter,
    pub(crate) progress: ProgressState,
    pub(crate) checkpoint: CheckpointState,
    pub(crate) gpu: GpuSession,
    /// Miner figures (`pictor:plugin/mining`; linked for miners only).
    pub(crate) mining: MiningState,
    /// What the plugin may reach over the network (nothing, for jobs).
    pub(crate) network: SocketGrant,
    /// Table handles of the TCP sockets a miner made (dropped ones are
    /// pruned when it makes the next).
    pub(crate) sockets_made: Vec<u32>,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

impl StoreState {
    /// The filesystem view the job's `wasi:filesystem` calls go through.
    pub(crate) fn guarded_fs(&mut self) -> GuardedFs<'_> {
        let ledger = Arc::clone(&self.output);
        GuardedFs {
            inner: wasmtime_wasi::filesystem::WasiFilesystemView::filesystem(self),
            ledger,
        }
    }

    /// What the `pictor:plugin/gpu` functions see.
    pub(crate) fn gpu_view(&mut self) -> GpuView<'_> {
        GpuView {
            session: &mut self.gpu,
            table: &mut self.table,
        }
    }

    /// What the socket calls the host shadows see.
    pub(crate) fn sockets_view(&mut self) -> SocketsView<'_> {
        SocketsView {
            wasi: WasiSocketsCtxView {
                ctx: self.wasi.sockets(),
                table: &mut self.table,
            },
            grant: &self.network,
            made: &mut self.sockets_made,
        }
    }

    pub(crate) fn progress(&mut self) -> &mut ProgressState {
        &mut self.progress
    }

    pub(crate) fn checkpoint(&mut self) -> &mut CheckpointState {
        &mut self.checkpoint
    }

    pub(crate) fn mining(&mut self) -> &mut MiningState {
        &mut self.mining
    }
}

impl wasmtime_wasi_io::IoView for StoreState {
    fn table(&mut self) -> &mut ResourceTable {
        &mut self.table
    }
}

/// Per-job bounds on what a plugin's instances may allocate.
pub struct JobLimiter {
    memory_bytes: u64,
    memory_used: u64,
    control: Arc<JobControl>,
}

/// Table elements a plugin may have (function references).
const MAX_TABLE_ELEMENTS: usize = 1 << 20;
/// Core instances, tables and memories per store: a component built by
/// `wit-component` needs a handful of each.
const MAX_INSTANCES: usize = 64;
const MAX_TABLES: usize = 64;
const MAX_MEMORIES: usize = 16;

impl JobLimiter {
    /// A limiter allowing `memory_bytes` of linear memory in all.
    pub fn new(memory_bytes: u64, control: Arc<JobControl>) -> Self {
        JobLimiter {
            memory_bytes,
            memory_used: 0,
            control,
        }
    }
}

impl ResourceLimiter for JobLimiter {
    fn memory_growing(
        &mut self,
        current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        // The limit is on all of the job's memories together.
        let total = self
            .memory_used
            .saturating_add(desired.saturating_sub(current) as u64);
        if total > self.memory_bytes {
            // Trap instead of failing the grow: a guest allocator would abort
            // with a less useful message, and the job is over either way.
            let reason = Interruption::MemoryLimit {
                desired: total,
                limit: self.memory_bytes,
            };
            self.control.stop(reason.clone());
            return Err(wasmtime::Error::new(reason));
        }
        self.memory_used = total;
        Ok(true)
    }

    fn table_growing(
        &mut self,
        _current: usize,
        desired: usize,
        _max: Option<usize>,
    ) -> wasmtime::Result<bool> {
        Ok(desired <= MAX_TABLE_ELEMENTS)
    }

    fn instances(&self) -> usize {
        MAX_INSTANCES
    }

    fn tables(&self) -> usize {
        MAX_TABLES
    }

    fn memories(&self) -> usize {
        MAX_MEMORIES
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A core module whose `grow` adds `n` elements to its table.
    const TABLE_GROWER: &str = r#"(module
        (table $t 1 funcref)
        (func (export "grow") (param $n i32) (result i32)
            (table.grow $t (ref.null func) (local.get $n))))"#;

    /// A store held to a [`JobLimiter`] of `memory_bytes`, and `wat` compiled for it.
    fn limited(wat: &str, memory_bytes: u64) -> (wasmtime::Store<JobLimiter>, wasmtime::Module) {
        let engine = wasmtime::Engine::default();
        let module = wasmtime::Module::new(&engine, wat::parse_str(wat).unwrap()).unwrap();
        let mut store = wasmtime::Store::new(
            &engine,
            JobLimiter::new(memory_bytes, Arc::new(JobControl::default())),
        );
        store.limiter(|limiter| limiter);
        (store, module)
    }

    #[test]
    fn a_table_cannot_grow_past_its_element_cap() {
        let (mut store, module) = limited(TABLE_GROWER, 64 << 20);
        let instance = wasmtime::Instance::new(&mut store, &module, &[]).unwrap();
        let grow = instance
            .get_typed_func::<i32, i32>(&mut store, "grow")
            .unwrap();
        // Up to the cap it grows (returning the old size); past it, -1.
        assert_eq!(grow.call(&mut store, 1 << 10).unwrap(), 1);
        assert_eq!(
            grow.call(&mut store, MAX_TABLE_ELEMENTS as i32).unwrap(),
            -1
        );
        assert_eq!(grow.call(&mut store, 1).unwrap(), 1 + (1 << 10));
    }

    /// How many instances of `wat` one limited store takes before it refuses.
    fn instances_allowed(wat: &str) -> (usize, String) {
        let (mut store, module) = limited(wat, 1 << 30);
        for made in 0..1000 {
            if let Err(e) = wasmtime::Instance::new(&mut store, &module, &[]) {
                return (made, format!("{e:#}"));
            }
        }
        (1000, String::new())
    }

    #[test]
    fn a_store_holds_at_most_its_instances_tables_and_memories() {
        let (instances, error) = instances_allowed("(module)");
        assert_eq!(instances, MAX_INSTANCES, "{error}");
        assert!(error.contains("instance count too high"), "{error}");
        // Two tables an instance: the table cap is reached at half the
        // instance cap, so this measures the table cap alone.
        let (instances, error) = instances_allowed("(module (table 1 funcref) (table 1 funcref))");
        assert_eq!(instances, MAX_TABLES / 2, "{error}");
        assert!(error.contains("table count too high"), "{error}");
        let (memories, error) = instances_allowed("(module (memory 1))");
        assert_eq!(memories, MAX_MEMORIES, "{error}");
        assert!(error.contains("memory count too high"), "{error}");
    }
}
