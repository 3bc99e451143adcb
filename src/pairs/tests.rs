//! Three members and a host that passes PEER messages between them in memory: honestly, and
//! then dropping, replaying, reordering, altering, forging and splicing.

use super::*;
use crate::message::peer::PeerOp;

/// The members, and what the host holds back (for a test to meddle with).
pub(super) struct Room {
    pub(super) members: Vec<Pairs>,
    now: Instant,
}

fn text(t: &str) -> Vec<u8> {
    let mut out = Vec::new();
    Message::Text(t.into()).encode_into(&mut out).unwrap();
    out
}

impl Room {
    fn new(n: usize) -> Room {
        let members = (0..n)
            .map(|_| Pairs::new(Identity::generate().unwrap()))
            .collect();
        Room {
            members,
            now: Instant::now(),
        }
    }

    pub(super) fn key(&self, i: usize) -> PublicKey {
        self.members[i].us
    }

    /// Everyone learns of everyone (a roster), in index order.
    fn introduce(&mut self) {
        let keys: Vec<PublicKey> = (0..self.members.len()).map(|i| self.key(i)).collect();
        for m in &mut self.members {
            for k in &keys {
                m.present(*k, self.now);
            }
        }
    }

    /// What member `i` wants sent: (to, message).
    pub(super) fn take(&mut self, i: usize) -> Vec<(usize, PeerMessage<'static>)> {
        let keys: Vec<PublicKey> = (0..self.members.len()).map(|j| self.key(j)).collect();
        self.members[i]
            .outbox
            .drain(..)
            .map(|m| {
                let to = keys.iter().position(|k| k.as_bytes() == &m.key).unwrap();
                (to, m)
            })
            .collect()
    }

    /// Delivers `msg` from member `from` to member `to`, as the host does: re-addressed.
    pub(super) fn deliver(&mut self, from: usize, to: usize, msg: PeerMessage<'static>) {
        let from_key = *self.key(from).as_bytes();
        self.members[to].on_peer(msg.readdressed(from_key), self.now);
    }

    /// An honest host, until nothing moves.
    pub(super) fn settle(&mut self) {
        loop {
            let mut moved = false;
            for i in 0..self.members.len() {
                for (to, msg) in self.take(i) {
                    moved = true;
                    self.deliver(i, to, msg);
                }
            }
            if !moved {
                return;
            }
        }
    }

    pub(super) fn heard(&mut self, i: usize) -> Vec<Heard> {
        self.members[i].heard.drain(..).collect()
    }

    pub(super) fn open_room(n: usize) -> Room {
        let mut room = Room::new(n);
        room.introduce();
        room.settle();
        for i in 0..n {
            let heard = room.heard(i);
            assert_eq!(heard.len(), n - 1, "member {i}: {heard:?}");
            assert!(heard.iter().all(|h| matches!(h, Heard::Open(_))));
        }
        room
    }
}

fn said(from: PublicKey, t: &str) -> Heard {
    Heard::Said {
        from,
        text: t.into(),
        private: false,
    }
}

#[test]
fn three_members_each_hear_the_others_and_know_who_wrote_it() {
    let mut room = Room::open_room(3);
    let reach = room.members[0].seal_to_all(&text("hello"));
    assert_eq!((reach.sealed, reach.waiting), (2, 0));
    room.settle();
    let a = room.key(0);
    assert_eq!(room.heard(1), vec![said(a, "hello")]);
    assert_eq!(room.heard(2), vec![said(a, "hello")]);
    assert!(room.heard(0).is_empty());
    // Both sides of a pair hold the same session.
    assert_eq!(
        room.members[0].session_hash(&room.key(1)),
        room.members[1].session_hash(&a)
    );
}

#[test]
fn a_private_message_is_sealed_for_one_member_only() {
    let mut room = Room::open_room(3);
    let mut private = Vec::new();
    Message::Private("just you".into())
        .encode_into(&mut private)
        .unwrap();
    let b = room.key(1);
    assert_eq!(room.members[0].seal_to(&b, &private), Ok(true));
    let sent = room.take(0);
    assert_eq!(sent.len(), 1);
    assert_eq!(sent[0].0, 1);
    for (to, msg) in sent {
        room.deliver(0, to, msg);
    }
    let heard = room.heard(1);
    assert!(matches!(&heard[..], [Heard::Said { private: true, text, .. }] if text == "just you"));
}

#[test]
fn what_is_said_before_the_sessions_are_up_follows_them() {
    let mut room = Room::new(2);
    room.introduce();
    let reach = room.members[0].seal_to_all(&text("early"));
    assert_eq!((reach.sealed, reach.waiting), (0, 1));
    room.settle();
    let a = room.key(0);
    assert_eq!(room.heard(1), vec![Heard::Open(a), said(a, "early")]);
}

