//! A complete request head — request line and header fields — turned into a [`RequestHead`]:
//! httparse splits the lines, and the rules of RFC 9112/9110 that decide how the body is
//! framed, whether the connection stays open and whether the request is acceptable at all are
//! applied here, once, on the whole head.

use super::chunked::is_tchar;
use super::target::{is_host_and_port, parse_target};
use super::{HttpError, Limits};

/// How many header lines a head may have. More is answered 431, as for a head that is too long.
pub(super) const MAX_HEADERS: usize = 100;

/// One header (or trailer) field line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// The field name as sent (names are case-insensitive: compare with `eq_ignore_ascii_case`).
    pub name: String,
    /// The field value as sent, without leading and trailing whitespace. Bytes: a value may
    /// carry obs-text (bytes ≥ 0x80) that is not UTF-8.
    pub value: Vec<u8>,
}

/// How the request body is delimited (RFC 9112 §6.3).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BodyFraming {
    /// No body: neither Content-Length nor Transfer-Encoding, or `Content-Length: 0`.
    Empty,
    /// Exactly this many bytes (never 0).
    Length(u64),
    /// `Transfer-Encoding: chunked`, decoded by the parser.
    Chunked,
}

/// The request line and headers of one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestHead {
    pub method: String,
    /// The request-target as sent. httparse only lets through targets that are valid UTF-8, so
    /// this is exact.
    pub target: String,
    /// The path, percent-decoded (%2F too); "*" for `OPTIONS *`; the path of the URL for an
    /// absolute-form target ("/" if it has none).
    pub path: Vec<u8>,
    /// The path as sent, not decoded.
    pub raw_path: String,
    /// After the first '?', not decoded, without any '#fragment'.
    pub query: String,
    /// The authority of an absolute-form target, without any userinfo: `host[:port]` as sent
    /// (`http://u@example.com:8080/x` gives `example.com:8080`). When present, it names the
    /// host the request is for, and the Host header is ignored (RFC 9112 §3.2.2); otherwise
    /// the Host header does.
    pub authority: Option<String>,
    /// 0 for HTTP/1.0, 1 for HTTP/1.1.
    pub minor_version: u8,
    pub headers: Vec<Header>,
    pub framing: BodyFraming,
    /// Whether the connection may carry another request after this one.
    pub keep_alive: bool,
    /// `Expect: 100-continue` on an HTTP/1.1 request with a body: the client waits for
    /// "100 Continue" before sending the body.
    pub expect_continue: bool,
}

impl RequestHead {
    /// The first header with this name (case-insensitive).
    pub fn header(&self, name: &str) -> Option<&Header> {
        self.headers
            .iter()
            .find(|header| header.name.eq_ignore_ascii_case(name))
    }
}

/// Parses a complete head: `block` runs from the request line through the empty line.
///
/// `require_host` is always true in the server; the corpus tests turn it off to check the rest
/// of gunicorn's expectations on its many HTTP/1.1 examples that have no Host header.
pub(super) fn parse_head(
    block: &[u8],
    limits: &Limits,
    require_host: bool,
) -> Result<RequestHead, HttpError> {
    let mut header_slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut request = httparse::Request::new(&mut header_slots);
    match request.parse(block) {
        Ok(httparse::Status::Complete(len)) if len == block.len() => {}
        // The block ends at the first empty line, so httparse must consume exactly all of it.
        Ok(_) => return Err(HttpError::Malformed("invalid request head")),
        Err(error) => return Err(from_httparse(error, block)),
    }
    let method = request.method.expect("complete request has a method");
    let target = request.path.expect("complete request has a target");
    let minor_version = request.version.expect("complete request has a version");

    let headers = convert_headers(request.headers)?;
    let parsed_target = parse_target(method, target)?;
    check_singletons(&headers, minor_version, require_host)?;
    let framing = body_framing(&headers, minor_version, limits)?;
    let keep_alive = keep_alive(&headers, minor_version);
    let expect_continue = minor_version == 1
        && framing != BodyFraming::Empty
        && field_elements(&headers, "expect").any(|e| e.eq_ignore_ascii_case(b"100-continue"));

    Ok(RequestHead {
        method: method.to_owned(),
        target: target.to_owned(),
        path: parsed_target.path,
        raw_path: parsed_target.raw_path,
        query: parsed_target.query,
        authority: parsed_target.authority,
        minor_version,
        headers,
        framing,
        keep_alive,
        expect_continue,
    })
}

