//! One conversation on one connection, over any byte stream: handshake, key check, welcome,
//! then full-duplex chat until someone says QUIT.
//!
//! Reading from the peer, reading the user's input and writing to the peer all proceed at
//! once: a `select!` loop owns the receiving half and the input, and a writer task owns the
//! sending half behind a bounded queue, so a slow network never stops us from receiving.

pub mod code;
pub mod command;
pub mod input;
pub mod keepalive;
pub mod member;
pub mod names;
pub mod opening;
pub mod pipe;
pub mod room;
mod room_view;
pub mod verify;

use crate::error::{Error, ProtocolError, Result};
use crate::fingerprint;
use crate::framed::Detach;
use crate::framed::{FrameReader, FrameWriter};
use crate::handshake::{self, Established};
use crate::keys::{Identity, PublicKey};
use crate::message::{MAX_BODY, Message, Mode};
use crate::sanitize;
use crate::signals::Interrupts;
use crate::transport::{RecvHalf, SendHalf};
use crate::trust::{Allow, Verified};
use crate::ui::{self, Departure, Ui};
use command::Command;
use input::{Input, InputEvent};
use keepalive::{Lapse, Silence};
use names::Names;
use opening::Opening;
use room_view::RoomView;
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;
use verify::{PeerInfo, TrustConfig, TrustPolicy};

/// The welcome a listener sends unless told otherwise.
pub const DEFAULT_WELCOME: &str = "Welcome to schat! Type `quit` to leave.";

/// The QUIT reason of a side that refuses the peer's key. The `refused:` prefix is how the
/// other side tells a refusal from an ordinary goodbye (PROTOCOL.md §3).
pub const REFUSAL: &str = "refused: your key was not accepted";

/// What a QUIT's reason says (PROTOCOL.md §5): empty is a goodbye; `refused:`, `busy:`,
/// `mismatch:` and `unanswered:` mean the session never started (nothing we sent was taken); anything else means
/// the peer gave up on the session (an abort: it did not end cleanly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitReason<'a> {
    Goodbye,
    Refused(&'a str),
    Aborted(&'a str),
}

impl<'a> QuitReason<'a> {
    /// Classifies a QUIT reason.
    pub fn of(reason: &'a str) -> Self {
        if reason.is_empty() {
            QuitReason::Goodbye
        } else if ["refused:", "busy:", "mismatch:", "unanswered:"]
            .iter()
            .any(|p| reason.starts_with(p))
        {
            QuitReason::Refused(reason)
        } else {
            QuitReason::Aborted(reason)
        }
    }

    /// The error this ending is for us, if any.
    pub fn error(self) -> Option<Error> {
        match self {
            QuitReason::Goodbye => None,
            QuitReason::Refused(why) => Some(Error::RefusedByPeer(
                crate::sanitize::line(why).into_owned(),
            )),
            QuitReason::Aborted(why) => {
                Some(Error::PeerAborted(crate::sanitize::line(why).into_owned()))
            }
        }
    }
}

/// How long we keep reading after our QUIT, so that it reaches the peer before we close.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// How long a dialer waits for WELCOME before it says what it is waiting for.
const WELCOME_NOTE: Duration = Duration::from_secs(1);

/// Messages waiting for the writer task.
const OUTGOING_QUEUE: usize = 32;

/// Which side of the connection we are.
#[derive(Debug, Clone)]
pub enum Role {
    /// We connected (Noise initiator) to `addr` (host:port as dialled); we expect a WELCOME
    /// first, and check the listener's key against known_peers under `policy`.
    Dialer { addr: String, policy: TrustPolicy },
    /// We accepted (Noise responder); we admit dialers per `allow` and send `welcome` first.
    Listener { welcome: String, allow: Allow },
}

/// Per-session settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// If set, the only peer key we accept.
    pub pin: Option<PublicKey>,
    /// Deadline for the whole handshake.
    pub handshake_timeout: Duration,
    /// Known peers.
    pub trust: TrustConfig,
    /// After this much silence from the peer we send a PING; after three times this, with
    /// nothing received, the peer is declared gone.
    pub keepalive: Duration,
    /// Pipe mode (raw bytes between stdin and stdout) instead of chat.
    pub pipe: Option<pipe::PipeOptions>,
    /// Our display name, announced in HELLO (empty: none; checked by [`names::check_name`]).
    pub name: String,
    /// Dialling with a ticket: its secret when it is an invite (sent in INVITE before our
    /// HELLO), the name the inviter suggested for itself, where to dial. `pin` holds its key.
    pub ticket: Option<TicketUse>,
    /// Dialling with a spoken code: the listener's key is accepted only once it proved the
    /// code (then remembered as verified by code).
    pub code: Option<crate::invite::code::Code>,
    /// Dialling a known peer by its petname: its entry (its key is then `pin`; another key
    /// answering is a key change, not a pin mismatch).
    pub petname: Option<crate::trust::Entry>,
}

