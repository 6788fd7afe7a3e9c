//! `multipart/form-data` request bodies (HTML forms with files), read as they arrive, within
//! limits. Feature `multipart` (on by default).
//!
//! [`Request::multipart`] gives a [`Multipart`]: its parts one by one, each a [`Field`] whose
//! data is read in chunks as the client sends it. Every part is counted against
//! [`MultipartLimits`] while it streams: the number of parts, of fields and of files, the
//! size of each part's header, of the preamble before the first boundary, of each field, of
//! all fields together, of each file and of the whole body. Past a limit the reading fails
//! with a `413` [`HttpError`] that names the limit and its knob; a malformed body is a
//! `400`.
//!
//! Everything here is chirp's: the parser underneath (the `multer` crate) is not part of
//! the API, and its errors reach a handler as [`HttpError`]s, so `?` works in a handler that
//! returns `Result<_, HttpError>` or `Result<_, chirp::Error>` alike.
//!
//! ```
//! use chirp::http::multipart::MultipartLimits;
//! use chirp::{App, BodyConfig, Error, Request};
//!
//! # fn main() -> Result<(), chirp::ConfigurationError> {
//! let mut app = App::new();
//! let limits = MultipartLimits::builder().max_files(1).max_file_size(1024 * 1024).build()?;
//! app.post("/avatar", move |mut req: Request| async move {
//!     let mut form = req.multipart_with(limits)?;
//!     let (mut name, mut size) = (String::new(), 0);
//!     while let Some(mut field) = form.next_field().await? {
//!         if field.name() == Some("name") {
//!             name = field.text().await?; // a field: read whole, within max_field_size
//!         } else if field.is_file() {
//!             while let Some(chunk) = field.chunk().await? {
//!                 size += chunk.len(); // a file: chunk by chunk, never whole in memory
//!             }
//!         }
//!     }
//!     Ok::<_, Error>(format!("{name}: {size} bytes"))
//! });
//! // Streamed: the handler reads the upload as it arrives.
//! app.route_body("/avatar", BodyConfig::max(2 * 1024 * 1024).streamed());
//! # Ok(())
//! # }
//! ```
//!
//! # Memory
//!
//! The parser (the `multer` crate, underneath) is fed the body in pieces of at most 16 KiB,
//! one piece at a time, so what it holds is bounded per request: at most the preamble or
//! part-header limit (4 KiB and 8 KiB by default) plus two pieces, about 40 KiB, however
//! large the body and whatever it contains. It never searches a buffer larger than that. The
//! bytes of a part are handed to the handler as they arrive and kept only if the handler
//! keeps them ([`Field::bytes`] and [`Field::text`] keep one part, within its limit). This
//! bound is why the parser's buffer is not counted against
//! [`ServerConfig::max_buffered_bodies`](crate::ServerConfig::max_buffered_bodies): on a
//! streamed route it adds at most ~40 KiB to the few reads the server already holds per
//! connection; on a buffered route the body itself is counted, and the parser's copy is
//! that bound again.

use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;
use memchr::memmem::Finder;

use super::body::RequestBody;
use super::request::Request;
use crate::error::{ConfigurationError, HttpError};

/// The largest piece of the body handed to the parser at once.
const PIECE: usize = 16 * 1024;

/// The longest boundary RFC 2046 allows.
const MAX_BOUNDARY: usize = 70;

