//! One conversation on one connection, over any byte stream: handshake, key check, welcome,
//! then full-duplex chat until someone says QUIT.
//!
//! Reading from the peer, reading the user's input and writing to the peer all proceed at
//! once: a `select!` loop owns the receiving half and the input, and a writer task owns the
//! sending half behind a bounded queue, so a slow network never stops us from receiving.

mod chat;
pub mod code;
pub mod command;
pub mod input;
pub mod keepalive;
pub mod member;
pub mod names;
pub mod opening;
mod peer;
pub mod pipe;
pub mod room;
mod room_e2e;
mod room_view;
pub mod verify;

use crate::error::{Error, Result};
use crate::fingerprint;
use crate::framed::Detach;
use crate::framed::{FrameReader, FrameWriter};
use crate::handshake::{self, Established};
use crate::keys::{Identity, PublicKey};
use crate::signals::Interrupts;
use crate::trust::{Allow, Verified};
use crate::ui::{self, Ui};
use input::Input;
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite};
use verify::{PeerInfo, TrustConfig, TrustPolicy};

/// The welcome a listener sends unless told otherwise.
pub const DEFAULT_WELCOME: &str = "Welcome to schat! Type `quit` to leave.";

/// The QUIT reason of a side that refuses the peer's key. The `refused:` prefix is how the
/// other side tells a refusal from an ordinary goodbye (PROTOCOL.md §3).
pub const REFUSAL: &str = "refused: your key was not accepted";

/// What a resume attempt that names no session we keep is told (PROTOCOL.md §4.11).
pub(crate) const GONE: &str =
    "gone: no such session here (it ended, expired, or was never resumable)";

/// What a QUIT's reason says (PROTOCOL.md §5): empty is a goodbye; `refused:`, `busy:`,
/// `mismatch:` and `unanswered:` mean the session never started (nothing we sent was taken); anything else means
/// the peer gave up on the session (an abort: it did not end cleanly).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum QuitReason<'a> {
    Goodbye,
    Refused(&'a str),
    Aborted(&'a str),
}

impl<'a> QuitReason<'a> {
    /// Classifies a QUIT reason.
    pub fn of(reason: &'a str) -> Self {
        if reason.is_empty() {
            QuitReason::Goodbye
        } else if ["refused:", "busy:", "mismatch:", "unanswered:"]
            .iter()
            .any(|p| reason.starts_with(p))
        {
            QuitReason::Refused(reason)
        } else {
            QuitReason::Aborted(reason)
        }
    }

    /// The error this ending is for us, if any.
    pub fn error(self) -> Option<Error> {
        match self {
            QuitReason::Goodbye => None,
            QuitReason::Refused(why) => Some(Error::RefusedByPeer(
                crate::sanitize::line(why).into_owned(),
            )),
            QuitReason::Aborted(why) => {
                Some(Error::PeerAborted(crate::sanitize::line(why).into_owned()))
            }
        }
    }
}

/// How long we keep reading after our QUIT, so that it reaches the peer before we close.
pub(crate) const LINGER: Duration = Duration::from_secs(2);

/// What every session of one run (a dial, a listener's whole life) shares: who we are, how
/// sessions go, and where they are shown. Nothing in it changes during the run.
#[derive(Clone, Copy)]
pub struct Run<'a> {
    pub identity: &'a Identity,
    pub settings: &'a Settings,
    pub ui: &'a Ui,
}

/// The person (or script) behind the run: what it types and the signals it sends. One session
/// at a time reads them, so they are lent mutably.
pub struct User<'a> {
    pub input: &'a mut Input,
    pub interrupts: &'a mut Interrupts,
}

/// Which side of the connection we are.
#[derive(Debug, Clone)]
pub enum Role {
    /// We connected (Noise initiator) to `addr` (host:port as dialled); we expect a WELCOME
    /// first, and check the listener's key against known_peers under `policy`.
    Dialer { addr: String, policy: TrustPolicy },
    /// We accepted (Noise responder); we admit dialers per `allow` and send `welcome` first.
    Listener { welcome: String, allow: Allow },
}

