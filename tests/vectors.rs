//! The cacophony test vector for `Noise_XX_25519_ChaChaPoly_BLAKE2s`, replayed through the same
//! snow configuration schat uses (`handshake::noise_builder`): every handshake message, the
//! handshake hash and every transport ciphertext must match byte for byte.

use schat::handshake::{CLASSICAL_PATTERN, noise_builder};
use serde_json::Value;

fn hex(v: &Value) -> Vec<u8> {
    hex::decode(v.as_str().unwrap()).unwrap()
}

#[test]
fn cacophony_xx_blake2s_matches_byte_for_byte() {
    let file: Value = serde_json::from_str(include_str!("data/cacophony-xx-blake2s.json")).unwrap();
    let vectors = file["vectors"].as_array().unwrap();
    assert_eq!(vectors.len(), 1);
    let v = &vectors[0];
    assert_eq!(v["protocol_name"], CLASSICAL_PATTERN);

    let (init_static, init_eph) = (hex(&v["init_static"]), hex(&v["init_ephemeral"]));
    let (resp_static, resp_eph) = (hex(&v["resp_static"]), hex(&v["resp_ephemeral"]));
    let (init_prologue, resp_prologue) = (hex(&v["init_prologue"]), hex(&v["resp_prologue"]));
    let mut initiator = noise_builder(&init_static, &init_prologue)
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(&init_eph)
        .build_initiator()
        .unwrap();
    let mut responder = noise_builder(&resp_static, &resp_prologue)
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(&resp_eph)
        .build_responder()
        .unwrap();

    let messages = v["messages"].as_array().unwrap();
    let mut buf = vec![0u8; 65535];
    let mut out = vec![0u8; 65535];
    // Handshake: messages 0..3 alternate initiator → responder → initiator.
    for (i, m) in messages[..3].iter().enumerate() {
        let (payload, expected) = (hex(&m["payload"]), hex(&m["ciphertext"]));
        let (sender, receiver) = if i % 2 == 0 {
            (&mut initiator, &mut responder)
        } else {
            (&mut responder, &mut initiator)
        };
        let len = sender.write_message(&payload, &mut buf).unwrap();
        assert_eq!(
            hex::encode(&buf[..len]),
            hex::encode(&expected),
            "handshake message {i}"
        );
        let got = receiver.read_message(&buf[..len], &mut out).unwrap();
        assert_eq!(&out[..got], &payload[..]);
    }
    assert_eq!(
        hex::encode(initiator.get_handshake_hash()),
        v["handshake_hash"]
    );
    assert_eq!(
        hex::encode(responder.get_handshake_hash()),
        v["handshake_hash"]
    );

    // Transport: the vector continues alternating, responder first (message 3 is index 3).
    let mut initiator = initiator.into_transport_mode().unwrap();
    let mut responder = responder.into_transport_mode().unwrap();
    for (i, m) in messages.iter().enumerate().skip(3) {
        let (payload, expected) = (hex(&m["payload"]), hex(&m["ciphertext"]));
        let (sender, receiver) = if i % 2 == 0 {
            (&mut initiator, &mut responder)
        } else {
            (&mut responder, &mut initiator)
        };
        let len = sender.write_message(&payload, &mut buf).unwrap();
        assert_eq!(
            hex::encode(&buf[..len]),
            hex::encode(&expected),
            "transport message {i}"
        );
        let got = receiver.read_message(&buf[..len], &mut out).unwrap();
        assert_eq!(&out[..got], &payload[..]);
    }
}

