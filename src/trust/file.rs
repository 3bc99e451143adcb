//! The known_peers file: one entry per line, what each field says, and the changes schat makes
//! to it — everything about the text, nothing about what it means for a connection (that is
//! [`super`]'s: the store, and the decisions).

use super::Verified;
use crate::fingerprint;
use crate::keys::PublicKey;
use std::collections::HashSet;
use std::io;
use std::path::PathBuf;
use thiserror::Error;

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
