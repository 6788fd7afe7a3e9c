//! The opening handshake's rules (RFC 6455 §4.2): what a client's upgrade request must carry,
//! the `Sec-WebSocket-Accept` answer, the subprotocol chosen, and the `Origin` check that keeps
//! other sites' pages from opening sockets with the user's cookies (cross-site WebSocket
//! hijacking: browsers send cookies with a cross-site upgrade and apply no CORS to it, §10.2).

use base64::Engine;
use sha1::{Digest, Sha1};

use crate::http::{Method, Request, Version};
use crate::{HttpError, StatusCode};

/// RFC 6455 §1.3: the GUID appended to the client's key.
const GUID: &str = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";

/// `Sec-WebSocket-Accept` for `key`: base64 of the SHA-1 of the key and the GUID (§4.2.2).
pub(crate) fn accept_key(key: &str) -> String {
    let mut sha = Sha1::new();
    sha.update(key.as_bytes());
    sha.update(GUID.as_bytes());
    base64::engine::general_purpose::STANDARD.encode(sha.finalize())
}

/// Checks `req` is a WebSocket opening handshake (§4.2.1) and returns its key.
pub(crate) fn check(req: &Request) -> Result<&str, HttpError> {
    if req.method() != Method::Get {
        // §4.2.1 item 1: the handshake is a GET.
        return Err(HttpError::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "a WebSocket is opened with GET",
        )
        .with_header("allow", "GET"));
    }
    let upgrade_required = |why: &'static str| {
        // RFC 9110 §15.5.22: a 426 names the protocol to upgrade to.
        HttpError::new(StatusCode::UPGRADE_REQUIRED, why)
            .with_header("upgrade", "websocket")
            .with_header("connection", "Upgrade")
    };
    if req.version() != Version::Http11 {
        return Err(upgrade_required(
            "a WebSocket is opened over HTTP/1.1 (RFC 6455 §4.1)",
        ));
    }
    if !req.headers().has_token("upgrade", "websocket") {
        return Err(upgrade_required(
            "this is a WebSocket endpoint: send `Upgrade: websocket` and `Connection: Upgrade`",
        ));
    }
    if !req.headers().has_token("connection", "upgrade") {
        return Err(upgrade_required(
            "this is a WebSocket endpoint: send `Connection: Upgrade` with `Upgrade: websocket`",
        ));
    }
    // §4.2.2: a version the server does not speak is refused with the ones it does.
    let version = req.header("sec-websocket-version").map(str::trim);
    if version != Some("13") {
        return Err(HttpError::new(
            StatusCode::UPGRADE_REQUIRED,
            "this server speaks WebSocket version 13 (RFC 6455): send `Sec-WebSocket-Version: 13`",
        )
        .with_header("sec-websocket-version", "13"));
    }
    // §4.2.1 item 5: the key is 16 random bytes, base64-encoded.
    let key = req
        .header("sec-websocket-key")
        .map(str::trim)
        .filter(|k| {
            k.len() == 24
                && base64::engine::general_purpose::STANDARD
                    .decode(k)
                    .is_ok_and(|raw| raw.len() == 16)
        })
        .ok_or_else(|| {
            HttpError::bad_request(
                "Sec-WebSocket-Key is missing or is not 16 bytes in base64 (RFC 6455 §4.1)",
            )
        })?;
    Ok(key)
}

/// The first protocol the client offers (`Sec-WebSocket-Protocol`, in its order of
/// preference, §4.2.2 item 5.4) that the server supports.
pub(crate) fn choose_protocol(offered: &str, supported: &[String]) -> Option<String> {
    offered
        .split(',')
        .map(str::trim)
        .find(|p| supported.iter().any(|s| s == p))
        .map(str::to_owned)
}

/// Whether a browser page from `origin` may open a socket on a server reached as `host`:
/// the same host and port (the scheme cannot be told apart behind a proxy that ends TLS),
/// or an origin listed in `allowed` (`*`: any). `null` (a sandboxed or file page) only when
/// listed.
pub(crate) fn origin_allowed(origin: &str, host: Option<&str>, allowed: &[String]) -> bool {
    let origin = origin.trim();
    if allowed
        .iter()
        .any(|a| a == "*" || a.eq_ignore_ascii_case(origin))
    {
        return true;
    }
    let Some((scheme, authority)) = origin.split_once("://") else {
        return false;
    };
    let (Some(origin_auth), Some(host)) = (normalize(scheme, authority), host) else {
        return false;
    };
    normalize(scheme, host).is_some_and(|h| h.eq_ignore_ascii_case(&origin_auth))
}

/// `authority` without the scheme's default port (`example.com:443` under `https` is
/// `example.com`), `None` when it has a path or user info.
fn normalize(scheme: &str, authority: &str) -> Option<String> {
    if authority.is_empty() || authority.contains(['/', '@', '?', '#']) {
        return None;
    }
    let default = match scheme.to_ascii_lowercase().as_str() {
        "http" | "ws" => ":80",
        "https" | "wss" => ":443",
        _ => "",
    };
    let trimmed = if default.is_empty() {
        authority
    } else {
        authority.strip_suffix(default).unwrap_or(authority)
    };
    Some(trimmed.to_owned())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_key_of_the_rfc_example() {
        // RFC 6455 §1.3.
        assert_eq!(
            accept_key("dGhlIHNhbXBsZSBub25jZQ=="),
            "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
        );
    }

    #[test]
    fn origins() {
        let none: &[String] = &[];
        assert!(origin_allowed(
            "http://a.example:8080",
            Some("a.example:8080"),
            none
        ));
        assert!(origin_allowed(
            "https://A.example",
            Some("a.example:443"),
            none
        ));
        assert!(origin_allowed(
            "http://a.example:80",
            Some("a.example"),
            none
        ));
        assert!(!origin_allowed(
            "http://evil.example",
            Some("a.example"),
            none
        ));
        assert!(!origin_allowed(
            "http://a.example:8081",
            Some("a.example:8080"),
            none
        ));
        assert!(!origin_allowed("null", Some("a.example"), none));
        assert!(!origin_allowed("http://a.example", None, none));
        assert!(!origin_allowed(
            "http://user@a.example",
            Some("a.example"),
            none
        ));
        let listed = ["https://app.example".to_owned()];
        assert!(origin_allowed(
            "https://app.example",
            Some("api.example"),
            &listed
        ));
        assert!(!origin_allowed(
            "http://app.example",
            Some("api.example"),
            &listed
        ));
        assert!(origin_allowed("http://x", Some("y"), &["*".to_owned()]));
    }

    #[test]
    fn protocols_in_the_clients_order() {
        let supported = ["chat".to_owned(), "superchat".to_owned()];
        assert_eq!(
            choose_protocol("superchat, chat", &supported).as_deref(),
            Some("superchat")
        );
        assert_eq!(choose_protocol("mqtt", &supported), None);
    }
}
