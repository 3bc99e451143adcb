//! After a genuine handshake, arbitrary bytes as the rest of the dialer's stream: the session
//! must end with an error (the input cannot forge an authenticated message), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schat::framed::{FrameReader, FrameWriter};
use schat::handshake::{self, core};
use schat::keys::Identity;
use std::sync::OnceLock;
use tokio::io::AsyncWriteExt;

fuzz_target!(|data: &[u8]| {
    static ID: OnceLock<Identity> = OnceLock::new();
    let id = ID.get_or_init(|| Identity::generate().unwrap());
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    let data = data.to_vec();
    let delivered = rt.block_on(async move {
        let (a, b) = tokio::io::duplex(1 << 17);
        let (ar, mut aw) = tokio::io::split(a);
        let (br, bw) = tokio::io::split(b);
        let dialer = async {
            let me = Identity::generate().unwrap();
            let (state, msg1) = core::Initiator::start(&me, &core::Randomness::default()).unwrap();
            let mut reader = FrameReader::new(ar);
            let mut out = FrameWriter::new(&mut aw);
            out.write_frame(&msg1).await.unwrap();
            let msg2 = reader.read_frame().await.unwrap().unwrap().to_vec();
            let (state, _) = state.read_message_2(&msg2).unwrap();
            let (_, msg3) = state.write_message_3().unwrap();
            out.write_frame(&msg3).await.unwrap();
            aw.write_all(&data).await.unwrap();
            aw.shutdown().await.unwrap();
        };
        let listener = async {
            let mut session = handshake::respond(id, FrameReader::new(br), FrameWriter::new(bw))
                .await
                .unwrap();
            let mut delivered = 0;
            while let Ok(Some(_)) = session.recv.recv().await {
                delivered += 1;
            }
            delivered
        };
        tokio::join!(dialer, listener).1
    });
    assert_eq!(delivered, 0);
});
