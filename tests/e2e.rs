//! End-to-end: the real binary, real TCP on 127.0.0.1 (port 0), temp homes.

mod common;

use common::{Home, within};
use std::os::unix::fs::PermissionsExt;

#[test]
fn keygen_writes_a_private_keyfile_and_fingerprint_repeats_it() {
    let home = Home::empty();
    let out = home.run(&["keygen"]);
    assert!(out.status.success());
    let printed = String::from_utf8(out.stdout).unwrap();
    let mode = std::fs::metadata(home.identity())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    let again = home.run(&["fingerprint"]);
    assert!(again.status.success());
    assert_eq!(String::from_utf8(again.stdout).unwrap(), printed);
    // 16 groups of 4 hex digits.
    let groups: Vec<&str> = printed.split_whitespace().collect();
    assert_eq!(groups.len(), 16);
    assert_eq!(groups.concat(), home.fingerprint());
    // The secret is in the file but not on the screen.
    let file = std::fs::read_to_string(home.identity()).unwrap();
    let secret_line = file
        .lines()
        .find(|l| l.starts_with("SCHAT-SECRET-KEY-1"))
        .unwrap();
    let secret = secret_line.split_whitespace().nth(1).unwrap();
    assert!(!String::from_utf8(out.stderr).unwrap().contains(secret));
    assert!(!printed.contains(secret));
}

