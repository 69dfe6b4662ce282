//! The servers admins move in from: a hand-written or scripted wg-quick `wg0.conf`,
//! and wg-easy 14's data file `wg0.json`. Parsing only; what becomes of the peers
//! (users, addresses, conflicts) is [`crate::Vpnctl::import_peers`].
//!
//! **wg-quick.** `[Interface]` gives the server's `PrivateKey` and `ListenPort`; each
//! `[Peer]` a client: `PublicKey`, `PresharedKey`, and `AllowedIPs`, whose single
//! host addresses (`/32`, `/128`) are the client's tunnel addresses. A peer is named
//! by the comment lines right above its `[Peer]` (`# alice`, `### Client alice` as
//! the popular install scripts write, `# Client: alice (id)` as wg-easy wrote before
//! version 14), by a `# Name = alice` line inside it, or else by a comment right
//! below `[Peer]`, before its first setting. As in `wg`, `#` starts a
//! comment anywhere on a line.
//!
//! **wg-easy 14** keeps its state in one JSON file:
//!
//! ```json
//! { "server": { "privateKey": "...", "publicKey": "...", "address": "10.8.0.1" },
//!   "clients": { "<uuid>": { "id": "<uuid>", "name": "alice", "address": "10.8.0.2",
//!       "privateKey": "...", "publicKey": "...", "preSharedKey": "...",
//!       "createdAt": "2024-05-01T10:00:00.000Z", "updatedAt": "...",
//!       "expiredAt": null, "enabled": true } } }
//! ```
//!
//! Its listen port is not in the file (wg-easy's `WG_PORT`, default 51820).
//!
//! Errors name the line (or client) and never contain a key.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use serde::Deserialize;

use crate::api::import::{ImportPeer, ImportRequest};
use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::time::Timestamp;

/// wg-easy's listen port when its environment does not say otherwise.
pub const WG_EASY_DEFAULT_PORT: u16 = 51820;

/// Why a file could not be read as a server's configuration.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{at}: {reason}")]
pub struct LegacyError {
    /// `line 12`, `client 3f2a…`, or `file`.
    pub at: String,
    pub reason: String,
}

fn err(at: impl Into<String>, reason: impl Into<String>) -> LegacyError {
    LegacyError {
        at: at.into(),
        reason: reason.into(),
    }
}

/// An old server: its key, port and clients.
#[derive(Debug, Clone)]
pub struct LegacyServer {
    /// `wg-quick` or `wg-easy`.
    pub source: &'static str,
    /// Stays with the admin (and goes to the node by `--adopt-key`), never to the
    /// control plane: only its public key is sent.
    pub private_key: Option<PrivateKey>,
    pub listen_port: Option<u16>,
    pub peers: Vec<ImportPeer>,
}

impl LegacyServer {
    /// The request `vpnctl import` sends.
    pub fn request(&self, dry_run: bool) -> ImportRequest {
        ImportRequest {
            source: self.source.to_owned(),
            server_public_key: self.private_key.as_ref().map(PrivateKey::public_key),
            listen_port: self.listen_port,
            peers: self.peers.clone(),
            dry_run,
        }
    }
}

#[derive(PartialEq, Eq)]
enum Section {
    None,
    Interface,
    Peer,
    Other,
}

/// A `[Peer]` being read.
struct PeerDraft {
    line: usize,
    name: Option<String>,
    public_key: Option<PublicKey>,
    preshared_key: Option<PresharedKey>,
    addresses: Vec<IpNet>,
    /// A setting was read (any, `Endpoint` and `PersistentKeepalive` too).
    settled: bool,
}

impl PeerDraft {
    /// No setting read yet: what follows `[Peer]` directly.
    fn is_blank(&self) -> bool {
        !self.settled
    }
}

