//! What the scale measurements share (feature `control-plane`): a large store built
//! through the SDK's bulk paths, and a loopback relay that counts the bytes a client
//! receives.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::{TcpListener, TcpStream};
use vpnctl_api::import::{ImportPeer, ImportRequest};
use vpnctl_core::{IssuePeer, KeyPair, NewNode, NodeId, UserId, Vpnctl};

/// `nodes` nodes with `users / nodes` users each, every user with one imported and
/// one issued peer: an import per node, then one bulk issue per node. Documentation
/// endpoints (192.0.2.0/24); pools 10.N.0.0/16.
pub fn build_store(vpn: &Vpnctl, nodes: u32, users: u32) -> (Vec<NodeId>, Vec<UserId>) {
    let per_node = users / nodes;
    let mut node_ids = Vec::new();
    let mut all_users = Vec::new();
    for n in 0..nodes {
        let octet = u8::try_from(n + 1).expect("at most 254 nodes");
        let mut new = NewNode::new(
            &format!("node{n:03}"),
            &format!("region{}", n % 10),
            format!("192.0.2.{octet}:51820").parse().expect("endpoint"),
            format!("10.{octet}.0.0/16").parse().expect("pool"),
        );
        new.public_key = Some(KeyPair::generate().public);
        let node = vpn.register_node(new).expect("register node");
        let peers = (0..per_node)
            .map(|i| ImportPeer {
                source: format!("line {i}"),
                name: Some(format!("u{n:03}-{i:05}")),
                public_key: KeyPair::generate().public,
                preshared_key: None,
                private_key: None,
                ipv4: Some(Ipv4Addr::from(
                    u32::from(Ipv4Addr::new(10, octet, 0, 2)) + i,
                )),
                ipv6: None,
                enabled: true,
                expires_at: None,
            })
            .collect();
        let report = vpn
            .import_peers(
                node.id,
                &ImportRequest {
                    source: "scale".into(),
                    server_public_key: None,
                    listen_port: None,
                    peers,
                    dry_run: false,
                },
            )
            .expect("import");
        assert!(report.applied, "{:?}", report.conflicts.first());
        let users: Vec<UserId> = report.peers.iter().filter_map(|p| p.user).collect();
        vpn.issue_peers(
            users
                .iter()
                .map(|u| IssuePeer {
                    user: *u,
                    node: node.id,
                    device: "laptop".into(),
                    public_key: Some(KeyPair::generate().public),
                })
                .collect(),
        )
        .expect("bulk issue");
        node_ids.push(node.id);
        all_users.extend(users);
    }
    (node_ids, all_users)
}

/// A TCP relay on 127.0.0.1 in front of `target` that counts the bytes sent back to
/// its clients: point a client at [`CountingRelay::url`] to measure what it reads.
#[derive(Debug)]
pub struct CountingRelay {
    pub addr: SocketAddr,
    received: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl CountingRelay {
    pub async fn start(target: SocketAddr) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind relay");
        let addr = listener.local_addr().expect("relay address");
        let received = Arc::new(AtomicU64::new(0));
        let counter = Arc::clone(&received);
        let task = tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                let counter = Arc::clone(&counter);
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(target).await else {
                        return;
                    };
                    relay(client, server, &counter).await;
                });
            }
        });
        Self {
            addr,
            received,
            task,
        }
    }

    /// `http://ADDR` of the relay.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Bytes the relay's clients have received so far.
    pub fn received(&self) -> u64 {
        self.received.load(Ordering::Relaxed)
    }
}

impl Drop for CountingRelay {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn relay(client: TcpStream, server: TcpStream, counter: &AtomicU64) {
    let (mut client_read, mut client_write) = client.into_split();
    let (mut server_read, mut server_write) = server.into_split();
    let up = async {
        let _ = tokio::io::copy(&mut client_read, &mut server_write).await;
        let _ = server_write.shutdown().await;
    };
    let down = async {
        let mut buf = vec![0u8; 64 * 1024];
        loop {
            match server_read.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                    if client_write.write_all(&buf[..n]).await.is_err() {
                        break;
                    }
                }
            }
        }
        let _ = client_write.shutdown().await;
    };
    tokio::join!(up, down);
}
