//! The request-target (RFC 9112 §3.2): which of its four forms a request uses, and the path
//! and query a WSGI application sees (PATH_INFO, QUERY_STRING, REQUEST_URI).

use super::HttpError;

/// What the request-target says the application is asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Target {
    /// Percent-decoded path.
    pub(super) path: Vec<u8>,
    /// The path as sent.
    pub(super) raw_path: String,
    /// After the first '?', as sent, without a '#fragment'.
    pub(super) query: String,
    /// For an absolute-form target, its authority without any userinfo: `host[:port]` as sent.
    pub(super) authority: Option<String>,
}

/// Splits a request-target into path and query.
///
/// - origin-form `/path?query`: the usual case.
/// - absolute-form `scheme://authority/path?query` (sent to proxies, and accepted by origin
///   servers, RFC 9112 §3.2.2): the authority is checked and kept without its userinfo, since
///   it, not the Host header, names the host; the path defaults to "/".
/// - asterisk-form `*`: only for OPTIONS (RFC 9112 §3.2.4); the path is "*".
/// - authority-form `host:port`: only for CONNECT, which is refused with 501 before the target
///   is looked at ([`HttpError::UnsupportedMethod`]). wsgilab is not a proxy; 501 says "this
///   server does not do that" (RFC 9110 §15.6.2) where 400 would blame the client.
///
/// A '#fragment' is not part of any form, but some clients send one; like gunicorn and
/// werkzeug, it is cut off rather than refused.
pub(super) fn parse_target(method: &str, target: &str) -> Result<Target, HttpError> {
    if method == "CONNECT" {
        return Err(HttpError::UnsupportedMethod);
    }
    if target == "*" {
        if method != "OPTIONS" {
            return Err(HttpError::Malformed(
                "the asterisk-form target '*' is only allowed with OPTIONS",
            ));
        }
        return Ok(Target {
            path: b"*".to_vec(),
            raw_path: "*".to_owned(),
            query: String::new(),
            authority: None,
        });
    }
    let (authority, path_and_query) = if target.starts_with('/') {
        (None, target)
    } else if let Some((authority, rest)) = split_scheme_and_authority(target)? {
        (Some(authority.to_owned()), rest)
    } else {
        return Err(HttpError::Malformed(
            "request target is neither a path starting with '/' nor an absolute URI",
        ));
    };
    let without_fragment = match path_and_query.find('#') {
        Some(hash) => &path_and_query[..hash],
        None => path_and_query,
    };
    let (raw_path, query) = match without_fragment.split_once('?') {
        Some((path, query)) => (path, query),
        None => (without_fragment, ""),
    };
    // Only absolute-form can have an empty path here ("http://host?q"): it means "/".
    let raw_path = if raw_path.is_empty() { "/" } else { raw_path };
    Ok(Target {
        path: percent_decode(raw_path.as_bytes()),
        raw_path: raw_path.to_owned(),
        query: query.to_owned(),
        authority,
    })
}

/// For an absolute-form target, checks `scheme "://" authority` and returns the authority
/// without its userinfo (`host[:port]`) and what follows it (path-abempty, query, fragment).
/// `Ok(None)` if the target does not start with a scheme.
fn split_scheme_and_authority(target: &str) -> Result<Option<(&str, &str)>, HttpError> {
    const BAD: HttpError = HttpError::Malformed("invalid authority in absolute-form target");
    let bytes = target.as_bytes();
    // scheme = ALPHA *( ALPHA / DIGIT / "+" / "-" / "." )   (RFC 3986 §3.1)
    let scheme_len = bytes
        .iter()
        .position(|&b| !(b.is_ascii_alphanumeric() || matches!(b, b'+' | b'-' | b'.')))
        .unwrap_or(bytes.len());
    if scheme_len == 0
        || !bytes[0].is_ascii_alphabetic()
        || !target[scheme_len..].starts_with("://")
    {
        return Ok(None);
    }
    let after_scheme = &target[scheme_len + 3..];
    let authority_len = after_scheme
        .find(['/', '?', '#'])
        .unwrap_or(after_scheme.len());
    let (authority, rest) = after_scheme.split_at(authority_len);
    // authority = [ userinfo "@" ] host [ ":" port ]   (RFC 3986 §3.2)
    let host_and_port = match authority.rfind('@') {
        Some(at) => {
            let userinfo = &authority.as_bytes()[..at];
            if !userinfo.iter().all(|&b| is_reg_name_byte(b) || b == b':') {
                return Err(BAD);
            }
            &authority[at + 1..]
        }
        None => authority,
    };
    if !is_host_and_port(host_and_port.as_bytes()) {
        return Err(BAD);
    }
    Ok(Some((host_and_port, rest)))
}

