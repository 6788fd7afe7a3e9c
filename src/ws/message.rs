//! What a WebSocket carries, as the application sees it: whole messages (RFC 6455 §5.6),
//! control frames (§5.5), and the close frame's code and reason (§7.4).

use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// Text known to be valid UTF-8, shared without copying: a received text message (checked
/// by the decoder) or one you send (`From<String>`, `From<&'static str>`). Echoing a text
/// message sends the same bytes back without copying them.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub struct Utf8Bytes(Bytes);

impl Utf8Bytes {
    /// Bytes the decoder has checked to be UTF-8.
    pub(crate) fn from_checked(bytes: Bytes) -> Utf8Bytes {
        debug_assert!(std::str::from_utf8(&bytes).is_ok());
        Utf8Bytes(bytes)
    }

    /// `bytes`, if they are valid UTF-8.
    ///
    /// ```
    /// use chirp::ws::Utf8Bytes;
    /// assert_eq!(Utf8Bytes::try_from_bytes("hé".into()).unwrap().as_str(), "hé");
    /// assert!(Utf8Bytes::try_from_bytes(bytes::Bytes::from_static(b"\xff")).is_err());
    /// ```
    pub fn try_from_bytes(bytes: Bytes) -> Result<Utf8Bytes, std::str::Utf8Error> {
        std::str::from_utf8(&bytes)?;
        Ok(Utf8Bytes(bytes))
    }

    /// The text.
    pub fn as_str(&self) -> &str {
        // Checked when made (`from_checked`, `try_from_bytes`, `From<String>`).
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    /// The bytes underneath.
    pub fn into_bytes(self) -> Bytes {
        self.0
    }
}

impl Deref for Utf8Bytes {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl fmt::Debug for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for Utf8Bytes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl From<String> for Utf8Bytes {
    fn from(s: String) -> Utf8Bytes {
        Utf8Bytes(Bytes::from(s))
    }
}

impl From<&'static str> for Utf8Bytes {
    fn from(s: &'static str) -> Utf8Bytes {
        Utf8Bytes(Bytes::from_static(s.as_bytes()))
    }
}

impl PartialEq<str> for Utf8Bytes {
    fn eq(&self, other: &str) -> bool {
        self.as_str() == other
    }
}

impl PartialEq<&str> for Utf8Bytes {
    fn eq(&self, other: &&str) -> bool {
        self.as_str() == *other
    }
}

/// A close frame's status code and reason (RFC 6455 §7.4, §5.5.1).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CloseFrame {
    /// The status code: see [`close_code`].
    pub code: u16,
    /// Why, for people (at most 123 bytes are sent).
    pub reason: Utf8Bytes,
}

impl CloseFrame {
    /// A close frame with `code` and `reason`.
    pub fn new(code: u16, reason: impl Into<Utf8Bytes>) -> CloseFrame {
        CloseFrame {
            code,
            reason: reason.into(),
        }
    }
}

/// The close codes of RFC 6455 §7.4.1 that an application meets.
pub mod close_code {
    /// The purpose of the connection is fulfilled.
    pub const NORMAL: u16 = 1000;
    /// The server is going down, or a browser leaves the page.
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL_ERROR: u16 = 1002;
    /// A kind of data the endpoint does not accept (binary to a text-only endpoint).
    pub const UNSUPPORTED_DATA: u16 = 1003;
    /// Received by the application only: the close frame had no code. Never sent.
    pub const NO_STATUS: u16 = 1005;
    /// Received by the application only: the connection ended without a close frame.
    /// Never sent.
    pub const ABNORMAL: u16 = 1006;
    /// A text message (or close reason) that is not UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message that breaks the endpoint's policy.
    pub const POLICY_VIOLATION: u16 = 1008;
    /// A message or frame larger than the endpoint takes.
    pub const MESSAGE_TOO_BIG: u16 = 1009;
    /// The server met an error that keeps it from going on.
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// A WebSocket message: what [`WebSocket::recv`](super::WebSocket::recv) returns and
/// [`send`](super::WebSocket::send) takes.
///
/// Pings are answered (with a Pong carrying the same payload) before `recv` returns them;
/// a Close is answered by chirp as well (the close handshake, RFC 6455 §5.5.1), and `recv`
/// returns `None` after it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Message {
    /// A text message: UTF-8, checked.
    Text(Utf8Bytes),
    /// A binary message.
    Binary(Bytes),
    /// A ping (already answered when you see it). At most 125 bytes.
    Ping(Bytes),
    /// A pong: the answer to a ping, or a heartbeat. At most 125 bytes.
    Pong(Bytes),
    /// The close handshake: the peer's code and reason (`None` when its frame had none), or
    /// code [`close_code::ABNORMAL`] when the connection ended without one.
    Close(Option<CloseFrame>),
}

impl Message {
    /// A text message.
    pub fn text(text: impl Into<Utf8Bytes>) -> Message {
        Message::Text(text.into())
    }

    /// A binary message.
    pub fn binary(bytes: impl Into<Bytes>) -> Message {
        Message::Binary(bytes.into())
    }

    /// The text of a text message.
    pub fn as_text(&self) -> Option<&str> {
        match self {
            Message::Text(t) => Some(t.as_str()),
            _ => None,
        }
    }
}

impl From<String> for Message {
    fn from(s: String) -> Message {
        Message::Text(s.into())
    }
}

impl From<&'static str> for Message {
    fn from(s: &'static str) -> Message {
        Message::Text(s.into())
    }
}

impl From<Bytes> for Message {
    fn from(b: Bytes) -> Message {
        Message::Binary(b)
    }
}

impl From<Vec<u8>> for Message {
    fn from(b: Vec<u8>) -> Message {
        Message::Binary(b.into())
    }
}
