//! AmneziaWG parameters: which values are safe, how fresh ones are generated, and
//! what an admin's choice resolves to.
//!
//! The safe ranges follow AmneziaWG's documentation, for a path that carries 1,280
//! bytes (IPv6's minimum, the MTU every node here defaults to), so that no junk or
//! padded handshake packet is ever fragmented or dropped for its size:
//!
//! | key | rule | generated |
//! |---|---|---|
//! | `Jc` | 1..=128 | 4..=10 |
//! | `Jmin`, `Jmax` | 1 ≤ Jmin ≤ Jmax ≤ 1232 (a 1,280-byte packet less IPv6 + UDP headers), Jmax below the node's MTU | Jmin 40..=80, Jmax Jmin+50..=Jmin+500 |
//! | `S1` | ≤ 1084 (1232 − 148); S1 + 56 ≠ S2 | 15..=150 |
//! | `S2` | ≤ 1140 (1232 − 92) | 15..=150 |
//! | `S3` (2.0) | ≤ 1168 (1232 − 64) | 15..=150 |
//! | `S4` (2.0) | ≤ 32: it is added to every data packet | 1..=16 |
//! | `H1`–`H4` | ≥ 5 (1–4 are WireGuard's own types), pairwise non-overlapping | one value (1.0, 1.5) or a range (2.0) in each quarter of 5..=2³¹−1, in random order |
//! | `I1`–`I5` (1.5+) | amneziawg tags `<b 0xHEX>`, `<r N>`, `<rc N>`, `<rd N>`, `<t>`; ≤ 1232 bytes each | `I1` = 16 random bytes + 64..=256 random |
//!
//! Padded handshake messages must differ in size (148 + S1, 92 + S2, 64 + S3): a
//! receiver tells them apart by size before it reads the type.

use rand_core::{OsRng, RngCore};

use crate::error::{Error, Result};
pub use vpnctl_api::transport::{
    AwgGeneration, AwgParams, HeaderRange, Transport, TransportChoice, TransportKind,
};

/// The largest UDP payload a 1,280-byte path carries over IPv6 (1280 − 40 − 8).
pub const MAX_DATAGRAM: u16 = 1232;
const INIT: u16 = 148;
const RESPONSE: u16 = 92;
const COOKIE: u16 = 64;
/// Smallest custom message type: 1–4 are WireGuard's.
pub const MIN_HEADER: u32 = 5;
pub const MAX_HEADER: u32 = i32::MAX as u32;
pub const MAX_S4: u16 = 32;
pub const MAX_JC: u16 = 128;

/// What a choice means for a node with this MTU: plain WireGuard, the given AWG
/// parameters (checked), or fresh ones. Call before the write transaction: it may
/// draw randomness.
pub fn resolve(choice: &TransportChoice, mtu: u16) -> Result<Transport> {
    match choice {
        TransportChoice::Wireguard => Ok(Transport::Wireguard),
        TransportChoice::Amneziawg {
            generation,
            params: Some(p),
        } => {
            if generation.is_some_and(|g| g != p.generation) {
                return Err(Error::invalid(
                    "AmneziaWG generation",
                    "the generation and the parameters' generation differ",
                ));
            }
            validate(p, mtu)?;
            Ok(Transport::Amneziawg(p.clone()))
        }
        TransportChoice::Amneziawg {
            generation,
            params: None,
        } => Ok(Transport::Amneziawg(generate(
            generation.unwrap_or_default(),
            mtu,
        ))),
    }
}

/// Checks a node's transport against its MTU.
pub fn validate_transport(transport: &Transport, mtu: u16) -> Result<()> {
    match transport {
        Transport::Wireguard => Ok(()),
        Transport::Amneziawg(p) => validate(p, mtu),
    }
}

fn bad(field: &'static str, reason: String) -> Error {
    Error::invalid(field, reason)
}