/// A ticket being used by a dialer: an invite (with a secret), or an address.
#[derive(Clone)]
pub struct TicketUse {
    pub secret: Option<zeroize::Zeroizing<[u8; crate::invite::ticket::SECRET_LEN]>>,
    /// The inviter's suggestion for our petname for it.
    pub name: String,
    /// Where to dial: TCP addresses in order, and the iroh endpoint's parts.
    pub addrs: Vec<crate::invite::TicketAddr>,
    /// What known_peers keeps as its address when it has an iroh part: the ticket without
    /// its secret (so that `dial PETNAME` can use iroh again).
    pub reach: Option<String>,
}

impl std::fmt::Debug for TicketUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketUse")
            .field("secret", &self.secret.as_ref().map(|_| "(redacted)"))
            .field("name", &self.name)
            .field("addrs", &self.addrs)
            .finish()
    }
}

/// Keepalive interval unless configured.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

/// How a session ended without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// We said QUIT (typed `quit`, Ctrl-D, or a signal).
    LocalQuit,
    /// The peer said QUIT.
    PeerQuit,
}

/// Runs the handshake on a connected stream, within the configured deadline.
/// `Ok(None)` means the user interrupted it. A dialer's `check` sees the listener's key before
/// our own is sent (see [`handshake::initiate`]); a listener's is not called.
pub async fn establish<R, W>(
    reader: R,
    writer: W,
    identity: &Identity,
    role: &Role,
    settings: &Settings,
    interrupts: &mut Interrupts,
    check: impl FnOnce(&PublicKey) -> Result<()>,
) -> Result<Option<Established<R, W>>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (reader, writer) = (FrameReader::new(reader), FrameWriter::new(writer));
    let handshake = async {
        match role {
            Role::Dialer { .. } => handshake::initiate(identity, reader, writer, check).await,
            Role::Listener { .. } => handshake::respond(identity, reader, writer).await,
        }
    };
    within_deadline(handshake, settings.handshake_timeout, interrupts).await
}

/// A listener's handshake on an accepted stream, within the configured deadline, with its
/// admission control watching (see [`handshake::Watch`]).
pub async fn establish_watched<R, W>(
    reader: R,
    writer: W,
    identity: &Identity,
    settings: &Settings,
    watch: &impl handshake::Watch,
) -> Result<Established<R, W>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (reader, writer) = (FrameReader::new(reader), FrameWriter::new(writer));
    let handshake = handshake::respond_watched(identity, reader, writer, watch);
    let mut never = Interrupts::none();
    within_deadline(handshake, settings.handshake_timeout, &mut never)
        .await?
        .ok_or_else(|| Error::Internal("interrupted".into()))
}

async fn within_deadline<T>(
    handshake: impl std::future::Future<Output = Result<T>>,
    deadline: Duration,
    interrupts: &mut Interrupts,
) -> Result<Option<T>> {
    tokio::select! {
        result = tokio::time::timeout(deadline, handshake) => match result {
            Ok(established) => established.map(Some),
            Err(_) => Err(Error::Timeout("the handshake", deadline.as_secs())),
        },
        _ = interrupts.recv() => Ok(None),
    }
}

