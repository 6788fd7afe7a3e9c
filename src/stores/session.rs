//! The [`SessionStore`] trait: where session data lives. `CookieStore`, the default, keeps
//! it all in the signed cookie; a server-side store (Redis, a database) implements
//! [`SessionStore`] and keeps only an id in the cookie, with no change to handlers.

use std::future::Future;

use serde_json::{Map, Value};

use crate::error::Error;

/// A session as a store hands it back: its data and when its cookie was issued (seconds
/// since the epoch). The middleware checks the age limits from `issued_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The session's key/value map.
    pub data: Map<String, Value>,
    /// When the cookie (or the server-side record) was last written.
    pub issued_at: u64,
}

/// A session backend.
pub trait SessionStore: Send + Sync + 'static {
    /// The session that `cookie_value` names, or `Ok(None)` when the cookie is not valid (bad
    /// signature, unknown id, ...): the request then gets a fresh, empty session. `Err` when
    /// the store cannot answer (a server-side store that is down or slow): the request is then
    /// refused (`503` with `Retry-After` for an [`HttpError`](crate::HttpError) of that
    /// status), never handled with an empty session that would look like a logout.
    fn load(
        &self,
        cookie_value: &str,
    ) -> impl Future<Output = Result<Option<SessionRecord>, Error>> + Send;

    /// Like [`load`](SessionStore::load), given an empty map to fill: memory left over from
    /// an earlier request on this thread, which a store that parses into it reuses (the
    /// middleware calls this one). By default it is dropped and `load` called.
    fn load_into(
        &self,
        cookie_value: &str,
        data: Map<String, Value>,
    ) -> impl Future<Output = Result<Option<SessionRecord>, Error>> + Send {
        drop(data);
        self.load(cookie_value)
    }

    /// Writes `data`, issued at `now`, and appends the cookie value to send to `out`.
    /// `previous` is the cookie the request came with, if any (a server-side store reuses its
    /// id).
    fn save(
        &self,
        data: &Map<String, Value>,
        now: u64,
        previous: Option<&str>,
        out: &mut String,
    ) -> impl Future<Output = Result<(), Error>> + Send;

    /// The session was regenerated (login, logout): forget `previous` for good, so the old
    /// cookie can never be used again. `save` follows with `previous = None`. The cookie store
    /// has nothing to forget.
    fn regenerate(&self, previous: &str) -> impl Future<Output = ()> + Send {
        let _ = previous;
        async {}
    }

    /// Saves a regenerated session (login, logout): forgets `previous` and writes `data`
    /// under a new id, appending the new cookie value to `out`. By default
    /// [`regenerate`](SessionStore::regenerate) then [`save`](SessionStore::save) with no
    /// previous cookie; a server-side store can do both in one round trip.
    fn save_regenerated(
        &self,
        data: &Map<String, Value>,
        now: u64,
        previous: &str,
        out: &mut String,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            self.regenerate(previous).await;
            self.save(data, now, None, out).await
        }
    }
}
