//! Long-term X25519 identities: the public key (which *is* the fingerprint) and the secret key,
//! which lives only in a zeroize-on-drop buffer and has no way to be printed.

use rand::TryRng;
use rand::rngs::SysRng;
use snow::params::DHChoice;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use std::fmt;
use zeroize::Zeroizing;

/// Bytes in an X25519 key.
pub const KEY_LEN: usize = 32;

/// A peer's or our own static public key. Shown as 64 lowercase hex digits.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct PublicKey([u8; KEY_LEN]);

impl PublicKey {
    /// Wraps raw key bytes.
    pub const fn from_bytes(bytes: [u8; KEY_LEN]) -> Self {
        PublicKey(bytes)
    }

    /// Takes a key from a slice of exactly 32 bytes.
    pub fn from_slice(bytes: &[u8]) -> Option<Self> {
        bytes.try_into().ok().map(PublicKey)
    }

    /// The raw bytes.
    pub fn as_bytes(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// 64 lowercase hex digits.
    pub fn to_hex(&self) -> String {
        hex::encode(self.0)
    }

    /// Whether this is the one canonical encoding of its key: bit 255 clear and, read as a
    /// little-endian integer, u < p = 2^255 - 19. X25519 ignores bit 255 and reduces u mod p,
    /// so a key whose encoding is not canonical is another name for a key that has a canonical
    /// one: accepting both would give one secret key several fingerprints. Every public key
    /// X25519 computes is canonical.
    pub fn is_canonical(&self) -> bool {
        /// p = 2^255 - 19, little-endian.
        const P: [u8; KEY_LEN] = {
            let mut p = [0xff; KEY_LEN];
            p[0] = 0xed;
            p[KEY_LEN - 1] = 0x7f;
            p
        };
        if self.0[KEY_LEN - 1] & 0x80 != 0 {
            return false;
        }
        // Compare from the most significant byte down (public data: no need for constant time).
        for (byte, limit) in self.0.iter().rev().zip(P.iter().rev()) {
            if byte != limit {
                return byte < limit;
            }
        }
        false
    }
}

impl fmt::Display for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_hex())
    }
}

impl fmt::Debug for PublicKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "PublicKey({self})")
    }
}

/// A static secret key. Wiped from memory on drop; `Debug` is redacted; no `Display`, no `Clone`.
pub struct SecretKey(Zeroizing<[u8; KEY_LEN]>);

impl SecretKey {
    /// Takes ownership of key bytes that the caller already keeps in a zeroizing buffer.
    pub fn from_bytes(bytes: Zeroizing<[u8; KEY_LEN]>) -> Self {
        SecretKey(bytes)
    }

    /// The raw bytes, for the Noise handshake and for writing the keyfile only.
    pub(crate) fn expose(&self) -> &[u8; KEY_LEN] {
        &self.0
    }

    /// The matching public key (X25519 base-point multiplication).
    pub fn public_key(&self) -> PublicKey {
        let mut out = [0u8; KEY_LEN];
        with_dh(self, |dh| out.copy_from_slice(dh.pubkey()));
        PublicKey(out)
    }

    /// Whether Diffie-Hellman with `peer` yields the all-zero value, which happens exactly when
    /// `peer` is a low-order point. Such a "key" has no secret behind it: anyone could claim it.
    pub(crate) fn agrees_to_zero_with(&self, peer: &PublicKey) -> bool {
        let mut shared = Zeroizing::new([0u8; KEY_LEN]);
        let mut ok = true;
        with_dh(self, |dh| {
            ok = dh.dh(peer.as_bytes(), &mut shared[..]).is_ok()
        });
        !ok || shared.iter().all(|&b| b == 0)
    }
}

impl PublicKey {
    /// Whether this is a low-order point (so DH with it gives zero whatever the secret, and no
    /// secret stands behind it). For keys on the curve — every real key — this maps to Edwards
    /// form and multiplies by the cofactor, about a fifth of the cost of a DH; keys on the
    /// twist, which only a misbehaving peer sends, take the full DH test with `ours`.
    pub(crate) fn is_low_order(&self, ours: &SecretKey) -> bool {
        match curve25519_dalek::MontgomeryPoint(self.0).to_edwards(0) {
            Some(point) => point.is_small_order(),
            None => ours.agrees_to_zero_with(self),
        }
    }
}

impl fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretKey(<redacted>)")
    }
}

/// Runs `f` with snow's X25519 primitive loaded with `secret`, then overwrites that copy.
fn with_dh(secret: &SecretKey, f: impl FnOnce(&dyn snow::types::Dh)) {
    // The default resolver always has Curve25519 (feature `use-curve25519`, on by default).
    if let Some(mut dh) = DefaultResolver.resolve_dh(&DHChoice::Curve25519) {
        dh.set(secret.expose());
        f(&*dh);
        // snow's Dh keeps a plain copy of the key; clobber it before the box is freed.
        dh.set(&[0u8; KEY_LEN]);
    }
}

/// Our own long-term identity.
#[derive(Debug)]
pub struct Identity {
    secret: SecretKey,
    public: PublicKey,
}

impl Identity {
    /// A fresh identity from the operating system's random number generator.
    pub fn generate() -> std::io::Result<Self> {
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        SysRng
            .try_fill_bytes(&mut bytes[..])
            .map_err(|e| std::io::Error::other(format!("no randomness from the OS: {e}")))?;
        Ok(Self::from_secret(SecretKey::from_bytes(bytes)))
    }

