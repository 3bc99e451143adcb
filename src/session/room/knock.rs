//! Unknown dialers knocking at a host who is at a terminal: shown with their fingerprint
//! and safety number, answered y / n / a petname, turned away unanswered after `--knock-wait`
//! ([`KNOCK_WAIT`] by default).

use super::*;

/// How long a knock waits for the host's answer.
pub const KNOCK_WAIT: Duration = Duration::from_secs(60);

/// Knocks waiting at once; more are turned away.
pub(super) const MAX_KNOCKS: usize = 8;

/// Knocks waiting at once from one address (an IP, an IPv6 /64, a relayed endpoint): one
/// address cannot fill the queue with throwaway keys and keep every other stranger out.
pub(super) const KNOCKS_PER_ADDRESS: usize = 2;

/// Knocks turned away for want of room are summed up in one line this often.
pub(super) const TURNED_AWAY_EVERY: Duration = Duration::from_secs(10);

/// What a knock turned away for want of room is told: nobody refused it (PROTOCOL.md §5).
pub const KNOCKS_FULL: &str =
    "busy: the host has too many knocks waiting to answer; try again in a minute";

/// What a knock nobody answered in time is told: not refused, just not answered (§5).
fn unanswered(wait: Duration) -> String {
    format!(
        "unanswered: the host's owner did not answer within {} s; ask them to let you in, or \
         for an invite",
        wait.as_secs()
    )
}

