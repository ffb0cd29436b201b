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
