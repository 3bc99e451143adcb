//! Exit codes and last words that tell the truth: a session in which something sent was not
//! taken never ends 0, and a listener without input keeps serving. The real binary on
//! loopback, bounded in time.

mod common;

use common::raw::{msg, scripted_listener};
use common::{Home, within};
use std::time::Duration;

/// `echo "build done" | schat dial HOST`: the line, then end of input at once.
async fn one_line_then_eof(home: &Home, port: u16, extra: &[&str]) -> common::Proc {
    let mut p = home.dial(port, extra);
    p.send("build done").await;
    p.close_stdin();
    p
}

#[tokio::test]
async fn a_full_room_is_a_refusal_not_a_success() {
    within(async {
        let (host, first, second) = (Home::new(), Home::new(), Home::new());
        let (mut room, port) = host.listen(&["--max-peers", "1"]).await;
        let mut a = first.dial(port, &[]);
        a.stderr_until("welcome").await;
        let mut b = one_line_then_eof(&second, port, &[]).await;
        assert_eq!(b.exit().await.code(), Some(4), "{}", b.stderr_text());
        assert!(b.stderr_text().contains("full"), "{}", b.stderr_text());
        a.send("quit").await;
        a.exit().await;
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// `echo hi | schat dial` ends 0 with its line shown once, `rounds` times against listeners
/// that are a fresh `listen --once` each time, or one room, on a loaded machine.
async fn echo_hi_rounds(once: bool, rounds: usize) {
    let (host, dialer) = (Home::new(), Home::new());
    let _hog = common::CpuHog::start();
    let mut room = None;
    for round in 0..rounds {
        let extra: &[&str] = if once { &["--once"] } else { &[] };
        if room.is_none() {
            room = Some(host.listen(extra).await);
        }
        let (listener, port) = room.as_mut().unwrap();
        let mut d = one_line_then_eof(&dialer, *port, &[]).await;
        let status = d.exit().await;
        assert!(
            status.success(),
            "round {round}: dialer {status}: {}",
            d.stderr_text()
        );
        assert_eq!(listener.said().await, "build done", "round {round}");
        if once {
            let (mut listener, _) = room.take().unwrap();
            let status = listener.exit().await;
            assert!(status.success(), "round {round}: listener {status}");
            assert_eq!(
                listener.stdout_seen.len(),
                1,
                "round {round}: shown once: {:?}",
                listener.stdout_seen
            );
        }
    }
    if let Some((mut listener, _)) = room {
        listener.signal("INT");
        listener.exit().await;
        let shown = listener.stdout_seen.len();
        assert_eq!(shown, rounds, "each shown once: {:?}", listener.stdout_seen);
    }
}

/// The dialer's input ends before the WELCOME arrives: it finishes the opening, then leaves,
/// and the `--once` host sends the WELCOME before it exits (issue 24: exit 4, 17 runs in 20).
#[tokio::test]
async fn echo_hi_against_listen_once_is_delivered_and_exit_0_every_time() {
    within(echo_hi_rounds(true, 50)).await
}

#[tokio::test]
async fn echo_hi_against_a_room_is_delivered_and_exit_0_every_time() {
    within(echo_hi_rounds(false, 50)).await
}

#[tokio::test]
async fn a_dialer_the_allowlist_refuses_does_not_exit_0() {
    within(async {
        let (host, stranger) = (Home::new(), Home::new());
        let (mut room, port) = host.listen(&["--allow", "known"]).await;
        let mut d = one_line_then_eof(&stranger, port, &[]).await;
        assert_eq!(d.exit().await.code(), Some(4), "{}", d.stderr_text());
        assert!(d.stderr_text().contains("refused"), "{}", d.stderr_text());
        room.signal("INT");
        room.exit().await;
    })
    .await
}

#[tokio::test]
async fn refusing_the_hosts_key_after_input_ended_is_exit_3() {
    within(async {
        let (host, dialer) = (Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        let mut d = one_line_then_eof(&dialer, port, &["--trust", "strict"]).await;
        assert_eq!(d.exit().await.code(), Some(3), "{}", d.stderr_text());
        room.signal("INT");
        room.exit().await;
    })
    .await
}

#[tokio::test]
async fn a_listener_without_input_keeps_serving() {
    within(async {
        let (host, friend) = (Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        room.close_stdin();
        room.stderr_until("end of input").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(
            room.child.try_wait().unwrap().is_none(),
            "the listener exited"
        );
        let mut d = friend.dial(port, &[]);
        d.stderr_until("welcome").await;
        d.send("anyone there?").await;
        assert_eq!(room.said().await, "anyone there?");
        d.send("quit").await;
        assert!(d.exit().await.success());
        room.signal("INT");
        assert!(room.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn a_pipe_quit_with_a_reason_is_an_abort() {
    within(async {
        let home = Home::new();
        let port = scripted_listener(
            vec![
                msg(0x0a, &[0x02]),
                msg(0x01, b"schat pipe"),
                msg(0x09, b"partial"),
                msg(0x03, b"aborted: disk full"),
            ],
            None,
            vec![],
        )
        .await;
        let mut d = home.dial(port, &["--pipe"]);
        d.close_stdin();
        let status = d.exit().await;
        assert_eq!(status.code(), Some(1), "{}", d.stderr_text());
        assert!(d.stderr_text().contains("disk full"), "{}", d.stderr_text());
        // What arrived before the abort is still written out.
        assert_eq!(d.stdout_seen.join("\n"), "partial");
    })
    .await
}

/// `echo "build done" | schat dial HOST` by 50 processes at once, from one machine: every line
/// reaches the host (connections over the per-address handshake cap wait their turn instead of
/// being refused), and every process exits 0. (The room holds all 50: how long each stays —
/// it sets up end-to-end sessions with the members present before it leaves — is not what
/// this is about.)
#[tokio::test]
async fn fifty_one_line_dialers_at_once_all_deliver() {
    within(async {
        let host = Home::new();
        let (mut room, port) = host.listen(&["--max-peers", "50"]).await;
        let homes: Vec<Home> = (0..50).map(|_| Home::new()).collect();
        let mut dialers = Vec::new();
        for (i, home) in homes.iter().enumerate() {
            let mut d = home.dial(port, &[]);
            d.send(&format!("build {i} done")).await;
            d.close_stdin();
            dialers.push(d);
        }
        for (i, d) in dialers.iter_mut().enumerate() {
            assert!(d.exit().await.success(), "dialer {i}: {}", d.stderr_text());
        }
        let mut got = std::collections::BTreeSet::new();
        while got.len() < 50 {
            got.insert(room.said().await);
        }
        let expected: std::collections::BTreeSet<String> =
            (0..50).map(|i| format!("build {i} done")).collect();
        assert_eq!(got, expected);
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// A fake server: answers every connection with `reply` (after reading a little, if
/// `read_first`), then holds the socket open.
async fn fake_server(reply: &'static [u8], read_first: bool) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        while let Ok((mut s, _)) = listener.accept().await {
            tokio::spawn(async move {
                let mut buf = [0u8; 64];
                if read_first {
                    let _ = s.read(&mut buf).await;
                }
                let _ = s.write_all(reply).await;
                let _ = s.read(&mut buf).await;
                tokio::time::sleep(Duration::from_secs(30)).await;
            });
        }
    });
    port
}

/// Dialling an HTTP or SSH server says so at once, not after the 10 s handshake deadline; a
/// listener hit by curl, ssh or a TLS client says so at once too.
#[tokio::test]
async fn other_protocols_are_named_at_once_on_both_roles() {
    within(async {
        let home = Home::new();
        for (reply, read_first, name) in [
            (b"HTTP/1.1 400 Bad Request\r\n\r\n".as_slice(), true, "HTTP"),
            (b"SSH-2.0-OpenSSH_9.6\r\n".as_slice(), false, "SSH"),
        ] {
            let port = fake_server(reply, read_first).await;
            let started = std::time::Instant::now();
            let mut d = home.dial(port, &[]);
            let status = d.exit().await;
            assert_eq!(status.code(), Some(1), "{}", d.stderr_text());
            assert!(
                d.stderr_text()
                    .contains(&format!("not a schat peer (it looks like {name})")),
                "{}",
                d.stderr_text()
            );
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{:?}",
                started.elapsed()
            );
        }

        let (mut listener, port) = home.listen(&[]).await;
        for (hello, name) in [
            (b"GET / HTTP/1.1\r\nHost: x\r\n\r\n".as_slice(), "HTTP"),
            (b"SSH-2.0-OpenSSH_9.6\r\n".as_slice(), "SSH"),
            (
                b"\x16\x03\x01\x00\xc8\x01\x00\x00\xc4\x03\x03".as_slice(),
                "TLS",
            ),
        ] {
            use tokio::io::AsyncWriteExt;
            let started = std::time::Instant::now();
            let mut s = tokio::net::TcpStream::connect(("127.0.0.1", port))
                .await
                .unwrap();
            s.write_all(hello).await.unwrap();
            let line = listener.stderr_until("not a schat peer").await;
            assert!(line.contains(&format!("it looks like {name}")), "{line}");
            assert!(
                started.elapsed() < Duration::from_secs(3),
                "{:?}",
                started.elapsed()
            );
        }
        listener.signal("INT");
        listener.exit().await;
    })
    .await
}

/// One plain sentence per failure, with what to do: no OS wording, no error numbers, no
/// reason given twice; and addresses that are wrong say how.
#[tokio::test]
async fn failures_read_as_one_plain_sentence() {
    within(async {
        let home = Home::new();
        // A port nobody listens on: bind one, note it, close it.
        let free = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = free.local_addr().unwrap().port();
        drop(free);
        for (addr, expect) in [
            (format!("127.0.0.1:{port}"), "nothing is listening at"),
            (
                "no-such-host.invalid:4000".to_string(),
                "cannot find the host",
            ),
            (
                "http://127.0.0.1:8000".to_string(),
                "a URL is not an address: give HOST:PORT, e.g. 127.0.0.1:8000",
            ),
            ("1.2.3.4:5:6".to_string(), "too many colons"),
            ("::1:5000".to_string(), "[::1]:5000"),
        ] {
            let out = home.run(&["dial", &addr]);
            let err = String::from_utf8_lossy(&out.stderr).into_owned();
            assert!(!out.status.success(), "{addr}: {err}");
            let last = err.lines().last().unwrap_or("");
            assert!(last.contains(expect), "{addr}: {err}");
            assert!(!err.contains("os error"), "{addr}: {err}");
            assert!(!err.contains("Connection refused"), "{addr}: {err}");
            assert!(!err.contains("failed to lookup"), "{addr}: {err}");
        }
    })
    .await
}

/// A chat dialer against a pipe listener, and a pipe dialer against a chat room: both sides
/// stop at once with one clear line, non-zero, and the listener keeps serving.
#[tokio::test]
async fn chat_and_pipe_never_talk_past_each_other() {
    within(async {
        let (host, dialer) = (Home::new(), Home::new());
        let dialer_key = dialer.fingerprint();
        let (mut pipe_listener, port) = host.listen(&["--pipe", "--peer", &dialer_key]).await;
        let mut chat = dialer.dial(port, &[]);
        chat.send("hello?").await;
        assert_eq!(chat.exit().await.code(), Some(4), "{}", chat.stderr_text());
        assert!(
            chat.stderr_text()
                .contains("the peer is in pipe mode (--pipe)"),
            "{}",
            chat.stderr_text()
        );
        pipe_listener.stderr_until("the peer is in chat mode").await;
        assert!(
            pipe_listener.child.try_wait().unwrap().is_none(),
            "the pipe listener stopped"
        );
        let _ = pipe_listener.child.start_kill();
        pipe_listener.exit().await;

        let (mut room, port) = host.listen(&[]).await;
        let mut pipe = dialer.dial(port, &["--pipe"]);
        pipe.close_stdin();
        assert_eq!(pipe.exit().await.code(), Some(4), "{}", pipe.stderr_text());
        assert!(
            pipe.stderr_text().contains("the peer is in chat mode"),
            "{}",
            pipe.stderr_text()
        );
        room.stderr_until("the peer is in pipe mode").await;
        assert!(
            !room.stderr_text().contains("joined ("),
            "{}",
            room.stderr_text()
        );
        room.signal("INT");
        assert!(room.exit().await.success());
    })
    .await
}

/// A dialer still deciding about the host's key is not announced; one that then refuses the
/// host is logged as a refusal, and the others never hear of it.
#[tokio::test]
async fn joins_are_announced_only_once_the_dialer_is_ready() {
    within(async {
        use schat::framed::{FrameReader as R, FrameWriter as W};
        let (host, member) = (Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        let mut m = member.dial(port, &["--json"]);
        loop {
            let v: serde_json::Value = serde_json::from_str(&m.stdout_line().await).unwrap();
            if v["event"] == "roster" {
                break; // welcomed, and told who is there
            }
        }
        // A dialer that completed the handshake and is "at its prompt".
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let (r, w) = stream.into_split();
        let id = schat::keys::Identity::generate().unwrap();
        let mut deciding = schat::handshake::initiate(&id, R::new(r), W::new(w), |_| Ok(()))
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        assert!(
            !room.stderr_text().contains("joined (2"),
            "{}",
            room.stderr_text()
        );
        // It refuses the host's key.
        deciding
            .send
            .quit("refused: your key was not accepted")
            .await
            .unwrap();
        let line = room.stderr_until("refused us").await;
        assert!(line.contains("your key was not accepted"), "{line}");
        // The member heard nothing of it: its next event is the host's next line.
        room.send("still two of us").await;
        let v: serde_json::Value = serde_json::from_str(&m.stdout_line().await).unwrap();
        assert_eq!(v["event"], "message", "{v}");
        assert_eq!(v["text"], "still two of us");
        m.close_stdin();
        m.exit().await;
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// `schat listen` with no --allow is closed: a stranger is refused (exit 4) with a log line
/// that says how to admit it; once added as a peer it gets in. One home on both sides is
/// named as such.
#[tokio::test]
async fn a_listener_admits_only_known_peers_by_default() {
    within(async {
        let (host, stranger) = (Home::new(), Home::new());
        let mut room = host.spawn(&["listen", "127.0.0.1:0"]);
        let line = room.stderr_until("listening on 127.0.0.1:").await;
        let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        room.stderr_until("admitting known peers only").await;

        let mut d = one_line_then_eof(&stranger, port, &[]).await;
        assert_eq!(d.exit().await.code(), Some(4), "{}", d.stderr_text());
        let refusal = room.stderr_until("refused").await;
        assert!(refusal.contains("peers add"), "{refusal}");
        assert!(refusal.contains("--allow anyone"), "{refusal}");

        let added = host.run(&["peers", "add", &stranger.fingerprint(), "stranger"]);
        assert!(added.status.success());
        let mut d = one_line_then_eof(&stranger, port, &[]).await;
        assert!(d.exit().await.success(), "{}", d.stderr_text());
        assert_eq!(room.said().await, "build done");

        // The same home on both sides: the same key.
        let mut me = one_line_then_eof(&host, port, &[]).await;
        assert_eq!(me.exit().await.code(), Some(3), "{}", me.stderr_text());
        assert!(
            me.stderr_text().contains("the listener is you"),
            "{}",
            me.stderr_text()
        );
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// A closed stdout (`schat … | head -c 1`) is reported and fails the command; it never panics.
#[test]
fn a_closed_stdout_is_an_error_not_a_panic() {
    let home = Home::new();
    for args in [
        &["fingerprint"][..],
        &["invite", "--addr", "127.0.0.1:1", "--json"],
    ] {
        // A pipe whose read end is closed before the child starts: nobody reads, whatever the
        // timing (dropping our end after the spawn raced the child's write on a busy machine).
        let (reader, writer) = std::io::pipe().unwrap();
        drop(reader);
        let child = std::process::Command::new(common::bin())
            .arg("--home")
            .arg(home.path())
            .args(args)
            .stdout(writer)
            .stderr(std::process::Stdio::piped())
            .spawn()
            .unwrap();
        let out = child.wait_with_output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {err}");
        assert!(
            err.contains("writing to stdout") && !err.contains("panicked"),
            "{err}"
        );
    }
}

/// A peer that trickles the bytes of a frame, a few a second, and never completes one, is
/// silent as far as keepalive goes: after three intervals it is declared gone (exit 1), as a
/// peer sending nothing would be. (Counting any byte as a sign of life would keep the pipe
/// waiting for ever.)
#[tokio::test]
async fn a_peer_trickling_a_frame_that_never_ends_is_declared_silent() {
    within(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            let mut peer = common::raw::Raw::respond(stream).await;
            peer.send(0x0a, &[0x02]).await; // HELLO, pipe
            peer.send(0x01, b"schat pipe").await; // WELCOME
            let mut sealed = vec![0u8; 1 + 1000 + 16];
            let mut plain = vec![0x09; 1 + 1000];
            plain[0] = 0x09;
            let n = peer.noise.write_message(&plain, &mut sealed).unwrap();
            let mut frame = schat::frame::header(n).unwrap().to_vec();
            frame.extend_from_slice(&sealed[..n]);
            use tokio::io::AsyncWriteExt;
            for byte in frame {
                if peer.w.get_mut().write_all(&[byte]).await.is_err() {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        });
        let home = Home::new();
        let mut d = home.dial(port, &["--pipe", "--keepalive", "1"]);
        d.close_stdin();
        let started = std::time::Instant::now();
        let status = d.exit().await;
        assert_eq!(status.code(), Some(1), "{}", d.stderr_text());
        assert!(
            d.stderr_text().contains("no sign of life from the peer"),
            "{}",
            d.stderr_text()
        );
        assert!(
            started.elapsed() < Duration::from_secs(8),
            "{:?}",
            started.elapsed()
        );
    })
    .await
}

/// Durations are capped with a usage error (exit 2), never a panic (issue 31: `--keepalive
/// 18446744073709551615` overflowed a multiplication, `--timeout` an instant, exit 101).
#[test]
fn huge_durations_are_a_usage_error_not_a_panic() {
    let home = Home::new();
    for args in [
        [
            "listen",
            "127.0.0.1:0",
            "--keepalive",
            "18446744073709551615",
        ],
        ["dial", "127.0.0.1:9", "--timeout", "18446744073709551615"],
        ["dial", "127.0.0.1:9", "--keepalive", "86401"],
        ["listen", "127.0.0.1:0", "--timeout", "0"],
    ] {
        let out = home.run(&args);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {out:?}");
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("86400"), "{args:?}: {said}");
        assert!(!said.contains("panicked"), "{args:?}: {said}");
    }
}

/// A peer that says QUIT and then stops reading while we still have lines to send cannot hold
/// us: the writer gets the write deadline (20 s), then we exit 1 saying so (issue 31: it was
/// awaited without a deadline; over TCP only the user timeout, 91 s by default, ended it, and
/// over iroh nothing did).
#[tokio::test]
async fn a_peer_that_quits_and_stops_reading_cannot_hold_us() {
    within(async {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let (quit_now, quit) = tokio::sync::oneshot::channel::<()>();
        let peer = tokio::spawn(async move {
            let (stream, _) = listener.accept().await.unwrap();
            stream.set_nodelay(true).unwrap();
            let mut peer = common::raw::Raw::respond(stream).await;
            peer.send(0x0a, &[0]).await;
            peer.send(0x01, b"hi").await;
            let _ = quit.await;
            peer.send(0x03, b"").await;
            // …and never reads again, nor closes.
            tokio::time::sleep(Duration::from_secs(80)).await;
            drop(peer);
        });
        let dialer = Home::new();
        let mut d = dialer.dial(port, &[]);
        d.stderr_until("welcome").await;
        // Far more than the socket buffers hold: the writer is stuck when the QUIT comes.
        let mut stdin = d.take_stdin();
        let typing = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            let mut line = "x".repeat(60_000);
            line.push('\n');
            for _ in 0..500 {
                if stdin.write_all(line.as_bytes()).await.is_err() {
                    return;
                }
            }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        let _ = quit_now.send(());
        let started = std::time::Instant::now();
        // (Longer than `exit`'s own wait: the write deadline is 20 s.)
        let status = tokio::time::timeout(Duration::from_secs(40), d.child.wait())
            .await
            .expect("still running 40 s after the peer's QUIT")
            .unwrap();
        let took = started.elapsed();
        d.exit().await;
        assert_eq!(status.code(), Some(1), "{}", d.stderr_text());
        assert!(took < Duration::from_secs(30), "took {took:?}");
        assert!(d.stderr_text().contains("not taken"), "{}", d.stderr_text());
        peer.abort();
        typing.abort();
    })
    .await
}
