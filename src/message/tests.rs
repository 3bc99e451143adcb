use super::*;

fn encoded(msg: &Message<'_>) -> Vec<u8> {
    let mut buf = Vec::new();
    msg.encode_into(&mut buf).unwrap();
    buf
}

fn round_trip(msg: Message<'_>) {
    let mut buf = Vec::new();
    msg.encode_into(&mut buf).unwrap();
    assert_eq!(buf[0], msg.kind());
    assert_eq!(Message::decode(&buf).unwrap(), msg);
}

#[test]
fn every_type_round_trips() {
    round_trip(Message::Welcome("hello, stranger".into()));
    round_trip(Message::Text("héllo ✓".into()));
    round_trip(Message::Text("".into()));
    round_trip(Message::Quit("".into()));
    round_trip(Message::Quit("bye".into()));
    round_trip(Message::Ping(vec![1, 2, 3].into()));
    round_trip(Message::Pong(vec![].into()));
    round_trip(Message::Rekey);
    round_trip(Message::Relay {
        origin: [7; ORIGIN_LEN],
        text: "relayed ✓".into(),
    });
    round_trip(Message::Relay {
        origin: [0; ORIGIN_LEN],
        text: "".into(),
    });
    round_trip(Message::Notice(Notice::text("3 joined")));
    round_trip(Message::Data(vec![0, 1, 255].into()));
    round_trip(Message::hello(Mode::Chat, ""));
    round_trip(Message::hello(Mode::Pipe, ""));
    round_trip(Message::hello(Mode::Chat, "carol ✓"));
    round_trip(Message::Nick("carol".into()));
    round_trip(Message::Nick("".into()));
    round_trip(Message::Invite(zeroize::Zeroizing::new([7; 16])));
    round_trip(Message::Pake {
        nameplate: Some(427),
        message: [3; 33],
    });
    round_trip(Message::Pake {
        nameplate: None,
        message: [3; 33],
    });
    round_trip(Message::Confirm([4; 32]));
    round_trip(Message::End);
    round_trip(Message::Received(0));
    round_trip(Message::Received(u64::MAX));
    // The vectors of PROTOCOL.md §4.3.
    let mut buf = Vec::new();
    Message::Received(12345).encode_into(&mut buf).unwrap();
    assert_eq!(buf, [0x12, 0, 0, 0, 0, 0, 0, 0x30, 0x39]);
    Message::End.encode_into(&mut buf).unwrap();
    assert_eq!(buf, [0x11]);
    assert!(Message::decode(&[0x11, 0]).is_err());
    assert!(Message::decode(&[0x12, 0, 0, 0, 0, 0, 0, 0x30]).is_err());
    assert!(Message::decode(&[0x12, 0, 0, 0, 0, 0, 0, 0, 0x30, 0x39]).is_err());
    assert_eq!(
        Message::decode(&[0x0a, 0x01]).unwrap(),
        Message::hello(Mode::OldPipe, "")
    );
    assert!(Message::decode(&[0x0a, 0x03]).is_err());
    assert!(Message::decode(&[0x0f, 1]).is_err());
    assert!(Message::decode(&[0x10, 1]).is_err());
    assert!(Message::decode(&[0x0e, 1, 2]).is_err());
    round_trip(Message::Private("for you only".into()));
    round_trip(Message::Who);
    assert_eq!(
        Message::decode(&[0x0c, 0]),
        Err(MessageError::UnexpectedBody("WHO"))
    );
    let mut private = Vec::new();
    Message::Private("hi".into())
        .encode_into(&mut private)
        .unwrap();
    assert_eq!(private, [0x0b, b'h', b'i'], "PROTOCOL.md §4");
    // The test vectors of PROTOCOL.md §4.
    let mut buf = Vec::new();
    Message::hello(Mode::Chat, "")
        .encode_into(&mut buf)
        .unwrap();
    assert_eq!(buf, [0x0a, 0x00]);
    Message::hello(Mode::Pipe, "")
        .encode_into(&mut buf)
        .unwrap();
    assert_eq!(buf, [0x0a, 0x02]);
    Message::hello(Mode::Chat, "carol")
        .encode_into(&mut buf)
        .unwrap();
    assert_eq!(buf, b"\x0a\x00carol");
    Message::Nick("carol".into()).encode_into(&mut buf).unwrap();
    assert_eq!(buf, b"\x0dcarol");
    for bad in [&[0x0a][..], &[0x0a, 0x03]] {
        assert_eq!(
            Message::decode(bad),
            Err(MessageError::UnexpectedBody("HELLO"))
        );
    }
    assert_eq!(
        Message::decode(&[0x0a, 0x00, 0xff]),
        Err(MessageError::InvalidUtf8("HELLO"))
    );
    let mut long = vec![0x0a, 0x00];
    long.extend(vec![b'x'; notice::MAX_NAME + 1]);
    assert!(Message::decode(&long).is_err());
    round_trip(Message::Extension {
        kind: 0xfe,
        body: vec![0, 255].into(),
    });
}

