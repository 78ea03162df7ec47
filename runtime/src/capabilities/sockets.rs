//! Network access. Every job and miner links the whole of `wasi:sockets`
//! (standard toolchains import it whether or not the plugin opens a
//! socket), and what a store may do with it is decided here, at run time:
//!
//! - jobs: nothing. Making a TCP or UDP socket and looking up a name answer
//!   `access-denied`, so no socket ever exists in a job's store.
//! - miners: TCP connections to the pool's addresses and nowhere else,
//!   enforced by wasmtime-wasi's socket address check; still no name lookups
//!   (the host resolves the pool's name itself, so a plugin cannot leak data
//!   through DNS), no UDP, no listening.
//!
//! Every refusal is counted and logged (the first few, then every 1000th, so
//! a plugin cannot flood the log).
//!
//! A pool that resolves to a loopback, private, link-local (cloud metadata
//! at 169.254.169.254 among them) or other non-public address is refused
//! unless the owner sets `mining.allow_private_pool` ([`reachable_pool`]):
//! a coordinator-issued config must not turn the miner into a scanner of
//! the owner's network. A miner holds at most [`MAX_CONNECTIONS`] sockets
//! at once ([`add_to_linker`]).

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use wasmtime::StoreContextMut;
use wasmtime::component::{Linker, Resource, ResourceAny};
use wasmtime_wasi::WasiCtxBuilder;
use wasmtime_wasi::sockets::{SocketAddrUse, WasiSocketsCtxView};

/// Refusals logged one by one before only every 1000th is.
const LOGGED_REFUSALS: u64 = 10;

/// What a plugin may reach over the network. The default grants nothing.
#[derive(Debug, Clone, Default)]
pub struct SocketGrant {
    tcp_connect: Arc<[SocketAddr]>,
    refused: Arc<AtomicU64>,
}

impl SocketGrant {
    /// Nothing: no sockets at all (every job).
    pub fn none() -> Self {
        Self::default()
    }

    /// TCP connections to `addresses` only (a miner and its pool).
    pub fn tcp_to(addresses: Vec<SocketAddr>) -> Self {
        SocketGrant {
            tcp_connect: addresses.into(),
            refused: Arc::default(),
        }
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
            SocketAddrUse::TcpBind => {
                !self.tcp_connect.is_empty() && addr.ip().is_unspecified() && addr.port() == 0
            }
            _ => false,
        }
    }

    /// Configures a store's WASI context with this grant.
    pub fn apply(&self, wasi: &mut WasiCtxBuilder) {
        wasi.allow_udp(false)
            .allow_ip_name_lookup(false)
            .allow_tcp(!self.tcp_connect.is_empty());
        if self.tcp_connect.is_empty() {
            return;
        }
        let grant = self.clone();
        wasi.socket_addr_check(move |addr, use_| {
            let allowed = grant.permits(addr, use_);
            if !allowed {
                grant.record_refusal(&Attempt::Address(addr, use_));
            }
            Box::pin(std::future::ready(allowed))
        });
    }

    /// Counts one refused attempt and logs it if it is among the first
    /// [`LOGGED_REFUSALS`] or a multiple of 1000; returns whether it logged.
    fn record_refusal(&self, attempt: &Attempt) -> bool {
        let n = self.refused.fetch_add(1, Ordering::Relaxed) + 1;
        let logged = n <= LOGGED_REFUSALS || n.is_multiple_of(1000);
        if logged {
            let rule = if self.tcp_connect.is_empty() {
                "jobs get no network"
            } else {
                "only the mining pool's addresses may be reached"
            };
            tracing::warn!(
                attempt = %attempt,
                refused = n,
                granted = ?self.tcp_connect,
                "plugin network access refused: {rule}"
            );
        }
        logged
    }
}

/// A use of the network a grant refused, as the log names it.
enum Attempt {
    /// `create-tcp-socket` without a TCP grant.
    TcpSocket,
    /// `create-udp-socket` (never granted).
    UdpSocket,
    /// `resolve-addresses` of a name (never granted), the name clipped and
    /// escaped.
    NameLookup(String),
    /// A bind, connect or listen the address check refused.
    Address(SocketAddr, SocketAddrUse),
}

impl std::fmt::Display for Attempt {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Attempt::TcpSocket => f.write_str("create a TCP socket"),
            Attempt::UdpSocket => f.write_str("create a UDP socket"),
            Attempt::NameLookup(name) => write!(f, "look up the name `{name}`"),
            Attempt::Address(addr, use_) => write!(f, "{use_:?} {addr}"),
        }
    }
}

/// Bytes of a looked-up name kept for the log.
const LOGGED_NAME_BYTES: usize = 253;

/// Sockets one miner may hold at once (a pool connection, a reconnect in
/// flight, and room to spare).
pub const MAX_CONNECTIONS: usize = 4;

