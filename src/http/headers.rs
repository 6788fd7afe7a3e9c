//! Request headers, zero-copy: the names and values stay in the request's head buffer (a
//! [`Bytes`] shared with the connection's read buffer); [`Headers`] holds only their 16-bit
//! offsets (a head is at most 64 KiB), six bytes a header. Up to [`INLINE`] headers need no
//! heap allocation.

use bytes::Bytes;

/// How many header offsets live inline, without a heap allocation.
const INLINE: usize = 16;

/// Largest head buffer the offsets can address.
pub(crate) const MAX_HEAD: usize = u16::MAX as usize;

/// Where one header sits in the head buffer: its name starts at `name` and ends at the first
/// `:` after it (a name is a token, which holds no `:`, and HTTP/1.1 allows no space before the
/// colon); its value is the range `value`. Six bytes, not eight with the name's end: the
/// request moves through the app by value, and a smaller one moves faster.
#[derive(Debug, Clone, Copy, Default)]
struct Span {
    name: u16,
    value: (u16, u16),
}

/// The header list's storage: inline while it fits, on the heap after.
// Inline on purpose: up to 16 headers cost no allocation; the enum is moved rarely.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
enum Spans {
    Inline { len: u8, items: [Span; INLINE] },
    Heap(Vec<Span>),
}

impl Spans {
    fn as_slice(&self) -> &[Span] {
        match self {
            Spans::Inline { len, items } => &items[..usize::from(*len)],
            Spans::Heap(v) => v,
        }
    }

    /// Appends a span: inline, a store and an increment (every header of every request).
    #[inline(always)]
    fn push(&mut self, span: Span) {
        match self {
            Spans::Inline { len, items } if usize::from(*len) < INLINE => {
                items[usize::from(*len)] = span;
                *len += 1;
            }
            _ => self.push_spilled(span),
        }
    }

    /// The 17th header on: the list moves to the heap.
    #[cold]
    fn push_spilled(&mut self, span: Span) {
        match self {
            Spans::Inline { items, .. } => {
                let mut v = items.to_vec();
                v.push(span);
                *self = Spans::Heap(v);
            }
            Spans::Heap(v) => v.push(span),
        }
    }
}

/// A request's headers: case-insensitive names, multi-valued, in the order received.
///
/// ```
/// use chirp::{Method, Request};
/// let req = Request::new(Method::Get, "/")
///     .with_header("Accept", "text/html")
///     .with_header("X-Tag", "a")
///     .with_header("x-tag", "b");
/// assert_eq!(req.headers().get("accept"), Some("text/html"));
/// assert_eq!(req.headers().get_all("X-TAG").collect::<Vec<_>>(), ["a", "b"]);
/// ```
#[derive(Debug, Clone)]
pub struct Headers {
    buf: Bytes,
    spans: Spans,
}

impl Default for Headers {
    fn default() -> Self {
        Headers {
            buf: Bytes::new(),
            spans: Spans::Inline {
                len: 0,
                items: [Span::default(); INLINE],
            },
        }
    }
}

impl Headers {
    fn name_at(&self, s: &Span) -> &str {
        // Names are checked to be tokens (ASCII) when the list is built.
        std::str::from_utf8(self.name_bytes(s)).unwrap_or("")
    }

    fn name_bytes(&self, s: &Span) -> &[u8] {
        let rest = &self.buf[s.name as usize..s.value.0 as usize];
        let end = rest.iter().position(|&b| b == b':').unwrap_or(rest.len());
        &rest[..end]
    }

    /// Whether the header at `s` is called `name` (ASCII case-insensitive), on bytes: the
    /// colon sits right after `name.len()` bytes (which rules out most other names at once),
    /// and those bytes are `name`.
    fn is_named(&self, s: &Span, name: &str) -> bool {
        let start = s.name as usize;
        let end = start + name.len();
        self.buf.get(end) == Some(&b':')
            && self.buf[start..end].eq_ignore_ascii_case(name.as_bytes())
    }

    fn value_at(&self, s: &Span) -> &[u8] {
        &self.buf[s.value.0 as usize..s.value.1 as usize]
    }

    /// The first value of `name` as text, if present and valid UTF-8.
    pub fn get(&self, name: &str) -> Option<&str> {
        self.get_bytes(name)
            .and_then(|v| std::str::from_utf8(v).ok())
    }

    /// The first value of `name`, as raw bytes.
    pub fn get_bytes(&self, name: &str) -> Option<&[u8]> {
        self.spans
            .as_slice()
            .iter()
            .find(|s| self.is_named(s, name))
            .map(|s| self.value_at(s))
    }

