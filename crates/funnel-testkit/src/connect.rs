//! Client connection options for a testkit server.

use std::time::Duration;

use mysql::OptsBuilder;

/// How long a TCP connect may take; 127.0.0.1 answers at once unless the server is paused.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// Read and write timeout of testkit connections, so a wedged server fails a test instead of
/// hanging it. Generous, because tests may run slow statements on purpose.
const IO_TIMEOUT: Duration = Duration::from_secs(60);

/// Options for `user` with `password` over TCP to 127.0.0.1:`port`.
pub fn opts(port: u16, user: &str, password: &str) -> OptsBuilder {
    OptsBuilder::new()
        .ip_or_hostname(Some("127.0.0.1"))
        .tcp_port(port)
        .user(Some(user))
        .pass(Some(password))
        // The driver would otherwise ask the server for @@socket and reconnect through it,
        // silently testing a different path (and a different MariaDB account host).
        .prefer_socket(false)
        .tcp_connect_timeout(Some(CONNECT_TIMEOUT))
        .read_timeout(Some(IO_TIMEOUT))
        .write_timeout(Some(IO_TIMEOUT))
}

/// Options for root, whose password the template leaves empty.
pub(crate) fn root_opts(port: u16) -> OptsBuilder {
    opts(port, "root", "")
}
