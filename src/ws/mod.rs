//! WebSocket (RFC 6455), with permessage-deflate (RFC 7692), on the connection handover
//! after `101 Switching Protocols` ([`Response::upgrade`](crate::Response::upgrade)).
//!
//! A handler checks the handshake with [`Request::websocket`](crate::Request::websocket),
//! sets the socket's limits on the [`WebSocketUpgrade`], and answers with
//! [`on_upgrade`](WebSocketUpgrade::on_upgrade), whose callback gets the open
//! [`WebSocket`]. The protocol is chirp's own, like its HTTP/1.1 framing: a sans-IO codec
//! (`frame`, `protocol`, `deflate`) under an async socket (`socket`).
//!
//! ```
//! use chirp::ws::Message;
//! use chirp::{App, Request};
//!
//! let mut app = App::new();
//! app.route("/ws/shout", |req: Request| async move {
//!     Ok::<_, chirp::Error>(req.websocket()?.on_upgrade(|mut socket| async move {
//!         while let Some(Ok(msg)) = socket.recv().await {
//!             // Pings are answered already; a Close ends the loop with the next recv.
//!             if let Message::Text(text) = msg {
//!                 if socket.send(text.to_uppercase()).await.is_err() {
//!                     break;
//!                 }
//!             }
//!         }
//!     }))
//! });
//! ```

mod client;
mod deflate;
mod error;
mod frame;
mod handshake;
mod message;
mod protocol;
mod socket;
mod upgrade;

pub use deflate::DeflateConfig;
pub use error::WsError;
pub use message::{close_code, CloseFrame, Message, Utf8Bytes};
pub use socket::{WebSocket, WsReader, WsWriter};
pub use upgrade::WebSocketUpgrade;

pub(crate) use client::ClientHandshake;
#[cfg(feature = "internals")]
pub(crate) use protocol::fuzz_decode;
