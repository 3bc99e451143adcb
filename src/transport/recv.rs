//! The receiving half: frames in, opened with the peer's direction's CipherState; REKEY,
//! CIPHERS and SWITCH applied here, invisibly to the session, and every rule a receiver must
//! enforce (PROTOCOL.md §4, rule 3; §4.9) checked before a message is handed on.

use super::*;

/// The receiving direction.
pub struct RecvHalf<R> {
    pub(super) frames: FrameReader<R>,
    pub(super) opener: Opener,
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
pub(super) struct Opener {
    pub(super) cipher: CipherState,
    /// The peer's HELLO has been opened: its CIPHERS may follow.
    pub(super) hello_received: bool,
    pub(super) ciphers_received: bool,
    pub(super) switch: Arc<Switch>,
    pub(super) plain: Box<[u8]>,
    pub(super) quit_received: bool,
    pub(super) rekeys: u64,
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
