//! The real interpreter: CPython embedded with pyo3, one per process.
//!
//! Start-up goes through CPython's `PyConfig` so that `--virtualenv DIR` behaves exactly as
//! `DIR/bin/python` would (CPython itself reads `DIR/pyvenv.cfg` and sets `sys.prefix`).
//! `environ`, `start_response`, `wsgi.input` and `wsgi.file_wrapper` are built here; everything
//! else about a request (framing, keep-alive, limits) belongs to the worker.

use std::collections::VecDeque;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use pyo3::exceptions::{PyAssertionError, PyStopIteration, PyTypeError};
use pyo3::intern;
use pyo3::prelude::*;
use pyo3::types::{PyBytes, PyDict, PyList, PyString, PyTuple};

use super::{
    App, AppError, AppResponse, AppSource, FailedAt, InterpreterInfo, InterpreterSetup,
    LoadFailure, LoadFailureCause, Python as PythonSeam, ResponsePart, StartFailure,
    StartFailureCause, WsgiRequest,
};
use crate::wsgi::{common_header_keys, every_request_keys, EVERY_REQUEST};

/// The `major.minor` of the CPython this binary was built against and links.
pub const BUILT_FOR: &str = env!("WSGILAB_PYTHON_VERSION");

/// CPython in this process. A forked worker's copy is the same interpreter, carried over.
#[derive(Default, Clone)]
pub struct RealPython {
    started: bool,
    /// The GIL state taken for a fork, between `before_fork` and the `after_fork_*` hooks.
    fork_gil: std::cell::Cell<Option<pyo3::ffi::PyGILState_STATE>>,
}

impl crate::procs::ForkHooks for RealPython {
    fn before_fork(&self) {
        // SAFETY: CPython's documented fork protocol: hold the GIL, PyOS_BeforeFork, fork,
        // then the matching PyOS_AfterFork_* in each process, on the forking thread.
        unsafe {
            if pyo3::ffi::Py_IsInitialized() != 0 {
                self.fork_gil.set(Some(pyo3::ffi::PyGILState_Ensure()));
                pyo3::ffi::PyOS_BeforeFork();
            }
        }
    }

    fn after_fork_parent(&self) {
        if let Some(state) = self.fork_gil.take() {
            // SAFETY: pairs with before_fork on this thread.
            unsafe {
                pyo3::ffi::PyOS_AfterFork_Parent();
                pyo3::ffi::PyGILState_Release(state);
            }
        }
    }

    fn after_fork_child(&self) {
        if let Some(state) = self.fork_gil.take() {
            // SAFETY: pairs with before_fork; only the forking thread survives in the child,
            // and PyOS_AfterFork_Child forgets the others (their Python threads are gone).
            unsafe {
                pyo3::ffi::PyOS_AfterFork_Child();
                pyo3::ffi::PyGILState_Release(state);
            }
        }
    }
}

impl PythonSeam for RealPython {
    type App = RealApp;

    fn start(&mut self, setup: &InterpreterSetup) -> Result<InterpreterInfo, StartFailure> {
        assert!(!self.started, "one interpreter per process");
        let program = match &setup.virtualenv {
            Some(venv) => Some(check_virtualenv(venv)?),
            None => None,
        };
        initialize(program.as_deref(), setup.virtualenv.as_deref())?;
        self.started = true;
        Python::attach(|py| {
            let sys = py.import("sys").map_err(|e| start_error(py, &e))?;
            let path = sys
                .getattr("path")
                .and_then(|p| p.cast_into::<PyList>().map_err(PyErr::from))
                .map_err(|e| start_error(py, &e))?;
            // uWSGI's Python plugin puts the working directory first, then `--pythonpath`
            // entries in front of it.
            let mut front: Vec<String> = setup
                .pythonpath
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            front.push(".".to_string());
            for (i, entry) in front.iter().enumerate() {
                path.insert(i, entry).map_err(|e| start_error(py, &e))?;
            }
            let argv = PyList::new(py, ["wsgilab"]).map_err(|e| start_error(py, &e))?;
            sys.setattr("argv", argv).map_err(|e| start_error(py, &e))?;
            let text = |name: &str| -> String {
                sys.getattr(name)
                    .and_then(|v| v.extract::<String>())
                    .unwrap_or_default()
            };
            let version = text("version");
            let version_short = version
                .split_whitespace()
                .next()
                .unwrap_or_default()
                .to_string();
            // SAFETY: we are attached, so there is a current interpreter.
            let address = unsafe { pyo3::ffi::PyInterpreterState_Get() } as usize;
            Ok(InterpreterInfo {
                version,
                version_short,
                prefix: text("prefix"),
                base_prefix: text("base_prefix"),
                address,
            })
        })
    }

