//! Finds the MariaDB binaries the testkit runs.

use std::{
    env,
    os::unix::fs::PermissionsExt,
    path::{Path, PathBuf},
};

use crate::TestkitError;

/// Where the MariaDB programs live on this machine.
#[derive(Debug, Clone)]
pub(crate) struct Binaries {
    /// The server, `mariadbd` (or `mysqld` on older packages).
    pub(crate) mariadbd: PathBuf,
    /// The data directory initialiser, `mariadb-install-db` (or `mysql_install_db`).
    pub(crate) install_db: PathBuf,
}

impl Binaries {
    /// Looks both programs up, failing with install instructions when one is missing.
    pub(crate) fn locate() -> Result<Self, TestkitError> {
        // Debian puts mariadbd in /usr/sbin, which is not on a non-root user's $PATH.
        let mariadbd = find(
            "mariadbd",
            &["mariadbd", "mysqld"],
            &["/usr/sbin", "/usr/local/sbin", "/usr/local/mysql/bin"],
        )?;
        let install_db = find(
            "mariadb-install-db",
            &["mariadb-install-db", "mysql_install_db"],
            &["/usr/bin", "/usr/local/bin", "/usr/local/mysql/scripts"],
        )?;
        Ok(Self { mariadbd, install_db })
    }
}

/// Returns the first executable called one of `names` on `$PATH` or in `extra_dirs`.
fn find(label: &'static str, names: &[&str], extra_dirs: &[&str]) -> Result<PathBuf, TestkitError> {
    let path_dirs = env::var_os("PATH")
        .map(|p| env::split_paths(&p).collect::<Vec<_>>())
        .unwrap_or_default();
    let extra: Vec<PathBuf> = extra_dirs.iter().map(PathBuf::from).collect();
    for name in names {
        for dir in path_dirs.iter().chain(&extra) {
            let candidate = dir.join(name);
            if is_executable(&candidate) {
                return Ok(candidate);
            }
        }
    }
    Err(TestkitError::MissingBinary {
        name: label,
        searched: extra,
    })
}

/// Whether `path` is a regular file with an execute bit set.
fn is_executable(path: &Path) -> bool {
    path.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

#[cfg(test)]
mod tests {
    use super::find;

    #[test]
    fn testkit_missing_binary_says_how_to_install() {
        let err = find("mariadbd", &["no-such-mariadbd-here"], &["/nonexistent"]).unwrap_err();
        let message = err.to_string();
        assert!(
            message.contains("apt-get install -y mariadb-server mariadb-client"),
            "{message}"
        );
    }

    #[test]
    fn testkit_finds_installed_binaries() {
        let bins = super::Binaries::locate().unwrap();
        assert!(bins.mariadbd.ends_with("mariadbd") || bins.mariadbd.ends_with("mysqld"));
    }
}
