//! The `mariadb` command-line client, as users run it against Funnel: one
//! runner for every test that checks what the real CLI sees (TLS, a Unix
//! socket, a backend cut mid-reply, several listen addresses).
//!
//! ```no_run
//! use funnel_testkit::cli::Cli;
//!
//! let out = Cli::tcp("127.0.0.1", 3306, "app", "pw").arg("--ssl").run("status");
//! assert!(out.success, "{}", out.text());
//! ```

use std::io::Read;
use std::path::Path;
use std::process::{Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

/// What a CLI run gave: its exit, its output and its error output.
#[derive(Debug, Clone)]
pub struct CliOutput {
    /// The client exited 0.
    pub success: bool,
    /// What it printed: rows, tab-separated, without column names.
    pub stdout: Vec<u8>,
    /// What it printed on stderr ("ERROR 2013 (HY000) at line 1: ...").
    pub stderr: String,
}

impl CliOutput {
    /// Standard output, then standard error, as one text.
    pub fn text(&self) -> String {
        format!("{}{}", String::from_utf8_lossy(&self.stdout), self.stderr)
    }

    /// The error number the client reported (`ERROR 2013 (HY000) ...`).
    pub fn error_code(&self) -> Option<u32> {
        self.stderr
            .split("ERROR ")
            .nth(1)
            .and_then(|r| r.split(' ').next())
            .and_then(|c| c.parse().ok())
    }
}

/// A `mariadb` CLI invocation being built: batch mode (tab-separated rows)
/// without column names, as scripts run it; more options with [`Cli::arg`].
#[derive(Debug)]
pub struct Cli {
    cmd: Command,
}

impl Cli {
    /// To `host:port` over TCP as `user` with `password`.
    pub fn tcp(host: &str, port: u16, user: &str, password: &str) -> Cli {
        let mut cli = Cli::new(user, password);
        cli.cmd.arg(format!("-h{host}")).arg(format!("-P{port}"));
        cli
    }

    /// Through the Unix socket at `socket` as `user` with `password`.
    pub fn socket(socket: &Path, user: &str, password: &str) -> Cli {
        let mut cli = Cli::new(user, password);
        cli.cmd.arg(format!("--socket={}", socket.display()));
        cli
    }

    fn new(user: &str, password: &str) -> Cli {
        let mut cmd = Command::new("mariadb");
        cmd.arg(format!("-u{user}"))
            .arg(format!("-p{password}"))
            .args(["--batch", "--skip-column-names"]);
        Cli { cmd }
    }

    /// One more option (`--ssl`, `--quick`, a schema name).
    pub fn arg(mut self, arg: impl AsRef<std::ffi::OsStr>) -> Cli {
        self.cmd.arg(arg);
        self
    }

    /// Runs `sql` (`-e`) and waits for the client to end.
    pub fn run(self, sql: &str) -> CliOutput {
        self.run_within(sql, Duration::MAX)
            .expect("no time limit, so the client ended")
    }

    /// Runs `sql` (`-e`); `None` when the client has not ended within
    /// `limit` (it is killed then): a test of a hang tells it from an error.
    pub fn run_within(mut self, sql: &str, limit: Duration) -> Option<CliOutput> {
        let mut child = self
            .cmd
            .args(["-e", sql])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("the mariadb client is missing: apt-get install -y mariadb-client");
        // Both pipes drained as the client writes: a large result must not
        // block it on a full pipe while this waits for its exit.
        let mut stdout = child.stdout.take().expect("piped");
        let mut stderr = child.stderr.take().expect("piped");
        let out = thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stdout.read_to_end(&mut s);
            s
        });
        let err = thread::spawn(move || {
            let mut s = Vec::new();
            let _ = stderr.read_to_end(&mut s);
            s
        });
        let deadline = Instant::now().checked_add(limit);
        let status = loop {
            let Some(deadline) = deadline else {
                break Some(child.wait().expect("the client's status"));
            };
            if let Some(s) = child.try_wait().expect("the client's status") {
                break Some(s);
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                break None;
            }
            thread::sleep(Duration::from_millis(20));
        };
        let stdout = out.join().expect("stdout reader");
        let stderr = String::from_utf8_lossy(&err.join().expect("stderr reader")).into_owned();
        Some(CliOutput {
            success: status?.success(),
            stdout,
            stderr,
        })
    }
}
