use super::*;
use std::borrow::Cow;

/// The two ends of one session (the keys would come from the handshake's `Split()`).
fn pair() -> (CipherPair, CipherPair) {
    let (k1, k2) = ([1u8; 32], [2u8; 32]);
    (
        CipherPair::from_split(true, &k1, &k2).unwrap(),
        CipherPair::from_split(false, &k1, &k2).unwrap(),
    )
}

/// The next message from a blocking receiver, through any number of [`Polled::Idle`].
fn next_blocking<R: std::io::Read>(recv: &mut RecvHalf<R>) -> Option<Message<'static>> {
    loop {
        if let Polled::Ready(msg) = recv.recv_blocking().unwrap() {
            return msg.map(Message::into_owned);
        }
    }
}

fn messages() -> Vec<Message<'static>> {
    vec![
        Message::Data(Cow::Owned(vec![1; 10])),
        Message::Ping(Cow::Owned(vec![])),
        Message::Data(Cow::Owned(vec![2; message::MAX_BODY])),
        Message::Data(Cow::Owned(vec![3; 5])),
        Message::Quit(Cow::Borrowed("")),
    ]
}

/// The blocking and async halves speak the same stream, REKEYs included, in both
/// directions: what one writes, the other reads (the pipe switches engines mid-session).
#[tokio::test]
async fn blocking_and_async_halves_interoperate() {
    let rekey_often = RekeyPolicy {
        messages: 2,
        ..RekeyPolicy::default()
    };
    // Blocking send, async receive.
    let (a, b) = pair();
    let (_, mut send) = split(
        a,
        FrameReader::new(std::io::empty()),
        FrameWriter::new(Vec::new()),
    );
    send.set_rekey_policy(rekey_often);
    for m in messages() {
        send.send_blocking(&m).unwrap();
    }
    assert_eq!(send.rekeys(), 2);
    let wire = send.frames.get_ref().clone();
    let (mut recv, _) = split(
        b,
        FrameReader::new(&wire[..]),
        FrameWriter::new(std::io::sink()),
    );
    for m in messages() {
        assert_eq!(recv.recv().await.unwrap().unwrap(), m);
    }
    assert!(recv.recv().await.unwrap().is_none());
    // Async send, blocking receive.
    let (a, b) = pair();
    let (_, mut send) = split(
        a,
        FrameReader::new(std::io::empty()),
        FrameWriter::new(Vec::new()),
    );
    send.set_rekey_policy(rekey_often);
    for m in messages() {
        send.send(&m).await.unwrap();
    }
    let wire = send.frames.get_ref().clone();
    let (mut recv, _) = split(
        b,
        FrameReader::new(&wire[..]),
        FrameWriter::new(std::io::sink()),
    );
    for m in messages() {
        assert_eq!(next_blocking(&mut recv).unwrap(), m);
    }
    assert_eq!(recv.rekeys(), 2);
    assert!(next_blocking(&mut recv).is_none());
}

/// A half moved onto another stream keeps its keys and what it had already buffered.
#[tokio::test]
async fn a_moved_half_keeps_its_buffer_and_keys() {
    let (a, b) = pair();
    let (_, mut send) = split(
        a,
        FrameReader::new(std::io::empty()),
        FrameWriter::new(Vec::new()),
    );
    for m in messages() {
        send.send(&m).await.unwrap();
    }
    let wire = send.frames.get_ref().clone();
    // Two messages read through the async reader, which has buffered part of the third;
    // then the same stream, read on by the blocking reader from where it was.
    let (mut recv, _) = split(
        b,
        FrameReader::new(&wire[..]),
        FrameWriter::new(std::io::sink()),
    );
    for m in &messages()[..2] {
        assert_eq!(&recv.recv().await.unwrap().unwrap(), m);
    }
    let mut recv = recv.try_map_io(|rest: &[u8]| Ok::<_, ()>(rest)).unwrap();
    for m in &messages()[2..] {
        assert_eq!(&next_blocking(&mut recv).unwrap(), m);
    }
}

type Half = (
    RecvHalf<tokio::io::ReadHalf<tokio::io::DuplexStream>>,
    SendHalf<tokio::io::WriteHalf<tokio::io::DuplexStream>>,
);

