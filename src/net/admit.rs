//! Deciding about a connection once its handshake is done: by its key, by an invite it
//! redeems (ticket or spoken code), or by the host's answer to its knock. Whatever the
//! transport: it works on the session's byte streams only.

use super::stream::{Reader, Writer};
use crate::error::{Error, Result};
use crate::handshake::{Established, Watch};
use crate::keys::{Identity, PublicKey};
use crate::message::Message;
use crate::session::room::{self, Arrival, Connection};
use crate::session::verify;
use crate::session::{self, Role, Settings};
use crate::trust::Allow;
use std::time::Duration;

/// What every accepted connection's task shares: who we are, how we admit, whether unknown
/// dialers may knock (a host at its terminal).
pub(super) struct Accepting {
    pub identity: Identity,
    pub role: Role,
    pub settings: Settings,
    pub knock: bool,
    /// Spoken-code exchanges in flight.
    pub code_attempts: CodeAttempts,
    /// The room's members that could resume (a RESUME from another key is admitted, or
    /// not, as any dialer).
    pub resumable: room::ResumableKeys,
}

/// One connection up to the point where it joins the room (or is turned away).
pub(super) async fn handshake_and_admit(
    reader: Reader,
    writer: Writer,
    from: &str,
    source: &str,
    accepting: &Accepting,
    watch: &impl Watch,
) -> Connection<Reader, Writer> {
    let Accepting {
        identity,
        role,
        settings,
        knock,
        ..
    } = accepting;
    let knock = *knock;
    let established =
        match session::establish_watched(reader, writer, identity, settings, watch).await {
            Ok(established) => established,
            Err(e) => return Connection::Failed(format!("connection from {from}: {e}")),
        };
    let Role::Listener { allow, .. } = role else {
        return Connection::Failed("internal error: not a listener".into());
    };
    let mut established = established;
    let (peer, local) = (established.peer, established.local);
    // A dialer may hold an invite: it sends INVITE (or, for a spoken code, PAKE) right after
    // the handshake, before its HELLO, so its first message is read (briefly) before
    // deciding. An invite is redeemed here; anything else is kept for the session. A key that
    // is admitted anyway is not made to wait unless invites are pending (it may be redeeming
    // one to be verified). (A pipe admits by key alone.)
    let mut first = None;
    let by_key = verify::admitted(peer, &local, settings.pin.as_ref(), allow, &settings.trust);
    // A connection resuming a session (PROTOCOL.md §4.11, §4.12) was admitted when the
    // session began: it is let in only if it holds that session's token, with the same key.
    let keeps = |key: &PublicKey| {
        accepting
            .resumable
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .contains(key)
    };
    let read_first = match settings.pipe {
        None => by_key.is_err() || invites_pending(settings),
        // A pipe admits by key alone, but a dialer may be resuming (PROTOCOL.md §4.12): a
        // RESUME for the pipe kept goes to it, any other is told `gone:`.
        Some(_) => true,
    };
    // (A chat's self-dial is decided by its key; a pipe's may be resuming too.)
    if read_first && (peer != local || settings.pipe.is_some()) {
        let wait = FIRST_MESSAGE_WAIT.min(settings.handshake_timeout);
        match tokio::time::timeout(wait, established.recv.recv()).await {
            Ok(Ok(Some(Message::Invite(secret)))) => {
                if let Some(why) = invites_closed(peer, &local, settings, allow, &by_key) {
                    return refuse_invite(established, from, why).await;
                }
                return redeem(established, &secret, from, settings, by_key).await;
            }
            Ok(Ok(Some(Message::Pake {
                nameplate: Some(nameplate),
                message,
            }))) => {
                if let Some(why) = invites_closed(peer, &local, settings, allow, &by_key) {
                    return refuse_invite(established, from, why).await;
                }
                return by_code(established, nameplate, &message, from, accepting).await;
            }
            Ok(Ok(Some(msg))) => first = Some(msg.into_owned()),
            Ok(Ok(None)) => {
                return Connection::Failed(format!(
                    "connection from {from} closed right after the handshake"
                ));
            }
            Ok(Err(e)) => return Connection::Failed(format!("connection from {from}: {e}")),
            // Silent for now: decided by its key.
            Err(_) => {}
        }
    }
    if matches!(first, Some(Message::Resume { .. }))
        && settings.pin.is_none_or(|pin| pin == peer)
        && keeps(&peer)
        && let Ok(info) = verify::admitted(peer, &local, None, &Allow::Anyone, &settings.trust)
    {
        return Connection::Arrived(Box::new(Arrival {
            established,
            info,
            address: from.to_string(),
            first,
        }));
    }
    // Knocking (allow = known, a host at its terminal): an admitted key comes in, any other
    // knocks. One look at known_peers decides both.
    if knock
        && settings.pin.is_none()
        && peer != local
        && let Ok(info) = verify::admitted(peer, &local, None, &Allow::Anyone, &settings.trust)
    {
        // Known but not admitted (a key we dialled) knocks too: recognising is not admitting.
        let knocks = !info.entry.as_ref().is_some_and(|e| e.admitted);
        let arrival = Box::new(Arrival {
            established,
            info,
            address: from.to_string(),
            first,
        });
        return match knocks {
            true => Connection::Knock(arrival, source.to_string()),
            false => Connection::Arrived(arrival),
        };
    }
    match by_key {
        Ok(info) => Connection::Arrived(Box::new(Arrival {
            established,
            info,
            address: from.to_string(),
            first,
        })),
        Err(e) => {
            room::refuse(established).await;
            let why = match e {
                Error::PeerRefused(why) => why,
                other => other.to_string(),
            };
            Connection::Failed(format!("refused the peer from {from}: {why}"))
        }
    }
}

