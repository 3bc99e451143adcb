//! Spoken codes: `427-absurd-aftermath-acme-alkali-adult`, read over a phone, and the
//! PAKE that proves both sides know it.
//!
//! The number is a *nameplate*: it tells the inviter which of its pending codes is meant. The
//! five words carry 40 bits from the PGP word list ([`super::words`]), even and odd words in
//! turn. Both number and words are the SPAKE2 password.
//!
//! After the Noise XX handshake, both sides run symmetric SPAKE2 (Ed25519 group) with the code
//! as password and `"schat code v1" ‖ h` as identity, `h` being the Noise handshake hash: a man
//! in the middle runs two handshakes with two different `h`, so whatever it forwards, the two
//! sides derive different keys. Each side then proves its key with a MAC. An attacker gets one
//! online guess per attempt (it must commit to a password in its PAKE message), and the
//! inviter burns a code after three failures. Never Noise's `psk` with such a code: a handshake
//! transcript would let anyone test every code offline.

use super::words::{EVEN, ODD};
use hmac::{Hmac, Mac};
use sha2::Sha256;
use spake2::{Ed25519Group, Identity, Password, Spake2};
use std::fmt;
use zeroize::Zeroizing;

/// Words in a code: 5 × 8 bits.
pub const WORDS: usize = 5;

/// Bytes of a SPAKE2 message (a side byte and a point).
pub const PAKE_LEN: usize = 33;

/// Bytes of a key confirmation (HMAC-SHA256).
pub const CONFIRM_LEN: usize = 32;

/// A parsed code. Its words stay out of `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Code {
    /// The nameplate, 100–999.
    pub nameplate: u16,
    /// The words, lower case, joined by `-`.
    words: Zeroizing<String>,
}

impl fmt::Debug for Code {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Code({}-…)", self.nameplate)
    }
}

/// Why a code does not parse: a typo, said plainly.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CodeError {
    #[error("a code is a number and {WORDS} words, like 427-absurd-aftermath-acme-alkali-adult")]
    Shape,
    #[error("the number of a code is 100 to 999")]
    Nameplate,
    #[error("word {place} {word:?} is not one of the code words (a typo?)")]
    Word { place: usize, word: String },
    #[error(
        "word {place} {word:?} is a code word, but not for that place: two words swapped, or one \
         missing?"
    )]
    Misplaced { place: usize, word: String },
}

impl Code {
    /// A fresh code for `nameplate` (the words from the OS's randomness).
    pub fn generate(nameplate: u16) -> Code {
        let mut bytes = [0u8; WORDS];
        rand::fill(&mut bytes);
        Code::from_bytes(nameplate, &bytes)
    }

    fn from_bytes(nameplate: u16, bytes: &[u8; WORDS]) -> Code {
        let words: Vec<&str> = bytes
            .iter()
            .enumerate()
            .map(|(i, b)| {
                if i % 2 == 0 {
                    EVEN[usize::from(*b)]
                } else {
                    ODD[usize::from(*b)]
                }
            })
            .collect();
        Code {
            nameplate,
            words: Zeroizing::new(words.join("-")),
        }
    }

    /// Reads a code as typed: any case, `-` or blanks between the parts.
    pub fn parse(text: &str) -> Result<Code, CodeError> {
        // (An exact-size copy, wiped when dropped: the code is a secret until it is used.)
        let lower = Zeroizing::new(text.trim().to_ascii_lowercase());
        let parts: Vec<&str> = lower
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .collect();
        let [number, words @ ..] = parts.as_slice() else {
            return Err(CodeError::Shape);
        };
        if words.len() != WORDS {
            return Err(CodeError::Shape);
        }
        let nameplate: u16 = number.parse().map_err(|_| CodeError::Shape)?;
        if !(100..=999).contains(&nameplate) {
            return Err(CodeError::Nameplate);
        }
        for (i, word) in words.iter().enumerate() {
            let list: &[&str; 256] = if i % 2 == 0 { &EVEN } else { &ODD };
            if !list.iter().any(|w| w.eq_ignore_ascii_case(word)) {
                let other: &[&str; 256] = if i % 2 == 0 { &ODD } else { &EVEN };
                let place = i + 1;
                let word = word.to_string();
                return Err(if other.iter().any(|w| w.eq_ignore_ascii_case(&word)) {
                    CodeError::Misplaced { place, word }
                } else {
                    CodeError::Word { place, word }
                });
            }
        }
        Ok(Code {
            nameplate,
            words: Zeroizing::new(words.join("-")),
        })
    }

