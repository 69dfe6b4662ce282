//! Network setup of a VPN exit: addresses, MTU, link state, forwarding and NAT.
//!
//! Everything happens in the network namespace of the calling process. Links and
//! addresses are changed with the `ip` tool (iproute2), run through
//! `std::process::Command` with argument arrays: it is on every host that runs
//! WireGuard, its behaviour is what admins know, and it keeps this crate free of an
//! async netlink stack (`rtnetlink` would pull in tokio and a second netlink
//! generation next to `wireguard-control`'s) for a handful of calls at startup. NAT uses
//! `nft -f -` with a ruleset generated only from validated types ([`IfaceName`],
//! [`Ipv4Net`], [`Ipv6Net`]), loaded atomically in one transaction.
//!
//! We own exactly: the addresses and MTU of our WireGuard interface, and the nftables
//! table `inet vpnctl_<iface>`. [`down`] removes only those (and the interface).
//! Forwarding sysctls are switched on but never off: other services on the host may
//! rely on them. Note that turning on IPv6 forwarding makes Linux ignore router
//! advertisements on interfaces with `accept_ra = 1`; a host that gets its IPv6 route
//! by SLAAC needs `accept_ra = 2` on its uplink.

use std::io::Write as _;
use std::net::IpAddr;
use std::process::{Command, Output, Stdio};

use ipnet::{IpNet, Ipv4Net, Ipv6Net};
use serde::{Deserialize, Serialize};

use crate::iface::IfaceName;

/// The network side of one VPN exit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ExitConfig {
    /// The WireGuard interface (it must exist: the backend creates it).
    pub iface: IfaceName,
    /// The gateway address with the pool's prefix, e.g. `10.8.0.1/16`.
    pub ipv4: Ipv4Net,
    /// Optional IPv6 gateway address with the pool's prefix, e.g. `fd00:8::1/64`.
    pub ipv6: Option<Ipv6Net>,
    pub mtu: u16,
    /// Masquerade traffic from the pools that leaves through any other interface.
    pub nat: bool,
}

/// Why the exit could not be set up or taken down.
#[derive(Debug, thiserror::Error)]
pub enum NetconfError {
    #[error("invalid exit configuration: {0}")]
    Invalid(String),
    #[error("interface {0} does not exist (start the WireGuard backend first)")]
    InterfaceMissing(IfaceName),
    #[error("`{command}` failed ({status}): {stderr}")]
    Command {
        command: String,
        status: String,
        stderr: String,
    },
    #[error("{what}: {source}")]
    Io {
        what: String,
        source: std::io::Error,
    },
}

impl ExitConfig {
    /// Checks what the kernel would accept only partly or silently misapply.
    pub fn validate(&self) -> Result<(), NetconfError> {
        let v4 = self.ipv4;
        if v4.prefix_len() < 31 && (v4.addr() == v4.network() || v4.addr() == v4.broadcast()) {
            return Err(NetconfError::Invalid(format!(
                "gateway {v4} is the network or broadcast address of its pool"
            )));
        }
        if let Some(v6) = self.ipv6
            && v6.prefix_len() < 127
            && v6.addr() == v6.network()
        {
            return Err(NetconfError::Invalid(format!(
                "gateway {v6} is the subnet-router address of its pool"
            )));
        }
        let min_mtu = if self.ipv6.is_some() { 1280 } else { 576 };
        if !(min_mtu..=9000).contains(&self.mtu) {
            return Err(NetconfError::Invalid(format!(
                "MTU {} outside {min_mtu}..=9000",
                self.mtu
            )));
        }
        Ok(())
    }

    /// The addresses the interface must carry (the gateway addresses).
    pub fn addresses(&self) -> Vec<IpNet> {
        let mut out = vec![IpNet::V4(self.ipv4)];
        out.extend(self.ipv6.map(IpNet::V6));
        out
    }
}

/// Name of the nftables table (family `inet`) that belongs to `iface`.
pub fn nft_table(iface: &IfaceName) -> String {
    format!("vpnctl_{iface}")
}

/// The complete nftables script for `cfg`: it creates-or-flushes our table and defines
/// it anew in one atomic transaction, so a re-run never leaves a moment without NAT
/// and never duplicates rules.
pub fn nft_ruleset(cfg: &ExitConfig) -> String {
    let table = nft_table(&cfg.iface);
    let iface = &cfg.iface;
    let mut rules = String::new();
    if cfg.nat {
        rules.push_str(&format!(
            "    ip saddr {} oifname != \"{iface}\" masquerade\n",
            cfg.ipv4.trunc()
        ));
        if let Some(v6) = cfg.ipv6 {
            rules.push_str(&format!(
                "    ip6 saddr {} oifname != \"{iface}\" masquerade\n",
                v6.trunc()
            ));
        }
    }
    // The tunnel's resolver (crate::dns) listens on the gateway addresses: only
    // devices in the tunnel (and the host itself) may ask it, never the internet.
    let mut input = format!(
        "    iifname != {{ \"{iface}\", \"lo\" }} ip daddr {} meta l4proto {{ tcp, udp }} th dport 53 drop\n",
        cfg.ipv4.addr()
    );
    if let Some(v6) = cfg.ipv6 {
        input.push_str(&format!(
            "    iifname != {{ \"{iface}\", \"lo\" }} ip6 daddr {} meta l4proto {{ tcp, udp }} th dport 53 drop\n",
            v6.addr()
        ));
    }
    format!(
        "table inet {table} {{}}\n\
         delete table inet {table}\n\
         table inet {table} {{\n  \
           chain postrouting {{\n    \
             type nat hook postrouting priority srcnat; policy accept;\n\
         {rules}  }}\n  \
           chain input {{\n    \
             type filter hook input priority filter; policy accept;\n\
         {input}  }}\n\
         }}\n"
    )
}

