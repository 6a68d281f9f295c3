//! The HTTP front door over real sockets: gunicorn's request corpus and the request-smuggling
//! and framing rules of RFC 9112, sent to the real `wsgilab serve --http11-socket` with
//! `tests/apps/echoapp.py` behind it, which answers with a JSON document of exactly what reached
//! it. Every byte string is sent whole, one byte per write (TCP_NODELAY on) and in three
//! pseudo-random chunkings: however it is split, a valid request must reach the app exactly as
//! gunicorn expects (every pipelined request, in order), and an invalid one must get a 4xx/5xx
//! status line and then the close — never a 200, never a hang.
//!
//! Which corpus cases wsgilab answers differently from gunicorn, and why, and what each must
//! get, is in tests/common/gunicorn.rs, shared with the same check over the simulated network
//! (sim/tests/front_door_in_the_sim.rs).

mod common;
#[path = "common/gunicorn.rs"]
mod gunicorn;

use std::io::{ErrorKind, Read, Write};
use std::net::{Shutdown, TcpStream};
use std::time::{Duration, Instant};

use common::server::{apps_dir, Server};
use gunicorn::{
    check, load_cases, parse_responses, pieces, plan, splits_for, End, Exchange, Expect, Plan,
    Split, Tally,
};
use serde_json::Value;

/// How long a read may wait for the server: a hang shows up as this timeout. The servers run
/// with a --socket-timeout well above it, so a server that forgets to close cannot hide behind
/// its own idle timeout.
const READ_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests shorter than this are sent with a pause after each piece, so that the server
/// really reads them piece by piece (without one, a fast client's single-byte writes pile up in
/// the socket and are read dozens at a time). Longer ones are still written a piece at a time,
/// just without the pauses, to keep the whole file fast.
const PACED_BELOW: usize = 2048;
const PACE: Duration = Duration::from_micros(50);

// ---------------------------------------------------------------------------------------------
// Servers and a raw client.
// ---------------------------------------------------------------------------------------------

/// `wsgilab serve --http11-socket ... --wsgi-file echoapp.py` with a long --socket-timeout.
fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--wsgi-file", "echoapp.py", "--socket-timeout", "30"];
    args.extend_from_slice(extra);
    Server::start(&apps_dir(), &args)
}

/// Sends `raw` in `split`'s pieces on a new connection (TCP_NODELAY, one write per piece, paced
/// below [`PACED_BELOW`]) while
/// another thread reads everything the server sends until it closes, resets or falls silent.
/// A write that fails (the server refused and closed) ends the sending. With `half_close` the
/// client shuts down its sending side after the last byte, as a client with nothing more to send
/// may; without it, the server has to decide on its own to close.
fn exchange(addr: &str, raw: &[u8], split: Split, half_close: bool) -> Exchange {
    let mut stream = TcpStream::connect(addr).expect("connect to wsgilab");
    stream.set_nodelay(true).expect("TCP_NODELAY");
    let mut reader = stream.try_clone().expect("clone the stream");
    reader
        .set_read_timeout(Some(READ_TIMEOUT))
        .expect("read timeout");
    let reading = std::thread::spawn(move || {
        let mut received = Vec::new();
        let mut buf = [0u8; 16384];
        let end = loop {
            match reader.read(&mut buf) {
                Ok(0) => break End::Closed,
                Ok(n) => received.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == ErrorKind::ConnectionReset => break End::Reset,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break End::TimedOut
                }
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => break End::Error(e.to_string()),
            }
        };
        Exchange { received, end }
    });
    let paced = raw.len() < PACED_BELOW && !matches!(split, Split::Whole);
    for piece in pieces(raw, split) {
        if stream.write_all(piece).is_err() {
            break;
        }
        if paced {
            std::thread::sleep(PACE);
        }
    }
    if half_close {
        let _ = stream.shutdown(Shutdown::Write);
    }
    let result = reading.join().expect("reader thread");
    drop(stream);
    result
}

// ---------------------------------------------------------------------------------------------
// (a) gunicorn's corpus, over real sockets.
// ---------------------------------------------------------------------------------------------

