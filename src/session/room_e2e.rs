//! A member's end-to-end sessions with the other members of its room (PROTOCOL.md §4.14),
//! and how what they bring is shown: who wrote a line (no "via" the host: the host could not
//! have), what the host dropped or tampered with, and whom we cannot reach.

use crate::fingerprint;
use crate::keys::{Identity, PublicKey};
use crate::message::{Message, PeerMessage};
use crate::pairs::{Heard, MAX_SEALED_TEXT, Pairs, Reach};
use crate::safety::SafetyNumber;
use crate::sanitize;
use crate::session::names::Names;
use crate::ui::{Speaker, Ui};
use std::time::Instant;

/// The host's PAIRS flag: it takes no part in the room (relay only).
pub const RELAY_ONLY: u8 = 0x01;

/// How long leaving waits for a session under way, from its start, to carry what waits for it.
pub const SETTLE_HANDSHAKES: std::time::Duration = std::time::Duration::from_secs(3);

/// A member's sessions with the others, once the host says it passes them on.
pub struct E2e {
    pairs: Pairs,
    /// The host's PAIRS flags; `None`: it passes no PEER (an older host, or a one-to-one chat).
    host: Option<u8>,
    /// Sessions opened since they were last announced (one line for many).
    opened: Vec<PublicKey>,
    /// The host said PAIRS on this connection.
    said_pairs: bool,
    /// Copies of our lines that reached no member they were for (exit 1).
    undelivered: u64,
    /// The sessions of the room we joined were announced (later ones are named one by one).
    announced: bool,
    /// The roster has come: we know who is in the room (lines wait until then, or they
    /// would be sealed for nobody).
    roster_seen: bool,
    /// Members the host says take no PEER (an older schat): a participating host relays
    /// what we say to them itself.
    older: std::collections::HashSet<PublicKey>,
    /// What the files between members need to hear, in order (`chat::files` takes it).
    pub file_news: std::collections::VecDeque<FileNews>,
}

/// What the sessions bring that concerns files between members (PROTOCOL.md §4.14).
#[derive(Debug)]
pub enum FileNews {
    /// A session with `key` is up; `renewed`: it took an open one's place, so bytes sealed
    /// under the old one will not open.
    Session { key: PublicKey, renewed: bool },
    /// It takes files; `restart`: its connection to the host was cut.
    Files { from: PublicKey, restart: bool },
    File {
        from: PublicKey,
        file: crate::message::FileMessage<'static>,
    },
    /// Bytes for its transfer `id` that did not open.
    BadBulk { from: PublicKey, id: u32 },
    /// It left the room.
    Left(PublicKey),
}

impl E2e {
    pub fn new(identity: Identity) -> E2e {
        E2e {
            pairs: Pairs::new(identity),
            host: None,
            opened: Vec::new(),
            older: Default::default(),
            file_news: Default::default(),
            said_pairs: false,
            undelivered: 0,
            roster_seen: false,
            announced: false,
        }
    }

    /// Whether the host passes PEER on: we talk end to end with the members.
    pub fn active(&self) -> bool {
        self.host.is_some()
    }

    /// Whether the host takes no part: it reads nothing, so nothing goes to it.
    pub fn relay_only(&self) -> bool {
        self.host.is_some_and(|f| f & RELAY_ONLY != 0)
    }

    /// A new connection to the host (a resumed one says PAIRS again).
    pub fn connected(&mut self) {
        self.said_pairs = false;
    }

    /// The host's PAIRS. `Err` when it came twice on a connection, or the host changed its
    /// mind about taking part.
    pub fn on_pairs(&mut self, flags: u8) -> Result<(), ()> {
        match (self.said_pairs, self.host.replace(flags)) {
            (false, None) => {}
            (false, Some(before)) if before == flags => {}
            _ => return Err(()),
        }
        self.said_pairs = true;
        Ok(())
    }

    /// We are leaving: members who join from now on get no session with us.
    pub fn leaving(&mut self) {
        self.pairs.leaving();
    }

    /// The roster came (on joining): who is in the room, as the host says.
    pub fn roster(&mut self) {
        self.roster_seen = true;
    }

