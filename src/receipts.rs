//! Receipts in a chat (PROTOCOL.md §4.10): which of our messages the peer has shown.
//!
//! Each side numbers the *counted* messages it sends (TEXT, RELAY, PRIVATE, NOTICE, NICK) 1, 2,
//! 3, … and the peer's ACK says how many of them it has shown, cumulatively. The number is never
//! on the wire: it is the message's place in the session, so a receipt costs one small message
//! per burst, whatever the burst holds. Pure: no I/O, no clock.
//!
//! - [`Ledger`]: one side's counts with one peer (a dialer has one; a room host one per member).
//! - [`Fanout`]: a host's own lines, each delivered once every member it went to has shown it.

use crate::message::Message;
use std::collections::{BTreeMap, VecDeque};
use std::ops::RangeInclusive;
use std::time::Duration;
use thiserror::Error;

/// How long after showing a counted message its ACK may wait, so that a burst is acknowledged
/// by one ACK.
pub const ACK_DELAY: Duration = Duration::from_millis(50);

/// Counted messages shown after which the ACK goes at once, not after [`ACK_DELAY`]: a
/// sender streaming lines never waits at its bound for a timer.
pub const ACK_EVERY: u64 = 512;

/// Counted messages a side lets wait for the peer's receipt: beyond this a dialer stops
/// reading its user's lines and a host lets a member go as not keeping up. (Each one also
/// waits in a bounded queue or the kernel's buffers; this bounds what we track about them.)
pub const MAX_UNACKED: u64 = 4096;

/// A count from the peer that cannot be true: the peer's fault, and the end of the session.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ReceiptError {
    #[error("it acknowledged {count} messages, but only {sent} were sent to it")]
    AckedUnsent { count: u64, sent: u64 },
    #[error("its receipt went back from {before} to {count} messages")]
    Backwards { count: u64, before: u64 },
    #[error("it sent ACK, but we never offered receipts")]
    NotOffered,
}

/// Each kept message counts at least this many bytes, so that floods of tiny ones are bounded
/// too.
const MIN_CHARGE: usize = 64;

/// What the longest message is charged.
const MAX_BODY_CHARGE: usize = crate::message::MAX_BODY;

/// Messages kept for a peer that has not (yet) offered receipts.
const UNOFFERED_KEPT: usize = 64;

/// One side's counts with one peer, and the messages it has not acknowledged (to send again
/// on a resumed connection, PROTOCOL.md §4.11).
#[derive(Debug, Default)]
pub struct Ledger {
    /// Counted messages sent to the peer (the id of the last one).
    sent: u64,
    /// The peer's last ACK: our ids up to it were shown.
    acked: u64,
    /// Ids `acked + 1 ..= sent`, in order, while `keeping`.
    kept: VecDeque<Message<'static>>,
    kept_bytes: usize,
    /// Whether everything unacknowledged is kept: it stops (for good) when that would pass
    /// [`crate::resume::KEPT_BYTES`], and then the session cannot be resumed.
    dropped: bool,
    /// The peer's counted messages shown here.
    shown: u64,
    /// The last count we acknowledged.
    ack_sent: u64,
    /// The peer said RECEIPTS: it acknowledges, so what it has not is not delivered.
    peer_acks: bool,
}

impl Ledger {
    pub fn new() -> Self {
        Ledger::default()
    }

    /// A counted message goes to the peer: kept until acknowledged; its id.
    pub fn record(&mut self, msg: &Message<'_>) -> u64 {
        debug_assert!(msg.is_counted());
        // A peer that never said RECEIPTS never acknowledges: keep only its last few (it may
        // still say it, right after its HELLO), not everything for ever.
        if !self.peer_acks && self.kept.len() >= UNOFFERED_KEPT {
            self.drop_oldest();
        }
        let charge = msg.body_len().max(MIN_CHARGE);
        if self.kept_bytes + charge > crate::resume::KEPT_BYTES && self.peer_acks {
            // Too far behind to keep it all: no resume for this session.
            self.dropped = true;
            self.kept.clear();
            self.kept_bytes = 0;
        }
        if !self.dropped {
            self.kept.push_back(msg.clone().into_owned());
            self.kept_bytes += charge;
        }
        self.sent += 1;
        self.sent
    }

