//! Loopback figures for the side-by-side comparison, measured in one run so they can be
//! compared as ratios: the in-memory seal/open rate (the ceiling for any pipe), in-memory vs
//! over-TCP handshakes per second, and 64-byte round trips through schat's transport vs plain
//! TCP. Prints a table and `key=value` lines that benches/compare.sh reads.
//!
//! `cargo bench --bench loopback` (add `-- --quick` for a fast, rougher run)

use schat::cipher::CipherPair;
use schat::framed::{FrameReader, FrameWriter};
use schat::handshake::{self, CLASSICAL_PATTERN as PATTERN, noise_builder};

/// The classical core's prologue (the KEM removed), for the comparison.
const PROLOGUE: &[u8] = b"schat/2";
use schat::keys::Identity;
use schat::message::Message;
use std::hint::black_box;
use std::net::SocketAddr;
use std::time::{Duration, Instant};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v[v.len() / 2]
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    sorted[((sorted.len() as f64 - 1.0) * p).round() as usize]
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

/// The two ends of a session's transport, on the cipher schat would use on this machine
/// (AES-256-GCM after the switch when it has AES instructions, PROTOCOL.md §4.9).
fn cipher_pair() -> (CipherPair, CipherPair) {
    let (k1, k2): ([u8; 32], [u8; 32]) = (rand::random(), rand::random());
    let mut tx = CipherPair::from_split(true, &k1, &k2).unwrap();
    let mut rx = CipherPair::from_split(false, &k1, &k2).unwrap();
    if schat::cipher::offer_aes_gcm() {
        tx.send.switch_to_aes_gcm().unwrap();
        rx.recv.switch_to_aes_gcm().unwrap();
    }
    (tx, rx)
}

/// MiB/s sealing and opening 65519-byte messages on one core, with schat's own CipherStates.
fn seal_open_rates(mib: usize) -> (f64, f64) {
    let plain = vec![0x5au8; 65519];
    let count = mib * 16; // 16 messages ≈ 1 MiB
    let (mut seal, mut open) = (Vec::new(), Vec::new());
    for _ in 0..5 {
        let (mut tx, mut rx) = cipher_pair();
        let mut wire = vec![vec![0u8; 65535]; 16];
        let mut out = vec![0u8; 65535];
        let (mut t_seal, mut t_open) = (Duration::ZERO, Duration::ZERO);
        for _ in 0..count / 16 {
            let start = Instant::now();
            let lens: Vec<usize> = wire
                .iter_mut()
                .map(|w| tx.write_message(&plain, w).unwrap())
                .collect();
            t_seal += start.elapsed();
            let start = Instant::now();
            for (w, n) in wire.iter().zip(lens) {
                black_box(rx.read_message(&w[..n], &mut out).unwrap());
            }
            t_open += start.elapsed();
        }
        let bytes = (count * plain.len()) as f64 / (1 << 20) as f64;
        seal.push(bytes / t_seal.as_secs_f64());
        open.push(bytes / t_open.as_secs_f64());
    }
    (median(seal), median(open))
}

/// The servers' identity, made once (key generation is not part of a handshake).
fn server_identity() -> &'static Identity {
    static ID: std::sync::OnceLock<Identity> = std::sync::OnceLock::new();
    ID.get_or_init(|| Identity::generate().unwrap())
}

/// Starts a server thread with its own runtime, pinned to `cpu` (every compared case gets the
/// same placement); returns its address.
fn server<F, Fut>(cpu: usize, serve: F) -> SocketAddr
where
    F: Fn(TcpStream) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()>,
{
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        pin(cpu);
        runtime().block_on(async move {
            let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(listener.local_addr().unwrap()).unwrap();
            while let Ok((stream, _)) = listener.accept().await {
                stream.set_nodelay(true).unwrap();
                serve(stream).await;
            }
        })
    });
    rx.recv().unwrap()
}

