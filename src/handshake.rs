//! The Noise XX handshake that opens every schat/1 connection.
//!
//! ```text
//! XX:
//!   -> e
//!   <- e, ee, s, es
//!   -> s, se
//! ```
//! The dialer is the initiator. The prologue binds the protocol version, so a peer speaking
//! another version fails the handshake instead of being downgraded. All payloads are empty:
//! message 1 is sent in the clear, and nothing else needs saying before the keys are known.

use crate::error::{Error, ProtocolError, Result};
use crate::framed::{FrameReader, FrameWriter};
use crate::keys::{Identity, PublicKey};
use crate::transport::{self, RecvHalf, SendHalf};
use snow::{Builder, HandshakeState};
use tokio::io::{AsyncRead, AsyncWrite};

/// The Noise protocol name.
pub const PATTERN: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Bound into the handshake hash: both sides must agree on it.
pub const PROLOGUE: &[u8] = b"schat/1";
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
    /// Incoming messages.
    pub recv: RecvHalf<R>,
    /// Outgoing messages.
    pub send: SendHalf<W>,
}

/// The one place the Noise configuration is decided: pattern, crypto resolver (snow's
/// `ring-accelerated` build: ring's ChaCha20-Poly1305 with the default resolver's X25519 and
/// BLAKE2s), static key and prologue. The cacophony test vectors replay through this too.
pub fn noise_builder<'a>(secret: &'a [u8], prologue: &'a [u8]) -> Result<Builder<'a>> {
    let params = PATTERN
        .parse()
        .map_err(|e| Error::Internal(format!("noise parameters: {e}")))?;
    Builder::new(params)
        .local_private_key(secret)
        .and_then(|b| b.prologue(prologue))
        .map_err(|e| Error::Internal(format!("noise setup: {e}")))
}

fn build(identity: &Identity, initiator: bool) -> Result<HandshakeState> {
    let builder = noise_builder(identity.secret().expose(), PROLOGUE)?;
    if initiator {
        builder.build_initiator()
    } else {
        builder.build_responder()
    }
    .map_err(|e| Error::Internal(format!("noise setup: {e}")))
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
    let mut noise = build(identity, true)?;
    let mut buf = [0u8; HANDSHAKE_BUF];

    // -> e
    let len = noise.write_message(&[], &mut buf).map_err(local)?;
    writer.write_frame(&buf[..len]).await?;

    // <- e, ee, s, es
    read_step(&mut noise, &mut reader, &mut buf, MESSAGE_LENS[1]).await?;
    let listener = remote_static(&noise)?;
    acceptable_static(&listener, identity)?;
    check(&listener)?;

    // -> s, se
    let len = noise.write_message(&[], &mut buf).map_err(local)?;
    writer.write_frame(&buf[..len]).await?;

    finish(identity, noise, reader, writer)
}

/// Runs the handshake as the listener (responder).
pub async fn respond<R, W>(
    identity: &Identity,
    mut reader: FrameReader<R>,
    mut writer: FrameWriter<W>,
) -> Result<Established<R, W>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let mut noise = build(identity, false)?;
    let mut buf = [0u8; HANDSHAKE_BUF];

    // <- e
    read_step(&mut noise, &mut reader, &mut buf, MESSAGE_LENS[0]).await?;

    // -> e, ee, s, es
    let len = noise.write_message(&[], &mut buf).map_err(local)?;
    writer.write_frame(&buf[..len]).await?;

    // <- s, se
    read_step(&mut noise, &mut reader, &mut buf, MESSAGE_LENS[2]).await?;

    finish(identity, noise, reader, writer)
}

/// Room for any handshake message of schat/1 (the largest, message 2, is 96 bytes).
const HANDSHAKE_BUF: usize = 256;

/// The sizes of the three handshake messages: with empty payloads they never vary.
pub const MESSAGE_LENS: [usize; 3] = [32, 96, 64];

