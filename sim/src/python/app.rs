//! The app's behaviour, as a scenario declares it: per route (a path prefix and optionally a
//! method), how much CPU it burns, how long it sleeps, what it answers, and whether it raises,
//! crashes the process, hangs or leaks memory. [`SimApp`] plays it through an [`AppExecutor`]
//! that the process layer provides (so CPU time is scheduled on the simulated cores and a
//! crash kills the simulated process), then hands the worker a head and the body in chunks,
//! as a real app's iterable would.

use std::borrow::Cow;
use std::collections::{BTreeMap, VecDeque};
use std::future::Future;
use std::net::{IpAddr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use server::python::{App, AppError, AppResponse, ResponsePart, WsgiRequest};

use super::{pid_list_words, ImportedConnection, ProcessView};
use crate::trace::{Category, EventKind, Trace};

/// The largest chunk the app yields: bigger bodies come in several, as a file wrapper would
/// give them.
pub const CHUNK_SIZE: usize = 64 * 1024;

/// What the app does for one request.
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct RouteBehaviour {
    /// CPU time burnt (holding the GIL), in milliseconds.
    pub cpu_ms: u64,
    /// Time spent waiting (a database, an API; the GIL is released), in milliseconds.
    pub sleep_ms: u64,
    /// The HTTP status code; the reason phrase is the standard one.
    pub status: u16,
    /// The body's text; repeated or cut to `body_bytes` if that is given too.
    pub body: Option<String>,
    /// The body's size in bytes.
    pub body_bytes: Option<u64>,
    pub content_type: String,
    /// More response headers, in order.
    pub headers: Vec<(String, String)>,
    /// Raise an exception with this message (`RuntimeError: boom`; a message without a class
    /// becomes `Exception: ...`), after the CPU and sleep.
    pub raise: Option<String>,
    /// Kill the process with this signal (`"SIGSEGV"` or `11`), after the CPU and sleep.
    pub crash: Option<CrashSignal>,
    /// Never return (a deadlock, an endless loop).
    pub hang: bool,
    /// Resident memory the process gains for good on each request (a leak), in bytes.
    pub leak_bytes: u64,
    /// Answer with what reached the app instead of `body`/`body_bytes`: a JSON document
    /// (`application/json`) with the request's CGI variables and body, as
    /// tests/apps/echoapp.py gives for the real server, so that a test can check what the
    /// server's parser and environ made of the bytes it sent. Its keys: method, path, query,
    /// uri, protocol, server_name, content_type, content_length (null when absent), headers
    /// (every `HTTP_*` variable) and body. Bytes are latin-1 strings (one char per byte), as
    /// PEP 3333's native strings are.
    pub echo: bool,
}

impl Default for RouteBehaviour {
    fn default() -> Self {
        RouteBehaviour {
            cpu_ms: 0,
            sleep_ms: 0,
            status: 200,
            body: None,
            body_bytes: None,
            content_type: "text/html".into(),
            headers: Vec::new(),
            raise: None,
            crash: None,
            hang: false,
            leak_bytes: 0,
            echo: false,
        }
    }
}

impl RouteBehaviour {
    /// The body the app returns.
    pub fn body(&self) -> Bytes {
        let text = self.body.as_deref().unwrap_or("Hello World!");
        match self.body_bytes {
            None => Bytes::copy_from_slice(text.as_bytes()),
            Some(size) => {
                let pattern = if text.is_empty() { "x" } else { text }.as_bytes();
                Bytes::from(
                    pattern
                        .iter()
                        .copied()
                        .cycle()
                        .take(size as usize)
                        .collect::<Vec<u8>>(),
                )
            }
        }
    }

    /// `200 OK`.
    pub fn status_line(&self) -> String {
        format!("{} {}", self.status, reason_phrase(self.status))
    }
}

/// A route: requests whose path starts with `path` (and whose method is `method`, if given).
#[derive(Clone, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(try_from = "RouteRepr", into = "RouteOut")]
pub struct Route {
    pub path: String,
    pub method: Option<String>,
    pub behaviour: RouteBehaviour,
}

/// A route as written: its match and its behaviour side by side in one table.
#[derive(Deserialize)]
struct RouteRepr {
    path: String,
    #[serde(default)]
    method: Option<String>,
    #[serde(flatten)]
    behaviour: RouteBehaviour,
    /// Whatever the two above did not take: a typo, refused below.
    #[serde(flatten)]
    unknown: BTreeMap<String, serde::de::IgnoredAny>,
}

/// A route as written back (a scenario the explorer generated): the same table.
#[derive(Serialize)]
struct RouteOut {
    path: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    method: Option<String>,
    #[serde(flatten)]
    behaviour: RouteBehaviour,
}

impl From<Route> for RouteOut {
    fn from(route: Route) -> RouteOut {
        RouteOut {
            path: route.path,
            method: route.method,
            behaviour: route.behaviour,
        }
    }
}

impl TryFrom<RouteRepr> for Route {
    type Error = String;

    fn try_from(repr: RouteRepr) -> Result<Route, String> {
        if let Some(key) = repr.unknown.keys().next() {
            return Err(format!(
                "unknown field `{key}` in a route (expected path, method, or a behaviour: cpu_ms, sleep_ms, status, body, body_bytes, content_type, headers, raise, crash, hang, leak_bytes, echo)"
            ));
        }
        Ok(Route {
            path: repr.path,
            method: repr.method,
            behaviour: repr.behaviour,
        })
    }
}

/// A signal number, written as a name (`SIGSEGV`, `SEGV`) or a number.
#[derive(Clone, Copy, Debug, Deserialize, Serialize, PartialEq, Eq)]
#[serde(try_from = "SignalRepr", into = "SignalRepr")]
pub struct CrashSignal(pub i32);

#[derive(Deserialize, Serialize)]
#[serde(untagged)]
enum SignalRepr {
    Number(i32),
    Name(String),
}

impl TryFrom<SignalRepr> for CrashSignal {
    type Error = String;

    fn try_from(repr: SignalRepr) -> Result<CrashSignal, String> {
        match repr {
            SignalRepr::Number(n) if (1..=64).contains(&n) => Ok(CrashSignal(n)),
            SignalRepr::Number(n) => Err(format!("no signal numbered {n}")),
            SignalRepr::Name(name) => signal_number(&name)
                .map(CrashSignal)
                .ok_or_else(|| format!("unknown signal `{name}`")),
        }
    }
}

/// Written back by name when it has one (`SIGSEGV`), as a person writes it.
impl From<CrashSignal> for SignalRepr {
    fn from(signal: CrashSignal) -> SignalRepr {
        const NAMES: [&str; 15] = [
            "HUP", "INT", "QUIT", "ILL", "TRAP", "ABRT", "BUS", "FPE", "KILL", "USR1", "SEGV",
            "USR2", "PIPE", "ALRM", "TERM",
        ];
        match usize::try_from(signal.0 - 1)
            .ok()
            .and_then(|i| NAMES.get(i))
        {
            Some(name) => SignalRepr::Name(format!("SIG{name}")),
            None => SignalRepr::Number(signal.0),
        }
    }
}

/// `SIGSEGV` (or `SEGV`) → 11, for the signals an app can die of.
pub fn signal_number(name: &str) -> Option<i32> {
    let upper = name.trim().to_ascii_uppercase();
    let short = upper.strip_prefix("SIG").unwrap_or(&upper);
    Some(match short {
        "HUP" => 1,
        "INT" => 2,
        "QUIT" => 3,
        "ILL" => 4,
        "TRAP" => 5,
        "ABRT" => 6,
        "BUS" => 7,
        "FPE" => 8,
        "KILL" => 9,
        "USR1" => 10,
        "SEGV" => 11,
        "USR2" => 12,
        "PIPE" => 13,
        "ALRM" => 14,
        "TERM" => 15,
        _ => return None,
    })
}

/// The app of a scenario.
#[derive(Clone, Debug, Default, Deserialize, Serialize, PartialEq, Eq)]
#[serde(default, deny_unknown_fields)]
pub struct AppBehaviour {
    pub routes: Vec<Route>,
    /// For requests no route matches.
    pub default: RouteBehaviour,
    /// The app's module starts a thread when imported (a scheduler, a metrics reporter).
    /// After a fork, only the forking thread exists in the child: preforked workers lack it.
    pub starts_thread_at_import: bool,
    /// The app's module opens a connection when imported (a database, a cache). After a fork
    /// every worker holds the same socket: their queries interleave on one connection.
    pub opens_connection_at_import: bool,
}

impl AppBehaviour {
    /// The route for a request: the longest matching path prefix (the first declared, among
    /// equals) whose method, if given, matches; otherwise the default.
    pub fn route_for(&self, method: &str, path: &str) -> (Option<&Route>, &RouteBehaviour) {
        match self.route_index(method, path) {
            Some(i) => (Some(&self.routes[i]), &self.routes[i].behaviour),
            None => (None, &self.default),
        }
    }

    /// The index in `routes` of [`AppBehaviour::route_for`]'s route.
    pub fn route_index(&self, method: &str, path: &str) -> Option<usize> {
        let mut best: Option<usize> = None;
        for (i, route) in self.routes.iter().enumerate() {
            let method_ok = route
                .method
                .as_deref()
                .is_none_or(|m| m.eq_ignore_ascii_case(method));
            if method_ok
                && path.starts_with(&route.path)
                && best.is_none_or(|b| route.path.len() > self.routes[b].path.len())
            {
                best = Some(i);
            }
        }
        best
    }
}

/// How the app's work reaches the simulated machine; the process layer implements it for the
/// process the app runs in (which, after a fork, is the worker, not the master that imported
/// the app).
pub trait AppExecutor: Clone + Send + Sync + 'static {
    /// Burns CPU for `d` of CPU time (longer in wall time when cores are shared).
    fn cpu(&self, d: Duration) -> impl Future<Output = ()>;
    /// Waits `d` without using the CPU.
    fn sleep(&self, d: Duration) -> impl Future<Output = ()>;
    /// Kills the calling process with `signal`; never returns in practice.
    fn crash(&self, signal: i32) -> impl Future<Output = ()>;
    /// The process's resident memory grows by `bytes`.
    fn grow_rss(&self, bytes: u64);
    /// Never returns.
    fn hang(&self) -> impl Future<Output = ()>;
}

