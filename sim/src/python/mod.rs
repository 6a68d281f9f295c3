//! The Python seam as a model: the interpreter a simulated process gets, its `sys.path`, the
//! import of the WSGI callable over the scenario's files, and the app's declared behaviour.
//!
//! [`SimPython`] does what `server::python::real::RealPython` does with CPython, with the same
//! results and the same words:
//!
//! - `start`: the machine's [`PythonInstall`] (a prefix such as `/usr/local`, a version), an
//!   optional virtualenv checked as CPython would (`pyvenv.cfg`, its version), and `sys.path`
//!   composed as CPython 3.11's `getpath` and `site` and then uWSGI's Python plugin compose it.
//! - `load_app`: the import system of [`import`] over the [`FileTree`], reading each module's
//!   top-level statements ([`source`]); failures carry CPython's traceback and wording.
//! - The app: [`app::SimApp`] plays the scenario's [`AppBehaviour`] through an
//!   [`AppExecutor`] the process layer provides.
//!
//! The working directory and environment variables are the process's, read through a
//! [`ProcessView`] when Python would read them: `PYTHONPATH` and `HOME` at start, `.` at the
//! first import.

pub mod app;
mod expr;
mod import;
mod source;

#[cfg(test)]
mod cpython_tests;
#[cfg(test)]
mod tests;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use serde::{Deserialize, Serialize};
use server::procs::{ForkHooks, Procs};
use server::python::{
    AppSource, InterpreterInfo, InterpreterSetup, LoadFailure, LoadFailureCause, Python,
    StartFailure, StartFailureCause,
};

pub use app::{
    AppBehaviour, AppExecutor, AppLocation, CrashSignal, ExecutorLog, Route, RouteBehaviour,
    SimApp, SimResponse, TokioExecutor,
};
pub use import::{Frame, Module};

use crate::files::{normalize, FileTree};
use crate::trace::{Category, EventKind, Trace};
use import::{path_join, Binding, ErrKind, ImportState, Importer};

/// The Python installed on the simulated machine.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(default, deny_unknown_fields)]
pub struct PythonInstall {
    /// `sys.base_prefix`: `/usr/local` for a Python built from source.
    pub prefix: PathBuf,
    /// `major.minor.micro`.
    pub version: String,
    /// The rest of `sys.version`.
    pub build: String,
    /// The platform tag in extension-module names (`.cpython-311-x86_64-linux-gnu.so`).
    pub platform: String,
    /// `sys.builtin_module_names`: found before `sys.path` is searched, so never shadowed.
    pub builtin_modules: Vec<String>,
    /// In `sys.modules` before the app is imported (by start-up and `site`): never shadowed.
    pub preloaded_modules: Vec<String>,
    /// Standard-library modules in `prefix/lib/pythonX.Y` (a project file of the same name
    /// earlier on `sys.path` shadows them).
    pub stdlib_modules: Vec<String>,
    /// Standard-library packages there (any submodule of theirs imports).
    pub stdlib_packages: Vec<String>,
    /// The address uWSGI prints as "interpreter 0x...".
    pub interpreter_address: usize,
}

fn names(list: &str) -> Vec<String> {
    list.split_whitespace().map(str::to_string).collect()
}

impl Default for PythonInstall {
    fn default() -> Self {
        PythonInstall::new("/usr/local", "3.11.7")
    }
}

impl PythonInstall {
    /// CPython at `prefix`, with 3.11's module lists (taken from `sys.builtin_module_names`,
    /// `sys.stdlib_module_names` and a fresh interpreter's `sys.modules`).
    pub fn new(prefix: impl Into<PathBuf>, version: &str) -> PythonInstall {
        PythonInstall {
            prefix: prefix.into(),
            version: version.to_string(),
            build: "(main, May  9 2026, 07:35:25) [GCC 12.2.0]".into(),
            platform: "x86_64-linux-gnu".into(),
            builtin_modules: names(BUILTIN_MODULES),
            preloaded_modules: names(PRELOADED_MODULES),
            stdlib_modules: names(STDLIB_MODULES),
            stdlib_packages: names(STDLIB_PACKAGES),
            interpreter_address: 0x7f94_93d7_6ef8,
        }
    }

    pub fn version_triple(&self) -> (u32, u32, u32) {
        let mut parts = self.version.split('.').map(|p| {
            p.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
                .parse()
                .unwrap_or(0)
        });
        (
            parts.next().unwrap_or(3),
            parts.next().unwrap_or(0),
            parts.next().unwrap_or(0),
        )
    }

