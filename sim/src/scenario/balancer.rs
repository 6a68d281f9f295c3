//! A load balancer in front of several server machines, as nginx's `proxy_pass` to an
//! `upstream` block does it by default: round robin; a backend that fails (connection refused,
//! or closed before a response) is marked down for `fail_timeout` (`max_fails=1`) and the
//! request is tried on the next one (`proxy_next_upstream error timeout`) as long as nothing
//! was sent to the client; when every backend has failed, the client gets 502. Its log lines
//! are nginx's error and access log lines.

use std::io;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::client::complete_response;
use crate::net::{SimNet, SimStream};
use crate::procs::utc;
use crate::trace::{now, Category, EventKind, Trace};

/// `[balancer]` in a scenario.
#[derive(Clone, Debug, Deserialize, Serialize)]
#[serde(deny_unknown_fields)]
pub struct BalancerSpec {
    /// Its host name; clients send to it with `to = "lb"`.
    #[serde(default = "default_host")]
    pub host: String,
    #[serde(default = "default_port")]
    pub port: u16,
    /// The servers it forwards to, in order.
    pub backends: Vec<String>,
    #[serde(default = "default_backend_port")]
    pub backend_port: u16,
    /// How long a failed backend is left out (nginx's `fail_timeout`, 10 s).
    #[serde(default = "default_fail_timeout")]
    pub fail_timeout_ms: u64,
    /// Try the next backend when one fails before answering (nginx's default).
    #[serde(default = "yes")]
    pub retry: bool,
    /// `proxy_connect_timeout` and `proxy_read_timeout` (60 s each).
    #[serde(default = "default_timeout")]
    pub timeout_ms: u64,
}

fn default_host() -> String {
    "lb".into()
}

fn default_port() -> u16 {
    80
}

fn default_backend_port() -> u16 {
    8000
}

fn default_fail_timeout() -> u64 {
    10_000
}

fn yes() -> bool {
    true
}

fn default_timeout() -> u64 {
    60_000
}

/// The balancer's state shared by its connections.
struct Upstreams {
    next: usize,
    /// Per backend: left out until this virtual time.
    down_until: Vec<Duration>,
    requests: u64,
}

/// Runs the balancer on its host until the run ends.
pub async fn run_balancer(spec: BalancerSpec, net: SimNet, trace: Trace, epoch_unix: u64) {
    let log = Log {
        trace: trace.clone(),
        host: spec.host.clone(),
        epoch_unix,
    };
    let listen = SocketAddr::from(([0, 0, 0, 0], spec.port));
    let listener = match server::net::Net::bind(&net, listen, 511) {
        Ok(listener) => listener,
        Err(e) => {
            log.error(&format!("bind() to {listen} failed ({e})"));
            return;
        }
    };
    let upstreams = Arc::new(Mutex::new(Upstreams {
        next: 0,
        down_until: vec![Duration::ZERO; spec.backends.len()],
        requests: 0,
    }));
    let spec = Arc::new(spec);
    loop {
        let (stream, peer) = match server::net::Listener::accept(&listener).await {
            Ok(accepted) => accepted,
            Err(_) => continue,
        };
        let (spec, net, upstreams, log) =
            (spec.clone(), net.clone(), upstreams.clone(), log.clone());
        tokio::task::spawn_local(async move {
            proxy(stream, peer, &spec, &net, &upstreams, &log).await;
        });
    }
}

#[derive(Clone)]
struct Log {
    trace: Trace,
    host: String,
    epoch_unix: u64,
}

impl Log {
    fn stamp(&self) -> String {
        let t = utc(self.epoch_unix + now().as_secs());
        format!(
            "{:04}/{:02}/{:02} {:02}:{:02}:{:02}",
            t.year, t.month, t.day, t.hour, t.minute, t.second
        )
    }

    fn line(&self, text: String) {
        self.trace.record(
            &self.host,
            None,
            Category::Log,
            EventKind::Log,
            format!("nginx: {text}"),
        );
    }

    fn error(&self, text: &str) {
        self.line(format!("{} [error] {text}", self.stamp()));
    }

    fn warn(&self, text: &str) {
        self.line(format!("{} [warn] {text}", self.stamp()));
    }
}

