//! The handshake that opens every schat/2 connection: Noise XX with a post-quantum PSK
//! (`core` has the messages; this module moves them over the wire).
//!
//! ```text
//! XXpsk3:
//!   -> e                  + ML-KEM-768 encapsulation key
//!   <- e, ee, s, es       + ML-KEM-768 ciphertext
//!   -> s, se, psk         (psk from the ML-KEM secret and the handshake hash)
//! ```
//! The dialer is the initiator. The prologue binds the protocol version, so a peer speaking
//! another version fails the handshake instead of being downgraded; a schat/1 peer is
//! recognised by its message sizes and told so, never served in the old protocol.

pub mod core;

use crate::error::{Error, ProtocolError, Result};
use crate::framed::{FrameReader, FrameWriter};
use crate::keys::{Identity, PublicKey};
use crate::transport::{self, RecvHalf, SendHalf};
use snow::Builder;
use tokio::io::{AsyncRead, AsyncWrite};

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s";
/// The classical core of [`PATTERN`], for its published test vectors (cacophony).
pub const CLASSICAL_PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Bound into the handshake hash: both sides must agree on it.
pub const PROLOGUE: &[u8] = b"schat/2";
/// Bytes of the handshake hash (BLAKE2s).
pub const HASH_LEN: usize = 32;

/// A finished handshake: who the peer is, plus the two halves of the encrypted session.
pub struct Established<R, W> {
    /// Our own static public key.
    pub local: PublicKey,
    /// The peer's static public key, proven by the handshake.
    pub peer: PublicKey,
    /// The handshake hash `h`: a value unique to this session (channel binding, Noise §11.2).
    pub handshake_hash: [u8; HASH_LEN],
    /// Names this session when a later connection resumes it (PROTOCOL.md §4.10). Secret.
    pub resume_token: zeroize::Zeroizing<[u8; 32]>,
    /// Incoming messages.
    pub recv: RecvHalf<R>,
    /// Outgoing messages.
    pub send: SendHalf<W>,
}

/// The one place the Noise configuration is decided: pattern, crypto resolver (snow's
/// `ring-accelerated` build: ring's ChaCha20-Poly1305 with the default resolver's X25519 and
/// BLAKE2s), static key and prologue. The cacophony test vectors replay through this too.
pub fn noise_builder_for<'a>(
    pattern: &str,
    secret: &'a [u8],
    prologue: &'a [u8],
) -> Result<Builder<'a>> {
    let params = pattern
        .parse()
        .map_err(|e| Error::Internal(format!("noise parameters: {e}")))?;
    Builder::new(params)
        .local_private_key(secret)
        .and_then(|b| b.prologue(prologue))
        .map_err(|e| Error::Internal(format!("noise setup: {e}")))
}

/// The classical `Noise_XX_25519_ChaChaPoly_BLAKE2s` with schat's resolver: what the
/// cacophony vectors check.
pub fn noise_builder<'a>(secret: &'a [u8], prologue: &'a [u8]) -> Result<Builder<'a>> {
    noise_builder_for(CLASSICAL_PATTERN, secret, prologue)
}

/// Runs the handshake as the dialer (initiator).
///
/// `check` decides about the listener's static key as soon as message 2 has proven it, and
/// before message 3 reveals ours: a pin, strict trust or a changed key that refuses the
/// listener ends the handshake with our identity still unsent (an impostor learns nothing
/// about who dialled).
pub async fn initiate<R, W>(
    identity: &Identity,
    mut reader: FrameReader<R>,
    mut writer: FrameWriter<W>,
    check: impl FnOnce(&PublicKey) -> Result<()>,
) -> Result<Established<R, W>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // -> e (+ KEM key)
    let (state, msg1) = core::Initiator::start(identity, &core::Randomness::default())?;
    writer.write_frame(&msg1).await?;

    // <- e, ee, s, es (+ ciphertext)
    // A schat/1 listener never answers our 1,232-byte message 1: it expects 32 and hangs up.
    let msg2 = read_step(&mut reader, MESSAGE_LENS[1])
        .await
        .map_err(|e| match e {
            Error::Protocol(ProtocolError::Handshake(_)) => ProtocolError::Handshake(
                "the listener hung up after our first handshake message: it may speak schat/1 \
             (then it needs upgrading: there is no fallback), or not be a schat peer",
            )
            .into(),
            other => other,
        })?;
    let (state, listener) = state.read_message_2(&msg2)?;
    acceptable_static(&listener, identity)?;
    check(&listener)?;

    // -> s, se, psk
    let (done, msg3) = state.write_message_3()?;
    writer.write_frame(&msg3).await?;
    finish(identity, done, reader, writer)
}

/// What a listener learns as a dialer's handshake moves on, before the work each step costs:
/// its admission control counts progress (a stalled handshake gives way) and paces the dear
/// step per address (see `net::gate`).
pub trait Watch {
    /// Handshake message `n` (1 or 3) arrived whole, or (`n` = 0) the dialer's first bytes
    /// did. `Ok(wait)`: work on it after `wait`; `Err`: stop here, nothing computed.
    fn arrived(&self, n: u8) -> Result<std::time::Duration>;
}

/// A listener that watches nothing (tests, and anything without admission control).
pub struct Unwatched;

impl Watch for Unwatched {
    fn arrived(&self, _: u8) -> Result<std::time::Duration> {
        Ok(std::time::Duration::ZERO)
    }
}

/// Runs the handshake as the listener (responder).
pub async fn respond<R, W>(
    identity: &Identity,
    reader: FrameReader<R>,
    writer: FrameWriter<W>,
) -> Result<Established<R, W>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    respond_watched(identity, reader, writer, &Unwatched).await
}

