//! Everything that touches the network: transports, binding, accepting, connecting,
//! connection deadlines, and who may handshake at all. Sessions above it see plain byte
//! streams ([`stream::Reader`]/[`stream::Writer`]), whatever carried them.
//!
//! - [`address`]: addresses as people write them (pure parsing);
//! - [`gate`]: admission control before authentication (pure bookkeeping);
//! - [`tcp`]: TCP sockets (the only module that names them);
//! - [`iroh`]: QUIC by public key through NATs and relays (the only module that names iroh's
//!   endpoint); [`relay`]: `schat relay`, iroh's relay server;
//! - [`stream`]: one stream type over both transports;
//! - [`admit`]: what happens to a connection after its handshake (keys, invites, knocks).

use crate::error::{Error, Result};
use crate::invite::ticket::{Ticket, TicketAddr};
use crate::keys::{Identity, PublicKey};
use crate::session::input::Input;
use crate::session::room::{self, Arrival, Connection, RoomOptions};
use crate::session::verify::{self, TrustPolicy};
use crate::session::{self, Ended, Role, Settings};
use crate::signals::Interrupts;
use crate::trust::Allow;
use crate::ui::Ui;
use std::cell::Cell;
use std::collections::{HashMap, VecDeque};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio::task::AbortHandle;

pub mod address;
mod admit;
pub mod gate;
pub mod iroh;
pub mod relay;
pub mod stream;
pub mod tcp;

pub use address::{Address, AddressError, DEFAULT_PORT};
pub use gate::GateLimits;
use gate::{Admit, Gate, Source};
pub use iroh::{P2pOptions, Relays};
use stream::{Reader, Writer};
pub use tcp::user_timeout;

/// Where a dial goes: TCP addresses in order, and an iroh endpoint (from a ticket or a known
/// peer's stored ticket); `remembered` is the address known_peers keeps for it.
struct Routes {
    tcp: Vec<Address>,
    iroh: Option<(::iroh::EndpointAddr, Vec<String>)>,
    remembered: Option<String>,
}

impl Routes {
    /// The routes of a ticket's addresses. Its relays must be ones a ticket may name
    /// ([`crate::invite::ticket::ticket_relay_ok`]; `explicit`: what `--relay` named).
    fn of_ticket(
        addrs: &[TicketAddr],
        remembered: Option<String>,
        explicit: &[String],
    ) -> Result<Routes> {
        for addr in addrs {
            if let TicketAddr::Relay(url) = addr
                && !crate::invite::ticket::ticket_relay_ok(url, explicit)
            {
                return Err(Error::Usage(format!(
                    "the ticket names the relay {}, which is not used: a ticket may name only \
                     https://HOST[:PORT]/ (plain http:// only on a loopback address, or when you \
                     pass the same URL with --relay); nothing was dialled",
                    crate::sanitize::line(url)
                )));
            }
        }
        let tcp = addrs
            .iter()
            .filter(|a| a.is_tcp())
            .map(|a| Address::parse(&a.to_string()).map_err(|e| Error::Usage(format!("{a}: {e}"))))
            .collect::<Result<Vec<_>>>()?;
        let iroh = iroh::target(addrs)?.map(|t| (t, iroh::ticket_relays(addrs)));
        Ok(Routes {
            tcp,
            iroh,
            remembered,
        })
    }
}

/// Which transports a dial may use.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum Via {
    /// TCP and iroh at once, when the ticket has both (the first to prove the key wins).
    #[default]
    Any,
    /// TCP only.
    Tcp,
    /// iroh only.
    Iroh,
}

/// How long TCP has before iroh is tried as well (RFC 8305's "connection attempt delay"):
/// a reachable TCP address wins without a second handshake; one behind NAT costs this little.
const IROH_DELAY: Duration = Duration::from_millis(250);

