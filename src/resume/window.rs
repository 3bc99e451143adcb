//! What a pipe has sent and its peer has not acknowledged yet (PROTOCOL.md §4.12): kept, as
//! the DATA messages that carried it, to send again on a resumed connection. Pure: no I/O.
//!
//! Kept bytes cost memory, so the window is bounded ([`PIPE_WINDOW`]): a sender whose window
//! is full stops reading its input until the peer acknowledges more. The peer acknowledges
//! whole DATA bodies (a receiver counts what it took), so an acknowledgement normally falls
//! between two messages; one that falls inside a message is honoured all the same.
//!
//! The hot path copies nothing: a full message buffer is kept as it is, and the sender reads
//! its next chunk into a buffer the window hands back (one it released, or a new one). Only a
//! small chunk, which would waste most of a 64 KiB buffer, is copied into one of its size.
//! And when the sender can read its bytes again by itself (its input is a regular file), a
//! window only counts ([`Window::counting`]): nothing is kept, nothing costs memory.

use crate::message::kind;
use std::collections::VecDeque;

/// At most this much memory of kept messages per pipe (PROTOCOL.md §4.12).
pub const PIPE_WINDOW: usize = 64 << 20;

/// Why a count from the peer cannot be right (its fault: the session ends).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BadCount {
    /// It counts more bytes than were ever sent.
    MoreThanSent,
    /// It is smaller than an earlier one.
    WentBack,
}

/// The unacknowledged tail of a pipe's stream.
#[derive(Debug)]
pub struct Window {
    /// Kept DATA messages, oldest first, each with its length (type byte included): the buffer
    /// may be longer, for reuse.
    kept: VecDeque<(Vec<u8>, usize)>,
    /// The stream offset of the first kept body byte: what the peer has acknowledged.
    start: u64,
    /// The stream offset after the last byte sent.
    end: u64,
    /// Memory held by kept buffers (their capacity).
    held: usize,
    limit: usize,
    /// Released buffers, for reuse: handing them back to the allocator and asking again
    /// costs page faults on every chunk. Kept and spare memory together stay within `limit`.
    spares: Vec<Vec<u8>>,
    spare_bytes: usize,
    keeping: bool,
    /// Bytes are kept here (not only counted).
    in_memory: bool,
}

impl Window {
    /// A window that keeps up to `limit` bytes of memory.
    pub fn new(limit: usize) -> Self {
        Window {
            kept: VecDeque::new(),
            start: 0,
            end: 0,
            held: 0,
            limit,
            spares: Vec::new(),
            spare_bytes: 0,
            keeping: true,
            in_memory: true,
        }
    }

    /// A window that only counts: the sender reads what it must send again from its input
    /// itself (between [`Window::start`] and [`Window::end`]).
    pub fn counting() -> Self {
        Window {
            in_memory: false,
            ..Window::new(0)
        }
    }

    /// Whether the bytes to send again are in [`Window::messages`] (else only counted).
    pub fn is_in_memory(&self) -> bool {
        self.in_memory
    }

    /// A window that keeps nothing (this pipe does not resume); it still counts.
    pub fn off() -> Self {
        Window {
            keeping: false,
            ..Window::new(0)
        }
    }

    /// Stops keeping for good (the peer cannot resume) and frees what was kept.
    pub fn stop(&mut self) {
        self.keeping = false;
        self.kept.clear();
        self.spares.clear();
        self.spare_bytes = 0;
        self.held = 0;
        self.start = self.end;
    }

    /// Whether sent messages are kept.
    pub fn is_keeping(&self) -> bool {
        self.keeping
    }

    /// Whether the window holds its limit: read no more input until the peer acknowledges.
    pub fn is_full(&self) -> bool {
        self.keeping && self.in_memory && self.held >= self.limit
    }

    /// The stream offset of the first byte not acknowledged.
    pub fn start(&self) -> u64 {
        self.start
    }

    /// Bytes sent in all (the stream offset after the last one).
    pub fn end(&self) -> u64 {
        self.end
    }

