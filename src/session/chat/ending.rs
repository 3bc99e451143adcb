//! How a chat ends: how long leaving waits for the last receipts, and what is said about
//! lines the peer never confirmed.

use crate::error::{Error, Result};
use crate::receipts::Ledger;
use crate::session::member;
use crate::session::verify::PeerInfo;
use std::time::Duration;

/// How long a side leaving waits for the opening and its last receipts.
pub(super) fn settle_within(welcome_within: Duration) -> Duration {
    welcome_within.max(member::WRITE_DEADLINE)
}

/// "1 message", "3 messages".
pub(super) fn messages(n: usize) -> String {
    match n {
        1 => "1 message".into(),
        n => format!("{n} messages"),
    }
}

/// "1 line", "3 lines".
pub(super) fn lines(n: usize) -> String {
    match n {
        1 => "1 line".into(),
        n => format!("{n} lines"),
    }
}

/// The session ended cleanly, but was everything we sent confirmed? (`how`: who ended it.)
pub(super) fn unconfirmed(ledger: &Ledger, peer: &PeerInfo, how: &str) -> Result<()> {
    match ledger.unacked() {
        0 => Ok(()),
        n => Err(Error::Undelivered(format!(
            "{how} before {} confirmed your last {}: it may not have been shown",
            crate::sanitize::line(&peer.label),
            lines(n as usize)
        ))),
    }
}
