//! Every file transfer of one chat, both ways: what was offered, accepted, sent, checked; what
//! goes on the wire next (`outbox`) and what the user should hear (`events`). No I/O of its
//! own: the files' threads do the reading and writing (`disk`), the chat loop the sending.
//!
//! Each transfer has a *local* number (`#3`), shown to the user and used by `/accept 3`, in
//! both directions; the wire's transfer ids are the offering side's (PROTOCOL.md §4.13).

use super::disk::{self, Note, Piece, Reading, Reporter, Seal, Target};
use super::names;
use super::offer::Source;
use crate::error::ProtocolError;
use crate::message::{FileMessage, Message};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, AtomicU64, Ordering};
use std::sync::mpsc as sync_mpsc;
use std::time::Instant;
use tokio::sync::mpsc;

mod incoming;
mod notes;
mod outgoing;
mod status;

#[cfg(test)]
mod tests;

/// How far past what it has written a receiver lets the sender go: the most of one file in
/// flight or in memory at once.
pub const WINDOW: u64 = 8 << 20;

/// The same between room members (PROTOCOL.md §4.14): their bytes wait in the host's queue
/// for the receiver, and what the sender says to everyone else waits behind them.
pub const MEMBER_WINDOW: u64 = 2 << 20;

/// Offers from the peer waiting for an answer or their turn, at most; more are refused at once.
pub const MAX_WAITING: usize = 64;

/// Finished transfers kept for `/transfers`, at most (the oldest go first).
pub const MAX_FINISHED: usize = 256;

/// Refused offers told one by one; beyond this, one line says more were refused.
const TOLD_REFUSALS: u32 = 16;

/// Files received at once, at most; more accepted ones wait their turn.
pub const MAX_RECEIVING: usize = 4;

/// Files read and sent at once, at most; more accepted ones wait their turn.
pub const MAX_SENDING: usize = 4;

/// What `--accept-files` takes in one session, at most, without asking.
pub const AUTO_QUOTA: u64 = 64 << 30;

/// Which way a transfer goes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Way {
    /// We send it.
    Out,
    /// We receive it.
    In,
}

/// What the user hears about.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A file offered (by us, or to us: then it waits for `/accept` unless accepted at once).
    Offered {
        local: u32,
        way: Way,
        name: String,
        size: u64,
        hash: [u8; 32],
        /// Accepted without asking (`--accept-files`), or a resume of one accepted before.
        auto: bool,
    },
    /// The transfer started: from `offset` (more than 0: a resume).
    Started { local: u32, way: Way, offset: u64 },
    /// Delivered and checked: `path` where it was saved (received files).
    Done {
        local: u32,
        way: Way,
        name: String,
        size: u64,
        hash: [u8; 32],
        path: Option<PathBuf>,
        /// Bytes that travelled in this session (less than `size` after a resume).
        moved: u64,
    },
    /// It did not happen, and why.
    Failed {
        local: u32,
        way: Way,
        name: String,
        reason: String,
    },
    /// Something to say that is not about one transfer.
    Note(String),
}

/// Where a transfer stands.
#[derive(Debug, Clone, PartialEq, Eq)]
enum State {
    /// Ours being hashed is not a transfer yet; offered, waiting for an answer.
    Offered,
    /// Accepted by us; waiting for a free slot (`MAX_RECEIVING`) or the partial file.
    Accepted,
    /// Bytes moving.
    Moving,
    /// All bytes there; the receiver is checking.
    Checking,
    /// Cut with the connection: offered again (by the sender) when it is back.
    Cut,
    Done,
    Failed,
}

/// One transfer.
struct Transfer {
    local: u32,
    way: Way,
    /// The wire id (the offering side's).
    id: u32,
    name: String,
    size: u64,
    hash: [u8; 32],
    state: State,
    /// Where the bytes started in this session, and how far they got.
    from: u64,
    at: u64,
    started: Instant,
    /// Sending: the file, and its thread.
    source: Option<Source>,
    reading: Option<Reading>,
    /// Receiving: the receiver's limit granted so far, and the writing thread.
    granted: u64,
    written: u64,
    pieces: Option<sync_mpsc::Sender<Piece>>,
    components: Vec<String>,
    /// We accepted it (a failure after that is one the exit code tells).
    accepted: bool,
}

/// What the session decided about incoming files.
#[derive(Debug, Clone, Default)]
pub struct Policy {
    /// Where received files go (`None`: there is no download folder; accepting fails).
    pub dir: Option<PathBuf>,
    /// `--accept-files`: accept without asking.
    pub auto: bool,
}

/// A transfer's progress, for progress lines.
pub struct Progress<'a> {
    pub local: u32,
    pub way: Way,
    pub name: &'a str,
    pub size: u64,
    pub at: u64,
    pub from: u64,
    pub started: Instant,
}

