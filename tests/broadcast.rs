//! The broadcast hub in memory (`chirp::broadcast`, nothing to start): fan-out, topic
//! isolation, order, a slow subscriber told how much it lagged then given the newest, topics
//! removed with their last subscriber, publishing to nobody, many topics, concurrent
//! publishers and subscribers, the end of every subscription with the hub, and a subscription
//! sent as an SSE response.

use std::time::Duration;

use bytes::Bytes;
use chirp::broadcast::{BroadcastError, Hub, Missed, Subscription};
use chirp::sse::Event;
use chirp::testing::TestClient;
use chirp::{App, Request, State};

/// The next item, failing the test when none comes within a second.
async fn next(sub: &mut Subscription) -> Option<Result<Bytes, Missed>> {
    tokio::time::timeout(Duration::from_secs(1), sub.recv())
        .await
        .unwrap_or_else(|_| panic!("nothing received on {:?} within 1 s", sub.topic()))
}

/// The next message's text.
async fn text(sub: &mut Subscription) -> String {
    match next(sub).await {
        Some(Ok(bytes)) => String::from_utf8(bytes.to_vec()).unwrap(),
        other => panic!("expected a message on {:?}, got {other:?}", sub.topic()),
    }
}

/// Whether nothing is waiting for `sub`. One poll is enough: in memory, what was published
/// is in the topic's ring buffer when `publish` returns.
async fn quiet(sub: &mut Subscription) -> bool {
    use futures_util::FutureExt;
    sub.recv().now_or_never().is_none()
}

#[tokio::test]
async fn every_subscriber_gets_every_message_in_order() {
    let hub = Hub::new();
    let mut subs: Vec<_> = (0..50).map(|_| hub.subscribe("news")).collect();
    assert_eq!(hub.subscriber_count("news"), 50);
    for n in 0..100 {
        hub.publish("news", format!("m{n}")).await.unwrap();
    }
    for sub in &mut subs {
        for n in 0..100 {
            assert_eq!(text(sub).await, format!("m{n}"));
        }
        assert!(quiet(sub).await, "exactly once");
    }
}

#[tokio::test]
async fn topics_are_isolated() {
    let hub = Hub::new();
    let mut a = hub.subscribe("a");
    let mut b = hub.subscribe("b");
    // A prefix of another topic's name is another topic.
    let mut a2 = hub.subscribe("a:2");
    hub.publish("a", "for a").await.unwrap();
    hub.publish("b", "for b").await.unwrap();
    assert_eq!(text(&mut a).await, "for a");
    assert_eq!(text(&mut b).await, "for b");
    assert!(quiet(&mut a).await);
    assert!(quiet(&mut b).await);
    assert!(quiet(&mut a2).await);
}

#[tokio::test]
async fn a_subscriber_sees_only_what_is_published_after_it_subscribed() {
    let hub = Hub::new();
    let _early = hub.subscribe("t");
    hub.publish("t", "before").await.unwrap();
    let mut late = hub.subscribe("t");
    hub.publish("t", "after").await.unwrap();
    assert_eq!(text(&mut late).await, "after");
}

#[tokio::test]
async fn a_slow_subscriber_is_told_how_many_it_missed_then_gets_the_newest() {
    let hub = Hub::with_capacity(4).unwrap();
    let mut slow = hub.subscribe("t");
    let mut fast = hub.subscribe("t");
    for n in 1..=10 {
        hub.publish("t", n.to_string()).await.unwrap();
        // The fast one keeps up, and is never told it lagged.
        assert_eq!(text(&mut fast).await, n.to_string());
    }
    assert_eq!(next(&mut slow).await, Some(Err(Missed::Lagged(6))));
    for n in 7..=10 {
        assert_eq!(text(&mut slow).await, n.to_string());
    }
    assert!(quiet(&mut slow).await);
    // And it goes on as any other subscriber.
    hub.publish("t", "11").await.unwrap();
    assert_eq!(text(&mut slow).await, "11");
    assert_eq!(text(&mut fast).await, "11");
}