/// What a multipart body may hold; [`Request::multipart`] uses the defaults,
/// [`Request::multipart_with`] any others. Build them with [`MultipartLimits::builder`]:
/// a zero limit is a [`ConfigurationError`], found when the app is set up.
///
/// | Limit | Default | Past it |
/// |---|---|---|
/// | [`max_parts`](MultipartLimitsBuilder::max_parts) | 1,000 | `413` |
/// | [`max_fields`](MultipartLimitsBuilder::max_fields) (parts without a file name) | 1,000 | `413` |
/// | [`max_files`](MultipartLimitsBuilder::max_files) (parts with a file name) | 100 | `413` |
/// | [`max_part_header_size`](MultipartLimitsBuilder::max_part_header_size) | 8 KiB | `413` |
/// | [`max_preamble_size`](MultipartLimitsBuilder::max_preamble_size) | 4 KiB | `413` |
/// | [`max_field_size`](MultipartLimitsBuilder::max_field_size) (each field) | 1 MiB | `413` |
/// | [`max_fields_size`](MultipartLimitsBuilder::max_fields_size) (all fields) | 2 MiB | `413` |
/// | [`max_file_size`](MultipartLimitsBuilder::max_file_size) (each file) | none of its own | `413` |
/// | [`max_body_size`](MultipartLimitsBuilder::max_body_size) | none of its own | `413` |
///
/// The route's body limit ([`BodyConfig`](crate::BodyConfig), else
/// [`ServerConfig::max_body_size`](crate::ServerConfig::max_body_size)) always applies
/// too: the file and body limits here only lower it, for one handler.
///
/// ```
/// use chirp::http::multipart::MultipartLimits;
/// # fn main() -> Result<(), chirp::ConfigurationError> {
/// let avatars = MultipartLimits::builder()
///     .max_files(1)
///     .max_file_size(512 * 1024)
///     .build()?;
/// assert_eq!(avatars.max_files(), 1);
/// assert_eq!(avatars.max_parts(), 1_000); // the default
/// assert!(MultipartLimits::builder().max_parts(0).build().is_err());
/// # Ok(())
/// # }
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct MultipartLimits {
    max_parts: usize,
    max_fields: usize,
    max_files: usize,
    max_part_header_size: usize,
    max_preamble_size: usize,
    max_field_size: usize,
    max_fields_size: usize,
    max_file_size: Option<usize>,
    max_body_size: Option<usize>,
}

impl Default for MultipartLimits {
    fn default() -> Self {
        MultipartLimits {
            max_parts: 1_000,
            max_fields: 1_000,
            max_files: 100,
            max_part_header_size: 8 * 1024,
            max_preamble_size: 4 * 1024,
            max_field_size: 1024 * 1024,
            max_fields_size: 2 * 1024 * 1024,
            max_file_size: None,
            max_body_size: None,
        }
    }
}

impl MultipartLimits {
    /// A builder starting from the defaults.
    pub fn builder() -> MultipartLimitsBuilder {
        MultipartLimitsBuilder {
            limits: MultipartLimits::default(),
            zero: None,
        }
    }

    /// Most parts, files and fields together.
    pub fn max_parts(&self) -> usize {
        self.max_parts
    }

    /// Most fields (parts without a file name).
    pub fn max_fields(&self) -> usize {
        self.max_fields
    }

    /// Most files (parts with a file name, even an empty one).
    pub fn max_files(&self) -> usize {
        self.max_files
    }

    /// Largest header of one part, in bytes, from the end of its boundary to the blank line.
    pub fn max_part_header_size(&self) -> usize {
        self.max_part_header_size
    }

    /// Largest preamble (the bytes before the first boundary; browsers send none).
    pub fn max_preamble_size(&self) -> usize {
        self.max_preamble_size
    }

    /// Largest field (a part without a file name).
    pub fn max_field_size(&self) -> usize {
        self.max_field_size
    }

    /// Largest total of all fields' data.
    pub fn max_fields_size(&self) -> usize {
        self.max_fields_size
    }

    /// Largest file, if limited beyond the route's body limit.
    pub fn max_file_size(&self) -> Option<usize> {
        self.max_file_size
    }

    /// Largest body, if limited beyond the route's body limit.
    pub fn max_body_size(&self) -> Option<usize> {
        self.max_body_size
    }
}

/// Sets [`MultipartLimits`]; [`build`](MultipartLimitsBuilder::build) checks them.
#[derive(Debug, Clone)]
#[must_use = "a builder does nothing until .build()"]
pub struct MultipartLimitsBuilder {
    limits: MultipartLimits,
    zero: Option<&'static str>,
}

impl MultipartLimitsBuilder {
    fn set(
        mut self,
        name: &'static str,
        value: usize,
        apply: fn(&mut MultipartLimits, usize),
    ) -> Self {
        if value == 0 {
            self.zero.get_or_insert(name);
        }
        apply(&mut self.limits, value);
        self
    }

    /// Most parts, files and fields together. Default 1,000.
    pub fn max_parts(self, n: usize) -> Self {
        self.set("max_parts", n, |l, v| l.max_parts = v)
    }

    /// Most fields (parts without a file name). Default 1,000.
    pub fn max_fields(self, n: usize) -> Self {
        self.set("max_fields", n, |l, v| l.max_fields = v)
    }

    /// Most files (parts with a file name). Default 100.
    pub fn max_files(self, n: usize) -> Self {
        self.set("max_files", n, |l, v| l.max_files = v)
    }

