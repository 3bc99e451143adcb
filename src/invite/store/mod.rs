//! The inviter's pending invites: a file in its home (`invites`, 0600, replaced atomically
//! under a lock, like known_peers), so that a `schat listen` already running honours an
//! invite made after it started, and two dialers racing for a one-use invite cannot both win.
//!
//! ```text
//! # id  secret-hash  expires  uses-left  state  petname
//! 3f2a9c1b 5d41…(64 hex) 1767225600 1 open bob
//! ```
//!
//! Only a hash of each secret is kept: a copy of the file cannot be used to redeem an invite.
//! Used and revoked invites stay (as `used`, `revoked`) until a week after they expire, so
//! that whoever presents them is told what happened rather than "unknown".

use super::ticket::{SECRET_LEN, id_of, secret_hash};
use crate::fsutil;
use std::io;
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The file's name in a home directory.
pub const FILE_NAME: &str = "invites";

/// How long a used, revoked or expired invite is remembered after it expires.
const KEEP_AFTER: u64 = 7 * 24 * 3600;

/// An invite's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    /// It can be redeemed (while uses are left and it has not expired).
    Open,
    /// Its uses are spent.
    Used,
    /// Its inviter revoked it.
    Revoked,
    /// A spoken code, after too many wrong tries.
    Burned,
}

impl State {
    fn as_str(self) -> &'static str {
        match self {
            State::Open => "open",
            State::Used => "used",
            State::Revoked => "revoked",
            State::Burned => "burned",
        }
    }

    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "open" => State::Open,
            "used" => State::Used,
            "revoked" => State::Revoked,
            "burned" => State::Burned,
            _ => return None,
        })
    }
}

/// One invite as the inviter keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// 8 hex digits naming it.
    pub id: String,
    /// What the dialer must know: a ticket's secret (kept as its hash), or a spoken code.
    pub secret: Secret,
    /// Unix seconds after which it is refused.
    pub expires: u64,
    /// Redemptions left.
    pub uses: u32,
    pub state: State,
    /// The petname the inviter gives whoever redeems it (empty: one is made up).
    pub petname: String,
}

/// What redeems an invite. `Debug` shows no code words.
#[derive(Clone, PartialEq, Eq)]
pub enum Secret {
    /// A ticket's: only its hash is kept.
    Hash([u8; 32]),
    /// A spoken code's words (the inviter needs them to run the PAKE; a code lives for
    /// minutes to hours and is burned after [`MAX_CODE_FAILURES`] wrong tries), and the
    /// wrong tries so far.
    Code {
        words: Zeroizing<String>,
        failures: u32,
    },
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Secret::Hash(_) => f.write_str("Hash(..)"),
            Secret::Code { failures, .. } => {
                write!(f, "Code {{ words: (redacted), failures: {failures} }}")
            }
        }
    }
}

/// Wrong tries after which a spoken code is burned.
pub const MAX_CODE_FAILURES: u32 = 3;

impl Pending {
    /// An open invite for `secret`.
    pub fn new(secret: &[u8; SECRET_LEN], expires: u64, uses: u32, petname: &str) -> Self {
        Pending {
            id: id_of(secret),
            secret: Secret::Hash(secret_hash(secret)),
            expires,
            uses,
            state: State::Open,
            petname: petname.to_string(),
        }
    }

    /// Its line in the file, in a buffer wiped when dropped (a code's words are in it).
    fn render(&self) -> Zeroizing<String> {
        let failures;
        let hash;
        let secret: [&str; 4] = match &self.secret {
            Secret::Hash(h) => {
                hash = hex::encode(h);
                [&hash, "", "", ""]
            }
            Secret::Code { words, failures: f } => {
                failures = f.to_string();
                ["code=", words.as_str(), ":", &failures]
            }
        };
        let (expires, uses) = (self.expires.to_string(), self.uses.to_string());
        let petname = if self.petname.is_empty() {
            "-"
        } else {
            &self.petname
        };
        let mut parts = vec![self.id.as_str(), " "];
        parts.extend(secret);
        parts.extend([
            " ",
            &expires,
            " ",
            &uses,
            " ",
            self.state.as_str(),
            " ",
            petname,
        ]);
        // One allocation at the final size: no copy of the words left behind.
        let mut line = Zeroizing::new(String::with_capacity(parts.iter().map(|p| p.len()).sum()));
        for part in parts {
            line.push_str(part);
        }
        line
    }

