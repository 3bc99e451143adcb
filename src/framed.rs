//! Buffered frame I/O over any byte stream: `FrameReader` and `FrameWriter` turn an
//! `AsyncRead`/`AsyncWrite` into a sequence of length-prefixed frames (see `frame.rs`).
//!
//! Both keep one buffer for the life of the connection, so the hot path never allocates.
//!
//! Both also work over a blocking `std::io::Read`/`Write` (the `_blocking` methods), with the
//! same buffers: a bulk transfer over TCP leaves the async runtime once the session is open
//! ([`Detach`]), because a thread per direction doing read → seal → write costs less than
//! waking tasks for every 64 KiB.

use crate::error::{Error, ProtocolError, Result};
use crate::frame::{self, HEADER_LEN, MAX_BODY};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

/// The read buffer grows up to four maximal frames. Two would do for correctness (a partial
/// frame always fits after compacting), but with more room compaction — copying the partial
/// frame to the front — happens a third as often during bulk transfers.
const READ_BUF_MAX: usize = 4 * (HEADER_LEN + MAX_BODY);

/// Where the read buffer starts: enough for chat and handshakes, so a connection that never
/// carries bulk data never allocates (or zeroes) the large buffer.
const READ_BUF_START: usize = 4096;

/// Reads whole frames from a byte stream.
pub struct FrameReader<R> {
    io: R,
    buf: Vec<u8>,
    /// Unconsumed bytes are `buf[start..end]`.
    start: usize,
    end: usize,
}

impl<R: AsyncRead + Unpin> FrameReader<R> {
    /// The next frame's body; `None` when the stream ends cleanly between frames.
    ///
    /// Cancel safe: the only await is a read into the spare part of the buffer, so dropping this
    /// future (e.g. when another `select!` branch wins) loses no bytes.
    pub async fn read_frame(&mut self) -> Result<Option<&[u8]>> {
        loop {
            if let Some(body) = self.take_frame() {
                return Ok(Some(&self.buf[body]));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }

    /// Reads what has arrived into the buffer: `false` when the stream ended cleanly between
    /// frames (inside one it is an error). The only await of this reader: cancel safe.
    async fn fill(&mut self) -> Result<bool> {
        self.make_room();
        let n = self
            .io
            .read(&mut self.buf[self.end..])
            .await
            .map_err(|e| Error::io("reading from the peer", e))?;
        self.filled(n)
    }

    /// Waits until at least one byte has arrived (`false`: the stream ended first), consuming
    /// nothing: lets a listener tell a dialer that has started a message from one that has
    /// sent nothing at all. Cancel safe, like [`FrameReader::read_frame`].
    pub async fn first_bytes(&mut self) -> Result<bool> {
        if self.end > self.start {
            return Ok(true);
        }
        self.fill().await
    }

    /// The next frame's length prefix, as soon as it has arrived, without consuming anything;
    /// `None` when the stream ends cleanly first. Lets a handshake reject another protocol from
    /// its first two bytes instead of waiting for a "frame" of whatever length they spell.
    /// Cancel safe, like [`FrameReader::read_frame`].
    pub async fn peek_header(&mut self) -> Result<Option<[u8; HEADER_LEN]>> {
        loop {
            if self.end - self.start >= HEADER_LEN {
                return Ok(Some([self.buf[self.start], self.buf[self.start + 1]]));
            }
            if !self.fill().await? {
                return Ok(None);
            }
        }
    }
}

impl<R> FrameReader<R> {
    /// The next whole frame's body in the buffer, consumed, if there is one.
    fn take_frame(&mut self) -> Option<std::ops::Range<usize>> {
        let len = frame::parse(&self.buf[self.start..self.end])?;
        let body = self.start + HEADER_LEN..self.start + HEADER_LEN + len;
        self.start = body.end;
        Some(body)
    }

    /// Wraps a stream.
    pub fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: vec![0u8; READ_BUF_START],
            start: 0,
            end: 0,
        }
    }

