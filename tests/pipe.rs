//! Pipe mode end to end: bytes in, the same bytes out, in both directions, with the failure
//! cases that must never look like success.

mod common;

use common::pipe::{Files, PipeProc, stdin_from};
use common::{Home, WAIT, bin, within};
use std::path::Path;
use std::process::Stdio;
use std::time::Duration;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::Command;

/// A pipe listener on a free loopback port that admits `dialer`'s key (with `extra`
/// options), and the address it listens on.
async fn listening(
    home: &Home,
    dialer: &Home,
    extra: &[&str],
    input: Stdio,
    output: &Path,
) -> (PipeProc, String) {
    let key = dialer.fingerprint();
    let mut args = vec!["listen", "127.0.0.1:0", "--pipe", "--peer", &key];
    args.extend_from_slice(extra);
    let mut listener = PipeProc::spawn(home, &args, input, output);
    let line = listener.stderr_until("listening on").await;
    let addr = line.rsplit(' ').next().unwrap().to_string();
    // It says who it admits: the pinned key alone, not "known peers".
    let admitting = listener.stderr_until("admitting").await;
    assert!(
        admitting.contains("admitting only") && admitting.contains(&key[..12]),
        "{admitting}"
    );
    (listener, addr)
}

/// Listener (pipe, once) and dialer exchange two files; returns both exit statuses.
async fn exchange(
    listener_in: &Path,
    listener_out: &Path,
    dialer_in: &Path,
    dialer_out: &Path,
    extra_dial: &[&str],
) -> (PipeProc, PipeProc) {
    let files = [listener_in, listener_out, dialer_in, dialer_out];
    exchange_with_env(files, extra_dial, &[], &[]).await
}

/// As [`exchange`] (files: listener in and out, dialer in and out), with environment
/// variables for each side.
async fn exchange_with_env(
    [listener_in, listener_out, dialer_in, dialer_out]: [&Path; 4],
    extra_dial: &[&str],
    listener_env: &[(&str, &str)],
    dialer_env: &[(&str, &str)],
) -> (PipeProc, PipeProc) {
    let (alice, bob) = (Home::new(), Home::new());
    // The receiver names who may write to it (a pipe refuses unknown dialers by default).
    let alice_key = alice.fingerprint();
    let mut listener = PipeProc::spawn_with_env(
        &bob,
        &["listen", "127.0.0.1:0", "--pipe", "--peer", &alice_key],
        stdin_from(listener_in),
        listener_out,
        listener_env,
    );
    let line = listener.stderr_until("listening on").await;
    let addr = line.rsplit(' ').next().unwrap().to_string();
    let mut args = vec!["dial", addr.as_str(), "--pipe", "--trust", "accept-new"];
    args.extend_from_slice(extra_dial);
    let dialer =
        PipeProc::spawn_with_env(&alice, &args, stdin_from(dialer_in), dialer_out, dialer_env);
    listener.exit().await;
    (listener, dialer)
}

#[tokio::test]
async fn round_trips_every_boundary_size_in_both_directions() {
    within(async {
        let f = Files::new();
        for (i, (up, down)) in [(0, 65519), (1, 65520), (65519, 0), (65520, 1)]
            .into_iter()
            .enumerate()
        {
            let a = f.random(&format!("a{i}"), up);
            let b = f.random(&format!("b{i}"), down);
            let (a_out, b_out) = (f.path(&format!("a{i}.out")), f.path(&format!("b{i}.out")));
            let (mut listener, mut dialer) = exchange(&b, &a_out, &a, &b_out, &[]).await;
            assert!(
                listener.exit().await.success(),
                "{}",
                listener.stderr_text()
            );
            assert!(dialer.exit().await.success(), "{}", dialer.stderr_text());
            assert_eq!(
                std::fs::read(&a).unwrap(),
                std::fs::read(&a_out).unwrap(),
                "up {up}"
            );
            assert_eq!(
                std::fs::read(&b).unwrap(),
                std::fs::read(&b_out).unwrap(),
                "down {down}"
            );
        }
    })
    .await
}

