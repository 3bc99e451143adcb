//! What the user sees, in one of three modes:
//!
//! - **interactive** (stdin and stdout are terminals): a line editor keeps the half-typed line
//!   at the bottom while messages, with time, speaker and colour, scroll above it;
//! - **plain** (scripts): each received message is one line on stdout, status on stderr;
//! - **json** (`--json`): one JSON object per event on stdout, status on stderr.
//!
//! Everything that came from the peer passes through [`crate::sanitize`] (or the JSON escaper)
//! first, so a peer can never send the terminal a control sequence.
//!
//! Nor can it forge one of our own rows. At the terminal we wrap every row ourselves, short of
//! the last column, so the terminal never wraps: column 0 of every row is ours — a time stamp
//! followed by `--`/`!!` (status), `<name>` or `* name` (a message), or the blank margin of a
//! continuation row. Peer text never starts a row, however it is padded. In plain mode every
//! message line starts with its sender's label and a colon (`LABEL: text`, on stdout), and
//! status lines with `schat: ` (on stderr), which no label is.

use crate::editor::Screen;
use crate::editor::view::text_columns;
pub mod event;
pub mod files;
mod layout;
mod receipt;

use crate::keys::PublicKey;
use crate::sanitize;
use event::{Event, Peer};
use layout::{Blanks, STAMP_COLS, layout};
use std::fmt::Display;
use std::io::{self, IsTerminal, Write};

/// Who said something.
#[derive(Debug, Clone, Copy)]
pub struct Speaker<'a> {
    /// How to show them: a petname or `unverified <short fingerprint>`.
    pub label: &'a str,
    /// Their key.
    pub key: &'a PublicKey,
    /// Their petname, if known.
    pub petname: Option<&'a str>,
    /// The display name they announced, if any.
    pub name: Option<&'a str>,
}

impl<'a> Speaker<'a> {
    /// How `--json` events name it.
    fn peer(&self) -> Peer<'a> {
        Peer {
            fingerprint: self.key.to_hex(),
            petname: self.petname,
            name: self.name,
        }
    }
}

/// A room event the host announced, as a member shows it.
pub enum RoomEvent<'a> {
    /// Someone joined.
    Joined(Speaker<'a>),
    /// Someone left; the reason's code (`quit`, `cut`, `refused`, `timeout`, `error`).
    Left(Speaker<'a>, &'static str),
    /// Someone (or we) took a new display name.
    Renamed(Speaker<'a>),
    /// The host turned down the display name we asked for (name, the host's reason).
    Refused(&'a str, &'a str),
    /// Who else is in the room.
    Roster(Vec<Speaker<'a>>),
}

/// The three ways of showing a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// A person at a terminal with the line editor.
    Interactive,
    /// Lines for scripts.
    Plain,
    /// JSON events for programs.
    Json,
}

/// Where and how to print.
pub struct Ui {
    mode: Mode,
    color: bool,
    /// Plain and JSON modes with stderr at a terminal: status lines are wrapped at words by
    /// us (the terminal would cut a fingerprint or a word anywhere).
    wrap_stderr: bool,
    /// In interactive mode, output goes above the line editor's input.
    screen: Option<Screen>,
    /// Our lines not yet delivered, and where their marks are.
    marks: std::sync::Mutex<receipt::Marks>,
}

const RESET: &str = "\x1b[0m";
const DIM: &str = "\x1b[2m";
const BOLD: &str = "\x1b[1m";
const YELLOW: &str = "\x1b[33m";
const RED: &str = "\x1b[31m";
/// Speaker colours (red is kept for errors).
const PALETTE: [&str; 6] = [
    "\x1b[32m", "\x1b[34m", "\x1b[35m", "\x1b[36m", "\x1b[92m", "\x1b[94m",
];

/// Whether colour is wanted: a terminal, no `NO_COLOR` (<https://no-color.org>), not `TERM=dumb`.
pub fn color_wanted() -> bool {
    std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty())
        && std::env::var("TERM").map_or(true, |t| t != "dumb")
}

