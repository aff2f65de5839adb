//! A client's refresh-token IP allowlist (Salesforce's connected-app "Refresh Token IP
//! allowlist"; docs/controls.md): the address ranges its code exchanges and refreshes may come
//! from. Empty: no restriction.
//!
//! Written by administrators as text: IPv4 or IPv6 CIDR ranges (a bare address is a single
//! host), separated by commas, spaces or new lines. What is refused, with a reason:
//! - more than [`MAX_IP_ALLOWLIST_RANGES`] ranges (Salesforce's limit);
//! - a range with bits set past its prefix (`10.1.2.3/8`): most likely a typing mistake, and
//!   normalising it would silently allow far more than the administrator read;
//! - a `/0` range (`0.0.0.0/0`, `::/0`), which admits every address of its family, unless it is
//!   marked with a trailing `!` (`::/0!`), so that "no restriction" is never set by accident.

use std::fmt::Write as _;
use std::net::IpAddr;
use std::str::FromStr;

use ipnet::IpNet;

/// Most ranges one client's allowlist may hold (Salesforce's limit).
pub const MAX_IP_ALLOWLIST_RANGES: usize = 128;

/// The marker after a `/0` range that says "every address of this family, on purpose".
pub const ALLOW_ANY_MARKER: char = '!';

/// The words that clear an allowlist where a list is expected (`--ip-allowlist none`).
const CLEARING_WORDS: [&str; 2] = ["none", "off"];

/// A client's allowlist: normalised ranges, in the order given, without repeats.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct IpAllowlist(Vec<IpNet>);

impl IpAllowlist {
    /// The allowlist an administrator wrote, checked as the module says. `none`, `off` or
    /// nothing at all is the empty list.
    pub fn parse(text: &str) -> Result<Self, String> {
        let items: Vec<&str> = text
            .split(|c: char| c == ',' || c.is_whitespace())
            .filter(|item| !item.is_empty())
            .collect();
        if let [word] = items.as_slice() {
            if CLEARING_WORDS.iter().any(|w| word.eq_ignore_ascii_case(w)) {
                return Ok(Self::default());
            }
        }
        if items.len() > MAX_IP_ALLOWLIST_RANGES {
            return Err(format!(
                "an IP allowlist holds at most {MAX_IP_ALLOWLIST_RANGES} ranges; {} given",
                items.len()
            ));
        }
        let mut ranges = Vec::with_capacity(items.len());
        for item in items {
            let range = parse_range(item)?;
            if !ranges.contains(&range) {
                ranges.push(range);
            }
        }
        Ok(Self(ranges))
    }

