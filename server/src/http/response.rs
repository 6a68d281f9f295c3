//! HTTP/1.x responses, sans-IO: the head the app's `start_response` describes, serialised, and
//! the one rule that frames its body — `Content-Length`, chunked, or delimited by the close —
//! with whether the connection stays open. The worker gets a [`ResponseHead`] from
//! [`encode_head`], then frames each chunk with its [`BodyEncoder`], which knows the declared
//! length, and asks it at the end (or when the app fails mid-body) what the client has seen.
//!
//! The rules (RFC 9110 §6.4.1, §8.6, §15.3.5, §15.4.5; RFC 9112 §6.3, §9.6; PEP 3333):
//! - HEAD, 1xx, 204 and 304 never carry a body, whatever the app yields. 1xx and 204 never carry
//!   `Content-Length`; a 304's, like a HEAD's, is the app's (the representation's length), never
//!   made up from a body.
//! - Otherwise the app's `Content-Length` frames the body; without one, a body known whole
//!   before the head leaves (one chunk, or none) gets one; else an HTTP/1.1 client gets it
//!   chunked — also when the connection closes afterwards, so that a body cut short by an app
//!   error shows as incomplete — and an HTTP/1.0 client (or a uwsgi-protocol proxy) gets it
//!   delimited by the close.
//! - Hop-by-hop headers are the server's (PEP 3333): dropped, except that an app's
//!   `Connection: close` is honoured — sent, and the connection closed after the response.
//! - The status line and header values are ISO-8859-1 (PEP 3333's native strings): a character
//!   above U+00FF is the app's error, as is CR, LF or NUL (header injection).

use std::fmt;

/// `HTTP/1.1 100 Continue`, the interim answer to `Expect: 100-continue`.
pub const CONTINUE: &[u8] = b"HTTP/1.1 100 Continue\r\n\r\n";

/// What the framing depends on besides the app's status and headers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Exchange {
    /// The request's method was HEAD.
    pub head_request: bool,
    /// The request's `HTTP/1.x`.
    pub minor_version: u8,
    /// The server would keep the connection open after this response: a keep-alive socket, a
    /// client that did not ask to close, a worker that is not leaving.
    pub keep_alive: bool,
    /// The peer reads chunked bodies: an HTTP socket (not a uwsgi-protocol proxy). Chunked
    /// framing also needs an HTTP/1.1 request.
    pub chunked_ok: bool,
    /// The whole body's length, when it is known before the head leaves (a body of one chunk,
    /// or none).
    pub body_length: Option<u64>,
}

/// How the response's body is delimited.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Framing {
    /// HEAD, 1xx, 204, 304: no body whatever the app yields.
    NoBody,
    Length(u64),
    Chunked,
    /// The close ends the body (an HTTP/1.0 client, or a proxy on the uwsgi protocol).
    UntilClose,
}

/// The serialised head of a response and the decisions taken with it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ResponseHead {
    pub status: u16,
    /// Status line, headers and the empty line, ready for the wire.
    pub bytes: Vec<u8>,
    /// Header lines in `bytes` (uWSGI's `N headers in M bytes`).
    pub header_count: usize,
    pub framing: Framing,
    /// The connection stays open after this response.
    pub keep_alive: bool,
    /// The app sent `Connection: close` itself.
    pub app_closes: bool,
}

impl ResponseHead {
    /// The encoder for this response's body.
    pub fn encoder(&self) -> BodyEncoder {
        BodyEncoder {
            framing: self.framing,
            sent: 0,
        }
    }
}

/// Why the app's status or headers cannot be sent: the app's error, answered with a 500.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum HeadError {
    Status(String),
    HeaderName(String),
    /// CR, LF or NUL in a header value.
    Injection(String),
    /// A character ISO-8859-1 cannot encode; `header` is `None` for the status line.
    NotLatin1 {
        header: Option<String>,
        value: String,
    },
    ContentLength(String),
    TwoContentLengths,
}

