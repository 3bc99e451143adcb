//! How a chat ends: leaving (our last words, our QUIT, the peer's last words), how long it
//! waits for the last receipts, and what is said about lines or files that did not get
//! through.

use super::files::Desk;
use super::heard::AfterQuit;
use crate::error::{Error, Result};
use crate::message::Message;
use crate::receipts::Ledger;
use crate::session::opening::Opening;
use crate::session::room_view::RoomView;
use crate::session::verify::PeerInfo;
use crate::session::{Ended, LINGER, member};
use crate::transport::RecvHalf;
use crate::ui::{Speaker, Ui};
use std::collections::VecDeque;
use std::time::Duration;
use tokio::io::AsyncRead;
use tokio::sync::mpsc;

/// What leaving of our own accord needs from the chat loop.
pub(super) struct Leaving<'a, R> {
    pub(super) desk: &'a mut Desk,
    pub(super) ui: &'a Ui,
    pub(super) speaker: &'a Speaker<'a>,
    pub(super) peer: &'a PeerInfo,
    pub(super) queue: mpsc::Sender<Message<'static>>,
    pub(super) writer: &'a mut tokio::task::JoinHandle<Result<()>>,
    /// Lines typed while the queue was full: they go before the goodbye.
    pub(super) pending: &'a mut VecDeque<String>,
    pub(super) our_name: &'a str,
    pub(super) ledger: &'a mut Ledger,
    pub(super) opening: Opening,
    pub(super) room: &'a mut RoomView,
    pub(super) recv: &'a mut RecvHalf<R>,
    /// We did not give up waiting for WELCOME (else a missing one means nothing was taken).
    pub(super) welcomed_in_time: bool,
    pub(super) welcome_within: Duration,
}

impl<R: AsyncRead + Unpin> Leaving<'_, R> {
    /// We leave: QUIT goes out after everything already queued; then we wait for the peer to
    /// close, so the QUIT is not lost to a reset.
    pub(super) async fn leave(self, why: &str) -> Result<Ended> {
        let Leaving {
            ui,
            speaker,
            peer,
            queue,
            writer,
            pending,
            our_name,
            ledger,
            opening,
            room,
            recv,
            welcomed_in_time,
            welcome_within,
            desk,
        } = self;
        ui.status(format_args!("{why}; leaving"));
        // Transfers not done stop; the peer hears so before our QUIT.
        desk.leaving(room, ui);
        desk.show(ui, speaker);
        let stops: Vec<Message<'static>> = desk.transfers.outbox.drain(..).collect();
        // Lines typed while the queue was full go out before the goodbye, or the deadline
        // says they could not.
        let last_words = async {
            for stop in stops {
                if queue.send(stop).await.is_err() {
                    return;
                }
            }
            for line in pending.drain(..) {
                let msg = Message::Text(line.into());
                if let Message::Text(line) = &msg {
                    ui.own_sent(our_name, line, ledger.record(&msg));
                }
                if queue.send(msg).await.is_err() {
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
        match tokio::time::timeout(member::WRITE_DEADLINE, &mut *writer).await {
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
            room,
            ledger: &mut *ledger,
            ui,
        };
        if let Ok(Err(e)) = tokio::time::timeout(LINGER, after.read(recv)).await {
            return Err(e);
        }
        if !after.opening.is_open() {
            let why = match welcomed_in_time {
                false => format!(
                    "the listener did not welcome us within {} s (it may be asking its \
                 owner to let you in), so nothing sent was taken",
                    welcome_within.as_secs()
                ),
                true => "the listener never welcomed us, so what was sent may not have been taken"
                    .into(),
            };
            return Err(Error::RefusedByPeer(why));
        }
        unconfirmed(ledger, peer, "we left")?;
        files_failed(desk)?;
        room.e2e.all_delivered(&room.names, ui)?;
        Ok(Ended::LocalQuit)
    }
}

/// A session that ended cleanly still fails (exit 1) when a file did not get through.
pub(super) fn files_failed(desk: &Desk) -> Result<()> {
    match desk.failures() {
        0 => Ok(()),
        n => Err(Error::Undelivered(format!(
            "{n} file transfer{} did not complete (see above)",
            if n == 1 { "" } else { "s" }
        ))),
    }
}

/// How long a side leaving waits for the opening and its last receipts.
pub(super) fn settle_within(welcome_within: Duration) -> Duration {
    welcome_within.max(member::WRITE_DEADLINE)
}

/// "1 message", "3 messages".
pub(super) fn messages(n: usize) -> String {
    match n {
        1 => "1 message".into(),
        n => format!("{n} messages"),
    }
}

/// "1 line", "3 lines".
pub(super) fn lines(n: usize) -> String {
    match n {
        1 => "1 line".into(),
        n => format!("{n} lines"),
    }
}

/// The session ended cleanly, but was everything we sent confirmed? (`how`: who ended it.)
pub(super) fn unconfirmed(ledger: &Ledger, peer: &PeerInfo, how: &str) -> Result<()> {
    match ledger.unacked() {
        0 => Ok(()),
        n => Err(Error::Undelivered(format!(
            "{how} before {} confirmed your last {}: it may not have been shown",
            crate::sanitize::line(&peer.label),
            lines(n as usize)
        ))),
    }
}

/// The peer said goodbye: what is queued goes out, then our side closes — within the write
/// deadline, since a peer that said QUIT and stopped reading would otherwise hold us for ever
/// (over iroh no TCP user timeout ends it either).
pub(super) async fn peer_left(
    writer: &mut tokio::task::JoinHandle<Result<()>>,
    ledger: &Ledger,
    peer: &PeerInfo,
    desk: &Desk,
) -> Result<crate::session::Ended> {
    match tokio::time::timeout(crate::session::member::WRITE_DEADLINE, &mut *writer).await {
        Ok(_) => {
            unconfirmed(ledger, peer, "it left")?;
            files_failed(desk)?;
            Ok(crate::session::Ended::PeerQuit)
        }
        Err(_) => {
            writer.abort();
            Err(crate::error::Error::Timeout(
                "sending what was typed after the peer said goodbye (it stopped reading, so \
                 it was not taken)",
                crate::session::member::WRITE_DEADLINE.as_secs(),
            ))
        }
    }
}