/// Parses a wg-quick configuration of a server (see the module docs).
pub fn parse_wg_quick(text: &str) -> Result<LegacyServer, LegacyError> {
    let mut server = LegacyServer {
        source: "wg-quick",
        private_key: None,
        listen_port: None,
        peers: Vec::new(),
    };
    let mut section = Section::None;
    let mut comments: Vec<String> = Vec::new();
    let mut draft: Option<PeerDraft> = None;
    let mut seen_interface = false;
    for (i, raw) in text.lines().enumerate() {
        let n = i + 1;
        let at = || format!("line {n}");
        let trimmed = raw.trim();
        if let Some(comment) = trimmed.strip_prefix('#') {
            let comment = comment.trim_start_matches('#').trim();
            if section == Section::Peer
                && let Some(d) = &mut draft
            {
                if let Some(name) = name_setting(comment) {
                    d.name = Some(name);
                } else if d.name.is_none() && d.is_blank() {
                    // `[Peer]` then `# alice` before any setting, as many guides
                    // write it.
                    d.name = comment_name(comment);
                }
            }
            comments.push(comment.to_owned());
            continue;
        }
        let line = trimmed.split('#').next().unwrap_or("").trim();
        if line.is_empty() {
            comments.clear();
            continue;
        }
        if line.starts_with('[') {
            let header = line.trim_matches(|c| c == '[' || c == ']').to_lowercase();
            if let Some(d) = draft.take() {
                server.peers.push(finish_peer(d)?);
            }
            section = match header.as_str() {
                "interface" => {
                    if seen_interface {
                        return Err(err(at(), "a second [Interface] section"));
                    }
                    seen_interface = true;
                    Section::Interface
                }
                "peer" => {
                    draft = Some(PeerDraft {
                        line: n,
                        name: comments.iter().rev().find_map(|c| comment_name(c)),
                        public_key: None,
                        preshared_key: None,
                        addresses: Vec::new(),
                        settled: false,
                    });
                    Section::Peer
                }
                _ => Section::Other,
            };
            comments.clear();
            continue;
        }
        comments.clear();
        let Some((key, value)) = line.split_once('=') else {
            return Err(err(at(), "expected `Key = Value`"));
        };
        let (key, value) = (key.trim().to_lowercase(), value.trim());
        match section {
            Section::Interface => match key.as_str() {
                "privatekey" => {
                    server.private_key = Some(
                        PrivateKey::from_base64(value)
                            .map_err(|_| err(at(), "PrivateKey is not a WireGuard key"))?,
                    );
                }
                "listenport" => {
                    server.listen_port = Some(
                        value
                            .parse()
                            .map_err(|_| err(at(), format!("ListenPort {value:?}")))?,
                    );
                }
                _ => {}
            },
            Section::Peer => {
                let d = draft.as_mut().expect("a [Peer] section has a draft");
                d.settled = true;
                match key.as_str() {
                    "publickey" => {
                        d.public_key = Some(
                            value
                                .parse()
                                .map_err(|_| err(at(), "PublicKey is not a WireGuard key"))?,
                        );
                    }
                    "presharedkey" => {
                        d.preshared_key = Some(
                            PresharedKey::from_base64(value)
                                .map_err(|_| err(at(), "PresharedKey is not a WireGuard key"))?,
                        );
                    }
                    "allowedips" => {
                        for part in value.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                            let net = part
                                .parse::<IpNet>()
                                .or_else(|_| part.parse::<IpAddr>().map(IpNet::from))
                                .map_err(|_| err(at(), format!("AllowedIPs {part:?}")))?;
                            d.addresses.push(net);
                        }
                    }
                    _ => {}
                }
            }
            Section::None => return Err(err(at(), "a setting outside any section")),
            Section::Other => {}
        }
    }
    if let Some(d) = draft.take() {
        server.peers.push(finish_peer(d)?);
    }
    if !seen_interface {
        return Err(err("file", "no [Interface] section: not a wg-quick config"));
    }
    Ok(server)
}

