//! Rooms end to end (PROTOCOL.md §4.14), through the real binary: members talk over pairwise
//! sessions that the host passes on and cannot read. A relay-only host holds none of what
//! they say (its memory is searched for it); a participating host reads the room but not a
//! member's `/msg` to another; a member whose schat is older still talks through the host,
//! labelled so.

mod common;

use common::{Home, Proc, event_where, memory_holds, next_message, within};

/// Three members (with `--json`) and a host: each member in, every pair's session up.
async fn room_of_three(host_args: &[&str]) -> (Home, Proc, u16, Vec<(Home, Proc)>) {
    common::room_of(host_args, &[&[], &[], &[]]).await
}

#[tokio::test]
async fn three_members_talk_through_a_relay_only_host_that_holds_none_of_it() {
    within(async {
        let (_host, mut room, _, mut members) = room_of_three(&["--relay-only"]).await;
        let marker = "ultraviolet-marmalade-4417";
        members[0].1.send(&format!("{marker} from the first")).await;
        let first = members[0].0.fingerprint();
        for (_, p) in &mut members[1..] {
            let m = next_message(p).await;
            assert_eq!(m["text"], format!("{marker} from the first"));
            assert_eq!(m["from"]["fingerprint"], first, "{m}");
            // End to end: no "via" — the host could not have written it.
            assert!(m.get("via").is_none(), "{m}");
        }
        // The second answers the third alone.
        let third = members[2].0.fingerprint();
        members[1]
            .1
            .send(&format!("/msg {} {marker} just for you", &third[..12]))
            .await;
        let m = next_message(&mut members[2].1).await;
        assert_eq!(m["private"], true, "{m}");
        assert_eq!(m["from"]["fingerprint"], members[1].0.fingerprint());

        // The host showed nothing, and holds nothing: not a byte of it is in its memory.
        match memory_holds(room.pid(), marker.as_bytes()) {
            Some(held) => assert!(!held, "the relay-only host's memory holds the text"),
            None => eprintln!("cannot read the host's memory here (not root): scan skipped"),
        }
        // It says nothing either.
        room.send("can anyone hear me").await;
        room.stderr_until("takes no part").await;
        for (_, p) in &mut members {
            p.send("quit").await;
            assert!(p.exit().await.success(), "{}", p.stderr_text());
        }
        room.signal("INT");
        room.exit().await;
        assert!(
            !room.stdout_seen.iter().any(|l| l.contains(marker)),
            "{:#?}",
            room.stdout_seen
        );
    })
    .await
}

#[tokio::test]
async fn a_participating_host_reads_the_room_but_not_a_msg_between_members() {
    within(async {
        let (_host, mut room, _, mut members) = room_of_three(&[]).await;
        members[0].1.send("for everyone").await;
        let at_host = next_message(&mut room).await;
        assert_eq!(at_host["text"], "for everyone");
        for (_, p) in &mut members[1..] {
            let m = next_message(p).await;
            assert_eq!(m["text"], "for everyone");
            assert!(m.get("via").is_none(), "{m}");
        }
        let secret = "periwinkle-obelisk-9023";
        let third = members[2].0.fingerprint();
        members[0]
            .1
            .send(&format!("/msg {} {secret}", &third[..12]))
            .await;
        let m = next_message(&mut members[2].1).await;
        assert_eq!(m["text"], secret);
        // The same scan finds what the host did read (so a miss means something).
        match (
            memory_holds(room.pid(), b"for everyone"),
            memory_holds(room.pid(), secret.as_bytes()),
        ) {
            (Some(room_text), Some(private)) => {
                assert!(room_text, "the scan does not find what the host read");
                assert!(!private, "the host's memory holds a member-to-member /msg");
            }
            _ => eprintln!("cannot read the host's memory here (not root): scan skipped"),
        }
        for (_, p) in &mut members {
            p.send("quit").await;
            assert!(p.exit().await.success(), "{}", p.stderr_text());
        }
        room.signal("INT");
        room.exit().await;
        assert!(!room.stdout_seen.iter().any(|l| l.contains(secret)));
    })
    .await
}

/// What a hostile host does to the sealed messages from the first member to the second, in
/// order: the n-th SEALED gets the n-th treatment (then they pass).
#[derive(Clone, Copy, Debug, PartialEq)]
enum Meddle {
    Pass,
    /// One byte of the ciphertext flipped.
    Alter,
    Drop,
    /// Passed, then passed again.
    Replay,
    /// Held back, and passed after the next one.
    Reorder,
    /// Replaced by one the host makes up, in the first member's name.
    Forge,
}

