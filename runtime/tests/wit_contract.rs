//! The published WIT (`wit/`, with the WASI packages vendored in
//! `wit/deps`) and what the host links are one contract: these tests hold
//! them equal, so neither can change without the other.

use std::collections::BTreeSet;
use std::path::Path;

use pictor_runtime::linker::{
    GRANTED_INTERFACES, JOB_ONLY_INTERFACES, MINER_INTERFACES, WASI_VERSION,
};
use pictor_runtime::{PLUGIN_WIT_VERSION, World};
use wit_parser::{Resolve, WorldId, WorldKey};

fn resolve() -> (Resolve, wit_parser::PackageId) {
    let mut resolve = Resolve::new();
    let wit = Path::new(env!("CARGO_MANIFEST_DIR")).join("../wit");
    let (package, _) = resolve.push_dir(&wit).expect("wit/ parses, with its deps");
    (resolve, package)
}

/// The interfaces a world imports, without versions.
fn imports(resolve: &Resolve, world: WorldId) -> BTreeSet<String> {
    resolve.worlds[world]
        .imports
        .keys()
        .filter_map(|key| match key {
            WorldKey::Interface(id) => resolve.id_of(*id),
            WorldKey::Name(_) => None,
        })
        .map(|name| name.split('@').next().unwrap_or(&name).to_string())
        .collect()
}

fn world_id(resolve: &Resolve, package: wit_parser::PackageId, name: &str) -> WorldId {
    resolve
        .select_world(&[package], Some(name))
        .unwrap_or_else(|e| panic!("world {name}: {e}"))
}

#[test]
fn the_vendored_wasi_is_the_version_the_host_links() {
    let (resolve, _) = resolve();
    let wasi: Vec<String> = resolve
        .packages
        .iter()
        .filter(|(_, p)| p.name.namespace == "wasi")
        .map(|(_, p)| {
            format!(
                "{}:{}@{}",
                p.name.namespace,
                p.name.name,
                p.name.version.as_ref().unwrap()
            )
        })
        .collect();
    assert_eq!(
        wasi.len(),
        6,
        "cli, clocks, filesystem, io, random, sockets: {wasi:?}"
    );
    for package in &wasi {
        assert!(
            package.ends_with(&format!("@{WASI_VERSION}")),
            "{package} is not {WASI_VERSION}"
        );
    }
}

/// The version the host names (`PLUGIN_WIT_VERSION`, each world's WIT
/// name in `plugin inspect`) is the one `wit/` declares.
#[test]
fn the_host_names_the_version_wit_declares() {
    let (resolve, package) = resolve();
    let version = resolve.packages[package]
        .name
        .version
        .as_ref()
        .unwrap()
        .to_string();
    assert_eq!(version, PLUGIN_WIT_VERSION);
    for world in [World::Job, World::Miner] {
        let name = world.wit_name();
        assert!(name.ends_with(&format!("@{version}")), "{name}");
        let short = name.trim_start_matches("pictor:plugin/");
        let short = short.split('@').next().unwrap();
        // Panics naming the world when wit/ has none of that name.
        world_id(&resolve, package, short);
    }
}

#[test]
fn the_host_links_exactly_wasi_cli_imports_and_the_worlds_imports() {
    let (resolve, package) = resolve();
    let cli = world_id(
        &resolve,
        package,
        &format!("wasi:cli/imports@{WASI_VERSION}"),
    );
    let granted: BTreeSet<String> = GRANTED_INTERFACES.iter().map(|s| s.to_string()).collect();
    let granted_wasi: BTreeSet<String> = granted
        .iter()
        .filter(|i| i.starts_with("wasi:"))
        .cloned()
        .collect();
    assert_eq!(imports(&resolve, cli), granted_wasi);

    let job = imports(&resolve, world_id(&resolve, package, "job"));
    assert_eq!(
        job, granted,
        "the job world imports exactly what the host links for jobs"
    );

    let miner = imports(&resolve, world_id(&resolve, package, "miner"));
    let mut granted_miner = granted.clone();
    granted_miner.extend(MINER_INTERFACES.iter().map(|s| s.to_string()));
    for job_only in JOB_ONLY_INTERFACES {
        granted_miner.remove(*job_only);
    }
    assert_eq!(
        miner, granted_miner,
        "the miner world imports what the host links for miners"
    );

    // Both are the shared `plugin` world and one interface each.
    let base = imports(&resolve, world_id(&resolve, package, "plugin"));
    assert_eq!(
        job.difference(&base).collect::<Vec<_>>(),
        ["pictor:plugin/checkpoint"]
    );
    assert_eq!(
        miner.difference(&base).collect::<Vec<_>>(),
        ["pictor:plugin/mining"]
    );
}