    /// Whether a dialer's typed lines can be handled: once the opening is over and, where
    /// the host passes PEER, once we know who is in the room.
    pub fn ready_for_lines(&self, is_dialer: bool, open: bool) -> bool {
        !is_dialer || (open && (!self.active() || self.roster_seen))
    }

    /// A member is in the room (a roster or a join).
    pub fn present(&mut self, key: PublicKey) {
        if self.active() {
            self.pairs.present(key, Instant::now());
        }
    }

    /// A member left: its session ends. Returns how many messages never reached it.
    pub fn left(&mut self, key: &PublicKey) -> usize {
        self.opened.retain(|k| k != key);
        self.older.remove(key);
        self.file_news.push_back(FileNews::Left(*key));
        let lost = self.pairs.left(key);
        self.undelivered += lost as u64;
        lost
    }

    /// A PEER from the host. `Err` when the host never said it passes them (§4.14).
    pub fn on_peer(&mut self, msg: PeerMessage<'_>) -> Result<(), ()> {
        if !self.active() || !self.said_pairs {
            return Err(());
        }
        self.pairs.on_peer(msg, Instant::now());
        Ok(())
    }

    /// The next PEER to send.
    pub fn next_out(&mut self) -> Option<Message<'static>> {
        self.pairs.outbox.pop_front().map(Message::Peer)
    }

    pub fn has_out(&self) -> bool {
        !self.pairs.outbox.is_empty()
    }

    /// Every sealed message has gone to the host, and none waits for a session that may
    /// still come up. (Leaving waits for it, as for the receipts of lines; a handshake gets
    /// [`SETTLE_HANDSHAKES`]: a member that never answers must not hold everyone's leaving.)
    pub fn settled(&self) -> bool {
        !self.has_out()
            && self
                .pairs
                .worth_waiting_until(SETTLE_HANDSHAKES, Instant::now())
                .is_none()
    }

    /// At the end: `Err` (exit 1) when a line of ours reached not every member it was for.
    pub fn all_delivered(&mut self, names: &Names, ui: &Ui) -> crate::error::Result<()> {
        for (key, waiting) in self.pairs.unsent() {
            ui.warn(format_args!(
                "{} never reached {}: no end-to-end session with it yet",
                messages(waiting as u64),
                names.label(&key)
            ));
            self.undelivered += waiting as u64;
        }
        // A participating host took our lines (its receipts say so) and is in the room: the
        // room got them, and the warnings above say who else did not. Under a relay-only
        // host the members are the only readers.
        match (self.undelivered, self.relay_only()) {
            (0, _) | (_, false) => Ok(()),
            (n, true) => Err(crate::error::Error::Undelivered(format!(
                "{} of your lines did not reach every member they were for (no end-to-end \
                 session with them)",
                messages(n)
            ))),
        }
    }

    /// When a handshake runs out of time (or, leaving, stops being worth waiting for).
    pub fn deadline(&self) -> Option<tokio::time::Instant> {
        let worth = self
            .pairs
            .worth_waiting_until(SETTLE_HANDSHAKES, Instant::now());
        [self.pairs.next_deadline(), worth]
            .into_iter()
            .flatten()
            .min()
            .map(tokio::time::Instant::from_std)
    }

    pub fn expire(&mut self) {
        self.pairs.expire(Instant::now());
    }

    /// Seals a line for every member. `Err` says why it was not sent; `Ok` lists the
    /// members it reaches in no way (no session, and the host does not relay it to them).
    pub fn say(&mut self, text: &str) -> Result<Vec<PublicKey>, String> {
        let inner = inner(Message::Text(text.into()))?;
        let Reach {
            unreachable,
            sealed,
            waiting,
        } = self.pairs.seal_to_all(&inner);
        let relay_only = self.relay_only();
        if relay_only && sealed + waiting + unreachable.len() == 0 {
            self.undelivered += 1;
            return Err("nobody else is in the room (the host reads nothing)".into());
        }
        let missed: Vec<PublicKey> = unreachable
            .into_iter()
            .filter(|k| relay_only || !self.older.contains(k))
            .collect();
        self.undelivered += missed.len() as u64;
        Ok(missed)
    }

    /// Seals a line for `to` alone (`/msg`), over a session that is up (a private line is
    /// never kept for later: the host would not relay it to an older member either).
    pub fn whisper(&mut self, to: &PublicKey, text: &str) -> Result<(), String> {
        if !self.pairs.is_open(to) {
            return Err("no end-to-end session with it (yet): nothing was sent".into());
        }
        let inner = inner(Message::Private(text.into()))?;
        self.pairs.seal_to(to, &inner).map(|_| ())
    }

    /// Seals FILES for `key` (`restart`: our connection to the host was cut).
    pub fn seal_files(&mut self, key: &PublicKey, restart: bool) -> Result<(), String> {
        self.pairs.seal_files(key, restart)
    }

    /// Seals a FILE that steers a transfer with `key`.
    pub fn seal_file(
        &mut self,
        key: &PublicKey,
        msg: &crate::message::FileMessage<'_>,
    ) -> Result<(), String> {
        self.pairs.seal_file(key, msg)
    }

    /// What seals a file's bytes for `key` (while its session is open).
    pub fn bulk_sealer(&self, key: &PublicKey) -> Option<crate::pairs::BulkSealer> {
        self.pairs.bulk_sealer(key)
    }

    /// The member `name` means, among those we have sessions with: a petname, a display
    /// name, a label, or the start of its fingerprint.
    pub fn find(&self, names: &Names, name: &str) -> Result<PublicKey, String> {
        let name = name.trim();
        let keys: Vec<PublicKey> = self.pairs.members().map(|(k, _)| *k).collect();
        // Our petnames first: ours, so nobody else can take them. A name that is one of our
        // petnames names that key or nobody, whoever announces it.
        if let Some(owner) = names.key_of_petname(name) {
            return match keys.contains(&owner) {
                true => Ok(owner),
                false => Err(format!(
                    "{:?} is your name for a key that has no end-to-end session here (a \
                     member announcing that name is someone else)",
                    sanitize::line(name)
                )),
            };
        }
        let exact: Vec<PublicKey> = keys
            .iter()
            .filter(|k| names.announced(k) == Some(name) || names.label(k) == name)
            .copied()
            .collect();
        let hex = name
            .trim_start_matches('[')
            .trim_end_matches(']')
            .to_lowercase();
        let by_key: Vec<PublicKey> = match hex.len() >= crate::session::room::MIN_PREFIX_DIGITS
            && hex.bytes().all(|b| b.is_ascii_hexdigit())
        {
            true => keys
                .iter()
                .filter(|k| k.to_hex().starts_with(&hex))
                .copied()
                .collect(),
            false => Vec::new(),
        };
        let found = if exact.is_empty() { by_key } else { exact };
        match found[..] {
            [key] => Ok(key),
            [] => Err(format!(
                "no member {:?} to talk to end to end (/who lists the room)",
                sanitize::line(name)
            )),
            _ => Err(format!(
                "{:?} could be {}: say which by its fingerprint",
                sanitize::line(name),
                found
                    .iter()
                    .map(|k| names.label(k))
                    .collect::<Vec<_>>()
                    .join(" or ")
            )),
        }
    }

    /// `/verify NAME`: the safety number we share with that member.
    pub fn verify(&self, names: &Names, us: &PublicKey, name: &str, ui: &Ui) {
        let key = match self.find(names, name) {
            Ok(key) => key,
            Err(why) => return ui.warn(why),
        };
        let label = sanitize::line(&names.label(&key)).into_owned();
        let state = match self.pairs.is_open(&key) {
            true => "end to end: what it says to you comes from this key",
            false => "no end-to-end session with it yet",
        };
        ui.status(format_args!(
            "safety number with {label} ({state}): read it aloud with them, the same digits \
             mean the same two keys"
        ));
        ui.grid("safety number:", &SafetyNumber::new(us, &key).lines());
        ui.grid("fingerprint:  ", &fingerprint::grid(&key));
    }

    /// Shows what the sessions brought, with our names for the members.
    pub fn show(&mut self, names: &Names, ui: &Ui) {
        while let Some(heard) = self.pairs.heard.pop_front() {
            match heard {
                Heard::Open(key) => {
                    self.opened.push(key);
                    let renewed = false;
                    self.file_news.push_back(FileNews::Session { key, renewed });
                }
                Heard::Renewed(key) => {
                    let renewed = true;
                    self.file_news.push_back(FileNews::Session { key, renewed });
                }
                Heard::Files { from, restart } => {
                    self.file_news.push_back(FileNews::Files { from, restart })
                }
                Heard::File { from, file } => {
                    self.file_news.push_back(FileNews::File { from, file })
                }
                Heard::BadBulk { from, id } => {
                    self.file_news.push_back(FileNews::BadBulk { from, id })
                }
                Heard::Said {
                    from,
                    text,
                    private,
                } => {
                    self.announce_opened(names, ui);
                    let label = names.label(&from);
                    let who = Speaker {
                        label: &label,
                        key: &from,
                        petname: names.petname(&from),
                        name: names.announced(&from),
                    };
                    let shown = match private {
                        true => ui.private(&who, &text),
                        false => ui.message(&who, &text),
                    };
                    if let Err(e) = shown {
                        ui.error(format_args!("writing to the screen failed: {e}"));
                    }
                }
                Heard::Lost { from, count } => ui.warn(format_args!(
                    "{} from {} never arrived: dropped on the way (by the host, or in a cut), \
                     or never sent",
                    messages(count),
                    names.label(&from),
                )),
                Heard::Dropped { key } => {
                    self.undelivered += 1;
                    ui.warn(format_args!(
                        "a line waiting for the session with {} was dropped: at most {} wait",
                        names.label(&key),
                        crate::pairs::MAX_QUEUED
                    ));
                }
                Heard::Refused { from, why } => ui.warn(format_args!(
                    "a message said to be from {} is not shown: {why}",
                    names.label(&from)
                )),
                Heard::Failed {
                    key,
                    why,
                    undelivered,
                    gone,
                } => {
                    if gone {
                        self.older.insert(key);
                    }
                    // (An older member gets our lines from a participating host itself.)
                    if !gone || self.relay_only() {
                        self.undelivered += undelivered as u64;
                    }
                    let lost = match undelivered {
                        0 => String::new(),
                        n => format!("; {} waiting for it not delivered", messages(n as u64)),
                    };
                    let then = match gone && !self.relay_only() {
                        false => "",
                        true => "; what you say reaches it through the host, which can read it",
                    };
                    ui.warn(format_args!(
                        "no end-to-end session with {}: {}{lost}{then}",
                        names.label(&key),
                        sanitize::line(&why)
                    ));
                }
            }
        }
        // Once the handshakes under way are done: one line for a room joined, not one per
        // member.
        if self.pairs.setting_up() == 0 {
            self.announce_opened(names, ui);
        }
    }

    fn announce_opened(&mut self, names: &Names, ui: &Ui) {
        if self.opened.is_empty() {
            return;
        }
        let labels: Vec<String> = self.opened.drain(..).map(|k| names.label(&k)).collect();
        // The room we joined may be summed up; anyone after that is named, every one: it is
        // the host that says who is in the room, so each new reader is shown.
        let shown = match (labels.len(), self.announced) {
            (n, false) if n > 4 => format!("{} and {} more", labels[..3].join(", "), n - 3),
            _ => labels.join(", "),
        };
        self.announced = true;
        let host_can = match self.relay_only() {
            true => "the host cannot read, alter or forge what you say to each other",
            false => {
                "the host cannot alter or forge what they say, nor read your /msg to each other \
                 (it reads what is said to the room)"
            }
        };
        ui.status(format_args!("end to end with {shown}: {host_can}"));
    }
}

/// A message as sealed inside a PEER: its type byte and body.
fn inner(msg: Message<'_>) -> Result<Vec<u8>, String> {
    let len = msg.body_len();
    if len > MAX_SEALED_TEXT {
        return Err(format!(
            "longer than {MAX_SEALED_TEXT} bytes, the most a sealed message carries"
        ));
    }
    let mut out = Vec::with_capacity(1 + len);
    msg.encode_into(&mut out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn messages(n: u64) -> String {
    match n {
        1 => "1 message".into(),
        n => format!("{n} messages"),
    }
}
