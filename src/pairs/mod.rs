//! A room end to end (PROTOCOL.md §4.14): a schat/2 session with every other member, run
//! through the host as PEER messages that the host routes by key but cannot read, alter
//! unseen, or put another member's name on.
//!
//! ```text
//!  alice ──PEER(to bob: handshake 1)────▶ host ──PEER(from alice: handshake 1)──▶ bob
//!        ◀─PEER(from bob: handshake 2)───      ◀─PEER(to alice: handshake 2)────
//!        ──PEER(to bob: handshake 3)────▶      ──PEER(from alice: handshake 3)──▶
//!        ──PEER(to bob: SEALED n, text)─▶      ──PEER(from alice: SEALED n, …)──▶
//! ```
//!
//! Pure state, no I/O: the PEER messages to send pile up in [`Pairs::outbox`], what was
//! heard in [`Pairs::heard`]. A message to the room is sealed once per member (Signal's
//! first group design): each copy is authenticated by the pair's own session, so a member
//! can tell who wrote it, and the host, holding none of the sessions, can read none of it.
//! Every sealed message carries its nonce, so one the host drops shows as a gap and one it
//! replays or reorders as going backwards; neither breaks the session.

mod files;
mod handshake;
#[cfg(test)]
mod tests;

pub use files::{BulkSealer, MAX_BULK_DATA};

use crate::cipher::{CipherState, TAG_LEN};
use crate::handshake::core::{Initiator, Randomness, Responder, ResponderSent};
use crate::keys::{Identity, PublicKey};
use crate::message::peer::{self, PeerOp, SEALED_HEADER};
use crate::message::{MAX_BODY, Message, PeerMessage};
use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

/// The start of a pair's prologue; both members' keys follow, the initiator's first.
pub const PROLOGUE: &[u8] = b"schat/2 pair";

/// How long a pair's handshake may take, from our first message to the session.
pub const HANDSHAKE_WITHIN: Duration = Duration::from_secs(20);

/// The most members we keep sessions with (a room holds fewer; a host announcing more is
/// lying, and must not make us run handshakes without end).
pub const MAX_PAIRS: usize = 256;

/// Messages kept for one member while its session is set up; older ones beyond are dropped
/// (and said: [`Heard::Dropped`]).
pub const MAX_QUEUED: usize = 64;

/// PEER messages waiting to be sent beyond which a handshake is not answered: a host that
/// sends handshakes and does not read must not make us pile up answers.
pub const MAX_OUTBOX: usize = 1024;

/// The first wait before a failed session is tried again; it doubles up to [`RETRY_MAX`].
pub const RETRY_FIRST: Duration = Duration::from_secs(5);
pub const RETRY_MAX: Duration = Duration::from_secs(300);

/// The longest text a sealed message carries: a PEER body minus its header, the pair's tag
/// and the inner type byte.
pub const MAX_SEALED_TEXT: usize = MAX_BODY - SEALED_HEADER - TAG_LEN - 1;

/// The prologue of the pair (`initiator`, `responder`): binding both keys means a host that
/// passes one member's handshake to another fails it.
pub fn prologue(initiator: &PublicKey, responder: &PublicKey) -> Vec<u8> {
    [PROLOGUE, initiator.as_bytes(), responder.as_bytes()].concat()
}

/// What the room's members told us, through their sessions (or what the host did to them).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Heard {
    /// A session with `key` is up: the member proved its key.
    Open(PublicKey),
    /// A new session with `key` took the place of the open one (what was sealed under the
    /// old one and is still on its way will not open).
    Renewed(PublicKey),
    /// `from` takes files over our session (FILES); `restart`: its connection to the host
    /// was cut, so what was moving between us stops and starts again.
    Files { from: PublicKey, restart: bool },
    /// A FILE message from `from`, for its transfers with us.
    File {
        from: PublicKey,
        file: crate::message::FileMessage<'static>,
    },
    /// A file's bytes from `from` that did not open, for its transfer `id` (as the nonce says).
    BadBulk { from: PublicKey, id: u32 },
    /// `from` wrote this; to the room, or to us alone (`private`).
    Said {
        from: PublicKey,
        text: String,
        private: bool,
    },
    /// Messages from `from` that never arrived: dropped by the host (or lost in a cut).
    Lost { from: PublicKey, count: u64 },
    /// A message said to be from `from` that is not shown: `why`.
    Refused { from: PublicKey, why: &'static str },
    /// A message waiting for `key`'s session was dropped: too many waited.
    Dropped { key: PublicKey },
    /// No session with `key`: `why`; `undelivered` messages waiting for it are dropped.
    /// `gone`: the host says it has no such member that takes PEER (else it is tried again
    /// later).
    Failed {
        key: PublicKey,
        why: String,
        undelivered: usize,
        gone: bool,
    },
}

