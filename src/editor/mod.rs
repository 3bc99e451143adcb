//! The line editor: the draft at the bottom of the terminal, messages printed above it.
//!
//! A thin layer over crossterm's raw mode and key events, written for schat after testing the
//! alternatives on a real terminal: rustyline-async (the previous editor) left N−1 stale rows
//! after sending a line that wrapped over N rows (its issue #20), lost the cursor on wrapped
//! wide characters, ended the session on Ctrl-D/Ctrl-C whatever the line held, erased the
//! trust prompt once answered, had no bracketed paste, and stalled on input arriving at paste
//! speed; reedline prints from other tasks only through a polling "external printer" and
//! brings far more than a chat needs. Here the two things that matter are ours:
//!
//! - **Layout** ([`view`]): we wrap the draft ourselves, short of the last column, as `ui`
//!   wraps messages, so we always know how many rows it takes and where the cursor is.
//! - **Printing above it** ([`Screen::print`]): erase the input rows, write the message rows,
//!   draw the input again — one write, under one lock, so nothing interleaves.
//!
//! The keys ([`draft`]) are pure state and tested without a terminal.

pub mod draft;
pub mod view;

use crate::message::MAX_BODY;
use crossterm::event::{Event, EventStream};
use draft::{Action, Draft};
use std::fmt::Write as _;
use std::io::{self, Write};
use std::pin::Pin;
use std::sync::{Arc, Mutex, MutexGuard};

/// What the user did at the editor.
#[derive(Debug, PartialEq, Eq)]
pub enum Typed {
    /// Enter: this text (possibly several lines).
    Line(String),
    /// Ctrl-D on an empty line.
    Eof,
    /// Ctrl-C on an empty line.
    Interrupted,
    /// Text that would not fit in one message was not taken.
    TooLong,
    /// The terminal failed.
    Failed(String),
}

/// The terminal while the editor runs: the draft, the prompt, and what is on screen.
struct Terminal {
    draft: Draft,
    /// The prompt while chatting.
    prompt: String,
    /// A question shown instead of the prompt, until answered.
    question: Option<String>,
    /// The draft a question interrupted (text, cursor): put aside, so that the question starts
    /// with an empty answer — a half-typed "sure" must never become the answer to a knock —
    /// and given back once the questions are over.
    set_aside: Option<(String, usize)>,
    /// When the current question appeared: keys in the first [`SETTLE`] are dropped (they
    /// were typed for what was on screen before, not as an answer).
    asked_at: Option<std::time::Instant>,
    /// Rows kept above the prompt, redrawn in place (a file transfer's progress): our own
    /// text, one row each, cut to the width.
    progress: Vec<String>,
    /// Rows of the input area above the cursor (to erase it, go up this many rows).
    cursor_row: usize,
    /// The cursor's column.
    cursor_col: usize,
    /// The width of each row of the input area as drawn (to erase them, and to know how a
    /// resize re-wrapped them).
    shown: Vec<usize>,
    /// Whether this terminal re-wraps its rows when it is resized (see [`reflows`]).
    reflows: bool,
    /// Whether raw mode is on and the input area is drawn.
    active: bool,
    /// Rows printed above the input area so far, and how many times what is on screen was
    /// moved under them (a clear, a resize): a [`Mark`] is found again only from these.
    printed: u64,
    moved: u64,
}

/// Where a mark was printed on a row above the input area, to erase it later (a receipt
/// clears an undelivered line's mark) while that row is still on screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Mark {
    /// The row: how many rows had been printed before it.
    row: u64,
    /// Its first column, and its width.
    col: usize,
    width: usize,
    /// [`Terminal::moved`] when it was printed, and the terminal's size then: a resize the
    /// editor has not seen yet moves rows too.
    moved: u64,
    size: (usize, usize),
}

/// Prints above the editor; shared by everything that shows output.
#[derive(Clone)]
pub struct Screen(Arc<Mutex<Terminal>>);

/// Reads keys; restores the terminal when dropped.
pub struct Editor {
    terminal: Arc<Mutex<Terminal>>,
    events: EventStream,
}

/// How long after a question appears keys are dropped: whatever was being typed when it
/// came was meant for the line, not as an answer (a "y" in flight must not admit anyone).
const SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

/// Raw mode off, bracketed paste on/off, cursor shown/hidden.
const PASTE_ON: &str = "\x1b[?2004h";
const PASTE_OFF: &str = "\x1b[?2004l";
const HIDE: &str = "\x1b[?25l";
const SHOW: &str = "\x1b[?25h";

