//! Server-Sent Events: `GET /events` sends an event named `tick` every
//! `CHIRP_SSE_INTERVAL_MS` milliseconds (default 1000), with `id: n` and `data: n` for
//! n = 1, 2, ...; a browser that reconnects (sending `Last-Event-ID`) resumes after the last
//! id it saw. `GET /` is a page that shows the ticks with `EventSource`.
//!
//! ```text
//! cargo run --release --example sse            # listens on CHIRP_ADDR, default 127.0.0.1:8000
//! curl -N http://127.0.0.1:8000/events
//! ```

use std::time::Duration;

use chirp::sse::{Event, Sse};
use chirp::{App, Request, Response};

const PAGE: &str = r#"<!doctype html>
<html lang="en">
<meta charset="utf-8">
<title>chirp SSE</title>
<h1>Ticks</h1>
<p>Last tick: <output id="last">none yet</output></p>
<ul id="ticks"></ul>
<script>
  const source = new EventSource("/events");
  source.addEventListener("tick", (e) => {
    document.getElementById("last").textContent = e.data;
    const li = document.createElement("li");
    li.textContent = `tick ${e.data} (id ${e.lastEventId})`;
    document.getElementById("ticks").prepend(li);
  });
</script>
</html>
"#;

/// The app, for `main` and for the tests (`tests/streaming.rs`).
pub fn app(interval: Duration) -> App {
    let mut app = App::new();
    app.route("/", |_req: Request| async { Response::html(PAGE) });
    app.route("/events", move |req: Request| async move {
        // Resume after the last id the browser saw, if it says.
        let after: u64 = req
            .last_event_id()
            .and_then(|id| id.parse().ok())
            .unwrap_or(0);
        let mut ticker = tokio::time::interval_at(tokio::time::Instant::now() + interval, interval);
        ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let ticks = futures_util::stream::unfold((after, ticker), |(n, mut ticker)| async move {
            ticker.tick().await;
            let n = n + 1;
            let event = Event::new()
                .event("tick")
                .id(n.to_string())
                .data(n.to_string());
            Some((event, (n, ticker)))
        });
        Sse::new(ticks)
    });
    app
}

// Public: `tests/shutdown.rs` runs it in a process of its own and sends it SIGTERM.
#[allow(dead_code)] // the other tests include this file for `app` alone
#[tokio::main]
pub async fn main() -> Result<(), chirp::Error> {
    // Warnings (a random secret, say) and security events, to stdout; RUST_LOG picks the
    // level (default info). `try_init`: a test may have installed one already.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let ms = match std::env::var("CHIRP_SSE_INTERVAL_MS") {
        Ok(v) => v.parse::<u64>().map_err(|_| {
            chirp::ConfigurationError::new(format!(
                "CHIRP_SSE_INTERVAL_MS must be a number of milliseconds, not {v:?}"
            ))
        })?,
        Err(_) => 1000,
    };
    if ms == 0 {
        return Err(
            chirp::ConfigurationError::new("CHIRP_SSE_INTERVAL_MS must be at least 1").into(),
        );
    }
    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    println!("chirp SSE example on http://{addr} (a tick every {ms} ms at /events)");
    app(Duration::from_millis(ms)).run(addr).await
}
