//! The chat loop of one conversation: reading from the peer, reading the user's input and
//! writing to the peer all proceed at once. A `select!` loop owns the receiving half and the
//! input; a writer task owns the sending half behind a bounded queue, so a slow network never
//! stops us from receiving.

mod ending;
mod files;
mod heard;
mod member_files;
mod reconnect;
mod typed;
mod writer;

use super::input::InputEvent;
use super::keepalive::{Lapse, Silence, sleep_until_some};
use super::names::Names;
use super::opening::Opening;
use super::room_view::RoomView;
use super::verify::PeerInfo;
use super::{Ended, LINGER, Redial, Role, Run, User, member};
use crate::error::{Error, ProtocolError, Result};
use crate::framed::Detach;
use crate::handshake::Established;
use crate::message::{Message, Mode};
use crate::receipts::{ACK_DELAY, Ledger};
use crate::ui::{self, Departure};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::mpsc;

/// Messages waiting for the writer task.
const OUTGOING_QUEUE: usize = 32;

/// Files' CHUNKs waiting for the writer task (at most 1 MiB of them, behind everything else).
const BULK_QUEUE: usize = 16;

/// How long a dialer waits for WELCOME before it says what it is waiting for; and how long a
/// side leaving waits for its last receipts before it says so.
const WELCOME_NOTE: Duration = Duration::from_secs(1);

use ending::{lines, messages, settle_within};
use heard::{AfterQuit, on_message};
use typed::{Outgoing, on_input};
use writer::{write_loop, writer_failure};

