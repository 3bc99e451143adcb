//! One room member's two tasks and what keeps them fair and finite.
//!
//! - The **reader** takes the member's messages to the host, paced by a [`TokenBucket`]: a
//!   member may inject only its share per second (plus a burst). A flooder is slowed down by
//!   not being read — TCP pushes back on it — so its traffic cannot fill honest members'
//!   outboxes and get *them* dropped as slow.
//! - The **outbox** is bounded in bytes; PONGs, which a member can make us queue at will by
//!   PINGing without reading, are capped separately and dropped beyond [`MAX_QUEUED_PONGS`].
//! - The **writer** sends the outbox with a deadline on every write: a member that stops
//!   reading cannot hold its task and socket for ever.

use super::keepalive::{Lapse, Silence};
use super::opening::Opening;
use crate::bucket::TokenBucket;
use crate::error::{Error, ProtocolError, Result};
use crate::message::{MAX_BODY, Message, Mode};
use crate::receipts::Ledger;
use crate::transport::{RecvHalf, SendHalf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::{OwnedSemaphorePermit, Semaphore, mpsc};
use tokio::time::Instant;

/// Messages queued for a writer are charged at least this much, so floods of tiny messages
/// are bounded too (in the outbox and in the token bucket).
pub const MIN_CHARGE: usize = 64;

/// The writer sends at most this much in one write.
const BATCH_BYTES: usize = 64 * 1024;

/// PONGs waiting in one member's outbox; more are dropped (a lost PONG costs nothing).
pub const MAX_QUEUED_PONGS: usize = 4;

/// Every write to a member must finish within this; a member that does not read for this long
/// is gone.
pub const WRITE_DEADLINE: Duration = Duration::from_secs(20);

/// How much a member may send into the room: a sustained rate and a burst, in bytes of message
/// body (at least [`MIN_CHARGE`] per message).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Rate {
    pub bytes_per_sec: u64,
    pub burst: u64,
}

/// A member's share unless configured: 256 KiB/s sustained, 512 KiB at once.
pub const DEFAULT_RATE: Rate = Rate {
    bytes_per_sec: 256 * 1024,
    burst: 512 * 1024,
};

/// A member's token bucket: one token per byte of message body.
pub fn bucket(rate: Rate, now: Instant) -> TokenBucket {
    TokenBucket::new(rate.bytes_per_sec as f64, rate.burst as f64, now.into_std())
}

/// What a member's reader reports to the host.
pub enum Event {
    /// The member's HELLO: it accepted the host's key and is in chat mode. Only now is it
    /// announced to the room.
    Ready {
        id: u64,
        /// The display name it announced (unchecked; empty: none).
        name: String,
    },
    /// The member announced a new display name (unchecked; empty: none).
    Nick {
        id: u64,
        name: String,
    },
    /// The member asked who is in the room.
    Who {
        id: u64,
    },
    Said {
        id: u64,
        text: String,
    },
    /// The member acknowledges what it shows (its RECEIPTS).
    Receipts {
        id: u64,
    },
    /// The member can resume its session after a cut (its RESUMABLE).
    Resumable {
        id: u64,
    },
    /// The connection resumes an earlier session (its RESUME, before its HELLO).
    Resume {
        id: u64,
        token: zeroize::Zeroizing<[u8; crate::message::TOKEN_LEN]>,
        shown: u64,
    },
    /// The member has shown this many of our counted messages (its ACK, unchecked).
    Acked {
        id: u64,
        count: u64,
    },
    /// The member takes files (its FILES).
    Files {
        id: u64,
    },
    /// A file transfer's message (unchecked: the host's transfers check it).
    File {
        id: u64,
        file: crate::message::FileMessage<'static>,
    },
    /// The member takes PEER (its PAIRS, §4.14).
    Pairs {
        id: u64,
    },
    /// A PEER for another member, to pass on (the host cannot read it).
    Peer {
        id: u64,
        peer: crate::message::PeerMessage<'static>,
    },
    /// A file's bytes for another member (a BULK PEER): the host says where they go (the
    /// member's file queue, and the message re-addressed), and the reader waits for room
    /// there — this member is slowed by a slow receiver, nobody else is.
    Bulk {
        id: u64,
        peer: crate::message::PeerMessage<'static>,
        route: tokio::sync::oneshot::Sender<Option<BulkRoute>>,
    },
    Left {
        id: u64,
        how: Result<String>,
    },
}

/// Where a file's bytes for another member go, and the message as it goes there.
pub type BulkRoute = (mpsc::Sender<Message<'static>>, Message<'static>);

