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
        let Some(from) = self.members.get(&id) else {
            return;
        };
        let author = *from.info.key.as_bytes();
        let to = self
            .members
            .iter()
            .find(|(other, m)| {
                **other != id && m.ready && m.pairs && m.info.key.as_bytes() == &peer.key
            })
            .map(|(other, _)| *other);
        let (to, msg) = match to {
            Some(to) => (to, Message::Peer(peer.readdressed(author))),
            None => {
                let gone = PeerMessage {
                    key: peer.key,
                    op: PeerOp::Gone,
                };
                (id, Message::Peer(gone))
            }
        };
        let full = self
            .members
            .get(&to)
            .is_some_and(|m| m.outbox.offer(msg) == Offer::Full);
        if full {
            disconnect_slow(&mut self.members, vec![to], self.ui);
        }
    }
}
