//! [`MariaDb::shared`]: one server per test binary.
//!
//! Statics are never dropped, so the shared server is stopped two other ways. When the test binary
//! exits normally (libtest returns from `main` or calls `process::exit`, both of which run C
//! `atexit` handlers), a handler SIGKILLs it and deletes its directory. When the binary is killed
//! instead, PR_SET_PDEATHSIG (see the `spawner` module) kills the server and the next run's sweep
//! (see the `workdir` module) deletes the directory.

use std::sync::{Once, OnceLock};

use crate::MariaDb;

static SHARED: OnceLock<MariaDb> = OnceLock::new();

impl MariaDb {
    /// The server shared by every test in this test binary, started on first use.
    ///
    /// Give each test its own database with [`fresh_database`](Self::fresh_database), and do not
    /// stop, pause or kill it: other tests are using it at the same time.
    #[track_caller]
    pub fn shared() -> &'static MariaDb {
        SHARED.get_or_init(|| {
            let server = MariaDb::start();
            register_exit_handler();
            server
        })
    }
}

/// Registers [`stop_shared_at_exit`] once.
fn register_exit_handler() {
    static REGISTER: Once = Once::new();
    REGISTER.call_once(|| {
        // SAFETY: the handler is an `extern "C" fn()` with no arguments, as atexit requires, and
        // it cannot unwind into C (it catches panics).
        let rc = unsafe { libc::atexit(stop_shared_at_exit) };
        // Without the handler only the directory leaks until the next sweep; not worth a panic.
        debug_assert_eq!(rc, 0, "atexit failed");
    });
}

/// Runs while the process exits: kills the shared server and removes its directory.
extern "C" fn stop_shared_at_exit() {
    let _ = std::panic::catch_unwind(|| {
        if let Some(server) = SHARED.get() {
            server.kill_at_exit();
        }
    });
}
