//! The dashboard at run time: background tasks that talk to the API (polling, the
//! live event stream, confirmed commands) and hand their results to the UI loop as
//! [`Action`]s over a channel; the terminal loop that draws and reads keys. The UI
//! never waits for the network.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use futures_util::TryStreamExt as _;
use ratatui::crossterm::event::{self, Event as TermEvent};
use tokio::sync::{Notify, mpsc};
use vpnctl_api::body::{CreateInvite, IssuePeerRequest, PeerQuery, UserQuery};
use vpnctl_api::broadcast::CreateBroadcast;
use vpnctl_client::{ApiClient, ClientError, Followed};
use vpnctl_core::{
    EvacuateTo, Evacuation, NodeId, Peer, PeerId, Timestamp, User, UserId, UserState,
};

use crate::app::{Action, App, Changes, Command, Dirty, Outcome, Snapshot, update};
use crate::configs;

/// How often the node list (and the reports on screen) are read again; the other
/// tables are read again only for the rows an event names.
pub const POLL_EVERY: Duration = Duration::from_secs(2);
/// How long the first read waits for the event stream to open (it is read again
/// when the stream does).
pub const STREAM_WAIT: Duration = Duration::from_secs(10);
/// Events shown at start; older ones are read on demand (`o` on the Events tab).
pub const RECENT_EVENTS: usize = 500;

/// A message for an admin, from a client error.
pub fn describe(e: &ClientError) -> String {
    match e.status() {
        Some(401) => format!(
            "the API refused the token (HTTP 401): check --token / VPNCTL_TOKEN or the connection string [{e}]"
        ),
        Some(403) => format!("the token may not do this (HTTP 403): it needs admin scope [{e}]"),
        _ => e.to_string(),
    }
}

/// Everything, read in pages and handed over whole: the dashboard's read after a
/// change too broad for point reads (the first read is [`read_everything`], shown
/// page by page). Node reports are not read here: the periodic poll reads those the
/// screen shows.
pub async fn fetch_snapshot(api: &ApiClient) -> Result<Snapshot, ClientError> {
    let (pages, mut read) = mpsc::unbounded_channel();
    read_everything(api, &pages).await?;
    drop(pages);
    let mut snapshot = Snapshot::default();
    while let Some(action) = read.recv().await {
        match action {
            Action::Data(first) => snapshot = *first,
            // Each table's pages come in order.
            Action::Rows { users, peers, .. } => {
                snapshot.users.extend(users);
                snapshot.peers.extend(peers);
            }
            _ => {}
        }
    }
    snapshot.more = false;
    Ok(snapshot)
}

/// The dashboard's first read, in pages so the screen is usable at once: the node
/// list, invites, plans and the first page of users and of peers as one
/// [`Action::Data`], then the other pages of users and peers as they come, as
/// [`Action::Rows`] (the last with `done`). At 200,000 peers that is 200 pages:
/// over a slow link the nodes and the first rows are on screen long before the
/// last page (an admin away from the control plane reads ~13 MB gzipped).
pub async fn read_everything(
    api: &ApiClient,
    actions: &mpsc::UnboundedSender<Action>,
) -> Result<(), ClientError> {
    let (first_users, first_peers) = (UserQuery::default(), PeerQuery::default());
    let (nodes, users, peers, invites, plans) = tokio::try_join!(
        api.nodes(),
        api.users_page(&first_users),
        api.peers_page(&first_peers),
        api.invites(),
        api.plans(true)
    )?;
    let (users_after, peers_after) = (users.next, peers.next);
    let more = users_after.is_some() || peers_after.is_some();
    let send = |action| {
        // The dashboard is gone: its tasks end at their next send.
        let _ = actions.send(action);
    };
    send(Action::Data(Box::new(Snapshot {
        nodes,
        reports: Vec::new(),
        peers: peers.items,
        users: users.items,
        invites,
        plans,
        more,
    })));
    if !more {
        return Ok(());
    }
    let users = async {
        if let Some(after) = users_after {
            let query = UserQuery {
                after: Some(UserId(after)),
                ..UserQuery::default()
            };
            let mut pages = std::pin::pin!(api.users_pages(query));
            while let Some(users) = pages.try_next().await? {
                send(Action::Rows {
                    users,
                    peers: Vec::new(),
                    done: false,
                });
            }
        }
        Ok::<_, ClientError>(())
    };
    let peers = async {
        if let Some(after) = peers_after {
            let query = PeerQuery {
                after: Some(PeerId(after)),
                ..PeerQuery::default()
            };
            let mut pages = std::pin::pin!(api.peers_pages(query));
            while let Some(peers) = pages.try_next().await? {
                send(Action::Rows {
                    users: Vec::new(),
                    peers,
                    done: false,
                });
            }
        }
        Ok(())
    };
    tokio::try_join!(users, peers)?;
    send(Action::Rows {
        users: Vec::new(),
        peers: Vec::new(),
        done: true,
    });
    Ok(())
}

