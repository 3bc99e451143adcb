//! Everything that touches TCP: binding, accepting, connecting, socket options, connection
//! deadlines, and who may handshake at all. The only module that names
//! `TcpListener`/`TcpStream`; sessions above it see plain byte streams.
//!
//! - [`address`]: addresses as people write them (pure parsing);
//! - [`gate`]: admission control before authentication (pure bookkeeping).

use crate::error::{Error, Result};
use crate::handshake::Established;
use crate::keys::{Identity, PublicKey};
use crate::message::Message;
use crate::session::input::Input;
use crate::session::room::{self, Arrival, Connection, RoomOptions};
use crate::session::verify::{self, TrustPolicy};
use crate::session::{self, Ended, Role, Settings};
use crate::signals::Interrupts;
use crate::trust::Allow;
use crate::ui::Ui;
use std::collections::{HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, lookup_host};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

pub mod address;
pub mod gate;

pub use address::{Address, AddressError, DEFAULT_PORT};
pub use gate::GateLimits;
use gate::{Admit, Gate, Source};

async fn resolve(addr: &Address, for_listening: bool) -> Result<Vec<SocketAddr>> {
    let host = match addr.host.as_str() {
        "" if for_listening => "0.0.0.0",
        "" => return Err(Error::Usage(format!("{addr}: missing host name"))),
        h => h,
    };
    let unknown = || {
        Error::Network(format!(
            "cannot find the host {:?}: check the name, or give an IP address",
            crate::sanitize::line(host)
        ))
    };
    let found: Vec<SocketAddr> = lookup_host((host, addr.port))
        .await
        .map_err(|_| unknown())?
        .collect();
    if found.is_empty() {
        return Err(unknown());
    }
    Ok(found)
}

/// Connects to the first address of `addr` that answers, within `timeout` overall.
async fn connect(addr: &Address, timeout: Duration, ui: &Ui) -> Result<TcpStream> {
    if addr.host.parse::<IpAddr>().is_err() {
        ui.status(format_args!("resolving {}", addr.host));
    }
    let candidates = tokio::time::timeout(timeout, resolve(addr, false))
        .await
        .map_err(|_| Error::Timeout("resolving the host name", timeout.as_secs()))??;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    for target in candidates {
        ui.status(format_args!("connecting to {target}"));
        match tokio::time::timeout_at(deadline, TcpStream::connect(target)).await {
            Err(_) => {
                return Err(Error::Network(format!(
                    "no answer from {addr} within {} s: the host may be down, or a firewall \
                     drops the connection",
                    timeout.as_secs()
                )));
            }
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Some((target, e)),
        }
    }
    let (target, e) = last.ok_or_else(|| Error::Internal("no address to connect to".into()))?;
    Err(Error::Network(match e.kind() {
        io::ErrorKind::ConnectionRefused => format!(
            "nothing is listening at {target}: is `schat listen` running there, on that port?"
        ),
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            format!("{target} cannot be reached from here: check the address and your network")
        }
        kind => format!("cannot connect to {target}: {kind}"),
    }))
}

/// Socket options for every connection: no Nagle delay (latency matters more than packing,
/// and every frame goes out in one write anyway); TCP keepalive so the kernel notices a dead
/// path even when the application-level PINGs cannot get through; and a TCP user timeout, so
/// data the peer never acknowledges (a vanished host, or a peer that stopped reading: zero
/// window) cannot hold the socket and its buffers for ever.
fn configure(stream: &TcpStream, keepalive: Duration) {
    let _ = stream.set_nodelay(true);
    let socket = socket2::SockRef::from(stream);
    let probe = socket2::TcpKeepalive::new()
        .with_time(keepalive)
        .with_interval(keepalive / 3 + Duration::from_secs(1));
    let _ = socket.set_tcp_keepalive(&probe);
    #[cfg(any(target_os = "linux", target_os = "android", target_os = "fuchsia"))]
    let _ = socket.set_tcp_user_timeout(Some(user_timeout(keepalive)));
}

