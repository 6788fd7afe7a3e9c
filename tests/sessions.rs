//! Session middleware: behaviour through TestClient, and over real sockets where it matters.

mod common;

use std::sync::Arc;
use std::time::Duration;

use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{
    get_session, regenerate_session, Digest, ManualClock, SaveMode, SessionConfig, Signer,
};
use chirp::testing::TestClient;
use chirp::{App, Error, HttpError, Method, Request, Response, SameSite, StatusCode};
use common::TestServer;

const SECRET: &str = "a-test-secret-that-is-long-enough-0123456789";
const T0: u64 = 1_764_000_000;

fn config(clock: &ManualClock) -> SessionConfig {
    SessionConfig {
        clock: Arc::new(clock.clone()),
        ..SessionConfig::new(SECRET)
    }
}

fn app_with(config: SessionConfig) -> App {
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::new(config).unwrap());
    app.route("/dashboard", |_req: Request| async {
        let session = get_session()?;
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        Ok::<_, Error>(format!("Visits: {visits}"))
    });
    app.route("/set/{key}/{value}", |req: Request| async move {
        let session = get_session()?;
        session.insert(req.param("key").unwrap(), req.param("value").unwrap());
        Ok::<_, Error>("set")
    });
    app.route("/get/{key}", |req: Request| async move {
        let session = get_session()?;
        Ok::<_, Error>(
            session
                .get::<String>(req.param("key").unwrap())
                .unwrap_or_else(|| "<none>".into()),
        )
    });
    app.route("/remove/{key}", |req: Request| async move {
        get_session()?.remove(req.param("key").unwrap());
        Ok::<_, Error>("removed")
    });
    app.route("/dump", |_req: Request| async {
        Ok::<_, Error>(Response::json(&get_session()?.keys()))
    });
    app.route("/nested", |_req: Request| async {
        let s = get_session()?;
        s.insert(
            "profile",
            serde_json::json!({"name": "alice", "roles": ["admin", {"scope": [1, 2]}]}),
        );
        Ok::<_, Error>("ok")
    });
    app.route("/profile", |_req: Request| async {
        Ok::<_, Error>(Response::json(&get_session()?.get_value("profile")))
    });
    app.route("/noop", |_req: Request| async { "untouched" });
    app.route("/regenerate", |_req: Request| async {
        let s = regenerate_session()?;
        s.insert("fresh", true);
        Ok::<_, Error>("regenerated")
    });
    app.route("/fail", |_req: Request| async {
        get_session()?.insert("half", "made");
        Err::<&str, Error>(HttpError::internal("storage down").into())
    });
    app.route("/panic", |_req: Request| async {
        get_session().unwrap().insert("half", "made");
        if true {
            panic!("bug");
        }
        "never"
    });
    app.route("/redirect", |_req: Request| async {
        get_session()?.insert("user", "bob");
        Ok::<_, Error>(Response::redirect("/home"))
    });
    app.route("/missing", |_req: Request| async {
        get_session()?.insert("seen_404", true);
        Ok::<_, Error>(HttpError::not_found("nothing here"))
    });
    app.route("/big/{n:int}", |req: Request| async move {
        let n: usize = req.param_as("n")?;
        // Random-looking data does not compress, so the cookie grows with n.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let noise: String = (0..n)
            .map(|_| {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                char::from(b'a' + (x % 26) as u8)
            })
            .collect();
        get_session()?.insert("blob", noise);
        Ok::<_, Error>("stored")
    });
    app.route("/vary", |_req: Request| async {
        get_session()?;
        Ok::<_, Error>(Response::text("v").with_header("vary", "Accept-Encoding"))
    });
    app
}

fn client(clock: &ManualClock) -> TestClient {
    TestClient::new(app_with(config(clock)))
}

fn session_cookie(res: &chirp::testing::TestResponse) -> Option<String> {
    res.set_cookies()
        .into_iter()
        .find(|c| c.starts_with("chirp_session="))
        .map(str::to_owned)
}

