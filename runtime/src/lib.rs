//! # pictor-runtime
//!
//! The sandbox a Pictor worker runs plugins in, and nothing else: it knows
//! no worker, spool or coordinator (it depends on `pictor-protocol`'s
//! digests only).
//!
//! - [`engine`]: the one wasmtime engine and its epoch ticker;
//! - [`cache`]: compiled components on disk, HMAC-checked;
//! - [`linker`]: what each world is granted; [`bindings`]: the generated
//!   host bindings of the `job` and `miner` worlds;
//! - [`store`]: a job's store data and its resource limiter;
//! - [`control`]: cancelling, preempting and timing out a running job;
//! - [`stdio`]: bounded stdout/stderr capture; [`text`]: cleaning plugin text;
//! - [`inspect`]: what a component imports and exports;
//! - [`capabilities`]: the host side of each `pictor:plugin` interface and
//!   of the miner's socket grant;
//! - [`jobs`]: a job's spec, limits and sandbox folders, and running it to
//!   an outcome;
//! - [`faults`]: crash points for the crash-safety tests.
//!
//! [`Runtime::load`] turns component bytes into a [`LoadedPlugin`] that is
//! pre-linked (imports checked, exports typed) and ready to instantiate once
//! per job; [`Runtime::load_miner`] does the same for the `miner` world.

#![cfg_attr(test, allow(clippy::unwrap_used))]

pub mod bindings;
pub mod cache;
pub mod capabilities;
pub mod control;
pub mod engine;
pub mod faults;
pub mod inspect;
pub mod jobs;
pub mod linker;
pub mod stdio;
pub mod store;
pub mod text;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use wasmtime::Engine;
use wasmtime::component::{Component, Linker};

use bindings::JobPre;
use cache::{ComponentCache, ComponentCacheError};
use engine::EpochTicker;
use pictor_protocol::digest::Sha256Digest;
use store::StoreState;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// wasmtime refused the engine configuration or the linker.
    #[error("cannot set up the wasm engine: {0}")]
    Engine(String),
    /// The epoch ticker thread could not start.
    #[error("cannot start the epoch ticker thread: {0}")]
    Ticker(#[from] std::io::Error),
    /// The compiled-component cache could not be opened.
    #[error(transparent)]
    Cache(#[from] ComponentCacheError),
}

/// Why a plugin could not be loaded.
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The bytes are not a valid component for this engine.
    #[error("plugin {digest} is not a valid WebAssembly component: {reason}")]
    Invalid {
        /// The plugin's sha256.
        digest: Sha256Digest,
        /// wasmtime's explanation.
        reason: String,
    },
    /// The component needs something the host does not grant to its world,
    /// or does not export the world's `run`.
    #[error("plugin {digest} cannot run as a {}: {reason}", world.role())]
    Incompatible {
        /// The plugin's sha256.
        digest: Sha256Digest,
        /// The world it was loaded as.
        world: World,
        /// What is missing or mismatched.
        reason: String,
    },
}

/// The version of the `pictor:plugin` WIT package this host implements.
pub const PLUGIN_WIT_VERSION: &str = "0.2.0";

/// The world a plugin is loaded as: it decides what the plugin may import.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum World {
    /// `pictor:plugin/job`: every job kind.
    Job,
    /// `pictor:plugin/miner`: the miner (TCP to its pool, mining figures).
    Miner,
}

impl World {
    /// The WIT name, e.g. `pictor:plugin/job@0.2.0`.
    pub fn wit_name(self) -> &'static str {
        match self {
            World::Job => "pictor:plugin/job@0.2.0",
            World::Miner => "pictor:plugin/miner@0.2.0",
        }
    }

    /// What a plugin of this world is, in messages (`job`, `miner`).
    pub fn role(self) -> &'static str {
        match self {
            World::Job => "job",
            World::Miner => "miner",
        }
    }

    /// Whether this world may import `import`.
    pub fn grants(self, import: &str) -> bool {
        match self {
            World::Job => linker::is_granted(import),
            World::Miner => linker::is_granted_to_miner(import),
        }
    }

    /// Whether `import` is linked for this world but gives it nothing at
    /// run time (every call refused or empty).
    pub fn inert(self, import: &str) -> bool {
        match self {
            World::Job => linker::is_inert_for_jobs(import),
            World::Miner => linker::is_inert_for_miners(import),
        }
    }
}