#[test]
fn gunicorn_corpus_whole_bytewise_and_in_random_chunks() {
    let started = Instant::now();
    let Some(cases) = load_cases(
        env!("CARGO_MANIFEST_DIR"),
        "gunicorn_corpus_whole_bytewise_and_in_random_chunks",
    ) else {
        return;
    };
    let big = start(&["--buffer-size", "32768"]);
    let default = start(&[]);
    let mut tally = Tally::default();
    let mut failures = Vec::new();
    for case in &cases {
        let name = case["name"].as_str().expect("name");
        let (default_buffer_size, runs) = match plan(case) {
            Plan::Skip(reason) => {
                eprintln!("skipped {name}: {reason}");
                tally.skipped += 1;
                continue;
            }
            Plan::Send {
                default_buffer_size,
                runs,
                problems,
            } => {
                failures.extend(problems);
                (default_buffer_size, runs)
            }
        };
        let server = if default_buffer_size { &default } else { &big };
        for run in &runs {
            let mut first_summary: Option<String> = None;
            for split in splits_for(name) {
                let exchange = exchange(&server.addr(), &run.raw, split, run.expect.half_close());
                tally.exchanges += 1;
                match check(&exchange, &run.expect) {
                    Ok(summary) => match &first_summary {
                        None => first_summary = Some(summary),
                        Some(first) if *first != summary => failures.push(format!(
                            "{name} ({}), {split:?}: answered {summary}, but {first} whole",
                            run.label
                        )),
                        Some(_) => {}
                    },
                    Err(problem) => {
                        failures.push(format!("{name} ({}), {split:?}: {problem}", run.label))
                    }
                }
            }
            eprintln!(
                "{name} ({}): {}",
                run.label,
                first_summary.as_deref().unwrap_or("FAILED")
            );
        }
        tally.count(case, &runs);
    }

    // (c) Both servers still answer a normal request: no worker crashed or hung.
    for server in [&big, &default] {
        let seen = answered(server, b"GET /still/alive?yes HTTP/1.1\r\nHost: t\r\n\r\n");
        assert_eq!(seen["path"], "/still/alive", "{}", server.log());
    }
    eprintln!(
        "gunicorn corpus over real sockets: {}, {:.1} s",
        tally.summary(cases.len()),
        started.elapsed().as_secs_f64(),
    );
    assert!(
        failures.is_empty(),
        "{} failures:\n{}\n--- log of the --buffer-size 32768 server (tail) ---\n{}",
        failures.len(),
        failures.join("\n"),
        tail(&big.log(), 60)
    );
}

fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}

// ---------------------------------------------------------------------------------------------
// (b) One test per request-smuggling and framing rule of RFC 9112.
// ---------------------------------------------------------------------------------------------

/// Sends `raw` whole, then half-closes; exactly one 200 from the app must come back, then the
/// close. Returns the app's JSON.
fn answered(server: &Server, raw: &[u8]) -> Value {
    let exchange = exchange(&server.addr(), raw, Split::Whole, true);
    if let Err(problem) = check(&exchange, &Expect::Accepted) {
        panic!(
            "{:?}: {problem}\n--- server log (tail) ---\n{}",
            String::from_utf8_lossy(raw),
            tail(&server.log(), 30)
        );
    }
    let responses = parse_responses(&exchange.received).unwrap();
    serde_json::from_slice(&responses[0].body).expect("JSON from echoapp.py")
}

/// Sends `raw` whole and then byte by byte, without half-closing: each time, exactly one
/// response with `status` and `Connection: close` must come back, and the server must close
/// the connection on its own.
fn refused(server: &Server, raw: &[u8], status: u16) {
    for split in [Split::Whole, Split::Bytewise] {
        let exchange = exchange(&server.addr(), raw, split, false);
        if let Err(problem) = check(&exchange, &Expect::refused(&[status])) {
            panic!(
                "{:?} ({split:?}): {problem}\n--- server log (tail) ---\n{}",
                String::from_utf8_lossy(raw),
                tail(&server.log(), 30)
            );
        }
    }
}

