//! One test per parsing rule. Every input goes through `outcome_with`, which feeds it whole,
//! byte by byte and in random splits and checks that the outcomes agree.

use super::test_support::{outcome_with, Outcome, Request};
use super::{BodyFraming, Event, Header, HttpError, Limits, RequestParser};

fn outcome(bytes: &[u8]) -> Outcome {
    outcome_with(Limits::default(), bytes)
}

/// The requests in `bytes`, which must all be complete and valid.
fn requests(bytes: &[u8]) -> Vec<Request> {
    requests_with(Limits::default(), bytes)
}

fn requests_with(limits: Limits, bytes: &[u8]) -> Vec<Request> {
    let outcome = outcome_with(limits, bytes);
    assert_eq!(outcome.error, None, "{:?}", String::from_utf8_lossy(bytes));
    assert!(outcome.requests.iter().all(|r| r.trailers.is_some()));
    outcome.requests
}

fn request(bytes: &[u8]) -> Request {
    let mut all = requests(bytes);
    assert_eq!(all.len(), 1);
    all.pop().unwrap()
}

fn error(bytes: &[u8]) -> HttpError {
    error_with(Limits::default(), bytes)
}

fn error_with(limits: Limits, bytes: &[u8]) -> HttpError {
    outcome_with(limits, bytes)
        .error
        .unwrap_or_else(|| panic!("no error for {:?}", String::from_utf8_lossy(bytes)))
}

fn assert_malformed(bytes: &[u8]) {
    let error = error(bytes);
    assert!(
        matches!(error, HttpError::Malformed(_)),
        "{error:?} for {:?}",
        String::from_utf8_lossy(bytes)
    );
}

/// A request with these header lines (each without CRLF) and this body.
fn with_headers(request_line: &str, headers: &[&str], body: &str) -> Vec<u8> {
    let mut bytes = format!("{request_line}\r\n");
    for header in headers {
        bytes.push_str(header);
        bytes.push_str("\r\n");
    }
    bytes.push_str("\r\n");
    bytes.push_str(body);
    bytes.into_bytes()
}

fn post(headers: &[&str], body: &str) -> Vec<u8> {
    let mut all = vec!["Host: example.com"];
    all.extend_from_slice(headers);
    with_headers("POST /upload HTTP/1.1", &all, body)
}

fn header(name: &str, value: &str) -> Header {
    Header {
        name: name.to_owned(),
        value: value.as_bytes().to_vec(),
    }
}

// --- request line and head -------------------------------------------------------------------

#[test]
fn simple_get() {
    let r =
        request(b"GET /a%20b/c?x=1&y=%20#top HTTP/1.1\r\nHost: example.com\r\nAccept: */*\r\n\r\n");
    assert_eq!(r.head.method, "GET");
    assert_eq!(r.head.target, "/a%20b/c?x=1&y=%20#top");
    assert_eq!(r.head.path, b"/a b/c");
    assert_eq!(r.head.raw_path, "/a%20b/c");
    assert_eq!(r.head.query, "x=1&y=%20");
    assert_eq!(r.head.minor_version, 1);
    assert_eq!(
        r.head.headers,
        [header("Host", "example.com"), header("Accept", "*/*")]
    );
    assert_eq!(r.head.framing, BodyFraming::Empty);
    assert!(r.head.keep_alive);
    assert!(!r.head.expect_continue);
    assert_eq!(
        r.head.header("accept").map(|h| &h.value[..]),
        Some(&b"*/*"[..])
    );
    assert_eq!(r.body, b"");
    assert_eq!(r.trailers, Some(vec![]));
}