    fn parse(line: &str) -> Option<Self> {
        let f: Vec<&str> = line.split_whitespace().collect();
        let [id, hash, expires, uses, state, petname] = f[..] else {
            return None;
        };
        let secret = match hash.strip_prefix("code=") {
            Some(code) => {
                let (words, failures) = code.rsplit_once(':')?;
                Secret::Code {
                    words: Zeroizing::new(words.to_string()),
                    failures: failures.parse().ok()?,
                }
            }
            None => {
                let mut h = [0u8; 32];
                hex::decode_to_slice(hash, &mut h).ok()?;
                Secret::Hash(h)
            }
        };
        Some(Pending {
            id: id.to_string(),
            secret,
            expires: expires.parse().ok()?,
            uses: uses.parse().ok()?,
            state: State::parse(state)?,
            petname: if petname == "-" {
                String::new()
            } else {
                petname.to_string()
            },
        })
    }
}

/// Why an invite was not honoured: one clear line for both sides.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("invite {0} was already used")]
    Used(String),
    #[error("invite {0} was revoked")]
    Revoked(String),
    #[error("invite {0} has expired")]
    Expired(String),
    #[error("this invite is not known here (not made here, or long expired)")]
    Unknown,
    #[error("code {0} was burned after {MAX_CODE_FAILURES} wrong tries: ask for a new one")]
    Burned(String),
    #[error("{left} {} left", if *.left == 1 { "try" } else { "tries" })]
    WrongCode { left: u32 },
    #[error("the invites file could not be read or written: {0}")]
    Store(String),
}

/// What a redeemed invite grants.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Redeemed {
    pub id: String,
    /// The petname for the newcomer (empty: make one up).
    pub petname: String,
}

/// The invites file of a home.
#[derive(Debug, Clone)]
pub struct Invites {
    path: PathBuf,
}

/// Whether a line of the invites file holds an entry (not a comment, not blank).
fn is_entry(line: &str) -> bool {
    let line = line.trim_start();
    !line.is_empty() && !line.starts_with('#')
}

impl Invites {
    /// The file in `home`.
    pub fn in_home(home: &Path) -> Self {
        Invites {
            path: home.join(FILE_NAME),
        }
    }

    /// Where it is.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Every invite on file (a missing file: none). Lines that do not parse are skipped here
    /// (and kept in the file: see [`Invites::unreadable`]).
    pub fn load(&self) -> io::Result<Vec<Pending>> {
        Ok(self.read()?.0)
    }

    /// Lines of the file this version cannot read (a typo in a hand edit, a state word from
    /// a newer schat): by line number. They are kept as they are when the file is rewritten.
    pub fn unreadable(&self) -> io::Result<Vec<usize>> {
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => Zeroizing::new(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        };
        Ok(text
            .lines()
            .enumerate()
            .filter(|(_, l)| is_entry(l) && Pending::parse(l).is_none())
            .map(|(i, _)| i + 1)
            .collect())
    }

