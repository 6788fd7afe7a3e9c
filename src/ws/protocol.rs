//! The WebSocket protocol without I/O (RFC 6455 §5, with RFC 7692's compressed messages): a
//! [`Decoder`] that turns the bytes read from the peer into whole messages and control
//! frames, enforcing every framing rule a receiver must, and an [`Encoder`] that writes
//! messages and control frames for the peer.
//!
//! The async socket owns the buffers and the I/O; nothing here blocks, allocates more than a
//! message's limit, or panics on what the peer sends. A decoding error is final: the caller
//! sends a Close frame with its code (1002 protocol error, 1007 invalid data, 1009 too big;
//! RFC 6455 §7.4.1) and stops reading.
//!
//! Decoding strategy, per frame (the header is read and checked first, before any payload is
//! buffered):
//! - a control frame, or a data message in one uncompressed frame, stays in the caller's
//!   buffer until whole, unmasked (and UTF-8 checked, for text) in place as it arrives, then
//!   handed out without a copy (`split_to(n).freeze()`; control payloads, at most 125 bytes,
//!   are copied so as not to pin the read buffer);
//! - the frames of a fragmented or compressed message are consumed as they arrive: unmasked,
//!   decompressed and UTF-8 checked piece by piece into the message's own buffer, so invalid
//!   text fails as soon as the offending bytes are read (Autobahn 6.4's "fail fast"), and a
//!   compressed frame is never held alongside its decompressed output.

use std::fmt;

use bytes::{Buf, Bytes, BytesMut};

use super::deflate::{reserve_within, Deflate, Inflate, InflateError};
use super::frame::{apply_mask, parse_header, write_header, Header, OpCode, Role};

/// The largest data the decoder accepts from the peer, in bytes (→ 1009 past them).
#[derive(Clone, Copy, Debug)]
pub(crate) struct Limits {
    /// A whole message, after joining its fragments and after decompression.
    pub(crate) max_message: usize,
    /// One data frame's payload as sent (compressed, when it is).
    pub(crate) max_frame: usize,
}

/// What the decoder yields: a whole data message (fragments joined, decompressed, UTF-8
/// checked) or one control frame.
#[derive(Debug, PartialEq)]
pub(crate) enum Frame {
    /// A text message: valid UTF-8, guaranteed.
    Text(Bytes),
    Binary(Bytes),
    Ping(Bytes),
    Pong(Bytes),
    /// `None`: no status code (1005 to the user). Otherwise a code valid on the wire (§7.4)
    /// and a UTF-8 reason.
    Close(Option<(u16, Bytes)>),
}

/// Why the peer's bytes were refused: the close code to send and what the peer did wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct ProtocolError {
    /// 1002 (protocol error), 1007 (invalid UTF-8 in text or a close reason, or invalid
    /// compressed data) or 1009 (too big).
    pub(crate) code: u16,
    /// At most 123 bytes, so that it fits a Close frame's reason (§5.5).
    pub(crate) reason: &'static str,
}

impl ProtocolError {
    const fn protocol(reason: &'static str) -> Self {
        ProtocolError { code: 1002, reason }
    }

    const fn invalid(reason: &'static str) -> Self {
        ProtocolError { code: 1007, reason }
    }

    const fn too_big(reason: &'static str) -> Self {
        ProtocolError { code: 1009, reason }
    }
}

impl fmt::Display for ProtocolError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (WebSocket close code {})", self.reason, self.code)
    }
}

impl std::error::Error for ProtocolError {}

/// Incremental UTF-8 validation across fragments: an incomplete sequence at the end of a
/// piece is carried to the next; an invalid one fails at once (std's validator rejects a
/// prefix as soon as no continuation could complete it, e.g. `E0 80` or `F4 90`).
#[derive(Default)]
struct Utf8 {
    pending: [u8; 4],
    len: usize,
}

impl Utf8 {
    /// `false` when the text so far cannot be UTF-8, whatever follows.
    fn feed(&mut self, mut input: &[u8]) -> bool {
        // First complete the sequence the previous piece ended inside, a byte at a time.
        while self.len > 0 {
            let Some((&byte, rest)) = input.split_first() else {
                return true;
            };
            input = rest;
            if self.len == self.pending.len() {
                return false;
            }
            self.pending[self.len] = byte;
            self.len += 1;
            match std::str::from_utf8(&self.pending[..self.len]) {
                Ok(_) => self.len = 0,
                Err(e) if e.error_len().is_some() => return false,
                Err(_) => {}
            }
        }
        match std::str::from_utf8(input) {
            Ok(_) => true,
            Err(e) if e.error_len().is_some() => false,
            Err(e) => {
                // The tail is a valid prefix of a sequence, so 1 to 3 bytes.
                let tail = &input[e.valid_up_to()..];
                self.pending[..tail.len()].copy_from_slice(tail);
                self.len = tail.len();
                true
            }
        }
    }

    /// The message ended: `false` if it ended inside a sequence.
    fn finish(&self) -> bool {
        self.len == 0
    }
}

/// How a frame's payload is read (see the module documentation).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Mode {
    /// Kept in the caller's buffer until whole.
    InPlace,
    /// Consumed into the message's buffer as it arrives.
    Stream,
}

/// The frame whose header was read and whose payload is being read.
#[derive(Clone, Copy, Debug)]
struct Current {
    opcode: OpCode,
    fin: bool,
    mask: Option<[u8; 4]>,
    len: usize,
    /// Payload bytes unmasked (and checked) so far: still in the buffer for `InPlace`,
    /// consumed for `Stream`.
    done: usize,
    mode: Mode,
}

/// The data message in progress.
struct Message {
    text: bool,
    /// RSV1 on its first frame (RFC 7692 §6).
    compressed: bool,
    /// The payload so far (decompressed); unused for a message in one `InPlace` frame.
    data: Vec<u8>,
    utf8: Utf8,
    /// Payload bytes received so far as sent, for the limit of uncompressed messages.
    received: usize,
}

/// The sans-IO decoder of what the peer sends.
pub(crate) struct Decoder {
    role: Role,
    limits: Limits,
    inflate: Option<Inflate>,
    current: Option<Current>,
    message: Option<Message>,
    /// An error is final: every later call returns it again.
    failed: Option<ProtocolError>,
}

impl Decoder {
    /// A decoder for `role` (what the peer sends to us), with `inflate` when permessage-deflate
    /// was agreed.
    pub(crate) fn new(role: Role, limits: Limits, inflate: Option<Inflate>) -> Decoder {
        Decoder {
            role,
            limits,
            inflate,
            current: None,
            message: None,
            failed: None,
        }
    }

