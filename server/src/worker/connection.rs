//! A connection the worker holds, and reading requests from it: the stream, the bytes read
//! and not yet parsed (in the sans-IO [`RequestParser`]), whether the client closed its side,
//! and the time budgets a head and a body get.

use std::io;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::time::{timeout, Instant};

use super::WorkerSettings;
use crate::http::{Event, HttpError, Limits, RequestHead, RequestParser};
use crate::procs::WorkerLink;
use crate::wsgi::ConnectionInfo;

/// A connection the worker holds: its stream, the bytes read and not yet parsed, and who it
/// is.
pub(super) struct Connection<S> {
    pub(super) stream: S,
    parser: RequestParser,
    pub(super) info: ConnectionInfo,
    /// The client closed its side.
    eof: bool,
}

/// How a parked connection's wait ended.
pub(super) enum Waited {
    /// Bytes of its next request arrived (they are in its parser).
    Read,
    /// The client closed its side.
    Eof,
    /// Nothing came within --socket-timeout, or the connection failed.
    IdleOrFailed,
    /// The worker is leaving.
    Leaving,
}

/// Why no request could be read.
pub(super) enum ReadFailure {
    /// The request is malformed or over a limit: answer it.
    Http(HttpError),
    /// The client started a request and did not finish it in time: answer 408.
    Timeout(&'static str),
    /// The client went away or timed out: nobody to answer.
    Io,
}

impl<S> Connection<S> {
    pub(super) fn new(stream: S, limits: Limits, info: ConnectionInfo) -> Self {
        Connection {
            stream,
            parser: RequestParser::new(limits),
            info,
            eof: false,
        }
    }

    pub(super) fn eof(&self) -> bool {
        self.eof
    }

    /// The same connection, its client known to have closed its side.
    pub(super) fn at_eof(mut self) -> Self {
        self.eof = true;
        self
    }

    /// Between two requests, with nothing of the next one read.
    pub(super) fn is_between_requests(&self) -> bool {
        self.parser.is_between_requests()
    }

    /// Whether the connection can wait for another request: between two, client still there.
    /// If so, the parser gives back what the last request grew (see
    /// [`RequestParser::shrink_between_requests`]).
    pub(super) fn ready_to_park(&mut self) -> bool {
        if self.parser.is_between_requests() && !self.eof {
            self.parser.shrink_between_requests();
            return true;
        }
        false
    }
}

impl<S: AsyncRead + Unpin> Connection<S> {
    /// The next request's head, `None` at the end of the connection (the client closed it,
    /// or it stayed idle past --socket-timeout, or the worker is asked to stop while it is
    /// idle).
    pub(super) async fn next_head<L: WorkerLink>(
        &mut self,
        settings: &WorkerSettings,
        link: &L,
    ) -> Result<Option<RequestHead>, ReadFailure> {
        // A head gets --socket-timeout in all from its first byte: a client trickling a byte at
        // a time (slowloris) cannot hold the worker longer than that.
        let mut deadline = None;
        loop {
            match self.parser.next_event() {
                Ok(Some(Event::Head(head))) => return Ok(Some(head)),
                Ok(Some(_)) => {
                    return Err(ReadFailure::Http(HttpError::Malformed("body before head")))
                }
                Ok(None) if self.eof => {
                    // A client that half-closed mid-request may still be reading: it gets
                    // its 400 (if it is gone altogether, the write just fails).
                    return self.parser.eof().map(|()| None).map_err(ReadFailure::Http);
                }
                Ok(None) => {
                    let between = self.parser.is_between_requests();
                    let read = if between {
                        // An idle keep-alive connection must not delay a stop.
                        tokio::select! {
                            biased;
                            _ = link.stop_requested() => return Ok(None),
                            read = self.read_more(settings.socket_timeout, None) => read,
                        }
                    } else {
                        // From the first byte of the head, which may have come while the
                        // connection was parked.
                        let head_deadline = *deadline
                            .get_or_insert_with(|| Instant::now() + settings.socket_timeout);
                        self.read_more(settings.socket_timeout, Some(head_deadline))
                            .await
                    };
                    match read {
                        Ok(0) => self.eof = true,
                        Ok(_) => {}
                        // An idle keep-alive connection timing out is a normal end.
                        Err(_) if between => return Ok(None),
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                            return Err(ReadFailure::Timeout("request head"))
                        }
                        Err(_) => return Err(ReadFailure::Io),
                    }
                }
                Err(e) => return Err(ReadFailure::Http(e)),
            }
        }
    }