    /// Bytes sent and not acknowledged.
    pub fn unacknowledged(&self) -> u64 {
        self.end - self.start
    }

    /// `message[..len]`, a DATA message (type byte, then the body), has been sent: keep it.
    /// Returns a buffer for the next message, of at least the same capacity: `message` itself
    /// when nothing needed it, else a released or a new one (whose contents are unspecified).
    pub fn sent(&mut self, message: Vec<u8>, len: usize) -> Vec<u8> {
        debug_assert!(len >= 1 && len <= message.len());
        self.end += (len - 1) as u64;
        if !self.keeping || !self.in_memory {
            return message;
        }
        // A small chunk in a big buffer is copied, so that memory tracks the bytes kept.
        if len.saturating_mul(4) < message.capacity() {
            let copy = message[..len].to_vec();
            self.held += copy.capacity();
            self.kept.push_back((copy, len));
            return message;
        }
        let capacity = message.capacity();
        self.held += capacity;
        self.kept.push_back((message, len));
        match self.spares.pop() {
            Some(spare) => {
                self.spare_bytes -= spare.capacity();
                spare
            }
            None => Vec::with_capacity(capacity),
        }
    }

    /// The peer has taken the first `upto` bytes of the stream (an ACK, or the count in a
    /// RESUME or RESUMED): they are released. A count is never smaller than an earlier one.
    pub fn acked(&mut self, upto: u64) -> Result<(), BadCount> {
        if upto > self.end {
            return Err(BadCount::MoreThanSent);
        }
        if upto < self.start {
            return Err(BadCount::WentBack);
        }
        if !self.keeping || !self.in_memory {
            self.start = upto;
            return Ok(());
        }
        while let Some((message, len)) = self.kept.front() {
            let body = (len - 1) as u64;
            if self.start + body > upto {
                break;
            }
            let capacity = message.capacity();
            self.start += body;
            self.held -= capacity;
            if let Some((buf, _)) = self.kept.pop_front()
                && self.held + self.spare_bytes + capacity <= self.limit
            {
                self.spare_bytes += capacity;
                self.spares.push(buf);
            }
        }
        // Within a message: keep only its tail, as a message of its own.
        if upto > self.start
            && let Some((message, len)) = self.kept.front_mut()
        {
            let skip = (upto - self.start) as usize;
            let mut tail = Vec::with_capacity(*len - skip);
            tail.push(kind::DATA);
            tail.extend_from_slice(&message[1 + skip..*len]);
            self.held = self.held - message.capacity() + tail.capacity();
            *len = tail.len();
            *message = tail;
            self.start = upto;
        }
        Ok(())
    }

    /// The message kept last: what [`Window::sent`] just took, when it keeps.
    pub fn newest(&self) -> Option<&[u8]> {
        self.kept.back().map(|(message, len)| &message[..*len])
    }