    /// The invites on file, and the lines that are not invites this version can read.
    fn read(&self) -> io::Result<(Vec<Pending>, Vec<String>)> {
        // (A code's words are in the text: wiped when dropped.)
        let text = match std::fs::read_to_string(&self.path) {
            Ok(text) => Zeroizing::new(text),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Default::default()),
            Err(e) => return Err(e),
        };
        let (mut all, mut kept) = (Vec::new(), Vec::new());
        for line in text.lines().filter(|l| is_entry(l)) {
            match Pending::parse(line) {
                Some(p) => all.push(p),
                None => kept.push(line.to_string()),
            }
        }
        Ok((all, kept))
    }

    /// Locked read-modify-write; forgets what expired over a week ago. Lines it cannot read
    /// are written back as they were. Waits at most [`crate::trust::LOCK_PATIENCE`] for
    /// another process's lock; call it off the async runtime.
    fn update<T>(&self, now: u64, change: impl FnOnce(&mut Vec<Pending>) -> T) -> io::Result<T> {
        let lock = self.path.with_file_name(format!(".{FILE_NAME}.lock"));
        let _lock = fsutil::lock_exclusive_within(&lock, crate::trust::LOCK_PATIENCE)?;
        let (mut all, kept) = self.read()?;
        let result = change(&mut all);
        all.retain(|p| p.expires.saturating_add(KEEP_AFTER) > now);
        // A code that can no longer be used keeps no words.
        for p in all.iter_mut() {
            if let Secret::Code { words, .. } = &mut p.secret
                && (p.state != State::Open || p.expires <= now)
            {
                zeroize::Zeroize::zeroize(words);
            }
        }
        const HEADER: &str = "# schat invites: made by `schat invite`, redeemed by `schat listen` (edit with\n\
             # `schat invite --list` / `--revoke ID`). Tickets are kept as hashes; a spoken\n\
             # code's words are kept until it is used, burned or revoked (keep this file private).\n\
             # id secret-hash expires uses-left state petname\n";
        const KEPT: &str = "# lines this schat cannot read, kept as they were:\n";
        let lines: Vec<Zeroizing<String>> = all.iter().map(Pending::render).collect();
        let kept_len = match kept.is_empty() {
            true => 0,
            false => KEPT.len() + kept.iter().map(|l| l.len() + 1).sum::<usize>(),
        };
        let len = HEADER.len() + lines.iter().map(|l| l.len() + 1).sum::<usize>() + kept_len;
        // One allocation at the final size: no copy of a code's words left behind.
        let mut text = Zeroizing::new(String::with_capacity(len));
        text.push_str(HEADER);
        for line in &lines {
            text.push_str(line);
            text.push('\n');
        }
        if !kept.is_empty() {
            text.push_str(KEPT);
            for line in &kept {
                text.push_str(line);
                text.push('\n');
            }
        }
        fsutil::write_private_atomically(&self.path, text.as_bytes(), true)?;
        Ok(result)
    }

    /// Files a new invite.
    pub fn add(&self, pending: Pending, now: u64) -> io::Result<()> {
        self.update(now, |all| all.push(pending))
    }

    /// Revokes the open invite `id`; `false` if there is none by that id.
    pub fn revoke(&self, id: &str, now: u64) -> io::Result<bool> {
        self.update(now, |all| {
            let mut found = false;
            for p in all.iter_mut().filter(|p| p.id.eq_ignore_ascii_case(id)) {
                if p.state == State::Open {
                    p.state = State::Revoked;
                    found = true;
                }
            }
            found
        })
    }

    /// Redeems the invite whose secret is `secret`, at `now`: one use, atomically.
    pub fn redeem(&self, secret: &[u8; SECRET_LEN], now: u64) -> Result<Redeemed, Refusal> {
        let hash = secret_hash(secret);
        // Nothing to change for a secret that matches nothing: no lock, no write (a stranger
        // sending random INVITEs costs a read).
        let on_file = self.load().map_err(|e| Refusal::Store(e.to_string()))?;
        if !on_file.iter().any(
            |p| matches!(&p.secret, Secret::Hash(h) if crate::keys::constant_time_eq(h, &hash)),
        ) {
            return Err(Refusal::Unknown);
        }
        let outcome = self.update(now, |all| {
            // Every entry is compared, in constant time, so timing says nothing of which.
            let mut hit = None;
            for (i, p) in all.iter().enumerate() {
                if let Secret::Hash(stored) = &p.secret
                    && crate::keys::constant_time_eq(stored, &hash)
                {
                    hit = Some(i);
                }
            }
            spend(&mut all[hit.ok_or(Refusal::Unknown)?], now)
        });
        outcome.map_err(|e| Refusal::Store(e.to_string()))?
    }
}

