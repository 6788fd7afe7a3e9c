//! App state as handlers take it: [`State<T>`], an owned handle on a value registered with
//! [`App::state`](crate::App::state), and [`StateType`], how a handler or a middleware says
//! which types it takes so that the app checks them when it is built.
//!
//! Owned rather than borrowed from the request: a handler keeps its `State` while it reads the
//! body through `&mut Request` (`body_stream`, `multipart`), and can move it into a task or a
//! stream.

use std::any::TypeId;
use std::fmt;
use std::ops::Deref;
use std::sync::Arc;

/// A value of the app's state, taken by a handler as an argument after the request:
///
/// ```
/// use std::sync::atomic::{AtomicU64, Ordering};
/// use chirp::{App, Request, State};
/// # #[tokio::main(flavor = "current_thread")] async fn main() {
/// struct Hits(AtomicU64);
///
/// async fn count(_req: Request, hits: State<Hits>) -> String {
///     (hits.0.fetch_add(1, Ordering::Relaxed) + 1).to_string()
/// }
///
/// let mut app = App::new();
/// app.state(Hits(AtomicU64::new(0)));
/// app.route("/", count);
/// let client = chirp::testing::TestClient::new(app);
/// assert_eq!(client.get("/").await.text(), "1");
/// assert_eq!(client.get("/").await.text(), "2");
/// # }
/// ```
///
/// The app checks at build that every type a handler takes was registered with
/// [`App::state`](crate::App::state): a handler asking for one that was not is a
/// [`ConfigurationError`](crate::ConfigurationError) naming the route, never a `500` at the
/// first request. A handler takes up to three `State` arguments (a struct of your own holds
/// more).
///
/// It is an `Arc` inside: cloning it is cheap and every clone shares the one value, so use
/// interior mutability (a `Mutex`, an atomic, a pool) for what changes. It dereferences to
/// `T`. [`State::new`] makes one outside an app, to call a handler directly in a test.
pub struct State<T>(Arc<T>);

impl<T> State<T> {
    /// A handle on `value`, outside any app (the app makes its own from
    /// [`App::state`](crate::App::state)): for calling a handler directly in a test.
    ///
    /// ```
    /// use chirp::State;
    /// let name = State::new(String::from("config"));
    /// assert_eq!(name.len(), 6);
    /// ```
    pub fn new(value: T) -> State<T> {
        State(Arc::new(value))
    }

    /// The shared value's `Arc`, to keep beyond the handle (a spawned task, a stream).
    pub fn into_arc(self) -> Arc<T> {
        self.0
    }
}

impl<T> From<Arc<T>> for State<T> {
    fn from(value: Arc<T>) -> State<T> {
        State(value)
    }
}

impl<T> Clone for State<T> {
    fn clone(&self) -> State<T> {
        State(self.0.clone())
    }
}

impl<T> Deref for State<T> {
    type Target = T;

    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T> AsRef<T> for State<T> {
    fn as_ref(&self) -> &T {
        &self.0
    }
}

impl<T: fmt::Debug> fmt::Debug for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_tuple("State").field(&*self.0).finish()
    }
}

impl<T: fmt::Display> fmt::Display for State<T> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

/// A state type as a handler or a middleware declares it
/// ([`Handler::state_types`](crate::routing::Handler::state_types),
/// [`Middleware::state_types`](crate::Middleware::state_types)): the app checks, when it is
/// built, that each one was registered with [`App::state`](crate::App::state).
///
/// ```
/// use chirp::StateType;
/// let ty = StateType::of::<Vec<u8>>();
/// assert_eq!(ty.name(), "alloc::vec::Vec<u8>");
/// assert_eq!(ty, StateType::of::<Vec<u8>>());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct StateType {
    id: TypeId,
    name: &'static str,
}

impl StateType {
    /// The state type `T`.
    pub fn of<T: Send + Sync + 'static>() -> StateType {
        StateType {
            id: TypeId::of::<T>(),
            name: std::any::type_name::<T>(),
        }
    }

    /// The type's name, as error messages give it.
    pub fn name(&self) -> &'static str {
        self.name
    }

    /// The type's [`TypeId`].
    pub fn type_id(&self) -> TypeId {
        self.id
    }
}
