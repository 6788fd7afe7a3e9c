//! [`CompressionMiddleware`]: gzip and brotli response bodies, chosen from `Accept-Encoding`
//! (RFC 9110 §12.5.3, q-values), for compressible types above a size threshold. In-memory
//! bodies are compressed whole (the length is recomputed); streamed ones chunk by chunk, each
//! chunk flushed through the compressor so that a Server-Sent Event is not held back.

use std::io::Write;
use std::pin::Pin;
use std::task::{Context, Poll};

use bytes::Bytes;
use futures_core::Stream;

use crate::future::BoxFuture;
use crate::http::encoding::accepted_q;
use crate::http::{BodyStream, BoxError, Request, Response, StatusCode};
use crate::service::{Middleware, Next};

/// Compresses responses for clients that accept it.
///
/// A response is compressed when the client accepts `br` or `gzip` (the higher q-value;
/// brotli on a tie), its type is compressible (text, JSON, JavaScript, XML, SVG, WebAssembly,
/// event streams), its body is at least [`min_size`](CompressionMiddleware::min_size) bytes (streams of
/// unknown length always are), and it is not already encoded, partial (`206`), or marked
/// `Cache-Control: no-transform`. Such responses carry `Vary: Accept-Encoding`, whether
/// compressed or not; a strong `ETag` becomes weak, and `Accept-Ranges` is dropped.
///
/// ```
/// use chirp::middleware::compression::CompressionMiddleware;
/// let mut app = chirp::App::new();
/// app.add_middleware(CompressionMiddleware::new().min_size(512).brotli_quality(5));
/// ```
#[derive(Debug, Clone)]
pub struct CompressionMiddleware {
    min_size: usize,
    gzip: Option<u32>,
    brotli: Option<u32>,
}

impl Default for CompressionMiddleware {
    fn default() -> Self {
        CompressionMiddleware::new()
    }
}

/// The chosen coding.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Coding {
    Gzip(u32),
    Brotli(u32),
}

impl Coding {
    fn name(self) -> &'static str {
        match self {
            Coding::Gzip(_) => "gzip",
            Coding::Brotli(_) => "br",
        }
    }
}

impl CompressionMiddleware {
    /// gzip at level 6 and brotli at quality 4 (fast enough for dynamic responses), for
    /// bodies of 1 KiB or more.
    pub fn new() -> CompressionMiddleware {
        CompressionMiddleware {
            min_size: 1024,
            gzip: Some(6),
            brotli: Some(4),
        }
    }

    /// The smallest in-memory body compressed (default 1024 bytes): below it, the coding's
    /// overhead outweighs the gain.
    pub fn min_size(mut self, bytes: usize) -> CompressionMiddleware {
        self.min_size = bytes;
        self
    }

    /// The gzip level, 0–9 (default 6; clamped).
    pub fn gzip_level(mut self, level: u32) -> CompressionMiddleware {
        self.gzip = Some(level.min(9));
        self
    }

    /// The brotli quality, 0–11 (default 4; clamped). 11 is for precompressing, not for
    /// every request.
    pub fn brotli_quality(mut self, quality: u32) -> CompressionMiddleware {
        self.brotli = Some(quality.min(11));
        self
    }

    /// Turns gzip off (`false`) or back on.
    pub fn gzip(mut self, on: bool) -> CompressionMiddleware {
        self.gzip = if on { self.gzip.or(Some(6)) } else { None };
        self
    }

    /// Turns brotli off (`false`) or back on.
    pub fn brotli(mut self, on: bool) -> CompressionMiddleware {
        self.brotli = if on { self.brotli.or(Some(4)) } else { None };
        self
    }

