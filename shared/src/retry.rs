//! The one backoff policy of the crate, for every loop that tries again after losing a race or
//! being throttled: wait `first · 2^attempt`, capped, plus random jitter of up to as much again.
//! The jitter spreads callers that failed together, so they don't collide again in lockstep.
//! Callers keep their own attempt bounds: what giving up means (409, 503, an error) is theirs.

use std::time::Duration;

/// A pace for the policy; pick the one matching why the attempt failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    first_ms: u64,
    cap_ms: u64,
}

impl Backoff {
    /// A conditional write of one item lost to another writer (flags, cohorts): the winner is
    /// done within milliseconds, so retry quickly; many short pauses let a burst of parallel
    /// writers all land before the caller's bound answers 409.
    pub const WRITE_RACE: Backoff = Backoff {
        first_ms: 5,
        cap_ms: 55,
    };

    /// Batch work: DynamoDB left keys or items unprocessed (throttling, which needs time for
    /// capacity to refill), or a capture's read–fold–write round over many persons lost a race
    /// (a round takes far longer than one write, so racing captures need more room).
    pub const BATCH: Backoff = Backoff {
        first_ms: 20,
        cap_ms: 1280,
    };

    /// The pause after failed attempt `attempt` (0 for the first failure).
    pub fn jittered(self, attempt: u32) -> Duration {
        let base = self.base_ms(attempt);
        Duration::from_millis(base + rand::random_range(0..base))
    }

    /// Sleeps for [`Backoff::jittered`].
    pub async fn pause(self, attempt: u32) {
        tokio::time::sleep(self.jittered(attempt)).await;
    }

    fn base_ms(self, attempt: u32) -> u64 {
        // Past 16 doublings every pace is at its cap; the bound only keeps the shift in range.
        (self.first_ms << attempt.min(16)).min(self.cap_ms)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn doubles_up_to_the_cap() {
        let b = Backoff::BATCH;
        let bases: Vec<u64> = (0..9).map(|a| b.base_ms(a)).collect();
        assert_eq!(bases, [20, 40, 80, 160, 320, 640, 1280, 1280, 1280]);
        assert_eq!(b.base_ms(u32::MAX), 1280);
        assert_eq!(Backoff::WRITE_RACE.base_ms(0), 5);
        assert_eq!(Backoff::WRITE_RACE.base_ms(40), 55);
    }

    #[test]
    fn jitter_adds_at_most_the_base() {
        for attempt in 0..12 {
            let base = Backoff::WRITE_RACE.base_ms(attempt);
            let d = Backoff::WRITE_RACE.jittered(attempt).as_millis() as u64;
            assert!((base..2 * base).contains(&d), "{d} for base {base}");
        }
    }
}
