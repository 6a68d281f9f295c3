//! From a parsed HTTP request to the CGI variables of a WSGI environ (PEP 3333), in the order and
//! with the names uWSGI's HTTP parser gives them. The `wsgi.*` entries are the Python seam's job.

use std::net::SocketAddr;

use bytes::Bytes;

use crate::http::RequestHead;
use crate::python::WsgiRequest;

/// What the environ needs to know besides the request itself.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    pub local: SocketAddr,
    pub multithread: bool,
    pub multiprocess: bool,
}

/// Builds the request the app sees. The body has been read whole, so `CONTENT_LENGTH` is its
/// true length even for a chunked upload (and `wsgi.input_terminated` is true).
///
/// The host the request is for (RFC 9112 §3.3): an absolute-form target's authority, which
/// wins over the Host header (§3.2.2: the server MUST ignore Host then), so both SERVER_NAME
/// and HTTP_HOST come from it; otherwise a non-empty Host header; otherwise (HTTP/1.0 without
/// Host, or an empty Host) SERVER_NAME is the local address, and HTTP_HOST is as sent, if sent.
pub fn build_request(head: &RequestHead, body: Bytes, conn: &ConnectionInfo) -> WsgiRequest {
    let mut vars: Vec<(String, Vec<u8>)> = Vec::with_capacity(12 + head.headers.len());
    let protocol = if head.minor_version == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let authority = head.authority.as_deref().map(str::as_bytes);
    let server_name = match authority.or(header(head, "host")) {
        Some(host) if !host.is_empty() => host_name(host).to_vec(),
        _ => conn.local.ip().to_string().into_bytes(),
    };
    vars.push(("REQUEST_METHOD".into(), head.method.clone().into_bytes()));
    vars.push(("REQUEST_URI".into(), head.target.clone().into_bytes()));
    vars.push(("PATH_INFO".into(), head.path.clone()));
    vars.push(("QUERY_STRING".into(), head.query.clone().into_bytes()));
    vars.push(("SERVER_PROTOCOL".into(), protocol.into()));
    vars.push(("SCRIPT_NAME".into(), Vec::new()));
    vars.push(("SERVER_NAME".into(), server_name));
    vars.push((
        "SERVER_PORT".into(),
        conn.local.port().to_string().into_bytes(),
    ));
    vars.push((
        "REMOTE_ADDR".into(),
        conn.peer.ip().to_string().into_bytes(),
    ));
    vars.push((
        "REMOTE_PORT".into(),
        conn.peer.port().to_string().into_bytes(),
    ));
    if let Some(content_type) = header(head, "content-type") {
        vars.push(("CONTENT_TYPE".into(), content_type.to_vec()));
    }
    if !body.is_empty() || header(head, "content-length").is_some() {
        vars.push(("CONTENT_LENGTH".into(), body.len().to_string().into_bytes()));
    }
    let first_http = vars.len();
    if let Some(authority) = authority {
        if header(head, "host").is_none() {
            vars.push(("HTTP_HOST".into(), authority.to_vec()));
        }
    }
    for h in &head.headers {
        let name = &h.name;
        if name.eq_ignore_ascii_case("content-type") || name.eq_ignore_ascii_case("content-length")
        {
            continue;
        }
        // `X_Forwarded_For` would land on the same key as `X-Forwarded-For`: a proxy's header
        // could be forged. Dropped, as nginx and gunicorn do.
        if name.contains('_') {
            continue;
        }
        // The absolute-form target's authority stands in for the Host line's value.
        let value = match authority {
            Some(authority) if name.eq_ignore_ascii_case("host") => authority,
            _ => &h.value[..],
        };
        let mut key = String::with_capacity(5 + name.len());
        key.push_str("HTTP_");
        key.extend(name.chars().map(|c| {
            if c == '-' {
                '_'
            } else {
                c.to_ascii_uppercase()
            }
        }));
        match vars[first_http..].iter_mut().find(|(k, _)| *k == key) {
            // RFC 9110 §5.3: repeated fields are one comma-separated list; cookies are the
            // exception (RFC 6265 §5.4 joins them with "; ").
            Some((_, joined)) => {
                let sep: &[u8] = if key == "HTTP_COOKIE" { b"; " } else { b", " };
                joined.extend_from_slice(sep);
                joined.extend_from_slice(value);
            }
            None => vars.push((key, value.to_vec())),
        }
    }
    WsgiRequest {
        vars,
        url_scheme: "http",
        body,
        multithread: conn.multithread,
        multiprocess: conn.multiprocess,
    }
}

