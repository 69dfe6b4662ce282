//! What a node may tell the control plane: its report bounded and cleaned at the
//! boundary, and the compact summary node listings carry instead of the report.
//!
//! A node token belongs to a machine that may be compromised: its report must not
//! be able to grow the store, the event log or a listing without bound, nor put
//! terminal escapes into an admin's terminal or forged lines into a log.

use vpnctl_api::body::{ReportSummary, StoredReport};
use vpnctl_api::text::clean_line;

use crate::wire::NodeReport;

/// Most errors kept from one report.
pub const MAX_REPORT_ERRORS: usize = 16;
/// Longest error kept, in characters.
pub const MAX_ERROR_CHARS: usize = 240;
/// Longest endpoint kept (`[IPv6]:port` is at most 47 characters).
pub const MAX_ENDPOINT_CHARS: usize = 64;
/// Longest health reason (an event's and an alert's text), in characters.
pub const MAX_REASON_CHARS: usize = 400;
/// Longest first error in a [`ReportSummary`].
pub const SUMMARY_ERROR_CHARS: usize = 120;

/// The report with at most [`MAX_REPORT_ERRORS`] errors of at most
/// [`MAX_ERROR_CHARS`] characters each, endpoints cut to [`MAX_ENDPOINT_CHARS`],
/// and every control character replaced by a space. When errors were dropped, the
/// last one kept says how many.
pub fn bounded(mut report: NodeReport) -> NodeReport {
    report.errors = bounded_errors(&report.errors);
    for peer in &mut report.peers {
        if let Some(endpoint) = &mut peer.endpoint
            && (endpoint.len() > MAX_ENDPOINT_CHARS || endpoint.chars().any(char::is_control))
        {
            *endpoint = clean_line(endpoint, MAX_ENDPOINT_CHARS);
        }
    }
    report
}

/// A report's errors as [`bounded`] keeps them.
pub fn bounded_errors(errors: &[String]) -> Vec<String> {
    let mut kept: Vec<String> = errors
        .iter()
        .take(MAX_REPORT_ERRORS)
        .map(|e| clean_line(e, MAX_ERROR_CHARS))
        .collect();
    if errors.len() > MAX_REPORT_ERRORS
        && let Some(last) = kept.last_mut()
    {
        *last = format!(
            "… and {} more error(s)",
            errors.len() - MAX_REPORT_ERRORS + 1
        );
    }
    kept
}

/// What node listings show of a stored report.
pub fn summary(stored: &StoredReport) -> ReportSummary {
    let report = &stored.report;
    let (rx, tx) = report.peers.iter().fold((0u64, 0u64), |(rx, tx), p| {
        (rx.saturating_add(p.rx_bytes), tx.saturating_add(p.tx_bytes))
    });
    ReportSummary {
        received_at: stored.received_at,
        at: report.at,
        applied_revision: report.applied_revision,
        interface_up: report.interface_up,
        peers: u32::try_from(report.peers.len()).unwrap_or(u32::MAX),
        rx_bytes: rx,
        tx_bytes: tx,
        system: report.system.clone(),
        errors: u32::try_from(report.errors.len()).unwrap_or(u32::MAX),
        first_error: report
            .errors
            .first()
            .map(|e| clean_line(e, SUMMARY_ERROR_CHARS)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PublicKey;
    use crate::time::Timestamp;
    use crate::wire::{PeerStats, SystemStats};

    fn report(errors: Vec<String>, endpoint: &str) -> NodeReport {
        NodeReport {
            applied_revision: 1,
            interface_up: true,
            listen_port: None,
            public_key: None,
            peers: vec![PeerStats {
                public_key: PublicKey::from_bytes([1; 32]),
                endpoint: Some(endpoint.into()),
                last_handshake: None,
                rx_bytes: 5,
                tx_bytes: 7,
            }],
            system: SystemStats::default(),
            strays_removed: vec![],
            errors,
            at: Timestamp(0),
            health_port: None,
        }
    }

    #[test]
    fn bounds_count_length_and_control_characters() {
        let huge = "x".repeat(4 << 20);
        let mut errors = vec![huge, "\u{1b}[2J\u{1b}[Hforged\nline".into()];
        errors.extend((0..100).map(|i| format!("e{i}")));
        let r = bounded(report(errors, &"\u{1b}1".repeat(100)));
        assert_eq!(r.errors.len(), MAX_REPORT_ERRORS);
        assert_eq!(r.errors[0].chars().count(), MAX_ERROR_CHARS);
        assert_eq!(r.errors[1], " [2J [Hforged line");
        assert_eq!(r.errors[15], "… and 87 more error(s)");
        assert!(r.errors.iter().all(|e| !e.chars().any(char::is_control)));
        let endpoint = r.peers[0].endpoint.as_deref().unwrap();
        assert_eq!(endpoint.chars().count(), MAX_ENDPOINT_CHARS);
        assert!(!endpoint.chars().any(char::is_control));
        // Ordinary reports pass unchanged.
        let plain = report(vec!["wg: set peer failed".into()], "198.51.100.7:51820");
        assert_eq!(bounded(plain.clone()), plain);
    }

    #[test]
    fn summaries_carry_no_peer_list() {
        let stored = StoredReport {
            received_at: Timestamp(3),
            report: report(vec!["a".repeat(500)], "198.51.100.7:1"),
        };
        let s = summary(&stored);
        assert_eq!((s.peers, s.rx_bytes, s.tx_bytes, s.errors), (1, 5, 7, 1));
        assert_eq!(
            s.first_error.as_deref().map(|e| e.chars().count()),
            Some(SUMMARY_ERROR_CHARS)
        );
        assert!(!serde_json::to_string(&s).unwrap().contains("198.51.100.7"));
    }
}