#[test]
fn relay_is_origin_then_text_and_its_text_limit_is_smaller() {
    let mut buf = Vec::new();
    let origin = [9u8; ORIGIN_LEN];
    Message::Relay {
        origin,
        text: "hi".into(),
    }
    .encode_into(&mut buf)
    .unwrap();
    assert_eq!(buf[0], kind::RELAY);
    assert_eq!(&buf[1..33], &origin);
    assert_eq!(&buf[33..], b"hi");
    let max = "x".repeat(MAX_RELAY_TEXT);
    let ok = Message::Relay {
        origin,
        text: max.as_str().into(),
    };
    ok.encode_into(&mut buf).unwrap();
    let over = "x".repeat(MAX_RELAY_TEXT + 1);
    let too_long = Message::Relay {
        origin,
        text: over.as_str().into(),
    };
    assert!(too_long.encode_into(&mut buf).is_err());
}

#[test]
fn wire_bytes_are_type_then_body() {
    let mut buf = Vec::new();
    Message::Text("hi".into()).encode_into(&mut buf).unwrap();
    assert_eq!(buf, [0x02, b'h', b'i']);
    Message::Quit("".into()).encode_into(&mut buf).unwrap();
    assert_eq!(buf, [0x03]);
}

#[test]
fn largest_body_fits_and_one_more_byte_is_refused() {
    let mut buf = Vec::new();
    let max = "x".repeat(MAX_BODY);
    Message::Text(max.as_str().into())
        .encode_into(&mut buf)
        .unwrap();
    assert_eq!(buf.len(), MAX_PLAINTEXT);
    let over = "x".repeat(MAX_BODY + 1);
    assert_eq!(
        Message::Text(over.as_str().into()).encode_into(&mut buf),
        Err(MessageError::TooLong { len: MAX_BODY + 1 })
    );
    let mut wire = vec![kind::TEXT];
    wire.extend_from_slice(over.as_bytes());
    assert_eq!(
        Message::decode(&wire),
        Err(MessageError::TooLong { len: MAX_BODY + 1 })
    );
}

#[test]
fn empty_plaintext_is_an_error() {
    assert_eq!(Message::decode(&[]), Err(MessageError::Empty));
}

#[test]
fn unknown_types_below_0x80_are_errors_above_are_ignored() {
    assert_eq!(
        Message::decode(&[kind::REKEY, 0]),
        Err(MessageError::UnexpectedBody("REKEY"))
    );
    assert_eq!(
        Message::decode(&[kind::RELAY, 1, 2, 3]),
        Err(MessageError::Truncated("RELAY"))
    );
    let mut bad = vec![kind::RELAY];
    bad.extend_from_slice(&[0; ORIGIN_LEN]);
    bad.push(0xff);
    assert_eq!(
        Message::decode(&bad),
        Err(MessageError::InvalidUtf8("RELAY"))
    );
    for k in [0x00, 0x18, 0x20, 0x7f] {
        assert_eq!(Message::decode(&[k, 1]), Err(MessageError::UnknownType(k)));
    }
    assert_eq!(
        Message::decode(&[0x80, 7]),
        Ok(Message::Extension {
            kind: 0x80,
            body: vec![7].into()
        })
    );
}