/// A host written here from schat's own pieces: it admits two members, introduces them, and
/// passes their PEER messages on — but meddles with the first member's sealed ones per `plan`.
/// Returns its port; the task runs until both members are gone.
async fn hostile_host(plan: Vec<Meddle>) -> u16 {
    use schat::framed::{FrameReader, FrameWriter};
    use schat::message::notice::{Entry, Event, Notice};
    use schat::message::peer::PeerOp;
    use schat::message::{Message, Mode, PeerMessage};
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let host = schat::keys::Identity::generate().unwrap();
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel::<(usize, Message<'static>)>();
        let mut sends = Vec::new();
        let mut keys: Vec<[u8; 32]> = Vec::new();
        for index in 0..2 {
            let (stream, _) = listener.accept().await.unwrap();
            let (r, w) = stream.into_split();
            let est = schat::handshake::respond(&host, FrameReader::new(r), FrameWriter::new(w))
                .await
                .unwrap();
            let (mut recv, mut send) = (est.recv, est.send);
            keys.push(*est.peer.as_bytes());
            send.send(&Message::Pairs(0)).await.unwrap();
            send.send(&Message::hello(Mode::Chat, "host"))
                .await
                .unwrap();
            // Its HELLO, then it is in.
            loop {
                let msg = recv.recv().await.unwrap().unwrap().into_owned();
                if matches!(msg, Message::Hello { .. }) {
                    break;
                }
            }
            send.send(&Message::Welcome("in".into())).await.unwrap();
            let others: Vec<Entry> = keys[..index]
                .iter()
                .map(|k| Entry {
                    key: *k,
                    name: "".into(),
                })
                .collect();
            let roster = Notice {
                event: Event::Roster(others),
                text: "roster".into(),
            };
            send.send(&Message::Notice(roster)).await.unwrap();
            if index == 1 {
                let joined = Notice {
                    event: Event::Join(Entry {
                        key: keys[1],
                        name: "".into(),
                    }),
                    text: "joined".into(),
                };
                let first: &mut schat::transport::SendHalf<_> = &mut sends[0];
                first.send(&Message::Notice(joined)).await.unwrap();
            }
            sends.push(send);
            let tx = tx.clone();
            tokio::spawn(async move {
                while let Ok(Some(msg)) = recv.recv().await {
                    if tx.send((index, msg.into_owned())).is_err() {
                        return;
                    }
                }
                let _ = tx.send((index, Message::Quit("".into())));
            });
        }
        drop(tx);
        let mut plan = plan.into_iter();
        let mut held: Option<PeerMessage<'static>> = None;
        let mut gone = 0;
        while let Some((from, msg)) = rx.recv().await {
            let peer = match msg {
                Message::Peer(peer) => peer,
                Message::Quit(_) => {
                    gone += 1;
                    if gone == 2 {
                        return;
                    }
                    continue;
                }
                _ => continue,
            };
            let to = 1 - from;
            let out = peer.readdressed(keys[from]);
            let sealed = matches!(out.op, PeerOp::Sealed { .. });
            let late = match sealed && from == 0 {
                true => held.take(),
                false => None,
            };
            let mut deliver = Vec::new();
            match (from, sealed) {
                (0, true) => match plan.next().unwrap_or(Meddle::Pass) {
                    Meddle::Pass => deliver.push(out),
                    Meddle::Alter => {
                        let mut out = out;
                        if let PeerOp::Sealed { ciphertext, .. } = &mut out.op {
                            ciphertext.to_mut()[0] ^= 0x20;
                        }
                        deliver.push(out);
                    }
                    Meddle::Drop => {}
                    Meddle::Replay => {
                        deliver.push(out.clone());
                        deliver.push(out);
                    }
                    Meddle::Reorder => held = Some(out),
                    Meddle::Forge => {
                        let PeerOp::Sealed { counter, .. } = out.op else {
                            unreachable!()
                        };
                        let mut made_up = b"\x02I am the first member".to_vec();
                        made_up.extend_from_slice(&[0u8; 16]);
                        deliver.push(PeerMessage {
                            key: keys[0],
                            op: PeerOp::Sealed {
                                counter,
                                ciphertext: made_up.into(),
                            },
                        });
                    }
                },
                _ => deliver.push(out),
            }
            // What was held back goes after the next one.
            deliver.extend(late);
            for out in deliver {
                let _ = sends[to].send(&Message::Peer(out)).await;
            }
        }
    });
    port
}

