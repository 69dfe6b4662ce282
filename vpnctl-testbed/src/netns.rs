//! Network namespaces and veth pairs.

use std::ffi::OsStr;
use std::io;
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::Duration;

use crate::process::{run, run_ok, terminate};

/// A network namespace (`ip netns add`). On drop every process still inside it is
/// terminated (by pid, from `ip netns pids`), then the namespace is deleted, which
/// also destroys the veth and tun devices in it.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates the namespace and brings its loopback up. Panics on failure.
    pub fn new(name: &str) -> Self {
        // A leftover with the same name (same pid reused) is removed first.
        if run("ip", &["netns", "pids", name]).is_ok_and(|o| o.status.success()) {
            kill_all_in(name);
            let _ = run("ip", &["netns", "del", name]);
        }
        run_ok("ip", &["netns", "add", name]);
        let ns = Self {
            name: name.to_owned(),
        };
        ns.ip(&["link", "set", "lo", "up"]);
        ns
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    /// A `Command` for `program` that runs inside this namespace
    /// (`ip netns exec NS program`); add arguments with `.arg(s)`.
    pub fn command(&self, program: impl AsRef<OsStr>) -> Command {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", &self.name]).arg(program);
        cmd
    }

    /// Runs `program args...` inside the namespace; returns the output whatever the
    /// exit code.
    pub fn exec(&self, program: &str, args: &[&str]) -> io::Result<Output> {
        self.command(program)
            .args(args)
            .stdin(Stdio::null())
            .output()
    }

    /// Runs `program args...` inside the namespace and panics unless it succeeds;
    /// returns stdout.
    pub fn exec_ok(&self, program: &str, args: &[&str]) -> String {
        let out = self
            .exec(program, args)
            .unwrap_or_else(|e| panic!("spawn {program} in {}: {e}", self.name));
        assert!(
            out.status.success(),
            "`{program} {}` in netns {} failed ({}): {}",
            args.join(" "),
            self.name,
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// `ip -n NS args...`, panicking on failure; returns stdout.
    pub fn ip(&self, args: &[&str]) -> String {
        let mut full = vec!["-n", self.name.as_str()];
        full.extend_from_slice(args);
        run_ok("ip", &full)
    }

    /// Pids of the processes living in the namespace.
    pub fn pids(&self) -> Vec<u32> {
        pids_in(&self.name)
    }

    /// Runs `f` on a thread that has entered this namespace, and returns what it
    /// returns. Sockets `f` creates stay in the namespace after the thread ends, so
    /// the test process can serve (or ask) from inside a namespace without a child
    /// process: bind here, serve on the test's runtime.
    pub fn enter<T: Send>(&self, f: impl FnOnce() -> T + Send) -> T {
        let path = Path::new("/run/netns").join(&self.name);
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    let ns = std::fs::File::open(&path)
                        .unwrap_or_else(|e| panic!("open {}: {e}", path.display()));
                    nix::sched::setns(&ns, nix::sched::CloneFlags::CLONE_NEWNET)
                        .unwrap_or_else(|e| panic!("setns {}: {e}", self.name));
                    f()
                })
                .join()
                .unwrap_or_else(|panic| std::panic::resume_unwind(panic))
        })
    }

    /// Gives the namespace its own `/etc/resolv.conf`: `ip netns exec` bind-mounts
    /// `/etc/netns/<name>/resolv.conf` over the host's, so programs in the namespace
    /// (and a `wg-quick` `DNS =` line, see [`crate::WgQuick`]) use this one. Removed
    /// with the namespace.
    pub fn set_resolv_conf(&self, text: &str) {
        let dir = self.etc_dir();
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        std::fs::write(dir.join("resolv.conf"), text)
            .unwrap_or_else(|e| panic!("write {}/resolv.conf: {e}", dir.display()));
    }

    /// The namespace's own resolv.conf, if [`Netns::set_resolv_conf`] made one.
    pub fn resolv_conf(&self) -> Option<String> {
        std::fs::read_to_string(self.etc_dir().join("resolv.conf")).ok()
    }

    /// `/etc/netns/<name>`: files `ip netns exec` mounts over `/etc` for this namespace.
    pub fn etc_dir(&self) -> PathBuf {
        Path::new("/etc/netns").join(&self.name)
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        kill_all_in(&self.name);
        let _ = run("ip", &["netns", "del", &self.name]);
        let _ = std::fs::remove_dir_all(self.etc_dir());
    }
}

