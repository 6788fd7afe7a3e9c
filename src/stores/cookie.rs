//! [`CookieStore`], the default session store: the whole session, signed, in the cookie
//! (itsdangerous' format, byte-compatible with the Python framework's).

use std::future::Future;

use super::session::{Internal, SessionRecord, SessionStore};
use crate::error::Error;
use crate::sessions::{SessionData, Signer, Stamps};

/// The default store: the whole session, signed, in the cookie (itsdangerous format).
#[derive(Debug, Clone)]
pub struct CookieStore {
    signer: Signer,
}

impl CookieStore {
    /// A store that signs with `signer`.
    pub fn new(signer: Signer) -> CookieStore {
        CookieStore { signer }
    }

    /// The signer.
    pub fn signer(&self) -> &Signer {
        &self.signer
    }
}

impl SessionStore for CookieStore {
    fn load(
        &self,
        cookie_value: &str,
    ) -> impl Future<Output = Result<Option<SessionRecord>, Error>> + Send {
        self.load_into(cookie_value, SessionData::new(), Internal)
    }

    fn save(
        &self,
        data: &SessionData,
        now: u64,
        _previous: Option<&str>,
    ) -> impl Future<Output = Result<String, Error>> + Send {
        let mut out = String::new();
        self.signer.dumps_into(data, now, &mut out);
        std::future::ready(Ok(out))
    }

    fn load_into(
        &self,
        cookie_value: &str,
        mut data: SessionData,
        _: Internal,
    ) -> impl Future<Output = Result<Option<SessionRecord>, Error>> + Send {
        let record = match self.signer.loads_into(cookie_value, &mut data) {
            Ok(issued_at) => Some(SessionRecord { data, issued_at }),
            Err(e) => {
                tracing::debug!(reason = ?e, "session cookie refused; starting an empty session");
                None
            }
        };
        std::future::ready(Ok(record))
    }

    fn save_into(
        &self,
        data: &SessionData,
        now: u64,
        _previous: Option<&str>,
        out: &mut String,
        _: Internal,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        self.signer.dumps_into(data, now, out);
        std::future::ready(Ok(()))
    }

    fn issued_at_is_saved(&self, _: Internal) -> bool {
        true // the cookie's signed timestamp is the `now` it was saved with
    }

    fn load_stamped(
        &self,
        cookie_value: &str,
        mut data: SessionData,
        stamps: &mut Stamps<'_>,
        _: Internal,
    ) -> impl Future<Output = Result<Option<SessionRecord>, Error>> + Send {
        let record = match self
            .signer
            .loads_stamped_into(cookie_value, &mut data, stamps)
        {
            Ok(issued_at) => Some(SessionRecord { data, issued_at }),
            Err(e) => {
                tracing::debug!(reason = ?e, "session cookie refused; starting an empty session");
                None
            }
        };
        std::future::ready(Ok(record))
    }

    fn save_stamped(
        &self,
        data: &mut SessionData,
        stamps: &Stamps<'_>,
        now: u64,
        _previous: Option<&str>,
        _forget: Option<&str>,
        out: &mut String,
        _: Internal,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        // Nothing to forget or reuse: a cookie session is its signature.
        self.signer.dumps_stamped_into(data, stamps, now, out);
        std::future::ready(Ok(()))
    }

    fn save_regenerated_into(
        &self,
        data: &SessionData,
        now: u64,
        _previous: &str,
        out: &mut String,
        _: Internal,
    ) -> impl Future<Output = Result<(), Error>> + Send {
        // Nothing to forget: a regenerated cookie session is a new signature.
        self.signer.dumps_into(data, now, out);
        std::future::ready(Ok(()))
    }
}
