//! The real server over real loopback sockets with real CPython: WSGI semantics (PEP 3333, every
//! route behind `wsgiref.validate.validator`), HTTP/1.1 framing, keep-alive, pipelining,
//! half-close and the limits.

mod common;

use std::io::Write;
use std::net::Shutdown;

use common::server::{apps_dir, read_response, read_to_close, run_to_exit, Server};
use serde_json::Value;

fn start(extra: &[&str]) -> Server {
    let mut args = vec!["--wsgi-file", "testapp.py"];
    args.extend_from_slice(extra);
    Server::start(&apps_dir(), &args)
}

/// No route may trip wsgiref's validator or leak a Python warning.
fn assert_valid(server: &Server) {
    let log = server.log();
    assert!(
        !log.contains("AssertionError"),
        "validator complained:\n{log}"
    );
    assert!(
        !log.contains("Warning"),
        "a Python warning was raised:\n{log}"
    );
}

fn echo(server: &Server, request: &[u8]) -> Value {
    let mut stream = server.connect();
    stream.write_all(request).unwrap();
    let response = read_response(&mut stream, false).expect("response");
    assert_eq!(response.status, 200, "{}", response.text());
    serde_json::from_slice(&response.body).expect("json from /echo")
}

#[test]
fn hello_world_and_its_log_line() {
    let server = start(&[]);
    let response = server.get("/hello");
    assert_eq!(response.status, 200);
    assert_eq!(response.text(), "Hello, World!");
    assert_eq!(response.header("content-length"), Some("13"));
    let log = server.wait_for_log("GET /hello");
    let line = log
        .lines()
        .find(|l| l.contains("GET /hello"))
        .expect("request line");
    assert!(line.starts_with("[pid: "), "{line}");
    assert!(line.contains("|app: 0|req: 1/1] 127.0.0.1 () {"), "{line}");
    assert!(
        line.contains("GET /hello => generated 13 bytes in "),
        "{line}"
    );
    assert!(line.contains("(HTTP/1.1 200) "), "{line}");
    assert_valid(&server);
}

#[test]
fn bodies_without_length_are_chunked_on_keep_alive() {
    let server = start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /nolength HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let response = read_response(&mut stream, false).unwrap();
    assert!(response.chunked);
    assert_eq!(response.text(), "no length given");
    stream
        .write_all(b"GET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let response = read_response(&mut stream, false).unwrap();
    assert!(response.chunked);
    assert_eq!(response.text(), "part 0;part 1;part 2;part 3;part 4;");
    assert_valid(&server);
}

#[test]
fn http_1_0_gets_a_close_delimited_body() {
    let server = start(&[]);
    let raw = server.exchange(b"GET /nolength HTTP/1.0\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(!text.contains("chunked"), "{text}");
    assert!(text.ends_with("\r\n\r\nno length given"), "{text}");
}

#[test]
fn late_start_response_write_and_file_wrapper() {
    let server = start(&[]);
    assert_eq!(server.get("/late").text(), "late start");
    assert_eq!(server.get("/write").text(), "written then returned");
    assert_eq!(server.get("/file").text(), "from a file wrapper");
    assert_valid(&server);
}

#[test]
fn exc_info_replaces_the_response_before_the_body() {
    let server = start(&[]);
    let response = server.get("/exc_info");
    assert_eq!(response.status, 503);
    assert_eq!(response.text(), "replaced by the error page");
    assert_valid(&server);
}

#[test]
fn an_exception_before_the_body_is_a_500_with_the_traceback_in_the_log() {
    let server = start(&[]);
    let response = server.get("/raise");
    assert_eq!(response.status, 500);
    assert_eq!(response.text(), "Internal Server Error");
    let log = server.wait_for_log("GET /raise =>");
    assert!(log.contains("Traceback (most recent call last):"), "{log}");
    assert!(log.contains("RuntimeError: boom from the app"), "{log}");
    assert!(
        log.contains("uWSGI would have closed the connection without a response"),
        "{log}"
    );
    assert!(log.contains("GET /raise => generated 21 bytes"), "{log}");
}

#[test]
fn an_exception_mid_body_cuts_the_response_short() {
    let server = start(&[]);
    let raw = server.exchange(b"GET /raise_mid HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK"), "{text}");
    assert!(text.contains("first chunk;"), "{text}");
    assert!(
        !text.ends_with("0\r\n\r\n"),
        "the chunked body must not look complete: {text:?}"
    );
    server.wait_for_log("RuntimeError: boom in the middle");
}

#[test]
fn header_injection_by_the_app_is_refused() {
    let server = start(&[]);
    let raw = server.exchange(b"GET /head_inject HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 500 "), "{text}");
    assert!(!text.contains("Set-Cookie"), "{text}");
    server.wait_for_log("header injection refused");
}