/// Brings the exit up, idempotently: addresses (others removed), MTU, link up,
/// forwarding, NAT table. Run it again with the same config and nothing changes; with
/// a changed config the interface ends up exactly as configured.
#[tracing::instrument(skip_all, fields(iface = %cfg.iface))]
pub fn up(cfg: &ExitConfig) -> Result<(), NetconfError> {
    cfg.validate()?;
    if !link_exists(&cfg.iface)? {
        return Err(NetconfError::InterfaceMissing(cfg.iface.clone()));
    }
    let dev = cfg.iface.as_str();
    let wanted = cfg.addresses();
    for have in addresses(&cfg.iface)? {
        if !wanted.contains(&have) {
            tracing::info!(address = %have, "removing stale address");
            run("ip", &["addr", "del", &have.to_string(), "dev", dev])?;
        }
    }
    for net in &wanted {
        let family = if net.addr().is_ipv4() { "-4" } else { "-6" };
        run(
            "ip",
            &[family, "addr", "replace", &net.to_string(), "dev", dev],
        )?;
    }
    run(
        "ip",
        &["link", "set", "dev", dev, "mtu", &cfg.mtu.to_string(), "up"],
    )?;

    write_sysctl("/proc/sys/net/ipv4/ip_forward")?;
    if cfg.ipv6.is_some() {
        write_sysctl("/proc/sys/net/ipv6/conf/all/forwarding")?;
    }
    nft(&nft_ruleset(cfg))?;
    tracing::info!(mtu = cfg.mtu, nat = cfg.nat, "exit is up");
    Ok(())
}

/// Removes our nftables table and our interface. Idempotent: absent things are fine.
/// Leaves every other table, interface and the forwarding sysctls alone.
#[tracing::instrument]
pub fn down(iface: &IfaceName) -> Result<(), NetconfError> {
    let table = nft_table(iface);
    // Declaring the table first makes the delete succeed whether or not it existed.
    nft(&format!(
        "table inet {table} {{}}\ndelete table inet {table}\n"
    ))?;
    if link_exists(iface)? {
        run("ip", &["link", "del", "dev", iface.as_str()])?;
    }
    Ok(())
}

/// The exit's network setup as the node daemon sees it, so that its loop runs over the
/// simulator as well as over a real host.
pub trait ExitNetwork: Send + 'static {
    /// Brings the exit up as [`up`] does.
    fn up(&mut self, cfg: &ExitConfig) -> Result<(), NetconfError>;
    /// Takes it down as [`down`] does.
    fn down(&mut self, iface: &IfaceName) -> Result<(), NetconfError>;
}

/// The real host: [`up`] and [`down`] in the daemon's network namespace.
#[derive(Debug, Clone, Copy, Default)]
pub struct HostNetwork;

impl ExitNetwork for HostNetwork {
    fn up(&mut self, cfg: &ExitConfig) -> Result<(), NetconfError> {
        up(cfg)
    }
    fn down(&mut self, iface: &IfaceName) -> Result<(), NetconfError> {
        down(iface)
    }
}

/// No network at all, for the simulated backend: only validates the configuration.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoNetwork;

impl ExitNetwork for NoNetwork {
    fn up(&mut self, cfg: &ExitConfig) -> Result<(), NetconfError> {
        cfg.validate()
    }
    fn down(&mut self, _iface: &IfaceName) -> Result<(), NetconfError> {
        Ok(())
    }
}

fn command_line(program: &str, args: &[&str]) -> String {
    let mut s = program.to_owned();
    for a in args {
        s.push(' ');
        s.push_str(a);
    }
    s
}

/// A tool's stderr as one line (lines joined with "; "): errors end up in one log
/// line and one report entry each.
fn one_line(stderr: &[u8]) -> String {
    String::from_utf8_lossy(stderr)
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join("; ")
}

fn output(program: &str, args: &[&str]) -> Result<Output, NetconfError> {
    Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|source| NetconfError::Io {
            what: format!("run {program}"),
            source,
        })
}

