//! The client's address: the TCP peer, or, when the peer is a trusted reverse proxy
//! (`server.http.trusted_proxies`), the right-most untrusted hop of its `Forwarded` /
//! `X-Forwarded-For` header. The lifecycle middleware resolves it once per request; throttles
//! key on [`ClientAddr::bucket`] (IPv6 clients by /64), the access log records [`ClientAddr::ip`].
//!
//! The rules (docs/http.md, "Client address"), chosen so that a client can never pick its own
//! address:
//!
//! - Headers are read only when the TCP peer is inside `trusted_proxies`; otherwise they are
//!   ignored, whoever sent them.
//! - Several instances of a header count as one comma-joined list, in order.
//! - The list is walked from the right, skipping trusted addresses; the first untrusted
//!   address is the client. Entries to its left are the client's own claims and never read.
//! - An entry that is not an address (`unknown`, an obfuscated `_name`, garbage) stops the walk:
//!   the client is the last trusted hop seen (the proxy that wrote that entry). Only a trusted
//!   proxy can have put it there, so this lumps that proxy's clients together but lets nobody in.
//! - Every hop trusted: the left-most one is the client.
//! - Both headers present: each is walked; when they name the same client that is it, otherwise
//!   the request is the peer's own (a proxy writes one of them; the other came from the client,
//!   so a mismatch means someone tried to choose an address).
//! - IPv4-mapped IPv6 (`::ffff:a.b.c.d`) is IPv4 everywhere (peer, hops, `trusted_proxies`).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::Arc;

use actix_web::http::header::{self, HeaderMap, HeaderName};
use actix_web::{HttpMessage, HttpRequest};

use crate::meta::trusted_proxies::{TrustedProxies, canonical};

/// The `X-Forwarded-For` header name.
pub const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");

/// A request's client, as far as this server can tell.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct ClientAddr {
    /// The client's address (IPv4-mapped IPv6 as IPv4); `0.0.0.0` when the transport has no
    /// peer address (never over TCP).
    pub ip: IpAddr,
}

impl ClientAddr {
    /// The client behind `ip` (normalised).
    pub fn new(ip: IpAddr) -> Self {
        Self { ip: canonical(ip) }
    }

    /// The throttling key: the IPv4 address, or the IPv6 /64 (`2001:db8:1:2::/64`): one host
    /// usually owns a whole /64, so per-address limits on IPv6 would be per-whim.
    pub fn bucket(&self) -> String {
        match self.ip {
            IpAddr::V4(v4) => ipv4_text(v4),
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let net = Ipv6Addr::new(s[0], s[1], s[2], s[3], 0, 0, 0, 0);
                format!("{net}/64")
            }
        }
    }

    /// The address as text, as `Display` writes it (an IPv4 address without the formatter).
    pub fn text(&self) -> String {
        match self.ip {
            IpAddr::V4(v4) => ipv4_text(v4),
            IpAddr::V6(v6) => v6.to_string(),
        }
    }

    /// The wider throttling key: the IPv4 /24 (`198.51.100.0/24`) or the IPv6 /48
    /// (`2001:db8:1::/48`), for limits a client could spread over the addresses it holds (one
    /// site or provider customer often has a whole /48, or a whole /24 behind NAT).
    pub fn network(&self) -> String {
        match self.ip {
            IpAddr::V4(v4) => {
                let o = v4.octets();
                format!("{}.{}.{}.0/24", o[0], o[1], o[2])
            }
            IpAddr::V6(v6) => {
                let s = v6.segments();
                let net = Ipv6Addr::new(s[0], s[1], s[2], 0, 0, 0, 0, 0);
                format!("{net}/48")
            }
        }
    }
}

