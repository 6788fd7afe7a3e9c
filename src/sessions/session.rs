//! [`Session`]: a cheap handle onto the request's session map.

use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::{Map, Value};

use crate::error::LookupError;

/// The session of one request, shared by every clone of its [`Session`] handles.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    pub(crate) data: Map<String, Value>,
    /// Changed by the handler (insert, remove, clear, regenerate).
    pub(crate) modified: bool,
    /// `regenerate_session()` was called: a fresh cookie must be issued.
    pub(crate) regenerated: bool,
    /// Where the loaded session came from: its creation time and the reserved timestamps its
    /// cookie carried. The default for a new or regenerated session (created now).
    pub(crate) origin: Origin,
}

/// What the session middleware keeps of a loaded session's age, to save it again.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub(crate) struct Origin {
    /// The reserved creation stamp (`__created_at`) as the cookie carried it, in Unix seconds
    /// (a Python app writes fractions); `None` when it carried none.
    pub(crate) created: Option<f64>,
    /// Whether the cookie carried the reserved last-seen stamp (`__last_seen_at`).
    pub(crate) seen: bool,
    /// When the session was created, in whole Unix seconds: with the cookie store and an
    /// absolute timeout, the signing time every re-signed cookie keeps (the earlier of the
    /// cookie's timestamp and its creation stamp).
    pub(crate) since: u64,
    /// When the cookie was last sent, in whole Unix seconds, when it tells ([`SaveMode::Refresh`](crate::sessions::SaveMode::Refresh)).
    pub(crate) refreshed: Option<u64>,
}

/// A handle onto the current request's session: a JSON object whose values are typed on the
/// way in and out. Cloning is cheap; every clone sees the same data. The lock inside is never
/// held across an `.await`, so the handle may be used freely in async code.
///
/// ```
/// # use chirp::sessions::Session;
/// let session = Session::detached();
/// session.insert("visits", 1u64);
/// session.insert("user", serde_json::json!({"name": "alice"}));
/// assert_eq!(session.get::<u64>("visits"), Some(1));
/// assert_eq!(session.get::<String>("visits"), None); // wrong type
/// assert_eq!(session.keys(), ["visits", "user"]);
/// session.remove("visits");
/// assert!(!session.contains_key("visits"));
/// ```
#[derive(Debug, Clone, Default)]
pub struct Session {
    state: Arc<Mutex<SessionState>>,
}

/// A session is recycled only when it holds at most this many keys (its map's memory grows
/// with them; `serde_json::Map` does not tell its capacity).
const SPARE_KEYS_AT_MOST: usize = 64;

thread_local! {
    /// The last finished request's session on this thread, emptied, for the next request to
    /// reuse: its `Arc` and its map's memory (three allocations a request fewer).
    static SPARE: Cell<Option<Session>> = const { Cell::new(None) };
}

impl Session {
    /// An empty session for a new request: this thread's spare one when there is one.
    pub(crate) fn for_request() -> Session {
        SPARE.take().unwrap_or_default()
    }

    /// Takes the map out (for a store to fill, or to save out of the lock).
    pub(crate) fn take_map(&self) -> Map<String, Value> {
        std::mem::take(&mut self.lock().data)
    }

    /// Puts a loaded session's data in, with its `origin`.
    pub(crate) fn loaded(&self, data: Map<String, Value>, origin: Origin) {
        let mut state = self.lock();
        state.data = data;
        state.origin = origin;
    }

    /// Empties this request's session and keeps it as this thread's spare, unless a clone
    /// outlived the request (a spawned task holds the handle: it keeps its data) or its map
    /// grew large.
    pub(crate) fn recycle(mut self) {
        let Some(state) = Arc::get_mut(&mut self.state) else {
            return;
        };
        let state = state.get_mut().unwrap_or_else(PoisonError::into_inner);
        if state.data.len() > SPARE_KEYS_AT_MOST {
            return;
        }
        // Every field named (no `..`): a field added later must be reset here too.
        let SessionState {
            data,
            modified,
            regenerated,
            origin,
        } = state;
        data.clear();
        (*modified, *regenerated, *origin) = (false, false, Origin::default());
        SPARE.set(Some(self));
    }

    /// A session attached to no request (for unit tests of code that takes a `Session`).
    pub fn detached() -> Session {
        Session::default()
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SessionState> {
        // A panic while the lock is held cannot leave the map half-written (every method is a
        // single map operation), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value under `key` as `T`; `None` when absent or of another type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        let state = self.lock();
        T::deserialize(state.data.get(key)?).ok()
    }

    /// The raw JSON value under `key`.
    pub fn get_value(&self, key: &str) -> Option<Value> {
        self.lock().data.get(key).cloned()
    }

    /// Stores `value` under `key`.
    ///
    /// # Panics
    /// If `value` cannot be represented as JSON (a map with non-string keys, a float NaN, ...):
    /// that is a bug in the calling code, and the server turns the panic into a 500 with the
    /// session left unchanged. Use [`Session::try_insert`] to handle it instead.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) {
        if let Err(e) = self.try_insert(key, value) {
            panic!("Session::insert: {e}");
        }
    }

    /// Stores `value` under `key`, or says why it cannot be represented as JSON.
    pub fn try_insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), serde_json::Error> {
        let value = serde_json::to_value(value)?;
        let mut state = self.lock();
        // Replace in place when the key exists: no new key string.
        match state.data.get_mut(key) {
            Some(slot) => *slot = value,
            None => {
                state.data.insert(key.to_owned(), value);
            }
        }
        state.modified = true;
        Ok(())
    }

    /// Removes `key`, returning its value.
    pub fn remove(&self, key: &str) -> Option<Value> {
        let mut state = self.lock();
        let old = state.data.shift_remove(key);
        state.modified |= old.is_some();
        old
    }

    /// Removes everything.
    pub fn clear(&self) {
        let mut state = self.lock();
        state.modified |= !state.data.is_empty();
        state.data.clear();
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.lock().data.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.lock().data.is_empty()
    }

    /// The keys, in insertion order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().data.keys().cloned().collect()
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.lock().data.contains_key(key)
    }

    /// Clears the data and marks the session for a freshly signed cookie.
    pub(crate) fn regenerate(&self) {
        let mut state = self.lock();
        state.data.clear();
        state.origin = Origin::default();
        state.modified = true;
        state.regenerated = true;
    }
}

tokio::task_local! {
    /// The request's session, in scope while the session middleware runs the rest of the
    /// chain.
    pub(crate) static CURRENT: Session;
}

fn no_session() -> LookupError {
    LookupError::new(
        "No active session. Ensure SessionMiddleware is added to the app before accessing the session.",
    )
}

/// The current request's session.
///
/// # Errors
/// [`LookupError`] outside a request handled by the session middleware
/// (`chirp::middleware::sessions::SessionMiddleware`), or in a spawned task.
///
/// ```
/// let err = chirp::sessions::get_session().unwrap_err();
/// assert!(err.message().starts_with("No active session"));
/// ```
pub fn get_session() -> Result<Session, LookupError> {
    CURRENT.try_with(Session::clone).map_err(|_| no_session())
}

/// Clears the current session and forces a freshly signed cookie, different from the one the
/// request came with (session-fixation defence; [`login`](crate::middleware::auth::login) and
/// [`logout`](crate::middleware::auth::logout) call it).
///
/// # Errors
/// [`LookupError`] outside a session scope.
pub fn regenerate_session() -> Result<Session, LookupError> {
    let session = get_session()?;
    session.regenerate();
    Ok(session)
}
