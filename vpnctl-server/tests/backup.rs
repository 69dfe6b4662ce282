//! Backups as an admin takes them: `POST /v1/backup` over TLS while eight clients
//! issue and revoke peers over HTTP, restored by the real `vpnctld restore` into a
//! new directory; every table equals the snapshot, the TLS files come back, a node
//! continues with a delta. Damaged, tampered and wrongly keyed backups are refused
//! with a clear message and nothing written. Scheduled backups keep the newest N.

use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use vpnctl_api::body::{CreateUser, IssuePeerRequest};
use vpnctl_api::import::BackupRequest;
use vpnctl_client::Followed;
use vpnctl_core::backup::{self, RestoreKey};
use vpnctl_core::wire::DesiredUpdate;
use vpnctl_core::{Timestamp, Vpnctl};
use vpnctl_server::backups::{self, Schedule, ScheduleKey};
use vpnctl_testbed::control_plane::ControlPlane;

fn vpnctld(args: &[&str]) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_vpnctld"))
        .args(args)
        .env_remove("VPNCTLD_CONFIG")
        .output()
        .expect("run vpnctld")
}

fn restore(from: &Path, data: &Path, key_flag: &str, key: &Path) -> std::process::Output {
    vpnctld(&[
        "restore",
        "--from",
        from.to_str().unwrap(),
        "--data",
        data.to_str().unwrap(),
        key_flag,
        key.to_str().unwrap(),
    ])
}

