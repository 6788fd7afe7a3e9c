//! Issue 24, finding 4 and the minor duplicate-cookie finding, reproduced over a real socket:
//! cookie-store sessions end at an absolute deadline counted from their creation (not from the
//! last re-sign: every re-signed cookie keeps the session's creation time as its itsdangerous
//! timestamp), a cookie kept from before a logout dies at that deadline (and at once when the
//! user's `session_version` changes), and a second `chirp_session` cookie in the `Cookie`
//! header cannot shadow the real one.

mod common;

use std::sync::{Arc, Mutex};

use chirp::middleware::auth::{
    get_user, login, login_required, logout, AuthConfig, AuthMiddleware, AuthUser,
};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{get_session, Clock, Digest, ManualClock, SessionConfig, Signer};
use chirp::{App, Error, Method, Request, Response};
use common::{RawResponse, TestServer};

const SECRET: &str = "security-sessions-secret-0123456789abcdef";
const T0: u64 = 1_764_000_000;
const DAY: u64 = 86_400;

#[derive(Clone)]
struct User {
    id: u32,
    name: &'static str,
}

impl AuthUser for User {
    fn id(&self) -> String {
        self.id.to_string()
    }
}

fn user(id: u32) -> Option<User> {
    match id {
        1 => Some(User {
            id: 1,
            name: "alice",
        }),
        2 => Some(User {
            id: 2,
            name: "mallory",
        }),
        _ => None,
    }
}

/// The notes app's shape: sessions with the default settings (but the clock), auth with a
/// per-user session version, `/login/{id}`, `/logout`, `/notes` behind a login, `/dashboard`.
fn app(clock: &ManualClock, versions: Arc<Mutex<[u32; 3]>>) -> App {
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig {
            clock: Arc::new(clock.clone()),
            ..SessionConfig::new(SECRET)
        })
        .unwrap(),
    );
    let auth = AuthConfig::new()
        .load_user(|id: String| async move { user(id.parse().ok()?) })
        .session_version(move |u: &User| versions.lock().unwrap()[u.id as usize].to_string());
    app.add_middleware(AuthMiddleware::new(auth).unwrap());
    app.route_with(
        "/login/{id:int}",
        &[Method::Post],
        |req: Request| async move {
            let id: u32 = req.param_as("id")?;
            login(&user(id).unwrap())?;
            Ok::<_, Error>(Response::see_other("/notes"))
        },
    );
    app.route_with("/logout", &[Method::Post], |_req: Request| async {
        logout()?;
        Ok::<_, Error>(Response::see_other("/"))
    });
    app.route(
        "/notes",
        login_required(|_req: Request| async {
            let user = get_user::<User>()?.expect("login_required let us in");
            Ok::<_, Error>(format!("notes of {}", user.name))
        }),
    );
    app.route("/whoami", |_req: Request| async {
        Ok::<_, Error>(get_user::<User>()?.map_or("anonymous", |u| u.name))
    });
    app.route("/dashboard", |_req: Request| async {
        let session = get_session()?;
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        Ok::<_, Error>(format!("Visits: {visits}"))
    });
    app
}

struct Fixture {
    clock: ManualClock,
    versions: Arc<Mutex<[u32; 3]>>,
    server: TestServer,
}

async fn start() -> Fixture {
    let clock = ManualClock::new(T0);
    let versions = Arc::new(Mutex::new([0; 3]));
    let server = TestServer::start(app(&clock, versions.clone())).await;
    Fixture {
        clock,
        versions,
        server,
    }
}

impl Fixture {
    /// One request on a fresh connection, with `cookie` (a whole `Cookie` header value).
    async fn send(&self, method: &str, path: &str, cookie: Option<&str>) -> RawResponse {
        let mut conn = self.server.connect().await;
        let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
        conn.send(format!(
            "{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n{cookie}\r\n"
        ))
        .await;
        conn.response().await
    }

    /// Logs user `id` in; the `chirp_session=...` pair the server set.
    async fn login(&self, id: u32) -> String {
        let res = self.send("POST", &format!("/login/{id}"), None).await;
        assert_eq!(res.status, 303);
        res.cookie_pair()
    }
}

