//! ML-KEM-768 (FIPS 203) for schat/2's hybrid handshake, and the PSK it yields.
//!
//! The crate is `libcrux-ml-kem`: formally verified, and about 3× faster here than RustCrypto's
//! `ml-kem` (19 µs per operation against 60–80; a whole handshake keeps 0.77–0.89× of the
//! classical rate against 0.58–0.65×: ../shared/notes/post-quantum.md). Two things it does not
//! do are done here: it does not validate an encapsulation key before encapsulating (we call
//! `validate_public_key` first: a malformed key is the peer's fault, said plainly), and it wipes
//! nothing, so we wipe what passes through our hands — the decapsulation key (held boxed, and
//! the crate's key values we build or receive, wiped in place before they are dropped), the
//! seed, the encapsulation randomness and the shared secret. Best effort: copies the crate
//! makes inside a call, and the PSK copy inside snow, are beyond our reach.
//!
//! Pure: no I/O. Randomness comes in as arguments, so tests and vectors can fix it.

use hmac::{Hmac, Mac};
use libcrux_ml_kem::mlkem768;
use sha2::Sha256;
use zeroize::Zeroizing;

/// Bytes of an encapsulation key.
pub const EK_LEN: usize = 1184;
/// Bytes of a ciphertext.
pub const CT_LEN: usize = 1088;
/// Bytes of the key-generation seed (d ‖ z).
pub const SEED_LEN: usize = 64;
/// Bytes of the encapsulation randomness (m).
pub const ENCAPS_RAND_LEN: usize = 32;
/// Bytes of the shared secret and of the PSK.
pub const SECRET_LEN: usize = 32;
/// Bytes of a decapsulation key.
const DK_LEN: usize = 2400;

/// An ML-KEM shared secret, wiped when dropped.
pub type SharedSecret = Zeroizing<[u8; SECRET_LEN]>;

/// The initiator's half: holds the decapsulation key (zeroized on drop) until the ciphertext
/// comes back; consumed by [`Decapsulator::decapsulate`].
pub struct Decapsulator {
    dk: Box<Zeroizing<[u8; DK_LEN]>>,
}

impl std::fmt::Debug for Decapsulator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Decapsulator(..)")
    }
}

/// A key pair from `seed`; returns the decapsulator and the encapsulation key to send.
pub fn generate(seed: &Zeroizing<[u8; SEED_LEN]>) -> (Decapsulator, Box<[u8; EK_LEN]>) {
    use zeroize::Zeroize;
    let pair = mlkem768::generate_key_pair(**seed);
    let (mut sk, pk) = pair.into_parts();
    let mut dk = Box::new(Zeroizing::new([0u8; DK_LEN]));
    dk.copy_from_slice(sk.as_slice());
    sk[0..].zeroize();
    let mut ek = Box::new([0u8; EK_LEN]);
    ek.copy_from_slice(pk.as_slice());
    (Decapsulator { dk }, ek)
}

impl Decapsulator {
    /// The shared secret in `ciphertext`. A tampered ciphertext does not fail here (ML-KEM's
    /// implicit rejection gives another secret); it fails as a PSK mismatch at message 3.
    pub fn decapsulate(self, ciphertext: &[u8; CT_LEN]) -> Zeroizing<[u8; SECRET_LEN]> {
        use zeroize::Zeroize;
        let mut sk = mlkem768::MlKem768PrivateKey::from(&**self.dk);
        let ct = mlkem768::MlKem768Ciphertext::from(ciphertext);
        let shared = Zeroizing::new(mlkem768::decapsulate(&sk, &ct));
        sk[0..].zeroize();
        shared
    }
}

