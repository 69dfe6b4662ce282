//! Client configs in the wg-quick format that the official WireGuard apps (Windows,
//! macOS, iOS, Android, Linux `wg-quick`) import, their file names, and their QR codes.
//!
//! For an AmneziaWG node the same format carries the node's AWG keys (`Jc`, `Jmin`,
//! `Jmax`, `S1`…, `H1`…, `I1`…) in `[Interface]`, as the AmneziaWG and AmneziaVPN
//! apps and `awg-quick` read it; the tunnel (and file) name starts with `awg-`. A
//! WireGuard node's config never has them: the official apps refuse unknown keys.

use std::fmt::{self, Write as _};

use ipnet::IpNet;
use qrcode::render::{svg, unicode};
use qrcode::{EcLevel, QrCode};
use zeroize::Zeroizing;

use crate::keys::{PresharedKey, PrivateKey, PublicKey};
use crate::model::{Node, Peer};

/// Longest tunnel name the apps accept: Linux interface names are at most 15 bytes.
pub const MAX_TUNNEL_NAME: usize = 15;

/// A rendered client config. Holds a private key, so `Debug` shows only the name.
#[derive(Clone)]
pub struct ClientConfig {
    tunnel_name: String,
    text: Zeroizing<String>,
}

impl fmt::Debug for ClientConfig {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("ClientConfig")
            .field("tunnel_name", &self.tunnel_name)
            .field("text", &"***")
            .finish()
    }
}

/// Most bytes a QR code holds (version 40, level L, byte mode): a config longer than
/// this cannot be shown as a QR code.
pub const QR_MAX_BYTES: usize = 2953;

/// Checks that every config `node` can issue fits a QR code: renders the longest one
/// it can (widest addresses) and measures it. Returns the length on failure.
pub fn check_qr_fits(node: &Node) -> Result<(), usize> {
    use std::net::{Ipv4Addr, Ipv6Addr};
    let key = [0xff; 32];
    let peer = Peer {
        id: crate::model::PeerId(u64::MAX),
        user: crate::model::UserId(u64::MAX),
        node: node.id,
        device: String::new(),
        public_key: PublicKey::from_bytes(key),
        has_private_key: true,
        ipv4: Ipv4Addr::new(255, 255, 255, 255),
        ipv6: node.ipv6_pool.map(|_| {
            Ipv6Addr::new(
                0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff, 0xffff,
            )
        }),
        created_at: crate::time::Timestamp(0),
        rotated_at: None,
    };
    let config = ClientConfig::render(&ConfigInput {
        node,
        node_public_key: node
            .public_key
            .as_ref()
            .unwrap_or(&PublicKey::from_bytes(key)),
        peer: &peer,
        private_key: &PrivateKey::from_bytes(key),
        preshared_key: &PresharedKey::from_bytes(key),
    });
    let len = config.expose_text().len();
    if len > QR_MAX_BYTES { Err(len) } else { Ok(()) }
}

/// Rendering or encoding failed.
#[derive(Debug, thiserror::Error)]
pub enum RenderError {
    #[error("config too large for a QR code: {0}")]
    Qr(#[from] qrcode::types::QrError),
    #[error("PNG encoding: {0}")]
    Png(#[from] image::ImageError),
}

/// What goes into a client config.
#[derive(Debug)]
pub struct ConfigInput<'a> {
    pub node: &'a Node,
    pub node_public_key: &'a PublicKey,
    pub peer: &'a Peer,
    pub private_key: &'a PrivateKey,
    pub preshared_key: &'a PresharedKey,
}

impl ClientConfig {
    pub fn render(input: &ConfigInput<'_>) -> Self {
        let ConfigInput {
            node,
            node_public_key,
            peer,
            private_key,
            preshared_key,
        } = input;
        let mut text = Zeroizing::new(String::with_capacity(400));
        let t = &mut *text;
        // Writing to a String cannot fail.
        let _ = writeln!(t, "[Interface]");
        let _ = writeln!(t, "PrivateKey = {}", private_key.expose_base64().as_str());
        let mut address = format!("{}/32", peer.ipv4);
        if let Some(v6) = peer.ipv6 {
            let _ = write!(address, ", {v6}/128");
        }
        let _ = writeln!(t, "Address = {address}");
        if !node.dns.is_empty() {
            let dns: Vec<String> = node.dns.iter().map(ToString::to_string).collect();
            let _ = writeln!(t, "DNS = {}", dns.join(", "));
        }
        if node.mtu > 0 {
            let _ = writeln!(t, "MTU = {}", node.mtu);
        }
        if let Some(awg) = node.transport.awg() {
            for (key, value) in awg.config_lines() {
                let _ = writeln!(t, "{key} = {value}");
            }
        }
        let _ = writeln!(t);
        let _ = writeln!(t, "[Peer]");
        let _ = writeln!(t, "PublicKey = {node_public_key}");
        let _ = writeln!(
            t,
            "PresharedKey = {}",
            preshared_key.expose_base64().as_str()
        );
        let _ = writeln!(t, "Endpoint = {}", node.endpoint);
        let allowed: Vec<String> = client_allowed_ips(node)
            .iter()
            .map(ToString::to_string)
            .collect();
        let _ = writeln!(t, "AllowedIPs = {}", allowed.join(", "));
        if node.persistent_keepalive > 0 {
            let _ = writeln!(t, "PersistentKeepalive = {}", node.persistent_keepalive);
        }
        Self {
            tunnel_name: transport_tunnel_name(node.transport.kind(), &node.name, &peer.device),
            text,
        }
    }