impl Editor {
    /// Puts the terminal in raw mode with bracketed paste, and draws `prompt`.
    pub fn start(prompt: &str) -> io::Result<(Editor, Screen)> {
        crossterm::terminal::enable_raw_mode()?;
        let terminal = Arc::new(Mutex::new(Terminal {
            draft: Draft::new(MAX_BODY),
            prompt: prompt.to_string(),
            question: None,
            set_aside: None,
            asked_at: None,
            progress: Vec::new(),
            cursor_row: 0,
            cursor_col: 0,
            shown: Vec::new(),
            reflows: reflows(),
            active: true,
            printed: 0,
            moved: 0,
        }));
        let editor = Editor {
            terminal: terminal.clone(),
            events: EventStream::new(),
        };
        let screen = Screen(terminal);
        {
            let mut t = editor.lock();
            let mut out = String::from(PASTE_ON);
            t.draw(&mut out);
            t.write(&out)?;
        }
        Ok((editor, screen))
    }

    fn lock(&self) -> MutexGuard<'_, Terminal> {
        self.terminal.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The next thing typed. Cancel safe: the draft lives in the editor, and a key is applied
    /// as soon as it is read.
    pub async fn next(&mut self) -> Typed {
        loop {
            let event = std::future::poll_fn(|cx| {
                futures_core::Stream::poll_next(Pin::new(&mut self.events), cx)
            })
            .await;
            let event = match event {
                None => return Typed::Eof,
                Some(Err(e)) => return Typed::Failed(e.to_string()),
                Some(Ok(event)) => event,
            };
            let mut t = self.lock();
            let settling = t.asked_at.is_some_and(|at| at.elapsed() < SETTLE);
            let action = match event {
                Event::Key(_) | Event::Paste(_) if settling => Action::None,
                Event::Key(key) => t.draft.key(key),
                Event::Paste(text) => t.draft.paste(&text),
                Event::Resize(cols, _) => {
                    t.resized(usize::from(cols));
                    Action::Redraw
                }
                _ => Action::None,
            };
            if let Some(typed) = t.apply(action) {
                return typed;
            }
        }
    }

    /// Shows `question` instead of the prompt until [`Editor::set_question`] with `None`. When
    /// a line is entered while a question shows, the question and the answer stay on screen.
    pub fn set_question(&mut self, question: Option<&str>) {
        let mut t = self.lock();
        match question {
            Some(question) => {
                if t.question.is_none() && !t.draft.text().is_empty() {
                    t.set_aside = Some(t.draft.take());
                }
                if t.question.as_deref() != Some(question) {
                    t.asked_at = Some(std::time::Instant::now());
                }
                t.question = Some(question.to_owned());
            }
            None => {
                t.question = None;
                t.asked_at = None;
                if let Some((text, cursor)) = t.set_aside.take() {
                    t.draft.restore(text, cursor);
                }
            }
        }
        t.redraw();
    }

    /// Clears the screen and draws the input again at the top.
    pub fn clear_screen(&mut self) {
        self.lock().apply(Action::ClearScreen);
    }
}

impl Drop for Editor {
    fn drop(&mut self) {
        let mut t = self.lock();
        let mut out = String::new();
        t.erase(&mut out);
        // A draft that was never sent stays on screen, whole, so it can be copied.
        let draft = match t.set_aside.take() {
            Some((text, _)) => text,
            None => t.draft.text().to_string(),
        };
        if !draft.is_empty() {
            let view = view::render(&t.prompt, &draft, draft.len(), columns(), usize::MAX);
            for row in &view.rows {
                out.push_str(row);
                out.push_str("\r\n");
            }
            out.push_str("-- (the line above was not sent)\r\n");
        }
        out.push_str(PASTE_OFF);
        out.push_str(SHOW);
        let _ = t.write(&out);
        t.active = false;
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

impl Screen {
    /// Prints `text` (whole rows, `\n`-separated, already laid out) above the input. Once the
    /// editor has closed, `text` goes to stderr.
    pub fn print(&self, text: &str) -> io::Result<()> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).print(text)
    }

    /// Like [`Screen::print`], for `text` whose last row ends in a mark `width` columns wide
    /// that starts at column `col`: where to find it again, if anywhere.
    pub fn print_marked(&self, text: &str, col: usize, width: usize) -> Option<Mark> {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        t.print(text).ok()?;
        (t.active && t.printed > 0).then(|| Mark {
            row: t.printed - 1,
            col,
            width,
            moved: t.moved,
            size: (columns(), rows()),
        })
    }

