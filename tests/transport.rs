//! Handshake and encrypted transport over in-memory pipes (`tokio::io::duplex`), including
//! pipes so small that every frame arrives in pieces, and peers that misbehave.

use schat::error::{Error, ProtocolError};
use schat::framed::{FrameReader, FrameWriter};
use schat::handshake::{self, Established, PATTERN, PROLOGUE};
use schat::keys::Identity;
use schat::message::{MAX_BODY, Message};
use snow::Builder;
use snow::resolvers::{CryptoResolver, DefaultResolver};
use std::time::Duration;
use tokio::io::{AsyncRead, AsyncWrite, DuplexStream, ReadHalf, WriteHalf, duplex, split};

type Side = Established<ReadHalf<DuplexStream>, WriteHalf<DuplexStream>>;

const LIMIT: Duration = Duration::from_secs(20);

/// Every test runs under a deadline: a hang is a failure, not a stuck CI job.
async fn within<F: std::future::Future>(test: F) -> F::Output {
    tokio::time::timeout(Duration::from_secs(60), test)
        .await
        .expect("test timed out")
}

/// Runs both handshakes over a duplex pipe with `buffer` bytes of capacity.
async fn connected(buffer: usize) -> (Side, Side, Identity, Identity) {
    let (alice, bob) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (a, b) = duplex(buffer);
    let (ar, aw) = split(a);
    let (br, bw) = split(b);
    let (dialer, listener) = tokio::time::timeout(LIMIT, async {
        tokio::join!(
            handshake::initiate(&alice, FrameReader::new(ar), FrameWriter::new(aw), |_| Ok(
                ()
            )),
            handshake::respond(&bob, FrameReader::new(br), FrameWriter::new(bw)),
        )
    })
    .await
    .expect("handshake timed out");
    (dialer.unwrap(), listener.unwrap(), alice, bob)
}

async fn next<R: AsyncRead + Unpin>(
    side: &mut schat::transport::RecvHalf<R>,
) -> Result<Option<Message<'static>>, Error> {
    tokio::time::timeout(LIMIT, side.recv())
        .await
        .expect("recv timed out")
        .map(|m| m.map(Message::into_owned))
}

#[tokio::test]
async fn both_sides_learn_each_others_key_and_the_same_hash() {
    within(async {
        let (dialer, listener, alice, bob) = connected(4096).await;
        assert_eq!(dialer.peer, *bob.public());
        assert_eq!(listener.peer, *alice.public());
        assert_eq!(dialer.handshake_hash, listener.handshake_hash);
    })
    .await
}

