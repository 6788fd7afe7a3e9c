//! Signed-cookie sessions, after the Python framework's `chirp.middleware.sessions`.
//!
//! | Python | Rust |
//! | --- | --- |
//! | `SessionConfig(secret_key=..., ...)` | [`SessionConfig::new`]`(secret)` and its public fields |
//! | `SessionMiddleware(config)` | [`SessionMiddleware::new`]`(config)?` |
//! | `get_session()` | [`get_session`](crate::sessions::get_session)`()?` → [`Session`] |
//! | `regenerate_session()` | [`regenerate_session`](crate::sessions::regenerate_session)`()?` |
//! | `LookupError` outside a request | [`LookupError`](crate::LookupError) |
//!
//! This module holds the middleware; what handlers use of a session ([`get_session`](crate::sessions::get_session),
//! [`Session`], [`SessionConfig`], flash messages) is in [`chirp::sessions`](crate::sessions),
//! and where sessions are kept ([`CookieStore`], `RedisStore`, the [`SessionStore`] trait) in
//! [`chirp::stores`](crate::stores).
//!
//! The middleware loads the session from the cookie, runs the rest of the chain inside a
//! `tokio::task_local!` scope holding it, then saves it into a `Set-Cookie` on the way out.
//! Every handler and every middleware added after it reach it with
//! [`get_session`](crate::sessions::get_session). So does the producer of a streamed
//! response ([`Response::stream`], an [`Sse`](crate::sse::Sse) stream) and the callback of an
//! upgrade ([`Response::upgrade`]), which run after the cookie went out with the headers:
//! they get a read-only copy of the session as it was saved (a change there would be lost,
//! so it is refused, saying so). A task spawned with `tokio::spawn` from a handler runs
//! outside that scope: pass it the [`Session`] handle (changes made after the response has
//! gone are not saved).
//!
//! A missing, malformed, tampered, expired or foreign cookie is never an error: the request
//! gets an empty session and is served normally. When the handler fails (a 5xx, or a panic),
//! its session changes are discarded and no cookie is sent. A visitor who arrived without a
//! cookie and whose session stayed empty and untouched gets no cookie either (and no
//! `Vary: Cookie`): static files and 404s stay cacheable, and nobody gets a cookie they did
//! not ask for.
//!
//! **Lifetime.** What bounds a session is
//! [`absolute_timeout`](SessionConfig::absolute_timeout), on by default (7 days), counted
//! from the session's creation, never from the last signature: a copied cookie, replayed and
//! renewed once a day or not, dies 7 days after the session was created. With the cookie
//! store the creation time is the cookie's own itsdangerous timestamp: a new session is
//! signed at its creation, and every response re-signs it with that same timestamp (so the
//! cookie's JSON carries nothing more than the handler's data, and a small session costs no
//! more to sign than before); the server refuses a cookie whose timestamp is older than
//! `absolute_timeout`. `max_age` (1 day) is then only the cookie's `Max-Age`: renewed with
//! every response, it makes the browser forget a session not visited for `max_age`, but the
//! server does not check it (a copy of the cookie is accepted, visited or not, until the
//! absolute deadline; for an idle limit the server enforces, set
//! [`idle_timeout`](SessionConfig::idle_timeout), which adds a `__last_seen_at` stamp to the
//! cookie). `login()` and `logout()` regenerate the session, which restarts the count. With
//! `absolute_timeout: None` every response signs the cookie afresh and the server refuses one
//! signed more than `max_age` ago: a sliding lifetime with no bound. A server-side store
//! (`RedisStore`) keeps the creation time in the session's data (`__created_at`).
//!
//! **What a logout revokes.** With the cookie store (the default) the session is the cookie:
//! `logout()` answers with a new cookie without the user, which replaces the browser's, but
//! the server keeps no list of cookies and cannot revoke a copy taken before (from a
//! shared computer, a log, malware). That copy keeps working until the absolute deadline
//! (7 days after the login by default; also `idle_timeout` after its last use, when that is
//! set), unless the app bumps the user's
//! [`session_version`](crate::middleware::auth::AuthConfig::session_version), which ends every
//! session of that user at once ("log out everywhere"). A server-side store (`RedisStore`)
//! deletes the session at logout: a replayed cookie is dead everywhere at once.
//!
//! **Several cookies of the session's name** (a browser sends all those whose `Domain` and
//! `Path` match: one may have been tossed by a sibling subdomain, or set on a narrower path,
//! to shadow the real one): each is tried; the session is the one that verifies and is fresh
//! when exactly one does (junk and expired cookies are skipped, so they cannot log anyone
//! out); when two or more do, neither is used and the request starts with an empty session
//! (one of them was put there by someone else, and which cannot be told: using the first
//! would let an attacker who tosses their own signed-in cookie log the victim in as the
//! attacker; refusing costs the victim their session, a denial of service only for as long
//! as the tossed cookie is valid). The defence that prevents tossing altogether is the
//! `__Host-` prefix: `cookie_name: "__Host-chirp_session"` with `secure: true`, `path: "/"` and
//! no `domain`.
//!
//! **Reserved keys**, the same as the Python framework's, so that a cookie is read alike by
//! both: `__created_at` and `__last_seen_at` (Unix seconds, while `idle_timeout` or
//! `absolute_timeout` is set; renamed with [`SessionConfig::created_at_key`] and
//! [`SessionConfig::last_seen_at_key`]). The cookie store writes `__last_seen_at` only for
//! `idle_timeout`, and `__created_at` only without an absolute timeout (with one, the creation
//! time is the cookie's timestamp); a cookie that comes with them (from a Python app, or from
//! chirp before the creation time moved into the timestamp) keeps them, and its session counts
//! from the earlier of its timestamp and its `__created_at`. Then the auth middleware's `user_id`
//! ([`AuthConfig::session_key`](crate::middleware::auth::AuthConfig::session_key)) and
//! `_session_version`
//! ([`AuthConfig::session_version_key`](crate::middleware::auth::AuthConfig::session_version_key)).
//!
//! ```
//! use chirp::sessions::{get_session, SessionConfig};
//! use chirp::middleware::sessions::SessionMiddleware;
//! use chirp::testing::TestClient;
//! use chirp::{App, Request};
//!
//! # #[tokio::main(flavor = "current_thread")] async fn main() -> Result<(), chirp::Error> {
//! let mut app = App::new();
//! app.add_middleware(SessionMiddleware::new(SessionConfig::new("my-secret-key"))?);
//! app.route("/dashboard", |_req: Request| async {
//!     let session = get_session()?;
//!     let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
//!     session.insert("visits", visits);
//!     Ok::<_, chirp::Error>(format!("Visits: {visits}"))
//! });
//!
//! let client = TestClient::new(app);
//! assert_eq!(client.get("/dashboard").await.text(), "Visits: 1");
//! assert_eq!(client.get("/dashboard").await.text(), "Visits: 2");
//! # Ok(()) }
//! ```

