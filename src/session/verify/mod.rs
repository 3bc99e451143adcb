//! Deciding whether to talk to the peer, right after the handshake and before any chat message
//! is sent or shown: `--peer` pins, known_peers, the trust policy, and the listener's allowlist.

use super::input::{Input, InputEvent};
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::keys::PublicKey;
use crate::safety::SafetyNumber;
use crate::trust::{self, Allow, Entry, Store, Verdict, Verified};
use crate::ui::{Speaker, Ui};

/// What to do with a dialled peer whose key known_peers has never seen.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum TrustPolicy {
    /// Ask on a terminal (refuse when there is none).
    #[default]
    Ask,
    /// Trust and remember it (trust on first use).
    AcceptNew,
    /// Refuse every key not already known.
    Strict,
}

/// Who the peer is, as far as we know, once we have decided to talk to it.
#[derive(Debug, Clone)]
pub struct PeerInfo {
    /// The peer's static key.
    pub key: PublicKey,
    /// How to show it: its petname, or `unverified <short fingerprint>`.
    pub label: String,
    /// Its known_peers entry, if any.
    pub entry: Option<Entry>,
    /// Both keys' safety number, computed when first wanted: 5,200 hashes per key is the
    /// dearest thing a stranger can make a listener do, so a connection that never joins
    /// never pays for it.
    safety: std::sync::OnceLock<SafetyNumber>,
    /// Our key, for the safety number.
    local: PublicKey,
    /// The network address it connected from or was dialled at.
    pub address: Option<String>,
    /// The invite it redeemed to get in, if it did (its id).
    pub invite: Option<String>,
}

impl PeerInfo {
    fn new(key: PublicKey, local: &PublicKey, entry: Option<Entry>) -> Self {
        let label = match &entry {
            Some(e) => e.name.clone(),
            None => format!("unverified {}", fingerprint::short(&key)),
        };
        PeerInfo {
            key,
            label,
            entry,
            safety: std::sync::OnceLock::new(),
            local: *local,
            address: None,
            invite: None,
        }
    }

    /// Both keys' safety number.
    pub fn safety(&self) -> &SafetyNumber {
        self.safety
            .get_or_init(|| SafetyNumber::new(&self.local, &self.key))
    }

    /// How the UI names this peer.
    pub fn speaker(&self) -> Speaker<'_> {
        Speaker {
            label: &self.label,
            key: &self.key,
            petname: self.entry.as_ref().map(|e| e.name.as_str()),
            name: None,
        }
    }

    /// Our own key (the other half of the safety number).
    pub fn local(&self) -> &PublicKey {
        &self.local
    }

    /// `/whois`: everything we know about the peer.
    pub fn describe(&self) -> Vec<String> {
        let mut lines = vec![
            format!("peer:          {}", self.label),
            format!("fingerprint:   {}", fingerprint::grouped(&self.key)),
            format!(
                "address:       {}",
                self.address.as_deref().unwrap_or("unknown")
            ),
        ];
        lines.push(match &self.entry {
            Some(e) => format!("verification:  {} ({})", e.how.describe(), e.when),
            None => "verification:  none (not in known_peers)".into(),
        });
        lines.push(format!("safety number: {}", self.safety()));
        lines
    }

    /// One line on how this peer is verified.
    pub fn trust_line(&self) -> String {
        match &self.entry {
            Some(e) => format!("{} ({}, {})", e.name, e.how.describe(), e.when),
            None => format!("{} (not in known_peers)", self.label),
        }
    }
}

/// Where known peers live and how to tell the user to edit them.
#[derive(Debug, Clone)]
pub struct TrustConfig {
    /// The known_peers store.
    pub store: Store,
    /// How to invoke `schat peers` for this home (e.g. `schat --home /x peers`).
    pub peers_command: String,
}

impl TrustConfig {
    /// The pending invites of the same home.
    pub fn invites(&self) -> crate::invite::Invites {
        crate::invite::Invites::in_home(&crate::fsutil::parent_dir(self.store.path()))
    }
}

fn load(config: &TrustConfig, ui: &Ui) -> Result<trust::KnownPeers> {
    let peers = config.store.load().map_err(store_error)?;
    for (line, reason) in &peers.problems {
        ui.warn(format_args!(
            "{} line {line}: {reason}; that line is ignored",
            config.store.path().display()
        ));
    }
    Ok(peers)
}

fn store_error(e: trust::TrustError) -> Error {
    Error::Internal(e.to_string())
}

