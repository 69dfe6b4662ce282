//! gzip for large JSON answers: a client that asks (`Accept-Encoding: gzip`) gets
//! any JSON answer of at least [`MIN_BYTES`] compressed. A page of 1,000 peers is
//! ~220 KB as JSON and ~60 KB compressed, so a dashboard's first read of 200,000
//! peers over a slow link is a quarter of the bytes.
//!
//! The rule is here once: the server compresses what [`worth_compressing`] says,
//! the client decodes with [`gunzip`].

use std::io::{Read, Write};

use flate2::Compression;
use flate2::read::GzDecoder;
use flate2::write::GzEncoder;

/// Smaller answers go as they are: compressing them saves less than it costs.
/// An answer with a secret in it (a config, a key, a token, a node's desired state
/// with preshared keys) is never compressed, whatever its size: the server leaves
/// every answer it marks `no-store` alone (no BREACH-style guessing).
pub const MIN_BYTES: usize = 16 * 1024;

/// The value of `Content-Encoding` (and of `Accept-Encoding` a client sends).
pub const ENCODING: &str = "gzip";

/// Whether an `Accept-Encoding` header value accepts gzip: a `gzip` (or `x-gzip`)
/// token whose `q` is not zero.
#[must_use]
pub fn accepts(accept_encoding: &str) -> bool {
    accept_encoding.split(',').any(|item| {
        let mut parts = item.split(';');
        let coding = parts.next().unwrap_or("").trim();
        if !(coding.eq_ignore_ascii_case("gzip") || coding.eq_ignore_ascii_case("x-gzip")) {
            return false;
        }
        parts.all(|param| {
            let Some((name, value)) = param.split_once('=') else {
                return true;
            };
            !name.trim().eq_ignore_ascii_case("q")
                || value.trim().parse::<f32>().is_ok_and(|q| q > 0.0)
        })
    })
}

/// Whether an answer of `len` bytes of `content_type` is compressed for a client
/// that accepts gzip: JSON of at least [`MIN_BYTES`].
#[must_use]
pub fn worth_compressing(content_type: &str, len: u64) -> bool {
    let mime = content_type.split(';').next().unwrap_or("").trim();
    mime.eq_ignore_ascii_case("application/json")
        && usize::try_from(len).is_ok_and(|len| len >= MIN_BYTES)
}

/// `data` compressed at the fastest level: the server spends ~1 ms on a page of
/// 1,000 peers (level 1 is within 10% of level 6's size on such pages).
#[must_use]
pub fn gzip(data: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::with_capacity(data.len() / 3), Compression::fast());
    encoder
        .write_all(data)
        .and_then(|()| encoder.finish())
        .expect("writing to a Vec cannot fail")
}

/// Why a compressed answer could not be read.
#[derive(Debug, thiserror::Error)]
pub enum GunzipError {
    #[error("gzip: {0}")]
    Corrupt(#[from] std::io::Error),
    #[error("gzip: more than {0} bytes once decompressed")]
    TooLarge(usize),
}

/// `data` decompressed, refused beyond `max` bytes (a tiny answer can inflate to
/// gigabytes).
pub fn gunzip(data: &[u8], max: usize) -> Result<Vec<u8>, GunzipError> {
    let mut out = Vec::with_capacity(data.len().saturating_mul(4).min(max));
    let limit = u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1);
    GzDecoder::new(data).take(limit).read_to_end(&mut out)?;
    if out.len() > max {
        return Err(GunzipError::TooLarge(max));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_encoding_is_read_as_http_says() {
        for (header, yes) in [
            ("gzip", true),
            ("GZIP", true),
            ("deflate, gzip;q=1.0, *;q=0.5", true),
            ("br, x-gzip", true),
            ("gzip;q=0.001", true),
            ("gzip;q=0", false),
            ("gzip; q=0.0", false),
            ("gzip;q=nonsense", false),
            ("identity", false),
            ("br, deflate", false),
            ("gzipped", false),
            ("", false),
        ] {
            assert_eq!(accepts(header), yes, "{header:?}");
        }
    }

    #[test]
    fn only_large_json_is_worth_it() {
        assert!(worth_compressing("application/json", 16 * 1024));
        assert!(worth_compressing(
            "Application/JSON; charset=utf-8",
            1 << 20
        ));
        assert!(!worth_compressing("application/json", 16 * 1024 - 1));
        assert!(!worth_compressing("text/event-stream", 1 << 20));
        assert!(!worth_compressing("application/octet-stream", 1 << 20));
        assert!(!worth_compressing("", 1 << 20));
    }

    #[test]
    fn gzip_reads_back_and_a_bomb_is_refused() {
        let text = br#"[{"id":1,"device":"laptop"},{"id":2,"device":"phone"}]"#.repeat(500);
        let packed = gzip(&text);
        assert!(packed.len() * 10 < text.len(), "{} bytes", packed.len());
        assert_eq!(gunzip(&packed, text.len()).unwrap(), text);
        assert!(matches!(
            gunzip(&packed, text.len() - 1),
            Err(GunzipError::TooLarge(_))
        ));
        assert!(matches!(
            gunzip(&text, usize::MAX),
            Err(GunzipError::Corrupt(_))
        ));
        let mut cut = packed.clone();
        cut.truncate(packed.len() / 2);
        assert!(gunzip(&cut, usize::MAX).is_err());
    }
}
