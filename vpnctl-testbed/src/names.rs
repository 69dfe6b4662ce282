//! Unique short names for namespaces and interfaces.

use std::path::Path;
use std::sync::atomic::{AtomicU32, Ordering};

use crate::UAPI_DIR;
use crate::netns::kill_all_in;
use crate::process::run;

const PREFIX: &str = "vtb";
const PID_DIGITS: usize = 5; // base 36: covers pid_max 4,194,304
const SEQ_DIGITS: usize = 2;
/// Longest role accepted by [`Names::iface`]: 3 + 5 + 2 + 4 = 14 ≤ IFNAMSIZ - 1.
const MAX_ROLE: usize = 4;

static SEQ: AtomicU32 = AtomicU32::new(0);

/// A family of names for one test: `vtb<pid><seq>` plus a role. Interface names stay
/// within Linux's 15 characters and are unique on the whole machine, which matters
/// because UAPI sockets (`/var/run/wireguard/<iface>.sock`) are not per namespace.
#[derive(Debug, Clone)]
pub struct Names {
    tag: String,
}

impl Names {
    #[allow(clippy::new_without_default)] // every call is a new, different family
    pub fn new() -> Self {
        let seq = SEQ.fetch_add(1, Ordering::Relaxed) % 36u32.pow(SEQ_DIGITS as u32);
        let tag = format!(
            "{PREFIX}{}{}",
            base36(std::process::id(), PID_DIGITS),
            base36(seq, SEQ_DIGITS)
        );
        Self { tag }
    }

    /// `tag` + role, e.g. `vtb0a1b203srv`. Panics on a role longer than 4 characters
    /// or one that is not lower-case alphanumeric.
    pub fn iface(&self, role: &str) -> String {
        assert!(
            !role.is_empty()
                && role.len() <= MAX_ROLE
                && role
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()),
            "interface role {role:?}: 1..=4 characters of [a-z0-9]"
        );
        format!("{}{role}", self.tag)
    }

    /// A namespace name: `tag-role`.
    pub fn netns(&self, role: &str) -> String {
        format!("{}-{role}", self.tag)
    }

    pub fn tag(&self) -> &str {
        &self.tag
    }
}

fn base36(mut n: u32, width: usize) -> String {
    let mut digits = vec![b'0'; width];
    for d in digits.iter_mut().rev() {
        *d = b"0123456789abcdefghijklmnopqrstuvwxyz"[(n % 36) as usize];
        n /= 36;
    }
    String::from_utf8(digits).unwrap_or_default()
}

/// The pid encoded in one of our names, if `name` is one.
fn owner_pid(name: &str) -> Option<u32> {
    let digits = name.strip_prefix(PREFIX)?.get(..PID_DIGITS)?;
    u32::from_str_radix(digits, 36).ok()
}

fn owner_is_gone(name: &str) -> bool {
    match owner_pid(name) {
        Some(pid) => pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists(),
        None => false,
    }
}

/// Removes namespaces and UAPI socket files whose creating test process no longer
/// exists (a run killed by SIGKILL cannot run its `Drop`s).
pub(crate) fn sweep_stale() {
    if let Ok(out) = run("ip", &["netns", "list"]) {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            let Some(name) = line.split_whitespace().next() else {
                continue;
            };
            if owner_is_gone(name) {
                kill_all_in(name);
                let _ = run("ip", &["netns", "del", name]);
            }
        }
    }
    if let Ok(entries) = std::fs::read_dir(UAPI_DIR) {
        for entry in entries.flatten() {
            let file = entry.file_name();
            let file = file.to_string_lossy();
            let stem = file.split('.').next().unwrap_or_default();
            if owner_is_gone(stem) {
                let _ = std::fs::remove_file(entry.path());
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_short_unique_and_carry_the_pid() {
        let a = Names::new();
        let b = Names::new();
        assert_ne!(a.tag(), b.tag());
        let name = a.iface("srv");
        assert!(name.len() <= 15, "{name}");
        assert_eq!(owner_pid(&name), Some(std::process::id()));
        assert_eq!(owner_pid(&a.netns("node")), Some(std::process::id()));
        assert!(a.iface("abcd").len() <= 15);
        assert_eq!(owner_pid("wg0"), None);
    }

    #[test]
    #[should_panic(expected = "interface role")]
    fn long_roles_are_refused() {
        let _ = Names::new().iface("toolong");
    }
}
