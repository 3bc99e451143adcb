//! Receipts (PROTOCOL.md §4.10), through the real binary: a line of ours is marked on screen
//! until the peer has shown it, `--json` says `sent` and `delivered`, and a session whose
//! lines were never confirmed does not exit 0.

mod common;

use common::raw::{msg, scripted_listener};
use common::term::{Term, shows};
use common::{Home, within};
use serde_json::Value;

fn event(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"))
}

const HELLO_CHAT: u8 = 0x0a;
const TEXT: u8 = 0x02;
const WELCOME: u8 = 0x01;
const QUIT: u8 = 0x03;
const ACK: u8 = 0x13;
const RECEIPTS: u8 = 0x82;

/// Scripts learn which of their lines arrived, by id, and the session exits 0 only after the
/// room confirmed them all.
#[tokio::test]
async fn json_says_sent_and_delivered_for_every_line() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut room, port) = bob.listen(&["--once"]).await;
        let mut d = alice.dial(port, &["--json"]);
        for line in ["one", "two", "three"] {
            d.send(line).await;
        }
        d.close_stdin();
        let status = d.exit().await;
        assert!(status.success(), "{}", d.stderr_text());
        let events: Vec<Value> = d.stdout_seen.iter().map(|l| event(l)).collect();
        let sent: Vec<(u64, &str)> = events
            .iter()
            .filter(|e| e["event"] == "sent")
            .map(|e| (e["id"].as_u64().unwrap(), e["text"].as_str().unwrap()))
            .collect();
        assert_eq!(sent, [(1, "one"), (2, "two"), (3, "three")]);
        let mut delivered: Vec<u64> = events
            .iter()
            .filter(|e| e["event"] == "delivered")
            .map(|e| e["id"].as_u64().unwrap())
            .collect();
        delivered.sort();
        assert_eq!(delivered, [1, 2, 3], "{:?}", d.stdout_seen);
        for line in ["one", "two", "three"] {
            assert_eq!(room.said().await, line);
        }
        assert!(room.exit().await.success());
    })
    .await
}

/// A listener that offers receipts, takes our line and leaves without confirming it: the line
/// may never have been shown, so the dialer does not claim success.
#[tokio::test]
async fn a_peer_that_leaves_without_confirming_is_not_a_success() {
    within(async {
        let home = Home::new();
        let port = scripted_listener(
            vec![
                msg(HELLO_CHAT, &[0x00]),
                msg(RECEIPTS, &[]),
                msg(WELCOME, b"hi"),
            ],
            // Our line.
            Some(TEXT),
            vec![msg(QUIT, b"")],
        )
        .await;
        let mut d = home.dial(port, &[]);
        d.send("did you see this?").await;
        let status = d.exit().await;
        assert_eq!(status.code(), Some(1), "{}", d.stderr_text());
        assert!(
            d.stderr_text().contains("confirmed your last 1 line"),
            "{}",
            d.stderr_text()
        );
    })
    .await
}

/// An ACK for more than was sent is a lie: the session ends, the peer's fault.
#[tokio::test]
async fn a_false_receipt_ends_the_session() {
    within(async {
        let home = Home::new();
        let port = scripted_listener(
            vec![
                msg(HELLO_CHAT, &[0x00]),
                msg(RECEIPTS, &[]),
                msg(WELCOME, b"hi"),
                msg(ACK, &5u64.to_be_bytes()),
            ],
            None,
            vec![],
        )
        .await;
        let mut d = home.dial(port, &[]);
        let status = d.exit().await;
        assert_eq!(status.code(), Some(1), "{}", d.stderr_text());
        assert!(
            d.stderr_text().contains("false receipt"),
            "{}",
            d.stderr_text()
        );
    })
    .await
}

/// A listener that never offers receipts (an older schat) is trusted as before: the line goes,
/// QUIT goes, exit 0.
#[tokio::test]
async fn a_peer_without_receipts_is_as_before() {
    within(async {
        let home = Home::new();
        let port = scripted_listener(
            vec![msg(HELLO_CHAT, &[0x00]), msg(WELCOME, b"hi")],
            // Our line.
            Some(TEXT),
            vec![msg(QUIT, b"")],
        )
        .await;
        let mut d = home.dial(port, &[]);
        d.send("hello, old friend").await;
        d.close_stdin();
        let status = d.exit().await;
        assert_eq!(status.code(), Some(0), "{}", d.stderr_text());
    })
    .await
}

/// At a terminal, our line ends in a dim `...` until the peer showed it. The listener is
/// stopped (SIGSTOP) so that the receipt cannot come; once it runs again, the mark goes.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_screen_marks_a_line_until_the_peer_has_shown_it() {
    within(async {
        let (alice, bob) = (Home::new(), Home::new());
        let (mut room, port) = bob.listen(&["--once"]).await;
        let addr = format!("127.0.0.1:{port}");
        let mut t = Term::spawn(
            &alice,
            &["dial", &addr, "--trust", "accept-new"],
            24,
            60,
            200,
        );
        tokio::task::block_in_place(|| t.until("the welcome", |s| shows(s, "welcome")));
        room.signal("STOP");
        t.type_line("are you there?");
        let row_of = |t: &Term| {
            t.rows()
                .into_iter()
                .find(|r| r.contains("<you> are you there?"))
        };
        tokio::task::block_in_place(|| {
            t.until("the marked line", |s| {
                s.contents().contains("<you> are you there? ...")
            })
        });
        room.signal("CONT");
        tokio::task::block_in_place(|| {
            t.until("the mark erased", |s| {
                s.contents()
                    .lines()
                    .any(|r| r.trim_end().ends_with("<you> are you there?"))
            })
        });
        let row = row_of(&t).unwrap();
        assert!(!row.contains("..."), "{row:?}");
        assert_eq!(room.said().await, "are you there?");
        t.type_line("/quit");
        let code = tokio::task::block_in_place(|| t.exit_code());
        assert_eq!(code, Some(0), "{}", t.all_rows().join("\n"));
        assert!(room.exit().await.success());
    })
    .await
}

/// The host's own line is delivered once every member showed it; a member that leaves first
/// makes the host say so, and the host's exit is not a success.
#[tokio::test]
async fn a_host_line_a_member_never_showed_is_reported() {
    within(async {
        let (host, alice, bob) = (Home::new(), Home::new(), Home::new());
        let (mut room, port) = host.listen(&["--json", "--resume-grace", "1"]).await;
        let mut a = alice.dial(port, &[]);
        room.stderr_until("joined").await;
        let mut b = bob.dial(port, &[]);
        room.stderr_until("2 in the room").await;
        room.send("first").await;
        assert_eq!(a.said().await, "first");
        assert_eq!(b.said().await, "first");
        // Both showed it: delivered.
        loop {
            let e = event(&room.stdout_line().await);
            if e["event"] == "delivered" {
                assert_eq!(e["id"], 1);
                break;
            }
        }
        // Bob stops reading, then is killed: the second line never reaches his screen.
        b.signal("STOP");
        room.send("second").await;
        assert_eq!(a.said().await, "second");
        b.signal("KILL");
        room.stderr_until("left before showing it").await;
        a.close_stdin();
        assert!(a.exit().await.success(), "{}", a.stderr_text());
        room.signal("INT");
        let status = room.exit().await;
        assert_eq!(status.code(), Some(1), "{}", room.stderr_text());
        assert!(
            room.stderr_text().contains("not shown to every member"),
            "{}",
            room.stderr_text()
        );
    })
    .await
}