/// A whole schat/2 opening with fixed keys and randomness (the cacophony vector's static and
/// ephemeral keys, ML-KEM seed 00…3f, encapsulation randomness 40…5f), checked against the
/// values PROTOCOL.md §9.2 gives, so that an independent implementation can check itself
/// against the document.
#[test]
fn the_schat_opening_vector_in_protocol_md_is_right() {
    use schat::handshake::core::{Initiator, Randomness, Responder};
    use schat::keys::{Identity, SecretKey};
    use sha2::Digest;
    let file: Value = serde_json::from_str(include_str!("data/cacophony-xx-blake2s.json")).unwrap();
    let v = &file["vectors"][0];
    let key = |name: &str| -> [u8; 32] { hex(&v[name]).try_into().unwrap() };
    let identity = |name: &str| {
        Identity::from_secret(SecretKey::from_bytes(zeroize::Zeroizing::new(key(name))))
    };
    let (dialer_id, listener_id) = (identity("init_static"), identity("resp_static"));
    let dialer_random = Randomness {
        ephemeral: Some(key("init_ephemeral")),
        kem_seed: Some(std::array::from_fn(|i| i as u8)),
        encaps: None,
    };
    let listener_random = Randomness {
        ephemeral: Some(key("resp_ephemeral")),
        kem_seed: None,
        encaps: Some(std::array::from_fn(|i| 0x40 + i as u8)),
    };
    let (state, msg1) = Initiator::start(&dialer_id, &dialer_random).unwrap();
    let responder = Responder::read_message_1(&listener_id, &listener_random, &msg1).unwrap();
    let (responder, msg2) = responder.write_message_2().unwrap();
    let (state, _) = state.read_message_2(&msg2).unwrap();
    let (dialer_done, msg3) = state.write_message_3().unwrap();
    let listener_done = responder.read_message_3(&msg3).unwrap();
    assert_eq!(dialer_done.handshake_hash, listener_done.handshake_hash);

    // The same transcript built by hand from PROTOCOL.md §3 — snow with the fixed ephemerals,
    // the PSK with the `hmac` crate directly — must give the same bytes; it also yields h₂
    // and the PSK, which the document gives so that a PSK bug can be pinned down.
    let (ds, de) = (key("init_static"), key("init_ephemeral"));
    let (ls, le) = (key("resp_static"), key("resp_ephemeral"));
    let mut hi = schat::handshake::noise_builder_for(schat::handshake::PATTERN, &ds, b"schat/2")
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(&de)
        .build_initiator()
        .unwrap();
    let mut hr = schat::handshake::noise_builder_for(schat::handshake::PATTERN, &ls, b"schat/2")
        .unwrap()
        .fixed_ephemeral_key_for_testing_only(&le)
        .build_responder()
        .unwrap();
    let (dec, ek) =
        schat::kem::generate(&zeroize::Zeroizing::new(std::array::from_fn(|i| i as u8)));
    let (mut b1, mut b2) = (vec![0u8; 4096], vec![0u8; 4096]);
    let n = hi.write_message(&ek[..], &mut b1).unwrap();
    assert_eq!(&b1[..n], &msg1[..], "message 1 by hand");
    hr.read_message(&b1[..n], &mut b2).unwrap();
    let m: [u8; 32] = std::array::from_fn(|i| 0x40 + i as u8);
    let (ct, shared) = schat::kem::encapsulate(&ek, zeroize::Zeroizing::new(m)).unwrap();
    let n = hr.write_message(&ct[..], &mut b1).unwrap();
    assert_eq!(&b1[..n], &msg2[..], "message 2 by hand");
    hi.read_message(&b1[..n], &mut b2).unwrap();
    let h2 = hi.get_handshake_hash().to_vec();
    assert_eq!(h2, hr.get_handshake_hash());
    assert_eq!(*dec.decapsulate(&ct), *shared);
    let psk = {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&shared[..]).unwrap();
        mac.update(b"schat/2 psk");
        mac.update(&h2);
        mac.finalize().into_bytes().to_vec()
    };
    hi.set_psk(3, &psk).unwrap();
    hr.set_psk(3, &psk).unwrap();
    let n = hi.write_message(&[], &mut b1).unwrap();
    assert_eq!(&b1[..n], &msg3[..], "message 3 by hand");
    hr.read_message(&b1[..n], &mut b2).unwrap();

    // The resume token (§4.11) by hand: HMAC-SHA256 keyed with Split()'s two keys.
    let token = {
        use hmac::Mac;
        let (k1, k2) = hi.dangerously_get_raw_split();
        let mut mac =
            <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&[k1, k2].concat()).unwrap();
        mac.update(b"schat/2 resume");
        mac.update(&dialer_done.handshake_hash);
        mac.finalize().into_bytes().to_vec()
    };
    assert_eq!(
        token,
        dialer_done.resume_token.to_vec(),
        "the dialer's token"
    );
    assert_eq!(
        token,
        listener_done.resume_token.to_vec(),
        "the listener's token"
    );
    let sha = |b: &[u8]| hex::encode(sha2::Sha256::digest(b));
    let mut got: Vec<(String, String)> = vec![
        ("message 1 length".into(), msg1.len().to_string()),
        ("message 1 first 32 bytes".into(), hex::encode(&msg1[..32])),
        ("message 1 SHA-256".into(), sha(&msg1)),
        ("message 2 length".into(), msg2.len().to_string()),
        ("message 2 SHA-256".into(), sha(&msg2)),
        ("h after message 2".into(), hex::encode(&h2)),
        ("PSK".into(), hex::encode(&psk)),
        ("message 3".into(), hex::encode(&msg3)),
        (
            "handshake hash".into(),
            hex::encode(dialer_done.handshake_hash),
        ),
        ("resume token".into(), hex::encode(&token)),
    ];
    // The transport messages by hand with snow's own transport (independent of schat's
    // CipherStates), and checked against what schat's give for the same session.
    let mut dialer = hi.into_transport_mode().unwrap();
    let mut listener = hr.into_transport_mode().unwrap();
    let (mut dialer_ours, mut listener_ours) = (dialer_done.ciphers, listener_done.ciphers);
    let mut buf = vec![0u8; 1024];
    let mut ours = vec![0u8; 1024];
    let mut seal =
        |state: &mut snow::TransportState, mine: &mut schat::cipher::CipherPair, plain: &[u8]| {
            let len = state.write_message(plain, &mut buf).unwrap();
            let n = mine.write_message(plain, &mut ours).unwrap();
            assert_eq!(
                buf[..len],
                ours[..n],
                "schat's CipherState differs from snow's"
            );
            let mut frame = (len as u16).to_be_bytes().to_vec();
            frame.extend_from_slice(&buf[..len]);
            hex::encode(frame)
        };
    got.push((
        "listener HELLO chat".into(),
        seal(&mut listener, &mut listener_ours, &[0x0a, 0x00]),
    ));
    got.push((
        "listener WELCOME hi".into(),
        seal(&mut listener, &mut listener_ours, b"\x01hi"),
    ));
    got.push((
        "dialer HELLO chat".into(),
        seal(&mut dialer, &mut dialer_ours, &[0x0a, 0x00]),
    ));
    got.push((
        "dialer TEXT hi".into(),
        seal(&mut dialer, &mut dialer_ours, b"\x02hi"),
    ));

    let doc = include_str!("../PROTOCOL.md");
    for (name, hex) in &got {
        let line = format!("{name}: {hex}");
        if std::env::var_os("PRINT_VECTOR").is_some() {
            println!("{line}");
            continue;
        }
        assert!(doc.contains(&line), "PROTOCOL.md §9.2 lacks {line:?}");
    }
}