    /// Shows `rows` above the prompt, in place of the ones shown before (none: no rows). Each
    /// is cut short of the last column, so it stays one row.
    pub fn set_progress(&self, rows: Vec<String>) {
        let mut t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        if t.progress != rows && t.active {
            t.progress = rows;
            t.redraw();
        }
    }

    /// Blanks `mark` if its row is still on screen, where it was; whether it did.
    pub fn erase_mark(&self, mark: Mark) -> bool {
        let t = self.0.lock().unwrap_or_else(|e| e.into_inner());
        // Rows between the mark's row and the input area's top, plus one to reach it.
        let above = t.printed - mark.row;
        let input = t.shown.len().max(1) as u64;
        let moved = t.moved != mark.moved || (columns(), rows()) != mark.size;
        if !t.active || moved || above + input > rows() as u64 {
            return false;
        }
        let up = above + t.cursor_row as u64;
        let mut out = String::from(HIDE);
        let _ = write!(out, "\x1b[{up}A\r");
        if mark.col > 0 {
            let _ = write!(out, "\x1b[{}C", mark.col);
        }
        out.push_str(&" ".repeat(mark.width));
        let _ = write!(out, "\x1b[{up}B\r");
        if t.cursor_col > 0 {
            let _ = write!(out, "\x1b[{}C", t.cursor_col);
        }
        out.push_str(SHOW);
        t.write(&out).is_ok()
    }
}

impl Terminal {
    fn print(&mut self, text: &str) -> io::Result<()> {
        if !self.active {
            let mut err = io::stderr().lock();
            err.write_all(text.as_bytes())?;
            return err.flush();
        }
        let mut out = String::with_capacity(text.len() + 64);
        out.push_str(HIDE);
        self.erase(&mut out);
        let cols = columns();
        for row in text.split_inclusive('\n') {
            let row = row.strip_suffix('\n').unwrap_or(row);
            out.push_str(row);
            out.push_str("\r\n");
            // A row wider than the terminal takes more than one on screen.
            self.printed += view::visible_columns(row).div_ceil(cols).max(1) as u64;
        }
        self.draw(&mut out);
        out.push_str(SHOW);
        self.write(&out)
    }

    /// Does what a key asked; `Some` when it ends the wait for input.
    fn apply(&mut self, action: Action) -> Option<Typed> {
        match action {
            Action::None => None,
            Action::Redraw => {
                self.redraw();
                None
            }
            Action::Submit(text) => {
                let mut out = String::from(HIDE);
                self.erase(&mut out);
                if let Some(question) = &self.question {
                    // The question and its answer stay, as in a shell.
                    let view = view::render(question, &text, text.len(), columns(), usize::MAX);
                    for row in &view.rows {
                        out.push_str(row);
                        out.push_str("\r\n");
                    }
                    self.printed += view.rows.len() as u64;
                }
                self.draw(&mut out);
                out.push_str(SHOW);
                let _ = self.write(&out);
                Some(Typed::Line(text))
            }
            Action::Eof => Some(Typed::Eof),
            Action::Interrupt => Some(Typed::Interrupted),
            Action::TooLong => Some(Typed::TooLong),
            Action::ClearScreen => {
                let mut out = String::from("\x1b[H\x1b[2J");
                self.cursor_row = 0;
                self.moved += 1;
                self.draw(&mut out);
                let _ = self.write(&out);
                None
            }
        }
    }

    fn redraw(&mut self) {
        let mut out = String::from(HIDE);
        self.erase(&mut out);
        self.draw(&mut out);
        out.push_str(SHOW);
        let _ = self.write(&out);
    }

    /// Clears the rows of the input area, one by one, and leaves the cursor at the start of
    /// the first. (Not "erase below": from the top row that is a whole-screen clear, which
    /// tmux copies into its scrollback every time.)
    fn erase(&mut self, out: &mut String) {
        if self.cursor_row > 0 {
            let _ = write!(out, "\x1b[{}A", self.cursor_row);
        }
        let rows = self.shown.len().max(1);
        for i in 0..rows {
            out.push_str("\r\x1b[2K");
            if i + 1 < rows {
                out.push_str("\x1b[1B");
            }
        }
        if rows > 1 {
            let _ = write!(out, "\x1b[{}A", rows - 1);
        }
        out.push('\r');
        self.cursor_row = 0;
        self.shown.clear();
    }

    /// The terminal is now `cols` wide. One that re-wraps its rows has split each of ours that
    /// is now too wide, and moved the cursor with its character: count the rows as they are
    /// now, so that the erase before the redraw takes them all.
    fn resized(&mut self, cols: usize) {
        self.moved += 1;
        if !self.reflows {
            return;
        }
        let (rows, cursor_row) = rewrapped(&self.shown, self.cursor_row, self.cursor_col, cols);
        self.shown = vec![0; rows];
        self.cursor_row = cursor_row;
    }

