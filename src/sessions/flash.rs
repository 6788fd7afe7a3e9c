//! Flash messages: a message stored in the session for the next page, shown once, then gone
//! (Flask's `flash` / `get_flashed_messages`, Django's messages): "Note saved", "Wrong
//! password". Kept under the session key `_flashes`; needs `SessionMiddleware`.
//!
//! ```
//! use chirp::sessions::flash::{flash, take_flashes};
//! # async fn handlers() -> Result<(), chirp::Error> {
//! // In the POST handler, before redirecting:
//! flash("Note saved")?;
//! // In the page it redirects to:
//! for f in take_flashes()? {
//!     println!("[{}] {}", f.category, f.message);
//! }
//! # Ok(()) }
//! ```

use serde::{Deserialize, Serialize};

use super::session::{get_session, Session, READ_ONLY};
use crate::error::LookupError;

/// The session key flashes are kept under.
pub const FLASH_KEY: &str = "_flashes";

/// One flash message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Flash {
    /// Its category (`message` by default; `error`, `success`, ... as the app likes).
    pub category: String,
    /// The text.
    pub message: String,
}

/// Flashes `message` in the category `message`.
///
/// # Errors
/// [`LookupError`] outside a session, or inside a response stream or an upgrade callback,
/// where the session is read-only ([`Session::is_read_only`]: the cookie already went out, so
/// the message would be lost).
pub fn flash(message: impl Into<String>) -> Result<(), LookupError> {
    flash_with("message", message)
}

/// Flashes `message` in `category`.
///
/// # Errors
/// As [`flash`].
pub fn flash_with(
    category: impl Into<String>,
    message: impl Into<String>,
) -> Result<(), LookupError> {
    let session = writable_session()?;
    let mut flashes: Vec<Flash> = session.get(FLASH_KEY).unwrap_or_default();
    flashes.push(Flash {
        category: category.into(),
        message: message.into(),
    });
    // A `Vec` of strings always serializes, and the session was found writable (a session
    // is read-only from its making or never).
    session
        .try_insert(FLASH_KEY, flashes)
        .map_err(|e| LookupError::new(e.to_string()))
}

/// The messages flashed so far, oldest first, and removes them: each is shown once.
///
/// # Errors
/// As [`flash`]: inside a response stream the messages cannot be removed (the cookie already
/// went out), so they are not shown there either; take them before returning the response.
pub fn take_flashes() -> Result<Vec<Flash>, LookupError> {
    let session = writable_session()?;
    Ok(session.take(FLASH_KEY).unwrap_or_default())
}

/// The current session, when it can be changed.
fn writable_session() -> Result<Session, LookupError> {
    let session = get_session()?;
    if session.is_read_only() {
        tracing::warn!("flash messages used inside a response stream: {READ_ONLY}");
        return Err(LookupError::new(READ_ONLY));
    }
    Ok(session)
}
