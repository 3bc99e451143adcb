//! Every file transfer of one chat, both ways: what was offered, accepted, sent, checked; what
//! goes on the wire next (`outbox`) and what the user should hear (`events`). No I/O of its
//! own: the files' threads do the reading and writing (`disk`), the chat loop the sending.
//!
//! Each transfer has a *local* number (`#3`), shown to the user and used by `/accept 3`, in
//! both directions; the wire's transfer ids are the offering side's (PROTOCOL.md §4.13).

use super::disk::{self, Note, Piece, Reading, Reporter, Target};
use super::names;
use super::offer::Source;
use crate::error::ProtocolError;
use crate::message::{FileMessage, Message};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc as sync_mpsc;
use std::time::Instant;
use tokio::sync::mpsc;

/// How far past what it has written a receiver lets the sender go: the most of one file in
/// flight or in memory at once.
pub const WINDOW: u64 = 8 << 20;

/// Offers from the peer waiting for an answer, at most; more are refused at once.
pub const MAX_WAITING: usize = 64;

/// Files received at once, at most; more accepted ones wait their turn.
pub const MAX_RECEIVING: usize = 4;

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
    /// The peer sent FILES on this connection.
    peer_takes: bool,
    list: Vec<Transfer>,
    next_id: u32,
    /// The highest id the peer offered.
    peer_last: u32,
    auto_taken: u64,
    /// `/send`s being hashed, and those that could not be offered.
    preparing: usize,
    unprepared: usize,
    /// Said once: the peer offered too many files, or sent data for none.
    warned: bool,
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
            peer_takes: false,
            list: Vec::new(),
            next_id: 1,
            peer_last: 0,
            auto_taken: 0,
            preparing: 0,
            unprepared: 0,
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
        let notes = self.notes.clone();
        let run = move || {
            let result = super::offer::prepare(&paths);
            notes.send(Note::Prepared { paths, result });
        };
        if let Err(e) = std::thread::Builder::new()
            .name("schat-file-hash".into())
            .spawn(run)
        {
            self.preparing -= 1;
            self.events
                .push(Event::Note(format!("cannot prepare the files: {e}")));
        }
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

    /// A file's thread reports.
    pub fn on_note(&mut self, note: Note) {
        match note {
            Note::Prepared { paths, result } => {
                self.preparing = self.preparing.saturating_sub(1);
                match result {
                    Ok(sources) => {
                        for source in sources {
                            let local = self.new_local();
                            self.events.push(Event::Offered {
                                local,
                                way: Way::Out,
                                name: source.wire.clone(),
                                size: source.size,
                                hash: source.hash,
                                auto: false,
                            });
                            self.list.push(Transfer {
                                local,
                                way: Way::Out,
                                id: 0,
                                name: source.wire.clone(),
                                size: source.size,
                                hash: source.hash,
                                state: State::Offered,
                                from: 0,
                                at: 0,
                                started: Instant::now(),
                                source: Some(source),
                                reading: None,
                                granted: 0,
                                written: 0,
                                pieces: None,
                                components: Vec::new(),
                                accepted: false,
                            });
                            if self.peer_takes {
                                self.offer_at(self.list.len() - 1);
                            }
                        }
                    }
                    Err(why) => {
                        self.unprepared += 1;
                        let what: Vec<String> =
                            paths.iter().map(|p| p.display().to_string()).collect();
                        self.events.push(Event::Note(format!(
                            "not sent ({}): {why}",
                            what.join(", ")
                        )));
                    }
                }
            }
            Note::Opened { local, have } => {
                let Some(i) = self.find(local) else { return };
                let t = &mut self.list[i];
                if t.state != State::Accepted {
                    return;
                }
                t.state = State::Moving;
                (t.from, t.at, t.written) = (have, have, have);
                t.granted = have.saturating_add(WINDOW).min(t.size);
                t.started = Instant::now();
                let (id, offset, limit) = (t.id, have, t.granted);
                self.outbox
                    .push_back(Message::File(FileMessage::Accept { id, offset, limit }));
                self.events.push(Event::Started {
                    local,
                    way: Way::In,
                    offset,
                });
            }
            Note::Written { local, total } => {
                let Some(i) = self.find(local) else { return };
                let t = &mut self.list[i];
                t.written = total;
                let limit = total.saturating_add(WINDOW).min(t.size);
                // In steps of a quarter window, and the last step whatever its size.
                let worth =
                    limit >= t.granted + WINDOW / 4 || (limit == t.size && t.granted < limit);
                if t.state == State::Moving && worth {
                    t.granted = limit;
                    let id = t.id;
                    self.outbox
                        .push_back(Message::File(FileMessage::Credit { id, limit }));
                }
            }
            Note::Saved { local, path } => {
                let Some(i) = self.find(local) else { return };
                let t = &mut self.list[i];
                t.state = State::Done;
                t.pieces = None;
                let id = t.id;
                self.outbox
                    .push_back(Message::File(FileMessage::Verified { id }));
                self.events.push(Event::Done {
                    local,
                    way: Way::In,
                    name: t.name.clone(),
                    size: t.size,
                    hash: t.hash,
                    path: Some(path),
                    moved: t.at - t.from,
                });
                self.start_waiting();
            }
            Note::Failed { local, reason } => {
                if let Some(i) = self.find(local)
                    && !matches!(self.list[i].state, State::Done | State::Failed | State::Cut)
                {
                    self.fail(i, reason, true);
                }
            }
        }
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

    fn as_receiver(&mut self, msg: FileMessage<'static>) -> Result<(), ProtocolError> {
        let id = msg.id();
        if let FileMessage::Offer {
            size, hash, path, ..
        } = msg
        {
            if id <= self.peer_last {
                return Err(ProtocolError::Unexpected(
                    "FILE OFFER",
                    "with an id not above its last",
                ));
            }
            self.peer_last = id;
            self.offered(id, size, hash, path.into_owned());
            return Ok(());
        }
        let Some(i) = self.find_wire(Way::In, id) else {
            if id > self.peer_last && !self.warned {
                self.warned = true;
                self.events.push(Event::Note(
                    "the peer sent file data it never offered: ignored".into(),
                ));
            }
            return Ok(());
        };
        let t = &mut self.list[i];
        match msg {
            FileMessage::Chunk { offset, data, .. } => {
                if t.state != State::Moving {
                    // Before we accepted: unasked. After it ended: in flight, harmless.
                    if matches!(t.state, State::Offered | State::Accepted) {
                        self.fail(i, "it sent data before it was accepted".into(), true);
                    }
                    return Ok(());
                }
                let end = offset.saturating_add(data.len() as u64);
                let wrong = if offset != t.at {
                    Some("it sent a piece out of order")
                } else if end > t.size {
                    Some("it sent more than it offered")
                } else if end > t.granted {
                    Some("it sent more than it was allowed to (flow control)")
                } else {
                    None
                };
                if let Some(why) = wrong {
                    self.fail(i, why.into(), true);
                    return Ok(());
                }
                t.at = end;
                let sent = t
                    .pieces
                    .as_ref()
                    .is_some_and(|p| p.send(Piece::Data(data.into_owned())).is_ok());
                if !sent {
                    self.fail(i, "writing it stopped".into(), true);
                }
            }
            FileMessage::Done { .. } => match t.state {
                State::Moving if t.at == t.size => {
                    t.state = State::Checking;
                    if let Some(p) = &t.pieces {
                        let _ = p.send(Piece::Done);
                    }
                }
                State::Moving => {
                    let why = format!("it said it was done at {} of {} bytes", t.at, t.size);
                    self.fail(i, why, true);
                }
                State::Offered | State::Accepted => {
                    self.fail(i, "it said it was done before it was accepted".into(), true)
                }
                _ => {}
            },
            FileMessage::Cancel { reason, .. }
                if !matches!(t.state, State::Done | State::Failed) =>
            {
                let why = format!("the sender stopped: {}", crate::sanitize::line(&reason));
                self.fail(i, why, false);
            }
            _ => {}
        }
        Ok(())
    }

    /// The peer offers a file.
    fn offered(&mut self, id: u32, size: u64, hash: [u8; 32], path: String) {
        let waiting = self
            .list
            .iter()
            .filter(|t| t.way == Way::In && t.state == State::Offered)
            .count();
        let refuse = |why: String| {
            Message::File(FileMessage::Reject {
                id,
                reason: why.into(),
            })
        };
        if waiting >= MAX_WAITING {
            self.outbox
                .push_back(refuse("too many offers are waiting for an answer".into()));
            if !self.warned {
                self.warned = true;
                self.events.push(Event::Note(format!(
                    "the peer offered more than {MAX_WAITING} files at once: the rest are \
                     refused"
                )));
            }
            return;
        }
        let local = self.new_local();
        let components = match names::components(&path) {
            Ok(parts) => parts.into_iter().map(str::to_owned).collect(),
            Err(why) => {
                let why = format!("its name is unsafe: {why}");
                self.outbox.push_back(refuse(why.clone()));
                self.events.push(Event::Failed {
                    local,
                    way: Way::In,
                    name: crate::sanitize::line(&path).into_owned(),
                    reason: why,
                });
                return;
            }
        };
        // A file cut earlier in this session comes back under a new id: it carries on.
        let resumed = self.list.iter().position(|t| {
            t.way == Way::In && t.state == State::Cut && t.hash == hash && t.size == size
        });
        let auto = resumed.is_some()
            || (self.policy.auto && self.auto_taken.saturating_add(size) <= AUTO_QUOTA);
        let local = match resumed {
            Some(i) => self.list[i].local,
            None => local,
        };
        if let Some(i) = resumed {
            self.list.remove(i);
        }
        self.events.push(Event::Offered {
            local,
            way: Way::In,
            name: path.clone(),
            size,
            hash,
            auto,
        });
        self.list.push(Transfer {
            local,
            way: Way::In,
            id,
            name: path,
            size,
            hash,
            state: State::Offered,
            from: 0,
            at: 0,
            started: Instant::now(),
            source: None,
            reading: None,
            granted: 0,
            written: 0,
            pieces: None,
            components,
            accepted: false,
        });
        if self.policy.auto && resumed.is_none() && !auto {
            let i = self.list.len() - 1;
            self.fail(
                i,
                format!(
                    "over this session's limit for accepting files without asking ({} GiB)",
                    AUTO_QUOTA >> 30
                ),
                true,
            );
        } else if auto {
            self.auto_taken = self.auto_taken.saturating_add(size);
            let _ = self.accept(Some(local));
        }
    }

    fn as_sender(&mut self, msg: FileMessage<'static>) -> Result<(), ProtocolError> {
        let id = msg.id();
        if id == 0 || id >= self.next_id {
            return Err(ProtocolError::Unexpected(
                msg.name(),
                "for a file we never offered",
            ));
        }
        // (Answers about a transfer that ended, or was offered on an earlier connection, are
        // late, not false.)
        let Some(i) = self.find_wire(Way::Out, id) else {
            return Ok(());
        };
        let t = &mut self.list[i];
        match msg {
            FileMessage::Accept { offset, limit, .. } if t.state == State::Offered => {
                if offset > t.size || limit < offset {
                    return Err(ProtocolError::Unexpected(
                        "FILE ACCEPT",
                        "from beyond the file's end, or with a limit below its offset",
                    ));
                }
                let (Some(source), Some(bulk)) = (t.source.clone(), self.bulk.clone()) else {
                    return Ok(());
                };
                t.state = State::Moving;
                (t.from, t.at) = (offset, offset);
                t.started = Instant::now();
                t.reading = Some(disk::send(
                    t.local,
                    id,
                    source,
                    offset,
                    limit,
                    bulk,
                    self.notes.clone(),
                ));
                self.events.push(Event::Started {
                    local: t.local,
                    way: Way::Out,
                    offset,
                });
            }
            FileMessage::Credit { limit, .. } => {
                if let Some(r) = &t.reading {
                    let _ = r.credit.send(limit);
                }
            }
            FileMessage::Reject { reason, .. }
                if matches!(t.state, State::Offered | State::Moving) =>
            {
                let why = match t.state {
                    State::Offered => "declined",
                    _ => "stopped by the receiver",
                };
                let why = format!("{why}: {}", crate::sanitize::line(&reason));
                self.fail(i, why, false);
            }
            FileMessage::Verified { .. } if t.state == State::Moving => {
                let queued = t
                    .reading
                    .as_ref()
                    .map_or(0, |r| r.queued.load(Ordering::Relaxed));
                if queued != t.size {
                    return Err(ProtocolError::Unexpected(
                        "FILE VERIFIED",
                        "before the file was all sent",
                    ));
                }
                t.at = t.size;
                t.state = State::Done;
                t.reading = None;
                self.events.push(Event::Done {
                    local: t.local,
                    way: Way::Out,
                    name: t.name.clone(),
                    size: t.size,
                    hash: t.hash,
                    path: None,
                    moved: t.size - t.from,
                });
            }
            _ => {}
        }
        Ok(())
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
        if matches!(self.list[i].state, State::Done | State::Failed) {
            return Err(format!("#{local} has already ended"));
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
        for t in &mut self.list {
            if matches!(
                t.state,
                State::Offered | State::Accepted | State::Moving | State::Checking
            ) {
                if t.state == State::Checking {
                    // (The check finishes on its own thread; its note may still come.)
                    continue;
                }
                t.state = State::Cut;
                t.id = 0;
                t.reading = None;
                if let Some(p) = t.pieces.take() {
                    let _ = p.send(Piece::Stop { keep: true });
                }
            }
        }
    }

    /// We leave: whatever has not finished stops, and the peer hears it. Partial files are
    /// kept, so the same file offered again later resumes.
    pub fn leaving(&mut self) {
        self.stop_all("we left before it was done", true);
    }

    /// The peer left: whatever has not finished stops (partial files are kept).
    pub fn peer_left(&mut self) {
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

    /// Whether we are waiting for something of ours to be delivered (or being prepared).
    pub fn sending(&self) -> bool {
        self.preparing > 0
            || self.list.iter().any(|t| {
                t.way == Way::Out && matches!(t.state, State::Offered | State::Moving | State::Cut)
            })
    }

    /// Whether we offered anything here yet (or are preparing to).
    pub fn offered_any(&self) -> bool {
        self.preparing > 0 || self.list.iter().any(|t| t.way == Way::Out)
    }

    /// Whether bytes are moving (or being checked) either way.
    pub fn moving(&self) -> bool {
        self.list
            .iter()
            .any(|t| matches!(t.state, State::Moving | State::Checking))
    }

    /// Whether a file we accepted is still arriving.
    pub fn receiving(&self) -> bool {
        self.list.iter().any(|t| {
            t.way == Way::In
                && matches!(
                    t.state,
                    State::Accepted | State::Moving | State::Checking | State::Cut
                )
        })
    }

    /// How many transfers failed (either way, once started or accepted), and how many of ours
    /// were never delivered.
    pub fn failures(&self) -> usize {
        self.list
            .iter()
            .filter(|t| t.state == State::Failed && (t.way == Way::Out || t.accepted))
            .count()
            + self.unprepared
    }

    /// Progress of every transfer moving bytes.
    pub fn progress(&mut self) -> Vec<Progress<'_>> {
        for t in &mut self.list {
            if let Some(r) = &t.reading {
                t.at = r.queued.load(Ordering::Relaxed);
            } else if t.way == Way::In {
                t.at = t.at.max(t.written);
            }
        }
        self.list
            .iter()
            .filter(|t| t.state == State::Moving)
            .map(|t| Progress {
                local: t.local,
                way: t.way,
                name: &t.name,
                size: t.size,
                at: if t.way == Way::In { t.written } else { t.at },
                from: t.from,
                started: t.started,
            })
            .collect()
    }

    /// `/transfers`: one line each.
    pub fn list(&self) -> Vec<String> {
        self.list
            .iter()
            .map(|t| {
                let state = match t.state {
                    State::Offered if t.way == Way::In => "offered to you: /accept or /reject",
                    State::Offered => "offered, waiting for an answer",
                    State::Accepted => "accepted, waiting to start",
                    State::Moving => "moving",
                    State::Checking => "checking its hash",
                    State::Cut => "cut, waiting for the connection",
                    State::Done => "done",
                    State::Failed => "failed",
                };
                format!(
                    "#{} {} {} ({}): {state}{}",
                    t.local,
                    match t.way {
                        Way::Out => "to peer",
                        Way::In => "from peer",
                    },
                    crate::sanitize::line(&t.name),
                    super::size(t.size),
                    match t.state {
                        State::Moving => format!(", {}%", percent(t.at.max(t.written), t.size)),
                        _ => String::new(),
                    }
                )
            })
            .collect()
    }
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
