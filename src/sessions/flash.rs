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

use super::session::get_session;
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
/// [`LookupError`] outside a session.
pub fn flash(message: impl Into<String>) -> Result<(), LookupError> {
    flash_with("message", message)
}

/// Flashes `message` in `category`.
///
/// # Errors
/// [`LookupError`] outside a session.
pub fn flash_with(
    category: impl Into<String>,
    message: impl Into<String>,
) -> Result<(), LookupError> {
    let session = get_session()?;
    let mut flashes: Vec<Flash> = session.get(FLASH_KEY).unwrap_or_default();
    flashes.push(Flash {
        category: category.into(),
        message: message.into(),
    });
    session.insert(FLASH_KEY, flashes);
    Ok(())
}

/// The messages flashed so far, oldest first, and removes them: each is shown once.
///
/// # Errors
/// [`LookupError`] outside a session.
pub fn take_flashes() -> Result<Vec<Flash>, LookupError> {
    let session = get_session()?;
    Ok(match session.remove(FLASH_KEY) {
        Some(value) => serde_json::from_value(value).unwrap_or_default(),
        None => Vec::new(),
    })
}
