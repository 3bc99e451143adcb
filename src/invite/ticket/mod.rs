//! Tickets: one line, `schat:` then base32 (RFC 4648, lower case, no padding) of
//!
//! ```text
//! v1: 0x01 | key (32) | secret (16) | expires (u64 BE, Unix seconds) | rest
//! v2: 0x02 | flags (1) | key (32) | [secret (16) | expires (u64 BE)] if flags bit 0 | rest
//! rest    = name length (1) | name (UTF-8, 0–128 bytes) | address count (1) | addresses | check (4)
//! address = 0x04 IPv4 (4) | 0x06 IPv6 (16) | 0x00 host length (1) host (ASCII), then port (u16 BE)
//!           (TCP; v2 adds the iroh address:) 0x20 endpoint id (32) | 0x21 relay URL length (1)
//!           URL | 0x24 UDP IPv4 (4) port | 0x26 UDP IPv6 (16) port
//! check   = the first 4 bytes of SHA-256("schat ticket v1" || everything before it)
//! ```
//!
//! An invite (with a secret) that only has TCP addresses is written as v1, which every schat
//! reads; anything else as v2. A v2 ticket without a secret is just an address (what
//! `listen --p2p` prints): the key to expect and how to reach it.
//!
//! The check catches a ticket cut short or mistyped; it is no protection against someone who
//! can change the ticket on its way (they would just compute it again). That is why a ticket
//! goes over a channel you trust for integrity — the one you would trust to tell you a
//! fingerprint. Pure: no I/O.

use crate::keys::PublicKey;
use data_encoding::BASE32_NOPAD;
use sha2::{Digest, Sha256};
use std::fmt;
use std::net::{IpAddr, SocketAddr};
use zeroize::Zeroizing;

/// What every ticket starts with.
pub const PREFIX: &str = "schat:";

/// The first ticket format: an invite reached over TCP.
pub const VERSION: u8 = 0x01;

/// The second: an optional secret, and iroh addresses.
pub const VERSION_2: u8 = 0x02;

/// v2 flags: the ticket carries a secret and an expiry (it is an invite).
const FLAG_SECRET: u8 = 0x01;

/// Bytes of the one-time secret: 128 bits.
pub const SECRET_LEN: usize = 16;

/// Longest inviter name in a ticket, in bytes (the name rules allow 32 characters).
const MAX_NAME: usize = 128;

/// Addresses a ticket carries at most.
pub const MAX_ADDRS: usize = 16;

const CHECK_LEN: usize = 4;
const CHECK_LABEL: &[u8] = b"schat ticket v1";

/// Longest relay URL in a ticket, in bytes.
const MAX_URL: usize = 255;

/// Where the inviter can be dialled.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TicketAddr {
    /// A TCP address: an IP address and port.
    Ip(IpAddr, u16),
    /// A TCP address: a host name (resolved when dialling) and port.
    Host(String, u16),
    /// The iroh endpoint id (an Ed25519 public key): dialled over QUIC, by key.
    Endpoint([u8; 32]),
    /// The iroh relay the endpoint is reachable through (an http or https URL).
    Relay(String),
    /// A direct UDP address of the iroh endpoint.
    Udp(SocketAddr),
}

impl TicketAddr {
    /// Whether this is a TCP address (the others belong to the iroh endpoint).
    pub fn is_tcp(&self) -> bool {
        matches!(self, TicketAddr::Ip(..) | TicketAddr::Host(..))
    }
}

impl fmt::Display for TicketAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            TicketAddr::Ip(IpAddr::V6(ip), port) => write!(f, "[{ip}]:{port}"),
            TicketAddr::Ip(ip, port) => write!(f, "{ip}:{port}"),
            TicketAddr::Host(host, port) => write!(f, "{host}:{port}"),
            TicketAddr::Endpoint(id) => write!(f, "iroh {}", hex::encode(&id[..5])),
            TicketAddr::Relay(url) => write!(f, "relay {url}"),
            TicketAddr::Udp(addr) => write!(f, "udp {addr}"),
        }
    }
}

/// Whether `url` may go in a ticket: http(s), printable ASCII without blanks, not too long.
/// (Ticket text is untrusted: it ends up in status lines and known_peers.)
pub fn relay_url_ok(url: &str) -> bool {
    let lower = url.to_ascii_lowercase();
    (lower.starts_with("https://") || lower.starts_with("http://"))
        && url.len() <= MAX_URL
        && url.bytes().all(|b| b.is_ascii_graphic())
}

