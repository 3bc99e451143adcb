//! Files between the host and its members (PROTOCOL.md §4.13): each member has its own
//! transfers ([`crate::files::Transfers`], numbered from one counter so `/accept 3` names one
//! transfer in the whole room). A member's file goes to the host only: the host relays no
//! file between members.

use super::*;
use crate::files::{Note, Policy, Reporter, Transfers};
use crate::message::FileMessage;
use crate::session::command::FileCommand;
use std::sync::atomic::AtomicU32;

/// What the room keeps for files.
pub(super) struct Desks {
    tx: mpsc::UnboundedSender<(u64, Note)>,
    numbers: Arc<AtomicU32>,
    progress_at: Option<Instant>,
    lines_at: Instant,
    showing: bool,
    /// `--send`: some file went out, so the room closes once none is left to send.
    pub(super) sent_any: bool,
    /// Transfers that failed with members who are gone (for the exit code).
    pub(super) failed: usize,
}

impl Desks {
    pub(super) fn new() -> (Self, mpsc::UnboundedReceiver<(u64, Note)>) {
        let (tx, rx) = mpsc::unbounded_channel();
        let desks = Desks {
            tx,
            numbers: Default::default(),
            progress_at: None,
            lines_at: Instant::now() + crate::ui::files::PROGRESS_LINES_EVERY,
            showing: false,
            sent_any: false,
            failed: 0,
        };
        (desks, rx)
    }

    /// Transfers for a new member (`tag` names them in their threads' reports).
    pub(super) fn transfers(&self, tag: u64, policy: Policy) -> Transfers {
        let reporter = Reporter {
            tag,
            tx: self.tx.clone(),
        };
        Transfers::new(policy, reporter, self.numbers.clone())
    }

    pub(super) fn progress_at(&self) -> Option<Instant> {
        self.progress_at
    }
}