type Queued = (Message<'static>, OwnedSemaphorePermit);

/// A member's bounded queue of outgoing messages.
#[derive(Clone)]
pub struct Outbox {
    tx: mpsc::UnboundedSender<Queued>,
    budget: Arc<Semaphore>,
    pongs: Arc<AtomicUsize>,
    /// The receipts with this member (PROTOCOL.md §4.10): counted messages are recorded as
    /// they are queued — in order, so in the order sent — and kept until it acknowledges them.
    ledger: Arc<std::sync::Mutex<Ledger>>,
    /// While set, messages are recorded but not sent (only PINGs and PONGs go): the member is
    /// away, or resuming and not yet told RESUMED (PROTOCOL.md §4.11).
    held: Arc<AtomicBool>,
}

/// What became of a message offered to a member.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Offer {
    Queued,
    /// The member is not keeping up: its outbox is full.
    Full,
    /// The member can no longer be written to (its writer stopped: it closed its end, or a
    /// write failed). Not slowness: its reader still drains what it sent, up to its QUIT or
    /// end of stream, and the member leaves the room from there.
    Gone,
}

/// The receiving end of an [`Outbox`], for the writer.
pub struct OutboxReceiver {
    rx: mpsc::UnboundedReceiver<Queued>,
    pongs: Arc<AtomicUsize>,
}

impl Outbox {
    /// An outbox holding up to `bytes` (at least one maximal message).
    pub fn new(bytes: usize) -> (Self, OutboxReceiver) {
        let (tx, rx) = mpsc::unbounded_channel();
        let pongs = Arc::new(AtomicUsize::new(0));
        let budget = Arc::new(Semaphore::new(bytes.max(MAX_BODY + MIN_CHARGE)));
        (
            Outbox {
                tx,
                budget,
                pongs: pongs.clone(),
                ledger: Default::default(),
                held: Default::default(),
            },
            OutboxReceiver { rx, pongs },
        )
    }

    /// Queues `msg` for the member.
    #[must_use]
    pub fn offer(&self, msg: Message<'static>) -> Offer {
        let held = self.held.load(Ordering::Relaxed);
        if held && !matches!(msg, Message::Ping(_) | Message::Pong(_) | Message::Quit(_)) {
            // Kept for when it is back (counted ones); the rest would be stale by then.
            if msg.is_counted() {
                self.ledger().record(&msg);
            }
            return Offer::Queued;
        }
        if self.tx.is_closed() {
            // Its connection is gone, but it may come back for this (PROTOCOL.md §4.11).
            if msg.is_counted() {
                self.ledger().record(&msg);
            }
            return Offer::Gone;
        }
        let Ok(charge) = u32::try_from(msg.body_len().max(MIN_CHARGE)) else {
            return Offer::Full;
        };
        match self.budget.clone().try_acquire_many_owned(charge) {
            Ok(permit) => {
                if msg.is_counted() {
                    self.ledger().record(&msg);
                }
                match self.tx.send((msg, permit)) {
                    Ok(()) => Offer::Queued,
                    Err(_) => Offer::Gone,
                }
            }
            Err(_) => Offer::Full,
        }
    }

    /// The receipts with this member.
    pub fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Holds (or releases) what is offered: see [`Outbox::held`].
    pub fn hold(&self, held: bool) {
        self.held.store(held, Ordering::Relaxed);
    }

    /// Queues `msg` again, on a resumed connection: it was recorded when first sent. Outside
    /// the outbox's budget: what is kept is bounded already (its ledger), and a member coming
    /// back to 1 MiB of missed messages must not be dropped as slow for it.
    #[must_use]
    pub fn offer_again(&self, msg: Message<'static>) -> Offer {
        match self.budget.clone().try_acquire_many_owned(0) {
            Ok(permit) => match self.tx.send((msg, permit)) {
                Ok(()) => Offer::Queued,
                Err(_) => Offer::Gone,
            },
            Err(_) => Offer::Full,
        }
    }

    /// Queues a PONG unless [`MAX_QUEUED_PONGS`] are already waiting (then it is dropped: a
    /// member that PINGs without reading fills nothing but its own small allowance).
    pub fn offer_pong(&self, body: Vec<u8>) {
        if self.pongs.fetch_add(1, Ordering::Relaxed) >= MAX_QUEUED_PONGS
            || self.offer(Message::Pong(body.into())) != Offer::Queued
        {
            self.pongs.fetch_sub(1, Ordering::Relaxed);
        }
    }
}

