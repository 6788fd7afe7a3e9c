//! WebSocket (RFC 6455), with permessage-deflate (RFC 7692), on the connection handover
//! after `101 Switching Protocols` ([`Response::upgrade`](crate::Response::upgrade)).

mod deflate;
mod frame;
mod protocol;
