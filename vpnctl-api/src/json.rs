//! Lists written as JSON: what the server sends for a page of users, peers,
//! invites or payments.
//!
//! A row is written exactly as `serde_json` writes it; [`Peer`] writes itself by
//! hand because a page holds up to a thousand of them and half of the server's time
//! on a page went into serde's generic path (each field name and address passed
//! through string escaping, a call per piece). Its tests hold the two byte for byte.
//!
//! A page of peers is read back the same way: [`JsonRow::read_rows`] takes exactly
//! the layout the server writes (fields in order, no spaces, device names without
//! escapes) directly, and anything else (an escaped name, a field a newer server
//! added, spaces) through `serde_json`, so the rows and errors are serde's in every
//! case; serde_json's generic path was ~480 µs of a client's time per 1,000 peers.

use std::net::{Ipv4Addr, Ipv6Addr};

use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::model::{NodeId, Peer, PeerId, UserId};
use crate::time::Timestamp;

/// A row of a list the API serves.
pub trait JsonRow: Serialize + DeserializeOwned {
    /// Appends this row as JSON to `out`: the bytes `serde_json::to_writer` writes.
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        serde_json::to_writer(out, self)
    }

    /// A JSON array of rows, as `serde_json::from_slice` reads it (the same rows,
    /// the same errors).
    fn read_rows(json: &[u8]) -> serde_json::Result<Vec<Self>> {
        serde_json::from_slice(json)
    }
}

/// `rows` as a JSON array, appended to `out`.
pub fn write_rows<T: JsonRow>(rows: &[T], out: &mut Vec<u8>) -> serde_json::Result<()> {
    out.push(b'[');
    for (i, row) in rows.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        row.write_json(out)?;
    }
    out.push(b']');
    Ok(())
}

impl JsonRow for crate::model::User {}
impl JsonRow for crate::model::Invite {}
impl JsonRow for crate::model::Event {}
impl JsonRow for crate::billing::Payment {}

impl JsonRow for Peer {
    fn write_json(&self, out: &mut Vec<u8>) -> serde_json::Result<()> {
        // Field by field in declaration order, as the derive writes them; adding a
        // field to `Peer` without adding it here fails `peers_write_as_serde_does`.
        let Self {
            id,
            user,
            node,
            device,
            public_key,
            has_private_key,
            ipv4,
            ipv6,
            created_at,
            rotated_at,
        } = self;
        let mut n = itoa::Buffer::new();
        out.extend_from_slice(b"{\"id\":");
        out.extend_from_slice(n.format(id.0).as_bytes());
        out.extend_from_slice(b",\"user\":");
        out.extend_from_slice(n.format(user.0).as_bytes());
        out.extend_from_slice(b",\"node\":");
        out.extend_from_slice(n.format(node.0).as_bytes());
        out.extend_from_slice(b",\"device\":");
        // Text a person typed: serde's escaping.
        serde_json::to_writer(&mut *out, device.as_str())?;
        // Base64 and addresses need no escaping.
        out.extend_from_slice(b",\"public_key\":\"");
        out.extend_from_slice(public_key.base64_in(&mut [0; 44]).as_bytes());
        out.extend_from_slice(b"\",\"has_private_key\":");
        out.extend_from_slice(if *has_private_key { b"true" } else { b"false" });
        out.extend_from_slice(b",\"ipv4\":");
        write_v4(out, *ipv4, &mut n);
        out.extend_from_slice(b",\"ipv6\":");
        match ipv6 {
            Some(a) => write_v6(out, *a, &mut n),
            None => out.extend_from_slice(b"null"),
        }
        out.extend_from_slice(b",\"created_at\":");
        out.extend_from_slice(n.format(created_at.0).as_bytes());
        out.extend_from_slice(b",\"rotated_at\":");
        match rotated_at {
            Some(t) => out.extend_from_slice(n.format(t.0).as_bytes()),
            None => out.extend_from_slice(b"null"),
        }
        out.push(b'}');
        Ok(())
    }

    fn read_rows(json: &[u8]) -> serde_json::Result<Vec<Self>> {
        match read_peers(json) {
            Some(rows) => Ok(rows),
            None => serde_json::from_slice(json),
        }
    }
}

/// The peers of `json` when it is laid out exactly as [`Peer::write_json`] writes
/// them; `None` for anything else (then serde reads it). Each value is read by what
/// serde's derive calls for it (`str::parse` for keys and addresses), so a row read
/// here is the row serde reads.
fn read_peers(json: &[u8]) -> Option<Vec<Peer>> {
    let mut at = Cursor { json, at: 0 };
    at.literal(b"[")?;
    let mut rows = Vec::with_capacity(json.len() / 200);
    if at.literal(b"]").is_none() {
        loop {
            rows.push(at.peer()?);
            if at.literal(b",").is_none() {
                at.literal(b"]")?;
                break;
            }
        }
    }
    (at.at == json.len()).then_some(rows)
}

