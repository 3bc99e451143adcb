//! Files in a chat, as the chat loop sees them: the commands, the peer's FILE messages, the
//! files' threads reporting, progress on screen. The rules live in [`crate::files`]; files
//! with the other members of a room, over the end-to-end sessions, in [`super::member_files`].

use super::member_files::MemberFiles;
use crate::files::{Note, Policy, Reporter, Transfers};
use crate::keys::PublicKey;
use crate::session::command::FileCommand;
use crate::session::room_view::RoomView;
use crate::ui::{self, Speaker, Ui};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU32;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A chat's transfers, and what connects them to the loop.
pub(super) struct Desk {
    /// With the peer at the other end of the connection (in a room: the host).
    pub(super) transfers: Transfers,
    /// With each other member of a room, over our end-to-end session with it (§4.14).
    pub(super) members: BTreeMap<PublicKey, MemberFiles>,
    /// Transfers with members who left (kept for `/transfers` and the exit code): one that
    /// comes back is a new session, with new transfers.
    pub(super) retired: Vec<(PublicKey, Transfers)>,
    /// Failures among the retired transfers forgotten since.
    pub(super) retired_failures: usize,
    /// The last tag given to a member's transfers (their threads' reports carry it).
    pub(super) last_tag: u64,
    /// Files hashed once for several of the transfers above (`/send` in a room), by batch:
    /// the tags of the transfers that take them.
    batches: std::collections::HashMap<u64, Vec<u64>>,
    last_batch: u64,
    /// What new members' transfers are made with: where their threads report, the local
    /// numbers (one counter, so `/accept 3` names one transfer), the rules, the connection.
    pub(super) reporter: mpsc::UnboundedSender<(u64, Note)>,
    pub(super) numbers: Arc<AtomicU32>,
    pub(super) policy: Policy,
    pub(super) bulk: Option<mpsc::Sender<crate::message::Message<'static>>>,
    /// When progress is shown next (while something moves), and plain progress lines.
    progress_at: Option<Instant>,
    lines_at: Instant,
    /// Progress rows are on screen (to take them away when nothing moves).
    showing: bool,
    /// `--send`: leave once every file offered at the start is done.
    pub(super) leave_when_sent: bool,
    /// Bytes moved when leaving last looked: it waits for files only while this grows.
    moved: u64,
    /// `--accept-files`.
    accepts_unasked: bool,
}

impl Desk {
    /// The desk, and where its files' threads report (read by the loop, beside the desk).
    pub(super) fn new(policy: Policy, send: &[PathBuf]) -> (Self, Notes) {
        let (tx, notes) = mpsc::unbounded_channel();
        let reporter = Reporter {
            tag: 0,
            tx: tx.clone(),
        };
        let accepts_unasked = policy.auto;
        let numbers = Arc::new(AtomicU32::new(0));
        let mut transfers = Transfers::new(policy.clone(), reporter, numbers.clone());
        if !send.is_empty() {
            transfers.send(send.to_vec());
        }
        let desk = Desk {
            transfers,
            members: BTreeMap::new(),
            retired: Vec::new(),
            retired_failures: 0,
            last_tag: 0,
            batches: Default::default(),
            last_batch: 0,
            reporter: tx,
            numbers,
            policy,
            bulk: None,
            progress_at: None,
            lines_at: Instant::now() + ui::files::PROGRESS_LINES_EVERY,
            showing: false,
            leave_when_sent: !send.is_empty(),
            moved: 0,
            accepts_unasked,
        };
        (desk, Notes(notes))
    }

    /// When progress is due.
    /// (Or when a member's FILES is overdue: see [`Self::expire_members`].)
    pub(super) fn progress_at(&self) -> Option<Instant> {
        [self.progress_at, self.files_due()]
            .into_iter()
            .flatten()
            .min()
    }

    /// A new connection: file data goes to `bulk`.
    pub(super) fn connected(&mut self, bulk: mpsc::Sender<crate::message::Message<'static>>) {
        self.transfers.connected(bulk.clone());
        for member in self.members.values_mut() {
            member.transfers.connected(bulk.clone());
        }
        self.bulk = Some(bulk);
    }

    /// The peer's opening is over without FILES: what waits for it is not delivered, and why.
    pub(super) fn peer_lacks_files(&mut self, relay_only: bool) {
        self.transfers.peer_lacks_files(match relay_only {
            true => {
                "the host takes no part in the room, nor files (/sendto gives them to a member)"
            }
            false => "the peer's schat does not take files (it needs a newer version)",
        });
    }

    /// Every transfer: with the peer, and with each member (those who left included).
    pub(super) fn all(&self) -> impl Iterator<Item = &Transfers> {
        std::iter::once(&self.transfers)
            .chain(self.members.values().map(|m| &m.transfers))
            .chain(self.retired.iter().map(|(_, t)| t))
    }

    fn all_mut(&mut self) -> impl Iterator<Item = &mut Transfers> {
        std::iter::once(&mut self.transfers)
            .chain(self.members.values_mut().map(|m| &mut m.transfers))
            .chain(self.retired.iter_mut().map(|(_, t)| t))
    }

