//! The room's loop: one value, [`Room`], holds everything the room knows (members, names,
//! knocks, the tasks it waits for), and the loop hands each event to one of its methods.

use super::*;
use crate::session::User;

mod files;
mod join;
use join::quiet;
mod pairs;
mod receipts;
mod resume;

/// A knock answered `y NAME`, with its address, once known_peers has the name (or not).
type Naming<R, W> = (
    Arrival<R, W>,
    String,
    std::result::Result<crate::trust::Entry, String>,
);

/// Everything a room keeps between events.
struct Room<'a, R, W> {
    options: &'a RoomOptions,
    ui: &'a Ui,
    members: BTreeMap<u64, Member>,
    next_id: u64,
    /// Where members' readers report (each reader holds a clone).
    events: mpsc::Sender<Event>,
    names: Names,
    host_name: String,
    /// When each key last changed its name (one change per RENAME_EVERY, per key).
    renamed: HashMap<PublicKey, Instant>,
    churn: Churn,
    /// Refusals in progress, bounded (see `send_away`).
    turning_away: Arc<Semaphore>,
    knocks: Knocks<R, W>,
    /// The oldest knock changed: show it (and its question) once the event is handled.
    ask_knock: bool,
    /// Writers of members that said QUIT, finishing their queues.
    departing: tokio::task::JoinSet<()>,
    /// Changes of known_peers the host asked for (a knock answered `y NAME`, /name), running
    /// off the room's loop: a store waiting on its lock or a slow disk never stalls the room.
    naming: tokio::task::JoinSet<Naming<R, W>>,
    renaming: tokio::task::JoinSet<Named>,
    /// Someone was in the room once (`--once` ends when it empties after that).
    had_members: bool,
    /// The host's lines waiting for members' receipts.
    lines: Fanout,
    /// When the next round of ACKs to members is due (a burst is acknowledged once).
    ack_at: Option<Instant>,
    /// Files to and from members.
    desks: files::Desks,
}

