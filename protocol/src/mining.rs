//! Mining settings that both sides check the same way: the coins a worker
//! can mine, the pool URL, and the owner's payout address for a coin.
//!
//! The coordinator checks them when it issues a worker's `worker.json`; the
//! host checks them again when it loads that file. Messages are fragments
//! that read after the setting's name: "`mining.wallet` …".

/// The coins a worker can mine, with the hash each one uses.
pub const SUPPORTED_COINS: &[(&str, &str)] = &[("btc", "sha256d"), ("bch", "sha256d")];

/// A mining setting that does not check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MiningSettingError {
    /// The coin is not one of [`SUPPORTED_COINS`].
    #[error("{coin:?} is not supported; this host mines {}", supported_list())]
    UnsupportedCoin {
        /// The coin given.
        coin: String,
    },
    /// The pool URL is malformed; the message says how.
    #[error("{url:?} {problem}")]
    BadPool {
        /// The URL given.
        url: String,
        /// What is wrong, with an example of a good one.
        problem: String,
    },
    /// The payout address is not an address of the coin.
    #[error("{address:?} is not a {coin} address: {problem}; copy it from your wallet app")]
    BadAddress {
        /// The coin.
        coin: String,
        /// The address given.
        address: String,
        /// What is wrong.
        problem: String,
    },
}

fn supported_list() -> String {
    SUPPORTED_COINS
        .iter()
        .map(|(c, _)| *c)
        .collect::<Vec<_>>()
        .join(", ")
}

/// The hash algorithm of `coin` (lower case), or why it is not supported.
pub fn algorithm_of(coin: &str) -> Result<&'static str, MiningSettingError> {
    SUPPORTED_COINS
        .iter()
        .find(|(c, _)| *c == coin)
        .map(|(_, a)| *a)
        .ok_or_else(|| MiningSettingError::UnsupportedCoin {
            coin: coin.to_string(),
        })
}

/// A pool's address from `stratum+tcp://host:port`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolAddress {
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// TCP port.
    pub port: u16,
}

impl PoolAddress {
    /// Parses a pool URL: `stratum+tcp://host:port`, nothing after the port.
    pub fn parse(url: &str) -> Result<PoolAddress, MiningSettingError> {
        let bad = |problem: &str| MiningSettingError::BadPool {
            url: url.to_string(),
            problem: problem.to_string(),
        };
        let rest = url.strip_prefix("stratum+tcp://").ok_or_else(|| {
            bad("must start with stratum+tcp:// (e.g. stratum+tcp://pool.example:3333)")
        })?;
        let rest = rest.strip_suffix('/').unwrap_or(rest);
        if rest.contains(['/', '?', '#', '@']) || rest.chars().any(char::is_whitespace) {
            return Err(bad(
                "must be only stratum+tcp://host:port (no path, user or spaces)",
            ));
        }
        let (host, port) = match rest.strip_prefix('[') {
            Some(v6) => {
                let (host, after) = v6
                    .split_once(']')
                    .ok_or_else(|| bad("has an unclosed [ in its IPv6 address"))?;
                (host, after.strip_prefix(':'))
            }
            None => match rest.rsplit_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (rest, None),
            },
        };
        if host.is_empty() {
            return Err(bad("has no host"));
        }
        let valid_host = host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
        if !valid_host || host.len() > 253 {
            return Err(bad("has a malformed host name"));
        }
        let port = port
            .filter(|p| !p.is_empty())
            .ok_or_else(|| bad("has no port (e.g. :3333)"))?;
        let port = port
            .parse::<u16>()
            .ok()
            .filter(|p| *p != 0)
            .ok_or_else(|| bad("has a port that is not a number from 1 to 65535"))?;
        Ok(PoolAddress {
            host: host.to_string(),
            port,
        })
    }
}