    fn sys_path(&self) -> Vec<String> {
        if !self.started {
            return Vec::new();
        }
        Python::attach(|py| {
            py.import("sys")
                .and_then(|sys| sys.getattr("path"))
                .and_then(|p| p.extract::<Vec<String>>())
                .unwrap_or_default()
        })
    }

    fn load_app(&mut self, source: &AppSource) -> Result<RealApp, LoadFailure> {
        Python::attach(|py| {
            let failure = |cause, traceback| LoadFailure {
                traceback,
                cause,
                sys_path: self.sys_path(),
            };
            let module = match source {
                AppSource::Module { module, .. } => py.import(module.as_str()),
                AppSource::File { path, .. } => {
                    if !path.is_file() {
                        let shown = path.display().to_string();
                        return Err(failure(
                            LoadFailureCause::FileNotFound { path: path.clone() },
                            vec![format!("failed to open python file {shown}")],
                        ));
                    }
                    import_file(py, path)
                }
            };
            let module = module
                .map_err(|e| failure(classify_import_error(py, &e), format_exception(py, &e)))?;
            let callable_name = source.callable();
            match module.getattr_opt(callable_name) {
                Ok(Some(callable)) if callable.is_callable() => RealApp::new(py, callable.unbind())
                    .map_err(|e| failure(LoadFailureCause::Exception, format_exception(py, &e))),
                Ok(_) => Err(failure(
                    LoadFailureCause::CallableNotFound {
                        callable: callable_name.to_string(),
                    },
                    vec![],
                )),
                Err(e) => Err(failure(
                    LoadFailureCause::Exception,
                    format_exception(py, &e),
                )),
            }
        })
    }
}

/// Refuses a virtualenv CPython could not start from, and says which program name makes
/// CPython treat it as `DIR/bin/python` would.
fn check_virtualenv(venv: &Path) -> Result<PathBuf, StartFailure> {
    let fatal = |cause| {
        StartFailure {
        lines: vec![
            format!("Set PythonHome to {}", venv.display()),
            "Fatal Python error: init_fs_encoding: failed to get the Python codec of the filesystem encoding".into(),
            "ModuleNotFoundError: No module named 'encodings'".into(),
        ],
        cause,
    }
    };
    if !venv.is_dir() {
        return Err(fatal(StartFailureCause::VirtualenvMissing {
            path: venv.to_path_buf(),
        }));
    }
    let cfg = std::fs::read_to_string(venv.join("pyvenv.cfg")).unwrap_or_default();
    let venv_version = cfg.lines().find_map(|line| {
        let (key, value) = line.split_once('=')?;
        matches!(key.trim(), "version" | "version_info").then(|| value.trim().to_string())
    });
    if let Some(venv_version) = venv_version {
        let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
        if minor(&venv_version) != BUILT_FOR {
            return Err(fatal(StartFailureCause::VirtualenvVersion {
                path: venv.to_path_buf(),
                venv_version,
                ours: BUILT_FOR.to_string(),
            }));
        }
    }
    Ok(venv.join("bin").join("python"))
}