use bytes::Bytes;

use crate::error::{ConfigurationError, Error};
use crate::future::BoxFuture;
use crate::http::{is_valid_cookie_name, Cookie, Request, Response, SameSite, StatusCode};
use crate::service::{Middleware, Next};
use crate::sessions::{
    client_now, Origin, SaveMode, Session, SessionConfig, SessionData, Signer, Stamps, CURRENT,
};
use crate::stores::{CookieStore, Internal, SessionStore};

/// The session middleware. See the [module docs](self).
pub struct SessionMiddleware<S: SessionStore = CookieStore> {
    config: SessionConfig,
    store: S,
    /// `; Max-Age=..; Path=..; ...`: the cookie's attributes, formatted once.
    attributes: String,
    /// The session's creation time is the cookie's signed timestamp: the store signs it (the
    /// cookie store) and an absolute timeout is set. Every re-signing then keeps it, and the
    /// server checks the absolute timeout (not `max_age`) against it.
    created_by_timestamp: bool,
}

impl SessionMiddleware<CookieStore> {
    /// The middleware with the signed-cookie store.
    ///
    /// # Errors
    /// [`ConfigurationError`] for an empty secret, `SameSite=None` without `secure`, an
    /// invalid cookie name, a `__Secure-` or `__Host-` name without what its prefix demands
    /// (`secure`; for `__Host-` also `path` `/` and no `domain`), or a path or domain that
    /// cannot go in a cookie. A secret shorter than 32 bytes, and an `absolute_timeout`
    /// shorter than `max_age`, are accepted with a logged warning.
    pub fn new(config: SessionConfig) -> Result<Self, ConfigurationError> {
        let signer = Signer::new(
            &config.secret_key,
            &config.fallback_secret_keys,
            config.digest,
            &config.salt,
        );
        SessionMiddleware::with_store(config, CookieStore::new(signer))
    }
}

