//! Lines typed (or piped) by the local user, delivered as async events.
//!
//! At a terminal the lines come from schat's own line editor ([`crate::editor`]): it keeps
//! the half-typed line intact at the bottom of the screen while messages are printed above
//! it, with the editing keys of a shell, history, bracketed paste and multi-line messages.
//!
//! From a pipe, reading stdin blocks, and tokio's own stdin would keep the runtime from shutting
//! down while a read is pending, so a dedicated thread reads lines and hands them over through a
//! bounded channel (which also stops it from reading far ahead of the network).

use crate::editor::{Editor, Screen, Typed};
use crate::message::MAX_BODY;
use std::io::{self, BufRead, Read, Write};
use tokio::sync::mpsc;

/// One thing the user did.
#[derive(Debug, PartialEq, Eq)]
pub enum InputEvent {
    /// A line, without its line ending.
    Line(String),
    /// A line longer than one message can carry; it was discarded.
    TooLong,
    /// A line that was not UTF-8; it was discarded.
    NotUtf8,
    /// End of input (Ctrl-D on an empty line, or the end of a piped file).
    Eof,
    /// Ctrl-C on an empty line at the editor (the terminal is in raw mode, so no SIGINT).
    Interrupted,
    /// Reading failed.
    Failed(String),
}

/// A stream of input events.
pub struct Input {
    source: Source,
    ended: bool,
    /// Whether a person answers questions through this input (a terminal).
    can_ask: bool,
    /// Keeps an idle input's channel open, so that it never ends (see [`Input::idle`]).
    _open: Option<mpsc::Sender<InputEvent>>,
}

enum Source {
    Lines(mpsc::Receiver<InputEvent>),
    Editor(Box<Editor>),
    /// The terminal, read only while a question waits for its answer (a thread per answer,
    /// one line each). In pipe mode stdin may be that same terminal: a reader kept running
    /// would take lines meant for the peer.
    Terminal(Option<tokio::sync::oneshot::Receiver<InputEvent>>),
}

/// The prompt shown while chatting.
pub const PROMPT: &str = "> ";

/// Lines queued ahead of the session before the reader thread waits.
const QUEUE: usize = 64;

impl Input {
    /// Reads the process's stdin on a background thread.
    pub fn stdin() -> Self {
        Self::from_reader(io::stdin())
    }

    /// The controlling terminal (`/dev/tty`), for questions when stdin carries data (pipe
    /// mode), like ssh asking about a host key. `None` when there is no terminal.
    pub fn tty() -> Option<Self> {
        std::fs::File::open("/dev/tty").ok()?;
        Some(Input {
            source: Source::Terminal(None),
            ended: false,
            can_ask: true,
            _open: None,
        })
    }

    /// An input that never yields a line (nobody to ask).
    pub fn none() -> Self {
        let (_, rx) = mpsc::channel(1);
        Self::from_channel(rx)
    }

    /// Whether a person can answer questions through this input.
    pub fn can_ask(&self) -> bool {
        self.can_ask
    }

    /// Reads lines from any blocking reader on a background thread.
    pub fn from_reader(reader: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::spawn(move || read_lines(io::BufReader::new(reader), tx));
        Self::from_channel(rx)
    }

    /// Events sent through a channel (for tests and other front ends).
    pub fn from_channel(rx: mpsc::Receiver<InputEvent>) -> Self {
        Input {
            source: Source::Lines(rx),
            ended: false,
            can_ask: false,
            _open: None,
        }
    }

    /// An input that yields nothing and never ends: `schat send` and `receive` read no lines,
    /// and leave when the files are done (or the peer does), not when stdin ends.
    pub fn idle() -> Self {
        let (open, rx) = mpsc::channel(1);
        Input {
            _open: Some(open),
            ..Self::from_channel(rx)
        }
    }

    /// The line editor on the terminal (raw mode until this `Input` is dropped), and the screen
    /// through which everything else must print while it is active.
    pub fn editor() -> io::Result<(Self, Screen)> {
        let (editor, screen) = Editor::start(PROMPT)?;
        let input = Input {
            source: Source::Editor(Box::new(editor)),
            ended: false,
            can_ask: true,
            _open: None,
        };
        Ok((input, screen))
    }

    /// The next event. After `Eof`, `Interrupted` or `Failed`, always `Eof`. Cancel safe: the
    /// editor keeps the line being typed in its own state, and the channel loses nothing.
    pub async fn next(&mut self) -> InputEvent {
        if self.ended {
            return InputEvent::Eof;
        }
        let event = match &mut self.source {
            Source::Lines(rx) => rx.recv().await.unwrap_or(InputEvent::Eof),
            Source::Terminal(pending) => {
                // Kept across a cancelled call, so that an answer typed later is not lost.
                let answer = pending.get_or_insert_with(read_one_terminal_line);
                let event = answer.await.unwrap_or(InputEvent::Eof);
                *pending = None;
                event
            }
            Source::Editor(editor) => match editor.next().await {
                Typed::Line(line) => InputEvent::Line(line),
                Typed::TooLong => InputEvent::TooLong,
                Typed::Eof => InputEvent::Eof,
                Typed::Interrupted => InputEvent::Interrupted,
                Typed::Failed(e) => InputEvent::Failed(e),
            },
        };
        if matches!(
            event,
            InputEvent::Eof | InputEvent::Interrupted | InputEvent::Failed(_)
        ) {
            self.ended = true;
        }
        event
    }