fn initialize(program: Option<&Path>, home: Option<&Path>) -> Result<(), StartFailure> {
    use pyo3::ffi;
    let failure = |message: String| StartFailure {
        lines: vec![format!("Fatal Python error: {message}")],
        cause: StartFailureCause::Other,
    };
    // SAFETY: PyConfig is initialised by CPython before use and cleared after; strings are
    // copied by PyConfig_SetBytesString.
    unsafe {
        if ffi::Py_IsInitialized() != 0 {
            return Ok(());
        }
        let mut config: ffi::PyConfig = std::mem::zeroed();
        ffi::PyConfig_InitPythonConfig(&mut config);
        // The server owns SIGINT/SIGTERM; Python must not turn them into KeyboardInterrupt.
        config.install_signal_handlers = 0;
        config.parse_argv = 0;
        let set = |config: *mut ffi::PyConfig, field: *mut *mut nix::libc::wchar_t, path: &Path| {
            let c = CString::new(path.as_os_str().as_bytes()).unwrap_or_default();
            ffi::PyConfig_SetBytesString(config, field, c.as_ptr())
        };
        let config_ptr: *mut ffi::PyConfig = &mut config;
        let status = match (program, home) {
            // A venv: CPython finds pyvenv.cfg beside the program and sets sys.prefix itself.
            (Some(program), Some(venv)) if venv.join("pyvenv.cfg").is_file() => {
                set(config_ptr, &raw mut (*config_ptr).program_name, program)
            }
            // Not a venv (an old-style virtualenv or another prefix): uWSGI's PYTHONHOME.
            (_, Some(home)) => set(config_ptr, &raw mut (*config_ptr).home, home),
            // No virtualenv: this binary's name keeps CPython from searching PATH for
            // `python3`, which would pick up whatever venv happens to be activated.
            _ => match std::env::current_exe() {
                Ok(exe) => set(config_ptr, &raw mut (*config_ptr).program_name, &exe),
                Err(_) => ffi::PyStatus_Ok(),
            },
        };
        if ffi::PyStatus_Exception(status) != 0 {
            ffi::PyConfig_Clear(&mut config);
            return Err(failure(status_message(&status)));
        }
        let status = ffi::Py_InitializeFromConfig(&config);
        ffi::PyConfig_Clear(&mut config);
        if ffi::PyStatus_Exception(status) != 0 {
            return Err(failure(status_message(&status)));
        }
        // Let pyo3 attach and detach from here on.
        ffi::PyEval_SaveThread();
    }
    Ok(())
}

fn status_message(status: &pyo3::ffi::PyStatus) -> String {
    let text = |p: *const std::ffi::c_char| {
        if p.is_null() {
            String::new()
        } else {
            // SAFETY: CPython's status strings are static NUL-terminated C strings.
            unsafe { std::ffi::CStr::from_ptr(p) }
                .to_string_lossy()
                .into_owned()
        }
    };
    let func = text(status.func);
    let msg = text(status.err_msg);
    if func.is_empty() {
        msg
    } else {
        format!("{func}: {msg}")
    }
}

fn start_error(py: Python<'_>, err: &PyErr) -> StartFailure {
    StartFailure {
        lines: format_exception(py, err),
        cause: StartFailureCause::Other,
    }
}

/// Loads `--wsgi-file` as uWSGI does: a module named after the file, executed once.
fn import_file<'py>(py: Python<'py>, path: &Path) -> PyResult<Bound<'py, pyo3::types::PyModule>> {
    let util = py.import("importlib.util")?;
    let stem = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name: String = stem
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    let name = format!("uwsgi_file_{name}");
    let spec = util.call_method1(
        "spec_from_file_location",
        (&name, path.to_string_lossy().as_ref()),
    )?;
    let module = util.call_method1("module_from_spec", (&spec,))?;
    py.import("sys")?
        .getattr("modules")?
        .set_item(&name, &module)?;
    spec.getattr("loader")?
        .call_method1("exec_module", (&module,))?;
    Ok(module.cast_into()?)
}

fn classify_import_error(py: Python<'_>, err: &PyErr) -> LoadFailureCause {
    if err.is_instance_of::<pyo3::exceptions::PyModuleNotFoundError>(py) {
        if let Ok(name) = err
            .value(py)
            .getattr("name")
            .and_then(|n| n.extract::<String>())
        {
            return LoadFailureCause::ModuleNotFound { name };
        }
    }
    LoadFailureCause::Exception
}

/// The traceback as `traceback.print_exception` prints it, one line per entry.
fn format_exception(py: Python<'_>, err: &PyErr) -> Vec<String> {
    let formatted = py
        .import("traceback")
        .and_then(|tb| {
            tb.call_method1(
                "format_exception",
                (err.get_type(py), err.value(py), err.traceback(py)),
            )
        })
        .and_then(|lines| lines.extract::<Vec<String>>());
    match formatted {
        Ok(parts) => parts.concat().lines().map(str::to_string).collect(),
        Err(_) => vec![err.to_string()],
    }
}

