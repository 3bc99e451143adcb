//! Fingerprints as people see and type them. A fingerprint is the 32-byte static public key in
//! lowercase hex; people may paste it with any case and with spaces, colons or dashes between
//! digits, and read it in groups of four. Only canonical encodings parse (see
//! [`PublicKey::is_canonical`]), so a key has exactly one fingerprint.

use crate::keys::{KEY_LEN, PublicKey};
use std::str::FromStr;
use thiserror::Error;

/// Hex digits in a full fingerprint.
pub const HEX_LEN: usize = KEY_LEN * 2;

/// Hex digits shown in a short fingerprint (48 bits: enough to tell peers apart on screen, never
/// enough to verify one).
pub const SHORT_LEN: usize = 12;

/// Why a typed fingerprint was not understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum FingerprintError {
    /// A character that is neither a hex digit nor an allowed separator.
    #[error("a fingerprint may contain only hex digits, spaces, ':' and '-' (found {0:?})")]
    BadCharacter(char),
    /// Not 64 hex digits.
    #[error("a fingerprint has 64 hex digits, this one has {0}")]
    WrongLength(usize),
    /// 64 hex digits, but not the canonical encoding of an X25519 key (see
    /// [`PublicKey::is_canonical`]): another fingerprint for a key that has a canonical one.
    #[error(
        "this fingerprint is not canonical (its top bit is set, or it is at least 2^255-19): \
         it is another spelling of some key's real fingerprint, which schat never prints; ask \
         for the fingerprint `schat fingerprint` shows"
    )]
    NotCanonical,
}

/// Parses a fingerprint typed or pasted by a person.
pub fn parse(text: &str) -> Result<PublicKey, FingerprintError> {
    let mut digits = String::with_capacity(HEX_LEN);
    for c in text.chars() {
        match c {
            c if c.is_ascii_hexdigit() => digits.push(c.to_ascii_lowercase()),
            c if c.is_whitespace() || c == ':' || c == '-' => {}
            c => return Err(FingerprintError::BadCharacter(c)),
        }
    }
    if digits.len() != HEX_LEN {
        return Err(FingerprintError::WrongLength(digits.len()));
    }
    let mut bytes = [0u8; KEY_LEN];
    hex::decode_to_slice(&digits, &mut bytes).map_err(|_| FingerprintError::WrongLength(0))?;
    let key = PublicKey::from_bytes(bytes);
    // One key, one fingerprint: refuse the other encodings X25519 would take for the same key.
    if !key.is_canonical() {
        return Err(FingerprintError::NotCanonical);
    }
    Ok(key)
}

impl FromStr for PublicKey {
    type Err = FingerprintError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        parse(s)
    }
}

/// The fingerprint in 16 groups of 4 digits, for reading aloud or comparing by eye.
pub fn grouped(key: &PublicKey) -> String {
    let hex = key.to_hex();
    let groups: Vec<&str> = (0..HEX_LEN).step_by(4).map(|i| &hex[i..i + 4]).collect();
    groups.join(" ")
}

/// The fingerprint as people compare it on a screen: four rows of four groups, the same
/// shape at any terminal width (a wrapped line would put the break elsewhere on each side).
pub fn grid(key: &PublicKey) -> Vec<String> {
    let grouped = grouped(key);
    let groups: Vec<&str> = grouped.split(' ').collect();
    groups.chunks(4).map(|row| row.join(" ")).collect()
}

/// The first digits only, to label a peer on screen.
pub fn short(key: &PublicKey) -> String {
    let mut hex = key.to_hex();
    hex.truncate(SHORT_LEN);
    hex
}

#[cfg(test)]
mod tests {
    use super::*;

    const HEX: &str = "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a";

    #[test]
    fn accepts_plain_upper_grouped_and_colon_forms() {
        let key = parse(HEX).unwrap();
        assert_eq!(key.to_hex(), HEX);
        assert_eq!(parse(&HEX.to_uppercase()).unwrap(), key);
        assert_eq!(parse(&grouped(&key)).unwrap(), key);
        let colons: Vec<String> = HEX
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        assert_eq!(parse(&colons.join(":")).unwrap(), key);
        assert_eq!(parse(&format!("  {HEX}\n")).unwrap(), key);
    }

    #[test]
    fn rejects_wrong_length_and_bad_characters() {
        assert_eq!(parse(&HEX[..63]), Err(FingerprintError::WrongLength(63)));
        assert_eq!(
            parse(&format!("{HEX}0")),
            Err(FingerprintError::WrongLength(65))
        );
        assert_eq!(parse(""), Err(FingerprintError::WrongLength(0)));
        assert_eq!(
            parse(&format!("{}g", &HEX[..63])),
            Err(FingerprintError::BadCharacter('g'))
        );
    }

    #[test]
    fn non_canonical_encodings_are_refused() {
        // The same key with bit 255 set: X25519 would accept it as the same key.
        let top_bit = format!("{}ea", &HEX[..62]);
        assert!(parse(&top_bit).is_err());
        // p = 2^255 - 19 (little-endian) and 2^255 - 1: values at or above the field prime.
        let p = format!("ed{}7f", "ff".repeat(30));
        assert!(parse(&p).is_err());
        assert!(parse(&format!("{}7f", "ff".repeat(31))).is_err());
        let err = parse(&p).unwrap_err().to_string();
        assert!(err.contains("canonical"), "{err}");
        // p - 1 is the largest canonical value.
        assert!(parse(&format!("ec{}7f", "ff".repeat(30))).is_ok());
    }

    #[test]
    fn grouped_and_short_forms() {
        let key = parse(HEX).unwrap();
        assert_eq!(
            grouped(&key),
            "8520 f009 8930 a754 748b 7ddc b43e f75a 0dbf 3a0d 2638 1af4 eba4 a98e aa9b 4e6a"
        );
        assert_eq!(short(&key), "8520f0098930");
    }
}