/// One side of a session over an in-memory stream: sends HELLO and TEXT "0", waits until
/// the peer's "0" has arrived (its CIPHERS came before it), then sends `n` more texts and
/// REKEYs every 3 messages; reads the peer's side of the same. Each direction in a task of
/// its own, so 1-byte buffers cannot deadlock.
async fn run_side(half: Half, n: usize) -> Half {
    let (mut recv, mut send) = half;
    send.set_rekey_policy(RekeyPolicy {
        messages: 3,
        ..RekeyPolicy::default()
    });
    let (got_first, first) = tokio::sync::oneshot::channel();
    let sender = tokio::spawn(async move {
        send.send(&Message::hello(message::Mode::Chat, ""))
            .await
            .unwrap();
        send.send(&Message::Text("0".into())).await.unwrap();
        first.await.unwrap();
        for i in 1..=n {
            send.send(&Message::Text(i.to_string().into()))
                .await
                .unwrap();
        }
        send
    });
    let receiver = tokio::spawn(async move {
        let hello = recv.recv().await.unwrap().unwrap().into_owned();
        assert_eq!(hello, Message::hello(message::Mode::Chat, ""));
        let first = recv.recv().await.unwrap().unwrap().into_owned();
        assert_eq!(first, Message::Text("0".into()));
        got_first.send(()).unwrap();
        for i in 1..=n {
            let text = recv.recv().await.unwrap().unwrap().into_owned();
            assert_eq!(text, Message::Text(i.to_string().into()));
        }
        recv
    });
    (receiver.await.unwrap(), sender.await.unwrap())
}

/// A session over `tokio::io::duplex(buf)`, each side offering AES-256-GCM or not; both
/// sides run [`run_side`]. Returns the halves afterwards.
async fn session_over_duplex(buf: usize, a_offers: bool, b_offers: bool) -> (Half, Half) {
    let (ka, kb) = pair();
    let (x, y) = tokio::io::duplex(buf);
    let ((xr, xw), (yr, yw)) = (tokio::io::split(x), tokio::io::split(y));
    let a = split_offering(ka, FrameReader::new(xr), FrameWriter::new(xw), a_offers);
    let b = split_offering(kb, FrameReader::new(yr), FrameWriter::new(yw), b_offers);
    tokio::join!(run_side(a, 20), run_side(b, 20))
}

/// When both sides offer it, each direction moves to AES-256-GCM right after the peer's
/// CIPHERS, messages keep flowing (REKEYs included, under the new cipher), and the session
/// code sees neither CIPHERS nor SWITCH. Over 1-byte buffers too.
#[tokio::test]
async fn both_offering_moves_both_directions_to_aes_gcm() {
    for buf in [1, 64 * 1024] {
        let ((ar, aw), (br, bw)) = session_over_duplex(buf, true, true).await;
        for cipher in [ar.cipher(), aw.cipher(), br.cipher(), bw.cipher()] {
            assert_eq!(cipher, Aead::AesGcm, "buffer {buf}");
        }
        assert!(aw.rekeys() >= 6 && br.rekeys() == aw.rekeys());
    }
}

/// One side without AES (no hardware, or SCHAT_NO_AES): nobody switches, and the session
/// works as before; the same with an old peer that never sends CIPHERS.
#[tokio::test]
async fn one_side_without_aes_keeps_chachapoly_both_ways() {
    for (a, b) in [(true, false), (false, true), (false, false)] {
        let ((ar, aw), (br, bw)) = session_over_duplex(1, a, b).await;
        for cipher in [ar.cipher(), aw.cipher(), br.cipher(), bw.cipher()] {
            assert_eq!(cipher, Aead::ChaChaPoly, "offers {a} {b}");
        }
    }
}

/// Frames a hand-driven peer seals for a receiving half: what `recv` makes of them, in order.
async fn receive_from_raw(
    offer: bool,
    plaintexts: &[&[u8]],
    switch_at: Option<usize>,
) -> Vec<Result<Option<Message<'static>>>> {
    receive_from_raw_after(true, offer, plaintexts, switch_at).await
}

