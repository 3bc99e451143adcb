//! Known peers: which keys we have met, under what local name (petname), at which addresses,
//! and how we came to trust them. Like OpenSSH's known_hosts, but keyed by identity: an address
//! is only where a peer was seen.
//!
//! The file (`known_peers` in the home directory) is text a person can read and edit:
//!
//! ```text
//! # petname  fingerprint  how-verified  when-verified  [admitted]  [address ...]
//! alice 8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a safety-number 2026-11-28T23:50:00Z admitted 192.168.1.20:12345
//! ```
//!
//! Recognising a key is not letting it in (as OpenSSH keeps `known_hosts` apart from
//! `authorized_keys`): an entry marked `admitted` may join this home's rooms and pipes
//! (`listen`, which admits known peers by default); the others are only recognised when we dial
//! them. Admission is always an explicit act: `peers add`, `peers admit`, a knock answered
//! `y NAME`, an invite redeemed. Files written before this (no `# known_peers format 2` line)
//! are read with the entries that have no address admitted — those were added by hand, by a
//! knock or by an invite; an entry with an address was one we dialled — and rewritten so.
//!
//! Every change is a locked read-modify-write that replaces the file atomically, so two schat
//! processes writing at once lose nothing. A line that does not parse is reported by number,
//! kept verbatim when the file is rewritten, and never costs the other entries.

use crate::fingerprint;
use crate::fsutil;
use crate::keys::PublicKey;
use std::collections::HashSet;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::str::FromStr;

mod file;
pub use file::{Entry, KnownPeers, NameError, TrustError, now, validate_name};

/// File name inside the home directory.
pub const FILE_NAME: &str = "known_peers";

/// How we came to trust a key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verified {
    /// It matched a `--peer` pin.
    Pinned,
    /// Both people compared the safety number.
    SafetyNumber,
    /// The fingerprint was received out of band and pasted or added.
    Fingerprint,
    /// Accepted on first contact without proof (trust on first use).
    FirstUse,
    /// An invite ticket: the dialer had the inviter's key from it, the inviter saw the
    /// ticket's secret proven inside the session.
    Invite,
    /// A spoken code: both sides proved it in a PAKE bound to the session.
    Code,
}

impl Verified {
    /// The word used in the file.
    pub fn as_str(self) -> &'static str {
        match self {
            Verified::Pinned => "pinned",
            Verified::SafetyNumber => "safety-number",
            Verified::Fingerprint => "fingerprint",
            Verified::FirstUse => "first-use",
            Verified::Invite => "invite",
            Verified::Code => "code",
        }
    }

    /// A phrase for people.
    pub fn describe(self) -> &'static str {
        match self {
            Verified::Pinned => "matched a pinned fingerprint",
            Verified::SafetyNumber => "safety number compared",
            Verified::Fingerprint => "fingerprint received out of band",
            Verified::FirstUse => "trusted on first use, not verified",
            Verified::Invite => "verified by invite",
            Verified::Code => "verified by spoken code",
        }
    }
}

impl FromStr for Verified {
    type Err = ();
    fn from_str(s: &str) -> Result<Self, ()> {
        Ok(match s {
            "pinned" => Verified::Pinned,
            "safety-number" => Verified::SafetyNumber,
            "fingerprint" => Verified::Fingerprint,
            "first-use" => Verified::FirstUse,
            "invite" => Verified::Invite,
            "code" => Verified::Code,
            _ => return Err(()),
        })
    }
}

/// The known_peers file of a home directory.
#[derive(Debug, Clone)]
pub struct Store {
    path: PathBuf,
}

impl Store {
    /// The store in `home`.
    pub fn in_home(home: &Path) -> Self {
        Store {
            path: home.join(FILE_NAME),
        }
    }

