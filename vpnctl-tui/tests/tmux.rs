//! Smoke test of the real binary in a real terminal (tmux): `vpnctl demo` starts, keys
//! switch tabs, filter, create an invite, `q` quits, and the terminal is restored.
//! Needs tmux (scripts/install-test-deps.sh installs it).

#![cfg(feature = "demo")]

use std::process::Command;
use std::time::{Duration, Instant};

/// A tmux server of our own (its own socket), killed on drop even when the test fails.
struct Tmux {
    socket: String,
}

impl Tmux {
    fn start(width: u16, height: u16) -> Self {
        let tmux = Self {
            socket: format!("vpnctl-smoke-{}-{width}x{height}", std::process::id()),
        };
        let status = Command::new("tmux")
            .args([
                "-L",
                &tmux.socket,
                "-f",
                "/dev/null",
                "new-session",
                "-d",
                "-s",
                "smoke",
            ])
            .args(["-x", &width.to_string(), "-y", &height.to_string()])
            .args(["env", "PS1=smoke$ ", "TERM=xterm-256color", "sh"])
            .status()
            .expect("tmux runs (install it with scripts/install-test-deps.sh)");
        assert!(status.success(), "tmux new-session failed");
        tmux
    }

    fn tmux(&self, args: &[&str]) -> String {
        let out = Command::new("tmux")
            .args(["-L", &self.socket])
            .args(args)
            .output()
            .expect("tmux runs");
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    fn send(&self, keys: &[&str]) {
        let mut args = vec!["send-keys", "-t", "smoke"];
        args.extend_from_slice(keys);
        self.tmux(&args);
    }

    fn screen(&self) -> String {
        self.tmux(&["capture-pane", "-p", "-t", "smoke"])
    }

    fn wait_for(&self, what: &str, needle: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let screen = self.screen();
            if needle(&screen) {
                return screen;
            }
            assert!(
                Instant::now() < deadline,
                "timed out waiting for {what}; screen:\n{screen}"
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

/// The line the shell prints after vpnctl exits (the typed command contains
/// `VPNCTL_EXIT=$?` too, so match the start of a line).
fn exited(screen: &str) -> bool {
    screen.lines().any(|l| l.starts_with("VPNCTL_EXIT="))
}

impl Drop for Tmux {
    fn drop(&mut self) {
        let _ = Command::new("tmux")
            .args(["-L", &self.socket, "kill-server"])
            .status();
    }
}

#[test]
fn demo_runs_in_a_real_terminal_and_restores_it() {
    let tmux = Tmux::start(100, 30);
    tmux.wait_for("the shell prompt", |s| s.contains("smoke$"));
    let bin = env!("CARGO_BIN_EXE_vpnctl");
    tmux.send(&[&format!("{bin} demo; echo VPNCTL_EXIT=$?"), "Enter"]);

    let screen = tmux.wait_for("three live nodes", |s| {
        s.contains("● live") && s.contains("fra-1") && s.contains("ams-1") && s.contains("nyc-1")
    });
    assert_eq!(
        tmux.tmux(&["display", "-p", "-t", "smoke", "#{alternate_on}"])
            .trim(),
        "1"
    );
    assert!(screen.contains("Nodes"), "{screen}");

    // Peers tab, then a filter.
    tmux.send(&["2"]);
    tmux.wait_for("the peers table", |s| {
        s.contains("handshake") && s.contains("address")
    });
    tmux.send(&["/", "alice", "Enter"]);
    let screen = tmux.wait_for("the filter", |s| s.contains("filter:alice"));
    assert!(screen.contains("alice"), "{screen}");
    assert!(!screen.contains(" bob "), "{screen}");
    // Each Escape is seen before the next key: an Escape followed at once by a key
    // reads as Alt+key.
    tmux.send(&["Escape"]);
    tmux.wait_for("the filter cleared", |s| !s.contains("filter:alice"));

    // Help overlay.
    tmux.send(&["?"]);
    tmux.wait_for("the help", |s| s.contains("Keys (any key closes)"));
    tmux.send(&["Escape"]);
    tmux.wait_for("the help closed", |s| !s.contains("Keys (any key closes)"));

    // An invite: confirm, then the deep link and its QR.
    tmux.send(&["i"]);
    tmux.wait_for("the confirmation", |s| s.contains("[y] yes"));
    tmux.send(&["y"]);
    let screen = tmux.wait_for("the invite link", |s| {
        s.contains("https://t.me/vpnctl_demo_bot?start=")
    });
    assert!(screen.contains("██"), "QR drawn:\n{screen}");
    tmux.send(&["Escape"]);
    tmux.wait_for("the invite closed", |s| {
        !s.contains("https://t.me/vpnctl_demo_bot?start=")
    });

    // The invite is listed.
    tmux.send(&["4"]);
    tmux.wait_for("the new invite", |s| s.contains("from the dashboard"));

    // Evacuating a node asks first; `n` leaves everything as it was.
    tmux.send(&["1"]);
    tmux.wait_for("the nodes table", |s| s.contains("status"));
    tmux.send(&["E"]);
    tmux.wait_for("the evacuate question", |s| {
        s.contains("Move all") && s.contains("healthy nodes")
    });
    tmux.send(&["n"]);
    tmux.wait_for("the question closed", |s| !s.contains("Move all"));
    // Yes, then it asks where the configs of users without Telegram go; Esc cancels.
    tmux.send(&["E"]);
    tmux.wait_for("the evacuate question", |s| s.contains("Move all"));
    tmux.send(&["y"]);
    tmux.wait_for("the configs directory", |s| {
        s.contains("without Telegram") && s.contains("-configs")
    });
    tmux.send(&["Escape"]);
    tmux.wait_for("the dialog closed", |s| !s.contains("Move all"));

    // A new device for a user: core's offer to pick from; Esc cancels.
    tmux.send(&["3"]);
    tmux.wait_for("the users table", |s| s.contains("devices"));
    // (Core's offer, or why there is none: the demo's nodes' health is not under
    // test here.)
    tmux.send(&["n"]);
    let picker =
        |s: &str| s.contains("A new device for") || s.contains("No node takes new devices");
    tmux.wait_for("the node picker", picker);
    tmux.send(&["Escape"]);
    tmux.wait_for("the picker closed", |s| !picker(s));

    // Quit: the shell is back, the alternate screen gone.
    tmux.send(&["q"]);
    let screen = tmux.wait_for("the exit", exited);
    assert!(screen.contains("VPNCTL_EXIT=0"), "{screen}");
    assert_eq!(
        tmux.tmux(&["display", "-p", "-t", "smoke", "#{alternate_on}"])
            .trim(),
        "0"
    );
    assert!(
        !screen.contains("● live"),
        "dashboard left on screen:\n{screen}"
    );
}

#[test]
fn ctrl_c_quits_and_restores_the_terminal() {
    let tmux = Tmux::start(80, 24);
    tmux.wait_for("the shell prompt", |s| s.contains("smoke$"));
    let bin = env!("CARGO_BIN_EXE_vpnctl");
    tmux.send(&[&format!("{bin} demo; echo VPNCTL_EXIT=$?"), "Enter"]);
    tmux.wait_for("the dashboard", |s| {
        s.contains("● live") && s.contains("fra-1")
    });
    tmux.send(&["C-c"]);
    let screen = tmux.wait_for("the exit", exited);
    assert!(screen.contains("VPNCTL_EXIT=0"), "{screen}");
    assert_eq!(
        tmux.tmux(&["display", "-p", "-t", "smoke", "#{alternate_on}"])
            .trim(),
        "0"
    );
}