#[test]
fn head_requests_get_headers_only() {
    let server = start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"HEAD /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let head = read_response(&mut stream, true).unwrap();
    assert_eq!(head.header("content-length"), Some("13"));
    // The next response starts right after the head: no body bytes were sent.
    let get = read_response(&mut stream, false).unwrap();
    assert_eq!(get.text(), "Hello, World!");
}

#[test]
fn environ_is_complete_and_typed() {
    let server = start(&[]);
    let got = echo(
        &server,
        b"POST /echo/caf%C3%A9/a%20b?x=1&y=%20 HTTP/1.1\r\nHost: example.com:8080\r\nContent-Type: text/plain\r\nContent-Length: 5\r\nX-Multi: a\r\nX-Multi: b\r\nCookie: a=1\r\nCookie: b=2\r\nX_Sneaky: dropped\r\n\r\nhello",
    );
    let env = &got["environ"];
    assert_eq!(env["REQUEST_METHOD"], "POST");
    assert_eq!(
        env["PATH_INFO"], "/echo/caf\u{c3}\u{a9}/a b",
        "PEP 3333: bytes decoded as latin-1"
    );
    assert_eq!(env["QUERY_STRING"], "x=1&y=%20");
    assert_eq!(env["REQUEST_URI"], "/echo/caf%C3%A9/a%20b?x=1&y=%20");
    assert_eq!(env["SCRIPT_NAME"], "");
    assert_eq!(env["SERVER_NAME"], "example.com");
    assert_eq!(env["SERVER_PORT"], server.port.to_string());
    assert_eq!(env["SERVER_PROTOCOL"], "HTTP/1.1");
    assert_eq!(env["REMOTE_ADDR"], "127.0.0.1");
    assert!(env["REMOTE_PORT"].as_str().unwrap().parse::<u16>().is_ok());
    assert_eq!(env["CONTENT_TYPE"], "text/plain");
    assert_eq!(env["CONTENT_LENGTH"], "5");
    assert_eq!(env["HTTP_X_MULTI"], "a, b");
    assert_eq!(env["HTTP_COOKIE"], "a=1; b=2");
    assert_eq!(env["wsgi.url_scheme"], "http");
    assert!(
        env.get("HTTP_X_SNEAKY").is_none(),
        "headers with '_' are dropped"
    );
    assert!(env.get("HTTP_CONTENT_LENGTH").is_none());
    assert_eq!(got["body"], "hello");
    let types = &got["types"];
    assert_eq!(types["wsgi.version"], "tuple");
    assert_eq!(types["wsgi.multithread"], "bool");
    assert_eq!(types["wsgi.multiprocess"], "bool");
    assert_eq!(types["wsgi.run_once"], "bool");
    assert_eq!(types["wsgi.input_terminated"], "bool");
    assert!(types.get("wsgi.errors").is_some());
    assert!(types.get("wsgi.file_wrapper").is_some());
    assert_valid(&server);
}

