//! The PROXY protocol header (HAProxy's, version 1 text and version 2
//! binary) that a load balancer sends ahead of a client's bytes to name the
//! client's own address, which the balancer's connection hides.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};

/// The version 2 header's first twelve bytes.
const V2_SIGNATURE: &[u8; 12] = b"\r\n\r\n\0\r\nQUIT\n";

/// The version 1 header's first bytes.
const V1_PREFIX: &[u8] = b"PROXY ";

/// A version 1 header is at most this long, line end included.
const V1_MAX: usize = 107;

/// The most of a version 2 header's address block (and TLVs) taken: a
/// balancer's usual TLVs (a VPC endpoint, a TLS summary) are far smaller.
pub const V2_MAX_BLOCK: usize = 4096;

/// What a header says about the connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ProxyHeader {
    /// The client the balancer relays, and its address.
    Proxied(SocketAddr),
    /// The balancer's own connection (`LOCAL`, `UNKNOWN`, a health check),
    /// or an address family with no IP: the connection's address stands.
    Local,
}

/// The outcome of reading the start of a connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Parsed {
    /// A whole header of `len` bytes; the client's own bytes follow.
    Header {
        /// What it says.
        header: ProxyHeader,
        /// Its length.
        len: usize,
    },
    /// So far a header, not yet whole: at least this many bytes are needed.
    Incomplete {
        /// The least length the header can have.
        want: usize,
    },
    /// Not a header, or a malformed one.
    Invalid(&'static str),
}

/// Reads a PROXY header at the start of `bytes`.
pub fn parse(bytes: &[u8]) -> Parsed {
    if bytes.first() == Some(&V2_SIGNATURE[0]) {
        parse_v2(bytes)
    } else {
        parse_v1(bytes)
    }
}

fn parse_v1(bytes: &[u8]) -> Parsed {
    let head = &bytes[..bytes.len().min(V1_PREFIX.len())];
    if head != &V1_PREFIX[..head.len()] {
        return Parsed::Invalid("the connection does not start with a PROXY header");
    }
    let Some(end) = bytes[..bytes.len().min(V1_MAX)]
        .windows(2)
        .position(|w| w == b"\r\n")
    else {
        return if bytes.len() >= V1_MAX {
            Parsed::Invalid("a version 1 header longer than 107 bytes")
        } else {
            Parsed::Incomplete {
                want: bytes.len() + 1,
            }
        };
    };
    let len = end + 2;
    let Ok(line) = std::str::from_utf8(&bytes[V1_PREFIX.len()..end]) else {
        return Parsed::Invalid("a version 1 header that is not text");
    };
    let fields: Vec<&str> = line.split(' ').collect();
    let header = match fields.as_slice() {
        ["UNKNOWN", ..] => ProxyHeader::Local,
        [family @ ("TCP4" | "TCP6"), source, dest, source_port, dest_port] => {
            let ip_of = |text: &str| match *family {
                "TCP4" => text.parse::<Ipv4Addr>().map(IpAddr::V4).ok(),
                _ => text.parse::<Ipv6Addr>().map(IpAddr::V6).ok(),
            };
            // The destination is checked as the source is (HAProxy does):
            // a line with a mangled one is no header to trust.
            let dest_ok = ip_of(dest).is_some() && port_of(dest_port).is_some();
            match (ip_of(source), port_of(source_port)) {
                (Some(ip), Some(port)) if dest_ok => ProxyHeader::Proxied(SocketAddr::new(ip, port)),
                _ => return Parsed::Invalid("a version 1 header with a bad address or port"),
            }
        }
        _ => return Parsed::Invalid("a version 1 header of an unknown form"),
    };
    Parsed::Header { header, len }
}

/// A port as the version 1 header writes it: decimal, no leading zero.
fn port_of(text: &str) -> Option<u16> {
    let plain = !text.is_empty()
        && text.bytes().all(|b| b.is_ascii_digit())
        && (text == "0" || !text.starts_with('0'));
    plain.then(|| text.parse().ok()).flatten()
}

