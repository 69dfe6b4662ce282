//! The Plans tab: what the bot sells for Telegram Stars (and the trials invites
//! grant), and the detail pane of the selected plan.

use ratatui::layout::Constraint;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::Line;
use ratatui::widgets::Cell;
use vpnctl_api::billing::Plan;

use super::{Detail, TableParts};
use crate::app::App;

fn quota(p: &Plan) -> String {
    p.quota.map_or_else(
        || "no quota".into(),
        |q| {
            format!(
                "{} {}",
                vpnctl_core::units::traffic(q.bytes, vpnctl_core::Locale::En),
                q.period
            )
        },
    )
}

pub(super) fn table(app: &App, rows: impl Iterator<Item = usize>) -> TableParts<'_> {
    let header = vec!["id", "name", "price", "days", "devices", "quota", "state"];
    let widths = vec![
        Constraint::Length(7),
        Constraint::Min(10),
        Constraint::Length(10),
        Constraint::Length(5),
        Constraint::Length(7),
        Constraint::Length(16),
        Constraint::Length(9),
    ];
    let rows = rows
        .filter_map(|i| app.plans.get(i))
        .map(|p| {
            let (state, style) = if !p.active {
                ("retired", Style::new().dim())
            } else if p.trial {
                ("trial", Style::new().fg(Color::Cyan))
            } else {
                ("on sale", Style::new().fg(Color::Green))
            };
            vec![
                Cell::from(format!("plan{}", p.id)),
                Cell::from(p.name.en.clone()),
                Cell::from(if p.trial {
                    "—".to_owned()
                } else if p.recurring {
                    format!("{} ⭐/mo", p.stars)
                } else {
                    format!("{} ⭐", p.stars)
                }),
                Cell::from(p.days.to_string()),
                Cell::from(p.device_limit.to_string()),
                Cell::from(quota(p)),
                Cell::from(state).style(style),
            ]
        })
        .collect();
    (header, widths, rows)
}

pub(super) fn detail(app: &App) -> Detail<'_> {
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let Some(p) = app.selected_plan() {
        lines.push(Line::from(format!("plan{} {}", p.id, p.name.en)).bold());
        if let Some(ru) = &p.name.ru {
            lines.push(Line::from(format!("ru       {ru}")));
        }
        lines.push(Line::from(if p.trial {
            "a trial: granted by invites (`vpnctl invites create --plan`), not sold".to_owned()
        } else if p.recurring {
            format!("{} Telegram Stars a month, renewing itself", p.stars)
        } else {
            format!("{} Telegram Stars for {} days", p.stars, p.days)
        }));
        lines.push(Line::from(format!(
            "grants   {} days, {} devices, {}",
            p.days,
            p.device_limit,
            quota(p)
        )));
        lines.push(Line::from(format!(
            "created  {}",
            p.created_at.to_rfc3339()
        )));
        lines.push(
            Line::from("payments and revenue: `vpnctl payments list`, `vpnctl payments revenue`")
                .dim(),
        );
    }
    Detail { lines, spark: None }
}
