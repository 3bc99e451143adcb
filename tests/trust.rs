//! Verifying peers, end to end: known_peers, trust policies, key changes, allowlists, safety
//! numbers and `schat peers`, with the real binary on loopback.

mod common;

use common::{Home, within};
use std::os::unix::fs::PermissionsExt;

fn known_peers(home: &Home) -> String {
    std::fs::read_to_string(home.path().join("known_peers")).unwrap_or_default()
}

fn stdout(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn stderr(out: &std::process::Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[tokio::test]
async fn first_contact_is_remembered_and_the_petname_shown_next_time() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&[]).await;

        let mut first = alice.dial(port, &["--trust", "accept-new"]);
        first.stderr_until("remembered as").await;
        first.stderr_until("welcome").await;
        first.send("quit").await;
        assert!(first.exit().await.success());
        let stored = known_peers(&alice);
        assert!(stored.contains(&bob.fingerprint()), "{stored}");
        assert!(stored.contains(&format!("127.0.0.1:{port}")), "{stored}");
        assert!(stored.contains("first-use"), "{stored}");

        // Name it, then dial with the strictest policy: it is known now.
        let default_name = format!("peer-{}", &bob.fingerprint()[..12]);
        assert!(
            alice
                .run(&["peers", "rename", &default_name, "bob"])
                .status
                .success()
        );
        let mut second = alice.dial(port, &["--trust", "strict"]);
        let line = second.stderr_until("peer: ").await;
        assert!(
            line.contains("bob") && line.contains("trusted on first use"),
            "{line}"
        );
        second.send("hello again").await;
        assert_eq!(listener.said().await, "hello again");
        second.send("quit").await;
        assert!(second.exit().await.success());
        // --peer takes the petname too.
        let mut third = alice.dial(port, &["--peer", "bob", "--trust", "strict"]);
        third.stderr_until("welcome").await;
        third.send("quit").await;
        assert!(third.exit().await.success());
        listener.signal("INT");
        listener.exit().await;
    })
    .await
}

#[tokio::test]
async fn a_changed_key_at_a_known_address_aborts_loudly_before_any_message() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let mut dialer = alice.dial(port, &["--trust", "accept-new"]);
        dialer.stderr_until("welcome").await;
        dialer.send("quit").await;
        assert!(dialer.exit().await.success());
        assert!(listener.exit().await.success());
        let old = bob.fingerprint();

        // Bob's key is replaced (or someone sits in the middle): same address, new key.
        assert!(bob.run(&["keygen", "--force"]).status.success());
        let addr = format!("127.0.0.1:{port}");
        let mut listener = bob.spawn(&[
            "listen",
            &addr,
            "--once",
            "--allow",
            "anyone",
            "--welcome",
            "SECRET-WELCOME",
        ]);
        listener.stderr_until("listening on").await;
        let mut dialer = alice.dial(port, &[]);
        dialer.send("MUST-NOT-ARRIVE").await;
        let status = dialer.exit().await;
        assert_eq!(status.code(), Some(3));
        let err = dialer.stderr_text();
        assert!(err.contains("THE PEER'S KEY HAS CHANGED"), "{err}");
        let grouped = |hex: &str| {
            hex.as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(err.contains(&grouped(&old)), "{err}");
        assert!(err.contains(&grouped(&bob.fingerprint())), "{err}");
        let home = alice.path().display().to_string();
        // The key at an address changed: the advice forgets that address (bob's entry stays).
        let fix = format!("schat --home {home} peers forget {addr}");
        assert!(err.contains(&fix), "{err}");
        assert!(!err.contains("SECRET-WELCOME"), "{err}");
        assert!(dialer.stdout_seen.is_empty());

        // The listener saw the dialer leave, never its message.
        listener.signal("INT");
        listener.exit().await;
        assert!(
            listener.stdout_seen.is_empty(),
            "{:?}",
            listener.stdout_seen
        );
        assert!(!listener.stderr_text().contains("MUST-NOT-ARRIVE"));

        // Following the advice fixes it.
        let forget: Vec<&str> = fix.split_whitespace().skip(3).collect();
        assert!(alice.run(&forget).status.success());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let mut dialer = alice.dial(port, &["--trust", "accept-new"]);
        dialer.stderr_until("welcome").await;
        dialer.send("quit").await;
        assert!(dialer.exit().await.success());
        listener.exit().await;
    })
    .await
}

