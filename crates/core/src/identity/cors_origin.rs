//! The CORS allowlist: which web origins a browser app may call the API from (Salesforce's
//! "CORS Allowlist"). A pattern is an origin — scheme, host, optional port, nothing else —
//! whose host may start with `*.` in front of a domain of two labels or more
//! (`https://*.example.com`). `https://` is required except on the loopback host, where a
//! developer's app runs over plain HTTP. An IP address is its own origin: a pattern naming
//! `192.0.2.7` does not match a name that resolves to it, nor the other way round.
//!
//! `*.example.com` matches every subdomain of `example.com`, at any depth (`a.example.com`,
//! `b.a.example.com`), as Salesforce documents it ("adds all subdomains"), and not
//! `example.com` itself. Hosts compare without regard to ASCII case, and a port left out is the
//! scheme's default, as browsers send it.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::str::FromStr;

/// One entry of the allowlist, parsed and checked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorsOriginPattern {
    scheme: Scheme,
    host: HostPattern,
    /// `None`: the scheme's default port.
    port: Option<u16>,
}

/// A browser's `Origin` header, parsed: only a parsed origin can match a pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebOrigin {
    scheme: Scheme,
    host: Host,
    port: Option<u16>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Scheme {
    Http,
    Https,
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Host {
    /// Lowercase.
    Name(String),
    Ip(IpAddr),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum HostPattern {
    Exact(Host),
    /// `*.` and this domain (lowercase, two labels or more): its subdomains at any depth.
    SubdomainsOf(String),
}

/// Why a pattern is not one (each message says what to write instead).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CorsPatternError {
    #[error("{0:?} is not an origin like https://app.example.com")]
    NotAnOrigin(String),
    #[error(
        "{0:?} must use https:// (http:// is allowed only for localhost, 127.0.0.1 and [::1])"
    )]
    PlainHttpOffLoopback(String),
    #[error("{0:?} has a scheme other than https:// or http://")]
    UnsupportedScheme(String),
    #[error("{0:?} has a path, query or fragment: an origin is only scheme://host[:port]")]
    HasPath(String),
    #[error("{0:?} has user info (user@): an origin is only scheme://host[:port]")]
    HasUserInfo(String),
    #[error("{0:?} has a port that is not a number from 1 to 65535")]
    BadPort(String),
    #[error("{0:?} has a host that is not a domain name or an IP address")]
    BadHost(String),
    #[error(
        "{0:?}: a wildcard is allowed only as `*.` in front of a second-level domain, \
         like https://*.example.com"
    )]
    MisplacedWildcard(String),
}

impl FromStr for CorsOriginPattern {
    type Err = CorsPatternError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts = split_origin(text)?;
        let wildcard_domain = match parts.host {
            BracketedOrPlain::Plain(host) => host.strip_prefix("*."),
            BracketedOrPlain::Bracketed(_) => None,
        };
        let host = match wildcard_domain {
            Some(domain) => {
                let domain = parse_name(domain)
                    .filter(|domain| domain.split('.').count() >= 2)
                    .ok_or_else(|| CorsPatternError::MisplacedWildcard(text.to_owned()))?;
                HostPattern::SubdomainsOf(domain)
            }
            None if parts.host.has_wildcard() => {
                return Err(CorsPatternError::MisplacedWildcard(text.to_owned()))
            }
            None => HostPattern::Exact(parse_host(parts.host, text)?),
        };
        let on_loopback = matches!(&host, HostPattern::Exact(host) if host.is_loopback());
        if parts.scheme == Scheme::Http && !on_loopback {
            return Err(CorsPatternError::PlainHttpOffLoopback(text.to_owned()));
        }
        Ok(Self {
            scheme: parts.scheme,
            host,
            port: parts.port,
        })
    }
}

impl FromStr for WebOrigin {
    type Err = CorsPatternError;

    /// An `Origin` header's value; `null` (an opaque origin) and anything else that is not
    /// `scheme://host[:port]` is refused, and so matches no pattern.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let parts = split_origin(text)?;
        if parts.host.has_wildcard() {
            return Err(CorsPatternError::BadHost(text.to_owned()));
        }
        Ok(Self {
            scheme: parts.scheme,
            host: parse_host(parts.host, text)?,
            port: parts.port,
        })
    }
}