    /// The tunnel name the apps show; also the file stem.
    pub fn tunnel_name(&self) -> &str {
        &self.tunnel_name
    }

    /// `<tunnel name>.conf`: the apps name the imported tunnel after the file.
    pub fn file_name(&self) -> String {
        format!("{}.conf", self.tunnel_name)
    }

    /// The config text. Contains the private key: never log it.
    pub fn expose_text(&self) -> &str {
        &self.text
    }

    /// Level L, as `qrencode` (and WireGuard's own docs) use for configs: the code is
    /// shown on a screen, not printed, and a lower version is easier for a phone
    /// camera to lock onto (and quicker to encode).
    fn qr(&self) -> Result<QrCode, RenderError> {
        Ok(QrCode::with_error_correction_level(
            self.text.as_bytes(),
            EcLevel::L,
        )?)
    }

    /// The QR code as a PNG, at least `min_pixels` wide, black on white with a quiet
    /// zone, as the apps' scanners expect.
    pub fn qr_png(&self, min_pixels: u32) -> Result<Vec<u8>, RenderError> {
        let image = self
            .qr()?
            .render::<image::Luma<u8>>()
            .min_dimensions(min_pixels, min_pixels)
            .build();
        let mut png = Vec::new();
        image::DynamicImage::ImageLuma8(image)
            .write_to(&mut std::io::Cursor::new(&mut png), image::ImageFormat::Png)?;
        Ok(png)
    }

    pub fn qr_svg(&self) -> Result<String, RenderError> {
        Ok(self
            .qr()?
            .render::<svg::Color<'_>>()
            .min_dimensions(256, 256)
            .build())
    }

    /// Half-block text for a terminal with a dark background (light modules drawn).
    pub fn qr_terminal(&self) -> Result<String, RenderError> {
        qr_terminal(&self.text)
    }
}

/// Any text (a config, an invite link) as a QR code of level L in half-block text
/// for a terminal with a dark background: light modules are drawn, dark ones left
/// blank, with the standard quiet zone of 4 modules (two text lines above and below).
pub fn qr_terminal(text: &str) -> Result<String, RenderError> {
    Ok(
        QrCode::with_error_correction_level(text.as_bytes(), EcLevel::L)?
            .render::<unicode::Dense1x2>()
            .dark_color(unicode::Dense1x2::Light)
            .light_color(unicode::Dense1x2::Dark)
            .build(),
    )
}

/// What a client routes through the tunnel: the node's setting (split tunnel), or
/// everything — IPv4 and IPv6 alike. IPv6 goes into the tunnel even when the node has
/// no IPv6 pool: the node then drops it (its source is no address of the peer), so a
/// dual-stack phone cannot leak IPv6 around the tunnel, and the official Windows
/// app's kill switch engages (it needs both default routes).
pub fn client_allowed_ips(node: &Node) -> Vec<IpNet> {
    if !node.client_allowed_ips.is_empty() {
        return node.client_allowed_ips.clone();
    }
    vec![
        "0.0.0.0/0".parse().expect("valid"),
        "::/0".parse().expect("valid"),
    ]
}

/// Cyrillic letters in Latin (Russian, Ukrainian and Belarusian, as passports
/// spell them), so that "Айфон мамы" names its tunnel `fra-1-Aifon-mam` (15
/// characters at most) instead of vanishing into the node's name (and two such
/// devices into one tunnel).
fn latin(c: char) -> Option<&'static str> {
    let lower = c.to_lowercase().next().unwrap_or(c);
    Some(match lower {
        'а' => "a",
        'б' => "b",
        'в' => "v",
        'г' | 'ґ' => "g",
        'д' => "d",
        'е' | 'є' | 'ё' | 'э' => "e",
        'ж' => "zh",
        'з' => "z",
        'и' | 'і' | 'ї' | 'й' => "i",
        'к' => "k",
        'л' => "l",
        'м' => "m",
        'н' => "n",
        'о' => "o",
        'п' => "p",
        'р' => "r",
        'с' => "s",
        'т' => "t",
        'у' | 'ў' => "u",
        'ф' => "f",
        'х' => "kh",
        'ц' => "ts",
        'ч' => "ch",
        'ш' => "sh",
        'щ' => "shch",
        'ъ' | 'ь' => "",
        'ы' => "y",
        'ю' => "iu",
        'я' => "ia",
        _ => return None,
    })
}