/// As [`respond`], telling `watch` of each message before working on it.
pub async fn respond_watched<R, W>(
    identity: &Identity,
    mut reader: FrameReader<R>,
    mut writer: FrameWriter<W>,
    watch: &impl Watch,
) -> Result<Established<R, W>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    // <- e (+ KEM key)
    // (Its first bytes are worth telling apart from none: a dialer sends message 1 whole, so
    // one that starts and stops is stalling on purpose.)
    if reader.first_bytes().await? {
        watch.arrived(0)?;
    }
    let msg1 = read_step(&mut reader, MESSAGE_LENS[0]).await?;
    // The dear step (an ML-KEM encapsulation, two X25519) waits for the dialer's address's
    // turn: replaying a cached message 1 cannot make us burn a core.
    let wait = watch.arrived(1)?;
    if !wait.is_zero() {
        tokio::time::sleep(wait).await;
    }
    let state = core::Responder::read_message_1(identity, &core::Randomness::default(), &msg1)?;

    // -> e, ee, s, es (+ ciphertext)
    let (state, msg2) = state.write_message_2()?;
    writer.write_frame(&msg2).await?;

    // <- s, se, psk
    // A dialer that hangs up here has seen our key (message 2) and did not go on: it refused
    // it (a pin, a changed key, --trust strict), or its user stopped it.
    let msg3 = read_step(&mut reader, MESSAGE_LENS[2])
        .await
        .map_err(|e| match e {
            Error::Protocol(ProtocolError::Handshake(_)) => ProtocolError::Handshake(
                "the dialer hung up after seeing this listener's key: it refused the key (a \
                 pin, a changed key, --trust strict), or its user stopped it",
            )
            .into(),
            other => other,
        })?;
    watch.arrived(3)?;
    let done = state.read_message_3(&msg3)?;
    finish(identity, done, reader, writer)
}

pub use core::{MESSAGE_LENS, SCHAT1_LENS};

/// What the first two bytes of another protocol look like, for an error that says so.
fn guess_protocol(first: [u8; 2]) -> String {
    match &first {
        b"GE" | b"PO" | b"HE" | b"PU" | b"DE" | b"OP" | b"PA" | b"CO" | b"TR" | b"HT" => {
            "it looks like HTTP".into()
        }
        b"SS" => "it looks like SSH".into(),
        // An HTTP server answering garbage with an error page and no status line.
        [b'<', b'!' | b'h' | b'H' | b'?'] => "it looks like HTML: a web server, not schat".into(),
        [0x16, 0x03] | [0x15, 0x03] => "it looks like TLS".into(),
        _ => format!(
            "its first bytes {:02x} {:02x} are not a schat/2 handshake message",
            first[0], first[1]
        ),
    }
}

/// Reads one handshake message of `expected` bytes. Anything else is refused as soon as its
/// two-byte length prefix shows it: schat/1's sizes say so plainly.
async fn read_step<R: AsyncRead + Unpin>(
    reader: &mut FrameReader<R>,
    expected: usize,
) -> Result<Vec<u8>> {
    match reader.peek_header().await {
        Ok(Some(header)) if usize::from(u16::from_be_bytes(header)) != expected => {
            let len = usize::from(u16::from_be_bytes(header));
            let step = MESSAGE_LENS
                .iter()
                .position(|l| *l == expected)
                .unwrap_or(0);
            let guess = if step == 1 && len == MESSAGE_LENS[0] {
                // Message 1's size where message 2 belongs: our own bytes came back.
                "it echoed our first message back: an echo service, not a listener".into()
            } else if len == SCHAT1_LENS[step] && step < 2 {
                "the peer speaks schat/1; it needs upgrading (schat/2 is post-quantum hybrid, \
                 and there is no fallback)"
                    .into()
            } else {
                guess_protocol(header)
            };
            return Err(ProtocolError::NotSchat(guess).into());
        }
        // A close (clean or mid-prefix) is reported by `read_frame` below, as it always was.
        Ok(_) | Err(Error::Protocol(ProtocolError::TruncatedFrame)) => {}
        Err(e) => return Err(e),
    }
    match reader.read_frame().await {
        Ok(Some(frame)) => Ok(frame.to_vec()),
        Ok(None) | Err(Error::Protocol(ProtocolError::TruncatedFrame)) => Err(ProtocolError::Handshake(
            "the peer closed the connection during the handshake (not a schat peer, or it refused us)",
        )
        .into()),
        Err(e) => Err(e),
    }
}

fn finish<R, W>(
    identity: &Identity,
    done: core::Done,
    reader: FrameReader<R>,
    writer: FrameWriter<W>,
) -> Result<Established<R, W>> {
    acceptable_static(&done.peer, identity)?;
    let (recv, send) = transport::split(done.ciphers, reader, writer);
    Ok(Established {
        local: *identity.public(),
        peer: done.peer,
        handshake_hash: done.handshake_hash,
        resume_token: done.resume_token,
        recv,
        send,
    })
}

/// Refuses static keys no honest peer has. A non-canonical encoding: X25519 ignores bit 255
/// and reduces mod p, so the handshake succeeds, but the peer would show a second fingerprint
/// for one secret. A low-order point: no secret stands behind it, anyone could claim it.
fn acceptable_static(peer: &PublicKey, identity: &Identity) -> Result<()> {
    if !peer.is_canonical() {
        return Err(ProtocolError::NonCanonicalKey.into());
    }
    if peer.is_low_order(identity.secret()) {
        return Err(ProtocolError::WeakKey.into());
    }
    Ok(())
}
