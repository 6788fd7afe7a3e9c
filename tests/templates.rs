//! Templates (issue 21, items 1, 2, 5, 7 and the block half of 8): loading and compiling at
//! registration, auto-escaping by extension, the return types (Template, inline, Fragment,
//! Page, OOB, ValidationError), the per-request functions rendered inside the middleware's
//! scopes, fragments as Server-Sent Events, and the errors of a missing template or block.

mod common;

use std::path::PathBuf;

use chirp::middleware::auth::{AuthConfig, AuthMiddleware, AuthUser};
use chirp::middleware::csrf::{CsrfConfig, CsrfMiddleware};
use chirp::middleware::security_headers::SecurityHeadersMiddleware;
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::flash::flash;
use chirp::sessions::SessionConfig;
use chirp::sse::Sse;
use chirp::templates::{
    context, Fragment, Page, Template, TemplateError, Templates, ValidationError, OOB,
};
use chirp::testing::TestClient;
use chirp::{App, IntoResponse, Method, Request, Response, State, StatusCode};

fn dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("tests/templates")
}

/// The test templates. Their form posts to `/tasks`, which most of these apps do not serve:
/// the route check (tests/template_routes.rs) is off here.
fn templates() -> Templates {
    Templates::from_dir(dir())
        .expect("the test templates compile")
        .skip_route_check()
}

fn tasks() -> Vec<&'static str> {
    vec!["<script>alert(1)</script>", "write tests"]
}

fn htmx(path: &str) -> Request {
    Request::new(Method::Get, path).with_header("HX-Request", "true")
}

/// An app with the templates and no middleware: rendered when the service finishes.
fn bare_app() -> App {
    let mut app = App::new();
    app.templates(templates());
    app
}

#[derive(Clone, serde::Serialize)]
struct User {
    id: String,
    name: String,
}

impl AuthUser for User {
    fn id(&self) -> String {
        self.id.clone()
    }
}

/// An app with the middleware a real one runs: the templates render inside their scopes.
fn full_app(templates: Templates) -> App {
    let mut app = App::new();
    app.add_middleware(SecurityHeadersMiddleware::new().nonce_csp());
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("templates-test-secret-0123456789ab")).unwrap(),
    );
    app.add_middleware(
        AuthMiddleware::new(
            AuthConfig::new()
                .load_user(|id: String| async move {
                    Some(User {
                        name: format!("user {id}"),
                        id,
                    })
                })
                .anonymous(User {
                    id: String::new(),
                    name: "guest".into(),
                }),
        )
        .unwrap(),
    );
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default()).unwrap());
    app.templates(templates);
    app
}

#[test]
fn a_syntax_error_names_the_file_and_the_line() {
    let tmp = tempfile::tempdir().unwrap();
    std::fs::create_dir(tmp.path().join("pages")).unwrap();
    std::fs::write(tmp.path().join("ok.html"), "fine").unwrap();
    std::fs::write(
        tmp.path().join("pages/bad.html"),
        "one\ntwo\n{% for x in %}{% endfor %}",
    )
    .unwrap();
    let err = Templates::from_dir(tmp.path()).unwrap_err();
    let msg = err.message();
    assert!(msg.contains("pages/bad.html"), "{msg}");
    assert!(msg.contains("line 3"), "{msg}");
    assert!(msg.contains("syntax error"), "{msg}");

    let err = Templates::from_dir(tmp.path().join("missing")).unwrap_err();
    assert!(
        err.message().contains("cannot be read"),
        "{}",
        err.message()
    );
}

#[test]
fn escaping_follows_the_extension() {
    let t = templates();
    let x = context! { x => "<b>&" };
    assert_eq!(t.render("notes.txt", &x).unwrap(), "plain <b>&");
    assert!(t
        .render("icon.svg", &x)
        .unwrap()
        .contains("<text>&lt;b&gt;&amp;</text>"));
    let t = Templates::new()
        .with_template("a.xml", "{{ x }}")
        .unwrap()
        .with_template("a.htm", "{{ x }}")
        .unwrap()
        .with_template("a.html.j2", "{{ x }}")
        .unwrap()
        .with_template("a.js", "{{ x }}")
        .unwrap();
    for name in ["a.xml", "a.htm", "a.html.j2"] {
        assert_eq!(t.render(name, &x).unwrap(), "&lt;b&gt;&amp;", "{name}");
    }
    assert_eq!(t.render("a.js", &x).unwrap(), "<b>&");
}

