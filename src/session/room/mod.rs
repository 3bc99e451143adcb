//! A listener hosting a room: many members at once, each on its own connection with its own
//! reader and writer task, and the host's loop in the middle.
//!
//! ```text
//!  member A ──TEXT──▶ reader A ─┐                  ┌─▶ outbox B ─▶ writer B ──RELAY(A)──▶ B
//!                               ├─▶ host loop ─────┤
//!  member B ──TEXT──▶ reader B ─┘   (shows it,     └─▶ outbox A ─▶ writer A ──RELAY(B)──▶ A
//!                                    relays it)
//! ```
//!
//! Every outbox is bounded in bytes: a member that cannot keep up is disconnected (with a
//! notice to the others) instead of making the host's memory grow. Readers never wait on the
//! host for long, writers never wait on each other, so one slow or silent member cannot stall
//! the rest. Members that speak PROTOCOL.md §4.14 talk to each other end to end: the host
//! passes their PEER messages on by key (`host::pairs`) and reads none of them. Text it
//! relays itself (RELAY, to and from older members) it decrypts and re-encrypts: that is
//! only as trustworthy as the host.
//!
//! Here: the room's loop and its options; `members` starts, names, relays to and lets go of
//! members; `knock` handles strangers at a host's terminal; `commands` what the host types.

use super::command::{self, Command};
use super::input::{Input, InputEvent};
use super::member::{self, Event, Offer, Outbox, Rate};
use super::names::{self, Names};
use super::verify::{PeerInfo, TrustConfig};
use super::{LINGER, REFUSAL};
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::handshake::Established;
use crate::keys::PublicKey;
use crate::message::notice::{Entry, Event as NoticeEvent, Notice, Reason};
use crate::message::{self, MAX_BODY, MAX_RELAY_TEXT, Message};
use crate::receipts::{ACK_DELAY, Fanout};
use crate::sanitize;
use crate::ui::{Departure, Mode, Ui};
use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use super::member::DEFAULT_RATE;
pub use commands::MIN_PREFIX_DIGITS;
pub use knock::KNOCK_WAIT;

mod commands;
mod host;
mod knock;
mod members;

pub use host::host;

use commands::*;
use knock::*;
use members::*;

/// How the room behaves.
#[derive(Debug, Clone)]
pub struct RoomOptions {
    /// Sent to each member first.
    pub welcome: String,
    /// Members at once; more are refused with a QUIT.
    pub max_peers: usize,
    /// How long a knock waits for the host's answer ([`KNOCK_WAIT`] unless configured).
    pub knock_wait: Duration,
    /// End when the room empties after its first member.
    pub once: bool,
    /// PING after this much silence from a member; gone after three.
    pub keepalive: Duration,
    /// Bytes queued for one member before it counts as not keeping up.
    pub outbox_bytes: usize,
    /// What each member may send into the room (its share; see [`member`]).
    pub rate: Rate,
    /// How long a connection may take to send its HELLO (its user may be answering a trust
    /// question) before it is dropped.
    pub hello_within: Duration,
    /// Known peers (a knock answered with a petname is stored there).
    pub trust: TrustConfig,
    /// The host's key (a rename of the host names it).
    pub key: PublicKey,
    /// The host's display name (empty: none).
    pub name: String,
    /// How long a member whose connection dropped keeps its place, to resume (PROTOCOL.md
    /// §4.11); `None`: it leaves at once.
    pub resume_grace: Option<Duration>,
    /// The keys of the members that could resume: the room keeps it current, the accept loop
    /// lets a RESUME past admission only for one of them.
    pub resumable: ResumableKeys,
    /// Files members offer: where they go, whether they are accepted without asking.
    pub files: crate::files::Policy,
    /// Files offered to each member as it joins (`--send`); the room then closes once every
    /// one has been delivered or has failed.
    pub send: Vec<std::path::PathBuf>,
    /// The host takes no part (`--relay-only`): it admits members and passes on what they
    /// seal for each other, reads nothing and says nothing; members that cannot talk end to
    /// end are refused.
    pub relay_only: bool,
}

