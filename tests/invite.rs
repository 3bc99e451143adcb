//! Invites, end to end with the real binary on 127.0.0.1: a ticket verifies first contact on
//! both sides without a question, is honoured once, and every way it can go wrong (used,
//! expired, revoked, damaged, raced for, answered by an impostor) gets one clear line and a
//! non-zero exit while the listener keeps serving.

mod common;

use common::{Home, Proc, within};
use schat::framed::{FrameReader, FrameWriter};

use std::time::{Duration, Instant};

/// A ticket from `host` for its listener at `port` (extra `invite` options in `extra`).
fn invite(host: &Home, port: u16, extra: &[&str]) -> String {
    let addr = format!("127.0.0.1:{port}");
    let mut args = vec!["invite", "--addr", &addr];
    args.extend_from_slice(extra);
    let out = host.run(&args);
    assert!(out.status.success(), "{out:?}");
    let text = String::from_utf8(out.stdout).unwrap();
    let ticket = text.trim().to_string();
    assert!(ticket.starts_with("schat:"), "{text}");
    ticket
}

/// A listener closed to strangers (the default), plain mode.
async fn closed_listener(host: &Home) -> (Proc, u16) {
    let mut room = host.spawn(&["listen", "127.0.0.1:0"]);
    let line = room.stderr_until("listening on 127.0.0.1:").await;
    let port = line.rsplit(':').next().unwrap().trim().parse().unwrap();
    (room, port)
}

fn known(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("known_peers")).unwrap_or_default()
}

#[tokio::test]
async fn a_ticket_verifies_both_sides_and_is_honoured_once() {
    within(async {
        let (host, guest, stranger) = (Home::new(), Home::new(), Home::new());
        let (mut room, port) = closed_listener(&host).await;
        let ticket = invite(&host, port, &["--name", "guest", "--as", "hosty"]);

        // No --trust flag, no terminal: without the ticket this would be refused both ways.
        let started = Instant::now();
        let mut g = guest.spawn(&["dial", &ticket]);
        g.stderr_until("welcome").await;
        g.send("hello via invite").await;
        assert_eq!(room.said().await, "hello via invite");
        eprintln!(
            "dial TICKET to the first message at the host: {:?}",
            started.elapsed()
        );
        let joined = room.stderr_until("joined").await;
        assert!(joined.contains("verified by invite"), "{joined}");
        assert!(
            !g.stderr_text().contains("trust it?"),
            "a question was asked"
        );
        // Both sides pinned the other, verified by invite, under the chosen names.
        let (on_host, on_guest) = (known(&host), known(&guest));
        assert!(
            on_host.lines().any(|l| l.starts_with("guest ")
                && l.contains(&guest.fingerprint())
                && l.contains(" invite ")),
            "{on_host}"
        );
        assert!(
            on_guest.lines().any(|l| l.starts_with("hosty ")
                && l.contains(&host.fingerprint())
                && l.contains(" invite ")),
            "{on_guest}"
        );
        g.send("quit").await;
        assert!(g.exit().await.success());

        // Used: someone else with the same ticket is refused, with one line on each side.
        let mut s = stranger.spawn(&["dial", &ticket]);
        assert_eq!(s.exit().await.code(), Some(4), "{}", s.stderr_text());
        assert!(
            s.stderr_text().contains("was already used"),
            "{}",
            s.stderr_text()
        );
        let line = room.stderr_until("refused the peer").await;
        assert!(line.contains("was already used"), "{line}");
        assert!(!known(&host).contains(&stranger.fingerprint()));

        // The listener keeps serving: the guest, now known, comes back without a ticket.
        let mut again = guest.spawn(&["dial", "hosty"]);
        again.stderr_until("welcome").await;
        again.send("quit").await;
        assert!(again.exit().await.success());
        room.signal("INT");
        room.exit().await;
    })
    .await
}