/// The message vectors of PROTOCOL.md §4.0, §4.5 and §4.6, encoded by schat's own codec: each
/// line the document shows is what the code produces (and decodes back).
#[test]
fn the_notice_and_name_vectors_in_protocol_md_are_right() {
    use schat::message::notice::{Entry, Event, Notice, Reason};
    use schat::message::{Message, Mode};
    let k = [0xc0u8; 32];
    let key = "K";
    let carol = || Entry {
        key: k,
        name: "carol".into(),
    };
    let cases: Vec<(Message<'_>, String)> = vec![
        (
            Message::hello(Mode::Chat, "carol"),
            "`0a 00 63 61 72 6f 6c`".into(),
        ),
        (
            Message::Notice(Notice::text("hi")),
            "`07 00 00 00 68 69`".into(),
        ),
        (
            Message::Notice(Notice {
                event: Event::Join(carol()),
                text: "carol joined".into(),
            }),
            format!(
                "`07 01 00 26` ‖ `{key}` ‖ `05 63 61 72 6f 6c` ‖\n  `63 61 72 6f 6c 20 6a 6f 69 6e 65 64`"
            ),
        ),
        (
            Message::Notice(Notice {
                event: Event::Leave(
                    Entry {
                        key: k,
                        name: "".into(),
                    },
                    Reason::Timeout,
                ),
                text: "".into(),
            }),
            format!("`07 02 00 22` ‖ `{key}` ‖ `00 03`"),
        ),
        (
            Message::Notice(Notice {
                event: Event::Roster(vec![]),
                text: "x".into(),
            }),
            "`07 05 00 00 78`".into(),
        ),
        (
            Message::Nick("carol".into()),
            "NICK `0d 63 61 72 6f 6c`".into(),
        ),
        (
            Message::Invite(zeroize::Zeroizing::new([9; 16])),
            format!("`0e {}\n09`", ["09"; 15].join(" ")),
        ),
    ];
    let doc = include_str!("../PROTOCOL.md");
    let spaced = |bytes: &[u8]| {
        bytes
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect::<Vec<_>>()
            .join(" ")
    };
    for (msg, shown) in cases {
        assert!(doc.contains(&shown), "PROTOCOL.md lacks {shown:?}");
        let mut wire = Vec::new();
        msg.encode_into(&mut wire).unwrap();
        // The document writes the key as `K`; put it back and compare the bytes.
        let expected: String = shown
            .replace("NICK ", "")
            .replace(&format!("`{key}`"), &spaced(&k))
            .replace(['`', '‖', '\n'], " ")
            .split_whitespace()
            .collect::<Vec<_>>()
            .join(" ");
        assert_eq!(spaced(&wire), expected, "{msg:?}");
        assert_eq!(Message::decode(&wire).unwrap(), msg);
    }
}