    /// A files' thread reports (`tag`: whose transfers, or a batch hashed for several).
    pub(super) fn on_note(&mut self, (tag, note): (u64, Note)) {
        if tag & BATCH == 0 {
            return self.note_to(tag, note);
        }
        let tags = self.batches.remove(&(tag & !BATCH)).unwrap_or_default();
        for (n, tag) in tags.into_iter().enumerate() {
            match (&note, n) {
                // Files that could not be prepared are told (and counted) once.
                (Note::Prepared { result: Err(_), .. }, 1..) => {
                    if let Some(t) = self.all_mut().find(|t| t.tag() == tag) {
                        t.forget_prepared();
                    }
                }
                _ => self.note_to(tag, note.clone()),
            }
        }
    }

    /// A report for the transfers tagged `tag`. A member that left (or whose FILES never came)
    /// gets nothing more: what its report would start fails at once.
    fn note_to(&mut self, tag: u64, note: Note) {
        let prepared = matches!(note, Note::Prepared { .. });
        if let Some(t) = self.all_mut().find(|t| t.tag() == tag) {
            t.on_note(note);
        }
        // (Only new offers need it: not every written megabyte.)
        if !prepared {
            return;
        }
        if let Some((_, t)) = self.retired.iter_mut().find(|(_, t)| t.tag() == tag) {
            t.peer_left();
        }
        self.refuse_expired();
    }

    /// `/send PATHS` to several: hashed once, offered to each once that is done.
    fn send_to(&mut self, paths: Vec<std::path::PathBuf>, to: Vec<u64>, ui: &Ui) {
        self.last_batch += 1;
        let notes = Reporter {
            tag: BATCH | self.last_batch,
            tx: self.reporter.clone(),
        };
        if let Err(e) = crate::files::transfers::prepare(paths, notes) {
            return ui.warn(format_args!("cannot prepare the files: {e}"));
        }
        for t in self.all_mut().filter(|t| to.contains(&t.tag())) {
            t.expect_prepared();
        }
        ui.status(format_args!("hashing the files to offer to {}…", to.len()));
        self.batches.insert(self.last_batch, to);
    }

    /// Whether a file of ours waits to be delivered, or one we accepted to arrive.
    pub(super) fn busy(&self) -> bool {
        self.all().any(|t| t.sending() || t.receiving())
    }

    /// Transfers that failed (for the exit code).
    pub(super) fn failures(&self) -> usize {
        self.all().map(Transfers::failures).sum::<usize>() + self.retired_failures
    }

    /// We leave: what has not finished stops. The peer hears it (our CANCELs and REJECTs go
    /// before our QUIT); the members hear that we left, which ends our transfers with them,
    /// so nothing more is sealed for them (it would be counted, and wait for a receipt).
    pub(super) fn leaving(&mut self, room: &RoomView, ui: &Ui) {
        self.all_mut().for_each(Transfers::leaving);
        for member in self.members.values_mut() {
            member.transfers.outbox.clear();
        }
        self.show_members(room, ui);
    }

    /// The peer left (the room is over): what has not finished stops.
    pub(super) fn peer_left(&mut self, room: &RoomView, ui: &Ui) {
        self.all_mut().for_each(Transfers::peer_left);
        self.show_members(room, ui);
    }

    /// Shows what happened, and schedules progress while something moves.
    pub(super) fn show(&mut self, ui: &Ui, peer: &Speaker<'_>) {
        for event in std::mem::take(&mut self.transfers.events) {
            ui.file_event(peer, &event);
        }
        let moving = self.all().any(Transfers::moving);
        if moving && self.progress_at.is_none() {
            self.progress_at = Some(Instant::now() + ui::files::PROGRESS_EVERY);
        } else if !moving && self.showing {
            self.showing = false;
            self.progress_at = None;
            ui.file_progress(&[], false);
        }
    }

    /// Progress is due: shown, and the next time set.
    pub(super) fn tick(&mut self, ui: &Ui) {
        self.expire_members();
        let now = Instant::now();
        let lines = now >= self.lines_at;
        if lines {
            self.lines_at = now + ui::files::PROGRESS_LINES_EVERY;
        }
        let rows: Vec<_> = (self.members.values_mut())
            .map(|m| &mut m.transfers)
            .chain(std::iter::once(&mut self.transfers))
            .flat_map(|t| t.progress())
            .collect();
        self.showing = !rows.is_empty();
        ui.file_progress(&rows, lines);
        self.progress_at = self.showing.then(|| now + ui::files::PROGRESS_EVERY);
    }

    /// Whether files moved since the last look (leaving waits for them only while they do).
    pub(super) fn still_moving(&mut self) -> bool {
        let moved = self.all().map(Transfers::bytes_moved).sum();
        let more = moved > self.moved;
        self.moved = moved;
        more && self.all().any(Transfers::moving)
    }

    /// Whether the end of input leaves the chat: not with `--send` (it leaves once its files
    /// are done) nor `--accept-files` (once the peer leaves: a script receiving files).
    pub(super) fn stays_past_input(&self) -> bool {
        self.leave_when_sent || self.accepts_unasked
    }