impl fmt::Display for HeadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HeadError::Status(status) => {
                write!(f, "the app's status {status:?} is not '<3 digits> <reason>'")
            }
            HeadError::HeaderName(name) => write!(
                f,
                "the app's response header name {name:?} is not a valid HTTP token"
            ),
            HeadError::Injection(name) => write!(
                f,
                "the app's response header {name:?} contains CR, LF or NUL (header injection refused)"
            ),
            HeadError::NotLatin1 {
                header: Some(name),
                value,
            } => write!(
                f,
                "the app's response header {name:?} has the value {value:?}, which ISO-8859-1 cannot encode (PEP 3333: header values are latin-1 strings; encode others, e.g. RFC 8187's filename*=UTF-8''...)"
            ),
            HeadError::NotLatin1 {
                header: None,
                value,
            } => write!(
                f,
                "the app's status {value:?} has a character ISO-8859-1 cannot encode (PEP 3333: the status is a latin-1 string)"
            ),
            HeadError::ContentLength(value) => {
                write!(f, "the app's Content-Length {value:?} is not a number")
            }
            HeadError::TwoContentLengths => {
                f.write_str("the app sent two different Content-Length headers")
            }
        }
    }
}

impl std::error::Error for HeadError {}

const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
];

/// Validates what the app gave to `start_response`, decides the framing and serialises the
/// head.
pub fn encode_head(
    status: &str,
    headers: &[(String, String)],
    exchange: &Exchange,
) -> Result<ResponseHead, HeadError> {
    let code = parse_status(status).ok_or_else(|| HeadError::Status(status.to_owned()))?;
    // 1xx, 204: no Content-Length (RFC 9110 §8.6). 304, HEAD: the app's, if it gave one.
    let length_forbidden = (100..200).contains(&code) || code == 204;
    let no_body = length_forbidden || code == 304 || exchange.head_request;
    let mut out = Vec::with_capacity(128 + headers.len() * 40);
    out.extend_from_slice(b"HTTP/1.1 ");
    if !push_latin1(&mut out, status) {
        return Err(HeadError::NotLatin1 {
            header: None,
            value: status.to_owned(),
        });
    }
    out.extend_from_slice(b"\r\n");
    let mut content_length = None;
    let mut app_closes = false;
    let mut count = 0;
    for (name, value) in headers {
        if !is_token(name) {
            return Err(HeadError::HeaderName(name.clone()));
        }
        if memchr::memchr3(b'\r', b'\n', 0, value.as_bytes()).is_some() {
            return Err(HeadError::Injection(name.clone()));
        }
        if is_hop_by_hop(name) {
            // PEP 3333: hop-by-hop headers are the server's business; an app's wish to close
            // is honoured with the server's own `Connection: close`.
            if name.eq_ignore_ascii_case("connection")
                && value
                    .split(',')
                    .any(|option| option.trim().eq_ignore_ascii_case("close"))
            {
                app_closes = true;
            }
            continue;
        }
        if name.eq_ignore_ascii_case("content-length") {
            if length_forbidden {
                continue;
            }
            let n = value
                .trim()
                .parse::<u64>()
                .map_err(|_| HeadError::ContentLength(value.clone()))?;
            if content_length.is_some_and(|m| m != n) {
                return Err(HeadError::TwoContentLengths);
            }
            if content_length.is_some() {
                continue;
            }
            content_length = Some(n);
        }
        out.extend_from_slice(name.as_bytes());
        out.extend_from_slice(b": ");
        if !push_latin1(&mut out, value) {
            return Err(HeadError::NotLatin1 {
                header: Some(name.clone()),
                value: value.clone(),
            });
        }
        out.extend_from_slice(b"\r\n");
        count += 1;
    }
    let framing = if no_body {
        Framing::NoBody
    } else if let Some(n) = content_length {
        Framing::Length(n)
    } else if let Some(n) = exchange.body_length {
        out.extend_from_slice(b"Content-Length: ");
        push_decimal(&mut out, n);
        out.extend_from_slice(b"\r\n");
        count += 1;
        Framing::Length(n)
    } else if exchange.chunked_ok && exchange.minor_version >= 1 {
        out.extend_from_slice(b"Transfer-Encoding: chunked\r\n");
        count += 1;
        Framing::Chunked
    } else {
        Framing::UntilClose
    };
    let keep_alive = exchange.keep_alive && !app_closes && framing != Framing::UntilClose;
    if !keep_alive {
        out.extend_from_slice(b"Connection: close\r\n");
        count += 1;
    } else if exchange.minor_version == 0 {
        out.extend_from_slice(b"Connection: keep-alive\r\n");
        count += 1;
    }
    out.extend_from_slice(b"\r\n");
    Ok(ResponseHead {
        status: code,
        bytes: out,
        header_count: count,
        framing,
        keep_alive,
        app_closes,
    })
}