#[tokio::test]
async fn strict_and_ask_without_a_terminal_refuse_unknown_keys() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&[]).await;
        let mut strict = alice.dial(port, &["--trust", "strict"]);
        assert_eq!(strict.exit().await.code(), Some(3));
        assert!(strict.stderr_text().contains("--trust strict"));
        let mut ask = alice.dial(port, &["--trust", "ask"]);
        assert_eq!(ask.exit().await.code(), Some(3));
        let err = ask.stderr_text();
        assert!(err.contains("no terminal to ask"), "{err}");
        assert!(err.contains("--trust accept-new"), "{err}");
        assert_eq!(known_peers(&alice), "");
        listener.signal("INT");
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn allow_known_and_allow_file_refuse_outsiders_and_keep_serving() {
    within(async {
        let (alice, bob, mallory) = (Home::new(), Home::new(), Home::new());
        assert!(
            bob.run(&["peers", "add", &alice.fingerprint(), "alice"])
                .status
                .success()
        );
        let list = bob.path().join("allowed");
        std::fs::write(
            &list,
            format!("# only alice\n{}  # laptop\n", alice.fingerprint()),
        )
        .unwrap();

        for allow in ["known", list.to_str().unwrap()] {
            let (mut listener, port) = bob.listen(&["--once", "--allow", allow]).await;
            let mut outsider = mallory.dial(port, &[]);
            assert_eq!(outsider.exit().await.code(), Some(4));
            assert!(outsider.stderr_text().contains("closed the session"));
            listener.stderr_until("refused the peer").await;
            let mut friend = alice.dial(port, &[]);
            friend.stderr_until("welcome").await;
            friend.send("let me in").await;
            assert_eq!(listener.said().await, "let me in");
            // The listener labels her by petname (known) or as unverified (file only).
            friend.send("quit").await;
            assert!(friend.exit().await.success());
            assert!(listener.exit().await.success());
            let label = listener
                .stderr_seen
                .iter()
                .find(|l| l.contains("schat: peer: "))
                .cloned()
                .unwrap();
            if allow == "known" {
                assert!(label.contains("alice"), "{label}");
            }
        }
        // A bad allowlist is a usage error at startup.
        std::fs::write(&list, "nonsense\n").unwrap();
        let out = bob.run(&["listen", "127.0.0.1:0", "--allow", list.to_str().unwrap()]);
        assert_eq!(out.status.code(), Some(2));
        assert!(stderr(&out).contains("line 1"));
    })
    .await
}

/// A keyfile holding a given secret key.
fn home_with_secret(secret_hex: &str) -> Home {
    let home = Home::empty();
    std::fs::create_dir_all(home.path()).unwrap();
    std::fs::write(
        home.identity(),
        format!("SCHAT-SECRET-KEY-1 {secret_hex}\n"),
    )
    .unwrap();
    std::fs::set_permissions(home.identity(), std::fs::Permissions::from_mode(0o600)).unwrap();
    home
}

#[tokio::test]
async fn both_sides_print_the_documented_safety_number() {
    within(async {
        // RFC 7748 §6.1 key pairs; their safety number is the vector in PROTOCOL.md.
        let alice =
            home_with_secret("77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a");
        let bob =
            home_with_secret("5dab087e624a8a4b79e17f8b83800ee66f3bb1292618b6fd1c2f8b27ff88e0eb");
        assert_eq!(
            alice.fingerprint(),
            "8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a"
        );
        let vector = include_str!("data/safety-number-vector.txt").trim();
        let protocol = include_str!("../PROTOCOL.md");
        assert!(
            protocol.contains(vector),
            "PROTOCOL.md must show the vector"
        );

        let (mut listener, port) = bob.listen(&["--once"]).await;
        let mut dialer = alice.dial(port, &[]);
        let seen_dialing = dialer.stderr_until("safety number:").await;
        let seen_listening = listener.stderr_until("safety number:").await;
        assert!(seen_dialing.contains(vector), "{seen_dialing}");
        assert!(seen_listening.contains(vector), "{seen_listening}");
        // /verify shows it again (a grid at a terminal; one line here).
        dialer.send("/verify").await;
        dialer.stderr_until("safety number with").await;
        let again = dialer.stderr_until("safety number: ").await;
        assert!(again.contains(vector), "{again}");
        dialer.send("quit").await;
        assert!(dialer.exit().await.success());
        assert!(listener.exit().await.success());
    })
    .await
}

