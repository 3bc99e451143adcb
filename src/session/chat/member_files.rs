//! Files with the other members of a room, each over our end-to-end session with it
//! (PROTOCOL.md §4.14, "Files between members"): one set of transfers per member, whose
//! steering messages are sealed like lines and whose bytes are sealed by the reading thread.
//!
//! A session that is new (the first, or one that took another's place) starts with our
//! FILES; what was moving under an old one stops and is offered again, as after a cut. When
//! our own connection to the host was cut, file bytes between us and every member may be
//! lost: we say FILES with its restart flag, and each member does the same.

use super::files::Desk;
use crate::files::{Reporter, Transfers};
use crate::keys::PublicKey;
use crate::message::Message;
use crate::session::room_e2e::FileNews;
use crate::session::room_view::RoomView;
use crate::ui::Ui;
use std::sync::Arc;
use tokio::time::Instant;

/// Departed members' transfers kept, at most (the oldest go first).
const MAX_RETIRED: usize = 64;

/// How long after a session is up a member's FILES may take; one that never comes means its
/// schat does not take files, and what waits for it is not delivered.
const FILES_WITHIN: std::time::Duration = std::time::Duration::from_secs(10);

/// Our transfers with one member.
pub(crate) struct MemberFiles {
    pub(super) transfers: Transfers,
    /// It broke the files' rules on this session: nothing more of its files is taken until a
    /// new session.
    broken: bool,
    /// It said FILES on some session: a FILE while we wait for its FILES again (after a cut)
    /// is one it sent before it heard of the cut — late, not a breach.
    said_files: bool,
    /// When its session came up without its FILES yet (files offered meanwhile wait for it).
    files_due: Option<Instant>,
    /// Its FILES did not come in time: what is prepared for it fails at once.
    files_expired: bool,
}

impl MemberFiles {
    /// Whether `/send` offers to it: it said FILES, or its session is new and may still.
    pub(super) fn may_take_files(&self) -> bool {
        !self.broken && (self.transfers.peer_takes() || self.files_due.is_some())
    }
}

impl Desk {
    /// Our transfers with `key`, new ones (sealed for it) if it has none yet.
    fn member(&mut self, key: PublicKey) -> &mut MemberFiles {
        let Desk {
            members,
            reporter,
            numbers,
            policy,
            bulk,
            transfers,
            last_tag,
            ..
        } = self;
        members.entry(key).or_insert_with(|| {
            *last_tag += 1;
            let reporter = Reporter {
                tag: *last_tag,
                tx: reporter.clone(),
            };
            let mut t = Transfers::new(policy.clone(), reporter, numbers.clone());
            // (Less in flight than with the host: a member's bytes wait in the host's queue
            // for the receiver, behind which the sender's other words to the room wait too.)
            t.window(crate::files::transfers::MEMBER_WINDOW);
            t.share_quota_with(transfers);
            if let Some(bulk) = bulk {
                t.connected(bulk.clone());
            }
            MemberFiles {
                transfers: t,
                broken: false,
                said_files: false,
                files_due: None,
                files_expired: false,
            }
        })
    }

    /// What the sessions with the members brought for files; then what our transfers with
    /// them want sent is sealed, and what happened shown.
    pub(super) fn hear_members(&mut self, room: &mut RoomView, ui: &Ui) {
        while let Some(news) = room.e2e.file_news.pop_front() {
            self.member_news(news, room, ui);
        }
        self.flush_members(room);
        self.show_members(room, ui);
    }

    /// What happened to our transfers with the members (those who left included).
    pub(super) fn show_members(&mut self, room: &RoomView, ui: &Ui) {
        let members = self.members.iter_mut().map(|(k, m)| (k, &mut m.transfers));
        for (key, transfers) in members.chain(self.retired.iter_mut().map(|(k, t)| (&*k, t))) {
            let label = room.names.label(key);
            let who = room.speaker(key, &label);
            for event in std::mem::take(&mut transfers.events) {
                ui.file_event(&who, &event);
            }
        }
    }

