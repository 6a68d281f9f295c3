//! A worker: accepts connections from the shared listening socket and serves them one request
//! at a time — read and parse, build the environ, call the app, write the response — then logs
//! the request as uWSGI does.
//!
//! Written against the seams only, so the same code serves real sockets with CPython and the
//! simulated network with the modelled app.

use std::io;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::time::{timeout, Instant};

use crate::http::response::{self, Cut, Exchange, PlainResponse};
use crate::http::{BodyFraming, Event, HttpError, Limits, RequestHead, RequestParser};
use crate::log::RequestLog;
use crate::net::{ByteStream, Listener, Net};
use crate::procs::{Procs, SharedCounter, WorkerLink, WorkerMessage};
use crate::python::{App, AppError, AppResponse, FailedAt, Python, ResponsePart, WsgiRequest};
use crate::serve::AppLoader;
use crate::uwsgi_protocol;
use crate::wsgi::{build_request, ConnectionInfo};

/// How a worker speaks HTTP, from the command line.
#[derive(Clone, Debug)]
pub struct WorkerSettings {
    pub limits: Limits,
    /// `--http11-socket`: keep connections alive. `--http-socket` closes after each response,
    /// as uWSGI's does.
    pub keep_alive: bool,
    /// `--socket`: requests come in uwsgi's binary protocol (from nginx's `uwsgi_pass`).
    pub uwsgi_protocol: bool,
    /// `--socket-timeout`: the longest a read or a write may wait for the client, and the
    /// most a request head may take in all from its first byte.
    pub socket_timeout: Duration,
    /// `--http-timeout`: the most a request body may take in all.
    pub body_timeout: Duration,
    pub disable_logging: bool,
    pub multithread: bool,
    pub multiprocess: bool,
    /// `--max-requests`: leave after this many requests (0: never).
    pub max_requests: u64,
    /// `--reload-on-rss`, in bytes: leave once resident memory is above it (0: never).
    pub reload_on_rss: u64,
    /// `--threads`: requests served at once by one worker process, under one GIL.
    pub threads: usize,
}

/// The channel of a worker without a master (single-process mode): nobody to tell, nobody to
/// ask it to stop.
pub struct NoMaster;

impl WorkerLink for NoMaster {
    fn has_master(&self) -> bool {
        false
    }

    fn send(&self, _message: WorkerMessage) {}

    async fn stop_requested(&self) {
        std::future::pending::<()>().await
    }
}

/// One worker's state: its app (if the import succeeded), its request counters, and its
/// channel to the master.
pub struct Worker<'a, P: Procs, A: App, L: WorkerLink = NoMaster> {
    procs: &'a P,
    app: Option<&'a A>,
    link: &'a L,
    settings: WorkerSettings,
    pid: u32,
    /// Which of the worker's threads this is (uWSGI's "core").
    core: usize,
    /// What the worker's cores share.
    shared: Arc<WorkerShared>,
    /// The request log's date and the second it is for: formatted once a second, not once
    /// a request.
    log_ctime: std::cell::RefCell<(u64, String)>,
    /// Stopping or retiring: requests still served get `Connection: close`.
    leaving: std::cell::Cell<bool>,
}

/// The counters and decisions of a worker process, shared by its cores (threads).
#[derive(Debug, Default)]
pub struct WorkerShared {
    /// Requests that reached the app (uWSGI's `req: N/M`).
    requests: AtomicU64,
    /// Every request answered, app or not (for --max-requests).
    served: AtomicU64,
    /// Every request whose head was read (for the last one's `Connection: close`).
    begun: AtomicU64,
    /// Requests answered by every worker of the instance (uWSGI's `req: N/M`, the M).
    total: SharedCounter,
    /// Set once the worker decided to leave after the requests in hand.
    retiring: Mutex<Option<String>>,
    rss_sampled_at: Mutex<Option<Instant>>,
}

/// What a finished request reports to the log.
struct Outcome {
    status: u16,
    /// The app raised (uWSGI's per-worker `exceptions`).
    exception: bool,
    body_bytes: u64,
    headers: usize,
    header_bytes: usize,
    switches: u64,
    keep_alive: bool,
    /// The body was delimited by the close and cut short: the connection must be reset, not
    /// closed, for the client to see the failure.
    reset: bool,
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
}

impl<'a, P: Procs, A: App> Worker<'a, P, A, NoMaster> {
    /// A worker on its own, without a master, with one core.
    pub fn new(procs: &'a P, app: Option<&'a A>, settings: WorkerSettings) -> Self {
        Worker::with_master(procs, app, &NoMaster, settings, 0, Arc::default())
    }
}

impl<'a, P: Procs, A: App, L: WorkerLink> Worker<'a, P, A, L> {
    /// Core `core` of a worker that reports to its master over `link`.
    pub fn with_master(
        procs: &'a P,
        app: Option<&'a A>,
        link: &'a L,
        settings: WorkerSettings,
        core: usize,
        shared: Arc<WorkerShared>,
    ) -> Self {
        Worker {
            procs,
            app,
            link,
            pid: procs.pid(),
            settings,
            core,
            shared,
            log_ctime: std::cell::RefCell::new((u64::MAX, String::new())),
            leaving: std::cell::Cell::new(false),
        }
    }

