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
use std::collections::{BTreeMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use super::member::DEFAULT_RATE;

/// How the room behaves.
#[derive(Debug, Clone)]
pub struct RoomOptions {
    /// Sent to each member first.
    pub welcome: String,
    /// Members at once; more are refused with a QUIT.
    pub max_peers: usize,
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

/// How long a departed member's writer may finish its queue before its socket is closed.
pub const DEPARTURE_GRACE: Duration = Duration::from_secs(3);

/// A connection that finished its handshake and was admitted.
pub struct Arrival<R, W> {
    pub established: Established<R, W>,
    pub info: PeerInfo,
    pub address: String,
}

/// What a connection task reports to the room.
pub enum Connection<R, W> {
    /// Admitted: wants to join.
    Arrived(Box<Arrival<R, W>>),
    /// An unknown key at a host who is at a terminal: it knocks, the host answers.
    Knock(Box<Arrival<R, W>>),
    /// Never became a member (handshake failed, timed out, key refused…): one line.
    Failed(String),
}

struct Member {
    info: PeerInfo,
    address: String,
    outbox: Outbox,
    reader: JoinHandle<()>,
    writer: JoinHandle<Result<()>>,
    /// Its HELLO has arrived: it accepted our key and is in the room.
    ready: bool,
    /// The display name it announced and we accepted (empty: none).
    name: String,
    /// When its name last changed (one change per [`RENAME_EVERY`]).
    renamed: Option<Instant>,
}

/// A member may change its display name once per this long: each change is announced to
/// everyone, so a loop of renames would be a flood.
const RENAME_EVERY: Duration = Duration::from_secs(10);

impl Member {
    /// Its label with its short fingerprint, once (an unverified label already has it).
    fn tag(&self) -> String {
        let short = fingerprint::short(&self.info.key);
        if self.info.label.contains(&short) {
            self.info.label.clone()
        } else {
            format!("{} ({short})", self.info.label)
        }
    }

    /// How notices name it.
    fn entry(&self) -> Entry<'static> {
        Entry {
            key: *self.info.key.as_bytes(),
            name: self.name.clone().into(),
        }
    }
}

/// After any change of names or members: forget the names of those gone, learn the petnames
/// given meanwhile, and label everyone anew (a name may collide, or stop colliding).
fn relabel(members: &mut BTreeMap<u64, Member>, names: &mut Names) {
    let present: Vec<PublicKey> = members
        .values()
        .filter(|m| m.ready)
        .map(|m| m.info.key)
        .collect();
    names.retain(&present);
    for m in members.values() {
        if let Some(entry) = &m.info.entry {
            names.set_petname(m.info.key, entry.name.clone());
        }
        if m.ready && !m.name.is_empty() {
            let _ = names.announce(m.info.key, &m.name);
        }
    }
    for m in members.values_mut() {
        m.info.label = names.label(&m.info.key);
    }
}

/// A notice of `event`, worded `text`.
fn notice(event: NoticeEvent<'static>, text: String) -> Message<'static> {
    Message::Notice(Notice {
        event,
        text: text.into(),
    })
}

/// Why a member left, for its LEAVE notice.
fn leave_reason(how: &Result<String>) -> Reason {
    match how {
        Ok(_) => Reason::Quit,
        Err(e) => match Departure::of(e) {
            Departure::Quit => Reason::Quit,
            Departure::Cut => Reason::Cut,
            Departure::Refused => Reason::Refused,
            Departure::Timeout => Reason::Timeout,
            Departure::Error => Reason::Error,
        },
    }
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
    let mut churn = Churn::new();
    let mut input_open = true;
    let turning_away = Arc::new(Semaphore::new(TURNING_AWAY));
    let mut knocks = Knocks::new();
    // The oldest knock changed: show it (and its question) once the select is over.
    let mut ask_knock = false;
    loop {
        tokio::select! {
            Some(connection) = connections.recv() => match connection {
                Connection::Failed(line) => ui.warn(line),
                Connection::Knock(arrival) => ask_knock |= knocks.knock(*arrival),
                Connection::Arrived(arrival) => {
                    enter(&mut members, &mut next_id, *arrival, options, &host_name, &events_tx, ui, &turning_away);
                }
            },
            () = tokio::time::sleep_until(knocks.due()), if !knocks.is_empty() => {
                ask_knock |= knocks.expire(ui);
            }
            Some(event) = events.recv() => match event {
                Event::Ready { id, name } => {
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
                    let info = &member.info;
                    if loud {
                        ui.status(format_args!(
                            "secure session with {}; peer fingerprint: {}",
                            member.address,
                            fingerprint::grouped(&info.key)
                        ));
                        ui.status(format_args!("peer: {}", info.trust_line()));
                        ui.status(format_args!("safety number: {}", info.safety()));
                    }
                    ui.connected(&info.speaker(), &info.safety().grouped(), Some(&member.address));
                    if loud {
                        let joined = notice(
                            NoticeEvent::Join(member.entry()),
                            format!("{} joined", names.public_label(&member.info.key)),
                        );
                        broadcast(&mut members, Some(id), &joined, ui);
                        let here = members.values().filter(|m| m.ready).count();
                        ui.status(format_args!("{tag} joined ({here} in the room)"));
                    }
                }
                Event::Who { id } => {
                    let roster = roster(&members, id, &names);
                    if let Some(member) = members.get(&id) {
                        let _ = member.outbox.offer(roster);
                    }
                }
                Event::Nick { id, name } => rename(&mut members, id, &name, &mut names, ui),
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
                        part(member, false);
                        continue;
                    }
                    let loud = churn.announce(false);
                    let speaker = member.info.speaker();
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
                    part(member, how.is_ok());
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
            () = tokio::time::sleep_until(churn.due()), if churn.held_back() => {
                let line = churn.summary(members.values().filter(|m| m.ready).count());
                ui.status(&line);
                broadcast(&mut members, None, &notice(NoticeEvent::Text, line), ui);
            }
            event = input.next(), if input_open => {
                // A knock is waiting: the line is the host's answer to it.
                if !knocks.is_empty() && let InputEvent::Line(answer) = &event {
                    if let Some(arrival) = knocks.answer(answer, &options.trust, ui) {
                        enter(&mut members, &mut next_id, arrival, options, &host_name, &events_tx, ui, &turning_away);
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
                let host = Host { key: &options.key, name: &mut host_name, names: &mut names };
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
        if std::mem::take(&mut ask_knock) {
            knocks.ask(ui, input);
        }
        if options.once && had_members && members.is_empty() {
            break;
        }
    }
    input.set_prompt(None);
    close(members).await;
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
        part(oldest, false);
    }
    *next_id += 1;
    members.insert(
        *next_id,
        admit(*next_id, arrival, options, host_name, events),
    );
}

/// The room as member `to` is told it: who else is there, as the host knows them.
fn roster(members: &BTreeMap<u64, Member>, to: u64, names: &Names) -> Message<'static> {
    let others: Vec<&Member> = members
        .iter()
        .filter(|(id, m)| m.ready && **id != to)
        .map(|(_, m)| m)
        .collect();
    let labels: Vec<String> = others
        .iter()
        .map(|m| names.public_label(&m.info.key))
        .collect();
    let text = if others.is_empty() {
        "in the room: you and the host".into()
    } else {
        format!(
            "in the room: you, the host, and {} other(s): {}",
            others.len(),
            labels.join(", ")
        )
    };
    notice(
        NoticeEvent::Roster(others.iter().map(|m| m.entry()).collect()),
        text,
    )
}

/// A member asked for a new display name: accepted and announced to all (the member too, as
/// its confirmation), or refused to it alone, with the reason.
fn rename(members: &mut BTreeMap<u64, Member>, id: u64, name: &str, names: &mut Names, ui: &Ui) {
    let Some(member) = members.get_mut(&id) else {
        return;
    };
    let refusal = match names::check_name(name) {
        Err(why) if !name.is_empty() => Some(why),
        _ if member.renamed.is_some_and(|at| at.elapsed() < RENAME_EVERY) => {
            Some("one name change per 10 seconds")
        }
        _ => None,
    };
    if let Some(why) = refusal {
        let refused = Entry {
            key: *member.info.key.as_bytes(),
            name: name.to_owned().into(),
        };
        let _ = member
            .outbox
            .offer(notice(NoticeEvent::Refused(refused), why.into()));
        return;
    }
    let (old, old_public) = (member.tag(), names.public_label(&member.info.key));
    member.name = name.to_owned();
    member.renamed = Some(Instant::now());
    let key = member.info.key;
    names.forget(&key);
    relabel(members, names);
    let Some(member) = members.get(&id) else {
        return;
    };
    let new = member.tag();
    if old == new {
        ui.status(format_args!(
            "{old} now calls itself {}",
            sanitize::line(name)
        ));
    } else {
        ui.status(format_args!("{old} is now {new}"));
    }
    let text = format!("{old_public} is now {}", names.public_label(&key));
    broadcast(
        members,
        None,
        &notice(NoticeEvent::Rename(member.entry()), text),
        ui,
    );
}

/// How long a knock waits for the host's answer.
pub const KNOCK_WAIT: Duration = Duration::from_secs(60);

/// Knocks waiting at once; more are turned away.
const MAX_KNOCKS: usize = 8;

/// Unknown dialers waiting for the host at the terminal to let them in, oldest first.
struct Knocks<R, W> {
    queue: VecDeque<(Arrival<R, W>, Instant)>,
}

impl<R, W> Knocks<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    fn new() -> Self {
        Knocks {
            queue: VecDeque::new(),
        }
    }

    fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// When the oldest knock has waited long enough.
    fn due(&self) -> Instant {
        self.queue
            .front()
            .map_or_else(Instant::now, |(_, since)| *since + KNOCK_WAIT)
    }

    /// A new knock, queued; `true` when it is the one to ask about now. The same key knocking
    /// again while it waits, or too many knocks at once, is turned away without a word to the
    /// host (repeats cannot flood the screen).
    fn knock(&mut self, arrival: Arrival<R, W>) -> bool {
        let again = self
            .queue
            .iter()
            .any(|(a, _)| a.info.key == arrival.info.key);
        if again || self.queue.len() >= MAX_KNOCKS {
            tokio::spawn(refuse(arrival.established));
            return false;
        }
        self.queue.push_back((arrival, Instant::now()));
        self.queue.len() == 1
    }

    /// Shows the oldest knock and asks about it.
    fn ask(&self, ui: &Ui, input: &mut Input) {
        let Some((arrival, _)) = self.queue.front() else {
            input.set_prompt(None);
            return;
        };
        let info = &arrival.info;
        ui.status(format_args!(
            "knock: {} from {} is not in known_peers and asks to join",
            info.label, arrival.address
        ));
        ui.status(format_args!(
            "  fingerprint:   {}",
            fingerprint::grouped(&info.key)
        ));
        ui.status(format_args!("  safety number: {}", info.safety()));
        ui.status(
            "compare the safety number with them (read it aloud), then answer: y admits, n \
             refuses, a petname admits and remembers them",
        );
        input.set_prompt(Some(&format!(
            "admit {}? [y]es / [n]o / petname: ",
            info.label
        )));
    }

    /// The host's answer to the oldest knock; the arrival to let in, if admitted.
    fn answer(&mut self, answer: &str, trust: &TrustConfig, ui: &Ui) -> Option<Arrival<R, W>> {
        let (mut arrival, _) = self.queue.pop_front()?;
        let answer = answer.trim();
        let admitted = match answer.to_ascii_lowercase().as_str() {
            "y" | "yes" => true,
            "" | "n" | "no" => false,
            _ => match name_peer(trust, &mut arrival.info, answer) {
                Ok(name) => {
                    ui.status(format_args!(
                        "remembered as {name:?} (trusted on first use, not verified)"
                    ));
                    true
                }
                Err(why) => {
                    ui.warn(format_args!("{why}: answer again"));
                    self.queue.push_front((arrival, Instant::now()));
                    return None;
                }
            },
        };
        if !admitted {
            ui.status(format_args!(
                "refused {} from {}",
                arrival.info.label, arrival.address
            ));
            tokio::spawn(refuse(arrival.established));
            return None;
        }
        Some(arrival)
    }

    /// The oldest knock waited too long: refused. `true` when another is to be asked about.
    fn expire(&mut self, ui: &Ui) -> bool {
        let waited = self
            .queue
            .front()
            .is_some_and(|(_, since)| since.elapsed() >= KNOCK_WAIT);
        if !waited {
            return false;
        }
        if let Some((arrival, _)) = self.queue.pop_front() {
            ui.warn(format_args!(
                "refused {} from {}: no answer within {} s",
                arrival.info.label,
                arrival.address,
                KNOCK_WAIT.as_secs()
            ));
            tokio::spawn(refuse(arrival.established));
        }
        true
    }
}

/// Stores `info`'s key under `name` in known_peers (a new entry, or a new petname for the
/// key's existing one, decided under the store's lock) and shows the peer by it from now on.
fn name_peer(
    trust: &TrustConfig,
    info: &mut PeerInfo,
    name: &str,
) -> std::result::Result<String, String> {
    use crate::trust::{Entry, TrustError, Verified};
    crate::trust::validate_name(name).map_err(|e| e.to_string())?;
    let key = info.key;
    let entry = trust
        .store
        .update(|peers| {
            match peers.by_key(&key).map(|e| e.name.clone()) {
                Some(old) => peers.rename(&old, name)?,
                None => peers.add(Entry::new(name, key, Verified::FirstUse))?,
            }
            peers
                .by_key(&key)
                .cloned()
                .ok_or_else(|| TrustError::NoMatch(key.to_hex()))
        })
        .map_err(|e| e.to_string())?;
    info.label = entry.name.clone();
    info.entry = Some(entry);
    Ok(info.label.clone())
}

/// Starts a member's reader and writer and sends our HELLO. It is not welcomed, announced or
/// sent room traffic until its own HELLO arrives: see [`Event::Ready`].
fn admit<R, W>(
    id: u64,
    arrival: Arrival<R, W>,
    options: &RoomOptions,
    host_name: &str,
    events: &mpsc::Sender<Event>,
) -> Member
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Arrival {
        established,
        mut info,
        address,
    } = arrival;
    info.address = Some(address.clone());
    let Established { recv, send, .. } = established;
    let (outbox, queue) = Outbox::new(options.outbox_bytes);
    let writer = tokio::spawn(member::writer(send, queue));
    let reader = tokio::spawn(member::reader(
        id,
        recv,
        events.clone(),
        outbox.clone(),
        options.keepalive,
        options.rate,
        options.hello_within,
    ));
    // WELCOME waits for its HELLO: then it is in, and a dialer that sees WELCOME knows the
    // room has counted it (a script may speak at once).
    let _ = outbox.offer(Message::hello(message::Mode::Chat, host_name.to_owned()));
    Member {
        info,
        address,
        outbox,
        reader,
        writer,
        ready: false,
        name: String::new(),
        renamed: None,
    }
}

/// A member said something: show it, relay it to everyone else.
fn said(members: &mut BTreeMap<u64, Member>, id: u64, text: &str, ui: &Ui) -> Result<()> {
    let Some(member) = members.get(&id) else {
        return Ok(());
    };
    ui.message(&member.info.speaker(), text)
        .map_err(|e| Error::io("writing to stdout", e))?;
    if text.len() > MAX_RELAY_TEXT {
        let _ = member.outbox.offer(notice(
            NoticeEvent::Text,
            format!(
                "your message of {} bytes was shown to the host but is too long to relay \
                 (limit {MAX_RELAY_TEXT} bytes)",
                text.len()
            ),
        ));
        return Ok(());
    }
    let relay = Message::Relay {
        origin: *member.info.key.as_bytes(),
        text: text.to_owned().into(),
    };
    broadcast(members, Some(id), &relay, ui);
    Ok(())
}

/// Offers `msg` to every member except `except`; members that cannot take it are disconnected.
fn broadcast(
    members: &mut BTreeMap<u64, Member>,
    except: Option<u64>,
    msg: &Message<'static>,
    ui: &Ui,
) {
    let slow: Vec<u64> = members
        .iter()
        .filter(|(id, m)| m.ready && Some(**id) != except)
        .filter(|(_, m)| m.outbox.offer(msg.clone()) == Offer::Full)
        .map(|(id, _)| *id)
        .collect();
    disconnect_slow(members, slow, ui);
}

fn disconnect_slow(members: &mut BTreeMap<u64, Member>, slow: Vec<u64>, ui: &Ui) {
    for id in slow {
        let Some(member) = members.remove(&id) else {
            continue;
        };
        let tag = member.tag();
        ui.warn(format_args!(
            "{tag} is not keeping up (its queue is full): disconnected"
        ));
        let left = notice(
            NoticeEvent::Leave(member.entry(), Reason::Timeout),
            format!("{tag} was disconnected: not keeping up"),
        );
        part(member, false);
        // Recursion is bounded: every level removes a member.
        broadcast(members, None, &left, ui);
    }
}

/// Lets a member go: after its QUIT the writer gets [`DEPARTURE_GRACE`] to finish what is
/// queued and close; otherwise (error, too slow), or when the grace runs out (a member that
/// said QUIT and stopped reading), both tasks are stopped, which closes the connection.
fn part(member: Member, gracefully: bool) {
    let Member {
        outbox,
        reader,
        mut writer,
        ..
    } = member;
    drop(outbox);
    reader.abort();
    if !gracefully {
        writer.abort();
        return;
    }
    tokio::spawn(async move {
        if tokio::time::timeout(DEPARTURE_GRACE, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    });
}

/// The host typed something.
fn host_input(
    event: InputEvent,
    members: &mut BTreeMap<u64, Member>,
    input: &mut Input,
    ui: &Ui,
    trust: &TrustConfig,
    host: Host<'_>,
) -> Option<Result<()>> {
    let line = match event {
        InputEvent::Line(line) => line,
        InputEvent::TooLong => {
            ui.warn(format_args!(
                "line not sent: longer than {MAX_BODY} bytes, the most one message can carry"
            ));
            return None;
        }
        InputEvent::NotUtf8 => {
            ui.warn("line not sent: it is not valid UTF-8 text");
            return None;
        }
        // Ctrl-C at the line editor closes the room, as `quit` does. (End of input is handled
        // by the caller: the room stays open.)
        InputEvent::Interrupted | InputEvent::Eof | InputEvent::Failed(_) => return Some(Ok(())),
    };
    match command::parse(&line) {
        Command::Say(text) => say(members, None, text, ui),
        Command::Me(action) => say(members, None, &format!("/me {action}"), ui),
        Command::Name(name, petname) => match find(members, name) {
            Ok(id) => {
                let member = members.get_mut(&id)?;
                let before = member.tag();
                match name_peer(trust, &mut member.info, petname) {
                    Ok(name) => {
                        ui.status(format_args!("{before} is now known as {name:?}"));
                        relabel(members, host.names);
                    }
                    Err(why) => ui.warn(format_args!("not named: {why}")),
                }
            }
            Err(why) => ui.warn(why),
        },
        Command::Msg(name, text) => match find(members, name) {
            Ok(id) => say(members, Some(id), text, ui),
            Err(why) => ui.warn(why),
        },
        Command::Who => {
            if !members.values().any(|m| m.ready) {
                ui.status("nobody is in the room");
            }
            for m in members.values().filter(|m| m.ready) {
                // One line per member, its name once.
                let verified = match &m.info.entry {
                    Some(e) => format!("{} ({})", e.how.describe(), e.when),
                    None => "not in known_peers".into(),
                };
                ui.status(format_args!("{} from {} — {verified}", m.tag(), m.address));
            }
        }
        Command::Whois(name) => match pick(members, name) {
            Ok(id) => {
                for line in members[&id].info.describe() {
                    ui.status(line);
                }
            }
            Err(why) => ui.warn(why),
        },
        Command::Verify(name) => match pick(members, name) {
            Ok(id) => {
                let info = &members[&id].info;
                ui.status(format_args!("safety number with {}:", info.label));
                for row in info.safety().lines() {
                    ui.status(format_args!("    {row}"));
                }
            }
            Err(why) => ui.warn(why),
        },
        Command::Nick(name) => match names::check_name(name) {
            Err(why) => ui.warn(format_args!("/nick {}: {why}", sanitize::line(name))),
            Ok(()) => {
                name.clone_into(host.name);
                ui.status(format_args!(
                    "members now see you as {name} [{}]",
                    fingerprint::short(host.key)
                ));
                let entry = Entry {
                    key: *host.key.as_bytes(),
                    name: name.to_owned().into(),
                };
                let renamed = notice(NoticeEvent::Rename(entry), format!("the host is now {name}"));
                broadcast(members, None, &renamed, ui);
            }
        },
        Command::Clear => input.clear_screen(),
        Command::Help => {
            ui.listing(command::HELP);
        }
        Command::Quit => {
            ui.status("you closed the room");
            return Some(Ok(()));
        }
        Command::Unknown(word) => ui.warn(format_args!(
            "unknown command /{word} (nothing sent; /help lists commands, //{word} sends it as text)"
        )),
    }
    None
}

/// The host, as `/nick` changes it.
struct Host<'a> {
    key: &'a PublicKey,
    /// Its display name (empty: none).
    name: &'a mut String,
    /// Everyone's labels.
    names: &'a mut Names,
}

/// The host's own words: to everyone, or to one member.
fn say(members: &mut BTreeMap<u64, Member>, to: Option<u64>, text: &str, ui: &Ui) {
    if !members.values().any(|m| m.ready) {
        ui.warn("nobody is in the room; nothing was sent");
        return;
    }
    match to {
        None => {
            ui.own(text);
            broadcast(members, None, &Message::Text(text.to_owned().into()), ui);
        }
        Some(id) => {
            let Some(member) = members.get(&id) else {
                return;
            };
            ui.own_private(&member.tag(), text);
            // Marked as such: the member sees it was for it alone.
            let msg = Message::Private(text.to_owned().into());
            if member.outbox.offer(msg) == Offer::Full {
                disconnect_slow(members, vec![id], ui);
            }
        }
    }
}

/// Hex digits of a fingerprint prefix that names a member: 64 bits, far beyond what anyone can
/// grind a key to match (a 16-bit prefix takes seconds).
pub const MIN_PREFIX_DIGITS: usize = 16;

/// The member called `name`: its petname or label, or a fingerprint prefix of at least
/// [`MIN_PREFIX_DIGITS`] hex digits (spaces and colons allowed, as fingerprints are shown).
fn find(members: &BTreeMap<u64, Member>, name: &str) -> std::result::Result<u64, String> {
    let members = members.iter().filter(|(_, m)| m.ready);
    let by_label: Vec<u64> = members
        .clone()
        .filter(|(_, m)| {
            m.info.label == name
                || m.info.entry.as_ref().is_some_and(|e| e.name == name)
                || (!m.name.is_empty() && m.name.eq_ignore_ascii_case(name))
        })
        .map(|(id, _)| *id)
        .collect();
    let prefix: String = name
        .chars()
        .filter(|c| !matches!(c, ' ' | ':'))
        .collect::<String>()
        .to_ascii_lowercase();
    let is_prefix =
        prefix.len() >= MIN_PREFIX_DIGITS && prefix.chars().all(|c| c.is_ascii_hexdigit());
    let matches = if by_label.is_empty() && is_prefix {
        members
            .filter(|(_, m)| m.info.key.to_hex().starts_with(&prefix))
            .map(|(id, _)| *id)
            .collect()
    } else {
        by_label
    };
    let name = crate::sanitize::line(name);
    match matches.as_slice() {
        [id] => Ok(*id),
        [] => Err(format!(
            "nobody called {name:?} is in the room (/who lists them; a fingerprint needs at \
             least {MIN_PREFIX_DIGITS} hex digits)"
        )),
        _ => Err(format!(
            "{name:?} matches several members: use more of the fingerprint"
        )),
    }
}

/// `name`, or the only member when no name is given.
fn pick(members: &BTreeMap<u64, Member>, name: Option<&str>) -> std::result::Result<u64, String> {
    match name {
        Some(name) => find(members, name),
        None => {
            let mut ready = members.iter().filter(|(_, m)| m.ready).map(|(id, _)| *id);
            match (ready.next(), ready.next()) {
                (Some(id), None) => Ok(id),
                (Some(_), Some(_)) => {
                    Err("several members are here: name one (/who lists them)".into())
                }
                (None, _) => Err("nobody is in the room".into()),
            }
        }
    }
}

/// Ends the room: QUIT to everyone, then give each member a moment to hang up (so our QUIT is
/// not lost to a reset) before closing what is left.
async fn close(members: BTreeMap<u64, Member>) {
    let mut leaving = Vec::new();
    for (_, member) in members {
        let Member {
            outbox,
            reader,
            writer,
            ..
        } = member;
        if outbox.offer(Message::Quit("".into())) != Offer::Queued {
            writer.abort();
        }
        drop(outbox);
        leaving.push((reader, writer));
    }
    let all = async {
        for (reader, writer) in &mut leaving {
            let _ = writer.await;
            let _ = reader.await;
        }
    };
    let _ = tokio::time::timeout(LINGER, all).await;
    for (reader, writer) in leaving {
        reader.abort();
        writer.abort();
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
    let Ok(slot) = slots.clone().try_acquire_owned() else {
        return;
    };
    tokio::spawn(async move {
        super::refuse(established, "busy: the room is full").await;
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
