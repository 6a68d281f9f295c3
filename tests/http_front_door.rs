//! The HTTP front door over real sockets: gunicorn's request corpus and the request-smuggling
//! and framing rules of RFC 9112, sent to the real `wsgilab serve --http11-socket` with
//! `tests/apps/echoapp.py` behind it, which answers with a JSON document of exactly what reached
//! it. Every byte string is sent whole, one byte per write (TCP_NODELAY on) and in three
//! pseudo-random chunkings: however it is split, a valid request must reach the app exactly as
//! gunicorn expects (every pipelined request, in order), and an invalid one must get a 4xx/5xx
//! status line and then the close — never a 200, never a hang.
//!
//! The parser's own corpus test (server/src/http/corpus_tests.rs) decides which cases wsgilab
//! deliberately answers differently from gunicorn, and why; the tables below repeat those
//! decisions by name, with the reasons, for the real server.

mod common;

use std::collections::BTreeMap;
use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::path::PathBuf;
use std::time::{Duration, Instant};

use common::server::{apps_dir, Server};
use serde_json::Value;

/// How long a read may wait for the server: a hang shows up as this timeout. The servers run
/// with a --socket-timeout well above it, so a server that forgets to close cannot hide behind
/// its own idle timeout.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests shorter than this are sent with a pause after each piece, so that the server
/// really reads them piece by piece (without one, a fast client's single-byte writes pile up in
/// the socket and are read dozens at a time). Longer ones are still written a piece at a time,
/// just without the pauses, to keep the whole file fast.
const PACED_BELOW: usize = 2048;
const PACE: Duration = Duration::from_micros(50);

/// The statuses a refused request may get.
const REFUSALS: &[u16] = &[400, 413, 414, 431, 501, 505];

// ---------------------------------------------------------------------------------------------
// The corpus tables. The first four repeat server/src/http/corpus_tests.rs.
// ---------------------------------------------------------------------------------------------