#[test]
fn a_handshake_started_by_both_at_once_ends_in_one_session() {
    // `introduce` makes both start; the smaller key's goes on.
    let mut room = Room::open_room(2);
    room.members[1].seal_to_all(&text("one session"));
    room.settle();
    assert_eq!(room.heard(0), vec![said(room.key(1), "one session")]);
}

#[test]
fn a_message_the_host_drops_shows_as_a_gap_and_the_session_goes_on() {
    let mut room = Room::open_room(2);
    for t in ["one", "two", "three"] {
        room.members[0].seal_to_all(&text(t));
    }
    let mut sent = room.take(0);
    sent.remove(1);
    for (to, msg) in sent {
        room.deliver(0, to, msg);
    }
    let a = room.key(0);
    assert_eq!(
        room.heard(1),
        vec![
            said(a, "one"),
            Heard::Lost { from: a, count: 1 },
            said(a, "three")
        ]
    );
}

#[test]
fn a_replayed_or_reordered_message_is_refused() {
    let mut room = Room::open_room(2);
    room.members[0].seal_to_all(&text("one"));
    room.members[0].seal_to_all(&text("two"));
    let sent = room.take(0);
    let a = room.key(0);
    // Replay: the first one twice.
    room.deliver(0, 1, sent[0].1.clone());
    room.deliver(0, 1, sent[0].1.clone());
    let heard = room.heard(1);
    assert_eq!(heard[0], said(a, "one"));
    assert!(matches!(heard[1], Heard::Refused { from, .. } if from == a));
    // Reorder: a later one first, then an earlier one.
    room.members[0].seal_to_all(&text("three"));
    let later = room.take(0);
    room.deliver(0, 1, later[0].1.clone());
    room.deliver(0, 1, sent[1].1.clone());
    let heard = room.heard(1);
    assert_eq!(
        heard[..2],
        [Heard::Lost { from: a, count: 1 }, said(a, "three")]
    );
    assert!(matches!(heard[2], Heard::Refused { .. }));
}

#[test]
fn an_altered_message_is_refused_and_the_next_one_is_still_shown() {
    let mut room = Room::open_room(2);
    room.members[0].seal_to_all(&text("pay alice"));
    room.members[0].seal_to_all(&text("bye"));
    let mut sent = room.take(0);
    if let PeerOp::Sealed { ciphertext, .. } = &mut sent[0].1.op {
        ciphertext.to_mut()[4] ^= 0x01;
    }
    for (to, msg) in sent {
        room.deliver(0, to, msg);
    }
    let a = room.key(0);
    let heard = room.heard(1);
    assert!(
        matches!(heard[0], Heard::Refused { from, why } if from == a && why.contains("authenticate"))
    );
    // The altered one is counted lost once the next one arrives.
    assert_eq!(
        heard[1..],
        [Heard::Lost { from: a, count: 1 }, said(a, "bye")]
    );
}

#[test]
fn a_host_cannot_speak_as_a_member() {
    let mut room = Room::open_room(3);
    let (a, b) = (room.key(0), room.key(1));
    // C's message to B, passed on as A's: it does not open under A's session.
    room.members[2].seal_to(&b, &text("I am A")).unwrap();
    let sent = room.take(2);
    room.deliver(0, 1, sent[0].1.clone());
    assert!(matches!(room.heard(1)[..], [Heard::Refused { from, .. }] if from == a));
    // (B starts a new session with A, in case the two hold different ones: it comes up.)
    room.settle();
    room.heard(0);
    room.heard(1);
    // The host's own handshake as A, with its own key: B answers (a member may start
    // again), but the host cannot finish it, and B's session with the real A goes on.
    let host = Identity::generate().unwrap();
    let (init, msg1) =
        Initiator::start_with(&host, &Randomness::default(), &prologue(&a, &b)).unwrap();
    room.members[1].on_peer(
        PeerMessage {
            key: *a.as_bytes(),
            op: handshake(1, msg1),
        },
        room.now,
    );
    let msg2 = room.members[1].outbox.pop_back().unwrap();
    let PeerOp::Handshake { message, .. } = msg2.op else {
        panic!("no answer")
    };
    let (ready, _) = init.read_message_2(&message).unwrap();
    let (_, msg3) = ready.write_message_3().unwrap();
    room.members[1].on_peer(
        PeerMessage {
            key: *a.as_bytes(),
            op: handshake(3, msg3),
        },
        room.now,
    );
    let heard = room.heard(1);
    assert!(
        matches!(&heard[..], [Heard::Refused { from, why }] if *from == a && why.contains("failed")),
        "{heard:?}"
    );
    assert!(room.members[1].is_open(&a));
    room.members[0].seal_to(&b, &text("still me")).unwrap();
    room.settle();
    assert_eq!(room.heard(1), vec![said(a, "still me")]);
}