/// Checks every rule of the table above; the error names the key and the rule.
pub fn validate(p: &AwgParams, mtu: u16) -> Result<()> {
    if !(1..=MAX_JC).contains(&p.jc) {
        return Err(bad("Jc", format!("{} is outside 1..={MAX_JC}", p.jc)));
    }
    let jmax_limit = MAX_DATAGRAM.min(mtu.saturating_sub(1));
    if p.jmin == 0 || p.jmin > p.jmax {
        return Err(bad(
            "Jmin",
            format!(
                "{} must be at least 1 and at most Jmax ({})",
                p.jmin, p.jmax
            ),
        ));
    }
    if p.jmax > jmax_limit {
        return Err(bad(
            "Jmax",
            format!(
                "{} must stay below the MTU ({mtu}) and at most {MAX_DATAGRAM} bytes",
                p.jmax
            ),
        ));
    }
    for (name, value, size) in [("S1", p.s1, INIT), ("S2", p.s2, RESPONSE)] {
        let max = MAX_DATAGRAM - size;
        if value > max {
            return Err(bad(name, format!("{value} is above {max}")));
        }
    }
    if p.generation.has_ranges() {
        let max = MAX_DATAGRAM - COOKIE;
        if p.s3 > max {
            return Err(bad("S3", format!("{} is above {max}", p.s3)));
        }
        if p.s4 > MAX_S4 {
            return Err(bad(
                "S4",
                format!("{} is above {MAX_S4} (it pads every data packet)", p.s4),
            ));
        }
    } else if p.s3 != 0 || p.s4 != 0 {
        return Err(bad(
            "S3",
            format!(
                "S3 and S4 exist from AmneziaWG 2.0 on, not in {}",
                p.generation
            ),
        ));
    }
    let sizes = [
        ("S1", INIT + p.s1),
        ("S2", RESPONSE + p.s2),
        ("S3", COOKIE + p.s3),
    ];
    for (i, (a, x)) in sizes.iter().enumerate() {
        for (b, y) in &sizes[i + 1..] {
            if x == y {
                return Err(bad(
                    "S1",
                    format!(
                        "padded messages of {a} and {b} would both be {x} bytes (S1 + 56 must differ from S2, S2 + 28 from S3, S1 + 84 from S3)"
                    ),
                ));
            }
        }
    }
    let headers = p.headers();
    for (n, h) in headers.iter().enumerate() {
        if h.start < MIN_HEADER || h.end > MAX_HEADER {
            return Err(bad(
                "H",
                format!("H{} = {h} is outside {MIN_HEADER}..={MAX_HEADER}", n + 1),
            ));
        }
        if !h.is_single() && !p.generation.has_ranges() {
            return Err(bad(
                "H",
                format!("H{} = {h}: ranges exist from AmneziaWG 2.0 on", n + 1),
            ));
        }
        for (m, other) in headers.iter().enumerate().skip(n + 1) {
            if h.overlaps(other) {
                return Err(bad(
                    "H",
                    format!("H{} = {h} and H{} = {other} overlap", n + 1, m + 1),
                ));
            }
        }
    }
    if !p.generation.has_signature_packets() && !p.i.is_empty() {
        return Err(bad(
            "I1",
            format!("I1-I5 exist from AmneziaWG 1.5 on, not in {}", p.generation),
        ));
    }
    if p.i.len() > 5 {
        return Err(bad(
            "I",
            format!("{} signature packets; at most 5", p.i.len()),
        ));
    }
    for (n, spec) in p.i.iter().enumerate() {
        let len = signature_len(spec).map_err(|e| bad("I", format!("I{}: {e}", n + 1)))?;
        if len > usize::from(MAX_DATAGRAM) {
            return Err(bad(
                "I",
                format!("I{} is {len} bytes, above {MAX_DATAGRAM}", n + 1),
            ));
        }
    }
    Ok(())
}

