//! What the terminal *shows*: the real dialer runs on a pseudo-terminal of a known size, every
//! byte it writes is fed to a terminal emulator model (`vt100`), and the tests assert on the
//! resulting screen rows, not on the bytes: peer text can never make a row that looks like one
//! of ours, and a flood while a typed line waits stays bounded and is printed once.

mod common;

use common::term::{Term, digits, looks_like_status, message_head, prompt, shows};
use common::{Home, within};
use std::time::{Duration, Instant};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_status_rows_are_impossible() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        const COLS: u16 = 60;
        let addr = format!("127.0.0.1:{port}");
        // Tall enough that nothing scrolls away (and the scrollback is read as well).
        let mut t = Term::spawn(
            &alice,
            &["dial", &addr, "--trust", "accept-new"],
            60,
            COLS,
            1000,
        );
        t.until("the welcome", |s| shows(s, "elcome"));

        let forged = "-- peer: alice (safety number compared) FORGED";
        // Every amount of padding around the width, so that for one of them the `--` would
        // land exactly at column 0 of the next row if the terminal did the wrapping.
        let mut hostile: Vec<String> = (20..=80)
            .map(|n| format!("x{}{forged}", " ".repeat(n)))
            .collect();
        // Padding that takes no columns, and tabs, and spaces short of the collapse limit.
        hostile.push(format!("x{}{forged}", "\u{200b}".repeat(60)));
        hostile.push(format!("x{}{forged}", "\u{200b}".repeat(53)));
        for n in 4..=16 {
            hostile.push(format!("x{}{forged}", "\t".repeat(n)));
        }
        hostile.push(format!("x{}{forged}", "ab      ".repeat(7)));
        for n in 20..=60 {
            hostile.push(format!("{}!! FORGED warning", "y".repeat(n)));
        }
        hostile.push("schat: peer: FORGED".to_string());
        for line in &hostile {
            listener.send(line).await;
        }
        listener.send("END").await;
        tokio::task::block_in_place(|| {
            t.until("END", |s| {
                s.rows(0, COLS).any(|r| r.trim_end().ends_with("> END"))
            })
        });

        let rows = t.all_rows();
        let screen = rows.join("\n");
        let forged_rows: Vec<&String> = rows.iter().filter(|r| r.contains("FORGED")).collect();
        assert!(!forged_rows.is_empty(), "no FORGED text shown at all:\n{screen}");
        for row in &rows {
            assert!(
                !(looks_like_status(row) && row.contains("FORGED")),
                "peer text forged a status row {row:?}; the screen:\n{screen}"
            );
        }
        for row in forged_rows {
            assert!(
                message_head(row) || row.starts_with("  "),
                "peer text at the start of a row, outside the margin: {row:?}; the screen:\n{screen}"
            );
        }
        // Invisible padding is shown, not hidden.
        assert!(screen.contains("\\u{200b}"), "{screen}");

        t.type_line("quit");
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0), "the screen:\n{}", t.all_rows().join("\n"));
        assert!(listener.exit().await.success());
    })
    .await
}

#[tokio::test]
async fn plain_mode_labels_every_message() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&["--once"]).await;
        let mut dialer = alice.dial(port, &[]);
        dialer.stderr_until_any(|l| l.contains("elcome")).await;
        listener.send("schat: peer: alice FORGED").await;
        let line = dialer.stdout_line().await;
        assert!(!line.starts_with("schat:"), "{line:?}");
        let (label, text) = line.split_once(": ").expect("a `LABEL: text` line");
        assert!(!label.is_empty() && !label.contains("schat"), "{line:?}");
        assert_eq!(text, "schat: peer: alice FORGED", "{line:?}");
        dialer.close_stdin();
        dialer.exit().await;
        listener.exit().await;
    })
    .await
}

