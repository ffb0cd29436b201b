//! Scratch directories under `$TMPDIR/funnel-testkit-<uid>/`, and cleanup of ones left behind.
//!
//! Each server (and each template build) gets its own directory holding an `owner.lock` file that
//! its process keeps `flock`ed for the directory's whole life. The kernel drops the lock when the
//! process dies however it dies, so a later run can tell a live directory from an orphan (left by a
//! test binary that was SIGKILLed, timed out, or whose shared server's directory could not be
//! removed at exit) without trusting PIDs, which get reused.

use std::{
    env,
    fs::{self, File},
    io,
    os::{fd::AsRawFd, unix::fs::DirBuilderExt},
    path::{Path, PathBuf},
    sync::Once,
    time::{Duration, SystemTime},
};

use tempfile::TempDir;

use crate::TestkitError;

/// Name of the lock file inside every scratch directory.
const LOCK_FILE: &str = "owner.lock";

/// Prefixes of the scratch directories this module creates, and may sweep.
const SWEPT_PREFIXES: [&str; 2] = ["srv-", "build-"];

/// An orphan must be at least this old before it is swept. This covers the instant between
/// creating a directory and locking its `owner.lock`, when a live directory looks orphaned.
const SWEEP_GRACE: Duration = Duration::from_secs(60);

/// The per-user root of all testkit scratch space, created on first use.
pub(crate) fn root() -> Result<PathBuf, TestkitError> {
    // SAFETY: geteuid has no preconditions and cannot fail.
    let uid = unsafe { libc::geteuid() };
    let root = env::temp_dir().join(format!("funnel-testkit-{uid}"));
    fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&root)
        .map_err(|e| TestkitError::io("create", &root, e))?;
    Ok(root)
}

/// A scratch directory that is locked while this process owns it and removed on drop.
#[derive(Debug)]
pub(crate) struct LockedDir {
    // Field order matters: the directory is removed before the lock is released, so a sweeper in
    // another process never sees an unlocked directory that is still being deleted by us.
    dir: TempDir,
    _lock: File,
}

impl LockedDir {
    /// Creates and locks a fresh directory named `<prefix><random>` under [`root`].
    pub(crate) fn create(prefix: &'static str) -> Result<Self, TestkitError> {
        debug_assert!(SWEPT_PREFIXES.contains(&prefix));
        let root = root()?;
        sweep_once(&root);
        let dir = tempfile::Builder::new()
            .prefix(prefix)
            .tempdir_in(&root)
            .map_err(|e| TestkitError::io("create a directory in", &root, e))?;
        let lock_path = dir.path().join(LOCK_FILE);
        let lock = File::create(&lock_path)
            .and_then(|f| try_lock(&f).map(|()| f))
            .map_err(|e| TestkitError::io("lock", &lock_path, e))?;
        Ok(Self { dir, _lock: lock })
    }

    /// The directory's path.
    pub(crate) fn path(&self) -> &Path {
        self.dir.path()
    }
}

/// Takes an exclusive `flock` on `file` without blocking.
fn try_lock(file: &File) -> io::Result<()> {
    // SAFETY: flock only reads the descriptor number, which `file` keeps open for the call.
    let rc = unsafe { libc::flock(file.as_raw_fd(), libc::LOCK_EX | libc::LOCK_NB) };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Sweeps orphans once per process; later calls return at once.
fn sweep_once(root: &Path) {
    static SWEEP: Once = Once::new();
    SWEEP.call_once(|| sweep(root));
}

/// Removes scratch directories whose owner process is gone. Best effort: errors are ignored,
/// because a leftover directory costs disk space, not correctness.
fn sweep(root: &Path) {
    let Ok(entries) = fs::read_dir(root) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let name = name.to_string_lossy();
        if !SWEPT_PREFIXES.iter().any(|p| name.starts_with(p)) {
            continue;
        }
        let path = entry.path();
        if is_orphan(&path) {
            let _ = fs::remove_dir_all(&path);
        }
    }
}

/// Whether `dir` is old enough and nobody holds its lock.
fn is_orphan(dir: &Path) -> bool {
    let old_enough = dir
        .metadata()
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| SystemTime::now().duration_since(t).ok())
        .is_some_and(|age| age > SWEEP_GRACE);
    if !old_enough {
        return false;
    }
    match File::open(dir.join(LOCK_FILE)) {
        // Our lock is released when this `File` is dropped, right away.
        Ok(file) => try_lock(&file).is_ok(),
        // Its creator died before it could even create the lock file.
        Err(e) => e.kind() == io::ErrorKind::NotFound,
    }
}