struct Cursor<'a> {
    json: &'a [u8],
    at: usize,
}

impl<'a> Cursor<'a> {
    fn peer(&mut self) -> Option<Peer> {
        self.literal(b"{\"id\":")?;
        let id = self.unsigned()?;
        self.literal(b",\"user\":")?;
        let user = self.unsigned()?;
        self.literal(b",\"node\":")?;
        let node = self.unsigned()?;
        self.literal(b",\"device\":")?;
        let device = self.plain_string()?.to_owned();
        self.literal(b",\"public_key\":")?;
        let public_key = self.plain_string()?.parse().ok()?;
        self.literal(b",\"has_private_key\":")?;
        let has_private_key = if self.literal(b"true").is_some() {
            true
        } else {
            self.literal(b"false")?;
            false
        };
        self.literal(b",\"ipv4\":")?;
        let ipv4 = self.plain_string()?.parse().ok()?;
        self.literal(b",\"ipv6\":")?;
        let ipv6 = match self.literal(b"null") {
            Some(()) => None,
            None => Some(self.plain_string()?.parse().ok()?),
        };
        self.literal(b",\"created_at\":")?;
        let created_at = self.signed()?;
        self.literal(b",\"rotated_at\":")?;
        let rotated_at = match self.literal(b"null") {
            Some(()) => None,
            None => Some(Timestamp(self.signed()?)),
        };
        self.literal(b"}")?;
        Some(Peer {
            id: PeerId(id),
            user: UserId(user),
            node: NodeId(node),
            device,
            public_key,
            has_private_key,
            ipv4,
            ipv6,
            created_at: Timestamp(created_at),
            rotated_at,
        })
    }

    fn literal(&mut self, text: &[u8]) -> Option<()> {
        let end = self.at + text.len();
        (self.json.get(self.at..end)? == text).then(|| self.at = end)
    }

    /// Digits as JSON writes an integer: no leading zero, within `u64`.
    fn unsigned(&mut self) -> Option<u64> {
        let digits = self.json[self.at..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count();
        if digits == 0 || (digits > 1 && self.json[self.at] == b'0') {
            return None;
        }
        let mut value: u64 = 0;
        for &b in &self.json[self.at..self.at + digits] {
            value = value.checked_mul(10)?.checked_add(u64::from(b - b'0'))?;
        }
        self.at += digits;
        Some(value)
    }

    /// An integer within `i64`; `-0` is not one (serde reads it as a float).
    fn signed(&mut self) -> Option<i64> {
        if self.literal(b"-").is_some() {
            let magnitude = self.unsigned().filter(|&m| m != 0)?;
            0_i64.checked_sub_unsigned(magnitude)
        } else {
            i64::try_from(self.unsigned()?).ok()
        }
    }

    /// A string without escapes or control characters (as serde reads those, they
    /// are the text between the quotes).
    fn plain_string(&mut self) -> Option<&'a str> {
        self.literal(b"\"")?;
        let rest = &self.json[self.at..];
        let len = rest
            .iter()
            .position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
        if rest[len] != b'"' {
            return None;
        }
        let text = std::str::from_utf8(&rest[..len]).ok()?;
        self.at += len + 1;
        Some(text)
    }
}

/// `"a.b.c.d"`, as `Ipv4Addr`'s `Display` spells it.
fn write_v4(out: &mut Vec<u8>, addr: Ipv4Addr, n: &mut itoa::Buffer) {
    out.push(b'"');
    write_v4_bare(out, addr, n);
    out.push(b'"');
}

fn write_v4_bare(out: &mut Vec<u8>, addr: Ipv4Addr, n: &mut itoa::Buffer) {
    for (i, octet) in addr.octets().into_iter().enumerate() {
        if i > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(n.format(octet).as_bytes());
    }
}

