//! Following the event log for as long as a client runs: [`Follower`].
//!
//! One `GET /v1/events/stream` ends (hourly, at the server's
//! `event_stream_max_secs`; at a restart; when the connection breaks). A follower
//! opens it again from the last event it handed out, so the server replays what was
//! missed and every event comes once, in order; it tells its caller what a log
//! reader must act on: that events were lost for good (a gap), that the log went
//! back (a store restored from a backup), that the control plane is away. The
//! rules live here once; `vpnctl events --follow` and the dashboard word them.

use std::pin::Pin;
use std::time::Duration;

use futures_util::{Stream, StreamExt as _};
use tokio::time::Instant;
use vpnctl_api::model::Event;

use crate::{ApiClient, ClientError};

/// How long a follower waits before it tries again after a failure, and the
/// least a stream must have lived to be opened again at once when it ends.
pub const FOLLOW_RETRY: Duration = Duration::from_secs(2);

type EventStream = Pin<Box<dyn Stream<Item = Result<Event, ClientError>> + Send>>;

/// What a [`Follower`] saw, in the order it happened.
#[derive(Debug)]
pub enum Followed {
    /// The stream is open: every event committed from here on will come. After
    /// `Open`, whatever is read of the tables includes every change not yet
    /// handed out as an event.
    Open,
    /// The next event of the log.
    Event(Event),
    /// Events between the last one handed out and the next were lost (retention
    /// pruned them while the follower was away, or it had no place to resume
    /// from): whatever was built from the log must be read again.
    Gap,
    /// The store was restored from a backup since the last event handed out (the
    /// server answers 409: the log's identity changed, or it ends before that
    /// event), and its next events reuse numbers already handed out: what was built
    /// from the log must be read again. The follower goes on from the end of the
    /// restored log.
    Restored,
    /// The control plane could not be reached (or failed); the follower tries again
    /// after [`FOLLOW_RETRY`], at the next [`Follower::next`].
    Away(ClientError),
}

/// The event log from a point on, across the stream's ends, restarts and outages.
///
/// ```no_run
/// # async fn demo(api: vpnctl_client::ApiClient) -> Result<(), vpnctl_client::ClientError> {
/// use vpnctl_client::Followed;
/// let mut follower = api.follow(None);
/// loop {
///     match follower.next().await? {
///         Followed::Event(event) => println!("#{}", event.seq),
///         Followed::Gap | Followed::Restored => { /* read what you keep again */ }
///         Followed::Open | Followed::Away(_) => {}
///     }
/// }
/// # }
/// ```
pub struct Follower {
    api: ApiClient,
    /// The last event handed out, or where the open stream began; `None`: the end of
    /// the log when the stream opens.
    after: Option<u64>,
    stream: Option<EventStream>,
    /// When the open stream opened.
    opened: Instant,
    /// No request before this (after a failure, or a stream that ended at once).
    not_before: Option<Instant>,
    /// An event held back while its [`Followed::Gap`] is handed out.
    held: Option<Event>,
    /// A stream was open before: a new one without a place to resume from is a gap.
    was_open: bool,
    /// A [`Followed::Gap`] to hand out next.
    gap: bool,
    /// The identity of the log `after` belongs to, as the first stream said.
    log: Option<u64>,
    retry: Duration,
}

impl std::fmt::Debug for Follower {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Follower")
            .field("after", &self.after)
            .field("open", &self.stream.is_some())
            .finish_non_exhaustive()
    }
}

impl ApiClient {
    /// Follows the event log after event `after` (`None`: from the end of the log,
    /// when the stream opens), in the log `log` (a [`Follower::log`] kept from an
    /// earlier run: a store restored since is then [`Followed::Restored`], however
    /// far it has gone).
    pub fn follow_in(&self, after: Option<u64>, log: Option<u64>) -> Follower {
        let mut follower = self.follow(after);
        follower.log = log;
        follower
    }