fn parse_v2(bytes: &[u8]) -> Parsed {
    let head = &bytes[..bytes.len().min(V2_SIGNATURE.len())];
    if head != &V2_SIGNATURE[..head.len()] {
        return Parsed::Invalid("the connection does not start with a PROXY header");
    }
    if bytes.len() < 16 {
        return Parsed::Incomplete { want: 16 };
    }
    let (ver_cmd, family) = (bytes[12], bytes[13]);
    let block = usize::from(u16::from_be_bytes([bytes[14], bytes[15]]));
    if ver_cmd >> 4 != 2 {
        return Parsed::Invalid("a version 2 header of another version");
    }
    if block > V2_MAX_BLOCK {
        return Parsed::Invalid("a version 2 header longer than 4 KiB");
    }
    let len = 16 + block;
    if bytes.len() < len {
        return Parsed::Incomplete { want: len };
    }
    let addresses = &bytes[16..len];
    let header = match (ver_cmd & 0x0f, family) {
        // LOCAL: the balancer's own connection.
        (0, _) => ProxyHeader::Local,
        // TCP over IPv4: source, destination, source port, destination port.
        (1, 0x11) if addresses.len() >= 12 => {
            let ip = Ipv4Addr::new(addresses[0], addresses[1], addresses[2], addresses[3]);
            let port = u16::from_be_bytes([addresses[8], addresses[9]]);
            ProxyHeader::Proxied(SocketAddr::new(IpAddr::V4(ip), port))
        }
        // TCP over IPv6.
        (1, 0x21) if addresses.len() >= 36 => {
            let mut octets = [0u8; 16];
            octets.copy_from_slice(&addresses[..16]);
            let port = u16::from_be_bytes([addresses[32], addresses[33]]);
            ProxyHeader::Proxied(SocketAddr::new(IpAddr::V6(Ipv6Addr::from(octets)), port))
        }
        (1, 0x11 | 0x21) => return Parsed::Invalid("a version 2 header too short for its addresses"),
        // Unspecified, UDP or Unix-socket families: no client IP to take.
        (1, 0x00 | 0x12 | 0x22 | 0x31 | 0x32) => ProxyHeader::Local,
        // The specification has receivers refuse every other family byte
        // (a corrupted header must not pass as one without an address).
        (1, _) => return Parsed::Invalid("a version 2 header with an unknown address family"),
        _ => return Parsed::Invalid("a version 2 header with an unknown command"),
    };
    Parsed::Header { header, len }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn v2(cmd: u8, family: u8, block: &[u8]) -> Vec<u8> {
        let mut out = V2_SIGNATURE.to_vec();
        out.push(0x20 | cmd);
        out.push(family);
        out.extend_from_slice(&(block.len() as u16).to_be_bytes());
        out.extend_from_slice(block);
        out
    }

    #[test]
    fn proxy_header_v1_names_the_client() {
        let text = b"PROXY TCP4 10.1.2.3 192.168.0.9 51234 3306\r\nrest";
        assert_eq!(
            parse(text),
            Parsed::Header {
                header: ProxyHeader::Proxied("10.1.2.3:51234".parse().unwrap()),
                len: text.len() - 4
            }
        );
        let text = b"PROXY TCP6 2001:db8::7 2001:db8::1 40000 3306\r\n";
        assert_eq!(
            parse(text),
            Parsed::Header {
                header: ProxyHeader::Proxied("[2001:db8::7]:40000".parse().unwrap()),
                len: text.len()
            }
        );
        assert_eq!(
            parse(b"PROXY UNKNOWN\r\n"),
            Parsed::Header {
                header: ProxyHeader::Local,
                len: 15
            }
        );
    }

    #[test]
    fn proxy_header_v1_waits_for_its_line_end() {
        let whole = b"PROXY TCP4 10.1.2.3 192.168.0.9 51234 3306\r\n";
        for cut in 0..whole.len() {
            assert!(
                matches!(parse(&whole[..cut]), Parsed::Incomplete { .. }),
                "{cut}: {:?}",
                parse(&whole[..cut])
            );
        }
    }

    #[test]
    fn proxy_header_v1_refuses_what_is_not_one() {
        for bad in [
            &b"\x0a\x00\x00\x00\x0a5.5.5"[..],
            b"GET / HTTP/1.1\r\n",
            b"PROXY TCP4 10.1.2.3 192.168.0.9 51234\r\n",
            b"PROXY TCP4 10.1.2.300 192.168.0.9 51234 3306\r\n",
            b"PROXY TCP4 2001:db8::7 192.168.0.9 51234 3306\r\n",
            b"PROXY TCP4 10.1.2.3 192.168.0.9 051234 3306\r\n",
            b"PROXY TCP4 10.1.2.3 192.168.0.9 65536 3306\r\n",
            b"PROXY TCP5 10.1.2.3 192.168.0.9 1 3306\r\n",
            b"PROXY TCP4 10.1.2.3 2001:db8::1 51234 3306\r\n",
            b"PROXY TCP4 10.1.2.3 192.168.0.9 51234 70000\r\n",
            b"PROXY TCP6 2001:db8::7 192.168.0.9 51234 3306\r\n",
        ] {
            assert!(
                matches!(parse(bad), Parsed::Invalid(_)),
                "{bad:?}: {:?}",
                parse(bad)
            );
        }
        let long = [&b"PROXY "[..], &[b'x'; 120]].concat();
        assert!(matches!(parse(&long), Parsed::Invalid(_)));
    }

    #[test]
    fn proxy_header_v2_names_the_client() {
        let block = [10, 1, 2, 3, 192, 168, 0, 9, 0xc8, 0x22, 0x0c, 0xea];
        let header = v2(1, 0x11, &block);
        assert_eq!(
            parse(&header),
            Parsed::Header {
                header: ProxyHeader::Proxied("10.1.2.3:51234".parse().unwrap()),
                len: 28
            }
        );
        // TLVs after the addresses are skipped.
        let with_tlv = v2(1, 0x11, &[&block[..], &[0x04, 0x00, 0x02, b'a', b'b']].concat());
        assert!(matches!(parse(&with_tlv), Parsed::Header { len: 33, .. }));
        let mut six = vec![0u8; 36];
        six[..16].copy_from_slice(&"2001:db8::7".parse::<Ipv6Addr>().unwrap().octets());
        six[32..34].copy_from_slice(&40000u16.to_be_bytes());
        assert_eq!(
            parse(&v2(1, 0x21, &six)),
            Parsed::Header {
                header: ProxyHeader::Proxied("[2001:db8::7]:40000".parse().unwrap()),
                len: 52
            }
        );
        assert_eq!(
            parse(&v2(0, 0x00, &[])),
            Parsed::Header {
                header: ProxyHeader::Local,
                len: 16
            }
        );
        for cut in 0..header.len() {
            assert!(
                matches!(parse(&header[..cut]), Parsed::Incomplete { .. }),
                "{cut}"
            );
        }
    }

    #[test]
    fn proxy_header_v2_refuses_what_is_not_one() {
        assert!(matches!(parse(&v2(1, 0x11, &[1, 2, 3])), Parsed::Invalid(_)));
        assert!(matches!(parse(&v2(5, 0x11, &[0; 12])), Parsed::Invalid(_)));
        let mut other_version = v2(1, 0x11, &[0; 12]);
        other_version[12] = 0x11;
        assert!(matches!(parse(&other_version), Parsed::Invalid(_)));
        // Families the specification does not define (AF 4, protocol 3).
        for family in [0x41, 0x13, 0x01, 0x10] {
            assert!(
                matches!(parse(&v2(1, family, &[0; 12])), Parsed::Invalid(_)),
                "{family:#x}"
            );
        }
        // Defined ones without an IP address keep the balancer's.
        for family in [0x00, 0x12, 0x31, 0x32] {
            assert!(
                matches!(
                    parse(&v2(1, family, &[0; 216])),
                    Parsed::Header {
                        header: ProxyHeader::Local,
                        ..
                    }
                ),
                "{family:#x}"
            );
        }
        let mut huge = v2(1, 0x11, &[]);
        huge[14..16].copy_from_slice(&5000u16.to_be_bytes());
        assert!(matches!(parse(&huge), Parsed::Invalid(_)));
        assert!(matches!(parse(b"\r\n\r\nX"), Parsed::Invalid(_)));
    }
}
