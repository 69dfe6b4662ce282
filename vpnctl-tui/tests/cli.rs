//! The admin's CLI against the real embedded control plane (the demo: vpnctld over
//! HTTP on loopback, three enrolled nodes on the simulated backend): issuing devices
//! by node or region, configs to files, rotate, revoke, names or ids everywhere, ends
//! of access with times, user deletion, events, and evacuation writing the configs of
//! users the bot cannot reach. Bad input included.

#![cfg(feature = "demo")]

use std::io::Write;
use std::os::unix::fs::PermissionsExt as _;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use clap::Parser as _;
use vpnctl_api::body::PeerQuery;
use vpnctl_client::ApiClient;
use vpnctl_core::{Health, Scope};
use vpnctl_tui::cli::{CliError, Config, run, run_with};
use vpnctl_tui::demo::{Demo, DemoOptions};

struct Cli {
    url: String,
    token: String,
}

impl Cli {
    fn config(&self, args: &[&str]) -> Config {
        let mut argv = vec!["vpnctl", "--api", &self.url, "--token", &self.token];
        argv.extend_from_slice(args);
        Config::try_parse_from(argv).unwrap_or_else(|e| panic!("{args:?}: {e}"))
    }

    async fn ok(&self, args: &[&str]) -> String {
        let mut out = Vec::new();
        if let Err(e) = run(self.config(args), &mut out).await {
            panic!("{args:?} failed: {e}");
        }
        String::from_utf8(out).unwrap()
    }

    async fn json(&self, args: &[&str]) -> serde_json::Value {
        let mut args = args.to_vec();
        args.push("--json");
        let text = self.ok(&args).await;
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("{args:?}: {e}: {text}"))
    }

    async fn err(&self, args: &[&str]) -> CliError {
        run_with(self.config(args), &mut Vec::new(), &mut |_| None)
            .await
            .expect_err(&format!("{args:?} should fail"))
    }

    /// Fails with `code`, and the message mentions `needle`.
    async fn fails(&self, args: &[&str], code: u8, needle: &str) {
        let err = self.err(args).await;
        assert_eq!(err.exit_code(), code, "{args:?}: {err}");
        assert!(err.to_string().contains(needle), "{args:?}: {err}");
    }
}

async fn start() -> (Demo, Cli) {
    let demo = Demo::start(DemoOptions {
        report_secs: Some(1),
        ..DemoOptions::default()
    })
    .await
    .unwrap();
    let (_, token) = demo.vpn.create_token(Scope::Admin, "cli test").unwrap();
    let cli = Cli {
        url: demo.url.clone(),
        token: token.expose().to_owned(),
    };
    (demo, cli)
}