    /// Accounts for `n` bytes just read after `end`: `false` at a clean end of the stream.
    fn filled(&mut self, n: usize) -> Result<bool> {
        if n == 0 {
            return if self.start == self.end {
                Ok(false)
            } else {
                Err(ProtocolError::TruncatedFrame.into())
            };
        }
        self.end += n;
        Ok(true)
    }

    /// Ensures the frame being assembled fits between `start` and the end of the buffer, and
    /// that there is room to read into.
    fn make_room(&mut self) {
        if self.start == self.end {
            self.start = 0;
            self.end = 0;
        }
        let needed = self.end + frame::missing(&self.buf[self.start..self.end]);
        if needed <= self.buf.len() {
            return;
        }
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        let needed = self.end + frame::missing(&self.buf[..self.end]);
        if needed > self.buf.len() {
            // Grow geometrically (a bulk transfer reaches the maximum after a few frames).
            let len = needed.max(2 * self.buf.len()).min(READ_BUF_MAX);
            self.buf.resize(len, 0);
        }
    }

    /// The underlying stream.
    pub fn get_mut(&mut self) -> &mut R {
        &mut self.io
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        &self.io
    }

    /// Moves the reader onto another stream (the same connection seen another way), keeping
    /// the bytes already buffered.
    pub fn try_map_io<R2, E>(
        self,
        f: impl FnOnce(R) -> std::result::Result<R2, E>,
    ) -> std::result::Result<FrameReader<R2>, E> {
        Ok(FrameReader {
            io: f(self.io)?,
            buf: self.buf,
            start: self.start,
            end: self.end,
        })
    }
}

/// What a blocking read brought: something whole, or not (yet).
#[derive(Debug)]
pub enum Polled<T> {
    Ready(T),
    /// Nothing whole: the read timed out (`WouldBlock`/`TimedOut`), was interrupted, or
    /// brought only part of a frame. Nothing is lost; ask again.
    Idle,
}

impl<R: std::io::Read> FrameReader<R> {
    /// As [`FrameReader::read_frame`], blocking, for a thread that owns the stream, with at
    /// most one read per call: [`Polled::Idle`] when that read timed out (see
    /// `TcpStream::set_read_timeout`) or did not complete a frame, so that the caller sees
    /// time pass even while a frame trickles in. A frame half read is completed by a later
    /// call.
    pub fn read_frame_blocking(&mut self) -> Result<Polled<Option<&[u8]>>> {
        if let Some(body) = self.take_frame() {
            return Ok(Polled::Ready(Some(&self.buf[body])));
        }
        self.make_room();
        let n = match self.io.read(&mut self.buf[self.end..]) {
            Ok(n) => n,
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock
                        | std::io::ErrorKind::TimedOut
                        | std::io::ErrorKind::Interrupted
                ) =>
            {
                return Ok(Polled::Idle);
            }
            Err(e) => return Err(Error::io("reading from the peer", e)),
        };
        if !self.filled(n)? {
            return Ok(Polled::Ready(None));
        }
        Ok(match self.take_frame() {
            Some(body) => Polled::Ready(Some(&self.buf[body])),
            None => Polled::Idle,
        })
    }
}

/// A stream that can leave the async runtime as a blocking socket. TCP can; QUIC streams and
/// in-memory pipes cannot, and keep the default (never). Pipe mode uses it to move bulk data
/// on plain threads (see the module comment).
pub trait Detach: Sized {
    /// Whether [`Detach::detach`] would succeed, short of the OS refusing a descriptor.
    fn detachable(&self) -> bool {
        false
    }

    /// The same connection as a blocking `std` socket (this half of it: a read half is used
    /// to read, a write half to write and to close our direction). The stream itself is
    /// consumed without closing anything; on failure it comes back unchanged.
    fn detach(self) -> std::result::Result<std::net::TcpStream, (Self, std::io::Error)> {
        Err((
            self,
            std::io::Error::new(std::io::ErrorKind::Unsupported, "not a TCP stream"),
        ))
    }
}

