//! Noise transport CipherStates (Noise §5.1), one per direction, owned by the half that uses
//! it. Pure: no I/O.
//!
//! Why not snow's `TransportState`: it keeps both directions in one value that needs `&mut`
//! for either, so the send and receive halves had to share it behind a lock, taken for every
//! message by both pipe threads; and its cipher is fixed by the protocol name, while schat
//! moves a direction to AES-256-GCM when both ends have AES hardware (PROTOCOL.md §4.9). The
//! keys come from snow's `Split()`; the AEADs are ring's. `tests` check every message and
//! rekey against snow's own transport.

use crate::error::{Error, Result};
use ring::aead::{AES_256_GCM, Aad, CHACHA20_POLY1305, LessSafeKey, Nonce, Tag, UnboundKey};
use zeroize::Zeroizing;

/// A transport key's length (Noise: 32 bytes).
pub const KEY_LEN: usize = 32;

/// Bytes an AEAD adds to every message (the tag).
pub const TAG_LEN: usize = 16;

/// The nonce Noise reserves for `REKEY()`; no message is ever sent with it.
const MAX_NONCE: u64 = u64::MAX;

/// The AEAD a direction uses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Aead {
    /// The handshake's cipher, and every direction's first one: Noise `ChaChaPoly`.
    ChaChaPoly,
    /// Noise `AESGCM` with a 256-bit key, after a switch (PROTOCOL.md §4.9).
    AesGcm,
}

impl Aead {
    /// Its usual name, for people.
    pub fn name(self) -> &'static str {
        match self {
            Aead::ChaChaPoly => "ChaCha20-Poly1305",
            Aead::AesGcm => "AES-256-GCM",
        }
    }

    /// The nonce for counter `n`: 32 zero bits, then `n` little-endian for ChaChaPoly and
    /// big-endian for AESGCM (Noise §12).
    fn nonce(self, n: u64) -> Nonce {
        let mut nonce = [0u8; 12];
        match self {
            Aead::ChaChaPoly => nonce[4..].copy_from_slice(&n.to_le_bytes()),
            Aead::AesGcm => nonce[4..].copy_from_slice(&n.to_be_bytes()),
        }
        Nonce::assume_unique_for_key(nonce)
    }

    fn key(self, key: &[u8; KEY_LEN]) -> Result<LessSafeKey> {
        let algorithm = match self {
            Aead::ChaChaPoly => &CHACHA20_POLY1305,
            Aead::AesGcm => &AES_256_GCM,
        };
        UnboundKey::new(algorithm, key)
            .map(LessSafeKey::new)
            .map_err(|_| Error::Internal("the AEAD refused a 32-byte key".into()))
    }
}

/// One direction's key and nonce counter.
pub struct CipherState {
    aead: Aead,
    key: LessSafeKey,
    /// The next message's nonce.
    n: u64,
}

impl std::fmt::Debug for CipherState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // Never the key.
        f.debug_struct("CipherState")
            .field("aead", &self.aead)
            .field("n", &self.n)
            .finish_non_exhaustive()
    }
}

impl CipherState {
    /// A direction starting at nonce 0 with `key` (one of `Split()`'s outputs).
    pub fn new(aead: Aead, key: &[u8; KEY_LEN]) -> Result<Self> {
        Ok(CipherState {
            aead,
            key: aead.key(key)?,
            n: 0,
        })
    }

    /// The AEAD in use.
    pub fn aead(&self) -> Aead {
        self.aead
    }

    /// Encrypts `buf[..len]` in place and writes the tag after it; `buf` must hold
    /// `len + TAG_LEN` bytes. Returns the ciphertext's length. Empty associated data.
    pub fn seal(&mut self, buf: &mut [u8], len: usize) -> Result<usize> {
        let total = self.seal_at(self.n, buf, len)?;
        self.n += 1;
        Ok(total)
    }

    /// Decrypts `buf` (ciphertext then tag) in place: the plaintext's length, at the front.
    /// `Err(Decrypt)` when it does not authenticate; the nonce then stays where it was.
    pub fn open(&mut self, buf: &mut [u8]) -> std::result::Result<usize, Decrypt> {
        let len = self.open_at(self.n, buf)?;
        self.n += 1;
        Ok(len)
    }

