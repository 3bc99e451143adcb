//! A hostile-peer suite against the real listener: raw TCP clients that send garbage, cut
//! frames, other protocols, forged or replayed ciphertext. Each must cost only its own
//! connection, with exactly one error line; afterwards a genuine peer still gets through.

mod common;

use common::{Home, within};
use rand::RngExt;
use schat::frame;
use schat::framed::{FrameReader, FrameWriter};
use schat::handshake::{PATTERN, noise_builder};
use std::collections::BTreeMap;
use std::time::Duration;
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Attack {
    Garbage,
    TruncatedFrame,
    Http,
    TlsClientHello,
    RandomMsg1AndMsg3,
    CloseAfterMsg1,
    WrongPrologue,
    TamperedCiphertext,
    ReplayedCiphertext,
    ReorderedMessages,
    UnknownMessageType,
    InvalidUtf8,
    DeclaredMaxLengthThenSilence,
}

const ATTACKS: [Attack; 12] = [
    Attack::Garbage,
    Attack::TruncatedFrame,
    Attack::Http,
    Attack::TlsClientHello,
    Attack::RandomMsg1AndMsg3,
    Attack::CloseAfterMsg1,
    Attack::WrongPrologue,
    Attack::TamperedCiphertext,
    Attack::ReplayedCiphertext,
    Attack::ReorderedMessages,
    Attack::UnknownMessageType,
    Attack::InvalidUtf8,
];

fn random_bytes(n: usize) -> Vec<u8> {
    let mut rng = rand::rng();
    (0..n).map(|_| rng.random()).collect()
}

fn framed(body: &[u8]) -> Vec<u8> {
    let mut v = frame::header(body.len()).unwrap().to_vec();
    v.extend_from_slice(body);
    v
}

/// A Noise initiator with its own key and the given prologue, handshaking over `stream`.
async fn handshake(
    stream: TcpStream,
    prologue: &[u8],
) -> Option<(
    snow::TransportState,
    FrameReader<OwnedReadHalf>,
    FrameWriter<OwnedWriteHalf>,
)> {
    let key = snow::Builder::new(PATTERN.parse().unwrap())
        .generate_keypair()
        .unwrap();
    let mut noise = noise_builder(&key.private, prologue)
        .unwrap()
        .build_initiator()
        .unwrap();
    let (r, w) = stream.into_split();
    let (mut r, mut w) = (FrameReader::new(r), FrameWriter::new(w));
    let mut buf = vec![0u8; 65535];
    let n = noise.write_message(&[], &mut buf).unwrap();
    w.write_frame(&buf[..n]).await.ok()?;
    let msg2 = r.read_frame().await.ok()??.to_vec();
    noise.read_message(&msg2, &mut buf).ok()?;
    let n = noise.write_message(&[], &mut buf).unwrap();
    w.write_frame(&buf[..n]).await.ok()?;
    Some((noise.into_transport_mode().unwrap(), r, w))
}

fn seal(state: &mut snow::TransportState, plaintext: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; plaintext.len() + 16];
    let n = state.write_message(plaintext, &mut buf).unwrap();
    buf.truncate(n);
    buf
}