/// A WSGI callable, with the environ entries that are the same for every request built once.
/// Cloning shares them (a forked worker takes the master's).
#[derive(Clone)]
pub struct RealApp {
    inner: std::sync::Arc<AppObjects>,
}

struct AppObjects {
    callable: Py<PyAny>,
    environ_template: Py<PyDict>,
    /// The template followed by [`EVERY_REQUEST`]'s keys (values None, every one replaced):
    /// a copy has them in place and room for the rest, so filling it moves and grows nothing.
    prefilled_template: Py<PyDict>,
}

impl RealApp {
    fn new(py: Python<'_>, callable: Py<PyAny>) -> PyResult<RealApp> {
        let template = PyDict::new(py);
        template.set_item("wsgi.version", (1, 0))?;
        template.set_item("wsgi.run_once", false)?;
        template.set_item("wsgi.errors", py.import("sys")?.getattr("stderr")?)?;
        template.set_item("wsgi.file_wrapper", py.get_type::<FileWrapper>())?;
        template.set_item("wsgi.input_terminated", true)?;
        let prefilled = template.copy()?;
        for key in EVERY_REQUEST {
            let key = environ_key(py, key).expect("an interned key");
            prefilled.set_item(key, py.None())?;
        }
        Ok(RealApp {
            inner: std::sync::Arc::new(AppObjects {
                callable,
                environ_template: template.unbind(),
                prefilled_template: prefilled.unbind(),
            }),
        })
    }
}

impl App for RealApp {
    type Response = RealResponse;

    async fn call(&self, request: WsgiRequest) -> Result<RealResponse, AppError> {
        keep_thread_state();
        Python::attach(|py| {
            let to_error = |e: PyErr| AppError {
                traceback: format_exception(py, &e),
                failed_at: FailedAt::BeforeStartResponse,
            };
            // Requests from nginx (`--socket`) carry their variables in nginx's order: they
            // start from the plain template, so the environ keeps that order.
            let prefilled = request.vars.len() >= EVERY_REQUEST.len()
                && request
                    .vars
                    .iter()
                    .zip(EVERY_REQUEST)
                    .all(|((k, _), e)| k == e);
            let template = if prefilled {
                &self.inner.prefilled_template
            } else {
                &self.inner.environ_template
            };
            let environ = template.bind(py).copy().map_err(to_error)?;
            for (key, value) in &request.vars {
                let value = latin1(py, value).map_err(to_error)?;
                match environ_key(py, key) {
                    Some(key) => environ.set_item(key, value),
                    None => environ.set_item(&**key, value),
                }
                .map_err(to_error)?;
            }
            let scheme = match request.url_scheme {
                "http" => intern!(py, "http"),
                "https" => intern!(py, "https"),
                other => &PyString::new(py, other),
            };
            environ
                .set_item(intern!(py, "wsgi.url_scheme"), scheme)
                .map_err(to_error)?;
            environ
                .set_item(intern!(py, "wsgi.multithread"), request.multithread)
                .map_err(to_error)?;
            environ
                .set_item(intern!(py, "wsgi.multiprocess"), request.multiprocess)
                .map_err(to_error)?;
            let input = Py::new(
                py,
                Input {
                    body: request.body,
                    position: 0,
                },
            )
            .map_err(to_error)?;
            environ
                .set_item(intern!(py, "wsgi.input"), input)
                .map_err(to_error)?;
            let start_response = Py::new(py, StartResponse::default()).map_err(to_error)?;
            let iterable = self
                .inner
                .callable
                .bind(py)
                .call1((environ, start_response.clone_ref(py)))
                .map_err(|e| AppError {
                    traceback: format_exception(py, &e),
                    failed_at: start_response.bind(py).borrow().failed_at(),
                })?;
            let iterator = match iterable.try_iter() {
                Ok(it) => it.unbind(),
                Err(e) => {
                    let response = RealResponse {
                        start_response,
                        iterable: iterable.unbind(),
                        iterator: None,
                        pending: VecDeque::new(),
                        finished: true,
                        known_remaining: None,
                        has_no_close: false,
                        head_delivered: false,
                        error: None,
                    };
                    let failed_at = response.start_response.bind(py).borrow().failed_at();
                    let _ = response.close();
                    return Err(AppError {
                        traceback: format_exception(py, &e),
                        failed_at,
                    });
                }
            };
            let known_remaining = if iterable.is_exact_instance_of::<PyList>()
                || iterable.is_exact_instance_of::<PyTuple>()
            {
                iterable.len().ok()
            } else {
                None
            };
            let mut response = RealResponse {
                start_response,
                iterable: iterable.unbind(),
                iterator: Some(iterator),
                pending: VecDeque::new(),
                finished: false,
                known_remaining,
                has_no_close: known_remaining.is_some(),
                head_delivered: false,
                error: None,
            };
            // The worker asks for the first part right after this returns, with nothing in
            // between: taking it now, while attached, saves attaching again for it. An error
            // is kept and given where the worker would have met it.
            match response.advance(py) {
                Ok(Some(part)) => response.pending.push_front(part),
                Ok(None) => {}
                Err(error) => response.error = Some(error),
            }
            Ok(response)
        })
    }
}

