//! The plaintext inside every transport message: one type byte, then a body.
//!
//! Pure encoding and decoding, no I/O. Decoding borrows from the caller's buffer (`Cow`), so the
//! receive path copies nothing; `into_owned` makes a message that can be queued.

pub mod file;
mod mode;
pub mod notice;
pub mod peer;

pub use file::FileMessage;
pub use mode::Mode;
pub use notice::Notice;
pub use peer::PeerMessage;
use std::borrow::Cow;
use std::str;
use thiserror::Error;

/// The largest plaintext of one transport message: Noise's 65535 bytes minus the 16-byte tag.
pub const MAX_PLAINTEXT: usize = 65535 - 16;

/// The largest body: the plaintext minus the type byte.
pub const MAX_BODY: usize = MAX_PLAINTEXT - 1;

/// Bytes of the origin key at the start of a RELAY body.
pub const ORIGIN_LEN: usize = 32;

/// The longest text a RELAY can carry (the body minus the origin key).
pub const MAX_RELAY_TEXT: usize = MAX_BODY - ORIGIN_LEN;

/// Bytes of a session token in RESUME (PROTOCOL.md §4.11).
pub const TOKEN_LEN: usize = 32;

/// Message type bytes of schat/2.
pub mod kind {
    /// Listener → dialer, first message: UTF-8 greeting.
    pub const WELCOME: u8 = 0x01;
    /// A chat line, UTF-8.
    pub const TEXT: u8 = 0x02;
    /// The sender is leaving; optional UTF-8 reason. Nothing follows it.
    pub const QUIT: u8 = 0x03;
    /// Liveness probe; any body.
    pub const PING: u8 = 0x04;
    /// Answer to PING, echoing its body.
    pub const PONG: u8 = 0x05;
    /// Host → member: another member's text, with the 32-byte key of who said it.
    pub const RELAY: u8 = 0x06;
    /// Host → member: a room event (joined, left, renamed…), see [`super::notice`].
    pub const NOTICE: u8 = 0x07;
    /// The sender switches its sending key (Noise `REKEY`) right after this message. Empty.
    pub const REKEY: u8 = 0x08;
    /// Raw bytes of a pipe-mode stream.
    pub const DATA: u8 = 0x09;
    /// Each side's first message: which mode it runs (one byte, see [`super::Mode`]), then
    /// optionally a display name (UTF-8, at most 128 bytes). The dialer sends it only once it
    /// has accepted the listener's key: its "ready".
    pub const HELLO: u8 = 0x0a;
    /// Host → one member: UTF-8 text meant for that member only (`/msg`).
    pub const PRIVATE: u8 = 0x0b;
    /// Member → host: who is in the room? Empty; answered with a NOTICE.
    pub const WHO: u8 = 0x0c;
    /// The sender's new display name (UTF-8, at most 128 bytes; empty: none).
    pub const NICK: u8 = 0x0d;
    /// Dialer → listener, before its HELLO: the 16-byte secret of an invite ticket.
    pub const INVITE: u8 = 0x0e;
    /// A SPAKE2 message for a spoken code: from the dialer, the code's nameplate (u16) first.
    pub const PAKE: u8 = 0x0f;
    /// The key confirmation after PAKE: HMAC-SHA256, 32 bytes.
    pub const CONFIRM: u8 = 0x10;
    /// Pipe mode: the sender has sent all its DATA (a half-close; PROTOCOL.md §4.3). Empty.
    pub const END: u8 = 0x11;
    /// Pipe mode: the receipt for the peer's stream, sent once everything up to its END is
    /// written out: how many DATA bytes that was (u64, big-endian).
    pub const RECEIVED: u8 = 0x12;
    /// The receipt of a chat: how many of the peer's counted messages the sender has shown
    /// (u64, big-endian; PROTOCOL.md §4.10).
    pub const ACK: u8 = 0x13;
    /// Dialer → listener, first message of a resumed connection: the session token (32 bytes)
    /// and how many of the listener's counted messages the dialer has shown (u64).
    pub const RESUME: u8 = 0x14;
    /// Listener → dialer, in WELCOME's place on a resumed connection: how many of the
    /// dialer's counted messages the listener has shown (u64).
    pub const RESUMED: u8 = 0x15;
    /// A file handed over in a chat: an op byte, a transfer id, the op's fields
    /// ([`super::file`]; PROTOCOL.md §4.13). Only between sides that both sent FILES.
    pub const FILE: u8 = 0x16;
    /// A room member's message to another member, routed by key through the host, which
    /// cannot read it ([`super::peer`]; PROTOCOL.md §4.14). Only between sides that both
    /// sent PAIRS.
    pub const PEER: u8 = 0x17;
    /// Types from here up are extensions: ignored when unknown.
    pub const FIRST_EXTENSION: u8 = 0x80;
    /// Extension, right after the sender's HELLO: the ciphers it can also receive, one id
    /// byte each ([`CIPHER_AES_256_GCM`]). Handled by the transport, never shown.
    pub const CIPHERS: u8 = 0x80;
    /// Extension: the sender's next messages use the cipher named by the one id byte, keyed
    /// by `REKEY()` of its current key. Only after the peer's CIPHERS listed it.
    pub const SWITCH: u8 = 0x81;
    /// The id of AES-256-GCM (Noise `AESGCM`) in CIPHERS and SWITCH.
    pub const CIPHER_AES_256_GCM: u8 = 0x01;
    /// Extension, right after the sender's HELLO: it acknowledges what it shows with ACK
    /// (PROTOCOL.md §4.10). Empty.
    pub const RECEIPTS: u8 = 0x82;
    /// Extension, right after the sender's HELLO (and RECEIPTS): it keeps the session when
    /// the connection drops, to resume it (PROTOCOL.md §4.11). Empty.
    pub const RESUMABLE: u8 = 0x83;
    /// Extension, right after the sender's HELLO (and RECEIPTS): it takes files (FILE,
    /// PROTOCOL.md §4.13). Empty.
    pub const FILES: u8 = 0x84;
    /// Extension, right before the sender's HELLO: it takes PEER (PROTOCOL.md §4.14). One
    /// byte: from a host, `01` when it takes no part in the room (relay only); else `00`.
    pub const PAIRS: u8 = 0x85;
}

