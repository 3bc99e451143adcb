//! `schat listen`: bind, say where we can be reached (with `--p2p`, a ticket that carries the
//! iroh address too), then host a room, or serve one pipe session.

use super::accept::accept_loop;
use super::admit::Accepting;
use super::iroh::{self, P2pOptions, Relays};
use super::stream::{Reader, Writer};
use super::{Address, DEFAULT_PORT, GateLimits, delivered, tcp, user_timeout};
use crate::error::{Error, Result};
use crate::invite::ticket::{Ticket, TicketAddr};
use crate::keys::Identity;
use crate::message::Message;
use crate::session::room::{self, Arrival, Connection, RoomOptions};
use crate::session::{self, Role, Run, Settings, User};
use crate::trust::Allow;
use crate::ui::Ui;
use std::sync::Arc;
use std::time::Duration;
use tokio::net::TcpListener;
use tokio::sync::mpsc;

/// What `schat listen` was asked to do.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Where to listen (`None`: all interfaces, default port).
    pub addr: Option<String>,
    /// Exit after the first session instead of waiting for the next peer.
    pub once: bool,
    /// Take no part in the room: only admit members and pass on what they seal.
    pub relay_only: bool,
    /// The greeting sent to each peer.
    pub welcome: String,
    /// Which dialers to admit.
    pub allow: Allow,
    /// Members of the room at once.
    pub max_peers: usize,
    /// How long a knock waits for the host's answer.
    pub knock_wait: Duration,
    /// Limits on connections that are still handshaking.
    pub gate: GateLimits,
    /// Also reachable over iroh (`--p2p`).
    pub p2p: Option<P2pOptions>,
}

/// The file in the schat home where a `listen --p2p` leaves its address (a ticket without a
/// secret), for `schat invite` to include.
pub fn p2p_address_file(settings: &Settings) -> std::path::PathBuf {
    crate::fsutil::parent_dir(settings.trust.store.path()).join("p2p-address")
}

/// `schat listen`: host a room of peers (chat), or serve one pipe session.
pub async fn listen(options: &ListenOptions, run: &Run<'_>, user: &mut User<'_>) -> Result<()> {
    let Run {
        identity,
        settings,
        ui,
    } = *run;
    let addr = match &options.addr {
        Some(text) => Address::parse(text).map_err(|e| Error::Usage(format!("{text:?}: {e}")))?,
        None => Address {
            host: "0.0.0.0".into(),
            port: DEFAULT_PORT,
        },
    };
    let listener = tcp::bind(&addr).await?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    ui.status(format_args!("listening on {local}"));
    let endpoint = match &options.p2p {
        Some(p2p) => {
            let endpoint = Arc::new(iroh::P2p::start(identity, p2p, true).await?);
            let left = announce(&endpoint, p2p, local, identity, settings, ui).await;
            Some((endpoint, left))
        }
        None => None,
    };
    ui.status(format_args!(
        "your fingerprint: {}",
        crate::fingerprint::grouped(identity.public())
    ));
    // A `--peer` pin decides alone (the allowlist is not consulted).
    match &settings.pin {
        Some(pin) => ui.status(format_args!(
            "admitting only {} (--peer)",
            crate::fingerprint::short(pin)
        )),
        None => ui.status(format_args!("admitting {}", options.allow)),
    }
    if matches!(options.allow, Allow::Known) && settings.pin.is_none() {
        migrate_admission(settings, ui).await;
    }
    let endpoint_used = endpoint.as_ref().map(|(e, _)| e.clone());
    let result = serve(&listener, endpoint_used, options, run, user).await;
    let Some((endpoint, left)) = endpoint else {
        return result;
    };
    // Only our own address, and only if no other listener has replaced it since.
    let file = p2p_address_file(settings);
    if let Some((text, _lock)) = &left
        && std::fs::read_to_string(&file).ok().as_ref() == Some(text)
    {
        let _ = std::fs::remove_file(&file);
    }
    drop(left);
    // A pipe's last bytes get as long as TCP would keep trying; a room's members have had
    // their goodbyes.
    let linger = match settings.pipe {
        Some(_) => user_timeout(settings.keepalive),
        None => iroh::LINGER,
    };
    delivered(endpoint.close(linger).await, linger, result)
}

/// A known_peers file from before admission was explicit is rewritten in the new format, once,
/// and the host is told which peers it no longer lets in: those it had only dialled
/// (`trust`'s module comment says how entries are read).
async fn migrate_admission(settings: &Settings, ui: &Ui) {
    let store = settings.trust.store.clone();
    // (Off the runtime: it reads and may rewrite the file under its lock.)
    let migrated = tokio::task::spawn_blocking(move || {
        // Nothing to write unless the file is an old one.
        store.load().ok()?.migrated.as_ref()?;
        store.update(|peers| Ok(peers.migrated.clone())).ok()?
    })
    .await;
    let names = match migrated {
        Ok(Some(names)) if !names.is_empty() => names,
        _ => return,
    };
    let shown: Vec<String> = names
        .iter()
        .map(|n| crate::sanitize::line(n).into_owned())
        .collect();
    ui.warn(format_args!(
        "known_peers now keeps apart whom you dial and whom you let in: {} peer(s) you had only \
         dialled are no longer admitted to your rooms ({}); admit one with `{} admit NAME`",
        names.len(),
        shown.join(", "),
        settings.trust.peers_command
    ));
}