    /// The kept messages, oldest first: after [`Window::acked`] with the peer's count, what it
    /// is missing, to send again in order.
    pub fn messages(&self) -> impl Iterator<Item = &[u8]> {
        self.kept.iter().map(|(message, len)| &message[..*len])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn data(body: &[u8], capacity: usize) -> (Vec<u8>, usize) {
        let mut message = vec![0u8; capacity];
        message[0] = kind::DATA;
        message[1..1 + body.len()].copy_from_slice(body);
        (message, 1 + body.len())
    }

    fn resent(window: &Window) -> Vec<u8> {
        window
            .messages()
            .flat_map(|m| {
                assert_eq!(m[0], kind::DATA);
                m[1..].to_vec()
            })
            .collect()
    }

    #[test]
    fn keeps_what_is_not_acknowledged_and_gives_it_back_in_order() {
        let mut w = Window::new(1 << 20);
        for chunk in [&b"hello "[..], b"pipe ", b"world"] {
            let (m, len) = data(chunk, len_of(chunk));
            w.sent(m, len);
        }
        assert_eq!(w.end(), 16);
        assert_eq!(resent(&w), b"hello pipe world");
        w.acked(6).unwrap();
        assert_eq!(resent(&w), b"pipe world");
        assert_eq!(w.unacknowledged(), 10);
        // Inside a message: only its tail goes again.
        w.acked(8).unwrap();
        assert_eq!(resent(&w), b"pe world");
        w.acked(16).unwrap();
        assert_eq!(resent(&w), b"");
        assert_eq!(w.held, 0);
    }

    fn len_of(chunk: &[u8]) -> usize {
        1 + chunk.len()
    }

    #[test]
    fn counts_from_the_peer_are_checked() {
        let mut w = Window::new(1 << 20);
        let (m, len) = data(b"abc", 4);
        w.sent(m, len);
        assert_eq!(w.acked(4), Err(BadCount::MoreThanSent));
        w.acked(2).unwrap();
        assert_eq!(w.acked(1), Err(BadCount::WentBack));
        assert_eq!(
            w.acked(2),
            Ok(()),
            "the same count again is no news, not an error"
        );
        // A window that keeps nothing checks the same way.
        let mut off = Window::off();
        let (m, len) = data(b"abc", 4);
        off.sent(m, len);
        assert_eq!(off.acked(5), Err(BadCount::MoreThanSent));
        off.acked(3).unwrap();
        assert_eq!(off.acked(2), Err(BadCount::WentBack));
    }

    #[test]
    fn full_buffers_are_kept_not_copied_and_reused_once_released() {
        let mut w = Window::new(1 << 20);
        let (m, len) = data(&[7; 60_000], 65_536);
        let first = m.as_ptr();
        let next = w.sent(m, len);
        assert_ne!(next.as_ptr(), first, "the kept buffer is not handed back");
        assert!(next.capacity() >= 65_536);
        assert_eq!(w.messages().next().map(|m| m.as_ptr()), Some(first));
        w.acked(60_000).unwrap();
        // The released buffer is the next one handed out.
        let (m, len) = data(&[8; 60_000], 65_536);
        let again = w.sent(m, len);
        assert_eq!(again.as_ptr(), first);
    }

    #[test]
    fn a_small_chunk_is_copied_so_memory_follows_the_bytes() {
        let mut w = Window::new(1 << 20);
        let (m, len) = data(b"hi", 65_536);
        let buf = m.as_ptr();
        let next = w.sent(m, len);
        assert_eq!(next.as_ptr(), buf, "the big buffer is reused at once");
        assert!(w.held < 64, "held {}", w.held);
        assert_eq!(resent(&w), b"hi");
    }

    #[test]
    fn the_limit_stops_the_input_until_acknowledged() {
        let mut w = Window::new(3 * 65_536);
        for _ in 0..3 {
            assert!(!w.is_full());
            let (m, len) = data(&[1; 65_000], 65_536);
            w.sent(m, len);
        }
        assert!(w.is_full());
        w.acked(65_000).unwrap();
        assert!(!w.is_full());
    }

    #[test]
    fn a_counting_window_keeps_nothing_and_is_never_full() {
        let mut w = Window::counting();
        let (m, len) = data(&[5; 60_000], 65_536);
        let ptr = m.as_ptr();
        let back = w.sent(m, len);
        assert_eq!(back.as_ptr(), ptr, "nothing is kept");
        assert!(w.is_keeping() && !w.is_in_memory() && !w.is_full());
        assert_eq!(w.messages().count(), 0);
        w.acked(10).unwrap();
        assert_eq!((w.start(), w.end()), (10, 60_000));
        assert_eq!(w.acked(60_001), Err(BadCount::MoreThanSent));
    }

    #[test]
    fn a_stopped_window_keeps_nothing_but_counts() {
        let mut w = Window::new(1 << 20);
        let (m, len) = data(b"abc", 4);
        w.sent(m, len);
        w.stop();
        assert!(!w.is_keeping() && !w.is_full());
        let (m, len) = data(&[0; 60_000], 65_536);
        let ptr = m.as_ptr();
        let back = w.sent(m, len);
        assert_eq!(back.as_ptr(), ptr);
        assert_eq!(w.end(), 60_003);
        assert_eq!(w.messages().count(), 0);
    }
}