#[test]
fn keygen_refuses_to_overwrite_without_force() {
    let home = Home::new();
    let before = home.fingerprint();
    let out = home.run(&["keygen"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(
        err.contains("already exists") && err.contains("--force"),
        "{err}"
    );
    assert_eq!(home.fingerprint(), before);
    assert!(home.run(&["keygen", "--force"]).status.success());
    assert_ne!(home.fingerprint(), before);
}

#[test]
fn unsafe_or_broken_keyfiles_are_refused_with_clear_errors() {
    let home = Home::new();
    std::fs::set_permissions(home.identity(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = home.run(&["fingerprint"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("0644") && err.contains("chmod 600"), "{err}");

    std::fs::set_permissions(home.identity(), std::fs::Permissions::from_mode(0o600)).unwrap();
    let text = std::fs::read_to_string(home.identity()).unwrap();
    std::fs::write(home.identity(), &text[..text.len() - 10]).unwrap();
    let out = home.run(&["dial", "127.0.0.1:1"]);
    assert_eq!(out.status.code(), Some(1));
    let err = String::from_utf8(out.stderr).unwrap();
    assert!(err.contains("line 3"), "{err}");
    assert!(
        !err.contains(&text[text.len() - 30..text.len() - 10]),
        "{err}"
    );

    // An explicit --identity that does not exist is an error, never created silently.
    let missing = home.path().join("typo");
    let out = home.run(&[
        "--identity",
        missing.to_str().unwrap(),
        "dial",
        "127.0.0.1:1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(
        String::from_utf8(out.stderr)
            .unwrap()
            .contains("schat keygen")
    );
    assert!(!missing.exists());
}

#[test]
fn a_home_directory_others_can_write_is_warned_about() {
    let home = Home::new();
    for mode in [0o777, 0o770, 0o702] {
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let out = home.run(&["fingerprint"]);
        assert!(out.status.success());
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(
            err.contains("warning") && err.contains("other users can write"),
            "{mode:o}: {err}"
        );
        assert!(err.contains(&format!("{mode:04o}")), "{err}");
        assert!(err.contains("chmod go-w"), "{err}");
    }
    // Readable by others is not a risk to the files in it (they are 0600 themselves).
    for mode in [0o700, 0o755] {
        std::fs::set_permissions(home.path(), std::fs::Permissions::from_mode(mode)).unwrap();
        let out = home.run(&["fingerprint"]);
        assert!(out.status.success());
        assert!(
            out.stderr.is_empty(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
}

#[test]
fn usage_errors_exit_2() {
    let home = Home::new();
    for args in [
        &["dial", "host:notaport"][..],
        &["dial", "[::1"][..],
        &["dial", "127.0.0.1:1", "--peer", "abc"][..],
        &["listen", "127.0.0.1:99999"][..],
        &["frobnicate"][..],
        &["dial"][..],
    ] {
        let out = home.run(args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        assert!(!out.stderr.is_empty());
    }
    let help = home.run(&["--help"]);
    assert!(help.status.success());
    let text = String::from_utf8(help.stdout).unwrap();
    assert!(
        text.contains("Exit status")
            && text.contains("3  you refused the peer's key")
            && text.contains("4  the peer turned you away"),
        "{text}"
    );
}

#[tokio::test]
async fn first_use_creates_an_identity_and_says_so() {
    within(async {
        let listener_home = Home::new();
        let (mut listener, port) = listener_home.listen(&["--once"]).await;
        let fresh = Home::empty();
        let mut dialer = fresh.dial(port, &[]);
        dialer.stderr_until("no identity yet: created").await;
        dialer.stderr_until("welcome").await;
        assert!(fresh.identity().exists());
        dialer.send("quit").await;
        assert!(dialer.exit().await.success());
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn welcome_chat_both_ways_and_quit_end_both_cleanly() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob
            .listen(&["--once", "--welcome", "hello from bob's listener"])
            .await;
        let mut dialer = alice.dial(port, &[]);

        // Both print the other's fingerprint.
        let seen_by_dialer = dialer.stderr_until("peer fingerprint").await;
        let seen_by_listener = listener.stderr_until("peer fingerprint").await;
        let grouped = |hex: String| {
            hex.as_bytes()
                .chunks(4)
                .map(|c| std::str::from_utf8(c).unwrap())
                .collect::<Vec<_>>()
                .join(" ")
        };
        assert!(seen_by_dialer.contains(&grouped(bob.fingerprint())));
        assert!(seen_by_listener.contains(&grouped(alice.fingerprint())));
        assert!(
            dialer
                .stderr_until("welcome")
                .await
                .contains("hello from bob's listener")
        );

        // Full duplex: both type before either reads.
        dialer.send("hi bob").await;
        listener.send("hi alice").await;
        dialer.send("second line, with ünïcödé").await;
        assert_eq!(listener.said().await, "hi bob");
        assert_eq!(listener.said().await, "second line, with ünïcödé");
        assert_eq!(dialer.said().await, "hi alice");

        dialer.send("quit").await;
        assert!(dialer.exit().await.success());
        assert!(listener.exit().await.success());
        assert!(listener.stderr_text().contains(" left"));
    })
    .await
}

#[tokio::test]
async fn listener_quit_and_ctrl_d_also_end_cleanly() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let mut dialer = alice.dial(port, &[]);
        dialer.stderr_until("welcome").await;
        listener.send("/quit").await;
        assert!(listener.exit().await.success());
        assert!(dialer.exit().await.success());
        assert!(dialer.stderr_text().contains(" left"));

        // Ctrl-D (end of input) on the dialer.
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let mut dialer = alice.dial(port, &[]);
        dialer.stderr_until("welcome").await;
        dialer.send("last words").await;
        dialer.close_stdin();
        assert!(dialer.exit().await.success());
        assert_eq!(listener.said().await, "last words");
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn ctrl_c_sends_quit_and_exits_zero() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let mut dialer = alice.dial(port, &[]);
        dialer.stderr_until("welcome").await;
        dialer.signal("INT");
        assert!(dialer.exit().await.success());
        assert!(listener.exit().await.success());
        assert!(listener.stderr_text().contains(" left"));
    })
    .await
}

#[tokio::test]
async fn wrong_pin_aborts_with_exit_3_and_nothing_is_shown() {
    within(async {
        let (alice, bob, carol) = (Home::new(), Home::new(), Home::new());
        let (mut listener, port) = bob
            .listen(&["--once", "--welcome", "WELCOME-MUST-NOT-SHOW"])
            .await;
        // The listener has a line queued to send the moment the session starts.
        listener.send("CHAT-MUST-NOT-SHOW").await;
        let mut dialer = alice.dial(port, &["--peer", &carol.fingerprint()]);
        let status = dialer.exit().await;
        assert_eq!(status.code(), Some(3));
        let err = dialer.stderr_text();
        assert!(
            err.contains("expected") && err.contains("received"),
            "{err}"
        );
        assert!(!err.contains("MUST-NOT-SHOW"), "{err}");
        assert!(dialer.stdout_seen.is_empty(), "{:?}", dialer.stdout_seen);
        listener.signal("INT");
        listener.exit().await;
    })
    .await
}

#[tokio::test]
async fn right_pin_in_any_spelling_connects() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob
            .listen(&["--once", "--peer", &alice.fingerprint()])
            .await;
        let colons: Vec<String> = bob
            .fingerprint()
            .to_uppercase()
            .as_bytes()
            .chunks(2)
            .map(|c| String::from_utf8(c.to_vec()).unwrap())
            .collect();
        let mut dialer = alice.dial(port, &["--peer", &colons.join(":")]);
        dialer.stderr_until("welcome").await;
        dialer.send("pinned both ways").await;
        assert_eq!(listener.said().await, "pinned both ways");
        dialer.send("quit").await;
        assert!(dialer.exit().await.success());
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn listener_pin_refuses_strangers_tells_them_and_keeps_serving() {
    within(async {
        let (alice, bob, carol) = (Home::new(), Home::new(), Home::new());
        let (mut listener, port) = bob
            .listen(&["--once", "--peer", &carol.fingerprint()])
            .await;
        let mut dialer = alice.dial(port, &[]);
        assert_eq!(dialer.exit().await.code(), Some(4));
        assert!(
            dialer.stderr_text().contains("closed the session"),
            "{}",
            dialer.stderr_text()
        );
        listener.stderr_until("does not match --peer").await;
        // An impostor must not be able to end a --once listener: carol still gets in.
        let mut carol_dialer = carol.dial(port, &[]);
        carol_dialer.stderr_until("welcome").await;
        carol_dialer.send("it's carol").await;
        assert_eq!(listener.said().await, "it's carol");
        carol_dialer.send("quit").await;
        assert!(carol_dialer.exit().await.success());
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn a_vanished_peer_is_reported_as_a_possible_cut() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once", "--resume-grace", "1"]).await;
        let mut dialer = alice.dial(port, &[]);
        dialer.stderr_until("welcome").await;
        dialer.signal("KILL");
        dialer.exit().await;
        let status = listener.exit().await;
        assert_eq!(status.code(), Some(1));
        assert!(
            listener.stderr_text().contains("may have been cut"),
            "{}",
            listener.stderr_text()
        );
    })
    .await
}

#[tokio::test]
async fn a_listener_survives_bad_connections_and_serves_peer_after_peer() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--timeout", "2"]).await;

        // Garbage, then an HTTP request, then a silent socket: none of them is a session.
        use tokio::io::AsyncWriteExt;
        let mut junk = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        junk.write_all(b"\x00\x03abc").await.unwrap();
        drop(junk);
        listener.stderr_until("not a schat peer").await;
        let mut http = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        http.write_all(b"GET / HTTP/1.1\r\n\r\n").await.unwrap();
        http.shutdown().await.unwrap();
        listener.stderr_until("it looks like HTTP").await;
        let silent = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        listener.stderr_until("timed out").await;
        drop(silent);

        for round in 0..2 {
            let mut dialer = alice.dial(port, &[]);
            dialer.stderr_until("welcome").await;
            let text = format!("round {round}");
            dialer.send(&text).await;
            assert_eq!(listener.said().await, text);
            dialer.send("quit").await;
            assert!(dialer.exit().await.success());
            listener.stderr_until("waiting for the next peer").await;
        }
        listener.signal("INT");
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn dial_failures_are_clear_and_bounded() {
    within(async {
        let home = Home::new();
        // A port with nothing listening: bind one, learn its number, close it.
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let mut dialer = home.dial(port, &["--timeout", "3"]);
        assert_eq!(dialer.exit().await.code(), Some(1));
        assert!(
            dialer.stderr_text().contains("nothing is listening"),
            "{}",
            dialer.stderr_text()
        );
    })
    .await
}

#[tokio::test]
async fn peer_text_is_sanitized_and_long_lines_are_refused_locally() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let mut dialer = alice.dial(port, &[]);
        dialer.stderr_until("welcome").await;
        dialer
            .send("\x1b[2J\x1b]52;c;aGk=\x07 evil \u{202e}txt\0")
            .await;
        assert_eq!(
            listener.said().await,
            "\\x1b[2J\\x1b]52;c;aGk=\\x07 evil \\u{202e}txt\\x00"
        );
        let long = "x".repeat(70_000);
        dialer.send(&long).await;
        dialer.stderr_until("line not sent").await;
        dialer.send_raw(b"\xff\xfe\n").await;
        dialer.stderr_until("not valid UTF-8").await;
        dialer.send("still connected").await;
        assert_eq!(listener.said().await, "still connected");
        dialer.send("quit").await;
        assert!(dialer.exit().await.success());
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn many_lines_piped_at_once_all_arrive_in_order() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let mut dialer = alice.dial(port, &[]);
        let mut script = String::new();
        for i in 0..2000 {
            script.push_str(&format!("line {i}\n"));
        }
        dialer.send_raw(script.as_bytes()).await;
        dialer.close_stdin();
        for i in 0..2000 {
            assert_eq!(listener.said().await, format!("line {i}"));
        }
        assert!(dialer.exit().await.success());
        assert!(listener.exit().await.success());
    })
    .await
}