    /// The identity belonging to a secret key.
    pub fn from_secret(secret: SecretKey) -> Self {
        let public = secret.public_key();
        Identity { secret, public }
    }

    /// A second copy (its own zeroizing buffer), for tasks that need to own an identity.
    pub fn duplicate(&self) -> Identity {
        Identity::from_secret(SecretKey::from_bytes(Zeroizing::new(*self.secret.expose())))
    }

    /// Our public key.
    pub fn public(&self) -> &PublicKey {
        &self.public
    }

    /// Our secret key.
    pub fn secret(&self) -> &SecretKey {
        &self.secret
    }
}

/// Whether two 32-byte secrets are equal, in time that does not depend on where they differ.
pub fn constant_time_eq(a: &[u8; 32], b: &[u8; 32]) -> bool {
    let diff = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    std::hint::black_box(diff) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generated_identities_differ_and_derive_their_public_key() {
        let a = Identity::generate().unwrap();
        let b = Identity::generate().unwrap();
        assert_ne!(a.public(), b.public());
        assert_eq!(a.secret().public_key(), *a.public());
    }

    #[test]
    fn rfc7748_public_key_derivation() {
        // RFC 7748 §6.1, Alice's key pair.
        let secret: [u8; 32] =
            hex::decode("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a")
                .unwrap()
                .try_into()
                .unwrap();
        let id = Identity::from_secret(SecretKey::from_bytes(Zeroizing::new(secret)));
        assert_eq!(
            id.public().to_hex(),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
    }

    #[test]
    fn debug_output_never_contains_the_secret() {
        let id = Identity::generate().unwrap();
        let secret_hex = hex::encode(id.secret().expose());
        let shown = format!("{id:?} {:?}", id.secret());
        assert!(!shown.contains(&secret_hex));
        assert!(shown.contains("redacted"));
    }

    /// u-coordinates of the low-order points of Curve25519 and its twist (as listed by
    /// libsodium's `has_small_order`), plus the same with the ignored top bit set.
    fn low_order_encodings() -> Vec<[u8; 32]> {
        let hex = [
            "0000000000000000000000000000000000000000000000000000000000000000",
            "0100000000000000000000000000000000000000000000000000000000000000",
            "e0eb7a7c3b41b8ae1656e3faf19fc46ada098deb9c32b1fd866205165f49b800",
            "5f9c95bca3508c24b1d0b1559c83ef5b04445cc4581c8e86d8224eddd09f1157",
            "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
            "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f",
        ];
        let mut all: Vec<[u8; 32]> = hex
            .iter()
            .map(|h| hex::decode(h).unwrap().try_into().unwrap())
            .collect();
        let with_top_bit: Vec<[u8; 32]> = all
            .iter()
            .map(|k| {
                let mut k = *k;
                k[31] |= 0x80;
                k
            })
            .collect();
        all.extend(with_top_bit);
        all
    }

    fn key_from_hex(h: &str) -> PublicKey {
        PublicKey::from_bytes(hex::decode(h).unwrap().try_into().unwrap())
    }

    #[test]
    fn canonical_encodings_are_below_p_with_bit_255_clear() {
        // Little-endian: the last byte is the most significant. p = 2^255 - 19.
        let p_minus_1 = "ecffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
        let p = "edffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
        let p_plus_1 = "eeffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
        let max_255 = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7f";
        let below_top = "ffffffffffffffffffffffffffffffffffffffffffffffffffffffffffffff7e";
        assert!(key_from_hex(p_minus_1).is_canonical());
        assert!(key_from_hex(below_top).is_canonical());
        assert!(PublicKey::from_bytes([0; 32]).is_canonical());
        assert!(!key_from_hex(p).is_canonical());
        assert!(!key_from_hex(p_plus_1).is_canonical());
        assert!(!key_from_hex(max_255).is_canonical());
        // A real key, and the same with bit 255 set (X25519 ignores that bit on input).
        let real = *Identity::generate().unwrap().public();
        assert!(real.is_canonical());
        let mut top = *real.as_bytes();
        top[31] |= 0x80;
        assert!(!PublicKey::from_bytes(top).is_canonical());
        let mut all = [0xffu8; 32];
        assert!(!PublicKey::from_bytes(all).is_canonical());
        all[31] = 0x80;
        assert!(!PublicKey::from_bytes(all).is_canonical());
    }

    #[test]
    fn low_order_points_are_detected_both_ways() {
        let id = Identity::generate().unwrap();
        for bytes in low_order_encodings() {
            let key = PublicKey::from_bytes(bytes);
            assert!(id.secret().agrees_to_zero_with(&key), "{key}");
            assert!(key.is_low_order(id.secret()), "{key}");
        }
        for _ in 0..50 {
            let other = Identity::generate().unwrap();
            assert!(!id.secret().agrees_to_zero_with(other.public()));
            assert!(!other.public().is_low_order(id.secret()));
        }
        // u = 2 is on the twist, not the curve: it takes the DH path, and is not low order.
        let mut twist = [0u8; 32];
        twist[0] = 2;
        assert!(
            curve25519_dalek::MontgomeryPoint(twist)
                .to_edwards(0)
                .is_none()
        );
        assert!(!PublicKey::from_bytes(twist).is_low_order(id.secret()));
    }
}
