//! Defaults a careful user expects (issue 20, item 7): cookies set with the Python framework's
//! safe attributes, the login rate limit on every password form with sliding windows, and the
//! session cookie refreshed before its idle timeout rather than on every response.

use std::sync::Arc;
use std::time::Duration;

use chirp::middleware::auth_rate_limit::{AuthRateLimitMiddleware, DEFAULT_PATHS};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{get_session, ManualClock, SaveMode, SessionConfig};
use chirp::testing::TestClient;
use chirp::{App, Cookie, Method, Request, Response, StatusCode};

#[tokio::test]
async fn a_new_cookie_is_path_root_http_only_and_same_site_lax() {
    let mut app = App::new();
    app.route("/set", |_req: Request| async {
        Response::text("").with_cookie(Cookie::new("theme", "dark"))
    });
    app.route("/script-readable", |_req: Request| async {
        Response::text("").with_cookie(
            Cookie::new("theme", "dark")
                .http_only(false)
                .without_same_site()
                .without_path(),
        )
    });
    let client = TestClient::new(app);
    assert_eq!(
        client.get("/set").await.set_cookies(),
        ["theme=dark; Path=/; HttpOnly; SameSite=lax"]
    );
    assert_eq!(
        client.get("/script-readable").await.set_cookies(),
        ["theme=dark"]
    );
}

fn limited_app(clock: ManualClock) -> App {
    let mut app = App::new();
    app.add_middleware(
        AuthRateLimitMiddleware::new()
            .limit(2, Duration::from_secs(60))
            .clock(clock),
    );
    for path in DEFAULT_PATHS.iter().copied().chain(["/other"]) {
        app.route_with(path, &[Method::Get, Method::Post], |_req: Request| async {
            "ok"
        });
    }
    app
}

#[tokio::test]
async fn every_password_form_is_limited_by_default() {
    assert_eq!(
        DEFAULT_PATHS,
        ["/login", "/signup", "/register", "/password-reset"]
    );
    let client = TestClient::new(limited_app(ManualClock::new(1_000_020)));
    for path in DEFAULT_PATHS {
        for _ in 0..2 {
            assert_eq!(
                client.post(path, "").await.status(),
                StatusCode::OK,
                "{path}"
            );
        }
        assert_eq!(
            client.post(path, "").await.status(),
            StatusCode::TOO_MANY_REQUESTS,
            "{path}"
        );
        // Reading the form is not an attempt.
        assert_eq!(client.get(path).await.status(), StatusCode::OK, "{path}");
    }
    for _ in 0..5 {
        assert_eq!(client.post("/other", "").await.status(), StatusCode::OK);
    }
}

/// The burst that made a fixed window flaky: attempts just before a minute's edge and just
/// after it. A sliding window still counts the first ones after the edge.
#[tokio::test]
async fn the_default_window_slides_across_the_minutes_edge() {
    let clock = ManualClock::new(1_000_019); // 59 s into a 60 s window (1_000_020 is an edge)
    let client = TestClient::new(limited_app(clock.clone()));
    for _ in 0..2 {
        assert_eq!(client.post("/login", "").await.status(), StatusCode::OK);
    }
    clock.advance(1); // a new fixed window would forget both
    let res = client.post("/login", "").await;
    assert_eq!(res.status(), StatusCode::TOO_MANY_REQUESTS);
    assert!(res.header("retry-after").is_some());
}

fn session_app(config: SessionConfig) -> App {
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::new(config).unwrap());
    app.route("/write", |_req: Request| async {
        get_session()?.insert("user", "ann");
        Ok::<_, chirp::Error>("written")
    });
    app.route("/read", |_req: Request| async {
        let user = get_session()?.get::<String>("user");
        Ok::<_, chirp::Error>(user.unwrap_or_else(|| "nobody".to_owned()))
    });
    app
}

/// The default save mode sends the cookie when it changed, and otherwise a quarter of the idle
/// timeout after it was last sent: an active user never lapses, most reads carry no cookie.
#[tokio::test]
async fn the_session_cookie_is_refreshed_before_the_idle_timeout_not_on_every_response() {
    assert_eq!(SessionConfig::default().save_mode, SaveMode::Refresh);
    let clock = ManualClock::new(1_700_000_000);
    let config = SessionConfig {
        idle_timeout: Some(Duration::from_secs(30 * 60)),
        clock: Arc::new(clock.clone()),
        ..SessionConfig::new("defaults-test-secret-0123456789abcdef")
    };
    let client = TestClient::new(session_app(config));
    assert_eq!(client.get("/write").await.set_cookies().len(), 1);
    // Read-only requests within a quarter of the idle timeout (7.5 min): no cookie.
    clock.advance(60);
    let res = client.get("/read").await;
    assert_eq!((res.text(), res.set_cookies().len()), ("ann".to_owned(), 0));
    clock.advance(6 * 60);
    assert_eq!(client.get("/read").await.set_cookies().len(), 0);
    // Past it: refreshed.
    clock.advance(60);
    assert_eq!(client.get("/read").await.set_cookies().len(), 1);
    assert_eq!(client.get("/read").await.set_cookies().len(), 0);
    // A user active every 20 minutes for hours (never idle for 30) stays signed in, though
    // most of those responses sent no cookie.
    let mut sent = 0;
    for _ in 0..12 {
        clock.advance(20 * 60);
        let res = client.get("/read").await;
        assert_eq!(res.text(), "ann");
        sent += res.set_cookies().len();
        for _ in 0..3 {
            clock.advance(60);
            let res = client.get("/read").await;
            assert_eq!(res.text(), "ann");
            sent += res.set_cookies().len();
        }
    }
    assert_eq!(
        sent, 12,
        "one refresh per 20-minute gap, none for the reads between"
    );
    // Idle for the whole timeout: the session ends.
    clock.advance(31 * 60);
    assert_eq!(client.get("/read").await.text(), "nobody");
}

/// Where the cookie does not tell when it was last sent (the cookie store's defaults: an
/// absolute timeout, no idle timeout), it is sent on every response, so `Max-Age` slides.
#[tokio::test]
async fn without_an_idle_timeout_the_default_cookie_is_sent_on_every_response() {
    let client = TestClient::new(session_app(SessionConfig::new(
        "defaults-test-secret-0123456789abcdef",
    )));
    assert_eq!(client.get("/write").await.set_cookies().len(), 1);
    for _ in 0..3 {
        let res = client.get("/read").await;
        assert_eq!(res.text(), "ann");
        assert_eq!(res.set_cookies().len(), 1);
    }
    // A visitor with nothing in the session still gets no cookie.
    let fresh = TestClient::new(session_app(SessionConfig::new(
        "defaults-test-secret-0123456789abcdef",
    )));
    assert!(fresh.get("/read").await.set_cookies().is_empty());
}
