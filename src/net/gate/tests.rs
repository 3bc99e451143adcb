use super::*;

fn src(text: &str) -> Source {
    Source::of(text.parse().unwrap())
}

fn limits(max_pending: usize, per_source: usize) -> GateLimits {
    GateLimits {
        max_pending,
        per_source,
        report_every: Duration::from_secs(10),
        stale_after: Duration::from_secs(2),
        stalled_after: Duration::from_secs(1),
        silent_after: Duration::from_secs(5),
        rate: HandshakeRate {
            per_sec: 10.0,
            burst: 4.0,
        },
    }
}

fn ticket(a: Admit<u32>) -> (u64, Option<u32>) {
    match a {
        Admit::Admitted { ticket, evicted } => (ticket, evicted.map(|(h, _)| h)),
        other => panic!("not admitted: {other:?}"),
    }
}

#[test]
fn one_source_is_capped_and_then_summarised() {
    let mut gate = Gate::<u32>::new(limits(64, 3));
    let now = Instant::now();
    let attacker = src("127.0.0.2");
    for _ in 0..3 {
        ticket(gate.admit(attacker, now));
    }
    for _ in 0..WAITING_PER_SOURCE {
        assert_eq!(gate.admit(attacker, now), Admit::Wait);
    }
    for _ in 0..201 - WAITING_PER_SOURCE {
        assert_eq!(gate.admit(attacker, now), Admit::Refused { log: None });
    }
    // A failed handshake of a penalised source is not logged line by line.
    assert_eq!(gate.event(attacker, |s| format!("{s} failed")), None);
    // Another address is unaffected.
    let friend = src("127.0.0.1");
    ticket(gate.admit(friend, now));
    assert_eq!(
        gate.event(friend, |s| format!("{s} failed")),
        Some("127.0.0.1 failed".into())
    );
    let lines = gate.report(now);
    assert_eq!(lines.len(), 1, "{lines:?}");
    assert!(
        // 137 refusals and the failed handshake.
        lines[0].contains(&format!("127.0.0.2: {} refused", 202 - WAITING_PER_SOURCE)),
        "{lines:?}"
    );
    // Nothing more until the next interval.
    assert!(gate.report(now + Duration::from_secs(1)).is_empty());
}

#[test]
fn a_full_gate_evicts_the_busiest_source_oldest_first() {
    let mut gate = Gate::<u32>::new(limits(4, 4));
    let t0 = Instant::now();
    let busy = src("10.0.0.1");
    let mut tickets = Vec::new();
    for i in 0..4u32 {
        let (t, _) = ticket(gate.admit(busy, t0 + Duration::from_millis(u64::from(i))));
        gate.attach(t, i);
        tickets.push(t);
    }
    let (_, evicted) = ticket(gate.admit(src("10.0.0.2"), t0 + Duration::from_secs(1)));
    assert_eq!(evicted, Some(0), "the oldest of the busiest source goes");
    assert_eq!(gate.pending(), 4);
    // The busy source cannot evict the newcomer back: it would not hold fewer slots.
    assert!(matches!(
        gate.admit(busy, t0 + Duration::from_secs(2)),
        Admit::Refused { .. }
    ));
    gate.finished(tickets[1], false);
    assert_eq!(gate.pending(), 3);
    ticket(gate.admit(busy, t0 + Duration::from_secs(3)));
}

#[test]
fn over_its_cap_a_source_waits_its_turn() {
    let mut gate = Gate::<u32>::new(limits(64, 2));
    let now = Instant::now();
    let s = src("10.0.0.7");
    let (first, _) = ticket(gate.admit(s, now));
    ticket(gate.admit(s, now));
    assert_eq!(gate.admit(s, now), Admit::Wait);
    assert_eq!(gate.admit(s, now), Admit::Wait);
    // Still no slot: back in line.
    assert_eq!(gate.resume(s, now), Admit::Wait);
    gate.finished(first, false);
    ticket(gate.resume(s, now));
    gate.abandon(s);
    assert_eq!(gate.sources[&s].waiting, 0);
    // Waiting is not misbehaving: nothing to summarise.
    assert!(gate.report(now).is_empty());
}

#[test]
fn equal_sources_refuse_newcomers_until_a_handshake_is_stale() {
    let mut gate = Gate::<u32>::new(limits(2, 4));
    let now = Instant::now();
    let (first, _) = ticket(gate.admit(src("10.0.0.1"), now));
    gate.attach(first, 1);
    ticket(gate.admit(src("10.0.0.2"), now + Duration::from_secs(1)));
    assert!(matches!(
        gate.admit(src("10.0.0.3"), now + Duration::from_secs(1)),
        Admit::Refused { log: Some(_) }
    ));
    // Many sources with one silent slot each: the stalest makes way.
    let (_, evicted) = ticket(gate.admit(src("10.0.0.4"), now + Duration::from_secs(3)));
    assert_eq!(evicted, Some(1));
}

