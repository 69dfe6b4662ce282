//! An AmneziaWG client inside a namespace, brought up from an issued config exactly
//! as written, the way `awg-quick` and the AmneziaWG apps read it: every
//! `[Interface]` key (`PrivateKey`, `Address`, `DNS`, `MTU`, `Jc`…`I5`) and every
//! `[Peer]` key is applied; an unknown key fails the test. The daemon is
//! `amneziawg-go` (userspace), configured over its UAPI socket
//! `/var/run/amneziawg/<iface>.sock`.
//!
//! Routing follows wg-quick's effect without its fwmark tables: a full tunnel
//! (`0.0.0.0/0`, `::/0`) becomes the two half-defaults through the tunnel, and the
//! endpoint keeps its more specific route on the underlay.

use std::io::{BufRead as _, BufReader, Write as _};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::{ChildGuard, Netns};

/// Where amneziawg-go puts its UAPI sockets (machine-wide, not per namespace).
pub const AWG_UAPI_DIR: &str = "/var/run/amneziawg";

/// Removes an amneziawg UAPI socket's files now and on drop.
#[derive(Debug)]
pub struct AwgUapiGuard {
    iface: String,
}

impl AwgUapiGuard {
    pub fn new(iface: &str) -> Self {
        let g = Self {
            iface: iface.to_owned(),
        };
        g.remove_files();
        g
    }

    pub fn socket_path(&self) -> PathBuf {
        Path::new(AWG_UAPI_DIR).join(format!("{}.sock", self.iface))
    }

    fn remove_files(&self) {
        let _ = std::fs::remove_file(self.socket_path());
        let _ = std::fs::remove_file(Path::new(AWG_UAPI_DIR).join(format!("{}.name", self.iface)));
    }
}

impl Drop for AwgUapiGuard {
    fn drop(&mut self) {
        self.remove_files();
    }
}

/// A running AmneziaWG client; stops amneziawg-go (and so its interface) on drop.
#[derive(Debug)]
pub struct AwgQuick {
    daemon: Option<ChildGuard>,
    _uapi: AwgUapiGuard,
    iface: String,
}

fn b64_key_to_hex(text: &str) -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bits = 0u32;
    let mut n = 0;
    let mut out = Vec::new();
    for c in text.trim().bytes().take_while(|&c| c != b'=') {
        let v = ALPHABET
            .iter()
            .position(|&a| a == c)
            .unwrap_or_else(|| panic!("key is not base64: {c}"));
        bits = (bits << 6) | u32::try_from(v).expect("small");
        n += 6;
        if n >= 8 {
            n -= 8;
            out.push(u8::try_from((bits >> n) & 0xff).expect("byte"));
        }
    }
    assert_eq!(out.len(), 32, "a WireGuard key is 32 bytes");
    out.iter().map(|b| format!("{b:02x}")).collect()
}

type Keys = Vec<(String, String)>;

/// The `[Interface]` and `[Peer]` keys of a config, in order.
fn sections(config: &str) -> (Keys, Keys) {
    let (mut iface, mut peer) = (Vec::new(), Vec::new());
    let mut current = None;
    for line in config.lines() {
        let line = line.trim();
        if line.is_empty() || line.starts_with('#') {
            continue;
        }
        match line {
            "[Interface]" => current = Some(0),
            "[Peer]" => current = Some(1),
            _ => {
                let (k, v) = line
                    .split_once('=')
                    .unwrap_or_else(|| panic!("config line without '=': {line:?}"));
                let pair = (k.trim().to_owned(), v.trim().to_owned());
                match current {
                    Some(0) => iface.push(pair),
                    Some(1) => peer.push(pair),
                    _ => panic!("key before any section: {line:?}"),
                }
            }
        }
    }
    (iface, peer)
}

fn uapi_set(socket: &Path, body: &str) {
    let mut s = UnixStream::connect(socket).expect("connect amneziawg UAPI");
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(format!("set=1\n{body}\n").as_bytes())
        .expect("write UAPI");
    let mut answer = String::new();
    for line in BufReader::new(s).lines() {
        let line = line.expect("read UAPI");
        if line.is_empty() {
            break;
        }
        answer = line;
    }
    assert_eq!(answer, "errno=0", "amneziawg-go refused the config");
}

