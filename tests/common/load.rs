//! A room load test, shared by tests/room.rs (small) and benches/room_load.rs (large): many
//! in-process dialers (schat's own library as the client) against the real `schat listen`.

use schat::framed::{FrameReader, FrameWriter};
use schat::handshake;
use schat::keys::Identity;
use schat::message::Message;
use std::collections::{HashMap, HashSet};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};

/// What a load run measured.
#[derive(Debug)]
pub struct LoadReport {
    pub peers: usize,
    pub messages_sent: usize,
    pub delivered_to_host: usize,
    pub duplicates: usize,
    pub relays_received: u64,
    pub elapsed: Duration,
    pub host_peak_rss_kib: u64,
    /// The host's CPU time (user + system), seconds.
    pub host_cpu_s: f64,
    /// Host log lines that called a member slow ("not keeping up").
    pub called_slow: usize,
    /// With [`Leave::AfterFanOut`]: how long every member took to receive every other
    /// member's messages once all were in the room, and the host's CPU time meanwhile.
    pub fan_out: Option<(Duration, f64)>,
}

/// How the dialers leave after their messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Leave {
    /// QUIT, then read until the host hangs up.
    Politely,
    /// QUIT, then close the socket at once, with whatever the host sent still unread (the
    /// kernel answers the host with a reset).
    AtOnce,
    /// Wait until every member is in the room, send, wait until every member has received
    /// every other member's messages (the host's fan-out, measured), then leave politely.
    AfterFanOut,
}

/// Peak resident memory of a process, from /proc (VmHWM).
pub fn peak_rss_kib(pid: u32) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmHWM:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

/// CPU time (user + system) a process has used so far, in seconds, from /proc (0 when gone).
pub fn cpu_seconds(pid: u32) -> f64 {
    let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) else {
        return 0.0;
    };
    // Fields after the command name (in parentheses, which may hold blanks): utime is the
    // 12th, stime the 13th, in clock ticks.
    let Some(rest) = stat.rsplit_once(')').map(|(_, r)| r) else {
        return 0.0;
    };
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: u64 = fields
        .get(11..13)
        .map(|f| f.iter().filter_map(|v| v.parse::<u64>().ok()).sum())
        .unwrap_or(0);
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as f64;
    ticks as f64 / per_second
}