/// `v4` in dotted decimal, by hand: `Ipv4Addr`'s `Display` goes through the formatter (about
/// 800 instructions; the gRPC auth layer makes a bucket per call, a traced request's span
/// names its client).
fn ipv4_text(v4: std::net::Ipv4Addr) -> String {
    let mut text = String::with_capacity(15);
    for (i, octet) in v4.octets().into_iter().enumerate() {
        if i > 0 {
            text.push('.');
        }
        if octet >= 100 {
            text.push(char::from(b'0' + octet / 100));
        }
        if octet >= 10 {
            text.push(char::from(b'0' + octet / 10 % 10));
        }
        text.push(char::from(b'0' + octet % 10));
    }
    text
}

impl fmt::Display for ClientAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.ip.fmt(f)
    }
}

/// The client of `req`: what the lifecycle middleware resolved, else resolved now from the
/// peer, the headers and the `Arc<TrustedProxies>` app data (none registered: the peer).
pub fn client_addr(req: &HttpRequest) -> ClientAddr {
    if let Some(resolved) = req.extensions().get::<ClientAddr>() {
        return *resolved;
    }
    let peer = req.peer_addr().map(|a| a.ip());
    match req.app_data::<Arc<TrustedProxies>>() {
        Some(trusted) => resolve(peer, req.headers(), trusted),
        None => ClientAddr::new(peer.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED))),
    }
}

/// The client address bucket a request is throttled and logged by: the peer, or what a
/// trusted proxy says (never the client's own claim); IPv6 by /64.
pub fn client_bucket(req: &HttpRequest) -> String {
    client_addr(req).bucket()
}

/// The wider bucket of the request's client (IPv4 /24, IPv6 /48; see `ClientAddr::network`).
pub fn client_network(req: &HttpRequest) -> String {
    client_addr(req).network()
}

/// Resolves the client from the TCP `peer`, the request `headers` and the `trusted` proxies
/// (see the module documentation). Reads no header unless the peer is trusted.
pub fn resolve(peer: Option<IpAddr>, headers: &HeaderMap, trusted: &TrustedProxies) -> ClientAddr {
    let Some(peer) = peer.map(canonical) else {
        return ClientAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    };
    if trusted.is_empty() || !trusted.contains(peer) {
        return ClientAddr::new(peer);
    }
    let forwarded = headers.contains_key(header::FORWARDED).then(|| {
        let hops = forwarded_hops(headers);
        walk(peer, hops.iter().rev().copied(), trusted)
    });
    let x_forwarded_for = headers.contains_key(&X_FORWARDED_FOR).then(|| {
        let hops = header_list(headers, &X_FORWARDED_FOR).rev().map(parse_hop);
        walk(peer, hops.map(|h| h.ok()), trusted)
    });
    let ip = match (forwarded, x_forwarded_for) {
        (Some(a), Some(b)) if a == b => a,
        (Some(_), Some(_)) => peer,
        (Some(one), None) | (None, Some(one)) => one,
        (None, None) => peer,
    };
    ClientAddr::new(ip)
}

/// Walks `hops` right to left (the iterator yields the right-most first). `None` is an entry
/// that is not an address.
fn walk(
    peer: IpAddr,
    hops_from_right: impl Iterator<Item = Option<IpAddr>>,
    trusted: &TrustedProxies,
) -> IpAddr {
    let mut last_trusted = peer;
    for hop in hops_from_right {
        match hop.map(canonical) {
            Some(ip) if trusted.contains(ip) => last_trusted = ip,
            Some(ip) => return ip,
            None => return last_trusted,
        }
    }
    last_trusted
}

/// The elements of every instance of `name`, left to right, trimmed (empty elements kept:
/// they are hops that are not addresses).
fn header_list<'a>(
    headers: &'a HeaderMap,
    name: &HeaderName,
) -> impl DoubleEndedIterator<Item = &'a str> + 'a {
    let values: Vec<&'a str> = headers
        .get_all(name)
        .map(|v| v.to_str().unwrap_or("\u{0}"))
        .collect();
    values.into_iter().flat_map(|v| v.split(',')).map(str::trim)
}

