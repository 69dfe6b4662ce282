//! The cross-platform WireGuard UAPI ("configuration protocol") over a unix socket:
//! `get=1` reads the device, `set=1` applies a batch of changes. wireguard-go and
//! amneziawg-go speak it alike; amneziawg-go adds device keys (`jc`, `jmin`, `jmax`,
//! `s1`..`s4`, `h1`..`h4`, `i1`..`i5`). `wireguard-control` hard-codes
//! `/var/run/wireguard`, hence this client for sockets elsewhere.
//!
//! Keys travel as hex; nothing here logs a request body (it holds the private key
//! and preshared keys).

use std::fmt::Write as _;
use std::io::{self, BufRead as _, BufReader, Write as _};
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use vpnctl_core::keys::{PresharedKey, PrivateKey, PublicKey};
use vpnctl_core::reconcile::{PeerChange, PeerSpec};

use super::{DeviceState, LivePeer, PeerStats};

const TIMEOUT: Duration = Duration::from_secs(10);

/// A device as `get=1` reports it: the state the planner reads, plus the device
/// keys other than the identity (the AWG parameters, lower-case key → value).
#[derive(Debug, Default)]
pub struct UapiDevice {
    pub state: DeviceState,
    pub private_key: Option<PrivateKey>,
    pub extra: Vec<(String, String)>,
}

fn hex(bytes: &[u8; 32]) -> String {
    let mut s = String::with_capacity(64);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

fn unhex(text: &str) -> io::Result<[u8; 32]> {
    let bad = || io::Error::new(io::ErrorKind::InvalidData, "UAPI key is not 64 hex digits");
    if text.len() != 64 {
        return Err(bad());
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16).map_err(|_| bad())?;
    }
    Ok(out)
}

fn exchange(socket: &Path, request: &str) -> io::Result<Vec<(String, String)>> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(TIMEOUT))?;
    stream.set_write_timeout(Some(TIMEOUT))?;
    stream.write_all(request.as_bytes())?;
    let reader = BufReader::new(stream);
    let mut pairs = Vec::new();
    for line in reader.lines() {
        let line = line?;
        if line.is_empty() {
            break;
        }
        let (k, v) = line.split_once('=').ok_or_else(|| {
            io::Error::new(
                io::ErrorKind::InvalidData,
                "UAPI answered a line without '='",
            )
        })?;
        pairs.push((k.to_owned(), v.to_owned()));
    }
    match pairs.last() {
        Some((k, v)) if k == "errno" => {
            if v != "0" {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidInput,
                    format!("UAPI errno {v}"),
                ));
            }
            pairs.pop();
            Ok(pairs)
        }
        _ => Err(io::Error::new(
            io::ErrorKind::InvalidData,
            "UAPI answer without errno",
        )),
    }
}

/// `set=1` with `body` (lines ending in `\n`, without the final blank line).
pub fn set(socket: &Path, body: &str) -> io::Result<()> {
    exchange(socket, &format!("set=1\n{body}\n")).map(drop)
}

/// `get=1`, parsed.
pub fn get(socket: &Path) -> io::Result<UapiDevice> {
    let pairs = exchange(socket, "get=1\n\n")?;
    let mut device = UapiDevice::default();
    let mut peer: Option<(PeerSpecParts, PeerStats)> = None;
    let mut handshake = (0u64, 0u64);
    let finish = |peer: Option<(PeerSpecParts, PeerStats)>,
                  handshake: (u64, u64),
                  device: &mut UapiDevice| {
        if let Some((parts, mut stats)) = peer {
            if handshake != (0, 0) {
                stats.last_handshake = Some(
                    SystemTime::UNIX_EPOCH
                        + Duration::from_secs(handshake.0)
                        + Duration::from_nanos(handshake.1),
                );
            }
            device.state.peers.push(LivePeer {
                spec: PeerSpec::new(
                    parts.public_key,
                    parts.preshared_key,
                    parts.allowed_ips,
                    parts.keepalive.filter(|&k| k != 0),
                ),
                stats,
            });
        }
    };
    let invalid = |what: &str| io::Error::new(io::ErrorKind::InvalidData, what.to_owned());
    for (k, v) in pairs {
        if k == "public_key" {
            finish(peer.take(), handshake, &mut device);
            handshake = (0, 0);
            peer = Some((
                PeerSpecParts::new(PublicKey::from_bytes(unhex(&v)?)),
                PeerStats::default(),
            ));
            continue;
        }
        match (&mut peer, k.as_str()) {
            (None, "private_key") => {
                let key = PrivateKey::from_bytes(unhex(&v)?);
                if key.expose_bytes() != &[0u8; 32] {
                    device.state.public_key = Some(key.public_key());
                    device.private_key = Some(key);
                }
            }
            (None, "listen_port") => {
                device.state.listen_port = Some(v.parse().map_err(|_| invalid("listen_port"))?);
            }
            (None, "fwmark") => {}
            (None, _) => device.extra.push((k, v)),
            (Some((parts, stats)), key) => match key {
                "preshared_key" => {
                    let bytes = unhex(&v)?;
                    if bytes != [0u8; 32] {
                        parts.preshared_key = Some(PresharedKey::from_bytes(bytes));
                    }
                }
                "endpoint" => stats.endpoint = v.parse::<SocketAddr>().ok(),
                "last_handshake_time_sec" => handshake.0 = v.parse().unwrap_or(0),
                "last_handshake_time_nsec" => handshake.1 = v.parse().unwrap_or(0),
                "rx_bytes" => stats.rx_bytes = v.parse().unwrap_or(0),
                "tx_bytes" => stats.tx_bytes = v.parse().unwrap_or(0),
                "persistent_keepalive_interval" => parts.keepalive = v.parse().ok(),
                "allowed_ip" => parts
                    .allowed_ips
                    .push(v.parse().map_err(|_| invalid("allowed_ip"))?),
                _ => {}
            },
        }
    }
    finish(peer, handshake, &mut device);
    Ok(device)
}

