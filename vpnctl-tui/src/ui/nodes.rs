//! The Nodes tab: the table and the detail pane of the selected node.

use ratatui::layout::Constraint;
use ratatui::style::{Color, Modifier, Style, Stylize};
use ratatui::text::{Line, Span};
use ratatui::widgets::Cell;
use vpnctl_core::Availability;

use super::{Detail, TableParts, age, bytes, rate, spark_text};
use crate::app::{App, Health, health, placement};

pub(super) fn health_style(h: Health) -> Style {
    match h {
        Health::Up => Style::new().fg(Color::Green),
        Health::Degraded => Style::new().fg(Color::Yellow),
        Health::Down => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Health::Unknown => Style::new().add_modifier(Modifier::DIM),
    }
}

/// Core's mark for new devices, coloured like the health it stands for.
pub(super) fn availability_style(a: Availability) -> Style {
    match a {
        Availability::Up => Style::new().fg(Color::Green),
        Availability::Degraded | Availability::Full | Availability::Draining => {
            Style::new().fg(Color::Yellow)
        }
        Availability::Down => Style::new().fg(Color::Red).add_modifier(Modifier::BOLD),
        Availability::Disabled => Style::new().fg(Color::Red),
        Availability::Unknown | Availability::NotEnrolled => {
            Style::new().add_modifier(Modifier::DIM)
        }
    }
}

/// The first column is core's mark ([`vpnctl_core::Placement`]): up, degraded, down,
/// unknown, full, draining, disabled or not enrolled. Wide screens add the health
/// verdict itself (a draining node still has one), endpoint, traffic and load.
pub(super) fn table(app: &App, rows: impl Iterator<Item = usize>, wide: bool) -> TableParts<'_> {
    let mut header = vec!["status", "name", "region", "peers", "hs3m", "rx/s", "tx/s"];
    let mut widths = vec![
        Constraint::Length(12),
        Constraint::Min(6),
        Constraint::Length(6),
        Constraint::Length(5),
        Constraint::Length(4),
        Constraint::Length(10),
        Constraint::Length(10),
    ];
    if wide {
        header.extend(["health", "traffic", "endpoint", "cpu", "load"]);
        widths.extend([
            Constraint::Length(8),
            Constraint::Length(20),
            Constraint::Length(32),
            Constraint::Length(4),
            Constraint::Length(4),
        ]);
    }
    header.extend(["age", "rev"]);
    widths.extend([Constraint::Length(5), Constraint::Length(7)]);
    let rows = rows
        .filter_map(|i| app.nodes.get(i))
        .map(|v| {
            let h = health(v);
            let mark = placement(v).availability;
            let traffic = app.traffic.get(&v.node.id);
            let rx = traffic.map_or(0, |t| t.rx_rate);
            let tx = traffic.map_or(0, |t| t.tx_rate);
            let mut cells = vec![
                Cell::from(mark.as_str()).style(availability_style(mark)),
                Cell::from(v.node.name.clone()),
                Cell::from(v.node.region.code.clone()),
                Cell::from(v.peers.to_string()),
                Cell::from(v.health.peers_connected.to_string()),
                Cell::from(rate(rx)),
                Cell::from(rate(tx)),
            ];
            if wide {
                cells.push(Cell::from(h.as_str()).style(health_style(h)));
                cells.push(Cell::from(spark_text(traffic.map(|t| &t.history), 20)).fg(Color::Cyan));
                cells.push(Cell::from(v.node.endpoint.to_string()));
                let system = v.report.as_ref().map(|r| &r.system);
                cells.push(Cell::from(
                    system.map_or_else(|| "-".into(), |s| format!("{:.0}%", s.cpu_percent)),
                ));
                cells.push(Cell::from(
                    system.map_or_else(|| "-".into(), |s| format!("{:.2}", s.load1)),
                ));
            }
            cells.push(Cell::from(
                v.health
                    .last_report_at
                    .map_or_else(|| "never".into(), |at| age(app.now, at)),
            ));
            // A store restored from a backup numbers revisions from a new epoch,
            // fourteen digits: the last six say as much.
            let short = |r: u64| {
                if r < 10_000_000 {
                    r.to_string()
                } else {
                    format!("…{:06}", r % 1_000_000)
                }
            };
            let applied = v.health.applied_revision.map_or_else(|| "-".into(), short);
            let rev = format!("{applied}/{}", short(v.health.desired_revision));
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

pub(super) fn detail(app: &App) -> Detail<'_> {
    let mut lines: Vec<Line<'_>> = Vec::new();
    let mut spark: Option<Vec<u64>> = None;
    if let Some(v) = app.selected_node() {
        let n = &v.node;
        let h = health(v);
        let place = placement(v);
        lines.push(Line::from(vec![
            Span::from(format!("n{} {} ", n.id, n.name)).bold(),
            Span::styled(h.as_str(), health_style(h)),
            Span::from(" · new devices: "),
            Span::styled(
                place.availability.as_str(),
                availability_style(place.availability),
            ),
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
            "peers    {} of {} ({}% full), {} handshook in 3 min",
            place.peers,
            place.capacity,
            place.load_percent(),
            v.health.peers_connected
        )));
        if let Some(r) = &v.report {
            lines.push(Line::from(format!(
                "cpu {:.0}%  load {:.2}  errors {}",
                r.system.cpu_percent, r.system.load1, r.errors
            )));
        }
        lines.push(Line::from(format!(
            "region   {} ({})",
            n.region.name, n.region.code
        )));
        lines.push(Line::from(match n.transport.awg() {
            Some(p) => format!("endpoint {} (amneziawg {})", n.endpoint, p.generation),
            None => format!("endpoint {} (wireguard)", n.endpoint),
        }));
        lines.push(Line::from(format!("pool     {}", n.ipv4_pool)));
        spark = app
            .traffic
            .get(&n.id)
            .map(|t| t.history.iter().copied().collect());
    }
    Detail { lines, spark }
}