/// Where a loaded plugin's machine code came from.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum CodeSource {
    /// Compiled now with Cranelift (and stored in the cache, if any).
    Compiled(Duration),
    /// Loaded from the compiled-component cache.
    Cached(Duration),
}

/// A plugin ready to instantiate.
pub struct LoadedPlugin {
    /// The component's sha256: the plugin's identity.
    pub digest: Sha256Digest,
    /// The compiled component.
    pub component: Component,
    /// The component linked against the job world, imports resolved.
    pub pre: JobPre<StoreState>,
    /// Whether it was compiled or came from the cache, and how long that took.
    pub source: CodeSource,
    /// Whether it imports `pictor:plugin/gpu` (only then is a GPU opened for it).
    pub uses_gpu: bool,
    /// The world it was linked as.
    pub world: World,
}

/// Settings for [`Runtime::new`].
#[derive(Debug, Clone, Default)]
pub struct RuntimeConfig {
    /// Folder of the compiled-component cache; `None` disables it.
    pub cache_dir: Option<PathBuf>,
}

impl RuntimeConfig {
    /// The default cache folder: `$XDG_CACHE_HOME/pictor/components`, else
    /// `~/.cache/pictor/components`.
    pub fn default_cache_dir() -> Option<PathBuf> {
        let base = std::env::var_os("XDG_CACHE_HOME")
            .map(PathBuf::from)
            .filter(|p| p.is_absolute())
            .or_else(|| std::env::var_os("HOME").map(|home| Path::new(&home).join(".cache")))?;
        Some(base.join("pictor").join("components"))
    }
}

/// The process-wide wasm runtime.
pub struct Runtime {
    engine: Engine,
    linker: Linker<StoreState>,
    miner_linker: Linker<StoreState>,
    cache: Option<ComponentCache>,
    _ticker: EpochTicker,
}