fn pids_in(ns: &str) -> Vec<u32> {
    run("ip", &["netns", "pids", ns])
        .map(|o| {
            String::from_utf8_lossy(&o.stdout)
                .split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

pub(crate) fn kill_all_in(ns: &str) {
    for pid in pids_in(ns) {
        terminate(pid, Duration::from_secs(2));
    }
}

/// Creates a veth pair with one end in each namespace, assigns the given addresses
/// (CIDR, e.g. `192.0.2.1/24`) and brings both ends up. The ends are named
/// `<tag>a`/`<tag>b` (keep `tag` ≤ 14 characters) and vanish with their namespaces.
pub fn veth(tag: &str, a: &Netns, a_addr: &str, b: &Netns, b_addr: &str) -> (String, String) {
    let (an, bn) = (format!("{tag}a"), format!("{tag}b"));
    assert!(an.len() <= 15, "veth name {an} longer than 15 characters");
    run_ok(
        "ip",
        &[
            "link",
            "add",
            &an,
            "netns",
            a.name(),
            "type",
            "veth",
            "peer",
            "name",
            &bn,
            "netns",
            b.name(),
        ],
    );
    a.ip(&["addr", "add", a_addr, "dev", &an]);
    b.ip(&["addr", "add", b_addr, "dev", &bn]);
    a.ip(&["link", "set", &an, "up"]);
    b.ip(&["link", "set", &bn, "up"]);
    (an, bn)
}

/// A veth pair between the namespace of the test process (the root namespace, where
/// e.g. an in-process control plane listens) and a namespace `ns`:
/// `root_ip`/30 ↔ `ns_ip`/30. Deleting the namespace destroys both ends; `Drop` also
/// deletes the root end (and with it every route over it).
#[derive(Debug)]
pub struct RootLink {
    root_end: String,
}

impl RootLink {
    /// Interface names come from `names` with `tag` (`{tag}r` on the root side,
    /// `{tag}n` in `ns`).
    pub fn new(names: &crate::Names, tag: &str, ns: &Netns, root_ip: &str, ns_ip: &str) -> Self {
        let root_end = names.iface(&format!("{tag}r"));
        let ns_end = names.iface(&format!("{tag}n"));
        run_ok(
            "ip",
            &[
                "link",
                "add",
                &root_end,
                "type",
                "veth",
                "peer",
                "name",
                &ns_end,
                "netns",
                ns.name(),
            ],
        );
        let link = Self { root_end };
        run_ok(
            "ip",
            &[
                "addr",
                "add",
                &format!("{root_ip}/30"),
                "dev",
                &link.root_end,
            ],
        );
        run_ok("ip", &["link", "set", &link.root_end, "up"]);
        ns.ip(&["addr", "add", &format!("{ns_ip}/30"), "dev", &ns_end]);
        ns.ip(&["link", "set", &ns_end, "up"]);
        link
    }

    /// The interface name on the root side.
    pub fn root_end(&self) -> &str {
        &self.root_end
    }

    /// Routes `dest` (a host address of the namespace, e.g. a node's endpoint) from
    /// the root namespace over this link via `via` (the namespace's end).
    pub fn route(&self, dest: &str, via: &str) {
        run_ok(
            "ip",
            &[
                "route",
                "add",
                &format!("{dest}/32"),
                "via",
                via,
                "dev",
                &self.root_end,
            ],
        );
    }
}

impl Drop for RootLink {
    fn drop(&mut self) {
        let _ = Command::new("ip")
            .args(["link", "del", &self.root_end])
            .stderr(Stdio::null())
            .status();
    }
}
