//! Property tests: the decoders and the handshake responder take arbitrary bytes without
//! panicking, and what they accept round-trips. (The same entry points are fuzzed in fuzz/.)

use proptest::prelude::*;
use schat::error::Error;
use schat::frame;
use schat::framed::{FrameReader, FrameWriter};
use schat::handshake;
use schat::keys::Identity;
use schat::message::{MAX_BODY, Message};
use std::sync::OnceLock;

fn identity() -> &'static Identity {
    static ID: OnceLock<Identity> = OnceLock::new();
    ID.get_or_init(|| Identity::generate().unwrap())
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    #[test]
    fn frame_parse_is_total_and_consistent(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
        match frame::parse(&buf) {
            Some(n) => {
                prop_assert!(frame::HEADER_LEN + n <= buf.len());
                prop_assert_eq!(frame::missing(&buf), 0);
            }
            None => prop_assert!(frame::missing(&buf) > 0),
        }
    }

    #[test]
    fn message_decode_is_total_and_round_trips(buf in proptest::collection::vec(any::<u8>(), 0..300)) {
        if let Ok(msg) = Message::decode(&buf) {
            let mut again = Vec::new();
            msg.encode_into(&mut again).unwrap();
            prop_assert_eq!(again, buf);
        }
    }

    #[test]
    fn text_messages_round_trip(text in ".{0,200}", kind in 1u8..=3) {
        let msg = match kind {
            1 => Message::Welcome(text.as_str().into()),
            2 => Message::Text(text.as_str().into()),
            _ => Message::Quit(text.as_str().into()),
        };
        let mut buf = Vec::new();
        msg.encode_into(&mut buf).unwrap();
        prop_assert_eq!(Message::decode(&buf).unwrap(), msg);
    }

    #[test]
    fn sanitized_text_never_contains_controls(text in any::<String>()) {
        let shown = schat::sanitize::line(&text);
        prop_assert!(!shown.chars().any(|c| c.is_control() && c != '\t'));
        let block = schat::sanitize::block(&text);
        prop_assert!(!block.chars().any(|c| c.is_control() && c != '\t' && c != '\n'));
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    /// Frames survive being cut into arbitrary pieces on the way.
    #[test]
    fn frames_survive_any_chunking(
        bodies in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..3000), 1..8),
        cuts in proptest::collection::vec(1usize..700, 1..50),
    ) {
        let mut wire = Vec::new();
        for b in &bodies {
            wire.extend_from_slice(&frame::header(b.len()).unwrap());
            wire.extend_from_slice(b);
        }
        let got = runtime().block_on(async move {
            let (mut tx, rx) = tokio::io::duplex(64);
            let writer = tokio::spawn(async move {
                use tokio::io::AsyncWriteExt;
                let mut rest = &wire[..];
                let mut i = 0;
                while !rest.is_empty() {
                    let n = cuts[i % cuts.len()].min(rest.len());
                    tx.write_all(&rest[..n]).await.unwrap();
                    rest = &rest[n..];
                    i += 1;
                }
            });
            let mut reader = FrameReader::new(rx);
            let mut got = Vec::new();
            while let Some(f) = reader.read_frame().await.unwrap() {
                got.push(f.to_vec());
            }
            writer.await.unwrap();
            got
        });
        prop_assert_eq!(got, bodies);
    }
}

/// A genuine dialer's first step (a throwaway key): its state and message 1.
fn genuine_start() -> (handshake::core::Initiator, Vec<u8>) {
    let id = schat::keys::Identity::generate().unwrap();
    handshake::core::Initiator::start(&id, &handshake::core::Randomness::default()).unwrap()
}

/// Feeds `wire` to our responder as everything the dialer ever sends.
fn respond_to(wire: Vec<u8>) -> Result<(), Error> {
    runtime().block_on(async move {
        let reader = FrameReader::new(&wire[..]);
        handshake::respond(identity(), reader, FrameWriter::new(tokio::io::sink()))
            .await
            .map(|_| ())
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(1500))]

    /// Arbitrary bytes never complete a handshake and never panic.
    #[test]
    fn responder_rejects_arbitrary_bytes(wire in proptest::collection::vec(any::<u8>(), 0..400)) {
        prop_assert!(respond_to(wire).is_err());
    }

    /// A well-formed message 1 followed by an arbitrary message 3 is rejected cleanly.
    #[test]
    fn responder_rejects_arbitrary_message_3(msg3 in proptest::collection::vec(any::<u8>(), 0..200)) {
        let (_, msg1) = genuine_start();
        let mut wire = frame::header(msg1.len()).unwrap().to_vec();
        wire.extend_from_slice(&msg1);
        wire.extend_from_slice(&frame::header(msg3.len()).unwrap());
        wire.extend_from_slice(&msg3);
        prop_assert!(respond_to(wire).is_err());
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(400))]

    /// After a genuine handshake, arbitrary frames end the session with an error, never a
    /// panic, and nothing is delivered.
    #[test]
    fn established_session_rejects_arbitrary_frames(
        frames in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..200), 1..5)
    ) {
        let outcome = runtime().block_on(async move {
            let (a, b) = tokio::io::duplex(1 << 16);
            let (ar, aw) = tokio::io::split(a);
            let (br, bw) = tokio::io::split(b);
            let listener = tokio::spawn(async move {
                let mut listener =
                    handshake::respond(identity(), FrameReader::new(br), FrameWriter::new(bw))
                        .await
                        .unwrap();
                listener.recv.recv().await.map(|m| m.map(|m| m.into_owned()))
            });
            // A genuine handshake by hand, then the garbage frames.
            let (mut r, mut w) = (FrameReader::new(ar), FrameWriter::new(aw));
            let (state, msg1) = genuine_start();
            w.write_frame(&msg1).await.unwrap();
            let msg2 = r.read_frame().await.unwrap().unwrap().to_vec();
            let (state, _) = state.read_message_2(&msg2).unwrap();
            let (_, msg3) = state.write_message_3().unwrap();
            w.write_frame(&msg3).await.unwrap();
            for f in &frames {
                w.write_frame(f).await.unwrap();
            }
            w.shutdown().await.unwrap();
            listener.await.unwrap()
        });
        prop_assert!(outcome.is_err(), "{:?}", outcome);
    }
}

#[test]
fn max_body_constant_matches_noise_limits() {
    assert_eq!(MAX_BODY + 1 + 16, 65535);
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(4000))]

    /// Any typed line is a command or a message, never a panic; whatever it yields is a part
    /// of the line.
    #[test]
    fn typed_lines_never_panic(
        line in prop_oneof![
            any::<String>(),
            any::<String>().prop_map(|s| format!("/{s}")),
            ("[ \t\u{3000}\u{a0}\u{2028}]{0,3}", any::<String>())
                .prop_map(|(ws, s)| format!("/{ws}{s}")),
        ]
    ) {
        use schat::session::command::{Command, parse};
        let within = |part: &str| line.contains(part);
        match parse(&line) {
            Command::Say(t) | Command::Me(t) | Command::Unknown(t) => prop_assert!(within(t)),
            Command::Verify(Some(t)) | Command::Whois(Some(t)) => prop_assert!(within(t)),
            Command::Msg(name, text) => prop_assert!(within(name) && within(text)),
            _ => {}
        }
    }
}
