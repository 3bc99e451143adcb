//! NOTICE bodies: room events the host announces, in a form programs can read.
//!
//! ```text
//! NOTICE body = event (1) | fields length (2, big-endian) | fields | text (UTF-8, the rest)
//! ```
//!
//! The text is the host's own wording, for clients that show notices as they come; the event
//! and its fields say the same thing for programs (`--json`) and for clients that word it
//! themselves (schat's own dialer does, with *its* names for the keys). The fields length makes
//! an event this version does not know skippable: its text is still shown.

use super::{MessageError, ORIGIN_LEN};
use std::borrow::Cow;
use std::str;

/// Longest display name on the wire, in bytes (the name rules allow 32 characters).
pub const MAX_NAME: usize = 128;

/// Event bytes.
pub mod event {
    /// Free text (a summary, a reply): no fields.
    pub const TEXT: u8 = 0x00;
    /// A member joined: one entry.
    pub const JOIN: u8 = 0x01;
    /// A member left: one entry, then a reason byte.
    pub const LEAVE: u8 = 0x02;
    /// A member (or the host) changed its display name: one entry with the new name.
    pub const RENAME: u8 = 0x03;
    /// The host turned down the recipient's request (a display name): one entry with what was
    /// asked for.
    pub const REFUSED: u8 = 0x04;
    /// Who is in the room besides the recipient and the host: zero or more entries.
    pub const ROSTER: u8 = 0x05;
}

/// A member as notices name it: its key and its display name (empty: none).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry<'a> {
    /// The member's static key.
    pub key: [u8; ORIGIN_LEN],
    /// The name it announced (empty when it announced none).
    pub name: Cow<'a, str>,
}

/// Why a member left (the byte after a LEAVE entry).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Reason {
    /// It said goodbye (QUIT, possibly with a reason).
    Quit,
    /// Its connection ended without a goodbye.
    Cut,
    /// It was turned away, or turned the host away.
    Refused,
    /// It went silent, or stopped reading.
    Timeout,
    /// It broke the protocol, or something failed.
    Error,
    /// A code this version does not know.
    Other(u8),
}

impl Reason {
    /// The wire byte.
    pub fn byte(self) -> u8 {
        match self {
            Reason::Quit => 0,
            Reason::Cut => 1,
            Reason::Refused => 2,
            Reason::Timeout => 3,
            Reason::Error => 4,
            Reason::Other(b) => b,
        }
    }

    fn from_byte(b: u8) -> Self {
        match b {
            0 => Reason::Quit,
            1 => Reason::Cut,
            2 => Reason::Refused,
            3 => Reason::Timeout,
            4 => Reason::Error,
            b => Reason::Other(b),
        }
    }
}

