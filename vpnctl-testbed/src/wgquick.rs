//! A standard `wg-quick` client inside a namespace, as the official apps would use the
//! config we hand out.

use std::io::Write as _;
use std::os::unix::fs::{OpenOptionsExt as _, PermissionsExt as _};
use std::path::{Path, PathBuf};

use crate::Netns;
use crate::process::UapiGuard;

/// `wg-quick up` of a config file inside a namespace; `wg-quick down` on drop.
///
/// The interface name is the config file's stem, as with wg-quick itself. A stub
/// `resolvconf` is put first on `PATH`: a `DNS =` line goes into the namespace's own
/// resolv.conf when it has one ([`Netns::set_resolv_conf`]), never into the host's.
/// The userspace implementation is `wireguard-go`.
#[derive(Debug)]
pub struct WgQuick {
    ns_name: String,
    conf: PathBuf,
    dir: tempfile::TempDir,
    _uapi: UapiGuard,
}

impl WgQuick {
    /// Writes `config` (mode 0600) as `<iface>.conf` and brings it up in `ns`. Panics
    /// with wg-quick's output on failure (wg-quick never prints keys).
    pub fn up(ns: &Netns, iface: &str, config: &str) -> Self {
        let uapi = UapiGuard::new(iface);
        let dir = tempfile::Builder::new()
            .prefix("vpnctl-wgquick-")
            .tempdir()
            .expect("temp dir");
        let bin = dir.path().join("bin");
        std::fs::create_dir(&bin).expect("mkdir bin");
        // wg-quick hands a `DNS =` line to `resolvconf -a <iface>` (nameservers on
        // stdin) and calls `resolvconf -d <iface>` on down. The stub applies them to
        // the namespace's own resolv.conf, if it has one (Netns::set_resolv_conf), and
        // puts back what was there before on down, as resolvconf does; so names
        // resolve through the tunnel exactly as the config says, and after it with
        // the namespace's own resolver. It never writes the host's /etc/resolv.conf.
        let ns_resolv = ns.etc_dir().join("resolv.conf");
        let stub = bin.join("resolvconf");
        std::fs::write(
            &stub,
            format!(
                "#!/bin/sh\n# vpnctl-testbed stub for wg-quick: the namespace's resolv.conf only\n\
                 target='{target}'\n\
                 saved='{target}.before-wg-quick'\n\
                 case \"$1\" in\n\
                 -a) if [ -f \"$target\" ]; then\n\
                 [ -f \"$saved\" ] || cp \"$target\" \"$saved\"\n\
                 cat >\"$target\"\n\
                 else cat >/dev/null; fi ;;\n\
                 -d) if [ -f \"$saved\" ]; then mv \"$saved\" \"$target\"; fi ;;\n\
                 *) cat >/dev/null ;;\n\
                 esac\n\
                 exit 0\n",
                target = ns_resolv.display()
            ),
        )
        .expect("write resolvconf stub");
        std::fs::set_permissions(&stub, std::fs::Permissions::from_mode(0o755))
            .expect("chmod stub");

        let conf = dir.path().join(format!("{iface}.conf"));
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&conf)
            .expect("create wg-quick config");
        file.write_all(config.as_bytes())
            .expect("write wg-quick config");
        drop(file);

        let guard = Self {
            ns_name: ns.name().to_owned(),
            conf,
            dir,
            _uapi: uapi,
        };
        let out = guard.command("up").output().expect("spawn wg-quick up");
        assert!(
            out.status.success(),
            "wg-quick up {iface} in {} failed: {}{}",
            ns.name(),
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        guard
    }

    pub fn config_path(&self) -> &Path {
        &self.conf
    }

    /// `ip netns exec NS wg-quick VERB CONF` with the stub on `PATH`.
    fn command(&self, verb: &str) -> std::process::Command {
        let path = std::env::var_os("PATH").unwrap_or_default();
        let mut paths = vec![self.dir.path().join("bin")];
        paths.extend(std::env::split_paths(&path));
        let mut cmd = std::process::Command::new("ip");
        cmd.args(["netns", "exec", &self.ns_name, "wg-quick", verb])
            .arg(&self.conf)
            .env("PATH", std::env::join_paths(paths).unwrap_or_default())
            .env("WG_QUICK_USERSPACE_IMPLEMENTATION", "wireguard-go")
            .stdin(std::process::Stdio::null());
        cmd
    }
}

impl Drop for WgQuick {
    fn drop(&mut self) {
        // If the namespace was dropped first there is nothing left to take down.
        if Path::new("/run/netns").join(&self.ns_name).exists() {
            let _ = self.command("down").output();
        }
    }
}
