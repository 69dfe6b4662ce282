//! The dashboard's state and everything that changes it: [`App`], [`Action`] and
//! [`update`]. No I/O here: requests to the API leave through [`App::outbox`] and their
//! answers come back as actions, so every behaviour is testable without a terminal.

use std::collections::{BTreeSet, HashMap, VecDeque};
use std::fmt::Write as _;
use std::path::PathBuf;

use ratatui::crossterm::event::{KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use vpnctl_api::billing::Plan;
use vpnctl_api::body::{NodeView, StoredReport};
use vpnctl_api::broadcast::Audience;
use vpnctl_core::wire::PeerStats;
use vpnctl_core::{
    Access, Event, EventKind, Invite, NodeId, NodeState, Peer, PeerId, Placement, PublicKey,
    Timestamp, User, UserId, UserState,
};

/// Events kept for the Events tab.
pub const MAX_EVENTS: usize = 2_000;
/// Samples kept per node for the traffic sparklines.
pub const HISTORY: usize = 60;
const REFRESHING: &str = "refreshing…";
/// Days added by "extend access".
pub const EXTEND_DAYS: u32 = 30;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Tab {
    Nodes,
    Peers,
    Users,
    Invites,
    Events,
    Plans,
}

impl Tab {
    pub const ALL: [Self; 6] = [
        Self::Nodes,
        Self::Peers,
        Self::Users,
        Self::Invites,
        Self::Events,
        Self::Plans,
    ];

    pub fn title(self) -> &'static str {
        match self {
            Self::Nodes => "Nodes",
            Self::Peers => "Peers",
            Self::Users => "Users",
            Self::Invites => "Invites",
            Self::Events => "Events",
            Self::Plans => "Plans",
        }
    }

    fn index(self) -> usize {
        Self::ALL.iter().position(|t| *t == self).unwrap_or(0)
    }

    /// The columns this tab sorts by, in the order `s` cycles through them.
    pub fn sort_keys(self) -> &'static [&'static str] {
        match self {
            Self::Nodes => &["name", "region", "peers", "status", "health"],
            Self::Peers => &["id", "user", "node", "device", "handshake", "traffic"],
            Self::Users => &["id", "name", "state", "until", "devices"],
            Self::Invites => &["id", "label", "uses left", "expires"],
            Self::Events => &["seq"],
            Self::Plans => &["id", "name", "price", "days"],
        }
    }
}

/// How a node is doing: the control plane's judgement (with hysteresis), not ours.
pub use vpnctl_core::Health;

pub fn health(view: &NodeView) -> Health {
    view.health.status
}

/// Whether and how the node takes new devices: core's rule, from the node's view.
pub fn placement(view: &NodeView) -> Placement {
    Placement::of(&view.node, view.health.status, view.peers)
}

/// The nodes users are offered for a new device, in core's order of preference
/// (healthy first, then the less loaded; by name when equal).
pub fn offered(nodes: &[NodeView]) -> Vec<&NodeView> {
    let mut offered: Vec<(&NodeView, Placement)> = nodes
        .iter()
        .map(|v| (v, placement(v)))
        .filter(|(_, p)| p.availability.is_offered())
        .collect();
    offered.sort_by(|(a, pa), (b, pb)| {
        pa.cmp_preference(pb)
            .then_with(|| a.node.name.cmp(&b.node.name))
    });
    offered.into_iter().map(|(v, _)| v).collect()
}

/// Worst first, for sorting the Nodes tab by health.
fn health_rank(h: Health) -> u8 {
    match h {
        Health::Down => 0,
        Health::Degraded => 1,
        Health::Unknown => 2,
        Health::Up => 3,
    }
}

/// A user's state as admins think of it; the first that applies wins.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum UserStatus {
    /// Turned off by an admin.
    Disabled,
    /// Access ran out.
    Expired,
    /// The quota of this period is used up; back when the period resets.
    Suspended,
    Active,
}

impl UserStatus {
    /// Core's verdict ([`Access`]), as the dashboard words it.
    pub fn of(user: &User, now: Timestamp) -> Self {
        match Access::of(user, now) {
            Access::Disabled => Self::Disabled,
            Access::Lapsed { .. } => Self::Expired,
            Access::Suspended { .. } => Self::Suspended,
            Access::Active { .. } => Self::Active,
        }
    }

    pub fn label(self) -> &'static str {
        match self {
            Self::Disabled => "disabled",
            Self::Expired => "expired",
            Self::Suspended => "suspended",
            Self::Active => "active",
        }
    }
}

/// Traffic rates of one node, from the byte counters of consecutive reports.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Traffic {
    last: Option<(Timestamp, u64, u64)>,
    /// Bytes per second.
    pub rx_rate: u64,
    pub tx_rate: u64,
    /// rx + tx rate samples, oldest first.
    pub history: VecDeque<u64>,
}

impl Traffic {
    fn observe(&mut self, at: Timestamp, rx: u64, tx: u64) {
        if let Some((last_at, last_rx, last_tx)) = self.last {
            let dt = at.seconds() - last_at.seconds();
            if dt <= 0 {
                return;
            }
            let dt = dt.unsigned_abs();
            self.rx_rate = rx.saturating_sub(last_rx) / dt;
            self.tx_rate = tx.saturating_sub(last_tx) / dt;
            if self.history.len() == HISTORY {
                self.history.pop_front();
            }
            self.history.push_back(self.rx_rate + self.tx_rate);
        }
        self.last = Some((at, rx, tx));
    }
}

/// Everything the API lists, fetched together.
#[derive(Debug, Clone, Default)]
pub struct Snapshot {
    pub nodes: Vec<NodeView>,
    /// Each node's latest full report (admins only), for per-peer figures.
    pub reports: Vec<(NodeId, StoredReport)>,
    pub peers: Vec<Peer>,
    pub users: Vec<User>,
    pub invites: Vec<Invite>,
    /// Every plan, retired ones too.
    pub plans: Vec<Plan>,
    /// Only the first page of users and peers: the rest follow as
    /// [`Action::Rows`].
    pub more: bool,
}

/// What the event stream says changed since the last fetch: the rows to read again.
/// The dashboard's steady state is these point reads (and the node list), not the
/// whole tables.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dirty {
    pub users: BTreeSet<UserId>,
    pub peers: BTreeSet<PeerId>,
    pub invites: bool,
    /// A plan was added or retired.
    pub plans: bool,
    /// A node changed (state, settings, health): read the node list now rather
    /// than at the next poll.
    pub nodes: bool,
    /// More changed than reads by id are worth (an import), the event stream
    /// skipped events (retention pruned them while the dashboard was away), or the
    /// admin asked: read everything again.
    pub everything: bool,
}

/// Beyond this many rows to read again, one full read is cheaper: rows are read
/// again by id, [`PAGE_MAX`](vpnctl_core::api::routes::PAGE_MAX) a request, so this
/// is at most ten requests for each table (an evacuation of 2,000 devices is 4,000
/// peers and 2,000 users), against the whole tables (at 200,000 peers, ~60 MB).
pub const DIRTY_MAX: usize = 10_000;

