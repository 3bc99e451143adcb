use super::*;

#[test]
fn the_endpoint_key_is_stable_labelled_and_not_the_identity() {
    let id = Identity::generate().unwrap();
    let a = endpoint_key(&id);
    assert_eq!(a.to_bytes(), endpoint_key(&id).to_bytes());
    assert_ne!(a.to_bytes(), *id.secret().expose());
    assert_ne!(
        a.to_bytes(),
        endpoint_key(&Identity::generate().unwrap()).to_bytes()
    );
    // The derivation PROTOCOL.md §11 gives, by hand.
    let hk = Hkdf::<Sha256>::new(Some(b"schat/2 iroh endpoint key"), id.secret().expose());
    let mut okm = [0u8; 32];
    hk.expand(&[], &mut okm).unwrap();
    assert_eq!(a.to_bytes(), okm);
}

/// The PROTOCOL.md §11 vector: the endpoint key of the identity whose secret is 0x11 × 32.
#[test]
fn protocol_md_endpoint_key_vector() {
    let id = Identity::from_secret(crate::keys::SecretKey::from_bytes(Zeroizing::new(
        [0x11; 32],
    )));
    let key = endpoint_key(&id);
    let (secret, public) = (hex::encode(key.to_bytes()), key.public().to_string());
    println!("endpoint secret {secret}\nendpoint id {public}");
    let doc = include_str!("../../../PROTOCOL.md");
    assert!(
        doc.contains(&secret) && doc.contains(&public),
        "{secret} {public}"
    );
}

#[test]
fn relay_urls_choose_qad_by_scheme_and_refuse_junk() {
    assert!(
        relay_config("https://relay.example.org/")
            .unwrap()
            .quic
            .is_some()
    );
    assert!(
        relay_config("http://127.0.0.1:3340/")
            .unwrap()
            .quic
            .is_none()
    );
    for bad in ["relay.example.org", "ftp://x/", "http://a b/", ""] {
        assert!(relay_config(bad).is_err(), "{bad}");
    }
}

#[test]
fn a_ticket_target_needs_a_valid_endpoint_id() {
    assert!(
        target(&[TicketAddr::Ip([192, 0, 2, 1].into(), 1)])
            .unwrap()
            .is_none()
    );
    let good = SecretKey::generate().public();
    let parts = [
        TicketAddr::Endpoint(*good.as_bytes()),
        TicketAddr::Relay("http://127.0.0.1:3340/".into()),
        TicketAddr::Udp("127.0.0.1:4000".parse().unwrap()),
    ];
    let addr = target(&parts).unwrap().unwrap();
    assert_eq!(addr.id, good);
    assert_eq!(addr.ip_addrs().count(), 1);
    assert_eq!(addr.relay_urls().count(), 1);
    // Not a point on the curve.
    let mut bad = [0xffu8; 32];
    bad[31] = 0x7f;
    if iroh::PublicKey::from_bytes(&bad).is_err() {
        assert!(target(&[TicketAddr::Endpoint(bad)]).is_err());
    }
}