#[tokio::test]
async fn expired_revoked_and_damaged_tickets_are_refused_with_a_reason() {
    within(async {
        let (host, guest) = (Home::new(), Home::new());
        let (mut room, port) = closed_listener(&host).await;

        let expired = invite(&host, port, &["--expires", "1s"]);
        tokio::time::sleep(Duration::from_millis(1100)).await;
        let mut d = guest.spawn(&["dial", &expired]);
        assert_eq!(d.exit().await.code(), Some(4), "{}", d.stderr_text());
        assert!(
            d.stderr_text().contains("has expired"),
            "{}",
            d.stderr_text()
        );
        assert!(
            room.stderr_until("refused the peer")
                .await
                .contains("has expired")
        );

        let revoked = invite(&host, port, &[]);
        let id = host.run(&["invite", "--list"]);
        let list = String::from_utf8(id.stdout).unwrap();
        let id = list
            .lines()
            .find(|l| l.contains("pending"))
            .and_then(|l| l.split_whitespace().next())
            .unwrap()
            .to_string();
        assert!(host.run(&["invite", "--revoke", &id]).status.success());
        let mut d = guest.spawn(&["dial", &revoked]);
        assert_eq!(d.exit().await.code(), Some(4), "{}", d.stderr_text());
        assert!(
            d.stderr_text().contains("was revoked"),
            "{}",
            d.stderr_text()
        );
        assert!(
            room.stderr_until("refused the peer")
                .await
                .contains("was revoked")
        );

        // Damaged: refused before anything is dialled (usage error), the listener sees nothing.
        let good = invite(&host, port, &[]);
        let mut damaged = good.clone().into_bytes();
        let at = damaged.len() - 10;
        damaged[at] = if damaged[at] == b'a' { b'b' } else { b'a' };
        let damaged = String::from_utf8(damaged).unwrap();
        let out = guest.run(&["dial", &damaged]);
        assert_eq!(out.status.code(), Some(2), "{out:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("damaged") && !err.contains("connecting"),
            "{err}"
        );

        // After all that, the good one still works.
        let mut g = guest.spawn(&["dial", &good]);
        g.stderr_until("welcome").await;
        g.send("quit").await;
        assert!(g.exit().await.success());
        room.signal("INT");
        room.exit().await;
    })
    .await
}

