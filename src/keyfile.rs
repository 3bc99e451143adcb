//! The identity keyfile: a small text file in the style of age's identity files.
//!
//! ```text
//! # schat identity: keep this file private, anyone who reads it can pose as you
//! # public key: 8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a
//! SCHAT-SECRET-KEY-1 <64 lowercase hex digits>
//! ```
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
}

impl KeyfileError {
    fn io(path: &Path, source: io::Error) -> Self {
        KeyfileError::Io {
            path: path.to_owned(),
            source,
        }
    }
}

/// Loads an identity, checking permissions before reading a byte.
pub fn load(path: &Path) -> Result<Identity, KeyfileError> {
    let text = read_protected(path)?;
    parse(path, &text)
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

/// Parses keyfile text. `path` is used only in error messages.
pub fn parse(path: &Path, bytes: &[u8]) -> Result<Identity, KeyfileError> {
    let text = std::str::from_utf8(bytes).map_err(|e| {
        let line = bytes[..e.valid_up_to()]
            .iter()
            .filter(|&&b| b == b'\n')
            .count()
            + 1;
        malformed(path, Some(line), "not UTF-8 text")
    })?;
    let mut public: Option<(usize, PublicKey)> = None;
    let mut secret: Option<SecretKey> = None;
    for (index, line) in text.lines().enumerate() {
        let number = index + 1;
        let line = line.trim_end();
        if let Some(hex) = line.strip_prefix(PUBLIC_TAG) {
            let key = fingerprint::parse(hex)
                .map_err(|_| malformed(path, Some(number), "public key is not 64 hex digits"))?;
            if public.replace((number, key)).is_some() {
                return Err(malformed(path, Some(number), "second public key line"));
            }
        } else if let Some(hex) = line.strip_prefix(SECRET_TAG) {
            let mut bytes = Zeroizing::new([0u8; KEY_LEN]);
            hex::decode_to_slice(hex.trim(), &mut bytes[..])
                .map_err(|_| malformed(path, Some(number), "secret key is not 64 hex digits"))?;
            if secret.replace(SecretKey::from_bytes(bytes)).is_some() {
                return Err(malformed(path, Some(number), "second secret key line"));
            }
        } else if line.is_empty() || line.starts_with('#') {
            continue;
        } else {
            return Err(malformed(
                path,
                Some(number),
                "not a comment and not a secret key line",
            ));
        }
    }
    let secret = secret.ok_or_else(|| malformed(path, None, "no secret key line"))?;
    let identity = Identity::from_secret(secret);
    if let Some((number, key)) = public
        && key != *identity.public()
    {
        return Err(malformed(
            path,
            Some(number),
            "public key does not match the secret key (file damaged?)",
        ));
    }
    Ok(identity)
}

/// The keyfile text for an identity, in a buffer that is wiped when dropped.
fn render(identity: &Identity) -> Zeroizing<String> {
    Zeroizing::new(format!(
        "# schat identity: keep this file private, anyone who reads it can pose as you\n\
         {PUBLIC_TAG}{}\n\
         {SECRET_TAG}{}\n",
        identity.public(),
        Zeroizing::new(hex::encode(identity.secret().expose())).as_str(),
    ))
}

/// Writes `identity` to `path`. Without `overwrite`, an existing file is never replaced, even
/// one that appears between our check and our write.
pub fn write(path: &Path, identity: &Identity, overwrite: bool) -> Result<(), KeyfileError> {
    fsutil::write_private_atomically(path, render(identity).as_bytes(), overwrite).map_err(|e| {
        match e.kind() {
            io::ErrorKind::AlreadyExists => KeyfileError::Exists {
                path: path.to_owned(),
            },
            _ => KeyfileError::io(path, e),
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs::{self, OpenOptions};
    use std::io::Write;
    use std::os::unix::fs::PermissionsExt;

    fn mode_of(path: &Path) -> u32 {
        fs::metadata(path).unwrap().permissions().mode() & 0o777
    }

    #[test]
    fn create_then_load_round_trips() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/identity");
        let id = Identity::generate().unwrap();
        write(&path, &id, false).unwrap();
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
        write(&path, &first, false).unwrap();
        let second = Identity::generate().unwrap();
        assert!(matches!(
            write(&path, &second, false),
            Err(KeyfileError::Exists { .. })
        ));
        assert_eq!(load(&path).unwrap().public(), first.public());
        write(&path, &second, true).unwrap();
        assert_eq!(load(&path).unwrap().public(), second.public());
        assert_eq!(mode_of(&path), 0o600);
        assert_eq!(fs::read_dir(dir.path()).unwrap().count(), 1);
    }

    #[test]
    fn group_or_world_readable_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        write(&path, &Identity::generate().unwrap(), false).unwrap();
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

    #[test]
    fn oversized_file_is_refused() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("identity");
        write(&path, &Identity::generate().unwrap(), false).unwrap();
        let mut f = OpenOptions::new().append(true).open(&path).unwrap();
        f.write_all(&vec![b'#'; 20_000]).unwrap();
        assert!(load(&path).unwrap_err().to_string().contains("too large"));
    }
}
