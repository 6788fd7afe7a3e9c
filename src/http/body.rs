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
