//! Files in a chat (PROTOCOL.md §4.13), through the real binary: offered, accepted, verified
//! and saved without ever writing outside the download folder or over a file; resumed after a
//! cut with only the rest travelling; hostile peers refused while the chat goes on.

mod common;

use common::proxy::Proxy;
use common::raw::Raw;
use common::{Home, files_in, noise, within};
use std::path::Path;

fn s(path: &Path) -> &str {
    path.to_str().unwrap()
}

#[tokio::test]
async fn files_and_a_folder_reach_the_host_verified_and_a_second_copy_gets_a_new_name() {
    within(async {
        let (host, member) = (Home::new(), Home::new());
        let (src, dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        // Larger than the receiver's 8 MiB window, so credit has to flow.
        let big = noise(20 << 20, 1);
        std::fs::write(src.path().join("a.bin"), &big).unwrap();
        std::fs::create_dir_all(src.path().join("pics/deep")).unwrap();
        std::fs::write(src.path().join("pics/x.txt"), b"x").unwrap();
        std::fs::write(src.path().join("pics/deep/y.txt"), b"").unwrap();
        let (a, pics) = (src.path().join("a.bin"), src.path().join("pics"));
        let (mut h, port) = host.listen(&["--accept-files", s(dl.path())]).await;
        for round in 0..2 {
            let mut d = member.dial(port, &["--send", s(&a), "--send", s(&pics)]);
            let status = d.exit().await;
            assert!(status.success(), "round {round}: {}", d.stderr_text());
            assert!(d.stderr_text().contains("a.bin (20.0 MiB) delivered"));
        }
        h.signal("TERM");
        assert!(h.exit().await.success(), "{}", h.stderr_text());
        let got = files_in(dl.path());
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "a (1).bin",
                "a.bin",
                "pics/deep/y (1).txt",
                "pics/deep/y.txt",
                "pics/x (1).txt",
                "pics/x.txt"
            ],
            "no partial file left, nothing replaced"
        );
        assert!(got["a.bin"] == big && got["a (1).bin"] == big);
        assert_eq!(got["pics/x.txt"], b"x");
        let text = h.stderr_text();
        assert!(text.contains("sends a.bin (20.0 MiB, blake3 "), "{text}");
        assert!(text.contains("its blake3 checked"), "{text}");
    })
    .await
}

