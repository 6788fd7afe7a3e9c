//! The [`SessionStore`] trait: where session data lives. `CookieStore`, the default, keeps
//! it all in the signed cookie; a server-side store (Redis, a database) implements
//! [`SessionStore`] and keeps only an id in the cookie, with no change to handlers.

use std::future::Future;

use crate::error::Error;
use crate::sessions::{SessionData, Stamps};

/// A session as a store hands it back: its data and when its cookie was issued (seconds
/// since the epoch). The middleware checks the age limits from `issued_at`.
#[derive(Debug, Clone, PartialEq)]
pub struct SessionRecord {
    /// The session's data, in order.
    pub data: SessionData,
    /// When the cookie (or the server-side record) was last written.
    pub issued_at: u64,
}

/// A session backend: load a session by its cookie, save one and get the cookie value to
/// send. [`CookieStore`](crate::stores::CookieStore) keeps the session in the cookie itself;
/// a server-side store keeps it under an id and puts only the id in the cookie.
///
/// ```
/// use chirp::sessions::SessionData;
/// use chirp::stores::{SessionRecord, SessionStore};
/// use std::collections::HashMap;
/// use std::sync::Mutex;
///
/// /// Sessions in this process's memory, under a counter.
/// #[derive(Default)]
/// struct InMemory(Mutex<(u64, HashMap<String, SessionRecord>)>);
///
/// impl SessionStore for InMemory {
///     async fn load(&self, cookie: &str) -> Result<Option<SessionRecord>, chirp::Error> {
///         Ok(self.0.lock().unwrap().1.get(cookie).cloned())
///     }
///
///     async fn save(
///         &self,
///         data: &SessionData,
///         now: u64,
///         previous: Option<&str>,
///     ) -> Result<String, chirp::Error> {
///         let mut inner = self.0.lock().unwrap();
///         let id = match previous {
///             Some(id) => id.to_owned(),
///             None => { inner.0 += 1; inner.0.to_string() }
///         };
///         inner.1.insert(id.clone(), SessionRecord { data: data.clone(), issued_at: now });
///         Ok(id)
///     }
///
///     async fn regenerate(&self, previous: &str) {
///         self.0.lock().unwrap().1.remove(previous);
///     }
/// }
/// ```
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

    /// Writes `data`, issued at `now`, and returns the cookie value to send. `previous` is
    /// the cookie the request came with, if any (a server-side store reuses its id).
    fn save(
        &self,
        data: &SessionData,
        now: u64,
        previous: Option<&str>,
    ) -> impl Future<Output = Result<String, Error>> + Send;

    /// The session was regenerated (login, logout): forget `previous` for good, so the old
    /// cookie can never be used again. `save` follows with `previous = None`. The cookie store
    /// has nothing to forget.
    fn regenerate(&self, previous: &str) -> impl Future<Output = ()> + Send {
        let _ = previous;
        async {}
    }

    /// Saves a regenerated session (login, logout): forgets `previous` and writes `data`
    /// under a new id, returning the new cookie value. By default
    /// [`regenerate`](SessionStore::regenerate) then [`save`](SessionStore::save) with no
    /// previous cookie; a server-side store can do both in one round trip.
    fn save_regenerated(
        &self,
        data: &SessionData,
        now: u64,
        previous: &str,
    ) -> impl Future<Output = Result<String, Error>> + Send {
        async move {
            self.regenerate(previous).await;
            self.save(data, now, None).await
        }
    }

    // The middleware's path, crate-private: the `Internal` argument cannot be named outside
    // chirp, so these can be neither called nor overridden there. chirp's own stores override
    // them to parse into a map left over from an earlier request and to append the cookie
    // value to the `Set-Cookie` string (no allocation for either); other stores get the
    // defaults, over `load` and `save`.

    #[doc(hidden)]
    fn load_into(
        &self,
        cookie_value: &str,
        data: SessionData,
        _: Internal,
    ) -> impl Future<Output = Result<Option<SessionRecord>, Error>> + Send {
        drop(data);
        self.load(cookie_value)
    }

    #[doc(hidden)]
    fn save_into(
        &self,
        data: &SessionData,
        now: u64,
        previous: Option<&str>,
        out: &mut String,
        _: Internal,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            out.push_str(&self.save(data, now, previous).await?);
            Ok(())
        }
    }

    /// Whether a loaded record's `issued_at` is the `now` its cookie was saved with (the
    /// cookie store: the itsdangerous timestamp, signed), so that the middleware can keep a
    /// session's creation time there, re-signing every cookie of the session with it (the
    /// absolute timeout at no cost in cookie bytes). `false` by default: a server-side store
    /// hands back the time of the read, and the creation time then travels in the data
    /// (`__created_at`).
    #[doc(hidden)]
    fn issued_at_is_saved(&self, _: Internal) -> bool {
        false
    }

    // The session's reserved timestamps (`__created_at`, `__last_seen_at`) go through these
    // two, kept out of the session's map: the defaults take them out of the loaded map and put
    // them into the map to save (but for an empty session, which is saved without them); the
    // cookie store reads and writes them in the cookie's JSON directly, with no key string
    // per request.

    #[doc(hidden)]
    fn load_stamped(
        &self,
        cookie_value: &str,
        data: SessionData,
        stamps: &mut Stamps<'_>,
        _: Internal,
    ) -> impl Future<Output = Result<Option<SessionRecord>, Error>> + Send {
        async move {
            let mut record = self.load_into(cookie_value, data, Internal).await?;
            match &mut record {
                Some(record) => stamps.take_from(&mut record.data),
                None => stamps.values = [None; 2],
            }
            Ok(record)
        }
    }

    /// Saves `data` with `stamps`: as a regenerated session forgetting `forget` when it is
    /// given, else reusing `previous`.
    #[doc(hidden)]
    #[allow(clippy::too_many_arguments)]
    fn save_stamped(
        &self,
        data: &mut SessionData,
        stamps: &Stamps<'_>,
        now: u64,
        previous: Option<&str>,
        forget: Option<&str>,
        out: &mut String,
        _: Internal,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            // An empty session stays empty: a server-side store keeps nothing for it (its id
            // names nothing), and a session with no data has no age worth bounding.
            let stamps = match data.is_empty() {
                true => &Stamps::NONE,
                false => stamps,
            };
            stamps.insert_into(data);
            let saved = match forget {
                Some(old) => {
                    self.save_regenerated_into(data, now, old, out, Internal)
                        .await
                }
                None => self.save_into(data, now, previous, out, Internal).await,
            };
            stamps.remove_from(data);
            saved
        }
    }

    #[doc(hidden)]
    fn save_regenerated_into(
        &self,
        data: &SessionData,
        now: u64,
        previous: &str,
        out: &mut String,
        _: Internal,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        async move {
            out.push_str(&self.save_regenerated(data, now, previous).await?);
            Ok(())
        }
    }
}

mod internal {
    /// The argument of the middleware's own store methods: public (it appears in a public
    /// trait) but in a private module, so that code outside chirp cannot name it.
    #[derive(Debug, Clone, Copy)]
    pub struct Internal;
}

pub(crate) use internal::Internal;
