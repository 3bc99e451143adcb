//! A listener hosting a room: relays with origins, notices, /msg, 1:1 mode, load, handshake
//! hygiene (deadline and cap), and a member that stops reading.

mod common;

use common::{Home, Proc, event_where, next_message, within};
use std::time::{Duration, Instant};
use tokio::io::AsyncWriteExt;
use tokio::net::TcpStream;

#[tokio::test]
async fn a_host_and_three_members_relay_with_origins_notices_and_msg() {
    within(async {
        let host = Home::new();
        let (alice, bob, carol) = (Home::new(), Home::new(), Home::new());
        let (mut room, port) = host.listen(&["--json"]).await;
        let mut a = alice.dial(port, &["--json"]);
        event_where(&mut a, |v| v["event"] == "welcome").await;
        let mut b = bob.dial(port, &["--json"]);
        event_where(&mut b, |v| v["event"] == "welcome").await;
        // Alice hears that someone joined (after being told who was there: nobody).
        let joined = event_where(&mut a, |v| v["event"] == "joined").await;
        assert_eq!(joined["peer"]["fingerprint"], bob.fingerprint(), "{joined}");
        let mut c = carol.dial(port, &["--json"]);
        event_where(&mut c, |v| v["event"] == "welcome").await;
        // A line goes to the members its author knows are in the room (end to end, it is
        // sealed for each): Alice and Bob learn that Carol joined first.
        for member in [&mut a, &mut b] {
            let joined = event_where(member, |v| v["event"] == "joined").await;
            assert_eq!(
                joined["peer"]["fingerprint"],
                carol.fingerprint(),
                "{joined}"
            );
        }

        // Alice speaks: the host shows it, Bob and Carol get it from her, end to end (not
        // "via" the host: it could not have written it; tests/rooms_e2e.rs has the rest).
        a.send("hello from alice").await;
        let at_host = next_message(&mut room).await;
        assert_eq!(at_host["from"]["fingerprint"], alice.fingerprint());
        assert_eq!(at_host["text"], "hello from alice");
        for member in [&mut b, &mut c] {
            let m = next_message(member).await;
            assert_eq!(m["text"], "hello from alice");
            assert_eq!(m["from"]["fingerprint"], alice.fingerprint());
            assert!(m.get("via").is_none(), "{m}");
        }
        // Bob speaks too; Alice gets it (so she never got her own).
        b.send("bob here").await;
        let m = next_message(&mut a).await;
        assert_eq!(m["text"], "bob here");
        assert_eq!(m["from"]["fingerprint"], bob.fingerprint());
        assert_eq!(next_message(&mut c).await["text"], "bob here");
        assert_eq!(next_message(&mut room).await["text"], "bob here");

        // The host's own words reach all three, directly.
        room.send("host to all").await;
        for member in [&mut a, &mut b, &mut c] {
            let m = next_message(member).await;
            assert_eq!(m["text"], "host to all");
            assert_eq!(m["from"]["fingerprint"], host.fingerprint());
            assert!(m.get("via").is_none());
        }
        // A short fingerprint prefix could be ground by anyone: it names nobody.
        room.send(&format!("/msg {} too short", &carol.fingerprint()[..8]))
            .await;
        room.stderr_until("nobody called").await;
        // /msg reaches only its target (named by the 12 digits its label shows).
        room.send(&format!(
            "/msg {} for carol only",
            &carol.fingerprint()[..12]
        ))
        .await;
        let sent = room.stderr_until_any(|l| l.contains("(to ")).await;
        assert!(sent.contains(&carol.fingerprint()[..12]), "{sent}");
        room.send("after the secret").await;
        let private = next_message(&mut c).await;
        assert_eq!(private["text"], "for carol only");
        assert_eq!(private["private"], true, "{private}");
        assert_eq!(next_message(&mut c).await["text"], "after the secret");
        assert_eq!(next_message(&mut a).await["text"], "after the secret");
        assert_eq!(next_message(&mut b).await["text"], "after the secret");

        // Carol leaves: the others are told, the room goes on.
        c.send("quit").await;
        assert!(c.exit().await.success());
        for member in [&mut a, &mut b] {
            let n = event_where(member, |v| v["event"] == "left").await;
            assert_eq!(n["peer"]["fingerprint"], carol.fingerprint(), "{n}");
            assert_eq!(n["reason"], "quit", "{n}");
        }
        a.send("still here").await;
        assert_eq!(next_message(&mut b).await["text"], "still here");

        // The host's quit ends the room for everyone, cleanly.
        room.send("quit").await;
        assert!(room.exit().await.success());
        assert!(a.exit().await.success());
        assert!(b.exit().await.success());
        assert!(a.stderr_text().contains("left"));
    })
    .await
}