#[tokio::test]
async fn a_hostile_host_cannot_alter_drop_replay_reorder_or_forge_unseen() {
    use Meddle::*;
    within(async {
        // (The first sealed message is the session's FILES, §4.14: let through.)
        let plan = vec![
            Pass, Pass, Alter, Pass, Drop, Pass, Replay, Reorder, Pass, Forge, Pass,
        ];
        let port = hostile_host(plan).await;
        let (alice, bob) = (Home::new(), Home::new());
        let mut a = alice.dial(port, &["--json"]);
        event_where(&mut a, |v| v["event"] == "welcome").await;
        let mut b = bob.dial(port, &["--json"]);
        event_where(&mut b, |v| v["event"] == "welcome").await;
        a.stderr_until("end to end with").await;
        b.stderr_until("end to end with").await;
        for n in 0..10 {
            a.send(&format!("line {n}")).await;
        }
        // Bob shows exactly what Alice wrote and the host left alone, as hers, in order.
        for n in [0, 2, 4, 5, 7, 9] {
            let m = next_message(&mut b).await;
            assert_eq!(m["text"], format!("line {n}"), "{m}");
            assert_eq!(m["from"]["fingerprint"], alice.fingerprint());
            assert!(m.get("via").is_none(), "{m}");
        }
        // And says what the host did: two that did not authenticate (altered, forged), two
        // gone back (replayed, reordered), and gaps for what never came as sent (the altered,
        // the dropped, the held-back and the forged one).
        let _ = tokio::time::timeout(
            std::time::Duration::from_millis(500),
            b.stderr_until("never expected"),
        )
        .await;
        let said = |needle: &str| b.stderr_seen.iter().filter(|l| l.contains(needle)).count();
        assert_eq!(said("did not authenticate"), 2, "{:#?}", b.stderr_seen);
        assert_eq!(
            said("came again or out of order"),
            2,
            "{:#?}",
            b.stderr_seen
        );
        assert_eq!(said("never arrived"), 4, "{:#?}", b.stderr_seen);
        // Nothing else came through as Alice's.
        for p in [&mut a, &mut b] {
            p.close_stdin();
        }
        b.exit().await;
        assert!(
            !b.stdout_seen
                .iter()
                .any(|l| l.contains("I am the first member")),
            "{:#?}",
            b.stdout_seen
        );
        a.exit().await;
    })
    .await
}

/// A member played here with schat's own pieces: handshake, HELLO (after PAIRS when `pairs`).
async fn raw_member(
    port: u16,
    pairs: bool,
    id: schat::keys::Identity,
) -> (
    schat::keys::Identity,
    schat::transport::RecvHalf<tokio::net::tcp::OwnedReadHalf>,
    schat::transport::SendHalf<tokio::net::tcp::OwnedWriteHalf>,
) {
    use schat::framed::{FrameReader, FrameWriter};
    use schat::message::{Message, Mode};
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let (r, w) = stream.into_split();
    let est = schat::handshake::initiate(&id, FrameReader::new(r), FrameWriter::new(w), |_| Ok(()))
        .await
        .unwrap();
    let (recv, mut send) = (est.recv, est.send);
    if pairs {
        send.send(&Message::Pairs(0)).await.unwrap();
    }
    send.send(&Message::hello(Mode::Chat, "")).await.unwrap();
    (id, recv, send)
}

/// The next message from the host of the kind `want` picks, within 10 s.
async fn raw_next(
    recv: &mut schat::transport::RecvHalf<tokio::net::tcp::OwnedReadHalf>,
    want: impl Fn(&schat::message::Message<'_>) -> bool,
) -> schat::message::Message<'static> {
    tokio::time::timeout(std::time::Duration::from_secs(10), async {
        loop {
            let msg = recv.recv().await.unwrap().expect("the host hung up");
            if want(&msg) {
                return msg.into_owned();
            }
        }
    })
    .await
    .expect("no such message in time")
}