/// What the chat loop does next.
enum Step {
    Continue,
    /// The peer said QUIT.
    PeerLeft,
    /// We leave, with this reason.
    Leave(&'static str),
    Fail(Error),
    /// The peer acknowledges what it shows (its RECEIPTS).
    Receipts,
    /// The peer can resume this session (its RESUMABLE).
    Resumable,
    /// The listener took the session back: it has shown this many of our counted messages.
    Resumed(u64),
    /// The peer takes files (its FILES).
    Files,
    /// A file transfer's message (§4.13).
    File(crate::message::FileMessage<'static>),
}

/// The full-duplex conversation.
pub(super) async fn chat<R, W>(
    established: Established<R, W>,
    role: &Role,
    peer: &PeerInfo,
    run: &Run<'_>,
    user: &mut User<'_>,
    mut redial: Option<&mut dyn Redial<R, W>>,
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
    let speaker = peer.speaker();
    let is_dialer = matches!(role, Role::Dialer { .. });
    let mut room = RoomView {
        is_dialer,
        names,
        us: *peer.local(),
        host: peer.key,
        e2e: super::room_e2e::E2e::new(run.identity.duplicate()),
    };
    // Our own name counts too: someone else taking it is marked on our screen as well.
    let _ = room.names.announce(room.us, our_name);
    // What survives a dropped connection (PROTOCOL.md §4.11): the counts and the messages the
    // peer has not acknowledged, the lines not yet sent, and the session's token.
    let mut ledger = Ledger::new();
    // Only a dialer that can dial again offers to resume (and, with --no-reconnect, none).
    let grace = settings
        .resume_grace
        .filter(|_| is_dialer && redial.is_some());
    let token = established.resume_token.clone();
    let mut peer_resumable;
    let mut resumed = false;
    // Lines typed but not yet accepted by the full queue. While one is pending we keep
    // receiving, so neither side can deadlock the other. A script's input is not read further
    // meanwhile (it would pile up); a person's editor still is, since it also shows what we
    // receive, and what a person types is small.
    let mut pending: VecDeque<String> = VecDeque::new();
    let typing = user.input.can_ask();
    // A side whose input ended (or that typed /quit) leaves once what it sent is known to have
    // been taken: a dialer once the opening is over (WELCOME, or a refusal), and either side
    // once the peer has acknowledged every line (when it sends receipts). A script that
    // pipes one line in would otherwise say QUIT before the room counted it.
    let mut leave_once_open: Option<(&'static str, tokio::time::Instant)> = None;
    let mut input_ended = false;
    // Why we were leaving when the connection dropped: we still are, once resumed.
    let mut leaving: Option<&'static str> = None;
    let mut established = established;
    let (mut desk, mut notes) = files::Desk::new(settings.files.clone(), &settings.send);
    loop {
        let (input, interrupts) = (&mut *user.input, &mut *user.interrupts);
        let Established { mut recv, send, .. } = established;
        let (queue, outgoing) = mpsc::channel::<Message<'static>>(OUTGOING_QUEUE);
        let (bulk, bulk_out) = mpsc::channel::<Message<'static>>(BULK_QUEUE);
        desk.connected(bulk);
        room.e2e.connected();
        let mut writer = tokio::spawn(write_loop(send, outgoing, bulk_out));
        let mut opening = match resumed {
            true => Opening::resumed(),
            false => Opening::new(is_dialer),
        };
        if resumed {
            // The session's name, and how much of the listener's we have shown, go first.
            let _ = queue
                .send(Message::Resume {
                    token: token.clone(),
                    shown: ledger.shown(),
                })
                .await;
        } else if let Some(secret) = invite.clone() {
            // An invite's secret goes first, before our HELLO (PROTOCOL.md §4.7).
            let _ = queue.send(Message::Invite(secret)).await;
        }
        // A member talks end to end with the others where the host passes PEER (§4.14).
        if is_dialer {
            let _ = queue.send(Message::Pairs(0)).await;
        }
        // Our HELLO first: a dialer gets here only once it has accepted the listener's key.
        let _ = queue
            .send(Message::hello(Mode::Chat, our_name.to_owned()))
            .await;
        // We acknowledge what we show (§4.10); the peer's own RECEIPTS says it does too.
        let _ = queue.send(Message::Receipts).await;
        if grace.is_some() {
            let _ = queue.send(Message::Resumable).await;
        }
        // We take files (§4.13): offers come to us, and we may make ours once the peer says so.
        let _ = queue.send(Message::Files).await;
        // When the next ACK is due: a burst of messages shown is acknowledged once.
        let mut ack_at: Option<tokio::time::Instant> = None;
        if let Role::Listener { welcome, .. } = role {
            let _ = queue.send(Message::Welcome(welcome.clone().into())).await;
        }
        // What the listener has not shown, sent again once it took the session back (first of
        // all, in order).
        let mut resend: VecDeque<Message<'static>> = VecDeque::new();
        // Keepalive: any message from the peer resets the timer; each lapse sends a PING, and
        // after three in a row without a word the peer is gone.
        let mut silence = Silence::new(keepalive);
        let mut settle_note: Option<tokio::time::Instant> = None;
        // Since when lines wait for the peer to confirm earlier ones (it must, within the write
        // deadline).
        let mut stalled: Option<tokio::time::Instant> = None;
        // The offers (RECEIPTS, RESUMABLE) the peer made on this connection: once each.
        let mut offered: Vec<u8> = Vec::new();
        // The peer offers to resume on each connection, or this one does not resume.
        peer_resumable = false;
        // A resumed connection that the listener does not take back in time is cut again.
        let resumed_by = resumed.then(|| tokio::time::Instant::now() + settings.handshake_timeout);
        if let Some(why) = leaving.or(input_ended.then_some("end of input")) {
            // We were leaving, or the input ended while we were away: leave once all is
            // confirmed.
            let now = tokio::time::Instant::now();
            leave_once_open = Some((why, now + settle_within(welcome_within)));
        }
        // A dialer the host does not welcome at once may be knocking: say what it waits for, once.
        let mut waiting_note =
            (is_dialer && !resumed).then(|| tokio::time::Instant::now() + WELCOME_NOTE);

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
                // While leaving, only a terminal is read: Ctrl-C (or Ctrl-D) there leaves without
                // waiting any longer.
                // (A member reads what is typed once it knows who is in the room: a line
                // sealed before that would be sealed for nobody.)
                event = input.next(), if !input_ended && room.e2e.ready_for_lines(is_dialer, opening.is_open()) && match leave_once_open {
                    None => pending.is_empty() || typing,
                    Some(_) => typing,
                } => match (leave_once_open, event) {
                    (None, event) => {
                        let hold_counted = resumed && (!opening.is_open() || !resend.is_empty());
                        let mut out = Outgoing { pending: &mut pending, queue: &queue, ledger: &mut ledger, hold_counted, desk: &mut desk, open: opening.is_open(), room: &mut room };
                        match on_input(event, peer, input, ui, &mut out, is_dialer) {
                            // `--send` leaves when its files are done, `--accept-files` when the
                            // peer does: not when stdin ends.
                            Step::Leave("end of input") if desk.stays_past_input() => {
                                input_ended = true;
                                Step::Continue
                            }
                            step => step,
                        }
                    }
                    (Some(_), InputEvent::Interrupted | InputEvent::Failed(_)) => {
                        leave_once_open = None;
                        Step::Leave("interrupted")
                    }
                    // (Input that has ended is not read again.)
                    (Some(_), InputEvent::Eof) => {
                        input_ended = true;
                        Step::Continue
                    }
                    (Some(_), _) => {
                        ui.warn("leaving: waiting for the last receipts (Ctrl-C leaves now)");
                        Step::Continue
                    }
                },
                () = sleep_until_some(leave_once_open.map(|(_, by)| by)) => match leave_once_open {
                    // A file still moving is waited for as long as bytes move.
                    Some((why, _)) if desk.still_moving() => {
                        let by = tokio::time::Instant::now() + settle_within(welcome_within);
                        leave_once_open = Some((why, by));
                        Step::Continue
                    }
                    _ => Step::Leave(leave_once_open.map_or("end of input", |(why, _)| why)),
                },
                note = notes.next() => {
                    desk.on_note(note);
                    Step::Continue
                }
                () = sleep_until_some(desk.progress_at()) => {
                    desk.tick(ui);
                    Step::Continue
                }
                () = sleep_until_some(room.e2e.deadline()) => {
                    room.e2e.expire();
                    Step::Continue
                }
                // Our end-to-end sessions' messages, and files' own (offers, answers, credit),
                // after the opening and after what a resume sends again.
                permit = queue.reserve(), if (room.e2e.has_out() || !desk.transfers.outbox.is_empty()) && opening.is_open() && resend.is_empty() => match (permit, room.e2e.next_out().or_else(|| desk.transfers.outbox.pop_front())) {
                    (Ok(permit), Some(msg)) => {
                        // (A PEER is counted: kept until the host has passed it on.)
                        if msg.is_counted() {
                            ledger.record(&msg);
                        }
                        permit.send(msg);
                        Step::Continue
                    }
                    _ => Step::Fail(writer_failure(&mut writer).await),
                },
                () = sleep_until_some(resumed_by.filter(|_| !opening.is_open())) => Step::Fail(
                Error::Timeout("waiting for RESUMED", settings.handshake_timeout.as_secs()),
            ),
            // The peer stopped confirming while lines wait for room: not for ever.
                () = sleep_until_some(stalled) => Step::Fail(Error::Timeout(
                    "waiting for the peer to confirm what it was sent",
                    member::WRITE_DEADLINE.as_secs(),
                )),
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
                    match ledger.unacked() {
                        0 => ui.status(format_args!(
                            "waiting for the files to get through (/transfers lists them; \
                             Ctrl-C leaves now)"
                        )),
                        n => ui.status(format_args!(
                            "waiting for {} to confirm your last {} (up to {} s)",
                            crate::sanitize::line(&peer.label),
                            lines(n as usize),
                            settle_within(welcome_within).as_secs()
                        )),
                    }
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
                permit = queue.reserve(), if !resend.is_empty() => match (permit, resend.pop_front()) {
                    (Ok(permit), Some(msg)) => {
                        permit.send(msg);
                        Step::Continue
                    }
                    _ => Step::Fail(writer_failure(&mut writer).await),
                },
                // Beyond MAX_UNACKED lines the peer has not confirmed, lines wait here; on a
                // resumed connection, also until what it missed has gone again.
                permit = queue.reserve(), if !pending.is_empty() && ledger.has_room() && resend.is_empty() && (!resumed || opening.is_open()) => match (permit, pending.pop_front()) {
                    (Ok(permit), Some(line)) => {
                        let msg = Message::Text(line.into());
                        if let Message::Text(line) = &msg {
                            ui.own_sent(our_name, line, ledger.record(&msg));
                        }
                        permit.send(msg);
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
            let step = match step {
                Step::Receipts | Step::Resumable | Step::Files
                    if offered.contains(&step_kind(&step)) =>
                {
                    Step::Fail(
                        ProtocolError::Unexpected(
                            "RECEIPTS, RESUMABLE or FILES",
                            "twice on one connection",
                        )
                        .into(),
                    )
                }
                Step::Files => {
                    offered.push(step_kind(&step));
                    desk.transfers.peer_files();
                    Step::Continue
                }
                Step::File(file) => match desk.transfers.on_message(file) {
                    Ok(()) => Step::Continue,
                    Err(e) => Step::Fail(e.into()),
                },
                Step::Receipts => {
                    offered.push(step_kind(&step));
                    ledger.peer_acknowledges();
                    Step::Continue
                }
                // (Only with receipts: without them nothing says what to send again.)
                Step::Resumable => {
                    offered.push(step_kind(&step));
                    peer_resumable = offered.contains(&crate::message::kind::RECEIPTS);
                    Step::Continue
                }
                Step::Resumed(shown) => match ledger.acked(shown) {
                    Ok(ids) => {
                        ui.delivered(ids);
                        resend.extend(ledger.unacknowledged().cloned());
                        ui.status(format_args!(
                            "reconnected ({} sent again)",
                            messages(resend.len())
                        ));
                        Step::Continue
                    }
                    Err(e) => Step::Fail(ProtocolError::Receipt(e).into()),
                },
                step => step,
            };
            if ledger.ack_owed() && ack_at.is_none() {
                let delay = if ledger.ack_urgent() {
                    Duration::ZERO
                } else {
                    ACK_DELAY
                };
                ack_at = Some(tokio::time::Instant::now() + delay);
            }
            // A peer that never offered receipts (an older schat) will not confirm anything.
            if is_dialer && opening.is_open() && !ledger.peer_acks() && ui.undelivered() > 0 {
                ui.forget_marks();
            }
            // A listener says FILES before its WELCOME: without it, ours cannot go.
            if is_dialer && opening.is_open() && !desk.transfers.peer_takes() {
                desk.peer_lacks_files(room.e2e.relay_only());
            }
            desk.show(ui, &speaker);
            room.e2e.show(&room.names, ui);
            desk.hear_members(&mut room, ui);
            let settled = opening.is_open()
                && pending.is_empty()
                && resend.is_empty()
                && ledger.unacked() == 0
                && !desk.busy()
                && room.e2e.settled();
            // `--send`: every file is delivered (or failed); the chat was only for them.
            let step = match step {
                Step::Continue
                    if desk.all_sent() && opening.is_open() && leave_once_open.is_none() =>
                {
                    Step::Leave("files sent")
                }
                step => step,
            };
            match (!pending.is_empty() && !ledger.has_room(), stalled) {
                (true, None) => {
                    stalled = Some(tokio::time::Instant::now() + member::WRITE_DEADLINE);
                }
                (false, Some(_)) => stalled = None,
                _ => {}
            }
            let step = match step {
                Step::Leave(why @ ("end of input" | "you quit" | "files sent")) if !settled => {
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
            if leave_once_open.is_some() {
                room.e2e.leaving();
            }
            if let (Some((why, _)), true) = (leave_once_open, settled) {
                break Step::Leave(why);
            }
            if !matches!(step, Step::Continue) {
                break step;
            }
        };

        // A cut, not an ending: dial again and carry on with the same conversation.
        let step = match (step, grace, redial.as_deref_mut()) {
            (Step::Fail(e), Some(grace), Some(redial))
                if peer_resumable && ledger.keeping() && super::chat_cut(&e) =>
            {
                writer.abort();
                ui.warn(format_args!(
                    "connection lost ({e}); reconnecting for up to {} s (Ctrl-C gives up)",
                    grace.as_secs()
                ));
                // Files in flight carry on once it is back: offered again, resumed by hash.
                desk.transfers.cut();
                desk.cut_members(&mut room);
                desk.show(ui, &speaker);
                leaving = leave_once_open.take().map(|(why, _)| why);
                reconnect::keep_unsent(&mut pending, &mut ledger, our_name, ui);
                let mut away = reconnect::Away {
                    ledger: &mut ledger,
                    our_name,
                    input_ended: &mut input_ended,
                    room: &mut room,
                };
                match reconnect::reconnect(redial, &peer.key, grace, &mut away, ui, user).await {
                    Ok(again) => {
                        established = again;
                        resumed = true;
                        continue;
                    }
                    Err(reconnect::GaveUp::Refused(e)) => Step::Fail(e),
                    Err(reconnect::GaveUp::Stopped(why)) => {
                        Step::Fail(reconnect::lost(&why, peer, &ledger))
                    }
                }
            }
            // Turned away on a resumed connection (`gone:`): the conversation is over, but what
            // was taken before the cut was taken (not exit 4).
            (Step::Fail(Error::RefusedByPeer(why)), ..) if resumed => {
                Step::Fail(Error::Undelivered(format!(
                    "the conversation cannot be resumed ({why}){}",
                    match ledger.unacked() {
                        0 => String::new(),
                        n => format!("; {} never confirmed", lines(n as usize)),
                    }
                )))
            }
            (step, ..) => step,
        };

        return match step {
            // The peer left: what is queued goes out, then our side closes (`ending`).
            Step::PeerLeft => {
                desk.peer_left(&room, ui);
                desk.show(ui, &speaker);
                drop(queue);
                ending::peer_left(&mut writer, &ledger, peer, &desk).await
            }
            // We leave: QUIT goes out after everything already queued; then wait for the peer to
            // close, so the QUIT is not lost to a reset.
            Step::Leave(why) => {
                let leaving = ending::Leaving {
                    desk: &mut desk,
                    ui,
                    speaker: &speaker,
                    peer,
                    queue,
                    writer: &mut writer,
                    pending: &mut pending,
                    our_name,
                    ledger: &mut ledger,
                    opening,
                    room: &mut room,
                    recv: &mut recv,
                    welcomed_in_time: leave_once_open.is_none(),
                    welcome_within,
                };
                leaving.leave(why).await
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
            Step::Continue
            | Step::Receipts
            | Step::Resumable
            | Step::Resumed(_)
            | Step::Files
            | Step::File(_) => Err(Error::Internal("chat loop ended without a reason".into())),
        };
    }
}

/// Which offer a step is (see `offered`).
fn step_kind(step: &Step) -> u8 {
    match step {
        Step::Receipts => crate::message::kind::RECEIPTS,
        Step::Files => crate::message::kind::FILES,
        _ => crate::message::kind::RESUMABLE,
    }
}
