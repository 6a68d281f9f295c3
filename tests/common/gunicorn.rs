//! gunicorn's request corpus as the front-door tests use it, whatever carries the bytes: real
//! sockets to the real server (tests/http_front_door.rs) or the simulated network
//! (sim/tests/front_door_in_the_sim.rs, which includes this file with `#[path]`). Here: which
//! cases wsgilab answers differently from gunicorn and why, how the bytes are split into
//! writes, what each case must get back, and how a response stream is checked against that.
//! The transport supplies an [`Exchange`]: everything the server sent and how the reading ended.
//!
//! The parser's own corpus test (server/src/http/corpus_tests.rs) decides which cases wsgilab
//! deliberately answers differently from gunicorn, and why; the tables below repeat those
//! decisions by name, with the reasons, for the whole server.
#![allow(dead_code)]

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde_json::Value;

/// The statuses a refused request may get.
pub const REFUSALS: &[u16] = &[400, 413, 414, 431, 501, 505];

// ---------------------------------------------------------------------------------------------
// The corpus tables: SKIPPED, RUN_THOUGH_SKIPPED_BY_THE_PARSER_TEST and RFC_DISAGREEMENTS are
// shared with the parser's corpus test; the rest are the whole server's.
// ---------------------------------------------------------------------------------------------

include!("gunicorn_tables.rs");