    /// Decodes from the front of `buf`, removing what it consumed and unmasking payloads in
    /// place (a single unfragmented uncompressed frame's payload is `buf.split_to(n).freeze()`,
    /// no copy). `Ok(None)`: more bytes needed; a partial frame may stay in `buf`, and the
    /// next call, with more bytes appended to the same buffer, continues. An error is final:
    /// the caller sends Close with its code and stops reading.
    pub(crate) fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        if let Some(error) = self.failed {
            return Err(error);
        }
        let result = self.decode_frames(buf);
        if let Err(error) = result {
            self.failed = Some(error);
        }
        result
    }

    /// How many more bytes the frame being read needs at least (0 if unknown), so the reader
    /// can reserve once for a large frame.
    pub(crate) fn wanted(&self) -> usize {
        self.current.map_or(0, |current| current.len - current.done)
    }

    fn decode_frames(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, ProtocolError> {
        loop {
            let mut current = match self.current {
                Some(current) => current,
                None => {
                    let Some(header) = parse_header(buf) else {
                        return Ok(None);
                    };
                    let current = self.start_frame(&header)?;
                    buf.advance(header.header_len);
                    current
                }
            };
            match current.mode {
                Mode::InPlace => {
                    let present = buf.len().min(current.len);
                    if present > current.done {
                        let fresh = &mut buf[current.done..present];
                        if let Some(key) = current.mask {
                            apply_mask(fresh, key, current.done);
                        }
                        if current.opcode == OpCode::Text {
                            self.check_text(fresh)?;
                        }
                        current.done = present;
                    }
                    if current.done < current.len {
                        self.current = Some(current);
                        return Ok(None);
                    }
                    self.current = None;
                    if current.opcode.is_control() {
                        let payload = Bytes::copy_from_slice(&buf[..current.len]);
                        buf.advance(current.len);
                        return control_frame(current.opcode, payload).map(Some);
                    }
                    let payload = buf.split_to(current.len).freeze();
                    let message = self.message.take();
                    if message.is_some_and(|m| m.text && !m.utf8.finish()) {
                        return Err(TEXT_ENDS_INSIDE_A_CHARACTER);
                    }
                    return Ok(Some(match current.opcode {
                        OpCode::Text => Frame::Text(payload),
                        _ => Frame::Binary(payload),
                    }));
                }
                Mode::Stream => {
                    let take = buf.len().min(current.len - current.done);
                    if take > 0 {
                        let piece = &mut buf[..take];
                        if let Some(key) = current.mask {
                            apply_mask(piece, key, current.done);
                        }
                        self.absorb(piece)?;
                        buf.advance(take);
                        current.done += take;
                    }
                    if current.done < current.len {
                        self.current = Some(current);
                        return Ok(None);
                    }
                    self.current = None;
                    if current.fin {
                        return self.finish_message().map(Some);
                    }
                }
            }
        }
    }

    /// Checks a header against the connection's state, before any of its payload is read.
    fn start_frame(&mut self, header: &Header) -> Result<Current, ProtocolError> {
        // §5.2: RSV2 and RSV3 MUST be 0 unless an extension defining them was negotiated;
        // permessage-deflate defines only RSV1.
        if header.rsv2 || header.rsv3 {
            return Err(ProtocolError::protocol(
                "frame with reserved bit RSV2 or RSV3 set",
            ));
        }
        // §5.2: "If an unknown opcode is received, the receiving endpoint MUST _Fail the
        // WebSocket Connection_."
        let opcode = OpCode::from_u8(header.opcode).ok_or(ProtocolError::protocol(
            "frame with a reserved opcode (3-7, 0xB-0xF)",
        ))?;
        // §5.1: a server MUST close on an unmasked frame from a client; a client MUST close
        // on a masked frame from a server.
        match (self.role, header.mask.is_some()) {
            (Role::Server, false) => {
                return Err(ProtocolError::protocol("unmasked frame from a client"))
            }
            (Role::Client, true) => {
                return Err(ProtocolError::protocol("masked frame from a server"))
            }
            _ => {}
        }
        // §5.2: the most significant bit of a 64-bit length MUST be 0.
        if header.len >> 63 != 0 {
            return Err(ProtocolError::protocol(
                "frame length with the most significant bit set",
            ));
        }
        if opcode.is_control() {
            // §5.5: "All control frames MUST have a payload length of 125 bytes or less and
            // MUST NOT be fragmented."
            if !header.fin {
                return Err(ProtocolError::protocol("fragmented control frame"));
            }
            if header.len > 125 {
                return Err(ProtocolError::protocol(
                    "control frame with a payload over 125 bytes",
                ));
            }
            // RFC 7692 §6: the "Per-Message Compressed" bit is never set on a control
            // frame. (The limits need no check: 125 bytes is the bound of §5.5.)
            if header.rsv1 {
                return Err(ProtocolError::protocol("control frame with RSV1 set"));
            }
            return Ok(Current {
                opcode,
                fin: true,
                mask: header.mask,
                len: header.len as usize,
                done: 0,
                mode: Mode::InPlace,
            });
        }
        // A data frame. The limits first, from the header alone.
        let len = usize::try_from(header.len)
            .ok()
            .filter(|&len| len <= self.limits.max_frame)
            .ok_or(ProtocolError::too_big(
                "frame larger than this server accepts",
            ))?;
        if opcode == OpCode::Continuation {
            // §5.4: a continuation frame continues a message; none is in progress.
            if self.message.is_none() {
                return Err(ProtocolError::protocol(
                    "continuation frame with no message started",
                ));
            }
            // RFC 7692 §6: RSV1 only on the first frame of a message.
            if header.rsv1 {
                return Err(ProtocolError::protocol("continuation frame with RSV1 set"));
            }
        } else {
            // §5.4: the fragments of one message are not interleaved with another message.
            if self.message.is_some() {
                return Err(ProtocolError::protocol(
                    "new message started before the previous one ended",
                ));
            }
            // §5.2: RSV1 MUST be 0 unless an extension defines it; RFC 7692 §6 defines it
            // as "Per-Message Compressed" once permessage-deflate was agreed.
            if header.rsv1 && self.inflate.is_none() {
                return Err(ProtocolError::protocol(
                    "compressed (RSV1) frame without permessage-deflate agreed",
                ));
            }
            self.message = Some(Message {
                text: opcode == OpCode::Text,
                compressed: header.rsv1,
                data: Vec::new(),
                utf8: Utf8::default(),
                received: 0,
            });
        }
        let max_message = self.limits.max_message;
        let Some(message) = &mut self.message else {
            return Err(ProtocolError::protocol(
                "continuation frame with no message started",
            ));
        };
        // An uncompressed message's size is known from its headers: refuse it before
        // buffering. A compressed one is bounded as it is decompressed.
        if !message.compressed && len > max_message - message.received {
            return Err(ProtocolError::too_big(
                "message larger than this server accepts",
            ));
        }
        message.received = message.received.saturating_add(len);
        let whole = opcode != OpCode::Continuation && header.fin && !message.compressed;
        Ok(Current {
            opcode,
            fin: header.fin,
            mask: header.mask,
            len,
            done: 0,
            mode: if whole { Mode::InPlace } else { Mode::Stream },
        })
    }

    /// UTF-8 of a text message's next bytes (§5.6, §8.1: a text message that is not UTF-8
    /// fails the connection, with 1007 per §7.4.1).
    fn check_text(&mut self, bytes: &[u8]) -> Result<(), ProtocolError> {
        let valid = match &mut self.message {
            Some(message) => message.utf8.feed(bytes),
            None => true,
        };
        if valid {
            Ok(())
        } else {
            Err(INVALID_TEXT)
        }
    }

    /// Adds a piece of a fragmented or compressed message's payload.
    fn absorb(&mut self, piece: &[u8]) -> Result<(), ProtocolError> {
        let max = self.limits.max_message;
        let Some(message) = &mut self.message else {
            return Err(ProtocolError::protocol(
                "continuation frame with no message started",
            ));
        };
        let start = message.data.len();
        let inflated = if message.compressed {
            let Some(inflate) = &mut self.inflate else {
                return Err(ProtocolError::protocol(
                    "compressed (RSV1) frame without permessage-deflate agreed",
                ));
            };
            inflate.push(piece, &mut message.data, max)
        } else {
            // The limit was checked from the headers.
            reserve_within(&mut message.data, piece.len(), max);
            message.data.extend_from_slice(piece);
            Ok(())
        };
        // The text decompressed before a failure is checked first: the same error then
        // comes whether the frame arrived whole or in pieces.
        if message.text && !message.utf8.feed(&message.data[start..]) {
            return Err(INVALID_TEXT);
        }
        inflated.map_err(inflate_error)
    }

    /// The last frame of a fragmented or compressed message was read.
    fn finish_message(&mut self) -> Result<Frame, ProtocolError> {
        let max = self.limits.max_message;
        let Some(mut message) = self.message.take() else {
            return Err(ProtocolError::protocol(
                "continuation frame with no message started",
            ));
        };
        if message.compressed {
            let start = message.data.len();
            // RFC 7692 §7.2.2: append 0x00 0x00 0xff 0xff and decompress the rest.
            let inflated = match &mut self.inflate {
                Some(inflate) => inflate.finish(&mut message.data, max),
                None => Ok(()),
            };
            if message.text && !message.utf8.feed(&message.data[start..]) {
                return Err(INVALID_TEXT);
            }
            inflated.map_err(inflate_error)?;
        }
        if message.text && !message.utf8.finish() {
            return Err(TEXT_ENDS_INSIDE_A_CHARACTER);
        }
        let data = Bytes::from(message.data);
        Ok(if message.text {
            Frame::Text(data)
        } else {
            Frame::Binary(data)
        })
    }
}