    /// Largest header of one part, in bytes. Default 8 KiB.
    pub fn max_part_header_size(self, bytes: usize) -> Self {
        self.set("max_part_header_size", bytes, |l, v| {
            l.max_part_header_size = v
        })
    }

    /// Largest preamble before the first boundary, in bytes. Default 4 KiB.
    pub fn max_preamble_size(self, bytes: usize) -> Self {
        self.set("max_preamble_size", bytes, |l, v| l.max_preamble_size = v)
    }

    /// Largest field, in bytes. Default 1 MiB.
    pub fn max_field_size(self, bytes: usize) -> Self {
        self.set("max_field_size", bytes, |l, v| l.max_field_size = v)
    }

    /// Largest total of all fields, in bytes. Default 2 MiB.
    pub fn max_fields_size(self, bytes: usize) -> Self {
        self.set("max_fields_size", bytes, |l, v| l.max_fields_size = v)
    }

    /// Largest file, in bytes. Default: the route's body limit alone.
    pub fn max_file_size(self, bytes: usize) -> Self {
        self.set("max_file_size", bytes, |l, v| l.max_file_size = Some(v))
    }

    /// Largest body, in bytes. Default: the route's body limit alone.
    pub fn max_body_size(self, bytes: usize) -> Self {
        self.set("max_body_size", bytes, |l, v| l.max_body_size = Some(v))
    }

    /// The limits; a zero limit is a [`ConfigurationError`] (it would refuse every upload).
    pub fn build(self) -> Result<MultipartLimits, ConfigurationError> {
        match self.zero {
            Some(name) => Err(ConfigurationError::new(format!(
                "MultipartLimits::{name} must be at least 1 (a zero limit refuses every upload); \
                 to refuse uploads, do not call Request::multipart"
            ))),
            None => Ok(self.limits),
        }
    }
}

impl Request {
    /// The body as `multipart/form-data`, with the default [`MultipartLimits`]: its parts one
    /// by one, each read as it arrives (a file part is a stream of chunks, never held whole).
    /// On a route whose body is streamed ([`BodyConfig::streamed`](crate::BodyConfig::streamed))
    /// the parser holds about 40 KiB at most (see [the module](self)); elsewhere the buffered
    /// body is parsed.
    ///
    /// A request that is not `multipart/form-data` with a boundary of 1 to 70 characters is a
    /// `415`. Errors while reading are [`HttpError`]s, for `?`: `413` past a limit (the
    /// message names it, and the knob of [`MultipartLimits`] or
    /// [`BodyConfig`](crate::BodyConfig) to raise), `400` for a malformed body, and the
    /// body's own errors (`408` for a stalled client).
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
    pub fn multipart(&mut self) -> Result<Multipart, HttpError> {
        self.multipart_with(MultipartLimits::default())
    }

    /// [`Request::multipart`] with limits of the handler's own.
    ///
    /// ```
    /// use chirp::http::multipart::MultipartLimits;
    /// use chirp::{App, BodyConfig, HttpError, Request};
    ///
    /// # fn main() -> Result<(), chirp::ConfigurationError> {
    /// let limits = MultipartLimits::builder().max_files(5).max_fields(10).build()?;
    /// let mut app = App::new();
    /// app.post("/photos", move |mut req: Request| async move {
    ///     let mut form = req.multipart_with(limits)?;
    ///     let mut files = 0;
    ///     while let Some(mut field) = form.next_field().await? {
    ///         if field.is_file() {
    ///             files += 1;
    ///         }
    ///         while let Some(_chunk) = field.chunk().await? {}
    ///     }
    ///     Ok::<_, HttpError>(format!("{files} files"))
    /// });
    /// app.route_body("/photos", BodyConfig::max(50 * 1024 * 1024).streamed());
    /// # Ok(())
    /// # }
    /// ```
    pub fn multipart_with(&mut self, limits: MultipartLimits) -> Result<Multipart, HttpError> {
        let content_type = self.header("content-type").unwrap_or("");
        let boundary = multer::parse_boundary(content_type)
            .ok()
            .filter(|b| !b.is_empty() && b.len() <= MAX_BOUNDARY)
            .ok_or_else(|| {
                HttpError::unsupported_media_type(
                    "expected a multipart/form-data body with a boundary of 1 to 70 characters",
                )
            })?;
        let body = Guarded::new(self.body_stream(), &boundary, limits);
        Ok(Multipart {
            parser: multer::Multipart::new(body, boundary),
            part: None,
            counts: Counts::default(),
            limits,
        })
    }
}

