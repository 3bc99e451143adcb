//! Members' end-to-end sessions with each other (PROTOCOL.md §4.14): the host passes each
//! PEER on to the member its key names, re-addressed with the author's key (which the host
//! knows from the author's own handshake), and reads none of it. A PEER for nobody it can
//! give it to goes back as GONE.

use super::*;
use crate::message::PeerMessage;
use crate::message::peer::PeerOp;

/// The QUIT reason of a relay-only host to a member that cannot talk end to end.
pub(super) const NEEDS_PAIRS: &str = "refused: this room is end to end only (its host takes no \
     part and reads nothing); your schat is too old to talk in it";

impl<R, W> Room<'_, R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// A member's PAIRS: it takes PEER.
    pub(super) fn member_pairs(&mut self, id: u64) {
        if let Some(member) = self.members.get_mut(&id) {
            member.pairs = true;
        }
    }

    /// A relay-only host turns away a member (at its HELLO) that did not say PAIRS first:
    /// nobody could read what it says, nor it what others say. `true` when it was refused.
    pub(super) fn refuses_without_pairs(&mut self, id: u64) -> bool {
        let Some(member) = self.members.get(&id) else {
            return false;
        };
        if !self.options.relay_only || member.pairs {
            return false;
        }
        let _ = member.outbox.offer(Message::Quit(NEEDS_PAIRS.into()));
        self.ui.warn(format_args!(
            "{} from {} turned away: its schat cannot talk end to end",
            member.tag(),
            member.address
        ));
        if let Some(member) = self.members.remove(&id) {
            part_gracefully(member, &mut self.departing);
        }
        true
    }

    /// A member's PEER for another: passed on, or answered GONE.
    pub(super) fn route(&mut self, id: u64, peer: PeerMessage<'static>) {
        let (to, msg) = match self.addressee(id, &peer) {
            Some((to, author)) => (to, Message::Peer(peer.readdressed(author))),
            None => (id, gone(&peer)),
        };
        let full = self
            .members
            .get(&to)
            .is_some_and(|m| m.outbox.offer(msg) == Offer::Full);
        if full {
            disconnect_slow(&mut self.members, vec![to], self.ui);
        }
    }

    /// A member's file bytes for another (BULK): its reader is told where they go (that
    /// member's file queue, behind everything else it is sent), or the author hears GONE.
    pub(super) fn route_bulk(
        &mut self,
        id: u64,
        peer: PeerMessage<'static>,
        route: tokio::sync::oneshot::Sender<Option<member::BulkRoute>>,
    ) {
        match self.addressee(id, &peer) {
            Some((to, author)) => {
                let bulk = self.members.get(&to).map(|m| m.bulk.clone());
                let msg = Message::Peer(peer.readdressed(author));
                let _ = route.send(bulk.map(|bulk| (bulk, msg)));
            }
            None => {
                let _ = route.send(None);
                self.route(id, peer);
            }
        }
    }

    /// Who a PEER from member `id` is for (a member in the room that takes PEER), and its
    /// author's key (proven by the author's own handshake with us).
    fn addressee(&self, id: u64, peer: &PeerMessage<'_>) -> Option<(u64, [u8; 32])> {
        let author = *self.members.get(&id)?.info.key.as_bytes();
        // (Not one away or resuming: its outbox is held, and a BULK, which goes beside the
        // outbox, must not reach it before RESUMED.)
        let to = self.members.iter().find(|(other, m)| {
            **other != id
                && m.ready
                && m.pairs
                && !(peer.is_bulk() && (m.resuming || m.away_until.is_some()))
                && m.info.key.as_bytes() == &peer.key
        })?;
        Some((*to.0, author))
    }
}

/// GONE for the key `peer` was for: nobody here takes it.
fn gone(peer: &PeerMessage<'_>) -> Message<'static> {
    Message::Peer(PeerMessage {
        key: peer.key,
        op: PeerOp::Gone,
    })
}
