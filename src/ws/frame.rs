//! The WebSocket frame on the wire: the header of RFC 6455 §5.2 (FIN, RSV1-3, opcode, mask
//! bit, 7/16/64-bit payload length, masking key) and the payload masking of §5.3.
//!
//! This module only reads and writes bytes; what a header may say in a given state (which
//! role masks, which opcodes exist, the limits on control frames, the fragmentation rules) is
//! enforced by the decoder in `protocol.rs`, which names the rule where it checks it.

use bytes::{BufMut, BytesMut};

/// Which end of the connection we are: it decides who masks (§5.1, §5.3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Role {
    /// We accepted the connection: the peer's frames are masked, ours are not.
    Server,
    /// We opened it (the TestClient): we mask, the peer does not.
    Client,
}

/// A frame's opcode (RFC 6455 §5.2, §11.8). The reserved ones (3-7, 0xB-0xF) have no
/// variant: [`OpCode::from_u8`] refuses them, and the decoder fails the connection (1002).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum OpCode {
    /// 0x0: a further fragment of the message in progress (§5.4).
    Continuation,
    /// 0x1: the first frame of a text message (UTF-8).
    Text,
    /// 0x2: the first frame of a binary message.
    Binary,
    /// 0x8: the closing handshake (§5.5.1).
    Close,
    /// 0x9: a keep-alive or liveness probe, to be answered with a Pong (§5.5.2).
    Ping,
    /// 0xA: the answer to a Ping, or a unidirectional heartbeat (§5.5.3).
    Pong,
}

impl OpCode {
    /// The opcode of the 4-bit field, or `None` for a reserved one.
    pub(crate) fn from_u8(bits: u8) -> Option<OpCode> {
        match bits {
            0x0 => Some(OpCode::Continuation),
            0x1 => Some(OpCode::Text),
            0x2 => Some(OpCode::Binary),
            0x8 => Some(OpCode::Close),
            0x9 => Some(OpCode::Ping),
            0xA => Some(OpCode::Pong),
            _ => None,
        }
    }

    /// The 4-bit value on the wire.
    pub(crate) fn as_u8(self) -> u8 {
        match self {
            OpCode::Continuation => 0x0,
            OpCode::Text => 0x1,
            OpCode::Binary => 0x2,
            OpCode::Close => 0x8,
            OpCode::Ping => 0x9,
            OpCode::Pong => 0xA,
        }
    }

    /// Control frames are the opcodes with the high bit set (§5.5): Close, Ping, Pong.
    pub(crate) fn is_control(self) -> bool {
        self.as_u8() & 0x8 != 0
    }
}

/// A frame header as read from the wire, not yet checked against the connection's state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Header {
    /// The final fragment of a message (§5.2 FIN).
    pub(crate) fin: bool,
    /// RSV1: "Per-Message Compressed" under permessage-deflate (RFC 7692 §6).
    pub(crate) rsv1: bool,
    pub(crate) rsv2: bool,
    pub(crate) rsv3: bool,
    /// The raw 4-bit opcode: the decoder decides what to do with a reserved one.
    pub(crate) opcode: u8,
    /// The masking key, when the mask bit is set (§5.3).
    pub(crate) mask: Option<[u8; 4]>,
    /// The payload length as sent, up to 2^64 - 1: the decoder refuses the top bit (§5.2) and
    /// anything past its limits before it fits this into a `usize`.
    pub(crate) len: u64,
    /// How many bytes the header took (2 to 14).
    pub(crate) header_len: usize,
}

