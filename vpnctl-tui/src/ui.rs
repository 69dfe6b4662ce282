//! Drawing: reads [`App`], never changes it. Tables build only the rows that fit on
//! screen, so 10,000 peers cost what a screenful costs.

use ratatui::buffer::Buffer;
use ratatui::layout::{Constraint, Layout, Rect};
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span, Text};
use ratatui::widgets::{
    Block, Borders, Cell, Clear, Paragraph, Row, Sparkline, Table, Tabs, Widget, Wrap,
};
use vpnctl_core::{Event, EventKind, NodeState, Timestamp};

use crate::app::{App, Connection, Health, KEYS, Modal, Outcome, Tab, UserStatus, health};
use vpnctl_core::units;

/// Below this the layout does not fit: a hint is drawn instead.
pub const MIN_WIDTH: u16 = 60;
pub const MIN_HEIGHT: u16 = 12;
/// From this width on the detail pane sits beside the table, not below it.
const SIDE_DETAIL_WIDTH: u16 = 140;
/// From this width on the Nodes table shows endpoints and sparklines.
const WIDE: u16 = 120;

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
        };
        format!("{} {} {count}", i + 1, t.title())
    });
    let selected = Tab::ALL.iter().position(|t| *t == app.tab).unwrap_or(0);
    let conn = match &app.connection {
        Connection::Connecting => Span::from("connecting…").yellow(),
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
        Tab::Nodes => nodes_table(app, rows_idx, wide),
        Tab::Peers => peers_table(app, rows_idx),
        Tab::Users => users_table(app, rows_idx),
        Tab::Invites => invites_table(app, rows_idx),
        Tab::Events => events_table(app, rows_idx),
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
            (Connection::Connecting, _) => "loading…",
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

type TableParts<'a> = (Vec<&'static str>, Vec<Constraint>, Vec<Vec<Cell<'a>>>);

fn health_style(h: Health) -> Style {
    match h {
        Health::Up => Style::new().fg(Color::Green),
        Health::Degraded => Style::new().fg(Color::Yellow),
        Health::Down => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Health::Unknown => Style::new().add_modifier(Modifier::DIM),
    }
}

fn nodes_table(app: &App, rows: impl Iterator<Item = usize>, wide: bool) -> TableParts<'_> {
    let mut header = vec!["health", "name", "region", "peers", "hs3m", "rx/s", "tx/s"];
    let mut widths = vec![
        Constraint::Length(8),
        Constraint::Min(6),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(10),
        Constraint::Length(10),
    ];
    if wide {
        header.extend(["traffic", "endpoint", "state", "cpu"]);
        widths.extend([
            Constraint::Length(20),
            Constraint::Length(32),
            Constraint::Length(8),
            Constraint::Length(4),
        ]);
    }
    header.extend(["load", "age", "rev"]);
    widths.extend([
        Constraint::Length(4),
        Constraint::Length(5),
        Constraint::Length(7),
    ]);
    let rows = rows
        .filter_map(|i| app.nodes.get(i))
        .map(|v| {
            let h = health(v);
            let traffic = app.traffic.get(&v.node.id);
            let rx = traffic.map_or(0, |t| t.rx_rate);
            let tx = traffic.map_or(0, |t| t.tx_rate);
            let mut cells = vec![
                Cell::from(h.as_str()).style(health_style(h)),
                Cell::from(v.node.name.clone()),
                Cell::from(v.node.region.code.clone()),
                Cell::from(v.peers.to_string()),
                Cell::from(v.health.peers_connected.to_string()),
                Cell::from(rate(rx)),
                Cell::from(rate(tx)),
            ];
            if wide {
                cells.push(Cell::from(spark_text(traffic.map(|t| &t.history), 20)).fg(Color::Cyan));
                cells.push(Cell::from(v.node.endpoint.to_string()));
                let state_style = match v.node.state {
                    NodeState::Active => Style::new(),
                    NodeState::Draining => Style::new().fg(Color::Yellow),
                    NodeState::Disabled => Style::new().fg(Color::Red),
                };
                cells.push(Cell::from(v.node.state.to_string()).style(state_style));
                cells.push(Cell::from(v.report.as_ref().map_or_else(
                    || "-".into(),
                    |r| format!("{:.0}%", r.report.system.cpu_percent),
                )));
            }
            let load = v
                .report
                .as_ref()
                .map_or_else(|| "-".into(), |r| format!("{:.2}", r.report.system.load1));
            cells.push(Cell::from(load));
            cells.push(Cell::from(
                v.health
                    .last_report_at
                    .map_or_else(|| "never".into(), |at| age(app.now, at)),
            ));
            let applied = v
                .health
                .applied_revision
                .map_or_else(|| "-".into(), |r| r.to_string());
            let rev = format!("{applied}/{}", v.health.desired_revision);
            cells.push(if v.health.in_sync {
                Cell::from(rev)
            } else {
                Cell::from(rev).fg(Color::Yellow)
            });
            cells
        })
        .collect();
    (header, widths, rows)
}

fn peers_table(app: &App, rows: impl Iterator<Item = usize>) -> TableParts<'_> {
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