/// Sends `out` while receiving `expect` messages, concurrently (as a real session does).
async fn exchange(side: &mut Side, out: &[Message<'_>], expect: usize) -> Vec<Message<'static>> {
    let Established { recv, send, .. } = side;
    let sending = async {
        for m in out {
            send.send(m).await.unwrap();
        }
    };
    let receiving = async {
        let mut got = Vec::new();
        for _ in 0..expect {
            got.push(next(recv).await.unwrap().unwrap());
        }
        got
    };
    tokio::join!(sending, receiving).1
}

#[tokio::test]
async fn messages_flow_both_ways_through_a_one_byte_pipe() {
    within(async {
        let (mut dialer, mut listener, ..) = connected(1).await;
        let long = "é".repeat(MAX_BODY / 2);
        let to_listener = [
            Message::Text("hello".into()),
            Message::Text(long.as_str().into()),
            Message::Ping(vec![1, 2, 3].into()),
        ];
        let to_dialer = [
            Message::Welcome("welcome".into()),
            Message::Text("".into()),
            Message::Extension {
                kind: 0x99,
                body: vec![0; 10].into(),
            },
        ];
        // Both directions at once: a one-byte pipe deadlocks any design that cannot.
        let (a, b) = tokio::join!(
            exchange(&mut dialer, &to_listener, to_dialer.len()),
            exchange(&mut listener, &to_dialer, to_listener.len()),
        );
        assert_eq!(a, to_dialer);
        assert_eq!(b, to_listener);
    })
    .await
}

#[tokio::test]
async fn full_duplex_bulk_does_not_deadlock() {
    within(async {
        let (dialer, listener, ..) = connected(1024).await;
        let body = "x".repeat(MAX_BODY);
        let count = 64; // 4 MiB each way through a 1 KiB pipe
        let run = |side: Side, body: String| async move {
            let Established {
                mut recv, mut send, ..
            } = side;
            let sender = tokio::spawn(async move {
                for _ in 0..count {
                    send.send(&Message::Text(body.as_str().into()))
                        .await
                        .unwrap();
                }
                send.quit("done").await.unwrap();
            });
            let mut received = 0;
            while let Some(msg) = next(&mut recv).await.unwrap() {
                match msg {
                    Message::Text(t) => {
                        assert_eq!(t.len(), MAX_BODY);
                        received += 1;
                    }
                    Message::Quit(r) => assert_eq!(r, "done"),
                    other => panic!("unexpected {other:?}"),
                }
            }
            assert!(recv.quit_received());
            sender.await.unwrap();
            received
        };
        let (a, b) = tokio::time::timeout(LIMIT, async {
            tokio::join!(run(dialer, body.clone()), run(listener, body.clone()))
        })
        .await
        .expect("deadlock");
        assert_eq!((a, b), (count, count));
    })
    .await
}

#[tokio::test]
async fn quit_then_clean_close_and_nothing_may_follow() {
    within(async {
        let (mut dialer, mut listener, ..) = connected(4096).await;
        dialer.send.quit("bye").await.unwrap();
        assert!(dialer.send.quit_sent());
        assert!(matches!(
            dialer.send.send(&Message::Text("late".into())).await,
            Err(Error::Internal(_))
        ));
        assert_eq!(
            next(&mut listener.recv).await.unwrap(),
            Some(Message::Quit("bye".into()))
        );
        assert_eq!(next(&mut listener.recv).await.unwrap(), None);
    })
    .await
}

#[tokio::test]
async fn oversized_message_is_refused_before_anything_is_sent() {
    within(async {
        let (mut dialer, mut listener, ..) = connected(4096).await;
        let too_long = "x".repeat(MAX_BODY + 1);
        assert!(matches!(
            dialer
                .send
                .send(&Message::Text(too_long.as_str().into()))
                .await,
            Err(Error::Usage(_))
        ));
        // The session is still usable and in sync.
        dialer.send.send(&Message::Text("ok".into())).await.unwrap();
        assert_eq!(
            next(&mut listener.recv).await.unwrap(),
            Some(Message::Text("ok".into()))
        );
    })
    .await
}

/// A man in the middle that forwards frames from `from` to `to`, passing each through `alter`
/// (which may change or drop it).
fn proxy<R, W>(from: R, to: W, mut alter: impl FnMut(usize, &mut Vec<u8>) -> bool + Send + 'static)
where
    R: AsyncRead + Unpin + Send + 'static,
    W: AsyncWrite + Unpin + Send + 'static,
{
    tokio::spawn(async move {
        let mut reader = FrameReader::new(from);
        let mut writer = FrameWriter::new(to);
        let mut n = 0;
        while let Ok(Some(frame)) = reader.read_frame().await {
            let mut frame = frame.to_vec();
            if alter(n, &mut frame) && writer.write_frame(&frame).await.is_err() {
                return;
            }
            n += 1;
        }
        let _ = writer.shutdown().await;
    });
}

/// Dialer ↔ proxy ↔ listener, where `alter` sees the dialer's frames (numbered from 0:
/// handshake messages 1 and 3 are frames 0 and 1).
async fn connected_through(
    alter: impl FnMut(usize, &mut Vec<u8>) -> bool + Send + 'static,
) -> (Result<Side, Error>, Result<Side, Error>) {
    let (alice, bob) = (Identity::generate().unwrap(), Identity::generate().unwrap());
    let (a, a_far) = duplex(4096);
    let (b, b_far) = duplex(4096);
    let (a_far_r, a_far_w) = split(a_far);
    let (b_far_r, b_far_w) = split(b_far);
    proxy(a_far_r, b_far_w, alter);
    proxy(b_far_r, a_far_w, |_, _| true);
    let (ar, aw) = split(a);
    let (br, bw) = split(b);
    tokio::time::timeout(LIMIT, async {
        tokio::join!(
            handshake::initiate(&alice, FrameReader::new(ar), FrameWriter::new(aw), |_| Ok(
                ()
            )),
            handshake::respond(&bob, FrameReader::new(br), FrameWriter::new(bw)),
        )
    })
    .await
    .expect("handshake timed out")
}

#[tokio::test]
async fn tampered_ciphertext_ends_the_session_and_delivers_nothing() {
    within(async {
        // Frame 2 is the first transport message; flip one bit of its ciphertext.
        let (dialer, listener) = connected_through(|n, frame| {
            if n == 2 {
                frame[5] ^= 0x01;
            }
            true
        })
        .await;
        let (mut dialer, mut listener) = (dialer.unwrap(), listener.unwrap());
        dialer
            .send
            .send(&Message::Text("attack at dawn".into()))
            .await
            .unwrap();
        dialer
            .send
            .send(&Message::Text("second".into()))
            .await
            .unwrap();
        assert!(matches!(
            next(&mut listener.recv).await,
            Err(Error::Protocol(ProtocolError::Decrypt))
        ));
    })
    .await
}

#[tokio::test]
async fn tampered_handshake_fails_on_both_sides() {
    within(async {
        // Flip a bit in message 3 (the dialer's encrypted static key).
        let (dialer, listener) = connected_through(|n, frame| {
            if n == 1 {
                frame[10] ^= 0x80;
            }
            true
        })
        .await;
        // The dialer finishes its part (it cannot know), the listener refuses.
        assert!(dialer.is_ok());
        assert!(matches!(
            listener,
            Err(Error::Protocol(ProtocolError::Handshake(_)))
        ));
    })
    .await
}

#[tokio::test]
async fn replayed_and_dropped_messages_are_detected() {
    within(async {
        // Frame 3 is replaced by a copy of frame 2: the nonce no longer matches.
        let mut saved = Vec::new();
        let (dialer, listener) = connected_through(move |n, frame| {
            if n == 2 {
                saved = frame.clone();
            }
            if n == 3 {
                *frame = saved.clone();
            }
            true
        })
        .await;
        let (mut dialer, mut listener) = (dialer.unwrap(), listener.unwrap());
        for text in ["one", "two"] {
            dialer.send.send(&Message::Text(text.into())).await.unwrap();
        }
        assert_eq!(
            next(&mut listener.recv).await.unwrap(),
            Some(Message::Text("one".into()))
        );
        assert!(matches!(
            next(&mut listener.recv).await,
            Err(Error::Protocol(ProtocolError::Decrypt))
        ));

        // Dropping a message is detected the same way: the next one's nonce is wrong.
        let (dialer, listener) = connected_through(|n, _| n != 2).await;
        let (mut dialer, mut listener) = (dialer.unwrap(), listener.unwrap());
        for text in ["lost", "next"] {
            dialer.send.send(&Message::Text(text.into())).await.unwrap();
        }
        assert!(matches!(
            next(&mut listener.recv).await,
            Err(Error::Protocol(ProtocolError::Decrypt))
        ));
    })
    .await
}

#[tokio::test]
async fn stream_cut_inside_a_frame_is_a_truncation() {
    within(async {
        let (dialer, listener) = connected_through(|n, frame| {
            if n == 2 {
                frame.truncate(frame.len() / 2);
            }
            true
        })
        .await;
        let (mut dialer, listener) = (dialer.unwrap(), listener.unwrap());
        // The proxy re-frames the shortened body, so the listener sees a short ciphertext.
        dialer
            .send
            .send(&Message::Text("hello".into()))
            .await
            .unwrap();
        let mut listener = listener;
        assert!(matches!(
            next(&mut listener.recv).await,
            Err(Error::Protocol(ProtocolError::Decrypt))
        ));

        // A raw cut: a length prefix promising more than ever arrives.
        let mut reader = FrameReader::new(&[0u8, 40, 1, 2, 3][..]);
        assert!(matches!(
            reader.read_frame().await,
            Err(Error::Protocol(ProtocolError::TruncatedFrame))
        ));
    })
    .await
}

/// Our listener's handshake on one end of an in-memory pipe (its outcome), and the other end.
fn our_listener() -> (
    tokio::task::JoinHandle<Result<(), Error>>,
    tokio::io::ReadHalf<tokio::io::DuplexStream>,
    tokio::io::WriteHalf<tokio::io::DuplexStream>,
) {
    let bob = Identity::generate().unwrap();
    let (a, b) = duplex(4096);
    let (ar, aw) = split(a);
    let (br, bw) = split(b);
    let listener = tokio::spawn(async move {
        handshake::respond(&bob, FrameReader::new(br), FrameWriter::new(bw))
            .await
            .map(|_| ())
    });
    (listener, ar, aw)
}

/// A schat/2 handshake done by hand from PROTOCOL.md (snow for Noise, `schat::kem` for
/// ML-KEM-768): the dialer's side. `Err` says where it stopped.
async fn hand_dial<R, W>(
    mut noise: snow::HandshakeState,
    r: &mut FrameReader<R>,
    w: &mut FrameWriter<W>,
) -> Result<snow::TransportState, String>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 4096];
    let (dec, ek) = schat::kem::generate(&zeroize::Zeroizing::new([7; schat::kem::SEED_LEN]));
    let n = noise
        .write_message(&ek[..], &mut buf)
        .map_err(|e| format!("msg1: {e}"))?;
    assert_eq!(n, 1232, "message 1: e, then the 1,184-byte key with a tag");
    w.write_frame(&buf[..n]).await.map_err(|e| e.to_string())?;
    let msg2 = r
        .read_frame()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("closed")?
        .to_vec();
    let n = noise
        .read_message(&msg2, &mut buf)
        .map_err(|e| format!("msg2: {e}"))?;
    let ct: [u8; schat::kem::CT_LEN] = buf[..n].try_into().map_err(|_| "msg2 payload")?;
    let shared = dec.decapsulate(&ct);
    let psk = schat::kem::psk(&shared, noise.get_handshake_hash());
    noise
        .set_psk(3, &psk[..])
        .map_err(|e| format!("psk: {e}"))?;
    let n = noise
        .write_message(&[], &mut buf)
        .map_err(|e| format!("msg3: {e}"))?;
    w.write_frame(&buf[..n]).await.map_err(|e| e.to_string())?;
    noise.into_transport_mode().map_err(|e| e.to_string())
}

/// The listener's side of [`hand_dial`].
async fn hand_answer<R, W>(
    mut noise: snow::HandshakeState,
    r: &mut FrameReader<R>,
    w: &mut FrameWriter<W>,
) -> Result<snow::TransportState, String>
where
    R: tokio::io::AsyncRead + Unpin,
    W: tokio::io::AsyncWrite + Unpin,
{
    let mut buf = vec![0u8; 4096];
    let msg1 = r
        .read_frame()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("closed")?
        .to_vec();
    let n = noise
        .read_message(&msg1, &mut buf)
        .map_err(|e| format!("msg1: {e}"))?;
    let ek: [u8; schat::kem::EK_LEN] = buf[..n].try_into().map_err(|_| "msg1 payload")?;
    let (ct, shared) =
        schat::kem::encapsulate(&ek, zeroize::Zeroizing::new([9; 32])).ok_or("invalid KEM key")?;
    let n = noise
        .write_message(&ct[..], &mut buf)
        .map_err(|e| format!("msg2: {e}"))?;
    w.write_frame(&buf[..n]).await.map_err(|e| e.to_string())?;
    let psk = schat::kem::psk(&shared, noise.get_handshake_hash());
    noise
        .set_psk(3, &psk[..])
        .map_err(|e| format!("psk: {e}"))?;
    let msg3 = r
        .read_frame()
        .await
        .map_err(|e| e.to_string())?
        .ok_or("closed")?
        .to_vec();
    noise
        .read_message(&msg3, &mut buf)
        .map_err(|e| format!("msg3: {e}"))?;
    noise.into_transport_mode().map_err(|e| e.to_string())
}

/// A hand-built Noise peer, as a different implementation (or version) would be.
fn foreign(prologue: &[u8], initiator: bool) -> snow::HandshakeState {
    let builder = Builder::new(PATTERN.parse().unwrap());
    let key = builder.generate_keypair().unwrap();
    let builder = builder
        .local_private_key(&key.private)
        .unwrap()
        .prologue(prologue)
        .unwrap();
    if initiator {
        builder.build_initiator().unwrap()
    } else {
        builder.build_responder().unwrap()
    }
}

#[tokio::test]
async fn a_peer_with_another_prologue_fails_the_handshake() {
    within(async {
        // Our listener against a dialer of another version (same sizes, other prologue): its
        // message 1 payload does not even authenticate.
        let (listener, ar, aw) = our_listener();
        let noise = foreign(b"schat/3", true);
        let (mut r, mut w) = (FrameReader::new(ar), FrameWriter::new(aw));
        assert!(hand_dial(noise, &mut r, &mut w).await.is_err());
        drop((r, w));
        let result = tokio::time::timeout(LIMIT, listener)
            .await
            .unwrap()
            .unwrap();
        assert!(
            matches!(result, Err(Error::Protocol(ProtocolError::Handshake(_)))),
            "{result:?}"
        );
    })
    .await
}

/// A schat/1 dialer is named from the size of its message 1; a schat/1 listener hangs up at
/// ours, and our dialer says it may be one. Never a fallback.
#[tokio::test]
async fn a_schat1_peer_is_named_as_such_both_ways() {
    within(async {
        let classic = |initiator: bool| {
            let key = Builder::new(handshake::CLASSICAL_PATTERN.parse().unwrap())
                .generate_keypair()
                .unwrap();
            let b = handshake::noise_builder(&key.private, b"schat/1").unwrap();
            if initiator {
                b.build_initiator().unwrap()
            } else {
                b.build_responder().unwrap()
            }
        };
        let (listener, ar, aw) = our_listener();
        let mut old = classic(true);
        let mut buf = vec![0u8; 4096];
        let n = old.write_message(&[], &mut buf).unwrap();
        let (_r, mut w) = (FrameReader::new(ar), FrameWriter::new(aw));
        w.write_frame(&buf[..n]).await.unwrap();
        let err = tokio::time::timeout(LIMIT, listener)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("schat/1"), "{err}");

        let alice = Identity::generate().unwrap();
        let (a, b) = duplex(4096);
        let (ar, aw) = split(a);
        let (br, bw) = split(b);
        let dialer = tokio::spawn(async move {
            handshake::initiate(&alice, FrameReader::new(ar), FrameWriter::new(aw), |_| {
                Ok(())
            })
            .await
            .map(|_| ())
        });
        // A real schat/1 listener sees a message 1 of another size than 32 and hangs up.
        let mut r = FrameReader::new(br);
        let header = r.peek_header().await.unwrap().unwrap();
        assert_ne!(u16::from_be_bytes(header), 32);
        drop((r, bw));
        let err = tokio::time::timeout(LIMIT, dialer)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("schat/1"), "{err}");
    })
    .await
}