impl CorsOriginPattern {
    /// Whether a browser on `origin` may call.
    pub fn matches(&self, origin: &WebOrigin) -> bool {
        if self.scheme != origin.scheme || self.port != origin.port {
            return false;
        }
        match (&self.host, &origin.host) {
            (HostPattern::Exact(pattern), host) => pattern == host,
            (HostPattern::SubdomainsOf(domain), Host::Name(name)) => name
                .strip_suffix(domain.as_str())
                .and_then(|label| label.strip_suffix('.'))
                .is_some_and(|subdomain| !subdomain.is_empty()),
            (HostPattern::SubdomainsOf(_), Host::Ip(_)) => false,
        }
    }
}

impl WebOrigin {
    /// The origin of a URL such as the issuer (`https://login.example.com/base` gives
    /// `https://login.example.com`); `None` when it has none this module understands.
    pub fn of_url(url: &str) -> Option<Self> {
        let parsed = url::Url::parse(url).ok()?;
        let origin = parsed.origin().ascii_serialization();
        origin.parse().ok()
    }
}

impl Host {
    fn is_loopback(&self) -> bool {
        match self {
            Host::Name(name) => name == "localhost",
            Host::Ip(ip) => ip.is_loopback(),
        }
    }
}

/// The allowlist: empty, no origin may call.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct CorsAllowlist {
    patterns: Vec<CorsOriginPattern>,
}

impl CorsAllowlist {
    pub fn new(patterns: Vec<CorsOriginPattern>) -> Self {
        Self { patterns }
    }

    /// Every pattern parsed; every bad one reported, one line each.
    pub fn parse_all<S: AsRef<str>>(texts: &[S]) -> Result<Self, Vec<CorsPatternError>> {
        let (patterns, errors): (Vec<_>, Vec<_>) = texts
            .iter()
            .map(|text| text.as_ref().trim().parse::<CorsOriginPattern>())
            .partition(Result::is_ok);
        if errors.is_empty() {
            Ok(Self::new(patterns.into_iter().flatten().collect()))
        } else {
            Err(errors.into_iter().filter_map(Result::err).collect())
        }
    }

    pub fn allows(&self, origin: &WebOrigin) -> bool {
        self.patterns.iter().any(|pattern| pattern.matches(origin))
    }

    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }
}

struct OriginParts<'a> {
    scheme: Scheme,
    host: BracketedOrPlain<'a>,
    port: Option<u16>,
}

/// `scheme://host[:port]`, the port normalised (the scheme's default is `None`).
fn split_origin(text: &str) -> Result<OriginParts<'_>, CorsPatternError> {
    let not_an_origin = || CorsPatternError::NotAnOrigin(text.to_owned());
    let (scheme, rest) = text.split_once("://").ok_or_else(not_an_origin)?;
    let scheme = match scheme.to_ascii_lowercase().as_str() {
        "https" => Scheme::Https,
        "http" => Scheme::Http,
        "" => return Err(not_an_origin()),
        _ => return Err(CorsPatternError::UnsupportedScheme(text.to_owned())),
    };
    if rest.contains(['/', '?', '#']) {
        return Err(CorsPatternError::HasPath(text.to_owned()));
    }
    if rest.contains('@') {
        return Err(CorsPatternError::HasUserInfo(text.to_owned()));
    }
    // An IPv6 literal has colons of its own: the port is after its closing bracket.
    let (host, port) = match rest.strip_prefix('[') {
        Some(bracketed) => {
            let (inside, after) = bracketed
                .split_once(']')
                .ok_or_else(|| CorsPatternError::BadHost(text.to_owned()))?;
            let port = match after {
                "" => None,
                _ => Some(
                    after
                        .strip_prefix(':')
                        .ok_or_else(|| CorsPatternError::BadPort(text.to_owned()))?,
                ),
            };
            (BracketedOrPlain::Bracketed(inside), port)
        }
        None => match rest.split_once(':') {
            Some((host, port)) => (BracketedOrPlain::Plain(host), Some(port)),
            None => (BracketedOrPlain::Plain(rest), None),
        },
    };
    let port = match port {
        None => None,
        Some(digits) => {
            let number = (!digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
                .then(|| digits.parse::<u16>().ok())
                .flatten()
                .filter(|port| *port != 0)
                .ok_or_else(|| CorsPatternError::BadPort(text.to_owned()))?;
            let default = match scheme {
                Scheme::Https => 443,
                Scheme::Http => 80,
            };
            (number != default).then_some(number)
        }
    };
    if matches!(host, BracketedOrPlain::Plain("")) {
        return Err(not_an_origin());
    }
    Ok(OriginParts { scheme, host, port })
}

/// A host as written: an IPv6 literal in brackets (without them here), or anything else.
#[derive(Clone, Copy)]
enum BracketedOrPlain<'a> {
    Bracketed(&'a str),
    Plain(&'a str),
}

impl BracketedOrPlain<'_> {
    fn has_wildcard(self) -> bool {
        match self {
            Self::Bracketed(host) | Self::Plain(host) => host.contains('*'),
        }
    }
}

