//! The documented "dashboard visits" example: a counter kept in a signed-cookie session.
//!
//! ```text
//! cargo run --release --example dashboard      # then open http://127.0.0.1:8000/dashboard
//! ```
//! Set `CHIRP_SECRET_KEY` to a long random value outside of a demo.

use chirp::middleware::sessions::{get_session, SessionConfig, SessionMiddleware};
use chirp::{App, Request};

#[tokio::main]
async fn main() -> Result<(), chirp::Error> {
    let secret = std::env::var("CHIRP_SECRET_KEY").unwrap_or_else(|_| "my-secret-key".to_owned());
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::new(SessionConfig::new(secret))?);

    app.route("/dashboard", |_req: Request| async {
        let session = get_session()?;
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        Ok::<_, chirp::Error>(format!("Visits: {visits}"))
    });

    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    println!("chirp dashboard listening on http://{addr}/dashboard");
    app.run(addr).await
}
