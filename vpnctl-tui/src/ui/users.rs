//! The Users tab: the table and the detail pane of the selected user.

use ratatui::layout::Constraint;
use ratatui::style::{Color, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Cell;
use vpnctl_core::{Access, units};

use super::{Detail, TableParts};
use crate::app::{App, UserStatus};
use crate::when;

pub(super) fn table(app: &App, rows: impl Iterator<Item = usize>) -> TableParts<'_> {
    let header = vec!["id", "name", "role", "state", "until", "devices"];
    let widths = vec![
        Constraint::Length(6),
        Constraint::Min(10),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(17),
        Constraint::Length(7),
    ];
    let rows = rows
        .filter_map(|i| app.users.get(i))
        .map(|u| {
            let status = UserStatus::of(u, app.now);
            vec![
                Cell::from(format!("u{}", u.id)),
                Cell::from(u.name.clone()),
                Cell::from(format!("{:?}", u.role).to_lowercase()),
                Cell::from(status.label()).style(user_status_style(status)),
                Cell::from(when::show_until(u.until)),
                Cell::from(format!(
                    "{}/{}",
                    app.devices.get(&u.id).copied().unwrap_or(0),
                    u.device_limit
                )),
            ]
        })
        .collect();
    (header, widths, rows)
}

pub(super) fn user_status_style(status: UserStatus) -> Style {
    match status {
        UserStatus::Disabled => Style::new().fg(Color::Red),
        UserStatus::Expired => Style::new().fg(Color::Yellow),
        UserStatus::Suspended => Style::new().fg(Color::Magenta),
        UserStatus::Active => Style::new().fg(Color::Green),
    }
}

pub(super) fn detail(app: &App) -> Detail<'_> {
    let mut lines: Vec<Line<'_>> = Vec::new();
    if let Some(u) = app.selected_user() {
        let status = UserStatus::of(u, app.now);
        lines.push(Line::from(vec![
            Span::from(format!("u{} {} ", u.id, u.name)).bold(),
            Span::styled(status.label(), user_status_style(status)),
        ]));
        // Core's verdict: the end of access, and when a used-up quota resets.
        let access = Access::of(u, app.now);
        lines.push(Line::from(format!(
            "until    {}",
            when::show_until(u.until)
        )));
        let quota = u.quota.map_or_else(
            || "unlimited".into(),
            |q| format!("{} {}", units::display(q.bytes), q.period),
        );
        let resets = match access {
            Access::Suspended { resumes, .. } => {
                format!(" · used up, resets {}", when::show(resumes))
            }
            _ => String::new(),
        };
        lines.push(Line::from(format!("quota    {quota}{resets}")));
        lines.push(Line::from(format!(
            "telegram {}",
            u.telegram_id.map_or_else(|| "-".into(), |t| t.to_string())
        )));
        let devices: Vec<String> = app
            .peers
            .iter()
            .filter(|p| p.user == u.id)
            .take(4)
            .map(|p| format!("{}@{}", p.device, app.node_name(p.node)))
            .collect();
        lines.push(Line::from(format!("devices  {}", devices.join(", "))));
        lines.push(Line::from("e extend 30d · x disable/enable").dim());
    }
    Detail { lines, spark: None }
}
