//! Spawning mariadbd and waiting for it to be ready, for first starts and restarts alike.

use std::{
    ffi::OsString,
    fs::{File, OpenOptions},
    path::PathBuf,
    process::{Command, Stdio},
    time::Duration,
};

use crate::{log, options::ServerPaths, process::ServerProcess, ready, spawner, TestkitError};

/// Everything needed to (re)start the same server: same binary, datadir, port and options.
#[derive(Debug)]
pub(crate) struct Launcher {
    /// The mariadbd binary.
    pub(crate) mariadbd: PathBuf,
    /// Its full argument list, port included.
    pub(crate) args: Vec<OsString>,
    /// The server's files.
    pub(crate) paths: ServerPaths,
    /// The port in `args`, for readiness checks and messages.
    pub(crate) port: u16,
    /// How long each start may take.
    pub(crate) startup_timeout: Duration,
}

impl Launcher {
    /// Spawns mariadbd and waits until it is ready; a process that never got ready is killed.
    pub(crate) fn launch(&self) -> Result<ServerProcess, TestkitError> {
        let log_from = log::len(&self.paths.error_log);
        let (stdout, stderr) = self.output_files()?;
        let mut command = Command::new(&self.mariadbd);
        command
            .args(&self.args)
            .stdin(Stdio::null())
            .stdout(stdout)
            .stderr(stderr);
        let child = spawner::spawn(command).map_err(|e| TestkitError::io("start", &self.mariadbd, e))?;
        let mut process = ServerProcess::new(child);
        let readiness = ready::wait_until_ready(
            &mut process,
            self.port,
            &self.paths.datadir,
            &self.paths.error_log,
            log_from,
            self.startup_timeout,
        );
        match readiness {
            Ok(()) => Ok(process),
            Err(e) => {
                let _ = process.kill();
                Err(e)
            }
        }
    }

    /// mariadbd's stdout and stderr, both appended to the error log: a few messages (bad options,
    /// the open-files warning) are printed before `--log-error` takes effect and would be lost.
    fn output_files(&self) -> Result<(File, File), TestkitError> {
        let path = &self.paths.error_log;
        let open = || {
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .map_err(|e| TestkitError::io("open", path, e))
        };
        Ok((open()?, open()?))
    }
}