/// A peer that completes the handshake as listener, sends WELCOME, waits for `go`, then
/// floods `count` TEXT messages of `size` bytes each (`msgNNNNN ` then letters), reading
/// nothing the dialer sends until the flood is over. Its receive buffer is small.
async fn flooding_listener(count: usize, size: usize) -> (u16, tokio::sync::oneshot::Sender<()>) {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    // Small segments keep the dialer's send buffer small as well, so a few dozen typed lines
    // fill everything between its queue and this socket.
    socket2::SockRef::from(&socket).set_tcp_mss(536).unwrap();
    socket.bind("127.0.0.1:0".parse().unwrap()).unwrap();
    let listener = socket.listen(1).unwrap();
    let port = listener.local_addr().unwrap().port();
    let (go, go_rx) = tokio::sync::oneshot::channel::<()>();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = common::raw::Raw::respond(stream).await;
        peer.send(0x0a, &[0x00]).await;
        peer.send(0x01, b"welcome from the flood").await;
        // PINGs with big bodies, never reading the PONGs: the dialer's socket buffers (which
        // grow to megabytes on loopback) and its outgoing queue fill with its own answers, so
        // the next line typed stays pending.
        for _ in 0..80 {
            peer.send(0x04, &[b'p'; 60_000]).await;
        }
        let _ = go_rx.await;
        let letters: Vec<u8> = (0..size).map(|i| b'a' + (i % 26) as u8).collect();
        for i in 0..count {
            let mut body = format!("msg{i:05} ").into_bytes();
            body.extend_from_slice(&letters[body.len()..]);
            if !peer.send(0x02, &body).await {
                return;
            }
        }
        // Flood over: now read (and discard) what the dialer sends, so its unsent lines go
        // out and anything it held back is shown; a message held twice would show up now.
        peer.drain().await;
    });
    (port, go)
}

/// VmRSS of a process, in KiB.
fn rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

/// Message markers (`msgNNNNN`) and echoes of typed lines (`<you> typedNNNN`) found in the
/// output stream, in order, across chunk boundaries.
#[derive(Default)]
struct Markers {
    carry: Vec<u8>,
    seen: Vec<u32>,
    echoes: Vec<u32>,
}