/// Reads the frame header at the front of `buf`, or `None` while `buf` holds only part of it.
///
/// Never fails: every bit pattern is a header; whether it is an acceptable one is the
/// decoder's question. A length sent in more bytes than needed (§5.2 asks the sender for "the
/// minimal number of bytes") is read as it is: refusing it would protect nothing.
pub(crate) fn parse_header(buf: &[u8]) -> Option<Header> {
    let (&b0, rest) = buf.split_first()?;
    let (&b1, rest) = rest.split_first()?;
    let masked = b1 & 0x80 != 0;
    // §5.2 "Payload length": 0-125 is the length; 126 means a 16-bit length follows, 127 a
    // 64-bit one, both in network byte order.
    let (len, rest, len_bytes) = match b1 & 0x7F {
        126 => {
            let bytes: [u8; 2] = rest.get(..2)?.try_into().ok()?;
            (u64::from(u16::from_be_bytes(bytes)), &rest[2..], 2)
        }
        127 => {
            let bytes: [u8; 8] = rest.get(..8)?.try_into().ok()?;
            (u64::from_be_bytes(bytes), &rest[8..], 8)
        }
        short => (u64::from(short), rest, 0),
    };
    let mask = if masked {
        Some(rest.get(..4)?.try_into().ok()?)
    } else {
        None
    };
    Some(Header {
        fin: b0 & 0x80 != 0,
        rsv1: b0 & 0x40 != 0,
        rsv2: b0 & 0x20 != 0,
        rsv3: b0 & 0x10 != 0,
        opcode: b0 & 0x0F,
        mask,
        len,
        header_len: 2 + len_bytes + if masked { 4 } else { 0 },
    })
}