fn pin_mismatch(pin: &PublicKey, peer: &PublicKey, dialer: bool) -> Error {
    let when = match dialer {
        true => "before your key was sent",
        false => "before any message",
    };
    Error::PeerRefused(format!(
        "the peer's key does not match --peer; session aborted {when}\n  \
         expected: {}\n  received: {}",
        fingerprint::grouped(pin),
        fingerprint::grouped(peer)
    ))
}

/// The dialer's refusals that need no question, decided as soon as handshake message 2 has
/// proven the listener's key and before message 3 reveals ours: a pin that does not match, a
/// known address presenting another key, and under `--trust strict` a key that is unknown or
/// known only at other addresses. An impostor refused here never learns who dialled.
pub fn before_revealing(
    peer: &PublicKey,
    local: &PublicKey,
    addr: &str,
    pin: Option<&PublicKey>,
    policy: TrustPolicy,
    config: &TrustConfig,
    ui: &Ui,
) -> Result<()> {
    if let Some(pin) = pin {
        return if pin == peer {
            Ok(())
        } else {
            Err(pin_mismatch(pin, peer, true))
        };
    }
    if peer == local {
        return Err(Error::PeerRefused(
            "the listener is you: it has your own key (both use the same home); give one \
             of them its own identity with --home DIR"
                .into(),
        ));
    }
    // Problems in the file are reported once, after the handshake, by `dialled`.
    let peers = config.store.load().map_err(store_error)?;
    match trust::check_dialled(&peers, addr, peer) {
        Verdict::Changed { entry } => {
            key_changed_alarm(ui, addr, &entry, peer, config);
            Err(key_changed(addr, &entry))
        }
        Verdict::Unknown if policy == TrustPolicy::Strict => Err(strict_unknown(addr, peer)),
        Verdict::Known {
            entry,
            new_address: true,
        } if policy == TrustPolicy::Strict => Err(strict_new_address(addr, &entry)),
        _ => Ok(()),
    }
}

/// A ticket names the key to expect, but it is text anyone can write (`listen --p2p` prints
/// them for all to see): an address known_peers has for another key still raises the
/// key-change alarm, as dialling that address does. Decided with the listener's key proven and
/// before ours is revealed.
pub fn ticket_at_known_address(
    peer: &PublicKey,
    addr: &str,
    config: &TrustConfig,
    ui: &Ui,
) -> Result<()> {
    let peers = config.store.load().map_err(store_error)?;
    match trust::check_dialled(&peers, addr, peer) {
        Verdict::Changed { entry } => {
            key_changed_alarm(ui, addr, &entry, peer, config);
            Err(key_changed(addr, &entry))
        }
        _ => Ok(()),
    }
}

fn key_changed(addr: &str, entry: &Entry) -> Error {
    Error::PeerRefused(format!(
        "the key at {addr} changed (known as {:?}); session aborted before your key was sent",
        entry.name
    ))
}

fn strict_unknown(addr: &str, peer: &PublicKey) -> Error {
    Error::PeerRefused(format!(
        "the peer at {addr} is not in known_peers and --trust strict refuses unknown keys \
         (your key was not sent)\n  its fingerprint: {}",
        fingerprint::grouped(peer)
    ))
}

fn strict_new_address(addr: &str, entry: &Entry) -> Error {
    Error::PeerRefused(format!(
        "the peer at {addr} presented the key of {:?}, which was never seen at this address; \
         --trust strict accepts a known key at a new address only when --peer names it \
         (your key was not sent)",
        entry.name
    ))
}

/// A listener a dialer reached, as the dialer's decision about it sees it.
#[derive(Debug, Clone, Copy)]
pub struct Dialled<'a> {
    /// The listener's key, proven by the handshake.
    pub peer: PublicKey,
    /// Ours.
    pub local: &'a PublicKey,
    /// Where we dialled it (host:port as dialled, or a ticket).
    pub addr: &'a str,
    /// `--peer`, a ticket's key, or a petname's: the one key to accept.
    pub pin: Option<&'a PublicKey>,
    pub policy: TrustPolicy,
}