#[tokio::test]
async fn a_template_is_a_whole_html_page() {
    let mut app = bare_app();
    app.route("/", |_req: Request| async {
        Template::new("tasks.html", context! { tasks => tasks() })
    });
    let client = TestClient::new(app);
    let res = client.get("/").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let html = res.text();
    assert!(html.starts_with("<!doctype html>"), "{html}");
    assert!(html.contains("<title>Tasks (2)</title>"));
    // minijinja escapes `/` too (`&#x2f;`).
    assert!(html.contains("&lt;script&gt;alert(1)&lt;"), "{html}");
    assert!(!html.contains("<script>alert"));
    // No middleware: the request's functions are undefined, and render as nothing.
    assert!(
        html.contains(r#"<meta name="csrf-token" content="">"#),
        "{html}"
    );
    assert!(html.contains("anonymous"));
    // The request is there, though.
    assert!(html.contains(r#"data-path="&#x2f;""#), "{html}"); // minijinja escapes `/`
}

#[tokio::test]
async fn status_and_headers_set_around_a_template_are_kept() {
    let mut app = bare_app();
    app.post("/tasks", |_req: Request| async {
        let page = Template::new("notes.txt", context! { x => "made" });
        (StatusCode::CREATED, page)
    });
    app.route("/h", |_req: Request| async {
        Template::new("notes.txt", context! { x => 1 })
            .into_response()
            .with_header("x-kept", "yes")
    });
    let client = TestClient::new(app);
    let res = client.post("/tasks", "").await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(res.text(), "plain made");
    let res = client.get("/h").await;
    assert_eq!(res.header("x-kept"), Some("yes"));
    assert_eq!(res.text(), "plain 1");
}

#[tokio::test]
async fn inline_templates_render_and_their_errors_are_500s() {
    // No templates registered at all: an inline template still renders.
    let mut app = App::new();
    app.route("/", |_req: Request| async {
        Template::inline("<h1>{{ t }}</h1>", context! { t => "<i>" })
    });
    app.route("/bad", |_req: Request| async {
        Template::inline("{% if %}", context! {})
    });
    app.route("/file", |_req: Request| async {
        Template::new("tasks.html", context! {})
    });
    let client = TestClient::new(app);
    let res = client.get("/").await;
    assert_eq!(res.text(), "<h1>&lt;i&gt;</h1>");
    let res = client.get("/bad").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert!(
        !res.text().contains("syntax"),
        "the reason stays in the log"
    );
    // A file template in an app that registered none: a 500 (logged: register templates).
    assert_eq!(
        client.get("/file").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
}

#[tokio::test]
async fn a_page_negotiates_whole_page_block_and_boosted_block() {
    let mut app = bare_app();
    app.route("/", |_req: Request| async {
        Page::new("tasks.html", "list", context! { tasks => tasks() })
    });
    app.route("/boost", |_req: Request| async {
        Page::new("tasks.html", "list", context! { tasks => tasks() }).boosted_block("content")
    });
    let client = TestClient::new(app);

    let whole = client.get("/").await;
    assert!(whole.text().contains("<html>"));
    assert!(whole.header("vary").unwrap().contains("HX-Request"));

    let block = client.send(htmx("/")).await;
    let html = block.text();
    assert!(html.starts_with("<ul id=\"task-list\">"), "{html}");
    assert!(
        !html.contains("<html") && !html.contains("task-count"),
        "{html}"
    );
    assert!(html.contains("&lt;script&gt;"));
    assert!(block.header("vary").unwrap().contains("HX-Request"));

    let restore = client
        .send(htmx("/").with_header("HX-History-Restore-Request", "true"))
        .await;
    assert!(restore.text().contains("<html>"));

    // Boosted: the wider block; a plain htmx request still gets the narrow one.
    let boosted = client
        .send(htmx("/boost").with_header("HX-Boosted", "true"))
        .await;
    let html = boosted.text();
    assert!(html.contains("<section id=\"page\">") && html.contains("task-count"));
    assert!(!html.contains("<html"));
    assert!(boosted.header("vary").unwrap().contains("HX-Boosted"));
    let narrow = client.send(htmx("/boost")).await.text();
    assert!(narrow.starts_with("<ul id=\"task-list\">"), "{narrow}");
}

#[test]
fn a_block_rendered_alone_is_the_block_of_the_whole_template() {
    // Nothing outside these blocks matters: each renders alone, as a template of its own
    // whose `{% block %}` tags became `{% if true %}` ones. The same template behind a `set`
    // renders its blocks the general way (a whole evaluation first, where `n` is undefined:
    // nothing to iterate): both must agree, on the whitespace the tags' `-` trim and on the
    // line an error names.
    let body = "<ul>\n  {%- block rows -%}\n  {% for r in rows %}<li>{{ r }}</li>{% endfor %}\n  \
                {%- endblock %}\n</ul>\n{% block bad\n%}\nok\n{% for x in n %}{% endfor %}\n\
                {% endblock %}";
    let general = format!("{{% set unused = 1 %}}{body}");
    let t = Templates::new()
        .with_template("alone.html", body)
        .and_then(|t| t.with_template("general.html", general))
        .unwrap();
    for name in ["alone.html", "general.html"] {
        let rows = t
            .render_block(name, "rows", context! { rows => ["<a>", "b"] })
            .unwrap();
        assert_eq!(rows, "<li>&lt;a&gt;</li><li>b</li>", "{name}");
        let err = t
            .render_block(name, "bad", context! { n => 42 })
            .unwrap_err();
        let TemplateError::Render(e) = err else {
            panic!("{name}: {err}")
        };
        assert_eq!(e.line(), Some(9), "{name}: {e}");
    }
}

#[tokio::test]
async fn a_missing_block_is_a_500_and_check_block_names_what_exists() {
    let mut app = bare_app();
    app.route("/", |_req: Request| async {
        Fragment::new("tasks.html", "nope", context! {})
    });
    app.route("/nofile", |_req: Request| async {
        Fragment::new("missing.html", "list", context! {})
    });
    let client = TestClient::new(app);
    assert_eq!(
        client.get("/").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );
    assert_eq!(
        client.get("/nofile").await.status(),
        StatusCode::INTERNAL_SERVER_ERROR
    );

    let t = templates();
    t.check_block("tasks.html", "list").unwrap();
    t.check_block("tasks.html", "title").unwrap(); // the parent's
    let err = t.check_block("tasks.html", "nope").unwrap_err();
    let msg = err.to_string();
    assert!(
        msg.contains("`tasks.html`") && msg.contains("`nope`"),
        "{msg}"
    );
    for block in ["title", "content", "list", "count", "form"] {
        assert!(msg.contains(block), "{msg}");
    }
    // The render-time error says the same.
    let err = t
        .render_block("tasks.html", "nope", context! {})
        .unwrap_err();
    assert!(
        matches!(err, TemplateError::UnknownBlock { ref blocks, .. } if blocks.contains(&"list".to_owned())),
        "{err}"
    );
    assert!(matches!(
        t.check_block("missing.html", "x"),
        Err(TemplateError::NotFound { .. })
    ));
}

#[tokio::test]
async fn oob_marks_the_fragments_root_or_wraps_it() {
    let mut app = bare_app();
    app.post("/tasks", |_req: Request| async {
        let list = tasks();
        OOB::new(Fragment::new(
            "tasks.html",
            "list",
            context! { tasks => list.clone() },
        ))
        .with(
            Fragment::new("tasks.html", "count", context! { tasks => list }).target("#task-count"),
        )
        .with(
            Fragment::new("tasks.html", "title", context! { tasks => vec![1] })
                .target("page-title"),
        )
    });
    let client = TestClient::new(app);
    let res = client.post("/tasks", "").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    let html = res.text();
    assert!(html.starts_with("<ul id=\"task-list\">"), "{html}");
    assert!(
        html.contains(r#"<span id="task-count" hx-swap-oob="true">2</span>"#),
        "{html}"
    );
    assert!(
        html.contains(r#"<div id="page-title" hx-swap-oob="innerHTML">Tasks (1)</div>"#),
        "{html}"
    );
    assert!(!html.contains("<html"));
}

#[tokio::test]
async fn a_validation_error_is_a_422_form_fragment() {
    let mut app = bare_app();
    app.post("/tasks", |_req: Request| async {
        ValidationError::new(
            "tasks.html",
            "form",
            context! { title => "<x>", error => "A title is needed" },
        )
        .retarget("#task-form")
    });
    let client = TestClient::new(app);
    let res = client.post("/tasks", "").await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(res.header("hx-retarget"), Some("#task-form"));
    let html = res.text();
    assert!(html.starts_with("<form id=\"task-form\""), "{html}");
    assert!(html.contains("A title is needed") && html.contains("value=\"&lt;x&gt;\""));
    assert!(!html.contains("<html"));
}

#[tokio::test]
async fn the_request_functions_render_inside_the_middleware_scopes() {
    let mut app = full_app(templates().user::<User>());
    app.route("/", |_req: Request| async {
        Page::new("tasks.html", "list", context! { tasks => tasks() })
    });
    app.post("/flash", |_req: Request| async {
        flash("Saved <ok>")?;
        Ok::<_, chirp::Error>(Response::see_other("/"))
    });
    let client = TestClient::new(app);
    let res = client.get("/").await;
    let html = res.text();
    // The CSRF token, where htmx sends it, and as a hidden field.
    let meta = html
        .split(r#"<meta name="csrf-token" content=""#)
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert!(meta.len() >= 32, "{html}");
    assert!(
        html.contains(r#"<input type="hidden" name="_csrf_token" value=""#),
        "{html}"
    );
    assert!(html.contains(r#"{"X-CSRF-Token": ""#));
    // The CSP nonce is the one in the policy.
    let csp = res.header("content-security-policy").unwrap().to_owned();
    let nonce = html
        .split("<script nonce=\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    assert!(!nonce.is_empty() && csp.contains(nonce), "{csp} / {nonce}");
    // The anonymous user of the app's own type.
    assert!(html.contains("signed in as") || html.contains("anonymous"));

    // A token from the page is accepted by CsrfMiddleware.
    let res = client
        .request(Method::Post, "/flash")
        .header("X-CSRF-Token", meta)
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::SEE_OTHER);
    // The block of an htmx request does not show the flashes, and does not take them either.
    let fragment = client.send(htmx("/")).await.text();
    assert!(!fragment.contains("flash"), "{fragment}");
    let page = client.get("/").await.text();
    assert!(
        page.contains(r#"<p class="flash message">Saved &lt;ok&gt;</p>"#),
        "{page}"
    );
    // Shown once.
    assert!(!client.get("/").await.text().contains("Saved"));
}

#[tokio::test]
async fn current_user_without_a_user_type_is_the_id() {
    let t = Templates::new()
        .with_template(
            "u.html",
            "{% if current_user() %}{{ current_user().id }}{% else %}nobody{% endif %}",
        )
        .unwrap();
    let mut app = full_app(t);
    app.route("/", |_req: Request| async { Template::new("u.html", ()) });
    let client = TestClient::new(app);
    assert_eq!(client.get("/").await.text(), "nobody");
}

#[tokio::test]
async fn a_fragment_becomes_one_sse_event_with_a_data_line_per_line() {
    let mut app = full_app(templates());
    app.route(
        "/events",
        |_req: Request, templates: State<Templates>| async move {
            let titles = futures_util::stream::iter(["first <b>", "second"]);
            let events = futures_util::StreamExt::map(titles, move |title| {
                // Rendered as the stream is polled: inside the request's carried scopes.
                let task = Fragment::new("events.html", "task", context! { title });
                templates.event(task.target("#task-added")).unwrap()
            });
            Sse::new(events).no_keep_alive()
        },
    );
    app.route("/", |_req: Request| async {
        Template::new("tasks.html", context! { tasks => tasks() })
    });
    let client = TestClient::new(app);
    // The page gives the session its CSRF token (a stream's session is read-only: its cookie
    // went out with the headers).
    assert_eq!(client.get("/").await.status(), StatusCode::OK);
    let mut res = client.get("/events").await;
    assert_eq!(res.header("content-type"), Some("text/event-stream"));
    let mut text = res.text();
    if let Some(mut body) = res.response_mut().take_stream() {
        while let Some(chunk) = futures_util::StreamExt::next(&mut body).await {
            text.push_str(std::str::from_utf8(&chunk.unwrap()).unwrap());
        }
    }
    let events: Vec<&str> = text.split("\n\n").filter(|e| !e.is_empty()).collect();
    assert_eq!(events.len(), 2, "{text}");
    let lines: Vec<&str> = events[0].lines().collect();
    assert_eq!(lines[0], "event: task-added");
    assert!(lines.len() > 3, "several data lines: {text}");
    // What the browser does: the data lines joined with `\n`.
    let data: Vec<&str> = lines[1..]
        .iter()
        .map(|l| l.strip_prefix("data: ").expect("a data line"))
        .collect();
    let html = data.join("\n");
    assert!(
        html.starts_with("<li class=\"task\">\n  first &lt;b&gt;\n"),
        "{html}"
    );
    assert!(html.ends_with("</li>"), "{html}");
    // The CSRF field, read in the stream's producer, inside the carried scope.
    assert!(html.contains(r#"name="_csrf_token" value=""#), "{html}");
}

#[tokio::test]
async fn templates_are_app_state_and_registered_once() {
    let mut app = bare_app();
    app.route("/", |_req: Request, t: State<Templates>| async move {
        Response::html(t.render("notes.txt", context! { x => "by hand" }).unwrap())
    });
    let client = TestClient::new(app);
    assert_eq!(client.get("/").await.text(), "plain by hand");

    let mut app = bare_app();
    app.templates(templates());
    let err = app.build().err().unwrap();
    assert!(
        err.message().contains("registered twice"),
        "{}",
        err.message()
    );
}

#[tokio::test]
async fn auto_reload_picks_up_an_edit() {
    let tmp = tempfile::tempdir().unwrap();
    let file = tmp.path().join("page.html");
    std::fs::write(&file, "one {{ x }}").unwrap();
    let fixed = Templates::from_dir(tmp.path()).unwrap();
    let live = Templates::from_dir(tmp.path()).unwrap().auto_reload(true);
    assert_eq!(
        live.render("page.html", context! { x => 1 }).unwrap(),
        "one 1"
    );
    std::fs::write(&file, "two, longer {{ x }}").unwrap();
    assert_eq!(
        live.render("page.html", context! { x => 1 }).unwrap(),
        "two, longer 1"
    );
    assert_eq!(
        fixed.render("page.html", context! { x => 1 }).unwrap(),
        "one 1"
    );
    // A broken edit fails the render, naming the file; fixing it recovers.
    std::fs::write(&file, "{% if %} and more").unwrap();
    let err = live
        .render("page.html", context! {})
        .unwrap_err()
        .to_string();
    assert!(err.contains("page.html"), "{err}");
    std::fs::write(&file, "three").unwrap();
    assert_eq!(live.render("page.html", context! {}).unwrap(), "three");
}

#[tokio::test]
async fn rendering_runs_inside_the_innermost_middleware_over_a_socket() {
    // The wire: a real server, keep-alive, a page and its fragment on one connection.
    let mut app = full_app(templates());
    app.route("/", |_req: Request| async {
        Page::new("tasks.html", "list", context! { tasks => tasks() })
    });
    let server = common::TestServer::start(app).await;
    let mut conn = server.connect().await;
    conn.send("GET / HTTP/1.1\r\nHost: x\r\n\r\n").await;
    let page = conn.response().await;
    assert!(page.text().contains("<html>"));
    conn.send("GET / HTTP/1.1\r\nHost: x\r\nHX-Request: true\r\n\r\n")
        .await;
    let fragment = conn.response().await;
    assert!(
        fragment.text().starts_with("<ul id=\"task-list\">"),
        "{}",
        fragment.text()
    );
}