/// Waits until every node of the demo is `up` (offered for new devices).
async fn all_up(api: &ApiClient) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    loop {
        let nodes = api.nodes().await.unwrap();
        if nodes.len() == 3 && nodes.iter().all(|v| v.health.status == Health::Up) {
            return;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "nodes not up within 30 s"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

fn mode(path: &std::path::Path) -> u32 {
    std::fs::metadata(path).unwrap().permissions().mode() & 0o777
}

/// The `PrivateKey = ` line of a config.
fn private_key(config: &str) -> &str {
    config
        .lines()
        .find(|l| l.starts_with("PrivateKey = "))
        .expect("a private key")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn devices_from_the_terminal() {
    let (demo, cli) = start().await;
    all_up(&demo.api).await;
    let dir = tempfile::tempdir().unwrap();

    // A user without Telegram, access until a time of day, shown back as typed.
    let walkin = cli
        .json(&["users", "add", "walk-in", "--until", "2099-01-31T18:00Z"])
        .await;
    assert_eq!(walkin["telegram_id"], serde_json::Value::Null);
    let list = cli.ok(&["users", "list"]).await;
    let line = list.lines().find(|l| l.contains("walk-in")).unwrap();
    assert!(line.contains("until 2099-01-31 18:00Z"), "{line}");
    // Filtered on the server: by name, and by where access stands now.
    let named = cli.ok(&["users", "list", "--name", "WALK"]).await;
    assert_eq!(named.lines().count(), 1, "{named}");
    assert!(named.contains("walk-in"), "{named}");
    let active = cli.ok(&["users", "list", "--access", "active"]).await;
    assert!(active.contains("walk-in"), "{active}");
    let lapsed = cli.json(&["users", "list", "--access", "lapsed"]).await;
    assert!(
        lapsed
            .as_array()
            .unwrap()
            .iter()
            .all(|u| u["name"] != "walk-in")
    );
    let bad = Config::try_parse_from([
        "vpnctl", "--api", &cli.url, "users", "list", "--access", "expired",
    ])
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("say active, lapsed, suspended or disabled"),
        "{bad}"
    );
    let offset = cli
        .json(&[
            "users",
            "access",
            "walk-in",
            "--until",
            "2099-02-01T03:00+03:00",
        ])
        .await;
    assert_eq!(offset["until"], 4_073_587_200i64, "00:00Z on 2099-02-01");
    assert!(
        cli.ok(&["users", "list"])
            .await
            .lines()
            .any(|l| l.contains("walk-in") && l.contains("until 2099-02-01 ")),
        "midnight shows as a date"
    );

    // By region: the node core prefers there; the name is the first free deviceN.
    let file = dir.path().join("walk-in.conf");
    let file_arg = file.to_str().unwrap();
    let text = cli
        .ok(&["peers", "issue", "walk-in", "de-fra", "--out", file_arg])
        .await;
    assert!(
        text.starts_with("issued p") && text.contains("walk-in/device1 on fra-1"),
        "{text}"
    );
    assert!(
        !text.contains("PrivateKey"),
        "the key only goes to the file"
    );
    let config = std::fs::read_to_string(&file).unwrap();
    assert!(config.starts_with("[Interface]\nPrivateKey = "), "{config}");
    assert!(config.contains("Endpoint = fra-1.demo.vpnctl.example:51820"));
    assert_eq!(mode(&file), 0o600);

    // Never over an existing file without --force, and then nothing is issued.
    let before = demo.api.peers(PeerQuery::default()).await.unwrap().len();
    cli.fails(
        &["peers", "issue", "walk-in", "de-fra", "--out", file_arg],
        2,
        "--force",
    )
    .await;
    assert_eq!(
        demo.api.peers(PeerQuery::default()).await.unwrap().len(),
        before
    );

    // On a node by id, named, to stdout as JSON: the config is there (asked for).
    let ams = demo
        .api
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.node.name == "ams-1")
        .unwrap();
    let issued = cli
        .json(&[
            "peers",
            "issue",
            &format!("u{}", walkin["id"]),
            &format!("n{}", ams.node.id),
            "--device",
            "laptop",
        ])
        .await;
    assert_eq!(issued["peer"]["device"], "laptop");
    assert_eq!(issued["peer"]["node"], ams.node.id.0);
    assert_eq!(issued["tunnel_name"], "ams-1-laptop");
    assert!(issued["config"].as_str().unwrap().contains("[Peer]"));
    // Plain: the config alone on stdout; --qr: a QR code.
    let plain = cli.ok(&["peers", "config", "walk-in/laptop"]).await;
    assert_eq!(plain, issued["config"].as_str().unwrap());
    let qr = cli
        .ok(&["peers", "issue", "walk-in", "nyc-1", "--qr"])
        .await;
    assert!(
        qr.contains("walk-in/device2 on nyc-1") && qr.contains("█"),
        "{qr}"
    );
    assert!(!qr.contains("PrivateKey"));

    // Bad input: unknown user, node or region; ambiguous names; bad peers.
    cli.fails(&["peers", "issue", "nobody", "de-fra"], 4, "no user")
        .await;
    cli.fails(
        &["peers", "issue", "walk-in", "xx-nowhere"],
        4,
        "regions: de-fra",
    )
    .await;
    cli.ok(&["users", "add", "twin"]).await;
    cli.ok(&["users", "add", "twin"]).await;
    cli.fails(&["users", "disable", "twin"], 2, "matches several users (u")
        .await;
    cli.fails(&["peers", "config", "walk-in/tablet"], 4, "no peer")
        .await;
    cli.fails(&["peers", "config", "999999"], 4, "no peer p999999")
        .await;
    cli.fails(&["peers", "config", "what?"], 2, "user/device")
        .await;
    // A region whose nodes take no devices now: refused, naming their marks.
    cli.ok(&["nodes", "drain", "nyc-1"]).await;
    cli.fails(
        &["peers", "issue", "walk-in", "us-nyc"],
        4,
        "nyc-1 draining",
    )
    .await;
    cli.ok(&["nodes", "activate", "nyc-1"]).await;

    // Rotate: asks, then new keys in the same file (with --force).
    cli.fails(&["peers", "rotate", "walk-in/device1"], 2, "--yes")
        .await;
    let text = cli
        .ok(&[
            "peers",
            "rotate",
            "walk-in/device1",
            "--yes",
            "--out",
            file_arg,
            "--force",
        ])
        .await;
    assert!(text.starts_with("rotated p"), "{text}");
    let rotated = std::fs::read_to_string(&file).unwrap();
    assert_ne!(private_key(&rotated), private_key(&config));
    assert_eq!(mode(&file), 0o600);

    // Revoke by user/device; then it is gone.
    cli.fails(&["peers", "revoke", "walk-in/device2"], 2, "--yes")
        .await;
    let text = cli
        .ok(&["peers", "revoke", "walk-in/device2", "--yes"])
        .await;
    assert!(text.starts_with("revoked p"), "{text}");
    let theirs = cli.ok(&["peers", "list", "--user", "walk-in"]).await;
    assert_eq!(theirs.lines().count(), 2, "{theirs}");
    assert!(!theirs.contains("device2"), "{theirs}");
    assert!(theirs.lines().all(|l| l.contains(" walk-in ")), "{theirs}");
    // Every peer's line names its user (read by id, page by page).
    let all = cli.ok(&["peers", "list"]).await;
    let peers = demo.api.peers(PeerQuery::default()).await.unwrap();
    assert_eq!(all.lines().count(), peers.len(), "{all}");
    for (line, p) in all.lines().zip(&peers) {
        let name = demo.api.user(p.user).await.unwrap().name;
        assert!(
            line.starts_with(&format!("p{} ", p.id)) && line.contains(&format!(" {name} ")),
            "{line}"
        );
    }

    // By region, filtered on the server: the region's peers, each line on one of
    // its nodes; a region no node has is an error naming those there are.
    let in_ams = cli.ok(&["peers", "list", "--region", "nl-ams"]).await;
    let want = demo
        .api
        .peers(PeerQuery {
            region: Some("nl-ams".into()),
            ..PeerQuery::default()
        })
        .await
        .unwrap();
    assert!(!want.is_empty() && want.len() < peers.len(), "{want:?}");
    assert_eq!(in_ams.lines().count(), want.len(), "{in_ams}");
    for (line, p) in in_ams.lines().zip(&want) {
        assert!(
            line.starts_with(&format!("p{} ", p.id)) && line.contains(" ams-1 "),
            "{line}"
        );
    }
    let json = cli
        .json(&["peers", "list", "--region", "NL-AMS", "--user", "walk-in"])
        .await;
    // Their laptop is on ams-1; their other devices are elsewhere.
    let theirs_there = json.as_array().unwrap();
    assert_eq!(theirs_there.len(), 1, "{json}");
    assert_eq!(theirs_there[0]["device"], "laptop");
    assert_eq!(theirs_there[0]["user"], walkin["id"]);
    cli.fails(
        &["peers", "list", "--region", "xx-nowhere"],
        4,
        "no node is in region \"xx-nowhere\" (regions: de-fra, nl-ams, us-nyc)",
    )
    .await;
    cli.fails(
        &["peers", "list", "--region", "de-fra", "--node", "ams-1"],
        2,
        "ams-1 is in region nl-ams, not de-fra",
    )
    .await;
    // The devices of users an admin turned off (the demo's mallory), on the server.
    let off = cli.ok(&["peers", "list", "--access", "disabled"]).await;
    let want = demo
        .api
        .peers(PeerQuery {
            access: Some(vpnctl_api::body::AccessState::Disabled),
            ..PeerQuery::default()
        })
        .await
        .unwrap();
    assert!(!want.is_empty());
    assert_eq!(off.lines().count(), want.len(), "{off}");
    assert!(off.lines().all(|l| l.contains(" mallory ")), "{off}");
    let bad = Config::try_parse_from([
        "vpnctl", "--api", &cli.url, "peers", "list", "--access", "gone",
    ])
    .unwrap_err()
    .to_string();
    assert!(
        bad.contains("say active, lapsed, suspended or disabled"),
        "{bad}"
    );
    // By device name, ignoring case: the walk-in's laptop and no one else's device.
    let laptops = cli.json(&["peers", "list", "--device", "LAPTOP"]).await;
    let want: Vec<_> = peers
        .iter()
        .filter(|p| p.device.to_lowercase().contains("laptop"))
        .map(|p| serde_json::json!(p.id))
        .collect();
    assert!(!want.is_empty() && want.len() < peers.len());
    let got: Vec<_> = laptops
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].clone())
        .collect();
    assert_eq!(got, want, "{laptops}");
    // "Who is this address?" from a node's logs, "whose key is this?" from `wg show`:
    // point reads in the address and key indexes, on every node or one.
    let laptop = peers.iter().find(|p| p.device == "laptop").unwrap();
    let holders: Vec<_> = peers.iter().filter(|p| p.ipv4 == laptop.ipv4).collect();
    let by_address = cli
        .ok(&["peers", "list", "--address", &laptop.ipv4.to_string()])
        .await;
    assert_eq!(by_address.lines().count(), holders.len(), "{by_address}");
    for (line, p) in by_address.lines().zip(&holders) {
        assert!(line.starts_with(&format!("p{} ", p.id)), "{line}");
    }
    let its_node = format!("n{}", laptop.node);
    let on_its_node = cli
        .json(&[
            "peers",
            "list",
            "--address",
            &laptop.ipv4.to_string(),
            "--node",
            &its_node,
        ])
        .await;
    assert_eq!(on_its_node, serde_json::json!([laptop]), "{on_its_node}");
    let by_key = cli
        .json(&["peers", "list", "--key", &laptop.public_key.to_string()])
        .await;
    assert_eq!(by_key, serde_json::json!([laptop]), "{by_key}");
    if let Some(v6) = laptop.ipv6 {
        let by_v6 = cli
            .json(&[
                "peers",
                "list",
                "--address",
                &v6.to_string(),
                "--node",
                "ams-1",
            ])
            .await;
        assert_eq!(by_v6, serde_json::json!([laptop]), "{by_v6}");
    }
    cli.fails(
        &["peers", "list", "--address", "203.0.113.77"],
        4,
        "no peer holds 203.0.113.77",
    )
    .await;
    cli.fails(
        &[
            "peers",
            "list",
            "--address",
            &laptop.ipv4.to_string(),
            "--user",
            "mallory",
        ],
        4,
        "among those asked for",
    )
    .await;
    let bad = Config::try_parse_from([
        "vpnctl",
        "--api",
        &cli.url,
        "peers",
        "list",
        "--key",
        "not-a-key",
    ])
    .unwrap_err()
    .to_string();
    assert!(bad.contains("--key"), "{bad}");
    // Region codes ignore case wherever they are typed.
    let issued = cli.json(&["peers", "issue", "walk-in", "DE-FRA"]).await;
    assert_eq!(issued["tunnel_name"], "fra-1-device2", "{issued}");

    // Join tokens by node name (the issue's complaint).
    let join = cli.json(&["nodes", "join-token", "fra-1"]).await;
    assert!(
        join["command"]
            .as_str()
            .unwrap()
            .starts_with("vpnctl-node join vpnctl-join:")
    );
    cli.fails(&["nodes", "join-token", "de-fra-9"], 4, "no node named")
        .await;

    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn access_ends_and_user_deletion() {
    let (demo, cli) = start().await;
    let now = vpnctl_core::Timestamp::now();
    let hours = cli.json(&["users", "add", "temp", "--hours", "5"]).await;
    let until = hours["until"].as_i64().unwrap();
    assert!((until - now.seconds() - 5 * 3600).abs() < 60, "{hours}");
    let days = cli.json(&["users", "access", "temp", "--days", "2"]).await;
    assert!((days["until"].as_i64().unwrap() - now.seconds() - 2 * 86_400).abs() < 60);
    let unlimited = cli.json(&["users", "access", "temp", "--unlimited"]).await;
    assert_eq!(unlimited["until"], serde_json::Value::Null);
    let date = cli
        .json(&["users", "access", "temp", "--until", "2099-01-31"])
        .await;
    assert_eq!(date["until"], 4_073_500_800i64, "00:00 UTC that day");

    // Bad dates are usage errors before anything is sent.
    for (args, why) in [
        (
            &["users", "access", "temp", "--until", "31.01.2099"][..],
            "not a date",
        ),
        (
            &["users", "access", "temp", "--until", "2099-01-31T18:00"][..],
            "no zone",
        ),
        (
            &["users", "add", "x", "--days", "3", "--hours", "2"][..],
            "cannot be used with",
        ),
    ] {
        let mut argv = vec!["vpnctl"];
        argv.extend_from_slice(args);
        let err = Config::try_parse_from(argv).unwrap_err();
        assert_eq!(err.exit_code(), 2, "{args:?}");
        assert!(err.to_string().contains(why), "{args:?}: {err}");
    }
    cli.fails(
        &["users", "access", "temp", "--until", "2001-01-01"],
        2,
        "in the past",
    )
    .await;
    cli.fails(&["users", "access", "temp"], 2, "--unlimited")
        .await;
    cli.fails(&["users", "access", "nobody", "--days", "1"], 4, "no user")
        .await;

    // users show: core's verdict in words.
    let show = cli.ok(&["users", "show", "temp"]).await;
    assert!(
        show.contains("access   active until 2099-01-31 ("),
        "{show}"
    );

    // Delete: asks; a user with devices loses them.
    cli.ok(&["peers", "issue", "temp", "fra-1"]).await;
    cli.fails(&["users", "delete", "temp"], 2, "--yes").await;
    let mut asked = Vec::new();
    let mut out = Vec::new();
    run_with(
        cli.config(&["users", "delete", "temp"]),
        &mut out,
        &mut |q: &str| {
            asked.push(q.to_owned());
            Some(true)
        },
    )
    .await
    .unwrap();
    assert!(asked[0].contains("revoke their 1 devices"), "{asked:?}");
    assert!(String::from_utf8(out).unwrap().starts_with("deleted u"));
    assert!(
        !demo
            .api
            .users()
            .await
            .unwrap()
            .iter()
            .any(|u| u.name == "temp")
    );
    cli.fails(&["users", "delete", "temp", "--yes"], 4, "no user")
        .await;
    demo.stop().await;
}