/// Prints (and leaves for `schat invite`) the ticket that reaches this listener over TCP and
/// iroh. It holds no secret: a dialer still needs to be admitted (known, or by invite).
async fn announce(
    endpoint: &iroh::P2p,
    p2p: &P2pOptions,
    local: std::net::SocketAddr,
    identity: &Identity,
    settings: &Settings,
    ui: &Ui,
) -> Option<(String, std::fs::File)> {
    if p2p.relays != Relays::Disabled {
        ui.status("iroh: connecting to the relay");
    }
    if !endpoint.online(&p2p.relays).await && p2p.relays != Relays::Disabled {
        ui.warn(
            "iroh: no connection to the relay within 5 s (it is unreachable, or it refused this \
             endpoint): until it answers, peers behind another NAT may not get through",
        );
    }
    let mut addrs = match local.ip().is_unspecified() {
        true => tcp::reachable_addrs(local.port()),
        false => vec![TicketAddr::Ip(local.ip(), local.port())],
    };
    addrs.truncate(crate::invite::ticket::MAX_ADDRS / 2);
    let room = crate::invite::ticket::MAX_ADDRS - addrs.len();
    addrs.extend(endpoint.ticket_addrs(room));
    let ticket = Ticket {
        key: *identity.public(),
        secret: None,
        expires: 0,
        name: settings.name.clone(),
        addrs,
    };
    let text = ticket.encode();
    // Left for `schat invite` before the ticket is shown: whoever acts on the ticket line
    // finds it there. The lock says a listener is alive (a file left by a killed one is
    // ignored); only one listener of a home leaves its address.
    let mut left = None;
    if !p2p.ephemeral {
        let file = p2p_address_file(settings);
        match p2p_address_lock(settings) {
            Ok(lock) => match crate::fsutil::write_private_atomically(&file, text.as_bytes(), true)
            {
                Ok(()) => left = Some((text.clone(), lock)),
                Err(e) => ui.warn(format_args!(
                    "cannot leave the address for `schat invite` in {}: {e}",
                    file.display()
                )),
            },
            Err(why) => ui.status(format_args!(
                "`schat invite` will not include this address: {why}"
            )),
        }
    }
    let shown: Vec<String> = ticket.addrs.iter().map(ToString::to_string).collect();
    ui.status(format_args!("reachable at {}", shown.join(", ")));
    ui.status("ticket for `schat dial` (an address with your key; it admits nobody by itself):");
    ui.ticket(&text);
    left
}

/// The lock a running `listen --p2p` holds while its address is in [`p2p_address_file`].
pub fn p2p_address_lock_file(settings: &Settings) -> std::path::PathBuf {
    crate::fsutil::parent_dir(settings.trust.store.path()).join("p2p-address.lock")
}

/// Takes the lock, unless another listener of this home holds it. Like every lock in the
/// home: created 0600, and a symbolic link in its place is refused.
fn p2p_address_lock(settings: &Settings) -> std::result::Result<std::fs::File, String> {
    let path = p2p_address_lock_file(settings);
    match crate::fsutil::try_lock_exclusive(&path) {
        Ok(Some(file)) => Ok(file),
        Ok(None) => Err(
            "another `listen --p2p` of this home is running, and invites carry its address".into(),
        ),
        Err(e) => Err(format!("{}: {e}", path.display())),
    }
}

/// Accepts on every transport and runs the room (or the pipe) until it ends.
async fn serve(
    listener: &TcpListener,
    endpoint: Option<Arc<iroh::P2p>>,
    options: &ListenOptions,
    run: &Run<'_>,
    user: &mut User<'_>,
) -> Result<()> {
    let Run {
        identity,
        settings,
        ui,
    } = *run;
    let role = Role::Listener {
        welcome: options.welcome.clone(),
        allow: options.allow.clone(),
    };
    let (reports, connections) = mpsc::channel(1024);
    // An unknown dialer knocks when a person hosts the room at a terminal to answer it;
    // otherwise it is refused with a line saying how to let it in.
    let knock =
        settings.pipe.is_none() && user.input.can_ask() && matches!(options.allow, Allow::Known);
    let resumable = room::ResumableKeys::default();
    let accepting = accept_loop(
        listener,
        endpoint,
        Arc::new(Accepting {
            identity: identity.duplicate(),
            role: role.clone(),
            settings: settings.clone(),
            knock,
            code_attempts: Default::default(),
            resumable: resumable.clone(),
        }),
        options.gate,
        reports,
    );
    if settings.pipe.is_some() {
        return tokio::select! {
            result = serve_one_pipe(connections, &role, &resumable, run, user) => result,
            never = accepting => match never {},
        };
    }
    let room = RoomOptions {
        welcome: options.welcome.clone(),
        max_peers: options.max_peers,
        knock_wait: options.knock_wait,
        once: options.once,
        keepalive: settings.keepalive,
        outbox_bytes: room::DEFAULT_OUTBOX_BYTES,
        rate: room::DEFAULT_RATE,
        hello_within: settings
            .handshake_timeout
            .max(settings.keepalive.saturating_mul(2)),
        trust: settings.trust.clone(),
        key: *identity.public(),
        name: settings.name.clone(),
        resume_grace: settings.resume_grace,
        resumable,
        files: settings.files.clone(),
        send: settings.send.clone(),
        relay_only: options.relay_only,
    };
    tokio::select! {
        result = room::host(connections, &room, ui, user) => result,
        never = accepting => match never {},
    }
}