struct PeerSpecParts {
    public_key: PublicKey,
    preshared_key: Option<PresharedKey>,
    allowed_ips: Vec<IpNet>,
    keepalive: Option<u16>,
}

impl PeerSpecParts {
    fn new(public_key: PublicKey) -> Self {
        Self {
            public_key,
            preshared_key: None,
            allowed_ips: Vec::new(),
            keepalive: None,
        }
    }
}

/// The identity lines: `private_key=`, `listen_port=`.
pub fn identity_lines(private_key: &PrivateKey, listen_port: u16) -> String {
    format!(
        "private_key={}\nlisten_port={listen_port}\n",
        hex(private_key.expose_bytes())
    )
}

fn allowed_ip_lines(out: &mut String, spec: &PeerSpec) {
    out.push_str("replace_allowed_ips=true\n");
    for net in &spec.allowed_ips {
        let _ = writeln!(out, "allowed_ip={net}");
    }
}

fn psk_hex(psk: Option<&PresharedKey>) -> String {
    // The all-zero key removes a preshared key.
    psk.map_or_else(|| hex(&[0u8; 32]), |k| hex(k.expose_bytes()))
}

/// The peer sections of `changes`, in order. Adds set every field; updates touch
/// only the marked fields, so endpoints, sessions and counters stay. Never
/// `replace_peers`.
pub fn peer_lines(changes: &[PeerChange]) -> String {
    let mut out = String::new();
    for change in changes {
        match change {
            PeerChange::Remove(key) => {
                let _ = write!(out, "public_key={}\nremove=true\n", hex(key.as_bytes()));
            }
            PeerChange::Add(spec) => {
                let _ = write!(
                    out,
                    "public_key={}\npreshared_key={}\npersistent_keepalive_interval={}\n",
                    hex(spec.public_key.as_bytes()),
                    psk_hex(spec.preshared_key.as_ref()),
                    spec.keepalive()
                );
                allowed_ip_lines(&mut out, spec);
            }
            PeerChange::Update {
                spec,
                preshared_key,
                allowed_ips,
                persistent_keepalive,
            } => {
                let _ = writeln!(out, "public_key={}", hex(spec.public_key.as_bytes()));
                if *preshared_key {
                    let _ = writeln!(
                        out,
                        "preshared_key={}",
                        psk_hex(spec.preshared_key.as_ref())
                    );
                }
                if *persistent_keepalive {
                    let _ = writeln!(out, "persistent_keepalive_interval={}", spec.keepalive());
                }
                if *allowed_ips {
                    allowed_ip_lines(&mut out, spec);
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use vpnctl_core::keys::KeyPair;

    #[test]
    fn keys_round_trip_as_hex() {
        let k = KeyPair::generate().public;
        assert_eq!(unhex(&hex(k.as_bytes())).unwrap(), *k.as_bytes());
        assert!(unhex("zz").is_err());
    }

    #[test]
    fn peer_sections_never_replace_the_peer_set() {
        let spec = PeerSpec::new(
            KeyPair::generate().public,
            None,
            ["10.8.0.2/32".parse().unwrap()],
            Some(25),
        );
        let text = peer_lines(&[
            PeerChange::Add(spec.clone()),
            PeerChange::Update {
                spec: spec.clone(),
                preshared_key: false,
                allowed_ips: false,
                persistent_keepalive: true,
            },
            PeerChange::Remove(spec.public_key),
        ]);
        assert!(!text.contains("replace_peers"));
        assert_eq!(text.matches("public_key=").count(), 3);
        assert!(text.contains("allowed_ip=10.8.0.2/32\n"));
        assert!(text.contains("persistent_keepalive_interval=25\n"));
        assert!(text.ends_with("remove=true\n"));
    }
}
