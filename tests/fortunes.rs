//! The TechEmpower Fortunes page of `examples/bench_app.rs` (what the peers are measured on
//! beside chirp), and fragments rendered from a block compiled on its own.

use chirp::templates::{context, Fragment, Template, Templates};
use chirp::testing::TestClient;
use chirp::{App, Request};

// The very app that the peers are measured against (its `main` goes unused here).
#[allow(dead_code)]
#[path = "../examples/bench_app.rs"]
mod bench_app;

/// `../shared/bench/fortunes.html`, the body every server must send, byte for byte.
const EXPECTED: &str = include_str!("fixtures/fortunes.html");

#[tokio::test]
async fn fortunes_is_the_techempower_page_byte_for_byte() {
    let client = TestClient::new(bench_app::app().unwrap());
    let res = client.get("/fortunes").await;
    assert_eq!(res.status(), chirp::StatusCode::OK);
    assert_eq!(res.header("content-type"), Some("text/html; charset=utf-8"));
    assert_eq!(res.text(), EXPECTED);

    // Its fragment: the rows alone, as in the page.
    let rows = client.get("/fortunes/fragment").await.text();
    let start = EXPECTED.find("</th></tr>").unwrap() + "</th></tr>".len();
    let end = EXPECTED.find("</table>").unwrap();
    assert_eq!(rows, EXPECTED[start..end]);
}

/// The same template with something outside its blocks (`set`) that makes the fragments
/// take the general way: a whole evaluation first, then the block.
fn general(source: &str) -> String {
    format!("{{% set unused = 1 %}}{source}")
}

#[test]
fn a_block_alone_renders_as_from_the_whole_template() {
    let source = "<!doctype html>\n<title>{{ title }}</title>\n{% if show %}\
        {%- block list -%}\n<ul>{% for t in tasks %}{% block item %}<li>{{ t }}</li>{% endblock %}\
        {% endfor %}</ul>\n{%- endblock %}{% endif %}\n<p>{{ title }}</p>\n";
    let t = Templates::new()
        .with_template("fast.html", source)
        .unwrap()
        .with_template("slow.html", general(source))
        .unwrap()
        .with_template("plain.txt", source)
        .unwrap();
    let ctx = context! { title => "<T>", show => false, tasks => vec!["a<b", "c"], t => "x&y" };
    for block in ["list", "item"] {
        let fast = t.render_block("fast.html", block, &ctx).unwrap();
        let slow = t.render_block("slow.html", block, &ctx).unwrap();
        assert_eq!(fast, slow, "{block}");
    }
    assert_eq!(
        t.render_block("fast.html", "list", &ctx).unwrap(),
        "<ul><li>a&lt;b</li><li>c</li></ul>"
    );
    // Escaping follows the template's name, as for the whole template.
    assert_eq!(
        t.render_block("plain.txt", "item", &ctx).unwrap(),
        "<li>x&y</li>"
    );
    // The blocks compiled on their own are not templates an app sees.
    assert_eq!(t.blocks("fast.html").unwrap(), ["list", "item"]);
    assert!(!format!("{t:?}").contains('\u{1}'));
    // A block the template lacks: the error lists the ones it has.
    let err = t
        .render_block("fast.html", "nope", &ctx)
        .unwrap_err()
        .to_string();
    assert!(err.contains("list") && err.contains("item"), "{err}");
}

#[test]
fn an_error_in_a_block_alone_names_the_templates_line() {
    let t = Templates::new()
        .with_template("e.html", "a\nb\n{% block x %}\n{{ 1 / 0 }}{% endblock %}")
        .unwrap();
    let err = t.render_block("e.html", "x", ()).unwrap_err();
    let chirp::templates::TemplateError::Render(e) = &err else {
        panic!("{err}")
    };
    assert_eq!(e.line(), Some(4), "{err:?}");
}

#[tokio::test]
async fn fragments_and_pages_read_the_request_in_a_response() {
    let t = Templates::new()
        .with_template(
            "r.html",
            "<b>{{ request.path }}</b>{% block x %}{{ request.path }} {{ request.htmx }}{% endblock %}",
        )
        .unwrap();
    let mut app = App::new();
    app.templates(t.clone());
    app.route("/page", |_req: Request| async {
        Template::new("r.html", context! {})
    });
    app.route("/frag", |_req: Request| async {
        Fragment::new("r.html", "x", context! {})
    });
    app.route("/own", |_req: Request| async {
        Fragment::new(
            "r.html",
            "x",
            context! { request => context! { path => "mine" } },
        )
    });
    let client = TestClient::new(app);
    assert_eq!(
        client.get("/page").await.text(),
        "<b>&#x2f;page</b>&#x2f;page False"
    );
    assert_eq!(client.get("/frag").await.text(), "&#x2f;frag False");
    // A context key of the handler's own wins.
    assert_eq!(client.get("/own").await.text(), "mine ");
    // Outside a response, `request` is there with nothing in it.
    assert_eq!(t.render_block("r.html", "x", ()).unwrap(), " ");
}