/// PROTOCOL.md §4.9's CIPHERS/SWITCH vectors (computed there with Python's `cryptography`, an
/// AEAD implementation independent of schat's): schat's CipherState gives the same frames,
/// the AES-256-GCM key is `REKEY()` of the ChaCha20-Poly1305 one, nonces go on counting
/// big-endian after the switch, and REKEY under AES-256-GCM uses AES-256-GCM.
#[test]
fn the_cipher_switch_vectors_in_protocol_md_are_right() {
    use schat::cipher::{Aead, CipherState, TAG_LEN};
    let k: [u8; 32] = std::array::from_fn(|i| i as u8);
    let frame = |state: &mut CipherState, plain: &[u8]| {
        let mut buf = vec![0u8; plain.len() + TAG_LEN];
        buf[..plain.len()].copy_from_slice(plain);
        let n = state.seal(&mut buf, plain.len()).unwrap();
        let mut f = (n as u16).to_be_bytes().to_vec();
        f.extend_from_slice(&buf[..n]);
        hex::encode(f)
    };
    let mut got = Vec::new();
    let mut first = CipherState::new(Aead::ChaChaPoly, &k).unwrap();
    got.push((
        "CIPHERS 01 at n=0 (ChaChaPoly)",
        frame(&mut first, &[0x80, 0x01]),
    ));
    let mut state = CipherState::new(Aead::ChaChaPoly, &k).unwrap();
    for _ in 0..5 {
        frame(&mut state, b"\x04"); // nonces 0 to 4
    }
    got.push((
        "SWITCH at n=5 (ChaChaPoly)",
        frame(&mut state, &[0x81, 0x01]),
    ));
    state.switch_to_aes_gcm().unwrap();
    got.push(("TEXT hi at n=6 (AES-256-GCM)", frame(&mut state, b"\x02hi")));
    got.push(("REKEY at n=7 (AES-256-GCM)", frame(&mut state, &[0x08])));
    state.rekey().unwrap();
    got.push(("TEXT hi at n=8 (AES-256-GCM)", frame(&mut state, b"\x02hi")));
    // The keys the document shows: a fresh AES-256-GCM state with each one, at the same
    // nonces, gives the same frames.
    let doc = include_str!("../PROTOCOL.md");
    let shown = |name: &str| -> [u8; 32] {
        let line = doc
            .lines()
            .find_map(|l| l.strip_prefix(&format!("{name}: ")))
            .unwrap_or_else(|| panic!("PROTOCOL.md §4.9 lacks {name}"));
        hex::decode(line).unwrap().try_into().unwrap()
    };
    let at = |key: [u8; 32], n: usize, plain: &[u8]| {
        let mut s = CipherState::new(Aead::AesGcm, &key).unwrap();
        for _ in 0..n {
            frame(&mut s, b"\x04");
        }
        frame(&mut s, plain)
    };
    assert_eq!(at(shown("AES-256-GCM key"), 6, b"\x02hi"), got[2].1);
    assert_eq!(at(shown("key after REKEY"), 8, b"\x02hi"), got[4].1);
    for (name, hex) in &got {
        let line = format!("{name}: {hex}");
        assert!(doc.contains(&line), "PROTOCOL.md §4.9 lacks {line:?}");
    }
}

