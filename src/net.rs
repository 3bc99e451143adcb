//! Everything that touches TCP: parsing addresses, binding, accepting, connecting, socket
//! options and connection deadlines. The only module that names `TcpListener`/`TcpStream`;
//! sessions above it see plain byte streams.

use crate::error::{Error, Result};
use crate::keys::Identity;
use crate::session::input::Input;
use crate::session::room::{self, Arrival, Connection, RoomOptions};
use crate::session::verify::{self, TrustPolicy};
use crate::session::{self, Ended, Role, Settings};
use crate::signals::Interrupts;
use crate::trust::Allow;
use crate::ui::Ui;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::sync::Arc;
use std::time::Duration;
use thiserror::Error;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::{TcpListener, TcpStream, lookup_host};
use tokio::sync::{Semaphore, mpsc};

/// The port of the original chat program, used when an address gives none.
pub const DEFAULT_PORT: u16 = 12345;

/// A host and port as the user wrote them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address {
    /// A name, an IPv4 address, or an IPv6 address (without brackets); empty means "any".
    pub host: String,
    /// The TCP port.
    pub port: u16,
}

/// Why an address could not be understood.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum AddressError {
    #[error("empty address")]
    Empty,
    #[error("invalid port {0:?} (expected a number from 0 to 65535)")]
    BadPort(String),
    #[error("invalid IPv6 address {0:?}")]
    BadIpv6(String),
    #[error("an IPv6 address with a port must be written in brackets, e.g. [::1]:12345")]
    AmbiguousIpv6,
    #[error("invalid host name {0:?}")]
    BadHost(String),
}

impl Address {
    /// Parses `host`, `host:port`, `1.2.3.4:port`, `[::1]:port`, `::1`, or `:port`.
    pub fn parse(text: &str) -> Result<Self, AddressError> {
        let text = text.trim();
        if text.is_empty() {
            return Err(AddressError::Empty);
        }
        if let Some(rest) = text.strip_prefix('[') {
            let (ip, after) = rest
                .split_once(']')
                .ok_or_else(|| AddressError::BadIpv6(text.into()))?;
            ip.parse::<Ipv6Addr>()
                .map_err(|_| AddressError::BadIpv6(ip.into()))?;
            let port = match after {
                "" => DEFAULT_PORT,
                p => parse_port(
                    p.strip_prefix(':')
                        .ok_or_else(|| AddressError::BadPort(p.into()))?,
                )?,
            };
            return Ok(Address {
                host: ip.into(),
                port,
            });
        }
        if text.parse::<IpAddr>().is_ok() {
            return Ok(Address {
                host: text.into(),
                port: DEFAULT_PORT,
            });
        }
        let (host, port) = match text.rsplit_once(':') {
            Some((host, _)) if host.contains(':') => return Err(AddressError::AmbiguousIpv6),
            Some((host, port)) => (host, parse_port(port)?),
            None => (text, DEFAULT_PORT),
        };
        let valid = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | '_');
        if !host.chars().all(valid) {
            return Err(AddressError::BadHost(host.into()));
        }
        Ok(Address {
            host: host.into(),
            port,
        })
    }
}

fn parse_port(text: &str) -> Result<u16, AddressError> {
    text.parse().map_err(|_| AddressError::BadPort(text.into()))
}

impl fmt::Display for Address {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

async fn resolve(addr: &Address, for_listening: bool) -> Result<Vec<SocketAddr>> {
    let host = match addr.host.as_str() {
        "" if for_listening => "0.0.0.0",
        "" => return Err(Error::Usage(format!("{addr}: missing host name"))),
        h => h,
    };
    let found: Vec<SocketAddr> = lookup_host((host, addr.port))
        .await
        .map_err(|e| Error::io(format!("cannot resolve {host:?}"), e))?
        .collect();
    if found.is_empty() {
        return Err(Error::io(
            format!("cannot resolve {host:?}"),
            io::Error::new(io::ErrorKind::NotFound, "no addresses found"),
        ));
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
                return Err(Error::io(
                    format!("connecting to {addr}"),
                    io::Error::new(
                        io::ErrorKind::TimedOut,
                        format!("no answer within {} s", timeout.as_secs()),
                    ),
                ));
            }
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Some((target, e)),
        }
    }
    let (target, e) = last.ok_or_else(|| Error::Internal("no address to connect to".into()))?;
    let context = match e.kind() {
        io::ErrorKind::ConnectionRefused => {
            format!("connecting to {target}: nothing is listening there (connection refused)")
        }
        io::ErrorKind::HostUnreachable | io::ErrorKind::NetworkUnreachable => {
            format!("connecting to {target}: unreachable")
        }
        _ => format!("connecting to {target}"),
    };
    Err(Error::io(context, e))
}