/// Whether `ip` is an address of the public internet (not loopback,
/// private, link-local, shared/CGNAT, multicast, unspecified or reserved).
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_loopback()
                || v4.is_private()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80)
        }
    }
}

/// A mining pool that resolves only to non-public addresses, refused
/// because the owner did not set `mining.allow_private_pool`.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error(
    "mining pool {host} resolves only to non-public addresses ({}); set `mining.allow_private_pool` to true \
     in worker.json to mine on a pool in your own network",
    listed(.addresses)
)]
pub struct PrivatePool {
    /// The pool's host name.
    pub host: String,
    /// What it resolved to.
    pub addresses: Vec<SocketAddr>,
}

fn listed(addresses: &[SocketAddr]) -> String {
    let listed: Vec<String> = addresses.iter().map(ToString::to_string).collect();
    listed.join(", ")
}

/// The pool addresses a miner may be granted: the public ones, or all of
/// them with `allow_private`. An error names the addresses and the switch.
pub fn reachable_pool(
    host: &str,
    addresses: Vec<SocketAddr>,
    allow_private: bool,
) -> Result<Vec<SocketAddr>, PrivatePool> {
    if allow_private {
        return Ok(addresses);
    }
    let (public, private): (Vec<SocketAddr>, Vec<SocketAddr>) =
        addresses.into_iter().partition(|a| is_public(a.ip()));
    if public.is_empty() {
        return Err(PrivatePool {
            host: host.to_string(),
            addresses: private,
        });
    }
    if !private.is_empty() {
        tracing::warn!(pool = host, refused = ?private, "mining pool's non-public addresses left out");
    }
    Ok(public)
}

/// What a store's socket calls see: wasmtime-wasi's sockets context, the
/// store's grant, and the table handles of the TCP sockets the plugin made
/// (dropped ones are pruned when it makes the next).
pub struct SocketsView<'a> {
    /// wasmtime-wasi's sockets context and the store's resource table.
    pub wasi: WasiSocketsCtxView<'a>,
    /// What the store may reach.
    pub grant: &'a SocketGrant,
    /// Table handles of the sockets made so far.
    pub made: &'a mut Vec<u32>,
}

/// The functions below must shadow exactly the version wasmtime-wasi
/// defines ([`WASI_VERSION`](crate::linker::WASI_VERSION)): a guest importing
/// any 0.2.x is linked to that definition, so shadowing an older one would
/// leave wasi's own in place
/// (`a_miner_that_hoards_sockets_gets_new_socket_limit_past_four` and
/// `a_job_that_opens_sockets_is_denied_and_logged` check).
const SOCKETS_VERSION: &str = crate::linker::WASI_VERSION;

/// Links the functions that make sockets or look up names in place of
/// wasmtime-wasi's, reaching the store's sockets through `getter`:
///
/// - `create-tcp-socket`: `access-denied` (logged) without a TCP grant;
///   with one, wasi's own once the store holds fewer than
///   [`MAX_CONNECTIONS`] sockets (else `new-socket-limit`, logged);
/// - `create-udp-socket` and `resolve-addresses`: `access-denied`, logged.
///
/// Call after wasmtime-wasi's sockets are linked.
pub fn add_to_linker<T: 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> SocketsView<'_>,
) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    let linked = shadow(linker, getter);
    linker.allow_shadowing(false);
    linked
}

fn shadow<T: 'static>(
    linker: &mut Linker<T>,
    getter: fn(&mut T) -> SocketsView<'_>,
) -> wasmtime::Result<()> {
    linker
        .instance(&format!("wasi:sockets/tcp-create-socket@{SOCKETS_VERSION}"))?
        .func_wrap(
            "create-tcp-socket",
            move |mut store: StoreContextMut<'_, T>, (family,): (AddressFamily,)| {
                create_tcp_socket(getter(store.data_mut()), family)
            },
        )?;
    linker
        .instance(&format!("wasi:sockets/udp-create-socket@{SOCKETS_VERSION}"))?
        .func_wrap(
            "create-udp-socket",
            move |mut store: StoreContextMut<'_, T>, (_family,): (AddressFamily,)| {
                getter(store.data_mut())
                    .grant
                    .record_refusal(&Attempt::UdpSocket);
                Ok((Err::<Resource<wasmtime_wasi::p2::UdpSocket>, _>(
                    SocketsErrorCode::AccessDenied,
                ),))
            },
        )?;
    linker
        .instance(&format!("wasi:sockets/ip-name-lookup@{SOCKETS_VERSION}"))?
        .func_wrap(
            "resolve-addresses",
            move |mut store: StoreContextMut<'_, T>,
                  (_network, name): (Resource<wasmtime_wasi::p2::Network>, String)| {
                let name = crate::text::one_line(&name, LOGGED_NAME_BYTES);
                getter(store.data_mut())
                    .grant
                    .record_refusal(&Attempt::NameLookup(name));
                Ok((Err::<ResourceAny, _>(SocketsErrorCode::AccessDenied),))
            },
        )?;
    Ok(())
}

