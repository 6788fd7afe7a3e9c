//! A chat over WebSockets, and an echo socket: sessions and auth at the upgrade, the
//! `Origin` checked, permessage-deflate, and a broadcast hub that spans instances through
//! Redis. The example to copy for realtime features on chirp.
//!
//! ```sh
//! cargo run --example chat                      # http://127.0.0.1:8000/
//! REDIS_URL=redis://127.0.0.1:6379 CHIRP_SECRET_KEY=$(openssl rand -hex 32) \
//!     CHIRP_ADDR=127.0.0.1:8001 cargo run --features redis --example chat
//! ```
//!
//! - `GET /ws/echo`: no login. Every text and binary message comes back with the same
//!   opcode and payload (a fragmented one as one message), pings get their pong, a client's
//!   Close its code back. permessage-deflate is agreed whenever the client offers it. The
//!   largest message is `CHIRP_WS_MAX_MESSAGE` bytes (default 1 MiB, after decompression):
//!   above it, Close 1009. A protocol violation closes with 1002 (1007 for invalid UTF-8).
//! - `GET /login`: a form (`name`, and a hidden `_csrf_token`); `POST /login` → `303` to `/`
//!   with a session cookie. `POST /logout`.
//! - `GET /ws/chat`: signed-in sessions only (`401` without, no `101`); a page of another
//!   origin gets `403`, no `101`. Every text message a chat socket sends reaches every open
//!   chat socket (its sender too) as `{"user": "<name>", "text": "<text>"}`: across
//!   instances when `REDIS_URL` is set (build with `--features redis`; the instances share
//!   `CHIRP_SECRET_KEY` so that a session made by one is good on the other).
//! - `GET /events`: Server-Sent Events, a `message` event with the same JSON for every chat
//!   message (the same hub: across instances too), for pages that only read.
//! - `GET /`: the chat page.
//! - Listens on `CHIRP_ADDR` (default 127.0.0.1:8000). On SIGTERM every open socket gets
//!   Close 1001 and the process exits within 2 s.
//!
//! `tests/chat.rs` checks this over real sockets.

use chirp::broadcast::Hub;
use chirp::middleware::access_log::AccessLogMiddleware;
use chirp::middleware::auth::{
    get_user, login, login_required, logout, AuthConfig, AuthMiddleware, AuthUser,
};
use chirp::middleware::csrf::{CsrfConfig, CsrfMiddleware};
use chirp::middleware::security_headers::{SecurityHeadersMiddleware, NONCE_CSP};
use chirp::middleware::sessions::SessionMiddleware;
use chirp::security::secret_key_from_env;
use chirp::sessions::SessionConfig;
use chirp::templates::{context, Template, Templates};
use chirp::ws::{Message, Utf8Bytes, WebSocket};
use chirp::{App, Error, HttpError, IntoResponse, Request, Response, State, StatusCode};
use serde::{Deserialize, Serialize};

/// The hub topic every chat socket listens on.
const ROOM: &str = "chat";

/// A signed-in user: the name given at login (the session keeps it as the user's id).
/// `Serialize`: templates read it as `current_user()`.
#[derive(Clone, Debug, Serialize)]
struct User {
    name: String,
}

impl AuthUser for User {
    fn id(&self) -> String {
        self.name.clone()
    }
}

/// The echo socket's largest message.
#[derive(Clone, Copy)]
struct MaxMessage(usize);

/// What every chat socket receives.
#[derive(Serialize, Deserialize)]
struct Said<'a> {
    user: &'a str,
    text: &'a str,
}

const LOGIN: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>chat: log in</title></head>
<body><h1>Log in to chat</h1>
{% if error %}<p role="alert">{{ error }}</p>{% endif %}
<form method="post" action="/login">
{{ csrf_field() }}
<label>Name <input name="name" maxlength="40" required autofocus></label>
<button>Enter</button>
</form></body></html>"#;

const PAGE: &str = r#"<!DOCTYPE html>
<html><head><meta charset="utf-8"><title>chat</title>
<style nonce="{{ csp_nonce() }}">#log{list-style:none;padding:0} #log b{margin-right:.5em}</style></head>
<body><h1>chat</h1>
{% if current_user() %}
<p>Signed in as <b id="me">{{ current_user().name }}</b>.</p>
<form method="post" action="/logout">{{ csrf_field() }}<button>Log out</button></form>
<ul id="log"></ul>
<form id="say"><input id="text" autocomplete="off" maxlength="1000" required><button>Send</button></form>
<p id="status">connecting…</p>
<script nonce="{{ csp_nonce() }}">
const log = document.getElementById("log");
const status = document.getElementById("status");
const scheme = location.protocol === "https:" ? "wss://" : "ws://";
const socket = new WebSocket(scheme + location.host + "/ws/chat");
socket.onopen = () => { status.textContent = "connected"; };
socket.onclose = (e) => { status.textContent = "closed (" + e.code + ")"; };
socket.onmessage = (e) => {
  const said = JSON.parse(e.data);
  const li = document.createElement("li");
  const who = document.createElement("b");
  who.textContent = said.user;
  li.append(who, said.text);
  log.append(li);
};
document.getElementById("say").onsubmit = (e) => {
  e.preventDefault();
  const input = document.getElementById("text");
  if (input.value && socket.readyState === WebSocket.OPEN) { socket.send(input.value); input.value = ""; }
};
</script>
{% else %}
<p><a href="/login">Log in</a> to chat.</p>
{% endif %}
</body></html>"#;

async fn home(_req: Request) -> Template {
    Template::new("page.html", context! {})
}

async fn login_form(_req: Request) -> Template {
    Template::new("login.html", context! {})
}

