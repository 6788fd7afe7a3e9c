//! The Redis session store against a real redis-server: sessions shared by two instances,
//! signed ids (a forged one never reaches Redis), TTLs, logout leaving nothing behind, round
//! trips per request, revocation across instances, the idle and absolute timeouts, and Redis
//! stopped and restarted, or hung and resumed, under a running server (503, then success
//! again).
//!
//! `make test` starts a redis-server for these (CHIRP_REDIS_URL) and builds with
//! `--features redis`; the fault tests and the round-trip count start their own from the
//! PATH. Without Redis they fail
//! in CI (`CI=true`) and are skipped elsewhere, saying so.
#![cfg(feature = "redis")]

mod common;
// Not in `common`: the browser tests share that module and have no Redis client.
#[path = "common/own_redis.rs"]
mod own_redis;

use std::time::{Duration, Instant};

use chirp::middleware::auth::{current_user, login, logout, AuthConfig, AuthMiddleware, AuthUser};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{get_session, ManualClock, SaveMode, SessionConfig};
use chirp::stores::RedisStore;
use chirp::testing::TestClient;
use chirp::{App, Request};
use common::TestServer;
use own_redis::OwnRedis;

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

/// `/visit`: counts the visits in the session.
async fn visit(_req: Request) -> Result<String, chirp::Error> {
    let session = get_session()?;
    let n = session.get::<u64>("visits").unwrap_or(0) + 1;
    session.insert("visits", n);
    Ok(format!("visits {n}"))
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
    app.add_middleware(SessionMiddleware::with_store(config, store.clone()).unwrap());
    app.add_middleware(
        AuthMiddleware::new(
            AuthConfig::new().load_user(|id: String| async move { Some(User(id)) }),
        )
        .unwrap(),
    );
    app.route("/visit", visit);
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
    app.route("/me", |_req: Request| async {
        let user = current_user::<User>()?;
        Ok::<_, chirp::Error>(format!("user {}", user.0))
    });
    // "Log out everywhere": every session of the signed-in user, on every instance.
    let revoker = store.clone();
    app.post("/logout-everywhere", move |_req: Request| {
        let store = revoker.clone();
        async move {
            let user = current_user::<User>()?;
            let n = store.revoke_user(&user.0).await?;
            Ok::<_, chirp::Error>(format!("revoked {n}"))
        }
    });
    // A write that lands after a revocation made while it ran.
    app.route("/slow-visit", |_req: Request| async {
        let session = get_session()?;
        tokio::time::sleep(Duration::from_millis(400)).await;
        let n = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", n);
        Ok::<_, chirp::Error>(format!("visits {n}"))
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

/// The calls so far of each command in `names`.
async fn counts(conn: &mut redis::aio::MultiplexedConnection, names: &[&str]) -> Vec<u64> {
    let mut out = Vec::new();
    for name in names {
        out.push(calls(conn, name).await);
    }
    out
}

/// The calls since `before` (from [`counts`] of the same `names`).
async fn since(
    conn: &mut redis::aio::MultiplexedConnection,
    names: &[&str],
    before: &[u64],
) -> Vec<u64> {
    let now = counts(conn, names).await;
    now.iter().zip(before).map(|(a, b)| a - b).collect()
}

/// A key's TTL in seconds.
async fn ttl_of(conn: &mut redis::aio::MultiplexedConnection, key: &str) -> i64 {
    redis::cmd("TTL").arg(key).query_async(conn).await.unwrap()
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
    assert_eq!(
        a.cookie("chirp_session").as_deref(),
        Some(&*cookie),
        "the same id and user: the cookie is sent again as it was, not signed anew"
    );

    let stored = keys(&mut conn, prefix).await;
    assert_eq!(stored.len(), 1, "{stored:?}");
    let key = &stored[0];
    assert_eq!(key.len(), prefix.len() + 32, "128-bit hex id: {key}");
    let ttl = ttl_of(&mut conn, key).await;
    assert!((590..=600).contains(&ttl), "TTL {ttl}");
    let json: String = redis::cmd("GET")
        .arg(key)
        .query_async(&mut conn)
        .await
        .unwrap();
    // The session's data, and the middleware's creation and last-seen stamps: the absolute
    // timeout is on by default, and a server-side store keeps the creation time in the data
    // (the cookie only names the session).
    // Read in order with chirp's own `SessionData` (a `serde_json::Map` sorts its keys).
    let data = chirp::sessions::SessionData::from_json(&json).unwrap();
    assert_eq!(
        data.keys().collect::<Vec<_>>(),
        ["visits", "__created_at", "__last_seen_at"],
        "{json}"
    );
    assert_eq!(data.get::<u64>("visits"), Some(3), "{json}");

    // Login makes a new id and deletes the old key, and lists the id in the user's index;
    // logout leaves nothing.
    a.post("/login", "").await;
    let mut after_login = keys(&mut conn, prefix).await;
    after_login.sort();
    assert_eq!(after_login.len(), 2, "{after_login:?}");
    assert_ne!(&after_login[0], key, "a new id");
    assert_eq!(after_login[1], format!("{prefix}user:u1"));
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(&after_login[1])
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members, [after_login[0][prefix.len()..].to_owned()]);
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
    drop(url);
    // A Redis of its own: INFO commandstats counts every client's commands.
    let own = OwnRedis::start().await;
    let url = own.url.clone();
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
    const GETEX_SET: &[&str] = &["getex", "set"];
    let before = counts(&mut conn, GETEX_SET).await;
    assert_eq!(client.get("/visit").await.text(), "visits 2");
    assert_eq!(
        since(&mut conn, GETEX_SET, &before).await,
        [1, 1],
        "a request that changes the session: 2 round trips"
    );
    let before = counts(&mut conn, GETEX_SET).await;
    assert_eq!(client.get("/read").await.text(), "visits 2");
    assert_eq!(
        since(&mut conn, GETEX_SET, &before).await,
        [1, 0],
        "a read-only request: 1 round trip (GETEX refreshes the TTL)"
    );
    // The read-only request refreshed the TTL without rewriting the data.
    let key = keys(&mut conn, prefix).await.pop().unwrap();
    let _: () = redis::cmd("EXPIRE")
        .arg(&key)
        .arg(100)
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(client.get("/read").await.text(), "visits 2");
    let ttl = ttl_of(&mut conn, &key).await;
    assert!(
        (590..=600).contains(&ttl),
        "TTL {ttl} after a read-only request"
    );
    // Login: the old session read (GETEX), then its deletion, the new session and the user's
    // index in one transaction, sent as one round trip.
    const LOGIN: &[&str] = &["getex", "multi", "exec", "del", "set", "sadd", "eval"];
    let before = counts(&mut conn, LOGIN).await;
    client.post("/login", "").await;
    assert_eq!(since(&mut conn, LOGIN, &before).await, [1; 7], "{LOGIN:?}");
}

/// `GET /visit` with `cookie`, on a connection of its own: the response and how long it took.
async fn visit_with(server: &TestServer, cookie: &str) -> (common::RawResponse, Duration) {
    let started = Instant::now();
    let mut conn = server.connect().await;
    conn.send(format!(
        "GET /visit HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n"
    ))
    .await;
    let res = conn.response().await;
    (res, started.elapsed())
}

/// The first `GET /visit` with `cookie` that succeeds, once Redis is back: 503 until then,
/// for at most 10 s.
async fn first_success(server: &TestServer, cookie: &str) -> common::RawResponse {
    let start = Instant::now();
    loop {
        let (res, _) = visit_with(server, cookie).await;
        if res.status == 200 {
            return res;
        }
        assert_eq!(res.status, 503);
        assert!(
            start.elapsed() < Duration::from_secs(10),
            "no recovery after Redis came back"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// A first visit on `server`: the session cookie it sets.
async fn first_visit(server: &TestServer) -> String {
    let mut conn = server.connect().await;
    conn.send("GET /visit HTTP/1.1\r\nHost: t\r\n\r\n").await;
    let res = conn.response().await;
    assert_eq!(res.text(), "visits 1");
    res.cookie_pair()
}

#[tokio::test]
async fn redis_stopped_then_restarted_under_a_running_server() {
    if redis_url("redis_stopped_then_restarted").is_none() {
        return;
    }
    let mut redis_process = OwnRedis::start().await;
    let app = instance(&redis_process.url, "test:fault:", SaveMode::Always).await;
    let server = TestServer::start(app).await;
    let cookie = first_visit(&server).await;

    redis_process.stop();
    for _ in 0..3 {
        let (res, took) = visit_with(&server, &cookie).await;
        eprintln!("Redis stopped: {} in {took:?}", res.status);
        assert_eq!(res.status, 503, "{}", res.text());
        assert_eq!(res.text(), "session store unavailable");
        assert_eq!(res.header("retry-after"), Some("1"));
        // Refused at once (connection refused), not after the 1 s timeout.
        assert!(took < Duration::from_millis(500), "answered in {took:?}");
    }

    redis_process.restart().await;
    // The data went with the old process (no persistence): a fresh count.
    assert_eq!(first_success(&server, &cookie).await.text(), "visits 1");
}

/// The login rate limit counted in Redis: two instances share the count.
#[tokio::test]
async fn two_instances_share_the_login_rate_limit() {
    use chirp::middleware::auth_rate_limit::AuthRateLimitMiddleware;
    use chirp::stores::RedisRateLimitStore;
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
            AuthRateLimitMiddleware::new()
                .limit(3, Duration::from_secs(60))
                // Fixed windows, which this test's Retry-After and new window are about:
                // sliding ones became the default (issue 24).
                .sliding(false)
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
        let ttl = ttl_of(&mut conn, key).await;
        assert!((1..=120).contains(&ttl), "{key} TTL {ttl}");
    }
    assert!(!left.is_empty());
    // The refused 4th attempt was given back (RateLimitStore::undo): 3 in the first window,
    // and the new window's one.
    let mut values = Vec::new();
    for key in &left {
        let v: u64 = redis::cmd("GET")
            .arg(key)
            .query_async(&mut conn)
            .await
            .unwrap();
        values.push(v);
    }
    values.sort_unstable();
    assert_eq!(values, [1, 3], "{left:?}");
}

/// The store's session keys under `prefix` (not the user indexes).
async fn session_keys(conn: &mut redis::aio::MultiplexedConnection, prefix: &str) -> Vec<String> {
    let mut k = keys(conn, prefix).await;
    k.retain(|k| !k[prefix.len()..].starts_with("user:"));
    k
}

/// `revoke_user` logs a user out everywhere: two sessions of the same user, made on two
/// instances, are both dead after one of them asks, on both instances; the other user's
/// session lives on, and nothing of the user is left in Redis.
#[tokio::test]
async fn revoke_user_logs_out_everywhere_across_instances() {
    let Some(url) = redis_url("revoke_user_logs_out_everywhere") else {
        return;
    };
    let prefix = format!("test:revoke:{}:", std::process::id());
    let mut conn = redis(&url).await;
    let a = instance(&url, &prefix, SaveMode::Always).await;
    let b = instance(&url, &prefix, SaveMode::Always).await;
    let (laptop, phone) = (TestClient::new(a), TestClient::new(b));
    // The laptop signs in on A, the phone on B.
    assert_eq!(laptop.post("/login", "").await.text(), "in");
    assert_eq!(phone.post("/login", "").await.text(), "in");
    assert_eq!(laptop.get("/me").await.text(), "user u1");
    assert_eq!(phone.get("/me").await.text(), "user u1");
    let phone_cookie = phone.cookie("chirp_session").unwrap();
    // A third session, not signed in, on the laptop's instance.
    let other = TestClient::new(instance(&url, &prefix, SaveMode::Always).await);
    assert_eq!(other.get("/visit").await.text(), "visits 1");
    assert_eq!(session_keys(&mut conn, &prefix).await.len(), 3);

    // The laptop logs out everywhere, on A.
    assert_eq!(
        laptop.post("/logout-everywhere", "").await.text(),
        "revoked 2"
    );
    // The phone, on B, is signed out, and so is the laptop.
    assert_eq!(phone.get("/me").await.status().as_u16(), 401);
    assert_eq!(laptop.get("/me").await.status().as_u16(), 401);
    // The phone's old cookie, replayed on A, is dead too.
    let replay = TestClient::new(instance(&url, &prefix, SaveMode::Always).await);
    replay.set_cookie("chirp_session", &phone_cookie);
    assert_eq!(replay.get("/me").await.status().as_u16(), 401);
    assert_eq!(
        other.get("/visit").await.text(),
        "visits 2",
        "others keep theirs"
    );
    let left = keys(&mut conn, &prefix).await;
    assert_eq!(left.len(), 1, "only the other session is left: {left:?}");
}

/// A request that was running when its session was revoked saves nothing: the revocation
/// wins (`SET ... XX`).
#[tokio::test]
async fn a_request_in_flight_cannot_bring_a_revoked_session_back() {
    let Some(url) = redis_url("a_request_in_flight_cannot_bring_back") else {
        return;
    };
    let prefix = format!("test:inflight:{}:", std::process::id());
    let mut conn = redis(&url).await;
    let server = TestServer::start(instance(&url, &prefix, SaveMode::Always).await).await;
    let mut c = server.connect().await;
    c.send("POST /login HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n")
        .await;
    let cookie = c.response().await.cookie_pair();
    let slow = {
        let mut c = server.connect().await;
        let cookie = cookie.clone();
        tokio::spawn(async move {
            c.send(format!(
                "GET /slow-visit HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n"
            ))
            .await;
            c.response().await
        })
    };
    tokio::time::sleep(Duration::from_millis(100)).await;
    let store = RedisStore::connect(&url, &config(600))
        .await
        .unwrap()
        .prefix(prefix.clone());
    assert_eq!(store.revoke_user("u1").await.unwrap(), 1);
    let res = slow.await.unwrap();
    assert_eq!(res.status, 200);
    assert!(
        keys(&mut conn, &prefix).await.is_empty(),
        "the late write brought the session back"
    );
    let mut c = server.connect().await;
    c.send(format!(
        "GET /me HTTP/1.1\r\nHost: t\r\nCookie: {cookie}\r\n\r\n"
    ))
    .await;
    assert_eq!(c.response().await.status, 401);
}

/// A user's index holds live sessions only: ids whose session expired are dropped at the next
/// login.
#[tokio::test]
async fn the_user_index_is_pruned_at_login() {
    let Some(url) = redis_url("the_user_index_is_pruned_at_login") else {
        return;
    };
    let prefix = format!("test:prune:{}:", std::process::id());
    let mut conn = redis(&url).await;
    let app = || instance(&url, &prefix, SaveMode::Always);
    let first = TestClient::new(app().await);
    first.post("/login", "").await;
    let expired = session_keys(&mut conn, &prefix).await;
    assert_eq!(expired.len(), 1);
    // The first session expires (its key goes, as a TTL would take it).
    let _: () = redis::cmd("DEL")
        .arg(&expired[0])
        .query_async(&mut conn)
        .await
        .unwrap();
    let second = TestClient::new(app().await);
    second.post("/login", "").await;
    let live = session_keys(&mut conn, &prefix).await;
    let members: Vec<String> = redis::cmd("SMEMBERS")
        .arg(format!("{prefix}user:u1"))
        .query_async(&mut conn)
        .await
        .unwrap();
    assert_eq!(members, [live[0][prefix.len()..].to_owned()]);
}

/// The idle and absolute timeouts with the Redis store: enforced on the manual clock (a
/// session past either is empty although Redis still has it), and each key's TTL is what the
/// timeouts leave, so Redis drops such sessions by itself.
#[tokio::test]
async fn idle_and_absolute_timeouts_with_redis_ttls() {
    let Some(url) = redis_url("idle_and_absolute_timeouts") else {
        return;
    };
    let prefix = format!("test:timeouts:{}:", std::process::id());
    let mut conn = redis(&url).await;
    let clock = ManualClock::new(2_000_000_000);
    let mut config = config(600);
    config.idle_timeout = Some(Duration::from_secs(30));
    config.absolute_timeout = Some(Duration::from_secs(100));
    config.clock = std::sync::Arc::new(clock.clone());
    let store = RedisStore::connect(&url, &config)
        .await
        .unwrap()
        .prefix(prefix.clone());
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::with_store(config, store).unwrap());
    app.route("/visit", visit);
    let client = TestClient::new(app);
    let ttl = |conn: &mut redis::aio::MultiplexedConnection| {
        let prefix = prefix.clone();
        let mut conn = conn.clone();
        async move {
            let k = session_keys(&mut conn, &prefix).await;
            assert_eq!(k.len(), 1, "{k:?}");
            let ttl = ttl_of(&mut conn, &k[0]).await;
            (k[0].clone(), ttl)
        }
    };

    assert_eq!(client.get("/visit").await.text(), "visits 1");
    let (first, t) = ttl(&mut conn).await;
    assert!((29..=30).contains(&t), "idle timeout as the TTL: {t}");
    // Within the idle timeout, three times: 75 s old in all.
    for n in 2..=4 {
        clock.advance(25);
        assert_eq!(client.get("/visit").await.text(), format!("visits {n}"));
    }
    let (_, t) = ttl(&mut conn).await;
    assert!(
        (24..=25).contains(&t),
        "25 s left of the absolute timeout: {t}"
    );
    // Past the absolute timeout (104 s old), though seen 29 s ago: a new session.
    clock.advance(29);
    assert_eq!(client.get("/visit").await.text(), "visits 1");
    let (second, _) = ttl(&mut conn).await;
    assert_ne!(first, second, "a new id, not the expired one brought back");

    // Idle past 30 s: a new session again, though Redis (on its own clock) still has it.
    clock.advance(31);
    assert_eq!(client.get("/visit").await.text(), "visits 1");
}

/// A Redis that hangs (SIGSTOP: connected, never answering) under a running server: each
/// request gets 503 once the store's timeout is up, not later and never a hang; after SIGCONT
/// requests succeed again, the session intact.
#[tokio::test]
async fn redis_hung_then_resumed_under_a_running_server() {
    if redis_url("redis_hung_then_resumed").is_none() {
        return;
    }
    let redis_process = OwnRedis::start().await;
    let config = config(600);
    let store = RedisStore::connect(&redis_process.url, &config)
        .await
        .unwrap()
        .prefix("test:hung:")
        .timeout(Duration::from_millis(300));
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::with_store(config, store).unwrap());
    app.route("/visit", visit);
    let server = TestServer::start(app).await;
    let cookie = first_visit(&server).await;

    redis_process.signal("-STOP");
    for _ in 0..2 {
        let (res, took) = visit_with(&server, &cookie).await;
        eprintln!("Redis hung: {} in {took:?}", res.status);
        assert_eq!(res.status, 503, "{}", res.text());
        assert_eq!(res.header("retry-after"), Some("1"));
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
            "answered in {took:?}, the timeout being 300 ms"
        );
    }
    redis_process.signal("-CONT");
    assert_eq!(
        first_success(&server, &cookie).await.text(),
        "visits 2",
        "the session outlived the hang"
    );
}

/// HMACs computed on this thread since `before`: (verifications, signatures).
fn hmacs_since(before: (u64, u64)) -> (u64, u64) {
    let now = chirp::__bench::hmac_counts();
    (now.0 - before.0, now.1 - before.1)
}

/// Issue 23: the Redis path's cost in HMACs, counted (the same on every run, unlike a
/// timed or instruction figure): a request whose session changed but kept its id and user
/// verifies its cookie at most once and signs nothing (the cookie is sent again as it came),
/// and so does one that only read its session; two cookies taking turns (no reuse of the
/// last verification) cost exactly one verification each.
#[test]
fn hmacs_per_request_on_the_redis_path() {
    let Some(url) = redis_url("hmacs_per_request_on_the_redis_path") else {
        return;
    };
    // One thread: the counters are per thread, and every poll of these requests runs here.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let prefix = "test:hmacs:";
        let mut conn = redis(&url).await;
        for key in keys(&mut conn, prefix).await {
            let _: () = redis::cmd("DEL")
                .arg(&key)
                .query_async(&mut conn)
                .await
                .unwrap();
        }
        let a = TestClient::new(instance(&url, prefix, SaveMode::OnChange).await);
        let before = chirp::__bench::hmac_counts();
        assert_eq!(a.get("/visit").await.text(), "visits 1");
        assert_eq!(hmacs_since(before), (0, 1), "a new session: one signature");
        let cookie = a.cookie("chirp_session").unwrap();
        for n in 2..=6 {
            let before = chirp::__bench::hmac_counts();
            assert_eq!(a.get("/visit").await.text(), format!("visits {n}"));
            let (verified, signed) = hmacs_since(before);
            assert!(verified <= 1, "request {n}: {verified} verifications");
            assert_eq!(
                signed, 0,
                "request {n}: an unchanged cookie is not signed again"
            );
            assert_eq!(a.cookie("chirp_session").as_deref(), Some(cookie.as_str()));
        }
        for _ in 0..3 {
            let before = chirp::__bench::hmac_counts();
            assert_eq!(a.get("/read").await.text(), "visits 6");
            let (verified, signed) = hmacs_since(before);
            assert!(
                verified <= 1 && signed == 0,
                "read-only: {verified} / {signed}"
            );
        }
        // A second session: the two cookies take turns, so no request finds its cookie the
        // last one verified on this thread.
        let b = TestClient::new(instance(&url, prefix, SaveMode::OnChange).await);
        assert_eq!(b.get("/visit").await.text(), "visits 1");
        // (b's first request had no cookie to verify: a's is still the last one verified.)
        assert_eq!(a.get("/visit").await.text(), "visits 7");
        for n in 2..=4 {
            for (client, expected) in [(&b, n), (&a, 6 + n)] {
                let before = chirp::__bench::hmac_counts();
                assert_eq!(
                    client.get("/visit").await.text(),
                    format!("visits {expected}")
                );
                assert_eq!(
                    hmacs_since(before),
                    (1, 0),
                    "one verification, no signature"
                );
            }
        }
    });
}
