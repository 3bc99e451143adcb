//! A TCP proxy on loopback that cuts, blackholes and refuses connections on command, for
//! tests of resuming a chat. Commands take effect at once and are deterministic: a cut closes
//! every connection through it (the two ends see the stream end without a QUIT); a blackhole
//! stops forwarding without closing or losing anything (as a dead path does: new connections
//! are then accepted and left silent); refusing closes new connections at once.

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
}

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
        };
        let (epochs, blackholed, refusing, accepted, frozen_below) = (
            proxy.epoch.subscribe(),
            proxy.blackholed.clone(),
            proxy.refusing.clone(),
            proxy.accepted.clone(),
            proxy.frozen_below.clone(),
        );
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
                tokio::spawn(async move {
                    let Ok(server) = TcpStream::connect(("127.0.0.1", target)).await else {
                        return;
                    };
                    let (mut cr, mut cw) = client.into_split();
                    let (mut sr, mut sw) = server.into_split();
                    let held = || {
                        blackholed.load(Ordering::Relaxed)
                            || number < frozen_below.load(Ordering::Relaxed)
                    };
                    let up = pump(&mut cr, &mut sw, &held);
                    let down = pump(&mut sr, &mut cw, &held);
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
) {
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        let n = match from.read(&mut buf).await {
            Ok(0) | Err(_) => break,
            Ok(n) => n,
        };
        // Held, not dropped: a dead path loses nothing that TCP would not send again.
        while held() {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
        if to.write_all(&buf[..n]).await.is_err() {
            break;
        }
    }
    let _ = to.shutdown().await;
}