#[tokio::test]
async fn the_same_prologue_from_a_foreign_implementation_works() {
    within(async {
        // Sanity check for the test above, and for PROTOCOL.md: schat/2 built by hand from its
        // text (snow + ML-KEM) interoperates with ours.
        let bob = Identity::generate().unwrap();
        let (a, b) = duplex(4096);
        let (ar, aw) = split(a);
        let (br, bw) = split(b);
        let listener = tokio::spawn(async move {
            handshake::respond(&bob, FrameReader::new(br), FrameWriter::new(bw)).await
        });
        let noise = foreign(PROLOGUE, true);
        let (mut r, mut w) = (FrameReader::new(ar), FrameWriter::new(aw));
        let mut noise = hand_dial(noise, &mut r, &mut w).await.unwrap();
        let mut listener = listener.await.unwrap().unwrap();
        // Plaintext TEXT "hi" = 0x02 'h' 'i'.
        let mut buf = vec![0u8; 64];
        let len = noise.write_message(&[0x02, b'h', b'i'], &mut buf).unwrap();
        w.write_frame(&buf[..len]).await.unwrap();
        assert_eq!(
            next(&mut listener.recv).await.unwrap(),
            Some(Message::Text("hi".into()))
        );

        // And our dialer with a listener built by hand.
        let alice = Identity::generate().unwrap();
        let (a, b) = duplex(4096);
        let (ar, aw) = split(a);
        let (br, bw) = split(b);
        let dialer = tokio::spawn(async move {
            handshake::initiate(&alice, FrameReader::new(ar), FrameWriter::new(aw), |_| {
                Ok(())
            })
            .await
        });
        let noise = foreign(PROLOGUE, false);
        let (mut r, mut w) = (FrameReader::new(br), FrameWriter::new(bw));
        hand_answer(noise, &mut r, &mut w).await.unwrap();
        assert!(dialer.await.unwrap().is_ok());
    })
    .await
}