#[tokio::test]
async fn visits_count_up_and_values_round_trip() {
    let clock = ManualClock::new(T0);
    let c = client(&clock);
    for n in 1..=3 {
        assert_eq!(c.get("/dashboard").await.text(), format!("Visits: {n}"));
    }
    assert_eq!(c.get("/get/name").await.text(), "<none>");
    c.get("/set/name/alice").await;
    assert_eq!(c.get("/get/name").await.text(), "alice");
    c.get("/remove/name").await;
    assert_eq!(c.get("/get/name").await.text(), "<none>");
    c.get("/nested").await;
    let profile: serde_json::Value = c.get("/profile").await.json();
    assert_eq!(profile["roles"][1]["scope"][1], 2);
}

#[tokio::test]
async fn a_fresh_client_starts_empty() {
    let clock = ManualClock::new(T0);
    let c = client(&clock);
    let keys: Vec<String> = c.get("/dump").await.json();
    assert!(keys.is_empty());
}

#[tokio::test]
async fn bad_cookies_load_as_an_empty_session_and_the_request_succeeds() {
    let clock = ManualClock::new(T0);
    let c = client(&clock);
    c.get("/dashboard").await;
    let good = c.cookie("chirp_session").unwrap();
    let other_secret = Signer::new("another-secret", &[], Digest::Sha256, "itsdangerous");
    let mut data = chirp::sessions::SessionData::new();
    data.insert("visits", 41).unwrap();
    let mut tampered = good.clone().into_bytes();
    tampered[2] ^= 1; // flips a bit in the payload
    let cases = [
        String::from_utf8(tampered).unwrap(),
        good[..good.len() - 5].to_owned(),
        "garbage".to_owned(),
        "a.b.c".to_owned(),
        "..".to_owned(),
        "%%%.$$$.###".to_owned(),
        other_secret.dumps(&data, T0),
        "x".repeat(3000),
    ];
    for bad in cases {
        c.set_cookie("chirp_session", &bad);
        let res = c.get("/dashboard").await;
        assert_eq!(res.status(), StatusCode::OK, "{bad}");
        assert_eq!(res.text(), "Visits: 1", "{bad}");
    }
}

#[tokio::test]
async fn the_cookie_carries_every_documented_attribute() {
    let clock = ManualClock::new(T0);
    let res = client(&clock).get("/dashboard").await;
    let cookie = session_cookie(&res).unwrap();
    assert!(
        cookie.ends_with("; Max-Age=86400; Path=/; HttpOnly; SameSite=lax"),
        "{cookie}"
    );
    assert_eq!(res.header("vary"), Some("Cookie"));

    let custom = SessionConfig {
        cookie_name: "sid".into(),
        max_age: Duration::from_secs(600),
        path: "/app".into(),
        domain: Some("example.com".into()),
        secure: true,
        httponly: false,
        samesite: SameSite::None,
        ..config(&clock)
    };
    let res = TestClient::new(app_with(custom)).get("/dashboard").await;
    let cookie = res.set_cookies()[0].to_owned();
    assert!(cookie.starts_with("sid="));
    assert!(
        cookie.ends_with("; Max-Age=600; Path=/app; Domain=example.com; Secure; SameSite=none"),
        "{cookie}"
    );

    let strict = SessionConfig {
        samesite: SameSite::Strict,
        ..config(&clock)
    };
    let res = TestClient::new(app_with(strict)).get("/dashboard").await;
    assert!(res.set_cookies()[0].ends_with("; HttpOnly; SameSite=strict"));
}

#[tokio::test]
async fn vary_is_merged_not_replaced() {
    let clock = ManualClock::new(T0);
    let c = client(&clock);
    c.get("/dashboard").await;
    let res = c.get("/vary").await;
    assert_eq!(res.header("vary"), Some("Accept-Encoding, Cookie"));
}

