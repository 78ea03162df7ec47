//! What `pictor-host plugin inspect` reports about a component.

use serde::Serialize;
use wasmtime::component::types::ComponentItem;

use crate::{PluginError, Runtime, World};
use pictor_protocol::digest::Sha256Digest;

/// One import or export of a component.
#[derive(Debug, Clone, Serialize)]
pub struct Item {
    /// Its name (`wasi:filesystem/types@0.2.6`, `run`).
    pub name: String,
    /// What it is: `instance`, `func`, `type`, …
    pub kind: &'static str,
    /// For imports: whether the host grants it (to the plugin's world, or
    /// to jobs when it runs as neither).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub granted: Option<bool>,
    /// For imports: linked, but the plugin gets nothing from it at run time
    /// (a job's sockets, any plugin's environment and stdin).
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub inert: bool,
}

/// A plugin's identity, interface and compatibility with this host.
#[derive(Debug, Clone, Serialize)]
pub struct PluginReport {
    /// sha256 of the component bytes: the plugin's identity.
    pub sha256: Sha256Digest,
    /// Size of the component in bytes.
    pub size: u64,
    /// The world it runs as (`pictor:plugin/job@…` or
    /// `pictor:plugin/miner@…`), when it is compatible.
    pub world: Option<String>,
    /// Why it cannot run here, when it is not.
    pub problem: Option<String>,
    /// What it imports.
    pub imports: Vec<Item>,
    /// What it exports.
    pub exports: Vec<Item>,
}

fn kind(item: &ComponentItem) -> &'static str {
    match item {
        ComponentItem::ComponentFunc(_) => "func",
        ComponentItem::CoreFunc(_) => "core func",
        ComponentItem::Module(_) => "module",
        ComponentItem::Component(_) => "component",
        ComponentItem::ComponentInstance(_) => "instance",
        ComponentItem::Type(_) => "type",
        ComponentItem::Resource(_) => "resource",
    }
}

/// Compiles `bytes` and reports on them. Fails only when the bytes are not
/// a component at all; an incompatible component is a report with a problem.
pub fn inspect(runtime: &Runtime, bytes: &[u8]) -> Result<PluginReport, PluginError> {
    let (digest, component, _) = runtime.compile(bytes)?;
    let engine = runtime.engine();
    let ty = component.component_type();
    // A job if it links as one, else a miner if it links as one.
    let linked = runtime
        .link_as(World::Job, &digest, &component)
        .map(|_| World::Job);
    let linked = linked.or_else(|job_problem| {
        runtime
            .link_as(World::Miner, &digest, &component)
            .map(|_| World::Miner)
            .map_err(|_| job_problem)
    });
    let granted_by = *linked.as_ref().unwrap_or(&World::Job);
    let imports = ty
        .imports(engine)
        .map(|(name, item)| Item {
            name: name.to_string(),
            kind: kind(&item.ty),
            granted: Some(granted_by.grants(name)),
            inert: granted_by.inert(name),
        })
        .collect();
    let exports = ty
        .exports(engine)
        .map(|(name, item)| Item {
            name: name.to_string(),
            kind: kind(&item.ty),
            granted: None,
            inert: false,
        })
        .collect();
    let (world, problem) = match linked {
        Ok(world) => (Some(world.wit_name().to_string()), None),
        Err(PluginError::Incompatible { reason, .. } | PluginError::Invalid { reason, .. }) => {
            (None, Some(reason))
        }
    };
    Ok(PluginReport {
        sha256: digest,
        size: bytes.len() as u64,
        world,
        problem,
        imports,
        exports,
    })
}