/// Gives the calling thread a Python thread state that lives as long as the thread.
///
/// A forked worker serves on threads CPython has never seen. Without this, every
/// `Python::attach` on them (several per request) had `PyGILState_Ensure` create a thread
/// state and the matching release destroy it again: a malloc'd `PyThreadState`, a `gettid`,
/// and an mmap/munmap of its frame stack each time. With a thread state kept, attaching only
/// takes the GIL, and detaching only releases it, exactly as on the main thread.
fn keep_thread_state() {
    use pyo3::ffi;
    // SAFETY: `PyGILState_GetThisThreadState` only reads this thread's TSS slot. When it is
    // null, this thread has no thread state, so it cannot be attached (pyo3 attaches through
    // PyGILState_Ensure, which would have made one): Ensure then creates one and takes the GIL,
    // and PyEval_SaveThread releases the GIL while the state stays registered for this thread
    // (its gilstate counter stays at 1, so later PyGILState_Release calls never delete it).
    // When it is not null (the main thread, or a thread already kept) nothing is done. The
    // interpreter is initialised: only a loaded app calls this.
    unsafe {
        if ffi::Py_IsInitialized() == 0 || !ffi::PyGILState_GetThisThreadState().is_null() {
            return;
        }
        let _ = ffi::PyGILState_Ensure();
        ffi::PyEval_SaveThread();
    }
}

/// PEP 3333 native strings: bytes decoded as latin-1, which never fails (only an allocation
/// can). CPython takes one byte per character as it is, with no UTF-8 decoding.
fn latin1<'py>(py: Python<'py>, value: &[u8]) -> PyResult<Bound<'py, PyString>> {
    // SAFETY: attached (`py`); CPython copies `value.len()` bytes from `value`, a valid slice,
    // and returns a new reference or null with an exception set, which from_owned_ptr_or_err
    // turns into the PyErr. A 1-byte-kind string is a str, so the cast cannot fail.
    unsafe {
        let ptr = pyo3::ffi::PyUnicode_FromKindAndData(
            pyo3::ffi::PyUnicode_1BYTE_KIND as std::ffi::c_int,
            value.as_ptr().cast(),
            value.len() as pyo3::ffi::Py_ssize_t,
        );
        Ok(Bound::from_owned_ptr_or_err(py, ptr)?.cast_into_unchecked())
    }
}

/// The environ key as an interned string made once per process, for the CGI variables every
/// request has and the common headers: no string to build, hash and free per request, and
/// the app's own lookups of these keys find them by identity. Others are built per request.
fn environ_key<'py>(py: Python<'py>, key: &str) -> Option<&'py Bound<'py, PyString>> {
    macro_rules! keys {
        ($($name:literal),* $(,)?) => {
            match key {
                $($name => Some(intern!(py, $name)),)*
                _ => None,
            }
        };
    }
    macro_rules! with_every_request {
        ($($more:literal),* $(,)?) => {
            every_request_keys!(keys!($($more),*))
        };
    }
    common_header_keys!(with_every_request!(
        "CONTENT_TYPE",
        "CONTENT_LENGTH",
        "HTTPS"
    ))
}

/// Chunks at least this long are lent to the writer rather than copied (below it, a copy
/// costs less than the shared reference).
const LEND_CHUNKS_FROM: usize = 16 * 1024;