/// Per-session settings.
#[derive(Debug, Clone)]
pub struct Settings {
    /// If set, the only peer key we accept.
    pub pin: Option<PublicKey>,
    /// Deadline for the whole handshake.
    pub handshake_timeout: Duration,
    /// Known peers.
    pub trust: TrustConfig,
    /// After this much silence from the peer we send a PING; after three times this, with
    /// nothing received, the peer is declared gone.
    pub keepalive: Duration,
    /// Pipe mode (raw bytes between stdin and stdout) instead of chat.
    pub pipe: Option<pipe::PipeOptions>,
    /// How long a dropped chat is kept to resume (PROTOCOL.md §4.11); `None`: it is not.
    pub resume_grace: Option<Duration>,
    /// Our display name, announced in HELLO (empty: none; checked by [`names::check_name`]).
    pub name: String,
    /// Dialling with a ticket: its secret when it is an invite (sent in INVITE before our
    /// HELLO), the name the inviter suggested for itself, where to dial. `pin` holds its key.
    pub ticket: Option<TicketUse>,
    /// Dialling with a spoken code: the listener's key is accepted only once it proved the
    /// code (then remembered as verified by code).
    pub code: Option<crate::invite::code::Code>,
    /// Dialling a known peer by its petname: its entry (its key is then `pin`; another key
    /// answering is a key change, not a pin mismatch).
    pub petname: Option<crate::trust::Entry>,
    /// Files offered to us: where they go, and whether they are accepted without asking.
    pub files: crate::files::Policy,
    /// Files to offer as soon as the chat opens (`--send`, `schat send`); the chat then ends
    /// once each is delivered or has failed.
    pub send: Vec<std::path::PathBuf>,
}

/// A ticket being used by a dialer: an invite (with a secret), or an address.
#[derive(Clone)]
pub struct TicketUse {
    pub secret: Option<zeroize::Zeroizing<[u8; crate::invite::ticket::SECRET_LEN]>>,
    /// The inviter's suggestion for our petname for it.
    pub name: String,
    /// Where to dial: TCP addresses in order, and the iroh endpoint's parts.
    pub addrs: Vec<crate::invite::TicketAddr>,
    /// What known_peers keeps as its address when it has an iroh part: the ticket without
    /// its secret (so that `dial PETNAME` can use iroh again).
    pub reach: Option<String>,
}

impl std::fmt::Debug for TicketUse {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TicketUse")
            .field("secret", &self.secret.as_ref().map(|_| "(redacted)"))
            .field("name", &self.name)
            .field("addrs", &self.addrs)
            .finish()
    }
}

/// A new connection, on its way (see [`Redial`]).
pub type Redialling<'a, R, W> =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Established<R, W>>> + 'a>>;

/// A dialer's way back to the same listener after its connection dropped (PROTOCOL.md
/// §4.11). `net` implements it, so that sockets stay there; the chat loop decides when.
pub trait Redial<R, W> {
    /// One attempt: a new connection over the same routes, its handshake complete and the
    /// listener proven to hold `key` (the session's), within the handshake deadline.
    fn redial<'a>(&'a mut self, key: &'a PublicKey) -> Redialling<'a, R, W>;
}

/// Whether a chat that ended with `e` may be resumed (PROTOCOL.md §4.11): the connection was
/// lost, nobody ended the session (a QUIT, a refusal, a protocol error are final).
pub(crate) fn chat_cut(e: &Error) -> bool {
    match e {
        // Our own output failing (a closed stdout) is not the network.
        Error::Io { context, .. } => context != OUR_OUTPUT,
        _ => matches!(
            e,
            Error::ConnectionCut
                | Error::PeerSilent(_)
                | Error::Timeout(..)
                | Error::Protocol(crate::error::ProtocolError::TruncatedFrame)
        ),
    }
}

/// What a failed write of what we show is called (an error of ours, not of the network).
pub(crate) const OUR_OUTPUT: &str = "writing to stdout";

/// Keepalive interval unless configured.
pub const DEFAULT_KEEPALIVE: Duration = Duration::from_secs(30);

/// How a session ended without error.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ended {
    /// We said QUIT (typed `quit`, Ctrl-D, or a signal).
    LocalQuit,
    /// The peer said QUIT.
    PeerQuit,
}

