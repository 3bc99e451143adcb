//! How file transfers are shown: status lines (names from the peer made safe first), a
//! progress row per transfer kept above the prompt at a terminal, and `file_*` JSON events.

use super::event::Event;
use super::{Mode, Speaker, Ui};
use crate::files::{self, Event as FileEvent, Progress, Way};
use crate::sanitize;
use std::time::{Duration, Instant};

fn direction(way: Way) -> &'static str {
    match way {
        Way::Out => "out",
        Way::In => "in",
    }
}

/// Bytes per second since `started`.
fn rate(bytes: u64, started: Instant) -> u64 {
    let secs = started.elapsed().as_secs_f64().max(0.001);
    (bytes as f64 / secs) as u64
}

/// `4 s`, `2 min 5 s`: how long something takes.
fn span(secs: u64) -> String {
    match secs {
        0..60 => format!("{secs} s"),
        _ => format!("{} min {} s", secs / 60, secs % 60),
    }
}

/// The row of one transfer: `#2 ↑ a.bin  43% of 1.0 GiB, 512.0 MiB/s, 1 s left`.
pub fn progress_row(p: &Progress<'_>) -> String {
    let moved = p.at - p.from;
    let r = rate(moved, p.started);
    let left = match r {
        0 => "…".to_owned(),
        r => span((p.size - p.at) / r.max(1)) + " left",
    };
    format!(
        "#{} {} {}  {}% of {}, {}/s, {left}",
        p.local,
        match p.way {
            Way::Out => "sending",
            Way::In => "receiving",
        },
        sanitize::line(p.name),
        files::transfers::percent(p.at, p.size),
        files::size(p.size),
        files::size(r),
    )
}

impl Ui {
    /// What happened to a transfer with `peer`.
    pub fn file_event(&self, peer: &Speaker<'_>, event: &FileEvent) {
        let who = sanitize::line(peer.label);
        match event {
            FileEvent::Offered {
                local,
                way,
                name,
                size,
                hash,
                auto,
            } => {
                if self.mode == Mode::Json {
                    let hash = hex::encode(hash);
                    let _ = self.json_event(Event::FileOffered {
                        transfer: *local,
                        direction: direction(*way),
                        peer: peer.peer(),
                        name,
                        size: *size,
                        hash: &hash,
                        accepted: *auto,
                    });
                }
                let (name, size) = (sanitize::line(name), files::size(*size));
                let short = &hex::encode(hash)[..16];
                match (way, auto) {
                    (Way::Out, _) => self.status(format_args!(
                        "#{local}: offering {name} ({size}, blake3 {short}…) to {who}"
                    )),
                    (Way::In, true) => self.status(format_args!(
                        "#{local}: {who} sends {name} ({size}, blake3 {short}…): accepted"
                    )),
                    (Way::In, false) => self.warn(format_args!(
                        "#{local}: {who} offers {name} ({size}, blake3 {short}…): /accept \
                         {local} to save it, /reject {local} to decline"
                    )),
                }
            }
            FileEvent::Started { local, way, offset } => {
                if *offset > 0 {
                    self.status(format_args!(
                        "#{local}: resuming: {} already there, only the rest travels",
                        files::size(*offset)
                    ));
                } else if *way == Way::Out {
                    self.status(format_args!("#{local}: {who} accepted; sending"));
                }
            }
            FileEvent::Done {
                local,
                way,
                name,
                size,
                hash,
                path,
                moved,
            } => {
                let hex = hex::encode(hash);
                if self.mode == Mode::Json {
                    let path = path.as_ref().map(|p| p.display().to_string());
                    let _ = self.json_event(Event::FileDone {
                        transfer: *local,
                        direction: direction(*way),
                        name,
                        size: *size,
                        hash: &hex,
                        path: path.as_deref(),
                        moved: *moved,
                    });
                }
                let name = sanitize::line(name);
                match path {
                    Some(path) => self.status(format_args!(
                        "#{local}: {name} ({}) saved as {}, its blake3 checked ({}…)",
                        files::size(*size),
                        sanitize::line(&path.display().to_string()),
                        &hex[..16]
                    )),
                    None => self.status(format_args!(
                        "#{local}: {name} ({}) delivered: {who} checked its blake3",
                        files::size(*size)
                    )),
                }
            }
            FileEvent::Failed {
                local,
                way,
                name,
                reason,
            } => {
                if self.mode == Mode::Json {
                    let _ = self.json_event(Event::FileFailed {
                        transfer: *local,
                        direction: direction(*way),
                        name,
                        reason,
                    });
                }
                self.warn(format_args!(
                    "#{local}: {} {}: {}",
                    sanitize::line(name),
                    match way {
                        Way::Out => "not delivered",
                        Way::In => "not received",
                    },
                    sanitize::line(reason)
                ));
            }
            FileEvent::Note(text) => self.warn(text),
        }
    }

    /// Progress of the transfers moving now (none: the rows go). At a terminal a row each,
    /// redrawn in place above the prompt; `--json` gets `file_progress` events; plain output
    /// a status line now and then (`every`).
    pub fn file_progress(&self, rows: &[Progress<'_>], due_lines: bool) {
        match (self.mode, &self.screen) {
            (Mode::Interactive, Some(screen)) => {
                screen.set_progress(rows.iter().map(progress_row).collect());
            }
            (Mode::Json, _) => {
                for p in rows {
                    let _ = self.json_event(Event::FileProgress {
                        transfer: p.local,
                        direction: direction(p.way),
                        bytes: p.at,
                        size: p.size,
                        rate: rate(p.at - p.from, p.started),
                    });
                }
            }
            _ if due_lines => {
                for p in rows {
                    self.status(progress_row(p));
                }
            }
            _ => {}
        }
    }
}

/// How often progress is shown: at a terminal and in events, and as plain lines.
pub const PROGRESS_EVERY: Duration = Duration::from_millis(500);
pub const PROGRESS_LINES_EVERY: Duration = Duration::from_secs(5);