/// What [`TokioExecutor`] was asked to do.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ExecutorLog {
    pub cpu: Duration,
    pub slept: Duration,
    pub crashed: Option<i32>,
    pub rss_grown: u64,
    pub hung: bool,
}

/// A trivial executor for tests: CPU and sleep are both `tokio::time::sleep`; a crash or a
/// hang is recorded and never returns.
#[derive(Clone, Debug, Default)]
pub struct TokioExecutor {
    log: Arc<Mutex<ExecutorLog>>,
}

impl TokioExecutor {
    pub fn log(&self) -> ExecutorLog {
        self.log.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn update(&self, f: impl FnOnce(&mut ExecutorLog)) {
        f(&mut self.log.lock().unwrap_or_else(|e| e.into_inner()));
    }
}

impl AppExecutor for TokioExecutor {
    async fn cpu(&self, d: Duration) {
        self.update(|l| l.cpu += d);
        tokio::time::sleep(d).await;
    }

    async fn sleep(&self, d: Duration) {
        self.update(|l| l.slept += d);
        tokio::time::sleep(d).await;
    }

    async fn crash(&self, signal: i32) {
        self.update(|l| l.crashed = Some(signal));
        std::future::pending::<()>().await;
    }

    fn grow_rss(&self, bytes: u64) {
        self.update(|l| l.rss_grown += bytes);
    }

