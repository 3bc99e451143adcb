//! Setting up a pair's session (PROTOCOL.md §4.14): the three handshake messages through
//! the host, both starting at once (the smaller key goes on), a new session beside an open
//! one (kept until the new one is done, so a replay cannot take it down), and starting again
//! when what a member seals no longer opens.

use super::*;

impl Pairs {
    /// Sends handshake message 1 to `key` (a pair we have).
    pub(super) fn start(&mut self, key: PublicKey, now: Instant) {
        if self.outbox.len() >= MAX_OUTBOX {
            // The host is not taking what we send: try again later.
            if let Some(pair) = self.pairs.get_mut(&key) {
                pair.state = State::Failed(String::new(), Some(now + RETRY_FIRST));
            }
            return;
        }
        let prologue = prologue(&self.us, &key);
        match Initiator::start_with(&self.identity, &Randomness::default(), &prologue) {
            Ok((initiator, msg1)) => {
                if let Some(pair) = self.pairs.get_mut(&key) {
                    pair.state = State::Started(Box::new(initiator), now);
                    self.send(key, handshake(1, msg1));
                }
            }
            Err(e) => self.fail(key, format!("starting a handshake failed: {e}"), now, false),
        }
    }

    pub(super) fn on_message_1(&mut self, from: PublicKey, msg1: &[u8], now: Instant) {
        let Some(pair) = self.pairs.get(&from) else {
            if self.leaving {
                return;
            }
            return self.refused(from, "a handshake from a key the host never said is here");
        };
        if (matches!(pair.state, State::Started(..)) || pair.ours.is_some()) && self.us < from {
            // Both started: ours goes on, and it answers ours.
            return;
        }
        if self.outbox.len() >= MAX_OUTBOX {
            return self.refused(
                from,
                "a handshake while the host is not taking what we send",
            );
        }
        let open = matches!(pair.state, State::Open(_));
        // A repeated message 1 does not restart the clock (or a replay every 19 s would keep
        // a handshake under way for ever).
        let since = match (&pair.state, &pair.renewal) {
            (State::Answered(_, at), _) | (State::Open(_), Some((_, at))) => *at,
            _ => now,
        };
        let prologue = prologue(&from, &self.us);
        let answered =
            Responder::read_message_1_with(&self.identity, &Randomness::default(), msg1, &prologue)
                .and_then(Responder::write_message_2);
        let Some(pair) = self.pairs.get_mut(&from) else {
            return;
        };
        match (answered, open) {
            // A new session with a member we have one with: ours goes on until it is done.
            (Ok((sent, msg2)), true) => {
                pair.renewal = Some((Box::new(sent), since));
                pair.ours = None;
                self.send(from, handshake(2, msg2));
            }
            (Ok((sent, msg2)), false) => {
                pair.state = State::Answered(Box::new(sent), since);
                self.send(from, handshake(2, msg2));
            }
            (Err(_), true) => self.refused(from, "a handshake that failed (the session goes on)"),
            (Err(e), false) => self.fail(from, format!("its handshake failed: {e}"), now, false),
        }
    }