/// Whether a relay URL that came in a ticket may be contacted: `https://HOST[:PORT]/` only
/// (no user, path, query or fragment), or plain `http://` on a loopback host. A ticket is text
/// anyone can write, and the relay is contacted before the listener's key is proven: without
/// this a ticket could make the dialer send requests to any host, port and path. `explicit`:
/// the relays the user named with `--relay`, which may be used as given.
pub fn ticket_relay_ok(url: &str, explicit: &[String]) -> bool {
    if explicit.iter().any(|e| e.eq_ignore_ascii_case(url)) {
        return relay_url_ok(url);
    }
    let lower = url.to_ascii_lowercase();
    let (https, rest) = match (
        lower.strip_prefix("https://"),
        lower.strip_prefix("http://"),
    ) {
        (Some(rest), _) => (true, rest),
        (None, Some(rest)) => (false, rest),
        _ => return false,
    };
    let (authority, path) = rest.split_at(rest.find('/').unwrap_or(rest.len()));
    if !(path.is_empty() || path == "/") || !relay_url_ok(url) {
        return false;
    }
    // HOST, [IPv6] or HOST:PORT: no user, no query, no fragment.
    let (host, port) = match authority.strip_prefix('[') {
        Some(v6) => match v6.split_once(']') {
            Some((ip, rest)) => (ip, rest.strip_prefix(':')),
            None => return false,
        },
        None => match authority.split_once(':') {
            Some((h, p)) => (h, Some(p)),
            None => (authority, None),
        },
    };
    let host_ok = !host.is_empty()
        && host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':'));
    let port_ok = port.is_none_or(|p| !p.is_empty() && p.parse::<u16>().is_ok());
    if !host_ok || !port_ok {
        return false;
    }
    https
        || host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// A decoded ticket. The secret never shows in `Debug`.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    /// The inviter's static key: the dialer expects exactly this one.
    pub key: PublicKey,
    /// The one-time secret the dialer proves inside the encrypted session (none: the ticket
    /// is only an address).
    pub secret: Option<Zeroizing<[u8; SECRET_LEN]>>,
    /// Unix seconds after which the inviter no longer honours it (0 without a secret).
    pub expires: u64,
    /// The name the inviter suggests for itself (the dialer's petname for it; editable).
    pub name: String,
    /// Where to dial, in order.
    pub addrs: Vec<TicketAddr>,
}

impl fmt::Debug for Ticket {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Ticket")
            .field("key", &self.key.to_hex())
            .field("secret", &self.secret.as_ref().map(|_| "(redacted)"))
            .field("expires", &self.expires)
            .field("name", &self.name)
            .field("addrs", &self.addrs)
            .finish()
    }
}

/// Why a ticket could not be read. Always the ticket's fault (mistyped, cut, tampered with).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum TicketError {
    #[error("not a schat ticket (it does not start with \"schat:\")")]
    Prefix,
    #[error("the ticket is not valid base32 (mistyped or cut?)")]
    Encoding,
    #[error("the ticket is damaged: its check does not match (mistyped, cut, or altered)")]
    Check,
    #[error("the ticket is format version {0}; this schat reads versions 1 and 2 (upgrade schat?)")]
    Version(u8),
    #[error("the ticket is damaged: {0}")]
    Malformed(&'static str),
}

