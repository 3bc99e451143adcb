use super::*;
use crate::keys::Identity;

fn key() -> PublicKey {
    *Identity::generate().unwrap().public()
}

#[test]
fn entries_round_trip_through_the_file_format() {
    let mut peers = KnownPeers::default();
    let mut alice = Entry::new("alice", key(), Verified::SafetyNumber);
    alice.addrs = vec!["10.0.0.1:12345".into(), "alice.example:4000".into()];
    peers.add(alice.clone()).unwrap();
    peers
        .add(Entry::new("bob", key(), Verified::FirstUse))
        .unwrap();
    let text = peers.render();
    assert!(text.starts_with("# schat known peers"));
    let again = KnownPeers::parse(&text);
    assert!(again.problems.is_empty());
    assert_eq!(again.entries().count(), 2);
    assert_eq!(again.by_name("alice"), Some(&alice));
    assert_eq!(again.render(), text);
}

#[test]
fn corrupt_lines_are_reported_kept_and_cost_nothing_else() {
    let (a, b) = (key(), key());
    let text = format!(
        "# comment\nalice {a} pinned 2026-01-01T00:00:00Z h:1\n\
         garbage that is not an entry\nbob {b} sometimes 2026-01-01T00:00:00Z\n\
         carol {b} first-use 2026-01-01T00:00:00Z\n"
    );
    let peers = KnownPeers::parse(&text);
    assert_eq!(
        peers.problems,
        vec![
            (3, "invalid fingerprint"),
            (4, "unknown how-verified value")
        ]
    );
    assert!(peers.by_name("alice").is_some());
    assert!(peers.by_name("carol").is_some());
    // Rewriting keeps the bad lines verbatim, so a typo is fixable by hand.
    let out = peers.render();
    assert!(out.contains("garbage that is not an entry\n"));
    assert!(out.contains("sometimes"));
}

#[test]
fn duplicate_names_and_keys_are_refused() {
    let mut peers = KnownPeers::default();
    let k = key();
    peers.add(Entry::new("alice", k, Verified::Pinned)).unwrap();
    assert!(matches!(
        peers.add(Entry::new("alice", key(), Verified::Pinned)),
        Err(TrustError::NameTaken(_))
    ));
    assert!(matches!(
        peers.add(Entry::new("other", k, Verified::Pinned)),
        Err(TrustError::KeyKnown(n)) if n == "alice"
    ));
    assert_eq!(peers.free_name("alice"), "alice-2");
    let dup = format!(
        "alice {k} pinned 2026-01-01T00:00:00Z\nalice {} pinned 2026-01-01T00:00:00Z\n",
        key()
    );
    assert_eq!(KnownPeers::parse(&dup).problems.len(), 1);
}

#[test]
fn petname_rules() {
    for ok in ["alice", "Bob_2", "a.b-c", "x"] {
        validate_name(ok).unwrap();
    }
    for bad in ["", "has space", "a:b", "-flag", &"x".repeat(33), "é"] {
        assert_eq!(validate_name(bad), Err(NameError::Invalid), "{bad:?}");
    }
}

#[test]
fn a_hand_edited_address_with_a_wide_character_is_no_panic() {
    let bob = key();
    let mut peers = KnownPeers::parse(&format!(
        "bob {bob} pinned 2026-01-01T00:00:00Z aaaaaé:1 schat:OLD\n"
    ));
    assert!(peers.problems.is_empty(), "{:?}", peers.problems);
    peers.add_addr(&bob, "schat:NEW");
    let bob = peers.by_name("bob").unwrap();
    assert_eq!(bob.addrs, ["aaaaaé:1", "schat:NEW"]);
}

#[test]
fn noting_an_address_never_takes_it_from_another_key() {
    let (bob, mallory) = (key(), key());
    let mut peers = KnownPeers::default();
    peers.add(Entry::new("bob", bob, Verified::Pinned)).unwrap();
    peers
        .add(Entry::new("mal", mallory, Verified::FirstUse))
        .unwrap();
    assert!(peers.note_addr(&bob, "h:1"));
    assert!(!peers.note_addr(&mallory, "h:1"));
    assert_eq!(peers.by_addr("h:1").unwrap().name, "bob");
    assert!(peers.by_name("mal").unwrap().addrs.is_empty());
}

#[test]
fn a_newer_ticket_replaces_the_older_one_of_the_same_key() {
    let mut peers = KnownPeers::default();
    let k = key();
    peers.add(Entry::new("alice", k, Verified::Pinned)).unwrap();
    peers.add_addr(&k, "h:1");
    peers.add_addr(&k, "schat:aaaa");
    peers.add_addr(&k, "schat:bbbb");
    peers.add_addr(&k, "h:2");
    assert_eq!(
        peers.by_key(&k).unwrap().addrs,
        ["h:1", "schat:bbbb", "h:2"]
    );
}