    async fn hang(&self) {
        self.update(|l| l.hung = true);
        std::future::pending::<()>().await;
    }
}

/// Where the app's callable is, for the tracebacks of the exceptions it raises.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppLocation {
    /// `mysite.wsgi`, or `uwsgi_file_app` for `--wsgi-file app.py`.
    pub module: String,
    pub callable: String,
    pub file: String,
    /// The line a raise is reported at, and its source.
    pub line: u32,
    pub source: Option<String>,
}

/// A loaded app: the scenario's behaviour behind the callable the import model found.
#[derive(Clone)]
pub struct SimApp<E: AppExecutor> {
    pub(crate) location: Arc<AppLocation>,
    pub(crate) behaviour: Arc<AppBehaviour>,
    pub(crate) executor: E,
    pub(crate) process: Arc<dyn ProcessView>,
    pub(crate) trace: Trace,
    pub(crate) host: String,
    /// The connection the module opened at import, when there is one.
    pub(crate) connection: Option<Arc<ImportedConnection>>,
    /// `behaviour`'s answers, per route.
    pub(crate) answers: Arc<Vec<Answer>>,
}

/// Ends a process's query on an inherited connection when its call ends, however it ends (a
/// killed process's call is dropped midway).
struct QueryGuard<'a> {
    connection: &'a ImportedConnection,
    pid: u32,
}