    /// `3.11`.
    pub fn major_minor(&self) -> String {
        let (major, minor, _) = self.version_triple();
        format!("{major}.{minor}")
    }

    fn prefix_text(&self) -> String {
        normalize(&self.prefix).display().to_string()
    }

    /// `prefix/lib/python3.11`.
    pub fn stdlib_dir(&self) -> String {
        format!("{}/lib/python{}", self.prefix_text(), self.major_minor())
    }

    /// `importlib.machinery`'s suffixes in the order `FileFinder` tries them, and whether the
    /// file is Python source the model can read.
    fn suffixes(&self) -> Vec<(String, bool)> {
        let (major, minor, _) = self.version_triple();
        vec![
            (
                format!(".cpython-{major}{minor}-{}.so", self.platform),
                false,
            ),
            (".abi3.so".into(), false),
            (".so".into(), false),
            (".py".into(), true),
            (".pyc".into(), false),
        ]
    }
}

const BUILTIN_MODULES: &str = "_abc _ast _codecs _collections _functools _imp _io _locale \
    _operator _signal _sre _stat _string _symtable _thread _tokenize _tracemalloc _warnings \
    _weakref atexit builtins errno faulthandler gc itertools marshal posix pwd sys time \
    xxsubtype _frozen_importlib _frozen_importlib_external";

const PRELOADED_MODULES: &str = "_collections_abc _sitebuiltins abc codecs encodings \
    encodings.aliases encodings.utf_8 genericpath io os os.path posixpath site stat zipimport";

const STDLIB_PACKAGES: &str = "asyncio collections concurrent ctypes curses dbm distutils \
    email encodings ensurepip html http idlelib importlib json lib2to3 logging multiprocessing \
    pydoc_data re sqlite3 tkinter tomllib turtledemo unittest urllib venv wsgiref xml xmlrpc \
    zoneinfo";

const STDLIB_MODULES: &str = "__future__ _aix_support _asyncio _bisect _blake2 _bootsubprocess \
    _bz2 _codecs_cn _codecs_hk _codecs_iso2022 _codecs_jp _codecs_kr _codecs_tw _collections_abc \
    _compat_pickle _compression _contextvars _crypt _csv _ctypes _curses _curses_panel _datetime \
    _dbm _decimal _elementtree _gdbm _hashlib _heapq _json _lsprof _lzma _markupbase _md5 \
    _multibytecodec _multiprocessing _opcode _osx_support _pickle _posixshmem _posixsubprocess \
    _py_abc _pydecimal _pyio _queue _random _sha1 _sha256 _sha3 _sha512 _sitebuiltins _socket \
    _sqlite3 _ssl _statistics _strptime _struct _threading_local _tkinter _typing _uuid \
    _weakrefset _zoneinfo abc aifc antigravity argparse array ast asynchat asyncore audioop \
    base64 bdb binascii bisect bz2 cProfile calendar cgi cgitb chunk cmath cmd code codecs codeop \
    colorsys compileall configparser contextlib contextvars copy copyreg crypt csv dataclasses \
    datetime decimal difflib dis doctest enum fcntl filecmp fileinput fnmatch fractions ftplib \
    functools genericpath getopt getpass gettext glob graphlib grp gzip hashlib heapq hmac \
    imaplib imghdr imp inspect io ipaddress keyword linecache locale lzma mailbox mailcap math \
    mimetypes mmap modulefinder netrc nis nntplib ntpath nturl2path numbers opcode operator \
    optparse os ossaudiodev pathlib pdb pickle pickletools pipes pkgutil platform plistlib poplib \
    posixpath pprint profile pstats pty py_compile pyclbr pydoc pyexpat queue quopri random \
    readline reprlib resource rlcompleter runpy sched secrets select selectors shelve shlex \
    shutil signal site smtpd smtplib sndhdr socket socketserver spwd sre_compile sre_constants \
    sre_parse ssl stat statistics string stringprep struct subprocess sunau symtable sysconfig \
    syslog tabnanny tarfile telnetlib tempfile termios textwrap this threading timeit token \
    tokenize trace traceback tracemalloc tty turtle types typing unicodedata uu uuid warnings \
    wave weakref webbrowser xdrlib zipapp zipfile zipimport zlib";

/// What the interpreter sees of the process it runs in. The process layer implements it; it
/// must answer for the process that is running *now* (a forked worker, not the master whose
/// interpreter it copied).
pub trait ProcessView: Send + Sync {
    fn pid(&self) -> Option<u32>;
    /// The working directory (absolute).
    fn cwd(&self) -> PathBuf;
    fn env(&self, name: &str) -> Option<String>;
    /// Whether another process of the machine still runs: who still holds a connection
    /// inherited through a fork. A view that cannot tell says yes.
    fn is_alive(&self, _pid: u32) -> bool {
        true
    }
}

