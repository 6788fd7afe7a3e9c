//! Templates checked against the route table when the app is built (issue 21, item 8): a
//! literal hx-post/form URL that no route serves with that method is a ConfigurationError
//! naming the template and line; the opt-out and a fallback turn the check off.

use chirp::templates::Templates;
use chirp::{App, Request};

const PAGE: &str = "<!doctype html>\n\
<form action=\"/tasks\" method=\"post\"></form>\n\
<button hx-delete=\"/tasks/7\">x</button>\n\
<a hx-get=\"{{ url }}\">dynamic: skipped</a>\n";

fn app(templates: Templates) -> App {
    let mut app = App::new();
    app.templates(templates);
    app.post("/tasks", |_req: Request| async { "made" });
    app.get("/tasks/{id:int}", |_req: Request| async { "one" });
    app
}

#[test]
fn a_url_no_route_serves_with_its_method_fails_the_build_naming_template_and_line() {
    let templates = Templates::new().with_template("page.html", PAGE).unwrap();
    let err = app(templates).build().err().expect("the build fails");
    let message = err.message();
    assert!(
        message.contains("page.html:3") && message.contains("/tasks/7"),
        "{message}"
    );
    assert!(message.contains("DELETE"), "{message}");
    assert!(
        !message.contains("page.html:2"),
        "the POST form matches: {message}"
    );
    assert!(
        message.contains("skip_route_check"),
        "says how to opt out: {message}"
    );
}

#[test]
fn matching_urls_build_and_the_opt_out_and_a_fallback_skip_the_check() {
    let good = PAGE.replace("hx-delete", "hx-get");
    let templates = Templates::new().with_template("page.html", good).unwrap();
    assert!(app(templates).build().is_ok());

    let templates = Templates::new()
        .with_template("page.html", PAGE)
        .unwrap()
        .skip_route_check();
    assert!(app(templates).build().is_ok());

    let templates = Templates::new().with_template("page.html", PAGE).unwrap();
    let mut with_fallback = app(templates);
    with_fallback.fallback(|_req: Request| async { "anything" });
    assert!(with_fallback.build().is_ok());
}
