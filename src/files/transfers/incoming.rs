//! The peer's files: its offers, its bytes, its DONE and CANCEL, checked against what we
//! accepted and allowed (PROTOCOL.md §4.13).

use super::*;

impl Transfers {
    pub(super) fn as_receiver(&mut self, msg: FileMessage<'static>) -> Result<(), ProtocolError> {
        let id = msg.id();
        if let FileMessage::Offer {
            size, hash, path, ..
        } = msg
        {
            if id <= self.peer_last {
                return Err(ProtocolError::Unexpected(
                    "FILE OFFER",
                    "with an id not above its last",
                ));
            }
            self.peer_last = id;
            self.offered(id, size, hash, path.into_owned());
            return Ok(());
        }
        let Some(i) = self.find_wire(Way::In, id) else {
            if id > self.peer_last && !self.warned {
                self.warned = true;
                self.events.push(Event::Note(
                    "the peer sent file data it never offered: ignored".into(),
                ));
            }
            return Ok(());
        };
        let t = &mut self.list[i];
        match msg {
            FileMessage::Chunk { offset, data, .. } => {
                if t.state != State::Moving {
                    // Before we accepted: unasked. After it ended: in flight, harmless.
                    if matches!(t.state, State::Offered | State::Accepted) {
                        self.fail(i, "it sent data before it was accepted".into(), true);
                    }
                    return Ok(());
                }
                let end = offset.saturating_add(data.len() as u64);
                let wrong = if offset != t.at {
                    Some("it sent a piece out of order")
                } else if end > t.size {
                    Some("it sent more than it offered")
                } else if end > t.granted {
                    Some("it sent more than it was allowed to (flow control)")
                } else {
                    None
                };
                if let Some(why) = wrong {
                    self.fail(i, why.into(), true);
                    return Ok(());
                }
                t.at = end;
                let sent = t
                    .pieces
                    .as_ref()
                    .is_some_and(|p| p.send(Piece::Data(data.into_owned())).is_ok());
                if !sent {
                    self.fail(i, "writing it stopped".into(), true);
                }
            }
            FileMessage::Done { .. } => match t.state {
                State::Moving if t.at == t.size => {
                    t.state = State::Checking;
                    if let Some(p) = &t.pieces {
                        let _ = p.send(Piece::Done);
                    }
                }
                State::Moving => {
                    let why = format!("it said it was done at {} of {} bytes", t.at, t.size);
                    self.fail(i, why, true);
                }
                State::Offered | State::Accepted => {
                    self.fail(i, "it said it was done before it was accepted".into(), true)
                }
                _ => {}
            },
            // (Once every byte is here the check goes on: the file is the one offered.)
            FileMessage::Cancel { reason, .. }
                if !matches!(t.state, State::Done | State::Failed | State::Checking) =>
            {
                let why = format!("the sender stopped: {}", crate::sanitize::line(&reason));
                self.fail(i, why, false);
            }
            _ => {}
        }
        Ok(())
    }

    /// The peer offers a file.
    pub(super) fn offered(&mut self, id: u32, size: u64, hash: [u8; 32], path: String) {
        self.prune();
        let waiting = self
            .list
            .iter()
            .filter(|t| t.way == Way::In && matches!(t.state, State::Offered | State::Accepted))
            .count();
        let refuse = |why: String| {
            Message::File(FileMessage::Reject {
                id,
                reason: why.into(),
            })
        };
        if waiting >= MAX_WAITING {
            self.outbox
                .push_back(refuse("too many offers are waiting for an answer".into()));
            if !self.warned {
                self.warned = true;
                self.events.push(Event::Note(format!(
                    "the peer offered more than {MAX_WAITING} files at once: the rest are \
                     refused"
                )));
            }
            return;
        }
        let local = self.new_local();
        let components = match names::components(&path) {
            Ok(parts) => parts.into_iter().map(str::to_owned).collect(),
            Err(why) => {
                let why = format!("its name is unsafe: {why}");
                self.outbox.push_back(refuse(why.clone()));
                self.refused += 1;
                match self.refused {
                    n if n <= TOLD_REFUSALS => self.events.push(Event::Failed {
                        local,
                        way: Way::In,
                        name: crate::sanitize::line(&path).into_owned(),
                        reason: why,
                    }),
                    n if n == TOLD_REFUSALS + 1 => self.events.push(Event::Note(
                        "the peer keeps offering files with unsafe names: refusing them \
                         without saying so each time"
                            .into(),
                    )),
                    _ => {}
                }
                return;
            }
        };
        // A file we accepted, cut earlier in this session, comes back under a new id: it
        // carries on without asking again, under the name we accepted it with.
        let resumed = self.list.iter().position(|t| {
            t.way == Way::In
                && t.state == State::Cut
                && t.accepted
                && t.hash == hash
                && t.size == size
                && t.name == path
        });
        let auto = resumed.is_some()
            || (self.policy.auto
                && (self.auto_taken.load(Ordering::Relaxed)).saturating_add(size) <= AUTO_QUOTA);
        let local = match resumed {
            Some(i) => self.list[i].local,
            None => local,
        };
        if let Some(i) = resumed {
            self.list.remove(i);
        }
        self.events.push(Event::Offered {
            local,
            way: Way::In,
            name: path.clone(),
            size,
            hash,
            auto,
        });
        self.list.push(Transfer {
            local,
            way: Way::In,
            id,
            name: path,
            size,
            hash,
            state: State::Offered,
            from: 0,
            at: 0,
            started: Instant::now(),
            source: None,
            reading: None,
            granted: 0,
            written: 0,
            pieces: None,
            components,
            accepted: false,
        });
        if self.policy.auto && resumed.is_none() && !auto {
            let i = self.list.len() - 1;
            self.fail(
                i,
                format!(
                    "over this session's limit for accepting files without asking ({} GiB)",
                    AUTO_QUOTA >> 30
                ),
                true,
            );
        } else if auto {
            self.auto_taken.fetch_add(size, Ordering::Relaxed);
            let _ = self.accept(Some(local));
        }
    }
}