impl<S: SessionStore> SessionMiddleware<S> {
    /// The middleware with another store.
    ///
    /// # Errors
    /// As [`SessionMiddleware::new`].
    pub fn with_store(config: SessionConfig, store: S) -> Result<Self, ConfigurationError> {
        if config.secret_key.is_empty() {
            return Err(ConfigurationError::new("secret_key must not be empty"));
        }
        if config.samesite == SameSite::None && !config.secure {
            return Err(ConfigurationError::new(
                "samesite=None requires secure=true: browsers drop SameSite=None cookies that are not Secure",
            ));
        }
        if !is_valid_cookie_name(&config.cookie_name) {
            return Err(ConfigurationError::new(format!(
                "cookie_name {:?} is not a valid cookie name: use letters, digits and !#$%&'*+-.^_`|~",
                config.cookie_name
            )));
        }
        // Browsers drop a prefixed cookie set without what its prefix demands, silently.
        let prefixed = |p: &str| {
            config
                .cookie_name
                .get(..p.len())
                .is_some_and(|n| n.eq_ignore_ascii_case(p))
        };
        if (prefixed("__Secure-") || prefixed("__Host-")) && !config.secure {
            return Err(ConfigurationError::new(format!(
                "cookie_name {:?} needs secure=true: browsers refuse a __Secure- or __Host- cookie without Secure",
                config.cookie_name
            )));
        }
        if prefixed("__Host-") && (config.path != "/" || config.domain.is_some()) {
            return Err(ConfigurationError::new(format!(
                "cookie_name {:?} needs path=\"/\" and no domain: browsers refuse a __Host- cookie with a Domain or another Path",
                config.cookie_name
            )));
        }
        if config.secret_key.len() < 32 {
            tracing::warn!(
                len = config.secret_key.len(),
                "session secret_key is shorter than 32 bytes: use a long random secret in production"
            );
        }
        if let Some(absolute) = config.absolute_timeout {
            if absolute < config.max_age {
                tracing::warn!(
                    absolute_timeout = absolute.as_secs(),
                    max_age = config.max_age.as_secs(),
                    "session absolute_timeout is shorter than max_age: sessions end at absolute_timeout, before their cookie does"
                );
            }
        }
        let mut cookie = Cookie::new(config.cookie_name.clone(), "")
            .max_age(config.max_age)
            .path(config.path.clone())
            .secure(config.secure)
            .http_only(config.httponly)
            .same_site(config.samesite);
        if let Some(domain) = &config.domain {
            cookie = cookie.domain(domain.clone());
        }
        let header = cookie.to_header_value().map_err(ConfigurationError::new)?;
        let attributes = header[config.cookie_name.len() + 1..].to_owned();
        let created_by_timestamp =
            config.absolute_timeout.is_some() && store.issued_at_is_saved(Internal);
        Ok(SessionMiddleware {
            config,
            store,
            attributes,
            created_by_timestamp,
        })
    }

    /// The configuration.
    pub fn config(&self) -> &SessionConfig {
        &self.config
    }

    fn has_timeouts(&self) -> bool {
        self.config.idle_timeout.is_some() || self.config.absolute_timeout.is_some()
    }

    /// Whether a record signed at `issued_at`, created at `created` and last seen at
    /// `last_seen` is still valid at `now`. The signature's age is compared with `max_age` as
    /// itsdangerous does (whole seconds, `age > max_age` is expired), except when the
    /// signature's time is the session's creation (then the absolute timeout bounds it, and
    /// `max_age` is only the cookie's `Max-Age`); the timeouts as the Python framework does
    /// (`now - ts > timeout` is expired), and a timeout of zero expires at once.
    fn is_fresh(&self, issued_at: u64, created: f64, last_seen: f64, now: u64) -> bool {
        if issued_at > now {
            return false; // signed in the future: a forged or badly skewed clock
        }
        let within = |limit: Option<std::time::Duration>, since: f64| {
            limit.is_none_or(|l| !l.is_zero() && now as f64 - since <= l.as_secs_f64())
        };
        (self.created_by_timestamp || now - issued_at <= self.config.max_age.as_secs())
            && within(self.config.idle_timeout, last_seen)
            && within(self.config.absolute_timeout, created)
    }

