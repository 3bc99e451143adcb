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

/// Our transfers with one member.
pub(crate) struct MemberFiles {
    pub(super) transfers: Transfers,
    /// It broke the files' rules on this session: nothing more of its files is taken until a
    /// new session.
    broken: bool,
    /// It said FILES on some session: a FILE while we wait for its FILES again (after a cut)
    /// is one it sent before it heard of the cut — late, not a breach.
    said_files: bool,
}

impl Desk {
    /// Our transfers with `key`, new ones (sealed for it) if it has none yet.
    fn member(&mut self, key: PublicKey) -> &mut MemberFiles {
        let tag = self.members.len() as u64 + 1;
        let Desk {
            members,
            reporter,
            numbers,
            policy,
            bulk,
            transfers,
            ..
        } = self;
        members.entry(key).or_insert_with(|| {
            let reporter = Reporter {
                tag,
                tx: reporter.clone(),
            };
            let mut t = Transfers::new(policy.clone(), reporter, numbers.clone());
            t.share_quota_with(transfers);
            if let Some(bulk) = bulk {
                t.connected(bulk.clone());
            }
            MemberFiles {
                transfers: t,
                broken: false,
                said_files: false,
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
        for (key, member) in &mut self.members {
            let label = room.names.label(key);
            let who = room.speaker(key, &label);
            for event in std::mem::take(&mut member.transfers.events) {
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
                    member.transfers.peer_files();
                }
            }
            FileNews::File { from, file } => {
                let Some(member) = self.members.get_mut(&from) else {
                    return;
                };
                if member.broken || (member.said_files && !member.transfers.peer_takes()) {
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
            FileNews::Left(key) => {
                if let Some(member) = self.members.get_mut(&key) {
                    member.transfers.peer_left();
                }
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
