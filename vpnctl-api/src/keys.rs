//! WireGuard keys: x25519 key pairs and preshared keys, in the base64 form that `wg`
//! prints and the official apps import.
//!
//! Secret types ([`PrivateKey`], [`PresharedKey`]) are zeroized on drop and never
//! reveal themselves through `Debug` or `Display`; the only way out is the explicit
//! [`PrivateKey::expose_base64`] used when a config is rendered.

use std::fmt;
use std::str::FromStr;

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use rand_core::{OsRng, RngCore};
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use zeroize::{Zeroize, ZeroizeOnDrop};

/// Length of every WireGuard key in bytes.
pub const KEY_LEN: usize = 32;

/// A key string that is not 44 characters of base64 encoding 32 bytes.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "malformed WireGuard key: {reason} (expected 44 characters of base64, as `wg genkey` prints)"
)]
pub struct KeyError {
    reason: &'static str,
}

fn decode_key(text: &str) -> Result<[u8; KEY_LEN], KeyError> {
    let text = text.trim();
    if text.len() != 44 {
        return Err(KeyError {
            reason: "wrong length",
        });
    }
    let mut out = [0u8; KEY_LEN];
    let mut buf = [0u8; 33];
    let n = STANDARD
        .decode_slice(text, &mut buf)
        .map_err(|_| KeyError {
            reason: "not valid base64",
        })?;
    if n != KEY_LEN {
        buf.zeroize();
        return Err(KeyError {
            reason: "does not decode to 32 bytes",
        });
    }
    out.copy_from_slice(&buf[..KEY_LEN]);
    buf.zeroize();
    Ok(out)
}

fn encode_key(bytes: &[u8; KEY_LEN]) -> String {
    STANDARD.encode(bytes)
}

/// A WireGuard public key. Public, so it prints as base64.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        Self(bytes)
    }

    pub const fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    pub fn to_base64(&self) -> String {
        encode_key(&self.0)
    }

    /// The base64 form written into `buf`, without allocating: lists serialize
    /// thousands of keys a page.
    pub(crate) fn base64_in<'b>(&self, buf: &'b mut [u8; 44]) -> &'b str {
        let n = STANDARD
            .encode_slice(self.0, buf)
            .expect("32 bytes are 44 characters of base64");
        std::str::from_utf8(&buf[..n]).expect("base64 is ASCII")
    }
}

impl FromStr for PublicKey {
    type Err = KeyError;
    fn from_str(s: &str) -> Result<Self, KeyError> {
        decode_key(s).map(Self)
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.base64_in(&mut [0; 44]))
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({})", self.to_base64())
    }
}

impl Serialize for PublicKey {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        if s.is_human_readable() {
            s.serialize_str(self.base64_in(&mut [0; 44]))
        } else {
            self.0.serialize(s)
        }
    }
}

impl<'de> Deserialize<'de> for PublicKey {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        if d.is_human_readable() {
            d.deserialize_str(PublicKeyText)
        } else {
            <[u8; KEY_LEN]>::deserialize(d).map(Self)
        }
    }
}

/// Reads a public key from text without first copying it into a `String`.
struct PublicKeyText;

impl serde::de::Visitor<'_> for PublicKeyText {
    type Value = PublicKey;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a WireGuard public key (44 characters of base64)")
    }

    fn visit_str<E: serde::de::Error>(self, text: &str) -> Result<PublicKey, E> {
        text.parse().map_err(E::custom)
    }
}

macro_rules! secret_key {
    ($(#[$doc:meta])* $name:ident) => {
        $(#[$doc])*
        #[derive(Clone, PartialEq, Eq, Zeroize, ZeroizeOnDrop)]
        pub struct $name([u8; KEY_LEN]);

        impl $name {
            pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
                Self(bytes)
            }

            /// The raw key. Callers must not log it.
            pub const fn expose_bytes(&self) -> &[u8; KEY_LEN] {
                &self.0
            }

            /// The key as `wg` prints it. Only for writing a config or the WireGuard
            /// UAPI; never for logs.
            pub fn expose_base64(&self) -> String {
                encode_key(&self.0)
            }

            /// Parses the base64 form. The error never contains the input.
            pub fn from_base64(text: &str) -> Result<Self, KeyError> {
                decode_key(text).map(Self)
            }
        }

        impl fmt::Debug for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(concat!(stringify!($name), "(***)"))
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("***")
            }
        }

        // Serialization exists for the node protocol (the node needs the preshared key)
        // and the encrypted store; both are explicit about carrying secrets.
        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                if s.is_human_readable() {
                    s.serialize_str(&self.expose_base64())
                } else {
                    self.0.serialize(s)
                }
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                if d.is_human_readable() {
                    let mut s = String::deserialize(d)?;
                    let key = Self::from_base64(&s).map_err(serde::de::Error::custom);
                    s.zeroize();
                    key
                } else {
                    <[u8; KEY_LEN]>::deserialize(d).map(Self)
                }
            }
        }
    };
}

secret_key!(
    /// An x25519 private key. `Debug`/`Display` print `***`.
    PrivateKey
);

secret_key!(
    /// A WireGuard preshared key (32 random bytes). `Debug`/`Display` print `***`.
    PresharedKey
);

