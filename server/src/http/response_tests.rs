//! The response framing rules, one table row per case: what the app gave, what the request
//! and the connection allow, and the head and framing that must come out.

use super::response::{
    encode_head, parse_status, BodyEncoder, Cut, Exchange, Framing, HeadError, PlainResponse,
};

/// A GET over HTTP/1.1 on a keep-alive connection, body length unknown.
fn get() -> Exchange {
    Exchange {
        head_request: false,
        minor_version: 1,
        keep_alive: true,
        chunked_ok: true,
        body_length: None,
    }
}

fn headers(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(n, v)| (n.to_string(), v.to_string()))
        .collect()
}

/// The head's header lines after the status line.
fn lines(head: &[u8]) -> Vec<String> {
    let text = String::from_utf8_lossy(head);
    let mut lines: Vec<String> = text.split("\r\n").skip(1).map(str::to_owned).collect();
    assert_eq!(lines.pop().as_deref(), Some(""), "{text:?}");
    assert_eq!(lines.pop().as_deref(), Some(""), "{text:?}");
    lines
}

#[test]
fn framing_table() {
    struct Row {
        what: &'static str,
        status: &'static str,
        headers: &'static [(&'static str, &'static str)],
        exchange: Exchange,
        framing: Framing,
        keep_alive: bool,
        lines: &'static [&'static str],
    }
    let e = get();
    let rows = [
        Row {
            what: "the app's Content-Length frames the body",
            status: "200 OK",
            headers: &[("Content-Type", "text/plain"), ("Content-Length", "13")],
            exchange: e,
            framing: Framing::Length(13),
            keep_alive: true,
            lines: &["Content-Type: text/plain", "Content-Length: 13"],
        },
        Row {
            what: "a body known whole gets a Content-Length",
            status: "200 OK",
            headers: &[],
            exchange: Exchange {
                body_length: Some(5),
                ..e
            },
            framing: Framing::Length(5),
            keep_alive: true,
            lines: &["Content-Length: 5"],
        },
        Row {
            what: "a stream on keep-alive is chunked",
            status: "200 OK",
            headers: &[],
            exchange: e,
            framing: Framing::Chunked,
            keep_alive: true,
            lines: &["Transfer-Encoding: chunked"],
        },
        Row {
            what: "a stream to an HTTP/1.1 client on a closing connection is chunked too",
            status: "200 OK",
            headers: &[],
            exchange: Exchange {
                keep_alive: false,
                ..e
            },
            framing: Framing::Chunked,
            keep_alive: false,
            lines: &["Transfer-Encoding: chunked", "Connection: close"],
        },
        Row {
            what: "a stream to an HTTP/1.0 client ends with the close",
            status: "200 OK",
            headers: &[],
            exchange: Exchange {
                minor_version: 0,
                ..e
            },
            framing: Framing::UntilClose,
            keep_alive: false,
            lines: &["Connection: close"],
        },
        Row {
            what: "a stream to a uwsgi-protocol proxy ends with the close",
            status: "200 OK",
            headers: &[],
            exchange: Exchange {
                chunked_ok: false,
                keep_alive: false,
                ..e
            },
            framing: Framing::UntilClose,
            keep_alive: false,
            lines: &["Connection: close"],
        },
        Row {
            what: "HTTP/1.0 keep-alive is said",
            status: "200 OK",
            headers: &[("Content-Length", "2")],
            exchange: Exchange {
                minor_version: 0,
                ..e
            },
            framing: Framing::Length(2),
            keep_alive: true,
            lines: &["Content-Length: 2", "Connection: keep-alive"],
        },
        Row {
            what: "the app's Connection: close is honoured",
            status: "200 OK",
            headers: &[("Connection", "close"), ("Content-Length", "2")],
            exchange: e,
            framing: Framing::Length(2),
            keep_alive: false,
            lines: &["Content-Length: 2", "Connection: close"],
        },
        Row {
            what: "close among other connection options, any case",
            status: "200 OK",
            headers: &[("connection", "Upgrade, CLOSE"), ("Content-Length", "2")],
            exchange: e,
            framing: Framing::Length(2),
            keep_alive: false,
            lines: &["Content-Length: 2", "Connection: close"],
        },
        Row {
            what: "other hop-by-hop headers are dropped",
            status: "200 OK",
            headers: &[
                ("Connection", "keep-alive"),
                ("Keep-Alive", "timeout=5"),
                ("Transfer-Encoding", "chunked"),
                ("Content-Length", "2"),
            ],
            exchange: e,
            framing: Framing::Length(2),
            keep_alive: true,
            lines: &["Content-Length: 2"],
        },
        Row {
            what: "204 loses the app's Content-Length and has no body",
            status: "204 No Content",
            headers: &[("Content-Length", "0")],
            exchange: Exchange {
                body_length: Some(0),
                ..e
            },
            framing: Framing::NoBody,
            keep_alive: true,
            lines: &[],
        },
        Row {
            what: "1xx loses it too",
            status: "103 Early Hints",
            headers: &[("Link", "</s.css>; rel=preload"), ("Content-Length", "9")],
            exchange: e,
            framing: Framing::NoBody,
            keep_alive: true,
            lines: &["Link: </s.css>; rel=preload"],
        },
        Row {
            what: "304 keeps the app's Content-Length (the representation's)",
            status: "304 Not Modified",
            headers: &[("ETag", "\"v1\""), ("Content-Length", "1234")],
            exchange: Exchange {
                body_length: Some(0),
                ..e
            },
            framing: Framing::NoBody,
            keep_alive: true,
            lines: &["ETag: \"v1\"", "Content-Length: 1234"],
        },
        Row {
            what: "304 without one gets none made up from its empty body",
            status: "304 Not Modified",
            headers: &[],
            exchange: Exchange {
                body_length: Some(0),
                ..e
            },
            framing: Framing::NoBody,
            keep_alive: true,
            lines: &[],
        },
        Row {
            what: "HEAD keeps the app's Content-Length",
            status: "200 OK",
            headers: &[("Content-Length", "13")],
            exchange: Exchange {
                head_request: true,
                ..e
            },
            framing: Framing::NoBody,
            keep_alive: true,
            lines: &["Content-Length: 13"],
        },
        Row {
            what: "a repeated equal Content-Length is sent once",
            status: "200 OK",
            headers: &[("Content-Length", "3"), ("content-length", "3")],
            exchange: e,
            framing: Framing::Length(3),
            keep_alive: true,
            lines: &["Content-Length: 3"],
        },
    ];
    for row in rows {
        let headers = headers(row.headers);
        let head = encode_head(row.status, &headers, &row.exchange)
            .unwrap_or_else(|e| panic!("{}: {e}", row.what));
        assert_eq!(head.framing, row.framing, "{}", row.what);
        assert_eq!(head.keep_alive, row.keep_alive, "{}", row.what);
        assert_eq!(lines(&head.bytes), row.lines, "{}", row.what);
        assert_eq!(head.header_count, row.lines.len(), "{}", row.what);
        let status_line = format!("HTTP/1.1 {}\r\n", row.status);
        assert!(
            head.bytes.starts_with(status_line.as_bytes()),
            "{}",
            row.what
        );
    }
}