/// The dialer's decision about the listener it reached, after the handshake: the same rules as
/// [`before_revealing`], plus the question for a new key and the bookkeeping of what was
/// accepted.
pub async fn dialled(
    dialled: &Dialled<'_>,
    config: &TrustConfig,
    input: &mut Input,
    ui: &Ui,
) -> Result<PeerInfo> {
    let Dialled {
        peer,
        local,
        addr,
        pin,
        policy,
    } = *dialled;
    let peers = load(config, ui)?;
    if let Some(pin) = pin {
        if *pin != peer {
            return Err(pin_mismatch(pin, &peer, true));
        }
        // A matching pin decides on its own, whatever the store says.
        return Ok(PeerInfo::new(peer, local, peers.by_key(&peer).cloned()));
    }
    match trust::check_dialled(&peers, addr, &peer) {
        Verdict::Known {
            entry,
            new_address: true,
        } if policy == TrustPolicy::Strict => Err(strict_new_address(addr, &entry)),
        Verdict::Known { entry, new_address } => {
            if new_address {
                let at = addr.to_string();
                config
                    .store
                    .update_off_runtime(move |p| {
                        p.add_addr(&peer, &at);
                        Ok(())
                    })
                    .await
                    .map_err(store_error)?;
                ui.status(format_args!(
                    "{} is now also known at {addr}",
                    crate::sanitize::line(&entry.name)
                ));
            }
            Ok(PeerInfo::new(peer, local, Some(entry)))
        }
        Verdict::Changed { entry } => {
            key_changed_alarm(ui, addr, &entry, &peer, config);
            Err(key_changed(addr, &entry))
        }
        Verdict::Unknown => {
            let safety = SafetyNumber::new(local, &peer);
            let accepted = match policy {
                TrustPolicy::Strict => return Err(strict_unknown(addr, &peer)),
                TrustPolicy::AcceptNew => Some((Verified::FirstUse, None)),
                TrustPolicy::Ask if input.can_ask() => ask(&peer, &safety, addr, input, ui).await?,
                TrustPolicy::Ask => {
                    return Err(Error::PeerRefused(format!(
                        "the peer at {addr} is not known and there is no terminal to ask you.\n  \
                         its fingerprint: {}\n  \
                         to trust it: check the fingerprint with your peer, then pass --peer FINGERPRINT, \
                         or `{} add FINGERPRINT NAME`, or dial with --trust accept-new",
                        fingerprint::grouped(&peer),
                        config.peers_command
                    )));
                }
            };
            let Some((how, name)) = accepted else {
                return Err(Error::PeerRefused(
                    "you did not accept the peer's key".into(),
                ));
            };
            let entry = remember(config, &peer, addr, how, name).await?;
            ui.status(format_args!(
                "remembered as {:?} ({}); rename with `{} rename {} NAME`",
                entry.name,
                how.describe(),
                config.peers_command,
                entry.name
            ));
            Ok(PeerInfo::new(peer, local, Some(entry)))
        }
    }
}

/// Stores a newly trusted key under a free petname; returns the stored entry. (Another schat
/// may have added it meanwhile: then the address is noted, and trust on first use upgraded.)
async fn remember(
    config: &TrustConfig,
    key: &PublicKey,
    addr: &str,
    how: Verified,
    name: Option<String>,
) -> Result<Entry> {
    // (We dialled it: recognised from now on, never admitted by that.)
    record(
        config,
        key,
        name.as_deref().unwrap_or(""),
        Some(addr),
        how,
        Admit::No,
    )
    .await
}

/// The prompt for an unknown key. `None` means the user refused.
async fn ask(
    peer: &PublicKey,
    safety: &SafetyNumber,
    addr: &str,
    input: &mut Input,
    ui: &Ui,
) -> Result<Option<(Verified, Option<String>)>> {
    // Few rows (the conversation comes next), each number once, as grids that read the same
    // on both screens.
    ui.status(format_args!(
        "new peer at {addr}: compare the safety number with them (read it aloud), or paste the \
         fingerprint they sent you"
    ));
    ui.grid("safety number:", &safety.lines());
    ui.grid("fingerprint:  ", &fingerprint::grid(peer));
    let answer = match input.ask("trust it? y / n / fingerprint: ").await {
        InputEvent::Line(line) => line,
        // Ctrl-C at the line editor: the same as the signal it stands for.
        InputEvent::Interrupted => return Err(Error::Signalled("interrupted")),
        _ => return Ok(None),
    };
    let answer = answer.trim();
    let how = match answer.to_ascii_lowercase().as_str() {
        "y" | "yes" => Verified::FirstUse,
        "" | "n" | "no" => return Ok(None),
        _ => match fingerprint::parse(answer) {
            Ok(k) if k == *peer => {
                ui.status("the fingerprint matches.");
                Verified::Fingerprint
            }
            Ok(_) => {
                ui.warn("that fingerprint does NOT match the peer's key: refusing");
                return Ok(None);
            }
            Err(e) => {
                ui.warn(format_args!("not understood ({e}): refusing"));
                return Ok(None);
            }
        },
    };
    let default = format!("peer-{}", fingerprint::short(peer));
    for _ in 0..3 {
        let name = match input
            .ask(&format!("petname for this peer [{default}]: "))
            .await
        {
            InputEvent::Line(line) => line.trim().to_string(),
            InputEvent::Interrupted => return Err(Error::Signalled("interrupted")),
            _ => break,
        };
        if name.is_empty() {
            break;
        }
        match trust::validate_name(&name) {
            Ok(()) => return Ok(Some((how, Some(name)))),
            Err(e) => ui.warn(e),
        }
    }
    Ok(Some((how, Some(default))))
}

