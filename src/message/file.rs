//! FILE bodies: files handed over inside a chat (PROTOCOL.md §4.13). Pure codec.
//!
//! ```text
//! FILE body = op (1) | transfer id (4, big-endian) | the op's fields
//! ```
//!
//! The id names one offer, chosen by the side that made it: OFFER, CHUNK, DONE and CANCEL
//! travel from that side (the sender) and carry its own ids; ACCEPT, REJECT, CREDIT and
//! VERIFIED travel back (from the receiver) and carry the peer's. So both sides may use the
//! same number for different transfers without confusion.

use super::{MAX_BODY, MessageError};
use std::borrow::Cow;
use std::str;

/// Op bytes.
pub mod op {
    /// Sender → receiver: a file (size, BLAKE3, path) it would like to send.
    pub const OFFER: u8 = 0x01;
    /// Receiver → sender: send it, from this offset, up to this limit.
    pub const ACCEPT: u8 = 0x02;
    /// Receiver → sender: no (before ACCEPT), or stop (after it), with a reason.
    pub const REJECT: u8 = 0x03;
    /// Sender → receiver: the file's bytes at an offset.
    pub const CHUNK: u8 = 0x04;
    /// Receiver → sender: a new limit, up to which the sender may send.
    pub const CREDIT: u8 = 0x05;
    /// Sender → receiver: every byte has been sent.
    pub const DONE: u8 = 0x06;
    /// Receiver → sender: the file's hash checked out and it is saved.
    pub const VERIFIED: u8 = 0x07;
    /// Sender → receiver: the sender stops (withdraws its offer), with a reason.
    pub const CANCEL: u8 = 0x08;
}

/// Bytes of a BLAKE3 hash.
pub const HASH_LEN: usize = 32;

/// The longest path in an OFFER, in bytes.
pub const MAX_PATH: usize = 1024;

/// The longest reason in a REJECT or CANCEL, in bytes.
pub const MAX_REASON: usize = 512;

/// Bytes of a CHUNK's header: op, id, offset.
pub const CHUNK_HEADER: usize = 1 + 4 + 8;

/// The most file bytes one CHUNK carries: a whole message body minus the header.
pub const MAX_CHUNK: usize = MAX_BODY - CHUNK_HEADER;