impl Drop for QueryGuard<'_> {
    fn drop(&mut self) {
        self.connection.end_query(self.pid);
    }
}

impl<E: AppExecutor> SimApp<E> {
    pub fn location(&self) -> &AppLocation {
        &self.location
    }

    /// Records what the app does for the request of client `conn`.
    fn record(&self, conn: Option<SocketAddr>, kind: EventKind, text: String) {
        self.trace.record_conn(
            &self.host,
            self.process.pid(),
            Category::App,
            conn,
            kind,
            text,
        );
    }

    /// A worker that inherited the connection opened at import uses it for the call: says
    /// who else talks on that socket, and who is mid-query on it right now.
    fn query_on_inherited_connection(&self, conn: Option<SocketAddr>) -> Option<QueryGuard<'_>> {
        let connection = self.connection.as_deref()?;
        let pid = self.process.pid()?;
        if !connection.inherited_by(pid) {
            return None;
        }
        let alive = |p| self.process.is_alive(p);
        let busy = connection.start_query(pid, alive);
        let opener = connection
            .opener
            .map_or_else(|| "its parent".into(), |p| format!("pid {p}"));
        let text = if busy.is_empty() {
            let others = connection.other_holders(pid, alive);
            let shared = if others.is_empty() {
                String::new()
            } else {
                format!(", shared with {}", pid_list_words(&others))
            };
            format!(
                "queries on the connection {} opened at import in {opener}{shared}; no other process is using it at this moment",
                connection.module
            )
        } else {
            format!(
                "queries on the connection {} opened at import in {opener} while {} {} querying on it too: their queries interleave on one socket, and each may read the other's reply",
                connection.module,
                pid_list_words(&busy),
                if busy.len() == 1 { "is" } else { "are" }
            )
        };
        self.record(conn, EventKind::QuerySharedConnection, text);
        Some(QueryGuard { connection, pid })
    }

    /// The traceback of an exception the app raises.
    fn exception(&self, message: &str) -> AppError {
        let loc = &self.location;
        let mut traceback = vec![
            "Traceback (most recent call last):".to_string(),
            format!(
                "  File \"{}\", line {}, in {}",
                loc.file, loc.line, loc.callable
            ),
        ];
        if let Some(source) = &loc.source {
            traceback.push(format!("    {source}"));
        }
        traceback.push(exception_line(message));
        // The modelled app raises before it calls start_response.
        AppError {
            traceback,
            failed_at: server::python::FailedAt::BeforeStartResponse,
        }
    }
}

/// `RuntimeError: boom` and `KeyError` stay; `boom` becomes `Exception: boom`.
pub fn exception_line(message: &str) -> String {
    let is_class = |s: &str| {
        !s.is_empty()
            && s.split('.').all(|part| {
                part.chars()
                    .next()
                    .is_some_and(|c| c.is_alphabetic() || c == '_')
                    && part.chars().all(|c| c.is_alphanumeric() || c == '_')
            })
    };
    let named = match message.split_once(": ") {
        Some((class, _)) => is_class(class),
        None => {
            is_class(message)
                && ["Error", "Exception", "Interrupt", "Exit"]
                    .iter()
                    .any(|end| message.ends_with(end))
        }
    };
    if named {
        message.to_string()
    } else {
        format!("Exception: {message}")
    }
}

fn var<'a>(request: &'a WsgiRequest, name: &str) -> Cow<'a, str> {
    request
        .vars
        .iter()
        .find(|(k, _)| k == name)
        .map_or(Cow::Borrowed(""), |(_, v)| String::from_utf8_lossy(v))
}