/// Pipe mode: one session (stdin can be sent only once). Handshakes run concurrently like a
/// room's, so silent sockets cannot block the pipe; the first admitted peer wins, later ones
/// are told so in a QUIT. Connections that never become a session do not count.
async fn serve_one_pipe(
    mut connections: mpsc::Receiver<Connection<Reader, Writer>>,
    role: &Role,
    resumable: &room::ResumableKeys,
    run: &Run<'_>,
    user: &mut User<'_>,
) -> Result<()> {
    let ui = run.ui;
    let keep = |key: Option<crate::keys::PublicKey>| {
        let mut keys = resumable.lock().unwrap_or_else(|e| e.into_inner());
        keys.clear();
        keys.extend(key);
    };
    loop {
        let arrival = tokio::select! {
            Some(connection) = connections.recv() => match connection {
                Connection::Failed(line) => {
                    ui.warn(line);
                    continue;
                }
                Connection::Arrived(arrival) => arrival,
                // (A pipe has no host at a terminal to knock on.)
                Connection::Knock(knock, _) => {
                    tokio::spawn(room::refuse(knock.established));
                    continue;
                }
            },
            // Its input was never sent: not a success (exit 1), unlike a chat listener's.
            name = user.interrupts.recv() => {
                ui.status(format_args!("{name}; stopped listening"));
                return Err(Error::Interrupted(name));
            }
        };
        // A RESUME with no pipe kept names a session that is over (or another listener's).
        if matches!(arrival.first, Some(Message::Resume { .. })) {
            ui.warn(format_args!(
                "refused a resume from {}: {}",
                arrival.address,
                session::GONE
            ));
            tokio::spawn(session::refuse(arrival.established, session::GONE));
            continue;
        }
        let Arrival {
            established,
            mut info,
            address,
            first,
        } = *arrival;
        info.address = Some(address.clone());
        // While the pipe can resume (PROTOCOL.md §4.12), its dialer's key may come back with
        // a RESUME: those connections go to the session, which checks their token.
        let (comebacks, arrivals) = mpsc::channel(16);
        let comeback = match run.settings.resume_grace {
            Some(_) => {
                keep(Some(info.key));
                session::pipe::Comeback::Await(arrivals)
            }
            None => session::pipe::Comeback::Never,
        };
        let session = session::proceed(established, info, role, run, user, comeback, first);
        tokio::pin!(session);
        let result = loop {
            tokio::select! {
                result = &mut session => break result,
                Some(connection) = connections.recv() => match connection {
                    Connection::Failed(line) => ui.warn(line),
                    Connection::Knock(late, _) => {
                        tokio::spawn(room::refuse(late.established));
                    }
                    Connection::Arrived(back) if matches!(back.first, Some(Message::Resume { .. })) => {
                        if let Err(e) = comebacks.try_send(back) {
                            let back = match e {
                                mpsc::error::TrySendError::Full(back)
                                | mpsc::error::TrySendError::Closed(back) => back,
                            };
                            tokio::spawn(session::refuse(back.established, PIPE_BUSY));
                        }
                    }
                    Connection::Arrived(late) => {
                        ui.warn(format_args!(
                            "refused {} from {}: the pipe is already in use",
                            late.info.label, late.address
                        ));
                        tokio::spawn(session::refuse(late.established, PIPE_BUSY));
                    }
                },
            }
        };
        keep(None);
        match result {
            Ok(_) => return Ok(()),
            // A peer that refused us, or dialled in the other mode, was never a session and
            // must not stop the listener.
            Err(e @ (Error::RefusedByPeer(_) | Error::ModeMismatch(_) | Error::PeerRefused(_))) => {
                ui.warn(format_args!("connection from {address}: {e}"));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The QUIT reason for a dialer that arrives while the pipe is taken.
const PIPE_BUSY: &str = "busy: another peer is already using this pipe";
