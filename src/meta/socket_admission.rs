//! Who may open a socket: the client-address allowlist (`common.socket_white_ip_list`) and the
//! `Origin` allowlist (`server.socket.allowed_origins`), both parsed once at config load and
//! matched on parsed values, never as text patterns (docs/websocket.md, "Admission").
//!
//! The original turned each allowlist entry into an unanchored regex over the header text, so
//! `10.1.0.1` admitted `110.1.0.10`, and it never looked at `Origin`.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

use crate::meta::trusted_proxies::{canonical, normalize_net};

/// One entry of the client-address allowlist.
#[derive(Clone, Debug, PartialEq, Eq)]
enum IpRule {
    /// An address or a CIDR network.
    Net(IpNet),
    /// An IPv4 address whose octets are a number or `*` (the original's form).
    Wildcard([Option<u8>; 4]),
}

impl IpRule {
    fn parse(entry: &str) -> Result<Self, String> {
        let entry = entry.trim();
        if let Ok(net) = entry.parse::<IpNet>() {
            // `::ffff:10.0.0.0/104` is `10.0.0.0/8`: clients are compared as IPv4.
            return Ok(Self::Net(normalize_net(net.trunc())));
        }
        if let Ok(ip) = entry.parse::<IpAddr>() {
            return Ok(Self::Net(IpNet::from(canonical(ip))));
        }
        let octets: Vec<&str> = entry.split('.').collect();
        if octets.len() == 4 && entry.contains('*') {
            let mut rule = [None; 4];
            for (slot, octet) in rule.iter_mut().zip(&octets) {
                *slot = match *octet {
                    "*" => None,
                    n => Some(n.parse::<u8>().map_err(|_| bad_ip_entry(entry))?),
                };
            }
            return Ok(Self::Wildcard(rule));
        }
        Err(bad_ip_entry(entry))
    }

    fn admits(&self, ip: IpAddr) -> bool {
        match self {
            Self::Net(net) => net.contains(&ip),
            Self::Wildcard(rule) => match ip {
                IpAddr::V4(v4) => rule
                    .iter()
                    .zip(v4.octets())
                    .all(|(want, got)| want.is_none_or(|w| w == got)),
                IpAddr::V6(_) => false,
            },
        }
    }
}

fn bad_ip_entry(entry: &str) -> String {
    format!(
        "`{entry}` is neither an IP address, a CIDR (10.0.0.0/8) nor an IPv4 address with \
         whole-octet wildcards (192.168.163.*)"
    )
}

/// The client-address allowlist; empty admits everyone (the original's rule).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "Vec<String>")]
pub struct IpAllowList(Vec<IpRule>);

impl IpAllowList {
    /// Parses entries: addresses, CIDRs, IPv4 with whole-octet `*`.
    ///
    /// # Errors
    /// The first entry that is none of these.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        entries
            .iter()
            .map(|e| IpRule::parse(e.as_ref()))
            .collect::<Result<_, _>>()
            .map(Self)
    }

    /// Whether `ip` may connect.
    pub fn admits(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        self.0.is_empty() || self.0.iter().any(|rule| rule.admits(ip))
    }
}

impl TryFrom<Vec<String>> for IpAllowList {
    type Error = String;
    fn try_from(entries: Vec<String>) -> Result<Self, String> {
        Self::parse(&entries)
    }
}

/// One entry of the `Origin` allowlist.
#[derive(Clone, Debug, PartialEq, Eq)]
struct OriginRule {
    /// `Some` for a full origin entry: the scheme and port must match too.
    scheme_port: Option<(String, u16)>,
    host: HostRule,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum HostRule {
    Exact(String),
    /// `*.example.com`: any subdomain of `example.com`, not `example.com` itself.
    Subdomains(String),
    /// `*`: any origin at all (an explicit opt-out).
    Any,
}

impl HostRule {
    fn parse(host: &str, entry: &str) -> Result<Self, String> {
        let host = host.to_ascii_lowercase();
        if host == "*" {
            return Ok(Self::Any);
        }
        let (rule, name) = match host.strip_prefix("*.") {
            Some(rest) => (Self::Subdomains(rest.to_owned()), rest.to_owned()),
            None => (Self::Exact(host.clone()), host),
        };
        let valid = !name.is_empty()
            && !name.contains('*')
            && name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "-.[]:".contains(c));
        if valid {
            Ok(rule)
        } else {
            Err(bad_origin_entry(entry))
        }
    }