    /// [`Self::seal`] with the nonce `n` given, the counter left alone: a room's sealed
    /// messages carry their nonce (PROTOCOL.md §4.14), so one the host drops shows as a gap
    /// instead of making every later one fail. The caller never uses a nonce twice.
    pub fn seal_at(&self, n: u64, buf: &mut [u8], len: usize) -> Result<usize> {
        if n == MAX_NONCE {
            // 2^64 - 1 messages: never in practice, but the session must end (Noise §5.1).
            return Err(Error::Internal("nonce space exhausted".into()));
        }
        let total = len + TAG_LEN;
        if buf.len() < total {
            return Err(Error::Internal(
                "sealing into a buffer without room for the tag".into(),
            ));
        }
        let (plain, rest) = buf[..total].split_at_mut(len);
        let tag = self
            .key
            .seal_in_place_separate_tag(self.aead.nonce(n), Aad::empty(), plain)
            .map_err(|_| Error::Internal("encrypting failed".into()))?;
        rest.copy_from_slice(tag.as_ref());
        Ok(total)
    }

    /// [`Self::open`] with the nonce `n` given, the counter left alone.
    pub fn open_at(&self, n: u64, buf: &mut [u8]) -> std::result::Result<usize, Decrypt> {
        if n == MAX_NONCE || buf.len() < TAG_LEN {
            return Err(Decrypt);
        }
        let len = buf.len() - TAG_LEN;
        let (cipher, tag) = buf.split_at_mut(len);
        let tag: [u8; TAG_LEN] = (&*tag).try_into().map_err(|_| Decrypt)?;
        self.key
            .open_in_place_separate_tag(
                self.aead.nonce(n),
                Aad::empty(),
                Tag::from(tag),
                cipher,
                0..,
            )
            .map_err(|_| Decrypt)?;
        Ok(len)
    }

    /// Noise `REKEY()`: the next key is the first 32 bytes of encrypting 32 zero bytes at
    /// nonce 2^64 - 1 under the current key. The nonce goes on counting (Noise §11.3).
    pub fn rekey(&mut self) -> Result<()> {
        let next = self.next_key()?;
        self.key = self.aead.key(&next)?;
        Ok(())
    }

    /// Moves this direction to AES-256-GCM under `REKEY()` of the current key, so that no key
    /// is ever used with two ciphers (PROTOCOL.md §4.9). The nonce goes on counting.
    pub fn switch_to_aes_gcm(&mut self) -> Result<()> {
        let next = self.next_key()?;
        self.aead = Aead::AesGcm;
        self.key = Aead::AesGcm.key(&next)?;
        Ok(())
    }

    fn next_key(&self) -> Result<Zeroizing<[u8; KEY_LEN]>> {
        let mut next = Zeroizing::new([0u8; KEY_LEN]);
        // The ciphertext is the next key; the tag is not part of it.
        let _tag = self
            .key
            .seal_in_place_separate_tag(self.aead.nonce(MAX_NONCE), Aad::empty(), &mut next[..])
            .map_err(|_| Error::Internal("rekeying failed".into()))?;
        Ok(next)
    }
}

/// Whether to offer AES-256-GCM to peers (and switch to it when they offer it too): when this
/// CPU has AES and carry-less multiply instructions, which make ring's AES-GCM both constant
/// time and several times faster than ChaCha20-Poly1305; never on a machine without them,
/// where ChaCha20-Poly1305 is the faster and safer choice. `SCHAT_NO_AES=1` turns it off (to
/// compare the two, or to rule the switch out when looking for a fault).
pub fn offer_aes_gcm() -> bool {
    static OFFER: std::sync::OnceLock<bool> = std::sync::OnceLock::new();
    *OFFER.get_or_init(|| {
        let off = std::env::var_os("SCHAT_NO_AES").is_some_and(|v| !v.is_empty() && v != "0");
        !off && aes_hardware()
    })
}

fn aes_hardware() -> bool {
    #[cfg(target_arch = "x86_64")]
    {
        std::arch::is_x86_feature_detected!("aes")
            && std::arch::is_x86_feature_detected!("pclmulqdq")
    }
    #[cfg(target_arch = "aarch64")]
    {
        std::arch::is_aarch64_feature_detected!("aes")
            && std::arch::is_aarch64_feature_detected!("pmull")
    }
    #[cfg(not(any(target_arch = "x86_64", target_arch = "aarch64")))]
    {
        false
    }
}

/// A message that did not authenticate (or could not have: shorter than a tag).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Decrypt;

/// Both directions of a session, as a peer holds them after the handshake.
#[derive(Debug)]
pub struct CipherPair {
    pub send: CipherState,
    pub recv: CipherState,
}

