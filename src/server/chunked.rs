//! The chunked transfer coding (RFC 9112 §7.1), decoded incrementally: feed it whatever bytes
//! have arrived, it appends the data it finds and says how much input it used. Chunk extensions
//! and trailer fields are checked against their grammar, then discarded.

use bytes::BytesMut;

/// Longest chunk-size line (size, extensions) or trailer line accepted.
const MAX_LINE: usize = 4096;
/// Most trailer bytes accepted in all.
const MAX_TRAILERS: usize = 16 * 1024;

/// Why a chunked body is refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ChunkedError {
    /// Not valid chunked coding.
    Malformed(&'static str),
    /// The decoded body is over the limit.
    TooLarge,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Reading the hex size; `size` so far, `digits` seen.
    Size { size: u64, digits: u32 },
    /// Inside the chunk extensions of a size line (RFC 9112 §7.1.1).
    Ext { size: u64, at: Ext },
    /// Expecting LF after CR on the size line.
    SizeLf { size: u64 },
    /// Reading `remaining` data bytes.
    Data { remaining: u64 },
    /// Expecting CR after the data.
    DataCr,
    /// Expecting LF after the data.
    DataLf,
    /// At the start of a trailer line (or the final empty line).
    TrailerStart,
    /// Inside a trailer field's name.
    TrailerName,
    /// Inside a trailer field's value.
    TrailerValue,
    /// Expecting LF to end a trailer line; `empty` when it is the final empty line.
    TrailerLf { empty: bool },
    /// The whole body has been read.
    Done,
}

/// Where a size line's extensions are, in
/// `chunk-ext = *( BWS ";" BWS chunk-ext-name [ BWS "=" BWS chunk-ext-val ] )`, with
/// `chunk-ext-val = token / quoted-string` (RFC 9112 §7.1.1, RFC 9110 §5.6). Anything outside
/// that grammar is refused: a decoder that skips junk here reads a different body than one
/// that does not (a request-smuggling ingredient).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Ext {
    /// Whitespace after the size: only more of it or `;` may follow.
    SizeWs,
    /// After `;`: whitespace, then a name.
    NameStart,
    /// In a name: `=`, `;` and CR may end it, or whitespace before `=` / `;`.
    Name,
    /// Whitespace after a name: `=` or `;` must follow.
    NameWs,
    /// After `=`: whitespace, then a token or a quoted string.
    ValueStart,
    /// In a token value.
    Token,
    /// In a quoted string.
    Quoted,
    /// After a backslash in a quoted string.
    Escape,
    /// After a value's end (the closing quote): `;`, CR or whitespace.
    ValueEnd,
    /// Whitespace after a value: only more of it or `;` may follow.
    ValueWs,
}

/// RFC 9110 §5.6.2 `tchar`.
fn is_tchar(b: u8) -> bool {
    b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b)
}

/// HTAB, SP, VCHAR, obs-text: what a `quoted-pair` may escape and a field value may hold
/// (RFC 9110 §5.5, §5.6.4); `qdtext` is this less `"` and `\`, which are matched first.
fn is_text(b: u8) -> bool {
    b == b'\t' || b == b' ' || (0x21..=0x7e).contains(&b) || b >= 0x80
}

/// One byte of a size line's extensions: the next state, or `None` for a syntax error.
/// `Some(None)`: the line ends here (CR).
fn ext_step(at: Ext, b: u8) -> Option<Option<Ext>> {
    let ws = b == b' ' || b == b'\t';
    Some(Some(match (at, b) {
        (Ext::SizeWs | Ext::NameWs | Ext::ValueWs | Ext::ValueEnd, _) if ws => at.ws(),
        (Ext::NameStart | Ext::ValueStart, _) if ws => at,
        (Ext::Name | Ext::Token, _) if ws => at.ws(),
        (
            Ext::SizeWs | Ext::Name | Ext::NameWs | Ext::Token | Ext::ValueEnd | Ext::ValueWs,
            b';',
        ) => Ext::NameStart,
        (Ext::Name | Ext::NameWs, b'=') => Ext::ValueStart,
        (Ext::Name | Ext::Token | Ext::ValueEnd, b'\r') => return Some(None),
        (Ext::NameStart | Ext::Name, _) if is_tchar(b) => Ext::Name,
        (Ext::ValueStart, b'"') => Ext::Quoted,
        (Ext::ValueStart | Ext::Token, _) if is_tchar(b) => Ext::Token,
        (Ext::Quoted, b'"') => Ext::ValueEnd,
        (Ext::Quoted, b'\\') => Ext::Escape,
        (Ext::Quoted | Ext::Escape, _) if is_text(b) => Ext::Quoted,
        _ => return None,
    }))
}

impl Ext {
    /// The state after whitespace in this one.
    fn ws(self) -> Ext {
        match self {
            Ext::Name | Ext::NameWs => Ext::NameWs,
            Ext::Token | Ext::ValueEnd | Ext::ValueWs => Ext::ValueWs,
            other => other,
        }
    }
}