#[tokio::test]
async fn two_dialers_racing_for_a_one_use_ticket_one_wins() {
    within(async {
        let (host, a, b) = (Home::new(), Home::new(), Home::new());
        let (mut room, port) = closed_listener(&host).await;
        let ticket = invite(&host, port, &[]);
        let (mut pa, mut pb) = (a.spawn(&["dial", &ticket]), b.spawn(&["dial", &ticket]));
        pa.close_stdin();
        pb.close_stdin();
        let (ca, cb) = (pa.exit().await.code(), pb.exit().await.code());
        let mut codes = [ca, cb];
        codes.sort();
        assert_eq!(
            codes,
            [Some(0), Some(4)],
            "{}\n{}",
            pa.stderr_text(),
            pb.stderr_text()
        );
        let loser = if ca == Some(4) { &pa } else { &pb };
        assert!(
            loser.stderr_text().contains("was already used"),
            "{}",
            loser.stderr_text()
        );
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// A man in the middle at the ticket's address (its own key) gets handshake messages 1 and 2
/// and never message 3: the dialer sees a key other than the ticket's and stops (exit 3).
#[tokio::test]
async fn an_impostor_at_the_tickets_address_never_gets_the_dialers_key() {
    within(async {
        let (host, guest) = (Home::new(), Home::new());
        let impostor = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = impostor.local_addr().unwrap().port();
        let ticket = invite(&host, port, &[]);
        let mut dialer = guest.spawn(&["dial", &ticket]);
        let (stream, _) = impostor.accept().await.unwrap();
        let third = common::raw::Raw::impostor(stream).await;
        assert!(
            matches!(third, Ok(Ok(None)) | Ok(Err(_))),
            "the dialer sent message 3 to an impostor: {third:?}"
        );
        assert_eq!(
            dialer.exit().await.code(),
            Some(3),
            "{}",
            dialer.stderr_text()
        );
        assert!(!known(&guest).contains("invite"), "{}", known(&guest));
    })
    .await
}

/// `schat invite --code` on the listener's side; the code line.
fn code(host: &Home, extra: &[&str]) -> String {
    let mut args = vec!["invite", "--code"];
    args.extend_from_slice(extra);
    let out = host.run(&args);
    assert!(out.status.success(), "{out:?}");
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn a_spoken_code_verifies_both_keys() {
    within(async {
        let (host, guest) = (Home::new(), Home::new());
        let (mut room, port) = closed_listener(&host).await;
        let spoken = code(&host, &["--name", "guest"]);
        let addr = format!("127.0.0.1:{port}");
        let mut g = guest.spawn(&["dial", &addr, "--code", &spoken]);
        g.stderr_until("the code matched").await;
        g.stderr_until("welcome").await;
        g.send("hello by code").await;
        assert_eq!(room.said().await, "hello by code");
        assert!(
            room.stderr_until("joined")
                .await
                .contains("verified by invite code")
        );
        assert!(
            known(&host).lines().any(|l| l.starts_with("guest ")
                && l.contains(&guest.fingerprint())
                && l.contains(" code ")),
            "{}",
            known(&host)
        );
        assert!(
            known(&guest)
                .lines()
                .any(|l| l.contains(&host.fingerprint()) && l.contains(" code ")),
            "{}",
            known(&guest)
        );
        g.send("quit").await;
        assert!(g.exit().await.success());
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// A wrong code stops both sides loudly, counts, and the third wrong try burns the code: even
/// the right one is refused after that.
#[tokio::test]
async fn three_wrong_codes_burn_it() {
    within(async {
        let (host, guest) = (Home::new(), Home::new());
        let (mut room, port) = closed_listener(&host).await;
        let spoken = code(&host, &[]);
        let (number, words) = spoken.split_once('-').unwrap();
        // The right number with another code's words: a typo in every word.
        let other = code(&host, &[]);
        let wrong = format!("{number}-{}", other.split_once('-').unwrap().1);
        assert_ne!(wrong, spoken);
        let addr = format!("127.0.0.1:{port}");
        for left in ["2 tries left", "1 try left", "burned"] {
            let mut d = guest.spawn(&["dial", &addr, "--code", &wrong]);
            assert_eq!(d.exit().await.code(), Some(4), "{}", d.stderr_text());
            assert!(
                d.stderr_text().contains("THE CODE DID NOT MATCH"),
                "{}",
                d.stderr_text()
            );
            let line = room.stderr_until("refused the peer").await;
            assert!(line.contains("WRONG CODE") && line.contains(left), "{line}");
        }
        let mut d = guest.spawn(&["dial", &addr, "--code", &format!("{number}-{words}")]);
        assert_eq!(d.exit().await.code(), Some(4));
        assert!(d.stderr_text().contains("burned"), "{}", d.stderr_text());
        assert!(!known(&host).contains(&guest.fingerprint()));
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// A man in the middle that terminates Noise on both sides with its own key and forwards every
/// message: the two sessions have different handshake hashes, so the PAKE cannot agree.
/// Both sides stop, nothing is shown in the room, and three such attempts burn the code.
#[tokio::test]
async fn a_man_in_the_middle_of_a_code_exchange_gets_nothing_and_burns_it() {
    use schat::handshake;
    use schat::keys::Identity;
    within(async {
        let (host, guest) = (Home::new(), Home::new());
        let (mut room, port) = closed_listener(&host).await;
        let spoken = code(&host, &[]);
        let proxy = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let proxy_port = proxy.local_addr().unwrap().port();
        let mitm = Identity::generate().unwrap();
        for attempt in 1..=3 {
            let mut d = guest.spawn(&["dial", &format!("127.0.0.1:{proxy_port}"), "--code", &spoken]);
            let (inbound, _) = proxy.accept().await.unwrap();
            let outbound = tokio::net::TcpStream::connect(("127.0.0.1", port)).await.unwrap();
            let (ir, iw) = inbound.into_split();
            let (or, ow) = outbound.into_split();
            let mut to_dialer =
                handshake::respond(&mitm, FrameReader::new(ir), FrameWriter::new(iw)).await.unwrap();
            let mut to_host = handshake::initiate(&mitm, FrameReader::new(or), FrameWriter::new(ow), |_| Ok(()))
                .await
                .unwrap();
            assert_ne!(to_dialer.handshake_hash, to_host.handshake_hash);
            // Forward both ways until either side hangs up.
            loop {
                tokio::select! {
                    m = to_dialer.recv.recv() => match m {
                        Ok(Some(m)) => { let m = m.into_owned(); if to_host.send.send(&m).await.is_err() { break } }
                        _ => break,
                    },
                    m = to_host.recv.recv() => match m {
                        Ok(Some(m)) => { let m = m.into_owned(); if to_dialer.send.send(&m).await.is_err() { break } }
                        _ => break,
                    },
                }
            }
            drop((to_dialer, to_host));
            assert_eq!(d.exit().await.code(), Some(4), "attempt {attempt}: {}", d.stderr_text());
            assert!(d.stderr_text().contains("THE CODE DID NOT MATCH"), "{}", d.stderr_text());
            assert!(!d.stderr_text().contains("welcome"));
            let line = room.stderr_until("refused the peer").await;
            assert!(line.contains("WRONG CODE"), "{line}");
        }
        assert!(room.stderr_text().contains("burned"), "{}", room.stderr_text());
        assert!(!room.stderr_text().contains("joined"));
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// A listener open to anyone still runs the code exchange for a dialer that brings a code
/// (the dialer wants the listener's key verified); without a pending code it says so.
#[tokio::test]
async fn a_code_works_with_a_listener_open_to_anyone() {
    within(async {
        let (host, guest, other) = (Home::new(), Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await; // --allow anyone
        let spoken = code(&host, &[]);
        let addr = format!("127.0.0.1:{port}");
        let mut g = guest.spawn(&["dial", &addr, "--code", &spoken]);
        g.stderr_until("the code matched").await;
        g.send("quit").await;
        assert!(g.exit().await.success(), "{}", g.stderr_text());
        // The code is spent, nothing else pending: the listener admits by key and the dialer
        // refuses to go on unverified.
        let mut o = other.spawn(&["dial", &addr, "--code", &spoken]);
        assert_eq!(o.exit().await.code(), Some(3), "{}", o.stderr_text());
        assert!(
            o.stderr_text()
                .contains("without running the code exchange")
        );
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// Invites open a listener that admits known peers; one restricted to a key (`--peer`) stays
/// restricted. And redeeming never downgrades how a known peer was verified.
#[tokio::test]
async fn a_pinned_listener_refuses_invites_and_verification_is_never_downgraded() {
    within(async {
        let (host, guest, friend) = (Home::new(), Home::new(), Home::new());
        let mut room = host.spawn(&["listen", "127.0.0.1:0", "--peer", &friend.fingerprint()]);
        let line = room.stderr_until("listening on 127.0.0.1:").await;
        let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        let ticket = invite(&host, port, &[]);
        let mut g = guest.spawn(&["dial", &ticket]);
        assert_eq!(g.exit().await.code(), Some(4), "{}", g.stderr_text());
        room.stderr_until("refused the peer").await;
        let spoken = code(&host, &[]);
        let mut g = guest.spawn(&["dial", &format!("127.0.0.1:{port}"), "--code", &spoken]);
        assert_eq!(g.exit().await.code(), Some(4), "{}", g.stderr_text());
        room.signal("INT");
        room.exit().await;

        // The guest's fingerprint came from its owner: a ticket does not lower that.
        let added = host.run(&["peers", "add", &guest.fingerprint(), "guest"]);
        assert!(added.status.success());
        let (mut room, port) = closed_listener(&host).await;
        let ticket = invite(&host, port, &[]);
        let mut g = guest.spawn(&["dial", &ticket]);
        g.stderr_until("welcome").await;
        g.send("quit").await;
        assert!(g.exit().await.success());
        let line = known(&host)
            .lines()
            .find(|l| l.starts_with("guest "))
            .unwrap()
            .to_string();
        assert!(line.contains(" fingerprint "), "{line}");
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// Probing cannot tell which nameplates are in use: a wrong code for an open nameplate, for
/// one nobody issued, and for a burned one get the same answer — and the answer does not wait
/// for the invites file (held locked by another process here), so it takes no longer for an
/// open nameplate (issue 24: "burned" was named before any PAKE, and an open nameplate answered
/// only after the file was rewritten and fsynced).
#[tokio::test]
async fn every_wrong_code_gets_the_same_answer_at_once_whatever_the_nameplate() {
    within(async {
        let (host, guest) = (Home::new(), Home::new());
        let (mut room, port) = closed_listener(&host).await;
        let addr = format!("127.0.0.1:{port}");
        let open = code(&host, &[]);
        let burned = code(&host, &[]);
        let other_words = |spoken: &str| {
            let other = code(&host, &[]);
            format!(
                "{}-{}",
                spoken.split_once('-').unwrap().0,
                other.split_once('-').unwrap().1
            )
        };
        let burned_wrong = other_words(&burned);
        for _ in 0..3 {
            let mut d = guest.spawn(&["dial", &addr, "--code", &burned_wrong]);
            assert_eq!(d.exit().await.code(), Some(4), "{}", d.stderr_text());
        }
        let nameplates: Vec<u16> = [&open, &burned]
            .iter()
            .map(|c| c.split_once('-').unwrap().0.parse().unwrap())
            .collect();
        let unknown = (100..1000)
            .find(|n| !nameplates.contains(n) && *n != 999)
            .unwrap();
        let unknown = format!("{unknown}-{}", open.split_once('-').unwrap().1);
        let probes = [other_words(&open), unknown, burned_wrong];
        // Another process holds the invites file's lock for the whole probe.
        let lock = std::fs::OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(host.path().join(".invites.lock"))
            .unwrap();
        lock.lock().unwrap();
        let mut answers = Vec::new();
        for probe in probes {
            let started = std::time::Instant::now();
            let mut d = guest.spawn(&["dial", &addr, "--code", &probe]);
            assert_eq!(
                d.exit().await.code(),
                Some(4),
                "{probe}: {}",
                d.stderr_text()
            );
            let took = started.elapsed();
            assert!(
                took < Duration::from_secs(5),
                "{probe}: answered after {took:?}"
            );
            let number = probe.split_once('-').unwrap().0;
            let answer = d
                .stderr_seen
                .iter()
                .find(|l| l.contains("WRONG CODE"))
                .unwrap_or_else(|| panic!("{probe}: {}", d.stderr_text()))
                .replace(number, "N");
            answers.push(answer);
        }
        assert!(
            answers.iter().all(|a| *a == answers[0]),
            "different answers: {answers:#?}"
        );
        drop(lock);
        // The host's log says which was which.
        room.stderr_until("not known here").await;
        room.stderr_until("2 tries left").await;
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// A hand edit with a typo, or a state word from a newer version, survives the next `invite`
/// (issue 31: rewriting the invites file dropped every line it could not parse).
#[tokio::test]
async fn lines_of_the_invites_file_it_cannot_read_are_kept() {
    within(async {
        let host = Home::new();
        invite(&host, 12345, &[]);
        let file = host.path().join("invites");
        let mut text = std::fs::read_to_string(&file).unwrap();
        let typo = "0badc0de 00ff 1999999999 1 opne bob";
        text.push_str(typo);
        text.push('\n');
        std::fs::write(&file, text).unwrap();
        invite(&host, 12345, &[]);
        let after = std::fs::read_to_string(&file).unwrap();
        assert!(after.contains(typo), "{after}");
        let listed = host.run(&["invite", "--list"]);
        assert!(listed.status.success());
        let said = String::from_utf8_lossy(&listed.stderr);
        assert!(said.contains("not an invite this schat can read"), "{said}");
        assert_eq!(String::from_utf8_lossy(&listed.stdout).lines().count(), 3);
    })
    .await
}

/// A code typed at the terminal is echoed, Tab completes its words, and a typo is asked again
/// instead of ending the command; `invite --code` gives the address with the code (issue 26:
/// typed blind, one typo cost a rerun, and the address was never printed).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_code_is_typed_with_echo_completion_and_a_second_chance() {
    within(async {
        let (host, guest) = (Home::new(), Home::new());
        let (mut room, port) = closed_listener(&host).await;
        let out = host.run(&["invite", "--code", "--json", "--port", &port.to_string()]);
        assert!(out.status.success(), "{out:?}");
        let v: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
        let spoken = v["code"].as_str().unwrap().to_string();
        let addresses = v["addresses"].as_array().unwrap();
        assert!(
            addresses
                .iter()
                .any(|a| a.as_str().unwrap().ends_with(&format!(":{port}"))),
            "{v}"
        );
        let (number, words) = spoken.split_once('-').unwrap();
        let words: Vec<&str> = words.split('-').collect();
        let addr = format!("127.0.0.1:{port}");
        let mut t =
            common::term::Term::spawn(&guest, &["dial", &addr, "--code", "-"], 30, 100, 300);
        tokio::task::block_in_place(|| {
            t.until("the question", |s| common::term::shows(s, "the code"));
            // A typo first: said, and asked again.
            t.type_line(&format!("{number}-nosuchword-{}", words[1..].join("-")));
            t.until("the second chance", |s| {
                common::term::shows(s, "type it again")
            });
            // Then, of each word, the letters that tell it apart in its list, and Tab.
            t.press(&format!("{number}-"));
            for (i, word) in words.iter().enumerate() {
                let list = match i % 2 {
                    0 => &schat::invite::words::EVEN,
                    _ => &schat::invite::words::ODD,
                };
                let mut n = 1;
                while list.iter().filter(|w| w.starts_with(&word[..n])).count() > 1 {
                    n += 1;
                }
                t.press(&word[..n]);
                t.press("\t");
                std::thread::sleep(std::time::Duration::from_millis(50));
            }
            // What is typed is on the screen.
            t.until("the whole code echoed", |s| common::term::shows(s, &spoken));
            t.press("\r");
            t.until("the session", |s| common::term::shows(s, "welcome"));
        });
        room.stderr_until("joined").await;
        t.type_line("/quit");
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0));
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// A pasted ticket is on the screen as it is pasted (issue 26: invisible until Enter).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pasted_ticket_is_echoed() {
    within(async {
        let (host, guest) = (Home::new(), Home::new());
        let (mut room, port) = closed_listener(&host).await;
        let ticket = invite(&host, port, &[]);
        let mut t = common::term::Term::spawn(&guest, &["dial", "-"], 30, 200, 300);
        tokio::task::block_in_place(|| {
            t.until("the question", |s| {
                common::term::shows(s, "paste the ticket")
            });
            t.press(&ticket);
            t.until("the ticket echoed", |s| common::term::shows(s, &ticket));
            t.press("\r");
            t.until("the session", |s| common::term::shows(s, "welcome"));
        });
        room.stderr_until("joined").await;
        t.type_line("/quit");
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0));
        room.signal("INT");
        room.exit().await;
    })
    .await
}
