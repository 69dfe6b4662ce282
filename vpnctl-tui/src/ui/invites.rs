//! The Invites tab: the table and the detail pane of the selected invite.

use ratatui::layout::Constraint;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::Cell;
use vpnctl_core::Timestamp;

use super::{Detail, TableParts};
use crate::app::App;

pub(super) fn table(app: &App, rows: impl Iterator<Item = usize>) -> TableParts<'_> {
    let header = vec!["id", "label", "uses", "expires", "grants", "state"];
    let widths = vec![
        Constraint::Length(6),
        Constraint::Min(10),
        Constraint::Length(6),
        Constraint::Length(11),
        Constraint::Length(16),
        Constraint::Length(8),
    ];
    let rows = rows
        .filter_map(|i| app.invites.get(i))
        .map(|inv| {
            let expired = inv.expires_at.is_some_and(|t| t <= app.now);
            let (state, style) = if inv.revoked {
                ("revoked", Style::new().fg(Color::Red))
            } else if inv.uses_left == 0 {
                ("used", Style::new().dim())
            } else if expired {
                ("expired", Style::new().fg(Color::Yellow))
            } else {
                ("open", Style::new().fg(Color::Green))
            };
            vec![
                Cell::from(format!("i{}", inv.id)),
                Cell::from(inv.label.clone()),
                Cell::from(format!("{}/{}", inv.uses_left, inv.uses_total)),
                Cell::from(
                    inv.expires_at
                        .map_or_else(|| "never".into(), Timestamp::to_date),
                ),
                Cell::from(format!(
                    "{} {}dev",
                    inv.grant
                        .access_days
                        .map_or_else(|| "∞".into(), |d| format!("{d}d")),
                    inv.grant.device_limit
                )),
                Cell::from(state).style(style),
            ]
        })
        .collect();
    (header, widths, rows)
}

pub(super) fn detail(app: &App) -> Detail<'_> {
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let Some(inv) = app.selected_invite() {
        lines.push(Line::from(format!("i{} {}", inv.id, inv.label)).bold());
        lines.push(Line::from(format!(
            "uses     {}/{}",
            inv.uses_left, inv.uses_total
        )));
        lines.push(Line::from(
            format!("role     {:?}", inv.grant.role).to_lowercase(),
        ));
        lines.push(Line::from(format!(
            "created  {}",
            inv.created_at.to_rfc3339()
        )));
        lines.push(Line::from("the code is shown only at creation").dim());
    }
    Detail { lines, spark: None }
}