impl Dirty {
    /// Notes what `kind` changed.
    pub fn note(&mut self, kind: &EventKind) {
        match kind {
            EventKind::UserCreated { user }
            | EventKind::UserUpdated { user }
            | EventKind::UserDisabled { user }
            | EventKind::UserEnabled { user }
            | EventKind::AccessChanged { user, .. }
            | EventKind::AccessExpired { user }
            | EventKind::QuotaExceeded { user, .. }
            | EventKind::QuotaRestored { user } => {
                self.users.insert(*user);
            }
            EventKind::InviteCreated { .. } | EventKind::InviteRevoked { .. } => {
                self.invites = true;
            }
            EventKind::InviteRedeemed { user, .. } => {
                self.invites = true;
                self.users.insert(*user);
            }
            EventKind::PeerIssued { peer, user, .. }
            | EventKind::PeerRotated { peer, user, .. }
            | EventKind::PeerRevoked { peer, user, .. } => {
                self.peers.insert(*peer);
                self.users.insert(*user);
            }
            // The user's devices go with them, each with its own PeerRevoked.
            EventKind::UserDeleted { user } => {
                self.users.insert(*user);
            }
            // A node's devices go or move with it, each with its own PeerRevoked
            // (and PeerIssued where it lands): the events name every row.
            EventKind::NodeDeleted { .. }
            | EventKind::NodeEvacuated { .. }
            | EventKind::NodeRegistered { .. }
            | EventKind::NodeUpdated { .. }
            | EventKind::NodeStateChanged { .. }
            | EventKind::NodeEnrolled { .. }
            | EventKind::NodeHealthChanged { .. } => self.nodes = true,
            // A payment or a refund changes the user's access, devices and quota.
            EventKind::PaymentReceived { user, .. } | EventKind::PaymentRefunded { user, .. } => {
                self.users.insert(*user);
            }
            EventKind::PlanCreated { .. } | EventKind::PlanRetired { .. } => self.plans = true,
            // Tokens, notices and orders have no table here.
            EventKind::Notice { .. }
            | EventKind::TokenCreated { .. }
            | EventKind::TokenRevoked { .. }
            | EventKind::OrderCreated { .. }
            | EventKind::RefundRequested { .. }
            | EventKind::RefundFailed { .. }
            | EventKind::BroadcastQueued { .. }
            | EventKind::BroadcastCancelled { .. }
            | EventKind::SubscriptionRenewal { .. } => {}
        }
        if self.users.len() + self.peers.len() > DIRTY_MAX {
            self.everything = true;
        }
    }

    pub fn is_empty(&self) -> bool {
        *self == Self::default()
    }
}

/// Rows read again after events, and the node list when it was due.
#[derive(Debug, Clone, Default)]
pub struct Changes {
    /// The node list, read every poll interval or after a node's event.
    pub nodes: Option<Vec<NodeView>>,
    /// Full reports of the nodes the Peers tab shows (see [`App::report_nodes`]).
    pub reports: Vec<(NodeId, StoredReport)>,
    pub users: Vec<User>,
    pub users_gone: Vec<UserId>,
    pub peers: Vec<Peer>,
    pub peers_gone: Vec<PeerId>,
    /// The invite list, when an invite changed.
    pub invites: Option<Vec<Invite>>,
    /// The plan list, when a plan changed.
    pub plans: Option<Vec<Plan>>,
}

/// A request to the API that the runtime carries out.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// Read now what events say changed (after a command of the dashboard's own).
    Refresh,
    /// Read everything again (`R`).
    Reload,
    /// The events before this sequence number (`None`: the newest), for the Events
    /// tab; asks no question.
    OlderEvents(Option<u64>),
    CreateInvite,
    ExtendAccess(UserId, u32),
    SetUserState(UserId, UserState),
    RevokePeer(PeerId),
    /// New keys for a peer; its new config is shown as a QR.
    RotatePeer(PeerId),
    /// A new device for a user on a node (picked from core's offer); its config is
    /// shown as a QR.
    IssueDevice {
        user: UserId,
        user_name: String,
        node: NodeId,
        node_name: String,
    },
    SetNodeState(NodeId, NodeState),
    JoinCommand(NodeId),
    /// Move every device off a node to healthy nodes (`EvacuateTo::Auto`); the name
    /// and device count are for the question. The new configs of users without
    /// Telegram are written to `configs` (asked after the confirmation).
    Evacuate {
        node: NodeId,
        name: String,
        devices: u64,
        configs: Option<PathBuf>,
    },
    /// How many users a broadcast would reach (asked before the confirmation).
    PreviewBroadcast {
        audience: Audience,
        text: String,
    },
    /// Send `text` to `audience` (`recipients` users when asked).
    Broadcast {
        audience: Audience,
        text: String,
        recipients: u32,
    },
}

impl Command {
    /// The question the confirmation dialog asks.
    pub fn describe(&self) -> String {
        match self {
            Self::Refresh => "Refresh now?".into(),
            Self::Reload => "Read everything again?".into(),
            Self::OlderEvents(_) => "Read older events?".into(),
            Self::CreateInvite => "Create a single-use invite (30 days, 3 devices)?".into(),
            Self::ExtendAccess(id, days) => format!("Extend access of user u{id} by {days} days?"),
            Self::SetUserState(id, UserState::Disabled) => format!("Disable user u{id}?"),
            Self::SetUserState(id, UserState::Active) => format!("Enable user u{id}?"),
            Self::RevokePeer(id) => format!("Revoke peer p{id}? Its device loses access."),
            Self::RotatePeer(id) => {
                format!("New keys for peer p{id}? Its current config stops working.")
            }
            Self::IssueDevice {
                user_name,
                node_name,
                ..
            } => format!("Issue a new device for {user_name} on {node_name} and show its QR?"),
            Self::SetNodeState(id, state) => format!("Set node n{id} to {state}?"),
            Self::JoinCommand(id) => {
                format!("Create a join token for node n{id} and show its join command?")
            }
            Self::Evacuate { name, devices, .. } => {
                evacuation_question(*devices, name, "healthy nodes")
            }
            Self::PreviewBroadcast { audience, .. } => {
                format!("Count the users a broadcast to {audience} reaches?")
            }
            Self::Broadcast {
                audience,
                text,
                recipients,
            } => format!("Send to {recipients} users ({audience}): “{text}”?"),
        }
    }
}

/// What the admin is asked before an evacuation (CLI and dashboard).
pub fn evacuation_question(devices: u64, node: &str, whereto: &str) -> String {
    format!(
        "Move all {devices} devices off {node} to {whereto}? Users with Telegram get new configs from the bot."
    )
}

/// Where the dashboard offers to write an evacuation's configs: a directory named
/// after the node, under the current one.
pub fn default_configs_dir(node: &str) -> String {
    format!("./{node}-configs")
}

/// What a finished command has to show.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// A short status line.
    Done(String),
    /// A new invite: its deep link (shown this once) and the link as a QR code.
    Invite { link: String, qr: String },
    /// The command that enrolls a node (shown this once).
    JoinCommand { node: String, command: String },
    /// A device's new config as a QR code to scan (shown this once).
    Device { title: String, qr: String },
    /// Lines to read, e.g. the config files an evacuation wrote.
    Report { title: String, lines: Vec<String> },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Connection {
    Connecting,
    /// The first read's users and peers are still coming in, page by page.
    Loading,
    Live,
    /// The last request failed; the text says why.
    Failed(String),
}

