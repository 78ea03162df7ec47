//! The portal's HTML forms as typed values: login, and a new worker (whose
//! fields turn into the API's [`CreateWorker`], so both paths check alike).

use std::collections::BTreeMap;

use pictor_protocol::api::{CreateWorker, MiningSettings};
use serde::Deserialize;

/// `POST /portal/login`.
#[derive(Debug, Clone, Default, Deserialize)]
pub struct LoginForm {
    /// The creator token, pasted.
    #[serde(default)]
    pub token: String,
}

/// `POST /portal/workers`: the new-worker form, as typed (kept to show the
/// form again after an error).
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(default)]
pub struct WorkerForm {
    /// The worker's name.
    pub name: String,
    /// The reward wallet.
    pub wallet: String,
    /// Mining pool URL; blank: no mining.
    pub pool: String,
    /// The coin to mine.
    pub coin: String,
    /// Payout address on the pool; blank: the wallet.
    pub mining_wallet: String,
    /// Price per render job; blank: none.
    pub price_render: String,
    /// Price per upscale job; blank: none.
    pub price_upscale: String,
    /// Price per train job; blank: none.
    pub price_train: String,
}

/// A new-worker form whose fields make no request.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FormError {
    /// A price that is not a number.
    #[error("`prices.{kind}` {text:?} is not a number")]
    Price {
        /// The job kind.
        kind: &'static str,
        /// What was typed.
        text: String,
    },
    /// A mining wallet without a pool.
    #[error(
        "`mining.pool` is empty: give the pool (stratum+tcp://host:port) to mine, or clear the mining wallet"
    )]
    WalletWithoutPool,
}

impl WorkerForm {
    /// The API request these fields make, or the field that is not a
    /// number / is missing.
    pub fn to_request(&self) -> Result<CreateWorker, FormError> {
        let mut prices = BTreeMap::new();
        for (kind, text) in [
            ("render", &self.price_render),
            ("upscale", &self.price_upscale),
            ("train", &self.price_train),
        ] {
            let text = text.trim();
            if text.is_empty() {
                continue;
            }
            let price: f64 = text.parse().map_err(|_| FormError::Price {
                kind,
                text: text.to_string(),
            })?;
            prices.insert(kind.to_string(), price);
        }
        let pool = self.pool.trim();
        let mining_wallet = self.mining_wallet.trim();
        let mining = if pool.is_empty() {
            if !mining_wallet.is_empty() {
                return Err(FormError::WalletWithoutPool);
            }
            None
        } else {
            Some(MiningSettings {
                pool: pool.to_string(),
                coin: self.coin.trim().to_string(),
                wallet: (!mining_wallet.is_empty()).then(|| mining_wallet.to_string()),
            })
        };
        Ok(CreateWorker {
            name: self.name.clone(),
            wallet: self.wallet.clone(),
            mining,
            prices,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blank_fields_mean_absent() {
        let form = WorkerForm {
            name: "rig".into(),
            wallet: "wallet-123".into(),
            coin: "btc".into(),
            price_render: " 0.5 ".into(),
            ..WorkerForm::default()
        };
        let request = form.to_request().unwrap();
        assert_eq!(request.mining, None);
        assert_eq!(request.prices.get("render"), Some(&0.5));
        assert_eq!(request.prices.len(), 1);
        let bad = WorkerForm {
            price_train: "cheap".into(),
            ..form
        };
        assert!(
            bad.to_request()
                .unwrap_err()
                .to_string()
                .contains("`prices.train`")
        );
    }
}
