//! Drawing: reads [`App`], never changes it. Tables build only the rows that fit on
//! screen, so 10,000 peers cost what a screenful costs.
//!
//! This module draws the frame (header, footer, table chrome, detail pane, dialogs);
//! each tab's table and detail live together in its own module.

mod events;
mod invites;
mod nodes;
mod peers;
mod plans;
mod users;

pub use events::event_text;

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, Tabs, Widget, Wrap,
};
use vpnctl_core::Timestamp;

use crate::app::{App, Connection, KEYS, Modal, Outcome, Tab};

/// Below this the layout does not fit: a hint is drawn instead.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 12;
/// From this width on the detail pane sits beside the table, not below it.
const SIDE_DETAIL_WIDTH: u16 = 140;
/// From this table width on the Nodes table shows health, traffic, endpoints and load.
const WIDE: u16 = 150;

impl Widget for &App {
    fn render(self, area: Rect, buf: &mut Buffer) {
        if area.width < MIN_WIDTH || area.height < MIN_HEIGHT {
            let hint = format!(
                "Terminal too small ({}×{}).\nvpnctl needs at least {MIN_WIDTH}×{MIN_HEIGHT}.\nEnlarge the window or press q to quit.",
                area.width, area.height
            );
            Paragraph::new(hint)
                .wrap(Wrap { trim: true })
                .yellow()
                .render(area, buf);
            return;
        }
        let [header, body, footer] = Layout::vertical([
            Constraint::Length(1),
            Constraint::Min(3),
            Constraint::Length(1),
        ])
        .areas(area);
        draw_header(self, header, buf);
        draw_footer(self, footer, buf);

        let detail = self.show_detail.then(|| detail(self));
        let (table_area, detail_area) = match &detail {
            Some(_) if area.width >= SIDE_DETAIL_WIDTH => {
                let [t, d] =
                    Layout::horizontal([Constraint::Min(60), Constraint::Length(56)]).areas(body);
                (t, Some(d))
            }
            Some(detail) => {
                // Below the table: as tall as the text (at least 9, at most half).
                let rows = wrapped_rows(&detail.lines, usize::from(body.width.saturating_sub(2)));
                let height = u16::try_from(rows + 2)
                    .unwrap_or(u16::MAX)
                    .clamp(9, (body.height / 2).max(9));
                let [t, d] =
                    Layout::vertical([Constraint::Min(5), Constraint::Length(height)]).areas(body);
                (t, Some(d))
            }
            None => (body, None),
        };
        draw_table(self, table_area, buf);
        if let (Some(detail), Some(d)) = (detail, detail_area) {
            draw_detail(detail, d, buf);
        }
        if let Some(modal) = &self.modal {
            draw_modal(modal, area, buf);
        } else if self.show_help {
            draw_help(area, buf);
        }
    }
}

fn draw_header(app: &App, area: Rect, buf: &mut Buffer) {
    let titles = Tab::ALL.iter().enumerate().map(|(i, t)| {
        let count = match t {
            Tab::Nodes => app.nodes.len(),
            Tab::Peers => app.peers.len(),
            Tab::Users => app.users.len(),
            Tab::Invites => app.invites.len(),
            Tab::Events => app.events.len(),
            Tab::Plans => app.plans.len(),
        };
        format!("{} {} {count}", i + 1, t.title())
    });
    let selected = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    let conn = match &app.connection {
        Connection::Connecting => Span::from("connecting…").yellow(),
        Connection::Loading => {
            // Node views count each node's devices: what the read is heading for.
            let total: usize = app
                .nodes
                .iter()
                .map(|v| usize::try_from(v.peers).unwrap_or(0))
                .sum();
            let text = (app.peers.len() * 100).checked_div(total).map_or_else(
                || "loading…".to_owned(),
                |pct| format!("loading {}%", pct.min(99)),
            );
            Span::from(text).yellow()
        }
        Connection::Live => Span::from("● live").green(),
        Connection::Failed(_) => Span::from("✖ API error").red().bold(),
    };
    let title_width = u16::try_from(app.title.chars().count() + 1).unwrap_or(20);
    let conn_width = u16::try_from(conn.content.chars().count() + 1).unwrap_or(12);
    let [title, tabs, status] = Layout::horizontal([
        Constraint::Length(title_width),
        Constraint::Min(10),
        Constraint::Length(conn_width),
    ])
    .areas(area);
    Span::from(app.title.as_str()).bold().render(title, buf);
    Tabs::new(titles)
        .select(selected)
        .highlight_style(Style::new().reversed())
        .divider("│")
        .padding("", "")
        .render(tabs, buf);
    Line::from(conn).right_aligned().render(status, buf);
}

