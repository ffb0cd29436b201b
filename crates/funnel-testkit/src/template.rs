//! The template data directory: `mariadb-install-db` runs once, every server starts from a copy.
//!
//! Installing the system tables takes about three seconds; copying the result takes tens of
//! milliseconds. The template is cached across processes under [`workdir::root`], keyed by the
//! server version and the install options, because cargo-nextest runs every test in its own
//! process and would otherwise pay the install cost per test. It is built in a private directory
//! and published with an atomic `rename`, so a template that exists is complete, and concurrent
//! builders simply let the first rename win. Delete `$TMPDIR/funnel-testkit-<uid>/` to reset it.

use std::{
    ffi::OsString,
    fs,
    os::unix::ffi::OsStrExt,
    path::{Path, PathBuf},
    process::Command,
    sync::{Mutex, PoisonError},
};

use crate::{binaries::Binaries, options, workdir, workdir::LockedDir, TestkitError};

/// Bump when the template's contents change in a way the key does not capture.
const TEMPLATE_FORMAT: u32 = 1;

/// Returns the template directory for `bins`, building it if this machine has none yet.
pub(crate) fn template(bins: &Binaries) -> Result<PathBuf, TestkitError> {
    // The mutex makes concurrent first callers in one process wait for a single build.
    static CACHED: Mutex<Option<PathBuf>> = Mutex::new(None);
    let mut cached = CACHED.lock().unwrap_or_else(PoisonError::into_inner);
    if let Some(path) = cached.as_ref() {
        return Ok(path.clone());
    }
    let args = install_args();
    let key = cache_key(&server_version(bins)?, &args);
    let published = workdir::root()?.join(format!("template-{key:016x}"));
    if !published.is_dir() {
        build(bins, &args, &published)?;
    }
    *cached = Some(published.clone());
    Ok(published)
}

/// Copies the template into `dest`, which must not exist yet.
pub(crate) fn copy_to(template: &Path, dest: &Path) -> Result<(), TestkitError> {
    copy_dir(template, dest).map_err(|e| TestkitError::io("copy the template datadir to", dest, e))
}

/// Options for `mariadb-install-db`, minus the datadir.
fn install_args() -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        // Must come first: ignore /etc/mysql/my.cnf and ~/.my.cnf, which belong to someone else.
        "--no-defaults".into(),
        // Give root@localhost, root@127.0.0.1 and root@::1 an empty password instead of unix_socket
        // authentication, which would refuse root over TCP.
        "--auth-root-authentication-method=normal".into(),
        "--skip-test-db".into(),
    ];
    // Extra options are passed on to the bootstrap mariadbd. The redo log is created here, so its
    // size must match what servers use, or every start would resize it.
    args.extend(options::install_time_server_args());
    args
}

/// `mariadbd --version`, part of the cache key so an upgraded package gets a fresh template.
fn server_version(bins: &Binaries) -> Result<String, TestkitError> {
    let out = Command::new(&bins.mariadbd)
        .arg("--version")
        .output()
        .map_err(|e| TestkitError::io("run", &bins.mariadbd, e))?;
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

/// A hash of everything that shapes the template. FNV-1a rather than std's `DefaultHasher`,
/// whose output may change between Rust releases and would orphan the cached template.
fn cache_key(version: &str, args: &[OsString]) -> u64 {
    let mut bytes = TEMPLATE_FORMAT.to_le_bytes().to_vec();
    bytes.extend_from_slice(version.as_bytes());
    for arg in args {
        bytes.push(0);
        bytes.extend_from_slice(arg.as_bytes());
    }
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, &b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

/// Runs `mariadb-install-db` into a private directory, then renames it to `published`.
fn build(bins: &Binaries, args: &[OsString], published: &Path) -> Result<(), TestkitError> {
    let scratch = LockedDir::create("build-")?;
    let datadir = scratch.path().join("data");
    // Its own tmpdir, as every server's (see `ServerPaths::tmpdir`): a
    // server starting meanwhile would delete the bootstrap's temporary
    // tables in /tmp, and the install fail ("Unknown table
    // 'mysql.tmp_user_sys'"). Not among `args`: they key the cache.
    let tmpdir = scratch.path().join("tmp");
    fs::create_dir_all(&tmpdir).map_err(|e| TestkitError::io("create", &tmpdir, e))?;
    let mut command = Command::new(&bins.install_db);
    command
        .args(args)
        .arg(format!("--datadir={}", datadir.display()))
        .arg(format!("--tmpdir={}", tmpdir.display()));
    let output = command
        .output()
        .map_err(|e| TestkitError::io("run", &bins.install_db, e))?;
    if !output.status.success() {
        return Err(TestkitError::InstallDb {
            command: format!("{command:?}"),
            status: output.status,
            output: format!(
                "{}{}",
                String::from_utf8_lossy(&output.stdout),
                String::from_utf8_lossy(&output.stderr)
            ),
        });
    }
    match fs::rename(&datadir, published) {
        Ok(()) => Ok(()),
        // Another process published the same template first; theirs is as good as ours, and
        // `scratch` removes ours on drop.
        Err(_) if published.is_dir() => Ok(()),
        Err(e) => Err(TestkitError::io("publish the template as", published, e)),
    }
}

/// Recursively copies a data directory (regular files and directories only, which is all
/// `mariadb-install-db` creates).
fn copy_dir(src: &Path, dest: &Path) -> std::io::Result<()> {
    fs::create_dir(dest)?;
    for entry in fs::read_dir(src)? {
        let entry = entry?;
        let target = dest.join(entry.file_name());
        if entry.file_type()?.is_dir() {
            copy_dir(&entry.path(), &target)?;
        } else {
            fs::copy(entry.path(), &target)?;
        }
    }
    Ok(())
}
