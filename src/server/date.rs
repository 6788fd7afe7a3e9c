//! The `Date` header value (IMF-fixdate, RFC 9110 §5.6.7), refreshed once a second.
//!
//! Each connection's [`DateCache`] formats the current second of [`crate::clock`] once and
//! lends the bytes after that. Reading the date is then an atomic load and a compare: no clock
//! call per response.

use crate::clock::unix_seconds;
pub(crate) use crate::http::date::{format, DATE_LEN};

/// The response head's `date` line followed by the name of the `content-length` line, which
/// comes after it in every head with a body: the part of a head that changes once a second,
/// kept formatted per connection so that the encoder writes it in one copy.
#[derive(Clone, Copy)]
pub(crate) struct DateLines([u8; DateLines::LEN]);

impl DateLines {
    const DATE_AT: usize = b"\r\ndate: ".len();
    const LEN: usize = Self::DATE_AT + DATE_LEN + b"\r\ncontent-length: ".len();
    const EMPTY: DateLines = DateLines([b' '; Self::LEN]);

    /// The lines for this date.
    pub(crate) fn new(date: &[u8; DATE_LEN]) -> DateLines {
        let mut bytes = [0; Self::LEN];
        bytes[..Self::DATE_AT].copy_from_slice(b"\r\ndate: ");
        bytes[Self::DATE_AT..Self::DATE_AT + DATE_LEN].copy_from_slice(date);
        bytes[Self::DATE_AT + DATE_LEN..].copy_from_slice(b"\r\ncontent-length: ");
        DateLines(bytes)
    }

    /// `\r\ndate: <date>\r\ncontent-length: `, for a head whose length follows.
    pub(crate) fn with_length_name(&self) -> &[u8] {
        &self.0
    }

    /// `\r\ndate: <date>` alone.
    pub(crate) fn date_line(&self) -> &[u8] {
        &self.0[..Self::DATE_AT + DATE_LEN]
    }
}

/// A connection's [`DateLines`], formatted again when the second changes: reading it is an
/// atomic load and a compare, with nothing copied.
pub(crate) struct DateCache {
    secs: u64,
    lines: DateLines,
}

impl DateCache {
    pub(crate) const fn new() -> DateCache {
        DateCache {
            secs: u64::MAX,
            lines: DateLines::EMPTY,
        }
    }

    /// The lines for the current second.
    #[inline]
    pub(crate) fn current(&mut self) -> &DateLines {
        let secs = unix_seconds();
        if self.secs != secs {
            self.secs = secs;
            self.lines = DateLines::new(&format(secs));
        }
        &self.lines
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_known_dates() {
        assert_eq!(&format(0), b"Thu, 01 Jan 1970 00:00:00 GMT");
        assert_eq!(&format(784_111_777), b"Sun, 06 Nov 1994 08:49:37 GMT");
        assert_eq!(&format(951_782_400), b"Tue, 29 Feb 2000 00:00:00 GMT");
        assert_eq!(&format(1_764_000_000), b"Mon, 24 Nov 2025 16:00:00 GMT");
        assert_eq!(&format(4_102_444_799), b"Thu, 31 Dec 2099 23:59:59 GMT");
    }

    #[test]
    fn now_is_well_formed() {
        let mut cache = DateCache::new();
        let lines = cache.current();
        let line = lines.date_line();
        assert!(line.starts_with(b"\r\ndate: "), "{line:?}");
        assert_eq!(&line[line.len() - 4..], b" GMT");
        assert_eq!(line[11], b',');
        assert_eq!(
            lines.with_length_name().strip_prefix(line),
            Some(&b"\r\ncontent-length: "[..])
        );
    }

    #[tokio::test]
    async fn the_ticker_keeps_the_date_current() {
        use crate::clock::{clock_seconds, start_ticker};
        let _ticker = start_ticker();
        let expected = format(clock_seconds());
        let mut cache = DateCache::new();
        let lines = cache.current();
        let got = &lines.date_line()[b"\r\ndate: ".len()..];
        // The second may roll over between the two reads.
        assert!(
            got == expected || got == format(clock_seconds()),
            "{:?}",
            String::from_utf8_lossy(got)
        );
        // The session clock reads the same second.
        let secs = unix_seconds();
        assert!(secs.abs_diff(clock_seconds()) <= 1, "{secs}");
    }
}