/// One FILE message. `'a` is the buffer it was decoded from.
#[derive(Clone, PartialEq, Eq)]
pub enum FileMessage<'a> {
    /// A file the sender would like to send: `path` is relative, `/`-separated, and untrusted
    /// (see `files::names`).
    Offer {
        id: u32,
        size: u64,
        hash: [u8; HASH_LEN],
        path: Cow<'a, str>,
    },
    /// Send it, starting at `offset` (what the receiver already has), up to `limit`.
    Accept { id: u32, offset: u64, limit: u64 },
    /// Declined, or stopped by the receiver.
    Reject { id: u32, reason: Cow<'a, str> },
    /// The file's bytes `offset..offset + data.len()`.
    Chunk {
        id: u32,
        offset: u64,
        data: Cow<'a, [u8]>,
    },
    /// The sender may now send up to `limit` (an offset, not an increment).
    Credit { id: u32, limit: u64 },
    /// All bytes sent.
    Done { id: u32 },
    /// Saved and checked against the offer's hash.
    Verified { id: u32 },
    /// Withdrawn by the sender.
    Cancel { id: u32, reason: Cow<'a, str> },
}

impl<'a> FileMessage<'a> {
    /// Parses a FILE body (after the type byte).
    pub fn decode(body: &'a [u8]) -> Result<Self, MessageError> {
        let bad = |what| Err(MessageError::UnexpectedBody(what));
        let Some((&op, rest)) = body.split_first() else {
            return bad("FILE without an op");
        };
        let Some((id, rest)) = rest.split_first_chunk::<4>() else {
            return bad("FILE without a transfer id");
        };
        let id = u32::from_be_bytes(*id);
        let u64_at = |b: &[u8], at: usize| {
            b.get(at..at + 8)
                .map(|b| u64::from_be_bytes(b.try_into().unwrap_or_default()))
        };
        let reason = |b: &'a [u8], what| match b.len() <= MAX_REASON {
            true => str::from_utf8(b)
                .map(Cow::Borrowed)
                .map_err(|_| MessageError::InvalidUtf8(what)),
            false => Err(MessageError::UnexpectedBody("FILE reason over 512 bytes")),
        };
        Ok(match op {
            op::OFFER => {
                let (Some(size), Some(hash)) = (u64_at(rest, 0), rest.get(8..8 + HASH_LEN)) else {
                    return bad("FILE OFFER too short");
                };
                let path = &rest[8 + HASH_LEN..];
                if path.is_empty() || path.len() > MAX_PATH {
                    return bad("FILE OFFER path empty or over 1024 bytes");
                }
                let path = str::from_utf8(path).map_err(|_| MessageError::InvalidUtf8("OFFER"))?;
                let mut h = [0u8; HASH_LEN];
                h.copy_from_slice(hash);
                FileMessage::Offer {
                    id,
                    size,
                    hash: h,
                    path: Cow::Borrowed(path),
                }
            }
            op::ACCEPT => match (rest.len(), u64_at(rest, 0), u64_at(rest, 8)) {
                (16, Some(offset), Some(limit)) => FileMessage::Accept { id, offset, limit },
                _ => return bad("FILE ACCEPT of other than 21 bytes"),
            },
            op::CREDIT => match (rest.len(), u64_at(rest, 0)) {
                (8, Some(limit)) => FileMessage::Credit { id, limit },
                _ => return bad("FILE CREDIT of other than 13 bytes"),
            },
            op::CHUNK => match u64_at(rest, 0) {
                Some(offset) if rest.len() > 8 => FileMessage::Chunk {
                    id,
                    offset,
                    data: Cow::Borrowed(&rest[8..]),
                },
                _ => return bad("FILE CHUNK without data"),
            },
            op::DONE | op::VERIFIED if !rest.is_empty() => {
                return bad("FILE DONE or VERIFIED with more than an id");
            }
            op::DONE => FileMessage::Done { id },
            op::VERIFIED => FileMessage::Verified { id },
            op::REJECT => FileMessage::Reject {
                id,
                reason: reason(rest, "REJECT")?,
            },
            op::CANCEL => FileMessage::Cancel {
                id,
                reason: reason(rest, "CANCEL")?,
            },
            _ => return bad("FILE with an unknown op"),
        })
    }

    /// The transfer id.
    pub fn id(&self) -> u32 {
        match self {
            FileMessage::Offer { id, .. }
            | FileMessage::Accept { id, .. }
            | FileMessage::Reject { id, .. }
            | FileMessage::Chunk { id, .. }
            | FileMessage::Credit { id, .. }
            | FileMessage::Done { id }
            | FileMessage::Verified { id }
            | FileMessage::Cancel { id, .. } => *id,
        }
    }

    /// The op byte.
    pub fn op(&self) -> u8 {
        match self {
            FileMessage::Offer { .. } => op::OFFER,
            FileMessage::Accept { .. } => op::ACCEPT,
            FileMessage::Reject { .. } => op::REJECT,
            FileMessage::Chunk { .. } => op::CHUNK,
            FileMessage::Credit { .. } => op::CREDIT,
            FileMessage::Done { .. } => op::DONE,
            FileMessage::Verified { .. } => op::VERIFIED,
            FileMessage::Cancel { .. } => op::CANCEL,
        }
    }

    /// A file's bytes and their end (CHUNK, DONE): what goes behind everything else, and
    /// between room members as BULK (PROTOCOL.md §4.14).
    pub fn is_bulk(&self) -> bool {
        matches!(self, FileMessage::Chunk { .. } | FileMessage::Done { .. })
    }

    /// Whether it travels from the side that offered the file (else from the receiver).
    pub fn from_sender(&self) -> bool {
        matches!(
            self,
            FileMessage::Offer { .. }
                | FileMessage::Chunk { .. }
                | FileMessage::Done { .. }
                | FileMessage::Cancel { .. }
        )
    }

    /// Bytes of the body.
    pub fn len(&self) -> usize {
        5 + match self {
            FileMessage::Offer { path, .. } => 8 + HASH_LEN + path.len(),
            FileMessage::Accept { .. } => 16,
            FileMessage::Credit { .. } => 8,
            FileMessage::Chunk { data, .. } => 8 + data.len(),
            FileMessage::Done { .. } | FileMessage::Verified { .. } => 0,
            FileMessage::Reject { reason, .. } | FileMessage::Cancel { reason, .. } => reason.len(),
        }
    }

    /// Never empty: the op and the id are always there.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the body to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.push(self.op());
        out.extend_from_slice(&self.id().to_be_bytes());
        match self {
            FileMessage::Offer {
                size, hash, path, ..
            } => {
                out.extend_from_slice(&size.to_be_bytes());
                out.extend_from_slice(hash);
                out.extend_from_slice(path.as_bytes());
            }
            FileMessage::Accept { offset, limit, .. } => {
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(&limit.to_be_bytes());
            }
            FileMessage::Credit { limit, .. } => out.extend_from_slice(&limit.to_be_bytes()),
            FileMessage::Chunk { offset, data, .. } => {
                out.extend_from_slice(&offset.to_be_bytes());
                out.extend_from_slice(data);
            }
            FileMessage::Done { .. } | FileMessage::Verified { .. } => {}
            FileMessage::Reject { reason, .. } | FileMessage::Cancel { reason, .. } => {
                out.extend_from_slice(reason.as_bytes())
            }
        }
    }

    /// A copy that no longer borrows the receive buffer.
    pub fn into_owned(self) -> FileMessage<'static> {
        match self {
            FileMessage::Offer {
                id,
                size,
                hash,
                path,
            } => FileMessage::Offer {
                id,
                size,
                hash,
                path: Cow::Owned(path.into_owned()),
            },
            FileMessage::Accept { id, offset, limit } => FileMessage::Accept { id, offset, limit },
            FileMessage::Reject { id, reason } => FileMessage::Reject {
                id,
                reason: Cow::Owned(reason.into_owned()),
            },
            FileMessage::Chunk { id, offset, data } => FileMessage::Chunk {
                id,
                offset,
                data: Cow::Owned(data.into_owned()),
            },
            FileMessage::Credit { id, limit } => FileMessage::Credit { id, limit },
            FileMessage::Done { id } => FileMessage::Done { id },
            FileMessage::Verified { id } => FileMessage::Verified { id },
            FileMessage::Cancel { id, reason } => FileMessage::Cancel {
                id,
                reason: Cow::Owned(reason.into_owned()),
            },
        }
    }

    /// The op's name, for errors and logs.
    pub fn name(&self) -> &'static str {
        match self {
            FileMessage::Offer { .. } => "FILE OFFER",
            FileMessage::Accept { .. } => "FILE ACCEPT",
            FileMessage::Reject { .. } => "FILE REJECT",
            FileMessage::Chunk { .. } => "FILE CHUNK",
            FileMessage::Credit { .. } => "FILE CREDIT",
            FileMessage::Done { .. } => "FILE DONE",
            FileMessage::Verified { .. } => "FILE VERIFIED",
            FileMessage::Cancel { .. } => "FILE CANCEL",
        }
    }
}