fn value(pair: &str) -> &str {
    pair.strip_prefix("chirp_session=").unwrap()
}

/// The data and signing time of a cookie the server set.
fn decoded(pair: &str) -> (chirp::sessions::SessionData, u64) {
    Signer::new(SECRET, &[], Digest::Sha256, "itsdangerous")
        .loads(value(pair))
        .unwrap()
}

/// The attack of the finding: a captured cookie replayed once a day (just inside `max_age`),
/// each time swapped for the renewed one the server answers with. Before: renewed for ever (a
/// cookie signed 86,390 s ago was renewed for another day). Now: it works until the default
/// absolute lifetime (7 days since the session was created, whatever the re-signing), then
/// never again.
#[tokio::test]
async fn a_cookie_replayed_daily_dies_at_the_absolute_deadline() {
    let f = start().await;
    let mut cookie = f.login(1).await;
    let mut elapsed = 0;
    loop {
        f.clock.advance(DAY - 10);
        elapsed += DAY - 10;
        let res = f.send("GET", "/notes", Some(&cookie)).await;
        if elapsed <= 7 * DAY {
            assert_eq!(res.status, 200, "{elapsed} s after login");
            assert_eq!(res.text(), "notes of alice");
            let renewed = res.cookie_pair();
            assert_eq!(decoded(&renewed).1, T0, "re-signed with the login's time");
            cookie = renewed;
        } else {
            assert_eq!(
                res.status, 302,
                "{elapsed} s after login: past the deadline"
            );
            assert!(res.header("location").unwrap().starts_with("/login"));
            break;
        }
    }
    // Past the deadline for good: the renewed cookie of the last good day is refused too.
    let res = f.send("GET", "/notes", Some(&cookie)).await;
    assert_eq!(res.status, 302);
}

/// The deadline counts from the session's creation, the cookie's itsdangerous timestamp,
/// which re-signing carries over unchanged (nothing is added to the cookie's JSON); one second
/// past it the session is gone.
#[tokio::test]
async fn the_deadline_is_seven_days_after_creation_to_the_second() {
    let f = start().await;
    let first = f.send("GET", "/dashboard", None).await.cookie_pair();
    assert_eq!(decoded(&first).1, T0);
    let mut cookie = first;
    for day in 1..=6 {
        f.clock.set(T0 + day * DAY);
        let res = f.send("GET", "/dashboard", Some(&cookie)).await;
        assert_eq!(res.text(), format!("Visits: {}", day + 1));
        cookie = res.cookie_pair();
        let (data, signed_at) = decoded(&cookie);
        assert_eq!(signed_at, T0, "day {day}: the creation time, kept");
        assert_eq!(
            serde_json::Value::Object(data.to_map()),
            serde_json::json!({"visits": day + 1})
        );
    }
    f.clock.set(T0 + 7 * DAY);
    let res = f.send("GET", "/dashboard", Some(&cookie)).await;
    assert_eq!(res.text(), "Visits: 8", "exactly 7 days old is still valid");
    f.clock.set(T0 + 7 * DAY + 1);
    let res = f.send("GET", "/dashboard", Some(&res.cookie_pair())).await;
    assert_eq!(res.text(), "Visits: 1", "one second past the deadline");
}

/// Logout clears the client's cookie (the answer replaces it with a session without the user),
/// but a cookie store cannot revoke a copy kept from before: replayed, it still opens `/notes`
/// until the absolute deadline, and never after. Bumping the user's session version ("log out
/// everywhere") ends it at once.
#[tokio::test]
async fn a_cookie_kept_from_before_logout_dies_at_the_absolute_deadline() {
    let f = start().await;
    let kept = f.login(1).await;
    f.clock.advance(3600);
    let res = f.send("POST", "/logout", Some(&kept)).await;
    assert_eq!(res.status, 303);
    let after = res.cookie_pair();
    assert_ne!(after, kept, "logout replaces the client's cookie");
    let (data, _) = decoded(&after);
    assert!(!data.contains_key("user_id"), "{data:?}");
    let res = f.send("GET", "/notes", Some(&after)).await;
    assert_eq!(res.status, 302, "the logged-out browser is anonymous");

    // The copy kept from before the logout: a cookie store cannot revoke it before its
    // deadline (documented): replayed just inside `max_age` and renewed, it still works ...
    let mut replayed = kept.clone();
    for n in 1..=7 {
        f.clock.set(T0 + n * (DAY - 10));
        let res = f.send("GET", "/notes", Some(&replayed)).await;
        assert_eq!(res.status, 200, "day {n}");
        replayed = res.cookie_pair();
    }
    // ... but not past 7 days after the login, renewed or not.
    f.clock.set(T0 + 7 * DAY + 1);
    for cookie in [&kept, &replayed] {
        let res = f.send("GET", "/notes", Some(cookie)).await;
        assert_eq!(res.status, 302);
    }
}