/// As [`receive_from_raw`]; `our_hello`: whether we have sent our HELLO (and with it our
/// CIPHERS, when we offer) before reading.
async fn receive_from_raw_after(
    our_hello: bool,
    offer: bool,
    plaintexts: &[&[u8]],
    switch_at: Option<usize>,
) -> Vec<Result<Option<Message<'static>>>> {
    let (mut peer, ours) = pair();
    let mut wire = Vec::new();
    for (i, plain) in plaintexts.iter().enumerate() {
        let mut out = vec![0u8; plain.len() + TAG_LEN];
        let n = peer.write_message(plain, &mut out).unwrap();
        wire.extend_from_slice(&(n as u16).to_be_bytes());
        wire.extend_from_slice(&out[..n]);
        if switch_at == Some(i) {
            peer.send.switch_to_aes_gcm().unwrap();
        }
    }
    let (mut recv, mut send) = split_offering(
        ours,
        FrameReader::new(&wire[..]),
        FrameWriter::new(Vec::new()),
        offer,
    );
    if our_hello {
        send.send(&Message::hello(message::Mode::Chat, ""))
            .await
            .unwrap();
    }
    let mut results = Vec::new();
    loop {
        let r = recv.recv().await.map(|m| m.map(Message::into_owned));
        let stop = !matches!(r, Ok(Some(_)));
        results.push(r);
        if stop {
            return results;
        }
    }
}

/// A peer that breaks the switch's rules ends the session: SWITCH to a cipher we did not
/// offer, to one nobody knows, twice, or CIPHERS twice. A well-behaved switch, and CIPHERS
/// naming only unknown ids, pass.
#[tokio::test]
async fn a_peer_breaking_the_switch_rules_ends_the_session() {
    let hello: &[u8] = &[kind::HELLO, 0];
    let text: &[u8] = &[kind::TEXT, b'x'];
    let aes_offer: &[u8] = &[kind::CIPHERS, kind::CIPHER_AES_256_GCM];
    let switch: &[u8] = &[kind::SWITCH, kind::CIPHER_AES_256_GCM];
    let is_err = |r: &Result<Option<Message<'static>>>| {
        matches!(r, Err(Error::Protocol(ProtocolError::Unexpected(..))))
    };
    // Fine: CIPHERS, SWITCH, then a message under AES-GCM.
    let ok = receive_from_raw(true, &[hello, aes_offer, switch, text], Some(2)).await;
    assert_eq!(ok.len(), 3, "{ok:?}");
    assert_eq!(ok[1].as_ref().unwrap(), &Some(Message::Text("x".into())));
    // Fine: ids we do not know are ignored.
    let unknown = receive_from_raw(true, &[hello, &[kind::CIPHERS, 0x07, 0xff], text], None).await;
    assert_eq!(unknown.len(), 3, "{unknown:?}");
    // SWITCH although we offered nothing.
    let r = receive_from_raw(false, &[hello, switch, text], Some(1)).await;
    assert!(is_err(&r[1]), "{r:?}");
    // SWITCH before our CIPHERS went out (we would offer, but have not yet).
    let r = receive_from_raw_after(false, true, &[hello, switch, text], Some(1)).await;
    assert!(is_err(&r[1]), "{r:?}");
    // A SWITCH, then a message still under ChaCha20-Poly1305: it cannot decrypt.
    let r = receive_from_raw(true, &[hello, aes_offer, switch, text], None).await;
    assert!(
        matches!(r[1], Err(Error::Protocol(ProtocolError::Decrypt))),
        "{r:?}"
    );
    // SWITCH from a peer that never sent its CIPHERS, or before its HELLO; CIPHERS
    // before its HELLO.
    let r = receive_from_raw(true, &[hello, switch, text], Some(1)).await;
    assert!(is_err(&r[1]), "{r:?}");
    let r = receive_from_raw(true, &[switch, hello, text], Some(0)).await;
    assert!(is_err(&r[0]), "{r:?}");
    let r = receive_from_raw(true, &[aes_offer, hello, switch, text], Some(2)).await;
    assert!(is_err(&r[0]), "{r:?}");
    // SWITCH to an unknown cipher, or with no id.
    for bad in [
        &[kind::SWITCH, 0x02][..],
        &[kind::SWITCH][..],
        &[kind::SWITCH, 1, 1][..],
    ] {
        let r = receive_from_raw(true, &[hello, bad, text], None).await;
        assert!(is_err(&r[1]), "{bad:?}: {r:?}");
    }
    // SWITCH twice.
    let r = receive_from_raw(true, &[hello, aes_offer, switch, switch, text], Some(2)).await;
    assert!(is_err(&r[1]), "{r:?}");
    // CIPHERS twice.
    let r = receive_from_raw(true, &[hello, aes_offer, aes_offer, text], None).await;
    assert!(is_err(&r[1]), "{r:?}");
}