fn finish_peer(d: PeerDraft) -> Result<ImportPeer, LegacyError> {
    let at = format!("line {}", d.line);
    let public_key = d
        .public_key
        .ok_or_else(|| err(&at, "[Peer] without a PublicKey"))?;
    let mut ipv4 = None;
    let mut ipv6 = None;
    for net in &d.addresses {
        match net {
            IpNet::V4(n) if n.prefix_len() == 32 && ipv4.is_none() => ipv4 = Some(n.addr()),
            IpNet::V6(n) if n.prefix_len() == 128 && ipv6.is_none() => ipv6 = Some(n.addr()),
            other => {
                return Err(err(
                    &at,
                    format!(
                        "AllowedIPs {other} is not one client address: a site-to-site peer \
                         cannot be imported as a client"
                    ),
                ));
            }
        }
    }
    Ok(ImportPeer {
        source: at,
        name: d.name,
        public_key,
        preshared_key: d.preshared_key,
        private_key: None,
        ipv4,
        ipv6,
        enabled: true,
        expires_at: None,
    })
}

/// `Name = alice` / `Name: alice` inside a peer section.
fn name_setting(comment: &str) -> Option<String> {
    let rest = strip_ascii_prefix(comment, "name")?.trim_start();
    let rest = rest.strip_prefix('=').or_else(|| rest.strip_prefix(':'))?;
    clean_name(rest)
}

/// `text` after `prefix` (ASCII, any case); `None` when it does not start so. Never
/// cuts a character: `Дима` is 8 bytes, and byte 7 is inside its `а`.
fn strip_ascii_prefix<'a>(text: &'a str, prefix: &str) -> Option<&'a str> {
    let head = text.get(..prefix.len())?;
    head.eq_ignore_ascii_case(prefix)
        .then(|| &text[prefix.len()..])
}

/// A name from a comment line above `[Peer]`: `alice`, `Client alice`,
/// `Client: alice (uuid)`, `Name = alice`. `None` for an empty comment.
fn comment_name(comment: &str) -> Option<String> {
    if let Some(name) = name_setting(comment) {
        return Some(name);
    }
    if is_commented_setting(comment) {
        return None;
    }
    // PiVPN: `### begin alice ###` above a peer, `### end alice ###` below it.
    let mut text = comment.trim().trim_end_matches('#').trim_end();
    if let Some(name) = strip_ascii_prefix(text, "begin ") {
        return clean_name(name);
    }
    if strip_ascii_prefix(text, "end ").is_some() {
        return None;
    }
    for prefix in ["client:", "client ", "peer:", "peer "] {
        if let Some(rest) = strip_ascii_prefix(text, prefix) {
            text = rest;
            break;
        }
    }
    // wg-easy before 14: `Client: alice (3f2a...)`.
    if let Some(open) = text.rfind(" (")
        && text.ends_with(')')
    {
        text = &text[..open];
    }
    clean_name(text)
}

/// `#PublicKey = …`, `# PersistentKeepalive = 25`: a wg-quick setting turned off,
/// not a name.
fn is_commented_setting(comment: &str) -> bool {
    const KEYS: [&str; 33] = [
        "privatekey",
        "listenport",
        "address",
        "dns",
        "mtu",
        "table",
        "fwmark",
        "preup",
        "postup",
        "predown",
        "postdown",
        "saveconfig",
        "publickey",
        "presharedkey",
        "allowedips",
        "endpoint",
        "persistentkeepalive",
        // AmneziaWG.
        "jc",
        "jmin",
        "jmax",
        "s1",
        "s2",
        "s3",
        "s4",
        "h1",
        "h2",
        "h3",
        "h4",
        "i1",
        "i2",
        "i3",
        "i4",
        "i5",
    ];
    comment.split_once('=').is_some_and(|(key, _)| {
        let key = key.trim();
        KEYS.iter().any(|k| key.eq_ignore_ascii_case(k))
    })
}

