//! What the host types: chat lines and the host's commands (`/msg`, `/name`, `/who`,
//! `/nick`, …), and how a member is named on the command line.

use super::*;

/// The host typed something.
pub(super) fn host_input(
    event: InputEvent,
    members: &mut BTreeMap<u64, Member>,
    input: &mut Input,
    ui: &Ui,
    trust: &TrustConfig,
    mut host: Host<'_>,
) -> Option<Result<()>> {
    let line = match event {
        InputEvent::Line(line) => line,
        InputEvent::TooLong => {
            ui.warn(format_args!(
                "line not sent: longer than {MAX_BODY} bytes, the most one message can carry"
            ));
            return None;
        }
        InputEvent::NotUtf8 => {
            ui.warn("line not sent: it is not valid UTF-8 text");
            return None;
        }
        // Ctrl-C at the line editor closes the room, as `quit` does. (End of input is handled
        // by the caller: the room stays open.)
        InputEvent::Interrupted | InputEvent::Eof | InputEvent::Failed(_) => return Some(Ok(())),
    };
    match command::parse(&line) {
        Command::Say(text) => say(members, None, text, &mut host, ui),
        Command::Me(action) => say(members, None, &format!("/me {action}"), &mut host, ui),
        Command::Name(name, petname) => match find(members, name) {
            Ok(id) => match crate::trust::validate_name(petname) {
                Err(why) => ui.warn(format_args!("not named: {why}")),
                Ok(()) => {
                    let member = members.get(&id)?;
                    let (key, before) = (member.info.key, member.tag());
                    let (trust, petname) = (trust.clone(), petname.to_string());
                    // Off the room's loop: the store may wait on a lock or the disk.
                    host.renaming.spawn(async move {
                        let result = name_peer(&trust, key, petname).await;
                        Named {
                            id,
                            key,
                            before,
                            result,
                        }
                    });
                }
            },
            Err(why) => ui.warn(why),
        },
        Command::Msg(name, text) => match find(members, name) {
            Ok(id) => say(members, Some(id), text, &mut host, ui),
            Err(why) => ui.warn(why),
        },
        Command::Who => {
            if !members.values().any(|m| m.ready) {
                ui.status("nobody is in the room");
            }
            for m in members.values().filter(|m| m.ready) {
                // One line per member, its name once.
                let verified = match &m.info.entry {
                    Some(e) => format!("{} ({})", e.how.describe(), e.when),
                    None => "not in known_peers".into(),
                };
                ui.status(format_args!("{} from {} — {verified}", m.tag(), m.address));
            }
        }
        Command::Whois(name) => match pick(members, name) {
            Ok(id) => {
                for line in members[&id].info.describe() {
                    ui.status(line);
                }
            }
            Err(why) => ui.warn(why),
        },
        Command::Verify(name) => match pick(members, name) {
            Ok(id) => {
                let info = &members[&id].info;
                ui.status(format_args!("safety number with {}:", info.label));
                for row in info.safety().lines() {
                    ui.status(format_args!("    {row}"));
                }
            }
            Err(why) => ui.warn(why),
        },
        Command::Nick(name) => match names::check_name(name) {
            Err(why) if !name.is_empty() => {
                ui.warn(format_args!("/nick {}: {why}", sanitize::line(name)))
            }
            Ok(()) | Err(_) => {
                name.clone_into(host.name);
                match name {
                    "" => ui.status("members now see you by your key alone"),
                    name => ui.status(format_args!(
                        "members now see you as {name} [{}]",
                        fingerprint::short(host.key)
                    )),
                }
                let entry = Entry {
                    key: *host.key.as_bytes(),
                    name: name.to_owned().into(),
                };
                let renamed = notice(NoticeEvent::Rename(entry), format!("the host is now {name}"));
                broadcast(members, None, &renamed, ui);
            }
        },
        Command::Clear => input.clear_screen(),
        Command::Help => {
            ui.listing(command::HELP);
        }
        // (The room's files took these before: see `host::files`.)
        Command::File(_) => {}
        Command::Quit => {
            ui.status("you closed the room");
            return Some(Ok(()));
        }
        Command::Unknown(word) => ui.warn(format_args!(
            "unknown command /{word} (nothing sent; /help lists commands, //{word} sends it as text)"
        )),
    }
    None
}