/// A chunk the app yielded or gave `write()`, for the worker to write once Python has let go
/// of the thread.
fn body_chunk(chunk: &Bound<'_, PyBytes>) -> Bytes {
    let data = chunk.as_bytes();
    if data.len() < LEND_CHUNKS_FROM {
        return Bytes::copy_from_slice(data);
    }
    Bytes::from_owner(LentPyBytes {
        data: data.as_ptr(),
        len: data.len(),
        _object: chunk.clone().unbind(),
    })
}

/// A Python bytes object's buffer, lent without a copy: a bytes object is immutable and
/// CPython never moves an object, so the buffer stays as it is for as long as the reference
/// is held (dropped away from Python, the reference is released at the next attach).
struct LentPyBytes {
    data: *const u8,
    len: usize,
    _object: Py<PyBytes>,
}

// SAFETY: the buffer is never written (bytes are immutable) and lives as long as `_object`,
// which may move between threads.
unsafe impl Send for LentPyBytes {}

impl AsRef<[u8]> for LentPyBytes {
    fn as_ref(&self) -> &[u8] {
        // SAFETY: see the type: `data` and `len` describe the immutable buffer of `_object`,
        // alive as long as `self`.
        unsafe { std::slice::from_raw_parts(self.data, self.len) }
    }
}

/// The app's iterable, drained part by part.
pub struct RealResponse {
    start_response: Py<StartResponse>,
    iterable: Py<PyAny>,
    iterator: Option<Py<pyo3::types::PyIterator>>,
    pending: VecDeque<ResponsePart>,
    finished: bool,
    /// For a list or tuple: how many items are still to be taken from the iterator.
    known_remaining: Option<usize>,
    /// An exact list or tuple: it has no `close()` to call (nor can an instance be given one).
    has_no_close: bool,
    /// The head went into `pending`.
    head_delivered: bool,
    /// Met while taking a part ahead of the worker's asking: its next part.
    error: Option<AppError>,
}

impl RealResponse {
    /// Moves what the app wrote and its head (once it is due) into `pending`.
    fn collect_written(&mut self, py: Python<'_>, end: bool) -> Result<(), AppError> {
        let mut state = self.start_response.bind(py).borrow_mut();
        let written = std::mem::take(&mut state.written);
        let has_body = written.iter().any(|c| !c.is_empty());
        if (has_body || end) && !state.head_delivered {
            match state.head.take() {
                Some((status, headers)) => {
                    state.head_delivered = true;
                    self.head_delivered = true;
                    self.pending
                        .push_back(ResponsePart::Head { status, headers });
                }
                None => {
                    return Err(AppError {
                        traceback: vec![
                            "wsgilab: the app returned a body without calling start_response()"
                                .into(),
                        ],
                        failed_at: FailedAt::BodyWithoutStartResponse,
                    })
                }
            }
        }
        self.pending.extend(
            written
                .into_iter()
                .filter(|c| !c.is_empty())
                .map(ResponsePart::Chunk),
        );
        Ok(())
    }
}

impl RealResponse {
    /// The next part, taken from the app while attached.
    fn advance(&mut self, py: Python<'_>) -> Result<Option<ResponsePart>, AppError> {
        loop {
            self.collect_written(py, false)?;
            if let Some(part) = self.pending.pop_front() {
                return Ok(Some(part));
            }
            let Some(iterator) = &self.iterator else {
                self.finished = true;
                return Ok(None);
            };
            match iterator.bind(py).clone().next() {
                Some(Ok(item)) => {
                    if let Some(n) = &mut self.known_remaining {
                        *n = n.saturating_sub(1);
                    }
                    let chunk = item.cast::<PyBytes>().map_err(|_| {
                        AppError::message(format!(
                            "TypeError: the app's iterable must yield bytes, not {}",
                            item.get_type()
                                .name()
                                .map(|n| n.to_string())
                                .unwrap_or_default()
                        ))
                    })?;
                    if !chunk.as_bytes().is_empty() {
                        let body = body_chunk(chunk);
                        self.start_response.bind(py).borrow_mut().written.push(body);
                    }
                }
                Some(Err(e)) => {
                    self.finished = true;
                    return Err(AppError {
                        traceback: format_exception(py, &e),
                        failed_at: self.start_response.bind(py).borrow().failed_at(),
                    });
                }
                None => {
                    self.finished = true;
                    self.collect_written(py, true)?;
                    return Ok(self.pending.pop_front());
                }
            }
        }
    }
}