/// "Log out everywhere" with a cookie store: bump the user's session version, and every cookie
/// signed with the old one is anonymous at once (checked on every request).
#[tokio::test]
async fn bumping_the_session_version_revokes_every_copy_at_once() {
    let f = start().await;
    let kept = f.login(1).await;
    assert_eq!(f.send("GET", "/notes", Some(&kept)).await.status, 200);
    f.versions.lock().unwrap()[1] += 1;
    assert_eq!(f.send("GET", "/notes", Some(&kept)).await.status, 302);
    let fresh = f.login(1).await;
    assert_eq!(f.send("GET", "/notes", Some(&fresh)).await.status, 200);
}

/// Cookie tossing with junk: a `chirp_session` that does not verify (a sibling subdomain's,
/// or one set with a narrower path, sent first) no longer shadows the real one, in either
/// order. Before: the first one won, and the user was logged out.
#[tokio::test]
async fn a_foreign_session_cookie_does_not_shadow_the_real_one() {
    let f = start().await;
    let real = f.login(1).await;
    for header in [
        format!("chirp_session=forged.AAAA.BBBB; {real}"),
        format!("{real}; chirp_session=forged.AAAA.BBBB"),
        format!("theme=dark; chirp_session=; {real}; lang=fr"),
    ] {
        let res = f.send("GET", "/whoami", Some(&header)).await;
        assert_eq!(res.text(), "alice", "{header}");
    }
    // A cookie signed with another secret is junk as well.
    let foreign = Signer::new(
        "another-apps-secret-0123456789abcdef",
        &[],
        Digest::Sha256,
        "itsdangerous",
    )
    .dumps(
        &serde_json::json!({"user_id": "2"})
            .as_object()
            .unwrap()
            .into(),
        T0,
    );
    let header = format!("chirp_session={foreign}; {real}");
    assert_eq!(
        f.send("GET", "/whoami", Some(&header)).await.text(),
        "alice"
    );
}

/// Cookie tossing with a valid session (the attacker's own login, tossed into the victim's
/// browser to log them in as the attacker): with two `chirp_session` cookies that both verify,
/// the middleware refuses to pick and starts an empty session, in either order. Before: the
/// first one won, and the victim, first in line, was the attacker.
#[tokio::test]
async fn two_valid_session_cookies_are_ambiguous_and_neither_is_used() {
    let f = start().await;
    let attackers = f.login(2).await;
    let victims = f.login(1).await;
    for header in [
        format!("{attackers}; {victims}"),
        format!("{victims}; {attackers}"),
    ] {
        let res = f.send("GET", "/whoami", Some(&header)).await;
        assert_eq!(res.text(), "anonymous", "{header}");
        let res = f.send("GET", "/notes", Some(&header)).await;
        assert_eq!(res.status, 302, "{header}");
    }
    // Alone, each is what it is.
    assert_eq!(
        f.send("GET", "/whoami", Some(&victims)).await.text(),
        "alice"
    );
    assert_eq!(
        f.send("GET", "/whoami", Some(&attackers)).await.text(),
        "mallory"
    );
    // An expired duplicate does not count: the valid one is used. (The attacker's session
    // was created 2 days before the victim's; 7 days and a second after it, it is past the
    // absolute deadline, the victim's is not.)
    let victims = {
        f.clock.advance(2 * DAY);
        f.login(1).await
    };
    f.clock.set(T0 + 7 * DAY + 1);
    for header in [
        format!("{attackers}; {victims}"),
        format!("{victims}; {attackers}"),
    ] {
        assert_eq!(
            f.send("GET", "/whoami", Some(&header)).await.text(),
            "alice",
            "{header}"
        );
    }
}

