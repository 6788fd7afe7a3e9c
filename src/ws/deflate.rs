//! permessage-deflate (RFC 7692): negotiating its parameters in the opening handshake (§5,
//! §7.1), and compressing / decompressing one message at a time (§7.2) with zlib-rs through
//! flate2's raw-deflate streams.
//!
//! # What a connection holds
//!
//! Measured with a counting allocator on flate2 1.1 + zlib-rs 0.6 (default memLevel 8):
//!
//! | state | window bits 9 | 10 | 12 | 15 |
//! | --- | --- | --- | --- | --- |
//! | compressor ([`Deflate`]) | 251 KB | 253 KB | 265 KB | 380 KB |
//! | decompressor ([`Inflate`]) | 47.5 KB | 47.5 KB | 47.5 KB | 47.5 KB |
//!
//! zlib's own estimate for a compressor, `(1 << (wbits + 2)) + (1 << (memLevel + 9))`, is
//! 256 KB at 15 bits; zlib-rs allocates a fixed 64K-entry hash table and larger literal
//! buffers, so the window bits save little there (the decompressor's window does not shrink
//! at all). Lowering the window bits therefore buys the peer more than us.
//!
//! With context takeover (the default on both sides, RFC 7692 §7.1.1) each side keeps its
//! state for the life of the connection: about 430 KB per connection with both directions
//! compressed. When a side does *no* context takeover, its state holds nothing worth keeping
//! between messages, so it is created when a message starts and dropped when it ends: the
//! idle connection then holds nothing for that direction. Measured cost of that choice, for a
//! 130-byte JSON message at level 1: compressing 7.3 µs with a fresh compressor against 3.4
//! µs with a reset one, decompressing 1.1 µs against 0.6 µs; a few µs per message for 380 KB
//! (or 47.5 KB) less per idle connection.
//!
//! # Level
//!
//! Level 1 by default: on chat-like JSON, level 1 compresses a stream of small messages (with
//! context takeover) to 16.4% of their size against 15.0% at level 6, and a 870 KB message
//! at ~900 MB/s against ~96 MB/s at level 6 (ratio 14% against 9.4%). A server compresses
//! every message it sends, so the seven-fold speed is worth the few percent.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::frame::Role;
use crate::error::ConfigurationError;

/// The extension's name in `Sec-WebSocket-Extensions` (RFC 7692 §6).
const NAME: &str = "permessage-deflate";

/// What a sender strips from the end of each compressed message and a receiver appends back
/// before decompressing: the empty stored block that a sync flush ends with (§7.2.1, §7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xFF, 0xFF];

/// The smallest window zlib (and zlib-rs) can compress raw deflate with: asked for 8, zlib
/// silently uses 9, which the peer would not expect. RFC 7692 §7.1.2.1 lets a server decline
/// an offer whose window it does not support, so an offer of `server_max_window_bits=8` is
/// declined, and 8 is refused in the configuration.
const MIN_WINDOW_BITS: u8 = 9;
const MAX_WINDOW_BITS: u8 = 15;

/// What the server accepts and asks for in permessage-deflate (RFC 7692), re-exported as
/// `chirp::ws::DeflateConfig`.
///
/// The default accepts any offer with the largest windows and context takeover on both
/// sides (the best compression; see the memory each costs in the module documentation),
/// at compression level 1.
#[derive(Clone, Debug)]
pub struct DeflateConfig {
    server_max_window_bits: u8,
    client_max_window_bits: u8,
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    level: u32,
}

impl Default for DeflateConfig {
    fn default() -> Self {
        DeflateConfig {
            server_max_window_bits: MAX_WINDOW_BITS,
            client_max_window_bits: MAX_WINDOW_BITS,
            server_no_context_takeover: false,
            client_no_context_takeover: false,
            level: 1,
        }
    }
}

impl DeflateConfig {
    /// The largest LZ77 window the server compresses with, as a power of two, 9 to 15
    /// (default 15). An offer asking for less than this gets what it asks, down to 9.
    pub fn server_max_window_bits(mut self, bits: u8) -> Self {
        self.server_max_window_bits = bits;
        self
    }

    /// The largest window a client may compress with, 9 to 15 (default 15). Below 15, an
    /// offer that does not let the server limit the client's window (no
    /// `client_max_window_bits` parameter) is declined.
    pub fn client_max_window_bits(mut self, bits: u8) -> Self {
        self.client_max_window_bits = bits;
        self
    }

    /// Compress each server message on its own (default off): worse compression, no
    /// compressor held between messages.
    pub fn server_no_context_takeover(mut self, on: bool) -> Self {
        self.server_no_context_takeover = on;
        self
    }

    /// Ask clients to compress each message on their own (default off): no decompressor held
    /// between messages.
    pub fn client_no_context_takeover(mut self, on: bool) -> Self {
        self.client_no_context_takeover = on;
        self
    }

    /// The zlib compression level, 0 (stored) to 9 (smallest), default 1 (fastest).
    pub fn level(mut self, level: u32) -> Self {
        self.level = level;
        self
    }

    /// Out-of-range values: a ConfigurationError with what to do.
    /// The compression level (see [`DeflateConfig::level`]).
    pub(crate) fn level_value(&self) -> u32 {
        self.level
    }

