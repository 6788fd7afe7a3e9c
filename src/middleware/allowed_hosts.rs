//! [`AllowedHostsMiddleware`]: refuses requests for any `Host` the app does not serve (`400`), the
//! defence against DNS rebinding (a hostile name pointed at this server's address, so that a
//! browser's same-origin rules treat the attacker's page as this app's) and against
//! poisoned absolute URLs built from `Host`.

use crate::error::{ConfigurationError, HttpError};
use crate::future::BoxFuture;
use crate::http::{IntoResponse, Request, Response};
use crate::middleware::auth::current_user_id;
use crate::security::audit::emit;
use crate::service::{Middleware, Next};

/// The hosts the app answers for: `example.com` (that name, any port), `.example.com` (it
/// and every subdomain), `example.com:8443` (that name on that port only), `*` (anything).
///
/// ```
/// use chirp::middleware::allowed_hosts::AllowedHostsMiddleware;
/// # fn main() -> Result<(), chirp::ConfigurationError> {
/// let mut app = chirp::App::new();
/// app.add_middleware(AllowedHostsMiddleware::new(["example.com", ".example.com", "localhost"])?);
/// # Ok(()) }
/// ```
#[derive(Debug, Clone)]
pub struct AllowedHostsMiddleware {
    patterns: Vec<(String, Option<String>)>,
    /// The hosts as the app listed them, for [`debug`](AllowedHostsMiddleware::debug)'s message.
    listed: Vec<String>,
    allow_missing: bool,
    debug: bool,
}

/// `host[:port]` lower-cased, without a trailing dot; IPv6 literals keep their brackets.
fn split_host(value: &str) -> (String, Option<String>) {
    let value = value.trim().to_ascii_lowercase();
    let (host, port) = if let Some(rest) = value.strip_prefix('[') {
        match rest.split_once(']') {
            Some((h, p)) => (format!("[{h}]"), p.strip_prefix(':').map(str::to_owned)),
            None => (value.clone(), None),
        }
    } else {
        match value.rsplit_once(':') {
            Some((h, p)) if !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()) => {
                (h.to_owned(), Some(p.to_owned()))
            }
            _ => (value.clone(), None),
        }
    };
    (host.trim_end_matches('.').to_owned(), port)
}

impl AllowedHostsMiddleware {
    /// Allows `hosts`. An empty list or an empty pattern is a [`ConfigurationError`].
    pub fn new<I, S>(hosts: I) -> Result<AllowedHostsMiddleware, ConfigurationError>
    where
        I: IntoIterator<Item = S>,
        S: AsRef<str>,
    {
        let listed: Vec<String> = hosts.into_iter().map(|h| h.as_ref().to_owned()).collect();
        let patterns: Vec<(String, Option<String>)> =
            listed.iter().map(|h| split_host(h)).collect();
        if patterns.is_empty() || patterns.iter().any(|(h, _)| h.is_empty() || h == ".") {
            return Err(ConfigurationError::new(
                "AllowedHostsMiddleware: list at least one host, e.g. [\"example.com\", \".example.com\"]",
            ));
        }
        Ok(AllowedHostsMiddleware {
            patterns,
            listed,
            allow_missing: false,
            debug: false,
        })
    }

    /// Whether a refusal says which host was refused and how to allow it (default `false`:
    /// a terse `Invalid Host header`). For development, where the app is reached under a
    /// name nobody listed yet (a LAN address, a tunnel); off in production, where the list of
    /// served hosts is nobody else's business (the Python framework's `debug`).
    ///
    /// ```
    /// use chirp::middleware::allowed_hosts::AllowedHostsMiddleware;
    /// # fn main() -> Result<(), chirp::ConfigurationError> {
    /// let hosts = AllowedHostsMiddleware::new(["localhost"])?.debug(cfg!(debug_assertions));
    /// # Ok(()) }
    /// ```
    pub fn debug(mut self, on: bool) -> AllowedHostsMiddleware {
        self.debug = on;
        self
    }

    /// The refusal's text for `host` (`None`: the request named no host).
    fn refusal(&self, host: Option<&str>) -> String {
        if !self.debug {
            return "Invalid Host header".to_owned();
        }
        match host {
            Some(host) => format!(
                "Invalid Host header {host:?}: this app serves {:?}; add {:?} to AllowedHostsMiddleware::new to allow it",
                self.listed,
                split_host(host).0
            ),
            None => "The request names no host (HTTP/1.0 without Host): call AllowedHostsMiddleware::allow_missing_host(true) to allow it".to_owned(),
        }
    }

    /// Whether a request without any host (HTTP/1.0 without `Host`) is let through (default
    /// `false`: refused).
    pub fn allow_missing_host(mut self, allow: bool) -> AllowedHostsMiddleware {
        self.allow_missing = allow;
        self
    }

    /// Whether `host` (a `Host` value) is allowed.
    pub fn allows(&self, host: &str) -> bool {
        let (host, port) = split_host(host);
        self.patterns.iter().any(|(pattern, want_port)| {
            let name_ok = match pattern.as_str() {
                "*" => true,
                p if p.starts_with('.') => host == p[1..] || host.ends_with(p),
                p => host == p,
            };
            name_ok && (want_port.is_none() || *want_port == port)
        })
    }
}

impl Middleware for AllowedHostsMiddleware {
    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
        let allowed = match req.host() {
            Some(host) => self.allows(host),
            None => self.allow_missing,
        };
        if !allowed {
            emit("host.reject.disallowed", &req, current_user_id().as_deref());
            let detail = self.refusal(req.host());
            return Box::pin(std::future::ready(
                HttpError::bad_request(detail).into_response(),
            ));
        }
        Box::pin(next.run(req))
    }

    fn name(&self) -> &'static str {
        "AllowedHostsMiddleware"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns() {
        let hosts =
            AllowedHostsMiddleware::new(["example.com", ".example.org", "api.test:8443", "[::1]"])
                .unwrap();
        for ok in [
            "example.com",
            "EXAMPLE.com:80",
            "example.com.",
            "example.org",
            "a.b.example.org:1",
            "api.test:8443",
            "[::1]:3000",
        ] {
            assert!(hosts.allows(ok), "{ok}");
        }
        for bad in [
            "evil.com",
            "example.com.evil.com",
            "badexample.org",
            "api.test",
            "api.test:8444",
            "[::2]",
            "sub.example.com",
        ] {
            assert!(!hosts.allows(bad), "{bad}");
        }
        assert!(AllowedHostsMiddleware::new(Vec::<String>::new()).is_err());
        assert!(AllowedHostsMiddleware::new(["*"])
            .unwrap()
            .allows("anything"));
    }
}