/// PROTOCOL.md §4.12's pipe-resume vectors, encoded by schat's codec, and its false counts
/// refused by the window that keeps what a pipe sent.
#[test]
fn the_pipe_resume_vectors_in_protocol_md_are_right() {
    use schat::message::{Message, Mode};
    use schat::resume::Window;
    use schat::resume::window::BadCount;
    let doc = include_str!("../PROTOCOL.md");
    let section = &doc[doc.find("### 4.12").unwrap()..doc.find("## 5.").unwrap()];
    let cases: Vec<(Message<'_>, &str)> = vec![
        (Message::Resumable, "`83`"),
        (Message::hello(Mode::Pipe, ""), "`0a 02`"),
        (Message::Ack(1 << 20), "`13 00 00 00 00 00 10 00 00`"),
        (Message::Resumed(3), "`15 00 00 00 00 00 00 00 03`"),
        (Message::Data(b"def".as_slice().into()), "`09 64 65 66`"),
        (Message::End, "`11`"),
    ];
    for (msg, shown) in cases {
        assert!(section.contains(shown), "§4.12 lacks {shown}");
        let mut wire = Vec::new();
        msg.encode_into(&mut wire).unwrap();
        let spaced: Vec<String> = wire.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(format!("`{}`", spaced.join(" ")), shown, "{msg:?}");
        assert_eq!(Message::decode(&wire).unwrap(), msg);
    }
    // The exchange: "abcdef" sent, the listener took 3 bytes: "def" goes again.
    let mut window = Window::new(1 << 20);
    let mut message = vec![0x09];
    message.extend_from_slice(b"abcdef");
    window.sent(message, 7);
    window.acked(3).unwrap();
    let again: Vec<&[u8]> = window.messages().collect();
    assert_eq!(again, vec![&[0x09, b'd', b'e', b'f'][..]]);
    // An ACK 7 counts more than was sent; a RESUMED 2 after an ACK 3 goes back.
    assert_eq!(window.acked(7), Err(BadCount::MoreThanSent));
    assert_eq!(window.acked(2), Err(BadCount::WentBack));
}

