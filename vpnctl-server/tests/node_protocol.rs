//! The node protocol's long-poll and TLS pinning, over real loopback connections.

use std::time::{Duration, Instant};

use vpnctl_api::body::{CreateUser, IssuePeerRequest};
use vpnctl_client::{ApiClient, ClientError, Fingerprint};
use vpnctl_core::wire::{DesiredUpdate, PeerDelta};
use vpnctl_server::{Server, ServerConfig, ServerError};
use vpnctl_testbed::control_plane::{ControlPlane, EnrolledNode};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_poll_answers_when_the_node_changes() {
    let mut srv = ControlPlane::start().await;
    let admin = srv.admin();
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    let current = node_api
        .desired(node.id, 0, Duration::ZERO)
        .await
        .unwrap()
        .revision();

    let user = admin
        .create_user(&CreateUser {
            name: "alice".into(),
            ..CreateUser::default()
        })
        .await
        .unwrap();
    let poll = {
        let node_api = node_api.clone();
        tokio::spawn(async move {
            let update = node_api
                .desired(node.id, current, Duration::from_secs(20))
                .await
                .unwrap();
            (update, Instant::now())
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!poll.is_finished(), "the poll waits while nothing changes");
    let issued_at = Instant::now();
    let issued = admin
        .issue_peer(&IssuePeerRequest {
            user: user.id,
            node: node.id,
            device: "phone".into(),
            public_key: None,
        })
        .await
        .unwrap();
    let committed_at = Instant::now();
    let (update, answered_at) = poll.await.unwrap();
    let DesiredUpdate::Delta { from, to, changes } = update else {
        panic!("expected a delta, got {update:?}");
    };
    assert_eq!(from, current);
    assert!(to > current);
    assert!(
        matches!(&changes[..], [PeerDelta::Upsert(spec)] if spec.public_key == issued.peer.public_key)
    );
    let latency = answered_at.saturating_duration_since(committed_at);
    eprintln!(
        "long-poll answered {:?} after the issue call returned ({:?} after it started)",
        latency,
        answered_at.saturating_duration_since(issued_at)
    );
    assert!(
        latency < Duration::from_millis(100),
        "answered {latency:?} after the change"
    );

    // No change: UpToDate after `wait`.
    let started = Instant::now();
    let update = node_api
        .desired(node.id, to, Duration::from_secs(1))
        .await
        .unwrap();
    assert_eq!(update, DesiredUpdate::UpToDate { revision: to });
    let took = started.elapsed();
    assert!(
        took >= Duration::from_millis(950) && took < Duration::from_secs(3),
        "{took:?}"
    );

    // Shutdown ends a waiting poll promptly.
    let poll =
        tokio::spawn(async move { node_api.desired(node.id, to, Duration::from_secs(60)).await });
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stopping = Instant::now();
    srv.stop().await;
    let answer = tokio::time::timeout(Duration::from_secs(3), poll)
        .await
        .expect("the poll ends with the server")
        .unwrap();
    assert_eq!(answer.unwrap(), DesiredUpdate::UpToDate { revision: to });
    assert!(stopping.elapsed() < Duration::from_secs(3));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_the_pinned_certificate_only() {
    let mut srv = ControlPlane::start_tls().await;
    assert!(srv.url.starts_with("https://127.0.0.1:"));
    let pin = srv.fingerprint.expect("TLS server has a fingerprint");

    // Right pin: works, including the node flow (join token carries the pin).
    let admin = srv.admin();
    assert!(admin.nodes().await.unwrap().is_empty());
    let EnrolledNode {
        node,
        client: node_api,
        ..
    } = srv.enrolled_node("fra-1").await;
    node_api.desired(node.id, 0, Duration::ZERO).await.unwrap();
    let (join, _) = admin.create_join_token(node.id, None).await.unwrap();
    assert_eq!(join.fingerprint, Some(pin));

    // Wrong pin: refused with a clear error.
    let wrong = Fingerprint::of_der(b"some other certificate");
    let client = ApiClient::new(&srv.url, Some(srv.admin_token.clone()), Some(wrong)).unwrap();
    let err = client.nodes().await.unwrap_err();
    match &err {
        ClientError::PinMismatch {
            expected, actual, ..
        } => {
            assert_eq!(*expected, wrong);
            assert_eq!(*actual, pin);
        }
        other => panic!("expected PinMismatch, got {other}"),
    }
    eprintln!("wrong pin: {err}");
    assert!(err.to_string().contains("pinned"));

    // https without a pin and plain http to a remote host are refused up front.
    assert!(matches!(
        ApiClient::new(&srv.url, None, None),
        Err(ClientError::Config(_))
    ));
    assert!(matches!(
        ApiClient::new("http://192.0.2.1:7443", None, None),
        Err(ClientError::Config(_))
    ));
    // Plain HTTP to the TLS port fails without a 5xx or a hang.
    let plain = ApiClient::new(&srv.url.replace("https", "http"), None, None).unwrap();
    assert!(plain.healthz().await.is_err());
    srv.stop().await;
}

#[tokio::test]
async fn plain_http_is_refused_off_loopback() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = ServerConfig::new(dir.path().to_owned(), "0.0.0.0:0".parse().unwrap());
    config.tls = false;
    let vpn = vpnctl_core::Vpnctl::open_dir(dir.path()).unwrap();
    let err = Server::bind_with(config, vpn).await.unwrap_err();
    assert!(matches!(err, ServerError::PlainHttpOffHost(_)), "{err}");
}

#[tokio::test]
async fn init_refuses_to_run_twice_and_keeps_the_key_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let opts = vpnctl_server::InitOptions {
        data: dir.path().join("d"),
        listen: "127.0.0.1:7443".parse().unwrap(),
        public_url: Some("https://vpn.example.com:7443".into()),
    };
    let done = vpnctl_server::init(&opts).unwrap();
    assert!(done.admin_token.expose().starts_with("vpt_"));
    assert!(!format!("{done:?}").contains(done.admin_token.expose()));
    let mode = |p: &std::path::Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode(&opts.data), 0o700);
    assert_eq!(mode(&opts.data.join(vpnctl_server::tls::KEY_FILE)), 0o600);
    let conn = vpnctl_client::ConnectionString::parse(&done.connection_string().encode()).unwrap();
    assert_eq!(conn.url, "https://vpn.example.com:7443");
    assert_eq!(conn.fingerprint, Some(done.fingerprint));
    let mut summary = Vec::new();
    done.write_summary(&mut summary).unwrap();
    assert!(
        String::from_utf8(summary)
            .unwrap()
            .contains(&done.fingerprint.to_string())
    );
    let file = vpnctl_server::Config::from_file(&done.config_file).unwrap();
    assert_eq!(file.listen, Some(opts.listen));
    assert!(matches!(
        vpnctl_server::init(&opts),
        Err(ServerError::AlreadyInitialised(_))
    ));
}