/// `schat dial`: connect (over TCP, iroh, or both at once), then run one session.
#[allow(clippy::too_many_arguments)]
pub async fn dial(
    addr: &str,
    policy: TrustPolicy,
    connect_timeout: Duration,
    (p2p, via): (&P2pOptions, Via),
    identity: &Identity,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<Ended> {
    // A ticket's addresses (its key is already the pin); a petname's stored ones, most recent
    // first, expecting its key (as `ssh bob` with a Host entry); else an address.
    let (routes, pinned) = match &settings.ticket {
        Some(ticket) => (
            Routes::of_ticket(&ticket.addrs, ticket.reach.clone(), p2p.relays.named())?,
            None,
        ),
        None => match petname_targets(addr, settings, p2p.relays.named())? {
            Some(found) => found,
            None => (
                Routes {
                    tcp: vec![
                        Address::parse(addr).map_err(|e| Error::Usage(format!("{addr:?}: {e}")))?,
                    ],
                    iroh: None,
                    remembered: None,
                },
                None,
            ),
        },
    };
    let mut routes = routes;
    match via {
        Via::Any => {}
        Via::Tcp => routes.iroh = None,
        Via::Iroh => routes.tcp.clear(),
    }
    if routes.tcp.is_empty() && routes.iroh.is_none() {
        return Err(Error::Usage(format!(
            "--via {}: the peer has no such address",
            match via {
                Via::Tcp => "tcp",
                _ => "iroh",
            }
        )));
    }
    let pinned_settings;
    let settings = match pinned {
        Some(entry) if settings.pin.is_none() => {
            pinned_settings = Settings {
                pin: Some(entry.key),
                petname: Some(entry),
                ..settings.clone()
            };
            &pinned_settings
        }
        _ => settings,
    };
    // iroh only with a key to expect: both paths then check the same pin, and whichever
    // proves it first is used.
    let endpoint = match (&routes.iroh, settings.pin) {
        (Some((_, ticket_relays)), Some(_)) => {
            let mut options = p2p.clone();
            if options.relays == Relays::Default {
                // Our relay: the listener's (from the ticket), so that nothing else is asked.
                options.relays = match ticket_relays.is_empty() {
                    true => Relays::Disabled,
                    false => Relays::Custom(ticket_relays.clone()),
                };
            }
            Some(iroh::P2p::start(identity, &options, false).await?)
        }
        _ => None,
    };
    let result = dial_routes(
        &routes,
        endpoint.as_ref(),
        policy,
        connect_timeout,
        identity,
        settings,
        input,
        ui,
        interrupts,
    )
    .await;
    let Some(endpoint) = endpoint else {
        return result;
    };
    let linger = user_timeout(settings.keepalive);
    let all = endpoint.close(linger).await;
    match result {
        Ok(ended) => delivered(all, linger, Ok(())).map(|()| ended),
        Err(e) => Err(e),
    }
}

/// Which transport carried a dialled session.
enum Path {
    Tcp(Address),
    Iroh(::iroh::endpoint::Connection),
}

#[allow(clippy::too_many_arguments)]
async fn dial_routes(
    routes: &Routes,
    endpoint: Option<&iroh::P2p>,
    policy: TrustPolicy,
    connect_timeout: Duration,
    identity: &Identity,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<Ended> {
    // With a spoken code, a new key is decided by the code, not by --trust.
    let check_policy = match settings.code {
        Some(_) => TrustPolicy::AcceptNew,
        None => policy,
    };
    // The first path whose listener proves the expected key (message 2) wins; another that
    // gets there later stops before message 3, so the listener never sees two sessions and
    // our identity goes over one path only.
    let winner: Cell<Option<&'static str>> = Cell::new(None);
    let claim = |listener: &PublicKey, via: &'static str, addr: &str| -> Result<()> {
        // Dialled by name, and another key answered: the key-change alarm, not a pin mismatch
        // (there was no --peer).
        if let Some(entry) = &settings.petname
            && entry.key != *listener
        {
            let what = verify::Changed::Petname;
            verify::key_change_alarm(ui, what, entry, listener, &settings.trust);
            return Err(verify::petname_key_changed(entry));
        }
        verify::before_revealing(
            listener,
            identity.public(),
            addr,
            settings.pin.as_ref(),
            check_policy,
            &settings.trust,
            ui,
        )?;
        if settings.ticket.is_some() {
            verify::ticket_at_known_address(listener, addr, &settings.trust, ui)?;
        }
        match winner.get() {
            Some(other) => Err(Error::Network(format!("{other} was quicker"))),
            None => {
                winner.set(Some(via));
                Ok(())
            }
        }
    };
    let handshaking = Role::Dialer {
        addr: String::new(),
        policy,
    };
    // The handshake over one path (`way`), its listener's key checked and claimed.
    let handshake_over = |reader: Reader, writer: Writer, way: &'static str, shown: String| {
        let (claim, handshaking) = (&claim, &handshaking);
        async move {
            let checked = |key: &PublicKey| claim(key, way, &shown);
            let mut never = Interrupts::none();
            session::establish(
                reader,
                writer,
                identity,
                handshaking,
                settings,
                &mut never,
                checked,
            )
            .await?
            .ok_or_else(|| Error::Internal("interrupted".into()))
        }
    };
    let tcp_attempt = async {
        if routes.tcp.is_empty() {
            return Err(Error::Internal("no TCP address".into()));
        }
        let (target, stream) = connect_in_turn(&routes.tcp, connect_timeout, ui).await?;
        tcp::configure(&stream, settings.keepalive);
        let remote = stream.peer_addr().map(|a| a.to_string()).ok();
        ui.status(format_args!("connected to {target} (TCP); handshaking"));
        let (reader, writer) = stream.into_split();
        let (reader, writer) = (Reader::Tcp(reader), Writer::Tcp(writer));
        let established = handshake_over(reader, writer, "TCP", target.to_string()).await?;
        Ok((established, remote, Path::Tcp(target)))
    };
    let iroh_attempt = async {
        let (Some(endpoint), Some((target, _))) = (endpoint, &routes.iroh) else {
            return Err(Error::Internal("no iroh address".into()));
        };
        if !routes.tcp.is_empty() {
            tokio::time::sleep(IROH_DELAY).await;
        }
        ui.status(format_args!(
            "connecting to iroh endpoint {} ({})",
            target.id.fmt_short(),
            match target.relay_urls().next() {
                Some(url) => format!("relay {url}"),
                None => "no relay".into(),
            }
        ));
        let (reader, writer, conn) =
            tokio::time::timeout(connect_timeout, endpoint.connect(target.clone()))
                .await
                .map_err(|_| {
                    Error::Network(format!(
                        "iroh: no answer from the listener's endpoint within {} s",
                        connect_timeout.as_secs()
                    ))
                })??;
        ui.status(format_args!(
            "connected over iroh ({}); handshaking",
            iroh::describe_path(&conn)
        ));
        let shown = routes.remembered.clone().unwrap_or_default();
        let established = handshake_over(reader, writer, "iroh", shown).await?;
        // What /whois and the `connected` event show as the peer's address.
        let remote = format!("iroh endpoint {}", target.id.fmt_short());
        Ok((established, Some(remote), Path::Iroh(conn)))
    };
    let reached = {
        tokio::pin!(tcp_attempt, iroh_attempt);
        let (mut tcp_done, mut iroh_done) = (routes.tcp.is_empty(), routes.iroh.is_none());
        let mut failures: Vec<Error> = Vec::new();
        loop {
            let (way, attempt) = tokio::select! {
                r = &mut tcp_attempt, if !tcp_done => { tcp_done = true; ("TCP", r) }
                r = &mut iroh_attempt, if !iroh_done => { iroh_done = true; ("iroh", r) }
                // A chat that never started simply ends; a pipe's input was never sent.
                name = interrupts.recv() => {
                    return match settings.pipe {
                        Some(_) => Err(Error::Interrupted(name)),
                        None => Ok(Ended::LocalQuit),
                    };
                }
            };
            match attempt {
                Ok(reached) => break Ok(reached),
                // It lost the race: the winner's outcome is what counts.
                Err(_) if winner.get().is_some_and(|w| w != way) => {}
                Err(e) => {
                    if !(tcp_done && iroh_done) && winner.get().is_none() {
                        ui.status(format_args!("{e}; still trying the other way"));
                    }
                    failures.push(e);
                }
            }
            if tcp_done && iroh_done {
                break Err(worst(failures));
            }
        }
    };
    let (established, remote, path) = reached?;
    let remembered = match &path {
        Path::Tcp(target) => routes.remembered.clone().unwrap_or(target.to_string()),
        Path::Iroh(_) => routes.remembered.clone().unwrap_or_default(),
    };
    match &path {
        // (With only TCP to try, "connected to … (TCP)" said it already.)
        Path::Tcp(target) if routes.iroh.is_some() => {
            ui.status(format_args!("path: direct TCP to {target}"))
        }
        Path::Tcp(_) => {}
        Path::Iroh(conn) => ui.status(format_args!("path: iroh, {}", iroh::describe_path(conn))),
    }
    // Known peers are keyed by the address as dialled, not as resolved.
    let role = Role::Dialer {
        addr: remembered,
        policy,
    };
    let session = session::converse(
        established,
        remote.as_deref(),
        &role,
        settings,
        input,
        ui,
        interrupts,
    );
    let Path::Iroh(conn) = path else {
        return session.await;
    };
    // Say when iroh moves the session to another path (relayed → direct after hole punching,
    // or back to the relay when the direct path breaks).
    tokio::pin!(session);
    let mut events = conn.path_events();
    loop {
        tokio::select! {
            ended = &mut session => return ended,
            Some(now) = iroh::next_path_change(&mut events, &conn) => {
                ui.status(format_args!("path now: iroh, {now}"));
            }
        }
    }
}