    /// The id of the last counted message sent.
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// What the peer has not acknowledged, in order: sent again on a resumed connection.
    pub fn unacknowledged(&self) -> impl Iterator<Item = &Message<'static>> {
        self.kept.iter()
    }

    /// Whether everything the peer has not acknowledged is kept (so the session can resume).
    pub fn keeping(&self) -> bool {
        !self.dropped
    }

    /// Bytes kept for the peer (each message at least 64).
    pub fn kept_bytes(&self) -> usize {
        self.kept_bytes
    }

    /// The peer's ACK: it has shown `count` of our messages. The ids it newly confirms.
    pub fn acked(&mut self, count: u64) -> Result<RangeInclusive<u64>, ReceiptError> {
        if count > self.sent {
            return Err(ReceiptError::AckedUnsent {
                count,
                sent: self.sent,
            });
        }
        if count < self.acked {
            return Err(ReceiptError::Backwards {
                count,
                before: self.acked,
            });
        }
        let newly = self.acked + 1..=count;
        while self.acked < count {
            self.drop_oldest();
            self.acked += 1;
        }
        Ok(newly)
    }

    fn drop_oldest(&mut self) {
        if let Some(msg) = self.kept.pop_front() {
            self.kept_bytes -= msg.body_len().max(MIN_CHARGE);
        }
    }

    /// The peer said RECEIPTS.
    pub fn peer_acknowledges(&mut self) {
        self.peer_acks = true;
    }

    /// Whether the peer said RECEIPTS.
    pub fn peer_acks(&self) -> bool {
        self.peer_acks
    }

    /// Our messages the peer has not acknowledged (none, when it never offered receipts: then
    /// nothing more can be known).
    pub fn unacked(&self) -> u64 {
        if self.peer_acks {
            self.sent - self.acked
        } else {
            0
        }
    }

    /// Whether another counted message may be sent before the peer catches up.
    pub fn has_room(&self) -> bool {
        !self.peer_acks
            || (self.unacked() < MAX_UNACKED
                && self.kept_bytes + MAX_BODY_CHARGE <= crate::resume::KEPT_BYTES)
    }

    /// One of the peer's counted messages was shown here.
    pub fn shown_one(&mut self) {
        self.shown += 1;
    }

    /// How many of the peer's counted messages were shown here.
    pub fn shown(&self) -> u64 {
        self.shown
    }

    /// The count to acknowledge now, if it grew since the last ACK; it counts as sent.
    pub fn take_ack(&mut self) -> Option<u64> {
        (self.shown > self.ack_sent).then(|| {
            self.ack_sent = self.shown;
            self.shown
        })
    }

    /// [`Ledger::take_ack`], when the peer offered receipts (only then may it get an ACK).
    pub fn take_ack_if_offered(&mut self) -> Option<u64> {
        if self.peer_acks {
            self.take_ack()
        } else {
            None
        }
    }

    /// Whether there is something shown that no ACK has counted yet (and the peer takes
    /// ACKs: otherwise nothing is ever owed).
    pub fn ack_owed(&self) -> bool {
        self.peer_acks && self.shown > self.ack_sent
    }

    /// Whether so much is owed that the ACK should go now.
    pub fn ack_urgent(&self) -> bool {
        self.peer_acks && self.shown - self.ack_sent >= ACK_EVERY
    }
}

/// A room host's own lines, each sent as one counted message to every member present: a line
/// is delivered once each of them has shown its copy.
#[derive(Debug, Default)]
pub struct Fanout {
    /// Our lines, oldest first.
    waiting: VecDeque<Line>,
    /// Our last line's id.
    lines: u64,
    /// Lines a member left without showing: never delivered to everyone.
    missed: u64,
}

#[derive(Debug)]
struct Line {
    id: u64,
    /// The members still to show it: member → the id of the copy it got.
    copies: BTreeMap<u64, u64>,
    /// A member left without showing it: it will never be delivered to everyone.
    missed: bool,
}

impl Fanout {
    pub fn new() -> Self {
        Fanout::default()
    }

    /// The id of our next line.
    pub fn next_line(&mut self) -> u64 {
        self.lines += 1;
        self.lines
    }

    /// Our line `line` went to these members, as their message ids. A line that went to no
    /// member that acknowledges is delivered at once (returned true).
    pub fn sent(&mut self, line: u64, copies: BTreeMap<u64, u64>) -> bool {
        if copies.is_empty() {
            return true;
        }
        self.waiting.push_back(Line {
            id: line,
            copies,
            missed: false,
        });
        false
    }

    /// `member` has shown our messages up to `count`: the lines now delivered to everyone.
    pub fn acked(&mut self, member: u64, count: u64) -> Vec<u64> {
        for line in self.waiting.iter_mut() {
            if line.copies.get(&member).is_some_and(|id| *id <= count) {
                line.copies.remove(&member);
            }
        }
        let mut done = Vec::new();
        self.waiting.retain(|line| {
            if !line.copies.is_empty() {
                return true;
            }
            if !line.missed {
                done.push(line.id);
            }
            false
        });
        done
    }