fn users_table(app: &App, rows: impl Iterator<Item = usize>) -> TableParts<'_> {
    let header = vec!["id", "name", "role", "state", "until", "devices"];
    let widths = vec![
        Constraint::Length(6),
        Constraint::Min(10),
        Constraint::Length(6),
        Constraint::Length(9),
        Constraint::Length(11),
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
                Cell::from(
                    u.until
                        .map_or_else(|| "unlimited".into(), Timestamp::to_date),
                ),
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

fn user_status_style(status: UserStatus) -> Style {
    match status {
        UserStatus::Disabled => Style::new().fg(Color::Red),
        UserStatus::Expired => Style::new().fg(Color::Yellow),
        UserStatus::Suspended => Style::new().fg(Color::Magenta),
        UserStatus::Active => Style::new().fg(Color::Green),
    }
}

fn invites_table(app: &App, rows: impl Iterator<Item = usize>) -> TableParts<'_> {
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

fn events_table(app: &App, rows: impl Iterator<Item = usize>) -> TableParts<'_> {
    let header = vec!["seq", "age", "actor", "what"];
    let widths = vec![
        Constraint::Length(6),
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
            until.map_or_else(|| "unlimited".into(), Timestamp::to_date)
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
        EventKind::Notice {
            severity, message, ..
        } => format!("{severity:?}: {message}").to_lowercase(),
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
            until.to_date()
        ),
        EventKind::QuotaRestored { user } => format!("u{user} is back within the quota"),
        EventKind::NodeEvacuated {
            node,
            moved,
            failed,
        } => format!("node n{node} evacuated: moved {moved}, failed {failed}"),
    }
}

/// What the detail pane shows for the selected row.
struct Detail<'a> {
    lines: Vec<Line<'a>>,
    /// Traffic history, drawn under the text when there is room.
    spark: Option<Vec<u64>>,
}

fn detail(app: &App) -> Detail<'_> {
    let mut lines: Vec<Line<'_>> = Vec::new();
    let mut spark: Option<Vec<u64>> = None;
    match app.tab {
        Tab::Nodes => {
            if let Some(v) = app.selected_node() {
                let n = &v.node;
                let h = health(v);
                lines.push(Line::from(vec![
                    Span::from(format!("n{} {} ", n.id, n.name)).bold(),
                    Span::styled(h.as_str(), health_style(h)),
                    Span::from(format!(" · {}", n.state)),
                ]));
                let since = v
                    .health
                    .since
                    .map(|at| format!(" (for {})", age(app.now, at)))
                    .unwrap_or_default();
                let reason = if v.health.reason.is_empty() {
                    "-"
                } else {
                    v.health.reason.as_str()
                };
                lines.push(Line::styled(
                    format!("why      {reason}{since}"),
                    if h == Health::Up {
                        Style::new()
                    } else {
                        health_style(h)
                    },
                ));
                lines.push(Line::from(format!(
                    "probe    {}",
                    v.health.probe.as_ref().map_or_else(
                        || "-".into(),
                        |p| match (p.rtt_ms, &p.error) {
                            (Some(ms), _) => format!("{ms} ms, {} ago", age(app.now, p.at)),
                            (None, error) => format!(
                                "failed {} ago: {}",
                                age(app.now, p.at),
                                error.as_deref().unwrap_or("no answer")
                            ),
                        }
                    )
                )));
                lines.push(Line::from(format!(
                    "traffic  rx {} · tx {} in total",
                    bytes(v.health.traffic.rx),
                    bytes(v.health.traffic.tx)
                )));
                lines.push(Line::from(format!(
                    "peers    {} ({} handshook in 3 min)",
                    v.peers, v.health.peers_connected
                )));
                if let Some(r) = &v.report {
                    lines.push(Line::from(format!(
                        "cpu {:.0}%  load {:.2}  errors {}",
                        r.report.system.cpu_percent,
                        r.report.system.load1,
                        r.report.errors.len()
                    )));
                }
                lines.push(Line::from(format!(
                    "region   {} ({})",
                    n.region.name, n.region.code
                )));
                lines.push(Line::from(format!("endpoint {}", n.endpoint)));
                lines.push(Line::from(format!("pool     {}", n.ipv4_pool)));
                spark = app
                    .traffic
                    .get(&n.id)
                    .map(|t| t.history.iter().copied().collect());
            }
        }
        Tab::Peers => {
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
        }
        Tab::Users => {
            if let Some(u) = app.selected_user() {
                let status = UserStatus::of(u, app.now);
                lines.push(Line::from(vec![
                    Span::from(format!("u{} {} ", u.id, u.name)).bold(),
                    Span::styled(status.label(), user_status_style(status)),
                ]));
                lines.push(Line::from(format!(
                    "until    {}",
                    u.until
                        .map_or_else(|| "unlimited".into(), Timestamp::to_rfc3339)
                )));
                lines.push(Line::from(format!(
                    "quota    {}",
                    u.quota.map_or_else(
                        || "unlimited".into(),
                        |q| {
                            let mut text = format!("{} {}", units::display(q.bytes), q.period);
                            if u.suspended {
                                let (_, next) = q.period.bounds(app.now);
                                text.push_str(&format!(" · used up, resets {}", next.to_date()));
                            }
                            text
                        }
                    )
                )));
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
        }
        Tab::Invites => {
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
        }
        Tab::Events => {
            if let Some(e) = app.selected_event() {
                lines.push(Line::from(format!("#{} {}", e.seq, e.at.to_rfc3339())).bold());
                lines.push(Line::from(format!("by {}", e.actor)));
                lines.push(Line::from(event_text(e)));
            }
        }
    }
    if lines.is_empty() {
        lines.push(Line::from("nothing selected").dim());
    }
    Detail { lines, spark }
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
fn spark_text(history: Option<&std::collections::VecDeque<u64>>, width: usize) -> String {
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