/// XORs `buf` with `key`, starting at key index `offset % 4` (payloads unmasked in pieces).
///
/// §5.3: octet i of the payload is XORed with octet i MOD 4 of the key; `offset` is the index
/// of `buf[0]` in the payload. The same call masks and unmasks. Eight bytes at a time through
/// a `u64` (the key repeated twice, rotated to `offset`), then the tail byte by byte.
pub(crate) fn apply_mask(buf: &mut [u8], key: [u8; 4], offset: usize) {
    let mut key = key;
    key.rotate_left(offset % 4);
    let wide = u64::from_ne_bytes([
        key[0], key[1], key[2], key[3], key[0], key[1], key[2], key[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        chunk.copy_from_slice(&(u64::from_ne_bytes(word) ^ wide).to_ne_bytes());
    }
    // A multiple of 8 bytes was done, so the tail starts again at key[0].
    for (byte, k) in chunks.into_remainder().iter_mut().zip(key.iter().cycle()) {
        *byte ^= k;
    }
}

/// Appends a frame header: FIN, RSV1 (compressed), opcode, the shortest length encoding (7,
/// 7+16, 7+64 bits, §5.2 "the minimal number of bytes MUST be used"), the mask key when given.
pub(crate) fn write_header(
    dst: &mut BytesMut,
    fin: bool,
    rsv1: bool,
    opcode: OpCode,
    len: usize,
    mask: Option<[u8; 4]>,
) {
    let b0 = u8::from(fin) << 7 | u8::from(rsv1) << 6 | opcode.as_u8();
    let mask_bit = if mask.is_some() { 0x80 } else { 0 };
    dst.reserve(14);
    dst.put_u8(b0);
    if len < 126 {
        // `len < 126` fits the 7 bits.
        dst.put_u8(mask_bit | len as u8);
    } else if let Ok(short) = u16::try_from(len) {
        dst.put_u8(mask_bit | 126);
        dst.put_u16(short);
    } else {
        dst.put_u8(mask_bit | 127);
        // usize is at most 64 bits, and a Rust allocation is at most isize::MAX, so the top
        // bit that §5.2 reserves is always clear.
        dst.put_u64(len as u64);
    }
    if let Some(key) = mask {
        dst.put_slice(&key);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn header(fin: bool, rsv1: bool, op: OpCode, len: usize, mask: Option<[u8; 4]>) -> Vec<u8> {
        let mut dst = BytesMut::new();
        write_header(&mut dst, fin, rsv1, op, len, mask);
        dst.to_vec()
    }

    #[test]
    fn opcodes_round_trip_and_reserved_ones_are_refused() {
        for bits in 0u8..16 {
            match OpCode::from_u8(bits) {
                Some(op) => assert_eq!(op.as_u8(), bits),
                None => assert!(matches!(bits, 3..=7 | 0xB..=0xF), "{bits}"),
            }
        }
        let control: Vec<_> = (0u8..16)
            .filter_map(OpCode::from_u8)
            .filter(|op| op.is_control())
            .collect();
        assert_eq!(control, [OpCode::Close, OpCode::Ping, OpCode::Pong]);
    }

    #[test]
    fn lengths_use_the_shortest_encoding() {
        // The RFC's own examples (§5.7) and the boundaries of each encoding.
        assert_eq!(header(true, false, OpCode::Text, 5, None), [0x81, 0x05]);
        assert_eq!(header(true, false, OpCode::Text, 125, None), [0x81, 125]);
        assert_eq!(
            header(true, false, OpCode::Binary, 126, None),
            [0x82, 126, 0, 126]
        );
        assert_eq!(
            header(true, false, OpCode::Binary, 256, None),
            [0x82, 0x7E, 0x01, 0x00]
        );
        assert_eq!(
            header(true, false, OpCode::Binary, 65535, None),
            [0x82, 126, 0xFF, 0xFF]
        );
        assert_eq!(
            header(true, false, OpCode::Binary, 65536, None),
            [0x82, 0x7F, 0, 0, 0, 0, 0, 1, 0, 0]
        );
        assert_eq!(
            header(false, true, OpCode::Text, 0, Some([0x37, 0xfa, 0x21, 0x3d])),
            [0x41, 0x80, 0x37, 0xfa, 0x21, 0x3d]
        );
    }

    #[test]
    fn parse_reads_back_what_write_wrote() {
        for len in [0usize, 1, 125, 126, 127, 65535, 65536, 1 << 33] {
            for mask in [None, Some([1, 2, 3, 4])] {
                let bytes = header(len % 2 == 0, true, OpCode::Ping, len, mask);
                let h = parse_header(&bytes).expect("whole header");
                assert_eq!(h.len, len as u64);
                assert_eq!(h.mask, mask);
                assert_eq!(h.header_len, bytes.len());
                assert_eq!(h.fin, len % 2 == 0);
                assert!(h.rsv1 && !h.rsv2 && !h.rsv3);
                assert_eq!(h.opcode, 0x9);
                // Any strict prefix of a header is "need more".
                for cut in 0..bytes.len() {
                    assert_eq!(parse_header(&bytes[..cut]), None, "{len} {cut}");
                }
            }
        }
    }

    #[test]
    fn parse_reads_reserved_bits_and_opcodes_raw() {
        let h = parse_header(&[0x3B, 0xFF, 0, 0, 0, 0, 0, 0, 0, 0, 9, 9, 9, 9]).unwrap();
        assert!(!h.fin && !h.rsv1 && h.rsv2 && h.rsv3);
        assert_eq!(h.opcode, 0xB);
        assert_eq!(h.len, 0);
        assert_eq!(h.mask, Some([9; 4]));
        // The top bit of a 64-bit length is read, for the decoder to refuse.
        let h = parse_header(&[0x82, 0x7F, 0x80, 0, 0, 0, 0, 0, 0, 0]).unwrap();
        assert_eq!(h.len, 1 << 63);
    }

    #[test]
    fn rfc_masking_example() {
        // §5.7: a masked "Hello".
        let mut payload = *b"Hello";
        apply_mask(&mut payload, [0x37, 0xfa, 0x21, 0x3d], 0);
        assert_eq!(payload, [0x7f, 0x9f, 0x4d, 0x51, 0x58]);
    }

    fn mask_bytewise(buf: &mut [u8], key: [u8; 4], offset: usize) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= key[(offset + i) % 4];
        }
    }

    proptest! {
        #[test]
        fn mask_matches_the_definition_in_any_pieces(
            data in proptest::collection::vec(any::<u8>(), 0..200),
            key in any::<[u8; 4]>(),
            cuts in proptest::collection::vec(0usize..200, 0..6),
        ) {
            let mut expected = data.clone();
            mask_bytewise(&mut expected, key, 0);
            let mut cuts: Vec<usize> = cuts.into_iter().map(|c| c % (data.len() + 1)).collect();
            cuts.push(0);
            cuts.push(data.len());
            cuts.sort_unstable();
            let mut masked = data.clone();
            for w in cuts.windows(2) {
                apply_mask(&mut masked[w[0]..w[1]], key, w[0]);
            }
            prop_assert_eq!(&masked, &expected);
            // Masking is its own inverse.
            apply_mask(&mut masked, key, 0);
            prop_assert_eq!(masked, data);
        }
    }
}
