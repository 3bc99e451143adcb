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
        let lapse = count(&mut self.intervals, self.period);
        self.timer.as_mut().reset(Instant::now() + self.period);
        lapse
    }
}

/// One more silent interval: what it calls for.
fn count(intervals: &mut u32, period: Duration) -> Lapse {
    *intervals += 1;
    if *intervals >= SILENT_INTERVALS {
        return Lapse::Gone(Error::PeerSilent((period * SILENT_INTERVALS).as_secs()));
    }
    Lapse::Ping
}

/// The same count for a thread that reads with a timeout of one period (pipe mode over
/// TCP): each read that times out is one silent interval, and anything read resets it.
#[derive(Debug)]
pub struct SilentReads {
    period: Duration,
    intervals: u32,
}

impl SilentReads {
    pub fn new(period: Duration) -> Self {
        SilentReads {
            period,
            intervals: 0,
        }
    }

    /// The read timeout to set: one period (at least 1 ms: a zero timeout means none).
    pub fn read_timeout(&self) -> Duration {
        self.period.max(Duration::from_millis(1))
    }

    /// Something arrived from the peer: start counting again.
    pub fn heard(&mut self) {
        self.intervals = 0;
    }

    /// A read timed out.
    pub fn lapse(&mut self) -> Lapse {
        count(&mut self.intervals, self.period)
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

    #[test]
    fn timed_out_reads_count_the_same() {
        let mut silence = SilentReads::new(Duration::from_millis(400));
        assert!(matches!(silence.lapse(), Lapse::Ping));
        assert!(matches!(silence.lapse(), Lapse::Ping));
        silence.heard();
        assert!(matches!(silence.lapse(), Lapse::Ping));
        assert!(matches!(silence.lapse(), Lapse::Ping));
        match silence.lapse() {
            Lapse::Gone(Error::PeerSilent(1)) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            SilentReads::new(Duration::ZERO).read_timeout(),
            Duration::from_millis(1)
        );
    }
}