    /// Completes the last word of a code being typed (`427-absurd-aft` → `427-absurd-aftermath-`):
    /// from the list that word's place uses, as far as the candidates agree. `None` when nothing
    /// can be added. (For Tab at the prompt: the words are short and easy to mistype.)
    pub fn complete(typed: &str) -> Option<String> {
        let cut = typed
            .rfind(|c: char| c == '-' || c.is_whitespace())
            .map_or(0, |i| i + 1);
        let (done, partial) = typed.split_at(cut);
        // Which word this is: the nameplate comes first.
        let place = done
            .split(|c: char| c == '-' || c.is_whitespace())
            .filter(|p| !p.is_empty())
            .count();
        if place == 0 || place > WORDS {
            return None;
        }
        let list: &[&str; 256] = if (place - 1) % 2 == 0 { &EVEN } else { &ODD };
        let lower = partial.to_ascii_lowercase();
        let candidates: Vec<&str> = list
            .iter()
            .copied()
            .filter(|w| w.starts_with(&lower))
            .collect();
        let first = candidates.first()?;
        let common = candidates.iter().fold(first.len(), |n, w| {
            first
                .bytes()
                .zip(w.bytes())
                .take(n)
                .take_while(|(a, b)| a == b)
                .count()
        });
        let mut completed = format!("{done}{}", &first[..common]);
        if candidates.len() == 1 && place < WORDS {
            completed.push('-');
        }
        (completed.len() > typed.len()).then_some(completed)
    }

    /// The words alone (what the inviter files).
    pub fn words(&self) -> &str {
        &self.words
    }

    /// Rebuilds a code from its nameplate and filed words.
    pub fn from_parts(nameplate: u16, words: &str) -> Result<Code, CodeError> {
        Code::parse(&Code::joined(nameplate, words))
    }

    /// The whole code as it is read out, in a buffer wiped when dropped.
    pub fn spoken(&self) -> Zeroizing<String> {
        Code::joined(self.nameplate, &self.words)
    }

    /// `NAMEPLATE-WORDS` in a buffer allocated at its final size and wiped when dropped.
    fn joined(nameplate: u16, words: &str) -> Zeroizing<String> {
        let number = nameplate.to_string();
        let mut text = Zeroizing::new(String::with_capacity(number.len() + 1 + words.len()));
        text.push_str(&number);
        text.push('-');
        text.push_str(words);
        text
    }

    fn password(&self) -> Password {
        Password::new(self.spoken().as_bytes())
    }
}

/// Which side a confirmation comes from (each side proves its key under its own label).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Side {
    Dialer,
    Listener,
}

/// A PAKE under way: our message is sent, the peer's awaited. Consumed by [`Exchange::finish`].
pub struct Exchange {
    state: Spake2<Ed25519Group>,
    side: Side,
}

/// The confirmations after a PAKE: ours to send, and the one the peer must send.
pub struct Confirmations {
    pub ours: [u8; CONFIRM_LEN],
    theirs: [u8; CONFIRM_LEN],
}

impl Confirmations {
    /// Whether the peer's confirmation is right (constant time).
    pub fn check(&self, theirs: &[u8]) -> bool {
        theirs.len() == CONFIRM_LEN
            && std::hint::black_box(
                self.theirs
                    .iter()
                    .zip(theirs)
                    .fold(0u8, |acc, (a, b)| acc | (a ^ b)),
            ) == 0
    }
}

/// The SPAKE2 identity: a label and the Noise handshake hash (the channel binding).
fn identity(handshake_hash: &[u8]) -> Identity {
    let mut id = b"schat code v1".to_vec();
    id.extend_from_slice(handshake_hash);
    Identity::new(&id)
}