/// Encapsulates to the peer's key with `randomness`: the ciphertext to send and the shared
/// secret. `None` when the key is not a valid ML-KEM-768 key (the peer's fault).
pub fn encapsulate(
    ek: &[u8; EK_LEN],
    randomness: Zeroizing<[u8; ENCAPS_RAND_LEN]>,
) -> Option<(Box<[u8; CT_LEN]>, SharedSecret)> {
    let pk = mlkem768::MlKem768PublicKey::from(ek);
    if !mlkem768::validate_public_key(&pk) {
        return None;
    }
    // (m, with the public key, gives the secret: it is as secret as the secret.)
    let (ct, ss) = mlkem768::encapsulate(&pk, *randomness);
    let mut out = Box::new([0u8; CT_LEN]);
    out.copy_from_slice(ct.as_slice());
    Some((out, Zeroizing::new(ss)))
}

/// The Noise PSK (position 3): HMAC-SHA256(shared secret, "schat/2 psk" ‖ h), with `h` the
/// handshake hash after message 2 — equal on both sides, and covering both ephemerals, both
/// static keys and the KEM key and ciphertext.
pub fn psk(shared: &[u8; SECRET_LEN], handshake_hash: &[u8]) -> Zeroizing<[u8; SECRET_LEN]> {
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(shared)
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"schat/2 psk");
    mac.update(handshake_hash);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use sha2::Digest;

    fn sha(bytes: &[u8]) -> String {
        hex::encode(sha2::Sha256::digest(bytes))
    }

    #[test]
    fn both_sides_get_the_same_secret_and_tampering_changes_it() {
        let (dec, ek) = generate(&Zeroizing::new([1; SEED_LEN]));
        let (ct, ss) = encapsulate(&ek, Zeroizing::new([2; ENCAPS_RAND_LEN])).unwrap();
        let mut bad = *ct;
        bad[100] ^= 1;
        let (dec2, _) = generate(&Zeroizing::new([1; SEED_LEN]));
        assert_eq!(*dec.decapsulate(&ct), *ss);
        assert_ne!(
            *dec2.decapsulate(&bad),
            *ss,
            "implicit rejection, not the secret"
        );
    }

    #[test]
    fn an_invalid_encapsulation_key_is_refused() {
        let (_, ek) = generate(&Zeroizing::new([3; SEED_LEN]));
        let mut bad = *ek;
        // A coefficient ≥ q (12 bits of 0xfff) is not a valid encoding.
        bad[0] = 0xff;
        bad[1] |= 0x0f;
        assert!(encapsulate(&bad, Zeroizing::new([0; ENCAPS_RAND_LEN])).is_none());
    }

    /// A known answer: ML-KEM-768 from seed d ‖ z = 00 01 … 3f and m = 40 41 … 5f. The same
    /// key, ciphertext and secret come out of the independent Python implementation `kyber-py`
    /// 1.2.0 (`ML_KEM_768._keygen_internal(d, z)`, `_encaps_internal(ek, m)`; checked when this
    /// test was written): pinned here, the key and ciphertext by their SHA-256.
    #[test]
    fn known_answer() {
        let seed: [u8; SEED_LEN] = std::array::from_fn(|i| i as u8);
        let m: [u8; ENCAPS_RAND_LEN] = std::array::from_fn(|i| 0x40 + i as u8);
        let (dec, ek) = generate(&Zeroizing::new(seed));
        let (ct, ss) = encapsulate(&ek, Zeroizing::new(m)).unwrap();
        assert_eq!(*dec.decapsulate(&ct), *ss);
        let got = (sha(&ek[..]), sha(&ct[..]), hex::encode(*ss));
        assert_eq!(got, (EK_SHA.into(), CT_SHA.into(), SS_HEX.into()));
    }

    const EK_SHA: &str = "0b7934c83125c788995e2ba6bd761e33046b3e40571be53e023309a29f398cc9";
    const CT_SHA: &str = "dbf4e9aa48b078ad46ec1c9c47bda8c2d2fec9d0e7a21bd48d2238a2abedb856";
    const SS_HEX: &str = "9cddd089ffe70e3996e76f7c8d06746df34d07e8657bc0fcf2bb0e1c3084aea1";
}