    /// The coding `accept` asks for, among the enabled ones.
    fn choose(&self, accept: &str) -> Option<Coding> {
        let br = self
            .brotli
            .map(|q| (accepted_q(accept, "br"), Coding::Brotli(q)));
        let gz = self
            .gzip
            .map(|l| (accepted_q(accept, "gzip"), Coding::Gzip(l)));
        match (br, gz) {
            (Some((b, br)), Some((g, gz))) => {
                if b <= 0.0 && g <= 0.0 {
                    None
                } else if b >= g {
                    Some(br)
                } else {
                    Some(gz)
                }
            }
            (Some((q, c)), None) | (None, Some((q, c))) => (q > 0.0).then_some(c),
            (None, None) => None,
        }
    }

    /// Compresses `res` for a client that sent `accept` (or none).
    fn apply(&self, accept: Option<&str>, res: &mut Response) {
        let status = res.status();
        if status.forbids_body() || status == StatusCode::PARTIAL_CONTENT {
            return;
        }
        if res.header("content-encoding").is_some()
            || res
                .header("cache-control")
                .is_some_and(|c| c.to_ascii_lowercase().contains("no-transform"))
            || !res.content_type().is_some_and(is_compressible)
        {
            return;
        }
        let len = match (res.is_streamed(), res.streamed_len()) {
            (false, _) => Some(res.body().len() as u64),
            (true, len) => len,
        };
        if len.is_some_and(|n| n < self.min_size as u64) {
            return;
        }
        add_vary(res);
        let Some(coding) = accept.and_then(|a| self.choose(a)) else {
            return;
        };
        if res.is_streamed() {
            let Some(inner) = res.take_stream() else {
                return;
            };
            res.set_stream(Box::pin(CompressedStream {
                inner,
                encoder: Some(Encoder::new(coding)),
            }));
        } else {
            match Encoder::new(coding).compress_whole(res.body()) {
                Ok(body) => res.set_body(body),
                Err(e) => {
                    tracing::error!(error = %e, "compression failed: sent uncompressed");
                    return;
                }
            }
        }
        res.append_trusted_header("content-encoding", coding.name());
        res.remove_header("accept-ranges");
        // The compressed bytes are another representation: a strong tag would claim
        // byte-for-byte equality with the uncompressed one.
        if let Some(etag) = res.header("etag") {
            if !etag.starts_with("W/") {
                let weak = format!("W/{etag}");
                res.set_header("etag", weak);
            }
        }
    }
}

/// Adds `Vary: Accept-Encoding` unless the response already varies on it (or on `*`).
fn add_vary(res: &mut Response) {
    let varies = res.headers_all("vary").any(|v| {
        v.split(',')
            .any(|f| f.trim() == "*" || f.trim().eq_ignore_ascii_case("accept-encoding"))
    });
    if !varies {
        res.append_trusted_header("vary", "accept-encoding");
    }
}

/// Whether a content type is worth compressing (text formats; not images, archives or
/// already-compressed media).
fn is_compressible(content_type: &str) -> bool {
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence.starts_with("text/")
        || essence.ends_with("+json")
        || essence.ends_with("+xml")
        || matches!(
            essence.as_str(),
            "application/json"
                | "application/javascript"
                | "application/xml"
                | "application/wasm"
                | "application/x-javascript"
                | "image/svg+xml"
                | "application/problem+json"
        )
}

/// A gzip or brotli compressor writing into a buffer that is drained after each write.
enum Encoder {
    Gzip(Box<flate2::write::GzEncoder<Vec<u8>>>),
    Brotli(Box<brotli::CompressorWriter<Vec<u8>>>),
}

impl Encoder {
    fn new(coding: Coding) -> Encoder {
        match coding {
            Coding::Gzip(level) => Encoder::Gzip(Box::new(flate2::write::GzEncoder::new(
                Vec::new(),
                flate2::Compression::new(level),
            ))),
            // A 1 MiB window (lgwin 20) bounds the encoder's memory.
            Coding::Brotli(quality) => Encoder::Brotli(Box::new(brotli::CompressorWriter::new(
                Vec::new(),
                4096,
                quality,
                20,
            ))),
        }
    }

