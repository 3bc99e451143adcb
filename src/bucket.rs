//! A token bucket: a sustained rate with a burst. Pure: the clock is passed in, so it is tested
//! without waiting. Used for what a room member may send (bytes) and for how many handshakes
//! one address may make the listener compute (connections).

use std::time::{Duration, Instant};

/// Tokens that refill at `per_sec` up to `burst`; a charge beyond them is a debt to wait out.
#[derive(Debug, Clone)]
pub struct TokenBucket {
    per_sec: f64,
    burst: f64,
    /// Tokens available at `at` (negative: a debt).
    tokens: f64,
    at: Instant,
}

impl TokenBucket {
    /// A full bucket.
    pub fn new(per_sec: f64, burst: f64, now: Instant) -> Self {
        TokenBucket {
            per_sec: per_sec.max(f64::MIN_POSITIVE),
            burst,
            tokens: burst,
            at: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.per_sec).min(self.burst);
        self.at = now;
    }

    /// Charges `amount`; returns how long to wait before it is covered.
    pub fn take(&mut self, amount: f64, now: Instant) -> Duration {
        self.refill(now);
        self.tokens -= amount;
        self.wait()
    }

    /// Charges `amount` only if it is covered within `patience`; otherwise charges nothing and
    /// returns `None` (a debt that would keep growing is refused instead).
    pub fn take_within(
        &mut self,
        amount: f64,
        patience: Duration,
        now: Instant,
    ) -> Option<Duration> {
        self.refill(now);
        self.tokens -= amount;
        let wait = self.wait();
        if wait > patience {
            self.tokens += amount;
            return None;
        }
        Some(wait)
    }

    /// Whether the bucket is full again (nothing to remember about its owner).
    pub fn is_full(&mut self, now: Instant) -> bool {
        self.refill(now);
        self.tokens >= self.burst
    }

    fn wait(&self) -> Duration {
        if self.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-self.tokens / self.per_sec)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(1000.0, 2000.0, t0);
        assert_eq!(bucket.take(2000.0, t0), Duration::ZERO);
        assert_eq!(bucket.take(500.0, t0), Duration::from_millis(500));
        // After waiting out the debt, the next 1000 cost a second.
        let t1 = t0 + Duration::from_millis(500);
        assert_eq!(bucket.take(1000.0, t1), Duration::from_secs(1));
        // Idle time refills up to the burst, never beyond.
        let t2 = t1 + Duration::from_secs(100);
        assert!(bucket.is_full(t2));
        assert_eq!(bucket.take(2000.0, t2), Duration::ZERO);
        assert!(bucket.take(1.0, t2) > Duration::ZERO);
    }

    #[test]
    fn a_debt_beyond_patience_is_refused_and_not_charged() {
        let t0 = Instant::now();
        let mut bucket = TokenBucket::new(10.0, 2.0, t0);
        let patience = Duration::from_millis(250);
        assert_eq!(bucket.take_within(1.0, patience, t0), Some(Duration::ZERO));
        assert_eq!(bucket.take_within(1.0, patience, t0), Some(Duration::ZERO));
        assert_eq!(
            bucket.take_within(1.0, patience, t0),
            Some(Duration::from_millis(100))
        );
        assert_eq!(
            bucket.take_within(1.0, patience, t0),
            Some(Duration::from_millis(200))
        );
        assert_eq!(bucket.take_within(1.0, patience, t0), None);
        assert_eq!(bucket.take_within(1.0, patience, t0), None);
        // The refusals cost nothing: 300 ms later the debt is paid.
        let t1 = t0 + Duration::from_millis(300);
        assert_eq!(bucket.take_within(1.0, patience, t1), Some(Duration::ZERO));
    }
}
