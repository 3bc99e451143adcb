//! Rooms end to end (PROTOCOL.md §4.14), through the real binary: members talk over pairwise
//! sessions that the host passes on and cannot read. A relay-only host holds none of what
//! they say (its memory is searched for it); a participating host reads the room but not a
//! member's `/msg` to another; a member whose schat is older still talks through the host,
//! labelled so.

mod common;

use common::{Home, Proc, within};
use serde_json::Value;

fn json(line: &str) -> Value {
    serde_json::from_str(line).unwrap_or_else(|e| panic!("{e}: {line}"))
}

async fn event_where(p: &mut Proc, want: impl Fn(&Value) -> bool) -> Value {
    loop {
        let v = json(&p.stdout_line().await);
        if want(&v) {
            return v;
        }
    }
}

async fn next_message(p: &mut Proc) -> Value {
    event_where(p, |v| v["event"] == "message").await
}

/// Whether `needle` is anywhere in the memory of process `pid` (its readable mappings).
/// `None` when this user may not read it.
fn memory_holds(pid: u32, needle: &[u8]) -> Option<bool> {
    use std::io::{Read, Seek, SeekFrom};
    let maps = std::fs::read_to_string(format!("/proc/{pid}/maps")).ok()?;
    let mut mem = std::fs::File::open(format!("/proc/{pid}/mem")).ok()?;
    for line in maps.lines() {
        let mut parts = line.split_whitespace();
        let (Some(range), Some(perms)) = (parts.next(), parts.next()) else {
            continue;
        };
        if !perms.starts_with('r') || line.ends_with("[vvar]") || line.ends_with("[vsyscall]") {
            continue;
        }
        let (start, end) = range.split_once('-').unwrap();
        let start = u64::from_str_radix(start, 16).unwrap();
        let end = u64::from_str_radix(end, 16).unwrap();
        let mut buf = vec![0u8; (end - start) as usize];
        if mem.seek(SeekFrom::Start(start)).is_err() || mem.read_exact(&mut buf).is_err() {
            continue;
        }
        if buf.windows(needle.len()).any(|w| w == needle) {
            return Some(true);
        }
    }
    Some(false)
}

/// Three members and a host: each member in, and every pair's session up (each member has
/// said "end to end with" for both others).
async fn room_of_three(host_args: &[&str]) -> (Home, Proc, u16, Vec<(Home, Proc)>) {
    let host = Home::new();
    let mut args = vec!["--json"];
    args.extend_from_slice(host_args);
    let (room, port) = host.listen(&args).await;
    let mut members = Vec::new();
    for _ in 0..3 {
        let home = Home::new();
        let mut p = home.dial(port, &["--json"]);
        event_where(&mut p, |v| v["event"] == "welcome").await;
        members.push((home, p));
    }
    for (_, p) in &mut members {
        let mut open = 0;
        while open < 2 {
            let line = p.stderr_until_any(|l| l.contains("end to end with")).await;
            open += line.matches(", ").count() + 1;
        }
    }
    (host, room, port, members)
}

#[tokio::test]
async fn three_members_talk_through_a_relay_only_host_that_holds_none_of_it() {
    within(async {
        let (_host, mut room, _, mut members) = room_of_three(&["--relay-only"]).await;
        let marker = "ultraviolet-marmalade-4417";
        members[0].1.send(&format!("{marker} from the first")).await;
        let first = members[0].0.fingerprint();
        for (_, p) in &mut members[1..] {
            let m = next_message(p).await;
            assert_eq!(m["text"], format!("{marker} from the first"));
            assert_eq!(m["from"]["fingerprint"], first, "{m}");
            // End to end: no "via" — the host could not have written it.
            assert!(m.get("via").is_none(), "{m}");
        }
        // The second answers the third alone.
        let third = members[2].0.fingerprint();
        members[1]
            .1
            .send(&format!("/msg {} {marker} just for you", &third[..12]))
            .await;
        let m = next_message(&mut members[2].1).await;
        assert_eq!(m["private"], true, "{m}");
        assert_eq!(m["from"]["fingerprint"], members[1].0.fingerprint());

        // The host showed nothing, and holds nothing: not a byte of it is in its memory.
        match memory_holds(room.pid(), marker.as_bytes()) {
            Some(held) => assert!(!held, "the relay-only host's memory holds the text"),
            None => eprintln!("cannot read the host's memory here (not root): scan skipped"),
        }
        // It says nothing either.
        room.send("can anyone hear me").await;
        room.stderr_until("takes no part").await;
        for (_, p) in &mut members {
            p.send("quit").await;
            assert!(p.exit().await.success(), "{}", p.stderr_text());
        }
        room.signal("INT");
        room.exit().await;
        assert!(
            !room.stdout_seen.iter().any(|l| l.contains(marker)),
            "{:#?}",
            room.stdout_seen
        );
    })
    .await
}

#[tokio::test]
async fn a_participating_host_reads_the_room_but_not_a_msg_between_members() {
    within(async {
        let (_host, mut room, _, mut members) = room_of_three(&[]).await;
        members[0].1.send("for everyone").await;
        let at_host = next_message(&mut room).await;
        assert_eq!(at_host["text"], "for everyone");
        for (_, p) in &mut members[1..] {
            let m = next_message(p).await;
            assert_eq!(m["text"], "for everyone");
            assert!(m.get("via").is_none(), "{m}");
        }
        let secret = "periwinkle-obelisk-9023";
        let third = members[2].0.fingerprint();
        members[0]
            .1
            .send(&format!("/msg {} {secret}", &third[..12]))
            .await;
        let m = next_message(&mut members[2].1).await;
        assert_eq!(m["text"], secret);
        // The same scan finds what the host did read (so a miss means something).
        match (
            memory_holds(room.pid(), b"for everyone"),
            memory_holds(room.pid(), secret.as_bytes()),
        ) {
            (Some(room_text), Some(private)) => {
                assert!(room_text, "the scan does not find what the host read");
                assert!(!private, "the host's memory holds a member-to-member /msg");
            }
            _ => eprintln!("cannot read the host's memory here (not root): scan skipped"),
        }
        for (_, p) in &mut members {
            p.send("quit").await;
            assert!(p.exit().await.success(), "{}", p.stderr_text());
        }
        room.signal("INT");
        room.exit().await;
        assert!(!room.stdout_seen.iter().any(|l| l.contains(secret)));
    })
    .await
}
