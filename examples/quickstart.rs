//! The smallest embedding of the vpnctl SDK: a store in a temp dir, one node, one
//! user, one device — and the config and QR code that the official WireGuard app
//! imports.
//!
//!     cargo run -p vpnctl-examples --example quickstart
//!
//! The store is thrown away at exit, so printing the config (which holds the
//! device's private key) is what the example is for; a real service shows it only
//! to its owner.

use std::io::Write;

use vpnctl_core::{IssuePeer, KeyPair, NewNode, NewUser, Vpnctl};

fn main() -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let vpn = Vpnctl::open_dir(dir.path())?;

    // A node: where clients connect, and the pools their addresses come from. The
    // node daemon reports its public key when it enrolls; here we make one up.
    let mut node = NewNode::new(
        "de-fra-1",
        "de-fra",
        "vpn.example.com:51820".parse()?,
        "10.8.0.0/16".parse()?,
    );
    node.ipv6_pool = Some("fd00:8::/64".parse()?);
    node.public_key = Some(KeyPair::generate().public);
    let node = vpn.register_node(node)?;

    let user = vpn.create_user(NewUser {
        name: "alice".into(),
        until: Some(vpn.now().plus_days(30)),
        ..NewUser::default()
    })?;

    let issued = vpn.issue_peer(IssuePeer {
        user: user.id,
        node: node.id,
        device: "phone".into(),
        public_key: None,
    })?;
    let config = issued.config.expect("the SDK generated the key pair");

    let mut out = std::io::stdout().lock();
    writeln!(
        out,
        "node {} ({}), user {} until {}, device {} at {}\n",
        node.name,
        node.region.code,
        user.name,
        user.until
            .map_or_else(|| "forever".into(), vpnctl_core::Timestamp::to_date),
        issued.peer.device,
        issued.peer.ipv4,
    )?;
    writeln!(out, "# {}\n{}", config.file_name(), config.expose_text())?;
    writeln!(out, "{}", config.qr_terminal()?)?;
    writeln!(
        out,
        "desired state of {}: revision {}, {} peer(s)",
        node.name,
        vpn.node_revision(node.id)?,
        vpn.node_desired(node.id)?.peers.len()
    )?;
    Ok(())
}
