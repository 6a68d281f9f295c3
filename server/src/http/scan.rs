//! Finding the end of a block of CRLF-terminated lines — a request head, or a chunked body's
//! trailer section — as bytes trickle in, without looking at any byte twice.
//!
//! Line endings: RFC 9112 §2.2 lets a recipient accept a bare LF as a line terminator, and
//! never a bare CR. wsgilab accepts neither: the only terminator is CRLF, in the head, in chunk
//! size lines and in trailers alike. A front proxy that does not treat a bare LF as a line end
//! forwards `X: a\nContent-Length: 26` as one header, and a server that splits it would see a
//! second Content-Length — a request-smuggling gap. Rejecting costs nothing with real clients.

use std::ops::Range;

/// Why a block could not be delimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ScanError {
    /// A LF not preceded by CR.
    BareLf,
    /// A CR not followed by LF.
    BareCr,
    /// No complete block within the limit, and its first line did end within it.
    TooLong,
    /// No complete block within the limit, because its first line (a request line) did not
    /// end within it: the line starts at [`BlockScanner::block_start`].
    FirstLineTooLong,
}

/// Remembers how far a block has been scanned, so each call looks only at new bytes.
///
/// Offsets are relative to the start of the buffer, which must not move (nor its scanned bytes
/// change) between calls; the owner creates a fresh scanner whenever it consumes the buffer.
#[derive(Debug, Clone)]
pub(super) struct BlockScanner {
    /// Next byte to examine.
    pos: usize,
    /// Start of the line being scanned.
    line_start: usize,
    /// Start of the block proper: after any skipped leading empty lines.
    block_start: usize,
    /// Whether empty lines before the first line are skipped (a request head: RFC 9112 §2.2)
    /// or end the block at once (a trailer section with no fields).
    skip_leading_empty_lines: bool,
}

impl BlockScanner {
    pub(super) fn new(skip_leading_empty_lines: bool) -> Self {
        BlockScanner {
            pos: 0,
            line_start: 0,
            block_start: 0,
            skip_leading_empty_lines,
        }
    }

    /// Where the block's first line starts: after any skipped leading empty lines.
    pub(super) fn block_start(&self) -> usize {
        self.block_start
    }

