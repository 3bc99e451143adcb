//! Sealing a secret key under a passphrase: Argon2id derives a key from the passphrase, and
//! ChaCha20-Poly1305 seals the secret with the public key and the KDF's parameters as
//! associated data (PROTOCOL.md §8). The text the sealed key takes in the file is here too;
//! the rest of the file's format is [`super`]'s.

use super::{PUBLIC_TAG, SEALED_TAG};
use crate::keys::{Identity, KEY_LEN, PublicKey};
use zeroize::Zeroizing;

/// A passphrase-sealed secret key as stored in the file.
#[derive(Debug, Clone)]
pub(super) struct Sealed {
    /// The KDF fields exactly as written (`argon2id m=… t=… p=…`): authenticated as they are.
    pub(super) header: String,
    pub(super) kdf: KdfParams,
    pub(super) salt: [u8; SALT_LEN],
    pub(super) nonce: [u8; NONCE_LEN],
    pub(super) sealed: [u8; KEY_LEN + TAG_LEN],
}

pub(super) const SALT_LEN: usize = 16;
pub(super) const NONCE_LEN: usize = 12;
pub(super) const TAG_LEN: usize = 16;

/// Argon2id cost parameters, stored in the file.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct KdfParams {
    /// Memory in KiB.
    pub memory_kib: u32,
    /// Passes over the memory.
    pub passes: u32,
    /// Lanes.
    pub lanes: u32,
}

impl Default for KdfParams {
    /// 128 MiB, 3 passes, 1 lane: about half a second on the 2-core machines schat is built on.
    fn default() -> Self {
        KdfParams {
            memory_kib: 128 * 1024,
            passes: 3,
            lanes: 1,
        }
    }
}

impl KdfParams {
    /// The least memory accepted (8 MiB): less makes guessing cheap.
    pub const MIN_MEMORY_KIB: u32 = 8 * 1024;
    /// The most memory accepted (1 GiB).
    pub const MAX_MEMORY_KIB: u32 = 1024 * 1024;
    /// The most passes accepted.
    pub const MAX_PASSES: u32 = 10;
    /// The most lanes accepted.
    pub const MAX_LANES: u32 = 4;
    /// Memory × passes accepted at most (4 GiB·passes: a few seconds here), so that a hostile
    /// keyfile cannot make schat work for minutes.
    pub const MAX_WORK_KIB: u64 = 4 * 1024 * 1024;

    /// Checks the parameters are sane; `Err` says why not.
    pub fn check(&self) -> Result<(), &'static str> {
        if self.memory_kib < Self::MIN_MEMORY_KIB {
            return Err("KDF memory below 8 MiB: too weak to protect a key");
        }
        if self.memory_kib > Self::MAX_MEMORY_KIB
            || self.passes > Self::MAX_PASSES
            || self.lanes > Self::MAX_LANES
            || u64::from(self.memory_kib) * u64::from(self.passes) > Self::MAX_WORK_KIB
        {
            return Err("KDF cost is unreasonably high (refused without trying)");
        }
        if self.passes == 0 || self.lanes == 0 {
            return Err("KDF passes and lanes must be at least 1");
        }
        Ok(())
    }

    fn render(&self) -> String {
        format!(
            "argon2id m={} t={} p={}",
            self.memory_kib, self.passes, self.lanes
        )
    }

    /// Derives the 32-byte sealing key.
    pub(super) fn derive(
        &self,
        passphrase: &Passphrase,
        salt: &[u8],
    ) -> Result<Zeroizing<[u8; 32]>, &'static str> {
        let params = argon2::Params::new(self.memory_kib, self.passes, self.lanes, Some(32))
            .map_err(|_| "invalid KDF parameters")?;
        let argon =
            argon2::Argon2::new(argon2::Algorithm::Argon2id, argon2::Version::V0x13, params);
        let mut key = Zeroizing::new([0u8; 32]);
        argon
            .hash_password_into(passphrase.expose().as_bytes(), salt, &mut key[..])
            .map_err(|_| "key derivation failed")?;
        Ok(key)
    }
}

/// A passphrase, wiped from memory on drop, never printed.
pub struct Passphrase(Zeroizing<String>);

impl Passphrase {
    /// Wraps a passphrase (the caller's copy should itself be zeroizing).
    pub fn new(text: Zeroizing<String>) -> Self {
        Passphrase(text)
    }

    /// The text, for the KDF only.
    pub(crate) fn expose(&self) -> &str {
        &self.0
    }

    /// A second copy, in its own zeroizing buffer of exactly the right size.
    pub fn duplicate(&self) -> Self {
        let mut copy = Zeroizing::new(String::with_capacity(self.0.len()));
        copy.push_str(&self.0);
        Passphrase(copy)
    }

    /// Whether it is empty (which means "no passphrase").
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for Passphrase {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Passphrase(<redacted>)")
    }
}

/// Associated data for sealing: binds the sealed key to its public key and KDF header, so
/// neither can be changed in the file without the unsealing failing. `header` is the KDF part
/// of the line exactly as it appears in the file (PROTOCOL.md §8), never re-rendered from the
/// parsed numbers: what is authenticated is what is written.
pub(super) fn sealing_aad(public: &PublicKey, header: &str) -> Vec<u8> {
    let mut aad = b"schat-key-v1".to_vec();
    aad.extend_from_slice(public.as_bytes());
    aad.extend_from_slice(header.as_bytes());
    aad
}