/// Whether any invite (ticket or code) is open, so that a dialer may be redeeming one.
fn invites_pending(settings: &Settings) -> bool {
    let now = crate::invite::unix_now();
    settings.trust.invites().load().is_ok_and(|all| {
        all.iter()
            .any(|p| p.state == crate::invite::store::State::Open && p.expires > now)
    })
}

/// How long a listener waits for a new connection's first message before deciding by its key
/// alone (an honest dialer sends it with, or right after, the last handshake message).
const FIRST_MESSAGE_WAIT: Duration = Duration::from_secs(5);

/// A dialer proved an invite's secret: redeemed (one use, atomically), it is admitted and
/// known as verified by invite; otherwise it is told why in a QUIT, unless its key alone
/// admits it (a known peer with a stale ticket).
async fn redeem(
    established: Established<Reader, Writer>,
    secret: &[u8; crate::invite::ticket::SECRET_LEN],
    from: &str,
    settings: &Settings,
    // What its key alone would get it (invites_closed has been checked).
    by_key: Result<verify::PeerInfo>,
) -> Connection<Reader, Writer> {
    let peer = established.peer;
    let trust = &settings.trust;
    let secret = zeroize::Zeroizing::new(*secret);
    let now = crate::invite::unix_now();
    let redeemed =
        invites_blocking(move |invites| invites.redeem(&secret, now), trust.invites()).await;
    match redeemed {
        Ok(redeemed) => match verify::record_invited(trust, &peer, &redeemed.petname).await {
            Ok(entry) => admit_invited(established, from, trust, entry, redeemed.id).await,
            Err(e) => {
                refuse_invite(
                    established,
                    from,
                    format!("the invite could not be recorded: {e}"),
                )
                .await
            }
        },
        Err(why) => match by_key {
            Ok(info) => {
                // Already admitted by its key: the stale ticket changes nothing.
                Connection::Arrived(Box::new(Arrival {
                    established,
                    info,
                    address: from.to_string(),
                    first: None,
                }))
            }
            Err(_) => refuse_invite(established, from, why.to_string()).await,
        },
    }
}

/// Why an invite cannot admit this dialer whatever it holds: a `--peer` pin names another key,
/// `--allow FILE` lists the only keys to admit, or it is our own key. (Invites open a listener
/// that admits known peers, not one restricted to named keys.)
fn invites_closed(
    peer: PublicKey,
    local: &PublicKey,
    settings: &Settings,
    allow: &Allow,
    by_key: &Result<verify::PeerInfo>,
) -> Option<String> {
    let restricted = settings.pin.is_some_and(|pin| pin != peer)
        || (matches!(allow, Allow::Keys(_)) && by_key.is_err())
        || peer == *local;
    if !restricted {
        return None;
    }
    Some(match by_key {
        Err(Error::PeerRefused(why)) => why.clone(),
        Err(e) => e.to_string(),
        Ok(_) => "not admitted".into(),
    })
}

