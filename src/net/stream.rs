//! The byte streams a session runs over, whatever carried them: one TCP connection, or one
//! bidirectional QUIC stream of an iroh connection. Sessions see only `AsyncRead`/`AsyncWrite`;
//! these enums keep that static (no boxing) and let both transports feed one room.

use crate::framed::Detach;
use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};

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
    Quic(super::iroh::QuicWriter),
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