/// Parses `argon2id m=<m> t=<t> p=<p> salt=<hex> nonce=<hex> key=<hex>`: these fields in this
/// order, one space between them, numbers in decimal digits (errors say what, not the value).
/// The KDF header (`argon2id m=… t=… p=…`) is kept as written, for the associated data.
pub(super) fn parse_sealed(fields: &str) -> Result<Sealed, &'static str> {
    const ORDER: &str = "fields must be `argon2id m= t= p= salt= nonce= key=`, in this order, \
                         separated by single spaces";
    let mut words = fields.split(' ');
    if words.next() != Some("argon2id") {
        return Err("unknown key derivation (expected argon2id)");
    }
    let mut field = |name: &str| -> Result<&str, &'static str> {
        let word = words.next().ok_or(ORDER)?;
        match word.split_once('=') {
            Some((n, value)) if n == name => Ok(value),
            _ if word.contains('=') || word.is_empty() => Err(ORDER),
            _ => Err("malformed field"),
        }
    };
    let number = |value: &str| {
        if value.is_empty() || !value.bytes().all(|b| b.is_ascii_digit()) {
            return Err("KDF parameter is not a number");
        }
        value
            .parse::<u32>()
            .map_err(|_| "KDF parameter is not a number")
    };
    let kdf = KdfParams {
        memory_kib: number(field("m")?)?,
        passes: number(field("t")?)?,
        lanes: number(field("p")?)?,
    };
    let (salt, nonce, key) = (field("salt")?, field("nonce")?, field("key")?);
    if words.next().is_some() {
        return Err("unexpected field after key=");
    }
    kdf.check()?;
    // Everything before " salt=": the KDF header exactly as written.
    let header = fields
        .split_once(" salt=")
        .map(|(header, _)| header.to_string())
        .ok_or(ORDER)?;
    let mut sealed = Sealed {
        header,
        kdf,
        salt: [0; SALT_LEN],
        nonce: [0; NONCE_LEN],
        sealed: [0; KEY_LEN + TAG_LEN],
    };
    hex::decode_to_slice(salt, &mut sealed.salt).map_err(|_| "salt is not 32 hex digits")?;
    hex::decode_to_slice(nonce, &mut sealed.nonce).map_err(|_| "nonce is not 24 hex digits")?;
    hex::decode_to_slice(key, &mut sealed.sealed).map_err(|_| "sealed key is not 96 hex digits")?;
    Ok(sealed)
}

/// The keyfile text with the secret sealed under `passphrase`.
pub(super) fn render_sealed(
    identity: &Identity,
    passphrase: &Passphrase,
    kdf: KdfParams,
) -> Result<String, &'static str> {
    let mut salt = [0u8; SALT_LEN];
    let mut nonce = [0u8; NONCE_LEN];
    rand::fill(&mut salt[..]);
    rand::fill(&mut nonce[..]);
    render_sealed_with(identity, passphrase, kdf, &salt, &nonce)
}

/// [`render_sealed`] with a given salt and nonce (the test vector in PROTOCOL.md fixes them).
pub(super) fn render_sealed_with(
    identity: &Identity,
    passphrase: &Passphrase,
    kdf: KdfParams,
    salt: &[u8; SALT_LEN],
    nonce: &[u8; NONCE_LEN],
) -> Result<String, &'static str> {
    kdf.check()?;
    let key = kdf.derive(passphrase, salt)?;
    use chacha20poly1305::aead::{Aead, KeyInit, Payload};
    let cipher = chacha20poly1305::ChaCha20Poly1305::new((&*key).into());
    let header = kdf.render();
    let aad = sealing_aad(identity.public(), &header);
    let sealed = cipher
        .encrypt(
            nonce.into(),
            Payload {
                msg: identity.secret().expose(),
                aad: &aad,
            },
        )
        .map_err(|_| "sealing failed")?;
    Ok(format!(
        "# schat identity: keep this file private even so; it is protected by a passphrase\n\
         {PUBLIC_TAG}{}\n\
         {SEALED_TAG}{header} salt={} nonce={} key={}\n",
        identity.public(),
        hex::encode(salt),
        hex::encode(nonce),
        hex::encode(sealed),
    ))
}

impl Sealed {
    /// The secret key, unsealed with `passphrase`: `Ok(None)` when the passphrase is wrong (or
    /// the file was altered: the two look the same, on purpose); `Err` when the KDF's
    /// parameters are unusable.
    pub(super) fn open(
        &self,
        passphrase: &Passphrase,
        public: &PublicKey,
    ) -> Result<Option<Zeroizing<[u8; KEY_LEN]>>, &'static str> {
        let key = self.kdf.derive(passphrase, &self.salt)?;
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let cipher = chacha20poly1305::ChaCha20Poly1305::new((&*key).into());
        let aad = sealing_aad(public, &self.header);
        let Ok(plain) = cipher.decrypt(
            (&self.nonce).into(),
            Payload {
                msg: &self.sealed,
                aad: &aad,
            },
        ) else {
            return Ok(None);
        };
        let plain = Zeroizing::new(plain);
        if plain.len() != KEY_LEN {
            return Ok(None);
        }
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        bytes.copy_from_slice(&plain);
        Ok(Some(bytes))
    }
}
