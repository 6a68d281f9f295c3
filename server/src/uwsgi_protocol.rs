//! The uwsgi binary protocol (`--socket`, nginx's `uwsgi_pass`), sans-IO: a 4-byte header —
//! modifier1 (0 for WSGI), the size of the variables block as a little-endian u16, modifier2 —
//! then the variables as pairs (u16 LE key length, key, u16 LE value length, value), then the
//! request body. The variables are the request's CGI environ, already built by the proxy.
//!
//! Parsed strictly, with the same limits as HTTP: the block may not exceed `--buffer-size`,
//! every length must fit inside it, and the pairs must fill it exactly.

use std::borrow::Cow;

use crate::http::{BodyFraming, Header, RequestHead};

/// One request's header and variables.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Packet {
    pub modifier1: u8,
    pub modifier2: u8,
    pub vars: Vec<(String, Vec<u8>)>,
}

/// Why a packet is refused; the connection is closed without an answer, as uWSGI does.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum PacketError {
    /// The block is larger than `--buffer-size` (uWSGI: `invalid request block size`).
    TooLarge {
        size: usize,
        max: usize,
    },
    Malformed(&'static str),
    /// modifier1 other than 0: not a WSGI request.
    Modifier(u8),
}

impl std::fmt::Display for PacketError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            PacketError::TooLarge { size, max } => {
                write!(f, "invalid request block size: {size} (max {max})...skip")
            }
            PacketError::Malformed(why) => write!(f, "invalid uwsgi request: {why}"),
            PacketError::Modifier(m) => write!(
                f,
                "unsupported uwsgi modifier1 {m} (only 0, WSGI, is served)"
            ),
        }
    }
}

/// The first packet in `buf`: `Ok(None)` until all of its header and variables arrived;
/// otherwise the packet and how many bytes it took (the body follows).
pub fn parse_packet(buf: &[u8], max: usize) -> Result<Option<(Packet, usize)>, PacketError> {
    if buf.len() < 4 {
        return Ok(None);
    }
    let (modifier1, modifier2) = (buf[0], buf[3]);
    let size = u16::from_le_bytes([buf[1], buf[2]]) as usize;
    if size > max {
        return Err(PacketError::TooLarge { size, max });
    }
    if modifier1 != 0 {
        return Err(PacketError::Modifier(modifier1));
    }
    if buf.len() < 4 + size {
        return Ok(None);
    }
    let mut block = &buf[4..4 + size];
    let mut vars = Vec::new();
    while !block.is_empty() {
        let key = take_field(&mut block)?;
        let value = take_field(&mut block)?;
        if key.is_empty() || !key.iter().all(|b| b.is_ascii_graphic()) {
            return Err(PacketError::Malformed(
                "a variable name is empty or not printable ASCII",
            ));
        }
        let key = String::from_utf8(key.to_vec())
            .map_err(|_| PacketError::Malformed("a variable name is not ASCII"))?;
        vars.push((key, value.to_vec()));
    }
    Ok(Some((
        Packet {
            modifier1,
            modifier2,
            vars,
        },
        4 + size,
    )))
}

fn take_field<'a>(block: &mut &'a [u8]) -> Result<&'a [u8], PacketError> {
    if block.len() < 2 {
        return Err(PacketError::Malformed(
            "a length runs past the variables block",
        ));
    }
    let len = u16::from_le_bytes([block[0], block[1]]) as usize;
    if block.len() < 2 + len {
        return Err(PacketError::Malformed(
            "a variable runs past the variables block",
        ));
    }
    let field = &block[2..2 + len];
    *block = &block[2 + len..];
    Ok(field)
}