#[tokio::test]
async fn save_modes() {
    let clock = ManualClock::new(T0);
    let always = client(&clock);
    let res = always.get("/noop").await;
    assert!(
        res.set_cookies().is_empty() && res.header("vary").is_none(),
        "a new visitor's empty, untouched session sends no cookie"
    );
    always.get("/dashboard").await;
    let res = always.get("/noop").await;
    assert!(
        session_cookie(&res).is_some(),
        "default policy re-issues an existing session even when untouched"
    );

    let on_change = TestClient::new(app_with(SessionConfig {
        save_mode: SaveMode::OnChange,
        ..config(&clock)
    }));
    let res = on_change.get("/noop").await;
    assert!(res.set_cookies().is_empty());
    assert!(res.header("vary").is_none());
    let res = on_change.get("/dashboard").await;
    assert!(session_cookie(&res).is_some());
    let res = on_change.get("/get/x").await;
    assert!(res.set_cookies().is_empty(), "reading is not a change");
}

#[tokio::test]
async fn regenerate_clears_and_issues_a_different_cookie() {
    let clock = ManualClock::new(T0);
    let c = client(&clock);
    c.get("/set/user/alice").await;
    let before = c.cookie("chirp_session").unwrap();
    c.get("/regenerate").await;
    let after = c.cookie("chirp_session").unwrap();
    assert_ne!(before, after);
    assert_eq!(c.get("/get/user").await.text(), "<none>");
    let keys: Vec<String> = c.get("/dump").await.json();
    assert_eq!(keys, ["fresh"]);
}

#[tokio::test]
async fn regenerating_an_identical_session_in_the_same_second_still_changes_the_cookie() {
    let clock = ManualClock::new(T0);
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::new(config(&clock)).unwrap());
    app.route("/empty-regen", |_r: Request| async {
        regenerate_session().map(|_| "ok").map_err(Error::from)
    });
    let c = TestClient::new(app);
    c.get("/empty-regen").await;
    let first = c.cookie("chirp_session").unwrap();
    c.get("/empty-regen").await;
    assert_ne!(c.cookie("chirp_session").unwrap(), first);
}

#[tokio::test]
async fn failed_handlers_persist_nothing() {
    let clock = ManualClock::new(T0);
    let c = client(&clock);
    c.get("/dashboard").await;
    for path in ["/fail", "/panic"] {
        let res = c.get(path).await;
        assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
        assert!(res.set_cookies().is_empty(), "{path} sent a cookie");
    }
    assert_eq!(c.get("/get/half").await.text(), "<none>");
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 2");
}

#[tokio::test]
async fn redirects_and_client_errors_save_the_session() {
    let clock = ManualClock::new(T0);
    let c = client(&clock);
    let res = c.get("/redirect").await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(session_cookie(&res).is_some());
    assert_eq!(c.get("/get/user").await.text(), "bob");
    let res = c.get("/missing").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert!(session_cookie(&res).is_some());
}

/// Without an absolute timeout, the server refuses a cookie signed more than `max_age` ago
/// (every response re-signs it now: a sliding lifetime). (With one, the default, the cookie
/// keeps its creation time and `max_age` is the browser's: the next test.)
#[tokio::test]
async fn max_age_is_enforced_from_the_signed_timestamp() {
    let clock = ManualClock::new(T0);
    let c = TestClient::new(app_with(SessionConfig {
        max_age: Duration::from_secs(100),
        absolute_timeout: None,
        ..config(&clock)
    }));
    c.get("/dashboard").await;
    clock.advance(100);
    assert_eq!(
        c.get("/dashboard").await.text(),
        "Visits: 2",
        "exactly max_age old is still valid"
    );
    clock.advance(101);
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 1", "expired");
}

/// With the absolute timeout (the default), the cookie's timestamp is the session's creation
/// and the server checks the absolute timeout against it, not `max_age`, which only sets the
/// cookie's `Max-Age` (the browser forgets it after `max_age` without a visit).
#[tokio::test]
async fn with_an_absolute_timeout_max_age_is_the_cookies_max_age_only() {
    let clock = ManualClock::new(T0);
    let c = TestClient::new(app_with(SessionConfig {
        max_age: Duration::from_secs(100),
        absolute_timeout: Some(Duration::from_secs(1000)),
        ..config(&clock)
    }));
    let res = c.get("/dashboard").await;
    assert!(session_cookie(&res).unwrap().contains("Max-Age=100"));
    clock.advance(500);
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 2");
    clock.advance(500);
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 3", "1000 s old");
    clock.advance(1);
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 1", "1001 s old");
}