impl PrivateKey {
    /// A fresh key from the OS RNG, clamped the way `wg genkey` prints it (x25519
    /// clamps on use anyway; clamped bytes keep our keys byte-identical to wg's).
    pub fn generate() -> Self {
        let mut bytes = x25519_dalek::StaticSecret::random_from_rng(OsRng).to_bytes();
        bytes[0] &= 248;
        bytes[31] &= 127;
        bytes[31] |= 64;
        Self(bytes)
    }

    pub fn public_key(&self) -> PublicKey {
        let secret = x25519_dalek::StaticSecret::from(self.0);
        PublicKey(x25519_dalek::PublicKey::from(&secret).to_bytes())
    }
}

impl PresharedKey {
    pub fn generate() -> Self {
        let mut bytes = [0u8; KEY_LEN];
        OsRng.fill_bytes(&mut bytes);
        Self(bytes)
    }
}

/// A private key with its public key, as made by `wg genkey | wg pubkey`.
#[derive(Debug, Clone)]
pub struct KeyPair {
    pub private: PrivateKey,
    pub public: PublicKey,
}

impl KeyPair {
    pub fn generate() -> Self {
        let private = PrivateKey::generate();
        let public = private.public_key();
        Self { private, public }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn public_key_round_trips_base64() {
        let pair = KeyPair::generate();
        let text = pair.public.to_string();
        assert_eq!(text.len(), 44);
        assert_eq!(text.parse::<PublicKey>().unwrap(), pair.public);
    }

    #[test]
    fn derives_the_same_public_key_as_wg() {
        // Vector from RFC 7748 §6.1 (Alice): what `echo <priv> | wg pubkey` prints.
        let private = PrivateKey::from_bytes([
            0x77, 0x07, 0x6d, 0x0a, 0x73, 0x18, 0xa5, 0x7d, 0x3c, 0x16, 0xc1, 0x72, 0x51, 0xb2,
            0x66, 0x45, 0xdf, 0x4c, 0x2f, 0x87, 0xeb, 0xc0, 0x99, 0x2a, 0xb1, 0x77, 0xfb, 0xa5,
            0x1d, 0xb9, 0x2c, 0x2a,
        ]);
        let expected = [
            0x85, 0x20, 0xf0, 0x09, 0x89, 0x30, 0xa7, 0x54, 0x74, 0x8b, 0x7d, 0xdc, 0xb4, 0x3e,
            0xf7, 0x5a, 0x0d, 0xbf, 0x3a, 0x0d, 0x26, 0x38, 0x1a, 0xf4, 0xeb, 0xa4, 0xa9, 0x8e,
            0xaa, 0x9b, 0x4e, 0x6a,
        ];
        assert_eq!(private.public_key().as_bytes(), &expected);
    }

    #[test]
    fn generated_private_keys_are_clamped() {
        let key = PrivateKey::generate();
        let b = key.expose_bytes();
        assert_eq!(b[0] & 7, 0);
        assert_eq!(b[31] & 0x80, 0);
        assert_eq!(b[31] & 0x40, 0x40);
    }

    #[test]
    fn secrets_never_print() {
        let key = PrivateKey::generate();
        let psk = PresharedKey::generate();
        let b64 = key.expose_base64();
        for text in [
            format!("{key:?}"),
            format!("{key}"),
            format!("{psk:?} {psk}"),
        ] {
            assert!(!text.contains(&b64), "{text}");
            assert!(text.contains("***"));
        }
        assert!(!format!("{psk:?}").contains(&psk.expose_base64()));
    }

    #[test]
    fn malformed_keys_are_rejected_without_echo() {
        for bad in [
            "",
            "abc",
            "!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!!=",
            // 44 chars but 33 bytes of payload is impossible; this one decodes to 31 bytes
            "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==",
        ] {
            let err = bad.parse::<PublicKey>().unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains("malformed WireGuard key"), "{msg}");
            if !bad.is_empty() {
                assert!(!msg.contains(bad));
            }
        }
    }

    #[test]
    fn json_uses_base64_and_postcard_uses_bytes() {
        let pair = KeyPair::generate();
        let json = serde_json::to_string(&pair.public).unwrap();
        assert_eq!(json, format!("\"{}\"", pair.public));
        assert_eq!(pair.public.to_string(), pair.public.to_base64());
        assert_eq!(
            serde_json::from_str::<PublicKey>(&json).unwrap(),
            pair.public
        );
        // An escaped string is read through a copy, and still decodes.
        let escaped = format!("\"\\u{:04x}{}", json.as_bytes()[1], &json[2..]);
        assert_eq!(
            serde_json::from_str::<PublicKey>(&escaped).unwrap(),
            pair.public
        );
        let err = serde_json::from_str::<PublicKey>("\"abc\"").unwrap_err();
        assert!(err.to_string().contains("malformed WireGuard key"), "{err}");
        let err = serde_json::from_str::<PublicKey>("7").unwrap_err();
        assert!(err.to_string().contains("44 characters of base64"), "{err}");
        let bin = postcard::to_stdvec(&pair.public).unwrap();
        assert_eq!(bin.len(), 32);
        assert_eq!(
            postcard::from_bytes::<PublicKey>(&bin).unwrap(),
            pair.public
        );
    }
}
