//! What can go wrong on an open WebSocket, for [`WebSocket::send`](super::WebSocket::send)
//! and [`recv`](super::WebSocket::recv).

use std::fmt;
use std::io;

/// An error on an open WebSocket.
#[derive(Debug)]
#[non_exhaustive]
pub enum WsError {
    /// The peer broke the protocol (RFC 6455): the connection was closed with `code`
    /// (1002 protocol error, 1007 invalid UTF-8, 1009 too big), saying `reason`.
    Protocol {
        /// The close code sent.
        code: u16,
        /// What the peer did wrong.
        reason: &'static str,
    },
    /// The close handshake has begun (a Close was sent or received): nothing more can be
    /// sent. Stop sending; `recv` returns `None` once the handshake is over.
    Closed,
    /// The connection failed (reset, broken pipe).
    Io(io::Error),
}

impl fmt::Display for WsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            WsError::Protocol { code, reason } => {
                write!(
                    f,
                    "the peer broke the WebSocket protocol ({code}): {reason}"
                )
            }
            WsError::Closed => f.write_str(
                "the WebSocket is closing: nothing more can be sent (stop sending, and read \
                 until recv returns None)",
            ),
            WsError::Io(e) => write!(f, "the WebSocket's connection failed: {e}"),
        }
    }
}

impl std::error::Error for WsError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            WsError::Io(e) => Some(e),
            _ => None,
        }
    }
}

impl From<io::Error> for WsError {
    fn from(e: io::Error) -> WsError {
        WsError::Io(e)
    }
}