/// HTTP/1.1 cases without a Host header: refused with 400, as RFC 9112 §3.2 requires (after
/// answering any HTTP/1.0 request pipelined before). Each is then sent again with
/// `Host: wsgilab.test` added to every request line, so the rest of gunicorn's expectation is
/// checked too. The valid ones are the parser test's MISSING_HOST; invalid/003c is there too
/// because the parser test checks it with the Host rule off.
pub const MISSING_HOST: &[&str] = &[
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
pub const ADDED_HOST: &str = "wsgilab.test";

/// Invalid only under gunicorn's default per-line limits (request line 4094, field 8190): with
/// `--buffer-size 32768` wsgilab would accept them, so they go to a second server that keeps
/// the default `--buffer-size` (4096), as the parser's corpus test runs them.
pub const DEFAULT_BUFFER_SIZE: &[(&str, &str)] = &[
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
pub const REFUSED_ONLY_AT_EOF: &[(&str, &str)] = &[
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
// Splitting the bytes, and what came back.
// ---------------------------------------------------------------------------------------------

/// How the bytes of a request are cut into writes.
#[derive(Clone, Copy, Debug)]
pub enum Split {
    Whole,
    /// One write per byte.
    Bytewise,
    /// Pseudo-random pieces, from this seed.
    Random(u64),
}

/// SplitMix64: a tiny PRNG whose stream is fixed by its definition, so seeds reproduce.
pub struct SplitMix64(u64);

impl SplitMix64 {
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    pub fn below(&mut self, bound: usize) -> usize {
        (self.next_u64() % bound as u64) as usize
    }
}

/// FNV-1a: a case's name as a seed.
pub fn seed_of(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325, |hash, b| {
        (hash ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

pub fn pieces(raw: &[u8], split: Split) -> Vec<&[u8]> {
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
pub enum End {
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
pub struct Exchange {
    pub received: Vec<u8>,
    pub end: End,
}

/// A response as it came over the wire.
#[derive(Debug)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
}

/// Splits everything received into responses (interim 1xx ones dropped). Every response the
/// echo app or the server's refusals give carries a Content-Length.
pub fn parse_responses(mut bytes: &[u8]) -> Result<Vec<Response>, String> {
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
pub fn latin1(text: &str) -> Result<Vec<u8>, String> {
    text.chars()
        .map(|c| u8::try_from(u32::from(c)).map_err(|_| format!("{c:?} is not latin-1")))
        .collect()
}

/// Percent-decoding as WSGI servers do for PATH_INFO (%2F too; invalid escapes kept as sent).
pub fn percent_decode(raw: &[u8]) -> Vec<u8> {
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
pub struct Seen {
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
    pub fn from_json(json: &Value) -> Result<Seen, String> {
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
    pub fn from_expectation(expected: &Value, extra_header: Option<(&str, &str)>) -> Seen {
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
pub fn diff(seen: &Seen, want: &Seen) -> String {
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
pub enum Expect {
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
    pub fn refused(allowed: &[u16]) -> Expect {
        Expect::Refused {
            after: Vec::new(),
            allowed: allowed.to_vec(),
        }
    }

    pub fn half_close(&self) -> bool {
        !matches!(self, Expect::Refused { .. })
    }
}

/// Compares the app's answers with what it must have seen, in order.
pub fn check_answers(responses: &[Response], wanted: &[Seen]) -> Result<(), String> {
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

pub fn describe_end(exchange: &Exchange) -> String {
    format!(
        "{:?} after {} bytes: {:?}",
        exchange.end,
        exchange.received.len(),
        String::from_utf8_lossy(&exchange.received[..exchange.received.len().min(300)])
    )
}

/// Checks an exchange; on success, a short summary (the statuses) that must be the same for
/// every split of the same bytes.
pub fn check(exchange: &Exchange, expect: &Expect) -> Result<String, String> {
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

pub fn with_host(raw: &[u8], requests: usize) -> Option<Vec<u8>> {
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
pub struct Tally {
    pub valid_answered: usize,
    pub valid_answered_with_host_added: usize,
    pub valid_refused_per_rfc: usize,
    pub invalid_refused: usize,
    pub invalid_accepted_per_rfc: usize,
    pub refused_only_at_eof: usize,
    pub skipped: usize,
    pub exchanges: usize,
}

/// One byte string to send and what it must get.
pub struct Run {
    pub label: &'static str,
    pub raw: Vec<u8>,
    pub expect: Expect,
}

/// What gunicorn's case must get from wsgilab, apart from the Host rule.
pub fn expectation(name: &str, case: &Value, host_added: bool) -> Expect {
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

// ---------------------------------------------------------------------------------------------
// The corpus, case by case.
// ---------------------------------------------------------------------------------------------

/// gunicorn-requests.json in `../shared/corpus` beside the checkout, from the root package
/// (`manifest_dir` = the checkout) or from a member crate (one level deeper); `None` if absent.
pub fn corpus_path(manifest_dir: &str) -> Option<PathBuf> {
    let file = Path::new("shared")
        .join("corpus")
        .join("gunicorn-requests.json");
    Path::new(manifest_dir)
        .ancestors()
        .skip(1)
        .take(2)
        .map(|dir| dir.join(&file))
        .find(|path| path.is_file())
}

/// The corpus's cases; `None` (after a loud SKIP line naming `test`) if it is absent.
pub fn load_cases(manifest_dir: &str, test: &str) -> Option<Vec<Value>> {
    let Some(path) = corpus_path(manifest_dir) else {
        eprintln!(
            "SKIP {test}: gunicorn corpus absent (no ../shared/corpus/gunicorn-requests.json beside {manifest_dir})"
        );
        return None;
    };
    let json = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("{} exists but cannot be read: {e}", path.display()));
    let corpus: Value = serde_json::from_str(&json).expect("the corpus is JSON");
    let cases = corpus["cases"].as_array().expect("cases").clone();
    check_tables(&cases);
    Some(cases)
}

/// Every table names a case that exists, so none goes stale silently.
fn check_tables(cases: &[Value]) {
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
}

/// What to do with one case.
pub enum Plan {
    /// Its gunicorn options have no wsgilab equivalent: the reason.
    Skip(&'static str),
    Send {
        /// Send it to a server with the default `--buffer-size` (4096) rather than one with
        /// `--buffer-size 32768`.
        default_buffer_size: bool,
        /// One byte string, or two for [`MISSING_HOST`] (as sent, then with Host added).
        runs: Vec<Run>,
        /// Problems found before sending anything.
        problems: Vec<String>,
    },
}

/// What to send for `case` and what each byte string must get.
pub fn plan(case: &Value) -> Plan {
    let name = case["name"].as_str().expect("name");
    if let Some((_, reason)) = SKIPPED.iter().find(|(n, _)| *n == name) {
        return Plan::Skip(reason);
    }
    let raw = latin1(case["raw"].as_str().expect("raw")).expect("latin-1 raw");
    let default_buffer_size = DEFAULT_BUFFER_SIZE.iter().any(|(n, _)| *n == name);
    let mut runs = Vec::new();
    let mut problems = Vec::new();
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
            None => problems.push(format!(
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
    Plan::Send {
        default_buffer_size,
        runs,
        problems,
    }
}

/// The five ways every byte string is sent: whole, byte by byte, and three random chunkings
/// seeded by the case's name.
pub fn splits_for(name: &str) -> [Split; 5] {
    let seed = seed_of(name);
    [
        Split::Whole,
        Split::Bytewise,
        Split::Random(seed),
        Split::Random(seed ^ 1),
        Split::Random(seed ^ 2),
    ]
}

impl Tally {
    /// Counts a case that was sent, by what its last byte string had to get.
    pub fn count(&mut self, case: &Value, runs: &[Run]) {
        let name = case["name"].as_str().unwrap_or_default();
        let valid = case["valid"].as_bool().unwrap_or_default();
        match (runs.last().map(|r| &r.expect), valid) {
            _ if REFUSED_ONLY_AT_EOF.iter().any(|(n, _)| *n == name) => {
                self.refused_only_at_eof += 1
            }
            (Some(Expect::Answers(_)), _) if runs.len() == 2 => {
                self.valid_answered_with_host_added += 1
            }
            (Some(Expect::Answers(_)), _) => self.valid_answered += 1,
            (Some(Expect::Refused { .. }), true) => self.valid_refused_per_rfc += 1,
            (Some(Expect::Refused { .. }), false) => self.invalid_refused += 1,
            (Some(Expect::Accepted), _) => self.invalid_accepted_per_rfc += 1,
            _ => {}
        }
    }

    /// One line on what happened to the corpus.
    pub fn summary(&self, cases: usize) -> String {
        format!(
            "{} valid cases reach the app as gunicorn expects \
             (+{} more once a Host is added; as sent they get 400), {} valid cases refused per RFC, \
             {} refused only at EOF; {} invalid cases refused, {} accepted per RFC; {} skipped; \
             {} cases, {} exchanges",
            self.valid_answered,
            self.valid_answered_with_host_added,
            self.valid_refused_per_rfc,
            self.refused_only_at_eof,
            self.invalid_refused,
            self.invalid_accepted_per_rfc,
            self.skipped,
            cases,
            self.exchanges,
        )
    }
}