/// Runs `peers` dialers that each send `per_peer` messages to a fresh host, then leave.
pub async fn run(bin: &str, peers: usize, per_peer: usize, leave: Leave) -> LoadReport {
    let home = tempfile::tempdir().unwrap();
    let mut host = tokio::process::Command::new(bin)
        .arg("--home")
        .arg(home.path())
        .args([
            "listen",
            "127.0.0.1:0",
            "--json",
            "--allow",
            "anyone",
            "--max-peers",
        ])
        .arg((peers + 1).to_string())
        .args(["--max-handshakes", "1000"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = host.id().unwrap();
    // VmHWM is a high-water mark: the last reading before the host exits is its peak.
    // So is CPU time: the last reading counts.
    let sampler = tokio::spawn(async move {
        let (mut peak, mut cpu) = (0, 0.0);
        loop {
            let now = peak_rss_kib(pid);
            if now == 0 {
                return (peak, cpu);
            }
            peak = peak.max(now);
            cpu = cpu_seconds(pid).max(cpu);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    });
    let _stdin = host.stdin.take();
    let mut err = BufReader::new(host.stderr.take().unwrap()).lines();
    let port: u16 = loop {
        let line = err.next_line().await.unwrap().expect("host exited");
        if let Some(addr) = line.strip_prefix("schat: listening on 127.0.0.1:") {
            break addr.trim().parse().unwrap();
        }
    };
    let log = tokio::spawn(async move {
        let mut called_slow = 0;
        while let Ok(Some(line)) = err.next_line().await {
            if line.contains("not keeping up") {
                called_slow += 1;
            }
        }
        called_slow
    });

    // Count what the host shows: every message event, by sender and text.
    let mut out = BufReader::new(host.stdout.take().unwrap()).lines();
    let expected = peers * per_peer;
    // Departures seen: once every dialer has left, everything it sent has been shown.
    let (left_tx, mut left_rx) = tokio::sync::watch::channel(0usize);
    let counting = tokio::spawn(async move {
        let mut seen: HashSet<(String, String)> = HashSet::new();
        let mut duplicates = 0;
        let mut left = 0;
        while let Ok(Some(line)) = out.next_line().await {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["event"] == "left" {
                left += 1;
                let _ = left_tx.send(left);
            }
            if v["event"] == "message" {
                let key = (
                    v["from"]["fingerprint"].as_str().unwrap().to_string(),
                    v["text"].as_str().unwrap().to_string(),
                );
                if !seen.insert(key) {
                    duplicates += 1;
                }
            }
        }
        (seen, duplicates)
    });

    let started = Instant::now();
    let identities: Vec<Identity> = (0..peers).map(|_| Identity::generate().unwrap()).collect();
    let fingerprints: HashMap<String, usize> = identities
        .iter()
        .enumerate()
        .map(|(i, id)| (id.public().to_hex(), i))
        .collect();
    let mut clients = Vec::new();
    // Fan-out: all in (and the clock read), then all send; all received, then all leave.
    let all_in = std::sync::Arc::new(tokio::sync::Barrier::new(peers + 1));
    let all_received = std::sync::Arc::new(tokio::sync::Barrier::new(peers + 1));
    let relays_each = ((peers - 1) * per_peer) as u64;
    for (i, id) in identities.into_iter().enumerate() {
        let (all_in, all_received) = (all_in.clone(), all_received.clone());
        clients.push(tokio::spawn(async move {
            // Each member from its own address, as in a real room.
            let stream = connect_from(loopback_source(i), port).await;
            stream.set_nodelay(true).unwrap();
            let fd = std::os::fd::AsRawFd::as_raw_fd(&stream);
            let (r, w) = stream.into_split();
            let session =
                handshake::initiate(&id, FrameReader::new(r), FrameWriter::new(w), |_| Ok(()))
                    .await
                    .unwrap();
            let handshake::Established {
                mut recv, mut send, ..
            } = session;
            send.send(&Message::hello(schat::message::Mode::Chat, ""))
                .await
                .unwrap();
            // Read everything the host sends (welcome, notices, relays) until it hangs up.
            let (welcomed_tx, welcomed) = tokio::sync::oneshot::channel::<()>();
            let (got_all_tx, got_all) = tokio::sync::oneshot::channel::<()>();
            let reader = tokio::spawn(async move {
                let (mut relays, mut welcomed_tx, mut got_all_tx) =
                    (0u64, Some(welcomed_tx), Some(got_all_tx));
                while let Ok(Some(msg)) = recv.recv().await {
                    match msg {
                        Message::Relay { .. } => relays += 1,
                        Message::Welcome(_) => {
                            welcomed_tx.take().map(|w| w.send(()));
                        }
                        _ => {}
                    }
                    if relays == relays_each {
                        got_all_tx.take().map(|g| g.send(()));
                    }
                }
                relays
            });
            if leave == Leave::AfterFanOut {
                let _ = welcomed.await;
                all_in.wait().await;
            }
            for j in 0..per_peer {
                let text = format!("c{i} m{j}");
                send.send(&Message::Text(text.as_str().into()))
                    .await
                    .unwrap();
            }
            if leave == Leave::AfterFanOut {
                let _ = got_all.await;
                all_received.wait().await;
            }
            send.quit("").await.unwrap();
            if leave == Leave::AtOnce {
                // Closing with unread data makes our kernel reset the connection and drop
                // whatever it has not transmitted yet: that loss would be ours, not the
                // host's. So: wait until our bytes have left (nothing queued unsent), then
                // close at once, unread data and all.
                let deadline = Instant::now() + Duration::from_secs(5);
                while unsent(fd) > 0 && Instant::now() < deadline {
                    tokio::time::sleep(Duration::from_millis(5)).await;
                }
                reader.abort();
                return 0;
            }
            tokio::time::timeout(Duration::from_secs(120), reader)
                .await
                .expect("client reader stuck")
                .unwrap()
        }));
    }
    let fan_out = match leave {
        Leave::AfterFanOut => {
            all_in.wait().await;
            let (since, cpu) = (Instant::now(), cpu_seconds(pid));
            all_received.wait().await;
            Some((since.elapsed(), cpu_seconds(pid) - cpu))
        }
        _ => None,
    };
    let mut relays_received = 0;
    for c in clients {
        relays_received += c.await.unwrap();
    }
    // The host keeps serving (a room outlives its members): stop it once all have left.
    tokio::time::timeout(Duration::from_secs(120), left_rx.wait_for(|n| *n >= peers))
        .await
        .expect("not every dialer was seen to leave")
        .unwrap();
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let status = tokio::time::timeout(Duration::from_secs(120), host.wait())
        .await
        .expect("host did not exit")
        .unwrap();
    let elapsed = started.elapsed();
    let (host_peak_rss_kib, host_cpu_s) = sampler.await.unwrap();
    let called_slow = log.await.unwrap();
    assert!(status.success(), "host exit status {status:?}");
    let (seen, duplicates) = counting.await.unwrap();
    // Every delivered message came from one of our dialers, with the text it sent.
    for (fp, text) in &seen {
        let i = fingerprints[fp];
        assert!(text.starts_with(&format!("c{i} m")), "{fp} sent {text:?}");
    }
    LoadReport {
        peers,
        messages_sent: expected,
        delivered_to_host: seen.len(),
        duplicates,
        relays_received,
        elapsed,
        host_peak_rss_kib,
        host_cpu_s,
        called_slow,
        fan_out,
    }
}

/// Connects to 127.0.0.1:`port` from the loopback address `source` (any 127.x works on
/// Linux), so a test can play many hosts at once.
pub async fn connect_from(source: std::net::Ipv4Addr, port: u16) -> tokio::net::TcpStream {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket
        .bind(std::net::SocketAddr::from((source, 0)))
        .unwrap();
    socket
        .connect(std::net::SocketAddr::from(([127, 0, 0, 1], port)))
        .await
        .unwrap()
}

/// A distinct loopback source address for client number `i` (127.0.1.x, 127.0.2.x, …).
pub fn loopback_source(i: usize) -> std::net::Ipv4Addr {
    std::net::Ipv4Addr::new(127, 0, 1 + (i / 250) as u8, 1 + (i % 250) as u8)
}

/// Bytes in a socket's send queue not yet sent (SIOCOUTQ).
fn unsent(fd: std::os::fd::RawFd) -> i32 {
    let mut n: libc::c_int = 0;
    // SAFETY: a valid socket descriptor (the stream it belongs to is alive) and an int out.
    let r = unsafe { libc::ioctl(fd, libc::TIOCOUTQ, &mut n) };
    if r < 0 { 0 } else { n }
}
