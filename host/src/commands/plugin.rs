//! `pictor-host plugin inspect`: a component's identity, world, imports and
//! exports, and whether this host can run it.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Subcommand;
use pictor_runtime::inspect;

use super::{CacheArgs, EXIT_USAGE, read_plugin};

/// Plugin subcommands.
#[derive(Subcommand)]
pub enum PluginCommand {
    /// Print a plugin's sha256, world, imports and exports; exit 2 if this host cannot run it.
    Inspect {
        /// The plugin component (`.wasm`).
        plugin: PathBuf,
        /// Print the report as JSON.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        cache: CacheArgs,
    },
}

impl PluginCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        let PluginCommand::Inspect {
            plugin,
            json,
            cache,
        } = self;
        let bytes = read_plugin(&plugin)?;
        let runtime = cache.runtime()?;
        let report = inspect::inspect(&runtime, &bytes)?;
        if json {
            println!("{}", serde_json::to_string_pretty(&report)?);
        } else {
            println!("plugin   {}", plugin.display());
            println!("sha256   {}", report.sha256);
            println!("size     {} bytes", report.size);
            match (&report.world, &report.problem) {
                (Some(world), _) => println!("world    {world} (runs on this host)"),
                (None, Some(problem)) => {
                    println!("world    none: this host cannot run it: {problem}")
                }
                (None, None) => println!("world    unknown"),
            }
            println!("imports  ({})", report.imports.len());
            for item in &report.imports {
                let note = if item.granted == Some(false) {
                    "   <- NOT GRANTED by this host"
                } else if item.inert {
                    "   (linked, inert: every call refused or empty)"
                } else {
                    ""
                };
                println!("  {} {}{note}", item.kind, item.name);
            }
            println!("exports  ({})", report.exports.len());
            for item in &report.exports {
                println!("  {} {}", item.kind, item.name);
            }
        }
        Ok(if report.world.is_some() {
            ExitCode::SUCCESS
        } else {
            ExitCode::from(EXIT_USAGE)
        })
    }
}