    /// No request after those in hand will be served: the worker is stopping or retires, or
    /// has begun its last request under --max-requests. A response written then closes its
    /// connection, saying so.
    fn winding_down(&self) -> bool {
        self.leaving.get()
            || self.is_retiring()
            || (self.settings.max_requests > 0
                && self.shared.begun.load(Ordering::SeqCst) >= self.settings.max_requests)
    }

    /// Why the worker is leaving by itself, once it has decided to.
    pub fn retiring(&self) -> Option<String> {
        self.shared
            .retiring
            .lock()
            .map(|r| r.clone())
            .unwrap_or(None)
    }

    /// Whether the worker has decided to retire (asked on every request: no copy of the reason).
    fn is_retiring(&self) -> bool {
        self.shared
            .retiring
            .lock()
            .map(|r| r.is_some())
            .unwrap_or(false)
    }

    /// Accepts and serves connections until the master asks the worker to stop, the worker
    /// retires (max-requests, reload-on-rss), or the listener fails for good.
    ///
    /// A keep-alive connection between two requests does not hold the worker: it waits,
    /// parked, while the worker accepts and serves others, and is served again when its next
    /// request arrives. The worker still takes one request at a time and accepts only when it
    /// is not serving, so busy workers leave new connections in the kernel's accept queue as
    /// uWSGI's do; unlike uWSGI's `--http11-socket`, an idle keep-alive client does not make a
    /// worker unavailable to everyone else.
    pub async fn run<Lst>(&self, listener: &Lst) -> io::Result<()>
    where
        Lst: Listener,
        Lst::Stream: ByteStream,
    {
        let local = listener.local_addr()?;
        let mut parked = FuturesUnordered::new();
        let mut closing = FuturesUnordered::new();
        let (leave, leaving) = tokio::sync::watch::channel(false);
        // Accepting and serving parked connections take turns, so neither starves the other
        // (and without tokio's random branch order, which would break the simulation's replay).
        let mut accept_first = false;
        // Made once: registering with the stop notification and leaving it again on every turn
        // of the loop cost as much as a request's scoreboard reports.
        let stop_requested = self.link.stop_requested();
        tokio::pin!(stop_requested);
        let result = loop {
            if self.is_retiring() {
                break Ok(());
            }
            accept_first = !accept_first;
            let room = parked.len() < MAX_PARKED_CONNECTIONS;
            let wake = tokio::select! {
                biased;
                _ = &mut stop_requested => break Ok(()),
                // First, so that a worker never short of work still finishes its closes.
                Some(()) = closing.next(), if !closing.is_empty() => continue,
                accepted = listener.accept(), if room && accept_first => Wake::Accepted(accepted),
                Some(woken) = parked.next(), if !parked.is_empty() => Wake::Parked(woken),
                accepted = listener.accept(), if room => Wake::Accepted(accepted),
            };
            let connection = match wake {
                Wake::Accepted(Ok((stream, peer))) => Connection {
                    stream,
                    parser: RequestParser::new(self.settings.limits),
                    info: ConnectionInfo::new(
                        peer,
                        local,
                        self.settings.multithread,
                        self.settings.multiprocess,
                    ),
                    eof: false,
                },
                Wake::Accepted(Err(e)) if is_transient_accept_error(&e) => {
                    self.procs.log(&format!("accept(): {e} [wsgilab worker]"));
                    // Out of file descriptors or a connection reset while queued: let the
                    // moment pass instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Wake::Accepted(Err(e)) => break Err(e),
                Wake::Parked((connection, waited)) => match self.after_wait(connection, waited) {
                    Ok(connection) => connection,
                    Err(close) => {
                        closing.push(self.let_go(close));
                        continue;
                    }
                },
            };
            match self.serve_connection(connection).await {
                AfterResponse::Park(connection) => parked.push(wait_for_request(
                    connection,
                    self.settings.socket_timeout,
                    leaving.clone(),
                )),
                AfterResponse::Close(close) => closing.push(self.let_go(close)),
                AfterResponse::Reset => {}
            }
        };
        // Leaving: the idle parked connections close at once (so their clients send nothing
        // more); one whose next request is already here is served, with `Connection: close`.
        self.leaving.set(true);
        let _ = leave.send(true);
        let mut pending = Vec::new();
        while let Some((connection, waited)) = parked.next().await {
            match self.after_wait(connection, waited) {
                Ok(connection) => pending.push(connection),
                Err(close) => closing.push(self.let_go(close)),
            }
        }
        for connection in pending {
            let close = match self.serve_connection(connection).await {
                AfterResponse::Park(connection) => Closing::linger(connection),
                AfterResponse::Close(close) => close,
                AfterResponse::Reset => continue,
            };
            closing.push(self.let_go(close));
        }
        while closing.next().await.is_some() {}
        result
    }

    /// A parked connection that woke: back to serving if its next request is coming, else how
    /// it closes.
    fn after_wait<S>(
        &self,
        mut connection: Connection<S>,
        waited: Waited,
    ) -> Result<Connection<S>, Closing<S>> {
        match waited {
            Waited::Read => Ok(connection),
            Waited::Eof => {
                connection.eof = true;
                Ok(connection)
            }
            // Idle past --socket-timeout, or gone: a normal end of a keep-alive connection.
            Waited::IdleOrFailed => Err(Closing::linger(connection)),
            Waited::Leaving => Err(Closing {
                stream: connection.stream,
                client_done: false,
                idle_from: Some(connection.info.peer),
            }),
        }
    }

    /// Closes a connection the worker lets go of. Our side is shut at once, so the client
    /// reads the end of the response (or of the connection) before the worker goes on; the
    /// rest runs in the background: unless the client is known to send nothing more, read what
    /// it still sends for a moment, since closing with unread bytes makes the kernel send RST,
    /// which can destroy the response the client has not read yet. A connection closed idle
    /// because the worker is leaving may still have received a request at the last moment:
    /// that request is not served, and the log says so.
    fn let_go<S>(&self, mut close: Closing<S>) -> impl std::future::Future<Output = ()> + '_
    where
        S: ByteStream + 'a,
    {
        // A TCP shutdown never waits; should a stream's ever do, it finishes below.
        let shut = close.stream.shutdown().now_or_never().is_some();
        async move {
            if !shut {
                let _ = close.stream.shutdown().await;
            }
            self.drain(close).await
        }
    }

    /// The background part of [`Worker::let_go`].
    async fn drain<S>(&self, close: Closing<S>)
    where
        S: tokio::io::AsyncRead + Unpin,
    {
        let Closing {
            mut stream,
            client_done,
            idle_from,
        } = close;
        if client_done {
            return;
        }
        let mut discarded = 0usize;
        let drain = async {
            let mut sink = [0u8; 4096];
            while let Ok(n) = stream.read(&mut sink).await {
                discarded += n;
                if n == 0 || discarded > 256 * 1024 {
                    break;
                }
            }
        };
        let _ = timeout(Duration::from_millis(500), drain).await;
        if let (Some(peer), true) = (idle_from, discarded > 0) {
            self.procs.log(&format!(
                "wsgilab: a request from {} arrived on an idle keep-alive connection as this worker was closing it to leave ({}); it was not served: the client sees the connection close and may retry",
                peer.ip(),
                self.retiring().unwrap_or_else(|| "asked to stop".into())
            ));
        }
    }

    /// Serves the requests of one connection, in order, until it is idle between two requests
    /// (it is then parked) or done (it is then closed).
    async fn serve_connection<S>(&self, connection: Connection<S>) -> AfterResponse<S>
    where
        S: ByteStream,
    {
        let Connection {
            mut stream,
            mut parser,
            info: conn,
            mut eof,
        } = connection;
        if self.settings.uwsgi_protocol {
            return self.serve_uwsgi_connection(stream, &conn).await;
        }
        // The client said it sends nothing more (`Connection: close`) and nothing more came:
        // no lingering needed before the close.
        let mut client_done = false;
        loop {
            let mut head = match self.next_head(&mut stream, &mut parser, &mut eof).await {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(failure) => {
                    self.answer_failure(&mut stream, failure, &conn).await;
                    break;
                }
            };
            let started = Instant::now();
            if head.expect_continue && !matches!(head.framing, BodyFraming::Empty) {
                let sent = self.write_all(&mut stream, &[response::CONTINUE]).await;
                if sent.is_err() {
                    break;
                }
            }
            let declared = match head.framing {
                BodyFraming::Length(n) => n,
                _ => 0,
            };
            let body = match self
                .read_body(&mut stream, &mut parser, &mut eof, declared)
                .await
            {
                Ok(body) => body,
                Err(failure) => {
                    self.answer_failure(&mut stream, failure, &conn).await;
                    break;
                }
            };
            let request = build_request(&mut head, body, &conn);
            let (vars, vars_bytes) = (request.vars.len(), request.vars_size());
            self.started(&head, &conn);
            // Counted as requests begin, so that the last request before retiring closes its
            // connection (see `winding_down`), with --threads every core's that reaches the
            // limit too: nothing the client sends next lands on a worker about to leave.
            self.shared.begun.fetch_add(1, Ordering::SeqCst);
            let keep_alive = self.settings.keep_alive && head.keep_alive;
            let outcome = self
                .respond(&mut stream, &head, request, keep_alive, true)
                .await;
            self.shared.served.fetch_add(1, Ordering::SeqCst);
            self.shared.total.add(1);
            self.log_request(&head, &conn, vars, vars_bytes, &outcome, started);
            self.finished(&outcome, started);
            if outcome.reset {
                stream.reset();
                return AfterResponse::Reset;
            }
            if !outcome.keep_alive || self.is_retiring() {
                client_done = !head.keep_alive && parser.is_between_requests();
                break;
            }
            if parser.is_between_requests() && !eof {
                parser.shrink_between_requests();
                return AfterResponse::Park(Connection {
                    stream,
                    parser,
                    info: conn,
                    eof,
                });
            }
        }
        AfterResponse::Close(Closing::new(stream, eof || client_done))
    }

    /// One request in uwsgi's binary protocol: the proxy already parsed the HTTP request and
    /// built the environ; the response goes back as HTTP, and the connection closes.
    async fn serve_uwsgi_connection<S>(
        &self,
        mut stream: S,
        conn: &ConnectionInfo,
    ) -> AfterResponse<S>
    where
        S: ByteStream,
    {
        let max = self.settings.limits.max_head;
        let mut buf = BytesMut::with_capacity(max.min(16 * 1024) + 4);
        let (packet, used) = loop {
            match uwsgi_protocol::parse_packet(&buf, max) {
                Ok(Some(parsed)) => break parsed,
                Ok(None) => {
                    match timeout(self.settings.socket_timeout, stream.read_buf(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => continue,
                        _ => return AfterResponse::Close(Closing::new(stream, true)),
                    }
                }
                Err(error) => {
                    self.procs.log(&error.to_string());
                    if buf.starts_with(b"GET ")
                        || buf.starts_with(b"POST ")
                        || buf.starts_with(b"HEAD ")
                    {
                        self.procs.log("hint: an HTTP client is talking to a uwsgi socket (--socket): browsers and curl need --http-socket; --socket is for nginx's uwsgi_pass");
                    }
                    return AfterResponse::Close(Closing::new(stream, false));
                }
            }
        };
        let head = match packet.request_head() {
            Ok(head) => head,
            Err(error) => {
                self.procs.log(&error.to_string());
                return AfterResponse::Close(Closing::new(stream, false));
            }
        };
        let started = Instant::now();
        let length = match head.framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        if self
            .settings
            .limits
            .max_body
            .is_some_and(|max| length > max)
        {
            self.reject(&mut stream, &HttpError::BodyTooLarge, conn)
                .await;
            return AfterResponse::Close(Closing::new(stream, false));
        }
        let mut body = buf.split_off(used);
        while (body.len() as u64) < length {
            match timeout(self.settings.socket_timeout, stream.read_buf(&mut body)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return AfterResponse::Close(Closing::new(stream, true)),
            }
        }
        body.truncate(length as usize);
        let url_scheme = packet.url_scheme();
        // Behind a proxy the client is the one the proxy names, for the log as for the app.
        let client = packet
            .var("REMOTE_ADDR")
            .and_then(|a| {
                std::str::from_utf8(a)
                    .ok()?
                    .parse::<std::net::IpAddr>()
                    .ok()
            })
            .map(|ip| {
                let port = packet
                    .var("REMOTE_PORT")
                    .and_then(|p| std::str::from_utf8(p).ok()?.parse().ok());
                SocketAddr::new(ip, port.unwrap_or(0))
            });
        let conn = &match client {
            Some(client) => conn.for_peer(client),
            None => *conn,
        };
        let request = WsgiRequest {
            vars: packet.into_environ(conn.local, conn.peer),
            url_scheme,
            body: body.freeze(),
            multithread: conn.multithread,
            multiprocess: conn.multiprocess,
        };
        let (vars, vars_bytes) = (request.vars.len(), request.vars_size());
        self.started(&head, conn);
        // A proxy on the uwsgi protocol reads the body up to the close: no chunks.
        let outcome = self
            .respond(&mut stream, &head, request, false, false)
            .await;
        self.shared.served.fetch_add(1, Ordering::SeqCst);
        self.shared.total.add(1);
        self.log_request(&head, conn, vars, vars_bytes, &outcome, started);
        self.finished(&outcome, started);
        if outcome.reset {
            stream.reset();
            return AfterResponse::Reset;
        }
        AfterResponse::Close(Closing::new(stream, false))
    }

    async fn next_head<S>(
        &self,
        stream: &mut S,
        parser: &mut RequestParser,
        eof: &mut bool,
    ) -> Result<Option<RequestHead>, ReadFailure>
    where
        S: tokio::io::AsyncRead + Unpin,
    {
        // A head gets --socket-timeout in all from its first byte: a client trickling a byte at
        // a time (slowloris) cannot hold the worker longer than that.
        let mut deadline = None;
        loop {
            match parser.next_event() {
                Ok(Some(Event::Head(head))) => return Ok(Some(head)),
                Ok(Some(_)) => {
                    return Err(ReadFailure::Http(HttpError::Malformed("body before head")))
                }
                Ok(None) if *eof => {
                    // A client that half-closed mid-request may still be reading: it gets
                    // its 400 (if it is gone altogether, the write just fails).
                    return parser.eof().map(|()| None).map_err(ReadFailure::Http);
                }
                Ok(None) => {
                    let between = parser.is_between_requests();
                    let read = if between {
                        // An idle keep-alive connection must not delay a stop.
                        tokio::select! {
                            biased;
                            _ = self.link.stop_requested() => return Ok(None),
                            read = self.read_more(stream, parser, None) => read,
                        }
                    } else {
                        // From the first byte of the head, which may have come while the
                        // connection was parked.
                        let head_deadline = *deadline
                            .get_or_insert_with(|| Instant::now() + self.settings.socket_timeout);
                        self.read_more(stream, parser, Some(head_deadline)).await
                    };
                    match read {
                        Ok(0) => *eof = true,
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

    async fn read_body<S>(
        &self,
        stream: &mut S,
        parser: &mut RequestParser,
        eof: &mut bool,
        declared_length: u64,
    ) -> Result<Bytes, ReadFailure>
    where
        S: tokio::io::AsyncRead + Unpin,
    {
        // The body gets --http-timeout in all (and --socket-timeout between two reads).
        let deadline =
            Instant::now() + self.settings.body_timeout.max(self.settings.socket_timeout);
        // A body that came in one piece goes to the app as it is; pieces are joined once.
        let mut first_piece: Option<Bytes> = None;
        let mut joined = BytesMut::new();
        let mut received = 0u64;
        // A Content-Length body of up to 1 MiB is gathered in the read buffer and taken out in
        // one piece: pieces taken as they come would be copied again to be joined (a 64 KiB
        // upload spent a fifth of its worker's time in that copy).
        let gather_whole = declared_length <= 1 << 20;
        loop {
            let to_come = parser.body_bytes_to_come();
            let event = if gather_whole && to_come.is_some_and(|n| n > 0) && !*eof {
                Ok(None)
            } else {
                parser.next_event()
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
                Ok(None) if *eof => {
                    return Err(match parser.eof() {
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
                    let buf = parser.buffer_mut();
                    if buf.capacity() - buf.len() < rest {
                        buf.reserve(rest);
                    }
                    match self.read_more(stream, parser, Some(deadline)).await {
                        Ok(0) => *eof = true,
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

    /// Reads what the client sent, waiting at most `--socket-timeout`, and never past
    /// `deadline` (the whole head's, or the whole body's, budget).
    async fn read_more<S>(
        &self,
        stream: &mut S,
        parser: &mut RequestParser,
        deadline: Option<Instant>,
    ) -> io::Result<usize>
    where
        S: tokio::io::AsyncRead + Unpin,
    {
        let buf = parser.buffer_mut();
        if buf.capacity() - buf.len() < 4096 {
            buf.reserve(8192);
        }
        let wait = match deadline {
            Some(deadline) => self
                .settings
                .socket_timeout
                .min(deadline.saturating_duration_since(Instant::now())),
            None => self.settings.socket_timeout,
        };
        match timeout(wait, stream.read_buf(buf)).await {
            Ok(result) => result,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }

    /// Answers a request that could not be read: 400-class for a malformed one, 408 for one
    /// too slow to arrive, nothing when the client is gone.
    async fn answer_failure<S>(&self, stream: &mut S, failure: ReadFailure, conn: &ConnectionInfo)
    where
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
        self.procs.log(&format!(
            "wsgilab: the {what} from {} was not complete in time (--socket-timeout {} s for a head, --http-timeout {} s for a body): answered 408 and closed the connection, so a slow or stalled client cannot hold this worker",
            conn.peer.ip(),
            self.settings.socket_timeout.as_secs(),
            self.settings.body_timeout.as_secs()
        ));
        let answer = PlainResponse::error(408, "Request Timeout");
        let _ = self.write_all(stream, &[&answer.bytes]).await;
    }

    /// Answers a request the parser refused, then the connection closes.
    async fn reject<S>(&self, stream: &mut S, error: &HttpError, conn: &ConnectionInfo)
    where
        S: AsyncWrite + Unpin,
    {
        let status = error.status();
        let reason = error.reason_phrase();
        // uWSGI's own line, and its reset, are for a head that outgrows its buffer
        // (proto/http.c); with too many header lines it answers, dropping the extra variables.
        if matches!(error, HttpError::HeadTooLarge | HttpError::UriTooLong) {
            self.procs.log(&format!(
                "invalid HTTP request size (max {})...skip",
                self.settings.limits.max_head
            ));
        }
        self.procs.log(&format!(
            "wsgilab: refused a request from {}: {}; answered {status} {reason} and closed the connection{}",
            conn.peer.ip(),
            error.describe(&self.settings.limits),
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

    /// Calls the app and writes what it returns. `chunked_ok`: the peer reads chunked bodies
    /// (an HTTP socket, not a uwsgi-protocol proxy).
    async fn respond<S>(
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
        let Some(app) = self.app else {
            self.procs.log(&crate::log::lines::NoPythonApp.to_string());
            return self.internal_error(stream).await;
        };
        self.shared.requests.fetch_add(1, Ordering::SeqCst);
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
        let (status, headers) = match response.next_part().await {
            Ok(Some(ResponsePart::Head { status, headers })) => (status, headers),
            Ok(other) => {
                self.procs.log(&format!(
                    "wsgilab: the app's response did not start with start_response() (got {other:?})"
                ));
                return self
                    .app_failed(stream, &FailedAt::BodyWithoutStartResponse)
                    .await;
            }
            Err(error) => {
                self.log_traceback(&error);
                return self.app_failed(stream, &error.failed_at).await;
            }
        };
        // The first chunk goes out with the head, in one write.
        let mut next = match response.next_part().await {
            Ok(part) => part,
            Err(error) => {
                self.log_traceback(&error);
                let failed_at = match error.failed_at {
                    FailedAt::SecondStartResponse { status } => {
                        FailedAt::SecondStartResponse { status }
                    }
                    _ => FailedAt::AfterStartResponse { status },
                };
                return self.app_failed(stream, &failed_at).await;
            }
        };
        // A body known whole now (one chunk, or none) gets a Content-Length instead of chunks.
        let body_length = match &next {
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
        let out = match response::encode_head(&status, &headers, &exchange) {
            Ok(out) => out,
            Err(problem) => {
                let uwsgi = match problem {
                    response::HeadError::NotLatin1 { .. } => " (uWSGI raises TypeError in start_response(): \"http header must be encodable in latin1\")",
                    _ => "",
                };
                self.procs
                    .log(&format!("wsgilab: {problem}; answered 500 instead{uwsgi}"));
                let mut outcome = self.internal_error(stream).await;
                outcome.exception = true;
                return outcome;
            }
        };
        let mut encoder = out.encoder();
        let mut outcome = Outcome {
            status: out.status,
            exception: false,
            body_bytes: 0,
            headers: out.header_count,
            header_bytes: out.bytes.len(),
            switches: 0,
            keep_alive: out.keep_alive,
            reset: false,
        };
        let mut head_bytes = out.bytes;
        loop {
            match next.take() {
                Some(ResponsePart::Chunk(chunk)) => {
                    outcome.switches += 1;
                    let frame = encoder.frame(&chunk);
                    let head_part = std::mem::take(&mut head_bytes);
                    let written = if head_part.is_empty() && frame.is_empty() {
                        Ok(())
                    } else {
                        self.write_all(
                            stream,
                            &[&head_part, frame.prefix(), frame.data, frame.suffix],
                        )
                        .await
                    };
                    if frame.overflow {
                        self.procs.log(&format!(
                            "wsgilab: the app gave more than its Content-Length: {}; the rest was not sent and the connection closes",
                            encoder.sent()
                        ));
                        outcome.keep_alive = false;
                        break;
                    }
                    if written.is_err() {
                        self.client_gone(head, "body");
                        outcome.keep_alive = false;
                        break;
                    }
                }
                Some(ResponsePart::Head { .. }) => {
                    let cut = encoder.cut();
                    self.procs.log(&format!(
                        "wsgilab: the app called start_response() again after its body started; {}",
                        cut.describe()
                    ));
                    outcome.keep_alive = false;
                    outcome.reset = cut == Cut::NeedsReset;
                    break;
                }
                None => {
                    let end = encoder.finish();
                    if (!head_bytes.is_empty() || !end.trailer.is_empty())
                        && self
                            .write_all(stream, &[&head_bytes, end.trailer])
                            .await
                            .is_err()
                    {
                        self.client_gone(head, "end of response");
                        outcome.keep_alive = false;
                    }
                    if let Some((declared, sent)) = end.short {
                        self.procs.log(&format!(
                            "wsgilab: the app declared Content-Length: {declared} but gave {sent} bytes; closing the connection so the client sees a short body"
                        ));
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
                    self.procs.log(&format!(
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
        self.procs.log(&format!(
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

    fn log_traceback(&self, error: &AppError) {
        for line in &error.traceback {
            self.procs.log(line);
        }
    }

    fn client_gone(&self, head: &RequestHead, during: &str) {
        self.procs.log(&format!(
            "wsgilab_response_write(): the client went away (write failed or timed out after --socket-timeout {}s) during {} {} ({during})",
            self.settings.socket_timeout.as_secs(),
            head.method,
            head.target,
        ));
    }

    /// Tells the master a request is being served (for the scoreboard and harakiri).
    fn started(&self, head: &RequestHead, conn: &ConnectionInfo) {
        if self.link.has_master() {
            self.link
                .request_started(self.core, &head.method, &head.target, conn.peer_ip.as_str());
        }
    }

    /// Tells the master the request is done, and decides whether this worker should retire.
    fn finished(&self, outcome: &Outcome, started: Instant) {
        let sample_due = (self.link.has_master() || self.settings.reload_on_rss > 0) && {
            let mut sampled_at = self
                .shared
                .rss_sampled_at
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            let due = self.settings.reload_on_rss > 0
                || sampled_at.is_none_or(|at| at.elapsed() >= Duration::from_secs(1));
            if due {
                *sampled_at = Some(Instant::now());
            }
            due
        };
        // Sampled at most once a second unless --reload-on-rss needs it after every request.
        let rss = if sample_due {
            self.procs.rss_bytes()
        } else {
            0
        };
        if self.link.has_master() {
            self.link.send(WorkerMessage::Idle {
                core: self.core,
                requests: 1,
                status: outcome.status,
                micros: started.elapsed().as_micros() as u64,
                exceptions: u64::from(outcome.exception),
                tx: outcome.body_bytes,
                rss,
            });
        }
        let reason = if self.settings.max_requests > 0
            && self.shared.served.load(Ordering::SeqCst) >= self.settings.max_requests
        {
            Some(format!(
                "--max-requests {} reached",
                self.settings.max_requests
            ))
        } else if self.settings.reload_on_rss > 0 && rss > self.settings.reload_on_rss {
            Some(format!(
                "resident memory {} MB is over --reload-on-rss {} MB",
                rss >> 20,
                self.settings.reload_on_rss >> 20
            ))
        } else {
            None
        };
        if let Some(reason) = reason {
            let mut retiring = self
                .shared
                .retiring
                .lock()
                .unwrap_or_else(|e| e.into_inner());
            if retiring.is_none() {
                self.link.send(WorkerMessage::Retiring {
                    reason: reason.clone(),
                });
                *retiring = Some(reason);
            }
        }
    }

    fn log_request(
        &self,
        head: &RequestHead,
        conn: &ConnectionInfo,
        vars: usize,
        vars_bytes: usize,
        outcome: &Outcome,
        started: Instant,
    ) {
        if self.settings.disable_logging {
            return;
        }
        let entry = RequestLog {
            pid: self.pid,
            app_requests: self
                .app
                .map(|_| self.shared.requests.load(Ordering::SeqCst)),
            // Read as the line is written, as uWSGI reads its shared total: other workers'
            // requests count too.
            total_requests: self.shared.total.get(),
            remote_addr: conn.peer_ip.as_str(),
            vars,
            vars_bytes,
            ctime: self.log_ctime(),
            method: &head.method,
            uri: &head.target,
            body_bytes: outcome.body_bytes,
            msecs: started.elapsed().as_millis(),
            protocol: if head.minor_version == 0 {
                "HTTP/1.0"
            } else {
                "HTTP/1.1"
            },
            status: outcome.status,
            headers: outcome.headers,
            header_bytes: outcome.header_bytes,
            switches: outcome.switches,
            core: self.core,
        };
        self.procs.log(&entry.line());
    }

    /// `Procs::now_ctime`, formatted again only when the second changes.
    fn log_ctime(&self) -> String {
        let now = self.procs.unix_time();
        let mut cached = self.log_ctime.borrow_mut();
        if cached.0 != now {
            *cached = (now, self.procs.local_time(now).ctime());
        }
        cached.1.clone()
    }

    /// Writes every slice, bounded by `--socket-timeout`.
    async fn write_all<S: AsyncWrite + Unpin>(
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
        match timeout(self.settings.socket_timeout, write).await {
            Ok(result) => result,
            Err(_) => Err(io::ErrorKind::TimedOut.into()),
        }
    }
}

/// A connection the worker holds: its stream, the bytes read and not yet parsed, and who it
/// is.
struct Connection<S> {
    stream: S,
    parser: RequestParser,
    info: ConnectionInfo,
    /// The client closed its side.
    eof: bool,
}

/// Where a connection goes once the worker stops serving it for now.
enum AfterResponse<S> {
    /// Kept alive, between two requests: it waits for the next one without holding the worker.
    Park(Connection<S>),
    /// Done: closed in the background while the worker goes on.
    Close(Closing<S>),
    /// Reset already (a body delimited by the close was cut short).
    Reset,
}

/// A connection on its way out.
struct Closing<S> {
    stream: S,
    /// The client is known to send nothing more: no need to linger.
    client_done: bool,
    /// Closed while idle because the worker is leaving: who to name if a request came anyway.
    idle_from: Option<SocketAddr>,
}

impl<S> Closing<S> {
    fn new(stream: S, client_done: bool) -> Self {
        Closing {
            stream,
            client_done,
            idle_from: None,
        }
    }

    fn linger(connection: Connection<S>) -> Self {
        Closing::new(connection.stream, connection.eof)
    }
}

/// What woke an idle worker.
// Lives for one turn of the worker's loop; boxing the connection would cost an allocation
// per request.
#[allow(clippy::large_enum_variant)]
enum Wake<S, A> {
    Accepted(io::Result<A>),
    Parked((Connection<S>, Waited)),
}

/// How a parked connection's wait ended.
enum Waited {
    /// Bytes of its next request arrived (they are in its parser).
    Read,
    /// The client closed its side.
    Eof,
    /// Nothing came within --socket-timeout, or the connection failed.
    IdleOrFailed,
    /// The worker is leaving.
    Leaving,
}

/// Keep-alive connections one core keeps parked at most; beyond that it stops accepting until
/// one ends (each idle one ends after --socket-timeout at the latest).
const MAX_PARKED_CONNECTIONS: usize = 1000;

/// Waits, without holding the worker, for the next request on a kept-alive connection (the
/// bytes read go into its parser), for at most `idle_timeout`, or until the worker leaves.
async fn wait_for_request<S: tokio::io::AsyncRead + Unpin>(
    mut connection: Connection<S>,
    idle_timeout: Duration,
    mut leaving: tokio::sync::watch::Receiver<bool>,
) -> (Connection<S>, Waited) {
    let buf = connection.parser.buffer_mut();
    if buf.capacity() - buf.len() < 4096 {
        buf.reserve(8192);
    }
    let waited = tokio::select! {
        biased;
        read = timeout(idle_timeout, connection.stream.read_buf(buf)) => match read {
            Ok(Ok(0)) => Waited::Eof,
            Ok(Ok(_)) => Waited::Read,
            _ => Waited::IdleOrFailed,
        },
        _ = leaving.wait_for(|leaving| *leaving) => Waited::Leaving,
    };
    (connection, waited)
}

enum ReadFailure {
    /// The request is malformed or over a limit: answer it.
    Http(HttpError),
    /// The client started a request and did not finish it in time: answer 408.
    Timeout(&'static str),
    /// The client went away or timed out: nobody to answer.
    Io,
}

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) // ENFILE, EMFILE, ENOBUFS, ENOMEM
}

/// Everything a forked worker process needs, handed over by the master.
pub struct WorkerSpec<N: Net, P: Procs, Y: Python> {
    pub id: usize,
    pub net: N,
    /// The listening socket, inherited.
    pub shared: N::Shared,
    pub procs: P,
    pub python: Y,
    /// The master's app (preforking), if it imported one.
    pub app: Option<Y::App>,
    /// The instance's request count, shared with the master and the other workers.
    pub total_requests: SharedCounter,
    /// Set with --lazy-apps: the worker imports the app itself.
    pub lazy: Option<AppLoader>,
    pub settings: WorkerSettings,
}

/// A worker process from fork to exit: import the app if it is lazy, take the inherited
/// socket, tell the master it is ready, serve on every core; its exit status.
pub async fn worker_process<N, P, Y, L>(spec: WorkerSpec<N, P, Y>, link: L) -> i32
where
    N: Net + Send + Sync + 'static,
    P: Procs + Clone + Send + Sync + 'static,
    Y: Python,
    Y::App: Send + Sync + 'static,
    L: WorkerLink + 'static,
{
    let WorkerSpec {
        id,
        net,
        shared,
        procs,
        mut python,
        app,
        lazy,
        settings,
        total_requests,
    } = spec;
    let app = match (app, lazy) {
        (Some(app), _) => Some(app),
        (None, Some(loader)) => match loader.load(&procs, &mut python) {
            Ok(app) => app,
            Err(status) => return status,
        },
        (None, None) => None,
    };
    // One inherited socket per core: each core's event loop registers its own.
    let mut sockets = vec![shared];
    if settings.threads > 1 {
        let listener = match net.adopt(sockets.pop().expect("one socket")) {
            Ok(listener) => listener,
            Err(e) => {
                procs.log(&format!(
                    "wsgilab: worker {id} cannot use the inherited socket: {e}"
                ));
                return 1;
            }
        };
        for _ in 0..settings.threads {
            match net.share(&listener) {
                Ok(socket) => sockets.push(socket),
                Err(e) => {
                    procs.log(&format!(
                        "wsgilab: worker {id} cannot share its socket with its threads: {e}"
                    ));
                    return 1;
                }
            }
        }
    }
    let sockets: Vec<Mutex<Option<N::Shared>>> =
        sockets.into_iter().map(|s| Mutex::new(Some(s))).collect();
    let cores = sockets.len();
    let state = Arc::new(CoreState {
        net,
        procs: procs.clone(),
        app,
        link,
        settings,
        shared: Arc::new(WorkerShared {
            total: total_requests,
            ..WorkerShared::default()
        }),
        sockets,
        failed: AtomicU64::new(0),
        id,
    });
    state.link.send(WorkerMessage::Ready {
        app_loaded: state.app.is_some(),
    });
    let for_cores = state.clone();
    procs
        .run_cores(cores, move |core| serve_core(for_cores.clone(), core))
        .await;
    if state.failed.load(Ordering::SeqCst) > 0 {
        return 1;
    }
    let retiring = state
        .shared
        .retiring
        .lock()
        .map(|r| r.clone())
        .unwrap_or(None);
    if let Some(reason) = retiring {
        procs.log(&format!("wsgilab: worker {id} retires: {reason}"));
        procs.log(&crate::log::lines::WorkDone { pid: procs.pid() }.to_string());
    }
    0
}

/// What a worker's cores share.
struct CoreState<N: Net, P, A, L> {
    net: N,
    procs: P,
    app: Option<A>,
    link: L,
    settings: WorkerSettings,
    shared: Arc<WorkerShared>,
    sockets: Vec<Mutex<Option<N::Shared>>>,
    failed: AtomicU64,
    id: usize,
}

/// One core's accept-and-serve loop.
async fn serve_core<N, P, A, L>(state: Arc<CoreState<N, P, A, L>>, core: usize)
where
    N: Net,
    P: Procs,
    A: App,
    L: WorkerLink,
{
    let socket = state.sockets.get(core).and_then(|s| s.lock().ok()?.take());
    let listener = match socket.map(|s| state.net.adopt(s)) {
        Some(Ok(listener)) => listener,
        Some(Err(e)) => {
            state.procs.log(&format!(
                "wsgilab: worker {} core {core} cannot use the inherited socket: {e}",
                state.id
            ));
            state.failed.fetch_add(1, Ordering::SeqCst);
            return;
        }
        None => return,
    };
    let worker = Worker::with_master(
        &state.procs,
        state.app.as_ref(),
        &state.link,
        state.settings.clone(),
        core,
        state.shared.clone(),
    );
    if let Err(e) = worker.run(&listener).await {
        state
            .procs
            .log(&format!("accept(): {e} [worker {} core {core}]", state.id));
        state.failed.fetch_add(1, Ordering::SeqCst);
    }
}