impl Markers {
    fn scan(&mut self, chunk: &[u8]) {
        const ECHO: &[u8] = b"<you> typed";
        let mut data = std::mem::take(&mut self.carry);
        data.extend_from_slice(chunk);
        let mut i = 0;
        while i + ECHO.len() + 4 <= data.len() {
            if &data[i..i + 3] == b"msg" && digits(&data[i + 3..i + 8]) {
                let n = std::str::from_utf8(&data[i + 3..i + 8]).unwrap();
                self.seen.push(n.parse().unwrap());
                i += 8;
            } else if data[i..].starts_with(ECHO) && digits(&data[i + ECHO.len()..][..4]) {
                let n = std::str::from_utf8(&data[i + ECHO.len()..][..4]).unwrap();
                self.echoes.push(n.parse().unwrap());
                i += ECHO.len() + 4;
            } else {
                i += 1;
            }
        }
        self.carry = data[i..].to_vec();
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flood_while_a_line_is_pending_stays_bounded_and_prints_once() {
    within(async {
        // The finding's reproduction: 2,000 × 50 KB while a typed line is pending.
        const COUNT: usize = 2000;
        const SIZE: usize = 50_000;
        const COLS: u16 = 200;
        let alice = Home::new();
        let (port, go) = flooding_listener(COUNT, SIZE).await;
        let addr = format!("127.0.0.1:{port}");
        let mut t = Term::spawn(
            &alice,
            &["dial", &addr, "--trust", "accept-new"],
            24,
            COLS,
            0,
        );
        let markers = std::rc::Rc::new(std::cell::RefCell::new(Markers::default()));
        let tap = markers.clone();
        t.tap = Some(Box::new(move |chunk| tap.borrow_mut().scan(chunk)));
        let (pid, max_rss, typed, elapsed) = tokio::task::block_in_place(|| {
            t.until("the welcome", |s| shows(s, "welcome from the flood"));
            let pid = t.pid();
            // Type lines until one is taken by the editor but no longer sent (echoed): the
            // peer reads nothing, so the outgoing queue and the socket buffers are full (of
            // PONGs, see `flooding_listener`), and that line stays pending. One line at a time,
            // so that a line not yet echoed is not mistaken for a pending one. Pending
            // means: not echoed, and the prompt is empty again (the editor took the line).
            let filler = "z".repeat(100);
            let mut typed = 0;
            let deadline = Instant::now() + Duration::from_secs(60);
            loop {
                typed += 1;
                t.type_line(&format!("typed{typed:04} {filler}"));
                let mut echoed = false;
                for _ in 0..3 {
                    let until = Instant::now() + Duration::from_millis(500);
                    while Instant::now() < until {
                        t.pump(Duration::from_millis(25));
                        if markers.borrow().echoes.contains(&(typed as u32)) {
                            echoed = true;
                            break;
                        }
                    }
                    if echoed || prompt(t.parser.screen()).as_deref() == Some(">") {
                        break;
                    }
                    // Ctrl-E (end of line) changes nothing; kept from the days of an
                    // editor that stalled on fast input.
                    t.keys.send(b"\x05".to_vec()).unwrap();
                }
                if !echoed {
                    assert_eq!(
                        prompt(t.parser.screen()).as_deref(),
                        Some(">"),
                        "line {typed} neither sent nor taken by the editor:\n{}",
                        t.parser.screen().contents()
                    );
                    break;
                }
                assert!(
                    Instant::now() < deadline,
                    "typed {typed} lines and every one was sent"
                );
            }
            eprintln!("typed {typed} lines; the last was never sent");
            // A line is pending. Now the flood.
            go.send(()).unwrap();
            let start = Instant::now();
            let mut max_rss = 0;
            let last = format!("msg{:05}", COUNT - 1);
            let deadline = start + Duration::from_secs(60);
            loop {
                t.pump(Duration::from_millis(100));
                if let Some(rss) = rss_kib(pid) {
                    max_rss = max_rss.max(rss);
                }
                if markers.borrow().seen.last() == Some(&((COUNT - 1) as u32)) {
                    break;
                }
                assert!(
                    Instant::now() < deadline && !t.closed,
                    "the flood did not reach {last} in time ({} markers seen, {} bytes); the screen:\n{}",
                    markers.borrow().seen.len(),
                    t.bytes,
                    t.parser.screen().contents()
                );
            }
            // The peer reads once its flood is over: the pending line goes out (its echo may
            // come before the flood's last rows), and anything shown late (a second copy)
            // arrives too.
            let until = Instant::now() + Duration::from_secs(10);
            while Instant::now() < until && !markers.borrow().echoes.contains(&(typed as u32)) {
                t.pump(Duration::from_millis(100));
            }
            t.pump(Duration::from_millis(1500));
            if let Some(rss) = rss_kib(pid) {
                max_rss = max_rss.max(rss);
            }
            (pid, max_rss, typed, start.elapsed())
        });
        let seen = markers.borrow().seen.clone();
        eprintln!(
            "flood: {COUNT} x {SIZE} B in {elapsed:?}, {} bytes to the terminal; dialer {pid} \
             max VmRSS {max_rss} KiB; {typed} lines typed, the last pending during the flood",
            t.bytes
        );
        let expected: Vec<u32> = (0..COUNT as u32).collect();
        if seen != expected {
            let mut counts = std::collections::BTreeMap::new();
            for n in &seen {
                *counts.entry(*n).or_insert(0) += 1;
            }
            let twice: Vec<_> = counts.iter().filter(|(_, c)| **c > 1).take(10).collect();
            let out_of_order = seen.windows(2).position(|w| w[1] <= w[0]);
            panic!(
                "each message once and in order: {} markers for {COUNT} messages; \
                 shown more than once: {twice:?}; first out of order at {out_of_order:?}",
                seen.len()
            );
        }
        // Nothing typed is lost: every line was sent (and echoed) once, the pending one last.
        let echoes = markers.borrow().echoes.clone();
        let typed_lines: Vec<u32> = (1..=typed as u32).collect();
        assert_eq!(echoes, typed_lines, "typed lines echoed (sent) once each, in order");
        assert!(
            max_rss < 40 * 1024,
            "the dialer grew to {max_rss} KiB during the flood"
        );
        // On the screen, the flood's rows are message heads or margin-indented continuations.
        let rows = t.all_rows();
        for row in rows.iter().filter(|r| r.contains("abcdefghij")) {
            assert!(message_head(row) || row.starts_with("  "), "{row:?}");
        }
        // The pending line goes out once the flood is over and we quit.
        t.type_line("quit");
        drop(t);
    })
    .await
}

/// A host at a terminal sees an unknown dialer knock (fingerprint, safety number, a question)
/// and answers: y admits, a petname admits and remembers, n refuses.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_host_answers_knocks_at_the_terminal() {
    within(async {
        let host = Home::new();
        let mut t = Term::spawn(&host, &["listen", "127.0.0.1:0"], 40, 100, 1000);
        let port: u16 = tokio::task::block_in_place(|| t.listening_port());

        // y: admitted.
        let (alice, bob, mallory) = (Home::new(), Home::new(), Home::new());
        let mut a = alice.dial(port, &[]);
        tokio::task::block_in_place(|| {
            t.until("the knock", |s| {
                shows(s, "knock:") && shows(s, "y / n / y NAME")
            });
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            assert!(shows(t.parser.screen(), "safety number"));
            t.type_line("y");
        });
        a.stderr_until("welcome").await;
        tokio::task::block_in_place(|| t.until("the join", |s| shows(s, "joined (1 in the room)")));

        // A bare word is not taken for a petname (it could be a fragment of a line the host
        // was typing); `y NAME` admits and remembers.
        let mut b = bob.dial(port, &[]);
        let knock = format!("knock: unverified {}", &bob.fingerprint()[..12]);
        tokio::task::block_in_place(|| {
            t.until("the second knock", |s| shows(s, &knock));
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            t.type_line("orrow");
            t.until("the hint", |s| shows(s, "answer y (admit), y NAME"));
            t.type_line("y bobby");
        });
        b.stderr_until("welcome").await;
        let known = std::fs::read_to_string(host.path().join("known_peers")).unwrap();
        assert!(
            known.contains("bobby") && known.contains(&bob.fingerprint()),
            "{known}"
        );

        // n: refused, and the dialer knows it was turned away.
        let mut m = mallory.dial(port, &[]);
        let knock = format!("knock: unverified {}", &mallory.fingerprint()[..12]);
        tokio::task::block_in_place(|| {
            // (Counting "knock:" rows would not do: a question asked again repeats its block.)
            t.until("the third knock", |s| shows(s, &knock));
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            t.type_line("n");
        });
        assert_eq!(m.exit().await.code(), Some(4), "{}", m.stderr_text());

        for p in [&mut a, &mut b] {
            p.send("quit").await;
            p.exit().await;
        }
        t.type_line("/quit");
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0));
    })
    .await
}