/// PROTOCOL.md §4.13's file vectors, encoded and decoded by schat's codec, with the hash of
/// `hello` (also checked against the `blake3` crate), and its invalid bodies refused.
#[test]
fn the_file_vectors_in_protocol_md_are_right() {
    use schat::message::{FileMessage, Message};
    let doc = include_str!("../PROTOCOL.md");
    let section = &doc[doc.find("### 4.13").unwrap()..doc.find("## 5.").unwrap()];
    let hash_hex = "ea8f163db38682925e4491c5e58d4bb3506ef8c14eb78a86e908c5624a67200f";
    assert!(section.contains(hash_hex));
    assert_eq!(blake3::hash(b"hello").to_hex().as_str(), hash_hex);
    let mut hash = [0u8; 32];
    hash.copy_from_slice(&::hex::decode(hash_hex).unwrap());
    let spaced = |wire: &[u8]| -> String {
        let bytes: Vec<String> = wire.iter().map(|b| format!("{b:02x}")).collect();
        bytes.join(" ")
    };
    let file = |f: FileMessage<'static>| Message::File(f);
    let cases: Vec<(Message<'static>, String)> = vec![
        (Message::Files, "`84`".into()),
        (
            file(FileMessage::Accept {
                id: 1,
                offset: 0,
                limit: 5,
            }),
            "`16 02 00 00 00 01 00 00 00 00 00 00 00 00 00 00 00 00 00 00 00 05`".into(),
        ),
        (
            file(FileMessage::Chunk {
                id: 1,
                offset: 0,
                data: b"hello".to_vec().into(),
            }),
            "`16 04 00 00 00 01 00 00 00 00 00 00 00 00 68 65 6c 6c 6f`".into(),
        ),
        (
            file(FileMessage::Done { id: 1 }),
            "`16 06 00 00 00 01`".into(),
        ),
        (
            file(FileMessage::Verified { id: 1 }),
            "`16 07 00 00 00 01`".into(),
        ),
        (
            file(FileMessage::Accept {
                id: 1,
                offset: 3,
                limit: 5,
            }),
            "`16 02 00 00 00 01 00 00 00 00 00 00 00 03 00 00 00 00 00 00 00 05`".into(),
        ),
        (
            file(FileMessage::Chunk {
                id: 1,
                offset: 3,
                data: b"lo".to_vec().into(),
            }),
            "`16 04 00 00 00 01 00 00 00 00 00 00 00 03 6c 6f`".into(),
        ),
        (
            file(FileMessage::Credit {
                id: 1,
                limit: 8 << 20,
            }),
            "`16 05 00 00 00 01 00 00 00 00 00 80 00 00`".into(),
        ),
        (
            file(FileMessage::Reject {
                id: 1,
                reason: "no".into(),
            }),
            "`16 03 00 00 00 01 6e 6f`".into(),
        ),
        (
            file(FileMessage::Cancel {
                id: 1,
                reason: "".into(),
            }),
            "`16 08 00 00 00 01`".into(),
        ),
    ];
    for (msg, shown) in cases {
        assert!(section.contains(&shown), "§4.13 lacks {shown}");
        let mut wire = Vec::new();
        msg.encode_into(&mut wire).unwrap();
        assert_eq!(format!("`{}`", spaced(&wire)), shown, "{msg:?}");
        assert_eq!(Message::decode(&wire).unwrap(), msg);
    }
    // The offer: its head, the hash, then the path, as the section gives them.
    let offer = file(FileMessage::Offer {
        id: 1,
        size: 5,
        hash,
        path: "hello.txt".into(),
    });
    let mut wire = Vec::new();
    offer.encode_into(&mut wire).unwrap();
    let head = "`16 01 00 00 00 01 00 00 00 00 00 00 00 05`";
    let path = "`68 65 6c 6c 6f 2e 74 78 74`";
    assert!(section.contains(head) && section.contains(path));
    assert_eq!(format!("`{}`", spaced(&wire[..14])), head);
    assert_eq!(&wire[14..46], &hash);
    assert_eq!(format!("`{}`", spaced(&wire[46..])), path);
    assert_eq!(Message::decode(&wire).unwrap(), offer);
    for invalid in [
        "16",
        "16 01 00 00 00",
        "16 06 00 00 00 01 00",
        "16 09 00 00 00 01",
        "16 04 00 00 00 01 00 00 00 00 00 00 00 00",
        "84 00",
    ] {
        assert!(
            section.contains(&format!("`{invalid}`")),
            "§4.13 lacks {invalid}"
        );
        let bytes = ::hex::decode(invalid.replace(' ', "")).unwrap();
        assert!(Message::decode(&bytes).is_err(), "{invalid} decoded");
    }
}