#[test]
fn peers_commands_manage_the_store() {
    let (me, friend) = (Home::new(), Home::new());
    let fp = friend.fingerprint();
    let add = me.run(&[
        "peers",
        "add",
        &fp,
        "friend",
        "--addr",
        "friend.example:4000",
    ]);
    assert!(add.status.success(), "{}", stderr(&add));
    let dup = me.run(&["peers", "add", &fp, "other"]);
    assert_eq!(dup.status.code(), Some(2));
    assert!(stderr(&dup).contains("already known as \"friend\""));
    let bad = me.run(&["peers", "add", &fp[..10], "x"]);
    assert_eq!(bad.status.code(), Some(2));

    let list = me.run(&["peers", "list"]);
    let text = stdout(&list);
    assert!(
        text.contains("friend") && text.contains("friend.example:4000"),
        "{text}"
    );
    assert!(text.contains("fingerprint received out of band"), "{text}");

    // verify needs a terminal or --yes, and shows the number either way.
    let v = me.run(&["peers", "verify", "friend"]);
    assert_eq!(v.status.code(), Some(2));
    assert!(stdout(&v).contains("safety number with friend"));
    assert!(
        me.run(&["peers", "verify", "friend", "--yes"])
            .status
            .success()
    );
    assert!(stdout(&me.run(&["peers", "list"])).contains("safety number compared"));

    assert!(
        me.run(&["peers", "rename", "friend", "pal"])
            .status
            .success()
    );
    assert_eq!(
        me.run(&["peers", "rename", "pal", "bad name"])
            .status
            .code(),
        Some(2)
    );
    assert!(
        me.run(&["peers", "forget", "friend.example:4000"])
            .status
            .success()
    );
    assert!(!known_peers(&me).contains("friend.example"));
    assert!(me.run(&["peers", "forget", "pal"]).status.success());
    assert_eq!(me.run(&["peers", "forget", "pal"]).status.code(), Some(2));
    assert!(!known_peers(&me).contains(&fp));
}

#[test]
fn a_corrupt_line_is_reported_and_costs_no_other_entry() {
    let (me, a, b) = (Home::new(), Home::new(), Home::new());
    assert!(
        me.run(&["peers", "add", &a.fingerprint(), "a"])
            .status
            .success()
    );
    let path = me.path().join("known_peers");
    let mut text = std::fs::read_to_string(&path).unwrap();
    text.push_str("this line was mangled by hand\n");
    std::fs::write(&path, text).unwrap();
    assert!(
        me.run(&["peers", "add", &b.fingerprint(), "b"])
            .status
            .success()
    );
    let list = me.run(&["peers", "list"]);
    assert!(stderr(&list).contains("line "), "{}", stderr(&list));
    let out = stdout(&list);
    assert!(out.contains("\na\n") || out.starts_with("a\n"), "{out}");
    assert!(out.contains("\nb\n"), "{out}");
    assert!(known_peers(&me).contains("this line was mangled by hand"));
}

#[test]
fn concurrent_schat_processes_keep_every_entry() {
    let me = Home::new();
    let others: Vec<Home> = (0..12).map(|_| Home::new()).collect();
    let children: Vec<_> = others
        .iter()
        .enumerate()
        .map(|(i, h)| {
            std::process::Command::new(common::bin())
                .arg("--home")
                .arg(me.path())
                .args(["peers", "add", &h.fingerprint(), &format!("p{i}")])
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap()
        })
        .collect();
    for mut c in children {
        assert!(c.wait().unwrap().success());
    }
    let text = known_peers(&me);
    for h in &others {
        assert!(text.contains(&h.fingerprint()), "lost an entry:\n{text}");
    }
}

