//! How people in a session are shown: the petnames *we* gave keys (known_peers), and the
//! display names peers announce for themselves (HELLO, NICK, and the host's notices).
//!
//! A display name is only a claim, so it is never shown alone: `carol [3f2a9c1b4d5e]` puts
//! the key's short fingerprint beside it, which nobody can choose. Our own petnames win
//! (they are names we decided on). A name another member also uses, or that is one of our
//! petnames for a different key, is marked with `?` — `alice? [77aa12bc09de]` — so that
//! whoever reads it looks at the key.

use crate::fingerprint;
use crate::keys::PublicKey;
use std::collections::HashMap;

/// Longest display name, in characters.
pub const MAX_NAME_CHARS: usize = 32;

/// Whether `name` is an acceptable display name; the reason when not.
///
/// Letters and digits of any script, with `-`, `_`, `.`, `'` and single inner spaces:
/// nothing that could pass for our own punctuation (`:` ends a label in plain mode, `[`
/// opens the key), no control or invisible character, and not a word schat uses for labels.
pub fn check_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("a name needs at least one character");
    }
    if name.chars().count() > MAX_NAME_CHARS {
        return Err("a name has at most 32 characters");
    }
    if name.starts_with(' ') || name.ends_with(' ') || name.contains("  ") {
        return Err("a name has no leading, trailing or double spaces");
    }
    if !name
        .chars()
        .all(|c| c.is_alphanumeric() || matches!(c, ' ' | '-' | '_' | '.' | '\''))
    {
        return Err("a name has only letters, digits, spaces and - _ . '");
    }
    let lower = name.to_lowercase();
    if lower == "you" || lower.starts_with("unverified") || lower == "schat" {
        return Err("that word is one schat uses in its own labels");
    }
    Ok(())
}

/// The labels of the keys in a session.
#[derive(Debug, Clone, Default)]
pub struct Names {
    /// Our petnames (known_peers).
    petnames: HashMap<PublicKey, String>,
    /// Names peers announced, checked with [`check_name`].
    announced: HashMap<PublicKey, String>,
}

impl Names {
    /// Names with these petnames.
    pub fn new(petnames: impl IntoIterator<Item = (PublicKey, String)>) -> Self {
        Names {
            petnames: petnames.into_iter().collect(),
            announced: HashMap::new(),
        }
    }

    /// The petnames in `config`'s store (none if it cannot be read: labels are cosmetic).
    pub fn load(config: &super::verify::TrustConfig) -> Self {
        let peers = config.store.load().unwrap_or_default();
        Names::new(peers.entries().map(|e| (e.key, e.name.clone())))
    }

    /// The petname of `key`, if it has one.
    pub fn petname(&self, key: &PublicKey) -> Option<&str> {
        self.petnames.get(key).map(String::as_str)
    }

    /// The name `key` announced, if any.
    pub fn announced(&self, key: &PublicKey) -> Option<&str> {
        self.announced.get(key).map(String::as_str)
    }

    /// Gives `key` a petname (or changes it).
    pub fn set_petname(&mut self, key: PublicKey, petname: String) {
        self.petnames.insert(key, petname);
    }

    /// Records what `key` announced: a valid name, or none (empty). An invalid name is not
    /// kept, and the reason is returned.
    pub fn announce(&mut self, key: PublicKey, name: &str) -> Result<(), &'static str> {
        if name.is_empty() {
            self.announced.remove(&key);
            return Ok(());
        }
        check_name(name)?;
        self.announced.insert(key, name.to_string());
        Ok(())
    }

    /// Forgets what `key` announced (it left).
    pub fn forget(&mut self, key: &PublicKey) {
        self.announced.remove(key);
    }

    /// Forgets every announced name but those of `keep` (a fresh roster).
    pub fn retain(&mut self, keep: &[PublicKey]) {
        self.announced.retain(|k, _| keep.contains(k));
    }

    /// Whether `key`'s announced `name` is also another member's name, or our petname for
    /// another key (case-insensitively).
    fn collides(&self, key: &PublicKey, name: &str) -> bool {
        let same = |other: &String| other.to_lowercase() == name.to_lowercase();
        self.announced.iter().any(|(k, n)| k != key && same(n))
            || self.petnames.iter().any(|(k, n)| k != key && same(n))
    }

    /// How to show `key`: our petname; else its announced name beside its short fingerprint
    /// (`?`-marked on a collision); else `unverified <short fingerprint>`. A petname schat
    /// made up (`peer-<short fingerprint>`, when a key was accepted without one) is no choice
    /// of ours: an announced name is shown instead.
    pub fn label(&self, key: &PublicKey) -> String {
        let short = fingerprint::short(key);
        if let Some(petname) = self.petname(key) {
            let made_up = petname == format!("peer-{short}");
            if !(made_up && self.announced(key).is_some()) {
                return petname.to_string();
            }
        }
        match self.announced(key) {
            Some(name) if self.collides(key, name) => format!("{name}? [{short}]"),
            Some(name) => format!("{name} [{short}]"),
            None => format!("unverified {short}"),
        }
    }

    /// A label that uses no petname (what a host tells others: its petnames are its own).
    pub fn public_label(&self, key: &PublicKey) -> String {
        let short = fingerprint::short(key);
        match self.announced(key) {
            Some(name) => format!("{name} [{short}]"),
            None => format!("unverified {short}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn key(b: u8) -> PublicKey {
        PublicKey::from_bytes([b; 32])
    }

    #[test]
    fn names_follow_the_rules() {
        for ok in ["carol", "Ana María", "李小龙", "o'neil", "r2-d2_x.y"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
        for bad in [
            "",
            " carol",
            "carol ",
            "a  b",
            "bob: hi",
            "bob [3f2a]",
            "x\u{200b}",
            "tab\there",
            "Unverified abc",
            "you",
            &"x".repeat(33),
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn petnames_win_names_sit_beside_the_key_and_collisions_are_marked() {
        let mut names = Names::new([(key(1), "alice".to_string())]);
        names.announce(key(1), "mallory").unwrap();
        assert_eq!(names.label(&key(1)), "alice");
        names.announce(key(2), "carol").unwrap();
        let short2 = fingerprint::short(&key(2));
        assert_eq!(names.label(&key(2)), format!("carol [{short2}]"));
        assert_eq!(
            names.label(&key(3)),
            format!("unverified {}", fingerprint::short(&key(3)))
        );
        // Someone else calls itself carol: both are marked.
        names.announce(key(3), "Carol").unwrap();
        assert_eq!(names.label(&key(2)), format!("carol? [{short2}]"));
        assert!(names.label(&key(3)).starts_with("Carol? ["));
        // A name that is our petname for another key.
        names.announce(key(4), "alice").unwrap();
        assert!(names.label(&key(4)).starts_with("alice? ["));
        // Invalid names are not kept; an empty one clears.
        assert!(names.announce(key(5), "x: y").is_err());
        assert!(names.announced(&key(5)).is_none());
        names.announce(key(2), "").unwrap();
        assert!(names.label(&key(2)).starts_with("unverified "));
        assert_eq!(
            names.public_label(&key(1)),
            format!("mallory [{}]", fingerprint::short(&key(1)))
        );
        // A petname schat made up gives way to an announced name.
        let short6 = fingerprint::short(&key(6));
        names.set_petname(key(6), format!("peer-{short6}"));
        assert_eq!(names.label(&key(6)), format!("peer-{short6}"));
        names.announce(key(6), "dave").unwrap();
        assert_eq!(names.label(&key(6)), format!("dave [{short6}]"));
    }
}
