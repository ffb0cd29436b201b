//! Throwaway MariaDB servers for Funnel's integration tests.
//!
//! ```no_run
//! use funnel_testkit::MariaDb;
//!
//! // One server per test binary, one database per test:
//! let db = MariaDb::shared();
//! let name = db.fresh_database("pool");
//! assert_eq!(db.query_first::<i64>("SELECT 1"), Some(1));
//!
//! // Or a private server with extra options, for fault tests:
//! let private = MariaDb::builder().server_arg("--wait-timeout=2").start().unwrap();
//! private.pause();
//! private.resume();
//! ```
//!
//! How it works: `mariadb-install-db` builds a template data directory once per machine and
//! server version (module `template`); each server copies it into its own scratch directory
//! (`workdir`), and `mariadbd --no-defaults` starts on 127.0.0.1 and a free port (`options`,
//! `port`) from a long-lived spawner thread so it dies with the test process (`spawner`).
//! Readiness is a real root login polled with a deadline (`ready`). A missing MariaDB fails
//! with how to install it; tests never skip silently.

mod binaries;
mod builder;
mod connect;
mod control;
mod error;
mod launcher;
mod log;
mod options;
mod port;
mod process;
mod ready;
mod server;
mod shared;
mod spawner;
mod sql;
mod template;
mod workdir;

pub mod certs;
pub mod cli;
pub mod funnel;
pub mod libmariadb;
pub mod mini_client;
mod retry;
mod rng;
pub mod splice;

pub use builder::MariaDbBuilder;
pub use connect::opts as client_opts;
pub use error::TestkitError;
pub use port::listen_port;
pub use retry::{eventually, wait_until as wait_until_within};
pub use rng::SeededRng;
pub use server::MariaDb;