    /// The stored form ([`IpAllowlist::to_stored`]) read back. The checks were made when it was
    /// written; only the syntax is checked again.
    pub fn from_stored(text: &str) -> Result<Self, String> {
        text.split(',')
            .filter(|item| !item.is_empty())
            .map(|item| {
                IpNet::from_str(item).map_err(|_| format!("stored IP range {item:?} is malformed"))
            })
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// The ranges joined by commas, without markers: what the stores keep.
    pub fn to_stored(&self) -> String {
        self.join(",", false)
    }

    /// The ranges as an administrator writes them (a `/0` range marked), joined by `separator`:
    /// what the CLI, the console's form and the configuration show, and read back unchanged.
    pub fn to_input(&self, separator: &str) -> String {
        self.join(separator, true)
    }

    fn join(&self, separator: &str, marked: bool) -> String {
        let mut out = String::new();
        for (n, range) in self.0.iter().enumerate() {
            if n > 0 {
                out.push_str(separator);
            }
            let _ = write!(out, "{range}");
            if marked && range.prefix_len() == 0 {
                out.push(ALLOW_ANY_MARKER);
            }
        }
        out
    }

    pub fn ranges(&self) -> &[IpNet] {
        &self.0
    }

    /// No ranges: every address may exchange codes and refresh.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a request from `address` may exchange a code or refresh. An IPv4 client seen
    /// through a dual-stack socket (`::ffff:192.0.2.7`) is judged by its IPv4 address.
    pub fn admits(&self, address: IpAddr) -> bool {
        let address = address.to_canonical();
        self.0.iter().any(|range| range.contains(&address))
    }
}

/// One range as written: `CIDR`, a bare address, or a `/0` range marked with `!`.
fn parse_range(item: &str) -> Result<IpNet, String> {
    let (text, marked) = match item.strip_suffix(ALLOW_ANY_MARKER) {
        Some(text) => (text, true),
        None => (item, false),
    };
    let range = if text.contains('/') {
        IpNet::from_str(text).map_err(|_| {
            format!(
                "{item:?} is not an IPv4 or IPv6 range (such as 203.0.113.0/24 or 2001:db8::/32)"
            )
        })?
    } else {
        IpAddr::from_str(text).map(IpNet::from).map_err(|_| {
            format!(
                "{item:?} is not an IP address or an IPv4 or IPv6 range (such as 203.0.113.0/24)"
            )
        })?
    };
    if range.addr() != range.network() {
        return Err(format!(
            "{item:?} has bits set past its /{} prefix; the range is {}",
            range.prefix_len(),
            range.trunc()
        ));
    }
    match (range.prefix_len() == 0, marked) {
        (true, false) => Err(format!(
            "{text} admits every {} address, which is no restriction; write {text}{ALLOW_ANY_MARKER} if that is meant",
            if range.addr().is_ipv4() { "IPv4" } else { "IPv6" }
        )),
        (false, true) => Err(format!(
            "{item:?}: the {ALLOW_ANY_MARKER} marker belongs only after a /0 range"
        )),
        _ => Ok(range),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(text: &str) -> IpAddr {
        text.parse().unwrap()
    }

    #[test]
    fn ranges_of_both_families_admit_their_addresses_and_nothing_else() {
        let list = IpAllowlist::parse("203.0.113.0/24, 2001:db8::/32\n198.51.100.7").unwrap();
        assert!(list.admits(ip("203.0.113.200")));
        assert!(list.admits(ip("2001:db8:1::5")));
        assert!(list.admits(ip("198.51.100.7")));
        assert!(!list.admits(ip("198.51.100.8")));
        assert!(!list.admits(ip("203.0.114.1")));
        assert!(!list.admits(ip("2001:db9::1")));
    }

    #[test]
    fn an_ipv4_client_through_a_dual_stack_socket_is_judged_by_its_ipv4_address() {
        let list = IpAllowlist::parse("203.0.113.0/24").unwrap();
        assert!(list.admits(ip("::ffff:203.0.113.9")));
        assert!(!list.admits(ip("::ffff:192.0.2.9")));
    }

    #[test]
    fn none_off_and_nothing_clear_the_list() {
        for text in ["none", "OFF", "", " , "] {
            assert!(IpAllowlist::parse(text).unwrap().is_empty(), "{text:?}");
        }
    }

    #[test]
    fn the_stored_and_the_written_forms_read_back_to_the_same_list() {
        let list = IpAllowlist::parse("10.0.0.0/8,::/0!,192.0.2.1,10.0.0.0/8").unwrap();
        assert_eq!(list.ranges().len(), 3, "the repeat is dropped");
        assert_eq!(list.to_stored(), "10.0.0.0/8,::/0,192.0.2.1/32");
        assert_eq!(list.to_input("\n"), "10.0.0.0/8\n::/0!\n192.0.2.1/32");
        assert_eq!(IpAllowlist::from_stored(&list.to_stored()).unwrap(), list);
        assert_eq!(IpAllowlist::parse(&list.to_input(", ")).unwrap(), list);
        assert!(IpAllowlist::from_stored("").unwrap().is_empty());
    }

    #[test]
    fn more_than_128_ranges_are_refused() {
        let ranges = |n: usize| {
            (0..n)
                .map(|i| format!("10.{}.{}.0/24", i / 256, i % 256))
                .collect::<Vec<_>>()
                .join(",")
        };
        assert_eq!(
            IpAllowlist::parse(&ranges(128)).unwrap().ranges().len(),
            128
        );
        let error = IpAllowlist::parse(&ranges(129)).unwrap_err();
        assert!(error.contains("at most 128 ranges; 129 given"), "{error}");
    }

    #[test]
    fn malformed_ranges_are_refused_with_the_offending_text() {
        for bad in [
            "10.0.0.0/33",
            "2001:db8::/129",
            "10.0.0",
            "example.com",
            "10.0.0.0/",
            "/8",
        ] {
            let error = IpAllowlist::parse(bad).unwrap_err();
            assert!(error.contains(&format!("{bad:?}")), "{bad}: {error}");
        }
    }

    #[test]
    fn host_bits_past_the_prefix_are_refused_naming_the_range_meant() {
        let error = IpAllowlist::parse("10.1.2.3/8").unwrap_err();
        assert!(error.contains("bits set past its /8 prefix"), "{error}");
        assert!(error.contains("10.0.0.0/8"), "{error}");
        assert!(IpAllowlist::parse("2001:db8::1/32").is_err());
    }

    #[test]
    fn a_slash_zero_range_needs_its_marker_and_the_marker_needs_a_slash_zero() {
        for any in ["0.0.0.0/0", "::/0"] {
            let error = IpAllowlist::parse(any).unwrap_err();
            assert!(error.contains("which is no restriction"), "{error}");
            assert!(error.contains(&format!("{any}!")), "{error}");
            let list = IpAllowlist::parse(&format!("{any}!")).unwrap();
            assert_eq!(list.ranges().len(), 1);
        }
        assert!(IpAllowlist::parse("0.0.0.0/0!")
            .unwrap()
            .admits(ip("198.51.100.1")));
        let error = IpAllowlist::parse("10.0.0.0/8!").unwrap_err();
        assert!(error.contains("only after a /0 range"), "{error}");
    }
}