    pub(crate) fn validate(&self) -> Result<(), ConfigurationError> {
        for (name, bits) in [
            ("server_max_window_bits", self.server_max_window_bits),
            ("client_max_window_bits", self.client_max_window_bits),
        ] {
            if !(MIN_WINDOW_BITS..=MAX_WINDOW_BITS).contains(&bits) {
                return Err(ConfigurationError::new(format!(
                    "DeflateConfig::{name}({bits}): use 9 to 15 (zlib cannot compress raw \
                     deflate with a window of 8 bits, and RFC 7692 allows no more than 15)"
                )));
            }
        }
        if self.level > 9 {
            return Err(ConfigurationError::new(format!(
                "DeflateConfig::level({}): use 0 (no compression) to 9 (smallest output)",
                self.level
            )));
        }
        Ok(())
    }
}

/// The parameters both sides agreed on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Agreed {
    /// The window the server compresses with (8 to 15; never 8 when we are the server).
    pub(crate) server_max_window_bits: u8,
    /// The window the client compresses with (8 to 15; never 8 when we are the client).
    pub(crate) client_max_window_bits: u8,
    pub(crate) server_no_context_takeover: bool,
    pub(crate) client_no_context_takeover: bool,
    /// The offer carried `server_max_window_bits`: accepting it takes the parameter in the
    /// response (§7.1.2.1), even at 15.
    pub(crate) server_max_window_bits_offered: bool,
    /// The offer carried `client_max_window_bits`: only then may the response name it
    /// (§7.1.2.2).
    pub(crate) client_max_window_bits_offered: bool,
}

impl Agreed {
    /// The 101's `Sec-WebSocket-Extensions` value, e.g. `permessage-deflate;
    /// client_max_window_bits=15`: only the parameters the RFC lets or needs the server to
    /// send.
    pub(crate) fn response_header(&self) -> String {
        let mut header = String::from(NAME);
        // §7.1.1.1: accepting an offer with server_no_context_takeover takes the parameter
        // in the response, and a server MAY add it to an offer without it.
        if self.server_no_context_takeover {
            header.push_str("; server_no_context_takeover");
        }
        // §7.1.1.2: a server MAY include client_no_context_takeover, offered or not.
        if self.client_no_context_takeover {
            header.push_str("; client_no_context_takeover");
        }
        // §7.1.2.1: accepting an offer with server_max_window_bits takes the parameter with
        // the same or a smaller value; a server MAY include it when it was not offered.
        if self.server_max_window_bits_offered || self.server_max_window_bits < MAX_WINDOW_BITS {
            header.push_str(&format!(
                "; server_max_window_bits={}",
                self.server_max_window_bits
            ));
        }
        // §7.1.2.2: the response MUST NOT include client_max_window_bits unless the offer
        // did, and then with a value (the offer's may be bare).
        if self.client_max_window_bits_offered {
            header.push_str(&format!(
                "; client_max_window_bits={}",
                self.client_max_window_bits
            ));
        }
        header
    }

    /// The decompressor for what the peer sends: its window bits and context takeover.
    pub(crate) fn inflate(&self, role: Role) -> Inflate {
        match role {
            Role::Server => {
                Inflate::new(self.client_max_window_bits, self.client_no_context_takeover)
            }
            Role::Client => {
                Inflate::new(self.server_max_window_bits, self.server_no_context_takeover)
            }
        }
    }

    /// The compressor for what we send: our side's window bits and context takeover.
    pub(crate) fn deflate(&self, role: Role, level: u32) -> Deflate {
        match role {
            Role::Server => Deflate::new(
                level,
                self.server_max_window_bits,
                self.server_no_context_takeover,
            ),
            Role::Client => Deflate::new(
                level,
                self.client_max_window_bits,
                self.client_no_context_takeover,
            ),
        }
    }
}

/// The parameters of one permessage-deflate offer or response, as sent (§7.1).
#[derive(Debug, Default)]
struct Params {
    server_no_context_takeover: bool,
    client_no_context_takeover: bool,
    server_max_window_bits: Option<u8>,
    /// `Some(None)`: present without a value (allowed in an offer only, §7.1.2.2).
    client_max_window_bits: Option<Option<u8>>,
}

/// A window-bits value: §7.1.2.1/§7.1.2.2 "a decimal integer value without leading zeroes
/// between 8 to 15, inclusive", possibly as a quoted string (RFC 6455 §9.1: the unquoted
/// value must then be a token).
fn window_bits(value: &str) -> Option<u8> {
    let value = value
        .strip_prefix('"')
        .and_then(|v| v.strip_suffix('"'))
        .unwrap_or(value);
    let bits: u8 = value.parse().ok()?;
    (bits.to_string() == value && (8..=MAX_WINDOW_BITS).contains(&bits)).then_some(bits)
}

/// Reads the parameters after `permessage-deflate`. §7: an unknown parameter, a parameter
/// given twice or a bad value makes the offer (or the response) unacceptable.
fn parse_params<'a>(
    params: impl Iterator<Item = &'a str>,
    response: bool,
) -> Result<Params, String> {
    let mut out = Params::default();
    for param in params {
        let (name, value) = match param.split_once('=') {
            Some((name, value)) => (name.trim(), Some(value.trim())),
            None => (param.trim(), None),
        };
        let duplicate = || format!("{name} given twice");
        let bad_value = || format!("{name} with a bad value {value:?}");
        match name.to_ascii_lowercase().as_str() {
            // §7.1.1.1, §7.1.1.2: these two take no value.
            "server_no_context_takeover" | "client_no_context_takeover" => {
                if value.is_some() {
                    return Err(bad_value());
                }
                let flag = if name.eq_ignore_ascii_case("server_no_context_takeover") {
                    &mut out.server_no_context_takeover
                } else {
                    &mut out.client_no_context_takeover
                };
                if std::mem::replace(flag, true) {
                    return Err(duplicate());
                }
            }
            // §7.1.2.1: always with a value.
            "server_max_window_bits" => {
                let bits = value.and_then(window_bits).ok_or_else(bad_value)?;
                if out.server_max_window_bits.replace(bits).is_some() {
                    return Err(duplicate());
                }
            }
            // §7.1.2.2: the value is optional in an offer, required in a response.
            "client_max_window_bits" => {
                let bits = match value {
                    Some(value) => Some(window_bits(value).ok_or_else(bad_value)?),
                    None if response => return Err(bad_value()),
                    None => None,
                };
                if out.client_max_window_bits.replace(bits).is_some() {
                    return Err(duplicate());
                }
            }
            _ => return Err(format!("unknown parameter {param:?}")),
        }
    }
    Ok(out)
}

