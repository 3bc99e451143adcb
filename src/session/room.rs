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
use super::keepalive::{Lapse, Silence};
use super::verify::PeerInfo;
use super::{LINGER, REFUSAL};
use crate::error::{Error, ProtocolError, Result};
use crate::fingerprint;
use crate::handshake::Established;
use crate::message::{MAX_BODY, MAX_RELAY_TEXT, Message};
use crate::signals::Interrupts;
use crate::transport::{RecvHalf, SendHalf};
use crate::ui::Ui;
use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::task::JoinHandle;

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
}

/// The default outbox: 1 MiB of queued messages per member.
pub const DEFAULT_OUTBOX_BYTES: usize = 1 << 20;

/// Messages queued for a writer are charged at least this much, so floods of tiny messages
/// are bounded too.
const MIN_CHARGE: usize = 64;

/// The writer sends at most this much in one write.
const BATCH_BYTES: usize = 64 * 1024;

/// The host's own input waits while a member's queue has no room for another message; a member
/// that stays that full this long is not reading and is disconnected.
pub const STUCK_AFTER: Duration = Duration::from_secs(10);

/// How often a waiting host checks whether the full queues have drained.
const RECHECK: Duration = Duration::from_millis(20);

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
    /// Never became a member (handshake failed, timed out, key refused…): one line.
    Failed(String),
}

/// What member tasks report.
enum Event {
    Said { id: u64, text: String },
    Left { id: u64, how: Result<String> },
}

/// A member's bounded queue of outgoing messages.
#[derive(Clone)]
struct Outbox {
    tx: mpsc::UnboundedSender<(Message<'static>, OwnedSemaphorePermit)>,
    budget: Arc<Semaphore>,
}

impl Outbox {
    /// Whether another message of any size fits.
    fn has_room(&self) -> bool {
        self.budget.available_permits() > MAX_BODY + MIN_CHARGE
    }

    /// Queues `msg`, or says the member is not keeping up.
    fn offer(&self, msg: Message<'static>) -> std::result::Result<(), ()> {
        let charge = msg.body_len().max(MIN_CHARGE);
        let charge = u32::try_from(charge).map_err(|_| ())?;
        let permit = self
            .budget
            .clone()
            .try_acquire_many_owned(charge)
            .map_err(|_| ())?;
        self.tx.send((msg, permit)).map_err(|_| ())
    }
}

struct Member {
    info: PeerInfo,
    address: String,
    outbox: Outbox,
    reader: JoinHandle<()>,
    writer: JoinHandle<Result<()>>,
    /// Since when its full queue has been holding up the host's input.
    full_since: Option<tokio::time::Instant>,
}

impl Member {
    fn tag(&self) -> String {
        format!(
            "{} ({})",
            self.info.label,
            fingerprint::short(&self.info.key)
        )
    }
}

/// Runs the room until the host quits (or, with `once`, until it empties after its first
/// member). `connections` delivers what the accept loop produced.
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
    loop {
        // The host reads its next line only when every member can take it: a big paste is
        // paced by the slowest member instead of piling up in memory. A member that holds the
        // host up for STUCK_AFTER is dropped as not reading.
        let host_may_speak = room_for_host(&mut members, ui);
        tokio::select! {
            Some(connection) = connections.recv() => match connection {
                Connection::Failed(line) => ui.warn(line),
                Connection::Arrived(arrival) if members.len() >= options.max_peers => {
                    ui.warn(format_args!(
                        "refused {} from {}: the room is full ({} of {})",
                        arrival.info.label, arrival.address, members.len(), options.max_peers
                    ));
                    tokio::spawn(turn_away(arrival.established));
                }
                Connection::Arrived(arrival) => {
                    next_id += 1;
                    had_members = true;
                    let joined = admit(next_id, *arrival, options, &events_tx, ui);
                    let tag = joined.tag();
                    broadcast(&mut members, None, &Message::Notice(format!("{tag} joined").into()), ui);
                    members.insert(next_id, joined);
                    ui.status(format_args!("{tag} joined ({} in the room)", members.len()));
                }
            },
            Some(event) = events.recv() => match event {
                Event::Said { id, text } => {
                    if let Err(e) = said(&mut members, id, &text, ui) {
                        last = Err(e);
                        break;
                    }
                }
                Event::Left { id, how } => {
                    let Some(member) = members.remove(&id) else { continue };
                    let speaker = member.info.speaker();
                    match &how {
                        Ok(reason) => ui.left(&speaker, reason),
                        Err(e) => ui.error(format_args!(
                            "session with {} ({}) ended: {e}",
                            member.tag(),
                            member.address
                        )),
                    }
                    let notice = format!("{} left", member.tag());
                    part(member, how.is_ok());
                    broadcast(&mut members, None, &Message::Notice(notice.into()), ui);
                    last = how.map(|_| ());
                    if members.is_empty() {
                        if options.once {
                            break;
                        }
                        ui.status("the room is empty; waiting for the next peer");
                    }
                }
            },
            event = input.next(), if host_may_speak => {
                if let Some(end) = host_input(event, &mut members, input, ui) {
                    last = end;
                    break;
                }
            }
            () = tokio::time::sleep(RECHECK), if !host_may_speak => {}
            name = interrupts.recv() => {
                ui.status(format_args!("{name}; closing the room"));
                last = Ok(());
                break;
            }
        }
        if options.once && had_members && members.is_empty() {
            break;
        }
    }
    close(members).await;
    last
}

