//! How a node's tunnel looks on the wire: plain WireGuard, or AmneziaWG (AWG) with
//! its obfuscation parameters.
//!
//! AmneziaWG is WireGuard with junk packets before each handshake (`Jc`, `Jmin`,
//! `Jmax`), random padding in front of handshake messages (`S1`, `S2`; `S3`, `S4`
//! for cookie and data messages in AWG 2.0), custom message types in place of 1–4
//! (`H1`–`H4`; ranges in 2.0) and optional signature packets (`I1`–`I5`, AWG 1.5+).
//! Server and client must agree on `S*` and `H*`; `J*` and `I*` only shape what
//! each side sends.
//!
//! Only data and formats here; which values are safe and how they are generated is
//! decided in `vpnctl_core::transport`.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The tunnel protocol of a node. Plain WireGuard is the default: the official
/// WireGuard apps refuse a config with AWG keys.
///
/// Externally tagged (`"wireguard"` or `{"amneziawg": {...}}`) so that it encodes the
/// same way in JSON and in the store's postcard records.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Transport {
    #[default]
    Wireguard,
    Amneziawg(AwgParams),
}

impl Transport {
    /// `wireguard` or `amneziawg`, as the API and the CLI name it.
    pub fn kind(&self) -> TransportKind {
        match self {
            Self::Wireguard => TransportKind::Wireguard,
            Self::Amneziawg(_) => TransportKind::Amneziawg,
        }
    }

    pub fn awg(&self) -> Option<&AwgParams> {
        match self {
            Self::Wireguard => None,
            Self::Amneziawg(p) => Some(p),
        }
    }

    pub fn is_awg(&self) -> bool {
        matches!(self, Self::Amneziawg(_))
    }
}

/// The transport without its parameters: what the bot offers and lists show.
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
#[serde(rename_all = "snake_case")]
pub enum TransportKind {
    #[default]
    Wireguard,
    Amneziawg,
}

impl TransportKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Wireguard => "wireguard",
            Self::Amneziawg => "amneziawg",
        }
    }
}

impl fmt::Display for TransportKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for TransportKind {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.to_ascii_lowercase().as_str() {
            "wireguard" | "wg" => Ok(Self::Wireguard),
            "amneziawg" | "awg" => Ok(Self::Amneziawg),
            _ => Err(format!(
                "unknown transport {s:?}: use wireguard or amneziawg"
            )),
        }
    }
}

/// Which AmneziaWG protocol generation a node speaks; the client app must speak it
/// too (docs/awg.md lists the app versions).
#[derive(
    Debug, Clone, Copy, Default, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize,
)]
pub enum AwgGeneration {
    /// `Jc Jmin Jmax S1 S2 H1-H4`, single H values: every AmneziaWG client.
    #[default]
    #[serde(rename = "1.0")]
    V1_0,
    /// 1.0 plus signature packets `I1`–`I5`.
    #[serde(rename = "1.5")]
    V1_5,
    /// 1.5 plus `S3`, `S4` and H ranges.
    #[serde(rename = "2.0")]
    V2_0,
}

impl AwgGeneration {
    pub const ALL: [Self; 3] = [Self::V1_0, Self::V1_5, Self::V2_0];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::V1_0 => "1.0",
            Self::V1_5 => "1.5",
            Self::V2_0 => "2.0",
        }
    }

    /// Whether configs of this generation carry `I1`–`I5`.
    pub fn has_signature_packets(self) -> bool {
        self >= Self::V1_5
    }

    /// Whether configs of this generation carry `S3`, `S4` and H ranges.
    pub fn has_ranges(self) -> bool {
        self >= Self::V2_0
    }
}

impl fmt::Display for AwgGeneration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for AwgGeneration {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s.trim() {
            "1" | "1.0" => Ok(Self::V1_0),
            "1.5" => Ok(Self::V1_5),
            "2" | "2.0" => Ok(Self::V2_0),
            _ => Err(format!(
                "unknown AmneziaWG generation {s:?}: use 1.0, 1.5 or 2.0"
            )),
        }
    }
}

/// A message-type header: one value (`H1 = 1234`) or, in AWG 2.0, an inclusive range
/// (`H1 = 1234-5678`) from which each message picks one. Written and read as that
/// text in JSON and in configs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct HeaderRange {
    pub start: u32,
    pub end: u32,
}

impl HeaderRange {
    pub fn single(value: u32) -> Self {
        Self {
            start: value,
            end: value,
        }
    }

    pub fn is_single(&self) -> bool {
        self.start == self.end
    }

    pub fn overlaps(&self, other: &Self) -> bool {
        self.start <= other.end && other.start <= self.end
    }
}

impl fmt::Display for HeaderRange {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.is_single() {
            write!(f, "{}", self.start)
        } else {
            write!(f, "{}-{}", self.start, self.end)
        }
    }
}

impl FromStr for HeaderRange {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        let num = |t: &str| {
            t.trim()
                .parse::<u32>()
                .map_err(|_| format!("{s:?} is not a number or a range a-b of 0-4294967295"))
        };
        let (start, end) = match s.split_once('-') {
            Some((a, b)) => (num(a)?, num(b)?),
            None => {
                let v = num(s)?;
                (v, v)
            }
        };
        if end < start {
            return Err(format!("{s:?}: the range ends before it starts"));
        }
        Ok(Self { start, end })
    }
}

