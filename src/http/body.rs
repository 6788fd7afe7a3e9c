//! Bodies that are not one buffer in memory: a response streamed from a producer, a file, and
//! a request body read as it arrives.
//!
//! A [`Response`](super::Response) keeps its common case, one [`Bytes`], in place; a streamed
//! body rides in the response's boxed extras, so the in-memory path pays nothing for it. The
//! server (`server/conn.rs`) writes these bodies; nothing here knows of sockets.

use std::fmt;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use crate::error::HttpError;

/// Any error a body stream may end with.
pub type BoxError = Box<dyn std::error::Error + Send + Sync + 'static>;

/// A type-erased response body stream, as [`Response::take_stream`](super::Response::take_stream)
/// gives it back to middleware that wraps it (compression).
pub type BodyStream = Pin<Box<dyn Stream<Item = Result<Bytes, BoxError>> + Send + 'static>>;

/// A response body that is not in memory.
pub(crate) enum Streamed {
    /// Chunks from a producer, polled only as the socket takes them.
    Stream(BodyStream),
    /// A byte range of an open file, read as it is written.
    File(FileBody),
}

impl fmt::Debug for Streamed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Streamed::Stream(_) => f.write_str("Streamed::Stream(..)"),
            Streamed::File(file) => f
                .debug_struct("Streamed::File")
                .field("offset", &file.offset)
                .field("len", &file.len)
                .finish(),
        }
    }
}

/// `len` bytes of `file` from `offset`.
pub(crate) struct FileBody {
    pub(crate) file: std::fs::File,
    pub(crate) offset: u64,
    pub(crate) len: u64,
}

impl FileBody {
    /// The file's bytes as a stream (for middleware that transforms bodies), read in pieces of
    /// `FILE_CHUNK`.
    pub(crate) fn into_stream(self) -> BodyStream {
        Box::pin(FileStream { body: self })
    }
}

/// How much of a file is read at once when it is streamed through user space.
pub(crate) const FILE_CHUNK: usize = 64 * 1024;

struct FileStream {
    body: FileBody,
}

impl Stream for FileStream {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let body = &mut self.body;
        if body.len == 0 {
            return Poll::Ready(None);
        }
        // Files are read in place, as nginx does: a read from the page cache takes
        // microseconds, far less than a hand-off to a blocking thread.
        let want = body.len.min(FILE_CHUNK as u64) as usize;
        let mut buf = vec![0u8; want];
        match read_at_exact(&body.file, &mut buf, body.offset) {
            Ok(()) => {
                body.offset += want as u64;
                body.len -= want as u64;
                Poll::Ready(Some(Ok(Bytes::from(buf))))
            }
            Err(e) => {
                body.len = 0;
                Poll::Ready(Some(Err(Box::new(e))))
            }
        }
    }
}

/// Reads exactly `buf.len()` bytes at `offset`; a file that shrank is an error (its length
/// was already promised to the client).
pub(crate) fn read_at_exact(
    file: &std::fs::File,
    mut buf: &mut [u8],
    mut offset: u64,
) -> std::io::Result<()> {
    use std::os::unix::fs::FileExt;
    while !buf.is_empty() {
        match file.read_at(buf, offset) {
            Ok(0) => {
                return Err(std::io::Error::new(
                    std::io::ErrorKind::UnexpectedEof,
                    "the file became shorter while it was sent",
                ))
            }
            Ok(n) => {
                buf = &mut buf[n..];
                offset += n as u64;
            }
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// A stream with its error type boxed.
pub(crate) struct BoxErrors<S>(pub(crate) S);

impl<S, E> Stream for BoxErrors<S>
where
    S: Stream<Item = Result<Bytes, E>> + Unpin,
    E: Into<BoxError>,
{
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Pin::new(&mut self.0)
            .poll_next(cx)
            .map(|item| item.map(|r| r.map_err(Into::into)))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.0.size_hint()
    }
}

/// How a route takes its request body: the most bytes it accepts, and whether the handler
/// reads it as it arrives ([`Request::body_stream`](super::Request::body_stream)) instead of
/// whole before it runs. Set with [`App::route_body`](crate::App::route_body); routes without
/// one take at most [`ServerConfig::max_body_size`](crate::ServerConfig::max_body_size)
/// (2 MiB), buffered.
///
/// ```
/// use chirp::BodyConfig;
/// let uploads = BodyConfig::max(100 * 1024 * 1024).streamed();
/// assert_eq!(uploads.max_size(), 100 * 1024 * 1024);
/// assert!(uploads.is_streamed());
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BodyConfig {
    pub(crate) max_size: usize,
    pub(crate) streamed: bool,
}

impl BodyConfig {
    /// Bodies of at most `bytes`, read whole before the handler runs (over it: `413`, and the
    /// connection is closed).
    pub fn max(bytes: usize) -> BodyConfig {
        BodyConfig {
            max_size: bytes,
            streamed: false,
        }
    }

    /// The body is streamed to the handler as it arrives (the limit is enforced as it
    /// arrives: past it, the stream fails, and the client gets `413` and a closed
    /// connection). Nothing of it is buffered beyond a few reads (two chunks of at most
    /// 64 KiB and the read buffer), so it does not count against
    /// [`ServerConfig::max_buffered_bodies`](crate::ServerConfig::max_buffered_bodies).
    ///
    /// The server reads nothing of the body until the handler first reads it, and only then
    /// answers `Expect: 100-continue`: a handler (or middleware) that refuses the request
    /// first never has the body sent. [`ServerConfig::body_timeout`](crate::ServerConfig::body_timeout)
    /// applies to each wait for bytes rather than to the whole body, so that a large upload
    /// on a slow link is not cut off while a stalled one is. A handler that answers without
    /// reading the body to its end has its answer sent, and the connection closed.
    pub fn streamed(mut self) -> BodyConfig {
        self.streamed = true;
        self
    }

    /// The limit, in bytes.
    pub fn max_size(&self) -> usize {
        self.max_size
    }

    /// Whether the body is streamed to the handler.
    pub fn is_streamed(&self) -> bool {
        self.streamed
    }
}

/// Where the server puts a streamed request body's chunks as they arrive (in the request's
/// extensions until the handler takes it).
pub(crate) struct BodyReceiver {
    pub(crate) chunks: tokio::sync::mpsc::Receiver<Result<Bytes, HttpError>>,
    /// Fired at the handler's first read: only then does the server read the body (and send
    /// `100 Continue` to a client that waits for it), so a handler that refuses the request
    /// first (401, 403, 415) never has the body sent at all.
    pub(crate) wanted: tokio::sync::oneshot::Sender<()>,
}

/// The sending end, held by the connection.
pub(crate) type BodySender = tokio::sync::mpsc::Sender<Result<Bytes, HttpError>>;

/// A request body read as it arrives, from [`Request::body_stream`](super::Request::body_stream):
/// chunks in order, then `None`. An error (`413` past the route's limit, `408` when the
/// client is too slow, `400` for broken chunked framing) ends it; the server then answers
/// with that error and closes the connection, whatever the handler returns.
///
/// For a route whose body is not streamed, it yields the buffered body as one chunk.
/// Also a [`Stream`](futures_core::Stream), for `multer` and the like.
#[derive(Debug)]
pub struct RequestBody {
    inner: RequestBodyInner,
}

#[derive(Debug)]
enum RequestBodyInner {
    Buffered(Option<Bytes>),
    Channel {
        chunks: tokio::sync::mpsc::Receiver<Result<Bytes, HttpError>>,
        wanted: Option<tokio::sync::oneshot::Sender<()>>,
    },
}

impl std::fmt::Debug for BodyReceiver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BodyReceiver")
    }
}