/// The size in bytes of a signature packet in amneziawg's tag syntax, or why it is
/// not one. Only the tags a sender needs: `<b 0xHEX>` (bytes), `<r N>` (random),
/// `<rc N>` (random letters), `<rd N>` (random digits), `<t>` (timestamp, 4 bytes).
pub fn signature_len(spec: &str) -> std::result::Result<usize, String> {
    let mut rest = spec.trim();
    if rest.is_empty() {
        return Err("empty".into());
    }
    let mut len = 0usize;
    while !rest.is_empty() {
        let Some(body) = rest.strip_prefix('<') else {
            return Err(format!("expected '<' at {rest:?}"));
        };
        let Some(end) = body.find('>') else {
            return Err("missing '>'".into());
        };
        let tag = &body[..end];
        rest = body[end + 1..].trim_start();
        let mut parts = tag.split_whitespace();
        let name = parts.next().ok_or("empty tag <>")?;
        let arg = parts.next();
        if parts.next().is_some() {
            return Err(format!("<{tag}> has more than one value"));
        }
        len += match (name, arg) {
            ("b", Some(hex)) => {
                let digits = hex
                    .strip_prefix("0x")
                    .ok_or_else(|| format!("<b {hex}>: bytes start with 0x"))?;
                if digits.is_empty()
                    || digits.len() % 2 != 0
                    || !digits.chars().all(|c| c.is_ascii_hexdigit())
                {
                    return Err(format!("<b {hex}>: an even number of hex digits"));
                }
                digits.len() / 2
            }
            ("r" | "rc" | "rd", Some(n)) => match n.parse::<usize>() {
                Ok(n) if n > 0 => n,
                _ => return Err(format!("<{name} {n}>: a positive length")),
            },
            ("t", None) => 4,
            _ => return Err(format!("unknown tag <{tag}>")),
        };
    }
    Ok(len)
}

fn between(rng: &mut OsRng, lo: u32, hi: u32) -> u32 {
    debug_assert!(lo <= hi);
    let span = u64::from(hi - lo) + 1;
    lo + u32::try_from(rng.next_u64() % span).expect("below span")
}

fn between16(rng: &mut OsRng, lo: u16, hi: u16) -> u16 {
    u16::try_from(between(rng, lo.into(), hi.into())).expect("within u16")
}