#[test]
fn wsgi_input_is_a_file_that_stops_at_the_body() {
    let server = start(&[]);
    let body = b"line one\nline two\nline three\nrest";
    let mut request = format!(
        "POST /input HTTP/1.1\r\nHost: t\r\nContent-Length: {}\r\n\r\n",
        body.len()
    )
    .into_bytes();
    request.extend_from_slice(body);
    // A second request right behind: wsgi.input must not read into it.
    request.extend_from_slice(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    let mut stream = server.connect();
    stream.write_all(&request).unwrap();
    let response = read_response(&mut stream, false).unwrap();
    let parts: Vec<String> = serde_json::from_slice(&response.body).unwrap();
    assert_eq!(
        parts,
        [
            "line one\n",
            "lin",
            "e ",
            "two\n",
            "line three\n",
            "rest",
            "",
            ""
        ]
    );
    assert_eq!(
        read_response(&mut stream, false).unwrap().text(),
        "Hello, World!"
    );
    assert_valid(&server);
}

#[test]
fn a_10_mb_upload_and_a_chunked_upload() {
    let server = start(&[]);
    let size = 10 * 1024 * 1024;
    let mut stream = server.connect();
    let head = format!("POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: {size}\r\n\r\n");
    stream.write_all(head.as_bytes()).unwrap();
    stream.write_all(&vec![b'u'; size]).unwrap();
    assert_eq!(
        read_response(&mut stream, false).unwrap().text(),
        size.to_string()
    );

    let got = echo(
        &server,
        b"POST /echo HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n5;ext=1\r\nhello\r\n6\r\n world\r\n0\r\nX-Trailer: yes\r\n\r\n",
    );
    assert_eq!(got["body"], "hello world");
    assert_eq!(got["environ"]["CONTENT_LENGTH"], "11");
    assert_valid(&server);
}

#[test]
fn expect_100_continue() {
    let server = start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(
            b"POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: 4\r\nExpect: 100-continue\r\n\r\n",
        )
        .unwrap();
    let interim = read_response(&mut stream, false).unwrap();
    assert_eq!(interim.status, 100);
    stream.write_all(b"abcd").unwrap();
    assert_eq!(read_response(&mut stream, false).unwrap().text(), "4");
}

#[test]
fn keep_alive_pipelining_and_half_close() {
    let server = start(&[]);
    // Three requests in one write, answered in order on one connection.
    let mut stream = server.connect();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /nope HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let statuses: Vec<u16> = (0..3)
        .map(|_| read_response(&mut stream, false).unwrap().status)
        .collect();
    assert_eq!(statuses, [200, 404, 200]);

    // The client half-closes after sending: it still gets every response, then EOF.
    let mut stream = server.connect();
    stream
        .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /stream HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    stream.shutdown(Shutdown::Write).unwrap();
    assert_eq!(
        read_response(&mut stream, false).unwrap().text(),
        "Hello, World!"
    );
    assert_eq!(
        read_response(&mut stream, false).unwrap().text(),
        "part 0;part 1;part 2;part 3;part 4;"
    );
    assert!(read_to_close(&mut stream).is_empty());

    // HTTP/1.0 keep-alive on request.
    let mut stream = server.connect();
    stream
        .write_all(b"GET /hello HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        .unwrap();
    let response = read_response(&mut stream, false).unwrap();
    assert_eq!(response.header("connection"), Some("keep-alive"));
    stream.write_all(b"GET /hello HTTP/1.0\r\n\r\n").unwrap();
    let response = read_response(&mut stream, false).unwrap();
    assert_eq!(response.header("connection"), Some("close"));
    assert!(read_to_close(&mut stream).is_empty());
    assert_valid(&server);
}

#[test]
fn an_idle_keep_alive_connection_does_not_hold_the_worker() {
    // One worker with one core. A client that keeps its connection open and says nothing
    // (a browser between clicks) used to pin it, as it pins uWSGI's: everyone else waited in
    // the accept queue until --socket-timeout. Parked, it leaves the worker free for others,
    // and its own next request is still answered on the same connection.
    let server = start(&["--socket-timeout", "30"]);
    let hello = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut idle = server.connect();
    idle.write_all(hello).unwrap();
    assert_eq!(read_response(&mut idle, false).unwrap().status, 200);
    let mut others: Vec<_> = (0..3).map(|_| server.connect()).collect();
    for other in &mut others {
        other.write_all(hello).unwrap();
        let response = read_response(other, false).expect("served while the first client idles");
        assert_eq!(response.text(), "Hello, World!");
    }
    idle.write_all(hello).unwrap();
    let response = read_response(&mut idle, false).expect("the idle client's next request");
    assert_eq!(response.status, 200);
    assert_eq!(response.header("connection"), None, "still kept alive");
    // The others, parked meanwhile, are still open too.
    for other in &mut others {
        other.write_all(hello).unwrap();
        assert_eq!(read_response(other, false).unwrap().status, 200);
    }
}

#[test]
fn a_retiring_worker_closes_its_parked_connections() {
    // --max-requests 2: the first client's connection is parked after its request; the second
    // request is the worker's last (`Connection: close`), and as the worker leaves it closes
    // the parked connection rather than let a request land on it. The new worker serves the
    // first client when it comes back.
    let server = start(&["--master", "--max-requests", "2", "--socket-timeout", "30"]);
    let hello = b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n";
    let mut first = server.connect();
    first.write_all(hello).unwrap();
    let response = read_response(&mut first, false).unwrap();
    assert_eq!(response.header("connection"), None);
    let mut second = server.connect();
    second.write_all(hello).unwrap();
    let response = read_response(&mut second, false).unwrap();
    assert_eq!(response.header("connection"), Some("close"));
    assert!(read_to_close(&mut first).is_empty(), "closed, nothing sent");
    let mut again = server.connect();
    again.write_all(hello).unwrap();
    assert_eq!(read_response(&mut again, false).unwrap().status, 200);
    assert!(server.log().contains("retires: --max-requests 2 reached"));
}

#[test]
fn large_chunks_arrive_whole_and_in_order() {
    // Chunks of 64 KiB and more are written from the app's own bytes objects, without a copy.
    let server = start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(
            b"GET /chunks HTTP/1.1\r\nHost: t\r\n\r\nGET /big?300000 HTTP/1.1\r\nHost: t\r\n\r\n",
        )
        .unwrap();
    let response = read_response(&mut stream, false).unwrap();
    assert_eq!(response.header("transfer-encoding"), Some("chunked"));
    let expected: Vec<u8> = (0..8u8)
        .flat_map(|i| {
            let mut chunk = vec![65 + i; 65536];
            chunk.extend(i.to_string().repeat(1000).bytes());
            chunk
        })
        .collect();
    assert!(
        response.body == expected,
        "the body differs from what the app yielded"
    );
    let response = read_response(&mut stream, false).unwrap();
    assert_eq!(response.body, vec![b'x'; 300_000]);
    assert_valid(&server);
}

#[test]
fn http_socket_closes_after_each_response_like_uwsgi() {
    let server = Server::start_with(&apps_dir(), "--http-socket", &["--wsgi-file", "testapp.py"]);
    let raw = server
        .exchange(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\nGET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    let text = String::from_utf8_lossy(&raw);
    assert_eq!(text.matches("HTTP/1.1 200 OK").count(), 1, "{text}");
    assert!(text.contains("Connection: close"), "{text}");
}

#[test]
fn the_iterable_is_always_closed() {
    let server = start(&[]);
    assert_eq!(server.get("/track_close").text(), "tracked");
    assert_eq!(server.get("/closed").text(), "[\"closed\"]");
    assert_valid(&server);
}

#[test]
fn limits_and_malformed_requests() {
    let server = start(&["--buffer-size", "1024", "--limit-post", "100"]);
    let big_header = format!(
        "GET /hello HTTP/1.1\r\nHost: t\r\nX-Big: {}\r\n\r\n",
        "a".repeat(2000)
    );
    let cases: Vec<(&str, Vec<u8>, u16)> = vec![
        ("head over --buffer-size", big_header.into_bytes(), 431),
        (
            "body over --limit-post",
            b"POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: 101\r\n\r\n".to_vec(),
            413,
        ),
        (
            "chunked body over --limit-post",
            format!("POST /size HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n80\r\n{}\r\n0\r\n\r\n", "z".repeat(128)).into_bytes(),
            413,
        ),
        ("garbage", b"HELLO THERE\r\n\r\n".to_vec(), 400),
        (
            "Content-Length with Transfer-Encoding",
            b"POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n".to_vec(),
            400,
        ),
        (
            "two different Content-Lengths",
            b"POST /size HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\nContent-Length: 4\r\n\r\nabcd".to_vec(),
            400,
        ),
        ("HTTP/1.1 without Host", b"GET /hello HTTP/1.1\r\n\r\n".to_vec(), 400),
    ];
    for (name, request, status) in cases {
        let raw = server.exchange(&request);
        let text = String::from_utf8_lossy(&raw);
        assert!(
            text.starts_with(&format!("HTTP/1.1 {status} ")),
            "{name}: {text}"
        );
        assert!(text.contains("Connection: close"), "{name}: {text}");
    }
    let log = server.wait_for_log("raise --limit-post");
    assert!(
        log.contains("invalid HTTP request size (max 1024)...skip"),
        "{log}"
    );
    assert!(log.contains("raise --buffer-size"), "{log}");
    assert!(log.contains("raise --limit-post"), "{log}");
    // The server is still healthy.
    assert_eq!(server.get("/hello").status, 200);
}

#[test]
fn sigint_stops_the_server() {
    let server = start(&[]);
    assert_eq!(server.get("/hello").status, 200);
    let (status, log) = server.stop();
    assert_eq!(status, Some(0), "{log}");
    assert!(
        log.contains("SIGINT received...killing workers..."),
        "{log}"
    );
}

#[test]
fn sigterm_without_a_master_stops_as_uwsgi_does() {
    let server = start(&[]);
    assert_eq!(server.get("/hello").status, 200);
    server.signal("TERM");
    let (status, log) = server.wait_exit(std::time::Duration::from_secs(10));
    assert_eq!(status, Some(0), "{log}");
    assert!(log.contains("wsgilab: SIGTERM received: stopping"), "{log}");
    // uWSGI's worker without a master ends on SIGTERM (end_me); only a master reloads.
    assert!(!log.contains("would reload here"), "{log}");
}

#[test]
fn no_socket_behaves_like_uwsgi_and_says_what_to_add() {
    let (status, log) = run_to_exit(&apps_dir(), &[]);
    assert_eq!(status, Some(1), "{log}");
    assert!(log.contains("*** Starting wsgilab"), "{log}");
    assert!(
        log.contains("The -s/--socket option is missing and stdin is not a socket."),
        "{log}"
    );
    assert!(log.contains("hint: tell wsgilab where to listen"), "{log}");
}

#[test]
fn a_bad_flag_is_one_line_and_status_2() {
    // A configuration error exits 2, as a usage error does (issue 19: every error at once).
    let (status, log) = run_to_exit(&apps_dir(), &["--htp-socket", ":8000"]);
    assert_eq!(status, Some(2));
    assert_eq!(log.trim().lines().count(), 1, "{log}");
    assert!(log.contains("--htp-socket"), "{log}");
    let (status, log) = run_to_exit(
        &apps_dir(),
        &["--http-socket", ":8000", "--processes", "many"],
    );
    assert_eq!(status, Some(2));
    assert!(log.contains("--processes") && log.contains("many"), "{log}");
}

#[test]
fn need_app_exits_22_when_the_import_fails() {
    let port = common::free_port().to_string();
    let addr = format!("127.0.0.1:{port}");
    let (status, log) = run_to_exit(
        &apps_dir(),
        &[
            "--http-socket",
            &addr,
            "--module",
            "nosuchmodule",
            "--need-app",
        ],
    );
    assert_eq!(status, Some(22), "{log}");
    assert!(
        log.contains("ModuleNotFoundError: No module named 'nosuchmodule'"),
        "{log}"
    );
    assert!(
        log.contains("unable to load app 0 (mountpoint='') (callable not found or import error)"),
        "{log}"
    );
    assert!(log.contains("*** no app loaded. GAME OVER ***"), "{log}");
}

#[test]
fn without_an_app_every_request_is_a_500() {
    let server = start(&["--module", "nosuchmodule"]);
    let response = server.get("/");
    assert_eq!(response.status, 500);
    assert_eq!(response.text(), "Internal Server Error");
    let log = server.wait_for_log("|app: -1|req: -1/");
    assert!(
        log.contains("*** no app loaded. going in full dynamic mode ***"),
        "{log}"
    );
    assert!(
        log.contains("--- no python application found, check your startup logs for errors ---"),
        "{log}"
    );
    assert!(log.contains("|app: -1|req: -1/"), "{log}");
}

#[test]
fn port_in_use_is_uwsgis_message_and_status_1() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let (status, log) = run_to_exit(
        &apps_dir(),
        &["--http-socket", &addr, "--wsgi-file", "testapp.py"],
    );
    assert_eq!(status, Some(1), "{log}");
    assert!(
        log.contains("bind(): Address already in use [core/socket.c line 769]"),
        "{log}"
    );
    assert!(
        log.contains(&format!(
            "probably another instance of uWSGI is running on the same address ({addr})."
        )),
        "{log}"
    );
}

#[test]
fn threads_serve_requests_at_once_in_one_process() {
    let server = start(&["--threads", "4"]);
    let clients: Vec<_> = (0..4)
        .map(|_| {
            let addr = server.addr();
            std::thread::spawn(move || {
                let mut stream = std::net::TcpStream::connect(addr).unwrap();
                stream
                    .write_all(
                        b"GET /concurrent?0.5 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n",
                    )
                    .unwrap();
                let response = read_response(&mut stream, false).unwrap();
                serde_json::from_slice::<Value>(&response.body).unwrap()
            })
        })
        .collect();
    let answers: Vec<Value> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    let most = answers
        .iter()
        .map(|a| a["max"].as_u64().unwrap())
        .max()
        .unwrap();
    assert!(
        most >= 2,
        "four threads never ran two requests at once: {answers:?}"
    );
    assert!(answers.iter().all(|a| a["multithread"] == true));
    assert!(server.log().contains("*** Operational MODE: threaded ***"));
    assert_valid(&server);
}

#[test]
fn a_client_trickling_its_head_is_cut_off_and_frees_the_worker() {
    let server = start(&["--socket-timeout", "1"]);
    let addr = server.addr();
    let slow = std::thread::spawn(move || {
        let mut stream = std::net::TcpStream::connect(&addr).unwrap();
        stream
            .set_read_timeout(Some(std::time::Duration::from_millis(50)))
            .unwrap();
        stream
            .write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n")
            .unwrap();
        // A byte every 300 ms: each read completes well within --socket-timeout, but the head
        // never does. Bounded: at most 40 bytes.
        let mut got = Vec::new();
        for _ in 0..40 {
            if stream.write_all(b"X").is_err() {
                break;
            }
            let mut buf = [0u8; 512];
            match std::io::Read::read(&mut stream, &mut buf) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) => {}
            }
            if !got.is_empty() {
                break;
            }
            std::thread::sleep(std::time::Duration::from_millis(250));
        }
        String::from_utf8_lossy(&got).into_owned()
    });
    // Meanwhile another client is served as soon as the slow one is cut off.
    std::thread::sleep(std::time::Duration::from_millis(200));
    assert_eq!(server.get("/hello").status, 200);
    let answer = slow.join().unwrap();
    assert!(
        answer.starts_with("HTTP/1.1 408 Request Timeout"),
        "{answer:?}"
    );
    let log = server.wait_for_log("was not complete in time");
    assert!(log.contains("--socket-timeout 1 s"), "{log}");
}