/// What a key that knocks again while its first knock waits is told.
pub const ALREADY_KNOCKING: &str =
    "busy: your key is already knocking here; its first knock waits for the host's answer";

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
    /// Each with when it came and the address it counts against.
    queue: VecDeque<(Arrival<R, W>, Instant, String)>,
    refused: std::collections::HashMap<PublicKey, Refusal>,
    /// Refusals in progress are bounded (see `send_away`).
    slots: Arc<Semaphore>,
    /// How long a knock waits for an answer.
    wait: Duration,
    /// Knocks turned away for want of room since the last line about it, and when that
    /// line was shown.
    turned_away: u32,
    last_summary: Option<Instant>,
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
    pub(super) fn new(slots: Arc<Semaphore>, wait: Duration) -> Self {
        Knocks {
            wait,
            queue: VecDeque::new(),
            refused: std::collections::HashMap::new(),
            slots,
            turned_away: 0,
            last_summary: None,
        }
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// When the oldest knock has waited long enough.
    pub(super) fn due(&self) -> Instant {
        self.queue
            .front()
            .map_or_else(Instant::now, |(_, since, _)| *since + self.wait)
    }

    /// Knocks turned away for want of room and not yet told to the host.
    pub(super) fn turned_away(&self) -> u32 {
        self.turned_away
    }

    /// When the line about them is due.
    pub(super) fn summary_due(&self) -> Instant {
        self.last_summary
            .map_or_else(Instant::now, |at| at + TURNED_AWAY_EVERY)
    }

    /// Tells the host how many knocks were turned away for want of room since the last line.
    pub(super) fn summarise(&mut self, ui: &Ui) {
        let n = std::mem::take(&mut self.turned_away);
        if n == 0 {
            return;
        }
        self.last_summary = Some(Instant::now());
        ui.warn(format_args!(
            "{n} more knock(s) turned away in the last {} s: {} are waiting for your answer \
             (at most {KNOCKS_PER_ADDRESS} per address); answer them, or they are turned away \
             after {} s",
            TURNED_AWAY_EVERY.as_secs(),
            self.queue.len(),
            self.wait.as_secs()
        ));
    }

    /// A knock with no room in the queue: told it is busy (nobody refused it), and the host is
    /// told — at once the first time, then in one line per [`TURNED_AWAY_EVERY`].
    fn no_room(&mut self, arrival: Arrival<R, W>, ui: &Ui) {
        send_away(&self.slots, arrival.established, KNOCKS_FULL);
        let quiet = self
            .last_summary
            .is_some_and(|at| at.elapsed() < TURNED_AWAY_EVERY);
        if quiet {
            self.turned_away += 1;
            return;
        }
        self.last_summary = Some(Instant::now());
        ui.warn(format_args!(
            "turned away a knock by {} from {}: {} knocks are waiting for your answer (at most \
             {KNOCKS_PER_ADDRESS} per address); more are summed up every {} s",
            arrival.info.label,
            arrival.address,
            self.queue.len(),
            TURNED_AWAY_EVERY.as_secs()
        ));
    }

    /// A new knock, queued; `true` when it is the one to ask about now. The same key knocking
    /// again while it waits, or too many knocks at once, is turned away without a word to the
    /// host; a key the host refused is turned away for [`REFUSED_FOR`], its repeats summed up
    /// in one line a minute at most (repeats cannot flood the screen).
    pub(super) fn knock(&mut self, arrival: Arrival<R, W>, source: String, ui: &Ui) -> bool {
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
        if self.queue.iter().any(|(a, _, _)| a.info.key == key) {
            send_away(&self.slots, arrival.established, ALREADY_KNOCKING);
            return false;
        }
        let from_there = self.queue.iter().filter(|(_, _, s)| *s == source).count();
        if from_there >= KNOCKS_PER_ADDRESS || self.queue.len() >= MAX_KNOCKS {
            self.no_room(arrival, ui);
            return false;
        }
        self.queue.push_back((arrival, Instant::now(), source));
        self.queue.len() == 1
    }

    /// Shows the oldest knock and asks about it.
    pub(super) fn ask(&self, ui: &Ui, input: &mut Input) {
        let Some((arrival, _, _)) = self.queue.front() else {
            input.set_prompt(None);
            return;
        };
        let info = &arrival.info;
        match &info.entry {
            Some(e) => ui.status(format_args!(
                "knock: {} from {} asks to join: you know its key ({}) but have not admitted it",
                info.label,
                arrival.address,
                e.how.describe()
            )),
            None => ui.status(format_args!(
                "knock: {} from {} is not in known_peers and asks to join",
                info.label, arrival.address
            )),
        }
        ui.grid("safety number:", &info.safety().lines());
        ui.grid("fingerprint:  ", &fingerprint::grid(&info.key));
        ui.status(
            "compare the safety number with them (read it aloud), then answer: y admits, n \
             refuses, y NAME admits and remembers them as NAME",
        );
        input.set_prompt(Some("admit? y / n / y NAME: "));
    }

    /// The host's answer to the oldest knock: what to do with it.
    pub(super) fn answer(&mut self, answer: &str, ui: &Ui) -> Answer<R, W> {
        let Some((arrival, _, source)) = self.queue.pop_front() else {
            return Answer::Wait;
        };
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
            ("y" | "yes", Some(petname)) => match crate::trust::validate_name(petname) {
                // Remembered off the room's loop (the store may wait on a lock or the disk).
                Ok(()) => return Answer::Name(arrival, petname.to_string(), source),
                Err(why) => {
                    ui.warn(format_args!("{why}: answer again"));
                    self.queue.push_front((arrival, Instant::now(), source));
                    return Answer::Wait;
                }
            },
            _ => {
                ui.warn("answer y (admit), y NAME (admit and remember as NAME) or n (refuse)");
                self.queue.push_front((arrival, Instant::now(), source));
                return Answer::Wait;
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
            return Answer::Wait;
        }
        Answer::Admit(arrival)
    }

    /// A knock whose naming failed: asked about again, first.
    pub(super) fn ask_again(&mut self, arrival: Arrival<R, W>, source: String) {
        self.queue.push_front((arrival, Instant::now(), source));
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
            .is_some_and(|(_, since, _)| since.elapsed() >= self.wait);
        if !waited {
            return false;
        }
        if let Some((arrival, _, _)) = self.queue.pop_front() {
            ui.warn(format_args!(
                "turned {} from {} away: no answer within {} s",
                arrival.info.label,
                arrival.address,
                self.wait.as_secs()
            ));
            send_away(&self.slots, arrival.established, unanswered(self.wait));
        }
        true
    }
}

/// What the host's answer to a knock asks for.
pub(super) enum Answer<R, W> {
    /// Let it in.
    Admit(Arrival<R, W>),
    /// Remember it under this petname, then let it in (its address, should that fail).
    Name(Arrival<R, W>, String, String),
    /// Nothing now (refused, or asked again).
    Wait,
}

/// Stores `key` under `name` in known_peers (a new entry, or a new petname for the key's
/// existing one, decided under the store's lock), off the async runtime: the entry.
pub(super) async fn name_peer(
    trust: &TrustConfig,
    key: PublicKey,
    name: String,
) -> std::result::Result<crate::trust::Entry, String> {
    use crate::trust::{Entry, TrustError, Verified};
    crate::trust::validate_name(&name).map_err(|e| e.to_string())?;
    trust
        .store
        .update_off_runtime(move |peers| {
            // Answering `y NAME` is the host's explicit act: the key is admitted from now on.
            match peers.by_key(&key).map(|e| e.name.clone()) {
                Some(old) => {
                    peers.rename(&old, &name)?;
                    peers.set_admitted(&name, true)?;
                }
                None => peers.add(Entry::new(&name, key, Verified::FirstUse).admitted())?,
            }
            peers
                .by_key(&key)
                .cloned()
                .ok_or_else(|| TrustError::NoMatch(key.to_hex()))
        })
        .await
        .map_err(|e| e.to_string())
}
