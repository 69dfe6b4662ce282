//! Inline button payloads. Parsed strictly: anything else is a forged or stale
//! button and gets a short refusal; ownership is checked again by the handler.

use vpnctl_core::transport::TransportKind;
use vpnctl_core::{Locale, NodeId, OrderId, PeerId, PlanId};

/// What an inline button asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Action {
    /// `/get_config`: a config for this node.
    Node(NodeId),
    /// `/get_config`: send this existing device's config again.
    Resend(PeerId),
    /// Device limit reached: revoke `peer` and issue a new device on `node`.
    Replace {
        node: NodeId,
        peer: PeerId,
    },
    /// `/regen`: ask to confirm rotating this peer.
    Rotate(PeerId),
    /// `/regen`: rotation confirmed.
    RotateConfirmed(PeerId),
    Language(Locale),
    Cancel,
    /// A transport's heading row in the `/get_config` keyboard: explains, does nothing.
    About(TransportKind),
    /// "Renew" (in /status and reminders): show the plans, as /buy does.
    Plans,
    /// A plan chosen: send its invoice.
    Buy(PlanId),
    /// `/subscription`: cancel (`true`) or resume the renewal of this order's
    /// subscription.
    Renewal {
        order: OrderId,
        cancel: bool,
    },
}

impl Action {
    /// The callback data (well under Telegram's 64 bytes).
    pub fn encode(self) -> String {
        match self {
            Self::Node(n) => format!("n:{}", n.0),
            Self::Resend(p) => format!("s:{}", p.0),
            Self::Replace { node, peer } => format!("r:{}:{}", node.0, peer.0),
            Self::Rotate(p) => format!("g:{}", p.0),
            Self::RotateConfirmed(p) => format!("gc:{}", p.0),
            Self::Language(Locale::En) => "l:en".into(),
            Self::Language(Locale::Ru) => "l:ru".into(),
            Self::Cancel => "x".into(),
            Self::About(TransportKind::Wireguard) => "h:wg".into(),
            Self::About(TransportKind::Amneziawg) => "h:awg".into(),
            Self::Plans => "b".into(),
            Self::Buy(p) => format!("b:{}", p.0),
            Self::Renewal { order, cancel } => {
                format!("{}:{}", if cancel { "sc" } else { "sr" }, order.0)
            }
        }
    }

    /// Parses callback data; `None` for anything this bot did not make.
    pub fn parse(data: &str) -> Option<Self> {
        fn id(s: &str) -> Option<u64> {
            // Plain decimal only: no sign, no leading zeros tricks, bounded length.
            if s.is_empty() || s.len() > 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            s.parse().ok()
        }
        let mut parts = data.split(':');
        let action = match (parts.next()?, parts.next(), parts.next(), parts.next()) {
            ("n", Some(n), None, None) => Self::Node(NodeId(id(n)?)),
            ("s", Some(p), None, None) => Self::Resend(PeerId(id(p)?)),
            ("r", Some(n), Some(p), None) => Self::Replace {
                node: NodeId(id(n)?),
                peer: PeerId(id(p)?),
            },
            ("g", Some(p), None, None) => Self::Rotate(PeerId(id(p)?)),
            ("gc", Some(p), None, None) => Self::RotateConfirmed(PeerId(id(p)?)),
            ("l", Some("en"), None, None) => Self::Language(Locale::En),
            ("l", Some("ru"), None, None) => Self::Language(Locale::Ru),
            ("x", None, None, None) => Self::Cancel,
            ("h", Some("wg"), None, None) => Self::About(TransportKind::Wireguard),
            ("h", Some("awg"), None, None) => Self::About(TransportKind::Amneziawg),
            ("b", None, None, None) => Self::Plans,
            ("b", Some(p), None, None) => Self::Buy(PlanId(id(p)?)),
            ("sc", Some(o), None, None) => Self::Renewal {
                order: OrderId(id(o)?),
                cancel: true,
            },
            ("sr", Some(o), None, None) => Self::Renewal {
                order: OrderId(id(o)?),
                cancel: false,
            },
            _ => return None,
        };
        Some(action)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip() {
        for a in [
            Action::Node(NodeId(7)),
            Action::Replace {
                node: NodeId(1),
                peer: PeerId(u64::MAX),
            },
            Action::Rotate(PeerId(3)),
            Action::Resend(PeerId(9)),
            Action::RotateConfirmed(PeerId(3)),
            Action::Language(Locale::Ru),
            Action::Language(Locale::En),
            Action::Cancel,
            Action::About(TransportKind::Wireguard),
            Action::About(TransportKind::Amneziawg),
            Action::Plans,
            Action::Buy(PlanId(12)),
            Action::Renewal {
                order: OrderId(4),
                cancel: true,
            },
            Action::Renewal {
                order: OrderId(4),
                cancel: false,
            },
        ] {
            let data = a.encode();
            assert!(data.len() <= 64);
            assert_eq!(Action::parse(&data), Some(a));
        }
    }

    #[test]
    fn rejects_forgeries() {
        for bad in [
            "",
            "n",
            "n:",
            "n:-1",
            "n:+1",
            "n:1:2",
            "r:1",
            "gc:x",
            "l:de",
            "x:1",
            "zz:1",
            "n:99999999999999999999999",
            "n: 1",
            "N:1",
            "b:",
            "b:x",
            "b:1:2",
        ] {
            assert_eq!(Action::parse(bad), None, "{bad:?}");
        }
    }
}