    /// The reserved timestamps' keys, while a timeout is set (always, when the creation time
    /// is the cookie's timestamp: a cookie from a Python app or an older chirp may carry
    /// them).
    fn stamps(&self) -> Stamps<'_> {
        Stamps::new(self.has_timeouts().then_some([
            self.config.created_at_key.as_str(),
            self.config.last_seen_at_key.as_str(),
        ]))
    }

    /// Loads the cookie's session into `session` (left empty when there is no valid, fresh
    /// one), saying whether there was one. The store parses into the session's own (reused)
    /// map. `Err`: the store could not answer, and the request must not go on as if it had no
    /// session.
    async fn load(
        &self,
        session: &Session,
        cookie: Option<&str>,
        now: u64,
    ) -> Result<Loaded, Error> {
        let Some(cookie) = cookie else {
            return Ok(Loaded::Nothing);
        };
        match self.check(cookie, session.take_map(), now).await? {
            Checked::Fresh(data, origin) => {
                session.loaded(data, origin);
                Ok(Loaded::Session)
            }
            Checked::Expired => Ok(Loaded::Expired),
            Checked::Refused => Ok(Loaded::Nothing),
        }
    }

    /// Loads and checks one cookie, parsing into `map`.
    async fn check(&self, cookie: &str, map: SessionData, now: u64) -> Result<Checked, Error> {
        let mut stamps = self.stamps();
        let Some(record) = self
            .store
            .load_stamped(cookie, map, &mut stamps, Internal)
            .await?
        else {
            return Ok(Checked::Refused);
        };
        let [created, last_seen] = stamps.values;
        let mut record = record;
        if !self.store.issued_at_is_saved(Internal) {
            // A server-side store's `issued_at` is when it read the record, taken after its
            // round trip: the clock may have moved to the next second since this request's
            // `now`. That is no sign of a cookie from the future (only a signed timestamp
            // could be), so it must not expire a live session (it did, now and then: a
            // Redis session lost at a second boundary, issue 23).
            record.issued_at = record.issued_at.min(now);
        }
        let issued_at = record.issued_at as f64;
        let (since, seen) = match self.created_by_timestamp {
            // The cookie's timestamp is the session's creation, unless it carries an earlier
            // creation stamp (a Python app's, or one chirp wrote before the timestamp was
            // kept): the earlier of the two. Without a last-seen stamp (idle_timeout turned on
            // since), the session was last seen no later than its creation, for all we know.
            true => {
                let since = created.map_or(issued_at, |c| c.min(issued_at));
                (since, last_seen.unwrap_or(since))
            }
            // The timestamp is the last signature: a session without a creation time (made by
            // an app without timeouts: a Python one) counts from it.
            false => (created.unwrap_or(issued_at), last_seen.unwrap_or(issued_at)),
        };
        if !self.is_fresh(record.issued_at, since, seen, now) {
            tracing::debug!("session cookie expired; starting an empty session");
            return Ok(Checked::Expired);
        }
        let origin = Origin {
            created,
            seen: last_seen.is_some(),
            // Whole seconds, rounded down (a fraction of a second earlier, never later).
            since: since.max(0.0) as u64,
            // The last-seen stamp is written with every cookie; without it, the cookie
            // store's timestamp is the last signature unless it is the creation time.
            refreshed: last_seen
                .map(|s| s.max(0.0) as u64)
                .or(
                    (!self.created_by_timestamp && self.store.issued_at_is_saved(Internal))
                        .then_some(record.issued_at),
                ),
        };
        Ok(Checked::Fresh(record.data, origin))
    }

    /// Loads the one session of several cookies of the session's name (a browser sends them
    /// all when they differ in `Domain` or `Path`): the one that verifies and is fresh when
    /// exactly one does, none when two or more do (ambiguous: one was put there by someone
    /// else, a sibling subdomain tossing its own login, and which cannot be told). Returns the
    /// index of the cookie loaded.
    async fn load_one_of(
        &self,
        session: &Session,
        cookies: &[IncomingCookie],
        now: u64,
    ) -> Result<Option<usize>, Error> {
        let mut found = None;
        for (i, cookie) in cookies.iter().enumerate() {
            let Checked::Fresh(data, origin) =
                self.check(cookie.as_str(), SessionData::new(), now).await?
            else {
                continue;
            };
            if found.is_some() {
                tracing::debug!(
                    cookies = cookies.len(),
                    "two valid session cookies in one request (a tossed cookie?): using neither; starting an empty session"
                );
                return Ok(None);
            }
            found = Some((i, data, origin));
        }
        Ok(found.map(|(i, data, origin)| {
            session.loaded(data, origin);
            i
        }))
    }

    /// Whether a cookie last sent at `refreshed` is recent enough for [`SaveMode::Refresh`]
    /// to leave it: under a quarter of the shorter of `idle_timeout` and `max_age` old.
    fn sent_lately(&self, refreshed: Option<u64>, now: u64) -> bool {
        let Some(at) = refreshed else {
            return false; // unknown: sent, as always
        };
        let life = match self.config.idle_timeout {
            Some(idle) => idle.min(self.config.max_age),
            None => self.config.max_age,
        };
        now.saturating_sub(at) < life.as_secs() / SaveMode::REFRESH_DIVISOR
    }

    /// Writes the session into `res` (or not, per the save mode and the handler's outcome).
    /// (`res` is borrowed, not moved in: this future then holds no copy of it.)
    async fn save(
        &self,
        res: &mut Response,
        session: &Session,
        incoming: Option<&str>,
        loaded: Loaded,
        now: u64,
    ) {
        if res.status().is_server_error() {
            return; // the handler failed: its half-made changes are not persisted
        }
        // The map leaves the lock while the store works (it may await), and is handed back
        // afterwards, so that its memory serves the next request.
        let (mut data, regenerated, origin) = {
            let mut state = session.lock();
            let unchanged = !state.modified && !state.regenerated;
            let skip = match self.config.save_mode {
                SaveMode::Always => false,
                SaveMode::OnChange => unchanged,
                SaveMode::Refresh => unchanged && self.sent_lately(state.origin.refreshed, now),
            };
            if skip {
                return;
            }
            if unchanged && incoming.is_none() && state.data.is_empty() {
                return; // a new visitor with nothing in the session: no cookie for `{}`
            }
            (
                std::mem::take(&mut state.data),
                state.regenerated,
                state.origin,
            )
        };
        self.save_data(res, &mut data, (regenerated, loaded), origin, incoming, now)
            .await;
        session.lock().data = data;
    }

    /// The part of [`save`](Self::save) that writes `data` and sets the cookie.
    async fn save_data(
        &self,
        res: &mut Response,
        data: &mut SessionData,
        (regenerated, loaded): (bool, Loaded),
        origin: Origin,
        incoming: Option<&str>,
        now: u64,
    ) {
        // The store reuses the previous cookie's id only when that cookie named a session
        // that was loaded: an expired or unknown one is not brought back to life, and an
        // expired one is forgotten as a regenerated one is (a server-side store deletes it).
        let previous = match loaded {
            Loaded::Session => incoming,
            Loaded::Nothing | Loaded::Expired => None,
        };
        let regenerated = regenerated || loaded == Loaded::Expired;
        // A session made or regenerated here is created now; a loaded one keeps its creation
        // time (re-signing never moves it).
        let kept = !regenerated && loaded == Loaded::Session;
        let mut stamps = self.stamps();
        let signed_at = match self.created_by_timestamp {
            // The creation time is the cookie's timestamp: a kept session is re-signed with
            // its own, a new one with now; no stamp is added to the cookie's JSON but the
            // last-seen one for an idle timeout. Stamps a kept cookie came with stay (a
            // Python app sharing it reads them), the last-seen one updated.
            true => {
                let seen = self.config.idle_timeout.is_some() || (kept && origin.seen);
                let created = origin.created.filter(|_| kept);
                stamps.values = [created, seen.then_some(now as f64)];
                match kept {
                    true => origin.since,
                    false => now,
                }
            }
            // The timestamp is the last signature: the stamps carry the creation time. One
            // loaded without a creation time is saved without timestamps, as it came (a Python
            // app's session).
            false => {
                let created = match kept {
                    true => origin.created,
                    false => Some(now as f64),
                };
                if let Some(created) = created {
                    stamps.values = [Some(created), Some(now as f64)];
                }
                now
            }
        };
        // The Set-Cookie value is built in one string: name, value (the store appends it),
        // attributes; room for a value somewhat larger than the one that came in.
        let name = &self.config.cookie_name;
        let room = incoming.map_or(0, str::len).max(160) + 32;
        let mut set_cookie = String::with_capacity(name.len() + 1 + room + self.attributes.len());
        set_cookie.push_str(name);
        set_cookie.push('=');
        let value_at = set_cookie.len();
        let (previous, forget) = match regenerated {
            true => (None, incoming),
            false => (previous, None),
        };
        let mut saved = self
            .store
            .save_stamped(
                data,
                &stamps,
                signed_at,
                previous,
                forget,
                &mut set_cookie,
                Internal,
            )
            .await;
        if saved.is_ok() && regenerated && Some(&set_cookie[value_at..]) == incoming {
            // Same data in the same second as the old cookie: sign one second earlier so the
            // new cookie differs, as a regeneration promises.
            set_cookie.truncate(value_at);
            saved = self
                .store
                .save_stamped(
                    data,
                    &stamps,
                    now.saturating_sub(1),
                    None,
                    None,
                    &mut set_cookie,
                    Internal,
                )
                .await;
        }
        if let Err(e) = saved {
            *res = store_failed(e);
            return;
        }
        set_cookie.push_str(&self.attributes);
        let size = set_cookie.len();
        if size > self.config.max_cookie_size {
            let limit = self.config.max_cookie_size;
            tracing::error!(
                size,
                limit,
                "session cookie too large: not sent; the client keeps its previous cookie"
            );
            *res = Response::text(format!(
                "Internal Server Error: the session cookie would be {size} bytes, over the {limit}-byte limit browsers keep; store less in the session"
            ))
            .with_status(StatusCode::INTERNAL_SERVER_ERROR);
            return;
        }
        // The name and attributes were checked at start-up and the value is base64url and
        // dots: nothing to re-check per response.
        res.append_trusted_header("set-cookie", set_cookie);
        add_vary_cookie(res);
    }
}

