//! PEER bodies: one room member's message to another, routed by key through the host, which
//! cannot read it (PROTOCOL.md §4.14). Pure codec.
//!
//! ```text
//! PEER body = key (32) | op (1) | the op's fields
//!   member → host: key = the member it is for;  host → member: key = the member it is from
//! ```

use super::MessageError;
use std::borrow::Cow;

/// Bytes of the key that routes a PEER.
pub const KEY_LEN: usize = 32;

/// Op bytes.
pub mod op {
    /// Handshake message 1, 2 or 3 of the pair's schat/2 handshake (the op is the number).
    pub const HANDSHAKE_1: u8 = 0x01;
    pub const HANDSHAKE_2: u8 = 0x02;
    pub const HANDSHAKE_3: u8 = 0x03;
    /// A message sealed for the member: counter (u64) then ciphertext.
    pub const SEALED: u8 = 0x04;
    /// Host → member: there is nobody by that key to give it to. Empty.
    pub const GONE: u8 = 0x05;
    /// A file's bytes sealed for the member: nonce (u64, top bit set) then ciphertext. Not
    /// counted, not charged to the author's share (the receiver's credit bounds it).
    pub const BULK: u8 = 0x06;
}

/// The top bit of a BULK's nonce: a SEALED's never has it, so the two never share a nonce.
pub const BULK_NONCE: u64 = 1 << 63;

/// A BULK's nonce: the top bit, the transfer's id (below 2^32), and its BULKs counted from 0
/// (below 2^31) — unique under the pair's key without any state shared between transfers.
pub fn bulk_nonce(id: u32, index: u32) -> Option<u64> {
    (index < 1 << 31).then(|| BULK_NONCE | u64::from(id) << 31 | u64::from(index))
}

/// The transfer id a BULK nonce names (`None`: not a BULK nonce).
pub fn bulk_id(nonce: u64) -> Option<u32> {
    (nonce & BULK_NONCE != 0).then_some(((nonce & !BULK_NONCE) >> 31) as u32)
}

/// The exact sizes of handshake messages 1, 2 and 3 (as on the outer connection, §3).
pub const HANDSHAKE_LENS: [usize; 3] = crate::handshake::core::MESSAGE_LENS;

/// Bytes before a SEALED's ciphertext: key, op, counter.
pub const SEALED_HEADER: usize = KEY_LEN + 1 + 8;

/// What a PEER does.
#[derive(Clone, PartialEq, Eq)]
pub enum PeerOp<'a> {
    /// Message `step` (1–3) of the pair's handshake.
    Handshake { step: u8, message: Cow<'a, [u8]> },
    /// A message sealed under the pair's session, with nonce `counter`.
    Sealed {
        counter: u64,
        ciphertext: Cow<'a, [u8]>,
    },
    /// The host has nobody by the key (not in the room, or it does not take PEER).
    Gone,
    /// A file's bytes (FILE CHUNK or DONE) sealed under the pair's session, with a nonce
    /// from [`bulk_nonce`].
    Bulk {
        nonce: u64,
        ciphertext: Cow<'a, [u8]>,
    },
}

/// One PEER message.
#[derive(Clone, PartialEq, Eq)]
pub struct PeerMessage<'a> {
    /// Whom it is for (member → host) or from (host → member).
    pub key: [u8; KEY_LEN],
    pub op: PeerOp<'a>,
}

impl<'a> PeerMessage<'a> {
    /// Parses a PEER body (after the type byte).
    pub fn decode(body: &'a [u8]) -> Result<Self, MessageError> {
        let bad = |what| Err(MessageError::UnexpectedBody(what));
        let Some((key, rest)) = body.split_first_chunk::<KEY_LEN>() else {
            return bad("PEER without a key");
        };
        let Some((&op, rest)) = rest.split_first() else {
            return bad("PEER without an op");
        };
        let op = match op {
            op::HANDSHAKE_1 | op::HANDSHAKE_2 | op::HANDSHAKE_3 => {
                if rest.len() != HANDSHAKE_LENS[usize::from(op - 1)] {
                    return bad("PEER handshake message of the wrong size");
                }
                PeerOp::Handshake {
                    step: op,
                    message: Cow::Borrowed(rest),
                }
            }
            op::SEALED | op::BULK => match rest.split_first_chunk::<8>() {
                Some((counter, ciphertext)) if ciphertext.len() >= crate::cipher::TAG_LEN => {
                    let (counter, ciphertext) =
                        (u64::from_be_bytes(*counter), Cow::Borrowed(ciphertext));
                    match op {
                        op::SEALED => PeerOp::Sealed {
                            counter,
                            ciphertext,
                        },
                        _ => PeerOp::Bulk {
                            nonce: counter,
                            ciphertext,
                        },
                    }
                }
                _ => return bad("PEER SEALED or BULK shorter than a nonce and a tag"),
            },
            op::GONE if rest.is_empty() => PeerOp::Gone,
            op::GONE => return bad("PEER GONE with a body"),
            _ => return bad("PEER with an unknown op"),
        };
        Ok(PeerMessage { key: *key, op })
    }