/// `host [ ":" port ]` with a non-empty host (RFC 3986 §3.2.2–3.2.3): the authority of an
/// absolute-form target after its userinfo, and the value of a Host header (RFC 9112 §3.2).
/// An http(s) URI with an empty host must be rejected (RFC 9110 §4.2.1), so ":80" is refused.
/// The port may be empty ("example.com:"), as RFC 3986 allows.
pub(super) fn is_host_and_port(host_and_port: &[u8]) -> bool {
    let (host_is_valid, port) = if let Some(rest) = host_and_port.strip_prefix(b"[") {
        // IP-literal = "[" ( IPv6address / IPvFuture ) "]"
        let Some(close) = memchr::memchr(b']', rest) else {
            return false;
        };
        let port = match &rest[close + 1..] {
            [] => &[][..],
            [b':', port @ ..] => port,
            _ => return false,
        };
        (is_ip_literal(&rest[..close]), port)
    } else {
        let (host, port) = match memchr::memchr(b':', host_and_port) {
            Some(colon) => (&host_and_port[..colon], &host_and_port[colon + 1..]),
            None => (host_and_port, &[][..]),
        };
        // IPv4address is a reg-name too, as far as the bytes go.
        (
            !host.is_empty() && host.iter().all(|&b| is_reg_name_byte(b)),
            port,
        )
    };
    host_is_valid && port.iter().all(u8::is_ascii_digit)
}

/// What is inside the brackets of an IP-literal: an IPv6 address (no zone identifier), or
/// IPvFuture = "v" 1*HEXDIG "." 1*( unreserved / sub-delims / ":" ).
fn is_ip_literal(literal: &[u8]) -> bool {
    match literal {
        [b'v' | b'V', rest @ ..] => {
            let Some(dot) = memchr::memchr(b'.', rest) else {
                return false;
            };
            let (version, address) = (&rest[..dot], &rest[dot + 1..]);
            !version.is_empty()
                && version.iter().all(u8::is_ascii_hexdigit)
                && !address.is_empty()
                && address
                    .iter()
                    .all(|&b| b != b'%' && (is_reg_name_byte(b) || b == b':'))
        }
        _ => std::str::from_utf8(literal)
            .is_ok_and(|text| text.parse::<std::net::Ipv6Addr>().is_ok()),
    }
}

/// unreserved / pct-encoded / sub-delims (RFC 3986 §2); '%' is let through without checking
/// the two hex digits that should follow, which no one downstream relies on.
fn is_reg_name_byte(b: u8) -> bool {
    b.is_ascii_alphanumeric()
        || matches!(
            b,
            b'-' | b'.'
                | b'_'
                | b'~'
                | b'%'
                | b'!'
                | b'$'
                | b'&'
                | b'\''
                | b'('
                | b')'
                | b'*'
                | b'+'
                | b','
                | b';'
                | b'='
        )
}

/// Decodes `%XX` escapes, %2F included, as WSGI servers do for PATH_INFO. An invalid escape
/// (`%zz`, or a `%4` cut short) is kept literally rather than refused, as gunicorn and
/// werkzeug do: such paths are sent by real clients, and the raw path is available to
/// anyone who needs to tell the difference.
pub(super) fn percent_decode(raw: &[u8]) -> Vec<u8> {
    let mut decoded = Vec::with_capacity(raw.len());
    let mut rest = raw;
    while let Some(percent) = memchr::memchr(b'%', rest) {
        decoded.extend_from_slice(&rest[..percent]);
        let escape = &rest[percent..];
        match (
            escape.get(1).and_then(hex_value),
            escape.get(2).and_then(hex_value),
        ) {
            (Some(high), Some(low)) => {
                decoded.push(high << 4 | low);
                rest = &escape[3..];
            }
            _ => {
                decoded.push(b'%');
                rest = &escape[1..];
            }
        }
    }
    decoded.extend_from_slice(rest);
    decoded
}