    /// Where the file is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: io::Error) -> TrustError {
        TrustError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Reads the file (a missing file is an empty store).
    pub fn load(&self) -> Result<KnownPeers, TrustError> {
        match std::fs::read_to_string(&self.path) {
            Ok(text) => Ok(KnownPeers::parse(&text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(KnownPeers::default()),
            Err(e) => Err(self.io(e)),
        }
    }

    /// Locked read-modify-write: `change` edits the current contents; if it succeeds the file
    /// is replaced atomically. Concurrent updates from other processes wait for the lock, at
    /// most [`LOCK_PATIENCE`]. It waits on the disk: async code calls
    /// [`Store::update_off_runtime`] instead.
    pub fn update<T>(
        &self,
        change: impl FnOnce(&mut KnownPeers) -> Result<T, TrustError>,
    ) -> Result<T, TrustError> {
        let lock_path = self.path.with_file_name(format!(".{FILE_NAME}.lock"));
        let _lock =
            fsutil::lock_exclusive_within(&lock_path, LOCK_PATIENCE).map_err(|e| self.io(e))?;
        let mut peers = self.load()?;
        let result = change(&mut peers)?;
        fsutil::write_private_atomically(&self.path, peers.render().as_bytes(), true)
            .map_err(|e| self.io(e))?;
        Ok(result)
    }
}

impl Store {
    /// [`Store::update`] on a blocking thread: a slow disk, a network-mounted home or another
    /// schat holding the lock never stalls the async runtime (a room's members, keepalives and
    /// accept loop go on meanwhile).
    pub async fn update_off_runtime<T: Send + 'static>(
        &self,
        change: impl FnOnce(&mut KnownPeers) -> Result<T, TrustError> + Send + 'static,
    ) -> Result<T, TrustError> {
        let store = self.clone();
        tokio::task::spawn_blocking(move || store.update(change))
            .await
            .map_err(|e| self.io(io::Error::other(e.to_string())))?
    }
}

/// How long a change of a home's files waits for another process's lock before it gives up
/// with an error that says so.
pub const LOCK_PATIENCE: std::time::Duration = std::time::Duration::from_secs(10);

/// Which dialers a listener admits.
#[derive(Debug, Clone, Default)]
pub enum Allow {
    /// Everyone who completes the handshake.
    #[default]
    Anyone,
    /// Only keys in known_peers.
    Known,
    /// Only these keys (from an allowlist file).
    Keys(HashSet<PublicKey>),
}

impl fmt::Display for Allow {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Allow::Anyone => f.write_str("anyone who completes the handshake"),
            Allow::Known => f.write_str("known peers only"),
            Allow::Keys(k) => write!(f, "{} allowed key(s) only", k.len()),
        }
    }
}

/// Parses an allowlist: one fingerprint per line, `#` starts a comment.
pub fn parse_allow_list(text: &str) -> Result<HashSet<PublicKey>, String> {
    let mut keys = HashSet::new();
    for (i, line) in text.lines().enumerate() {
        let content = line.split('#').next().unwrap_or("").trim();
        if content.is_empty() {
            continue;
        }
        let key = fingerprint::parse(content)
            .map_err(|e| format!("line {}: not a fingerprint ({e})", i + 1))?;
        keys.insert(key);
    }
    Ok(keys)
}

/// What known_peers says about a key presented at an address we dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// The key is known (at this address, or elsewhere: `new_address` says which).
    Known { entry: Entry, new_address: bool },
    /// This address belongs to another key: possible man in the middle.
    Changed { entry: Entry },
    /// Never seen.
    Unknown,
}

/// Looks up a dialled peer: by address first (a different key there is an alarm), then by key.
pub fn check_dialled(peers: &KnownPeers, addr: &str, key: &PublicKey) -> Verdict {
    if let Some(entry) = peers.by_addr(addr) {
        if entry.key == *key {
            return Verdict::Known {
                entry: entry.clone(),
                new_address: false,
            };
        }
        return Verdict::Changed {
            entry: entry.clone(),
        };
    }
    match peers.by_key(key) {
        Some(entry) => Verdict::Known {
            entry: entry.clone(),
            new_address: true,
        },
        None => Verdict::Unknown,
    }
}

#[cfg(test)]
mod tests;
