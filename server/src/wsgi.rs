//! From a parsed HTTP request to the CGI variables of a WSGI environ (PEP 3333), in the order and
//! with the names uWSGI's HTTP parser gives them. The `wsgi.*` entries are the Python seam's job.

use std::borrow::Cow;
use std::net::SocketAddr;

use bytes::Bytes;

use crate::http::RequestHead;
use crate::python::WsgiRequest;

/// What the environ needs to know besides the request itself.
#[derive(Clone, Copy, Debug)]
pub struct ConnectionInfo {
    pub peer: SocketAddr,
    /// `peer`'s address as text, written once per connection: every request's REMOTE_ADDR,
    /// log line and scoreboard entry use it.
    pub peer_ip: IpText,
    pub local: SocketAddr,
    pub multithread: bool,
    pub multiprocess: bool,
}

impl ConnectionInfo {
    pub fn new(peer: SocketAddr, local: SocketAddr, multithread: bool, multiprocess: bool) -> Self {
        ConnectionInfo {
            peer,
            peer_ip: IpText::new(peer.ip()),
            local,
            multithread,
            multiprocess,
        }
    }

    /// The same connection on behalf of another client (the one a proxy names).
    pub fn for_peer(&self, peer: SocketAddr) -> Self {
        ConnectionInfo::new(peer, self.local, self.multithread, self.multiprocess)
    }
}

/// An IP address in its usual text form, kept inline (the longest, an IPv6 address ending in
/// an IPv4 one, is 45 characters).
#[derive(Clone, Copy)]
pub struct IpText {
    len: u8,
    text: [u8; 45],
}

impl IpText {
    pub fn new(ip: std::net::IpAddr) -> Self {
        use std::io::Write;
        let mut text = [0; 45];
        let mut cursor = std::io::Cursor::new(&mut text[..]);
        write!(cursor, "{ip}").expect("an IP address fits in 45 characters");
        let len = cursor.position() as u8;
        IpText { len, text }
    }

    pub fn as_str(&self) -> &str {
        std::str::from_utf8(self.as_bytes()).expect("written from a str")
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.text[..usize::from(self.len)]
    }
}