#[test]
fn verdicts_for_dialled_addresses() {
    let (a, b) = (key(), key());
    let mut peers = KnownPeers::default();
    let mut alice = Entry::new("alice", a, Verified::FirstUse);
    alice.addrs.push("h:1".into());
    peers.add(alice).unwrap();
    assert!(matches!(
        check_dialled(&peers, "h:1", &a),
        Verdict::Known {
            new_address: false,
            ..
        }
    ));
    assert!(matches!(
        check_dialled(&peers, "H:1", &a),
        Verdict::Known {
            new_address: false,
            ..
        }
    ));
    assert!(matches!(
        check_dialled(&peers, "other:1", &a),
        Verdict::Known {
            new_address: true,
            ..
        }
    ));
    assert!(
        matches!(check_dialled(&peers, "h:1", &b), Verdict::Changed { entry } if entry.name == "alice")
    );
    assert_eq!(check_dialled(&peers, "other:1", &b), Verdict::Unknown);
}

#[test]
fn an_address_moves_to_the_key_that_now_owns_it() {
    let (a, b) = (key(), key());
    let mut peers = KnownPeers::default();
    peers
        .add(Entry::new("alice", a, Verified::FirstUse))
        .unwrap();
    peers.add(Entry::new("bob", b, Verified::FirstUse)).unwrap();
    peers.add_addr(&a, "h:1");
    peers.add_addr(&b, "h:1");
    assert_eq!(peers.by_addr("h:1").unwrap().name, "bob");
    assert!(peers.by_name("alice").unwrap().addrs.is_empty());
}

#[test]
fn forget_rename_and_find() {
    let (a, b) = (key(), key());
    let mut peers = KnownPeers::default();
    let mut alice = Entry::new("alice", a, Verified::FirstUse);
    alice.addrs = vec!["h:1".into(), "h:2".into()];
    peers.add(alice).unwrap();
    peers.add(Entry::new("bob", b, Verified::FirstUse)).unwrap();
    assert_eq!(peers.find(&a.to_hex()).unwrap().name, "alice");
    assert_eq!(peers.find("h:2").unwrap().name, "alice");
    peers.forget("h:1").unwrap();
    assert_eq!(peers.by_name("alice").unwrap().addrs, ["h:2"]);
    peers.rename("alice", "al").unwrap();
    assert!(matches!(
        peers.rename("al", "bob"),
        Err(TrustError::NameTaken(_))
    ));
    peers.forget(&fingerprint::grouped(&a)).unwrap();
    assert!(peers.by_key(&a).is_none());
    peers.forget("bob").unwrap();
    assert!(matches!(
        peers.forget("nobody"),
        Err(TrustError::NoMatch(_))
    ));
    assert_eq!(peers.entries().count(), 0);
}

#[test]
fn allow_lists_parse_with_comments_and_report_bad_lines() {
    let (a, b) = (key(), key());
    let text = format!(
        "# team\n{a}\n\n{}  # bob's laptop\n",
        fingerprint::grouped(&b)
    );
    let keys = parse_allow_list(&text).unwrap();
    assert_eq!(keys, [a, b].into_iter().collect());
    let err = parse_allow_list("# x\nnot-a-key\n").unwrap_err();
    assert!(err.starts_with("line 2"), "{err}");
}

#[test]
fn store_updates_are_atomic_and_private() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let store = Store::in_home(dir.path());
    assert_eq!(store.load().unwrap().entries().count(), 0);
    store
        .update(|p| p.add(Entry::new("alice", key(), Verified::Pinned)))
        .unwrap();
    let mode = std::fs::metadata(store.path())
        .unwrap()
        .permissions()
        .mode()
        & 0o777;
    assert_eq!(mode, 0o600);
    // A failed change leaves the file as it was.
    let before = std::fs::read_to_string(store.path()).unwrap();
    assert!(store.update(|p| p.forget("nobody")).is_err());
    assert_eq!(std::fs::read_to_string(store.path()).unwrap(), before);
}

#[test]
fn concurrent_writers_lose_no_entry() {
    let dir = tempfile::tempdir().unwrap();
    let home = dir.path().to_owned();
    let threads: Vec<_> = (0..8)
        .map(|t| {
            let home = home.clone();
            std::thread::spawn(move || {
                let store = Store::in_home(&home);
                for i in 0..10 {
                    store
                        .update(|p| {
                            p.add(Entry::new(&format!("p{t}-{i}"), key(), Verified::FirstUse))
                        })
                        .unwrap();
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    assert_eq!(Store::in_home(&home).load().unwrap().entries().count(), 80);
}