/// Type, op, id and length only: file names and contents stay out of logs.
impl std::fmt::Debug for FileMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}(#{}, {} bytes)", self.name(), self.id(), self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(m: &FileMessage<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode_into(&mut out);
        assert_eq!(out.len(), m.len());
        out
    }

    #[test]
    fn every_op_round_trips() {
        for m in [
            FileMessage::Offer {
                id: 1,
                size: 5,
                hash: [9; 32],
                path: "a/b é.txt".into(),
            },
            FileMessage::Accept {
                id: 2,
                offset: 3,
                limit: 1 << 40,
            },
            FileMessage::Reject {
                id: 3,
                reason: "".into(),
            },
            FileMessage::Chunk {
                id: 4,
                offset: 7,
                data: vec![1; MAX_CHUNK].into(),
            },
            FileMessage::Credit { id: 5, limit: 9 },
            FileMessage::Done { id: u32::MAX },
            FileMessage::Verified { id: 0 },
            FileMessage::Cancel {
                id: 6,
                reason: "stopped".into(),
            },
        ] {
            let b = bytes(&m);
            assert_eq!(FileMessage::decode(&b).unwrap(), m);
        }
    }

    #[test]
    fn malformed_bodies_are_refused() {
        for bad in [
            &b""[..],
            &[0x01, 0, 0, 0][..],
            // An offer without a path, and one whose path is not UTF-8.
            &[&[1, 0, 0, 0, 1][..], &[0; 40]].concat(),
            &[&[1, 0, 0, 0, 1][..], &[0; 40], &[0xff]].concat(),
            // ACCEPT and CREDIT of the wrong length.
            &[&[2, 0, 0, 0, 1][..], &[0; 15]].concat(),
            &[&[5, 0, 0, 0, 1][..], &[0; 9]].concat(),
            // A CHUNK with no data, DONE with a body, an unknown op.
            &[&[4, 0, 0, 0, 1][..], &[0; 8]].concat(),
            &[6, 0, 0, 0, 1, 0][..],
            &[9, 0, 0, 0, 1][..],
            // A reason too long.
            &[&[3, 0, 0, 0, 1][..], &[b'a'; 513]].concat(),
        ] {
            assert!(FileMessage::decode(bad).is_err(), "{bad:02x?}");
        }
        let long_path = [&[1, 0, 0, 0, 1][..], &[0; 40], &[b'a'; 1025]].concat();
        assert!(FileMessage::decode(&long_path).is_err());
    }
}
