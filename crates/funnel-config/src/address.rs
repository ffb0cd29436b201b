//! Backend addresses written as `host:port`, where the host may be a name, an IPv4 address or a
//! bracketed IPv6 address (`[::1]:3306`), or as the absolute path of a Unix socket
//! (`/run/mysqld/mysqld.sock`) for a server on the same host.
//!
//! Backends keep the address as text rather than a `SocketAddr` because a name like
//! `db-primary.internal` must be resolved when connecting, not once when the file is read.

use std::net::Ipv6Addr;
use std::path::Path;

/// The longest Unix socket path the kernel takes (`sun_path` holds 108 bytes with the NUL).
const MAX_UNIX_PATH: usize = 107;

/// The socket path when `address` names a Unix socket (an absolute path), else `None`.
pub(crate) fn unix_socket_path(address: &str) -> Option<&Path> {
    address.starts_with('/').then(|| Path::new(address))
}

/// Why a Unix socket path cannot be connected to, if it cannot.
pub(crate) fn check_unix_socket_path(path: &Path) -> Result<(), String> {
    let len = path.as_os_str().len();
    if len > MAX_UNIX_PATH {
        return Err(format!(
            "{}: a Unix socket path has at most {MAX_UNIX_PATH} bytes, this one {len}",
            path.display()
        ));
    }
    Ok(())
}

/// Splits `host:port` into its parts, or says why it is not one.
///
/// Brackets around an IPv6 host are removed, so the result can go straight to
/// `ToSocketAddrs` as `(host, port)`.
pub(crate) fn split_host_port(address: &str) -> Result<(&str, u16), String> {
    let not_host_port = || format!("{address:?} is not host:port");
    let (host, port) = address.rsplit_once(':').ok_or_else(not_host_port)?;
    let host = match host.strip_prefix('[') {
        Some(inner) => {
            let inner = inner.strip_suffix(']').ok_or_else(not_host_port)?;
            inner
                .parse::<Ipv6Addr>()
                .map_err(|_| format!("{address:?}: {inner:?} is not an IPv6 address"))?;
            inner
        }
        None => host,
    };
    if host.is_empty() || host.contains(char::is_whitespace) {
        return Err(not_host_port());
    }
    // A bare IPv6 address (`::1:3306`) cannot be told apart from its port.
    if host.contains(':') && !address.starts_with('[') {
        return Err(format!(
            "{address:?} is not host:port (write IPv6 addresses in brackets, e.g. [::1]:3306)"
        ));
    }
    match port.parse::<u16>() {
        Ok(0) => Err(format!("{address:?}: port 0 cannot be connected to")),
        Ok(port) => Ok((host, port)),
        Err(_) => Err(format!(
            "{address:?}: port {port:?} is not a number from 1 to 65535"
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_address_accepts_names_and_ips() {
        assert_eq!(split_host_port("127.0.0.1:3306"), Ok(("127.0.0.1", 3306)));
        assert_eq!(split_host_port("db.internal:3307"), Ok(("db.internal", 3307)));
        assert_eq!(split_host_port("[::1]:3306"), Ok(("::1", 3306)));
    }

    #[test]
    fn config_address_rejects_bad_forms() {
        for bad in [
            "foo",
            ":3306",
            "db:",
            "db:99999",
            "db:0",
            "::1:3306",
            "[::1:3306",
            "[nope]:3306",
            "a b:1",
        ] {
            assert!(split_host_port(bad).is_err(), "{bad} should be rejected");
        }
        assert_eq!(split_host_port("foo"), Err("\"foo\" is not host:port".to_owned()));
    }

    #[test]
    fn config_address_unix_socket_paths() {
        assert_eq!(
            unix_socket_path("/run/mysqld/mysqld.sock"),
            Some(Path::new("/run/mysqld/mysqld.sock"))
        );
        assert_eq!(unix_socket_path("127.0.0.1:3306"), None);
        assert_eq!(unix_socket_path("mysqld.sock"), None);
        assert!(check_unix_socket_path(Path::new("/run/mysqld/mysqld.sock")).is_ok());
        let long = format!("/{}", "a".repeat(MAX_UNIX_PATH));
        assert!(check_unix_socket_path(Path::new(&long)).is_err());
    }
}