/// Handshakes per second over TCP as a sequential client sees them (connect, handshake,
/// close): schat/2 (`handshake::initiate`/`respond`, with ML-KEM-768), and the same Noise XX
/// with the KEM removed (classical, empty payloads, over the same framing); plus schat/2
/// until the listener's first message (WELCOME) arrives. Alternating rounds, so that drift on
/// a shared machine affects all alike.
fn handshake_rates(n: usize) -> (f64, f64, f64) {
    let addr = server(0, |stream| async move {
        let (r, w) = stream.into_split();
        let (r, w) = (FrameReader::new(r), FrameWriter::new(w));
        if let Ok(mut s) = handshake::respond(server_identity(), r, w).await {
            let _ = s.send.send(&Message::Welcome("hi".into())).await;
        }
    });
    let key = || {
        snow::Builder::new(PATTERN.parse().unwrap())
            .generate_keypair()
            .unwrap()
    };
    let (server_key, client_key) = (key(), key());
    let classical = server(0, move |stream| {
        let secret = server_key.private.clone();
        async move {
            let (r, w) = stream.into_split();
            let (mut r, mut w) = (FrameReader::new(r), FrameWriter::new(w));
            let mut noise = noise_builder(&secret, PROLOGUE)
                .unwrap()
                .build_responder()
                .unwrap();
            let mut buf = vec![0u8; 256];
            let Ok(Some(m1)) = r.read_frame().await else {
                return;
            };
            if noise.read_message(m1, &mut buf).is_err() {
                return;
            }
            let n = noise.write_message(&[], &mut buf).unwrap();
            let _ = w.write_frame(&buf[..n]).await;
            let Ok(Some(m3)) = r.read_frame().await else {
                return;
            };
            let _ = noise.read_message(m3, &mut buf);
        }
    });
    let client = Identity::generate().unwrap();
    let rt = runtime();
    let (mut hybrid, mut plain, mut hybrid_welcome) = (Vec::new(), Vec::new(), Vec::new());
    for _ in 0..5 {
        plain.push(rt.block_on(async {
            let start = Instant::now();
            for _ in 0..n {
                let stream = TcpStream::connect(classical).await.unwrap();
                stream.set_nodelay(true).unwrap();
                let (r, w) = stream.into_split();
                let (mut r, mut w) = (FrameReader::new(r), FrameWriter::new(w));
                let mut noise = noise_builder(&client_key.private, PROLOGUE)
                    .unwrap()
                    .build_initiator()
                    .unwrap();
                let mut buf = vec![0u8; 256];
                let len = noise.write_message(&[], &mut buf).unwrap();
                w.write_frame(&buf[..len]).await.unwrap();
                let m2 = r.read_frame().await.unwrap().unwrap().to_vec();
                noise.read_message(&m2, &mut buf).unwrap();
                let len = noise.write_message(&[], &mut buf).unwrap();
                w.write_frame(&buf[..len]).await.unwrap();
                black_box(noise.into_transport_mode().unwrap());
            }
            n as f64 / start.elapsed().as_secs_f64()
        }));
        for (wait_for_welcome, rates) in [(false, &mut hybrid), (true, &mut hybrid_welcome)] {
            rates.push(rt.block_on(async {
                let start = Instant::now();
                for _ in 0..n {
                    let stream = TcpStream::connect(addr).await.unwrap();
                    stream.set_nodelay(true).unwrap();
                    let (r, w) = stream.into_split();
                    let (r, w) = (FrameReader::new(r), FrameWriter::new(w));
                    let mut s = handshake::initiate(&client, r, w, |_| Ok(()))
                        .await
                        .unwrap();
                    if wait_for_welcome {
                        black_box(s.recv.recv().await.unwrap().map(Message::into_owned));
                    }
                }
                n as f64 / start.elapsed().as_secs_f64()
            }));
        }
    }
    (median(plain), median(hybrid), median(hybrid_welcome))
}

