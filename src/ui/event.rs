//! `--json` events: one typed struct per event (README lists them), serialized by serde_json.
//!
//! Strings are escaped beyond what JSON requires: besides the C0 controls, DEL, the C1
//! controls, the bidi controls and the line/paragraph separators become `\uXXXX`, so that a
//! consumer that prints a field as it is can never have a peer drive its terminal.

use serde::Serialize;
use std::io;

/// A peer as events name it. `petname` is ours for it, `name` what it announced; `null` when
/// there is none.
#[derive(Debug, Serialize)]
pub struct Peer<'a> {
    /// Its key's fingerprint: 64 lowercase hex digits.
    pub fingerprint: String,
    /// Our petname for it (known_peers).
    pub petname: Option<&'a str>,
    /// The display name it announced.
    pub name: Option<&'a str>,
}

/// One event; `event` names it.
#[derive(Debug, Serialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum Event<'a> {
    /// The session is up and the peer accepted.
    Connected {
        peer: Peer<'a>,
        safety_number: &'a str,
        address: Option<&'a str>,
    },
    /// The listener's greeting.
    Welcome { from: Peer<'a>, text: &'a str },
    /// `listen --p2p`: the ticket that reaches this listener (no secret in it).
    Ticket { ticket: &'a str },
    /// A chat message: `via` the host when relayed in a room; `action` for `/me` (the text
    /// without it); `private` for the host's words to us alone.
    Message {
        from: Peer<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<Peer<'a>>,
        text: &'a str,
        action: bool,
        private: bool,
    },
    /// A room notice that is only text (a summary, a reply).
    Notice { from: Peer<'a>, text: &'a str },
    /// A room member joined (`via`: the host that announced it; absent on the host).
    Joined {
        peer: Peer<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<Peer<'a>>,
    },
    /// The peer left, or (with `via`) a room member did. `reason`: quit, cut, refused,
    /// timeout, error (or other, from a newer host).
    Left {
        peer: Peer<'a>,
        reason: &'a str,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<Peer<'a>>,
    },
    /// A room member (or we, or the host) took a new display name: `peer.name`.
    Renamed {
        peer: Peer<'a>,
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<Peer<'a>>,
    },
    /// The host turned down the display name we asked for.
    NameRefused {
        name: &'a str,
        text: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<Peer<'a>>,
    },
    /// Who else is in the room.
    Roster {
        members: Vec<Peer<'a>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        via: Option<Peer<'a>>,
    },
    /// A line of ours went out (`text` as typed): `id` is its number in the session, which a
    /// later `delivered` event names. (Counted from 1; other counted messages, such as a
    /// `/nick`, take numbers too, so ids may skip.)
    Sent { id: u64, text: &'a str },
    /// The peer showed our line `id` (in a room: every member it went to did).
    Delivered { id: u64 },
    /// A file offered: `direction` `out` (ours, to the peer) or `in` (to us: it waits for
    /// `/accept` unless `accepted`, by `--accept-files` or as a resume). `transfer` is the
    /// number the other file events and `/accept N` use; `hash` its BLAKE3, hex.
    FileOffered {
        transfer: u32,
        direction: &'a str,
        peer: Peer<'a>,
        name: &'a str,
        size: u64,
        hash: &'a str,
        accepted: bool,
    },
    /// Bytes moving, at most twice a second per transfer: `bytes` of `size` are there,
    /// `rate` bytes per second.
    FileProgress {
        transfer: u32,
        direction: &'a str,
        bytes: u64,
        size: u64,
        rate: u64,
    },
    /// Delivered and checked against `hash` (BLAKE3, hex): `path` where it was saved (a file
    /// received); `moved` the bytes that travelled (less than `size` after a resume).
    FileDone {
        transfer: u32,
        direction: &'a str,
        name: &'a str,
        size: u64,
        hash: &'a str,
        #[serde(skip_serializing_if = "Option::is_none")]
        path: Option<&'a str>,
        moved: u64,
    },
    /// It did not happen: refused, declined, cancelled, cut, or it failed its check.
    FileFailed {
        transfer: u32,
        direction: &'a str,
        name: &'a str,
        reason: &'a str,
    },
    /// Something went wrong locally or with the peer.
    Error { message: &'a str },
}

/// An event and when it happened, as one line.
#[derive(Serialize)]
struct Line<'a> {
    #[serde(flatten)]
    event: &'a Event<'a>,
    /// RFC 3339, UTC.
    time: &'a str,
}

/// The event as one line of JSON (no newline).
pub fn line(event: &Event<'_>, time: &str) -> io::Result<String> {
    let mut out = Vec::with_capacity(256);
    let mut serializer = serde_json::Serializer::with_formatter(&mut out, Escaping);
    Line { event, time }
        .serialize(&mut serializer)
        .map_err(io::Error::other)?;
    String::from_utf8(out).map_err(io::Error::other)
}

/// serde_json's compact output, with more characters escaped (see the module's doc).
struct Escaping;

impl serde_json::ser::Formatter for Escaping {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            if must_escape(c) {
                writer.write_all(&fragment.as_bytes()[start..i])?;
                write!(writer, "\\u{:04x}", c as u32)?;
                start = i + c.len_utf8();
            }
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// What serde_json leaves as it is but a terminal would act on. (C0 controls never reach a
/// fragment: serde_json escapes them itself.)
fn must_escape(c: char) -> bool {
    matches!(
        c,
        '\x7f'..='\u{9f}'
            | '\u{061c}'
            | '\u{200e}'
            | '\u{200f}'
            | '\u{202a}'..='\u{202e}'
            | '\u{2066}'..='\u{2069}'
            | '\u{2028}'
            | '\u{2029}'
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn peer() -> Peer<'static> {
        Peer {
            fingerprint: "ab".repeat(32),
            petname: None,
            name: Some("carol"),
        }
    }

    #[test]
    fn strings_are_escaped_for_json_and_for_terminals() {
        let event = Event::Error {
            message: "a\"b\\c \x1b[2J\n\t\0 x\u{202e}y\u{9b} héllo ✓",
        };
        let text = line(&event, "t").unwrap();
        assert_eq!(
            text,
            r#"{"event":"error","message":"a\"b\\c \u001b[2J\n\t\u0000 x\u202ey\u009b héllo ✓","time":"t"}"#
        );
        let back: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(
            back["message"],
            "a\"b\\c \x1b[2J\n\t\0 x\u{202e}y\u{9b} héllo ✓"
        );
    }

    #[test]
    fn events_are_tagged_and_optional_parts_are_null_or_absent() {
        let text = line(
            &Event::Message {
                from: peer(),
                via: None,
                text: "hi",
                action: false,
                private: false,
            },
            "t",
        )
        .unwrap();
        let v: serde_json::Value = serde_json::from_str(&text).unwrap();
        assert_eq!(v["event"], "message");
        assert_eq!(v["from"]["name"], "carol");
        assert!(v["from"]["petname"].is_null());
        assert!(v.get("via").is_none());
        let text = line(
            &Event::NameRefused {
                name: "x",
                text: "why",
                via: Some(peer()),
            },
            "t",
        )
        .unwrap();
        assert!(text.starts_with(r#"{"event":"name_refused","#), "{text}");
    }
}
