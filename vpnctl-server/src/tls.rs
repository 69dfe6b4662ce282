//! The server's self-signed certificate (made at `vpnctld init`) and the rustls
//! configuration the listener ([`crate::listener`]) serves it with. Clients pin the certificate's SHA-256 fingerprint instead of trusting a
//! CA, so the certificate never needs renewing by a third party.

use std::fs::OpenOptions;
use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt;
use std::path::Path;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use vpnctl_api::Fingerprint;

use crate::ServerError;

pub const CERT_FILE: &str = "tls.crt";
pub const KEY_FILE: &str = "tls.key";

/// Writes a new self-signed certificate (`tls.crt`) and its key (`tls.key`, 0600)
/// into `dir` for the given names (DNS names or IP addresses); returns the
/// certificate's fingerprint.
pub fn generate(dir: &Path, names: Vec<String>) -> Result<Fingerprint, ServerError> {
    let certified = rcgen::generate_simple_self_signed(names)
        .map_err(|e| ServerError::Tls(format!("generating the certificate: {e}")))?;
    let fingerprint = Fingerprint::of_der(certified.cert.der());
    let key_pem = zeroize::Zeroizing::new(certified.signing_key.serialize_pem());
    write_file(&dir.join(KEY_FILE), key_pem.as_bytes(), 0o600)?;
    write_file(&dir.join(CERT_FILE), certified.cert.pem().as_bytes(), 0o644)?;
    Ok(fingerprint)
}

fn write_file(path: &Path, bytes: &[u8], mode: u32) -> Result<(), ServerError> {
    let mut file = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(|e| ServerError::Io(format!("creating {}: {e}", path.display())))?;
    file.write_all(bytes)
        .and_then(|()| file.sync_all())
        .map_err(|e| ServerError::Io(format!("writing {}: {e}", path.display())))
}

/// Loads `tls.crt` and `tls.key` from `dir` into a rustls server configuration
/// (ring provider, HTTP/1.1) and returns it with the certificate's fingerprint.
pub fn load(dir: &Path) -> Result<(rustls::ServerConfig, Fingerprint), ServerError> {
    let cert_path = dir.join(CERT_FILE);
    let key_path = dir.join(KEY_FILE);
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(&cert_path)
        .and_then(Iterator::collect)
        .map_err(|e| {
            ServerError::Tls(format!(
                "reading {} (run `vpnctld init` first): {e}",
                cert_path.display()
            ))
        })?;
    let first = certs
        .first()
        .ok_or_else(|| ServerError::Tls(format!("{} holds no certificate", cert_path.display())))?;
    let fingerprint = Fingerprint::of_der(first.as_ref());
    let key = PrivateKeyDer::from_pem_file(&key_path)
        .map_err(|e| ServerError::Tls(format!("reading {}: {e}", key_path.display())))?;
    let mut config = rustls::ServerConfig::builder_with_provider(Arc::new(
        rustls::crypto::ring::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .map_err(|e| ServerError::Tls(e.to_string()))?
    .with_no_client_auth()
    .with_single_cert(certs, key)
    .map_err(|e| ServerError::Tls(format!("certificate and key: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok((config, fingerprint))
}
