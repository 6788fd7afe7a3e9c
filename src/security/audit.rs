//! Security events (the Python framework's `chirp.security.audit`): logins, logouts, failed
//! logins, CSRF rejections, rate-limit hits and permission denials, each a structured
//! `tracing` event on the target `chirp::security` with a stable name, and passed to the
//! hook an app installs with [`on_security_event`] (to count them, alert, or ship them
//! elsewhere).
//!
//! Names are the Python framework's, `area.subject.outcome`, so that dashboards and alerts
//! written for one serve the other:
//!
//! | name | when | level |
//! |---|---|---|
//! | `auth.login.success` | [`login`](crate::middleware::auth::login) | info |
//! | `auth.logout.success` | [`logout`](crate::middleware::auth::logout) | info |
//! | `auth.login.failure` | a password check fails (emitted by the app with [`emit`]) | warn |
//! | `auth.require.unauthenticated` | an anonymous request for a guarded handler | info |
//! | `authz.permission.denied` | a signed-in user refused by [`requires`](crate::middleware::auth::requires) | warn |
//! | `authz.policy.denied` | ... by [`requires_policy`](crate::middleware::auth::requires_policy) or [`requires_policy_async`](crate::middleware::auth::requires_policy_async) | warn |
//! | `auth.token.invalid` | a Bearer token that `AuthConfig::verify_token` does not accept | warn |
//! | `auth.session.version_mismatch` | a session whose user's version changed (logged out everywhere) | warn |
//! | `csrf.reject.missing` | a state-changing request without a CSRF token | warn |
//! | `csrf.reject.invalid` | ... with a wrong one | warn |
//! | `csrf.reject.cross_site` | ... sent from another site (`Sec-Fetch-Site`, `Origin`) | warn |
//! | `auth.rate_limit.exceeded` | a login attempt over the limit | warn |
//! | `host.reject.disallowed` | a `Host` the app does not serve | warn |
//! | `cors.reject.preflight` | a preflight from an origin, or for a method or header, not allowed | warn |
//!
//! The Python framework has no event for the last four: their names follow its pattern.

use std::net::IpAddr;
use std::sync::{Arc, RwLock};

use crate::http::{Method, Request};

/// One security event, as [`on_security_event`]'s hook receives it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SecurityEvent {
    /// The stable name, e.g. `csrf.reject.missing`.
    pub name: &'static str,
    /// The request's method.
    pub method: String,
    /// The request's (normalised) path.
    pub path: String,
    /// The client's address, when known.
    pub client_ip: Option<IpAddr>,
    /// The signed-in user's id, when known.
    pub user_id: Option<String>,
}

type Hook = Arc<dyn Fn(&SecurityEvent) + Send + Sync>;

/// The process-wide hook (like a `tracing` subscriber, one per process).
static HOOK: RwLock<Option<Hook>> = RwLock::new(None);

/// Installs `hook`, called with every security event from then on (replacing an earlier
/// one). It runs on the request's task: keep it short (send to a channel for slow work).
///
/// ```
/// use chirp::security::audit::{on_security_event, SecurityEvent};
/// on_security_event(|event: &SecurityEvent| {
///     if event.name.starts_with("csrf.") {
///         eprintln!("CSRF rejection on {}", event.path);
///     }
/// });
/// ```
pub fn on_security_event(hook: impl Fn(&SecurityEvent) + Send + Sync + 'static) {
    *HOOK.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::new(hook));
}

/// What an event says of its request, kept by middleware that emits events later (login,
/// logout) when the request itself is gone.
#[derive(Debug, Clone)]
pub(crate) struct RequestInfo {
    method: Method,
    path: String,
    client_ip: Option<IpAddr>,
}

impl RequestInfo {
    pub(crate) fn of(req: &Request) -> RequestInfo {
        RequestInfo {
            method: req.method(),
            path: req.path().to_owned(),
            client_ip: req.client_ip(),
        }
    }
}

/// Emits the security event `name` for `req`: a `tracing` event at `warn` (`info` for the
/// events of normal use: `auth.login.success`, `auth.logout.success`,
/// `auth.require.unauthenticated`) on target `chirp::security`, and the hook. `user_id`: the
/// user concerned, when the caller knows it (the one signed in on this request is
/// [`current_user_id`](crate::middleware::auth::current_user_id)). Apps emit
/// `auth.login.failure` themselves, where a password check fails.
pub fn emit(name: &'static str, req: &Request, user_id: Option<&str>) {
    emit_info(name, &RequestInfo::of(req), user_id);
}

pub(crate) fn emit_info(name: &'static str, req: &RequestInfo, user_id: Option<&str>) {
    let user_id = user_id.map(str::to_owned);
    let client_ip = req.client_ip;
    let event = SecurityEvent {
        name,
        method: req.method.as_str().to_owned(),
        path: req.path.clone(),
        client_ip,
        user_id,
    };
    let user_id = event.user_id.as_deref();
    let ip = client_ip.map(|ip| ip.to_string());
    let (ip, user) = (ip.as_deref().unwrap_or("-"), user_id.unwrap_or("-"));
    if is_routine(name) {
        tracing::info!(target: "chirp::security", event = name, method = %event.method, path = %event.path, client_ip = ip, user_id = user, "security event");
    } else {
        tracing::warn!(target: "chirp::security", event = name, method = %event.method, path = %event.path, client_ip = ip, user_id = user, "security event");
    }
    let hook = HOOK.read().unwrap_or_else(|e| e.into_inner()).clone();
    if let Some(hook) = hook {
        hook(&event);
    }
}

/// Whether `name` is an event of normal use, logged at `info`: a login, a logout, a visitor
/// sent to the login page. Everything else is a refusal worth a `warn`.
fn is_routine(name: &str) -> bool {
    matches!(
        name,
        "auth.login.success" | "auth.logout.success" | "auth.require.unauthenticated"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_the_events_of_normal_use_are_routine() {
        for name in [
            "auth.login.success",
            "auth.logout.success",
            "auth.require.unauthenticated",
        ] {
            assert!(is_routine(name), "{name}");
        }
        for name in [
            "auth.login.failure",
            "authz.permission.denied",
            "csrf.reject.missing",
            "auth.rate_limit.exceeded",
            "host.reject.disallowed",
        ] {
            assert!(!is_routine(name), "{name}");
        }
    }
}