async fn attack(port: u16, kind: Attack) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    match kind {
        Attack::Garbage => {
            let _ = stream
                .write_all(&random_bytes(1 + rand::random_range(0..200)))
                .await;
        }
        Attack::TruncatedFrame => {
            let _ = stream.write_all(&[0, 100]).await;
            let _ = stream.write_all(&random_bytes(10)).await;
        }
        Attack::Http => {
            let _ = stream
                .write_all(b"GET / HTTP/1.1\r\nHost: example\r\nUser-Agent: curl/8\r\n\r\n")
                .await;
        }
        Attack::TlsClientHello => {
            // A TLS 1.2/1.3 ClientHello record header and the start of the handshake message.
            let mut hello = vec![
                0x16, 0x03, 0x01, 0x00, 0xc8, 0x01, 0x00, 0x00, 0xc4, 0x03, 0x03,
            ];
            hello.extend(random_bytes(60));
            let _ = stream.write_all(&hello).await;
        }
        Attack::RandomMsg1AndMsg3 => {
            let _ = stream.write_all(&framed(&random_bytes(32))).await;
            let (r, w) = stream.into_split();
            let mut r = FrameReader::new(r);
            let _ = r.read_frame().await; // message 2
            let mut w = FrameWriter::new(w);
            let _ = w.write_frame(&random_bytes(64)).await;
            let _ = w.shutdown().await;
            let _ = r.read_frame().await; // wait for the listener to hang up
            return;
        }
        Attack::CloseAfterMsg1 => {
            let _ = stream.write_all(&framed(&random_bytes(32))).await;
        }
        Attack::WrongPrologue => {
            // Our initiator cannot authenticate message 2 under another prologue, gives up and
            // closes, as a schat/2 client would.
            assert!(handshake(stream, b"schat/2").await.is_none());
            return;
        }
        Attack::DeclaredMaxLengthThenSilence => {
            let _ = stream.write_all(&[0xff, 0xff]).await;
            // Hold the socket open: the listener's handshake deadline must close it.
            let mut sink = [0u8; 16];
            let _ = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await;
            return;
        }
        post_handshake => {
            let (mut state, mut r, mut w) = handshake(stream, b"schat/1").await.unwrap();
            let _ = r.read_frame().await; // WELCOME
            match post_handshake {
                Attack::TamperedCiphertext => {
                    let mut c = seal(&mut state, b"\x02hello");
                    c[3] ^= 0x40;
                    let _ = w.write_frame(&c).await;
                }
                Attack::ReplayedCiphertext => {
                    let c = seal(&mut state, b"\x02replayed");
                    let _ = w.write_frame(&c).await;
                    let _ = w.write_frame(&c).await;
                }
                Attack::ReorderedMessages => {
                    let first = seal(&mut state, b"\x02first");
                    let second = seal(&mut state, b"\x02second");
                    let _ = w.write_frame(&second).await;
                    let _ = w.write_frame(&first).await;
                }
                Attack::UnknownMessageType => {
                    let _ = w.write_frame(&seal(&mut state, b"\x42what")).await;
                }
                Attack::InvalidUtf8 => {
                    let _ = w.write_frame(&seal(&mut state, b"\x02\xff\xfe\xfd")).await;
                }
                _ => unreachable!(),
            }
            let _ = w.shutdown().await;
            // Read until the listener hangs up, so our close cannot race its error line.
            while let Ok(Some(_)) = r.read_frame().await {}
            return;
        }
    }
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 256];
    while let Ok(n) = tokio::io::AsyncReadExt::read(&mut stream, &mut sink).await {
        if n == 0 {
            break;
        }
    }
}

fn is_problem_line(line: &str) -> bool {
    line.contains("schat: warning:") || line.contains("schat: error:")
}

#[tokio::test]
async fn a_thousand_hostile_connections_cost_one_line_each_and_nothing_else() {
    within(async {
        let (listener_home, friend) = (Home::new(), Home::new());
        let (mut listener, port) = listener_home.listen(&["--timeout", "1"]).await;

        let mut tried: BTreeMap<Attack, usize> = BTreeMap::new();
        let mut reasons: BTreeMap<Attack, BTreeMap<String, usize>> = BTreeMap::new();
        let total = 1000;
        for i in 0..total {
            let kind = if i >= total - 3 {
                Attack::DeclaredMaxLengthThenSilence
            } else {
                ATTACKS[i % ATTACKS.len()]
            };
            let attacker = tokio::spawn(attack(port, kind));
            // Exactly one problem line per connection, in order (the listener serves one at a
            // time), before the next one is tried.
            let line = listener.stderr_until_any(is_problem_line).await;
            tokio::time::timeout(Duration::from_secs(10), attacker)
                .await
                .expect("attacker stuck")
                .unwrap();
            *tried.entry(kind).or_default() += 1;
            let reason = line
                .split_once(": ")
                .map(|(_, r)| r.rsplit(": ").next().unwrap_or(r).to_string())
                .unwrap_or(line.clone());
            *reasons.entry(kind).or_default().entry(reason).or_default() += 1;
        }

        // The listener is still up and a genuine peer chats normally.
        let mut dialer = friend.dial(port, &[]);
        dialer.stderr_until("welcome").await;
        dialer.send("still here?").await;
        let mut got = listener.said().await;
        while got != "still here?" {
            // Replayed and reordered attacks delivered their first message before failing.
            assert!(
                ["replayed"].contains(&got.as_str()),
                "unexpected output {got:?}"
            );
            got = listener.said().await;
        }
        dialer.send("quit").await;
        assert!(dialer.exit().await.success());
        listener.signal("INT");
        assert!(listener.exit().await.success());
        let problems = listener
            .stderr_seen
            .iter()
            .filter(|l| is_problem_line(l))
            .count();
        assert_eq!(problems, total, "one problem line per hostile connection");
        assert!(!listener.stderr_text().contains("panicked"));

        eprintln!("hostile connections tried, with what the listener said:");
        for (kind, n) in &tried {
            eprintln!("  {kind:?}: {n}");
            for (reason, m) in &reasons[kind] {
                eprintln!("      {m:>4} × {reason}");
            }
        }
    })
    .await
}
