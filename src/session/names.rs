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
    if name.chars().any(crate::sanitize::is_invisible) {
        return Err("a name has no invisible characters");
    }
    let lower = name.to_lowercase();
    if lower == "you" || lower.starts_with("unverified") || lower == "schat" {
        return Err("that word is one schat uses in its own labels");
    }
    // Hex digits are how keys are named (/msg takes a fingerprint prefix), and schat prints
    // them in groups: nothing that reads as 8 of them, in any script, with or without spaces.
    if name.len() >= 8 && name.chars().all(|c| c.is_ascii_hexdigit()) || looks_like_hex(name) {
        return Err("a name that reads as 8 or more hex digits would look like a fingerprint");
    }
    // One script per name: a name cannot pass for another by one lookalike letter (a
    // Cyrillic а in "аlice"). Whole-script lookalikes remain: the key in brackets decides.
    let mut scripts = name.chars().filter(|c| c.is_alphabetic()).map(script);
    if let Some(first) = scripts.next()
        && scripts.any(|s| s != first)
    {
        return Err("a name uses one script (do not mix, e.g., Latin and Cyrillic letters)");
    }
    if name
        .chars()
        .any(|c| matches!(c as u32, 0xff00..=0xffef | 0x1d400..=0x1d7ff))
    {
        return Err("a name has no full-width or mathematical letters");
    }
    Ok(())
}

/// Whether `name` holds a run of 8 or more characters that read as hex digits, at least two of
/// them digits, with single separators between groups allowed (`dce8 74be 7d1f`). "Read as"
/// is Unicode's confusable skeleton (UTS #39): a Cyrillic `е` or `ԁ`, a full-width `８`, a
/// mathematical `𝟑` all count, so `3е2а9с1а4ԁ5е` is caught as well as plain hex.
fn looks_like_hex(name: &str) -> bool {
    use unicode_security::confusable_detection::skeleton;
    let reads_as = |c: char, of: &str| -> bool {
        let shown: String = skeleton(c.encode_utf8(&mut [0u8; 4])).collect();
        of.chars().any(|h| {
            let hex: String = skeleton(h.encode_utf8(&mut [0u8; 4])).collect();
            hex == shown
        })
    };
    let (mut run, mut digits, mut separated) = (0usize, 0usize, false);
    for c in name.chars() {
        if matches!(c, ' ' | '-' | '_' | '.' | ':' | '\'') {
            // One separator between groups keeps the run; two end it.
            if separated {
                (run, digits) = (0, 0);
            }
            separated = true;
            continue;
        }
        separated = false;
        if c.is_ascii_hexdigit() || reads_as(c, "0123456789abcdefABCDEF") {
            run += 1;
            if c.is_numeric() || reads_as(c, "23456789") {
                digits += 1;
            }
            if run >= 8 && digits >= 2 {
                return true;
            }
        } else {
            (run, digits) = (0, 0);
        }
    }
    false
}

/// A coarse script class of a letter, enough to refuse names that mix scripts.
fn script(c: char) -> u8 {
    match c as u32 {
        0..=0x024f | 0x1e00..=0x1eff => 1,                        // Latin
        0x0370..=0x03ff | 0x1f00..=0x1fff => 2,                   // Greek
        0x0400..=0x052f | 0x2de0..=0x2dff | 0xa640..=0xa69f => 3, // Cyrillic
        0x0530..=0x058f => 4,                                     // Armenian
        0x0590..=0x05ff => 5,                                     // Hebrew
        0x0600..=0x06ff | 0x0750..=0x077f => 6,                   // Arabic
        0x0900..=0x0dff => 7,                                     // Indic
        0x0e00..=0x0eff => 8,                                     // Thai, Lao
        0x10a0..=0x10ff => 9,                                     // Georgian
        // Han, kana and Hangul are written together: one class.
        0x3040..=0x30ff | 0x3400..=0x9fff | 0xac00..=0xd7af | 0x1100..=0x11ff => 10,
        _ => 0,
    }
}

/// Whether a name is written right to left (its bracketed key then goes first, so that a
/// terminal's bidi reordering cannot carry the key's digits into the name).
fn right_to_left(name: &str) -> bool {
    name.chars().any(|c| matches!(script(c), 5 | 6))
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

    /// The key we call `name` (our petname for it, in any case: `Carol` is not someone else),
    /// if any.
    pub fn key_of_petname(&self, name: &str) -> Option<PublicKey> {
        let name = name.to_lowercase();
        self.petnames
            .iter()
            .find(|(_, petname)| petname.to_lowercase() == name)
            .map(|(key, _)| *key)
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

    /// The key we call `name` when `key` is not it: `key` announces a name we gave another
    /// key (case-insensitively) — the room's key-change alarm, since a name is only a claim.
    pub fn impersonated(&self, key: &PublicKey, name: &str) -> Option<PublicKey> {
        let name = name.to_lowercase();
        self.petnames
            .iter()
            .find(|(k, n)| *k != key && n.to_lowercase() == name && !name.is_empty())
            .map(|(k, _)| *k)
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
            Some(name) => shown(name, self.collides(key, name), &short),
            None => format!("unverified {short}"),
        }
    }

    /// A label that uses no petname (what a host tells others: its petnames are its own).
    pub fn public_label(&self, key: &PublicKey) -> String {
        let short = fingerprint::short(key);
        match self.announced(key) {
            Some(name) => shown(name, false, &short),
            None => format!("unverified {short}"),
        }
    }
}

/// `name [short]` (`name? [short]` when it collides; the key first for a right-to-left name).
fn shown(name: &str, collides: bool, short: &str) -> String {
    let mark = if collides { "?" } else { "" };
    if right_to_left(name) {
        format!("[{short}] {name}{mark}")
    } else {
        format!("{name}{mark} [{short}]")
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
        for ok in [
            "carol",
            "Ana María",
            "李小龙",
            "o'neil",
            "r2-d2_x.y",
            "cafe",
            "дмитрий",
            "山田たろう",
        ] {
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
            "8520f0098930a754",
            "deadbeef",
            "\u{0430}lice",
            "alice\u{3164}",
            "\u{ff41}lice",
            "\u{1d41a}lice",
            // Grouped hex, as schat prints keys, and Cyrillic letters that read as hex.
            "dce8 74be 7d1f afd5 f17a d4cc",
            "dce8 74be",
            "3\u{435}2\u{430}9\u{441}1\u{430}4\u{501}5\u{435}",
            "Bob dce8-74be",
        ] {
            assert!(check_name(bad).is_err(), "{bad:?}");
        }
        // Words made of the letters a-f, or a few digits, are still names.
        for ok in ["labelled", "Abbe Decca", "bob 42", "Ada 1815", "café 2024"] {
            assert_eq!(check_name(ok), Ok(()), "{ok}");
        }
    }

    #[test]
    fn a_right_to_left_name_comes_after_its_key() {
        let mut names = Names::default();
        names
            .announce(key(9), "\u{05e9}\u{05dc}\u{05d5}\u{05dd}")
            .unwrap();
        let short = fingerprint::short(&key(9));
        assert_eq!(
            names.label(&key(9)),
            format!("[{short}] \u{05e9}\u{05dc}\u{05d5}\u{05dd}")
        );
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