impl OutboxReceiver {
    async fn recv(&mut self) -> Option<Queued> {
        let queued = self.rx.recv().await?;
        Some(self.sent(queued))
    }

    fn try_recv(&mut self) -> Option<Queued> {
        self.rx.try_recv().ok().map(|q| self.sent(q))
    }

    fn sent(&self, queued: Queued) -> Queued {
        if matches!(queued.0, Message::Pong(_)) {
            self.pongs.fetch_sub(1, Ordering::Relaxed);
        }
        queued
    }
}

/// Sends a member's queue, many messages per write when they pile up, each write within
/// [`WRITE_DEADLINE`]. Files' bytes (`bulk`: CHUNKs and DONEs from the host's file threads,
/// which wait while it is full) go only when the queue is empty: room traffic first.
pub async fn writer<W: AsyncWrite + Unpin>(
    mut send: SendHalf<W>,
    mut queue: OutboxReceiver,
    mut bulk: mpsc::Receiver<Message<'static>>,
) -> Result<()> {
    loop {
        tokio::select! {
            biased;
            queued = queue.recv() => match queued {
                Some((msg, _permit)) => send.queue(&msg)?,
                None => break,
            },
            Some(msg) = bulk.recv() => send.queue(&msg)?,
        }
        while !send.quit_sent() && send.queued() < BATCH_BYTES {
            match queue.try_recv() {
                Some((msg, _permit)) => send.queue(&msg)?,
                None => match bulk.try_recv() {
                    Ok(msg) => send.queue(&msg)?,
                    Err(_) => break,
                },
            }
        }
        tokio::time::timeout(WRITE_DEADLINE, send.flush())
            .await
            .map_err(|_| Error::Timeout("a write to the member", WRITE_DEADLINE.as_secs()))??;
        if send.quit_sent() {
            break;
        }
    }
    let _ = tokio::time::timeout(WRITE_DEADLINE, send.close()).await;
    Ok(())
}

/// Who a member's reader reads for, and by which rules.
pub struct Reading {
    /// The member, as the host's events name it.
    pub id: u64,
    /// Where its words go.
    pub events: mpsc::Sender<Event>,
    /// Its outbox, for the PONGs and PINGs the reader sends.
    pub outbox: Outbox,
    pub keepalive: Duration,
    /// Its share of the room.
    pub rate: Rate,
    /// How long it may take to say HELLO.
    pub hello_within: Duration,
}

