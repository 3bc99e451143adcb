//! TCP: resolving, connecting, binding and socket options. The only place that names
//! `TcpListener`/`TcpStream`.

use super::Address;
use crate::error::{Error, Result};
use crate::invite::ticket::TicketAddr;
use crate::ui::Ui;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;
use tokio::net::{TcpListener, TcpStream, lookup_host};

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

/// How long a connection attempt runs before the user is told where we are connecting.
const SAY_CONNECTING_AFTER: Duration = Duration::from_millis(700);

/// Connects to the first address of `addr` that answers, within `timeout` overall.
pub(super) async fn connect(addr: &Address, timeout: Duration, ui: &Ui) -> Result<TcpStream> {
    if addr.host.parse::<IpAddr>().is_err() {
        ui.status(format_args!("resolving {}", addr.host));
    }
    let candidates = tokio::time::timeout(timeout, resolve(addr, false))
        .await
        .map_err(|_| Error::Timeout("resolving the host name", timeout.as_secs()))??;
    let deadline = tokio::time::Instant::now() + timeout;
    let mut last = None;
    for target in candidates {
        // Said only when it takes a moment: a quick connection needs no line of its own (the
        // next one says where we are connected).
        let connecting = TcpStream::connect(target);
        tokio::pin!(connecting);
        let quick = tokio::time::timeout(SAY_CONNECTING_AFTER, &mut connecting).await;
        let attempt = match quick {
            Ok(done) => Ok(done),
            Err(_) => {
                ui.status(format_args!("connecting to {target}"));
                tokio::time::timeout_at(deadline, &mut connecting).await
            }
        };
        match attempt {
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

/// Connects to the first address of `addr` that answers, within `timeout` overall, saying
/// nothing: for dialling again after a cut, where the chat says what is going on.
pub(super) async fn connect_quietly(addr: &Address, timeout: Duration) -> Result<TcpStream> {
    let deadline = tokio::time::Instant::now() + timeout;
    let candidates = tokio::time::timeout_at(deadline, resolve(addr, false))
        .await
        .map_err(|_| Error::Timeout("resolving the host name", timeout.as_secs()))??;
    let mut last = None;
    for target in candidates {
        match tokio::time::timeout_at(deadline, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Some(format!("cannot connect to {target}: {}", e.kind())),
            Err(_) => break,
        }
    }
    Err(Error::Network(last.unwrap_or_else(|| {
        format!("no answer from {addr} within {} s", timeout.as_secs())
    })))
}

/// Socket options for every connection: no Nagle delay (latency matters more than packing,
/// and every frame goes out in one write anyway); TCP keepalive so the kernel notices a dead
/// path even when the application-level PINGs cannot get through; and a TCP user timeout, so
/// data the peer never acknowledges (a vanished host, or a peer that stopped reading: zero
/// window) cannot hold the socket and its buffers for ever.
pub(super) fn configure(stream: &TcpStream, keepalive: Duration) {
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
    keepalive
        .saturating_mul(3)
        .saturating_add(Duration::from_secs(1))
}

pub(super) async fn bind(addr: &Address) -> Result<TcpListener> {
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

/// This machine's addresses a peer could dial on `port`: up, not loopback, not link-local
/// (those need an interface name), IPv4 first. For tickets when listening on all interfaces.
pub fn reachable_addrs(port: u16) -> Vec<TicketAddr> {
    let mut ips: Vec<IpAddr> = if_addrs::get_if_addrs()
        .unwrap_or_default()
        .into_iter()
        .filter(|i| !i.is_loopback() && !i.is_link_local() && i.is_oper_up())
        .map(|i| i.ip())
        .collect();
    ips.sort_by_key(|ip| (ip.is_ipv6(), *ip));
    ips.dedup();
    ips.truncate(crate::invite::ticket::MAX_ADDRS);
    ips.into_iter().map(|ip| TicketAddr::Ip(ip, port)).collect()
}

/// Whether a whole frame of `len` bytes (with its 2-byte length prefix) is waiting in the
/// socket's receive queue, looked at without reading it (`MSG_PEEK`) and without waiting.
pub(super) fn frame_arrived(stream: &TcpStream, len: usize) -> bool {
    use std::os::fd::AsRawFd;
    let mut buf = vec![0u8; 2 + len];
    // SAFETY: `buf` is valid for `buf.len()` bytes for the duration of the call; the flags only
    // peek and never block.
    let got = unsafe {
        libc::recv(
            stream.as_raw_fd(),
            buf.as_mut_ptr().cast(),
            buf.len(),
            libc::MSG_PEEK | libc::MSG_DONTWAIT,
        )
    };
    usize::try_from(got).is_ok_and(|got| {
        got == buf.len() && usize::from(u16::from_be_bytes([buf[0], buf[1]])) == len
    })
}
