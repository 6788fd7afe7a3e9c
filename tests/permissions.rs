//! `requires` and `requires_policy`: 401 (or the login redirect) before 403, a 403 body that
//! names no permission, and the security events of login, logout and denials.

use std::sync::{Arc, Mutex};

use chirp::middleware::auth::{
    login, logout, requires, requires_policy, AuthConfig, AuthMiddleware, AuthUser,
};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::security::audit::{on_security_event, SecurityEvent};
use chirp::sessions::SessionConfig;
use chirp::testing::TestClient;
use chirp::{App, Method, Request, StatusCode};

#[derive(Clone)]
struct User {
    id: &'static str,
    roles: &'static [&'static str],
}

impl AuthUser for User {
    fn id(&self) -> String {
        self.id.to_owned()
    }
    fn permissions(&self) -> Vec<String> {
        self.roles.iter().map(|r| (*r).to_owned()).collect()
    }
}

const USERS: [User; 2] = [
    User {
        id: "ann",
        roles: &["admin", "editor"],
    },
    User {
        id: "bob",
        roles: &["editor"],
    },
];

fn app() -> App {
    let mut app = App::new();
    app.add_middleware(
        SessionMiddleware::new(SessionConfig::new("permissions-test-secret-0123456789")).unwrap(),
    );
    app.add_middleware(
        AuthMiddleware::new(
            AuthConfig::new()
                .load_user(|id: String| async move { USERS.iter().find(|u| u.id == id).cloned() }),
        )
        .unwrap(),
    );
    app.route_with("/login/{id}", &[Method::Post], |req: Request| async move {
        let user = USERS
            .iter()
            .find(|u| Some(u.id) == req.param("id"))
            .cloned()
            .unwrap();
        login(&user)?;
        Ok::<_, chirp::Error>("in")
    });
    app.post("/logout", |_req: Request| async {
        logout()?;
        Ok::<_, chirp::Error>("out")
    });
    app.route(
        "/admin",
        requires(&["admin"], |_req: Request| async { "admin page" }),
    );
    app.route(
        "/both",
        requires(&["admin", "editor"], |_req: Request| async { "both" }),
    );
    app.route(
        "/own/{id}",
        requires_policy(
            |req, who| req.param("id") == Some(who.id),
            |_req: Request| async { "yours" },
        ),
    );
    app
}

#[tokio::test]
async fn anonymous_gets_401_or_the_login_page_before_any_403() {
    let client = TestClient::new(app());
    let res = client
        .request(Method::Get, "/admin")
        .header("accept", "application/json")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::UNAUTHORIZED);
    let res = client
        .request(Method::Get, "/admin")
        .header("accept", "text/html")
        .send()
        .await;
    assert_eq!(res.status(), StatusCode::FOUND);
    assert!(res.header("location").unwrap().starts_with("/login?next="));
}

#[tokio::test]
async fn a_missing_permission_is_a_bare_403() {
    let seen: Arc<Mutex<Vec<SecurityEvent>>> = Arc::default();
    let sink = seen.clone();
    on_security_event(move |e| sink.lock().unwrap().push(e.clone()));

    let client = TestClient::new(app());
    assert_eq!(client.post("/login/bob", "").await.text(), "in");
    let res = client.get("/admin").await;
    assert_eq!(res.status(), StatusCode::FORBIDDEN);
    assert_eq!(res.text(), "Forbidden", "no permission name leaks");
    assert_eq!(client.get("/both").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(client.get("/own/bob").await.text(), "yours");
    assert_eq!(client.get("/own/ann").await.status(), StatusCode::FORBIDDEN);
    assert_eq!(client.post("/logout", "").await.text(), "out");

    let admin = TestClient::new(app());
    admin.post("/login/ann", "").await;
    assert_eq!(admin.get("/admin").await.text(), "admin page");
    assert_eq!(admin.get("/both").await.text(), "both");
    let anonymous = TestClient::new(app());
    assert_eq!(anonymous.get("/both").await.status(), StatusCode::FOUND);

    let events = seen.lock().unwrap();
    assert!(
        events
            .iter()
            .any(|e| e.name == "auth.require.unauthenticated"
                && e.path == "/both"
                && e.user_id.is_none()),
        "the Python framework's event for an anonymous request to a guarded handler"
    );
    let find = |name: &str, user: &str| {
        events
            .iter()
            .any(|e| e.name == name && e.user_id.as_deref() == Some(user))
    };
    assert!(find("auth.login.success", "bob"));
    assert!(find("authz.permission.denied", "bob"));
    assert!(find("auth.logout.success", "bob"));
    assert!(find("auth.login.success", "ann"));
    let denied = events
        .iter()
        .find(|e| e.name == "authz.permission.denied")
        .unwrap();
    assert_eq!(
        (denied.method.as_str(), denied.path.as_str()),
        ("GET", "/admin")
    );
}