impl CipherPair {
    /// From `Split()`'s two keys: the initiator sends with the first, the responder with the
    /// second (Noise §5.2).
    pub fn from_split(
        initiator: bool,
        k1: &[u8; KEY_LEN],
        k2: &[u8; KEY_LEN],
    ) -> Result<CipherPair> {
        let (send, recv) = if initiator { (k1, k2) } else { (k2, k1) };
        Ok(CipherPair {
            send: CipherState::new(Aead::ChaChaPoly, send)?,
            recv: CipherState::new(Aead::ChaChaPoly, recv)?,
        })
    }

    /// Seals `plaintext` into `out` (which needs `plaintext.len() + TAG_LEN` bytes): the
    /// ciphertext's length. For tests and tools that play a peer by hand.
    pub fn write_message(&mut self, plaintext: &[u8], out: &mut [u8]) -> Result<usize> {
        let len = plaintext.len();
        out.get_mut(..len)
            .ok_or_else(|| Error::Internal("output buffer too small".into()))?
            .copy_from_slice(plaintext);
        self.send.seal(out, len)
    }

    /// Opens `ciphertext` into `out`: the plaintext's length.
    pub fn read_message(
        &mut self,
        ciphertext: &[u8],
        out: &mut [u8],
    ) -> std::result::Result<usize, Decrypt> {
        let buf = out.get_mut(..ciphertext.len()).ok_or(Decrypt)?;
        buf.copy_from_slice(ciphertext);
        self.recv.open(buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two snow transports and the same session's keys for ours, from one NN handshake.
    fn snow_and_ours() -> (
        (snow::TransportState, CipherPair),
        (snow::TransportState, CipherPair),
    ) {
        let params: snow::params::NoiseParams =
            "Noise_NN_25519_ChaChaPoly_BLAKE2s".parse().unwrap();
        let mut i = snow::Builder::new(params.clone())
            .build_initiator()
            .unwrap();
        let mut r = snow::Builder::new(params).build_responder().unwrap();
        let (mut buf, mut tmp) = ([0u8; 128], [0u8; 128]);
        let n = i.write_message(&[], &mut buf).unwrap();
        r.read_message(&buf[..n], &mut tmp).unwrap();
        let n = r.write_message(&[], &mut buf).unwrap();
        i.read_message(&buf[..n], &mut tmp).unwrap();
        let (k1, k2) = i.dangerously_get_raw_split();
        let ours_i = CipherPair::from_split(true, &k1, &k2).unwrap();
        let ours_r = CipherPair::from_split(false, &k1, &k2).unwrap();
        (
            (i.into_transport_mode().unwrap(), ours_i),
            (r.into_transport_mode().unwrap(), ours_r),
        )
    }

    /// Byte for byte what snow's transport produces, in both directions, across rekeys, at
    /// every size from empty to a full frame; and each side opens the other's.
    #[test]
    fn chachapoly_matches_snow_including_rekeys() {
        let ((mut snow_i, mut ours_i), (mut snow_r, mut ours_r)) = snow_and_ours();
        let mut sizes: Vec<usize> = (0..70).collect();
        sizes.extend([1000, 4096, 65519]);
        for (round, &size) in sizes.iter().enumerate() {
            let plain: Vec<u8> = (0..size).map(|b| (b * 7 + round) as u8).collect();
            let (mut a, mut b) = (vec![0u8; size + TAG_LEN], vec![0u8; size + TAG_LEN]);
            // initiator → responder
            let n = snow_i.write_message(&plain, &mut a).unwrap();
            let m = ours_i.write_message(&plain, &mut b).unwrap();
            assert_eq!(a[..n], b[..m], "initiator, message {round}");
            let mut out = vec![0u8; size + TAG_LEN];
            let len = ours_r.read_message(&a[..n], &mut out).unwrap();
            assert_eq!(out[..len], plain[..]);
            snow_r.read_message(&b[..m], &mut out).unwrap();
            // responder → initiator
            let n = snow_r.write_message(&plain, &mut a).unwrap();
            let m = ours_r.write_message(&plain, &mut b).unwrap();
            assert_eq!(a[..n], b[..m], "responder, message {round}");
            let len = ours_i.read_message(&a[..n], &mut out).unwrap();
            assert_eq!(out[..len], plain[..]);
            snow_i.read_message(&b[..m], &mut out).unwrap();
            if round % 5 == 4 {
                snow_i.rekey_outgoing();
                snow_r.rekey_incoming();
                ours_i.send.rekey().unwrap();
                ours_r.recv.rekey().unwrap();
            }
            if round % 7 == 6 {
                snow_r.rekey_outgoing();
                snow_i.rekey_incoming();
                ours_r.send.rekey().unwrap();
                ours_i.recv.rekey().unwrap();
            }
        }
    }

    /// A tampered or truncated message fails and leaves the nonce alone, so the genuine one
    /// still opens.
    #[test]
    fn failed_open_keeps_the_nonce() {
        let ((_, mut i), (_, mut r)) = snow_and_ours();
        let mut sealed = [0u8; 5 + TAG_LEN];
        let n = i.write_message(b"hello", &mut sealed).unwrap();
        let mut out = [0u8; 64];
        for at in [0, 4, 5, n - 1] {
            let mut bad = sealed;
            bad[at] ^= 1;
            assert_eq!(r.read_message(&bad[..n], &mut out), Err(Decrypt));
        }
        assert_eq!(
            r.read_message(&sealed[..TAG_LEN - 1], &mut out),
            Err(Decrypt)
        );
        assert_eq!(r.read_message(&sealed[..n], &mut out), Ok(5));
        assert_eq!(&out[..5], b"hello");
    }

    /// After a switch the direction speaks AES-256-GCM under `REKEY()` of the old key, with
    /// big-endian nonces that go on counting: checked against ring's AES-GCM used directly.
    #[test]
    fn switch_to_aes_gcm_derives_the_key_and_keeps_counting() {
        let key = [0x42u8; KEY_LEN];
        let mut ours = CipherState::new(Aead::ChaChaPoly, &key).unwrap();
        let mut buf = [0u8; 3 + TAG_LEN];
        buf[..3].copy_from_slice(b"abc");
        ours.seal(&mut buf, 3).unwrap();
        ours.switch_to_aes_gcm().unwrap();
        assert_eq!(ours.aead(), Aead::AesGcm);
        // The expected key: ChaCha20-Poly1305 of 32 zero bytes at nonce 2^64 - 1.
        let chacha = Aead::ChaChaPoly.key(&key).unwrap();
        let mut next = [0u8; KEY_LEN];
        let _tag = chacha
            .seal_in_place_separate_tag(Aead::ChaChaPoly.nonce(u64::MAX), Aad::empty(), &mut next)
            .unwrap();
        let aes = LessSafeKey::new(UnboundKey::new(&AES_256_GCM, &next).unwrap());
        let mut expected = *b"xyz";
        let tag = aes
            .seal_in_place_separate_tag(
                Nonce::assume_unique_for_key([0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1]),
                Aad::empty(),
                &mut expected,
            )
            .unwrap();
        let mut buf = [0u8; 3 + TAG_LEN];
        buf[..3].copy_from_slice(b"xyz");
        assert_eq!(ours.seal(&mut buf, 3).unwrap(), 3 + TAG_LEN);
        assert_eq!(buf[..3], expected);
        assert_eq!(buf[3..], *tag.as_ref());
    }

    #[test]
    fn debug_shows_no_key() {
        let state = CipherState::new(Aead::ChaChaPoly, &[0xab; KEY_LEN]).unwrap();
        let shown = format!("{state:?}");
        assert!(!shown.contains("ab, ") && !shown.contains("171"), "{shown}");
        assert!(shown.contains("ChaChaPoly"));
    }

    /// Noise reserves nonce 2^64 - 1: the message before it is the last one either way, and a
    /// failed AES-GCM open keeps the nonce like a ChaCha one.
    #[test]
    fn the_last_nonce_is_never_used_and_failures_keep_the_count() {
        for aead in [Aead::ChaChaPoly, Aead::AesGcm] {
            let key = [9u8; KEY_LEN];
            let (mut tx, mut rx) = (
                CipherState::new(aead, &key).unwrap(),
                CipherState::new(aead, &key).unwrap(),
            );
            tx.n = u64::MAX - 1;
            rx.n = u64::MAX - 1;
            let mut buf = [0u8; 4 + TAG_LEN];
            buf[..4].copy_from_slice(b"last");
            let n = tx.seal(&mut buf, 4).unwrap();
            let mut bad = buf;
            bad[0] ^= 1;
            assert_eq!(rx.open(&mut bad[..n]), Err(Decrypt), "{aead:?}");
            assert_eq!(rx.open(&mut buf[..n]), Ok(4), "{aead:?}");
            assert_eq!(&buf[..4], b"last");
            assert!(tx.seal(&mut buf, 4).is_err(), "{aead:?}");
            assert_eq!(rx.open(&mut buf[..n]), Err(Decrypt), "{aead:?}");
            // REKEY still works there (it uses the reserved nonce, not the counter).
            tx.rekey().unwrap();
        }
    }
}