/// Any process seam seen as a [`ProcessView`].
#[derive(Clone)]
pub struct ProcsView<P>(pub P);

impl<P: Procs + Send + Sync> ProcessView for ProcsView<P> {
    fn pid(&self) -> Option<u32> {
        Some(self.0.pid())
    }

    fn cwd(&self) -> PathBuf {
        self.0.current_dir().unwrap_or_else(|_| PathBuf::from("/"))
    }

    fn env(&self, name: &str) -> Option<String> {
        self.0.env_var(name)
    }
}

/// A process with a settable working directory and a fixed environment (for tests and tools).
#[derive(Debug, Default)]
pub struct FixedProcess {
    pub pid: Option<u32>,
    cwd: Mutex<PathBuf>,
    pub env: BTreeMap<String, String>,
}

impl FixedProcess {
    pub fn new(cwd: impl AsRef<Path>) -> FixedProcess {
        FixedProcess {
            pid: Some(1000),
            cwd: Mutex::new(normalize(cwd.as_ref())),
            env: BTreeMap::new(),
        }
    }

    pub fn with_env(mut self, name: &str, value: &str) -> FixedProcess {
        self.env.insert(name.into(), value.into());
        self
    }

    /// `chdir`.
    pub fn set_cwd(&self, dir: impl AsRef<Path>) {
        *self.cwd.lock().unwrap_or_else(|e| e.into_inner()) = normalize(dir.as_ref());
    }
}

impl ProcessView for FixedProcess {
    fn pid(&self) -> Option<u32> {
        self.pid
    }