const INVALID_TEXT: ProtocolError = ProtocolError::invalid("text message that is not UTF-8");
const TEXT_ENDS_INSIDE_A_CHARACTER: ProtocolError =
    ProtocolError::invalid("text message that ends inside a UTF-8 sequence");

fn inflate_error(error: InflateError) -> ProtocolError {
    match error {
        InflateError::TooBig => {
            ProtocolError::too_big("message decompresses larger than this server accepts")
        }
        // A compressed payload that is not DEFLATE data cannot be the message it claims to
        // be: 1007, "data within a message that was not consistent with the type of the
        // message" (RFC 6455 §7.4.1), the code other servers use for it.
        InflateError::Corrupt => {
            ProtocolError::invalid("compressed message that is not valid DEFLATE data")
        }
    }
}

/// §7.4: the status codes that may be sent in a Close frame: 1000-1003, 1007-1011 (RFC
/// 6455), 1012-1014 (registered with IANA since), 3000-4999 (registered and private use).
/// 1004 is reserved, 1005, 1006 and 1015 MUST NOT be sent (§7.4.1), and the rest of
/// 0-2999 is unassigned or reserved for future versions.
pub(crate) fn valid_close_code(code: u16) -> bool {
    matches!(code, 1000..=1003 | 1007..=1014 | 3000..=4999)
}

/// A whole control frame's payload, as its Frame (§5.5).
fn control_frame(opcode: OpCode, payload: Bytes) -> Result<Frame, ProtocolError> {
    match opcode {
        OpCode::Ping => Ok(Frame::Ping(payload)),
        OpCode::Pong => Ok(Frame::Pong(payload)),
        _ => close_frame(payload),
    }
}

/// §5.5.1: a Close payload is empty, or a 2-byte status code followed by a UTF-8 reason.
fn close_frame(payload: Bytes) -> Result<Frame, ProtocolError> {
    match *payload {
        [] => Ok(Frame::Close(None)),
        [_] => Err(ProtocolError::protocol(
            "close frame with a 1-byte payload (no room for a status code)",
        )),
        [high, low, ..] => {
            let code = u16::from_be_bytes([high, low]);
            if !valid_close_code(code) {
                return Err(ProtocolError::protocol(
                    "close frame with a status code not allowed on the wire",
                ));
            }
            let reason = payload.slice(2..);
            if std::str::from_utf8(&reason).is_err() {
                return Err(ProtocolError::invalid("close reason that is not UTF-8"));
            }
            Ok(Frame::Close(Some((code, reason))))
        }
    }
}

/// How many masking keys are drawn from the OS at once.
const KEY_BATCH: usize = 16;

/// Above this, the compression buffer is not kept between messages.
const KEEP_SCRATCH: usize = 64 << 10;

/// The sans-IO encoder of what we send.
pub(crate) struct Encoder {
    role: Role,
    deflate: Option<Deflate>,
    /// The compressed message, before its header is known.
    scratch: Vec<u8>,
    /// Client role: masking keys from getrandom, used once each.
    keys: [[u8; 4]; KEY_BATCH],
    next_key: usize,
}

impl Encoder {
    /// An encoder for `role`, compressing with `deflate` when permessage-deflate was agreed.
    pub(crate) fn new(role: Role, deflate: Option<Deflate>) -> Encoder {
        Encoder {
            role,
            deflate,
            scratch: Vec::new(),
            keys: [[0; 4]; KEY_BATCH],
            next_key: KEY_BATCH,
        }
    }

    /// One whole message as one frame (FIN), compressed when deflate was agreed (RSV1 set).
    ///
    /// RFC 7692 §6 lets a sender leave any message uncompressed. An empty message always is.
    /// With context takeover every other message is compressed, since each one also primes
    /// the window the next ones refer to. Without context takeover a message that does not
    /// shrink is sent as it is.
    pub(crate) fn data(&mut self, text: bool, payload: &[u8], dst: &mut BytesMut) {
        let opcode = if text { OpCode::Text } else { OpCode::Binary };
        if let Some(deflate) = &mut self.deflate {
            let mut compressed = std::mem::take(&mut self.scratch);
            compressed.clear();
            let use_it = !payload.is_empty()
                && deflate.compress(payload, &mut compressed)
                && (!deflate.no_context_takeover() || compressed.len() < payload.len());
            if use_it {
                self.frame(dst, true, opcode, &compressed);
            }
            if compressed.capacity() <= KEEP_SCRATCH {
                self.scratch = compressed;
            }
            if use_it {
                return;
            }
        }
        self.frame(dst, false, opcode, payload);
    }

    /// A Ping, Pong or Close frame; the payload cut to 125 bytes (§5.5), a close reason cut
    /// on a character boundary.
    pub(crate) fn control(&mut self, opcode: OpCode, payload: &[u8], dst: &mut BytesMut) {
        debug_assert!(opcode.is_control(), "{opcode:?} is not a control opcode");
        let mut len = payload.len().min(125);
        if opcode == OpCode::Close && len < payload.len() {
            // Not inside a UTF-8 sequence of the reason: back off continuation bytes.
            while len > 2 && payload[len] & 0xC0 == 0x80 {
                len -= 1;
            }
        }
        self.frame(dst, false, opcode, &payload[..len]);
    }

    /// A Close frame: no payload for `None`, else the code and `reason` cut to 123 bytes on a
    /// character boundary (§5.5.1).
    pub(crate) fn close(&mut self, code: Option<u16>, reason: &str, dst: &mut BytesMut) {
        let mut payload = [0u8; 125];
        let len = match code {
            None => 0,
            Some(code) => {
                let mut cut = reason.len().min(123);
                while !reason.is_char_boundary(cut) {
                    cut -= 1;
                }
                payload[..2].copy_from_slice(&code.to_be_bytes());
                payload[2..2 + cut].copy_from_slice(&reason.as_bytes()[..cut]);
                2 + cut
            }
        };
        self.frame(dst, false, OpCode::Close, &payload[..len]);
    }

    /// Appends one final frame, masked in the client role.
    fn frame(&mut self, dst: &mut BytesMut, rsv1: bool, opcode: OpCode, payload: &[u8]) {
        let mask = self.mask_key();
        write_header(dst, true, rsv1, opcode, payload.len(), mask);
        let start = dst.len();
        dst.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut dst[start..], key, 0);
        }
    }

    /// §5.3: a client masks every frame with a fresh key "derived from a strong source of
    /// entropy", so that a peer (or an intermediary) cannot predict the bytes on the wire.
    fn mask_key(&mut self) -> Option<[u8; 4]> {
        if self.role == Role::Server {
            return None;
        }
        if self.next_key == KEY_BATCH {
            let mut bytes = [0u8; 4 * KEY_BATCH];
            getrandom::fill(&mut bytes).expect("the OS random number generator failed");
            for (key, chunk) in self.keys.iter_mut().zip(bytes.chunks_exact(4)) {
                key.copy_from_slice(chunk);
            }
            self.next_key = 0;
        }
        let key = self.keys[self.next_key];
        self.next_key += 1;
        Some(key)
    }
}