/// All transfers of a chat.
pub struct Transfers {
    policy: Policy,
    notes: Reporter,
    /// Local numbers, shared by every member's transfers in a room (so `/accept 3` is one).
    numbers: Arc<AtomicU32>,
    bulk: Option<mpsc::Sender<Message<'static>>>,
    /// Between room members: what seals the pieces for the member (else they go as they are).
    seal: Option<Arc<dyn Seal>>,
    /// How far past what it has written the receiver lets a sender go ([`WINDOW`]).
    window: u64,
    /// The peer sent FILES on this connection.
    peer_takes: bool,
    list: Vec<Transfer>,
    next_id: u32,
    /// The highest id the peer offered.
    peer_last: u32,
    /// What `--accept-files` took without asking (shared by a member's transfers with the
    /// host and with every other member: one quota for the session).
    auto_taken: Arc<AtomicU64>,
    /// `/send`s being hashed, and those that could not be offered.
    preparing: usize,
    unprepared: usize,
    /// Said once: the peer offered too many files, or sent data for none.
    warned: bool,
    /// Offers refused for their names, so far.
    refused: u32,
    /// Failures among the transfers [`Transfers::prune`] forgot.
    forgotten_failures: usize,
    /// Messages for the peer, in order.
    pub outbox: VecDeque<Message<'static>>,
    /// What to tell the user.
    pub events: Vec<Event>,
}

impl Transfers {
    /// Transfers whose threads report to `notes`, numbered from `numbers`.
    pub fn new(policy: Policy, notes: Reporter, numbers: Arc<AtomicU32>) -> Self {
        Transfers {
            policy,
            notes,
            numbers,
            bulk: None,
            seal: None,
            window: WINDOW,
            peer_takes: false,
            list: Vec::new(),
            next_id: 1,
            peer_last: 0,
            auto_taken: Default::default(),
            preparing: 0,
            unprepared: 0,
            refused: 0,
            forgotten_failures: 0,
            warned: false,
            outbox: VecDeque::new(),
            events: Vec::new(),
        }
    }

    /// A new connection (the first, or a resumed one): file data goes to `bulk`.
    pub fn connected(&mut self, bulk: mpsc::Sender<Message<'static>>) {
        self.bulk = Some(bulk);
        self.peer_takes = false;
    }

    /// Between room members: pieces are sealed by `seal` from now on (a new session).
    pub fn seal_with(&mut self, seal: Arc<dyn Seal>) {
        self.seal = Some(seal);
    }

    /// How far past what is written a sender may go, for files we receive here.
    pub fn window(&mut self, window: u64) {
        self.window = window;
    }

    /// `--accept-files` takes at most [`AUTO_QUOTA`] across these and `other`'s transfers.
    pub fn share_quota_with(&mut self, other: &Transfers) {
        self.auto_taken = other.auto_taken.clone();
    }

    /// Whether the peer said it takes files (on this connection).
    pub fn peer_takes(&self) -> bool {
        self.peer_takes
    }

    /// The peer sent FILES: what waits for it is offered (again, after a cut).
    pub fn peer_files(&mut self) {
        self.peer_takes = true;
        for i in 0..self.list.len() {
            let t = &self.list[i];
            if t.way == Way::Out && matches!(t.state, State::Cut | State::Offered) && t.id == 0 {
                self.offer_at(i);
            }
        }
    }

    /// `/send PATHS`: hashed on a thread; offered once that is done.
    pub fn send(&mut self, paths: Vec<PathBuf>) {
        self.preparing += 1;
        if let Err(e) = prepare(paths, self.notes.clone()) {
            self.preparing -= 1;
            self.events
                .push(Event::Note(format!("cannot prepare the files: {e}")));
        }
    }

    /// Files hashed elsewhere for these and others could not be prepared: that was told
    /// (and counted) with the others; these only stop waiting for them.
    pub fn forget_prepared(&mut self) {
        self.preparing = self.preparing.saturating_sub(1);
    }

    /// Files hashed elsewhere (once for several peers, by [`prepare`]) are on their way:
    /// their `Note::Prepared` comes to these transfers too, and leaving waits for it.
    pub fn expect_prepared(&mut self) {
        self.preparing += 1;
    }

    fn offer_at(&mut self, i: usize) {
        let id = self.next_id;
        self.next_id += 1;
        let t = &mut self.list[i];
        t.id = id;
        t.state = State::Offered;
        self.outbox.push_back(Message::File(FileMessage::Offer {
            id,
            size: t.size,
            hash: t.hash,
            path: t.name.clone().into(),
        }));
    }