/// Whether each end has AES-256-GCM or not (`SCHAT_NO_AES`, as on a CPU without AES
/// instructions), a pipe moves the same bytes both ways at once, over the thread engine and its
/// keepalive: the dialer's direction switches when both ends offer AES-256-GCM, the
/// listener's when it sends after the dialer's CIPHERS arrived (PROTOCOL.md §4.9), and neither
/// does otherwise, as each side's summary line says.
#[tokio::test]
async fn every_mix_of_ciphers_moves_the_same_bytes() {
    within(async {
        let f = Files::new();
        let a = f.random("a", 3 << 20);
        let b = f.random("b", 3 << 20);
        let on: &[(&str, &str)] = &[];
        let off: &[(&str, &str)] = &[("SCHAT_NO_AES", "1")];
        for (i, (listener_env, dialer_env)) in [(on, on), (off, on), (on, off), (off, off)]
            .into_iter()
            .enumerate()
        {
            let (a_out, b_out) = (f.path(&format!("a{i}.out")), f.path(&format!("b{i}.out")));
            let (mut listener, mut dialer) = exchange_with_env(
                [&b, &a_out, &a, &b_out],
                &["--keepalive", "1"],
                listener_env,
                dialer_env,
            )
            .await;
            assert!(
                listener.exit().await.success(),
                "mix {i}: {}",
                listener.stderr_text()
            );
            assert!(
                dialer.exit().await.success(),
                "mix {i}: {}",
                dialer.stderr_text()
            );
            assert!(
                std::fs::read(&a).unwrap() == std::fs::read(&a_out).unwrap(),
                "mix {i}"
            );
            assert!(
                std::fs::read(&b).unwrap() == std::fs::read(&b_out).unwrap(),
                "mix {i}"
            );
            // This machine runs the binary too: it offers AES-256-GCM unless told not to.
            // What the protocol guarantees (PROTOCOL.md §4.9): with both offering it, the
            // dialer's direction always switches (the listener's CIPHERS comes before its
            // WELCOME, and the dialer sends nothing before WELCOME); the listener's switches
            // only if it still sends something after the dialer's CIPHERS arrived, which a
            // listener that sent everything at once may not. Without both, nothing switches.
            let (dialer_says, listener_says) = (dialer.stderr_text(), listener.stderr_text());
            if i == 0 && schat::cipher::offer_aes_gcm() {
                assert!(
                    dialer_says.contains("/s), AES-256-GCM")
                        || dialer_says
                            .contains("/s), sending AES-256-GCM, receiving ChaCha20-Poly1305"),
                    "mix {i}: {dialer_says}"
                );
                assert!(
                    listener_says.contains("/s), AES-256-GCM")
                        || listener_says
                            .contains("/s), sending ChaCha20-Poly1305, receiving AES-256-GCM"),
                    "mix {i}: {listener_says}"
                );
            } else {
                for side in [listener_says, dialer_says] {
                    assert!(side.contains("/s), ChaCha20-Poly1305"), "mix {i}: {side}");
                }
            }
        }
    })
    .await
}

#[tokio::test]
async fn fifty_mebibytes_each_way_at_once() {
    within(async {
        let f = Files::new();
        let a = f.random("a", 50 << 20);
        let b = f.random("b", 50 << 20);
        let (a_out, b_out) = (f.path("a.out"), f.path("b.out"));
        let (mut listener, mut dialer) = exchange(&b, &a_out, &a, &b_out, &[]).await;
        assert!(
            listener.exit().await.success(),
            "{}",
            listener.stderr_text()
        );
        assert!(dialer.exit().await.success(), "{}", dialer.stderr_text());
        assert!(std::fs::read(&a).unwrap() == std::fs::read(&a_out).unwrap());
        assert!(std::fs::read(&b).unwrap() == std::fs::read(&b_out).unwrap());
        // The summary line, never on stdout.
        assert!(
            dialer
                .stderr_text()
                .contains("sent 50.0 MiB, received 50.0 MiB")
        );
    })
    .await
}

#[tokio::test]
async fn a_half_closed_sender_still_receives_everything() {
    within(async {
        let f = Files::new();
        let empty = f.random("empty", 0);
        let (alice, bob) = (Home::new(), Home::new());
        // The listener's data arrives slowly, long after the dialer has finished sending.
        let mut listener = PipeProc::spawn(
            &bob,
            &["listen", "127.0.0.1:0", "--pipe", "--allow", "anyone"],
            Stdio::piped(),
            &f.path("l.out"),
        );
        let mut feed = listener.child.stdin.take().unwrap();
        let line = listener.stderr_until("listening on").await;
        let addr = line.rsplit(' ').next().unwrap().to_string();
        let mut dialer = PipeProc::spawn(
            &alice,
            &["dial", &addr, "--pipe", "--trust", "accept-new"],
            stdin_from(&empty),
            &f.path("d.out"),
        );
        listener.stderr_until("safety number").await;
        use tokio::io::AsyncWriteExt;
        tokio::time::sleep(Duration::from_millis(500)).await;
        feed.write_all(&vec![7u8; 3_000_000]).await.unwrap();
        tokio::time::sleep(Duration::from_millis(500)).await;
        feed.write_all(b"the end").await.unwrap();
        drop(feed);
        assert!(dialer.exit().await.success(), "{}", dialer.stderr_text());
        assert!(
            listener.exit().await.success(),
            "{}",
            listener.stderr_text()
        );
        let got = std::fs::read(f.path("d.out")).unwrap();
        assert_eq!(got.len(), 3_000_007);
        assert!(got.ends_with(b"the end"));
    })
    .await
}

