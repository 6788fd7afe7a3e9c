//! The Redis session store against a real redis-server: sessions shared by two instances,
//! signed ids (a forged one never reaches Redis), TTLs, logout leaving nothing behind, round
//! trips per request, and Redis stopped and restarted under a running server (503, then
//! success again).
//!
//! `make test` starts a redis-server for these (CHIRP_REDIS_URL) and builds with
//! `--features redis`; the fault test starts its own from the PATH. Without Redis they fail
//! in CI (`CI=true`) and are skipped elsewhere, saying so.
#![cfg(feature = "redis")]

mod common;

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use chirp::middleware::auth::{login, logout, AuthConfig, AuthMiddleware, AuthUser};
use chirp::middleware::sessions::{
    get_session, RedisStore, SaveMode, SessionConfig, SessionMiddleware,
};
use chirp::testing::TestClient;
use chirp::{App, Request};
use common::TestServer;

const SECRET: &str = "redis-test-secret-0123456789abcdef0123456789";

/// The Redis to use, or `None` (skipped, said so) outside CI.
fn redis_url(test: &str) -> Option<String> {
    match std::env::var("CHIRP_REDIS_URL") {
        Ok(url) => Some(url),
        Err(_) if std::env::var("CI").is_ok_and(|v| v == "true") => {
            panic!("CHIRP_REDIS_URL is not set: run the tests with `make test`, which starts Redis")
        }
        Err(_) => {
            eprintln!("SKIPPED {test}: no Redis (run `make test`, or set CHIRP_REDIS_URL)");
            None
        }
    }
}

#[derive(Clone)]
struct User(String);

impl AuthUser for User {
    fn id(&self) -> String {
        self.0.clone()
    }
}

fn config(prefix_ttl: u64) -> SessionConfig {
    let mut config = SessionConfig::new(SECRET);
    config.max_age = Duration::from_secs(prefix_ttl);
    config
}

/// An instance of the app: a visits counter, a read-only page, login and logout.
async fn instance(url: &str, prefix: &str, mode: SaveMode) -> App {
    let mut config = config(600);
    config.save_mode = mode;
    let store = RedisStore::connect(url, &config)
        .await
        .unwrap()
        .prefix(prefix);
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::with_store(config, store).unwrap());
    app.add_middleware(
        AuthMiddleware::new(
            AuthConfig::new().load_user(|id: String| async move { Some(User(id)) }),
        )
        .unwrap(),
    );
    app.route("/visit", |_req: Request| async {
        let session = get_session()?;
        let n = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", n);
        Ok::<_, chirp::Error>(format!("visits {n}"))
    });
    app.route("/read", |_req: Request| async {
        Ok::<_, chirp::Error>(format!(
            "visits {}",
            get_session()?.get::<u64>("visits").unwrap_or(0)
        ))
    });
    app.post("/login", |_req: Request| async {
        login(&User("u1".into()))?;
        Ok::<_, chirp::Error>("in")
    });
    app.post("/logout", |_req: Request| async {
        logout()?;
        Ok::<_, chirp::Error>("out")
    });
    app
}

async fn redis(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

async fn keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    redis::cmd("KEYS")
        .arg(format!("{prefix}*"))
        .query_async(conn)
        .await
        .unwrap()
}