#[test]
fn a_replayed_handshake_does_not_take_an_open_session_down() {
    let mut room = Room::new(2);
    room.introduce();
    // Keep a copy of every handshake message the first member sends.
    let mut copies = Vec::new();
    loop {
        let mut moved = false;
        for i in 0..2 {
            for (to, msg) in room.take(i) {
                if i == 0 {
                    copies.push(msg.clone());
                }
                moved = true;
                room.deliver(i, to, msg);
            }
        }
        if !moved {
            break;
        }
    }
    let a = room.key(0);
    room.heard(1);
    for copy in copies {
        room.deliver(0, 1, copy);
    }
    room.members[1].outbox.clear();
    room.heard(1);
    room.members[0].seal_to_all(&text("after the replay"));
    room.settle();
    assert_eq!(room.heard(1), vec![said(a, "after the replay")]);
    // The half-done renewal runs out quietly.
    room.members[1].expire(room.now + HANDSHAKE_WITHIN);
    assert!(room.heard(1).is_empty());
    assert!(room.members[1].is_open(&a));
}

#[test]
fn a_handshake_from_a_key_never_announced_is_refused() {
    let mut room = Room::new(2);
    let b = room.key(1);
    room.members[0].present(b, room.now);
    let sent = room.take(0);
    room.deliver(0, 1, sent[0].1.clone());
    let heard = room.heard(1);
    assert!(
        matches!(&heard[..], [Heard::Refused { why, .. }] if why.contains("never said")),
        "{heard:?}"
    );
    assert!(room.members[1].outbox.is_empty());
    // Nothing is sealed for it either.
    assert_eq!(room.members[1].seal_to_all(&text("x")), Reach::default());
}

#[test]
fn a_session_that_failed_is_tried_again_and_comes_back() {
    let mut room = Room::new(2);
    room.introduce();
    // Every handshake message is lost: both give up after the deadline.
    room.take(0);
    room.take(1);
    let later = room.now + HANDSHAKE_WITHIN;
    for m in &mut room.members {
        m.expire(later);
    }
    assert!(matches!(
        &room.heard(0)[..],
        [Heard::Failed { gone: false, .. }]
    ));
    room.heard(1);
    let b = room.key(1);
    assert_eq!(room.members[0].seal_to_all(&text("x")).unreachable, vec![b]);
    // Tried again once the wait is over, and this time the host passes it on.
    let retry = room.members[0].next_deadline().unwrap();
    assert_eq!(retry, later + RETRY_FIRST);
    room.now = retry;
    for m in &mut room.members {
        m.expire(retry);
    }
    room.settle();
    assert_eq!(room.heard(0), vec![Heard::Open(b)]);
    room.members[0].seal_to_all(&text("back"));
    room.settle();
    let a = room.key(0);
    assert_eq!(room.heard(1), vec![Heard::Open(a), said(a, "back")]);
}

#[test]
fn a_line_pushed_out_of_a_full_queue_is_said() {
    let mut room = Room::new(2);
    let b = room.key(1);
    room.members[0].present(b, room.now);
    for n in 0..=MAX_QUEUED {
        room.members[0].seal_to_all(&text(&format!("{n}")));
    }
    assert_eq!(room.heard(0), vec![Heard::Dropped { key: b }]);
    assert_eq!(room.members[0].waiting(), MAX_QUEUED);
}

#[test]
fn a_handshake_spliced_to_another_member_fails() {
    let mut room = Room::new(3);
    let (a, b) = (room.key(0), room.key(1));
    let now = room.now;
    room.members[0].present(b, now);
    room.members[2].present(a, now);
    room.take(2);
    let sent = room.take(0);
    // The host passes A's message 1 for B to C instead: C never opens a session on it.
    room.deliver(0, 2, sent[0].1.clone());
    let heard = room.heard(2);
    assert!(
        heard.iter().all(|h| !matches!(h, Heard::Open(_))),
        "{heard:?}"
    );
    assert!(!room.members[2].is_open(&a));
}

