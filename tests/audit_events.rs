//! The security events of the auth middleware that the Python framework names too:
//! `authz.policy.denied` (a policy of the app's said no), `authz.permission.denied` (a
//! permission the user lacks), `auth.token.invalid` (a Bearer token the app does not accept)
//! and `auth.session.version_mismatch` (the user's sessions were ended elsewhere). One test:
//! the event hook is process-wide.

use std::sync::{Arc, Mutex};

use chirp::middleware::auth::{
    get_user, login, requires, requires_policy, requires_policy_async, AuthConfig, AuthMiddleware,
    AuthUser,
};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::security::audit::{on_security_event, SecurityEvent};
use chirp::sessions::SessionConfig;
use chirp::testing::TestClient;
use chirp::{App, Error, Method, Request, StatusCode};

#[derive(Clone)]
struct User {
    id: String,
}

impl AuthUser for User {
    fn id(&self) -> String {
        self.id.clone()
    }
}

fn app(version: Arc<Mutex<u32>>) -> App {
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("audit-events-secret-0123456789abcdef")).unwrap(),
    );
    app.add_middleware(
        AuthMiddleware::new(
            AuthConfig::new()
                .load_user(|id: String| async move { Some(User { id }) })
                .verify_token(|token: String| async move {
                    (token == "good").then(|| User { id: "robot".into() })
                })
                .session_version(move |_u: &User| version.lock().unwrap().to_string()),
        )
        .unwrap(),
    );
    app.route_with("/login/{id}", &[Method::Post], |req: Request| async move {
        login(&User {
            id: req.param("id").unwrap_or_default().to_owned(),
        })?;
        Ok::<_, Error>("in")
    });
    app.route(
        "/policy",
        requires_policy(|_req, who| who.id == "ann", |_req: Request| async { "ok" }),
    );
    app.route(
        "/async-policy",
        requires_policy_async(
            |_req: &Request, who: &chirp::middleware::auth::Principal<'_>| {
                let allowed = who.id == "ann";
                async move { allowed }
            },
            |_req: Request| async { "ok" },
        ),
    );
    app.route(
        "/admin",
        requires(&["admin"], |_req: Request| async { "admin" }),
    );
    app.route("/who", |_req: Request| async {
        Ok::<_, Error>(get_user::<User>()?.map_or("-".to_owned(), |u| u.id))
    });
    app
}

#[tokio::test]
async fn policy_token_and_version_events_are_emitted_with_their_names() {
    let events: Arc<Mutex<Vec<SecurityEvent>>> = Arc::default();
    let sink = events.clone();
    on_security_event(move |e| sink.lock().unwrap().push(e.clone()));
    let named = |name: &str| -> Vec<SecurityEvent> {
        events
            .lock()
            .unwrap()
            .iter()
            .filter(|e| e.name == name)
            .cloned()
            .collect()
    };

    let version = Arc::new(Mutex::new(1));
    let c = TestClient::new(app(version.clone()));
    c.post("/login/bob", "").await;

    assert_eq!(c.get("/policy").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(c.get("/async-policy").await.status(), StatusCode::FORBIDDEN);
    let denied = named("authz.policy.denied");
    assert_eq!(denied.len(), 2, "both policies name their refusal");
    assert!(denied.iter().all(|e| e.user_id.as_deref() == Some("bob")));
    assert!(named("authz.permission.denied").is_empty());

    assert_eq!(c.get("/admin").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(named("authz.permission.denied").len(), 1);
    assert_eq!(named("authz.policy.denied").len(), 2);

    // A Bearer token the app refuses; a good one is no event.
    let bad = c
        .request(Method::Get, "/who")
        .header("authorization", "Bearer forged")
        .send()
        .await;
    assert_eq!(bad.text(), "-");
    let good = c
        .request(Method::Get, "/who")
        .header("authorization", "Bearer good")
        .send()
        .await;
    assert_eq!(good.text(), "robot");
    let invalid = named("auth.token.invalid");
    assert_eq!(invalid.len(), 1);
    assert_eq!(invalid[0].path, "/who");

    // "Log out everywhere": the session's version no longer matches, the request is anonymous
    // and the event names the user whose session it was.
    assert_eq!(c.get("/who").await.text(), "bob");
    assert!(named("auth.session.version_mismatch").is_empty());
    *version.lock().unwrap() = 2;
    assert_eq!(c.get("/who").await.text(), "-");
    let mismatch = named("auth.session.version_mismatch");
    assert_eq!(mismatch.len(), 1);
    assert_eq!(mismatch[0].user_id.as_deref(), Some("bob"));
}