/// One `X-Forwarded-For` entry, or a `Forwarded` node after unquoting: `1.2.3.4`,
/// `1.2.3.4:80`, `2001:db8::1`, `[2001:db8::1]`, `[2001:db8::1]:4711`.
fn parse_hop(entry: &str) -> Result<IpAddr, ()> {
    let entry = entry.trim();
    if let Ok(ip) = entry.parse::<IpAddr>() {
        return Ok(ip);
    }
    if let Ok(addr) = entry.parse::<SocketAddr>() {
        return Ok(addr.ip());
    }
    entry
        .strip_prefix('[')
        .and_then(|rest| rest.strip_suffix(']'))
        .and_then(|inner| inner.parse::<Ipv6Addr>().ok())
        .map(IpAddr::V6)
        .ok_or(())
}

/// The `for=` node of each element of every `Forwarded` instance (RFC 7239), left to right;
/// `None` for an element without a usable `for=` (missing, `unknown`, obfuscated, malformed).
fn forwarded_hops(headers: &HeaderMap) -> Vec<Option<IpAddr>> {
    let mut hops = Vec::new();
    for value in headers.get_all(header::FORWARDED) {
        match value.to_str() {
            Ok(text) => parse_forwarded(text, &mut hops),
            // Not visible ASCII: one hop that is not an address (stops the walk).
            Err(_) => hops.push(None),
        }
    }
    hops
}

/// Appends the `for=` node of each element of one `Forwarded` value to `out`.
fn parse_forwarded(value: &str, out: &mut Vec<Option<IpAddr>>) {
    let mut rest = value;
    loop {
        let (element, tail) = split_element(rest);
        out.push(element_for(element));
        match tail {
            Some(t) => rest = t,
            None => return,
        }
    }
}

/// Splits off the first element (up to a `,` outside a quoted string).
fn split_element(s: &str) -> (&str, Option<&str>) {
    split_unquoted(s, ',')
}

/// Splits `s` at the first `separator` outside a quoted string (RFC 7230 `quoted-string`,
/// backslash escapes included).
fn split_unquoted(s: &str, separator: char) -> (&str, Option<&str>) {
    let mut quoted = false;
    let mut escaped = false;
    for (i, c) in s.char_indices() {
        match c {
            _ if escaped => escaped = false,
            '\\' if quoted => escaped = true,
            '"' => quoted = !quoted,
            c if c == separator && !quoted => {
                return (&s[..i], Some(&s[i + c.len_utf8()..]));
            }
            _ => {}
        }
    }
    (s, None)
}

/// The address of an element's `for=` pair; `None` when it has none, has two, or is not an
/// address.
fn element_for(element: &str) -> Option<IpAddr> {
    let mut found = None;
    let mut rest = element;
    loop {
        let (pair, tail) = split_pair(rest);
        let pair = pair.trim();
        if !pair.is_empty() {
            let (name, value) = pair.split_once('=')?;
            if name.trim().eq_ignore_ascii_case("for") {
                if found.is_some() {
                    return None;
                }
                found = Some(unquote(value.trim())?);
            }
        }
        match tail {
            Some(t) => rest = t,
            None => break,
        }
    }
    parse_hop(&found?).ok()
}

/// Splits off the first `name=value` pair (up to a `;` outside a quoted string).
fn split_pair(s: &str) -> (&str, Option<&str>) {
    split_unquoted(s, ';')
}