/// Drives the decoder on arbitrary bytes and asserts its invariants: the fuzz target's body
/// and a property test. The first byte picks the role (bit 0), whether permessage-deflate was
/// agreed (bit 1) and with context takeover (bit 7), small or large limits (bit 2) and the
/// size of the reads (bits 3-6). The bytes are decoded once whole and once in reads of that
/// size, and both must give the same frames and the same error.
#[cfg(any(test, feature = "internals"))]
pub(crate) fn fuzz_decode(data: &[u8]) {
    let Some((&config, data)) = data.split_first() else {
        return;
    };
    let role = if config & 1 == 0 {
        Role::Server
    } else {
        Role::Client
    };
    let limits = if config & 4 == 0 {
        Limits {
            max_message: 1 << 16,
            max_frame: 1 << 16,
        }
    } else {
        Limits {
            max_message: 300,
            max_frame: 200,
        }
    };
    let decoder = || {
        let inflate = (config & 2 != 0).then(|| Inflate::new(15, config & 0x80 != 0));
        Decoder::new(role, limits, inflate)
    };
    let read = usize::from((config >> 3) & 0x0F) + 1;
    let whole = fuzz_run(decoder(), limits, data, data.len().max(1));
    let pieces = fuzz_run(decoder(), limits, data, read);
    assert_eq!(whole, pieces, "the result depends on how the bytes arrive");
}