/// The permessage-deflate elements of a `Sec-WebSocket-Extensions` value, each as its
/// parameters (RFC 6455 §9.1: comma-separated extensions, `;`-separated parameters).
fn deflate_elements(value: &str) -> impl Iterator<Item = std::str::Split<'_, char>> {
    value.split(',').filter_map(|extension| {
        let mut parts = extension.split(';');
        let name = parts.next().unwrap_or("").trim();
        name.eq_ignore_ascii_case(NAME).then_some(parts)
    })
}

/// Server side: the first acceptable permessage-deflate offer among all
/// `Sec-WebSocket-Extensions` header values, reconciled with `config`. An offer with an
/// unknown parameter, a duplicated parameter or a bad value is declined and the next one
/// tried (RFC 7692 §5, §7). `None` = decline (no extension header in the 101).
pub(crate) fn negotiate<'a>(
    offers: impl Iterator<Item = &'a str>,
    config: &DeflateConfig,
) -> Option<Agreed> {
    offers
        .flat_map(deflate_elements)
        .find_map(|params| accept_offer(parse_params(params, false).ok()?, config))
}

/// One offer against the configuration, or `None` to decline it.
fn accept_offer(offer: Params, config: &DeflateConfig) -> Option<Agreed> {
    // §7.1.2.1: the server compresses with at most the offered window (and at most what the
    // configuration allows); a window it cannot do (8, see MIN_WINDOW_BITS) declines.
    let server_bits = offer
        .server_max_window_bits
        .map_or(config.server_max_window_bits, |bits| {
            bits.min(config.server_max_window_bits)
        });
    if server_bits < MIN_WINDOW_BITS {
        return None;
    }
    // §7.1.2.2: only an offer with client_max_window_bits lets the server limit the client's
    // window. Without it the client may use 15 bits, more than the configuration accepts:
    // decline rather than hold a larger window than configured. With a value, the client
    // already promised that much, and the server may ask for less.
    let client_bits = match offer.client_max_window_bits {
        None if config.client_max_window_bits < MAX_WINDOW_BITS => return None,
        None => MAX_WINDOW_BITS,
        Some(None) => config.client_max_window_bits,
        Some(Some(bits)) => bits.min(config.client_max_window_bits),
    };
    Some(Agreed {
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
        // §7.1.1.1: an offered server_no_context_takeover must be honoured; the server may
        // add it. §7.1.1.2: an offered client_no_context_takeover may be echoed, which lets
        // the server drop its decompressor between messages.
        server_no_context_takeover: offer.server_no_context_takeover
            || config.server_no_context_takeover,
        client_no_context_takeover: offer.client_no_context_takeover
            || config.client_no_context_takeover,
        server_max_window_bits_offered: offer.server_max_window_bits.is_some(),
        client_max_window_bits_offered: offer.client_max_window_bits.is_some(),
    })
}

/// Client side (for the TestClient): the offer to send.
pub(crate) fn client_offer(config: &DeflateConfig) -> String {
    // client_max_window_bits always, so that the server may choose the window (§7.1.2.2);
    // with our limit as its value, so it chooses no more than we can do.
    let mut offer = format!(
        "{NAME}; client_max_window_bits={}",
        config.client_max_window_bits
    );
    if config.server_max_window_bits < MAX_WINDOW_BITS {
        offer.push_str(&format!(
            "; server_max_window_bits={}",
            config.server_max_window_bits
        ));
    }
    if config.server_no_context_takeover {
        offer.push_str("; server_no_context_takeover");
    }
    if config.client_no_context_takeover {
        offer.push_str("; client_no_context_takeover");
    }
    offer
}