/// What a route answers, worked out once for all its requests (the same strings for each).
pub(crate) struct Answer {
    /// `route GET /api`, or `the default route`.
    name: String,
    status: String,
    body: Bytes,
    headers: Vec<(String, String)>,
    /// The `app_end` event's text.
    ended: String,
}

impl Answer {
    fn new(route: Option<&Route>, b: &RouteBehaviour) -> Answer {
        let name = match route {
            Some(r) => format!(
                "route {}{}",
                r.method
                    .as_deref()
                    .map(|m| format!("{m} "))
                    .unwrap_or_default(),
                r.path
            ),
            None => "the default route".to_string(),
        };
        let body = b.body();
        let status = b.status_line();
        Answer {
            name,
            headers: headers(b, b.content_type.clone(), body.len()),
            ended: ended(&status, body.len()),
            status,
            body,
        }
    }
}

fn headers(b: &RouteBehaviour, content_type: String, length: usize) -> Vec<(String, String)> {
    let mut headers = vec![
        ("Content-Type".to_string(), content_type),
        ("Content-Length".to_string(), length.to_string()),
    ];
    headers.extend(b.headers.iter().cloned());
    headers
}

fn ended(status: &str, length: usize) -> String {
    format!("returned {status} with a body of {length} bytes")
}

/// The answers of every route, in the order of `routes`, then the default's.
pub(crate) fn answers(behaviour: &AppBehaviour) -> Arc<Vec<Answer>> {
    let mut all: Vec<Answer> = behaviour
        .routes
        .iter()
        .map(|r| Answer::new(Some(r), &r.behaviour))
        .collect();
    all.push(Answer::new(None, &behaviour.default));
    Arc::new(all)
}

/// Bytes as a latin-1 string, one char per byte, as PEP 3333 decodes environ values.
fn latin1(bytes: &[u8]) -> String {
    bytes.iter().copied().map(char::from).collect()
}

/// The document [`RouteBehaviour::echo`] answers with.
fn echo(request: &WsgiRequest) -> Bytes {
    use serde_json::Value;
    let lookup = |name: &str| {
        request
            .vars
            .iter()
            .find(|(k, _)| k == name)
            .map_or(Value::Null, |(_, v)| Value::String(latin1(v)))
    };
    // A request with no QUERY_STRING has an empty one, as echoapp.py's environ.get(.., "").
    let query = match lookup("QUERY_STRING") {
        Value::Null => Value::String(String::new()),
        query => query,
    };
    let headers: serde_json::Map<String, Value> = request
        .vars
        .iter()
        .filter(|(k, _)| k.starts_with("HTTP_"))
        .map(|(k, v)| (k.to_string(), Value::String(latin1(v))))
        .collect();
    let document = serde_json::json!({
        "method": lookup("REQUEST_METHOD"),
        "path": lookup("PATH_INFO"),
        "query": query,
        "uri": lookup("REQUEST_URI"),
        "protocol": lookup("SERVER_PROTOCOL"),
        "server_name": lookup("SERVER_NAME"),
        "content_type": lookup("CONTENT_TYPE"),
        "content_length": lookup("CONTENT_LENGTH"),
        "headers": headers,
        "body": latin1(&request.body),
    });
    Bytes::from(document.to_string())
}

impl<E: AppExecutor> App for SimApp<E> {
    type Response = SimResponse;