/// Of the errors of every path tried, the one to report: a refused or wrong key over any
/// path matters more than a path that could not connect.
fn worst(mut failures: Vec<Error>) -> Error {
    let serious = failures.iter().position(|e| {
        !matches!(
            e,
            Error::Network(_) | Error::Timeout(..) | Error::Internal(_) | Error::Io { .. }
        )
    });
    match serious {
        Some(i) => failures.swap_remove(i),
        None => failures
            .pop()
            .unwrap_or_else(|| Error::Internal("nothing to dial".into())),
    }
}

/// Connects to the first of `targets` that answers, each within `timeout`.
async fn connect_in_turn(
    targets: &[Address],
    timeout: Duration,
    ui: &Ui,
) -> Result<(Address, TcpStream)> {
    let mut last_error = None;
    for (i, target) in targets.iter().enumerate() {
        match tcp::connect(target, timeout, ui).await {
            Ok(stream) => return Ok((target.clone(), stream)),
            Err(e) if i + 1 < targets.len() => {
                ui.status(format_args!("{e}; trying the next address"))
            }
            Err(e) => last_error = Some(e),
        }
    }
    Err(last_error.unwrap_or_else(|| Error::Internal("nothing to dial".into())))
}

/// The stored addresses of the known peer called `name` (most recent first) and its key, when
/// `name` is a petname in known_peers; `None` when it is not (then it is an address). A stored
/// ticket (`schat:…`, written when a ticket was dialled) brings its iroh address too.
fn petname_targets(
    name: &str,
    settings: &Settings,
    explicit: &[String],
) -> Result<Option<(Routes, Option<crate::trust::Entry>)>> {
    let Ok(peers) = settings.trust.store.load() else {
        return Ok(None);
    };
    let Some(entry) = peers.by_name(name) else {
        return Ok(None);
    };
    let mut routes = Routes {
        tcp: Vec::new(),
        iroh: None,
        remembered: None,
    };
    for stored in entry.addrs.iter().rev() {
        match Ticket::decode(stored) {
            // (A file someone could edit: a ticket for another key is ignored.)
            // (A damaged one is skipped: the others may still do.)
            Ok(ticket) if ticket.key == entry.key && routes.iroh.is_none() => {
                if let Ok(found) = Routes::of_ticket(&ticket.addrs, Some(stored.clone()), explicit)
                {
                    routes.tcp.extend(found.tcp);
                    routes.iroh = found.iroh;
                    routes.remembered = found.remembered;
                }
            }
            Ok(_) => {}
            Err(_) => routes.tcp.extend(Address::parse(stored).ok()),
        }
    }
    if routes.tcp.is_empty() && routes.iroh.is_none() {
        return Err(Error::Usage(format!(
            "{} is a known peer without a stored address: dial HOST:PORT --peer {}",
            crate::sanitize::line(name),
            crate::sanitize::line(name)
        )));
    }
    Ok(Some((routes, Some(entry.clone()))))
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
    let result = serve(
        &listener,
        endpoint.as_ref().map(|(e, _)| e.clone()),
        options,
        identity,
        settings,
        input,
        ui,
        interrupts,
    )
    .await;
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

/// A session's result, unless the last data sent over iroh may not have arrived (then the
/// exit status must not say it did).
fn delivered(all: bool, linger: Duration, result: Result<()>) -> Result<()> {
    match (all, result) {
        (false, Ok(())) => Err(Error::Network(format!(
            "the peer did not acknowledge the last data sent over iroh within {} s: it may not \
             have arrived",
            linger.as_secs()
        ))),
        (_, result) => result,
    }
}

/// Accepts on every transport and runs the room (or the pipe) until it ends.
#[allow(clippy::too_many_arguments)]
async fn serve(
    listener: &TcpListener,
    endpoint: Option<Arc<iroh::P2p>>,
    options: &ListenOptions,
    identity: &Identity,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<()> {
    let role = Role::Listener {
        welcome: options.welcome.clone(),
        allow: options.allow.clone(),
    };
    let (reports, connections) = mpsc::channel(1024);
    // An unknown dialer knocks when a person hosts the room at a terminal to answer it;
    // otherwise it is refused with a line saying how to let it in.
    let knock = settings.pipe.is_none() && input.can_ask() && matches!(options.allow, Allow::Known);
    let accepting = accept_loop(
        listener,
        endpoint,
        Arc::new(admit::Accepting {
            identity: identity.duplicate(),
            role: role.clone(),
            settings: settings.clone(),
            knock,
            code_attempts: Default::default(),
        }),
        options.gate,
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
    };
    tokio::select! {
        result = room::host(connections, &room, input, ui, interrupts) => result,
        never = accepting => match never {},
    }
}

/// How often the accept loop lets the gate summarise penalised sources.
const REPORT_TICK: Duration = Duration::from_secs(1);

/// A connection accepted on either transport, before its handshake.
enum Accepted {
    Tcp(TcpStream),
    Quic(::iroh::endpoint::Connection),
}

/// Aborts a task when dropped (the iroh accept task ends with the accept loop).
struct AbortOnDrop(tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Takes iroh's incoming connections: each completes its QUIC handshake in its own task (a few
/// seconds at most, `max_pending` at once; when all are busy, a newcomer must first prove its
/// address with a QUIC retry, or is refused), then goes to the accept loop like an accepted
/// TCP socket, where the gate decides when it may open its stream and handshake.
fn accept_iroh(
    endpoint: Arc<iroh::P2p>,
    max_pending: usize,
    accepted: mpsc::Sender<(::iroh::endpoint::Connection, iroh::Origin)>,
) -> AbortOnDrop {
    let slots = Arc::new(tokio::sync::Semaphore::new(max_pending.max(1)));
    AbortOnDrop(tokio::spawn(async move {
        while let Some(incoming) = endpoint.incoming().await {
            let Ok(slot) = slots.clone().try_acquire_owned() else {
                if iroh::should_retry(&incoming) {
                    let _ = incoming.retry();
                } else {
                    incoming.refuse();
                }
                continue;
            };
            let accepted = accepted.clone();
            tokio::spawn(async move {
                // A connection that never completes is dropped quietly, like a TCP
                // connection that never completes.
                if let Ok(connection) = iroh::handshake(incoming).await {
                    let _ = accepted.send(connection).await;
                }
                drop(slot);
            });
        }
    }))
}

/// Accepts connections for ever, each handshaking in its own task, admitted through the
/// [`Gate`]: per-address caps, eviction of the busiest source's oldest handshake when full,
/// stalled handshakes giving way to ready ones of their own address, a pace per address, and
/// one log line per penalised source per interval (see [`gate`]).
async fn accept_loop(
    listener: &TcpListener,
    endpoint: Option<Arc<iroh::P2p>>,
    accepting: Arc<admit::Accepting>,
    limits: GateLimits,
    reports: mpsc::Sender<Connection<Reader, Writer>>,
) -> std::convert::Infallible {
    let gate = Arc::new(Mutex::new(Gate::<AbortHandle>::new(limits)));
    let mut tick = tokio::time::interval(REPORT_TICK);
    // How often connections waiting behind a stalled handshake of their own address are
    // looked at: a ready one gets in within this.
    let mut promote = tokio::time::interval(PROMOTE_EVERY);
    // Connections held (unread) until a slot of their own source frees; handshake tasks say
    // which source they freed.
    let mut waiting: HashMap<Source, VecDeque<Held>> = HashMap::new();
    let (freed_tx, mut freed) = mpsc::unbounded_channel::<Source>();
    let patience = accepting.settings.handshake_timeout;
    let (quic_tx, mut quic) = mpsc::channel(limits.max_pending.max(1));
    let _iroh = endpoint
        .clone()
        .map(|e| accept_iroh(e, limits.max_pending, quic_tx));
    let start = Starter {
        gate: gate.clone(),
        accepting,
        endpoint,
        reports: reports.clone(),
        freed: freed_tx.clone(),
    };
    loop {
        let now = std::time::Instant::now();
        let decisions: Vec<(Held, Admit<AbortHandle>)> = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok((stream, from)) => {
                    let source = Source::of(from.ip());
                    let decision = lock(&gate).admit(source, now);
                    let from = from.to_string();
                    vec![(Held { stream: Accepted::Tcp(stream), from, source, since: now }, decision)]
                }
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, then go on.
                    let line = format!("accepting a connection failed: {e}");
                    let _ = reports.send(Connection::Failed(line)).await;
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            Some((connection, origin)) = quic.recv() => {
                // Relayed connections all come from the relay's IP: counted by the endpoint
                // id the relay vouches for instead.
                let source = match origin.ip {
                    Some(ip) => Source::of(ip),
                    None => Source::relayed(&origin.id),
                };
                let decision = lock(&gate).admit(source, now);
                let stream = Accepted::Quic(connection);
                vec![(Held { stream, from: origin.label, source, since: now }, decision)]
            }
            Some(source) = freed.recv() => {
                let Some(held) = waiting.get_mut(&source).and_then(VecDeque::pop_front) else {
                    continue;
                };
                let decision = lock(&gate).resume(source, now);
                vec![(held, decision)]
            }
            _ = promote.tick() => promote_ready(&mut waiting, &gate, now),
            _ = tick.tick() => {
                let mut lines = expire(&mut waiting, &gate, patience, now);
                lines.extend(lock(&gate).report(now));
                for line in lines {
                    let _ = reports.send(Connection::Failed(line)).await;
                }
                continue;
            }
        };
        for (held, decision) in decisions {
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
            let task = start.handshake(held, ticket);
            // If the handshake is already over, its slot is free and this does nothing.
            lock(&gate).attach(ticket, task);
        }
    }
}

/// How often waiting connections are checked against stalled handshakes of their address.
const PROMOTE_EVERY: Duration = Duration::from_millis(100);

/// Connections waiting behind a stalled handshake of their own address whose first message has
/// arrived (a real dialer's, sent at once) take the stalled one's place, oldest ready first.
fn promote_ready(
    waiting: &mut HashMap<Source, VecDeque<Held>>,
    gate: &Mutex<Gate<AbortHandle>>,
    now: std::time::Instant,
) -> Vec<(Held, Admit<AbortHandle>)> {
    let mut promoted = Vec::new();
    let mut gate = lock(gate);
    for (source, queue) in waiting.iter_mut() {
        while gate.stalled(*source, now) {
            let Some(i) = queue.iter().position(Held::first_message_arrived) else {
                break;
            };
            let Some(held) = queue.remove(i) else { break };
            let decision = gate.replace_stalled(*source, now);
            promoted.push((held, decision));
        }
    }
    waiting.retain(|_, queue| !queue.is_empty());
    promoted
}

/// Starts the handshake task of an admitted connection.
struct Starter {
    gate: Arc<Mutex<Gate<AbortHandle>>>,
    accepting: Arc<admit::Accepting>,
    endpoint: Option<Arc<iroh::P2p>>,
    reports: mpsc::Sender<Connection<Reader, Writer>>,
    freed: mpsc::UnboundedSender<Source>,
}

impl Starter {
    fn handshake(&self, held: Held, ticket: u64) -> AbortHandle {
        let Held {
            stream,
            from,
            source,
            ..
        } = held;
        let accepting = self.accepting.clone();
        let (reports, gate, freed) = (self.reports.clone(), self.gate.clone(), self.freed.clone());
        let endpoint = self.endpoint.clone();
        let task = tokio::spawn(async move {
            let settings = &accepting.settings;
            let streams = match (stream, &endpoint) {
                (Accepted::Tcp(stream), _) => {
                    tcp::configure(&stream, settings.keepalive);
                    let (reader, writer) = stream.into_split();
                    Ok((Reader::Tcp(reader), Writer::Tcp(writer)))
                }
                (Accepted::Quic(connection), Some(endpoint)) => {
                    iroh::accept_stream(connection, settings.handshake_timeout, endpoint).await
                }
                (Accepted::Quic(_), None) => Err(Error::Internal("no iroh endpoint".into())),
            };
            let report = match streams {
                Ok((reader, writer)) => {
                    let watch = GateWatch {
                        gate: &gate,
                        ticket,
                        source,
                    };
                    let source = source.to_string();
                    admit::handshake_and_admit(reader, writer, &from, &source, &accepting, &watch)
                        .await
                }
                Err(e) => Connection::Failed(format!("connection from {from}: {e}")),
            };
            let report = {
                let mut gate = lock(&gate);
                gate.finished(ticket, matches!(report, Connection::Failed(_)));
                match report {
                    Connection::Failed(line) => {
                        gate.event(source, |_| line).map(Connection::Failed)
                    }
                    arrived => Some(arrived),
                }
            };
            let _ = freed.send(source);
            if let Some(report) = report {
                let _ = reports.send(report).await;
            }
        });
        task.abort_handle()
    }
}

/// A handshake's progress and pace, reported to the gate.
struct GateWatch<'a> {
    gate: &'a Mutex<Gate<AbortHandle>>,
    ticket: u64,
    source: Source,
}

impl crate::handshake::Watch for GateWatch<'_> {
    fn arrived(&self, n: u8) -> Result<Duration> {
        let now = std::time::Instant::now();
        let mut gate = lock(self.gate);
        gate.progress(self.ticket);
        if n != 1 {
            return Ok(Duration::ZERO);
        }
        gate.pace(self.source, now).ok_or_else(|| {
            Error::Network(format!(
                "closed: more than {} handshakes a second from this address",
                gate.limits().rate.per_sec
            ))
        })
    }
}

