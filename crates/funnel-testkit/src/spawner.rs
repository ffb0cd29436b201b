//! Starts server processes so that they die with the test process.
//!
//! Statics are never dropped and a test binary can be killed at any moment, so `Drop` alone cannot
//! guarantee that no mariadbd outlives its test run. Each child therefore asks the kernel for
//! SIGKILL when its parent goes away (`prctl(PR_SET_PDEATHSIG)`). The catch: "parent" means the
//! *thread* that forked the child, not the process (see prctl(2)), and libtest runs every test on
//! its own short-lived thread; a server spawned there would be killed as soon as the test that
//! started the shared server returned. So all spawns go through one dedicated thread that lives as
//! long as the process (its request channel is held by a static and never closes).

use std::{
    io,
    os::unix::process::CommandExt,
    process::{Child, Command},
    sync::{mpsc, OnceLock},
    thread,
};

/// One request to the spawner thread.
struct SpawnRequest {
    command: Command,
    reply: mpsc::Sender<io::Result<Child>>,
}

/// Spawns `command` from the long-lived spawner thread, with SIGKILL as its parent-death signal.
pub(crate) fn spawn(mut command: Command) -> io::Result<Child> {
    let parent = std::process::id();
    // SAFETY: the hook runs in the forked child before exec, where only async-signal-safe calls
    // are allowed; `die_with_parent` makes only prctl and getppid calls and does not allocate.
    unsafe {
        command.pre_exec(move || die_with_parent(parent));
    }
    let (reply, response) = mpsc::channel();
    spawner()
        .send(SpawnRequest { command, reply })
        .map_err(|_| io::Error::other("the testkit spawner thread is gone"))?;
    response
        .recv()
        .map_err(|_| io::Error::other("the testkit spawner thread dropped a request"))?
}

/// Runs in the child: asks for SIGKILL when the spawner thread (hence the process) dies.
fn die_with_parent(parent: u32) -> io::Result<()> {
    // SAFETY: PR_SET_PDEATHSIG takes a signal number and touches no memory of ours.
    let rc = unsafe { libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong, 0, 0, 0) };
    if rc != 0 {
        return Err(io::Error::last_os_error());
    }
    // If the test process died between fork and prctl, the signal was never sent and we have been
    // reparented: give up instead of running forever. (`from_raw_os_error` does not allocate.)
    // SAFETY: getppid has no preconditions and cannot fail.
    if unsafe { libc::getppid() } as u32 != parent {
        return Err(io::Error::from_raw_os_error(libc::ESRCH));
    }
    Ok(())
}

/// The spawner thread's request channel, starting the thread on first use.
fn spawner() -> &'static mpsc::Sender<SpawnRequest> {
    static SPAWNER: OnceLock<mpsc::Sender<SpawnRequest>> = OnceLock::new();
    SPAWNER.get_or_init(|| {
        let (requests, incoming) = mpsc::channel::<SpawnRequest>();
        thread::Builder::new()
            .name("funnel-testkit-spawner".into())
            .spawn(move || serve(incoming))
            .expect("cannot start the funnel-testkit spawner thread");
        requests
    })
}

/// The spawner thread's loop; returns only if every sender is gone, which a static prevents.
fn serve(incoming: mpsc::Receiver<SpawnRequest>) {
    for SpawnRequest { mut command, reply } in incoming {
        if let Err(mpsc::SendError(Ok(mut orphan))) = reply.send(command.spawn()) {
            // The requester vanished (it panicked); nobody would ever stop this child.
            let _ = orphan.kill();
            let _ = orphan.wait();
        }
    }
}