    /// The body of the request whose head was just read, whole.
    pub(super) async fn read_body(
        &mut self,
        settings: &WorkerSettings,
        declared_length: u64,
    ) -> Result<Bytes, ReadFailure> {
        // The body gets --http-timeout in all (and --socket-timeout between two reads).
        let deadline = Instant::now() + settings.body_timeout.max(settings.socket_timeout);
        // A body that came in one piece goes to the app as it is; pieces are joined once.
        let mut first_piece: Option<Bytes> = None;
        let mut joined = BytesMut::new();
        let mut received = 0u64;
        // A Content-Length body of up to 1 MiB is gathered in the read buffer and taken out in
        // one piece: pieces taken as they come would be copied again to be joined (a 64 KiB
        // upload spent a fifth of its worker's time in that copy).
        let gather_whole = declared_length <= 1 << 20;
        loop {
            let to_come = self.parser.body_bytes_to_come();
            let event = if gather_whole && to_come.is_some_and(|n| n > 0) && !self.eof {
                Ok(None)
            } else {
                self.parser.next_event()
            };
            match event {
                Ok(Some(Event::Body(chunk))) => {
                    received += chunk.len() as u64;
                    if let Some(first) = first_piece.take() {
                        // What came, and what is still declared (a client may declare any
                        // length: never more than 1 MiB ahead).
                        let ahead = declared_length.saturating_sub(received).min(1 << 20);
                        joined.reserve((received + ahead) as usize);
                        joined.extend_from_slice(&first);
                        joined.extend_from_slice(&chunk);
                    } else if joined.is_empty() {
                        first_piece = Some(chunk);
                    } else {
                        joined.extend_from_slice(&chunk);
                    }
                }
                Ok(Some(Event::End { .. })) => {
                    return Ok(first_piece.unwrap_or_else(|| joined.freeze()))
                }
                Ok(Some(Event::Head(_))) => {
                    return Err(ReadFailure::Http(HttpError::Malformed("head inside body")))
                }
                Ok(None) if self.eof => {
                    return Err(match self.parser.eof() {
                        Err(e) => ReadFailure::Http(e),
                        Ok(()) => ReadFailure::Io,
                    })
                }
                Ok(None) => {
                    // Room for the rest of a declared body (up to 1 MiB at a time): a few
                    // large reads rather than many small ones.
                    let rest = to_come
                        .unwrap_or_else(|| declared_length.saturating_sub(received))
                        .min(1 << 20) as usize;
                    let buf = self.parser.buffer_mut();
                    if buf.capacity() - buf.len() < rest {
                        buf.reserve(rest);
                    }
                    match self
                        .read_more(settings.socket_timeout, Some(deadline))
                        .await
                    {
                        Ok(0) => self.eof = true,
                        Ok(_) => {}
                        Err(e) if e.kind() == io::ErrorKind::TimedOut => {
                            return Err(ReadFailure::Timeout("request body"))
                        }
                        Err(_) => return Err(ReadFailure::Io),
                    }
                }
                Err(e) => return Err(ReadFailure::Http(e)),
            }
        }
    }

    /// Reads what the client sent, waiting at most `socket_timeout`, and never past
    /// `deadline` (the whole head's, or the whole body's, budget).
    async fn read_more(
        &mut self,
        socket_timeout: Duration,
        deadline: Option<Instant>,
    ) -> io::Result<usize> {
        let buf = self.parser.buffer_mut();
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        let wait = match deadline {
            Some(deadline) => {
                socket_timeout.min(deadline.saturating_duration_since(Instant::now()))
            }
            None => socket_timeout,
        };
        match timeout(wait, self.stream.read_buf(buf)).await {
            Ok(result) => result,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Waits, without holding the worker, for the next request on a kept-alive connection (the
    /// bytes read go into its parser), for at most `idle_timeout`, or until the worker leaves.
    pub(super) async fn wait_for_request(
        mut self,
        idle_timeout: Duration,
        mut leaving: tokio::sync::watch::Receiver<bool>,
    ) -> (Self, Waited) {
        let buf = self.parser.buffer_mut();
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        let waited = tokio::select! {
            biased;
            read = timeout(idle_timeout, self.stream.read_buf(buf)) => match read {
                Ok(Ok(0)) => Waited::Eof,
                Ok(Ok(_)) => Waited::Read,
                _ => Waited::IdleOrFailed,
            },
            _ = leaving.wait_for(|leaving| *leaving) => Waited::Leaving,
        };
        (self, waited)
    }
}