impl Runtime {
    /// Builds the engine, starts its epoch ticker, opens the cache.
    pub fn new(config: &RuntimeConfig) -> Result<Self, RuntimeError> {
        let engine = engine::build_engine().map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let linker =
            linker::job_linker(&engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let miner_linker =
            linker::miner_linker(&engine).map_err(|e| RuntimeError::Engine(format!("{e:#}")))?;
        let cache = match &config.cache_dir {
            Some(dir) => Some(ComponentCache::open(dir, &engine)?),
            None => None,
        };
        let ticker = EpochTicker::start(&engine)?;
        Ok(Runtime {
            engine,
            linker,
            miner_linker,
            cache,
            _ticker: ticker,
        })
    }

    /// The engine.
    pub fn engine(&self) -> &Engine {
        &self.engine
    }

    /// The job linker.
    pub fn linker(&self) -> &Linker<StoreState> {
        &self.linker
    }

    /// Compiles `bytes` (or loads them from the cache) without linking.
    /// CPU-heavy on a cache miss: call it off the async executor.
    pub fn compile(
        &self,
        bytes: &[u8],
    ) -> Result<(Sha256Digest, Component, CodeSource), PluginError> {
        let digest = Sha256Digest::of(bytes);
        let started = Instant::now();
        if let Some(component) = self
            .cache
            .as_ref()
            .and_then(|c| c.load(&self.engine, &digest))
        {
            tracing::debug!(plugin = %digest, "compiled component loaded from cache");
            return Ok((digest, component, CodeSource::Cached(started.elapsed())));
        }
        let component = Component::new(&self.engine, bytes).map_err(|e| PluginError::Invalid {
            digest,
            reason: format!("{e:#}"),
        })?;
        let compiled = started.elapsed();
        tracing::debug!(plugin = %digest, ms = compiled.as_millis() as u64, "component compiled");
        if let Some(cache) = &self.cache {
            let stored = component
                .serialize()
                .map_err(|e| e.to_string())
                .and_then(|bytes| cache.store(&digest, &bytes).map_err(|e| e.to_string()));
            if let Err(error) = stored {
                tracing::warn!(plugin = %digest, %error, "compiled component not cached");
            }
        }
        Ok((digest, component, CodeSource::Compiled(compiled)))
    }

    /// Compiles (or loads from cache) and links a job plugin.
    pub fn load(&self, bytes: &[u8]) -> Result<LoadedPlugin, PluginError> {
        self.load_as(bytes, World::Job)
    }

    /// Compiles (or loads from cache) and links a miner plugin.
    pub fn load_miner(&self, bytes: &[u8]) -> Result<LoadedPlugin, PluginError> {
        self.load_as(bytes, World::Miner)
    }

    /// Compiles (or loads from cache) and links a plugin as `world`.
    pub fn load_as(&self, bytes: &[u8], world: World) -> Result<LoadedPlugin, PluginError> {
        let (digest, component, source) = self.compile(bytes)?;
        let pre = self.link_as(world, &digest, &component)?;
        let uses_gpu = component
            .component_type()
            .imports(&self.engine)
            .any(|(name, _)| name.starts_with("pictor:plugin/gpu@"));
        Ok(LoadedPlugin {
            digest,
            component,
            pre,
            source,
            uses_gpu,
            world,
        })
    }

    /// Links `component` against the job world.
    pub fn link(
        &self,
        digest: &Sha256Digest,
        component: &Component,
    ) -> Result<JobPre<StoreState>, PluginError> {
        self.link_as(World::Job, digest, component)
    }

    /// Links `component` against `world`. Both worlds export the same
    /// `run`, so both give a [`JobPre`].
    pub fn link_as(
        &self,
        world: World,
        digest: &Sha256Digest,
        component: &Component,
    ) -> Result<JobPre<StoreState>, PluginError> {
        let denied: Vec<String> = component
            .component_type()
            .imports(&self.engine)
            .map(|(name, _)| name)
            .filter(|name| !world.grants(name))
            .map(|name| format!("`{name}`"))
            .collect();
        if !denied.is_empty() {
            return Err(PluginError::Incompatible {
                digest: *digest,
                world,
                reason: format!(
                    "it imports {} which the host does not grant to {}s",
                    denied.join(", "),
                    world.role()
                ),
            });
        }
        let incompatible = |e: wasmtime::Error| PluginError::Incompatible {
            digest: *digest,
            world,
            reason: format!("{e:#}"),
        };
        let linker = match world {
            World::Job => &self.linker,
            World::Miner => &self.miner_linker,
        };
        let instance_pre = linker.instantiate_pre(component).map_err(incompatible)?;
        JobPre::new(instance_pre).map_err(incompatible)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn components_using_threads_or_gc_proposals_are_refused_at_load() {
        let runtime = Runtime::new(&RuntimeConfig::default()).unwrap();
        for (proposal, wat) in [
            (
                "shared memory",
                "(component (core module (memory 1 1 shared)))",
            ),
            (
                "atomics",
                "(component (core module (memory 1) (func (drop (i32.atomic.load (i32.const 0))))))",
            ),
            (
                "gc types",
                "(component (core module (type (struct (field i32)))))",
            ),
            ("exceptions", "(component (core module (tag)))"),
        ] {
            let bytes = wat::parse_str(wat).unwrap();
            let error = runtime
                .load(&bytes)
                .err()
                .unwrap_or_else(|| panic!("{proposal}: loaded"));
            assert!(
                matches!(error, PluginError::Invalid { .. }),
                "{proposal}: {error}"
            );
        }
    }
}