/// A stranger the host refused, redialling in a loop, is turned away without a new question
/// each time: one line says it knocked again, and the screen stays the host's.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_refused_stranger_knocking_again_does_not_flood_the_host() {
    within(async {
        let (host, stranger) = (Home::new(), Home::new());
        let mut t = Term::spawn(&host, &["listen", "127.0.0.1:0"], 40, 100, 1000);
        let port: u16 = tokio::task::block_in_place(|| t.listening_port());
        let mut first = stranger.dial(port, &["--trust", "accept-new"]);
        tokio::task::block_in_place(|| {
            t.until("the knock", |s| shows(s, "y / n / y NAME"));
            // Keys in a question's first 0.5 s are dropped (typed for the line, not as an answer).
            std::thread::sleep(std::time::Duration::from_millis(600));
            t.type_line("n");
        });
        assert_eq!(first.exit().await.code(), Some(4));
        for _ in 0..5 {
            let mut again = stranger.dial(port, &["--trust", "accept-new"]);
            assert_eq!(
                again.exit().await.code(),
                Some(4),
                "{}",
                again.stderr_text()
            );
        }
        tokio::task::block_in_place(|| {
            t.until("the repeat line", |s| shows(s, "knocked again"));
            t.settle(300);
        });
        let screen = t.all_rows().join("\n");
        assert_eq!(screen.matches("knock: ").count(), 1, "{screen}");
        assert_eq!(screen.matches("knocked again").count(), 1, "{screen}");
        assert_eq!(prompt(t.parser.screen()).as_deref(), Some(">"), "{screen}");
        t.type_line("/quit");
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0));
    })
    .await
}

/// Pipe mode with the terminal as stdin: the key question is answered there, then every typed
/// line reaches the peer, and Ctrl-D ends our direction. (A thread reading the terminal for key questions used to keep running and
/// take some of the lines, and both sides still exited 0.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pipe_typed_at_the_terminal_sends_every_line() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob
            .listen(&["--pipe", "--peer", &alice.fingerprint()])
            .await;
        let addr = format!("127.0.0.1:{port}");
        // The key question is asked at the terminal (stdin carries data in pipe mode) and
        // answered there; only after it do typed lines go to the peer.
        let mut t = Term::spawn(&alice, &["dial", &addr, "--pipe"], 24, 80, 100);
        tokio::task::block_in_place(|| t.until("the question", |s| shows(s, "trust it?")));
        t.type_line("y");
        tokio::task::block_in_place(|| t.until("the petname question", |s| shows(s, "petname")));
        t.type_line(""); // the suggested name
        tokio::task::block_in_place(|| {
            t.until("the session", |s| shows(s, "secure session established"))
        });
        let lines = ["one", "two", "three", "four"];
        for line in lines {
            t.type_line(line);
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        for line in lines {
            assert_eq!(listener.stdout_line().await, line);
        }
        t.press("\x04"); // Ctrl-D: end of our input
        listener.close_stdin();
        assert!(
            listener.exit().await.success(),
            "{}",
            listener.stderr_text()
        );
        assert_eq!(tokio::task::block_in_place(|| t.exit_code()), Some(0));
    })
    .await
}