#[tokio::test]
async fn the_host_sends_to_a_member_that_accepts_and_closes_when_delivered() {
    within(async {
        let (host, member) = (Home::new(), Home::new());
        let (src, dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let body = noise(3 << 20, 2);
        let file = src.path().join("report.pdf");
        std::fs::write(&file, &body).unwrap();
        let (mut h, port) = host.listen(&["--send", s(&file)]).await;
        let mut d = member.dial(port, &["--accept-files", s(dl.path()), "--json"]);
        // A script receiving: its input ends at once, and it stays until the host is done.
        d.close_stdin();
        assert!(h.exit().await.success(), "{}", h.stderr_text());
        assert!(h.stderr_text().contains("files sent; closing the room"));
        assert!(d.exit().await.success(), "{}", d.stderr_text());
        assert_eq!(std::fs::read(dl.path().join("report.pdf")).unwrap(), body);
        // The member's events say what happened, in order.
        let events: Vec<serde_json::Value> = d
            .stdout_seen
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .filter(|v: &serde_json::Value| {
                v["event"].as_str().is_some_and(|e| e.starts_with("file_"))
            })
            .collect();
        let kinds: Vec<&str> = events
            .iter()
            .map(|v| v["event"].as_str().unwrap())
            .collect();
        assert_eq!(kinds.first(), Some(&"file_offered"), "{kinds:?}");
        assert_eq!(kinds.last(), Some(&"file_done"), "{kinds:?}");
        let done = events.last().unwrap();
        assert_eq!(done["direction"], "in");
        assert_eq!(done["size"], 3 << 20);
        assert_eq!(done["hash"], blake3::hash(&body).to_hex().as_str());
        assert_eq!(done["moved"], 3 << 20);
        assert_eq!(
            done["path"].as_str().unwrap(),
            s(&dl.path().join("report.pdf"))
        );
        assert_eq!(events[0]["accepted"], true);
        assert_eq!(events[0]["name"], "report.pdf");
    })
    .await
}

#[tokio::test]
async fn an_offer_waits_for_accept_and_a_declined_one_is_not_delivered() {
    within(async {
        let (host, member) = (Home::new(), Home::new());
        let (src, dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let (one, two) = (src.path().join("one.txt"), src.path().join("two.txt"));
        std::fs::write(&one, b"first").unwrap();
        std::fs::write(&two, b"second").unwrap();
        let (mut h, port) = host.listen(&["--download-dir", s(dl.path())]).await;
        let mut d = member.dial(port, &["--send", s(&one), "--send", s(&two)]);
        h.stderr_until("offers one.txt (5 B, blake3 ").await;
        h.stderr_until("offers two.txt (6 B, blake3 ").await;
        // Nothing is written before an answer.
        assert!(files_in(dl.path()).is_empty());
        h.send("/reject 1").await;
        h.send("/accept 2").await;
        let status = d.exit().await;
        assert_eq!(status.code(), Some(1), "{}", d.stderr_text());
        let text = d.stderr_text();
        assert!(text.contains("one.txt not delivered: declined"), "{text}");
        assert!(!text.contains("declined: declined"), "{text}");
        assert!(text.contains("two.txt (6 B) delivered"), "{text}");
        assert!(text.contains("1 file transfer did not complete"), "{text}");
        h.signal("TERM");
        h.exit().await;
        let got = files_in(dl.path());
        assert_eq!(got.keys().collect::<Vec<_>>(), ["two.txt"]);
    })
    .await
}

#[tokio::test]
async fn a_cut_at_half_way_resumes_and_only_the_rest_travels() {
    within(async {
        let (host, member) = (Home::new(), Home::new());
        let (src, dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let size: u64 = 32 << 20;
        let body = noise(size as usize, 3);
        let file = src.path().join("half.bin");
        std::fs::write(&file, &body).unwrap();
        let (mut h, port) = host.listen(&["--accept-files", s(dl.path())]).await;
        let proxy = Proxy::start(port).await;
        // The sender's bytes pass up to half the file (plus the opening), then are held:
        // where the transfer stands at the cut is not left to timing.
        proxy.hold_up_at(size / 2);
        let mut d = member.dial(proxy.port, &["--send", s(&file), "--json"]);
        while proxy.up_bytes.load(std::sync::atomic::Ordering::Relaxed) < size / 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        proxy.hold_up_at(u64::MAX);
        proxy.cut();
        let status = d.exit().await;
        assert!(status.success(), "{}", d.stderr_text());
        h.signal("TERM");
        h.exit().await;
        assert_eq!(std::fs::read(dl.path().join("half.bin")).unwrap(), body);
        let total = proxy.up_bytes.load(std::sync::atomic::Ordering::Relaxed);
        eprintln!(
            "resume after a cut at 50 %: {total} bytes went up for a {size}-byte file ({:.3}x)",
            total as f64 / size as f64
        );
        assert!(
            total as f64 <= 1.1 * size as f64,
            "{total} bytes went up for a {size}-byte file"
        );
        let done = d
            .stdout_seen
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .find(|v| v["event"] == "file_done")
            .unwrap();
        let moved = done["moved"].as_u64().unwrap();
        assert!(moved < size * 6 / 10, "{moved} of {size} bytes sent again");
        assert!(
            h.stderr_text().contains("resuming: "),
            "{}",
            h.stderr_text()
        );
        assert!(files_in(dl.path()).len() == 1, "the partial file is gone");
    })
    .await
}

#[tokio::test]
async fn a_part_left_by_an_earlier_session_is_resumed_and_a_corrupted_one_is_never_trusted() {
    within(async {
        let (host, member) = (Home::new(), Home::new());
        let (src, dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let body = noise(5 << 20, 4);
        let file = src.path().join("r.bin");
        std::fs::write(&file, &body).unwrap();
        let hash = blake3::hash(&body);
        let part = dl.path().join(format!(".schat-{}.part", hash.to_hex()));
        let (mut h, port) = host
            .listen(&["--accept-files", s(dl.path()), "--json"])
            .await;
        // A session that ended with 2 MiB of it: the part stays.
        std::fs::write(&part, &body[..2 << 20]).unwrap();
        let mut d = member.dial(port, &["--send", s(&file), "--json"]);
        assert!(d.exit().await.success(), "{}", d.stderr_text());
        assert_eq!(std::fs::read(dl.path().join("r.bin")).unwrap(), body);
        assert!(!part.exists());
        // The same part, corrupted in its first byte: the whole file is checked, so it fails,
        // is deleted, and nothing gets the name.
        let mut bad = body[..2 << 20].to_vec();
        bad[0] ^= 1;
        std::fs::write(&part, &bad).unwrap();
        let mut d = member.dial(port, &["--send", s(&file)]);
        assert_eq!(d.exit().await.code(), Some(1), "{}", d.stderr_text());
        assert!(
            d.stderr_text().contains("did not match the hash"),
            "{}",
            d.stderr_text()
        );
        assert!(!part.exists() && !dl.path().join("r (1).bin").exists());
        // Sent again, from nothing, it arrives.
        let mut d = member.dial(port, &["--send", s(&file)]);
        assert!(d.exit().await.success(), "{}", d.stderr_text());
        assert_eq!(std::fs::read(dl.path().join("r (1).bin")).unwrap(), body);
        h.signal("TERM");
        h.exit().await;
        let moved: Vec<u64> = h
            .stdout_seen
            .iter()
            .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
            .filter(|v| v["event"] == "file_done")
            .map(|v| v["moved"].as_u64().unwrap())
            .collect();
        assert_eq!(
            moved,
            [3 << 20, 5 << 20],
            "only the rest travelled the first time"
        );
    })
    .await
}

/// A raw dialer that says HELLO and FILES, then reads the host until its WELCOME.
async fn raw_member(port: u16) -> Raw {
    let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
        .await
        .unwrap();
    let mut raw = Raw::initiate(stream).await.unwrap();
    assert!(raw.send(0x0a, &[0x00]).await);
    assert!(raw.send(0x84, &[]).await);
    while raw.recv().await.unwrap()[0] != 0x01 {}
    raw
}

/// Reads until the FILE message with this op and id; returns its fields after the id.
async fn until_file(raw: &mut Raw, op: u8, id: u32) -> Vec<u8> {
    loop {
        let m = raw.recv().await.expect("the host hung up");
        if m.len() >= 6 && m[0] == 0x16 && m[1] == op && m[2..6] == id.to_be_bytes() {
            return m[6..].to_vec();
        }
    }
}

fn offer(id: u32, size: u64, hash: &[u8; 32], path: &[u8]) -> Vec<u8> {
    let mut b = vec![0x01];
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&size.to_be_bytes());
    b.extend_from_slice(hash);
    b.extend_from_slice(path);
    b
}

fn chunk(id: u32, offset: u64, data: &[u8]) -> Vec<u8> {
    let mut b = vec![0x04];
    b.extend_from_slice(&id.to_be_bytes());
    b.extend_from_slice(&offset.to_be_bytes());
    b.extend_from_slice(data);
    b
}

fn done(id: u32) -> Vec<u8> {
    let mut b = vec![0x06];
    b.extend_from_slice(&id.to_be_bytes());
    b
}

#[tokio::test]
async fn hostile_offers_are_refused_nothing_lands_outside_and_the_chat_goes_on() {
    within(async {
        let host = Home::new();
        let root = tempfile::tempdir().unwrap();
        let dl = root.path().join("dl");
        std::fs::create_dir(&dl).unwrap();
        let (mut h, port) = host.listen(&["--accept-files", s(&dl)]).await;
        let mut raw = raw_member(port).await;
        let hello = *blake3::hash(b"hello").as_bytes();
        let mut id = 0;
        // Names with path tricks or controls: each refused, with the reason.
        for name in [
            &b"../escape.txt"[..],
            b"/tmp/abs.txt",
            b"a/../../up.txt",
            b"bell\x07.txt",
            b"clear\x1b[2J.txt",
            b"NUL",
            b"rtl\xe2\x80\xaetxt.exe",
        ] {
            id += 1;
            raw.send(0x16, &offer(id, 5, &hello, name)).await;
            let why = until_file(&mut raw, 0x03, id).await;
            assert!(String::from_utf8(why).unwrap().contains("unsafe"));
        }
        // A hash that lies: the bytes arrive, fail the check, and are deleted.
        id += 1;
        raw.send(0x16, &offer(id, 5, &[7; 32], b"liar.txt")).await;
        until_file(&mut raw, 0x02, id).await;
        raw.send(0x16, &chunk(id, 0, b"hello")).await;
        raw.send(0x16, &done(id)).await;
        let why = until_file(&mut raw, 0x03, id).await;
        assert!(String::from_utf8(why).unwrap().contains("did not match"));
        // More than offered.
        id += 1;
        raw.send(0x16, &offer(id, 3, &hello, b"short.txt")).await;
        until_file(&mut raw, 0x02, id).await;
        raw.send(0x16, &chunk(id, 0, b"hello")).await;
        let why = until_file(&mut raw, 0x03, id).await;
        assert!(
            String::from_utf8(why)
                .unwrap()
                .contains("more than it offered")
        );
        // A piece out of order (a gap): refused, not written.
        id += 1;
        raw.send(0x16, &offer(id, 64 << 20, &hello, b"gap.bin"))
            .await;
        let accept = until_file(&mut raw, 0x02, id).await;
        let limit = u64::from_be_bytes(accept[8..16].try_into().unwrap());
        assert_eq!(limit, 8 << 20, "the first credit is the window");
        raw.send(0x16, &chunk(id, 0, &[0; 1000])).await;
        raw.send(0x16, &chunk(id, 2000, &[0; 1000])).await;
        let why = until_file(&mut raw, 0x03, id).await;
        assert!(String::from_utf8(why).unwrap().contains("out of order"));
        // Data for an offer that was never made, and 10,000 offers: refusals, bounded.
        raw.send(0x16, &chunk(999_999, 0, b"unasked")).await;
        for _ in 0..10_000 {
            id += 1;
            raw.send(0x16, &offer(id, 1, &hello, format!("f{id}").as_bytes()))
                .await;
        }
        let why = until_file(&mut raw, 0x03, id).await;
        assert!(String::from_utf8(why).unwrap().contains("too many offers"));
        // And the chat goes on.
        raw.send(0x02, b"still here").await;
        let line = h.stdout_line().await;
        assert!(line.ends_with("still here"), "{line}");
        h.signal("TERM");
        h.exit().await;
        // Nothing outside the download folder; inside it, no file got a name it was refused.
        let outside: Vec<String> = files_in(root.path()).into_keys().collect();
        assert!(outside.iter().all(|n| n.starts_with("dl/")), "{outside:?}");
        let inside = files_in(&dl);
        assert!(
            inside.keys().all(|n| n.starts_with(".schat-")),
            "only partial files of the offers still waiting: {:?}",
            inside.keys().collect::<Vec<_>>()
        );
        assert!(!Path::new("/tmp/abs.txt").exists());
        let text = h.stderr_text();
        assert!(text.contains("its name is unsafe"), "{text}");
        assert!(
            !text.contains('\x1b') && !text.contains('\x07'),
            "controls reach the screen"
        );
    })
    .await
}

#[tokio::test]
async fn a_file_message_from_a_peer_that_never_said_files_ends_its_session() {
    within(async {
        let host = Home::new();
        let dl = tempfile::tempdir().unwrap();
        let (mut h, port) = host.listen(&["--accept-files", s(dl.path())]).await;
        let stream = tokio::net::TcpStream::connect(("127.0.0.1", port))
            .await
            .unwrap();
        let mut raw = Raw::initiate(stream).await.unwrap();
        raw.send(0x0a, &[0x00]).await;
        while raw.recv().await.unwrap()[0] != 0x01 {}
        let hello = *blake3::hash(b"hello").as_bytes();
        raw.send(0x16, &offer(1, 5, &hello, b"x.txt")).await;
        // The host ends the session (rule 3): the stream ends.
        while raw.recv().await.is_some() {}
        h.stderr_until("without having sent FILES").await;
        h.signal("TERM");
        h.exit().await;
        assert!(files_in(dl.path()).is_empty());
    })
    .await
}

/// At a terminal: the offer says who offers what and how to answer; once accepted, a progress
/// row sits above the prompt (percent, size, rate, time left) while the bytes move, chat lines
/// still go, and the row goes when the file is saved.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn at_a_terminal_the_offer_and_a_progress_row_show_and_the_chat_goes_on() {
    use common::term::{Term, prompt, shows};
    within(async {
        let (host, member) = (Home::new(), Home::new());
        let (src, dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let size: u64 = 24 << 20;
        let body = noise(size as usize, 5);
        let file = src.path().join("movie.mkv");
        std::fs::write(&file, &body).unwrap();
        let args = [
            "listen",
            "127.0.0.1:0",
            "--allow",
            "anyone",
            "--download-dir",
            s(dl.path()),
        ];
        let mut t = Term::spawn(&host, &args, 30, 100, 1000);
        let port: u16 = tokio::task::block_in_place(|| t.listening_port());
        let proxy = Proxy::start(port).await;
        let mut d = member.dial(proxy.port, &["--send", s(&file)]);
        tokio::task::block_in_place(|| {
            t.until("the offer", |s| {
                shows(s, "offers movie.mkv (24.0 MiB, blake3 ") && shows(s, "/accept 1 to save")
            });
        });
        // Half the file passes, then the path holds it: the row shows where it stands.
        proxy.hold_up_at(size / 2);
        tokio::task::block_in_place(|| {
            t.type_line("/accept 1");
            t.until("the progress row", |s| {
                let rows: Vec<String> = s.rows(0, 100).collect();
                let at = rows.iter().position(|r| r.starts_with("> "));
                at.is_some_and(|i| {
                    i > 0
                        && rows[i - 1].starts_with("#1 receiving movie.mkv ")
                        && rows[i - 1].contains("% of 24.0 MiB, ")
                        && rows[i - 1].contains("/s")
                })
            });
            assert_eq!(prompt(t.parser.screen()).as_deref(), Some(">"));
            // The chat goes on beside the file (this way: the other is held with the file).
            t.type_line("still talking");
        });
        let said = d.said().await;
        assert!(said.ends_with("still talking"), "{said}");
        proxy.hold_up_at(u64::MAX);
        d.send("me too").await;
        tokio::task::block_in_place(|| {
            t.until("the member's line", |s| shows(s, "me too"));
            t.until("the file saved", |s| {
                shows(s, "movie.mkv (24.0 MiB) saved as")
            });
            t.settle(700);
            let rows = t.rows();
            assert!(
                !rows.iter().any(|r| r.starts_with("#1 receiving")),
                "the row went: {rows:#?}"
            );
        });
        assert!(d.exit().await.success(), "{}", d.stderr_text());
        assert_eq!(std::fs::read(dl.path().join("movie.mkv")).unwrap(), body);
        tokio::task::block_in_place(|| {
            t.type_line("/quit");
            assert_eq!(t.exit_code(), Some(0));
        });
    })
    .await
}

/// Files with the same content (empty files always are) share a partial file's name: each
/// still arrives, under its own name.
#[tokio::test]
async fn identical_files_in_one_send_all_arrive() {
    within(async {
        let (host, member) = (Home::new(), Home::new());
        let (src, dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let top = src.path().join("proj");
        for dir in ["a", "b"] {
            std::fs::create_dir_all(top.join(dir)).unwrap();
            std::fs::write(top.join(dir).join("__init__.py"), b"").unwrap();
            std::fs::write(top.join(dir).join("data.bin"), noise(3 << 20, 9)).unwrap();
        }
        let (mut h, port) = host.listen(&["--accept-files", s(dl.path())]).await;
        let mut d = member.dial(port, &["--send", s(&top)]);
        assert!(d.exit().await.success(), "{}", d.stderr_text());
        h.signal("TERM");
        h.exit().await;
        let got = files_in(dl.path());
        let names: Vec<&str> = got.keys().map(String::as_str).collect();
        assert_eq!(
            names,
            [
                "proj/a/__init__.py",
                "proj/a/data.bin",
                "proj/b/__init__.py",
                "proj/b/data.bin"
            ]
        );
        assert_eq!(got["proj/b/data.bin"], noise(3 << 20, 9));
    })
    .await
}

/// A host offering files (`--send`) to a member that leaves without taking them has not
/// delivered them: exit 1, however the room ends.
#[tokio::test]
async fn a_host_whose_member_left_without_its_files_exits_1() {
    within(async {
        let (host, member) = (Home::new(), Home::new());
        let src = tempfile::tempdir().unwrap();
        let file = src.path().join("unwanted.txt");
        std::fs::write(&file, b"no thanks").unwrap();
        let (mut h, port) = host.listen(&["--send", s(&file)]).await;
        let mut d = member.dial(port, &[]);
        d.stderr_until("offers unwanted.txt").await;
        d.close_stdin();
        assert!(d.exit().await.success(), "{}", d.stderr_text());
        assert_eq!(h.exit().await.code(), Some(1), "{}", h.stderr_text());
        let text = h.stderr_text();
        assert!(text.contains("unwanted.txt not delivered"), "{text}");
        assert!(text.contains("did not complete"), "{text}");
    })
    .await
}

/// The receiver stops a transfer half way (`/cancel`): the partial file goes, the sender hears
/// why and exits 1; `/transfers` lists what happened on both sides.
#[tokio::test]
async fn the_receiver_cancels_half_way_and_the_sender_hears_why() {
    within(async {
        let (host, member) = (Home::new(), Home::new());
        let (src, dl) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let size: u64 = 16 << 20;
        let file = src.path().join("big.iso");
        std::fs::write(&file, noise(size as usize, 6)).unwrap();
        let (mut h, port) = host.listen(&["--accept-files", s(dl.path())]).await;
        let proxy = Proxy::start(port).await;
        proxy.hold_up_at(size / 2);
        let mut d = member.dial(proxy.port, &["--send", s(&file)]);
        while proxy.up_bytes.load(std::sync::atomic::Ordering::Relaxed) < size / 2 {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
        h.send("/transfers").await;
        h.stderr_until("#1 from unverified").await;
        h.send("/cancel 1").await;
        let line = d.stderr_until("big.iso not delivered").await;
        assert!(
            line.ends_with("stopped by the receiver: cancelled"),
            "{line}"
        );
        proxy.hold_up_at(u64::MAX);
        assert_eq!(d.exit().await.code(), Some(1), "{}", d.stderr_text());
        h.signal("TERM");
        h.exit().await;
        assert!(
            files_in(dl.path()).is_empty(),
            "{:?}",
            files_in(dl.path()).keys()
        );
    })
    .await
}

/// A peer that never says FILES (an older schat) is not sent anything: `--send` says why
/// and exits 1 at once, rather than waiting.
#[tokio::test]
async fn a_peer_without_files_is_told_nothing_and_the_sender_says_why() {
    within(async {
        let member = Home::new();
        let src = tempfile::tempdir().unwrap();
        let file = src.path().join("x.txt");
        std::fs::write(&file, b"x").unwrap();
        let opening = vec![
            common::raw::msg(0x0a, &[0x00]),
            common::raw::msg(0x82, &[]),
            common::raw::msg(0x01, b"hello, old schat here"),
        ];
        // It reads the dialer's HELLO, RECEIPTS, FILES and its goodbye, then hangs up.
        let port = common::raw::scripted_listener(opening, None, vec![]).await;
        let mut d = member.dial(port, &["--send", s(&file)]);
        assert_eq!(d.exit().await.code(), Some(1), "{}", d.stderr_text());
        assert!(
            d.stderr_text()
                .contains("x.txt not delivered: the peer's schat does not take files"),
            "{}",
            d.stderr_text()
        );
    })
    .await
}

/// `schat send` and `schat receive`, no chat: the receiver waits and the sender dials, then
/// the other way round; each exits 0 once the files are delivered and checked.
#[tokio::test]
async fn send_and_receive_need_no_chat_either_way() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (src, into) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
        let file = src.path().join("notes.txt");
        std::fs::write(&file, b"one-off").unwrap();
        // Bob waits; Alice dials him with the file.
        let mut r = bob.spawn(&[
            "receive",
            "--on",
            "127.0.0.1:0",
            "--allow",
            "anyone",
            "--into",
            s(&into.path().join("1")),
        ]);
        let line = r.stderr_until("listening on 127.0.0.1:").await;
        let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        let to = format!("127.0.0.1:{port}");
        let mut snd = alice.spawn(&["send", s(&file), "--to", &to, "--trust", "accept-new"]);
        assert!(snd.exit().await.success(), "{}", snd.stderr_text());
        assert!(r.exit().await.success(), "{}", r.stderr_text());
        assert_eq!(
            std::fs::read(into.path().join("1/notes.txt")).unwrap(),
            b"one-off"
        );
        // Alice waits with the file; Bob dials her to take it.
        let mut snd = alice.spawn(&["send", s(&file), "--on", "127.0.0.1:0", "--allow", "anyone"]);
        let line = snd.stderr_until("listening on 127.0.0.1:").await;
        let port: u16 = line.rsplit(':').next().unwrap().trim().parse().unwrap();
        let from = format!("127.0.0.1:{port}");
        let into2 = into.path().join("2");
        let mut r = bob.spawn(&[
            "receive",
            "--from",
            &from,
            "--trust",
            "accept-new",
            "--into",
            s(&into2),
        ]);
        assert!(snd.exit().await.success(), "{}", snd.stderr_text());
        assert!(r.exit().await.success(), "{}", r.stderr_text());
        assert_eq!(std::fs::read(into2.join("notes.txt")).unwrap(), b"one-off");
    })
    .await
}