    fn cwd(&self) -> PathBuf {
        self.cwd.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    fn env(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
}

/// Something a module did while being imported that a fork treats specially.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportEffect {
    /// The process that imported the module.
    pub pid: Option<u32>,
    pub module: String,
    pub kind: ImportEffectKind,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ImportEffectKind {
    /// A thread was started: a forked child has only the thread that called `fork()`.
    Thread,
    /// A connection was opened: a forked child shares the socket with its parent and siblings.
    Connection,
}

impl ImportEffect {
    /// What a child forked from the importing process inherits of it, in words.
    pub fn after_fork(&self) -> String {
        let pid = self.pid.map(|p| format!(" in pid {p}")).unwrap_or_default();
        match self.kind {
            ImportEffectKind::Thread => format!(
                "the thread {} started at import{pid} does not exist in the forked worker: fork() copies only the thread that called it (use --lazy-apps, or start it in a post-fork hook)",
                self.module
            ),
            ImportEffectKind::Connection => format!(
                "the connection {} opened at import{pid} is shared by the forked worker with its parent and every sibling: one socket, several processes talking on it at once (use --lazy-apps, or open it after the fork)",
                self.module
            ),
        }
    }

    /// What the fork that made `child` did to this effect, in words; `workers` are the
    /// children (`child` among them) that now hold the connection, for a connection.
    pub fn in_forked_child(&self, child: u32, workers: &[u32]) -> String {
        let parent = self
            .pid
            .map_or_else(|| "its parent".into(), |p| format!("pid {p}"));
        match self.kind {
            ImportEffectKind::Thread => format!(
                "pid {child} forked from {parent}: the thread {} started at import in {parent} does not exist in pid {child}, because fork() copies only the thread that called it",
                self.module
            ),
            ImportEffectKind::Connection if workers.len() > 1 => format!(
                "pid {child} forked from {parent}: workers {} now share the one connection {} opened at import in {parent} (the master holds it too): one socket, and their queries interleave on it",
                pid_list_words(workers),
                self.module
            ),
            ImportEffectKind::Connection => format!(
                "pid {child} forked from {parent}: it holds the connection {} opened at import in {parent}, the same socket as the master; every worker forked from now on shares it too, and their queries will interleave on it",
                self.module
            ),
        }
    }

    /// The `hint:` for the first fork after this effect.
    fn hint(&self) -> String {
        match self.kind {
            ImportEffectKind::Thread => format!(
                "hint: {} starts a thread when it is imported, and the workers are forked after that import (preforking, uWSGI's default): only the master runs that thread, no worker has it; pass --lazy-apps so that each worker imports the app and starts its own, or start the thread after the fork (uwsgidecorators' @postfork)",
                self.module
            ),
            ImportEffectKind::Connection => format!(
                "hint: {} opens a connection when it is imported, before the workers are forked: every worker inherits the same socket and their queries interleave on it (mixed-up or corrupt replies); pass --lazy-apps so that each worker opens its own, or open it after the fork (uwsgidecorators' @postfork, or on first use)",
                self.module
            ),
        }
    }
}

/// `pids 1002, 1003 and 1004`.
pub(crate) fn pid_list_words(pids: &[u32]) -> String {
    let words: Vec<String> = pids.iter().map(u32::to_string).collect();
    match words.split_last() {
        None => "no pid".into(),
        Some((last, [])) => format!("pid {last}"),
        Some((last, rest)) => format!("pids {} and {last}", rest.join(", ")),
    }
}

/// A connection a module opened while being imported, and the processes that hold it: the
/// importer, and every child forked from it afterwards (a fork copies the descriptor, so all
/// of them talk on one socket). Shared by the importer's interpreter and all its copies.
#[derive(Debug)]
pub struct ImportedConnection {
    /// The process that opened it.
    pub opener: Option<u32>,
    pub module: String,
    holders: Mutex<Holders>,
    /// The socket itself: the server at its other end answers the queries sent on it one
    /// after another, so a query waits while another process's is being answered.
    pub(crate) wire: tokio::sync::Mutex<()>,
}

#[derive(Debug, Default)]
struct Holders {
    /// Children forked after the import, in fork order (dead ones included).
    forked: Vec<u32>,
    /// Processes inside a call to the app: the model counts a whole call as one query.
    querying: BTreeSet<u32>,
}

impl ImportedConnection {
    fn lock(&self) -> std::sync::MutexGuard<'_, Holders> {
        self.holders.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Records that `child` inherited it; the children that hold it now, `child` included.
    fn forked(&self, child: u32, alive: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut holders = self.lock();
        holders.forked.push(child);
        holders
            .forked
            .iter()
            .copied()
            .filter(|&p| p == child || alive(p))
            .collect()
    }

    /// Whether `pid` holds it because it was forked from the opener.
    pub fn inherited_by(&self, pid: u32) -> bool {
        self.lock().forked.contains(&pid)
    }

    /// The processes that hold it, but `pid`, that are still alive.
    pub fn other_holders(&self, pid: u32, alive: impl Fn(u32) -> bool) -> Vec<u32> {
        self.lock()
            .forked
            .iter()
            .copied()
            .filter(|&p| p != pid && alive(p))
            .collect()
    }

    /// `pid` starts a query; the other processes querying at this moment.
    pub(crate) fn start_query(&self, pid: u32, alive: impl Fn(u32) -> bool) -> Vec<u32> {
        let mut holders = self.lock();
        holders.querying.insert(pid);
        holders
            .querying
            .iter()
            .copied()
            .filter(|&p| p != pid && alive(p))
            .collect()
    }

    pub(crate) fn end_query(&self, pid: u32) {
        self.lock().querying.remove(&pid);
    }
}

/// The interpreter of one simulated process. Cloning it is what a fork does: the child gets
/// a copy of `sys.modules`, `sys.path` and the finders' cache.
#[derive(Clone)]
pub struct SimPython<E: AppExecutor> {
    install: Arc<PythonInstall>,
    files: Arc<FileTree>,
    process: Arc<dyn ProcessView>,
    executor: E,
    behaviour: Arc<AppBehaviour>,
    trace: Trace,
    host: String,
    state: Option<ImportState>,
    effects: Vec<ImportEffect>,
    /// The process `start` ran in: an import in another one happens after a fork
    /// (`--lazy-apps`).
    started_in: Option<u32>,
    connection: Option<Arc<ImportedConnection>>,
    /// Whether a fork already gave the hints about the import's effects (once per run).
    hinted: Arc<AtomicBool>,
}

impl<E: AppExecutor> SimPython<E> {
    pub fn new(
        install: PythonInstall,
        files: FileTree,
        process: Arc<dyn ProcessView>,
        executor: E,
    ) -> Self {
        SimPython {
            install: Arc::new(install),
            files: Arc::new(files),
            process,
            executor,
            behaviour: Arc::new(AppBehaviour::default()),
            trace: Trace::default(),
            host: "server".into(),
            state: None,
            effects: Vec::new(),
            started_in: None,
            connection: None,
            hinted: Arc::new(AtomicBool::new(false)),
        }
    }

    /// The scenario's app.
    pub fn with_behaviour(mut self, behaviour: AppBehaviour) -> Self {
        self.behaviour = Arc::new(behaviour);
        self
    }

    /// Where events go, and the host they are recorded for.
    pub fn with_trace(mut self, trace: Trace, host: &str) -> Self {
        self.trace = trace;
        self.host = host.to_string();
        self
    }

    pub fn install(&self) -> &PythonInstall {
        &self.install
    }

    /// Threads and connections started by imports, in the order they happened.
    pub fn import_effects(&self) -> &[ImportEffect] {
        &self.effects
    }

    /// `sys.modules`, by name (empty before `start`).
    pub fn modules(&self) -> Vec<&Module> {
        self.state
            .as_ref()
            .map(|s| s.modules.values().collect())
            .unwrap_or_default()
    }

    fn record(&self, kind: EventKind, text: String) {
        self.trace
            .record(&self.host, self.process.pid(), Category::App, kind, text);
    }

    /// Checks `--virtualenv`/`--home` as CPython started from it would: `Some((prefix,
    /// include-system-site-packages))` for a virtualenv, `None` for the system prefix itself.
    fn check_virtualenv(&self, venv: &Path) -> Result<Option<(String, bool)>, StartFailure> {
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
        let dir = normalize(&self.process.cwd().join(venv));
        if !self.files.is_dir(&dir) {
            return Err(fatal(StartFailureCause::VirtualenvMissing {
                path: venv.to_path_buf(),
            }));
        }
        let Some(cfg) = self.files.read(&dir.join("pyvenv.cfg")) else {
            if dir == normalize(&self.install.prefix) {
                return Ok(None);
            }
            // Not a virtualenv: uWSGI makes it PYTHONHOME, where the standard library is not.
            return Err(StartFailure {
                lines: vec![
                    "Fatal Python error: init_fs_encoding: failed to get the Python codec of the filesystem encoding".into(),
                ],
                cause: StartFailureCause::Other,
            });
        };
        let mut include_system = false;
        let mut venv_version = None;
        for line in cfg.lines() {
            let Some((key, value)) = line.split_once('=') else {
                continue;
            };
            match key.trim().to_ascii_lowercase().as_str() {
                "version" | "version_info" => venv_version = Some(value.trim().to_string()),
                "include-system-site-packages" => {
                    include_system = value.trim().eq_ignore_ascii_case("true")
                }
                _ => {}
            }
        }
        if let Some(venv_version) = venv_version {
            let minor = |v: &str| v.split('.').take(2).collect::<Vec<_>>().join(".");
            let ours = self.install.major_minor();
            if minor(&venv_version) != ours {
                return Err(fatal(StartFailureCause::VirtualenvVersion {
                    path: venv.to_path_buf(),
                    venv_version,
                    ours,
                }));
            }
        }
        Ok(Some((dir.display().to_string(), include_system)))
    }

    /// `sys.path` as CPython's `getpath` and `site` leave it, before uWSGI adds its entries.
    fn interpreter_path(&self, venv: Option<&(String, bool)>) -> Vec<String> {
        let cwd = self.process.cwd().display().to_string();
        let base = self.install.prefix_text();
        let mm = self.install.major_minor();
        let (major, minor, _) = self.install.version_triple();
        let mut path = Vec::new();
        // PYTHONPATH (an empty variable counts as unset), made absolute against the working
        // directory at start-up.
        if let Some(value) = self.process.env("PYTHONPATH").filter(|v| !v.is_empty()) {
            for entry in value.split(':') {
                path.push(expr::normpath(&expr::join(&[
                    cwd.clone(),
                    entry.to_string(),
                ])));
            }
        }
        let lib = self.install.stdlib_dir();
        path.push(format!("{base}/lib/python{major}{minor}.zip"));
        path.push(lib.clone());
        path.push(format!("{lib}/lib-dynload"));
        // site.removeduppaths().
        let mut seen = Vec::new();
        path.retain(|p| {
            let fresh = !seen.contains(p);
            seen.push(p.clone());
            fresh
        });
        // site.main(): the user's site-packages (if it exists and the venv allows it), then
        // the prefixes' site-packages, each followed by what its .pth files add.
        let mut site_dirs = Vec::new();
        let user_site = venv.is_none_or(|(_, system)| *system)
            && self.process.env("PYTHONNOUSERSITE").is_none();
        if user_site {
            if let Some(home) = self.process.env("HOME") {
                let dir = format!("{home}/.local/lib/python{mm}/site-packages");
                if self.files.is_dir(Path::new(&dir)) {
                    site_dirs.push(dir);
                }
            }
        }
        match venv {
            Some((prefix, system)) => {
                site_dirs.push(format!("{prefix}/lib/python{mm}/site-packages"));
                if *system {
                    site_dirs.push(format!("{lib}/site-packages"));
                }
            }
            None => site_dirs.push(format!("{lib}/site-packages")),
        }
        for dir in site_dirs {
            if !path.contains(&dir) {
                path.push(dir.clone());
            }
            let listing = self.files.list(Path::new(&dir));
            for pth in listing.iter().filter(|n| n.ends_with(".pth")) {
                let content = self
                    .files
                    .read(&Path::new(&dir).join(pth))
                    .unwrap_or_default();
                for line in content.lines() {
                    let line = line.trim_end();
                    if line.is_empty()
                        || line.starts_with('#')
                        || line.starts_with("import ")
                        || line.starts_with("import\t")
                    {
                        continue;
                    }
                    let entry = expr::normpath(&expr::join(&[dir.clone(), line.to_string()]));
                    let p = Path::new(&entry);
                    if !path.contains(&entry) && (self.files.is_dir(p) || self.files.is_file(p)) {
                        path.push(entry);
                    }
                }
            }
        }
        path
    }

    fn load(&mut self, source: &AppSource) -> Result<SimApp<E>, LoadFailure> {
        let Some(mut state) = self.state.take() else {
            return Err(LoadFailure {
                traceback: vec!["wsgilab: the interpreter was not started".into()],
                cause: LoadFailureCause::Exception,
                sys_path: Vec::new(),
            });
        };
        let imported = self.import_app(&mut state, source);
        let sys_path = state.sys_path.clone();
        let callable = source.callable();
        let outcome = imported
            .and_then(|(module, executed)| {
                let m = &state.modules[&module];
                let binding = m.names.get(callable);
                match binding {
                    Some(Binding {
                        callable: Some(false),
                        ..
                    }) => None,
                    None if !m.open => None,
                    _ => Some((self.app(m, callable, binding), executed)),
                }
                .ok_or_else(|| {
                    let cause = LoadFailureCause::CallableNotFound {
                        callable: callable.to_string(),
                    };
                    (cause, Vec::new())
                })
            })
            .map_err(|(cause, traceback)| LoadFailure {
                traceback,
                cause,
                sys_path,
            });
        self.state = Some(state);
        match outcome {
            Ok((mut app, executed)) => {
                self.report_import(&app, &executed);
                app.connection = self.connection.clone();
                Ok(app)
            }
            Err(failure) => {
                let last = failure.traceback.last().cloned().unwrap_or_default();
                self.record(
                    EventKind::ImportFailed,
                    format!("importing the app failed: {last}"),
                );
                Err(failure)
            }
        }
    }

    /// Imports the app's module: its name and the modules executed from source on the way,
    /// or why it failed and the traceback.
    fn import_app(
        &self,
        state: &mut ImportState,
        source: &AppSource,
    ) -> Result<(String, Vec<String>), (LoadFailureCause, Vec<String>)> {
        let mut importer = Importer {
            files: &self.files,
            install: &self.install,
            process: self.process.as_ref(),
            state,
            executed: Vec::new(),
            handling: Vec::new(),
        };
        let (module, outer, result) = match source {
            AppSource::Module { module, .. } => {
                (module.clone(), Vec::new(), importer.import(module))
            }
            AppSource::File { path, .. } => {
                let cwd = self.process.cwd();
                let Some(text) = self.files.read(&normalize(&cwd.join(path))) else {
                    let cause = LoadFailureCause::FileNotFound { path: path.clone() };
                    let shown = format!("failed to open python file {}", path.display());
                    return Err((cause, vec![shown]));
                };
                // importlib.util.spec_from_file_location: the location made absolute, as is.
                let shown = path.display().to_string();
                let file = if shown.starts_with('/') {
                    shown
                } else {
                    path_join(&[&cwd.display().to_string(), &shown])
                };
                let name = file_module_name(path);
                let result = importer.exec_source(&name, file, None, text);
                (name, exec_module_frames(), result)
            }
        };
        match result {
            Ok(()) => Ok((module, importer.executed)),
            Err(e) => {
                let cause = match &e.kind {
                    ErrKind::ModuleNotFound(Some(name)) => {
                        LoadFailureCause::ModuleNotFound { name: name.clone() }
                    }
                    _ => LoadFailureCause::Exception,
                };
                Err((cause, e.format(&outer)))
            }
        }
    }

    /// Traces a successful import, and what the app's module started while being imported.
    fn report_import(&mut self, app: &SimApp<E>, executed: &[String]) {
        let location = app.location();
        let module = location.module.clone();
        let ran = if executed.is_empty() {
            "already imported".to_string()
        } else {
            format!("executed {}", executed.join(", "))
        };
        self.record(
            EventKind::Import,
            format!(
                "imported {module} from {} ({ran}); callable '{}' found",
                location.file, location.callable
            ),
        );
        // Only an import that ran the module's code starts its threads and connections.
        if !executed.contains(&module) {
            return;
        }
        let effects = [
            (
                self.behaviour.starts_thread_at_import,
                ImportEffectKind::Thread,
                EventKind::ImportThread,
                "starts a thread at import",
            ),
            (
                self.behaviour.opens_connection_at_import,
                ImportEffectKind::Connection,
                EventKind::ImportConnection,
                "opens a database connection at import",
            ),
        ];
        let pid = self.process.pid();
        // With --lazy-apps the import runs in a worker, after the fork: what it starts is the
        // worker's own.
        let after_fork = pid.is_some() && self.started_in.is_some() && pid != self.started_in;
        for (flag, kind, event, what) in effects {
            if !flag {
                continue;
            }
            let text = match (after_fork, kind, pid) {
                (true, ImportEffectKind::Thread, Some(pid)) => format!(
                    "{module} {what} in pid {pid}, after the fork (--lazy-apps): this worker has its own thread"
                ),
                (true, ImportEffectKind::Connection, Some(pid)) => format!(
                    "{module} {what} in pid {pid}, after the fork (--lazy-apps): the connection is this worker's own, no other process talks on it"
                ),
                _ => format!("{module} {what}"),
            };
            self.record(event, text);
            self.effects.push(ImportEffect {
                pid,
                module: module.clone(),
                kind,
            });
            if kind == ImportEffectKind::Connection {
                self.connection = Some(Arc::new(ImportedConnection {
                    opener: pid,
                    module: module.clone(),
                    holders: Mutex::new(Holders::default()),
                    wire: tokio::sync::Mutex::new(()),
                }));
            }
        }
    }

    fn app(&self, module: &Module, callable: &str, binding: Option<&Binding>) -> SimApp<E> {
        let file = module.file.clone().unwrap_or_default();
        let (line, source) = match binding {
            Some(b) if b.line > 0 => raise_site(
                self.files
                    .read(&normalize(Path::new(&file)))
                    .unwrap_or_default(),
                b,
            ),
            _ => (1, None),
        };
        SimApp {
            location: Arc::new(AppLocation {
                module: module.name.clone(),
                callable: callable.to_string(),
                file,
                line,
                source,
            }),
            behaviour: self.behaviour.clone(),
            executor: self.executor.clone(),
            process: self.process.clone(),
            trace: self.trace.clone(),
            host: self.host.clone(),
            connection: None,
            answers: app::answers(&self.behaviour),
        }
    }
}

/// The module name `--wsgi-file` gives a file (what real.rs names it).
fn file_module_name(path: &Path) -> String {
    let stem: String = path
        .file_stem()
        .map(|s| s.to_string_lossy().into_owned())
        .unwrap_or_default()
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '_' })
        .collect();
    format!("uwsgi_file_{stem}")
}

