//! The topics of one hub on this instance: a ring buffer per topic (a
//! `tokio::sync::broadcast` channel) that the topic's subscribers read, made at its first
//! subscriber and removed with its last, so a hub that saw many one-off topics keeps only
//! those someone listens to. Both backends deliver through here: in memory a publish lands
//! here directly; with Redis the pub/sub task puts here what Redis sends.

use std::collections::HashMap;
use std::sync::{PoisonError, RwLock};

use bytes::Bytes;
use tokio::sync::broadcast;

/// What a topic's ring buffer carries.
#[derive(Debug, Clone)]
pub(crate) enum Item {
    /// A published payload.
    Message(Bytes),
    /// The Redis connection was lost and is back: whatever was published meanwhile is gone,
    /// so every subscriber is told to resync (a marker in the stream, in order with the
    /// messages around it). Only the Redis backend makes it; subscriptions read it either way.
    #[cfg_attr(not(feature = "redis"), allow(dead_code))]
    Reconnected,
}

/// The topics with at least one subscriber, by name.
#[derive(Debug)]
pub(crate) struct Topics {
    /// A read lock for delivery (the common path, taken by every publish); the write lock only
    /// when a topic is made or removed. Nothing that can block runs under either.
    map: RwLock<HashMap<String, broadcast::Sender<Item>>>,
    /// How many items each topic's ring buffer keeps for its slowest subscriber.
    capacity: usize,
}

impl Topics {
    /// No topics; each one made later keeps `capacity` items (at least 1, checked by the
    /// hub's constructors).
    pub(crate) fn new(capacity: usize) -> Topics {
        Topics {
            map: RwLock::new(HashMap::new()),
            capacity,
        }
    }

    /// A receiver on `topic`, which is made if nobody listened to it yet. It sees only what is
    /// delivered after this call.
    pub(crate) fn subscribe(&self, topic: &str) -> broadcast::Receiver<Item> {
        // The read lock first: a topic that already has subscribers (the usual case for a
        // busy one) costs no exclusive lock.
        if let Some(sender) = self.read().get(topic) {
            return sender.subscribe();
        }
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        match map.get(topic) {
            Some(sender) => sender.subscribe(),
            None => {
                let (sender, receiver) = broadcast::channel(self.capacity);
                map.insert(topic.to_owned(), sender);
                receiver
            }
        }
    }

    /// A receiver of `topic` is about to be dropped: the topic goes if it was the last one.
    /// Under the write lock, so that no subscribe can slip in between the count and the
    /// removal (it would get a receiver of a channel no longer in the map, and never a
    /// message).
    pub(crate) fn unsubscribing(&self, topic: &str) {
        let mut map = self.map.write().unwrap_or_else(PoisonError::into_inner);
        // The receiver being dropped still counts: 1 means it was the last.
        if map.get(topic).is_some_and(|s| s.receiver_count() <= 1) {
            map.remove(topic);
        }
    }

    /// Puts the item `make` makes in `topic`'s ring buffer, for its subscribers on this
    /// instance; a topic nobody listens to takes nothing (no entry is made for it, and `make`
    /// is not called: the Redis task copies a payload only for a topic someone listens to).
    /// The number of receivers.
    pub(crate) fn deliver(&self, topic: &str, make: impl FnOnce() -> Item) -> usize {
        match self.read().get(topic) {
            // `send` fails only when there are no receivers, which is a count of 0 here.
            Some(sender) => sender.send(make()).unwrap_or(0),
            None => 0,
        }
    }

    /// Puts `item` in every topic (the resync marker after a reconnection).
    #[cfg(feature = "redis")]
    pub(crate) fn deliver_all(&self, item: &Item) {
        for sender in self.read().values() {
            let _ = sender.send(item.clone());
        }
    }

    /// Drops every topic's sender: every subscriber's next read finds the end of its stream
    /// (after what it has not read yet). For the hub's last clone going away.
    pub(crate) fn close(&self) {
        self.map
            .write()
            .unwrap_or_else(PoisonError::into_inner)
            .clear();
    }

    /// How many subscribers `topic` has.
    pub(crate) fn subscribers(&self, topic: &str) -> usize {
        self.read()
            .get(topic)
            .map_or(0, broadcast::Sender::receiver_count)
    }

    /// How many topics have subscribers.
    pub(crate) fn len(&self) -> usize {
        self.read().len()
    }

    // A poisoned lock still holds a consistent map: no code under these locks can leave it
    // half-changed (an insert or a remove is one call), so a panic elsewhere is no reason to
    // stop broadcasting.
    fn read(&self) -> std::sync::RwLockReadGuard<'_, HashMap<String, broadcast::Sender<Item>>> {
        self.map.read().unwrap_or_else(PoisonError::into_inner)
    }
}