    /// Whether every file `--send` offered is done (delivered or failed).
    pub(super) fn all_sent(&self) -> bool {
        self.leave_when_sent && !self.transfers.sending()
    }

    /// A file command typed by the user. In a room whose members talk end to end, `/send`
    /// offers to everyone there who takes files (the host too, when it takes part) and
    /// `/sendto NAME` to one of them; the others look at every transfer.
    pub(super) fn command(
        &mut self,
        command: &FileCommand<'_>,
        ui: &Ui,
        open: bool,
        who: &str,
        room: &mut RoomView,
    ) {
        let paths = |p: &[String]| p.iter().map(PathBuf::from).collect::<Vec<_>>();
        match command {
            FileCommand::Send(p) if room.e2e.active() => {
                let host = self.transfers.peer_takes().then(|| self.transfers.tag());
                // (A session just up may not have brought its FILES yet: offered when it does.)
                let members = (self.members.values())
                    .filter(|m| m.may_take_files())
                    .map(|m| m.transfers.tag());
                let to: Vec<u64> = host.into_iter().chain(members).collect();
                match (to.is_empty(), open) {
                    (false, _) => self.send_to(paths(p), to, ui),
                    (true, false) => ui.warn(
                        "the connection to the host is down: send them again once it is back",
                    ),
                    (true, true) => {
                        ui.warn("nobody here takes files (an older schat does not): nothing sent")
                    }
                }
            }
            FileCommand::Send(p) => {
                if open && !self.transfers.peer_takes() {
                    ui.warn(
                        "the peer's schat does not take files (it did not say FILES): it needs \
                         a newer version; nothing was offered",
                    );
                } else {
                    self.transfers.send(paths(p));
                    ui.status("hashing the files to offer…");
                }
            }
            FileCommand::SendTo(name, p) if room.e2e.active() => {
                let host = [
                    Some(room.names.label(&room.host)),
                    room.names.announced(&room.host).map(String::from),
                ];
                let t = match host.iter().flatten().any(|h| h == name.trim()) {
                    true => Ok(&mut self.transfers),
                    false => (room.e2e.find(&room.names, name))
                        .and_then(|key| {
                            self.members
                                .get_mut(&key)
                                .ok_or_else(|| "it has not said it takes files".into())
                        })
                        .map(|m| &mut m.transfers),
                };
                match t {
                    Ok(t) if t.peer_takes() => {
                        t.send(paths(p));
                        ui.status("hashing the files to offer…");
                    }
                    Ok(_) => ui.warn("/sendto: its schat does not take files: nothing sent"),
                    Err(why) => ui.warn(format_args!("/sendto: {why}")),
                }
            }
            FileCommand::SendTo(..) => {
                ui.warn("/sendto is for rooms; /send offers files to your peer")
            }
            FileCommand::Accept(which) | FileCommand::Reject(which) => {
                let accept = matches!(command, FileCommand::Accept(_));
                let (mut done, mut why) = (0, None);
                for t in self.all_mut().filter(|t| which.is_none_or(|n| t.has(n))) {
                    let answer = match accept {
                        true => t.accept(*which),
                        false => t.reject(*which),
                    };
                    match answer {
                        Ok(n) => done += n,
                        Err(e) => why = Some(e),
                    }
                }
                let (verb, did) = match accept {
                    true => ("accept", "accepted"),
                    false => ("reject", "declined"),
                };
                match (done, why) {
                    (0, Some(why)) => ui.warn(format_args!("/{verb}: {why}")),
                    (0, None) => {
                        ui.warn(format_args!("/{verb}: no offer is waiting for an answer"))
                    }
                    (n, _) => ui.status(format_args!("{did} {n} file{}", plural(n))),
                }
            }
            FileCommand::Cancel(n) => match self.all_mut().find(|t| t.has(*n)) {
                Some(t) => {
                    if let Err(why) = t.cancel(*n) {
                        ui.warn(format_args!("/cancel: {why}"));
                    }
                }
                None => ui.warn(format_args!(
                    "/cancel: there is no transfer #{n} (see /transfers)"
                )),
            },
            FileCommand::Transfers => {
                let mut rows = self.transfers.list(who);
                let members = self.members.iter().map(|(k, m)| (k, &m.transfers));
                for (key, t) in members.chain(self.retired.iter().map(|(k, t)| (k, t))) {
                    rows.extend(t.list(&room.names.label(key)));
                }
                match rows.is_empty() {
                    true => ui.status("no file transfers yet (/send PATH offers one)"),
                    false => ui.listing(&rows.iter().map(String::as_str).collect::<Vec<_>>()),
                }
            }
        }
        self.flush_members(room);
    }
}

/// The tag of a batch of files hashed for several transfers (its number below).
const BATCH: u64 = 1 << 63;

/// Where files' threads report.
pub(super) struct Notes(mpsc::UnboundedReceiver<(u64, Note)>);

impl Notes {
    /// The next report, and whose transfers it is for. (Never ends: the desk holds a
    /// sender.)
    pub(super) async fn next(&mut self) -> (u64, Note) {
        match self.0.recv().await {
            Some(report) => report,
            None => std::future::pending().await,
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