/// One address cannot fill the knock queue with throwaway keys: beyond its share its knocks are
/// told `busy:` (nobody refused them), the host sees one line about it, and a stranger from
/// another address still knocks and gets in (issue 24: 8 throwaway keys filled the queue and
/// everyone else was told, untruly, that its key was refused, with nothing on the host's screen).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn throwaway_keys_from_one_address_cannot_fill_the_knock_queue() {
    within(async {
        let (host, stranger) = (Home::new(), Home::new());
        let mut t = Term::spawn(&host, &["listen", "127.0.0.1:0"], 40, 100, 1000);
        let port: u16 = tokio::task::block_in_place(|| t.listening_port());
        let mut knockers = Vec::new();
        let mut busy = 0;
        for _ in 0..8 {
            let stream = common::connect_from([127, 0, 0, 2].into(), port).await;
            let mut raw = common::raw::Raw::initiate(stream).await.unwrap();
            assert!(raw.send(0x0a, &[0]).await, "HELLO");
            // Turned away at once (busy), or left waiting for the host's answer.
            let first = tokio::time::timeout(Duration::from_millis(1500), raw.r.read_frame()).await;
            if let Ok(Ok(Some(frame))) = first {
                let frame = frame.to_vec();
                let mut plain = vec![0u8; frame.len()];
                let n = raw.noise.read_message(&frame, &mut plain).unwrap();
                assert_eq!(plain[0], 0x03, "QUIT");
                let reason = String::from_utf8_lossy(&plain[1..n]).to_string();
                assert!(reason.starts_with("busy:"), "{reason}");
                busy += 1;
            }
            knockers.push(raw);
        }
        assert_eq!(busy, 6, "two knocks per address wait, the rest are busy");
        let mut s = stranger.dial(port, &[]);
        let knock = format!("knock: unverified {}", &stranger.fingerprint()[..12]);
        tokio::task::block_in_place(|| {
            t.until("a line about the knocks turned away", |s| {
                shows(s, "turned away a knock by")
            });
            // The two from 127.0.0.2 first, refused; then the stranger's.
            for _ in 0..2 {
                t.until("a knock", |s| shows(s, "y / n / y NAME"));
                std::thread::sleep(Duration::from_millis(600));
                t.type_line("n");
                t.settle(200);
            }
            t.until("the stranger's knock", |s| shows(s, &knock));
            std::thread::sleep(Duration::from_millis(600));
            t.type_line("y");
        });
        s.stderr_until("welcome").await;
        let screen = t.all_rows().join("\n");
        assert_eq!(
            screen.matches("turned away a knock by").count(),
            1,
            "one line, not one per knock:\n{screen}"
        );
        s.send("quit").await;
        assert!(s.exit().await.success(), "{}", s.stderr_text());
        t.type_line("/quit");
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0));
    })
    .await
}

/// A dialer knocking at a host at its terminal is told what it waits for, and a knock nobody
/// answers ends as "unanswered", not as a refusal (issue 26: it saw only `>`, and a timeout
/// read exactly like "your key was not accepted").
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_knocking_dialer_is_told_it_waits_and_an_unanswered_knock_says_so() {
    within(async {
        let (host, stranger) = (Home::new(), Home::new());
        let mut t = Term::spawn(
            &host,
            &["listen", "127.0.0.1:0", "--knock-wait", "3"],
            40,
            100,
            1000,
        );
        let port: u16 = tokio::task::block_in_place(|| t.listening_port());
        let mut d = stranger.dial(port, &["--json"]);
        d.stderr_until("waiting for").await;
        assert!(
            d.stderr_text().contains("to let you in"),
            "{}",
            d.stderr_text()
        );
        let left = loop {
            let line = d.stdout_line().await;
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["event"] == "left" {
                break v;
            }
        };
        assert_eq!(left["reason"], "unanswered", "{left}");
        assert_eq!(d.exit().await.code(), Some(4), "{}", d.stderr_text());
        assert!(
            d.stderr_text().contains("did not answer within 3 s"),
            "{}",
            d.stderr_text()
        );
        assert!(!d.stderr_text().contains("not accepted"));
        tokio::task::block_in_place(|| {
            t.until("the host's line", |s| shows(s, "no answer within 3 s"))
        });
        t.type_line("/quit");
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0));
    })
    .await
}