/// Where `needle` is in `haystack`.
fn find(haystack: &[u8], needle: &[u8]) -> Option<usize> {
    haystack.windows(needle.len()).position(|w| w == needle)
}

/// Reads until the server ends the connection: what came, and whether it ended with a reset
/// rather than a close.
fn read_until_end(stream: &mut std::net::TcpStream) -> (Vec<u8>, bool) {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match std::io::Read::read(stream, &mut buf) {
            Ok(0) => return (out, false),
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return (out, true),
            Err(e) => panic!("read from wsgilab: {e} (after {} bytes)", out.len()),
        }
    }
}

#[test]
fn the_status_and_header_values_go_out_as_latin1() {
    let server = start(&[]);
    let raw = server.exchange(b"GET /latin1 HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n");
    assert!(
        raw.starts_with(b"HTTP/1.1 200 Tr\xe8s bien\r\n"),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(
        find(&raw, b"\r\nX-Test: caf\xe9\r\n").is_some(),
        "{:?}",
        String::from_utf8_lossy(&raw)
    );
    assert!(raw.ends_with(b"\r\n\r\nok"));
}

#[test]
fn a_header_value_latin1_cannot_encode_is_a_500_naming_the_header() {
    let server = start(&[]);
    let response = server.get("/not_latin1");
    assert_eq!(response.status, 500, "{}", response.text());
    assert_eq!(response.header("x-test"), None);
    let log = server.wait_for_log("GET /not_latin1 =>");
    assert!(
        log.contains("the app's response header \"X-Test\" has the value \"ü€\""),
        "{log}"
    );
    assert!(log.contains("ISO-8859-1 cannot encode"), "{log}");
    assert!(
        log.contains("GET /not_latin1 => generated 21 bytes"),
        "{log}"
    );
    assert!(log.contains("(HTTP/1.1 500)"), "{log}");
}

#[test]
fn with_http_socket_a_stream_that_fails_midway_is_visibly_incomplete() {
    let server = Server::start_with(&apps_dir(), "--http-socket", &["--wsgi-file", "testapp.py"]);
    // HTTP/1.1: chunked even though the connection closes after it, so the missing last
    // chunk shows.
    let mut stream = server.connect();
    stream
        .write_all(b"GET /raise_mid HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let (raw, _) = read_until_end(&mut stream);
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 200 OK\r\n"), "{text}");
    assert!(text.contains("Transfer-Encoding: chunked\r\n"), "{text}");
    assert!(text.contains("Connection: close\r\n"), "{text}");
    assert!(text.ends_with("\r\n\r\nc\r\nfirst chunk;\r\n"), "{text:?}");
    let log = server.wait_for_log("RuntimeError: boom in the middle");
    assert!(
        log.contains("the chunked body ends without its last chunk"),
        "{log}"
    );
    // HTTP/1.0: no chunks; the connection is reset, not closed, so the body cannot look whole.
    let mut stream = server.connect();
    stream
        .write_all(b"GET /raise_mid HTTP/1.0\r\n\r\n")
        .unwrap();
    let (raw, reset) = read_until_end(&mut stream);
    let text = String::from_utf8_lossy(&raw);
    assert!(reset, "the connection ended with a plain close: {text:?}");
    assert!(!text.contains("chunked"), "{text}");
    let log = server.wait_for_log("the connection is reset rather than closed");
    assert!(
        !log.contains("the connection is closed so the client sees an incomplete response"),
        "{log}"
    );
}

#[test]
fn the_apps_own_connection_close_is_sent_and_honoured() {
    let server = start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /app_close HTTP/1.1\r\nHost: t\r\n\r\n")
        .unwrap();
    let response = read_response(&mut stream, false).unwrap();
    assert_eq!(response.text(), "closing");
    assert_eq!(response.header("connection"), Some("close"));
    // And the connection does close: a second request gets nothing.
    let _ = stream.write_all(b"GET /hello HTTP/1.1\r\nHost: t\r\n\r\n");
    let (rest, _) = read_until_end(&mut stream);
    assert!(rest.is_empty(), "{:?}", String::from_utf8_lossy(&rest));
}

#[test]
fn no_content_has_no_length_and_not_modified_keeps_the_apps() {
    let server = start(&[]);
    let mut stream = server.connect();
    stream
        .write_all(b"GET /no_content HTTP/1.1\r\nHost: t\r\n\r\nGET /not_modified HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n")
        .unwrap();
    let (raw, _) = read_until_end(&mut stream);
    let text = String::from_utf8_lossy(&raw);
    let (first, second) = text
        .split_once("\r\n\r\n")
        .unwrap_or_else(|| panic!("{text:?}"));
    assert!(first.starts_with("HTTP/1.1 204 No Content"), "{text}");
    assert!(
        !first.to_ascii_lowercase().contains("content-length"),
        "{text}"
    );
    assert!(second.starts_with("HTTP/1.1 304 Not Modified"), "{text}");
    assert!(second.contains("\r\nContent-Length: 1234\r\n"), "{text}");
    assert!(
        second.ends_with("\r\n\r\n"),
        "a 304 must have no body: {text:?}"
    );
}

#[test]
fn the_uwsgi_remark_on_a_500_says_what_uwsgi_would_really_do() {
    let server = start(&[]);
    assert_eq!(server.get("/second_start").status, 500);
    let log = server.wait_for_log("GET /second_start =>");
    assert!(
        log.contains("uWSGI would have answered with the second call's \"404 Not Found\""),
        "{log}"
    );
    assert_eq!(server.get("/start_then_raise").status, 500);
    let log = server.wait_for_log("GET /start_then_raise =>");
    assert!(
        log.contains(
            "uWSGI would have sent the app's \"202 Accepted\" and its headers with an empty body"
        ),
        "{log}"
    );
    // Only the exception before start_response gets the remark that uWSGI sends nothing.
    assert_eq!(
        log.matches("uWSGI would have closed the connection without a response")
            .count(),
        0,
        "{log}"
    );
    assert_eq!(server.get("/raise").status, 500);
    server.wait_for_log("uWSGI would have closed the connection without a response");
}

#[test]
fn the_banner_suggests_nothing_wsgilab_does_not_have() {
    let server = start(&[]);
    let log = server.log();
    let root = std::process::Command::new("id")
        .arg("-u")
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
        .unwrap_or(false);
    // uWSGI's two root lines point at --uid, --gid and --chroot, which wsgilab does not have.
    assert!(!log.contains("use the --uid flag"), "{log}");
    assert!(!log.contains("you can use --uid"), "{log}");
    assert_eq!(
        log.contains("you are running wsgilab as root"),
        root,
        "{log}"
    );
    assert_eq!(log.contains("cannot drop privileges itself"), root, "{log}");
}

#[test]
fn too_many_header_lines_get_431_without_uwsgis_reset_remark() {
    // 150 short header lines: 2 KiB, well inside the default 4 KiB buffer that uWSGI would
    // parse them in (keeping the first variables, answering), so neither its
    // "invalid HTTP request size" line nor its reset applies.
    let server = start(&[]);
    let mut request = String::from("GET /hello HTTP/1.1\r\nHost: t\r\n");
    for i in 0..150 {
        request.push_str(&format!("X-{i}: v\r\n"));
    }
    request.push_str("\r\n");
    assert!(request.len() < 4096);
    let raw = server.exchange(request.as_bytes());
    let text = String::from_utf8_lossy(&raw);
    assert!(text.starts_with("HTTP/1.1 431 "), "{text}");
    let log = server.wait_for_log("refused a request");
    assert!(
        log.contains("more than 100 header or trailer lines"),
        "{log}"
    );
    assert!(!log.contains("invalid HTTP request size"), "{log}");
    assert!(!log.contains("uWSGI would reset"), "{log}");
}