/// Appends `text` encoded as ISO-8859-1; false if a character is above U+00FF. ASCII, the
/// usual case, is copied as it is.
fn push_latin1(out: &mut Vec<u8>, text: &str) -> bool {
    if text.is_ascii() {
        out.extend_from_slice(text.as_bytes());
        return true;
    }
    for c in text.chars() {
        match u8::try_from(u32::from(c)) {
            Ok(byte) => out.push(byte),
            Err(_) => return false,
        }
    }
    true
}

fn is_hop_by_hop(name: &str) -> bool {
    // Every hop-by-hop name is 2 to 19 bytes long and starts with one of these letters.
    matches!(
        name.as_bytes().first(),
        Some(b'c' | b'C' | b'k' | b'K' | b'p' | b'P' | b't' | b'T' | b'u' | b'U')
    ) && HOP_BY_HOP.iter().any(|hop| name.eq_ignore_ascii_case(hop))
}

/// `"200 OK"` → 200. The reason phrase may be empty but the space is required (PEP 3333).
pub fn parse_status(status: &str) -> Option<u16> {
    let bytes = status.as_bytes();
    if bytes.len() < 4 || bytes[3] != b' ' || !bytes[..3].iter().all(u8::is_ascii_digit) {
        return None;
    }
    if memchr::memchr3(b'\r', b'\n', 0, bytes).is_some() {
        return None;
    }
    let code = u16::from(bytes[0] - b'0') * 100
        + u16::from(bytes[1] - b'0') * 10
        + u16::from(bytes[2] - b'0');
    (100..=999).contains(&code).then_some(code)
}

/// A header field name is a token (RFC 9110 §5.6.2).
pub fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
}

/// Frames a response's body chunk by chunk, counting what is sent against what was declared.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BodyEncoder {
    framing: Framing,
    sent: u64,
}

/// One chunk as it goes on the wire: `prefix`, `data`, `suffix` (the chunk-size line and its
/// CRLF when chunked; nothing around it otherwise).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Frame<'a> {
    size_line: [u8; 18],
    size_len: u8,
    pub data: &'a [u8],
    pub suffix: &'static [u8],
    /// The app gave more than its Content-Length: `data` stops at the declared length and the
    /// rest must not be sent (the connection closes).
    pub overflow: bool,
}

impl Frame<'_> {
    pub fn prefix(&self) -> &[u8] {
        &self.size_line[..usize::from(self.size_len)]
    }

    /// Nothing to write.
    pub fn is_empty(&self) -> bool {
        self.size_len == 0 && self.data.is_empty() && self.suffix.is_empty()
    }
}

/// How a body ended when the app had nothing more to give.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct End {
    /// Bytes that end the body on the wire (the last chunk, when chunked).
    pub trailer: &'static [u8],
    /// The app declared a Content-Length and gave less: `(declared, sent)`. The client sees a
    /// short body; the connection must close.
    pub short: Option<(u64, u64)>,
}

/// What the client has, when the body stops where it is (the app failed in the middle).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Cut {
    /// Nothing more was owed: a response without a body, or a declared length all sent.
    Complete,
    /// Its Content-Length promised more: the client sees a short body at the close.
    ShortOfLength { declared: u64, sent: u64 },
    /// A chunked body without its last chunk: the client sees it incomplete at the close.
    NoLastChunk,
    /// A body delimited by the close: a close would look like its end, so the connection must
    /// be reset instead for the client to see a failure.
    NeedsReset,
}

impl Cut {
    /// What the client sees, for the log.
    pub fn describe(self) -> String {
        match self {
            Cut::Complete => "the client already had the whole response; the connection closes".into(),
            Cut::ShortOfLength { declared, sent } => format!(
                "the body stops at {sent} of the {declared} bytes its Content-Length declared and the connection closes, so the client sees an incomplete response"
            ),
            Cut::NoLastChunk => "the chunked body ends without its last chunk and the connection closes, so the client sees an incomplete response".into(),
            Cut::NeedsReset => "the body had no length and was delimited by the close (an HTTP/1.0 client cannot be sent chunks), so the connection is reset rather than closed and the client sees an error instead of a body that looks complete".into(),
        }
    }
}