impl Packet {
    pub fn var(&self, name: &str) -> Option<&[u8]> {
        self.vars
            .iter()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.as_slice())
    }

    fn text(&self, name: &str) -> String {
        self.var(name)
            .map(|v| v.iter().map(|&b| b as char).collect())
            .unwrap_or_default()
    }

    /// The request as the worker's response code sees an HTTP one: method, target, version,
    /// headers (from the `HTTP_*` variables) and the body's length.
    pub fn request_head(&self) -> Result<RequestHead, PacketError> {
        let method = self.text("REQUEST_METHOD");
        if method.is_empty() {
            return Err(PacketError::Malformed("no REQUEST_METHOD"));
        }
        let length = match self.var("CONTENT_LENGTH") {
            None | Some(b"") => 0,
            Some(v) => std::str::from_utf8(v)
                .ok()
                .filter(|s| s.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|s| s.parse::<u64>().ok())
                .ok_or(PacketError::Malformed("CONTENT_LENGTH is not a number"))?,
        };
        let path = self.var("PATH_INFO").unwrap_or(b"/").to_vec();
        let query = self.text("QUERY_STRING");
        let target = match self.var("REQUEST_URI") {
            Some(uri) => uri.iter().map(|&b| b as char).collect(),
            None if query.is_empty() => path.iter().map(|&b| b as char).collect(),
            None => format!(
                "{}?{query}",
                path.iter().map(|&b| b as char).collect::<String>()
            ),
        };
        let headers = self
            .vars
            .iter()
            .filter_map(|(k, v)| {
                let name = k.strip_prefix("HTTP_")?;
                Some(Header {
                    name: name.replace('_', "-"),
                    value: v.clone(),
                })
            })
            .collect();
        Ok(RequestHead {
            method,
            raw_path: target.split('?').next().unwrap_or_default().to_string(),
            target,
            path,
            query,
            authority: None,
            minor_version: u8::from(self.text("SERVER_PROTOCOL") != "HTTP/1.0"),
            headers,
            framing: if length > 0 {
                BodyFraming::Length(length)
            } else {
                BodyFraming::Empty
            },
            keep_alive: false,
            expect_continue: false,
        })
    }

    /// The environ's CGI variables: the proxy's, completed with what PEP 3333 requires and a
    /// proxy may leave out (nginx's `uwsgi_params` has no SCRIPT_NAME, for one).
    pub fn into_environ(
        self,
        local: std::net::SocketAddr,
        peer: std::net::SocketAddr,
    ) -> Vec<(Cow<'static, str>, Cow<'static, [u8]>)> {
        let path = self
            .var("PATH_INFO")
            .map(<[u8]>::to_vec)
            .unwrap_or_else(|| {
                let uri = self.var("REQUEST_URI").unwrap_or(b"/");
                uri.split(|&b| b == b'?').next().unwrap_or(b"/").to_vec()
            });
        let defaults: [(&'static str, Vec<u8>); 8] = [
            ("SCRIPT_NAME", Vec::new()),
            ("PATH_INFO", path),
            ("QUERY_STRING", Vec::new()),
            ("SERVER_PROTOCOL", b"HTTP/1.1".to_vec()),
            ("SERVER_NAME", local.ip().to_string().into_bytes()),
            ("SERVER_PORT", local.port().to_string().into_bytes()),
            ("REMOTE_ADDR", peer.ip().to_string().into_bytes()),
            ("REMOTE_PORT", peer.port().to_string().into_bytes()),
        ];
        let missing: Vec<_> = defaults
            .into_iter()
            .filter(|(k, _)| self.var(k).is_none())
            .map(|(k, v)| (Cow::Borrowed(k), Cow::Owned(v)))
            .collect();
        let mut vars: Vec<_> = self
            .vars
            .into_iter()
            .map(|(k, v)| (Cow::Owned(k), Cow::Owned(v)))
            .collect();
        vars.extend(missing);
        vars
    }

    /// `https` when the proxy says the client came over TLS.
    pub fn url_scheme(&self) -> &'static str {
        let https =
            matches!(self.var("HTTPS"), Some(v) if v.eq_ignore_ascii_case(b"on") || v == b"1");
        let scheme = self.var("UWSGI_SCHEME").or(self.var("REQUEST_SCHEME"));
        if https || scheme == Some(b"https") {
            "https"
        } else {
            "http"
        }
    }
}