#[test]
fn invalid_utf8_in_text_bodies_is_an_error() {
    for k in [kind::WELCOME, kind::TEXT, kind::QUIT] {
        assert!(matches!(
            Message::decode(&[k, 0xff, 0xfe]),
            Err(MessageError::InvalidUtf8(_))
        ));
    }
    // Binary bodies are fine where the protocol allows them.
    assert!(Message::decode(&[kind::PING, 0xff]).is_ok());
}

#[test]
fn debug_never_shows_the_body() {
    let shown = format!("{:?}", Message::Text("secret plans".into()));
    assert!(!shown.contains("secret"), "{shown}");
    assert!(shown.contains("TEXT"));
}

#[test]
fn into_owned_keeps_content() {
    let buf = [kind::TEXT, b'o', b'k'];
    let owned: Message<'static> = Message::decode(&buf).unwrap().into_owned();
    assert_eq!(owned, Message::Text("ok".into()));
}

#[test]
fn receipts_match_the_vectors_and_odd_bodies_are_refused() {
    // PROTOCOL.md §4.10.
    assert_eq!(encoded(&Message::Receipts), [0x82]);
    assert_eq!(encoded(&Message::Ack(3)), [0x13, 0, 0, 0, 0, 0, 0, 0, 3]);
    assert_eq!(Message::decode(&[0x82]), Ok(Message::Receipts));
    assert_eq!(
        Message::decode(&[0x13, 0, 0, 0, 0, 0, 0, 1, 0]),
        Ok(Message::Ack(256))
    );
    for bad in [&[0x13, 0][..], &[0x13; 10][..], &[0x13][..], &[0x82, 0][..]] {
        assert!(
            matches!(Message::decode(bad), Err(MessageError::UnexpectedBody(_))),
            "{bad:02x?}"
        );
    }
    assert!(!Message::Ack(1).is_counted() && !Message::Receipts.is_counted());
    for counted in [
        Message::Text("t".into()),
        Message::Nick("n".into()),
        Message::Private("p".into()),
    ] {
        assert!(counted.is_counted());
    }
}

#[test]
fn resume_messages_match_the_vectors_and_odd_bodies_are_refused() {
    // PROTOCOL.md §4.11.
    assert_eq!(encoded(&Message::Resumable), [0x83]);
    assert_eq!(
        encoded(&Message::Resumed(2)),
        [0x15, 0, 0, 0, 0, 0, 0, 0, 2]
    );
    let token = [0x45; TOKEN_LEN];
    let resume = Message::Resume {
        token: zeroize::Zeroizing::new(token),
        shown: 1,
    };
    let mut expected = vec![0x14];
    expected.extend_from_slice(&token);
    expected.extend_from_slice(&[0, 0, 0, 0, 0, 0, 0, 1]);
    assert_eq!(encoded(&resume), expected);
    round_trip(resume);
    round_trip(Message::Resumed(u64::MAX));
    let mut short = expected.clone();
    short.pop();
    let mut long = expected.clone();
    long.push(0);
    for bad in [&short[..], &long[..], &[0x15; 8][..], &[0x83, 0][..]] {
        assert!(
            matches!(Message::decode(bad), Err(MessageError::UnexpectedBody(_))),
            "{bad:02x?}"
        );
    }
    // The token never shows in Debug output.
    let shown = format!("{:?}", Message::decode(&expected).unwrap());
    assert!(!shown.contains("45"), "{shown}");
}