/// The post-quantum part, tampered with in every place a man in the middle (or a broken
/// implementation) could: each fails the handshake, never silently.
#[tokio::test]
async fn a_tampered_kem_key_ciphertext_or_psk_fails_the_handshake() {
    within(async {
        // An invalid ML-KEM key, properly encrypted in message 1: our listener says so.
        let (listener, ar, aw) = our_listener();
        let mut noise = foreign(PROLOGUE, true);
        let mut buf = vec![0u8; 4096];
        let mut bad_key = [0u8; schat::kem::EK_LEN];
        bad_key[0] = 0xff;
        bad_key[1] = 0x0f;
        let n = noise.write_message(&bad_key, &mut buf).unwrap();
        let mut w = FrameWriter::new(aw);
        w.write_frame(&buf[..n]).await.unwrap();
        let err = tokio::time::timeout(LIMIT, listener)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("invalid ML-KEM-768 key"), "{err}");
        drop(ar);

        // A ciphertext altered in message 2 (by a peer that knows the session keys): the two
        // sides derive different PSKs, and message 3 does not authenticate at the listener.
        let alice = Identity::generate().unwrap();
        let (a, b) = duplex(4096);
        let (ar, aw) = split(a);
        let (br, bw) = split(b);
        let dialer = tokio::spawn(async move {
            handshake::initiate(&alice, FrameReader::new(ar), FrameWriter::new(aw), |_| {
                Ok(())
            })
            .await
        });
        let mut noise = foreign(PROLOGUE, false);
        let (mut r, mut w) = (FrameReader::new(br), FrameWriter::new(bw));
        let msg1 = r.read_frame().await.unwrap().unwrap().to_vec();
        let n = noise.read_message(&msg1, &mut buf).unwrap();
        let ek: [u8; schat::kem::EK_LEN] = buf[..n].try_into().unwrap();
        let (mut ct, shared) =
            schat::kem::encapsulate(&ek, zeroize::Zeroizing::new([1; 32])).unwrap();
        ct[10] ^= 0x01;
        let n = noise.write_message(&ct[..], &mut buf).unwrap();
        w.write_frame(&buf[..n]).await.unwrap();
        let psk = schat::kem::psk(&shared, noise.get_handshake_hash());
        noise.set_psk(3, &psk[..]).unwrap();
        let msg3 = r.read_frame().await.unwrap().unwrap().to_vec();
        assert_eq!(
            noise.read_message(&msg3, &mut buf),
            Err(snow::Error::Decrypt)
        );
        drop((r, w));
        // Our dialer could not tell (implicit rejection): its handshake finished, and the
        // session ends at its first read, as the listener hangs up.
        let mut ours = dialer
            .await
            .unwrap()
            .expect("our side finishes its handshake");
        assert!(!matches!(ours.recv.recv().await, Ok(Some(_))));

        // A PSK derived from the wrong handshake hash (before message 2, not after it): our
        // listener refuses message 3, naming the post-quantum part.
        let (listener, ar, aw) = our_listener();
        let mut noise = foreign(PROLOGUE, true);
        let (mut r, mut w) = (FrameReader::new(ar), FrameWriter::new(aw));
        let (dec, ek) = schat::kem::generate(&zeroize::Zeroizing::new([5; 64]));
        let n = noise.write_message(&ek[..], &mut buf).unwrap();
        let early_hash = noise.get_handshake_hash().to_vec();
        w.write_frame(&buf[..n]).await.unwrap();
        let msg2 = r.read_frame().await.unwrap().unwrap().to_vec();
        let n = noise.read_message(&msg2, &mut buf).unwrap();
        let ct: [u8; schat::kem::CT_LEN] = buf[..n].try_into().unwrap();
        let psk = schat::kem::psk(&dec.decapsulate(&ct), &early_hash);
        noise.set_psk(3, &psk[..]).unwrap();
        let n = noise.write_message(&[], &mut buf).unwrap();
        w.write_frame(&buf[..n]).await.unwrap();
        let err = tokio::time::timeout(LIMIT, listener)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("post-quantum"), "{err}");

        // The PSK mixed in at another place (XXpsk2: after message 2's tokens) is another
        // protocol from the first byte: message 1 does not authenticate.
        let (listener, ar, aw) = our_listener();
        let key = Builder::new(PATTERN.parse().unwrap())
            .generate_keypair()
            .unwrap();
        let mut noise = handshake::noise_builder_for(
            "Noise_XXpsk2_25519_ChaChaPoly_BLAKE2s",
            &key.private,
            PROLOGUE,
        )
        .unwrap()
        .build_initiator()
        .unwrap();
        let (_, ek) = schat::kem::generate(&zeroize::Zeroizing::new([6; 64]));
        let n = noise.write_message(&ek[..], &mut buf).unwrap();
        let mut w = FrameWriter::new(aw);
        w.write_frame(&buf[..n]).await.unwrap();
        let err = tokio::time::timeout(LIMIT, listener)
            .await
            .unwrap()
            .unwrap()
            .unwrap_err();
        assert!(err.to_string().contains("did not authenticate"), "{err}");
        drop(ar);
    })
    .await
}

