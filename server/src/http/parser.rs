//! The connection-level state machine: bytes in, [`Event`]s out, one request after another.
//!
//! The parser owns the read buffer. The worker reads socket bytes into
//! [`RequestParser::buffer_mut`] (or a test calls [`RequestParser::push`]) and then calls
//! [`RequestParser::next_event`] until it returns `Ok(None)`. Nothing here does I/O, so the
//! same parser runs on real sockets and in the simulation, and the result never depends on
//! how the bytes were split across reads.

use bytes::{Buf, Bytes, BytesMut};

use super::chunked::parse_chunk_size_line;
use super::head::{parse_head, parse_trailers, request_line_too_long};
use super::scan::{BlockScanner, ScanError};
use super::{BodyFraming, Header, HttpError, RequestHead};

/// How much room [`RequestParser::buffer_mut`] makes for each read.
const READ_RESERVE: usize = 8 * 1024;

/// Size limits, from the command line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// `--buffer-size` (default 4096): the request line and headers, CRLFs included (and any
    /// empty lines before the request line). A request line that does not end within it is
    /// answered 414, a head that does not is answered 431. Also bounds a chunked body's
    /// trailer section and each chunk-size line.
    pub max_head: usize,
    /// `--limit-post`: the largest body accepted, if any limit.
    pub max_body: Option<u64>,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_head: 4096,
            max_body: None,
        }
    }
}

/// What the parser found in the bytes so far.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// A request line and headers. Its body, if any, follows as `Body` events.
    Head(RequestHead),
    /// A piece of the decoded body, never empty.
    Body(Bytes),
    /// The request is complete (right after `Head` when there is no body). The next event, if
    /// any, is the `Head` of a pipelined request.
    End { trailers: Vec<Header> },
}

/// Where in the request stream the parser is.
#[derive(Debug)]
enum State {
    /// Waiting for a complete request head.
    Head(BlockScanner),
    /// In a Content-Length body, with this many bytes still to come.
    Body {
        remaining: u64,
    },
    Chunked(ChunkedState),
    /// The request is complete; `End` is yet to be returned.
    End {
        trailers: Vec<Header>,
    },
    /// An error was returned; it is returned again on every call.
    Dead(HttpError),
}

#[derive(Debug)]
struct ChunkedState {
    step: ChunkStep,
    /// Decoded body bytes so far, for `--limit-post`.
    received: u64,
}

#[derive(Debug)]
enum ChunkStep {
    /// Looking for the CRLF that ends a chunk-size line; bytes before `scanned` hold none.
    SizeLine { scanned: usize },
    /// In a chunk's data.
    Data { remaining: u64 },
    /// Expecting the CRLF after a chunk's data.
    DataEnd,
    /// After the last chunk: trailer fields, then an empty line.
    Trailers(BlockScanner),
}

/// A sans-IO HTTP/1.x request parser for one connection. See the module documentation.
#[derive(Debug)]
pub struct RequestParser {
    limits: Limits,
    buffer: BytesMut,
    state: State,
    /// RFC 9112 §3.2: HTTP/1.1 requests must carry Host. Only tests turn this off.
    require_host: bool,
    /// A body that may have grown the buffer (chunked, or longer than a read's reserve) was
    /// read since the buffer was last made: its allocation is still the buffer's.
    large_body_read: bool,
}

impl RequestParser {
    pub fn new(limits: Limits) -> Self {
        RequestParser {
            limits,
            buffer: BytesMut::with_capacity(READ_RESERVE),
            state: State::Head(BlockScanner::new(true)),
            require_host: true,
            large_body_read: false,
        }
    }

    /// The corpus tests check gunicorn's HTTP/1.1 examples that lack Host with this.
    #[cfg(test)]
    pub(super) fn without_host_requirement(mut self) -> Self {
        self.require_host = false;
        self
    }

    /// The read buffer, with room for at least 8 KiB more: read socket bytes into it (e.g.
    /// tokio's `read_buf`), then call [`next_event`](Self::next_event). Do not remove bytes.
    pub fn buffer_mut(&mut self) -> &mut BytesMut {
        self.buffer.reserve(READ_RESERVE);
        &mut self.buffer
    }

    /// Gives back a read buffer that grew for a large body, when nothing is buffered: a
    /// parked keep-alive connection then holds 8 KiB, not the size of its last upload (with
    /// 32 clients posting 64 KiB each, 2 MiB of a worker's memory held by idle connections).
    pub fn shrink_between_requests(&mut self) {
        if self.large_body_read && self.buffer.is_empty() {
            self.buffer = BytesMut::with_capacity(READ_RESERVE);
            self.large_body_read = false;
        }
    }

