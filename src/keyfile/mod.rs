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

mod seal;
pub use seal::{KdfParams, Passphrase};
use seal::{Sealed, parse_sealed, render_sealed};

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
        let bytes = sealed
            .open(passphrase, &public)
            .map_err(|reason| malformed(&self.path, None, reason))?
            .ok_or_else(|| KeyfileError::WrongPassphrase {
                path: self.path.clone(),
            })?;
        let identity = Identity::from_secret(SecretKey::from_bytes(bytes));
        self.check_public(identity.public())?;
        Ok(identity)
    }
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
mod tests;