/// What the first two bytes of another protocol look like, for an error that says so.
fn guess_protocol(first: [u8; 2]) -> String {
    match &first {
        b"GE" | b"PO" | b"HE" | b"PU" | b"DE" | b"OP" | b"PA" | b"CO" | b"TR" | b"HT" => {
            "it looks like HTTP".into()
        }
        b"SS" => "it looks like SSH".into(),
        [0x16, 0x03] | [0x15, 0x03] => "it looks like TLS".into(),
        _ => format!(
            "its first bytes {:02x} {:02x} are not a schat/1 handshake message",
            first[0], first[1]
        ),
    }
}

/// Reads one handshake message of `expected` bytes; its payload must be empty. Anything else
/// is refused as soon as its two-byte length prefix shows it.
async fn read_step<R: AsyncRead + Unpin>(
    noise: &mut HandshakeState,
    reader: &mut FrameReader<R>,
    buf: &mut [u8],
    expected: usize,
) -> Result<()> {
    match reader.peek_header().await {
        Ok(Some(header)) if usize::from(u16::from_be_bytes(header)) != expected => {
            let len = usize::from(u16::from_be_bytes(header));
            let guess = if expected == MESSAGE_LENS[1] && len == MESSAGE_LENS[0] {
                // Message 1's size where message 2 belongs: our own bytes came back.
                "it echoed our first message back: an echo service, not a listener".into()
            } else {
                guess_protocol(header)
            };
            return Err(ProtocolError::NotSchat(guess).into());
        }
        // A close (clean or mid-prefix) is reported by `read_frame` below, as it always was.
        Ok(_) | Err(Error::Protocol(ProtocolError::TruncatedFrame)) => {}
        Err(e) => return Err(e),
    }
    let frame = match reader.read_frame().await {
        Ok(Some(frame)) => frame,
        Ok(None) | Err(Error::Protocol(ProtocolError::TruncatedFrame)) => {
            return Err(ProtocolError::Handshake(
                "the peer closed the connection during the handshake (not a schat peer, or it refused us)",
            )
            .into());
        }
        Err(e) => return Err(e),
    };
    if frame.len() > buf.len() {
        return Err(
            ProtocolError::Handshake("handshake message too long (not a schat/1 peer?)").into(),
        );
    }
    let payload_len = noise.read_message(frame, buf).map_err(|e| match e {
        snow::Error::Decrypt => Error::from(ProtocolError::Handshake(
            "the peer's handshake message did not authenticate \
             (it speaks another protocol or version, or the connection was tampered with)",
        )),
        snow::Error::Input | snow::Error::Dh => Error::from(ProtocolError::Handshake(
            "malformed handshake message (not a schat/1 peer?)",
        )),
        other => local(other),
    })?;
    if payload_len != 0 {
        return Err(
            ProtocolError::Handshake("unexpected handshake payload (not a schat/1 peer?)").into(),
        );
    }
    Ok(())
}

fn finish<R, W>(
    identity: &Identity,
    noise: HandshakeState,
    reader: FrameReader<R>,
    writer: FrameWriter<W>,
) -> Result<Established<R, W>> {
    let peer = remote_static(&noise)?;
    acceptable_static(&peer, identity)?;
    let handshake_hash: [u8; HASH_LEN] = noise
        .get_handshake_hash()
        .try_into()
        .map_err(|_| Error::Internal("unexpected handshake hash length".into()))?;
    let state = noise.into_transport_mode().map_err(local)?;
    let (recv, send) = transport::split(state, reader, writer);
    Ok(Established {
        local: *identity.public(),
        peer,
        handshake_hash,
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

/// The peer's static key, once a handshake message has carried it.
fn remote_static(noise: &HandshakeState) -> Result<PublicKey> {
    noise
        .get_remote_static()
        .and_then(PublicKey::from_slice)
        .ok_or_else(|| Error::Internal("handshake has no peer key yet".into()))
}

/// A snow error that can only mean we misused it.
fn local(e: snow::Error) -> Error {
    Error::Internal(format!("noise: {e}"))
}