impl Invites {
    /// Files a spoken-code invite under a fresh nameplate (100–999, not used by another
    /// open code) and returns the nameplate.
    pub fn add_code(
        &self,
        words: &str,
        expires: u64,
        uses: u32,
        petname: &str,
        now: u64,
    ) -> io::Result<u16> {
        self.update(now, |all| {
            // A nameplate names one code for as long as any record of it is kept.
            let taken: Vec<&str> = all.iter().map(|p| p.id.as_str()).collect();
            let free: Vec<u16> = (100..1000)
                .filter(|n| !taken.contains(&n.to_string().as_str()))
                .collect();
            if free.is_empty() {
                return Err(io::Error::other(
                    "all 900 code numbers are in use: revoke some codes, or wait for them to expire",
                ));
            }
            let nameplate = free[usize::from(rand::random::<u16>()) % free.len()];
            all.push(Pending {
                id: nameplate.to_string(),
                secret: Secret::Code {
                    words: Zeroizing::new(words.to_string()),
                    failures: 0,
                },
                expires,
                uses,
                state: State::Open,
                petname: petname.to_string(),
            });
            Ok(nameplate)
        })?
    }

    /// The words of the open code filed under `nameplate`, to run the PAKE with, and how many
    /// wrong tries it has had.
    pub fn code(&self, nameplate: u16, now: u64) -> Result<(Zeroizing<String>, u32), Refusal> {
        let all = self.load().map_err(|e| Refusal::Store(e.to_string()))?;
        let p = all
            .iter()
            .find(|p| p.id == nameplate.to_string() && matches!(p.secret, Secret::Code { .. }))
            .ok_or(Refusal::Unknown)?;
        check_open(p, now)?;
        match &p.secret {
            Secret::Code { words, failures } => Ok((words.clone(), *failures)),
            Secret::Hash(_) => Err(Refusal::Unknown),
        }
    }

    /// The outcome of a PAKE run with the code under `nameplate`: a success spends a use
    /// (atomically: two dialers racing for one use, one wins); a failure counts, and the
    /// third burns the code.
    pub fn code_outcome(
        &self,
        nameplate: u16,
        proven: bool,
        now: u64,
    ) -> Result<Redeemed, Refusal> {
        let id = nameplate.to_string();
        let outcome = self.update(now, |all| {
            let p = all
                .iter_mut()
                .find(|p| p.id == id && matches!(p.secret, Secret::Code { .. }))
                .ok_or(Refusal::Unknown)?;
            if proven {
                return spend(p, now);
            }
            check_open(p, now)?;
            let Secret::Code { failures, .. } = &mut p.secret else {
                return Err(Refusal::Unknown);
            };
            *failures += 1;
            let left = MAX_CODE_FAILURES.saturating_sub(*failures);
            if left == 0 {
                p.state = State::Burned;
                return Err(Refusal::Burned(p.id.clone()));
            }
            Err(Refusal::WrongCode { left })
        });
        outcome.map_err(|e| Refusal::Store(e.to_string()))?
    }
}

/// One use of `p`, if it is open and unexpired.
fn spend(p: &mut Pending, now: u64) -> Result<Redeemed, Refusal> {
    check_open(p, now)?;
    p.uses = p.uses.saturating_sub(1);
    if p.uses == 0 {
        p.state = State::Used;
    }
    Ok(Redeemed {
        id: p.id.clone(),
        petname: p.petname.clone(),
    })
}

fn check_open(p: &Pending, now: u64) -> Result<(), Refusal> {
    match p.state {
        State::Used => Err(Refusal::Used(p.id.clone())),
        State::Revoked => Err(Refusal::Revoked(p.id.clone())),
        State::Burned => Err(Refusal::Burned(p.id.clone())),
        State::Open if now >= p.expires => Err(Refusal::Expired(p.id.clone())),
        State::Open => Ok(()),
    }
}

#[cfg(test)]
mod tests;