/// `exec_module`, called from Rust for `--wsgi-file`, keeps its frames in the traceback
/// (the line numbers are CPython 3.11.7's).
fn exec_module_frames() -> Vec<Frame> {
    let frozen = |file: &str, line, function: &str| Frame {
        file: file.into(),
        line,
        function: function.into(),
        source: None,
        carets: None,
    };
    vec![
        frozen("<frozen importlib._bootstrap_external>", 940, "exec_module"),
        frozen(
            "<frozen importlib._bootstrap>",
            241,
            "_call_with_frames_removed",
        ),
    ]
}

/// Where a raise in the callable is reported: the first `raise` in a `def`'s body, else its
/// first statement; the binding's own line for anything else.
fn raise_site(source: &str, binding: &Binding) -> (u32, Option<String>) {
    let fallback = (binding.line, Some(binding.source.clone()));
    if !binding.source.starts_with("def ") && !binding.source.starts_with("async def ") {
        return fallback;
    }
    let lines: Vec<&str> = source.lines().collect();
    let start = binding.line as usize; // the line after the def (0-based index)
    let def_indent = lines
        .get(start.saturating_sub(1))
        .map_or(0, |l| l.len() - l.trim_start().len());
    let mut first = None;
    for (i, line) in lines.iter().enumerate().skip(start) {
        let trimmed = line.trim();
        if trimmed.is_empty() || trimmed.starts_with('#') {
            continue;
        }
        if line.len() - line.trim_start().len() <= def_indent {
            break;
        }
        first.get_or_insert((i as u32 + 1, Some(trimmed.to_string())));
        if trimmed.starts_with("raise ") || trimmed == "raise" {
            return (i as u32 + 1, Some(trimmed.to_string()));
        }
    }
    first.unwrap_or(fallback)
}

