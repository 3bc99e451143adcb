//! Lines typed (or piped) by the local user, delivered as async events.
//!
//! At a terminal the lines come from an async line editor (`rustyline-async`): it keeps the
//! half-typed line intact at the bottom of the screen while messages are printed above it, and
//! gives history (arrow keys) and the usual Ctrl-A/E/W/U editing. It was chosen over reedline
//! (far larger, its external printer is a polling add-on) and raw crossterm (we would rewrite
//! the same line editor): it is small, built for exactly this, and its `readline()` can sit in
//! a `select!` next to the network.
//!
//! From a pipe, reading stdin blocks, and tokio's own stdin would keep the runtime from shutting
//! down while a read is pending, so a dedicated thread reads lines and hands them over through a
//! bounded channel (which also stops it from reading far ahead of the network).

use crate::message::MAX_BODY;
use rustyline_async::ReadlineEvent;
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
    /// End of input (Ctrl-D, or the end of a piped file).
    Eof,
    /// Ctrl-C at the line editor (the terminal is in raw mode, so no SIGINT is raised).
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
}

enum Source {
    Lines(mpsc::Receiver<InputEvent>),
    Editor(Box<Editor>),
}

/// The line editor; restores the terminal when dropped.
struct Editor {
    readline: rustyline_async::Readline,
    prompt: String,
}

impl Drop for Editor {
    fn drop(&mut self) {
        // Print what is still queued, erase the prompt; Readline's own Drop then leaves raw mode.
        let _ = self.readline.flush();
    }
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
        let tty = std::fs::File::open("/dev/tty").ok()?;
        let mut input = Self::from_reader(tty);
        input.can_ask = true;
        Some(input)
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
        }
    }

    /// The line editor on the terminal (raw mode until this `Input` is dropped), and the writer
    /// through which everything else must print while it is active.
    pub fn editor() -> io::Result<(Self, rustyline_async::SharedWriter)> {
        let (mut readline, writer) =
            rustyline_async::Readline::new(PROMPT.into()).map_err(io::Error::other)?;
        // We echo sent lines ourselves, formatted; an interrupted line just disappears.
        readline.should_print_line_on(false, false);
        readline.set_max_history(500);
        let input = Input {
            source: Source::Editor(Box::new(Editor {
                readline,
                prompt: PROMPT.into(),
            })),
            ended: false,
            can_ask: true,
        };
        Ok((input, writer))
    }

    /// The next event. After `Eof`, `Interrupted` or `Failed`, always `Eof`. Cancel safe: the
    /// editor keeps the line being typed in its own state, and the channel loses nothing.
    pub async fn next(&mut self) -> InputEvent {
        if self.ended {
            return InputEvent::Eof;
        }
        let event = match &mut self.source {
            Source::Lines(rx) => rx.recv().await.unwrap_or(InputEvent::Eof),
            Source::Editor(editor) => match editor.readline.readline().await {
                Ok(ReadlineEvent::Line(line)) => {
                    if !line.trim().is_empty() {
                        editor.readline.add_history_entry(line.clone());
                    }
                    if line.len() > MAX_BODY {
                        InputEvent::TooLong
                    } else {
                        InputEvent::Line(line)
                    }
                }
                Ok(ReadlineEvent::Eof) => InputEvent::Eof,
                Ok(ReadlineEvent::Interrupted) => InputEvent::Interrupted,
                Err(e) => InputEvent::Failed(e.to_string()),
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
    /// prompt; otherwise it is written to stderr.
    pub async fn ask(&mut self, question: &str) -> InputEvent {
        match &mut self.source {
            Source::Editor(editor) => {
                let _ = editor.readline.update_prompt(question);
                let answer = self.next().await;
                if let Source::Editor(editor) = &mut self.source {
                    let prompt = editor.prompt.clone();
                    let _ = editor.readline.update_prompt(&prompt);
                }
                answer
            }
            Source::Lines(_) => {
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
            let prompt = question.map_or(editor.prompt.clone(), str::to_owned);
            let _ = editor.readline.update_prompt(&prompt);
        }
    }

    /// Clears the terminal (editor only).
    pub fn clear_screen(&mut self) {
        if let Source::Editor(editor) = &mut self.source {
            let _ = editor.readline.clear();
        }
    }
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
