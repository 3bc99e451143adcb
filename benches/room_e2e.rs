//! What rooms end to end cost (PROTOCOL.md §4.14), against today's relayed room in the same
//! run: MEMBERS in-process members (schat's own library, `schat::pairs` for the sessions)
//! through a real `schat listen`, each sending LINES lines once everyone is in.
//!
//! `cargo bench --bench room_e2e [-- MEMBERS LINES]` (default 32 members, 20 lines each).
//! For each room — relayed (members without PAIRS: the host decrypts and relays), end to end
//! with a participating host, end to end with a relay-only host — it prints: lines delivered
//! to every other member per second, the host's CPU and the bytes on the wire per line,
//! the sender's CPU per line (sealing it for every member), and, end to end, how long a
//! newcomer takes to have a session with every member.

#[path = "../tests/common/load.rs"]
#[allow(dead_code)]
mod load;

use schat::framed::{FrameReader, FrameWriter};
use schat::keys::{Identity, PublicKey};
use schat::message::notice::Event as NoticeEvent;
use schat::message::{Message, Mode};
use schat::pairs::{Heard, Pairs};
use std::process::Stdio;
use std::time::{Duration, Instant};
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::sync::{mpsc, watch};

#[derive(Clone, Copy, PartialEq, Debug)]
enum Room {
    Relayed,
    EndToEnd,
    RelayOnly,
}

struct Report {
    lines_per_s: f64,
    host_cpu_us_per_line: f64,
    host_bytes_per_line: f64,
    sender_us_per_line: f64,
    newcomer: Option<Duration>,
}

/// Bytes sent over the loopback interface so far (every byte between the members and the
/// host, TCP/IP headers and ACKs included: what is on the wire).
fn wire_bytes() -> u64 {
    let dev = std::fs::read_to_string("/proc/net/dev").unwrap_or_default();
    dev.lines()
        .find(|l| l.trim_start().starts_with("lo:"))
        .and_then(|l| l.split_once(':')?.1.split_whitespace().nth(8)?.parse().ok())
        .unwrap_or(0)
}

/// What one member reports to the run.
enum Said {
    /// Sessions with this many other members are up.
    Paired(usize),
    /// It received every line it was to receive.
    GotAll,
    /// Its lines took this long to seal, in all.
    Sealed(Duration),
}

async fn member(
    index: usize,
    port: u16,
    room: Room,
    expect_lines: u64,
    mut go: watch::Receiver<usize>,
    lines: usize,
    report: mpsc::UnboundedSender<(usize, Said)>,
) {
    let id = Identity::generate().unwrap();
    let us = *id.public();
    let stream = load::connect_from(load::loopback_source(index), port).await;
    stream.set_nodelay(true).unwrap();
    let (r, w) = stream.into_split();
    let est = schat::handshake::initiate(&id, FrameReader::new(r), FrameWriter::new(w), |_| Ok(()))
        .await
        .unwrap();
    let (mut recv, mut send) = (est.recv, est.send);
    let e2e = room != Room::Relayed;
    if e2e {
        send.send(&Message::Pairs(0)).await.unwrap();
    }
    send.send(&Message::hello(Mode::Chat, "")).await.unwrap();
    let mut pairs = Pairs::new(id);
    let (mut opened, mut got) = (0usize, 0u64);
    let mut sent = false;
    loop {
        let msg = tokio::select! {
            msg = recv.recv() => match msg {
                Ok(Some(msg)) => msg.into_owned(),
                _ => return,
            },
            _ = go.changed(), if !sent => {
                sent = true;
                let mut sealing = Duration::ZERO;
                for n in 0..lines {
                    let text = format!("member {index} line {n} ........................");
                    if e2e {
                        let mut inner = Vec::new();
                        Message::Text(text.as_str().into()).encode_into(&mut inner).unwrap();
                        let started = Instant::now();
                        pairs.seal_to_all(&inner);
                        sealing += started.elapsed();
                        while let Some(peer) = pairs.outbox.pop_front() {
                            send.queue(&Message::Peer(peer)).unwrap();
                        }
                    }
                    if room != Room::RelayOnly {
                        send.queue(&Message::Text(text.as_str().into())).unwrap();
                    }
                    send.flush().await.unwrap();
                }
                let _ = report.send((index, Said::Sealed(sealing)));
                continue;
            }
        };
        match msg {
            Message::Notice(notice) if e2e => match notice.event {
                NoticeEvent::Roster(entries) => {
                    for e in entries {
                        pairs.present(PublicKey::from_bytes(e.key), Instant::now());
                    }
                }
                NoticeEvent::Join(e) => pairs.present(PublicKey::from_bytes(e.key), Instant::now()),
                _ => {}
            },
            Message::Peer(peer) => pairs.on_peer(peer, Instant::now()),
            Message::Relay { .. } => got += 1,
            _ => {}
        }
        while let Some(peer) = pairs.outbox.pop_front() {
            send.queue(&Message::Peer(peer)).unwrap();
        }
        send.flush().await.unwrap();
        while let Some(heard) = pairs.heard.pop_front() {
            match heard {
                Heard::Open(_) => {
                    opened += 1;
                    let _ = report.send((index, Said::Paired(opened)));
                }
                Heard::Said { .. } => got += 1,
                other => panic!("member {index} ({us:?}): {other:?}"),
            }
        }
        if got == expect_lines && expect_lines > 0 {
            let _ = report.send((index, Said::GotAll));
            got += 1; // (once)
        }
    }
}