    /// Appends received bytes (tests and the simulation; the worker uses `buffer_mut`).
    pub fn push(&mut self, data: &[u8]) {
        self.buffer.extend_from_slice(data);
    }

    /// The next event from the bytes received so far; `Ok(None)` when more bytes are needed.
    /// After an error the parser is dead and returns that error again.
    pub fn next_event(&mut self) -> Result<Option<Event>, HttpError> {
        let result = self.advance();
        if let Err(error) = &result {
            self.state = State::Dead(error.clone());
        }
        result
    }

    /// The peer will send nothing more. Fine between requests (with at most stray CRLFs
    /// buffered); an error if a request was cut short. Call it once `next_event` has returned
    /// `Ok(None)`, so every complete request has been taken out first.
    pub fn eof(&mut self) -> Result<(), HttpError> {
        match &self.state {
            State::Dead(error) => Err(error.clone()),
            State::Head(_) | State::End { .. } if self.only_empty_lines_buffered() => Ok(()),
            _ => {
                let error = HttpError::Malformed("connection closed mid-request");
                self.state = State::Dead(error.clone());
                Err(error)
            }
        }
    }

    /// In a Content-Length body: how many of its bytes have not arrived yet (beyond those
    /// buffered). `None` anywhere else (a head, a chunked body).
    pub fn body_bytes_to_come(&self) -> Option<u64> {
        match self.state {
            State::Body { remaining } => Some(remaining.saturating_sub(self.buffer.len() as u64)),
            _ => None,
        }
    }

    /// Whether no part of a request is buffered: the connection is idle between requests.
    pub fn is_between_requests(&self) -> bool {
        matches!(self.state, State::Head(_)) && self.only_empty_lines_buffered()
    }

    /// Empty lines before a request line are not a request (RFC 9112 §2.2).
    fn only_empty_lines_buffered(&self) -> bool {
        self.buffer.iter().all(|&b| b == b'\r' || b == b'\n')
    }

    fn advance(&mut self) -> Result<Option<Event>, HttpError> {
        loop {
            match &mut self.state {
                State::Dead(error) => return Err(error.clone()),
                State::Head(scanner) => {
                    let head_range = match scanner.scan(&self.buffer, self.limits.max_head) {
                        Ok(Some(range)) => range,
                        Ok(None) => return Ok(None),
                        Err(ScanError::TooLong) => return Err(HttpError::HeadTooLarge),
                        Err(ScanError::FirstLineTooLong) => {
                            // The scanner looked at no byte past the limit, nor may this.
                            let window = self.buffer.len().min(self.limits.max_head);
                            let line = &self.buffer[scanner.block_start()..window];
                            return Err(request_line_too_long(line));
                        }
                        Err(ScanError::BareLf) => {
                            return Err(HttpError::Malformed("bare LF in the request head"))
                        }
                        Err(ScanError::BareCr) => {
                            return Err(HttpError::Malformed("bare CR in the request head"))
                        }
                    };
                    let head = parse_head(
                        &self.buffer[head_range.clone()],
                        &self.limits,
                        self.require_host,
                    )?;
                    self.buffer.advance(head_range.end);
                    self.large_body_read |= match head.framing {
                        BodyFraming::Empty => false,
                        BodyFraming::Length(length) => length > READ_RESERVE as u64,
                        BodyFraming::Chunked => true,
                    };
                    self.state = match head.framing {
                        BodyFraming::Empty => State::End {
                            trailers: Vec::new(),
                        },
                        BodyFraming::Length(length) => State::Body { remaining: length },
                        BodyFraming::Chunked => State::Chunked(ChunkedState {
                            step: ChunkStep::SizeLine { scanned: 0 },
                            received: 0,
                        }),
                    };
                    return Ok(Some(Event::Head(head)));
                }
                State::Body { remaining } => {
                    let Some(piece) = take_body(&mut self.buffer, remaining) else {
                        return Ok(None);
                    };
                    if *remaining == 0 {
                        self.state = State::End {
                            trailers: Vec::new(),
                        };
                    }
                    return Ok(Some(Event::Body(piece)));
                }
                State::Chunked(chunked) => match chunked.advance(&mut self.buffer, &self.limits)? {
                    ChunkProgress::Body(piece) => return Ok(Some(Event::Body(piece))),
                    ChunkProgress::NeedMore => return Ok(None),
                    ChunkProgress::Done(trailers) => self.state = State::End { trailers },
                },
                State::End { .. } => {
                    let State::End { trailers } =
                        std::mem::replace(&mut self.state, State::Head(BlockScanner::new(true)))
                    else {
                        unreachable!("matched End above");
                    };
                    return Ok(Some(Event::End { trailers }));
                }
            }
        }
    }
}