/// How the deadline is kept at no cost in cookie bytes: every cookie of a session is signed
/// with the session's creation time, read back from the itsdangerous timestamp of each
/// `Set-Cookie`; a login (a regenerated session) is signed with its own time. The JSON holds
/// the handler's data only, so a small session stays one SHA-256 block per HMAC.
#[tokio::test]
async fn a_re_signed_cookie_keeps_its_original_timestamp() {
    let f = start().await;
    let first = f.send("GET", "/dashboard", None).await.cookie_pair();
    assert_eq!(decoded(&first).1, T0);
    f.clock.advance(3 * DAY + 17);
    let res = f.send("GET", "/dashboard", Some(&first)).await;
    assert_eq!(res.text(), "Visits: 2");
    let again = res.cookie_pair();
    assert_ne!(again, first, "new data, new cookie");
    let (data, signed_at) = decoded(&again);
    assert_eq!(signed_at, T0, "re-signed with the original timestamp");
    assert_eq!(data.to_json(), r#"{"visits":2}"#);
    // itsdangerous' signed input, `payload.timestamp`, is 23 bytes: one SHA-256 block.
    let v = value(&again);
    assert_eq!(v[..v.rfind('.').unwrap()].len(), 23, "{v}");
    // A login regenerates: a new session, signed now; re-signed, it keeps that time.
    let login = f.send("POST", "/login/1", Some(&again)).await.cookie_pair();
    assert_eq!(decoded(&login).1, T0 + 3 * DAY + 17);
    f.clock.advance(DAY);
    let res = f.send("GET", "/notes", Some(&login)).await;
    assert_eq!(res.status, 200);
    assert_eq!(decoded(&res.cookie_pair()).1, T0 + 3 * DAY + 17);
}

/// `max_age` is the browser's limit (the cookie's `Max-Age`, renewed on every response): the
/// server no longer refuses a cookie by its signature's age, only past the absolute deadline.
/// A copy replayed without renewal therefore works until then, no longer.
#[tokio::test]
async fn an_unrenewed_copy_works_until_the_deadline_and_no_longer() {
    let f = start().await;
    let kept = f.login(1).await;
    let res = f.send("GET", "/notes", Some(&kept)).await;
    assert!(res.header("set-cookie").unwrap().contains("Max-Age=86400"));
    f.clock.set(T0 + 7 * DAY);
    assert_eq!(f.send("GET", "/notes", Some(&kept)).await.status, 200);
    f.clock.set(T0 + 7 * DAY + 1);
    assert_eq!(f.send("GET", "/notes", Some(&kept)).await.status, 302);
}

/// A cookie that carries an earlier creation stamp (`__created_at`: a Python app's, or one
/// chirp wrote before the creation time moved into the timestamp) counts from the earlier of
/// the two, keeps the stamp as it came, and is re-signed with that earlier time: signing it
/// afresh does not extend it.
#[tokio::test]
async fn an_older_creation_stamp_in_the_cookie_is_honoured() {
    let f = start().await;
    let signer = Signer::new(SECRET, &[], Digest::Sha256, "itsdangerous");
    let created = T0 - 6 * DAY;
    let old = signer.dumps(
        &serde_json::json!({"visits": 4, "__created_at": created, "__last_seen_at": T0 - 10})
            .as_object()
            .unwrap()
            .into(),
        T0 - 10,
    );
    let res = f
        .send("GET", "/dashboard", Some(&format!("chirp_session={old}")))
        .await;
    assert_eq!(res.text(), "Visits: 5");
    let (data, signed_at) = decoded(&res.cookie_pair());
    assert_eq!(signed_at, created, "re-signed with the earlier creation");
    assert_eq!(
        data.get_value("__created_at").unwrap(),
        serde_json::json!(created),
        "kept as it came"
    );
    assert_eq!(
        data.get_value("__last_seen_at").unwrap(),
        serde_json::json!(T0),
        "updated"
    );
    f.clock.set(created + 7 * DAY + 1);
    let res = f.send("GET", "/dashboard", Some(&res.cookie_pair())).await;
    assert_eq!(res.text(), "Visits: 1", "7 days after the stamp's time");
}

/// With `absolute_timeout: None`, the behaviour before finding 4: every cookie is signed afresh
/// and the server refuses one older than `max_age` (a sliding lifetime, without a bound).
#[tokio::test]
async fn without_an_absolute_timeout_the_cookie_slides_as_before() {
    let clock = ManualClock::new(T0);
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig {
            clock: Arc::new(clock.clone()),
            absolute_timeout: None,
            ..SessionConfig::new(SECRET)
        })
        .unwrap(),
    );
    app.route("/dashboard", |_req: Request| async {
        let session = get_session()?;
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        Ok::<_, Error>(format!("Visits: {visits}"))
    });
    let server = TestServer::start(app).await;
    let send = |cookie: Option<String>| {
        let server = &server;
        async move {
            let mut conn = server.connect().await;
            let cookie = cookie.map_or(String::new(), |c| format!("Cookie: {c}\r\n"));
            conn.send(format!(
                "GET /dashboard HTTP/1.1\r\nHost: t\r\n{cookie}\r\n"
            ))
            .await;
            conn.response().await
        }
    };
    let mut cookie = send(None).await.cookie_pair();
    for n in 1..=10 {
        clock.advance(DAY - 10);
        let res = send(Some(cookie.clone())).await;
        assert_eq!(res.text(), format!("Visits: {}", n + 1));
        cookie = res.cookie_pair();
        let (data, signed_at) = decoded(&cookie);
        assert_eq!(signed_at, clock.now(), "signed afresh");
        assert!(!data.contains_key("__created_at"), "{data:?}");
    }
    clock.advance(DAY + 1);
    assert_eq!(send(Some(cookie)).await.text(), "Visits: 1", "past max_age");
}

