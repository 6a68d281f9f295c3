//! A worker core: accepts connections from the shared listening socket and serves them one
//! request at a time, then parks a kept-alive connection until its next request, so that an
//! idle client does not hold the core.
//!
//! One request goes through the files in the order of the data path: [`connection`] reads and
//! parses it, [`request`] turns it into the app's request (HTTP or uwsgi's protocol), [`respond`]
//! calls the app and writes what it returns, [`report`] tells the master and writes the log
//! line, [`leaving`] says whether the worker takes another. [`process`] is the forked worker
//! process around its cores.
//!
//! Written against the seams only, so the same code serves real sockets with CPython and the
//! simulated network with the modelled app.

mod connection;
mod leaving;
mod process;
mod report;
mod request;
mod respond;

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use futures_util::stream::{FuturesUnordered, StreamExt};
use futures_util::FutureExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::time::timeout;

use crate::http::Limits;
use crate::net::{ByteStream, Listener, Net};
use crate::procs::{Procs, WorkerLink};
use crate::python::App;
use crate::wsgi::ConnectionInfo;

use connection::{Connection, Waited};
use process::Process;

pub use process::{worker_process, NoMaster, WorkerSpec};

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

/// One core (thread) of a worker process: what only this core holds, next to the process it
/// belongs to.
struct Worker<'a, N: Net, P, A, L> {
    process: &'a Process<N, P, A, L>,
    pid: u32,
    /// Which of the worker's threads this is (uWSGI's "core").
    core: usize,
    /// The request log's date and the second it is for: formatted once a second, not once
    /// a request.
    log_ctime: std::cell::RefCell<(u64, String)>,
    /// Set once this core's loop has ended (see [`leaving`]); the parked connections watch it.
    stopped: tokio::sync::watch::Sender<bool>,
}

impl<'a, N: Net, P: Procs, A: App, L: WorkerLink> Worker<'a, N, P, A, L> {
    /// Core `core` of `process`.
    fn new(process: &'a Process<N, P, A, L>, core: usize) -> Self {
        Worker {
            process,
            pid: process.procs.pid(),
            core,
            log_ctime: std::cell::RefCell::new((u64::MAX, String::new())),
            stopped: tokio::sync::watch::channel(false).0,
        }
    }

    /// Whether a response written now closes its connection (see [`leaving`]).
    fn winding_down(&self) -> bool {
        self.process
            .leaving
            .winding_down(*self.stopped.borrow(), self.process.settings.max_requests)
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
    async fn run<Lst>(&self, listener: &Lst) -> io::Result<()>
    where
        Lst: Listener,
        Lst::Stream: ByteStream,
    {
        let settings = &self.process.settings;
        let local = listener.local_addr()?;
        let mut parked = FuturesUnordered::new();
        let mut closing = FuturesUnordered::new();
        let stopped = self.stopped.subscribe();
        // Accepting and serving parked connections take turns, so neither starves the other
        // (and without tokio's random branch order, which would break the simulation's replay).
        let mut accept_first = false;
        // Made once: registering with the stop notification and leaving it again on every turn
        // of the loop cost as much as a request's scoreboard reports.
        let stop_requested = self.process.link.stop_requested();
        tokio::pin!(stop_requested);
        let result = loop {
            if self.process.leaving.is_retiring() {
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
                Wake::Accepted(Ok((stream, peer))) => Connection::new(
                    stream,
                    settings.limits,
                    ConnectionInfo::new(peer, local, settings.multithread, settings.multiprocess),
                ),
                Wake::Accepted(Err(e)) if is_transient_accept_error(&e) => {
                    self.process
                        .procs
                        .log(&format!("accept(): {e} [wsgilab worker]"));
                    // Out of file descriptors or a connection reset while queued: let the
                    // moment pass instead of spinning.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                Wake::Accepted(Err(e)) => break Err(e),
                Wake::Parked((connection, waited)) => match after_wait(connection, waited) {
                    Ok(connection) => connection,
                    Err(close) => {
                        closing.push(self.let_go(close));
                        continue;
                    }
                },
            };
            match self.serve_connection(connection).await {
                AfterResponse::Park(connection) => parked
                    .push(connection.wait_for_request(settings.socket_timeout, stopped.clone())),
                AfterResponse::Close(close) => closing.push(self.let_go(close)),
                AfterResponse::Reset => {}
            }
        };
        // Leaving: the idle parked connections close at once (so their clients send nothing
        // more); one whose next request is already here is served, with `Connection: close`.
        self.stopped.send_replace(true);
        let mut pending = Vec::new();
        while let Some((connection, waited)) = parked.next().await {
            match after_wait(connection, waited) {
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
            self.process.procs.log(&format!(
                "wsgilab: a request from {} arrived on an idle keep-alive connection as this worker was closing it to leave ({}); it was not served: the client sees the connection close and may retry",
                peer.ip(),
                self.process.leaving.reason()
            ));
        }
    }
}

/// A parked connection that woke: back to serving if its next request is coming, else how it
/// closes.
fn after_wait<S>(connection: Connection<S>, waited: Waited) -> Result<Connection<S>, Closing<S>> {
    match waited {
        Waited::Read => Ok(connection),
        Waited::Eof => Ok(connection.at_eof()),
        // Idle past --socket-timeout, or gone: a normal end of a keep-alive connection.
        Waited::IdleOrFailed => Err(Closing::linger(connection)),
        Waited::Leaving => Err(Closing {
            idle_from: Some(connection.info.peer),
            stream: connection.stream,
            client_done: false,
        }),
    }
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
        let eof = connection.eof();
        Closing::new(connection.stream, eof)
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

/// Keep-alive connections one core keeps parked at most; beyond that it stops accepting until
/// one ends (each idle one ends after --socket-timeout at the latest).
const MAX_PARKED_CONNECTIONS: usize = 1000;

fn is_transient_accept_error(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::ConnectionAborted
            | io::ErrorKind::ConnectionReset
            | io::ErrorKind::Interrupted
    ) || matches!(e.raw_os_error(), Some(23 | 24 | 105 | 12)) // ENFILE, EMFILE, ENOBUFS, ENOMEM
}
