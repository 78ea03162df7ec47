//! The process-wide wasmtime [`Engine`] and the epoch ticker that drives
//! every store's deadline.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::Duration;

use wasmtime::{Config, Engine, OptLevel, WasmFeatures};

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
/// their wasm proposals are switched off here too, so a plugin that uses
/// them is refused when it is validated, before any code path that a build
/// without those features cannot take (wasmtime 48.0.9 fixed aborts in
/// builds without `gc` or `threads`, GHSA-rc4p-x33f-vpr2 and
/// GHSA-2674-w29h-wqvj; we pin 48.0.8).
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
        .wasm_shared_everything_threads(false)
        .shared_memory(false)
        .wasm_stack_switching(false)
        // Set explicitly: their Config switches exist only in builds with
        // the matching cargo features.
        .wasm_features(
            WasmFeatures::THREADS
                | WasmFeatures::GC
                | WasmFeatures::FUNCTION_REFERENCES
                | WasmFeatures::EXCEPTIONS
                | WasmFeatures::LEGACY_EXCEPTIONS,
            false,
        );
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
        let thread = std::thread::Builder::new()
            .name("pictor-epoch".into())
            .spawn({
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
        Ok(EpochTicker {
            stop,
            thread: Some(thread),
        })
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

/// Open files a worker process allows itself (its soft `RLIMIT_NOFILE` is
/// raised to this, or to the hard limit if lower): every job may hold
/// `limits.open_files` (default 256), several jobs run at once, and the
/// runtime, wgpu and the network use descriptors too.
pub const OPEN_FILES_TARGET: u64 = 65_536;

/// Raises the process's soft open-file limit towards [`OPEN_FILES_TARGET`]
/// (never above the hard limit, never lower than it was); returns the
/// limit now in force.
pub fn raise_open_file_limit() -> u64 {
    #[cfg(unix)]
    {
        use rustix::process::{Resource, Rlimit, getrlimit, setrlimit};
        let limit = getrlimit(Resource::Nofile);
        let soft = limit.current.unwrap_or(u64::MAX);
        let hard = limit.maximum.unwrap_or(u64::MAX);
        let wanted = OPEN_FILES_TARGET.min(hard);
        if soft >= wanted {
            return soft;
        }
        match setrlimit(
            Resource::Nofile,
            Rlimit {
                current: Some(wanted),
                maximum: limit.maximum,
            },
        ) {
            Ok(()) => {
                tracing::debug!(from = soft, to = wanted, "raised the open-file limit");
                wanted
            }
            Err(error) => {
                tracing::warn!(%error, soft, "cannot raise the open-file limit");
                soft
            }
        }
    }
    #[cfg(not(unix))]
    {
        OPEN_FILES_TARGET
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;

    #[test]
    fn the_open_file_limit_is_raised_within_the_hard_limit() {
        use rustix::process::{Resource, getrlimit};
        let now = raise_open_file_limit();
        let limit = getrlimit(Resource::Nofile);
        assert_eq!(limit.current, Some(now));
        assert!(now >= OPEN_FILES_TARGET.min(limit.maximum.unwrap_or(u64::MAX)));
    }
}