impl Ui {
    /// Script mode.
    pub fn plain() -> Self {
        Ui {
            mode: Mode::Plain,
            color: false,
            wrap_stderr: io::stderr().is_terminal(),
            screen: None,
            marks: Default::default(),
        }
    }

    /// JSON events on stdout.
    pub fn json() -> Self {
        Ui {
            mode: Mode::Json,
            color: false,
            wrap_stderr: io::stderr().is_terminal(),
            screen: None,
            marks: Default::default(),
        }
    }

    /// A terminal with the line editor whose screen is given.
    pub fn interactive(screen: Screen, color: bool) -> Self {
        Ui {
            mode: Mode::Interactive,
            color,
            wrap_stderr: false,
            screen: Some(screen),
            marks: Default::default(),
        }
    }

    fn paint(&self, color: &str, text: &str) -> String {
        if self.color {
            format!("{color}{text}{RESET}")
        } else {
            text.to_string()
        }
    }

    /// Writes whole lines to the terminal above the prompt (interactive) or to stderr.
    fn to_screen(&self, text: &str) {
        match &self.screen {
            Some(screen) => {
                let _ = screen.print(text);
            }
            None => {
                let _ = io::stderr().lock().write_all(text.as_bytes());
            }
        }
    }

    /// How this session is shown.
    pub fn mode(&self) -> Mode {
        self.mode
    }

    /// Rows for the terminal: `head` (already painted; `head_cols` wide) then `body`, wrapped by
    /// us short of the last column, continuation rows behind a blank margin.
    fn rows(&self, head: &str, head_cols: usize, body: &str) -> String {
        layout(
            head,
            head_cols,
            body,
            crate::editor::columns(),
            Blanks::Collapse,
        )
    }

    fn stamp(&self) -> String {
        self.paint(
            DIM,
            &jiff::ZonedDateTime::now().strftime("%H:%M").to_string(),
        )
    }

    fn json_event(&self, event: Event<'_>) -> io::Result<()> {
        let line = event::line(&event, &jiff::Timestamp::now().to_string())?;
        let mut out = io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()
    }

    /// `HH:MM -- text` (or `!!`), wrapped: our own rows, which peer text never starts.
    fn status_rows(&self, color: &str, mark: &str, text: &str) {
        let head = format!("{} {}", self.stamp(), self.paint(color, mark));
        let body = self.paint(color, &sanitize::block(text));
        self.to_screen(&self.rows(&head, STAMP_COLS + 1 + mark.len(), &body));
    }

    /// Lines of our own text (the `/help` list), kept aligned: their runs of blanks are ours,
    /// so they are not collapsed the way a peer's are.
    pub fn listing(&self, lines: &[&str]) {
        match self.mode {
            Mode::Interactive => {
                for line in lines {
                    let head = format!("{} {}", self.stamp(), self.paint(DIM, "--"));
                    let body = self.paint(DIM, &sanitize::block(line));
                    let columns = crate::editor::columns();
                    self.to_screen(&layout(&head, STAMP_COLS + 3, &body, columns, Blanks::Keep));
                }
            }
            _ => {
                for line in lines {
                    self.status(line);
                }
            }
        }
    }

    /// Something people compare digit by digit (a safety number, a fingerprint): at a
    /// terminal its rows stay whole and aligned, the same grid whatever the width (at least 40
    /// columns), beside `label` when that fits and below it otherwise; elsewhere one line.
    pub fn grid(&self, label: &str, rows: &[String]) {
        if self.mode != Mode::Interactive {
            self.status(format_args!("{label} {}", rows.join(" ")));
            return;
        }
        let head = format!("{} {}", self.stamp(), self.paint(DIM, "--"));
        let margin = STAMP_COLS + 4;
        let widest = rows.iter().map(|r| r.len()).max().unwrap_or(0);
        let usable = crate::editor::columns().saturating_sub(1);
        // Beside the label when the widest row fits there; else below it, indented.
        let (first, pad) = match margin + label.len() + 1 + widest <= usable {
            true => (format!("{label} "), label.len() + 1),
            false => (format!("{label}\n  "), 2),
        };
        let mut body = first;
        for (i, row) in rows.iter().enumerate() {
            if i > 0 {
                body.push('\n');
                body.push_str(&" ".repeat(pad));
            }
            body.push_str(row);
        }
        let body = self.paint(DIM, &sanitize::block(&body));
        let columns = crate::editor::columns();
        self.to_screen(&layout(&head, margin - 1, &body, columns, Blanks::Keep));
    }

