//! What the user sees. Chat content goes to stdout; status, warnings and errors go to stderr,
//! so `schat ... > log` captures the conversation and nothing else.
//!
//! Two modes: *interactive* when stdin and stdout are both terminals (messages carry a sender
//! label), *plain* otherwise (one received message = one line on stdout, for scripts).
//! Everything that came from the peer passes through [`crate::sanitize`] first.

use crate::sanitize;
use std::fmt::Display;
use std::io::{self, IsTerminal, Write};

/// Where and how to print.
#[derive(Debug, Clone)]
pub struct Ui {
    interactive: bool,
}

impl Ui {
    /// Chooses the mode from whether stdin and stdout are terminals.
    pub fn detect() -> Self {
        Ui {
            interactive: io::stdin().is_terminal() && io::stdout().is_terminal(),
        }
    }

    /// Whether a person is typing at a terminal.
    pub fn is_interactive(&self) -> bool {
        self.interactive
    }

    /// A status line on stderr. Never carries peer text unless sanitized by the caller.
    pub fn status(&self, text: impl Display) {
        let _ = writeln!(io::stderr().lock(), "schat: {text}");
    }

    /// A warning on stderr.
    pub fn warn(&self, text: impl Display) {
        let _ = writeln!(io::stderr().lock(), "schat: warning: {text}");
    }

    /// An error on stderr.
    pub fn error(&self, text: impl Display) {
        let _ = writeln!(io::stderr().lock(), "schat: error: {text}");
    }

    /// A question on stderr, without a line break; the answer comes from the input.
    pub fn prompt(&self, text: &str) {
        let mut err = io::stderr().lock();
        let _ = write!(err, "schat: {text}");
        let _ = err.flush();
    }

    /// A warning that must not be missed (several lines, set apart by blank lines).
    pub fn alarm(&self, lines: &[&str]) {
        let mut err = io::stderr().lock();
        let _ = writeln!(err);
        for line in lines {
            let _ = writeln!(err, "{line}");
        }
        let _ = writeln!(err);
    }

    /// Text the peer sent as its welcome (shown as status: it is not part of the conversation).
    pub fn welcome(&self, text: &str) {
        self.status(format_args!("welcome: {}", sanitize::line(text)));
    }

    /// A chat message from `from`. Fails only if stdout is gone (e.g. a closed pipe).
    pub fn message(&self, from: &str, text: &str) -> io::Result<()> {
        let mut out = io::stdout().lock();
        if self.interactive {
            writeln!(out, "[{from}] {}", sanitize::line(text))?;
        } else {
            writeln!(out, "{}", sanitize::line(text))?;
        }
        out.flush()
    }
}