/// `cmdstat_<name>` calls so far.
async fn calls(conn: &mut redis::aio::MultiplexedConnection, name: &str) -> u64 {
    let info: String = redis::cmd("INFO")
        .arg("commandstats")
        .query_async(conn)
        .await
        .unwrap();
    info.lines()
        .find(|l| l.starts_with(&format!("cmdstat_{name}:")))
        .and_then(|l| l.split("calls=").nth(1))
        .and_then(|v| v.split(',').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

#[tokio::test]
async fn two_instances_share_sessions_and_logout_leaves_nothing() {
    let Some(url) = redis_url("two_instances_share_sessions") else {
        return;
    };
    let prefix = "test:shared:";
    let mut conn = redis(&url).await;
    let a = TestClient::new(instance(&url, prefix, SaveMode::Always).await);
    assert_eq!(a.get("/visit").await.text(), "visits 1");
    let cookie = a.cookie("chirp_session").expect("a session cookie");
    // The second instance, with the same cookie: the visits go on.
    let b = TestClient::new(instance(&url, prefix, SaveMode::Always).await);
    b.set_cookie("chirp_session", &cookie);
    assert_eq!(b.get("/visit").await.text(), "visits 2");
    assert_eq!(a.get("/visit").await.text(), "visits 3");

    let stored = keys(&mut conn, prefix).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let key = &stored[0];
    assert_eq!(key.len(), prefix.len() + 32, "128-bit hex id: {key}");
    let ttl: i64 = redis::cmd("TTL")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert!((590..=600).contains(&ttl), "TTL {ttl}");
    let json: String = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(json, r#"{"visits":3}"#);

    // Login makes a new id and deletes the old key; logout leaves nothing.
    a.post("/login", "").await;
    let after_login = keys(&mut conn, prefix).await;
    assert_eq!(after_login.len(), 1);
    assert_ne!(&after_login[0], key, "a new id");
    a.post("/logout", "").await;
    assert!(
        keys(&mut conn, prefix).await.is_empty(),
        "logout leaves nothing in Redis"
    );
    // The old cookie, replayed on the other instance, is dead.
    b.set_cookie("chirp_session", &cookie);
    assert_eq!(b.get("/read").await.text(), "visits 0");
}

#[tokio::test]
async fn forged_ids_never_reach_redis_and_round_trips_are_few() {
    let Some(url) = redis_url("forged_ids_never_reach_redis") else {
        return;
    };
    let prefix = "test:trips:";
    let mut conn = redis(&url).await;
    let client = TestClient::new(instance(&url, prefix, SaveMode::OnChange).await);
    let before = calls(&mut conn, "getex").await;
    for forged in ["garbage", "eyJpZCI6IjAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwMDAwIn0.ZZZZZZ.AAAAAAAAAAAAAAAAAAAAAAAAAAA"] {
        client.set_cookie("chirp_session", forged);
        assert_eq!(client.get("/read").await.text(), "visits 0");
    }
    assert_eq!(
        calls(&mut conn, "getex").await,
        before,
        "a forged id made a Redis call"
    );
    client.clear_cookies();

    client.get("/visit").await; // makes the session: SET
    let (getex, set) = (
        calls(&mut conn, "getex").await,
        calls(&mut conn, "set").await,
    );
    assert_eq!(client.get("/visit").await.text(), "visits 2");
    assert_eq!(
        (
            calls(&mut conn, "getex").await - getex,
            calls(&mut conn, "set").await - set
        ),
        (1, 1),
        "a request that changes the session: 2 round trips"
    );
    let (getex, set) = (
        calls(&mut conn, "getex").await,
        calls(&mut conn, "set").await,
    );
    assert_eq!(client.get("/read").await.text(), "visits 2");
    assert_eq!(
        (
            calls(&mut conn, "getex").await - getex,
            calls(&mut conn, "set").await - set
        ),
        (1, 0),
        "a read-only request: 1 round trip (GETEX refreshes the TTL)"
    );
}

/// A redis-server of the test's own, stopped (by its PID) when dropped, also when the test
/// fails half-way.
struct OwnRedis(Child);

impl OwnRedis {
    /// Starts one on `port`, with nothing on disk.
    fn start(port: u16, dir: &std::path::Path) -> OwnRedis {
        let bin = std::env::var("CHIRP_REDIS_SERVER").unwrap_or_else(|_| "redis-server".into());
        let child = Command::new(bin)
            .args([
                "--port",
                &port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--dir",
            ])
            .arg(dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("redis-server starts (make test installs it)");
        OwnRedis(child)
    }

    fn stop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

async fn wait_up(url: &str) {
    let start = Instant::now();
    while redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .is_err()
    {
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "Redis did not start"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test]
async fn redis_stopped_then_restarted_under_a_running_server() {
    if redis_url("redis_stopped_then_restarted").is_none() {
        return;
    }
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dir = tempfile::tempdir().unwrap();
    let url = format!("redis://127.0.0.1:{port}");
    let mut redis_process = OwnRedis::start(port, dir.path());
    wait_up(&url).await;
    let server = TestServer::start(instance(&url, "test:fault:", SaveMode::Always).await).await;
    let get = |cookie: &str| format!("GET /visit HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n");
    let mut conn = server.connect().await;
    conn.send("GET /visit HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let res = conn.response().await;
    assert_eq!(res.text(), "visits 1");
    let cookie = res.cookie_pair();

    redis_process.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let mut conn = server.connect().await;
        conn.send(get(&cookie)).await;
        let res = conn.response().await;
        let took = started.elapsed();
        assert_eq!(res.status, 503, "{}", res.text());
        assert_eq!(res.text(), "session store unavailable");
        assert_eq!(res.header("retry-after"), Some("1"));
        assert!(took < Duration::from_secs(3), "answered in {took:?}");
    }

    let _redis_again = OwnRedis::start(port, dir.path());
    wait_up(&url).await;
    let start = Instant::now();
    loop {
        let mut conn = server.connect().await;
        conn.send(get(&cookie)).await;
        let res = conn.response().await;
        if res.status == 200 {
            // The data went with the old process (no persistence): a fresh count.
            assert_eq!(res.text(), "visits 1");
            break;
        }
        assert_eq!(res.status, 503);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no recovery after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// The login rate limit counted in Redis: two instances share the count.
#[tokio::test]
async fn two_instances_share_the_login_rate_limit() {
    use chirp::middleware::auth_rate_limit::{AuthRateLimit, RedisRateLimitStore};
    use chirp::middleware::sessions::ManualClock;
    let Some(url) = redis_url("two_instances_share_the_login_rate_limit") else {
        return;
    };
    // A prefix of this run's own: earlier runs' counts do not leak in.
    let prefix = format!("test:ratelimit:{}:", std::process::id());
    let clock = ManualClock::new(1_000_020); // on a window's edge: a whole window to go
    let mut instances = Vec::new();
    for _ in 0..2 {
        let store = RedisRateLimitStore::connect(&url)
            .await
            .unwrap()
            .prefix(prefix.clone());
        let mut app = App::new();
        app.add_middleware(
            AuthRateLimit::new()
                .limit(3, Duration::from_secs(60))
                .store(store)
                .clock(clock.clone()),
        );
        app.post("/login", |_req: Request| async { "wrong password" });
        instances.push(TestClient::new(app));
    }
    let (a, b) = (&instances[0], &instances[1]);
    assert_eq!(a.post("/login", "").await.status().as_u16(), 200);
    assert_eq!(b.post("/login", "").await.status().as_u16(), 200);
    assert_eq!(a.post("/login", "").await.status().as_u16(), 200);
    let res = b.post("/login", "").await;
    assert_eq!(
        res.status().as_u16(),
        429,
        "the 4th attempt, counted over both instances"
    );
    assert_eq!(res.header("retry-after"), Some("60"));
    clock.advance(60);
    assert_eq!(
        b.post("/login", "").await.status().as_u16(),
        200,
        "a new window"
    );
    let mut conn = redis(&url).await;
    let left = keys(&mut conn, &prefix).await;
    for key in &left {
        let ttl: i64 = redis::cmd("TTL")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        assert!((1..=120).contains(&ttl), "{key} TTL {ttl}");
    }
    assert!(!left.is_empty());
}