/// Reads a member: its words go to the host at no more than its [`Rate`]; PINGs are answered;
/// silence is noticed.
pub async fn reader<R: AsyncRead + Unpin>(
    member: Reading,
    mut recv: RecvHalf<R>,
    // Its first message, if the listener read it already (deciding about an invite).
    mut first: Option<Message<'static>>,
) {
    let Reading {
        id,
        events,
        outbox,
        keepalive,
        rate,
        hello_within,
    } = member;
    let mut silence = Silence::new(keepalive);
    let mut bucket = bucket(rate, Instant::now());
    let mut opening = Opening::new(false);
    let (mut receipts, mut resumable, mut files) = (false, false, false);
    let mut pairs = false;
    // Until its HELLO, a connection is not a member; it gets this long (PINGs do not extend
    // it), or it could hold a place in the room for ever.
    let hello_by = Instant::now() + hello_within;
    let how: Result<String> = loop {
        let received = match first.take() {
            Some(msg) => Ok(Some(msg)),
            None => tokio::select! {
            received = recv.recv() => received,
            () = tokio::time::sleep_until(hello_by), if !opening.is_open() => {
                break Err(Error::Timeout("waiting for its HELLO", hello_within.as_secs()));
            }
            lapse = silence.lapse() => match lapse {
                Lapse::Ping => {
                    let _ = outbox.offer(Message::Ping(Vec::new().into()));
                    continue;
                }
                Lapse::Gone(e) => break Err(e),
            }
            },
        };
        silence.heard();
        let msg = match received {
            Ok(Some(msg)) => msg.into_owned(),
            Ok(None) => break Err(Error::ConnectionCut),
            Err(e) => break Err(e),
        };
        let msg = match opening.accept(msg, Mode::Chat) {
            Ok(Some(msg)) => msg,
            Ok(None) => continue,
            Err(e) => break Err(e),
        };
        // Over its share, the member waits here, unread: the flooder is throttled, nobody else.
        // (Not for a file's bytes: the host's credit already bounds those, to what it asked.)
        // (Nor for a member's file bytes to another: that member's credit bounds them, and
        // its queue at the host, which this reader waits for.)
        let charge = match &msg {
            Message::File(crate::message::FileMessage::Chunk { .. }) => 0,
            Message::Peer(peer) if peer.is_bulk() => 0,
            msg => msg.body_len().max(MIN_CHARGE),
        };
        let wait = bucket.take(charge as f64, Instant::now().into_std());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
            silence.heard();
        }
        match msg {
            Message::Text(text) => {
                let text = text.into_owned();
                // Waits only if the host is far behind: then this member is paused, not lost.
                if events.send(Event::Said { id, text }).await.is_err() {
                    return;
                }
            }
            Message::Quit(reason) => break Ok(reason.into_owned()),
            // Once, first (the opening saw to that): it accepted our key and is in the room.
            Message::Hello { name, .. } => {
                let name = name.into_owned();
                if events.send(Event::Ready { id, name }).await.is_err() {
                    return;
                }
            }
            // Admitted by its key already; an invite it also holds changes nothing.
            Message::Invite(_) => {}
            Message::Nick(name) => {
                let name = name.into_owned();
                if events.send(Event::Nick { id, name }).await.is_err() {
                    return;
                }
            }
            Message::Who => {
                if events.send(Event::Who { id }).await.is_err() {
                    return;
                }
            }
            Message::Ping(body) => outbox.offer_pong(body.into_owned()),
            Message::Pong(_) | Message::Rekey | Message::Extension { .. } => {}
            Message::Files if files => {
                break Err(ProtocolError::Unexpected("FILES", "twice").into());
            }
            Message::Files => {
                files = true;
                if events.send(Event::Files { id }).await.is_err() {
                    return;
                }
            }
            Message::File(file) => {
                if events.send(Event::File { id, file }).await.is_err() {
                    return;
                }
            }
            Message::Pairs(_) if pairs => {
                break Err(ProtocolError::Unexpected("PAIRS", "twice").into());
            }
            Message::Pairs(_) => {
                pairs = true;
                if events.send(Event::Pairs { id }).await.is_err() {
                    return;
                }
            }
            // Only to pass on (GONE is the host's word, never a member's).
            Message::Peer(peer) if !pairs || peer.op == crate::message::peer::PeerOp::Gone => {
                break Err(ProtocolError::Unexpected(
                    "PEER",
                    "without PAIRS first, or a GONE from a member",
                )
                .into());
            }
            Message::Peer(peer) if peer.is_bulk() => {
                let (route, routed) = tokio::sync::oneshot::channel();
                if events.send(Event::Bulk { id, peer, route }).await.is_err() {
                    return;
                }
                if let Ok(Some((to, msg))) = routed.await {
                    // Not for ever: a receiver that stops reading is dropped by its writer's
                    // deadline, and this piece with it.
                    let _ = tokio::time::timeout(WRITE_DEADLINE, to.send(msg)).await;
                    silence.heard();
                }
            }
            Message::Peer(peer) => {
                if events.send(Event::Peer { id, peer }).await.is_err() {
                    return;
                }
            }
            Message::Receipts if receipts => {
                break Err(ProtocolError::Unexpected("RECEIPTS", "twice").into());
            }
            Message::Receipts => {
                receipts = true;
                if events.send(Event::Receipts { id }).await.is_err() {
                    return;
                }
            }
            Message::Resumable if resumable => {
                break Err(ProtocolError::Unexpected("RESUMABLE", "twice").into());
            }
            Message::Resumable => {
                resumable = true;
                if events.send(Event::Resumable { id }).await.is_err() {
                    return;
                }
            }
            // (The opening let it through only before its HELLO.)
            Message::Resume { token, shown } => {
                if events
                    .send(Event::Resume { id, token, shown })
                    .await
                    .is_err()
                {
                    return;
                }
            }
            // The room checks it against what it sent (we only offer receipts).
            Message::Ack(count) => {
                if events.send(Event::Acked { id, count }).await.is_err() {
                    return;
                }
            }
            other => {
                break Err(ProtocolError::Unexpected(other.name(), "from a room member").into());
            }
        }
    };
    let _ = events.send(Event::Left { id, how }).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pongs_beyond_the_cap_are_dropped_and_the_cap_frees_as_they_are_sent() {
        let (outbox, mut rx) = Outbox::new(1 << 20);
        for _ in 0..100 {
            outbox.offer_pong(vec![0; 1000]);
        }
        let mut queued = 0;
        while rx.try_recv().is_some() {
            queued += 1;
        }
        assert_eq!(queued, MAX_QUEUED_PONGS);
        outbox.offer_pong(Vec::new());
        assert!(rx.try_recv().is_some(), "room again once they were sent");
    }
}