impl<T> Detach for tokio::io::ReadHalf<T> {}
impl<T> Detach for tokio::io::WriteHalf<T> {}

/// Writes frames to a byte stream, each with a single `write_all` (prefix and body together),
/// which keeps Nagle's algorithm and partial writes from splitting a message in two.
///
/// Not cancel safe (a frame may be half written): drive it from one task, outside `select!`.
pub struct FrameWriter<W> {
    io: W,
    /// Frames to send are `buf[..queued]`. The rest keeps its length between flushes, so that
    /// building the next frame does not zero 64 KiB again (it is overwritten anyway).
    buf: Vec<u8>,
    queued: usize,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Writes `body` as one frame.
    pub async fn write_frame(&mut self, body: &[u8]) -> Result<()> {
        self.write_frame_with(body.len(), |out| {
            out.copy_from_slice(body);
            Ok(body.len())
        })
        .await
    }

    /// Builds a frame in place and sends it: `fill` receives `max_len` bytes of buffer, writes
    /// the body into it and returns the body's real length. Lets the encryptor seal straight
    /// into the outgoing buffer, with no copy.
    pub async fn write_frame_with(
        &mut self,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<usize>,
    ) -> Result<()> {
        self.queue_frame_with(max_len, fill)?;
        self.flush_frames().await
    }

    /// Sends every queued frame with one `write_all`.
    pub async fn flush_frames(&mut self) -> Result<()> {
        if self.queued == 0 {
            return Ok(());
        }
        let result = self.io.write_all(&self.buf[..self.queued]).await;
        self.queued = 0;
        result.map_err(|e| Error::io("sending to the peer", e))?;
        self.io
            .flush()
            .await
            .map_err(|e| Error::io("sending to the peer", e))
    }

    /// Closes our sending direction (TCP FIN), telling the peer we will write no more.
    pub async fn shutdown(&mut self) -> Result<()> {
        self.io
            .shutdown()
            .await
            .map_err(|e| Error::io("closing the connection", e))
    }
}

impl<W> FrameWriter<W> {
    /// The underlying stream (writing to it directly bypasses the framing).
    pub fn get_mut(&mut self) -> &mut W {
        &mut self.io
    }

    /// Wraps a stream.
    pub fn new(io: W) -> Self {
        FrameWriter {
            io,
            // Grows with use (to one frame for chat, more when frames are batched).
            buf: Vec::new(),
            queued: 0,
        }
    }

    /// Builds a frame at the end of the outgoing buffer without sending it, so that several
    /// frames can leave in one write (see [`FrameWriter::flush_frames`]).
    pub fn queue_frame_with(
        &mut self,
        max_len: usize,
        fill: impl FnOnce(&mut [u8]) -> Result<usize>,
    ) -> Result<()> {
        if max_len > MAX_BODY {
            return Err(Error::Internal(format!(
                "frame of {max_len} bytes is too long"
            )));
        }
        let start = self.queued;
        let end = start + HEADER_LEN + max_len;
        if self.buf.len() < end {
            self.buf.resize(end, 0);
        }
        let len = match fill(&mut self.buf[start + HEADER_LEN..end]) {
            Ok(len) => len.min(max_len),
            Err(e) => {
                return Err(e);
            }
        };
        let header = frame::header(len).map_err(|e| Error::Internal(e.to_string()))?;
        self.buf[start..start + HEADER_LEN].copy_from_slice(&header);
        self.queued = start + HEADER_LEN + len;
        Ok(())
    }

    /// Bytes of frames queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.queued
    }

    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        &self.io
    }

    /// Moves the writer onto another stream (the same connection seen another way), keeping
    /// anything queued.
    pub fn try_map_io<W2, E>(
        self,
        f: impl FnOnce(W) -> std::result::Result<W2, E>,
    ) -> std::result::Result<FrameWriter<W2>, E> {
        Ok(FrameWriter {
            io: f(self.io)?,
            buf: self.buf,
            queued: self.queued,
        })
    }
}