#[tokio::test]
async fn tar_round_trips_byte_for_byte() {
    within(async {
        let f = Files::new();
        let tree = f.path("tree");
        std::fs::create_dir_all(tree.join("sub")).unwrap();
        for i in 0..20 {
            f.random(&format!("tree/sub/file{i}"), 1000 * i * i);
        }
        let (alice, bob) = (Home::new(), Home::new());
        let archive = f.path("received.tar");
        let mut listener = PipeProc::spawn(
            &bob,
            &[
                "listen",
                "127.0.0.1:0",
                "--pipe",
                "--allow",
                "anyone",
                "--once",
            ],
            Stdio::null(),
            &archive,
        );
        let line = listener.stderr_until("listening on").await;
        let addr = line.rsplit(' ').next().unwrap().to_string();
        let status = tokio::process::Command::new("sh")
            .arg("-c")
            .arg(format!(
                "tar c -C {} tree | {} --home {} dial {addr} --pipe --trust accept-new > /dev/null",
                f.dir.path().display(),
                bin(),
                alice.path().display()
            ))
            .status()
            .await
            .unwrap();
        assert!(status.success());
        assert!(listener.exit().await.success());
        let expected = std::process::Command::new("tar")
            .args(["c", "-C"])
            .arg(f.dir.path())
            .arg("tree")
            .output()
            .unwrap()
            .stdout;
        // tar output is deterministic for the same tree and the same tar.
        assert_eq!(std::fs::read(&archive).unwrap(), expected);
    })
    .await
}

#[tokio::test]
async fn pins_and_key_checks_hold_in_pipe_mode() {
    within(async {
        let f = Files::new();
        let data = f.random("data", 100_000);
        let (alice, bob, carol) = (Home::new(), Home::new(), Home::new());
        let mut listener = PipeProc::spawn(
            &bob,
            &["listen", "127.0.0.1:0", "--pipe", "--allow", "anyone"],
            stdin_from(&data),
            &f.path("l.out"),
        );
        let line = listener.stderr_until("listening on").await;
        let addr = line.rsplit(' ').next().unwrap().to_string();
        let mut dialer = PipeProc::spawn(
            &alice,
            &["dial", &addr, "--pipe", "--peer", &carol.fingerprint()],
            stdin_from(&data),
            &f.path("d.out"),
        );
        assert_eq!(dialer.exit().await.code(), Some(3));
        assert!(dialer.stderr_text().contains("does not match --peer"));
        assert_eq!(std::fs::metadata(f.path("d.out")).unwrap().len(), 0);
        // Unknown key, no terminal to ask: refused too.
        let mut dialer = PipeProc::spawn(
            &alice,
            &["dial", &addr, "--pipe"],
            stdin_from(&data),
            &f.path("d2.out"),
        );
        assert_eq!(dialer.exit().await.code(), Some(3));
        assert_eq!(std::fs::metadata(f.path("d2.out")).unwrap().len(), 0);
        listener.child.start_kill().unwrap();
        listener.exit().await;
        assert_eq!(std::fs::metadata(f.path("l.out")).unwrap().len(), 0);
    })
    .await
}