    /// The op byte.
    pub fn op(&self) -> u8 {
        match &self.op {
            PeerOp::Handshake { step, .. } => *step,
            PeerOp::Sealed { .. } => op::SEALED,
            PeerOp::Gone => op::GONE,
            PeerOp::Bulk { .. } => op::BULK,
        }
    }

    /// A file's bytes: not counted (§4.10), queued behind the receiver's other messages.
    pub fn is_bulk(&self) -> bool {
        matches!(self.op, PeerOp::Bulk { .. })
    }

    /// Bytes of the body on the wire.
    pub fn len(&self) -> usize {
        KEY_LEN
            + 1
            + match &self.op {
                PeerOp::Handshake { message, .. } => message.len(),
                PeerOp::Sealed { ciphertext, .. } | PeerOp::Bulk { ciphertext, .. } => {
                    8 + ciphertext.len()
                }
                PeerOp::Gone => 0,
            }
    }

    /// Never empty: there is always a key and an op.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Appends the body to `out`.
    pub fn encode_into(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(&self.key);
        out.push(self.op());
        match &self.op {
            PeerOp::Handshake { message, .. } => out.extend_from_slice(message),
            PeerOp::Sealed {
                counter: nonce,
                ciphertext,
            }
            | PeerOp::Bulk { nonce, ciphertext } => {
                out.extend_from_slice(&nonce.to_be_bytes());
                out.extend_from_slice(ciphertext);
            }
            PeerOp::Gone => {}
        }
    }

    /// The same message, re-addressed: what the host forwards (`key` becomes the author's).
    pub fn readdressed(self, key: [u8; KEY_LEN]) -> PeerMessage<'a> {
        PeerMessage { key, ..self }
    }

    /// A copy that no longer borrows the receive buffer.
    pub fn into_owned(self) -> PeerMessage<'static> {
        let op = match self.op {
            PeerOp::Handshake { step, message } => PeerOp::Handshake {
                step,
                message: Cow::Owned(message.into_owned()),
            },
            PeerOp::Sealed {
                counter,
                ciphertext,
            } => PeerOp::Sealed {
                counter,
                ciphertext: Cow::Owned(ciphertext.into_owned()),
            },
            PeerOp::Gone => PeerOp::Gone,
            PeerOp::Bulk { nonce, ciphertext } => PeerOp::Bulk {
                nonce,
                ciphertext: Cow::Owned(ciphertext.into_owned()),
            },
        };
        PeerMessage { key: self.key, op }
    }
}

/// The op and size only: a sealed body is nobody's business in a log.
impl std::fmt::Debug for PeerMessage<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "PEER(op {}, {} bytes)", self.op(), self.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bytes(m: &PeerMessage<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        m.encode_into(&mut out);
        out
    }

    #[test]
    fn every_op_round_trips() {
        let k = [0xc0; 32];
        for m in [
            PeerMessage {
                key: k,
                op: PeerOp::Handshake {
                    step: 1,
                    message: vec![7; HANDSHAKE_LENS[0]].into(),
                },
            },
            PeerMessage {
                key: k,
                op: PeerOp::Handshake {
                    step: 3,
                    message: vec![7; HANDSHAKE_LENS[2]].into(),
                },
            },
            PeerMessage {
                key: k,
                op: PeerOp::Sealed {
                    counter: 5,
                    ciphertext: vec![1; 19].into(),
                },
            },
            PeerMessage {
                key: k,
                op: PeerOp::Gone,
            },
            PeerMessage {
                key: k,
                op: PeerOp::Bulk {
                    nonce: bulk_nonce(1, 0).unwrap(),
                    ciphertext: vec![1; 30].into(),
                },
            },
        ] {
            let b = bytes(&m);
            assert_eq!(b.len(), m.len());
            assert_eq!(PeerMessage::decode(&b).unwrap(), m);
        }
    }

    #[test]
    fn malformed_bodies_are_refused() {
        let k = [0xc0; 32];
        let with = |tail: &[u8]| [&k[..], tail].concat();
        for body in [
            vec![0; 31],
            with(&[]),
            with(&[0x00]),
            with(&[0x07]),
            with(&[0x06, 0, 0, 0, 0, 0, 0, 0, 1]),
            with(&[0x05, 0]),
            with(&[0x01, 1, 2, 3]),
            with(&[0x04, 0, 0, 0, 0, 0, 0, 0, 1]),
            with(&[[0x04].as_slice(), &[0; 8], &[0; 15]].concat()),
        ] {
            assert!(PeerMessage::decode(&body).is_err(), "{body:02x?}");
        }
    }

    #[test]
    fn bulk_nonces_name_their_transfer_and_never_meet_a_sealed_one() {
        assert_eq!(bulk_nonce(1, 0), Some(0x8000_0000_8000_0000));
        assert_eq!(bulk_nonce(u32::MAX, (1 << 31) - 1), Some(u64::MAX));
        assert_eq!(bulk_nonce(1, 1 << 31), None);
        for (id, index) in [(1, 0), (7, 5), (u32::MAX, 0), (0, (1 << 31) - 1)] {
            assert_eq!(bulk_id(bulk_nonce(id, index).unwrap()), Some(id));
        }
        assert_eq!(bulk_id(5), None);
    }
}
