//! Arbitrary bytes through the pure codecs: the frame parser, the message decoder (whose
//! accepted inputs must re-encode to themselves) and the buffered frame reader.
#![no_main]

use libfuzzer_sys::fuzz_target;
use schat::frame;
use schat::framed::FrameReader;
use schat::message::Message;

fuzz_target!(|data: &[u8]| {
    if frame::parse(data).is_none() {
        assert!(frame::missing(data) > 0);
    }
    if let Ok(msg) = Message::decode(data) {
        let mut again = Vec::new();
        msg.encode_into(&mut again).unwrap();
        assert_eq!(again, data);
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    rt.block_on(async {
        let mut reader = FrameReader::new(data);
        while let Ok(Some(_)) = reader.read_frame().await {}
    });
});