fn draw_footer(app: &App, area: Rect, buf: &mut Buffer) {
    let state = app.tab_state(app.tab);
    let line = if app.filtering {
        Line::from(vec![
            Span::from(" filter: ").yellow(),
            Span::from(state.filter.as_str()),
            Span::from("▏"),
            Span::from("  Enter keep · Esc clear").dim(),
        ])
    } else if let Connection::Failed(message) = &app.connection {
        Line::from(Span::from(format!(" {message}")).red())
    } else {
        let sort = app
            .tab
            .sort_keys()
            .get(state.sort)
            .copied()
            .unwrap_or_default();
        let mut spans = vec![Span::from(format!(
            " sort:{sort}{}",
            if state.descending { "↓" } else { "" }
        ))];
        if !state.filter.is_empty() {
            spans.push(Span::from(format!("  filter:{}", state.filter)).yellow());
        }
        if let Some(status) = &app.status {
            spans.push(Span::from(format!("  {status}")).green());
        }
        spans.push(
            Span::from("  ? help · q quit · / filter · s sort · Enter detail · i invite").dim(),
        );
        Line::from(spans)
    };
    line.render(area, buf);
}

/// First row to draw so that the selection is visible.
fn offset(selected: usize, visible: usize) -> usize {
    if visible == 0 {
        0
    } else {
        selected.saturating_sub(visible - 1)
    }
}

fn draw_table(app: &App, area: Rect, buf: &mut Buffer) {
    let view = app.view(app.tab);
    let state = app.tab_state(app.tab);
    let visible = usize::from(area.height.saturating_sub(3));
    let first = offset(state.selected, visible);
    let rows_idx = view.iter().skip(first).take(visible).copied();
    let wide = area.width >= WIDE;
    let (header, widths, rows): TableParts<'_> = match app.tab {
        Tab::Nodes => nodes::table(app, rows_idx, wide),
        Tab::Peers => peers::table(app, rows_idx),
        Tab::Users => users::table(app, rows_idx),
        Tab::Invites => invites::table(app, rows_idx),
        Tab::Events => events::table(app, rows_idx),
        Tab::Plans => plans::table(app, rows_idx),
    };
    // A marker column shows the selection without colours too.
    let mut widths = widths;
    widths.insert(0, Constraint::Length(1));
    let mut header = header;
    header.insert(0, "");
    let rows = rows.into_iter().enumerate().map(|(i, mut cells)| {
        let selected = first + i == state.selected;
        cells.insert(0, Cell::from(if selected { "▶" } else { " " }));
        let style = if selected {
            Style::new().add_modifier(Modifier::REVERSED)
        } else {
            Style::new()
        };
        Row::new(cells).style(style)
    });
    let title = format!(
        " {} {}/{} ",
        app.tab.title(),
        if view.is_empty() {
            0
        } else {
            state.selected + 1
        },
        view.len()
    );
    let empty = view.is_empty();
    Table::new(rows, widths)
        .header(Row::new(header).bold().underlined())
        .block(Block::new().borders(Borders::ALL).title(title))
        .column_spacing(1)
        .render(area, buf);
    if empty {
        let msg = match (&app.connection, state.filter.is_empty()) {
            (Connection::Connecting | Connection::Loading, _) => "loading…",
            (_, false) => "nothing matches the filter",
            _ => "nothing here yet",
        };
        let inner = Rect {
            x: area.x + 2,
            y: area.y + 2,
            width: area.width.saturating_sub(4),
            height: 1.min(area.height.saturating_sub(3)),
        };
        Span::from(msg).dim().render(inner, buf);
    }
}