    fn member_news(&mut self, news: FileNews, room: &mut RoomView, ui: &Ui) {
        match news {
            FileNews::Session { key, renewed } => {
                let seal = room.e2e.bulk_sealer(&key);
                let member = self.member(key);
                if renewed {
                    // What the old session sealed and is still on its way will not open.
                    member.transfers.cut();
                    self.reconnect(&key);
                }
                let member = self.member(key);
                member.broken = false;
                member.files_due = Some(Instant::now() + FILES_WITHIN);
                if let Some(seal) = seal {
                    member.transfers.seal_with(Arc::new(seal));
                }
                let _ = room.e2e.seal_files(&key, false);
            }
            FileNews::Files { from, restart } => {
                let Some(member) = self.members.get_mut(&from) else {
                    return;
                };
                if member.broken {
                    return;
                }
                if restart {
                    // Its connection to the host was cut: bytes between us may be lost.
                    member.transfers.cut();
                    self.reconnect(&from);
                    let _ = room.e2e.seal_files(&from, false);
                }
                if let Some(member) = self.members.get_mut(&from) {
                    member.said_files = true;
                    member.files_due = None;
                    member.files_expired = false;
                    member.transfers.peer_files();
                }
            }
            FileNews::File { from, file } => {
                let Some(member) = self.members.get_mut(&from) else {
                    return;
                };
                if member.said_files && !member.transfers.peer_takes() {
                    return;
                }
                if member.broken {
                    // Its offers are answered all the same, or it would wait for ever.
                    if let crate::message::FileMessage::Offer { id, .. } = file {
                        let reason = "its files are refused until a new session (it broke the \
                                      rules of files)";
                        let reject = crate::message::FileMessage::Reject {
                            id,
                            reason: reason.into(),
                        };
                        member.transfers.outbox.push_back(Message::File(reject));
                    }
                    return;
                }
                if let Err(e) = member.transfers.on_message(file) {
                    // Not the host's doing (it was sealed): the member's. Its files stop; the
                    // room goes on.
                    member.broken = true;
                    let why = format!("it broke the rules of files: {e}");
                    member.transfers.abandon(&why);
                    ui.warn(format_args!(
                        "{}'s files are refused until a new session: {e}",
                        room.names.label(&from)
                    ));
                }
            }
            FileNews::BadBulk { from, id } => {
                if let Some(member) = self.members.get_mut(&from) {
                    member.transfers.bad_bytes(id);
                }
            }
            // Its session is over: one it comes back with is new (its ids start again).
            FileNews::Left(key) => {
                if let Some(mut member) = self.members.remove(&key) {
                    member.transfers.peer_left();
                    let label = room.names.label(&key);
                    let who = room.speaker(&key, &label);
                    for event in std::mem::take(&mut member.transfers.events) {
                        ui.file_event(&who, &event);
                    }
                    self.retire(key, member.transfers);
                }
            }
        }
    }

    /// Keeps a departed member's transfers for `/transfers` and the exit code — if it had
    /// any: in a busy room most never do, and members come and go for days. Beyond
    /// [`MAX_RETIRED`], the oldest go, their failures still counted.
    fn retire(&mut self, key: PublicKey, transfers: Transfers) {
        if transfers.is_empty() {
            return;
        }
        self.retired.push((key, transfers));
        if self.retired.len() > MAX_RETIRED {
            let (_, oldest) = self.retired.remove(0);
            self.retired_failures += oldest.failures();
        }
    }

    /// When a member's FILES is overdue, if one is awaited.
    pub(super) fn files_due(&self) -> Option<Instant> {
        self.members.values().filter_map(|m| m.files_due).min()
    }

    /// Members whose FILES never came do not take files: what waits for them fails.
    pub(super) fn expire_members(&mut self) {
        let now = Instant::now();
        for member in self.members.values_mut() {
            if member.files_due.is_some_and(|due| due <= now) {
                member.files_due = None;
                member.files_expired = true;
            }
        }
        self.refuse_expired();
    }

    /// What waits for a member whose FILES never came fails (also what was still being
    /// hashed for it when the time ran out).
    pub(super) fn refuse_expired(&mut self) {
        for member in self.members.values_mut().filter(|m| m.files_expired) {
            if !member.transfers.peer_takes() {
                let why = "it did not say it takes files within 10 s of its session (an older \
                           schat does not)";
                member.transfers.peer_lacks_files(why);
            }
        }
    }

    /// Transfers cut (they dropped their connection) are handed the current one again.
    fn reconnect(&mut self, key: &PublicKey) {
        if let (Some(bulk), Some(member)) = (self.bulk.clone(), self.members.get_mut(key)) {
            member.transfers.connected(bulk);
        }
    }

    /// Our connection to the host was cut: what moved with every member stops, to go on
    /// once we are back (FILES with the restart flag, sealed now, goes out then).
    pub(super) fn cut_members(&mut self, room: &mut RoomView) {
        let keys: Vec<PublicKey> = self.members.keys().copied().collect();
        for key in keys {
            if let Some(member) = self.members.get_mut(&key) {
                member.transfers.cut();
            }
            let _ = room.e2e.seal_files(&key, true);
        }
    }

    /// What our transfers with the members want sent, sealed for each (a member without a
    /// session gets nothing: its transfers end when it leaves).
    pub(super) fn flush_members(&mut self, room: &mut RoomView) {
        for (key, member) in &mut self.members {
            while let Some(msg) = member.transfers.outbox.pop_front() {
                if let Message::File(file) = msg {
                    let _ = room.e2e.seal_file(key, &file);
                }
            }
        }
    }
}