/// A domain name, an IPv4 address or a bracketed IPv6 address.
fn parse_host(host: BracketedOrPlain<'_>, text: &str) -> Result<Host, CorsPatternError> {
    let host = match host {
        BracketedOrPlain::Bracketed(inside) => {
            return inside
                .parse::<Ipv6Addr>()
                .map(|ip| Host::Ip(IpAddr::V6(ip)))
                .map_err(|_| CorsPatternError::BadHost(text.to_owned()))
        }
        BracketedOrPlain::Plain(host) => host,
    };
    if let Ok(ip) = host.parse::<Ipv4Addr>() {
        return Ok(Host::Ip(IpAddr::V4(ip)));
    }
    parse_name(host)
        .map(Host::Name)
        .ok_or_else(|| CorsPatternError::BadHost(text.to_owned()))
}

/// A DNS name of letter-digit-hyphen labels, lowercase; its last label not all digits (that
/// would be a malformed IP address). A trailing dot is refused: browsers do not send it.
fn parse_name(name: &str) -> Option<String> {
    let lower = name.to_ascii_lowercase();
    let labels_ok = lower.split('.').all(|label| {
        !label.is_empty()
            && label.len() <= 63
            && !label.starts_with('-')
            && !label.ends_with('-')
            && label
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    let last_label_named = lower
        .rsplit('.')
        .next()
        .is_some_and(|label| !label.bytes().all(|b| b.is_ascii_digit()));
    (labels_ok && last_label_named && lower.len() <= 253).then_some(lower)
}

impl fmt::Display for CorsOriginPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let scheme = match self.scheme {
            Scheme::Http => "http",
            Scheme::Https => "https",
        };
        write!(f, "{scheme}://")?;
        match &self.host {
            HostPattern::Exact(Host::Name(name)) => write!(f, "{name}")?,
            HostPattern::Exact(Host::Ip(IpAddr::V4(ip))) => write!(f, "{ip}")?,
            HostPattern::Exact(Host::Ip(IpAddr::V6(ip))) => write!(f, "[{ip}]")?,
            HostPattern::SubdomainsOf(domain) => write!(f, "*.{domain}")?,
        }
        match self.port {
            Some(port) => write!(f, ":{port}"),
            None => Ok(()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{CorsAllowlist, CorsOriginPattern, CorsPatternError, WebOrigin};

    fn pattern(text: &str) -> CorsOriginPattern {
        match text.parse() {
            Ok(pattern) => pattern,
            Err(error) => panic!("{text}: {error}"),
        }
    }

    fn origin(text: &str) -> WebOrigin {
        match text.parse() {
            Ok(origin) => origin,
            Err(error) => panic!("{text}: {error}"),
        }
    }

    #[test]
    fn a_malformed_or_unsafe_pattern_is_refused_with_its_reason() {
        use CorsPatternError as E;
        type Reason = fn(String) -> CorsPatternError;
        let cases: &[(&str, Reason)] = &[
            ("app.example.com", E::NotAnOrigin),
            ("://app.example.com", E::NotAnOrigin),
            ("https://", E::NotAnOrigin),
            ("http://app.example.com", E::PlainHttpOffLoopback),
            ("http://192.0.2.7", E::PlainHttpOffLoopback),
            ("http://*.example.com", E::PlainHttpOffLoopback),
            ("ftp://app.example.com", E::UnsupportedScheme),
            ("https://app.example.com/", E::HasPath),
            ("https://app.example.com/app", E::HasPath),
            ("https://app.example.com?x=1", E::HasPath),
            ("https://app.example.com#top", E::HasPath),
            ("https://user@app.example.com", E::HasUserInfo),
            ("https://app.example.com:", E::BadPort),
            ("https://app.example.com:0", E::BadPort),
            ("https://app.example.com:65536", E::BadPort),
            ("https://app.example.com:+443", E::BadPort),
            ("https://app.example.com:8x", E::BadPort),
            ("https://[::1]8080", E::BadPort),
            ("https://app..example.com", E::BadHost),
            ("https://-app.example.com", E::BadHost),
            ("https://app_1.example.com", E::BadHost),
            ("https://app.example.com.", E::BadHost),
            ("https://256.1.1.1", E::BadHost),
            ("https://[::g]", E::BadHost),
            ("https://[::1", E::BadHost),
            ("https://*.com", E::MisplacedWildcard),
            ("https://*", E::MisplacedWildcard),
            ("https://a.*.example.com", E::MisplacedWildcard),
            ("https://*example.com", E::MisplacedWildcard),
            ("https://app.example.*", E::MisplacedWildcard),
            ("https://*.*.example.com", E::MisplacedWildcard),
        ];
        for (text, reason) in cases {
            assert_eq!(
                text.parse::<CorsOriginPattern>(),
                Err(reason((*text).to_owned())),
                "{text}"
            );
        }
    }

    #[test]
    fn a_well_formed_pattern_is_accepted_in_its_normal_form() {
        let cases = [
            ("https://app.example.com", "https://app.example.com"),
            ("HTTPS://App.Example.COM", "https://app.example.com"),
            ("https://app.example.com:443", "https://app.example.com"),
            (
                "https://app.example.com:8443",
                "https://app.example.com:8443",
            ),
            ("https://*.example.com", "https://*.example.com"),
            ("https://*.eu.example.co.uk", "https://*.eu.example.co.uk"),
            ("http://localhost:3000", "http://localhost:3000"),
            ("http://localhost:80", "http://localhost"),
            ("http://127.0.0.1:5173", "http://127.0.0.1:5173"),
            ("http://[::1]:5173", "http://[::1]:5173"),
            ("https://192.0.2.7", "https://192.0.2.7"),
            ("https://[2001:DB8::7]:9443", "https://[2001:db8::7]:9443"),
        ];
        for (text, normal) in cases {
            assert_eq!(pattern(text).to_string(), normal, "{text}");
        }
    }

    #[test]
    fn an_origin_matches_only_the_patterns_that_name_it() {
        let cases = [
            ("https://app.example.com", "https://app.example.com", true),
            ("https://app.example.com", "https://APP.example.com", true),
            (
                "https://app.example.com",
                "https://app.example.com:443",
                true,
            ),
            ("https://app.example.com", "http://app.example.com", false),
            (
                "https://app.example.com",
                "https://app.example.com:8443",
                false,
            ),
            (
                "https://app.example.com:8443",
                "https://app.example.com",
                false,
            ),
            (
                "https://app.example.com",
                "https://other.example.com",
                false,
            ),
            (
                "https://app.example.com",
                "https://app.example.com.evil.test",
                false,
            ),
            ("https://*.example.com", "https://a.example.com", true),
            ("https://*.example.com", "https://b.a.example.com", true),
            ("https://*.example.com", "https://example.com", false),
            ("https://*.example.com", "https://badexample.com", false),
            (
                "https://*.example.com",
                "https://a.example.com.evil.test",
                false,
            ),
            ("https://*.example.com", "http://a.example.com", false),
            ("https://*.example.com", "https://a.example.com:8443", false),
            ("http://localhost:3000", "http://localhost:3000", true),
            ("http://localhost:3000", "http://127.0.0.1:3000", false),
            ("http://127.0.0.1:3000", "http://localhost:3000", false),
            ("https://192.0.2.7", "https://192.0.2.7", true),
            ("https://192.0.2.7", "https://192.0.2.8", false),
            ("http://[::1]:8080", "http://[0:0:0:0:0:0:0:1]:8080", true),
        ];
        for (pattern_text, origin_text, expected) in cases {
            assert_eq!(
                pattern(pattern_text).matches(&origin(origin_text)),
                expected,
                "{pattern_text} against {origin_text}"
            );
        }
    }

    #[test]
    fn an_opaque_or_malformed_origin_header_is_no_origin() {
        for text in [
            "null",
            "",
            "https://*.example.com",
            "https://a.example.com/x",
        ] {
            assert!(text.parse::<WebOrigin>().is_err(), "{text}");
        }
    }

    #[test]
    fn every_bad_pattern_of_a_list_is_reported() {
        let errors = CorsAllowlist::parse_all(&[
            "https://good.example.com",
            "http://bad.example.com",
            "https://*.com",
        ])
        .err()
        .unwrap_or_default();
        assert_eq!(errors.len(), 2);
        let list = CorsAllowlist::parse_all(&[" https://good.example.com "]).unwrap_or_default();
        assert!(list.allows(&origin("https://good.example.com")));
        assert!(!list.allows(&origin("https://other.example.com")));
        assert!(!CorsAllowlist::default().allows(&origin("https://good.example.com")));
    }

    #[test]
    fn the_issuer_url_gives_its_origin() {
        assert_eq!(
            WebOrigin::of_url("https://login.example.com/base/"),
            Some(origin("https://login.example.com"))
        );
        assert_eq!(
            WebOrigin::of_url("http://127.0.0.1:8080"),
            Some(origin("http://127.0.0.1:8080"))
        );
    }
}