#[tokio::test]
async fn a_lag_while_waiting_is_reported_too() {
    // The subscriber waits in `recv` (a future in progress, not the ring buffer read at
    // once), and the publisher overruns it before it runs again.
    let hub = Hub::with_capacity(2).unwrap();
    let mut sub = hub.subscribe("t");
    let waiting = tokio::spawn(async move {
        let first = sub.recv().await;
        (first, sub)
    });
    tokio::task::yield_now().await;
    for n in 1..=5 {
        hub.publish("t", n.to_string()).await.unwrap();
    }
    let (first, mut sub) = waiting.await.unwrap();
    // Depending on when the waiting task ran: it got "1" and then lagged by 2, or lagged by 3.
    match first {
        Some(Ok(one)) => {
            assert_eq!(one, "1");
            assert_eq!(next(&mut sub).await, Some(Err(Missed::Lagged(2))));
        }
        other => assert_eq!(other, Some(Err(Missed::Lagged(3)))),
    }
    assert_eq!(text(&mut sub).await, "4");
    assert_eq!(text(&mut sub).await, "5");
}

#[tokio::test]
async fn a_capacity_of_zero_is_a_configuration_error() {
    let e = Hub::with_capacity(0).unwrap_err();
    assert!(e.message().contains("at least 1"), "{e}");
    assert!(Hub::with_capacity(1).is_ok());
}

#[tokio::test]
async fn a_topic_goes_with_its_last_subscriber() {
    let hub = Hub::new();
    let one = hub.subscribe("t");
    let two = hub.subscribe("t");
    let other = hub.subscribe("u");
    assert_eq!((hub.topic_count(), hub.subscriber_count("t")), (2, 2));
    drop(one);
    assert_eq!((hub.topic_count(), hub.subscriber_count("t")), (2, 1));
    drop(two);
    assert_eq!((hub.topic_count(), hub.subscriber_count("t")), (1, 0));
    drop(other);
    assert_eq!(hub.topic_count(), 0);

    // A subscription dropped while waiting in `recv` (a client gone from an SSE stream).
    let mut waiting = hub.subscribe("w");
    assert!(quiet(&mut waiting).await);
    assert_eq!(hub.topic_count(), 1);
    drop(waiting);
    assert_eq!(hub.topic_count(), 0);

    // A topic made again after it went works as new.
    let mut again = hub.subscribe("t");
    hub.publish("t", "x").await.unwrap();
    assert_eq!(text(&mut again).await, "x");
}

#[tokio::test]
async fn publishing_to_nobody_is_fine_and_leaves_nothing() {
    let hub = Hub::new();
    for n in 0..1000 {
        hub.publish(&format!("nobody:{n}"), "x").await.unwrap();
    }
    assert_eq!(hub.topic_count(), 0);
}

#[tokio::test]
async fn many_one_off_topics_leave_nothing_behind() {
    let hub = Hub::new();
    for n in 0..10_000 {
        let mut sub = hub.subscribe(&format!("user:{n}"));
        hub.publish(&format!("user:{n}"), n.to_string())
            .await
            .unwrap();
        assert_eq!(text(&mut sub).await, n.to_string());
    }
    assert_eq!(hub.topic_count(), 0);
}

