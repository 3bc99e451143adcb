//! The schat/2 handshake as pure state, message by message — no I/O, each state consumed by
//! value (the async driver in `super` moves the bytes; tests and tools can drive it too).
//!
//! ```text
//! Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s, prologue "schat/2":
//!   -> e                      payload: ML-KEM-768 encapsulation key (1,184 bytes)
//!   <- e, ee, s, es           payload: ML-KEM-768 ciphertext to it (1,088 bytes)
//!      (both: psk = HMAC-SHA256(KEM secret, "schat/2 psk" ‖ h), set before message 3)
//!   -> s, se, psk             payload: empty
//! ```
//!
//! The transport keys then depend on X25519 *and* ML-KEM: recorded traffic stays secret as
//! long as either holds. Who the peers are still rests on X25519 static keys alone.

use super::{HASH_LEN, PATTERN, PROLOGUE};
use crate::cipher::CipherPair;
use crate::error::{Error, ProtocolError, Result};
use crate::kem::{self, CT_LEN, EK_LEN};
use crate::keys::{Identity, PublicKey};
use snow::{Builder, HandshakeState};
use zeroize::Zeroizing;

/// Bytes of the three messages: 32 + 1,184 + 16 (psk mode tags message 1's payload); 32 + 48
/// + 1,088 + 16; 64.
pub const MESSAGE_LENS: [usize; 3] = [32 + EK_LEN + 16, 32 + 48 + CT_LEN + 16, 64];

/// schat/1's sizes (classic XX, empty payloads): a peer sending these needs upgrading.
pub const SCHAT1_LENS: [usize; 3] = [32, 96, 64];

/// Room for any handshake message.
const BUF: usize = 2048;

/// Randomness for one side, fixed only for test vectors (`None`, the default: from the OS).
/// Fixing any of it outside a test breaks the handshake's security.
#[doc(hidden)]
#[derive(Default)]
pub struct Randomness {
    /// Our ephemeral X25519 private key.
    pub ephemeral: Option<[u8; 32]>,
    /// The ML-KEM key-generation seed (initiator).
    pub kem_seed: Option<[u8; kem::SEED_LEN]>,
    /// The ML-KEM encapsulation randomness (responder).
    pub encaps: Option<[u8; kem::ENCAPS_RAND_LEN]>,
}

fn builder<'a>(
    secret: &'a [u8],
    ephemeral: Option<&'a [u8; 32]>,
    prologue: &'a [u8],
) -> Result<Builder<'a>> {
    let builder = super::noise_builder_for(PATTERN, secret, prologue)?;
    Ok(match ephemeral {
        Some(e) => builder.fixed_ephemeral_key_for_testing_only(e),
        None => builder,
    })
}

/// The dialer after message 1: waiting for message 2.
pub struct Initiator {
    noise: HandshakeState,
    kem: kem::Decapsulator,
}

/// The dialer after message 2: the listener's key is known (and proven), message 3 not sent.
pub struct InitiatorReady {
    noise: HandshakeState,
}

/// The listener after message 1: the KEM ciphertext and secret are ready for message 2.
pub struct Responder {
    noise: HandshakeState,
    ciphertext: Box<[u8; CT_LEN]>,
    // Boxed, so that moving the state between steps does not leave copies behind.
    shared: Box<kem::SharedSecret>,
}

/// The listener after message 2: waiting for message 3.
pub struct ResponderSent {
    noise: HandshakeState,
}

/// A finished handshake: the transport keys, the peer's static key, the handshake hash, and
/// the token that names the session if it is resumed (PROTOCOL.md §4.10).
pub struct Done {
    pub ciphers: CipherPair,
    pub peer: PublicKey,
    pub handshake_hash: [u8; HASH_LEN],
    pub resume_token: Zeroizing<[u8; 32]>,
}

impl Initiator {
    /// Starts: returns the state and message 1.
    pub fn start(identity: &Identity, random: &Randomness) -> Result<(Initiator, Vec<u8>)> {
        Self::start_with(identity, random, PROLOGUE)
    }

    /// Starts under another prologue: a room's pairwise sessions bind the two members' keys
    /// into theirs (PROTOCOL.md §4.14).
    pub fn start_with(
        identity: &Identity,
        random: &Randomness,
        prologue: &[u8],
    ) -> Result<(Initiator, Vec<u8>)> {
        let mut noise = builder(
            identity.secret().expose(),
            random.ephemeral.as_ref(),
            prologue,
        )?
        .build_initiator()
        .map_err(local)?;
        let seed = Zeroizing::new(random.kem_seed.unwrap_or_else(|| {
            let mut s = [0u8; kem::SEED_LEN];
            rand::fill(&mut s[..]);
            s
        }));
        let (kem, ek) = kem::generate(&seed);
        let mut buf = vec![0u8; BUF];
        let len = noise.write_message(&ek[..], &mut buf).map_err(local)?;
        buf.truncate(len);
        Ok((Initiator { noise, kem }, buf))
    }

    /// Message 2: decapsulates, sets the PSK. The listener's key is then known, and nothing of
    /// ours has been revealed yet.
    pub fn read_message_2(mut self, msg2: &[u8]) -> Result<(InitiatorReady, PublicKey)> {
        let mut payload = vec![0u8; BUF];
        let n = read(&mut self.noise, msg2, &mut payload)?;
        let ct: &[u8; CT_LEN] = payload[..n].try_into().map_err(|_| {
            ProtocolError::Handshake("message 2 does not carry an ML-KEM-768 ciphertext")
        })?;
        let shared = self.kem.decapsulate(ct);
        let psk = kem::psk(&shared, self.noise.get_handshake_hash());
        self.noise.set_psk(3, &psk[..]).map_err(local)?;
        let listener = remote_static(&self.noise)?;
        Ok((InitiatorReady { noise: self.noise }, listener))
    }
}

