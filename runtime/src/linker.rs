//! The linkers plugins are instantiated with: exactly the WASI preview 2
//! interfaces a plugin may use, plus the `pictor:plugin` capabilities.
//!
//! Jobs ([`job_linker`]) get [`GRANTED_INTERFACES`]; not linked, so a job
//! importing them is refused at load time with the interface's name:
//! `wasi:sockets/*` (jobs get no network), `pictor:plugin/mining` and
//! anything else. Miners ([`miner_linker`]) also get
//! [`MINER_INTERFACES`]: TCP sockets (which the store's
//! [`SocketGrant`](crate::capabilities::sockets::SocketGrant) limits to
//! the pool's addresses) and `pictor:plugin/mining`; still no name lookup
//! and no UDP.

use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::{cli, clocks, random, sockets};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

use crate::capabilities;
use crate::store::StoreState;

/// Interfaces (without version) a job plugin may import.
pub const GRANTED_INTERFACES: &[&str] = &[
    "wasi:io/error",
    "wasi:io/poll",
    "wasi:io/streams",
    "wasi:clocks/wall-clock",
    "wasi:clocks/monotonic-clock",
    "wasi:random/random",
    "wasi:random/insecure",
    "wasi:random/insecure-seed",
    "wasi:filesystem/types",
    "wasi:filesystem/preopens",
    "wasi:cli/exit",
    "wasi:cli/environment",
    "wasi:cli/stdin",
    "wasi:cli/stdout",
    "wasi:cli/stderr",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
    "pictor:plugin/types",
    "pictor:plugin/progress",
    "pictor:plugin/checkpoint",
    "pictor:plugin/gpu",
];

/// Interfaces (without version) a miner may import besides
/// [`GRANTED_INTERFACES`].
pub const MINER_INTERFACES: &[&str] = &[
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/tcp",
    "pictor:plugin/mining",
];

/// Whether an import name (`ns:pkg/iface@version`) is granted to jobs.
pub fn is_granted(import: &str) -> bool {
    GRANTED_INTERFACES.contains(&unversioned(import))
}

/// Whether an import name is granted to miners.
pub fn is_granted_to_miner(import: &str) -> bool {
    is_granted(import) || MINER_INTERFACES.contains(&unversioned(import))
}

fn unversioned(import: &str) -> &str {
    import.split('@').next().unwrap_or(import)
}

/// Builds the job linker for `engine`.
pub fn job_linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut l = Linker::new(engine);
    wasmtime_wasi_io::add_to_linker_async(&mut l)?;
    type S = StoreState;
    clocks::wall_clock::add_to_linker::<S, WasiClocks>(&mut l, S::clocks)?;
    clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(&mut l, S::clocks)?;
    random::random::add_to_linker::<S, WasiRandom>(&mut l, S::random)?;
    random::insecure::add_to_linker::<S, WasiRandom>(&mut l, S::random)?;
    random::insecure_seed::add_to_linker::<S, WasiRandom>(&mut l, S::random)?;
    capabilities::filesystem::add_to_linker(&mut l, S::guarded_fs)?;
    cli::exit::add_to_linker::<S, WasiCli>(&mut l, S::cli)?;
    cli::environment::add_to_linker::<S, WasiCli>(&mut l, S::cli)?;
    cli::stdin::add_to_linker::<S, WasiCli>(&mut l, S::cli)?;
    cli::stdout::add_to_linker::<S, WasiCli>(&mut l, S::cli)?;
    cli::stderr::add_to_linker::<S, WasiCli>(&mut l, S::cli)?;
    cli::terminal_input::add_to_linker::<S, WasiCli>(&mut l, S::cli)?;
    cli::terminal_output::add_to_linker::<S, WasiCli>(&mut l, S::cli)?;
    cli::terminal_stdin::add_to_linker::<S, WasiCli>(&mut l, S::cli)?;
    cli::terminal_stdout::add_to_linker::<S, WasiCli>(&mut l, S::cli)?;
    cli::terminal_stderr::add_to_linker::<S, WasiCli>(&mut l, S::cli)?;
    capabilities::progress::add_to_linker(&mut l, S::progress)?;
    capabilities::checkpoint::add_to_linker(&mut l, S::checkpoint)?;
    capabilities::gpu::add_to_linker(&mut l, S::gpu_view)?;
    Ok(l)
}

/// Builds the miner linker for `engine`: the job linker plus TCP sockets
/// and `pictor:plugin/mining`.
pub fn miner_linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut l = job_linker(engine)?;
    type S = StoreState;
    sockets::network::add_to_linker::<S, WasiSockets>(&mut l, &Default::default(), S::sockets)?;
    sockets::instance_network::add_to_linker::<S, WasiSockets>(&mut l, S::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<S, WasiSockets>(&mut l, S::sockets)?;
    sockets::tcp::add_to_linker::<S, WasiSockets>(&mut l, S::sockets)?;
    capabilities::sockets::add_to_linker(&mut l, S::sockets_view)?;
    capabilities::mining::add_to_linker(&mut l, S::mining)?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sockets_are_not_granted_and_versions_are_ignored() {
        assert!(is_granted("wasi:filesystem/types@0.2.6"));
        assert!(is_granted("pictor:plugin/progress@0.2.0"));
        assert!(!is_granted("wasi:sockets/tcp@0.2.6"));
        assert!(!is_granted("pictor:plugin/mining@0.2.0"));
        assert!(!is_granted("wasi:http/outgoing-handler@0.2.6"));
    }

    #[test]
    fn miners_get_tcp_and_mining_but_no_name_lookup_or_udp() {
        assert!(is_granted_to_miner("wasi:sockets/tcp@0.2.12"));
        assert!(is_granted_to_miner("pictor:plugin/mining@0.2.0"));
        assert!(is_granted_to_miner("wasi:filesystem/types@0.2.6"));
        assert!(!is_granted_to_miner("wasi:sockets/ip-name-lookup@0.2.6"));
        assert!(!is_granted_to_miner("wasi:sockets/udp@0.2.6"));
        assert!(!is_granted_to_miner("wasi:sockets/udp-create-socket@0.2.6"));
    }
}
