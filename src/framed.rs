//! Buffered frame I/O over any byte stream: `FrameReader` and `FrameWriter` turn an
//! `AsyncRead`/`AsyncWrite` into a sequence of length-prefixed frames (see `frame.rs`).
//!
//! Both keep one buffer for the life of the connection, so the hot path never allocates.

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
    /// Wraps a stream.
    pub fn new(io: R) -> Self {
        FrameReader {
            io,
            buf: vec![0u8; READ_BUF_START],
            start: 0,
            end: 0,
        }
    }

    /// The next frame's body; `None` when the stream ends cleanly between frames.
    ///
    /// Cancel safe: the only await is a read into the spare part of the buffer, so dropping this
    /// future (e.g. when another `select!` branch wins) loses no bytes.
    pub async fn read_frame(&mut self) -> Result<Option<&[u8]>> {
        loop {
            if let Some(len) = frame::parse(&self.buf[self.start..self.end]) {
                let body = self.start + HEADER_LEN..self.start + HEADER_LEN + len;
                self.start = body.end;
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
}

/// Writes frames to a byte stream, each with a single `write_all` (prefix and body together),
/// which keeps Nagle's algorithm and partial writes from splitting a message in two.
///
/// Not cancel safe (a frame may be half written): drive it from one task, outside `select!`.
pub struct FrameWriter<W> {
    io: W,
    buf: Vec<u8>,
}

impl<W: AsyncWrite + Unpin> FrameWriter<W> {
    /// Wraps a stream.
    pub fn new(io: W) -> Self {
        FrameWriter {
            io,
            // Grows with use (to one frame for chat, more when frames are batched).
            buf: Vec::new(),
        }
    }

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
        let start = self.buf.len();
        self.buf.resize(start + HEADER_LEN + max_len, 0);
        let len = match fill(&mut self.buf[start + HEADER_LEN..]) {
            Ok(len) => len.min(max_len),
            Err(e) => {
                self.buf.truncate(start);
                return Err(e);
            }
        };
        let header = frame::header(len).map_err(|e| Error::Internal(e.to_string()))?;
        self.buf[start..start + HEADER_LEN].copy_from_slice(&header);
        self.buf.truncate(start + HEADER_LEN + len);
        Ok(())
    }

    /// Bytes of frames queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.buf.len()
    }

    /// Sends every queued frame with one `write_all`.
    pub async fn flush_frames(&mut self) -> Result<()> {
        if self.buf.is_empty() {
            return Ok(());
        }
        let result = self.io.write_all(&self.buf).await;
        self.buf.clear();
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
