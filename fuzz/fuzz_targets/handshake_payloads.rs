//! Arbitrary handshake *payloads*, properly encrypted by a hand-built schat/2 peer: as message
//! 1's KEM key to our responder, and as message 2's KEM ciphertext to our initiator. Every
//! length and content must end cleanly (an error, or for a valid key a finished message 2),
//! never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schat::handshake::core::{Initiator, Randomness, Responder};
use schat::handshake::{PATTERN, PROLOGUE, noise_builder_for};
use schat::keys::Identity;
use std::sync::OnceLock;

fn peer(initiator: bool) -> snow::HandshakeState {
    let key = snow::Builder::new(PATTERN.parse().unwrap())
        .generate_keypair()
        .unwrap();
    let b = noise_builder_for(PATTERN, &key.private, PROLOGUE).unwrap();
    if initiator {
        b.build_initiator().unwrap()
    } else {
        b.build_responder().unwrap()
    }
}

fuzz_target!(|data: &[u8]| {
    static ID: OnceLock<Identity> = OnceLock::new();
    let id = ID.get_or_init(|| Identity::generate().unwrap());
    let Some((&which, payload)) = data.split_first() else {
        return;
    };
    let payload = &payload[..payload.len().min(2000)];
    let mut buf = vec![0u8; 4096];
    if which % 2 == 0 {
        // Message 1 with this payload, to our responder.
        let mut dialer = peer(true);
        let n = dialer.write_message(payload, &mut buf).unwrap();
        if let Ok(state) = Responder::read_message_1(id, &Randomness::default(), &buf[..n]) {
            assert_eq!(payload.len(), schat::kem::EK_LEN);
            let _ = state.write_message_2().unwrap();
        }
    } else {
        // Message 2 with this payload, to our initiator.
        let (state, msg1) = Initiator::start(id, &Randomness::default()).unwrap();
        let mut listener = peer(false);
        listener.read_message(&msg1, &mut buf).unwrap();
        let n = listener.write_message(payload, &mut buf).unwrap();
        if state.read_message_2(&buf[..n]).is_ok() {
            assert_eq!(payload.len(), schat::kem::CT_LEN);
        }
    }
});