/// A token as is, or a quoted string without its quotes and escapes; `None` when a quote is
/// unbalanced.
fn unquote(value: &str) -> Option<String> {
    let Some(inner) = value.strip_prefix('"') else {
        return (!value.contains('"')).then(|| value.to_owned());
    };
    let inner = inner.strip_suffix('"')?;
    let mut out = String::with_capacity(inner.len());
    let mut chars = inner.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => out.push(chars.next()?),
            '"' => return None,
            c => out.push(c),
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use actix_web::http::header::HeaderValue;
    use proptest::prelude::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn headers(pairs: &[(&str, &str)]) -> HeaderMap {
        let mut map = HeaderMap::new();
        for (name, value) in pairs {
            map.append(
                HeaderName::from_bytes(name.as_bytes()).unwrap(),
                HeaderValue::from_str(value).unwrap(),
            );
        }
        map
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn client(peer: &str, pairs: &[(&str, &str)], list: &[&str]) -> String {
        resolve(Some(ip(peer)), &headers(pairs), &trusted(list))
            .ip
            .to_string()
    }

    const PROXY: &[&str] = &["10.0.0.0/8", "::1"];

    #[test]
    fn headers_are_ignored_unless_the_peer_is_trusted() {
        let xff = [("x-forwarded-for", "6.6.6.6")];
        assert_eq!(client("203.0.113.9", &xff, &[]), "203.0.113.9");
        assert_eq!(client("203.0.113.9", &xff, PROXY), "203.0.113.9");
        assert_eq!(client("10.0.0.2", &xff, PROXY), "6.6.6.6");
        assert_eq!(client("10.0.0.2", &[], PROXY), "10.0.0.2");
    }

    #[test]
    fn x_forwarded_for_is_walked_from_the_right() {
        let peer = "10.0.0.2";
        // The client spoofs left-most hops: they are never read.
        let h = [(
            "x-forwarded-for",
            "1.1.1.1, 2.2.2.2, 198.51.100.7, 10.0.0.9",
        )];
        assert_eq!(client(peer, &h, PROXY), "198.51.100.7");
        // Several instances are one list, in order.
        let h = [
            ("x-forwarded-for", "1.1.1.1, 198.51.100.7"),
            ("x-forwarded-for", "10.0.0.9"),
        ];
        assert_eq!(client(peer, &h, PROXY), "198.51.100.7");
        // Ports and brackets are tolerated; mapped addresses are IPv4.
        let h = [("x-forwarded-for", "[2001:db8::1]:4711")];
        assert_eq!(client(peer, &h, PROXY), "2001:db8::1");
        let h = [("x-forwarded-for", "198.51.100.7:5555")];
        assert_eq!(client(peer, &h, PROXY), "198.51.100.7");
        let h = [("x-forwarded-for", "::ffff:198.51.100.7")];
        assert_eq!(client(peer, &h, PROXY), "198.51.100.7");
        // Garbage stops the walk at the last trusted hop.
        let h = [("x-forwarded-for", "198.51.100.7, garbage, 10.0.0.9")];
        assert_eq!(client(peer, &h, PROXY), "10.0.0.9");
        let h = [("x-forwarded-for", "198.51.100.7,,")];
        assert_eq!(client(peer, &h, PROXY), peer);
        // Every hop trusted: the left-most.
        let h = [("x-forwarded-for", "10.0.0.7, 10.0.0.9")];
        assert_eq!(client(peer, &h, PROXY), "10.0.0.7");
    }

    #[test]
    fn forwarded_follows_rfc_7239() {
        let peer = "::1";
        let h = [(
            "forwarded",
            r#"for=192.0.2.43, for="[2001:db8:cafe::17]:4711";proto=https;by=10.0.0.1"#,
        )];
        assert_eq!(client(peer, &h, PROXY), "2001:db8:cafe::17");
        let h = [("forwarded", "For=192.0.2.60;proto=http;by=203.0.113.43")];
        assert_eq!(client(peer, &h, PROXY), "192.0.2.60");
        let h = [
            ("forwarded", "for=192.0.2.60"),
            ("forwarded", r#"for="10.1.1.1""#),
        ];
        assert_eq!(client(peer, &h, PROXY), "192.0.2.60");
        // unknown, obfuscated, missing or doubled `for`: stop at the last trusted hop.
        for value in [
            "for=192.0.2.60, for=unknown",
            "for=192.0.2.60, for=_hidden",
            "for=192.0.2.60, proto=http",
            "for=192.0.2.60, for=1.2.3.4;for=5.6.7.8",
            r#"for=192.0.2.60, for="[2001:db8::1"#,
        ] {
            assert_eq!(
                client(peer, &[("forwarded", value)], PROXY),
                "::1",
                "{value}"
            );
        }
        // A comma inside a quoted string does not split elements.
        let h = [("forwarded", r#"for=192.0.2.60;ext="a,b""#)];
        assert_eq!(client(peer, &h, PROXY), "192.0.2.60");
    }

    #[test]
    fn both_headers_must_agree() {
        let peer = "10.0.0.2";
        let agree = [
            ("forwarded", "for=198.51.100.7"),
            ("x-forwarded-for", "6.6.6.6, 198.51.100.7"),
        ];
        assert_eq!(client(peer, &agree, PROXY), "198.51.100.7");
        let disagree = [
            ("forwarded", "for=6.6.6.6"),
            ("x-forwarded-for", "198.51.100.7"),
        ];
        assert_eq!(client(peer, &disagree, PROXY), peer);
    }

    #[test]
    fn text_is_what_display_writes() {
        for addr in [
            "0.0.0.0",
            "1.2.3.4",
            "10.20.30.40",
            "198.51.100.7",
            "255.255.255.255",
            "::1",
            "2001:db8::7",
        ] {
            assert_eq!(ClientAddr::new(ip(addr)).text(), addr);
        }
    }

    #[test]
    fn buckets_are_ipv4_addresses_or_ipv6_slash_64s() {
        assert_eq!(ClientAddr::new(ip("198.51.100.7")).bucket(), "198.51.100.7");
        assert_eq!(
            ClientAddr::new(ip("2001:db8:1:2:aaaa::1")).bucket(),
            "2001:db8:1:2::/64"
        );
        assert_eq!(
            ClientAddr::new(ip("2001:db8:1:2:bbbb::9")).bucket(),
            ClientAddr::new(ip("2001:db8:1:2::")).bucket()
        );
        assert_eq!(ClientAddr::new(ip("::ffff:1.2.3.4")).bucket(), "1.2.3.4");
        for v4 in [
            "0.0.0.0",
            "10.0.100.9",
            "255.255.255.255",
            "127.0.0.1",
            "1.20.199.250",
        ] {
            assert_eq!(ClientAddr::new(ip(v4)).bucket(), v4);
        }
        assert_eq!(
            ClientAddr::new(ip("198.51.100.7")).network(),
            "198.51.100.0/24"
        );
        assert_eq!(
            ClientAddr::new(ip("2001:db8:1:2:aaaa::1")).network(),
            "2001:db8:1::/48"
        );
        assert_eq!(
            ClientAddr::new(ip("2001:db8:1:ffff::9")).network(),
            ClientAddr::new(ip("2001:db8:1::")).network()
        );
        assert_eq!(ClientAddr::new(ip("::ffff:1.2.3.4")).to_string(), "1.2.3.4");
    }

    #[test]
    fn client_addr_prefers_what_the_middleware_resolved() {
        use actix_web::test::TestRequest;
        let req = TestRequest::default()
            .peer_addr("10.0.0.2:1234".parse().unwrap())
            .insert_header(("x-forwarded-for", "198.51.100.7"))
            .app_data(Arc::new(trusted(PROXY)))
            .to_http_request();
        assert_eq!(client_addr(&req).ip, ip("198.51.100.7"));
        req.extensions_mut()
            .insert(ClientAddr::new(ip("192.0.2.1")));
        assert_eq!(client_addr(&req).ip, ip("192.0.2.1"));
        let bare = TestRequest::default()
            .peer_addr("10.0.0.2:1234".parse().unwrap())
            .insert_header(("x-forwarded-for", "198.51.100.7"))
            .to_http_request();
        assert_eq!(client_addr(&bare).ip, ip("10.0.0.2"));
    }

    fn any_ip() -> impl Strategy<Value = IpAddr> {
        prop_oneof![
            any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(n))),
            any::<u128>().prop_map(|n| IpAddr::V6(Ipv6Addr::from(n))),
            // Inside the trusted 10/8 often, so walks skip hops.
            any::<u32>().prop_map(|n| IpAddr::V4(Ipv4Addr::from(0x0a00_0000 | (n & 0xff_ffff)))),
        ]
    }

    fn forwarded_node(ip: IpAddr, port: Option<u16>) -> String {
        match (ip, port) {
            (IpAddr::V4(v4), None) => v4.to_string(),
            (IpAddr::V4(v4), Some(p)) => format!("\"{v4}:{p}\""),
            (IpAddr::V6(v6), None) => format!("\"[{v6}]\""),
            (IpAddr::V6(v6), Some(p)) => format!("\"[{v6}]:{p}\""),
        }
    }

    /// The reference walk over already-parsed hops (left to right).
    fn expected(peer: IpAddr, hops: &[IpAddr], t: &TrustedProxies) -> IpAddr {
        if !t.contains(peer) {
            return canonical(peer);
        }
        let mut last = canonical(peer);
        for hop in hops.iter().rev() {
            if !t.contains(*hop) {
                return canonical(*hop);
            }
            last = canonical(*hop);
        }
        last
    }

    proptest! {
        #[test]
        fn ipv4_buckets_are_the_address_as_displayed(octets in any::<[u8; 4]>()) {
            let v4 = std::net::Ipv4Addr::from(octets);
            prop_assert_eq!(ClientAddr::new(IpAddr::V4(v4)).bucket(), v4.to_string());
        }

        #[test]
        fn arbitrary_header_values_never_panic(
            xff in "\\PC{0,200}",
            fwd in "\\PC{0,200}",
            peer in any_ip(),
        ) {
            let mut map = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&xff) {
                map.append(X_FORWARDED_FOR, v);
            }
            if let Ok(v) = HeaderValue::from_str(&fwd) {
                map.append(header::FORWARDED, v);
            }
            let t = trusted(&["0.0.0.0/1", "128.0.0.0/1", "::/1", "8000::/1"]);
            let c = resolve(Some(peer), &map, &t);
            let _ = c.bucket();
        }

        #[test]
        fn forwarded_lists_resolve_like_the_reference_walk(
            hops in proptest::collection::vec((any_ip(), proptest::option::of(any::<u16>())), 0..8),
            split in 0usize..8,
            peer in any_ip(),
            extra in "(;proto=https|;by=_p1|;host=\"a,b;c\"|)",
        ) {
            let t = trusted(&["10.0.0.0/8", "2001:db8::/32"]);
            let nodes: Vec<String> = hops
                .iter()
                .map(|(ip, port)| format!("for={}{extra}", forwarded_node(*ip, *port)))
                .collect();
            let split = split.min(nodes.len());
            let mut map = HeaderMap::new();
            for part in [&nodes[..split], &nodes[split..]] {
                if !part.is_empty() {
                    map.append(header::FORWARDED, HeaderValue::from_str(&part.join(", ")).unwrap());
                }
            }
            let ips: Vec<IpAddr> = hops.iter().map(|(ip, _)| *ip).collect();
            prop_assert_eq!(resolve(Some(peer), &map, &t).ip, expected(peer, &ips, &t));
        }

        #[test]
        fn x_forwarded_for_lists_resolve_like_the_reference_walk(
            hops in proptest::collection::vec(any_ip(), 0..8),
            peer in any_ip(),
            spoofed in proptest::collection::vec(any_ip(), 0..4),
        ) {
            let t = trusted(&["10.0.0.0/8"]);
            let all: Vec<IpAddr> = spoofed.iter().chain(hops.iter()).copied().collect();
            let text: Vec<String> = all.iter().map(IpAddr::to_string).collect();
            let mut map = HeaderMap::new();
            if !text.is_empty() {
                map.append(X_FORWARDED_FOR, HeaderValue::from_str(&text.join(", ")).unwrap());
            }
            let got = resolve(Some(peer), &map, &t).ip;
            prop_assert_eq!(got, expected(peer, &all, &t));
            // Whatever the client prepends, a hop it did not write decides when one is untrusted.
            if let Some(real) = hops.iter().rev().find(|h| !t.contains(**h))
                && t.contains(peer)
            {
                prop_assert_eq!(got, canonical(*real));
            }
        }
    }
}