/// The host, as `/nick` changes it.
pub(super) struct Host<'a> {
    pub(super) key: &'a PublicKey,
    /// Its display name (empty: none).
    pub(super) name: &'a mut String,
    /// Members being named (/name) in known_peers.
    pub(super) renaming: &'a mut tokio::task::JoinSet<Named>,
    /// Its lines waiting for members' receipts.
    pub(super) lines: &'a mut Fanout,
    /// It takes no part (`--relay-only`): it says nothing.
    pub(super) relay_only: bool,
}

/// A member named with `/name`, once known_peers has it (or could not take it).
pub(super) struct Named {
    id: u64,
    key: PublicKey,
    /// Its tag before.
    before: String,
    result: std::result::Result<crate::trust::Entry, String>,
}

/// The host named a member: shown by its new petname from now on (if it is still here).
pub(super) fn named_member(
    members: &mut BTreeMap<u64, Member>,
    names: &mut Names,
    named: Named,
    ui: &Ui,
) {
    let Named {
        id,
        key,
        before,
        result,
    } = named;
    match result {
        Ok(entry) => {
            ui.status(format_args!("{before} is now known as {:?}", entry.name));
            if let Some(member) = members.get_mut(&id).filter(|m| m.info.key == key) {
                member.info.label = entry.name.clone();
                member.info.entry = Some(entry);
            }
            relabel(members, names);
        }
        Err(why) => ui.warn(format_args!("not named: {why}")),
    }
}

/// The host's own words: to everyone, or to one member.
pub(super) fn say(
    members: &mut BTreeMap<u64, Member>,
    to: Option<u64>,
    text: &str,
    host: &mut Host<'_>,
    ui: &Ui,
) {
    if !members.values().any(|m| m.ready) {
        ui.warn("nobody is in the room; nothing was sent");
        return;
    }
    if host.relay_only {
        ui.warn("nothing sent: this host takes no part in the room (--relay-only)");
        return;
    }
    // The copies as each member will count them (its next id), taken before the offers: one
    // that cannot take its copy is disconnected, and so counts as having missed it.
    let copy_of = |m: &Member| m.outbox.ledger().sent() + 1;
    let acknowledges = |m: &Member| m.ready && m.outbox.ledger().peer_acks();
    let line = host.lines.next_line();
    let copies: BTreeMap<u64, u64> = match to {
        None => {
            ui.own_sent(host.name, text, line);
            let copies = members
                .iter()
                .filter(|(_, m)| acknowledges(m))
                .map(|(id, m)| (*id, copy_of(m)))
                .collect();
            broadcast(members, None, &Message::Text(text.to_owned().into()), ui);
            copies
        }
        Some(id) => {
            let Some(member) = members.get(&id) else {
                return;
            };
            ui.own_private_sent(&member.tag(), text, line);
            let copies = match acknowledges(member) {
                true => BTreeMap::from([(id, copy_of(member))]),
                false => BTreeMap::new(),
            };
            // Marked as such: the member sees it was for it alone.
            let msg = Message::Private(text.to_owned().into());
            if member.outbox.offer(msg) == Offer::Full {
                disconnect_slow(members, vec![id], ui);
            }
            copies
        }
    };
    // Delivered once every member that acknowledges has shown its copy.
    if host.lines.sent(line, copies) {
        ui.delivered(line..=line);
    }
}

/// Hex digits of a fingerprint prefix that names a member: the 12 of the label in brackets
/// that the screen shows (`Bob? [0f87acac33f8]`). Nobody can choose a key for a given 12 digits
/// cheaply (2^48 tries), and if two members in the room share them, neither is picked: the
/// host is shown both.
pub const MIN_PREFIX_DIGITS: usize = 12;

