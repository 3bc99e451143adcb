//! A dialer's chat whose connection dropped: dialling again, with backoff, until the listener
//! takes the session back or the grace period ends (PROTOCOL.md §4.11). Meanwhile the user may
//! keep typing: lines are kept (and shown as pending) and go out once resumed.

use crate::error::Error;
use crate::handshake::Established;
use crate::keys::PublicKey;
use crate::message::Message;
use crate::receipts::Ledger;
use crate::resume::Backoff;
use crate::session::command::{self, Command};
use crate::session::input::{Input, InputEvent};
use crate::session::{Redial, User};
use crate::ui::Ui;
use std::time::Duration;
use tokio::time::Instant;

/// How reconnecting ended without a new connection.
pub(super) enum GaveUp {
    /// The grace period passed, a signal came, or the user left: with the reason.
    Stopped(String),
    /// The listener no longer holds the session, or refused us: final.
    Refused(Error),
}

/// What the person typed while we were away, and what it asked for.
pub(super) struct Away<'a> {
    pub ledger: &'a mut Ledger,
    pub our_name: &'a str,
    /// The input ended (a script's stdin): leave once resumed and confirmed.
    pub input_ended: &'a mut bool,
    /// The room: lines typed meanwhile are sealed for its members.
    pub room: &'a mut crate::session::room_view::RoomView,
}

/// Dials again until a new connection proves the session's key, within `grace` of the cut.
pub(super) async fn reconnect<R, W>(
    redial: &mut dyn Redial<R, W>,
    key: &PublicKey,
    grace: Duration,
    away: &mut Away<'_>,
    ui: &Ui,
    user: &mut User<'_>,
) -> std::result::Result<Established<R, W>, GaveUp> {
    let give_up = Instant::now() + grace;
    let mut backoff = Backoff::default();
    let mut attempts = 0u32;
    loop {
        let wait = backoff.next(rand::random::<f64>());
        let at = Instant::now() + wait;
        if at >= give_up {
            return Err(GaveUp::Stopped(format!(
                "could not reconnect within {} s",
                grace.as_secs()
            )));
        }
        // The pause, then one attempt; the user is heard throughout.
        let mut attempt = None;
        while attempt.is_none() {
            tokio::select! {
                () = tokio::time::sleep_until(at), if attempt.is_none() => {
                    attempt = Some(());
                }
                event = user.input.next(), if !*away.input_ended && away.ledger.has_room() => {
                    if let Some(why) = typed(event, away, user.input, ui) {
                        return Err(GaveUp::Stopped(why));
                    }
                }
                name = user.interrupts.recv() => return Err(GaveUp::Stopped(name.to_string())),
            }
        }
        attempts += 1;
        let dialling = tokio::time::timeout_at(give_up, redial.redial(key));
        tokio::pin!(dialling);
        let outcome = loop {
            tokio::select! {
                outcome = &mut dialling => break outcome,
                event = user.input.next(), if !*away.input_ended && away.ledger.has_room() => {
                    if let Some(why) = typed(event, away, user.input, ui) {
                        return Err(GaveUp::Stopped(why));
                    }
                }
                name = user.interrupts.recv() => return Err(GaveUp::Stopped(name.to_string())),
            }
        };
        match outcome {
            Ok(Ok(established)) => return Ok(established),
            // Another key answered, or the listener refused us: no point in trying again.
            Ok(Err(e @ (Error::PeerRefused(_) | Error::RefusedByPeer(_)))) => {
                return Err(GaveUp::Refused(e));
            }
            Ok(Err(e)) => {
                // Say it once in a while, not at every attempt.
                if attempts.is_power_of_two() {
                    ui.status(format_args!("still reconnecting ({e})"));
                }
            }
            Err(_) => {
                return Err(GaveUp::Stopped(format!(
                    "could not reconnect within {} s",
                    grace.as_secs()
                )));
            }
        }
    }
}

/// A line typed while away is kept (pending) to go out once resumed; leaving gives up.
/// `Some(reason)` to stop reconnecting.
fn typed(event: InputEvent, away: &mut Away<'_>, input: &mut Input, ui: &Ui) -> Option<String> {
    let text = match event {
        InputEvent::Line(line) => match command::parse(&line) {
            Command::Say(text) => text.to_owned(),
            Command::Me(action) => format!("/me {action}"),
            Command::Quit => return Some("you quit".into()),
            Command::Clear => {
                input.clear_screen();
                return None;
            }
            _ => {
                ui.warn("not connected: only lines (and /quit) while reconnecting");
                return None;
            }
        },
        InputEvent::Eof => {
            // A script's input ended: what it sent still goes, once resumed.
            *away.input_ended = true;
            return None;
        }
        InputEvent::Interrupted => return Some("interrupted".into()),
        InputEvent::Failed(e) => return Some(format!("reading input failed: {e}")),
        InputEvent::TooLong | InputEvent::NotUtf8 => {
            ui.warn("line not kept: too long, or not UTF-8");
            return None;
        }
    };
    // Sealed for the members now (it goes out once resumed, after what they missed).
    if super::typed::seal_line(&text, away.room, ui) != Some(true) {
        return None;
    }
    let msg = Message::Text(text.into());
    let id = away.ledger.record(&msg);
    if let Message::Text(text) = &msg {
        ui.own_sent(away.our_name, text, id);
    }
    None
}

/// Lines typed but not yet sent when the connection dropped are kept with the rest (numbered
/// now, shown as sent): they go out once resumed.
pub(super) fn keep_unsent(
    pending: &mut std::collections::VecDeque<String>,
    ledger: &mut crate::receipts::Ledger,
    our_name: &str,
    ui: &crate::ui::Ui,
) {
    for line in pending.drain(..) {
        let msg = crate::message::Message::Text(line.into());
        if let crate::message::Message::Text(line) = &msg {
            ui.own_sent(our_name, line, ledger.record(&msg));
        }
    }
}

/// The error of a chat that could not resume (`why`: the grace ran out, a signal, …).
pub(super) fn lost(
    why: &str,
    peer: &crate::session::verify::PeerInfo,
    ledger: &crate::receipts::Ledger,
) -> crate::error::Error {
    crate::error::Error::Undelivered(format!(
        "{why}: the connection to {} was lost{}",
        crate::sanitize::line(&peer.label),
        match ledger.unacked() {
            0 => String::new(),
            n => format!(", and {} never confirmed", super::lines(n as usize)),
        }
    ))
}
