//! The mariadbd command line and the files a server keeps in its scratch directory.

use std::{
    ffi::OsString,
    path::{Path, PathBuf},
};

/// Redo log size for the template and every server. The 10.11 default is 96 MiB, which makes each
/// copy of the template 100 MiB bigger; tests write little.
const INNODB_LOG_FILE_SIZE: &str = "--innodb-log-file-size=8M";

/// The files of one server, all inside its scratch directory.
#[derive(Debug, Clone)]
pub(crate) struct ServerPaths {
    /// The data directory, a copy of the template.
    pub(crate) datadir: PathBuf,
    /// The unix socket. The testkit itself connects over TCP, but tests of Unix-socket backends
    /// use it, and mariadbd must put it somewhere other than the system default, where a real
    /// server may be listening.
    pub(crate) socket: PathBuf,
    /// The pid file; likewise kept away from the system default.
    pub(crate) pid_file: PathBuf,
    /// The error log, which also receives mariadbd's stdout and stderr.
    pub(crate) error_log: PathBuf,
    /// Its temporary files. Not the shared /tmp: a starting mariadbd deletes
    /// every `#sql*` file in its tmpdir, which in /tmp includes the on-disk
    /// temporary tables of the other servers running there.
    pub(crate) tmpdir: PathBuf,
}

impl ServerPaths {
    /// The layout inside `dir`.
    pub(crate) fn in_dir(dir: &Path) -> Self {
        Self {
            datadir: dir.join("data"),
            socket: dir.join("mysqld.sock"),
            pid_file: dir.join("mysqld.pid"),
            error_log: dir.join("error.log"),
            tmpdir: dir.join("tmp"),
        }
    }
}

/// Settings a builder may change.
#[derive(Debug, Clone)]
pub(crate) struct ServerSettings {
    /// `--max-connections`; high by default because pooling tests open many connections.
    pub(crate) max_connections: u32,
    /// Extra arguments, appended last so they override the defaults (mariadbd lets the last
    /// occurrence of an option win).
    pub(crate) extra_args: Vec<OsString>,
}

impl Default for ServerSettings {
    fn default() -> Self {
        Self {
            max_connections: 2000,
            extra_args: Vec::new(),
        }
    }
}

/// `--user=root` when we are root: mariadbd refuses to run as root without it, and switching to
/// the `mysql` user would both fail to read our files and clear PR_SET_PDEATHSIG (the kernel
/// clears it on a credential change). Without root the option is not needed.
fn user_args() -> Vec<OsString> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } == 0 {
        vec!["--user=root".into()]
    } else {
        Vec::new()
    }
}

/// Server options that `mariadb-install-db` must also get, because they shape the files it
/// creates or let the bootstrap server run at all.
pub(crate) fn install_time_server_args() -> Vec<OsString> {
    let mut args = user_args();
    args.push(INNODB_LOG_FILE_SIZE.into());
    args.push("--skip-log-bin".into());
    args
}

/// The full mariadbd argument list for a server on `port`.
pub(crate) fn server_args(paths: &ServerPaths, port: u16, settings: &ServerSettings) -> Vec<OsString> {
    let path_arg = |name: &str, path: &Path| {
        let mut arg = OsString::from(format!("--{name}="));
        arg.push(path);
        arg
    };
    // --no-defaults must come first, or mariadbd ignores it and reads the system's my.cnf.
    let mut args: Vec<OsString> = vec!["--no-defaults".into()];
    args.extend([
        path_arg("datadir", &paths.datadir),
        path_arg("socket", &paths.socket),
        path_arg("pid-file", &paths.pid_file),
        path_arg("log-error", &paths.error_log),
        path_arg("tmpdir", &paths.tmpdir),
        "--bind-address=127.0.0.1".into(),
        format!("--port={port}").into(),
        format!("--max-connections={}", settings.max_connections).into(),
    ]);
    args.extend(install_time_server_args());
    args.extend([
        // Small enough that several servers fit on a CI machine, big enough for sysbench smoke runs.
        "--innodb-buffer-pool-size=64M".into(),
        // Commits reach the OS at once but are not fsynced: a SIGKILLed server loses nothing (the
        // kernel still has the data), only a machine crash would, and tests get much faster.
        "--innodb-flush-log-at-trx-commit=2".into(),
        // Connections come from 127.0.0.1, so reverse DNS is pointless and can stall on a box
        // without a resolver; root@127.0.0.1 from the template still matches.
        "--skip-name-resolve".into(),
        // Above 16 MiB so tests can send packets that the protocol must split.
        "--max-allowed-packet=64M".into(),
    ]);
    args.extend(settings.extra_args.iter().cloned());
    args
}