#[derive(Deserialize)]
struct LoginForm {
    #[serde(default)]
    name: String,
}

async fn do_login(req: Request) -> Result<Response, Error> {
    let form: LoginForm = req.form()?;
    let name = form.name.trim();
    if name.is_empty() || name.chars().count() > 40 {
        let page = Template::new(
            "login.html",
            context! { error => "A name of 1 to 40 characters, please." },
        );
        return Ok((StatusCode::UNPROCESSABLE_CONTENT, page).into_response());
    }
    login(&User {
        name: name.to_owned(),
    })?;
    Ok(Response::see_other("/"))
}

async fn do_logout(_req: Request) -> Result<Response, Error> {
    logout()?;
    Ok(Response::see_other("/login"))
}

/// `/ws/echo`: every data message back as it came.
async fn echo(req: Request, max: State<MaxMessage>) -> Result<Response, Error> {
    Ok(req
        .websocket()?
        .max_message_size(max.0)
        .on_upgrade(|mut socket| async move {
            while let Some(Ok(msg)) = socket.recv().await {
                let data = matches!(msg, Message::Text(_) | Message::Binary(_));
                if data && socket.feed(msg).await.is_err() {
                    break;
                }
            }
        }))
}

/// `/ws/chat` (behind `login_required`): what the socket says goes to the room, what the
/// room says comes to the socket.
async fn chat(req: Request, hub: State<Hub>) -> Result<Response, Error> {
    let user = get_user::<User>()?
        .ok_or_else(|| HttpError::unauthorized("log in to chat"))?
        .name;
    let hub = (*hub).clone();
    Ok(req
        .websocket()?
        .max_message_size(16 * 1024)
        .on_upgrade(move |socket| room(socket, hub, user)))
}

async fn room(socket: WebSocket, hub: Hub, user: String) {
    // Subscribed before the first message is read: the sender hears its own message.
    let mut heard = hub.subscribe(ROOM);
    let (mut reader, writer) = socket.split();
    let forward = tokio::spawn(async move {
        while let Some(item) = heard.recv().await {
            match item {
                Ok(bytes) => {
                    let Ok(text) = Utf8Bytes::try_from_bytes(bytes) else {
                        continue;
                    };
                    if writer.send(Message::Text(text)).await.is_err() {
                        break;
                    }
                }
                // A client too slow for the room: it missed some messages. A chat has no
                // history to resync from, so it carries on from the newest.
                Err(missed) => tracing::info!(?missed, "chat socket lagged"),
            }
        }
    });
    while let Some(Ok(msg)) = reader.recv().await {
        if let Message::Text(text) = msg {
            let said = Said {
                user: &user,
                text: &text,
            };
            if let Err(e) = hub.publish_json(ROOM, &said).await {
                tracing::warn!(error = %e, "chat message not published");
            }
        }
    }
    forward.abort();
}

/// `/events`: the room as Server-Sent Events.
async fn events(_req: Request, hub: State<Hub>) -> chirp::sse::Sse {
    hub.subscribe(ROOM).into_sse(|bytes| {
        chirp::sse::Event::new()
            .event("message")
            .data(String::from_utf8_lossy(&bytes))
    })
}

/// The app; `hub` carries the room (in memory, or Redis for several instances).
pub fn app(hub: Hub, max_message: usize) -> Result<App, Error> {
    let mut app = App::new();
    app.templates(
        Templates::new()
            .with_template("page.html", PAGE)?
            .with_template("login.html", LOGIN)?
            .user::<User>(),
    );
    app.state(hub);
    app.state(MaxMessage(max_message));
    app.add_middleware(AccessLogMiddleware::new());
    app.add_middleware(SecurityHeadersMiddleware::new().content_security_policy(NONCE_CSP)?);
    app.add_middleware(SessionMiddleware::new(SessionConfig::new(
        secret_key_from_env("CHIRP_SECRET_KEY")?,
    ))?);
    app.add_middleware(AuthMiddleware::new(
        AuthConfig::new().load_user(|name: String| async move { Some(User { name }) }),
    )?);
    app.add_middleware(CsrfMiddleware::new(CsrfConfig::default())?);
    app.get("/", home);
    app.get("/login", login_form);
    app.post("/login", do_login);
    app.post("/logout", do_logout);
    app.get("/events", events);
    app.get("/ws/echo", echo);
    app.get("/ws/chat", login_required(chat));
    Ok(app)
}

/// The hub: Redis when `REDIS_URL` is set, else in memory.
async fn hub() -> Result<Hub, Error> {
    let Ok(url) = std::env::var("REDIS_URL") else {
        return Ok(Hub::new());
    };
    #[cfg(feature = "redis")]
    {
        Ok(Hub::redis(&url).await?)
    }
    #[cfg(not(feature = "redis"))]
    {
        Err(chirp::ConfigurationError::new(format!(
            "REDIS_URL is set ({url}) but this build has no Redis: run with --features redis"
        ))
        .into())
    }
}

#[tokio::main]
async fn main() -> Result<(), Error> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let max_message = match std::env::var("CHIRP_WS_MAX_MESSAGE") {
        Ok(v) => v.parse().map_err(|_| {
            chirp::ConfigurationError::new(format!(
                "CHIRP_WS_MAX_MESSAGE={v} is not a number of bytes"
            ))
        })?,
        Err(_) => 1 << 20,
    };
    let addr = std::env::var("CHIRP_ADDR").unwrap_or_else(|_| "127.0.0.1:8000".into());
    eprintln!("chat on http://{addr}/");
    app(hub().await?, max_message)?.run(addr).await
}
