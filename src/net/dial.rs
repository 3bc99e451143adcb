//! `schat dial`: where to go (an address, a petname's stored addresses, a ticket's TCP and
//! iroh addresses), connecting over TCP and iroh at once when both are known (the first path
//! whose listener proves the expected key wins), then one session.

use super::iroh::{self, P2pOptions, Relays};
use super::stream::{Reader, Writer};
use super::{Address, delivered, tcp, user_timeout};
use crate::error::{Error, Result};
use crate::invite::ticket::{Ticket, TicketAddr};
use crate::keys::PublicKey;
use crate::session::verify::{self, TrustPolicy};
use crate::session::{self, Ended, Role, Run, Settings, User};
use crate::signals::Interrupts;
use crate::ui::Ui;
use std::cell::Cell;
use std::time::Duration;
use tokio::net::TcpStream;

/// What `schat dial` was asked to reach, and how.
#[derive(Debug, Clone)]
pub struct DialTarget {
    /// An address, a petname, or (when `settings.ticket` is set) the ticket's text.
    pub addr: String,
    /// What to do with a key known_peers has not seen.
    pub policy: TrustPolicy,
    /// How to run our iroh endpoint, if a route needs one.
    pub p2p: P2pOptions,
    /// Which transports may be used.
    pub via: Via,
}

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

/// `schat dial`: connect (over TCP, iroh, or both at once), then run one session. Connecting
/// gets `--timeout`, like the handshake.
pub async fn dial(target: &DialTarget, run: &Run<'_>, user: &mut User<'_>) -> Result<Ended> {
    let Run {
        identity,
        settings,
        ui,
    } = *run;
    let DialTarget {
        addr,
        policy,
        p2p,
        via,
    } = target;
    let (addr, policy, via) = (addr.as_str(), *policy, *via);
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
    let run = Run {
        identity,
        settings,
        ui,
    };
    let result = dial_routes(&routes, endpoint.as_ref(), policy, &run, user).await;
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

/// The session over the first route whose listener proves the expected key.
async fn dial_routes(
    routes: &Routes,
    endpoint: Option<&iroh::P2p>,
    policy: TrustPolicy,
    run: &Run<'_>,
    user: &mut User<'_>,
) -> Result<Ended> {
    let Run {
        identity,
        settings,
        ui,
    } = *run;
    let connect_timeout = settings.handshake_timeout;
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
                name = user.interrupts.recv() => {
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
    // After a cut, the same routes again, expecting the same key (PROTOCOL.md §4.11).
    let mut again = Again {
        routes,
        endpoint,
        run,
    };
    let session = session::converse(
        established,
        remote.as_deref(),
        &role,
        run,
        user,
        Some(&mut again),
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

/// A dialled chat's way back to its listener after a cut: TCP first, then iroh, each within
/// the handshake deadline; only the session's key may answer.
struct Again<'a> {
    routes: &'a Routes,
    endpoint: Option<&'a iroh::P2p>,
    run: &'a Run<'a>,
}

impl session::Redial<Reader, Writer> for Again<'_> {
    fn redial<'a>(&'a mut self, key: &'a PublicKey) -> session::Redialling<'a, Reader, Writer> {
        Box::pin(async move {
            let Run {
                identity, settings, ..
            } = *self.run;
            let timeout = settings.handshake_timeout;
            let role = Role::Dialer {
                addr: String::new(),
                policy: TrustPolicy::Strict,
            };
            let same_key = |answered: &PublicKey| match answered == key {
                true => Ok(()),
                false => Err(Error::PeerRefused(format!(
                    "another key answered when dialling again: {} (the session's is {})",
                    crate::fingerprint::grouped(answered),
                    crate::fingerprint::grouped(key)
                ))),
            };
            let mut last = None;
            for target in &self.routes.tcp {
                let stream = match tcp::connect_quietly(target, timeout).await {
                    Ok(stream) => stream,
                    Err(e) => {
                        last = Some(e);
                        continue;
                    }
                };
                tcp::configure(&stream, settings.keepalive);
                let (reader, writer) = stream.into_split();
                let (reader, writer) = (Reader::Tcp(reader), Writer::Tcp(writer));
                let mut never = Interrupts::none();
                match session::establish(
                    reader, writer, identity, &role, settings, &mut never, same_key,
                )
                .await
                {
                    Ok(Some(established)) => return Ok(established),
                    Ok(None) => return Err(Error::Internal("interrupted".into())),
                    Err(e @ Error::PeerRefused(_)) => return Err(e),
                    Err(e) => last = Some(e),
                }
            }
            if let (Some(endpoint), Some((target, _))) = (self.endpoint, &self.routes.iroh) {
                let connected = tokio::time::timeout(timeout, endpoint.connect(target.clone()))
                    .await
                    .map_err(|_| Error::Network("iroh: no answer".into()))
                    .and_then(|r| r);
                match connected {
                    Ok((reader, writer, _conn)) => {
                        let mut never = Interrupts::none();
                        return session::establish(
                            reader, writer, identity, &role, settings, &mut never, same_key,
                        )
                        .await?
                        .ok_or_else(|| Error::Internal("interrupted".into()));
                    }
                    Err(e) => last = Some(e),
                }
            }
            Err(last.unwrap_or_else(|| Error::Internal("nowhere to dial".into())))
        })
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