/// Starts a member's reader and writer and sends its WELCOME.
fn admit<R, W>(
    id: u64,
    arrival: Arrival<R, W>,
    options: &RoomOptions,
    events: &mpsc::Sender<Event>,
    ui: &Ui,
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
    ui.status(format_args!(
        "secure session with {address}; peer fingerprint: {}",
        fingerprint::grouped(&info.key)
    ));
    ui.status(format_args!("peer: {}", info.trust_line()));
    ui.status(format_args!("safety number: {}", info.safety));
    ui.connected(&info.speaker(), &info.safety.grouped(), Some(&address));
    let Established { recv, send, .. } = established;
    let (tx, rx) = mpsc::unbounded_channel();
    let budget = Arc::new(Semaphore::new(options.outbox_bytes.max(MAX_BODY + 1)));
    let outbox = Outbox { tx, budget };
    let writer = tokio::spawn(member_writer(send, rx));
    let reader = tokio::spawn(member_reader(
        id,
        recv,
        events.clone(),
        outbox.clone(),
        options.keepalive,
    ));
    let member = Member {
        info,
        address,
        outbox,
        reader,
        writer,
        full_since: None,
    };
    let _ = member
        .outbox
        .offer(Message::Welcome(options.welcome.clone().into()));
    member
}

/// Whether every member's queue has room for another message from the host; members that have
/// been full for [`STUCK_AFTER`] are disconnected on the way.
fn room_for_host(members: &mut BTreeMap<u64, Member>, ui: &Ui) -> bool {
    let now = tokio::time::Instant::now();
    let mut stuck = Vec::new();
    let mut all_have_room = true;
    for (id, member) in members.iter_mut() {
        if member.outbox.has_room() {
            member.full_since = None;
            continue;
        }
        all_have_room = false;
        let since = *member.full_since.get_or_insert(now);
        if now.duration_since(since) >= STUCK_AFTER {
            stuck.push(*id);
        }
    }
    if !stuck.is_empty() {
        disconnect_slow(members, stuck, ui);
        return room_for_host(members, ui);
    }
    all_have_room
}