/// Cases run under gunicorn options that wsgilab has no equivalent for (as in the parser's
/// corpus test, except valid/040: see [`RUN_THOUGH_SKIPPED_BY_THE_PARSER_TEST`]).
const SKIPPED: &[(&str, &str)] = &[
    ("valid/028", "strip_header_spaces: gunicorn's lenient mode; wsgilab always refuses whitespace before ':' (invalid/020)"),
    ("valid/031compat", "casefold_http_method: gunicorn upper-cases the method; wsgilab passes it on as sent"),
    ("valid/compat_obs_fold", "permit_obsolete_folding: wsgilab always refuses obs-fold (RFC 9112 §5.2; invalid/obs_fold_01)"),
    ("valid/compat_obs_fold_huge", "permit_obsolete_folding: wsgilab always refuses obs-fold (RFC 9112 §5.2)"),
    ("valid/pp_01", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("valid/pp_02", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("valid/pp_03", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("valid/pp_04", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("valid/pp_05", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("invalid/pp_01", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("invalid/pp_02", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("invalid/pp_03", "proxy_protocol: wsgilab does not speak the PROXY protocol"),
    ("invalid/010", "limit_request_field_size=10: a per-field limit; wsgilab has one limit for the whole head (--buffer-size)"),
    ("invalid/011", "limit_request_fields=2: wsgilab's field count limit is fixed (100)"),
    ("invalid/012", "limit_request_field_size=98: a per-field limit; wsgilab has one limit for the whole head (--buffer-size)"),
    ("invalid/013", "limit_request_field_size=14 with permit_obsolete_folding: neither exists in wsgilab"),
    ("invalid/019", "forwarded_allow_ips: X-Forwarded-* consistency is not the parser's business"),
    ("invalid/040", "header_map=refuse: wsgilab keeps names with '_' in the parser and drops them from the environ (see valid/040)"),
    ("invalid/chunked_07", "header_map=refuse: wsgilab keeps names with '_' in the parser and drops them from the environ (see valid/040)"),
];

/// Skipped by the parser's corpus test, but checkable here, where the environ is what counts.
const RUN_THOUGH_SKIPPED_BY_THE_PARSER_TEST: &[(&str, &str)] = &[
    ("valid/040", "gunicorn's default header_map=drop discards names with '_'; wsgilab's parser keeps them, and its environ drops them, so the app sees what gunicorn's would"),
];

/// Where wsgilab answers differently from gunicorn, on the RFC's side: (name, the status it
/// answers, or `None` where it accepts what gunicorn refuses, why).
const RFC_DISAGREEMENTS: &[(&str, Option<u16>, &str)] = &[
    ("valid/009", Some(400), "Transfer-Encoding with Content-Length: refused (RFC 9112 §6.1 allows it; the classic smuggling setup)"),
    ("valid/025", Some(501), "gzip transfer coding: wsgilab does not decode it, so cannot find the body (RFC 9112 §6.1)"),
    ("valid/025_line", Some(501), "gzip transfer coding: not decoded by wsgilab (RFC 9112 §6.1)"),
    ("valid/rfc9112_smuggle_gzip_chunked_01", Some(501), "gzip transfer coding: not decoded by wsgilab (RFC 9112 §6.1)"),
    ("valid/029", Some(501), "identity is not a transfer coding since RFC 7230 (reserved in the registry)"),
    ("valid/030", Some(501), "identity is not a transfer coding since RFC 7230 (reserved in the registry)"),
    ("valid/rfc9112_smuggle_te_identity_chunked_01", Some(501), "identity is not a transfer coding since RFC 7230 (reserved in the registry)"),
    ("valid/rfc9112_target_authority_connect_01", Some(501), "CONNECT: wsgilab is not a proxy and opens no tunnels (RFC 9110 §9.3.6, §15.6.2)"),
    ("valid/rfc9112_target_authority_ipv6_01", Some(501), "CONNECT: wsgilab is not a proxy and opens no tunnels (RFC 9110 §9.3.6, §15.6.2)"),
    ("valid/099", Some(400), "the body is 8599 of the 17914 bytes its Content-Length announces: an incomplete request (RFC 9112 §8); see REFUSED_ONLY_AT_EOF"),
    ("invalid/003c", None, "'-bl' is a valid RFC 9110 method token; whether the app knows it is the app's business (405/501)"),
    ("invalid/rfc9112_smuggle_cl_list_form_01", None, "'Content-Length: 5, 5' may be accepted as 5 (RFC 9110 §8.6), and wsgilab does"),
];

/// HTTP/1.1 cases without a Host header: refused with 400, as RFC 9112 §3.2 requires (after
/// answering any HTTP/1.0 request pipelined before). Each is then sent again with
/// `Host: wsgilab.test` added to every request line, so the rest of gunicorn's expectation is
/// checked too. The valid ones are the parser test's MISSING_HOST; invalid/003c is there too
/// because the parser test checks it with the Host rule off.
const MISSING_HOST: &[&str] = &[
    "valid/004",
    "valid/005",
    "valid/006",
    "valid/007",
    "valid/009",
    "valid/010",
    "valid/011",
    "valid/012",
    "valid/013",
    "valid/014",
    "valid/018",
    "valid/021",
    "valid/022",
    "valid/023",
    "valid/025",
    "valid/025_line",
    "valid/029",
    "valid/030",
    "valid/031",
    "valid/031compat2",
    "valid/100",
    "invalid/003c",
];

/// The Host line added to the [`MISSING_HOST`] cases.
const ADDED_HOST: &str = "wsgilab.test";

/// Invalid only under gunicorn's default per-line limits (request line 4094, field 8190): with
/// `--buffer-size 32768` wsgilab would accept them, so they go to a second server that keeps
/// the default `--buffer-size` (4096), as the parser's corpus test runs them.
const DEFAULT_BUFFER_SIZE: &[(&str, &str)] = &[
    (
        "invalid/006",
        "a 4112-byte request line: over the default --buffer-size 4096 (414)",
    ),
    (
        "invalid/007",
        "an 8203-byte header line: over the default --buffer-size 4096",
    ),
    (
        "invalid/008",
        "8189- and 4108-byte header lines: over the default --buffer-size 4096",
    ),
    (
        "invalid/017",
        "an 8189-byte header line: over the default --buffer-size 4096",
    ),
    (
        "invalid/limit_header_default_01",
        "limit_request_field_size=0 is gunicorn's default; wsgilab's is --buffer-size 4096",
    ),
];

/// Requests whose fault shows only when the bytes end (a head or a chunked body cut short): the
/// client half-closes after sending, and the parser refuses them at that EOF. The server must
/// close at once and never answer 200 (RFC 9112 §8 permits closing without a response);
/// `an_incomplete_request_then_half_close_gets_400` holds wsgilab's stricter behaviour: a 400.
const REFUSED_ONLY_AT_EOF: &[(&str, &str)] = &[
    (
        "invalid/001",
        "the head ends mid-field ('baz' with no CRLF)",
    ),
    (
        "invalid/rfc9112_chunked_missing_final_crlf_01",
        "the last chunk has no empty line after it",
    ),
    (
        "valid/099",
        "the body stops 9315 bytes short of its Content-Length",
    ),
];

// ---------------------------------------------------------------------------------------------
// Servers and a raw client.
// ---------------------------------------------------------------------------------------------

/// `wsgilab serve --http11-socket ... --wsgi-file echoapp.py` with a long --socket-timeout.
fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--wsgi-file", "echoapp.py", "--socket-timeout", "30"];
    args.extend_from_slice(extra);
    Server::start(&apps_dir(), &args)
}

/// How the bytes of a request are cut into writes.
#[derive(Clone, Copy, Debug)]
enum Split {
    Whole,
    /// One write per byte.
    Bytewise,
    /// Pseudo-random pieces, from this seed.
    Random(u64),
}

/// SplitMix64: a tiny PRNG whose stream is fixed by its definition, so seeds reproduce.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// FNV-1a: a case's name as a seed.
fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

fn pieces(raw: &[u8], split: Split) -> Vec<&[u8]> {
    match split {
        Split::Whole => vec![raw],
        Split::Bytewise => raw.chunks(1).collect(),
        Split::Random(seed) => {
            let mut rng = SplitMix64(seed);
            let mut out = Vec::new();
            let mut rest = raw;
            while !rest.is_empty() {
                // Mostly short pieces, sometimes long ones, so cuts land everywhere.
                let len = if rng.below(4) == 0 {
                    1 + rng.below(64)
                } else {
                    1 + rng.below(6)
                };
                let (piece, tail) = rest.split_at(len.min(rest.len()));
                out.push(piece);
                rest = tail;
            }
            out
        }
    }
}

/// How reading from the server ended.
#[derive(Debug, Clone, PartialEq, Eq)]
enum End {
    /// EOF: the server closed the connection.
    Closed,
    /// The server reset the connection (after every byte it sent had been read).
    Reset,
    /// Nothing arrived for [`READ_TIMEOUT`]: the server hangs.
    TimedOut,
    Error(String),
}

/// What one connection got back.
#[derive(Debug)]
struct Exchange {
    received: Vec<u8>,
    end: End,
}

/// Sends `raw` in `split`'s pieces on a new connection (TCP_NODELAY, one write per piece, paced
/// below [`PACED_BELOW`]) while
/// another thread reads everything the server sends until it closes, resets or falls silent.
/// A write that fails (the server refused and closed) ends the sending. With `half_close` the
/// client shuts down its sending side after the last byte, as a client with nothing more to send
/// may; without it, the server has to decide on its own to close.
fn exchange(addr: &str, raw: &[u8], split: Split, half_close: bool) -> Exchange {
    let mut stream = TcpStream::connect(addr).expect("connect to wsgilab");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let mut reader = stream.try_clone().expect("clone the stream");
    reader
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    let reading = std::thread::spawn(move || {
        let mut received = Vec::new();
        let mut buf = [0u8; 16384];
        let end = loop {
            match reader.read(&mut buf) {
                Ok(0) => break End::Closed,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break End::TimedOut
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break End::Error(e.to_string()),
            }
        };
        Exchange { received, end }
    });
    let paced = raw.len() < PACED_BELOW && !matches!(split, Split::Whole);
    for piece in pieces(raw, split) {
        if stream.write_all(piece).is_err() {
            break;
        }
        if paced {
            std::thread::sleep(PACE);
        }
    }
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let result = reading.join().expect("reader thread");
    drop(stream);
    result
}

/// A response as it came over the wire.
#[derive(Debug)]
struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits everything received into responses (interim 1xx ones dropped). Every response the
/// echo app or the server's refusals give carries a Content-Length.
fn parse_responses(mut bytes: &[u8]) -> Result<Vec<Response>, String> {
    let mut responses = Vec::new();
    while !bytes.is_empty() {
        let Some(end) = bytes.windows(4).position(|w| w == b"\r\n\r\n") else {
            return Err(format!(
                "an incomplete response head: {:?}",
                String::from_utf8_lossy(bytes)
            ));
        };
        let head = std::str::from_utf8(&bytes[..end])
            .map_err(|_| format!("a non-UTF-8 response head: {:?}", &bytes[..end]))?;
        bytes = &bytes[end + 4..];
        let mut lines = head.split("\r\n");
        let status_line = lines.next().unwrap_or_default();
        let status = status_line
            .strip_prefix("HTTP/1.1 ")
            .and_then(|rest| rest.get(..3))
            .and_then(|code| code.parse::<u16>().ok())
            .ok_or_else(|| format!("not a status line: {status_line:?}"))?;
        let mut headers = Vec::new();
        for line in lines {
            let (name, value) = line
                .split_once(':')
                .ok_or_else(|| format!("not a header line: {line:?}"))?;
            headers.push((name.to_owned(), value.trim().to_owned()));
        }
        let mut response = Response {
            status,
            headers,
            body: Vec::new(),
        };
        if (100..200).contains(&status) {
            continue;
        }
        let length: usize = response
            .header("content-length")
            .ok_or_else(|| format!("a {status} response without Content-Length: {head:?}"))?
            .parse()
            .map_err(|_| format!("a bad Content-Length in {head:?}"))?;
        if bytes.len() < length {
            return Err(format!(
                "a {status} response cut short: {} of {length} body bytes",
                bytes.len()
            ));
        }
        response.body = bytes[..length].to_vec();
        bytes = &bytes[length..];
        responses.push(response);
    }
    Ok(responses)
}

/// The corpus and JSON carry bytes as latin-1 strings: one char per byte.
fn latin1(text: &str) -> Result<Vec<u8>, String> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("{c:?} is not latin-1")))
        .collect()
}

/// Percent-decoding as WSGI servers do for PATH_INFO (%2F too; invalid escapes kept as sent).
fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let hex = |b: Option<&u8>| b.and_then(|b| (*b as char).to_digit(16)).map(|d| d as u8);
    let mut out = Vec::with_capacity(raw.len());
    let mut i = 0;
    while i < raw.len() {
        if raw[i] == b'%' {
            if let (Some(high), Some(low)) = (hex(raw.get(i + 1)), hex(raw.get(i + 2))) {
                out.push(high << 4 | low);
                i += 3;
                continue;
            }
        }
        out.push(raw[i]);
        i += 1;
    }
    out
}

// ---------------------------------------------------------------------------------------------
// What the app must see.
// ---------------------------------------------------------------------------------------------

/// One request as echoapp.py must report it.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Seen {
    method: Vec<u8>,
    uri: Vec<u8>,
    path: Vec<u8>,
    query: Vec<u8>,
    protocol: Vec<u8>,
    content_type: Option<Vec<u8>>,
    content_length: Option<Vec<u8>>,
    headers: BTreeMap<String, Vec<u8>>,
    body: Vec<u8>,
}

impl Seen {
    /// What the app reported, from its JSON.
    fn from_json(json: &Value) -> Result<Seen, String> {
        let text = |key: &str| -> Result<Vec<u8>, String> {
            latin1(
                json[key]
                    .as_str()
                    .ok_or_else(|| format!("{key} missing in {json}"))?,
            )
        };
        let optional = |key: &str| -> Result<Option<Vec<u8>>, String> {
            match &json[key] {
                Value::Null => Ok(None),
                Value::String(s) => latin1(s).map(Some),
                other => Err(format!("{key} is {other}")),
            }
        };
        let headers = json["headers"]
            .as_object()
            .ok_or_else(|| format!("headers missing in {json}"))?
            .iter()
            .map(|(k, v)| Ok((k.clone(), latin1(v.as_str().ok_or("header value")?)?)))
            .collect::<Result<_, String>>()?;
        Ok(Seen {
            method: text("method")?,
            uri: text("uri")?,
            path: text("path")?,
            query: text("query")?,
            protocol: text("protocol")?,
            content_type: optional("content_type")?,
            content_length: optional("content_length")?,
            headers,
            body: text("body")?,
        })
    }

    /// What the app must see for one request of gunicorn's expectation, per PEP 3333 and the
    /// server's environ rules: header names with '_' are dropped, repeated headers are joined
    /// with ", " ("; " for Cookie), Content-Type and Content-Length are CGI variables, and
    /// CONTENT_LENGTH is the length of the body as read (chunked bodies included).
    fn from_expectation(expected: &Value, extra_header: Option<(&str, &str)>) -> Seen {
        let text = |key: &str| latin1(expected[key].as_str().unwrap_or("")).unwrap();
        let body = text("body");
        let mut headers: BTreeMap<String, Vec<u8>> = BTreeMap::new();
        let mut content_type = None;
        let mut has_content_length = false;
        let fields = expected["headers"].as_array().expect("headers");
        let extra = extra_header.map(|(n, v)| serde_json::json!([n, v]));
        for field in fields.iter().chain(extra.as_ref()) {
            let name = field[0].as_str().unwrap().to_ascii_uppercase();
            let value = latin1(field[1].as_str().unwrap()).unwrap();
            if name.contains('_') {
                continue;
            }
            if name == "CONTENT-TYPE" {
                content_type.get_or_insert(value);
                continue;
            }
            if name == "CONTENT-LENGTH" {
                has_content_length = true;
                continue;
            }
            let key = format!("HTTP_{}", name.replace('-', "_"));
            match headers.get_mut(&key) {
                Some(joined) => {
                    joined.extend_from_slice(if key == "HTTP_COOKIE" { b"; " } else { b", " });
                    joined.extend_from_slice(&value);
                }
                None => {
                    headers.insert(key, value);
                }
            }
        }
        let version = &expected["version"];
        Seen {
            method: text("method"),
            uri: text("uri"),
            // gunicorn's path is the raw path, null for the asterisk-form.
            path: match expected["path"].as_str() {
                Some(path) => percent_decode(&latin1(path).unwrap()),
                None => b"*".to_vec(),
            },
            query: text("query"),
            protocol: format!("HTTP/{}.{}", version[0], version[1]).into_bytes(),
            content_type,
            content_length: (has_content_length || !body.is_empty())
                .then(|| body.len().to_string().into_bytes()),
            headers,
            body,
        }
    }
}

/// A readable difference between what the app saw and what it should have.
fn diff(seen: &Seen, want: &Seen) -> String {
    let show = |b: &[u8]| format!("{:?}", String::from_utf8_lossy(b));
    let opt = |b: &Option<Vec<u8>>| b.as_deref().map_or("None".to_owned(), show);
    let mut out = Vec::new();
    let mut field = |name: &str, a: String, b: String| {
        if a != b {
            out.push(format!("{name}: app saw {a}, expected {b}"));
        }
    };
    field("method", show(&seen.method), show(&want.method));
    field("REQUEST_URI", show(&seen.uri), show(&want.uri));
    field("PATH_INFO", show(&seen.path), show(&want.path));
    field("QUERY_STRING", show(&seen.query), show(&want.query));
    field(
        "SERVER_PROTOCOL",
        show(&seen.protocol),
        show(&want.protocol),
    );
    field(
        "CONTENT_TYPE",
        opt(&seen.content_type),
        opt(&want.content_type),
    );
    field(
        "CONTENT_LENGTH",
        opt(&seen.content_length),
        opt(&want.content_length),
    );
    let headers = |h: &BTreeMap<String, Vec<u8>>| {
        h.iter()
            .map(|(k, v)| format!("{k}={}", show(v)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    field("HTTP_*", headers(&seen.headers), headers(&want.headers));
    field("body", show(&seen.body), show(&want.body));
    out.join("; ")
}

// ---------------------------------------------------------------------------------------------
// Checking one exchange.
// ---------------------------------------------------------------------------------------------

/// What a byte string must get.
#[derive(Debug, Clone)]
enum Expect {
    /// Each request reaches the app as given, answered 200 in order, then the close (the
    /// client half-closes).
    Answers(Vec<Seen>),
    /// gunicorn refuses it, wsgilab accepts it (RFC_DISAGREEMENTS): one 200 from the app.
    Accepted,
    /// The requests in `after` answered as with `Answers` (HTTP/1.0 ones pipelined before an
    /// HTTP/1.1 one without Host), then one response with one of `allowed`, with
    /// `Connection: close`, then the close, which the server must do on its own (the client does
    /// not half-close).
    Refused { after: Vec<Seen>, allowed: Vec<u16> },
    /// [`REFUSED_ONLY_AT_EOF`]: after the client's half-close, the close, with no response or
    /// one refusal.
    RefusedAtEof,
}

impl Expect {
    fn refused(allowed: &[u16]) -> Expect {
        Expect::Refused {
            after: Vec::new(),
            allowed: allowed.to_vec(),
        }
    }

    fn half_close(&self) -> bool {
        !matches!(self, Expect::Refused { .. })
    }
}

/// Compares the app's answers with what it must have seen, in order.
fn check_answers(responses: &[Response], wanted: &[Seen]) -> Result<(), String> {
    for (i, (response, want)) in responses.iter().zip(wanted).enumerate() {
        if response.status != 200 {
            return Err(format!("request {i}: answered {}", response.status));
        }
        let json: Value = serde_json::from_slice(&response.body)
            .map_err(|e| format!("request {i}: not JSON ({e})"))?;
        let seen = Seen::from_json(&json)?;
        if &seen != want {
            return Err(format!("request {i}: {}", diff(&seen, want)));
        }
    }
    Ok(())
}

fn describe_end(exchange: &Exchange) -> String {
    format!(
        "{:?} after {} bytes: {:?}",
        exchange.end,
        exchange.received.len(),
        String::from_utf8_lossy(&exchange.received[..exchange.received.len().min(300)])
    )
}

/// Checks an exchange; on success, a short summary (the statuses) that must be the same for
/// every split of the same bytes.
fn check(exchange: &Exchange, expect: &Expect) -> Result<String, String> {
    let responses = parse_responses(&exchange.received)
        .map_err(|e| format!("{e} ({})", describe_end(exchange)))?;
    let statuses: Vec<u16> = responses.iter().map(|r| r.status).collect();
    let summary = format!("{statuses:?}");
    match expect {
        Expect::Answers(wanted) => {
            if exchange.end != End::Closed {
                return Err(format!(
                    "not closed after the half-close: {}",
                    describe_end(exchange)
                ));
            }
            if statuses.len() != wanted.len() || statuses.iter().any(|&s| s != 200) {
                return Err(format!(
                    "expected {} answers 200, got {statuses:?} ({})",
                    wanted.len(),
                    describe_end(exchange)
                ));
            }
            check_answers(&responses, wanted)?;
        }
        Expect::Accepted => {
            if exchange.end != End::Closed || statuses != [200] {
                return Err(format!(
                    "expected one 200 then the close: {}",
                    describe_end(exchange)
                ));
            }
        }
        Expect::Refused { after, allowed } => {
            if !matches!(exchange.end, End::Closed | End::Reset) {
                return Err(format!(
                    "expected one of {allowed:?} then the close: {}",
                    describe_end(exchange)
                ));
            }
            match responses.split_last() {
                Some((last, before))
                    if before.len() == after.len() && allowed.contains(&last.status) =>
                {
                    check_answers(before, after)?;
                    if last.header("connection") != Some("close") {
                        return Err(format!("a {} without Connection: close", last.status));
                    }
                }
                _ => {
                    return Err(format!(
                        "expected {} answers 200 then one of {allowed:?}, got {statuses:?} ({})",
                        after.len(),
                        describe_end(exchange)
                    ))
                }
            }
        }
        Expect::RefusedAtEof => {
            if !matches!(exchange.end, End::Closed | End::Reset)
                || !(statuses.is_empty()
                    || (statuses.len() == 1 && REFUSALS.contains(&statuses[0])))
            {
                return Err(format!(
                    "expected the close, at most after a refusal: {}",
                    describe_end(exchange)
                ));
            }
        }
    }
    Ok(summary)
}

// ---------------------------------------------------------------------------------------------
// (a) gunicorn's corpus, over real sockets.
// ---------------------------------------------------------------------------------------------

fn corpus_path() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("..")
        .join("shared")
        .join("corpus")
        .join("gunicorn-requests.json")
}

/// `raw` with `Host: wsgilab.test` after each request line, if at least one request line per
/// expected request is found (more is fine: a request after one that closes the connection is
/// never read).
fn with_host(raw: &[u8], requests: usize) -> Option<Vec<u8>> {
    let ends: Vec<usize> = (0..raw.len())
        .filter(|&i| {
            raw[i..].starts_with(b" HTTP/1.1\r\n") || raw[i..].starts_with(b" HTTP/1.0\r\n")
        })
        .map(|i| i + b" HTTP/1.x\r\n".len())
        .collect();
    if ends.len() < requests.max(1) {
        return None;
    }
    let mut out = Vec::with_capacity(raw.len() + ends.len() * 32);
    let mut from = 0;
    for end in ends {
        out.extend_from_slice(&raw[from..end]);
        out.extend_from_slice(format!("Host: {ADDED_HOST}\r\n").as_bytes());
        from = end;
    }
    out.extend_from_slice(&raw[from..]);
    Some(out)
}

#[derive(Default, Debug)]
struct Tally {
    valid_answered: usize,
    valid_answered_with_host_added: usize,
    valid_refused_per_rfc: usize,
    invalid_refused: usize,
    invalid_accepted_per_rfc: usize,
    refused_only_at_eof: usize,
    skipped: usize,
    exchanges: usize,
}

/// One byte string to send and what it must get.
struct Run {
    label: &'static str,
    raw: Vec<u8>,
    expect: Expect,
}

/// What gunicorn's case must get from wsgilab, apart from the Host rule.
fn expectation(name: &str, case: &Value, host_added: bool) -> Expect {
    let valid = case["valid"].as_bool().expect("valid");
    if REFUSED_ONLY_AT_EOF.iter().any(|(n, _)| *n == name) {
        return Expect::RefusedAtEof;
    }
    match RFC_DISAGREEMENTS.iter().find(|(n, _, _)| *n == name) {
        Some((_, Some(status), _)) => Expect::refused(&[*status]),
        Some((_, None, _)) => Expect::Accepted,
        None if valid => {
            let extra = host_added.then_some(("HOST", ADDED_HOST));
            Expect::Answers(
                case["expect"]
                    .as_array()
                    .expect("expect")
                    .iter()
                    .map(|e| Seen::from_expectation(e, extra))
                    .collect(),
            )
        }
        None => Expect::refused(REFUSALS),
    }
}

#[test]
fn gunicorn_corpus_whole_bytewise_and_in_random_chunks() {
    let started = Instant::now();
    let path = corpus_path();
    let Ok(json) = std::fs::read_to_string(&path) else {
        eprintln!("SKIPPED: gunicorn corpus (../shared/corpus absent)");
        return;
    };
    let corpus: Value = serde_json::from_str(&json).expect("the corpus is JSON");
    let cases = corpus["cases"].as_array().expect("cases");

    // Every table names a case that exists, so none goes stale silently.
    let names: Vec<&str> = cases.iter().map(|c| c["name"].as_str().unwrap()).collect();
    let listed = SKIPPED
        .iter()
        .map(|e| e.0)
        .chain(RUN_THOUGH_SKIPPED_BY_THE_PARSER_TEST.iter().map(|e| e.0))
        .chain(RFC_DISAGREEMENTS.iter().map(|e| e.0))
        .chain(MISSING_HOST.iter().copied())
        .chain(DEFAULT_BUFFER_SIZE.iter().map(|e| e.0))
        .chain(REFUSED_ONLY_AT_EOF.iter().map(|e| e.0));
    for name in listed {
        assert!(names.contains(&name), "a table names unknown case {name}");
    }

    let big = start(&["--buffer-size", "32768"]);
    let default = start(&[]);
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for case in cases {
        let name = case["name"].as_str().expect("name");
        if let Some((_, reason)) = SKIPPED.iter().find(|(n, _)| *n == name) {
            eprintln!("skipped {name}: {reason}");
            tally.skipped += 1;
            continue;
        }
        let raw = latin1(case["raw"].as_str().expect("raw")).expect("latin-1 raw");
        let valid = case["valid"].as_bool().expect("valid");
        let server = if DEFAULT_BUFFER_SIZE.iter().any(|(n, _)| *n == name) {
            &default
        } else {
            &big
        };
        let mut runs = Vec::new();
        if MISSING_HOST.contains(&name) {
            // HTTP/1.0 requests before the first HTTP/1.1 one need no Host and are answered.
            let after = case["expect"]
                .as_array()
                .map(|requests| {
                    requests
                        .iter()
                        .take_while(|r| r["version"][1] == 0)
                        .map(|r| Seen::from_expectation(r, None))
                        .collect()
                })
                .unwrap_or_default();
            runs.push(Run {
                label: "as sent, no Host",
                raw: raw.clone(),
                expect: Expect::Refused {
                    after,
                    allowed: vec![400],
                },
            });
            let requests = case["expect"].as_array().map_or(0, Vec::len);
            match with_host(&raw, requests) {
                Some(hosted) => runs.push(Run {
                    label: "with Host added",
                    raw: hosted,
                    expect: expectation(name, case, true),
                }),
                None => failures.push(format!(
                    "{name}: cannot find its {requests} request line(s) to add a Host"
                )),
            }
        } else {
            runs.push(Run {
                label: "as sent",
                raw,
                expect: expectation(name, case, false),
            });
        }
        for run in &runs {
            let seed = seed_of(name);
            let splits = [
                Split::Whole,
                Split::Bytewise,
                Split::Random(seed),
                Split::Random(seed ^ 1),
                Split::Random(seed ^ 2),
            ];
            let mut first_summary: Option<String> = None;
            for split in splits {
                let exchange = exchange(&server.addr(), &run.raw, split, run.expect.half_close());
                tally.exchanges += 1;
                match check(&exchange, &run.expect) {
                    Ok(summary) => match &first_summary {
                        None => first_summary = Some(summary),
                        Some(first) if *first != summary => failures.push(format!(
                            "{name} ({}), {split:?}: answered {summary}, but {first} whole",
                            run.label
                        )),
                        Some(_) => {}
                    },
                    Err(problem) => {
                        failures.push(format!("{name} ({}), {split:?}: {problem}", run.label))
                    }
                }
            }
            eprintln!(
                "{name} ({}): {}",
                run.label,
                first_summary.as_deref().unwrap_or("FAILED")
            );
        }
        match (runs.last().map(|r| &r.expect), valid) {
            _ if REFUSED_ONLY_AT_EOF.iter().any(|(n, _)| *n == name) => {
                tally.refused_only_at_eof += 1
            }
            (Some(Expect::Answers(_)), _) if runs.len() == 2 => {
                tally.valid_answered_with_host_added += 1
            }
            (Some(Expect::Answers(_)), _) => tally.valid_answered += 1,
            (Some(Expect::Refused { .. }), true) => tally.valid_refused_per_rfc += 1,
            (Some(Expect::Refused { .. }), false) => tally.invalid_refused += 1,
            (Some(Expect::Accepted), _) => tally.invalid_accepted_per_rfc += 1,
            _ => {}
        }
    }

    // (c) Both servers still answer a normal request: no worker crashed or hung.
    for server in [&big, &default] {
        let seen = answered(server, b"GET /still/alive?yes HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(seen["path"], "/still/alive", "{}", server.log());
    }
    eprintln!(
        "gunicorn corpus over real sockets: {} valid cases reach the app as gunicorn expects \
         (+{} more once a Host is added; as sent they get 400), {} valid cases refused per RFC, \
         {} refused only at EOF; {} invalid cases refused, {} accepted per RFC; {} skipped; \
         {} cases, {} exchanges, {:.1} s",
        tally.valid_answered,
        tally.valid_answered_with_host_added,
        tally.valid_refused_per_rfc,
        tally.refused_only_at_eof,
        tally.invalid_refused,
        tally.invalid_accepted_per_rfc,
        tally.skipped,
        cases.len(),
        tally.exchanges,
        started.elapsed().as_secs_f64(),
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n--- log of the --buffer-size 32768 server (tail) ---\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&big.log(), 60)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// (b) One test per request-smuggling and framing rule of RFC 9112.
// ---------------------------------------------------------------------------------------------

/// Sends `raw` whole, then half-closes; exactly one 200 from the app must come back, then the
/// close. Returns the app's JSON.
fn answered(server: &Server, raw: &[u8]) -> Value {
    let exchange = exchange(&server.addr(), raw, Split::Whole, true);
    if let Err(problem) = check(&exchange, &Expect::Accepted) {
        panic!(
            "{:?}: {problem}\n--- server log (tail) ---\n{}",
            String::from_utf8_lossy(raw),
            tail(&server.log(), 30)
        );
    }
    let responses = parse_responses(&exchange.received).unwrap();
    serde_json::from_slice(&responses[0].body).expect("JSON from echoapp.py")
}

/// Sends `raw` whole and then byte by byte, without half-closing: each time, exactly one
/// response with `status` and `Connection: close` must come back, and the server must close
/// the connection on its own.
fn refused(server: &Server, raw: &[u8], status: u16) {
    for split in [Split::Whole, Split::Bytewise] {
        let exchange = exchange(&server.addr(), raw, split, false);
        if let Err(problem) = check(&exchange, &Expect::refused(&[status])) {
            panic!(
                "{:?} ({split:?}): {problem}\n--- server log (tail) ---\n{}",
                String::from_utf8_lossy(raw),
                tail(&server.log(), 30)
            );
        }
    }
}

/// (c) after each rule: the server still answers a normal request.
fn assert_still_serving(server: &Server) {
    let seen = answered(server, b"GET /healthy HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(seen["path"], "/healthy");
}

fn post(headers: &str, body: &str) -> Vec<u8> {
    format!("POST /upload HTTP/1.1\r\nHost: t\r\n{headers}\r\n{body}").into_bytes()
}

// RFC 9112 §6.1 (and §6.3 rule 3; §11.2): Content-Length with Transfer-Encoding is refused.
#[test]
fn content_length_with_transfer_encoding_is_400() {
    let server = start(&[]);
    refused(
        &server,
        &post(
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
        400,
    );
    refused(
        &server,
        &post(
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §6.3 rule 5: several Content-Length values that differ are an unrecoverable error.
#[test]
fn two_different_content_lengths_are_400() {
    let server = start(&[]);
    refused(
        &server,
        &post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
        400,
    );
    refused(&server, &post("Content-Length: 5, 6\r\n", "hello!"), 400);
    assert_still_serving(&server);
}

// RFC 9112 §6.3 rule 5 / RFC 9110 §8.6: identical repeated Content-Length values may be accepted.
#[test]
fn identical_duplicate_content_lengths_are_accepted() {
    let server = start(&[]);
    for headers in [
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5, 5\r\n",
    ] {
        let seen = answered(&server, &post(headers, "hello"));
        assert_eq!(seen["body"], "hello", "{headers:?}");
        assert_eq!(seen["content_length"], "5", "{headers:?}");
    }
    assert_still_serving(&server);
}

// RFC 9112 §6.3 rule 5 / RFC 9110 §8.6: Content-Length = 1*DIGIT; a sign, inner space or hex is invalid.
#[test]
fn content_length_with_sign_space_or_hex_is_400() {
    let server = start(&[]);
    for value in ["+5", "-5", "5 0", "0x5", "a", "5a", "5.0", ""] {
        refused(
            &server,
            &post(&format!("Content-Length: {value}\r\n"), "hello"),
            400,
        );
    }
    assert_still_serving(&server);
}

// RFC 9112 §6.1: a transfer coding the server does not understand gets 501 (and §6.3 rule 4: chunked must be final).
#[test]
fn transfer_codings_other_than_a_final_chunked_are_501() {
    let server = start(&[]);
    for value in [
        "gzip",
        "chunked, gzip",
        "gzip, chunked",
        "deflate",
        "identity",
    ] {
        refused(
            &server,
            &post(
                &format!("Transfer-Encoding: {value}\r\n"),
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            501,
        );
    }
    assert_still_serving(&server);
}

// RFC 9112 §6.1: a sender MUST NOT apply chunked more than once.
#[test]
fn chunked_twice_is_400() {
    let server = start(&[]);
    refused(
        &server,
        &post(
            "Transfer-Encoding: chunked, chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        400,
    );
    refused(
        &server,
        &post(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means its framing is faulty.
#[test]
fn transfer_encoding_on_http_1_0_is_400() {
    let server = start(&[]);
    refused(
        &server,
        b"POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §7.1: chunk-size = 1*HEXDIG, and parsers must not overflow on large numerals.
#[test]
fn bad_chunk_sizes_are_400() {
    let server = start(&[]);
    for size_line in [
        "zz",
        "-5",
        "+5",
        "0x5",
        " 5",
        "5 ",
        "6_0",
        "",
        "10000000000000000",
        "fffffffffffffffffffffff",
    ] {
        refused(
            &server,
            &post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{size_line}\r\nhello\r\n0\r\n\r\n"),
            ),
            400,
        );
    }
    assert_still_serving(&server);
}

// RFC 9112 §7.1.1: chunk extensions are allowed, and ignored by a recipient that does not know them.
#[test]
fn chunk_extensions_are_accepted() {
    let server = start(&[]);
    let seen = answered(
        &server,
        &post(
            "Transfer-Encoding: chunked\r\n",
            "5;name=value\r\nhello\r\n6 ; a ; q=\"x y\"\r\n world\r\n0;last\r\n\r\n",
        ),
    );
    assert_eq!(seen["body"], "hello world");
    assert_eq!(seen["content_length"], "11");
    assert_still_serving(&server);
}

// RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF.
#[test]
fn missing_crlf_after_chunk_data_is_400() {
    let server = start(&[]);
    for body in [
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhello0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
    ] {
        refused(&server, &post("Transfer-Encoding: chunked\r\n", body), 400);
    }
    assert_still_serving(&server);
}

// RFC 9112 §2.2: a recipient MAY accept a bare LF as a line terminator; wsgilab does not (smuggling).
#[test]
fn bare_lf_line_endings_are_400() {
    let server = start(&[]);
    refused(&server, b"GET / HTTP/1.1\nHost: t\n\n", 400);
    refused(&server, b"GET / HTTP/1.1\r\nHost: t\n\r\n", 400);
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\nContent-Length: 5\r\n\r\nhello",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §2.2: a bare CR must be treated as invalid (or replaced by SP).
#[test]
fn bare_cr_is_400() {
    let server = start(&[]);
    refused(&server, b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400);
    refused(&server, b"GET /\r HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    assert_still_serving(&server);
}

// RFC 9112 §5.2: a server receiving obs-fold in a request must reject it with 400 (or replace it by SP).
#[test]
fn obs_fold_is_400() {
    let server = start(&[]);
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Long: one\r\n two\r\n\r\n",
        400,
    );
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Long: one\r\n\ttwo\r\n\r\n",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §5.1: whitespace between a field name and the colon must be rejected with 400.
#[test]
fn whitespace_before_the_colon_is_400() {
    let server = start(&[]);
    refused(&server, b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400);
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX-A\t: b\r\n\r\n",
        400,
    );
    refused(
        &server,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9110 §5.5 (field values, as RFC 9112 §5 parses them): NUL, CR, LF and other controls are invalid.
#[test]
fn nul_and_control_bytes_in_a_header_value_are_400() {
    let server = start(&[]);
    for byte in [0x00u8, 0x01, 0x07, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f] {
        let mut raw = b"GET / HTTP/1.1\r\nHost: t\r\nX-Value: a".to_vec();
        raw.push(byte);
        raw.extend_from_slice(b"b\r\n\r\n");
        refused(&server, &raw, 400);
    }
    // A tab is whitespace, not a control, inside a value.
    let seen = answered(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Value: a\tb\r\n\r\n",
    );
    assert_eq!(seen["headers"]["HTTP_X_VALUE"], "a\tb");
    assert_still_serving(&server);
}

// RFC 9112 §3.2.2: a server MUST accept the absolute-form; the app sees its path and query.
#[test]
fn absolute_form_target_reaches_the_app_as_path_and_query() {
    let server = start(&[]);
    let seen = answered(
        &server,
        b"GET http://example.com/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    assert_eq!(seen["path"], "/p");
    assert_eq!(seen["query"], "q=1");
    assert_eq!(seen["uri"], "http://example.com/p?q=1");
    assert_eq!(seen["method"], "GET");
    assert_still_serving(&server);
}

// RFC 9112 §3.2.4: the asterisk-form is for OPTIONS; the app sees PATH_INFO "*".
#[test]
fn asterisk_form_options_reaches_the_app() {
    let server = start(&[]);
    let seen = answered(&server, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(seen["method"], "OPTIONS");
    assert_eq!(seen["path"], "*");
    assert_eq!(seen["query"], "");
    assert_still_serving(&server);
}

// RFC 9112 §3.2.4: the asterisk-form is only used with OPTIONS.
#[test]
fn asterisk_form_with_get_is_400() {
    let server = start(&[]);
    refused(&server, b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    refused(
        &server,
        b"POST * HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §3: a request line over the server's limit (--buffer-size) is refused with 414
// (URI Too Long); a header section over it, after a request line that fits, with 431
// (RFC 6585 §5).
#[test]
fn a_request_line_longer_than_buffer_size_is_414() {
    let server = start(&["--buffer-size", "1024"]);
    let raw = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(2000));
    refused(&server, raw.as_bytes(), 414);
    let absolute = format!(
        "GET http://t/{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(2000)
    );
    refused(&server, absolute.as_bytes(), 414);
    // The request line fits; the headers after it do not.
    let big_header = format!(
        "GET /{} HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(900),
        "b".repeat(200)
    );
    refused(&server, big_header.as_bytes(), 431);
    // Just under the limit is fine.
    let fits = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(900));
    let seen = answered(&server, fits.as_bytes());
    assert_eq!(seen["path"].as_str().map(str::len), Some(901));
    // Four 414s (two requests, whole and byte by byte), each logged before its answer.
    let why = "request line larger than --buffer-size (1024 bytes); answered 414 URI Too Long";
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server.log();
        if log.matches(why).count() >= 4 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(log.matches(why).count(), 4, "{log}");
    // Written by the worker for every 414, as for a 431: uWSGI's line for a request over
    // --buffer-size just before wsgilab's, which ends with the hint.
    let lines: Vec<&str> = log.lines().collect();
    let refusals: Vec<usize> = (1..lines.len())
        .filter(|&i| lines[i].contains("answered 414 URI Too Long"))
        .collect();
    for i in refusals {
        assert_eq!(
            lines[i - 1],
            "invalid HTTP request size (max 1024)...skip",
            "{log}"
        );
        assert!(lines[i].contains("(raise --buffer-size"), "{log}");
    }
    assert_still_serving(&server);
}

// RFC 9112 §3.2: a request with more than one Host field line must get 400.
#[test]
fn more_than_one_host_is_400() {
    let server = start(&[]);
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        400,
    );
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
        400,
    );
    refused(
        &server,
        b"GET / HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §11.2 and §6.3: after a framing error the server closes; a request hidden in the body never runs.
#[test]
fn a_request_smuggled_behind_a_framing_error_is_never_executed() {
    let server = start(&[]);
    let smuggled = |n: usize| format!("GET /smuggled-{n} HTTP/1.1\r\nHost: t\r\n\r\n");
    let attempts: Vec<(String, u16)> = vec![
        // CL.TE: a front end that believes Content-Length forwards the whole thing; a back end
        // that believes chunked would see the body end at "0" and run the rest.
        (
            format!(
                "POST /front-1 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
                5 + smuggled(1).len(),
                smuggled(1)
            ),
            400,
        ),
        // TE.CL: the other way round.
        (
            format!(
                "POST /front-2 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                smuggled(2).len(),
                smuggled(2)
            ),
            400,
        ),
        // CL.TE with an obfuscated Transfer-Encoding value.
        (
            format!(
                "POST /front-3 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n{}",
                smuggled(3)
            ),
            400,
        ),
        // CL.CL: two different lengths.
        (
            format!(
                "POST /front-4 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{}",
                smuggled(4).len(),
                smuggled(4)
            ),
            400,
        ),
        // A Content-Length hidden behind a bare LF inside another field.
        (
            format!(
                "POST /front-5 HTTP/1.1\r\nHost: t\r\nX: a\nContent-Length: {}\r\n\r\n{}",
                smuggled(5).len(),
                smuggled(5)
            ),
            400,
        ),
        // A coding the server does not know, with chunked last: the body cannot be framed.
        (
            format!(
                "POST /front-6 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{}",
                smuggled(6)
            ),
            501,
        ),
    ];
    for (raw, status) in &attempts {
        let exchange = exchange(&server.addr(), raw.as_bytes(), Split::Whole, false);
        if let Err(problem) = check(&exchange, &Expect::refused(&[*status])) {
            panic!("{raw:?}: {problem}\n{}", server.log());
        }
    }
    // The worker serves one connection at a time: once this request is in the log, every
    // attempt above has been dealt with.
    let seen = answered(&server, b"GET /after-smuggling HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(seen["path"], "/after-smuggling");
    let log = server.wait_for_log("GET /after-smuggling");
    assert!(
        !log.contains("/smuggled-"),
        "a smuggled request ran:\n{log}"
    );
    assert!(
        !log.contains("/front-"),
        "a refused request reached the app:\n{log}"
    );
    assert_eq!(
        log.matches("wsgilab: refused a request from 127.0.0.1")
            .count(),
        attempts.len(),
        "{log}"
    );
}

// RFC 9112 §8: a server that receives an incomplete request MAY answer before closing. The
// parser refuses these with 400 at EOF (corpus_tests.rs says so for valid/099), but the worker
// closes without a word when the client half-closes mid-request.
#[test]
fn an_incomplete_request_then_half_close_gets_400() {
    let server = start(&[]);
    for raw in [
        &b"GET /cut HTTP/1.1\r\nHost: t\r\nX-Half"[..],
        b"POST /cut HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello",
        b"POST /cut HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
    ] {
        let exchange = exchange(&server.addr(), raw, Split::Whole, true);
        if let Err(problem) = check(&exchange, &Expect::refused(&[400])) {
            panic!("{:?}: {problem}", String::from_utf8_lossy(raw));
        }
    }
    assert_still_serving(&server);
}

// RFC 9112 §3.2: a server MUST answer 400 to a request whose Host field value is invalid
// (Host = uri-host [ ":" port ], RFC 3986 §3.2.2–3.2.3).
#[test]
fn an_invalid_host_value_is_400() {
    let server = start(&[]);
    for host in [
        &b"a b"[..],
        b"a/b",
        b"a@b",
        b"host:8o",
        b"[::1",
        b"a:1:2",
        b"\x80x",
        b":80",
    ] {
        let mut raw = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        raw.extend_from_slice(host);
        raw.extend_from_slice(b"\r\n\r\n");
        refused(&server, &raw, 400);
    }
    assert_still_serving(&server);
}

// RFC 9110 §7.2: a client sends an empty Host when the target URI has no authority; RFC 9112
// §3.3 then names the server by its default name: for wsgilab, the local address.
#[test]
fn an_empty_host_is_accepted_and_the_local_address_names_the_server() {
    let server = start(&[]);
    let seen = answered(&server, b"GET /e HTTP/1.1\r\nHost:\r\n\r\n");
    assert_eq!(seen["path"], "/e");
    assert_eq!(seen["server_name"], "127.0.0.1");
    assert_eq!(seen["headers"]["HTTP_HOST"], "");
    // A Host with a port is still named by its host.
    let seen = answered(&server, b"GET /p HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    assert_eq!(seen["server_name"], "::1");
    assert_eq!(seen["headers"]["HTTP_HOST"], "[::1]:8080");
}

// RFC 9112 §3.2.2: with an absolute-form target the origin server MUST ignore the Host field
// and use the target's host: the app must not see the Host line's value as its host.
#[test]
fn absolute_form_host_wins_over_the_host_header() {
    let server = start(&[]);
    let seen = answered(
        &server,
        b"GET http://example.com/p?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
    );
    assert_eq!(seen["path"], "/p");
    assert_eq!(seen["server_name"], "example.com");
    assert_eq!(seen["headers"]["HTTP_HOST"], "example.com");
    // Userinfo is not part of the host; an HTTP/1.0 request needs no Host line at all.
    let seen = answered(
        &server,
        b"GET http://user:pw@example.com:8080/p HTTP/1.0\r\nHost: other.example\r\n\r\n",
    );
    assert_eq!(seen["server_name"], "example.com");
    assert_eq!(seen["headers"]["HTTP_HOST"], "example.com:8080");
    let seen = answered(&server, b"GET http://[::1]:8080/p HTTP/1.0\r\n\r\n");
    assert_eq!(seen["server_name"], "::1");
    assert_eq!(seen["headers"]["HTTP_HOST"], "[::1]:8080");
    assert_still_serving(&server);
}
