//! What the user types during a chat: a line to send (queued until the writer takes it), a
//! command answered at once, or the end of input.

use super::Step;
use crate::fingerprint;
use crate::message::{MAX_BODY, Message};
use crate::receipts::Ledger;
use crate::sanitize;
use crate::session::command::{self, Command};
use crate::session::input::{Input, InputEvent};
use crate::session::names;
use crate::session::verify::PeerInfo;
use crate::ui::Ui;
use std::collections::VecDeque;
use tokio::sync::mpsc;

/// Where what the user types goes: lines to send, when the queue takes them; commands at once.
pub(super) struct Outgoing<'a> {
    pub(super) pending: &'a mut VecDeque<String>,
    pub(super) queue: &'a mpsc::Sender<Message<'static>>,
    pub(super) ledger: &'a mut Ledger,
    /// A resumed connection before what the peer missed has gone again: no new counted
    /// message may overtake it (PROTOCOL.md §4.11).
    pub(super) hold_counted: bool,
    /// Files: `/send`, `/accept` and the rest.
    pub(super) desk: &'a mut super::files::Desk,
    /// The opening is over (we know whether the peer takes files).
    pub(super) open: bool,
    /// The room: end-to-end sessions with its members, and their names.
    pub(super) room: &'a mut crate::session::room_view::RoomView,
}

/// Handles one input event: a line to send, a command, or the end of input.
pub(super) fn on_input(
    event: InputEvent,
    peer: &PeerInfo,
    input: &mut Input,
    ui: &Ui,
    out: &mut Outgoing<'_>,
    is_dialer: bool,
) -> Step {
    let Outgoing {
        pending,
        queue,
        ledger,
        hold_counted,
        desk,
        open,
        room,
    } = out;
    let line = match event {
        InputEvent::Line(line) => line,
        InputEvent::TooLong => {
            ui.warn(format_args!(
                "line not sent: longer than {MAX_BODY} bytes, the most one message can carry"
            ));
            return Step::Continue;
        }
        InputEvent::NotUtf8 => {
            ui.warn("line not sent: it is not valid UTF-8 text");
            return Step::Continue;
        }
        InputEvent::Eof => return Step::Leave("end of input"),
        InputEvent::Interrupted => return Step::Leave("interrupted"),
        InputEvent::Failed(e) => {
            ui.error(format_args!("reading input failed: {e}"));
            return Step::Leave("input failed");
        }
    };
    match command::parse(&line) {
        Command::Say(text) => say(text.to_owned(), pending, room, ui),
        Command::Me(action) => say(format!("/me {action}"), pending, room, ui),
        Command::Verify(Some(name)) if room.e2e.active() => {
            room.e2e.verify(&room.names, &room.us, name, ui)
        }
        Command::Msg(name, text) if room.e2e.active() => {
            match room
                .e2e
                .find(&room.names, name)
                .and_then(|to| room.e2e.whisper(&to, text).map(|()| to))
            {
                Ok(to) => ui.own_private(&room.names.label(&to), text),
                Err(why) => ui.warn(format_args!("/msg not sent: {why}")),
            }
        }
        Command::Quit => return Step::Leave("you quit"),
        Command::Verify(_) => {
            ui.status(format_args!(
                "safety number with {}: read it aloud with them, the same digits mean the same \
                 two keys",
                peer.label
            ));
            ui.grid("safety number:", &peer.safety().lines());
            ui.grid("fingerprint:  ", &fingerprint::grid(&peer.key));
        }
        Command::Whois(_) => {
            for line in peer.describe() {
                ui.status(line);
            }
        }
        // A member asks its host who is there (a listener in a one-to-one chat knows).
        Command::Who if is_dialer => {
            if queue.try_send(Message::Who).is_err() {
                ui.warn("the connection is busy: /who again in a moment");
            }
        }
        Command::Nick(name) => match names::check_name(name) {
            Err(why) if !name.is_empty() => {
                ui.warn(format_args!("/nick {}: {why}", sanitize::line(name)))
            }
            Ok(()) | Err(_) => {
                if *hold_counted {
                    ui.warn("still reconnecting: /nick again in a moment");
                    return Step::Continue;
                }
                let nick = Message::Nick(name.to_owned().into());
                if queue.try_send(nick.clone()).is_err() {
                    ui.warn("the connection is busy: /nick again in a moment");
                    return Step::Continue;
                }
                // A NICK is counted: it takes the next id.
                ledger.record(&nick);
                if !is_dialer {
                    ui.status(format_args!("the peer now sees you as {name:?}"));
                }
            }
        },
        Command::Who | Command::Msg(..) | Command::Name(..) => {
            ui.warn("/msg and /name are for the host of a room; /who for its members and its host");
        }
        Command::Clear => input.clear_screen(),
        Command::File(file) => desk.command(&file, ui, *open, &peer.label, room),
        Command::Help => {
            ui.listing(command::HELP);
        }
        Command::Unknown(word) => ui.warn(format_args!(
            "unknown command /{word} (nothing sent; /help lists commands, //{word} sends it as text)"
        )),
    }
    Step::Continue
}

/// A line for the room. With end-to-end sessions it is sealed for every member; the host
/// gets it too (it reads the room) unless it takes no part.
fn say(
    text: String,
    pending: &mut VecDeque<String>,
    room: &mut crate::session::room_view::RoomView,
    ui: &Ui,
) {
    if seal_line(&text, room, ui) == Some(true) {
        pending.push_back(text);
    }
}

/// Seals a line for the room's members, when we talk to them end to end. Whether the host
/// should get it too as TEXT: `Some(true)` (it reads the room, or nothing is end to end
/// here), `Some(false)` (a relay-only host: shown here as sent), `None` (not sent at all).
pub(super) fn seal_line(
    text: &str,
    room: &mut crate::session::room_view::RoomView,
    ui: &Ui,
) -> Option<bool> {
    if !room.e2e.active() {
        return Some(true);
    }
    match room.e2e.say(text) {
        Err(why) => {
            ui.warn(format_args!("line not sent: {why}"));
            return None;
        }
        Ok(missed) if !missed.is_empty() => ui.warn(format_args!(
            "not delivered to {}: no end-to-end session",
            missed
                .iter()
                .map(|k| room.names.label(k))
                .collect::<Vec<_>>()
                .join(", ")
        )),
        Ok(_) => {}
    }
    if room.e2e.relay_only() {
        ui.own(room.names.announced(&room.us).unwrap_or(""), text);
        return Some(false);
    }
    Some(true)
}