#[tokio::test]
async fn a_message_1_of_another_size_is_refused_from_its_length() {
    within(async {
        let (listener, ar, aw) = our_listener();
        let mut noise = foreign(PROLOGUE, true);
        let mut w = FrameWriter::new(aw);
        let mut buf = vec![0u8; 65535];
        let len = noise
            .write_message(b"hello in the clear", &mut buf)
            .unwrap();
        w.write_frame(&buf[..len]).await.unwrap();
        let result = tokio::time::timeout(LIMIT, listener)
            .await
            .unwrap()
            .unwrap();
        // An 18-byte payload instead of a KEM key: refused from the length prefix, unread.
        assert!(matches!(
            result,
            Err(Error::Protocol(
                ProtocolError::Handshake(_) | ProtocolError::NotSchat(_)
            ))
        ));
        drop(ar);
    })
    .await
}

#[tokio::test]
async fn garbage_and_early_close_fail_the_handshake_cleanly() {
    within(async {
        for wire in [
            &b""[..],                                           // closes at once
            &b"\x00\x05hello"[..],                              // too short for msg 1
            &b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"[..],          // HTTP
            &[0x16, 0x03, 0x01, 0x00, 0x05, 1, 2, 3, 4, 5][..], // TLS record, cut
            &[0x00, 0x20][..],                                  // length then close
        ] {
            let bob = Identity::generate().unwrap();
            let (a, b) = duplex(4096);
            let (br, bw) = split(b);
            let listener = tokio::spawn(async move {
                handshake::respond(&bob, FrameReader::new(br), FrameWriter::new(bw))
                    .await
                    .map(|_| ())
            });
            let (_ar, mut aw) = split(a);
            tokio::io::AsyncWriteExt::write_all(&mut aw, wire)
                .await
                .unwrap();
            tokio::io::AsyncWriteExt::shutdown(&mut aw).await.unwrap();
            let result = tokio::time::timeout(LIMIT, listener)
                .await
                .unwrap()
                .unwrap();
            assert!(
                matches!(
                    result,
                    Err(Error::Protocol(
                        ProtocolError::Handshake(_) | ProtocolError::NotSchat(_)
                    ))
                ),
                "{wire:?}: {result:?}"
            );
        }
    })
    .await
}