/// (With a short `--resume-grace`: the peer is gone for good, so resuming gives up, and what
/// is left is the error.)
#[tokio::test]
async fn a_peer_vanishing_mid_stream_is_an_error_not_a_short_success() {
    within(async {
        let f = Files::new();
        let (alice, bob) = (Home::new(), Home::new());
        // The dialer sends an endless stream; the listener is killed part way.
        let mut listener = PipeProc::spawn(
            &bob,
            &[
                "listen",
                "127.0.0.1:0",
                "--pipe",
                "--allow",
                "anyone",
                "--resume-grace",
                "2",
            ],
            Stdio::piped(),
            &f.path("l.out"),
        );
        let _keep_stdin_open = listener.child.stdin.take();
        let line = listener.stderr_until("listening on").await;
        let addr = line.rsplit(' ').next().unwrap().to_string();
        let mut dialer = PipeProc::spawn(
            &alice,
            &[
                "dial",
                &addr,
                "--pipe",
                "--trust",
                "accept-new",
                "--resume-grace",
                "2",
            ],
            Stdio::piped(),
            &f.path("d.out"),
        );
        let mut feed = dialer.child.stdin.take().unwrap();
        use tokio::io::AsyncWriteExt;
        let writer = tokio::spawn(async move {
            let chunk = vec![1u8; 1 << 16];
            while feed.write_all(&chunk).await.is_ok() {}
        });
        tokio::time::sleep(Duration::from_millis(700)).await;
        listener.child.start_kill().unwrap();
        listener.exit().await;
        let status = dialer.exit().await;
        assert!(!status.success(), "{}", dialer.stderr_text());
        assert!(
            dialer.stderr_text().contains("error"),
            "{}",
            dialer.stderr_text()
        );
        writer.abort();

        // The other way round: the receiving side sees the sender vanish.
        let mut listener = PipeProc::spawn(
            &bob,
            &[
                "listen",
                "127.0.0.1:0",
                "--pipe",
                "--allow",
                "anyone",
                "--resume-grace",
                "2",
            ],
            Stdio::piped(),
            &f.path("l2.out"),
        );
        let _keep = listener.child.stdin.take();
        let line = listener.stderr_until("listening on").await;
        let addr = line.rsplit(' ').next().unwrap().to_string();
        let mut dialer = PipeProc::spawn(
            &alice,
            &[
                "dial",
                &addr,
                "--pipe",
                "--trust",
                "accept-new",
                "--resume-grace",
                "2",
            ],
            Stdio::piped(),
            &f.path("d2.out"),
        );
        let mut feed = dialer.child.stdin.take().unwrap();
        feed.write_all(&[9u8; 100_000]).await.unwrap();
        listener.stderr_until("safety number").await;
        tokio::time::sleep(Duration::from_millis(300)).await;
        dialer.child.start_kill().unwrap();
        dialer.exit().await;
        let status = listener.exit().await;
        assert_eq!(status.code(), Some(1), "{}", listener.stderr_text());
        assert!(
            listener.stderr_text().contains("may have been cut"),
            "{}",
            listener.stderr_text()
        );
    })
    .await
}

/// `listen --pipe` writes what it receives: a stranger must not be able to. Unknown dialers
/// are refused (and the listener keeps waiting); a pinned one gets through.
#[tokio::test]
async fn a_pipe_listener_refuses_strangers_by_default() {
    within(async {
        let (stranger, friend, host) = (Home::new(), Home::new(), Home::new());
        let f = Files::new();
        let friend_key = friend.fingerprint();
        let mut listener = PipeProc::spawn(
            &host,
            &["listen", "127.0.0.1:0", "--pipe"],
            Stdio::null(),
            &f.path("received"),
        );
        let line = listener.stderr_until("listening on").await;
        let addr = line.rsplit(' ').next().unwrap().to_string();
        listener.stderr_until("admitting known peers only").await;

        let intruder = f.random("intruder", 1000);
        let mut dialer = PipeProc::spawn(
            &stranger,
            &["dial", &addr, "--pipe", "--trust", "accept-new"],
            stdin_from(&intruder),
            &f.path("stranger.out"),
        );
        assert!(!dialer.exit().await.success(), "{}", dialer.stderr_text());
        assert!(
            dialer.stderr_text().contains("refused"),
            "{}",
            dialer.stderr_text()
        );
        listener.stderr_until("refused the peer").await;
        assert_eq!(std::fs::read(f.path("received")).unwrap().len(), 0);

        // Once the host knows the friend, the friend's bytes arrive.
        let added = host.run(&["peers", "add", &friend_key, "friend"]);
        assert!(added.status.success());
        let payload = f.random("payload", 5000);
        let mut dialer = PipeProc::spawn(
            &friend,
            &["dial", &addr, "--pipe", "--trust", "accept-new"],
            stdin_from(&payload),
            &f.path("friend.out"),
        );
        assert!(
            listener.exit().await.success(),
            "{}",
            listener.stderr_text()
        );
        assert!(dialer.exit().await.success(), "{}", dialer.stderr_text());
        assert_eq!(
            std::fs::read(f.path("received")).unwrap(),
            std::fs::read(&payload).unwrap()
        );
    })
    .await
}

