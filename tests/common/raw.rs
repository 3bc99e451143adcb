//! A hand-driven schat/1 peer for tests that play a hostile or scripted side: the Noise
//! handshake with a fresh key, then sealed messages written frame by frame, nothing checked.

use schat::framed::{FrameReader, FrameWriter};
use schat::handshake::{PATTERN, PROLOGUE, noise_builder};
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// An established raw session.
pub struct Raw {
    pub noise: snow::TransportState,
    pub r: FrameReader<OwnedReadHalf>,
    pub w: FrameWriter<OwnedWriteHalf>,
}

impl Raw {
    /// Answers a dialer's handshake on `stream` as a schat/1 listener would.
    pub async fn respond(stream: TcpStream) -> Raw {
        let key = snow::Builder::new(PATTERN.parse().unwrap())
            .generate_keypair()
            .unwrap();
        let mut noise = noise_builder(&key.private, PROLOGUE)
            .unwrap()
            .build_responder()
            .unwrap();
        let (r, w) = stream.into_split();
        let (mut r, mut w) = (FrameReader::new(r), FrameWriter::new(w));
        let mut buf = vec![0u8; 1024];
        let m1 = r.read_frame().await.unwrap().unwrap().to_vec();
        noise.read_message(&m1, &mut buf).unwrap();
        let n = noise.write_message(&[], &mut buf).unwrap();
        w.write_frame(&buf[..n]).await.unwrap();
        let m3 = r.read_frame().await.unwrap().unwrap().to_vec();
        noise.read_message(&m3, &mut buf).unwrap();
        Raw {
            noise: noise.into_transport_mode().unwrap(),
            r,
            w,
        }
    }

    /// Seals and sends one message (type byte `kind`, then `body`); `false` once the peer is
    /// gone.
    pub async fn send(&mut self, kind: u8, body: &[u8]) -> bool {
        let mut plain = Vec::with_capacity(1 + body.len());
        plain.push(kind);
        plain.extend_from_slice(body);
        let mut sealed = vec![0u8; plain.len() + 16];
        let n = self.noise.write_message(&plain, &mut sealed).unwrap();
        self.w.write_frame(&sealed[..n]).await.is_ok()
    }

    /// Reads and drops frames until the peer hangs up.
    pub async fn drain(&mut self) {
        while let Ok(Some(_)) = self.r.read_frame().await {}
    }
}
