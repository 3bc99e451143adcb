//! Ctrl-C, `kill` and a closed terminal, turned into one async event so every wait in schat can
//! end the session politely (with a QUIT) instead of dying mid-conversation.

use std::io;
use tokio::signal::unix::{Signal, SignalKind, signal};

/// The signals that mean "stop": SIGINT, SIGTERM, SIGHUP.
pub struct Interrupts(Option<(Signal, Signal, Signal)>);

impl Interrupts {
    /// Catches the signals from now on (their default action, dying at once, no longer applies).
    pub fn install() -> io::Result<Self> {
        Ok(Interrupts(Some((
            signal(SignalKind::interrupt())?,
            signal(SignalKind::terminate())?,
            signal(SignalKind::hangup())?,
        ))))
    }

    /// Never fires (for tests and embedding).
    pub fn none() -> Self {
        Interrupts(None)
    }

    /// Waits for one of the signals and says which. Cancel safe.
    pub async fn recv(&mut self) -> &'static str {
        match &mut self.0 {
            None => std::future::pending().await,
            Some((int, term, hup)) => tokio::select! {
                _ = int.recv() => "interrupted",
                _ = term.recv() => "terminated",
                _ = hup.recv() => "terminal closed",
            },
        }
    }
}
