//! A real `wsgilab serve` process for a test, and a minimal HTTP client that reads responses
//! byte-exactly (so framing mistakes show), over real loopback sockets.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A running server; killed (and its log kept) when dropped.
pub struct Server {
    child: Option<Child>,
    pub port: u16,
    pub log_path: PathBuf,
}

impl Server {
    /// Starts `wsgilab serve --http11-socket 127.0.0.1:PORT ARGS...` in `cwd` and waits until it
    /// accepts connections (or exits, which panics with its log).
    pub fn start(cwd: &Path, args: &[&str]) -> Server {
        Self::start_with(cwd, "--http11-socket", args)
    }

    pub fn start_with(cwd: &Path, socket_flag: &str, args: &[&str]) -> Server {
        let port = super::free_port();
        let log_path = super::temp_dir("server-log").join("server.log");
        let log = std::fs::File::create(&log_path).expect("create server log");
        let mut command = Command::new(super::wsgilab());
        command
            .arg("serve")
            .arg(socket_flag)
            .arg(format!("127.0.0.1:{port}"))
            .args(args)
            .current_dir(cwd)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("clone log"))
            .stderr(log);
        let child = command.spawn().expect("spawn wsgilab");
        let mut server = Server {
            child: Some(child),
            port,
            log_path,
        };
        server.wait_ready();
        server
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Some(status) = self
                .child
                .as_mut()
                .and_then(|c| c.try_wait().ok().flatten())
            {
                panic!("wsgilab exited early with {status}; log:\n{}", self.log());
            }
            if self.log().contains("spawned uWSGI worker") {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        panic!("wsgilab did not become ready in 30 s; log:\n{}", self.log());
    }

    pub fn addr(&self) -> String {
        format!("127.0.0.1:{}", self.port)
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(&self.log_path).unwrap_or_default()
    }

    /// The log once it contains `needle` (the request line is written after the response, so a
    /// test that has its response may be a moment ahead of the log).
    pub fn wait_for_log(&self, needle: &str) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let log = self.log();
            if log.contains(needle) {
                return log;
            }
            assert!(
                Instant::now() < deadline,
                "the log never showed {needle:?}:\n{log}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    pub fn connect(&self) -> TcpStream {
        let stream = TcpStream::connect(self.addr()).expect("connect to wsgilab");
        stream
            .set_read_timeout(Some(Duration::from_secs(20)))
            .unwrap();
        stream
    }

    /// Sends raw bytes on a new connection and reads until the server closes it.
    pub fn exchange(&self, request: &[u8]) -> Vec<u8> {
        let mut stream = self.connect();
        stream.write_all(request).expect("send request");
        read_to_close(&mut stream)
    }

    /// One GET on a new connection, parsed.
    pub fn get(&self, path: &str) -> Response {
        let mut stream = self.connect();
        let request = format!(
            "GET {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\n\r\n",
            self.addr()
        );
        stream.write_all(request.as_bytes()).unwrap();
        read_response(&mut stream, false).expect("a response")
    }

