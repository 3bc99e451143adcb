//! A TCP proxy on loopback that cuts, blackholes and refuses connections on command, for
//! tests of resuming a chat. Commands take effect at once and are deterministic: a cut closes
//! every connection through it (the two ends see the stream end without a QUIT); a blackhole
//! stops forwarding without closing or losing anything (as a dead path does: new connections
//! are then accepted and left silent); refusing closes new connections at once. A throttle
//! makes it a slow link towards the client (small buffers, a fixed rate).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

pub struct Proxy {
    pub port: u16,
    /// Bumped by each cut: connections from before it close.
    epoch: watch::Sender<u64>,
    blackholed: Arc<AtomicBool>,
    refusing: Arc<AtomicBool>,
    /// Connections numbered below this are held (see [`Proxy::freeze`]).
    frozen_below: Arc<AtomicU64>,
    /// Connections accepted so far.
    pub accepted: Arc<AtomicU64>,
    /// Bytes forwarded from clients to the target, over every connection.
    pub up_bytes: Arc<AtomicU64>,
    /// Clients' bytes are forwarded up to this total, then held (see [`Proxy::hold_up_at`]).
    up_limit: Arc<AtomicU64>,
    /// Bytes per second towards clients; 0: as fast as they go (see [`Proxy::throttle_down`]).
    down_rate: Arc<AtomicU64>,
}

/// Socket buffers of a throttled connection: a slow link holds little in flight.
const SLOW_BUFFER: usize = 32 * 1024;

impl Proxy {
    /// A proxy to 127.0.0.1:`target`.
    pub async fn start(target: u16) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (epoch, _) = watch::channel(0u64);
        let proxy = Proxy {
            port,
            epoch,
            blackholed: Arc::default(),
            refusing: Arc::default(),
            frozen_below: Arc::default(),
            accepted: Arc::default(),
            up_bytes: Arc::default(),
            up_limit: Arc::new(AtomicU64::new(u64::MAX)),
            down_rate: Arc::default(),
        };
        let (epochs, blackholed, refusing, accepted, frozen_below) = (
            proxy.epoch.subscribe(),
            proxy.blackholed.clone(),
            proxy.refusing.clone(),
            proxy.accepted.clone(),
            proxy.frozen_below.clone(),
        );
        let (up_bytes, up_limit) = (proxy.up_bytes.clone(), proxy.up_limit.clone());
        let down_rate = proxy.down_rate.clone();
        tokio::spawn(async move {
            loop {
                let Ok((client, _)) = listener.accept().await else {
                    return;
                };
                let number = accepted.fetch_add(1, Ordering::Relaxed);
                if refusing.load(Ordering::Relaxed) {
                    drop(client);
                    continue;
                }
                let mut epochs = epochs.clone();
                let born = *epochs.borrow_and_update();
                let blackholed = blackholed.clone();
                let frozen_below = frozen_below.clone();
                let counted = (up_bytes.clone(), up_limit.clone());
                let down_rate = down_rate.clone();
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    if down_rate.load(Ordering::Relaxed) > 0 {
                        let _ = socket2::SockRef::from(&client).set_send_buffer_size(SLOW_BUFFER);
                        let _ = socket2::SockRef::from(&server).set_recv_buffer_size(SLOW_BUFFER);
                    }
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let held = || {
                        blackholed.load(Ordering::Relaxed)
                            || number < frozen_below.load(Ordering::Relaxed)
                    };
                    let up = pump(
                        &mut cr,
                        &mut sw,
                        &held,
                        Some((&counted.0, &counted.1)),
                        None,
                    );
                    let down = pump(&mut sr, &mut cw, &held, None, Some(&down_rate));
                    let cut = async {
                        while *epochs.borrow_and_update() == born {
                            if epochs.changed().await.is_err() {
                                std::future::pending::<()>().await;
                            }
                        }
                    };
                    tokio::select! {
                        _ = async { tokio::join!(up, down) } => {}
                        () = cut => {}
                    }
                });
            }
        });
        proxy
    }

    /// Closes every connection through the proxy now.
    pub fn cut(&self) {
        self.epoch.send_modify(|e| *e += 1);
    }

    /// Stops (or resumes) forwarding; connections stay open.
    pub fn blackhole(&self, on: bool) {
        self.blackholed.store(on, Ordering::Relaxed);
    }

    /// Holds every connection open now, for good (as a dead path does), while new ones pass.
    pub fn freeze(&self) {
        self.frozen_below
            .store(self.accepted.load(Ordering::Relaxed), Ordering::Relaxed);
    }

    /// Forwards clients' bytes only up to `total` (over every connection so far), then holds
    /// the rest, as a dead path would: a test knows exactly where a transfer stands when it
    /// cuts. `u64::MAX` lifts it.
    pub fn hold_up_at(&self, total: u64) {
        self.up_limit.store(total, Ordering::Relaxed);
    }

    /// Makes connections accepted from now on slow links towards their client: `rate` bytes
    /// per second, with small socket buffers, as a member on a poor connection has.
    pub fn throttle_down(&self, rate: u64) {
        self.down_rate.store(rate, Ordering::Relaxed);
    }

    /// Closes new connections at once (or stops doing so).
    pub fn refuse(&self, on: bool) {
        self.refusing.store(on, Ordering::Relaxed);
    }
}

/// Copies until the end of the stream; while blackholed, holds what arrives (and so stops
/// reading: the sender's buffers fill as on a dead path).
async fn pump(
    from: &mut tokio::net::tcp::OwnedReadHalf,
    to: &mut tokio::net::tcp::OwnedWriteHalf,
    held: &impl Fn() -> bool,
    counted: Option<(&AtomicU64, &AtomicU64)>,
    rate: Option<&AtomicU64>,
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let rate = rate.map_or(0, |r| r.load(Ordering::Relaxed));
        let want = match rate {
            0 => buf.len(),
            _ => 16 * 1024,
        };
        let n = match from.read(&mut buf[..want]).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Held, not dropped: a dead path loses nothing that TCP would not send again.
        while held() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        let mut at = 0;
        while at < n {
            let mut take = n - at;
            if let Some((bytes, limit)) = counted {
                let room = limit
                    .load(Ordering::Relaxed)
                    .saturating_sub(bytes.load(Ordering::Relaxed));
                if room == 0 {
                    tokio::time::sleep(std::time::Duration::from_millis(10)).await;
                    continue;
                }
                take = take.min(usize::try_from(room).unwrap_or(usize::MAX));
                bytes.fetch_add(take as u64, Ordering::Relaxed);
            }
            if to.write_all(&buf[at..at + take]).await.is_err() {
                let _ = to.shutdown().await;
                return;
            }
            at += take;
        }
        if rate > 0 {
            tokio::time::sleep(std::time::Duration::from_secs_f64(n as f64 / rate as f64)).await;
        }
    }
    let _ = to.shutdown().await;
}