/// What changed its key: the peer we reached at an address, or the peer we dialled by name.
#[derive(Debug, Clone, Copy)]
pub enum Changed<'a> {
    /// A known address presented another key.
    Address(&'a str),
    /// The petname we dialled presented another key.
    Petname,
}

fn key_changed_alarm(ui: &Ui, addr: &str, entry: &Entry, new: &PublicKey, config: &TrustConfig) {
    key_change_alarm(ui, Changed::Address(addr), entry, new, config);
}

/// The key-change alarm: what changed, both keys (as grids: compared digit by digit), and the
/// one command that undoes exactly what was remembered — forgetting the *address* when the key
/// at an address changed (the peer's own entry may still be right), the *petname* when the key
/// of the peer we dialled by name changed.
pub fn key_change_alarm(
    ui: &Ui,
    what: Changed<'_>,
    entry: &Entry,
    new: &PublicKey,
    config: &TrustConfig,
) {
    let name = crate::sanitize::line(&entry.name);
    let (who, forget, undo) = match what {
        Changed::Address(addr) => (
            format!("The peer at {addr}, known as {name:?}, presented a different key."),
            addr.to_string(),
            format!(
                "Only if they confirm a new key, forget this address for {name:?} (its entry \
                 stays) and dial again:"
            ),
        ),
        Changed::Petname => (
            format!("{name:?} answered with a different key than the one you know."),
            name.to_string(),
            format!(
                "Only if they confirm a new key, forget the old key of {name:?} and dial again:"
            ),
        ),
    };
    ui.alarm(&[
        "WARNING: THE PEER'S KEY HAS CHANGED. YOUR KEY AND NO MESSAGE WERE SENT.",
        &who,
        "Someone may be intercepting this connection (a man in the middle), or the peer may \
         have made a new identity. Ask them through another channel.",
    ]);
    ui.grid("known key:    ", &fingerprint::grid(&entry.key));
    ui.grid("presented key:", &fingerprint::grid(new));
    ui.alarm(&[
        &format!("(known since {}: {})", entry.when, entry.how.describe()),
        &undo,
        &format!("  {} forget {forget}", config.peers_command),
    ]);
}

/// The refusal for a petname whose key changed (not "does not match --peer": there was none).
pub fn petname_key_changed(entry: &Entry) -> Error {
    Error::PeerRefused(format!(
        "{} answered with a different key than the one you know; session aborted before your \
         key was sent",
        crate::sanitize::line(&entry.name)
    ))
}

/// Whether a recorded key is admitted to our rooms and pipes (see `trust`'s module comment).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Admit {
    /// We let it in (it redeemed our invite or code).
    Yes,
    /// We only recognise it (we dialled it).
    No,
}

/// Records a dialer that redeemed an invite: a new known peer (under `petname`, or a made-up
/// name) or an existing one, verified by invite from now on, and admitted.
pub async fn record_invited(config: &TrustConfig, key: &PublicKey, petname: &str) -> Result<Entry> {
    record_verified(config, key, petname, Verified::Invite).await
}

/// Records a dialer that proved our invite (`how`: a ticket or a spoken code): a new known peer
/// under `petname` (or a made-up name), or an existing one whose verification is upgraded;
/// admitted either way.
pub async fn record_verified(
    config: &TrustConfig,
    key: &PublicKey,
    petname: &str,
    how: Verified,
) -> Result<Entry> {
    // A dialer that proved our invite or code: we let it in.
    record(config, key, petname, None, how, Admit::Yes).await
}

/// The dialer's decision when it holds a spoken code: a known key is taken as known, a changed
/// one refused as always, an unknown one accepted for now — the code exchange decides.
pub fn dialled_for_code(
    peer: PublicKey,
    local: &PublicKey,
    addr: &str,
    config: &TrustConfig,
    ui: &Ui,
) -> Result<PeerInfo> {
    if peer == *local {
        return Err(Error::PeerRefused(
            "the listener is you: it has your own key (both use the same home)".into(),
        ));
    }
    let peers = load(config, ui)?;
    match trust::check_dialled(&peers, addr, &peer) {
        Verdict::Changed { entry } => {
            key_changed_alarm(ui, addr, &entry, &peer, config);
            Err(key_changed(addr, &entry))
        }
        Verdict::Known { entry, .. } => Ok(PeerInfo::new(peer, local, Some(entry))),
        Verdict::Unknown => Ok(PeerInfo::new(peer, local, None)),
    }
}