impl Ticket {
    /// The one-line text form.
    pub fn encode(&self) -> String {
        let mut bytes = Zeroizing::new(Vec::with_capacity(128));
        let addrs = &self.addrs[..self.addrs.len().min(MAX_ADDRS)];
        let v1 = self.secret.is_some() && addrs.iter().all(TicketAddr::is_tcp);
        if v1 {
            bytes.push(VERSION);
        } else {
            bytes.push(VERSION_2);
            bytes.push(if self.secret.is_some() {
                FLAG_SECRET
            } else {
                0
            });
        }
        bytes.extend_from_slice(self.key.as_bytes());
        if let Some(secret) = &self.secret {
            bytes.extend_from_slice(&secret[..]);
            bytes.extend_from_slice(&self.expires.to_be_bytes());
        }
        let name = truncate(&self.name, MAX_NAME);
        bytes.push(name.len() as u8);
        bytes.extend_from_slice(name.as_bytes());
        bytes.push(addrs.len() as u8);
        for addr in addrs {
            let port = match addr {
                TicketAddr::Ip(IpAddr::V4(ip), port) => {
                    bytes.push(0x04);
                    bytes.extend_from_slice(&ip.octets());
                    *port
                }
                TicketAddr::Ip(IpAddr::V6(ip), port) => {
                    bytes.push(0x06);
                    bytes.extend_from_slice(&ip.octets());
                    *port
                }
                TicketAddr::Host(host, port) => {
                    let host = truncate(host, 255);
                    bytes.push(0x00);
                    bytes.push(host.len() as u8);
                    bytes.extend_from_slice(host.as_bytes());
                    *port
                }
                TicketAddr::Endpoint(id) => {
                    bytes.push(0x20);
                    bytes.extend_from_slice(id);
                    continue;
                }
                TicketAddr::Relay(url) => {
                    let url = truncate(url, MAX_URL);
                    bytes.push(0x21);
                    bytes.push(url.len() as u8);
                    bytes.extend_from_slice(url.as_bytes());
                    continue;
                }
                TicketAddr::Udp(SocketAddr::V4(a)) => {
                    bytes.push(0x24);
                    bytes.extend_from_slice(&a.ip().octets());
                    a.port()
                }
                TicketAddr::Udp(SocketAddr::V6(a)) => {
                    bytes.push(0x26);
                    bytes.extend_from_slice(&a.ip().octets());
                    a.port()
                }
            };
            bytes.extend_from_slice(&port.to_be_bytes());
        }
        let check = check(&bytes);
        bytes.extend_from_slice(&check);
        // Base32 straight into a buffer of its final size, lower-cased in place: no copy of
        // the secret is left in freed memory (the returned text is the ticket itself).
        let mut text = String::with_capacity(PREFIX.len() + BASE32_NOPAD.encode_len(bytes.len()));
        text.push_str(PREFIX);
        BASE32_NOPAD.encode_append(&bytes, &mut text);
        text.make_ascii_lowercase();
        text
    }