/// Feeds `plan` (chunks, each followed by a pause in ms) into a child's stdin.
fn feed(
    mut stdin: tokio::process::ChildStdin,
    plan: Vec<(Vec<u8>, u64)>,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        use tokio::io::AsyncWriteExt;
        for (chunk, pause) in plan {
            stdin.write_all(&chunk).await.unwrap();
            stdin.flush().await.unwrap();
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    })
}

/// A random plan: chunk sizes from 0 to 70,000 bytes (some just under and over one DATA
/// message), pauses from 0 to 60 ms.
fn random_plan(seed: u64) -> Vec<(Vec<u8>, u64)> {
    use rand::{RngExt, SeedableRng};
    let mut rng = rand::rngs::StdRng::seed_from_u64(seed);
    let sizes = [0usize, 1, 2, 100, 4095, 4096, 65517, 65518, 65519, 70_000];
    (0..rng.random_range(1..12))
        .map(|_| {
            let size = if rng.random_bool(0.5) {
                sizes[rng.random_range(0..sizes.len())]
            } else {
                rng.random_range(0..70_000)
            };
            let chunk: Vec<u8> = (0..size).map(|_| rng.random()).collect();
            (chunk, rng.random_range(0..60))
        })
        .collect()
}

/// Input that arrives in pieces with pauses (`tail -f`, a person typing), both ways at once:
/// every byte arrives, both sides exit 0. A property over random chunkings and pauses, with
/// the first case the finding's `(echo a; sleep .5; echo b)`.
#[tokio::test]
async fn input_in_pieces_with_pauses_arrives_whole_both_ways() {
    within(async {
        let f = Files::new();
        let mut plans = vec![(
            vec![(b"a\n".to_vec(), 500), (b"b\n".to_vec(), 0)],
            vec![(Vec::new(), 0)],
        )];
        for seed in 0..5u64 {
            plans.push((random_plan(seed * 2), random_plan(seed * 2 + 1)));
        }
        for (case, (up, down)) in plans.into_iter().enumerate() {
            let (alice, bob) = (Home::new(), Home::new());
            let alice_key = alice.fingerprint();
            let (l_out, d_out) = (f.path(&format!("l{case}")), f.path(&format!("d{case}")));
            let mut listener = PipeProc::spawn(
                &bob,
                &["listen", "127.0.0.1:0", "--pipe", "--peer", &alice_key],
                Stdio::piped(),
                &l_out,
            );
            let line = listener.stderr_until("listening on").await;
            let addr = line.rsplit(' ').next().unwrap().to_string();
            let mut dialer = PipeProc::spawn(
                &alice,
                &["dial", &addr, "--pipe", "--trust", "accept-new"],
                Stdio::piped(),
                &d_out,
            );
            let expect_up: Vec<u8> = up.iter().flat_map(|(c, _)| c.clone()).collect();
            let expect_down: Vec<u8> = down.iter().flat_map(|(c, _)| c.clone()).collect();
            let a = feed(dialer.child.stdin.take().unwrap(), up);
            let b = feed(listener.child.stdin.take().unwrap(), down);
            a.await.unwrap();
            b.await.unwrap();
            assert!(
                dialer.exit().await.success(),
                "case {case}: {}",
                dialer.stderr_text()
            );
            assert!(
                listener.exit().await.success(),
                "case {case}: {}",
                listener.stderr_text()
            );
            assert!(
                std::fs::read(&l_out).unwrap() == expect_up,
                "case {case}: upload differs"
            );
            assert!(
                std::fs::read(&d_out).unwrap() == expect_down,
                "case {case}: download differs"
            );
        }
    })
    .await
}

/// A receive-only pipe outlives many keepalive intervals of silence, in both orders: the side
/// that sent its QUIT cannot PING any more, so the side still sending keeps it informed.
#[tokio::test]
async fn a_half_closed_pipe_survives_silence_in_both_orders() {
    within(async {
        let f = Files::new();
        for dialer_done_first in [true, false] {
            let (alice, bob) = (Home::new(), Home::new());
            let alice_key = alice.fingerprint();
            let (l_out, d_out) = (f.path("l"), f.path("d"));
            let mut listener = PipeProc::spawn(
                &bob,
                &[
                    "listen",
                    "127.0.0.1:0",
                    "--pipe",
                    "--peer",
                    &alice_key,
                    "--keepalive",
                    "1",
                ],
                if dialer_done_first {
                    Stdio::piped()
                } else {
                    Stdio::null()
                },
                &l_out,
            );
            let line = listener.stderr_until("listening on").await;
            let addr = line.rsplit(' ').next().unwrap().to_string();
            let mut dialer = PipeProc::spawn(
                &alice,
                &[
                    "dial",
                    &addr,
                    "--pipe",
                    "--trust",
                    "accept-new",
                    "--keepalive",
                    "1",
                ],
                if dialer_done_first {
                    Stdio::null()
                } else {
                    Stdio::piped()
                },
                &d_out,
            );
            let (idle_side, idle_out) = if dialer_done_first {
                (&mut listener, &d_out)
            } else {
                (&mut dialer, &l_out)
            };
            let mut idle = idle_side.child.stdin.take().unwrap();
            // Five silent intervals: three would be enough to be declared dead.
            tokio::time::sleep(Duration::from_secs(5)).await;
            use tokio::io::AsyncWriteExt;
            idle.write_all(b"late but whole").await.unwrap();
            drop(idle);
            assert!(dialer.exit().await.success(), "{}", dialer.stderr_text());
            assert!(
                listener.exit().await.success(),
                "{}",
                listener.stderr_text()
            );
            assert_eq!(std::fs::read(idle_out).unwrap(), b"late but whole");
        }
    })
    .await
}

