//! [`Session`]: a cheap handle onto the request's session map.

use std::cell::Cell;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_json::Value;

use super::data::{with_json, SessionData};
use crate::error::LookupError;

/// The session of one request, shared by every clone of its [`Session`] handles.
#[derive(Debug, Default)]
pub(crate) struct SessionState {
    pub(crate) data: SessionData,
    /// Changed by the handler (insert, remove, clear, regenerate).
    pub(crate) modified: bool,
    /// `regenerate_session()` was called: a fresh cookie must be issued.
    pub(crate) regenerated: bool,
    /// Where the loaded session came from: its creation time and the reserved timestamps its
    /// cookie carried. The default for a new or regenerated session (created now).
    pub(crate) origin: Origin,
    /// A copy handed to a response's stream or upgrade callback, after the cookie went out:
    /// changes to it would be lost, so they are refused ([`READ_ONLY`]).
    pub(crate) read_only: bool,
}

/// Why a session cannot be changed inside a response stream or an upgraded connection.
pub(crate) const READ_ONLY: &str = "the session is read-only inside a response stream or an \
    upgraded connection: its cookie went out with the response headers, so a change made here \
    would be lost; change the session before returning the response";

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
/// way in and out, kept in order ([`SessionData`]: the order keys came in, then the order they
/// were first inserted; a value keeps its JSON text, nested objects' order included, until it
/// is set). Cloning is cheap; every clone sees the same data. The lock inside is never held
/// across an `.await`, so the handle may be used freely in async code.
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

