//! `join` and `status` over a temporary state directory with a fake enroller, and the
//! help texts of the command line.

use std::os::unix::fs::PermissionsExt as _;
use std::path::Path;
use std::sync::Mutex;

use vpnctl_core::keys::{PresharedKey, PrivateKey, PublicKey};
use vpnctl_core::model::NodeId;
use vpnctl_core::reconcile::PeerSpec;
use vpnctl_core::wire::{InterfaceSpec, NodeDesired};
use vpnctl_node::agent::CpError;
use vpnctl_node::cli::{self, CliError, Command, Config, Enroller, NodeConfig};
use vpnctl_node::state_dir::{Credentials, Token};

const JOIN_TOKEN: &str = "vpj_join-secret-123";
const NODE_TOKEN: &str = "vpt_node-secret-456";

/// Records what it was asked and answers with fixed credentials.
#[derive(Default)]
struct FakeEnroller {
    seen: Mutex<Vec<(String, PublicKey, Option<u16>)>>,
    fail: bool,
}

impl Enroller for FakeEnroller {
    async fn enroll(
        &self,
        join_token: &Token,
        public_key: PublicKey,
        listen_port: Option<u16>,
    ) -> Result<Credentials, CpError> {
        self.seen
            .lock()
            .unwrap()
            .push((join_token.expose().to_owned(), public_key, listen_port));
        if self.fail {
            return Err(CpError::Rejected {
                status: 401,
                message: "join token expired".into(),
            });
        }
        Ok(Credentials {
            api_url: "https://127.0.0.1:8443".into(),
            fingerprint: "sha256:0123abcd".into(),
            node_id: NodeId(42),
            token: Token::new(NODE_TOKEN),
        })
    }
}

fn config(state: &Path, args: &[&str]) -> NodeConfig {
    let mut argv = vec![
        "vpnctl-node",
        "--state-dir",
        state.to_str().unwrap(),
        "--backend",
        "sim",
        "--interface",
        "wg-test",
    ];
    argv.extend_from_slice(args);
    Config::try_load_from(argv).unwrap()
}

fn mode(path: &Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

async fn exec(config: NodeConfig, enroller: &FakeEnroller) -> (Result<(), CliError>, String) {
    let mut out = Vec::new();
    let result = match config.command.clone() {
        Command::Join { token, force, .. } => {
            cli::join(&config, &token, force, enroller, &mut out).await
        }
        Command::Status => cli::status(&config, &mut out),
        other => panic!("not under test: {other:?}"),
    };
    (result, String::from_utf8(out).unwrap())
}

#[tokio::test]
async fn join_generates_the_key_locally_and_stores_private_files() {
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    let enroller = FakeEnroller::default();

    let (result, out) = exec(
        config(&state, &["--listen-port", "51999", "join", JOIN_TOKEN]),
        &enroller,
    )
    .await;
    result.unwrap();
    assert_eq!(mode(&state), 0o700);
    assert_eq!(mode(&state.join("node.key")), 0o600);
    assert_eq!(mode(&state.join("credentials.json")), 0o600);

    let key_text = std::fs::read_to_string(state.join("node.key")).unwrap();
    let key = PrivateKey::from_base64(key_text.trim()).unwrap();
    let seen = enroller.seen.lock().unwrap().clone();
    assert_eq!(
        seen,
        vec![(JOIN_TOKEN.to_owned(), key.public_key(), Some(51999))],
        "a port the node's admin set is announced"
    );
    assert!(out.contains(&key.public_key().to_base64()), "{out}");
    assert!(
        !out.contains(key_text.trim()) && !out.contains(NODE_TOKEN),
        "{out}"
    );

    let creds: Credentials =
        serde_json::from_slice(&std::fs::read(state.join("credentials.json")).unwrap()).unwrap();
    assert_eq!(creds.node_id, NodeId(42));
    assert_eq!(creds.token.expose(), NODE_TOKEN);
    assert!(
        !std::fs::read_to_string(state.join("credentials.json"))
            .unwrap()
            .contains(key_text.trim()),
        "the private key must not be in the credentials"
    );

    // A second join is refused; with --force it enrolls again with the same key.
    let (again, _) = exec(config(&state, &["join", JOIN_TOKEN]), &enroller).await;
    assert!(matches!(again, Err(CliError::AlreadyJoined(_))));
    let (forced, _) = exec(config(&state, &["join", "--force", JOIN_TOKEN]), &enroller).await;
    forced.unwrap();
    let seen = enroller.seen.lock().unwrap().clone();
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1].1, key.public_key(), "the key is kept");
    assert_eq!(
        seen[1].2, None,
        "no --listen-port: the control plane keeps the endpoint's port"
    );
}

#[tokio::test]
async fn failed_enrollment_keeps_the_key_and_writes_no_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let enroller = FakeEnroller {
        fail: true,
        ..FakeEnroller::default()
    };
    let (result, _) = exec(config(dir.path(), &["join", JOIN_TOKEN]), &enroller).await;
    let err = result.unwrap_err();
    assert!(matches!(
        err,
        CliError::Enroll(CpError::Rejected { status: 401, .. })
    ));
    assert!(!err.to_string().contains(JOIN_TOKEN));
    assert!(dir.path().join("node.key").exists());
    assert!(!dir.path().join("credentials.json").exists());
}