/// Fresh parameters of `generation` within the safe ranges, for a node with this
/// MTU. Every call differs: two nodes never share H values by accident.
pub fn generate(generation: AwgGeneration, mtu: u16) -> AwgParams {
    let rng = &mut OsRng;
    let jmax_limit = MAX_DATAGRAM.min(mtu.saturating_sub(1));
    let jmin = between16(rng, 40, 80);
    let jmax = between16(rng, jmin + 50, (jmin + 500).min(jmax_limit));
    let s1 = between16(rng, 15, 150);
    let mut s2 = between16(rng, 15, 150);
    let (mut s3, s4) = if generation.has_ranges() {
        (between16(rng, 15, 150), between16(rng, 1, 16))
    } else {
        (0, 0)
    };
    // Keep the padded handshake sizes apart.
    while RESPONSE + s2 == INIT + s1 {
        s2 = between16(rng, 15, 150);
    }
    while generation.has_ranges() && (COOKIE + s3 == INIT + s1 || COOKIE + s3 == RESPONSE + s2) {
        s3 = between16(rng, 15, 150);
    }
    // One header (or range) in each quarter of the allowed space, quarters shuffled.
    let quarter = (MAX_HEADER - MIN_HEADER) / 4;
    let mut order = [0u32, 1, 2, 3];
    for i in (1..4).rev() {
        let j = usize::try_from(between(rng, 0, u32::try_from(i).expect("small"))).expect("small");
        order.swap(i, j);
    }
    let headers: Vec<HeaderRange> = order
        .iter()
        .map(|&q| {
            let lo = MIN_HEADER + q * quarter;
            let hi = lo + quarter - 1;
            if generation.has_ranges() {
                let width = between(rng, 1_000, 1_000_000);
                let start = between(rng, lo, hi - width);
                HeaderRange {
                    start,
                    end: start + width,
                }
            } else {
                HeaderRange::single(between(rng, lo, hi))
            }
        })
        .collect();
    let i = if generation.has_signature_packets() {
        let mut bytes = [0u8; 16];
        rng.fill_bytes(&mut bytes);
        let hex: String = bytes.iter().map(|b| format!("{b:02x}")).collect();
        vec![format!("<b 0x{hex}><r {}>", between(rng, 64, 256))]
    } else {
        Vec::new()
    };
    AwgParams {
        generation,
        jc: between16(rng, 4, 10),
        jmin,
        jmax,
        s1,
        s2,
        s3,
        s4,
        h1: headers[0],
        h2: headers[1],
        h3: headers[2],
        h4: headers[3],
        i,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_parameters_are_valid_for_every_generation() {
        for generation in AwgGeneration::ALL {
            for _ in 0..500 {
                let p = generate(generation, 1280);
                validate(&p, 1280).unwrap_or_else(|e| panic!("{p:?}: {e}"));
                assert_eq!(p.generation, generation);
                assert!(p.jmax < 1280);
            }
        }
        let a = generate(AwgGeneration::V1_0, 1280);
        let b = generate(AwgGeneration::V1_0, 1280);
        assert_ne!(a.h1, b.h1, "fresh each time");
    }

    fn base() -> AwgParams {
        AwgParams {
            generation: AwgGeneration::V1_0,
            jc: 4,
            jmin: 40,
            jmax: 70,
            s1: 20,
            s2: 30,
            s3: 0,
            s4: 0,
            h1: HeaderRange::single(10),
            h2: HeaderRange::single(20),
            h3: HeaderRange::single(30),
            h4: HeaderRange::single(40),
            i: Vec::new(),
        }
    }

    fn err(p: &AwgParams) -> String {
        validate(p, 1280).unwrap_err().to_string()
    }

    #[test]
    fn unsafe_values_are_refused_with_the_rule() {
        validate(&base(), 1280).unwrap();
        let mut p = base();
        p.jmax = 1280;
        assert!(err(&p).contains("below the MTU"), "{}", err(&p));
        let mut p = base();
        p.jmin = 80;
        assert!(err(&p).contains("Jmin"));
        let mut p = base();
        p.s2 = p.s1 + 56;
        assert!(err(&p).contains("S1 + 56"), "{}", err(&p));
        let mut p = base();
        p.h3 = HeaderRange::single(20);
        assert!(
            err(&p).contains("H2 = 20 and H3 = 20 overlap"),
            "{}",
            err(&p)
        );
        let mut p = base();
        p.h1 = HeaderRange::single(1);
        assert!(err(&p).contains("outside"));
        let mut p = base();
        p.h1 = "10-15".parse().unwrap();
        assert!(err(&p).contains("2.0"));
        p.generation = AwgGeneration::V2_0;
        p.h2 = "15-19".parse().unwrap();
        assert!(err(&p).contains("overlap"));
        let mut p = base();
        p.i = vec!["<r 10>".into()];
        assert!(err(&p).contains("1.5"));
        p.generation = AwgGeneration::V1_5;
        validate(&p, 1280).unwrap();
        p.i = vec!["<x 1>".into()];
        assert!(err(&p).contains("unknown tag"));
        p.i = vec!["<r 2000>".into()];
        assert!(err(&p).contains("above 1232"));
        let mut p = base();
        p.s3 = 5;
        assert!(err(&p).contains("2.0"));
    }

    #[test]
    fn signature_lengths() {
        assert_eq!(
            signature_len("<b 0x0102><r 10><t><rc 3><rd 2>"),
            Ok(2 + 10 + 4 + 3 + 2)
        );
        assert!(signature_len("<b 0x1>").is_err());
        assert!(signature_len("<b 12>").is_err());
        assert!(signature_len("<r>").is_err());
        assert!(signature_len("junk").is_err());
    }

    #[test]
    fn choices_resolve() {
        assert_eq!(
            resolve(&TransportChoice::Wireguard, 1280).unwrap(),
            Transport::Wireguard
        );
        let t = resolve(
            &TransportChoice::Amneziawg {
                generation: Some(AwgGeneration::V2_0),
                params: None,
            },
            1280,
        )
        .unwrap();
        assert_eq!(t.awg().unwrap().generation, AwgGeneration::V2_0);
        let bad = resolve(
            &TransportChoice::Amneziawg {
                generation: Some(AwgGeneration::V2_0),
                params: Some(base()),
            },
            1280,
        );
        assert!(bad.is_err());
    }
}