fn write_private(path: &Path, bytes: &[u8]) {
    use std::io::Write as _;
    use std::os::unix::fs::OpenOptionsExt as _;
    std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .unwrap()
        .write_all(bytes)
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[allow(clippy::too_many_lines)]
async fn a_backup_taken_under_writers_restores_with_vpnctld() {
    let cp = ControlPlane::start_tls().await;
    let admin = cp.admin();
    let node = cp.add_node("fra1", "192.0.2.1:51820").await;
    let enrolled = cp.enroll(node.id).await;
    let applied = enrolled
        .client
        .desired(node.id, 0, Duration::ZERO)
        .await
        .unwrap()
        .revision();

    // ---- eight writers issue and revoke peers until told to stop
    let stop = Arc::new(AtomicBool::new(false));
    let writes = Arc::new(AtomicU64::new(0));
    let mut writers = Vec::new();
    for w in 0..8 {
        let user = admin
            .create_user(&CreateUser {
                name: format!("writer{w}"),
                device_limit: Some(10_000),
                ..Default::default()
            })
            .await
            .unwrap();
        let (client, stop, writes) = (cp.admin(), Arc::clone(&stop), Arc::clone(&writes));
        let node = node.id;
        writers.push(tokio::spawn(async move {
            let mut i = 0u32;
            while !stop.load(Ordering::Relaxed) {
                let issued = client
                    .issue_peer(&IssuePeerRequest {
                        user: user.id,
                        node,
                        device: format!("d{i}"),
                        public_key: None,
                    })
                    .await
                    .unwrap();
                if i % 2 == 1 {
                    client.revoke_peer(issued.peer.id).await.unwrap();
                }
                writes.fetch_add(1, Ordering::Relaxed);
                i += 1;
            }
        }));
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (identity, recipient) = backup::generate_identity(Timestamp::now());
    let blob = admin
        .backup(&BackupRequest {
            recipient: Some(recipient),
            passphrase: None,
        })
        .await
        .unwrap();
    let at_backup = writes.load(Ordering::Relaxed);
    tokio::time::sleep(Duration::from_millis(500)).await;
    stop.store(true, Ordering::Relaxed);
    for w in writers {
        w.await.unwrap();
    }
    assert!(at_backup > 0, "the writers wrote before the backup");
    assert!(
        writes.load(Ordering::Relaxed) > at_backup,
        "the writers went on while it was taken"
    );
    assert!(
        !blob
            .windows(b"writer0".len())
            .any(|w| w == b"writer0".as_slice()),
        "the backup is encrypted"
    );

    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("vpnctl.backup.age");
    let identity_file = dir.path().join("backup.key");
    write_private(&file, &blob);
    write_private(&identity_file, identity.as_bytes());

    // ---- bad input first: each refused with its reason, nothing written
    let target = dir.path().join("restored");
    let cut = dir.path().join("cut.age");
    write_private(&cut, &blob[..blob.len() / 2]);
    let mut tampered = blob.clone();
    let middle = tampered.len() / 2;
    tampered[middle] ^= 0x01;
    let tampered_file = dir.path().join("tampered.age");
    write_private(&tampered_file, &tampered);
    let (other_identity, _) = backup::generate_identity(Timestamp::now());
    let other_file = dir.path().join("other.key");
    write_private(&other_file, other_identity.as_bytes());
    let passphrase_file = dir.path().join("pass");
    write_private(&passphrase_file, b"correct horse\n");
    for (from, flag, key, says) in [
        (
            &cut,
            "--identity",
            &identity_file,
            "truncated or was altered",
        ),
        (
            &tampered_file,
            "--identity",
            &identity_file,
            "truncated or was altered",
        ),
        (
            &file,
            "--identity",
            &other_file,
            "does not open this backup",
        ),
        (
            &file,
            "--passphrase-file",
            &passphrase_file,
            "encrypted to a key",
        ),
    ] {
        let out = restore(from, &target, flag, key);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{from:?} was restored");
        assert!(stderr.contains(says), "{from:?}: {stderr}");
        assert!(!target.exists(), "{from:?} wrote {}", target.display());
    }

    // ---- the restore itself
    let out = restore(&file, &target, "--identity", &identity_file);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let next = format!(
        "next: vpnctld run --config {}",
        target.join("vpnctld.toml").display()
    );
    assert!(stdout.contains(&next), "{stdout}");
    // The restored settings name the restored directory, not the one backed up.
    let settings = vpnctl_server::Config::from_file(&target.join("vpnctld.toml")).unwrap();
    assert_eq!(settings.data.as_deref(), Some(target.as_path()));
    let contents = backup::open(
        &blob,
        &RestoreKey::identity_file(&identity, "backup.key").unwrap(),
    )
    .unwrap();
    for name in ["tls.crt", "tls.key"] {
        assert_eq!(
            std::fs::read(target.join(name)).unwrap(),
            std::fs::read(cp.data_dir().join(name)).unwrap(),
            "{name} comes back"
        );
    }
    {
        let restored = Vpnctl::open_dir(&target).unwrap();
        assert_eq!(
            restored.dump().unwrap().without_positions(),
            contents.dump.clone().without_positions(),
            "every record equals the snapshot"
        );
        assert_ne!(
            cp.vpn.dump().unwrap(),
            contents.dump,
            "the live store went on after the snapshot"
        );
    }
    // A second restore into the same (now full) directory is refused.
    let again = restore(&file, &target, "--identity", &identity_file);
    assert!(!again.status.success());
    assert!(String::from_utf8_lossy(&again.stderr).contains("not empty"));

    // ---- served again from the restored directory: the node gets the whole state
    // whatever it applied (its revision from after the snapshot would be reached
    // again and name other changes; revisions moved to a new epoch).
    let seen = cp.vpn.last_event_seq().unwrap();
    let lost = cp.vpn.node_revision(node.id).unwrap();
    let revived = ControlPlane::builder().data_dir(&target).start().await;
    let node_client = revived.client(Some(&enrolled.token));
    for after in [applied, lost] {
        match node_client
            .desired(node.id, after, Duration::ZERO)
            .await
            .unwrap()
        {
            DesiredUpdate::Snapshot(s) => {
                assert_eq!(s.revision % vpnctl_core::store::RESTORE_EPOCH, 0);
                assert!(s.revision > lost);
            }
            other => panic!(
                "after {after}: a delta after the restore: {}",
                other.revision()
            ),
        }
    }
    // The event log is another: a follower of the lost store is refused at once,
    // even once the restored store has numbered as many events again (so `seen` is
    // a number here too, naming another event).
    let old_log = cp.vpn.event_log_id().unwrap();
    assert_ne!(revived.vpn.event_log_id().unwrap(), old_log);
    let mut i = 0;
    while revived.vpn.last_event_seq().unwrap() <= seen {
        revived
            .vpn
            .create_user(vpnctl_core::NewUser {
                name: format!("again{i}"),
                ..Default::default()
            })
            .unwrap();
        i += 1;
    }
    let Err(e) = revived
        .admin()
        .events_stream_at(Some(seen), Some(old_log))
        .await
    else {
        panic!("a stream resumed in the lost store's log");
    };
    assert_eq!(e.status(), Some(409), "{e}");
    assert!(e.to_string().contains("restored from a backup"), "{e}");
    // A follower that starts on the restored store follows it.
    let mut fresh = revived.admin().follow(revived.vpn.last_event_seq().ok());
    assert!(matches!(fresh.next().await, Ok(Followed::Open)));
    let user = revived
        .admin()
        .create_user(&CreateUser {
            name: "after the restore".into(),
            ..Default::default()
        })
        .await
        .unwrap();
    // (The sweep may judge the node meanwhile: other events may come first.)
    loop {
        match tokio::time::timeout(Duration::from_secs(10), fresh.next()).await {
            Ok(Ok(Followed::Event(e)))
                if e.kind == (vpnctl_core::EventKind::UserCreated { user: user.id }) =>
            {
                break;
            }
            Ok(Ok(Followed::Event(_) | Followed::Open)) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[test]
fn scheduled_backups_keep_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let vpn = Vpnctl::open_dir(&data).unwrap();
    let (identity, recipient) = backup::generate_identity(Timestamp::now());
    let schedule = Schedule {
        dir: dir.path().join("backups"),
        every: Duration::from_secs(3600),
        keep: 2,
        key: ScheduleKey::Recipient(recipient),
        telegram: false,
    };
    let mut written = Vec::new();
    for _ in 0..3 {
        written.push(backups::run_once(&vpn, &data, &schedule).unwrap());
        // File names carry the second they were taken.
        std::thread::sleep(Duration::from_millis(1100));
    }
    let kept = backups::list(&schedule.dir).unwrap();
    use std::os::unix::fs::PermissionsExt as _;
    assert_eq!(
        std::fs::metadata(&schedule.dir)
            .unwrap()
            .permissions()
            .mode()
            & 0o777,
        0o700
    );
    assert_eq!(kept, written[1..], "the oldest is deleted");
    let blob = std::fs::read(&kept[1]).unwrap();
    let key = RestoreKey::identity_file(&identity, "id").unwrap();
    assert_eq!(backup::open(&blob, &key).unwrap().dump, vpn.dump().unwrap());
    assert_eq!(
        std::fs::metadata(&kept[1]).unwrap().permissions().mode() & 0o777,
        0o600
    );
}
