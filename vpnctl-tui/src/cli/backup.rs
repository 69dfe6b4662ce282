//! `vpnctl backup --out FILE (--passphrase-file FILE | --recipient AGE1...)` and
//! `vpnctl backup-key --out FILE`.

use std::io::Write;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::Path;

use serde::Serialize;
use vpnctl_client::ApiClient;
use vpnctl_core::api::import::BackupRequest;
use vpnctl_core::backup;

use super::{BackupArgs, CliError, json};

pub(super) async fn run(
    api: &ApiClient,
    args: &BackupArgs,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let mut request = BackupRequest::default();
    if let Some(file) = &args.key.passphrase_file {
        let text = zeroize::Zeroizing::new(
            std::fs::read_to_string(file)
                .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?,
        );
        request.passphrase = Some(
            backup::passphrase_from_file_text(&text)
                .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?,
        );
    }
    if let Some(recipient) = &args.key.recipient {
        backup::BackupKey::recipient(recipient).map_err(|e| CliError::Usage(e.to_string()))?;
        request.recipient = Some(recipient.trim().to_owned());
    }
    let started = std::time::Instant::now();
    let blob = api.backup(&request).await?;
    backup::write_atomically(&args.out, &blob)
        .map_err(|e| CliError::Usage(format!("{}: {e}", args.out.display())))?;
    if as_json {
        #[derive(Serialize)]
        struct Out<'a> {
            file: &'a Path,
            bytes: usize,
        }
        return json(
            out,
            &Out {
                file: &args.out,
                bytes: blob.len(),
            },
        );
    }
    let key = if args.key.passphrase_file.is_some() {
        "--passphrase-file FILE"
    } else {
        "--identity KEY-FILE"
    };
    writeln!(
        out,
        "backup written to {} ({} bytes, {:.1} s); restore with `vpnctld restore --from {} --data NEW-DIR {key}`",
        args.out.display(),
        blob.len(),
        started.elapsed().as_secs_f64(),
        args.out.display()
    )?;
    Ok(())
}

pub(super) fn generate_key(
    file: &Path,
    as_json: bool,
    out: &mut dyn Write,
) -> Result<(), CliError> {
    let (text, recipient) = backup::generate_identity(vpnctl_core::Timestamp::now());
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(file)
        .map_err(|e| CliError::Usage(format!("{}: {e}", file.display())))?;
    f.write_all(text.as_bytes())?;
    f.sync_all()?;
    if as_json {
        #[derive(Serialize)]
        struct Out<'a> {
            identity_file: &'a Path,
            recipient: &'a str,
        }
        return json(
            out,
            &Out {
                identity_file: file,
                recipient: &recipient,
            },
        );
    }
    writeln!(
        out,
        "identity written to {} (keep it off the control plane: it opens every backup)\nrecipient: {recipient}",
        file.display()
    )?;
    Ok(())
}