    /// A status line (connection progress, peer verified, …).
    pub fn status(&self, text: impl Display) {
        match self.mode {
            Mode::Interactive => self.status_rows(DIM, "--", &text.to_string()),
            _ => self.stderr_line("schat:", &text.to_string()),
        }
    }

    /// A warning.
    pub fn warn(&self, text: impl Display) {
        match self.mode {
            Mode::Interactive => self.status_rows(YELLOW, "!!", &text.to_string()),
            _ => self.stderr_line("schat: warning:", &text.to_string()),
        }
    }

    /// `PREFIX text` on stderr: one line for logs and scripts, wrapped at words (continuation
    /// rows indented) when stderr is a terminal.
    fn stderr_line(&self, prefix: &str, text: &str) {
        let line = match self.wrap_stderr {
            true => layout(
                prefix,
                prefix.len(),
                &sanitize::block(text),
                crate::editor::columns(),
                Blanks::Keep,
            ),
            false => format!("{prefix} {text}\n"),
        };
        let _ = io::stderr().lock().write_all(line.as_bytes());
    }

    /// An error. In JSON mode it is also an `error` event.
    pub fn error(&self, text: impl Display) {
        let text = text.to_string();
        match self.mode {
            Mode::Interactive => self.status_rows(RED, "!!", &format!("error: {text}")),
            Mode::Json => {
                self.stderr_line("schat: error:", &text);
                let _ = self.json_event(Event::Error { message: &text });
            }
            Mode::Plain => self.stderr_line("schat: error:", &text),
        }
    }

    /// A warning that must not be missed: each line in red behind `!!`, wrapped at words by us
    /// at a terminal (the terminal would cut a key or a word anywhere); plain lines elsewhere.
    pub fn alarm(&self, lines: &[&str]) {
        match self.mode {
            Mode::Interactive => {
                let columns = crate::editor::columns();
                let mut text = String::new();
                for line in lines {
                    let head = self.paint(RED, "!!");
                    let body = self.paint(RED, &sanitize::block(line));
                    text.push_str(&layout(&head, 2, &body, columns, Blanks::Keep));
                }
                self.to_screen(&text);
            }
            _ => {
                let mut text = String::new();
                for line in lines {
                    text.push_str(line);
                    text.push('\n');
                }
                let _ = io::stderr().lock().write_all(text.as_bytes());
            }
        }
    }

    /// A ticket to copy: alone on its line, unstyled, so that a triple click takes all of it
    /// (in JSON mode also a `ticket` event).
    pub fn ticket(&self, ticket: &str) {
        match self.mode {
            Mode::Interactive => self.to_screen(&format!("{ticket}\n")),
            Mode::Json => {
                let _ = writeln!(io::stderr().lock(), "{ticket}");
                let _ = self.json_event(Event::Ticket { ticket });
            }
            Mode::Plain => {
                let _ = writeln!(io::stderr().lock(), "{ticket}");
            }
        }
    }

    /// The session is up and the peer accepted.
    pub fn connected(&self, peer: &Speaker<'_>, safety: &str, address: Option<&str>) {
        if self.mode == Mode::Json {
            let _ = self.json_event(Event::Connected {
                peer: peer.peer(),
                safety_number: safety,
                address,
            });
        }
    }

    /// The listener's greeting.
    pub fn welcome(&self, peer: &Speaker<'_>, text: &str) {
        match self.mode {
            Mode::Json => {
                let _ = self.json_event(Event::Welcome {
                    from: peer.peer(),
                    text,
                });
            }
            _ => self.status(format_args!("welcome: {}", sanitize::line(text))),
        }
    }