impl<W: std::io::Write> FrameWriter<W> {
    /// As [`FrameWriter::flush_frames`], blocking.
    pub fn flush_frames_blocking(&mut self) -> Result<()> {
        if self.queued == 0 {
            return Ok(());
        }
        let result = self
            .io
            .write_all(&self.buf[..self.queued])
            .and_then(|()| self.io.flush());
        self.queued = 0;
        result.map_err(|e| Error::io("sending to the peer", e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tokio::io::duplex;

    #[tokio::test]
    async fn frames_survive_one_byte_reads() {
        let (a, b) = duplex(1);
        let mut writer = FrameWriter::new(a);
        let mut reader = FrameReader::new(b);
        let bodies: Vec<Vec<u8>> = vec![vec![], vec![1], vec![7; 300], vec![9; MAX_BODY]];
        let expected = bodies.clone();
        let send = tokio::spawn(async move {
            for body in &bodies {
                writer.write_frame(body).await.unwrap();
            }
        });
        for body in expected {
            assert_eq!(reader.read_frame().await.unwrap().unwrap(), &body[..]);
        }
        send.await.unwrap();
        assert!(reader.read_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn many_frames_in_one_read_and_frames_spanning_the_buffer_end() {
        // Sizes chosen so frames straddle the end of the read buffer and force compaction.
        let sizes = [MAX_BODY, 40_000, MAX_BODY, 3, MAX_BODY, 60_000, 0, 1];
        let mut wire = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            wire.extend_from_slice(&frame::header(n).unwrap());
            wire.extend(std::iter::repeat_n(i as u8, n));
        }
        let mut reader = FrameReader::new(&wire[..]);
        for (i, &n) in sizes.iter().enumerate() {
            let body = reader.read_frame().await.unwrap().unwrap();
            assert_eq!(body.len(), n);
            assert!(body.iter().all(|&b| b == i as u8));
        }
        assert!(reader.read_frame().await.unwrap().is_none());
    }

    #[tokio::test]
    async fn eof_inside_a_frame_is_a_truncation() {
        for wire in [&[0u8][..], &[0, 5, 1, 2][..]] {
            let mut reader = FrameReader::new(wire);
            match reader.read_frame().await {
                Err(Error::Protocol(ProtocolError::TruncatedFrame)) => {}
                other => panic!("expected truncation, got {:?}", other.map(|o| o.is_some())),
            }
        }
    }

    #[tokio::test]
    async fn read_frame_is_cancel_safe() {
        let (mut a, b) = duplex(64);
        let mut reader = FrameReader::new(b);
        // Half a frame arrives; the read is cancelled by a timeout; the rest arrives later.
        a.write_all(&[0, 4, b'a', b'b']).await.unwrap();
        let first = tokio::time::timeout(std::time::Duration::from_millis(20), reader.read_frame());
        assert!(first.await.is_err());
        a.write_all(b"cd").await.unwrap();
        assert_eq!(reader.read_frame().await.unwrap().unwrap(), b"abcd");
    }

    #[test]
    fn blocking_reads_survive_one_byte_writes_and_timeouts_mid_frame() {
        use std::io::Write as _;
        let (mut a, b) = std::os::unix::net::UnixStream::pair().unwrap();
        b.set_read_timeout(Some(std::time::Duration::from_millis(5)))
            .unwrap();
        let bodies: Vec<Vec<u8>> = vec![vec![], vec![1], vec![7; 300], vec![9; MAX_BODY]];
        let mut wire = Vec::new();
        for body in &bodies {
            wire.extend_from_slice(&frame::header(body.len()).unwrap());
            wire.extend_from_slice(body);
        }
        let writer = std::thread::spawn(move || {
            for (i, byte) in wire.iter().enumerate() {
                a.write_all(&[*byte]).unwrap();
                // Pauses inside the first frames, longer than the reader's timeout.
                if i < 8 {
                    std::thread::sleep(std::time::Duration::from_millis(20));
                }
            }
        });
        let mut reader = FrameReader::new(b);
        let mut idle = 0;
        for body in &bodies {
            loop {
                match reader.read_frame_blocking().unwrap() {
                    Polled::Ready(frame) => {
                        assert_eq!(frame.unwrap(), &body[..]);
                        break;
                    }
                    Polled::Idle => idle += 1,
                }
            }
        }
        writer.join().unwrap();
        assert!(idle > 0, "the pauses were never seen as timeouts");
        loop {
            match reader.read_frame_blocking().unwrap() {
                Polled::Ready(end) => break assert!(end.is_none()),
                Polled::Idle => {}
            }
        }
    }

    #[test]
    fn blocking_eof_inside_a_frame_is_a_truncation() {
        let mut reader = FrameReader::new(&[0u8, 5, 1, 2][..]);
        // Part of a frame: nothing whole yet; then the end of the stream inside it.
        assert!(matches!(reader.read_frame_blocking(), Ok(Polled::Idle)));
        match reader.read_frame_blocking() {
            Err(Error::Protocol(ProtocolError::TruncatedFrame)) => {}
            other => panic!("expected truncation, got {:?}", other.map(|_| ())),
        }
    }

    #[tokio::test]
    async fn blocking_writes_read_back_asynchronously() {
        let mut writer = FrameWriter::new(Vec::new());
        for body in [&b"one"[..], b"", &[3; MAX_BODY]] {
            writer
                .queue_frame_with(body.len(), |out| {
                    out.copy_from_slice(body);
                    Ok(body.len())
                })
                .unwrap();
            writer.flush_frames_blocking().unwrap();
        }
        assert_eq!(writer.queued(), 0);
        let mut reader = FrameReader::new(&writer.io[..]);
        for body in [&b"one"[..], b"", &[3; MAX_BODY]] {
            assert_eq!(reader.read_frame().await.unwrap().unwrap(), body);
        }
        assert!(reader.read_frame().await.unwrap().is_none());
    }

    /// Records each `poll_write` call separately.
    #[derive(Default)]
    struct WriteLog(Vec<Vec<u8>>);

    impl AsyncWrite for WriteLog {
        fn poll_write(
            mut self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
            buf: &[u8],
        ) -> std::task::Poll<std::io::Result<usize>> {
            self.0.push(buf.to_vec());
            std::task::Poll::Ready(Ok(buf.len()))
        }
        fn poll_flush(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
        fn poll_shutdown(
            self: std::pin::Pin<&mut Self>,
            _: &mut std::task::Context<'_>,
        ) -> std::task::Poll<std::io::Result<()>> {
            std::task::Poll::Ready(Ok(()))
        }
    }

    #[tokio::test]
    async fn queued_frames_leave_in_one_write() {
        let mut writer = FrameWriter::new(WriteLog::default());
        for body in [&b"one"[..], b"", b"three"] {
            writer
                .queue_frame_with(body.len(), |out| {
                    out.copy_from_slice(body);
                    Ok(body.len())
                })
                .unwrap();
        }
        assert_eq!(writer.queued(), 2 + 3 + 2 + 2 + 5);
        writer.flush_frames().await.unwrap();
        assert_eq!(writer.io.0.len(), 1);
        let mut reader = FrameReader::new(&writer.io.0[0][..]);
        for body in [&b"one"[..], b"", b"three"] {
            assert_eq!(reader.read_frame().await.unwrap().unwrap(), body);
        }
        // A failing fill leaves nothing half-queued.
        let failed = writer.queue_frame_with(10, |_| Err(Error::Internal("no".into())));
        assert!(failed.is_err());
        assert_eq!(writer.queued(), 0);
    }

    #[tokio::test]
    async fn prefix_and_body_go_out_in_one_write() {
        let mut writer = FrameWriter::new(WriteLog::default());
        writer.write_frame(b"xyz").await.unwrap();
        writer.write_frame(&[5; 1000]).await.unwrap();
        let log = &writer.io.0;
        assert_eq!(log.len(), 2, "one write per frame");
        assert_eq!(log[0], [0, 3, b'x', b'y', b'z']);
        assert_eq!(log[1].len(), 1002);
    }
}