    /// Compresses `bytes` and flushes (so the output so far decodes on its own), returning
    /// the output.
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => {
                e.write_all(bytes)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
            Encoder::Brotli(e) => {
                e.write_all(bytes)?;
                e.flush()?;
                Ok(std::mem::take(e.get_mut()))
            }
        }
    }

    /// Compresses all of `bytes` at once (no flushes in between).
    fn compress_whole(self, bytes: &[u8]) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(mut e) => {
                e.write_all(bytes)?;
                e.finish()
            }
            Encoder::Brotli(mut e) => {
                e.write_all(bytes)?;
                Ok(e.into_inner())
            }
        }
    }

    /// Ends the compressed stream, returning its last bytes.
    fn finish(self) -> std::io::Result<Vec<u8>> {
        match self {
            Encoder::Gzip(e) => e.finish(),
            Encoder::Brotli(e) => Ok(e.into_inner()),
        }
    }
}

/// A streamed body, compressed chunk by chunk.
struct CompressedStream {
    inner: BodyStream,
    /// `None` once the end has been written.
    encoder: Option<Encoder>,
}

impl Stream for CompressedStream {
    type Item = Result<Bytes, BoxError>;

    fn poll_next(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Option<Self::Item>> {
        let this = &mut *self;
        loop {
            let Some(encoder) = this.encoder.as_mut() else {
                return Poll::Ready(None);
            };
            return match this.inner.as_mut().poll_next(cx) {
                Poll::Pending => Poll::Pending,
                Poll::Ready(Some(Err(e))) => {
                    this.encoder = None;
                    Poll::Ready(Some(Err(e)))
                }
                Poll::Ready(Some(Ok(chunk))) => match encoder.write(&chunk) {
                    Ok(out) if out.is_empty() => continue,
                    Ok(out) => Poll::Ready(Some(Ok(Bytes::from(out)))),
                    Err(e) => {
                        this.encoder = None;
                        Poll::Ready(Some(Err(Box::new(e))))
                    }
                },
                Poll::Ready(None) => {
                    let encoder = this.encoder.take().expect("checked above");
                    match encoder.finish() {
                        Ok(end) if end.is_empty() => Poll::Ready(None),
                        Ok(end) => Poll::Ready(Some(Ok(Bytes::from(end)))),
                        Err(e) => Poll::Ready(Some(Err(Box::new(e)))),
                    }
                }
            };
        }
    }
}

impl Middleware for CompressionMiddleware {
    fn call<'a>(&'a self, req: Request, next: Next) -> BoxFuture<'a, Response> {
        Box::pin(async move {
            let accept = req.header("accept-encoding").map(str::to_owned);
            let mut res = next.run(req).await;
            self.apply(accept.as_deref(), &mut res);
            res
        })
    }

    fn name(&self) -> &'static str {
        "CompressionMiddleware"
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn negotiation() {
        let c = CompressionMiddleware::new();
        assert_eq!(c.choose("gzip, br"), Some(Coding::Brotli(4)));
        assert_eq!(c.choose("gzip;q=1, br;q=0.9"), Some(Coding::Gzip(6)));
        assert_eq!(c.choose("gzip"), Some(Coding::Gzip(6)));
        assert_eq!(c.choose("identity"), None);
        assert_eq!(c.choose("br;q=0, gzip;q=0"), None);
        assert_eq!(c.choose("*"), Some(Coding::Brotli(4)));
        assert_eq!(
            CompressionMiddleware::new()
                .brotli(false)
                .choose("br, gzip"),
            Some(Coding::Gzip(6))
        );
        assert_eq!(
            CompressionMiddleware::new().gzip(false).choose("gzip"),
            None
        );
    }

    #[test]
    fn compressible_types() {
        for t in [
            "text/html; charset=utf-8",
            "application/json",
            "image/svg+xml",
            "application/ld+json",
            "text/event-stream",
        ] {
            assert!(is_compressible(t), "{t}");
        }
        for t in [
            "image/png",
            "application/zip",
            "video/mp4",
            "application/octet-stream",
        ] {
            assert!(!is_compressible(t), "{t}");
        }
    }
}
