//! What every connection of one server shares: the limits, the shutdown signal, the eviction
//! rounds and the body budget. One `Arc` per connection.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::futures::Notified;
use tokio::sync::Notify;

use super::budget::BodyBudget;
use super::config::ServerConfig;
use super::eviction::Eviction;
use crate::shutdown::Shutdown;

/// What every connection of one server shares: the limits, the shutdown signal, eviction
/// rounds and the body budget.
pub(crate) struct Shared {
    pub(crate) config: Arc<ServerConfig>,
    pub(crate) shutdown: Arc<Shutdown>,
    pub(crate) eviction: Eviction,
    /// Wakes the connections waiting between requests: shutdown began, or an eviction round
    /// started. One notice for both, so that an idle connection waits on one future (its
    /// memory is every idle connection's).
    notices: Notify,
    pub(crate) budget: BodyBudget,
}

impl Shared {
    /// The state of a server with `config`, whose shutdown is `shutdown` (the service's: its
    /// requests carry it).
    pub(crate) fn new(config: ServerConfig, shutdown: Arc<Shutdown>) -> Shared {
        Shared {
            budget: BodyBudget::new(config.max_buffered_bodies),
            config: Arc::new(config),
            shutdown,
            eviction: Eviction::default(),
            notices: Notify::new(),
        }
    }

    /// Begins shutdown (requests and streams see it through the service's `Shutdown`) and
    /// wakes the connections waiting between requests.
    pub(crate) fn begin_shutdown(&self) {
        self.shutdown.begin();
        self.notices.notify_waiters();
    }

    /// Starts an eviction round (see `Eviction`) and wakes the connections waiting between
    /// requests.
    pub(crate) fn evict_idle(&self, idle_over: Duration) {
        self.eviction.start_round(idle_over);
        self.notices.notify_waiters();
    }

    /// Completes at the next notice: shutdown or an eviction round.
    pub(crate) fn notified(&self) -> Notified<'_> {
        self.notices.notified()
    }
}
