//! Files between members (PROTOCOL.md §4.14, "Files between members"): FILES and the FILE
//! messages that steer a transfer travel sealed like lines; a file's bytes (CHUNK, DONE)
//! travel as BULK — sealed with the same key, under nonces of their own that name the
//! transfer — by the thread that reads the file, so no state is shared between transfers.

use super::*;
use crate::message::FileMessage;
use crate::message::peer::{bulk_id, bulk_nonce};
use std::sync::Arc;

/// A sealed FILES with this body: the sender's connection to the host was cut, so file bytes
/// between us may be lost; what was moving stops and is offered again.
pub const FILES_RESTART: [u8; 2] = [crate::message::kind::FILES, 0x01];

/// Bytes of file data in one BULK, at most: a PEER body less its header, the pair's tag, the
/// inner type byte and CHUNK's own header (op, id, offset).
pub const MAX_BULK_DATA: usize = crate::message::file::MAX_CHUNK - SEALED_HEADER - TAG_LEN - 1;

/// Seals a file's bytes for one member, under the session open when the transfer started:
/// handed to the thread that reads the file. (A new session later makes what it seals
/// unreadable; the transfer is then offered again under the new one.)
#[derive(Clone)]
pub struct BulkSealer {
    to: [u8; 32],
    send: Arc<CipherState>,
}

impl std::fmt::Debug for BulkSealer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("BulkSealer")
    }
}

impl BulkSealer {
    /// Seals `msg` (a CHUNK or DONE of transfer `id`) as that transfer's `index`th BULK.
    pub fn seal(&self, id: u32, index: u32, msg: &Message<'_>) -> Result<Message<'static>, String> {
        let nonce = bulk_nonce(id, index).ok_or("too many pieces for one file between members")?;
        let mut buf = Vec::with_capacity(1 + msg.body_len() + TAG_LEN);
        msg.encode_into(&mut buf).map_err(|e| e.to_string())?;
        let len = buf.len();
        buf.resize(len + TAG_LEN, 0);
        self.send
            .seal_at(nonce, &mut buf, len)
            .map_err(|e| e.to_string())?;
        Ok(Message::Peer(PeerMessage {
            key: self.to,
            op: PeerOp::Bulk {
                nonce,
                ciphertext: buf.into(),
            },
        }))
    }
}

impl Pairs {
    /// What seals a file's bytes for `key`, while its session is open.
    pub fn bulk_sealer(&self, key: &PublicKey) -> Option<BulkSealer> {
        match &self.pairs.get(key)?.state {
            State::Open(session) => Some(BulkSealer {
                to: *key.as_bytes(),
                send: session.send.clone(),
            }),
            _ => None,
        }
    }

    /// Seals FILES (`restart`: [`FILES_RESTART`]) for `key`, over a session that is up.
    pub fn seal_files(&mut self, key: &PublicKey, restart: bool) -> Result<(), String> {
        let inner: &[u8] = match restart {
            false => &FILES_RESTART[..1],
            true => &FILES_RESTART,
        };
        self.seal_open(key, inner)
    }

    /// Seals a FILE that steers a transfer (not its bytes: those go as BULK) for `key`.
    pub fn seal_file(&mut self, key: &PublicKey, msg: &FileMessage<'_>) -> Result<(), String> {
        let mut inner = Vec::new();
        Message::File(msg.clone())
            .encode_into(&mut inner)
            .map_err(|e| e.to_string())?;
        self.seal_open(key, &inner)
    }

    /// Files wait for nothing: without a session there is no transfer.
    fn seal_open(&mut self, key: &PublicKey, inner: &[u8]) -> Result<(), String> {
        if !self.is_open(key) {
            return Err("no end-to-end session with it".into());
        }
        self.seal_to(key, inner).map(|_| ())
    }

    /// A BULK from `from`: a file's bytes, which only FILE's own checks order (an offset out
    /// of order ends that transfer), so nothing here counts nonces.
    pub(super) fn open_bulk(&mut self, from: PublicKey, nonce: u64, ciphertext: &[u8]) {
        let Some(id) = bulk_id(nonce) else {
            return self.refused(from, "a line sent as a file's bytes");
        };
        let Some(State::Open(session)) = self.pairs.get(&from).map(|p| &p.state) else {
            return self.heard.push_back(Heard::BadBulk { from, id });
        };
        let mut buf = ciphertext.to_vec();
        let opened = session.recv.open_at(nonce, &mut buf);
        let file = opened
            .ok()
            .and_then(|len| match Message::decode(&buf[..len]) {
                Ok(Message::File(file)) if file.is_bulk() && file.id() == id => {
                    Some(file.into_owned())
                }
                _ => None,
            });
        self.heard.push_back(match file {
            Some(file) => Heard::File { from, file },
            None => Heard::BadBulk { from, id },
        });
    }
}

impl crate::files::Seal for BulkSealer {
    fn max_data(&self) -> usize {
        MAX_BULK_DATA
    }

    fn seal(&self, id: u32, index: u32, msg: &Message<'_>) -> Result<Message<'static>, String> {
        BulkSealer::seal(self, id, index, msg)
    }
}

#[cfg(test)]
mod tests {
    use super::super::tests::Room;
    use super::*;
    use crate::message::file::FileMessage;

