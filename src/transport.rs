//! The encrypted message stream shared by both roles, after the handshake.
//!
//! A session is split into a [`RecvHalf`] and a [`SendHalf`] so that reading and writing can run
//! at the same time (full duplex) in different tasks. snow's `TransportState` needs `&mut` for
//! both directions, so the halves share it behind a mutex that is held only while one message
//! is sealed or opened — never across an `.await`.

use crate::error::{Error, ProtocolError, Result};
use crate::framed::{FrameReader, FrameWriter};
use crate::message::{self, MAX_PLAINTEXT, Message, MessageError, kind};
use snow::TransportState;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

/// Bytes Noise adds to every transport message (the Poly1305 tag).
pub const TAG_LEN: usize = 16;

/// Size of a receive-side plaintext buffer (snow wants room for the tag too).
pub const PLAINTEXT_BUF_LEN: usize = MAX_PLAINTEXT + TAG_LEN;

/// The receive buffer's first size, enough for chat messages.
const SMALL_BUF: usize = 4096;

type SharedState = Arc<Mutex<TransportState>>;

/// When a sending direction moves to a new key (Noise §11.3 `REKEY`): after this many messages,
/// bytes, or time since the last change, whichever comes first. Old keys are then gone, so a
/// key stolen later from memory cannot decrypt earlier traffic of a long session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RekeyPolicy {
    /// Messages sent under one key.
    pub messages: u64,
    /// Plaintext bytes sent under one key.
    pub bytes: u64,
    /// Time under one key (checked when sending).
    pub interval: Duration,
}

impl Default for RekeyPolicy {
    fn default() -> Self {
        RekeyPolicy {
            messages: 1 << 20,
            bytes: 1 << 30,
            interval: Duration::from_secs(600),
        }
    }
}

/// What has been sent under the current key.
#[derive(Debug, Clone, Copy)]
struct Usage {
    messages: u64,
    bytes: u64,
    since: Instant,
}

impl Usage {
    fn new() -> Self {
        Usage {
            messages: 0,
            bytes: 0,
            since: Instant::now(),
        }
    }
}

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
            plain: Vec::new().into_boxed_slice(),
            quit_received: false,
            rekeys: 0,
        },
        SendHalf {
            state,
            frames: writer,
            plain: Vec::new(),
            quit_sent: false,
            policy: RekeyPolicy::default(),
            usage: Usage::new(),
            rekeys: 0,
        },
    )
}

/// The receiving direction.
pub struct RecvHalf<R> {
    state: SharedState,
    frames: FrameReader<R>,
    plain: Box<[u8]>,
    quit_received: bool,
    rekeys: u64,
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
        loop {
            let Some(frame) = self.frames.read_frame().await? else {
                return Ok(None);
            };
            if self.quit_received {
                return Err(ProtocolError::Unexpected("more data", "after its QUIT").into());
            }
            if self.plain.len() < frame.len() {
                // Grown on demand: chat-sized traffic never needs the 64 KiB buffer, and a room
                // host keeps one per member.
                let size = if frame.len() <= SMALL_BUF {
                    SMALL_BUF
                } else {
                    PLAINTEXT_BUF_LEN
                };
                self.plain = vec![0u8; size].into_boxed_slice();
            }
            let mut state = lock(&self.state)?;
            let len = state
                .read_message(frame, &mut self.plain)
                .map_err(|e| match e {
                    snow::Error::Decrypt | snow::Error::Input => {
                        Error::from(ProtocolError::Decrypt)
                    }
                    other => Error::Internal(format!("decrypting: {other}")),
                })?;
            // REKEY is handled here, invisibly to the caller: the peer's next message uses
            // its next key.
            if self.plain.first() == Some(&kind::REKEY) {
                if len != 1 {
                    return Err(
                        ProtocolError::Message(MessageError::UnexpectedBody("REKEY")).into(),
                    );
                }
                state.rekey_incoming();
                self.rekeys += 1;
                continue;
            }
            drop(state);
            let msg = Message::decode(&self.plain[..len]).map_err(ProtocolError::Message)?;
            if matches!(msg, Message::Quit(_)) {
                self.quit_received = true;
            }
            return Ok(Some(msg));
        }
    }

    /// How many times the peer has changed its sending key.
    pub fn rekeys(&self) -> u64 {
        self.rekeys
    }

    /// Swaps the plaintext buffer for `spare` and returns the old one, which holds the last
    /// message received (type byte at 0, body from 1). Lets pipe mode hand a DATA chunk to
    /// another thread without copying it. `spare` may have any size: the buffer grows again
    /// on demand, as it does for every frame (a returned buffer can be small, when the last
    /// message was).
    pub fn exchange_buffer(&mut self, spare: Box<[u8]>) -> Box<[u8]> {
        std::mem::replace(&mut self.plain, spare)
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
    policy: RekeyPolicy,
    usage: Usage,
    rekeys: u64,
}

