//! Receipts in the room (PROTOCOL.md §4.10): the host acknowledges what members said, keeps
//! account of its own lines, and waits a moment for the last of them when it leaves.

use super::*;

impl<R, W> Room<'_, R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    /// A member's counted message (TEXT, NICK) was shown: acknowledged within [`ACK_DELAY`].
    pub(super) fn shown(&mut self, id: u64) {
        if let Some(member) = self.members.get_mut(&id) {
            let urgent = {
                let mut ledger = member.outbox.ledger();
                ledger.shown_one();
                ledger.ack_urgent()
            };
            // (Once due, it stays due: a full outbox never makes this a busy loop.)
            let delay = if urgent { Duration::ZERO } else { ACK_DELAY };
            self.ack_at.get_or_insert_with(|| Instant::now() + delay);
        }
    }

    /// Each member that acknowledges gets one ACK for what it said since the last.
    pub(super) fn acknowledge(&mut self) {
        self.ack_at = None;
        for member in self.members.values_mut() {
            let ack = member.outbox.ledger().take_ack_if_offered();
            if let Some(count) = ack {
                // (Not counted, and tiny: a full outbox means it is leaving anyway.)
                let _ = member.outbox.offer(Message::Ack(count));
            }
        }
    }

    /// Members left: the host's lines they never showed are not delivered to everyone.
    pub(super) fn missed_by_leavers(&mut self) {
        let members = &self.members;
        let missed = self.lines.keep_members(|id| members.contains_key(&id));
        if missed > 0 {
            self.ui.warn(format_args!(
                "{missed} of your lines went to someone who left before showing {}",
                if missed == 1 { "it" } else { "them" }
            ));
        }
    }

    /// The host leaves: until its lines are shown (or the write deadline passes, or a
    /// signal), members' events still count, but nobody new comes in and the host types
    /// nothing more.
    pub(super) async fn settle(
        &mut self,
        events: &mut mpsc::Receiver<Event>,
        user: &mut User<'_>,
        input_open: bool,
    ) {
        let ui = self.ui;
        ui.status(format_args!(
            "waiting up to {} s for members to confirm your last lines",
            member::WRITE_DEADLINE.as_secs()
        ));
        let by = Instant::now() + member::WRITE_DEADLINE;
        while self.lines.undelivered() > 0 && !self.members.is_empty() {
            let present = self.members.len();
            tokio::select! {
                Some(event) = events.recv() => {
                    if self.on_event(event).is_some() {
                        break;
                    }
                }
                () = tokio::time::sleep_until(by) => break,
                _ = user.interrupts.recv() => break,
                // Ctrl-C (or Ctrl-D) at the editor leaves at once; anything typed waits.
                event = user.input.next(), if input_open => {
                    if matches!(event, InputEvent::Interrupted | InputEvent::Eof | InputEvent::Failed(_)) {
                        break;
                    }
                    ui.warn("leaving: waiting for members to confirm your last lines (Ctrl-C leaves now)");
                }
            }
            if self.members.len() < present {
                relabel(&mut self.members, &mut self.names);
                self.missed_by_leavers();
            }
        }
    }
}
