//! Safety numbers: 60 digits that both people compute from *both* static public keys, so
//! reading them aloud to each other verifies both keys at once (after Signal's design).
//!
//! Derivation (also in PROTOCOL.md, with a test vector):
//!
//! ```text
//! half(K) = D[0..30] as 6 × (40-bit big-endian integer mod 100000, 5 digits), where
//!           D_0 = SHA-512("schat safety number v1" || 0x00 || K)
//!           D_i = SHA-512(D_{i-1} || K)        for i = 1 .. 5199
//! number  = half(min(A, B)) || half(max(A, B)) (keys compared as byte strings)
//! ```
//!
//! Why not a short code from the handshake hash: in XX a man in the middle picks its ephemeral
//! key after seeing the victim's, so it can grind a short code until both legs match. Static
//! keys are fixed before the handshake; matching 100 bits of iterated hash is out of reach.

use crate::keys::PublicKey;
use sha2::{Digest, Sha512};
use std::collections::HashMap;

/// Domain separation for the first hash.
const LABEL: &[u8] = b"schat safety number v1\0";
/// Hash iterations per key: makes a brute-force search for a colliding key ~2^12 times dearer.
pub const ITERATIONS: usize = 5200;

/// 60 decimal digits.
#[derive(Clone, PartialEq, Eq)]
pub struct SafetyNumber(String);

impl SafetyNumber {
    /// The number for the pair of keys; the same whichever side computes it.
    pub fn new(a: &PublicKey, b: &PublicKey) -> Self {
        let (first, second) = if a.as_bytes() <= b.as_bytes() {
            (a, b)
        } else {
            (b, a)
        };
        SafetyNumber(half(first) + &half(second))
    }

    /// All 60 digits, no separators.
    pub fn digits(&self) -> &str {
        &self.0
    }

    /// 12 groups of 5 digits separated by spaces.
    pub fn grouped(&self) -> String {
        self.groups().join(" ")
    }

    /// Three lines of four groups, easy to read aloud.
    pub fn lines(&self) -> Vec<String> {
        self.groups().chunks(4).map(|row| row.join(" ")).collect()
    }

    fn groups(&self) -> Vec<&str> {
        (0..self.0.len())
            .step_by(5)
            .map(|i| &self.0[i..i + 5])
            .collect()
    }
}

impl std::fmt::Display for SafetyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.grouped())
    }
}

impl std::fmt::Debug for SafetyNumber {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SafetyNumber({})", self.grouped())
    }
}

/// Halves computed lately, by key. Our own half is the same in every session, and a key that
/// reconnects in a loop must not cost the listener 5,200 hashes each time (it is the peer's
/// cheapest way to make us work). Bounded: cleared when full.
static HALVES: std::sync::Mutex<Option<HashMap<PublicKey, String>>> = std::sync::Mutex::new(None);

/// Keys whose halves are kept.
const CACHED_HALVES: usize = 1024;

fn half(key: &PublicKey) -> String {
    let cached = |f: &mut dyn FnMut(&mut HashMap<PublicKey, String>)| {
        if let Ok(mut guard) = HALVES.lock() {
            f(guard.get_or_insert_with(HashMap::new));
        }
    };
    let mut found = None;
    cached(&mut |map| found = map.get(key).cloned());
    if let Some(half) = found {
        return half;
    }
    let half = compute_half(key);
    cached(&mut |map| {
        if map.len() >= CACHED_HALVES {
            map.clear();
        }
        map.insert(*key, half.clone());
    });
    half
}

fn compute_half(key: &PublicKey) -> String {
    let mut digest = Sha512::new()
        .chain_update(LABEL)
        .chain_update(key.as_bytes())
        .finalize();
    for _ in 1..ITERATIONS {
        digest = Sha512::new()
            .chain_update(digest)
            .chain_update(key.as_bytes())
            .finalize();
    }
    digest[..30]
        .chunks(5)
        .map(|c| {
            let n = c.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b));
            format!("{:05}", n % 100_000)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::fingerprint;

    /// RFC 7748 §6.1's two public keys; the number is also in PROTOCOL.md.
    pub const ALICE: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";
    pub const BOB: &str = "de9edb7d7b7dc1b4d35b61c2ece435373f8343c85b78674dadfc7e146f882b4f";

    #[test]
    fn matches_the_documented_vector_from_both_sides() {
        let a = fingerprint::parse(ALICE).unwrap();
        let b = fingerprint::parse(BOB).unwrap();
        let n = SafetyNumber::new(&a, &b);
        assert_eq!(n, SafetyNumber::new(&b, &a));
        assert_eq!(n.digits().len(), 60);
        assert!(n.digits().bytes().all(|c| c.is_ascii_digit()));
        assert_eq!(
            n.grouped(),
            include_str!("../tests/data/safety-number-vector.txt").trim()
        );
    }

    #[test]
    fn layout_is_twelve_groups_in_three_lines() {
        let a = fingerprint::parse(ALICE).unwrap();
        let n = SafetyNumber::new(&a, &a);
        assert_eq!(n.grouped().split(' ').count(), 12);
        let lines = n.lines();
        assert_eq!(lines.len(), 3);
        assert!(lines.iter().all(|l| l.split(' ').count() == 4));
    }

    #[test]
    fn a_key_seen_before_costs_no_hashing() {
        let a = fingerprint::parse(ALICE).unwrap();
        let b = fingerprint::parse(BOB).unwrap();
        let first = SafetyNumber::new(&a, &b);
        let started = std::time::Instant::now();
        for _ in 0..200 {
            assert_eq!(SafetyNumber::new(&a, &b), first);
        }
        // Uncached, 200 numbers are 2 × 200 × 5,200 SHA-512 rounds: about a second.
        let took = started.elapsed();
        assert!(took < std::time::Duration::from_millis(100), "{took:?}");
        assert_eq!(compute_half(&a) + &compute_half(&b), first.digits());
    }

    #[test]
    fn any_key_change_changes_the_number() {
        let a = fingerprint::parse(ALICE).unwrap();
        let b = fingerprint::parse(BOB).unwrap();
        let mut c = *b.as_bytes();
        c[31] ^= 1;
        let c = PublicKey::from_bytes(c);
        assert_ne!(SafetyNumber::new(&a, &b), SafetyNumber::new(&a, &c));
    }
}
