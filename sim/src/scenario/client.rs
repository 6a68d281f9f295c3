//! A scenario's client, written once for both worlds: the simulated one (`run`) and the real
//! one (`wsgilab replay --real`). It connects, sends its requests (all at once or slowly), reads
//! each response by its framing, hangs up or gives up when the scenario says so, and writes
//! down what it saw — when it started, when `connect()` returned, when the first byte and the
//! whole response came, and how it ended — as a [`RequestRecord`] and as Client events.

use std::io;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::record::RequestRecord;
use rand_chacha::rand_core::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;

use super::{ClientGroup, Outcome, Scenario};
use crate::trace::EventKind;

/// What a client needs from the world it runs in.
pub trait ClientWorld {
    type Stream: AsyncRead + AsyncWrite + Unpin;

    fn connect(
        &self,
        addr: SocketAddr,
    ) -> impl std::future::Future<Output = io::Result<Self::Stream>>;

    fn local_addr(stream: &Self::Stream) -> Option<SocketAddr>;

    /// Microseconds since the run's start.
    fn now_us(&self) -> u64;

    /// Writes down an event the client saw (on `host`, about connection `conn`).
    fn say(&self, host: &str, conn: Option<&str>, kind: EventKind, text: String);

    /// Where the clients' records are kept.
    fn requests(&self) -> &Mutex<Vec<RequestRecord>>;

    /// `connect()` returned: what this world can add (the real one infers SYN retries).
    fn connected(&self, _record: &RequestRecord) {}

    /// What to add after the scenario's name for the target (the real address, for real).
    fn describe_target(&self, _addr: SocketAddr) -> String {
        String::new()
    }
}

/// One client connection's plan.
#[derive(Clone, Debug)]
pub struct Plan {
    /// `client#3`: the group's name and the client's number in the run.
    pub label: String,
    pub group: ClientGroup,
    /// When it starts, from the start of the run.
    pub start: Duration,
}

/// What the program that already had a busy port does with each connection, in both worlds:
/// reads a request head and answers it with the old code.
pub async fn answer_as_old_version<S: AsyncRead + AsyncWrite + Unpin>(mut stream: S) {
    const ANSWER: &[u8] = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: 22\r\nConnection: close\r\n\r\nthe old version, still";
    let mut head = Vec::new();
    let mut buf = [0u8; 4096];
    while !head.windows(4).any(|w| w == b"\r\n\r\n") {
        match stream.read(&mut buf).await {
            Ok(0) | Err(_) => return,
            Ok(n) => head.extend_from_slice(&buf[..n]),
        }
    }
    let _ = stream.write_all(ANSWER).await;
    let _ = stream.shutdown().await;
}

/// Every client connection of the run, numbered in the order of the file, with its start time
/// (jitter drawn from the seed in that same order). `replay --real` plans the same clients.
pub fn plan_clients(scenario: &Scenario, seed: u64) -> Vec<Plan> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let mut plans = Vec::new();
    for group in &scenario.clients {
        let name = group.name.clone().unwrap_or_else(|| "client".into());
        for i in 0..group.count {
            let jitter = if group.jitter_ms > 0 {
                rng.next_u64() % (group.jitter_ms + 1)
            } else {
                0
            };
            plans.push(Plan {
                label: format!("{name}#{}", plans.len() + 1),
                group: group.clone(),
                start: Duration::from_millis(group.at_ms + u64::from(i) * group.every_ms + jitter),
            });
        }
    }
    plans
}

/// The number in a client's label (`client#3` → 3), for sorting.
pub fn client_number(label: &str) -> u64 {
    label
        .rsplit('#')
        .next()
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

/// The bytes of a client's request: the scenario's `raw`, or a request as curl sends it.
pub fn request_bytes(group: &ClientGroup) -> Vec<u8> {
    if let Some(raw) = &group.raw {
        return raw.chars().map(|c| c as u32 as u8).collect();
    }
    let mut head = format!(
        "{} {} HTTP/1.1\r\nHost: {}:{}\r\nUser-Agent: curl/8.5.0\r\nAccept: */*\r\n",
        group.method, group.path, group.to, group.port
    );
    for (name, value) in &group.headers {
        head.push_str(&format!("{name}: {value}\r\n"));
    }
    if let Some(body) = &group.body {
        head.push_str(&format!("Content-Length: {}\r\n", body.len()));
    }
    head.push_str("\r\n");
    let mut bytes = head.into_bytes();
    if let Some(body) = &group.body {
        bytes.extend_from_slice(body.as_bytes());
    }
    bytes
}

/// One client: connect, send each request, read each response, record what happened.
pub async fn run_connection<W: ClientWorld>(world: &W, plan: &Plan, server: SocketAddr) {
    let mut client = ClientRun::new(world, plan);
    let Some(mut stream) = client.connect(server).await else {
        return;
    };
    let bytes = request_bytes(&plan.group);
    let mut leftover = Vec::new();
    for seq in 1..=plan.group.requests {
        if seq > 1 {
            client.next_request(seq);
        }
        if !client.exchange(&mut stream, &bytes, &mut leftover).await {
            // Dropping the stream closes the connection, as the client's exit would.
            return;
        }
    }
    let _ = stream.shutdown().await;
}

/// One client connection as it goes: its world, its plan, and the record of its current
/// request, kept in the world's list as it changes (so a run cut short still lists it).
struct ClientRun<'w, W: ClientWorld> {
    world: &'w W,
    plan: &'w Plan,
    record: RequestRecord,
    /// The connection, by the client's address, once connected.
    conn: Option<String>,
}

