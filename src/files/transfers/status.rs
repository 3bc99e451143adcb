//! How the transfers stand: for leaving, exit codes, progress rows and `/transfers`.

use super::*;

impl Transfers {
    /// Whether we are waiting for something of ours to be delivered (or being prepared).
    pub fn sending(&self) -> bool {
        self.preparing > 0
            || self.list.iter().any(|t| {
                t.way == Way::Out
                    && matches!(
                        t.state,
                        State::Offered | State::Accepted | State::Moving | State::Cut
                    )
            })
    }

    /// Whether nothing ever happened here: no transfer, none being prepared, no failure.
    pub fn is_empty(&self) -> bool {
        self.list.is_empty()
            && self.preparing == 0
            && self.unprepared == 0
            && self.forgotten_failures == 0
    }

    /// Whether we offered anything here yet (or are preparing to).
    pub fn offered_any(&self) -> bool {
        self.preparing > 0 || self.list.iter().any(|t| t.way == Way::Out)
    }

    /// Whether bytes are moving (or being checked) either way.
    pub fn moving(&self) -> bool {
        self.list
            .iter()
            .any(|t| matches!(t.state, State::Moving | State::Checking))
    }

    /// Whether a file we accepted is still arriving.
    pub fn receiving(&self) -> bool {
        self.list.iter().any(|t| {
            t.way == Way::In
                && matches!(
                    t.state,
                    State::Accepted | State::Moving | State::Checking | State::Cut
                )
        })
    }

    /// How many transfers failed (either way, once started or accepted), and how many of ours
    /// were never delivered.
    pub fn failures(&self) -> usize {
        self.list
            .iter()
            .filter(|t| t.state == State::Failed && (t.way == Way::Out || t.accepted))
            .count()
            // (Still being checked when the session ended: not named, so not received.)
            + (self.list.iter())
                .filter(|t| t.state == State::Checking)
                .count()
            + self.unprepared
            + self.forgotten_failures
    }

    /// Every byte that moved either way so far: leaving waits while this grows.
    pub fn bytes_moved(&self) -> u64 {
        (self.list.iter())
            .map(|t| match &t.reading {
                Some(r) => r.queued.load(Ordering::Relaxed),
                None => t.at.max(t.written),
            })
            .sum()
    }

    /// Progress of every transfer moving bytes.
    pub fn progress(&mut self) -> Vec<Progress<'_>> {
        for t in &mut self.list {
            if let Some(r) = &t.reading {
                t.at = r.queued.load(Ordering::Relaxed);
            } else if t.way == Way::In {
                t.at = t.at.max(t.written);
            }
        }
        self.list
            .iter()
            .filter(|t| t.state == State::Moving)
            .map(|t| Progress {
                local: t.local,
                way: t.way,
                name: &t.name,
                size: t.size,
                at: if t.way == Way::In { t.written } else { t.at },
                from: t.from,
                started: t.started,
            })
            .collect()
    }

    /// `/transfers`: one line each (`who`: how the peer is shown).
    pub fn list(&self, who: &str) -> Vec<String> {
        self.list
            .iter()
            .map(|t| {
                let state = match t.state {
                    State::Offered if t.way == Way::In => "offered to you: /accept or /reject",
                    State::Offered => "offered, waiting for an answer",
                    State::Accepted => "accepted, waiting to start",
                    State::Moving => "moving",
                    State::Checking => "checking its hash",
                    State::Cut => "cut, waiting for the connection",
                    State::Done => "done",
                    State::Failed => "failed",
                };
                format!(
                    "#{} {} {} ({}): {state}{}",
                    t.local,
                    match t.way {
                        Way::Out => format!("to {}", crate::sanitize::line(who)),
                        Way::In => format!("from {}", crate::sanitize::line(who)),
                    },
                    crate::sanitize::line(&t.name),
                    crate::files::size(t.size),
                    match t.state {
                        State::Moving => format!(", {}%", percent(t.at.max(t.written), t.size)),
                        _ => String::new(),
                    }
                )
            })
            .collect()
    }
}
