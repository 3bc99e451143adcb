//! Answers typed at the terminal before a session starts: a code or a ticket, echoed (they are
//! single-use and short-lived, not passwords: seeing what you typed is how typos get caught),
//! with Tab completing a code's words. The text lives in a buffer of fixed size, wiped when
//! dropped. Ctrl-C ends the command, like the signal it stands for.

use crate::error::{Error, Result};
use crossterm::event::{Event, KeyCode, KeyEvent, KeyEventKind, KeyModifiers};
use std::io::Write;
use zeroize::Zeroizing;

/// The longest answer taken, in bytes.
const MAX_ANSWER: usize = 1024;

/// Puts the terminal back as it was, however the prompt ends.
struct Raw;

impl Drop for Raw {
    fn drop(&mut self) {
        let _ = crossterm::terminal::disable_raw_mode();
    }
}

/// Asks `question` on the terminal and reads one line, echoed. Tab asks `complete` for a
/// longer version of what is typed.
pub fn line(
    question: &str,
    complete: impl Fn(&str) -> Option<String>,
) -> Result<Zeroizing<String>> {
    let failed = |e: std::io::Error| Error::io("reading from the terminal", e);
    let mut tty = std::fs::OpenOptions::new()
        .write(true)
        .open("/dev/tty")
        .map_err(failed)?;
    crossterm::terminal::enable_raw_mode().map_err(failed)?;
    let _raw = Raw;
    write!(tty, "{question}").map_err(failed)?;
    tty.flush().map_err(failed)?;
    let mut typed = Zeroizing::new(String::with_capacity(MAX_ANSWER));
    loop {
        let Event::Key(KeyEvent {
            code,
            modifiers,
            kind: KeyEventKind::Press | KeyEventKind::Repeat,
            ..
        }) = crossterm::event::read().map_err(failed)?
        else {
            continue;
        };
        let control = modifiers.contains(KeyModifiers::CONTROL);
        match code {
            KeyCode::Char('c') if control => {
                let _ = write!(tty, "\r\n");
                return Err(Error::Signalled("interrupted"));
            }
            KeyCode::Char('d') if control && typed.is_empty() => {
                let _ = write!(tty, "\r\n");
                return Err(Error::Usage("nothing was typed".into()));
            }
            KeyCode::Enter => {
                let _ = write!(tty, "\r\n");
                return Ok(typed);
            }
            KeyCode::Backspace if typed.pop().is_some() => {
                let _ = write!(tty, "\x08 \x08");
            }
            KeyCode::Tab => {
                if let Some(longer) = complete(&typed)
                    && longer.len() <= MAX_ANSWER
                    && let Some(added) = longer.strip_prefix(typed.as_str())
                {
                    let _ = write!(tty, "{added}");
                    typed.push_str(added);
                }
            }
            // Printable ASCII only: codes and tickets are ASCII, and anything else could move
            // the cursor or hide what was typed.
            KeyCode::Char(c)
                if (!control && c.is_ascii_graphic() || c == ' ') && typed.len() < MAX_ANSWER =>
            {
                typed.push(c);
                let _ = write!(tty, "{c}");
            }
            _ => {}
        }
        let _ = tty.flush();
    }
}