#[test]
fn gone_fails_the_pair_and_counts_what_waited() {
    let mut room = Room::new(2);
    let b = room.key(1);
    room.members[0].present(b, room.now);
    room.members[0].seal_to_all(&text("waiting"));
    room.members[0].on_peer(
        PeerMessage {
            key: *b.as_bytes(),
            op: PeerOp::Gone,
        },
        room.now,
    );
    let heard = room.heard(0);
    assert!(matches!(&heard[..], [Heard::Failed { key, undelivered: 1, .. }] if *key == b));
    assert_eq!(room.members[0].seal_to_all(&text("x")).unreachable, vec![b]);
    // Once it leaves and comes back, a new session starts.
    room.members[0].left(&b);
    room.members[0].present(b, room.now);
    assert_eq!(room.members[0].outbox.len(), 2);
}

#[test]
fn a_handshake_that_gets_no_answer_expires() {
    let mut room = Room::new(2);
    let b = room.key(1);
    room.members[0].present(b, room.now);
    assert_eq!(
        room.members[0].next_deadline(),
        Some(room.now + HANDSHAKE_WITHIN)
    );
    room.members[0].expire(room.now + HANDSHAKE_WITHIN - Duration::from_millis(1));
    assert!(room.heard(0).is_empty());
    room.members[0].expire(room.now + HANDSHAKE_WITHIN);
    assert!(matches!(&room.heard(0)[..], [Heard::Failed { .. }]));
    // (Tried again later.)
    assert_eq!(
        room.members[0].next_deadline(),
        Some(room.now + HANDSHAKE_WITHIN + RETRY_FIRST)
    );
}

#[test]
fn no_more_pairs_than_the_bound() {
    let mut pairs = Pairs::new(Identity::generate().unwrap());
    let now = Instant::now();
    for i in 0..(MAX_PAIRS + 10) {
        let mut k = [0u8; 32];
        k[..8].copy_from_slice(&(i as u64 + 1).to_be_bytes());
        pairs.present(PublicKey::from_bytes(k), now);
    }
    assert_eq!(pairs.pairs.len(), MAX_PAIRS);
}

#[test]
fn two_sides_left_on_different_sessions_find_each_other_again() {
    let mut room = Room::open_room(2);
    let (a, b) = (room.key(0), room.key(1));
    let now = room.now;
    // A starts a new session beside the open one; B answers; A's message 3 is lost.
    room.members[0].renew(b, now);
    let msg1 = room.take(0);
    room.deliver(0, 1, msg1[0].1.clone());
    let msg2 = room.take(1);
    room.deliver(1, 0, msg2[0].1.clone());
    assert_eq!(room.take(0).len(), 1, "message 3, dropped by the host");
    // A now seals under the new session, which B does not have: refused, and B starts over.
    room.members[0]
        .seal_to(&b, &text("lost in between"))
        .unwrap();
    for (to, msg) in room.take(0) {
        room.deliver(0, to, msg);
    }
    let heard = room.heard(1);
    assert!(matches!(&heard[..], [Heard::Refused { why, .. }] if why.contains("authenticate")));
    // (Not again and again: one new handshake at a time, and not sooner than the wait.)
    room.members[0].seal_to(&b, &text("again")).unwrap();
    let again = room.take(0);
    room.deliver(0, 1, again[0].1.clone());
    room.heard(1);
    let handshakes = room.members[1].outbox.len();
    assert_eq!(handshakes, 1, "B's one message 1");
    room.settle();
    room.heard(0);
    room.heard(1);
    room.members[0]
        .seal_to(&b, &text("together again"))
        .unwrap();
    room.settle();
    assert_eq!(room.heard(1), vec![said(a, "together again")]);
    room.members[1].seal_to(&a, &text("and back")).unwrap();
    room.settle();
    assert_eq!(room.heard(0), vec![said(b, "and back")]);
}

#[test]
fn a_repeated_handshake_does_not_hold_the_deadline_off() {
    let mut room = Room::new(2);
    room.introduce();
    let (first, second) = match room.key(0) < room.key(1) {
        true => (0, 1),
        false => (1, 0),
    };
    // The smaller key's message 1 reaches the other, whose own is lost; its answer is lost.
    let msg1 = room.take(first);
    room.take(second);
    room.deliver(first, second, msg1[0].1.clone());
    room.members[second].outbox.clear();
    // The same message 1, again, 15 s later: the 20 s still count from the first.
    let now = room.now;
    room.now = now + Duration::from_secs(15);
    room.deliver(first, second, msg1[0].1.clone());
    room.members[second].outbox.clear();
    room.heard(second);
    room.members[second].expire(now + HANDSHAKE_WITHIN);
    assert!(
        matches!(&room.heard(second)[..], [Heard::Failed { .. }]),
        "the deadline moved"
    );
}
