//! Defaults a careful user expects (issue 20, item 7): cookies set with the Python framework's
//! safe attributes, the login rate limit on every password form with sliding windows.

use std::time::Duration;

use chirp::middleware::auth_rate_limit::{AuthRateLimitMiddleware, DEFAULT_PATHS};
use chirp::sessions::ManualClock;
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