/// known_peers is a file anyone with access to it can edit: whatever `schat peers` prints from
/// it is escaped, like a peer's text.
#[test]
fn peers_output_escapes_what_the_file_holds() {
    let (me, a) = (Home::new(), Home::new());
    let hostile = "evil\x1b[2J\x1b]0;title\x07:1";
    let bidi = "h\u{202e}lla:2";
    std::fs::write(
        me.path().join("known_peers"),
        format!(
            "alice {} fingerprint 2026-01-01T00:00:00Z {hostile} {bidi}\n",
            a.fingerprint()
        ),
    )
    .unwrap();
    let list = me.run(&["peers", "list"]);
    assert!(list.status.success(), "{}", stderr(&list));
    let out = stdout(&list);
    assert!(
        out.contains("evil\\x1b[2J\\x1b]0;title\\x07:1\n") && out.contains("h\\u{202e}lla:2\n"),
        "{out}"
    );
    assert!(
        !out.contains('\x1b') && !out.contains('\u{202e}'),
        "{out:?}"
    );

    // Forgetting that address quotes it back: escaped too.
    let forget = me.run(&["peers", "forget", hostile]);
    assert!(forget.status.success(), "{}", stderr(&forget));
    let err = stderr(&forget);
    assert!(err.contains("forgot the address evil\\x1b[2J"), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}

/// One key, one fingerprint: the same key with bit 255 set (which X25519 would accept as the
/// same key) is refused wherever a fingerprint is typed.
#[test]
fn non_canonical_fingerprints_are_refused() {
    let (me, a) = (Home::new(), Home::new());
    let fp = a.fingerprint();
    let last = u8::from_str_radix(&fp[62..], 16).unwrap() | 0x80;
    let alias = format!("{}{last:02x}", &fp[..62]);
    let add = me.run(&["peers", "add", &alias, "alias"]);
    assert_eq!(add.status.code(), Some(2), "{}", stderr(&add));
    assert!(stderr(&add).contains("not canonical"), "{}", stderr(&add));
    assert!(!known_peers(&me).contains(&alias[..62]));
    let dial = me.run(&["dial", "127.0.0.1:1", "--peer", &alias]);
    assert_eq!(dial.status.code(), Some(2), "{}", stderr(&dial));
    assert!(stderr(&dial).contains("not canonical"), "{}", stderr(&dial));
    let allow = me.path().join("allow");
    std::fs::write(&allow, format!("{alias}\n")).unwrap();
    let listen = me.run(&["listen", "127.0.0.1:0", "--allow", allow.to_str().unwrap()]);
    assert_eq!(listen.status.code(), Some(2), "{}", stderr(&listen));
    assert!(
        stderr(&listen).contains("not canonical"),
        "{}",
        stderr(&listen)
    );
}

/// A known key at an address it was never seen at is not silently accepted (and recorded)
/// under `--trust strict`: only `--peer` naming it lets it in. And the refusal comes before the
/// dialer's own key is sent.
#[tokio::test]
async fn strict_refuses_a_known_key_at_a_new_address_unless_pinned() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let added = alice.run(&["peers", "add", &bob.fingerprint(), "bob"]);
        assert!(added.status.success(), "{}", stderr(&added));
        let (mut listener, port) = bob.listen(&[]).await;
        let before = known_peers(&alice);

        let mut strict = alice.dial(port, &["--trust", "strict"]);
        assert_eq!(
            strict.exit().await.code(),
            Some(3),
            "{}",
            strict.stderr_text()
        );
        assert!(
            strict.stderr_text().contains("never seen at this address"),
            "{}",
            strict.stderr_text()
        );
        assert_eq!(
            known_peers(&alice),
            before,
            "the address was not taken over"
        );

        let mut pinned = alice.dial(port, &["--trust", "strict", "--peer", "bob"]);
        pinned.stderr_until("welcome").await;
        pinned.send("quit").await;
        assert!(pinned.exit().await.success());
        listener.signal("INT");
        listener.exit().await;
    })
    .await
}

/// `schat dial bob` dials bob's stored addresses, most recent first, and expects bob's key.
#[tokio::test]
async fn dialling_a_petname_uses_its_stored_addresses_and_key() {
    within(async {
        let (alice, bob, mallory) = (Home::new(), Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&[]).await;
        // An old address where nothing listens, then the current one (added last = newest).
        let dead = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let add = alice.run(&[
            "peers",
            "add",
            &bob.fingerprint(),
            "bob",
            "--addr",
            &format!("127.0.0.1:{dead}"),
        ]);
        assert!(add.status.success(), "{}", stderr(&add));
        // Known key at a new address: recorded (not strict).
        let mut first = alice.dial(port, &[]);
        first.stderr_until("welcome").await;
        first.send("quit").await;
        assert!(first.exit().await.success());
        // Now known at both: `dial bob` reaches the newest.
        let mut by_name = alice.spawn(&["dial", "bob"]);
        by_name.stderr_until("welcome").await;
        by_name.send("by name").await;
        assert_eq!(listener.said().await, "by name");
        by_name.send("quit").await;
        assert!(by_name.exit().await.success());
        listener.signal("INT");
        listener.exit().await;

        // Someone else now answers at bob's newest address: `dial bob` expects bob's key.
        let addr = format!("127.0.0.1:{port}");
        let mut impostor = mallory.spawn(&["listen", &addr, "--allow", "anyone"]);
        impostor.stderr_until("listening on").await;
        let out = alice.run(&["dial", "bob"]);
        assert_eq!(out.status.code(), Some(3), "{}", stderr(&out));
        impostor.signal("INT");
        impostor.exit().await;
    })
    .await
}