    /// Reads a ticket (surrounding blanks are ignored; upper or lower case).
    pub fn decode(text: &str) -> Result<Ticket, TicketError> {
        let text = text.trim();
        let body = text
            .get(..PREFIX.len())
            .filter(|p| p.eq_ignore_ascii_case(PREFIX))
            .map(|_| &text[PREFIX.len()..])
            .ok_or(TicketError::Prefix)?;
        // The upper-cased copy holds the secret too: exact-size, and wiped when dropped.
        let upper = Zeroizing::new(body.to_ascii_uppercase());
        let bytes = Zeroizing::new(
            BASE32_NOPAD
                .decode(upper.as_bytes())
                .map_err(|_| TicketError::Encoding)?,
        );
        if bytes.len() < 1 + CHECK_LEN {
            return Err(TicketError::Malformed("too short"));
        }
        let (payload, sum) = bytes.split_at(bytes.len() - CHECK_LEN);
        if check(payload) != sum {
            return Err(TicketError::Check);
        }
        let mut r = Reader(payload);
        let version = r.byte()?;
        let with_secret = match version {
            VERSION => true,
            VERSION_2 => match r.byte()? {
                0 => false,
                FLAG_SECRET => true,
                _ => return Err(TicketError::Malformed("unknown flags")),
            },
            _ => return Err(TicketError::Version(version)),
        };
        let key = PublicKey::from_bytes(r.array::<32>()?);
        let (secret, expires) = match with_secret {
            true => (
                Some(Zeroizing::new(r.array::<SECRET_LEN>()?)),
                u64::from_be_bytes(r.array::<8>()?),
            ),
            false => (None, 0),
        };
        let len = usize::from(r.byte()?);
        if len > MAX_NAME {
            return Err(TicketError::Malformed("name too long"));
        }
        let name = std::str::from_utf8(r.take(len)?)
            .map_err(|_| TicketError::Malformed("name is not UTF-8"))?
            .to_string();
        let count = usize::from(r.byte()?);
        if count > MAX_ADDRS {
            return Err(TicketError::Malformed("too many addresses"));
        }
        let mut addrs = Vec::with_capacity(count);
        for _ in 0..count {
            let addr = match r.byte()? {
                0x04 => IpAddr::from(r.array::<4>()?),
                0x06 => IpAddr::from(r.array::<16>()?),
                0x00 => {
                    let len = usize::from(r.byte()?);
                    let host = std::str::from_utf8(r.take(len)?)
                        .ok()
                        .filter(|h| {
                            !h.is_empty()
                                && h.chars()
                                    .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-'))
                        })
                        .ok_or(TicketError::Malformed("a host name is not a host name"))?
                        .to_string();
                    let port = u16::from_be_bytes(r.array::<2>()?);
                    addrs.push(TicketAddr::Host(host, port));
                    continue;
                }
                kind @ (0x20 | 0x21 | 0x24 | 0x26) if version == VERSION_2 => {
                    addrs.push(match kind {
                        0x20 => TicketAddr::Endpoint(r.array::<32>()?),
                        0x21 => {
                            let len = usize::from(r.byte()?);
                            let url = std::str::from_utf8(r.take(len)?)
                                .ok()
                                .filter(|u| relay_url_ok(u))
                                .ok_or(TicketError::Malformed("a relay URL is not a URL"))?;
                            TicketAddr::Relay(url.to_string())
                        }
                        0x24 => {
                            let ip = std::net::Ipv4Addr::from(r.array::<4>()?);
                            TicketAddr::Udp(SocketAddr::from((ip, u16::from_be_bytes(r.array()?))))
                        }
                        _ => {
                            let ip = std::net::Ipv6Addr::from(r.array::<16>()?);
                            TicketAddr::Udp(SocketAddr::from((ip, u16::from_be_bytes(r.array()?))))
                        }
                    });
                    continue;
                }
                _ => return Err(TicketError::Malformed("unknown address kind")),
            };
            addrs.push(TicketAddr::Ip(addr, u16::from_be_bytes(r.array::<2>()?)));
        }
        if !r.0.is_empty() {
            return Err(TicketError::Malformed("bytes left over"));
        }
        let endpoints = addrs
            .iter()
            .filter(|a| matches!(a, TicketAddr::Endpoint(_)))
            .count();
        let iroh_parts = addrs
            .iter()
            .any(|a| matches!(a, TicketAddr::Relay(_) | TicketAddr::Udp(_)));
        if endpoints > 1 || (iroh_parts && endpoints == 0) {
            return Err(TicketError::Malformed(
                "iroh addresses without one endpoint id",
            ));
        }
        Ok(Ticket {
            key,
            secret,
            expires,
            name,
            addrs,
        })
    }

    /// The invite's id: 8 hex digits of SHA-256(secret), for `invite --list` and `--revoke`.
    /// It names the invite without being able to use it. (None: an address, not an invite.)
    pub fn id(&self) -> Option<String> {
        self.secret.as_ref().map(|s| id_of(s))
    }

    /// The TCP addresses, in order.
    pub fn tcp_addrs(&self) -> impl Iterator<Item = &TicketAddr> {
        self.addrs.iter().filter(|a| a.is_tcp())
    }

    /// The iroh endpoint id, when the ticket has one.
    pub fn endpoint(&self) -> Option<[u8; 32]> {
        self.addrs.iter().find_map(|a| match a {
            TicketAddr::Endpoint(id) => Some(*id),
            _ => None,
        })
    }
}

/// The id of the invite whose secret is `secret` (see [`Ticket::id`]).
pub fn id_of(secret: &[u8; SECRET_LEN]) -> String {
    hex::encode(&secret_hash(secret)[..4])
}

/// What the inviter stores instead of the secret: SHA-256 with a label. A copy of the
/// inviter's files does not let anyone use its invites.
pub fn secret_hash(secret: &[u8; SECRET_LEN]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(b"schat invite secret v1");
    h.update(secret);
    h.finalize().into()
}

fn check(payload: &[u8]) -> [u8; CHECK_LEN] {
    let mut h = Sha256::new();
    h.update(CHECK_LABEL);
    h.update(payload);
    let digest = h.finalize();
    let mut out = [0; CHECK_LEN];
    out.copy_from_slice(&digest[..CHECK_LEN]);
    out
}

/// The longest prefix of `s` of at most `max` bytes that ends on a character boundary.
fn truncate(s: &str, max: usize) -> &str {
    let mut end = s.len().min(max);
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], TicketError> {
        if self.0.len() < n {
            return Err(TicketError::Malformed("cut short"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8, TicketError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], TicketError> {
        let mut out = [0; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

#[cfg(test)]
mod tests;
