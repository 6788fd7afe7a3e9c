//! The one-second clock: the current Unix second, kept by a ticker task while a server runs.
//!
//! Two parts read the time on every request: the server's `Date` header and the session
//! middleware's cookie timestamps. Both need whole seconds only, so a ticker (one per serving
//! server) stores the second in an atomic at each boundary, and reading it is one load. Without
//! a ticker (outside a server, or between two servers' lifetimes) the system clock is read.
//! This module sits below both users, which know nothing of each other.

use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// The second the tickers last stored.
static SECONDS: AtomicU64 = AtomicU64::new(0);
/// How many tickers run (servers serving); 0 means `SECONDS` may be stale.
static TICKERS: AtomicUsize = AtomicUsize::new(0);

pub(crate) fn clock_seconds() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

/// The current Unix second: the tickers' while a server runs (an atomic load), else the
/// clock's.
#[inline]
pub(crate) fn unix_seconds() -> u64 {
    if TICKERS.load(Ordering::Acquire) > 0 {
        SECONDS.load(Ordering::Relaxed)
    } else {
        clock_seconds()
    }
}

/// Keeps [`SECONDS`] current while the returned guard lives (a server's lifetime): a task
/// that wakes at each second boundary.
pub(crate) fn start_ticker() -> TickerGuard {
    SECONDS.store(clock_seconds(), Ordering::Relaxed);
    TICKERS.fetch_add(1, Ordering::AcqRel);
    let task = tokio::spawn(async {
        loop {
            let into_second = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.subsec_nanos());
            let to_next = Duration::from_nanos(1_000_000_000 - u64::from(into_second));
            tokio::time::sleep(to_next).await;
            SECONDS.store(clock_seconds(), Ordering::Relaxed);
        }
    });
    TickerGuard(task)
}

/// Stops a ticker when dropped.
pub(crate) struct TickerGuard(tokio::task::JoinHandle<()>);

impl Drop for TickerGuard {
    fn drop(&mut self) {
        self.0.abort();
        TICKERS.fetch_sub(1, Ordering::AcqRel);
    }
}
