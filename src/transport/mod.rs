//! The encrypted message stream shared by both roles, after the handshake.
//!
//! A session is split into a [`RecvHalf`] and a [`SendHalf`] so that reading and writing can run
//! at the same time (full duplex) in different tasks or threads. Each half owns its direction's
//! [`CipherState`]: all they share is a few flags about the cipher switch ([`Ciphers`]).
//!
//! Both halves also run the cipher switch (PROTOCOL.md §4.9), invisibly to the session: after
//! our HELLO we say which other ciphers we can receive (CIPHERS), and once the peer has said
//! the same, our sending direction moves to AES-256-GCM (SWITCH) — when this machine has AES
//! instructions, which make it several times cheaper than ChaCha20-Poly1305.

use crate::cipher::{Aead, CipherPair, CipherState};
use crate::error::{Error, ProtocolError, Result};
use crate::framed::{FrameReader, FrameWriter, Polled};
use crate::message::{self, MAX_PLAINTEXT, Message, MessageError, kind};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};
use tokio::io::{AsyncRead, AsyncWrite};

/// Bytes Noise adds to every transport message (the AEAD tag).
pub const TAG_LEN: usize = crate::cipher::TAG_LEN;

/// Size of a receive-side plaintext buffer: a whole frame is opened in place, tag included.
pub const PLAINTEXT_BUF_LEN: usize = MAX_PLAINTEXT + TAG_LEN;

/// The receive buffer's first size, enough for chat messages.
const SMALL_BUF: usize = 4096;

/// When a sending direction moves to a new key (Noise §11.3 `REKEY`): after this many messages,
/// bytes, or time since the last change, whichever comes first. The old key is dropped, so a
/// key stolen later from the live state cannot decrypt earlier traffic of a long session (ring
/// does not wipe dropped key schedules, so this is a best effort against memory forensics).
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

/// What the two halves share about the cipher switch (PROTOCOL.md §4.9).
#[derive(Debug, Default)]
struct Switch {
    /// Our CIPHERS, listing AES-256-GCM, is out (queued): the peer may now SWITCH.
    offered: AtomicBool,
    /// The peer's CIPHERS listed AES-256-GCM: we SWITCH (if we offered it too).
    peer_accepts: AtomicBool,
    /// Our direction, and the peer's, have moved to AES-256-GCM.
    sending_aes: AtomicBool,
    receiving_aes: AtomicBool,
}

/// Which cipher each direction of a session uses, readable while the halves are busy
/// elsewhere (a pipe's threads), e.g. for the summary line.
#[derive(Debug, Clone)]
pub struct Ciphers(Arc<Switch>);

impl Ciphers {
    /// The cipher of our messages.
    pub fn sending(&self) -> Aead {
        Self::aead(&self.0.sending_aes)
    }

    /// The cipher of the peer's messages.
    pub fn receiving(&self) -> Aead {
        Self::aead(&self.0.receiving_aes)
    }

    fn aead(aes: &AtomicBool) -> Aead {
        if aes.load(Ordering::Acquire) {
            Aead::AesGcm
        } else {
            Aead::ChaChaPoly
        }
    }

    /// For people: one name when both directions agree, else each.
    pub fn describe(&self) -> String {
        let (sending, receiving) = (self.sending(), self.receiving());
        if sending == receiving {
            sending.name().to_string()
        } else {
            format!("sending {}, receiving {}", sending.name(), receiving.name())
        }
    }
}

/// Builds the two halves of an established session, offering AES-256-GCM when this machine
/// runs it in hardware ([`crate::cipher::offer_aes_gcm`]).
pub fn split<R, W>(
    ciphers: CipherPair,
    reader: FrameReader<R>,
    writer: FrameWriter<W>,
) -> (RecvHalf<R>, SendHalf<W>) {
    split_offering(ciphers, reader, writer, crate::cipher::offer_aes_gcm())
}

