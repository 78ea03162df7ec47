//! The process-wide wasmtime [`Engine`] and the epoch ticker that drives
//! every store's deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, OptLevel};

/// Guest wasm stack limit; deeper recursion traps with "call stack exhausted".
pub const MAX_WASM_STACK: usize = 1 << 20;

/// How often the epoch advances: the granularity of timeouts, cancellation
/// and preemption of running wasm.
pub const EPOCH_TICK: Duration = Duration::from_millis(10);

/// Builds the engine every job runs on: Cranelift, the component model,
/// epoch interruption, async calls, and only the wasm proposals plugins need.
///
/// GC, exceptions, threads, stack switching and component-model async are
/// not compiled into this host at all (their wasmtime features are off), and
/// the proposals that are compiled in but unused are switched off here, so a
/// plugin that relies on them is rejected at load time.
pub fn build_engine() -> wasmtime::Result<Engine> {
    let mut config = Config::new();
    config
        .wasm_component_model(true)
        .epoch_interruption(true)
        .cranelift_opt_level(OptLevel::Speed)
        .max_wasm_stack(MAX_WASM_STACK)
        // Host functions and WASI run on the fiber stack too: leave room.
        .async_stack_size(MAX_WASM_STACK + (1 << 20))
        .wasm_gc(false)
        .wasm_stack_switching(false);
    Engine::new(&config)
}

/// A thread that bumps the engine's epoch every [`EPOCH_TICK`] until dropped.
pub struct EpochTicker {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl EpochTicker {
    /// Starts ticking `engine`.
    pub fn start(engine: &Engine) -> std::io::Result<Self> {
        let stop = Arc::new(AtomicBool::new(false));
        let engine = engine.weak();
        let thread = std::thread::Builder::new().name("pictor-epoch".into()).spawn({
            let stop = Arc::clone(&stop);
            move || {
                while !stop.load(Ordering::Relaxed) {
                    std::thread::sleep(EPOCH_TICK);
                    match engine.upgrade() {
                        Some(engine) => engine.increment_epoch(),
                        None => break,
                    }
                }
            }
        })?;
        Ok(EpochTicker { stop, thread: Some(thread) })
    }
}

impl Drop for EpochTicker {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
