//! From a connection to the app's requests, in either of the socket's protocols — HTTP
//! (`--http-socket`, `--http11-socket`: a head, a body, maybe more requests on the same
//! connection) or uwsgi's (`--socket`: one packet from a proxy that already parsed the HTTP
//! request, then the close) — and [`Worker::serve_request`], what both do with each request.

use std::net::SocketAddr;

use bytes::BytesMut;
use tokio::io::AsyncReadExt;
use tokio::time::{timeout, Instant};

use super::connection::Connection;
use super::respond::Outcome;
use super::{AfterResponse, Closing, Worker};
use crate::http::response;
use crate::http::{BodyFraming, HttpError, RequestHead};
use crate::net::{ByteStream, Net};
use crate::procs::{Procs, WorkerLink};
use crate::python::{App, WsgiRequest};
use crate::uwsgi_protocol;
use crate::wsgi::{build_request, ConnectionInfo};

impl<N: Net, P: Procs, A: App, L: WorkerLink> Worker<'_, N, P, A, L> {
    /// Serves the requests of one connection, in order, until it is idle between two requests
    /// (it is then parked) or done (it is then closed).
    pub(super) async fn serve_connection<S>(
        &self,
        mut connection: Connection<S>,
    ) -> AfterResponse<S>
    where
        S: ByteStream,
    {
        let settings = &self.process.settings;
        if settings.uwsgi_protocol {
            return self
                .serve_uwsgi_connection(connection.stream, &connection.info)
                .await;
        }
        // The client said it sends nothing more (`Connection: close`) and nothing more came:
        // no lingering needed before the close.
        let mut client_done = false;
        loop {
            let mut head = match connection.next_head(settings, &self.process.link).await {
                Ok(Some(head)) => head,
                Ok(None) => break,
                Err(failure) => {
                    self.answer_failure(&mut connection.stream, failure, &connection.info)
                        .await;
                    break;
                }
            };
            let started = Instant::now();
            if head.expect_continue && !matches!(head.framing, BodyFraming::Empty) {
                let sent = self
                    .write_all(&mut connection.stream, &[response::CONTINUE])
                    .await;
                if sent.is_err() {
                    break;
                }
            }
            let declared = match head.framing {
                BodyFraming::Length(n) => n,
                _ => 0,
            };
            let body = match connection.read_body(settings, declared).await {
                Ok(body) => body,
                Err(failure) => {
                    self.answer_failure(&mut connection.stream, failure, &connection.info)
                        .await;
                    break;
                }
            };
            let request = build_request(&mut head, body, &connection.info);
            let outcome = self
                .serve_request(
                    &mut connection.stream,
                    &head,
                    request,
                    &connection.info,
                    started,
                )
                .await;
            if outcome.reset {
                connection.stream.reset();
                return AfterResponse::Reset;
            }
            if !outcome.keep_alive || self.process.leaving.is_retiring() {
                client_done = !head.keep_alive && connection.is_between_requests();
                break;
            }
            if connection.ready_to_park() {
                return AfterResponse::Park(connection);
            }
        }
        let client_done = connection.eof() || client_done;
        AfterResponse::Close(Closing::new(connection.stream, client_done))
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
        let settings = &self.process.settings;
        let (packet, mut buf) = match self.read_uwsgi_packet(&mut stream).await {
            Ok(read) => read,
            Err(client_done) => return AfterResponse::Close(Closing::new(stream, client_done)),
        };
        let head = match packet.request_head() {
            Ok(head) => head,
            Err(error) => {
                self.process.procs.log(&error.to_string());
                return AfterResponse::Close(Closing::new(stream, false));
            }
        };
        let started = Instant::now();
        let length = match head.framing {
            BodyFraming::Length(n) => n,
            _ => 0,
        };
        if settings.limits.max_body.is_some_and(|max| length > max) {
            self.reject(&mut stream, &HttpError::BodyTooLarge, conn)
                .await;
            return AfterResponse::Close(Closing::new(stream, false));
        }
        // What followed the packet in `buf` is the body's beginning.
        while (buf.len() as u64) < length {
            match timeout(settings.socket_timeout, stream.read_buf(&mut buf)).await {
                Ok(Ok(n)) if n > 0 => {}
                _ => return AfterResponse::Close(Closing::new(stream, true)),
            }
        }
        buf.truncate(length as usize);
        let (request, conn) = proxied_request(packet, buf, conn);
        let outcome = self
            .serve_request(&mut stream, &head, request, &conn, started)
            .await;
        if outcome.reset {
            stream.reset();
            return AfterResponse::Reset;
        }
        AfterResponse::Close(Closing::new(stream, false))
    }

    /// Reads a uwsgi packet (the request's environ): the packet, and what came after it.
    /// `Err(client_done)` when there is none, the problem logged.
    async fn read_uwsgi_packet<S>(
        &self,
        stream: &mut S,
    ) -> Result<(uwsgi_protocol::Packet, BytesMut), bool>
    where
        S: ByteStream,
    {
        let procs = &self.process.procs;
        let max = self.process.settings.limits.max_head;
        let mut buf = BytesMut::with_capacity(max.min(16 * 1024) + 4);
        loop {
            match uwsgi_protocol::parse_packet(&buf, max) {
                Ok(Some((packet, used))) => return Ok((packet, buf.split_off(used))),
                Ok(None) => {
                    let wait = self.process.settings.socket_timeout;
                    match timeout(wait, stream.read_buf(&mut buf)).await {
                        Ok(Ok(n)) if n > 0 => continue,
                        _ => return Err(true),
                    }
                }
                Err(error) => {
                    procs.log(&error.to_string());
                    if buf.starts_with(b"GET ")
                        || buf.starts_with(b"POST ")
                        || buf.starts_with(b"HEAD ")
                    {
                        procs.log("hint: an HTTP client is talking to a uwsgi socket (--socket): browsers and curl need --http-socket; --socket is for nginx's uwsgi_pass");
                    }
                    return Err(false);
                }
            }
        }
    }

    /// One request read whole, in either protocol: tell the master, call the app and write its
    /// response, count it, log it, tell the master again (which may decide that the worker
    /// retires). `started`: when its head was read.
    async fn serve_request<S>(
        &self,
        stream: &mut S,
        head: &RequestHead,
        request: WsgiRequest,
        conn: &ConnectionInfo,
        started: Instant,
    ) -> Outcome
    where
        S: ByteStream,
    {
        let process = self.process;
        let vars = (request.vars.len(), request.vars_size());
        self.started(head, conn);
        // A proxy on the uwsgi protocol reads the body up to the close: no chunks, and the
        // connection closes after each response.
        let (keep_alive, chunked_ok) = if process.settings.uwsgi_protocol {
            (false, false)
        } else {
            // Counted as requests begin (see `Leaving::begin`); a uwsgi-protocol connection
            // is never kept alive, so its requests need no such count.
            process.leaving.begin();
            (process.settings.keep_alive && head.keep_alive, true)
        };
        let outcome = self
            .respond(stream, head, request, keep_alive, chunked_ok)
            .await;
        process.leaving.answered();
        process.total.add(1);
        self.log_request(head, conn, vars, &outcome, started);
        self.finished(&outcome, started);
        outcome
    }
}

/// The app's request from a uwsgi packet and its body, and the connection as the proxy names
/// it: behind a proxy the client is the one the proxy names, for the log as for the app.
fn proxied_request(
    packet: uwsgi_protocol::Packet,
    body: BytesMut,
    conn: &ConnectionInfo,
) -> (WsgiRequest, ConnectionInfo) {
    let url_scheme = packet.url_scheme();
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
    let conn = match client {
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
    (request, conn)
}
