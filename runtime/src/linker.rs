//! The linkers plugins are instantiated with: the whole WASI 0.2 command
//! surface (`wasi:cli/imports`, which is what standard toolchains import,
//! whatever a plugin uses) plus the `pictor:plugin` capabilities.
//!
//! Linked is not granted: what a plugin may do with each interface is
//! decided per store at run time. A job's `wasi:sockets` calls answer
//! `access-denied` (logged), its environment and arguments are empty and its
//! stdin is at end of file ([`is_inert_for_jobs`]). A miner's TCP reaches
//! its pool's addresses only, and it still gets no UDP and no name lookups
//! ([`is_inert_for_miners`]; [`SocketGrant`](crate::capabilities::sockets::SocketGrant)).
//!
//! Jobs ([`job_linker`]) get [`GRANTED_INTERFACES`]; miners
//! ([`miner_linker`]) the same less [`JOB_ONLY_INTERFACES`], plus
//! [`MINER_INTERFACES`]. Anything else (another
//! package, `wasi:http`, a WASI 0.3 interface, `pictor:plugin/mining` for a
//! job) is not linked, so a plugin importing it is refused at load time
//! with the interface's name. Any 0.2.x minor of a WASI interface links to
//! the one wasmtime-wasi defines (wasmtime matches semver-compatible
//! versions).

use wasmtime::Engine;
use wasmtime::component::Linker;
use wasmtime_wasi::cli::{WasiCli, WasiCliView};
use wasmtime_wasi::clocks::{WasiClocks, WasiClocksView};
use wasmtime_wasi::p2::bindings::{cli, clocks, random, sockets};
use wasmtime_wasi::random::{WasiRandom, WasiRandomView};
use wasmtime_wasi::sockets::{WasiSockets, WasiSocketsView};

use crate::capabilities;
use crate::store::StoreState;

/// The WASI 0.2 minor wasmtime-wasi defines (48.x), and the version of the
/// packages vendored in `wit/deps`; guests importing any 0.2.x link to it.
pub const WASI_VERSION: &str = "0.2.12";

/// Interfaces (without version) a job plugin may import: `wasi:cli/imports`
/// of WASI 0.2 and `pictor:plugin`'s job capabilities.
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
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/tcp",
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/ip-name-lookup",
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
/// [`GRANTED_INTERFACES`] less [`JOB_ONLY_INTERFACES`].
pub const MINER_INTERFACES: &[&str] = &["pictor:plugin/mining"];

/// Interfaces of [`GRANTED_INTERFACES`] only jobs get (the `job` world's
/// own import): a miner has nothing to checkpoint.
pub const JOB_ONLY_INTERFACES: &[&str] = &["pictor:plugin/checkpoint"];

/// Linked for every plugin, empty for every plugin: no arguments, no
/// variables, stdin at end of file, no terminal.
pub const INERT_CLI: &[&str] = &[
    "wasi:cli/environment",
    "wasi:cli/stdin",
    "wasi:cli/terminal-input",
    "wasi:cli/terminal-output",
    "wasi:cli/terminal-stdin",
    "wasi:cli/terminal-stdout",
    "wasi:cli/terminal-stderr",
];

/// Linked sockets that refuse every call for every plugin: UDP and name
/// lookups (`access-denied`).
pub const INERT_SOCKETS: &[&str] = &[
    "wasi:sockets/udp-create-socket",
    "wasi:sockets/udp",
    "wasi:sockets/ip-name-lookup",
];

/// The TCP side of `wasi:sockets`: a miner's, to its pool only; inert for
/// jobs (`access-denied`).
pub const TCP_SOCKETS: &[&str] = &[
    "wasi:sockets/network",
    "wasi:sockets/instance-network",
    "wasi:sockets/tcp-create-socket",
    "wasi:sockets/tcp",
];

/// Whether an import name (`ns:pkg/iface@version`) is granted to jobs.
pub fn is_granted(import: &str) -> bool {
    GRANTED_INTERFACES.contains(&unversioned(import))
}

/// Whether an import name is granted to miners.
pub fn is_granted_to_miner(import: &str) -> bool {
    let name = unversioned(import);
    (is_granted(import) && !JOB_ONLY_INTERFACES.contains(&name)) || MINER_INTERFACES.contains(&name)
}

/// Whether a job may import `import` but gets nothing from it: every
/// socket, and [`INERT_CLI`].
pub fn is_inert_for_jobs(import: &str) -> bool {
    let name = unversioned(import);
    [TCP_SOCKETS, INERT_SOCKETS, INERT_CLI]
        .iter()
        .any(|list| list.contains(&name))
}

/// Whether a miner may import `import` but gets nothing from it:
/// [`INERT_SOCKETS`] and [`INERT_CLI`] (its TCP works, to the pool only).
pub fn is_inert_for_miners(import: &str) -> bool {
    let name = unversioned(import);
    [INERT_SOCKETS, INERT_CLI]
        .iter()
        .any(|list| list.contains(&name))
}

fn unversioned(import: &str) -> &str {
    import.split('@').next().unwrap_or(import)
}

/// Builds the job linker for `engine`: the `plugin` world's imports plus
/// `pictor:plugin/checkpoint`.
pub fn job_linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut l = plugin_linker(engine)?;
    capabilities::checkpoint::add_to_linker(&mut l, StoreState::checkpoint)?;
    Ok(l)
}