/// A peer that freezes (SIGSTOP: its kernel still holds the connection open) is declared gone
/// after three silent keepalive intervals, whether we are pushing bulk data at it (our writes
/// then block on a full socket, and must be cut short) or only waiting for its bytes. Never a
/// success, never a hang.
#[tokio::test]
async fn a_frozen_peer_is_declared_gone_even_while_we_push_data_at_it() {
    within(async {
        let f = Files::new();
        for pushing in [true, false] {
            let (alice, bob) = (Home::new(), Home::new());
            let (listener, addr) = listening(
                &bob,
                &alice,
                &["--keepalive", "1"],
                Stdio::piped(),
                &f.path("l"),
            )
            .await;
            let mut dialer = PipeProc::spawn(
                &alice,
                &[
                    "dial",
                    &addr,
                    "--pipe",
                    "--trust",
                    "accept-new",
                    "--keepalive",
                    "1",
                    // (Declared gone is what this is about, not what comes after: resuming.)
                    "--no-reconnect",
                ],
                if pushing {
                    stdin_from(Path::new("/dev/zero"))
                } else {
                    Stdio::piped()
                },
                &f.path("d"),
            );
            dialer.stderr_until("secure session established").await;
            tokio::time::sleep(Duration::from_millis(300)).await;
            let pid = listener.child.id().unwrap() as libc::pid_t;
            assert_eq!(unsafe { libc::kill(pid, libc::SIGSTOP) }, 0);
            let frozen = std::time::Instant::now();
            let status = dialer.exit().await;
            let waited = frozen.elapsed();
            unsafe { libc::kill(pid, libc::SIGCONT) };
            assert_eq!(status.code(), Some(1), "{}", dialer.stderr_text());
            assert!(
                dialer
                    .stderr_text()
                    .contains("no sign of life from the peer"),
                "{}",
                dialer.stderr_text()
            );
            // Three intervals of 1 s, plus start-up slack: not the 60 s `exit` allows.
            assert!(waited < Duration::from_secs(10), "took {waited:?}");
        }
    })
    .await
}

/// A pipe whose stdout fails — nobody reads it any more (`schat … | head -c 1`), or the disk is
/// full (`/dev/full`) — has nowhere to put what arrives: the receiver fails with exit 1, never a
/// silent exit 0, never a hang; and since exit 0 means "written out at the other end", the
/// sender exits 1 too, saying why and how much was written (issue 24: the sender exited 0).
#[tokio::test]
async fn a_broken_stdout_fails_both_sides_and_the_sender_says_why() {
    within(async {
        let f = Files::new();
        for full_disk in [false, true] {
            let (alice, bob) = (Home::new(), Home::new());
            let alice_key = alice.fingerprint();
            let stdout = match full_disk {
                true => Stdio::from(std::fs::File::create("/dev/full").unwrap()),
                false => Stdio::piped(),
            };
            let mut listener = Command::new(bin())
                .arg("--home")
                .arg(bob.path())
                .args([
                    "listen",
                    "127.0.0.1:0",
                    "--pipe",
                    "--once",
                    "--peer",
                    &alice_key,
                ])
                .stdin(Stdio::null())
                .stdout(stdout)
                .stderr(Stdio::piped())
                .kill_on_drop(true)
                .spawn()
                .unwrap();
            drop(listener.stdout.take()); // nobody reads
            let mut lines = BufReader::new(listener.stderr.take().unwrap()).lines();
            let addr = loop {
                let line = tokio::time::timeout(WAIT, lines.next_line())
                    .await
                    .unwrap()
                    .unwrap()
                    .expect("the listener ended before listening");
                if line.contains("listening on") {
                    break line.rsplit(' ').next().unwrap().to_string();
                }
            };
            let input = f.random("in", 1_000_000);
            let mut dialer = PipeProc::spawn(
                &alice,
                &["dial", &addr, "--pipe", "--trust", "accept-new"],
                stdin_from(&input),
                &f.path("out"),
            );
            let mut said = Vec::new();
            while let Ok(Some(line)) = tokio::time::timeout(WAIT, lines.next_line()).await.unwrap()
            {
                said.push(line);
            }
            let status = tokio::time::timeout(WAIT, listener.wait())
                .await
                .unwrap()
                .unwrap();
            assert_eq!(status.code(), Some(1), "disk full {full_disk}: {said:#?}");
            assert!(
                said.iter().any(|l| l.contains("writing stdout")
                    && l.contains("the output is incomplete")),
                "disk full {full_disk}: {said:#?}"
            );
            let sender = dialer.exit().await;
            assert_eq!(sender.code(), Some(1), "{}", dialer.stderr_text());
            assert!(
                dialer.stderr_text().contains("writing the output failed"),
                "disk full {full_disk}: {}",
                dialer.stderr_text()
            );
        }
    })
    .await
}

