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
use thiserror::Error;

/// File name inside the home directory.
pub const FILE_NAME: &str = "known_peers";

const HEADER: &str = "\
# schat known peers: one peer per line, fields separated by spaces:
#   petname  fingerprint  how-verified  when-verified  [admitted]  [address ...]
# how-verified is one of: pinned, safety-number, fingerprint, first-use, invite, code.
# admitted: the peer may join your rooms and pipes; without it, it is only recognised when
# you dial it. Manage with `schat peers` (list, add, admit, revoke, rename, forget, verify)
# or edit by hand.
# known_peers format 2
";

/// The line that says admission is explicit in this file (see the module comment).
const FORMAT_2: &str = "# known_peers format 2";

/// The word that marks an admitted entry (never an address: those have a port).
const ADMITTED: &str = "admitted";

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

/// One known peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Local name chosen by the user.
    pub name: String,
    /// The peer's static public key.
    pub key: PublicKey,
    /// How it was verified.
    pub how: Verified,
    /// When (RFC 3339, UTC).
    pub when: String,
    /// Addresses (host:port as dialled) where this key was seen.
    pub addrs: Vec<String>,
    /// It may join our rooms and pipes (an explicit act of ours let it in).
    pub admitted: bool,
}

impl Entry {
    /// A new entry verified now.
    pub fn new(name: &str, key: PublicKey, how: Verified) -> Self {
        Entry {
            name: name.into(),
            key,
            how,
            when: now(),
            addrs: Vec::new(),
            admitted: false,
        }
    }

    /// The same, admitted to our rooms and pipes.
    pub fn admitted(mut self) -> Self {
        self.admitted = true;
        self
    }

    fn render(&self) -> String {
        let mut line = format!(
            "{} {} {} {}",
            self.name,
            self.key,
            self.how.as_str(),
            self.when
        );
        if self.admitted {
            line.push(' ');
            line.push_str(ADMITTED);
        }
        for a in &self.addrs {
            line.push(' ');
            line.push_str(a);
        }
        line
    }

    fn parse(line: &str) -> Result<Self, &'static str> {
        let mut fields = line.split_whitespace();
        let name = fields.next().ok_or("empty entry")?;
        validate_name(name).map_err(|_| "invalid petname")?;
        let key = fields
            .next()
            .ok_or("missing fingerprint")
            .and_then(|f| fingerprint::parse(f).map_err(|_| "invalid fingerprint"))?;
        let how = fields
            .next()
            .ok_or("missing how-verified")?
            .parse()
            .map_err(|()| "unknown how-verified value")?;
        let when = fields.next().ok_or("missing when-verified")?;
        when.parse::<jiff::Timestamp>()
            .map_err(|_| "invalid when-verified time")?;
        let mut fields = fields.peekable();
        let admitted = fields.next_if(|f| *f == ADMITTED).is_some();
        Ok(Entry {
            name: name.into(),
            key,
            how,
            when: when.into(),
            addrs: fields.map(str::to_owned).collect(),
            admitted,
        })
    }
}

/// The current time, RFC 3339 UTC, to the second.
pub fn now() -> String {
    jiff::Timestamp::now()
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// Why a petname is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum NameError {
    #[error("a petname needs 1 to 32 characters: letters, digits, '.', '_' or '-'")]
    Invalid,
}

/// Checks a petname: no spaces or colons (so it cannot be confused with an address) and at most
/// 32 characters (so it cannot be confused with a 64-digit fingerprint).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    let ok_char = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if name.is_empty() || name.len() > 32 || name.starts_with('-') || !name.chars().all(ok_char) {
        return Err(NameError::Invalid);
    }
    Ok(())
}

#[derive(Debug, Clone)]
enum Line {
    Entry(Entry),
    /// A comment, a blank line, or a line that did not parse (kept as it was).
    Other(String),
}

