//! The iroh transport (PROTOCOL.md §11): QUIC connections dialled by public key, with UDP hole
//! punching and an encrypted relay as fallback, for peers that cannot reach each other's TCP
//! port (both behind NAT). iroh only carries bytes: each session is one bidirectional stream
//! in which the Noise handshake and everything after it run exactly as over TCP, so a relay —
//! even a hostile one — sees ciphertext inside ciphertext.
//!
//! No address lookup service (DNS/pkarr) is used: a ticket carries everything needed to
//! connect (endpoint id, relay URL, direct addresses), so nothing is published about us and
//! nothing hangs when offline.

use super::stream::{Drains, QuicWriter, Reader, Writer};
use crate::error::{Error, Result};
use crate::invite::ticket::{TicketAddr, relay_url_ok};
use crate::keys::Identity;
use hkdf::Hkdf;
use iroh::endpoint::{Connection, Incoming, IncomingAddr, PortmapperConfig, presets};
use iroh::{Endpoint, EndpointAddr, RelayConfig, RelayMode, RelayUrl, SecretKey};
use sha2::Sha256;
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::time::Duration;
use tokio::task::JoinHandle;
use zeroize::Zeroizing;

/// The ALPN of schat over iroh: the schat protocol version, so that a future schat/3 is told
/// apart before any byte of the session.
pub const ALPN: &[u8] = b"schat/2";

/// The HKDF salt that makes the endpoint key from the schat identity (see [`endpoint_key`]).
const KEY_LABEL: &[u8] = b"schat/2 iroh endpoint key";

/// How long a closing endpoint waits for its peers to acknowledge the last data unless told
/// otherwise (a pipe waits as long as TCP would keep trying), and for the close itself.
pub const LINGER: Duration = Duration::from_secs(3);

/// How long an incoming connection may take to complete its QUIC handshake.
const QUIC_HANDSHAKE: Duration = Duration::from_secs(5);

/// Flow-control window of the session's stream. A session uses one stream whose frames are at
/// most 64 KiB; QUIC's defaults (1.25 MB per stream, 100 streams of each kind, no limit for
/// the connection) would let one unauthenticated peer make us buffer hundreds of megabytes.
const STREAM_WINDOW: u32 = 2 << 20;

/// How long a listener waits for its relay before printing a ticket without it.
const ONLINE_WAIT: Duration = Duration::from_secs(5);

/// Which relays an endpoint uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Relays {
    /// iroh's public relays (run by n0).
    Default,
    /// These relays only.
    Custom(Vec<String>),
    /// None: direct UDP paths only.
    Disabled,
}

impl Relays {
    /// The relays the user named (`--relay`), if any.
    pub fn named(&self) -> &[String] {
        match self {
            Relays::Custom(urls) => urls,
            _ => &[],
        }
    }
}

/// How to run the iroh endpoint.
#[derive(Debug, Clone)]
pub struct P2pOptions {
    pub relays: Relays,
    /// A PEM file of certificates to trust for the relay, besides the usual public roots (a
    /// self-hosted relay with a private CA).
    pub relay_ca: Option<PathBuf>,
    /// Bind the UDP sockets here only (default: all interfaces, IPv4 and IPv6, any port).
    pub bind: Option<SocketAddr>,
    /// Ask the home router for a port mapping (UPnP, PCP, NAT-PMP).
    pub portmap: bool,
    /// A fresh endpoint key for this run instead of the one derived from the identity.
    pub ephemeral: bool,
}

impl Default for P2pOptions {
    fn default() -> Self {
        P2pOptions {
            relays: Relays::Default,
            relay_ca: None,
            bind: None,
            portmap: true,
            ephemeral: false,
        }
    }
}

/// The endpoint key derived from the schat identity: HKDF-SHA256 with salt
/// `"schat/2 iroh endpoint key"`, the identity's secret as input keying material, empty info.
/// Stable across restarts (a ticket stays good) without a second secret on disk; one-way (the
/// endpoint id reveals nothing of the schat key).
pub fn endpoint_key(identity: &Identity) -> SecretKey {
    let hk = Hkdf::<Sha256>::new(Some(KEY_LABEL), identity.secret().expose());
    let mut okm = Zeroizing::new([0u8; 32]);
    // 32 bytes is far below HKDF-SHA256's limit of 8,160: expand cannot fail.
    let _ = hk.expand(&[], &mut okm[..]);
    SecretKey::from_bytes(&okm)
}

