//! Receipts on screen: a line of ours ends in a dim mark until the peer has shown it, like a
//! messenger's clock turning into a tick; `--json` says `sent` and `delivered`.
//!
//! A mark is erased in place while its row is still on screen. One that has scrolled out of
//! reach (or was moved by a clear or a resize) cannot be, so a status line says how many such
//! lines were delivered: the screen never keeps claiming a line is on its way once it arrived.
//! (A host's line that a member left without showing keeps its mark: it never reached
//! everyone, and the host is told so.)

use super::{BOLD, DIM, Mode, STAMP_COLS, Ui, event::Event, layout};
use crate::editor::Mark;
use crate::editor::view::{text_columns, visible_columns};
use crate::sanitize;
use std::collections::BTreeMap;
use std::ops::RangeInclusive;

/// What marks a line of ours not yet shown by the peer: wide enough to see, plain ASCII so
/// that every terminal gives it the same width.
const PENDING: &str = " ...";

/// Our lines waiting for a receipt: id → where the mark is (`None`: nowhere to erase).
#[derive(Debug, Default)]
pub(super) struct Marks(BTreeMap<u64, Option<Mark>>);

impl Ui {
    /// Our line `text`, sent as message `id`: echoed with a pending mark (interactive), or a
    /// `sent` event (JSON).
    pub fn own_sent(&self, name: &str, text: &str, id: u64) {
        let who = match (text.starts_with("/me "), name) {
            (true, name) if !name.is_empty() => name,
            _ => "you",
        };
        self.sent_as(who, text, id, || self.own(name, text));
    }

    /// Our line to one member only (`/msg`), sent as message `id`: like [`Ui::own_sent`].
    pub fn own_private_sent(&self, to: &str, text: &str, id: u64) {
        self.sent_as(&format!("you → {to}"), text, id, || {
            self.own_private(to, text)
        });
    }

    fn sent_as(&self, who: &str, text: &str, id: u64, plain: impl FnOnce()) {
        let mark = match (self.mode, &self.screen) {
            (Mode::Json, _) => {
                let _ = self.json_event(Event::Sent { id, text });
                // (Its status line, where there is one: who a private line went to.)
                plain();
                None
            }
            (Mode::Interactive, Some(screen)) => {
                // Laid out narrower by the mark's width, so the last row always has room.
                let columns = crate::editor::columns().saturating_sub(PENDING.len());
                let mut rows = self.block_at(who, BOLD, text, columns);
                let col = rows.rsplit('\n').next().map_or(0, visible_columns);
                rows.push_str(&self.paint(DIM, PENDING));
                rows.push('\n');
                screen.print_marked(&rows, col, PENDING.len())
            }
            // Plain lines show nothing of ours: nothing to mark, or to report.
            _ => return plain(),
        };
        self.lock_marks().0.insert(id, mark);
    }

    /// The peer showed our messages `ids`: marks erased, `delivered` events. Ids that were
    /// not lines (a `/nick`) are passed over.
    pub fn delivered(&self, ids: RangeInclusive<u64>) {
        if ids.is_empty() {
            return;
        }
        let done: Vec<(u64, Option<Mark>)> = {
            let mut marks = self.lock_marks();
            let found: Vec<u64> = marks.0.range(ids).map(|(id, _)| *id).collect();
            found
                .into_iter()
                .filter_map(|id| marks.0.remove(&id).map(|mark| (id, mark)))
                .collect()
        };
        let mut out_of_reach = 0;
        for (id, mark) in done {
            match (self.mode, &self.screen, mark) {
                (Mode::Json, ..) => {
                    let _ = self.json_event(Event::Delivered { id });
                }
                (_, Some(screen), Some(mark)) if screen.erase_mark(mark) => {}
                (Mode::Interactive, ..) => out_of_reach += 1,
                _ => {}
            }
        }
        if out_of_reach > 0 {
            let lines = if out_of_reach == 1 { "line" } else { "lines" };
            self.status(format_args!(
                "delivered: {out_of_reach} earlier {lines} of yours, marked ... above"
            ));
        }
    }

    /// Our lines still waiting for their receipt.
    pub fn undelivered(&self) -> usize {
        self.lock_marks().0.len()
    }

    /// Stops waiting: the lines will never be confirmed (the peer does not send receipts).
    /// Their marks are erased, as they say nothing true any more.
    pub fn forget_marks(&self) {
        let marks = std::mem::take(&mut self.lock_marks().0);
        if let Some(screen) = &self.screen {
            for mark in marks.into_values().flatten() {
                screen.erase_mark(mark);
            }
        }
    }

    fn lock_marks(&self) -> std::sync::MutexGuard<'_, Marks> {
        self.marks.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// [`Ui::chat_block`] laid out for `columns`.
    fn block_at(&self, name: &str, color: &str, text: &str, columns: usize) -> String {
        let (head, body) = match text.strip_prefix("/me ") {
            Some(action) => (format!("* {}", sanitize::line(name)), action),
            None => (format!("<{}>", sanitize::line(name)), text),
        };
        let head_cols = STAMP_COLS + 1 + text_columns(&head);
        let head = format!("{} {}", self.stamp(), self.paint(color, &head));
        let mut rows = layout::layout(
            &head,
            head_cols,
            &sanitize::block(body),
            columns,
            layout::Blanks::Collapse,
        );
        while rows.ends_with('\n') {
            rows.pop();
        }
        rows
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn colour_takes_no_columns() {
        assert_eq!(
            visible_columns("\x1b[2m12:00\x1b[0m \x1b[1m<you>\x1b[0m hi"),
            14
        );
        assert_eq!(visible_columns("plain"), 5);
    }
}