/// A `multipart/form-data` body, from [`Request::multipart`]: its parts in order.
///
/// A part that is not read to its end is skipped when the next one is asked for (its bytes
/// still count against the limits). After an error, every later call returns that error.
#[derive(Debug)]
pub struct Multipart {
    parser: multer::Multipart<'static>,
    part: Option<Part>,
    counts: Counts,
    limits: MultipartLimits,
}

#[derive(Debug, Default)]
struct Counts {
    parts: usize,
    fields: usize,
    files: usize,
    fields_size: usize,
    failed: Option<HttpError>,
}

impl Counts {
    /// Remembers `error` as the end of the body, and returns it.
    fn fail(&mut self, error: HttpError) -> HttpError {
        self.failed.get_or_insert(error).clone()
    }
}

#[derive(Debug)]
struct Part {
    inner: multer::Field<'static>,
    is_file: bool,
    size: usize,
    done: bool,
}

impl Multipart {
    /// The next part, `None` after the last. The part before is skipped if it was not read
    /// to its end.
    ///
    /// # Errors
    /// `413` past [`MultipartLimits::max_parts`], [`max_fields`](MultipartLimits::max_fields)
    /// or [`max_files`](MultipartLimits::max_files) (or a size limit, while skipping the part
    /// before); `400` for a malformed body; the body's own error.
    pub async fn next_field(&mut self) -> Result<Option<Field<'_>>, HttpError> {
        if let Some(error) = &self.counts.failed {
            return Err(error.clone());
        }
        if let Some(part) = self.part.as_mut() {
            let mut field = Field {
                part,
                counts: &mut self.counts,
                limits: &self.limits,
            };
            while field.chunk().await?.is_some() {}
        }
        // multer allows one part at a time: the one before is dropped first.
        self.part = None;
        let inner = match self.parser.next_field().await {
            Ok(Some(inner)) => inner,
            Ok(None) => return Ok(None),
            Err(e) => return Err(self.counts.fail(parse_error(e))),
        };
        let is_file = inner.file_name().is_some();
        let counts = &mut self.counts;
        counts.parts += 1;
        let over = if counts.parts > self.limits.max_parts {
            Some(("parts", self.limits.max_parts, "max_parts"))
        } else if is_file {
            counts.files += 1;
            (counts.files > self.limits.max_files).then_some((
                "files",
                self.limits.max_files,
                "max_files",
            ))
        } else {
            counts.fields += 1;
            (counts.fields > self.limits.max_fields).then_some((
                "fields",
                self.limits.max_fields,
                "max_fields",
            ))
        };
        if let Some((what, limit, knob)) = over {
            return Err(counts.fail(HttpError::content_too_large(format!(
                "multipart body refused: more than {limit} {what} (MultipartLimits::{knob})"
            ))));
        }
        let part = self.part.insert(Part {
            inner,
            is_file,
            size: 0,
            done: false,
        });
        Ok(Some(Field {
            part,
            counts: &mut self.counts,
            limits: &self.limits,
        }))
    }
}

/// One part of a [`Multipart`] body: its header's fields, and its data as it arrives.
#[derive(Debug)]
pub struct Field<'a> {
    part: &'a mut Part,
    counts: &'a mut Counts,
    limits: &'a MultipartLimits,
}