impl<'w, W: ClientWorld> ClientRun<'w, W> {
    fn new(world: &'w W, plan: &'w Plan) -> Self {
        let group = &plan.group;
        let client = ClientRun {
            world,
            plan,
            record: RequestRecord {
                client: plan.label.clone(),
                host: group.host.clone(),
                conn: None,
                seq: 1,
                method: group.method.clone(),
                path: group.path.clone(),
                start_us: world.now_us(),
                connected_us: None,
                sent_us: None,
                first_byte_us: None,
                done_us: None,
                outcome: Outcome::Unfinished,
                detail: "still waiting when the run ended".into(),
            },
            conn: None,
        };
        // Recorded before the attempt, so that a run cut short still lists it.
        client.push();
        client
    }

    fn push(&self) {
        self.world
            .requests()
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(self.record.clone());
    }

    fn update(&self, record: &RequestRecord) {
        let mut requests = self
            .world
            .requests()
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if let Some(slot) = requests
            .iter_mut()
            .find(|r| r.client == record.client && r.seq == record.seq)
        {
            *slot = record.clone();
        }
    }

    fn say(&self, kind: EventKind, text: String) {
        self.world.say(
            &self.plan.group.host,
            self.conn.as_deref(),
            kind,
            format!("{}: {text}", self.plan.label),
        );
    }

    /// The request ended so: said, and written down.
    fn end(&self, record: &RequestRecord) {
        self.say(EventKind::Outcome, record.detail.clone());
        self.update(record);
    }

    /// `connect()`, within the group's timeout; `None` if it failed (the record says how).
    async fn connect(&mut self, server: SocketAddr) -> Option<W::Stream> {
        let (world, group) = (self.world, &self.plan.group);
        let deadline = tokio::time::Instant::now() + Duration::from_millis(group.timeout_ms);
        self.say(
            EventKind::Connect,
            format!(
                "connect() to {}:{}{}",
                group.to,
                group.port,
                world.describe_target(server)
            ),
        );
        let stream = match tokio::time::timeout_at(deadline, world.connect(server)).await {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                finish_failed_connect(&mut self.record, &e, world.now_us());
                self.end(&self.record);
                return None;
            }
            Err(_) => {
                self.record.done_us = Some(world.now_us());
                self.record.outcome = Outcome::GaveUp;
                self.record.detail = format!(
                    "gave up after {} ms: connect() had not returned",
                    group.timeout_ms
                );
                self.end(&self.record);
                return None;
            }
        };
        self.record.conn = W::local_addr(&stream).map(|a| a.to_string());
        self.record.connected_us = Some(world.now_us());
        self.update(&self.record);
        self.conn = self.record.conn.clone();
        world.connected(&self.record);
        self.say(
            EventKind::Connected,
            format!(
                "connect() returned after {}: connected as {}",
                crate::scenario::record::ms(
                    self.record.connected_us.unwrap_or(0) - self.record.start_us
                ),
                self.conn.as_deref().unwrap_or("?")
            ),
        );
        Some(stream)
    }

    /// The next request on a kept-alive connection starts now.
    fn next_request(&mut self, seq: u32) {
        let record = &mut self.record;
        record.seq = seq;
        record.start_us = self.world.now_us();
        record.connected_us = record.connected_us.map(|_| record.start_us);
        record.sent_us = None;
        record.first_byte_us = None;
        record.done_us = None;
        record.outcome = Outcome::Unfinished;
        record.detail = "still waiting when the run ended".into();
        self.push();
    }

    /// Sends the request and reads its response; whether the connection can carry another.
    async fn exchange(
        &mut self,
        stream: &mut W::Stream,
        bytes: &[u8],
        leftover: &mut Vec<u8>,
    ) -> bool {
        let (world, group) = (self.world, &self.plan.group);
        let request_deadline =
            tokio::time::Instant::now() + Duration::from_millis(group.timeout_ms);
        if let Err(e) = send(stream, bytes, group.bytes_per_s).await {
            // The server may have answered before giving up on the request (a 408, a 431):
            // what it sent is still there to read, as curl reads it.
            let mut early = self.record.clone();
            let answered = tokio::time::timeout(
                Duration::from_millis(100),
                read_response(world, stream, leftover, &mut early),
            )
            .await;
            if matches!(answered, Ok(Ok(_))) && early.outcome.is_status() {
                early.detail = format!(
                    "{} (answered before the request was complete; then {} sending the rest)",
                    early.detail,
                    errno_name(&e)
                );
                self.end(&early);
                return false;
            }
            self.record.done_us = Some(world.now_us());
            (self.record.outcome, self.record.detail) = io_outcome(&e, "sending the request");
            self.end(&self.record);
            return false;
        }
        self.record.sent_us = Some(world.now_us());
        self.update(&self.record);
        self.say(
            EventKind::Sent,
            format!(
                "sent {} {} ({} bytes)",
                group.method,
                group.path,
                bytes.len()
            ),
        );
        let give_up_at = match group.disconnect_after_ms {
            Some(ms) => {
                request_deadline.min(tokio::time::Instant::now() + Duration::from_millis(ms))
            }
            None => request_deadline,
        };
        let read = read_response(world, stream, leftover, &mut self.record);
        let answered = tokio::time::timeout_at(give_up_at, read).await;
        let record = &mut self.record;
        match answered {
            Ok(Ok(keep_going)) => {
                self.end(&self.record);
                keep_going
            }
            Ok(Err(e)) => {
                record.done_us = Some(world.now_us());
                if record.first_byte_us.is_some() {
                    record.outcome = Outcome::Cut;
                    record.detail = format!("the response was cut short: {}", errno_name(&e));
                } else {
                    (record.outcome, record.detail) = io_outcome(&e, "waiting for the response");
                }
                self.end(&self.record);
                false
            }
            Err(_) => {
                record.done_us = Some(world.now_us());
                if group.disconnect_after_ms.is_some()
                    && tokio::time::Instant::now() < request_deadline
                {
                    record.outcome = Outcome::ClientClosed;
                    record.detail = format!(
                        "the client hung up {} ms after sending, before the response",
                        group.disconnect_after_ms.unwrap_or(0)
                    );
                } else {
                    record.outcome = Outcome::GaveUp;
                    record.detail = format!(
                        "gave up after {} ms without a complete response",
                        group.timeout_ms
                    );
                }
                self.end(&self.record);
                false
            }
        }
    }
}

