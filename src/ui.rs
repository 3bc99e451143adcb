//! What the user sees, in one of three modes:
//!
//! - **interactive** (stdin and stdout are terminals): a line editor keeps the half-typed line
//!   at the bottom while messages, with time, speaker and colour, scroll above it;
//! - **plain** (scripts): each received message is one line on stdout, status on stderr;
//! - **json** (`--json`): one JSON object per event on stdout, status on stderr.
//!
//! Everything that came from the peer passes through [`crate::sanitize`] (or the JSON escaper)
//! first, so a peer can never send the terminal a control sequence.

use crate::json::Object;
use crate::keys::PublicKey;
use crate::sanitize;
use std::fmt::Display;
use std::io::{self, Write};
use std::sync::Mutex;

/// Who said something.
#[derive(Debug, Clone, Copy)]
pub struct Speaker<'a> {
    /// How to show them: a petname or `unverified <short fingerprint>`.
    pub label: &'a str,
    /// Their key.
    pub key: &'a PublicKey,
    /// Their petname, if known.
    pub petname: Option<&'a str>,
}

impl Speaker<'_> {
    fn json(&self) -> String {
        Object::new()
            .str("fingerprint", &self.key.to_hex())
            .opt_str("petname", self.petname)
            .finish()
    }
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
    /// In interactive mode, output goes through the line editor so the prompt survives.
    editor: Option<Mutex<rustyline_async::SharedWriter>>,
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

