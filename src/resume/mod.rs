//! Resuming a chat after its connection dropped (PROTOCOL.md §4.11): the same conversation
//! on a new connection, nothing shown twice and nothing lost.
//!
//! Each side keeps the counted messages the peer has not acknowledged ([`crate::receipts`]).
//! When a connection drops without a QUIT, the dialer dials again, proves both keys in a new
//! handshake, names the session by its token and says how many it has shown; the listener
//! answers likewise, and each side sends again what the other has not shown. The count always
//! comes from the receiver, so nothing is shown twice and nothing is skipped.
//!
//! - [`backoff`]: when a dialer dials again (pure, with jitter).
//! - [`token`]: the session token, from the first handshake's keys and hash.
//! - [`window`]: what a pipe sent and the peer has not acknowledged, kept to send again
//!   (PROTOCOL.md §4.12), pure.

pub mod backoff;
pub mod window;

pub use backoff::Backoff;
pub use window::{PIPE_WINDOW, Window};

use hmac::{Hmac, Mac};
use sha2::Sha256;
use std::time::Duration;
use zeroize::Zeroizing;

/// How long a dropped session is kept (listener) and dialled again (dialer), unless configured.
pub const DEFAULT_GRACE: Duration = Duration::from_secs(600);

/// Bytes of unacknowledged messages kept per peer (their bodies, at least 64 each): beyond
/// this a dialer stops taking lines and a host lets the member go.
pub const KEPT_BYTES: usize = 1 << 20;

/// The session token `T = HMAC-SHA256(k₁ ‖ k₂, "schat/2 resume" ‖ h)` of a first handshake:
/// `k1` the initiator's sending key, `k2` the responder's, `h` the handshake hash. Secret:
/// only the two peers can compute it.
pub fn token(k1: &[u8; 32], k2: &[u8; 32], h: &[u8]) -> Zeroizing<[u8; 32]> {
    let mut key = Zeroizing::new([0u8; 64]);
    key[..32].copy_from_slice(k1);
    key[32..].copy_from_slice(k2);
    let mut mac = <Hmac<Sha256> as Mac>::new_from_slice(&key[..])
        .unwrap_or_else(|_| unreachable!("HMAC takes any key length"));
    mac.update(b"schat/2 resume");
    mac.update(h);
    Zeroizing::new(mac.finalize().into_bytes().into())
}

/// Compares two tokens in constant time.
pub fn same_token(a: &[u8; 32], b: &[u8; 32]) -> bool {
    crate::keys::constant_time_eq(a, b)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_token_depends_on_every_input() {
        let t = token(&[1; 32], &[2; 32], b"h");
        assert_ne!(
            *t,
            *token(&[2; 32], &[1; 32], b"h"),
            "the keys' order matters"
        );
        assert_ne!(*t, *token(&[1; 32], &[2; 32], b"g"));
        assert_eq!(*t, *token(&[1; 32], &[2; 32], b"h"));
        assert!(same_token(&t, &token(&[1; 32], &[2; 32], b"h")));
        assert!(!same_token(&t, &[0; 32]));
    }
}