/// (c) after each rule: the server still answers a normal request.
fn assert_still_serving(server: &Server) {
    let seen = answered(server, b"GET /healthy HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(seen["path"], "/healthy");
}

fn post(headers: &str, body: &str) -> Vec<u8> {
    format!("POST /upload HTTP/1.1\r\nHost: t\r\n{headers}\r\n{body}").into_bytes()
}

// RFC 9112 §6.1 (and §6.3 rule 3; §11.2): Content-Length with Transfer-Encoding is refused.
#[test]
fn content_length_with_transfer_encoding_is_400() {
    let server = start(&[]);
    refused(
        &server,
        &post(
            "Content-Length: 5\r\nTransfer-Encoding: chunked\r\n",
            "0\r\n\r\n",
        ),
        400,
    );
    refused(
        &server,
        &post(
            "Transfer-Encoding: chunked\r\nContent-Length: 5\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §6.3 rule 5: several Content-Length values that differ are an unrecoverable error.
#[test]
fn two_different_content_lengths_are_400() {
    let server = start(&[]);
    refused(
        &server,
        &post("Content-Length: 5\r\nContent-Length: 6\r\n", "hello!"),
        400,
    );
    refused(&server, &post("Content-Length: 5, 6\r\n", "hello!"), 400);
    assert_still_serving(&server);
}

// RFC 9112 §6.3 rule 5 / RFC 9110 §8.6: identical repeated Content-Length values may be accepted.
#[test]
fn identical_duplicate_content_lengths_are_accepted() {
    let server = start(&[]);
    for headers in [
        "Content-Length: 5\r\nContent-Length: 5\r\n",
        "Content-Length: 5, 5\r\n",
    ] {
        let seen = answered(&server, &post(headers, "hello"));
        assert_eq!(seen["body"], "hello", "{headers:?}");
        assert_eq!(seen["content_length"], "5", "{headers:?}");
    }
    assert_still_serving(&server);
}

// RFC 9112 §6.3 rule 5 / RFC 9110 §8.6: Content-Length = 1*DIGIT; a sign, inner space or hex is invalid.
#[test]
fn content_length_with_sign_space_or_hex_is_400() {
    let server = start(&[]);
    for value in ["+5", "-5", "5 0", "0x5", "a", "5a", "5.0", ""] {
        refused(
            &server,
            &post(&format!("Content-Length: {value}\r\n"), "hello"),
            400,
        );
    }
    assert_still_serving(&server);
}

// RFC 9112 §6.1: a transfer coding the server does not understand gets 501 (and §6.3 rule 4: chunked must be final).
#[test]
fn transfer_codings_other_than_a_final_chunked_are_501() {
    let server = start(&[]);
    for value in [
        "gzip",
        "chunked, gzip",
        "gzip, chunked",
        "deflate",
        "identity",
    ] {
        refused(
            &server,
            &post(
                &format!("Transfer-Encoding: {value}\r\n"),
                "5\r\nhello\r\n0\r\n\r\n",
            ),
            501,
        );
    }
    assert_still_serving(&server);
}

// RFC 9112 §6.1: a sender MUST NOT apply chunked more than once.
#[test]
fn chunked_twice_is_400() {
    let server = start(&[]);
    refused(
        &server,
        &post(
            "Transfer-Encoding: chunked, chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        400,
    );
    refused(
        &server,
        &post(
            "Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n",
            "5\r\nhello\r\n0\r\n\r\n",
        ),
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §6.1: Transfer-Encoding in an HTTP/1.0 message means its framing is faulty.
#[test]
fn transfer_encoding_on_http_1_0_is_400() {
    let server = start(&[]);
    refused(
        &server,
        b"POST /upload HTTP/1.0\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n\r\n",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §7.1: chunk-size = 1*HEXDIG, and parsers must not overflow on large numerals.
#[test]
fn bad_chunk_sizes_are_400() {
    let server = start(&[]);
    for size_line in [
        "zz",
        "-5",
        "+5",
        "0x5",
        " 5",
        "5 ",
        "6_0",
        "",
        "10000000000000000",
        "fffffffffffffffffffffff",
    ] {
        refused(
            &server,
            &post(
                "Transfer-Encoding: chunked\r\n",
                &format!("{size_line}\r\nhello\r\n0\r\n\r\n"),
            ),
            400,
        );
    }
    assert_still_serving(&server);
}

// RFC 9112 §7.1.1: chunk extensions are allowed, and ignored by a recipient that does not know them.
#[test]
fn chunk_extensions_are_accepted() {
    let server = start(&[]);
    let seen = answered(
        &server,
        &post(
            "Transfer-Encoding: chunked\r\n",
            "5;name=value\r\nhello\r\n6 ; a ; q=\"x y\"\r\n world\r\n0;last\r\n\r\n",
        ),
    );
    assert_eq!(seen["body"], "hello world");
    assert_eq!(seen["content_length"], "11");
    assert_still_serving(&server);
}

// RFC 9112 §7.1: chunk = chunk-size [ chunk-ext ] CRLF chunk-data CRLF.
#[test]
fn missing_crlf_after_chunk_data_is_400() {
    let server = start(&[]);
    for body in [
        "5\r\nhelloXX0\r\n\r\n",
        "5\r\nhello0\r\n\r\n",
        "5\r\nhello\n0\r\n\r\n",
    ] {
        refused(&server, &post("Transfer-Encoding: chunked\r\n", body), 400);
    }
    assert_still_serving(&server);
}

// RFC 9112 §2.2: a recipient MAY accept a bare LF as a line terminator; wsgilab does not (smuggling).
#[test]
fn bare_lf_line_endings_are_400() {
    let server = start(&[]);
    refused(&server, b"GET / HTTP/1.1\nHost: t\n\n", 400);
    refused(&server, b"GET / HTTP/1.1\r\nHost: t\n\r\n", 400);
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX: a\nContent-Length: 5\r\n\r\nhello",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §2.2: a bare CR must be treated as invalid (or replaced by SP).
#[test]
fn bare_cr_is_400() {
    let server = start(&[]);
    refused(&server, b"GET / HTTP/1.1\r\nHost: t\rX: y\r\n\r\n", 400);
    refused(&server, b"GET /\r HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    assert_still_serving(&server);
}

// RFC 9112 §5.2: a server receiving obs-fold in a request must reject it with 400 (or replace it by SP).
#[test]
fn obs_fold_is_400() {
    let server = start(&[]);
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Long: one\r\n two\r\n\r\n",
        400,
    );
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Long: one\r\n\ttwo\r\n\r\n",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §5.1: whitespace between a field name and the colon must be rejected with 400.
#[test]
fn whitespace_before_the_colon_is_400() {
    let server = start(&[]);
    refused(&server, b"GET / HTTP/1.1\r\nHost : t\r\n\r\n", 400);
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX-A\t: b\r\n\r\n",
        400,
    );
    refused(
        &server,
        b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length : 5\r\n\r\nhello",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9110 §5.5 (field values, as RFC 9112 §5 parses them): NUL, CR, LF and other controls are invalid.
#[test]
fn nul_and_control_bytes_in_a_header_value_are_400() {
    let server = start(&[]);
    for byte in [0x00u8, 0x01, 0x07, 0x08, 0x0b, 0x0c, 0x1b, 0x1f, 0x7f] {
        let mut raw = b"GET / HTTP/1.1\r\nHost: t\r\nX-Value: a".to_vec();
        raw.push(byte);
        raw.extend_from_slice(b"b\r\n\r\n");
        refused(&server, &raw, 400);
    }
    // A tab is whitespace, not a control, inside a value.
    let seen = answered(
        &server,
        b"GET / HTTP/1.1\r\nHost: t\r\nX-Value: a\tb\r\n\r\n",
    );
    assert_eq!(seen["headers"]["HTTP_X_VALUE"], "a\tb");
    assert_still_serving(&server);
}

// RFC 9112 §3.2.2: a server MUST accept the absolute-form; the app sees its path and query.
#[test]
fn absolute_form_target_reaches_the_app_as_path_and_query() {
    let server = start(&[]);
    let seen = answered(
        &server,
        b"GET http://example.com/p?q=1 HTTP/1.1\r\nHost: example.com\r\n\r\n",
    );
    assert_eq!(seen["path"], "/p");
    assert_eq!(seen["query"], "q=1");
    assert_eq!(seen["uri"], "http://example.com/p?q=1");
    assert_eq!(seen["method"], "GET");
    assert_still_serving(&server);
}

// RFC 9112 §3.2.4: the asterisk-form is for OPTIONS; the app sees PATH_INFO "*".
#[test]
fn asterisk_form_options_reaches_the_app() {
    let server = start(&[]);
    let seen = answered(&server, b"OPTIONS * HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(seen["method"], "OPTIONS");
    assert_eq!(seen["path"], "*");
    assert_eq!(seen["query"], "");
    assert_still_serving(&server);
}

// RFC 9112 §3.2.4: the asterisk-form is only used with OPTIONS.
#[test]
fn asterisk_form_with_get_is_400() {
    let server = start(&[]);
    refused(&server, b"GET * HTTP/1.1\r\nHost: t\r\n\r\n", 400);
    refused(
        &server,
        b"POST * HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\n\r\n",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §3: a request line over the server's limit (--buffer-size) is refused with 414
// (URI Too Long); a header section over it, after a request line that fits, with 431
// (RFC 6585 §5).
#[test]
fn a_request_line_longer_than_buffer_size_is_414() {
    let server = start(&["--buffer-size", "1024"]);
    let raw = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(2000));
    refused(&server, raw.as_bytes(), 414);
    let absolute = format!(
        "GET http://t/{} HTTP/1.1\r\nHost: t\r\n\r\n",
        "a".repeat(2000)
    );
    refused(&server, absolute.as_bytes(), 414);
    // The request line fits; the headers after it do not.
    let big_header = format!(
        "GET /{} HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(900),
        "b".repeat(200)
    );
    refused(&server, big_header.as_bytes(), 431);
    // Just under the limit is fine.
    let fits = format!("GET /{} HTTP/1.1\r\nHost: t\r\n\r\n", "a".repeat(900));
    let seen = answered(&server, fits.as_bytes());
    assert_eq!(seen["path"].as_str().map(str::len), Some(901));
    // Four 414s (two requests, whole and byte by byte), each logged before its answer.
    let why = "request line larger than --buffer-size (1024 bytes); answered 414 URI Too Long";
    let deadline = Instant::now() + Duration::from_secs(10);
    let log = loop {
        let log = server.log();
        if log.matches(why).count() >= 4 || Instant::now() > deadline {
            break log;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    assert_eq!(log.matches(why).count(), 4, "{log}");
    // Written by the worker for every 414, as for a 431: uWSGI's line for a request over
    // --buffer-size just before wsgilab's, which ends with the hint.
    let lines: Vec<&str> = log.lines().collect();
    let refusals: Vec<usize> = (1..lines.len())
        .filter(|&i| lines[i].contains("answered 414 URI Too Long"))
        .collect();
    for i in refusals {
        assert_eq!(
            lines[i - 1],
            "invalid HTTP request size (max 1024)...skip",
            "{log}"
        );
        assert!(lines[i].contains("(raise --buffer-size"), "{log}");
    }
    assert_still_serving(&server);
}

// RFC 9112 §3.2: a request with more than one Host field line must get 400.
#[test]
fn more_than_one_host_is_400() {
    let server = start(&[]);
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        400,
    );
    refused(
        &server,
        b"GET / HTTP/1.1\r\nHost: a.example\r\nHost: a.example\r\n\r\n",
        400,
    );
    refused(
        &server,
        b"GET / HTTP/1.0\r\nHost: a.example\r\nHost: b.example\r\n\r\n",
        400,
    );
    assert_still_serving(&server);
}

// RFC 9112 §11.2 and §6.3: after a framing error the server closes; a request hidden in the body never runs.
#[test]
fn a_request_smuggled_behind_a_framing_error_is_never_executed() {
    let server = start(&[]);
    let smuggled = |n: usize| format!("GET /smuggled-{n} HTTP/1.1\r\nHost: t\r\n\r\n");
    let attempts: Vec<(String, u16)> = vec![
        // CL.TE: a front end that believes Content-Length forwards the whole thing; a back end
        // that believes chunked would see the body end at "0" and run the rest.
        (
            format!(
                "POST /front-1 HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n{}",
                5 + smuggled(1).len(),
                smuggled(1)
            ),
            400,
        ),
        // TE.CL: the other way round.
        (
            format!(
                "POST /front-2 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n{:x}\r\n{}\r\n0\r\n\r\n",
                smuggled(2).len(),
                smuggled(2)
            ),
            400,
        ),
        // CL.TE with an obfuscated Transfer-Encoding value.
        (
            format!(
                "POST /front-3 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\nTransfer-Encoding:\tchunked\r\n\r\n0\r\n\r\n{}",
                smuggled(3)
            ),
            400,
        ),
        // CL.CL: two different lengths.
        (
            format!(
                "POST /front-4 HTTP/1.1\r\nHost: t\r\nContent-Length: 0\r\nContent-Length: {}\r\n\r\n{}",
                smuggled(4).len(),
                smuggled(4)
            ),
            400,
        ),
        // A Content-Length hidden behind a bare LF inside another field.
        (
            format!(
                "POST /front-5 HTTP/1.1\r\nHost: t\r\nX: a\nContent-Length: {}\r\n\r\n{}",
                smuggled(5).len(),
                smuggled(5)
            ),
            400,
        ),
        // A coding the server does not know, with chunked last: the body cannot be framed.
        (
            format!(
                "POST /front-6 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n{}",
                smuggled(6)
            ),
            501,
        ),
    ];
    for (raw, status) in &attempts {
        let exchange = exchange(&server.addr(), raw.as_bytes(), Split::Whole, false);
        if let Err(problem) = check(&exchange, &Expect::refused(&[*status])) {
            panic!("{raw:?}: {problem}\n{}", server.log());
        }
    }
    // The worker serves one connection at a time: once this request is in the log, every
    // attempt above has been dealt with.
    let seen = answered(&server, b"GET /after-smuggling HTTP/1.1\r\nHost: t\r\n\r\n");
    assert_eq!(seen["path"], "/after-smuggling");
    let log = server.wait_for_log("GET /after-smuggling");
    assert!(
        !log.contains("/smuggled-"),
        "a smuggled request ran:\n{log}"
    );
    assert!(
        !log.contains("/front-"),
        "a refused request reached the app:\n{log}"
    );
    assert_eq!(
        log.matches("wsgilab: refused a request from 127.0.0.1")
            .count(),
        attempts.len(),
        "{log}"
    );
}

// RFC 9112 §8: a server that receives an incomplete request MAY answer before closing. The
// parser refuses these with 400 at EOF (corpus_tests.rs says so for valid/099), but the worker
// closes without a word when the client half-closes mid-request.
#[test]
fn an_incomplete_request_then_half_close_gets_400() {
    let server = start(&[]);
    for raw in [
        &b"GET /cut HTTP/1.1\r\nHost: t\r\nX-Half"[..],
        b"POST /cut HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\nhello",
        b"POST /cut HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n0\r\n",
    ] {
        let exchange = exchange(&server.addr(), raw, Split::Whole, true);
        if let Err(problem) = check(&exchange, &Expect::refused(&[400])) {
            panic!("{:?}: {problem}", String::from_utf8_lossy(raw));
        }
    }
    assert_still_serving(&server);
}

// RFC 9112 §3.2: a server MUST answer 400 to a request whose Host field value is invalid
// (Host = uri-host [ ":" port ], RFC 3986 §3.2.2–3.2.3).
#[test]
fn an_invalid_host_value_is_400() {
    let server = start(&[]);
    for host in [
        &b"a b"[..],
        b"a/b",
        b"a@b",
        b"host:8o",
        b"[::1",
        b"a:1:2",
        b"\x80x",
        b":80",
    ] {
        let mut raw = b"GET / HTTP/1.1\r\nHost: ".to_vec();
        raw.extend_from_slice(host);
        raw.extend_from_slice(b"\r\n\r\n");
        refused(&server, &raw, 400);
    }
    assert_still_serving(&server);
}

// RFC 9110 §7.2: a client sends an empty Host when the target URI has no authority; RFC 9112
// §3.3 then names the server by its default name: for wsgilab, the local address.
#[test]
fn an_empty_host_is_accepted_and_the_local_address_names_the_server() {
    let server = start(&[]);
    let seen = answered(&server, b"GET /e HTTP/1.1\r\nHost:\r\n\r\n");
    assert_eq!(seen["path"], "/e");
    assert_eq!(seen["server_name"], "127.0.0.1");
    assert_eq!(seen["headers"]["HTTP_HOST"], "");
    // A Host with a port is still named by its host.
    let seen = answered(&server, b"GET /p HTTP/1.1\r\nHost: [::1]:8080\r\n\r\n");
    assert_eq!(seen["server_name"], "::1");
    assert_eq!(seen["headers"]["HTTP_HOST"], "[::1]:8080");
}

// RFC 9112 §3.2.2: with an absolute-form target the origin server MUST ignore the Host field
// and use the target's host: the app must not see the Host line's value as its host.
#[test]
fn absolute_form_host_wins_over_the_host_header() {
    let server = start(&[]);
    let seen = answered(
        &server,
        b"GET http://example.com/p?q=1 HTTP/1.1\r\nHost: other.example\r\n\r\n",
    );
    assert_eq!(seen["path"], "/p");
    assert_eq!(seen["server_name"], "example.com");
    assert_eq!(seen["headers"]["HTTP_HOST"], "example.com");
    // Userinfo is not part of the host; an HTTP/1.0 request needs no Host line at all.
    let seen = answered(
        &server,
        b"GET http://user:pw@example.com:8080/p HTTP/1.0\r\nHost: other.example\r\n\r\n",
    );
    assert_eq!(seen["server_name"], "example.com");
    assert_eq!(seen["headers"]["HTTP_HOST"], "example.com:8080");
    let seen = answered(&server, b"GET http://[::1]:8080/p HTTP/1.0\r\n\r\n");
    assert_eq!(seen["server_name"], "::1");
    assert_eq!(seen["headers"]["HTTP_HOST"], "[::1]:8080");
    assert_still_serving(&server);
}