fn finish_failed_connect(record: &mut RequestRecord, e: &io::Error, now_us: u64) {
    record.done_us = Some(now_us);
    match e.raw_os_error() {
        Some(111) => {
            record.outcome = Outcome::Refused;
            record.detail = "connect(): ECONNREFUSED (nothing listens there)".into();
        }
        Some(110) => {
            record.outcome = Outcome::Timeout;
            record.detail =
                "connect(): ETIMEDOUT (every SYN retransmission went unanswered)".into();
        }
        _ => {
            record.outcome = Outcome::Reset;
            record.detail = format!("connect(): {}", errno_name(e));
        }
    }
}

fn errno_name(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(104) => "ECONNRESET".into(),
        Some(32) => "EPIPE".into(),
        Some(110) => "ETIMEDOUT".into(),
        Some(111) => "ECONNREFUSED".into(),
        _ => e.to_string(),
    }
}

fn io_outcome(e: &io::Error, during: &str) -> (Outcome, String) {
    match e.raw_os_error() {
        Some(110) => (Outcome::Timeout, format!("ETIMEDOUT {during}")),
        _ => (Outcome::Reset, format!("{} {during}", errno_name(e))),
    }
}

/// Writes the request, all at once or `bytes_per_s` slowly.
async fn send<S: AsyncWrite + Unpin>(
    stream: &mut S,
    bytes: &[u8],
    bytes_per_s: Option<u64>,
) -> io::Result<()> {
    match bytes_per_s {
        None => stream.write_all(bytes).await,
        Some(rate) => {
            let gap = Duration::from_micros(1_000_000 / rate.max(1));
            let first = tokio::time::Instant::now();
            for (i, byte) in bytes.iter().enumerate() {
                // Paced from the first byte, so that a late wake-up does not slow the rest.
                tokio::time::sleep_until(first + gap * i as u32).await;
                stream.write_all(std::slice::from_ref(byte)).await?;
            }
            Ok(())
        }
    }
}