/// Runs the room until the host quits (or, with `once`, until it empties after its first
/// member). `connections` delivers what the accept loop produced.
///
/// The host's own input never waits on a member: a line that does not fit a member's outbox
/// disconnects that member as not keeping up, so no member can freeze the host's typing.
pub async fn host<R, W>(
    mut connections: mpsc::Receiver<Connection<R, W>>,
    options: &RoomOptions,
    ui: &Ui,
    user: &mut User<'_>,
) -> Result<()>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let (events_tx, mut events) = mpsc::channel::<Event>(1024);
    let turning_away = Arc::new(Semaphore::new(TURNING_AWAY));
    let (desks, mut file_notes) = files::Desks::new();
    let mut room = Room {
        options,
        ui,
        members: BTreeMap::new(),
        next_id: 0,
        events: events_tx,
        names: Names::load(&options.trust),
        host_name: options.name.clone(),
        renamed: HashMap::new(),
        churn: Churn::new(),
        knocks: Knocks::new(turning_away.clone(), options.knock_wait),
        turning_away,
        ask_knock: false,
        departing: tokio::task::JoinSet::new(),
        naming: tokio::task::JoinSet::new(),
        renaming: tokio::task::JoinSet::new(),
        had_members: false,
        lines: Fanout::new(),
        ack_at: None,
        desks,
    };
    let mut input_open = true;
    let mut signalled = false;
    let last = loop {
        let present = room.members.len();
        let ended: Option<Result<()>> = tokio::select! {
            Some(connection) = connections.recv() => {
                match connection {
                    Connection::Failed(line) => ui.warn(line),
                    Connection::Knock(arrival, source) => {
                        room.ask_knock |= room.knocks.knock(*arrival, source, ui)
                    }
                    Connection::Arrived(arrival) => room.enter(*arrival),
                }
                None
            }
            () = tokio::time::sleep_until(room.knocks.due()), if !room.knocks.is_empty() => {
                room.ask_knock |= room.knocks.expire(ui);
                None
            }
            () = tokio::time::sleep_until(room.knocks.summary_due()), if room.knocks.turned_away() > 0 => {
                room.knocks.summarise(ui);
                None
            }
            Some(event) = events.recv() => room.on_event(event),
            Some((tag, note)) = file_notes.recv() => {
                room.file_note(tag, note);
                None
            }
            () = tokio::time::sleep_until(room.desks.progress_at().unwrap_or_else(Instant::now)), if room.desks.progress_at().is_some() => {
                room.files_tick();
                None
            }
            () = tokio::time::sleep_until(room.next_return().unwrap_or_else(Instant::now)), if room.next_return().is_some() => {
                room.expire_away()
            }
            () = tokio::time::sleep_until(room.ack_at.unwrap_or_else(Instant::now)), if room.ack_at.is_some() => {
                room.acknowledge();
                None
            }
            Some(_) = room.departing.join_next(), if !room.departing.is_empty() => None,
            // A knock answered `y NAME`, remembered: now it comes in.
            Some(named) = room.naming.join_next(), if !room.naming.is_empty() => {
                match named {
                    Ok(named) => room.knock_named(named),
                    Err(e) => ui.error(format_args!("remembering a knock failed: {e}")),
                }
                None
            }
            // A member the host named with /name.
            Some(named) = room.renaming.join_next(), if !room.renaming.is_empty() => {
                if let Ok(named) = named {
                    named_member(&mut room.members, &mut room.names, named, ui);
                }
                None
            }
            () = tokio::time::sleep_until(room.churn.due()), if room.churn.held_back() => {
                let line = room.churn.summary(room.ready());
                ui.status(&line);
                broadcast(&mut room.members, None, &notice(NoticeEvent::Text, line), ui);
                None
            }
            event = user.input.next(), if input_open => {
                // Ctrl-C at the line editor is the terminal's interrupt: no waiting after it.
                signalled |= matches!(event, InputEvent::Interrupted);
                room.on_input(event, user.input, &mut input_open)
            }
            name = user.interrupts.recv() => {
                ui.status(format_args!("{name}; closing the room"));
                signalled = true;
                Some(Ok(()))
            }
        };
        room.files_flush();
        if let Some(last) = ended {
            break last;
        }
        // `--send`: every member it went to has its files.
        if room.all_sent() {
            ui.status("files sent; closing the room");
            break Ok(());
        }
        // Someone left (a slow member disconnected inside a broadcast, say): names of those
        // gone no longer count, and their collisions end.
        if room.members.len() < present {
            relabel(&mut room.members, &mut room.names);
            room.missed_by_leavers();
        }
        // Who could resume, for the accept loop.
        let resumable = room
            .members
            .values()
            .filter(|m| m.resumable)
            .map(|m| m.info.key);
        *options.resumable.lock().unwrap_or_else(|e| e.into_inner()) = resumable.collect();
        if std::mem::take(&mut room.ask_knock) {
            room.knocks.ask(ui, user.input);
        }
        if options.once && room.had_members && room.members.is_empty() {
            break Ok(());
        }
    };
    // Leaving of our own accord: the lines still on their way get a moment to be shown.
    if !signalled && matches!(last, Ok(())) && room.lines.undelivered() > 0 {
        room.settle(&mut events, user, input_open).await;
    }
    user.input.set_prompt(None);
    let undelivered = room.lines.undelivered() as u64 + room.lines.missed();
    let files_failed = room.files_close();
    let Room {
        mut members,
        mut departing,
        ..
    } = room;
    // What we showed of theirs is acknowledged before our goodbye.
    for member in members.values_mut() {
        let ack = member.outbox.ledger().take_ack_if_offered();
        if let Some(count) = ack {
            let _ = member.outbox.offer(Message::Ack(count));
        }
    }
    close(members).await;
    // Each is bounded by its own grace.
    while departing.join_next().await.is_some() {}
    if matches!(last, Ok(())) && undelivered == 0 && files_failed > 0 {
        return Err(Error::Undelivered(format!(
            "{files_failed} file transfer{} did not complete (see above)",
            if files_failed == 1 { "" } else { "s" }
        )));
    }
    match (last, undelivered) {
        (Ok(()), n @ 1..) => Err(Error::Undelivered(format!(
            "{n} of your lines {} not shown to every member it went to (someone left first, \
             or did not confirm in time)",
            if n == 1 { "was" } else { "were" }
        ))),
        (last, _) => last,
    }
}

