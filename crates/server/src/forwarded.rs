//! The source address of a request: the TCP peer, unless the peer is one of the configured
//! trusted proxies, in which case the client they name in `Forwarded` (RFC 7239) or
//! `X-Forwarded-For` counts. Walking from the nearest hop outwards, each address is believed
//! only if the hop that reported it is trusted, so a client cannot forge its way past the
//! proxies by sending the header itself.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// The proxies whose forwarding headers are believed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self(nets)
    }

    /// `10.0.0.0/8,192.168.1.7` (a bare address is a single host).
    pub fn parse_list<S: AsRef<str>>(items: &[S]) -> Result<Self, String> {
        let mut nets = Vec::new();
        for item in items.iter().flat_map(|i| i.as_ref().split(',')) {
            let item = item.trim();
            if item.is_empty() {
                continue;
            }
            let net = IpNet::from_str(item)
                .or_else(|_| IpAddr::from_str(item).map(IpNet::from))
                .map_err(|_| format!("{item:?} is not an IP address or CIDR block"))?;
            nets.push(net);
        }
        Ok(Self(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.0.iter().any(|net| net.contains(&address))
    }

    /// The client's address, given the TCP peer and the request's headers.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_chain(headers);
        let mut current = peer;
        for hop in chain.iter().rev() {
            if !self.trusts(current) {
                break;
            }
            match parse_node(hop) {
                Some(address) => current = address,
                // "unknown" or an obfuscated name: the trusted hop that wrote it is as far as
                // anyone can tell.
                None => break,
            }
        }
        current
    }
}

/// An IPv4-mapped IPv6 peer (a dual-stack socket) is its IPv4 address.
fn canonical(address: IpAddr) -> IpAddr {
    match address {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(address, IpAddr::V4),
        v4 => v4,
    }
}

/// The addresses the proxies appended, nearest last: `Forwarded`'s `for=` values if that header
/// is present (it is the standard), else `X-Forwarded-For`'s.
fn forwarded_chain(headers: &HeaderMap) -> Vec<String> {
    let values = |name: HeaderName| {
        headers
            .get_all(name)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
            .collect::<Vec<_>>()
    };
    let forwarded = values(HeaderName::from_static("forwarded"));
    if !forwarded.is_empty() {
        return forwarded
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                    .map(|(_, value)| value.trim().trim_matches('"').to_owned())
                    .unwrap_or_default()
            })
            .collect();
    }
    values(HeaderName::from_static("x-forwarded-for"))
}

/// `192.0.2.1`, `192.0.2.1:4711`, `2001:db8::1`, `[2001:db8::1]:4711`.
fn parse_node(node: &str) -> Option<IpAddr> {
    let node = node.trim();
    if let Ok(address) = IpAddr::from_str(node) {
        return Some(canonical(address));
    }
    if let Ok(socket) = SocketAddr::from_str(node) {
        return Some(canonical(socket.ip()));
    }
    let inner = node.strip_prefix('[')?.split(']').next()?;
    IpAddr::from_str(inner).ok().map(canonical)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(*name, value.parse().unwrap());
        }
        map
    }

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn an_untrusted_peer_is_the_source_whatever_it_claims() {
        let proxies = TrustedProxies::parse_list(&["10.0.0.0/8"]).unwrap();
        let forged = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(
            proxies.client_address(ip("203.0.113.9"), &forged),
            ip("203.0.113.9")
        );
        assert_eq!(
            TrustedProxies::default().client_address(ip("10.0.0.1"), &forged),
            ip("10.0.0.1")
        );
    }

    #[test]
    fn a_trusted_proxy_names_the_client_and_forgeries_before_it_are_ignored() {
        let proxies = TrustedProxies::parse_list(&["10.0.0.0/8, 192.168.1.7"]).unwrap();
        // The client forged the first entry; the edge proxy appended the real one.
        let h = headers(&[("x-forwarded-for", "1.2.3.4, 203.0.113.9, 10.1.1.1")]);
        assert_eq!(
            proxies.client_address(ip("192.168.1.7"), &h),
            ip("203.0.113.9")
        );
        // Several header lines are one list.
        let lines = headers(&[
            ("x-forwarded-for", "203.0.113.9"),
            ("x-forwarded-for", "10.1.1.1"),
        ]);
        assert_eq!(
            proxies.client_address(ip("10.2.2.2"), &lines),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn forwarded_takes_precedence_and_its_forms_parse() {
        let proxies = TrustedProxies::parse_list(&["10.0.0.0/8"]).unwrap();
        let h = headers(&[
            (
                "forwarded",
                "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
            ),
            ("x-forwarded-for", "198.51.100.77"),
        ]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &h),
            ip("2001:db8:cafe::17")
        );
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &unknown),
            ip("10.0.0.5")
        );
        let with_port = headers(&[("x-forwarded-for", "203.0.113.9:5555")]);
        assert_eq!(
            proxies.client_address(ip("::ffff:10.0.0.5"), &with_port),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(TrustedProxies::parse_list(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse_list(&["proxy.local"]).is_err());
        assert!(TrustedProxies::parse_list::<&str>(&[]).unwrap().is_empty());
    }
}