/// A dialog over the tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Modal {
    Confirm(Command),
    /// Choosing the node for a new device: core's offer, best first.
    PickNode {
        user: UserId,
        user_name: String,
        /// (id, name, mark) of each node offered.
        nodes: Vec<(NodeId, String, String)>,
        selected: usize,
    },
    /// Where an evacuation writes the configs of users without Telegram; an empty
    /// path writes none.
    ConfigsDir {
        command: Command,
        path: String,
    },
    /// Writing a broadcast: who gets it and the text (Tab switches fields).
    Broadcast {
        to: String,
        text: String,
        on_text: bool,
    },
    /// Waiting for the answer to a confirmed command.
    Busy(String),
    Result(Outcome),
    Error(String),
}

/// Everything that changes the state.
#[derive(Debug, Clone)]
pub enum Action {
    /// A key press, turned into another action by [`App::action_for_key`].
    Key(KeyEvent),
    Quit,
    NextTab,
    PrevTab,
    SelectTab(Tab),
    Up,
    Down,
    PageUp,
    PageDown,
    Top,
    Bottom,
    ToggleDetail,
    ToggleHelp,
    StartFilter,
    FilterChar(char),
    FilterBackspace,
    /// Leave filter input, keeping the filter.
    FilterDone,
    /// Leave filter input and clear the filter.
    FilterClear,
    NextSort,
    ReverseSort,
    /// Typing into a dialog's text field.
    InputChar(char),
    InputBackspace,
    InputClear,
    /// Ask to run a command (opens the confirmation dialog).
    Request(Command),
    /// Open the node picker for a new device of this user.
    PickNode(UserId),
    Confirm,
    Cancel,
    /// The clock moved (report ages, health).
    Tick(Timestamp),
    Resize(u16, u16),
    Data(Box<Snapshot>),
    /// More users and peers of the first read ([`Snapshot::more`]); the last with
    /// `done`.
    Rows {
        users: Vec<User>,
        peers: Vec<Peer>,
        done: bool,
    },
    /// The node list and the rows that changed since the last read.
    Changes(Box<Changes>),
    Events(Vec<Event>),
    /// The newest events, replacing those shown (at start, and when the log went
    /// back: a restored store numbers its events lower again).
    EventsReset(Vec<Event>),
    /// Read the events before the oldest one shown.
    LoadOlderEvents,
    /// Older events, read on demand at the top of the Events tab.
    OlderEvents(Vec<Event>),
    ApiFailed(String),
    CommandDone(Result<Outcome, String>),
    /// How many users a broadcast reaches: then the confirmation.
    BroadcastPreview {
        audience: Audience,
        text: String,
        recipients: u32,
    },
    /// `b`: write a broadcast.
    StartBroadcast,
    /// Tab in the broadcast dialog: the other field.
    NextField,
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct TabState {
    /// Index into the tab's view (filtered, sorted rows).
    pub selected: usize,
    pub filter: String,
    pub sort: usize,
    pub descending: bool,
}

/// The dashboard's whole state. Drawing only reads it.
#[derive(Debug)]
pub struct App {
    pub title: String,
    pub running: bool,
    pub tab: Tab,
    pub tabs: HashMap<Tab, TabState>,
    pub show_help: bool,
    pub show_detail: bool,
    /// Typing a filter for the current tab.
    pub filtering: bool,
    pub modal: Option<Modal>,
    pub connection: Connection,
    pub status: Option<String>,
    pub now: Timestamp,
    /// Rows of the table (visible height, for paging).
    pub page: usize,

    pub nodes: Vec<NodeView>,
    pub peers: Vec<Peer>,
    pub users: Vec<User>,
    pub invites: Vec<Invite>,
    pub plans: Vec<Plan>,
    pub events: VecDeque<Event>,
    pub traffic: HashMap<NodeId, Traffic>,
    pub peer_stats: HashMap<(NodeId, PublicKey), PeerStats>,
    pub user_names: HashMap<UserId, String>,
    pub node_names: HashMap<NodeId, String>,
    pub devices: HashMap<UserId, u32>,
    /// Per tab: indices into the tab's rows after filter and sort.
    pub views: HashMap<Tab, Vec<usize>>,
    /// While the first read comes in: how many peers and users there were when
    /// their tabs were last filtered and sorted.
    loaded: (usize, usize),
    /// Commands confirmed and not yet handed to the runtime.
    pub outbox: Vec<Command>,
}

impl App {
    pub fn new(title: impl Into<String>, now: Timestamp) -> Self {
        Self {
            title: title.into(),
            running: true,
            tab: Tab::Nodes,
            tabs: Tab::ALL.iter().map(|t| (*t, TabState::default())).collect(),
            show_help: false,
            show_detail: false,
            filtering: false,
            modal: None,
            connection: Connection::Connecting,
            status: None,
            now,
            page: 10,
            nodes: Vec::new(),
            peers: Vec::new(),
            users: Vec::new(),
            invites: Vec::new(),
            plans: Vec::new(),
            events: VecDeque::new(),
            traffic: HashMap::new(),
            peer_stats: HashMap::new(),
            user_names: HashMap::new(),
            node_names: HashMap::new(),
            devices: HashMap::new(),
            views: Tab::ALL.iter().map(|t| (*t, Vec::new())).collect(),
            loaded: (0, 0),
            outbox: Vec::new(),
        }
    }

    pub fn tab_state(&self, tab: Tab) -> &TabState {
        // Every tab has a state from `new`.
        &self.tabs[&tab]
    }

    fn tab_state_mut(&mut self) -> &mut TabState {
        self.tabs.entry(self.tab).or_default()
    }

    pub fn view(&self, tab: Tab) -> &[usize] {
        self.views.get(&tab).map_or(&[], Vec::as_slice)
    }

    fn selected_row(&self) -> Option<usize> {
        self.view(self.tab)
            .get(self.tab_state(self.tab).selected)
            .copied()
    }

    pub fn selected_node(&self) -> Option<&NodeView> {
        (self.tab == Tab::Nodes)
            .then(|| self.selected_row())
            .flatten()
            .and_then(|i| self.nodes.get(i))
    }

    pub fn selected_peer(&self) -> Option<&Peer> {
        (self.tab == Tab::Peers)
            .then(|| self.selected_row())
            .flatten()
            .and_then(|i| self.peers.get(i))
    }

    pub fn selected_user(&self) -> Option<&User> {
        (self.tab == Tab::Users)
            .then(|| self.selected_row())
            .flatten()
            .and_then(|i| self.users.get(i))
    }

    pub fn selected_invite(&self) -> Option<&Invite> {
        (self.tab == Tab::Invites)
            .then(|| self.selected_row())
            .flatten()
            .and_then(|i| self.invites.get(i))
    }

    pub fn selected_plan(&self) -> Option<&Plan> {
        (self.tab == Tab::Plans)
            .then(|| self.selected_row())
            .flatten()
            .and_then(|i| self.plans.get(i))
    }

    pub fn selected_event(&self) -> Option<&Event> {
        (self.tab == Tab::Events)
            .then(|| self.selected_row())
            .flatten()
            .and_then(|i| self.events.get(i))
    }

    pub fn user_name(&self, id: UserId) -> &str {
        self.user_names.get(&id).map_or("?", String::as_str)
    }

    pub fn node_name(&self, id: NodeId) -> &str {
        self.node_names.get(&id).map_or("?", String::as_str)
    }

