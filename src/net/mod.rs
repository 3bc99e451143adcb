//! Everything that touches the network: transports, binding, accepting, connecting,
//! connection deadlines, and who may handshake at all. Sessions above it see plain byte
//! streams ([`stream::Reader`]/[`stream::Writer`]), whatever carried them.
//!
//! - [`address`]: addresses as people write them (pure parsing);
//! - [`gate`]: admission control before authentication (pure bookkeeping);
//! - [`tcp`]: TCP sockets (the only module that names them);
//! - [`iroh`]: QUIC by public key through NATs and relays (the only module that names iroh's
//!   endpoint); [`relay`]: `schat relay`, iroh's relay server;
//! - [`stream`]: one stream type over both transports;
//! - [`dial`]: `schat dial` — routes from an address, a petname or a ticket, TCP and iroh
//!   raced (happy eyeballs), the listener's key checked before ours is revealed;
//! - [`listen`]: `schat listen` — binding, the ticket of a `--p2p` listener, the room or the
//!   pipe; `accept`: the accept loop, each connection's handshake admitted by the [`gate`];
//! - `admit`: what happens to a connection after its handshake (keys, invites, knocks).

use crate::error::{Error, Result};
use std::time::Duration;

mod accept;
pub mod address;
mod admit;
mod dial;
pub mod gate;
pub mod iroh;
mod listen;
pub mod relay;
pub mod stream;
pub mod tcp;

pub use address::{Address, AddressError, DEFAULT_PORT};
pub use dial::{DialTarget, Via, dial};
pub use gate::GateLimits;
pub use iroh::{P2pOptions, Relays};
pub use listen::{ListenOptions, listen, p2p_address_file, p2p_address_lock_file};
pub use tcp::user_timeout;

/// A session's result, unless the last data sent over iroh may not have arrived (then the
/// exit status must not say it did).
fn delivered(all: bool, linger: Duration, result: Result<()>) -> Result<()> {
    match (all, result) {
        (false, Ok(())) => Err(Error::Network(format!(
            "the peer did not acknowledge the last data sent over iroh within {} s: it may not \
             have arrived",
            linger.as_secs()
        ))),
        (_, result) => result,
    }
}
