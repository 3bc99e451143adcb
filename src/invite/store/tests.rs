use super::*;

#[test]
fn an_invite_is_redeemed_as_often_as_it_allows_then_says_why_not() {
    let dir = tempfile::tempdir().unwrap();
    let store = Invites::in_home(dir.path());
    let (one, two, gone) = ([1u8; 16], [2u8; 16], [3u8; 16]);
    store.add(Pending::new(&one, 1000, 1, "bob"), 0).unwrap();
    store.add(Pending::new(&two, 1000, 2, ""), 0).unwrap();
    store.add(Pending::new(&gone, 1000, 1, ""), 0).unwrap();
    let r = store.redeem(&one, 10).unwrap();
    assert_eq!(
        (r.id.as_str(), r.petname.as_str()),
        (id_of(&one).as_str(), "bob")
    );
    assert_eq!(store.redeem(&one, 11), Err(Refusal::Used(id_of(&one))));
    assert!(store.redeem(&two, 12).is_ok());
    assert!(store.redeem(&two, 13).is_ok());
    assert!(matches!(store.redeem(&two, 14), Err(Refusal::Used(_))));
    assert!(store.revoke(&id_of(&gone), 15).unwrap());
    assert_eq!(store.redeem(&gone, 16), Err(Refusal::Revoked(id_of(&gone))));
    assert_eq!(store.redeem(&[4; 16], 17), Err(Refusal::Unknown));
    // The file holds no secret.
    let text = std::fs::read_to_string(store.path()).unwrap();
    assert!(!text.contains(&hex::encode(one)), "{text}");
}

#[test]
fn a_code_burns_after_three_wrong_tries_and_is_spent_by_one_right_one() {
    let dir = tempfile::tempdir().unwrap();
    let store = Invites::in_home(dir.path());
    let n = store
        .add_code("able-acme-baker-crow", 1000, 1, "", 0)
        .unwrap();
    assert!((100..1000).contains(&n));
    assert_eq!(store.code(n, 1).unwrap().0.as_str(), "able-acme-baker-crow");
    assert_eq!(
        store.code_outcome(n, false, 2),
        Err(Refusal::WrongCode { left: 2 })
    );
    assert_eq!(
        store.code_outcome(n, false, 3),
        Err(Refusal::WrongCode { left: 1 })
    );
    assert_eq!(
        store.code_outcome(n, false, 4),
        Err(Refusal::Burned(n.to_string()))
    );
    assert_eq!(store.code(n, 5), Err(Refusal::Burned(n.to_string())));
    let m = store.add_code("x-y-z-w", 1000, 1, "carol", 6).unwrap();
    assert_eq!(store.code_outcome(m, true, 7).unwrap().petname, "carol");
    assert_eq!(
        store.code_outcome(m, true, 8),
        Err(Refusal::Used(m.to_string()))
    );
}

#[test]
fn expiry_is_refused_and_old_entries_are_forgotten() {
    let dir = tempfile::tempdir().unwrap();
    let store = Invites::in_home(dir.path());
    let s = [5u8; 16];
    store.add(Pending::new(&s, 100, 1, ""), 0).unwrap();
    assert_eq!(store.redeem(&s, 100), Err(Refusal::Expired(id_of(&s))));
    assert_eq!(store.load().unwrap().len(), 1);
    store.revoke("nothing", 100 + KEEP_AFTER).unwrap();
    assert!(store.load().unwrap().is_empty());
}

#[test]
fn dialers_racing_for_a_one_use_invite_get_it_once() {
    let dir = tempfile::tempdir().unwrap();
    let store = Invites::in_home(dir.path());
    let s = [6u8; 16];
    store.add(Pending::new(&s, u64::MAX, 1, ""), 0).unwrap();
    let wins: usize = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..8)
            .map(|_| {
                let store = store.clone();
                scope.spawn(move || usize::from(store.redeem(&s, 1).is_ok()))
            })
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).sum()
    });
    assert_eq!(wins, 1);
}

#[test]
fn lines_it_cannot_read_survive_a_rewrite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Invites::in_home(dir.path());
    store
        .add(Pending::new(&[1; SECRET_LEN], 100, 1, "alice"), 1)
        .unwrap();
    let mut text = std::fs::read_to_string(store.path()).unwrap();
    let typo = "0badc0de HASH 100 1 opne bob";
    let newer = "0badc0df 00 100 1 paused carol";
    text.push_str(&format!("{typo}\n{newer}\n"));
    std::fs::write(store.path(), text).unwrap();
    assert_eq!(store.load().unwrap().len(), 1);
    assert_eq!(store.unreadable().unwrap().len(), 2);
    store
        .add(Pending::new(&[2; SECRET_LEN], 100, 1, "dave"), 1)
        .unwrap();
    store.revoke(&id_of(&[1; SECRET_LEN]), 1).unwrap();
    let after = std::fs::read_to_string(store.path()).unwrap();
    assert!(after.contains(typo) && after.contains(newer), "{after}");
    assert_eq!(after.matches("cannot read").count(), 1, "{after}");
    assert_eq!(store.load().unwrap().len(), 2);
}
