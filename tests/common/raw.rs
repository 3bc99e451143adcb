//! A hand-driven schat/2 peer for tests that play a hostile or scripted side: the Noise
//! handshake with a fresh key, then sealed messages written frame by frame, nothing checked.

use schat::framed::{FrameReader, FrameWriter};
use schat::handshake::core::{Initiator, Randomness, Responder};
use schat::keys::Identity;
use tokio::net::TcpStream;
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

/// An established raw session.
pub struct Raw {
    pub noise: schat::cipher::CipherPair,
    pub r: FrameReader<OwnedReadHalf>,
    pub w: FrameWriter<OwnedWriteHalf>,
}

impl Raw {
    /// Answers a dialer's handshake on `stream` as a schat/2 listener would.
    pub async fn respond(stream: TcpStream) -> Raw {
        let identity = Identity::generate().unwrap();
        let (r, w) = stream.into_split();
        let (mut r, mut w) = (FrameReader::new(r), FrameWriter::new(w));
        let m1 = r.read_frame().await.unwrap().unwrap().to_vec();
        let state = Responder::read_message_1(&identity, &Randomness::default(), &m1).unwrap();
        let (state, m2) = state.write_message_2().unwrap();
        w.write_frame(&m2).await.unwrap();
        let m3 = r.read_frame().await.unwrap().unwrap().to_vec();
        let done = state.read_message_3(&m3).unwrap();
        Raw {
            noise: done.ciphers,
            r,
            w,
        }
    }

    /// Plays a listener with its own key up to message 2, then waits (at most 10 s) for
    /// message 3: what arrived (`Ok(None)`: the dialer hung up, as it should with an impostor).
    pub async fn impostor(
        stream: TcpStream,
    ) -> Result<schat::Result<Option<Vec<u8>>>, tokio::time::error::Elapsed> {
        let identity = Identity::generate().unwrap();
        let (r, w) = stream.into_split();
        let (mut r, mut w) = (FrameReader::new(r), FrameWriter::new(w));
        let m1 = r.read_frame().await.unwrap().unwrap().to_vec();
        let state = Responder::read_message_1(&identity, &Randomness::default(), &m1).unwrap();
        let (_, m2) = state.write_message_2().unwrap();
        w.write_frame(&m2).await.unwrap();
        tokio::time::timeout(std::time::Duration::from_secs(10), async {
            r.read_frame().await.map(|f| f.map(|f| f.to_vec()))
        })
        .await
    }

    /// Dials as a schat/2 dialer would (accepting any listener key); `None` if the listener
    /// ends the handshake.
    pub async fn initiate(stream: TcpStream) -> Option<Raw> {
        let identity = Identity::generate().unwrap();
        let (r, w) = stream.into_split();
        let (mut r, mut w) = (FrameReader::new(r), FrameWriter::new(w));
        let (state, m1) = Initiator::start(&identity, &Randomness::default()).unwrap();
        w.write_frame(&m1).await.ok()?;
        let m2 = r.read_frame().await.ok()??.to_vec();
        let (state, _) = state.read_message_2(&m2).ok()?;
        let (done, m3) = state.write_message_3().unwrap();
        w.write_frame(&m3).await.ok()?;
        Some(Raw {
            noise: done.ciphers,
            r,
            w,
        })
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

    /// The next message from the peer, opened (`None`: it hung up, or sent what does not open).
    pub async fn recv(&mut self) -> Option<Vec<u8>> {
        let frame = self.r.read_frame().await.ok()??.to_vec();
        let mut plain = vec![0u8; frame.len()];
        let n = self.noise.read_message(&frame, &mut plain).ok()?;
        plain.truncate(n);
        Some(plain)
    }

    /// Reads and drops frames until the peer hangs up.
    pub async fn drain(&mut self) {
        while let Ok(Some(_)) = self.r.read_frame().await {}
    }
}

/// A raw listener on 127.0.0.1 port 0 speaking schat/2 as responder: it handshakes, sends
/// `opening` (type byte + body each), reads the dialer's messages up to the first of type
/// `until` (if any: waiting for a kind, not counting frames, keeps the script right whatever
/// extensions the dialer says first), sends `then`, and reads until the dialer hangs up (so
/// its close cannot race the dialer's last reads).
pub async fn scripted_listener(
    opening: Vec<Vec<u8>>,
    until: Option<u8>,
    then: Vec<Vec<u8>>,
) -> u16 {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = listener.local_addr().unwrap().port();
    tokio::spawn(async move {
        let (stream, _) = listener.accept().await.unwrap();
        let mut peer = Raw::respond(stream).await;
        for plain in opening {
            peer.send(plain[0], &plain[1..]).await;
        }
        if let Some(kind) = until {
            loop {
                match peer.recv().await {
                    Some(m) if m.first() == Some(&kind) => break,
                    Some(_) => {}
                    None => return,
                }
            }
        }
        for plain in then {
            peer.send(plain[0], &plain[1..]).await;
        }
        peer.drain().await;
    });
    port
}

/// A plaintext message: its type byte, then `body`.
pub fn msg(kind: u8, body: &[u8]) -> Vec<u8> {
    let mut v = vec![kind];
    v.extend_from_slice(body);
    v
}