/// Where a message for the room went.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct Reach {
    /// Sealed and queued to send.
    pub sealed: usize,
    /// Waiting for a session being set up.
    pub waiting: usize,
    /// Members without a session: not sent to them.
    pub unreachable: Vec<PublicKey>,
}

enum State {
    /// We sent handshake message 1.
    Started(Box<Initiator>, Instant),
    /// We answered its message 1 with message 2.
    Answered(Box<ResponderSent>, Instant),
    Open(Box<Session>),
    /// No session: why; when to try again (`None`: not, the host says it is not there).
    Failed(String, Option<Instant>),
}

struct Session {
    /// Shared with the threads that seal a file's bytes for the member ([`BulkSealer`]).
    send: std::sync::Arc<CipherState>,
    recv: CipherState,
    /// The nonce of our next sealed message to it.
    sent: u64,
    /// The nonce we expect next from it.
    next: u64,
    /// The pair's handshake hash, for the member-to-member safety number's channel binding.
    hash: [u8; 32],
}

struct Pair {
    state: State,
    /// Inner plaintexts (type byte and body) waiting for the session.
    queued: VecDeque<Vec<u8>>,
    /// A handshake the member started while our session is open: the session goes on until
    /// this one ends (a replayed message 1 must not take it down).
    renewal: Option<(Box<ResponderSent>, Instant)>,
    /// A handshake we started while our session is open, because what the member sealed no
    /// longer opened (the two sides hold different sessions: a renewal whose message 3 was
    /// lost). The session goes on until this one ends.
    ours: Option<(Box<Initiator>, Instant)>,
    /// When we last started one of those.
    last_renewal: Option<Instant>,
    /// Failures in a row (the wait before the next try doubles).
    failures: u32,
}

impl Pair {
    fn new(state: State) -> Pair {
        Pair {
            state,
            queued: VecDeque::new(),
            renewal: None,
            ours: None,
            last_renewal: None,
            failures: 0,
        }
    }
}

/// Our sessions with the other members of one room.
pub struct Pairs {
    identity: Identity,
    us: PublicKey,
    pairs: HashMap<PublicKey, Pair>,
    /// PEER messages to send to the host, in order.
    pub outbox: VecDeque<PeerMessage<'static>>,
    /// What happened, to be shown.
    pub heard: VecDeque<Heard>,
    /// We are leaving: no new sessions, and handshakes from members we never set one up with
    /// are let go without a word.
    leaving: bool,
}

impl Pairs {
    /// No sessions yet. `identity` is ours (a copy the pairs own).
    pub fn new(identity: Identity) -> Pairs {
        Pairs {
            us: *identity.public(),
            identity,
            pairs: HashMap::new(),
            outbox: VecDeque::new(),
            heard: VecDeque::new(),
            leaving: false,
        }
    }

    /// We are leaving: members who join from now on get no session with us.
    pub fn leaving(&mut self) {
        self.leaving = true;
    }

    /// A member is in the room: we start a handshake with it (so does it; when both start
    /// at once, the one from the smaller key goes on, §4.14).
    pub fn present(&mut self, key: PublicKey, now: Instant) {
        // (A roster repeats who is there: one we know already keeps its state.)
        if key == self.us
            || self.leaving
            || self.pairs.contains_key(&key)
            || self.pairs.len() >= MAX_PAIRS
        {
            return;
        }
        self.pairs
            .insert(key, Pair::new(State::Failed(String::new(), None)));
        self.start(key, now);
    }

    /// A member left the room: its session ends (it reads nothing said after). Returns how
    /// many messages were still waiting for it.
    pub fn left(&mut self, key: &PublicKey) -> usize {
        self.pairs.remove(key).map_or(0, |p| p.queued.len())
    }

    /// Handshakes under way.
    pub fn setting_up(&self) -> usize {
        self.pairs
            .values()
            .filter(|p| matches!(p.state, State::Started(..) | State::Answered(..)))
            .count()
    }

    /// The members with messages still waiting for a session, and how many.
    pub fn unsent(&self) -> Vec<(PublicKey, usize)> {
        let mut unsent: Vec<(PublicKey, usize)> = self
            .pairs
            .iter()
            .filter(|(_, p)| !p.queued.is_empty())
            .map(|(k, p)| (*k, p.queued.len()))
            .collect();
        unsent.sort();
        unsent
    }

    /// Until when messages waiting for a session are worth waiting for, when leaving: each
    /// handshake under way gets `within` from its start (a member that answers does so in
    /// milliseconds; one that does not must not hold us). `None`: nothing to wait for.
    pub fn worth_waiting_until(&self, within: Duration, now: Instant) -> Option<Instant> {
        self.pairs
            .values()
            .filter(|p| !p.queued.is_empty())
            .filter_map(|p| match p.state {
                State::Started(_, at) | State::Answered(_, at) => Some(at + within),
                _ => None,
            })
            .filter(|until| *until > now)
            .max()
    }