    /// Follows the event log after event `after` (`None`: from the end of the log,
    /// when the stream opens), in whichever log the control plane serves when the
    /// stream first opens. See [`Follower`].
    pub fn follow(&self, after: Option<u64>) -> Follower {
        Follower {
            api: self.clone(),
            after,
            stream: None,
            opened: Instant::now(),
            not_before: None,
            held: None,
            was_open: false,
            gap: false,
            log: None,
            retry: FOLLOW_RETRY,
        }
    }
}

impl Follower {
    /// Waits `retry` (instead of [`FOLLOW_RETRY`]) between attempts.
    #[must_use]
    pub fn with_retry(mut self, retry: Duration) -> Self {
        self.retry = retry;
        self
    }

    /// The last event handed out (or where the open stream began).
    pub fn after(&self) -> Option<u64> {
        self.after
    }

    /// The identity of the log [`Follower::after`] belongs to, once a stream said
    /// it: keep both to resume in a later run ([`ApiClient::follow_in`]).
    pub fn log(&self) -> Option<u64> {
        self.log
    }

    /// Closes the open stream and opens it again from the same place, in the same
    /// log, at the next [`Follower::next`] (after the retry pause): for a caller
    /// that could not take in what the stream began with.
    pub fn reopen(&mut self) {
        self.stream = None;
        self.held = None;
        self.not_before = Some(Instant::now() + self.retry);
    }

    /// What comes next. `Err` is an error that will not go away by trying again
    /// (a refused token, an event this version cannot read); the follower tries
    /// again anyway if called again, after [`FOLLOW_RETRY`].
    pub async fn next(&mut self) -> Result<Followed, ClientError> {
        if std::mem::take(&mut self.gap) {
            return Ok(Followed::Gap);
        }
        if let Some(event) = self.held.take() {
            return Ok(Followed::Event(event));
        }
        loop {
            if let Some(stream) = self.stream.as_mut() {
                match stream.next().await {
                    Some(Ok(event)) => {
                        // The stream sends every event after `after`, in order; one
                        // that is not the next means the log lost some meanwhile.
                        if self.after.is_some_and(|a| event.seq != a.saturating_add(1)) {
                            self.after = Some(event.seq);
                            self.held = Some(event);
                            return Ok(Followed::Gap);
                        }
                        self.after = Some(event.seq);
                        return Ok(Followed::Event(event));
                    }
                    // Would come again on every reconnect: the caller decides.
                    Some(Err(e)) if !e.is_transient() => {
                        self.stream = None;
                        self.not_before = Some(Instant::now() + self.retry);
                        return Err(e);
                    }
                    Some(Err(e)) => {
                        tracing::debug!(error = %e, "event stream broke");
                        self.stream = None;
                    }
                    // The hourly limit, a restart.
                    None => self.stream = None,
                }
                // Reconnect at once, unless it ended as soon as it began.
                if self.opened.elapsed() < self.retry {
                    self.not_before = Some(self.opened + self.retry);
                }
                continue;
            }
            if let Some(at) = self.not_before {
                // Cleared only once waited: a caller that drops this future (a
                // select against its own timer) still waits the rest next time.
                tokio::time::sleep_until(at).await;
                self.not_before = None;
            }
            match self.api.events_stream_at(self.after, self.log).await {
                Ok((start, stream)) => {
                    self.log = self.log.or(start.log);
                    let start = start.after;
                    // Open before, with nothing to resume from (a server that does
                    // not say where its stream began): what was missed is unknown.
                    // Said once the new stream is open, so a read after it misses
                    // nothing.
                    self.gap = self.was_open && self.after.is_none();
                    self.after = self.after.or(start);
                    self.stream = Some(Box::pin(stream));
                    self.opened = Instant::now();
                    self.was_open = true;
                    return Ok(Followed::Open);
                }
                // Another log (a restore), or `after` past the newest event ever
                // committed (a store put back by hand).
                Err(e) if e.status() == Some(409) => {
                    self.after = None;
                    self.log = None;
                    self.was_open = false;
                    return Ok(Followed::Restored);
                }
                Err(e) => {
                    self.not_before = Some(Instant::now() + self.retry);
                    return if e.is_transient() {
                        Ok(Followed::Away(e))
                    } else {
                        Err(e)
                    };
                }
            }
        }
    }
}
