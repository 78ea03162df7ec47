//! Network access, which only miners get: TCP connections to the pool's
//! addresses and nowhere else, enforced by wasmtime-wasi's socket address
//! check. No name lookups (the host resolves the pool's name itself, so a
//! plugin cannot leak data through DNS), no UDP, no listening. Every refused
//! address is counted and logged (the first few, then every 1000th, so a
//! plugin cannot flood the log).

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::SocketAddrUse;

/// Refusals logged one by one before only every 1000th is.
const LOGGED_REFUSALS: u64 = 10;

/// What a plugin may reach over the network. The default grants nothing.
#[derive(Debug, Clone, Default)]
pub struct NetworkGrant {
    tcp_connect: Arc<[SocketAddr]>,
    refused: Arc<AtomicU64>,
}

impl NetworkGrant {
    /// Nothing: no sockets at all (every job).
    pub fn none() -> Self {
        Self::default()
    }

    /// TCP connections to `addresses` only (a miner and its pool).
    pub fn tcp_to(addresses: Vec<SocketAddr>) -> Self {
        NetworkGrant { tcp_connect: addresses.into(), refused: Arc::default() }
    }

    /// The addresses a plugin may connect to.
    pub fn addresses(&self) -> &[SocketAddr] {
        &self.tcp_connect
    }

    /// How many socket uses the check has refused so far.
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Whether `use_` of `addr` is allowed: connecting to a granted address,
    /// and the implicit bind to an ephemeral port that connecting does.
    pub fn permits(&self, addr: SocketAddr, use_: SocketAddrUse) -> bool {
        match use_ {
            SocketAddrUse::TcpConnect => self.tcp_connect.contains(&addr),
            SocketAddrUse::TcpBind => !self.tcp_connect.is_empty() && addr.ip().is_unspecified() && addr.port() == 0,
            _ => false,
        }
    }

    /// Configures a store's WASI context with this grant.
    pub fn apply(&self, wasi: &mut WasiCtxBuilder) {
        wasi.allow_udp(false).allow_ip_name_lookup(false).allow_tcp(!self.tcp_connect.is_empty());
        if self.tcp_connect.is_empty() {
            return;
        }
        let grant = self.clone();
        wasi.socket_addr_check(move |addr, use_| {
            let allowed = grant.permits(addr, use_);
            if !allowed {
                let n = grant.refused.fetch_add(1, Ordering::Relaxed) + 1;
                if n <= LOGGED_REFUSALS || n.is_multiple_of(1000) {
                    tracing::warn!(
                        address = %addr,
                        r#use = ?use_,
                        refused = n,
                        granted = ?grant.tcp_connect,
                        "plugin network access refused: only the mining pool's addresses may be reached"
                    );
                }
            }
            Box::pin(std::future::ready(allowed))
        });
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_connections_to_the_pool_are_permitted() {
        let pool: SocketAddr = "203.0.113.7:3333".parse().unwrap();
        let grant = NetworkGrant::tcp_to(vec![pool]);
        assert!(grant.permits(pool, SocketAddrUse::TcpConnect));
        assert!(grant.permits("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpBind), "connect's implicit bind");
        assert!(!grant.permits("203.0.113.7:3334".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert!(!grant.permits("127.0.0.1:3333".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert!(!grant.permits("0.0.0.0:8080".parse().unwrap(), SocketAddrUse::TcpBind), "no chosen port");
        assert!(!grant.permits("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpListen));
        assert!(!grant.permits(pool, SocketAddrUse::UdpSend));
        assert!(!NetworkGrant::none().permits(pool, SocketAddrUse::TcpConnect));
        assert!(!NetworkGrant::none().permits("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpBind));
    }
}
