//! Unknown dialers knocking at a host who is at a terminal: shown with their fingerprint
//! and safety number, answered y / n / a petname, refused after [`KNOCK_WAIT`].

use super::*;

/// How long a knock waits for the host's answer.
pub const KNOCK_WAIT: Duration = Duration::from_secs(60);

/// Knocks waiting at once; more are turned away.
pub(super) const MAX_KNOCKS: usize = 8;

/// A key the host refused stays refused this long: its knocks are turned away without
/// asking again (a stranger that redials in a loop cannot fill the host's screen).
pub const REFUSED_FOR: Duration = Duration::from_secs(600);

/// At most one line per key this often about a refused key that keeps knocking.
const REPEATS_EVERY: Duration = Duration::from_secs(60);

/// Refused keys remembered at most (the oldest is forgotten first).
const REFUSED_KEPT: usize = 256;

/// Unknown dialers waiting for the host at the terminal to let them in, oldest first, and
/// the keys the host turned down.
pub(super) struct Knocks<R, W> {
    queue: VecDeque<(Arrival<R, W>, Instant)>,
    refused: std::collections::HashMap<PublicKey, Refusal>,
    /// Refusals in progress are bounded (see `send_away`).
    slots: Arc<Semaphore>,
}

/// A key the host refused, and its knocks since.
struct Refusal {
    at: Instant,
    /// Knocks turned away since the last line about them.
    repeats: u32,
    /// When the last line about it was shown.
    shown: Instant,
}