    /// Asks a question and returns the answer. At the terminal the question replaces the
    /// prompt (and stays on screen with its answer); otherwise it is written to stderr.
    pub async fn ask(&mut self, question: &str) -> InputEvent {
        match &mut self.source {
            Source::Editor(editor) => {
                editor.set_question(Some(question));
                let answer = self.next().await;
                if let Source::Editor(editor) = &mut self.source {
                    editor.set_question(None);
                }
                answer
            }
            Source::Lines(_) | Source::Terminal(_) => {
                let mut err = io::stderr().lock();
                let _ = write!(err, "schat: {question}");
                let _ = err.flush();
                drop(err);
                self.next().await
            }
        }
    }

    /// Shows `question` as the prompt until called with `None` (the editor only: questions
    /// asked this way are answered by the next line, read as usual).
    pub fn set_prompt(&mut self, question: Option<&str>) {
        if let Source::Editor(editor) = &mut self.source {
            editor.set_question(question);
        }
    }

    /// Clears the terminal (editor only).
    pub fn clear_screen(&mut self) {
        if let Source::Editor(editor) = &mut self.source {
            editor.clear_screen();
        }
    }
}

/// One line from the terminal, read on a thread of its own byte by byte (a buffer would take
/// typed-ahead lines with it).
fn read_one_terminal_line() -> tokio::sync::oneshot::Receiver<InputEvent> {
    let (tx, rx) = tokio::sync::oneshot::channel();
    std::thread::spawn(move || {
        let event = match std::fs::File::open("/dev/tty") {
            Ok(tty) => read_line(&mut io::BufReader::with_capacity(1, tty)),
            Err(e) => InputEvent::Failed(e.to_string()),
        };
        let _ = tx.send(event);
    });
    rx
}

fn read_lines(mut reader: impl BufRead, tx: mpsc::Sender<InputEvent>) {
    loop {
        let event = read_line(&mut reader);
        let last = matches!(event, InputEvent::Eof | InputEvent::Failed(_));
        if tx.blocking_send(event).is_err() || last {
            return;
        }
    }
}

/// Reads one line, never holding more than a message's worth of it in memory.
fn read_line(reader: &mut impl BufRead) -> InputEvent {
    // Room for the longest sendable body plus "\r\n", plus one byte to detect overflow.
    let limit = (MAX_BODY + 3) as u64;
    let mut buf = Vec::new();
    match reader.by_ref().take(limit).read_until(b'\n', &mut buf) {
        Err(e) => return InputEvent::Failed(e.to_string()),
        Ok(0) => return InputEvent::Eof,
        Ok(_) => {}
    }
    if buf.last() != Some(&b'\n') && buf.len() as u64 == limit {
        // Too long: skip to the end of this line.
        loop {
            match reader.fill_buf() {
                Ok([]) | Err(_) => break,
                Ok(chunk) => {
                    let (used, done) = match chunk.iter().position(|&b| b == b'\n') {
                        Some(i) => (i + 1, true),
                        None => (chunk.len(), false),
                    };
                    reader.consume(used);
                    if done {
                        break;
                    }
                }
            }
        }
        return InputEvent::TooLong;
    }
    if buf.last() == Some(&b'\n') {
        buf.pop();
        if buf.last() == Some(&b'\r') {
            buf.pop();
        }
    }
    if buf.len() > MAX_BODY {
        return InputEvent::TooLong;
    }
    match String::from_utf8(buf) {
        Ok(line) => InputEvent::Line(line),
        Err(_) => InputEvent::NotUtf8,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn events(input: &[u8]) -> Vec<InputEvent> {
        let mut reader = io::BufReader::with_capacity(7, input);
        let mut out = Vec::new();
        loop {
            let e = read_line(&mut reader);
            let end = e == InputEvent::Eof;
            out.push(e);
            if end {
                return out;
            }
        }
    }

    #[test]
    fn splits_lines_and_strips_endings() {
        assert_eq!(
            events(b"one\ntwo\r\n\nlast"),
            [
                InputEvent::Line("one".into()),
                InputEvent::Line("two".into()),
                InputEvent::Line("".into()),
                InputEvent::Line("last".into()),
                InputEvent::Eof
            ]
        );
    }

    #[test]
    fn overlong_line_is_refused_whole_and_the_next_line_survives() {
        let mut input = vec![b'x'; MAX_BODY];
        input.extend_from_slice(b"\n");
        input.extend(vec![b'y'; MAX_BODY + 1]);
        input.extend_from_slice(b"\nafter\n");
        input.extend(vec![b'z'; 200_000]);
        let got = events(&input);
        assert_eq!(got[0], InputEvent::Line("x".repeat(MAX_BODY)));
        assert_eq!(got[1], InputEvent::TooLong);
        assert_eq!(got[2], InputEvent::Line("after".into()));
        assert_eq!(got[3], InputEvent::TooLong);
        assert_eq!(got[4], InputEvent::Eof);
    }

    #[test]
    fn invalid_utf8_is_reported_not_sent() {
        assert_eq!(
            events(b"\xff\xfe\nok\n"),
            [
                InputEvent::NotUtf8,
                InputEvent::Line("ok".into()),
                InputEvent::Eof
            ]
        );
    }
}
