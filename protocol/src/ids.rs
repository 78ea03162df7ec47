//! Names both sides agree on, parsed once: a [`WorkerId`], a [`JobId`]
//! (job and lease ids), a [`JobKind`] and a reward [`Wallet`]. Each is a
//! string that passed its rule ([`crate::api::valid_worker_id`] and the
//! others): made with `parse` (`FromStr`) or read with serde, which refuses
//! a value outside the rule with the same words. A value in hand is valid,
//! so code that takes one never checks it again.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

use crate::api;

/// A value outside the rule of its name.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{what} {value:?} must be {rule}")]
pub struct InvalidName {
    /// What it was meant to be, e.g. `worker id`.
    pub what: &'static str,
    /// The value, as given.
    pub value: String,
    /// The rule, in words.
    pub rule: &'static str,
}

macro_rules! name_type {
    ($(#[$doc:meta])* $name:ident, $what:literal, $rule:expr, $valid:path) => {
        $(#[$doc])*
        #[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        #[serde(try_from = "String", into = "String")]
        pub struct $name(String);

        impl $name {
            /// The rule, in words.
            pub const RULE: &'static str = $rule;

            /// The name as text.
            pub fn as_str(&self) -> &str {
                &self.0
            }
        }

        impl FromStr for $name {
            type Err = InvalidName;

            fn from_str(value: &str) -> Result<Self, InvalidName> {
                Self::try_from(value.to_string())
            }
        }

        impl TryFrom<String> for $name {
            type Error = InvalidName;

            fn try_from(value: String) -> Result<Self, InvalidName> {
                if $valid(&value) {
                    Ok($name(value))
                } else {
                    Err(InvalidName {
                        what: $what,
                        value,
                        rule: $rule,
                    })
                }
            }
        }

        impl From<$name> for String {
            fn from(name: $name) -> String {
                name.0
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(&self.0)
            }
        }

        impl std::ops::Deref for $name {
            type Target = str;

            fn deref(&self) -> &str {
                &self.0
            }
        }

        impl AsRef<str> for $name {
            fn as_ref(&self) -> &str {
                &self.0
            }
        }

        impl std::borrow::Borrow<str> for $name {
            fn borrow(&self) -> &str {
                &self.0
            }
        }

        impl PartialEq<str> for $name {
            fn eq(&self, other: &str) -> bool {
                self.0 == other
            }
        }

        impl PartialEq<&str> for $name {
            fn eq(&self, other: &&str) -> bool {
                self.0 == *other
            }
        }
    };
}

name_type!(
    /// A worker id: 3–64 characters from `A-Z a-z 0-9 - _` (no `.`: pools
    /// read `wallet.worker` as two parts).
    WorkerId,
    "worker id",
    api::WORKER_ID_RULE,
    api::valid_worker_id
);

name_type!(
    /// A job or lease id: 1–128 characters from `A-Z a-z 0-9 . _ -`, not
    /// starting with `.`.
    JobId,
    "job id",
    api::JOB_ID_RULE,
    api::valid_id
);

name_type!(
    /// A job kind: 1–64 characters from `a-z 0-9 -`, e.g. `render`.
    JobKind,
    "job kind",
    api::JOB_KIND_RULE,
    api::valid_kind
);

name_type!(
    /// The network reward wallet: 8–128 characters from `A-Z a-z 0-9 : . _ -`.
    Wallet,
    "wallet",
    api::WALLET_RULE,
    api::valid_wallet
);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_once_and_refuse_what_breaks_their_rule() {
        let id: WorkerId = "wkr-7f3a9c".parse().unwrap();
        assert_eq!(id, "wkr-7f3a9c");
        assert_eq!(id.to_string(), "wkr-7f3a9c");
        let error = "rig.1".parse::<WorkerId>().unwrap_err();
        assert_eq!(
            error.to_string(),
            "worker id \"rig.1\" must be 3-64 characters from A-Z a-z 0-9 - _"
        );
        assert!("job-1.0".parse::<JobId>().is_ok());
        assert!(".hidden".parse::<JobId>().is_err());
        assert!("render".parse::<JobKind>().is_ok());
        assert!("Render".parse::<JobKind>().is_err());
        assert!(
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4"
                .parse::<Wallet>()
                .is_ok()
        );
        assert!("short".parse::<Wallet>().is_err());
    }

    #[test]
    fn serde_reads_only_valid_names_and_writes_plain_strings() {
        let kind: JobKind = serde_json::from_str(r#""upscale""#).unwrap();
        assert_eq!(serde_json::to_string(&kind).unwrap(), r#""upscale""#);
        let error = serde_json::from_str::<JobKind>(r#""../x""#).unwrap_err();
        assert!(
            error
                .to_string()
                .starts_with("job kind \"../x\" must be 1-64 characters from a-z 0-9 -"),
            "{error}"
        );
    }
}
