use super::*;

fn sample() -> Ticket {
    Ticket {
        key: PublicKey::from_bytes([7; 32]),
        secret: Some(Zeroizing::new([9; SECRET_LEN])),
        expires: 1_800_000_000,
        name: "alice".into(),
        addrs: vec![
            TicketAddr::Ip("192.0.2.7".parse().unwrap(), 12345),
            TicketAddr::Ip("2001:db8::1".parse().unwrap(), 443),
            TicketAddr::Host("chat.example.org".into(), 12345),
        ],
    }
}

#[test]
fn round_trips_in_either_case_and_keeps_the_secret_out_of_debug() {
    let t = sample();
    let text = t.encode();
    assert!(text.starts_with("schat:") && !text.contains('='), "{text}");
    assert_eq!(Ticket::decode(&text).unwrap(), t);
    assert_eq!(
        Ticket::decode(&format!("  {}\n", text.to_uppercase())).unwrap(),
        t
    );
    assert!(!format!("{t:?}").contains("09"), "{t:?}");
    assert_eq!(t.id().unwrap().len(), 8);
}

#[test]
fn any_changed_or_missing_character_is_caught() {
    let text = sample().encode();
    let body = &text[PREFIX.len()..];
    for i in 0..body.len() {
        let mut changed: Vec<u8> = body.bytes().collect();
        changed[i] = if changed[i] == b'a' { b'b' } else { b'a' };
        let changed = format!("{PREFIX}{}", String::from_utf8(changed).unwrap());
        assert!(
            Ticket::decode(&changed).is_err(),
            "change at {i} not caught"
        );
    }
    for cut in [1, 2, 7, body.len() / 2] {
        assert!(
            Ticket::decode(&text[..text.len() - cut]).is_err(),
            "cut {cut}"
        );
    }
    assert_eq!(Ticket::decode("https://x"), Err(TicketError::Prefix));
    assert_eq!(Ticket::decode("schat:!!"), Err(TicketError::Encoding));
}

#[test]
fn another_version_says_so() {
    let mut bytes = vec![3u8; 40];
    let sum = check(&bytes);
    bytes.extend_from_slice(&sum);
    let text = format!(
        "{PREFIX}{}",
        BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
    );
    assert_eq!(Ticket::decode(&text), Err(TicketError::Version(3)));
}

fn p2p_sample(secret: bool) -> Ticket {
    Ticket {
        key: PublicKey::from_bytes([7; 32]),
        secret: secret.then(|| Zeroizing::new([9; SECRET_LEN])),
        expires: if secret { 1_800_000_000 } else { 0 },
        name: "alice".into(),
        addrs: vec![
            TicketAddr::Ip("192.0.2.7".parse().unwrap(), 12345),
            TicketAddr::Endpoint([5; 32]),
            TicketAddr::Relay("https://relay.example.org./".into()),
            TicketAddr::Udp("192.0.2.7:40000".parse().unwrap()),
            TicketAddr::Udp("[2001:db8::1]:40001".parse().unwrap()),
        ],
    }
}

#[test]
fn iroh_addresses_and_address_only_tickets_are_version_2() {
    for secret in [true, false] {
        let t = p2p_sample(secret);
        let text = t.encode();
        let bytes = BASE32_NOPAD
            .decode(text[PREFIX.len()..].to_ascii_uppercase().as_bytes())
            .unwrap();
        assert_eq!(bytes[..2], [VERSION_2, u8::from(secret)]);
        assert_eq!(Ticket::decode(&text).unwrap(), t);
        assert_eq!(t.id().is_some(), secret);
        assert_eq!(t.endpoint(), Some([5; 32]));
        assert_eq!(t.tcp_addrs().count(), 1);
    }
    // An invite over TCP only stays v1, readable by older schat.
    assert_eq!(sample().encode().as_bytes()[PREFIX.len()], b'a');
}

/// Encodes `payload` (without its check) as ticket text.
fn with_check(mut payload: Vec<u8>) -> String {
    let sum = check(&payload);
    payload.extend_from_slice(&sum);
    format!(
        "{PREFIX}{}",
        BASE32_NOPAD.encode(&payload).to_ascii_lowercase()
    )
}

