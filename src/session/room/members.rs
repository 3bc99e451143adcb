//! The members of a room: starting their tasks, naming them (petnames, display names,
//! collisions), relaying to them, and letting them go.

use super::*;

pub(super) struct Member {
    pub(super) info: PeerInfo,
    pub(super) address: String,
    pub(super) outbox: Outbox,
    pub(super) reader: JoinHandle<()>,
    pub(super) writer: JoinHandle<Result<()>>,
    /// Its HELLO has arrived: it accepted our key and is in the room.
    pub(super) ready: bool,
    /// The display name it announced and we accepted (empty: none).
    pub(super) name: String,
    /// When its name last changed (one change per [`RENAME_EVERY`]).
    pub(super) asked_who: Option<Instant>,
    /// The session's token, which a later connection presents to resume it (PROTOCOL.md
    /// §4.11). Secret.
    pub(super) token: zeroize::Zeroizing<[u8; crate::message::TOKEN_LEN]>,
    /// It said RESUMABLE (and we did): a cut keeps its place.
    pub(super) resumable: bool,
    /// Its connection dropped: its place is kept until then, its messages held; how it
    /// dropped, said when it does not come back.
    pub(super) away_until: Option<Instant>,
    pub(super) away_cause: Option<Error>,
    /// A new connection resuming it: it gets RESUMED instead of WELCOME.
    pub(super) resuming: bool,
    /// Files to and from it, and where its writer takes their bytes.
    pub(super) files: crate::files::Transfers,
    /// It takes PEER (its PAIRS): it talks end to end with the other members (§4.14).
    pub(super) pairs: bool,
    pub(super) bulk: mpsc::Sender<Message<'static>>,
}

/// A member may change its display name once per this long: each change is announced to
/// everyone, so a loop of renames would be a flood.
pub(super) const RENAME_EVERY: Duration = Duration::from_secs(10);

impl Member {
    /// Its label with its short fingerprint, once (an unverified label already has it).
    pub(super) fn tag(&self) -> String {
        let short = fingerprint::short(&self.info.key);
        if self.info.label.contains(&short) {
            self.info.label.clone()
        } else {
            format!("{} ({short})", self.info.label)
        }
    }

    /// How the host's output names it (with the display name it announced).
    pub(super) fn speaker(&self) -> crate::ui::Speaker<'_> {
        crate::ui::Speaker {
            name: (!self.name.is_empty()).then_some(self.name.as_str()),
            ..self.info.speaker()
        }
    }

    /// How notices name it.
    pub(super) fn entry(&self) -> Entry<'static> {
        Entry {
            key: *self.info.key.as_bytes(),
            name: self.name.clone().into(),
        }
    }
}

/// After any change of names or members: forget the names of those gone, learn the petnames
/// given meanwhile, and label everyone anew (a name may collide, or stop colliding).
pub(super) fn relabel(members: &mut BTreeMap<u64, Member>, names: &mut Names) {
    let present: Vec<PublicKey> = members
        .values()
        .filter(|m| m.ready)
        .map(|m| m.info.key)
        .collect();
    names.retain(&present);
    for m in members.values() {
        if let Some(entry) = &m.info.entry {
            names.set_petname(m.info.key, entry.name.clone());
        }
        if m.ready && !m.name.is_empty() {
            let _ = names.announce(m.info.key, &m.name);
        }
    }
    for m in members.values_mut() {
        m.info.label = names.label(&m.info.key);
    }
}

/// A notice of `event`, worded `text`.
pub(super) fn notice(event: NoticeEvent<'static>, text: String) -> Message<'static> {
    Message::Notice(Notice {
        event,
        text: text.into(),
    })
}

/// Why a member left, for its LEAVE notice.
pub(super) fn leave_reason(how: &Result<String>) -> Reason {
    match how {
        Ok(_) => Reason::Quit,
        Err(e) => match Departure::of(e) {
            Departure::Quit => Reason::Quit,
            Departure::Cut => Reason::Cut,
            Departure::Refused | Departure::Unanswered => Reason::Refused,
            Departure::Timeout => Reason::Timeout,
            Departure::Error => Reason::Error,
        },
    }
}

/// The room as member `to` is told it: who else is there, as the host knows them.
pub(super) fn roster(members: &BTreeMap<u64, Member>, to: u64, names: &Names) -> Message<'static> {
    // However large the room, the answer fits one message: entries up to a budget, and the
    // text names the rest only by their number.
    const BUDGET: usize = 48 * 1024;
    let others: Vec<&Member> = members
        .iter()
        .filter(|(id, m)| m.ready && **id != to)
        .map(|(_, m)| m)
        .collect();
    let mut entries = Vec::new();
    let mut labels = Vec::new();
    let mut size = 0;
    for m in &others {
        let label = names.public_label(&m.info.key);
        let cost = 33 + m.name.len() + label.len() + 2;
        if size + cost > BUDGET {
            break;
        }
        size += cost;
        entries.push(m.entry());
        labels.push(label);
    }
    let more = others.len() - entries.len();
    let text = match (others.len(), more) {
        (0, _) => "in the room: you and the host".into(),
        (n, 0) => format!(
            "in the room: you, the host, and {n} other(s): {}",
            labels.join(", ")
        ),
        (n, more) => format!(
            "in the room: you, the host, and {n} other(s): {}, and {more} more",
            labels.join(", ")
        ),
    };
    notice(NoticeEvent::Roster(entries), text)
}