/// A tunnel name every official app accepts: 1..=15 of `[a-zA-Z0-9_=+.-]`, not a
/// Windows reserved device name. Built from the node and device names (Cyrillic
/// spelled in Latin letters).
pub fn tunnel_name(node: &str, device: &str) -> String {
    fn clean(s: &str) -> String {
        let mut out = String::with_capacity(s.len());
        for c in s.chars() {
            if c.is_ascii_alphanumeric() || "_=+.-".contains(c) {
                out.push(c);
            } else if let Some(l) = latin(c) {
                let mut letters = l.chars();
                if let Some(first) = letters.next() {
                    if c.is_uppercase() {
                        out.push(first.to_ascii_uppercase());
                    } else {
                        out.push(first);
                    }
                    out.extend(letters);
                }
            } else {
                out.push('-');
            }
        }
        out.split('-')
            .filter(|p| !p.is_empty())
            .collect::<Vec<_>>()
            .join("-")
    }
    let node = clean(node);
    let device = clean(device);
    let mut name = match (node.is_empty(), device.is_empty()) {
        (true, true) => "vpn".to_owned(),
        (false, true) => node,
        (true, false) => device,
        (false, false) => {
            // Keep the device part readable: give the node at most what is left.
            let room = MAX_TUNNEL_NAME.saturating_sub(device.len().min(9) + 1);
            let node: String = node.chars().take(room.max(1)).collect();
            // A cut at a dash would read "de-fra--device1".
            let node = node.trim_end_matches(['-', '.']);
            if node.is_empty() {
                device
            } else {
                format!("{node}-{device}")
            }
        }
    };
    name.truncate(MAX_TUNNEL_NAME);
    while name.ends_with(['-', '.']) {
        name.pop();
    }
    let stem = name.split('.').next().unwrap_or("").to_ascii_uppercase();
    let reserved = matches!(stem.as_str(), "CON" | "PRN" | "AUX" | "NUL")
        || (stem.len() == 4
            && (stem.starts_with("COM") || stem.starts_with("LPT"))
            && stem.as_bytes()[3].is_ascii_digit());
    if reserved || name.is_empty() {
        name = format!("vpn-{name}");
        name.truncate(MAX_TUNNEL_NAME);
    }
    name
}

/// The tunnel name for a node of this transport: AmneziaWG tunnels start with
/// `awg-`, so that a file says which app opens it.
pub fn transport_tunnel_name(
    transport: crate::transport::TransportKind,
    node: &str,
    device: &str,
) -> String {
    if transport == crate::transport::TransportKind::Amneziawg {
        let name = tunnel_name(&format!("awg-{node}"), device);
        if name.starts_with("awg-") {
            return name;
        }
        let mut name = format!("awg-{name}");
        name.truncate(MAX_TUNNEL_NAME);
        return name.trim_end_matches(['-', '.']).to_owned();
    }
    tunnel_name(node, device)
}

/// Whether a rendered config needs an AmneziaWG app: it carries AWG keys (the
/// official WireGuard apps refuse exactly those).
pub fn needs_amneziawg(config: &str) -> bool {
    config
        .lines()
        .take_while(|l| l.trim() != "[Peer]")
        .any(|l| l.split('=').next().is_some_and(|k| k.trim() == "Jc"))
}

/// Whether `name` is a tunnel name the apps accept.
pub fn is_valid_tunnel_name(name: &str) -> bool {
    (1..=MAX_TUNNEL_NAME).contains(&name.len())
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || "_=+.-".contains(c))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn tunnel_names_fit_the_apps() {
        assert_eq!(tunnel_name("de-fra-1", "phone"), "de-fra-1-phone");
        assert_eq!(
            tunnel_name("frankfurt-main-1", "Mom's iPhone 15"),
            "frank-Mom-s-iPh"
        );
        assert_eq!(tunnel_name("", "телефон"), "telefon");
        assert_eq!(tunnel_name("fra-1", "Айфон"), "fra-1-Aifon");
        assert_eq!(tunnel_name("fra-1", "Айфон мамы"), "fra-1-Aifon-mam");
        assert_eq!(tunnel_name("msk", "Ноутбук Юли"), "msk-Noutbuk-Iul");
        assert_eq!(tunnel_name("", "ъ"), "vpn");
        assert_eq!(tunnel_name("", "日本"), "vpn");
        assert_eq!(tunnel_name("con", ""), "vpn-con");
        assert_eq!(tunnel_name("nl", "laptop."), "nl-laptop");
        assert_eq!(
            tunnel_name("de-fra-2", "device1"),
            "de-fra-device1",
            "no double dash"
        );
    }

    proptest! {
        #[test]
        fn any_names_give_a_valid_tunnel_name(node in ".{0,40}", device in ".{0,40}") {
            let name = tunnel_name(&node, &device);
            prop_assert!(is_valid_tunnel_name(&name), "{name:?}");
        }
    }
}