impl Field<'_> {
    /// The `name` of its `Content-Disposition`: the form field it answers.
    pub fn name(&self) -> Option<&str> {
        self.part.inner.name()
    }

    /// The `filename` of its `Content-Disposition`, as the client sent it: never use it as a
    /// path.
    pub fn file_name(&self) -> Option<&str> {
        self.part.inner.file_name()
    }

    /// Whether it is a file (it has a file name, even an empty one); otherwise it is a field.
    pub fn is_file(&self) -> bool {
        self.part.is_file
    }

    /// Its `Content-Type`, if it has one.
    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    /// One of its header values, by name (any case), if present and visible ASCII.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.part.inner.headers().get(name)?.to_str().ok()
    }

    /// Its position in the body, from 0.
    pub fn index(&self) -> usize {
        self.part.inner.index()
    }

    /// Its next chunk of data, `None` at its end.
    ///
    /// # Errors
    /// `413` past [`MultipartLimits::max_field_size`], [`max_fields_size`](MultipartLimits::max_fields_size),
    /// [`max_file_size`](MultipartLimits::max_file_size) or a body limit; `400` for a
    /// malformed body; the body's own error.
    pub async fn chunk(&mut self) -> Result<Option<Bytes>, HttpError> {
        if let Some(error) = &self.counts.failed {
            return Err(error.clone());
        }
        if self.part.done {
            return Ok(None);
        }
        let chunk = match self.part.inner.chunk().await {
            Ok(Some(chunk)) => chunk,
            Ok(None) => {
                self.part.done = true;
                return Ok(None);
            }
            Err(e) => return Err(self.counts.fail(parse_error(e))),
        };
        self.part.size += chunk.len();
        let over = if self.part.is_file {
            self.limits
                .max_file_size
                .filter(|&limit| self.part.size > limit)
                .map(|limit| ("file", limit, "max_file_size"))
        } else {
            self.counts.fields_size += chunk.len();
            if self.part.size > self.limits.max_field_size {
                Some(("field", self.limits.max_field_size, "max_field_size"))
            } else if self.counts.fields_size > self.limits.max_fields_size {
                Some((
                    "fields together",
                    self.limits.max_fields_size,
                    "max_fields_size",
                ))
            } else {
                None
            }
        };
        if let Some((what, limit, knob)) = over {
            let name = self.name().unwrap_or("").to_owned();
            return Err(self.counts.fail(HttpError::content_too_large(format!(
                "multipart body refused: {what} larger than {limit} bytes \
                 (part {name:?}; MultipartLimits::{knob})"
            ))));
        }
        Ok(Some(chunk))
    }

    /// Its whole data, read to its end (held in memory: within the part's limit).
    ///
    /// # Errors
    /// As [`Field::chunk`].
    pub async fn bytes(mut self) -> Result<Bytes, HttpError> {
        let mut all = bytes::BytesMut::new();
        while let Some(chunk) = self.chunk().await? {
            all.extend_from_slice(&chunk);
        }
        Ok(all.freeze())
    }

    /// Its whole data as UTF-8 text; `400` if it is not UTF-8.
    ///
    /// # Errors
    /// As [`Field::chunk`], and `400` for data that is not UTF-8.
    pub async fn text(self) -> Result<String, HttpError> {
        let name = self.name().unwrap_or("").to_owned();
        let bytes = self.bytes().await?;
        String::from_utf8(bytes.to_vec()).map_err(|_| {
            HttpError::bad_request(format!("multipart field {name:?} is not valid UTF-8"))
        })
    }
}

/// What multer reports, as chirp's errors.
fn parse_error(e: multer::Error) -> HttpError {
    match e {
        // The body itself failed (a limit, its framing, a slow client): that error.
        multer::Error::StreamReadFailed(inner) => match inner.downcast::<HttpError>() {
            Ok(http) => *http,
            Err(other) => HttpError::bad_request(format!("upload failed: {other}")),
        },
        multer::Error::FieldSizeExceeded { .. } | multer::Error::StreamSizeExceeded { .. } => {
            HttpError::content_too_large("multipart body refused: too large")
        }
        other => HttpError::bad_request(format!("malformed multipart body: {other}")),
    }
}

/// The request body on its way to the parser: cut into pieces of at most [`PIECE`] bytes,
/// handed over one per poll (the parser takes all that is ready at once, so a pause after
/// each piece is what bounds its buffer), counted against the body limit, and followed
/// through the multipart structure by [`Scanner`] so that a preamble or a part header is
/// refused as soon as it passes its limit.
struct Guarded {
    body: RequestBody,
    rest: Option<Bytes>,
    pause: bool,
    size: usize,
    max_size: Option<usize>,
    scanner: Scanner,
    failed: Option<HttpError>,
}

impl Guarded {
    fn new(body: RequestBody, boundary: &str, limits: MultipartLimits) -> Guarded {
        Guarded {
            body,
            rest: None,
            pause: false,
            size: 0,
            max_size: limits.max_body_size,
            scanner: Scanner::new(boundary, &limits),
            failed: None,
        }
    }

    fn check(&mut self, piece: &[u8]) -> Result<(), HttpError> {
        self.size += piece.len();
        if let Some(limit) = self.max_size.filter(|&limit| self.size > limit) {
            return Err(HttpError::content_too_large(format!(
                "multipart body refused: larger than {limit} bytes (MultipartLimits::max_body_size)"
            )));
        }
        self.scanner.feed(piece)
    }
}

