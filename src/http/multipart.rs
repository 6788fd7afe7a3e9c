//! `multipart/form-data` request bodies (HTML forms with files), read as they arrive through
//! the `multer` crate. Feature `multipart` (on by default).

use super::request::Request;
use crate::error::HttpError;

pub use multer::{Field, Multipart};

impl Request {
    /// The body as `multipart/form-data`: its fields one by one, each read as it arrives
    /// (a file part is a stream of chunks, never held whole). On a route whose body is
    /// streamed ([`BodyConfig::streamed`](crate::BodyConfig::streamed)), nothing is buffered
    /// beyond a few reads; elsewhere the buffered body is parsed.
    ///
    /// A request that is not `multipart/form-data` with a boundary is a `415`. Errors while
    /// reading convert to [`HttpError`] with `?`: `413` past the route's limit, `400` for a
    /// malformed body.
    ///
    /// ```
    /// use chirp::{HttpError, Request};
    /// async fn upload(mut req: Request) -> Result<String, HttpError> {
    ///     let mut form = req.multipart()?;
    ///     let mut names = Vec::new();
    ///     while let Some(mut field) = form.next_field().await? {
    ///         let mut size = 0;
    ///         while let Some(chunk) = field.chunk().await? {
    ///             size += chunk.len();
    ///         }
    ///         names.push(format!("{}: {size} bytes", field.name().unwrap_or("?")));
    ///     }
    ///     Ok(names.join("\n"))
    /// }
    /// ```
    pub fn multipart(&mut self) -> Result<Multipart<'static>, HttpError> {
        let content_type = self.header("content-type").unwrap_or("");
        let boundary = multer::parse_boundary(content_type).map_err(|_| {
            HttpError::unsupported_media_type("expected a multipart/form-data body with a boundary")
        })?;
        Ok(Multipart::new(self.body_stream(), boundary))
    }
}

impl From<multer::Error> for HttpError {
    fn from(e: multer::Error) -> Self {
        match e {
            // The body itself failed (its limit, its framing, a slow client): that error.
            multer::Error::StreamReadFailed(inner) => match inner.downcast::<HttpError>() {
                Ok(http) => *http,
                Err(other) => HttpError::bad_request(format!("upload failed: {other}")),
            },
            multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
                HttpError::payload_too_large("upload too large")
            }
            other => HttpError::bad_request(format!("malformed multipart body: {other}")),
        }
    }
}
