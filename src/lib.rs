//! schat: end-to-end encrypted chat between two people (or a small room) over a direct TCP
//! connection, or through NATs over iroh.
//!
//! Dependencies between modules point one way, from the command line down to pure codecs:
//!
//! - [`cli`]: argument parsing (clap) and a file per command (`cli::listen`, `cli::dial`,
//!   `cli::keys`, `cli::peers`, `cli::invite`, `cli::p2p`); what they share
//!   (`cli::session`: the run's context; `cli::paths`: where files live; `cli::prompt`:
//!   questions at the terminal); maps errors to exit codes.
//! - [`net`]: the only module that touches the network — the transports ([`net::tcp`],
//!   [`net::iroh`] for NATs and relays, one stream type over both in [`net::stream`]), the
//!   relay server ([`net::relay`]), addresses ([`net::address`]), dialling (`net::dial`: routes,
//!   happy eyeballs), listening and accepting (`net::listen`, `net::accept`), who may
//!   handshake ([`net::gate`], `net::admit`), deadlines.
//! - [`session`]: one conversation over any byte stream. [`session::Run`] carries what a whole
//!   run shares (identity, settings, screen), [`session::User`] the person's input and
//!   interrupts. Handshake deadline, key check ([`session::verify`], its alarm in
//!   `session::verify::alarm`), the opening ([`session::opening`]: HELLO, WELCOME), the
//!   full-duplex chat loop (`session::chat`); [`session::room`] hosts many members at once
//!   (the `session::room::host` state, [`session::member`]: each one's tasks, fair share and
//!   deadlines), [`session::pipe`] moves raw bytes (on a thread per direction over TCP)
//!   and resumes them after a cut,
//!   [`session::input`] reads the user's lines, [`session::names`] decides how keys and
//!   display names are shown.
//! - [`handshake`]: Noise XX with an ML-KEM-768 PSK (`Noise_XXpsk3_25519_ChaChaPoly_BLAKE2s`,
//!   prologue `schat/2`; [`handshake::core`] has the messages, [`kem`] the KEM).
//! - [`transport`]: the encrypted message stream, split into receive and send halves, each
//!   owning its direction's [`cipher`] state (Noise CipherState over ring's AEADs).
//! - [`framed`]: buffered, cancel-safe frame I/O over `AsyncRead`/`AsyncWrite` (and blocking
//!   `Read`/`Write`, for pipe mode's threads over TCP).
//! - [`frame`], [`message`]: pure codecs for the 2-byte length prefix and the typed plaintext
//!   ([`message::notice`]: room events); [`receipts`]: the counts behind a chat's ACKs (which
//!   of our lines the peer has shown), pure; [`resume`]: the session token, the backoff
//!   for dialling again after a cut, and a pipe's window of what the peer has not taken.
//! - [`keys`], [`keyfile`], [`passphrase`], [`fingerprint`]: identities, their file (its text
//!   format, and `keyfile::seal` under a passphrase), where passphrases come from, and how
//!   people see keys.
//! - [`safety`], [`trust`]: safety numbers, and the known_peers store with its trust decisions
//!   (`trust::file` reads and writes its format; [`session::verify`] applies the decisions
//!   right after the handshake).
//! - [`invite`]: invite tickets, spoken codes and the inviter's pending invites.
//! - [`pairs`]: a room end to end — each member's own schat/2 session with every other
//!   member, run through the host, which passes the messages on by key and cannot read them
//!   (pure state; `session::room_e2e` shows what they bring, `session::room::host` routes).
//! - [`files`]: files handed over in a chat — offers, the download folder, a thread per file
//!   (its wire format: [`message::file`]).
//! - [`bucket`]: the token bucket that paces message 1 per address and members' messages.
//! - [`fsutil`]: atomic, private file writes and locks.
//! - [`hardening`]: keeping secrets out of core dumps and `/proc`.
//! - [`sanitize`], [`ui`]: making peer text safe to print, and printing it: a line editor at a
//!   terminal ([`editor`]: keys, layout, printing above the draft), word-boundary wrapping
//!   (`ui::layout`), plain lines for scripts, or JSON events ([`ui::event`], typed).
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
pub mod files;
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
pub mod pairs;
pub mod passphrase;
pub mod receipts;
pub mod resume;
pub mod safety;
pub mod sanitize;
pub mod session;
pub mod signals;
pub mod transport;
pub mod trust;
pub mod ui;

pub use error::{Error, Result};