/// `"…"` as `Ipv6Addr`'s `Display` spells it (RFC 5952: lowercase, the longest run of
/// two or more zero groups as `::`, the first of equals; mapped IPv4 as
/// `::ffff:a.b.c.d`). `Display` goes through the formatting machinery a group at a
/// time, which made addresses the largest part of writing a peer.
fn write_v6(out: &mut Vec<u8>, addr: Ipv6Addr, n: &mut itoa::Buffer) {
    out.push(b'"');
    if let Some(v4) = addr.to_ipv4_mapped() {
        out.extend_from_slice(b"::ffff:");
        write_v4_bare(out, v4, n);
        out.push(b'"');
        return;
    }
    let groups = addr.segments();
    // The longest run of zero groups (the first, when two are as long).
    let (mut zeros_at, mut zeros) = (0, 0);
    let mut i = 0;
    while i < groups.len() {
        let run = groups[i..].iter().take_while(|&&g| g == 0).count();
        if run > zeros {
            (zeros_at, zeros) = (i, run);
        }
        i += run.max(1);
    }
    let write_groups = |out: &mut Vec<u8>, groups: &[u16]| {
        for (i, &g) in groups.iter().enumerate() {
            if i > 0 {
                out.push(b':');
            }
            write_hex(out, g);
        }
    };
    if zeros > 1 {
        write_groups(out, &groups[..zeros_at]);
        out.extend_from_slice(b"::");
        write_groups(out, &groups[zeros_at + zeros..]);
    } else {
        write_groups(out, &groups);
    }
    out.push(b'"');
}