#[tokio::test]
async fn sessions_cross_many_rekeys_in_both_directions() {
    within(async {
        let (mut dialer, mut listener, ..) = connected(1024).await;
        use schat::transport::RekeyPolicy;
        // Rekey every 7 messages or 3000 bytes, whichever first.
        let policy = RekeyPolicy {
            messages: 7,
            bytes: 3000,
            interval: Duration::from_secs(3600),
        };
        dialer.send.set_rekey_policy(policy);
        listener.send.set_rekey_policy(policy);
        let out: Vec<Message<'static>> = (0..200)
            .map(|i| Message::Text("x".repeat(i * 7 % 900).into()))
            .collect();
        let (got_by_dialer, got_by_listener) = tokio::join!(
            exchange(&mut dialer, &out, out.len()),
            exchange(&mut listener, &out, out.len())
        );
        assert_eq!(got_by_dialer, out);
        assert_eq!(got_by_listener, out);
        assert!(dialer.send.rekeys() >= 28, "{}", dialer.send.rekeys());
        assert_eq!(dialer.send.rekeys(), listener.recv.rekeys());
        assert_eq!(listener.send.rekeys(), dialer.recv.rekeys());
        // Still in step afterwards.
        dialer
            .send
            .send(&Message::Text("after".into()))
            .await
            .unwrap();
        assert_eq!(
            next(&mut listener.recv).await.unwrap(),
            Some(Message::Text("after".into()))
        );
    })
    .await
}