/// Encodes a packet (for tests and the simulation's clients).
pub fn encode(vars: &[(&str, &[u8])]) -> Vec<u8> {
    let mut block = Vec::new();
    for (k, v) in vars {
        block.extend_from_slice(&(k.len() as u16).to_le_bytes());
        block.extend_from_slice(k.as_bytes());
        block.extend_from_slice(&(v.len() as u16).to_le_bytes());
        block.extend_from_slice(v);
    }
    let mut out = vec![0];
    out.extend_from_slice(&(block.len() as u16).to_le_bytes());
    out.push(0);
    out.extend_from_slice(&block);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    fn nginx_like() -> Vec<u8> {
        encode(&[
            ("QUERY_STRING", b"a=1"),
            ("REQUEST_METHOD", b"POST"),
            ("CONTENT_TYPE", b"text/plain"),
            ("CONTENT_LENGTH", b"5"),
            ("REQUEST_URI", b"/x/y?a=1"),
            ("PATH_INFO", b"/x/y"),
            ("SERVER_PROTOCOL", b"HTTP/1.1"),
            ("HTTPS", b"on"),
            ("REMOTE_ADDR", b"10.0.0.7"),
            ("HTTP_HOST", b"example.com"),
            ("HTTP_X_FORWARDED_FOR", b"1.2.3.4"),
        ])
    }

    #[test]
    fn parses_what_nginx_sends_however_it_is_split() {
        let mut bytes = nginx_like();
        bytes.extend_from_slice(b"hello");
        let whole = parse_packet(&bytes, 4096).unwrap().unwrap();
        for cut in 0..whole.1 {
            assert_eq!(
                parse_packet(&bytes[..cut], 4096).unwrap(),
                None,
                "cut at {cut}"
            );
        }
        let (packet, used) = whole;
        assert_eq!(&bytes[used..], b"hello");
        assert_eq!(packet.var("REMOTE_ADDR"), Some(&b"10.0.0.7"[..]));
        assert_eq!(packet.url_scheme(), "https");
        let head = packet.request_head().unwrap();
        assert_eq!(head.method, "POST");
        assert_eq!(head.target, "/x/y?a=1");
        assert_eq!(head.query, "a=1");
        assert_eq!(head.framing, BodyFraming::Length(5));
        assert_eq!(
            head.header("host").map(|h| h.value.as_slice()),
            Some(&b"example.com"[..])
        );
        assert!(head.header("x-forwarded-for").is_some());
    }

    #[test]
    fn an_http_request_on_a_uwsgi_socket_is_uwsgis_block_size_error() {
        let err = parse_packet(b"GET / HTTP/1.1\r\n\r\n", 4096).unwrap_err();
        // "ET" read as a little-endian u16, as uWSGI reports it.
        assert_eq!(
            err,
            PacketError::TooLarge {
                size: 21573,
                max: 4096
            }
        );
        assert_eq!(
            err.to_string(),
            "invalid request block size: 21573 (max 4096)...skip"
        );
    }

    #[test]
    fn malformed_blocks_are_refused() {
        let mut bad = nginx_like();
        bad[1] = bad[1].wrapping_sub(1); // the block is one byte shorter than its pairs
        assert!(matches!(
            parse_packet(&bad, 4096),
            Err(PacketError::Malformed(_))
        ));
        assert_eq!(
            parse_packet(&[5, 0, 0, 0], 4096),
            Err(PacketError::Modifier(5))
        );
        let no_method = encode(&[("PATH_INFO", b"/")]);
        let (packet, _) = parse_packet(&no_method, 4096).unwrap().unwrap();
        assert!(packet.request_head().is_err());
        let bad_length = encode(&[("REQUEST_METHOD", b"GET"), ("CONTENT_LENGTH", b"-1")]);
        let (packet, _) = parse_packet(&bad_length, 4096).unwrap().unwrap();
        assert!(packet.request_head().is_err());
    }
}