    /// The peer's opening is over without FILES: it does not take files, and ours waiting for
    /// it are not delivered.
    /// (`why`: what the user is told; schat's own reasons say which kind of peer it is.)
    pub fn peer_lacks_files(&mut self, why: &str) {
        for i in 0..self.list.len() {
            let t = &self.list[i];
            if t.way == Way::Out && t.state == State::Offered && t.id == 0 {
                self.fail(i, why.into(), false);
            }
        }
    }

    /// Forgets the oldest finished transfers beyond [`MAX_FINISHED`].
    fn prune(&mut self) {
        let finished = |t: &Transfer| matches!(t.state, State::Done | State::Failed);
        let mut excess = self.list.iter().filter(|t| finished(t)).count();
        if excess <= MAX_FINISHED {
            return;
        }
        excess -= MAX_FINISHED;
        let before = self.failures();
        self.list.retain(|t| {
            let drop = excess > 0 && finished(t);
            excess -= usize::from(drop);
            !drop
        });
        // (What failed still counts for the exit code.)
        self.forgotten_failures += before - self.failures();
    }

    fn new_local(&mut self) -> u32 {
        self.numbers.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// Which desk this is, as its threads' reports say.
    pub fn tag(&self) -> u64 {
        self.notes.tag
    }

    /// Whether transfer `local` is one of these.
    pub fn has(&self, local: u32) -> bool {
        self.find(local).is_some()
    }

    /// Whether an offer to us waits for an answer.
    pub fn asking(&self) -> bool {
        self.list
            .iter()
            .any(|t| t.way == Way::In && t.state == State::Offered)
    }

    fn find(&self, local: u32) -> Option<usize> {
        self.list.iter().position(|t| t.local == local)
    }

    fn find_wire(&self, way: Way, id: u32) -> Option<usize> {
        self.list.iter().position(|t| t.way == way && t.id == id)
    }

    /// Ends transfer `i` as failed; `tell`: the peer hears why (REJECT or CANCEL).
    fn fail(&mut self, i: usize, reason: String, tell: bool) {
        let t = &mut self.list[i];
        let was = std::mem::replace(&mut t.state, State::Failed);
        t.reading = None;
        if let Some(pieces) = t.pieces.take() {
            let _ = pieces.send(Piece::Stop { keep: false });
        }
        let id = t.id;
        if tell && id != 0 && was != State::Cut {
            let reason: std::borrow::Cow<'static, str> = truncate(&reason).into();
            self.outbox.push_back(Message::File(match t.way {
                Way::Out => FileMessage::Cancel { id, reason },
                Way::In => FileMessage::Reject { id, reason },
            }));
        }
        self.events.push(Event::Failed {
            local: t.local,
            way: t.way,
            name: t.name.clone(),
            reason,
        });
        self.start_waiting();
        self.start_sending();
    }

    /// A FILE message from the peer. An error ends the session (PROTOCOL.md §4.13's strict
    /// rules); a transfer that goes wrong only ends that transfer.
    pub fn on_message(&mut self, msg: FileMessage<'static>) -> Result<(), ProtocolError> {
        if !self.peer_takes {
            return Err(ProtocolError::Unexpected(
                msg.name(),
                "without having sent FILES",
            ));
        }
        if msg.from_sender() {
            self.as_receiver(msg)
        } else {
            self.as_sender(msg)
        }
    }

    /// `/accept [N]`: one offer, or every one waiting. Says what it did.
    pub fn accept(&mut self, which: Option<u32>) -> Result<usize, String> {
        if self.policy.dir.is_none() {
            return Err("there is no download folder: give one with --download-dir".into());
        }
        let chosen = self.chosen(which, |t| t.state == State::Offered && t.way == Way::In)?;
        for &i in &chosen {
            self.list[i].state = State::Accepted;
            self.list[i].accepted = true;
        }
        self.start_waiting();
        Ok(chosen.len())
    }

    /// `/reject [N]`: one offer, or every one waiting.
    pub fn reject(&mut self, which: Option<u32>) -> Result<usize, String> {
        let chosen = self.chosen(which, |t| t.state == State::Offered && t.way == Way::In)?;
        for &i in chosen.iter().rev() {
            self.fail(i, "declined".into(), true);
        }
        Ok(chosen.len())
    }

    /// `/cancel N`: stops a transfer either way; the peer hears it.
    pub fn cancel(&mut self, local: u32) -> Result<(), String> {
        let i = self
            .find(local)
            .ok_or_else(|| format!("there is no transfer #{local} (see /transfers)"))?;
        match self.list[i].state {
            State::Done | State::Failed => return Err(format!("#{local} has already ended")),
            State::Checking => {
                return Err(format!("#{local} has all arrived and is being checked"));
            }
            _ => {}
        }
        self.fail(i, "cancelled".into(), true);
        Ok(())
    }

    fn chosen(
        &self,
        which: Option<u32>,
        fits: impl Fn(&Transfer) -> bool,
    ) -> Result<Vec<usize>, String> {
        let chosen: Vec<usize> = (0..self.list.len())
            .filter(|&i| fits(&self.list[i]) && which.is_none_or(|n| self.list[i].local == n))
            .collect();
        match (chosen.is_empty(), which) {
            (true, Some(n)) => Err(format!("no offer #{n} is waiting for an answer")),
            (true, None) => Err("no offer is waiting for an answer".into()),
            _ => Ok(chosen),
        }
    }

    /// Accepted offers start, as many as may run at once.
    fn start_waiting(&mut self) {
        let Some(dir) = self.policy.dir.clone() else {
            return;
        };
        loop {
            let running = self
                .list
                .iter()
                .filter(|t| t.way == Way::In && t.pieces.is_some())
                .count();
            let next = self
                .list
                .iter()
                .position(|t| t.state == State::Accepted && t.pieces.is_none());
            let (true, Some(i)) = (running < MAX_RECEIVING, next) else {
                return;
            };
            let t = &mut self.list[i];
            let target = Target {
                dir: dir.clone(),
                hash: t.hash,
                size: t.size,
                components: t.components.clone(),
            };
            t.pieces = Some(disk::receive(t.local, target, self.notes.clone()));
        }
    }

    /// The connection dropped: what was moving stops, to go on when it is back (the sender
    /// offers those files again; a receiver keeps the partial files).
    pub fn cut(&mut self) {
        self.bulk = None;
        self.peer_takes = false;
        // What was queued for the old connection is stale (ids, offers the re-offers replace).
        self.outbox.clear();
        for i in 0..self.list.len() {
            let t = &mut self.list[i];
            match t.state {
                // An offer to us not yet answered is not taken back without asking: the peer
                // offers it again, and the question is asked again.
                State::Offered if t.way == Way::In => {
                    t.id = 0;
                    self.fail(
                        i,
                        "the connection dropped before you answered".into(),
                        false,
                    );
                }
                State::Offered | State::Accepted | State::Moving => {
                    t.state = State::Cut;
                    t.id = 0;
                    t.reading = None;
                    if let Some(p) = t.pieces.take() {
                        let _ = p.send(Piece::Stop { keep: true });
                    }
                }
                // (A check finishes on its own thread; its note still comes.)
                _ => {}
            }
        }
    }

    /// The bytes of the peer's transfer `id` did not open (between members): it stops, and
    /// the peer hears why.
    pub fn bad_bytes(&mut self, id: u32) {
        if let Some(i) = self.find_wire(Way::In, id)
            && matches!(self.list[i].state, State::Moving)
        {
            let why = "its bytes did not authenticate (altered on the way, or sealed under an \
                       earlier session)";
            self.fail(i, why.into(), true);
        }
    }

    /// Whatever has not finished stops, and the peer hears `why` (it broke the rules).
    pub fn abandon(&mut self, why: &str) {
        self.stop_all(why, true);
    }

    /// We leave: whatever has not finished stops, and the peer hears it. Partial files are
    /// kept, so the same file offered again later resumes.
    pub fn leaving(&mut self) {
        self.stop_all("we left before it was done", true);
    }

    /// The peer left: whatever has not finished stops (partial files are kept), and nothing
    /// more is offered to it.
    pub fn peer_left(&mut self) {
        self.peer_takes = false;
        self.bulk = None;
        self.stop_all("the peer left before it was done", false);
    }

    fn stop_all(&mut self, why: &str, tell: bool) {
        for i in 0..self.list.len() {
            let t = &mut self.list[i];
            if matches!(
                t.state,
                State::Offered | State::Accepted | State::Moving | State::Cut
            ) {
                if let Some(p) = t.pieces.take() {
                    let _ = p.send(Piece::Stop { keep: true });
                }
                self.fail(i, why.into(), tell);
            }
        }
    }
}

/// Walks and hashes `paths` on a thread of its own, which reports `Note::Prepared` to
/// `notes` (a bug there still reports, so that nobody waits for ever).
pub fn prepare(paths: Vec<PathBuf>, notes: Reporter) -> std::io::Result<()> {
    let run = move || {
        let result = std::panic::catch_unwind(|| super::offer::prepare(&paths))
            .unwrap_or_else(|_| Err("preparing them failed unexpectedly".into()));
        notes.send(Note::Prepared { paths, result });
    };
    std::thread::Builder::new()
        .name("schat-file-hash".into())
        .spawn(run)
        .map(drop)
}

/// `done` of `size`, in whole percent (an empty file is all there).
pub fn percent(done: u64, size: u64) -> u64 {
    match size {
        0 => 100,
        _ => ((u128::from(done) * 100) / u128::from(size)) as u64,
    }
}

/// A reason cut to what REJECT and CANCEL carry, at a character boundary.
fn truncate(reason: &str) -> String {
    let mut end = reason.len().min(crate::message::file::MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}
