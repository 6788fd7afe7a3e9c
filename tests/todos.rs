//! The SQLite example (examples/todos.rs): state taken as a handler argument, `?` on the
//! database's errors, and its API errors as problem+json.

#[path = "../examples/todos.rs"]
#[allow(dead_code)]
mod todos;

use chirp::testing::TestClient;
use chirp::StatusCode;
use serde_json::{json, Value};

fn client_on(path: &str) -> TestClient {
    TestClient::new(todos::app(path).expect("the example's app builds"))
}

#[tokio::test]
async fn todos_are_created_listed_and_finished() {
    let c = client_on(":memory:");
    assert_eq!(c.get("/api/todos").await.json::<Value>(), json!([]));

    let res = c.post_json("/api/todos", &json!({"title": "milk"})).await;
    assert_eq!(res.status(), StatusCode::CREATED);
    assert_eq!(
        res.json::<Value>(),
        json!({"id": 1, "title": "milk", "done": false})
    );
    c.post_json("/api/todos", &json!({"title": "bread"})).await;

    let res = c.post("/api/todos/1/done", "").await;
    assert_eq!(res.status(), StatusCode::OK);
    assert_eq!(res.json::<Value>()["done"], json!(true));
    assert_eq!(
        c.get("/api/todos").await.json::<Value>(),
        json!([
            {"id": 1, "title": "milk", "done": true},
            {"id": 2, "title": "bread", "done": false},
        ])
    );
}

#[tokio::test]
async fn a_bad_body_is_a_422_naming_the_field_and_a_missing_todo_a_404() {
    let c = client_on(":memory:");
    let res = c.post_json("/api/todos", &json!({"title": 7})).await;
    assert_eq!(res.status(), StatusCode::UNPROCESSABLE_ENTITY);
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    let problem: Value = res.json();
    assert_eq!(problem["errors"][0]["field"], json!("title"), "{problem}");

    let res = c.post("/api/todos/9/done", "").await;
    assert_eq!(res.status(), StatusCode::NOT_FOUND);
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    assert_eq!(res.json::<Value>()["detail"], json!("no todo 9"));
}

/// The database failing under a handler: `?` made it a 500 whose body says nothing of SQLite.
#[tokio::test]
async fn a_database_error_is_a_500_that_keeps_its_detail_out_of_the_body() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("todos.db");
    let path = path.to_str().unwrap();
    let c = client_on(path);
    assert_eq!(c.get("/api/todos").await.status(), StatusCode::OK);

    rusqlite::Connection::open(path)
        .unwrap()
        .execute_batch("DROP TABLE todos")
        .unwrap();
    let res = c.get("/api/todos").await;
    assert_eq!(res.status(), StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(res.header("content-type"), Some("application/problem+json"));
    let body = res.text();
    assert!(
        !body.contains("todos") && !body.to_lowercase().contains("table"),
        "the database's message stays in the log: {body}"
    );
}