impl Exchange {
    /// Starts the PAKE for `code` in the session whose handshake hash is `handshake_hash`;
    /// returns it and our message.
    pub fn start(code: &Code, handshake_hash: &[u8], side: Side) -> (Exchange, Vec<u8>) {
        let (state, message) =
            Spake2::<Ed25519Group>::start_symmetric(&code.password(), &identity(handshake_hash));
        (Exchange { state, side }, message)
    }

    /// As [`Exchange::start`], with the randomness given (test vectors).
    pub fn start_with_rng(
        code: &Code,
        handshake_hash: &[u8],
        side: Side,
        rng: impl rand_core_06::CryptoRng + rand_core_06::RngCore,
    ) -> (Exchange, Vec<u8>) {
        let (state, message) = Spake2::<Ed25519Group>::start_symmetric_with_rng(
            &code.password(),
            &identity(handshake_hash),
            rng,
        );
        (Exchange { state, side }, message)
    }

    /// The peer's message: the key, turned into the two confirmations. `None` when the
    /// message is malformed (the peer's fault).
    pub fn finish(self, theirs: &[u8]) -> Option<Confirmations> {
        let key = Zeroizing::new(self.state.finish(theirs).ok()?);
        let mac = |label: &[u8]| {
            let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key).ok()?;
            mac.update(label);
            Some(<[u8; CONFIRM_LEN]>::from(mac.finalize().into_bytes()))
        };
        let dialer = mac(b"schat code confirm: dialer")?;
        let listener = mac(b"schat code confirm: listener")?;
        Some(match self.side {
            Side::Dialer => Confirmations {
                ours: dialer,
                theirs: listener,
            },
            Side::Listener => Confirmations {
                ours: listener,
                theirs: dialer,
            },
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn codes_round_trip_and_typos_are_named() {
        let code = Code::from_bytes(427, &[1, 2, 3, 4, 5]);
        let spoken = code.spoken();
        assert_eq!(spoken.split('-').count(), 1 + WORDS);
        assert_eq!(Code::parse(&spoken).unwrap(), code);
        assert_eq!(
            Code::parse(&spoken.to_uppercase().replace('-', " ")).unwrap(),
            code
        );
        assert!(!format!("{code:?}").contains(EVEN[1]));
        assert_eq!(Code::parse("427"), Err(CodeError::Shape));
        assert_eq!(Code::parse("42-a-b-c-d-e"), Err(CodeError::Nameplate));
        // An odd word in an even place: caught (a swap or a dropped word).
        let swapped = format!(
            "427-{}-{}-{}-{}-{}",
            ODD[0], EVEN[0], EVEN[1], ODD[1], EVEN[2]
        );
        assert!(matches!(
            Code::parse(&swapped),
            Err(CodeError::Misplaced { place: 1, .. })
        ));
        assert!(matches!(
            Code::parse("427-xyzzy-a-b-c-d"),
            Err(CodeError::Word { place: 1, .. })
        ));
        let generated = Code::generate(500);
        assert_eq!(Code::parse(&generated.spoken()).unwrap(), generated);
    }

    #[test]
    fn the_word_lists_are_unambiguous() {
        let mut all: Vec<&str> = EVEN.iter().chain(ODD.iter()).copied().collect();
        assert!(
            all.iter()
                .all(|w| w.chars().all(|c| c.is_ascii_lowercase()))
        );
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 512, "a word appears twice");
        // No word is another with a letter more or less at the end (a mumble would pass).
        for w in &all {
            assert!(!all.contains(&&w[..w.len() - 1]), "{w}");
        }
    }

    fn run(code_a: &Code, h_a: &[u8], code_b: &Code, h_b: &[u8]) -> bool {
        let (a, ma) = Exchange::start(code_a, h_a, Side::Dialer);
        let (b, mb) = Exchange::start(code_b, h_b, Side::Listener);
        let (ca, cb) = (a.finish(&mb).unwrap(), b.finish(&ma).unwrap());
        let ok = cb.check(&ca.ours);
        assert_eq!(ok, ca.check(&cb.ours));
        ok
    }

    #[test]
    fn the_same_code_in_the_same_session_confirms_and_anything_else_fails() {
        let code = Code::generate(123);
        let other = Code::generate(123);
        assert!(run(&code, &[1; 32], &code, &[1; 32]));
        assert!(!run(&code, &[1; 32], &other, &[1; 32]), "a wrong code");
        assert!(
            !run(&code, &[1; 32], &code, &[2; 32]),
            "a man in the middle: two sessions"
        );
        let (a, _) = Exchange::start(&code, &[1; 32], Side::Dialer);
        assert!(a.finish(&[0; 5]).is_none());
    }
}

#[cfg(test)]
mod vector {
    use super::*;

