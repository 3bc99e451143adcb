//! Noticing a silent peer: after each keepalive interval with nothing received we PING; after
//! three, the peer is gone. Shared by chat, pipe mode and the room's members.

use crate::error::Error;
use std::pin::Pin;
use std::time::Duration;
use tokio::time::{Instant, Sleep};

/// Silent intervals after which the peer is declared gone.
pub const SILENT_INTERVALS: u32 = 3;

/// What a lapse of silence calls for.
#[derive(Debug)]
pub enum Lapse {
    /// Send a PING: maybe it is only quiet.
    Ping,
    /// Nothing for [`SILENT_INTERVALS`] intervals: the connection is presumed dead.
    Gone(Error),
}

/// The silence timer of one connection.
pub struct Silence {
    period: Duration,
    timer: Pin<Box<Sleep>>,
    intervals: u32,
}

impl Silence {
    /// A timer that first fires `period` from now.
    pub fn new(period: Duration) -> Self {
        Silence {
            period,
            timer: Box::pin(tokio::time::sleep(period)),
            intervals: 0,
        }
    }

    /// Something arrived from the peer: start counting again.
    pub fn heard(&mut self) {
        self.intervals = 0;
        self.timer.as_mut().reset(Instant::now() + self.period);
    }

    /// Waits for the next interval without a word. Cancel safe (the only await is the timer).
    pub async fn lapse(&mut self) -> Lapse {
        (&mut self.timer).await;
        self.intervals += 1;
        if self.intervals >= SILENT_INTERVALS {
            return Lapse::Gone(Error::PeerSilent(
                (self.period * SILENT_INTERVALS).as_secs(),
            ));
        }
        self.timer.as_mut().reset(Instant::now() + self.period);
        Lapse::Ping
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn pings_twice_then_gives_up_unless_heard() {
        let mut silence = Silence::new(Duration::from_millis(400));
        assert!(matches!(silence.lapse().await, Lapse::Ping));
        assert!(matches!(silence.lapse().await, Lapse::Ping));
        silence.heard();
        assert!(matches!(silence.lapse().await, Lapse::Ping));
        assert!(matches!(silence.lapse().await, Lapse::Ping));
        match silence.lapse().await {
            Lapse::Gone(Error::PeerSilent(1)) => {}
            other => panic!("{other:?}"),
        }
    }
}