/// Our CIPHERS goes right after our HELLO and nowhere else, and only when we offer.
#[tokio::test]
async fn ciphers_follows_our_hello_once() {
    for offer in [true, false] {
        let (ours, mut peer) = pair();
        let (_, mut send) = split_offering(
            ours,
            FrameReader::new(std::io::empty()),
            FrameWriter::new(Vec::new()),
            offer,
        );
        send.send(&Message::Text("before".into())).await.unwrap();
        send.send(&Message::hello(message::Mode::Pipe, ""))
            .await
            .unwrap();
        send.send(&Message::Text("after".into())).await.unwrap();
        let wire = send.frames.get_ref().clone();
        let mut kinds = Vec::new();
        let mut rest = &wire[..];
        while !rest.is_empty() {
            let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
            let mut out = vec![0u8; len];
            let n = peer.read_message(&rest[2..2 + len], &mut out).unwrap();
            kinds.push(out[..n].to_vec());
            rest = &rest[2 + len..];
        }
        let mut expected = vec![b"\x02before".to_vec(), vec![kind::HELLO, 2]];
        if offer {
            expected.push(vec![kind::CIPHERS, kind::CIPHER_AES_256_GCM]);
        }
        expected.push(b"\x02after".to_vec());
        assert_eq!(kinds, expected);
    }
}

/// The frames `wire` holds, opened by `peer`: each plaintext.
fn plaintexts(peer: &mut CipherPair, wire: &[u8], switch_after_switch: bool) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut rest = wire;
    while !rest.is_empty() {
        let len = u16::from_be_bytes([rest[0], rest[1]]) as usize;
        let mut buf = vec![0u8; len];
        let n = peer.read_message(&rest[2..2 + len], &mut buf).unwrap();
        if switch_after_switch && buf[0] == kind::SWITCH {
            peer.recv.switch_to_aes_gcm().unwrap();
        }
        if buf[0] == kind::REKEY {
            peer.recv.rekey().unwrap();
        }
        out.push(buf[..n].to_vec());
        rest = &rest[2 + len..];
    }
    out
}

/// The peer's CIPHERS may arrive before we have said HELLO (a room host reads a member's
/// HELLO and CIPHERS before it answers): our first message is still HELLO, then our
/// CIPHERS, and the SWITCH comes before the next message. A REKEY due at the same moment
/// goes first, under the old cipher. The summary names the cipher of each direction.
#[tokio::test]
async fn our_first_message_stays_hello_and_rekey_precedes_switch() {
    let (mut peer, ours) = pair();
    let mut wire = Vec::new();
    for plain in [
        &[kind::HELLO, 0][..],
        &[kind::CIPHERS, kind::CIPHER_AES_256_GCM][..],
    ] {
        let mut out = vec![0u8; plain.len() + TAG_LEN];
        let n = peer.write_message(plain, &mut out).unwrap();
        wire.extend_from_slice(&(n as u16).to_be_bytes());
        wire.extend_from_slice(&out[..n]);
    }
    let (mut recv, mut send) = split_offering(
        ours,
        FrameReader::new(&wire[..]),
        FrameWriter::new(Vec::new()),
        true,
    );
    assert!(recv.recv().await.unwrap().is_some()); // HELLO
    assert!(recv.recv().await.unwrap().is_none()); // CIPHERS, invisible; then the end
    // A REKEY after every message: one is due when the text goes out.
    send.set_rekey_policy(RekeyPolicy {
        messages: 1,
        ..RekeyPolicy::default()
    });
    send.send(&Message::hello(message::Mode::Chat, ""))
        .await
        .unwrap();
    assert_eq!(send.cipher(), Aead::ChaChaPoly);
    send.send(&Message::Text("x".into())).await.unwrap();
    assert_eq!(send.cipher(), Aead::AesGcm);
    let ciphers = send.ciphers();
    assert_eq!(
        ciphers.describe(),
        "sending AES-256-GCM, receiving ChaCha20-Poly1305"
    );
    let got = plaintexts(&mut peer, send.frames.get_ref(), true);
    assert_eq!(
        got,
        vec![
            vec![kind::HELLO, 0],
            vec![kind::CIPHERS, kind::CIPHER_AES_256_GCM],
            vec![kind::REKEY],
            vec![kind::SWITCH, kind::CIPHER_AES_256_GCM],
            b"\x02x".to_vec(),
        ]
    );
}