#[tokio::test]
async fn many_topics_at_once_each_get_their_own() {
    let hub = Hub::new();
    let mut subs: Vec<_> = (0..1000).map(|n| hub.subscribe(&format!("t{n}"))).collect();
    assert_eq!(hub.topic_count(), 1000);
    for n in (0..1000).rev() {
        hub.publish(&format!("t{n}"), n.to_string()).await.unwrap();
    }
    for (n, sub) in subs.iter_mut().enumerate() {
        assert_eq!(text(sub).await, n.to_string());
        assert!(quiet(sub).await, "one message each");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn concurrent_publishers_and_subscribers() {
    const PUBLISHERS: usize = 8;
    const EACH: usize = 500;
    // Room for everything: this test is about concurrency, not lag.
    let hub = Hub::with_capacity(PUBLISHERS * EACH).unwrap();
    let subscribers: Vec<_> = (0..4)
        .map(|_| {
            let mut sub = hub.subscribe("busy");
            tokio::spawn(async move {
                // Each publisher's messages, in its order.
                let mut seen = vec![Vec::new(); PUBLISHERS];
                for _ in 0..PUBLISHERS * EACH {
                    let bytes = next(&mut sub).await.unwrap().unwrap();
                    let text = std::str::from_utf8(&bytes).unwrap();
                    let (p, n) = text.split_once(':').unwrap();
                    seen[p.parse::<usize>().unwrap()].push(n.parse::<usize>().unwrap());
                }
                assert!(quiet(&mut sub).await, "nothing twice");
                seen
            })
        })
        .collect();
    // Churn: subscriptions made and dropped on the same and other topics meanwhile.
    let churn = {
        let hub = hub.clone();
        tokio::spawn(async move {
            for n in 0..2000 {
                let a = hub.subscribe("busy");
                let b = hub.subscribe(&format!("churn:{}", n % 7));
                tokio::task::yield_now().await;
                drop((a, b));
            }
        })
    };
    let publishers: Vec<_> = (0..PUBLISHERS)
        .map(|p| {
            let hub = hub.clone();
            tokio::spawn(async move {
                for n in 0..EACH {
                    hub.publish("busy", format!("{p}:{n}")).await.unwrap();
                    if n % 50 == 0 {
                        tokio::task::yield_now().await;
                    }
                }
            })
        })
        .collect();
    for p in publishers {
        p.await.unwrap();
    }
    churn.await.unwrap();
    let in_order: Vec<usize> = (0..EACH).collect();
    for s in subscribers {
        for (p, seen) in s.await.unwrap().into_iter().enumerate() {
            assert_eq!(
                seen, in_order,
                "publisher {p}'s messages, each once, in order"
            );
        }
    }
    // Only the "busy" subscribers' topic is gone with them; the churn left nothing.
    assert_eq!(hub.topic_count(), 0);
}

#[tokio::test]
async fn subscriptions_end_with_the_hub_after_what_they_have_not_read() {
    let hub = Hub::new();
    let clone = hub.clone();
    let mut sub = hub.subscribe("t");
    hub.publish("t", "last words").await.unwrap();
    // A clone keeps the hub alive.
    drop(hub);
    clone.publish("t", "still here").await.unwrap();
    drop(clone);
    assert_eq!(text(&mut sub).await, "last words");
    assert_eq!(text(&mut sub).await, "still here");
    assert_eq!(next(&mut sub).await, None);
    assert_eq!(next(&mut sub).await, None, "ended stays ended");

    // One waiting in `recv` when the hub goes is woken with the end.
    let hub = Hub::new();
    let mut sub = hub.subscribe("t");
    let waiting = tokio::spawn(async move { sub.recv().await });
    tokio::task::yield_now().await;
    drop(hub);
    assert_eq!(
        tokio::time::timeout(Duration::from_secs(1), waiting)
            .await
            .expect("woken when the hub went")
            .unwrap(),
        None
    );
}

#[tokio::test]
async fn a_subscription_is_a_stream() {
    use futures_util::StreamExt;
    let hub = Hub::with_capacity(2).unwrap();
    let sub = hub.subscribe("t");
    for n in 1..=3 {
        hub.publish("t", n.to_string()).await.unwrap();
    }
    drop(hub);
    let items: Vec<_> = sub.collect().await;
    assert_eq!(
        items,
        [
            Err(Missed::Lagged(1)),
            Ok(Bytes::from("2")),
            Ok(Bytes::from("3"))
        ]
    );
}

#[tokio::test]
async fn recv_is_cancel_safe() {
    let hub = Hub::new();
    let mut sub = hub.subscribe("t");
    // A receive abandoned before anything came (a select! that took another branch)...
    assert!(tokio::time::timeout(Duration::from_millis(20), sub.recv())
        .await
        .is_err());
    hub.publish("t", "1").await.unwrap();
    hub.publish("t", "2").await.unwrap();
    // ...loses nothing.
    assert_eq!(text(&mut sub).await, "1");
    assert_eq!(text(&mut sub).await, "2");
}

#[tokio::test]
async fn publish_json() {
    #[derive(serde::Serialize)]
    struct Score {
        home: u8,
        away: u8,
    }
    let hub = Hub::new();
    let mut sub = hub.subscribe("score");
    hub.publish_json("score", &Score { home: 2, away: 1 })
        .await
        .unwrap();
    assert_eq!(text(&mut sub).await, r#"{"home":2,"away":1}"#);

    // A value serde cannot make JSON (a map with non-string keys): an error, nothing sent.
    let bad: std::collections::HashMap<Vec<u8>, u8> = [(vec![1], 1)].into();
    let e = hub.publish_json("score", &bad).await.unwrap_err();
    assert!(matches!(e, BroadcastError::Json(_)), "{e:?}");
    assert!(e.to_string().contains("nothing was published"), "{e}");
    assert!(quiet(&mut sub).await);
}

#[test]
fn hubs_and_subscriptions_go_anywhere() {
    fn anywhere<T: Send + Sync + Unpin + 'static>() {}
    anywhere::<Hub>();
    anywhere::<Subscription>();
    anywhere::<BroadcastError>();
    anywhere::<Missed>();
}

#[tokio::test]
async fn missed_says_what_to_do() {
    let lagged = Missed::Lagged(3).to_string();
    assert!(
        lagged.contains("missed 3") && lagged.contains("resync"),
        "{lagged}"
    );
    assert_eq!(Missed::Lagged(3).count(), Some(3));
    assert_eq!(Missed::Reconnected.count(), None);
    assert!(Missed::Reconnected.to_string().contains("resync"));
    let _: &dyn std::error::Error = &Missed::Reconnected;
}

/// An app whose `/live` streams the hub's topic `live` as SSE, and `POST /live` publishes.
fn live_app(hub: Hub) -> App {
    let mut app = App::new();
    app.state(hub);
    app.route("/live", |_req: Request, hub: State<Hub>| async move {
        hub.subscribe("live").into_sse(|bytes| {
            Event::new()
                .event("update")
                .data(String::from_utf8_lossy(&bytes))
        })
    });
    app.post("/live", |req: Request, hub: State<Hub>| async move {
        hub.publish("live", req.into_body()).await?;
        Ok::<_, chirp::Error>("ok")
    });
    app
}

#[tokio::test]
async fn a_subscription_as_an_sse_response() {
    let hub = Hub::with_capacity(2).unwrap();
    let client = TestClient::new(live_app(hub.clone()));
    let mut events = client.get_sse("/live").await;
    assert_eq!(hub.subscriber_count("live"), 1);
    client.post("/live", "one\ntwo").await;
    let event = events.next_event(Duration::from_secs(1)).await.unwrap();
    assert_eq!(event.event, "update");
    assert_eq!(event.data, "one\ntwo");

    // Overrun while the response waits: a `resync` event saying how many, then the newest.
    // (Published directly: the reader is not polled meanwhile, so its stream lags.)
    for n in 1..=5 {
        hub.publish("live", n.to_string()).await.unwrap();
    }
    let got = events.take(3, Duration::from_secs(1)).await;
    let got: Vec<_> = got
        .iter()
        .map(|e| (e.event.as_str(), e.data.as_str()))
        .collect();
    assert_eq!(got, [("resync", "3"), ("update", "4"), ("update", "5")]);

    // The client gone, the subscription (and the topic) go too.
    drop(events);
    let start = std::time::Instant::now();
    while hub.topic_count() != 0 {
        assert!(start.elapsed() < Duration::from_secs(2), "the topic stayed");
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}
