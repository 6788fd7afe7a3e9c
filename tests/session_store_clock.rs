//! A server-side session store reports when it read a record, after its round trip; the
//! clock may have moved to the next second since the request began. That must not expire a
//! live session (issue 23: a Redis session was lost, now and then, at a second boundary,
//! and the benchmark's count changed from run to run with it). Deterministic: the store's
//! "round trip" moves the test's clock by one second.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use chirp::middleware::sessions::SessionMiddleware;
use chirp::sessions::{get_session, Clock, ManualClock, SessionConfig, SessionData};
use chirp::stores::{SessionRecord, SessionStore};
use chirp::testing::TestClient;
use chirp::{App, Error, Request};

const T0: u64 = 1_700_000_000;

/// The sessions by id, and the last id given.
type Sessions = (u64, HashMap<String, SessionData>);

/// Sessions in memory under a counter; every load takes a second (the clock moves).
struct SlowStore {
    clock: ManualClock,
    sessions: Mutex<Sessions>,
}

impl SessionStore for SlowStore {
    async fn load(&self, cookie: &str) -> Result<Option<SessionRecord>, Error> {
        let data = self.sessions.lock().unwrap().1.get(cookie).cloned();
        // The round trip crosses a second boundary; the record is read "now".
        self.clock.advance(1);
        Ok(data.map(|data| SessionRecord {
            data,
            issued_at: self.clock.now(),
        }))
    }

    async fn save(
        &self,
        data: &SessionData,
        _now: u64,
        previous: Option<&str>,
    ) -> Result<String, Error> {
        let mut inner = self.sessions.lock().unwrap();
        let id = match previous {
            Some(id) => id.to_owned(),
            None => {
                inner.0 += 1;
                format!("s{}", inner.0)
            }
        };
        inner.1.insert(id.clone(), data.clone());
        Ok(id)
    }

    async fn regenerate(&self, previous: &str) {
        self.sessions.lock().unwrap().1.remove(previous);
    }
}

#[tokio::test]
async fn a_read_that_crosses_a_second_does_not_expire_the_session() {
    let clock = ManualClock::new(T0);
    let store = SlowStore {
        clock: clock.clone(),
        sessions: Mutex::default(),
    };
    let config = SessionConfig {
        clock: Arc::new(clock.clone()),
        ..SessionConfig::new("a-secret-key-of-at-least-32-bytes!!")
    };
    let mut app = App::new();
    app.add_middleware(SessionMiddleware::with_store(config, store).unwrap());
    app.route("/dashboard", |_req: Request| async {
        let session = get_session()?;
        let visits = session.get::<u64>("visits").unwrap_or(0) + 1;
        session.insert("visits", visits);
        Ok::<_, Error>(format!("Visits: {visits}"))
    });
    let client = TestClient::new(app);
    for n in 1..=5 {
        assert_eq!(
            client.get("/dashboard").await.text(),
            format!("Visits: {n}")
        );
    }
    // One session all along: the same id, never regenerated.
    assert_eq!(client.cookie("chirp_session").as_deref(), Some("s1"));
}