/// As [`split`], saying whether to offer (and switch to) AES-256-GCM.
pub fn split_offering<R, W>(
    ciphers: CipherPair,
    reader: FrameReader<R>,
    writer: FrameWriter<W>,
    offer_aes: bool,
) -> (RecvHalf<R>, SendHalf<W>) {
    let switch = Arc::new(Switch::default());
    (
        RecvHalf {
            frames: reader,
            opener: Opener {
                cipher: ciphers.recv,
                hello_received: false,
                ciphers_received: false,
                switch: switch.clone(),
                plain: Vec::new().into_boxed_slice(),
                quit_received: false,
                rekeys: 0,
            },
        },
        SendHalf {
            cipher: ciphers.send,
            offer_aes,
            switch,
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
    frames: FrameReader<R>,
    opener: Opener,
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
            if let Some(len) = self.opener.open(frame)? {
                return self.opener.decode(len).map(Some);
            }
        }
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

impl<R: std::io::Read> RecvHalf<R> {
    /// As [`RecvHalf::recv`], blocking, for a thread that owns the stream: [`Polled::Idle`]
    /// when the stream's read timeout passed without a whole message (nothing is lost).
    pub fn recv_blocking(&mut self) -> Result<Polled<Option<Message<'_>>>> {
        loop {
            let frame = match self.frames.read_frame_blocking()? {
                Polled::Idle => return Ok(Polled::Idle),
                Polled::Ready(None) => return Ok(Polled::Ready(None)),
                Polled::Ready(Some(frame)) => frame,
            };
            if let Some(len) = self.opener.open(frame)? {
                return self.opener.decode(len).map(|m| Polled::Ready(Some(m)));
            }
        }
    }
}

/// The decrypting side of a [`RecvHalf`], apart from its frames so that a frame borrowed
/// from the reader can be opened into it.
struct Opener {
    cipher: CipherState,
    /// The peer's HELLO has been opened: its CIPHERS may follow.
    hello_received: bool,
    ciphers_received: bool,
    switch: Arc<Switch>,
    plain: Box<[u8]>,
    quit_received: bool,
    rekeys: u64,
}

impl Opener {
    /// Decrypts one frame into `plain`: the plaintext's length, or `None` for a REKEY, CIPHERS
    /// or SWITCH, which are handled here, invisibly to the caller (after REKEY and SWITCH the
    /// peer's next message uses its next key).
    fn open(&mut self, frame: &[u8]) -> Result<Option<usize>> {
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
        let buf = &mut self.plain[..frame.len()];
        buf.copy_from_slice(frame);
        let len = self
            .cipher
            .open(buf)
            .map_err(|_| Error::from(ProtocolError::Decrypt))?;
        if len == 0 {
            return Err(ProtocolError::Message(MessageError::Empty).into());
        }
        if self.plain[0] == kind::REKEY {
            if len != 1 {
                return Err(ProtocolError::Message(MessageError::UnexpectedBody("REKEY")).into());
            }
            self.cipher.rekey()?;
            self.rekeys += 1;
            return Ok(None);
        }
        if self.plain[0] == kind::CIPHERS {
            if self.ciphers_received {
                return Err(ProtocolError::Unexpected("CIPHERS", "twice").into());
            }
            if !self.hello_received {
                return Err(ProtocolError::Unexpected("CIPHERS", "before its HELLO").into());
            }
            self.ciphers_received = true;
            // Ids we do not know are ignored: a later version may list more.
            if self.plain[1..len].contains(&kind::CIPHER_AES_256_GCM) {
                self.switch.peer_accepts.store(true, Ordering::Release);
            }
            return Ok(None);
        }
        if self.plain[0] == kind::SWITCH {
            if self.plain[1..len] != [kind::CIPHER_AES_256_GCM] {
                return Err(
                    ProtocolError::Unexpected("SWITCH", "to a cipher we do not know").into(),
                );
            }
            // Our CIPHERS went out before anything the peer says in answer to it: if the
            // flag is not set, we never offered AES-256-GCM.
            if !self.switch.offered.load(Ordering::Acquire) {
                return Err(
                    ProtocolError::Unexpected("SWITCH", "to a cipher we did not offer").into(),
                );
            }
            if self.cipher.aead() != Aead::ChaChaPoly {
                return Err(ProtocolError::Unexpected("SWITCH", "twice").into());
            }
            // The sender's order (PROTOCOL.md §4.9): its HELLO, its CIPHERS listing the
            // cipher, and only then SWITCH. (Its CIPHERS can only follow its HELLO.)
            if !self.switch.peer_accepts.load(Ordering::Acquire) {
                return Err(ProtocolError::Unexpected(
                    "SWITCH",
                    "without first listing that cipher in its CIPHERS",
                )
                .into());
            }
            self.cipher.switch_to_aes_gcm()?;
            self.switch.receiving_aes.store(true, Ordering::Release);
            return Ok(None);
        }
        Ok(Some(len))
    }

    /// The message just opened, `len` bytes of plaintext.
    fn decode(&mut self, len: usize) -> Result<Message<'_>> {
        let msg = Message::decode(&self.plain[..len]).map_err(ProtocolError::Message)?;
        match msg {
            Message::Quit(_) => self.quit_received = true,
            Message::Hello { .. } => self.hello_received = true,
            _ => {}
        }
        Ok(msg)
    }
}