/// A ticket names a key and an address, and anyone can write one: a ticket for another key at
/// an address known_peers has for bob raises the key-change alarm like dialling the address,
/// moves nothing in known_peers, and a later plain dial of that address is refused as well
/// (issue 31: the ticket connected without a word and took the address from bob's entry).
#[tokio::test]
async fn a_ticket_for_another_key_at_a_known_address_raises_the_alarm() {
    within(async {
        let (alice, bob, mallory) = (Home::new(), Home::new(), Home::new());
        let (mut listener, port) = mallory.listen(&[]).await;
        let addr = format!("127.0.0.1:{port}");
        let added = alice.run(&["peers", "add", &bob.fingerprint(), "bob", "--addr", &addr]);
        assert!(added.status.success(), "{added:?}");
        let before = known_peers(&alice);
        let ticket = schat::invite::Ticket {
            key: schat::fingerprint::parse(&mallory.fingerprint()).unwrap(),
            secret: None,
            expires: 0,
            name: "mallory".into(),
            addrs: vec![schat::invite::TicketAddr::Ip([127, 0, 0, 1].into(), port)],
        }
        .encode();
        let mut d = alice.spawn(&["dial", &ticket]);
        assert_eq!(d.exit().await.code(), Some(3), "{}", d.stderr_text());
        assert!(
            d.stderr_text().contains("THE PEER'S KEY HAS CHANGED"),
            "{}",
            d.stderr_text()
        );
        assert_eq!(known_peers(&alice), before, "known_peers changed");
        let mut plain = alice.dial(port, &["--trust", "ask"]);
        assert_eq!(
            plain.exit().await.code(),
            Some(3),
            "{}",
            plain.stderr_text()
        );
        assert!(plain.stderr_text().contains("THE PEER'S KEY HAS CHANGED"));
        listener.signal("INT");
        listener.exit().await;
        assert!(!listener.stderr_text().contains("joined ("));
    })
    .await
}

/// Recognising a key is not letting it in (issue 26): Carol dials Bob and accepts his key; when
/// Bob later dials Carol's listener he is refused, as a stranger would be, until Carol admits
/// him explicitly. `peers list` says which entries are admitted.
#[tokio::test]
async fn trusting_a_key_when_dialling_does_not_admit_it() {
    within(async {
        let (carol, bob) = (Home::new(), Home::new());
        let (mut bobs_room, bobs_port) = bob.listen(&[]).await;
        let mut dial = carol.dial(bobs_port, &["--trust", "accept-new"]);
        dial.stderr_until("welcome").await;
        dial.send("quit").await;
        assert!(dial.exit().await.success());
        bobs_room.signal("INT");
        bobs_room.exit().await;

        // Carol listens with the default (known peers): Bob is known, not admitted.
        let mut carols = carol.spawn(&["listen", "127.0.0.1:0"]);
        let line = carols.stderr_until("listening on 127.0.0.1:").await;
        let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        let mut knock = bob.dial(port, &["--trust", "accept-new"]);
        knock.send("let me in").await;
        knock.close_stdin();
        assert_eq!(
            knock.exit().await.code(),
            Some(4),
            "{}",
            knock.stderr_text()
        );
        carols
            .stderr_until("you know its key, but it is not admitted")
            .await;
        let list = stdout(&carol.run(&["peers", "list"]));
        assert!(list.contains("admitted:    no"), "{list}");

        // Carol admits him: now he comes in.
        let name = list.lines().next().unwrap().trim().to_string();
        let admitted = carol.run(&["peers", "admit", &name]);
        assert!(admitted.status.success(), "{}", stderr(&admitted));
        let list = stdout(&carol.run(&["peers", "list"]));
        assert!(list.contains("admitted:    yes"), "{list}");
        let mut again = bob.dial(port, &[]);
        again.send("thanks").await;
        assert_eq!(carols.said().await, "thanks");
        again.send("quit").await;
        assert!(again.exit().await.success());
        // And revoked, out again.
        let revoked = carol.run(&["peers", "revoke", &name]);
        assert!(revoked.status.success(), "{}", stderr(&revoked));
        let mut out_again = bob.dial(port, &[]);
        out_again.close_stdin();
        assert_eq!(out_again.exit().await.code(), Some(4));
        carols.signal("INT");
        carols.exit().await;
    })
    .await
}