/// What [`SessionMiddleware::load`] found.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Loaded {
    /// No cookie, or one that names no session.
    Nothing,
    /// The cookie's session, now in the request's [`Session`].
    Session,
    /// A session past `max_age` or a timeout: the request starts empty.
    Expired,
}

/// What [`SessionMiddleware::check`] found of one cookie.
enum Checked {
    /// Valid and fresh: its data, and what it says of its age.
    Fresh(SessionData, Origin),
    /// Valid, but past `max_age` or a timeout.
    Expired,
    /// Not a session (bad signature, unknown id, ...).
    Refused,
}

/// The answer when the store failed: its own status for an [`HttpError`] (a server-side store
/// that is down says `503`, with `Retry-After`), else `500`; logged either way.
fn store_failed(e: Error) -> Response {
    tracing::error!(error = %e, "session store failed");
    match e {
        Error::Http(http) => {
            let unavailable = http.status() == StatusCode::SERVICE_UNAVAILABLE;
            let mut res = crate::http::IntoResponse::into_response(http);
            if unavailable && res.header("retry-after").is_none() {
                res.append_trusted_header("retry-after", "1");
            }
            res
        }
        _ => Response::error(StatusCode::INTERNAL_SERVER_ERROR, "Internal Server Error"),
    }
}

