//! Invites: a first contact verified by construction. The inviter hands out a ticket
//! ([`ticket`]) carrying its key, where to dial it, and a one-time secret; the dialer pins the
//! key from the ticket (so a man in the middle is refused before the dialer shows its own key)
//! and proves the secret inside the encrypted session (an INVITE message), and the inviter
//! redeems it once ([`store`]). Both sides then know each other as "verified by invite".

pub mod code;
pub mod store;
pub mod ticket;
pub mod words;

pub use store::{Invites, Pending, Redeemed, Refusal};
pub use ticket::{Ticket, TicketAddr};

/// Seconds since the Unix epoch, now.
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}
