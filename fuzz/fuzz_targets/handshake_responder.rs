//! Arbitrary bytes as everything a dialer sends to our handshake responder: it must fail
//! cleanly (the input cannot know our ephemeral key, so it can never complete a handshake).
#![no_main]

use libfuzzer_sys::fuzz_target;
use schat::framed::{FrameReader, FrameWriter};
use schat::handshake;
use schat::keys::Identity;
use std::sync::OnceLock;

fuzz_target!(|data: &[u8]| {
    static ID: OnceLock<Identity> = OnceLock::new();
    let id = ID.get_or_init(|| Identity::generate().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let result = rt.block_on(handshake::respond(
        id,
        FrameReader::new(data),
        FrameWriter::new(tokio::io::sink()),
    ));
    assert!(result.is_err());
});