/// Adds `Cookie` to `Vary`, so no shared cache serves one user's cookie to another.
fn add_vary_cookie(res: &mut Response) {
    match res.header("vary") {
        None => res.append_trusted_header("vary", "Cookie"),
        Some(v)
            if v.split(',')
                .any(|t| t.trim() == "*" || t.trim().eq_ignore_ascii_case("cookie")) => {}
        Some(v) => {
            let merged = format!("{v}, Cookie");
            res.set_header("vary", merged);
        }
    }
}

/// A session cookie of the request, kept without copying: a handle on the request's head
/// buffer and where the value sits in it.
struct IncomingCookie {
    buf: Bytes,
    at: (usize, usize),
}

impl IncomingCookie {
    /// `value`, a slice of `req`'s head.
    fn at(req: &Request, value: &[u8]) -> IncomingCookie {
        let buf = req.headers().buffer().clone();
        let start = value.as_ptr() as usize - buf.as_ptr() as usize;
        IncomingCookie {
            buf,
            at: (start, start + value.len()),
        }
    }

    /// The value, checked to be UTF-8 here and only here ("" when it is not, which no store
    /// accepts).
    fn as_str(&self) -> &str {
        std::str::from_utf8(&self.buf[self.at.0..self.at.1]).unwrap_or("")
    }
}

