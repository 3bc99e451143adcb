//! The async engine's helper threads: one reads stdin straight into DATA messages, one
//! writes received chunks to stdout, so that the terminal or file and the network work at
//! the same time. Chunks travel as whole buffers through small pools, never copied.

use super::tasks::IN_FLIGHT;
use crate::error::{Error, Result};
use crate::message::{MAX_PLAINTEXT, kind};
use crate::transport::PLAINTEXT_BUF_LEN;
use std::io::{self, Read, Write};
use std::os::fd::AsFd;
use tokio::sync::mpsc;

/// Chunks of stdin, read by a helper thread straight into DATA messages (type byte first).
pub(super) struct StdinChunks {
    pub filled: mpsc::Receiver<io::Result<Vec<u8>>>,
    pub recycle: std::sync::mpsc::Sender<Vec<u8>>,
}

impl StdinChunks {
    pub fn spawn() -> Self {
        let (filled_tx, filled) = mpsc::channel(IN_FLIGHT);
        let (recycle, recycled) = std::sync::mpsc::channel::<Vec<u8>>();
        std::thread::spawn(move || {
            let mut stdin = io::stdin().lock();
            loop {
                // Recycled buffers come back truncated to their last chunk; growing them again
                // only zeroes what a shorter chunk left uninitialised.
                let mut buf = recycled
                    .try_recv()
                    .unwrap_or_else(|_| Vec::with_capacity(MAX_PLAINTEXT));
                buf.resize(MAX_PLAINTEXT, 0);
                buf[0] = kind::DATA;
                let read = loop {
                    match stdin.read(&mut buf[1..]) {
                        Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                        other => break other,
                    }
                };
                let chunk = match read {
                    Ok(0) => return, // dropping the sender signals the end of input
                    Ok(n) => {
                        buf.truncate(1 + n);
                        Ok(buf)
                    }
                    Err(e) => Err(e),
                };
                let failed = chunk.is_err();
                if filled_tx.blocking_send(chunk).is_err() || failed {
                    return;
                }
            }
        });
        StdinChunks { filled, recycle }
    }
}

/// A plaintext buffer and the part of it to write.
type Chunk = (Box<[u8]>, std::ops::Range<usize>);

/// A helper thread writing received chunks to stdout, so the socket and stdout work at once.
/// Chunks travel as whole plaintext buffers with the range to write; buffers come back to be
/// swapped into the receiver again.
pub(super) struct StdoutChunks {
    to_thread: Option<mpsc::Sender<Chunk>>,
    recycled: std::sync::mpsc::Receiver<Box<[u8]>>,
    done: mpsc::Receiver<io::Result<()>>,
    /// How the writer ended, once it has: a resumed connection's END asks again.
    ended: Option<Result<(), (io::ErrorKind, String)>>,
}

impl StdoutChunks {
    pub fn spawn() -> Self {
        let (to_thread, mut chunks) =
            mpsc::channel::<(Box<[u8]>, std::ops::Range<usize>)>(IN_FLIGHT);
        let (recycle, recycled) = std::sync::mpsc::channel();
        let (done_tx, done) = mpsc::channel(1);
        std::thread::spawn(move || {
            let result = (|| {
                // Write to the file descriptor itself: Rust's `Stdout` is line-buffered and
                // would scan every chunk for newlines and copy it once more.
                let mut out = std::fs::File::from(io::stdout().as_fd().try_clone_to_owned()?);
                while let Some((buf, range)) = chunks.blocking_recv() {
                    out.write_all(&buf[range])?;
                    let _ = recycle.send(buf);
                }
                out.flush()
            })();
            let _ = done_tx.blocking_send(result);
        });
        StdoutChunks {
            to_thread: Some(to_thread),
            recycled,
            done,
            ended: None,
        }
    }

    /// A buffer to swap into the receiver: a recycled one of full size, or a new one. (A
    /// recycled buffer can be small: the receiver's first buffer is, and so is one that only
    /// ever held small frames. Handing it back would make the receiver grow it again.)
    pub fn spare(&self) -> Box<[u8]> {
        match self.recycled.try_recv() {
            Ok(buf) if buf.len() >= PLAINTEXT_BUF_LEN => buf,
            _ => vec![0u8; PLAINTEXT_BUF_LEN].into_boxed_slice(),
        }
    }

    /// Queues `buf[range]` for stdout.
    pub async fn write(&mut self, buf: Box<[u8]>, range: std::ops::Range<usize>) -> Result<()> {
        let queued = match &self.to_thread {
            Some(tx) => tx.send((buf, range)).await.is_ok(),
            None => false,
        };
        if queued {
            return Ok(());
        }
        // The writer stopped: its error says why.
        self.finish().await?;
        Err(Error::Internal("the stdout writer stopped".into()))
    }

    /// Waits until everything queued is written and flushed.
    pub async fn finish(&mut self) -> Result<()> {
        self.to_thread = None;
        if self.ended.is_none() {
            self.ended = Some(match self.done.recv().await {
                Some(Ok(())) => Ok(()),
                Some(Err(e)) => Err((e.kind(), crate::error::plain_io(&e))),
                None => Err((io::ErrorKind::Other, "the stdout writer vanished".into())),
            });
        }
        match &self.ended {
            Some(Err((kind, why))) => Err(Error::io(
                "writing stdout",
                io::Error::new(*kind, why.clone()),
            )),
            _ => Ok(()),
        }
    }
}
