//! A panic that reaches the request guard is a 500 for that request, logged once per place in
//! the code with a short message, not once (with a backtrace) per request.

mod common;

use chirp::testing::TestClient;
use chirp::{App, Request, StatusCode};
use common::CapturedLog as Log;

#[tokio::test]
async fn each_panic_site_is_logged_once() {
    let log = Log::default();
    let writer = log.clone();
    let subscriber = tracing_subscriber::fmt()
        .with_max_level(tracing::Level::ERROR)
        .with_ansi(false)
        .with_writer(move || writer.clone())
        .finish();
    let _default = tracing::subscriber::set_default(subscriber);

    let mut app = App::new();
    app.route("/boom", |_req: Request| async {
        if true {
            panic!("boom in the handler");
        }
        "unreachable"
    });
    app.route("/other", |req: Request| async move {
        let n: usize = req.query().unwrap_or("").len();
        let v: Vec<u8> = Vec::new();
        v[n].to_string() // an index out of bounds: another site, another message
    });
    let client = TestClient::new(app);
    for _ in 0..5 {
        assert_eq!(
            client.get("/boom").await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    for _ in 0..3 {
        assert_eq!(
            client.get("/other").await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    let text = String::from_utf8(log.0.lock().unwrap().clone()).unwrap();
    assert_eq!(text.matches("boom in the handler").count(), 1, "{text}");
    assert_eq!(text.matches("index out of bounds").count(), 1, "{text}");
    assert!(
        text.contains("tests/panics.rs:"),
        "the site is named: {text}"
    );
    assert_eq!(text.lines().count(), 2, "{text}");
}