/// What happened.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event<'a> {
    /// Free text only.
    Text,
    /// A member joined.
    Join(Entry<'a>),
    /// A member left, and why.
    Leave(Entry<'a>, Reason),
    /// A member's new display name.
    Rename(Entry<'a>),
    /// The recipient's request (for the name in the entry) was turned down.
    Refused(Entry<'a>),
    /// The other members present.
    Roster(Vec<Entry<'a>>),
    /// An event this version does not know (its text is still shown); its fields are kept as
    /// they came, so that it re-encodes to the same bytes.
    Unknown(u8, Cow<'a, [u8]>),
}

/// A decoded NOTICE body.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notice<'a> {
    /// What happened, for programs.
    pub event: Event<'a>,
    /// The host's wording, for people.
    pub text: Cow<'a, str>,
}

impl<'a> Notice<'a> {
    /// A notice that is only text.
    pub fn text(text: impl Into<Cow<'a, str>>) -> Self {
        Notice {
            event: Event::Text,
            text: text.into(),
        }
    }

    /// Parses a NOTICE body.
    pub fn decode(body: &'a [u8]) -> Result<Self, MessageError> {
        let short = MessageError::Truncated("NOTICE");
        let (&event, rest) = body.split_first().ok_or(short.clone())?;
        let (len, rest) = rest.split_first_chunk::<2>().ok_or(short.clone())?;
        let len = usize::from(u16::from_be_bytes(*len));
        if rest.len() < len {
            return Err(short);
        }
        let (mut fields, text) = rest.split_at(len);
        let text = str::from_utf8(text).map_err(|_| MessageError::InvalidUtf8("NOTICE"))?;
        let event = match event {
            event::TEXT => Event::Text,
            event::JOIN => Event::Join(entry(&mut fields)?),
            event::LEAVE => {
                let who = entry(&mut fields)?;
                let (&reason, rest) = fields
                    .split_first()
                    .ok_or(MessageError::Truncated("NOTICE"))?;
                fields = rest;
                Event::Leave(who, Reason::from_byte(reason))
            }
            event::RENAME => Event::Rename(entry(&mut fields)?),
            event::REFUSED => Event::Refused(entry(&mut fields)?),
            event::ROSTER => {
                let mut members = Vec::new();
                while !fields.is_empty() {
                    members.push(entry(&mut fields)?);
                }
                Event::Roster(members)
            }
            other => Event::Unknown(other, Cow::Borrowed(std::mem::take(&mut fields))),
        };
        if !fields.is_empty() {
            return Err(MessageError::UnexpectedBody("NOTICE fields"));
        }
        Ok(Notice {
            event,
            text: Cow::Borrowed(text),
        })
    }

    /// Appends the body to `out`. Only through [`super::Message::encode_into`], which refuses
    /// a body over the limit first: so the fields, part of the body, always fit their u16.
    pub(super) fn encode_into(&self, out: &mut Vec<u8>) {
        let (code, fields) = match &self.event {
            Event::Text => (event::TEXT, Vec::new()),
            Event::Join(e) => (event::JOIN, encode_entry(e)),
            Event::Leave(e, reason) => {
                let mut f = encode_entry(e);
                f.push(reason.byte());
                (event::LEAVE, f)
            }
            Event::Rename(e) => (event::RENAME, encode_entry(e)),
            Event::Refused(e) => (event::REFUSED, encode_entry(e)),
            Event::Roster(members) => (
                event::ROSTER,
                members.iter().flat_map(encode_entry).collect(),
            ),
            Event::Unknown(code, fields) => (*code, fields.to_vec()),
        };
        out.push(code);
        debug_assert!(fields.len() <= usize::from(u16::MAX));
        out.extend_from_slice(&(fields.len().min(usize::from(u16::MAX)) as u16).to_be_bytes());
        out.extend_from_slice(&fields);
        out.extend_from_slice(self.text.as_bytes());
    }

    /// Bytes of the encoded body.
    pub fn len(&self) -> usize {
        let entry_len = |e: &Entry<'_>| ORIGIN_LEN + 1 + e.name.len();
        let fields = match &self.event {
            Event::Text => 0,
            Event::Unknown(_, fields) => fields.len(),
            Event::Join(e) | Event::Rename(e) | Event::Refused(e) => entry_len(e),
            Event::Leave(e, _) => entry_len(e) + 1,
            Event::Roster(members) => members.iter().map(entry_len).sum(),
        };
        3 + fields + self.text.len()
    }

    /// Whether the body is empty (it never is: the event byte and the length are always there).
    pub fn is_empty(&self) -> bool {
        false
    }

    /// A copy that no longer borrows the receive buffer.
    pub fn into_owned(self) -> Notice<'static> {
        let own = |e: Entry<'_>| Entry {
            key: e.key,
            name: Cow::Owned(e.name.into_owned()),
        };
        Notice {
            event: match self.event {
                Event::Text => Event::Text,
                Event::Join(e) => Event::Join(own(e)),
                Event::Leave(e, r) => Event::Leave(own(e), r),
                Event::Rename(e) => Event::Rename(own(e)),
                Event::Refused(e) => Event::Refused(own(e)),
                Event::Roster(m) => Event::Roster(m.into_iter().map(own).collect()),
                Event::Unknown(c, f) => Event::Unknown(c, Cow::Owned(f.into_owned())),
            },
            text: Cow::Owned(self.text.into_owned()),
        }
    }
}

/// `key (32) | name length (1) | name`.
fn entry<'a>(fields: &mut &'a [u8]) -> Result<Entry<'a>, MessageError> {
    let short = MessageError::Truncated("NOTICE entry");
    let (key, rest) = fields
        .split_first_chunk::<ORIGIN_LEN>()
        .ok_or(short.clone())?;
    let (&len, rest) = rest.split_first().ok_or(short.clone())?;
    let len = usize::from(len);
    if len > MAX_NAME {
        return Err(MessageError::UnexpectedBody("NOTICE name over 128 bytes"));
    }
    if rest.len() < len {
        return Err(short);
    }
    let (name, rest) = rest.split_at(len);
    let name = str::from_utf8(name).map_err(|_| MessageError::InvalidUtf8("NOTICE name"))?;
    *fields = rest;
    Ok(Entry {
        key: *key,
        name: Cow::Borrowed(name),
    })
}