#[tokio::test]
async fn an_older_member_still_talks_through_the_host_labelled_so_and_a_relay_only_host_turns_it_away()
 {
    use schat::message::Message;
    within(async {
        let (_host, mut room, port, mut members) = room_of_three(&[]).await;
        let (old, mut old_recv, mut old_send) =
            raw_member(port, false, schat::keys::Identity::generate().unwrap()).await;
        let old_hex = old.public().to_hex();
        // The members try to reach it end to end; the host says it cannot, and they say
        // what that means.
        for (_, p) in &mut members {
            let line = p.stderr_until("no end-to-end session with").await;
            assert!(line.contains(&old_hex[..12]), "{line}");
            assert!(
                line.contains("through the host, which can read it"),
                "{line}"
            );
        }
        // Its line reaches the members as the host's word ("via"), and theirs reach it as
        // RELAY (the host relays to it alone).
        old_send
            .send(&Message::Text("from an older schat".into()))
            .await
            .unwrap();
        for (_, p) in &mut members {
            let m = next_message(p).await;
            assert_eq!(m["text"], "from an older schat");
            assert_eq!(m["from"]["fingerprint"], old_hex);
            assert!(m.get("via").is_some(), "{m}");
        }
        members[0].1.send("to everyone").await;
        let relay = raw_next(&mut old_recv, |m| matches!(m, Message::Relay { .. })).await;
        let Message::Relay { origin, text } = relay else {
            unreachable!()
        };
        assert_eq!(text, "to everyone");
        assert_eq!(hex::encode(origin), members[0].0.fingerprint());
        // The other members got it once, end to end (not also relayed).
        for (_, p) in &mut members[1..] {
            let m = next_message(p).await;
            assert_eq!(m["text"], "to everyone");
            assert!(m.get("via").is_none(), "{m}");
        }
        assert_eq!(next_message(&mut room).await["text"], "from an older schat");
        for (_, p) in &mut members {
            p.send("quit").await;
            assert!(p.exit().await.success(), "{}", p.stderr_text());
        }
        room.signal("INT");
        room.exit().await;

        // A relay-only host turns it away: nobody could read it.
        let host = Home::new();
        let (mut relay, port) = host.listen(&["--relay-only"]).await;
        let (_, mut recv, _send) =
            raw_member(port, false, schat::keys::Identity::generate().unwrap()).await;
        let quit = raw_next(&mut recv, |m| matches!(m, Message::Quit(_))).await;
        let Message::Quit(why) = quit else {
            unreachable!()
        };
        assert!(
            why.starts_with("refused: this room is end to end only"),
            "{why}"
        );
        relay.stderr_until("cannot talk end to end").await;
        relay.signal("INT");
        relay.exit().await;
    })
    .await
}

#[tokio::test]
async fn a_member_cannot_pass_itself_off_as_another() {
    use schat::message::peer::PeerOp;
    use schat::message::{Message, PeerMessage};
    within(async {
        let (_host, mut room, port, mut members) = room_of_three(&["--relay-only"]).await;
        let a_fingerprint = members[0].0.fingerprint();
        let key = |hex: String| -> [u8; 32] { ::hex::decode(hex).unwrap().try_into().unwrap() };
        let (a_key, b_key) = (key(a_fingerprint.clone()), key(members[1].0.fingerprint()));
        // A key below Bob's: when both start a handshake at once, Mallory's goes on (§4.14).
        let mallory = loop {
            let id = schat::keys::Identity::generate().unwrap();
            if id.public().as_bytes() < &b_key {
                break id;
            }
        };
        let (mallory, mut recv, mut send) = raw_member(port, true, mallory).await;
        // Mallory runs a handshake with Bob as if it were Alice's (her key in the prologue):
        // the host names Mallory as its author, so Bob's side does not match, and fails it.
        let prologue = [&b"schat/2 pair"[..], &a_key, &b_key].concat();
        let (_, msg1) =
            schat::handshake::core::Initiator::start_with(&mallory, &Default::default(), &prologue)
                .unwrap();
        send.send(&Message::Peer(PeerMessage {
            key: b_key,
            op: PeerOp::Handshake {
                step: 1,
                message: msg1.into(),
            },
        }))
        .await
        .unwrap();
        let refused = members[1]
            .1
            .stderr_until_any(|l| l.contains("its handshake failed"))
            .await;
        assert!(
            refused.contains(&mallory.public().to_hex()[..12]),
            "{refused}"
        );
        // A made-up sealed message is not shown either, as Mallory's or anyone's.
        send.send(&Message::Peer(PeerMessage {
            key: b_key,
            op: PeerOp::Sealed {
                counter: 0,
                ciphertext: vec![0x41; 40].into(),
            },
        }))
        .await
        .unwrap();
        members[1].1.stderr_until("is not shown").await;
        // Alice's words still reach Bob as hers.
        members[0].1.send("really alice").await;
        let m = next_message(&mut members[1].1).await;
        assert_eq!(m["text"], "really alice");
        assert_eq!(m["from"]["fingerprint"], a_fingerprint);
        // (The host passed Bob's answers on to Mallory, its author: nothing else.)
        let _ = raw_next(&mut recv, |m| matches!(m, Message::Peer(_))).await;
        // Alice's line never reached Mallory, who never set up a session: she leaves at once
        // all the same (nobody waits on a member that does not answer), and says so (exit 1).
        let started = std::time::Instant::now();
        members[0].1.send("quit").await;
        assert_eq!(members[0].1.exit().await.code(), Some(1));
        assert!(started.elapsed() < std::time::Duration::from_secs(10));
        let text = members[0].1.stderr_text();
        assert!(text.contains("never reached"), "{text}");
        assert!(text.contains(&mallory.public().to_hex()[..12]), "{text}");
        // Bob said nothing, so everything he sent was delivered.
        members[1].1.send("quit").await;
        assert!(
            members[1].1.exit().await.success(),
            "{}",
            members[1].1.stderr_text()
        );
        room.signal("INT");
        room.exit().await;
    })
    .await
}

