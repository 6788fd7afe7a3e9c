//! The per-request template functions: what the middleware in whose scope a template is
//! rendered knows of the request. Each reads its task-local when the template calls it, so a
//! page that does not use one pays nothing for it, and a request that has no provider for it
//! (no `CsrfMiddleware`, say) gets an undefined value, which renders as nothing.
//!
//! | In a template | Gives | Needs |
//! | --- | --- | --- |
//! | `{{ csrf_field() }}` | `<input type="hidden" name="_csrf_token" value="…">` | `CsrfMiddleware` |
//! | `{{ csrf_token() }}` | the (masked) token, for `hx-headers` or a `<meta>` | `CsrfMiddleware` |
//! | `{{ csp_nonce() }}` | the CSP nonce of `<script nonce>` | `SecurityHeadersMiddleware` with a `{nonce}` policy |
//! | `get_flashed_messages()` | the flashes, `{category, message}`, taken once per render | `SessionMiddleware` |
//! | `current_user()` | the user (see [`Templates::user`]), or the anonymous one | `AuthMiddleware` |
//! | `request.path`, `request.htmx`, `request.boosted` | the request's path, whether htmx sent it, boosted | (always, in a response) |
//!
//! [`Templates::user`]: super::Templates::user

use std::cell::RefCell;
use std::sync::Arc;

use minijinja::value::{Enumerator, Object, Serde};
use minijinja::{Environment, Value};

use crate::http::response::RenderHead;

use crate::middleware::auth::{current_user_id, get_user, user_or_anonymous, AuthUser};
use crate::middleware::csrf::{csrf_field, get_csrf_token};
use crate::middleware::security_headers::csp_nonce;
use crate::sessions::flash::{take_flashes, Flash, FLASH_KEY};
use crate::sessions::get_session;

/// What one render has seen so far: the flashes it took (a template that asks twice gets
/// them twice), and whether its output is being thrown away; and what it knows of its request
/// (for the `request` global).
#[derive(Default)]
struct Render {
    flashes: Option<Value>,
    head: Option<RenderHead>,
    /// Rendering one block of a template first runs the whole template with its output
    /// discarded (minijinja finds the block's context that way): a layout that shows the
    /// flashes must not take them then, or they would be gone before anyone saw them.
    discarding: bool,
}

thread_local! {
    static RENDER: RefCell<Render> = RefCell::new(Render::default());
}

/// Marks a render under way on this thread (rendering is synchronous): cleared when dropped.
pub(crate) struct RenderScope(());

impl RenderScope {
    /// A render of a response to the request `head` describes (`None`: outside a response),
    /// which `request` in its templates reads.
    pub(crate) fn for_request(head: Option<&RenderHead>) -> RenderScope {
        RENDER.with(|r| {
            *r.borrow_mut() = Render {
                head: head.cloned(),
                ..Render::default()
            }
        });
        RenderScope(())
    }

    /// Whether the output is thrown away from now on (see [`Render::discarding`]).
    pub(crate) fn discarding(&self, on: bool) {
        RENDER.with(|r| r.borrow_mut().discarding = on);
    }
}

impl Drop for RenderScope {
    fn drop(&mut self) {
        RENDER.with(|r| *r.borrow_mut() = Render::default());
    }
}

fn or_undefined<T, E>(value: Result<T, E>, make: impl FnOnce(T) -> Value) -> Value {
    value.map_or(Value::UNDEFINED, make)
}

fn flashes() -> Value {
    let discarding = RENDER.with(|r| r.borrow().discarding);
    if discarding {
        // Looked at, not taken: see `Render::discarding`.
        let peeked = get_session().map(|s| s.get::<Vec<Flash>>(FLASH_KEY).unwrap_or_default());
        return or_undefined(peeked, |f| Value::from(Serde(&f)));
    }
    if let Some(taken) = RENDER.with(|r| r.borrow().flashes.clone()) {
        return taken;
    }
    let taken = or_undefined(take_flashes(), |f| Value::from(Serde(&f)));
    RENDER.with(|r| r.borrow_mut().flashes = Some(taken.clone()));
    taken
}

/// `request` in templates: what the render under way knows of its request, read when a
/// template looks at it (one global for every render, so that a render pays nothing for
/// `request` unless its template reads it). Outside a response every key is undefined.
#[derive(Debug)]
struct RequestValues;

const REQUEST_KEYS: [&str; 4] = ["path", "htmx", "boosted", "history_restore"];

impl Object for RequestValues {
    fn get_value(self: &Arc<Self>, key: &Value) -> Option<Value> {
        let key = key.as_str()?;
        RENDER.with(|r| {
            let render = r.borrow();
            let head = render.head.as_ref()?;
            Some(match key {
                "path" => Value::from(head.path()),
                "htmx" => Value::from(head.htmx),
                "boosted" => Value::from(head.boosted),
                "history_restore" => Value::from(head.history_restore),
                _ => return None,
            })
        })
    }

    fn enumerate(self: &Arc<Self>) -> Enumerator {
        if RENDER.with(|r| r.borrow().head.is_some()) {
            Enumerator::Str(&REQUEST_KEYS)
        } else {
            Enumerator::Empty
        }
    }
}

/// Adds the functions to `env` (`current_user` without a user type: see [`user_function`]),
/// and `request`.
pub(crate) fn register(env: &mut Environment<'static>) {
    env.add_global("request", Value::from_object(RequestValues));
    env.add_function("csrf_token", || or_undefined(get_csrf_token(), Value::from));
    env.add_function("csrf_field", || {
        or_undefined(csrf_field(), Value::from_safe_string)
    });
    // The nonce is base64 of random bytes, made by chirp: nothing in it needs escaping, and
    // escaped (`/` as `&#x2f;`) it would not be the text a `<script nonce>` or a test compares
    // with the policy's. Marked safe, it is written as the header has it.
    env.add_function("csp_nonce", || {
        or_undefined(csp_nonce(), Value::from_safe_string)
    });
    env.add_function("get_flashed_messages", flashes);
    // Without a user type, what every user has: the id.
    env.add_function("current_user", || match current_user_id() {
        Some(id) => minijinja::context! { id => id, is_authenticated => true },
        None => Value::UNDEFINED,
    });
}

/// `current_user()` for the app's user type: the signed-in user, else the anonymous one
/// (`AuthConfig::anonymous`), else none; undefined outside `AuthMiddleware`.
pub(crate) fn user_function<U: AuthUser + serde::Serialize>(env: &mut Environment<'static>) {
    env.add_function("current_user", || match user_or_anonymous::<U>() {
        Ok(user) => Value::from(Serde(&user)),
        Err(_) => match get_user::<U>() {
            Ok(None) => Value::from(()),
            _ => Value::UNDEFINED,
        },
    });
}