    /// The server's (master's) pid.
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map(|c| c.id()).expect("server running")
    }

    /// Sends a signal (`"HUP"`, `"TERM"`, `"KILL"`...) to the server process.
    pub fn signal(&self, name: &str) {
        signal(self.pid(), name);
    }

    /// Waits for the server to exit by itself; its status and log.
    pub fn wait_exit(mut self, within: Duration) -> (Option<i32>, String) {
        let mut child = self.child.take().expect("server running");
        let deadline = Instant::now() + within;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return (status.code(), self.log());
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                panic!(
                    "the server did not exit within {within:?}; log:\n{}",
                    self.log()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Stops the server (SIGINT) and returns its exit status and log.
    pub fn stop(mut self) -> (Option<i32>, String) {
        let status = self.child.take().map(|mut child| {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(10);
            loop {
                if let Ok(Some(status)) = child.try_wait() {
                    break status.code();
                }
                if Instant::now() > deadline {
                    let _ = child.kill();
                    break child.wait().ok().and_then(|s| s.code());
                }
                std::thread::sleep(Duration::from_millis(20));
            }
        });
        (status.flatten(), self.log())
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        // SIGINT first: a master kills its workers before leaving, so none is left behind.
        if let Some(mut child) = self.child.take() {
            let _ = Command::new("kill")
                .arg("-INT")
                .arg(child.id().to_string())
                .status();
            let deadline = Instant::now() + Duration::from_secs(5);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Sends a signal by name to a process.
pub fn signal(pid: u32, name: &str) {
    let status = Command::new("kill")
        .arg(format!("-{name}"))
        .arg(pid.to_string())
        .status()
        .expect("kill");
    assert!(status.success(), "kill -{name} {pid} failed");
}

/// Runs `wsgilab serve ARGS...` in `cwd` to completion (for commands that exit by themselves).
pub fn run_to_exit(cwd: &Path, args: &[&str]) -> (Option<i32>, String) {
    let output = Command::new(super::wsgilab())
        .arg("serve")
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("run wsgilab");
    let mut log = String::from_utf8_lossy(&output.stdout).into_owned();
    log.push_str(&String::from_utf8_lossy(&output.stderr));
    (output.status.code(), log)
}

pub fn read_to_close(stream: &mut TcpStream) -> Vec<u8> {
    let mut out = Vec::new();
    let mut buf = [0u8; 65536];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => out.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => panic!("read from wsgilab: {e} (after {} bytes)", out.len()),
        }
    }
    out
}

/// A response as it came over the wire.
#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
    /// The body arrived with `Transfer-Encoding: chunked`.
    pub chunked: bool,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
}

/// Reads exactly one response from the stream: the head, then the body as its framing says.
/// `None` if the connection closed before any byte of a response.
pub fn read_response(stream: &mut TcpStream, head_request: bool) -> Option<Response> {
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") {
        match stream.read(&mut byte) {
            Ok(0) => {
                assert!(
                    head.is_empty(),
                    "connection closed mid-head: {:?}",
                    String::from_utf8_lossy(&head)
                );
                return None;
            }
            Ok(_) => head.push(byte[0]),
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset && head.is_empty() => {
                return None
            }
            Err(e) => panic!("reading a response head: {e}"),
        }
    }
    let text = String::from_utf8(head).expect("ascii head");
    let mut lines = text.split("\r\n");
    let status_line = lines.next().unwrap();
    let status: u16 = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .expect("status code");
    let headers: Vec<(String, String)> = lines
        .filter(|l| !l.is_empty())
        .map(|l| {
            let (n, v) = l.split_once(':').expect("header colon");
            (n.to_string(), v.trim().to_string())
        })
        .collect();
    let mut response = Response {
        status,
        headers,
        body: Vec::new(),
        chunked: false,
    };
    if head_request || status == 204 || status == 304 || (100..200).contains(&status) {
        return Some(response);
    }
    if let Some(length) = response.header("content-length") {
        let n: usize = length.parse().expect("content-length");
        response.body = vec![0; n];
        stream.read_exact(&mut response.body).expect("full body");
    } else if response
        .header("transfer-encoding")
        .is_some_and(|v| v.eq_ignore_ascii_case("chunked"))
    {
        response.chunked = true;
        loop {
            let line = read_line(stream);
            let size = usize::from_str_radix(line.trim(), 16).expect("chunk size");
            if size == 0 {
                assert_eq!(read_line(stream), "", "no trailers expected");
                break;
            }
            let mut chunk = vec![0; size];
            stream.read_exact(&mut chunk).unwrap();
            response.body.extend_from_slice(&chunk);
            assert_eq!(read_line(stream), "");
        }
    } else {
        response.body = read_to_close(stream);
    }
    Some(response)
}

fn read_line(stream: &mut TcpStream) -> String {
    let mut line = Vec::new();
    let mut byte = [0u8; 1];
    while !line.ends_with(b"\r\n") {
        assert_eq!(stream.read(&mut byte).unwrap(), 1, "eof in chunked body");
        line.push(byte[0]);
    }
    line.truncate(line.len() - 2);
    String::from_utf8(line).unwrap()
}

/// The repository's `tests/apps/` directory.
pub fn apps_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests")
        .join("apps")
}