/// Pins the calling thread to one CPU (Linux; elsewhere nothing happens). A round trip between
/// two threads costs a wake-up of the other CPU when they sit on different ones, and nothing
/// like it when they share one: on a 2-vCPU VM that is the difference between ~6 µs and
/// ~90 µs. Every compared case is measured in the same placement.
fn pin(cpu: usize) -> bool {
    #[cfg(target_os = "linux")]
    {
        // SAFETY: a zeroed cpu_set_t is valid; CPU_SET writes inside it; the call affects only
        // the calling thread.
        unsafe {
            let mut set: libc::cpu_set_t = std::mem::zeroed();
            libc::CPU_SET(cpu, &mut set);
            libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &set) == 0
        }
    }
    #[cfg(not(target_os = "linux"))]
    {
        let _ = cpu;
        false
    }
}

/// Round trips of a 64-byte message with the client pinned to CPU 0 and both servers to
/// `server_cpu`: (median µs, p99 µs) for the schat transport, then plain TCP.
fn round_trips(n: usize, server_cpu: usize) -> ((f64, f64), (f64, f64)) {
    // Both echo servers on `server_cpu`: one placement for both.
    let echo_schat = server(server_cpu, |stream| async move {
        let (r, w) = stream.into_split();
        let (r, w) = (FrameReader::new(r), FrameWriter::new(w));
        let Ok(mut s) = handshake::respond(server_identity(), r, w).await else {
            return;
        };
        // Echoes straight from the receive buffer, as the plain echo does from its array.
        while let Ok(Some(msg)) = s.recv.recv().await {
            if s.send.send(&msg).await.is_err() {
                return;
            }
        }
    });
    let echo_plain = server(server_cpu, |mut stream| async move {
        let mut buf = [0u8; 64];
        while stream.read_exact(&mut buf).await.is_ok() {
            if stream.write_all(&buf).await.is_err() {
                return;
            }
        }
    });
    let stats = |mut v: Vec<f64>| {
        v.sort_by(|a, b| a.total_cmp(b));
        (percentile(&v, 0.5), percentile(&v, 0.99))
    };
    runtime().block_on(async {
        let id = Identity::generate().unwrap();
        let stream = TcpStream::connect(echo_schat).await.unwrap();
        stream.set_nodelay(true).unwrap();
        let (r, w) = stream.into_split();
        let mut s = handshake::initiate(&id, FrameReader::new(r), FrameWriter::new(w), |_| Ok(()))
            .await
            .unwrap();
        // The opening, as in every session: HELLO both ways (the echo sends ours back), after
        // which each side has the other's CIPHERS and its direction switches to AES-256-GCM
        // where the machine has it (PROTOCOL.md §4.9) before the first timed message.
        s.send
            .send(&Message::hello(schat::message::Mode::Chat, ""))
            .await
            .unwrap();
        black_box(s.recv.recv().await.unwrap());
        let mut stream = TcpStream::connect(echo_plain).await.unwrap();
        stream.set_nodelay(true).unwrap();
        // TEXT with a 63-byte body: a 64-byte plaintext, against 64 raw bytes. Alternate
        // blocks of each so that drift on a shared machine hits both alike.
        let text = "x".repeat(63);
        let msg = Message::Text(text.as_str().into());
        let (out, mut back) = ([1u8; 64], [0u8; 64]);
        let (mut schat, mut plain) = (Vec::with_capacity(n), Vec::with_capacity(n));
        for block in 0..22 {
            let keep = block >= 2; // the first blocks warm up
            for _ in 0..n / 20 {
                let start = Instant::now();
                s.send.send(&msg).await.unwrap();
                black_box(s.recv.recv().await.unwrap());
                if keep {
                    schat.push(start.elapsed().as_secs_f64() * 1e6);
                }
            }
            for _ in 0..n / 20 {
                let start = Instant::now();
                stream.write_all(&out).await.unwrap();
                stream.read_exact(&mut back).await.unwrap();
                if keep {
                    plain.push(start.elapsed().as_secs_f64() * 1e6);
                }
            }
        }
        (stats(schat), stats(plain))
    })
}