pub(crate) type TableParts<'a> = (Vec<&'static str>, Vec<Constraint>, Vec<Vec<Cell<'a>>>);

pub(crate) struct Detail<'a> {
    pub(crate) lines: Vec<Line<'a>>,
    /// Traffic history, drawn under the text when there is room.
    pub(crate) spark: Option<Vec<u64>>,
}
fn detail(app: &App) -> Detail<'_> {
    let mut detail = match app.tab {
        Tab::Nodes => nodes::detail(app),
        Tab::Peers => peers::detail(app),
        Tab::Users => users::detail(app),
        Tab::Invites => invites::detail(app),
        Tab::Events => events::detail(app),
        Tab::Plans => plans::detail(app),
    };
    if detail.lines.is_empty() {
        detail.lines.push(Line::from("nothing selected").dim());
    }
    detail
}

fn draw_detail(detail: Detail<'_>, area: Rect, buf: &mut Buffer) {
    let block = Block::new().borders(Borders::ALL).title(" Detail ");
    let inner = block.inner(area);
    block.render(area, buf);
    let Detail { lines, spark } = detail;
    // Rows after wrapping, so the sparkline goes below the text, not over it.
    let rows = wrapped_rows(&lines, usize::from(inner.width));
    let text_height = u16::try_from(rows).unwrap_or(u16::MAX);
    Paragraph::new(lines)
        .wrap(Wrap { trim: false })
        .render(inner, buf);
    if let Some(data) = spark
        && inner.height > text_height + 1
    {
        let area = Rect {
            y: inner.y + text_height,
            height: (inner.height - text_height).min(4),
            ..inner
        };
        Sparkline::default()
            .data(&data)
            .style(Style::new().fg(Color::Cyan))
            .render(area, buf);
    }
}

fn centered(area: Rect, width: u16, height: u16) -> Rect {
    let width = width.min(area.width);
    let height = height.min(area.height);
    Rect {
        x: area.x + (area.width - width) / 2,
        y: area.y + (area.height - height) / 2,
        width,
        height,
    }
}

fn draw_help(area: Rect, buf: &mut Buffer) {
    let lines: Vec<Line<'_>> = KEYS
        .iter()
        .map(|(k, what)| {
            Line::from(vec![
                Span::from(format!("{k:>14}  ")).bold(),
                Span::from(*what),
            ])
        })
        .collect();
    let height = u16::try_from(lines.len()).unwrap_or(20) + 2;
    let rect = centered(area, 54, height);
    Clear.render(rect, buf);
    Paragraph::new(lines)
        .block(Block::bordered().title(" Keys (any key closes) "))
        .render(rect, buf);
}