fn encode_entry(e: &Entry<'_>) -> Vec<u8> {
    let mut name = e.name.as_bytes();
    if name.len() > MAX_NAME {
        // Names are checked long before this; never emit an undecodable entry.
        name = &name[..MAX_NAME];
        while str::from_utf8(name).is_err() {
            name = &name[..name.len() - 1];
        }
    }
    let mut out = Vec::with_capacity(ORIGIN_LEN + 1 + name.len());
    out.extend_from_slice(&e.key);
    out.push(name.len() as u8);
    out.extend_from_slice(name);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(n: Notice<'_>) -> Vec<u8> {
        let mut buf = Vec::new();
        n.encode_into(&mut buf);
        assert_eq!(buf.len(), n.len());
        assert_eq!(Notice::decode(&buf).unwrap(), n);
        buf
    }

    fn carol() -> Entry<'static> {
        Entry {
            key: [0xc0; 32],
            name: "carol".into(),
        }
    }

    #[test]
    fn every_event_round_trips() {
        assert_eq!(round_trip(Notice::text("hi")), b"\x00\x00\x00hi");
        round_trip(Notice {
            event: Event::Join(carol()),
            text: "carol joined".into(),
        });
        round_trip(Notice {
            event: Event::Leave(carol(), Reason::Timeout),
            text: "".into(),
        });
        round_trip(Notice {
            event: Event::Rename(carol()),
            text: "x".into(),
        });
        round_trip(Notice {
            event: Event::Refused(carol()),
            text: "taken".into(),
        });
        round_trip(Notice {
            event: Event::Roster(vec![]),
            text: "only you".into(),
        });
        round_trip(Notice {
            event: Event::Roster(vec![
                carol(),
                Entry {
                    key: [1; 32],
                    name: "".into(),
                },
            ]),
            text: "".into(),
        });
    }

    #[test]
    fn an_unknown_event_keeps_its_text() {
        let body = b"\x7f\x00\x03abcsays so";
        let n = Notice::decode(body).unwrap();
        assert_eq!(n.event, Event::Unknown(0x7f, Cow::Borrowed(&b"abc"[..])));
        // …and re-encodes to the same bytes (found by the fuzzer: the fields were dropped).
        let mut again = Vec::new();
        n.encode_into(&mut again);
        assert_eq!(again, body);
        assert_eq!(n.text, "says so");
    }

    #[test]
    fn malformed_bodies_are_errors_not_panics() {
        for bad in [
            &b""[..],
            b"\x00",
            b"\x00\x00",
            b"\x01\x00\x05abc",
            b"\x01\x00\x01a",
            b"\x00\x00\x00\xff",
        ] {
            assert!(Notice::decode(bad).is_err(), "{bad:?}");
        }
        // A name length pointing past the fields.
        let mut bad = vec![event::JOIN, 0, 33];
        bad.extend_from_slice(&[0; 32]);
        bad.push(5);
        assert!(Notice::decode(&bad).is_err());
        // Fields left over.
        let mut bad = vec![event::JOIN, 0, 34];
        bad.extend_from_slice(&[0; 32]);
        bad.extend_from_slice(&[0, 9]);
        assert!(Notice::decode(&bad).is_err());
    }
}