fn clean_name(text: &str) -> Option<String> {
    let name: String = text.trim().chars().filter(|c| !c.is_control()).collect();
    (!name.is_empty()).then_some(name)
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EasyFile {
    server: EasyServer,
    #[serde(default)]
    clients: std::collections::BTreeMap<String, EasyClient>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EasyServer {
    private_key: String,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct EasyClient {
    #[serde(default)]
    id: Option<String>,
    #[serde(default)]
    name: Option<String>,
    address: String,
    #[serde(default)]
    private_key: Option<String>,
    public_key: String,
    #[serde(default)]
    pre_shared_key: Option<String>,
    #[serde(default)]
    expired_at: Option<String>,
    #[serde(default = "yes")]
    enabled: bool,
}

fn yes() -> bool {
    true
}

/// Parses wg-easy 14's `wg0.json` (see the module docs). `listen_port` is its
/// `WG_PORT` ([`WG_EASY_DEFAULT_PORT`] when unset).
pub fn parse_wg_easy(json: &str, listen_port: u16) -> Result<LegacyServer, LegacyError> {
    let file: EasyFile = serde_json::from_str(json).map_err(|e| {
        err(
            format!("line {}", e.line()),
            format!("not wg-easy's wg0.json ({})", json_error_kind(&e)),
        )
    })?;
    let private_key = PrivateKey::from_base64(&file.server.private_key)
        .map_err(|_| err("server", "privateKey is not a WireGuard key"))?;
    let mut peers = Vec::with_capacity(file.clients.len());
    for (key, c) in file.clients {
        let at = format!("client {}", c.id.as_deref().unwrap_or(&key));
        let public_key = c
            .public_key
            .parse::<PublicKey>()
            .map_err(|_| err(&at, "publicKey is not a WireGuard key"))?;
        let private_key = c
            .private_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(PrivateKey::from_base64)
            .transpose()
            .map_err(|_| err(&at, "privateKey is not a WireGuard key"))?;
        let preshared_key = c
            .pre_shared_key
            .as_deref()
            .filter(|k| !k.is_empty())
            .map(PresharedKey::from_base64)
            .transpose()
            .map_err(|_| err(&at, "preSharedKey is not a WireGuard key"))?;
        let ipv4 = c
            .address
            .split('/')
            .next()
            .unwrap_or("")
            .parse::<Ipv4Addr>()
            .map_err(|_| err(&at, format!("address {:?} is not IPv4", c.address)))?;
        let expires_at = c
            .expired_at
            .as_deref()
            .filter(|t| !t.is_empty())
            .map(|t| parse_time(t).ok_or_else(|| err(&at, format!("expiredAt {t:?}"))))
            .transpose()?;
        peers.push(ImportPeer {
            source: at,
            name: c.name.as_deref().and_then(clean_name),
            public_key,
            preshared_key,
            private_key,
            ipv4: Some(ipv4),
            ipv6: None::<Ipv6Addr>,
            enabled: c.enabled,
            expires_at,
        });
    }
    // In address order, as an admin reads them.
    peers.sort_by_key(|p| p.ipv4);
    Ok(LegacyServer {
        source: "wg-easy",
        private_key: Some(private_key),
        listen_port: Some(listen_port),
        peers,
    })
}

fn json_error_kind(e: &serde_json::Error) -> &'static str {
    match e.classify() {
        serde_json::error::Category::Io => "unreadable",
        serde_json::error::Category::Syntax => "not JSON",
        serde_json::error::Category::Data => "a field is missing or of the wrong type",
        serde_json::error::Category::Eof => "it ends too early",
    }
}

/// An RFC 3339 time (`2025-01-31T00:00:00.000Z`) or a date (`2025-01-31`).
fn parse_time(text: &str) -> Option<Timestamp> {
    use ::time::format_description::well_known::Rfc3339;
    if let Ok(t) = ::time::OffsetDateTime::parse(text, &Rfc3339) {
        return Some(Timestamp(t.unix_timestamp()));
    }
    let format = ::time::macros::format_description!("[year]-[month]-[day]");
    ::time::Date::parse(text, &format)
        .ok()
        .map(|d| Timestamp(d.midnight().assume_utc().unix_timestamp()))
}

/// The server's private key from `--adopt-key FILE`: a wg-quick config's
/// `[Interface] PrivateKey` (with its `ListenPort`), wg-easy's `wg0.json`, or a file
/// with the key alone (as `wg genkey` writes it).
pub fn server_key_file(text: &str) -> Result<(PrivateKey, Option<u16>), LegacyError> {
    let trimmed = text.trim();
    if trimmed.starts_with('{') {
        let server = parse_wg_easy(text, WG_EASY_DEFAULT_PORT)?;
        let key = server.private_key.expect("wg-easy files have a key");
        return Ok((key, None));
    }
    if trimmed.lines().any(|l| l.trim().starts_with('[')) {
        let server = parse_wg_quick(text)?;
        let key = server
            .private_key
            .ok_or_else(|| err("file", "no PrivateKey in [Interface]"))?;
        return Ok((key, server.listen_port));
    }
    PrivateKey::from_base64(trimmed)
        .map(|k| (k, None))
        .map_err(|_| err("file", "neither a WireGuard config nor a private key"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::keys::KeyPair;

    #[test]
    fn wg_quick_names_from_comments_and_keeps_addresses() {
        let server = KeyPair::generate();
        let (a, b, c, d, e) = (
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
            KeyPair::generate(),
        );
        let (f, g) = (KeyPair::generate(), KeyPair::generate());
        let psk = PresharedKey::generate();
        let text = format!(
            "[Interface]\nAddress = 10.8.0.1/24\nListenPort = 51821\nPrivateKey = {}\n\
             PostUp = iptables -A FORWARD -i %i -j ACCEPT # NAT\n\n\
             # alice\n[Peer]\nPublicKey = {}\nPresharedKey = {}\nAllowedIPs = 10.8.0.7/32\n\n\
             ### Client bob\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.8.0.3/32, fd42::3/128\n\n\
             [Peer]\n# Name = carol\nPublicKey = {} # her phone\nAllowedIPs = 10.8.0.4/32\n\n\
             [Peer]\nPublicKey = {}\n# moved from the old box\nAllowedIPs = 10.8.0.5\n\n\
             [Peer]\n# Дима\n# his laptop\nPublicKey = {}\nAllowedIPs = 10.8.0.6/32\n\n\
             [Peer]\n#PresharedKey = {}\n# PersistentKeepalive = 25\nPublicKey = {}\nAllowedIPs = 10.8.0.8/32\n\n\
             [Peer]\nEndpoint = 192.0.2.1:51820\n# not a name\nPublicKey = {}\nAllowedIPs = 10.8.0.9/32\n",
            server.private.expose_base64(),
            a.public,
            psk.expose_base64(),
            b.public,
            c.public,
            d.public,
            e.public,
            psk.expose_base64(),
            f.public,
            g.public,
        );
        let parsed = parse_wg_quick(&text).unwrap();
        assert_eq!(parsed.listen_port, Some(51821));
        assert_eq!(
            parsed.private_key.as_ref().map(PrivateKey::public_key),
            Some(server.public)
        );
        let names: Vec<_> = parsed.peers.iter().map(|p| p.name.clone()).collect();
        assert_eq!(
            names,
            [
                Some("alice".into()),
                Some("bob".into()),
                Some("carol".into()),
                None,
                Some("Дима".into()),
                // Settings turned off are not names, nor a comment after any
                // setting.
                None,
                None,
            ]
        );
        assert_eq!(parsed.peers[0].ipv4, Some("10.8.0.7".parse().unwrap()));
        assert_eq!(parsed.peers[0].preshared_key, Some(psk.clone()));
        assert_eq!(parsed.peers[1].ipv6, Some("fd42::3".parse().unwrap()));
        assert_eq!(parsed.peers[1].preshared_key, None);
        assert_eq!(parsed.peers[2].public_key, c.public);
        assert_eq!(parsed.peers[3].ipv4, Some("10.8.0.5".parse().unwrap()));
        assert_eq!(parsed.peers[3].source, "line 23");
        let request = parsed.request(true);
        assert_eq!(request.server_public_key, Some(server.public));
        assert!(!format!("{request:?}").contains(&psk.expose_base64()));

        let (key, port) = server_key_file(&text).unwrap();
        assert_eq!((key.public_key(), port), (server.public, Some(51821)));
        let (key, port) = server_key_file(&server.private.expose_base64()).unwrap();
        assert_eq!((key.public_key(), port), (server.public, None));
    }

    #[test]
    fn wg_quick_errors_name_the_line_and_never_the_key() {
        let secret = "c2VjcmV0IGtleSBvZiAzMiBieXRlcyB3aGljaCBpcyBs";
        for (text, at) in [
            ("[Interface]\nPrivateKey = nope\n", "line 2"),
            ("[Interface]\n[Peer]\nAllowedIPs = 10.0.0.2/32\n", "line 2"),
            (
                "[Interface]\n[Peer]\nPublicKey = AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\nAllowedIPs = 10.1.0.0/24\n",
                "line 2",
            ),
            ("ListenPort = 1\n", "line 1"),
            ("[Peer]\n", "line 1"),
            ("# only a comment\n", "file"),
        ] {
            let e = parse_wg_quick(text).unwrap_err();
            assert_eq!(e.at, at, "{text}: {e}");
        }
        let e = parse_wg_quick(&format!("[Interface]\nPrivateKey = {secret}x\n")).unwrap_err();
        assert!(!e.to_string().contains(secret), "{e}");
    }

    /// PiVPN marks each peer with `### begin NAME ###` and `### end NAME ###`.
    #[test]
    fn pivpn_peers_are_named_from_their_begin_lines() {
        let (a, b) = (KeyPair::generate(), KeyPair::generate());
        let text = format!(
            "[Interface]\nPrivateKey = {}\nAddress = 10.6.0.1/24\nListenPort = 51820\n\
             ### begin alice ###\n[Peer]\nPublicKey = {}\nAllowedIPs = 10.6.0.2/32\n\
             ### end alice ###\n### begin bob ###\n[Peer]\nPublicKey = {}\n\
             AllowedIPs = 10.6.0.3/32\n### end bob ###\n",
            KeyPair::generate().private.expose_base64(),
            a.public,
            b.public
        );
        let parsed = parse_wg_quick(&text).unwrap();
        let names: Vec<_> = parsed.peers.iter().map(|p| p.name.as_deref()).collect();
        assert_eq!(names, [Some("alice"), Some("bob")]);
    }

    #[test]
    fn names_from_the_usual_comment_styles() {
        for (comment, name) in [
            ("alice", Some("alice")),
            ("Client alice", Some("alice")),
            (
                "Client: alice (0b1e7a3c-6a6f-4a4e-9d7e-1f2f3a4b5c6d)",
                Some("alice"),
            ),
            ("Name = Alice Smith", Some("Alice Smith")),
            ("name: bob", Some("bob")),
            ("", None),
            // Letters of more than one byte where an ASCII prefix would end: these
            // panicked (a slice inside `а`), crashing `vpnctl import`.
            ("Дима", Some("Дима")),
            ("Айфон мамы", Some("Айфон мамы")),
            ("Client Дима", Some("Дима")),
            ("Name = Дима", Some("Дима")),
            ("NAME: Ⱥnna", Some("Ⱥnna")),
            ("İName = x", Some("İName = x")),
            ("PublicKey = AAAA", None),
            ("persistentkeepalive=25", None),
            ("Endpoint = 192.0.2.1:51820", None),
            ("Jc = 4", None),
            ("h1=1234567", None),
            // PiVPN.
            ("begin alice ###", Some("alice")),
            ("begin Дима ###", Some("Дима")),
            ("end alice ###", None),
            ("Client alice #", Some("alice")),
        ] {
            assert_eq!(comment_name(comment).as_deref(), name, "{comment:?}");
        }
    }

    proptest::proptest! {
        /// Any comment text is a name or none, never a panic.
        #[test]
        fn any_comment_names_without_panicking(comment in "\\PC{0,12}") {
            let _ = comment_name(&comment);
            let text = format!("[Interface]\n[Peer]\n# {comment}\nPublicKey = x\n");
            let _ = parse_wg_quick(&text);
        }
    }
}
