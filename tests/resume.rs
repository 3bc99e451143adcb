//! Conversations that survive the network (PROTOCOL.md §4.11), through the real binary and a
//! proxy on loopback that cuts, blackholes and refuses connections on command: the dialer dials
//! again, the room keeps its place, and every message is shown exactly once, in order.

mod common;

use common::proxy::Proxy;
use common::{Home, Proc, within};
use std::time::Duration;

/// Reads `n` message lines from `p` (plain mode: `LABEL: text`), returning the texts.
async fn said(p: &mut Proc, n: usize) -> Vec<String> {
    let mut out = Vec::with_capacity(n);
    for _ in 0..n {
        out.push(p.said().await);
    }
    out
}

/// A host (`listen` with `host_args`) and Alice dialling it through a proxy (with
/// `dial_args`), welcomed. The homes are returned so that they outlive the processes.
async fn through_proxy(host_args: &[&str], dial_args: &[&str]) -> (Proc, Proc, Proxy, [Home; 2]) {
    let (host, alice) = (Home::new(), Home::new());
    let (room, port) = host.listen(host_args).await;
    let proxy = Proxy::start(port).await;
    let mut a = alice.dial(proxy.port, dial_args);
    a.stderr_until("welcome").await;
    (room, a, proxy, [host, alice])
}

/// A host and one member through a proxy, both typing; the proxy cuts the connection 20 times,
/// each time while lines are on their way. Every line arrives once, in order, and the member
/// leaves cleanly at the end.
#[tokio::test]
async fn twenty_cuts_lose_nothing_and_repeat_nothing() {
    within(async {
        let (mut room, mut a, proxy, _homes) = through_proxy(&["--once"], &[]).await;
        let (mut to_host, mut to_alice) = (Vec::new(), Vec::new());
        for i in 0..20 {
            let (up, down) = (format!("alice {i}"), format!("host {i}"));
            a.send(&up).await;
            room.send(&down).await;
            to_host.push(up);
            to_alice.push(down);
            proxy.cut();
            a.stderr_until("reconnected").await;
        }
        a.send("last").await;
        to_host.push("last".into());
        assert_eq!(said(&mut room, to_host.len()).await, to_host);
        assert_eq!(said(&mut a, to_alice.len()).await, to_alice);
        a.close_stdin();
        let status = a.exit().await;
        assert!(status.success(), "{}", a.stderr_text());
        assert!(room.exit().await.success(), "{}", room.stderr_text());
        // Nothing more was shown on either side.
        assert_eq!(
            room.stdout_seen.len(),
            to_host.len(),
            "{:?}",
            room.stdout_seen
        );
        assert_eq!(a.stdout_seen.len(), to_alice.len(), "{:?}", a.stdout_seen);
        assert!(proxy.accepted.load(std::sync::atomic::Ordering::Relaxed) >= 21);
    })
    .await
}

/// A path that goes dead without a reset (packets dropped) for 30 s, far longer than the
/// keepalive allows: both sides notice, the dialer keeps trying (its attempts hang in the
/// blackhole and time out), and once the path is back the same conversation goes on, with
/// what was typed meanwhile.
#[tokio::test]
async fn a_blackholed_path_resumes_when_it_comes_back() {
    within(async {
        let quick = ["--keepalive", "1", "--timeout", "2"];
        let room_args = [&["--once"][..], &quick].concat();
        let (mut room, mut a, proxy, _homes) = through_proxy(&room_args, &quick).await;
        a.send("before").await;
        assert_eq!(room.said().await, "before");
        proxy.blackhole(true);
        let restore = tokio::time::Instant::now() + Duration::from_secs(30);
        a.send("during").await;
        room.send("while you were away").await;
        a.stderr_until("connection lost").await;
        room.stderr_until("keeping its place").await;
        tokio::time::sleep_until(restore).await;
        proxy.blackhole(false);
        a.stderr_until("reconnected").await;
        a.send("after").await;
        assert_eq!(said(&mut room, 2).await, ["during", "after"]);
        assert_eq!(a.said().await, "while you were away");
        a.close_stdin();
        assert!(a.exit().await.success(), "{}", a.stderr_text());
        assert!(room.exit().await.success(), "{}", room.stderr_text());
    })
    .await
}

