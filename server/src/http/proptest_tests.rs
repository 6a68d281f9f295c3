//! Property tests of the parser and of body framing, bounded for CI: proptest's default 256
//! cases per property (a few seconds in a debug build); `PROPTEST_CASES=N` runs a longer
//! campaign. The properties:
//!
//! - arbitrary bytes never panic, and end in complete requests or an error;
//! - however bytes are split across reads, the parser says the same thing — for soups of
//!   grammar fragments, for mutations of gunicorn's corpus and of generated valid requests;
//! - generated valid requests (pipelined, with headers, Content-Length or chunked bodies)
//!   round-trip exactly: method, target, headers, body, trailers, keep-alive;
//! - chunked bodies with random chunk sizes, size-line spellings and extensions decode exactly,
//!   and `--limit-post` refuses exactly the bodies over it.
//!
//! Whatever proptest finds is shrunk and saved under server/proptest-regressions/ (committed),
//! so it is replayed first on every later run.

use std::sync::OnceLock;

use proptest::collection::vec;
use proptest::prelude::*;
use proptest::sample::{select, Index};

use super::test_support::{drive, Outcome, Split};
use super::{HttpError, Limits, RequestParser};

/// Limits large enough that no generated valid request crosses them.
const ROOMY: Limits = Limits {
    max_head: 64 * 1024,
    max_body: None,
};

const TCHARS: &[u8] =
    b"!#$%&'*+-.^_`|~0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/// pchar of RFC 3986 without pct-encoded (added separately) and without '%'.
const PCHARS: &[u8] =
    b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-._~!$&'()*+,;=:@";

/// Pieces of requests, to glue into byte soups that reach deep into the grammar far more
/// often than uniformly random bytes do.
const FRAGMENTS: &[&[u8]] = &[
    b"GET",
    b"POST",
    b"OPTIONS",
    b"CONNECT",
    b" ",
    b"/",
    b"*",
    b"?",
    b"#",
    b"%",
    b"%2F",
    b"http://h",
    b"HTTP/1.1",
    b"HTTP/1.0",
    b"HTTP/2.0",
    b"\r\n",
    b"\r\n\r\n",
    b"\r",
    b"\n",
    b"Host: h",
    b"Host:",
    b":",
    b"Content-Length: ",
    b"Content-Length: 5",
    b"Transfer-Encoding: chunked",
    b"Transfer-Encoding: gzip",
    b"Connection: close",
    b"Expect: 100-continue",
    b"0",
    b"5",
    b"ff",
    b"ffffffffffffffffff",
    b";",
    b";a=\"b\\\"c\"",
    b"=",
    b",",
    b"\t",
    b"hello",
    b"\x00",
    b"\x7f",
    b"\x80",
    b"\xff",
];

/// Hand-written seeds for the mutations, used with the corpus (and alone if it is absent).
const SEEDS: &[&[u8]] = &[
    b"GET /a%20b?q=1 HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n",
    b"POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5;a=\"b c\"\r\nhello\r\n6\r\n world\r\n0\r\nVary: *\r\n\r\n",
    b"PUT /x HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nabcGET /y HTTP/1.1\r\nHost: h\r\n\r\n",
];

/// The raw bytes of every case of gunicorn's corpus, when ../shared/corpus is present.
fn corpus() -> &'static [Vec<u8>] {
    static CORPUS: OnceLock<Vec<Vec<u8>>> = OnceLock::new();
    CORPUS.get_or_init(|| {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../shared/corpus/gunicorn-requests.json"
        );
        let Ok(json) = std::fs::read_to_string(path) else {
            eprintln!("SKIP corpus mutations in proptest_tests: {path} absent; mutating the built-in seeds only");
            return Vec::new();
        };
        let corpus: serde_json::Value = serde_json::from_str(&json).expect("corpus is JSON");
        corpus["cases"]
            .as_array()
            .expect("cases")
            .iter()
            .map(|case| {
                case["raw"]
                    .as_str()
                    .expect("raw")
                    .chars()
                    .map(|c| u8::try_from(u32::from(c)).expect("latin-1"))
                    .collect()
            })
            .collect()
    })
}