    /// A chat message from the peer. Fails only if stdout is gone (e.g. a closed pipe).
    pub fn message(&self, from: &Speaker<'_>, text: &str) -> io::Result<()> {
        let action = text.strip_prefix("/me ");
        match self.mode {
            Mode::Plain => plain_line(from.label, text),
            Mode::Json => self.json_event(Event::Message {
                from: from.peer(),
                via: None,
                text: action.unwrap_or(text),
                action: action.is_some(),
                private: false,
            }),
            Mode::Interactive => {
                let color = PALETTE[usize::from(from.key.as_bytes()[0]) % PALETTE.len()];
                self.to_screen(&self.chat_block(from.label, color, text));
                Ok(())
            }
        }
    }

    /// The host's words to us alone (`/msg` on its side): marked private in every mode.
    pub fn private(&self, from: &Speaker<'_>, text: &str) -> io::Result<()> {
        match self.mode {
            Mode::Plain => plain_line(&format!("{} (private)", from.label), text),
            Mode::Json => self.json_event(Event::Message {
                from: from.peer(),
                via: None,
                text,
                action: false,
                private: true,
            }),
            Mode::Interactive => {
                let color = PALETTE[usize::from(from.key.as_bytes()[0]) % PALETTE.len()];
                let name = format!("{} → you (private)", from.label);
                self.to_screen(&self.chat_block(&name, color, text));
                Ok(())
            }
        }
    }

    /// A room member's message relayed by the host `via`. Shown like a message, with the relay
    /// marked: it is only as trustworthy as the host, which could have altered it.
    pub fn relayed(&self, from: &Speaker<'_>, via: &Speaker<'_>, text: &str) -> io::Result<()> {
        match self.mode {
            Mode::Json => {
                let action = text.strip_prefix("/me ");
                self.json_event(Event::Message {
                    from: from.peer(),
                    via: Some(via.peer()),
                    text: action.unwrap_or(text),
                    action: action.is_some(),
                    private: false,
                })
            }
            // The origin is only the host's word: say so, or a host could put any known
            // peer's name on its own lines.
            Mode::Plain => plain_line(&format!("{} via {}", from.label, via.label), text),
            Mode::Interactive => {
                let color = PALETTE[usize::from(from.key.as_bytes()[0]) % PALETTE.len()];
                let name = format!("{} via {}", from.label, via.label);
                self.to_screen(&self.chat_block(&name, color, text));
                Ok(())
            }
        }
    }

    /// A room event announced by the host.
    pub fn notice(&self, from: &Speaker<'_>, text: &str) {
        if self.mode == Mode::Json {
            let _ = self.json_event(Event::Notice {
                from: from.peer(),
                text,
            });
        }
        self.status(format_args!("{}: {}", from.label, sanitize::line(text)));
    }

    /// A room event announced by the host `via`, worded as `line` (our own words, with our
    /// labels: safe to print); in JSON mode, a typed event.
    pub fn room(&self, via: Option<&Speaker<'_>>, event: RoomEvent<'_>, line: &str) {
        if self.mode != Mode::Json {
            // Our wording with checked names; escaped all the same, in case.
            self.status(sanitize::line(line));
            return;
        }
        let via = via.map(Speaker::peer);
        let _ = self.json_event(match event {
            RoomEvent::Joined(who) => Event::Joined {
                peer: who.peer(),
                via,
            },
            RoomEvent::Left(who, reason) => Event::Left {
                peer: who.peer(),
                reason,
                text: line,
                via,
            },
            RoomEvent::Renamed(who) => Event::Renamed {
                peer: who.peer(),
                via,
            },
            RoomEvent::Refused(name, text) => Event::NameRefused { name, text, via },
            RoomEvent::Roster(members) => Event::Roster {
                members: members.iter().map(Speaker::peer).collect(),
                via,
            },
        });
    }