impl AppResponse for RealResponse {
    async fn next_part(&mut self) -> Result<Option<ResponsePart>, AppError> {
        if let Some(part) = self.pending.pop_front() {
            return Ok(Some(part));
        }
        if let Some(error) = self.error.take() {
            return Err(error);
        }
        if self.finished {
            return Ok(None);
        }
        if self.known_remaining == Some(0) && self.head_delivered {
            // Every item of the list or tuple has been taken and the head is out: asking the
            // iterator would only hear StopIteration, and no Python code has run since the
            // last part was taken (it ran on this thread, while attached), so nothing can have
            // been written meanwhile.
            self.finished = true;
            return Ok(None);
        }
        Python::attach(|py| self.advance(py))
    }

    fn is_exhausted(&self) -> bool {
        self.pending.is_empty() && (self.finished || self.known_remaining == Some(0))
    }

    fn close(self) -> Result<(), AppError> {
        if self.has_no_close {
            // Its references are released at the next attach (pyo3's pending decrefs), as
            // those of any response dropped unattached.
            return Ok(());
        }
        Python::attach(
            |py| match self.iterable.bind(py).getattr_opt(intern!(py, "close")) {
                Ok(Some(close)) => close.call0().map(|_| ()).map_err(|e| AppError {
                    traceback: format_exception(py, &e),
                    failed_at: FailedAt::BeforeStartResponse,
                }),
                Ok(None) => Ok(()),
                Err(e) => Err(AppError {
                    traceback: format_exception(py, &e),
                    failed_at: FailedAt::BeforeStartResponse,
                }),
            },
        )
    }
}

/// `start_response(status, headers, exc_info=None)`, and the `write()` it returns.
#[pyclass(unsendable, module = "wsgilab", name = "start_response")]
#[derive(Default)]
struct StartResponse {
    head: Option<(String, Vec<(String, String)>)>,
    head_delivered: bool,
    written: Vec<Bytes>,
    /// The status of a second call without `exc_info`, refused (PEP 3333).
    refused_second: Option<String>,
}

impl StartResponse {
    /// How far the response had got, for an exception the app raises now.
    fn failed_at(&self) -> FailedAt {
        if let Some(status) = &self.refused_second {
            return FailedAt::SecondStartResponse {
                status: status.clone(),
            };
        }
        match &self.head {
            Some((status, _)) => FailedAt::AfterStartResponse {
                status: status.clone(),
            },
            None if self.head_delivered => FailedAt::AfterStartResponse {
                status: String::new(),
            },
            None => FailedAt::BeforeStartResponse,
        }
    }
}

#[pymethods]
impl StartResponse {
    #[pyo3(signature = (status, headers, exc_info=None))]
    fn __call__<'py>(
        slf: &Bound<'py, Self>,
        status: &Bound<'py, PyAny>,
        headers: &Bound<'py, PyAny>,
        exc_info: Option<&Bound<'py, PyAny>>,
    ) -> PyResult<Bound<'py, PyAny>> {
        let exc_info = exc_info.filter(|e| !e.is_none());
        {
            let this = slf.borrow();
            if let Some(exc_info) = exc_info {
                if this.head_delivered {
                    // PEP 3333: too late to change the response; re-raise the app's error.
                    let tuple = exc_info.cast::<PyTuple>()?;
                    let value = tuple.get_item(1)?;
                    let tb = tuple.get_item(2)?;
                    return Err(PyErr::from_value(
                        value.call_method1("with_traceback", (tb,))?,
                    ));
                }
            } else if this.head.is_some() || this.head_delivered {
                drop(this);
                let second = status.extract::<String>().unwrap_or_default();
                slf.borrow_mut().refused_second = Some(second);
                return Err(PyAssertionError::new_err(
                    "start_response() called a second time without exc_info",
                ));
            }
        }
        let status: String = status
            .cast::<PyString>()
            .map_err(|_| PyTypeError::new_err("start_response(): status must be a str"))?
            .to_str()?
            .to_string();
        let mut parsed = Vec::new();
        for item in headers
            .cast::<PyList>()
            .map_err(|_| PyTypeError::new_err("start_response(): headers must be a list"))?
            .iter()
        {
            let (name, value): (String, String) = item.extract().map_err(|_| {
                PyTypeError::new_err("start_response(): each header must be a (str, str) tuple")
            })?;
            parsed.push((name, value));
        }
        slf.borrow_mut().head = Some((status, parsed));
        slf.getattr(intern!(slf.py(), "write"))
    }

    fn write(&mut self, data: &Bound<'_, PyAny>) -> PyResult<()> {
        if self.head.is_none() && !self.head_delivered {
            return Err(PyAssertionError::new_err(
                "write() called before start_response()",
            ));
        }
        let data = data
            .cast::<PyBytes>()
            .map_err(|_| PyTypeError::new_err("write() argument must be bytes"))?;
        self.written.push(body_chunk(data));
        Ok(())
    }
}