#[test]
fn bad_iroh_parts_are_refused_even_with_a_good_check() {
    let head = |flags: u8| {
        let mut b = vec![VERSION_2, flags];
        b.extend_from_slice(&[7; 32]);
        b.push(0); // no name
        b
    };
    let cases: Vec<(Vec<u8>, &str)> = vec![
        // A relay without an endpoint id.
        (
            [&head(0)[..], &[1, 0x21, 8], b"https://"].concat(),
            "iroh addresses without one endpoint id",
        ),
        // Two endpoint ids.
        (
            [&head(0)[..], &[2, 0x20], &[1; 32], &[0x20], &[2; 32]].concat(),
            "iroh addresses without one endpoint id",
        ),
        // A relay URL that is not http(s).
        (
            [&head(0)[..], &[2, 0x20], &[1; 32], &[0x21, 4], b"ftp:"].concat(),
            "a relay URL is not a URL",
        ),
        // A relay URL with a control character.
        (
            [
                &head(0)[..],
                &[2, 0x20],
                &[1; 32],
                &[0x21, 9],
                b"http://\x1b[",
            ]
            .concat(),
            "a relay URL is not a URL",
        ),
        // Unknown flags.
        ([&head(2)[..], &[0]].concat(), "unknown flags"),
    ];
    for (payload, why) in cases {
        assert_eq!(
            Ticket::decode(&with_check(payload)),
            Err(TicketError::Malformed(why))
        );
    }
    // Iroh address kinds are not part of v1.
    let mut v1 = vec![VERSION];
    v1.extend_from_slice(&[7; 32]);
    v1.extend_from_slice(&[9; SECRET_LEN]);
    v1.extend_from_slice(&[0; 8]);
    v1.extend_from_slice(&[0, 1, 0x20]);
    v1.extend_from_slice(&[1; 32]);
    assert_eq!(
        Ticket::decode(&with_check(v1)),
        Err(TicketError::Malformed("unknown address kind"))
    );
}

#[test]
fn a_wrong_length_inside_is_refused_even_with_a_good_check() {
    let mut t = sample();
    t.addrs.clear();
    let text = t.encode();
    let mut bytes = BASE32_NOPAD
        .decode(text[PREFIX.len()..].to_ascii_uppercase().as_bytes())
        .unwrap();
    bytes.truncate(bytes.len() - CHECK_LEN);
    bytes.push(0); // a byte left over
    let sum = check(&bytes);
    bytes.extend_from_slice(&sum);
    let text = format!(
        "{PREFIX}{}",
        BASE32_NOPAD.encode(&bytes).to_ascii_lowercase()
    );
    assert_eq!(
        Ticket::decode(&text),
        Err(TicketError::Malformed("bytes left over"))
    );
}

mod vector {
    use super::super::*;

    /// Prints the PROTOCOL.md §10 vector (run with --nocapture when the format changes).
    #[test]
    fn protocol_md_vector() {
        let t = Ticket {
            key: PublicKey::from_bytes([7; 32]),
            secret: Some(Zeroizing::new([9; SECRET_LEN])),
            expires: 1_800_000_000,
            name: "alice".into(),
            addrs: vec![TicketAddr::Ip("192.0.2.7".parse().unwrap(), 12345)],
        };
        let text = t.encode();
        println!("{text}");
        let id = t.id().unwrap();
        println!("id {id}");
        let doc = include_str!("../../../PROTOCOL.md");
        assert!(doc.contains(&text), "{text}");
        assert!(doc.contains(&format!("id `{id}`")), "{id}");
        // The v2 vector: the same listener's address, reachable over TCP and iroh.
        let p2p = Ticket {
            key: PublicKey::from_bytes([7; 32]),
            secret: None,
            expires: 0,
            name: "alice".into(),
            addrs: vec![
                TicketAddr::Ip("192.0.2.7".parse().unwrap(), 12345),
                TicketAddr::Endpoint([5; 32]),
                TicketAddr::Relay("https://relay.example.org/".into()),
                TicketAddr::Udp("192.0.2.7:40000".parse().unwrap()),
            ],
        };
        let text = p2p.encode();
        println!("{text}");
        assert!(doc.contains(&text), "{text}");
    }

    #[test]
    fn a_tickets_relay_is_an_https_origin_or_loopback_http() {
        for good in [
            "https://relay.example.org/",
            "https://relay.example.org",
            "https://relay.example.org.:8443/",
            "https://[2001:db8::1]:443/",
            "http://127.0.0.1:3340/",
            "http://[::1]:3340/",
            "http://localhost:3340",
        ] {
            assert!(ticket_relay_ok(good, &[]), "{good}");
        }
        for bad in [
            "http://127.0.0.1:23460/x/y?z=1#frag",
            "https://relay.example.org/relay",
            "https://relay.example.org/?z=1",
            "https://relay.example.org/#x",
            "https://user@relay.example.org/",
            "https://relay.example.org:99999/",
            "https://relay.example.org:/",
            "http://192.168.1.5:3340/",
            "http://relay.example.org/",
            "ftp://relay.example.org/",
        ] {
            assert!(!ticket_relay_ok(bad, &[]), "{bad}");
        }
        // Plain http on the LAN only when the user named that relay with --relay.
        let lan = "http://192.168.1.5:3340/".to_string();
        assert!(ticket_relay_ok(&lan, std::slice::from_ref(&lan)));
    }
}
