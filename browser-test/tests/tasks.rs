//! The tasks example (examples/tasks) in a real browser, with the real htmx (issue 21, item
//! 11): log in; add a task without a page load (the list and the out-of-band count change,
//! the page stays); a task added on a second page arrives on the first over SSE; and once the
//! session is gone, htmx is sent to the login page. (The Suspense stats page is not built yet.)
//!
//! Needs Chromium, as `tests/browser.rs` does (see `harness`): skipped without it, except in CI.

#[path = "../../tests/common/mod.rs"]
mod common;
mod harness;

#[path = "../../examples/tasks/main.rs"]
#[allow(dead_code)]
mod tasks;

use std::path::Path;
use std::time::Duration;

use chromiumoxide::Page;
use common::TestServer;
use harness::{chromium_or_skip, js, wait_for, wait_for_js, Launched};

/// Types `title` into the page's form and clicks Add (htmx sends it).
async fn add_task(page: &Page, title: &str) {
    // A form htmx swapped in (the 422's form, say) is processed a moment after the swap (its
    // settle step); clicked before that, the browser would submit it natively.
    wait_for_js(
        page,
        "htmx to process the form",
        r#"!!document.querySelector('#task-form')?.['htmx-internal-data']?.initHash"#,
    )
    .await;
    let title = serde_json::to_string(title).unwrap();
    page.evaluate(format!(
        r#"document.querySelector('#task-form input[name=title]').value = {title};
           document.querySelector('#task-form button').click();"#
    ))
    .await
    .unwrap();
}

/// Whether the page's SSE connection (htmx's SSE extension, on `<main>`) is open.
const SSE_OPEN: &str = r#"(() => {
    const data = document.querySelector("main")["htmx-internal-data"];
    return !!(data && data.sseEventSource && data.sseEventSource.readyState === 1);
})()"#;

/// How many tasks the list shows with exactly this text.
fn count_of(title: &str) -> String {
    let title = serde_json::to_string(title).unwrap();
    format!(
        r#"[...document.querySelectorAll('#task-list li')].filter(li => li.textContent === {title}).length"#
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn log_in_add_tasks_over_htmx_and_sse_and_expire() {
    let Some(chromium) = chromium_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("tasks.db");
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("../examples/tasks");
    let app = tasks::app_in(db.to_str().unwrap(), &example).expect("the example builds");
    let server = TestServer::start(app).await;
    let app_url = format!("http://127.0.0.1:{}", server.addr.port());

    let launched = Launched::start(chromium).await;
    let browser = &launched.browser;

    // Log in through the form.
    let page = browser.new_page(format!("{app_url}/login")).await.unwrap();
    wait_for(&page, "the login form", |h| h.contains("_csrf_token")).await;
    page.evaluate(
        r#"document.querySelector("input[name=username]").value = "demo";
           document.querySelector("input[name=password]").value = "demo";
           document.querySelector("input[name=password]").form.submit();"#,
    )
    .await
    .unwrap();
    wait_for(&page, "the tasks page", |h| {
        h.contains("Signed in as <strong>demo</strong>")
    })
    .await;
    wait_for_js(&page, "htmx", "typeof htmx === 'object'").await;
    wait_for_js(&page, "the SSE connection", SSE_OPEN).await;

    // Add a task with htmx: no page load (the marker set on this document survives), the task
    // appended to the list, the count swapped out of band, the form emptied.
    page.evaluate("window.sameDocument = 42").await.unwrap();
    let hostile = "<script>alert(1)</script> first";
    add_task(&page, hostile).await;
    wait_for_js(
        &page,
        "the first task in the list",
        &format!("{} === 1", count_of(hostile)),
    )
    .await;
    wait_for_js(
        &page,
        "the count, out of band",
        r#"document.querySelector('#task-count').textContent === "1 task""#,
    )
    .await;
    assert_eq!(js::<i64>(&page, "window.sameDocument").await, 42);
    assert_eq!(
        js::<String>(
            &page,
            r#"document.querySelector('#task-form input[name=title]').value"#
        )
        .await,
        ""
    );
    // The title is text: no script element came with it.
    assert_eq!(
        js::<i64>(
            &page,
            r#"document.querySelectorAll('#task-list script').length"#
        )
        .await,
        0
    );

    // A second page (the same user) adds a task: the first page gets it over SSE, and the
    // second shows it once (its own stream skips what it added itself).
    let second = browser.new_page(format!("{app_url}/")).await.unwrap();
    wait_for(&second, "the second page", |h| {
        h.contains("id=\"task-list\"")
    })
    .await;
    wait_for_js(&second, "the second page's SSE connection", SSE_OPEN).await;
    add_task(&second, "from the second page").await;
    wait_for_js(
        &second,
        "the task on the page that added it",
        r#"document.querySelector('#task-count').textContent === "2 tasks""#,
    )
    .await;
    wait_for_js(
        &page,
        "the second page's task, over SSE",
        &format!("{} === 1", count_of("from the second page")),
    )
    .await;
    assert_eq!(js::<i64>(&page, "window.sameDocument").await, 42);
    // Time for a duplicate to arrive, if one were coming.
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(
        js::<i64>(&second, &count_of("from the second page")).await,
        1
    );
    assert_eq!(js::<i64>(&page, &count_of(hostile)).await, 1);

    // An empty title is refused by the browser itself (`required`); a title the server
    // refuses comes back as the form with its error (a 422 htmx swaps into the form).
    page.evaluate(
        r#"const input = document.querySelector('#task-form input[name=title]');
           input.removeAttribute("maxlength");
           input.value = "x".repeat(201);
           document.querySelector('#task-form button').click();"#,
    )
    .await
    .unwrap();
    wait_for(&page, "the form's error", |h| {
        h.contains("A title has at most 200 characters.")
    })
    .await;
    assert_eq!(js::<i64>(&page, "window.sameDocument").await, 42);
    assert_eq!(
        js::<i64>(
            &page,
            r#"document.querySelectorAll('#task-list li').length"#
        )
        .await,
        2
    );

    // The stats page (Suspense): the shell with its placeholder at once, the figures streamed
    // into the same response a moment later and moved into place by the page's script.
    let stats = browser.new_page(format!("{app_url}/stats")).await.unwrap();
    wait_for(&stats, "the Suspense stats", |h| {
        h.contains("2 tasks; the newest") && !h.contains("Loading")
    })
    .await;
    assert_eq!(
        js::<i64>(&stats, "document.querySelectorAll('#stats').length").await,
        1,
        "the placeholder was replaced, not duplicated"
    );
    assert_eq!(
        js::<i64>(&stats, "document.querySelectorAll('template').length").await,
        0,
        "the streamed <template> is removed once used"
    );

    // The session ends (its cookie is gone): the next htmx request is sent to the login page
    // as a whole page, not swapped in as a fragment.
    browser.clear_cookies().await.unwrap();
    add_task(&page, "after the session ended").await;
    wait_for(&page, "the login page", |h| {
        h.contains(r#"<form method="post" action="/login">"#)
    })
    .await;
    let url = page.url().await.unwrap().unwrap_or_default();
    assert!(url.starts_with(&format!("{app_url}/login")), "{url}");
    let html = page.content().await.unwrap();
    assert!(!html.contains("id=\"task-list\""), "{html}");
    assert!(!html.contains("after the session ended"));

    launched.close().await;
}