#[tokio::test]
async fn a_rekey_that_is_not_followed_locally_breaks_decryption() {
    // Proves REKEY really changes keys: a receiver that ignores it cannot read on.
    within(async {
        // Drop the dialer's REKEY: frame 3, after handshake frames 0-1 and message "one".
        let (dialer, listener) = connected_through(|n, _| n != 3).await;
        let (mut dialer, mut listener) = (dialer.unwrap(), listener.unwrap());
        dialer.send.set_rekey_policy(schat::transport::RekeyPolicy {
            messages: 1,
            bytes: u64::MAX,
            interval: Duration::from_secs(3600),
        });
        dialer
            .send
            .send(&Message::Text("one".into()))
            .await
            .unwrap();
        dialer
            .send
            .send(&Message::Text("two".into()))
            .await
            .unwrap();
        assert_eq!(
            next(&mut listener.recv).await.unwrap(),
            Some(Message::Text("one".into()))
        );
        assert!(matches!(
            next(&mut listener.recv).await,
            Err(Error::Protocol(ProtocolError::Decrypt))
        ));
    })
    .await
}

/// A crypto resolver whose static key is *sent* with bit 255 set. X25519 ignores that bit, so
/// every Diffie-Hellman still works and the handshake completes: only the receiver's check
/// on the key's encoding can refuse it. (Ephemeral keys are left alone.)
struct TopBitResolver;

struct TopBitDh {
    inner: Box<dyn snow::types::Dh>,
    /// The public key as sent, once a static private key is set.
    shown: Option<[u8; 32]>,
}

impl snow::types::Dh for TopBitDh {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn pub_len(&self) -> usize {
        self.inner.pub_len()
    }
    fn priv_len(&self) -> usize {
        self.inner.priv_len()
    }
    fn set(&mut self, privkey: &[u8]) {
        self.inner.set(privkey);
        let mut shown: [u8; 32] = self.inner.pubkey().try_into().unwrap();
        shown[31] |= 0x80;
        self.shown = Some(shown);
    }
    fn generate(&mut self, rng: &mut dyn snow::types::Random) -> Result<(), snow::Error> {
        self.inner.generate(rng)
    }
    fn pubkey(&self) -> &[u8] {
        match &self.shown {
            Some(shown) => shown,
            None => self.inner.pubkey(),
        }
    }
    fn privkey(&self) -> &[u8] {
        self.inner.privkey()
    }
    fn dh(&self, pubkey: &[u8], out: &mut [u8]) -> Result<(), snow::Error> {
        self.inner.dh(pubkey, out)
    }
}

impl CryptoResolver for TopBitResolver {
    fn resolve_rng(&self) -> Option<Box<dyn snow::types::Random>> {
        DefaultResolver.resolve_rng()
    }
    fn resolve_dh(&self, choice: &snow::params::DHChoice) -> Option<Box<dyn snow::types::Dh>> {
        let inner = DefaultResolver.resolve_dh(choice)?;
        Some(Box::new(TopBitDh { inner, shown: None }))
    }
    fn resolve_hash(
        &self,
        choice: &snow::params::HashChoice,
    ) -> Option<Box<dyn snow::types::Hash>> {
        DefaultResolver.resolve_hash(choice)
    }
    fn resolve_cipher(
        &self,
        choice: &snow::params::CipherChoice,
    ) -> Option<Box<dyn snow::types::Cipher>> {
        DefaultResolver.resolve_cipher(choice)
    }
}