fn hex_value(b: &u8) -> Option<u8> {
    (*b as char).to_digit(16).map(|digit| digit as u8)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn target(method: &str, target: &str) -> Result<(String, String, String), HttpError> {
        parse_target(method, target)
            .map(|t| (String::from_utf8(t.path).unwrap(), t.raw_path, t.query))
    }

    fn ok(path: &str, raw_path: &str, query: &str) -> Result<(String, String, String), HttpError> {
        Ok((path.to_owned(), raw_path.to_owned(), query.to_owned()))
    }

    #[test]
    fn origin_form() {
        assert_eq!(
            target("GET", "/a%20b?x=%20#frag"),
            ok("/a b", "/a%20b", "x=%20")
        );
        assert_eq!(target("GET", "/a?b?c"), ok("/a", "/a", "b?c"));
        assert_eq!(target("GET", "///x"), ok("///x", "///x", ""));
        assert_eq!(target("GET", "/a%2Fb"), ok("/a/b", "/a%2Fb", ""));
    }

    #[test]
    fn invalid_escapes_are_kept_literally() {
        assert_eq!(target("GET", "/%zz/%4"), ok("/%zz/%4", "/%zz/%4", ""));
        assert_eq!(target("GET", "/%%41"), ok("/%A", "/%%41", ""));
        assert_eq!(percent_decode(b"%"), b"%");
        assert_eq!(percent_decode(b"%ff%E9"), [0xff, 0xe9]);
    }

    #[test]
    fn absolute_form() {
        assert_eq!(
            target("GET", "http://example.com/foo?q=1"),
            ok("/foo", "/foo", "q=1")
        );
        assert_eq!(target("GET", "https://example.com"), ok("/", "/", ""));
        assert_eq!(target("GET", "http://example.com?q"), ok("/", "/", "q"));
        assert_eq!(target("GET", "http://[::1]:8080/x"), ok("/x", "/x", ""));
        assert_eq!(target("GET", "http://u:p@h:80/x"), ok("/x", "/x", ""));
        for bad in [
            "http:///x",
            "http://h:8o/x",
            "s://]ufd/:",
            "http://[::1/x",
            "http://[::1]x/",
            "http://[::1]:x/",
            "http://[zz]/",
            "http://u@/x",
            "http://:80/x",
            "http://a b/",
        ] {
            assert!(
                matches!(target("GET", bad), Err(HttpError::Malformed(_))),
                "{bad}"
            );
        }
    }

    #[test]
    fn absolute_form_keeps_the_authority_without_userinfo() {
        let authority = |t: &str| parse_target("GET", t).map(|t| t.authority);
        assert_eq!(
            authority("http://example.com/foo"),
            Ok(Some("example.com".to_owned()))
        );
        assert_eq!(authority("http://u:p@h:80/x"), Ok(Some("h:80".to_owned())));
        assert_eq!(
            authority("https://[::1]:8443?q"),
            Ok(Some("[::1]:8443".to_owned()))
        );
        assert_eq!(authority("/origin"), Ok(None));
        assert_eq!(parse_target("OPTIONS", "*").map(|t| t.authority), Ok(None));
    }

    #[test]
    fn host_and_port() {
        for good in [
            "example.com",
            "example.com:8080",
            "example.com:",
            "127.0.0.1:80",
            "0.0.0.0=5000",
            "xn--bcher-kva.example",
            "a%20b",
            "[::1]",
            "[::1]:8080",
            "[2001:db8::7]",
            "[::ffff:192.0.2.1]:1",
            "[v1.fe80::a+en1]",
        ] {
            assert!(is_host_and_port(good.as_bytes()), "{good}");
        }
        for bad in [
            "",
            ":80",
            "a b",
            "a/b",
            "a@b",
            "u@host:80",
            "host:8o",
            "a:1:2",
            "[::1",
            "[::1]x",
            "[::1]:x",
            "[]",
            "[fe80::1%25en0]",
            "[::g]",
            "[v.x]",
            "[v1.]",
            "::1",
            "a?b",
            "a#b",
        ] {
            assert!(!is_host_and_port(bad.as_bytes()), "{bad}");
        }
        assert!(!is_host_and_port(b"\x80x"));
        assert!(!is_host_and_port(b"a\tb"));
    }

    #[test]
    fn asterisk_form_only_for_options() {
        assert_eq!(target("OPTIONS", "*"), ok("*", "*", ""));
        assert!(matches!(target("GET", "*"), Err(HttpError::Malformed(_))));
    }

    #[test]
    fn connect_and_authority_form() {
        assert_eq!(
            target("CONNECT", "example.com:443"),
            Err(HttpError::UnsupportedMethod)
        );
        assert!(matches!(
            target("GET", "example.com:443"),
            Err(HttpError::Malformed(_))
        ));
        assert!(matches!(
            target("GET", "foo/bar"),
            Err(HttpError::Malformed(_))
        ));
    }
}