    /// Messages waiting for sessions being set up.
    pub fn waiting(&self) -> usize {
        self.pairs.values().map(|p| p.queued.len()).sum()
    }

    /// Whether we can seal for `key` now.
    pub fn is_open(&self, key: &PublicKey) -> bool {
        self.pairs
            .get(key)
            .is_some_and(|p| matches!(p.state, State::Open(_)))
    }

    /// The handshake hash of our session with `key`, once open.
    pub fn session_hash(&self, key: &PublicKey) -> Option<[u8; 32]> {
        match &self.pairs.get(key)?.state {
            State::Open(s) => Some(s.hash),
            _ => None,
        }
    }

    /// The members we have sessions with (or are setting them up), and whether each is open.
    pub fn members(&self) -> impl Iterator<Item = (&PublicKey, bool)> {
        self.pairs
            .iter()
            .filter(|(_, p)| !matches!(p.state, State::Failed(..)))
            .map(|(k, p)| (k, matches!(p.state, State::Open(_))))
    }

    /// Seals `inner` (a message's type byte and body: TEXT or PRIVATE) for every member: at
    /// once where the session is open, later where it is being set up.
    pub fn seal_to_all(&mut self, inner: &[u8]) -> Reach {
        let keys: Vec<PublicKey> = self.pairs.keys().copied().collect();
        let mut reach = Reach::default();
        for key in keys {
            match self.seal_to(&key, inner) {
                Ok(true) => reach.sealed += 1,
                Ok(false) => reach.waiting += 1,
                Err(_) => reach.unreachable.push(key),
            }
        }
        reach.unreachable.sort();
        reach
    }

    /// Seals `inner` for `key`: `Ok(true)` sealed now, `Ok(false)` once its session is up,
    /// `Err(why)` not at all.
    pub fn seal_to(&mut self, key: &PublicKey, inner: &[u8]) -> Result<bool, String> {
        let pair = self
            .pairs
            .get_mut(key)
            .ok_or("no end-to-end session with it")?;
        match &mut pair.state {
            State::Open(session) => {
                let counter = session.sent;
                let mut buf = vec![0u8; inner.len() + TAG_LEN];
                buf[..inner.len()].copy_from_slice(inner);
                session
                    .send
                    .seal_at(counter, &mut buf, inner.len())
                    .map_err(|e| e.to_string())?;
                session.sent += 1;
                self.send(
                    *key,
                    PeerOp::Sealed {
                        counter,
                        ciphertext: buf.into(),
                    },
                );
                Ok(true)
            }
            State::Started(..) | State::Answered(..) => {
                if pair.queued.len() == MAX_QUEUED {
                    pair.queued.pop_front();
                    self.heard.push_back(Heard::Dropped { key: *key });
                }
                pair.queued.push_back(inner.to_vec());
                Ok(false)
            }
            State::Failed(why, _) => Err(why.clone()),
        }
    }

    /// A PEER from the host: `msg.key` is the member it is from.
    pub fn on_peer(&mut self, msg: PeerMessage<'_>, now: Instant) {
        let from = PublicKey::from_bytes(msg.key);
        if from == self.us {
            return self.refused(from, "it names us as its author");
        }
        match msg.op {
            PeerOp::Handshake { step: 1, message } => self.on_message_1(from, &message, now),
            PeerOp::Handshake { step: 2, message } => self.on_message_2(from, &message, now),
            PeerOp::Handshake { message, .. } => self.on_message_3(from, &message, now),
            PeerOp::Sealed {
                counter,
                ciphertext,
            } => self.open(from, counter, &ciphertext, now),
            PeerOp::Bulk { nonce, ciphertext } => self.open_bulk(from, nonce, &ciphertext),
            PeerOp::Gone => {
                if self
                    .pairs
                    .get(&from)
                    .is_some_and(|p| !matches!(p.state, State::Failed(..)))
                {
                    let why = "the host has no such member that talks end to end (it left, or \
                               its schat is older)";
                    self.fail(from, why.into(), now, true);
                }
            }
        }
    }

