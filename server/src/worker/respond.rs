//! Calling the app and writing what it returns, framed by [`crate::http::response`]; and the
//! answers wsgilab writes itself: a refused or too slow request, an app that failed, a client
//! gone.
//!
//! Whatever happens, the request ends with an [`Outcome`] for the log and the master.

use std::io;
use std::sync::atomic::Ordering;

use tokio::io::{AsyncWrite, AsyncWriteExt};
use tokio::time::timeout;

use super::connection::ReadFailure;
use super::Worker;
use crate::http::response::{self, BodyEncoder, Cut, Exchange, PlainResponse, ResponseHead};
use crate::http::{HttpError, RequestHead};
use crate::net::Net;
use crate::procs::{Procs, WorkerLink};
use crate::python::{App, AppError, AppResponse, FailedAt, ResponsePart, WsgiRequest};
use crate::wsgi::ConnectionInfo;

/// What a finished request reports to the log.
pub(super) struct Outcome {
    pub(super) status: u16,
    /// The app raised (uWSGI's per-worker `exceptions`).
    pub(super) exception: bool,
    pub(super) body_bytes: u64,
    pub(super) headers: usize,
    pub(super) header_bytes: usize,
    pub(super) switches: u64,
    pub(super) keep_alive: bool,
    /// The body was delimited by the close and cut short: the connection must be reset, not
    /// closed, for the client to see the failure.
    pub(super) reset: bool,
}

impl Outcome {
    fn nothing_sent(status: u16) -> Self {
        Outcome {
            status,
            exception: false,
            body_bytes: 0,
            headers: 0,
            header_bytes: 0,
            switches: 0,
            keep_alive: false,
            reset: false,
        }
    }

    /// A response whose head is `out`, before any of its body.
    fn started(out: &ResponseHead) -> Self {
        Outcome {
            status: out.status,
            exception: false,
            body_bytes: 0,
            headers: out.header_count,
            header_bytes: out.bytes.len(),
            switches: 0,
            keep_alive: out.keep_alive,
            reset: false,
        }
    }
}

