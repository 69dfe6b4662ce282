//! Load, CPU, memory and uptime of the host, read from `/proc` for the node's reports.
//!
//! CPU usage is a rate, so it needs two samples: [`SystemSampler`] keeps the previous
//! `/proc/stat` counters and reports the busy share of the time in between (0 on the
//! first sample). Files that cannot be read leave their fields at 0: a report with
//! partial system stats is better than none.

use std::path::{Path, PathBuf};

use vpnctl_core::wire::SystemStats;

/// Reads [`SystemStats`] from a procfs root (normally `/proc`).
#[derive(Debug, Clone)]
pub struct SystemSampler {
    root: PathBuf,
    previous_cpu: Option<CpuTimes>,
}

impl Default for SystemSampler {
    fn default() -> Self {
        Self::new("/proc")
    }
}

/// Aggregate CPU counters of the `cpu` line of `/proc/stat`, in clock ticks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct CpuTimes {
    idle: u64,
    total: u64,
}

impl SystemSampler {
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self {
            root: root.into(),
            previous_cpu: None,
        }
    }

    /// One sample; the CPU share covers the time since the previous sample.
    pub fn sample(&mut self) -> SystemStats {
        let read = |name: &str| std::fs::read_to_string(self.root.join(name)).ok();
        let mut stats = SystemStats::default();
        if let Some(load1) = read("loadavg").as_deref().and_then(parse_loadavg) {
            stats.load1 = load1;
        }
        if let Some((total, available)) = read("meminfo").as_deref().and_then(parse_meminfo) {
            stats.mem_total_bytes = total;
            stats.mem_used_bytes = total.saturating_sub(available);
        }
        if let Some(uptime) = read("uptime").as_deref().and_then(parse_uptime) {
            stats.uptime_secs = uptime;
        }
        if let Some(now) = read("stat").as_deref().and_then(parse_cpu) {
            if let Some(before) = self.previous_cpu {
                stats.cpu_percent = cpu_percent(before, now);
            }
            self.previous_cpu = Some(now);
        }
        stats
    }

    pub fn root(&self) -> &Path {
        &self.root
    }
}

/// The 1-minute load average: the first field of `/proc/loadavg`.
fn parse_loadavg(text: &str) -> Option<f64> {
    text.split_whitespace().next()?.parse().ok()
}

/// `(MemTotal, MemAvailable)` in bytes; without `MemAvailable` (kernels before 3.14)
/// free + buffers + cached stands in.
fn parse_meminfo(text: &str) -> Option<(u64, u64)> {
    let field = |name: &str| -> Option<u64> {
        text.lines().find_map(|line| {
            let rest = line.strip_prefix(name)?.strip_prefix(':')?;
            let kib: u64 = rest.split_whitespace().next()?.parse().ok()?;
            Some(kib.saturating_mul(1024))
        })
    };
    let total = field("MemTotal")?;
    let available = field("MemAvailable").or_else(|| {
        Some(field("MemFree")? + field("Buffers").unwrap_or(0) + field("Cached").unwrap_or(0))
    })?;
    Some((total, available.min(total)))
}

/// Whole seconds since boot: the first field of `/proc/uptime`.
fn parse_uptime(text: &str) -> Option<u64> {
    let secs: f64 = text.split_whitespace().next()?.parse().ok()?;
    // Saturating float-to-int conversion; uptime is never negative.
    Some(secs.max(0.0) as u64)
}

/// The aggregate `cpu` line of `/proc/stat`: user nice system idle iowait irq softirq
/// steal (guest time is already counted in user/nice). Idle time is idle + iowait.
fn parse_cpu(text: &str) -> Option<CpuTimes> {
    let line = text.lines().find(|l| l.starts_with("cpu "))?;
    let fields: Vec<u64> = line
        .split_whitespace()
        .skip(1)
        .take(8)
        .map(str::parse)
        .collect::<Result<_, _>>()
        .ok()?;
    if fields.len() < 4 {
        return None;
    }
    let idle = fields[3] + fields.get(4).copied().unwrap_or(0);
    Some(CpuTimes {
        idle,
        total: fields.iter().sum(),
    })
}

fn cpu_percent(before: CpuTimes, now: CpuTimes) -> f64 {
    let total = now.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    let idle = now.idle.saturating_sub(before.idle).min(total);
    let busy = (total - idle) as f64 / total as f64 * 100.0;
    (busy * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_proc_files() {
        assert_eq!(parse_loadavg("0.52 0.58 0.59 1/389 12345\n"), Some(0.52));
        let meminfo =
            "MemTotal:        8000000 kB\nMemFree:  1000000 kB\nMemAvailable:    6000000 kB\n";
        assert_eq!(
            parse_meminfo(meminfo),
            Some((8_000_000 * 1024, 6_000_000 * 1024))
        );
        let old = "MemTotal: 100 kB\nMemFree: 10 kB\nBuffers: 5 kB\nCached: 20 kB\n";
        assert_eq!(parse_meminfo(old), Some((100 * 1024, 35 * 1024)));
        assert_eq!(parse_uptime("12345.67 40000.00\n"), Some(12345));
        let stat = "cpu  100 0 100 700 100 0 0 0 0 0\ncpu0 50 0 50 350 50 0 0 0 0 0\n";
        assert_eq!(
            parse_cpu(stat),
            Some(CpuTimes {
                idle: 800,
                total: 1000
            })
        );
        assert_eq!(parse_cpu("intr 1 2 3\n"), None);
    }

    #[test]
    fn cpu_share_is_the_busy_part_of_the_interval() {
        let before = CpuTimes {
            idle: 800,
            total: 1000,
        };
        let now = CpuTimes {
            idle: 950,
            total: 1200,
        };
        assert_eq!(cpu_percent(before, now), 25.0);
        assert_eq!(cpu_percent(now, now), 0.0);
    }

    #[test]
    fn samples_a_fake_procfs_and_the_real_one() {
        let dir = tempfile::tempdir().unwrap();
        let write = |name: &str, text: &str| std::fs::write(dir.path().join(name), text).unwrap();
        write("loadavg", "1.50 1.00 0.50 2/100 99\n");
        write("meminfo", "MemTotal: 1000 kB\nMemAvailable: 250 kB\n");
        write("uptime", "3600.5 100.0\n");
        write("stat", "cpu  10 0 10 80 0 0 0 0\n");
        let mut sampler = SystemSampler::new(dir.path());
        let first = sampler.sample();
        assert_eq!(first.load1, 1.5);
        assert_eq!(first.mem_total_bytes, 1_024_000);
        assert_eq!(first.mem_used_bytes, 768_000);
        assert_eq!(first.uptime_secs, 3600);
        assert_eq!(first.cpu_percent, 0.0, "no rate from a single sample");
        write("stat", "cpu  60 0 10 130 0 0 0 0\n");
        assert_eq!(sampler.sample().cpu_percent, 50.0);

        let real = SystemSampler::default().sample();
        assert!(real.mem_total_bytes > 0 && real.mem_used_bytes <= real.mem_total_bytes);
        assert!(real.uptime_secs > 0);
    }
}