/// Client side: the server's `Sec-WebSocket-Extensions` answer to [`client_offer`], checked
/// against what that offer allowed.
pub(crate) fn client_accept(response: &str, config: &DeflateConfig) -> Result<Agreed, String> {
    let mut elements = deflate_elements(response);
    let params = elements
        .next()
        .ok_or_else(|| format!("the server answered {response:?}, not {NAME}"))?;
    if response.split(',').count() != 1 {
        return Err(format!(
            "the server answered {response:?}: we offered only one extension"
        ));
    }
    let answer = parse_params(params, true).map_err(|e| format!("the server answered {e}"))?;
    // §7.1.1.1: a server accepting server_no_context_takeover includes it.
    if config.server_no_context_takeover && !answer.server_no_context_takeover {
        return Err("the server did not accept server_no_context_takeover".into());
    }
    // §7.1.2.1: an offered server_max_window_bits comes back with the same or a smaller
    // value; one not offered may still come back (any value: we decompress with at least it).
    let offered_server = config.server_max_window_bits < MAX_WINDOW_BITS;
    let server_bits = match answer.server_max_window_bits {
        None if offered_server => {
            return Err("the server did not answer our server_max_window_bits".into())
        }
        None => MAX_WINDOW_BITS,
        Some(bits) if offered_server && bits > config.server_max_window_bits => {
            return Err(format!(
                "the server chose server_max_window_bits={bits}, more than the {} we offered",
                config.server_max_window_bits
            ))
        }
        Some(bits) => bits,
    };
    // §7.1.2.2: at most what we offered; 8 we cannot compress with.
    let client_bits = match answer.client_max_window_bits {
        None => config.client_max_window_bits,
        Some(Some(bits)) if bits > config.client_max_window_bits => {
            return Err(format!(
                "the server chose client_max_window_bits={bits}, more than the {} we offered",
                config.client_max_window_bits
            ))
        }
        Some(Some(bits)) if bits < MIN_WINDOW_BITS => {
            return Err(format!(
                "the server chose client_max_window_bits={bits}: zlib compresses with 9 to 15"
            ))
        }
        Some(Some(bits)) => bits,
        // parse_params refuses a bare one in a response.
        Some(None) => return Err("the server sent client_max_window_bits without a value".into()),
    };
    Ok(Agreed {
        server_max_window_bits: server_bits,
        client_max_window_bits: client_bits,
        server_no_context_takeover: answer.server_no_context_takeover,
        // §7.1.1.2: what we offered we must honour even if the server does not echo it.
        client_no_context_takeover: answer.client_no_context_takeover
            || config.client_no_context_takeover,
        server_max_window_bits_offered: offered_server,
        client_max_window_bits_offered: true,
    })
}

/// Grows `v` so that `additional` more bytes fit, doubling but never past `max` bytes of
/// capacity (when `v.len() + additional <= max`): a message's buffer never holds more
/// memory than the message limit.
pub(crate) fn reserve_within(v: &mut Vec<u8>, additional: usize, max: usize) {
    let need = v.len().saturating_add(additional);
    if need > v.capacity() {
        let target = v.capacity().saturating_mul(2).min(max).max(need);
        v.reserve_exact(target - v.len());
    }
}

/// Why a compressed message could not be decompressed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// It decompresses to more than the limit.
    TooBig,
    /// It is not a valid DEFLATE stream.
    Corrupt,
}

/// The decompressor of one direction: one message at a time, the 0x00 0x00 0xff 0xff tail
/// appended per §7.2.2, output bounded by the limit passed in.
pub(crate) struct Inflate {
    window_bits: u8,
    no_context_takeover: bool,
    /// `None` between messages when the peer does no context takeover (see the module
    /// documentation), created when a message starts.
    state: Option<Decompress>,
    /// The message's stream ended with a final block (BFINAL, §7.2.3.4): what follows is
    /// ignored, and the next message starts a new stream.
    ended: bool,
}

impl Inflate {
    /// A decompressor for a peer compressing with `window_bits` (8 to 15: zlib decompresses
    /// a stream of a smaller window with a larger one, so 8 becomes 9).
    pub(crate) fn new(window_bits: u8, no_context_takeover: bool) -> Inflate {
        Inflate {
            window_bits: window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
            no_context_takeover,
            state: None,
            ended: false,
        }
    }

    /// Decompresses `input`, a piece of a message's compressed payload, appending to `out`,
    /// which must not grow past `max_len` bytes (else [`InflateError::TooBig`], with `out`
    /// still within it: a decompression bomb stops at the limit).
    pub(crate) fn push(
        &mut self,
        input: &[u8],
        out: &mut Vec<u8>,
        max_len: usize,
    ) -> Result<(), InflateError> {
        let window_bits = self.window_bits;
        let state = self
            .state
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, window_bits));
        run_inflate(state, input, out, max_len, &mut self.ended)
    }

    /// Ends the message: appends the tail the sender stripped (§7.2.2) and decompresses what
    /// remains; then resets the stream, or drops it when the peer does no context takeover.
    pub(crate) fn finish(&mut self, out: &mut Vec<u8>, max_len: usize) -> Result<(), InflateError> {
        self.push(&TAIL, out, max_len)?;
        if self.no_context_takeover {
            self.state = None;
        } else if self.ended {
            // A stream that ended with BFINAL cannot continue: the peer's next message is a
            // new stream.
            if let Some(state) = &mut self.state {
                state.reset(false);
            }
        }
        self.ended = false;
        Ok(())
    }

    /// The zlib state is held now (for tests of the memory policy).
    #[cfg(test)]
    pub(crate) fn holds_state(&self) -> bool {
        self.state.is_some()
    }
}

fn run_inflate(
    state: &mut Decompress,
    mut input: &[u8],
    out: &mut Vec<u8>,
    max_len: usize,
    ended: &mut bool,
) -> Result<(), InflateError> {
    loop {
        if *ended {
            // §7.2.3.4: after a final block, the padding the sender appended is ignored.
            return Ok(());
        }
        let room = max_len.saturating_sub(out.len());
        let (in_before, out_before) = (state.total_in(), state.total_out());
        let (result, spare) = if room == 0 {
            // At the limit: one byte more is a message over it. (Never a capacity past
            // the limit, not even by a byte.)
            let mut probe = [0u8; 1];
            let result = state.decompress(input, &mut probe, FlushDecompress::Sync);
            if state.total_out() > out_before {
                return Err(InflateError::TooBig);
            }
            (result, 1)
        } else {
            // Straight into `out`'s spare capacity, which never goes past the limit: no
            // scratch buffer to zero for each call (that was most of a small message's cost).
            reserve_within(out, room.min(8192), max_len);
            let spare = (out.capacity() - out.len()).min(room);
            (
                state.decompress_vec(input, out, FlushDecompress::Sync),
                spare,
            )
        };
        // Both deltas are bounded by the slices' lengths, and counted on errors too.
        let used = (state.total_in() - in_before) as usize;
        let made = (state.total_out() - out_before) as usize;
        input = &input[used..];
        if out.len() > max_len {
            // A buffer with more capacity than the limit (kept from a larger use): what
            // fits is kept, so that the caller checks the same output whatever the cuts.
            out.truncate(max_len);
            return Err(InflateError::TooBig);
        }
        let status = result.map_err(|_| InflateError::Corrupt)?;
        if status == Status::StreamEnd {
            *ended = true;
        }
        let output_pending = made == spare;
        if !output_pending && (input.is_empty() || (used == 0 && made == 0)) {
            return Ok(());
        }
    }
}