/// Reads one response; whether the connection can carry another request.
async fn read_response<W: ClientWorld>(
    world: &W,
    stream: &mut W::Stream,
    buf: &mut Vec<u8>,
    record: &mut RequestRecord,
) -> io::Result<bool> {
    let mut chunk = vec![0u8; 64 * 1024];
    loop {
        if let Some(done) = complete_response(buf) {
            let (status, reason, length, keep) = done;
            buf.drain(..length);
            record.done_us = Some(world.now_us());
            record.outcome = Outcome::Status(status);
            record.detail = format!("{status} {reason}, {length} bytes");
            return Ok(keep);
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            record.done_us = Some(world.now_us());
            if buf.is_empty() {
                record.outcome = Outcome::NoResponse;
                record.detail = "the connection closed without a response".into();
            } else if let Some((status, reason)) = status_of(buf) {
                // A response without a length ends with the connection.
                if framing_is_eof(buf) {
                    record.outcome = Outcome::Status(status);
                    record.detail = format!("{status} {reason}, {} bytes", buf.len());
                } else {
                    record.outcome = Outcome::Cut;
                    record.detail =
                        format!("{status} {reason} cut short after {} bytes", buf.len());
                }
                buf.clear();
            } else {
                record.outcome = Outcome::Cut;
                record.detail = format!("{} bytes that are not a whole response head", buf.len());
                buf.clear();
            }
            return Ok(false);
        }
        if record.first_byte_us.is_none() {
            record.first_byte_us = Some(world.now_us());
        }
        buf.extend_from_slice(&chunk[..n]);
    }
}

fn status_of(buf: &[u8]) -> Option<(u16, String)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    match response.parse(buf) {
        Ok(httparse::Status::Complete(_)) => Some((
            response.code.unwrap_or(0),
            response.reason.unwrap_or("").to_string(),
        )),
        _ => None,
    }
}

fn framing_is_eof(buf: &[u8]) -> bool {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    if response.parse(buf).is_err() {
        return false;
    }
    !response.headers.iter().any(|h| {
        h.name.eq_ignore_ascii_case("content-length")
            || (h.name.eq_ignore_ascii_case("transfer-encoding")
                && String::from_utf8_lossy(h.value)
                    .to_ascii_lowercase()
                    .contains("chunked"))
    })
}

/// A whole response at the start of `buf`: (status, reason, its length, keep-alive).
pub fn complete_response(buf: &[u8]) -> Option<(u16, String, usize, bool)> {
    let mut headers = [httparse::EMPTY_HEADER; 64];
    let mut response = httparse::Response::new(&mut headers);
    let head_len = match response.parse(buf) {
        Ok(httparse::Status::Complete(n)) => n,
        _ => return None,
    };
    let status = response.code.unwrap_or(0);
    let reason = response.reason.unwrap_or("").to_string();
    let mut length = None;
    let mut chunked = false;
    let mut close = response.version == Some(0);
    for h in response.headers.iter() {
        let value = String::from_utf8_lossy(h.value).trim().to_ascii_lowercase();
        if h.name.eq_ignore_ascii_case("content-length") {
            length = value.parse::<usize>().ok();
        } else if h.name.eq_ignore_ascii_case("transfer-encoding") {
            chunked = value.contains("chunked");
        } else if h.name.eq_ignore_ascii_case("connection") {
            close = value.contains("close");
        }
    }
    if (100..200).contains(&status) {
        return None;
    }
    let body_len = if chunked {
        chunked_length(&buf[head_len..])?
    } else if let Some(length) = length {
        if buf.len() < head_len + length {
            return None;
        }
        length
    } else if status == 204 || status == 304 {
        0
    } else {
        // Ends with the connection.
        return None;
    };
    Some((status, reason, head_len + body_len, !close))
}

/// The length of a complete chunked body at the start of `body`.
fn chunked_length(body: &[u8]) -> Option<usize> {
    let mut at = 0;
    loop {
        let line_end = body[at..].windows(2).position(|w| w == b"\r\n")? + at;
        let size_text = String::from_utf8_lossy(&body[at..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next()?.trim(), 16).ok()?;
        at = line_end + 2;
        if size == 0 {
            // Trailers, then an empty line.
            loop {
                let end = body[at..].windows(2).position(|w| w == b"\r\n")? + at;
                let empty = end == at;
                at = end + 2;
                if empty {
                    return Some(at);
                }
            }
        }
        if body.len() < at + size + 2 {
            return None;
        }
        at += size + 2;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn responses_are_framed_by_length_chunks_or_not_at_all() {
        let r = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nhiHTTP/1.1";
        assert_eq!(complete_response(r), Some((200, "OK".into(), 40, true)));
        let r = b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n2\r\nhi\r\n0\r\n\r\n";
        assert_eq!(
            complete_response(r).map(|c| (c.2, c.3)),
            Some((r.len(), false))
        );
        assert_eq!(complete_response(b"HTTP/1.1 200 OK\r\n\r\nabc"), None);
        assert!(framing_is_eof(b"HTTP/1.1 200 OK\r\n\r\nabc"));
        assert_eq!(
            complete_response(b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nab"),
            None
        );
    }
}
