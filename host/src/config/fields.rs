//! Checks of single `worker.json` values: the wallet, job kinds, the job
//! source, the status page address, the mining settings, paths.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use pictor_protocol::digest::Sha256Digest;
use pictor_protocol::ids::{JobKind, Wallet};
use pictor_protocol::mining::{self, MiningSettingError, PoolAddress};

use super::{JobSource, MiningConfig, RawCoordinator, RawMining};

pub(super) fn check_wallet(key: &str, wallet: &str) -> Result<Wallet, String> {
    wallet.parse().map_err(|_| {
        format!(
            "`{key}` {wallet:?} is not a wallet address ({}); copy it from your wallet app",
            Wallet::RULE
        )
    })
}

pub(super) fn check_kind(key: &str, kind: &str) -> Result<JobKind, String> {
    kind.parse()
        .map_err(|_| format!("`{key}`: job kind {kind:?} must be {}", JobKind::RULE))
}

pub(super) fn source(raw: &RawCoordinator, dir: &Path) -> Result<JobSource, String> {
    match (&raw.spool, &raw.url) {
        (spool, Some(text)) => {
            let url = url::Url::parse(text)
                .map_err(|e| format!("`coordinator.url` {text:?} is not a URL: {e}"))?;
            if !matches!(url.scheme(), "http" | "https") || url.host().is_none() {
                return Err(format!(
                    "`coordinator.url` {text:?} must be an http:// or https:// URL with a host"
                ));
            }
            let token = raw.token.clone().unwrap_or_default();
            if token.len() < 16 {
                return Err("`coordinator.token` is missing or shorter than 16 characters; download this worker's config again from the portal".into());
            }
            let spool = spool.as_deref().unwrap_or("worker-data");
            if spool.is_empty() {
                return Err("`coordinator.spool` is empty; give a working folder (default `worker-data` beside the config)".into());
            }
            Ok(JobSource::Coordinator {
                url,
                token,
                spool: absolute(dir, spool),
            })
        }
        (spool, None) => {
            if raw.token.is_some() {
                return Err("`coordinator.token` is only used with `coordinator.url`; remove it or add the URL".into());
            }
            let spool = spool.as_deref().unwrap_or("spool");
            if spool.is_empty() {
                return Err("`coordinator.spool` is empty; give a folder (default `spool` beside the config)".into());
            }
            Ok(JobSource::Spool(absolute(dir, spool)))
        }
    }
}

/// Checks a status page address: an IP literal (or `localhost`) and a
/// port, on a loopback interface only. `key` names where it came from
/// (`status.listen` or `--status-listen`).
pub fn status_listen(key: &str, text: &str) -> Result<SocketAddr, ListenError> {
    let text = text.trim();
    let address: SocketAddr = match text.strip_prefix("localhost:") {
        Some(port) => port
            .parse::<u16>()
            .map(|port| SocketAddr::from(([127, 0, 0, 1], port)))
            .map_err(|e| e.to_string()),
        None => text.parse::<SocketAddr>().map_err(|e| e.to_string()),
    }
    .map_err(|error| ListenError::NotAnAddress {
        key: key.to_string(),
        text: text.to_string(),
        error,
    })?;
    if !address.ip().is_loopback() {
        return Err(ListenError::NotLoopback {
            key: key.to_string(),
            text: text.to_string(),
        });
    }
    Ok(address)
}

/// A status page address that cannot be used; `key` is where it came
/// from (`status.listen` or `--status-listen`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ListenError {
    /// Not an IP (or `localhost`) and a port.
    #[error("`{key}` {text:?} is not an address and port like 127.0.0.1:9187 ({error})")]
    NotAnAddress {
        /// Where it came from.
        key: String,
        /// What was given.
        text: String,
        /// Why it does not parse.
        error: String,
    },
    /// Not on a loopback interface.
    #[error(
        "`{key}` {text:?} is not a loopback address: the status page is for the owner's machine only, so it listens on 127.0.0.1 (or ::1); \
         to see it from elsewhere, use an SSH tunnel (ssh -L 9187:127.0.0.1:9187 this-host) or a reverse proxy with authentication"
    )]
    NotLoopback {
        /// Where it came from.
        key: String,
        /// What was given.
        text: String,
    },
}

pub(super) fn mining(
    raw: &RawMining,
    wallet: &str,
    dir: &Path,
    has_coordinator: bool,
) -> Result<MiningConfig, String> {
    let pool = PoolAddress::parse(&raw.pool).map_err(|e| format!("`mining.pool` {e}"))?;
    let coin = raw.coin.to_lowercase();
    let algorithm = mining::algorithm_of(&coin).map_err(|_| {
        // The coin as the owner wrote it.
        format!(
            "`mining.coin` {}",
            MiningSettingError::UnsupportedCoin {
                coin: raw.coin.clone()
            }
        )
    })?;
    let payout = raw.wallet.clone().unwrap_or_else(|| wallet.to_string());
    mining::check_payout_address(&coin, &payout).map_err(|e| format!("`mining.wallet` {e}"))?;
    let idle = raw.idle_delay_s.unwrap_or(30.0);
    if !(idle.is_finite() && (0.0..=86_400.0).contains(&idle)) {
        return Err(format!(
            "`mining.idle_delay_s` must be between 0 and 86400 seconds, got {idle}"
        ));
    }
    let plugin = raw.plugin.as_deref().map(|p| absolute(dir, p));
    let plugin_sha256 = match &raw.plugin_sha256 {
        Some(text) => Some(text.parse::<Sha256Digest>().map_err(|_| {
            format!("`mining.plugin_sha256` {text:?} is not a sha256 (64 hex digits); copy it from the portal")
        })?),
        None => None,
    };
    if raw.enabled && plugin.is_none() && plugin_sha256.is_none() {
        return Err(
            "mining is enabled but names no miner: give `mining.plugin` (the mining component, e.g. plugins/mine.wasm) or `mining.plugin_sha256` (downloaded from the coordinator)".into(),
        );
    }
    if raw.enabled && plugin.is_none() && !has_coordinator {
        return Err("`mining.plugin_sha256` is downloaded from the coordinator, but there is no `coordinator.url`; give `mining.plugin` (a path) instead".into());
    }
    Ok(MiningConfig {
        enabled: raw.enabled,
        pool_host: pool.host,
        pool_port: pool.port,
        coin,
        algorithm,
        wallet: payout,
        plugin,
        plugin_sha256,
        idle_delay: std::time::Duration::from_secs_f64(idle),
        require_nvidia: raw.require_nvidia.unwrap_or(true),
        allow_private_pool: raw.allow_private_pool.unwrap_or(false),
    })
}

pub(super) fn absolute(dir: &Path, path: &str) -> PathBuf {
    let path = Path::new(path);
    if path.is_absolute() {
        path.to_path_buf()
    } else {
        dir.join(path)
    }
}
