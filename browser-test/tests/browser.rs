//! The notes example in a real browser (headless Chromium over the DevTools protocol, through
//! `chromiumoxide`): log in, add a note, see it; then a page on another origin submits a
//! forged form to the app, with the user's cookies, and is refused.
//!
//! Needs Chromium: `chromium` on the PATH (Debian's package), or `CHIRP_CHROMIUM`. `make test`
//! installs it in CI; without it the test fails in CI (`CI=true`) and is skipped elsewhere,
//! saying so. It lives in a package of its own: see `browser-test/Cargo.toml`.

#[path = "../../tests/common/mod.rs"]
mod common;
mod harness;

#[path = "../../examples/notes.rs"]
#[allow(dead_code)]
mod notes;

use chirp::{App, Request, Response};
use common::TestServer;
use harness::{chromium_or_skip, wait_for, Launched};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_add_a_note_and_refuse_a_forged_post() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let server = TestServer::start(notes::app().unwrap()).await;
    let app_url = format!("http://127.0.0.1:{}", server.addr.port());
    // Another origin (another port): a page that posts a note to the app as soon as it loads.
    let target = format!("{app_url}/notes");
    let mut evil = App::new();
    evil.route("/", move |_req: Request| {
        let target = target.clone();
        async move {
            Response::html(format!(
                r#"<form id=f method=post action="{target}"><input name=text value="forged note"></form>
<script>document.getElementById("f").submit()</script>"#
            ))
        }
    });
    let evil = TestServer::start(evil).await;
    let evil_url = format!("http://127.0.0.1:{}", evil.addr.port());

    let launched = Launched::start(chromium).await;
    let browser = &launched.browser;

    let page = browser.new_page(format!("{app_url}/login")).await.unwrap();
    wait_for(&page, "the login form", |h| h.contains("_csrf_token")).await;
    page.evaluate(
        r#"document.querySelector("input[name=username]").value = "demo";
           document.querySelector("input[name=password]").value = "demo";
           document.querySelector("input[name=password]").form.submit();"#,
    )
    .await
    .unwrap();
    wait_for(&page, "the notes page", |h| h.contains("Signed in as demo")).await;
    page.evaluate(
        r#"const input = document.querySelector("input[name=text]");
           input.value = "written in a browser";
           input.form.submit();"#,
    )
    .await
    .unwrap();
    let html = wait_for(&page, "the new note", |h| {
        h.contains("<li>written in a browser</li>")
    })
    .await;
    assert!(html.contains("Note added."), "the flash: {html}");

    // The forged post carries the session cookie (same site, SameSite=Lax) but no token, and
    // an Origin that is not the app's: refused.
    let forged = browser.new_page(format!("{evil_url}/")).await.unwrap();
    let refused = wait_for(&forged, "the refusal", |h| {
        h.contains("refused") || h.contains("CSRF")
    })
    .await;
    assert!(refused.contains("Cross-site request refused"), "{refused}");
    page.goto(format!("{app_url}/notes")).await.unwrap();
    let html = wait_for(&page, "the notes page again", |h| {
        h.contains("Signed in as demo")
    })
    .await;
    assert!(html.contains("<li>written in a browser</li>"));
    assert!(
        !html.contains("forged note"),
        "the forged note was saved: {html}"
    );

    launched.close().await;
}