#[test]
fn one_source_gets_a_few_lines_then_a_summary() {
    let mut gate = Gate::<u32>::new(limits(64, 8));
    let s = src("10.0.0.5");
    let logged = (0..100)
        .filter(|_| gate.event(s, |_| "failed".into()).is_some())
        .count();
    assert_eq!(logged, LINES_PER_SOURCE as usize);
    let lines = gate.report(Instant::now());
    assert!(lines[0].contains("90 refused"), "{lines:?}");
}

#[test]
fn waiting_is_bounded_in_all() {
    let mut gate = Gate::<u32>::new(limits(4, 1));
    let now = Instant::now();
    let mut waiting = 0;
    for i in 0..4u8 {
        let s = src(&format!("10.1.0.{i}"));
        ticket(gate.admit(s, now));
        for _ in 0..20 {
            if gate.admit(s, now) == Admit::Wait {
                waiting += 1;
            }
        }
    }
    assert_eq!(waiting, 8, "twice max_pending");
}

#[test]
fn penalties_decay_and_quiet_sources_are_forgotten() {
    let mut gate = Gate::<u32>::new(limits(8, 1));
    let t0 = Instant::now();
    let s = src("10.0.0.9");
    let (t, _) = ticket(gate.admit(s, t0));
    let mut waited = 0;
    while gate.admit(s, t0) == Admit::Wait {
        waited += 1;
    }
    assert!(waited > 0);
    for _ in 0..waited {
        gate.abandon(s);
    }
    gate.finished(t, true);
    let mut at = t0;
    for _ in 0..8 {
        at += Duration::from_secs(10);
        gate.report(at);
    }
    assert!(gate.sources.is_empty());
    assert!(gate.event(s, |_| "logged again".into()).is_some());
}

#[test]
fn ipv6_sources_are_counted_per_64() {
    assert_eq!(src("2001:db8::1"), src("2001:db8::ffff:1"));
    assert_ne!(src("2001:db8::1"), src("2001:db8:0:1::1"));
    assert_eq!(src("::ffff:10.1.2.3"), src("10.1.2.3"));
    assert_eq!(src("2001:db8::1").to_string(), "2001:db8::/64");
}

#[test]
fn a_ready_newcomer_replaces_its_own_sources_stalled_handshake() {
    let mut gate = Gate::<u32>::new(limits(64, 2));
    let t0 = Instant::now();
    let nat = src("10.0.0.8");
    let (a, _) = ticket(gate.admit(nat, t0));
    let (b, _) = ticket(gate.admit(nat, t0));
    gate.attach(a, 1);
    gate.attach(b, 2);
    assert_eq!(gate.admit(nat, t0), Admit::Wait);
    // Nothing has stalled yet: the waiting connection keeps waiting.
    assert_eq!(gate.replace_stalled(nat, t0), Admit::Wait);
    // `a` made progress (its message 1 arrived); `b` started one and stopped.
    gate.progress(a);
    gate.started(b);
    let t1 = t0 + Duration::from_millis(1200);
    assert!(gate.stalled(nat, t1));
    let (c, evicted) = ticket(gate.replace_stalled(nat, t1));
    assert_eq!(
        evicted,
        Some(2),
        "the stalled one goes, not the one that moved on"
    );
    assert_eq!(gate.sources[&nat].pending, 2);
    assert_eq!(gate.sources[&nat].waiting, 0);
    // `a` sent message 1: however slow its dialer is with message 3, it never counts as
    // stalled. The newcomer `c` has sent nothing: a dialer slow to compute message 1 gets
    // longer (silent_after) before it counts as stalled.
    assert!(!gate.stalled(nat, t1 + Duration::from_secs(4)));
    let later = t1 + Duration::from_secs(60);
    assert_eq!(gate.oldest_stalled(nat, later), Some(c));
    gate.progress(c);
    assert!(!gate.stalled(nat, later));
}

#[test]
fn message_1_is_paced_per_source_and_other_sources_are_not() {
    let mut gate = Gate::<u32>::new(limits(64, 8));
    let t0 = Instant::now();
    let replayer = src("10.0.0.3");
    // A burst of 4, then one every 100 ms, waited for up to RATE_PATIENCE.
    for _ in 0..4 {
        assert_eq!(gate.pace(replayer, t0), Some(Duration::ZERO));
    }
    let mut waits = 0;
    while let Some(wait) = gate.pace(replayer, t0) {
        assert!(wait <= RATE_PATIENCE);
        waits += 1;
    }
    assert_eq!(waits, 20, "2 s of patience at 10 a second");
    assert!(gate.pace(replayer, t0).is_none());
    assert_eq!(gate.pace(src("10.0.0.4"), t0), Some(Duration::ZERO));
    // The refused connection's line is summarised, and the source is remembered while it
    // is paced.
    assert_eq!(gate.event(replayer, |_| "closed".into()), None);
    assert!(!gate.report(t0).is_empty());
    assert!(gate.sources.contains_key(&replayer));
}