#[tokio::test]
async fn a_member_taking_a_name_you_gave_another_key_is_called_out_and_gets_no_msg() {
    within(async {
        let host = Home::new();
        let (mut room, port) = host.listen(&[]).await;
        let (alice, carol, impostor) = (Home::new(), Home::new(), Home::new());
        // Alice knows the real carol's key as "carol".
        let added = alice.run(&["peers", "add", &carol.fingerprint(), "carol"]);
        assert!(added.status.success(), "{added:?}");
        let mut a = alice.dial(port, &["--json"]);
        event_where(&mut a, |v| v["event"] == "welcome").await;
        let mut m = impostor.dial(port, &["--json", "--name", "carol"]);
        event_where(&mut m, |v| v["event"] == "welcome").await;
        let alarm = a.stderr_until("calls itself").await;
        assert!(alarm.contains(&carol.fingerprint()[..12]), "{alarm}");
        assert!(alarm.contains(&impostor.fingerprint()[..12]), "{alarm}");
        a.stderr_until("end to end with").await;
        // /msg carol does not reach the look-alike.
        a.send("/msg carol for the real carol").await;
        let refused = a.stderr_until("/msg not sent").await;
        assert!(refused.contains("your name for a key"), "{refused}");
        m.send("quit").await;
        m.exit().await;
        assert!(!m.stdout_seen.iter().any(|l| l.contains("real carol")));
        a.send("quit").await;
        a.exit().await;
        room.signal("INT");
        room.exit().await;
    })
    .await
}

#[tokio::test]
async fn a_line_piped_in_at_once_reaches_the_members_and_one_alone_in_a_relay_only_room_fails() {
    within(async {
        let host = Home::new();
        let (mut room, port) = host.listen(&["--relay-only"]).await;
        let (one, two, alone) = (Home::new(), Home::new(), Home::new());
        // Alone in a room whose host reads nothing: the line reaches nobody, and says so.
        let mut a = alone.dial(port, &[]);
        a.send("to nobody").await;
        a.close_stdin();
        assert_eq!(a.exit().await.code(), Some(1), "{}", a.stderr_text());
        assert!(a.stderr_text().contains("nobody else is in the room"));
        // A script's line, typed before it knows who is there, waits for the roster.
        let mut m = one.dial(port, &["--json"]);
        event_where(&mut m, |v| v["event"] == "welcome").await;
        let mut s = two.dial(port, &[]);
        s.send("from a script").await;
        s.close_stdin();
        let got = next_message(&mut m).await;
        assert_eq!(got["text"], "from a script");
        assert_eq!(got["from"]["fingerprint"], two.fingerprint());
        assert!(s.exit().await.success(), "{}", s.stderr_text());
        m.send("quit").await;
        m.exit().await;
        room.signal("INT");
        room.exit().await;
    })
    .await
}