/// A Noise peer whose static key goes on the wire with bit 255 set: the same secret as its
/// canonical key, under a second encoding (and so a second fingerprint).
fn top_bit_peer(initiator: bool) -> snow::HandshakeState {
    let key = Builder::new(PATTERN.parse().unwrap())
        .generate_keypair()
        .unwrap();
    let builder = Builder::with_resolver(PATTERN.parse().unwrap(), Box::new(TopBitResolver))
        .local_private_key(&key.private)
        .unwrap()
        .prologue(PROLOGUE)
        .unwrap();
    if initiator {
        builder.build_initiator().unwrap()
    } else {
        builder.build_responder().unwrap()
    }
}

fn assert_non_canonical_refused(result: Result<(), Error>) {
    let err = result.expect_err("a non-canonical static key was accepted");
    assert!(matches!(err, Error::Protocol(_)), "{err:?}");
    assert!(err.to_string().contains("not canonical"), "{err}");
}

#[tokio::test]
async fn a_static_key_with_bit_255_set_is_refused_by_both_roles() {
    within(async {
        // Our listener against such a dialer: the Noise handshake completes on its side.
        let (listener, ar, aw) = our_listener();
        let (mut r, mut w) = (FrameReader::new(ar), FrameWriter::new(aw));
        assert!(hand_dial(top_bit_peer(true), &mut r, &mut w).await.is_ok());
        let result = tokio::time::timeout(LIMIT, listener)
            .await
            .unwrap()
            .unwrap();
        assert_non_canonical_refused(result);

        // Our dialer against such a listener.
        let alice = Identity::generate().unwrap();
        let (a, b) = duplex(4096);
        let (ar, aw) = split(a);
        let (br, bw) = split(b);
        let dialer = tokio::spawn(async move {
            handshake::initiate(&alice, FrameReader::new(ar), FrameWriter::new(aw), |_| {
                Ok(())
            })
            .await
            .map(|_| ())
        });
        let (mut r, mut w) = (FrameReader::new(br), FrameWriter::new(bw));
        let _ = hand_answer(top_bit_peer(false), &mut r, &mut w).await;
        let result = tokio::time::timeout(LIMIT, dialer).await.unwrap().unwrap();
        assert_non_canonical_refused(result);
    })
    .await
}

/// Every message type at its smallest and largest body, in both directions, through a 1-byte
/// pipe; the receiver swaps its plaintext buffer out after each one (as pipe mode hands DATA
/// to its stdout thread) for spares of every size, including tiny ones.
#[tokio::test]
async fn every_type_at_its_size_limits_survives_buffer_swaps() {
    use schat::message::MAX_RELAY_TEXT;
    within(async {
        let (mut alice, mut bob, _, _) = connected(1).await;
        let max_bytes = vec![0xa5u8; MAX_BODY];
        let max_text = "t".repeat(MAX_BODY);
        let max_relay = "r".repeat(MAX_RELAY_TEXT);
        let all: Vec<Message<'_>> = vec![
            Message::Data(b"".as_slice().into()),
            Message::Data(max_bytes.as_slice().into()),
            Message::Text("".into()),
            Message::Text(max_text.as_str().into()),
            Message::Ping(b"".as_slice().into()),
            Message::Ping(max_bytes.as_slice().into()),
            Message::Pong(b"".as_slice().into()),
            Message::Pong(max_bytes.as_slice().into()),
            Message::Notice(schat::message::Notice::text("")),
            // The event byte and the fields length take 3 bytes of the body.
            Message::Notice(schat::message::Notice::text(&max_text[3..])),
            Message::Relay {
                origin: [7; 32],
                text: "".into(),
            },
            Message::Relay {
                origin: [7; 32],
                text: max_relay.as_str().into(),
            },
            Message::Welcome("".into()),
            Message::Welcome(max_text.as_str().into()),
            Message::Data(b"x".as_slice().into()),
            Message::Quit("".into()),
        ];
        one_way(&mut alice, &mut bob, &all).await;
        one_way(&mut bob, &mut alice, &all).await;
    })
    .await
}

async fn one_way(from: &mut Side, to: &mut Side, all: &[Message<'_>]) {
    let sending = async {
        for m in all {
            from.send.send(m).await.unwrap();
        }
    };
    let receiving = async {
        for (i, expected) in all.iter().enumerate() {
            let got = to.recv.recv().await.unwrap().unwrap().into_owned();
            assert_eq!(&got, expected, "message {i}");
            // Spares of 1 byte, 4 KiB and full size, in turn.
            let spare = vec![0u8; [1, 4096, 65535][i % 3]].into_boxed_slice();
            let _ = to.recv.exchange_buffer(spare);
        }
    };
    tokio::join!(sending, receiving);
}