/// A running iroh endpoint, the streams still delivering their last bytes, and every
/// connection it made or took (weakly: to let them finish before the endpoint closes).
pub struct P2p {
    endpoint: Endpoint,
    drains: Drains,
    connections: Arc<Mutex<Vec<iroh::endpoint::WeakConnectionHandle>>>,
}

impl P2p {
    /// Binds an endpoint. A listener (`accept`) takes schat connections; a dialer takes none.
    pub async fn start(identity: &Identity, options: &P2pOptions, accept: bool) -> Result<P2p> {
        let key = match options.ephemeral {
            true => SecretKey::generate(),
            false => endpoint_key(identity),
        };
        // One bidirectional stream, opened by the dialer; nothing else (PROTOCOL.md §11).
        let limits = iroh::endpoint::QuicTransportConfig::builder()
            .max_concurrent_bidi_streams(iroh::endpoint::VarInt::from_u32(u32::from(accept)))
            .max_concurrent_uni_streams(iroh::endpoint::VarInt::from_u32(0))
            .stream_receive_window(iroh::endpoint::VarInt::from_u32(STREAM_WINDOW))
            .receive_window(iroh::endpoint::VarInt::from_u32(STREAM_WINDOW + (64 << 10)))
            .datagram_receive_buffer_size(None)
            .build();
        let mut builder = Endpoint::builder(presets::Minimal)
            .secret_key(key)
            .transport_config(limits)
            .relay_mode(relay_mode(&options.relays)?);
        if accept {
            builder = builder.alpns(vec![ALPN.to_vec()]);
        }
        if !options.portmap {
            builder = builder.portmapper_config(PortmapperConfig::Disabled);
        }
        if let Some(addr) = options.bind {
            builder = builder
                .clear_ip_transports()
                .bind_addr(addr)
                .map_err(|e| Error::Usage(format!("--p2p-bind {addr}: {e}")))?;
        }
        if let Some(path) = &options.relay_ca {
            let roots = load_certs(path)?;
            builder =
                builder.ca_tls_config(iroh::tls::CaTlsConfig::embedded().with_extra_roots(roots));
        }
        let endpoint = builder
            .bind()
            .await
            .map_err(|e| Error::Network(format!("cannot start the iroh endpoint (UDP): {e}")))?;
        Ok(P2p {
            endpoint,
            drains: Arc::default(),
            connections: Arc::default(),
        })
    }

    /// Waits (briefly) until the endpoint is connected to its relay, so that a ticket can name
    /// it. False when it could not be reached in time (the ticket then has direct addresses
    /// only) or when there is no relay.
    pub async fn online(&self, relays: &Relays) -> bool {
        *relays != Relays::Disabled
            && tokio::time::timeout(ONLINE_WAIT, self.endpoint.online())
                .await
                .is_ok()
    }

    /// How to reach this endpoint, for a ticket: its id, its relay, its direct addresses.
    pub fn ticket_addrs(&self, room: usize) -> Vec<TicketAddr> {
        let addr = self.endpoint.addr();
        let mut out = vec![TicketAddr::Endpoint(*addr.id.as_bytes())];
        out.extend(
            addr.relay_urls()
                .map(ToString::to_string)
                .filter(|u| relay_url_ok(u))
                .map(TicketAddr::Relay),
        );
        let mut direct: Vec<SocketAddr> = addr.ip_addrs().copied().collect();
        direct.sort_by_key(|a| (a.is_ipv6(), *a));
        out.extend(direct.into_iter().map(TicketAddr::Udp));
        out.truncate(room.max(1));
        out
    }

    /// The next connection attempt from a dialer (None once the endpoint is closed).
    pub async fn incoming(&self) -> Option<Incoming> {
        self.endpoint.accept().await
    }

    /// A stream to the endpoint `target`, and its connection (for its path).
    pub async fn connect(&self, target: EndpointAddr) -> Result<(Reader, Writer, Connection)> {
        let conn = self
            .endpoint
            .connect(target, ALPN)
            .await
            .map_err(|e| network("iroh: cannot connect to the listener's endpoint", e))?;
        let (send, recv) = conn
            .open_bi()
            .await
            .map_err(|e| network("iroh: cannot open a stream", e))?;
        self.track(&conn);
        let writer = QuicWriter::new(send, conn.clone(), self.drains.clone());
        Ok((Reader::Quic(recv), Writer::Quic(writer), conn))
    }