    /// Scans `buf[..limit]` for the empty line that ends the block. Returns the block's range,
    /// from its first line through the final CRLF (skipped leading empty lines fall before the
    /// range's start; all of `..range.end` is consumed), or `None` if more bytes are needed.
    ///
    /// Bytes at or past `limit` are never examined, so the outcome does not depend on how the
    /// bytes were split across reads: a block that has not ended within `limit` bytes is
    /// `TooLong` as soon as `limit` bytes are buffered, whatever follows — `FirstLineTooLong`
    /// if its first line had not ended either (a CR at `limit - 1` whose LF is past the limit
    /// does not end it). Only empty lines within the limit are `TooLong`: there is no first
    /// line to blame.
    pub(super) fn scan(
        &mut self,
        buf: &[u8],
        limit: usize,
    ) -> Result<Option<Range<usize>>, ScanError> {
        let window = buf.len().min(limit);
        while self.pos < window {
            let Some(offset) = memchr::memchr2(b'\r', b'\n', &buf[self.pos..window]) else {
                self.pos = window;
                break;
            };
            let cr = self.pos + offset;
            if buf[cr] == b'\n' {
                return Err(ScanError::BareLf);
            }
            if cr + 1 == window {
                // The LF that must follow is not here (yet): look at this CR again next time.
                self.pos = cr;
                break;
            }
            if buf[cr + 1] != b'\n' {
                return Err(ScanError::BareCr);
            }
            let line_end = cr + 2;
            let line_is_empty = cr == self.line_start;
            self.line_start = line_end;
            self.pos = line_end;
            if line_is_empty {
                if self.skip_leading_empty_lines && cr == self.block_start {
                    self.block_start = line_end;
                    continue;
                }
                return Ok(Some(self.block_start..line_end));
            }
        }
        if buf.len() >= limit {
            // A CR at the very end may be the start of one more empty line.
            let content_end = match buf[..window].last() {
                Some(b'\r') => window - 1,
                _ => window,
            };
            let first_line_started = self.block_start < content_end;
            let first_line_ended = self.line_start > self.block_start;
            if first_line_started && !first_line_ended {
                Err(ScanError::FirstLineTooLong)
            } else {
                Err(ScanError::TooLong)
            }
        } else {
            Ok(None)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scan_whole(
        bytes: &[u8],
        skip: bool,
        limit: usize,
    ) -> Result<Option<Range<usize>>, ScanError> {
        BlockScanner::new(skip).scan(bytes, limit)
    }

    fn scan_bytewise(
        bytes: &[u8],
        skip: bool,
        limit: usize,
    ) -> Result<Option<Range<usize>>, ScanError> {
        let mut scanner = BlockScanner::new(skip);
        for end in 1..=bytes.len() {
            if let Some(range) = scanner.scan(&bytes[..end], limit)? {
                return Ok(Some(range));
            }
        }
        Ok(None)
    }

    fn both(bytes: &[u8], skip: bool, limit: usize) -> Result<Option<Range<usize>>, ScanError> {
        let whole = scan_whole(bytes, skip, limit);
        assert_eq!(whole, scan_bytewise(bytes, skip, limit), "{bytes:?}");
        whole
    }

    #[test]
    fn finds_the_empty_line() {
        assert_eq!(
            both(b"GET / HTTP/1.1\r\nA: b\r\n\r\nrest", true, 100),
            Ok(Some(0..24))
        );
    }

    #[test]
    fn skips_leading_empty_lines_only_for_heads() {
        assert_eq!(
            both(b"\r\n\r\nGET / HTTP/1.1\r\n\r\n", true, 100),
            Ok(Some(4..22))
        );
        assert_eq!(both(b"\r\nX: y\r\n\r\n", false, 100), Ok(Some(0..2)));
    }

    #[test]
    fn rejects_bare_lf_and_bare_cr() {
        assert_eq!(
            both(b"GET / HTTP/1.1\n\n", true, 100),
            Err(ScanError::BareLf)
        );
        assert_eq!(
            both(b"\nGET / HTTP/1.1\r\n\r\n", true, 100),
            Err(ScanError::BareLf)
        );
        assert_eq!(
            both(b"GET / HTTP/1.1\r\nA: b\rc\r\n\r\n", true, 100),
            Err(ScanError::BareCr)
        );
    }

    #[test]
    fn limit_counts_leading_empty_lines_and_the_final_crlf() {
        let head = b"\r\nGET / HTTP/1.1\r\n\r\n";
        assert_eq!(both(head, true, head.len()), Ok(Some(2..head.len())));
        assert_eq!(both(head, true, head.len() - 1), Err(ScanError::TooLong));
    }

    #[test]
    fn tells_a_first_line_too_long_from_a_block_too_long() {
        let line = b"GET /aaaa HTTP/1.1\r\n";
        // The line's CR fits but its LF does not: the first line did not end.
        for limit in [5, line.len() - 1] {
            assert_eq!(
                both(line, true, limit),
                Err(ScanError::FirstLineTooLong),
                "{limit}"
            );
        }
        // The first line ended; the block did not.
        assert_eq!(both(line, true, line.len()), Err(ScanError::TooLong));
        let head = b"GET / HTTP/1.1\r\nX: aaaaaaaaaa\r\n\r\n";
        assert_eq!(both(head, true, 20), Err(ScanError::TooLong));
        // Leading empty lines count towards the limit; the line after them is the first.
        assert_eq!(
            both(b"\r\n\r\nGET / HTTP/1.1\r\n", true, 8),
            Err(ScanError::FirstLineTooLong)
        );
        let mut scanner = BlockScanner::new(true);
        assert_eq!(
            scanner.scan(b"\r\n\r\nGET / HTTP/1.1\r\n", 8),
            Err(ScanError::FirstLineTooLong)
        );
        assert_eq!(scanner.block_start(), 4);
        // Nothing but empty lines: no first line to blame.
        assert_eq!(both(b"\r\n\r\n\r\n", true, 4), Err(ScanError::TooLong));
        assert_eq!(both(b"\r\n\r\n\r\n", true, 5), Err(ScanError::TooLong));
        // A trailer section's first field line.
        assert_eq!(
            both(b"X-Long: aaaa\r\n\r\n", false, 6),
            Err(ScanError::FirstLineTooLong)
        );
    }

    #[test]
    fn waits_for_more_bytes() {
        assert_eq!(both(b"GET / HTTP/1.1\r\nA: b\r\n\r", true, 100), Ok(None));
    }
}