/// What decoding a chunked body from the buffered bytes gave.
enum ChunkProgress {
    Body(Bytes),
    NeedMore,
    /// The last chunk and the trailer section have been read.
    Done(Vec<Header>),
}

impl ChunkedState {
    fn advance(
        &mut self,
        buffer: &mut BytesMut,
        limits: &Limits,
    ) -> Result<ChunkProgress, HttpError> {
        loop {
            match &mut self.step {
                ChunkStep::SizeLine { scanned } => {
                    // Like the head, a size line (with its extensions) must fit in
                    // --buffer-size, and only bytes within that bound are looked at.
                    let window = buffer.len().min(limits.max_head);
                    let Some(offset) = memchr::memchr(b'\n', &buffer[*scanned..window]) else {
                        if buffer.len() >= limits.max_head {
                            return Err(HttpError::Malformed(
                                "chunk size line longer than --buffer-size",
                            ));
                        }
                        *scanned = window;
                        return Ok(ChunkProgress::NeedMore);
                    };
                    let lf = *scanned + offset;
                    if lf == 0 || buffer[lf - 1] != b'\r' {
                        return Err(HttpError::Malformed("chunk size line not ended by CRLF"));
                    }
                    // A bare CR inside the line is refused by parse_chunk_size_line.
                    let size = parse_chunk_size_line(&buffer[..lf - 1])?;
                    buffer.advance(lf + 1);
                    if size == 0 {
                        self.step = ChunkStep::Trailers(BlockScanner::new(false));
                        continue;
                    }
                    // Checked when the size is known, before any of the chunk is read.
                    let received = self.received.saturating_add(size);
                    if limits.max_body.is_some_and(|max_body| received > max_body) {
                        return Err(HttpError::BodyTooLarge);
                    }
                    self.received = received;
                    self.step = ChunkStep::Data { remaining: size };
                }
                ChunkStep::Data { remaining } => {
                    let Some(piece) = take_body(buffer, remaining) else {
                        return Ok(ChunkProgress::NeedMore);
                    };
                    if *remaining == 0 {
                        self.step = ChunkStep::DataEnd;
                    }
                    return Ok(ChunkProgress::Body(piece));
                }
                ChunkStep::DataEnd => match buffer[..] {
                    [] | [b'\r'] => return Ok(ChunkProgress::NeedMore),
                    [b'\r', b'\n', ..] => {
                        buffer.advance(2);
                        self.step = ChunkStep::SizeLine { scanned: 0 };
                    }
                    _ => return Err(HttpError::Malformed("chunk data not followed by CRLF")),
                },
                ChunkStep::Trailers(scanner) => {
                    let range = match scanner.scan(buffer, limits.max_head) {
                        Ok(Some(range)) => range,
                        Ok(None) => return Ok(ChunkProgress::NeedMore),
                        Err(ScanError::TooLong | ScanError::FirstLineTooLong) => {
                            return Err(HttpError::TrailersTooLarge)
                        }
                        Err(ScanError::BareLf) => {
                            return Err(HttpError::Malformed("bare LF in the trailer section"))
                        }
                        Err(ScanError::BareCr) => {
                            return Err(HttpError::Malformed("bare CR in the trailer section"))
                        }
                    };
                    let trailers = parse_trailers(&buffer[range.clone()])?;
                    buffer.advance(range.end);
                    return Ok(ChunkProgress::Done(trailers));
                }
            }
        }
    }
}

/// Takes up to `remaining` buffered bytes as one body piece; `None` if nothing is buffered.
fn take_body(buffer: &mut BytesMut, remaining: &mut u64) -> Option<Bytes> {
    if buffer.is_empty() || *remaining == 0 {
        return None;
    }
    let len =
        usize::try_from(*remaining).map_or(buffer.len(), |remaining| remaining.min(buffer.len()));
    *remaining -= len as u64;
    Some(buffer.split_to(len).freeze())
}
