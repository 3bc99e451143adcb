//! The identity keyfile: a small text file in the style of age's identity files.
//!
//! ```text
//! # schat identity: keep this file private, anyone who reads it can pose as you
//! # public key: 8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a
//! SCHAT-SECRET-KEY-1 <64 lowercase hex digits>
//! ```
//!
//! or, protected by a passphrase (the public key stays readable, so `schat fingerprint` never
//! needs the passphrase):
//!
//! ```text
//! # public key: 8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a
//! SCHAT-ENCRYPTED-KEY-1 argon2id m=131072 t=3 p=1 salt=<32 hex> nonce=<24 hex> key=<96 hex>
//! ```
//!
//! The secret key is sealed with ChaCha20-Poly1305 under a key derived from the passphrase by
//! Argon2id (memory-hard: guessing passphrases costs memory as well as time); the KDF parameters
//! are in the file, and absurd ones are refused before any work, so a hostile file cannot make
//! schat compute for minutes. PROTOCOL.md §8 specifies the format.
//!
//! Written atomically (a 0600 temp file created with `create_new`, then linked or renamed into
//! place) so a crash never leaves half a key; refused when group- or world-accessible, like
//! OpenSSH. Parse errors name a line number and never echo the file's contents.

use crate::fingerprint;
use crate::fsutil;
use crate::keys::{Identity, KEY_LEN, PublicKey, SecretKey};
use std::fs::File;
use std::io::{self, Read};
use std::path::{Path, PathBuf};
use thiserror::Error;
use zeroize::Zeroizing;

/// Marks the line holding the secret key; the `1` is the format version.
pub const SECRET_TAG: &str = "SCHAT-SECRET-KEY-1 ";
/// Marks the line holding the passphrase-sealed secret key.
pub const SEALED_TAG: &str = "SCHAT-ENCRYPTED-KEY-1 ";
/// Marks the comment line holding the public key.
pub const PUBLIC_TAG: &str = "# public key: ";
/// Real keyfiles are ~200 bytes; anything far larger is not one.
const MAX_FILE_LEN: u64 = 16 * 1024;

/// Everything that can be wrong with a keyfile. Messages name the path, never the contents.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum KeyfileError {
    #[error("no identity keyfile at {path} (create one with `schat keygen`)")]
    NotFound { path: PathBuf },
    #[error("identity keyfile {path} already exists (use --force to replace it)")]
    Exists { path: PathBuf },
    #[error(
        "identity keyfile {path} has permissions {mode:04o}, which let other users read it; \
         refusing to use it (fix with: chmod 600 {path})"
    )]
    TooOpen { path: PathBuf, mode: u32 },
    #[error("identity keyfile {path} is not a regular file")]
    NotAFile { path: PathBuf },
    #[error("identity keyfile {path}{}: {reason}", line.map(|l| format!(", line {l}")).unwrap_or_default())]
    Malformed {
        path: PathBuf,
        line: Option<usize>,
        reason: &'static str,
    },
    #[error("identity keyfile {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("wrong passphrase or corrupted keyfile {path}")]
    WrongPassphrase { path: PathBuf },
    #[error(
        "identity keyfile {path} is protected by a passphrase: type it at the prompt, or give \
         it with --passphrase-file FILE or the SCHAT_PASSPHRASE environment variable"
    )]
    NeedsPassphrase { path: PathBuf },
}