impl<E: AppExecutor> Python for SimPython<E> {
    type App = SimApp<E>;

    fn start(&mut self, setup: &InterpreterSetup) -> Result<InterpreterInfo, StartFailure> {
        let venv = match &setup.virtualenv {
            Some(dir) => self.check_virtualenv(dir).inspect_err(|failure| {
                self.record(
                    EventKind::PythonStartFailed,
                    format!(
                        "the interpreter cannot start: {}",
                        failure.lines.last().cloned().unwrap_or_default()
                    ),
                );
            })?,
            None => None,
        };
        let base_prefix = self.install.prefix_text();
        let prefix = venv
            .as_ref()
            .map_or_else(|| base_prefix.clone(), |(p, _)| p.clone());
        // uWSGI's Python plugin: `--pythonpath` entries first, then the working directory.
        let mut sys_path: Vec<String> = setup
            .pythonpath
            .iter()
            .map(|p| p.display().to_string())
            .collect();
        sys_path.push(".".into());
        sys_path.extend(self.interpreter_path(venv.as_ref()));
        let mut modules = BTreeMap::new();
        let stdlib = self.install.stdlib_dir();
        for name in &self.install.preloaded_modules {
            let dir = path_join(&[&stdlib, &name.replace('.', "/")]);
            let package = self.install.stdlib_packages.contains(name);
            let (file, search) = if package {
                (path_join(&[&dir, "__init__.py"]), Some(vec![dir]))
            } else {
                (format!("{dir}.py"), None)
            };
            modules.insert(
                name.clone(),
                Module {
                    name: name.clone(),
                    file: Some(file),
                    search,
                    open: true,
                    initializing: false,
                    names: BTreeMap::new(),
                    values: BTreeMap::new(),
                },
            );
        }
        self.started_in = self.process.pid();
        self.state = Some(ImportState {
            sys_path: sys_path.clone(),
            modules,
            finders: BTreeMap::new(),
            prefix: prefix.clone(),
            base_prefix: base_prefix.clone(),
        });
        self.record(
            EventKind::PythonStart,
            format!(
                "Python {} started with sys.prefix {prefix}; sys.path = {}",
                self.install.version,
                python_list(&sys_path)
            ),
        );
        Ok(InterpreterInfo {
            version: format!("{} {}", self.install.version, self.install.build),
            version_short: self.install.version.clone(),
            prefix,
            base_prefix,
            address: self.install.interpreter_address,
        })
    }