/// A member said something: show it, relay it to everyone else.
fn said(members: &mut BTreeMap<u64, Member>, id: u64, text: &str, ui: &Ui) -> Result<()> {
    let Some(member) = members.get(&id) else {
        return Ok(());
    };
    ui.message(&member.info.speaker(), text)
        .map_err(|e| Error::io("writing to stdout", e))?;
    if text.len() > MAX_RELAY_TEXT {
        let _ = member.outbox.offer(Message::Notice(
            format!(
                "your message of {} bytes was shown to the host but is too long to relay \
                 (limit {MAX_RELAY_TEXT} bytes)",
                text.len()
            )
            .into(),
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
        .filter(|(id, _)| Some(**id) != except)
        .filter(|(_, m)| m.outbox.offer(msg.clone()).is_err())
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
        part(member, false);
        let notice = Message::Notice(format!("{tag} was disconnected: not keeping up").into());
        // Recursion is bounded: every level removes a member.
        broadcast(members, None, &notice, ui);
    }
}

/// Lets a member go: after its QUIT the writer finishes what is queued and closes; otherwise
/// (error, too slow) both tasks are stopped at once, which closes the connection.
fn part(member: Member, gracefully: bool) {
    let Member {
        outbox,
        reader,
        writer,
        ..
    } = member;
    drop(outbox);
    reader.abort();
    if !gracefully {
        writer.abort();
    }
}

/// The host typed something.
fn host_input(
    event: InputEvent,
    members: &mut BTreeMap<u64, Member>,
    input: &mut Input,
    ui: &Ui,
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
        // End of input closes the room, as `quit` does.
        InputEvent::Eof | InputEvent::Interrupted => return Some(Ok(())),
        InputEvent::Failed(e) => {
            ui.error(format_args!("reading input failed: {e}"));
            return Some(Ok(()));
        }
    };
    match command::parse(&line) {
        Command::Say(text) => say(members, None, text, ui),
        Command::Me(action) => say(members, None, &format!("/me {action}"), ui),
        Command::Msg(name, text) => match find(members, name) {
            Ok(id) => say(members, Some(id), text, ui),
            Err(why) => ui.warn(why),
        },
        Command::Who => {
            if members.is_empty() {
                ui.status("nobody is in the room");
            }
            for m in members.values() {
                ui.status(format_args!(
                    "{} from {} — {}",
                    m.tag(),
                    m.address,
                    m.info.trust_line()
                ));
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
                for row in info.safety.lines() {
                    ui.status(format_args!("    {row}"));
                }
            }
            Err(why) => ui.warn(why),
        },
        Command::Clear => input.clear_screen(),
        Command::Help => ui.status(command::HELP),
        Command::Quit => return Some(Ok(())),
        Command::Unknown(word) => ui.warn(format_args!(
            "unknown command /{word} (nothing sent; /help lists commands, //{word} sends it as text)"
        )),
    }
    None
}

/// The host's own words: to everyone, or to one member.
fn say(members: &mut BTreeMap<u64, Member>, to: Option<u64>, text: &str, ui: &Ui) {
    if members.is_empty() {
        ui.warn("nobody is in the room; nothing was sent");
        return;
    }
    let msg = Message::Text(text.to_owned().into());
    match to {
        None => {
            ui.own(text);
            broadcast(members, None, &msg, ui);
        }
        Some(id) => {
            let Some(member) = members.get(&id) else {
                return;
            };
            ui.own(&format!("(to {}) {text}", member.info.label));
            if member.outbox.offer(msg).is_err() {
                disconnect_slow(members, vec![id], ui);
            }
        }
    }
}

/// The member called `name`: its petname/label, or a prefix of its fingerprint (4+ digits).
fn find(members: &BTreeMap<u64, Member>, name: &str) -> std::result::Result<u64, String> {
    let by_label: Vec<u64> = members
        .iter()
        .filter(|(_, m)| {
            m.info.label == name || m.info.entry.as_ref().is_some_and(|e| e.name == name)
        })
        .map(|(id, _)| *id)
        .collect();
    let matches = if by_label.is_empty() && name.len() >= 4 {
        let prefix = name.to_ascii_lowercase();
        members
            .iter()
            .filter(|(_, m)| m.info.key.to_hex().starts_with(&prefix))
            .map(|(id, _)| *id)
            .collect()
    } else {
        by_label
    };
    match matches.as_slice() {
        [id] => Ok(*id),
        [] => Err(format!(
            "nobody called {name:?} is in the room (/who lists them)"
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
        None if members.len() > 1 => {
            Err("several members are here: name one (/who lists them)".into())
        }
        None => members
            .keys()
            .next()
            .copied()
            .ok_or_else(|| "nobody is in the room".to_string()),
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
        if outbox.offer(Message::Quit("".into())).is_err() {
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

/// A member the room has no place for: QUIT, hang up.
async fn turn_away<R, W>(established: Established<R, W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    super::refuse(established, "busy: the room is full").await;
}

/// Sends a member's queue, many messages per write when they pile up.
async fn member_writer<W: AsyncWrite + Unpin>(
    mut send: SendHalf<W>,
    mut queue: mpsc::UnboundedReceiver<(Message<'static>, OwnedSemaphorePermit)>,
) -> Result<()> {
    while let Some((msg, _permit)) = queue.recv().await {
        send.queue(&msg)?;
        while !send.quit_sent() && send.queued() < BATCH_BYTES {
            match queue.try_recv() {
                Ok((msg, _permit)) => send.queue(&msg)?,
                Err(_) => break,
            }
        }
        send.flush().await?;
        if send.quit_sent() {
            break;
        }
    }
    send.close().await
}

/// Reads a member: its words go to the host; PINGs are answered; silence is noticed.
async fn member_reader<R: AsyncRead + Unpin>(
    id: u64,
    mut recv: RecvHalf<R>,
    events: mpsc::Sender<Event>,
    outbox: Outbox,
    keepalive: Duration,
) {
    let mut silence = Silence::new(keepalive);
    let how: Result<String> = loop {
        let received = tokio::select! {
            received = recv.recv() => received,
            lapse = silence.lapse() => match lapse {
                Lapse::Ping => {
                    let _ = outbox.offer(Message::Ping(Vec::new().into()));
                    continue;
                }
                Lapse::Gone(e) => break Err(e),
            }
        };
        silence.heard();
        match received {
            Ok(Some(Message::Text(text))) => {
                let text = text.into_owned();
                // Waits only if the host is far behind: then this member is paused, not lost.
                if events.send(Event::Said { id, text }).await.is_err() {
                    return;
                }
            }
            Ok(Some(Message::Quit(reason))) => break Ok(reason.into_owned()),
            Ok(Some(Message::Ping(body))) => {
                let _ = outbox.offer(Message::Pong(body.into_owned().into()));
            }
            Ok(Some(Message::Pong(_) | Message::Rekey | Message::Extension { .. })) => {}
            Ok(Some(other)) => {
                break Err(ProtocolError::Unexpected(other.name(), "from a room member").into());
            }
            Ok(None) => break Err(Error::ConnectionCut),
            Err(e) => break Err(e),
        }
    };
    let _ = events.send(Event::Left { id, how }).await;
}

/// Refuses an admitted-but-unwanted connection the way [`super::converse`] does.
pub async fn refuse<R, W>(established: Established<R, W>)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    super::refuse(established, REFUSAL).await;
}
