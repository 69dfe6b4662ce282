//! `ping` from inside a namespace.

use std::process::Stdio;

use crate::Netns;
use crate::process::ChildGuard;

/// Transmitted and received counts from ping's summary line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PingStats {
    pub transmitted: u32,
    pub received: u32,
}

impl PingStats {
    pub fn lost(&self) -> u32 {
        self.transmitted.saturating_sub(self.received)
    }

    /// Parses "N packets transmitted, M received" from ping's output.
    pub fn parse(output: &str) -> Option<Self> {
        let line = output.lines().find(|l| l.contains("packets transmitted"))?;
        let mut nums = line
            .split(',')
            .filter_map(|part| part.split_whitespace().next()?.parse::<u32>().ok());
        Some(Self {
            transmitted: nums.next()?,
            received: nums.next()?,
        })
    }
}

/// Sends `count` pings 0.2 s apart from `ns` to `addr`; true when all were answered.
pub fn ping(ns: &Netns, addr: &str, count: u32) -> bool {
    ping_stats(ns, addr, count, 0.2).is_some_and(|s| s.received == s.transmitted && s.received > 0)
}

/// Sends `count` pings `interval` seconds apart (each waits up to 1 s for its reply).
pub fn ping_stats(ns: &Netns, addr: &str, count: u32, interval: f64) -> Option<PingStats> {
    let out = ns
        .exec(
            "ping",
            &[
                "-n",
                "-q",
                "-c",
                &count.to_string(),
                "-i",
                &format!("{interval}"),
                "-W",
                "1",
                addr,
            ],
        )
        .ok()?;
    PingStats::parse(&String::from_utf8_lossy(&out.stdout))
}

/// A `ping -c count -i interval` running in the background; [`ContinuousPing::finish`]
/// waits for it to end and returns its counts.
#[derive(Debug)]
pub struct ContinuousPing {
    child: ChildGuard,
}

impl ContinuousPing {
    pub fn start(ns: &Netns, addr: &str, count: u32, interval: f64) -> Self {
        let child = ChildGuard::spawn(
            ns.command("ping")
                .args([
                    "-n",
                    "-q",
                    "-c",
                    &count.to_string(),
                    "-i",
                    &format!("{interval}"),
                    "-W",
                    "2",
                    addr,
                ])
                .stdin(Stdio::null())
                .stdout(Stdio::piped())
                .stderr(Stdio::piped()),
        )
        .expect("spawn ping");
        Self { child }
    }

    /// Waits for ping to send all its packets and returns the summary.
    pub fn finish(self) -> PingStats {
        let out = self.child.wait_with_output().expect("wait for ping");
        let text = String::from_utf8_lossy(&out.stdout);
        PingStats::parse(&text).unwrap_or_else(|| {
            panic!(
                "no ping summary: {text} {}",
                String::from_utf8_lossy(&out.stderr)
            )
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_the_summary_line() {
        let text = "PING 1.2.3.4 (1.2.3.4) 56(84) bytes of data.\n\n--- 1.2.3.4 ping statistics ---\n\
                    50 packets transmitted, 49 received, 2% packet loss, time 4903ms\n";
        let s = PingStats::parse(text).unwrap();
        assert_eq!((s.transmitted, s.received, s.lost()), (50, 49, 1));
        let errors = "3 packets transmitted, 0 received, +3 errors, 100% packet loss, time 2003ms";
        assert_eq!(PingStats::parse(errors).unwrap().received, 0);
    }
}