/// A pipe listener that turns a dialer away (here: one in chat mode) goes on to the next with
/// its input whole: nothing of stdin is read, let alone sent, before a session is open. (It
/// used to send its first chunks to the dialer it was about to turn away.)
#[tokio::test]
async fn a_listener_turning_a_dialer_away_keeps_its_input_for_the_next() {
    within(async {
        let f = Files::new();
        let (alice, bob) = (Home::new(), Home::new());
        let input = f.random("in", 1_000_000);
        let (mut listener, addr) =
            listening(&bob, &alice, &[], stdin_from(&input), &f.path("l_out")).await;
        // Chat against pipe: both sides stop at once; the listener carries on.
        let mut chat = PipeProc::spawn(
            &alice,
            &["dial", &addr, "--trust", "accept-new"],
            Stdio::null(),
            &f.path("chat_out"),
        );
        assert_eq!(chat.exit().await.code(), Some(4), "{}", chat.stderr_text());
        listener.stderr_until("chat").await;
        let mut dialer = PipeProc::spawn(
            &alice,
            &["dial", &addr, "--pipe"],
            Stdio::null(),
            &f.path("d_out"),
        );
        assert!(dialer.exit().await.success(), "{}", dialer.stderr_text());
        assert!(
            listener.exit().await.success(),
            "{}",
            listener.stderr_text()
        );
        assert!(
            std::fs::read(f.path("d_out")).unwrap() == std::fs::read(&input).unwrap(),
            "the second dialer did not get the listener's input whole"
        );
    })
    .await
}

/// Ctrl-C (or SIGTERM) stops a pipe in the middle of a transfer, at once and never with exit 0,
/// and the peer learns from a QUIT that the transfer failed. (Signals used to be caught and
/// then ignored for the whole transfer: only SIGKILL ended a pipe.)
#[tokio::test]
async fn a_signal_stops_a_pipe_and_the_peer_hears_it_failed() {
    within(async {
        let f = Files::new();
        for (signal, name) in [(libc::SIGINT, "interrupted"), (libc::SIGTERM, "terminated")] {
            let (alice, bob) = (Home::new(), Home::new());
            let (mut listener, addr) =
                listening(&bob, &alice, &[], Stdio::piped(), &f.path("l_out")).await;
            let mut dialer = PipeProc::spawn(
                &alice,
                &["dial", &addr, "--pipe", "--trust", "accept-new"],
                Stdio::piped(),
                &f.path("d_out"),
            );
            dialer.stderr_until("secure session established").await;
            // Some bytes on their way, and the input still open: mid-transfer.
            use tokio::io::AsyncWriteExt;
            let mut input = dialer.child.stdin.take().unwrap();
            input.write_all(&[7; 100_000]).await.unwrap();
            tokio::time::sleep(Duration::from_millis(300)).await;
            let pid = dialer.child.id().unwrap() as libc::pid_t;
            let sent = std::time::Instant::now();
            assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
            let status = dialer.exit().await;
            assert!(
                sent.elapsed() < Duration::from_secs(5),
                "{:?}",
                sent.elapsed()
            );
            assert_eq!(status.code(), Some(1), "{}", dialer.stderr_text());
            assert!(
                dialer.stderr_text().contains(&format!(
                    "{name}: the pipe stopped before the transfer finished"
                )),
                "{}",
                dialer.stderr_text()
            );
            assert_eq!(
                listener.exit().await.code(),
                Some(1),
                "{}",
                listener.stderr_text()
            );
            assert!(
                listener.stderr_text().contains(&format!("aborted: {name}")),
                "{}",
                listener.stderr_text()
            );
            drop(input);
        }
    })
    .await
}

