//! The chat example (examples/chat.rs) in a real browser: two users, each in a browser
//! context of their own (separate cookie jars), log in through the form and chat through the
//! page's own client (its WebSocket to `/ws/chat`): each page shows both users' messages, its
//! own too, in order, the text as text (no markup from a message becomes an element).
//!
//! Needs Chromium, as `tests/browser.rs` does (see `harness`): skipped without it, except in CI.

#[path = "../../tests/common/mod.rs"]
mod common;
mod harness;

#[path = "../../examples/chat.rs"]
// This package has no `redis` feature: the example's Redis hub is left out here.
#[allow(dead_code, unexpected_cfgs)]
mod chat;

use chirp::broadcast::Hub;
use chromiumoxide::cdp::browser_protocol::target::{
    CreateBrowserContextParams, CreateTargetParams,
};
use chromiumoxide::{Browser, Page};
use common::TestServer;
use harness::{chromium_or_skip, js, wait_for, wait_for_js, Launched};

/// A page in a new browser context (its own cookies), logged in as `name` through the form,
/// its chat socket open.
async fn user_page(browser: &Browser, app_url: &str, name: &str) -> Page {
    let context = browser
        .create_browser_context(CreateBrowserContextParams::default())
        .await
        .unwrap();
    let page = browser
        .new_page(
            CreateTargetParams::builder()
                .url(format!("{app_url}/login"))
                .browser_context_id(context)
                .build()
                .unwrap(),
        )
        .await
        .unwrap();
    wait_for(&page, "the login form", |h| h.contains("_csrf_token")).await;
    let name_js = serde_json::to_string(name).unwrap();
    page.evaluate(format!(
        r#"document.querySelector("input[name=name]").value = {name_js};
           document.querySelector("input[name=name]").form.submit();"#
    ))
    .await
    .unwrap();
    wait_for(&page, "the chat page", |h| h.contains(r#"id="say""#)).await;
    wait_for_js(
        &page,
        "the chat socket",
        r#"document.getElementById("status").textContent === "connected""#,
    )
    .await;
    page
}

/// Types `text` into the page's form and sends it (the page's own client).
async fn say(page: &Page, text: &str) {
    let text = serde_json::to_string(text).unwrap();
    page.evaluate(format!(
        r##"document.getElementById("text").value = {text};
           document.querySelector("#say button").click();"##
    ))
    .await
    .unwrap();
}

/// The chat log as the page shows it: `[user, whole line text]` per message.
async fn log_of(page: &Page) -> Vec<(String, String)> {
    js(
        page,
        r##"[...document.querySelectorAll("#log li")].map(li => [li.querySelector("b").textContent, li.textContent])"##,
    )
    .await
}

/// Waits until the page's log has `n` messages.
async fn wait_for_log(page: &Page, what: &str, n: usize) {
    wait_for_js(
        page,
        what,
        &format!(r##"document.querySelectorAll("#log li").length >= {n}"##),
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_users_chat_through_the_page() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let server =
        TestServer::start(chat::app(Hub::new(), 1 << 20).expect("the example builds")).await;
    let app_url = format!("http://127.0.0.1:{}", server.addr.port());

    let launched = Launched::start(chromium).await;
    let browser = &launched.browser;

    let alice = user_page(browser, &app_url, "alice").await;
    let bob = user_page(browser, &app_url, "bob").await;

    say(&alice, "hello bob").await;
    wait_for_log(&alice, "alice's message on her page", 1).await;
    wait_for_log(&bob, "alice's message on bob's page", 1).await;
    // The input is emptied once sent.
    assert_eq!(
        js::<String>(&alice, r#"document.getElementById("text").value"#).await,
        ""
    );

    let markup = "<img src=x onerror=alert(1)> hi alice";
    say(&bob, markup).await;
    wait_for_log(&alice, "bob's message on alice's page", 2).await;
    wait_for_log(&bob, "bob's message on his page", 2).await;

    let expected = vec![
        ("alice".to_owned(), "alicehello bob".to_owned()),
        ("bob".to_owned(), format!("bob{markup}")),
    ];
    assert_eq!(log_of(&alice).await, expected);
    assert_eq!(log_of(&bob).await, expected);
    // The message's markup stayed text on both pages.
    for page in [&alice, &bob] {
        assert_eq!(
            js::<i64>(page, r##"document.querySelectorAll("#log img").length"##).await,
            0
        );
    }
    // Each page is still connected, and nothing else arrived.
    tokio::time::sleep(std::time::Duration::from_millis(300)).await;
    for page in [&alice, &bob] {
        assert_eq!(
            js::<String>(page, r#"document.getElementById("status").textContent"#).await,
            "connected"
        );
        assert_eq!(log_of(page).await.len(), 2);
    }

    launched.close().await;
}
