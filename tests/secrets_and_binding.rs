//! What the server must never do, checked on the real binary: write a request's body or its
//! cookies (or other credentials) into its log — on success, on every error path, on a
//! harakiri — and listen anywhere it was not told to (the HTTP socket and the stats server bind
//! exactly the address given, so 127.0.0.1 stays unreachable from other interfaces).

mod common;

use std::io::Write;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use common::server::{apps_dir, read_response, read_to_close, Server};

const SECRET_COOKIE: &str = "sessionid=COOKIE-SECRET-4f2a";
const SECRET_AUTH: &str = "Bearer AUTH-SECRET-9c1e";
const SECRET_BODY: &str = "password=BODY-SECRET-77d0";

fn secrets_in(log: &str) -> Vec<&'static str> {
    ["COOKIE-SECRET", "AUTH-SECRET", "BODY-SECRET"]
        .into_iter()
        .filter(|s| log.contains(s))
        .collect()
}

fn request(method: &str, path: &str, extra_headers: &str, body: &str) -> Vec<u8> {
    format!(
        "{method} {path} HTTP/1.1\r\nHost: t\r\nCookie: {SECRET_COOKIE}\r\nAuthorization: {SECRET_AUTH}\r\n{extra_headers}Content-Length: {}\r\nConnection: close\r\n\r\n{body}",
        body.len()
    )
    .into_bytes()
}

fn send(server: &Server, bytes: &[u8]) -> Vec<u8> {
    let mut stream = server.connect();
    let _ = stream.write_all(bytes);
    read_to_close(&mut stream)
}

#[test]
fn bodies_cookies_and_credentials_never_reach_the_log() {
    let server = Server::start(
        &apps_dir(),
        &[
            "--wsgi-file",
            "testapp.py",
            "--master",
            "--processes",
            "1",
            "--limit-post",
            "64",
            "--harakiri",
            "1",
        ],
    );
    // Served normally, and through the app's error paths.
    for path in ["/echo", "/raise", "/raise_mid", "/input"] {
        let answer = send(&server, &request("POST", path, "", SECRET_BODY));
        assert!(!answer.is_empty(), "{path}: no answer");
    }
    // Refused by the front door: a body over --limit-post, a malformed header after the secrets,
    // a head over --buffer-size, conflicting framing.
    let big_body = format!("{SECRET_BODY}{}", "x".repeat(100));
    send(&server, &request("POST", "/echo", "", &big_body));
    send(
        &server,
        &request("POST", "/echo", "Bad Header\r\n", SECRET_BODY),
    );
    let huge = format!("X-Pad: {}\r\n", "p".repeat(5000));
    send(&server, &request("POST", "/echo", &huge, SECRET_BODY));
    send(
        &server,
        &request(
            "POST",
            "/echo",
            "Transfer-Encoding: chunked\r\n",
            SECRET_BODY,
        ),
    );
    // A request killed by harakiri: the master logs the request it killed.
    let mut slow = server.connect();
    slow.write_all(&request("POST", "/slow?5", "", SECRET_BODY))
        .unwrap();
    let _ = read_response(&mut slow, false);
    server.wait_for_log("HARAKIRI ON WORKER");
    let log = server.log();
    assert!(
        log.contains("POST /echo"),
        "the requests were logged:\n{log}"
    );
    assert!(log.contains("boom from the app"), "{log}");
    assert!(
        secrets_in(&log).is_empty(),
        "secrets {:?} in the log:\n{log}",
        secrets_in(&log)
    );
}

/// The addresses this machine has besides loopback, from the kernel's routing view: the
/// source address it would use to reach a public address (no packet is sent).
fn non_loopback_address() -> Option<IpAddr> {
    let socket = std::net::UdpSocket::bind("0.0.0.0:0").ok()?;
    socket.connect("192.0.2.1:9").ok()?;
    let ip = socket.local_addr().ok()?.ip();
    (!ip.is_loopback() && !ip.is_unspecified()).then_some(ip)
}

#[test]
fn sockets_bind_only_where_they_are_told() {
    let stats_port = common::free_port();
    let server = Server::start(
        &apps_dir(),
        &[
            "--wsgi-file",
            "testapp.py",
            "--master",
            "--stats",
            &format!("127.0.0.1:{stats_port}"),
        ],
    );
    // Each listening socket of the server's processes, from /proc/net/tcp: only the two given.
    let listening = listening_sockets();
    let ours: Vec<&SocketAddr> = listening
        .iter()
        .filter(|a| a.port() == server.port || a.port() == stats_port)
        .collect();
    assert_eq!(ours.len(), 2, "{listening:?}");
    for addr in &ours {
        assert_eq!(
            addr.ip(),
            IpAddr::from([127, 0, 0, 1]),
            "{addr} listens beyond loopback"
        );
    }
    match non_loopback_address() {
        Some(ip) => {
            for port in [server.port, stats_port] {
                let reached =
                    TcpStream::connect_timeout(&SocketAddr::new(ip, port), Duration::from_secs(2));
                assert!(
                    reached.is_err(),
                    "port {port} answered on {ip} although bound to 127.0.0.1"
                );
            }
        }
        None => eprintln!(
            "SKIP sockets_bind_only_where_they_are_told (the other-interface half): this machine has no address besides loopback"
        ),
    }
}

/// Listening IPv4 sockets (state 0A) from /proc/net/tcp.
fn listening_sockets() -> Vec<SocketAddr> {
    let table = std::fs::read_to_string("/proc/net/tcp").expect("/proc/net/tcp");
    table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields.get(3) != Some(&"0A") {
                return None;
            }
            let (ip, port) = fields.get(1)?.split_once(':')?;
            let ip = u32::from_str_radix(ip, 16).ok()?;
            let port = u16::from_str_radix(port, 16).ok()?;
            // The kernel prints the address in host byte order of a little-endian machine.
            Some(SocketAddr::new(IpAddr::from(ip.to_le_bytes()), port))
        })
        .collect()
}