#[test]
fn status_and_values_are_latin1() {
    let head = encode_head(
        "200 Très bien",
        &headers(&[("X-Test", "café"), ("Content-Length", "0")]),
        &get(),
    )
    .unwrap();
    assert!(head.bytes.starts_with(b"HTTP/1.1 200 Tr\xe8s bien\r\n"));
    let needle = b"X-Test: caf\xe9\r\n";
    assert!(head.bytes.windows(needle.len()).any(|w| w == needle));
    // U+00FF is the last character latin-1 has.
    assert!(encode_head("200 OK", &headers(&[("X", "\u{ff}")]), &get()).is_ok());
}

#[test]
fn refused_heads() {
    /// Status, headers, and the error they must get.
    type Case = (
        &'static str,
        &'static [(&'static str, &'static str)],
        HeadError,
    );
    let cases: &[Case] = &[
        ("200", &[], HeadError::Status("200".into())),
        ("20x OK", &[], HeadError::Status("20x OK".into())),
        (
            "200 OK\r\nX: y",
            &[],
            HeadError::Status("200 OK\r\nX: y".into()),
        ),
        (
            "200 \u{20ac}",
            &[],
            HeadError::NotLatin1 {
                header: None,
                value: "200 \u{20ac}".into(),
            },
        ),
        (
            "200 OK",
            &[("X-Test", "\u{fc}\u{20ac}")],
            HeadError::NotLatin1 {
                header: Some("X-Test".into()),
                value: "\u{fc}\u{20ac}".into(),
            },
        ),
        (
            "200 OK",
            &[("Bad Name", "v")],
            HeadError::HeaderName("Bad Name".into()),
        ),
        ("200 OK", &[("", "v")], HeadError::HeaderName("".into())),
        (
            "200 OK",
            &[("X-Evil", "a\r\nSet-Cookie: x=1")],
            HeadError::Injection("X-Evil".into()),
        ),
        (
            "200 OK",
            &[("X-Nul", "a\0b")],
            HeadError::Injection("X-Nul".into()),
        ),
        (
            "200 OK",
            &[("Content-Length", "ten")],
            HeadError::ContentLength("ten".into()),
        ),
        (
            "200 OK",
            &[("Content-Length", "1"), ("Content-Length", "2")],
            HeadError::TwoContentLengths,
        ),
    ];
    for (status, list, expected) in cases {
        assert_eq!(
            encode_head(status, &headers(list), &get()).as_ref(),
            Err(expected),
            "{status:?} {list:?}"
        );
    }
    // The log names the header that latin-1 cannot encode.
    let error = encode_head("200 OK", &headers(&[("X-Test", "\u{fc}\u{20ac}")]), &get())
        .unwrap_err()
        .to_string();
    assert!(error.contains("\"X-Test\""), "{error}");
    assert!(error.contains("ISO-8859-1"), "{error}");
}

