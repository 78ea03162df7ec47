//! Issuing workers: what a [`CreateWorker`] request must hold (every field
//! checked, errors naming the field), the new worker's id and credential,
//! and the `worker.json` that `pictor-host run --config` imports.
//!
//! Mining settings are checked with `pictor_protocol::mining`, exactly as
//! the host checks them again when it loads the file. The credential is 32
//! random bytes in hex; only its sha256 is stored
//! ([`IssuedWorkerRecord::token_sha256`]), so the reply to the creation is
//! the only place it ever appears.

use pictor_protocol::ids::Wallet;
use std::collections::BTreeMap;

use pictor_protocol::Sha256Digest;
use pictor_protocol::api::{self, CreateWorker, MiningSettings};
use pictor_protocol::mining::{PoolAddress, algorithm_of, check_payout_address};

use crate::auth::token_sha256;
use crate::error::ApiError;
use crate::store::IssuedWorkerRecord;

/// The `version` of the `worker.json` files issued.
pub const CONFIG_VERSION: u32 = 1;

/// Longest worker name, in characters.
pub const MAX_NAME_CHARS: usize = 64;

/// Most prices one worker may list.
pub const MAX_PRICES: usize = 256;

/// A [`CreateWorker`] whose every field checked: texts trimmed, the coin in
/// lower case, the payout wallet resolved.
#[derive(Debug, Clone, PartialEq)]
pub struct CheckedWorker {
    /// The owner's name for it.
    pub name: String,
    /// The network reward wallet.
    pub wallet: Wallet,
    /// Mining settings, with `wallet` always set.
    pub mining: Option<MiningSettings>,
    /// Prices by kind.
    pub prices: BTreeMap<String, f64>,
}

/// A new worker's id and credential.
#[derive(Debug, Clone)]
pub struct Credential {
    /// `wkr-` and 10 lowercase hex digits.
    pub worker_id: String,
    /// 64 lowercase hex digits (32 random bytes).
    pub token: String,
}

/// Why no credential could be made.
#[derive(Debug, thiserror::Error)]
#[error("no randomness for a worker credential: {0}")]
pub struct NoRandomness(String);

impl From<NoRandomness> for ApiError {
    fn from(e: NoRandomness) -> Self {
        tracing::error!(error = %e, "cannot issue a worker");
        ApiError::internal(e.to_string())
    }
}

impl Credential {
    /// A fresh id and token from the system's random source.
    pub fn generate() -> Result<Self, NoRandomness> {
        let mut id = [0u8; 5];
        let mut token = [0u8; 32];
        getrandom::fill(&mut id).map_err(|e| NoRandomness(e.to_string()))?;
        getrandom::fill(&mut token).map_err(|e| NoRandomness(e.to_string()))?;
        Ok(Credential {
            worker_id: format!("wkr-{}", hex::encode(id)),
            token: hex::encode(token),
        })
    }
}

/// Checks every field of `request`; the error names the first field that
/// does not check and says what a good value looks like.
pub fn check(request: &CreateWorker) -> Result<CheckedWorker, ApiError> {
    let name = request.name.trim();
    if name.is_empty()
        || name.chars().count() > MAX_NAME_CHARS
        || name.chars().any(char::is_control)
    {
        return Err(ApiError::invalid(format!(
            "`name` {:?} must be 1-{MAX_NAME_CHARS} printable characters",
            request.name
        )));
    }
    let wallet: Wallet = request.wallet.trim().parse().map_err(|_| {
        ApiError::invalid(format!(
            "`wallet` {:?} is not a wallet address ({}); copy it from your wallet app",
            request.wallet,
            Wallet::RULE
        ))
    })?;
    let mining = request
        .mining
        .as_ref()
        .map(|m| check_mining(m, &wallet))
        .transpose()?;
    check_prices(&request.prices)?;
    Ok(CheckedWorker {
        name: name.to_string(),
        wallet,
        mining,
        prices: request.prices.clone(),
    })
}

/// Checks a price list, as issued or as a worker registers it: at most
/// [`MAX_PRICES`] kinds, each a valid kind with a finite price ≥ 0.
pub fn check_prices(prices: &BTreeMap<String, f64>) -> Result<(), ApiError> {
    if prices.len() > MAX_PRICES {
        return Err(ApiError::invalid(format!(
            "`prices` lists more than {MAX_PRICES} kinds"
        )));
    }
    for (kind, price) in prices {
        if !api::valid_kind(kind) {
            return Err(ApiError::invalid(format!(
                "`prices`: job kind {kind:?} must be {}",
                api::JOB_KIND_RULE
            )));
        }
        if !(price.is_finite() && *price >= 0.0) {
            return Err(ApiError::invalid(format!(
                "`prices.{kind}` must be a number ≥ 0, got {price}"
            )));
        }
    }
    Ok(())
}

fn check_mining(mining: &MiningSettings, wallet: &str) -> Result<MiningSettings, ApiError> {
    let pool = mining.pool.trim();
    PoolAddress::parse(pool).map_err(|e| ApiError::invalid(format!("`mining.pool` {e}")))?;
    let coin = mining.coin.trim().to_ascii_lowercase();
    algorithm_of(&coin).map_err(|e| ApiError::invalid(format!("`mining.coin` {e}")))?;
    let given = mining
        .wallet
        .as_deref()
        .map(str::trim)
        .filter(|w| !w.is_empty());
    let payout = given.unwrap_or(wallet);
    check_payout_address(&coin, payout).map_err(|e| {
        let defaulted = if given.is_none() {
            " (it defaults to `wallet`; give the payout address for the pool)"
        } else {
            ""
        };
        ApiError::invalid(format!("`mining.wallet` {e}{defaulted}"))
    })?;
    Ok(MiningSettings {
        pool: pool.to_string(),
        coin,
        wallet: Some(payout.to_string()),
    })
}