/// Runs the handshake on a connected stream, within the configured deadline.
/// `Ok(None)` means the user interrupted it. A dialer's `check` sees the listener's key before
/// our own is sent (see [`handshake::initiate`]); a listener's is not called.
pub async fn establish<R, W>(
    reader: R,
    writer: W,
    identity: &Identity,
    role: &Role,
    settings: &Settings,
    interrupts: &mut Interrupts,
    check: impl FnOnce(&PublicKey) -> Result<()>,
) -> Result<Option<Established<R, W>>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (reader, writer) = (FrameReader::new(reader), FrameWriter::new(writer));
    let handshake = async {
        match role {
            Role::Dialer { .. } => handshake::initiate(identity, reader, writer, check).await,
            Role::Listener { .. } => handshake::respond(identity, reader, writer).await,
        }
    };
    within_deadline(handshake, settings.handshake_timeout, interrupts).await
}

/// A listener's handshake on an accepted stream, within the configured deadline, with its
/// admission control watching (see [`handshake::Watch`]).
pub async fn establish_watched<R, W>(
    reader: R,
    writer: W,
    identity: &Identity,
    settings: &Settings,
    watch: &impl handshake::Watch,
) -> Result<Established<R, W>>
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let (reader, writer) = (FrameReader::new(reader), FrameWriter::new(writer));
    let handshake = handshake::respond_watched(identity, reader, writer, watch);
    let mut never = Interrupts::none();
    within_deadline(handshake, settings.handshake_timeout, &mut never)
        .await?
        .ok_or_else(|| Error::Internal("interrupted".into()))
}

async fn within_deadline<T>(
    handshake: impl std::future::Future<Output = Result<T>>,
    deadline: Duration,
    interrupts: &mut Interrupts,
) -> Result<Option<T>> {
    tokio::select! {
        result = tokio::time::timeout(deadline, handshake) => match result {
            Ok(established) => established.map(Some),
            Err(_) => Err(Error::Timeout("the handshake", deadline.as_secs())),
        },
        _ = interrupts.recv() => Ok(None),
    }
}

/// Everything after the handshake: decide about the peer's key, welcome, chat.
pub async fn converse<R, W>(
    established: Established<R, W>,
    remote: Option<&str>,
    role: &Role,
    run: &Run<'_>,
    user: &mut User<'_>,
    redial: Option<&mut dyn Redial<R, W>>,
) -> Result<Ended>
where
    R: AsyncRead + Unpin + Detach + Send + 'static,
    W: AsyncWrite + Unpin + Detach + Send + 'static,
{
    let Run { settings, ui, .. } = *run;
    let (peer, local) = (established.peer, established.local);
    let decision = match role {
        // A spoken code decides about a new key itself (below): no question, nothing stored yet.
        Role::Dialer { addr, .. } if settings.code.is_some() => {
            verify::dialled_for_code(peer, &local, addr, &settings.trust, ui)
        }
        // The question may wait for a long time: a signal meanwhile ends the dial at once,
        // with nothing sent (not even a QUIT) and nothing remembered.
        Role::Dialer { addr, policy } => {
            let dialled = verify::Dialled {
                peer,
                local: &local,
                addr,
                pin: settings.pin.as_ref(),
                policy: *policy,
            };
            let deciding = verify::dialled(&dialled, &settings.trust, user.input, ui);
            match tokio::select! {
                decided = deciding => decided,
                name = user.interrupts.recv() => Err(Error::Signalled(name)),
            } {
                Err(e @ Error::Signalled(_)) => return Err(e),
                decided => decided,
            }
        }
        Role::Listener { allow, .. } => {
            verify::admitted(peer, &local, settings.pin.as_ref(), allow, &settings.trust)
        }
    };
    let mut established = established;
    // A spoken code (the listener must prove it before anything else) or a ticket (the pin
    // matched) vouched for this key: remember it as verified that way.
    let vouched = match (role, &settings.code, &settings.ticket) {
        (Role::Dialer { addr, .. }, Some(code), _) if decision.is_ok() => {
            tokio::select! {
                proven = code::prove(&mut established, code, settings.handshake_timeout, ui) => proven?,
                name = user.interrupts.recv() => return Err(Error::Signalled(name)),
            }
            Some((
                addr,
                "",
                Verified::Code,
                "the code matched: the listener's key",
            ))
        }
        (Role::Dialer { addr, .. }, None, Some(ticket)) => Some((
            addr,
            ticket.name.as_str(),
            // A ticket without a secret is an address with a key: as good as `--peer KEY`.
            match ticket.secret {
                Some(_) => Verified::Invite,
                None => Verified::Pinned,
            },
            "the listener's key is the one in your ticket:",
        )),
        _ => None,
    };
    let decision = match (decision, vouched) {
        (Ok(mut info), Some((addr, name, how, said))) => {
            verify::record_inviter(&settings.trust, &peer, addr, name, how)
                .await
                .map(|entry| {
                    ui.status(format_args!(
                        "{said} {}; remembered as {:?}",
                        fingerprint::grouped(&peer),
                        entry.name
                    ));
                    info.label = entry.name.clone();
                    info.entry = Some(entry);
                    info
                })
        }
        (decision, _) => decision,
    };
    let mut info = match decision {
        Ok(info) => info,
        Err(e) => {
            refuse(established, REFUSAL).await;
            return Err(e);
        }
    };
    info.address = remote.map(str::to_owned);
    let comeback = match redial {
        Some(redial) => pipe::Comeback::Dial(redial),
        None => pipe::Comeback::Never,
    };
    proceed(established, info, role, run, user, comeback, None).await
}