/// The compressor of our direction: one message at a time, the tail stripped (§7.2.1).
pub(crate) struct Deflate {
    level: u32,
    window_bits: u8,
    no_context_takeover: bool,
    /// `None` between messages when we do no context takeover (see the module
    /// documentation).
    state: Option<Compress>,
}

impl Deflate {
    /// A compressor at `level` (0-9) with `window_bits` (9-15; the negotiation never agrees
    /// on less for our side, and a smaller value is raised rather than panic in zlib).
    pub(crate) fn new(level: u32, window_bits: u8, no_context_takeover: bool) -> Deflate {
        Deflate {
            level: level.min(9),
            window_bits: window_bits.clamp(MIN_WINDOW_BITS, MAX_WINDOW_BITS),
            no_context_takeover,
            state: None,
        }
    }

    /// We compress each message on its own.
    pub(crate) fn no_context_takeover(&self) -> bool {
        self.no_context_takeover
    }

    /// Appends `input` compressed as one message to `out` (§7.2.1: DEFLATE, sync flush, the
    /// final 0x00 0x00 0xff 0xff removed). `false` if zlib failed (it does not on valid
    /// use): nothing is appended, the stream is started anew, and the caller sends the
    /// message uncompressed, which the peer's window never sees, so both stay in step.
    pub(crate) fn compress(&mut self, input: &[u8], out: &mut Vec<u8>) -> bool {
        let (level, window_bits) = (self.level, self.window_bits);
        let state = self.state.get_or_insert_with(|| {
            Compress::new_with_window_bits(Compression::new(level), false, window_bits)
        });
        let start = out.len();
        let in_start = state.total_in();
        let ok = loop {
            // Bounded by input.len().
            let consumed = (state.total_in() - in_start) as usize;
            out.reserve((input.len() - consumed) / 2 + 64);
            if state
                .compress_vec(&input[consumed..], out, FlushCompress::Sync)
                .is_err()
            {
                break false;
            }
            // Done when all input is in and the flush did not fill the output (zlib's "avail_out
            // != 0" after Z_SYNC_FLUSH).
            if state.total_in() - in_start == input.len() as u64 && out.len() < out.capacity() {
                break true;
            }
        };
        if !ok {
            out.truncate(start);
            self.state = None;
            return false;
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if out.len() == start {
            // Nothing to flush (an empty message right after another: zlib writes nothing).
            // An empty body would make the peer read the appended tail as the start of a
            // stored block; send the empty stored block of §7.2.3.6 instead, which leaves
            // both windows as they are.
            out.push(0x00);
        }
        if self.no_context_takeover {
            self.state = None;
        }
        true
    }

    /// The zlib state is held now (for tests of the memory policy).
    #[cfg(test)]
    pub(crate) fn holds_state(&self) -> bool {
        self.state.is_some()
    }
}

/// Decompresses one whole message.
#[cfg(test)]
pub(crate) fn inflate_message(
    inflate: &mut Inflate,
    compressed: &[u8],
    max_len: usize,
) -> Result<bytes::Bytes, InflateError> {
    let mut out = Vec::new();
    inflate.push(compressed, &mut out, max_len)?;
    inflate.finish(&mut out, max_len)?;
    Ok(bytes::Bytes::from(out))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn agree(offers: &[&str], config: &DeflateConfig) -> Option<Agreed> {
        negotiate(offers.iter().copied(), config)
    }

    fn response(offers: &[&str], config: &DeflateConfig) -> Option<String> {
        agree(offers, config).map(|a| a.response_header())
    }

    #[test]
    fn config_validation_names_the_setting_and_the_range() {
        assert!(DeflateConfig::default().validate().is_ok());
        assert!(DeflateConfig::default()
            .server_max_window_bits(9)
            .client_max_window_bits(15)
            .level(9)
            .validate()
            .is_ok());
        for (config, words) in [
            (
                DeflateConfig::default().server_max_window_bits(8),
                "server_max_window_bits(8)",
            ),
            (
                DeflateConfig::default().client_max_window_bits(16),
                "client_max_window_bits(16)",
            ),
            (DeflateConfig::default().level(10), "level(10)"),
        ] {
            let message = config.validate().unwrap_err().to_string();
            assert!(message.contains(words), "{message}");
        }
    }

    #[test]
    fn plain_offers_are_accepted_with_defaults() {
        let config = DeflateConfig::default();
        assert_eq!(
            response(&["permessage-deflate"], &config).as_deref(),
            Some("permessage-deflate")
        );
        // What browsers send.
        assert_eq!(
            response(&["permessage-deflate; client_max_window_bits"], &config).as_deref(),
            Some("permessage-deflate; client_max_window_bits=15")
        );
        let agreed = agree(&["permessage-deflate"], &config).unwrap();
        assert_eq!(
            (
                agreed.server_max_window_bits,
                agreed.client_max_window_bits,
                agreed.server_no_context_takeover,
                agreed.client_no_context_takeover
            ),
            (15, 15, false, false)
        );
        // Names are case-insensitive, whitespace is optional.
        assert!(agree(&["Permessage-Deflate;Client_Max_Window_Bits = 10"], &config).is_some());
    }

    #[test]
    fn no_offer_or_other_extensions_decline() {
        let config = DeflateConfig::default();
        assert_eq!(agree(&[], &config), None);
        assert_eq!(
            agree(&["x-webkit-deflate-frame", "foo; bar=1"], &config),
            None
        );
        assert_eq!(agree(&[""], &config), None);
    }

    #[test]
    fn window_bits_take_the_smaller_of_offer_and_config() {
        let config = DeflateConfig::default()
            .server_max_window_bits(12)
            .client_max_window_bits(11);
        // Server bits: offered 10 → 10 (echoed: accepting takes it, §7.1.2.1).
        assert_eq!(
            response(
                &["permessage-deflate; server_max_window_bits=10; client_max_window_bits"],
                &config
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=10; client_max_window_bits=11")
        );
        // Offered 14 for the server → the config's 12; client offered 9 → 9.
        let agreed = agree(
            &["permessage-deflate; server_max_window_bits=14; client_max_window_bits=9"],
            &config,
        )
        .unwrap();
        assert_eq!(
            (agreed.server_max_window_bits, agreed.client_max_window_bits),
            (12, 9)
        );
        // Not offered: the server may still say its own window (§7.1.2.1).
        assert_eq!(
            response(&["permessage-deflate; client_max_window_bits"], &config).as_deref(),
            Some("permessage-deflate; server_max_window_bits=12; client_max_window_bits=11")
        );
        // An offered 15 is echoed: accepting takes the parameter.
        assert_eq!(
            response(
                &["permessage-deflate; server_max_window_bits=15"],
                &DeflateConfig::default()
            )
            .as_deref(),
            Some("permessage-deflate; server_max_window_bits=15")
        );
        // A quoted value (RFC 6455 §9.1).
        assert_eq!(
            agree(
                &["permessage-deflate; server_max_window_bits=\"10\""],
                &DeflateConfig::default()
            )
            .unwrap()
            .server_max_window_bits,
            10
        );
    }

    #[test]
    fn a_client_window_8_is_fine_a_server_window_8_declines() {
        let config = DeflateConfig::default();
        // The client promises 8; we decompress it with a 9-bit window.
        let agreed = agree(&["permessage-deflate; client_max_window_bits=8"], &config).unwrap();
        assert_eq!(agreed.client_max_window_bits, 8);
        let mut inflate = agreed.inflate(Role::Server);
        assert_eq!(inflate.window_bits, 9);
        assert_eq!(
            inflate_message(
                &mut inflate,
                &[0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00],
                100
            )
            .unwrap(),
            "Hello"
        );
        // We cannot compress with 8: that offer declines, and the next is taken.
        assert_eq!(
            agree(&["permessage-deflate; server_max_window_bits=8"], &config),
            None
        );
        assert_eq!(
            response(
                &["permessage-deflate; server_max_window_bits=8, permessage-deflate"],
                &config
            )
            .as_deref(),
            Some("permessage-deflate")
        );
    }

    #[test]
    fn bad_offers_decline_and_the_next_is_tried() {
        let config = DeflateConfig::default();
        for bad in [
            "permessage-deflate; foo",
            "permessage-deflate; foo=1",
            "permessage-deflate; server_no_context_takeover; server_no_context_takeover",
            "permessage-deflate; client_max_window_bits; client_max_window_bits=10",
            "permessage-deflate; server_max_window_bits=10; server_max_window_bits=10",
            "permessage-deflate; server_max_window_bits",
            "permessage-deflate; server_max_window_bits=",
            "permessage-deflate; server_max_window_bits=16",
            "permessage-deflate; server_max_window_bits=7",
            "permessage-deflate; server_max_window_bits=010",
            "permessage-deflate; server_max_window_bits=+10",
            "permessage-deflate; server_max_window_bits=ten",
            "permessage-deflate; client_max_window_bits=1.5",
            "permessage-deflate; server_no_context_takeover=1",
            "permessage-deflate; client_no_context_takeover=true",
            "permessage-deflate;",
        ] {
            assert_eq!(agree(&[bad], &config), None, "{bad}");
            // The next offer, in the same header value or another, is accepted.
            let with_fallback = format!("{bad}, permessage-deflate; client_no_context_takeover");
            assert_eq!(
                response(&[&with_fallback], &config).as_deref(),
                Some("permessage-deflate; client_no_context_takeover"),
                "{bad}"
            );
            assert_eq!(
                response(&[bad, "permessage-deflate"], &config).as_deref(),
                Some("permessage-deflate"),
                "{bad}"
            );
        }
    }

    #[test]
    fn context_takeover_flags_are_honoured_and_added() {
        // Offered by the client: echoed (server_: must; client_: may, and we do).
        assert_eq!(
            response(
                &["permessage-deflate; server_no_context_takeover; client_no_context_takeover"],
                &DeflateConfig::default()
            )
            .as_deref(),
            Some("permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        );
        // Asked by the configuration, not offered: a server may add both (§7.1.1.1, §7.1.1.2).
        let config = DeflateConfig::default()
            .server_no_context_takeover(true)
            .client_no_context_takeover(true);
        let agreed = agree(&["permessage-deflate"], &config).unwrap();
        assert!(agreed.server_no_context_takeover && agreed.client_no_context_takeover);
        assert_eq!(
            agreed.response_header(),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover"
        );
    }

    #[test]
    fn a_limited_client_window_needs_the_client_to_allow_it() {
        // §7.1.2.2: without client_max_window_bits in the offer the server cannot limit the
        // client's window, so a config below 15 declines such an offer.
        let config = DeflateConfig::default().client_max_window_bits(10);
        assert_eq!(agree(&["permessage-deflate"], &config), None);
        assert_eq!(
            response(
                &[
                    "permessage-deflate",
                    "permessage-deflate; client_max_window_bits"
                ],
                &config
            )
            .as_deref(),
            Some("permessage-deflate; client_max_window_bits=10")
        );
        // And without it in the offer, the response never names it.
        let plain = agree(&["permessage-deflate"], &DeflateConfig::default()).unwrap();
        assert!(!plain.response_header().contains("client_max_window_bits"));
    }

    #[test]
    fn client_offer_and_accept_agree_with_the_server() {
        let configs = [
            DeflateConfig::default(),
            DeflateConfig::default()
                .server_max_window_bits(10)
                .client_max_window_bits(12),
            DeflateConfig::default()
                .server_no_context_takeover(true)
                .client_no_context_takeover(true),
        ];
        for client in &configs {
            for server in &configs {
                let offer = client_offer(client);
                let agreed = agree(&[&offer], server).expect("our own offer is acceptable");
                let seen = client_accept(&agreed.response_header(), client)
                    .unwrap_or_else(|e| panic!("{offer} / {}: {e}", agreed.response_header()));
                assert_eq!(
                    (
                        seen.server_max_window_bits,
                        seen.client_max_window_bits,
                        seen.server_no_context_takeover,
                        seen.client_no_context_takeover
                    ),
                    (
                        agreed.server_max_window_bits,
                        agreed.client_max_window_bits,
                        agreed.server_no_context_takeover,
                        agreed.client_no_context_takeover
                    ),
                    "{offer}"
                );
            }
        }
    }

    #[test]
    fn client_accept_refuses_what_was_not_allowed() {
        let config = DeflateConfig::default()
            .server_max_window_bits(10)
            .client_max_window_bits(12)
            .server_no_context_takeover(true);
        let ok = "permessage-deflate; server_no_context_takeover; server_max_window_bits=10";
        assert!(client_accept(ok, &config).is_ok());
        for (bad, words) in [
            ("x-foo", "not permessage-deflate"),
            ("permessage-deflate, permessage-deflate", "only one"),
            ("permessage-deflate; server_max_window_bits=10", "server_no_context_takeover"),
            ("permessage-deflate; server_no_context_takeover", "server_max_window_bits"),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=11",
                "more than the 10",
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=13",
                "more than the 12",
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits=8",
                "9 to 15",
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; client_max_window_bits",
                "bad value",
            ),
            (
                "permessage-deflate; server_no_context_takeover; server_max_window_bits=10; mystery",
                "unknown parameter",
            ),
        ] {
            let message = client_accept(bad, &config).unwrap_err();
            assert!(message.contains(words), "{bad}: {message}");
        }
        // Unasked, the server may still add its own no_context_takeover and window.
        let agreed = client_accept(
            "permessage-deflate; server_no_context_takeover; server_max_window_bits=9; client_no_context_takeover",
            &DeflateConfig::default(),
        )
        .unwrap();
        assert!(agreed.server_no_context_takeover && agreed.client_no_context_takeover);
        assert_eq!(agreed.server_max_window_bits, 9);
    }

    /// RFC 7692 §7.2.3's examples, decompressed.
    #[test]
    fn rfc_examples_decompress() {
        let hello = [0xf2, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00];
        // §7.2.3.1, then §7.2.3.2: the same message again, referring to the first.
        let mut inflate = Inflate::new(15, false);
        assert_eq!(inflate_message(&mut inflate, &hello, 100).unwrap(), "Hello");
        assert_eq!(
            inflate_message(&mut inflate, &[0xf2, 0x00, 0x11, 0x00, 0x00], 100).unwrap(),
            "Hello"
        );
        // §7.2.3.4: a final block (BFINAL) with a byte of padding after it; then a new stream.
        let mut inflate = Inflate::new(15, false);
        let bfinal = [0xf3, 0x48, 0xcd, 0xc9, 0xc9, 0x07, 0x00, 0x00];
        assert_eq!(
            inflate_message(&mut inflate, &bfinal, 100).unwrap(),
            "Hello"
        );
        assert_eq!(inflate_message(&mut inflate, &hello, 100).unwrap(), "Hello");
        // §7.2.3.5: two DEFLATE blocks in one message.
        let two_blocks = [
            0xf2, 0x48, 0x05, 0x00, 0x00, 0x00, 0xff, 0xff, 0xca, 0xc9, 0xc9, 0x07, 0x00,
        ];
        assert_eq!(
            inflate_message(&mut Inflate::new(15, false), &two_blocks, 100).unwrap(),
            "Hello"
        );
        // §7.2.3.3: a stored (uncompressed) block.
        let stored = [
            0x00, 0x05, 0x00, 0xfa, 0xff, 0x48, 0x65, 0x6c, 0x6c, 0x6f, 0x00,
        ];
        assert_eq!(
            inflate_message(&mut Inflate::new(15, false), &stored, 100).unwrap(),
            "Hello"
        );
        // §7.2.3.6: an empty fragment (0x00, an empty stored block).
        assert_eq!(
            inflate_message(&mut Inflate::new(15, false), &[0x00], 100).unwrap(),
            ""
        );
        // Pieces of any size make no difference.
        let mut inflate = Inflate::new(15, false);
        let mut out = Vec::new();
        for byte in two_blocks {
            inflate.push(&[byte], &mut out, 100).unwrap();
        }
        inflate.finish(&mut out, 100).unwrap();
        assert_eq!(out, b"Hello");
    }

    #[test]
    fn compress_strips_the_tail_and_takes_context_over() {
        let mut deflate = Deflate::new(1, 15, false);
        let mut first = Vec::new();
        assert!(deflate.compress(b"Hello", &mut first));
        assert!(!first.ends_with(&TAIL));
        let mut second = Vec::new();
        assert!(deflate.compress(b"Hello", &mut second));
        assert!(second.len() < first.len(), "{first:?} {second:?}");
        let mut inflate = Inflate::new(15, false);
        assert_eq!(inflate_message(&mut inflate, &first, 5).unwrap(), "Hello");
        assert_eq!(inflate_message(&mut inflate, &second, 5).unwrap(), "Hello");
        // An empty message compresses to the single 0x00 of §7.2.3.6, also right after
        // another one (when zlib has nothing to flush).
        for _ in 0..3 {
            let mut empty = Vec::new();
            assert!(deflate.compress(b"", &mut empty));
            assert_eq!(empty, [0x00]);
            assert_eq!(inflate_message(&mut inflate, &empty, 5).unwrap(), "");
        }
        let mut third = Vec::new();
        assert!(deflate.compress(b"Hello", &mut third));
        assert_eq!(inflate_message(&mut inflate, &third, 5).unwrap(), "Hello");
    }

    #[test]
    fn no_context_takeover_holds_no_state_between_messages() {
        let mut deflate = Deflate::new(1, 10, true);
        let mut inflate = Inflate::new(10, true);
        for _ in 0..3 {
            let mut out = Vec::new();
            assert!(deflate.compress(b"the same text, the same text", &mut out));
            assert!(!deflate.holds_state());
            let mut plain = Vec::new();
            inflate.push(&out, &mut plain, 100).unwrap();
            assert!(inflate.holds_state());
            inflate.finish(&mut plain, 100).unwrap();
            assert!(!inflate.holds_state());
            assert_eq!(plain, b"the same text, the same text");
        }
        // With context takeover, both keep it.
        let mut deflate = Deflate::new(1, 10, false);
        let mut inflate = Inflate::new(10, false);
        let mut out = Vec::new();
        deflate.compress(b"x", &mut out);
        inflate_message(&mut inflate, &out, 1).unwrap();
        assert!(deflate.holds_state() && inflate.holds_state());
    }

    #[test]
    fn a_decompression_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 8 << 20];
        let mut bomb = Vec::new();
        assert!(Deflate::new(9, 15, true).compress(&zeros, &mut bomb));
        assert!(bomb.len() < 16 << 10, "{}", bomb.len());
        for limit in [0, 1, 1000, 100_000] {
            let mut out = Vec::new();
            let mut inflate = Inflate::new(15, false);
            assert_eq!(
                inflate.push(&bomb, &mut out, limit),
                Err(InflateError::TooBig)
            );
            assert!(
                out.len() <= limit && out.capacity() <= limit.max(8),
                "{limit}"
            );
        }
        // Exactly at the limit is fine.
        let mut inflate = Inflate::new(15, false);
        assert_eq!(
            inflate_message(&mut inflate, &bomb, zeros.len())
                .unwrap()
                .len(),
            zeros.len()
        );
    }

    #[test]
    fn garbage_is_corrupt() {
        // BTYPE 11 is reserved (RFC 1951 §3.2.3).
        let mut inflate = Inflate::new(15, false);
        assert_eq!(
            inflate_message(&mut inflate, &[0xff, 0xff, 0xff], 100),
            Err(InflateError::Corrupt)
        );
        // A stored block whose NLEN is not LEN's complement.
        assert_eq!(
            inflate_message(
                &mut Inflate::new(15, false),
                &[0x00, 0x05, 0x00, 0x00, 0x00],
                100
            ),
            Err(InflateError::Corrupt)
        );
    }

    proptest! {
        #[test]
        fn compress_round_trips(
            messages in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..300), 1..6),
            bits in 9u8..=15,
            level in 0u32..=9,
            no_context_takeover in any::<bool>(),
            repeat in any::<bool>(),
        ) {
            let mut deflate = Deflate::new(level, bits, no_context_takeover);
            let mut inflate = Inflate::new(bits, no_context_takeover);
            for message in &messages {
                let message = if repeat { message.repeat(20) } else { message.clone() };
                let mut compressed = Vec::new();
                prop_assert!(deflate.compress(&message, &mut compressed));
                let out = inflate_message(&mut inflate, &compressed, message.len()).unwrap();
                prop_assert_eq!(&out[..], &message[..]);
            }
        }

        #[test]
        fn inflating_garbage_never_panics_nor_passes_the_limit(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            limit in 0usize..2000,
        ) {
            let mut inflate = Inflate::new(15, false);
            let mut out = Vec::new();
            if inflate.push(&data, &mut out, limit).is_ok() {
                let _ = inflate.finish(&mut out, limit);
            }
            prop_assert!(out.len() <= limit);
        }

        #[test]
        fn negotiate_never_panics(offer in "[a-z_=;, \"0-9-]{0,80}") {
            let config = DeflateConfig::default();
            if let Some(agreed) = negotiate(std::iter::once(offer.as_str()), &config) {
                // Whatever we accept, our own client code accepts back.
                let response = agreed.response_header();
                prop_assert!(parse_params(response.split(';').skip(1), true).is_ok());
                prop_assert!(agreed.server_max_window_bits >= MIN_WINDOW_BITS);
            }
        }
    }
}
