//! Logging for the binary: `tracing` events on stderr, filtered by
//! `PICTOR_LOG` (an `EnvFilter` directive, default `info`), as text (colour on
//! a terminal) or as JSON lines for services.

use std::io::IsTerminal;

use tracing_subscriber::EnvFilter;

/// How log lines are written.
#[derive(Debug, Clone, Copy, Default, clap::ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// Installs the global subscriber.
pub fn init(format: LogFormat) -> anyhow::Result<()> {
    let filter = match std::env::var("PICTOR_LOG") {
        Ok(directive) => EnvFilter::try_new(&directive)
            .map_err(|e| anyhow::anyhow!("invalid PICTOR_LOG `{directive}`: {e}"))?,
        Err(_) => EnvFilter::new("info"),
    };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr);
    let result = match format {
        LogFormat::Text => builder
            .with_ansi(std::io::stderr().is_terminal())
            .try_init(),
        LogFormat::Json => builder.json().try_init(),
    };
    result.map_err(|e| anyhow::anyhow!(e))
}
