//! The transfers' rules, driven message by message (the threads are real; their notes are
//! handed over by hand, in order).

use super::*;

struct Peer {
    t: Transfers,
    notes: mpsc::UnboundedReceiver<(u64, Note)>,
    _bulk: mpsc::Receiver<Message<'static>>,
    _dir: tempfile::TempDir,
}

fn receiver(auto: bool) -> Peer {
    let dir = tempfile::tempdir().unwrap();
    let (tx, notes) = mpsc::unbounded_channel();
    let policy = Policy {
        dir: Some(dir.path().to_path_buf()),
        auto,
    };
    let mut t = Transfers::new(policy, Reporter { tag: 0, tx }, Default::default());
    let (bulk, _bulk) = mpsc::channel(16);
    t.connected(bulk);
    t.peer_files();
    Peer {
        t,
        notes,
        _bulk,
        _dir: dir,
    }
}

impl Peer {
    /// Hands over the threads' notes until one matches.
    fn note_until(&mut self, wanted: impl Fn(&Note) -> bool) {
        loop {
            let (_, note) = self.notes.blocking_recv().unwrap();
            let stop = wanted(&note);
            self.t.on_note(note);
            if stop {
                return;
            }
        }
    }

    fn offer(&mut self, id: u32, size: u64, hash: [u8; 32]) -> Result<(), ProtocolError> {
        self.t.on_message(FileMessage::Offer {
            id,
            size,
            hash,
            path: format!("f{id}.bin").into(),
        })
    }

    fn chunk(&mut self, id: u32, offset: u64, len: usize) {
        let data = vec![0u8; len].into();
        self.t
            .on_message(FileMessage::Chunk { id, offset, data })
            .unwrap();
    }

    /// The REJECT reasons sent so far.
    fn rejected(&mut self) -> Vec<(u32, String)> {
        self.t
            .outbox
            .drain(..)
            .filter_map(|m| match m {
                Message::File(FileMessage::Reject { id, reason }) => Some((id, reason.into())),
                _ => None,
            })
            .collect()
    }
}

#[test]
fn bytes_past_the_credit_end_the_transfer_not_the_session() {
    let mut p = receiver(true);
    p.offer(1, 64 << 20, [1; 32]).unwrap();
    p.note_until(|n| matches!(n, Note::Opened { .. }));
    let accept = p.t.outbox.pop_front().unwrap();
    assert_eq!(
        accept,
        Message::File(FileMessage::Accept {
            id: 1,
            offset: 0,
            limit: WINDOW
        })
    );
    // Up to the limit is fine; one byte past it is not (nothing was written yet, so the
    // limit has not moved).
    let piece = crate::message::file::MAX_CHUNK;
    let mut at = 0u64;
    while at + piece as u64 <= WINDOW {
        p.chunk(1, at, piece);
        at += piece as u64;
    }
    let rest = (WINDOW - at) as usize;
    p.chunk(1, at, rest + 1);
    let rejected = p.rejected();
    assert_eq!(rejected.len(), 1, "{rejected:?}");
    assert!(rejected[0].1.contains("flow control"), "{rejected:?}");
    // The chat goes on: a new offer is taken.
    p.offer(2, 5, [2; 32]).unwrap();
}

#[test]
fn unasked_early_or_unknown_bytes_are_refused_or_dropped() {
    let mut p = receiver(false);
    p.offer(1, 10, [1; 32]).unwrap();
    // Not accepted yet: unasked.
    p.chunk(1, 0, 5);
    assert!(p.rejected()[0].1.contains("before it was accepted"));
    // Never offered: dropped, said once.
    p.chunk(7, 0, 5);
    p.chunk(8, 0, 5);
    let notes =
        p.t.events
            .iter()
            .filter(|e| matches!(e, Event::Note(_)))
            .count();
    assert_eq!(notes, 1);
    // DONE before every byte arrived.
    p.offer(2, 10, [2; 32]).unwrap();
    p.t.accept(None).unwrap();
    p.note_until(|n| matches!(n, Note::Opened { .. }));
    p.t.outbox.clear();
    p.chunk(2, 0, 4);
    p.t.on_message(FileMessage::Done { id: 2 }).unwrap();
    assert!(p.rejected()[0].1.contains("done at 4 of 10"));
}