    /// Every value of `name` that is valid UTF-8, in order.
    pub fn get_all<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a str> + 'a {
        self.spans
            .as_slice()
            .iter()
            .filter(move |s| self.is_named(s, name))
            .filter_map(move |s| std::str::from_utf8(self.value_at(s)).ok())
    }

    /// Every value of `name`, as raw bytes.
    pub(crate) fn get_all_bytes<'a>(
        &'a self,
        name: &'a str,
    ) -> impl Iterator<Item = &'a [u8]> + 'a {
        self.spans
            .as_slice()
            .iter()
            .filter(move |s| self.is_named(s, name))
            .map(move |s| self.value_at(s))
    }

    /// Whether the values of `name`, as comma-separated lists (RFC 9110 §5.6.1), hold
    /// `token`, in any case: `Connection: keep-alive, Upgrade` holds `upgrade`.
    ///
    /// ```
    /// use chirp::{Method, Request};
    /// let req = Request::new(Method::Get, "/").with_header("connection", "keep-alive, Upgrade");
    /// assert!(req.headers().has_token("connection", "upgrade"));
    /// assert!(!req.headers().has_token("connection", "close"));
    /// ```
    pub fn has_token(&self, name: &str, token: &str) -> bool {
        self.get_all(name)
            .any(|v| v.split(',').any(|t| t.trim().eq_ignore_ascii_case(token)))
    }

    /// Whether `name` is present.
    pub fn contains(&self, name: &str) -> bool {
        self.get_bytes(name).is_some()
    }

    /// Every header as `(name, raw value)`, in the order received.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &[u8])> {
        self.spans
            .as_slice()
            .iter()
            .map(move |s| (self.name_at(s), self.value_at(s)))
    }

    /// The headers whose names start with `prefix` (ASCII, case-insensitive), as (the rest of
    /// the name, the value): for every other header one compare of `prefix.len()` bytes, and
    /// no scan of its name.
    pub(crate) fn prefixed<'a>(
        &'a self,
        prefix: &'a str,
    ) -> impl Iterator<Item = (&'a [u8], &'a [u8])> + 'a {
        self.spans
            .as_slice()
            .iter()
            .filter(move |s| {
                let start = s.name as usize;
                self.buf
                    .get(start..start + prefix.len())
                    .is_some_and(|p| p.eq_ignore_ascii_case(prefix.as_bytes()))
            })
            .map(move |s| {
                let name = self.name_bytes(s);
                (
                    name.get(prefix.len()..).unwrap_or_default(),
                    self.value_at(s),
                )
            })
    }

    /// Number of header lines.
    pub fn len(&self) -> usize {
        self.spans.as_slice().len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The buffer the offsets point into (shared with the request target).
    pub(crate) fn buffer(&self) -> &Bytes {
        &self.buf
    }

    /// A copy with one more header appended (copies the buffer: for requests built in code,
    /// such as tests, not for the server's hot path).
    pub(crate) fn appended(&self, name: &str, value: &str) -> Headers {
        assert!(
            !name.contains(':'),
            "a header name cannot contain ':' (got {name:?})"
        );
        let mut buf = Vec::with_capacity(self.buf.len() + name.len() + 1 + value.len());
        buf.extend_from_slice(&self.buf);
        let name_at = buf.len();
        buf.extend_from_slice(name.as_bytes());
        buf.push(b':');
        let value_at = (buf.len(), buf.len() + value.len());
        buf.extend_from_slice(value.as_bytes());
        let mut spans = self.spans.clone();
        assert!(
            buf.len() <= MAX_HEAD,
            "a request built in code is limited to 64 KiB of headers"
        );
        spans.push(Span {
            name: name_at as u16,
            value: (value_at.0 as u16, value_at.1 as u16),
        });
        Headers {
            buf: Bytes::from(buf),
            spans,
        }
    }
}

/// Collects header offsets while a head is parsed, then freezes them with the buffer. The
/// connection keeps one for all its requests, and with it the last `Host` value the parser
/// found valid: a client sends the same Host on every request of a connection, and one
/// comparison is cheaper than checking its syntax again.
pub(crate) struct HeadersBuilder {
    spans: Spans,
    known_host: KnownHost,
}

/// A Host value already found valid on this connection (inline: no allocation).
struct KnownHost {
    len: u8,
    bytes: [u8; KnownHost::MAX],
}

impl KnownHost {
    const MAX: usize = 63;
}

/// `a == b` for two short slices of the same length, eight bytes at a time (the last word
/// overlapping the one before): a Host is 10 to 30 bytes, where a call to libc's memcmp
/// costs more than the comparison.
#[inline]
fn same_short(a: &[u8], b: &[u8]) -> bool {
    let n = a.len();
    if n != b.len() {
        return false;
    }
    if n < 8 {
        return a.iter().zip(b).all(|(x, y)| x == y);
    }
    let word = |s: &[u8], at: usize| {
        let mut w = [0u8; 8];
        w.copy_from_slice(&s[at..at + 8]);
        u64::from_ne_bytes(w)
    };
    let mut i = 0;
    while i + 8 < n {
        if word(a, i) != word(b, i) {
            return false;
        }
        i += 8;
    }
    word(a, n - 8) == word(b, n - 8)
}