fn draw_modal(modal: &Modal, area: Rect, buf: &mut Buffer) {
    let (title, text, style): (&str, Text<'_>, Style) = match modal {
        Modal::Confirm(command) => (
            " Confirm ",
            Text::from(vec![
                Line::from(command.describe()),
                Line::from(""),
                Line::from("[y] yes   [n] no").bold(),
            ]),
            Style::new().fg(Color::Yellow),
        ),
        Modal::Busy(what) => (" Working ", Text::from(format!("{what}\n…")), Style::new()),
        Modal::Error(message) => (
            " Failed ",
            Text::from(vec![
                Line::from(message.as_str()),
                Line::from(""),
                Line::from("any key closes").dim(),
            ]),
            Style::new().fg(Color::Red),
        ),
        Modal::Result(Outcome::Invite { link, qr }) => {
            let mut lines = vec![
                Line::from("Invite created. Shown once — send this link:"),
                Line::from(link.as_str()).bold(),
            ];
            lines.extend(qr.lines().map(Line::from));
            lines.push(Line::from("any key closes").dim());
            (" Invite ", Text::from(lines), Style::new())
        }
        Modal::Result(Outcome::JoinCommand { node, command }) => (
            " Join command ",
            Text::from(vec![
                Line::from(format!("On the new server for {node}, run (shown once):")),
                Line::from(""),
                Line::from(command.as_str()).bold(),
                Line::from(""),
                Line::from("any key closes").dim(),
            ]),
            Style::new(),
        ),
        Modal::Result(Outcome::Done(text)) => (" Done ", Text::from(text.as_str()), Style::new()),
        Modal::Result(Outcome::Device { title, qr }) => {
            let mut lines = vec![Line::from(title.as_str()).bold()];
            // A QR is drawn whole or not at all: a clipped or wrapped one does not scan.
            let qr_width = qr.lines().map(|l| l.chars().count()).max().unwrap_or(0);
            let qr_height = qr.lines().count();
            let (need_w, need_h) = (qr_width + 2, qr_height + 4);
            if need_w <= usize::from(area.width) && need_h <= usize::from(area.height) {
                lines.extend(qr.lines().map(Line::from));
            } else {
                lines.push(Line::from(""));
                lines.push(Line::from(format!(
                    "The QR code needs a terminal of {need_w}×{need_h}; this one is {}×{}. Enlarge it and press any key, or use `vpnctl peers config <peer> --qr` or `--out FILE`.",
                    area.width, area.height
                )));
            }
            lines.push(Line::from("any key closes (the QR is shown once)").dim());
            (" New config ", Text::from(lines), Style::new())
        }
        Modal::Result(Outcome::Report { title, lines }) => {
            let mut text: Vec<Line<'_>> = vec![Line::from(title.as_str()).bold()];
            text.extend(lines.iter().map(|l| Line::from(l.as_str())));
            text.push(Line::from(""));
            text.push(Line::from("any key closes").dim());
            (" Done ", Text::from(text), Style::new())
        }
        Modal::PickNode {
            user_name,
            nodes,
            selected,
            ..
        } => {
            let mut lines = vec![
                Line::from(format!("A new device for {user_name}: on which node?")),
                Line::from("Offered nodes, core's preference first.").dim(),
                Line::from(""),
            ];
            for (i, (_, name, mark)) in nodes.iter().enumerate() {
                let line = Line::from(format!(
                    "{} {name:<16} {mark}",
                    if i == *selected { "▶" } else { " " }
                ));
                lines.push(if i == *selected {
                    line.reversed()
                } else {
                    line
                });
            }
            lines.push(Line::from(""));
            lines.push(Line::from("↑↓ choose · Enter next · Esc cancel").bold());
            (
                " New device ",
                Text::from(lines),
                Style::new().fg(Color::Yellow),
            )
        }
        Modal::Broadcast { to, text, on_text } => {
            let field = |label: &'static str, value: &str, focused: bool| {
                let mut spans = vec![Span::from(label), Span::from(value.to_owned()).bold()];
                if focused {
                    spans.push(Span::from("▏"));
                }
                let line = Line::from(spans);
                if focused { line } else { line.dim() }
            };
            (
                " Broadcast ",
                Text::from(vec![
                    Line::from("A text to many users, sent by the bot within Telegram's limits."),
                    Line::from(""),
                    field("to:   ", to, !*on_text),
                    Line::from("      active · lapsed · all · region CODE").dim(),
                    field("text: ", text, *on_text),
                    Line::from(""),
                    Line::from(
                        "Tab switch field · Enter count recipients, then confirm · Esc cancel",
                    )
                    .bold(),
                ]),
                Style::new().fg(Color::Yellow),
            )
        }
        Modal::ConfigsDir { command, path } => (
            " Configs of users without Telegram ",
            Text::from(vec![
                Line::from(command.describe()),
                Line::from(""),
                Line::from(
                    "Write the new configs of users without Telegram (the bot cannot reach them) to this directory (0600 files, nothing overwritten):",
                ),
                Line::from(vec![
                    Span::from("> "),
                    Span::from(path.as_str()).bold(),
                    Span::from("▏"),
                ]),
                Line::from(""),
                Line::from("Enter evacuate · empty path (Ctrl-U) writes none · Esc cancel").bold(),
            ]),
            Style::new().fg(Color::Yellow),
        ),
    };
    let width = text
        .lines
        .iter()
        .map(Line::width)
        .max()
        .unwrap_or(20)
        .clamp(30, usize::from(area.width.saturating_sub(2)));
    let rows = wrapped_rows(&text.lines, width);
    let width = u16::try_from(width).unwrap_or(area.width) + 2;
    let height = u16::try_from(rows).unwrap_or(area.height).saturating_add(2);
    let rect = centered(area, width, height);
    Clear.render(rect, buf);
    Paragraph::new(text)
        .wrap(Wrap { trim: false })
        .block(Block::bordered().title(title).border_style(style))
        .render(rect, buf);
}