#[test]
fn false_ids_break_the_protocol() {
    let mut p = receiver(false);
    p.offer(3, 1, [0; 32]).unwrap();
    assert!(p.offer(3, 1, [0; 32]).is_err(), "an id not above the last");
    assert!(p.offer(2, 1, [0; 32]).is_err());
    // Answers about offers we never made.
    for msg in [
        FileMessage::Accept {
            id: 1,
            offset: 0,
            limit: 1,
        },
        FileMessage::Verified { id: 1 },
        FileMessage::Credit { id: 9, limit: 1 },
    ] {
        assert!(p.t.on_message(msg).is_err());
    }
    // And nothing at all before FILES.
    let (tx, _rx) = mpsc::unbounded_channel();
    let mut silent = Transfers::new(
        Policy::default(),
        Reporter { tag: 0, tx },
        Default::default(),
    );
    assert!(
        silent
            .on_message(FileMessage::Done { id: 1 })
            .unwrap_err()
            .to_string()
            .contains("without having sent FILES")
    );
}

#[test]
fn offers_beyond_the_bound_are_refused_at_once() {
    let mut p = receiver(false);
    for id in 1..=(MAX_WAITING as u32 + 10) {
        p.offer(id, 1, [id as u8; 32]).unwrap();
    }
    let rejected = p.rejected();
    assert_eq!(rejected.len(), 10);
    assert!(
        rejected
            .iter()
            .all(|(_, why)| why.contains("too many offers"))
    );
    assert_eq!(p.t.list("peer").len(), MAX_WAITING);
}

#[test]
fn a_file_cut_with_the_connection_is_taken_back_under_a_new_id_from_where_it_was() {
    let mut p = receiver(false);
    p.offer(1, 3 << 20, [5; 32]).unwrap();
    p.t.accept(Some(1)).unwrap();
    p.note_until(|n| matches!(n, Note::Opened { .. }));
    p.chunk(1, 0, 65505);
    p.chunk(1, 65505, 65505);
    p.t.cut();
    // The writing thread keeps what arrived; the new connection brings a new offer.
    let (bulk, _rx) = mpsc::channel(16);
    p.t.connected(bulk);
    p.t.peer_files();
    p.t.outbox.clear();
    p.t.events.clear();
    let again = FileMessage::Offer {
        id: 2,
        size: 3 << 20,
        hash: [5; 32],
        path: "f1.bin".into(),
    };
    p.t.on_message(again).unwrap();
    assert!(matches!(
        p.t.events[0],
        Event::Offered {
            local: 1,
            auto: true,
            ..
        }
    ));
    p.note_until(|n| matches!(n, Note::Opened { .. }));
    let accepts: Vec<_> = (p.t.outbox.drain(..))
        .filter_map(|m| match m {
            Message::File(FileMessage::Accept { id, offset, limit }) => Some((id, offset, limit)),
            _ => None,
        })
        .collect();
    assert_eq!(
        accepts,
        [(2, 2 * 65505, 3 << 20)],
        "the limit: the window, or the size"
    );
}

#[test]
fn an_offer_cut_before_it_was_answered_or_renamed_on_its_return_is_asked_about_again() {
    let mut p = receiver(false);
    // Never answered: cut, then offered again under a new id.
    p.offer(1, 10, [1; 32]).unwrap();
    // Accepted, cut, and back with another name: the name accepted was f2.bin.
    p.offer(2, 10, [2; 32]).unwrap();
    p.t.accept(Some(2)).unwrap();
    p.note_until(|n| matches!(n, Note::Opened { .. }));
    p.t.cut();
    assert!(
        p.t.outbox.is_empty(),
        "nothing queued for the old connection survives"
    );
    let (bulk, _rx) = mpsc::channel(16);
    p.t.connected(bulk);
    p.t.peer_files();
    p.t.events.clear();
    p.t.on_message(FileMessage::Offer {
        id: 3,
        size: 10,
        hash: [1; 32],
        path: "f1.bin".into(),
    })
    .unwrap();
    p.t.on_message(FileMessage::Offer {
        id: 4,
        size: 10,
        hash: [2; 32],
        path: "x/evil.desktop".into(),
    })
    .unwrap();
    let asked: Vec<bool> = (p.t.events.iter())
        .filter_map(|e| match e {
            Event::Offered { auto, .. } => Some(*auto),
            _ => None,
        })
        .collect();
    assert_eq!(asked, [false, false], "both wait for /accept");
}