/// The member called `name`, as the screen shows members: its petname, its display name (when
/// that is unambiguous), its label (`Bob? [0f87acac33f8]`), the 12 digits in brackets, or a
/// longer fingerprint prefix (spaces and colons allowed). When a name fits several members,
/// or only a member that merely calls itself like a peer of ours, nobody is picked and the
/// error lists who matched, each with the label that names it alone.
pub(super) fn find(
    members: &BTreeMap<u64, Member>,
    name: &str,
) -> std::result::Result<u64, String> {
    let members: Vec<(u64, &Member)> = members
        .iter()
        .filter(|(_, m)| m.ready)
        .map(|(id, m)| (*id, m))
        .collect();
    let label_of = |m: &Member| {
        let short = fingerprint::short(&m.info.key);
        match m.info.label.contains(&short) {
            true => m.info.label.clone(),
            false => format!("{} [{short}]", m.info.label),
        }
    };
    let listed = |ids: &[u64]| {
        ids.iter()
            .filter_map(|id| members.iter().find(|(m, _)| m == id))
            .map(|(_, m)| label_of(m))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let shown = crate::sanitize::line(name).into_owned();
    let trimmed = name.trim();
    // Our own names first: a petname (ours, so nobody else can take it).
    let by_petname: Vec<u64> = members
        .iter()
        .filter(|(_, m)| m.info.entry.as_ref().is_some_and(|e| e.name == trimmed))
        .map(|(id, _)| *id)
        .collect();
    if let [id] = by_petname[..] {
        return Ok(id);
    }
    // The digits of a key: those in brackets of a label as shown, or a prefix typed.
    let digits: String = match (trimmed.rfind('['), trimmed.strip_suffix(']')) {
        (Some(at), Some(inner)) => inner[at + 1..].to_string(),
        _ => trimmed
            .chars()
            .filter(|c| !matches!(c, ' ' | ':'))
            .collect(),
    }
    .to_ascii_lowercase();
    if digits.len() >= MIN_PREFIX_DIGITS && digits.chars().all(|c| c.is_ascii_hexdigit()) {
        let matched: Vec<u64> = members
            .iter()
            .filter(|(_, m)| m.info.key.to_hex().starts_with(&digits))
            .map(|(id, _)| *id)
            .collect();
        return match matched[..] {
            [id] => Ok(id),
            [] => Err(format!(
                "nobody in the room has a key starting {digits} (/who lists them)"
            )),
            _ => Err(format!(
                "{digits} fits several members: {}; give more digits",
                listed(&matched)
            )),
        };
    }
    // A display name: only a claim, so it counts only when it names one member and is not one
    // of our petnames for someone else (the screen marks such names with '?').
    let wanted = trimmed.trim_end_matches('?').to_lowercase();
    let claimed: Vec<u64> = members
        .iter()
        .filter(|(_, m)| !m.name.is_empty() && m.name.to_lowercase() == wanted)
        .map(|(id, _)| *id)
        .collect();
    let marked = |id: &u64| {
        members
            .iter()
            .any(|(m, member)| m == id && member.info.label.contains('?'))
    };
    match claimed[..] {
        [id] if !marked(&id) => Ok(id),
        [] => Err(format!(
            "nobody called {shown:?} is in the room (/who lists them; the 12 digits in brackets \
             name a member too)"
        )),
        [id] => Err(format!(
            "{shown:?} is your name for another key, not in the room; {} only calls itself so: \
             to reach it, use the digits in brackets",
            listed(&[id])
        )),
        _ => Err(format!(
            "several members call themselves {shown:?}: {}; use the digits in brackets",
            listed(&claimed)
        )),
    }
}

/// `name`, or the only member when no name is given.
pub(super) fn pick(
    members: &BTreeMap<u64, Member>,
    name: Option<&str>,
) -> std::result::Result<u64, String> {
    match name {
        Some(name) => find(members, name),
        None => {
            let mut ready = members.iter().filter(|(_, m)| m.ready).map(|(id, _)| *id);
            match (ready.next(), ready.next()) {
                (Some(id), None) => Ok(id),
                (Some(_), Some(_)) => {
                    Err("several members are here: name one (/who lists them)".into())
                }
                (None, _) => Err("nobody is in the room".into()),
            }
        }
    }
}
