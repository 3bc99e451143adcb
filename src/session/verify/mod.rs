//! Deciding whether to talk to the peer, right after the handshake and before any chat message
//! is sent or shown: `--peer` pins, known_peers, the trust policy, and the listener's allowlist.

use super::input::{Input, InputEvent};
use crate::error::{Error, Result};
use crate::fingerprint;
use crate::keys::PublicKey;
use crate::safety::SafetyNumber;
use crate::trust::{self, Allow, Entry, Verdict, Verified};
use crate::ui::Ui;

mod alarm;
pub use super::peer::{PeerInfo, TrustConfig};
use alarm::ask;
use alarm::key_changed_alarm;
pub use alarm::{Changed, key_change_alarm, petname_key_changed};

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