/// The session with a peer we decided to talk to: say so, then pipe or chat.
pub async fn proceed<R, W>(
    established: Established<R, W>,
    info: PeerInfo,
    role: &Role,
    run: &Run<'_>,
    user: &mut User<'_>,
    comeback: pipe::Comeback<'_, R, W>,
    first: Option<crate::message::Message<'static>>,
) -> Result<Ended>
where
    R: AsyncRead + Unpin + Detach + Send + 'static,
    W: AsyncWrite + Unpin + Detach + Send + 'static,
{
    let Run { settings, ui, .. } = *run;
    // Only now, with the peer's key accepted, is the session "established" for the user: a
    // refused key never gets this far.
    if ui.mode() == ui::Mode::Interactive {
        // One row: a new key's numbers were just shown with its question, a known one's are
        // a command away; the conversation comes next.
        ui.status(format_args!(
            "secure session established with {}; /verify shows the safety number",
            info.trust_line()
        ));
    } else {
        // Scripts and logs get the numbers on the record.
        ui.status(format_args!(
            "secure session established; peer fingerprint: {}",
            fingerprint::grouped(&info.key)
        ));
        ui.status(format_args!("peer: {}", info.trust_line()));
        // (Pipe mode has no commands to show it again.)
        let again = if settings.pipe.is_some() {
            ""
        } else {
            " (/verify shows it again)"
        };
        ui.status(format_args!("safety number: {}{again}", info.safety()));
    }
    ui.connected(
        &info.speaker(),
        &info.safety().grouped(),
        info.address.as_deref(),
    );
    if let Some(options) = settings.pipe {
        let listener = matches!(role, Role::Listener { .. });
        let resuming = pipe::Resuming {
            comeback,
            grace: settings.resume_grace,
            resumed_within: settings.handshake_timeout,
        };
        let start = pipe::Start {
            established,
            listener,
            first,
        };
        pipe::run(
            start,
            settings.keepalive,
            options,
            resuming,
            ui,
            user.interrupts,
        )
        .await?;
        return Ok(Ended::LocalQuit);
    }
    let redial = match comeback {
        pipe::Comeback::Dial(redial) => Some(redial),
        _ => None,
    };
    chat::chat(established, role, &info, run, user, redial).await
}

/// Says goodbye to a peer we will not talk to, without reading anything it sent.
pub(crate) async fn refuse<R, W>(established: Established<R, W>, reason: &str)
where
    R: AsyncRead + Unpin,
    W: AsyncWrite + Unpin,
{
    let Established {
        mut recv, mut send, ..
    } = established;
    if send.quit(reason).await.is_ok() {
        let _ = tokio::time::timeout(LINGER, recv.drain()).await;
    }
}