#[tokio::test]
async fn status_summarises_without_any_secret() {
    let dir = tempfile::tempdir().unwrap();
    let enroller = FakeEnroller::default();
    let (before, out) = exec(config(dir.path(), &["status"]), &enroller).await;
    before.unwrap();
    assert!(out.contains("not enrolled"), "{out}");

    exec(config(dir.path(), &["join", JOIN_TOKEN]), &enroller)
        .await
        .0
        .unwrap();
    let psk = PresharedKey::generate();
    let cached = NodeDesired {
        node: NodeId(42),
        revision: 17,
        enabled: true,
        interface: InterfaceSpec {
            listen_port: 51820,
            address_v4: "10.8.0.1/16".parse().unwrap(),
            address_v6: Some("fd00:8::1/64".parse().unwrap()),
            mtu: 1420,
            transport: vpnctl_core::transport::Transport::Wireguard,
        },
        peers: vec![PeerSpec::new(
            PrivateKey::generate().public_key(),
            Some(psk.clone()),
            ["10.8.0.2/32".parse().unwrap()],
            None,
        )],
    };
    vpnctl_node::Cache::new(dir.path().join("cache.json"))
        .store(&cached)
        .unwrap();

    let (result, out) = exec(config(dir.path(), &["status"]), &enroller).await;
    result.unwrap();
    let key_text = std::fs::read_to_string(dir.path().join("node.key")).unwrap();
    let key = PrivateKey::from_base64(key_text.trim()).unwrap();
    assert!(
        out.contains("node:       42 at https://127.0.0.1:8443"),
        "{out}"
    );
    assert!(out.contains(&key.public_key().to_base64()), "{out}");
    assert!(out.contains("wg-test (sim) down"), "{out}");
    assert!(
        out.contains("revision 17, enabled, 1 peers, 10.8.0.1/16 fd00:8::1/64, mtu 1420"),
        "{out}"
    );
    for secret in [
        key_text.trim(),
        NODE_TOKEN,
        JOIN_TOKEN,
        &psk.expose_base64(),
    ] {
        assert!(!out.contains(secret), "status shows a secret: {out}");
    }
}

#[tokio::test]
async fn run_without_join_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let mut out = Vec::new();
    let result = cli::execute(
        config(dir.path(), &["run"]),
        FakeEnroller::default(),
        vpnctl_node::http::connect,
        std::future::pending(),
        &mut out,
    )
    .await;
    assert!(matches!(result, Err(CliError::NotJoined)), "{result:?}");
}

#[test]
fn a_bad_metrics_listen_address_is_a_clear_usage_error() {
    for bad in ["localhost:9586", "9586", "127.0.0.1", "127.0.0.1:99999"] {
        let err =
            Config::try_load_from(["vpnctl-node", "--metrics-listen", bad, "run"]).expect_err(bad);
        assert!(matches!(err, CliError::Usage(_)), "{err:?}");
        let text = err.to_string();
        assert!(
            text.contains("--metrics-listen") && text.contains("expected IP:PORT"),
            "{text}"
        );
    }
    let ok = Config::try_load_from(["vpnctl-node", "--metrics-listen", "[::1]:9586", "run"]);
    assert_eq!(
        ok.unwrap().metrics_listen,
        Some("[::1]:9586".parse().unwrap())
    );
    let off = Config::try_load_from(["vpnctl-node", "run"]).unwrap();
    assert_eq!(off.metrics_listen, None, "off by default");
}

/// A control plane that never answers: `run` must fail before it is asked anything.
struct SilentCp;

impl vpnctl_node::ControlPlane for SilentCp {
    async fn desired(
        &self,
        _after: u64,
        _wait: std::time::Duration,
    ) -> Result<vpnctl_core::wire::DesiredUpdate, CpError> {
        std::future::pending().await
    }
    async fn report(&self, _report: vpnctl_core::wire::NodeReport) -> Result<(), CpError> {
        std::future::pending().await
    }
}

#[tokio::test]
async fn run_fails_at_start_when_the_metrics_port_is_taken() {
    let dir = tempfile::tempdir().unwrap();
    exec(
        config(dir.path(), &["join", JOIN_TOKEN]),
        &FakeEnroller::default(),
    )
    .await
    .0
    .unwrap();
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();

    let run = config(dir.path(), &["--metrics-listen", &addr, "run"]);
    let result = tokio::time::timeout(
        std::time::Duration::from_secs(10),
        cli::run(&run, SilentCp, false, std::future::pending()),
    )
    .await
    .expect("run must fail at once, not start serving");
    let err = result.unwrap_err();
    assert!(matches!(err, CliError::Metrics(_)), "{err:?}");
    let text = err.to_string();
    assert!(
        text.starts_with(&format!("cannot listen on {addr} for metrics: ")),
        "{text}"
    );
    assert!(text.to_lowercase().contains("in use"), "{text}");
}

#[test]
fn every_subcommand_and_flag_says_what_it_does_and_names_real_commands() {
    use clap::CommandFactory as _;
    let problems = vpnctl_daemon::help::problems(Config::command());
    assert!(problems.is_empty(), "{problems:#?}");
    // What `join` names on the admin side is the admin CLI's command for join tokens.
    let root = Config::command();
    let about = root
        .find_subcommand("join")
        .unwrap()
        .get_about()
        .unwrap()
        .to_string();
    assert!(
        about.contains("`vpnctl nodes join-token <NODE>`"),
        "{about}"
    );
    // The errors name commands that exist.
    assert!(
        CliError::NotJoined
            .to_string()
            .contains("`vpnctl-node join <TOKEN>`")
    );
    assert!(root.find_subcommand("join").is_some());
}
