//! [`AccessLogMiddleware`]: one `tracing` event per request (target `chirp::access`, level `info`) with
//! method, path, status, bytes, duration, client address and a request id, which is also
//! echoed as `X-Request-Id` and reachable by handlers as [`request_id`]. A streamed response
//! (SSE, `Response::stream`) is logged when its stream ends, with the bytes it produced and
//! how long it ran: logged when its head left, an hour-long event stream would read as a
//! 2 ms request of unknown size.

use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::Instant;

use bytes::Bytes;

use crate::error::LookupError;
use crate::future::BoxFuture;
use crate::http::body::Streamed;
use crate::http::{BoxError, Method, Request, Response, TrustedProxies};
use crate::security::random_hex;
use crate::service::{Middleware, Next};

tokio::task_local! {
    static REQUEST_ID: String;
}

/// Logs every request, and gives each an id.
///
/// The id is the request's `X-Request-Id` when the request comes from a trusted proxy (which
/// made it) and the value is sane (at most 128 characters of letters, digits and `-_.:`);
/// otherwise a new random one (16 bytes, hex). Behind trusted proxies, the client address is
/// the one they forwarded for (`X-Forwarded-For`), for this log and for the middleware after.
///
/// Add it first (outermost), so that it times and sees everything, refusals of later
/// middleware included. To print the events, install a subscriber, e.g.
/// `tracing_subscriber::fmt().with_env_filter("info").init()`.
///
/// ```
/// use chirp::http::TrustedProxies;
/// use chirp::middleware::access_log::AccessLogMiddleware;
/// # fn main() -> Result<(), chirp::ConfigurationError> {
/// let mut app = chirp::App::new();
/// app.add_middleware(AccessLogMiddleware::new().trusted_proxies(TrustedProxies::new(["127.0.0.1"])?));
/// # Ok(()) }
/// ```
#[derive(Debug, Clone, Default)]
pub struct AccessLogMiddleware {
    proxies: TrustedProxies,
}

impl AccessLogMiddleware {
    /// An access log that trusts no proxy.
    pub fn new() -> AccessLogMiddleware {
        AccessLogMiddleware::default()
    }

    /// The proxies whose `X-Forwarded-For` and `X-Request-Id` are believed.
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> AccessLogMiddleware {
        self.proxies = proxies;
        self
    }
}

/// Whether a forwarded request id is one to keep (no log injection, bounded size).
fn sane_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"-_.:".contains(&b))
}

impl Middleware for AccessLogMiddleware {
    fn call<'a>(&'a self, mut req: Request, next: Next) -> BoxFuture<'a, Response> {
        Box::pin(async move {
            let started = Instant::now();
            let from_proxy = req
                .peer_addr()
                .is_some_and(|p| self.proxies.contains(p.ip()));
            let client = self.proxies.client_ip(&req);
            if let Some(ip) = client {
                req.set_client_ip(ip);
            }
            let id = req
                .header("x-request-id")
                .filter(|id| from_proxy && sane_id(id))
                .map(str::to_owned)
                .unwrap_or_else(|| random_hex(16));
            let method = req.method();
            let path = req.path().to_owned();
            // Carried on into a streamed body's producer and an upgrade callback.
            let mut res = Response::scoped(&REQUEST_ID, id.clone(), next.run(req)).await;
            if res.header("x-request-id").is_none() {
                res.append_header("x-request-id", id.clone());
            }
            let entry = Entry {
                method,
                path,
                status: res.status().as_u16(),
                client: client.map(|ip| ip.to_string()),
                id,
                started,
            };
            // A stream (not a file: its length is known, and wrapping it would lose
            // sendfile) is logged when it ends; everything else now.
            if res.is_streamed() && !res.is_file_body() {
                let length = res.streamed_len();
                if let Some(stream) = res.take_stream() {
                    let logged = LoggedStream {
                        stream,
                        entry: Some(entry),
                        bytes: 0,
                    };
                    res.set_streamed(Streamed::Stream(Box::pin(logged)), length);
                }
                return res;
            }
            let bytes = match (res.is_streamed(), res.streamed_len()) {
                (false, _) => Some(res.body().len() as u64),
                (true, len) => len,
            };
            entry.log(bytes, None);
            res
        })
    }

    fn name(&self) -> &'static str {
        "AccessLogMiddleware"
    }
}

/// What the log line of one request says, kept until its body is done.
struct Entry {
    method: Method,
    path: String,
    status: u16,
    client: Option<String>,
    id: String,
    started: Instant,
}

impl Entry {
    /// Emits the event. `stream_end`: for a streamed body, how it ended (`complete`, `error`,
    /// or `dropped`: the client went away, or shutdown ended it).
    fn log(self, bytes: Option<u64>, stream_end: Option<&'static str>) {
        tracing::info!(
            target: "chirp::access",
            method = self.method.as_str(),
            path = %self.path,
            status = self.status,
            bytes = bytes.map_or(-1, |b| b as i64),
            duration_ms = self.started.elapsed().as_secs_f64() * 1000.0,
            client_ip = self.client.as_deref().unwrap_or("-"),
            request_id = %self.id,
            stream_end = stream_end.unwrap_or("-"),
            "request"
        );
    }
}

/// A response stream that counts its bytes and logs its request when it ends (or is dropped
/// before: the server drops a stream whose client went away, and ends streams on shutdown).
struct LoggedStream {
    stream: crate::http::BodyStream,
    entry: Option<Entry>,
    bytes: u64,
}

impl futures_core::Stream for LoggedStream {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let item = std::task::ready!(self.stream.as_mut().poll_next(cx));
        match &item {
            Some(Ok(chunk)) => self.bytes += chunk.len() as u64,
            Some(Err(_)) => self.finish("error"),
            None => self.finish("complete"),
        }
        Poll::Ready(item)
    }
}

impl LoggedStream {
    fn finish(&mut self, how: &'static str) {
        if let Some(entry) = self.entry.take() {
            entry.log(Some(self.bytes), Some(how));
        }
    }
}

impl Drop for LoggedStream {
    fn drop(&mut self) {
        self.finish("dropped");
    }
}

/// The id [`AccessLogMiddleware`] gave the current request (for logs, error pages, upstream calls).
///
/// # Errors
/// [`LookupError`] outside a request handled by [`AccessLogMiddleware`].
pub fn request_id() -> Result<String, LookupError> {
    REQUEST_ID.try_with(String::clone).map_err(|_| {
        LookupError::new(
            "No request id: add AccessLogMiddleware to the app (first). If it is there, \
             this code runs outside the request's scope: a task started with tokio::spawn \
             does not inherit it (read the id before spawning and move it in)",
        )
    })
}

#[cfg(test)]
mod tests {
    #[test]
    fn forwarded_ids_are_checked() {
        assert!(super::sane_id("a1b2-c3_d4.e5:f6"));
        assert!(!super::sane_id(""));
        assert!(!super::sane_id("a b"));
        assert!(!super::sane_id("x\ny"));
        assert!(!super::sane_id(&"a".repeat(129)));
    }
}
