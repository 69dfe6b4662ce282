//! The Events tab: the table, the detail pane, and the one-line text of each event.

use ratatui::layout::Constraint;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::Cell;
use vpnctl_core::{Event, EventKind, Severity};

use super::{Detail, TableParts, age};
use crate::app::{App, Health};

pub(super) fn table(app: &App, rows: impl Iterator<Item = usize>) -> TableParts<'_> {
    let header = vec!["seq", "age", "actor", "what"];
    // As wide as the largest number shown (a log of millions of events).
    let digits = app
        .events
        .iter()
        .map(|e| e.seq)
        .max()
        .map_or(1, |n| n.checked_ilog10().unwrap_or(0) + 1);
    let widths = vec![
        Constraint::Length(u16::try_from(digits).unwrap_or(20).max(6)),
        Constraint::Length(5),
        Constraint::Length(12),
        Constraint::Min(20),
    ];
    let rows = rows
        .filter_map(|i| app.events.get(i))
        .map(|e| {
            let style = match &e.kind {
                EventKind::Notice { severity, .. } => match severity {
                    vpnctl_core::Severity::Info => Style::new(),
                    vpnctl_core::Severity::Warning => Style::new().fg(Color::Yellow),
                    vpnctl_core::Severity::Critical => Style::new().fg(Color::Red),
                },
                EventKind::NodeHealthChanged { to, .. } => match to {
                    Health::Up => Style::new().fg(Color::Green),
                    Health::Down => Style::new().fg(Color::Red),
                    Health::Degraded | Health::Unknown => Style::new().fg(Color::Yellow),
                },
                EventKind::PeerRevoked { .. }
                | EventKind::UserDisabled { .. }
                | EventKind::AccessExpired { .. }
                | EventKind::QuotaExceeded { .. }
                | EventKind::NodeEvacuated { .. } => Style::new().fg(Color::Yellow),
                _ => Style::new(),
            };
            vec![
                Cell::from(e.seq.to_string()),
                Cell::from(age(app.now, e.at)),
                Cell::from(e.actor.to_string()),
                Cell::from(event_text(e)).style(style),
            ]
        })
        .collect();
    (header, widths, rows)
}

/// One line describing an event (also what the Events filter matches).
pub fn event_text(e: &Event) -> String {
    match &e.kind {
        EventKind::UserCreated { user } => format!("user u{user} created"),
        EventKind::UserUpdated { user } => format!("user u{user} updated"),
        EventKind::UserDisabled { user } => format!("user u{user} disabled"),
        EventKind::UserEnabled { user } => format!("user u{user} enabled"),
        EventKind::UserDeleted { user } => format!("user u{user} deleted"),
        EventKind::AccessChanged { user, until } => format!(
            "access of u{user} until {}",
            crate::when::show_until(*until)
        ),
        EventKind::AccessExpired { user } => format!("access of u{user} expired"),
        EventKind::InviteCreated { invite } => format!("invite i{invite} created"),
        EventKind::InviteRedeemed { invite, user } => {
            format!("invite i{invite} redeemed by u{user}")
        }
        EventKind::InviteRevoked { invite } => format!("invite i{invite} revoked"),
        EventKind::NodeRegistered { node } => format!("node n{node} registered"),
        EventKind::NodeUpdated { node } => format!("node n{node} updated"),
        EventKind::NodeStateChanged { node, state } => format!("node n{node} is now {state}"),
        EventKind::NodeDeleted { node } => format!("node n{node} deleted"),
        EventKind::NodeEnrolled { node } => format!("node n{node} enrolled"),
        EventKind::PeerIssued { peer, user, node } => {
            format!("peer p{peer} issued to u{user} on n{node}")
        }
        EventKind::PeerRotated { peer, .. } => format!("peer p{peer} rotated its key"),
        EventKind::PeerRevoked { peer, user, .. } => format!("peer p{peer} of u{user} revoked"),
        // The message exactly as written: it may hold names and keys.
        EventKind::Notice {
            severity, message, ..
        } => format!("{}: {message}", severity_word(*severity)),
        EventKind::TokenCreated { token, scope } => format!("{scope} token t{token} created"),
        EventKind::TokenRevoked { token } => format!("token t{token} revoked"),
        EventKind::NodeHealthChanged {
            node,
            from,
            to,
            reason,
        } => format!("node n{node} {from} → {to}: {reason}"),
        EventKind::QuotaExceeded { user, until } => format!(
            "u{user} used up the quota, suspended until {}",
            crate::when::show(*until)
        ),
        EventKind::QuotaRestored { user } => format!("u{user} is back within the quota"),
        EventKind::NodeEvacuated {
            node,
            moved,
            failed,
        } => format!("node n{node} evacuated: moved {moved}, failed {failed}"),
        EventKind::PlanCreated { plan } => format!("plan {plan} created"),
        EventKind::PlanRetired { plan } => format!("plan {plan} retired"),
        EventKind::OrderCreated { order, user, plan } => {
            format!("order o{order}: u{user} about to buy plan {plan}")
        }
        EventKind::PaymentReceived {
            payment,
            user,
            plan,
            stars,
        } => format!("payment {payment}: u{user} paid {stars} stars for plan {plan}"),
        EventKind::RefundRequested { payment, user } => {
            format!("refund of payment {payment} (u{user}) requested")
        }
        EventKind::PaymentRefunded {
            payment,
            user,
            stars,
        } => format!("payment {payment}: {stars} stars refunded to u{user}"),
        EventKind::RefundFailed { payment, reason } => {
            format!("refund of payment {payment} failed: {reason}")
        }
        EventKind::BroadcastQueued {
            broadcast,
            recipients,
        } => format!("broadcast {broadcast} queued for {recipients} users"),
        EventKind::BroadcastCancelled { broadcast } => format!("broadcast {broadcast} cancelled"),
        EventKind::SubscriptionRenewal {
            user,
            order,
            cancelled,
        } => format!(
            "u{user} {} the subscription of order o{order}",
            if *cancelled { "cancelled" } else { "resumed" }
        ),
    }
}

/// What the detail pane shows for the selected row.
pub(super) fn detail(app: &App) -> Detail<'_> {
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let Some(e) = app.selected_event() {
        lines.push(Line::from(format!("#{} {}", e.seq, e.at.to_rfc3339())).bold());
        lines.push(Line::from(format!("by {}", e.actor)));
        lines.push(Line::from(event_text(e)));
    }
    Detail { lines, spark: None }
}

fn severity_word(severity: Severity) -> &'static str {
    match severity {
        Severity::Info => "info",
        Severity::Warning => "warning",
        Severity::Critical => "critical",
    }
}
