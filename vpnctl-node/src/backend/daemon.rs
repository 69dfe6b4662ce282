//! The userspace daemon behind a backend — `wireguard-go` or `amneziawg-go`, both
//! started as `PROGRAM -f <iface>` and configured through their UAPI socket
//! `<dir>/<iface>.sock`. The backend that starts a daemon owns it (stopped on drop);
//! a daemon whose socket already answers is adopted instead, so a restarted node
//! daemon keeps live sessions.

use std::ffi::OsString;
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use super::BackendError;
use crate::iface::IfaceName;

#[derive(Debug)]
pub(super) struct Daemon {
    pub(super) iface: IfaceName,
    /// Where the daemon puts its socket (`/var/run/wireguard`, `/var/run/amneziawg`).
    uapi_dir: &'static str,
    /// What the logs call it.
    what: &'static str,
    launcher: Vec<OsString>,
    child: Option<Child>,
    socket_timeout: Duration,
}

impl Daemon {
    pub(super) fn new(
        iface: IfaceName,
        program: &str,
        uapi_dir: &'static str,
        what: &'static str,
    ) -> Self {
        Self {
            iface,
            uapi_dir,
            what,
            launcher: vec![OsString::from(program)],
            child: None,
            socket_timeout: Duration::from_secs(5),
        }
    }

    /// The program (and leading arguments) that starts the daemon; `-f <iface>` is
    /// appended.
    pub(super) fn set_launcher(&mut self, launcher: Vec<OsString>) {
        assert!(!launcher.is_empty(), "launcher needs a program");
        self.launcher = launcher;
    }

    pub(super) fn set_socket_timeout(&mut self, timeout: Duration) {
        self.socket_timeout = timeout;
    }

    pub(super) fn socket_path(&self) -> PathBuf {
        Path::new(self.uapi_dir).join(format!("{}.sock", self.iface))
    }

    /// Pid of the daemon this backend started, if it still owns one.
    pub(super) fn child_pid(&self) -> Option<u32> {
        self.child.as_ref().map(Child::id)
    }

    pub(super) fn socket_answers(&self) -> bool {
        UnixStream::connect(self.socket_path()).is_ok()
    }

    fn program(&self) -> String {
        self.launcher
            .iter()
            .map(|s| s.to_string_lossy())
            .collect::<Vec<_>>()
            .join(" ")
    }

    /// The socket and name files a killed daemon leaves behind.
    pub(super) fn remove_files(&self) {
        let dir = Path::new(self.uapi_dir);
        let _ = std::fs::remove_file(dir.join(format!("{}.sock", self.iface)));
        let _ = std::fs::remove_file(dir.join(format!("{}.name", self.iface)));
    }

    /// Starts the daemon unless one serves the interface already (a child of ours
    /// that exited is reaped and replaced).
    pub(super) fn ensure_running(&mut self) -> Result<(), BackendError> {
        let exited = self
            .child
            .as_mut()
            .is_some_and(|c| !matches!(c.try_wait(), Ok(None)));
        if exited {
            self.stop_child();
        }
        if self.socket_answers() {
            return Ok(());
        }
        self.start()
    }

    fn start(&mut self) -> Result<(), BackendError> {
        // A socket file nobody listens on is left over from a killed daemon.
        self.remove_files();
        let child = Command::new(&self.launcher[0])
            .args(&self.launcher[1..])
            .arg("-f")
            .arg(self.iface.as_str())
            .stdin(Stdio::null())
            // Set by the daemon for its own daemonized child; with `-f` it only
            // silences the "use the kernel module" banner on stderr.
            .env("WG_PROCESS_FOREGROUND", "1")
            // The daemons log to stdout; keep it off a TUI or a daemon's stdout.
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|source| BackendError::Spawn {
                program: self.program(),
                iface: self.iface.clone(),
                source,
            })?;
        tracing::info!(iface = %self.iface, pid = child.id(), "started {}", self.what);
        self.child = Some(child);
        let deadline = Instant::now() + self.socket_timeout;
        loop {
            if self.socket_answers() {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Ok(Some(status)) = child.try_wait()
            {
                self.child = None;
                return Err(BackendError::Exited {
                    program: self.program(),
                    iface: self.iface.clone(),
                    status,
                });
            }
            if Instant::now() >= deadline {
                self.stop_child();
                return Err(BackendError::SocketTimeout(self.iface.clone()));
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    fn stop_child(&mut self) {
        if let Some(mut child) = self.child.take() {
            stop_process(&mut child);
        }
    }

    /// A missing socket is an error, not a reason to start one: only `ensure`
    /// starts the daemon (`wireguard-control` would spawn one itself otherwise).
    pub(super) fn require_running(&self) -> Result<(), BackendError> {
        if self.socket_path().exists() {
            Ok(())
        } else {
            Err(BackendError::NotRunning(self.iface.clone()))
        }
    }

    /// Stops the daemon: ours by signal, an adopted one in our namespace by
    /// deleting its tun device (which makes it exit).
    pub(super) fn teardown(&mut self) {
        if self.child.is_some() {
            self.stop_child();
        } else if self.socket_answers() {
            let _ = Command::new("ip")
                .args(["link", "del", "dev", self.iface.as_str()])
                .stdin(Stdio::null())
                .stderr(Stdio::null())
                .status();
        }
        if !self.socket_answers() {
            self.remove_files();
        }
    }

    /// Gives up ownership: the daemon keeps running after the backend is gone.
    pub(super) fn leave_running(&mut self) {
        if let Some(child) = self.child.take() {
            tracing::info!(iface = %self.iface, pid = child.id(), "leaving {} running", self.what);
        }
    }
}

impl Drop for Daemon {
    fn drop(&mut self) {
        if self.child.is_some() {
            self.stop_child();
            self.remove_files();
        }
    }
}

/// SIGTERM (the daemon then removes its interface and socket), up to 2 s, then
/// SIGKILL. `kill(1)` is used because the workspace forbids `unsafe` (no `libc::kill`).
pub(super) fn stop_process(child: &mut Child) {
    if matches!(child.try_wait(), Ok(None)) {
        let _ = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline {
            if !matches!(child.try_wait(), Ok(None)) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = child.kill();
    }
    let _ = child.wait();
}