/// The periodic read: the node list when `read_nodes`, the reports of
/// `report_nodes` (a failed or absent report shows none) and the rows `dirty`
/// names, read by id in batches (a row the server no longer has is gone).
pub async fn fetch_changes(
    api: &ApiClient,
    dirty: &Dirty,
    read_nodes: bool,
    report_nodes: &[NodeId],
) -> Result<Changes, ClientError> {
    let nodes = async {
        if read_nodes {
            api.nodes().await.map(Some)
        } else {
            Ok(None)
        }
    };
    let reports = futures_util::future::join_all(
        report_nodes
            .iter()
            .map(|id| async move { api.node_report(*id).await.ok().flatten().map(|r| (*id, r)) }),
    );
    let users = read_again(
        &dirty.users,
        |ids| async move { api.users_by_id(&ids).await },
        |u: &User| u.id,
    );
    let peers = read_again(
        &dirty.peers,
        |ids| async move { api.peers_by_id(&ids).await },
        |p: &Peer| p.id,
    );
    let invites = async {
        if dirty.invites {
            api.invites().await.map(Some)
        } else {
            Ok(None)
        }
    };
    let plans = async {
        if dirty.plans {
            api.plans(true).await.map(Some)
        } else {
            Ok(None)
        }
    };
    let (nodes, reports, users, peers, invites, plans) =
        tokio::join!(nodes, reports, users, peers, invites, plans);
    let ((users, users_gone), (peers, peers_gone)) = (users?, peers?);
    Ok(Changes {
        nodes: nodes?,
        reports: reports.into_iter().flatten().collect(),
        users,
        users_gone,
        peers,
        peers_gone,
        invites: invites?,
        plans: plans?,
    })
}

/// Reads the rows of `ids` again with `get` (a read by id, one request per
/// `PAGE_MAX` ids): the rows found, and the ids whose row is gone.
async fn read_again<I, T, Fut>(
    ids: &BTreeSet<I>,
    get: impl FnOnce(Vec<I>) -> Fut,
    id: impl Fn(&T) -> I,
) -> Result<(Vec<T>, Vec<I>), ClientError>
where
    I: Copy + Ord,
    Fut: std::future::Future<Output = Result<Vec<T>, ClientError>>,
{
    if ids.is_empty() {
        return Ok((Vec::new(), Vec::new()));
    }
    let found = get(ids.iter().copied().collect()).await?;
    let there: BTreeSet<I> = found.iter().map(id).collect();
    let gone = ids.difference(&there).copied().collect();
    Ok((found, gone))
}

