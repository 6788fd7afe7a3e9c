//! The documented "dashboard visits" example: a counter kept in the session.
//!
//! ```text
//! cargo run --release --example dashboard      # then open http://127.0.0.1:8000/dashboard
//! ```
//!
//! - `GET /dashboard` → `Visits: N`, counted in the session;
//! - `POST /logout` → ends the session (regenerated: a new id, the old one forgotten), `Logged out`.
//!
//! Environment:
//! - `CHIRP_SECRET_KEY`: the signing key, a long random value (`openssl rand -hex 32`); every
//!   instance behind one load balancer needs the same one. Unset, a random one is made at
//!   start, with a warning: sessions then end with the process and are not shared;
//! - `CHIRP_SESSION_STORE`: `cookie` (the default: the whole session, signed, in the cookie)
//!   or `redis` (only a signed id in the cookie, the data in Redis at `REDIS_URL`, default
//!   `redis://127.0.0.1:6379`; build with `--features redis`). See the README's "Scaling out";
//! - `CHIRP_ADDR`: where to listen (default `127.0.0.1:8000`);
//! - `CHIRP_INSTANCE`: a name sent back in `X-Chirp-Instance`, to see which of several
//!   instances answered (`scripts/scale-out.sh` names them `a` and `b`);
//! - `RUST_LOG`: what is logged (default `info`: warnings, such as the random secret's).

use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{get_session, regenerate_session, SessionConfig};
use chirp::stores::SessionStore;
use chirp::{App, ConfigurationError, Request, Response};

// Public: `tests/security_examples.rs` runs it in a process of its own.
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
    let (app, store) = app_from_env().await?;
    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".to_owned());
    println!("chirp dashboard ({store} sessions) listening on http://{addr}/dashboard");
    app.run(addr).await
}

/// The app as the environment asks, and the name of its session store.
pub async fn app_from_env() -> Result<(App, String), chirp::Error> {
    // Never a secret written here: anyone who reads it could sign any session.
    let secret = chirp::security::secret_key_from_env("CHIRP_SECRET_KEY")?;
    let config = SessionConfig::new(secret);
    let store = std::env::var("CHIRP_SESSION_STORE").unwrap_or_else(|_| "cookie".to_owned());
    let app = match store.as_str() {
        "cookie" => app(SessionMiddleware::new(config)?),
        "redis" => app(redis_sessions(config).await?),
        other => {
            return Err(ConfigurationError::new(format!(
                "CHIRP_SESSION_STORE={other:?}: use `cookie` (the default) or `redis`"
            ))
            .into())
        }
    };
    Ok((app, store))
}

/// The routes, over either store.
fn app<S: SessionStore>(sessions: SessionMiddleware<S>) -> App {
    let instance = std::env::var("CHIRP_INSTANCE").ok();
    let named = move |res: Response| match &instance {
        Some(name) => res.with_header("x-chirp-instance", name.clone()),
        None => res,
    };
    let mut app = App::new();
    app.add_middleware(sessions);
    let name = named.clone();
    app.route("/dashboard", move |_req: Request| {
        let name = name.clone();
        async move {
            let session = get_session()?;
            let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
            session.insert("visits", visits);
            Ok::<_, chirp::Error>(name(Response::text(format!("Visits: {visits}"))))
        }
    });
    app.post("/logout", move |_req: Request| {
        let name = named.clone();
        async move {
            regenerate_session()?.clear();
            Ok::<_, chirp::Error>(name(Response::text("Logged out")))
        }
    });
    app
}

#[cfg(feature = "redis")]
async fn redis_sessions(
    config: SessionConfig,
) -> Result<SessionMiddleware<chirp::stores::RedisStore>, chirp::Error> {
    let url = std::env::var("REDIS_URL").unwrap_or_else(|_| "redis://127.0.0.1:6379".to_owned());
    let store = chirp::stores::RedisStore::connect(&url, &config).await?;
    Ok(SessionMiddleware::with_store(config, store)?)
}

#[cfg(not(feature = "redis"))]
async fn redis_sessions(
    _config: SessionConfig,
) -> Result<SessionMiddleware<chirp::stores::CookieStore>, chirp::Error> {
    Err(ConfigurationError::new(
        "CHIRP_SESSION_STORE=redis needs the `redis` feature: cargo run --release --features redis --example dashboard",
    )
    .into())
}
