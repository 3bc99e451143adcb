//! The stream framing of schat/2: every Noise message travels as a 2-byte big-endian length
//! followed by that many bytes (Noise spec §13). Pure functions only; `framed.rs` does the I/O.

use thiserror::Error;

/// Bytes in the length prefix.
pub const HEADER_LEN: usize = 2;

/// The largest frame body: a Noise message is never longer than 65535 bytes (spec §3).
pub const MAX_BODY: usize = u16::MAX as usize;

/// A body that cannot be framed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Error)]
#[error("frame of {len} bytes exceeds the {MAX_BODY}-byte limit")]
pub struct FrameTooLong {
    /// Length of the rejected body.
    pub len: usize,
}

/// The length prefix for a body of `len` bytes.
pub fn header(len: usize) -> Result<[u8; HEADER_LEN], FrameTooLong> {
    u16::try_from(len)
        .map(u16::to_be_bytes)
        .map_err(|_| FrameTooLong { len })
}

/// Looks for one complete frame at the start of `buf`.
///
/// Returns the length of its body when the header and the whole body are present, `None` when
/// more bytes are needed. Every 2-byte prefix is a valid length, so parsing cannot fail: a frame
/// that is too long to be a Noise message simply cannot be expressed.
pub fn parse(buf: &[u8]) -> Option<usize> {
    let header: [u8; HEADER_LEN] = buf.get(..HEADER_LEN)?.try_into().ok()?;
    let body_len = usize::from(u16::from_be_bytes(header));
    (buf.len() >= HEADER_LEN + body_len).then_some(body_len)
}

/// How many bytes are still missing before `buf` holds a complete frame (at least 1 when
/// `parse` returns `None`). Lets a reader size its next read.
pub fn missing(buf: &[u8]) -> usize {
    match buf.get(..HEADER_LEN) {
        None => HEADER_LEN - buf.len(),
        Some(h) => {
            let body_len = usize::from(u16::from_be_bytes([h[0], h[1]]));
            (HEADER_LEN + body_len).saturating_sub(buf.len())
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn header_round_trips_every_boundary() {
        for len in [0usize, 1, 255, 256, 65519, 65535] {
            let mut buf = header(len).unwrap().to_vec();
            buf.resize(HEADER_LEN + len, 0xaa);
            assert_eq!(parse(&buf), Some(len));
            assert_eq!(missing(&buf), 0);
        }
    }

    #[test]
    fn oversized_body_is_refused() {
        assert_eq!(header(65536), Err(FrameTooLong { len: 65536 }));
        assert_eq!(header(usize::MAX), Err(FrameTooLong { len: usize::MAX }));
    }

    #[test]
    fn truncated_input_needs_more() {
        assert_eq!(parse(&[]), None);
        assert_eq!(missing(&[]), 2);
        assert_eq!(parse(&[0]), None);
        assert_eq!(missing(&[0]), 1);
        // Header says 5 bytes, only 3 arrived.
        assert_eq!(parse(&[0, 5, 1, 2, 3]), None);
        assert_eq!(missing(&[0, 5, 1, 2, 3]), 2);
    }

    #[test]
    fn parse_ignores_bytes_of_the_next_frame() {
        assert_eq!(parse(&[0, 1, 9, 0, 3]), Some(1));
    }

    #[test]
    fn empty_body_is_a_complete_frame() {
        assert_eq!(parse(&[0, 0]), Some(0));
    }
}