/// The duplicates may also come in two `Cookie` header lines (as a proxy may join HTTP/2's).
#[tokio::test]
async fn duplicates_across_cookie_header_lines_follow_the_same_rule() {
    let f = start().await;
    let real = f.login(1).await;
    let mut conn = f.server.connect().await;
    conn.send(format!(
        "GET /whoami HTTP/1.1\r\nHost: t\r\nCookie: chirp_session=junk\r\nCookie: {real}\r\n\r\n"
    ))
    .await;
    assert_eq!(conn.response().await.text(), "alice");
    let attackers = f.login(2).await;
    conn.send(format!(
        "GET /whoami HTTP/1.1\r\nHost: t\r\nCookie: {attackers}\r\nCookie: {real}\r\n\r\n"
    ))
    .await;
    assert_eq!(conn.response().await.text(), "anonymous");
}

/// The `__Host-` prefix prevents cookie tossing altogether (a sibling subdomain cannot set such
/// a cookie); browsers drop one set without `Secure`, with a `Domain` or another `Path`, so
/// that is a configuration error rather than sessions silently lost.
#[test]
fn prefixed_cookie_names_demand_their_attributes() {
    let host = |f: fn(&mut SessionConfig)| {
        let mut config = SessionConfig {
            cookie_name: "__Host-chirp_session".into(),
            secure: true,
            ..SessionConfig::new(SECRET)
        };
        f(&mut config);
        SessionMiddleware::new(config).map(|_| ())
    };
    assert!(host(|_| {}).is_ok());
    assert!(host(|c| c.secure = false).is_err());
    assert!(host(|c| c.path = "/app".into()).is_err());
    assert!(host(|c| c.domain = Some("example.com".into())).is_err());
    let secure = SessionConfig {
        cookie_name: "__Secure-chirp_session".into(),
        ..SessionConfig::new(SECRET)
    };
    assert!(SessionMiddleware::new(secure.clone()).is_err());
    assert!(SessionMiddleware::new(SessionConfig {
        secure: true,
        path: "/app".into(),
        ..secure
    })
    .is_ok());
}