impl<R> RecvHalf<R> {
    /// The underlying stream.
    pub fn get_ref(&self) -> &R {
        self.frames.get_ref()
    }

    /// Moves this half onto another stream (the same connection seen another way, e.g. as a
    /// blocking socket), keeping its keys and whatever was already read.
    pub fn try_map_io<R2, E>(
        self,
        f: impl FnOnce(R) -> std::result::Result<R2, E>,
    ) -> std::result::Result<RecvHalf<R2>, E> {
        Ok(RecvHalf {
            frames: self.frames.try_map_io(f)?,
            opener: self.opener,
        })
    }

    /// How many times the peer has changed its sending key.
    pub fn rekeys(&self) -> u64 {
        self.opener.rekeys
    }

    /// Swaps the plaintext buffer for `spare` and returns the old one, which holds the last
    /// message received (type byte at 0, body from 1). Lets pipe mode hand a DATA chunk to
    /// another thread without copying it. `spare` may have any size: the buffer grows again
    /// on demand, as it does for every frame (a returned buffer can be small, when the last
    /// message was).
    pub fn exchange_buffer(&mut self, spare: Box<[u8]>) -> Box<[u8]> {
        std::mem::replace(&mut self.opener.plain, spare)
    }

    /// The cipher the peer's messages currently use.
    pub fn cipher(&self) -> Aead {
        self.opener.cipher.aead()
    }

    /// Whether the peer has said goodbye.
    pub fn quit_received(&self) -> bool {
        self.opener.quit_received
    }
}

/// The sending direction. Not cancel safe: drive it from a single task.
pub struct SendHalf<W> {
    cipher: CipherState,
    /// Whether we offer AES-256-GCM (in CIPHERS after our HELLO) and switch to it.
    offer_aes: bool,
    switch: Arc<Switch>,
    frames: FrameWriter<W>,
    plain: Vec<u8>,
    quit_sent: bool,
    policy: RekeyPolicy,
    usage: Usage,
    rekeys: u64,
}

impl<W: AsyncWrite + Unpin> SendHalf<W> {
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

    /// Sends everything queued.
    pub async fn flush(&mut self) -> Result<()> {
        self.frames.flush_frames().await
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
}

impl<W> SendHalf<W> {
    /// The underlying stream.
    pub fn get_ref(&self) -> &W {
        self.frames.get_ref()
    }

