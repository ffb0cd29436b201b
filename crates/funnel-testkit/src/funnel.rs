//! An in-process Funnel in front of a test server, on a free port.

use funnel_config::Config;
use funnel_engine::Proxy;

use crate::MariaDb;

/// Builds a config with one client user and one backend (`db`), listening
/// on 127.0.0.1 port 0, with `extra` YAML appended (pool, backlog, ...).
/// The backend user must exist on `db` (see [`MariaDb::create_user`]).
pub fn config(
    db: &MariaDb,
    client: (&str, &str),
    backend: (&str, &str),
    schema: Option<&str>,
    extra: &str,
) -> Config {
    let schema_line = schema
        .map(|s| format!("    default_schema: {s}\n"))
        .unwrap_or_default();
    let yaml = format!(
        "listen: 127.0.0.1:0\n\
         cores: 1\n\
         users:\n  - name: {cu}\n    password: \"{cp}\"\n{schema_line}\
         backends:\n  - name: primary\n    address: {addr}\n    user: {bu}\n    password: \"{bp}\"\n\
         {extra}",
        cu = client.0,
        cp = client.1,
        addr = db.addr(),
        bu = backend.0,
        bp = backend.1,
    );
    Config::from_yaml_str(&yaml).unwrap_or_else(|e| panic!("test config invalid: {e}\n{yaml}"))
}

/// Starts Funnel in this process.
pub fn start(config: Config) -> Proxy {
    Proxy::start(config).unwrap_or_else(|e| panic!("funnel did not start: {e}"))
}

/// Sets backend `name`'s `drained` key, as admin `DRAIN` / `UNDRAIN
/// BACKEND` do; in force on every core when it returns.
pub fn set_drained(proxy: &Proxy, name: &str, drained: bool) {
    proxy
        .handle()
        .update(|mut cfg| {
            let backend = cfg.backends.iter_mut().find(|b| b.name == name);
            backend.unwrap_or_else(|| panic!("no backend {name}")).drained = drained;
            Ok::<_, ()>(cfg)
        })
        .unwrap()
        .unwrap();
}

/// The `funnel` binary running as a child process (killed and reaped on
/// drop): for tests that read its RSS or change its limits, which an
/// in-process [`Proxy`] shares with the test.
pub struct Spawned {
    /// The child process.
    pub child: std::process::Child,
    /// Where it listens.
    pub addr: std::net::SocketAddr,
    /// The fresh schema its user `app` (password `pw`) starts in.
    pub schema: String,
}

impl Drop for Spawned {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the `funnel` binary at `binary` (a test's
/// `env!("CARGO_BIN_EXE_funnel")`) on one core, in front of the shared
/// server: a fresh schema named after `prefix`, its own backend user, a
/// client user `app` / `pw`, and `extra` YAML appended; the config file
/// goes in `dir`. Returns once a client can log in.
pub fn spawn(binary: &str, prefix: &str, extra: &str, dir: &std::path::Path) -> Spawned {
    use std::time::{Duration, Instant};
    let db = MariaDb::shared();
    let schema = db.fresh_database(prefix);
    let backend = format!("{schema}_b");
    db.create_user(&backend, "bpw");
    let path = dir.join("funnel.yaml");
    let port = crate::port::pick_free_port().expect("a free port");
    std::fs::write(
        &path,
        format!(
            "listen: 127.0.0.1:{port}\ncores: 1\n\
             users:\n  - name: app\n    password: pw\n    default_schema: {schema}\n\
             backends:\n  - name: primary\n    address: {}\n    user: {backend}\n    password: bpw\n\
             log:\n  level: warn\n{extra}",
            db.addr()
        ),
    )
    .unwrap();
    let child = std::process::Command::new(binary)
        .arg("--config")
        .arg(&path)
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {binary}: {e}"));
    let spawned = Spawned {
        child,
        addr: std::net::SocketAddr::from(([127, 0, 0, 1], port)),
        schema,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while let Err(e) = crate::mini_client::MiniClient::connect(spawned.addr, "app", "pw", None) {
        assert!(Instant::now() < deadline, "funnel did not start: {e:?}");
        std::thread::sleep(Duration::from_millis(50));
    }
    spawned
}
