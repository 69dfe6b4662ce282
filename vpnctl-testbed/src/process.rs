//! Running commands and owning spawned processes.

use std::io;
use std::path::PathBuf;
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use crate::UAPI_DIR;

/// Runs `program args...` (no shell) and returns its output, whatever the exit code.
pub fn run(program: &str, args: &[&str]) -> io::Result<Output> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
}

/// Runs `program args...` and panics with its stderr unless it exits 0; returns stdout.
pub fn run_ok(program: &str, args: &[&str]) -> String {
    let out = run(program, args).unwrap_or_else(|e| panic!("spawn {program}: {e}"));
    assert!(
        out.status.success(),
        "`{program} {}` failed ({}): {}",
        args.join(" "),
        out.status,
        String::from_utf8_lossy(&out.stderr).trim()
    );
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// Sends `signal` (e.g. "TERM") to `pid` with the `kill` tool; errors are ignored
/// (the process may be gone already). Tests forbid `unsafe`, so no `libc::kill`.
pub(crate) fn signal(pid: u32, signal: &str) {
    let _ = run("kill", &[&format!("-{signal}"), &pid.to_string()]);
}

pub(crate) fn pid_alive(pid: u32) -> bool {
    // A zombie still has a /proc entry; treat it as gone.
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => !stat
            .rsplit_once(')')
            .is_some_and(|(_, rest)| rest.trim_start().starts_with('Z')),
        Err(_) => false,
    }
}

/// SIGTERM, wait up to `grace`, then SIGKILL.
pub(crate) fn terminate(pid: u32, grace: Duration) {
    if !pid_alive(pid) {
        return;
    }
    signal(pid, "TERM");
    let deadline = Instant::now() + grace;
    while Instant::now() < deadline {
        if !pid_alive(pid) {
            return;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    signal(pid, "KILL");
}

/// A spawned process that is terminated (SIGTERM, then SIGKILL) and reaped on drop.
#[derive(Debug)]
pub struct ChildGuard {
    child: Option<Child>,
}

impl ChildGuard {
    pub fn spawn(cmd: &mut Command) -> io::Result<Self> {
        Ok(Self {
            child: Some(cmd.spawn()?),
        })
    }

    pub fn new(child: Child) -> Self {
        Self { child: Some(child) }
    }

    pub fn id(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    pub fn child_mut(&mut self) -> &mut Child {
        self.child.as_mut().expect("child present until drop")
    }

    /// Sends a signal by name ("INT", "TERM", ...).
    pub fn signal(&self, name: &str) {
        signal(self.id(), name);
    }

    /// Waits for the process to exit by itself and returns its output (stdout/stderr
    /// must have been piped to be captured).
    pub fn wait_with_output(mut self) -> io::Result<Output> {
        let child = self.child.take().expect("child present until drop");
        child.wait_with_output()
    }
}

impl Drop for ChildGuard {
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            if matches!(child.try_wait(), Ok(None)) {
                terminate(child.id(), Duration::from_secs(2));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Removes `/var/run/wireguard/<iface>.sock` and `.name` on creation (stale files of an
/// earlier run) and on drop. UAPI sockets are machine-wide, so a stale one would make
/// the next `wireguard-go` of the same name fail or a client talk to nothing.
#[derive(Debug)]
pub struct UapiGuard {
    iface: String,
}

impl UapiGuard {
    pub fn new(iface: &str) -> Self {
        let guard = Self {
            iface: iface.to_owned(),
        };
        guard.remove_files();
        guard
    }

    pub fn socket_path(&self) -> PathBuf {
        PathBuf::from(UAPI_DIR).join(format!("{}.sock", self.iface))
    }

    fn remove_files(&self) {
        let _ = std::fs::remove_file(self.socket_path());
        let _ = std::fs::remove_file(PathBuf::from(UAPI_DIR).join(format!("{}.name", self.iface)));
    }
}

impl Drop for UapiGuard {
    fn drop(&mut self) {
        self.remove_files();
    }
}
