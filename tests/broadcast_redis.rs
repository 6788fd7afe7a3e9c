//! The broadcast hub over a real redis-server (feature `redis`): two hubs on one Redis (two
//! instances of an app) each deliver every message exactly once, whichever published it;
//! prefixes keep hubs apart and let anything publish to them; a slow subscriber lags as in
//! memory; Redis killed (publishes fail, naming the cause) and restarted on the same port
//! (subscribers are told to resync, then receive again, without subscribing again); a hung
//! Redis (publishes time out, the health check reconnects); the last hub's drop closing its
//! connections; and the constructors' errors.
//!
//! `make test` starts a redis-server for these (CHIRP_REDIS_URL) and builds with
//! `--features redis`; the fault tests start their own from the PATH (CHIRP_REDIS_SERVER to
//! name another binary). Without Redis they fail in CI (`CI=true`) and are skipped elsewhere,
//! saying so.
#![cfg(feature = "redis")]

mod common;
// Not in `common`: the browser tests share that module and have no Redis client.
#[path = "common/own_redis.rs"]
mod own_redis;

use std::sync::atomic::{AtomicU32, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use chirp::broadcast::{BroadcastError, Hub, Missed, RedisConfig, Subscription};
use own_redis::OwnRedis;

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

/// A prefix no other test (nor another run on the same Redis) uses.
fn prefix() -> String {
    static NEXT: AtomicU32 = AtomicU32::new(0);
    format!(
        "test:broadcast:{}:{}:",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    )
}

async fn hub(url: &str, prefix: &str) -> Hub {
    RedisConfig::new(url)
        .prefix(prefix)
        .connect()
        .await
        .unwrap()
}

/// The next item within `within`, failing the test otherwise.
async fn next_within(sub: &mut Subscription, within: Duration) -> Result<Bytes, Missed> {
    match tokio::time::timeout(within, sub.recv()).await {
        Ok(Some(item)) => item,
        Ok(None) => panic!("the subscription to {:?} ended", sub.topic()),
        Err(_) => panic!("nothing received on {:?} within {within:?}", sub.topic()),
    }
}

/// The next message's text, within 2 s.
async fn text(sub: &mut Subscription) -> String {
    match next_within(sub, Duration::from_secs(2)).await {
        Ok(bytes) => String::from_utf8(bytes.to_vec()).unwrap(),
        Err(missed) => panic!("expected a message on {:?}, got {missed:?}", sub.topic()),
    }
}

/// Whether nothing more comes within 300 ms (a message published through Redis takes a
/// round trip, well under that on loopback).
async fn quiet(sub: &mut Subscription) -> bool {
    tokio::time::timeout(Duration::from_millis(300), sub.recv())
        .await
        .is_err()
}

async fn raw(url: &str) -> redis::aio::MultiplexedConnection {
    redis::Client::open(url)
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap()
}

/// `PUBLISH channel payload` from a plain client: how many connections received it.
async fn raw_publish(
    conn: &mut redis::aio::MultiplexedConnection,
    channel: &str,
    payload: &str,
) -> u64 {
    redis::cmd("PUBLISH")
        .arg(channel)
        .arg(payload)
        .query_async(conn)
        .await
        .unwrap()
}

#[tokio::test]
async fn two_instances_deliver_each_message_exactly_once() {
    let Some(url) = redis_url("two_instances_deliver_each_message_exactly_once") else {
        return;
    };
    let prefix = prefix();
    // Room for the burst below, read by one subscriber after the other.
    let hub = |url, prefix| {
        RedisConfig::new(url)
            .prefix(prefix)
            .capacity(1024)
            .connect()
    };
    let a = hub(&url, &prefix).await.unwrap();
    let b = hub(&url, &prefix).await.unwrap();
    let mut on_a = [a.subscribe("room"), a.subscribe("room")];
    let mut on_b = b.subscribe("room");
    let mut elsewhere = b.subscribe("other room");

    a.publish("room", "from a").await.unwrap();
    b.publish("room", "from b").await.unwrap();
    a.publish_json("room", &[1, 2]).await.unwrap();
    for sub in on_a.iter_mut().chain([&mut on_b]) {
        // Once each (the publisher's own subscribers too: not once locally and once through
        // Redis), in the order Redis saw them.
        assert_eq!(text(sub).await, "from a");
        assert_eq!(text(sub).await, "from b");
        assert_eq!(text(sub).await, "[1,2]");
        assert!(quiet(sub).await, "a message came twice");
    }
    assert!(quiet(&mut elsewhere).await, "topics are isolated");

    // Many messages from both, interleaved: each subscriber gets all, each publisher's in order.
    let (pa, pb) = (a.clone(), b.clone());
    let publishing = tokio::spawn(async move {
        for n in 0..200 {
            pa.publish("room", format!("a{n}")).await.unwrap();
            pb.publish("room", format!("b{n}")).await.unwrap();
        }
    });
    for sub in on_a.iter_mut().chain([&mut on_b]) {
        let (mut from_a, mut from_b) = (Vec::new(), Vec::new());
        for _ in 0..400 {
            let text = text(sub).await;
            let n: u32 = text[1..].parse().unwrap();
            match &text[..1] {
                "a" => from_a.push(n),
                _ => from_b.push(n),
            }
        }
        assert_eq!(from_a, (0..200).collect::<Vec<_>>());
        assert_eq!(from_b, (0..200).collect::<Vec<_>>());
        assert!(quiet(sub).await, "a message came twice");
    }
    publishing.await.unwrap();
}

#[tokio::test]
async fn prefixes_keep_hubs_apart_and_anything_may_publish_to_a_topic() {
    let Some(url) = redis_url("prefixes_keep_hubs_apart") else {
        return;
    };
    let (p1, p2) = (prefix(), prefix());
    let one = hub(&url, &p1).await;
    let two = hub(&url, &p2).await;
    let mut sub_one = one.subscribe("t");
    let mut sub_two = two.subscribe("t");
    one.publish("t", "for one").await.unwrap();
    assert_eq!(text(&mut sub_one).await, "for one");
    assert!(
        quiet(&mut sub_two).await,
        "another prefix is another set of topics"
    );

    // A plain PUBLISH on `<prefix>t` (another program, redis-cli) reaches `t`'s subscribers;
    // one connection (the hub's pub/sub connection) received it.
    let mut conn = raw(&url).await;
    assert_eq!(
        raw_publish(&mut conn, &format!("{p2}t"), "from outside").await,
        1
    );
    assert_eq!(text(&mut sub_two).await, "from outside");
    assert!(quiet(&mut sub_one).await);

    // A prefix with glob characters matches only itself.
    let glob = format!("{p1}[x]*:");
    let literal = hub(&url, &glob).await;
    let mut sub = literal.subscribe("t");
    raw_publish(&mut conn, &format!("{p1}x-anything:t"), "not for it").await;
    raw_publish(&mut conn, &format!("{glob}t"), "for it").await;
    assert_eq!(text(&mut sub).await, "for it");
    assert!(quiet(&mut sub).await);
}

#[tokio::test]
async fn a_slow_subscriber_lags_as_in_memory() {
    let Some(url) = redis_url("a_slow_subscriber_lags_as_in_memory") else {
        return;
    };
    let prefix = prefix();
    let receiving = RedisConfig::new(&url)
        .prefix(&prefix)
        .capacity(2)
        .connect()
        .await
        .unwrap();
    let publishing = hub(&url, &prefix).await;
    let mut slow = receiving.subscribe("t");
    let mut fast = receiving.subscribe("t");
    for n in 1..=5 {
        publishing.publish("t", n.to_string()).await.unwrap();
        // Reading along: once it has "5", everything was delivered to `slow` too.
        assert_eq!(text(&mut fast).await, n.to_string());
    }
    assert_eq!(
        next_within(&mut slow, Duration::from_secs(1)).await,
        Err(Missed::Lagged(3))
    );
    assert_eq!(text(&mut slow).await, "4");
    assert_eq!(text(&mut slow).await, "5");
}

#[tokio::test]
async fn dropping_the_last_hub_closes_its_connections_and_ends_its_subscriptions() {
    let Some(url) = redis_url("dropping_the_last_hub_closes_its_connections") else {
        return;
    };
    let prefix = prefix();
    let hub = hub(&url, &prefix).await;
    let clone = hub.clone();
    let mut sub = hub.subscribe("t");
    let mut conn = raw(&url).await;
    let channel = format!("{prefix}t");
    assert_eq!(raw_publish(&mut conn, &channel, "1").await, 1);
    drop(hub);
    // The clone is the hub: still subscribed.
    assert_eq!(raw_publish(&mut conn, &channel, "2").await, 1);
    drop(clone);
    let start = Instant::now();
    while raw_publish(&mut conn, &channel, "3").await != 0 {
        assert!(
            start.elapsed() < Duration::from_secs(2),
            "the hub's pub/sub connection outlived the hub"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // What had arrived is still read, then the end.
    assert_eq!(text(&mut sub).await, "1");
    assert_eq!(text(&mut sub).await, "2");
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(1), sub.recv())
            .await
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn constructors_say_what_is_wrong() {
    // No Redis needed: nothing listens on a port just freed.
    let port = free_port();
    let url = format!("redis://:secret-password@127.0.0.1:{port}");
    let e = RedisConfig::new(&url).connect().await.unwrap_err();
    let text = e.to_string();
    assert!(matches!(e, BroadcastError::Unavailable(_)), "{e:?}");
    assert!(text.contains(&format!("127.0.0.1:{port}")), "{text}");
    assert!(text.contains("start Redis"), "{text}");
    assert!(
        !text.contains("secret-password"),
        "the password leaked: {text}"
    );

    let e = Hub::redis("not a url").await.unwrap_err();
    assert!(matches!(e, BroadcastError::Configuration(_)), "{e:?}");
    assert!(e.to_string().contains("URL"), "{e}");
    for (config, says) in [
        (RedisConfig::new(&url).prefix(""), "prefix"),
        (RedisConfig::new(&url).capacity(0), "capacity"),
        (RedisConfig::new(&url).timeout(Duration::ZERO), "timeout"),
    ] {
        let e = config.connect().await.unwrap_err();
        assert!(matches!(e, BroadcastError::Configuration(_)), "{e:?}");
        assert!(e.to_string().contains(says), "{e}");
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

#[tokio::test]
async fn redis_killed_then_restarted_under_two_instances() {
    if redis_url("redis_killed_then_restarted").is_none() {
        return;
    }
    let mut redis_process = OwnRedis::start().await;
    let prefix = prefix();
    let a = hub(&redis_process.url, &prefix).await;
    let b = hub(&redis_process.url, &prefix).await;
    let mut on_a = a.subscribe("t");
    let mut on_b = b.subscribe("t");
    a.publish("t", "before").await.unwrap();
    assert_eq!(text(&mut on_a).await, "before");
    assert_eq!(text(&mut on_b).await, "before");

    redis_process.stop();
    for _ in 0..3 {
        let started = Instant::now();
        let e = a.publish("t", "while down").await.unwrap_err();
        let took = started.elapsed();
        eprintln!("Redis down: {e} (in {took:?})");
        assert!(matches!(e, BroadcastError::Unavailable(_)), "{e:?}");
        let text = e.to_string();
        assert!(
            text.contains(&format!("127.0.0.1:{}", redis_process.port)),
            "{text}"
        );
        assert!(text.contains("not published"), "{text}");
        // Refused at once, not after the 1 s timeout.
        assert!(took < Duration::from_millis(500), "failed in {took:?}");
    }
    assert!(quiet(&mut on_a).await && quiet(&mut on_b).await);

    redis_process.restart().await;
    // Each hub reconnects by itself (backoff at most 5 s) and tells its subscribers to
    // resync: the same subscriptions, not new ones.
    for sub in [&mut on_a, &mut on_b] {
        assert_eq!(
            next_within(sub, Duration::from_secs(10)).await,
            Err(Missed::Reconnected)
        );
    }
    // Both publish at once, also the one that never failed (its idle connection broke too):
    // the hub re-made its publishing connection before telling subscribers to resync.
    a.publish("t", "after").await.unwrap();
    b.publish("t", "after, from b").await.unwrap();
    for sub in [&mut on_a, &mut on_b] {
        assert_eq!(text(sub).await, "after");
        assert_eq!(text(sub).await, "after, from b");
        assert!(quiet(sub).await, "a message came twice");
    }
    assert_eq!((a.subscriber_count("t"), b.subscriber_count("t")), (1, 1));
}

/// A Redis that hangs (SIGSTOP: connected, never answering): a publish fails once the
/// timeout is up, never later; the pub/sub connection's health check notices the silence
/// (a `PING` every 5 s without traffic) and reconnects once Redis answers again, telling the
/// subscribers to resync.
#[tokio::test]
async fn redis_hung_then_resumed() {
    if redis_url("redis_hung_then_resumed").is_none() {
        return;
    }
    let redis_process = OwnRedis::start().await;
    let hub = RedisConfig::new(&redis_process.url)
        .prefix(prefix())
        .timeout(Duration::from_millis(300))
        .connect()
        .await
        .unwrap();
    let mut sub = hub.subscribe("t");
    hub.publish("t", "before").await.unwrap();
    assert_eq!(text(&mut sub).await, "before");

    redis_process.signal("-STOP");
    let hung_at = Instant::now();
    for _ in 0..2 {
        let started = Instant::now();
        let e = hub.publish("t", "while hung").await.unwrap_err();
        let took = started.elapsed();
        eprintln!("Redis hung: {e} (in {took:?})");
        assert!(e.to_string().contains("no answer within 300ms"), "{e}");
        assert!(
            took >= Duration::from_millis(300) && took < Duration::from_millis(1500),
            "failed in {took:?}, the timeout being 300 ms"
        );
    }
    // Long enough for the health check's PING (5 s of silence, then 300 ms) to fail.
    tokio::time::sleep(Duration::from_millis(6500).saturating_sub(hung_at.elapsed())).await;
    redis_process.signal("-CONT");
    assert_eq!(
        next_within(&mut sub, Duration::from_secs(10)).await,
        Err(Missed::Reconnected)
    );
    hub.publish("t", "after").await.unwrap();
    // The publishes that timed out may have been applied once Redis resumed (a timeout
    // cannot know): skip them.
    loop {
        match text(&mut sub).await.as_str() {
            "while hung" => continue,
            "after" => break,
            other => panic!("unexpected {other:?}"),
        }
    }
}