/// PROTOCOL.md §4.14: a pair's handshake (the same fixed keys and randomness as §9.2, under
/// the pair's prologue), checked by hand with snow; the first sealed messages, checked with
/// snow's own stateless transport (independent of schat's CipherStates); and the PAIRS and
/// PEER plaintexts.
#[test]
fn the_pair_vectors_in_protocol_md_are_right() {
    use schat::handshake::core::{Initiator, Randomness, Responder};
    use schat::keys::{Identity, SecretKey};
    use schat::message::Message;
    use schat::message::peer::{PeerMessage, PeerOp};
    use sha2::Digest;
    let file: Value = serde_json::from_str(include_str!("data/cacophony-xx-blake2s.json")).unwrap();
    let v = &file["vectors"][0];
    let key = |name: &str| -> [u8; 32] { hex(&v[name]).try_into().unwrap() };
    let identity = |name: &str| {
        Identity::from_secret(SecretKey::from_bytes(zeroize::Zeroizing::new(key(name))))
    };
    let (a, b) = (identity("init_static"), identity("resp_static"));
    let prologue = schat::pairs::prologue(a.public(), b.public());
    assert_eq!(&prologue[..12], b"schat/2 pair");
    let (state, msg1) = Initiator::start_with(
        &a,
        &Randomness {
            ephemeral: Some(key("init_ephemeral")),
            kem_seed: Some(std::array::from_fn(|i| i as u8)),
            encaps: None,
        },
        &prologue,
    )
    .unwrap();
    let listener_random = Randomness {
        ephemeral: Some(key("resp_ephemeral")),
        kem_seed: None,
        encaps: Some(std::array::from_fn(|i| 0x40 + i as u8)),
    };
    let responder = Responder::read_message_1_with(&b, &listener_random, &msg1, &prologue).unwrap();
    let (responder, msg2) = responder.write_message_2().unwrap();
    let (state, _) = state.read_message_2(&msg2).unwrap();
    let (a_done, msg3) = state.write_message_3().unwrap();
    let b_done = responder.read_message_3(&msg3).unwrap();
    assert_eq!(a_done.handshake_hash, b_done.handshake_hash);

    // By hand: snow with the same prologue and the PSK of §3.
    let mut hi = schat::handshake::noise_builder_for(
        schat::handshake::PATTERN,
        &key("init_static"),
        &prologue,
    )
    .unwrap()
    .fixed_ephemeral_key_for_testing_only(&key("init_ephemeral"))
    .build_initiator()
    .unwrap();
    let mut hr = schat::handshake::noise_builder_for(
        schat::handshake::PATTERN,
        &key("resp_static"),
        &prologue,
    )
    .unwrap()
    .fixed_ephemeral_key_for_testing_only(&key("resp_ephemeral"))
    .build_responder()
    .unwrap();
    let (_, ek) = schat::kem::generate(&zeroize::Zeroizing::new(std::array::from_fn(|i| i as u8)));
    let (mut b1, mut b2) = (vec![0u8; 4096], vec![0u8; 4096]);
    let n = hi.write_message(&ek[..], &mut b1).unwrap();
    assert_eq!(&b1[..n], &msg1[..]);
    hr.read_message(&b1[..n], &mut b2).unwrap();
    let m: [u8; 32] = std::array::from_fn(|i| 0x40 + i as u8);
    let (ct, shared) = schat::kem::encapsulate(&ek, zeroize::Zeroizing::new(m)).unwrap();
    let n = hr.write_message(&ct[..], &mut b1).unwrap();
    assert_eq!(&b1[..n], &msg2[..]);
    hi.read_message(&b1[..n], &mut b2).unwrap();
    let psk = {
        use hmac::Mac;
        let mut mac = <hmac::Hmac<sha2::Sha256> as Mac>::new_from_slice(&shared[..]).unwrap();
        mac.update(b"schat/2 psk");
        mac.update(hi.get_handshake_hash());
        mac.finalize().into_bytes().to_vec()
    };
    hi.set_psk(3, &psk).unwrap();
    hr.set_psk(3, &psk).unwrap();
    let n = hi.write_message(&[], &mut b1).unwrap();
    assert_eq!(&b1[..n], &msg3[..]);
    hr.read_message(&b1[..n], &mut b2).unwrap();
    let stateless = hi.into_stateless_transport_mode().unwrap();

    // Sealed TEXT `hi` from A (the initiator) to B at nonces 0 and 1, as A sends them to the
    // host: PEER addressed to B.
    let spaced = |wire: &[u8]| -> String {
        let bytes: Vec<String> = wire.iter().map(|b| format!("{b:02x}")).collect();
        bytes.join(" ")
    };
    let sealed = |counter: u64| {
        let mut out = vec![0u8; 64];
        let n = stateless
            .write_message(counter, b"\x02hi", &mut out)
            .unwrap();
        let mut ours = b"\x02hi\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0\0".to_vec();
        let len = a_done.ciphers.send.seal_at(counter, &mut ours, 3).unwrap();
        assert_eq!(out[..n], ours[..len], "schat's sealing differs from snow's");
        let peer = Message::Peer(PeerMessage {
            key: *b.public().as_bytes(),
            op: PeerOp::Sealed {
                counter,
                ciphertext: out[..n].to_vec().into(),
            },
        });
        let mut wire = Vec::new();
        peer.encode_into(&mut wire).unwrap();
        assert_eq!(Message::decode(&wire).unwrap(), peer);
        // B opens it with its own session.
        let mut copy = out[..n].to_vec();
        let len = b_done.ciphers.recv.open_at(counter, &mut copy).unwrap();
        assert_eq!(&copy[..len], b"\x02hi");
        wire
    };
    let (s0, s1) = (sealed(0), sealed(1));
    // Files between members: FILES (and FILES with its restart flag) sealed as the next two,
    // then the CHUNK `hello` and the DONE of A's transfer 1 as BULK (by snow, with the
    // nonces of §4.14, and by schat's own sealer).
    let seal_snow = |nonce: u64, plain: &[u8]| {
        let mut out = vec![0u8; plain.len() + 16];
        let n = stateless.write_message(nonce, plain, &mut out).unwrap();
        out.truncate(n);
        out
    };
    let peer_wire = |op: PeerOp<'static>| {
        let mut wire = Vec::new();
        Message::Peer(PeerMessage {
            key: *b.public().as_bytes(),
            op,
        })
        .encode_into(&mut wire)
        .unwrap();
        wire
    };
    let files_sealed = |nonce: u64, plain: &[u8]| {
        peer_wire(PeerOp::Sealed {
            counter: nonce,
            ciphertext: seal_snow(nonce, plain).into(),
        })
    };
    let (f2, f3) = (files_sealed(2, b"\x84"), files_sealed(3, b"\x84\x01"));
    let chunk = b"\x16\x04\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\x00hello";
    let done = b"\x16\x06\x00\x00\x00\x01";
    let bulk = |index: u32, plain: &[u8]| {
        let nonce = schat::message::peer::bulk_nonce(1, index).unwrap();
        let wire = peer_wire(PeerOp::Bulk {
            nonce,
            ciphertext: seal_snow(nonce, plain).into(),
        });
        // schat's sealing at that nonce is snow's, and B opens it as what it is.
        let mut ours = [plain, &[0u8; 16][..]].concat();
        let n = a_done
            .ciphers
            .send
            .seal_at(nonce, &mut ours, plain.len())
            .unwrap();
        assert_eq!(ours[..n], seal_snow(nonce, plain)[..]);
        let mut copy = seal_snow(nonce, plain);
        let len = b_done.ciphers.recv.open_at(nonce, &mut copy).unwrap();
        assert_eq!(&copy[..len], plain);
        wire
    };
    let (b0, b1) = (bulk(0, chunk), bulk(1, done));
    let sha = |b: &[u8]| hex::encode(sha2::Sha256::digest(b));
    let got = [
        ("pair prologue".to_string(), hex::encode(&prologue)),
        ("pair message 1 SHA-256".into(), sha(&msg1)),
        ("pair message 2 SHA-256".into(), sha(&msg2)),
        ("pair message 3".into(), hex::encode(&msg3)),
        (
            "pair handshake hash".into(),
            hex::encode(a_done.handshake_hash),
        ),
        ("sealed TEXT hi, nonce 0".into(), spaced(&s0)),
        ("sealed TEXT hi, nonce 1".into(), spaced(&s1)),
        ("sealed FILES, nonce 2".into(), spaced(&f2)),
        ("sealed FILES 01 (restart), nonce 3".into(), spaced(&f3)),
        (
            "BULK CHUNK hello of transfer 1, piece 0".into(),
            spaced(&b0),
        ),
        ("BULK DONE of transfer 1, piece 1".into(), spaced(&b1)),
    ];
    let doc = include_str!("../PROTOCOL.md");
    for (name, value) in &got {
        let line = format!("{name}: {value}");
        if std::env::var_os("PRINT_VECTOR").is_some() {
            println!("{line}");
            continue;
        }
        assert!(doc.contains(&line), "PROTOCOL.md §4.14 lacks {line:?}");
    }
    // The short ones, as the document writes them.
    let section = &doc[doc.find("### 4.14").unwrap()..doc.find("## 5.").unwrap()];
    let gone = Message::Peer(PeerMessage {
        key: [0xc0; 32],
        op: PeerOp::Gone,
    });
    let mut wire = Vec::new();
    gone.encode_into(&mut wire).unwrap();
    assert_eq!(wire, [&[0x17][..], &[0xc0; 32], &[0x05]].concat());
    for (msg, text) in [
        (Message::Pairs(0), "`85 00`"),
        (Message::Pairs(1), "`85 01`"),
    ] {
        let mut wire = Vec::new();
        msg.encode_into(&mut wire).unwrap();
        assert_eq!(format!("`{}`", spaced(&wire)), text);
        assert!(section.contains(text), "{text}");
    }
    assert!(section.contains("`17` ‖ `K` ‖ `05`"));
    for bad in ["85", "85 00 00", "17 00", "17 c0 c0"] {
        let bytes = ::hex::decode(bad.replace(' ', "")).unwrap();
        assert!(Message::decode(&bytes).is_err(), "{bad}");
        assert!(section.contains(&format!("`{bad}`")), "{bad}");
    }
}
