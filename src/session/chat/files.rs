//! Files in a chat, as the chat loop sees them: the commands, the peer's FILE messages, the
//! files' threads reporting, progress on screen. The rules live in [`crate::files`].

use crate::files::{Note, Policy, Reporter, Transfers};
use crate::session::command::FileCommand;
use crate::ui::{self, Speaker, Ui};
use std::path::PathBuf;
use tokio::sync::mpsc;
use tokio::time::Instant;

/// A chat's transfers, and what connects them to the loop.
pub(super) struct Desk {
    pub(super) transfers: Transfers,
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
        let reporter = Reporter { tag: 0, tx };
        let accepts_unasked = policy.auto;
        let mut transfers = Transfers::new(policy, reporter, Default::default());
        if !send.is_empty() {
            transfers.send(send.to_vec());
        }
        let desk = Desk {
            transfers,
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
    pub(super) fn progress_at(&self) -> Option<Instant> {
        self.progress_at
    }

    /// Shows what happened, and schedules progress while something moves.
    pub(super) fn show(&mut self, ui: &Ui, peer: &Speaker<'_>) {
        for event in std::mem::take(&mut self.transfers.events) {
            ui.file_event(peer, &event);
        }
        let moving = !self.transfers.progress().is_empty();
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
        let now = Instant::now();
        let lines = now >= self.lines_at;
        if lines {
            self.lines_at = now + ui::files::PROGRESS_LINES_EVERY;
        }
        let rows = self.transfers.progress();
        self.showing = !rows.is_empty();
        ui.file_progress(&rows, lines);
        self.progress_at = self.showing.then(|| now + ui::files::PROGRESS_EVERY);
    }

    /// Whether files moved since the last look (leaving waits for them only while they do).
    pub(super) fn still_moving(&mut self) -> bool {
        let moved = self.transfers.bytes_moved();
        let more = moved > self.moved;
        self.moved = moved;
        more && self.transfers.moving()
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

    /// A file command typed by the user.
    pub(super) fn command(&mut self, command: &FileCommand<'_>, ui: &Ui, open: bool, who: &str) {
        let t = &mut self.transfers;
        match command {
            FileCommand::Send(paths) => {
                if open && !t.peer_takes() {
                    ui.warn(
                        "the peer's schat does not take files (it did not say FILES): it needs \
                         a newer version; nothing was offered",
                    );
                } else {
                    t.send(paths.iter().map(PathBuf::from).collect());
                    ui.status("hashing the files to offer…");
                }
            }
            FileCommand::SendTo(..) => {
                ui.warn("/sendto is for a room's host; /send offers files to your peer")
            }
            FileCommand::Accept(which) => match t.accept(*which) {
                Ok(n) => ui.status(format_args!("accepted {n} file{}", plural(n))),
                Err(why) => ui.warn(format_args!("/accept: {why}")),
            },
            FileCommand::Reject(which) => match t.reject(*which) {
                Ok(n) => ui.status(format_args!("declined {n} file{}", plural(n))),
                Err(why) => ui.warn(format_args!("/reject: {why}")),
            },
            FileCommand::Cancel(n) => {
                if let Err(why) = t.cancel(*n) {
                    ui.warn(format_args!("/cancel: {why}"));
                }
            }
            FileCommand::Transfers => {
                let list = t.list(who);
                match list.is_empty() {
                    true => ui.status("no file transfers yet (/send PATH offers one)"),
                    false => {
                        let rows: Vec<&str> = list.iter().map(String::as_str).collect();
                        ui.listing(&rows);
                    }
                }
            }
        }
    }
}

/// Where files' threads report.
pub(super) struct Notes(mpsc::UnboundedReceiver<(u64, Note)>);

impl Notes {
    /// The next report. (Never ends: the desk's transfers hold a sender.)
    pub(super) async fn next(&mut self) -> Note {
        match self.0.recv().await {
            Some((_, note)) => note,
            None => std::future::pending().await,
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}
