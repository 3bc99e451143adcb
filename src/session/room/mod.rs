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
//! the rest. Relayed text is decrypted and re-encrypted by the host: members must trust the host
//! as much as the text they receive through it (PROTOCOL.md says so).
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
use crate::sanitize;
use crate::signals::Interrupts;
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
mod knock;
mod members;

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
}

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

/// A knock answered `y NAME`, with its address, once known_peers has the name (or not).
type Naming<R, W> = (
    Arrival<R, W>,
    String,
    std::result::Result<crate::trust::Entry, String>,
);

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

/// Runs the room until the host quits (or, with `once`, until it empties after its first
/// member). `connections` delivers what the accept loop produced.
///
/// The host's own input never waits on a member: a line that does not fit a member's outbox
/// disconnects that member as not keeping up, so no member can freeze the host's typing.
pub async fn host<R, W>(
    mut connections: mpsc::Receiver<Connection<R, W>>,
    options: &RoomOptions,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (events_tx, mut events) = mpsc::channel::<Event>(1024);
    let mut members: BTreeMap<u64, Member> = BTreeMap::new();
    let mut next_id = 0u64;
    let mut had_members = false;
    let mut last: Result<()> = Ok(());
    let mut names = Names::load(&options.trust);
    let mut host_name = options.name.clone();
    // When each key last changed its name (one change per RENAME_EVERY, per key).
    let mut renamed: HashMap<PublicKey, Instant> = HashMap::new();
    let mut churn = Churn::new();
    let mut input_open = true;
    let turning_away = Arc::new(Semaphore::new(TURNING_AWAY));
    let mut knocks = Knocks::new(turning_away.clone(), options.knock_wait);
    // The oldest knock changed: show it (and its question) once the select is over.
    let mut ask_knock = false;
    // Writers of members that said QUIT, finishing their queues.
    let mut departing = tokio::task::JoinSet::new();
    // Changes of known_peers the host asked for (a knock answered `y NAME`, /name), running
    // off the room's loop: a store waiting on its lock or a slow disk never stalls the room.
    let mut naming: tokio::task::JoinSet<Naming<R, W>> = tokio::task::JoinSet::new();
    let mut renaming: tokio::task::JoinSet<Named> = tokio::task::JoinSet::new();
    loop {
        let present = members.len();
        tokio::select! {
            Some(connection) = connections.recv() => match connection {
                Connection::Failed(line) => ui.warn(line),
                Connection::Knock(arrival, source) => ask_knock |= knocks.knock(*arrival, source, ui),
                Connection::Arrived(arrival) => {
                    enter(&mut members, &mut next_id, *arrival, options, &host_name, &events_tx, ui, &turning_away);
                }
            },
            () = tokio::time::sleep_until(knocks.due()), if !knocks.is_empty() => {
                ask_knock |= knocks.expire(ui);
            }
            () = tokio::time::sleep_until(knocks.summary_due()), if knocks.turned_away() > 0 => {
                knocks.summarise(ui);
            }
            Some(event) = events.recv() => match event {
                Event::Ready { id, name } => {
                    // One connection per key: a key that joins again (a reconnect) replaces
                    // its older connection, which would otherwise linger until it times out.
                    let key = members.get(&id).map(|m| m.info.key);
                    let older: Vec<u64> = members
                        .iter()
                        .filter(|(other, m)| **other != id && m.ready && Some(m.info.key) == key)
                        .map(|(other, _)| *other)
                        .collect();
                    for other in older {
                        if let Some(old) = members.remove(&other) {
                            ui.status(format_args!("{} reconnected from {}", old.tag(), old.address));
                            part(old);
                        }
                    }
                    let Some(member) = members.get_mut(&id) else { continue };
                    member.ready = true;
                    let _ = member.outbox.offer(Message::Welcome(options.welcome.clone().into()));
                    // Its name, if it is one; otherwise it is told why (after WELCOME, which
                    // comes first) and shown by its key.
                    match names::check_name(&name) {
                        Ok(()) => member.name = name,
                        Err(_) if name.is_empty() => {}
                        Err(why) => {
                            let refused = Entry { key: *member.info.key.as_bytes(), name: name.into() };
                            let _ = member.outbox.offer(notice(NoticeEvent::Refused(refused), why.into()));
                        }
                    }
                    relabel(&mut members, &mut names);
                    // Who is already here, so that the newcomer knows who reads along.
                    let roster = roster(&members, id, &names);
                    if let Some(member) = members.get(&id) {
                        let _ = member.outbox.offer(roster);
                    }
                    let Some(member) = members.get_mut(&id) else { continue };
                    had_members = true;
                    let loud = churn.announce(true);
                    let tag = member.tag();
                    let invite = member.info.invite.clone();
                    let info = &member.info;
                    // Logs and scripts get the numbers on the record; at a terminal the join
                    // line below says who came, and /verify NAME shows the numbers.
                    if loud && ui.mode() != Mode::Interactive {
                        ui.status(format_args!(
                            "secure session with {}; peer fingerprint: {}",
                            member.address,
                            fingerprint::grouped(&info.key)
                        ));
                        ui.status(format_args!("peer: {}", info.trust_line()));
                        ui.status(format_args!("safety number: {}", info.safety()));
                    }
                    ui.connected(&member.speaker(), &info.safety().grouped(), Some(&member.address));
                    if loud {
                        let joined = notice(
                            NoticeEvent::Join(member.entry()),
                            format!("{} joined", names.public_label(&member.info.key)),
                        );
                        broadcast(&mut members, Some(id), &joined, ui);
                        let here = members.values().filter(|m| m.ready).count();
                        match &invite {
                            Some(id) => ui.status(format_args!(
                                "{tag} joined (verified by invite {id}; {here} in the room)"
                            )),
                            None => ui.status(format_args!("{tag} joined ({here} in the room)")),
                        }
                    }
                }
                Event::Who { id } => {
                    // One answer a second: a roster is far bigger than the WHO that asks.
                    let Some(member) = members.get_mut(&id) else { continue };
                    if member.asked_who.is_some_and(|at| at.elapsed() < WHO_EVERY) {
                        continue;
                    }
                    member.asked_who = Some(Instant::now());
                    let roster = roster(&members, id, &names);
                    if let Some(member) = members.get(&id) {
                        let _ = member.outbox.offer(roster);
                    }
                }
                Event::Nick { id, name } => {
                    rename(&mut members, id, &name, &mut names, &mut renamed, ui)
                }
                Event::Said { id, text } => {
                    if let Err(e) = said(&mut members, id, &text, ui) {
                        last = Err(e);
                        break;
                    }
                }
                Event::Left { id, how } => {
                    let Some(member) = members.remove(&id) else { continue };
                    if !member.ready {
                        // It never joined: nobody was told it came, nobody is told it went.
                        match &how {
                            Err(Error::RefusedByPeer(why)) => ui.warn(format_args!(
                                "{} from {} refused us: {why}",
                                member.tag(),
                                member.address
                            )),
                            Err(e) => ui.warn(format_args!(
                                "connection from {} ({}) ended before it joined: {e}",
                                member.address,
                                member.tag()
                            )),
                            Ok(_) => {}
                        }
                        part(member);
                        continue;
                    }
                    let loud = churn.announce(false);
                    let speaker = member.speaker();
                    match &how {
                        // Programs get every departure; people a summary under churn.
                        Ok(reason) if loud || !reason.is_empty() || ui.mode() == Mode::Json => {
                            ui.left(&speaker, Departure::Quit, reason)
                        }
                        Ok(_) => {}
                        Err(e) => ui.left(&speaker, Departure::of(e), &format!("{e} ({})", member.address)),
                    }
                    let left = notice(
                        NoticeEvent::Leave(member.entry(), leave_reason(&how)),
                        format!("{} left", names.public_label(&member.info.key)),
                    );
                    match how.is_ok() {
                        true => part_gracefully(member, &mut departing),
                        false => part(member),
                    }
                    relabel(&mut members, &mut names);
                    if loud {
                        broadcast(&mut members, None, &left, ui);
                    }
                    last = how.map(|_| ());
                    if members.is_empty() {
                        if options.once {
                            break;
                        }
                        ui.status("the room is empty; waiting for the next peer");
                    }
                }
            },
            Some(_) = departing.join_next(), if !departing.is_empty() => {}
            // A knock answered `y NAME`, remembered: now it comes in.
            Some(named) = naming.join_next(), if !naming.is_empty() => match named {
                Ok((mut arrival, _, Ok(entry))) => {
                    ui.status(format_args!(
                        "remembered as {:?} (trusted on first use, not verified)",
                        entry.name
                    ));
                    arrival.info.label = entry.name.clone();
                    arrival.info.entry = Some(entry);
                    enter(&mut members, &mut next_id, arrival, options, &host_name, &events_tx, ui, &turning_away);
                }
                Ok((arrival, source, Err(why))) => {
                    ui.warn(format_args!("{why}: answer again"));
                    knocks.ask_again(arrival, source);
                    ask_knock = true;
                }
                Err(e) => ui.error(format_args!("remembering a knock failed: {e}")),
            },
            // A member the host named with /name.
            Some(named) = renaming.join_next(), if !renaming.is_empty() => {
                if let Ok(named) = named {
                    named_member(&mut members, &mut names, named, ui);
                }
            }
            () = tokio::time::sleep_until(churn.due()), if churn.held_back() => {
                let line = churn.summary(members.values().filter(|m| m.ready).count());
                ui.status(&line);
                broadcast(&mut members, None, &notice(NoticeEvent::Text, line), ui);
            }
            event = input.next(), if input_open => {
                // A knock is waiting: the line is the host's answer to it.
                if !knocks.is_empty() && let InputEvent::Line(answer) = &event {
                    match knocks.answer(answer, ui) {
                        Answer::Admit(arrival) => {
                            enter(&mut members, &mut next_id, arrival, options, &host_name, &events_tx, ui, &turning_away);
                        }
                        Answer::Name(arrival, petname, source) => {
                            let trust = options.trust.clone();
                            naming.spawn(async move {
                                let named = name_peer(&trust, arrival.info.key, petname).await;
                                (arrival, source, named)
                            });
                        }
                        Answer::Wait => {}
                    }
                    // The next knock's question, or the prompt (and the draft) back.
                    knocks.ask(ui, input);
                    continue;
                }
                if matches!(event, InputEvent::Eof | InputEvent::Failed(_)) {
                    // Nothing more to say is not "close the room" (a host under systemd or
                    // nohup has no input at all): keep serving until a signal or --once.
                    if let InputEvent::Failed(e) = &event {
                        ui.error(format_args!("reading input failed: {e}"));
                    }
                    ui.status("end of input: the room stays open (a signal closes it)");
                    input_open = false;
                    continue;
                }
                let host = Host { key: &options.key, name: &mut host_name, renaming: &mut renaming };
                if let Some(end) = host_input(event, &mut members, input, ui, &options.trust, host) {
                    last = end;
                    break;
                }
            }
            name = interrupts.recv() => {
                ui.status(format_args!("{name}; closing the room"));
                last = Ok(());
                break;
            }
        }
        // Someone left (a slow member disconnected inside a broadcast, say): names of those
        // gone no longer count, and their collisions end.
        if members.len() < present {
            relabel(&mut members, &mut names);
        }
        if std::mem::take(&mut ask_knock) {
            knocks.ask(ui, input);
        }
        if options.once && had_members && members.is_empty() {
            break;
        }
    }
    input.set_prompt(None);
    close(members).await;
    // Each is bounded by its own grace.
    while departing.join_next().await.is_some() {}
    last
}