/// A pipe stopped by a signal before its session began never sent its input: exit 1, whether
/// it is a listener still waiting for a peer or a dialer still handshaking. (Both exited 0:
/// `tar c dir | schat dial … --pipe` then Ctrl-C read as a success.)
#[tokio::test]
async fn a_pipe_interrupted_before_its_session_is_not_a_success() {
    within(async {
        let f = Files::new();
        let (alice, bob) = (Home::new(), Home::new());
        let input = f.random("in", 1000);
        for signal in ["INT", "TERM"] {
            // A listener nobody dialled.
            let (mut listener, _addr) =
                listening(&bob, &alice, &[], stdin_from(&input), &f.path("l_out")).await;
            let pid = listener.child.id().unwrap().to_string();
            assert!(
                std::process::Command::new("kill")
                    .args([&format!("-{signal}"), &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            assert_eq!(
                listener.exit().await.code(),
                Some(1),
                "{}",
                listener.stderr_text()
            );
            // A dialer whose listener never answers the handshake.
            let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let addr = silent.local_addr().unwrap().to_string();
            let mut dialer = PipeProc::spawn(
                &alice,
                &["dial", &addr, "--pipe", "--trust", "accept-new"],
                stdin_from(&input),
                &f.path("d_out"),
            );
            dialer.stderr_until("handshaking").await;
            let pid = dialer.child.id().unwrap().to_string();
            assert!(
                std::process::Command::new("kill")
                    .args([&format!("-{signal}"), &pid])
                    .status()
                    .unwrap()
                    .success()
            );
            assert_eq!(
                dialer.exit().await.code(),
                Some(1),
                "{}",
                dialer.stderr_text()
            );
            assert!(
                dialer
                    .stderr_text()
                    .contains("the pipe stopped before the transfer finished"),
                "{}",
                dialer.stderr_text()
            );
        }
    })
    .await
}

/// Pipe endings and progress, as people see them (issue 26): with the size known the progress
/// line shows how far along and the time left; a listener that turned a dialer away prints no
/// `sent 0 B` summary; `--peer` with 12 digits says they identify but do not pin.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pipe_progress_knows_the_size_and_endings_say_what_happened() {
    within(async {
        let f = Files::new();
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, addr) =
            listening(&bob, &alice, &[], Stdio::null(), &f.path("l_out")).await;
        // A chat dialer first: turned away, and no summary of nothing on the listener.
        let mut chat = PipeProc::spawn(
            &alice,
            &["dial", &addr, "--trust", "accept-new"],
            Stdio::null(),
            &f.path("chat_out"),
        );
        assert_eq!(chat.exit().await.code(), Some(4));
        listener.stderr_until("chat").await;
        // Then a pipe whose sender knows the size, at a terminal: 30 % sent, then a pause.
        let script = format!(
            "(head -c 300000 /dev/zero; sleep 3; head -c 700000 /dev/zero) | {} --home {} dial \
             {addr} --pipe --size 1000000 > /dev/null",
            common::bin(),
            alice.path().display()
        );
        let mut cmd = std::process::Command::new("sh");
        cmd.args(["-c", &script]);
        let mut t = common::term::Term::spawn_command(cmd, 10, 100, 100);
        tokio::task::block_in_place(|| {
            t.until("a percentage and the time left", |s| {
                let text = s.contents();
                text.contains("of 976.6 KiB (") && text.contains("%, ") && text.contains(" left)")
            });
        });
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0));
        assert!(
            listener.exit().await.success(),
            "{}",
            listener.stderr_text()
        );
        let summaries = listener
            .seen
            .iter()
            .filter(|l| l.contains("sent ") && l.contains("received "))
            .count();
        assert_eq!(summaries, 1, "{}", listener.stderr_text());
        assert!(!listener.stderr_text().contains("sent 0 B, received 0 B"));
        // 12 digits are not a pin.
        let out = alice.run(&["dial", &addr, "--pipe", "--peer", &bob.fingerprint()[..12]]);
        assert_eq!(out.status.code(), Some(2));
        let said = String::from_utf8_lossy(&out.stderr);
        assert!(said.contains("identify a key but do not pin it"), "{said}");
    })
    .await
}