impl std::fmt::Debug for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Builds the request the app sees. The body has been read whole, so `CONTENT_LENGTH` is its
/// true length even for a chunked upload (and `wsgi.input_terminated` is true).
///
/// The host the request is for (RFC 9112 §3.3): an absolute-form target's authority, which
/// wins over the Host header (§3.2.2: the server MUST ignore Host then), so both SERVER_NAME
/// and HTTP_HOST come from it; otherwise a non-empty Host header; otherwise (HTTP/1.0 without
/// Host, or an empty Host) SERVER_NAME is the local address, and HTTP_HOST is as sent, if sent.
///
/// The decoded path and the header values move into the environ rather than being copied: the
/// worker needs only the request line and the framing after this.
pub fn build_request(head: &mut RequestHead, body: Bytes, conn: &ConnectionInfo) -> WsgiRequest {
    let mut vars: Vec<(Cow<'static, str>, Cow<'static, [u8]>)> =
        Vec::with_capacity(12 + head.headers.len());
    let protocol: &'static [u8] = if head.minor_version == 0 {
        b"HTTP/1.0"
    } else {
        b"HTTP/1.1"
    };
    let authority = head.authority.as_deref().map(str::as_bytes);
    let server_name = match authority.or(header(head, "host")) {
        Some(host) if !host.is_empty() => host_name(host).to_vec(),
        _ => conn.local.ip().to_string().into_bytes(),
    };
    let method = match common_method(&head.method) {
        Some(method) => Cow::Borrowed(method.as_bytes()),
        None => Cow::Owned(head.method.clone().into_bytes()),
    };
    vars.push(("REQUEST_METHOD".into(), method));
    vars.push((
        "REQUEST_URI".into(),
        head.target.clone().into_bytes().into(),
    ));
    vars.push(("PATH_INFO".into(), std::mem::take(&mut head.path).into()));
    vars.push((
        "QUERY_STRING".into(),
        head.query.clone().into_bytes().into(),
    ));
    vars.push(("SERVER_PROTOCOL".into(), protocol.into()));
    vars.push(("SCRIPT_NAME".into(), b"".into()));
    vars.push(("SERVER_NAME".into(), server_name.into()));
    vars.push((
        "SERVER_PORT".into(),
        conn.local.port().to_string().into_bytes().into(),
    ));
    vars.push((
        "REMOTE_ADDR".into(),
        conn.peer_ip.as_bytes().to_vec().into(),
    ));
    vars.push((
        "REMOTE_PORT".into(),
        conn.peer.port().to_string().into_bytes().into(),
    ));
    if let Some(content_type) = header(head, "content-type") {
        vars.push(("CONTENT_TYPE".into(), content_type.to_vec().into()));
    }
    if !body.is_empty() || header(head, "content-length").is_some() {
        vars.push((
            "CONTENT_LENGTH".into(),
            body.len().to_string().into_bytes().into(),
        ));
    }
    let first_http = vars.len();
    if let Some(authority) = &head.authority {
        if header(head, "host").is_none() {
            vars.push(("HTTP_HOST".into(), authority.clone().into_bytes().into()));
        }
    }
    for h in &mut head.headers {
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
        let value = match &head.authority {
            Some(authority) if name.eq_ignore_ascii_case("host") => authority.as_bytes().to_vec(),
            _ => std::mem::take(&mut h.value),
        };
        let key = http_key(name);
        match vars[first_http..].iter_mut().find(|(k, _)| *k == key) {
            // RFC 9110 §5.3: repeated fields are one comma-separated list; cookies are the
            // exception (RFC 6265 §5.4 joins them with "; ").
            Some((_, joined)) => {
                let sep: &[u8] = if key == "HTTP_COOKIE" { b"; " } else { b", " };
                let joined = joined.to_mut();
                joined.extend_from_slice(sep);
                joined.extend_from_slice(&value);
            }
            None => vars.push((key, value.into())),
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

/// The environ key of a header: `User-Agent` → `HTTP_USER_AGENT`, borrowed from
/// [`COMMON_HEADER_KEYS`] when it is one of them. Header names are tokens (ASCII).
fn http_key(name: &str) -> Cow<'static, str> {
    // Longer than any name in the list (the longest, Upgrade-Insecure-Requests, has 25).
    const LONGEST_COMMON: usize = 40;
    let environ_byte = |c: u8| {
        if c == b'-' {
            b'_'
        } else {
            c.to_ascii_uppercase()
        }
    };
    if name.len() <= LONGEST_COMMON {
        let mut key = [0u8; 5 + LONGEST_COMMON];
        key[..5].copy_from_slice(b"HTTP_");
        for (to, from) in key[5..].iter_mut().zip(name.bytes()) {
            *to = environ_byte(from);
        }
        let key = &key[..5 + name.len()];
        if let Some(common) = COMMON_HEADER_KEYS.iter().find(|k| k.as_bytes() == key) {
            return Cow::Borrowed(common);
        }
    }
    let mut key = Vec::with_capacity(5 + name.len());
    key.extend_from_slice(b"HTTP_");
    key.extend(name.bytes().map(environ_byte));
    Cow::Owned(String::from_utf8(key).expect("ASCII mapped from a str stays UTF-8"))
}

/// The method as a static string when it is one of HTTP's usual ones.
fn common_method(method: &str) -> Option<&'static str> {
    ["GET", "POST", "HEAD", "PUT", "DELETE", "OPTIONS", "PATCH"]
        .into_iter()
        .find(|m| *m == method)
}

/// Expands `$then!(<the literals given>, <the HTTP_* keys most requests carry>)`: browsers'
/// and proxies' usual headers. Their keys cost no allocation here, and the Python seam interns
/// them once per process.
macro_rules! common_header_keys {
    ($then:ident!($($more:literal),* $(,)?)) => {
        $then!(
            $($more,)*
            "HTTP_HOST",
            "HTTP_USER_AGENT",
            "HTTP_ACCEPT",
            "HTTP_ACCEPT_ENCODING",
            "HTTP_ACCEPT_LANGUAGE",
            "HTTP_CONNECTION",
            "HTTP_COOKIE",
            "HTTP_REFERER",
            "HTTP_ORIGIN",
            "HTTP_AUTHORIZATION",
            "HTTP_CACHE_CONTROL",
            "HTTP_PRAGMA",
            "HTTP_IF_MODIFIED_SINCE",
            "HTTP_IF_NONE_MATCH",
            "HTTP_UPGRADE_INSECURE_REQUESTS",
            "HTTP_X_FORWARDED_FOR",
            "HTTP_X_FORWARDED_PROTO",
            "HTTP_X_FORWARDED_HOST",
            "HTTP_X_REAL_IP",
            "HTTP_X_REQUESTED_WITH",
            "HTTP_SEC_FETCH_DEST",
            "HTTP_SEC_FETCH_MODE",
            "HTTP_SEC_FETCH_SITE",
            "HTTP_SEC_FETCH_USER",
            "HTTP_DNT",
        )
    };
}
pub(crate) use common_header_keys;