fn empty_spans() -> Spans {
    Spans::Inline {
        len: 0,
        items: [Span::default(); INLINE],
    }
}

impl HeadersBuilder {
    pub(crate) fn new() -> Self {
        HeadersBuilder {
            spans: empty_spans(),
            known_host: KnownHost {
                len: 0,
                bytes: [0; KnownHost::MAX],
            },
        }
    }

    /// Whether `host` is the value last passed to [`remember_host`](Self::remember_host).
    #[inline]
    pub(crate) fn is_known_host(&self, host: &[u8]) -> bool {
        let known = &self.known_host;
        usize::from(known.len) == host.len()
            && !host.is_empty()
            && same_short(&known.bytes[..host.len()], host)
    }
    /// Remembers a Host value found valid (one too long to keep is checked each time).
    pub(crate) fn remember_host(&mut self, host: &[u8]) {
        if let Some(slot) = self.known_host.bytes.get_mut(..host.len()) {
            slot.copy_from_slice(host);
            self.known_host.len = host.len() as u8;
        }
    }

    /// Records a header whose name starts at `name` (followed by its `:`) and whose value is
    /// the range `value` of the buffer (which is at most [`MAX_HEAD`] long: the server caps
    /// heads at that).
    pub(crate) fn push(&mut self, name: usize, value: (usize, usize)) {
        debug_assert!(name < value.0 && value.1 <= MAX_HEAD);
        self.spans.push(Span {
            name: name as u16,
            value: (value.0 as u16, value.1 as u16),
        });
    }

    /// Forgets the offsets recorded so far (a heap list goes back to inline).
    pub(crate) fn clear(&mut self) {
        match &mut self.spans {
            Spans::Inline { len, .. } => *len = 0,
            Spans::Heap(_) => self.spans = empty_spans(),
        }
    }

    /// Freezes the offsets recorded so far with `buf`, and starts over: the connection keeps
    /// one builder for all its requests.
    #[inline]
    pub(crate) fn take(&mut self, buf: Bytes) -> Headers {
        let spans = match &mut self.spans {
            Spans::Inline { len, items } => {
                let spans = Spans::Inline {
                    len: *len,
                    items: *items,
                };
                *len = 0;
                spans
            }
            Spans::Heap(_) => std::mem::replace(&mut self.spans, empty_spans()),
        };
        Headers { buf, spans }
    }

    /// The headers recorded so far over `buf`, without starting over (a copy of the offsets:
    /// for the rare request whose headers are needed before the request is made).
    pub(crate) fn peek(&self, buf: &Bytes) -> Headers {
        Headers {
            buf: buf.clone(),
            spans: self.spans.clone(),
        }
    }

    pub(crate) fn finish(self, buf: Bytes) -> Headers {
        Headers {
            buf,
            spans: self.spans,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn short_slices_compare_like_slices() {
        let text = b"127.0.0.1:8080.example.com:443-and-some-more-bytes-to-run-long";
        for n in 0..text.len() {
            let a = &text[..n];
            assert!(same_short(a, a));
            for i in 0..n {
                let mut b = a.to_vec();
                b[i] ^= 1;
                assert!(!same_short(a, &b), "{n} {i}");
            }
        }
        assert!(!same_short(b"abc", b"ab"));
    }

    /// Records `n` header lines `h<i>: v<i>` laid out in a buffer, then takes them.
    fn build(builder: &mut HeadersBuilder, n: usize) -> Headers {
        let mut buf = Vec::new();
        builder.clear();
        for i in 0..n {
            let name = format!("h{i}");
            let value = format!("v{i}");
            let name_at = buf.len();
            buf.extend_from_slice(name.as_bytes());
            buf.extend_from_slice(b": ");
            let value_at = buf.len();
            buf.extend_from_slice(value.as_bytes());
            buf.extend_from_slice(b"\r\n");
            builder.push(name_at, (value_at, value_at + value.len()));
        }
        builder.take(Bytes::from(buf))
    }

    #[test]
    fn a_reused_builder_starts_each_head_afresh() {
        let mut builder = HeadersBuilder::new();
        // Past the inline capacity (onto the heap), then a small head, then a big one again.
        for n in [INLINE + 4, 2, INLINE, INLINE + 1, 0] {
            let headers = build(&mut builder, n);
            assert_eq!(headers.iter().count(), n, "{n} headers");
            let names: Vec<&str> = headers.iter().map(|(name, _)| name).collect();
            let expected: Vec<String> = (0..n).map(|i| format!("h{i}")).collect();
            assert_eq!(names, expected);
            if n > 10 {
                // `h1` is a prefix of `h10`..: a name matches whole, up to its colon.
                assert_eq!(headers.get_all("h1").collect::<Vec<_>>(), ["v1"]);
            }
            for i in 0..n {
                assert_eq!(
                    headers.get(&format!("H{i}")),
                    Some(format!("v{i}").as_str())
                );
            }
            assert_eq!(headers.get(&format!("h{n}")), None);
        }
    }
}
