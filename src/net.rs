//! Everything that touches TCP: parsing addresses, binding, accepting, connecting, socket
//! options and connection deadlines. The only module that names `TcpListener`/`TcpStream`;
//! sessions above it see plain byte streams.

use crate::error::{Error, Result};
use crate::keys::Identity;
use crate::session::input::{Input, InputEvent};
use crate::session::verify::TrustPolicy;
use crate::session::{self, Ended, Role, Settings};
use crate::signals::Interrupts;
use crate::trust::Allow;
use crate::ui::Ui;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv6Addr, SocketAddr};
use std::time::Duration;
use thiserror::Error;
use tokio::net::{TcpListener, TcpStream, lookup_host};

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
}

/// `schat listen`: accept peers one at a time, until the user quits (or after one session with
/// `--once`). A peer that fails the handshake or misbehaves ends only its own connection.
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
    loop {
        let (stream, from) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(pair) => pair,
                Err(e) => {
                    // Out of file descriptors and the like: wait a little, then go on.
                    ui.warn(format_args!("accepting a connection failed: {e}"));
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            name = interrupts.recv() => {
                ui.status(format_args!("{name}; stopped listening"));
                return Ok(());
            }
            // A person at the terminal may give up waiting. (Piped input is kept for the
            // first peer instead: `echo hi | schat listen --once` must deliver "hi".)
            event = input.next(), if ui.is_interactive() => match event {
                InputEvent::Line(line) if line != "quit" && line != "/quit" => {
                    ui.warn("no peer is connected yet; nothing was sent");
                    continue;
                }
                InputEvent::TooLong | InputEvent::NotUtf8 => continue,
                _ => return Ok(()),
            },
        };
        configure(&stream, settings.keepalive);
        ui.status(format_args!("connection from {from}"));
        let (reader, writer) = stream.into_split();
        // Someone who never completes a handshake is not a session: note it, keep waiting.
        let established =
            match session::establish(reader, writer, identity, &role, settings, interrupts).await {
                Ok(Some(established)) => established,
                Ok(None) => return Ok(()),
                Err(e) => {
                    ui.warn(format_args!("connection from {from}: {e}"));
                    continue;
                }
            };
        let remote = from.to_string();
        let conversation = session::converse(
            established,
            Some(&remote),
            &role,
            settings,
            input,
            ui,
            interrupts,
        );
        match conversation.await {
            Ok(Ended::LocalQuit) => return Ok(()),
            Ok(Ended::PeerQuit) if options.once => return Ok(()),
            Ok(Ended::PeerQuit) => {}
            // A refused peer was never a session, and must not be able to stop the listener;
            // nor was a peer that refused us.
            Err(Error::PeerRefused(why)) => {
                ui.warn(format_args!("refused the peer from {from}: {why}"));
                continue;
            }
            Err(e @ Error::RefusedByPeer(_)) => {
                ui.warn(format_args!("connection from {from}: {e}"));
                continue;
            }
            Err(e) if options.once => return Err(e),
            Err(e) => ui.error(format_args!("session with {from} ended: {e}")),
        }
        ui.status(format_args!("waiting for the next peer on {local}"));
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