    /// `member` left: how many of our lines it never showed. Those are never reported
    /// delivered (they were not, to everyone), and stop being tracked once nobody else waits.
    pub fn left(&mut self, member: u64) -> usize {
        let mut missed = 0;
        self.waiting.retain_mut(|line| {
            if line.copies.remove(&member).is_some() {
                missed += 1;
                if !line.missed {
                    line.missed = true;
                    self.missed += 1;
                }
            }
            !line.copies.is_empty()
        });
        missed
    }

    /// Every member not `present` left (see [`Fanout::left`]): how many of our lines each
    /// never showed, in all.
    pub fn keep_members(&mut self, present: impl Fn(u64) -> bool) -> usize {
        let gone: std::collections::BTreeSet<u64> = self
            .waiting
            .iter()
            .flat_map(|line| line.copies.keys().copied())
            .filter(|id| !present(*id))
            .collect();
        gone.into_iter().map(|id| self.left(id)).sum()
    }

    /// Member `old` came back as `new` (a resumed session): its copies move with it.
    pub fn renamed(&mut self, old: u64, new: u64) {
        for line in self.waiting.iter_mut() {
            if let Some(copy) = line.copies.remove(&old) {
                line.copies.insert(new, copy);
            }
        }
    }

    /// Lines that will never be delivered to everyone: a member left without showing them.
    pub fn missed(&self) -> u64 {
        self.missed
    }

    /// Lines some member has not shown yet.
    pub fn undelivered(&self) -> usize {
        self.waiting.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn acks_are_cumulative_and_checked() {
        let mut l = Ledger::new();
        l.peer_acknowledges();
        for _ in 0..3 {
            l.record(&Message::Text("x".into()));
        }
        assert_eq!(l.unacked(), 3);
        assert_eq!(l.acked(2), Ok(1..=2));
        assert_eq!(
            l.acked(2).map(|r| r.count()),
            Ok(0),
            "a repeat confirms nothing"
        );
        assert_eq!(
            l.acked(1),
            Err(ReceiptError::Backwards {
                count: 1,
                before: 2
            })
        );
        assert_eq!(
            l.acked(4),
            Err(ReceiptError::AckedUnsent { count: 4, sent: 3 })
        );
        assert_eq!(l.acked(3), Ok(3..=3));
        assert_eq!(l.unacked(), 0);
    }

    #[test]
    fn a_peer_without_receipts_leaves_nothing_unacknowledged() {
        let mut l = Ledger::new();
        l.record(&Message::Text("x".into()));
        assert_eq!(l.unacked(), 0);
        assert!(l.has_room());
    }

    #[test]
    fn one_ack_counts_a_burst() {
        let mut l = Ledger::new();
        assert_eq!(l.take_ack(), None);
        l.shown_one();
        l.shown_one();
        assert!(!l.ack_owed(), "nothing is owed to a peer without receipts");
        l.peer_acknowledges();
        assert!(l.ack_owed());
        assert_eq!(l.take_ack(), Some(2));
        assert_eq!(l.take_ack(), None);
        assert!(!l.ack_owed());
        for _ in 0..ACK_EVERY {
            assert!(!l.ack_urgent());
            l.shown_one();
        }
        assert!(l.ack_urgent());
    }

    #[test]
    fn the_sender_stops_at_the_bound() {
        let mut l = Ledger::new();
        l.peer_acknowledges();
        for _ in 0..MAX_UNACKED {
            assert!(l.has_room());
            l.record(&Message::Text("x".into()));
        }
        assert!(!l.has_room());
        l.acked(1).unwrap();
        assert!(l.has_room());
    }

    #[test]
    fn a_host_line_is_delivered_when_every_member_showed_it() {
        let mut f = Fanout::new();
        assert!(f.sent(1, BTreeMap::new()), "to nobody: nothing to wait for");
        assert!(!f.sent(2, BTreeMap::from([(10, 5), (11, 1)])));
        assert!(!f.sent(3, BTreeMap::from([(10, 6)])));
        assert_eq!(f.acked(10, 6), vec![3], "line 2 waits for member 11");
        assert_eq!(f.acked(11, 1), vec![2]);
        assert_eq!(f.undelivered(), 0);
        assert!(!f.sent(4, BTreeMap::from([(10, 7), (11, 2)])));
        assert_eq!(f.left(11), 1);
        assert_eq!(
            f.acked(10, 7),
            Vec::<u64>::new(),
            "member 11 never saw line 4: it is not delivered to everyone"
        );
        assert_eq!(f.undelivered(), 0, "and no longer tracked");
        assert_eq!(f.missed(), 1);
        assert!(!f.sent(5, BTreeMap::from([(10, 8), (12, 1)])));
        assert_eq!(f.keep_members(|id| id == 10), 1, "member 12 is gone");
        assert_eq!(f.missed(), 2);
    }
}