impl<R, W> Knocks<R, W>
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    pub(super) fn new(slots: Arc<Semaphore>) -> Self {
        Knocks {
            queue: VecDeque::new(),
            refused: std::collections::HashMap::new(),
            slots,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// When the oldest knock has waited long enough.
    pub(super) fn due(&self) -> Instant {
        self.queue
            .front()
            .map_or_else(Instant::now, |(_, since)| *since + KNOCK_WAIT)
    }

    /// A new knock, queued; `true` when it is the one to ask about now. The same key knocking
    /// again while it waits, or too many knocks at once, is turned away without a word to the
    /// host; a key the host refused is turned away for [`REFUSED_FOR`], its repeats summed up
    /// in one line a minute at most (repeats cannot flood the screen).
    pub(super) fn knock(&mut self, arrival: Arrival<R, W>, ui: &Ui) -> bool {
        let key = arrival.info.key;
        if let Some(refusal) = self.refused.get_mut(&key) {
            if refusal.at.elapsed() < REFUSED_FOR {
                refusal.repeats += 1;
                if refusal.shown.elapsed() >= REPEATS_EVERY {
                    ui.status(format_args!(
                        "{} knocked again ({} time(s)); turned away: you refused it {} s ago",
                        arrival.info.label,
                        std::mem::take(&mut refusal.repeats),
                        refusal.at.elapsed().as_secs()
                    ));
                    refusal.shown = Instant::now();
                }
                send_away(&self.slots, arrival.established, REFUSAL);
                return false;
            }
            self.refused.remove(&key);
        }
        let again = self.queue.iter().any(|(a, _)| a.info.key == key);
        if again || self.queue.len() >= MAX_KNOCKS {
            send_away(&self.slots, arrival.established, REFUSAL);
            return false;
        }
        self.queue.push_back((arrival, Instant::now()));
        self.queue.len() == 1
    }

    /// Shows the oldest knock and asks about it.
    pub(super) fn ask(&self, ui: &Ui, input: &mut Input) {
        let Some((arrival, _)) = self.queue.front() else {
            input.set_prompt(None);
            return;
        };
        let info = &arrival.info;
        ui.status(format_args!(
            "knock: {} from {} is not in known_peers and asks to join",
            info.label, arrival.address
        ));
        ui.status(format_args!(
            "  fingerprint:   {}",
            fingerprint::grouped(&info.key)
        ));
        ui.status(format_args!("  safety number: {}", info.safety()));
        ui.status(
            "compare the safety number with them (read it aloud), then answer: y admits, n \
             refuses, y NAME admits and remembers them as NAME",
        );
        input.set_prompt(Some(&format!(
            "admit {}? [y]es / [n]o / y NAME: ",
            info.label
        )));
    }

    /// The host's answer to the oldest knock; the arrival to let in, if admitted.
    pub(super) fn answer(
        &mut self,
        answer: &str,
        trust: &TrustConfig,
        ui: &Ui,
    ) -> Option<Arrival<R, W>> {
        let (mut arrival, _) = self.queue.pop_front()?;
        let answer = answer.trim();
        let lower = answer.to_ascii_lowercase();
        // `y NAME` to name it: a bare word is never taken for a petname, or a fragment of a
        // line the host was typing when the knock came could admit a stranger.
        let (word, petname) =
            lower
                .split_once(char::is_whitespace)
                .map_or((lower.as_str(), None), |(w, _)| {
                    (
                        w,
                        answer
                            .split_once(char::is_whitespace)
                            .map(|(_, p)| p.trim()),
                    )
                });
        let admitted = match (word, petname) {
            ("y" | "yes", None) => true,
            ("n" | "no", None) | ("", None) => false,
            ("y" | "yes", Some(petname)) => match name_peer(trust, &mut arrival.info, petname) {
                Ok(name) => {
                    ui.status(format_args!(
                        "remembered as {name:?} (trusted on first use, not verified)"
                    ));
                    true
                }
                Err(why) => {
                    ui.warn(format_args!("{why}: answer again"));
                    self.queue.push_front((arrival, Instant::now()));
                    return None;
                }
            },
            _ => {
                ui.warn("answer y (admit), y NAME (admit and remember as NAME) or n (refuse)");
                self.queue.push_front((arrival, Instant::now()));
                return None;
            }
        };
        if !admitted {
            ui.status(format_args!(
                "refused {} from {} (its knocks are turned away for the next {} min)",
                arrival.info.label,
                arrival.address,
                REFUSED_FOR.as_secs() / 60
            ));
            self.remember_refusal(arrival.info.key);
            send_away(&self.slots, arrival.established, REFUSAL);
            return None;
        }
        Some(arrival)
    }

    fn remember_refusal(&mut self, key: PublicKey) {
        if self.refused.len() >= REFUSED_KEPT {
            let oldest = self
                .refused
                .iter()
                .min_by_key(|(_, r)| r.at)
                .map(|(k, _)| *k);
            if let Some(oldest) = oldest {
                self.refused.remove(&oldest);
            }
        }
        let now = Instant::now();
        self.refused.insert(
            key,
            Refusal {
                at: now,
                repeats: 0,
                // The first repeat is shown at once; later ones a minute apart at most.
                shown: now.checked_sub(REPEATS_EVERY).unwrap_or(now),
            },
        );
    }

    /// The oldest knock waited too long: refused. `true` when another is to be asked about.
    pub(super) fn expire(&mut self, ui: &Ui) -> bool {
        let waited = self
            .queue
            .front()
            .is_some_and(|(_, since)| since.elapsed() >= KNOCK_WAIT);
        if !waited {
            return false;
        }
        if let Some((arrival, _)) = self.queue.pop_front() {
            ui.warn(format_args!(
                "refused {} from {}: no answer within {} s",
                arrival.info.label,
                arrival.address,
                KNOCK_WAIT.as_secs()
            ));
            send_away(&self.slots, arrival.established, REFUSAL);
        }
        true
    }
}

/// Stores `info`'s key under `name` in known_peers (a new entry, or a new petname for the
/// key's existing one, decided under the store's lock) and shows the peer by it from now on.
pub(super) fn name_peer(
    trust: &TrustConfig,
    info: &mut PeerInfo,
    name: &str,
) -> std::result::Result<String, String> {
    use crate::trust::{Entry, TrustError, Verified};
    crate::trust::validate_name(name).map_err(|e| e.to_string())?;
    let key = info.key;
    let entry = trust
        .store
        .update(|peers| {
            match peers.by_key(&key).map(|e| e.name.clone()) {
                Some(old) => peers.rename(&old, name)?,
                None => peers.add(Entry::new(name, key, Verified::FirstUse))?,
            }
            peers
                .by_key(&key)
                .cloned()
                .ok_or_else(|| TrustError::NoMatch(key.to_hex()))
        })
        .map_err(|e| e.to_string())?;
    info.label = entry.name.clone();
    info.entry = Some(entry);
    Ok(info.label.clone())
}