    fn admits(&self, host: &str) -> bool {
        match self {
            Self::Any => true,
            Self::Exact(want) => want == host,
            Self::Subdomains(domain) => host
                .strip_suffix(domain.as_str())
                .is_some_and(|prefix| prefix.len() > 1 && prefix.ends_with('.')),
        }
    }
}

fn bad_origin_entry(entry: &str) -> String {
    format!(
        "`{entry}` is neither an origin (https://app.example.com, http://127.0.0.1:8080), a host \
         (example.com, *.example.com) nor `*`"
    )
}

/// A parsed `Origin` header value (RFC 6454 serialisation): scheme, lowercase host, port.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Origin {
    scheme: String,
    host: String,
    port: u16,
}

impl Origin {
    /// Parses `scheme://host[:port]`; `null` and anything else is `None`.
    pub fn parse(value: &str) -> Option<Self> {
        let (scheme, rest) = value.split_once("://")?;
        let scheme = scheme.to_ascii_lowercase();
        let default_port = match scheme.as_str() {
            "http" | "ws" => 80,
            "https" | "wss" => 443,
            _ => return None,
        };
        if rest.is_empty() || rest.contains(['/', '?', '#', '@']) {
            return None;
        }
        let (host, port) = split_host_port(rest)?;
        let port = match port {
            Some(p) => p.parse::<u16>().ok()?,
            None => default_port,
        };
        Some(Self {
            scheme,
            host: host.to_ascii_lowercase(),
            port,
        })
    }

    /// The host, lowercase (`[::1]` keeps its brackets).
    pub fn host(&self) -> &str {
        &self.host
    }
}

impl fmt::Display for Origin {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}://{}:{}", self.scheme, self.host, self.port)
    }
}

/// Splits `host[:port]`, `[v6][:port]`.
fn split_host_port(authority: &str) -> Option<(&str, Option<&str>)> {
    if authority.starts_with('[') {
        let end = authority.find(']')?;
        let (host, rest) = authority.split_at(end + 1);
        return match rest {
            "" => Some((host, None)),
            r => Some((host, Some(r.strip_prefix(':')?))),
        };
    }
    match authority.rsplit_once(':') {
        Some((host, port)) if !host.contains(':') => Some((host, Some(port))),
        Some(_) => None,
        None => Some((authority, None)),
    }
}

/// The `Origin` allowlist. Empty: same-origin only (gorilla/websocket's default check).
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "Vec<String>")]
pub struct OriginAllowList(Vec<OriginRule>);

impl OriginAllowList {
    /// Parses entries: full origins (`https://app.example.com`), hosts (`example.com`,
    /// `*.example.com`) or `*`.
    ///
    /// # Errors
    /// The first entry that is none of these.
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut rules = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref().trim();
            let rule = if entry.contains("://") {
                // A full origin; its host may carry the `*.` wildcard.
                let (scheme, rest) = entry.split_once("://").unwrap_or_default();
                let stand_in = format!("{scheme}://{}", rest.replacen("*.", "wildcard.", 1));
                let parsed = Origin::parse(&stand_in).ok_or_else(|| bad_origin_entry(entry))?;
                let (host, _) = split_host_port(rest).ok_or_else(|| bad_origin_entry(entry))?;
                OriginRule {
                    scheme_port: Some((parsed.scheme, parsed.port)),
                    host: HostRule::parse(host, entry)?,
                }
            } else {
                OriginRule {
                    scheme_port: None,
                    host: HostRule::parse(entry, entry)?,
                }
            };
            rules.push(rule);
        }
        Ok(Self(rules))
    }

    /// No entry: only same-origin requests are admitted (refused in prod).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether a request with this `Origin` header value (`None`: no header) to `host` (the
    /// request's `Host`, for the same-origin rule) may connect. `require_origin` refuses
    /// requests without one.
    pub fn admits(&self, origin: Option<&str>, host: Option<&str>, require_origin: bool) -> bool {
        let Some(origin) = origin else {
            return !require_origin;
        };
        let Some(origin) = Origin::parse(origin) else {
            return false;
        };
        if self.0.is_empty() {
            // Same origin: the Origin's host and port are the request's Host.
            let Some((host, port)) = host.and_then(split_host_port) else {
                return false;
            };
            let port = match port {
                Some(p) => p.parse::<u16>().ok(),
                None => Some(match origin.scheme.as_str() {
                    "https" | "wss" => 443,
                    _ => 80,
                }),
            };
            return host.eq_ignore_ascii_case(&origin.host) && port == Some(origin.port);
        }
        self.0.iter().any(|rule| {
            rule.scheme_port
                .as_ref()
                .is_none_or(|(s, p)| *s == origin.scheme && *p == origin.port)
                && rule.host.admits(&origin.host)
        })
    }
}

