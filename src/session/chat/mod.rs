//! The chat loop of one conversation: reading from the peer, reading the user's input and
//! writing to the peer all proceed at once. A `select!` loop owns the receiving half and the
//! input; a writer task owns the sending half behind a bounded queue, so a slow network never
//! stops us from receiving.

mod typed;

use super::keepalive::{Lapse, Silence};
use super::names::Names;
use super::opening::Opening;
use super::room_view::RoomView;
use super::verify::PeerInfo;
use super::{Ended, LINGER, QuitReason, Role, Run, User, member};
use crate::error::{Error, ProtocolError, Result};
use crate::framed::Detach;
use crate::handshake::Established;
use crate::keys::PublicKey;
use crate::message::{Message, Mode};
use crate::receipts::{ACK_DELAY, Ledger};
use crate::transport::{RecvHalf, SendHalf};
use crate::ui::{self, Departure, Ui};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Messages waiting for the writer task.
const OUTGOING_QUEUE: usize = 32;

/// How long a dialer waits for WELCOME before it says what it is waiting for; and how long a
/// side leaving waits for its last receipts before it says so.
const WELCOME_NOTE: Duration = Duration::from_secs(1);

use typed::{Outgoing, on_input};

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
pub(super) async fn chat<R, W>(
    established: Established<R, W>,
    role: &Role,
    peer: &PeerInfo,
    run: &Run<'_>,
    user: &mut User<'_>,
) -> Result<Ended>
where
    R: AsyncRead + Unpin + Detach,
    W: AsyncWrite + Unpin + Detach + Send + 'static,
{
    let Run { settings, ui, .. } = *run;
    let names = Names::load(&settings.trust);
    let our_name = settings.name.as_str();
    let invite = settings.ticket.as_ref().and_then(|t| t.secret.clone());
    let (keepalive, welcome_within) = (settings.keepalive, settings.handshake_timeout);
    let (input, interrupts) = (&mut *user.input, &mut *user.interrupts);
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
    // We acknowledge what we show (§4.10); the peer's own RECEIPTS says it does too.
    let _ = queue.send(Message::Receipts).await;
    let mut ledger = Ledger::new();
    // When the next ACK is due: a burst of messages shown is acknowledged once.
    let mut ack_at: Option<tokio::time::Instant> = None;
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
    // A side whose input ended (or that typed /quit) leaves once what it sent is known to have
    // been taken: a dialer once the opening is over (WELCOME, or a refusal), and either side
    // once the peer has acknowledged every line (when it sends receipts). A script that
    // pipes one line in would otherwise say QUIT before the room counted it.
    let mut leave_once_open: Option<(&'static str, tokio::time::Instant)> = None;
    let mut settle_note: Option<tokio::time::Instant> = None;
    // A dialer the host does not welcome at once may be knocking: say what it waits for, once.
    let mut waiting_note = is_dialer.then(|| tokio::time::Instant::now() + WELCOME_NOTE);

    let step = loop {
        let step = tokio::select! {
            // Printing to the terminal blocks while the terminal is behind, so a flood
            // waits in the peer's socket, not in our memory.
            received = recv.recv() => {
                silence.heard();
                match received {
                    Ok(Some(msg)) => on_message(msg, &mut opening, &mut room, &mut ledger, ui, &queue),
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
            event = input.next(), if leave_once_open.is_none() && (pending.is_empty() || typing) => {
                let mut out = Outgoing { pending: &mut pending, queue: &queue, ledger: &mut ledger };
                on_input(event, peer, input, ui, &mut out, is_dialer)
            }
            () = sleep_until_some(leave_once_open.map(|(_, by)| by)) => Step::Leave("end of input"),
            () = sleep_until_some(ack_at) => {
                ack_at = None;
                if ledger.peer_acks() && let Ok(permit) = queue.try_reserve() {
                    if let Some(count) = ledger.take_ack() {
                        permit.send(Message::Ack(count));
                    }
                } else if ledger.peer_acks() {
                    // The queue is full (we are sending anyway): the ACK waits its turn.
                    ack_at = Some(tokio::time::Instant::now() + ACK_DELAY);
                }
                Step::Continue
            }
            () = sleep_until_some(settle_note.filter(|_| opening.is_open())) => {
                settle_note = None;
                ui.status(format_args!(
                    "waiting for {} to confirm your last {} (up to {} s)",
                    crate::sanitize::line(&peer.label),
                    lines(ledger.unacked() as usize),
                    settle_within(welcome_within).as_secs()
                ));
                Step::Continue
            }
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
            // Beyond MAX_UNACKED lines the peer has not confirmed, lines wait here.
            permit = queue.reserve(), if !pending.is_empty() && ledger.has_room() => match (permit, pending.pop_front()) {
                (Ok(permit), Some(line)) => {
                    ui.own_sent(our_name, &line, ledger.sent_one());
                    permit.send(Message::Text(line.into()));
                    Step::Continue
                }
                _ => Step::Fail(writer_failure(&mut writer).await),
            },
            name = interrupts.recv() => Step::Leave(name),
            result = &mut writer => {
                let e = match result {
                    Ok(Err(e)) => e,
                    _ => Error::Internal("the sending task stopped".into()),
                };
                // A peer that turned us away closed its end, so our next write failed: its
                // QUIT, still unread, says why (and that nothing was taken).
                let mut after = AfterQuit { opening, room: &mut room, ledger: &mut ledger, ui };
                match matches!(e, Error::Io { .. }) {
                    true => match tokio::time::timeout(LINGER, after.read(&mut recv)).await {
                        Ok(Err(why)) => Step::Fail(why),
                        _ => Step::Fail(e),
                    },
                    false => Step::Fail(e),
                }
            }
        };
        if ledger.ack_urgent() {
            ack_at = Some(tokio::time::Instant::now());
        } else if ledger.ack_owed() && ack_at.is_none() {
            ack_at = Some(tokio::time::Instant::now() + ACK_DELAY);
        }
        // A peer that never offered receipts (an older schat) will not confirm anything.
        if is_dialer && opening.is_open() && !ledger.peer_acks() && ui.undelivered() > 0 {
            ui.forget_marks();
        }
        let settled = opening.is_open() && pending.is_empty() && ledger.unacked() == 0;
        let step = match step {
            Step::Leave(why @ ("end of input" | "you quit")) if !settled => {
                if leave_once_open.is_none() {
                    let now = tokio::time::Instant::now();
                    leave_once_open = Some((why, now + settle_within(welcome_within)));
                    settle_note = Some(now + WELCOME_NOTE);
                    Step::Continue
                } else {
                    // Not welcomed, or not confirmed, in time: leave all the same (and say
                    // so below).
                    Step::Leave(why)
                }
            }
            step => step,
        };
        if let (Some((why, _)), true) = (leave_once_open, settled) {
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
                Ok(_) => {
                    unconfirmed(&ledger, peer, "it left")?;
                    Ok(Ended::PeerQuit)
                }
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
                    ui.own_sent(our_name, &line, ledger.sent_one());
                    if queue.send(Message::Text(line.into())).await.is_err() {
                        return;
                    }
                }
                // What we showed of the peer's is confirmed before we go.
                if ledger.peer_acks()
                    && let Some(count) = ledger.take_ack()
                {
                    let _ = queue.send(Message::Ack(count)).await;
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
                ledger: &mut ledger,
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
            unconfirmed(&ledger, peer, "we left")?;
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
            if ledger.unacked() > 0 {
                ui.warn(format_args!(
                    "{} not confirmed by {}: it may not have been shown",
                    lines(ledger.unacked() as usize),
                    crate::sanitize::line(&peer.label)
                ));
            }
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
    ledger: &'a mut Ledger,
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
            match on_message(
                msg,
                &mut self.opening,
                self.room,
                self.ledger,
                self.ui,
                &nowhere,
            ) {
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
    ledger: &mut Ledger,
    ui: &Ui,
    queue: &mpsc::Sender<Message<'static>>,
) -> Step {
    let msg = match opening.accept(msg, Mode::Chat) {
        Ok(Some(msg)) => msg,
        Ok(None) => return Step::Continue,
        Err(e) => return Step::Fail(e),
    };
    // Counted messages are acknowledged once shown (below, unless showing failed).
    if msg.is_counted() {
        ledger.shown_one();
    }
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
        Message::Receipts if ledger.peer_acks() => {
            Step::Fail(ProtocolError::Unexpected("RECEIPTS", "twice").into())
        }
        Message::Receipts => {
            ledger.peer_acknowledges();
            Step::Continue
        }
        // We always offer receipts, so an ACK is welcome; it must be true.
        Message::Ack(count) => match ledger.acked(count) {
            Ok(ids) => {
                ui.delivered(ids);
                Step::Continue
            }
            Err(e) => Step::Fail(ProtocolError::Receipt(e).into()),
        },
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

/// How long a side leaving waits for the opening and its last receipts.
fn settle_within(welcome_within: Duration) -> Duration {
    welcome_within.max(member::WRITE_DEADLINE)
}

/// "1 line", "3 lines".
fn lines(n: usize) -> String {
    match n {
        1 => "1 line".into(),
        n => format!("{n} lines"),
    }
}

/// The session ended cleanly, but was everything we sent confirmed? (`how`: who ended it.)
fn unconfirmed(ledger: &Ledger, peer: &PeerInfo, how: &str) -> Result<()> {
    match ledger.unacked() {
        0 => Ok(()),
        n => Err(Error::Undelivered(format!(
            "{how} before {} confirmed your last {}: it may not have been shown",
            crate::sanitize::line(&peer.label),
            lines(n as usize)
        ))),
    }
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
