//! `pictor-host plugin inspect`: a component's identity, world, imports and
//! exports, and whether this host can run it; `pictor-host plugin new`: a
//! ready plugin project in Rust, Python or JavaScript.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::{Subcommand, ValueEnum};
use pictor_host::scaffold::{self, Language};
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
    /// Write a ready plugin project (sample job, build and test scripts) in a new folder.
    New {
        /// The plugin's name, also its job kind: lowercase words joined by `-`.
        name: String,
        /// The language to write it in.
        #[arg(long, value_enum, default_value_t = Lang::Rust)]
        lang: Lang,
        /// The folder to create [default: ./NAME].
        #[arg(long, value_name = "DIR")]
        into: Option<PathBuf>,
    },
}

/// Languages `plugin new` writes.
#[derive(Clone, Copy, ValueEnum)]
pub enum Lang {
    /// Rust with pictor-sdk.
    Rust,
    /// Python with componentize-py.
    Python,
    /// JavaScript with componentize-qjs.
    Js,
}

impl PluginCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        match self {
            PluginCommand::Inspect {
                plugin,
                json,
                cache,
            } => inspect_plugin(plugin, json, cache),
            PluginCommand::New { name, lang, into } => new_project(&name, lang, into),
        }
    }
}

fn new_project(name: &str, lang: Lang, into: Option<PathBuf>) -> anyhow::Result<ExitCode> {
    let language = match lang {
        Lang::Rust => Language::Rust,
        Lang::Python => Language::Python,
        Lang::Js => Language::JavaScript,
    };
    let dir = into.unwrap_or_else(|| PathBuf::from(name));
    let files = scaffold::create(&dir, name, language).context("plugin new")?;
    println!("wrote {} files into {}", files.len(), dir.display());
    println!("next:");
    println!("  cd {}", dir.display());
    println!("  bash build.sh");
    println!("  pictor-host exec --plugin {name}.wasm --job job.json --input input");
    println!("(or `bash test.sh`: both, and a check of the output; see README.md)");
    Ok(ExitCode::SUCCESS)
}

fn inspect_plugin(plugin: PathBuf, json: bool, cache: CacheArgs) -> anyhow::Result<ExitCode> {
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