#[test]
fn events_in_order() {
    let mut parser = RequestParser::new(Limits::default());
    parser.push(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 3\r\n\r\nab");
    assert!(matches!(parser.next_event(), Ok(Some(Event::Head(_)))));
    assert_eq!(parser.next_event(), Ok(Some(Event::Body("ab".into()))));
    assert_eq!(parser.next_event(), Ok(None));
    assert!(!parser.is_between_requests());
    parser.push(b"c");
    assert_eq!(parser.next_event(), Ok(Some(Event::Body("c".into()))));
    assert_eq!(
        parser.next_event(),
        Ok(Some(Event::End { trailers: vec![] }))
    );
    assert_eq!(parser.next_event(), Ok(None));
    assert!(parser.is_between_requests());
}

/// What a worker gathering a whole Content-Length body before taking it out is told.
#[test]
fn body_bytes_to_come_counts_what_is_not_buffered_yet() {
    let mut parser = RequestParser::new(Limits::default());
    assert_eq!(parser.body_bytes_to_come(), None);
    parser.push(b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nab");
    assert!(matches!(parser.next_event(), Ok(Some(Event::Head(_)))));
    assert_eq!(parser.body_bytes_to_come(), Some(3));
    parser.push(b"cdeGET");
    assert_eq!(
        parser.body_bytes_to_come(),
        Some(0),
        "a pipelined request is not body"
    );
    assert_eq!(parser.next_event(), Ok(Some(Event::Body("abcde".into()))));
    assert_eq!(parser.body_bytes_to_come(), None);
    parser.push(b" / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n");
    assert!(matches!(parser.next_event(), Ok(Some(Event::End { .. }))));
    assert!(matches!(parser.next_event(), Ok(Some(Event::Head(_)))));
    assert_eq!(
        parser.body_bytes_to_come(),
        None,
        "a chunked body's length is unknown"
    );
}

/// A parked connection keeps no upload-sized buffer; a small request keeps its buffer.
#[test]
fn the_buffer_is_made_again_between_requests_only_after_a_large_body() {
    let mut parser = RequestParser::new(Limits::default());
    let body = "x".repeat(64 * 1024);
    parser.push(&post(&[&format!("Content-Length: {}", body.len())], &body));
    assert!(matches!(parser.next_event(), Ok(Some(Event::Head(_)))));
    assert!(matches!(parser.next_event(), Ok(Some(Event::Body(_)))));
    assert!(matches!(parser.next_event(), Ok(Some(Event::End { .. }))));
    let grown = parser.buffer_mut().as_ptr();
    parser.shrink_between_requests();
    let made_again = parser.buffer_mut().as_ptr();
    assert_ne!(grown, made_again);
    parser.push(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(matches!(parser.next_event(), Ok(Some(Event::Head(_)))));
    assert!(matches!(parser.next_event(), Ok(Some(Event::End { .. }))));
    let small = parser.buffer_mut().as_ptr();
    parser.shrink_between_requests();
    assert_eq!(small, parser.buffer_mut().as_ptr());
}

#[test]
fn leading_empty_lines_are_ignored_within_the_limit() {
    let bytes = b"\r\n\r\nGET / HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(request(bytes).head.raw_path, "/");
    let exact = Limits {
        max_head: bytes.len(),
        max_body: None,
    };
    assert_eq!(requests_with(exact, bytes).len(), 1);
    let short = Limits {
        max_head: bytes.len() - 1,
        max_body: None,
    };
    assert_eq!(error_with(short, bytes), HttpError::HeadTooLarge);
    // Only CRLF: a bare LF is not a line, even an empty one.
    assert_malformed(b"\nGET / HTTP/1.1\r\nHost: h\r\n\r\n");
}

#[test]
fn head_too_large() {
    let limits = |max_head| Limits {
        max_head,
        max_body: None,
    };
    let head = b"GET / HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(requests_with(limits(head.len()), head).len(), 1);
    // Complete, but one byte too long.
    assert_eq!(
        error_with(limits(head.len() - 1), head),
        HttpError::HeadTooLarge
    );
    // Never complete within the limit: 431 as soon as the limit is reached.
    let endless = [b"GET / HTTP/1.1\r\nX: ".as_slice(), &[b'a'; 5000]].concat();
    assert_eq!(error(&endless), HttpError::HeadTooLarge);
    let long_header = [
        b"GET / HTTP/1.1\r\nHost: h\r\nX: ".as_slice(),
        &[b'a'; 5000],
        b"\r\n\r\n",
    ]
    .concat();
    assert_eq!(error(&long_header), HttpError::HeadTooLarge);
}

// RFC 9112 §3: a request line longer than the server parses is 414, not 431.
#[test]
fn request_line_too_long_is_414() {
    let limits = |max_head| Limits {
        max_head,
        max_body: None,
    };
    let long_target = format!("GET /{} HTTP/1.1\r\nHost: h\r\n\r\n", "a".repeat(5000));
    assert_eq!(error(long_target.as_bytes()), HttpError::UriTooLong);
    // 414 as soon as the limit is reached, whatever follows.
    let endless = [b"GET /".as_slice(), &[b'a'; 5000]].concat();
    assert_eq!(error(&endless), HttpError::UriTooLong);
    let absolute = format!("GET http://example.com/{} HTTP/1.1\r\n", "a".repeat(5000));
    assert_eq!(error(absolute.as_bytes()), HttpError::UriTooLong);
    // A method that long is not the target's fault, but is a request line too long all the same.
    assert_eq!(error(&[b'A'; 5000]), HttpError::UriTooLong);

    let head = b"GET /abc HTTP/1.1\r\nHost: h\r\n\r\n";
    let line_len = b"GET /abc HTTP/1.1".len();
    // The line and its CRLF fit, the headers do not: 431.
    assert_eq!(
        error_with(limits(line_len + 2), head),
        HttpError::HeadTooLarge
    );
    // The CR fits but not its LF: the line does not fit.
    assert_eq!(
        error_with(limits(line_len + 1), head),
        HttpError::UriTooLong
    );
    assert_eq!(error_with(limits(line_len), head), HttpError::UriTooLong);
    assert_eq!(error_with(limits(3), head), HttpError::UriTooLong);
    // Leading empty lines count towards the limit, and push the line over it.
    let padded = [b"\r\n\r\n".as_slice(), head].concat();
    assert_eq!(
        error_with(limits(line_len + 4), &padded),
        HttpError::UriTooLong
    );
    // Only empty lines within the limit: no request line to blame.
    assert_eq!(
        error_with(limits(6), b"\r\n\r\n\r\n\r\n"),
        HttpError::HeadTooLarge
    );
    // Bytes that cannot start a request line are malformed, however many there are: a TLS
    // ClientHello sent to a plain HTTP port gets 400, not 414.
    let tls = [
        b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03".as_slice(),
        &[0x42; 5000],
    ]
    .concat();
    assert_malformed(&tls);
    assert_malformed(&[b"GET / HTTP/1.1 ".as_slice(), &[b'x'; 5000]].concat());
    assert_malformed(&[b"GET /a b".as_slice(), &[b'x'; 5000]].concat());
    assert_malformed(&[b"GET\x00/".as_slice(), &[b'x'; 5000]].concat());
}

#[test]
fn too_many_headers() {
    let hundred: Vec<String> = (0..99).map(|i| format!("X-{i}: {i}")).collect();
    let mut lines: Vec<&str> = hundred.iter().map(String::as_str).collect();
    lines.push("Host: h");
    assert_eq!(
        request(&with_headers("GET / HTTP/1.1", &lines, ""))
            .head
            .headers
            .len(),
        100
    );
    lines.push("X-Last: 1");
    assert_eq!(
        error(&with_headers("GET / HTTP/1.1", &lines, "")),
        HttpError::TooManyFields
    );
}

#[test]
fn versions() {
    assert_eq!(request(b"GET / HTTP/1.0\r\n\r\n").head.minor_version, 0);
    for unsupported in ["HTTP/1.2", "HTTP/2.0", "HTTP/0.9", "HTTP/3.7"] {
        let bytes = format!("GET / {unsupported}\r\nHost: h\r\n\r\n");
        assert_eq!(
            error(bytes.as_bytes()),
            HttpError::UnsupportedVersion,
            "{unsupported}"
        );
    }
    for malformed in [
        "FTP/1.1",
        "HTTP/111",
        "HTTP/1.1x",
        "HTTP/0.99",
        "http/1.1",
        "HTTP/1.1 x",
    ] {
        assert_malformed(format!("GET / {malformed}\r\nHost: h\r\n\r\n").as_bytes());
    }
    assert_malformed(b"GET /a b HTTP/1.1\r\nHost: h\r\n\r\n");
}

#[test]
fn malformed_request_lines() {
    for bad in [
        &b"GET HTTP/1.1\r\n\r\n"[..],
        b"GET  / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GE:T / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET\x00 / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET /\xff HTTP/1.1\r\nHost: h\r\n\r\n",
        b" GET / HTTP/1.1\r\nHost: h\r\n\r\n",
        b"GET / HTTP/1.1 \r\nHost: h\r\n\r\n",
    ] {
        assert_malformed(bad);
    }
}

#[test]
fn utf8_in_the_target_is_kept_as_sent() {
    let r = request("GET /caf\u{e9}%20x?q=\u{e9} HTTP/1.1\r\nHost: h\r\n\r\n".as_bytes());
    assert_eq!(r.head.target, "/caf\u{e9}%20x?q=\u{e9}");
    assert_eq!(r.head.raw_path, "/caf\u{e9}%20x");
    assert_eq!(r.head.path, "/caf\u{e9} x".as_bytes());
    assert_eq!(r.head.query, "q=\u{e9}");
}

// --- header fields ---------------------------------------------------------------------------

#[test]
fn values_are_trimmed_and_may_carry_obs_text() {
    let r = request(
        b"GET / HTTP/1.1\r\nHost: h\r\nName: \t value  x \t \r\nEmpty:\r\nLatin: caf\xe9\r\n\r\n",
    );
    assert_eq!(r.head.headers[1], header("Name", "value  x"));
    assert_eq!(r.head.headers[2], header("Empty", ""));
    assert_eq!(r.head.headers[3].value, b"caf\xe9");
}

#[test]
fn obs_fold_is_refused() {
    assert_malformed(b"GET / HTTP/1.1\r\nHost: h\r\nLong: one\r\n two\r\n\r\n");
    assert_malformed(b"GET / HTTP/1.1\r\nHost: h\r\nLong: one\r\n\ttwo\r\n\r\n");
    assert_malformed(b"GET / HTTP/1.1\r\n Host: h\r\n\r\n");
}

#[test]
fn whitespace_before_colon_is_refused() {
    assert_malformed(b"GET / HTTP/1.1\r\nHost : h\r\n\r\n");
    assert_malformed(b"GET / HTTP/1.1\r\nHost\t: h\r\n\r\n");
}

#[test]
fn bad_header_names_are_refused() {
    assert_malformed(b"GET / HTTP/1.1\r\nHost: h\r\nba\x00z: bar\r\n\r\n");
    assert_malformed(b"GET / HTTP/1.1\r\nHost: h\r\nna\xefme: bar\r\n\r\n");
    assert_malformed(b"GET / HTTP/1.1\r\nHost: h\r\n: bar\r\n\r\n");
    assert_malformed(b"GET / HTTP/1.1\r\nHost: h\r\nno colon\r\n\r\n");
}

#[test]
fn control_characters_in_values_are_refused() {
    for ctl in [0u8, 0x07, 0x0b, 0x1f, 0x7f] {
        let mut bytes = b"GET / HTTP/1.1\r\nHost: h\r\nX: a".to_vec();
        bytes.push(ctl);
        bytes.extend_from_slice(b"b\r\n\r\n");
        assert_malformed(&bytes);
    }
}

/// RFC 9112 §2.2: a recipient MAY take a bare LF as a line end; wsgilab does not (see scan.rs),
/// anywhere: request line, fields, chunk size lines, trailers. A bare CR is never accepted.
#[test]
fn only_crlf_ends_a_line() {
    assert_malformed(b"GET / HTTP/1.1\nHost: h\n\n");
    assert_malformed(b"GET / HTTP/1.1\r\nHost: h\n\r\n");
    assert_malformed(b"GET / HTTP/1.1\r\nHost: h\r\nNewline: a\nContent-Length: 3\r\n\r\nabc");
    assert_malformed(b"GET / HTTP/1.1\r\nHost: h\r\nX: a\rb\r\n\r\n");
    assert_malformed(b"GET / HTTP/1.1\rHost: h\r\n\r\n");
    assert_malformed(&post(
        &["Transfer-Encoding: chunked"],
        "5\nhello\r\n0\r\n\r\n",
    ));
    assert_malformed(&post(
        &["Transfer-Encoding: chunked"],
        "5\r\nhello\n0\r\n\r\n",
    ));
    assert_malformed(&post(
        &["Transfer-Encoding: chunked"],
        "5\r\nhello\r\n0\r\nX: y\n\r\n",
    ));
    assert_malformed(&post(
        &["Transfer-Encoding: chunked"],
        "5\r\nhello\r\n0\n\n",
    ));
    assert_malformed(&post(
        &["Transfer-Encoding: chunked"],
        "5;a=b\rc\r\nhello\r\n0\r\n\r\n",
    ));
}

#[test]
fn host_is_required_once_in_http_1_1() {
    assert_malformed(b"GET / HTTP/1.1\r\n\r\n");
    assert_malformed(b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_malformed(b"GET / HTTP/1.1\r\nHost: a\r\nhost: a\r\n\r\n");
    assert_malformed(b"GET / HTTP/1.0\r\nHost: a\r\nHost: b\r\n\r\n");
    assert_eq!(request(b"GET / HTTP/1.0\r\n\r\n").head.headers, []);
    assert_eq!(
        request(b"GET / HTTP/1.1\r\nHost:\r\n\r\n").head.headers,
        [header("Host", "")]
    );
}

// RFC 9112 §3.2: Host = uri-host [ ":" port ]; any other value is 400.
#[test]
fn host_values_are_checked() {
    for host in [
        "example.com",
        "EXAMPLE.com:8080",
        "example.com:",
        "127.0.0.1:8000",
        "0.0.0.0=5000",
        "[::1]",
        "[::1]:8080",
        "[v1.x]",
        // RFC 9110 §7.2: empty when the target URI has no authority (see check_singletons).
        "",
    ] {
        let raw = format!("GET / HTTP/1.1\r\nHost: {host}\r\n\r\n");
        assert_eq!(
            request(raw.as_bytes()).head.headers,
            [header("Host", host)],
            "{host}"
        );
    }
    for host in [
        &b"a b"[..],
        b"a/b",
        b"a@b",
        b"u:p@a",
        b"host:8o",
        b"[::1",
        b"[::1]x",
        b"[fe80::1%25eth0]",
        b"a:1:2",
        b":80",
        b"a?b",
        b"\x80x",
        b"caf\xc3\xa9.example",
    ] {
        for version in ["1.1", "1.0"] {
            let raw = [
                format!("GET / HTTP/{version}\r\nHost: ").as_bytes(),
                host,
                b"\r\n\r\n",
            ]
            .concat();
            assert_eq!(
                error(&raw),
                HttpError::Malformed("invalid Host header value"),
                "{:?}",
                String::from_utf8_lossy(&raw)
            );
        }
    }
    // Even when an absolute-form target makes the value irrelevant: RFC 9112 §3.2's 400 is
    // for "any request message" with an invalid Host.
    assert_eq!(
        error(b"GET http://example.com/ HTTP/1.1\r\nHost: a/b\r\n\r\n"),
        HttpError::Malformed("invalid Host header value")
    );
}

#[test]
fn content_type_at_most_once() {
    assert_malformed(
        b"GET / HTTP/1.1\r\nHost: h\r\nContent-Type: a/b\r\nContent-Type: c/d\r\n\r\n",
    );
}

// --- request target --------------------------------------------------------------------------

#[test]
fn target_forms() {
    let absolute = request(b"GET http://example.com:8080/p%41th?q=1#f HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(absolute.head.path, b"/pAth");
    assert_eq!(absolute.head.raw_path, "/p%41th");
    assert_eq!(absolute.head.query, "q=1");
    // RFC 9112 §3.2.2: the target's authority names the host, not the Host line.
    assert_eq!(absolute.head.authority.as_deref(), Some("example.com:8080"));
    let userinfo = request(b"GET http://u:p@example.com/ HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(userinfo.head.authority.as_deref(), Some("example.com"));
    let no_host = request(b"GET https://[::1]:8443/ HTTP/1.0\r\n\r\n");
    assert_eq!(no_host.head.authority.as_deref(), Some("[::1]:8443"));
    let no_path = request(b"GET http://example.com HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (no_path.head.path.as_slice(), no_path.head.raw_path.as_str()),
        (&b"/"[..], "/")
    );
    let asterisk = request(b"OPTIONS * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(
        (asterisk.head.path.as_slice(), asterisk.head.query.as_str()),
        (&b"*"[..], "")
    );
    assert_eq!(asterisk.head.authority, None);
    assert_eq!(
        request(b"GET /x HTTP/1.1\r\nHost: x\r\n\r\n")
            .head
            .authority,
        None
    );
    assert_malformed(b"GET * HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_malformed(b"GET example.com:443 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_malformed(b"GET foo/bar HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_malformed(b"PUT s://]ufd/: HTTP/1.1\r\nHost: x\r\n\r\n");
    let connect = error(b"CONNECT example.com:443 HTTP/1.1\r\nHost: example.com:443\r\n\r\n");
    assert_eq!(connect, HttpError::UnsupportedMethod);
    assert_eq!(connect.status(), 501);
}

#[test]
fn invalid_percent_escapes_are_kept_literally() {
    let r = request(b"GET /a%zz/%4 HTTP/1.1\r\nHost: x\r\n\r\n");
    assert_eq!(r.head.path, b"/a%zz/%4");
    assert_eq!(
        request(b"GET /a%2fb%00 HTTP/1.1\r\nHost: x\r\n\r\n")
            .head
            .path,
        b"/a/b\0"
    );
}

// --- body framing ----------------------------------------------------------------------------

#[test]
fn content_length_body() {
    let r = request(&post(&["Content-Length: 5"], "hello"));
    assert_eq!(r.head.framing, BodyFraming::Length(5));
    assert_eq!(r.body, b"hello");
    assert_eq!(
        request(&post(&["Content-Length: 0"], "")).head.framing,
        BodyFraming::Empty
    );
    assert_eq!(
        request(&post(&["Content-Length: 007"], "1234567")).body,
        b"1234567"
    );
}

#[test]
fn identical_content_lengths_are_accepted() {
    assert_eq!(
        request(&post(&["Content-Length: 5, 5"], "hello")).body,
        b"hello"
    );
    assert_eq!(
        request(&post(&["Content-Length: 5", "Content-Length: 5"], "hello")).body,
        b"hello"
    );
}

#[test]
fn bad_content_lengths_are_refused() {
    for value in [
        "3, 2",
        "-1",
        "+1",
        "-0",
        "",
        "1a",
        "0x5",
        "5 5",
        "0_1",
        "1e3",
        "5,",
        ",5",
        "18446744073709551616",
        "99999999999999999999999",
    ] {
        let bytes = post(&[&format!("Content-Length: {value}")], "abc");
        assert_malformed(&bytes);
    }
    assert_malformed(&post(&["Content-Length: 3", "Content-Length: 2"], "abc"));
    // Just fits in u64, and that is fine without --limit-post.
    let huge = outcome(&post(&["Content-Length: 18446744073709551615"], "abc"));
    assert_eq!(huge.requests[0].head.framing, BodyFraming::Length(u64::MAX));
    assert_eq!(
        huge.error,
        Some(HttpError::Malformed("connection closed mid-request"))
    );
}

#[test]
fn content_length_over_limit_post_is_refused_at_the_head() {
    let limits = Limits {
        max_head: 4096,
        max_body: Some(5),
    };
    assert_eq!(
        requests_with(limits, &post(&["Content-Length: 5"], "hello"))[0].body,
        b"hello"
    );
    let too_large = outcome_with(limits, &post(&["Content-Length: 6"], "hello!"));
    assert_eq!(too_large.error, Some(HttpError::BodyTooLarge));
    assert!(too_large.requests.is_empty());
}

#[test]
fn transfer_encoding_rules() {
    // Not chunked, or not only chunked: codings we do not decode.
    for value in [
        "gzip",
        "identity",
        "gzip, chunked",
        "chunked, gzip",
        "deflate,chunked",
        "x-custom",
    ] {
        let bytes = post(&[&format!("Transfer-Encoding: {value}")], "0\r\n\r\n");
        assert_eq!(
            error(&bytes),
            HttpError::UnsupportedTransferEncoding,
            "{value}"
        );
        assert_eq!(error(&bytes).status(), 501);
    }
    assert_eq!(
        error(&post(
            &["Transfer-Encoding: gzip", "Transfer-Encoding: chunked"],
            "0\r\n\r\n"
        )),
        HttpError::UnsupportedTransferEncoding
    );
    // Malformed: chunked twice, unparsable, empty.
    for headers in [
        &["Transfer-Encoding: chunked, chunked"][..],
        &["Transfer-Encoding: chunked", "Transfer-Encoding: chunked"],
        &["Transfer-Encoding: identity, chunked, identity, chunked"],
        &["Transfer-Encoding: chunked;x=1"],
        &["Transfer-Encoding: chu nked"],
        &["Transfer-Encoding: \"chunked\""],
        &["Transfer-Encoding:"],
        &["Transfer-Encoding: ,"],
    ] {
        assert_malformed(&post(headers, "0\r\n\r\n"));
    }
    // Case-insensitive, and empty list elements are allowed (RFC 9110 §5.6.1).
    for value in ["Chunked", "CHUNKED", ", chunked", "chunked ,"] {
        let bytes = post(&[&format!("Transfer-Encoding: {value}")], "0\r\n\r\n");
        assert_eq!(
            request(&bytes).head.framing,
            BodyFraming::Chunked,
            "{value}"
        );
    }
}

#[test]
fn transfer_encoding_with_content_length_is_refused() {
    assert_malformed(&post(
        &["Content-Length: 3", "Transfer-Encoding: chunked"],
        "0\r\n\r\n",
    ));
    assert_malformed(&post(
        &["Transfer-Encoding: chunked", "Content-Length: 3"],
        "0\r\n\r\n",
    ));
}

#[test]
fn transfer_encoding_in_http_1_0_is_refused() {
    assert_malformed(b"POST / HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n");
}

// --- chunked bodies --------------------------------------------------------------------------

fn chunked(body: &str) -> Vec<u8> {
    post(&["Transfer-Encoding: chunked"], body)
}

#[test]
fn chunked_body() {
    let r = request(&chunked("5\r\nhello\r\n6\r\n world\r\n000\r\n\r\n"));
    assert_eq!(r.head.framing, BodyFraming::Chunked);
    assert_eq!(r.body, b"hello world");
    assert_eq!(r.trailers, Some(vec![]));
    assert_eq!(
        request(&chunked(
            "1e\r\nall your base are belong to us\r\n0\r\n\r\n"
        ))
        .body
        .len(),
        30
    );
    assert_eq!(
        request(&chunked("A\r\n0123456789\r\n0\r\n\r\n")).body,
        b"0123456789"
    );
    assert_eq!(request(&chunked("0\r\n\r\n")).body, b"");
}

#[test]
fn chunk_extensions_are_ignored() {
    let body = "5; some; parameters=stuff\r\nhello\r\n6;q=\"a b;c\"\r\n world\r\n0;last\r\n\r\n";
    assert_eq!(request(&chunked(body)).body, b"hello world");
}

#[test]
fn bad_chunk_sizes() {
    for size_line in [
        "",
        " 5",
        "5 ",
        "-5",
        "+5",
        "6_0",
        "zz",
        "0x5",
        "10000000000000000",
        ";a=b",
        "5;",
        "5;a=\"x",
    ] {
        assert_malformed(&chunked(&format!("{size_line}\r\nhello\r\n0\r\n\r\n")));
    }
}

#[test]
fn chunk_data_must_end_with_crlf() {
    assert_malformed(&chunked("5\r\nhelloX\r\n0\r\n\r\n"));
    assert_malformed(&chunked("5\r\nhello\rX0\r\n\r\n"));
    assert_malformed(&chunked("5\r\nhello0\r\n\r\n"));
}

#[test]
fn trailers_are_returned() {
    let r = request(&chunked(
        "5\r\nhello\r\n0\r\nVary: *\r\nContent-Type: text/plain\r\n\r\n",
    ));
    assert_eq!(r.body, b"hello");
    assert_eq!(
        r.trailers,
        Some(vec![
            header("Vary", "*"),
            header("Content-Type", "text/plain")
        ])
    );
}

#[test]
fn framing_and_routing_trailers_are_refused() {
    for trailer in [
        "Content-Length: 99",
        "Transfer-Encoding: chunked",
        "host: evil.example.com",
    ] {
        assert_malformed(&chunked(&format!("5\r\nhello\r\n0\r\n{trailer}\r\n\r\n")));
    }
    assert_malformed(&chunked("5\r\nhello\r\n0\r\nBad Name: x\r\n\r\n"));
    assert_malformed(&chunked("5\r\nhello\r\n0\r\nX: a\r\n folded\r\n\r\n"));
}

#[test]
fn trailer_section_is_bounded_by_buffer_size() {
    let limits = Limits {
        max_head: 200,
        max_body: None,
    };
    let long = format!("0\r\nX: {}\r\n\r\n", "a".repeat(195));
    assert_eq!(
        error_with(limits, &chunked(&long)),
        HttpError::TrailersTooLarge
    );
    let fits = format!("0\r\nX: {}\r\n\r\n", "a".repeat(150));
    assert_eq!(
        requests_with(limits, &chunked(&fits))[0]
            .trailers
            .as_ref()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn chunk_size_line_is_bounded_by_buffer_size() {
    let limits = Limits {
        max_head: 200,
        max_body: None,
    };
    let long = format!("5;x={}\r\nhello\r\n0\r\n\r\n", "a".repeat(300));
    assert_eq!(requests(&chunked(&long))[0].body, b"hello");
    assert!(matches!(
        error_with(limits, &chunked(&long)),
        HttpError::Malformed(_)
    ));
}

#[test]
fn chunked_body_over_limit_post() {
    let limits = Limits {
        max_head: 4096,
        max_body: Some(10),
    };
    let exact = chunked("5\r\nhello\r\n5\r\nworld\r\n0\r\n\r\n");
    assert_eq!(requests_with(limits, &exact)[0].body, b"helloworld");
    let over = outcome_with(limits, &chunked("5\r\nhello\r\n6\r\n world\r\n0\r\n\r\n"));
    assert_eq!(over.error, Some(HttpError::BodyTooLarge));
    // Refused when the second size is read, after the first chunk was delivered.
    assert_eq!(over.requests[0].body, b"hello");
    let huge = outcome_with(limits, &chunked("ffffffffffffffff\r\nhello"));
    assert_eq!(huge.error, Some(HttpError::BodyTooLarge));
}

// --- connection management -------------------------------------------------------------------

#[test]
fn keep_alive() {
    let keep_alive = |bytes: &[u8]| request(bytes).head.keep_alive;
    assert!(keep_alive(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n"));
    assert!(!keep_alive(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n"
    ));
    assert!(!keep_alive(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: Upgrade, CLOSE\r\n\r\n"
    ));
    assert!(!keep_alive(
        b"GET / HTTP/1.1\r\nHost: h\r\nConnection: keep-alive\r\nConnection: close\r\n\r\n"
    ));
    assert!(!keep_alive(b"GET / HTTP/1.0\r\n\r\n"));
    assert!(keep_alive(
        b"GET / HTTP/1.0\r\nConnection: Keep-Alive\r\n\r\n"
    ));
    assert!(keep_alive(
        b"GET / HTTP/1.0\r\nConnection: foo , keep-alive\r\n\r\n"
    ));
    assert!(!keep_alive(
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n"
    ));
    assert!(!keep_alive(
        b"GET / HTTP/1.0\r\nConnection: keep-alives\r\n\r\n"
    ));
}

#[test]
fn expect_continue() {
    let expects = |bytes: &[u8]| request(bytes).head.expect_continue;
    assert!(expects(&post(
        &["Expect: 100-continue", "Content-Length: 2"],
        "hi"
    )));
    assert!(expects(&post(
        &["Expect: 100-Continue", "Transfer-Encoding: chunked"],
        "0\r\n\r\n"
    )));
    assert!(!expects(&post(&["Expect: 100-continue"], "")));
    assert!(!expects(&post(
        &["Expect: 100-continue", "Content-Length: 0"],
        ""
    )));
    assert!(!expects(&post(&["Content-Length: 2"], "hi")));
    assert!(!expects(
        b"POST / HTTP/1.0\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\nhi"
    ));
}

#[test]
fn pipelined_requests() {
    let mut bytes = post(&["Content-Length: 5"], "hello");
    bytes.extend(chunked("3\r\nabc\r\n0\r\nX: y\r\n\r\n"));
    bytes.extend_from_slice(b"\r\nGET /last?x HTTP/1.1\r\nHost: h\r\nConnection: close\r\n\r\n");
    bytes.extend_from_slice(b"GET /never HTTP/1.1\r\nHost: h\r\n\r\n");
    let all = requests(&bytes);
    assert_eq!(all.len(), 3, "stops after Connection: close");
    assert_eq!(all[0].body, b"hello");
    assert_eq!(
        (all[1].body.as_slice(), all[1].trailers.clone()),
        (&b"abc"[..], Some(vec![header("X", "y")]))
    );
    assert_eq!(
        (all[2].head.raw_path.as_str(), all[2].head.query.as_str()),
        ("/last", "x")
    );
}

#[test]
fn eof() {
    let mut parser = RequestParser::new(Limits::default());
    assert_eq!(parser.eof(), Ok(()));
    assert!(parser.is_between_requests());

    let mut parser = RequestParser::new(Limits::default());
    parser.push(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n\r\n\r\n");
    assert!(matches!(parser.next_event(), Ok(Some(Event::Head(_)))));
    assert_eq!(
        parser.next_event(),
        Ok(Some(Event::End { trailers: vec![] }))
    );
    assert_eq!(parser.next_event(), Ok(None));
    assert!(parser.is_between_requests());
    assert_eq!(parser.eof(), Ok(()));

    let cut = HttpError::Malformed("connection closed mid-request");
    for partial in [
        &b"GET / HTTP/1.1\r\nHost"[..],
        b"\r\nG",
        b"POST / HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\nhel",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n",
        b"POST / HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello",
    ] {
        assert_eq!(
            outcome(partial).error,
            Some(cut.clone()),
            "{:?}",
            String::from_utf8_lossy(partial)
        );
        let mut parser = RequestParser::new(Limits::default());
        parser.push(partial);
        while let Ok(Some(_)) = parser.next_event() {}
        assert!(!parser.is_between_requests());
    }
}

#[test]
fn a_dead_parser_stays_dead() {
    let mut parser = RequestParser::new(Limits::default());
    parser.push(b"GET / HTTP/1.1\r\n\r\n");
    let error = parser.next_event().unwrap_err();
    parser.push(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(parser.next_event(), Err(error.clone()));
    assert_eq!(parser.eof(), Err(error));
    assert!(!parser.is_between_requests());
}

#[test]
fn buffer_mut_has_room_for_a_read() {
    let mut parser = RequestParser::new(Limits::default());
    let buffer = parser.buffer_mut();
    assert!(buffer.capacity() - buffer.len() >= 8 * 1024);
    buffer.extend_from_slice(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n");
    assert!(matches!(parser.next_event(), Ok(Some(Event::Head(_)))));
}

/// A head trickling in one byte at a time is scanned once, not re-parsed on every byte: a
/// 1 MiB head byte by byte would take minutes if each push re-ran httparse from the start.
#[test]
fn byte_by_byte_is_linear() {
    let limits = Limits {
        max_head: 2 << 20,
        max_body: None,
    };
    let mut bytes = b"GET / HTTP/1.1\r\nHost: h\r\n".to_vec();
    for i in 0..20_000 {
        bytes.extend_from_slice(format!("X-{i}: {}\r\n", "v".repeat(40)).as_bytes());
    }
    bytes.extend_from_slice(b"\r\n");
    let mut parser = RequestParser::new(limits);
    for &byte in &bytes {
        parser.push(&[byte]);
        if let Err(error) = parser.next_event() {
            assert_eq!(error, HttpError::TooManyFields); // 20 000 > 100 header lines
            return;
        }
    }
    panic!("expected TooManyFields");
}

#[test]
fn errors_say_what_to_answer() {
    let limits = Limits {
        max_head: 4096,
        max_body: Some(1000),
    };
    let cases = [
        (
            HttpError::HeadTooLarge,
            431,
            "Request Header Fields Too Large",
        ),
        (
            HttpError::TooManyFields,
            431,
            "Request Header Fields Too Large",
        ),
        (
            HttpError::TrailersTooLarge,
            431,
            "Request Header Fields Too Large",
        ),
        (HttpError::UriTooLong, 414, "URI Too Long"),
        (HttpError::BodyTooLarge, 413, "Content Too Large"),
        (HttpError::Malformed("x"), 400, "Bad Request"),
        (
            HttpError::UnsupportedTransferEncoding,
            501,
            "Not Implemented",
        ),
        (
            HttpError::UnsupportedVersion,
            505,
            "HTTP Version Not Supported",
        ),
        (HttpError::UnsupportedMethod, 501, "Not Implemented"),
    ];
    for (error, status, phrase) in cases {
        assert_eq!((error.status(), error.reason_phrase()), (status, phrase));
        assert!(!error.to_string().contains('\n'));
    }
    assert_eq!(
        HttpError::HeadTooLarge.describe(&limits),
        "request head larger than --buffer-size (4096 bytes)"
    );
    assert_eq!(
        HttpError::UriTooLong.describe(&limits),
        "request line larger than --buffer-size (4096 bytes)"
    );
    assert_eq!(
        HttpError::BodyTooLarge.describe(&limits),
        "request body larger than --limit-post (1000 bytes)"
    );
    assert_eq!(
        HttpError::Malformed("x").to_string(),
        "malformed request: x"
    );
}