impl<R, W> Room<'_, R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// Members in the room (their HELLO came).
    fn ready(&self) -> usize {
        self.members.values().filter(|m| m.ready).count()
    }

    /// An admitted connection enters: as a member waiting for its HELLO, or, when the room is
    /// full, turned away.
    fn enter(&mut self, arrival: Arrival<R, W>) {
        let (options, ui) = (self.options, self.ui);
        let ready = self.ready();
        // A member whose connection dropped keeps its place for its own key's return.
        // (Or one whose connection dropped without the host noticing yet.)
        let returning = self
            .members
            .values()
            .any(|m| m.resumable && m.info.key == arrival.info.key);
        if ready >= options.max_peers && !returning {
            ui.warn(format_args!(
                "refused {} from {}: the room is full ({ready} of {})",
                arrival.info.label, arrival.address, options.max_peers
            ));
            turn_away(&self.turning_away, arrival.established);
            return;
        }
        // Not a member yet: it joins when its HELLO says it accepted our key. Room for as
        // many of those as for members; the oldest makes way (a real dialer says HELLO within
        // moments, or while its user reads a question).
        let pending: Vec<u64> = self
            .members
            .iter()
            .filter(|(_, m)| !m.ready)
            .map(|(id, _)| *id)
            .collect();
        if pending.len() >= options.max_peers
            && let Some(oldest) = pending.first().and_then(|id| self.members.remove(id))
        {
            part(oldest);
        }
        self.next_id += 1;
        let files = self.desks.transfers(self.next_id, options.files.clone());
        let member = admit(
            self.next_id,
            arrival,
            options,
            &self.host_name,
            &self.events,
            files,
        );
        self.members.insert(self.next_id, member);
    }

    /// What a member's reader reported. `Some` ends the room (with its result).
    fn on_event(&mut self, event: Event) -> Option<Result<()>> {
        match event {
            Event::Ready { id, name } => match self.members.get(&id).map(|m| m.resuming) {
                Some(true) => self.resumed(id),
                _ if self.refuses_without_pairs(id) => {}
                _ => self.joined(id, name),
            },
            Event::Resumable { id } => {
                // (Only with receipts: without them nothing says what to send again.)
                if let Some(member) = self.members.get_mut(&id) {
                    member.resumable =
                        self.options.resume_grace.is_some() && member.outbox.ledger().peer_acks();
                }
            }
            Event::Resume { id, token, shown } => self.resume(id, &token, shown),
            Event::Who { id } => {
                // One answer a second: a roster is far bigger than the WHO that asks.
                let member = self.members.get_mut(&id)?;
                if member.asked_who.is_some_and(|at| at.elapsed() < WHO_EVERY) {
                    return None;
                }
                member.asked_who = Some(Instant::now());
                let roster = roster(&self.members, id, &self.names);
                if let Some(member) = self.members.get(&id) {
                    let _ = member.outbox.offer(roster);
                }
            }
            Event::Nick { id, name } => {
                rename(
                    &mut self.members,
                    id,
                    &name,
                    &mut self.names,
                    &mut self.renamed,
                    self.ui,
                );
                self.shown(id);
            }
            Event::Said { id, text } => {
                if let Err(e) = said(
                    &mut self.members,
                    id,
                    &text,
                    self.ui,
                    self.options.relay_only,
                ) {
                    return Some(Err(e));
                }
                self.shown(id);
            }
            Event::Receipts { id } => {
                if let Some(member) = self.members.get_mut(&id) {
                    member.outbox.ledger().peer_acknowledges();
                }
            }
            Event::Acked { id, count } => {
                let member = self.members.get_mut(&id)?;
                let acked = member.outbox.ledger().acked(count);
                if let Err(e) = acked {
                    let how = Err(crate::error::ProtocolError::Receipt(e).into());
                    return self.left(id, how);
                }
                for line in self.lines.acked(id, count) {
                    self.ui.delivered(line..=line);
                }
            }
            Event::Files { id } => self.member_files(id),
            Event::Pairs { id } => self.member_pairs(id),
            Event::Peer { id, peer } => {
                self.route(id, peer);
                self.shown(id);
            }
            // (Not counted: a file's bytes, §4.14.)
            Event::Bulk { id, peer, route } => self.route_bulk(id, peer, route),
            Event::File { id, file } => return self.member_file(id, file),
            Event::Left { id, how } => {
                if self.keeps_place(id, &how) {
                    self.went_away(id, how);
                    return None;
                }
                return self.left(id, how);
            }
        }
        None
    }

    /// A member left, `how` (its QUIT's reason, or what went wrong). `Some` ends the room.
    fn left(&mut self, id: u64, how: Result<String>) -> Option<Result<()>> {
        let ui = self.ui;
        let mut member = self.members.remove(&id)?;
        // Its transfers end with it (partial files are kept, to resume).
        member.files.peer_left();
        for event in std::mem::take(&mut member.files.events) {
            ui.file_event(&member.speaker(), &event);
        }
        self.desks.failed += member.files.failures();
        if !member.ready {
            // It never joined: nobody was told it came, nobody is told it went.
            match &how {
                Err(Error::RefusedByPeer(why)) => ui.warn(format_args!(
                    "{} from {} refused us: {why}",
                    member.tag(),
                    member.address
                )),
                Err(e) => ui.warn(format_args!(
                    "connection from {} ({}) ended before it joined: {e}",
                    member.address,
                    member.tag()
                )),
                Ok(_) => {}
            }
            part(member);
            return None;
        }
        let loud = self.churn.announce(false);
        let speaker = member.speaker();
        match &how {
            // Programs get every departure; people a summary under churn.
            Ok(reason) if loud || !reason.is_empty() || ui.mode() == Mode::Json => {
                ui.left(&speaker, Departure::Quit, reason)
            }
            Ok(_) => {}
            Err(e) => ui.left(
                &speaker,
                Departure::of(e),
                &format!("{e} ({})", member.address),
            ),
        }
        let left = notice(
            NoticeEvent::Leave(member.entry(), leave_reason(&how)),
            format!("{} left", self.names.public_label(&member.info.key)),
        );
        match how.is_ok() {
            true => part_gracefully(member, &mut self.departing),
            false => part(member),
        }
        relabel(&mut self.members, &mut self.names);
        // Members that talk end to end end their sessions by it: told even under churn.
        broadcast_to(
            &mut self.members,
            |_, m| loud || m.pairs,
            &quiet(left, loud),
            ui,
        );
        let last = how.map(|_| ());
        if self.members.is_empty() {
            if self.options.once {
                return Some(last);
            }
            ui.status("the room is empty; waiting for the next peer");
        }
        // (A member that left with an error does not end the room.)
        None
    }

    /// A knock answered `y NAME` whose name known_peers now holds (or could not take).
    fn knock_named(&mut self, named: Naming<R, W>) {
        match named {
            (mut arrival, _, Ok(entry)) => {
                self.ui.status(format_args!(
                    "remembered as {:?} (trusted on first use, not verified)",
                    entry.name
                ));
                arrival.info.label = entry.name.clone();
                arrival.info.entry = Some(entry);
                self.enter(arrival);
            }
            (arrival, source, Err(why)) => {
                self.ui.warn(format_args!("{why}: answer again"));
                self.knocks.ask_again(arrival, source);
                self.ask_knock = true;
            }
        }
    }

    /// What the host typed: an answer to a knock, or a line or command. `Some` ends the room.
    fn on_input(
        &mut self,
        event: InputEvent,
        input: &mut Input,
        input_open: &mut bool,
    ) -> Option<Result<()>> {
        let ui = self.ui;
        // A knock is waiting: the line is the host's answer to it.
        if !self.knocks.is_empty()
            && let InputEvent::Line(answer) = &event
        {
            match self.knocks.answer(answer, ui) {
                Answer::Admit(arrival) => self.enter(arrival),
                Answer::Name(arrival, petname, source) => {
                    let trust = self.options.trust.clone();
                    self.naming.spawn(async move {
                        let named = name_peer(&trust, arrival.info.key, petname).await;
                        (arrival, source, named)
                    });
                }
                Answer::Wait => {}
            }
            // The next knock's question, or the prompt (and the draft) back.
            self.knocks.ask(ui, input);
            return None;
        }
        if matches!(event, InputEvent::Eof | InputEvent::Failed(_)) {
            // Nothing more to say is not "close the room" (a host under systemd or nohup has
            // no input at all): keep serving until a signal or --once.
            if let InputEvent::Failed(e) = &event {
                ui.error(format_args!("reading input failed: {e}"));
            }
            ui.status("end of input: the room stays open (a signal closes it)");
            *input_open = false;
            return None;
        }
        if let InputEvent::Line(line) = &event
            && let Command::File(file) = command::parse(line)
        {
            self.files_command(&file);
            return None;
        }
        let host = Host {
            key: &self.options.key,
            name: &mut self.host_name,
            renaming: &mut self.renaming,
            lines: &mut self.lines,
            relay_only: self.options.relay_only,
        };
        host_input(
            event,
            &mut self.members,
            input,
            ui,
            &self.options.trust,
            host,
        )
    }
}