fn run(program: &str, args: &[&str]) -> Result<Output, NetconfError> {
    let out = output(program, args)?;
    if out.status.success() {
        Ok(out)
    } else {
        Err(NetconfError::Command {
            command: command_line(program, args),
            status: out.status.to_string(),
            stderr: one_line(&out.stderr),
        })
    }
}

fn link_exists(iface: &IfaceName) -> Result<bool, NetconfError> {
    Ok(output("ip", &["link", "show", "dev", iface.as_str()])?
        .status
        .success())
}

#[derive(Deserialize)]
struct IpLink {
    #[serde(default)]
    addr_info: Vec<IpAddrInfo>,
}

#[derive(Deserialize)]
struct IpAddrInfo {
    local: Option<IpAddr>,
    prefixlen: Option<u8>,
    scope: Option<String>,
}

/// Global-scope addresses on the interface (link-local ones are the kernel's).
fn addresses(iface: &IfaceName) -> Result<Vec<IpNet>, NetconfError> {
    let out = run("ip", &["-j", "addr", "show", "dev", iface.as_str()])?;
    let links: Vec<IpLink> = serde_json::from_slice(&out.stdout).map_err(|e| NetconfError::Io {
        what: "parse `ip -j addr` output".into(),
        source: std::io::Error::other(e),
    })?;
    Ok(links
        .iter()
        .flat_map(|l| &l.addr_info)
        .filter(|a| a.scope.as_deref() == Some("global"))
        .filter_map(|a| IpNet::new(a.local?, a.prefixlen?).ok())
        .collect())
}

fn write_sysctl(path: &str) -> Result<(), NetconfError> {
    let io_err = |source| NetconfError::Io {
        what: format!("write {path}"),
        source,
    };
    if std::fs::read_to_string(path).is_ok_and(|v| v.trim() == "1") {
        return Ok(());
    }
    std::fs::write(path, b"1\n").map_err(io_err)
}

fn nft(script: &str) -> Result<(), NetconfError> {
    let mut child = Command::new("nft")
        .args(["-f", "-"])
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|source| NetconfError::Io {
            what: "run nft".into(),
            source,
        })?;
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(script.as_bytes())
            .map_err(|source| NetconfError::Io {
                what: "write nft script".into(),
                source,
            })?;
    }
    let out = child
        .wait_with_output()
        .map_err(|source| NetconfError::Io {
            what: "wait for nft".into(),
            source,
        })?;
    if out.status.success() {
        Ok(())
    } else {
        Err(NetconfError::Command {
            command: "nft -f -".into(),
            status: out.status.to_string(),
            stderr: one_line(&out.stderr),
        })
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn tool_errors_are_one_line() {
        assert_eq!(
            super::one_line(b"Error: syntax error\n  at line 3\r\n\n"),
            "Error: syntax error; at line 3"
        );
    }

    use super::*;

    fn cfg() -> ExitConfig {
        ExitConfig {
            iface: IfaceName::new("wg0").unwrap(),
            ipv4: "10.8.0.1/16".parse().unwrap(),
            ipv6: Some("fd00:8::1/64".parse().unwrap()),
            mtu: 1420,
            nat: true,
        }
    }

    #[test]
    fn ruleset_masquerades_the_pools_in_our_own_table() {
        let text = nft_ruleset(&cfg());
        assert!(
            text.starts_with("table inet vpnctl_wg0 {}\ndelete table inet vpnctl_wg0\n"),
            "{text}"
        );
        assert!(
            text.contains("ip saddr 10.8.0.0/16 oifname != \"wg0\" masquerade"),
            "{text}"
        );
        assert!(
            text.contains("ip6 saddr fd00:8::/64 oifname != \"wg0\" masquerade"),
            "{text}"
        );
        assert!(
            text.contains(
                "iifname != { \"wg0\", \"lo\" } ip daddr 10.8.0.1 meta l4proto { tcp, udp } th dport 53 drop"
            ),
            "{text}"
        );
        assert!(text.contains("ip6 daddr fd00:8::1 meta l4proto"), "{text}");
        let no_nat = nft_ruleset(&ExitConfig {
            nat: false,
            ..cfg()
        });
        assert!(!no_nat.contains("masquerade"));
        assert!(no_nat.contains("th dport 53 drop"), "DNS stays tunnel-only");
    }

    #[test]
    fn validation_rejects_network_broadcast_and_bad_mtu() {
        assert!(cfg().validate().is_ok());
        for bad in ["10.8.0.0/16", "10.8.255.255/16"] {
            let c = ExitConfig {
                ipv4: bad.parse().unwrap(),
                ..cfg()
            };
            assert!(c.validate().is_err(), "{bad}");
        }
        assert!(ExitConfig { mtu: 1200, ..cfg() }.validate().is_err());
        assert!(
            ExitConfig {
                mtu: 1200,
                ipv6: None,
                ..cfg()
            }
            .validate()
            .is_ok()
        );
        let c = ExitConfig {
            ipv6: Some("fd00:8::/64".parse().unwrap()),
            ..cfg()
        };
        assert!(c.validate().is_err());
    }
}