type SocketsErrorCode = wasmtime_wasi::p2::bindings::sockets::network::ErrorCode;
type AddressFamily = wasmtime_wasi::p2::bindings::sockets::network::IpAddressFamily;

fn create_tcp_socket(
    view: SocketsView<'_>,
    family: AddressFamily,
) -> wasmtime::Result<(Result<Resource<wasmtime_wasi::p2::TcpSocket>, SocketsErrorCode>,)> {
    use wasmtime_wasi::p2::bindings::sockets::tcp_create_socket::Host;
    let SocketsView {
        mut wasi,
        grant,
        made,
    } = view;
    if grant.addresses().is_empty() {
        grant.record_refusal(&Attempt::TcpSocket);
        return Ok((Err(SocketsErrorCode::AccessDenied),));
    }
    // Sockets the guest dropped left the table: count the live ones.
    let table = &mut *wasi.table;
    made.retain(|&rep| {
        table
            .get_any_mut(rep)
            .is_ok_and(|s| s.downcast_ref::<wasmtime_wasi::p2::TcpSocket>().is_some())
    });
    if made.len() >= MAX_CONNECTIONS {
        tracing::warn!(
            held = made.len(),
            "miner refused a new socket: it holds the most it may"
        );
        return Ok((Err(SocketsErrorCode::NewSocketLimit),));
    }
    match wasi.create_tcp_socket(family) {
        Ok(socket) => {
            made.push(socket.rep());
            Ok((Ok(socket),))
        }
        Err(error) => Ok((Err(error.downcast()?),)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_refused_sockets_logs_the_first_ten_then_every_thousandth() {
        let grant = SocketGrant::tcp_to(vec!["203.0.113.7:3333".parse().unwrap()]);
        let elsewhere: SocketAddr = "10.0.0.1:22".parse().unwrap();
        assert!(!grant.permits(elsewhere, SocketAddrUse::TcpConnect));
        let logged = (0..5000)
            .filter(|_| {
                grant.record_refusal(&Attempt::Address(elsewhere, SocketAddrUse::TcpConnect))
            })
            .count();
        assert_eq!(grant.refused(), 5000, "every refusal is counted");
        assert_eq!(logged, 10 + 5, "1–10, then 1000, 2000, … 5000");
    }

    #[test]
    fn pools_on_private_networks_are_refused_unless_allowed() {
        for private in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.9",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "::ffff:127.0.0.1",
        ] {
            assert!(!is_public(private.parse().unwrap()), "{private}");
        }
        for public in ["203.0.113.7", "8.8.8.8", "2001:4860:4860::8888"] {
            assert!(is_public(public.parse().unwrap()), "{public}");
        }
        let addrs = |list: &[&str]| {
            list.iter()
                .map(|a| a.parse().unwrap())
                .collect::<Vec<SocketAddr>>()
        };
        let err = reachable_pool("pool.example", addrs(&["127.0.0.1:3333"]), false)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("127.0.0.1:3333") && err.contains("mining.allow_private_pool"),
            "{err}"
        );
        assert_eq!(
            reachable_pool("p", addrs(&["127.0.0.1:3333"]), true).unwrap(),
            addrs(&["127.0.0.1:3333"])
        );
        assert_eq!(
            reachable_pool("p", addrs(&["10.0.0.1:1", "203.0.113.7:1"]), false).unwrap(),
            addrs(&["203.0.113.7:1"])
        );
    }

    #[test]
    fn only_connections_to_the_pool_are_permitted() {
        let pool: SocketAddr = "203.0.113.7:3333".parse().unwrap();
        let grant = SocketGrant::tcp_to(vec![pool]);
        assert!(grant.permits(pool, SocketAddrUse::TcpConnect));
        assert!(
            grant.permits("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpBind),
            "connect's implicit bind"
        );
        assert!(!grant.permits(
            "203.0.113.7:3334".parse().unwrap(),
            SocketAddrUse::TcpConnect
        ));
        assert!(!grant.permits("127.0.0.1:3333".parse().unwrap(), SocketAddrUse::TcpConnect));
        assert!(
            !grant.permits("0.0.0.0:8080".parse().unwrap(), SocketAddrUse::TcpBind),
            "no chosen port"
        );
        assert!(!grant.permits("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpListen));
        assert!(!grant.permits(pool, SocketAddrUse::UdpSend));
        assert!(!SocketGrant::none().permits(pool, SocketAddrUse::TcpConnect));
        assert!(!SocketGrant::none().permits("0.0.0.0:0".parse().unwrap(), SocketAddrUse::TcpBind));
    }
}