fn main() {
    let quick = std::env::args().any(|a| a == "--quick");
    let only_seal = std::env::args().any(|a| a == "--seal-only");
    if std::env::args().any(|a| a == "--rtt-only") {
        // For profiling the transport alone: same-core round trips, nothing else.
        pin(0);
        let ((s_med, _), (p_med, _)) = round_trips(if quick { 20000 } else { 200000 }, 0);
        println!("rtt_same_core_schat_median_us={s_med:.1}");
        println!("rtt_same_core_tcp_median_us={p_med:.1}");
        return;
    }
    let (seal, open) = seal_open_rates(if quick { 64 } else { 256 });
    let aead = if schat::cipher::offer_aes_gcm() {
        "AES-256-GCM"
    } else {
        "ChaCha20-Poly1305"
    };
    println!("transport_cipher={aead}");
    println!("seal_mib_s={seal:.0}");
    println!("open_mib_s={open:.0}");
    if only_seal {
        return;
    }
    // Everything below runs with the client on CPU 0; handshake servers there too (same core).
    // (Counted before pinning: afterwards this thread sees one CPU.)
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pinned = pin(0);
    let (hs_mem, hs_tcp, hs_tcp_welcome) = handshake_rates(if quick { 100 } else { 400 });
    // The client on CPU 0; the servers on CPU 0 too (same core), then on the last CPU.
    let rounds = if quick { 2000 } else { 20000 };
    let same = round_trips(rounds, 0);
    let cross = (cpus > 1).then(|| round_trips(rounds, cpus - 1));
    println!("handshakes_tcp_classical_per_s={hs_mem:.0}");
    println!("handshakes_tcp_per_s={hs_tcp:.0}");
    println!("handshakes_tcp_until_welcome_per_s={hs_tcp_welcome:.0}");
    let ((s_med, _), (p_med, _)) = same;
    println!("rtt_same_core_schat_median_us={s_med:.1}");
    println!("rtt_same_core_tcp_median_us={p_med:.1}");
    if let Some(((c_med, _), (cp_med, _))) = cross {
        println!("rtt_cross_core_schat_median_us={c_med:.1}");
        println!("rtt_cross_core_tcp_median_us={cp_med:.1}");
    }
    println!();
    println!("| figure | schat | reference | ratio |");
    println!("|---|---|---|---|");
    println!("| seal 65519 B, one core | {seal:.0} MiB/s | | |");
    println!("| open 65519 B, one core | {open:.0} MiB/s | | |");
    println!(
        "| schat/2 handshakes/s over TCP (connect, handshake, close; same core) vs the same without the KEM | {hs_tcp:.0} | {hs_mem:.0} | {:.2} |",
        hs_tcp / hs_mem
    );
    println!(
        "| schat/2 handshakes/s over TCP until WELCOME (same core) vs the same without the KEM (no WELCOME) | {hs_tcp_welcome:.0} | {hs_mem:.0} | {:.2} |",
        hs_tcp_welcome / hs_mem
    );
    let placements = std::iter::once(("same core", same)).chain(cross.map(|c| ("cross-core", c)));
    for (placement, ((s_med, s_p99), (p_med, p_p99))) in placements {
        println!(
            "| 64 B round trip median (µs), {placement}, vs plain TCP in the same placement | {s_med:.1} | {p_med:.1} | {:.2} |",
            s_med / p_med
        );
        println!(
            "| 64 B round trip p99 (µs), {placement}, vs plain TCP in the same placement | {s_p99:.1} | {p_p99:.1} | {:.2} |",
            s_p99 / p_p99
        );
    }
    if !pinned {
        println!("\nwarning: threads could not be pinned; round trips depend on placement");
    }
    // When the two plain-TCP references are more than 3× apart, placement dominates: only
    // ratios within one placement mean anything.
    if let Some((_, (cp_med, _))) = cross {
        let (_, (p_med, _)) = same;
        if cp_med / p_med > 3.0 || p_med / cp_med > 3.0 {
            println!(
                "\nwarning: plain TCP's round trip is {p_med:.1} µs on one core and {cp_med:.1} µs across cores \
                 (more than 3× apart): compare only figures of the same placement"
            );
        }
    }
}