#[cfg(any(test, feature = "internals"))]
fn fuzz_run(
    mut decoder: Decoder,
    limits: Limits,
    data: &[u8],
    read: usize,
) -> (Vec<Frame>, Option<ProtocolError>) {
    let mut buf = BytesMut::new();
    let mut frames = Vec::new();
    for piece in data.chunks(read) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(frame)) => {
                    match &frame {
                        Frame::Text(text) => {
                            assert!(std::str::from_utf8(text).is_ok(), "text not UTF-8");
                            assert!(text.len() <= limits.max_message);
                        }
                        Frame::Binary(data) => assert!(data.len() <= limits.max_message),
                        Frame::Ping(data) | Frame::Pong(data) => assert!(data.len() <= 125),
                        Frame::Close(None) => {}
                        Frame::Close(Some((code, reason))) => {
                            assert!(valid_close_code(*code), "close code {code}");
                            assert!(reason.len() <= 123 && std::str::from_utf8(reason).is_ok());
                        }
                    }
                    frames.push(frame);
                }
                Ok(None) => {
                    assert!(decoder.wanted() <= limits.max_frame.max(125));
                    break;
                }
                Err(error) => {
                    assert!(
                        matches!(error.code, 1002 | 1007 | 1009),
                        "close code {}",
                        error.code
                    );
                    assert!(error.reason.len() <= 123);
                    // Final: asking again gives the same error.
                    assert_eq!(decoder.decode(&mut buf), Err(error));
                    return (frames, Some(error));
                }
            }
        }
    }
    (frames, None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ws::deflate::Agreed;
    use proptest::prelude::*;

    const FIN: u8 = 0x80;
    const RSV1: u8 = 0x40;
    const RSV2: u8 = 0x20;
    const RSV3: u8 = 0x10;
    const TEXT: u8 = 0x1;
    const BINARY: u8 = 0x2;
    const CONT: u8 = 0x0;
    const CLOSE: u8 = 0x8;
    const PING: u8 = 0x9;
    const PONG: u8 = 0xA;
    const KEY: [u8; 4] = [0x37, 0xfa, 0x21, 0x3d];
    const LIMITS: Limits = Limits {
        max_message: 1 << 20,
        max_frame: 1 << 20,
    };

    /// A frame with any first byte (FIN, RSV, opcode), masked with `mask` when given.
    fn raw(b0: u8, payload: &[u8], mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut out = vec![b0];
        let m = if mask.is_some() { 0x80 } else { 0 };
        match payload.len() {
            n if n < 126 => out.push(m | n as u8),
            n if n <= 0xFFFF => {
                out.push(m | 126);
                out.extend((n as u16).to_be_bytes());
            }
            n => {
                out.push(m | 127);
                out.extend((n as u64).to_be_bytes());
            }
        }
        let start = out.len() + if mask.is_some() { 4 } else { 0 };
        out.extend(mask.unwrap_or_default().iter().take(start - out.len()));
        out.extend_from_slice(payload);
        if let Some(key) = mask {
            apply_mask(&mut out[start..], key, 0);
        }
        out
    }

    /// A frame as a client sends it: masked.
    fn c(b0: u8, payload: &[u8]) -> Vec<u8> {
        raw(b0, payload, Some(KEY))
    }

    fn text(s: &str) -> Frame {
        Frame::Text(Bytes::copy_from_slice(s.as_bytes()))
    }

    fn binary(b: &[u8]) -> Frame {
        Frame::Binary(Bytes::copy_from_slice(b))
    }

    /// Decodes `bytes` arriving in reads of `read` bytes.
    fn run(decoder: &mut Decoder, bytes: &[u8], read: usize) -> (Vec<Frame>, Option<u16>) {
        let mut buf = BytesMut::new();
        let mut frames = Vec::new();
        for piece in bytes.chunks(read.max(1)) {
            buf.extend_from_slice(piece);
            loop {
                match decoder.decode(&mut buf) {
                    Ok(Some(frame)) => frames.push(frame),
                    Ok(None) => break,
                    Err(e) => return (frames, Some(e.code)),
                }
            }
        }
        (frames, None)
    }

    /// What a server decodes from `bytes` (with `inflate`), the same whether they arrive at
    /// once, a byte at a time or in reads of 7.
    fn decode_with(
        limits: Limits,
        inflate: impl Fn() -> Option<Inflate>,
        bytes: &[u8],
    ) -> (Vec<Frame>, Option<u16>) {
        let whole = run(
            &mut Decoder::new(Role::Server, limits, inflate()),
            bytes,
            bytes.len(),
        );
        for read in [1, 7] {
            let pieces = run(
                &mut Decoder::new(Role::Server, limits, inflate()),
                bytes,
                read,
            );
            assert_eq!(pieces, whole, "reads of {read}");
        }
        whole
    }

    fn server(bytes: &[u8]) -> (Vec<Frame>, Option<u16>) {
        decode_with(LIMITS, || None, bytes)
    }

    fn deflate_server(bytes: &[u8]) -> (Vec<Frame>, Option<u16>) {
        decode_with(LIMITS, || Some(Inflate::new(15, false)), bytes)
    }

    fn cat(frames: &[Vec<u8>]) -> Vec<u8> {
        frames.concat()
    }

    // 1.x: text and binary messages of each length encoding.
    #[test]
    fn framing_every_length_encoding() {
        for len in [0usize, 1, 125, 126, 127, 128, 65535, 65536, 200_000] {
            let s = "*".repeat(len);
            assert_eq!(server(&c(FIN | TEXT, s.as_bytes())), (vec![text(&s)], None));
            let b = vec![0xfe; len];
            assert_eq!(server(&c(FIN | BINARY, &b)), (vec![binary(&b)], None));
        }
    }

    #[test]
    fn a_single_frame_message_is_not_copied() {
        let payload = vec![7u8; 1000];
        let mut buf = BytesMut::from(&c(FIN | BINARY, &payload)[..]);
        buf.extend_from_slice(&c(FIN | PING, b"after"));
        let range = buf.as_ptr_range();
        let mut decoder = Decoder::new(Role::Server, LIMITS, None);
        let Ok(Some(Frame::Binary(got))) = decoder.decode(&mut buf) else {
            panic!("no binary frame");
        };
        assert_eq!(got, payload);
        assert!(range.contains(&got.as_ptr()), "payload copied");
        assert_eq!(
            decoder.decode(&mut buf),
            Ok(Some(Frame::Ping("after".into())))
        );
        assert!(buf.is_empty());
        assert_eq!(decoder.decode(&mut buf), Ok(None));
    }

    // 2.x: pings and pongs.
    #[test]
    fn pings_and_pongs() {
        let max = [0xab; 125];
        assert_eq!(
            server(&cat(&[
                c(FIN | PING, b""),
                c(FIN | PING, &max),
                c(FIN | PONG, b"unsolicited"),
                c(FIN | PING, &[0, 0xff, 0xfe]),
            ])),
            (
                vec![
                    Frame::Ping(Bytes::new()),
                    Frame::Ping(Bytes::copy_from_slice(&max)),
                    Frame::Pong("unsolicited".into()),
                    Frame::Ping(Bytes::from_static(&[0, 0xff, 0xfe])),
                ],
                None
            )
        );
        // 2.5: 126 bytes; a fragmented ping; both after a good frame, which is delivered.
        for bad in [c(FIN | PING, &[0; 126]), c(PING, b"a"), c(PONG, b"")] {
            assert_eq!(
                server(&cat(&[c(FIN | PONG, b"ok"), bad])),
                (vec![Frame::Pong("ok".into())], Some(1002))
            );
        }
    }

    // 3.x: reserved bits.
    #[test]
    fn reserved_bits_fail() {
        for rsv in [
            RSV1,
            RSV2,
            RSV3,
            RSV1 | RSV2,
            RSV2 | RSV3,
            RSV1 | RSV2 | RSV3,
        ] {
            for op in [TEXT, BINARY, PING, PONG, CLOSE] {
                let (frames, error) = server(&cat(&[
                    c(FIN | TEXT, b"Hello"),
                    c(FIN | rsv | op, b"x"),
                    c(FIN | PING, b""),
                ]));
                assert_eq!((frames, error), (vec![text("Hello")], Some(1002)));
            }
        }
        // With deflate agreed, RSV2/RSV3 still fail.
        assert_eq!(deflate_server(&c(FIN | RSV2 | TEXT, b"")).1, Some(1002));
    }

    // 4.x: reserved opcodes.
    #[test]
    fn reserved_opcodes_fail() {
        for op in (3..=7).chain(0xB..=0xF) {
            for payload in [&b""[..], b"reserved"] {
                assert_eq!(
                    server(&cat(&[c(FIN | TEXT, b"Hello"), c(FIN | op, payload)])),
                    (vec![text("Hello")], Some(1002)),
                    "{op}"
                );
            }
            // Not final either.
            assert_eq!(server(&c(op, b"")).1, Some(1002));
        }
    }

    #[test]
    fn masking_follows_the_role() {
        // §5.1: a server refuses an unmasked frame...
        assert_eq!(server(&raw(FIN | TEXT, b"Hello", None)).1, Some(1002));
        // ...a client a masked one, and reads unmasked ones (§5.7's examples).
        let mut client = Decoder::new(Role::Client, LIMITS, None);
        assert_eq!(
            run(
                &mut client,
                &[
                    0x81, 0x05, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x01, 0x03, 0x48, 0x65, 0x6c, 0x80,
                    0x02, 0x6c, 0x6f
                ],
                3
            ),
            (vec![text("Hello"), text("Hello")], None)
        );
        let mut client = Decoder::new(Role::Client, LIMITS, None);
        assert_eq!(run(&mut client, &c(FIN | TEXT, b"Hello"), 1).1, Some(1002));
        // The masked example of §5.7, server side.
        assert_eq!(
            server(&[0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58]),
            (vec![text("Hello")], None)
        );
    }

    // 5.x: fragmentation.
    #[test]
    fn fragments_join_with_controls_between() {
        assert_eq!(
            server(&cat(&[
                c(TEXT, b"frag"),
                c(FIN | PING, b"p1"),
                c(CONT, b""),
                c(FIN | PONG, b"p2"),
                c(CONT, b"men"),
                c(FIN | CONT, b"ts"),
            ])),
            (
                vec![
                    Frame::Ping("p1".into()),
                    Frame::Pong("p2".into()),
                    text("fragments")
                ],
                None
            )
        );
        // One byte per fragment, binary.
        let mut frames = vec![c(BINARY, &[0])];
        frames.extend((1u8..=50).map(|i| c(CONT, &[i])));
        frames.push(c(FIN | CONT, &[51]));
        assert_eq!(
            server(&cat(&frames)),
            (vec![binary(&(0u8..=51).collect::<Vec<_>>())], None)
        );
        // All empty.
        assert_eq!(
            server(&cat(&[c(TEXT, b""), c(CONT, b""), c(FIN | CONT, b"")])),
            (vec![text("")], None)
        );
        // A close between fragments is delivered (the socket then stops).
        assert_eq!(
            server(&cat(&[c(TEXT, b"a"), c(FIN | CLOSE, b"")])).0,
            vec![Frame::Close(None)]
        );
    }

    #[test]
    fn fragmentation_errors() {
        for bytes in [
            // 5.9-5.14: a continuation with no message started, final or not.
            c(FIN | CONT, b"x"),
            c(CONT, b"x"),
            cat(&[c(FIN | TEXT, b"done"), c(FIN | CONT, b"x")]),
            // 5.18, 5.19: a new message inside another.
            cat(&[c(TEXT, b"a"), c(FIN | TEXT, b"b")]),
            cat(&[c(BINARY, b"a"), c(BINARY, b"b")]),
            cat(&[c(TEXT, b"a"), c(FIN | BINARY, b"b")]),
        ] {
            assert_eq!(server(&bytes).1, Some(1002), "{bytes:?}");
        }
    }

    /// Sequences from the Autobahn 6.x families and RFC 3629: (bytes, valid UTF-8).
    const UTF8_CASES: &[(&[u8], bool)] = &[
        ("κόσμε".as_bytes(), true),
        (b"\xf4\x8f\xbf\xbf", true),         // U+10FFFF
        (b"\xef\xbf\xbf\xef\xbf\xbe", true), // U+FFFF U+FFFE
        (b"\xed\x9f\xbf\xee\x80\x80", true), // around the surrogates
        (b"\x00\x7f\xc2\x80\xdf\xbf\xe0\xa0\x80", true),
        (
            b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80\x65\x64\x69\x74\x65\x64",
            false,
        ),
        (b"\xc0\x80", false),     // overlong NUL
        (b"\xe0\x80\xaf", false), // overlong /
        (b"\xf0\x80\x80\xaf", false),
        (b"\xed\xa0\x80", false), // a surrogate
        (b"\xed\xbf\xbf", false),
        (b"\xf4\x90\x80\x80", false), // past U+10FFFF
        (b"\xf5\x80\x80\x80", false),
        (b"\xfe", false),
        (b"\xff", false),
        (b"\x80", false),  // a lone continuation
        (b"a\xc2", false), // cut at the end
        (b"\xf0\x9f\x98", false),
        (b"\xe2\x82", false),
        (b"\xc2\x41", false),
    ];

    // 6.x: UTF-8 in text messages, in one frame or split anywhere across fragments.
    #[test]
    fn utf8_is_checked_across_any_split() {
        for &(bytes, valid) in UTF8_CASES {
            let expect = |frames: Vec<Frame>, error| {
                if valid {
                    assert_eq!(frames, vec![Frame::Text(Bytes::copy_from_slice(bytes))]);
                    assert_eq!(error, None, "{bytes:x?}");
                } else {
                    assert_eq!((frames, error), (vec![], Some(1007)), "{bytes:x?}");
                }
            };
            let (frames, error) = server(&c(FIN | TEXT, bytes));
            expect(frames, error);
            for i in 0..=bytes.len() {
                for j in i..=bytes.len() {
                    let (frames, error) = server(&cat(&[
                        c(TEXT, &bytes[..i]),
                        c(FIN | PING, b""),
                        c(CONT, &bytes[i..j]),
                        c(FIN | CONT, &bytes[j..]),
                    ]));
                    let frames: Vec<Frame> = frames
                        .into_iter()
                        .filter(|f| !matches!(f, Frame::Ping(_)))
                        .collect();
                    expect(frames, error);
                }
            }
        }
    }

    #[test]
    fn utf8_agrees_with_std_on_every_two_bytes() {
        for a in 0..=255u8 {
            for b in 0..=255u8 {
                let pair = [a, b];
                let valid = std::str::from_utf8(&pair).is_ok();
                let mut utf8 = Utf8::default();
                let fed = utf8.feed(&[a]) && utf8.feed(&[b]) && utf8.finish();
                assert_eq!(fed, valid, "{a:x} {b:x}");
            }
        }
    }

    #[test]
    fn invalid_text_fails_before_the_message_ends() {
        // 6.4.1/6.4.2: the first fragment already cannot be UTF-8; no more fragment needed.
        let mut decoder = Decoder::new(Role::Server, LIMITS, None);
        let mut buf = BytesMut::from(
            &c(
                TEXT,
                b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xf4\x90",
            )[..],
        );
        assert_eq!(decoder.decode(&mut buf).map_err(|e| e.code), Err(1007));
        // 6.4.3/6.4.4: inside one frame, before the rest of it arrives.
        let mut payload = b"\xce\xba\xe1\xbd\xb9\xcf\x83\xce\xbc\xce\xb5\xed\xa0\x80".to_vec();
        payload.resize(1000, b'x');
        let frame = c(FIN | TEXT, &payload);
        let mut decoder = Decoder::new(Role::Server, LIMITS, None);
        let mut buf = BytesMut::from(&frame[..8 + 10]);
        assert_eq!(decoder.decode(&mut buf), Ok(None));
        assert_eq!(decoder.wanted(), 990);
        buf.extend_from_slice(&frame[18..8 + 14]);
        assert_eq!(decoder.decode(&mut buf).map_err(|e| e.code), Err(1007));
        // The same inside a fragmented message's frame.
        let frame = c(TEXT, &payload);
        let mut decoder = Decoder::new(Role::Server, LIMITS, None);
        let mut buf = BytesMut::from(&frame[..8 + 14]);
        assert_eq!(decoder.decode(&mut buf).map_err(|e| e.code), Err(1007));
    }

    // 7.x: closing.
    #[test]
    fn close_frames() {
        assert_eq!(server(&c(FIN | CLOSE, b"")).0, vec![Frame::Close(None)]);
        assert_eq!(
            server(&c(FIN | CLOSE, b"\x03\xe8bye")).0,
            vec![Frame::Close(Some((1000, "bye".into())))]
        );
        let long = "é".repeat(61) + "x";
        let mut payload = vec![0x03, 0xe8];
        payload.extend_from_slice(long.as_bytes());
        assert_eq!(payload.len(), 125);
        assert_eq!(
            server(&c(FIN | CLOSE, &payload)).0,
            vec![Frame::Close(Some((1000, long.into())))]
        );
        payload.push(b'!');
        assert_eq!(server(&c(FIN | CLOSE, &payload)).1, Some(1002));
        // 7.3.2: a 1-byte payload.
        assert_eq!(server(&c(FIN | CLOSE, b"\x03")).1, Some(1002));
        // 7.5.1: a reason that is not UTF-8.
        assert_eq!(
            server(&c(FIN | CLOSE, b"\x03\xe8\xce\xba\xed\xa0\x80")).1,
            Some(1007)
        );
        // 7.7.x / 7.9.x: the codes.
        for code in [
            1000u16, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014, 3000, 3999,
            4000, 4999,
        ] {
            assert_eq!(
                server(&c(FIN | CLOSE, &code.to_be_bytes())),
                (vec![Frame::Close(Some((code, Bytes::new())))], None),
                "{code}"
            );
        }
        for code in [
            0u16, 1, 999, 1004, 1005, 1006, 1015, 1016, 1100, 2000, 2999, 5000, 65535,
        ] {
            assert_eq!(
                server(&c(FIN | CLOSE, &code.to_be_bytes())).1,
                Some(1002),
                "{code}"
            );
        }
    }

    // 9.x: limits, checked from the header before any payload is buffered.
    #[test]
    fn limits_refuse_from_the_header() {
        let limits = Limits {
            max_message: 100,
            max_frame: 60,
        };
        let header_only = |frame: &[u8], header: usize| {
            let mut decoder = Decoder::new(Role::Server, limits, None);
            let mut buf = BytesMut::from(&frame[..header]);
            decoder.decode(&mut buf).map_err(|e| e.code)
        };
        assert_eq!(header_only(&c(FIN | BINARY, &[0; 61]), 6), Err(1009));
        assert_eq!(header_only(&c(FIN | BINARY, &[0; 60]), 6), Ok(None));
        // A 2^62-byte frame, header alone.
        let mut huge = vec![FIN | BINARY, 0x80 | 127];
        huge.extend((1u64 << 62).to_be_bytes());
        huge.extend(KEY);
        assert_eq!(header_only(&huge, huge.len()), Err(1009));
        // §5.2: the top bit of a 64-bit length.
        huge[2] = 0x80;
        assert_eq!(header_only(&huge, huge.len()), Err(1002));
        // A message of fragments: 100 is fine, 101 is refused at the last header.
        let ok = cat(&[c(BINARY, &[1; 60]), c(FIN | CONT, &[2; 40])]);
        assert_eq!(decode_with(limits, || None, &ok).1, None);
        let over = cat(&[c(BINARY, &[1; 60]), c(FIN | CONT, &[2; 41])]);
        assert_eq!(header_only(&over, 66 + 6), Err(1009));
        // A large message in many fragments (9.3/9.4), in reads of 4096.
        let big: Vec<u8> = (0..1 << 20).map(|i| i as u8).collect();
        let mut frames: Vec<Vec<u8>> = big.chunks(65536).map(|chunk| c(BINARY, chunk)).collect();
        frames[0][0] = BINARY;
        for f in &mut frames[1..] {
            f[0] = CONT;
        }
        frames.push(c(FIN | CONT, b""));
        let mut decoder = Decoder::new(Role::Server, LIMITS, None);
        assert_eq!(
            run(&mut decoder, &cat(&frames), 4096),
            (vec![binary(&big)], None)
        );
    }

    #[test]
    fn wanted_counts_what_the_frame_still_needs() {
        let mut decoder = Decoder::new(Role::Server, LIMITS, None);
        assert_eq!(decoder.wanted(), 0);
        for first in [FIN | BINARY, BINARY] {
            let frame = c(first, &[5; 1000]);
            let mut buf = BytesMut::from(&frame[..8 + 10]);
            assert_eq!(decoder.decode(&mut buf), Ok(None));
            assert_eq!(decoder.wanted(), 990);
            buf.extend_from_slice(&frame[18..]);
            let _ = decoder.decode(&mut buf).unwrap();
            assert_eq!(decoder.wanted(), 0);
        }
    }

    #[test]
    fn an_error_is_final() {
        let mut decoder = Decoder::new(Role::Server, LIMITS, None);
        let mut buf = BytesMut::from(&c(FIN | 0x3, b"")[..]);
        let error = decoder.decode(&mut buf).unwrap_err();
        assert_eq!(error.code, 1002);
        assert!(error.to_string().contains("reserved opcode"), "{error}");
        buf.extend_from_slice(&c(FIN | TEXT, b"fine"));
        assert_eq!(decoder.decode(&mut buf), Err(error));
    }

    #[test]
    fn every_reason_fits_a_close_frame() {
        // The reasons are constants; collect them through the errors each rule gives.
        let cases = [
            c(FIN | RSV2 | TEXT, b""),
            c(FIN | 0x3, b""),
            raw(FIN | TEXT, b"", None),
            c(PING, b""),
            c(FIN | PING, &[0; 126]),
            c(FIN | RSV1 | PING, b""),
            c(FIN | CONT, b""),
            cat(&[c(TEXT, b""), c(TEXT, b"")]),
            c(FIN | RSV1 | TEXT, b""),
            c(FIN | TEXT, b"\xff"),
            c(FIN | TEXT, b"\xc2"),
            c(FIN | CLOSE, b"\x03"),
            c(FIN | CLOSE, b"\x00\x00"),
            c(FIN | CLOSE, b"\x03\xe8\xff"),
            c(FIN | BINARY, &vec![0; (1 << 20) + 1]),
        ];
        for bytes in cases {
            let mut decoder = Decoder::new(Role::Server, LIMITS, None);
            let error = decoder.decode(&mut BytesMut::from(&bytes[..])).unwrap_err();
            assert!(
                error.reason.len() <= 123 && !error.reason.is_empty(),
                "{error}"
            );
        }
    }

    fn agreed(server_bits: u8, client_bits: u8, server_nct: bool, client_nct: bool) -> Agreed {
        Agreed {
            server_max_window_bits: server_bits,
            client_max_window_bits: client_bits,
            server_no_context_takeover: server_nct,
            client_no_context_takeover: client_nct,
            server_max_window_bits_offered: false,
            client_max_window_bits_offered: false,
        }
    }

    // 12.x / 13.x: compressed messages.
    #[test]
    fn compressed_messages() {
        // RFC 7692 §7.2.3.1: "Hello" in one compressed frame and in two fragments.
        let mut client = Decoder::new(Role::Client, LIMITS, Some(Inflate::new(15, false)));
        assert_eq!(
            run(
                &mut client,
                &[
                    0xc1, 0x07, 0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, // one frame
                    0x41, 0x03, 0xf2, 0x48, 0xcd, 0x80, 0x04, 0xc9, 0xc9, 0x07, 0x00,
                ],
                1
            ),
            (vec![text("Hello"), text("Hello")], None)
        );
        // An uncompressed message among compressed ones.
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        assert_eq!(
            deflate_server(&cat(&[
                c(FIN | RSV1 | TEXT, &hello),
                c(FIN | TEXT, b"plain"),
                c(RSV1 | BINARY, &hello[..3]),
                c(FIN | PING, b""),
                c(FIN | CONT, &hello[3..]),
            ])),
            (
                vec![
                    text("Hello"),
                    text("plain"),
                    Frame::Ping(Bytes::new()),
                    binary(b"Hello")
                ],
                None
            )
        );
        // RFC 7692 §6: RSV1 on a continuation or a control frame; without deflate.
        for bytes in [
            cat(&[
                c(RSV1 | TEXT, &hello[..3]),
                c(FIN | RSV1 | CONT, &hello[3..]),
            ]),
            cat(&[c(TEXT, b"He"), c(FIN | RSV1 | CONT, b"llo")]),
            c(FIN | RSV1 | PING, b""),
            c(FIN | RSV1 | CLOSE, b""),
        ] {
            assert_eq!(deflate_server(&bytes).1, Some(1002), "{bytes:?}");
        }
        assert_eq!(server(&c(FIN | RSV1 | TEXT, &hello)).1, Some(1002));
        // Not DEFLATE; text that decompresses to invalid UTF-8.
        assert_eq!(
            deflate_server(&c(FIN | RSV1 | BINARY, &[0xff, 0xff])).1,
            Some(1007)
        );
        let mut bad_text = Vec::new();
        assert!(Deflate::new(1, 15, true).compress(b"ok \xed\xa0\x80", &mut bad_text));
        assert_eq!(
            deflate_server(&c(FIN | RSV1 | TEXT, &bad_text)).1,
            Some(1007)
        );
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_message_limit() {
        let limits = Limits {
            max_message: 10_000,
            max_frame: 10_000,
        };
        let mut bomb = Vec::new();
        assert!(Deflate::new(9, 15, true).compress(&vec![b'a'; 4 << 20], &mut bomb));
        assert!(bomb.len() < 10_000);
        for frames in [
            c(FIN | RSV1 | TEXT, &bomb),
            cat(&[c(RSV1 | TEXT, &bomb[..10]), c(FIN | CONT, &bomb[10..])]),
        ] {
            let mut decoder = Decoder::new(Role::Server, limits, Some(Inflate::new(15, false)));
            assert_eq!(run(&mut decoder, &frames, 100).1, Some(1009));
            let held = decoder.message.as_ref().map_or(0, |m| m.data.capacity());
            assert!(held <= limits.max_message, "{held}");
        }
        // Exactly the limit is fine.
        let mut exact = Vec::new();
        assert!(Deflate::new(1, 15, true).compress(&[b'a'; 10_000], &mut exact));
        let (frames, error) = decode_with(
            limits,
            || Some(Inflate::new(15, false)),
            &c(FIN | RSV1 | TEXT, &exact),
        );
        assert_eq!((frames.len(), error), (1, None));
    }

    #[test]
    fn the_encoder_writes_what_the_rfc_shows() {
        let mut server = Encoder::new(Role::Server, None);
        let mut dst = BytesMut::new();
        server.data(true, b"Hello", &mut dst);
        server.control(OpCode::Ping, b"Hello", &mut dst);
        server.close(None, "ignored without a code", &mut dst);
        server.close(Some(1000), "", &mut dst);
        assert_eq!(
            &dst[..],
            [
                &[0x81, 0x05][..],
                b"Hello",
                &[0x89, 0x05],
                b"Hello",
                &[0x88, 0x00],
                &[0x88, 0x02, 0x03, 0xe8]
            ]
            .concat()
        );
        // §7.2.3.2 (context takeover): "Hello" twice.
        let mut server = Encoder::new(
            Role::Server,
            Some(agreed(15, 15, false, false).deflate(Role::Server, 1)),
        );
        let mut dst = BytesMut::new();
        server.data(true, b"Hello", &mut dst);
        server.data(true, b"Hello", &mut dst);
        let mut client = Decoder::new(
            Role::Client,
            LIMITS,
            Some(agreed(15, 15, false, false).inflate(Role::Client)),
        );
        assert_eq!(dst[0], 0xc1, "RSV1 set");
        assert_eq!(
            run(&mut client, &dst, 1),
            (vec![text("Hello"), text("Hello")], None)
        );
    }

    #[test]
    fn client_frames_use_a_fresh_key_each() {
        let mut client = Encoder::new(Role::Client, None);
        let mut server = Decoder::new(Role::Server, LIMITS, None);
        let mut keys = std::collections::HashSet::new();
        for i in 0..100u32 {
            let mut dst = BytesMut::new();
            client.data(false, &i.to_be_bytes(), &mut dst);
            let header = parse_header(&dst).unwrap();
            keys.insert(header.mask.expect("masked"));
            assert_eq!(server.decode(&mut dst), Ok(Some(binary(&i.to_be_bytes()))));
        }
        // 100 random 32-bit keys collide with probability ~1e-6.
        assert_eq!(keys.len(), 100);
    }

    #[test]
    fn control_payloads_are_cut_to_125_bytes_on_a_character() {
        for role in [Role::Server, Role::Client] {
            let peer = if role == Role::Server {
                Role::Client
            } else {
                Role::Server
            };
            let mut encoder = Encoder::new(role, None);
            let mut decoder = Decoder::new(peer, LIMITS, None);
            let mut dst = BytesMut::new();
            encoder.control(OpCode::Ping, &[1; 300], &mut dst);
            assert_eq!(
                decoder.decode(&mut dst),
                Ok(Some(Frame::Ping(Bytes::from(vec![1; 125]))))
            );
            let reason = "é".repeat(100);
            encoder.close(Some(1001), &reason, &mut dst);
            let Ok(Some(Frame::Close(Some((1001, got))))) = decoder.decode(&mut dst) else {
                panic!("no close");
            };
            assert_eq!(got, "é".repeat(61));
            let mut payload = 4000u16.to_be_bytes().to_vec();
            payload.extend_from_slice(reason.as_bytes());
            encoder.control(OpCode::Close, &payload, &mut dst);
            let Ok(Some(Frame::Close(Some((4000, got))))) = decoder.decode(&mut dst) else {
                panic!("no close");
            };
            assert_eq!(got, "é".repeat(61));
        }
    }

    #[test]
    fn what_gets_compressed() {
        let random: Vec<u8> = {
            let mut bytes = vec![0u8; 2000];
            getrandom::fill(&mut bytes).unwrap();
            bytes
        };
        let json = br#"{"id":1,"name":"chirp","tags":["a","b"],"name2":"chirp"}"#.repeat(10);
        let rsv1 = |nct: bool, payload: &[u8]| {
            let deal = agreed(15, 15, nct, false);
            let mut encoder = Encoder::new(Role::Server, Some(deal.deflate(Role::Server, 1)));
            let mut dst = BytesMut::new();
            encoder.data(false, payload, &mut dst);
            let mut decoder = Decoder::new(Role::Client, LIMITS, Some(deal.inflate(Role::Client)));
            assert_eq!(decoder.decode(&mut dst), Ok(Some(binary(payload))));
            let mut again = BytesMut::new();
            encoder.data(false, payload, &mut again);
            again[0] & RSV1 != 0
        };
        assert!(rsv1(false, &json) && rsv1(true, &json));
        assert!(rsv1(false, &random), "with context takeover, everything");
        assert!(!rsv1(true, &random), "without, only what shrinks");
        assert!(
            !rsv1(false, b"") && !rsv1(true, b""),
            "never an empty message"
        );
    }

    /// One message of a generated conversation: how it is cut, and a ping after some cuts.
    #[derive(Clone, Debug)]
    struct Msg {
        text: bool,
        payload: Vec<u8>,
        compress: bool,
        cuts: Vec<usize>,
        pings: Vec<bool>,
    }

    fn msg() -> impl Strategy<Value = Msg> {
        (
            any::<bool>(),
            prop_oneof![
                proptest::collection::vec(any::<u8>(), 0..400),
                ".{0,100}".prop_map(String::into_bytes),
                "[ab ]{0,50}".prop_map(|s| s.repeat(20).into_bytes()),
            ],
            any::<bool>(),
            proptest::collection::vec(0usize..2000, 0..5),
            proptest::collection::vec(any::<bool>(), 0..5),
        )
            .prop_map(|(text, payload, compress, cuts, pings)| Msg {
                text,
                payload: if text {
                    String::from_utf8_lossy(&payload).into_owned().into_bytes()
                } else {
                    payload
                },
                compress,
                cuts,
                pings,
            })
    }

    /// What a `sender` with `deflate` puts on the wire for `msgs`, and the frames the peer
    /// must decode from it.
    fn conversation(
        sender: Role,
        mut deflate: Option<Deflate>,
        msgs: &[Msg],
    ) -> (Vec<u8>, Vec<Frame>) {
        let mut wire = BytesMut::new();
        let mut expected = Vec::new();
        let mut key = 0u32;
        let mut next_mask = || {
            key = key.wrapping_mul(2654435761).wrapping_add(12345);
            (sender == Role::Client).then_some(key.to_be_bytes())
        };
        for m in msgs {
            let mut body = m.payload.clone();
            let mut rsv1 = false;
            if let (Some(deflate), true) = (&mut deflate, m.compress) {
                body.clear();
                assert!(deflate.compress(&m.payload, &mut body));
                rsv1 = true;
            }
            let mut cuts: Vec<usize> = m.cuts.iter().map(|c| c % (body.len() + 1)).collect();
            cuts.sort_unstable();
            cuts.insert(0, 0);
            cuts.push(body.len());
            let n = cuts.len() - 1;
            for (i, w) in cuts.windows(2).enumerate() {
                let opcode = match (i, m.text) {
                    (0, true) => OpCode::Text,
                    (0, false) => OpCode::Binary,
                    _ => OpCode::Continuation,
                };
                let mask = next_mask();
                write_header(
                    &mut wire,
                    i + 1 == n,
                    rsv1 && i == 0,
                    opcode,
                    w[1] - w[0],
                    mask,
                );
                let start = wire.len();
                wire.extend_from_slice(&body[w[0]..w[1]]);
                if let Some(k) = mask {
                    apply_mask(&mut wire[start..], k, 0);
                }
                if i + 1 < n && m.pings.get(i).copied().unwrap_or(false) {
                    let payload = body.get(..body.len().min(20)).unwrap_or_default().to_vec();
                    let mask = next_mask();
                    write_header(&mut wire, true, false, OpCode::Ping, payload.len(), mask);
                    let start = wire.len();
                    wire.extend_from_slice(&payload);
                    if let Some(k) = mask {
                        apply_mask(&mut wire[start..], k, 0);
                    }
                    expected.push(Frame::Ping(payload.into()));
                }
            }
            let payload = Bytes::from(m.payload.clone());
            expected.push(if m.text {
                Frame::Text(payload)
            } else {
                Frame::Binary(payload)
            });
        }
        (wire.to_vec(), expected)
    }

    fn deal() -> impl Strategy<Value = Option<Agreed>> {
        proptest::option::of(
            (9u8..=15, 9u8..=15, any::<bool>(), any::<bool>())
                .prop_map(|(s, c, snct, cnct)| agreed(s, c, snct, cnct)),
        )
    }

    fn peer(role: Role) -> Role {
        match role {
            Role::Server => Role::Client,
            Role::Client => Role::Server,
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        /// Any conversation, cut into any fragments with pings between them, compressed or
        /// not, arriving in reads of any size, decodes to what was sent.
        #[test]
        fn fragmented_messages_round_trip(
            msgs in proptest::collection::vec(msg(), 1..6),
            sender_is_client in any::<bool>(),
            deal in deal(),
            read in 1usize..300,
        ) {
            let sender = if sender_is_client { Role::Client } else { Role::Server };
            let (wire, expected) =
                conversation(sender, deal.as_ref().map(|d| d.deflate(sender, 1)), &msgs);
            let mut decoder = Decoder::new(peer(sender), LIMITS, deal.as_ref().map(|d| d.inflate(peer(sender))));
            prop_assert_eq!(run(&mut decoder, &wire, read), (expected, None));
        }

        /// The encoder's output decodes to what it was given, in each role, with and without
        /// deflate.
        #[test]
        fn encoder_round_trips(
            msgs in proptest::collection::vec((any::<bool>(), msg()), 1..8),
            sender_is_client in any::<bool>(),
            deal in deal(),
            read in 1usize..300,
        ) {
            let sender = if sender_is_client { Role::Client } else { Role::Server };
            let mut encoder = Encoder::new(sender, deal.as_ref().map(|d| d.deflate(sender, 1)));
            let mut wire = BytesMut::new();
            let mut expected = Vec::new();
            for (control, m) in &msgs {
                if *control {
                    let payload = &m.payload[..m.payload.len().min(125)];
                    encoder.control(OpCode::Pong, payload, &mut wire);
                    expected.push(Frame::Pong(Bytes::copy_from_slice(payload)));
                } else {
                    encoder.data(m.text, &m.payload, &mut wire);
                    let payload = Bytes::from(m.payload.clone());
                    expected.push(if m.text { Frame::Text(payload) } else { Frame::Binary(payload) });
                }
            }
            encoder.close(Some(1000), "done", &mut wire);
            expected.push(Frame::Close(Some((1000, "done".into()))));
            let mut decoder = Decoder::new(peer(sender), LIMITS, deal.as_ref().map(|d| d.inflate(peer(sender))));
            prop_assert_eq!(run(&mut decoder, &wire, read), (expected, None));
        }

        /// Decoding arbitrary bytes never panics; any error is 1002, 1007 or 1009; the
        /// outcome does not depend on how the bytes arrive.
        #[test]
        fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..600)) {
            fuzz_decode(&data);
        }

        /// The same on valid conversations with a few bytes changed, which get much further
        /// into the decoder than random bytes.
        #[test]
        fn mutated_conversations_never_panic(
            msgs in proptest::collection::vec(msg(), 1..4),
            config in any::<u8>(),
            deflate in any::<bool>(),
            mutations in proptest::collection::vec((any::<usize>(), any::<u8>()), 0..4),
        ) {
            // The role bit of `config` (bit 0: client) decides who sent the conversation.
            let receiver = if config & 1 == 0 { Role::Server } else { Role::Client };
            let config = if deflate { config | 2 } else { config & !2 };
            let deal = agreed(15, 15, config & 0x80 != 0, config & 0x80 != 0);
            let (mut wire, _) = conversation(peer(receiver), deflate.then(|| deal.deflate(peer(receiver), 1)), &msgs);
            for (at, byte) in mutations {
                if !wire.is_empty() {
                    let at = at % wire.len();
                    wire[at] = byte;
                }
            }
            wire.insert(0, config);
            fuzz_decode(&wire);
        }
    }
}
