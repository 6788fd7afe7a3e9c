//! A broadcast hub: named topics that SSE streams and WebSockets subscribe to, in memory or,
//! with the `redis` feature, shared by several instances through Redis pub/sub.