/// Builds the miner linker for `engine`: the `plugin` world's imports plus
/// `pictor:plugin/mining` (its TCP grant is the store's).
pub fn miner_linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut l = plugin_linker(engine)?;
    capabilities::mining::add_to_linker(&mut l, StoreState::mining)?;
    Ok(l)
}

/// What both worlds link: WASI 0.2's `wasi:cli/imports`, `types`,
/// `progress` and `gpu` (the `plugin` world).
fn plugin_linker(engine: &Engine) -> wasmtime::Result<Linker<StoreState>> {
    let mut l = Linker::new(engine);
    wasmtime_wasi_io::add_to_linker_async(&mut l)?;
    type S = StoreState;
    clocks::wall_clock::add_to_linker::<S, WasiClocks>(&mut l, S::clocks)?;
    clocks::monotonic_clock::add_to_linker::<S, WasiClocks>(&mut l, S::clocks)?;
    random::random::add_to_linker::<S, WasiRandom>(&mut l, S::random)?;
    random::insecure::add_to_linker::<S, WasiRandom>(&mut l, S::random)?;
    random::insecure_seed::add_to_linker::<S, WasiRandom>(&mut l, S::random)?;
    capabilities::filesystem::add_to_linker(&mut l, S::guarded_fs)?;
    sockets::network::add_to_linker::<S, WasiSockets>(&mut l, &Default::default(), S::sockets)?;
    sockets::instance_network::add_to_linker::<S, WasiSockets>(&mut l, S::sockets)?;
    sockets::tcp_create_socket::add_to_linker::<S, WasiSockets>(&mut l, S::sockets)?;
    sockets::tcp::add_to_linker::<S, WasiSockets>(&mut l, S::sockets)?;
    sockets::udp_create_socket::add_to_linker::<S, WasiSockets>(&mut l, S::sockets)?;
    sockets::udp::add_to_linker::<S, WasiSockets>(&mut l, S::sockets)?;
    sockets::ip_name_lookup::add_to_linker::<S, WasiSockets>(&mut l, S::sockets)?;
    // Socket and name-lookup constructors: refused and logged per grant.
    capabilities::sockets::add_to_linker(&mut l, S::sockets_view)?;
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
    capabilities::gpu::add_to_linker(&mut l, S::gpu_view)?;
    Ok(l)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_whole_wasi_command_surface_is_linked_and_versions_are_ignored() {
        assert!(is_granted("wasi:filesystem/types@0.2.6"));
        assert!(is_granted("wasi:sockets/tcp@0.2.0"));
        assert!(is_granted("wasi:sockets/ip-name-lookup@0.2.12"));
        assert!(is_granted("pictor:plugin/progress@0.2.0"));
        assert!(!is_granted("pictor:plugin/mining@0.2.0"));
        assert!(!is_granted("wasi:http/outgoing-handler@0.2.6"));
        assert!(!is_granted("wasi:sockets/types@0.3.0"));
    }

    #[test]
    fn jobs_get_nothing_from_sockets_and_miners_nothing_from_udp_or_name_lookup() {
        for socket in [
            "tcp",
            "tcp-create-socket",
            "udp",
            "ip-name-lookup",
            "network",
        ] {
            assert!(is_inert_for_jobs(&format!("wasi:sockets/{socket}@0.2.3")));
        }
        assert!(is_inert_for_jobs("wasi:cli/environment@0.2.0"));
        assert!(!is_inert_for_jobs("wasi:cli/stdout@0.2.0"));
        assert!(!is_inert_for_jobs("wasi:filesystem/types@0.2.0"));
        assert!(is_granted_to_miner("pictor:plugin/mining@0.2.0"));
        assert!(!is_granted_to_miner("pictor:plugin/checkpoint@0.2.0"));
        assert!(is_granted_to_miner("pictor:plugin/gpu@0.2.0"));
        assert!(!is_inert_for_miners("wasi:sockets/tcp@0.2.12"));
        assert!(is_inert_for_miners("wasi:sockets/udp@0.2.6"));
        assert!(is_inert_for_miners("wasi:sockets/ip-name-lookup@0.2.6"));
        for inert in TCP_SOCKETS.iter().chain(INERT_SOCKETS).chain(INERT_CLI) {
            assert!(is_granted(inert), "{inert} is inert, so it must be linked");
        }
    }

    /// Toolchains emit whichever 0.2.x minor their WASI bindings carry;
    /// every one links to wasmtime-wasi's definition, older and newer.
    #[test]
    fn any_wasi_0_2_minor_links() -> wasmtime::Result<()> {
        let engine = crate::engine::build_engine()?;
        let linker = job_linker(&engine)?;
        for version in ["0.2.0", "0.2.3", "0.2.6", "0.2.12", "0.2.40"] {
            let wat = format!(
                r#"(component
                    (import "wasi:cli/environment@{version}" (instance
                        (export "get-arguments" (func (result (list string))))))
                    (import "wasi:sockets/network@{version}" (instance
                        (export "network" (type (sub resource))))))"#
            );
            let component = wasmtime::component::Component::new(&engine, wat::parse_str(&wat)?)?;
            linker
                .instantiate_pre(&component)
                .map_err(|e| e.context(format!("WASI {version}")))?;
        }
        let http = r#"(component (import "wasi:http/outgoing-handler@0.2.0" (instance
            (export "handle" (func)))))"#;
        let component = wasmtime::component::Component::new(&engine, wat::parse_str(http)?)?;
        assert!(
            linker.instantiate_pre(&component).is_err(),
            "wasi:http is not linked"
        );
        Ok(())
    }
}
