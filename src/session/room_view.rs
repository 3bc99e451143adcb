//! A member's view of the room it dialled: the names of the keys in it (our petnames, and the
//! display names announced in HELLO, NICK and the host's notices), and the host's notices
//! worded with *our* labels, not the host's.

use super::names::Names;
use crate::keys::PublicKey;
use crate::message::notice::{self, Event as NoticeEvent, Notice};
use crate::sanitize;
use crate::ui::{RoomEvent, Speaker, Ui};

/// What a dialer needs to show a room: whether we dialled, and the names of the keys in it.
pub(super) struct RoomView {
    pub is_dialer: bool,
    /// Our petnames, and the display names announced (by the peer, and by the host's notices).
    pub names: Names,
    /// Our key.
    pub us: PublicKey,
    /// The peer's key (in a room, the host's).
    pub host: PublicKey,
    /// Our end-to-end sessions with the other members, when the host passes them on.
    pub e2e: super::room_e2e::E2e,
}

impl RoomView {
    /// How to show `key` now.
    pub fn speaker<'a>(&'a self, key: &'a PublicKey, label: &'a str) -> Speaker<'a> {
        Speaker {
            label,
            key,
            petname: self.names.petname(key),
            name: self.names.announced(key),
        }
    }

    /// A display name the peer announced: in its HELLO (taken quietly) or NICK (`loud`: a
    /// change worth a line).
    pub fn peer_named(&mut self, name: &str, loud: bool, ui: &Ui) {
        let old = self.names.label(&self.host);
        if let Err(why) = self.names.announce(self.host, name) {
            ui.warn(format_args!(
                "the peer's display name {:?} is not shown: {why}",
                sanitize::line(name)
            ));
            return;
        }
        let new = self.names.label(&self.host);
        if loud && old != new {
            ui.status(format_args!("{old} is now shown as {new}"));
        }
    }

    /// A member announcing a name we gave another key: said plainly, as a changed key is
    /// when dialling (its label is marked `?` too, and `/msg NAME` does not reach it).
    fn alarm_if_impersonating(&self, key: &PublicKey, name: &str, ui: &Ui) {
        if let Some(known) = self.names.impersonated(key, name) {
            ui.warn(format_args!(
                "{} calls itself {:?}, your name for another key ({}): it is not the one you \
                 know by that name",
                self.names.label(key),
                sanitize::line(name),
                crate::fingerprint::short(&known)
            ));
        }
    }

    /// A room event from the host: names are updated, and it is worded with *our* names.
    pub fn on_notice(&mut self, notice: Notice<'_>, ui: &Ui) {
        let host_label = self.names.label(&self.host);
        // A join or leave without text is the host keeping quiet under churn: applied (our
        // end-to-end sessions follow it), not shown.
        let quiet = notice.text.is_empty();
        match notice.event {
            NoticeEvent::Join(entry) => {
                let key = PublicKey::from_bytes(entry.key);
                let _ = self.names.announce(key, &entry.name);
                self.e2e.present(key);
                self.alarm_if_impersonating(&key, &entry.name, ui);
                let label = self.names.label(&key);
                let who = self.speaker(&key, &label);
                if !quiet {
                    ui.room(
                        Some(&self.speaker(&self.host, &host_label)),
                        RoomEvent::Joined(who),
                        &format!("{label} joined"),
                    );
                }
            }
            NoticeEvent::Leave(entry, reason) => {
                let key = PublicKey::from_bytes(entry.key);
                let label = self.names.label(&key);
                let code = reason_code(reason);
                let line = match reason {
                    notice::Reason::Quit => format!("{label} left"),
                    notice::Reason::Timeout => {
                        format!("{label} left (timeout: it went silent, or stopped reading)")
                    }
                    _ => format!("{label} left ({code})"),
                };
                if !quiet {
                    ui.room(
                        Some(&self.speaker(&self.host, &host_label)),
                        RoomEvent::Left(self.speaker(&key, &label), code),
                        &line,
                    );
                }
                let undelivered = self.e2e.left(&key);
                if undelivered > 0 {
                    ui.warn(format_args!(
                        "{undelivered} of your messages never reached {label}: it left before \
                         its end-to-end session was up"
                    ));
                }
                self.names.forget(&key);
            }
            NoticeEvent::Rename(entry) => {
                let key = PublicKey::from_bytes(entry.key);
                if key == self.us {
                    // Worded from what we accept as a name, never from the notice's bytes.
                    let line = match self.names.announce(key, &entry.name) {
                        Ok(()) if entry.name.is_empty() => "you have no display name now".into(),
                        Ok(()) => format!("others now see you as {}", entry.name),
                        Err(_) => "the host renamed you to a name that is not one".into(),
                    };
                    let label = self.names.label(&key);
                    ui.room(
                        Some(&self.speaker(&self.host, &host_label)),
                        RoomEvent::Renamed(self.speaker(&key, &label)),
                        &line,
                    );
                    return;
                }
                let old = self.names.label(&key);
                let _ = self.names.announce(key, &entry.name);
                self.alarm_if_impersonating(&key, &entry.name, ui);
                let new = self.names.label(&key);
                let line = if old == new {
                    // Our petname wins: say what it calls itself now.
                    format!("{old} now calls itself {}", sanitize::line(&entry.name))
                } else {
                    format!("{old} is now {new}")
                };
                ui.room(
                    Some(&self.speaker(&self.host, &host_label)),
                    RoomEvent::Renamed(self.speaker(&key, &new)),
                    &line,
                );
            }
            NoticeEvent::Refused(entry) => {
                let line = format!(
                    "the host refused the name {:?}: {}",
                    sanitize::line(&entry.name),
                    sanitize::line(&notice.text)
                );
                ui.room(
                    Some(&self.speaker(&self.host, &host_label)),
                    RoomEvent::Refused(&entry.name, &notice.text),
                    &line,
                );
            }
            NoticeEvent::Roster(entries) => {
                self.e2e.roster();
                let keys: Vec<PublicKey> = entries
                    .iter()
                    .map(|e| PublicKey::from_bytes(e.key))
                    .collect();
                self.names
                    .retain(&[&keys[..], &[self.host, self.us]].concat());
                for (key, entry) in keys.iter().zip(&entries) {
                    let _ = self.names.announce(*key, &entry.name);
                    self.e2e.present(*key);
                    self.alarm_if_impersonating(key, &entry.name, ui);
                }
                let labels: Vec<String> = keys.iter().map(|k| self.names.label(k)).collect();
                let members: Vec<Speaker<'_>> = keys
                    .iter()
                    .zip(&labels)
                    .map(|(k, l)| self.speaker(k, l))
                    .collect();
                let line = match labels.len() {
                    // A one-to-one chat is worded as one.
                    0 => format!("a one-to-one chat with {host_label}: nobody else is here"),
                    n => format!(
                        "in the room: you, the host and {n} more: {}",
                        labels.join(", ")
                    ),
                };
                ui.room(
                    Some(&self.speaker(&self.host, &host_label)),
                    RoomEvent::Roster(members),
                    &line,
                );
            }
            NoticeEvent::Text | NoticeEvent::Unknown(..) => {
                ui.notice(&self.speaker(&self.host, &host_label), &notice.text)
            }
        }
    }
}

/// The `--json` code of a LEAVE reason (README lists them).
fn reason_code(reason: notice::Reason) -> &'static str {
    match reason {
        notice::Reason::Quit => "quit",
        notice::Reason::Cut => "cut",
        notice::Reason::Refused => "refused",
        notice::Reason::Timeout => "timeout",
        notice::Reason::Error => "error",
        notice::Reason::Other(_) => "other",
    }
}