    /// Lets the last bytes of finished streams reach their peers (for up to `linger`), then
    /// closes the endpoint (telling the relay and the peers). False when some stream's last
    /// bytes were not acknowledged in time: they may never arrive. (Over TCP the kernel goes
    /// on delivering after we exit; QUIC's retransmissions die with the process.)
    pub async fn close(&self, linger: Duration) -> bool {
        let drains: Vec<JoinHandle<bool>> = match self.drains.lock() {
            Ok(mut d) => d.drain(..).collect(),
            Err(_) => Vec::new(),
        };
        let deadline = tokio::time::Instant::now() + linger;
        let delivered = tokio::time::timeout_at(deadline, async {
            let mut all = true;
            for drain in drains {
                all &= drain.await.unwrap_or(false);
            }
            all
        })
        .await
        .unwrap_or(false);
        // A connection still held somewhere (a room member being torn down as the room
        // ends) may have frames in flight that no drain covers yet: it gets what is left of
        // `linger` to finish: the peer closes it once it has what it needs.
        let live: Vec<_> = match self.connections.lock() {
            Ok(mut c) => c.drain(..).filter(|w| w.upgrade().is_some()).collect(),
            Err(_) => Vec::new(),
        };
        let _ = tokio::time::timeout_at(deadline, async {
            for weak in live {
                let _ = weak.closed().await;
            }
        })
        .await;
        let _ = tokio::time::timeout(LINGER, self.endpoint.close()).await;
        delivered
    }

    /// Remembers `conn` (weakly) for [`P2p::close`].
    fn track(&self, conn: &Connection) {
        if let Ok(mut all) = self.connections.lock() {
            all.retain(|w| w.upgrade().is_some());
            all.push(conn.weak_handle());
        }
    }
}

/// Where an incoming iroh connection came from, for logs and for the admission gate.
#[derive(Debug, Clone)]
pub struct Origin {
    /// `iroh 1a2b3c4d5e (direct UDP to 198.51.100.7:4242, …)` or `… (relayed via …)`.
    pub label: String,
    /// The peer's IP address when it came directly; None when relayed.
    pub ip: Option<IpAddr>,
    /// Its endpoint id (the relay vouches for it; QUIC's handshake proved it).
    pub id: [u8; 32],
}

/// Whether an incoming connection should prove its address first (a QUIC retry) because we
/// are busy: a flood of Initials from spoofed addresses then costs us nothing.
pub fn should_retry(incoming: &Incoming) -> bool {
    !incoming.remote_addr_validated()
}

/// Completes an incoming connection's QUIC handshake (within a few seconds: it is cheap for an
/// honest peer, and slots for it are few).
pub async fn handshake(incoming: Incoming) -> Result<(Connection, Origin)> {
    let ip = match incoming.remote_addr() {
        IncomingAddr::Ip(addr) => Some(addr.ip()),
        _ => None,
    };
    let conn = tokio::time::timeout(QUIC_HANDSHAKE, incoming)
        .await
        .map_err(|_| Error::Timeout("an iroh connection's QUIC handshake", 5))?
        .map_err(|e| network("iroh connection failed", e))?;
    let id = *conn.remote_id().as_bytes();
    let label = format!(
        "iroh {} ({})",
        conn.remote_id().fmt_short(),
        describe_path(&conn)
    );
    Ok((conn, Origin { label, ip, id }))
}

/// The stream a dialer opens with its first handshake message, within `within`.
pub async fn accept_stream(
    conn: Connection,
    within: Duration,
    endpoint: &P2p,
) -> Result<(Reader, Writer)> {
    let (send, recv) = tokio::time::timeout(within, conn.accept_bi())
        .await
        .map_err(|_| Error::Timeout("an iroh connection to open its stream", within.as_secs()))?
        .map_err(|e| network("iroh connection without a stream", e))?;
    endpoint.track(&conn);
    let writer = QuicWriter::new(send, conn, endpoint.drains.clone());
    Ok((Reader::Quic(recv), Writer::Quic(writer)))
}

/// A network error whose text came (partly) from the peer, a relay or anyone on the path (a
/// QUIC close reason): made safe to print.
fn network(what: &str, e: impl fmt::Display) -> Error {
    Error::Network(format!("{what}: {}", crate::sanitize::line(&e.to_string())))
}

