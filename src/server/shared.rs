//! What every connection of one server shares: the limits, the shutdown signal, the eviction
//! rounds and the body budget. One `Arc` per connection.

use std::sync::Arc;

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
        }
    }
}