impl TryFrom<Vec<String>> for OriginAllowList {
    type Error = String;
    fn try_from(entries: Vec<String>) -> Result<Self, String> {
        Self::parse(&entries)
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;

    use super::*;
    use proptest::prelude::*;

    fn ips(entries: &[&str]) -> IpAllowList {
        IpAllowList::parse(entries).unwrap()
    }

    fn origins(entries: &[&str]) -> OriginAllowList {
        OriginAllowList::parse(entries).unwrap()
    }

    #[test]
    fn an_empty_ip_list_admits_everyone() {
        assert!(ips(&[]).admits("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn ip_entries_match_whole_addresses() {
        let list = ips(&["10.1.0.1"]);
        assert!(list.admits("10.1.0.1".parse().unwrap()));
        // The original's unanchored regex admitted all of these (`.` as any character too).
        for other in ["110.1.0.10", "10.1.0.11", "210.1.0.1", "10.1.0.100"] {
            assert!(!list.admits(other.parse().unwrap()), "{other}");
        }
    }

    #[test]
    fn ipv4_mapped_entries_match_ipv4_clients() {
        let list = ips(&["::ffff:10.0.0.0/104", "::ffff:192.0.2.7"]);
        assert!(list.admits("10.20.30.40".parse().unwrap()));
        assert!(list.admits("::ffff:10.1.1.1".parse().unwrap()));
        assert!(list.admits("192.0.2.7".parse().unwrap()));
        assert!(!list.admits("11.0.0.1".parse().unwrap()));
        assert!(!list.admits("192.0.2.8".parse().unwrap()));
    }

    #[test]
    fn wildcards_cover_whole_octets() {
        let list = ips(&["192.168.163.*"]);
        assert!(list.admits("192.168.163.1".parse().unwrap()));
        assert!(list.admits("192.168.163.255".parse().unwrap()));
        assert!(!list.admits("192.168.164.1".parse().unwrap()));
        assert!(!list.admits("1.192.168.163".parse().unwrap()));
        assert!(!list.admits("::1".parse().unwrap()));
        assert!(ips(&["10.*.*.*"]).admits("10.200.3.4".parse().unwrap()));
    }

    #[test]
    fn cidrs_v6_and_mapped_addresses() {
        let list = ips(&["10.0.0.0/8", "::1", "fd00::/8"]);
        assert!(list.admits("10.9.8.7".parse().unwrap()));
        assert!(list.admits("::ffff:10.1.2.3".parse().unwrap()));
        assert!(list.admits("::1".parse().unwrap()));
        assert!(list.admits("fd12::1".parse().unwrap()));
        assert!(!list.admits("11.0.0.1".parse().unwrap()));
        assert!(ips(&["127.0.0.1"]).admits("::ffff:127.0.0.1".parse().unwrap()));
    }

    #[test]
    fn bad_ip_entries_are_refused() {
        for bad in [
            "10.1.*",
            "10.1.0.1*",
            "1*.0.0.1",
            "256.*.*.*",
            "example.com",
            "",
            "*",
        ] {
            assert!(IpAllowList::parse(&[bad]).is_err(), "{bad}");
        }
    }

    #[test]
    fn origins_parse_with_default_ports() {
        let o = Origin::parse("HTTPS://App.Example.com").unwrap();
        assert_eq!(o.to_string(), "https://app.example.com:443");
        assert_eq!(Origin::parse("http://[::1]:8080").unwrap().host(), "[::1]");
        for bad in [
            "null",
            "file://",
            "http://a/b",
            "ftp://x",
            "http://u@h",
            "http://h:99999",
        ] {
            assert!(Origin::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn full_origin_entries_pin_scheme_and_port() {
        let list = origins(&["http://127.0.0.1:8080", "https://*.example.com"]);
        assert!(list.admits(Some("http://127.0.0.1:8080"), None, false));
        assert!(!list.admits(Some("http://127.0.0.1:8081"), None, false));
        assert!(!list.admits(Some("https://127.0.0.1:8080"), None, false));
        assert!(list.admits(Some("https://a.example.com"), None, false));
        assert!(list.admits(Some("https://a.b.example.com:443"), None, false));
        assert!(!list.admits(Some("http://a.example.com"), None, false));
        assert!(!list.admits(Some("https://example.com"), None, false));
        assert!(!list.admits(Some("https://evilexample.com"), None, false));
        assert!(!list.admits(Some("https://example.com.evil.net"), None, false));
    }

    #[test]
    fn host_entries_admit_any_scheme_and_port() {
        let list = origins(&["localhost", "*.example.com"]);
        assert!(list.admits(Some("http://localhost:8080"), None, false));
        assert!(list.admits(Some("https://localhost"), None, false));
        assert!(list.admits(Some("http://www.example.com:81"), None, false));
        assert!(!list.admits(Some("http://localhost.evil.net"), None, false));
        assert!(!list.admits(Some("null"), None, false));
        assert!(origins(&["*"]).admits(Some("https://anything.net"), None, false));
    }

    #[test]
    fn an_empty_origin_list_means_same_origin() {
        let list = origins(&[]);
        assert!(list.admits(
            Some("http://127.0.0.1:30000"),
            Some("127.0.0.1:30000"),
            false
        ));
        assert!(list.admits(Some("http://example.com"), Some("EXAMPLE.com"), false));
        assert!(!list.admits(
            Some("http://127.0.0.1:8080"),
            Some("127.0.0.1:30000"),
            false
        ));
        assert!(!list.admits(Some("http://evil.net"), Some("example.com"), false));
        assert!(!list.admits(Some("http://evil.net"), None, false));
    }

    #[test]
    fn a_missing_origin_depends_on_require_origin() {
        let list = origins(&["localhost"]);
        assert!(list.admits(None, None, false));
        assert!(!list.admits(None, None, true));
    }

    #[test]
    fn bad_origin_entries_are_refused() {
        for bad in [
            "http://",
            "ftp://x.com",
            "http://a.com/path",
            "a*.com",
            "*.",
            "exa mple.com",
        ] {
            assert!(OriginAllowList::parse(&[bad]).is_err(), "{bad}");
        }
    }

    proptest! {
        /// An exact entry admits exactly its own address.
        #[test]
        fn exact_ip_entries_admit_only_themselves(a in any::<[u8; 4]>(), b in any::<[u8; 4]>()) {
            let (a, b) = (Ipv4Addr::from(a), Ipv4Addr::from(b));
            let list = IpAllowList::parse(&[a.to_string()]).unwrap();
            prop_assert_eq!(list.admits(IpAddr::V4(b)), a == b);
        }

        /// A wildcard entry admits an address iff every fixed octet is equal.
        #[test]
        fn wildcard_entries_admit_by_octet(rule in any::<[Option<u8>; 4]>(), ip in any::<[u8; 4]>()) {
            prop_assume!(rule.iter().any(Option::is_none));
            let text: Vec<String> = rule.iter().map(|o| o.map_or("*".into(), |n| n.to_string())).collect();
            let list = IpAllowList::parse(&[text.join(".")]).unwrap();
            let want = rule.iter().zip(ip).all(|(r, o)| r.is_none_or(|r| r == o));
            prop_assert_eq!(list.admits(IpAddr::V4(Ipv4Addr::from(ip))), want);
        }

        /// Origin parsing never panics on arbitrary text.
        #[test]
        fn origin_parsing_never_panics(s in ".{0,40}") {
            let _ = Origin::parse(&s);
            let _ = OriginAllowList::parse(&[s.as_str()]);
        }
    }
}
