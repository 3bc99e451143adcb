//! When a dialer dials again after its connection dropped: soon at first, then less and less
//! often, each delay jittered so that many dialers cut at once do not come back in step.
//! Pure: the caller supplies the randomness.

use std::time::Duration;

/// The first delay.
pub const FIRST: Duration = Duration::from_millis(250);

/// The longest delay: once the network is back, the conversation resumes within about two
/// seconds, however long it was away (an attempt costs a connection, no more).
pub const MOST: Duration = Duration::from_millis(1500);

/// Delays between attempts: [`FIRST`], doubling up to [`MOST`], each ±25 % at random.
#[derive(Debug, Clone)]
pub struct Backoff {
    next: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Backoff { next: FIRST }
    }
}

impl Backoff {
    /// The delay before the next attempt. `random` is uniform in [0, 1): it places the delay
    /// between 75 % and 125 % of the nominal one.
    pub fn next(&mut self, random: f64) -> Duration {
        let nominal = self.next;
        self.next = (self.next * 2).min(MOST);
        nominal.mul_f64(0.75 + 0.5 * random.clamp(0.0, 1.0))
    }

    /// An attempt succeeded: the next cut starts from [`FIRST`] again.
    pub fn reset(&mut self) {
        self.next = FIRST;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_bound_within_their_jitter() {
        let mut b = Backoff::default();
        let lows: Vec<_> = (0..8).map(|_| b.next(0.0)).collect();
        assert_eq!(lows[0], Duration::from_micros(187_500));
        assert_eq!(lows[1], Duration::from_micros(375_000));
        assert_eq!(*lows.last().unwrap(), MOST.mul_f64(0.75));
        let mut b = Backoff::default();
        assert_eq!(b.next(1.0), FIRST.mul_f64(1.25));
        b.reset();
        assert_eq!(b.next(0.5), FIRST);
    }
}