/// The endpoint to dial from a ticket's iroh parts (None: the ticket has none).
pub fn target(parts: &[TicketAddr]) -> Result<Option<EndpointAddr>> {
    let Some(id) = parts.iter().find_map(|p| match p {
        TicketAddr::Endpoint(id) => Some(id),
        _ => None,
    }) else {
        return Ok(None);
    };
    let id = iroh::PublicKey::from_bytes(id).map_err(|_| {
        Error::Usage("the ticket's iroh endpoint id is not a valid key (damaged ticket?)".into())
    })?;
    let mut addr = EndpointAddr::new(id);
    for part in parts {
        match part {
            TicketAddr::Relay(url) => match url.parse::<RelayUrl>() {
                Ok(url) => addr = addr.with_relay_url(url),
                Err(_) => {
                    return Err(Error::Usage(format!(
                        "the ticket's relay URL {url:?} cannot be used"
                    )));
                }
            },
            TicketAddr::Udp(sa) => addr = addr.with_ip_addr(*sa),
            _ => {}
        }
    }
    Ok(Some(addr))
}

/// The relays named in a ticket, as a dialer's relays (its own `--relay` wins).
pub fn ticket_relays(parts: &[TicketAddr]) -> Vec<String> {
    parts
        .iter()
        .filter_map(|p| match p {
            TicketAddr::Relay(url) => Some(url.clone()),
            _ => None,
        })
        .collect()
}

/// Which path a connection uses now, in words.
pub fn describe_path(conn: &Connection) -> String {
    let paths = conn.paths();
    let selected = paths.iter().find(|p| p.is_selected());
    let Some(path) = selected else {
        return "no path yet".into();
    };
    match path.remote_addr() {
        iroh::TransportAddr::Ip(addr) => {
            format!("direct UDP to {addr}, rtt {} ms", path.rtt().as_millis())
        }
        iroh::TransportAddr::Relay(url) => format!("relayed via {url}"),
        other => format!("via {other}"),
    }
}

/// Waits for the next change of the path in use and says what it is now; None when the
/// connection is gone.
pub async fn next_path_change(
    events: &mut iroh::endpoint::PathEventStream,
    conn: &Connection,
) -> Option<String> {
    use iroh::endpoint::PathEvent;
    loop {
        let event =
            std::future::poll_fn(|cx| futures_core::Stream::poll_next(Pin::new(&mut *events), cx))
                .await?;
        if let PathEvent::Selected { .. } | PathEvent::Lagged { .. } = event {
            return Some(describe_path(conn));
        }
    }
}

fn relay_mode(relays: &Relays) -> Result<RelayMode> {
    Ok(match relays {
        Relays::Default => RelayMode::Default,
        Relays::Disabled => RelayMode::Disabled,
        Relays::Custom(urls) => {
            let mut configs = Vec::with_capacity(urls.len());
            for text in urls {
                configs.push(relay_config(text)?);
            }
            RelayMode::Custom(configs.into_iter().collect())
        }
    })
}

/// A relay from its URL. An https relay is asked for our public address over QUIC (QAD, on
/// iroh's port 7842, as `schat relay` with TLS serves it); a plain-http one is not (it cannot
/// serve QAD, and asking would only cost seconds of timeouts).
fn relay_config(text: &str) -> Result<RelayConfig> {
    let url: RelayUrl = text
        .parse()
        .ok()
        .filter(|_| relay_url_ok(text))
        .ok_or_else(|| Error::Usage(format!("--relay {text:?}: not an http(s) URL")))?;
    let quic = text
        .to_ascii_lowercase()
        .starts_with("https://")
        .then(|| iroh_relay::RelayQuicConfig::new(iroh_relay::defaults::DEFAULT_RELAY_QUIC_PORT));
    Ok(RelayConfig::new(url, quic))
}

/// Certificates from a PEM file.
pub fn load_certs(
    path: &std::path::Path,
) -> Result<Vec<rustls::pki_types::CertificateDer<'static>>> {
    use rustls::pki_types::{CertificateDer, pem::PemObject};
    let shown = path.display();
    let certs = CertificateDer::pem_file_iter(path)
        .map_err(|e| Error::Usage(format!("{shown}: {e}")))?
        .collect::<std::result::Result<Vec<_>, _>>()
        .map_err(|e| Error::Usage(format!("{shown}: {e}")))?;
    if certs.is_empty() {
        return Err(Error::Usage(format!(
            "{shown}: no certificate in it (PEM expected)"
        )));
    }
    Ok(certs)
}

#[cfg(test)]
mod tests;
