//! The optional cap on connections from one client address
//! (`ServerConfig::max_connections_per_client`): one address may not take every slot. Off by
//! default, because behind a reverse proxy every client has the proxy's address.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};

/// Open connections per client address, counted only while the cap is on.
#[derive(Default)]
pub(crate) struct ClientCounts {
    open: Mutex<HashMap<IpAddr, usize>>,
}

impl ClientCounts {
    /// Counts a new connection from `ip`, unless `ip` already has `max`: `None` then.
    pub(crate) fn enter(self: &Arc<Self>, ip: IpAddr, max: usize) -> Option<ClientSlot> {
        let mut open = self.open.lock().unwrap_or_else(|e| e.into_inner());
        let count = open.entry(ip).or_insert(0);
        if *count >= max {
            return None;
        }
        *count += 1;
        Some(ClientSlot {
            counts: self.clone(),
            ip,
        })
    }
}

/// One counted connection; dropping it gives its place back (and forgets an address with
/// none left, so the map holds only addresses with open connections).
pub(crate) struct ClientSlot {
    counts: Arc<ClientCounts>,
    ip: IpAddr,
}

impl Drop for ClientSlot {
    fn drop(&mut self) {
        let mut open = self.counts.open.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(count) = open.get_mut(&self.ip) {
            *count -= 1;
            if *count == 0 {
                open.remove(&self.ip);
            }
        }
    }
}

/// The answer to a connection over the cap, written without waiting (the socket was just
/// accepted: its buffer has room), before it is closed.
pub(crate) const OVER_CAP: &[u8] = b"HTTP/1.1 503 Service Unavailable\r\n\
content-type: text/plain; charset=utf-8\r\nretry-after: 1\r\nconnection: close\r\n\
content-length: 38\r\n\r\ntoo many connections from this address";

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_address_has_its_own_count_and_leaves_nothing_behind() {
        let counts = Arc::new(ClientCounts::default());
        let a: IpAddr = "10.0.0.1".parse().unwrap();
        let b: IpAddr = "10.0.0.2".parse().unwrap();
        let a1 = counts.enter(a, 2).unwrap();
        let _a2 = counts.enter(a, 2).unwrap();
        assert!(counts.enter(a, 2).is_none());
        let b1 = counts.enter(b, 2).unwrap();
        drop(a1);
        assert!(counts.enter(a, 2).is_some());
        drop(b1);
        assert!(!counts.open.lock().unwrap().contains_key(&b));
    }

    #[test]
    fn the_refusal_is_one_well_framed_response() {
        let text = std::str::from_utf8(OVER_CAP).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
    }
}