/// Why a request line did not end within `--buffer-size`: `line` is the start of it that fits
/// (after any leading empty lines, and without a CR whose LF did not fit).
///
/// If those bytes are a well-formed start of a request line, the line is simply longer than
/// the server will parse: 414 (RFC 9112 §3), whichever of its parts overflows (in practice the
/// target; a method that long gets 414 too). If they are not, the request is malformed
/// whatever follows — a TLS ClientHello sent to a plain HTTP port, say — and gets the error
/// a complete head with that start would get, not 414.
pub(super) fn request_line_too_long(line: &[u8]) -> HttpError {
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let mut request = httparse::Request::new(&mut []);
    match request.parse(line) {
        Ok(_) => HttpError::UriTooLong,
        Err(error) => from_httparse(error, line),
    }
}

/// Parses a complete trailer section (RFC 9112 §7.1.2): field lines through the empty line.
pub(super) fn parse_trailers(block: &[u8]) -> Result<Vec<Header>, HttpError> {
    let mut header_slots = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let fields = match httparse::parse_headers(block, &mut header_slots) {
        Ok(httparse::Status::Complete((len, fields))) if len == block.len() => fields,
        Ok(_) => return Err(HttpError::Malformed("invalid trailer section")),
        Err(httparse::Error::TooManyHeaders) => return Err(HttpError::TooManyFields),
        Err(_) => return Err(HttpError::Malformed("invalid trailer field")),
    };
    let trailers = convert_headers(fields)?;
    // A trailer arrives after the body, too late to frame or route the request. RFC 9110
    // §6.5.1 forbids senders to put such fields there; a request that does is refused rather
    // than passed on, so no later consumer can mistake them for the real header.
    const FORBIDDEN: [&str; 3] = ["content-length", "transfer-encoding", "host"];
    if trailers
        .iter()
        .any(|t| FORBIDDEN.iter().any(|f| t.name.eq_ignore_ascii_case(f)))
    {
        return Err(HttpError::Malformed(
            "Content-Length, Transfer-Encoding or Host in the trailer section",
        ));
    }
    Ok(trailers)
}

fn from_httparse(error: httparse::Error, block: &[u8]) -> HttpError {
    match error {
        httparse::Error::TooManyHeaders => HttpError::TooManyFields,
        httparse::Error::Version => {
            // httparse accepts only "HTTP/1.0" and "HTTP/1.1". A well-formed HTTP-version
            // (RFC 9112 §2.3: "HTTP/" DIGIT "." DIGIT) that is neither gets 505; anything
            // else in that place is not HTTP/1.x at all.
            let request_line = &block[..memchr::memchr(b'\r', block).unwrap_or(block.len())];
            let mut parts = request_line.split(|&b| b == b' ');
            match (parts.next(), parts.next(), parts.next(), parts.next()) {
                (
                    Some(_),
                    Some(_),
                    Some([b'H', b'T', b'T', b'P', b'/', major, b'.', minor]),
                    None,
                ) if major.is_ascii_digit() && minor.is_ascii_digit() => {
                    HttpError::UnsupportedVersion
                }
                _ => HttpError::Malformed("invalid HTTP version"),
            }
        }
        httparse::Error::Token => HttpError::Malformed("invalid request line"),
        httparse::Error::HeaderName => {
            HttpError::Malformed("invalid header name (or whitespace before ':', or a folded line)")
        }
        httparse::Error::HeaderValue => HttpError::Malformed("invalid header value"),
        httparse::Error::NewLine | httparse::Error::Status => {
            HttpError::Malformed("invalid request line")
        }
    }
}