impl BodyEncoder {
    pub fn framing(&self) -> Framing {
        self.framing
    }

    /// Body bytes sent so far (chunk framing not counted).
    pub fn sent(&self) -> u64 {
        self.sent
    }

    /// Frames the app's next chunk.
    pub fn frame<'a>(&mut self, chunk: &'a [u8]) -> Frame<'a> {
        let mut frame = Frame {
            size_line: [0; 18],
            size_len: 0,
            data: chunk,
            suffix: b"",
            overflow: false,
        };
        match self.framing {
            Framing::NoBody => frame.data = b"",
            Framing::Length(declared) => {
                let room = declared - self.sent;
                if chunk.len() as u64 > room {
                    frame.data = &chunk[..room as usize];
                    frame.overflow = true;
                }
            }
            Framing::Chunked if chunk.is_empty() => {}
            Framing::Chunked => {
                frame.size_len = hex_line(chunk.len() as u64, &mut frame.size_line);
                frame.suffix = b"\r\n";
            }
            Framing::UntilClose => {}
        }
        self.sent += frame.data.len() as u64;
        frame
    }

    /// The app has nothing more: how the body ends.
    pub fn finish(&self) -> End {
        match self.framing {
            Framing::Chunked => End {
                trailer: b"0\r\n\r\n",
                short: None,
            },
            Framing::Length(declared) if self.sent < declared => End {
                trailer: b"",
                short: Some((declared, self.sent)),
            },
            _ => End {
                trailer: b"",
                short: None,
            },
        }
    }

    /// The app failed before its body ended: what the client has.
    pub fn cut(&self) -> Cut {
        match self.framing {
            Framing::NoBody => Cut::Complete,
            Framing::Length(declared) if self.sent >= declared => Cut::Complete,
            Framing::Length(declared) => Cut::ShortOfLength {
                declared,
                sent: self.sent,
            },
            Framing::Chunked => Cut::NoLastChunk,
            Framing::UntilClose => Cut::NeedsReset,
        }
    }
}

fn push_decimal(out: &mut Vec<u8>, mut n: u64) {
    let mut digits = [0u8; 20];
    let mut len = 0;
    loop {
        digits[len] = b'0' + (n % 10) as u8;
        len += 1;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend(digits[..len].iter().rev());
}

/// `n` in hex followed by CRLF, into `out`; its length.
fn hex_line(mut n: u64, out: &mut [u8; 18]) -> u8 {
    let mut digits = [0u8; 16];
    let mut len = 0;
    loop {
        digits[len] = b"0123456789abcdef"[(n & 15) as usize];
        len += 1;
        n >>= 4;
        if n == 0 {
            break;
        }
    }
    for i in 0..len {
        out[i] = digits[len - 1 - i];
    }
    out[len] = b'\r';
    out[len + 1] = b'\n';
    (len + 2) as u8
}

/// A response the server writes by itself — an error (400-class, 408, 500) or the stats
/// document — in one buffer, always closing the connection.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PlainResponse {
    /// Head and body.
    pub bytes: Vec<u8>,
    pub header_count: usize,
    pub head_len: usize,
}

impl PlainResponse {
    /// `HTTP/1.1 <status> <reason>` with a `text/plain` body of `<status> <reason>\n`.
    pub fn error(status: u16, reason: &str) -> PlainResponse {
        let body = format!("{status} {reason}\n");
        Self::new("HTTP/1.1", status, reason, "text/plain", body.as_bytes())
    }

    /// Any status and body, with `Content-Length` and `Connection: close`.
    pub fn new(
        version: &str,
        status: u16,
        reason: &str,
        content_type: &str,
        body: &[u8],
    ) -> PlainResponse {
        let head = format!(
            "{version} {status} {reason}\r\nContent-Type: {content_type}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            body.len()
        );
        let mut bytes = Vec::with_capacity(head.len() + body.len());
        bytes.extend_from_slice(head.as_bytes());
        bytes.extend_from_slice(body);
        PlainResponse {
            bytes,
            header_count: 3,
            head_len: head.len(),
        }
    }

    pub fn body_len(&self) -> usize {
        self.bytes.len() - self.head_len
    }
}
