//! What the files' threads report: hashed, opened, written, saved, failed.

use super::*;

impl Transfers {
    /// A file's thread reports.
    pub fn on_note(&mut self, note: Note) {
        match note {
            Note::Prepared { paths, result } => {
                self.preparing = self.preparing.saturating_sub(1);
                match result {
                    Ok(sources) => {
                        for source in sources {
                            let local = self.new_local();
                            self.events.push(Event::Offered {
                                local,
                                way: Way::Out,
                                name: source.wire.clone(),
                                size: source.size,
                                hash: source.hash,
                                auto: false,
                            });
                            self.list.push(Transfer {
                                local,
                                way: Way::Out,
                                id: 0,
                                name: source.wire.clone(),
                                size: source.size,
                                hash: source.hash,
                                state: State::Offered,
                                from: 0,
                                at: 0,
                                started: Instant::now(),
                                source: Some(source),
                                reading: None,
                                granted: 0,
                                written: 0,
                                pieces: None,
                                components: Vec::new(),
                                accepted: false,
                            });
                            if self.peer_takes {
                                self.offer_at(self.list.len() - 1);
                            }
                        }
                    }
                    Err(why) => {
                        self.unprepared += 1;
                        let what: Vec<String> =
                            paths.iter().map(|p| p.display().to_string()).collect();
                        self.events.push(Event::Note(format!(
                            "not sent ({}): {why}",
                            what.join(", ")
                        )));
                    }
                }
            }
            Note::Opened { local, have } => {
                let Some(i) = self.find(local) else { return };
                let t = &mut self.list[i];
                if t.state != State::Accepted {
                    return;
                }
                t.state = State::Moving;
                (t.from, t.at, t.written) = (have, have, have);
                t.granted = have.saturating_add(self.window).min(t.size);
                t.started = Instant::now();
                let (id, offset, limit) = (t.id, have, t.granted);
                self.outbox
                    .push_back(Message::File(FileMessage::Accept { id, offset, limit }));
                self.events.push(Event::Started {
                    local,
                    way: Way::In,
                    offset,
                });
            }
            Note::Written { local, total } => {
                let Some(i) = self.find(local) else { return };
                let t = &mut self.list[i];
                t.written = total;
                let limit = total.saturating_add(self.window).min(t.size);
                // In steps of a quarter window, and the last step whatever its size.
                let worth =
                    limit >= t.granted + self.window / 4 || (limit == t.size && t.granted < limit);
                if t.state == State::Moving && worth {
                    t.granted = limit;
                    let id = t.id;
                    self.outbox
                        .push_back(Message::File(FileMessage::Credit { id, limit }));
                }
            }
            Note::Saved { local, path } => {
                let Some(i) = self.find(local) else { return };
                let t = &mut self.list[i];
                t.state = State::Done;
                t.pieces = None;
                let id = t.id;
                self.outbox
                    .push_back(Message::File(FileMessage::Verified { id }));
                self.events.push(Event::Done {
                    local,
                    way: Way::In,
                    name: t.name.clone(),
                    size: t.size,
                    hash: t.hash,
                    path: Some(path),
                    moved: t.at - t.from,
                });
                self.start_waiting();
            }
            Note::Failed { local, reason } => {
                if let Some(i) = self.find(local)
                    && !matches!(self.list[i].state, State::Done | State::Failed | State::Cut)
                {
                    self.fail(i, reason, true);
                }
            }
        }
    }
}