/// Socket options for every connection: no Nagle delay (latency matters more than packing,
/// and every frame goes out in one write anyway), and TCP keepalive so the kernel notices a
/// dead path even when the application-level PINGs cannot get through.
fn configure(stream: &TcpStream, keepalive: Duration) {
    let _ = stream.set_nodelay(true);
    let probe = socket2::TcpKeepalive::new()
        .with_time(keepalive)
        .with_interval(keepalive / 3 + Duration::from_secs(1));
    let _ = socket2::SockRef::from(stream).set_tcp_keepalive(&probe);
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
    let addr = Address::parse(addr).map_err(|e| Error::Usage(format!("{addr:?}: {e}")))?;
    let stream = tokio::select! {
        stream = connect(&addr, connect_timeout, ui) => stream?,
        _ = interrupts.recv() => return Ok(Ended::LocalQuit),
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
    match session::establish(reader, writer, identity, &role, settings, interrupts).await? {
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
    /// Connections still handshaking at once; more are closed at once.
    pub max_handshakes: usize,
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
    if !matches!(options.allow, Allow::Anyone) {
        ui.status(format_args!("admitting {}", options.allow));
    }
    let role = Role::Listener {
        welcome: options.welcome.clone(),
        allow: options.allow.clone(),
    };
    if settings.pipe.is_some() {
        return serve_one_pipe(&listener, identity, &role, settings, input, ui, interrupts).await;
    }
    let (reports, connections) = mpsc::channel(1024);
    let accepting = accept_loop(
        &listener,
        Arc::new(identity.duplicate()),
        Arc::new(role),
        Arc::new(settings.clone()),
        options.max_handshakes,
        reports,
    );
    let room = RoomOptions {
        welcome: options.welcome.clone(),
        max_peers: options.max_peers,
        once: options.once,
        keepalive: settings.keepalive,
        outbox_bytes: room::DEFAULT_OUTBOX_BYTES,
    };
    tokio::select! {
        result = room::host(connections, &room, input, ui, interrupts) => result,
        never = accepting => match never {},
    }
}

/// Accepts connections for ever, each handshaking in its own task; at most `max_handshakes`
/// at once (further connections are closed at once, so a flood of silent sockets cannot use
/// up memory or starve real peers of handshake slots for longer than the deadline).
async fn accept_loop(
    listener: &TcpListener,
    identity: Arc<Identity>,
    role: Arc<Role>,
    settings: Arc<Settings>,
    max_handshakes: usize,
    reports: mpsc::Sender<Connection<OwnedReadHalf, OwnedWriteHalf>>,
) -> std::convert::Infallible {
    let slots = Arc::new(Semaphore::new(max_handshakes));
    loop {
        let (stream, from) = match listener.accept().await {
            Ok(pair) => pair,
            Err(e) => {
                // Out of file descriptors and the like: wait a little, then go on.
                let line = format!("accepting a connection failed: {e}");
                let _ = reports.send(Connection::Failed(line)).await;
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(slot) = slots.clone().try_acquire_owned() else {
            drop(stream);
            let line = format!(
                "connection from {from}: closed at once ({max_handshakes} handshakes already in progress)"
            );
            let _ = reports.send(Connection::Failed(line)).await;
            continue;
        };
        let (identity, role, settings) = (identity.clone(), role.clone(), settings.clone());
        let reports = reports.clone();
        tokio::spawn(async move {
            let report = handshake_and_admit(stream, from, &identity, &role, &settings).await;
            drop(slot);
            let _ = reports.send(report).await;
        });
    }
}

/// One connection up to the point where it joins the room (or is turned away).
async fn handshake_and_admit(
    stream: TcpStream,
    from: SocketAddr,
    identity: &Identity,
    role: &Role,
    settings: &Settings,
) -> Connection<OwnedReadHalf, OwnedWriteHalf> {
    configure(&stream, settings.keepalive);
    let (reader, writer) = stream.into_split();
    let mut never = Interrupts::none();
    let established =
        match session::establish(reader, writer, identity, role, settings, &mut never).await {
            Ok(Some(established)) => established,
            Ok(None) => return Connection::Failed(format!("connection from {from}: interrupted")),
            Err(e) => return Connection::Failed(format!("connection from {from}: {e}")),
        };
    let Role::Listener { allow, .. } = role else {
        return Connection::Failed("internal error: not a listener".into());
    };
    let (peer, local) = (established.peer, established.local);
    match verify::admitted(peer, &local, settings.pin.as_ref(), allow, &settings.trust) {
        Ok(info) => Connection::Arrived(Box::new(Arrival {
            established,
            info,
            address: from.to_string(),
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

/// Pipe mode: one session (stdin can be sent only once); connections that never become a
/// session (failed handshakes, refused keys) do not count.
async fn serve_one_pipe(
    listener: &TcpListener,
    identity: &Identity,
    role: &Role,
    settings: &Settings,
    input: &mut Input,
    ui: &Ui,
    interrupts: &mut Interrupts,
) -> Result<()> {
    loop {
        let (stream, from) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    ui.warn(format_args!("accepting a connection failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            name = interrupts.recv() => {
                ui.status(format_args!("{name}; stopped listening"));
                return Ok(());
            }
        };
        configure(&stream, settings.keepalive);
        ui.status(format_args!("connection from {from}"));
        let (reader, writer) = stream.into_split();
        let established =
            match session::establish(reader, writer, identity, role, settings, interrupts).await {
                Ok(Some(established)) => established,
                Ok(None) => return Ok(()),
                Err(e) => {
                    ui.warn(format_args!("connection from {from}: {e}"));
                    continue;
                }
            };
        let remote = from.to_string();
        let session = session::converse(
            established,
            Some(&remote),
            role,
            settings,
            input,
            ui,
            interrupts,
        );
        match session.await {
            Ok(_) => return Ok(()),
            // A refused peer was never a session, and must not be able to stop the listener;
            // nor was a peer that refused us.
            Err(Error::PeerRefused(why)) => {
                ui.warn(format_args!("refused the peer from {from}: {why}"));
            }
            Err(e @ Error::RefusedByPeer(_)) => {
                ui.warn(format_args!("connection from {from}: {e}"));
            }
            Err(e) => return Err(e),
        }
    }
}

async fn bind(addr: &Address) -> Result<TcpListener> {
    let mut last = None;
    for target in resolve(addr, true).await? {
        match TcpListener::bind(target).await {
            Ok(listener) => return Ok(listener),
            Err(e) => last = Some((target, e)),
        }
    }
    let (target, e) = last.ok_or_else(|| Error::Internal("no address to listen on".into()))?;
    Err(Error::io(format!("cannot listen on {target}"), e))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn a(host: &str, port: u16) -> Address {
        Address {
            host: host.into(),
            port,
        }
    }

    #[test]
    fn accepted_address_forms() {
        assert_eq!(Address::parse("example.org"), Ok(a("example.org", 12345)));
        assert_eq!(Address::parse("example.org:80"), Ok(a("example.org", 80)));
        assert_eq!(Address::parse("1.2.3.4:9"), Ok(a("1.2.3.4", 9)));
        assert_eq!(Address::parse("1.2.3.4"), Ok(a("1.2.3.4", 12345)));
        assert_eq!(Address::parse("[::1]:4000"), Ok(a("::1", 4000)));
        assert_eq!(Address::parse("[::1]"), Ok(a("::1", 12345)));
        assert_eq!(Address::parse("::1"), Ok(a("::1", 12345)));
        assert_eq!(Address::parse("127.0.0.1:0"), Ok(a("127.0.0.1", 0)));
        assert_eq!(Address::parse(":4000"), Ok(a("", 4000)));
        assert_eq!(Address::parse(" localhost "), Ok(a("localhost", 12345)));
    }

    #[test]
    fn rejected_address_forms() {
        assert_eq!(Address::parse(""), Err(AddressError::Empty));
        assert_eq!(
            Address::parse("host:http"),
            Err(AddressError::BadPort("http".into()))
        );
        assert_eq!(
            Address::parse("host:65536"),
            Err(AddressError::BadPort("65536".into()))
        );
        assert_eq!(
            Address::parse("host:"),
            Err(AddressError::BadPort("".into()))
        );
        assert_eq!(
            Address::parse("fe80::1:99999"),
            Err(AddressError::AmbiguousIpv6)
        );
        assert!(matches!(
            Address::parse("[nonsense]:1"),
            Err(AddressError::BadIpv6(_))
        ));
        assert!(matches!(
            Address::parse("[::1]x"),
            Err(AddressError::BadPort(_))
        ));
        assert!(matches!(
            Address::parse("a b:1"),
            Err(AddressError::BadHost(_))
        ));
        assert!(matches!(
            Address::parse("x/y"),
            Err(AddressError::BadHost(_))
        ));
    }

    #[test]
    fn display_brackets_ipv6() {
        assert_eq!(a("::1", 5).to_string(), "[::1]:5");
        assert_eq!(a("h", 5).to_string(), "h:5");
    }
}