/// The request's cookies of the session's name, in every `Cookie` header, in order.
enum Candidates {
    None,
    One(IncomingCookie),
    /// Several: a browser sends each cookie of the name whose `Domain` and `Path` match, the
    /// most specific path first. One may have been tossed by a sibling subdomain or set on a
    /// narrower path to shadow the real one.
    Many(Vec<IncomingCookie>),
}

impl Candidates {
    /// One pass over the `Cookie` headers, each scanned once (a vector at a time).
    fn of(req: &Request, name: &str) -> Candidates {
        let mut values = req
            .headers()
            .get_all_bytes("cookie")
            .flat_map(|header| Cookie::values_in(header, name.as_bytes()));
        let Some(first) = values.next() else {
            return Candidates::None;
        };
        // The first is the one `Request::cookie` reads.
        debug_assert_eq!(req.cookie_bytes(name), Some(first));
        let first = IncomingCookie::at(req, first);
        match values.next() {
            None => Candidates::One(first),
            Some(second) => {
                let mut all = vec![first, IncomingCookie::at(req, second)];
                all.extend(values.map(|v| IncomingCookie::at(req, v)));
                Candidates::Many(all)
            }
        }
    }
}

impl<S: SessionStore> Middleware for SessionMiddleware<S> {
    fn provides(&self) -> &'static [&'static str] {
        &["session"]
    }

    fn name(&self) -> &'static str {
        "SessionMiddleware"
    }

    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
        Box::pin(async move {
            // A test client's clock, when the test took it, is every middleware's clock.
            let now = client_now(&req).unwrap_or_else(|| self.config.clock.now());
            let session = Session::for_request();
            // `loaded` is `None` while the one cookie remains to be loaded.
            let (cookie, loaded) = match Candidates::of(&req, &self.config.cookie_name) {
                Candidates::None => (None, Some(Ok(Loaded::Nothing))),
                Candidates::One(cookie) => (Some(cookie), None),
                // Rare (and boxed, to keep this future small): several cookies of the name.
                Candidates::Many(mut cookies) => {
                    match Box::pin(self.load_one_of(&session, &cookies, now)).await {
                        Ok(Some(i)) => (Some(cookies.swap_remove(i)), Some(Ok(Loaded::Session))),
                        Ok(None) => (None, Some(Ok(Loaded::Nothing))),
                        Err(e) => (None, Some(Err(e))),
                    }
                }
            };
            // The value, checked to be UTF-8 once.
            let incoming = cookie.as_ref().map(IncomingCookie::as_str);
            let loaded = match loaded {
                Some(loaded) => loaded,
                None => self.load(&session, incoming, now).await,
            };
            let loaded = match loaded {
                Ok(loaded) => loaded,
                Err(e) => return store_failed(e),
            };
            let mut res = CURRENT.scope(session.clone(), next.run(req)).await;
            self.save(&mut res, &session, incoming, loaded, now).await;
            // A stream's producer and an upgrade callback run after this, once the cookie has
            // gone out with the headers: they read a copy of the session as saved, which
            // refuses changes (they would be lost) and leaves this one to be recycled.
            res.carry_task_local(&CURRENT, || session.read_only_copy());
            session.recycle();
            res
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::Method;
    use crate::service::tests::next_for_tests;

    /// The session middleware's future is boxed for every request it handles: kept under
    /// 1 KiB it is a small allocation (glibc's per-thread cache serves small sizes), and less
    /// to move into the box. (The sizes measured are in the commit that set this limit.)
    #[test]
    fn the_session_future_is_a_small_allocation() {
        let middleware = SessionMiddleware::new(SessionConfig::new("k".repeat(32))).unwrap();
        let fut = middleware.call(Request::new(Method::Get, "/"), next_for_tests());
        let size = std::mem::size_of_val(&*fut);
        assert!(
            size <= 1024,
            "the session middleware's future is {size} bytes"
        );
    }
}
