//! The server-wide budget for buffered request bodies (`ServerConfig::max_buffered_bodies`):
//! many slow uploads at once must not take all the memory, whatever each one's own limit.

use std::sync::atomic::{AtomicUsize, Ordering};

/// Request body bytes buffered now, over all connections, and the most allowed.
pub(crate) struct BodyBudget {
    buffered: AtomicUsize,
    max: usize,
}

impl BodyBudget {
    /// A budget of `max` bytes.
    pub(crate) fn new(max: usize) -> BodyBudget {
        BodyBudget {
            buffered: AtomicUsize::new(0),
            max,
        }
    }

    /// A reservation of nothing yet, given back when dropped.
    pub(crate) fn reservation(&self) -> Reservation<'_> {
        Reservation {
            budget: self,
            bytes: 0,
        }
    }

    fn reserve(&self, n: usize) -> bool {
        let before = self.buffered.fetch_add(n, Ordering::AcqRel);
        if before.saturating_add(n) > self.max {
            self.buffered.fetch_sub(n, Ordering::AcqRel);
            return false;
        }
        true
    }
}

/// Bytes of the budget held by one request, given back when dropped.
pub(crate) struct Reservation<'a> {
    budget: &'a BodyBudget,
    bytes: usize,
}

impl Reservation<'_> {
    /// Takes `n` more bytes; `false` (and nothing taken) when the budget has no room.
    pub(crate) fn grow(&mut self, n: usize) -> bool {
        let ok = self.budget.reserve(n);
        if ok {
            self.bytes += n;
        }
        ok
    }

    /// Grows the reservation to `total` bytes, if it holds fewer.
    pub(crate) fn grow_to(&mut self, total: usize) -> bool {
        total <= self.bytes || self.grow(total - self.bytes)
    }
}

impl Drop for Reservation<'_> {
    fn drop(&mut self) {
        if self.bytes > 0 {
            self.budget.buffered.fetch_sub(self.bytes, Ordering::AcqRel);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reservations_share_the_budget_and_give_it_back() {
        let budget = BodyBudget::new(100);
        let mut a = budget.reservation();
        assert!(a.grow(60));
        let mut b = budget.reservation();
        assert!(!b.grow(41), "over the budget");
        assert!(b.grow_to(40));
        assert!(b.grow_to(30), "already holds more");
        drop(a);
        assert!(b.grow_to(100));
        drop(b);
        assert!(budget.reservation().grow(100));
    }
}