/// A dialer holding a spoken code: the PAKE (PROTOCOL.md §4.8). Its message came first; ours
/// goes back, then its confirmation must be right before ours is sent. A wrong one counts
/// against the code (burned at the third) and both sides stop, loudly.
///
/// Probing must not tell which nameplates are in use: an unknown nameplate, and one whose code
/// was used, revoked, expired or burned, run the same exchange with a code nobody has and get
/// the same answer as a wrong guess at an open one, sent before anything is written to disk
/// (so the answer takes as long whatever the nameplate). Only the log says which it was.
async fn by_code(
    mut established: Established<Reader, Writer>,
    nameplate: u16,
    theirs: &[u8],
    from: &str,
    accepting: &Accepting,
) -> Connection<Reader, Writer> {
    use crate::invite::code::{Code, Exchange, PAKE_LEN, Side};
    let settings = &accepting.settings;
    let peer = established.peer;
    let trust = &settings.trust;
    let invites = trust.invites();
    let now = crate::invite::unix_now();
    let looked_up = invites.code(nameplate, now);
    // Guesses in flight count against the code's tries before they are recorded, so that
    // parallel connections cannot make more guesses than the code allows.
    let attempt = match &looked_up {
        Ok((_, failures)) => accepting.code_attempts.start(nameplate, *failures),
        Err(_) => None,
    };
    let (code, why_not) = match (looked_up, &attempt) {
        (Ok((words, _)), Some(_)) => match Code::from_parts(nameplate, &words) {
            Ok(code) => (code, None),
            Err(_) => (
                Code::generate(nameplate),
                Some("the code on file is damaged".into()),
            ),
        },
        (Ok(_), None) => (
            Code::generate(nameplate),
            Some("its last tries are already being used by other connections".to_string()),
        ),
        (Err(why), _) => (Code::generate(nameplate), Some(why.to_string())),
    };
    let (exchange, ours) = Exchange::start(&code, &established.handshake_hash, Side::Listener);
    let mut message = [0u8; PAKE_LEN];
    message.copy_from_slice(&ours);
    let pake = Message::Pake {
        nameplate: None,
        message,
    };
    if let Err(e) = established.send.send(&pake).await {
        return Connection::Failed(format!("connection from {from}: {e}"));
    }
    let confirmations = exchange.finish(theirs);
    let wait = FIRST_MESSAGE_WAIT.min(settings.handshake_timeout);
    // Only a confirmation that does not check is a wrong guess: without one the dialer learned
    // nothing about the code (it never got ours), so nothing is counted.
    let proven = match tokio::time::timeout(wait, established.recv.recv()).await {
        Ok(Ok(Some(Message::Confirm(mac)))) => {
            confirmations.as_ref().is_some_and(|c| c.check(&mac))
        }
        Ok(Ok(Some(Message::Quit(_)) | None)) => {
            return Connection::Failed(format!(
                "connection from {from} left during the code exchange"
            ));
        }
        Ok(Ok(Some(other))) => {
            let why = format!("{} during the code exchange", other.name());
            return refuse_invite(established, from, why).await;
        }
        Ok(Err(e)) => return Connection::Failed(format!("connection from {from}: {e}")),
        Err(_) => {
            let why = "no confirmation of the code in time".to_string();
            return refuse_invite(established, from, why).await;
        }
    };
    if !proven || why_not.is_some() {
        // The same words for every case, on the wire before the disk is touched.
        let told = format!(
            "WRONG CODE for {nameplate}: a typo, someone in the middle, or a code that is no \
             longer valid here (used, revoked, expired, or burned after 3 wrong tries)"
        );
        let Established { mut send, .. } = established;
        let _ = send.quit(&format!("refused: {told}")).await;
        drop(send);
        let log = match why_not {
            Some(why) => format!("WRONG CODE for {nameplate}: {why}"),
            None => {
                let outcome = invites_blocking(
                    move |invites| invites.code_outcome(nameplate, false, now),
                    invites,
                )
                .await;
                match outcome {
                    Err(why) => format!(
                        "WRONG CODE for {nameplate} (a typo, or someone in the middle): {why}"
                    ),
                    Ok(_) => format!("WRONG CODE for {nameplate}"),
                }
            }
        };
        drop(attempt);
        return Connection::Failed(format!("refused the peer from {from}: {log}"));
    }
    let outcome = invites_blocking(
        move |invites| invites.code_outcome(nameplate, true, now),
        invites,
    )
    .await;
    drop(attempt);
    match outcome {
        Ok(redeemed) => {
            let Some(confirmations) = confirmations else {
                return refuse_invite(established, from, "internal error".into()).await;
            };
            let how = crate::trust::Verified::Code;
            let entry = match verify::record_verified(trust, &peer, &redeemed.petname, how).await {
                Ok(entry) => entry,
                Err(e) => {
                    let why = format!("the code could not be recorded: {e}");
                    return refuse_invite(established, from, why).await;
                }
            };
            let confirm = Message::Confirm(confirmations.ours);
            if let Err(e) = established.send.send(&confirm).await {
                return Connection::Failed(format!("connection from {from}: {e}"));
            }
            admit_invited(established, from, trust, entry, format!("code {nameplate}")).await
        }
        // Spent by another connection meanwhile (a race for its last use).
        Err(why) => refuse_invite(established, from, why.to_string()).await,
    }
}