    /// What we sent to one member only: echoed at the terminal, and confirmed in every mode
    /// (scripts know what they sent, but not who the name reached).
    pub fn own_private(&self, to: &str, text: &str) {
        match self.mode {
            Mode::Interactive => {
                self.to_screen(&self.chat_block(&format!("you → {to}"), BOLD, text))
            }
            _ => self.status(format_args!("(to {}) sent privately", sanitize::line(to))),
        }
    }

    /// Echo of what we sent (interactive only: scripts know what they sent). An action (`/me`)
    /// reads with our display name, `name` (empty: none, then "you").
    pub fn own(&self, name: &str, text: &str) {
        if self.mode == Mode::Interactive {
            let who = match (text.starts_with("/me "), name) {
                (true, name) if !name.is_empty() => name,
                _ => "you",
            };
            self.to_screen(&self.chat_block(who, BOLD, text));
        }
    }

    /// `HH:MM <name> text` or `HH:MM * name action`, wrapped by us, continuation rows (and the
    /// lines of a multi-line message) indented under the text.
    fn chat_block(&self, name: &str, color: &str, text: &str) -> String {
        let (head, body) = match text.strip_prefix("/me ") {
            Some(action) => (format!("* {}", sanitize::line(name)), action),
            None => (format!("<{}>", sanitize::line(name)), text),
        };
        let head_cols = STAMP_COLS + 1 + text_columns(&head);
        let head = format!("{} {}", self.stamp(), self.paint(color, &head));
        self.rows(&head, head_cols, &sanitize::block(body))
    }

    /// The peer left: how (a code for programs) and the text that goes with it (the peer's
    /// QUIT reason, or what went wrong).
    pub fn left(&self, peer: &Speaker<'_>, how: Departure, text: &str) {
        if self.mode == Mode::Json {
            let _ = self.json_event(Event::Left {
                peer: peer.peer(),
                reason: how.code(),
                text,
                via: None,
            });
        }
        let label = sanitize::line(peer.label);
        match (how, text.is_empty()) {
            (Departure::Quit, true) => self.status(format_args!("{label} left")),
            (Departure::Quit, false) => {
                self.status(format_args!("{label} left: {}", sanitize::line(text)))
            }
            (how, _) => self.warn(format_args!(
                "{label} left ({}): {}",
                how.code(),
                sanitize::line(text)
            )),
        }
    }
}

/// Why a peer left, as `--json` reports it (README lists the codes).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Departure {
    /// It said QUIT (a goodbye, or with a reason: an abort).
    Quit,
    /// The connection ended without a QUIT.
    Cut,
    /// It turned us down (or we it).
    Refused,
    /// Its owner did not answer our knock in time (nobody refused).
    Unanswered,
    /// Nothing came from it for too long, or a write to it never finished.
    Timeout,
    /// It broke the protocol, or something failed locally.
    Error,
}

impl Departure {
    /// The departure an error stands for.
    pub fn of(e: &crate::Error) -> Self {
        use crate::Error;
        match e {
            Error::ConnectionCut => Departure::Cut,
            Error::Io { .. } | Error::Network(_) => Departure::Cut,
            Error::PeerSilent(_) | Error::Timeout(..) => Departure::Timeout,
            Error::RefusedByPeer(why) if why.starts_with("unanswered:") => Departure::Unanswered,
            Error::RefusedByPeer(_) | Error::PeerRefused(_) => Departure::Refused,
            Error::PeerAborted(_) => Departure::Quit,
            _ => Departure::Error,
        }
    }

    /// The code in `--json` events.
    pub fn code(self) -> &'static str {
        match self {
            Departure::Quit => "quit",
            Departure::Cut => "cut",
            Departure::Refused => "refused",
            Departure::Unanswered => "unanswered",
            Departure::Timeout => "timeout",
            Departure::Error => "error",
        }
    }
}

/// A message in plain mode: `LABEL: text` on one line of stdout. Fails only if stdout is gone.
fn plain_line(label: &str, text: &str) -> io::Result<()> {
    let mut out = io::stdout().lock();
    writeln!(out, "{}: {}", sanitize::line(label), sanitize::line(text))?;
    out.flush()
}