/// Checks that `address` is a payout address of `coin` (lower case),
/// checksum included: Bitcoin's base58check (P2PKH, P2SH) and bech32 /
/// bech32m segwit addresses; Bitcoin Cash's CashAddr (with or without its
/// `bitcoincash:` prefix) and legacy base58check. Mainnet, testnet and
/// regtest forms are all accepted (a pool says which network it mines).
pub fn check_payout_address(coin: &str, address: &str) -> Result<(), MiningSettingError> {
    algorithm_of(coin)?;
    let bad = |problem: String| MiningSettingError::BadAddress {
        coin: coin.to_string(),
        address: address.to_string(),
        problem,
    };
    if address.is_empty() || address.len() > 128 || !address.is_ascii() {
        return Err(bad("it must be 1-128 ASCII characters".into()));
    }
    match coin {
        "btc" => {
            let lower = address.to_ascii_lowercase();
            if ["bc1", "tb1", "bcrt1"].iter().any(|p| lower.starts_with(p)) {
                check_segwit(address).map_err(bad)
            } else {
                check_base58(address, &[0x00, 0x05, 0x6f, 0xc4]).map_err(bad)
            }
        }
        "bch" => {
            if address.starts_with(['1', '3', 'm', 'n', '2']) && !address.contains(':') {
                check_base58(address, &[0x00, 0x05, 0x6f, 0xc4]).map_err(bad)
            } else {
                check_cashaddr(address).map_err(bad)
            }
        }
        // Every supported coin has an arm above.
        _ => Ok(()),
    }
}

/// A segwit address (BIP 173 / BIP 350): checksum, witness version and
/// program length.
fn check_segwit(address: &str) -> Result<(), String> {
    let (hrp, _version, _program) =
        bech32::segwit::decode(address).map_err(|e| format!("not a valid segwit address ({e})"))?;
    match hrp.as_str().to_ascii_lowercase().as_str() {
        "bc" | "tb" | "bcrt" => Ok(()),
        other => Err(format!(
            "its prefix {other:?} is not Bitcoin's (bc, tb or bcrt)"
        )),
    }
}

/// A base58check address of 1 version byte + a 20-byte hash.
fn check_base58(address: &str, versions: &[u8]) -> Result<(), String> {
    let bytes = bs58::decode(address)
        .with_check(None)
        .into_vec()
        .map_err(|e| format!("not a valid base58check address ({e})"))?;
    match bytes.split_first() {
        Some((version, hash)) if hash.len() == 20 && versions.contains(version) => Ok(()),
        Some((version, hash)) if hash.len() == 20 => Err(format!(
            "its version byte {version:#04x} is not a pay-to-key or pay-to-script one"
        )),
        _ => Err(format!(
            "it holds {} bytes, not a 21-byte address",
            bytes.len()
        )),
    }
}

/// CashAddr's BCH-code checksum over the prefix's low 5 bits, a 0, and the
/// payload's 5-bit groups (the Bitcoin Cash address spec).
fn cashaddr_polymod(values: impl Iterator<Item = u8>) -> u64 {
    const GENERATORS: [u64; 5] = [
        0x98_f2bc_8e61,
        0x79_b76d_99e2,
        0xf3_3e5f_b3c4,
        0xae_2eab_e2a8,
        0x1e_4f43_e470,
    ];
    let mut c: u64 = 1;
    for d in values {
        let c0 = (c >> 35) as u8;
        c = ((c & 0x07_ffff_ffff) << 5) ^ u64::from(d);
        for (bit, generator) in GENERATORS.iter().enumerate() {
            if c0 & (1 << bit) != 0 {
                c ^= generator;
            }
        }
    }
    c ^ 1
}

const CHARSET: &[u8; 32] = b"qpzry9x8gf2tvdw0s3jn54khce6mua7l";