#[tokio::test]
async fn cookies_from_the_future_are_refused() {
    let clock = ManualClock::new(T0);
    let c = client(&clock);
    c.get("/dashboard").await;
    clock.set(T0 - 10);
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 1");
}

#[tokio::test]
async fn idle_timeout() {
    let clock = ManualClock::new(T0);
    let c = TestClient::new(app_with(SessionConfig {
        idle_timeout: Some(Duration::from_secs(60)),
        ..config(&clock)
    }));
    c.get("/dashboard").await;
    for n in 2..=5 {
        clock.advance(50); // active every 50 s: never idle for 60
        assert_eq!(c.get("/dashboard").await.text(), format!("Visits: {n}"));
    }
    clock.advance(61);
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 1");
}

#[tokio::test]
async fn absolute_timeout() {
    let clock = ManualClock::new(T0);
    let cfg = SessionConfig {
        absolute_timeout: Some(Duration::from_secs(120)),
        ..config(&clock)
    };
    let c = TestClient::new(app_with(cfg));
    c.get("/dashboard").await;
    clock.advance(60);
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 2");
    let keys: Vec<String> = c.get("/dump").await.json();
    assert_eq!(keys, ["visits"], "the reserved creation key is not visible");
    clock.advance(61); // 121 s after creation, though active a minute ago
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 1");
}

#[tokio::test]
async fn key_rotation_accepts_old_cookies_and_resigns_them() {
    let clock = ManualClock::new(T0);
    let old = TestClient::new(app_with(SessionConfig {
        secret_key: "old-secret-old-secret-old-secret!".into(),
        ..config(&clock)
    }));
    old.get("/dashboard").await;
    let old_cookie = old.cookie("chirp_session").unwrap();

    let rotated = SessionConfig {
        secret_key: "new-secret-new-secret-new-secret!".into(),
        fallback_secret_keys: vec!["old-secret-old-secret-old-secret!".into()],
        ..config(&clock)
    };
    let c = TestClient::new(app_with(rotated));
    c.set_cookie("chirp_session", &old_cookie);
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 2");
    let new_cookie = c.cookie("chirp_session").unwrap();
    let new_only = Signer::new(
        "new-secret-new-secret-new-secret!",
        &[],
        Digest::Sha256,
        "itsdangerous",
    );
    assert_eq!(
        new_only.loads(&new_cookie).unwrap().0.get::<u64>("visits"),
        Some(2)
    );
}

#[tokio::test]
async fn python_made_cookies_are_read() {
    // From tests/vectors/itsdangerous.json: {"visits": 1} signed by Python at 1764000000.
    let clock = ManualClock::new(1_764_000_000 + 5);
    let c = TestClient::new(app_with(SessionConfig {
        clock: Arc::new(clock.clone()),
        ..SessionConfig::new("my-secret-key")
    }));
    c.set_cookie(
        "chirp_session",
        "eyJ2aXNpdHMiOjF9.aSSBAA.fpjhVsd7jfz22gZDECldJRfN_1HGA9trV7yldcnWo1c",
    );
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 2");

    let sha1 = SessionConfig {
        digest: Digest::Sha1,
        clock: Arc::new(clock.clone()),
        ..SessionConfig::new("my-secret-key")
    };
    let c = TestClient::new(app_with(sha1));
    c.set_cookie(
        "chirp_session",
        "eyJ2aXNpdHMiOjF9.aSSBAA.2DLOowUYw-4utfgedfXAFhaKm_U",
    );
    let vectors: serde_json::Value =
        serde_json::from_str(include_str!("vectors/itsdangerous.json")).unwrap();
    let sha1_cookie = vectors["cases"]
        .as_array()
        .unwrap()
        .iter()
        .find(|v| {
            v["digest"] == "sha1"
                && v["secret_key"] == "my-secret-key"
                && v["payload"]["visits"] == 1
        })
        .unwrap()["cookie"]
        .as_str()
        .unwrap()
        .to_owned();
    c.set_cookie("chirp_session", &sha1_cookie);
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 2");
}

