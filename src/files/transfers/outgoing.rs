//! Our files: the receiver's ACCEPT, CREDIT, REJECT and VERIFIED.

use super::*;

impl Transfers {
    pub(super) fn as_sender(&mut self, msg: FileMessage<'static>) -> Result<(), ProtocolError> {
        let id = msg.id();
        if id == 0 || id >= self.next_id {
            return Err(ProtocolError::Unexpected(
                msg.name(),
                "for a file we never offered",
            ));
        }
        // (Answers about a transfer that ended, or was offered on an earlier connection, are
        // late, not false.)
        let Some(i) = self.find_wire(Way::Out, id) else {
            return Ok(());
        };
        let t = &mut self.list[i];
        match msg {
            FileMessage::Accept { offset, limit, .. } if t.state == State::Offered => {
                if offset > t.size || limit < offset {
                    return Err(ProtocolError::Unexpected(
                        "FILE ACCEPT",
                        "from beyond the file's end, or with a limit below its offset",
                    ));
                }
                // It starts when a reading thread is free (see `start_sending`).
                t.state = State::Accepted;
                (t.from, t.at, t.granted) = (offset, offset, limit);
                self.start_sending();
            }
            FileMessage::Credit { limit, .. } => {
                t.granted = t.granted.max(limit);
                if let Some(r) = &t.reading {
                    let _ = r.credit.send(limit);
                }
            }
            FileMessage::Reject { reason, .. }
                if matches!(t.state, State::Offered | State::Accepted | State::Moving) =>
            {
                let why = match t.state {
                    State::Offered => "declined",
                    _ => "stopped by the receiver",
                };
                let reason = crate::sanitize::line(&reason);
                // (A receiver that simply declined says so itself: not "declined: declined".)
                let why = match reason.trim() {
                    "" => why.to_owned(),
                    r if r == why => why.to_owned(),
                    r => format!("{why}: {r}"),
                };
                self.fail(i, why, false);
            }
            FileMessage::Verified { .. } if t.state == State::Moving => {
                let queued = t
                    .reading
                    .as_ref()
                    .map_or(0, |r| r.queued.load(Ordering::Relaxed));
                if queued != t.size {
                    return Err(ProtocolError::Unexpected(
                        "FILE VERIFIED",
                        "before the file was all sent",
                    ));
                }
                t.at = t.size;
                t.state = State::Done;
                t.reading = None;
                self.events.push(Event::Done {
                    local: t.local,
                    way: Way::Out,
                    name: t.name.clone(),
                    size: t.size,
                    hash: t.hash,
                    path: None,
                    moved: t.size - t.from,
                });
                self.start_sending();
            }
            FileMessage::Verified { .. } if matches!(t.state, State::Offered | State::Accepted) => {
                return Err(ProtocolError::Unexpected(
                    "FILE VERIFIED",
                    "before the file was all sent",
                ));
            }
            _ => {}
        }
        Ok(())
    }

    /// Accepted files start, as many as are read at once ([`MAX_SENDING`]): a receiver that
    /// accepts ten thousand files at once gets them a few at a time, not ten thousand threads.
    pub(super) fn start_sending(&mut self) {
        let Some(bulk) = self.bulk.clone() else {
            return;
        };
        loop {
            let running = (self.list.iter())
                .filter(|t| t.way == Way::Out && t.state == State::Moving)
                .count();
            let next =
                (self.list.iter()).position(|t| t.way == Way::Out && t.state == State::Accepted);
            let (true, Some(i)) = (running < MAX_SENDING, next) else {
                return;
            };
            let t = &mut self.list[i];
            let Some(source) = t.source.clone() else {
                return;
            };
            t.state = State::Moving;
            t.started = Instant::now();
            t.reading = Some(disk::send(
                t.local,
                t.id,
                source,
                t.from,
                t.granted,
                disk::Outlet {
                    bulk: bulk.clone(),
                    seal: self.seal.clone(),
                },
                self.notes.clone(),
            ));
            self.events.push(Event::Started {
                local: t.local,
                way: Way::Out,
                offset: t.from,
            });
        }
    }
}
