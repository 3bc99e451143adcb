//! The byte streams a session runs over, whatever carried them: one TCP connection, or one
//! bidirectional QUIC stream of an iroh connection (its sending half, [`QuicWriter`], lives
//! here: the stream knows nothing of the endpoint that made it). Sessions see only `AsyncRead`/`AsyncWrite`;
//! these enums keep that static (no boxing) and let both transports feed one room.

use crate::framed::Detach;
use iroh::endpoint::{Connection, SendStream};
use std::fmt;
use std::io;
use std::pin::Pin;
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::task::JoinHandle;

/// The receiving half of a session's stream.
#[derive(Debug)]
pub enum Reader {
    Tcp(OwnedReadHalf),
    Quic(iroh::endpoint::RecvStream),
}

/// The sending half of a session's stream.
#[derive(Debug)]
pub enum Writer {
    Tcp(OwnedWriteHalf),
    Quic(QuicWriter),
}

impl AsyncRead for Reader {
    fn poll_read(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Reader::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            Reader::Quic(r) => Pin::new(r).poll_read(cx, buf),
        }
    }
}

impl AsyncWrite for Writer {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Writer::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            Writer::Quic(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            Writer::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            Writer::Quic(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            Writer::Tcp(w) => w.is_write_vectored(),
            Writer::Quic(w) => w.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Writer::Tcp(w) => Pin::new(w).poll_flush(cx),
            Writer::Quic(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            Writer::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            Writer::Quic(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// A dup of a tokio socket's descriptor as a `std` socket. The descriptors share one open file
/// description, so the caller switches it to blocking mode once tokio has let go of both halves.
fn dup(socket: &tokio::net::TcpStream) -> io::Result<std::net::TcpStream> {
    use std::os::fd::AsFd;
    Ok(std::net::TcpStream::from(
        socket.as_fd().try_clone_to_owned()?,
    ))
}

impl Detach for Reader {
    fn detachable(&self) -> bool {
        matches!(self, Reader::Tcp(_))
    }

    fn detach(self) -> Result<std::net::TcpStream, (Self, io::Error)> {
        match self {
            // Dropping tokio's half deregisters it; the socket stays open through the dup.
            Reader::Tcp(half) => match dup(half.as_ref()) {
                Ok(socket) => Ok(socket),
                Err(e) => Err((Reader::Tcp(half), e)),
            },
            quic @ Reader::Quic(_) => Err((quic, unsupported())),
        }
    }
}

impl Detach for Writer {
    fn detachable(&self) -> bool {
        matches!(self, Writer::Tcp(_))
    }

    fn detach(self) -> Result<std::net::TcpStream, (Self, io::Error)> {
        match self {
            Writer::Tcp(half) => match dup(half.as_ref()) {
                Ok(socket) => {
                    // Dropped normally, tokio's write half would send FIN: our direction is
                    // not finished, it only moves to the blocking socket.
                    half.forget();
                    Ok(socket)
                }
                Err(e) => Err((Writer::Tcp(half), e)),
            },
            quic @ Writer::Quic(_) => Err((quic, unsupported())),
        }
    }
}

fn unsupported() -> io::Error {
    io::Error::new(
        io::ErrorKind::Unsupported,
        "a QUIC stream has no blocking form",
    )
}

/// Tasks waiting for the peer to acknowledge a finished stream (see [`QuicWriter`]).
pub(super) type Drains = Arc<Mutex<Vec<JoinHandle<bool>>>>;

/// The sending half of a session's QUIC stream. Keeps its connection open while in use; when
/// dropped, the stream is finished and a task waits (see `P2p::close`) for the peer to
/// acknowledge everything, so closing the endpoint right after a session does not lose its
/// last frames (QUIC drops unacknowledged data when the connection closes).
pub struct QuicWriter {
    send: Option<SendStream>,
    conn: Connection,
    drains: Drains,
}

impl QuicWriter {
    pub(super) fn new(send: SendStream, conn: Connection, drains: Drains) -> Self {
        QuicWriter {
            send: Some(send),
            conn,
            drains,
        }
    }

    fn stream(&mut self) -> io::Result<Pin<&mut SendStream>> {
        self.send
            .as_mut()
            .map(Pin::new)
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotConnected))
    }
}

impl fmt::Debug for QuicWriter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("QuicWriter")
            .field("remote", &self.conn.remote_id().fmt_short().to_string())
            .finish()
    }
}

impl AsyncWrite for QuicWriter {
    fn poll_write(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut().stream() {
            Ok(s) => AsyncWrite::poll_write(s, cx, buf),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => AsyncWrite::poll_flush(s, cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut().stream() {
            Ok(s) => AsyncWrite::poll_shutdown(s, cx),
            Err(e) => Poll::Ready(Err(e)),
        }
    }
}

impl Drop for QuicWriter {
    fn drop(&mut self) {
        let Some(mut send) = self.send.take() else {
            return;
        };
        let _ = send.finish();
        let stopped = send.stopped();
        let conn = self.conn.clone();
        let Ok(runtime) = tokio::runtime::Handle::try_current() else {
            return;
        };
        // Acknowledged, stopped by the peer (it read our QUIT and went away), or the connection
        // closed by the peer once done: delivered as far as we can know. The wait is bounded
        // by the caller of `P2p::close`.
        let drain = runtime.spawn(async move {
            let _ = stopped.await;
            drop(conn);
            true
        });
        if let Ok(mut drains) = self.drains.lock() {
            drains.retain(|d| !d.is_finished());
            drains.push(drain);
        }
    }
}