/// The keys of the room's resumable members, shared with the accept loop.
pub type ResumableKeys = Arc<std::sync::Mutex<std::collections::HashSet<PublicKey>>>;

/// The default outbox: 1 MiB of queued messages per member.
pub const DEFAULT_OUTBOX_BYTES: usize = 1 << 20;

/// Join and leave notices announced one by one per [`CHURN_WINDOW`]; beyond that they are
/// summarised, so a member that reconnects in a loop cannot flood everyone's screen.
const CHURN_NOTICES: u32 = 4;

/// The window over which join/leave notices are counted.
pub const CHURN_WINDOW: Duration = Duration::from_secs(5);

/// A member's WHO is answered at most this often.
const WHO_EVERY: Duration = Duration::from_secs(1);

/// How long a departed member's writer may finish its queue before its socket is closed.
pub const DEPARTURE_GRACE: Duration = Duration::from_secs(3);

/// A connection that finished its handshake and was admitted.
pub struct Arrival<R, W> {
    pub established: Established<R, W>,
    pub info: PeerInfo,
    pub address: String,
    /// Its first message, if the listener already read it (deciding about an invite).
    pub first: Option<Message<'static>>,
}

/// What a connection task reports to the room.
pub enum Connection<R, W> {
    /// Admitted: wants to join.
    Arrived(Box<Arrival<R, W>>),
    /// An unknown key at a host who is at a terminal: it knocks, the host answers. With the
    /// address it counts against (an IP, an IPv6 /64, a relayed endpoint).
    Knock(Box<Arrival<R, W>>, String),
    /// Never became a member (handshake failed, timed out, key refused…): one line.
    Failed(String),
}

/// Counts joins and leaves: the first few per window are announced one by one, the rest in
/// one summary when the window ends.
struct Churn {
    since: Instant,
    announced: u32,
    joined: u32,
    left: u32,
}

impl Churn {
    fn new() -> Self {
        Churn {
            since: Instant::now(),
            announced: 0,
            joined: 0,
            left: 0,
        }
    }

    /// Whether this join (or leave) is announced on its own.
    fn announce(&mut self, joined: bool) -> bool {
        let now = Instant::now();
        if now.duration_since(self.since) >= CHURN_WINDOW && !self.held_back() {
            self.since = now;
            self.announced = 0;
        }
        if self.announced < CHURN_NOTICES {
            self.announced += 1;
            return true;
        }
        if joined {
            self.joined += 1;
        } else {
            self.left += 1;
        }
        false
    }

    fn held_back(&self) -> bool {
        self.joined + self.left > 0
    }

    /// When the summary of what was held back is due.
    fn due(&self) -> Instant {
        self.since + CHURN_WINDOW
    }

    /// The summary of the window that ended; starts a new one.
    fn summary(&mut self, in_room: usize) -> String {
        let line = format!(
            "{} joined and {} left in the last {} s ({in_room} in the room now; /who lists them)",
            self.joined,
            self.left,
            CHURN_WINDOW.as_secs()
        );
        *self = Churn::new();
        line
    }
}

/// Connections being turned away at once (each lingers for its QUIT to arrive); beyond this
/// they are closed without a word, so a flood of them cannot hold sockets.
const TURNING_AWAY: usize = 64;

/// A member the room has no place for: QUIT, hang up (in the background, bounded).
fn turn_away<R, W>(slots: &Arc<Semaphore>, established: Established<R, W>)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    send_away(slots, established, "busy: the room is full");
}

/// QUIT with `reason` and hang up, in the background: at most [`TURNING_AWAY`] at once (beyond
/// that the connection is just dropped), so a flood of refusals holds no unbounded sockets.
fn send_away<R, W>(
    slots: &Arc<Semaphore>,
    established: Established<R, W>,
    reason: impl Into<String>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        return;
    };
    let reason = reason.into();
    tokio::spawn(async move {
        super::refuse(established, &reason).await;
        drop(slot);
    });
}

/// Refuses an admitted-but-unwanted connection the way [`super::converse`] does.
pub async fn refuse<R, W>(established: Established<R, W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    super::refuse(established, REFUSAL).await;
}