impl KeyfileError {
    fn io(path: &Path, source: io::Error) -> Self {
        KeyfileError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Loads an unprotected identity, checking permissions before reading a byte. A protected one
/// is an error ([`KeyfileError::NeedsPassphrase`]): see [`Keyfile`].
pub fn load(path: &Path) -> Result<Identity, KeyfileError> {
    Keyfile::read(path)?.unlock(None)
}

/// Opens and reads the file, refusing it unless only its owner can access it.
fn read_protected(path: &Path) -> Result<Zeroizing<Vec<u8>>, KeyfileError> {
    let file = File::open(path).map_err(|e| match e.kind() {
        io::ErrorKind::NotFound => KeyfileError::NotFound {
            path: path.to_owned(),
        },
        _ => KeyfileError::io(path, e),
    })?;
    // fstat the handle we read from, so the checked file is the read file.
    let meta = file.metadata().map_err(|e| KeyfileError::io(path, e))?;
    if !meta.is_file() {
        return Err(KeyfileError::NotAFile {
            path: path.to_owned(),
        });
    }
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 != 0 {
            return Err(KeyfileError::TooOpen {
                path: path.to_owned(),
                mode,
            });
        }
    }
    let mut bytes = Zeroizing::new(Vec::with_capacity(512));
    file.take(MAX_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| KeyfileError::io(path, e))?;
    if bytes.len() as u64 > MAX_FILE_LEN {
        return Err(malformed(path, None, "file is too large to be a keyfile"));
    }
    Ok(bytes)
}

fn malformed(path: &Path, line: Option<usize>, reason: &'static str) -> KeyfileError {
    KeyfileError::Malformed {
        path: path.to_owned(),
        line,
        reason,
    }
}

/// A parsed keyfile whose secret may still be sealed.
#[derive(Debug)]
pub struct Keyfile {
    path: PathBuf,
    /// The public key from the comment line, and its line number.
    public: Option<(usize, PublicKey)>,
    secret: Secret,
}

#[derive(Debug)]
enum Secret {
    Plain(SecretKey),
    Sealed(Sealed),
}

/// A passphrase-sealed secret key as stored in the file.
#[derive(Debug, Clone)]
struct Sealed {
    /// The KDF fields exactly as written (`argon2id m=… t=… p=…`): authenticated as they are.
    header: String,
    kdf: KdfParams,
    salt: [u8; SALT_LEN],
    nonce: [u8; NONCE_LEN],
    sealed: [u8; KEY_LEN + TAG_LEN],
}

const SALT_LEN: usize = 16;
const NONCE_LEN: usize = 12;
const TAG_LEN: usize = 16;

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
    fn derive(
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
fn sealing_aad(public: &PublicKey, header: &str) -> Vec<u8> {
    let mut aad = b"schat-key-v1".to_vec();
    aad.extend_from_slice(public.as_bytes());
    aad.extend_from_slice(header.as_bytes());
    aad
}

impl Keyfile {
    /// Reads and parses a keyfile (checking its permissions first) without unsealing it.
    pub fn read(path: &Path) -> Result<Self, KeyfileError> {
        let bytes = read_protected(path)?;
        Self::parse(path, &bytes)
    }

    /// Parses keyfile text. `path` is used only in error messages.
    pub fn parse(path: &Path, bytes: &[u8]) -> Result<Self, KeyfileError> {
        let text = std::str::from_utf8(bytes).map_err(|e| {
            let line = bytes[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1;
            malformed(path, Some(line), "not UTF-8 text")
        })?;
        let mut public: Option<(usize, PublicKey)> = None;
        let mut secret: Option<Secret> = None;
        for (index, line) in text.lines().enumerate() {
            let number = index + 1;
            let line = line.trim_end();
            let found = if let Some(hex) = line.strip_prefix(PUBLIC_TAG) {
                let key = fingerprint::parse(hex).map_err(|e| {
                    let reason = match e {
                        fingerprint::FingerprintError::NotCanonical => {
                            "public key is not in canonical form"
                        }
                        _ => "public key is not 64 hex digits",
                    };
                    malformed(path, Some(number), reason)
                })?;
                if public.replace((number, key)).is_some() {
                    return Err(malformed(path, Some(number), "second public key line"));
                }
                None
            } else if let Some(hex) = line.strip_prefix(SECRET_TAG) {
                let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
                hex::decode_to_slice(hex.trim(), &mut bytes[..]).map_err(|_| {
                    malformed(path, Some(number), "secret key is not 64 hex digits")
                })?;
                Some(Secret::Plain(SecretKey::from_bytes(bytes)))
            } else if let Some(fields) = line.strip_prefix(SEALED_TAG) {
                let sealed =
                    parse_sealed(fields).map_err(|reason| malformed(path, Some(number), reason))?;
                Some(Secret::Sealed(sealed))
            } else if line.is_empty() || line.starts_with('#') {
                None
            } else {
                return Err(malformed(
                    path,
                    Some(number),
                    "not a comment and not a secret key line",
                ));
            };
            if let Some(found) = found
                && secret.replace(found).is_some()
            {
                return Err(malformed(path, Some(number), "second secret key line"));
            }
        }
        let secret = secret.ok_or_else(|| malformed(path, None, "no secret key line"))?;
        if matches!(secret, Secret::Sealed(_)) && public.is_none() {
            return Err(malformed(
                path,
                None,
                "a passphrase-protected keyfile needs its public key line",
            ));
        }
        let keyfile = Keyfile {
            path: path.to_owned(),
            public,
            secret,
        };
        if let Secret::Plain(secret) = &keyfile.secret {
            keyfile.check_public(&secret.public_key())?;
        }
        Ok(keyfile)
    }

    fn check_public(&self, derived: &PublicKey) -> Result<(), KeyfileError> {
        match self.public {
            Some((number, key)) if key != *derived => Err(malformed(
                &self.path,
                Some(number),
                "public key does not match the secret key (file damaged?)",
            )),
            _ => Ok(()),
        }
    }

    /// Whether a passphrase is needed to use it.
    pub fn is_protected(&self) -> bool {
        matches!(self.secret, Secret::Sealed(_))
    }

    /// The public key (never needs the passphrase).
    pub fn public_key(&self) -> PublicKey {
        match (&self.secret, self.public) {
            (Secret::Plain(secret), _) => secret.public_key(),
            // `parse` guarantees a sealed file has the public line.
            (Secret::Sealed(_), Some((_, key))) => key,
            (Secret::Sealed(_), None) => PublicKey::from_bytes([0; KEY_LEN]),
        }
    }

    /// The identity: as is for an unprotected file; for a protected one, unsealed with
    /// `passphrase` (`None` is then [`KeyfileError::NeedsPassphrase`]).
    pub fn unlock(&self, passphrase: Option<&Passphrase>) -> Result<Identity, KeyfileError> {
        let sealed = match &self.secret {
            Secret::Plain(secret) => {
                let copy = Zeroizing::new(*secret.expose());
                return Ok(Identity::from_secret(SecretKey::from_bytes(copy)));
            }
            Secret::Sealed(sealed) => sealed,
        };
        let passphrase = passphrase.ok_or_else(|| KeyfileError::NeedsPassphrase {
            path: self.path.clone(),
        })?;
        let public = self.public_key();
        let key = sealed
            .kdf
            .derive(passphrase, &sealed.salt)
            .map_err(|reason| malformed(&self.path, None, reason))?;
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let cipher = chacha20poly1305::ChaCha20Poly1305::new((&*key).into());
        let aad = sealing_aad(&public, &sealed.header);
        let plain = Zeroizing::new(
            cipher
                .decrypt(
                    (&sealed.nonce).into(),
                    Payload {
                        msg: &sealed.sealed,
                        aad: &aad,
                    },
                )
                .map_err(|_| KeyfileError::WrongPassphrase {
                    path: self.path.clone(),
                })?,
        );
        let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
        if plain.len() != KEY_LEN {
            return Err(KeyfileError::WrongPassphrase {
                path: self.path.clone(),
            });
        }
        bytes.copy_from_slice(&plain);
        let identity = Identity::from_secret(SecretKey::from_bytes(bytes));
        self.check_public(identity.public())?;
        Ok(identity)
    }
}

/// Parses `argon2id m=<m> t=<t> p=<p> salt=<hex> nonce=<hex> key=<hex>`: these fields in this
/// order, one space between them, numbers in decimal digits (errors say what, not the value).
/// The KDF header (`argon2id m=… t=… p=…`) is kept as written, for the associated data.
fn parse_sealed(fields: &str) -> Result<Sealed, &'static str> {
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

/// The keyfile text for an identity, in a buffer that is wiped when dropped.
fn render(identity: &Identity) -> Zeroizing<String> {
    const HEADER: &str =
        "# schat identity: keep this file private, anyone who reads it can pose as you\n";
    // The secret's hex goes straight into a fixed buffer, and the text into one allocated at
    // its final size: nothing is reallocated, so no copy of the secret is left behind.
    let mut secret_hex = Zeroizing::new([0u8; 64]);
    if hex::encode_to_slice(identity.secret().expose(), &mut secret_hex[..]).is_err() {
        return Zeroizing::new(String::new());
    }
    let public = identity.public().to_string();
    let len = HEADER.len() + PUBLIC_TAG.len() + public.len() + 1 + SECRET_TAG.len() + 64 + 1;
    let mut text = Zeroizing::new(String::with_capacity(len));
    for part in [HEADER, PUBLIC_TAG, &public, "\n", SECRET_TAG] {
        text.push_str(part);
    }
    // (Hex digits are ASCII.)
    text.push_str(std::str::from_utf8(&secret_hex[..]).unwrap_or_default());
    text.push('\n');
    debug_assert_eq!(text.capacity(), len, "the keyfile text was reallocated");
    text
}

/// The keyfile text with the secret sealed under `passphrase`.
fn render_sealed(
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
fn render_sealed_with(
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

/// How to store the secret key.
#[derive(Debug, Clone, Copy)]
pub enum Protection<'a> {
    /// In the clear (the file's permissions are the only protection).
    None,
    /// Sealed under a passphrase with these KDF costs.
    Passphrase(&'a Passphrase, KdfParams),
}

/// Writes `identity` to `path`. Without `overwrite`, an existing file is never replaced, even
/// one that appears between our check and our write; with it, the old file stays whole until
/// the new one is complete (temp file + rename).
pub fn write(
    path: &Path,
    identity: &Identity,
    overwrite: bool,
    protection: Protection<'_>,
) -> Result<(), KeyfileError> {
    let text = match protection {
        Protection::None => render(identity),
        Protection::Passphrase(passphrase, kdf) => Zeroizing::new(
            render_sealed(identity, passphrase, kdf)
                .map_err(|reason| malformed(path, None, reason))?,
        ),
    };
    fsutil::write_private_atomically(path, text.as_bytes(), overwrite).map_err(|e| match e.kind() {
        io::ErrorKind::AlreadyExists => KeyfileError::Exists {
            path: path.to_owned(),
        },
        _ => KeyfileError::io(path, e),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    /// An unprotected identity from keyfile text.
    fn parse(path: &Path, bytes: &[u8]) -> Result<Identity, KeyfileError> {
        Keyfile::parse(path, bytes)?.unlock(None)
    }

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn create_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/identity");
        let id = Identity::generate().unwrap();
        write(&path, &id, false, Protection::None).unwrap();
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(mode_of(path.parent().unwrap()), 0o700);
        let loaded = load(&path).unwrap();
        assert_eq!(loaded.public(), id.public());
        let text = fs::read_to_string(&path).unwrap();
        assert!(text.contains(&format!("{PUBLIC_TAG}{}", id.public())));
        // No temp file is left behind.
        assert_eq!(fs::read_dir(path.parent().unwrap()).unwrap().count(), 1);
    }

    #[test]
    fn never_overwrites_without_force() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        let first = Identity::generate().unwrap();
        write(&path, &first, false, Protection::None).unwrap();
        let second = Identity::generate().unwrap();
        assert!(matches!(
            write(&path, &second, false, Protection::None),
            Err(KeyfileError::Exists { .. })
        ));
        assert_eq!(load(&path).unwrap().public(), first.public());
        write(&path, &second, true, Protection::None).unwrap();
        assert_eq!(load(&path).unwrap().public(), second.public());
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn group_or_world_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        write(
            &path,
            &Identity::generate().unwrap(),
            false,
            Protection::None,
        )
        .unwrap();
        for mode in [0o644, 0o640, 0o604, 0o660] {
            fs::set_permissions(&path, fs::Permissions::from_mode(mode)).unwrap();
            let err = load(&path).unwrap_err();
            assert!(matches!(err, KeyfileError::TooOpen { mode: m, .. } if m == mode));
            let msg = err.to_string();
            assert!(msg.contains(&format!("{mode:04o}")), "{msg}");
            assert!(msg.contains("chmod 600"), "{msg}");
        }
        fs::set_permissions(&path, fs::Permissions::from_mode(0o400)).unwrap();
        load(&path).unwrap();
    }

    #[test]
    fn missing_file_and_directory_have_clear_errors() {
        let dir = tempfile::tempdir().unwrap();
        let err = load(&dir.path().join("nope")).unwrap_err();
        assert!(matches!(err, KeyfileError::NotFound { .. }));
        assert!(err.to_string().contains("schat keygen"));
        assert!(matches!(
            load(dir.path()).unwrap_err(),
            KeyfileError::NotAFile { .. }
        ));
    }

    fn parse_err(text: &str) -> (Option<usize>, String) {
        match parse(Path::new("k"), text.as_bytes()) {
            Err(KeyfileError::Malformed { line, reason, .. }) => (line, reason.to_string()),
            other => panic!("expected Malformed, got {other:?}"),
        }
    }

    #[test]
    fn corrupt_files_are_reported_by_line_without_contents() {
        let id = Identity::generate().unwrap();
        let good = render(&id);
        let secret_hex = hex::encode(id.secret().expose());

        // Truncated: the secret line lost its last digits.
        let truncated = &good[..good.len() - 5];
        let (line, _) = parse_err(truncated);
        assert_eq!(line, Some(3));
        let msg = parse(Path::new("k"), truncated.as_bytes())
            .unwrap_err()
            .to_string();
        assert!(!msg.contains(&secret_hex[..10]), "{msg}");

        // Cut before the secret line.
        let (line, reason) =
            parse_err(good.lines().take(2).collect::<Vec<_>>().join("\n").as_str());
        assert_eq!((line, reason.as_str()), (None, "no secret key line"));

        // A stray line.
        let (line, _) = parse_err(&format!("{}garbage here\n", good.as_str()));
        assert_eq!(line, Some(4));

        // Public key comment that does not match.
        let other = Identity::generate().unwrap();
        let swapped = good.replace(&id.public().to_hex(), &other.public().to_hex());
        let (line, reason) = parse_err(&swapped);
        assert_eq!(line, Some(2));
        assert!(reason.contains("does not match"));

        // Binary junk.
        let err = parse(Path::new("k"), &[b'#', b'\n', 0xff, 0xfe]).unwrap_err();
        assert!(err.to_string().contains("line 2"), "{err}");

        // Two secrets.
        let (line, _) = parse_err(&format!(
            "{}{}",
            good.as_str(),
            good.lines().nth(2).unwrap()
        ));
        assert_eq!(line, Some(4));
    }

    #[test]
    fn public_comment_is_optional_and_crlf_is_accepted() {
        let id = Identity::generate().unwrap();
        let text = format!("{SECRET_TAG}{}\r\n", hex::encode(id.secret().expose()));
        assert_eq!(
            parse(Path::new("k"), text.as_bytes()).unwrap().public(),
            id.public()
        );
    }

    fn quick_kdf() -> KdfParams {
        KdfParams {
            memory_kib: KdfParams::MIN_MEMORY_KIB,
            passes: 1,
            lanes: 1,
        }
    }

    fn pass(text: &str) -> Passphrase {
        Passphrase::new(Zeroizing::new(text.to_string()))
    }

    #[test]
    fn sealed_keyfile_round_trips_and_hides_the_secret() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        let id = Identity::generate().unwrap();
        let secret = pass("correct horse battery staple");
        write(
            &path,
            &id,
            false,
            Protection::Passphrase(&secret, quick_kdf()),
        )
        .unwrap();
        let text = fs::read_to_string(&path).unwrap();
        assert!(!text.contains(&hex::encode(id.secret().expose())));
        assert!(text.contains(SEALED_TAG));
        let keyfile = Keyfile::read(&path).unwrap();
        assert!(keyfile.is_protected());
        // The public key needs no passphrase.
        assert_eq!(keyfile.public_key(), *id.public());
        assert!(matches!(
            keyfile.unlock(None),
            Err(KeyfileError::NeedsPassphrase { .. })
        ));
        assert!(matches!(
            keyfile.unlock(Some(&pass("wrong"))),
            Err(KeyfileError::WrongPassphrase { .. })
        ));
        let unlocked = keyfile.unlock(Some(&secret)).unwrap();
        assert_eq!(unlocked.public(), id.public());
        assert!(matches!(
            load(&path),
            Err(KeyfileError::NeedsPassphrase { .. })
        ));
    }

    #[test]
    fn swapping_the_public_key_line_of_a_sealed_file_is_detected() {
        let id = Identity::generate().unwrap();
        let other = Identity::generate().unwrap();
        let secret = pass("pw");
        let text = render_sealed(&id, &secret, quick_kdf()).unwrap();
        let swapped = text.replace(&id.public().to_hex(), &other.public().to_hex());
        let keyfile = Keyfile::parse(Path::new("k"), swapped.as_bytes()).unwrap();
        // `fingerprint` would show the swapped key, but nothing can use it.
        assert!(matches!(
            keyfile.unlock(Some(&secret)),
            Err(KeyfileError::WrongPassphrase { .. })
        ));
    }

    #[test]
    fn absurd_kdf_costs_are_refused_before_any_work() {
        let id = Identity::generate().unwrap();
        let text = render_sealed(&id, &pass("pw"), quick_kdf()).unwrap();
        let m = format!("m={}", KdfParams::MIN_MEMORY_KIB);
        for (bad, why) in [
            ("m=4194304 t=1 p=1", "unreasonably high"),
            ("m=8192 t=1000000 p=1", "unreasonably high"),
            ("m=1048576 t=10 p=1", "unreasonably high"),
            ("m=8192 t=1 p=255", "unreasonably high"),
            ("m=1024 t=1 p=1", "too weak"),
            ("m=8192 t=0 p=1", "at least 1"),
            ("m=lots t=1 p=1", "not a number"),
        ] {
            let hostile = text.replace(&format!("{m} t=1 p=1"), bad);
            let started = std::time::Instant::now();
            let (line, reason) = match Keyfile::parse(Path::new("k"), hostile.as_bytes()) {
                Err(KeyfileError::Malformed { line, reason, .. }) => (line, reason),
                other => panic!("{bad}: expected a refusal, got {other:?}"),
            };
            assert!(started.elapsed() < std::time::Duration::from_millis(100));
            assert_eq!(line, Some(3), "{bad}");
            assert!(reason.contains(why), "{bad}: {reason}");
        }
    }

    #[test]
    fn sealed_files_without_a_public_line_or_with_bad_fields_are_refused() {
        let id = Identity::generate().unwrap();
        let text = render_sealed(&id, &pass("pw"), quick_kdf()).unwrap();
        let no_public: String = text
            .lines()
            .filter(|l| !l.starts_with(PUBLIC_TAG))
            .map(|l| format!("{l}\n"))
            .collect();
        assert!(Keyfile::parse(Path::new("k"), no_public.as_bytes()).is_err());
        let cut = text.replace("nonce=", "nonse=");
        assert!(Keyfile::parse(Path::new("k"), cut.as_bytes()).is_err());
        let other_kdf = text.replace("argon2id", "scrypt");
        assert!(Keyfile::parse(Path::new("k"), other_kdf.as_bytes()).is_err());
    }

    /// Seals `id` as PROTOCOL.md §8 says, with `header` (the KDF fields as they will appear
    /// in the file) as the last part of the associated data. Independent of `render_sealed`.
    fn seal_as_spec(
        id: &Identity,
        passphrase: &Passphrase,
        kdf: KdfParams,
        header: &str,
    ) -> String {
        use chacha20poly1305::aead::{Aead, KeyInit, Payload};
        let (salt, nonce) = ([7u8; SALT_LEN], [9u8; NONCE_LEN]);
        let key = kdf.derive(passphrase, &salt).unwrap();
        let cipher = chacha20poly1305::ChaCha20Poly1305::new((&*key).into());
        let mut aad = b"schat-key-v1".to_vec();
        aad.extend_from_slice(id.public().as_bytes());
        aad.extend_from_slice(header.as_bytes());
        let sealed = cipher
            .encrypt(
                (&nonce).into(),
                Payload {
                    msg: id.secret().expose(),
                    aad: &aad,
                },
            )
            .unwrap();
        format!(
            "{PUBLIC_TAG}{}\n{SEALED_TAG}{header} salt={} nonce={} key={}\n",
            id.public(),
            hex::encode(salt),
            hex::encode(nonce),
            hex::encode(sealed)
        )
    }

    #[test]
    fn the_kdf_header_is_authenticated_as_written() {
        let id = Identity::generate().unwrap();
        let secret = pass("pw");
        let unlock =
            |text: &str| Keyfile::parse(Path::new("k"), text.as_bytes())?.unlock(Some(&secret));
        // Written with a leading zero and sealed that way: the header as written is the AAD.
        let zero = seal_as_spec(&id, &secret, quick_kdf(), "argon2id m=08192 t=1 p=1");
        assert_eq!(unlock(&zero).unwrap().public(), id.public());
        // The same parameters respelled after sealing: the header no longer authenticates.
        let written = render_sealed(&id, &secret, quick_kdf()).unwrap();
        assert_eq!(unlock(&written).unwrap().public(), id.public());
        let respelled = written.replace("m=8192 t=1 p=1", "m=08192 t=1 p=01");
        assert!(matches!(
            unlock(&respelled),
            Err(KeyfileError::WrongPassphrase { .. })
        ));
    }

    #[test]
    fn sealed_fields_must_come_in_order_with_single_spaces() {
        let id = Identity::generate().unwrap();
        let secret = pass("pw");
        let text = render_sealed(&id, &secret, quick_kdf()).unwrap();
        for edited in [
            text.replace("m=8192 t=1 p=1", "t=1 m=8192 p=1"),
            text.replace("m=8192 t=1", "m=8192  t=1"),
            text.replace("argon2id m=", "argon2id\tm="),
            text.replace(" salt=", " nonce=000000000000000000000000 salt="),
            text.replace("p=1 salt", "p=+1 salt"),
        ] {
            match Keyfile::parse(Path::new("k"), edited.as_bytes()) {
                Err(KeyfileError::Malformed { line, .. }) => assert_eq!(line, Some(3), "{edited}"),
                other => panic!("{edited}: expected Malformed, got {other:?}"),
            }
        }
    }

    /// The test vector in PROTOCOL.md §8: RFC 7748's first secret key, sealed with a fixed salt
    /// and nonce.
    #[test]
    fn the_protocol_test_vector() {
        let vector = include_str!("../tests/data/keyfile-vector.txt");
        let protocol = include_str!("../PROTOCOL.md");
        for line in vector.lines() {
            assert!(protocol.contains(line), "PROTOCOL.md must show {line}");
        }
        let passphrase = pass("correct horse battery staple");
        let keyfile = Keyfile::parse(Path::new("vector"), vector.as_bytes()).unwrap();
        let id = keyfile.unlock(Some(&passphrase)).unwrap();
        assert_eq!(
            hex::encode(id.secret().expose()),
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a"
        );
        assert_eq!(
            id.public().to_hex(),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        // Writing is deterministic given the salt and nonce.
        let salt: [u8; SALT_LEN] = core::array::from_fn(|i| i as u8);
        let nonce: [u8; NONCE_LEN] = core::array::from_fn(|i| i as u8);
        assert_eq!(
            render_sealed_with(&id, &passphrase, quick_kdf(), &salt, &nonce).unwrap(),
            vector
        );
        // The associated data, in the three parts PROTOCOL.md lists.
        let Secret::Sealed(sealed) = &keyfile.secret else {
            panic!("the vector is sealed")
        };
        let parts = [
            "73636861742d6b65792d7631",
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a",
            "6172676f6e326964206d3d3831393220743d3120703d31",
        ];
        for part in parts {
            assert!(protocol.contains(part), "PROTOCOL.md must show {part}");
        }
        assert_eq!(
            hex::encode(sealing_aad(&keyfile.public_key(), &sealed.header)),
            parts.concat()
        );
    }

    #[test]
    fn passphrase_debug_is_redacted() {
        assert_eq!(format!("{:?}", pass("hunter2")), "Passphrase(<redacted>)");
    }

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        write(
            &path,
            &Identity::generate().unwrap(),
            false,
            Protection::None,
        )
        .unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&vec![b'#'; 20_000]).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("too large"));
    }
}
