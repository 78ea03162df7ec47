//! `pictor-coordinator worker create`: issue a worker and write its
//! worker.json (owner-only) to a file or stdout.

use std::collections::BTreeMap;
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context as _;
use clap::Args;
use pictor_protocol::api::{CreateWorker, MiningSettings};

use crate::commands::Target;

/// Issue a worker: its own id and credential, and its worker.json.
#[derive(Args)]
pub struct CreateCommand {
    #[command(flatten)]
    target: Target,
    /// The owner's name for the worker (1-64 characters).
    #[arg(long)]
    name: String,
    /// The network reward wallet (8-128 letters, digits, : . _ -).
    #[arg(long, value_name = "ADDR")]
    wallet: String,
    /// Mining pool, stratum+tcp://host:port (mining while idle; needs --coin).
    #[arg(long, value_name = "URL", requires = "coin")]
    pool: Option<String>,
    /// The coin to mine (btc, bch).
    #[arg(long, requires = "pool")]
    coin: Option<String>,
    /// Payout address on the pool [default: --wallet].
    #[arg(long, value_name = "ADDR", requires = "pool")]
    mining_wallet: Option<String>,
    /// The worker's price per job of a kind, e.g. render=0.05 (repeatable).
    #[arg(long = "price", value_name = "KIND=PRICE", value_parser = parse_price)]
    prices: Vec<(String, f64)>,
    /// Write worker.json here (mode 0600; an existing file is not
    /// overwritten) [default: stdout].
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
}

fn parse_price(text: &str) -> Result<(String, f64), String> {
    let (kind, price) = text
        .split_once('=')
        .ok_or_else(|| format!("{text:?} is not KIND=PRICE (e.g. render=0.05)"))?;
    let price: f64 = price
        .trim()
        .parse()
        .map_err(|_| format!("the price in {text:?} is not a number"))?;
    Ok((kind.trim().to_string(), price))
}

impl CreateCommand {
    pub fn execute(self) -> anyhow::Result<ExitCode> {
        // Checked before issuing: the credential exists only in the reply.
        if let Some(out) = &self.out
            && out.exists()
        {
            anyhow::bail!(
                "{} exists; choose another --out (a worker.json holds a credential that cannot be shown again)",
                out.display()
            );
        }
        let mut prices = BTreeMap::new();
        for (kind, price) in self.prices {
            if prices.insert(kind.clone(), price).is_some() {
                anyhow::bail!("--price gives kind {kind:?} twice");
            }
        }
        let request = CreateWorker {
            name: self.name,
            wallet: self.wallet,
            mining: match (self.pool, self.coin) {
                (Some(pool), Some(coin)) => Some(MiningSettings {
                    pool,
                    coin,
                    wallet: self.mining_wallet,
                }),
                _ => None,
            },
            prices,
        };
        let client = self.target.client()?;
        let issued = crate::commands::runtime()?.block_on(client.create_worker(&request))?;
        let text = serde_json::to_string_pretty(&issued.config)? + "\n";
        match &self.out {
            Some(out) => write_private(out, text.as_bytes())
                .with_context(|| format!("worker {} was issued but its worker.json could not be written to {}; revoke it and issue another", issued.worker_id, out.display()))?,
            None => std::io::stdout().write_all(text.as_bytes())?,
        }
        eprintln!("issued worker {}", issued.worker_id);
        if issued.config["mining"]["enabled"] == false {
            eprintln!(
                "note: mining is off in this worker.json: the coordinator serves no miner plugin (serve --miner-plugin PATH)"
            );
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// Writes a new file readable by its owner only.
fn write_private(path: &Path, bytes: &[u8]) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let mut file = options.open(path)?;
    file.write_all(bytes)?;
    file.sync_all()
}