/// Copies httparse's borrowed fields into owned [`Header`]s, checking values for control
/// characters: httparse refuses them, and this check keeps that guarantee here whatever its
/// SIMD paths do.
fn convert_headers(fields: &[httparse::Header<'_>]) -> Result<Vec<Header>, HttpError> {
    fields
        .iter()
        .map(|field| {
            let value = trim_whitespace(field.value);
            if value.iter().any(|&b| (b < b' ' && b != b'\t') || b == 0x7f) {
                return Err(HttpError::Malformed("control character in a header value"));
            }
            Ok(Header {
                name: field.name.to_owned(),
                value: value.to_vec(),
            })
        })
        .collect()
}

/// Host, and Content-Type: fields the application sees as one value. Two of them is a request
/// that two parsers may read differently, so it is refused (RFC 9112 §3.2 for Host).
///
/// A Host value must be `uri-host [ ":" port ]` (RFC 9112 §3.2), checked as an absolute-form
/// target's authority is, without userinfo: anything else is refused, even when an
/// absolute-form target makes the value irrelevant, since RFC 9112 §3.2's 400 applies to
/// "any request message". An empty value is accepted: RFC 9110 §7.2 has clients send one when
/// the target URI has no authority, and RFC 9112 §3.3 then names the server by its default
/// name, which for wsgilab is the local address (as for an HTTP/1.0 request without Host).
/// A host made only of a port (":80") is refused: an http URI's host is never empty
/// (RFC 9110 §4.2.1).
fn check_singletons(
    headers: &[Header],
    minor_version: u8,
    require_host: bool,
) -> Result<(), HttpError> {
    let count = |name: &str| {
        headers
            .iter()
            .filter(|header| header.name.eq_ignore_ascii_case(name))
            .count()
    };
    match count("host") {
        0 if minor_version == 1 && require_host => Err(HttpError::Malformed(
            "HTTP/1.1 request without a Host header",
        )),
        0 | 1 => Ok(()),
        _ => Err(HttpError::Malformed("more than one Host header")),
    }?;
    if let Some(host) = headers
        .iter()
        .find(|header| header.name.eq_ignore_ascii_case("host"))
    {
        if !host.value.is_empty() && !is_host_and_port(&host.value) {
            return Err(HttpError::Malformed("invalid Host header value"));
        }
    }
    if count("content-type") > 1 {
        return Err(HttpError::Malformed("more than one Content-Type header"));
    }
    Ok(())
}

/// RFC 9112 §6.1–6.3, for requests: Transfer-Encoding wins only when it is exactly `chunked`;
/// everything ambiguous is refused rather than guessed at, because a front proxy may have
/// guessed differently (request smuggling).
fn body_framing(
    headers: &[Header],
    minor_version: u8,
    limits: &Limits,
) -> Result<BodyFraming, HttpError> {
    let mut content_length: Option<u64> = None;
    // RFC 9110 §8.6: repeated Content-Length lines, or a comma list, are accepted when every
    // value is the same number.
    for element in field_elements_raw(headers, "content-length") {
        let length = parse_content_length(element)?;
        if content_length.is_some_and(|previous| previous != length) {
            return Err(HttpError::Malformed("conflicting Content-Length values"));
        }
        content_length = Some(length);
    }

    let has_transfer_encoding = headers
        .iter()
        .any(|header| header.name.eq_ignore_ascii_case("transfer-encoding"));
    if has_transfer_encoding {
        if minor_version == 0 {
            // RFC 9112 §6.1: HTTP/1.0 has no Transfer-Encoding; a 1.0 message with one is
            // treated as faulty.
            return Err(HttpError::Malformed(
                "Transfer-Encoding in an HTTP/1.0 request",
            ));
        }
        if content_length.is_some() {
            // RFC 9112 §6.1 lets a server reject this outright, and it is the classic
            // request-smuggling setup.
            return Err(HttpError::Malformed(
                "both Transfer-Encoding and Content-Length",
            ));
        }
        let mut chunked = 0;
        let mut other_codings = false;
        for coding in field_elements(headers, "transfer-encoding") {
            // transfer-coding = token *( OWS ";" OWS transfer-parameter )
            let (name, has_parameters) = match memchr::memchr(b';', coding) {
                Some(semicolon) => (trim_whitespace(&coding[..semicolon]), true),
                None => (coding, false),
            };
            if name.is_empty() || !name.iter().all(|&b| is_tchar(b)) {
                return Err(HttpError::Malformed("invalid Transfer-Encoding"));
            }
            if name.eq_ignore_ascii_case(b"chunked") {
                if has_parameters {
                    return Err(HttpError::Malformed("chunked takes no parameters"));
                }
                chunked += 1;
            } else {
                other_codings = true;
            }
        }
        if chunked > 1 {
            return Err(HttpError::Malformed("chunked applied more than once"));
        }
        if other_codings {
            // gzip, deflate, identity (not a coding since RFC 7230), ...: wsgilab does not
            // decode request transfer codings, so it cannot find the body (RFC 9112 §6.1: 501).
            // This also covers "chunked, gzip", where chunked is not final (§6.3 would say
            // 400): the reason the request cannot be served is the coding we do not know.
            return Err(HttpError::UnsupportedTransferEncoding);
        }
        if chunked == 0 {
            return Err(HttpError::Malformed("empty Transfer-Encoding"));
        }
        return Ok(BodyFraming::Chunked);
    }

    match content_length {
        None | Some(0) => Ok(BodyFraming::Empty),
        Some(length) if limits.max_body.is_some_and(|max| length > max) => {
            Err(HttpError::BodyTooLarge)
        }
        Some(length) => Ok(BodyFraming::Length(length)),
    }
}

/// Content-Length = 1*DIGIT: no sign, no whitespace inside, no hex, no empty value.
fn parse_content_length(element: &[u8]) -> Result<u64, HttpError> {
    if element.is_empty() || !element.iter().all(u8::is_ascii_digit) {
        return Err(HttpError::Malformed("Content-Length is not a number"));
    }
    element.iter().try_fold(0u64, |length, &digit| {
        length
            .checked_mul(10)
            .and_then(|length| length.checked_add(u64::from(digit - b'0')))
            .ok_or(HttpError::Malformed("Content-Length too large"))
    })
}

/// RFC 9112 §9.3: HTTP/1.1 stays open unless `Connection: close`; HTTP/1.0 closes unless
/// `Connection: keep-alive`.
fn keep_alive(headers: &[Header], minor_version: u8) -> bool {
    let mut close = false;
    let mut keep_alive = false;
    for option in field_elements(headers, "connection") {
        close |= option.eq_ignore_ascii_case(b"close");
        keep_alive |= option.eq_ignore_ascii_case(b"keep-alive");
    }
    !close && (minor_version == 1 || keep_alive)
}

/// The elements of a comma-separated list field (RFC 9110 §5.6.1) over all its lines,
/// trimmed, without the empty ones.
fn field_elements<'h>(headers: &'h [Header], name: &'h str) -> impl Iterator<Item = &'h [u8]> {
    field_elements_raw(headers, name).filter(|element| !element.is_empty())
}

/// Like [`field_elements`], keeping empty elements (an empty Content-Length is an error).
fn field_elements_raw<'h>(headers: &'h [Header], name: &'h str) -> impl Iterator<Item = &'h [u8]> {
    headers
        .iter()
        .filter(move |header| header.name.eq_ignore_ascii_case(name))
        .flat_map(|header| header.value.split(|&b| b == b','))
        .map(trim_whitespace)
}

fn trim_whitespace(bytes: &[u8]) -> &[u8] {
    let is_space = |b: &u8| *b == b' ' || *b == b'\t';
    let start = bytes
        .iter()
        .position(|b| !is_space(b))
        .unwrap_or(bytes.len());
    let end = bytes
        .iter()
        .rposition(|b| !is_space(b))
        .map_or(start, |last| last + 1);
    &bytes[start..end]
}