/// Incremental chunked decoder.
#[derive(Debug)]
pub(crate) struct ChunkedDecoder {
    state: State,
    line: usize,
    trailers: usize,
    decoded: usize,
    max_body: usize,
}

impl ChunkedDecoder {
    pub(crate) fn new(max_body: usize) -> Self {
        ChunkedDecoder {
            state: State::Size { size: 0, digits: 0 },
            line: 0,
            trailers: 0,
            decoded: 0,
            max_body,
        }
    }

    /// Whether the final chunk and trailers have been read.
    pub(crate) fn is_done(&self) -> bool {
        self.state == State::Done
    }

    /// Decodes from `input`, appending data to `out`. Returns how many bytes of `input` were
    /// used; when the body ends inside `input`, the rest (the next request) is left unused.
    pub(crate) fn decode(
        &mut self,
        input: &[u8],
        out: &mut BytesMut,
    ) -> Result<usize, ChunkedError> {
        use ChunkedError::Malformed;
        let mut i = 0;
        while i < input.len() && self.state != State::Done {
            if let State::Data { remaining } = self.state {
                let take = remaining.min((input.len() - i) as u64) as usize;
                out.extend_from_slice(&input[i..i + take]);
                i += take;
                let remaining = remaining - take as u64;
                self.state = if remaining == 0 {
                    State::DataCr
                } else {
                    State::Data { remaining }
                };
                continue;
            }
            let b = input[i];
            i += 1;
            self.line += 1;
            if self.line > MAX_LINE {
                return Err(Malformed("chunk-size or trailer line too long"));
            }
            self.state = match self.state {
                State::Size { size, digits } => match b {
                    b'0'..=b'9' | b'a'..=b'f' | b'A'..=b'F' => {
                        if digits >= 15 {
                            return Err(ChunkedError::TooLarge);
                        }
                        let d = (b as char).to_digit(16).unwrap_or(0) as u64;
                        State::Size {
                            size: size * 16 + d,
                            digits: digits + 1,
                        }
                    }
                    _ if digits == 0 => return Err(Malformed("chunk size is not hexadecimal")),
                    b';' => State::Ext {
                        size,
                        at: Ext::NameStart,
                    },
                    b' ' | b'\t' => State::Ext {
                        size,
                        at: Ext::SizeWs,
                    },
                    b'\r' => State::SizeLf { size },
                    _ => return Err(Malformed("chunk size is not hexadecimal")),
                },
                State::Ext { size, at } => match ext_step(at, b) {
                    Some(Some(at)) => State::Ext { size, at },
                    Some(None) => State::SizeLf { size },
                    None => return Err(Malformed("malformed chunk extension")),
                },
                State::SizeLf { size } => {
                    if b != b'\n' {
                        return Err(Malformed("chunk-size line must end with CRLF"));
                    }
                    self.line = 0;
                    if size == 0 {
                        State::TrailerStart
                    } else {
                        self.decoded = self.decoded.saturating_add(size as usize);
                        if self.decoded > self.max_body {
                            return Err(ChunkedError::TooLarge);
                        }
                        State::Data { remaining: size }
                    }
                }
                State::Data { .. } => unreachable!("handled above"),
                State::DataCr if b == b'\r' => State::DataLf,
                State::DataLf if b == b'\n' => {
                    self.line = 0;
                    State::Size { size: 0, digits: 0 }
                }
                State::DataCr | State::DataLf => {
                    return Err(Malformed("chunk data must end with CRLF"))
                }
                // RFC 9112 §7.1.2: trailer fields are field lines, `name ":" value`.
                State::TrailerStart => match b {
                    b'\r' => State::TrailerLf { empty: true },
                    _ if is_tchar(b) => State::TrailerName,
                    _ => return Err(Malformed("bad trailer field")),
                },
                State::TrailerName | State::TrailerValue => {
                    self.trailers += 1;
                    if self.trailers > MAX_TRAILERS {
                        return Err(Malformed("trailers too large"));
                    }
                    match (self.state, b) {
                        (State::TrailerName, b':') => State::TrailerValue,
                        (State::TrailerName, _) if is_tchar(b) => State::TrailerName,
                        (State::TrailerValue, b'\r') => State::TrailerLf { empty: false },
                        (State::TrailerValue, _) if is_text(b) => State::TrailerValue,
                        _ => return Err(Malformed("bad trailer field")),
                    }
                }
                State::TrailerLf { empty } => {
                    if b != b'\n' {
                        return Err(Malformed("trailer line must end with CRLF"));
                    }
                    self.line = 0;
                    if empty {
                        State::Done
                    } else {
                        State::TrailerStart
                    }
                }
                State::Done => State::Done,
            };
        }
        Ok(i)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode_all(input: &[u8]) -> Result<(Vec<u8>, usize), ChunkedError> {
        let mut d = ChunkedDecoder::new(1 << 20);
        let mut out = BytesMut::new();
        let used = d.decode(input, &mut out)?;
        assert!(d.is_done(), "not done");
        Ok((out.to_vec(), used))
    }

    #[test]
    fn decodes_chunks() {
        let input = b"5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n";
        let (body, used) = decode_all(input).unwrap();
        assert_eq!(body, b"hello world");
        assert_eq!(used, input.len());
    }

    #[test]
    fn ignores_extensions_and_trailers_and_stops_at_the_end() {
        let input =
            b"5;name=value;x\r\nhello\r\n0;last\r\nX-Trailer: 1\r\nY: 2\r\n\r\nGET / HTTP/1.1";
        let (body, used) = decode_all(input).unwrap();
        assert_eq!(body, b"hello");
        assert_eq!(&input[used..], b"GET / HTTP/1.1");
    }

    #[test]
    fn accepts_input_split_anywhere() {
        let input = b"A\r\n0123456789\r\n3;e=1\r\nabc\r\n0\r\nT: v\r\n\r\n";
        for split in 0..input.len() {
            let mut d = ChunkedDecoder::new(1 << 20);
            let mut out = BytesMut::new();
            let a = d.decode(&input[..split], &mut out).unwrap();
            assert_eq!(a, split);
            let b = d.decode(&input[split..], &mut out).unwrap();
            assert_eq!(a + b, input.len());
            assert!(d.is_done());
            assert_eq!(&out[..], b"0123456789abc");
        }
    }

    #[test]
    fn refuses_malformed_input() {
        for bad in [
            &b"x\r\n"[..],
            b"5\r\nhelloXX",
            b"5\nhello\r\n",
            b"\r\n",
            b"5\r\nhello\r\n0\r\nbad\n",
        ] {
            let mut d = ChunkedDecoder::new(1 << 20);
            assert!(
                matches!(
                    d.decode(bad, &mut BytesMut::new()),
                    Err(ChunkedError::Malformed(_))
                ),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn refuses_oversized_bodies_and_sizes() {
        let mut d = ChunkedDecoder::new(4);
        assert_eq!(
            d.decode(b"5\r\nhello\r\n", &mut BytesMut::new()),
            Err(ChunkedError::TooLarge)
        );
        let mut d = ChunkedDecoder::new(usize::MAX);
        assert_eq!(
            d.decode(b"ffffffffffffffffff\r\n", &mut BytesMut::new()),
            Err(ChunkedError::TooLarge)
        );
    }

    /// RFC 9112 §7.1.1: `*( BWS ";" BWS name [ BWS "=" BWS ( token / quoted-string ) ] )`.
    #[test]
    fn chunk_extensions_follow_their_grammar() {
        for ok in [
            "5;a\r\nhello\r\n0\r\n\r\n",
            "5;a=b\r\nhello\r\n0\r\n\r\n",
            "5 ;a\r\nhello\r\n0\r\n\r\n",
            "5\t; a = b ;c\r\nhello\r\n0\r\n\r\n",
            "5;a=\"q \\\" ;x\"\r\nhello\r\n0;z\r\n\r\n",
            "5;a=\"\" ; b\r\nhello\r\n0\r\n\r\n",
            "5;a;b;c=1\r\nhello\r\n0\r\n\r\n",
        ] {
            let (body, _) = decode_all(ok.as_bytes()).unwrap_or_else(|e| panic!("{ok:?}: {e:?}"));
            assert_eq!(body, b"hello", "{ok:?}");
        }
        for bad in [
            "2 erfrferferf\r\nab\r\n0\r\n\r\n",
            "0 rrrr\r\n\r\n",
            "5;\r\nhello\r\n0\r\n\r\n",
            "5 \r\nhello\r\n0\r\n\r\n",
            "5;a \r\nhello\r\n0\r\n\r\n",
            "5;a=\r\nhello\r\n0\r\n\r\n",
            "5;a=b c\r\nhello\r\n0\r\n\r\n",
            "5;a=\"open\r\nhello\r\n0\r\n\r\n",
            "5;a=\"x\"y\r\nhello\r\n0\r\n\r\n",
            "5;;a\r\nhello\r\n0\r\n\r\n",
            "5;a@b\r\nhello\r\n0\r\n\r\n",
            "5;a=b=c\r\nhello\r\n0\r\n\r\n",
            "5;a=\"\x01\"\r\nhello\r\n0\r\n\r\n",
            "5\r\nhello\r\n0\r\nno-colon\r\n\r\n",
            "5\r\nhello\r\n0\r\n: v\r\n\r\n",
            "5\r\nhello\r\n0\r\nX: a\x01\r\n\r\n",
        ] {
            let mut d = ChunkedDecoder::new(1 << 20);
            let got = d.decode(bad.as_bytes(), &mut BytesMut::new());
            assert!(
                matches!(got, Err(ChunkedError::Malformed(_))),
                "{bad:?}: {got:?}"
            );
        }
    }

    #[test]
    fn refuses_endless_extensions() {
        let mut input = b"5;".to_vec();
        input.extend(std::iter::repeat_n(b'a', 5000));
        let mut d = ChunkedDecoder::new(1 << 20);
        assert!(d.decode(&input, &mut BytesMut::new()).is_err());
    }
}