/// Expands `$then!(<the CGI variables every HTTP request's environ starts with, in
/// build_request's order>, <the literals given>)`: one list for [`EVERY_REQUEST`] and for the
/// Python seam's interned keys (whose `intern!` needs literals).
macro_rules! every_request_keys {
    ($then:ident!($($more:literal),* $(,)?)) => {
        $then!(
            "REQUEST_METHOD",
            "REQUEST_URI",
            "PATH_INFO",
            "QUERY_STRING",
            "SERVER_PROTOCOL",
            "SCRIPT_NAME",
            "SERVER_NAME",
            "SERVER_PORT",
            "REMOTE_ADDR",
            "REMOTE_PORT",
            $($more),*
        )
    };
}
pub(crate) use every_request_keys;

macro_rules! str_array {
    ($($key:literal),* $(,)?) => {
        [$($key),*]
    };
}

/// The CGI variables every HTTP request's environ starts with, in `build_request`'s order.
pub const EVERY_REQUEST: [&str; 10] = every_request_keys!(str_array!());

const COMMON_HEADER_KEYS: &[&str] = &common_header_keys!(str_array!());

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
    fn environ(raw: &[u8]) -> Vec<(Cow<'static, str>, Cow<'static, [u8]>)> {
        let mut parser = RequestParser::new(Limits::default());
        parser.push(raw);
        let Ok(Some(Event::Head(mut head))) = parser.next_event() else {
            panic!("no head in {:?}", String::from_utf8_lossy(raw));
        };
        let conn = ConnectionInfo::new(
            "10.0.0.2:5000".parse().unwrap(),
            "10.0.0.1:8000".parse().unwrap(),
            false,
            false,
        );
        build_request(&mut head, Bytes::new(), &conn).vars
    }

    fn var<'a>(vars: &'a [(Cow<'static, str>, Cow<'static, [u8]>)], key: &str) -> Option<&'a str> {
        let mut found = vars.iter().filter(|(k, _)| k == key);
        let value = found.next().map(|(_, v)| std::str::from_utf8(v).unwrap());
        assert!(found.next().is_none(), "{key} twice");
        value
    }

    #[test]
    fn every_request_starts_with_the_listed_variables() {
        let vars = environ(b"GET /a?b HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
        let keys: Vec<&str> = vars.iter().map(|(k, _)| &**k).collect();
        assert_eq!(keys[..EVERY_REQUEST.len()], EVERY_REQUEST);
    }

    #[test]
    fn ip_text_holds_the_longest_address() {
        for ip in [
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255",
            "::ffff:10.0.0.2",
            "255.255.255.255",
            "::1",
        ] {
            let addr: std::net::IpAddr = ip.parse().unwrap();
            assert_eq!(IpText::new(addr).as_str(), addr.to_string());
        }
    }

    #[test]
    fn common_header_keys_are_borrowed_and_others_built() {
        assert!(matches!(
            http_key("User-Agent"),
            Cow::Borrowed("HTTP_USER_AGENT")
        ));
        assert!(matches!(
            http_key("accept-encoding"),
            Cow::Borrowed("HTTP_ACCEPT_ENCODING")
        ));
        assert_eq!(http_key("X-Custom-Thing"), "HTTP_X_CUSTOM_THING");
        assert!(matches!(http_key("X-Custom-Thing"), Cow::Owned(_)));
        let long = "X-".repeat(30);
        assert_eq!(http_key(&long), format!("HTTP_{}", "X_".repeat(30)));
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
        let keys: Vec<&str> = vars.iter().map(|(k, _)| &**k).collect();
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
