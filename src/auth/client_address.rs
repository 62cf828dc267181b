//! Who a request came from, for the login throttle. The runtime's
//! `spin-client-addr` (the adapter keeps only the runtime's own, never one
//! the client sent) is the TCP peer: behind a TLS front, an ingress or a
//! platform's edge that is the front, the same for every client. When the
//! operator names that front in `trusted_proxies`, the client is the
//! address the front says it saw: the right-most entry of
//! `X-Forwarded-For` (or, without one, of `Forwarded: for=`) that is not
//! itself a trusted front. Entries left of it are the client's own words
//! and never read. From any other peer both headers are ignored, so a
//! forged one gains nothing.

use crate::host::{Headers, Host};
use ipnet::IpNet;
use std::net::{IpAddr, SocketAddr};

/// Who a request came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Client {
    /// Counted per address; IPv6 per /64, which one host usually holds.
    Address(IpAddr),
    /// The runtime names no address (`wasmtime serve`): all such clients
    /// share one count.
    Unknown,
    /// The runtime's address, or the entry a trusted front wrote, does not
    /// parse: no secret is checked.
    Unreadable,
    /// `trusted_proxies` does not parse: no secret is checked until the
    /// operator fixes it (what it says).
    Misconfigured(String),
}

/// The fronts whose forwarding headers are believed (`trusted_proxies`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Comma-separated addresses and CIDR ranges; empty trusts nobody.
    pub fn parse(text: &str) -> Result<Self, String> {
        let entry = |e: &str| -> Result<IpNet, String> {
            e.parse::<IpNet>()
                .or_else(|_| e.parse::<IpAddr>().map(IpNet::from))
                .map_err(|_| {
                    format!("trusted_proxies: {e:?} is neither an IP address nor a CIDR range")
                })
        };
        let nets = text.split(',').map(str::trim).filter(|e| !e.is_empty());
        nets.map(entry).collect::<Result<_, _>>().map(Self)
    }

    fn trusts(&self, ip: IpAddr) -> bool {
        self.0.iter().any(|net| net.contains(&ip))
    }
}

/// The request's client, by the `trusted_proxies` variable. One that
/// cannot be read trusts nobody (forwarding headers ignored: never a way
/// in, at worst every client behind a front shares one count).
pub fn client<H: Host>(host: &H, headers: &Headers) -> Client {
    let setting = host.setting("trusted_proxies").unwrap_or_else(|e| {
        eprintln!("trusted_proxies cannot be read, so no front is trusted: {e}");
        None
    });
    match TrustedProxies::parse(setting.as_deref().unwrap_or_default()) {
        Ok(trusted) => client_of(headers, &trusted),
        Err(e) => Client::Misconfigured(e),
    }
}

/// The client: the runtime's peer, or what a trusted peer forwarded.
pub fn client_of(headers: &Headers, trusted: &TrustedProxies) -> Client {
    let Some(peer) = headers.get("spin-client-addr") else {
        return Client::Unknown;
    };
    let Ok(peer) = peer.trim().parse::<SocketAddr>() else {
        return Client::Unreadable;
    };
    let peer = peer.ip().to_canonical();
    if !trusted.trusts(peer) {
        return Client::Address(peer);
    }
    // Right to left: the last entry is what the peer saw, and an entry
    // that is a trusted front forwarded in turn. All trusted: the farthest.
    let mut client = peer;
    for hop in forwarded_hops(headers).iter().rev() {
        let Some(ip) = *hop else {
            return Client::Unreadable;
        };
        client = ip;
        if !trusted.trusts(ip) {
            break;
        }
    }
    Client::Address(client)
}

/// The addresses a front lists, oldest first (`None`: not an address):
/// `X-Forwarded-For`, or `Forwarded`'s `for=` where there is none.
fn forwarded_hops(headers: &Headers) -> Vec<Option<IpAddr>> {
    let entries = |name: &str| -> Vec<String> {
        let values = headers.get_all(name);
        values
            .flat_map(|v| v.split(','))
            .map(|e| e.trim().to_string())
            .collect()
    };
    let xff = entries("x-forwarded-for");
    if !xff.is_empty() {
        return xff.iter().map(|e| address(e)).collect();
    }
    entries("forwarded")
        .iter()
        .filter_map(|element| for_parameter(element))
        .map(address)
        .collect()
}

/// The `for=` value of one `Forwarded` element (RFC 7239), unquoted.
fn for_parameter(element: &str) -> Option<&str> {
    element.split(';').find_map(|pair| {
        let (name, value) = pair.split_once('=')?;
        let value = value.trim().trim_matches('"');
        name.trim().eq_ignore_ascii_case("for").then_some(value)
    })
}

/// An entry's address: `192.0.2.1`, `192.0.2.1:80`, `2001:db8::1` or
/// `[2001:db8::1]:80`; `None` for `unknown`, an obfuscated name or junk.
fn address(entry: &str) -> Option<IpAddr> {
    let ip = entry
        .parse::<IpAddr>()
        .ok()
        .or_else(|| entry.parse::<SocketAddr>().ok().map(|a| a.ip()))
        .or_else(|| entry.strip_prefix('[')?.strip_suffix(']')?.parse().ok())?;
    Some(ip.to_canonical())
}

#[cfg(test)]
mod tests;
