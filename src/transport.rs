//! The encrypted message stream shared by both roles, after the handshake.
//!
//! A session is split into a [`RecvHalf`] and a [`SendHalf`] so that reading and writing can run
//! at the same time (full duplex) in different tasks. snow's `TransportState` needs `&mut` for
//! both directions, so the halves share it behind a mutex that is held only while one message
//! is sealed or opened — never across an `.await`.

use crate::error::{Error, ProtocolError, Result};
use crate::framed::{FrameReader, FrameWriter};
use crate::message::{self, MAX_PLAINTEXT, Message, MessageError};
use snow::TransportState;
use std::sync::{Arc, Mutex, MutexGuard};
use tokio::io::{AsyncRead, AsyncWrite};

/// Bytes Noise adds to every transport message (the Poly1305 tag).
pub const TAG_LEN: usize = 16;

type SharedState = Arc<Mutex<TransportState>>;

fn lock(state: &SharedState) -> Result<MutexGuard<'_, TransportState>> {
    state
        .lock()
        .map_err(|_| Error::Internal("cipher state lock poisoned".into()))
}

/// Builds the two halves of an established session.
pub fn split<R, W>(
    state: TransportState,
    reader: FrameReader<R>,
    writer: FrameWriter<W>,
) -> (RecvHalf<R>, SendHalf<W>) {
    let state = Arc::new(Mutex::new(state));
    (
        RecvHalf {
            state: state.clone(),
            frames: reader,
            plain: vec![0u8; MAX_PLAINTEXT + TAG_LEN].into_boxed_slice(),
            quit_received: false,
        },
        SendHalf {
            state,
            frames: writer,
            plain: Vec::with_capacity(MAX_PLAINTEXT),
            quit_sent: false,
        },
    )
}

/// The receiving direction.
pub struct RecvHalf<R> {
    state: SharedState,
    frames: FrameReader<R>,
    plain: Box<[u8]>,
    quit_received: bool,
}

impl<R: AsyncRead + Unpin> RecvHalf<R> {
    /// The next message, or `None` when the peer closed the stream between frames.
    ///
    /// Cancel safe: all waiting happens in [`FrameReader::read_frame`]; decryption runs only
    /// once a whole frame is buffered and completes without awaiting.
    ///
    /// Any decryption failure, malformed plaintext, or message after QUIT is an error: over TCP
    /// there is no benign cause, so the session must end (Noise spec §5).
    pub async fn recv(&mut self) -> Result<Option<Message<'_>>> {
        let Some(frame) = self.frames.read_frame().await? else {
            return Ok(None);
        };
        if self.quit_received {
            return Err(ProtocolError::Unexpected("more data", "after its QUIT").into());
        }
        let len = lock(&self.state)?
            .read_message(frame, &mut self.plain)
            .map_err(|e| match e {
                snow::Error::Decrypt | snow::Error::Input => Error::from(ProtocolError::Decrypt),
                other => Error::Internal(format!("decrypting: {other}")),
            })?;
        let msg = Message::decode(&self.plain[..len]).map_err(ProtocolError::Message)?;
        if matches!(msg, Message::Quit(_)) {
            self.quit_received = true;
        }
        Ok(Some(msg))
    }

    /// Whether the peer has said goodbye.
    pub fn quit_received(&self) -> bool {
        self.quit_received
    }

    /// Reads and drops raw bytes until the peer closes, for a graceful close after our QUIT:
    /// closing a socket with unread data makes the kernel send RST, which can destroy our QUIT
    /// before the peer reads it.
    pub async fn drain(&mut self) {
        use tokio::io::AsyncReadExt;
        let mut sink = [0u8; 4096];
        while matches!(self.frames.get_mut().read(&mut sink).await, Ok(n) if n > 0) {}
    }
}

/// The sending direction. Not cancel safe: drive it from a single task.
pub struct SendHalf<W> {
    state: SharedState,
    frames: FrameWriter<W>,
    plain: Vec<u8>,
    quit_sent: bool,
}

impl<W: AsyncWrite + Unpin> SendHalf<W> {
    /// Encrypts and sends one message. After a QUIT nothing more may be sent.
    pub async fn send(&mut self, msg: &Message<'_>) -> Result<()> {
        if self.quit_sent {
            return Err(Error::Internal("attempt to send after QUIT".into()));
        }
        msg.encode_into(&mut self.plain).map_err(|e| match e {
            MessageError::TooLong { len } => Error::Usage(format!(
                "a message of {len} bytes is too long to send (limit {} bytes)",
                message::MAX_BODY
            )),
            other => Error::Internal(other.to_string()),
        })?;
        let (state, plain) = (&self.state, &self.plain);
        self.frames
            .write_frame_with(plain.len() + TAG_LEN, |out| {
                lock(state)?
                    .write_message(plain, out)
                    .map_err(|e| Error::Internal(format!("encrypting: {e}")))
            })
            .await?;
        if matches!(msg, Message::Quit(_)) {
            self.quit_sent = true;
        }
        Ok(())
    }

    /// Sends QUIT with `reason` and closes our direction of the stream.
    pub async fn quit(&mut self, reason: &str) -> Result<()> {
        self.send(&Message::Quit(reason.into())).await?;
        self.close().await
    }

    /// Closes our direction of the stream (TCP FIN) without a QUIT.
    pub async fn close(&mut self) -> Result<()> {
        self.frames.shutdown().await
    }

    /// Whether we have said goodbye.
    pub fn quit_sent(&self) -> bool {
        self.quit_sent
    }
}