impl Stream for Guarded {
    type Item = Result<Bytes, HttpError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        if let Some(error) = &this.failed {
            return Poll::Ready(Some(Err(error.clone())));
        }
        if this.pause {
            // Let the parser work through the piece before it takes another.
            this.pause = false;
            cx.waker().wake_by_ref();
            return Poll::Pending;
        }
        let mut chunk = match this.rest.take() {
            Some(rest) => rest,
            None => match Pin::new(&mut this.body).poll_next(cx) {
                Poll::Ready(Some(Ok(chunk))) => chunk,
                Poll::Ready(Some(Err(error))) => {
                    this.failed = Some(error.clone());
                    return Poll::Ready(Some(Err(error)));
                }
                Poll::Ready(None) => return Poll::Ready(None),
                Poll::Pending => return Poll::Pending,
            },
        };
        if chunk.len() > PIECE {
            this.rest = Some(chunk.split_off(PIECE));
        }
        if let Err(error) = this.check(&chunk) {
            this.failed = Some(error.clone());
            return Poll::Ready(Some(Err(error)));
        }
        this.pause = true;
        Poll::Ready(Some(Ok(chunk)))
    }
}

/// Where the scanner is in the body, as the parser reads it (multer: the first `--boundary`
/// anywhere; then `--` ends the body, else blanks and CRLF; the header lines up to a blank
/// line; the data up to `CRLF--boundary`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Stage {
    Preamble,
    AfterBoundary,
    AfterDash,
    Padding,
    LineFeed,
    Header,
    Data,
    End,
}

/// Follows the multipart structure through the pieces without holding them (a search
/// carries at most a pattern's length across pieces), counting the preamble and each part's
/// header. It must agree with the parser on where each begins and ends: it searches the same
/// patterns from the same places, leftmost first, so a preamble or header the parser is still
/// buffering is one the scanner is counting.
struct Scanner {
    stage: Stage,
    /// Bytes of the current preamble or header so far.
    count: usize,
    first: Finder<'static>,
    next: Finder<'static>,
    blank_line: Finder<'static>,
    /// The last bytes of the pieces so far, for a pattern cut between two pieces.
    carry: Vec<u8>,
    max_preamble: usize,
    max_header: usize,
}

impl Scanner {
    fn new(boundary: &str, limits: &MultipartLimits) -> Scanner {
        Scanner {
            stage: Stage::Preamble,
            count: 0,
            first: Finder::new(format!("--{boundary}").as_bytes()).into_owned(),
            next: Finder::new(format!("\r\n--{boundary}").as_bytes()).into_owned(),
            blank_line: Finder::new(b"\r\n\r\n").into_owned(),
            carry: Vec::with_capacity(MAX_BOUNDARY + 4),
            max_preamble: limits.max_preamble_size,
            max_header: limits.max_part_header_size,
        }
    }

    fn feed(&mut self, mut bytes: &[u8]) -> Result<(), HttpError> {
        while !bytes.is_empty() {
            match self.stage {
                Stage::Preamble => {
                    let n = self.first.needle().len();
                    match find(&self.first, &mut self.carry, bytes) {
                        Some(end) => {
                            self.count += end;
                            self.check_preamble(self.count - n)?;
                            bytes = &bytes[end..];
                            self.enter(Stage::AfterBoundary);
                        }
                        None => {
                            self.count += bytes.len();
                            // The last bytes may yet begin the boundary.
                            self.check_preamble(self.count.saturating_sub(n - 1))?;
                            return Ok(());
                        }
                    }
                }
                Stage::Data => match find(&self.next, &mut self.carry, bytes) {
                    Some(end) => {
                        bytes = &bytes[end..];
                        self.enter(Stage::AfterBoundary);
                    }
                    None => return Ok(()),
                },
                Stage::Header => match find(&self.blank_line, &mut self.carry, bytes) {
                    Some(end) => {
                        self.count += end;
                        self.check_header()?;
                        bytes = &bytes[end..];
                        self.enter(Stage::Data);
                    }
                    None => {
                        self.count += bytes.len();
                        return self.check_header();
                    }
                },
                Stage::End => return Ok(()),
                stage => {
                    let byte = bytes[0];
                    bytes = &bytes[1..];
                    self.count += 1;
                    self.stage = match (stage, byte) {
                        (Stage::AfterBoundary, b'-') => Stage::AfterDash,
                        (Stage::AfterDash, b'-') => Stage::End,
                        (Stage::AfterBoundary | Stage::Padding, b' ' | b'\t') => Stage::Padding,
                        (Stage::AfterBoundary | Stage::Padding, b'\r') => Stage::LineFeed,
                        // After the CRLF the header's search begins (anything else is
                        // malformed: the parser fails on it; the count goes on meanwhile).
                        _ => Stage::Header,
                    };
                    self.check_header()?;
                }
            }
        }
        Ok(())
    }

