//! A member joins: it said HELLO, so it accepted our key; it gets WELCOME and the roster, and
//! the others are told (each member that talks end to end sets up its session with it).

use super::*;

impl<R, W> Room<'_, R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// A member's HELLO: it accepted our key, and is in the room from now on.
    pub(super) fn joined(&mut self, id: u64, name: String) {
        let (options, ui) = (self.options, self.ui);
        // One connection per key: a key that joins again (a reconnect) replaces its older
        // connection, which would otherwise linger until it times out.
        let key = self.members.get(&id).map(|m| m.info.key);
        let older: Vec<u64> = self
            .members
            .iter()
            .filter(|(other, m)| **other != id && m.ready && Some(m.info.key) == key)
            .map(|(other, _)| *other)
            .collect();
        for other in older {
            if let Some(mut old) = self.members.remove(&other) {
                ui.status(format_args!(
                    "{} reconnected from {}",
                    old.tag(),
                    old.address
                ));
                old.files.peer_left();
                self.desks.failed += old.files.failures();
                part(old);
            }
        }
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        member.ready = true;
        let _ = member
            .outbox
            .offer(Message::Welcome(options.welcome.clone().into()));
        // Its name, if it is one; otherwise it is told why (after WELCOME, which comes first)
        // and shown by its key.
        match names::check_name(&name) {
            Ok(()) => member.name = name,
            Err(_) if name.is_empty() => {}
            Err(why) => {
                let refused = Entry {
                    key: *member.info.key.as_bytes(),
                    name: name.into(),
                };
                let _ = member
                    .outbox
                    .offer(notice(NoticeEvent::Refused(refused), why.into()));
            }
        }
        relabel(&mut self.members, &mut self.names);
        // Who is already here, so that the newcomer knows who reads along.
        let roster = roster(&self.members, id, &self.names);
        if let Some(member) = self.members.get(&id) {
            let _ = member.outbox.offer(roster);
        }
        self.had_members = true;
        let loud = self.churn.announce(true);
        let here = self.ready();
        let Some(member) = self.members.get(&id) else {
            return;
        };
        let (tag, invite, info) = (member.tag(), member.info.invite.clone(), &member.info);
        // Logs and scripts get the numbers on the record; at a terminal the join line below
        // says who came, and /verify NAME shows the numbers.
        if loud && ui.mode() != Mode::Interactive {
            ui.status(format_args!(
                "secure session with {}; peer fingerprint: {}",
                member.address,
                fingerprint::grouped(&info.key)
            ));
            ui.status(format_args!("peer: {}", info.trust_line()));
            ui.status(format_args!("safety number: {}", info.safety()));
        }
        ui.connected(
            &member.speaker(),
            &info.safety().grouped(),
            Some(&member.address),
        );
        let joined = notice(
            NoticeEvent::Join(member.entry()),
            format!("{} joined", self.names.public_label(&member.info.key)),
        );
        // Members that talk end to end set up their sessions by it: told even under churn.
        let to = |other, m: &Member| other != id && (loud || m.pairs);
        broadcast_to(&mut self.members, to, &quiet(joined, loud), ui);
        if loud {
            match &invite {
                Some(id) => ui.status(format_args!(
                    "{tag} joined (verified by invite {id}; {here} in the room)"
                )),
                None => ui.status(format_args!("{tag} joined ({here} in the room)")),
            }
        }
    }
}

/// A join or leave NOTICE as churn allows: worded when `loud`, else without text (a member
/// applies it without a line; PROTOCOL.md §4.14).
pub(super) fn quiet(notice: Message<'static>, loud: bool) -> Message<'static> {
    match (notice, loud) {
        (Message::Notice(n), false) => Message::Notice(crate::message::Notice {
            event: n.event,
            text: "".into(),
        }),
        (msg, _) => msg,
    }
}
