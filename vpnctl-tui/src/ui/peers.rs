//! The Peers tab: the table and the detail pane of the selected peer.

use ratatui::layout::Constraint;
use ratatui::style::{Color, Stylize};
use ratatui::text::Line;
use ratatui::widgets::Cell;

use super::{Detail, TableParts, age, bytes};
use crate::app::App;

pub(super) fn table(app: &App, rows: impl Iterator<Item = usize>) -> TableParts<'_> {
    let header = vec![
        "id",
        "user",
        "device",
        "node",
        "address",
        "handshake",
        "rx",
        "tx",
    ];
    let widths = vec![
        Constraint::Length(7),
        Constraint::Min(8),
        Constraint::Min(6),
        Constraint::Length(10),
        Constraint::Length(15),
        Constraint::Length(9),
        Constraint::Length(9),
        Constraint::Length(9),
    ];
    let rows = rows
        .filter_map(|i| app.peers.get(i))
        .map(|p| {
            let stats = app.stats_of(p);
            let hs = stats
                .and_then(|s| s.last_handshake)
                .map_or_else(|| "never".into(), |at| age(app.now, at));
            let recent = stats
                .and_then(|s| s.last_handshake)
                .is_some_and(|at| app.now.seconds() - at.seconds() <= 180);
            vec![
                Cell::from(format!("p{}", p.id)),
                Cell::from(app.user_name(p.user).to_owned()),
                Cell::from(p.device.clone()),
                Cell::from(app.node_name(p.node).to_owned()),
                Cell::from(p.ipv4.to_string()),
                if recent {
                    Cell::from(hs).fg(Color::Green)
                } else {
                    Cell::from(hs).dim()
                },
                Cell::from(bytes(stats.map_or(0, |s| s.rx_bytes))),
                Cell::from(bytes(stats.map_or(0, |s| s.tx_bytes))),
            ]
        })
        .collect();
    (header, widths, rows)
}

pub(super) fn detail(app: &App) -> Detail<'_> {
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let Some(p) = app.selected_peer() {
        let stats = app.stats_of(p);
        lines.push(Line::from(format!("p{} {}", p.id, p.device)).bold());
        lines.push(Line::from(format!(
            "user     u{} {}",
            p.user,
            app.user_name(p.user)
        )));
        lines.push(Line::from(format!(
            "node     n{} {}",
            p.node,
            app.node_name(p.node)
        )));
        lines.push(Line::from(format!(
            "address  {}{}",
            p.ipv4,
            p.ipv6.map(|a| format!(", {a}")).unwrap_or_default()
        )));
        lines.push(Line::from(format!("key      {}", p.public_key)));
        lines.push(Line::from(format!(
            "endpoint {}",
            stats
                .and_then(|s| s.endpoint.clone())
                .unwrap_or_else(|| "-".into())
        )));
        lines.push(Line::from(format!("created  {}", p.created_at.to_date())));
    }
    Detail { lines, spark: None }
}
