//! The smallest chirp app: `GET /` → `Hello, World!`, `GET /json` → `{"message":"Hello, World!"}`.
//!
//! ```text
//! cargo run --release --example hello          # listens on CHIRP_ADDR, default 127.0.0.1:8000
//! ```
//!
//! Warnings go to stdout (`RUST_LOG`, default `info`).

use chirp::{App, Request, Response};

#[tokio::main]
async fn main() -> Result<(), chirp::Error> {
    // Warnings (a random secret, say) and security events, to stdout; RUST_LOG picks the
    // level (default info). `try_init`: a test may have installed one already.
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .try_init();
    let mut app = App::new();
    app.route("/", |_req: Request| async { "Hello, World!" });
    app.route("/json", |_req: Request| async {
        Response::json(&serde_json::json!({ "message": "Hello, World!" }))
    });

    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    println!("chirp hello listening on http://{addr}");
    app.run(addr).await
}