/// Everything after the handshake: decide about the peer's key, welcome, chat.
pub async fn converse<R, W>(
    established: Established<R, W>,
    remote: Option<&str>,
    role: &Role,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<Ended>
where
    R: AsyncRead + Unpin + Detach,
    W: AsyncWrite + Unpin + Detach + Send + 'static,
{
    let (peer, local) = (established.peer, established.local);
    let decision = match role {
        // A spoken code decides about a new key itself (below): no question, nothing stored yet.
        Role::Dialer { addr, .. } if settings.code.is_some() => {
            verify::dialled_for_code(peer, &local, addr, &settings.trust, ui)
        }
        // The question may wait for a long time: a signal meanwhile ends the dial at once,
        // with nothing sent (not even a QUIT) and nothing remembered.
        Role::Dialer { addr, policy } => {
            let deciding = verify::dialled(
                peer,
                &local,
                addr,
                settings.pin.as_ref(),
                *policy,
                &settings.trust,
                input,
                ui,
            );
            match tokio::select! {
                decided = deciding => decided,
                name = interrupts.recv() => Err(Error::Signalled(name)),
            } {
                Err(e @ Error::Signalled(_)) => return Err(e),
                decided => decided,
            }
        }
        Role::Listener { allow, .. } => {
            verify::admitted(peer, &local, settings.pin.as_ref(), allow, &settings.trust)
        }
    };
    let mut established = established;
    // A spoken code (the listener must prove it before anything else) or a ticket (the pin
    // matched) vouched for this key: remember it as verified that way.
    let vouched = match (role, &settings.code, &settings.ticket) {
        (Role::Dialer { addr, .. }, Some(code), _) if decision.is_ok() => {
            tokio::select! {
                proven = code::prove(&mut established, code, settings.handshake_timeout, ui) => proven?,
                name = interrupts.recv() => return Err(Error::Signalled(name)),
            }
            Some((
                addr,
                "",
                Verified::Code,
                "the code matched: the listener's key",
            ))
        }
        (Role::Dialer { addr, .. }, None, Some(ticket)) => Some((
            addr,
            ticket.name.as_str(),
            // A ticket without a secret is an address with a key: as good as `--peer KEY`.
            match ticket.secret {
                Some(_) => Verified::Invite,
                None => Verified::Pinned,
            },
            "the listener's key is the one in your ticket:",
        )),
        _ => None,
    };
    let decision = match (decision, vouched) {
        (Ok(mut info), Some((addr, name, how, said))) => {
            verify::record_inviter(&settings.trust, &peer, addr, name, how)
                .await
                .map(|entry| {
                    ui.status(format_args!(
                        "{said} {}; remembered as {:?}",
                        fingerprint::grouped(&peer),
                        entry.name
                    ));
                    info.label = entry.name.clone();
                    info.entry = Some(entry);
                    info
                })
        }
        (decision, _) => decision,
    };
    let mut info = match decision {
        Ok(info) => info,
        Err(e) => {
            refuse(established, REFUSAL).await;
            return Err(e);
        }
    };
    info.address = remote.map(str::to_owned);
    proceed(established, info, role, settings, input, ui, interrupts).await
}

/// The session with a peer we decided to talk to: say so, then pipe or chat.
pub async fn proceed<R, W>(
    established: Established<R, W>,
    info: PeerInfo,
    role: &Role,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<Ended>
where
    R: AsyncRead + Unpin + Detach,
    W: AsyncWrite + Unpin + Detach + Send + 'static,
{
    // Only now, with the peer's key accepted, is the session "established" for the user: a
    // refused key never gets this far.
    if ui.mode() == ui::Mode::Interactive {
        // One row: a new key's numbers were just shown with its question, a known one's are
        // a command away; the conversation comes next.
        ui.status(format_args!(
            "secure session established with {}; /verify shows the safety number",
            info.trust_line()
        ));
    } else {
        // Scripts and logs get the numbers on the record.
        ui.status(format_args!(
            "secure session established; peer fingerprint: {}",
            fingerprint::grouped(&info.key)
        ));
        ui.status(format_args!("peer: {}", info.trust_line()));
        // (Pipe mode has no commands to show it again.)
        let again = if settings.pipe.is_some() {
            ""
        } else {
            " (/verify shows it again)"
        };
        ui.status(format_args!("safety number: {}{again}", info.safety()));
    }
    ui.connected(
        &info.speaker(),
        &info.safety().grouped(),
        info.address.as_deref(),
    );
    if let Some(options) = settings.pipe {
        let listener = matches!(role, Role::Listener { .. });
        pipe::run(
            established,
            listener,
            settings.keepalive,
            options,
            ui,
            interrupts,
        )
        .await?;
        return Ok(Ended::LocalQuit);
    }
    chat(
        established,
        role,
        &info,
        Names::load(&settings.trust),
        &settings.name,
        settings.ticket.as_ref().and_then(|t| t.secret.clone()),
        settings.keepalive,
        settings.handshake_timeout,
        input,
        ui,
        interrupts,
    )
    .await
}

/// Says goodbye to a peer we will not talk to, without reading anything it sent.
pub(crate) async fn refuse<R, W>(established: Established<R, W>, reason: &str)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Established {
        mut recv, mut send, ..
    } = established;
    if send.quit(reason).await.is_ok() {
        let _ = tokio::time::timeout(LINGER, recv.drain()).await;
    }
}

/// What the chat loop does next.
enum Step {
    Continue,
    /// The peer said QUIT.
    PeerLeft,
    /// We leave, with this reason.
    Leave(&'static str),
    Fail(Error),
}

/// The full-duplex conversation.
#[allow(clippy::too_many_arguments)]
async fn chat<R, W>(
    established: Established<R, W>,
    role: &Role,
    peer: &PeerInfo,
    names: Names,
    our_name: &str,
    invite: Option<zeroize::Zeroizing<[u8; crate::invite::ticket::SECRET_LEN]>>,
    keepalive: Duration,
    welcome_within: Duration,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<Ended>
where
    R: AsyncRead + Unpin + Detach,
    W: AsyncWrite + Unpin + Detach + Send + 'static,
{
    let Established { mut recv, send, .. } = established;
    let speaker = peer.speaker();
    let (queue, outgoing) = mpsc::channel::<Message<'static>>(OUTGOING_QUEUE);
    let mut writer = tokio::spawn(write_loop(send, outgoing));
    let is_dialer = matches!(role, Role::Dialer { .. });
    let mut opening = Opening::new(is_dialer);
    let mut room = RoomView {
        is_dialer,
        names,
        us: *peer.local(),
        host: peer.key,
    };
    // An invite's secret goes first, before our HELLO (PROTOCOL.md §4.7).
    if let Some(secret) = invite {
        let _ = queue.send(Message::Invite(secret)).await;
    }
    // Our own name counts too: someone else taking it is marked on our screen as well.
    let _ = room.names.announce(room.us, our_name);
    // Our HELLO first: a dialer gets here only once it has accepted the listener's key.
    let _ = queue
        .send(Message::hello(Mode::Chat, our_name.to_owned()))
        .await;
    if let Role::Listener { welcome, .. } = role {
        let _ = queue.send(Message::Welcome(welcome.clone().into())).await;
    }
    // Lines typed but not yet accepted by the full queue. While one is pending we keep
    // receiving, so neither side can deadlock the other. A script's input is not read further
    // meanwhile (it would pile up); a person's editor still is, since it also shows what we
    // receive, and what a person types is small.
    let mut pending: VecDeque<String> = VecDeque::new();
    let typing = input.can_ask();
    // Keepalive: any message from the peer resets the timer; each lapse sends a PING, and
    // after three in a row without a word the peer is gone.
    let mut silence = Silence::new(keepalive);
    // A dialer whose input ended before the listener welcomed it: it leaves once the opening
    // is over (WELCOME, or a refusal), so that what it sent is known to have been taken. A
    // script that pipes one line in would otherwise say QUIT before the room counted it.
    let mut leave_once_open: Option<(&'static str, tokio::time::Instant)> = None;
    // A dialer the host does not welcome at once may be knocking: say what it waits for, once.
    let mut waiting_note = is_dialer.then(|| tokio::time::Instant::now() + WELCOME_NOTE);

    let step = loop {
        let step = tokio::select! {
            // Printing to the terminal blocks while the terminal is behind, so a flood
            // waits in the peer's socket, not in our memory.
            received = recv.recv() => {
                silence.heard();
                match received {
                    Ok(Some(msg)) => on_message(msg, &mut opening, &mut room, ui, &queue),
                    Ok(None) => Step::Fail(Error::ConnectionCut),
                    Err(e) => Step::Fail(e),
                }
            }
            lapse = silence.lapse() => match lapse {
                Lapse::Ping => {
                    // If the queue is full we are sending anyway; the PING can wait its turn.
                    let _ = queue.try_send(Message::Ping(Vec::new().into()));
                    Step::Continue
                }
                Lapse::Gone(e) => Step::Fail(e),
            },
            event = input.next(), if leave_once_open.is_none() && (pending.is_empty() || typing) => on_input(event, peer, input, ui, &mut pending, &queue, is_dialer),
            () = sleep_until_some(leave_once_open.map(|(_, by)| by)) => Step::Leave("end of input"),
            () = sleep_until_some(waiting_note.filter(|_| !opening.is_open())) => {
                waiting_note = None;
                ui.status(format_args!(
                    "waiting for {} to let you in (when it does not know your key, it asks its \
                     owner: {} s by default)",
                    crate::sanitize::line(&peer.label),
                    crate::session::room::KNOCK_WAIT.as_secs()
                ));
                Step::Continue
            }
            permit = queue.reserve(), if !pending.is_empty() => match (permit, pending.pop_front()) {
                (Ok(permit), Some(line)) => {
                    ui.own(our_name, &line);
                    permit.send(Message::Text(line.into()));
                    Step::Continue
                }
                _ => Step::Fail(writer_failure(&mut writer).await),
            },
            name = interrupts.recv() => Step::Leave(name),
            result = &mut writer => Step::Fail(match result {
                Ok(Err(e)) => e,
                _ => Error::Internal("the sending task stopped".into()),
            }),
        };
        let step = match step {
            Step::Leave(why @ "end of input") if is_dialer && !opening.is_open() => {
                if leave_once_open.is_none() {
                    leave_once_open = Some((why, tokio::time::Instant::now() + welcome_within));
                    Step::Continue
                } else {
                    // The listener never welcomed us in time: leave all the same.
                    Step::Leave(why)
                }
            }
            step => step,
        };
        if let (Some((why, _)), true) = (leave_once_open, opening.is_open()) {
            break Step::Leave(why);
        }
        if !matches!(step, Step::Continue) {
            break step;
        }
    };

    match step {
        // The peer left: what is queued goes out, then our side closes — within the write
        // deadline, since a peer that said QUIT and stopped reading would otherwise hold us
        // for ever (over iroh no TCP user timeout ends it either).
        Step::PeerLeft => {
            drop(queue);
            match tokio::time::timeout(member::WRITE_DEADLINE, &mut writer).await {
                Ok(_) => Ok(Ended::PeerQuit),
                Err(_) => {
                    writer.abort();
                    Err(Error::Timeout(
                        "sending what was typed after the peer said goodbye (it stopped \
                         reading, so it was not taken)",
                        member::WRITE_DEADLINE.as_secs(),
                    ))
                }
            }
        }
        // We leave: QUIT goes out after everything already queued; then wait for the peer to
        // close, so the QUIT is not lost to a reset.
        Step::Leave(why) => {
            ui.status(format_args!("{why}; leaving"));
            // Lines typed while the queue was full go out before the goodbye, or the deadline
            // says they could not.
            let last_words = async {
                for line in pending.drain(..) {
                    ui.own(our_name, &line);
                    if queue.send(Message::Text(line.into())).await.is_err() {
                        return;
                    }
                }
                let _ = queue.send(Message::Quit("".into())).await;
            };
            if tokio::time::timeout(member::WRITE_DEADLINE, last_words)
                .await
                .is_err()
            {
                writer.abort();
                return Err(Error::Timeout(
                    "sending what was typed (the peer is not reading)",
                    member::WRITE_DEADLINE.as_secs(),
                ));
            }
            drop(queue);
            // Everything queued goes out first, within the write deadline.
            match tokio::time::timeout(member::WRITE_DEADLINE, &mut writer).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Err(e),
                Ok(Err(_)) => return Err(Error::Internal("the sending task failed".into())),
                Err(_) => {
                    writer.abort();
                    return Err(Error::Timeout(
                        "sending what was typed (the peer is not reading)",
                        member::WRITE_DEADLINE.as_secs(),
                    ));
                }
            }
            // Until the peer hangs up, what it says still counts: a refusal (room full, key
            // refused) means nothing we sent was taken, and so does never being welcomed.
            let mut after = AfterQuit {
                opening,
                room: &mut room,
                ui,
            };
            if let Ok(Err(e)) = tokio::time::timeout(LINGER, after.read(&mut recv)).await {
                return Err(e);
            }
            if !after.opening.is_open() {
                let why = match leave_once_open {
                    Some(_) => format!(
                        "the listener did not welcome us within {} s (it may be asking its \
                         owner to let you in), so nothing sent was taken",
                        welcome_within.as_secs()
                    ),
                    None => {
                        "the listener never welcomed us, so what was sent may not have been taken"
                            .into()
                    }
                };
                return Err(Error::RefusedByPeer(why));
            }
            Ok(Ended::LocalQuit)
        }
        // The other mode: what we queued (our HELLO, which tells the peer our mode) goes out,
        // with a QUIT saying why, so the peer reports the mismatch rather than a cut.
        Step::Fail(e @ Error::ModeMismatch(_)) => {
            let _ = queue.try_send(Message::Quit("mismatch: this side runs chat".into()));
            drop(queue);
            if tokio::time::timeout(LINGER, &mut writer).await.is_err() {
                writer.abort();
            }
            Err(e)
        }
        Step::Fail(e) => {
            writer.abort();
            // For programs: the peer is gone too, and how. (A QUIT was reported already.)
            if !matches!(e, Error::PeerAborted(_)) && ui.mode() == ui::Mode::Json {
                ui.left(&speaker, Departure::of(&e), &e.to_string());
            }
            Err(e)
        }
        Step::Continue => Err(Error::Internal("chat loop ended without a reason".into())),
    }
}

/// Reading after our QUIT: the peer's last words are shown, and a refusal is an error.
struct AfterQuit<'a> {
    opening: Opening,
    room: &'a mut RoomView,
    ui: &'a Ui,
}

impl AfterQuit<'_> {
    async fn read<R: AsyncRead + Unpin>(&mut self, recv: &mut RecvHalf<R>) -> Result<()> {
        // Nothing may be sent after our QUIT, not even a PONG: this queue goes nowhere.
        let (nowhere, _) = mpsc::channel(1);
        loop {
            let msg = match recv.recv().await {
                Ok(Some(msg)) => msg,
                // The peer hung up, as it should after our QUIT.
                Ok(None) => return Ok(()),
                // A reset after our QUIT says nothing about what was taken before it.
                Err(Error::Io { .. }) => return Ok(()),
                Err(e) => return Err(e),
            };
            match on_message(msg, &mut self.opening, self.room, self.ui, &nowhere) {
                Step::Fail(e) => return Err(e),
                Step::PeerLeft => return Ok(()),
                _ => {}
            }
        }
    }
}

/// Handles one message from the peer.
fn on_message(
    msg: Message<'_>,
    opening: &mut Opening,
    room: &mut RoomView,
    ui: &Ui,
    queue: &mpsc::Sender<Message<'static>>,
) -> Step {
    let msg = match opening.accept(msg, Mode::Chat) {
        Ok(Some(msg)) => msg,
        Ok(None) => return Step::Continue,
        Err(e) => return Step::Fail(e),
    };
    let label = room.names.label(&room.host);
    let speaker = room.speaker(&room.host, &label);
    match msg {
        // Once, first (the opening saw to that).
        Message::Hello { name, .. } => {
            room.peer_named(&name, false, ui);
            Step::Continue
        }
        Message::Nick(name) => {
            room.peer_named(&name, true, ui);
            Step::Continue
        }
        // Once, right after the listener's HELLO (the opening saw to that).
        Message::Welcome(text) => {
            ui.welcome(&speaker, &text);
            Step::Continue
        }
        Message::Text(text) => match ui.message(&speaker, &text) {
            Ok(()) => Step::Continue,
            Err(e) => Step::Fail(Error::io("writing to stdout", e)),
        },
        Message::Quit(reason) => {
            let ending = QuitReason::of(&reason);
            if !matches!(ending, QuitReason::Refused(_)) {
                ui.left(&speaker, Departure::Quit, &reason);
            }
            match ending.error() {
                None => Step::PeerLeft,
                Some(e) => Step::Fail(e),
            }
        }
        Message::Ping(body) => {
            // If the queue is full the peer is not reading; a lost PONG costs nothing.
            let _ = queue.try_send(Message::Pong(body.into_owned().into()));
            Step::Continue
        }
        // REKEY never reaches here: the transport applies it.
        Message::Pong(_) | Message::Rekey | Message::Extension { .. } => Step::Continue,
        Message::Data(_) | Message::End | Message::Received(_) => Step::Fail(
            ProtocolError::Unexpected(msg.name(), "in a chat (is it in --pipe mode?)").into(),
        ),
        // Only a listener relays, announces and whispers; a dialer sending these is confused.
        Message::Who => Step::Fail(ProtocolError::Unexpected("WHO", "from a host").into()),
        // Redeemed when a listener admits a dialer; never part of a session.
        Message::Invite(_) | Message::Pake { .. } | Message::Confirm(_) => {
            Step::Fail(ProtocolError::Unexpected(msg.name(), "inside a session").into())
        }
        Message::Relay { .. } | Message::Notice(_) | Message::Private(_) if !room.is_dialer => {
            Step::Fail(ProtocolError::Unexpected(msg.name(), "from a dialer").into())
        }
        Message::Private(text) => match ui.private(&speaker, &text) {
            Ok(()) => Step::Continue,
            Err(e) => Step::Fail(Error::io("writing to stdout", e)),
        },
        Message::Relay { origin, text } => {
            let origin = PublicKey::from_bytes(origin);
            let label = room.names.label(&origin);
            let from = room.speaker(&origin, &label);
            match ui.relayed(&from, &speaker, &text) {
                Ok(()) => Step::Continue,
                Err(e) => Step::Fail(Error::io("writing to stdout", e)),
            }
        }
        Message::Notice(notice) => {
            room.on_notice(notice, ui);
            Step::Continue
        }
    }
}

/// Handles one input event: a line to send, a command, or the end of input.
fn on_input(
    event: InputEvent,
    peer: &PeerInfo,
    input: &mut Input,
    ui: &Ui,
    pending: &mut VecDeque<String>,
    queue: &mpsc::Sender<Message<'static>>,
    is_dialer: bool,
) -> Step {
    let line = match event {
        InputEvent::Line(line) => line,
        InputEvent::TooLong => {
            ui.warn(format_args!(
                "line not sent: longer than {MAX_BODY} bytes, the most one message can carry"
            ));
            return Step::Continue;
        }
        InputEvent::NotUtf8 => {
            ui.warn("line not sent: it is not valid UTF-8 text");
            return Step::Continue;
        }
        InputEvent::Eof => return Step::Leave("end of input"),
        InputEvent::Interrupted => return Step::Leave("interrupted"),
        InputEvent::Failed(e) => {
            ui.error(format_args!("reading input failed: {e}"));
            return Step::Leave("input failed");
        }
    };
    match command::parse(&line) {
        Command::Say(text) => pending.push_back(text.to_owned()),
        Command::Me(action) => pending.push_back(format!("/me {action}")),
        Command::Quit => return Step::Leave("you quit"),
        Command::Verify(_) => {
            ui.status(format_args!(
                "safety number with {}: read it aloud with them, the same digits mean the same \
                 two keys",
                peer.label
            ));
            ui.grid("safety number:", &peer.safety().lines());
            ui.grid("fingerprint:  ", &fingerprint::grid(&peer.key));
        }
        Command::Whois(_) => {
            for line in peer.describe() {
                ui.status(line);
            }
        }
        // A member asks its host who is there (a listener in a one-to-one chat knows).
        Command::Who if is_dialer => {
            if queue.try_send(Message::Who).is_err() {
                ui.warn("the connection is busy: /who again in a moment");
            }
        }
        Command::Nick(name) => match names::check_name(name) {
            Err(why) if !name.is_empty() => {
                ui.warn(format_args!("/nick {}: {why}", sanitize::line(name)))
            }
            Ok(()) | Err(_) => {
                if queue.try_send(Message::Nick(name.to_owned().into())).is_err() {
                    ui.warn("the connection is busy: /nick again in a moment");
                } else if !is_dialer {
                    ui.status(format_args!("the peer now sees you as {name:?}"));
                }
            }
        },
        Command::Who | Command::Msg(..) | Command::Name(..) => {
            ui.warn("/msg and /name are for the host of a room; /who for its members and its host");
        }
        Command::Clear => input.clear_screen(),
        Command::Help => {
            ui.listing(command::HELP);
        }
        Command::Unknown(word) => ui.warn(format_args!(
            "unknown command /{word} (nothing sent; /help lists commands, //{word} sends it as text)"
        )),
    }
    Step::Continue
}

/// Sleeps until `at`, or for ever when there is no such moment.
async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

async fn writer_failure(writer: &mut tokio::task::JoinHandle<Result<()>>) -> Error {
    match writer.await {
        Ok(Err(e)) => e,
        _ => Error::Internal("the sending task stopped".into()),
    }
}

/// Sends queued messages in order. Stops after a QUIT or when the queue closes, then closes our
/// direction of the stream.
async fn write_loop<W: AsyncWrite + Unpin>(
    mut send: SendHalf<W>,
    mut outgoing: mpsc::Receiver<Message<'static>>,
) -> Result<()> {
    while let Some(msg) = outgoing.recv().await {
        send.send(&msg).await?;
        if send.quit_sent() {
            break;
        }
    }
    send.close().await
}