impl<W: AsyncWrite + Unpin> SendHalf<W> {
    /// Changes when this direction rekeys (the default suits real sessions).
    pub fn set_rekey_policy(&mut self, policy: RekeyPolicy) {
        self.policy = policy;
    }

    /// How many times we have changed our sending key.
    pub fn rekeys(&self) -> u64 {
        self.rekeys
    }

    /// Encrypts and sends one message, first changing keys if the policy says it is time.
    /// After a QUIT nothing more may be sent.
    pub async fn send(&mut self, msg: &Message<'_>) -> Result<()> {
        self.queue(msg)?;
        self.flush().await
    }

    /// Sends a message that is already encoded (type byte + body), e.g. a pipe-mode DATA chunk
    /// read straight into its buffer after the type byte: no copy before encryption.
    pub async fn send_encoded(&mut self, plaintext: &[u8]) -> Result<()> {
        self.queue_encoded(plaintext)?;
        self.flush().await
    }

    /// Encrypts a message into the outgoing buffer without sending it yet: several queued
    /// messages leave in one write at the next [`SendHalf::flush`] (a room host relaying to many
    /// members saves a system call per message this way).
    pub fn queue(&mut self, msg: &Message<'_>) -> Result<()> {
        let mut plain = std::mem::take(&mut self.plain);
        let result = match msg.encode_into(&mut plain) {
            Ok(()) => self.queue_encoded(&plain),
            Err(MessageError::TooLong { len }) => Err(Error::Usage(format!(
                "a message of {len} bytes is too long to send (limit {} bytes)",
                message::MAX_BODY
            ))),
            Err(other) => Err(Error::Internal(other.to_string())),
        };
        self.plain = plain;
        result
    }

    /// As [`SendHalf::queue`], for an already encoded message.
    pub fn queue_encoded(&mut self, plaintext: &[u8]) -> Result<()> {
        if self.quit_sent {
            return Err(Error::Internal("attempt to send after QUIT".into()));
        }
        if plaintext.is_empty() || plaintext.len() > MAX_PLAINTEXT {
            return Err(Error::Internal(format!(
                "plaintext of {} bytes cannot be sent",
                plaintext.len()
            )));
        }
        let usage = self.usage;
        if usage.messages >= self.policy.messages
            || usage.bytes >= self.policy.bytes
            || usage.since.elapsed() >= self.policy.interval
        {
            self.seal(&[kind::REKEY])?;
            lock(&self.state)?.rekey_outgoing();
            self.usage = Usage::new();
            self.rekeys += 1;
        }
        self.seal(plaintext)?;
        self.usage.messages += 1;
        self.usage.bytes += plaintext.len() as u64;
        if plaintext[0] == kind::QUIT {
            self.quit_sent = true;
        }
        Ok(())
    }

    /// Bytes queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.frames.queued()
    }

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        self.frames.flush_frames().await
    }

    fn seal(&mut self, plain: &[u8]) -> Result<()> {
        let state = &self.state;
        self.frames.queue_frame_with(plain.len() + TAG_LEN, |out| {
            lock(state)?.write_message(plain, out).map_err(|e| match e {
                // 2^64 - 1 messages: never in practice, but the session must end (§5.1).
                snow::Error::State(_) => Error::Internal("nonce space exhausted".into()),
                other => Error::Internal(format!("encrypting: {other}")),
            })
        })
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
