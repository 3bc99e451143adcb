//! Lines typed (or piped) by the local user, delivered as async events.
//!
//! Reading stdin blocks, and tokio's own stdin would keep the runtime from shutting down while
//! a read is pending, so a dedicated thread reads lines and hands them over through a bounded
//! channel (which also stops it from reading far ahead of the network).

use crate::message::MAX_BODY;
use std::io::{self, BufRead, Read};
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
    /// Reading failed.
    Failed(String),
}

/// A stream of input events.
pub struct Input {
    rx: mpsc::Receiver<InputEvent>,
    ended: bool,
}

/// Lines queued ahead of the session before the reader thread waits.
const QUEUE: usize = 64;

impl Input {
    /// Reads the process's stdin on a background thread.
    pub fn stdin() -> Self {
        Self::from_reader(io::stdin())
    }

    /// Reads lines from any blocking reader on a background thread.
    pub fn from_reader(reader: impl Read + Send + 'static) -> Self {
        let (tx, rx) = mpsc::channel(QUEUE);
        std::thread::spawn(move || read_lines(io::BufReader::new(reader), tx));
        Input { rx, ended: false }
    }

    /// Events sent through a channel (for tests and other front ends).
    pub fn from_channel(rx: mpsc::Receiver<InputEvent>) -> Self {
        Input { rx, ended: false }
    }

    /// The next event. After `Eof` or `Failed`, always `Eof`. Cancel safe.
    pub async fn next(&mut self) -> InputEvent {
        if self.ended {
            return InputEvent::Eof;
        }
        let event = self.rx.recv().await.unwrap_or(InputEvent::Eof);
        if matches!(event, InputEvent::Eof | InputEvent::Failed(_)) {
            self.ended = true;
        }
        event
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