fn check_cashaddr(address: &str) -> Result<(), String> {
    if address.chars().any(|c| c.is_ascii_uppercase())
        && address.chars().any(|c| c.is_ascii_lowercase())
    {
        return Err("it mixes upper and lower case".into());
    }
    let lower = address.to_ascii_lowercase();
    let (prefix, payload) = match lower.split_once(':') {
        Some((prefix @ ("bitcoincash" | "bchtest" | "bchreg"), payload)) => (prefix, payload),
        Some((prefix, _)) => {
            return Err(format!(
                "its prefix {prefix:?} is not bitcoincash, bchtest or bchreg"
            ));
        }
        None => ("bitcoincash", lower.as_str()),
    };
    let groups: Vec<u8> = payload
        .bytes()
        .map(|b| CHARSET.iter().position(|c| *c == b).map(|p| p as u8))
        .collect::<Option<_>>()
        .ok_or("it has a character outside CashAddr's alphabet")?;
    // 34 data groups (version byte + 20-byte hash) + 8 checksum groups.
    if groups.len() != 42 {
        return Err(format!(
            "it has {} characters after the prefix, not 42",
            groups.len()
        ));
    }
    let checked = prefix
        .bytes()
        .map(|b| b & 0x1f)
        .chain([0])
        .chain(groups.iter().copied());
    if cashaddr_polymod(checked) != 0 {
        return Err("its checksum does not match (a typo?)".into());
    }
    // The version byte's type bits: 0 = pay-to-key, 1 = pay-to-script; size bits 0 = 160-bit hash.
    let version = (groups[0] << 3) | (groups[1] >> 2);
    if version & 0x80 != 0 || version & 0x07 != 0 || (version >> 3) > 1 {
        return Err(format!(
            "its version byte {version:#04x} is not a 20-byte pay-to-key or pay-to-script one"
        ));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn published_bitcoin_addresses_check() {
        for address in [
            "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa", // genesis block's coinbase
            "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy", // BIP 13 example
            "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4", // BIP 173 vector
            "BC1QW508D6QEJXTDG4Y5R3ZARVARY0C5XW7KV8F3T4",
            "tb1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3q0sl5k7",
            "bc1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqzk5jj0", // BIP 350 vector
        ] {
            assert_eq!(check_payout_address("btc", address), Ok(()), "{address}");
        }
    }

    #[test]
    fn published_bitcoin_cash_addresses_check() {
        for address in [
            "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a", // spec vector
            "qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
            "BITCOINCASH:PPM2QSZNHKS23Z7629MMS6S4CWEF74VCWVN0H829PQ",
            "1BpEi6DfDAUFd7GtittLSdBeYJvcoaVggu",
        ] {
            assert_eq!(check_payout_address("bch", address), Ok(()), "{address}");
        }
    }

    #[test]
    fn typos_and_other_coins_are_refused_with_the_reason() {
        let cases = [
            ("btc", "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNb", "base58check"),
            (
                "btc",
                "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t5",
                "segwit",
            ),
            (
                "btc",
                "ltc1qw508d6qejxtdg4y5r3zarvary0c5xw7kgmn4n9",
                "base58check",
            ),
            ("btc", "bc1qsamplewalletaddress000000", "segwit"),
            (
                "bch",
                "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6c",
                "checksum",
            ),
            (
                "bch",
                "bitcoincash:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6",
                "not 42",
            ),
            (
                "bch",
                "litecoin:qpm2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
                "prefix",
            ),
            (
                "bch",
                "bitcoincash:QPM2qsznhks23z7629mms6s4cwef74vcwvy22gdx6a",
                "mixes",
            ),
        ];
        for (coin, address, why) in cases {
            let err = check_payout_address(coin, address).unwrap_err().to_string();
            assert!(
                err.contains(why) && err.contains(address),
                "{address}: {err}"
            );
        }
        let err = check_payout_address("doge", "D8vFz4p1L37jdg47HXKtSHA5uYLYxbGgPD").unwrap_err();
        assert_eq!(
            err.to_string(),
            "\"doge\" is not supported; this host mines btc, bch"
        );
    }

    #[test]
    fn pool_urls_parse_or_say_what_is_wrong() {
        assert_eq!(
            PoolAddress::parse("stratum+tcp://pool.example.org:3333"),
            Ok(PoolAddress {
                host: "pool.example.org".into(),
                port: 3333
            })
        );
        assert_eq!(
            PoolAddress::parse("stratum+tcp://[::1]:3333/"),
            Ok(PoolAddress {
                host: "::1".into(),
                port: 3333
            })
        );
        for (url, why) in [
            ("http://pool.example:3333", "must start with stratum+tcp://"),
            ("stratum+tcp://pool.example", "has no port"),
            ("stratum+tcp://pool.example:0", "1 to 65535"),
            ("stratum+tcp://pool.example:99999", "1 to 65535"),
            ("stratum+tcp://:3333", "has no host"),
            ("stratum+tcp://user@pool.example:3333", "no path, user"),
            ("stratum+tcp://pool.example:3333/x", "no path, user"),
            ("stratum+tcp://pool_example:3333", "malformed host"),
        ] {
            let err = PoolAddress::parse(url).unwrap_err().to_string();
            assert!(err.contains(why), "{url}: {err}");
        }
    }
}
