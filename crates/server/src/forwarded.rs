//! The source address of a request: the TCP peer, unless the peer is one of the configured
//! trusted proxies, in which case the client they name in the one header the operator chose
//! ([`ProxyHeader`]: `X-Forwarded-For` by default, or `Forwarded`, RFC 7239) counts. The other
//! header is ignored entirely: a proxy sets or appends only its own header and passes the other
//! through as the client sent it, so believing it would let a client choose its address.
//! Walking from the nearest hop outwards, each address is believed only if the hop that
//! reported it is trusted, so a client cannot forge its way past the proxies by sending the
//! header itself.

use std::net::{IpAddr, SocketAddr};
use std::str::FromStr;

use axum::http::{HeaderMap, HeaderName};
use ipnet::IpNet;

/// The one header the trusted proxies write the client's address into.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum ProxyHeader {
    /// `X-Forwarded-For: client, proxy1, …` (what nginx's `$proxy_add_x_forwarded_for` sets).
    #[default]
    XForwardedFor,
    /// `Forwarded: for=client, for=proxy1, …` (RFC 7239).
    Forwarded,
}

impl FromStr for ProxyHeader {
    type Err = String;

    /// `X-Forwarded-For` or `Forwarded`, in any case.
    fn from_str(text: &str) -> Result<Self, String> {
        let text = text.trim();
        if text.eq_ignore_ascii_case("x-forwarded-for") {
            Ok(Self::XForwardedFor)
        } else if text.eq_ignore_ascii_case("forwarded") {
            Ok(Self::Forwarded)
        } else {
            Err(format!(
                "{text:?} is not a proxy header: X-Forwarded-For or Forwarded"
            ))
        }
    }
}

/// The proxies whose forwarding header is believed, and which header that is.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TrustedProxies {
    nets: Vec<IpNet>,
    header: ProxyHeader,
}

impl TrustedProxies {
    pub fn new(nets: Vec<IpNet>) -> Self {
        Self {
            nets,
            header: ProxyHeader::default(),
        }
    }

    /// Reads the client's address from `header` only.
    #[must_use]
    pub fn with_header(self, header: ProxyHeader) -> Self {
        Self { header, ..self }
    }

    pub fn header(&self) -> ProxyHeader {
        self.header
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
        Ok(Self::new(nets))
    }

    pub fn is_empty(&self) -> bool {
        self.nets.is_empty()
    }

    fn trusts(&self, address: IpAddr) -> bool {
        let address = canonical(address);
        self.nets.iter().any(|net| net.contains(&address))
    }

    /// The client's address, given the TCP peer and the request's headers.
    pub fn client_address(&self, peer: IpAddr, headers: &HeaderMap) -> IpAddr {
        let peer = canonical(peer);
        if !self.trusts(peer) {
            return peer;
        }
        let chain = forwarded_chain(headers, self.header);
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

/// The addresses the proxies appended to `header`, nearest last: `Forwarded`'s `for=` values or
/// `X-Forwarded-For`'s entries. The other header is never read.
fn forwarded_chain(headers: &HeaderMap, header: ProxyHeader) -> Vec<String> {
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
    match header {
        ProxyHeader::XForwardedFor => values(HeaderName::from_static("x-forwarded-for")),
        ProxyHeader::Forwarded => values(HeaderName::from_static("forwarded"))
            .iter()
            .map(|element| {
                element
                    .split(';')
                    .filter_map(|pair| pair.split_once('='))
                    .find(|(key, _)| key.trim().eq_ignore_ascii_case("for"))
                    .map(|(_, value)| value.trim().trim_matches('"').to_owned())
                    // An element without `for=` names nobody: parse_node refuses "", and the
                    // walk stops at the trusted hop that wrote it.
                    .unwrap_or_default()
            })
            .collect(),
    }
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
    fn a_forged_forwarded_header_does_not_choose_the_source_address() {
        // The default header is X-Forwarded-For, the one the shipped nginx example sets; a
        // client's own `Forwarded`, passed through by the proxy, is not read at all.
        let proxies = TrustedProxies::parse_list(&["10.0.0.0/8"]).unwrap();
        assert_eq!(proxies.header(), ProxyHeader::XForwardedFor);
        let h = headers(&[
            ("forwarded", "for=198.51.100.1"),
            ("x-forwarded-for", "203.0.113.9"),
        ]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &h),
            ip("203.0.113.9")
        );
        // Forwarded alone does not name anybody either: the trusted peer is the source.
        let only_forwarded = headers(&[("forwarded", "for=198.51.100.1")]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &only_forwarded),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn a_forged_x_forwarded_for_does_not_choose_the_source_when_forwarded_is_named() {
        let proxies = TrustedProxies::parse_list(&["10.0.0.0/8"])
            .unwrap()
            .with_header(ProxyHeader::Forwarded);
        let h = headers(&[
            ("forwarded", "for=203.0.113.9"),
            ("x-forwarded-for", "198.51.100.1"),
        ]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &h),
            ip("203.0.113.9")
        );
        let only_xff = headers(&[("x-forwarded-for", "198.51.100.1")]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &only_xff),
            ip("10.0.0.5")
        );
    }

    #[test]
    fn the_right_most_untrusted_hop_of_forwarded_counts_and_its_forms_parse() {
        let proxies = TrustedProxies::parse_list(&["10.0.0.0/8"])
            .unwrap()
            .with_header(ProxyHeader::Forwarded);
        // The client forged the first element; the proxy appended the real one.
        let h = headers(&[(
            "forwarded",
            "for=192.0.2.60;proto=http, for=\"[2001:db8:cafe::17]:4711\"",
        )]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &h),
            ip("2001:db8:cafe::17")
        );
        let chain = headers(&[(
            "forwarded",
            "for=198.51.100.1, for=203.0.113.9, for=10.1.1.1",
        )]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &chain),
            ip("203.0.113.9")
        );
        let unknown = headers(&[("forwarded", "for=unknown")]);
        assert_eq!(
            proxies.client_address(ip("10.0.0.5"), &unknown),
            ip("10.0.0.5")
        );
        let with_port = headers(&[("x-forwarded-for", "203.0.113.9:5555")]);
        assert_eq!(
            TrustedProxies::parse_list(&["10.0.0.0/8"])
                .unwrap()
                .client_address(ip("::ffff:10.0.0.5"), &with_port),
            ip("203.0.113.9")
        );
    }

    #[test]
    fn proxy_header_names_parse_in_any_case_and_others_are_refused() {
        assert_eq!("X-Forwarded-For".parse(), Ok(ProxyHeader::XForwardedFor));
        assert_eq!("x-forwarded-for".parse(), Ok(ProxyHeader::XForwardedFor));
        assert_eq!("FORWARDED".parse(), Ok(ProxyHeader::Forwarded));
        assert!("X-Real-IP".parse::<ProxyHeader>().is_err());
        assert!("".parse::<ProxyHeader>().is_err());
    }

    #[test]
    fn bad_entries_are_refused() {
        assert!(TrustedProxies::parse_list(&["10.0.0.0/33"]).is_err());
        assert!(TrustedProxies::parse_list(&["proxy.local"]).is_err());
        assert!(TrustedProxies::parse_list::<&str>(&[]).unwrap().is_empty());
    }
}