    /// Moves this half onto another stream (the same connection seen another way, e.g. as a
    /// blocking socket), keeping its keys and anything queued.
    pub fn try_map_io<W2, E>(
        self,
        f: impl FnOnce(W) -> std::result::Result<W2, E>,
    ) -> std::result::Result<SendHalf<W2>, E> {
        Ok(SendHalf {
            cipher: self.cipher,
            offer_aes: self.offer_aes,
            switch: self.switch,
            frames: self.frames.try_map_io(f)?,
            plain: self.plain,
            quit_sent: self.quit_sent,
            policy: self.policy,
            usage: self.usage,
            rekeys: self.rekeys,
        })
    }

    /// Changes when this direction rekeys (the default suits real sessions).
    pub fn set_rekey_policy(&mut self, policy: RekeyPolicy) {
        self.policy = policy;
    }

    /// How many times we have changed our sending key.
    pub fn rekeys(&self) -> u64 {
        self.rekeys
    }

    /// The cipher our messages currently use.
    pub fn cipher(&self) -> Aead {
        self.cipher.aead()
    }

    /// Which cipher each direction uses, now and later (a handle that outlives this half).
    pub fn ciphers(&self) -> Ciphers {
        Ciphers(self.switch.clone())
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
            self.cipher.rekey()?;
            self.usage = Usage::new();
            self.rekeys += 1;
        }
        // Only after our own HELLO and CIPHERS: our first message stays HELLO.
        if self.ciphers_sent()
            && self.cipher.aead() == Aead::ChaChaPoly
            && self.switch.peer_accepts.load(Ordering::Acquire)
        {
            self.seal(&[kind::SWITCH, kind::CIPHER_AES_256_GCM])?;
            self.cipher.switch_to_aes_gcm()?;
            self.switch.sending_aes.store(true, Ordering::Release);
        }
        self.seal(plaintext)?;
        self.usage.messages += 1;
        self.usage.bytes += plaintext.len() as u64;
        if plaintext[0] == kind::HELLO && self.offer_aes && !self.ciphers_sent() {
            self.seal(&[kind::CIPHERS, kind::CIPHER_AES_256_GCM])?;
            self.switch.offered.store(true, Ordering::Release);
        }
        if plaintext[0] == kind::QUIT {
            self.quit_sent = true;
        }
        Ok(())
    }

    /// Whether our CIPHERS is out (only this half sets the flag; the other half reads it).
    fn ciphers_sent(&self) -> bool {
        self.switch.offered.load(Ordering::Relaxed)
    }

    /// Bytes queued and not yet sent.
    pub fn queued(&self) -> usize {
        self.frames.queued()
    }

    fn seal(&mut self, plain: &[u8]) -> Result<()> {
        let cipher = &mut self.cipher;
        self.frames.queue_frame_with(plain.len() + TAG_LEN, |out| {
            out[..plain.len()].copy_from_slice(plain);
            cipher.seal(out, plain.len())
        })
    }

    /// Whether we have said goodbye.
    pub fn quit_sent(&self) -> bool {
        self.quit_sent
    }
}

impl<W: std::io::Write> SendHalf<W> {
    /// As [`SendHalf::send`], blocking, for a thread that owns the stream.
    pub fn send_blocking(&mut self, msg: &Message<'_>) -> Result<()> {
        self.queue(msg)?;
        self.flush_blocking()
    }

    /// As [`SendHalf::send_encoded`], blocking.
    pub fn send_encoded_blocking(&mut self, plaintext: &[u8]) -> Result<()> {
        self.queue_encoded(plaintext)?;
        self.flush_blocking()
    }

    /// As [`SendHalf::flush`], blocking.
    pub fn flush_blocking(&mut self) -> Result<()> {
        self.frames.flush_frames_blocking()
    }
}

impl SendHalf<std::net::TcpStream> {
    /// As [`SendHalf::quit`], blocking: QUIT with `reason`, then FIN.
    pub fn quit_blocking(&mut self, reason: &str) -> Result<()> {
        self.send_blocking(&Message::Quit(reason.into()))?;
        self.get_ref()
            .shutdown(std::net::Shutdown::Write)
            .map_err(|e| Error::io("closing the connection", e))
    }
}

#[cfg(test)]
mod tests;