/// `wsgi.input`: the request body, already read by the worker; never reads past it.
#[pyclass(module = "wsgilab", name = "WsgiInput")]
struct Input {
    body: Bytes,
    position: usize,
}

impl Input {
    fn remaining(&self) -> &[u8] {
        &self.body[self.position..]
    }

    fn take(&mut self, n: usize) -> &[u8] {
        let start = self.position;
        self.position = (start + n).min(self.body.len());
        &self.body[start..self.position]
    }

    fn line_length(&self, limit: Option<isize>) -> usize {
        let rest = self.remaining();
        let line = memchr::memchr(b'\n', rest).map_or(rest.len(), |i| i + 1);
        match limit {
            Some(n) if n >= 0 => line.min(n as usize),
            _ => line,
        }
    }
}

#[pymethods]
impl Input {
    #[pyo3(signature = (size=None))]
    fn read<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> Bound<'py, PyBytes> {
        let n = match size {
            Some(n) if n >= 0 => n as usize,
            _ => self.remaining().len(),
        };
        PyBytes::new(py, self.take(n))
    }

    #[pyo3(signature = (size=None))]
    fn readline<'py>(&mut self, py: Python<'py>, size: Option<isize>) -> Bound<'py, PyBytes> {
        let n = self.line_length(size);
        PyBytes::new(py, self.take(n))
    }

    #[pyo3(signature = (hint=None))]
    fn readlines<'py>(&mut self, py: Python<'py>, hint: Option<isize>) -> Vec<Bound<'py, PyBytes>> {
        let mut lines = Vec::new();
        let mut total = 0usize;
        while !self.remaining().is_empty() {
            let n = self.line_length(None);
            total += n;
            lines.push(PyBytes::new(py, self.take(n)));
            if matches!(hint, Some(h) if h > 0 && total >= h as usize) {
                break;
            }
        }
        lines
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&mut self, py: Python<'py>) -> PyResult<Bound<'py, PyBytes>> {
        if self.remaining().is_empty() {
            return Err(PyStopIteration::new_err(()));
        }
        let n = self.line_length(None);
        Ok(PyBytes::new(py, self.take(n)))
    }
}

/// `wsgi.file_wrapper(filelike, block_size=8192)`: iterates the file in blocks.
#[pyclass(module = "wsgilab", name = "FileWrapper")]
struct FileWrapper {
    filelike: Py<PyAny>,
    block_size: usize,
}

#[pymethods]
impl FileWrapper {
    #[new]
    #[pyo3(signature = (filelike, block_size=8192))]
    fn new(filelike: Py<PyAny>, block_size: usize) -> Self {
        FileWrapper {
            filelike,
            block_size: block_size.max(1),
        }
    }

    fn __iter__(slf: PyRef<'_, Self>) -> PyRef<'_, Self> {
        slf
    }

    fn __next__<'py>(&self, py: Python<'py>) -> PyResult<Bound<'py, PyAny>> {
        let data = self
            .filelike
            .bind(py)
            .call_method1("read", (self.block_size,))?;
        if data.len()? == 0 {
            return Err(PyStopIteration::new_err(()));
        }
        Ok(data)
    }

    fn close(&self, py: Python<'_>) -> PyResult<()> {
        if let Some(close) = self.filelike.bind(py).getattr_opt("close")? {
            close.call0()?;
        }
        Ok(())
    }
}
