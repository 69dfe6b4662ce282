//! Rendering: the QR code decodes back to the exact config text.

mod support;

use support::{fixture, node, user};
use vpnctl_core::IssuePeer;

fn config() -> vpnctl_core::ClientConfig {
    let f = fixture();
    let n = node(&f.vpn, "nl-ams-2", "10.8.0.0/16");
    let u = user(&f.vpn, "Анна", 3);
    f.vpn
        .issue_peer(IssuePeer {
            user: u.id,
            node: n.id,
            device: "iPhone Анны".into(),
            public_key: None,
        })
        .unwrap()
        .config
        .unwrap()
}

#[test]
fn qr_png_decodes_to_the_exact_config() {
    let config = config();
    assert!(
        vpnctl_core::render::is_valid_tunnel_name(config.tunnel_name()),
        "{}",
        config.tunnel_name()
    );
    let png = config.qr_png(512).unwrap();
    assert_eq!(&png[1..4], b"PNG");
    let image = image::load_from_memory(&png).unwrap().to_luma8();
    assert!(image.width() >= 512);
    let mut prepared = rqrr::PreparedImage::prepare(image);
    let grids = prepared.detect_grids();
    assert_eq!(grids.len(), 1);
    let (_, content) = grids[0].decode().unwrap();
    assert_eq!(content, config.expose_text());
}

#[test]
fn svg_and_terminal_renderings_are_complete() {
    let config = config();
    let svg = config.qr_svg().unwrap();
    assert!(svg.starts_with("<?xml") && svg.contains("<svg") && svg.trim_end().ends_with("</svg>"));
    let text = config.qr_terminal().unwrap();
    let lines: Vec<&str> = text.lines().collect();
    // Half blocks: two module rows per line, a square code with its quiet zone.
    let width = lines[0].chars().count();
    assert!(width > 60, "{width}");
    assert!(lines.iter().all(|l| l.chars().count() == width));
    assert_eq!(lines.len(), width.div_ceil(2));
    assert!(text.contains('█') || text.contains('▀') || text.contains('▄'));
}
