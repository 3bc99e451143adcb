//! A member whose connection dropped keeps its place for the grace period (PROTOCOL.md §4.11):
//! what the room says meanwhile is kept for it, and a new connection that names its session
//! (RESUME, with the token only its dialer and we hold, over a new handshake with the same
//! key) takes the place back, gets RESUMED instead of WELCOME and everything it missed.

use super::*;
use crate::session::GONE;

impl<R, W> Room<'_, R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// Whether member `id`, which ended `how`, keeps its place: a member in the room (or
    /// resuming into it) that can resume, whose connection was lost rather than ended.
    pub(super) fn keeps_place(&self, id: u64, how: &Result<String>) -> bool {
        let Some(member) = self.members.get(&id) else {
            return false;
        };
        let cut = match how {
            Err(e) => crate::session::chat_cut(e),
            Ok(_) => false,
        };
        cut && member.resumable
            && member.outbox.ledger().keeping()
            && (member.ready || member.resuming)
            && self.options.resume_grace.is_some()
    }

    /// Member `id`'s connection dropped: its place is kept, its messages held.
    pub(super) fn went_away(&mut self, id: u64, how: Result<String>) {
        let (ui, grace) = (self.ui, self.options.resume_grace.unwrap_or_default());
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        member.outbox.hold(true);
        member.reader.abort();
        member.writer.abort();
        // Files moving stop; ours are offered again when it is back.
        member.files.cut();
        member.resuming = false;
        member.ready = true;
        member.away_until = Some(Instant::now() + grace);
        let why = match &how {
            Err(e) => e.to_string(),
            Ok(_) => String::new(),
        };
        member.away_cause = how.err();
        ui.warn(format_args!(
            "{}'s connection dropped ({why}); keeping its place for {} s",
            member.tag(),
            grace.as_secs()
        ));
    }

    /// When the next member away runs out of time.
    pub(super) fn next_return(&self) -> Option<Instant> {
        self.members.values().filter_map(|m| m.away_until).min()
    }

    /// Members away past their grace, or that missed more than we keep, leave for good.
    pub(super) fn expire_away(&mut self) -> Option<Result<()>> {
        let now = Instant::now();
        let gone: Vec<u64> = self
            .members
            .iter()
            .filter(|(_, m)| {
                m.away_until
                    .is_some_and(|until| until <= now || !m.outbox.ledger().keeping())
            })
            .map(|(id, _)| *id)
            .collect();
        for id in gone {
            let cause = self.members.get_mut(&id).and_then(|m| m.away_cause.take());
            let how = Err(cause.unwrap_or(Error::ConnectionCut));
            if let Some(ended) = self.left(id, how) {
                return Some(ended);
            }
        }
        None
    }

    /// Connection `id` names a session to resume (its first message). The session must be
    /// one we keep for the same key, named by the same token; then the new connection takes
    /// its place, and what it missed waits until its HELLO.
    pub(super) fn resume(&mut self, id: u64, token: &[u8; crate::message::TOKEN_LEN], shown: u64) {
        let ui = self.ui;
        let Some(key) = self.members.get(&id).map(|m| m.info.key) else {
            return;
        };
        let old = self
            .members
            .iter()
            .find(|(other, m)| {
                **other != id
                    && m.resumable
                    && m.outbox.ledger().keeping()
                    && m.info.key == key
                    && crate::resume::same_token(&m.token, token)
            })
            .map(|(other, _)| *other);
        let Some(old) = old.and_then(|old| self.members.remove(&old).map(|m| (old, m))) else {
            if let Some(new) = self.members.remove(&id) {
                ui.warn(format_args!(
                    "refused a resume from {} ({}): {GONE}",
                    new.tag(),
                    new.address
                ));
                let _ = new.outbox.offer(Message::Quit(GONE.into()));
                part_gracefully(new, &mut self.departing);
            }
            return;
        };
        let (old_id, mut old) = old;
        let Some(new) = self.members.get_mut(&id) else {
            return;
        };
        // Its transfers too: what was moving goes on over the new connection (offered again
        // once it says FILES, resumed by hash).
        old.files.cut();
        std::mem::swap(&mut new.files, &mut old.files);
        new.files.connected(new.bulk.clone());
        // The session's state moves to the new connection; the old one (if it was still
        // there: the listener may notice a cut last) is closed.
        new.outbox.hold(true);
        {
            let mut ledger = new.outbox.ledger();
            *ledger = std::mem::take(&mut *old.outbox.ledger());
        }
        new.name = old.name.clone();
        new.token = old.token.clone();
        // The same session takes PEER (its PAIRS on this connection may still be on its way).
        new.pairs |= old.pairs;
        new.resumable = true;
        new.resuming = true;
        // In the room from now on (held until its HELLO): what is said meanwhile is kept.
        new.ready = true;
        part(old);
        let acked = new.outbox.ledger().acked(shown);
        match acked {
            Ok(_) => {
                self.lines.renamed(old_id, id);
                for line in self.lines.acked(id, shown) {
                    ui.delivered(line..=line);
                }
                ui.status(format_args!(
                    "{} is back from {}; resuming",
                    new.tag(),
                    new.address
                ));
            }
            Err(e) => {
                let how = Err(crate::error::ProtocolError::Receipt(e).into());
                let _ = self.left(id, how);
            }
        }
    }

    /// A resuming member's HELLO: RESUMED in WELCOME's place, then what it missed, in order.
    pub(super) fn resumed(&mut self, id: u64) {
        let Some(member) = self.members.get_mut(&id) else {
            return;
        };
        member.resuming = false;
        member.ready = true;
        member.away_until = None;
        member.away_cause = None;
        member.outbox.hold(false);
        let (shown, missed): (u64, Vec<Message<'static>>) = {
            let ledger = member.outbox.ledger();
            (ledger.shown(), ledger.unacknowledged().cloned().collect())
        };
        let mut offers = vec![member.outbox.offer(Message::Resumed(shown))];
        offers.extend(missed.iter().map(|m| member.outbox.offer_again(m.clone())));
        self.ui.status(format_args!(
            "{} reconnected ({} sent again)",
            member.tag(),
            match missed.len() {
                1 => "1 message".to_string(),
                n => format!("{n} messages"),
            }
        ));
        if offers.contains(&Offer::Full) {
            disconnect_slow(&mut self.members, vec![id], self.ui);
        }
    }
}
