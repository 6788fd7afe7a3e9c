//! Making room when the server is out of connection slots: eviction rounds ask idle
//! connections to close, longest-idle first. An idle keep-alive connection costs its client
//! nothing to lose (it reconnects when it needs to), while a client waiting for a slot is
//! refused service, so idle connections give way; busy ones never do.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

/// The eviction rounds so far and the idle time the latest one closes from. (Connections
/// hear of a round through `Shared::evict_idle`, which wakes them.)
#[derive(Default)]
pub(crate) struct Eviction {
    /// Rounds so far: an idle connection compares its last reading to tell a new round.
    rounds: AtomicU64,
    /// The idle time (ms) from which the latest round closes a connection.
    idle_over_ms: AtomicU64,
}

impl Eviction {
    /// Starts a round: every connection idle for `idle_over` or longer is to close.
    pub(crate) fn start_round(&self, idle_over: Duration) {
        let ms = u64::try_from(idle_over.as_millis()).unwrap_or(u64::MAX);
        self.idle_over_ms.store(ms, Ordering::Release);
        self.rounds.fetch_add(1, Ordering::AcqRel);
    }

    /// Rounds so far.
    #[inline]
    pub(crate) fn rounds(&self) -> u64 {
        self.rounds.load(Ordering::Acquire)
    }

    /// Whether a connection idle for `idle` is to close in the latest round.
    pub(crate) fn is_evicted(&self, idle: Duration) -> bool {
        idle.as_millis() >= u128::from(self.idle_over_ms.load(Ordering::Acquire))
    }
}

/// How long a connection must have been idle to be closed in eviction round `round` (counted
/// from 0 while a client waits for a slot): a quarter of the idle timeout, halving every
/// round, zero from round 12. The longest-idle connections go first, and a full server finds
/// room within about half a second however recently its connections were used.
pub(crate) fn threshold(idle_timeout: Duration, round: u32) -> Duration {
    if round >= 12 {
        return Duration::ZERO;
    }
    idle_timeout / 2u32.pow(round + 2)
}

/// The pause between eviction rounds: short while the threshold falls, then slower (every
/// round wakes every idle connection).
pub(crate) fn pause(round: u32) -> Duration {
    Duration::from_millis(if round <= 12 { 40 } else { 200 })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_threshold_halves_to_zero() {
        let idle = Duration::from_secs(60);
        assert_eq!(threshold(idle, 0), Duration::from_secs(15));
        assert_eq!(threshold(idle, 1), Duration::from_millis(7500));
        assert!(threshold(idle, 11) < Duration::from_millis(10));
        assert_eq!(threshold(idle, 12), Duration::ZERO);
        assert_eq!(threshold(idle, 40), Duration::ZERO);
    }

    #[test]
    fn a_round_marks_connections_idle_long_enough() {
        let eviction = Eviction::default();
        let before = eviction.rounds();
        eviction.start_round(Duration::from_secs(2));
        assert_ne!(eviction.rounds(), before);
        assert!(eviction.is_evicted(Duration::from_secs(3)));
        assert!(!eviction.is_evicted(Duration::from_secs(1)));
    }
}