/// A cut that is never repaired: after the grace period the dialer gives up, exit 1, saying
/// how many lines were never confirmed; the host lets the member go.
#[tokio::test]
async fn a_cut_never_repaired_is_exit_1_after_the_grace_period() {
    within(async {
        let grace = ["--resume-grace", "2"];
        let room_args = [&["--once"][..], &grace].concat();
        let (mut room, mut a, proxy, _homes) = through_proxy(&room_args, &grace).await;
        proxy.refuse(true);
        proxy.cut();
        a.stderr_until("reconnecting").await;
        a.send("into the void").await;
        let status = a.exit().await;
        assert_eq!(status.code(), Some(1), "{}", a.stderr_text());
        let err = a.stderr_text();
        assert!(err.contains("could not reconnect within 2 s"), "{err}");
        assert!(err.contains("1 line never confirmed"), "{err}");
        assert_eq!(room.exit().await.code(), Some(1), "{}", room.stderr_text());
        assert!(
            room.stderr_text().contains("left"),
            "{}",
            room.stderr_text()
        );
    })
    .await
}

/// Someone else (another key, a made-up token) asking to resume gets `gone:`, and the real
/// session goes on untouched.
#[tokio::test]
async fn a_resume_by_anyone_else_is_refused() {
    within(async {
        let (host, alice) = (Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        let mut a = alice.dial(port, &[]);
        a.stderr_until("welcome").await;
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut stranger = common::raw::Raw::initiate(stream).await.unwrap();
        let mut resume = vec![7u8; 32];
        resume.extend_from_slice(&0u64.to_be_bytes());
        stranger.send(0x14, &resume).await;
        stranger.send(0x0a, &[0x00]).await;
        room.stderr_until("refused a resume").await;
        stranger.drain().await;
        a.send("still here").await;
        assert_eq!(room.said().await, "still here");
        a.close_stdin();
        assert!(a.exit().await.success(), "{}", a.stderr_text());
        room.signal("INT");
        assert!(room.exit().await.success(), "{}", room.stderr_text());
    })
    .await
}

/// However long the network was away, the conversation resumes soon after it is back (the
/// delay between attempts is bounded): printed, and bounded loosely here.
#[tokio::test]
async fn the_conversation_resumes_soon_after_the_network_is_back() {
    within(async {
        let (mut room, mut a, proxy, _homes) = through_proxy(&["--once"], &[]).await;
        proxy.refuse(true);
        proxy.cut();
        a.stderr_until("reconnecting").await;
        // Long enough for the delay between attempts to reach its bound.
        tokio::time::sleep(Duration::from_secs(6)).await;
        proxy.refuse(false);
        let back = std::time::Instant::now();
        a.stderr_until("reconnected").await;
        let took = back.elapsed();
        println!(
            "resumed {:.2} s after the network came back",
            took.as_secs_f64()
        );
        assert!(took < Duration::from_secs(8), "{took:?}");
        a.send("hello again").await;
        assert_eq!(room.said().await, "hello again");
        a.close_stdin();
        assert!(a.exit().await.success(), "{}", a.stderr_text());
        assert!(room.exit().await.success());
    })
    .await
}

/// `--no-reconnect`: a cut ends the dial at once, as before resuming existed.
#[tokio::test]
async fn no_reconnect_ends_at_the_first_cut() {
    within(async {
        let (mut room, mut a, proxy, _homes) =
            through_proxy(&["--resume-grace", "1"], &["--no-reconnect"]).await;
        proxy.cut();
        let status = a.exit().await;
        assert_eq!(status.code(), Some(1), "{}", a.stderr_text());
        assert!(
            a.stderr_text().contains("may have been cut"),
            "{}",
            a.stderr_text()
        );
        room.signal("INT");
        room.exit().await;
    })
    .await
}

/// A room of ten members, each through its own proxy; three are cut (one twice) while the
/// host and every member talk. Every member shows every line meant for it exactly once, and
/// the host every member's, however the cuts fall.
#[tokio::test]
async fn a_room_where_members_drop_and_resume_loses_nothing() {
    within(async {
        const MEMBERS: usize = 10;
        let host = Home::new();
        let (mut room, port) = host.listen(&["--max-peers", "10"]).await;
        let homes: Vec<Home> = (0..MEMBERS).map(|_| Home::new()).collect();
        let mut proxies = Vec::new();
        let mut members = Vec::new();
        for (i, home) in homes.iter().enumerate() {
            let proxy = Proxy::start(port).await;
            let mut m = home.dial(proxy.port, &[]);
            m.stderr_until("welcome").await;
            room.stderr_until(&format!("{} in the room", i + 1)).await;
            proxies.push(proxy);
            members.push(m);
        }
        // Each member's own lines must never come back to it.
        let mut expected: Vec<Vec<String>> = vec![Vec::new(); MEMBERS];
        let mut host_expected = Vec::new();
        for round in 0..3 {
            let line = format!("host {round}");
            room.send(&line).await;
            for seen in expected.iter_mut() {
                seen.push(line.clone());
            }
            for (i, m) in members.iter_mut().enumerate() {
                let line = format!("member {i} {round}");
                m.send(&line).await;
                host_expected.push(line.clone());
                for (j, seen) in expected.iter_mut().enumerate() {
                    if j != i {
                        seen.push(line.clone());
                    }
                }
            }
            // (The lines are on their way when the cuts land.)
            proxies[1].cut();
            if round < 2 {
                proxies[4].cut();
            }
            if round == 1 {
                proxies[7].cut();
            }
        }
        for (m, want) in members.iter_mut().zip(expected.iter_mut()) {
            let mut got = Vec::new();
            for _ in 0..want.len() {
                got.push(m.said().await);
            }
            got.sort();
            want.sort();
            assert_eq!(&got, want);
        }
        let mut got = Vec::new();
        for _ in 0..host_expected.len() {
            got.push(room.said().await);
        }
        got.sort();
        host_expected.sort();
        assert_eq!(got, host_expected);
        for m in members.iter_mut() {
            m.close_stdin();
            assert!(m.exit().await.success(), "{}", m.stderr_text());
            // Nothing more was shown: no line twice.
            assert_eq!(m.stdout_seen.len(), 3 * MEMBERS, "{:?}", m.stdout_seen);
        }
        room.signal("INT");
        assert!(room.exit().await.success(), "{}", room.stderr_text());
        assert_eq!(
            room.stdout_seen.len(),
            3 * MEMBERS,
            "{:?}",
            room.stdout_seen
        );
    })
    .await
}

/// A one-to-one room (`--max-peers 1`) whose member's path dies without the host noticing
/// (its side is silent, not closed): the member comes back over a new path and is let in,
/// though the room is full, and resumes.
#[tokio::test]
async fn a_full_room_takes_its_member_back_before_noticing_the_cut() {
    within(async {
        let (mut room, mut a, proxy, _homes) =
            through_proxy(&["--max-peers", "1"], &["--keepalive", "1"]).await;
        proxy.freeze();
        a.send("through the new path").await;
        a.stderr_until("reconnected").await;
        assert_eq!(room.said().await, "through the new path");
        a.close_stdin();
        assert!(a.exit().await.success(), "{}", a.stderr_text());
        room.signal("INT");
        assert!(room.exit().await.success(), "{}", room.stderr_text());
    })
    .await
}

/// A script piping in more lines while the connection is down than the dialer keeps for the
/// peer: it stops reading instead of dropping them, and every line arrives once resumed.
#[tokio::test]
async fn lines_piped_in_while_away_are_all_delivered() {
    within(async {
        let (mut room, mut a, proxy, _homes) = through_proxy(&["--once"], &[]).await;
        proxy.refuse(true);
        proxy.cut();
        a.stderr_until("reconnecting").await;
        let n = 5000;
        let mut stdin = a.take_stdin();
        let typing = tokio::spawn(async move {
            use tokio::io::AsyncWriteExt;
            for i in 0..n {
                if stdin
                    .write_all(format!("line {i}\n").as_bytes())
                    .await
                    .is_err()
                {
                    return;
                }
            }
        });
        tokio::time::sleep(Duration::from_secs(2)).await;
        proxy.refuse(false);
        for i in 0..n {
            assert_eq!(room.said().await, format!("line {i}"));
        }
        typing.await.unwrap();
        let status = a.exit().await;
        assert!(status.success(), "{}", a.stderr_text());
        assert!(!a.stderr_text().contains("not kept"), "{}", a.stderr_text());
        assert!(room.exit().await.success());
    })
    .await
}

/// Our own stdout failing (its reader went away) is not the network: no reconnecting, and
/// the dial ends with the error.
#[tokio::test]
async fn a_closed_stdout_is_not_a_cut() {
    within(async {
        let (host, alice) = (Home::new(), Home::new());
        let (mut room, port) = host.listen(&[]).await;
        let mut child = tokio::process::Command::new(common::bin())
            .args(["--home", &alice.path().display().to_string()])
            .args([
                "dial",
                &format!("127.0.0.1:{port}"),
                "--trust",
                "accept-new",
            ])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .unwrap();
        // Nobody reads what it shows.
        drop(child.stdout.take());
        room.stderr_until("joined").await;
        for i in 0..20 {
            room.send(&format!("hello {i}")).await;
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        let out = tokio::time::timeout(Duration::from_secs(20), child.wait_with_output())
            .await
            .expect("the dialer kept going")
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{err}");
        assert!(err.contains("writing to stdout"), "{err}");
        assert!(!err.contains("reconnecting"), "{err}");
        room.signal("INT");
        room.exit().await;
    })
    .await
}