/// Whether colour is wanted: a terminal, no `NO_COLOR` (https://no-color.org), not `TERM=dumb`.
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
            editor: None,
        }
    }

    /// JSON events on stdout.
    pub fn json() -> Self {
        Ui {
            mode: Mode::Json,
            color: false,
            editor: None,
        }
    }

    /// A terminal with the line editor whose writer is given.
    pub fn interactive(writer: rustyline_async::SharedWriter, color: bool) -> Self {
        Ui {
            mode: Mode::Interactive,
            color,
            editor: Some(Mutex::new(writer)),
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
        if let Some(editor) = &self.editor
            && let Ok(mut w) = editor.lock()
            && w.write_all(text.as_bytes()).is_ok()
        {
            return;
        }
        // No editor, or it has shut down: the terminal is back to normal.
        let _ = io::stderr().lock().write_all(text.as_bytes());
    }

    fn stamp(&self) -> String {
        self.paint(
            DIM,
            &jiff::ZonedDateTime::now().strftime("%H:%M").to_string(),
        )
    }

    fn json_event(&self, object: Object) -> io::Result<()> {
        let line = object
            .str("time", &jiff::Timestamp::now().to_string())
            .finish();
        let mut out = io::stdout().lock();
        writeln!(out, "{line}")?;
        out.flush()
    }

    /// A status line (connection progress, peer verified, …).
    pub fn status(&self, text: impl Display) {
        match self.mode {
            Mode::Interactive => {
                let line = self.paint(DIM, &format!("-- {text}"));
                self.to_screen(&format!("{} {line}\n", self.stamp()));
            }
            _ => {
                let _ = writeln!(io::stderr().lock(), "schat: {text}");
            }
        }
    }

    /// A warning.
    pub fn warn(&self, text: impl Display) {
        match self.mode {
            Mode::Interactive => {
                let line = self.paint(YELLOW, &format!("!! {text}"));
                self.to_screen(&format!("{} {line}\n", self.stamp()));
            }
            _ => {
                let _ = writeln!(io::stderr().lock(), "schat: warning: {text}");
            }
        }
    }

    /// An error. In JSON mode it is also an `error` event.
    pub fn error(&self, text: impl Display) {
        let text = text.to_string();
        match self.mode {
            Mode::Interactive => {
                let line = self.paint(RED, &format!("!! error: {text}"));
                self.to_screen(&format!("{} {line}\n", self.stamp()));
            }
            Mode::Json => {
                let _ = writeln!(io::stderr().lock(), "schat: error: {text}");
                let _ = self.json_event(Object::new().str("event", "error").str("message", &text));
            }
            Mode::Plain => {
                let _ = writeln!(io::stderr().lock(), "schat: error: {text}");
            }
        }
    }

    /// A warning that must not be missed (several lines, set apart by blank lines).
    pub fn alarm(&self, lines: &[&str]) {
        let mut text = String::from("\n");
        for line in lines {
            text.push_str(&self.paint(RED, line));
            text.push('\n');
        }
        text.push('\n');
        match self.mode {
            Mode::Interactive => self.to_screen(&text),
            _ => {
                let _ = io::stderr().lock().write_all(text.as_bytes());
            }
        }
    }

    /// The session is up and the peer accepted.
    pub fn connected(&self, peer: &Speaker<'_>, safety: &str, address: Option<&str>) {
        if self.mode == Mode::Json {
            let _ = self.json_event(
                Object::new()
                    .str("event", "connected")
                    .raw("peer", &peer.json())
                    .str("safety_number", safety)
                    .opt_str("address", address),
            );
        }
    }

    /// The listener's greeting.
    pub fn welcome(&self, peer: &Speaker<'_>, text: &str) {
        match self.mode {
            Mode::Json => {
                let _ = self.json_event(
                    Object::new()
                        .str("event", "welcome")
                        .raw("from", &peer.json())
                        .str("text", text),
                );
            }
            _ => self.status(format_args!("welcome: {}", sanitize::line(text))),
        }
    }

    /// A chat message from the peer. Fails only if stdout is gone (e.g. a closed pipe).
    pub fn message(&self, from: &Speaker<'_>, text: &str) -> io::Result<()> {
        let action = text.strip_prefix("/me ");
        match self.mode {
            Mode::Plain => {
                let mut out = io::stdout().lock();
                writeln!(out, "{}", sanitize::line(text))?;
                out.flush()
            }
            Mode::Json => self.json_event(
                Object::new()
                    .str("event", "message")
                    .raw("from", &from.json())
                    .str("text", action.unwrap_or(text))
                    .bool("action", action.is_some()),
            ),
            Mode::Interactive => {
                let color = PALETTE[usize::from(from.key.as_bytes()[0]) % PALETTE.len()];
                self.to_screen(&self.chat_block(from.label, color, text));
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
                self.json_event(
                    Object::new()
                        .str("event", "message")
                        .raw("from", &from.json())
                        .raw("via", &via.json())
                        .str("text", action.unwrap_or(text))
                        .bool("action", action.is_some()),
                )
            }
            Mode::Plain => {
                let mut out = io::stdout().lock();
                writeln!(
                    out,
                    "{}: {}",
                    sanitize::line(from.label),
                    sanitize::line(text)
                )?;
                out.flush()
            }
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
            let _ = self.json_event(
                Object::new()
                    .str("event", "notice")
                    .raw("from", &from.json())
                    .str("text", text),
            );
        }
        self.status(format_args!("{}: {}", from.label, sanitize::line(text)));
    }

    /// Echo of what we sent (interactive only: scripts know what they sent).
    pub fn own(&self, text: &str) {
        if self.mode == Mode::Interactive {
            self.to_screen(&self.chat_block("you", BOLD, text));
        }
    }

    /// `HH:MM <name> text`, continuation lines indented under the text, or `* name action`.
    fn chat_block(&self, name: &str, color: &str, text: &str) -> String {
        let (head, body) = match text.strip_prefix("/me ") {
            Some(action) => (format!("* {name}"), action),
            None => (format!("<{name}>"), text),
        };
        let body = sanitize::block(body);
        let indent = " ".repeat(6 + head.chars().count() + 1);
        let mut out = format!("{} {} ", self.stamp(), self.paint(color, &head));
        for (i, line) in body.split('\n').enumerate() {
            if i > 0 {
                out.push_str(&indent);
            }
            out.push_str(line);
            out.push('\n');
        }
        out
    }

    /// The peer left (with its reason, possibly empty).
    pub fn left(&self, peer: &Speaker<'_>, reason: &str) {
        if self.mode == Mode::Json {
            let _ = self.json_event(
                Object::new()
                    .str("event", "left")
                    .raw("peer", &peer.json())
                    .str("reason", reason),
            );
        }
        if reason.is_empty() {
            self.status(format_args!("{} left", peer.label));
        } else {
            self.status(format_args!(
                "{} left: {}",
                peer.label,
                sanitize::line(reason)
            ));
        }
    }
}
