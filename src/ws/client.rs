//! The client's side of the handshake, for [`TestClient`](crate::testing::TestClient): the
//! request headers (a fresh key, version 13, a permessage-deflate offer), and the `101`
//! checked (RFC 6455 §4.1: the accept key, the extension agreed) before the socket opens.

use base64::Engine;

use super::deflate::{client_accept, client_offer, DeflateConfig};
use super::frame::Role;
use super::handshake::accept_key;
use super::socket::{Settings, WebSocket};
use crate::http::Upgraded;

/// A handshake under way, from the client's side.
pub(crate) struct ClientHandshake {
    key: String,
    compression: Option<DeflateConfig>,
}

impl ClientHandshake {
    /// A handshake with a fresh key, offering `compression`.
    pub(crate) fn new(compression: Option<DeflateConfig>) -> ClientHandshake {
        let mut raw = [0u8; 16];
        // A test client's key only has to be unpredictable enough to be a nonce.
        getrandom::fill(&mut raw).unwrap_or_else(|_| raw = *b"chirp-test-nonce");
        ClientHandshake {
            key: base64::engine::general_purpose::STANDARD.encode(raw),
            compression,
        }
    }

    /// The request headers of the handshake.
    pub(crate) fn headers(&self) -> Vec<(&'static str, String)> {
        let mut headers = vec![
            ("connection", "Upgrade".to_owned()),
            ("upgrade", "websocket".to_owned()),
            ("sec-websocket-version", "13".to_owned()),
            ("sec-websocket-key", self.key.clone()),
        ];
        if let Some(config) = &self.compression {
            headers.push(("sec-websocket-extensions", client_offer(config)));
        }
        headers
    }

    /// The socket on `io`, once the `101`'s headers (`header(name)`) are checked.
    pub(crate) fn finish<'a>(
        self,
        header: impl Fn(&str) -> Option<&'a str>,
        io: Upgraded,
    ) -> Result<WebSocket, String> {
        let expected = accept_key(&self.key);
        if header("sec-websocket-accept") != Some(expected.as_str()) {
            return Err(format!(
                "the 101's Sec-WebSocket-Accept is {:?}, not {expected:?} (RFC 6455 §4.1)",
                header("sec-websocket-accept")
            ));
        }
        let compression = match (header("sec-websocket-extensions"), &self.compression) {
            (None, _) => None,
            (Some(answer), Some(config)) => {
                let agreed = client_accept(answer, config)?;
                Some((
                    agreed.inflate(Role::Client),
                    agreed.deflate(Role::Client, config.level_value()),
                ))
            }
            (Some(answer), None) => {
                return Err(format!(
                    "the server agreed to an extension that was not offered: {answer}"
                ))
            }
        };
        // A test drives the client's side by hand: no heartbeat of its own.
        let settings = Settings {
            ping_interval: None,
            idle_timeout: None,
            max_message: 64 << 20,
            max_frame: 64 << 20,
            ..Settings::default()
        };
        let protocol = header("sec-websocket-protocol").map(str::to_owned);
        Ok(WebSocket::new(
            io,
            Role::Client,
            settings,
            compression,
            protocol,
        ))
    }
}