/// How long sent data may stay unacknowledged before the kernel gives up on the connection:
/// as long as the keepalive takes to declare a silent peer gone.
pub fn user_timeout(keepalive: Duration) -> Duration {
    keepalive * 3 + Duration::from_secs(1)
}

/// `schat dial`: connect, then run one session.
#[allow(clippy::too_many_arguments)]
pub async fn dial(
    addr: &str,
    policy: TrustPolicy,
    connect_timeout: Duration,
    identity: &Identity,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<Ended> {
    // A petname with stored addresses dials those, most recent first, expecting its key (as
    // `ssh bob` with a Host entry); anything else is an address.
    // A ticket's addresses, in order (its key is already the pin); a petname's stored ones,
    // most recent first, expecting its key (as `ssh bob` with a Host entry); else an address.
    let (targets, pinned) = match &settings.invite {
        Some(invite) => (
            invite
                .addrs
                .iter()
                .map(|a| Address::parse(a).map_err(|e| Error::Usage(format!("{a:?}: {e}"))))
                .collect::<Result<Vec<_>>>()?,
            None,
        ),
        None => match petname_targets(addr, settings)? {
            Some(found) => found,
            None => (
                vec![Address::parse(addr).map_err(|e| Error::Usage(format!("{addr:?}: {e}")))?],
                None,
            ),
        },
    };
    let pinned_settings;
    let settings = match pinned {
        Some(key) if settings.pin.is_none() => {
            pinned_settings = Settings {
                pin: Some(key),
                ..settings.clone()
            };
            &pinned_settings
        }
        _ => settings,
    };
    let mut reached = None;
    let mut last_error = None;
    let count = targets.len();
    for (i, target) in targets.into_iter().enumerate() {
        tokio::select! {
            stream = connect(&target, connect_timeout, ui) => match stream {
                Ok(stream) => {
                    reached = Some((target, stream));
                    break;
                }
                Err(e) if i + 1 < count => ui.status(format_args!("{e}; trying the next address")),
                Err(e) => last_error = Some(e),
            },
            _ = interrupts.recv() => return Ok(Ended::LocalQuit),
        }
    }
    let Some((addr, stream)) = reached else {
        return Err(last_error.unwrap_or_else(|| Error::Internal("nothing to dial".into())));
    };
    configure(&stream, settings.keepalive);
    let remote = stream.peer_addr().map(|a| a.to_string()).ok();
    ui.status("connected; handshaking");
    let (reader, writer) = stream.into_split();
    // Known peers are keyed by the address as dialled, not as resolved.
    let role = Role::Dialer {
        addr: addr.to_string(),
        policy,
    };
    // With a spoken code, a new key is decided by the code, not by --trust.
    let check_policy = match settings.code {
        Some(_) => TrustPolicy::AcceptNew,
        None => policy,
    };
    let check = |listener: &crate::keys::PublicKey| {
        verify::before_revealing(
            listener,
            identity.public(),
            &addr.to_string(),
            settings.pin.as_ref(),
            check_policy,
            &settings.trust,
            ui,
        )
    };
    match session::establish(reader, writer, identity, &role, settings, interrupts, check).await? {
        Some(established) => {
            session::converse(
                established,
                remote.as_deref(),
                &role,
                settings,
                input,
                ui,
                interrupts,
            )
            .await
        }
        None => Ok(Ended::LocalQuit),
    }
}

/// The stored addresses of the known peer called `name` (most recent first) and its key, when
/// `name` is a petname in known_peers; `None` when it is not (then it is an address).
fn petname_targets(
    name: &str,
    settings: &Settings,
) -> Result<Option<(Vec<Address>, Option<crate::keys::PublicKey>)>> {
    let Ok(peers) = settings.trust.store.load() else {
        return Ok(None);
    };
    let Some(entry) = peers.by_name(name) else {
        return Ok(None);
    };
    let targets: Vec<Address> = entry
        .addrs
        .iter()
        .rev()
        .filter_map(|a| Address::parse(a).ok())
        .collect();
    if targets.is_empty() {
        return Err(Error::Usage(format!(
            "{} is a known peer without a stored address: dial HOST:PORT --peer {}",
            crate::sanitize::line(name),
            crate::sanitize::line(name)
        )));
    }
    Ok(Some((targets, Some(entry.key))))
}

/// What `schat listen` was asked to do.
#[derive(Debug, Clone)]
pub struct ListenOptions {
    /// Where to listen (`None`: all interfaces, default port).
    pub addr: Option<String>,
    /// Exit after the first session instead of waiting for the next peer.
    pub once: bool,
    /// The greeting sent to each peer.
    pub welcome: String,
    /// Which dialers to admit.
    pub allow: Allow,
    /// Members of the room at once.
    pub max_peers: usize,
    /// Limits on connections that are still handshaking.
    pub gate: GateLimits,
}

/// `schat listen`: host a room of peers (chat), or serve one pipe session.
pub async fn listen(
    options: &ListenOptions,
    identity: &Identity,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<()> {
    let addr = match &options.addr {
        Some(text) => Address::parse(text).map_err(|e| Error::Usage(format!("{text:?}: {e}")))?,
        None => Address {
            host: "0.0.0.0".into(),
            port: DEFAULT_PORT,
        },
    };
    let listener = bind(&addr).await?;
    let local = listener
        .local_addr()
        .map_err(|e| Error::io("reading the bound address", e))?;
    ui.status(format_args!("listening on {local}"));
    ui.status(format_args!(
        "your fingerprint: {}",
        crate::fingerprint::grouped(identity.public())
    ));
    ui.status(format_args!("admitting {}", options.allow));
    let role = Role::Listener {
        welcome: options.welcome.clone(),
        allow: options.allow.clone(),
    };
    let (reports, connections) = mpsc::channel(1024);
    // An unknown dialer knocks when a person hosts the room at a terminal to answer it;
    // otherwise it is refused with a line saying how to let it in.
    let knock = settings.pipe.is_none() && input.can_ask() && matches!(options.allow, Allow::Known);
    let accepting = accept_loop(
        &listener,
        Arc::new(identity.duplicate()),
        Arc::new(role.clone()),
        Arc::new(settings.clone()),
        options.gate,
        knock,
        reports,
    );
    if settings.pipe.is_some() {
        return tokio::select! {
            result = serve_one_pipe(connections, &role, settings, input, ui, interrupts) => result,
            never = accepting => match never {},
        };
    }
    let room = RoomOptions {
        welcome: options.welcome.clone(),
        max_peers: options.max_peers,
        once: options.once,
        keepalive: settings.keepalive,
        outbox_bytes: room::DEFAULT_OUTBOX_BYTES,
        rate: room::DEFAULT_RATE,
        hello_within: settings.handshake_timeout.max(settings.keepalive * 2),
        trust: settings.trust.clone(),
        key: *identity.public(),
        name: settings.name.clone(),
    };
    tokio::select! {
        result = room::host(connections, &room, input, ui, interrupts) => result,
        never = accepting => match never {},
    }
}

/// How often the accept loop lets the gate summarise penalised sources.
const REPORT_TICK: Duration = Duration::from_secs(1);

/// Accepts connections for ever, each handshaking in its own task, admitted through the
/// [`Gate`]: per-address caps, eviction of the busiest source's oldest handshake when full,
/// and one log line per penalised source per interval (see [`gate`]).
async fn accept_loop(
    listener: &TcpListener,
    identity: Arc<Identity>,
    role: Arc<Role>,
    settings: Arc<Settings>,
    limits: GateLimits,
    knock: bool,
    reports: mpsc::Sender<Connection<OwnedReadHalf, OwnedWriteHalf>>,
) -> std::convert::Infallible {
    let gate = Arc::new(Mutex::new(Gate::<AbortHandle>::new(limits)));
    let mut tick = tokio::time::interval(REPORT_TICK);
    // Connections held (unread) until a slot of their own source frees; handshake tasks say
    // which source they freed.
    let mut waiting: HashMap<Source, VecDeque<Held>> = HashMap::new();
    let (freed_tx, mut freed) = mpsc::unbounded_channel::<Source>();
    let patience = settings.handshake_timeout;
    loop {
        let now = std::time::Instant::now();
        let (held, decision) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    let source = Source::of(from.ip());
                    let decision = lock(&gate).admit(source, now);
                    (Held { stream, from, source, since: now }, decision)
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, then go on.
                    let line = format!("accepting a connection failed: {e}");
                    let _ = reports.send(Connection::Failed(line)).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some(source) = freed.recv() => {
                let Some(held) = waiting.get_mut(&source).and_then(VecDeque::pop_front) else {
                    continue;
                };
                let decision = lock(&gate).resume(source, now);
                (held, decision)
            }
            _ = tick.tick() => {
                let mut lines = expire(&mut waiting, &gate, patience, now);
                lines.extend(lock(&gate).report(now));
                for line in lines {
                    let _ = reports.send(Connection::Failed(line)).await;
                }
                continue;
            }
        };
        let ticket = match decision {
            Admit::Wait => {
                // In line behind its source's earlier connections (a resumed one goes first).
                let queue = waiting.entry(held.source).or_default();
                if held.since < now {
                    queue.push_front(held);
                } else {
                    queue.push_back(held);
                }
                continue;
            }
            Admit::Refused { log } => {
                drop(held);
                if let Some(line) = log {
                    let _ = reports.send(Connection::Failed(line)).await;
                }
                continue;
            }
            Admit::Admitted { ticket, evicted } => {
                if let Some((handshake, from)) = evicted {
                    handshake.abort();
                    // Its slot went to the newcomer, but its source may be below its cap now.
                    let _ = freed_tx.send(from);
                }
                ticket
            }
        };
        let Held {
            stream,
            from,
            source,
            ..
        } = held;
        let (identity, role, settings) = (identity.clone(), role.clone(), settings.clone());
        let (reports, task_gate, freed_tx) = (reports.clone(), gate.clone(), freed_tx.clone());
        let task = tokio::spawn(async move {
            let report =
                handshake_and_admit(stream, from, &identity, &role, &settings, knock).await;
            let report = {
                let mut gate = lock(&task_gate);
                gate.finished(ticket, matches!(report, Connection::Failed(_)));
                match report {
                    Connection::Failed(line) => {
                        gate.event(source, |_| line).map(Connection::Failed)
                    }
                    arrived => Some(arrived),
                }
            };
            let _ = freed_tx.send(source);
            if let Some(report) = report {
                let _ = reports.send(report).await;
            }
        });
        // If the handshake is already over, its slot is free and this does nothing.
        lock(&gate).attach(ticket, task.abort_handle());
    }
}

/// A connection waiting for a handshake slot of its source.
struct Held {
    stream: TcpStream,
    from: SocketAddr,
    source: Source,
    since: std::time::Instant,
}

/// Closes the held connections that have waited `patience`; lines to log (or none, for a
/// source being summarised).
fn expire(
    waiting: &mut HashMap<Source, VecDeque<Held>>,
    gate: &Mutex<Gate<AbortHandle>>,
    patience: Duration,
    now: std::time::Instant,
) -> Vec<String> {
    let mut lines = Vec::new();
    let mut gate = lock(gate);
    for queue in waiting.values_mut() {
        while queue
            .front()
            .is_some_and(|h| now.duration_since(h.since) >= patience)
        {
            if let Some(held) = queue.pop_front() {
                gate.abandon(held.source);
                let from = held.from;
                lines.extend(gate.event(held.source, |_| {
                    format!(
                        "connection from {from}: closed after waiting {} s for a handshake slot",
                        patience.as_secs()
                    )
                }));
            }
        }
    }
    waiting.retain(|_, queue| !queue.is_empty());
    lines
}

/// The gate's lock. Its critical sections never panic, but a poisoned lock must not stop the
/// listener either: the bookkeeping inside stays consistent between calls.
fn lock<H>(gate: &Mutex<Gate<H>>) -> MutexGuard<'_, Gate<H>> {
    gate.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// One connection up to the point where it joins the room (or is turned away).
async fn handshake_and_admit(
    stream: TcpStream,
    from: SocketAddr,
    identity: &Identity,
    role: &Role,
    settings: &Settings,
    knock: bool,
) -> Connection<OwnedReadHalf, OwnedWriteHalf> {
    configure(&stream, settings.keepalive);
    let (reader, writer) = stream.into_split();
    let mut never = Interrupts::none();
    let established =
        match session::establish(reader, writer, identity, role, settings, &mut never, |_| {
            Ok(())
        })
        .await
        {
            Ok(Some(established)) => established,
            Ok(None) => return Connection::Failed(format!("connection from {from}: interrupted")),
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
    let read_first = by_key.is_err() || invites_pending(settings);
    if settings.pipe.is_none() && read_first && peer != local {
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
                return by_code(established, nameplate, &message, from, settings).await;
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
    // Knocking (allow = known, a host at its terminal): a known key comes in, an unknown one
    // knocks. One look at known_peers decides both.
    if knock
        && settings.pin.is_none()
        && peer != local
        && let Ok(info) = verify::admitted(peer, &local, None, &Allow::Anyone, &settings.trust)
    {
        let knocks = info.entry.is_none();
        let arrival = Box::new(Arrival {
            established,
            info,
            address: from.to_string(),
            first,
        });
        return match knocks {
            true => Connection::Knock(arrival),
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
    established: Established<OwnedReadHalf, OwnedWriteHalf>,
    secret: &[u8; crate::invite::ticket::SECRET_LEN],
    from: SocketAddr,
    settings: &Settings,
    // What its key alone would get it (invites_closed has been checked).
    by_key: Result<verify::PeerInfo>,
) -> Connection<OwnedReadHalf, OwnedWriteHalf> {
    let peer = established.peer;
    let trust = &settings.trust;
    match trust.invites().redeem(secret, crate::invite::unix_now()) {
        Ok(redeemed) => match verify::record_invited(trust, &peer, &redeemed.petname) {
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
async fn by_code(
    mut established: Established<OwnedReadHalf, OwnedWriteHalf>,
    nameplate: u16,
    theirs: &[u8],
    from: SocketAddr,
    settings: &Settings,
) -> Connection<OwnedReadHalf, OwnedWriteHalf> {
    use crate::invite::Refusal;
    use crate::invite::code::{Code, Exchange, PAKE_LEN, Side};
    let peer = established.peer;
    let trust = &settings.trust;
    let invites = trust.invites();
    let now = crate::invite::unix_now();
    // An unknown nameplate runs the exchange all the same, with a code nobody has: probing
    // cannot tell which nameplates are in use.
    let looked_up = invites.code(nameplate, now);
    let (code, known) = match looked_up.map(|words| Code::from_parts(nameplate, &words)) {
        Ok(Ok(code)) => (code, true),
        Ok(Err(_)) => {
            return refuse_invite(established, from, "the code on file is damaged".into()).await;
        }
        Err(Refusal::Unknown) => (Code::generate(nameplate), false),
        Err(why) => return refuse_invite(established, from, why.to_string()).await,
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
    // The dialer hears the same for every wrong code, known nameplate or not; the log says more.
    let wrong = format!("WRONG CODE for {nameplate} (a typo, or someone in the middle)");
    if !known {
        let log = format!("{wrong}: no such code here");
        return refuse_invite_logged(established, from, wrong, log).await;
    }
    match invites.code_outcome(nameplate, proven, now) {
        Ok(redeemed) if proven => {
            let Some(confirmations) = confirmations else {
                return refuse_invite(established, from, "internal error".into()).await;
            };
            let how = crate::trust::Verified::Code;
            let entry = match verify::record_verified(trust, &peer, &redeemed.petname, how) {
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
        Ok(_) => refuse_invite(established, from, "internal error".into()).await,
        Err(why @ (Refusal::WrongCode { .. } | Refusal::Burned(_))) if !proven => {
            let log = format!("{wrong}: {why}");
            refuse_invite_logged(established, from, wrong, log).await
        }
        Err(why) => refuse_invite(established, from, why.to_string()).await,
    }
}

/// A dialer whose invite (ticket or code, named `invite`) was honoured and recorded as `entry`:
/// admitted, whatever the listener's --allow.
async fn admit_invited(
    established: Established<OwnedReadHalf, OwnedWriteHalf>,
    from: SocketAddr,
    trust: &verify::TrustConfig,
    entry: crate::trust::Entry,
    invite: String,
) -> Connection<OwnedReadHalf, OwnedWriteHalf> {
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
    established: Established<OwnedReadHalf, OwnedWriteHalf>,
    from: SocketAddr,
    why: String,
) -> Connection<OwnedReadHalf, OwnedWriteHalf> {
    let log = why.clone();
    refuse_invite_logged(established, from, why, log).await
}

/// As [`refuse_invite`], with more in our log than the dialer is told.
async fn refuse_invite_logged(
    established: Established<OwnedReadHalf, OwnedWriteHalf>,
    from: SocketAddr,
    why: String,
    log: String,
) -> Connection<OwnedReadHalf, OwnedWriteHalf> {
    let Established { mut send, .. } = established;
    let _ = send.quit(&format!("refused: {why}")).await;
    Connection::Failed(format!("refused the peer from {from}: {log}"))
}

/// Pipe mode: one session (stdin can be sent only once). Handshakes run concurrently like a
/// room's, so silent sockets cannot block the pipe; the first admitted peer wins, later ones
/// are told so in a QUIT. Connections that never become a session do not count.
async fn serve_one_pipe(
    mut connections: mpsc::Receiver<Connection<OwnedReadHalf, OwnedWriteHalf>>,
    role: &Role,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<()> {
    loop {
        let arrival = tokio::select! {
            Some(connection) = connections.recv() => match connection {
                Connection::Failed(line) => {
                    ui.warn(line);
                    continue;
                }
                Connection::Arrived(arrival) => arrival,
                // (A pipe has no host at a terminal to knock on.)
                Connection::Knock(knock) => {
                    tokio::spawn(room::refuse(knock.established));
                    continue;
                }
            },
            name = interrupts.recv() => {
                ui.status(format_args!("{name}; stopped listening"));
                return Ok(());
            }
        };
        // (A pipe listener reads nothing before the session: `first` is always None here.)
        let Arrival {
            established,
            mut info,
            address,
            first: _,
        } = *arrival;
        info.address = Some(address.clone());
        let session = session::proceed(established, info, role, settings, input, ui, interrupts);
        tokio::pin!(session);
        let result = loop {
            tokio::select! {
                result = &mut session => break result,
                Some(connection) = connections.recv() => match connection {
                    Connection::Failed(line) => ui.warn(line),
                    Connection::Knock(late) => {
                        tokio::spawn(room::refuse(late.established));
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
        match result {
            Ok(_) => return Ok(()),
            // A peer that refused us, or dialled in the other mode, was never a session and
            // must not stop the listener.
            Err(e @ (Error::RefusedByPeer(_) | Error::ModeMismatch(_))) => {
                ui.warn(format_args!("connection from {address}: {e}"));
            }
            Err(e) => return Err(e),
        }
    }
}

/// The QUIT reason for a dialer that arrives while the pipe is taken.
const PIPE_BUSY: &str = "busy: another peer is already using this pipe";

async fn bind(addr: &Address) -> Result<TcpListener> {
    let mut last = None;
    for target in resolve(addr, true).await? {
        match TcpListener::bind(target).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some((target, e)),
        }
    }
    let (target, e) = last.ok_or_else(|| Error::Internal("no address to listen on".into()))?;
    Err(Error::Network(match e.kind() {
        io::ErrorKind::AddrInUse => format!(
            "cannot listen on {target}: the port is in use (another schat?); choose another \
             with HOST:PORT, or :0 for any free port"
        ),
        io::ErrorKind::PermissionDenied => format!(
            "cannot listen on {target}: permission denied (ports below 1024 need privileges)"
        ),
        io::ErrorKind::AddrNotAvailable => {
            format!("cannot listen on {target}: that address is not one of this machine's")
        }
        kind => format!("cannot listen on {target}: {kind}"),
    }))
}