fn header<'a>(head: &'a RequestHead, name: &str) -> Option<&'a [u8]> {
    head.headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case(name))
        .map(|h| h.value.as_slice())
}

/// The host part of a Host header: `example.com:8000` → `example.com`, `[::1]:80` → `::1`.
fn host_name(host: &[u8]) -> &[u8] {
    if let Some(rest) = host.strip_prefix(b"[") {
        if let Some(end) = memchr::memchr(b']', rest) {
            return &rest[..end];
        }
        return host;
    }
    match memchr::memrchr(b':', host) {
        Some(i) => &host[..i],
        None => host,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::http::{Event, Limits, RequestParser};

    /// The CGI variables for one complete request head, served on 10.0.0.1:8000.
    fn environ(raw: &[u8]) -> Vec<(String, Vec<u8>)> {
        let mut parser = RequestParser::new(Limits::default());
        parser.push(raw);
        let Ok(Some(Event::Head(head))) = parser.next_event() else {
            panic!("no head in {:?}", String::from_utf8_lossy(raw));
        };
        let conn = ConnectionInfo {
            peer: "10.0.0.2:5000".parse().unwrap(),
            local: "10.0.0.1:8000".parse().unwrap(),
            multithread: false,
            multiprocess: false,
        };
        build_request(&head, Bytes::new(), &conn).vars
    }

    fn var<'a>(vars: &'a [(String, Vec<u8>)], key: &str) -> Option<&'a str> {
        let mut found = vars.iter().filter(|(k, _)| k == key);
        let value = found.next().map(|(_, v)| std::str::from_utf8(v).unwrap());
        assert!(found.next().is_none(), "{key} twice");
        value
    }

    #[test]
    fn the_host_header_names_the_server() {
        let vars = environ(b"GET / HTTP/1.1\r\nHost: example.com:8080\r\n\r\n");
        assert_eq!(var(&vars, "SERVER_NAME"), Some("example.com"));
        assert_eq!(var(&vars, "HTTP_HOST"), Some("example.com:8080"));
        assert_eq!(var(&vars, "SERVER_PORT"), Some("8000"));
    }

    // RFC 9112 §3.2.2: with an absolute-form target, its authority wins over Host.
    #[test]
    fn an_absolute_form_authority_wins_over_the_host_header() {
        let vars = environ(
            b"GET http://u:p@example.com:81/p?q HTTP/1.1\r\nHost: other.example\r\nAccept: */*\r\n\r\n",
        );
        assert_eq!(var(&vars, "SERVER_NAME"), Some("example.com"));
        assert_eq!(var(&vars, "HTTP_HOST"), Some("example.com:81"));
        assert_eq!(var(&vars, "HTTP_ACCEPT"), Some("*/*"));
        assert_eq!(var(&vars, "PATH_INFO"), Some("/p"));
        // Where the Host line was.
        let keys: Vec<&str> = vars.iter().map(|(k, _)| k.as_str()).collect();
        assert!(keys.ends_with(&["HTTP_HOST", "HTTP_ACCEPT"]), "{keys:?}");

        let ipv6 = environ(b"GET http://[::1]:8080/ HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
        assert_eq!(var(&ipv6, "SERVER_NAME"), Some("::1"));
        assert_eq!(var(&ipv6, "HTTP_HOST"), Some("[::1]:8080"));
    }

    #[test]
    fn an_absolute_form_authority_gives_http_host_without_a_host_header() {
        let vars = environ(b"GET http://example.com/ HTTP/1.0\r\nAccept: */*\r\n\r\n");
        assert_eq!(var(&vars, "SERVER_NAME"), Some("example.com"));
        assert_eq!(var(&vars, "HTTP_HOST"), Some("example.com"));
    }

    // RFC 9112 §3.3: no Host, or an empty one, and no authority: the local address.
    #[test]
    fn without_a_host_the_local_address_names_the_server() {
        let vars = environ(b"GET / HTTP/1.0\r\n\r\n");
        assert_eq!(var(&vars, "SERVER_NAME"), Some("10.0.0.1"));
        assert_eq!(var(&vars, "HTTP_HOST"), None);
        let vars = environ(b"GET / HTTP/1.1\r\nHost:\r\n\r\n");
        assert_eq!(var(&vars, "SERVER_NAME"), Some("10.0.0.1"));
        assert_eq!(var(&vars, "HTTP_HOST"), Some(""));
    }

    #[test]
    fn host_name_strips_port_and_brackets() {
        assert_eq!(host_name(b"example.com:8000"), b"example.com");
        assert_eq!(host_name(b"example.com"), b"example.com");
        assert_eq!(host_name(b"[::1]:8000"), b"::1");
    }
}
