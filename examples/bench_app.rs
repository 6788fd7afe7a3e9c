//! The benchmark app: exactly the peers' routes (../shared/peers), for side-by-side runs.
//!
//! - `GET /`          → `Hello, World!` (text/plain)
//! - `GET /json`      → `{"message":"Hello, World!"}` (application/json)
//! - `GET /dashboard` → `Visits: N`, from a signed-cookie session (the session covers
//!   `/dashboard` only, as in the peers); with `REDIS_URL` set (and built with
//!   `--features redis`), from a [`RedisStore`] session instead, as the ext peers keep theirs
//! - `GET /dashboard/read` → `Visits: N` without counting: a request that leaves the session
//!   unchanged (`SaveMode::OnChange`: with Redis, one `GETEX` and no write)
//! - `GET /static/...` → the files under `STATIC_DIR` (when it is set), with `StaticFilesMiddleware`'
//!   defaults, as the ext peers serve them with `ServeDir` / `actix-files`
//! - `GET /fortunes` → TechEmpower's Fortunes page, as the ext peers answer it: the 12 standard
//!   rows from memory (no database, cloned per request as a driver would hand them over), the
//!   row added at request time (id 0), sorted by message, rendered through chirp's templates
//!   (`Template`, `fortunes.html`, HTML-escaped); `GET /fortunes/fragment` → its `rows` block
//!   alone (a `Fragment`), to compare a fragment's cost with its page's
//! - `GET /sse/flood?n=N` → N Server-Sent Events as fast as the client takes them, and
//!   `GET /sse/idle` → an event stream that stays silent (keep-alive comments only), for
//!   `scripts/bench-sse.py`
//! - `GET /ws/echo` → a WebSocket that sends every text and binary message back, as the ext
//!   peers' `/ws/echo` and `examples/chat`'s: messages up to 1 MiB, permessage-deflate
//!   accepted when the client offers it (the default), for `scripts/bench-ws.sh`
//!
//! Listens on `CHIRP_ADDR` (default 127.0.0.1:8000), or on `127.0.0.1:<port>` given as the
//! first argument or in `PORT` (how the benchmark scripts start servers). Worker threads:
//! `CHIRP_WORKERS`, default one per CPU it may run on.

use chirp::middleware::scoped;
use chirp::middleware::sessions::SessionMiddleware;
use chirp::middleware::static_files::StaticFilesMiddleware;
use chirp::sessions::{get_session, SaveMode, SessionConfig};
use chirp::sse::{Event, Sse};
use chirp::stores::SessionStore;
use chirp::templates::minijinja::value::Serde;
use chirp::templates::{context, Fragment, Template, Templates};
use chirp::ws::Message as WsMessage;
use chirp::{App, Request, Response};
use futures_util::StreamExt;
use serde::Serialize;

#[derive(Serialize)]
struct Message {
    message: &'static str,
}

/// The Fortunes page (TechEmpower's one-line table), with the rows in a block of their own
/// for `/fortunes/fragment`. Named `.html`: every value is HTML-escaped.
const FORTUNES_TEMPLATE: &str = "<!DOCTYPE html><html><head><title>Fortunes</title></head>\
<body><table><tr><th>id</th><th>message</th></tr>\
{% block rows %}{% for fortune in fortunes %}<tr><td>{{ fortune.id }}</td><td>{{ fortune.message }}</td></tr>\
{% endfor %}{% endblock %}</table></body></html>";

/// The 12 rows of TechEmpower's `Fortune` table (its `create.sql`), in id order.
#[rustfmt::skip]
const FORTUNE_ROWS: [(i32, &str); 12] = [
    (1, "fortune: No such file or directory"),
    (2, "A computer scientist is someone who fixes things that aren't broken."),
    (3, "After enough decimal places, nobody gives a damn."),
    (4, "A bad random number generator: 1, 1, 1, 1, 1, 4.33e+67, 1, 1, 1"),
    (5, "A computer program does what you tell it to do, not what you want it to do."),
    (6, "Emacs is a nice operating system, but I prefer UNIX. — Tom Christaensen"),
    (7, "Any program that runs right is obsolete."),
    (8, "A list is only as strong as its weakest link. — Donald Knuth"),
    (9, "Feature: A bug with seniority."),
    (10, "Computers make very fast, very accurate mistakes."),
    (11, "<script>alert(\"This should not be displayed in a browser alert box.\");</script>"),
    (12, "フレームワークのベンチマーク"),
];

/// One row, owned as a database driver would hand it over.
#[derive(Clone, Serialize)]
struct Fortune {
    id: i32,
    message: String,
}

/// The rows of one request: the table "queried" (cloned), the additional fortune, sorted by
/// message.
fn fortunes(table: &[Fortune]) -> Vec<Fortune> {
    let mut fortunes = Vec::with_capacity(table.len() + 1);
    fortunes.extend_from_slice(table);
    fortunes.push(Fortune {
        id: 0,
        message: "Additional fortune added at request time.".to_owned(),
    });
    fortunes.sort_by(|a, b| a.message.cmp(&b.message));
    fortunes
}