/// The QR code of `text` (core's rendering) cropped to a 2-module quiet zone: enough
/// for phone scanners, small enough for an invite link in 80×24.
pub fn qr_lines(text: &str) -> String {
    let Ok(full) = vpnctl_core::render::qr_terminal(text) else {
        return String::new();
    };
    // Core draws 4 modules on every side: drop 2 (one text line is two rows).
    let lines: Vec<&str> = full.lines().collect();
    let inner = lines.get(1..lines.len().saturating_sub(1)).unwrap_or(&[]);
    inner
        .iter()
        .map(|l| {
            let chars: Vec<char> = l.chars().collect();
            chars
                .get(2..chars.len().saturating_sub(2))
                .unwrap_or(&[])
                .iter()
                .collect::<String>()
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The status line after an evacuation: `evacuated fra-1: moved 12, failed 1`.
pub fn evacuation_summary(name: &str, done: &Evacuation) -> String {
    format!(
        "evacuated {name}: moved {}, failed {}",
        done.moved.len(),
        done.failed.len()
    )
}

/// A new config to scan, drawn by core as a QR code.
fn device_outcome(title: &str, config: &str) -> Outcome {
    match vpnctl_core::render::qr_terminal(config) {
        Ok(qr) => Outcome::Device {
            title: title.to_owned(),
            qr,
        },
        Err(e) => Outcome::Done(format!("{title}, but no QR: {e}")),
    }
}

/// Carries out one confirmed command.
pub async fn execute(api: &ApiClient, command: &Command) -> Result<Outcome, ClientError> {
    Ok(match command {
        Command::Refresh | Command::Reload | Command::OlderEvents(_) => {
            Outcome::Done("refreshed".into())
        }
        Command::CreateInvite => {
            let created = api
                .create_invite(&CreateInvite {
                    label: Some("from the dashboard".into()),
                    uses: Some(1),
                    ..CreateInvite::default()
                })
                .await?;
            let link = created.link.clone().unwrap_or_else(|| created.code.clone());
            let qr = qr_lines(&link);
            Outcome::Invite { link, qr }
        }
        Command::ExtendAccess(id, days) => {
            let user = api.extend_access(*id, *days).await?;
            Outcome::Done(format!(
                "u{id} {} has access until {}",
                user.name,
                user.until
                    .map_or_else(|| "forever".into(), crate::when::show)
            ))
        }
        Command::SetUserState(id, state) => {
            let user = api.set_user_state(*id, *state).await?;
            let what = if *state == UserState::Active {
                "enabled"
            } else {
                "disabled"
            };
            Outcome::Done(format!("u{id} {} {what}", user.name))
        }
        Command::RevokePeer(id) => {
            let peer = api.revoke_peer(*id).await?;
            Outcome::Done(format!("p{id} ({}) revoked", peer.device))
        }
        Command::SetNodeState(id, state) => {
            let node = match state {
                vpnctl_core::NodeState::Active => api.activate_node(*id).await?,
                vpnctl_core::NodeState::Draining => api.drain_node(*id).await?,
                vpnctl_core::NodeState::Disabled => api.disable_node(*id).await?,
            };
            Outcome::Done(format!("{} is now {}", node.name, node.state))
        }
        Command::Evacuate {
            node,
            name,
            configs,
            ..
        } => {
            let done = api.evacuate_node(*node, EvacuateTo::Auto).await?;
            let summary = evacuation_summary(name, &done);
            let (users, nodes) = tokio::try_join!(api.users(), api.nodes())?;
            let unreached = configs::without_telegram(&done, &users).len();
            match configs {
                _ if unreached == 0 => Outcome::Done(summary),
                None => Outcome::Report {
                    title: summary,
                    lines: vec![format!(
                        "{unreached} moved devices belong to users without Telegram: give them their new configs (`vpnctl peers config <peer> --out FILE`)."
                    )],
                },
                Some(dir) => {
                    let saved = configs::save_moved(api, &done, &users, &nodes, dir).await;
                    let name_of = |m: &vpnctl_core::Moved| {
                        users
                            .iter()
                            .find(|u| u.id == m.user)
                            .map_or_else(|| format!("u{}", m.user), |u| u.name.clone())
                    };
                    let mut lines = vec![format!(
                        "Configs of users without Telegram, written to {}:",
                        dir.display()
                    )];
                    for (m, file) in &saved.written {
                        lines.push(format!("  {} {}: {}", name_of(m), m.device, file.display()));
                    }
                    for (m, why) in &saved.not_written {
                        lines.push(format!("  NOT WRITTEN {} {}: {why}", name_of(m), m.device));
                    }
                    Outcome::Report {
                        title: summary,
                        lines,
                    }
                }
            }
        }
        Command::IssueDevice {
            user,
            user_name,
            node,
            node_name,
        } => {
            let theirs = api
                .peers(PeerQuery {
                    user: Some(*user),
                    node: None,
                    ..PeerQuery::default()
                })
                .await?;
            let issued = api
                .issue_peer(&IssuePeerRequest {
                    user: *user,
                    node: *node,
                    device: vpnctl_core::devices::next_device_name(&theirs),
                    public_key: None,
                })
                .await?;
            let config = match issued.config {
                Some(config) => config,
                None => api.peer_config(issued.peer.id).await?,
            };
            device_outcome(
                &format!(
                    "p{} {user_name}/{} on {node_name}: scan with the WireGuard app",
                    issued.peer.id, issued.peer.device
                ),
                &config,
            )
        }
        Command::RotatePeer(id) => {
            let rotated = api.rotate_peer(*id, None).await?;
            let config = match rotated.config {
                Some(config) => config,
                None => api.peer_config(rotated.peer.id).await?,
            };
            device_outcome(
                &format!(
                    "p{id} {} has new keys: scan the new config with the WireGuard app",
                    rotated.peer.device
                ),
                &config,
            )
        }
        Command::PreviewBroadcast { audience, text } => {
            let recipients = api
                .preview_broadcast(&CreateBroadcast {
                    text: text.clone(),
                    audience: audience.clone(),
                })
                .await?;
            Outcome::Done(format!(
                "a broadcast to {audience} would reach {recipients} users"
            ))
        }
        Command::Broadcast { audience, text, .. } => {
            let b = api
                .create_broadcast(&CreateBroadcast {
                    text: text.clone(),
                    audience: audience.clone(),
                })
                .await?;
            Outcome::Done(format!(
                "broadcast {} queued for {} users; the bot sends it within Telegram's limits (`vpnctl broadcasts cancel {}` stops it)",
                b.id, b.total, b.id
            ))
        }
        Command::JoinCommand(id) => {
            let (token, expires) = api.create_join_token(*id, None).await?;
            Outcome::JoinCommand {
                node: format!("n{id} (valid until {})", expires.to_rfc3339()),
                command: format!("vpnctl-node join {}", token.encode()),
            }
        }
    })
}

/// Starts the background tasks; returns where confirmed commands go, and where the
/// screen says which node reports it shows ([`App::report_nodes`]). The tasks end
/// when the returned senders and `actions` are dropped.
pub fn spawn_worker(
    api: ApiClient,
    actions: mpsc::UnboundedSender<Action>,
) -> (
    mpsc::UnboundedSender<Command>,
    tokio::sync::watch::Sender<Vec<NodeId>>,
) {
    let wake = Arc::new(Notify::new());
    // What the event task hands the reading task: the rows to read again, and
    // whether everything must be read (once the event stream is open at start, after
    // a gap in it, on request).
    let pending = Arc::new(std::sync::Mutex::new(Dirty::default()));
    let (commands, mut command_rx) = mpsc::unbounded_channel::<Command>();
    let (report_nodes, mut report_rx) = tokio::sync::watch::channel(Vec::<NodeId>::new());
    let take = {
        let pending = Arc::clone(&pending);
        move || {
            std::mem::take(
                &mut *pending
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner),
            )
        }
    };
    let mark = {
        let pending = Arc::clone(&pending);
        move |f: &dyn Fn(&mut Dirty)| {
            f(&mut pending
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner));
        }
    };
    let mark = Arc::new(mark);

    // Reads: everything once the event task has the stream open (and when a change
    // is too broad), then every POLL_EVERY and soon after an event the node list
    // plus the rows events named.
    {
        let api = api.clone();
        let actions = actions.clone();
        let wake = Arc::clone(&wake);
        let mark = Arc::clone(&mark);
        tokio::spawn(async move {
            // A read begun before the stream is open could miss a change committed
            // in between for good: wait for the event task's word (it gives it
            // when the stream opens, or fails to), at most STREAM_WAIT.
            let _ = tokio::time::timeout(STREAM_WAIT, wake.notified()).await;
            mark(&|d: &mut Dirty| d.everything = true);
            let mut nodes_read = tokio::time::Instant::now();
            // Only the first read is shown page by page; a later one (a reload, a
            // gap in the stream) replaces the tables at once, not with a page.
            let mut tables_read = false;
            loop {
                let dirty = take();
                let shown = report_rx.borrow_and_update().clone();
                // The node list (and the reports on screen) once per POLL_EVERY
                // or after a node's event; the rows events name whenever they come.
                let due = dirty.nodes || nodes_read.elapsed() >= POLL_EVERY;
                let reports: &[NodeId] = if due { &shown } else { &[] };
                let action = if dirty.everything {
                    nodes_read = tokio::time::Instant::now();
                    let read = if tables_read {
                        fetch_snapshot(&api)
                            .await
                            .map(|s| Some(Action::Data(Box::new(s))))
                    } else {
                        read_everything(&api, &actions).await.map(|()| None)
                    };
                    match read {
                        Ok(action) => {
                            tables_read = true;
                            action
                        }
                        Err(e) => Some(Action::ApiFailed(describe(&e))),
                    }
                } else {
                    if due {
                        nodes_read = tokio::time::Instant::now();
                    }
                    match fetch_changes(&api, &dirty, due, reports).await {
                        Ok(c) => Some(Action::Changes(Box::new(c))),
                        Err(e) => Some(Action::ApiFailed(describe(&e))),
                    }
                };
                if matches!(action, Some(Action::ApiFailed(_))) {
                    // Read again next time what this round could not.
                    mark(&|d: &mut Dirty| {
                        d.everything |= dirty.everything;
                        d.invites |= dirty.invites;
                        d.plans |= dirty.plans;
                        d.nodes |= dirty.nodes;
                        d.users.extend(dirty.users.iter().copied());
                        d.peers.extend(dirty.peers.iter().copied());
                    });
                }
                if let Some(action) = action
                    && actions.send(action).is_err()
                {
                    return;
                }
                if actions.is_closed() {
                    return;
                }
                tokio::select! {
                    () = tokio::time::sleep_until(nodes_read + POLL_EVERY) => {}
                    () = wake.notified() => {
                        // Coalesce a burst of events into one read.
                        tokio::time::sleep(Duration::from_millis(150)).await;
                    }
                    changed = report_rx.changed() => {
                        if changed.is_err() {
                            return;
                        }
                        // Other rows on screen: their reports now.
                        mark(&|d: &mut Dirty| d.nodes = true);
                    }
                }
            }
        });
    }

    // Events: the newest page, then the live stream, followed by vpnctl-client's
    // follower (it reconnects, replays what was missed, says gaps and restores).
    {
        let api = api.clone();
        let actions = actions.clone();
        let wake = Arc::clone(&wake);
        let mark = Arc::clone(&mark);
        tokio::spawn(async move {
            let mut follower = api.follow(None).with_retry(POLL_EVERY);
            // The newest events are to be read once the stream is open, up to
            // where it began (at start, after a restore): one log, nothing between.
            let mut newest = true;
            // The tables are read whole once the stream is open: every change
            // committed after that reaches the dashboard as an event.
            let mut tables = true;
            // Read without a stream, when it cannot be opened (a token without
            // admin scope, a proxy that drops event streams): the tables once, the
            // newest events until read.
            let (mut tables_without_stream, mut events_without_stream) = (false, false);
            loop {
                let failed = match follower.next().await {
                    // The server subscribed before it answered: from here on
                    // nothing committed is missed.
                    Ok(Followed::Open) => {
                        if std::mem::take(&mut tables) {
                            mark(&|d: &mut Dirty| d.everything = true);
                            wake.notify_one();
                        }
                        if newest {
                            let before = follower.after().map(|a| a.saturating_add(1));
                            match api.events_before(before, Some(RECENT_EVENTS)).await {
                                Ok(batch) => {
                                    newest = false;
                                    // Replaces what is shown: after a restore the
                                    // numbers start lower again.
                                    if actions.send(Action::EventsReset(batch)).is_err() {
                                        return;
                                    }
                                    None
                                }
                                // Opened again from the same place, in the same
                                // log, after a pause, to read them then.
                                Err(e) => {
                                    follower.reopen();
                                    Some(e)
                                }
                            }
                        } else {
                            None
                        }
                    }
                    Ok(Followed::Event(event)) => {
                        mark(&|d: &mut Dirty| d.note(&event.kind));
                        wake.notify_one();
                        if actions.send(Action::Events(vec![event])).is_err() {
                            return;
                        }
                        None
                    }
                    // Changes were lost with the events: everything again.
                    Ok(Followed::Gap) => {
                        mark(&|d: &mut Dirty| d.everything = true);
                        wake.notify_one();
                        None
                    }
                    // A store restored from a backup: its next events reuse numbers
                    // already seen, so everything is read again, from its newest
                    // events.
                    Ok(Followed::Restored) => {
                        (newest, tables) = (true, true);
                        None
                    }
                    // Away, or an error that repeats (an event this version cannot
                    // read): said on screen; the follower tries again.
                    Ok(Followed::Away(e)) | Err(e) => Some(e),
                };
                let Some(e) = failed else { continue };
                if actions.send(Action::ApiFailed(describe(&e))).is_err() {
                    return;
                }
                if tables && !std::mem::replace(&mut tables_without_stream, true) {
                    mark(&|d: &mut Dirty| d.everything = true);
                    wake.notify_one();
                }
                // Shown for now; read again once the stream opens.
                if newest
                    && !events_without_stream
                    && let Ok(batch) = api.events_before(None, Some(RECENT_EVENTS)).await
                {
                    events_without_stream = true;
                    if actions.send(Action::EventsReset(batch)).is_err() {
                        return;
                    }
                }
            }
        });
    }

    // Commands: each in its own task, so a slow one blocks nothing.
    tokio::spawn(async move {
        while let Some(command) = command_rx.recv().await {
            let api = api.clone();
            let actions = actions.clone();
            match command {
                Command::Refresh => wake.notify_one(),
                Command::Reload => {
                    mark(&|d: &mut Dirty| d.everything = true);
                    wake.notify_one();
                }
                Command::PreviewBroadcast { audience, text } => {
                    tokio::spawn(async move {
                        let new = CreateBroadcast {
                            text: text.clone(),
                            audience: audience.clone(),
                        };
                        let action = match api.preview_broadcast(&new).await {
                            Ok(recipients) => Action::BroadcastPreview {
                                audience,
                                text,
                                recipients,
                            },
                            Err(e) => Action::CommandDone(Err(describe(&e))),
                        };
                        let _ = actions.send(action);
                    });
                }
                Command::OlderEvents(before) => {
                    tokio::spawn(async move {
                        let action = match api.events_before(before, Some(RECENT_EVENTS)).await {
                            Ok(older) => Action::OlderEvents(older),
                            Err(e) => Action::ApiFailed(describe(&e)),
                        };
                        let _ = actions.send(action);
                    });
                }
                command => {
                    tokio::spawn(async move {
                        let result = execute(&api, &command).await.map_err(|e| describe(&e));
                        let _ = actions.send(Action::CommandDone(result));
                    });
                }
            }
        }
    });
    (commands, report_nodes)
}

/// Runs the dashboard in the terminal until the admin quits. The terminal is restored
/// on return and on panic (ratatui's panic hook).
pub async fn run_dashboard(api: ApiClient, title: &str) -> std::io::Result<()> {
    let mut terminal = ratatui::try_init()?;
    let result = dashboard_loop(&mut terminal, api, title).await;
    ratatui::restore();
    result
}

async fn dashboard_loop(
    terminal: &mut ratatui::DefaultTerminal,
    api: ApiClient,
    title: &str,
) -> std::io::Result<()> {
    let (tx, mut rx) = mpsc::unbounded_channel::<Action>();
    let (commands, report_nodes) = spawn_worker(api, tx.clone());

    // Keys come from a thread: crossterm's reader blocks.
    let stop = Arc::new(AtomicBool::new(false));
    let input = {
        let stop = Arc::clone(&stop);
        let tx = tx.clone();
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                match event::poll(Duration::from_millis(100)) {
                    Ok(true) => {}
                    Ok(false) => continue,
                    Err(_) => return,
                }
                let action = match event::read() {
                    Ok(TermEvent::Key(key)) => Action::Key(key),
                    Ok(TermEvent::Resize(w, h)) => Action::Resize(w, h),
                    Ok(_) => continue,
                    Err(_) => return,
                };
                if tx.send(action).is_err() {
                    return;
                }
            }
        })
    };

    let mut app = App::new(title, Timestamp::now());
    let size = terminal.size()?;
    update(&mut app, Action::Resize(size.width, size.height));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    let result = loop {
        if let Err(e) = terminal.draw(|frame| frame.render_widget(&app, frame.area())) {
            break Err(e);
        }
        let first = tokio::select! {
            action = rx.recv() => action,
            _ = tick.tick() => Some(Action::Tick(Timestamp::now())),
            _ = tokio::signal::ctrl_c() => Some(Action::Quit),
        };
        let Some(first) = first else {
            break Ok(());
        };
        update(&mut app, first);
        // Apply whatever else is queued before drawing again.
        while let Ok(action) = rx.try_recv() {
            update(&mut app, action);
        }
        for command in app.outbox.drain(..) {
            let _ = commands.send(command);
        }
        report_nodes.send_if_modified(|shown| {
            let now = app.report_nodes();
            let changed = *shown != now;
            *shown = now;
            changed
        });
        if !app.running {
            break Ok(());
        }
    };
    stop.store(true, Ordering::Relaxed);
    let _ = input.join();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn qr_fits_80_by_24_and_decodes_as_blocks() {
        let qr = qr_lines("https://t.me/vpnctl_demo_bot?start=AbCdEfGhIjKlMnOpQrStUvWxYz012345");
        let lines: Vec<&str> = qr.lines().collect();
        assert!(lines.len() <= 19, "{} lines", lines.len());
        assert!(lines.iter().all(|l| l.chars().count() <= 41));
        assert!(!qr.is_empty());
    }

    #[test]
    fn qr_scans_back_to_the_link() {
        let link = "https://t.me/vpnctl_demo_bot?start=AbCdEfGhIjKlMnOpQrStUvWx";
        // Back to modules: a drawn half is light (the renderer inverts for dark
        // terminals), so dark modules are the blank halves. Add a light margin.
        let rows: Vec<Vec<bool>> = qr_lines(link)
            .lines()
            .flat_map(|l| {
                let top = l
                    .chars()
                    .map(|c| matches!(c, ' ' | '▄'))
                    .collect::<Vec<_>>();
                let bottom = l
                    .chars()
                    .map(|c| matches!(c, ' ' | '▀'))
                    .collect::<Vec<_>>();
                [top, bottom]
            })
            .collect();
        let (w, h) = (rows[0].len(), rows.len());
        let scale = 4;
        let margin = 8;
        let size = |n: usize| n * scale + 2 * margin;
        let mut img = rqrr::PreparedImage::prepare_from_greyscale(size(w), size(h), |x, y| {
            let (x, y) = (
                x.wrapping_sub(margin) / scale,
                y.wrapping_sub(margin) / scale,
            );
            if rows.get(y).and_then(|r| r.get(x)).copied().unwrap_or(false) {
                0
            } else {
                255
            }
        });
        let grids = img.detect_grids();
        assert_eq!(grids.len(), 1);
        let (_, text) = grids[0].decode().unwrap();
        assert_eq!(text, link);
    }
}