#[tokio::test]
async fn oversized_sessions_are_a_500_and_the_old_cookie_stays_valid() {
    let clock = ManualClock::new(T0);
    let c = client(&clock);
    c.get("/big/100").await;
    let before = c.cookie("chirp_session").unwrap();
    let res = c.get("/big/5000").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(res.set_cookies().is_empty());
    assert!(res.text().contains("4096-byte limit"), "{}", res.text());
    assert_eq!(c.cookie("chirp_session").unwrap(), before);
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 1");
    assert_eq!(c.get("/get/blob").await.text().len(), 100);
}

#[tokio::test]
async fn configuration_errors() {
    let err = |cfg: SessionConfig| {
        SessionMiddleware::new(cfg)
            .err()
            .expect("should be refused")
            .to_string()
    };
    assert!(err(SessionConfig::default()).contains("secret_key must not be empty"));
    assert!(err(SessionConfig {
        samesite: SameSite::None,
        ..SessionConfig::new(SECRET)
    })
    .contains("secure"));
    assert!(err(SessionConfig {
        cookie_name: "bad name".into(),
        ..SessionConfig::new(SECRET)
    })
    .contains("bad name"));
    assert!(err(SessionConfig {
        path: "/;evil".into(),
        ..SessionConfig::new(SECRET)
    })
    .contains("path"));
    assert!(
        SessionMiddleware::new(SessionConfig::new("short")).is_ok(),
        "short secrets only warn"
    );
}