    pub(super) fn on_message_2(&mut self, from: PublicKey, msg2: &[u8], now: Instant) {
        let Some(pair) = self.pairs.get_mut(&from) else {
            return self.refused(from, "a handshake answer nobody asked for");
        };
        // The answer to a new session we started beside the open one: it takes over.
        if let (State::Open(_), Some((ours, _))) = (&pair.state, pair.ours.take()) {
            let finished = ours.read_message_2(msg2).and_then(|(ready, key)| {
                let (done, msg3) = ready.write_message_3()?;
                Ok((key, done, msg3))
            });
            return match finished {
                Ok((key, done, msg3)) if key == from => {
                    self.send(from, handshake(3, msg3));
                    self.opened(from, done);
                }
                _ => self.refused(from, "a handshake that failed (the session goes on)"),
            };
        }
        let State::Started(..) = pair.state else {
            return self.refused(from, "a handshake answer nobody asked for");
        };
        let State::Started(initiator, _) =
            std::mem::replace(&mut pair.state, State::Failed(String::new(), None))
        else {
            return;
        };
        let finished = initiator.read_message_2(msg2).and_then(|(ready, key)| {
            let (done, msg3) = ready.write_message_3()?;
            Ok((key, done, msg3))
        });
        match finished {
            Ok((key, done, msg3)) if key == from => {
                self.send(from, handshake(3, msg3));
                self.opened(from, done);
            }
            // The prologue names `from`: a splice fails before this, but say it plainly.
            Ok(_) => {
                let why = "the host passed on another member's handshake".into();
                self.fail(from, why, now, false)
            }
            Err(e) => self.fail(from, format!("its handshake failed: {e}"), now, false),
        }
    }

    pub(super) fn on_message_3(&mut self, from: PublicKey, msg3: &[u8], now: Instant) {
        let Some(pair) = self.pairs.get_mut(&from) else {
            return self.refused(from, "a handshake message nobody asked for");
        };
        // The end of a new session beside an open one: it takes over, or nothing changes.
        if let (State::Open(_), Some((renewal, _))) = (&pair.state, pair.renewal.take()) {
            return match renewal.read_message_3(msg3) {
                Ok(done) if done.peer == from => self.opened(from, done),
                _ => self.refused(from, "a handshake that failed (the session goes on)"),
            };
        }
        let State::Answered(..) = pair.state else {
            return self.refused(from, "a handshake message nobody asked for");
        };
        let State::Answered(sent, _) =
            std::mem::replace(&mut pair.state, State::Failed(String::new(), None))
        else {
            return;
        };
        match sent.read_message_3(msg3) {
            Ok(done) if done.peer == from => self.opened(from, done),
            Ok(_) => {
                let why = "the host passed on another member's handshake".into();
                self.fail(from, why, now, false)
            }
            Err(e) => self.fail(from, format!("its handshake failed: {e}"), now, false),
        }
    }

    fn opened(&mut self, key: PublicKey, done: crate::handshake::core::Done) {
        let session = Session {
            send: std::sync::Arc::new(done.ciphers.send),
            recv: done.ciphers.recv,
            sent: 0,
            next: 0,
            hash: done.handshake_hash,
        };
        let Some(pair) = self.pairs.get_mut(&key) else {
            return;
        };
        let renewed = matches!(pair.state, State::Open(_));
        pair.state = State::Open(Box::new(session));
        pair.failures = 0;
        let queued = std::mem::take(&mut pair.queued);
        self.heard.push_back(match renewed {
            false => Heard::Open(key),
            true => Heard::Renewed(key),
        });
        for inner in queued {
            let _ = self.seal_to(&key, &inner);
        }
    }

    /// What `key` seals no longer opens: perhaps the two of us hold different sessions (a new
    /// one whose last message was lost). We start a new one beside ours — one at a time, and
    /// not sooner than [`RETRY_FIRST`] after the last, so that forged messages cannot make us
    /// spin.
    pub(super) fn renew(&mut self, key: PublicKey, now: Instant) {
        let busy = self.outbox.len() >= MAX_OUTBOX;
        let Some(pair) = self.pairs.get_mut(&key) else {
            return;
        };
        if busy || pair.ours.is_some() || pair.last_renewal.is_some_and(|at| now < at + RETRY_FIRST)
        {
            return;
        }
        // (A new session it started with us that never finished is what we are missing, most
        // likely: ours replaces it.)
        pair.renewal = None;
        let prologue = prologue(&self.us, &key);
        if let Ok((initiator, msg1)) =
            Initiator::start_with(&self.identity, &Randomness::default(), &prologue)
        {
            pair.ours = Some((Box::new(initiator), now));
            pair.last_renewal = Some(now);
            self.send(key, handshake(1, msg1));
        }
    }
}