#[tokio::test]
async fn max_peers_one_is_a_one_to_one_chat() {
    within(async {
        let (host, alice, bob) = (Home::new(), Home::new(), Home::new());
        let (mut room, port) = host.listen(&["--max-peers", "1"]).await;
        let mut a = alice.dial(port, &[]);
        a.stderr_until("welcome").await;
        let mut b = bob.dial(port, &[]);
        assert_eq!(b.exit().await.code(), Some(4));
        assert!(
            b.stderr_text().contains("room is full"),
            "{}",
            b.stderr_text()
        );
        room.stderr_until("the room is full").await;
        a.send("still alone with you").await;
        assert_eq!(room.said().await, "still alone with you");
        a.send("quit").await;
        assert!(a.exit().await.success());
        room.signal("INT");
        assert!(room.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn fifty_members_twenty_messages_each_all_delivered_once() {
    within(async {
        let report = common::load::run(&common::bin(), 50, 20, common::load::Leave::Politely).await;
        eprintln!("{report:#?}");
        assert_eq!(report.delivered_to_host, 1000);
        assert_eq!(report.duplicates, 0);
        assert!(report.host_peak_rss_kib > 0);
    })
    .await
}

#[tokio::test]
async fn silent_sockets_hit_the_deadline_while_a_real_peer_gets_in_at_once() {
    within(async {
        let (host, alice) = (Home::new(), Home::new());
        let (mut room, port) = host
            .listen(&["--timeout", "2", "--max-handshakes", "200"])
            .await;
        // From another address than the real peer: one address cannot hold more than its
        // share of handshakes (that case is tests/hostile.rs's).
        let mut silent = Vec::new();
        for _ in 0..100 {
            let mut s = common::connect_from([127, 0, 0, 2].into(), port).await;
            let _ = s.write_all(&[0]).await;
            silent.push(s);
        }
        let started = Instant::now();
        let mut a = alice.dial(port, &[]);
        a.stderr_until("welcome").await;
        let took = started.elapsed();
        assert!(took < Duration::from_secs(1), "a real peer waited {took:?}");
        // Every silent socket is closed by the deadline.
        let closes = silent.into_iter().map(|mut s| async move {
            let mut buf = [0u8; 8];
            tokio::time::timeout(
                Duration::from_secs(6),
                tokio::io::AsyncReadExt::read(&mut s, &mut buf),
            )
            .await
        });
        for closed in futures_join_all(closes).await {
            assert!(matches!(closed, Ok(Ok(0)) | Ok(Err(_))), "{closed:?}");
        }
        // The few that held a slot timed out; the rest were refused at once; all of it is
        // one summary line for the address, not a hundred.
        room.stderr_until("connections from 127.0.0.2: ").await;
        let timeouts = room
            .stderr_seen
            .iter()
            .filter(|l| l.contains("timed out"))
            .count();
        assert!(timeouts <= 1, "{:#?}", room.stderr_seen);
        a.send("quit").await;
        assert!(a.exit().await.success());
        room.signal("INT");
        room.exit().await;
    })
    .await
}

#[tokio::test]
async fn connections_above_the_handshake_cap_are_refused_and_members_do_not_notice() {
    within(async {
        let (host, alice, bob) = (Home::new(), Home::new(), Home::new());
        let (mut room, port) = host
            .listen(&["--timeout", "3", "--max-handshakes", "10"])
            .await;
        let mut a = alice.dial(port, &[]);
        a.stderr_until("welcome").await;
        let mut b = bob.dial(port, &[]);
        b.stderr_until("welcome").await;
        let mut flood = Vec::new();
        for _ in 0..210 {
            flood.push(TcpStream::connect(("127.0.0.1", port)).await.unwrap());
        }
        // One address over its cap: refused, and summarised in one line, not 200.
        let summary = room.stderr_until("connections from 127.0.0.1:").await;
        assert!(summary.contains("refused, evicted or failed"), "{summary}");
        // Established members chat on as if nothing happened.
        a.send("through the flood").await;
        // Plain mode shows a member's line as `AUTHOR: text` (end to end, so not "via" the
        // host); Bob does not know Alice.
        let expected = format!(
            "unverified {}: through the flood",
            &alice.fingerprint()[..12]
        );
        assert_eq!(b.stdout_line().await, expected);
        drop(flood);
        for p in [&mut a, &mut b] {
            p.send("quit").await;
            assert!(p.exit().await.success());
        }
        room.signal("INT");
        room.exit().await;
    })
    .await
}

#[tokio::test]
async fn a_member_that_stops_reading_is_disconnected_and_the_others_see_everything() {
    within(async {
        let (host, alice) = (Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        let mut a = alice.dial(port, &[]);
        a.stderr_until("welcome").await;
        // A member that completes the handshake and then never reads a byte.
        let stream = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
        let (r, w) = stream.into_split();
        let stuck_id = schat::keys::Identity::generate().unwrap();
        let mut stuck = schat::handshake::initiate(
            &stuck_id,
            schat::framed::FrameReader::new(r),
            schat::framed::FrameWriter::new(w),
            |_| Ok(()),
        )
        .await
        .unwrap();
        stuck
            .send
            .send(&schat::message::Message::hello(
                schat::message::Mode::Chat,
                "",
            ))
            .await
            .unwrap();
        room.stderr_until("joined (2 in the room)").await;
        // The host talks a lot: 200 lines of 60 KB (12 MB), far beyond socket buffers and the
        // stuck member's 1 MiB queue. The host's input never waits for the stuck member: once
        // its queue is full it is dropped, and Alice, who reads, gets every line.
        let line = "x".repeat(60_000);
        for _ in 0..20 {
            for _ in 0..10 {
                room.send(&line).await;
            }
            for _ in 0..10 {
                assert_eq!(a.said().await.len(), 60_000);
            }
        }
        let warning = room.stderr_until("not keeping up").await;
        assert!(
            warning.contains(&stuck_id.public().to_hex()[..12]),
            "{warning}"
        );
        a.stderr_until("left (timeout: it went silent, or stopped reading)")
            .await;
        a.send("quit").await;
        assert!(a.exit().await.success());
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// Awaits all futures (a tiny join_all).
async fn futures_join_all<F: std::future::Future>(
    futures: impl IntoIterator<Item = F>,
) -> Vec<F::Output> {
    let handles: Vec<_> = futures.into_iter().map(Box::pin).collect();
    let mut out = Vec::new();
    for h in handles {
        out.push(h.await);
    }
    out
}

/// Members joining and leaving in a burst cost the others a few notices and one summary, not
/// two notices each.
#[tokio::test]
async fn churn_is_summarised_not_announced_one_by_one() {
    within(async {
        let (host, watcher) = (Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        let mut w = watcher.dial(port, &["--json"]);
        event_where(&mut w, |v| v["event"] == "welcome").await;
        let homes: Vec<Home> = (0..10).map(|_| Home::new()).collect();
        let mut churners: Vec<Proc> = homes.iter().map(|h| h.dial(port, &[])).collect();
        for c in &mut churners {
            c.close_stdin(); // end of input: join, then leave at once
        }
        for c in &mut churners {
            c.exit().await;
        }
        let mut notices = Vec::new();
        let summary = loop {
            let v = event_where(&mut w, |v| {
                ["notice", "joined", "left"].contains(&v["event"].as_str().unwrap())
            })
            .await;
            let text = v["text"].as_str().unwrap_or_default().to_string();
            if v["event"] == "notice" && text.contains("in the last 5 s") {
                break text;
            }
            notices.push(v);
        };
        assert!(notices.len() <= 4, "{notices:#?}");
        assert!(summary.contains("joined and"), "{summary}");
        w.close_stdin();
        w.exit().await;
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// Members that send, QUIT and close their socket at once (unread data and all) lose nothing:
/// the host shows every message, and nobody is called slow for having left. Five rounds.
#[tokio::test]
async fn members_leaving_at_once_lose_no_message() {
    within(async {
        for round in 1..=5 {
            let report =
                common::load::run(&common::bin(), 20, 20, common::load::Leave::AtOnce).await;
            eprintln!(
                "round {round}: {}/{} delivered, {} called slow",
                report.delivered_to_host, report.messages_sent, report.called_slow
            );
            assert_eq!(report.delivered_to_host, report.messages_sent);
            assert_eq!(report.duplicates, 0);
            assert_eq!(report.called_slow, 0);
        }
    })
    .await
}

/// A newcomer is told who is already there, and a member's /who asks the host.
#[tokio::test]
async fn members_see_who_is_there() {
    within(async {
        let (host, alice, bob) = (Home::new(), Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        let mut a = alice.dial(port, &["--json"]);
        let first = event_where(&mut a, |v| v["event"] == "roster").await;
        assert_eq!(first["members"], serde_json::json!([]), "{first}");
        let mut b = bob.dial(port, &["--json"]);
        let roster = event_where(&mut b, |v| v["event"] == "roster").await;
        assert_eq!(
            roster["members"][0]["fingerprint"],
            alice.fingerprint(),
            "{roster}"
        );
        assert_eq!(roster["members"].as_array().unwrap().len(), 1, "{roster}");
        // Alice asks; the answer lists Bob.
        a.send("/who").await;
        let answer = event_where(&mut a, |v| v["event"] == "roster").await;
        assert_eq!(
            answer["members"][0]["fingerprint"],
            bob.fingerprint(),
            "{answer}"
        );
        for p in [&mut a, &mut b] {
            p.send("quit").await;
            p.exit().await;
        }
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// The host names a member in session: stored in known_peers, used at once.
#[tokio::test]
async fn the_host_names_a_member() {
    within(async {
        let (host, alice) = (Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        let mut a = alice.dial(port, &[]);
        a.stderr_until("welcome").await;
        room.send(&format!("/name {} alicia", &alice.fingerprint()[..16]))
            .await;
        room.stderr_until("is now known as \"alicia\"").await;
        let known = std::fs::read_to_string(host.path().join("known_peers")).unwrap();
        assert!(
            known.contains("alicia") && known.contains(&alice.fingerprint()),
            "{known}"
        );
        a.send("it's me").await;
        assert_eq!(room.stdout_line().await, "alicia: it's me");
        a.send("quit").await;
        a.exit().await;
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// Another process holds known_peers' lock (another schat, a slow network-mounted home) while
/// the host names a member: the room goes on meanwhile — members keep talking — and the name
/// is stored once the lock is free (issue 31: the host's loop waited on the lock, and every
/// member froze with it).
#[tokio::test]
async fn a_store_held_locked_by_another_process_never_freezes_the_room() {
    within(async {
        let (host, alice, bob) = (Home::new(), Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        let mut a = alice.dial(port, &[]);
        a.stderr_until("welcome").await;
        let mut b = bob.dial(port, &[]);
        b.stderr_until("welcome").await;
        a.stderr_until("joined").await;
        // Hold the lock as another schat would.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(host.path().join(".known_peers.lock"))
            .unwrap();
        lock.lock().unwrap();
        room.send(&format!("/name {} alicia", &alice.fingerprint()[..16]))
            .await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        for i in 0..3 {
            let started = std::time::Instant::now();
            a.send(&format!("still here {i}")).await;
            let got = b.stdout_line().await;
            assert!(got.ends_with(&format!("still here {i}")), "{got}");
            let took = started.elapsed();
            assert!(took < Duration::from_secs(2), "relayed after {took:?}");
            b.send(&format!("me too {i}")).await;
            assert!(a.stdout_line().await.ends_with(&format!("me too {i}")));
        }
        drop(lock);
        room.stderr_until("is now known as \"alicia\"").await;
        for p in [&mut a, &mut b] {
            p.send("quit").await;
            assert!(p.exit().await.success());
        }
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// Display names: announced with --name and /nick, shown beside the key (never alone), a
/// name another member uses is marked, a rename floods nobody, and programs get them typed.
#[tokio::test]
async fn members_announce_names_shown_beside_their_keys() {
    within(async {
        let (host, alice, bob, mallory) = (Home::new(), Home::new(), Home::new(), Home::new());
        let (mut room, port) = host.listen(&["--name", "Host"]).await;
        let mut a = alice.dial(port, &["--json", "--name", "Alice"]);
        let roster = event_where(&mut a, |v| v["event"] == "roster").await;
        // The host's own name came in its HELLO.
        assert_eq!(roster["via"]["name"], "Host", "{roster}");
        let line = room.stderr_until("joined (1").await;
        let short = |fp: String| fp[..12].to_string();
        assert!(
            line.contains(&format!("Alice [{}]", short(alice.fingerprint()))),
            "{line}"
        );
        let mut b = bob.dial(port, &["--name", "bob"]);
        let joined = event_where(&mut a, |v| v["event"] == "joined").await;
        assert_eq!(joined["peer"]["name"], "bob", "{joined}");
        assert_eq!(joined["peer"]["fingerprint"], bob.fingerprint());

        // A member's line names its author by name and key, in plain mode too.
        a.send("hi from alice").await;
        let relayed = b.stdout_line().await;
        assert!(
            relayed.starts_with(&format!("Alice [{}]: ", short(alice.fingerprint()))),
            "{relayed}"
        );

        // /nick renames: everyone is told, the renamed member too (its confirmation).
        a.send("/nick Alicia").await;
        let renamed = event_where(&mut a, |v| v["event"] == "renamed").await;
        assert_eq!(renamed["peer"]["name"], "Alicia", "{renamed}");
        b.stderr_until(&format!("is now Alicia [{}]", short(alice.fingerprint())))
            .await;
        // A second rename at once is refused, to it alone.
        a.send("/nick Al").await;
        let refused = event_where(&mut a, |v| v["event"] == "name_refused").await;
        assert_eq!(refused["name"], "Al", "{refused}");
        assert!(refused["text"].as_str().unwrap().contains("10 seconds"));

        // Someone else calling itself bob is marked where it is shown.
        let mut m = mallory.dial(port, &["--name", "Bob"]);
        let line = room.stderr_until("joined (3").await;
        assert!(
            line.contains(&format!("Bob? [{}]", short(mallory.fingerprint()))),
            "{line}"
        );
        b.stderr_until(&format!("Bob? [{}] joined", short(mallory.fingerprint())))
            .await;

        // Names that could pass for our own labels are refused before anything is sent.
        // So are names that read as a fingerprint: grouped hex as schat prints keys, or hex
        // spelt with Cyrillic letters (issue 24).
        for name in [
            "bob: hi",
            "dce8 74be 7d1f afd5 f17a d4cc",
            "3\u{435}2\u{430}9\u{441}1\u{430}4\u{501}5\u{435}",
        ] {
            let bad = alice.run(&["dial", &format!("127.0.0.1:{port}"), "--name", name]);
            assert_eq!(bad.status.code(), Some(2), "{name}: {bad:?}");
            assert!(String::from_utf8_lossy(&bad.stderr).contains("--name"));
        }

        for p in [&mut a, &mut b, &mut m] {
            p.send("quit").await;
            p.exit().await;
        }
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// A name is only a claim: a member calling itself like someone the host has a petname for
/// can neither capture the host's `/msg` nor pass unmarked.
#[tokio::test]
async fn an_announced_name_cannot_capture_a_message_meant_for_a_petname() {
    within(async {
        let (host, bob, mallory) = (Home::new(), Home::new(), Home::new());
        let added = host.run(&["peers", "add", &bob.fingerprint(), "bob"]);
        assert!(added.status.success(), "{added:?}");
        let (mut room, port) = host.listen(&[]).await;
        let mut b = bob.dial(port, &[]);
        room.stderr_until("joined (1").await;
        let mut m = mallory.dial(port, &["--name", "bob"]);
        let line = room.stderr_until("joined (2").await;
        assert!(line.contains("bob? ["), "not marked: {line}");
        room.send("/msg bob for bob only").await;
        let got = b.stdout_line().await;
        assert!(got.ends_with("(private): for bob only"), "{got}");
        room.send("everyone").await;
        let seen = m.stdout_line().await;
        assert!(seen.ends_with(": everyone"), "mallory got {seen:?} first");
        for p in [&mut b, &mut m] {
            p.send("quit").await;
            p.exit().await;
        }
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// `/msg` takes what the screen shows (issue 26: `/who` listed `Bob? [0f87acac33f8]`, and
/// `/msg Bob` and `/msg 0f87acac33f8` both answered "nobody called … is in the room"): the
/// display name when it names one member, the label whole, the 12 digits in brackets; a name
/// two members use is refused with both listed.
#[tokio::test]
async fn msg_reaches_whom_who_shows_and_ambiguity_is_listed() {
    within(async {
        let (host, bob, eve1, eve2) = (Home::new(), Home::new(), Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        let mut b = bob.dial(port, &["--name", "Bob"]);
        room.stderr_until("joined (1").await;
        let short = bob.fingerprint()[..12].to_string();
        for (target, text) in [
            ("Bob".to_string(), "by name"),
            (short.clone(), "by digits"),
            (format!("Bob [{short}]"), "by label"),
        ] {
            room.send(&format!("/msg {target} {text}")).await;
            let got = b.stdout_line().await;
            assert!(
                got.ends_with(&format!("(private): {text}")),
                "{target}: {got}"
            );
        }
        let mut e1 = eve1.dial(port, &["--name", "Eve"]);
        room.stderr_until("joined (2").await;
        let mut e2 = eve2.dial(port, &["--name", "Eve"]);
        room.stderr_until("joined (3").await;
        room.send("/msg Eve psst").await;
        let refused = room.stderr_until("several members call themselves").await;
        assert!(
            refused.contains(&eve1.fingerprint()[..12])
                && refused.contains(&eve2.fingerprint()[..12]),
            "{refused}"
        );
        for p in [&mut b, &mut e1, &mut e2] {
            p.send("quit").await;
            p.exit().await;
        }
        room.signal("INT");
        room.exit().await;
    })
    .await
}
