//! schat: end-to-end encrypted chat between two people (or a small room) over a direct TCP
//! connection, or through NATs over iroh.
//!
//! Dependencies between modules point one way, from the command line down to pure codecs:
//!
//! - [`cli`]: argument parsing (clap) and the commands; maps errors to exit codes.
//! - [`net`]: the only module that touches the network — the transports ([`net::tcp`],
//!   [`net::iroh`] for NATs and relays, one stream type over both in [`net::stream`]), the
//!   relay server ([`net::relay`]), addresses ([`net::address`]), who may handshake
//!   ([`net::gate`]), bind/accept/connect, deadlines.
//! - [`session`]: one conversation over any byte stream: handshake deadline, key check, the
//!   opening ([`session::opening`]: HELLO, WELCOME), the full-duplex chat loop;
//!   [`session::room`] hosts many members at once ([`session::member`]: each one's tasks, fair
//!   share and deadlines), [`session::pipe`] moves raw bytes (on a thread per direction over TCP), [`session::input`] reads the
//!   user's lines, [`session::names`] decides how keys and display names are shown.
//! - [`handshake`]: Noise XX with an ML-KEM-768 PSK (`Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s`,
//!   prologue `schat/2`; [`handshake::core`] has the messages, [`kem`] the KEM).
//! - [`transport`]: the encrypted message stream, split into receive and send halves, each
//!   owning its direction's [`cipher`] state (Noise CipherState over ring's AEADs).
//! - [`framed`]: buffered, cancel-safe frame I/O over `AsyncRead`/`AsyncWrite` (and blocking
//!   `Read`/`Write`, for pipe mode's threads over TCP).
//! - [`frame`], [`message`]: pure codecs for the 2-byte length prefix and the typed plaintext
//!   ([`message::notice`]: room events).
//! - [`keys`], [`keyfile`], [`passphrase`], [`fingerprint`]: identities, their file (optionally
//!   sealed under a passphrase), where passphrases come from, and how people see keys.
//! - [`safety`], [`trust`]: safety numbers, and the known_peers store with its trust decisions
//!   (applied by [`session::verify`] right after the handshake).
//! - [`invite`]: invite tickets and the inviter's pending invites.
//! - [`fsutil`]: atomic, private file writes and locks.
//! - [`hardening`]: keeping secrets out of core dumps and `/proc`.
//! - [`sanitize`], [`ui`]: making peer text safe to print, and printing it: a line editor at a
//!   terminal ([`editor`]: keys, layout, printing above the draft), plain lines for scripts,
//!   or JSON events ([`ui::event`], typed).
//! - [`signals`], [`error`]: interrupts, and the error type with its exit codes.
//!
//! PROTOCOL.md specifies the wire format; README.md the security model.

#![cfg_attr(
    not(test),
    deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)
)]

pub mod bucket;
pub mod cipher;
pub mod cli;
pub mod editor;
pub mod error;
pub mod fingerprint;
pub mod frame;
pub mod framed;
pub mod fsutil;
pub mod handshake;
pub mod hardening;
pub mod invite;
pub mod kem;
pub mod keyfile;
pub mod keys;
pub mod message;
pub mod net;
pub mod passphrase;
pub mod safety;
pub mod sanitize;
pub mod session;
pub mod signals;
pub mod transport;
pub mod trust;
pub mod ui;

pub use error::{Error, Result};