/// A session is recycled only when its data holds at most this many entries and this many
/// bytes (the spare keeps its memory for the next request).
const SPARE_KEYS_AT_MOST: usize = 64;
const SPARE_BYTES_AT_MOST: usize = 16 * 1024;

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
    pub(crate) fn take_map(&self) -> SessionData {
        std::mem::take(&mut self.lock().data)
    }

    /// Puts a loaded session's data in, with its `origin`.
    pub(crate) fn loaded(&self, data: SessionData, origin: Origin) {
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
        if state.data.held_entries() > SPARE_KEYS_AT_MOST
            || state.data.held_bytes() > SPARE_BYTES_AT_MOST
        {
            return;
        }
        // Every field named (no `..`): a field added later must be reset here too.
        let SessionState {
            data,
            modified,
            regenerated,
            origin,
            read_only,
        } = state;
        data.clear();
        (*modified, *regenerated, *origin) = (false, false, Origin::default());
        *read_only = false;
        SPARE.set(Some(self));
    }

    /// A read-only copy of this session, for a response's stream or upgrade callback, which
    /// run after the cookie was sent: reads see the data as it was saved, writes are refused
    /// ([`Session::is_read_only`]).
    pub(crate) fn read_only_copy(&self) -> Session {
        let state = self.lock();
        Session {
            state: Arc::new(Mutex::new(SessionState {
                data: state.data.clone(),
                modified: false,
                regenerated: false,
                origin: state.origin,
                read_only: true,
            })),
        }
    }

    /// Whether this session can no longer be changed: the one
    /// [`get_session`] gives inside a response stream ([`Response::stream`](crate::Response::stream),
    /// [`Sse`](crate::sse::Sse)) or an upgrade callback ([`Response::upgrade`](crate::Response::upgrade)),
    /// which run after the session's cookie went out with the response headers. There,
    /// [`Session::try_insert`] and [`regenerate_session`] return an error, and
    /// [`Session::insert`], [`Session::remove`] and [`Session::clear`] panic, saying so.
    pub fn is_read_only(&self) -> bool {
        self.lock().read_only
    }

    /// A session attached to no request (for unit tests of code that takes a `Session`).
    pub fn detached() -> Session {
        Session::default()
    }

    /// The lock, for a change: a read-only session panics, naming the cause.
    fn writable(&self) -> MutexGuard<'_, SessionState> {
        let state = self.lock();
        if state.read_only {
            drop(state); // not poisoned by the panic
            panic!("{READ_ONLY}");
        }
        state
    }

    pub(crate) fn lock(&self) -> MutexGuard<'_, SessionState> {
        // A panic while the lock is held cannot leave the map half-written (every method is a
        // single map operation), so a poisoned lock is still usable.
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// The value under `key` as `T`; `None` when absent or of another type.
    pub fn get<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        self.lock().data.get(key)
    }

    /// The value under `key` as a `serde_json::Value` (whose objects are sorted by key,
    /// unless the application switches on `serde_json/preserve_order`: use
    /// [`Session::get`] with a type of your own, or [`Session::get_json`], for the order).
    pub fn get_value(&self, key: &str) -> Option<Value> {
        self.lock().data.get_value(key)
    }

    /// The JSON text of the value under `key`, as the session keeps it (compact, in the
    /// order it came in or was serialized).
    pub fn get_json(&self, key: &str) -> Option<String> {
        self.lock().data.get_json(key).map(str::to_owned)
    }

    /// Stores `value` under `key`, serialized with `serde_json` (a struct keeps its fields'
    /// order). An existing key keeps its place; a new one goes last.
    ///
    /// # Panics
    /// If `value` cannot be represented as JSON (a map with non-string keys, ...), or the
    /// session is read-only ([`Session::is_read_only`]: inside a response stream):
    /// that is a bug in the calling code, and the server turns the panic into a 500 with the
    /// session left unchanged (inside a stream, the connection is closed). Use
    /// [`Session::try_insert`] to handle it instead.
    pub fn insert<T: Serialize>(&self, key: &str, value: T) {
        if let Err(e) = self.try_insert(key, value) {
            panic!("Session::insert: {e}");
        }
    }

    /// Stores `value` under `key`, or says why it cannot: it cannot be represented as JSON,
    /// or the session is read-only ([`Session::is_read_only`]).
    pub fn try_insert<T: Serialize>(&self, key: &str, value: T) -> Result<(), serde_json::Error> {
        if self.is_read_only() {
            return Err(<serde_json::Error as serde::ser::Error>::custom(READ_ONLY));
        }
        // Serialized before the lock is taken (a `Serialize` may read the session), into a
        // reused buffer, then copied into the session's own memory.
        with_json(value, |json| {
            let mut state = self.lock();
            if state.read_only {
                return Err(<serde_json::Error as serde::ser::Error>::custom(READ_ONLY));
            }
            state.data.set(key, json);
            state.modified = true;
            Ok(())
        })?
    }

    /// Removes `key`, returning its value (as [`Session::get_value`]).
    ///
    /// # Panics
    /// If the session is read-only ([`Session::is_read_only`]).
    pub fn remove(&self, key: &str) -> Option<Value> {
        let json = self.remove_json(key)?;
        serde_json::from_str(&json).ok()
    }

    /// Removes `key`, returning its value as `T` (`None` when it was absent or of another
    /// type: it is removed either way).
    ///
    /// # Panics
    /// If the session is read-only ([`Session::is_read_only`]).
    pub fn take<T: DeserializeOwned>(&self, key: &str) -> Option<T> {
        serde_json::from_str(&self.remove_json(key)?).ok()
    }

    /// Removes `key`, returning the JSON text of its value.
    ///
    /// # Panics
    /// If the session is read-only ([`Session::is_read_only`]).
    pub fn remove_json(&self, key: &str) -> Option<String> {
        let mut state = self.writable();
        let old = state.data.remove(key);
        state.modified |= old.is_some();
        old
    }

    /// Removes everything.
    ///
    /// # Panics
    /// If the session is read-only ([`Session::is_read_only`]).
    pub fn clear(&self) {
        let mut state = self.writable();
        state.modified |= !state.data.is_empty();
        state.data.clear();
    }

    /// A copy of the session's data, in order.
    pub fn data(&self) -> SessionData {
        self.lock().data.clone()
    }

    /// Number of keys.
    pub fn len(&self) -> usize {
        self.lock().data.len()
    }

    /// Whether there are no keys.
    pub fn is_empty(&self) -> bool {
        self.lock().data.is_empty()
    }

    /// The keys, in order.
    pub fn keys(&self) -> Vec<String> {
        self.lock().data.keys().map(str::to_owned).collect()
    }

    /// Whether `key` is present.
    pub fn contains_key(&self, key: &str) -> bool {
        self.lock().data.contains_key(key)
    }

    /// Clears the data and marks the session for a freshly signed cookie.
    pub(crate) fn regenerate(&self) {
        let mut state = self.writable();
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
        "No active session. Ensure SessionMiddleware is added to the app before accessing the \
         session. If it is, this code runs outside the request's scope: a task started with \
         tokio::spawn does not inherit it (call get_session() before spawning and move the \
         Session into the task)",
    )
}

/// The current request's session.
///
/// Inside a response stream or an upgrade callback (which run after the middleware has
/// returned and the cookie went out) it is a read-only copy of the session as it was saved
/// ([`Session::is_read_only`]).
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
/// [`LookupError`] outside a session scope, or inside a response stream or an upgrade
/// callback, where the session is read-only ([`Session::is_read_only`]).
pub fn regenerate_session() -> Result<Session, LookupError> {
    let session = get_session()?;
    if session.is_read_only() {
        return Err(LookupError::new(READ_ONLY));
    }
    session.regenerate();
    Ok(session)
}

/// The test client's clock ([`TestClient::clock`](crate::testing::TestClient::clock)), in the
/// extensions of every request the client sends once a test has taken it: the session
/// middleware and the login rate limit then read the time from it rather than from their
/// configured clock. Only the test client makes one (the type is private), and each client
/// has its own: tests running in parallel do not share a time.
#[derive(Debug, Clone)]
pub(crate) struct ClientClock(pub(crate) super::config::ManualClock);

/// The test client's time for `req`, when it carries the client's clock (one branch for any
/// other request: its extensions are empty).
#[inline]
pub(crate) fn client_now(req: &crate::http::Request) -> Option<u64> {
    use super::config::Clock;
    req.extensions().get::<ClientClock>().map(|c| c.0.now())
}