/// One decoded message. `'a` is the buffer it was decoded from; `Message<'static>` owns its data.
#[derive(Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// Listener's greeting, sent first.
    Welcome(Cow<'a, str>),
    /// A chat line.
    Text(Cow<'a, str>),
    /// The sender is leaving (the reason may be empty).
    Quit(Cow<'a, str>),
    /// Liveness probe.
    Ping(Cow<'a, [u8]>),
    /// Reply to a probe.
    Pong(Cow<'a, [u8]>),
    /// A room member's text, relayed by the host.
    Relay {
        /// The static key of the member who said it.
        origin: [u8; ORIGIN_LEN],
        /// What they said.
        text: Cow<'a, str>,
    },
    /// A room event from the host.
    Notice(Notice<'a>),
    /// The sender's following messages use its next key.
    Rekey,
    /// A chunk of a pipe-mode byte stream.
    Data(Cow<'a, [u8]>),
    /// The sender's mode, and the display name it would like to be shown by: its first message.
    Hello {
        /// Chat or pipe.
        mode: Mode,
        /// A display name (empty: none). Not checked here: see `session::names`.
        name: Cow<'a, str>,
    },
    /// Host → member: text for this member only.
    Private(Cow<'a, str>),
    /// Member → host: a request for the room's roster.
    Who,
    /// The sender's new display name (empty: none).
    Nick(Cow<'a, str>),
    /// The secret of an invite ticket (dialer → listener, before its HELLO).
    Invite(zeroize::Zeroizing<[u8; crate::invite::ticket::SECRET_LEN]>),
    /// A SPAKE2 message; the dialer's names its code's nameplate.
    Pake {
        nameplate: Option<u16>,
        message: [u8; crate::invite::code::PAKE_LEN],
    },
    /// A key confirmation after PAKE.
    Confirm([u8; crate::invite::code::CONFIRM_LEN]),
    /// Pipe mode: the sender's DATA is complete.
    End,
    /// Pipe mode: the peer's DATA, this many bytes, is written out (the end-to-end receipt).
    Received(u64),
    /// Chat: this many of the peer's counted messages are shown (the receipt, cumulative).
    Ack(u64),
    /// The sender acknowledges what it shows (an extension, right after its HELLO).
    Receipts,
    /// Dialer → listener, first on a resumed connection: the session's token, and how many of
    /// the listener's counted messages the dialer has shown.
    Resume {
        token: zeroize::Zeroizing<[u8; TOKEN_LEN]>,
        shown: u64,
    },
    /// Listener → dialer, in WELCOME's place on a resumed connection: how many of the
    /// dialer's counted messages the listener has shown.
    Resumed(u64),
    /// The sender can resume this session after a cut (an extension, after its HELLO).
    Resumable,
    /// A file transfer's message (§4.13).
    File(FileMessage<'a>),
    /// The sender takes files (an extension, after its HELLO).
    Files,
    /// A member's message to another member, through the host (§4.14).
    Peer(PeerMessage<'a>),
    /// The sender takes PEER (an extension, before its HELLO): its flags byte.
    Pairs(u8),
    /// An extension type (≥ 0x80) this version does not understand; receivers ignore it.
    Extension { kind: u8, body: Cow<'a, [u8]> },
}

/// Why a plaintext is not a valid message. Always the peer's fault when it comes off the wire.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MessageError {
    /// The plaintext had no type byte.
    #[error("empty message (no type byte)")]
    Empty,
    /// A type below 0x80 that schat/2 does not define.
    #[error("unknown message type 0x{0:02x}")]
    UnknownType(u8),
    /// A text body that is not UTF-8.
    #[error("{0} message is not valid UTF-8")]
    InvalidUtf8(&'static str),
    /// A body too short for its type.
    #[error("{0} message too short")]
    Truncated(&'static str),
    /// A message type whose body must be empty had one.
    #[error("{0} message with a body")]
    UnexpectedBody(&'static str),
    /// A body too long for one transport message.
    #[error("message body of {len} bytes is longer than the {MAX_BODY}-byte limit")]
    TooLong { len: usize },
}

impl<'a> Message<'a> {
    /// A HELLO for `mode`, with a display name (empty: none).
    pub fn hello(mode: Mode, name: impl Into<Cow<'a, str>>) -> Self {
        Message::Hello {
            mode,
            name: name.into(),
        }
    }

    /// Parses a decrypted plaintext.
    pub fn decode(plaintext: &'a [u8]) -> Result<Self, MessageError> {
        let (&kind, body) = plaintext.split_first().ok_or(MessageError::Empty)?;
        if body.len() > MAX_BODY {
            return Err(MessageError::TooLong { len: body.len() });
        }
        let text = |name| {
            str::from_utf8(body)
                .map(Cow::Borrowed)
                .map_err(|_| MessageError::InvalidUtf8(name))
        };
        Ok(match kind {
            kind::WELCOME => Message::Welcome(text("WELCOME")?),
            kind::TEXT => Message::Text(text("TEXT")?),
            kind::QUIT => Message::Quit(text("QUIT")?),
            kind::PING => Message::Ping(Cow::Borrowed(body)),
            kind::PONG => Message::Pong(Cow::Borrowed(body)),
            kind::RELAY => {
                let (origin, text) = body
                    .split_first_chunk::<ORIGIN_LEN>()
                    .ok_or(MessageError::Truncated("RELAY"))?;
                let text = str::from_utf8(text).map_err(|_| MessageError::InvalidUtf8("RELAY"))?;
                Message::Relay {
                    origin: *origin,
                    text: Cow::Borrowed(text),
                }
            }
            kind::NOTICE => Message::Notice(Notice::decode(body)?),
            kind::REKEY if body.is_empty() => Message::Rekey,
            kind::REKEY => return Err(MessageError::UnexpectedBody("REKEY")),
            kind::DATA => Message::Data(Cow::Borrowed(body)),
            kind::PRIVATE => Message::Private(text("PRIVATE")?),
            kind::WHO if body.is_empty() => Message::Who,
            kind::WHO => return Err(MessageError::UnexpectedBody("WHO")),
            kind::HELLO => {
                let mode = match body.first() {
                    Some(0x00) => Mode::Chat,
                    Some(0x01) => Mode::OldPipe,
                    Some(0x02) => Mode::Pipe,
                    _ => return Err(MessageError::UnexpectedBody("HELLO")),
                };
                let name = &body[1..];
                if name.len() > notice::MAX_NAME {
                    return Err(MessageError::UnexpectedBody("HELLO name over 128 bytes"));
                }
                let name = str::from_utf8(name).map_err(|_| MessageError::InvalidUtf8("HELLO"))?;
                Message::Hello {
                    mode,
                    name: Cow::Borrowed(name),
                }
            }
            kind::NICK if body.len() > notice::MAX_NAME => {
                return Err(MessageError::UnexpectedBody("NICK name over 128 bytes"));
            }
            kind::NICK => Message::Nick(text("NICK")?),
            kind::PAKE => {
                use crate::invite::code::PAKE_LEN;
                let (nameplate, message) = match body.len() {
                    PAKE_LEN => (None, body),
                    n if n == PAKE_LEN + 2 => {
                        (Some(u16::from_be_bytes([body[0], body[1]])), &body[2..])
                    }
                    _ => return Err(MessageError::UnexpectedBody("PAKE of another length")),
                };
                let mut m = [0u8; PAKE_LEN];
                m.copy_from_slice(message);
                Message::Pake {
                    nameplate,
                    message: m,
                }
            }
            kind::CONFIRM => match <[u8; crate::invite::code::CONFIRM_LEN]>::try_from(body) {
                Ok(mac) => Message::Confirm(mac),
                Err(_) => {
                    return Err(MessageError::UnexpectedBody(
                        "CONFIRM of other than 32 bytes",
                    ));
                }
            },
            kind::INVITE => match <[u8; crate::invite::ticket::SECRET_LEN]>::try_from(body) {
                Ok(secret) => Message::Invite(zeroize::Zeroizing::new(secret)),
                Err(_) => {
                    return Err(MessageError::UnexpectedBody(
                        "INVITE of other than 16 bytes",
                    ));
                }
            },
            kind::END if body.is_empty() => Message::End,
            kind::END => return Err(MessageError::UnexpectedBody("END")),
            kind::RECEIVED => Message::Received(u64_body(body, "RECEIVED of other than 8 bytes")?),
            kind::ACK => Message::Ack(u64_body(body, "ACK of other than 8 bytes")?),
            kind::RECEIPTS if body.is_empty() => Message::Receipts,
            kind::RECEIPTS => return Err(MessageError::UnexpectedBody("RECEIPTS")),
            kind::RESUMABLE if body.is_empty() => Message::Resumable,
            kind::RESUMABLE => return Err(MessageError::UnexpectedBody("RESUMABLE")),
            kind::FILES if body.is_empty() => Message::Files,
            kind::FILES => return Err(MessageError::UnexpectedBody("FILES")),
            kind::FILE => Message::File(FileMessage::decode(body)?),
            kind::PEER => Message::Peer(PeerMessage::decode(body)?),
            kind::PAIRS => match body {
                [flags] => Message::Pairs(*flags),
                _ => return Err(MessageError::UnexpectedBody("PAIRS of other than 1 byte")),
            },
            kind::RESUMED => Message::Resumed(u64_body(body, "RESUMED of other than 8 bytes")?),
            kind::RESUME => match body.split_first_chunk::<TOKEN_LEN>() {
                Some((token, shown)) if shown.len() == 8 => Message::Resume {
                    token: zeroize::Zeroizing::new(*token),
                    shown: u64_body(shown, "RESUME of other than 40 bytes")?,
                },
                _ => {
                    return Err(MessageError::UnexpectedBody(
                        "RESUME of other than 40 bytes",
                    ));
                }
            },
            k if k >= kind::FIRST_EXTENSION => Message::Extension {
                kind: k,
                body: Cow::Borrowed(body),
            },
            k => return Err(MessageError::UnknownType(k)),
        })
    }

    /// Whether it is a *counted* message of a chat: numbered by its sender, acknowledged by
    /// its receiver, sent again after a resume (PROTOCOL.md §4.10).
    pub fn is_counted(&self) -> bool {
        match self {
            Message::Text(_)
            | Message::Relay { .. }
            | Message::Private(_)
            | Message::Notice(_)
            | Message::Nick(_) => true,
            // A file's bytes are not: a cut loses them, and the transfer goes on from what
            // arrived (§4.14).
            Message::Peer(peer) => !peer.is_bulk(),
            _ => false,
        }
    }

    /// The type byte.
    pub fn kind(&self) -> u8 {
        match self {
            Message::Welcome(_) => kind::WELCOME,
            Message::Text(_) => kind::TEXT,
            Message::Quit(_) => kind::QUIT,
            Message::Ping(_) => kind::PING,
            Message::Pong(_) => kind::PONG,
            Message::Relay { .. } => kind::RELAY,
            Message::Notice(_) => kind::NOTICE,
            Message::Rekey => kind::REKEY,
            Message::Data(_) => kind::DATA,
            Message::Hello { .. } => kind::HELLO,
            Message::Private(_) => kind::PRIVATE,
            Message::Who => kind::WHO,
            Message::Nick(_) => kind::NICK,
            Message::Invite(_) => kind::INVITE,
            Message::Pake { .. } => kind::PAKE,
            Message::Confirm(_) => kind::CONFIRM,
            Message::End => kind::END,
            Message::Received(_) => kind::RECEIVED,
            Message::Ack(_) => kind::ACK,
            Message::Receipts => kind::RECEIPTS,
            Message::Resume { .. } => kind::RESUME,
            Message::Resumed(_) => kind::RESUMED,
            Message::Resumable => kind::RESUMABLE,
            Message::File(_) => kind::FILE,
            Message::Files => kind::FILES,
            Message::Peer(_) => kind::PEER,
            Message::Pairs(_) => kind::PAIRS,
            Message::Extension { kind, .. } => *kind,
        }
    }

    /// The body bytes, for the types whose body is one piece (not RELAY, NOTICE, HELLO).
    fn simple_body(&self) -> &[u8] {
        match self {
            Message::Welcome(t)
            | Message::Text(t)
            | Message::Quit(t)
            | Message::Private(t)
            | Message::Nick(t)
            | Message::Relay { text: t, .. } => t.as_bytes(),
            Message::Ping(b)
            | Message::Pong(b)
            | Message::Data(b)
            | Message::Extension { body: b, .. } => b,
            Message::Hello { name, .. } => name.as_bytes(),
            Message::Pairs(flags) => std::slice::from_ref(flags),
            Message::Invite(secret) => &secret[..],
            Message::Pake { message, .. } => &message[..],
            Message::Confirm(mac) => &mac[..],
            Message::Rekey
            | Message::Who
            | Message::Notice(_)
            | Message::End
            | Message::Received(_)
            | Message::Ack(_)
            | Message::Resumed(_)
            | Message::Resumable
            | Message::File(_)
            | Message::Files
            | Message::Peer(_)
            | Message::Receipts => &[],
            Message::Resume { token, .. } => &token[..],
        }
    }

    /// Bytes of the whole body on the wire.
    pub fn body_len(&self) -> usize {
        match self {
            Message::Relay { text, .. } => ORIGIN_LEN + text.len(),
            Message::Hello { name, .. } => 1 + name.len(),
            Message::Pake { nameplate, message } => {
                message.len() + if nameplate.is_some() { 2 } else { 0 }
            }
            Message::Notice(n) => n.len(),
            Message::Received(_) | Message::Ack(_) | Message::Resumed(_) => 8,
            Message::Resume { .. } => TOKEN_LEN + 8,
            Message::File(f) => f.len(),
            Message::Peer(p) => p.len(),
            other => other.simple_body().len(),
        }
    }

    /// Writes type byte + body into `out` (cleared first), refusing bodies that do not fit.
    pub fn encode_into(&self, out: &mut Vec<u8>) -> Result<(), MessageError> {
        let len = self.body_len();
        if len > MAX_BODY {
            return Err(MessageError::TooLong { len });
        }
        out.clear();
        out.reserve(1 + len);
        out.push(self.kind());
        match self {
            Message::Relay { origin, .. } => out.extend_from_slice(origin),
            Message::Hello { mode, .. } => out.push(mode.byte()),
            Message::Pake {
                nameplate: Some(n), ..
            } => out.extend_from_slice(&n.to_be_bytes()),
            Message::Notice(n) => n.encode_into(out),
            Message::File(f) => f.encode_into(out),
            Message::Peer(p) => p.encode_into(out),
            Message::Received(count) | Message::Ack(count) | Message::Resumed(count) => {
                out.extend_from_slice(&count.to_be_bytes())
            }
            _ => {}
        }
        out.extend_from_slice(self.simple_body());
        if let Message::Resume { shown, .. } = self {
            out.extend_from_slice(&shown.to_be_bytes());
        }
        Ok(())
    }

    /// A copy that no longer borrows the receive buffer.
    pub fn into_owned(self) -> Message<'static> {
        match self {
            Message::Welcome(t) => Message::Welcome(Cow::Owned(t.into_owned())),
            Message::Text(t) => Message::Text(Cow::Owned(t.into_owned())),
            Message::Quit(t) => Message::Quit(Cow::Owned(t.into_owned())),
            Message::Ping(b) => Message::Ping(Cow::Owned(b.into_owned())),
            Message::Pong(b) => Message::Pong(Cow::Owned(b.into_owned())),
            Message::Relay { origin, text } => Message::Relay {
                origin,
                text: Cow::Owned(text.into_owned()),
            },
            Message::Notice(n) => Message::Notice(n.into_owned()),
            Message::Rekey => Message::Rekey,
            Message::Data(b) => Message::Data(Cow::Owned(b.into_owned())),
            Message::Hello { mode, name } => Message::Hello {
                mode,
                name: Cow::Owned(name.into_owned()),
            },
            Message::Private(t) => Message::Private(Cow::Owned(t.into_owned())),
            Message::Who => Message::Who,
            Message::Nick(t) => Message::Nick(Cow::Owned(t.into_owned())),
            Message::Invite(secret) => Message::Invite(secret),
            Message::Pake { nameplate, message } => Message::Pake { nameplate, message },
            Message::Confirm(mac) => Message::Confirm(mac),
            Message::End => Message::End,
            Message::Received(count) => Message::Received(count),
            Message::Ack(count) => Message::Ack(count),
            Message::Receipts => Message::Receipts,
            Message::Resume { token, shown } => Message::Resume { token, shown },
            Message::Resumed(count) => Message::Resumed(count),
            Message::Resumable => Message::Resumable,
            Message::File(f) => Message::File(f.into_owned()),
            Message::Files => Message::Files,
            Message::Peer(p) => Message::Peer(p.into_owned()),
            Message::Pairs(flags) => Message::Pairs(flags),
            Message::Extension { kind, body } => Message::Extension {
                kind,
                body: Cow::Owned(body.into_owned()),
            },
        }
    }

    /// Name of the type, for logs and errors.
    pub fn name(&self) -> &'static str {
        match self {
            Message::Welcome(_) => "WELCOME",
            Message::Text(_) => "TEXT",
            Message::Quit(_) => "QUIT",
            Message::Ping(_) => "PING",
            Message::Pong(_) => "PONG",
            Message::Relay { .. } => "RELAY",
            Message::Notice(_) => "NOTICE",
            Message::Rekey => "REKEY",
            Message::Data(_) => "DATA",
            Message::Hello { .. } => "HELLO",
            Message::Private(_) => "PRIVATE",
            Message::Who => "WHO",
            Message::Nick(_) => "NICK",
            Message::Invite(_) => "INVITE",
            Message::Pake { .. } => "PAKE",
            Message::Confirm(_) => "CONFIRM",
            Message::End => "END",
            Message::Received(_) => "RECEIVED",
            Message::Ack(_) => "ACK",
            Message::Receipts => "RECEIPTS",
            Message::Resume { .. } => "RESUME",
            Message::Resumed(_) => "RESUMED",
            Message::Resumable => "RESUMABLE",
            Message::File(f) => f.name(),
            Message::Files => "FILES",
            Message::Peer(_) => "PEER",
            Message::Pairs(_) => "PAIRS",
            Message::Extension { .. } => "extension",
        }
    }
}

/// A body that is exactly one u64, big-endian.
fn u64_body(body: &[u8], what: &'static str) -> Result<u64, MessageError> {
    <[u8; 8]>::try_from(body)
        .map(u64::from_be_bytes)
        .map_err(|_| MessageError::UnexpectedBody(what))
}

/// Shows type and length only: message bodies are private chat content and stay out of logs.
impl std::fmt::Debug for Message<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}(0x{:02x}, {} bytes)",
            self.name(),
            self.kind(),
            self.body_len()
        )
    }
}

#[cfg(test)]
mod tests;
