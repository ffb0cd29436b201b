//! Where a client may connect from (`users[].allowed_hosts`,
//! `query_rules[].client_addr`): `localhost` (Funnel's Unix socket, as
//! MySQL means it), an IP address, or a network in CIDR form
//! (`10.0.0.0/8`, `fd00::/8`).

use std::fmt;
use std::net::IpAddr;

use serde::{Deserialize, Serialize};

/// One allowed source, as written in the file.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub struct HostPattern {
    text: String,
    kind: Kind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Kind {
    /// A client of Funnel's Unix socket.
    Localhost,
    /// Addresses whose first `prefix` bits are `addr`'s.
    Net { addr: IpAddr, prefix: u8 },
}

impl HostPattern {
    /// True when a client whose host Funnel names `peer` (an IP address,
    /// or `localhost` for its Unix socket) is one of this pattern's.
    /// An IPv4 client of an IPv6 listener (`::ffff:10.0.0.1`) is taken
    /// by its IPv4 address.
    pub fn matches(&self, peer: &str) -> bool {
        match self.kind {
            Kind::Localhost => peer == "localhost",
            Kind::Net { addr, prefix } => peer
                .parse::<IpAddr>()
                .is_ok_and(|ip| in_net(ip.to_canonical(), addr, prefix)),
        }
    }
}

/// True when the first `prefix` bits of `ip` are those of `net`.
fn in_net(ip: IpAddr, net: IpAddr, prefix: u8) -> bool {
    let bits = |a: IpAddr| match a {
        IpAddr::V4(v4) => (u128::from(u32::from(v4)) << 96, 32),
        IpAddr::V6(v6) => (u128::from(v6), 128),
    };
    let ((ip, ip_len), (net, net_len)) = (bits(ip), bits(net));
    if ip_len != net_len {
        return false;
    }
    let mask = if prefix == 0 {
        0
    } else {
        u128::MAX << (128 - u32::from(prefix))
    };
    ip & mask == net & mask
}

impl TryFrom<String> for HostPattern {
    type Error = String;

    fn try_from(text: String) -> Result<Self, String> {
        let invalid = || format!("{text:?} is not localhost, an IP address or a network such as 10.0.0.0/8");
        if text == "localhost" {
            return Ok(HostPattern {
                text,
                kind: Kind::Localhost,
            });
        }
        let (addr, prefix) = match text.split_once('/') {
            Some((addr, len)) => (addr, Some(len)),
            None => (text.as_str(), None),
        };
        let written: IpAddr = addr.parse().map_err(|_| invalid())?;
        // Clients are matched by their IPv4 address when mapped, so is an
        // IPv4-mapped pattern (`::ffff:10.0.0.0/104` is `10.0.0.0/8`).
        let addr = written.to_canonical();
        let max = if written.is_ipv4() { 32 } else { 128 };
        let prefix = match prefix {
            None => max,
            Some(len) => match len.parse::<u8>() {
                Ok(n) if n <= max && !len.starts_with('+') => n,
                _ => return Err(format!("{text:?}: the prefix length must be 0 to {max}")),
            },
        };
        let prefix = match (written, addr) {
            (IpAddr::V6(_), IpAddr::V4(_)) if prefix < 96 => {
                return Err(format!(
                    "{text:?}: an IPv4-mapped network needs a prefix length of 96 to 128"
                ))
            }
            (IpAddr::V6(_), IpAddr::V4(_)) => prefix - 96,
            _ => prefix,
        };
        Ok(HostPattern {
            text,
            kind: Kind::Net { addr, prefix },
        })
    }
}

impl From<HostPattern> for String {
    fn from(p: HostPattern) -> String {
        p.text
    }
}

impl fmt::Display for HostPattern {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(s: &str) -> HostPattern {
        HostPattern::try_from(s.to_string()).unwrap()
    }

    #[test]
    fn host_pattern_networks_match_their_addresses() {
        let net = p("10.1.0.0/16");
        assert!(net.matches("10.1.200.3"));
        assert!(!net.matches("10.2.0.1"));
        assert!(
            net.matches("::ffff:10.1.0.9"),
            "an IPv4 client of an IPv6 listener"
        );
        assert!(!net.matches("localhost"));
        assert!(!net.matches("unknown"));
        assert!(p("192.168.4.7").matches("192.168.4.7"));
        assert!(!p("192.168.4.7").matches("192.168.4.8"));
        assert!(p("0.0.0.0/0").matches("203.0.113.9"));
        assert!(!p("0.0.0.0/0").matches("2001:db8::1"), "families do not mix");
        assert!(p("fd00::/8").matches("fd12:3456::1"));
        assert!(!p("fd00::/8").matches("fe80::1"));
        assert!(p("::/0").matches("2001:db8::1"));
        assert!(p("::1").matches("::1"));
        // Host bits beyond the prefix are ignored, as in a route.
        assert!(p("10.1.2.3/8").matches("10.9.9.9"));
        // An IPv4 network written in its IPv4-mapped IPv6 form: its prefix
        // counts the 96 bits of the mapping.
        let mapped = p("::ffff:10.0.0.0/104");
        assert!(mapped.matches("10.200.0.1") && mapped.matches("::ffff:10.3.0.1"));
        assert!(!mapped.matches("11.0.0.1"));
        assert!(p("::ffff:10.0.0.7").matches("10.0.0.7"));
    }

    #[test]
    fn host_pattern_localhost_is_the_unix_socket() {
        let local = p("localhost");
        assert!(local.matches("localhost"));
        assert!(
            !local.matches("127.0.0.1"),
            "as MySQL: TCP from loopback is 127.0.0.1"
        );
    }

    #[test]
    fn host_pattern_refuses_what_it_cannot_read() {
        for bad in [
            "",
            "10.0.0.0/33",
            "::/129",
            "10.0.0.0/",
            "10.0.0/8",
            "host.example",
            "10.0.0.0/+8",
            "::ffff:10.0.0.0/8",
            "%",
        ] {
            let e = HostPattern::try_from(bad.to_string()).unwrap_err();
            assert!(e.contains(&format!("{bad:?}")), "{bad}: {e}");
        }
        assert_eq!(String::from(p("10.0.0.0/8")), "10.0.0.0/8");
    }
}
