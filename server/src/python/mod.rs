//! The Python seam: the interpreter a process gets (its prefix, virtualenv and `sys.path`),
//! importing the WSGI callable, and calling it for one request.
//!
//! [`real`] embeds CPython with pyo3; the simulation models the import system over the scenario's
//! files and plays the app's declared behaviour. Everything the worker needs from an app call
//! crosses this seam as plain Rust data: a [`WsgiRequest`] in, [`ResponsePart`]s out.

pub mod real;

use std::borrow::Cow;
use std::path::PathBuf;

use bytes::Bytes;

/// How this process's interpreter is set up, from the command line.
#[derive(Clone, Debug, Default)]
pub struct InterpreterSetup {
    /// `--virtualenv`/`--home`: the interpreter behaves as `DIR/bin/python` would.
    pub virtualenv: Option<PathBuf>,
    /// `--pythonpath`, in the order given; they go first on `sys.path`.
    pub pythonpath: Vec<PathBuf>,
}

/// What the started interpreter reports about itself.
#[derive(Clone, Debug)]
pub struct InterpreterInfo {
    /// `sys.version`: `3.11.7 (main, May  9 2026, 07:35:25) [GCC 12.2.0]`.
    pub version: String,
    /// `major.minor.micro`.
    pub version_short: String,
    pub prefix: String,
    pub base_prefix: String,
    /// The address uWSGI prints as "interpreter 0x...".
    pub address: usize,
}

/// Why the interpreter could not start (the process cannot serve Python at all).
#[derive(Clone, Debug)]
pub struct StartFailure {
    /// What CPython (or uWSGI embedding it) would print.
    pub lines: Vec<String>,
    pub cause: StartFailureCause,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum StartFailureCause {
    VirtualenvMissing {
        path: PathBuf,
    },
    VirtualenvVersion {
        path: PathBuf,
        venv_version: String,
        ours: String,
    },
    Other,
}

/// Where the WSGI callable comes from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum AppSource {
    /// `--module mysite.wsgi[:callable]`
    Module { module: String, callable: String },
    /// `--wsgi-file path/app.py`
    File { path: PathBuf, callable: String },
}

impl AppSource {
    pub fn callable(&self) -> &str {
        match self {
            AppSource::Module { callable, .. } | AppSource::File { callable, .. } => callable,
        }
    }
}

/// Why the app could not be loaded.
#[derive(Clone, Debug)]
pub struct LoadFailure {
    /// The traceback as Python prints it, one entry per line.
    pub traceback: Vec<String>,
    pub cause: LoadFailureCause,
    /// `sys.path` at the time of the import, for the hints.
    pub sys_path: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LoadFailureCause {
    /// `ModuleNotFoundError`; `name` is the module Python could not find (`mysite`, `django`).
    ModuleNotFound { name: String },
    /// The module imported, but has no attribute of the callable's name.
    CallableNotFound { callable: String },
    /// `--wsgi-file` names no file.
    FileNotFound { path: PathBuf },
    /// Any other exception raised while importing.
    Exception,
}

/// An exception raised by the app, formatted as Python prints it.
#[derive(Clone, Debug)]
pub struct AppError {
    pub traceback: Vec<String>,
    /// How far the app's response had got: what uWSGI would have sent depends on it.
    pub failed_at: FailedAt,
}

impl AppError {
    pub fn message(message: impl Into<String>) -> Self {
        AppError {
            traceback: vec![message.into()],
            failed_at: FailedAt::BeforeStartResponse,
        }
    }
}

/// Where in the WSGI protocol the app failed, before any byte of its response was written.
/// uWSGI answers each differently (plugins/python/wsgi_headers.c, core/writer.c and
/// `uwsgi_close_request` in core/utils.c), and the log says what it would have done.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum FailedAt {
    /// Before `start_response` was called: uWSGI has no head to send and closes the connection
    /// without a response.
    #[default]
    BeforeStartResponse,
    /// After `start_response`: uWSGI sends that status and those headers (with whatever body
    /// was written) when it closes the request.
    AfterStartResponse { status: String },
    /// A second `start_response` without `exc_info`, which PEP 3333 makes an error (wsgilab
    /// raises AssertionError in the app): uWSGI takes the second call's status and headers and
    /// carries on.
    SecondStartResponse { status: String },
    /// The app returned a body without calling `start_response`: uWSGI writes the body's bytes
    /// with no status line or headers before them.
    BodyWithoutStartResponse,
}

/// One request as the app sees it: the CGI variables of its environ (PEP 3333) and its body.
/// The seam adds the `wsgi.*` keys.
#[derive(Clone, Debug, Default)]
pub struct WsgiRequest {
    /// CGI variables in the order uWSGI passes them: `REQUEST_METHOD`, ..., then `HTTP_*`.
    /// Values are bytes; the seam decodes them as latin-1 (PEP 3333's native strings).
    /// Keys and values are borrowed when they are fixed (the CGI names, the common `HTTP_*`
    /// names, `HTTP/1.1`, `GET`): most of a request's variables cost no allocation.
    pub vars: Vec<(Cow<'static, str>, Cow<'static, [u8]>)>,
    pub url_scheme: &'static str,
    pub body: Bytes,
    pub multithread: bool,
    pub multiprocess: bool,
}

impl WsgiRequest {
    /// The size uWSGI's log reports (`{24 vars in 244 bytes}`): the variables as its binary
    /// protocol would carry them, two length bytes before each key and each value.
    pub fn vars_size(&self) -> usize {
        self.vars.iter().map(|(k, v)| 4 + k.len() + v.len()).sum()
    }
}

/// What an app's response yields, in order: one `Head`, then body chunks.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResponsePart {
    /// From `start_response`: delivered before the first non-empty chunk, or at the end of an
    /// empty body. A later `start_response` with `exc_info` may deliver a second head, as long
    /// as nothing was written.
    Head {
        status: String,
        headers: Vec<(String, String)>,
    },
    Chunk(Bytes),
}

/// The Python world of one process.
pub trait Python {
    type App: App;

    /// Starts this process's interpreter.
    fn start(&mut self, setup: &InterpreterSetup) -> Result<InterpreterInfo, StartFailure>;

    /// `sys.path` as it is now.
    fn sys_path(&self) -> Vec<String>;

    /// Imports the app (uWSGI's `WSGI app 0`).
    fn load_app(&mut self, source: &AppSource) -> Result<Self::App, LoadFailure>;
}

/// A loaded WSGI callable.
pub trait App {
    type Response: AppResponse;

    /// Calls `app(environ, start_response)`.
    fn call(
        &self,
        request: WsgiRequest,
    ) -> impl std::future::Future<Output = Result<Self::Response, AppError>>;
}

/// The iterable an app returned, with what it wrote through `write()`.
pub trait AppResponse {
    /// The next part; `Ok(None)` once the iterable is exhausted.
    fn next_part(
        &mut self,
    ) -> impl std::future::Future<Output = Result<Option<ResponsePart>, AppError>>;

    /// True when the app is known to yield nothing more without asking it (a list whose items
    /// have all been taken): lets the worker send a Content-Length instead of chunks.
    fn is_exhausted(&self) -> bool;

    /// Calls the iterable's `close()` (always called, also after errors and disconnects).
    fn close(self) -> Result<(), AppError>;
}