/// How many rows `lines` take when word-wrapped to `width` columns (greedy, as
/// `Paragraph` with `Wrap` does; a word longer than a row is broken).
fn wrapped_rows(lines: &[Line<'_>], width: usize) -> usize {
    let width = width.max(1);
    lines
        .iter()
        .map(|line| {
            let text: String = line.spans.iter().map(|s| s.content.as_ref()).collect();
            let mut rows = 1;
            let mut used = 0;
            for word in text.split(' ') {
                let len = word.chars().count();
                let need = if used == 0 { len } else { used + 1 + len };
                if need <= width {
                    used = need;
                } else if len <= width {
                    rows += 1;
                    used = len;
                } else {
                    // Broken across rows, starting on a fresh one unless this is empty.
                    if used > 0 {
                        rows += 1;
                    }
                    rows += (len - 1) / width;
                    used = (len - 1) % width + 1;
                }
            }
            rows
        })
        .sum()
}

/// `12s`, `5m`, `3h`, `2d` since `at`.
pub fn age(now: Timestamp, at: Timestamp) -> String {
    let secs = (now.seconds() - at.seconds()).max(0);
    match secs {
        0..60 => format!("{secs}s"),
        60..3_600 => format!("{}m", secs / 60),
        3_600..86_400 => format!("{}h", secs / 3_600),
        _ => format!("{}d", secs / 86_400),
    }
}

/// Traffic as the bot shows it too (see [`vpnctl_core::units::traffic`]).
pub fn bytes(n: u64) -> String {
    vpnctl_core::units::traffic(n, vpnctl_core::Locale::En)
}

pub fn rate(n: u64) -> String {
    format!("{}/s", bytes(n))
}

/// A sparkline as text, for a table cell.
pub(crate) fn spark_text(
    history: Option<&std::collections::VecDeque<u64>>,
    width: usize,
) -> String {
    const BARS: [char; 8] = ['▁', '▂', '▃', '▄', '▅', '▆', '▇', '█'];
    let Some(history) = history else {
        return String::new();
    };
    let start = history.len().saturating_sub(width);
    let max = history
        .iter()
        .skip(start)
        .copied()
        .max()
        .unwrap_or(0)
        .max(1);
    history
        .iter()
        .skip(start)
        .map(|&v| {
            let level = usize::try_from(v.saturating_mul(7) / max).unwrap_or(7);
            BARS[level.min(7)]
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_are_compact() {
        assert_eq!(age(Timestamp(100), Timestamp(95)), "5s");
        assert_eq!(age(Timestamp(7_300), Timestamp(100)), "2h");
        assert_eq!(bytes(512), "512 B");
        assert_eq!(bytes(3_000_000), "3.0 MB", "the same figure the bot shows");
        assert_eq!(rate(20_000_000), "20.0 MB/s");
        let h: std::collections::VecDeque<u64> = [0, 5, 10].into_iter().collect();
        assert_eq!(spark_text(Some(&h), 20), "▁▄█");
    }

    #[test]
    fn selection_stays_visible() {
        assert_eq!(offset(0, 10), 0);
        assert_eq!(offset(9, 10), 0);
        assert_eq!(offset(10, 10), 1);
        assert_eq!(offset(5, 0), 0);
    }
}
