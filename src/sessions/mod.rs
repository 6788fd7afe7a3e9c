//! Sessions as handlers see them: [`get_session`] and the [`Session`] handle, the
//! [`SessionConfig`] the session middleware
//! (`chirp::middleware::sessions::SessionMiddleware`) and the stores read, the itsdangerous
//! [`Signer`] the cookies are made with, and [`flash`] messages.
//!
//! Files: `config.rs` uses `signer.rs`; `flash.rs` uses `session.rs`; `session.rs` and
//! `signer.rs` use `data.rs` ([`SessionData`]); none uses another way, nor this `mod.rs`.

mod config;
mod data;
pub mod flash;
mod session;
mod signer;
#[cfg(feature = "internals")]
pub(crate) use signer::HMACS;

pub use config::{
    Clock, ManualClock, SaveMode, SessionConfig, SystemClock, DEFAULT_ABSOLUTE_TIMEOUT,
};
pub use data::SessionData;
pub(crate) use session::{client_now, ClientClock, Origin, CURRENT};
pub use session::{get_session, regenerate_session, Session};
pub(crate) use signer::Stamps;
pub use signer::{CookieError, Digest, Signer};