#[tokio::test]
async fn get_session_outside_a_request_is_a_lookup_error() {
    let err = get_session().unwrap_err();
    // The Python framework's message, then the other cause: a spawned task.
    assert!(
        err.message().starts_with(
            "No active session. Ensure SessionMiddleware is added to the app before accessing the session."
        ),
        "{}",
        err.message()
    );
    assert!(err.message().contains("tokio::spawn"), "{}", err.message());
    // ...and in a handler without the middleware, `?` turns it into a 500.
    let mut app = App::new();
    app.route("/", |_r: Request| async {
        get_session().map(|_| "ok").map_err(Error::from)
    });
    assert_eq!(
        TestClient::new(app).get("/").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn downstream_middleware_sees_the_session_and_spawned_tasks_do_not() {
    let clock = ManualClock::new(T0);
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::new(config(&clock)).unwrap());
    app.add_middleware(chirp::middleware::from_fn(|req, next| async move {
        get_session().unwrap().insert("via", "middleware");
        next.run(req).await
    }));
    app.route_with("/", &[Method::Get], |_r: Request| async {
        let inside = get_session().unwrap().get::<String>("via").unwrap();
        let spawned = tokio::spawn(async { get_session().is_err() })
            .await
            .unwrap();
        format!("{inside} {spawned}")
    });
    assert_eq!(
        TestClient::new(app).get("/").await.text(),
        "middleware true"
    );
}

/// A finished request's session is emptied and reused by the next request on the same thread
/// (these tests run on one thread): nothing of it may reach that next request, neither data,
/// nor flags, nor the creation time.
#[tokio::test]
async fn a_reused_session_starts_the_next_request_empty() {
    let clock = ManualClock::new(T0);
    let cfg = SessionConfig {
        save_mode: SaveMode::OnChange,
        absolute_timeout: Some(Duration::from_secs(120)),
        ..config(&clock)
    };
    let service = app_with(cfg).build().unwrap();
    let alice = TestClient::from_service(service.clone());
    alice.get("/set/user/alice").await;
    alice.get("/regenerate").await;
    for _ in 0..3 {
        let stranger = TestClient::from_service(service.clone());
        let keys: Vec<String> = stranger.get("/dump").await.json();
        assert!(keys.is_empty(), "{keys:?}");
        let res = stranger.get("/noop").await;
        assert!(
            res.set_cookies().is_empty(),
            "not modified, not regenerated"
        );
        assert_eq!(stranger.get("/get/user").await.text(), "<none>");
    }
    // Alice's session is still hers, created at T0: over the absolute timeout at T0 + 121,
    // even though strangers' sessions were made (and reused) in between.
    assert_eq!(alice.get("/get/user").await.text(), "<none>", "regenerated");
    alice.get("/set/user/alice2").await;
    clock.advance(60);
    let stranger = TestClient::from_service(service.clone());
    stranger.get("/set/user/bob").await;
    clock.advance(61);
    assert_eq!(alice.get("/get/user").await.text(), "<none>", "expired");
    assert_eq!(stranger.get("/get/user").await.text(), "bob", "61 s old");
}

/// A handle that outlives its request (moved into a spawned task) keeps its data: that
/// session is not reused, and the next request gets a session of its own.
#[tokio::test]
async fn a_session_handle_kept_after_the_request_is_not_reused() {
    let clock = ManualClock::new(T0);
    let kept = Arc::new(std::sync::Mutex::new(None));
    let mut app = app_with(config(&clock));
    let slot = kept.clone();
    app.route("/keep", move |_r: Request| {
        let slot = slot.clone();
        async move {
            let session = get_session()?;
            session.insert("mine", "yes");
            *slot.lock().unwrap() = Some(session);
            Ok::<_, Error>("kept")
        }
    });
    let service = app.build().unwrap();
    TestClient::from_service(service.clone()).get("/keep").await;
    let session = kept.lock().unwrap().take().unwrap();
    let other = TestClient::from_service(service.clone());
    other.get("/set/user/bob").await;
    assert_eq!(session.get::<String>("mine").as_deref(), Some("yes"));
    assert_eq!(session.get::<String>("user"), None);
    let keys: Vec<String> = TestClient::from_service(service).get("/dump").await.json();
    assert!(keys.is_empty(), "{keys:?}");
}

#[tokio::test]
async fn concurrent_requests_over_sockets_see_only_their_own_session() {
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::new(SessionConfig::new(SECRET)).unwrap());
    app.route("/whoami/{id}", |req: Request| async move {
        let session = get_session()?;
        let id = req.param("id").unwrap().to_owned();
        let previous = session.get::<String>("id");
        session.insert("id", &id);
        tokio::task::yield_now().await; // interleave with the other requests
        tokio::time::sleep(Duration::from_millis(5)).await;
        let still = session.get::<String>("id").unwrap();
        Ok::<_, Error>(format!("{} {}", previous.unwrap_or_default(), still))
    });
    let server = TestServer::start(app).await;
    let mut tasks = Vec::new();
    for i in 0..200 {
        let addr = server.addr;
        tasks.push(tokio::spawn(async move {
            let mut conn = common::RawConn::connect(addr).await;
            conn.send(format!("GET /whoami/u{i} HTTP/1.1\r\nHost: t\r\n\r\n"))
                .await;
            let first = conn.response().await;
            assert_eq!(first.text(), format!(" u{i}"));
            let cookie = first.cookie_pair();
            conn.send(format!(
                "GET /whoami/u{i} HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n"
            ))
            .await;
            assert_eq!(conn.response().await.text(), format!("u{i} u{i}"));
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[tokio::test]
async fn the_dashboard_over_a_real_socket() {
    let server = TestServer::start(app_with(SessionConfig::new(SECRET))).await;
    let mut conn = server.connect().await;
    conn.send("GET /dashboard HTTP/1.1\r\nHost: t\r\n\r\n")
        .await;
    let res = conn.response().await;
    assert_eq!(res.text(), "Visits: 1");
    assert_eq!(res.header("vary"), Some("Cookie"));
    let cookie = res.cookie_pair();
    conn.send(format!(
        "GET /dashboard HTTP/1.1\r\nHost: t\r\nCookie: other=1; {cookie}\r\n\r\n"
    ))
    .await;
    assert_eq!(conn.response().await.text(), "Visits: 2");
}

/// A cookie signed with the test secret, as a Python app (or anyone holding the key) makes it.
fn minted(data: serde_json::Value, issued_at: u64) -> String {
    let signer = Signer::new(SECRET, &[], Digest::Sha256, "itsdangerous");
    signer.dumps(&data.as_object().unwrap().into(), issued_at)
}

fn decoded(cookie: &str) -> serde_json::Map<String, serde_json::Value> {
    let signer = Signer::new(SECRET, &[], Digest::Sha256, "itsdangerous");
    signer.loads(cookie).unwrap().0.to_map()
}

/// Hardening 10: a timeout of zero expires at once (it lasted to the end of the second).
#[tokio::test]
async fn a_zero_timeout_expires_at_once() {
    for zero in [
        SessionConfig {
            idle_timeout: Some(Duration::ZERO),
            ..SessionConfig::new(SECRET)
        },
        SessionConfig {
            absolute_timeout: Some(Duration::ZERO),
            ..SessionConfig::new(SECRET)
        },
    ] {
        let clock = ManualClock::new(T0);
        let c = TestClient::new(app_with(SessionConfig {
            clock: Arc::new(clock.clone()),
            ..zero
        }));
        assert_eq!(c.get("/dashboard").await.text(), "Visits: 1");
        // Same second, same cookie: already expired.
        assert_eq!(c.get("/dashboard").await.text(), "Visits: 1");
    }
}

/// Hardening 10: the timeouts read the Python framework's `__created_at` / `__last_seen_at`
/// keys (fractional seconds) and compare as it does (`now - ts > timeout` is expired); the
/// handler never sees them, and the saved cookie carries them for the Python app.
#[tokio::test]
async fn timeouts_use_the_python_keys_and_comparison() {
    let clock = ManualClock::new(T0);
    let c = TestClient::new(app_with(SessionConfig {
        idle_timeout: Some(Duration::from_secs(60)),
        absolute_timeout: Some(Duration::from_secs(3600)),
        ..config(&clock)
    }));
    let python = |last_seen: f64, created: f64| {
        minted(
            serde_json::json!({"visits": 7, "__created_at": created, "__last_seen_at": last_seen}),
            T0 - 5,
        )
    };
    c.set_cookie(
        "chirp_session",
        &python(T0 as f64 - 59.5, T0 as f64 - 100.25),
    );
    let res = c.get("/dashboard").await;
    assert_eq!(res.text(), "Visits: 8", "59.5 s idle of 60 is fresh");
    let saved = decoded(&c.cookie("chirp_session").unwrap());
    assert_eq!(saved["__created_at"], serde_json::json!(T0 as f64 - 100.25));
    assert_eq!(saved["__last_seen_at"], serde_json::json!(T0));
    let keys: Vec<String> = c.get("/dump").await.json();
    assert_eq!(
        keys,
        ["visits"],
        "reserved keys stay out of the handler's way"
    );

    c.set_cookie(
        "chirp_session",
        &python(T0 as f64 - 60.5, T0 as f64 - 100.0),
    );
    assert_eq!(c.get("/dashboard").await.text(), "Visits: 1", "60.5 s idle");
    c.set_cookie("chirp_session", &python(T0 as f64, T0 as f64 - 3600.5));
    assert_eq!(
        c.get("/dashboard").await.text(),
        "Visits: 1",
        "over the absolute"
    );
}

/// Hardening 12: a new visitor whose session stays empty and untouched gets no cookie and no
/// `Vary: Cookie` (static files and 404s stay cacheable); an invalid cookie is still replaced.
#[tokio::test]
async fn no_cookie_for_an_empty_untouched_new_session() {
    let clock = ManualClock::new(T0);
    let mut app = app_with(config(&clock));
    app.route("/static/app.css", |_req: Request| async { "body{}" });
    let server = TestServer::start(app).await;
    let mut conn = server.connect().await;
    for target in ["/static/app.css", "/nowhere", "/get/x"] {
        conn.send(common::get(target)).await;
        let res = conn.response().await;
        assert!(res.header("set-cookie").is_none(), "{target}");
        assert!(res.header("vary").is_none(), "{target}");
    }
    conn.send("GET /get/x HTTP/1.1\r\nHost: t\r\nCookie: chirp_session=forged\r\n\r\n")
        .await;
    let res = conn.response().await;
    assert!(
        res.header("set-cookie").is_some(),
        "a bad cookie is replaced"
    );
}