/// The parsed contents of a known_peers file.
#[derive(Debug, Clone)]
pub struct KnownPeers {
    lines: Vec<Line>,
    /// Lines that did not parse: (line number, reason). Never includes the line's text.
    pub problems: Vec<(usize, &'static str)>,
    /// Read from a file written before admission was explicit: the petnames of the entries
    /// that are recognised only from now on (they have addresses: we dialled them).
    pub migrated: Option<Vec<String>>,
}

/// Errors from changing the store.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum TrustError {
    #[error("known peers file {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("no known peer matches {0:?}")]
    NoMatch(String),
    #[error("the petname {0:?} is already used for another key")]
    NameTaken(String),
    #[error("this key is already known as {0:?}")]
    KeyKnown(String),
    #[error("{0}")]
    BadName(#[from] NameError),
}

impl Default for KnownPeers {
    /// An empty store, starting with the explanatory header.
    fn default() -> Self {
        KnownPeers {
            lines: HEADER.lines().map(|l| Line::Other(l.into())).collect(),
            problems: Vec::new(),
            migrated: None,
        }
    }
}

impl KnownPeers {
    /// Parses file text. Bad lines are kept and listed in `problems`.
    pub fn parse(text: &str) -> Self {
        if text.trim().is_empty() {
            return KnownPeers::default();
        }
        let mut peers = KnownPeers {
            lines: Vec::new(),
            problems: Vec::new(),
            migrated: None,
        };
        let format_2 = text.lines().any(|l| l.trim() == FORMAT_2);
        let mut names = HashSet::new();
        let mut keys = HashSet::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim();
            if trimmed.is_empty() || trimmed.starts_with('#') {
                peers.lines.push(Line::Other(raw.into()));
                continue;
            }
            let parsed = Entry::parse(trimmed).and_then(|e| {
                if !names.insert(e.name.clone()) {
                    Err("petname used twice (this line is ignored)")
                } else if !keys.insert(e.key) {
                    Err("key listed twice (this line is ignored)")
                } else {
                    Ok(e)
                }
            });
            match parsed {
                Ok(mut entry) => {
                    if !format_2 {
                        // Before admission was explicit: an entry without an address was
                        // added by hand, by a knock or by an invite (we never dialled it).
                        entry.admitted = entry.addrs.is_empty();
                        if !entry.admitted {
                            peers
                                .migrated
                                .get_or_insert_with(Vec::new)
                                .push(entry.name.clone());
                        }
                    }
                    peers.lines.push(Line::Entry(entry));
                }
                Err(reason) => {
                    peers.problems.push((i + 1, reason));
                    peers.lines.push(Line::Other(raw.into()));
                }
            }
        }
        if !format_2 {
            // Written back in format 2: the header's explanation, then the rest as it was.
            let old_header = peers
                .lines
                .iter()
                .take_while(|l| matches!(l, Line::Other(t) if t.trim_start().starts_with('#')))
                .count();
            let mut lines: Vec<Line> = HEADER.lines().map(|l| Line::Other(l.into())).collect();
            lines.extend(peers.lines.drain(old_header..));
            peers.lines = lines;
            peers.migrated.get_or_insert_with(Vec::new);
        }
        peers
    }

    /// Whether this key may join our rooms and pipes.
    pub fn is_admitted(&self, key: &PublicKey) -> bool {
        self.by_key(key).is_some_and(|e| e.admitted)
    }

    /// Admits (or stops admitting) the peer `selector` names; its entry.
    pub fn set_admitted(&mut self, selector: &str, admitted: bool) -> Result<Entry, TrustError> {
        let key = self
            .find(selector)
            .map(|e| e.key)
            .ok_or_else(|| TrustError::NoMatch(selector.into()))?;
        let entry = self
            .entries_mut()
            .find(|e| e.key == key)
            .ok_or_else(|| TrustError::NoMatch(selector.into()))?;
        entry.admitted = admitted;
        Ok(entry.clone())
    }

    /// The file text: entries re-rendered, everything else as it was.
    pub fn render(&self) -> String {
        let mut out = String::new();
        for line in &self.lines {
            match line {
                Line::Entry(e) => out.push_str(&e.render()),
                Line::Other(raw) => out.push_str(raw),
            }
            out.push('\n');
        }
        out
    }

