//! One error type for the whole crate, sorted by whose fault it was: the peer (protocol
//! violations, refused keys, a cut connection), us (usage, keyfile, internal), or the
//! network/OS (I/O). The exit code follows from the variant.

use crate::keyfile::KeyfileError;
use crate::message::MessageError;
use std::io;
use thiserror::Error;

/// Process exit codes, as documented in README and `--help`.
pub mod exit {
    /// The session ended cleanly (a QUIT was sent or received).
    pub const OK: i32 = 0;
    /// An error: I/O, protocol, keyfile, a cut connection.
    pub const ERROR: i32 = 1;
    /// The command line was wrong.
    pub const USAGE: i32 = 2;
    /// We refused the peer's key (pin mismatch, changed key, strict trust, not accepted).
    pub const PEER_REFUSED: i32 = 3;
    /// The peer turned us away: it refused our key, the room was full, or the modes differ.
    /// Nothing we sent was delivered.
    pub const REFUSED_BY_PEER: i32 = 4;
}

/// Everything that can end a command.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum Error {
    /// The peer broke the protocol, or someone altered the traffic.
    #[error("{0}")]
    Protocol(#[from] ProtocolError),
    /// The stream ended at a frame boundary but without a QUIT.
    #[error("the connection closed without a goodbye (no QUIT): it may have been cut")]
    ConnectionCut,
    /// Nothing at all came from the peer (not even a PONG) for this many seconds.
    #[error("no sign of life from the peer for {0} s: the connection is presumed dead")]
    PeerSilent(u64),
    /// We refused the peer's static key (exit code 3).
    #[error("{0}")]
    PeerRefused(String),
    /// The peer ended the session before it started, e.g. because it refused our key.
    #[error("the peer closed the session: {0}")]
    RefusedByPeer(String),
    /// The peer runs the other mode (chat against pipe): both sides stop at once.
    #[error("{0}")]
    ModeMismatch(String),
    /// The peer said QUIT with a reason other than a goodbye or a refusal: it gave up.
    #[error("the peer ended the session abnormally: {0}")]
    PeerAborted(String),
    /// A signal stopped a pipe before both directions had finished (exit code 1): the peer is
    /// told with a QUIT that says so, when the connection takes it.
    #[error("{0}: the pipe stopped before the transfer finished")]
    Interrupted(&'static str),
    /// A signal (or Ctrl-C at the line editor) while a question waited, before the session
    /// began: nothing was sent, nothing remembered (exit code 1).
    #[error("{0} while a question waited: the dial stopped; nothing was sent or remembered")]
    Signalled(&'static str),
    /// The session ended, but the peer never confirmed some of what we sent (exit code 1):
    /// it may not have been shown.
    #[error("{0}")]
    Undelivered(String),
    /// A deadline passed.
    #[error("{0} timed out after {1} s")]
    Timeout(&'static str, u64),
    /// Identity keyfile problems.
    #[error(transparent)]
    Keyfile(#[from] KeyfileError),
    /// The user asked for something impossible (exit code 2).
    #[error("{0}")]
    Usage(String),
    /// The network said no, in one sentence with what to do (no OS error text).
    #[error("{0}")]
    Network(String),
    /// Network or OS I/O, with what we were doing.
    #[error("{context}: {}", plain_io(.source))]
    Io {
        context: String,
        #[source]
        source: io::Error,
    },
    /// A bug in schat or snow's state machine. Never caused by the peer.
    #[error("internal error: {0}")]
    Internal(String),
}

/// Ways a peer can break schat/2. All of them end the session.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum ProtocolError {
    /// A transport message failed authentication.
    #[error("a message failed to decrypt: the connection was tampered with or corrupted")]
    Decrypt,
    /// The stream ended inside a frame.
    #[error("the connection closed in the middle of a message")]
    TruncatedFrame,
    /// A decrypted message made no sense.
    #[error("the peer sent an invalid message: {0}")]
    Message(#[from] MessageError),
    /// The handshake failed (wrong protocol, wrong prologue, tampering).
    #[error("handshake failed: {0}")]
    Handshake(&'static str),
    /// The first bytes are not a schat/2 handshake message at all: another protocol or version.
    #[error("not a schat peer ({0})")]
    NotSchat(String),
    /// A valid message at the wrong time.
    #[error("the peer sent {0} {1}")]
    Unexpected(&'static str, &'static str),
    /// An ACK that cannot be true (PROTOCOL.md §4.10).
    #[error("the peer sent a false receipt: {0}")]
    Receipt(#[from] crate::receipts::ReceiptError),
    /// The peer's static key is a low-order point: no secret key stands behind it.
    #[error("the peer's static key is invalid (a low-order point)")]
    WeakKey,
    /// The peer's static key is not canonically encoded (bit 255 set, or u >= 2^255-19): the
    /// peer's fault; X25519 would treat it as another key's alias.
    #[error(
        "the peer sent its static key in a form that is not canonical (top bit set, or \
         u >= 2^255-19): a misbehaving peer, refused"
    )]
    NonCanonicalKey,
}

impl Error {
    /// The process exit code for this error.
    pub fn exit_code(&self) -> i32 {
        match self {
            Error::PeerRefused(_) => exit::PEER_REFUSED,
            Error::RefusedByPeer(_) | Error::ModeMismatch(_) => exit::REFUSED_BY_PEER,
            Error::Usage(_) => exit::USAGE,
            _ => exit::ERROR,
        }
    }

    /// Wraps an I/O error with what we were doing.
    pub fn io(context: impl Into<String>, source: io::Error) -> Self {
        Error::Io {
            context: context.into(),
            source,
        }
    }
}

/// Crate-wide result.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// An I/O error in plain words: the OS's own wording ("Broken pipe (os error 32)") becomes its
/// kind ("broken pipe"), so a message never shows error numbers or says the same thing twice.
pub fn plain_io(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(_) => e.kind().to_string(),
        None => e.to_string(),
    }
}