impl<N: Net, P: Procs, A: App, L: WorkerLink> Worker<'_, N, P, A, L> {
    /// Calls the app and writes what it returns. `chunked_ok`: the peer reads chunked bodies
    /// (an HTTP socket, not a uwsgi-protocol proxy).
    pub(super) async fn respond<S>(
        &self,
        stream: &mut S,
        head: &RequestHead,
        request: WsgiRequest,
        keep_alive: bool,
        chunked_ok: bool,
    ) -> Outcome
    where
        S: AsyncWrite + Unpin,
    {
        let Some(app) = self.process.app.as_ref() else {
            self.process
                .procs
                .log(&crate::log::lines::NoPythonApp.to_string());
            return self.internal_error(stream).await;
        };
        self.process.requests.fetch_add(1, Ordering::SeqCst);
        let mut response = match app.call(request).await {
            Ok(response) => response,
            Err(error) => {
                self.log_traceback(&error);
                return self.app_failed(stream, &error.failed_at).await;
            }
        };
        let outcome = self
            .write_response(stream, head, &mut response, keep_alive, chunked_ok)
            .await;
        if let Err(error) = response.close() {
            self.log_traceback(&error);
        }
        outcome
    }

    /// Writes the app's response as it yields it: the head (framed by
    /// [`response::encode_head`]) with the first chunk, then each chunk through the body's
    /// encoder, then the end the framing calls for.
    async fn write_response<S, R>(
        &self,
        stream: &mut S,
        head: &RequestHead,
        response: &mut R,
        keep_alive: bool,
        chunked_ok: bool,
    ) -> Outcome
    where
        S: AsyncWrite + Unpin,
        R: AppResponse,
    {
        let (status, headers, first) = match self.start_of_response(response).await {
            Ok(start) => start,
            Err(failed_at) => return self.app_failed(stream, &failed_at).await,
        };
        // A body known whole now (one chunk, or none) gets a Content-Length instead of chunks.
        let body_length = match &first {
            Some(ResponsePart::Chunk(chunk)) if response.is_exhausted() => Some(chunk.len() as u64),
            None => Some(0),
            _ => None,
        };
        let exchange = Exchange {
            head_request: head.method == "HEAD",
            minor_version: head.minor_version,
            // Decided now, not when the request came: another core may meanwhile have begun
            // the worker's last request, or decided that it retires.
            keep_alive: keep_alive && !self.winding_down(),
            chunked_ok,
            body_length,
        };
        match response::encode_head(&status, &headers, &exchange) {
            Ok(out) => self.write_body(stream, head, response, out, first).await,
            Err(problem) => self.unsendable_head(stream, problem).await,
        }
    }

    /// The app's status and headers and the first part after them (the first chunk goes out
    /// with the head, in one write), or how it failed before.
    async fn start_of_response<R: AppResponse>(
        &self,
        response: &mut R,
    ) -> Result<(String, Vec<(String, String)>, Option<ResponsePart>), FailedAt> {
        let (status, headers) = match response.next_part().await {
            Ok(Some(ResponsePart::Head { status, headers })) => (status, headers),
            Ok(other) => {
                self.process.procs.log(&format!(
                    "wsgilab: the app's response did not start with start_response() (got {other:?})"
                ));
                return Err(FailedAt::BodyWithoutStartResponse);
            }
            Err(error) => {
                self.log_traceback(&error);
                return Err(error.failed_at);
            }
        };
        match response.next_part().await {
            Ok(first) => Ok((status, headers, first)),
            Err(error) => {
                self.log_traceback(&error);
                Err(match error.failed_at {
                    FailedAt::SecondStartResponse { status } => {
                        FailedAt::SecondStartResponse { status }
                    }
                    _ => FailedAt::AfterStartResponse { status },
                })
            }
        }
    }

    /// The app's head cannot be sent as it is (see [`response::HeadError`]): 500 instead.
    async fn unsendable_head<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        problem: response::HeadError,
    ) -> Outcome {
        let uwsgi = match problem {
            response::HeadError::NotLatin1 { .. } => " (uWSGI raises TypeError in start_response(): \"http header must be encodable in latin1\")",
            _ => "",
        };
        self.process
            .procs
            .log(&format!("wsgilab: {problem}; answered 500 instead{uwsgi}"));
        let mut outcome = self.internal_error(stream).await;
        outcome.exception = true;
        outcome
    }

    /// Writes the head `out` with the app's first part, then the rest of the body as the app
    /// yields it, until its end or until the response cannot go on.
    async fn write_body<S, R>(
        &self,
        stream: &mut S,
        head: &RequestHead,
        response: &mut R,
        out: ResponseHead,
        mut next: Option<ResponsePart>,
    ) -> Outcome
    where
        S: AsyncWrite + Unpin,
        R: AppResponse,
    {
        let mut encoder = out.encoder();
        let mut outcome = Outcome::started(&out);
        let mut head_bytes = out.bytes;
        loop {
            match next.take() {
                Some(ResponsePart::Chunk(chunk)) => {
                    outcome.switches += 1;
                    let head_part = std::mem::take(&mut head_bytes);
                    if !self
                        .write_chunk(stream, head, &mut encoder, &head_part, &chunk)
                        .await
                    {
                        outcome.keep_alive = false;
                        break;
                    }
                }
                Some(ResponsePart::Head { .. }) => {
                    let cut = encoder.cut();
                    self.process.procs.log(&format!(
                        "wsgilab: the app called start_response() again after its body started; {}",
                        cut.describe()
                    ));
                    outcome.keep_alive = false;
                    outcome.reset = cut == Cut::NeedsReset;
                    break;
                }
                None => {
                    if !self.write_end(stream, head, &encoder, &head_bytes).await {
                        outcome.keep_alive = false;
                    }
                    break;
                }
            }
            next = match response.next_part().await {
                Ok(part) => part,
                Err(error) => {
                    self.log_traceback(&error);
                    let cut = encoder.cut();
                    self.process.procs.log(&format!(
                        "wsgilab: the app failed after its response had started; {}",
                        cut.describe()
                    ));
                    outcome.keep_alive = false;
                    outcome.exception = true;
                    outcome.reset = cut == Cut::NeedsReset;
                    break;
                }
            };
        }
        outcome.body_bytes = encoder.sent();
        outcome
    }

    /// Writes one chunk of the body, framed, after what is left of the head; whether the
    /// response can go on.
    async fn write_chunk<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        head: &RequestHead,
        encoder: &mut BodyEncoder,
        head_part: &[u8],
        chunk: &[u8],
    ) -> bool {
        let frame = encoder.frame(chunk);
        let written = if head_part.is_empty() && frame.is_empty() {
            Ok(())
        } else {
            self.write_all(
                stream,
                &[head_part, frame.prefix(), frame.data, frame.suffix],
            )
            .await
        };
        if frame.overflow {
            self.process.procs.log(&format!(
                "wsgilab: the app gave more than its Content-Length: {}; the rest was not sent and the connection closes",
                encoder.sent()
            ));
            return false;
        }
        if written.is_err() {
            self.client_gone(head, "body");
            return false;
        }
        true
    }

    /// Writes the end the framing calls for (and the head, if the body was empty); whether
    /// the connection can be kept: not if the client is gone or the body came short.
    async fn write_end<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        head: &RequestHead,
        encoder: &BodyEncoder,
        head_bytes: &[u8],
    ) -> bool {
        let end = encoder.finish();
        let mut keep = true;
        if (!head_bytes.is_empty() || !end.trailer.is_empty())
            && self
                .write_all(stream, &[head_bytes, end.trailer])
                .await
                .is_err()
        {
            self.client_gone(head, "end of response");
            keep = false;
        }
        if let Some((declared, sent)) = end.short {
            self.process.procs.log(&format!(
                "wsgilab: the app declared Content-Length: {declared} but gave {sent} bytes; closing the connection so the client sees a short body"
            ));
            keep = false;
        }
        keep
    }

    /// The app failed before any byte of its response was written: wsgilab answers 500 and
    /// says what uWSGI would have done instead, which depends on how far the app had got.
    async fn app_failed<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        failed_at: &FailedAt,
    ) -> Outcome {
        let uwsgi = match failed_at {
            FailedAt::BeforeStartResponse => {
                " (uWSGI would have closed the connection without a response)".to_string()
            }
            FailedAt::AfterStartResponse { status } if status.is_empty() => {
                " (uWSGI would have sent the app's status and headers with an empty body, then closed the connection)".to_string()
            }
            FailedAt::AfterStartResponse { status } => format!(
                " (uWSGI would have sent the app's {status:?} and its headers with an empty body, then closed the connection)"
            ),
            FailedAt::SecondStartResponse { status } => format!(
                ": PEP 3333 makes a second start_response() without exc_info an error (uWSGI would have answered with the second call's {status:?} and its headers instead)"
            ),
            FailedAt::BodyWithoutStartResponse => {
                " (uWSGI would have sent the body's bytes with no status line or headers before them)".to_string()
            }
        };
        self.process.procs.log(&format!(
            "wsgilab: answered 500 Internal Server Error{uwsgi}"
        ));
        let mut outcome = self.internal_error(stream).await;
        outcome.exception = true;
        outcome
    }

    /// Answers `500 Internal Server Error` and closes.
    async fn internal_error<S: AsyncWrite + Unpin>(&self, stream: &mut S) -> Outcome {
        let answer = PlainResponse::new(
            "HTTP/1.1",
            500,
            "Internal Server Error",
            "text/plain",
            b"Internal Server Error",
        );
        let mut outcome = Outcome::nothing_sent(500);
        if self.write_all(stream, &[&answer.bytes]).await.is_ok() {
            outcome.body_bytes = answer.body_len() as u64;
            outcome.headers = answer.header_count;
            outcome.header_bytes = answer.head_len;
        }
        outcome
    }

    /// Answers a request that could not be read: 400-class for a malformed one, 408 for one
    /// too slow to arrive, nothing when the client is gone.
    pub(super) async fn answer_failure<S>(
        &self,
        stream: &mut S,
        failure: ReadFailure,
        conn: &ConnectionInfo,
    ) where
        S: AsyncWrite + Unpin,
    {
        match failure {
            ReadFailure::Http(e) => self.reject(stream, &e, conn).await,
            ReadFailure::Timeout(what) => self.timed_out(stream, what, conn).await,
            ReadFailure::Io => {}
        }
    }

    /// A client too slow to finish its request: answer 408 and free the worker.
    async fn timed_out<S>(&self, stream: &mut S, what: &str, conn: &ConnectionInfo)
    where
        S: AsyncWrite + Unpin,
    {
        let settings = &self.process.settings;
        self.process.procs.log(&format!(
            "wsgilab: the {what} from {} was not complete in time (--socket-timeout {} s for a head, --http-timeout {} s for a body): answered 408 and closed the connection, so a slow or stalled client cannot hold this worker",
            conn.peer.ip(),
            settings.socket_timeout.as_secs(),
            settings.body_timeout.as_secs()
        ));
        let answer = PlainResponse::error(408, "Request Timeout");
        let _ = self.write_all(stream, &[&answer.bytes]).await;
    }

    /// Answers a request the parser refused, then the connection closes.
    pub(super) async fn reject<S>(&self, stream: &mut S, error: &HttpError, conn: &ConnectionInfo)
    where
        S: AsyncWrite + Unpin,
    {
        let procs = &self.process.procs;
        let limits = &self.process.settings.limits;
        let status = error.status();
        let reason = error.reason_phrase();
        // uWSGI's own line, and its reset, are for a head that outgrows its buffer
        // (proto/http.c); with too many header lines it answers, dropping the extra variables.
        if matches!(error, HttpError::HeadTooLarge | HttpError::UriTooLong) {
            procs.log(&format!(
                "invalid HTTP request size (max {})...skip",
                limits.max_head
            ));
        }
        procs.log(&format!(
            "wsgilab: refused a request from {}: {}; answered {status} {reason} and closed the connection{}",
            conn.peer.ip(),
            error.describe(limits),
            match error {
                HttpError::HeadTooLarge | HttpError::UriTooLong => " (raise --buffer-size to accept it; uWSGI would reset the connection without an answer)",
                HttpError::TrailersTooLarge => " (raise --buffer-size to accept it)",
                HttpError::BodyTooLarge => " (raise --limit-post to accept it)",
                _ => "",
            }
        ));
        let answer = PlainResponse::error(status, reason);
        let _ = self.write_all(stream, &[&answer.bytes]).await;
    }

    pub(super) fn log_traceback(&self, error: &AppError) {
        for line in &error.traceback {
            self.process.procs.log(line);
        }
    }

    fn client_gone(&self, head: &RequestHead, during: &str) {
        self.process.procs.log(&format!(
            "wsgilab_response_write(): the client went away (write failed or timed out after --socket-timeout {}s) during {} {} ({during})",
            self.process.settings.socket_timeout.as_secs(),
            head.method,
            head.target,
        ));
    }

    /// Writes every slice, bounded by `--socket-timeout`.
    pub(super) async fn write_all<S: AsyncWrite + Unpin>(
        &self,
        stream: &mut S,
        parts: &[&[u8]],
    ) -> io::Result<()> {
        let total: usize = parts.iter().map(|p| p.len()).sum();
        // Empty parts (the framing around a chunk that has none) do not count.
        let mut non_empty = parts.iter().filter(|p| !p.is_empty());
        let only = match (non_empty.next(), non_empty.next()) {
            (Some(part), None) => Some(*part),
            (None, _) => Some(&[][..]),
            _ => None,
        };
        let write = async {
            // Small parts are gathered into one buffer: one syscall, one segment.
            if total <= 16 * 1024 || only.is_some() {
                if let Some(part) = only {
                    stream.write_all(part).await?;
                } else {
                    let mut buf = Vec::with_capacity(total);
                    for p in parts {
                        buf.extend_from_slice(p);
                    }
                    stream.write_all(&buf).await?;
                }
            } else {
                // Large parts are not copied: the head and a body chunk leave in one vectored
                // write where the stream has them (a stream without falls back to one part a
                // write).
                let mut slices: Vec<io::IoSlice> = parts
                    .iter()
                    .filter(|p| !p.is_empty())
                    .map(|p| io::IoSlice::new(p))
                    .collect();
                let mut unsent = &mut slices[..];
                while !unsent.is_empty() {
                    let n = stream.write_vectored(unsent).await?;
                    if n == 0 {
                        return Err(io::ErrorKind::WriteZero.into());
                    }
                    io::IoSlice::advance_slices(&mut unsent, n);
                }
            }
            stream.flush().await
        };
        match timeout(self.process.settings.socket_timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}
