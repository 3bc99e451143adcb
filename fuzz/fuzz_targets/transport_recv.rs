//! After a genuine handshake, arbitrary bytes as the rest of the dialer's stream: the session
//! must end with an error (the input cannot forge an authenticated message), never a panic.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schat::framed::{FrameReader, FrameWriter};
use schat::handshake::{self, PATTERN, PROLOGUE, noise_builder};
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
            let key = snow::Builder::new(PATTERN.parse().unwrap())
                .generate_keypair()
                .unwrap();
            let mut noise = noise_builder(&key.private, PROLOGUE)
                .unwrap()
                .build_initiator()
                .unwrap();
            let mut reader = FrameReader::new(ar);
            let mut buf = vec![0u8; 65535];
            let n = noise.write_message(&[], &mut buf).unwrap();
            let mut out = FrameWriter::new(&mut aw);
            out.write_frame(&buf[..n]).await.unwrap();
            let msg2 = reader.read_frame().await.unwrap().unwrap().to_vec();
            noise.read_message(&msg2, &mut buf).unwrap();
            let n = noise.write_message(&[], &mut buf).unwrap();
            out.write_frame(&buf[..n]).await.unwrap();
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