/// A group in lowercase hex without leading zeros.
fn write_hex(out: &mut Vec<u8>, group: u16) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let digits = [
        HEX[usize::from(group >> 12)],
        HEX[usize::from((group >> 8) & 0xf)],
        HEX[usize::from((group >> 4) & 0xf)],
        HEX[usize::from(group & 0xf)],
    ];
    let skip = (group.leading_zeros() / 4).min(3) as usize;
    out.extend_from_slice(&digits[skip..]);
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::*;
    use crate::keys::PublicKey;
    use crate::model::{NodeId, PeerId, UserId};
    use crate::time::Timestamp;

    fn by_hand(rows: &[Peer]) -> String {
        let mut out = Vec::new();
        write_rows(rows, &mut out).unwrap();
        String::from_utf8(out).expect("JSON is UTF-8")
    }

    fn peer(device: &str) -> Peer {
        Peer {
            id: PeerId(7),
            user: UserId(3),
            node: NodeId(1),
            device: device.to_owned(),
            public_key: PublicKey::from_bytes([9; 32]),
            has_private_key: true,
            ipv4: Ipv4Addr::new(10, 8, 0, 2),
            ipv6: None,
            created_at: Timestamp(1_700_000_000),
            rotated_at: None,
        }
    }

    #[test]
    fn a_page_reads_back_as_the_peers_it_was_written_from() {
        let rows = vec![
            peer("laptop"),
            Peer {
                ipv6: Some("fd00:8::2".parse().unwrap()),
                rotated_at: Some(Timestamp(-1)),
                has_private_key: false,
                ..peer("Айфон \"мамы\"\\\n\u{1}")
            },
        ];
        let text = by_hand(&rows);
        assert_eq!(text, serde_json::to_string(&rows).unwrap());
        assert_eq!(serde_json::from_str::<Vec<Peer>>(&text).unwrap(), rows);
        assert_eq!(by_hand(&[]), "[]");
    }

    /// Numbers at the edges of what JSON and `i64` allow read as serde reads them:
    /// the same value or an error, directly or through serde.
    #[test]
    fn edge_numbers_read_as_serde_reads_them() {
        let page = by_hand(&[peer("laptop")]);
        for (number, direct) in [
            ("-0", false),
            ("0", true),
            ("01", false),
            ("-01", false),
            ("1e3", false),
            ("1.0", false),
            ("-1", true),
            ("-9223372036854775808", true),
            ("-9223372036854775809", false),
            ("9223372036854775807", true),
            ("9223372036854775808", false),
            ("18446744073709551616", false),
        ] {
            let text = page.replace(
                "\"created_at\":1700000000",
                &format!("\"created_at\":{number}"),
            );
            assert_ne!(text, page);
            let serde = serde_json::from_str::<Vec<Peer>>(&text);
            assert_eq!(read_peers(text.as_bytes()).is_some(), direct, "{number}");
            match (Peer::read_rows(text.as_bytes()), serde) {
                (Ok(ours), Ok(theirs)) => assert_eq!(ours, theirs, "{number}"),
                (Err(_), Err(_)) => {}
                (ours, theirs) => panic!(
                    "{number}: {:?} against serde's {:?}",
                    ours.is_ok(),
                    theirs.is_ok()
                ),
            }
        }
    }

    fn v6(addr: Ipv6Addr) -> String {
        let mut out = Vec::new();
        write_v6(&mut out, addr, &mut itoa::Buffer::new());
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn ipv6_is_spelled_as_display_spells_it() {
        for text in [
            "::",
            "::1",
            "1::",
            "fd00:8::2",
            "1:0:0:2:0:0:0:3",
            "1:0:0:2:0:0:3:4",
            "1:0:2:3:4:5:6:7",
            "0:1:2:3:4:5:6:0",
            "::ffff:192.0.2.1",
            "::192.0.2.1",
            "64:ff9b::c000:201",
            "fe80::1:abcd:ef01",
            "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff",
        ] {
            let addr: Ipv6Addr = text.parse().unwrap();
            assert_eq!(v6(addr), format!("\"{addr}\""), "{text}");
        }
    }

    proptest! {
        #[test]
        fn ipv6_with_zero_runs_is_spelled_as_display_spells_it(
            groups in prop::array::uniform8(prop_oneof![Just(0u16), Just(0xffff), any::<u16>()])
        ) {
            let addr = Ipv6Addr::from(groups);
            prop_assert_eq!(v6(addr), format!("\"{addr}\""));
        }

        #[test]
        fn peers_write_as_serde_does(
            ids in any::<(u64, u64, u64)>(),
            device in any::<String>(),
            key in any::<[u8; 32]>(),
            has_private_key in any::<bool>(),
            ipv4 in any::<u32>(),
            ipv6 in any::<Option<u128>>(),
            created_at in any::<i64>(),
            rotated_at in any::<Option<i64>>(),
        ) {
            let p = Peer {
                id: PeerId(ids.0),
                user: UserId(ids.1),
                node: NodeId(ids.2),
                device,
                public_key: PublicKey::from_bytes(key),
                has_private_key,
                ipv4: Ipv4Addr::from(ipv4),
                ipv6: ipv6.map(Ipv6Addr::from),
                created_at: Timestamp(created_at),
                rotated_at: rotated_at.map(Timestamp),
            };
            let rows = [p.clone(), p];
            prop_assert_eq!(by_hand(&rows), serde_json::to_string(&rows).unwrap());
            // Read back: the rows, directly unless the name needed escapes.
            let text = by_hand(&rows);
            let direct = read_peers(text.as_bytes());
            let plain = !rows[0].device.chars().any(|c| c == '"' || c == '\\' || c < ' ');
            prop_assert_eq!(direct.is_some(), plain);
            prop_assert_eq!(Peer::read_rows(text.as_bytes()).unwrap(), rows.to_vec());
        }

        /// Any change to a page, valid JSON or not, reads as serde reads it: the same
        /// rows, or an error where serde has one.
        #[test]
        fn pages_read_as_serde_reads_them(
            at in any::<prop::sample::Index>(),
            edit in prop_oneof![
                Just(""), Just(" "), Just("0"), Just("-"), Just("9"), Just("\""),
                Just("\\"), Just("\\u0041"), Just(","), Just("null"), Just("}"),
                Just("\"x\":1,"), Just("\u{1}"), Just("é"), Just("99999999999999999999"),
            ],
            cut in any::<bool>(),
        ) {
            let mut rows = vec![
                peer("laptop"),
                Peer {
                    id: PeerId(u64::MAX),
                    ipv6: Some("fd00:8::2".parse().unwrap()),
                    rotated_at: Some(Timestamp(i64::MIN)),
                    created_at: Timestamp(0),
                    ..peer("Айфон мамы")
                },
            ];
            rows[0].ipv6 = Some("::ffff:192.0.2.1".parse().unwrap());
            let text = by_hand(&rows);
            // An edit at any character boundary: inserted, or replacing one byte.
            let mut at = at.index(text.len() + 1);
            while !text.is_char_boundary(at) {
                at -= 1;
            }
            let mut edited = text.as_bytes()[..at].to_vec();
            edited.extend_from_slice(edit.as_bytes());
            let skip = usize::from(cut && at < text.len());
            edited.extend_from_slice(&text.as_bytes()[at + skip..]);
            let ours = Peer::read_rows(&edited).map_err(|e| e.to_string());
            let serde = serde_json::from_slice::<Vec<Peer>>(&edited).map_err(|e| e.to_string());
            prop_assert_eq!(ours, serde, "{}", String::from_utf8_lossy(&edited));
        }
    }

    #[test]
    fn a_newer_servers_extra_field_and_spaces_still_read() {
        let text = by_hand(&[peer("laptop")]);
        let newer = text.replacen("\"id\":7,", "\"id\":7,\"label\":\"x\",", 1);
        assert!(read_peers(newer.as_bytes()).is_none());
        assert_eq!(Peer::read_rows(newer.as_bytes()).unwrap(), [peer("laptop")]);
        let spaced = format!(" {}\n", text.replace(',', ", "));
        assert_eq!(
            Peer::read_rows(spaced.as_bytes()).unwrap(),
            [peer("laptop")]
        );
        assert_eq!(read_peers(b"[]"), Some(Vec::new()));
        assert!(Peer::read_rows(b"[").is_err());
    }
}