async fn run(bin: &str, members: usize, lines: usize, room: Room) -> Report {
    let home = tempfile::tempdir().unwrap();
    let mut args = vec!["listen", "127.0.0.1:0", "--allow", "anyone"];
    if room == Room::RelayOnly {
        args.push("--relay-only");
    }
    let max = (members + 1).to_string();
    args.extend(["--max-peers", &max, "--max-handshakes", "1000"]);
    let mut host = tokio::process::Command::new(bin)
        .arg("--home")
        .arg(home.path())
        .args(&args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .unwrap();
    let pid = host.id().unwrap();
    let _stdin = host.stdin.take();
    let mut err = BufReader::new(host.stderr.take().unwrap()).lines();
    let port: u16 = loop {
        let line = err.next_line().await.unwrap().expect("host exited");
        if let Some(addr) = line.strip_prefix("schat: listening on 127.0.0.1:") {
            break addr.trim().parse().unwrap();
        }
    };
    tokio::spawn(async move { while let Ok(Some(_)) = err.next_line().await {} });
    let (report_tx, mut reports) = mpsc::unbounded_channel();
    let (go_tx, go) = watch::channel(0usize);
    let expect = ((members - 1) * lines) as u64;
    let spawn = |i: usize| {
        tokio::spawn(member(
            i,
            port,
            room,
            expect,
            go.clone(),
            lines,
            report_tx.clone(),
        ))
    };
    let mut tasks: Vec<_> = (0..members - 1).map(spawn).collect();
    let pairs_each = |n: usize| if room == Room::Relayed { 0 } else { n - 1 };
    // Everyone but the newcomer in, and paired with each other.
    let mut paired = vec![0usize; members];
    let wait_paired = async |reports: &mut mpsc::UnboundedReceiver<(usize, Said)>,
                             paired: &mut Vec<usize>,
                             want: usize,
                             among: usize| {
        while paired[..among].iter().any(|p| *p < want) {
            match tokio::time::timeout(Duration::from_secs(60), reports.recv()).await {
                Ok(Some((i, Said::Paired(n)))) => paired[i] = n,
                Ok(Some(_)) => {}
                _ => panic!("members were not all paired: {paired:?}"),
            }
        }
    };
    if room == Room::Relayed {
        // (Nothing to pair: wait until the host has them all.)
        tokio::time::sleep(Duration::from_millis(500)).await;
    } else {
        wait_paired(
            &mut reports,
            &mut paired,
            pairs_each(members - 1),
            members - 1,
        )
        .await;
    }
    // The newcomer: from its connection until it has a session with every member.
    let started = Instant::now();
    tasks.push(spawn(members - 1));
    let newcomer = if room == Room::Relayed {
        tokio::time::sleep(Duration::from_millis(500)).await;
        None
    } else {
        wait_paired(&mut reports, &mut paired, pairs_each(members), members).await;
        Some(started.elapsed())
    };
    let (cpu, io, since) = (load::cpu_seconds(pid), wire_bytes(), Instant::now());
    go_tx.send(1).unwrap();
    let (mut got_all, mut sealing) = (0, Duration::ZERO);
    while got_all < members {
        match tokio::time::timeout(Duration::from_secs(120), reports.recv()).await {
            Ok(Some((_, Said::GotAll))) => got_all += 1,
            Ok(Some((_, Said::Sealed(d)))) => sealing += d,
            Ok(Some(_)) => {}
            _ => panic!("not every line reached every member ({got_all} of {members} got all)"),
        }
    }
    let took = since.elapsed();
    let (cpu, io) = (load::cpu_seconds(pid) - cpu, wire_bytes() - io);
    let total_lines = (members * lines) as f64;
    for t in tasks {
        t.abort();
    }
    let _ = std::process::Command::new("kill")
        .args(["-INT", &pid.to_string()])
        .status();
    let _ = tokio::time::timeout(Duration::from_secs(10), host.wait()).await;
    Report {
        lines_per_s: total_lines / took.as_secs_f64(),
        host_cpu_us_per_line: cpu * 1e6 / total_lines,
        host_bytes_per_line: io as f64 / total_lines,
        sender_us_per_line: sealing.as_secs_f64() * 1e6 / total_lines,
        newcomer,
    }
}

fn main() {
    let args: Vec<usize> = std::env::args().filter_map(|a| a.parse().ok()).collect();
    let members = args.first().copied().unwrap_or(32);
    let lines = args.get(1).copied().unwrap_or(20);
    let status = std::process::Command::new("cargo")
        .args(["build", "--release", "--quiet", "--bin", "schat"])
        .status()
        .expect("cargo build");
    assert!(status.success());
    let bin = concat!(env!("CARGO_MANIFEST_DIR"), "/target/release/schat");
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let mut base: Option<Report> = None;
    for room in [Room::Relayed, Room::EndToEnd, Room::RelayOnly] {
        let r = runtime.block_on(run(bin, members, lines, room));
        let ratio = |v: f64, b: fn(&Report) -> f64| match &base {
            Some(base) => format!(" ({:.2}x relayed)", v / b(base)),
            None => String::new(),
        };
        println!(
            "{room:?}: {members} members x {lines} lines: {:.0} lines/s to every member{}; host \
             CPU {:.1} us/line{}; bytes on the wire {:.0}/line{}; sender {:.1} us/line sealing; \
             newcomer paired with all in {}",
            r.lines_per_s,
            ratio(r.lines_per_s, |b| b.lines_per_s),
            r.host_cpu_us_per_line,
            ratio(r.host_cpu_us_per_line, |b| b.host_cpu_us_per_line),
            r.host_bytes_per_line,
            ratio(r.host_bytes_per_line, |b| b.host_bytes_per_line),
            r.sender_us_per_line,
            r.newcomer
                .map_or("-".into(), |d| format!("{:.0} ms", d.as_secs_f64() * 1e3)),
        );
        if room == Room::Relayed {
            base = Some(r);
        }
    }
}