/// An admitted connection enters: as a member waiting for its HELLO, or, when the room is
/// full, turned away.
#[allow(clippy::too_many_arguments)]
fn enter<R, W>(
    members: &mut BTreeMap<u64, Member>,
    next_id: &mut u64,
    arrival: Arrival<R, W>,
    options: &RoomOptions,
    host_name: &str,
    events: &mpsc::Sender<Event>,
    ui: &Ui,
    turning_away: &Arc<Semaphore>,
) where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let ready = members.values().filter(|m| m.ready).count();
    if ready >= options.max_peers {
        ui.warn(format_args!(
            "refused {} from {}: the room is full ({ready} of {})",
            arrival.info.label, arrival.address, options.max_peers
        ));
        turn_away(turning_away, arrival.established);
        return;
    }
    // Not a member yet: it joins when its HELLO says it accepted our key. Room for as many of
    // those as for members; the oldest makes way (a real dialer says HELLO within moments, or
    // while its user reads a question).
    let pending: Vec<u64> = members
        .iter()
        .filter(|(_, m)| !m.ready)
        .map(|(id, _)| *id)
        .collect();
    if pending.len() >= options.max_peers
        && let Some(oldest) = pending.first().and_then(|id| members.remove(id))
    {
        part(oldest);
    }
    *next_id += 1;
    members.insert(
        *next_id,
        admit(*next_id, arrival, options, host_name, events),
    );
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