    /// The nodes whose full reports (per-peer handshakes and traffic) the screen
    /// needs: those of the Peers tab's rows around the selection. Empty on the other
    /// tabs, so a dashboard left on them reads no report at all.
    pub fn report_nodes(&self) -> Vec<NodeId> {
        if self.tab != Tab::Peers {
            return Vec::new();
        }
        let view = self.view(Tab::Peers);
        let selected = self.tab_state(Tab::Peers).selected;
        let from = selected.saturating_sub(self.page).min(view.len());
        let to = selected.saturating_add(self.page).min(view.len());
        let mut nodes: Vec<NodeId> = view[from..to]
            .iter()
            .filter_map(|&i| self.peers.get(i))
            .map(|p| p.node)
            .collect();
        nodes.sort_unstable();
        nodes.dedup();
        nodes
    }

    pub fn stats_of(&self, peer: &Peer) -> Option<&PeerStats> {
        self.peer_stats.get(&(peer.node, peer.public_key))
    }

    /// The action a key stands for in the current state, if any.
    pub fn action_for_key(&self, key: KeyEvent) -> Option<Action> {
        if key.kind == KeyEventKind::Release {
            return None;
        }
        let ctrl = key.modifiers.contains(KeyModifiers::CONTROL);
        if ctrl && key.code == KeyCode::Char('c') {
            return Some(Action::Quit);
        }
        if self.filtering {
            return match key.code {
                KeyCode::Enter => Some(Action::FilterDone),
                KeyCode::Esc => Some(Action::FilterClear),
                KeyCode::Backspace => Some(Action::FilterBackspace),
                KeyCode::Char(c) if !ctrl => Some(Action::FilterChar(c)),
                _ => None,
            };
        }
        if let Some(modal) = &self.modal {
            return match (modal, key.code) {
                (Modal::PickNode { .. }, KeyCode::Up | KeyCode::Char('k')) => Some(Action::Up),
                (Modal::PickNode { .. }, KeyCode::Down | KeyCode::Char('j')) => Some(Action::Down),
                (
                    Modal::PickNode { .. } | Modal::ConfigsDir { .. } | Modal::Broadcast { .. },
                    KeyCode::Enter,
                ) => Some(Action::Confirm),
                (
                    Modal::PickNode { .. } | Modal::ConfigsDir { .. } | Modal::Broadcast { .. },
                    KeyCode::Esc,
                ) => Some(Action::Cancel),
                (Modal::Broadcast { .. }, KeyCode::Tab | KeyCode::BackTab) => {
                    Some(Action::NextField)
                }
                (Modal::Broadcast { .. }, KeyCode::Backspace) => Some(Action::InputBackspace),
                (Modal::Broadcast { .. }, KeyCode::Char('u')) if ctrl => Some(Action::InputClear),
                (Modal::Broadcast { .. }, KeyCode::Char(c)) if !ctrl => Some(Action::InputChar(c)),
                (Modal::Broadcast { .. }, _) => None,
                (Modal::PickNode { .. }, _) => None,
                (Modal::ConfigsDir { .. }, KeyCode::Backspace) => Some(Action::InputBackspace),
                (Modal::ConfigsDir { .. }, KeyCode::Char('u')) if ctrl => Some(Action::InputClear),
                (Modal::ConfigsDir { .. }, KeyCode::Char(c)) if !ctrl => Some(Action::InputChar(c)),
                (Modal::ConfigsDir { .. }, _) => None,
                (Modal::Confirm(_), KeyCode::Char('y' | 'Y') | KeyCode::Enter) => {
                    Some(Action::Confirm)
                }
                (Modal::Busy(_), _) => None,
                (_, KeyCode::Char('q')) => Some(Action::Quit),
                _ => Some(Action::Cancel),
            };
        }
        if self.show_help {
            return match key.code {
                KeyCode::Char('q') => Some(Action::Quit),
                _ => Some(Action::ToggleHelp),
            };
        }
        let action = match key.code {
            KeyCode::Char('q') => Action::Quit,
            KeyCode::Tab | KeyCode::Right | KeyCode::Char('l') => Action::NextTab,
            KeyCode::BackTab | KeyCode::Left | KeyCode::Char('h') => Action::PrevTab,
            KeyCode::Char(c @ '1'..='6') => {
                let i = usize::from(c as u8 - b'1');
                Action::SelectTab(Tab::ALL[i])
            }
            KeyCode::Up | KeyCode::Char('k') => Action::Up,
            KeyCode::Down | KeyCode::Char('j') => Action::Down,
            KeyCode::PageUp => Action::PageUp,
            KeyCode::PageDown => Action::PageDown,
            KeyCode::Home | KeyCode::Char('g') => Action::Top,
            KeyCode::End | KeyCode::Char('G') => Action::Bottom,
            KeyCode::Enter => Action::ToggleDetail,
            KeyCode::Char('?') => Action::ToggleHelp,
            KeyCode::Char('/') => Action::StartFilter,
            KeyCode::Esc => Action::FilterClear,
            KeyCode::Char('s') => Action::NextSort,
            KeyCode::Char('S') => Action::ReverseSort,
            KeyCode::Char('R') => Action::Request(Command::Reload),
            KeyCode::Char('i') => Action::Request(Command::CreateInvite),
            KeyCode::Char('b') => Action::StartBroadcast,
            KeyCode::Char('e') => {
                let user = self.selected_user()?;
                Action::Request(Command::ExtendAccess(user.id, EXTEND_DAYS))
            }
            KeyCode::Char('x') => {
                let user = self.selected_user()?;
                let to = match user.state {
                    UserState::Active => UserState::Disabled,
                    UserState::Disabled => UserState::Active,
                };
                Action::Request(Command::SetUserState(user.id, to))
            }
            KeyCode::Char('r') => Action::Request(Command::RevokePeer(self.selected_peer()?.id)),
            KeyCode::Char('o') if self.tab == Tab::Events => Action::LoadOlderEvents,
            KeyCode::Char('o') => Action::Request(Command::RotatePeer(self.selected_peer()?.id)),
            KeyCode::Char('n') => {
                let user = self.selected_user()?;
                Action::PickNode(user.id)
            }
            KeyCode::Char('d') => Action::Request(Command::SetNodeState(
                self.selected_node()?.node.id,
                NodeState::Draining,
            )),
            KeyCode::Char('D') => Action::Request(Command::SetNodeState(
                self.selected_node()?.node.id,
                NodeState::Disabled,
            )),
            KeyCode::Char('a') => Action::Request(Command::SetNodeState(
                self.selected_node()?.node.id,
                NodeState::Active,
            )),
            KeyCode::Char('J') => {
                Action::Request(Command::JoinCommand(self.selected_node()?.node.id))
            }
            KeyCode::Char('E') => {
                let view = self.selected_node()?;
                Action::Request(Command::Evacuate {
                    node: view.node.id,
                    name: view.node.name.clone(),
                    devices: view.peers,
                    configs: None,
                })
            }
            _ => return None,
        };
        Some(action)
    }
}

/// Every key, for the help overlay (and the README).
pub const KEYS: &[(&str, &str)] = &[
    ("Tab / S-Tab", "next / previous tab (→ ← l h)"),
    ("1-6", "go to tab"),
    ("↑↓ / j k", "move selection"),
    ("PgUp PgDn", "page"),
    ("g / G", "first / last row"),
    ("Enter", "toggle detail pane"),
    ("/", "filter (Enter keeps, Esc clears)"),
    ("s / S", "next sort column / reverse"),
    ("i", "create invite (link + QR)"),
    ("b", "broadcast a text to users"),
    ("e", "Users: extend access 30 days"),
    ("x", "Users: disable / enable"),
    ("n", "Users: new device (pick a node, QR)"),
    ("r", "Peers: revoke peer"),
    ("o", "Peers: new keys / Events: older"),
    ("d / D / a", "Nodes: drain / disable / activate"),
    ("J", "Nodes: show join command"),
    ("E", "Nodes: evacuate (move all devices)"),
    ("R", "read everything again"),
    ("y / n", "confirm / cancel a dialog"),
    ("?", "this help"),
    ("q / Ctrl-C", "quit"),
];

/// Applies one action.
pub fn update(app: &mut App, action: Action) {
    match action {
        Action::Key(key) => {
            if let Some(action) = app.action_for_key(key) {
                update(app, action);
            }
        }
        Action::Quit => app.running = false,
        Action::NextTab => app.tab = Tab::ALL[(app.tab.index() + 1) % Tab::ALL.len()],
        Action::PrevTab => {
            app.tab = Tab::ALL[(app.tab.index() + Tab::ALL.len() - 1) % Tab::ALL.len()];
        }
        Action::SelectTab(tab) => app.tab = tab,
        Action::Up | Action::Down if matches!(app.modal, Some(Modal::PickNode { .. })) => {
            if let Some(Modal::PickNode {
                nodes, selected, ..
            }) = &mut app.modal
            {
                *selected = if matches!(action, Action::Up) {
                    selected.saturating_sub(1)
                } else {
                    (*selected + 1).min(nodes.len().saturating_sub(1))
                };
            }
        }
        Action::Up => move_selection(app, -1),
        Action::Down => move_selection(app, 1),
        Action::PageUp => move_selection(app, -page(app)),
        Action::PageDown => move_selection(app, page(app)),
        Action::Top => app.tab_state_mut().selected = 0,
        Action::Bottom => {
            let len = app.view(app.tab).len();
            app.tab_state_mut().selected = len.saturating_sub(1);
        }
        Action::ToggleDetail => app.show_detail = !app.show_detail,
        Action::ToggleHelp => app.show_help = !app.show_help,
        Action::StartFilter => app.filtering = true,
        Action::FilterChar(c) => {
            app.tab_state_mut().filter.push(c);
            refilter(app, app.tab);
        }
        Action::FilterBackspace => {
            app.tab_state_mut().filter.pop();
            refilter(app, app.tab);
        }
        Action::FilterDone => app.filtering = false,
        Action::FilterClear => {
            app.filtering = false;
            app.tab_state_mut().filter.clear();
            refilter(app, app.tab);
        }
        Action::NextSort => {
            let keys = app.tab.sort_keys().len();
            let state = app.tab_state_mut();
            state.sort = (state.sort + 1) % keys;
            refilter(app, app.tab);
        }
        Action::ReverseSort => {
            let state = app.tab_state_mut();
            state.descending = !state.descending;
            refilter(app, app.tab);
        }
        Action::Request(Command::Reload) => {
            app.outbox.push(Command::Reload);
            app.status = Some(REFRESHING.into());
        }
        Action::Request(command) => app.modal = Some(Modal::Confirm(command)),
        Action::PickNode(user) => {
            let user_name = app.user_name(user).to_owned();
            let nodes: Vec<(NodeId, String, String)> = offered(&app.nodes)
                .into_iter()
                .map(|v| {
                    (
                        v.node.id,
                        v.node.name.clone(),
                        placement(v).availability.to_string(),
                    )
                })
                .collect();
            app.modal = Some(if nodes.is_empty() {
                Modal::Error(format!(
                    "No node takes new devices now: {}.",
                    app.nodes
                        .iter()
                        .map(|v| format!("{} {}", v.node.name, placement(v).availability))
                        .collect::<Vec<_>>()
                        .join(", ")
                ))
            } else {
                Modal::PickNode {
                    user,
                    user_name,
                    nodes,
                    selected: 0,
                }
            });
        }
        Action::InputChar(c) => {
            if let Some(field) = input_field(app) {
                field.push(c);
            }
        }
        Action::InputBackspace => {
            if let Some(field) = input_field(app) {
                field.pop();
            }
        }
        Action::InputClear => {
            if let Some(field) = input_field(app) {
                field.clear();
            }
        }
        Action::StartBroadcast => {
            app.modal = Some(Modal::Broadcast {
                to: "all".into(),
                text: String::new(),
                on_text: true,
            });
        }
        Action::NextField => {
            if let Some(Modal::Broadcast { on_text, .. }) = &mut app.modal {
                *on_text = !*on_text;
            }
        }
        Action::BroadcastPreview {
            audience,
            text,
            recipients,
        } => {
            app.modal = Some(if recipients == 0 {
                Modal::Error(format!(
                    "No user with Telegram is {audience}: nothing to send."
                ))
            } else {
                Modal::Confirm(Command::Broadcast {
                    audience,
                    text,
                    recipients,
                })
            });
        }
        Action::Confirm => match app.modal.take() {
            // Evacuating: the question answered, ask where the configs go.
            Some(Modal::Confirm(command @ Command::Evacuate { configs: None, .. })) => {
                let path = match &command {
                    Command::Evacuate { name, .. } => default_configs_dir(name),
                    _ => String::new(),
                };
                app.modal = Some(Modal::ConfigsDir { command, path });
            }
            Some(Modal::ConfigsDir {
                command:
                    Command::Evacuate {
                        node,
                        name,
                        devices,
                        ..
                    },
                path,
            }) => {
                let path = path.trim();
                let command = Command::Evacuate {
                    node,
                    name,
                    devices,
                    configs: (!path.is_empty()).then(|| PathBuf::from(path)),
                };
                app.modal = Some(Modal::Busy(command.describe()));
                app.outbox.push(command);
            }
            Some(Modal::Broadcast { to, text, on_text }) => {
                match (to.parse::<Audience>(), text.trim().is_empty()) {
                    (Ok(audience), false) => {
                        let command = Command::PreviewBroadcast {
                            audience,
                            text: text.trim().to_owned(),
                        };
                        app.modal = Some(Modal::Busy("counting the recipients…".into()));
                        app.outbox.push(command);
                    }
                    (Err(e), _) => {
                        app.status = Some(e.to_string());
                        app.modal = Some(Modal::Broadcast {
                            to,
                            text,
                            on_text: false,
                        });
                    }
                    (Ok(_), true) => {
                        app.status = Some("write the text first".into());
                        app.modal = Some(Modal::Broadcast {
                            to,
                            text,
                            on_text: true,
                        });
                    }
                }
                let _ = on_text;
            }
            Some(Modal::PickNode {
                user,
                user_name,
                nodes,
                selected,
            }) => {
                if let Some((node, node_name, _)) = nodes.get(selected).cloned() {
                    app.modal = Some(Modal::Confirm(Command::IssueDevice {
                        user,
                        user_name,
                        node,
                        node_name,
                    }));
                }
            }
            Some(Modal::Confirm(command)) => {
                app.modal = Some(Modal::Busy(command.describe()));
                app.outbox.push(command);
            }
            other => app.modal = other,
        },
        Action::Cancel => app.modal = None,
        Action::Tick(now) => app.now = now,
        Action::Resize(_, height) => app.page = usize::from(height.saturating_sub(8)).max(1),
        Action::Data(snapshot) => {
            let more = snapshot.more;
            apply_snapshot(app, *snapshot);
            app.connection = if more {
                Connection::Loading
            } else {
                Connection::Live
            };
            if app.status.as_deref() == Some(REFRESHING) {
                app.status = None;
            }
        }
        Action::Rows { users, peers, done } => apply_rows(app, users, peers, done),
        Action::Changes(changes) => {
            apply_changes(app, *changes);
            app.connection = Connection::Live;
        }
        Action::LoadOlderEvents => {
            app.status = Some("reading older events…".into());
            let before = app.events.front().map(|e| e.seq);
            app.outbox.push(Command::OlderEvents(before));
        }
        Action::OlderEvents(older) => {
            let room = MAX_EVENTS.saturating_sub(app.events.len());
            let first = app.events.front().map_or(u64::MAX, |e| e.seq);
            let keep: Vec<Event> = older.into_iter().filter(|e| e.seq < first).collect();
            let skip = keep.len().saturating_sub(room);
            let added = keep.len() - skip;
            for event in keep.into_iter().skip(skip).rev() {
                app.events.push_front(event);
            }
            app.status = Some(if added == 0 {
                "no older events".into()
            } else {
                format!("{added} older events")
            });
            // The selection stays on the same event.
            let state = app.tabs.entry(Tab::Events).or_default();
            state.selected += added;
            refilter(app, Tab::Events);
        }
        Action::EventsReset(events) => {
            app.events.clear();
            let skip = events.len().saturating_sub(MAX_EVENTS);
            app.events.extend(events.into_iter().skip(skip));
            refilter(app, Tab::Events);
        }
        Action::Events(events) => {
            for event in events {
                if app.events.back().is_some_and(|e| e.seq >= event.seq) {
                    continue;
                }
                if app.events.len() == MAX_EVENTS {
                    app.events.pop_front();
                }
                app.events.push_back(event);
            }
            refilter(app, Tab::Events);
        }
        Action::ApiFailed(message) => app.connection = Connection::Failed(message),
        Action::CommandDone(result) => {
            app.modal = None;
            match result {
                Ok(Outcome::Done(text)) => app.status = Some(text),
                Ok(outcome) => app.modal = Some(Modal::Result(outcome)),
                Err(message) => app.modal = Some(Modal::Error(message)),
            }
            // Whatever changed shows up at once, not at the next poll.
            app.outbox.push(Command::Refresh);
        }
    }
}

fn page(app: &App) -> isize {
    isize::try_from(app.page).unwrap_or(10)
}

fn move_selection(app: &mut App, by: isize) {
    let len = app.view(app.tab).len();
    let state = app.tab_state_mut();
    state.selected = state
        .selected
        .saturating_add_signed(by)
        .min(len.saturating_sub(1));
}

fn apply_snapshot(app: &mut App, snapshot: Snapshot) {
    let Snapshot {
        nodes,
        reports,
        peers,
        users,
        invites,
        plans,
        more: _,
    } = snapshot;
    app.peer_stats.clear();
    set_nodes(app, nodes);
    set_reports(app, &reports);
    app.user_names = users.iter().map(|u| (u.id, u.name.clone())).collect();
    app.peers = peers;
    count_devices(app);
    app.users = users;
    app.invites = invites;
    app.plans = plans;
    app.loaded = (app.peers.len(), app.users.len());
    for tab in [Tab::Nodes, Tab::Peers, Tab::Users, Tab::Invites, Tab::Plans] {
        refilter(app, tab);
    }
}

/// More rows of the first read, in id order after those shown. The tabs are
/// filtered and sorted again when a table has grown by a quarter since they last
/// were (a few dozen times for 200,000 rows, not once per page) and at the end.
fn apply_rows(app: &mut App, users: Vec<User>, peers: Vec<Peer>, done: bool) {
    for u in &users {
        app.user_names.insert(u.id, u.name.clone());
    }
    upsert(&mut app.users, users, &[], |u| u.id, |_, _| {});
    let devices = &mut app.devices;
    upsert(
        &mut app.peers,
        peers,
        &[],
        |p| p.id,
        |p, came| {
            if came {
                *devices.entry(p.user).or_default() += 1;
            }
        },
    );
    let grown = |now: usize, then: usize| done || now > then + then / 4;
    if grown(app.peers.len(), app.loaded.0) {
        app.loaded.0 = app.peers.len();
        refilter(app, Tab::Peers);
    }
    if grown(app.users.len(), app.loaded.1) {
        app.loaded.1 = app.users.len();
        refilter(app, Tab::Users);
    }
    if done {
        app.connection = Connection::Live;
    }
}

/// A new node list: its traffic samples, names, rows.
fn set_nodes(app: &mut App, nodes: Vec<NodeView>) {
    for view in &nodes {
        if let Some(report) = &view.report {
            app.traffic.entry(view.node.id).or_default().observe(
                report.at,
                report.rx_bytes,
                report.tx_bytes,
            );
        }
    }
    app.node_names = nodes
        .iter()
        .map(|v| (v.node.id, v.node.name.clone()))
        .collect();
    app.nodes = nodes;
}

/// New full reports: each replaces its node's per-peer figures.
fn set_reports(app: &mut App, reports: &[(NodeId, StoredReport)]) {
    for (node, stored) in reports {
        app.peer_stats.retain(|(n, _), _| n != node);
        for stats in &stored.report.peers {
            app.peer_stats
                .insert((*node, stats.public_key), stats.clone());
        }
    }
}

/// Devices per user, from the peer rows.
fn count_devices(app: &mut App) {
    app.devices.clear();
    for peer in &app.peers {
        *app.devices.entry(peer.user).or_default() += 1;
    }
}

/// Applies the rows read again after events: upserts and removals by id, then the
/// derived maps, then only the tabs that changed are filtered and sorted again.
fn apply_changes(app: &mut App, changes: Changes) {
    let Changes {
        nodes,
        reports,
        users,
        users_gone,
        peers,
        peers_gone,
        invites,
        plans,
    } = changes;
    let mut dirty_tabs = Vec::new();
    if let Some(nodes) = nodes {
        set_nodes(app, nodes);
        dirty_tabs.push(Tab::Nodes);
    }
    set_reports(app, &reports);
    if !reports.is_empty() {
        dirty_tabs.push(Tab::Peers);
    }
    if !users.is_empty() || !users_gone.is_empty() {
        for u in &users {
            app.user_names.insert(u.id, u.name.clone());
        }
        for id in &users_gone {
            app.user_names.remove(id);
        }
        upsert(&mut app.users, users, &users_gone, |u| u.id, |_, _| {});
        dirty_tabs.push(Tab::Users);
    }
    if !peers.is_empty() || !peers_gone.is_empty() {
        // Device counts move with the rows that come and go (a peer keeps its user).
        let devices = &mut app.devices;
        upsert(
            &mut app.peers,
            peers,
            &peers_gone,
            |p| p.id,
            |p, came| {
                if came {
                    *devices.entry(p.user).or_default() += 1;
                } else if let Some(n) = devices.get_mut(&p.user) {
                    *n = n.saturating_sub(1);
                    if *n == 0 {
                        devices.remove(&p.user);
                    }
                }
            },
        );
        dirty_tabs.extend([Tab::Peers, Tab::Users]);
    }
    if let Some(invites) = invites {
        app.invites = invites;
        dirty_tabs.push(Tab::Invites);
    }
    if let Some(plans) = plans {
        app.plans = plans;
        dirty_tabs.push(Tab::Plans);
    }
    dirty_tabs.sort_by_key(|t| Tab::ALL.iter().position(|a| a == t));
    dirty_tabs.dedup();
    for tab in dirty_tabs {
        refilter(app, tab);
    }
}

/// The text field a key types into: the evacuation's directory, or the broadcast
/// field in focus.
fn input_field(app: &mut App) -> Option<&mut String> {
    match &mut app.modal {
        Some(Modal::ConfigsDir { path, .. }) => Some(path),
        Some(Modal::Broadcast { to, text, on_text }) => Some(if *on_text { text } else { to }),
        _ => None,
    }
}

/// Replaces rows by id, inserts new ones (keeping id order) and drops `gone`;
/// `counted(row, true)` for each row that came, `counted(row, false)` for each that
/// went (a row read again is neither).
fn upsert<T, K: Ord + Copy>(
    rows: &mut Vec<T>,
    fresh: Vec<T>,
    gone: &[K],
    id: impl Fn(&T) -> K,
    mut counted: impl FnMut(&T, bool),
) {
    for row in fresh {
        match rows.binary_search_by_key(&id(&row), &id) {
            Ok(i) => rows[i] = row,
            Err(i) => {
                counted(&row, true);
                rows.insert(i, row);
            }
        }
    }
    for key in gone {
        if let Ok(i) = rows.binary_search_by_key(key, &id) {
            counted(&rows.remove(i), false);
        }
    }
}

/// Recomputes a tab's view (filter, then sort) and keeps the selection in range.
pub fn refilter(app: &mut App, tab: Tab) {
    let state = app.tab_state(tab).clone();
    let mut matcher = Matcher::new(vpnctl_core::Needle::new(&state.filter));
    let mut view: Vec<usize> = match tab {
        Tab::Nodes => matcher.rows(app.nodes.len(), |i, out| {
            let v = &app.nodes[i];
            let n = &v.node;
            write!(
                out,
                "n{} {} {} {} {} {} {}",
                n.id,
                n.name,
                n.region.code,
                n.region.name,
                n.endpoint,
                placement(v).availability,
                v.health.status
            )
        }),
        Tab::Peers => matcher.rows(app.peers.len(), |i, out| {
            let p = &app.peers[i];
            write!(
                out,
                "p{} {} {} {} {}",
                p.id,
                app.user_name(p.user),
                p.device,
                app.node_name(p.node),
                p.ipv4
            )
        }),
        Tab::Users => matcher.rows(app.users.len(), |i, out| {
            let u = &app.users[i];
            write!(
                out,
                "u{} {} {}",
                u.id,
                u.name,
                UserStatus::of(u, app.now).label()
            )
        }),
        Tab::Invites => matcher.rows(app.invites.len(), |i, out| {
            let inv = &app.invites[i];
            write!(out, "i{} {}", inv.id, inv.label)
        }),
        Tab::Events => matcher.rows(app.events.len(), |i, out| {
            out.write_str(&crate::ui::event_text(&app.events[i]))
        }),
        Tab::Plans => matcher.rows(app.plans.len(), |i, out| {
            let p = &app.plans[i];
            write!(
                out,
                "plan{} {} {}",
                p.id,
                p.name.en,
                p.name.ru.as_deref().unwrap_or_default()
            )
        }),
    };
    sort_view(app, tab, state.sort, &mut view);
    if state.descending {
        view.reverse();
    }
    let len = view.len();
    app.views.insert(tab, view);
    let selected = &mut app.tabs.entry(tab).or_default().selected;
    *selected = (*selected).min(len.saturating_sub(1));
}

/// Which rows a filter keeps: those whose text (what the row shows, written by the
/// caller) contains the needle as core's API filters match names ([`Needle`]). The
/// text goes into one buffer reused from row to row, and an empty filter writes no
/// text at all: a keystroke over 200,000 peers allocates nothing per ASCII row.
///
/// [`Needle`]: vpnctl_core::Needle
struct Matcher {
    needle: vpnctl_core::Needle,
    text: String,
}

impl Matcher {
    fn new(needle: vpnctl_core::Needle) -> Self {
        Self {
            needle,
            text: String::new(),
        }
    }