impl<R, W> Room<'_, R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// The member said FILES: it takes files; `--send`'s go to it now.
    pub(super) fn member_files(&mut self, id: u64) {
        let send = self.options.send.clone();
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        member.files.peer_files();
        // (Once per member: a resumed connection says FILES again.)
        if !send.is_empty() && !member.files.offered_any() {
            member.files.send(send);
            self.desks.sent_any = true;
        }
    }

    /// A member's FILE message. Breaking the protocol ends its session (`Some`: the room).
    pub(super) fn member_file(
        &mut self,
        id: u64,
        file: FileMessage<'static>,
    ) -> Option<Result<()>> {
        let member = self.members.get_mut(&id)?;
        if let Err(e) = member.files.on_message(file) {
            return self.left(id, Err(e.into()));
        }
        None
    }

    /// A file's thread reports.
    pub(super) fn file_note(&mut self, tag: u64, note: Note) {
        if let Some(member) = self.members.values_mut().find(|m| m.files.tag() == tag) {
            member.files.on_note(note);
        }
    }

    /// What the transfers want sent goes into the members' outboxes, and what happened is
    /// shown. (A member whose outbox is full is not keeping up, as for any message.)
    pub(super) fn files_flush(&mut self) {
        let ui = self.ui;
        let mut slow = Vec::new();
        let mut moving = false;
        for (id, member) in self.members.iter_mut() {
            while let Some(msg) = member.files.outbox.pop_front() {
                if member.outbox.offer(msg) == Offer::Full {
                    slow.push(*id);
                    break;
                }
            }
            for event in std::mem::take(&mut member.files.events) {
                ui.file_event(&member.speaker(), &event);
            }
            moving |= member.files.moving();
        }
        if !slow.is_empty() {
            disconnect_slow(&mut self.members, slow, ui);
        }
        let desks = &mut self.desks;
        if moving && desks.progress_at.is_none() {
            desks.progress_at = Some(Instant::now() + crate::ui::files::PROGRESS_EVERY);
        } else if !moving && desks.showing {
            desks.showing = false;
            desks.progress_at = None;
            ui.file_progress(&[], false);
        }
    }

    /// Progress is due.
    pub(super) fn files_tick(&mut self) {
        let now = Instant::now();
        let lines = now >= self.desks.lines_at;
        if lines {
            self.desks.lines_at = now + crate::ui::files::PROGRESS_LINES_EVERY;
        }
        let rows: Vec<_> = (self.members.values_mut())
            .flat_map(|m| m.files.progress())
            .collect();
        self.desks.showing = !rows.is_empty();
        self.ui.file_progress(&rows, lines);
        self.desks.progress_at = self
            .desks
            .showing
            .then(|| now + crate::ui::files::PROGRESS_EVERY);
    }

    /// `--send`: every member it went to has its files (or they failed).
    pub(super) fn all_sent(&self) -> bool {
        self.desks.sent_any && self.members.values().all(|m| !m.files.sending())
    }

    /// The room closes: transfers not done stop, and each member hears so before QUIT.
    pub(super) fn files_close(&mut self) -> usize {
        for member in self.members.values_mut() {
            member.files.leaving();
        }
        self.files_flush();
        self.desks.failed
            + self
                .members
                .values()
                .map(|m| m.files.failures())
                .sum::<usize>()
    }

    /// A file command the host typed.
    pub(super) fn files_command(&mut self, command: &FileCommand<'_>) {
        let ui = self.ui;
        let ready = self.members.values_mut().filter(|m| m.ready);
        match command {
            FileCommand::Send(paths) => {
                let mut to = 0;
                for member in ready.filter(|m| m.files.peer_takes()) {
                    member.files.send(paths.iter().map(Into::into).collect());
                    to += 1;
                }
                match to {
                    0 => ui.warn("nobody here takes files (an older schat does not): nothing sent"),
                    n => ui.status(format_args!(
                        "hashing the files to offer to {n} member{}…",
                        if n == 1 { "" } else { "s" }
                    )),
                }
            }
            FileCommand::SendTo(name, paths) => match super::find(&self.members, name) {
                Ok(id) => match self.members.get_mut(&id) {
                    Some(member) if member.files.peer_takes() => {
                        member.files.send(paths.iter().map(Into::into).collect());
                        ui.status(format_args!(
                            "hashing the files to offer to {}…",
                            member.tag()
                        ));
                    }
                    _ => ui.warn("that member's schat does not take files: nothing sent"),
                },
                Err(why) => ui.warn(format_args!("/sendto: {why}")),
            },
            FileCommand::Accept(which) | FileCommand::Reject(which) => {
                let accept = matches!(command, FileCommand::Accept(_));
                let mut done = 0;
                let mut why = None;
                for member in ready.filter(|m| which.is_none_or(|n| m.files.has(n))) {
                    let answer = match accept {
                        true => member.files.accept(*which),
                        false => member.files.reject(*which),
                    };
                    match answer {
                        Ok(n) => done += n,
                        Err(e) => why = Some(e),
                    }
                }
                let verb = if accept { "accept" } else { "reject" };
                match (done, why) {
                    (0, Some(why)) => ui.warn(format_args!("/{verb}: {why}")),
                    (0, None) => {
                        ui.warn(format_args!("/{verb}: no offer is waiting for an answer"))
                    }
                    (n, _) => ui.status(format_args!(
                        "{}ed {n} file{}",
                        verb,
                        if n == 1 { "" } else { "s" }
                    )),
                }
            }
            FileCommand::Cancel(n) => match self.members.values_mut().find(|m| m.files.has(*n)) {
                Some(member) => {
                    if let Err(why) = member.files.cancel(*n) {
                        ui.warn(format_args!("/cancel: {why}"));
                    }
                }
                None => ui.warn(format_args!("/cancel: there is no transfer #{n}")),
            },
            FileCommand::Transfers => {
                let rows: Vec<String> = (self.members.values())
                    .flat_map(|m| m.files.list(&m.tag()))
                    .collect();
                match rows.is_empty() {
                    true => ui.status("no file transfers yet (/send PATH offers one)"),
                    false => ui.listing(&rows.iter().map(String::as_str).collect::<Vec<_>>()),
                }
            }
        }
        self.files_flush();
    }
}