/// A known_peers file from before admission was explicit: entries without an address (added by
/// hand, by a knock, by an invite) stay admitted; one with an address (a peer we dialled) is
/// only recognised, and the listener says so once, rewriting the file in the new format.
#[tokio::test]
async fn an_old_known_peers_file_keeps_explicit_admissions_only() {
    within(async {
        let (host, friend, dialled) = (Home::new(), Home::new(), Home::new());
        std::fs::write(
            host.path().join("known_peers"),
            format!(
                "# schat known peers: one peer per line, fields separated by spaces:\n\
                 friend {} fingerprint 2026-01-01T00:00:00Z\n\
                 server {} first-use 2026-01-01T00:00:00Z 192.0.2.7:12345\n",
                friend.fingerprint(),
                dialled.fingerprint()
            ),
        )
        .unwrap();
        let mut room = host.spawn(&["listen", "127.0.0.1:0"]);
        let line = room.stderr_until("listening on 127.0.0.1:").await;
        let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        let warned = room.stderr_until("no longer admitted").await;
        assert!(
            warned.contains("server") && !warned.contains("friend"),
            "{warned}"
        );
        let file = known_peers(&host);
        assert!(file.contains("# known_peers format 2"), "{file}");
        assert!(
            file.lines()
                .any(|l| l.starts_with("friend ") && l.contains(" admitted")),
            "{file}"
        );
        let mut f = friend.dial(port, &[]);
        f.send("still in").await;
        assert_eq!(room.said().await, "still in");
        f.send("quit").await;
        f.exit().await;
        let mut d = dialled.dial(port, &[]);
        d.close_stdin();
        assert_eq!(d.exit().await.code(), Some(4), "{}", d.stderr_text());
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// The key-change alarm's advice undoes exactly what changed (issue 26): dialling the address
/// says to forget the address (bob's entry may still be right), dialling the petname says to
/// forget bob's old key — never "does not match --peer" when there was no --peer.
#[tokio::test]
async fn the_key_change_alarm_names_what_to_forget() {
    within(async {
        let (alice, old_bob, new_bob) = (Home::new(), Home::new(), Home::new());
        let (mut listener, port) = new_bob.listen(&[]).await;
        let addr = format!("127.0.0.1:{port}");
        let added = alice.run(&[
            "peers",
            "add",
            &old_bob.fingerprint(),
            "bob",
            "--addr",
            &addr,
        ]);
        assert!(added.status.success());
        let mut by_name = alice.spawn(&["dial", "bob"]);
        assert_eq!(
            by_name.exit().await.code(),
            Some(3),
            "{}",
            by_name.stderr_text()
        );
        let said = by_name.stderr_text();
        assert!(said.contains("THE PEER'S KEY HAS CHANGED"), "{said}");
        assert!(said.contains("peers forget bob"), "{said}");
        assert!(!said.contains("--peer"), "{said}");
        let mut by_addr = alice.spawn(&["dial", &addr]);
        assert_eq!(
            by_addr.exit().await.code(),
            Some(3),
            "{}",
            by_addr.stderr_text()
        );
        let said = by_addr.stderr_text();
        assert!(said.contains(&format!("peers forget {addr}")), "{said}");
        // The listener says the dialer turned its key down, not "not a schat peer".
        listener
            .stderr_until("hung up after seeing this listener's key")
            .await;
        listener.signal("INT");
        listener.exit().await;
    })
    .await
}

/// A web server is named as one, from the error page it answers with.
#[tokio::test]
async fn an_html_answer_is_named_as_a_web_server() {
    within(async {
        let server = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = server.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (mut s, _) = server.accept().await.unwrap();
            use tokio::io::AsyncWriteExt;
            let _ = s
                .write_all(b"<!DOCTYPE HTML>\n<html><body>Error 400</body></html>\n")
                .await;
            tokio::time::sleep(std::time::Duration::from_secs(2)).await;
        });
        let alice = Home::new();
        let mut d = alice.dial(port, &[]);
        assert_eq!(d.exit().await.code(), Some(1), "{}", d.stderr_text());
        assert!(
            d.stderr_text().contains("looks like HTML"),
            "{}",
            d.stderr_text()
        );
    })
    .await
}