    /// Randomness that is not: 64 fixed bytes, which is exactly what SPAKE2 draws for its
    /// scalar (curve25519-dalek's `Scalar::random`).
    struct Fixed([u8; 64]);

    impl rand_core_06::RngCore for Fixed {
        fn next_u32(&mut self) -> u32 {
            u32::from_le_bytes([self.0[0], self.0[1], self.0[2], self.0[3]])
        }
        fn next_u64(&mut self) -> u64 {
            u64::from(self.next_u32())
        }
        fn fill_bytes(&mut self, dest: &mut [u8]) {
            for (d, s) in dest.iter_mut().zip(self.0.iter().cycle()) {
                *d = *s;
            }
        }
        fn try_fill_bytes(&mut self, dest: &mut [u8]) -> Result<(), rand_core_06::Error> {
            self.fill_bytes(dest);
            Ok(())
        }
    }

    impl rand_core_06::CryptoRng for Fixed {}

    /// The PROTOCOL.md §4.8 vector: printed (run with --nocapture) and checked against the text.
    #[test]
    fn protocol_md_vector() {
        let code = Code::from_bytes(427, &[1, 2, 3, 4, 5]);
        let h = [0x11u8; 32];
        let (d, dm) = Exchange::start_with_rng(&code, &h, Side::Dialer, Fixed([7; 64]));
        let (l, lm) = Exchange::start_with_rng(&code, &h, Side::Listener, Fixed([8; 64]));
        let (dc, lc) = (d.finish(&lm).unwrap(), l.finish(&dm).unwrap());
        assert!(lc.check(&dc.ours) && dc.check(&lc.ours));
        let lines = [
            format!("code: {}", code.spoken().as_str()),
            format!("dialer PAKE message: {}", hex::encode(&dm)),
            format!("listener PAKE message: {}", hex::encode(&lm)),
            format!("dialer CONFIRM: {}", hex::encode(dc.ours)),
            format!("listener CONFIRM: {}", hex::encode(lc.ours)),
        ];
        let doc = include_str!("../../PROTOCOL.md");
        for line in &lines {
            println!("{line}");
        }
        for line in &lines {
            assert!(doc.contains(line.as_str()), "PROTOCOL.md lacks {line:?}");
        }
    }

    #[test]
    fn tab_completes_a_word_from_the_list_of_its_place() {
        let code = Code::from_bytes(427, &[3, 200, 17, 99, 250]);
        let spoken = code.spoken();
        let words: Vec<&str> = spoken.split('-').collect();
        // Each word completes from a unique prefix of its own list.
        let mut typed = "427-".to_string();
        for (i, word) in words[1..].iter().enumerate() {
            let list: &[&str; 256] = if i % 2 == 0 { &EVEN } else { &ODD };
            let mut n = 1;
            while list.iter().filter(|w| w.starts_with(&word[..n])).count() > 1 {
                n += 1;
            }
            let completed = Code::complete(&format!("{typed}{}", &word[..n])).unwrap();
            typed = format!("{typed}{word}");
            if i + 1 < WORDS {
                typed.push('-');
            }
            assert_eq!(completed, typed);
        }
        assert_eq!(Code::parse(&typed).unwrap(), code);
        // Nothing to add: no word starts so, or nothing typed past the nameplate.
        assert_eq!(Code::complete("427-zzzz"), None);
        assert_eq!(Code::complete("42"), None);
    }
}