/// Runs a change of the invites file off the async runtime (it takes a file lock and fsyncs).
async fn invites_blocking<T: Send + 'static>(
    change: impl FnOnce(&crate::invite::Invites) -> std::result::Result<T, crate::invite::Refusal>
    + Send
    + 'static,
    invites: crate::invite::Invites,
) -> std::result::Result<T, crate::invite::Refusal> {
    match tokio::task::spawn_blocking(move || change(&invites)).await {
        Ok(outcome) => outcome,
        Err(e) => Err(crate::invite::Refusal::Store(e.to_string())),
    }
}

/// Code exchanges in flight per nameplate: together with the failures on file, never more
/// than a code's tries ([`crate::invite::store::MAX_CODE_FAILURES`]).
#[derive(Debug, Default)]
pub(super) struct CodeAttempts(std::sync::Mutex<std::collections::HashMap<u16, u32>>);

/// One exchange in flight; ends when dropped.
pub(super) struct Attempt<'a> {
    attempts: &'a CodeAttempts,
    nameplate: u16,
}

impl CodeAttempts {
    /// Starts an exchange for `nameplate`, whose code has failed `failures` times already;
    /// `None` when the tries left are all in flight.
    fn start(&self, nameplate: u16, failures: u32) -> Option<Attempt<'_>> {
        let mut map = self.0.lock().unwrap_or_else(|p| p.into_inner());
        let in_flight = map.entry(nameplate).or_default();
        if failures + *in_flight >= crate::invite::store::MAX_CODE_FAILURES {
            return None;
        }
        *in_flight += 1;
        Some(Attempt {
            attempts: self,
            nameplate,
        })
    }
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut map = self.attempts.0.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.nameplate) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.nameplate);
            }
        }
    }
}

/// A dialer whose invite (ticket or code, named `invite`) was honoured and recorded as `entry`:
/// admitted, whatever the listener's --allow.
async fn admit_invited(
    established: Established<Reader, Writer>,
    from: &str,
    trust: &verify::TrustConfig,
    entry: crate::trust::Entry,
    invite: String,
) -> Connection<Reader, Writer> {
    let (peer, local) = (established.peer, established.local);
    let mut info = match verify::admitted(peer, &local, None, &Allow::Anyone, trust) {
        Ok(info) => info,
        Err(e) => return refuse_invite(established, from, e.to_string()).await,
    };
    info.invite = Some(invite);
    info.entry = Some(entry);
    Connection::Arrived(Box::new(Arrival {
        established,
        info,
        address: from.to_string(),
        first: None,
    }))
}

/// Turns away a dialer whose invite was not honoured, saying why (one line on both sides).
async fn refuse_invite(
    established: Established<Reader, Writer>,
    from: &str,
    why: String,
) -> Connection<Reader, Writer> {
    let log = why.clone();
    refuse_invite_logged(established, from, why, log).await
}

/// As [`refuse_invite`], with more in our log than the dialer is told.
async fn refuse_invite_logged(
    established: Established<Reader, Writer>,
    from: &str,
    why: String,
    log: String,
) -> Connection<Reader, Writer> {
    let Established { mut send, .. } = established;
    let _ = send.quit(&format!("refused: {why}")).await;
    Connection::Failed(format!("refused the peer from {from}: {log}"))
}