    async fn call(&self, request: WsgiRequest) -> Result<SimResponse, AppError> {
        let method = var(&request, "REQUEST_METHOD");
        let path = var(&request, "PATH_INFO");
        let conn = var(&request, "REMOTE_ADDR")
            .parse::<IpAddr>()
            .ok()
            .zip(var(&request, "REMOTE_PORT").parse::<u16>().ok())
            .map(|(ip, port)| SocketAddr::new(ip, port));
        let index = self.behaviour.route_index(&method, &path);
        let b = index.map_or(&self.behaviour.default, |i| {
            &self.behaviour.routes[i].behaviour
        });
        let answer = &self.answers[index.unwrap_or(self.behaviour.routes.len())];
        let route = &answer.name;
        self.record(
            conn,
            EventKind::AppStart,
            format!(
                "{}:{} called for {method} {path} ({route})",
                self.location.module, self.location.callable
            ),
        );
        let _query = self.query_on_inherited_connection(conn);
        if b.leak_bytes > 0 {
            self.executor.grow_rss(b.leak_bytes);
            self.record(
                conn,
                EventKind::Leak,
                format!("the app keeps {} bytes it will never free", b.leak_bytes),
            );
        }
        if b.cpu_ms > 0 {
            self.record(
                conn,
                EventKind::Cpu,
                format!("computes for {} ms of CPU, holding the GIL", b.cpu_ms),
            );
            self.executor.cpu(Duration::from_millis(b.cpu_ms)).await;
        }
        if b.sleep_ms > 0 {
            // On the connection shared since the fork, the wait is this process's query: it
            // goes out after the query already on the socket has been answered.
            let shared = _query.as_ref().map(|q| q.connection);
            let _turn = match shared {
                Some(connection) => Some(match connection.wire.try_lock() {
                    Ok(turn) => turn,
                    Err(_) => {
                        self.record(
                            conn,
                            EventKind::QueryWaits,
                            "waits for the query already on the shared connection to be answered: the database answers one query at a time on a connection".into(),
                        );
                        connection.wire.lock().await
                    }
                }),
                None => None,
            };
            self.record(
                conn,
                EventKind::Sleep,
                format!(
                    "waits {} ms (I/O: the GIL is released, the worker is still busy)",
                    b.sleep_ms
                ),
            );
            self.executor.sleep(Duration::from_millis(b.sleep_ms)).await;
        }
        if b.hang {
            self.record(conn, EventKind::Hang, "the app never returns".into());
            self.executor.hang().await;
            std::future::pending::<()>().await;
        }
        if let Some(CrashSignal(signal)) = b.crash {
            self.record(
                conn,
                EventKind::Crash,
                format!("the app crashes the process with signal {signal}"),
            );
            self.executor.crash(signal).await;
            std::future::pending::<()>().await;
        }
        if let Some(message) = &b.raise {
            let error = self.exception(message);
            self.record(
                conn,
                EventKind::Raise,
                format!(
                    "the app raised {}",
                    error.traceback.last().cloned().unwrap_or_default()
                ),
            );
            return Err(error);
        }
        let (body, headers, ended) = if b.echo {
            let body = echo(&request);
            let headers = headers(b, "application/json".to_string(), body.len());
            let ended = ended(&answer.status, body.len());
            (body, headers, ended)
        } else {
            let a = answer;
            (a.body.clone(), a.headers.clone(), a.ended.clone())
        };
        self.record(conn, EventKind::AppEnd, ended);
        let mut parts = VecDeque::new();
        parts.push_back(ResponsePart::Head {
            status: answer.status.clone(),
            headers,
        });
        let mut offset = 0;
        while offset < body.len() {
            let end = (offset + CHUNK_SIZE).min(body.len());
            parts.push_back(ResponsePart::Chunk(body.slice(offset..end)));
            offset = end;
        }
        Ok(SimResponse { parts })
    }
}

/// The app's iterable: a list of chunks, all known at once.
#[derive(Debug)]
pub struct SimResponse {
    parts: VecDeque<ResponsePart>,
}

impl AppResponse for SimResponse {
    async fn next_part(&mut self) -> Result<Option<ResponsePart>, AppError> {
        Ok(self.parts.pop_front())
    }

    fn is_exhausted(&self) -> bool {
        self.parts.is_empty()
    }

    fn close(self) -> Result<(), AppError> {
        Ok(())
    }
}

/// The standard reason phrase of a status code.
pub fn reason_phrase(code: u16) -> &'static str {
    match code {
        100 => "Continue",
        101 => "Switching Protocols",
        200 => "OK",
        201 => "Created",
        202 => "Accepted",
        204 => "No Content",
        206 => "Partial Content",
        301 => "Moved Permanently",
        302 => "Found",
        303 => "See Other",
        304 => "Not Modified",
        307 => "Temporary Redirect",
        308 => "Permanent Redirect",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        408 => "Request Timeout",
        409 => "Conflict",
        410 => "Gone",
        413 => "Payload Too Large",
        414 => "URI Too Long",
        415 => "Unsupported Media Type",
        429 => "Too Many Requests",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        501 => "Not Implemented",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        504 => "Gateway Timeout",
        _ => "Unknown",
    }
}