    fn enter(&mut self, stage: Stage) {
        self.stage = stage;
        self.count = 0;
        self.carry.clear();
    }

    fn check_preamble(&self, size: usize) -> Result<(), HttpError> {
        if size > self.max_preamble {
            return Err(HttpError::content_too_large(format!(
                "multipart body refused: no boundary within the first {} bytes \
                 (MultipartLimits::max_preamble_size)",
                self.max_preamble
            )));
        }
        Ok(())
    }

    fn check_header(&self) -> Result<(), HttpError> {
        if self.count > self.max_header {
            return Err(HttpError::content_too_large(format!(
                "multipart body refused: a part header larger than {} bytes \
                 (MultipartLimits::max_part_header_size)",
                self.max_header
            )));
        }
        Ok(())
    }
}

/// The end of the first match of `finder` in the bytes seen so far (`carry`, the end of the
/// earlier pieces, then `bytes`), as an offset into `bytes`; `carry` keeps the last bytes for
/// the next piece.
fn find(finder: &Finder<'_>, carry: &mut Vec<u8>, bytes: &[u8]) -> Option<usize> {
    let n = finder.needle().len();
    if !carry.is_empty() {
        // A match that begins in the carry (none lies wholly inside it).
        let from_carry = carry.len();
        carry.extend_from_slice(&bytes[..bytes.len().min(n - 1)]);
        let found = finder.find(carry);
        carry.truncate(from_carry);
        if let Some(start) = found {
            carry.clear();
            return Some(start + n - from_carry);
        }
    }
    if let Some(start) = finder.find(bytes) {
        carry.clear();
        return Some(start + n);
    }
    let keep = n - 1;
    if bytes.len() >= keep {
        carry.clear();
        carry.extend_from_slice(&bytes[bytes.len() - keep..]);
    } else {
        carry.extend_from_slice(bytes);
        let excess = carry.len().saturating_sub(keep);
        carry.drain(..excess);
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The scanner finds a pattern wherever the pieces are cut.
    #[test]
    fn a_pattern_is_found_across_any_cut() {
        let finder = Finder::new(b"\r\n--abc").into_owned();
        let text = b"xx\r\n-\r\n--ab\r\n--abcyy";
        let expected = memchr::memmem::find(text, b"\r\n--abc").unwrap() + 7;
        for cut in 1..text.len() {
            let mut carry = Vec::new();
            let mut offset = 0;
            let mut found = None;
            for piece in text.chunks(cut) {
                if let Some(end) = find(&finder, &mut carry, piece) {
                    found = Some(offset + end);
                    break;
                }
                offset += piece.len();
            }
            assert_eq!(found, Some(expected), "pieces of {cut}");
        }
    }

    /// A well-formed body passes whole, cut anywhere; its preamble and headers are counted.
    #[test]
    fn the_scanner_follows_a_body_cut_anywhere() {
        let body = b"preamble\r\n--B\r\nContent-Disposition: form-data; name=\"a\"\r\n\r\none\r\n--B  \r\nContent-Disposition: form-data; name=\"b\"; filename=\"x\"\r\n\r\n\r\n--C\r\n--B--\r\nepilogue";
        for cut in 1..body.len() {
            let mut scanner = Scanner::new("B", &MultipartLimits::default());
            for piece in body.chunks(cut) {
                scanner.feed(piece).unwrap();
            }
            assert_eq!(scanner.stage, Stage::End, "pieces of {cut}");
        }
        let limits = MultipartLimits::builder()
            .max_preamble_size(7)
            .build()
            .unwrap();
        let mut scanner = Scanner::new("B", &limits);
        assert!(scanner.feed(body).is_err(), "a preamble of 10 bytes");
        let limits = MultipartLimits::builder()
            .max_part_header_size(40)
            .build()
            .unwrap();
        let mut scanner = Scanner::new("B", &limits);
        assert!(scanner.feed(body).is_err(), "a header of 45 bytes");
    }
}