    fn chunk(id: u32, data: &[u8]) -> Message<'static> {
        Message::File(FileMessage::Chunk {
            id,
            offset: 0,
            data: data.to_vec().into(),
        })
    }

    /// What member 0 sent, delivered to member 1 as `op` turns it (the host meddling, or not).
    fn deliver_as(room: &mut Room, op: impl Fn(PeerOp<'static>) -> PeerOp<'static>) {
        for (to, mut msg) in room.take(0) {
            msg.op = op(msg.op);
            room.deliver(0, to, msg);
        }
    }

    #[test]
    fn files_and_their_bytes_reach_the_member_as_what_they_are() {
        let mut room = Room::open_room(2);
        let (a, b) = (room.key(0), room.key(1));
        room.members[0].seal_files(&b, false).unwrap();
        room.members[0].seal_files(&b, true).unwrap();
        let offer = FileMessage::Offer {
            id: 1,
            size: 5,
            hash: [0; 32],
            path: "a.txt".into(),
        };
        room.members[0].seal_file(&b, &offer).unwrap();
        room.settle();
        let sealer = room.members[0].bulk_sealer(&b).unwrap();
        let bulk = sealer.seal(1, 0, &chunk(1, b"hello")).unwrap();
        let Message::Peer(bulk) = bulk else {
            panic!("{bulk:?}")
        };
        assert!(matches!(bulk.op, PeerOp::Bulk { nonce, .. } if nonce == 0x8000_0000_8000_0000));
        room.deliver(0, 1, bulk);
        let heard = room.heard(1);
        let FileMessage::Chunk { data, .. } = (match &heard[3] {
            Heard::File { from, file } if *from == a => file.clone(),
            other => panic!("{other:?}"),
        }) else {
            panic!("{heard:?}")
        };
        assert_eq!(&*data, b"hello");
        assert_eq!(
            heard[..3],
            [
                Heard::Files {
                    from: a,
                    restart: false
                },
                Heard::Files {
                    from: a,
                    restart: true
                },
                Heard::File {
                    from: a,
                    file: offer
                },
            ]
        );
        // Nothing here is said to be lost: BULK nonces are not the lines' count.
        room.members[0]
            .seal_to(&b, &[crate::message::kind::TEXT, b'x'])
            .unwrap();
        room.settle();
        assert!(matches!(&room.heard(1)[..], [Heard::Said { .. }]));
    }

    #[test]
    fn bytes_and_lines_cannot_pass_for_each_other_nor_for_another_transfer() {
        let mut room = Room::open_room(2);
        let (a, b) = (room.key(0), room.key(1));
        let sealer = room.members[0].bulk_sealer(&b).unwrap();
        let bulk = |room: &mut Room, msg: Message<'static>, id: u32| {
            let Message::Peer(p) = sealer.seal(id, 0, &msg).unwrap() else {
                unreachable!()
            };
            room.members[0].outbox.push_back(p);
        };
        // A file's bytes delivered as a line: refused, and the lines' count does not move.
        bulk(&mut room, chunk(1, b"x"), 1);
        deliver_as(&mut room, |op| match op {
            PeerOp::Bulk { nonce, ciphertext } => PeerOp::Sealed {
                counter: nonce,
                ciphertext,
            },
            op => op,
        });
        assert!(
            matches!(&room.heard(1)[..], [Heard::Refused { why, .. }] if why.contains("as a line"))
        );
        room.members[0]
            .seal_to(&b, &[crate::message::kind::TEXT, b'x'])
            .unwrap();
        room.settle();
        assert!(matches!(&room.heard(1)[..], [Heard::Said { .. }]));
        // A line delivered as a file's bytes.
        room.members[0]
            .seal_to(&b, &[crate::message::kind::TEXT, b'y'])
            .unwrap();
        deliver_as(&mut room, |op| match op {
            PeerOp::Sealed {
                counter,
                ciphertext,
            } => PeerOp::Bulk {
                nonce: counter,
                ciphertext,
            },
            op => op,
        });
        assert!(
            matches!(&room.heard(1)[..], [Heard::Refused { why, .. }] if why.contains("as a file"))
        );
        // Bytes altered on the way, bytes of transfer 2 under transfer 1's nonce, and a line
        // sealed as bytes: each fails the transfer its nonce names, nothing else.
        bulk(&mut room, chunk(1, b"x"), 1);
        deliver_as(&mut room, |op| match op {
            PeerOp::Bulk {
                nonce,
                mut ciphertext,
            } => {
                ciphertext.to_mut()[0] ^= 1;
                PeerOp::Bulk { nonce, ciphertext }
            }
            op => op,
        });
        bulk(&mut room, chunk(2, b"x"), 1);
        bulk(&mut room, Message::Text("hi".into()), 3);
        room.settle();
        let bad = |id| Heard::BadBulk { from: a, id };
        assert_eq!(room.heard(1), [bad(1), bad(1), bad(3)]);
        // A line with a file's bytes inside is not one members seal. (The line the host
        // passed off as bytes shows as lost here.)
        let mut inner = Vec::new();
        chunk(1, b"x").encode_into(&mut inner).unwrap();
        room.members[0].seal_to(&b, &inner).unwrap();
        room.settle();
        let heard = room.heard(1);
        assert!(
            matches!(
                &heard[..],
                [Heard::Lost { count: 1, .. }, Heard::Refused { .. }]
            ),
            "{heard:?}"
        );
    }
}