impl InitiatorReady {
    /// Message 3 (our static key), and the finished handshake.
    pub fn write_message_3(mut self) -> Result<(Done, Vec<u8>)> {
        let mut buf = vec![0u8; BUF];
        let len = self.noise.write_message(&[], &mut buf).map_err(local)?;
        buf.truncate(len);
        Ok((done(self.noise)?, buf))
    }
}

impl Responder {
    /// Message 1: checks the KEM key and encapsulates to it.
    pub fn read_message_1(
        identity: &Identity,
        random: &Randomness,
        msg1: &[u8],
    ) -> Result<Responder> {
        Self::read_message_1_with(identity, random, msg1, PROLOGUE)
    }

    /// Message 1 under another prologue (see [`Initiator::start_with`]).
    pub fn read_message_1_with(
        identity: &Identity,
        random: &Randomness,
        msg1: &[u8],
        prologue: &[u8],
    ) -> Result<Responder> {
        let mut noise = builder(
            identity.secret().expose(),
            random.ephemeral.as_ref(),
            prologue,
        )?
        .build_responder()
        .map_err(local)?;
        let mut payload = vec![0u8; BUF];
        let n = read(&mut noise, msg1, &mut payload)?;
        let ek: &[u8; EK_LEN] = payload[..n]
            .try_into()
            .map_err(|_| ProtocolError::Handshake("message 1 does not carry an ML-KEM-768 key"))?;
        let randomness = Zeroizing::new(random.encaps.unwrap_or_else(|| {
            let mut m = [0u8; kem::ENCAPS_RAND_LEN];
            rand::fill(&mut m[..]);
            m
        }));
        let (ciphertext, shared) = kem::encapsulate(ek, randomness).ok_or(ProtocolError::Handshake(
            "message 1 carries an invalid ML-KEM-768 key (tampered with, or not a schat/2 peer)",
        ))?;
        Ok(Responder {
            noise,
            ciphertext,
            shared: Box::new(shared),
        })
    }

    /// Message 2, and the PSK set for message 3.
    pub fn write_message_2(mut self) -> Result<(ResponderSent, Vec<u8>)> {
        let mut buf = vec![0u8; BUF];
        let len = self
            .noise
            .write_message(&self.ciphertext[..], &mut buf)
            .map_err(local)?;
        buf.truncate(len);
        let psk = kem::psk(&self.shared, self.noise.get_handshake_hash());
        self.noise.set_psk(3, &psk[..]).map_err(local)?;
        Ok((ResponderSent { noise: self.noise }, buf))
    }
}

impl ResponderSent {
    /// Message 3: the dialer's static key, and the proof that both sides hold the same KEM
    /// secret (a tampered key or ciphertext fails here).
    pub fn read_message_3(mut self, msg3: &[u8]) -> Result<Done> {
        let mut payload = vec![0u8; BUF];
        let n = read(&mut self.noise, msg3, &mut payload).map_err(|e| match e {
            Error::Protocol(ProtocolError::Handshake(_)) => ProtocolError::Handshake(
                "message 3 did not authenticate: the two sides disagree on the handshake (it \
                 was tampered with, in its post-quantum part or elsewhere, or the peer is not \
                 schat/2)",
            )
            .into(),
            other => other,
        })?;
        if n != 0 {
            return Err(ProtocolError::Handshake("unexpected payload in message 3").into());
        }
        done(self.noise)
    }
}

fn read(noise: &mut HandshakeState, msg: &[u8], payload: &mut [u8]) -> Result<usize> {
    if msg.len() > BUF {
        return Err(
            ProtocolError::Handshake("handshake message too long (not a schat/2 peer?)").into(),
        );
    }
    noise.read_message(msg, payload).map_err(|e| match e {
        snow::Error::Decrypt => Error::from(ProtocolError::Handshake(
            "the peer's handshake message did not authenticate \
             (it speaks another protocol or version, or the connection was tampered with)",
        )),
        snow::Error::Input | snow::Error::Dh => Error::from(ProtocolError::Handshake(
            "malformed handshake message (not a schat/2 peer?)",
        )),
        other => local(other),
    })
}

fn done(mut noise: HandshakeState) -> Result<Done> {
    let peer = remote_static(&noise)?;
    let handshake_hash: [u8; HASH_LEN] = noise
        .get_handshake_hash()
        .try_into()
        .map_err(|_| Error::Internal("unexpected handshake hash length".into()))?;
    if !noise.is_handshake_finished() {
        return Err(Error::Internal("handshake not finished".into()));
    }
    // Noise `Split()`: the initiator sends with the first key, the responder with the second.
    let (k1, k2) = noise.dangerously_get_raw_split();
    let (k1, k2) = (Zeroizing::new(k1), Zeroizing::new(k2));
    let ciphers = CipherPair::from_split(noise.is_initiator(), &k1, &k2)?;
    let resume_token = crate::resume::token(&k1, &k2, &handshake_hash);
    Ok(Done {
        ciphers,
        peer,
        handshake_hash,
        resume_token,
    })
}

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