    /// The indices `0..len` whose text (`write(i, buffer)`) matches.
    fn rows(
        &mut self,
        len: usize,
        mut write: impl FnMut(usize, &mut String) -> std::fmt::Result,
    ) -> Vec<usize> {
        if self.needle.is_empty() {
            return (0..len).collect();
        }
        (0..len)
            .filter(|&i| {
                self.text.clear();
                // Writing into a String cannot fail.
                let _ = write(i, &mut self.text);
                self.needle.matches(&self.text)
            })
            .collect()
    }
}

fn sort_view(app: &App, tab: Tab, sort: usize, view: &mut [usize]) {
    match (tab, sort) {
        (Tab::Nodes, 1) => view.sort_by(|&a, &b| {
            app.nodes[a]
                .node
                .region
                .code
                .cmp(&app.nodes[b].node.region.code)
        }),
        (Tab::Nodes, 2) => view.sort_by_key(|&i| std::cmp::Reverse(app.nodes[i].peers)),
        // Core's order of preference: best first, then the less loaded.
        (Tab::Nodes, 3) => view.sort_by(|&a, &b| {
            placement(&app.nodes[a])
                .cmp_preference(&placement(&app.nodes[b]))
                .then_with(|| app.nodes[a].node.name.cmp(&app.nodes[b].node.name))
        }),
        (Tab::Nodes, 4) => view.sort_by(|&a, &b| {
            let key = |i: usize| (health_rank(health(&app.nodes[i])), &app.nodes[i].node.name);
            key(a).cmp(&key(b))
        }),
        (Tab::Nodes, _) => {
            view.sort_by(|&a, &b| app.nodes[a].node.name.cmp(&app.nodes[b].node.name));
        }
        (Tab::Peers, 1) => view.sort_by(|&a, &b| {
            app.user_name(app.peers[a].user)
                .cmp(app.user_name(app.peers[b].user))
        }),
        (Tab::Peers, 2) => view.sort_by(|&a, &b| {
            app.node_name(app.peers[a].node)
                .cmp(app.node_name(app.peers[b].node))
        }),
        (Tab::Peers, 3) => view.sort_by(|&a, &b| app.peers[a].device.cmp(&app.peers[b].device)),
        (Tab::Peers, 4) => view.sort_by_key(|&i| {
            std::cmp::Reverse(app.stats_of(&app.peers[i]).and_then(|s| s.last_handshake))
        }),
        (Tab::Peers, 5) => view.sort_by_key(|&i| {
            std::cmp::Reverse(
                app.stats_of(&app.peers[i])
                    .map_or(0, |s| s.rx_bytes.saturating_add(s.tx_bytes)),
            )
        }),
        (Tab::Peers, _) => view.sort_by_key(|&i| app.peers[i].id),
        (Tab::Users, 1) => view.sort_by(|&a, &b| app.users[a].name.cmp(&app.users[b].name)),
        (Tab::Users, 2) => view.sort_by_key(|&i| UserStatus::of(&app.users[i], app.now)),
        (Tab::Users, 3) => view.sort_by_key(|&i| app.users[i].until.map_or(i64::MAX, |t| t.0)),
        (Tab::Users, 4) => view.sort_by_key(|&i| {
            std::cmp::Reverse(app.devices.get(&app.users[i].id).copied().unwrap_or(0))
        }),
        (Tab::Users, _) => view.sort_by_key(|&i| app.users[i].id),
        (Tab::Invites, 1) => view.sort_by(|&a, &b| app.invites[a].label.cmp(&app.invites[b].label)),
        (Tab::Invites, 2) => view.sort_by_key(|&i| std::cmp::Reverse(app.invites[i].uses_left)),
        (Tab::Invites, 3) => {
            view.sort_by_key(|&i| app.invites[i].expires_at.map_or(i64::MAX, |t| t.0));
        }
        (Tab::Invites, _) => view.sort_by_key(|&i| app.invites[i].id),
        // Newest first.
        (Tab::Events, _) => view.reverse(),
        (Tab::Plans, 1) => view.sort_by(|&a, &b| app.plans[a].name.en.cmp(&app.plans[b].name.en)),
        (Tab::Plans, 2) => view.sort_by_key(|&i| app.plans[i].stars),
        (Tab::Plans, 3) => view.sort_by_key(|&i| app.plans[i].days),
        (Tab::Plans, _) => view.sort_by_key(|&i| app.plans[i].id),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(code: KeyCode) -> KeyEvent {
        KeyEvent::new(code, KeyModifiers::NONE)
    }

    fn press(app: &mut App, code: KeyCode) {
        if let Some(action) = app.action_for_key(key(code)) {
            update(app, action);
        }
    }

    #[test]
    fn tabs_cycle_both_ways_and_by_number() {
        let mut app = App::new("t", Timestamp(0));
        press(&mut app, KeyCode::Tab);
        assert_eq!(app.tab, Tab::Peers);
        press(&mut app, KeyCode::BackTab);
        press(&mut app, KeyCode::BackTab);
        assert_eq!(app.tab, Tab::Plans);
        press(&mut app, KeyCode::Char('6'));
        assert_eq!(app.tab, Tab::Plans);
        press(&mut app, KeyCode::Char('3'));
        assert_eq!(app.tab, Tab::Users);
    }

    #[test]
    fn quit_on_q_and_ctrl_c() {
        let mut app = App::new("t", Timestamp(0));
        press(&mut app, KeyCode::Char('q'));
        assert!(!app.running);
        let app = App::new("t", Timestamp(0));
        let action = app.action_for_key(KeyEvent::new(KeyCode::Char('c'), KeyModifiers::CONTROL));
        assert!(matches!(action, Some(Action::Quit)));
    }

    #[test]
    fn filter_typing_does_not_trigger_commands() {
        let mut app = App::new("t", Timestamp(0));
        press(&mut app, KeyCode::Char('/'));
        assert!(app.filtering);
        for c in "qi".chars() {
            press(&mut app, KeyCode::Char(c));
        }
        assert!(app.running, "q is text while filtering");
        assert!(app.modal.is_none());
        assert_eq!(app.tab_state(Tab::Nodes).filter, "qi");
        press(&mut app, KeyCode::Backspace);
        press(&mut app, KeyCode::Enter);
        assert!(!app.filtering);
        assert_eq!(app.tab_state(Tab::Nodes).filter, "q");
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.tab_state(Tab::Nodes).filter, "");
    }

    #[test]
    fn commands_need_confirmation() {
        let mut app = App::new("t", Timestamp(0));
        press(&mut app, KeyCode::Char('i'));
        assert_eq!(app.modal, Some(Modal::Confirm(Command::CreateInvite)));
        assert!(app.outbox.is_empty());
        press(&mut app, KeyCode::Char('n'));
        assert_eq!(app.modal, None);
        assert!(app.outbox.is_empty());
        press(&mut app, KeyCode::Char('i'));
        press(&mut app, KeyCode::Char('y'));
        assert_eq!(app.outbox, vec![Command::CreateInvite]);
        assert!(matches!(app.modal, Some(Modal::Busy(_))));
        update(
            &mut app,
            Action::CommandDone(Ok(Outcome::Invite {
                link: "https://t.me/bot?start=x".into(),
                qr: "██".into(),
            })),
        );
        assert!(matches!(
            app.modal,
            Some(Modal::Result(Outcome::Invite { .. }))
        ));
        press(&mut app, KeyCode::Esc);
        assert_eq!(app.modal, None);
    }

    #[test]
    fn row_actions_need_a_selected_row_of_their_tab() {
        let app = App::new("t", Timestamp(0));
        assert!(app.action_for_key(key(KeyCode::Char('r'))).is_none());
        assert!(app.action_for_key(key(KeyCode::Char('e'))).is_none());
        assert!(app.action_for_key(key(KeyCode::Char('d'))).is_none());
    }

    #[test]
    fn api_failure_is_shown_not_fatal() {
        let mut app = App::new("t", Timestamp(0));
        update(
            &mut app,
            Action::ApiFailed("cannot reach http://127.0.0.1:1".into()),
        );
        assert!(app.running);
        assert!(matches!(app.connection, Connection::Failed(ref m) if m.contains("cannot reach")));
        update(
            &mut app,
            Action::CommandDone(Err("HTTP 401: bad token".into())),
        );
        assert_eq!(app.modal, Some(Modal::Error("HTTP 401: bad token".into())));
    }

    #[test]
    fn user_status_disabled_beats_expired_beats_suspended() {
        let now = Timestamp(1_000_000);
        let mut user = User {
            id: UserId(1),
            telegram_id: None,
            name: "u".into(),
            role: vpnctl_core::Role::User,
            state: UserState::Active,
            until: None,
            lapsed: false,
            device_limit: 1,
            locale: vpnctl_core::Locale::En,
            created_at: Timestamp(0),
            quota: None,
            suspended: false,
        };
        assert_eq!(UserStatus::of(&user, now), UserStatus::Active);
        user.suspended = true;
        assert_eq!(UserStatus::of(&user, now), UserStatus::Suspended);
        user.until = Some(Timestamp(now.0 - 1));
        assert_eq!(UserStatus::of(&user, now), UserStatus::Expired);
        user.state = UserState::Disabled;
        assert_eq!(UserStatus::of(&user, now), UserStatus::Disabled);
        assert_eq!(UserStatus::Suspended.label(), "suspended");
    }

    #[test]
    fn traffic_rates_come_from_counter_deltas() {
        let mut t = Traffic::default();
        t.observe(Timestamp(100), 1_000, 4_000);
        assert!(t.history.is_empty());
        t.observe(Timestamp(102), 3_000, 8_000);
        assert_eq!((t.rx_rate, t.tx_rate), (1_000, 2_000));
        assert_eq!(t.history, [3_000]);
        t.observe(Timestamp(102), 9_000, 9_000);
        assert_eq!(t.history.len(), 1, "same report twice is no sample");
    }
}
