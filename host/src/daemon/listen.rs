//! From `listen on` directives to bound sockets. Binding is plain
//! blocking code, done before any runtime or thread exists, so a daemon
//! started as root can bind port 25 and then give root up (see
//! [`crate::privsep`]).

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

use crate::config::model::{AddressFamily, Config, ListenTarget, Listener, TlsMode};

#[derive(Debug, thiserror::Error)]
pub enum ListenError {
    #[error("{origin}: interface or address \"{name}\" not found")]
    NoSuchInterface { origin: String, name: String },
    #[error("{origin}: cannot listen on {addr}: {source}")]
    Bind {
        origin: String,
        addr: SocketAddr,
        source: std::io::Error,
    },
}

/// The port a listener uses when none is given.
pub fn default_port(l: &Listener) -> u16 {
    match l.tls {
        TlsMode::Smtps => 465,
        _ => 25,
    }
}

/// The socket addresses a `listen on` line stands for.
pub fn addresses(l: &Listener) -> Result<Vec<SocketAddr>, ListenError> {
    let port = l.port.unwrap_or_else(|| default_port(l));
    let not_found = |name: &str| ListenError::NoSuchInterface {
        origin: l.origin.to_string(),
        name: name.to_string(),
    };
    let ips: Vec<IpAddr> = match &l.target {
        ListenTarget::Addr(ip) => vec![*ip],
        ListenTarget::Socket => Vec::new(),
        ListenTarget::Interface(name) | ListenTarget::Host(name) => {
            let ips = interface_ips(name);
            if ips.is_empty() {
                resolve_host(name).ok_or_else(|| not_found(name))?
            } else {
                ips
            }
        }
    };
    Ok(ips
        .into_iter()
        .filter(|ip| match l.family {
            AddressFamily::Any => true,
            AddressFamily::Inet4 => ip.is_ipv4(),
            AddressFamily::Inet6 => ip.is_ipv6(),
        })
        .map(|ip| SocketAddr::new(ip, port))
        .collect())
}

/// Addresses of a named interface or group. BSD names (`lo0`) and
/// OpenSMTPD's words (`localhost`, `any`, `all`) are understood.
fn interface_ips(name: &str) -> Vec<IpAddr> {
    match name {
        "localhost" | "lo0" => {
            return vec![
                IpAddr::V4(Ipv4Addr::LOCALHOST),
                IpAddr::V6(Ipv6Addr::LOCALHOST),
            ]
        }
        "any" | "all" | "egress" => {
            return vec![
                IpAddr::V4(Ipv4Addr::UNSPECIFIED),
                IpAddr::V6(Ipv6Addr::UNSPECIFIED),
            ]
        }
        _ => {}
    }
    let Ok(addrs) = nix::ifaddrs::getifaddrs() else {
        return Vec::new();
    };
    let mut ips = Vec::new();
    for ifa in addrs.filter(|a| a.interface_name == name) {
        let Some(addr) = ifa.address else { continue };
        if let Some(v4) = addr.as_sockaddr_in() {
            ips.push(IpAddr::V4(v4.ip()));
        } else if let Some(v6) = addr.as_sockaddr_in6() {
            ips.push(IpAddr::V6(v6.ip()));
        }
    }
    ips
}

fn resolve_host(name: &str) -> Option<Vec<IpAddr>> {
    use std::net::ToSocketAddrs;
    let ips: Vec<IpAddr> = (name, 0).to_socket_addrs().ok()?.map(|a| a.ip()).collect();
    (!ips.is_empty()).then_some(ips)
}

/// One bound socket and the `listen on` line (index into
/// `Config::listeners`) it serves.
#[derive(Debug)]
pub struct Bound {
    pub index: usize,
    pub addr: SocketAddr,
    pub socket: std::net::TcpListener,
}

/// Binds every address of every listener the daemon can serve;
/// `listen on socket` lines are skipped (the local submission socket is
/// separate).
pub fn bind_all(config: &Config) -> Result<Vec<Bound>, ListenError> {
    let mut bound = Vec::new();
    for (index, l) in config.listeners.iter().enumerate() {
        if l.target == ListenTarget::Socket {
            continue;
        }
        for addr in addresses(l)? {
            let socket = bind(addr).map_err(|source| ListenError::Bind {
                origin: l.origin.to_string(),
                addr,
                source,
            })?;
            bound.push(Bound {
                index,
                addr,
                socket,
            });
        }
    }
    Ok(bound)
}

/// Binds one address with the options an MTA wants: address reuse for
/// quick restarts and IPv6 sockets that do not also take IPv4.
pub fn bind(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    if addr.is_ipv6() {
        // Both families are bound separately for "any".
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.bind(&addr.into())?;
    // OpenSMTPD's backlog of 5 collapses under load; be generous.
    socket.listen(1024)?;
    Ok(socket.into())
}