    /// All entries, in file order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.lines.iter().filter_map(|l| match l {
            Line::Entry(e) => Some(e),
            Line::Other(_) => None,
        })
    }

    fn entries_mut(&mut self) -> impl Iterator<Item = &mut Entry> {
        self.lines.iter_mut().filter_map(|l| match l {
            Line::Entry(e) => Some(e),
            Line::Other(_) => None,
        })
    }

    /// The entry for a key.
    pub fn by_key(&self, key: &PublicKey) -> Option<&Entry> {
        self.entries().find(|e| e.key == *key)
    }

    /// The entry with a petname.
    pub fn by_name(&self, name: &str) -> Option<&Entry> {
        self.entries().find(|e| e.name == name)
    }

    /// The entry that was seen at an address.
    pub fn by_addr(&self, addr: &str) -> Option<&Entry> {
        self.entries()
            .find(|e| e.addrs.iter().any(|a| a.eq_ignore_ascii_case(addr)))
    }

    /// Finds an entry by petname, fingerprint or address.
    pub fn find(&self, selector: &str) -> Option<&Entry> {
        self.by_name(selector)
            .or_else(|| {
                fingerprint::parse(selector)
                    .ok()
                    .and_then(|k| self.by_key(&k))
            })
            .or_else(|| self.by_addr(selector))
    }

    /// Adds a new peer. Name and key must both be new.
    pub fn add(&mut self, entry: Entry) -> Result<(), TrustError> {
        validate_name(&entry.name)?;
        if let Some(e) = self.by_key(&entry.key) {
            return Err(TrustError::KeyKnown(e.name.clone()));
        }
        if self.by_name(&entry.name).is_some() {
            return Err(TrustError::NameTaken(entry.name));
        }
        let addrs = entry.addrs.clone();
        self.lines.push(Line::Entry(entry));
        if let Some(key) = self.entries().last().map(|e| e.key) {
            for a in addrs {
                self.add_addr(&key, &a);
            }
        }
        Ok(())
    }

    /// Records that `key` was seen at `addr`; an address belongs to one key only. A ticket
    /// (`schat:…`, kept for its iroh address, which changes with each run of the listener)
    /// replaces the key's older ticket rather than piling up beside it.
    pub fn add_addr(&mut self, key: &PublicKey, addr: &str) {
        // (Bytes, not a str slice: a hand-edited address may put a multi-byte character
        // across byte 6.)
        let ticket = |a: &str| {
            a.as_bytes()
                .get(..6)
                .is_some_and(|p| p.eq_ignore_ascii_case(b"schat:"))
                && a.len() > 6
        };
        for e in self.entries_mut() {
            if e.key == *key {
                if ticket(addr) {
                    e.addrs
                        .retain(|a| !ticket(a) || a.eq_ignore_ascii_case(addr));
                }
                if !e.addrs.iter().any(|a| a.eq_ignore_ascii_case(addr)) {
                    e.addrs.push(addr.into());
                }
            } else {
                e.addrs.retain(|a| !a.eq_ignore_ascii_case(addr));
            }
        }
    }

    /// Records that `key` was seen at `addr`, unless the address belongs to another key:
    /// then nothing changes and `false` says so. For what schat notes by itself (a ticket
    /// dialled, a new address of a known key): only the user moves an address to another key
    /// (`schat peers forget ADDR`, `peers add … --addr`).
    pub fn note_addr(&mut self, key: &PublicKey, addr: &str) -> bool {
        if self.by_addr(addr).is_some_and(|owner| owner.key != *key) {
            return false;
        }
        self.add_addr(key, addr);
        true
    }

    /// Marks a key as verified in a (stronger) way, now.
    pub fn set_verified(&mut self, key: &PublicKey, how: Verified) -> Result<(), TrustError> {
        let e = self
            .entries_mut()
            .find(|e| e.key == *key)
            .ok_or_else(|| TrustError::NoMatch(key.to_hex()))?;
        e.how = how;
        e.when = now();
        Ok(())
    }

    /// Renames a peer.
    pub fn rename(&mut self, selector: &str, new: &str) -> Result<(), TrustError> {
        validate_name(new)?;
        let key = self
            .find(selector)
            .map(|e| e.key)
            .ok_or_else(|| TrustError::NoMatch(selector.into()))?;
        if self.by_name(new).is_some_and(|e| e.key != key) {
            return Err(TrustError::NameTaken(new.into()));
        }
        if let Some(e) = self.entries_mut().find(|e| e.key == key) {
            e.name = new.into();
        }
        Ok(())
    }

    /// Forgets by petname or fingerprint (the whole entry) or by address (just that address).
    /// Returns what was done, for the user.
    pub fn forget(&mut self, selector: &str) -> Result<String, TrustError> {
        let by_identity = self.by_name(selector).map(|e| e.key).or_else(|| {
            fingerprint::parse(selector)
                .ok()
                .filter(|k| self.by_key(k).is_some())
        });
        if let Some(key) = by_identity {
            let mut name = String::new();
            self.lines.retain(|l| match l {
                Line::Entry(e) if e.key == key => {
                    name = e.name.clone();
                    false
                }
                _ => true,
            });
            return Ok(format!("forgot {name} ({})", fingerprint::short(&key)));
        }
        if let Some(key) = self.by_addr(selector).map(|e| e.key) {
            let mut name = String::new();
            for e in self.entries_mut() {
                if e.key == key {
                    e.addrs.retain(|a| !a.eq_ignore_ascii_case(selector));
                    name = e.name.clone();
                }
            }
            return Ok(format!(
                "forgot the address {selector} of {name} (the key stays known)"
            ));
        }
        Err(TrustError::NoMatch(selector.into()))
    }

    /// A petname not yet used, based on `base`.
    pub fn free_name(&self, base: &str) -> String {
        if self.by_name(base).is_none() {
            return base.into();
        }
        (2..)
            .map(|n| format!("{base}-{n}"))
            .find(|n| self.by_name(n).is_none())
            .unwrap_or_else(|| base.into())
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