/// The rows of the screen, up to (not including) the question row, that are not blank.
fn rows_before(rows: &[String], question: &str) -> Vec<String> {
    let at = rows
        .iter()
        .rposition(|r| r.contains(question))
        .expect("the question is on screen");
    rows[..at]
        .iter()
        .filter(|r| !r.trim().is_empty())
        .cloned()
        .collect()
}

/// The grid rows that follow `label` on screen: what is left of each row once the label (or
/// the blanks under it) are taken away, `count` rows.
fn grid_after(rows: &[String], label: &str, count: usize) -> Vec<String> {
    let at = rows
        .iter()
        .position(|r| r.contains(label))
        .unwrap_or_else(|| panic!("no {label:?} on screen:\n{}", rows.join("\n")));
    let mut grid = Vec::new();
    let first = &rows[at][rows[at].find(label).unwrap() + label.len()..];
    if !first.trim().is_empty() {
        grid.push(first.trim().to_string());
    }
    for row in &rows[at + 1..] {
        if grid.len() == count {
            break;
        }
        grid.push(row.trim().to_string());
    }
    grid
}

/// A first dial at 80 and at 50 columns (issue 26): at most 10 rows before the question at 80,
/// the fingerprint and the safety number once each, as the same grids at both widths (the
/// digits two people read to each other fall in the same places); and nothing cut mid-word.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_first_dial_shows_each_number_once_as_the_same_grid_at_any_width() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut listener, port) = bob.listen(&[]).await;
        let addr = format!("127.0.0.1:{port}");
        let fp = bob.fingerprint();
        let mut grids = Vec::new();
        for cols in [80u16, 50] {
            let mut t = Term::spawn(&alice, &["dial", &addr], 40, cols, 1000);
            let rows = tokio::task::block_in_place(|| {
                t.until("the question", |s| shows(s, "trust it?"));
                t.settle(300);
                t.all_rows()
            });
            let screen = rows.join("\n");
            let before = rows_before(&rows, "trust it?");
            if cols == 80 {
                assert!(before.len() <= 10, "{} rows:\n{screen}", before.len());
            }
            for row in &rows {
                assert!(row.chars().count() < usize::from(cols), "{row:?}");
            }
            // Each number once.
            assert_eq!(screen.matches(&fp[..4]).count(), 1, "{screen}");
            assert_eq!(screen.matches("safety number:").count(), 1, "{screen}");
            // Words whole: every word of the explanation is on screen as it was written.
            for word in ["compare", "safety", "number", "aloud),", "fingerprint"] {
                assert!(
                    screen.split_whitespace().any(|w| w == word),
                    "{word}:\n{screen}"
                );
            }
            let safety = grid_after(&rows, "safety number:", 3);
            let fingerprint = grid_after(&rows, "fingerprint:", 4);
            let expected: Vec<String> = fp
                .as_bytes()
                .chunks(16)
                .map(|row| {
                    row.chunks(4)
                        .map(|g| std::str::from_utf8(g).unwrap())
                        .collect::<Vec<_>>()
                        .join(" ")
                })
                .collect();
            assert_eq!(fingerprint, expected, "{cols} columns:\n{screen}");
            for row in &safety {
                let groups: Vec<&str> = row.split(' ').collect();
                assert!(
                    groups.len() == 4 && groups.iter().all(|g| g.len() == 5),
                    "{cols} columns: {row:?}\n{screen}"
                );
            }
            grids.push((safety, fingerprint));
            drop(t);
        }
        assert_eq!(
            grids[0], grids[1],
            "the grids differ between 80 and 50 columns"
        );
        listener.signal("INT");
        listener.exit().await;
    })
    .await
}
