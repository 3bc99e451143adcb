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

/// The same clock for a thread that reads with a timeout (pipe mode over TCP): it asks after
/// every read that brought no whole message, and lapses come at the same times as
/// [`Silence`]'s, one period after the last message and every period after that.
#[derive(Debug)]
pub struct SilentReads {
    period: Duration,
    next: std::time::Instant,
    intervals: u32,
}

impl SilentReads {
    pub fn new(period: Duration) -> Self {
        SilentReads {
            period,
            next: std::time::Instant::now() + period,
            intervals: 0,
        }
    }

    /// The read timeout to set: a quarter period, so a lapse is seen at most that late (at
    /// least 1 ms: a zero timeout would mean none).
    pub fn read_timeout(&self) -> Duration {
        (self.period / 4).max(Duration::from_millis(1))
    }

    /// A whole message arrived from the peer: start counting again.
    pub fn heard(&mut self) {
        self.intervals = 0;
        self.next = std::time::Instant::now() + self.period;
    }

    /// A read brought no whole message: the lapse that is due, if one is.
    pub fn idle(&mut self) -> Option<Lapse> {
        let now = std::time::Instant::now();
        if now < self.next {
            return None;
        }
        self.next = now + self.period;
        Some(count(&mut self.intervals, self.period))
    }
}

/// Sleeps until `at`, or for ever when there is no such moment.
pub(super) async fn sleep_until_some(at: Option<tokio::time::Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
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
    fn idle_reads_see_the_same_lapses() {
        let period = Duration::from_millis(100);
        let mut silence = SilentReads::new(period);
        // Whatever the reads bring that is not a whole message, nothing is due before a period.
        assert!(silence.idle().is_none());
        let mut lapses = Vec::new();
        let start = std::time::Instant::now();
        while lapses.len() < 2 {
            std::thread::sleep(silence.read_timeout());
            if let Some(lapse) = silence.idle() {
                lapses.push((start.elapsed(), lapse));
            }
        }
        assert!(lapses.iter().all(|(_, l)| matches!(l, Lapse::Ping)));
        assert!(
            lapses[0].0 >= period && lapses[1].0 >= 2 * period,
            "{lapses:?}"
        );
        silence.heard();
        assert!(silence.idle().is_none());
        std::thread::sleep(period);
        assert!(matches!(silence.idle(), Some(Lapse::Ping)));
        std::thread::sleep(period);
        assert!(matches!(silence.idle(), Some(Lapse::Ping)));
        std::thread::sleep(period);
        match silence.idle() {
            Some(Lapse::Gone(Error::PeerSilent(0))) => {}
            other => panic!("{other:?}"),
        }
        assert_eq!(
            SilentReads::new(Duration::ZERO).read_timeout(),
            Duration::from_millis(1)
        );
    }
}