    /// Handshakes that took too long fail; failed sessions are tried again when due.
    pub fn expire(&mut self, now: Instant) {
        let mut late = Vec::new();
        let mut retry = Vec::new();
        for (key, pair) in &mut self.pairs {
            if pair
                .renewal
                .as_ref()
                .is_some_and(|(_, at)| now >= *at + HANDSHAKE_WITHIN)
            {
                pair.renewal = None;
            }
            if pair
                .ours
                .as_ref()
                .is_some_and(|(_, at)| now >= *at + HANDSHAKE_WITHIN)
            {
                pair.ours = None;
            }
            match pair.state {
                State::Started(_, at) | State::Answered(_, at) if now >= at + HANDSHAKE_WITHIN => {
                    late.push(*key)
                }
                State::Failed(_, Some(at)) if now >= at => retry.push(*key),
                _ => {}
            }
        }
        for key in late {
            let why = format!(
                "no end-to-end session within {} s (the member or the host did not answer); \
                 trying again later",
                HANDSHAKE_WITHIN.as_secs()
            );
            self.fail(key, why, now, false);
        }
        for key in retry {
            self.start(key, now);
        }
    }

    /// When [`Self::expire`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.pairs
            .values()
            .flat_map(|p| {
                let state = match p.state {
                    State::Started(_, at) | State::Answered(_, at) => Some(at + HANDSHAKE_WITHIN),
                    State::Failed(_, retry) => retry,
                    State::Open(_) => None,
                };
                state
                    .into_iter()
                    .chain(p.renewal.as_ref().map(|(_, at)| *at + HANDSHAKE_WITHIN))
                    .chain(p.ours.as_ref().map(|(_, at)| *at + HANDSHAKE_WITHIN))
            })
            .min()
    }

    fn open(&mut self, from: PublicKey, counter: u64, ciphertext: &[u8], now: Instant) {
        let Some(State::Open(session)) = self.pairs.get_mut(&from).map(|p| &mut p.state) else {
            return self.refused(from, "sealed for a session we do not have with it");
        };
        if peer::bulk_id(counter).is_some() {
            // (A file's bytes delivered as a line: it would move the count past every line.)
            return self.refused(from, "a file's bytes sent as a line");
        }
        if counter < session.next {
            return self.refused(
                from,
                "it came again or out of order (replayed or reordered on the way, or sent so)",
            );
        }
        let mut buf = ciphertext.to_vec();
        let Ok(len) = session.recv.open_at(counter, &mut buf) else {
            self.renew(from, now);
            return self.refused(
                from,
                "it did not authenticate (altered or forged on the way)",
            );
        };
        let lost = counter - session.next;
        session.next = counter + 1;
        if lost > 0 {
            self.heard.push_back(Heard::Lost { from, count: lost });
        }
        match Message::decode(&buf[..len]) {
            Ok(Message::Text(text)) => self.heard.push_back(Heard::Said {
                from,
                text: text.into_owned(),
                private: false,
            }),
            Ok(Message::Private(text)) => self.heard.push_back(Heard::Said {
                from,
                text: text.into_owned(),
                private: true,
            }),
            Ok(Message::Files) => self.heard.push_back(Heard::Files {
                from,
                restart: false,
            }),
            Ok(Message::File(file)) if !file.is_bulk() => self.heard.push_back(Heard::File {
                from,
                file: file.into_owned(),
            }),
            Err(_) if buf[..len] == files::FILES_RESTART => self.heard.push_back(Heard::Files {
                from,
                restart: true,
            }),
            // Newer members may seal more; what we do not know we skip.
            Ok(Message::Extension { .. }) => {}
            Ok(_) | Err(_) => self.refused(from, "a kind of message members do not seal"),
        }
    }

    fn refused(&mut self, from: PublicKey, why: &'static str) {
        self.heard.push_back(Heard::Refused { from, why });
    }

    /// No session with `key`: what waited for it is dropped; unless the host says it is
    /// not there (`gone`), it is tried again later, each time after twice as long.
    fn fail(&mut self, key: PublicKey, why: String, now: Instant, gone: bool) {
        let Some(pair) = self.pairs.get_mut(&key) else {
            return;
        };
        let undelivered = pair.queued.len();
        pair.queued.clear();
        pair.renewal = None;
        pair.failures = pair.failures.saturating_add(1);
        let wait = RETRY_FIRST
            .saturating_mul(1 << pair.failures.min(7).saturating_sub(1))
            .min(RETRY_MAX);
        let retry = (!gone).then(|| now + wait);
        pair.state = State::Failed(why.clone(), retry);
        self.heard.push_back(Heard::Failed {
            key,
            why,
            undelivered,
            gone,
        });
    }

    fn send(&mut self, to: PublicKey, op: PeerOp<'static>) {
        self.outbox.push_back(PeerMessage {
            key: *to.as_bytes(),
            op,
        });
    }
}

fn handshake(step: u8, message: Vec<u8>) -> PeerOp<'static> {
    debug_assert_eq!(message.len(), peer::HANDSHAKE_LENS[usize::from(step - 1)]);
    PeerOp::Handshake {
        step,
        message: message.into(),
    }
}