    fn sys_path(&self) -> Vec<String> {
        self.state
            .as_ref()
            .map(|s| s.sys_path.clone())
            .unwrap_or_default()
    }

    fn load_app(&mut self, source: &AppSource) -> Result<SimApp<E>, LoadFailure> {
        self.load(source)
    }
}

/// `['.', '/usr/local/lib/python311.zip']`, as Python prints a list of str.
pub fn python_list(items: &[String]) -> String {
    let quoted: Vec<String> = items.iter().map(|i| format!("'{i}'")).collect();
    format!("[{}]", quoted.join(", "))
}

/// A simulated fork copies the interpreter (the child's is a clone); what it does to the
/// threads and connections the app started at import is told here, in the child, as the child
/// (the process layer runs `after_fork_child` as the new process).
impl<E: AppExecutor> ForkHooks for SimPython<E> {
    fn before_fork(&self) {}
    fn after_fork_parent(&self) {}

    fn after_fork_child(&self) {
        let Some(child) = self.process.pid() else {
            return;
        };
        let inherited: Vec<&ImportEffect> = self
            .effects
            .iter()
            .filter(|e| e.pid != Some(child))
            .collect();
        if inherited.is_empty() {
            return;
        }
        let first = !self.hinted.swap(true, Ordering::SeqCst);
        for effect in inherited {
            let (kind, workers) = match effect.kind {
                ImportEffectKind::Thread => (EventKind::ForkThreadMissing, Vec::new()),
                ImportEffectKind::Connection => {
                    let workers = self
                        .connection
                        .as_ref()
                        .map(|c| c.forked(child, |p| self.process.is_alive(p)))
                        .unwrap_or_else(|| vec![child]);
                    (EventKind::ForkConnectionShared, workers)
                }
            };
            self.record(kind, effect.in_forked_child(child, &workers));
            if first {
                self.record(EventKind::Hint, effect.hint());
            }
        }
    }
}
