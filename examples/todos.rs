//! A JSON API over SQLite: the database as app state (`State<Db>`, checked when the app is
//! built), `?` on the database's own errors (a 500 whose detail stays in the log), a 422 that
//! names the field, and every API error as `application/problem+json`. The README's database
//! section quotes it; `tests/todos.rs` drives it.
//!
//! ```sh
//! cargo run --example todos                         # http://127.0.0.1:8000/api/todos
//! curl -d '{"title":"milk"}' -H 'content-type: application/json' localhost:8000/api/todos
//! ```
//!
//! Listens on `CHIRP_ADDR` (default 127.0.0.1:8000); the database is the file `CHIRP_DB`
//! (default: in memory, gone when the process ends).

use std::sync::{Arc, Mutex};

use chirp::{App, Error, HttpError, Request, Response, State, StatusCode};
use rusqlite::{params, Connection, OptionalExtension};
use serde::{Deserialize, Serialize};

/// The database: one SQLite connection. rusqlite is blocking, so every use goes through
/// `spawn_blocking` (see [`Db::run`]), never on the async workers.
pub struct Db(Arc<Mutex<Connection>>);

impl Db {
    /// Opens (or creates) the database at `path` (`:memory:` for one that lives in memory).
    pub fn open(path: &str) -> Result<Db, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS todos (
                 id INTEGER PRIMARY KEY,
                 title TEXT NOT NULL,
                 done INTEGER NOT NULL DEFAULT 0
             )",
        )?;
        Ok(Db(Arc::new(Mutex::new(conn))))
    }

    /// Runs `f` on the connection in tokio's blocking pool. Both failures convert with `?`:
    /// the task's `JoinError` and the query's `rusqlite::Error` are plain `std::error::Error`s.
    async fn run<T, F>(&self, f: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> rusqlite::Result<T> + Send + 'static,
    {
        let conn = self.0.clone();
        let result = tokio::task::spawn_blocking(move || {
            // A panic while holding the lock poisons it; the data is still consistent
            // (SQLite's own transactions), so the next request goes on.
            let conn = conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner());
            f(&conn)
        })
        .await?;
        Ok(result?)
    }
}

/// A todo, as the API sends it.
#[derive(Serialize)]
pub struct Todo {
    id: i64,
    title: String,
    done: bool,
}

/// What `POST /api/todos` takes.
#[derive(Deserialize)]
struct NewTodo {
    title: String,
}

fn todo_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<Todo> {
    Ok(Todo {
        id: row.get(0)?,
        title: row.get(1)?,
        done: row.get(2)?,
    })
}

async fn list(_req: Request, db: State<Db>) -> Result<Response, Error> {
    let todos = db
        .run(|conn| {
            let mut query = conn.prepare("SELECT id, title, done FROM todos ORDER BY id")?;
            let rows = query.query_map([], todo_from_row)?;
            rows.collect::<rusqlite::Result<Vec<Todo>>>()
        })
        .await?;
    Ok(Response::json(&todos))
}

async fn create(req: Request, db: State<Db>) -> Result<Response, Error> {
    // A missing or mistyped `title` is a 422 whose problem names the field.
    let new: NewTodo = req.json()?;
    if new.title.trim().is_empty() {
        return Err(HttpError::unprocessable("the title is empty").into());
    }
    let todo = db
        .run(move |conn| {
            conn.execute("INSERT INTO todos (title) VALUES (?1)", params![new.title])?;
            let id = conn.last_insert_rowid();
            Ok(Todo {
                id,
                title: new.title,
                done: false,
            })
        })
        .await?;
    Ok(Response::json(&todo).with_status(StatusCode::CREATED))
}

async fn finish(req: Request, db: State<Db>) -> Result<Response, Error> {
    let id: i64 = req.param_as("id")?;
    let todo = db
        .run(move |conn| {
            conn.execute("UPDATE todos SET done = 1 WHERE id = ?1", params![id])?;
            conn.query_row(
                "SELECT id, title, done FROM todos WHERE id = ?1",
                params![id],
                todo_from_row,
            )
            .optional()
        })
        .await?;
    match todo {
        Some(todo) => Ok(Response::json(&todo)),
        None => Err(HttpError::not_found(format!("no todo {id}")).into()),
    }
}

/// The app on the database at `path`.
pub fn app(path: &str) -> Result<App, Error> {
    let mut app = App::new();
    app.state(Db::open(path)?);
    // Every error under /api is problem+json, whatever the client's Accept says.
    app.api_prefix("/api");
    app.get("/api/todos", list);
    app.post("/api/todos", create);
    app.post("/api/todos/{id:int}/done", finish);
    Ok(app)
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    let db = std::env::var("CHIRP_DB").unwrap_or_else(|_| ":memory:".into());
    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
    app(&db)?.run(addr).await
}