impl RequestBody {
    pub(crate) fn buffered(body: Bytes) -> RequestBody {
        RequestBody {
            inner: RequestBodyInner::Buffered((!body.is_empty()).then_some(body)),
        }
    }

    pub(crate) fn channel(rx: BodyReceiver) -> RequestBody {
        RequestBody {
            inner: RequestBodyInner::Channel {
                chunks: rx.chunks,
                wanted: Some(rx.wanted),
            },
        }
    }

    /// The next chunk, `None` at the end.
    pub async fn next_chunk(&mut self) -> Option<Result<Bytes, HttpError>> {
        std::future::poll_fn(|cx| Pin::new(&mut *self).poll_next(cx)).await
    }
}

impl Stream for RequestBody {
    type Item = Result<Bytes, HttpError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        match &mut self.inner {
            RequestBodyInner::Buffered(body) => Poll::Ready(body.take().map(Ok)),
            RequestBodyInner::Channel { chunks, wanted } => {
                if let Some(wanted) = wanted.take() {
                    let _ = wanted.send(());
                }
                chunks.poll_recv(cx)
            }
        }
    }
}

/// A body stream polled with a task-local value in scope. A middleware sets its task-local
/// (the session, the CSRF settings, the request id, ...) around the rest of the chain, but
/// the connection polls a streamed body after the middleware has returned, outside that
/// scope: wrapped in this, every poll of the producer enters the scope again
/// ([`Response::carry_task_local`](super::Response::carry_task_local)).
pub(crate) struct ScopedStream<T: 'static> {
    key: &'static tokio::task::LocalKey<T>,
    /// `None` only if a poll panicked mid-way (the value was dropped with it).
    value: Option<T>,
    inner: BodyStream,
}

// `value` is never pinned (it is moved in and out of the task-local at each poll), and the
// inner stream is boxed: the wrapper can move freely.
impl<T> Unpin for ScopedStream<T> {}

impl<T: Send + 'static> ScopedStream<T> {
    pub(crate) fn new(
        key: &'static tokio::task::LocalKey<T>,
        value: T,
        inner: BodyStream,
    ) -> ScopedStream<T> {
        ScopedStream {
            key,
            value: Some(value),
            inner,
        }
    }
}

impl<T: Send + 'static> Stream for ScopedStream<T> {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        let inner = &mut this.inner;
        let Some(value) = this.value.take() else {
            return inner.as_mut().poll_next(cx);
        };
        // tokio's `TaskLocalFuture` is the one way to hold a task-local across a poll and
        // get the value back after it (`sync_scope` drops it): one poll of the stream as a
        // future, in scope, then the value is taken back for the next poll. Nothing is
        // allocated or cloned per poll.
        let mut scoped = std::pin::pin!(this.key.scope(
            value,
            std::future::poll_fn(|cx| inner.as_mut().poll_next(cx))
        ));
        let polled = std::future::Future::poll(scoped.as_mut(), cx);
        this.value = scoped.as_mut().take_value();
        polled
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.inner.size_hint()
    }
}

/// A stream with nothing in it: a placeholder while a body stream is moved into a wrapper.
pub(crate) struct EmptyStream;

impl Stream for EmptyStream {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        Poll::Ready(None)
    }
}
