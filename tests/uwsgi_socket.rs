//! `--socket`: the uwsgi binary protocol that nginx's `uwsgi_pass` speaks, over a real socket.

mod common;

use std::io::Write;

use common::server::{apps_dir, read_response, read_to_close, Server};
use serde_json::Value;
use server::uwsgi_protocol::encode;

#[test]
fn a_uwsgi_request_reaches_the_app_with_the_proxys_environ() {
    let server = Server::start_with(&apps_dir(), "--socket", &["--wsgi-file", "testapp.py"]);
    let mut packet = encode(&[
        ("REQUEST_METHOD", b"POST"),
        ("REQUEST_URI", b"/echo/x?q=1"),
        ("PATH_INFO", b"/echo/x"),
        ("QUERY_STRING", b"q=1"),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("SERVER_NAME", b"example.com"),
        ("SERVER_PORT", b"443"),
        ("REMOTE_ADDR", b"203.0.113.9"),
        ("REMOTE_PORT", b"50000"),
        ("HTTPS", b"on"),
        ("CONTENT_TYPE", b"text/plain"),
        ("CONTENT_LENGTH", b"5"),
        ("HTTP_HOST", b"example.com"),
        ("HTTP_X_FORWARDED_FOR", b"198.51.100.1"),
    ]);
    packet.extend_from_slice(b"hello");
    let mut stream = server.connect();
    stream.write_all(&packet).unwrap();
    let response = read_response(&mut stream, false).expect("an HTTP response");
    assert_eq!(response.status, 200, "{}", response.text());
    let got: Value = serde_json::from_slice(&response.body).unwrap();
    let env = &got["environ"];
    assert_eq!(env["REMOTE_ADDR"], "203.0.113.9");
    assert_eq!(env["HTTP_X_FORWARDED_FOR"], "198.51.100.1");
    assert_eq!(env["wsgi.url_scheme"], "https");
    assert_eq!(env["SERVER_NAME"], "example.com");
    assert_eq!(env["PATH_INFO"], "/echo/x");
    assert_eq!(got["body"], "hello");
    let log = server.wait_for_log("POST /echo/x?q=1 =>");
    assert!(
        log.contains("] 203.0.113.9 () {"),
        "the log names the proxy's client:\n{log}"
    );
}

#[test]
fn an_http_client_on_a_uwsgi_socket_gets_uwsgis_error() {
    let server = Server::start_with(&apps_dir(), "--socket", &["--wsgi-file", "testapp.py"]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        .unwrap();
    assert!(
        read_to_close(&mut stream).is_empty(),
        "uWSGI answers nothing"
    );
    let log = server.wait_for_log("invalid request block size: 21573 (max 4096)...skip");
    assert!(
        log.contains("hint: an HTTP client is talking to a uwsgi socket"),
        "{log}"
    );
}

#[test]
fn a_stream_failing_midway_behind_a_uwsgi_proxy_ends_with_a_reset() {
    // The proxy reads the body up to the close (no chunks on this protocol), so a close would
    // pass the cut body on as complete: the connection is reset instead.
    let server = Server::start_with(&apps_dir(), "--socket", &["--wsgi-file", "testapp.py"]);
    let packet = encode(&[
        ("REQUEST_METHOD", b"GET"),
        ("REQUEST_URI", b"/raise_mid"),
        ("PATH_INFO", b"/raise_mid"),
        ("QUERY_STRING", b""),
        ("SERVER_PROTOCOL", b"HTTP/1.1"),
        ("SERVER_NAME", b"example.com"),
        ("SERVER_PORT", b"80"),
        ("REMOTE_ADDR", b"203.0.113.9"),
        ("REMOTE_PORT", b"50000"),
        ("HTTP_HOST", b"example.com"),
    ]);
    let mut stream = server.connect();
    stream.write_all(&packet).unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    let reset = loop {
        match std::io::Read::read(&mut stream, &mut buf) {
            Ok(0) => break false,
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
            Err(e) => panic!("read: {e}"),
        }
    };
    let text = String::from_utf8_lossy(&got);
    assert!(reset, "closed, not reset: {text:?}");
    assert!(!text.contains("chunked"), "{text}");
    server.wait_for_log("the connection is reset rather than closed");
}
