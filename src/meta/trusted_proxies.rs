//! `server.*.trusted_proxies`: the networks whose forwarding headers are believed, parsed once at
//! config load. A config value, so it lives here and not in the edge kit that reads it
//! (`web::client_addr`).

use std::net::IpAddr;

use ipnet::IpNet;
use serde::Deserialize;

/// The networks whose forwarding headers are believed; parsed once, at config load.
#[derive(Clone, Debug, Default, Deserialize, PartialEq, Eq)]
#[serde(try_from = "Vec<String>")]
pub struct TrustedProxies(Vec<IpNet>);

impl TrustedProxies {
    /// Parses CIDRs (`10.0.0.0/8`, `fd00::/8`) and bare addresses (`127.0.0.1`, `::1`).
    ///
    /// # Errors
    /// The first entry that is neither, or a `/0` network (trusting every address would let
    /// any client choose its address).
    pub fn parse<S: AsRef<str>>(entries: &[S]) -> Result<Self, String> {
        let mut nets = Vec::with_capacity(entries.len());
        for entry in entries {
            let entry = entry.as_ref().trim();
            let net = match entry.parse::<IpNet>() {
                Ok(net) => net,
                Err(_) => entry.parse::<IpAddr>().map(IpNet::from).map_err(|_| {
                    format!("`{entry}` is neither an IP address nor a CIDR (e.g. 10.0.0.0/8)")
                })?,
            };
            if net.prefix_len() == 0 {
                return Err(format!(
                    "`{entry}` trusts every address: any client could choose its own address"
                ));
            }
            nets.push(normalize_net(net.trunc()));
        }
        Ok(Self(nets))
    }

    /// No proxy is trusted: the peer is always the client.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Whether `ip` (IPv4-mapped addresses as IPv4) is a trusted proxy.
    pub fn contains(&self, ip: IpAddr) -> bool {
        // None configured (the default): nothing to canonicalize, on every request's path.
        if self.0.is_empty() {
            return false;
        }
        let ip = canonical(ip);
        self.0.iter().any(|net| net.contains(&ip))
    }
}

impl TryFrom<Vec<String>> for TrustedProxies {
    type Error = String;

    fn try_from(entries: Vec<String>) -> Result<Self, String> {
        Self::parse(&entries)
    }
}

/// `::ffff:10.0.0.0/104` is `10.0.0.0/8`: peers are compared as IPv4.
pub(crate) fn normalize_net(net: IpNet) -> IpNet {
    match net {
        IpNet::V6(v6) if v6.prefix_len() >= 96 => match v6.addr().to_ipv4_mapped() {
            Some(v4) => ipnet::Ipv4Net::new(v4, v6.prefix_len() - 96).map_or(net, IpNet::V4),
            None => net,
        },
        other => other,
    }
}

/// IPv4-mapped IPv6 as IPv4; everything else unchanged.
pub fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn trusted(list: &[&str]) -> TrustedProxies {
        TrustedProxies::parse(list).unwrap()
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn trusted_proxies_accept_cidrs_and_addresses_and_refuse_the_rest() {
        let t = trusted(&["10.0.0.0/8", "192.168.1.7", "fd00::/8", "::1", "10.1.2.3/8"]);
        assert!(t.contains(ip("10.200.0.1")));
        assert!(t.contains(ip("192.168.1.7")) && !t.contains(ip("192.168.1.8")));
        assert!(t.contains(ip("fd12::1")) && t.contains(ip("::1")));
        assert!(
            t.contains(ip("::ffff:10.0.0.1")),
            "mapped peers count as IPv4"
        );
        assert!(trusted(&["::ffff:10.0.0.0/104"]).contains(ip("10.9.9.9")));
        for bad in ["", "nope", "10.0.0.0/33", "1.2.3.4:80", "0.0.0.0/0", "::/0"] {
            assert!(TrustedProxies::parse(&[bad]).is_err(), "{bad:?}");
        }
        let e = TrustedProxies::parse(&["10.0.0.0/8", "x"]).unwrap_err();
        assert!(e.contains("`x`"), "{e}");
    }
}
