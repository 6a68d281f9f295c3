//! Why a request was refused: each [`HttpError`] names the status the worker answers with
//! before it closes the connection, and a one-line explanation for the log.

use std::fmt;

use super::Limits;

/// A request the parser refuses. After returning one, the parser is dead: the worker answers
/// [`HttpError::status`] and closes the connection, because the framing of anything that
/// follows can no longer be trusted.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum HttpError {
    /// 431: the request line and headers do not fit in `--buffer-size` bytes. A request line
    /// that does not fit on its own is [`HttpError::UriTooLong`] instead.
    HeadTooLarge,
    /// 431: more header (or trailer) lines than the parser keeps (100), in a head that fits.
    TooManyFields,
    /// 431: a chunked body's trailer section does not fit in `--buffer-size` bytes.
    TrailersTooLarge,
    /// 414: the request line alone (with its CRLF, and any empty lines before it) does not fit
    /// in `--buffer-size` bytes: the request-target is longer than the server will parse
    /// (RFC 9112 §3).
    UriTooLong,
    /// 413: the body is larger than `--limit-post`.
    BodyTooLarge,
    /// 400: the bytes are not a well-formed HTTP/1.x request; the reason is a short phrase.
    Malformed(&'static str),
    /// 501: the request's body uses a transfer coding other than `chunked`.
    UnsupportedTransferEncoding,
    /// 505: a well-formed `HTTP/x.y` version other than 1.0 and 1.1.
    UnsupportedVersion,
    /// 501: a `CONNECT` request. wsgilab is an origin server, not a proxy, so it never opens
    /// tunnels (RFC 9110 §9.3.6, §15.6.2).
    UnsupportedMethod,
}

impl HttpError {
    /// The status code the worker answers with.
    pub fn status(&self) -> u16 {
        match self {
            HttpError::HeadTooLarge | HttpError::TooManyFields | HttpError::TrailersTooLarge => 431,
            HttpError::UriTooLong => 414,
            HttpError::BodyTooLarge => 413,
            HttpError::Malformed(_) => 400,
            HttpError::UnsupportedTransferEncoding | HttpError::UnsupportedMethod => 501,
            HttpError::UnsupportedVersion => 505,
        }
    }

    /// The reason phrase registered for [`HttpError::status`].
    pub fn reason_phrase(&self) -> &'static str {
        match self.status() {
            431 => "Request Header Fields Too Large",
            414 => "URI Too Long",
            413 => "Content Too Large",
            501 => "Not Implemented",
            505 => "HTTP Version Not Supported",
            _ => "Bad Request",
        }
    }

    /// Like `Display`, with the configured limit in the message for the size errors,
    /// e.g. "request head larger than --buffer-size (4096 bytes)". The variants stay unit
    /// variants so callers can match on them plainly; the limit comes from the caller, who
    /// built the parser from those [`Limits`].
    pub fn describe(&self, limits: &Limits) -> String {
        match (self, limits.max_body) {
            (HttpError::HeadTooLarge | HttpError::UriTooLong | HttpError::TrailersTooLarge, _) => {
                format!("{self} ({} bytes)", limits.max_head)
            }
            (HttpError::BodyTooLarge, Some(max_body)) => format!("{self} ({max_body} bytes)"),
            _ => self.to_string(),
        }
    }
}

impl fmt::Display for HttpError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            HttpError::HeadTooLarge => f.write_str("request head larger than --buffer-size"),
            HttpError::TooManyFields => write!(
                f,
                "more than {} header or trailer lines",
                super::head::MAX_HEADERS
            ),
            HttpError::TrailersTooLarge => {
                f.write_str("chunked body's trailer section larger than --buffer-size")
            }
            HttpError::UriTooLong => f.write_str("request line larger than --buffer-size"),
            HttpError::BodyTooLarge => f.write_str("request body larger than --limit-post"),
            HttpError::Malformed(reason) => write!(f, "malformed request: {reason}"),
            HttpError::UnsupportedTransferEncoding => {
                f.write_str("request body uses a transfer coding other than chunked")
            }
            HttpError::UnsupportedVersion => {
                f.write_str("HTTP version not supported (only HTTP/1.0 and HTTP/1.1)")
            }
            HttpError::UnsupportedMethod => {
                f.write_str("CONNECT is not supported: wsgilab is not a proxy")
            }
        }
    }
}

impl std::error::Error for HttpError {}