// ---------------------------------------------------------------------------------------------
// Generated valid requests.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Clone)]
struct Chunk {
    data: Vec<u8>,
    /// The size line as written: hex digits in either case, maybe leading zeros, extensions.
    size_line: String,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Length(Vec<u8>),
    Chunked {
        chunks: Vec<Chunk>,
        /// The last chunk's size line ("0", "000;x=y", ...).
        last: String,
        trailers: Vec<Field>,
    },
}

impl Body {
    fn decoded(&self) -> Vec<u8> {
        match self {
            Body::None => Vec::new(),
            Body::Length(data) => data.clone(),
            Body::Chunked { chunks, .. } => chunks.iter().flat_map(|c| c.data.clone()).collect(),
        }
    }
}

/// A field line: its name, value, and the optional whitespace written around the value.
#[derive(Debug, Clone)]
struct Field {
    name: String,
    value: Vec<u8>,
    before: &'static str,
    after: &'static str,
}

impl Field {
    fn plain(name: &str, value: &[u8]) -> Field {
        Field {
            name: name.to_owned(),
            value: value.to_vec(),
            before: " ",
            after: "",
        }
    }

    fn write(&self, out: &mut Vec<u8>) {
        out.extend_from_slice(self.name.as_bytes());
        out.push(b':');
        out.extend_from_slice(self.before.as_bytes());
        out.extend_from_slice(&self.value);
        out.extend_from_slice(self.after.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
}

#[derive(Debug, Clone)]
struct Request {
    method: String,
    target: String,
    minor: u8,
    /// Every field line, in order, framing and Host included.
    fields: Vec<Field>,
    body: Body,
    close: bool,
}

impl Request {
    fn bytes(&self) -> Vec<u8> {
        let mut out =
            format!("{} {} HTTP/1.{}\r\n", self.method, self.target, self.minor).into_bytes();
        for field in &self.fields {
            field.write(&mut out);
        }
        out.extend_from_slice(b"\r\n");
        match &self.body {
            Body::None => {}
            Body::Length(data) => out.extend_from_slice(data),
            Body::Chunked {
                chunks,
                last,
                trailers,
            } => {
                for chunk in chunks {
                    out.extend_from_slice(chunk.size_line.as_bytes());
                    out.extend_from_slice(b"\r\n");
                    out.extend_from_slice(&chunk.data);
                    out.extend_from_slice(b"\r\n");
                }
                out.extend_from_slice(last.as_bytes());
                out.extend_from_slice(b"\r\n");
                for trailer in trailers {
                    trailer.write(&mut out);
                }
                out.extend_from_slice(b"\r\n");
            }
        }
        out
    }
}

fn token(max: usize) -> impl Strategy<Value = String> {
    vec(select(TCHARS), 1..=max).prop_map(|b| String::from_utf8(b).expect("tchars are ASCII"))
}

/// Names the framing and connection rules give a meaning to are written by the generator
/// itself, never at random.
fn is_special(name: &str) -> bool {
    [
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "expect",
        "content-type",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
    ]
    .iter()
    .any(|s| name.eq_ignore_ascii_case(s))
}

fn field_name() -> impl Strategy<Value = String> {
    prop_oneof![
        token(16),
        select(
            &[
                "Accept",
                "X-Forwarded-For",
                "Cookie",
                "User-Agent",
                "X_Under"
            ][..]
        )
        .prop_map(str::to_owned),
    ]
    .prop_filter("a name with framing or connection meaning", |n| {
        !is_special(n)
    })
}

/// field-value: visible ASCII and obs-text, with spaces and tabs only inside.
fn field_value() -> impl Strategy<Value = Vec<u8>> {
    let vchar = prop_oneof![4 => 0x21u8..=0x7e, 1 => 0x80u8..=0xff];
    let inner = prop_oneof![6 => vchar.clone(), 1 => select(&b" \t"[..])];
    (
        vec(vchar.clone(), 0..=1),
        vec(inner, 0..24),
        vec(vchar, 0..=1),
    )
        .prop_map(|(first, mut middle, last)| {
            if first.is_empty() {
                // An empty value is allowed; so is a single character.
                return last;
            }
            let mut value = first;
            value.append(&mut middle);
            match last.first() {
                Some(&b) => value.push(b),
                // The value must not end in whitespace: trimmed, it would not round-trip.
                None => {
                    while value.last().is_some_and(|b| *b == b' ' || *b == b'\t') {
                        value.pop();
                    }
                }
            }
            value
        })
}

fn ows() -> impl Strategy<Value = &'static str> {
    select(&["", " ", "  ", "\t", " \t"][..])
}

fn field() -> impl Strategy<Value = Field> {
    (field_name(), field_value(), ows(), ows()).prop_map(|(name, value, before, after)| Field {
        name,
        value,
        before,
        after,
    })
}

fn method() -> impl Strategy<Value = String> {
    prop_oneof![
        select(&["GET", "POST", "PUT", "DELETE", "PATCH", "HEAD", "OPTIONS"][..])
            .prop_map(str::to_owned),
        // CONNECT is refused (501): wsgilab is not a proxy.
        token(10).prop_filter("CONNECT", |m| m != "CONNECT"),
    ]
}

fn pct_or_pchar(extra: &'static [u8]) -> impl Strategy<Value = String> {
    prop_oneof![
        8 => prop_oneof![select(PCHARS), select(extra)].prop_map(|b| char::from(b).to_string()),
        1 => (any::<u8>()).prop_map(|b| format!("%{b:02X}")),
    ]
}

/// An origin-form target (sometimes absolute-form): a path, maybe a query.
fn target() -> impl Strategy<Value = String> {
    let path = vec(pct_or_pchar(b"/"), 0..20).prop_map(|parts| format!("/{}", parts.concat()));
    let query = proptest::option::of(vec(pct_or_pchar(b"/?"), 0..16).prop_map(|p| p.concat()));
    let authority = proptest::option::weighted(
        0.2,
        select(
            &[
                "http://example.com",
                "http://example.com:8080",
                "https://[::1]",
            ][..],
        ),
    );
    (authority, path, query).prop_map(|(authority, path, query)| {
        let mut target = authority.unwrap_or_default().to_owned();
        target.push_str(&path);
        if let Some(query) = query {
            target.push('?');
            target.push_str(&query);
        }
        target
    })
}

/// A chunk-ext: `;name`, `;name=token` or `;name="quoted"`, with optional spaces before ';'.
fn chunk_ext() -> impl Strategy<Value = String> {
    let quoted = vec(
        prop_oneof![
            4 => select(&b"abc xyz\t!#[]~"[..]).prop_map(|b| char::from(b).to_string()),
            1 => select(&["\\\"", "\\\\", "\\a"][..]).prop_map(str::to_owned),
        ],
        0..8,
    )
    .prop_map(|parts| format!("\"{}\"", parts.concat()));
    let value = prop_oneof![
        Just(String::new()),
        token(6).prop_map(|t| format!("={t}")),
        quoted.prop_map(|q| format!("={q}")),
    ];
    (select(&["", " ", "\t "][..]), token(6), value)
        .prop_map(|(space, name, value)| format!("{space};{name}{value}"))
}

/// How a chunk size is spelt: either case, maybe leading zeros, maybe extensions.
fn size_line(size: usize) -> impl Strategy<Value = String> {
    (any::<bool>(), 0..3usize, vec(chunk_ext(), 0..3)).prop_map(move |(upper, zeros, exts)| {
        let hex = if upper {
            format!("{size:X}")
        } else {
            format!("{size:x}")
        };
        format!("{}{hex}{}", "0".repeat(zeros), exts.concat())
    })
}

fn chunk() -> impl Strategy<Value = Chunk> {
    prop_oneof![
        6 => vec(any::<u8>(), 1..24),
        1 => vec(any::<u8>(), 24..3000),
    ]
    .prop_flat_map(|data| {
        let size = data.len();
        (Just(data), size_line(size))
    })
    .prop_map(|(data, size_line)| Chunk { data, size_line })
}

fn chunked_body() -> impl Strategy<Value = Body> {
    (
        vec(chunk(), 0..6),
        size_line(0),
        vec(field(), 0..3).prop_map(|fields| {
            // A trailer named like a framing field is refused; is_special already keeps those out.
            fields
        }),
    )
        .prop_map(|(chunks, last, trailers)| Body::Chunked {
            chunks,
            last,
            trailers,
        })
}

/// A valid request; `last` says whether it may close the connection (HTTP/1.0 or
/// `Connection: close`), which only the last of a pipeline may.
fn request(last: bool) -> impl Strategy<Value = Request> {
    let body = prop_oneof![
        Just(Body::None),
        vec(any::<u8>(), 0..200).prop_map(Body::Length),
        chunked_body(),
    ];
    let ending = if last {
        prop_oneof![Just((1u8, false)), Just((1u8, true)), Just((0u8, false))].boxed()
    } else {
        Just((1u8, false)).boxed()
    };
    (
        method(),
        target(),
        vec(field(), 0..8),
        body,
        ending,
        0..3usize,
        select(&["example.com", "h:8080", "[::1]", ""][..]),
    )
        .prop_map(
            |(method, target, extra, body, (minor, close), host_at, host)| {
                // Transfer-Encoding on HTTP/1.0 is refused (RFC 9112 §6.1): give it a length.
                let body = match body {
                    Body::Chunked { .. } if minor == 0 => Body::Length(body.decoded()),
                    body => body,
                };
                let mut fields = extra;
                if minor == 1 {
                    fields.insert(
                        host_at.min(fields.len()),
                        Field::plain("Host", host.as_bytes()),
                    );
                }
                match &body {
                    Body::None => {}
                    Body::Length(data) => fields.push(Field::plain(
                        "Content-Length",
                        data.len().to_string().as_bytes(),
                    )),
                    Body::Chunked { .. } => {
                        fields.push(Field::plain("Transfer-Encoding", b"chunked"))
                    }
                }
                if close {
                    fields.push(Field::plain("Connection", b"close"));
                }
                Request {
                    method,
                    target,
                    minor,
                    fields,
                    body,
                    close,
                }
            },
        )
}

/// One to three pipelined requests.
fn pipeline() -> impl Strategy<Value = Vec<Request>> {
    (vec(request(false), 0..3), request(true)).prop_map(|(mut requests, last)| {
        requests.push(last);
        requests
    })
}

fn concat(requests: &[Request]) -> Vec<u8> {
    requests.iter().flat_map(Request::bytes).collect()
}

/// What the parser must report for `sent`, exactly.
fn assert_round_trip(sent: &[Request], outcome: &Outcome) -> Result<(), TestCaseError> {
    prop_assert_eq!(&outcome.error, &None);
    prop_assert_eq!(outcome.requests.len(), sent.len());
    for (request, parsed) in sent.iter().zip(&outcome.requests) {
        let head = &parsed.head;
        prop_assert_eq!(&head.method, &request.method);
        prop_assert_eq!(&head.target, &request.target);
        prop_assert_eq!(head.minor_version, request.minor);
        let origin = match request.target.split_once("://") {
            Some((_, rest)) if !request.target.starts_with('/') => {
                &rest[rest.find('/').unwrap_or(rest.len())..]
            }
            _ => &request.target[..],
        };
        let (raw_path, query) = origin.split_once('?').unwrap_or((origin, ""));
        prop_assert_eq!(&head.raw_path, raw_path);
        prop_assert_eq!(&head.query, query);
        let fields: Vec<(&str, &[u8])> = head
            .headers
            .iter()
            .map(|h| (h.name.as_str(), &h.value[..]))
            .collect();
        let expected: Vec<(&str, &[u8])> = request
            .fields
            .iter()
            .map(|f| (f.name.as_str(), &f.value[..]))
            .collect();
        prop_assert_eq!(fields, expected);
        prop_assert_eq!(&parsed.body, &request.body.decoded());
        let trailers: Vec<(&str, &[u8])> = parsed
            .trailers
            .as_deref()
            .unwrap_or_default()
            .iter()
            .map(|h| (h.name.as_str(), &h.value[..]))
            .collect();
        let expected: Vec<(&str, &[u8])> = match &request.body {
            Body::Chunked { trailers, .. } => trailers
                .iter()
                .map(|f| (f.name.as_str(), &f.value[..]))
                .collect(),
            _ => Vec::new(),
        };
        prop_assert!(parsed.trailers.is_some(), "the request did not end");
        prop_assert_eq!(trailers, expected);
        prop_assert_eq!(head.keep_alive, request.minor == 1 && !request.close);
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Near-valid bytes.
// ---------------------------------------------------------------------------------------------

/// One edit of a byte string.
#[derive(Debug, Clone)]
enum Mutation {
    Replace(Index, u8),
    Insert(Index, u8),
    Remove(Index),
    /// Repeat a stretch: duplicated headers, chunks, CRLFs.
    Repeat(Index, usize),
    Truncate(Index),
}

/// Bytes that sit on the grammar's edges, more likely than the rest.
fn edge_byte() -> impl Strategy<Value = u8> {
    prop_oneof![
        3 => select(&b"\r\n \t:;,=\"\\0123456789aAfFxX-+/?#%*\x00\x7f\x80\xff"[..]),
        1 => any::<u8>(),
    ]
}

fn mutation() -> impl Strategy<Value = Mutation> {
    prop_oneof![
        (any::<Index>(), edge_byte()).prop_map(|(i, b)| Mutation::Replace(i, b)),
        (any::<Index>(), edge_byte()).prop_map(|(i, b)| Mutation::Insert(i, b)),
        any::<Index>().prop_map(Mutation::Remove),
        (any::<Index>(), 1..24usize).prop_map(|(i, n)| Mutation::Repeat(i, n)),
        any::<Index>().prop_map(Mutation::Truncate),
    ]
}

fn mutate(mut bytes: Vec<u8>, mutations: &[Mutation]) -> Vec<u8> {
    for mutation in mutations {
        if bytes.is_empty() {
            bytes.push(b'\r');
            continue;
        }
        let len = bytes.len();
        match *mutation {
            Mutation::Replace(at, b) => bytes[at.index(len)] = b,
            Mutation::Insert(at, b) => bytes.insert(at.index(len + 1), b),
            Mutation::Remove(at) => {
                bytes.remove(at.index(len));
            }
            Mutation::Repeat(at, n) => {
                let from = at.index(len);
                let stretch = bytes[from..(from + n).min(len)].to_vec();
                bytes.splice(from..from, stretch);
            }
            Mutation::Truncate(at) => bytes.truncate(at.index(len)),
        }
    }
    bytes
}

/// Limits that are mostly roomy and sometimes tiny, so every limit is crossed at every point.
fn limits() -> impl Strategy<Value = Limits> {
    prop_oneof![
        3 => Just(Limits::default()),
        1 => (8usize..160, proptest::option::of(0u64..64))
            .prop_map(|(max_head, max_body)| Limits { max_head, max_body }),
    ]
}

/// Near-valid byte strings: the corpus's cases, the seeds, and generated pipelines, mutated.
fn near_valid() -> impl Strategy<Value = Vec<u8>> {
    let mut bases: Vec<Vec<u8>> = SEEDS.iter().map(|s| s.to_vec()).collect();
    bases.extend(corpus().iter().cloned());
    let base = prop_oneof![select(bases), pipeline().prop_map(|r| concat(&r))];
    (base, vec(mutation(), 0..4)).prop_map(|(base, mutations)| mutate(base, &mutations))
}

/// Soups of grammar fragments and random bytes.
fn soup() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        vec(any::<u8>(), 0..300),
        vec(
            prop_oneof![
                4 => select(FRAGMENTS).prop_map(<[u8]>::to_vec),
                1 => vec(any::<u8>(), 1..4),
            ],
            0..40
        )
        .prop_map(|parts| parts.concat()),
    ]
}

/// The split-invariance property: whole, byte by byte and at random cuts, the same outcome.
fn assert_split_invariant(
    limits: Limits,
    bytes: &[u8],
    seed: u64,
) -> Result<Outcome, TestCaseError> {
    let whole = drive(RequestParser::new(limits), bytes, Split::Whole);
    let random = drive(RequestParser::new(limits), bytes, Split::Random(seed));
    prop_assert_eq!(&random, &whole, "random split {} differs from whole", seed);
    // Byte by byte is the costliest split: only for strings of a reasonable size.
    if bytes.len() <= 4096 {
        let bytewise = drive(RequestParser::new(limits), bytes, Split::Bytewise);
        prop_assert_eq!(&bytewise, &whole, "byte by byte differs from whole");
    }
    Ok(whole)
}

proptest! {
    // (a) Anything at all: no panic, and the bytes end in complete requests or an error.
    #[test]
    fn arbitrary_bytes_end_in_requests_or_an_error(
        bytes in soup(),
        limits in limits(),
        seed in any::<u64>(),
    ) {
        let outcome = assert_split_invariant(limits, &bytes, seed)?;
        if outcome.error.is_none() {
            prop_assert!(
                outcome.requests.iter().all(|r| r.trailers.is_some()),
                "a request cut short, yet no error"
            );
            let only_empty_lines = bytes.iter().all(|&b| b == b'\r' || b == b'\n');
            prop_assert!(
                !outcome.requests.is_empty() || only_empty_lines,
                "bytes that are neither a request nor an error"
            );
        }
    }

    // (b) Near-valid bytes: the same results however they are split.
    #[test]
    fn near_valid_bytes_do_not_depend_on_splits(
        bytes in near_valid(),
        limits in limits(),
        seed in any::<u64>(),
    ) {
        assert_split_invariant(limits, &bytes, seed)?;
    }

    // (c) Generated valid pipelines reach the worker exactly as sent.
    #[test]
    fn valid_requests_round_trip(requests in pipeline(), seed in any::<u64>()) {
        let bytes = concat(&requests);
        let outcome = assert_split_invariant(ROOMY, &bytes, seed)?;
        assert_round_trip(&requests, &outcome)?;
    }

    // (d) Chunked bodies decode exactly, and --limit-post refuses exactly those over it.
    #[test]
    fn chunked_bodies_decode_exactly(
        body in chunked_body(),
        max_body in proptest::option::of(0u64..4000),
        seed in any::<u64>(),
    ) {
        let request = Request {
            method: "POST".into(),
            target: "/upload".into(),
            minor: 1,
            fields: vec![
                Field::plain("Host", b"h"),
                Field::plain("Transfer-Encoding", b"chunked"),
            ],
            body,
            close: false,
        };
        let limits = Limits { max_body, ..ROOMY };
        let outcome = assert_split_invariant(limits, &request.bytes(), seed)?;
        let size = request.body.decoded().len() as u64;
        if max_body.is_some_and(|max| size > max) {
            prop_assert_eq!(&outcome.error, &Some(HttpError::BodyTooLarge));
        } else {
            assert_round_trip(std::slice::from_ref(&request), &outcome)?;
        }
    }
}