/// Reads one request (head and a Content-Length body); `None` if the client went away.
async fn read_request(stream: &mut SimStream) -> Option<Vec<u8>> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 16 * 1024];
    loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            let head = String::from_utf8_lossy(&buf[..end]).to_ascii_lowercase();
            let length: usize = head
                .lines()
                .find_map(|l| l.strip_prefix("content-length:"))
                .and_then(|v| v.trim().parse().ok())
                .unwrap_or(0);
            if buf.len() >= end + 4 + length {
                return Some(buf);
            }
        }
        match stream.read(&mut chunk).await {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

async fn proxy(
    mut client: SimStream,
    peer: SocketAddr,
    spec: &BalancerSpec,
    net: &SimNet,
    upstreams: &Mutex<Upstreams>,
    log: &Log,
) {
    let Some(request) = read_request(&mut client).await else {
        return;
    };
    let request_line = String::from_utf8_lossy(&request)
        .lines()
        .next()
        .unwrap_or("")
        .to_string();
    let number = {
        let mut u = upstreams.lock().unwrap_or_else(|e| e.into_inner());
        u.requests += 1;
        u.requests
    };
    let context = |upstream: &str| {
        format!(
            "*{number} {{}} while {{}}, client: {}, server: _, request: \"{request_line}\", upstream: \"http://{upstream}/\", host: \"{}\"",
            peer.ip(),
            spec.host
        )
    };
    let mut tried = 0;
    let response = loop {
        let choice = {
            let mut u = upstreams.lock().unwrap_or_else(|e| e.into_inner());
            let n = spec.backends.len();
            let now = now();
            let pick = (0..n)
                .map(|i| (u.next + i) % n)
                .find(|&i| u.down_until[i] <= now);
            if let Some(i) = pick {
                u.next = (i + 1) % n;
            }
            pick
        };
        let Some(index) = choice.filter(|_| tried < spec.backends.len()) else {
            if tried == 0 {
                log.error(&format!(
                    "*{number} no live upstreams while connecting to upstream, client: {}, server: _, request: \"{request_line}\", host: \"{}\"",
                    peer.ip(),
                    spec.host
                ));
            }
            break None;
        };
        tried += 1;
        let backend = &spec.backends[index];
        let addr = SocketAddr::new(turmoil::lookup(backend.as_str()), spec.backend_port);
        let describe = context(&addr.to_string());
        match forward(net, addr, &request, Duration::from_millis(spec.timeout_ms)).await {
            Ok(bytes) => break Some((bytes, addr)),
            Err((what, during)) => {
                log.error(&describe.replacen("{}", &what, 1).replacen("{}", during, 1));
                let mut u = upstreams.lock().unwrap_or_else(|e| e.into_inner());
                u.down_until[index] = now() + Duration::from_millis(spec.fail_timeout_ms);
                drop(u);
                log.warn(&format!(
                    "*{number} upstream server temporarily disabled while {during}, client: {}, upstream: \"http://{addr}/\" ({backend})",
                    peer.ip()
                ));
                if !spec.retry {
                    break None;
                }
            }
        }
    };
    let (bytes, status) = match &response {
        Some((bytes, _)) => (
            bytes.clone(),
            complete_response(bytes).map_or(0, |(status, ..)| status),
        ),
        None => (BAD_GATEWAY.to_vec(), 502),
    };
    let _ = client.write_all(&bytes).await;
    let _ = client.shutdown().await;
    let upstream = response
        .as_ref()
        .map_or("-".to_string(), |(_, addr)| addr.to_string());
    let t = utc(log.epoch_unix + now().as_secs());
    log.line(format!(
        "{} - - [{:02}/{}/{:04}:{:02}:{:02}:{:02} +0000] \"{request_line}\" {status} {} upstream={upstream}",
        peer.ip(),
        t.day,
        MONTHS[(t.month as usize).saturating_sub(1) % 12],
        t.year,
        t.hour,
        t.minute,
        t.second,
        bytes.len()
    ));
}

const MONTHS: [&str; 12] = [
    "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
];

const BAD_GATEWAY: &[u8] = b"HTTP/1.1 502 Bad Gateway\r\nServer: nginx\r\nContent-Type: text/html\r\nContent-Length: 157\r\nConnection: close\r\n\r\n<html>\r\n<head><title>502 Bad Gateway</title></head>\r\n<body>\r\n<center><h1>502 Bad Gateway</h1></center>\r\n<hr><center>nginx</center>\r\n</body>\r\n</html>\r\n";

/// Sends the request to one backend and reads its whole response; on failure, nginx's words
/// for what went wrong and during what.
async fn forward(
    net: &SimNet,
    addr: SocketAddr,
    request: &[u8],
    timeout: Duration,
) -> Result<Vec<u8>, (String, &'static str)> {
    let connecting = "connecting to upstream";
    let mut upstream = match tokio::time::timeout(timeout, net.connect(addr)).await {
        Ok(Ok(stream)) => stream,
        Ok(Err(e)) => return Err((format!("connect() failed ({})", os_error(&e)), connecting)),
        Err(_) => {
            return Err((
                "upstream timed out (110: Connection timed out)".into(),
                connecting,
            ))
        }
    };
    let reading = "reading response header from upstream";
    if let Err(e) = upstream.write_all(request).await {
        return Err((
            format!("send() failed ({})", os_error(&e)),
            "sending request to upstream",
        ));
    }
    let mut response = Vec::new();
    let mut chunk = vec![0u8; 64 * 1024];
    let read = async {
        loop {
            if complete_response(&response).is_some() {
                return Ok(());
            }
            match upstream.read(&mut chunk).await {
                Ok(0) => return Ok(()),
                Ok(n) => response.extend_from_slice(&chunk[..n]),
                Err(e) => return Err(e),
            }
        }
    };
    match tokio::time::timeout(timeout, read).await {
        Ok(Ok(())) if !response.is_empty() => Ok(response),
        Ok(Ok(())) => Err(("upstream prematurely closed connection".into(), reading)),
        Ok(Err(e)) => Err((format!("recv() failed ({})", os_error(&e)), reading)),
        Err(_) => Err((
            "upstream timed out (110: Connection timed out)".into(),
            reading,
        )),
    }
}

fn os_error(e: &io::Error) -> String {
    match e.raw_os_error() {
        Some(111) => "111: Connection refused".into(),
        Some(104) => "104: Connection reset by peer".into(),
        Some(110) => "110: Connection timed out".into(),
        Some(n) => format!("{n}: {e}"),
        None => e.to_string(),
    }
}