/// The peers' fixed 64-byte benchmark key (never for real use). Fixed on purpose, unlike the
/// other examples' `CHIRP_SECRET_KEY`: benchmarks need the same cookies run after run, and the
/// peers sign with this same key.
const SECRET_KEY: &str = "peer-bench-fixed-secret-key-0123456789abcdefghijklmnopqrstuvwxyz";

fn session_config() -> SessionConfig {
    let mut config = SessionConfig::new(SECRET_KEY);
    config.save_mode = SaveMode::OnChange;
    config
}

/// The app with signed-cookie sessions.
pub fn app() -> Result<App, chirp::Error> {
    with_sessions(SessionMiddleware::new(session_config())?)
}

/// The app as the environment asks: Redis sessions when `REDIS_URL` is set.
pub async fn app_from_env() -> Result<App, chirp::Error> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        return app();
    };
    #[cfg(feature = "redis")]
    {
        let config = session_config();
        let store = chirp::stores::RedisStore::connect(&url, &config).await?;
        eprintln!("chirp bench_app: sessions in Redis at {url}");
        with_sessions(SessionMiddleware::with_store(config, store)?)
    }
    #[cfg(not(feature = "redis"))]
    Err(chirp::ConfigurationError::new(format!(
        "REDIS_URL={url} is set but bench_app was built without the `redis` feature: cargo build --release --features redis --example bench_app (or unset REDIS_URL)"
    ))
    .into())
}

fn with_sessions<S: SessionStore>(sessions: SessionMiddleware<S>) -> Result<App, chirp::Error> {
    let mut app = App::new();
    app.templates(Templates::new().with_template("fortunes.html", FORTUNES_TEMPLATE)?);
    let table: std::sync::Arc<[Fortune]> = FORTUNE_ROWS
        .iter()
        .map(|&(id, message)| Fortune {
            id,
            message: message.to_owned(),
        })
        .collect();
    app.add_middleware(scoped("/dashboard", sessions));
    app.route("/", |_req: Request| async { "Hello, World!" });
    app.route("/json", |_req: Request| async {
        Response::json(&Message {
            message: "Hello, World!",
        })
    });
    app.route("/dashboard", |_req: Request| async {
        let session = get_session()?;
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        Ok::<_, chirp::Error>(format!("Visits: {visits}"))
    });
    app.route("/dashboard/read", |_req: Request| async {
        let visits = get_session()?.get::<u64>("visits").unwrap_or(0);
        Ok::<_, chirp::Error>(format!("Visits: {visits}"))
    });
    let rows = table.clone();
    app.route("/fortunes", move |_req: Request| {
        let fortunes = fortunes(&rows);
        async move { Template::new("fortunes.html", context! { fortunes => Serde(&fortunes) }) }
    });
    app.route("/fortunes/fragment", move |_req: Request| {
        let fortunes = fortunes(&table);
        async move {
            Fragment::new(
                "fortunes.html",
                "rows",
                context! { fortunes => Serde(&fortunes) },
            )
        }
    });
    if let Some(dir) = std::env::var_os("STATIC_DIR") {
        // As a route, not middleware: the other routes pay nothing for it.
        app.route(
            "/static/{path:path}",
            StaticFilesMiddleware::new("/static", dir)?,
        );
    }
    app.route("/sse/flood", |req: Request| async move {
        let n: u64 = req
            .query_param("n")
            .and_then(|n| n.parse().ok())
            .unwrap_or(1000);
        let events = futures_util::stream::iter(1..=n)
            .map(|i| Event::new().id(i.to_string()).data(i.to_string()));
        Sse::new(events)
    });
    app.route("/sse/idle", |_req: Request| async {
        Sse::new(futures_util::stream::pending::<Event>())
    });
    // The ext peers' limit (1 MiB messages and frames), which is also chirp's default: set
    // anyway so that the comparison does not hang on a default changing.
    app.route("/ws/echo", |req: Request| async move {
        Ok::<_, chirp::Error>(req.websocket()?.max_message_size(1 << 20).on_upgrade(
            |mut socket| async move {
                while let Some(Ok(msg)) = socket.recv().await {
                    // Pings are answered by recv itself; a Close ends the loop on the next one.
                    let data = matches!(msg, WsMessage::Text(_) | WsMessage::Binary(_));
                    if data && socket.feed(msg).await.is_err() {
                        break;
                    }
                }
            },
        ))
    });
    Ok(app)
}

fn main() -> Result<(), chirp::Error> {
    let addr = match std::env::args()
        .nth(1)
        .or_else(|| std::env::var("PORT").ok())
    {
        Some(port) => format!("127.0.0.1:{port}"),
        None => std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned()),
    };
    let workers = std::env::var("CHIRP_WORKERS")
        .ok()
        .and_then(|w| w.parse().ok())
        .unwrap_or_else(|| std::thread::available_parallelism().map_or(1, |n| n.get()));
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(workers)
        .enable_all()
        .build()?;
    runtime.block_on(async {
        let app = app_from_env().await?;
        eprintln!("chirp bench_app listening on http://{addr} ({workers} workers)");
        app.run(addr).await
    })
}