#[test]
fn status_codes() {
    assert_eq!(parse_status("200 OK"), Some(200));
    assert_eq!(parse_status("404 "), Some(404));
    assert_eq!(parse_status("099 Low"), None);
    assert_eq!(parse_status("200"), None);
    assert_eq!(parse_status("2000 OK"), None);
}

fn encoder(framing: Framing) -> BodyEncoder {
    let exchange = match framing {
        Framing::Length(n) => Exchange {
            body_length: Some(n),
            ..get()
        },
        Framing::Chunked => get(),
        Framing::UntilClose => Exchange {
            minor_version: 0,
            ..get()
        },
        Framing::NoBody => Exchange {
            head_request: true,
            ..get()
        },
    };
    let head = encode_head("200 OK", &[], &exchange).unwrap();
    assert_eq!(head.framing, framing);
    head.encoder()
}

/// Every chunk's bytes on the wire, joined.
fn wire(encoder: &mut BodyEncoder, chunks: &[&[u8]]) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut overflow = false;
    for chunk in chunks {
        let frame = encoder.frame(chunk);
        out.extend_from_slice(frame.prefix());
        out.extend_from_slice(frame.data);
        out.extend_from_slice(frame.suffix);
        overflow |= frame.overflow;
    }
    (out, overflow)
}

#[test]
fn the_encoder_frames_each_chunk() {
    let mut chunked = encoder(Framing::Chunked);
    let big = vec![b'x'; 0x1234];
    let (out, _) = wire(&mut chunked, &[b"hello", b"", &big]);
    let mut expected = b"5\r\nhello\r\n1234\r\n".to_vec();
    expected.extend_from_slice(&big);
    expected.extend_from_slice(b"\r\n");
    assert_eq!(out, expected);
    assert_eq!(chunked.finish().trailer, b"0\r\n\r\n");
    assert_eq!(chunked.sent(), 5 + 0x1234);

    let mut plain = encoder(Framing::UntilClose);
    assert_eq!(wire(&mut plain, &[b"ab", b"cd"]).0, b"abcd");
    assert_eq!(plain.finish().trailer, b"");

    let mut none = encoder(Framing::NoBody);
    assert_eq!(wire(&mut none, &[b"never sent"]).0, b"");
    assert_eq!(none.sent(), 0);
}

#[test]
fn the_encoder_holds_the_body_to_its_declared_length() {
    let mut exact = encoder(Framing::Length(4));
    assert_eq!(wire(&mut exact, &[b"ab", b"cd"]), (b"abcd".to_vec(), false));
    assert_eq!(exact.finish().short, None);

    let mut over = encoder(Framing::Length(3));
    assert_eq!(wire(&mut over, &[b"ab", b"cd"]), (b"abc".to_vec(), true));

    let mut short = encoder(Framing::Length(10));
    wire(&mut short, &[b"abc"]);
    assert_eq!(short.finish().short, Some((10, 3)));
}

#[test]
fn what_the_client_has_when_the_body_is_cut() {
    let cases = [
        (Framing::NoBody, &b"x"[..], Cut::Complete),
        (Framing::Length(2), b"ab", Cut::Complete),
        (
            Framing::Length(5),
            b"ab",
            Cut::ShortOfLength {
                declared: 5,
                sent: 2,
            },
        ),
        (Framing::Chunked, b"ab", Cut::NoLastChunk),
        (Framing::UntilClose, b"ab", Cut::NeedsReset),
    ];
    for (framing, sent, cut) in cases {
        let mut encoder = encoder(framing);
        wire(&mut encoder, &[sent]);
        assert_eq!(encoder.cut(), cut, "{framing:?}");
    }
}

#[test]
fn plain_responses() {
    let answer = PlainResponse::error(408, "Request Timeout");
    assert_eq!(
        String::from_utf8(answer.bytes.clone()).unwrap(),
        "HTTP/1.1 408 Request Timeout\r\nContent-Type: text/plain\r\nContent-Length: 20\r\nConnection: close\r\n\r\n408 Request Timeout\n"
    );
    assert_eq!(answer.header_count, 3);
    assert_eq!(answer.body_len(), 20);
    let stats = PlainResponse::new("HTTP/1.0", 200, "OK", "application/json", b"{}");
    assert!(stats.bytes.starts_with(b"HTTP/1.0 200 OK\r\n"));
    assert!(stats.bytes.ends_with(b"\r\n\r\n{}"));
}
