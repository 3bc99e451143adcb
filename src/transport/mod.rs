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

mod recv;
mod send;
use recv::Opener;
pub use recv::RecvHalf;
pub use send::SendHalf;

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

#[cfg(test)]
mod tests;