/// A member asked for a new display name: accepted and announced to all (the member too, as
/// its confirmation), or refused to it alone, with the reason.
pub(super) fn rename(
    members: &mut BTreeMap<u64, Member>,
    id: u64,
    name: &str,
    names: &mut Names,
    renamed: &mut HashMap<PublicKey, Instant>,
    ui: &Ui,
) {
    let Some(member) = members.get_mut(&id) else {
        return;
    };
    // Per key, not per connection: reconnecting does not reset it.
    let key = member.info.key;
    renamed.retain(|_, at| at.elapsed() < RENAME_EVERY);
    let refusal = match names::check_name(name) {
        Err(why) if !name.is_empty() => Some(why),
        _ if renamed.contains_key(&key) => Some("one name change per 10 seconds"),
        _ => None,
    };
    if let Some(why) = refusal {
        let refused = Entry {
            key: *member.info.key.as_bytes(),
            name: name.to_owned().into(),
        };
        let _ = member
            .outbox
            .offer(notice(NoticeEvent::Refused(refused), why.into()));
        return;
    }
    let (old, old_public) = (member.tag(), names.public_label(&member.info.key));
    member.name = name.to_owned();
    renamed.insert(key, Instant::now());
    names.forget(&key);
    relabel(members, names);
    let Some(member) = members.get(&id) else {
        return;
    };
    let new = member.tag();
    let line = if old == new {
        format!("{old} now calls itself {}", sanitize::line(name))
    } else {
        format!("{old} is now {new}")
    };
    ui.room(None, crate::ui::RoomEvent::Renamed(member.speaker()), &line);
    let text = format!("{old_public} is now {}", names.public_label(&key));
    broadcast(
        members,
        None,
        &notice(NoticeEvent::Rename(member.entry()), text),
        ui,
    );
}

/// Starts a member's reader and writer and sends our HELLO. It is not welcomed, announced or
/// sent room traffic until its own HELLO arrives: see [`Event::Ready`].
pub(super) fn admit<R, W>(
    id: u64,
    arrival: Arrival<R, W>,
    options: &RoomOptions,
    host_name: &str,
    events: &mpsc::Sender<Event>,
    files: crate::files::Transfers,
) -> Member
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    let Arrival {
        established,
        mut info,
        address,
        first,
    } = arrival;
    info.address = Some(address.clone());
    let token = established.resume_token.clone();
    let Established { recv, send, .. } = established;
    let (outbox, queue) = Outbox::new(options.outbox_bytes);
    let (bulk, bulk_out) = mpsc::channel(FILE_QUEUE);
    let mut files = files;
    files.connected(bulk.clone());
    let writer = tokio::spawn(member::writer(send, queue, bulk_out));
    let reading = member::Reading {
        id,
        events: events.clone(),
        outbox: outbox.clone(),
        keepalive: options.keepalive,
        rate: options.rate,
        hello_within: options.hello_within,
    };
    let reader = tokio::spawn(member::reader(reading, recv, first));
    // We pass PEER between members (§4.14), and say whether we take part, before our HELLO.
    let _ = outbox.offer(Message::Pairs(u8::from(options.relay_only)));
    // WELCOME waits for its HELLO: then it is in, and a dialer that sees WELCOME knows the
    // room has counted it (a script may speak at once).
    let _ = outbox.offer(Message::hello(message::Mode::Chat, host_name.to_owned()));
    // We acknowledge what we show, and keep a dropped member's place.
    let _ = outbox.offer(Message::Receipts);
    if options.resume_grace.is_some() {
        let _ = outbox.offer(Message::Resumable);
    }
    // We take files (PROTOCOL.md §4.13), and offer ours once it says it does; a host that
    // takes no part in the room takes no files either (members hand them to each other).
    if !options.relay_only {
        let _ = outbox.offer(Message::Files);
    }
    Member {
        info,
        address,
        outbox,
        reader,
        writer,
        ready: false,
        name: String::new(),
        asked_who: None,
        token,
        resumable: false,
        away_until: None,
        away_cause: None,
        resuming: false,
        files,
        bulk,
        pairs: false,
    }
}

/// Files' CHUNKs waiting for a member's writer (at most 1 MiB, behind the room's traffic).
const FILE_QUEUE: usize = 16;