/// A writer the test reads while `run` writes.
#[derive(Clone, Default)]
struct Shared(Arc<Mutex<Vec<u8>>>);

impl Write for Shared {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_list_and_follow() {
    let (demo, cli) = start().await;
    let recent = cli.json(&["events", "--limit", "3"]).await;
    let recent = recent.as_array().unwrap();
    assert_eq!(recent.len(), 3);
    let all = demo.api.events(None, Some(1_000)).await.unwrap();
    assert_eq!(recent[2]["seq"], all.last().unwrap().seq, "the newest last");

    // A notice with a base64 key is shown exactly (no lowercasing).
    let key = "kB3xQ9+Zt7WmR2vLp0sYhNcE4fJ6uIgA1oDq8eTnXyU=";
    demo.vpn
        .notice(
            vpnctl_core::Severity::Warning,
            None,
            &format!("stray peer {key} removed"),
        )
        .unwrap();
    let text = cli.ok(&["events", "--limit", "1"]).await;
    assert!(
        text.contains(&format!("warning: stray peer {key} removed")),
        "{text}"
    );

    // --follow: each new event as it happens, one JSON object per line.
    let shared = Shared::default();
    let mut writer = shared.clone();
    let follow = run(
        cli.config(&["events", "--follow", "--json", "--limit", "0"]),
        &mut writer,
    );
    let drive = async {
        tokio::time::sleep(Duration::from_millis(300)).await;
        cli.ok(&["users", "add", "follower"]).await;
        let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
        loop {
            let text = String::from_utf8(shared.0.lock().unwrap().clone()).unwrap();
            if let Some(line) = text.lines().find(|l| l.contains("user_created")) {
                return line.to_owned();
            }
            assert!(
                tokio::time::Instant::now() < deadline,
                "not followed: {text}"
            );
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    };
    let line = tokio::select! {
        result = follow => panic!("follow ended: {result:?}"),
        line = drive => line,
    };
    let event: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert!(event["seq"].as_u64().unwrap() > all.last().unwrap().seq);

    // `vpnctl … | head`: the installed binary, its reader gone before it writes.
    for args in [&["peers", "list"][..], &["events", "--json"]] {
        let mut argv = vec!["--api", &cli.url, "--token", &cli.token];
        argv.extend_from_slice(args);
        let argv: Vec<String> = argv.into_iter().map(str::to_owned).collect();
        let out = tokio::task::spawn_blocking(move || {
            let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vpnctl"))
                .args(&argv)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap();
            drop(child.stdout.take());
            child.wait_with_output().unwrap()
        })
        .await
        .unwrap();
        // Quiet, with the status of a tool SIGPIPE ended.
        assert!(
            out.status.code() == Some(141) && out.stderr.is_empty(),
            "{args:?} into a closed pipe: {:?} {}",
            out.status,
            String::from_utf8_lossy(&out.stderr)
        );
    }
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn evacuation_writes_the_configs_the_bot_cannot_deliver() {
    let (demo, cli) = start().await;
    all_up(&demo.api).await;
    // Two users without Telegram, each with `device1` on ams-1: the same tunnel name.
    for name in ["kiosk-a", "kiosk-b"] {
        cli.ok(&["users", "add", name]).await;
        cli.ok(&["peers", "issue", name, "ams-1"]).await;
    }
    let dir = tempfile::tempdir().unwrap();
    let configs = dir.path().join("moved");
    let done = cli
        .json(&[
            "nodes",
            "evacuate",
            "ams-1",
            "--to",
            "nyc-1",
            "--yes",
            "--configs-dir",
            configs.to_str().unwrap(),
        ])
        .await;
    assert!(done["failed"].as_array().unwrap().is_empty(), "{done}");
    assert_eq!(done["without_telegram"], 2);
    let written = done["configs_written"].as_array().unwrap();
    assert_eq!(written.len(), 2, "{done}");
    let files: Vec<std::path::PathBuf> = written
        .iter()
        .map(|w| w["file"].as_str().unwrap().into())
        .collect();
    assert_eq!(files[0], configs.join("nyc-1-device1.conf"));
    assert!(
        files[1].starts_with(&configs) && files[1].ends_with("nyc-1-device1.conf"),
        "the second of the same name goes to a subdirectory: {files:?}"
    );
    assert_ne!(files[0], files[1]);
    for (w, file) in written.iter().zip(&files) {
        assert_eq!(mode(file), 0o600);
        let text = std::fs::read_to_string(file).unwrap();
        assert!(text.contains("Endpoint = nyc-1.demo.vpnctl.example:51820"));
        let peer = w["peer"].as_u64().unwrap().to_string();
        assert_eq!(cli.ok(&["peers", "config", &peer]).await, text);
    }
    assert_eq!(mode(&configs) & 0o077, 0, "the directory is private");

    // Text output lists them; without --configs-dir it says who was not told.
    cli.ok(&["nodes", "activate", "ams-1"]).await;
    let text = cli
        .ok(&["nodes", "evacuate", "nyc-1", "--to", "ams-1", "--yes"])
        .await;
    assert!(
        text.contains("2 moved devices belong to users without Telegram"),
        "{text}"
    );
    demo.stop().await;
}

/// The dashboard's commands over the same API: a new device with its QR, a rotation,
/// and an evacuation that writes the configs of users without Telegram.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dashboard_issues_rotates_and_evacuates_with_configs() {
    use vpnctl_tui::app::{Command, Outcome};
    use vpnctl_tui::runtime::execute;

    let (demo, cli) = start().await;
    all_up(&demo.api).await;
    let kiosk = cli.json(&["users", "add", "kiosk"]).await;
    let user = vpnctl_core::UserId(kiosk["id"].as_u64().unwrap());
    let ams = demo
        .api
        .nodes()
        .await
        .unwrap()
        .into_iter()
        .find(|v| v.node.name == "ams-1")
        .unwrap();
    let outcome = execute(
        &demo.api,
        &Command::IssueDevice {
            user,
            user_name: "kiosk".into(),
            node: ams.node.id,
            node_name: "ams-1".into(),
        },
    )
    .await
    .unwrap();
    let Outcome::Device { title, qr } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(title.contains("kiosk/device1 on ams-1"), "{title}");
    let peer = cli.json(&["peers", "config", "kiosk/device1"]).await;
    let config = peer["config"].as_str().unwrap();
    assert_eq!(qr, vpnctl_core::render::qr_terminal(config).unwrap());

    let id = vpnctl_core::PeerId(peer["peer"]["id"].as_u64().unwrap());
    let Outcome::Device { qr: rotated, .. } =
        execute(&demo.api, &Command::RotatePeer(id)).await.unwrap()
    else {
        panic!("rotate shows a QR");
    };
    assert_ne!(rotated, qr, "new keys, new QR");

    let dir = tempfile::tempdir().unwrap();
    let outcome = execute(
        &demo.api,
        &Command::Evacuate {
            node: ams.node.id,
            name: "ams-1".into(),
            devices: ams.peers + 1,
            configs: Some(dir.path().join("out")),
        },
    )
    .await
    .unwrap();
    let Outcome::Report { title, lines } = outcome else {
        panic!("{outcome:?}");
    };
    assert!(title.starts_with("evacuated ams-1: moved "), "{title}");
    let written = lines.iter().find(|l| l.contains("kiosk device1")).unwrap();
    let file = written.rsplit(": ").next().unwrap();
    assert_eq!(mode(std::path::Path::new(file)), 0o600);
    assert!(std::fs::read_to_string(file).unwrap().contains("[Peer]"));
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn node_settings_from_the_terminal() {
    let (_demo, cli) = start().await;
    // Added with nothing but what is required: the defaults users get.
    let added = cli
        .json(&[
            "nodes",
            "add",
            "se-sto-1",
            "--region",
            "se-sto",
            "--endpoint",
            "198.51.100.9:51820",
            "--pool",
            "10.77.0.0/24",
        ])
        .await;
    assert_eq!(added["mtu"], 1280);
    assert_eq!(added["capacity"], 0);
    assert_eq!(added["dns"], serde_json::json!(["10.77.0.1"]));
    assert_eq!(added["client_allowed_ips"], serde_json::json!([]));
    // Changed by name: only what is given.
    let set = cli
        .json(&[
            "nodes",
            "set",
            "se-sto-1",
            "--mtu",
            "1380",
            "--dns",
            "9.9.9.9,149.112.112.112",
            "--allowed-ips",
            "10.0.0.0/8",
        ])
        .await;
    assert_eq!(set["mtu"], 1380);
    assert_eq!(
        set["dns"],
        serde_json::json!(["9.9.9.9", "149.112.112.112"])
    );
    assert_eq!(set["client_allowed_ips"], serde_json::json!(["10.0.0.0/8"]));
    assert_eq!(set["capacity"], 0, "untouched");
    assert_eq!(set["endpoint"]["port"], 51820, "untouched");
    // With an IPv6 pool at once.
    let v6 = cli
        .json(&[
            "nodes",
            "add",
            "se-sto-2",
            "--region",
            "se-sto",
            "--endpoint",
            "198.51.100.10:51820",
            "--pool",
            "10.78.0.0/24",
            "--ipv6-pool",
            "fd00:78::/64",
        ])
        .await;
    assert_eq!(v6["ipv6_pool"], "fd00:78::/64");
    // Bad input is refused with the reason.
    cli.fails(&["nodes", "set", "se-sto-1", "--mtu", "600"], 4, "mtu")
        .await;
    cli.fails(&["nodes", "set", "nowhere", "--mtu", "1400"], 4, "nowhere")
        .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn plans_payments_refunds_and_revenue_from_the_terminal() {
    use vpnctl_core::api::billing::{ReceivedPayment, STARS};

    let (demo, cli) = start().await;
    let none = cli.ok(&["plans", "list"]).await;
    assert!(none.contains("no plans on sale"), "{none}");
    let plan = cli
        .json(&[
            "plans",
            "add",
            "Month",
            "--name-ru",
            "Месяц",
            "--days",
            "30",
            "--stars",
            "120",
            "--quota",
            "100GB",
        ])
        .await;
    assert_eq!(plan["stars"], 120);
    assert_eq!(plan["quota"]["bytes"], 100_000_000_000u64);
    assert_eq!(plan["device_limit"], 3, "the default");
    let list = cli.ok(&["plans", "list"]).await;
    assert!(
        list.contains("Month") && list.contains("120 stars") && list.contains("100.0 GB monthly"),
        "{list}"
    );
    // Bad input: a clear error, nothing written.
    cli.fails(
        &["plans", "add", "Year", "--days", "365", "--stars", "0"],
        4,
        "stars",
    )
    .await;
    cli.fails(
        &[
            "plans",
            "add",
            "Sub",
            "--days",
            "31",
            "--stars",
            "5",
            "--recurring",
        ],
        4,
        "30 days",
    )
    .await;
    cli.fails(&["plans", "retire", "plan99"], 4, "no plan99")
        .await;
    cli.fails(&["plans", "retire", "month"], 2, "not a plan id")
        .await;
    assert_eq!(
        cli.json(&["plans", "list", "--all"])
            .await
            .as_array()
            .unwrap()
            .len(),
        1
    );

    // A payment, as the bot records it.
    let user = cli
        .json(&["users", "add", "payer", "--telegram-id", "777"])
        .await;
    let uid = vpnctl_core::UserId(user["id"].as_u64().unwrap());
    let order = demo
        .vpn
        .create_order(uid, vpnctl_core::PlanId(plan["id"].as_u64().unwrap()))
        .unwrap();
    demo.vpn
        .record_payment(&ReceivedPayment {
            payload: order.payload(),
            telegram_id: 777,
            currency: STARS.into(),
            total: 120,
            telegram_charge_id: "tg-charge-1".into(),
            provider_charge_id: String::new(),
            recurring: false,
            subscription_until: None,
        })
        .unwrap();
    let list = cli.ok(&["payments", "list"]).await;
    assert!(
        list.contains("pay1") && list.contains("120 stars") && list.contains("tg-charge-1"),
        "{list}"
    );
    let mine = cli.json(&["payments", "list", "--user", "payer"]).await;
    assert_eq!(mine.as_array().unwrap().len(), 1);
    let revenue = cli.ok(&["payments", "revenue", "--days", "1"]).await;
    assert!(revenue.contains("120 stars taken"), "{revenue}");

    // No bot runs here: the refund is requested, and the command says it waits.
    cli.fails(&["payments", "refund", "pay1"], 2, "--yes").await;
    cli.fails(
        &["payments", "refund", "pay1", "--yes", "--wait-secs", "1"],
        1,
        "is vpnctl-bot running",
    )
    .await;
    let shown = cli.ok(&["payments", "show", "pay1"]).await;
    assert!(shown.contains("refund requested"), "{shown}");
    cli.fails(&["payments", "show", "pay9"], 4, "no payment pay9")
        .await;
    // A trial: not sold, granted by an invite.
    let trial = cli
        .json(&[
            "plans",
            "add",
            "Trial",
            "--trial",
            "--days",
            "7",
            "--devices",
            "1",
            "--quota",
            "5GB",
        ])
        .await;
    assert_eq!(trial["trial"], true);
    assert_eq!(trial["stars"], 0);
    assert!(
        cli.ok(&["plans", "list"])
            .await
            .contains("trial (invites only)")
    );
    let invite = cli
        .json(&["invites", "create", "--plan", "plan2", "--label", "trial"])
        .await;
    assert_eq!(invite["invite"]["grant"]["access_days"], 7);
    assert_eq!(invite["invite"]["grant"]["device_limit"], 1);
    // Listed page by page, as text and as one JSON array.
    let listed = cli.json(&["invites", "list"]).await;
    let listed = listed.as_array().unwrap();
    assert!(listed.iter().any(|i| i["label"] == "trial"), "{listed:?}");
    let text = cli.ok(&["invites", "list"]).await;
    assert_eq!(text.lines().count(), listed.len(), "{text}");
    assert!(text.lines().any(|l| l.contains("trial")), "{text}");
    cli.fails(&["invites", "create", "--plan", "plan77"], 4, "no plan77")
        .await;
    let retired = cli.ok(&["plans", "retire", "plan1"]).await;
    assert!(retired.contains("retired"), "{retired}");
    let left = cli.ok(&["plans", "list"]).await;
    assert!(!left.contains("Month") && left.contains("Trial"), "{left}");
    demo.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn broadcasts_from_the_terminal() {
    let (demo, cli) = start().await;
    let count = |v: serde_json::Value| v["recipients"].as_u64().unwrap();
    // The demo's seeded users, with Telegram.
    let seeded = count(
        cli.json(&["broadcast", "--to", "all", "x", "--dry-run"])
            .await,
    );
    for (name, tg) in [("ann", "801"), ("bob", "802")] {
        cli.ok(&["users", "add", name, "--telegram-id", tg]).await;
    }
    cli.ok(&["users", "add", "no-telegram"]).await;
    let all = seeded + 2;
    let preview = cli
        .ok(&[
            "broadcast",
            "--to",
            "all",
            "Maintenance",
            "tonight",
            "--dry-run",
        ])
        .await;
    assert!(
        preview.contains(&format!("would reach {all} users"))
            && preview.contains("Maintenance tonight"),
        "{preview}"
    );
    let region = count(
        cli.json(&["broadcast", "--to", "region", "de-fra", "x", "--dry-run"])
            .await,
    );
    assert!(
        region < all,
        "only users with a device there: {region} of {all}"
    );
    cli.fails(&["broadcast", "--to", "all", "Hello"], 2, "--yes")
        .await;
    cli.fails(
        &["broadcast", "--to", "everyone", "Hello"],
        2,
        "active, lapsed, all",
    )
    .await;
    cli.fails(&["broadcast", "--to", "region"], 2, "region code")
        .await;
    cli.fails(&["broadcast", "--to", "all"], 2, "what should it say")
        .await;
    cli.fails(
        &["broadcast", "--to", "region", "xx-none", "Hi", "--yes"],
        4,
        "no node has region code",
    )
    .await;
    let sent = cli
        .json(&["broadcast", "--to", "all", "Maintenance tonight", "--yes"])
        .await;
    assert_eq!(sent["total"].as_u64(), Some(all));
    let list = cli.ok(&["broadcasts", "list"]).await;
    assert!(
        list.contains(&format!("/{all}")) && list.contains("Maintenance tonight"),
        "{list}"
    );
    let cancelled = cli.ok(&["broadcasts", "cancel", "1"]).await;
    assert!(cancelled.contains("cancelled"), "{cancelled}");
    assert!(cli.ok(&["broadcasts", "list"]).await.contains("cancelled"));
    cli.fails(&["broadcasts", "cancel", "9"], 4, "no broadcast 9")
        .await;
    // The dashboard's commands, against the same API.
    use vpnctl_api::broadcast::Audience;
    use vpnctl_tui::app::{Command, Outcome};
    let counted = vpnctl_tui::runtime::execute(
        &demo.api,
        &Command::PreviewBroadcast {
            audience: Audience::All,
            text: "x".into(),
        },
    )
    .await
    .unwrap();
    assert_eq!(
        counted,
        Outcome::Done(format!("a broadcast to all would reach {all} users"))
    );
    let sent = vpnctl_tui::runtime::execute(
        &demo.api,
        &Command::Broadcast {
            audience: Audience::All,
            text: "From the dashboard".into(),
            recipients: u32::try_from(all).unwrap(),
        },
    )
    .await
    .unwrap();
    assert!(
        matches!(&sent, Outcome::Done(s) if s.contains(&format!("broadcast 2 queued for {all} users"))),
        "{sent:?}"
    );
    demo.stop().await;
}

/// `vpnctl events --follow`, the installed binary, keeps following across the
/// stream's regular ends (here each second, `event_stream_max_secs`) and a restart
/// of the control plane: every event once, in order, and it is still running.
/// Before, it stopped with an error at the first end (each hour by default).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_follow_outlives_stream_ends_and_restarts() {
    use std::io::BufRead as _;
    use vpnctl_testbed::control_plane::ControlPlane;
    let mut cp = ControlPlane::builder()
        .configure(|c| c.limits.event_stream_max_secs = 1)
        .start()
        .await;
    let add = |cp: &ControlPlane, name: String| {
        cp.vpn
            .create_user(vpnctl_core::NewUser {
                name,
                ..vpnctl_core::NewUser::default()
            })
            .unwrap();
    };
    add(&cp, "before".into());
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_vpnctl"))
        .args(["--api", &cp.url, "--token", cp.admin_token.expose()])
        .args(["events", "--follow", "--json", "--limit", "1"])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    // Kill the child however the test ends.
    struct Reap(std::process::Child);
    impl Drop for Reap {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }
    let stdout = child.stdout.take().unwrap();
    let mut child = Reap(child);
    let seqs = Arc::new(Mutex::new(Vec::<u64>::new()));
    {
        let seqs = Arc::clone(&seqs);
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(stdout).lines() {
                let Ok(line) = line else { return };
                let event: serde_json::Value = serde_json::from_str(&line).unwrap();
                seqs.lock().unwrap().push(event["seq"].as_u64().unwrap());
            }
        });
    }
    for i in 0..12 {
        tokio::time::sleep(Duration::from_millis(300)).await;
        if i == 6 {
            cp.restart().await;
        }
        add(&cp, format!("user{i}"));
    }
    let newest = cp.vpn.last_event_seq().unwrap();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while seqs.lock().unwrap().last() != Some(&newest) {
        assert!(
            tokio::time::Instant::now() < deadline,
            "followed {:?}, the log ends at {newest}",
            seqs.lock().unwrap()
        );
        assert!(child.0.try_wait().unwrap().is_none(), "--follow ended");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let seqs = seqs.lock().unwrap().clone();
    let first = seqs[0];
    assert!(
        seqs.iter().copied().eq(first..=newest),
        "every event once, in order: {seqs:?}"
    );
    assert!(newest - first >= 12, "{seqs:?}");
    assert!(child.0.try_wait().unwrap().is_none(), "--follow ended");
}
