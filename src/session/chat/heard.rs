//! What the peer says during a chat: each message checked against the opening, shown, counted
//! for its receipt; and, after our QUIT, the peer's last words.

use super::Step;
use crate::error::{Error, ProtocolError, Result};
use crate::keys::PublicKey;
use crate::message::{Message, Mode};
use crate::receipts::Ledger;
use crate::session::QuitReason;
use crate::session::opening::Opening;
use crate::session::room_view::RoomView;
use crate::transport::RecvHalf;
use crate::ui::{Departure, Ui};
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

/// Reading after our QUIT: the peer's last words are shown, and a refusal is an error.
pub(super) struct AfterQuit<'a> {
    pub(super) opening: Opening,
    pub(super) room: &'a mut RoomView,
    pub(super) ledger: &'a mut Ledger,
    pub(super) ui: &'a Ui,
}

impl AfterQuit<'_> {
    pub(super) async fn read<R: AsyncRead + Unpin>(
        &mut self,
        recv: &mut RecvHalf<R>,
    ) -> Result<()> {
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
pub(super) fn on_message(
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
    // Counted messages are acknowledged once shown: not when showing failed.
    let counted = msg.is_counted();
    let step = handle(msg, room, ledger, ui, queue);
    if counted && !matches!(step, Step::Fail(_)) {
        ledger.shown_one();
    }
    step
}

/// What one message of the session (past the opening) does.
fn handle(
    msg: Message<'_>,
    room: &mut RoomView,
    ledger: &mut Ledger,
    ui: &Ui,
    queue: &mpsc::Sender<Message<'static>>,
) -> Step {
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
            Err(e) => Step::Fail(Error::io(crate::session::OUR_OUTPUT, e)),
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
        Message::Resumable => Step::Resumable,
        // Files (§4.13): the loop's `files` checks them against what was offered.
        Message::Files => Step::Files,
        Message::File(file) => Step::File(file.into_owned()),
        // (The opening let it through only in WELCOME's place on a resumed connection.)
        Message::Resumed(shown) => Step::Resumed(shown),
        Message::Resume { .. } => {
            Step::Fail(ProtocolError::Unexpected("RESUME", "from a listener").into())
        }
        // Once per connection (the loop checks), on every connection of the session.
        Message::Receipts => Step::Receipts,
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
            Err(e) => Step::Fail(Error::io(crate::session::OUR_OUTPUT, e)),
        },
        Message::Relay { origin, text } => {
            let origin = PublicKey::from_bytes(origin);
            let label = room.names.label(&origin);
            let from = room.speaker(&origin, &label);
            match ui.relayed(&from, &speaker, &text) {
                Ok(()) => Step::Continue,
                Err(e) => Step::Fail(Error::io(crate::session::OUR_OUTPUT, e)),
            }
        }
        Message::Notice(notice) => {
            room.on_notice(notice, ui);
            Step::Continue
        }
        // A host's PAIRS (§4.14): it passes PEER between its members. (A member's, to a
        // one-to-one listener, means nothing here.)
        Message::Pairs(flags) if room.is_dialer => match room.e2e.on_pairs(flags) {
            Ok(()) => Step::Continue,
            Err(()) => Step::Fail(
                ProtocolError::Unexpected("PAIRS", "twice, or with other flags than before").into(),
            ),
        },
        Message::Pairs(_) => Step::Continue,
        Message::Peer(peer) => match room.is_dialer && room.e2e.on_peer(peer).is_ok() {
            true => Step::Continue,
            false => Step::Fail(
                ProtocolError::Unexpected("PEER", "from a side that did not send PAIRS").into(),
            ),
        },
    }
}