impl AwgQuick {
    /// Brings `config` up as interface `iface` in `ns`. Panics (naming the key, never
    /// its value) when the config has a key an AmneziaWG client would not read.
    pub fn up(ns: &Netns, iface: &str, config: &str) -> Self {
        let uapi = AwgUapiGuard::new(iface);
        let daemon = ChildGuard::spawn(
            Command::new("ip")
                .args(["netns", "exec", ns.name(), "amneziawg-go", "-f", iface])
                .env("WG_PROCESS_FOREGROUND", "1")
                .env("LOG_LEVEL", "error")
                .stdout(std::process::Stdio::inherit())
                .stderr(std::process::Stdio::inherit()),
        )
        .expect("spawn amneziawg-go");
        let deadline = Instant::now() + Duration::from_secs(5);
        while UnixStream::connect(uapi.socket_path()).is_err() {
            assert!(
                Instant::now() < deadline,
                "amneziawg-go did not start: no {} among {:?}",
                uapi.socket_path().display(),
                std::fs::read_dir(AWG_UAPI_DIR).map(|d| d
                    .filter_map(Result::ok)
                    .map(|e| e.file_name())
                    .collect::<Vec<_>>())
            );
            std::thread::sleep(Duration::from_millis(20));
        }
        let guard = Self {
            daemon: Some(daemon),
            _uapi: uapi,
            iface: iface.to_owned(),
        };
        let (interface, peer) = sections(config);
        let mut device = String::new();
        let mut addresses = Vec::new();
        let mut mtu = None;
        for (k, v) in &interface {
            match k.as_str() {
                "PrivateKey" => device.push_str(&format!("private_key={}\n", b64_key_to_hex(v))),
                "Address" => addresses.extend(v.split(',').map(|a| a.trim().to_owned())),
                "DNS" => {
                    let lines: String = v
                        .split(',')
                        .map(|d| format!("nameserver {}\n", d.trim()))
                        .collect();
                    ns.set_resolv_conf(&lines);
                }
                "MTU" => mtu = Some(v.clone()),
                "Jc" | "Jmin" | "Jmax" | "S1" | "S2" | "S3" | "S4" | "H1" | "H2" | "H3" | "H4"
                | "I1" | "I2" | "I3" | "I4" | "I5" => {
                    device.push_str(&format!("{}={v}\n", k.to_ascii_lowercase()));
                }
                other => panic!("[Interface] key {other} is not one an AmneziaWG client reads"),
            }
        }
        let mut routes = Vec::new();
        let mut peer_lines = String::new();
        for (k, v) in &peer {
            match k.as_str() {
                "PublicKey" => {
                    peer_lines = format!("public_key={}\n{peer_lines}", b64_key_to_hex(v));
                }
                "PresharedKey" => {
                    peer_lines.push_str(&format!("preshared_key={}\n", b64_key_to_hex(v)));
                }
                "Endpoint" => peer_lines.push_str(&format!("endpoint={v}\n")),
                "PersistentKeepalive" => {
                    peer_lines.push_str(&format!("persistent_keepalive_interval={v}\n"));
                }
                "AllowedIPs" => {
                    for net in v.split(',').map(str::trim) {
                        peer_lines.push_str(&format!("allowed_ip={net}\n"));
                        match net {
                            "0.0.0.0/0" => routes.extend(["0.0.0.0/1", "128.0.0.0/1"]),
                            "::/0" => routes.extend(["::/1", "8000::/1"]),
                            _ => {}
                        }
                    }
                }
                other => panic!("[Peer] key {other} is not one an AmneziaWG client reads"),
            }
        }
        uapi_set(&guard._uapi.socket_path(), &format!("{device}{peer_lines}"));
        for a in &addresses {
            let family = if a.contains(':') { "-6" } else { "-4" };
            ns.ip(&[family, "addr", "add", a, "dev", iface]);
        }
        if let Some(mtu) = mtu {
            ns.ip(&["link", "set", "dev", iface, "mtu", &mtu]);
        }
        ns.ip(&["link", "set", "dev", iface, "up"]);
        for r in routes {
            let family = if r.contains(':') { "-6" } else { "-4" };
            ns.ip(&[family, "route", "add", r, "dev", iface]);
        }
        guard
    }

    pub fn iface(&self) -> &str {
        &self.iface
    }

    /// Stops amneziawg-go now (its interface and routes go with it).
    pub fn down(&mut self) {
        self.daemon.take();
    }
}