impl Serialize for HeaderRange {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for HeaderRange {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

/// A node's AmneziaWG parameters. `s3`, `s4` are 0 and the H values single below
/// generation 2.0; `i` is empty below 1.5.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AwgParams {
    pub generation: AwgGeneration,
    /// Junk packets sent before each handshake initiation.
    pub jc: u16,
    /// Smallest and largest junk packet, bytes.
    pub jmin: u16,
    pub jmax: u16,
    /// Random bytes in front of the handshake initiation (S1), response (S2),
    /// cookie reply (S3) and data messages (S4).
    pub s1: u16,
    pub s2: u16,
    #[serde(default)]
    pub s3: u16,
    #[serde(default)]
    pub s4: u16,
    /// Message types of initiation, response, cookie reply and data messages.
    pub h1: HeaderRange,
    pub h2: HeaderRange,
    pub h3: HeaderRange,
    pub h4: HeaderRange,
    /// Signature packets `I1`..`I5` in amneziawg's tag syntax (`<b 0x..><r 32>`),
    /// at most five, in order.
    #[serde(default)]
    pub i: Vec<String>,
}

impl AwgParams {
    /// The headers in order H1..H4.
    pub fn headers(&self) -> [HeaderRange; 4] {
        [self.h1, self.h2, self.h3, self.h4]
    }

    /// The interface keys of a wg-quick/awg-quick config (and of amneziawg-go's UAPI,
    /// lower-cased), in order, with exactly the keys this generation uses.
    pub fn config_lines(&self) -> Vec<(String, String)> {
        let mut out = vec![
            ("Jc".to_owned(), self.jc.to_string()),
            ("Jmin".to_owned(), self.jmin.to_string()),
            ("Jmax".to_owned(), self.jmax.to_string()),
            ("S1".to_owned(), self.s1.to_string()),
            ("S2".to_owned(), self.s2.to_string()),
        ];
        if self.generation.has_ranges() {
            out.push(("S3".to_owned(), self.s3.to_string()));
            out.push(("S4".to_owned(), self.s4.to_string()));
        }
        for (n, h) in self.headers().iter().enumerate() {
            out.push((format!("H{}", n + 1), h.to_string()));
        }
        if self.generation.has_signature_packets() {
            for (n, spec) in self.i.iter().enumerate() {
                out.push((format!("I{}", n + 1), spec.clone()));
            }
        }
        out
    }
}

/// What an admin asks for when adding or changing a node: a transport, with AWG
/// parameters given in full or to be generated by the control plane.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", deny_unknown_fields)]
pub enum TransportChoice {
    Wireguard,
    Amneziawg {
        /// Default 1.0 (every AmneziaWG client speaks it).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        generation: Option<AwgGeneration>,
        /// `None`: fresh parameters within the safe ranges.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        params: Option<AwgParams>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> AwgParams {
        AwgParams {
            generation: AwgGeneration::V2_0,
            jc: 4,
            jmin: 40,
            jmax: 70,
            s1: 20,
            s2: 30,
            s3: 40,
            s4: 8,
            h1: "100-200".parse().unwrap(),
            h2: HeaderRange::single(300),
            h3: HeaderRange::single(400),
            h4: "500-600".parse().unwrap(),
            i: vec!["<b 0x01><r 16>".into()],
        }
    }

    #[test]
    fn json_and_postcard_round_trip() {
        for t in [Transport::Wireguard, Transport::Amneziawg(params())] {
            let json = serde_json::to_string(&t).unwrap();
            assert_eq!(serde_json::from_str::<Transport>(&json).unwrap(), t);
            let bytes = postcard::to_allocvec(&t).unwrap();
            assert_eq!(postcard::from_bytes::<Transport>(&bytes).unwrap(), t);
        }
        let json = serde_json::to_value(Transport::Amneziawg(params())).unwrap();
        assert_eq!(json["amneziawg"]["h1"], "100-200");
        assert_eq!(json["amneziawg"]["generation"], "2.0");
        assert_eq!(
            serde_json::to_value(Transport::Wireguard).unwrap(),
            "wireguard"
        );
    }

    #[test]
    fn header_ranges_parse_and_print() {
        assert_eq!("7".parse::<HeaderRange>().unwrap(), HeaderRange::single(7));
        assert_eq!("7-9".parse::<HeaderRange>().unwrap().to_string(), "7-9");
        assert!("9-7".parse::<HeaderRange>().is_err());
        assert!("x".parse::<HeaderRange>().is_err());
        assert!("4294967296".parse::<HeaderRange>().is_err());
    }

    #[test]
    fn config_lines_follow_the_generation() {
        let mut p = params();
        let keys = |p: &AwgParams| {
            p.config_lines()
                .into_iter()
                .map(|(k, _)| k)
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert_eq!(keys(&p), "Jc Jmin Jmax S1 S2 S3 S4 H1 H2 H3 H4 I1");
        p.generation = AwgGeneration::V1_5;
        assert_eq!(keys(&p), "Jc Jmin Jmax S1 S2 H1 H2 H3 H4 I1");
        p.generation = AwgGeneration::V1_0;
        assert_eq!(keys(&p), "Jc Jmin Jmax S1 S2 H1 H2 H3 H4");
    }

    #[test]
    fn choice_json() {
        let c: TransportChoice =
            serde_json::from_str(r#"{"kind":"amneziawg","generation":"1.5"}"#).unwrap();
        assert_eq!(
            c,
            TransportChoice::Amneziawg {
                generation: Some(AwgGeneration::V1_5),
                params: None
            }
        );
        let w: TransportChoice = serde_json::from_str(r#"{"kind":"wireguard"}"#).unwrap();
        assert_eq!(w, TransportChoice::Wireguard);
    }
}