    /// Draws the input area from the cursor's row (just erased) and places the cursor.
    fn draw(&mut self, out: &mut String) {
        let view = match (self.draft.pending_paste(), &self.question) {
            (Some((lines, bytes)), _) => {
                let ask = format!("paste {lines} lines ({bytes} bytes) into the message? [y/n] ");
                view::render(&ask, "", 0, columns(), rows())
            }
            (None, question) => view::render(
                question.as_deref().unwrap_or(&self.prompt),
                self.draft.text(),
                self.draft.cursor(),
                columns(),
                rows().saturating_sub(1 + self.progress.len()),
            ),
        };
        let width = columns().saturating_sub(1);
        let mut rows: Vec<String> = (self.progress.iter())
            .map(|row| view::cut(row, width))
            .collect();
        let above = rows.len();
        rows.extend(view.rows);
        let view = view::View {
            rows,
            cursor: (view.cursor.0 + above, view.cursor.1),
        };
        out.push_str(&view.rows.join("\r\n"));
        let up = view.rows.len() - 1 - view.cursor.0;
        if up > 0 {
            let _ = write!(out, "\x1b[{up}A");
        }
        out.push('\r');
        if view.cursor.1 > 0 {
            let _ = write!(out, "\x1b[{}C", view.cursor.1);
        }
        self.cursor_row = view.cursor.0;
        self.cursor_col = view.cursor.1;
        self.shown = view.rows.iter().map(|r| view::text_columns(r)).collect();
    }

    fn write(&self, out: &str) -> io::Result<()> {
        let mut stdout = io::stdout().lock();
        stdout.write_all(out.as_bytes())?;
        stdout.flush()
    }
}

/// The terminal's width (80 when unknown).
pub fn columns() -> usize {
    crossterm::terminal::size()
        .map(|(cols, _)| usize::from(cols))
        .unwrap_or(80)
        .max(1)
}

/// Whether the terminal re-wraps its rows on a resize, judged from what it says about itself:
/// tmux, VTE (GNOME Terminal and others), Konsole, kitty, Alacritty, WezTerm, iTerm2, Apple's
/// Terminal, Windows Terminal and VS Code do; xterm, GNU screen and the Linux console do not.
/// Guessing wrong costs a stale row after a resize in the first case, and erasing a few rows
/// of messages from view in the second, so the default is "does not".
fn reflows() -> bool {
    let set = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    let program = std::env::var("TERM_PROGRAM").unwrap_or_default();
    [
        "TMUX",
        "VTE_VERSION",
        "KONSOLE_VERSION",
        "KITTY_WINDOW_ID",
        "ALACRITTY_WINDOW_ID",
        "WEZTERM_PANE",
        "WT_SESSION",
    ]
    .iter()
    .any(|name| set(name))
        || ["iTerm.app", "Apple_Terminal", "WezTerm", "vscode", "tmux"].contains(&program.as_str())
}

/// Rows `widths` (the cursor on row `cursor_row` at `cursor_col`) after a terminal re-wrapped
/// them to `cols` columns: how many rows they take, and the cursor's row among them.
fn rewrapped(
    widths: &[usize],
    cursor_row: usize,
    cursor_col: usize,
    cols: usize,
) -> (usize, usize) {
    let cols = cols.max(1);
    let rows_of = |w: usize| w.div_ceil(cols).max(1);
    let total = widths.iter().map(|w| rows_of(*w)).sum::<usize>().max(1);
    let above: usize = widths.iter().take(cursor_row).map(|w| rows_of(*w)).sum();
    (total, (above + cursor_col / cols).min(total - 1))
}

/// The terminal's height (24 when unknown).
fn rows() -> usize {
    crossterm::terminal::size()
        .map(|(_, rows)| usize::from(rows))
        .unwrap_or(24)
        .max(2)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_rewrapped_by_a_narrower_terminal_are_counted() {
        // 39, 39, 21 and 6 columns wide, the cursor at the end of the last row.
        let widths = [39, 39, 21, 8];
        assert_eq!(
            rewrapped(&widths, 3, 8, 40),
            (4, 3),
            "nothing changes when they fit"
        );
        assert_eq!(rewrapped(&widths, 3, 8, 30), (6, 5));
        assert_eq!(
            rewrapped(&widths, 0, 35, 30),
            (6, 1),
            "the cursor moves with its character"
        );
        assert_eq!(rewrapped(&[], 0, 0, 30), (1, 0));
    }
}
