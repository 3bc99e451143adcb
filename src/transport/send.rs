//! The sending half: messages sealed with our direction's CipherState and framed, with REKEY
//! when a key has done its share, and CIPHERS and SWITCH at their moment (PROTOCOL.md §4.1,
//! §4.9).

use super::*;

/// The sending direction. Not cancel safe: drive it from a single task.
pub struct SendHalf<W> {
    pub(super) cipher: CipherState,
    /// Whether we offer AES-256-GCM (in CIPHERS after our HELLO) and switch to it.
    pub(super) offer_aes: bool,
    pub(super) switch: Arc<Switch>,
    pub(super) frames: FrameWriter<W>,
    pub(super) plain: Vec<u8>,
    pub(super) quit_sent: bool,
    pub(super) policy: RekeyPolicy,
    pub(super) usage: Usage,
    pub(super) rekeys: u64,
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