/// A member said something: show it, relay it to everyone else (to those it does not talk
/// to end to end: the others have it sealed from its author).
pub(super) fn said(
    members: &mut BTreeMap<u64, Member>,
    id: u64,
    text: &str,
    ui: &Ui,
    relay_only: bool,
) -> Result<()> {
    let Some(member) = members.get(&id) else {
        return Ok(());
    };
    if relay_only {
        let _ = member.outbox.offer(notice(
            NoticeEvent::Text,
            "this host takes no part in the room (--relay-only): it neither shows nor passes \
             on your text; your schat seals it for the members"
                .into(),
        ));
        return Ok(());
    }
    ui.message(&member.speaker(), text)
        .map_err(|e| Error::io("writing to stdout", e))?;
    if text.len() > MAX_RELAY_TEXT {
        let _ = member.outbox.offer(notice(
            NoticeEvent::Text,
            format!(
                "your message of {} bytes was shown to the host but is too long to relay \
                 (limit {MAX_RELAY_TEXT} bytes)",
                text.len()
            ),
        ));
        return Ok(());
    }
    let relay = Message::Relay {
        origin: *member.info.key.as_bytes(),
        text: text.to_owned().into(),
    };
    let sealed = member.pairs;
    broadcast_to(
        members,
        |other, m| other != id && !(sealed && m.pairs),
        &relay,
        ui,
    );
    Ok(())
}

/// Offers `msg` to every member except `except`; members that cannot take it are disconnected.
pub(super) fn broadcast(
    members: &mut BTreeMap<u64, Member>,
    except: Option<u64>,
    msg: &Message<'static>,
    ui: &Ui,
) {
    broadcast_to(members, |id, _| Some(id) != except, msg, ui);
}

/// Offers `msg` to the members `to` picks; members that cannot take it are disconnected.
pub(super) fn broadcast_to(
    members: &mut BTreeMap<u64, Member>,
    to: impl Fn(u64, &Member) -> bool,
    msg: &Message<'static>,
    ui: &Ui,
) {
    let slow: Vec<u64> = members
        .iter()
        .filter(|(id, m)| m.ready && to(**id, m))
        .filter(|(_, m)| m.outbox.offer(msg.clone()) == Offer::Full)
        .map(|(id, _)| *id)
        .collect();
    disconnect_slow(members, slow, ui);
}

pub(super) fn disconnect_slow(members: &mut BTreeMap<u64, Member>, slow: Vec<u64>, ui: &Ui) {
    for id in slow {
        let Some(member) = members.remove(&id) else {
            continue;
        };
        let tag = member.tag();
        ui.warn(format_args!(
            "{tag} is not keeping up (its queue is full): disconnected"
        ));
        let left = notice(
            NoticeEvent::Leave(member.entry(), Reason::Timeout),
            format!("{tag} was disconnected: not keeping up"),
        );
        part(member);
        // Recursion is bounded: every level removes a member.
        broadcast(members, None, &left, ui);
    }
}

/// Lets a member go at once: both tasks are stopped, which closes the connection (an error,
/// a member too slow, or one replaced by its own reconnection).
pub(super) fn part(member: Member) {
    let Member { reader, writer, .. } = member;
    reader.abort();
    writer.abort();
}

/// Lets a member that said QUIT go: its writer gets [`DEPARTURE_GRACE`] to finish what is
/// queued (its WELCOME, say, when it said QUIT right after HELLO) and close; a member that said
/// QUIT and stopped reading is cut when the grace runs out. The room waits for these before it
/// ends, so `--once` never exits with a departing member's last messages unsent.
pub(super) fn part_gracefully(member: Member, departing: &mut tokio::task::JoinSet<()>) {
    let Member {
        outbox,
        reader,
        mut writer,
        ..
    } = member;
    drop(outbox);
    reader.abort();
    departing.spawn(async move {
        if tokio::time::timeout(DEPARTURE_GRACE, &mut writer)
            .await
            .is_err()
        {
            writer.abort();
        }
    });
}

/// Ends the room: QUIT to everyone, then give each member a moment to hang up (so our QUIT is
/// not lost to a reset) before closing what is left.
pub(super) async fn close(members: BTreeMap<u64, Member>) {
    let mut leaving = Vec::new();
    for (_, member) in members {
        let Member {
            outbox,
            reader,
            writer,
            ..
        } = member;
        if outbox.offer(Message::Quit("".into())) != Offer::Queued {
            writer.abort();
        }
        drop(outbox);
        leaving.push((reader, writer));
    }
    let all = async {
        for (reader, writer) in &mut leaving {
            let _ = writer.await;
            let _ = reader.await;
        }
    };
    let _ = tokio::time::timeout(LINGER, all).await;
    for (reader, writer) in leaving {
        reader.abort();
        writer.abort();
    }
}