/// The store record of a checked worker with `credential`, issued at `now_ms`.
pub fn record(worker: CheckedWorker, credential: &Credential, now_ms: u64) -> IssuedWorkerRecord {
    IssuedWorkerRecord {
        id: credential.worker_id.clone(),
        name: worker.name,
        wallet: worker.wallet.into(),
        mining: worker.mining,
        prices: worker.prices,
        token_sha256: token_sha256(&credential.token),
        created_at_ms: now_ms,
        revoked_at_ms: None,
    }
}

/// The complete `worker.json` of `worker`: its id and name, wallet, this
/// coordinator's `url` with the worker's `token`, its mining settings and
/// prices. Mining is enabled only when the coordinator serves a miner
/// plugin (`miner_plugin`), which the host then downloads by digest.
pub fn worker_config(
    worker: &IssuedWorkerRecord,
    token: &str,
    url: &str,
    miner_plugin: Option<&Sha256Digest>,
) -> serde_json::Value {
    let mut config = serde_json::json!({
        "version": CONFIG_VERSION,
        "worker": { "id": worker.id, "name": worker.name },
        "wallet": worker.wallet,
        "coordinator": { "url": url, "token": token },
        "prices": worker.prices,
    });
    if let Some(mining) = &worker.mining {
        let mut section = serde_json::json!({
            "enabled": miner_plugin.is_some(),
            "pool": mining.pool,
            "coin": mining.coin,
            "wallet": mining.wallet.as_deref().unwrap_or(&worker.wallet),
        });
        if let Some(plugin) = miner_plugin {
            section["plugin_sha256"] = plugin.to_string().into();
        }
        config["mining"] = section;
    }
    config
}

#[cfg(test)]
mod tests {
    use super::*;

    const BTC: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";

    fn request() -> CreateWorker {
        CreateWorker {
            name: " Rig 1 ".into(),
            wallet: BTC.into(),
            mining: Some(MiningSettings {
                pool: "stratum+tcp://pool.example:3333".into(),
                coin: "BTC".into(),
                wallet: None,
            }),
            prices: [("render".to_string(), 0.5)].into(),
        }
    }

    #[test]
    fn a_good_request_is_normalized() {
        let checked = check(&request()).unwrap();
        assert_eq!(checked.name, "Rig 1");
        let mining = checked.mining.unwrap();
        assert_eq!(
            (mining.coin.as_str(), mining.wallet.as_deref()),
            ("btc", Some(BTC))
        );
    }

    #[test]
    fn every_field_is_checked_and_named() {
        type Change = Box<dyn Fn(&mut CreateWorker)>;
        let cases: Vec<(Change, &str)> = vec![
            (Box::new(|r| r.name = "".into()), "`name`"),
            (Box::new(|r| r.name = "x".repeat(65)), "`name`"),
            (Box::new(|r| r.name = "a\u{7}b".into()), "`name`"),
            (
                Box::new(|r| r.wallet = "short".into()),
                "`wallet` \"short\"",
            ),
            (
                Box::new(|r| r.wallet = "has space in it".into()),
                "`wallet`",
            ),
            (
                Box::new(|r| r.mining.as_mut().unwrap().pool = "http://pool:1".into()),
                "`mining.pool` \"http://pool:1\" must start with stratum+tcp://",
            ),
            (
                Box::new(|r| r.mining.as_mut().unwrap().coin = "doge".into()),
                "`mining.coin` \"doge\" is not supported",
            ),
            (
                Box::new(|r| {
                    r.mining.as_mut().unwrap().wallet =
                        Some("bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5".into())
                }),
                "`mining.wallet` \"bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5\" is not a btc address",
            ),
            (
                Box::new(|r| r.wallet = "farm-wallet-1".into()),
                "(it defaults to `wallet`",
            ),
            (
                Box::new(|r| r.prices = [("Render".to_string(), 1.0)].into()),
                "`prices`: job kind \"Render\"",
            ),
            (
                Box::new(|r| r.prices = [("render".to_string(), -1.0)].into()),
                "`prices.render` must be a number ≥ 0",
            ),
        ];
        for (change, expected) in cases {
            let mut r = request();
            change(&mut r);
            let error = check(&r).unwrap_err();
            assert!(
                error.message.contains(expected),
                "{expected}: {}",
                error.message
            );
        }
        let mut no_mining = request();
        no_mining.mining = None;
        no_mining.wallet = "farm-wallet-1".into();
        assert!(check(&no_mining).is_ok());
    }

    #[test]
    fn the_config_has_the_host_shape() {
        let credential = Credential::generate().unwrap();
        assert!(credential.worker_id.starts_with("wkr-") && credential.worker_id.len() == 14);
        assert_eq!(credential.token.len(), 64);
        let record = record(check(&request()).unwrap(), &credential, 7);
        assert_ne!(record.token_sha256, credential.token);
        let plugin = Sha256Digest::of(b"miner");
        let config = worker_config(&record, &credential.token, "http://c:1", Some(&plugin));
        assert_eq!(config["worker"]["id"], credential.worker_id.as_str());
        assert_eq!(config["coordinator"]["token"], credential.token.as_str());
        assert_eq!(config["mining"]["enabled"], true);
        assert_eq!(
            config["mining"]["plugin_sha256"],
            plugin.to_string().as_str()
        );
        assert_eq!(config["mining"]["wallet"], BTC);
        assert_eq!(config["prices"]["render"], 0.5);
        let config = worker_config(&record, &credential.token, "http://c:1", None);
        assert_eq!(config["mining"]["enabled"], false);
        assert!(config["mining"].get("plugin_sha256").is_none());
    }
}
