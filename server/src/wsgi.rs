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
pub fn build_request(head: &RequestHead, body: Bytes, conn: &ConnectionInfo) -> WsgiRequest {
    let mut vars: Vec<(String, Vec<u8>)> = Vec::with_capacity(12 + head.headers.len());
    let protocol = if head.minor_version == 0 {
        "HTTP/1.0"
    } else {
        "HTTP/1.1"
    };
    let host = header(head, "host");
    let server_name = match host {
        Some(host) => host_name(host).to_vec(),
        None => conn.local.ip().to_string().into_bytes(),
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
            Some((_, value)) => {
                let sep: &[u8] = if key == "HTTP_COOKIE" { b"; " } else { b", " };
                value.extend_from_slice(sep);
                value.extend_from_slice(&h.value);
            }
            None => vars.push((key, h.value.clone())),
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

    #[test]
    fn host_name_strips_port_and_brackets() {
        assert_eq!(host_name(b"example.com:8000"), b"example.com");
        assert_eq!(host_name(b"example.com"), b"example.com");
        assert_eq!(host_name(b"[::1]:8000"), b"::1");
    }
}