/// Records the listener a ticket (or a code) vouched for: verified `how`, at `addr`, under the
/// name the inviter suggested if it is a valid petname (or a made-up one; an existing entry
/// keeps its name).
pub async fn record_inviter(
    config: &TrustConfig,
    key: &PublicKey,
    addr: &str,
    name: &str,
    how: Verified,
) -> Result<Entry> {
    // The inviter's suggestion is its own claim: a name that reads as a fingerprint is not
    // taken (it would pass for a key on every screen).
    let name = if trust::validate_name(name).is_ok() && super::names::check_name(name).is_ok() {
        name
    } else {
        ""
    };
    // The listener a ticket or code vouched for: recognised, not admitted.
    record(config, key, name, Some(addr), how, Admit::No).await
}

/// A new known peer under `petname` (a made-up one when empty), or an existing one whose
/// trust-on-first-use is upgraded to `how` (a compared safety number or a fingerprint from
/// its owner stays as it is); `addr` noted when given.
async fn record(
    config: &TrustConfig,
    key: &PublicKey,
    petname: &str,
    addr: Option<&str>,
    how: Verified,
    admit: Admit,
) -> Result<Entry> {
    let (key, petname, addr) = (*key, petname.to_string(), addr.map(str::to_string));
    config
        .store
        .update_off_runtime(move |peers| {
            match peers.by_key(&key).map(|e| e.how) {
                None => {
                    let base = match petname.as_str() {
                        "" => format!("peer-{}", fingerprint::short(&key)),
                        name => name.to_string(),
                    };
                    let name = peers.free_name(&base);
                    let mut entry = Entry::new(&name, key, how);
                    entry.admitted = admit == Admit::Yes;
                    peers.add(entry)?;
                }
                Some(Verified::FirstUse) => peers.set_verified(&key, how)?,
                Some(_) => {}
            }
            if admit == Admit::Yes {
                peers.set_admitted(&key.to_hex(), true)?;
            }
            if let Some(addr) = &addr {
                // (An address another entry holds stays there: see `ticket_at_known_address`.)
                peers.note_addr(&key, addr);
            }
            peers
                .by_key(&key)
                .cloned()
                .ok_or_else(|| trust::TrustError::NoMatch(key.to_hex()))
        })
        .await
        .map_err(store_error)
}

/// The listener's decision about a dialler. (Unparseable known_peers lines are not reported
/// here, once per connection: `schat peers list` and the dialling side report them.)
pub fn admitted(
    peer: PublicKey,
    local: &PublicKey,
    pin: Option<&PublicKey>,
    allow: &Allow,
    config: &TrustConfig,
) -> Result<PeerInfo> {
    let peers = config.store.load().map_err(store_error)?;
    let entry = peers.by_key(&peer).cloned();
    if let Some(pin) = pin {
        // `--peer` names the one key to admit, whatever --allow says.
        return match *pin == peer {
            true => Ok(PeerInfo::new(peer, local, entry)),
            false => Err(pin_mismatch(pin, &peer, false)),
        };
    }
    // Known is not enough: only an entry we admitted (recognising a key we dialled never
    // lets it in).
    let admitted = match allow {
        Allow::Anyone => true,
        Allow::Known => entry.as_ref().is_some_and(|e| e.admitted),
        Allow::Keys(keys) => keys.contains(&peer),
    };
    if peer == *local {
        return Err(Error::PeerRefused(
            "that dialer is you: it has this listener's own key (both use the same home); \
             give one of them its own identity with --home DIR"
                .into(),
        ));
    }
    if !admitted {
        return Err(Error::PeerRefused(match (allow, &entry) {
            (Allow::Known, Some(e)) => format!(
                "refused {} ({}): you know its key, but it is not admitted to your rooms; to \
                 admit it: `{} admit {}`",
                crate::sanitize::line(&e.name),
                fingerprint::short(&peer),
                config.peers_command,
                crate::sanitize::line(&e.name)
            ),
            (Allow::Known, None) => format!(
                "refused an unknown key {} (only known peers are admitted): to admit it, check \
                 the fingerprint with its owner, then `{} add FINGERPRINT NAME`; or listen \
                 with --allow anyone",
                fingerprint::grouped(&peer),
                config.peers_command
            ),
            _ => format!("refused {} (allowed: {allow})", fingerprint::grouped(&peer)),
        }));
    }
    Ok(PeerInfo::new(peer, local, entry))
}