/// A connection waiting for a handshake slot of its source.
struct Held {
    stream: Accepted,
    from: String,
    source: Source,
    since: std::time::Instant,
}

impl Held {
    /// Whether its whole first handshake message is waiting to be read (only TCP can tell).
    fn first_message_arrived(&self) -> bool {
        match &self.stream {
            Accepted::Tcp(stream) => tcp::frame_arrived(stream, crate::handshake::MESSAGE_LENS[0]),
            Accepted::Quic(_) => false,
        }
    }
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
                let from = &held.from;
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

/// Pipe mode: one session (stdin can be sent only once). Handshakes run concurrently like a
/// room's, so silent sockets cannot block the pipe; the first admitted peer wins, later ones
/// are told so in a QUIT. Connections that never become a session do not count.
async fn serve_one_pipe(
    mut connections: mpsc::Receiver<Connection<Reader, Writer>>,
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
                Connection::Knock(knock, _) => {
                    tokio::spawn(room::refuse(knock.established));
                    continue;
                }
            },
            // Its input was never sent: not a success (exit 1), unlike a chat listener's.
            name = interrupts.recv() => {
                ui.status(format_args!("{name}; stopped listening"));
                return Err(Error::Interrupted(name));
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
                    Connection::Knock(late, _) => {
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
