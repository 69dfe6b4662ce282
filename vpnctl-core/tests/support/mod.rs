//! Shared fixtures: a real redb file in a temp dir, a controllable clock, fixed pools.
#![allow(dead_code)]

use std::sync::Arc;

use vpnctl_core::{
    KeyPair, ManualClock, NewNode, NewUser, Node, Policy, Timestamp, User, Vault, Vpnctl,
};

pub const T0: Timestamp = Timestamp(1_795_612_245); // 2026-11-25T13:10:45Z

pub struct Fixture {
    pub dir: tempfile::TempDir,
    pub vpn: Vpnctl,
    pub clock: ManualClock,
}

pub fn fixture() -> Fixture {
    fixture_with(Policy::default())
}

pub fn fixture_with(policy: Policy) -> Fixture {
    let dir = tempfile::tempdir().expect("temp dir");
    let clock = ManualClock::new(T0);
    let vault = Vault::open_or_create(&dir.path().join("vault.key")).expect("vault");
    let vpn = Vpnctl::open(
        &dir.path().join("vpnctl.redb"),
        vault,
        Arc::new(clock.clone()),
        policy,
    )
    .expect("open store");
    Fixture { dir, vpn, clock }
}

impl Fixture {
    /// Closes the store, lets `secs` pass (a control plane stopped for a backup or
    /// an upgrade) and opens it again with the default policy, as a restarted
    /// control plane does.
    #[must_use]
    pub fn restart_after(self, secs: i64) -> Self {
        let Self { dir, vpn, clock } = self;
        // First closed: redb's file lock allows one handle.
        drop(vpn);
        clock.advance(secs);
        let vault = Vault::open_or_create(&dir.path().join("vault.key")).expect("vault");
        let vpn = Vpnctl::open(
            &dir.path().join("vpnctl.redb"),
            vault,
            Arc::new(clock.clone()),
            Policy::default(),
        )
        .expect("open store");
        Self { dir, vpn, clock }
    }
}

/// An enrolled node with the given IPv4 pool and an IPv6 pool.
pub fn node(vpn: &Vpnctl, name: &str, pool: &str) -> Node {
    let mut new = NewNode::new(
        name,
        "de-fra",
        "203.0.113.10:51820".parse().unwrap(),
        pool.parse().unwrap(),
    );
    new.ipv6_pool = Some("fd00:8::/64".parse().unwrap());
    new.public_key = Some(KeyPair::generate().public);
    vpn.register_node(new).expect("register node")
}

pub fn user(vpn: &Vpnctl, name: &str, device_limit: u32) -> User {
    vpn.create_user(NewUser {
        name: name.into(),
        device_limit: Some(device_limit),
        until: Some(T0.plus_days(30)),
        ..Default::default()
    })
    .expect("create user")
}
