//! The server's configuration: uWSGI's configuration language — the command line, `UWSGI_*`
//! environment variables, ini/yaml/json/xml files with placeholders, magic variables and logic
//! blocks — turned into one typed [`Config`].
//!
//! `wsgilab serve ARGS...` accepts what a user would type after `uwsgi`, and reads what uWSGI
//! 2.0.31 reads, the same way (its source, not its documentation, is the reference). The work
//! is split in steps, one module each:
//!
//! - [`reader`] turns every source, in uWSGI's order, into one list of entries with their origin;
//!   [`formats`] reads each file format, [`logic`] the `if-*`/`for` blocks, [`placeholders`]
//!   the magic variables and the `$(..)`/`@(..)`/`%(..)` passes;
//! - [`options`] is the table of every uWSGI option and what wsgilab does with it (implemented,
//!   accepted with a warning, or refused with the reason);
//! - [`cli`] holds the implemented options as clap arguments (values checked, `--help`), and the
//!   step to [`Config`];
//! - [`show`] prints `--show-config`: the effective options with their origins.
//!
//! Problems are collected, not thrown: one run reports every error, each with its file:line,
//! the line's text, what is wrong and what to write instead.
//!
//! Reading goes through a [`ConfigHost`] (files, environment, host facts), so the simulated lab
//! parses a scenario's command line against the scenario's own files and environment.

pub mod cli;
pub mod formats;
pub mod logic;
pub mod options;
pub mod placeholders;
pub mod reader;
pub mod show;

#[cfg(test)]
mod language_tests;

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};

use clap::error::ErrorKind;
use clap::FromArgMatches;

pub use reader::{ConfigHost, Entry, Origin, RealHost};

/// uWSGI's hard cap on `--buffer-size` (it is stored in 16 bits).
pub const MAX_BUFFER_SIZE: usize = 65535;

/// What `wsgilab serve ARGS...` asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
#[allow(clippy::large_enum_variant)] // made once per process; boxing would only add noise
pub enum ConfigOutcome {
    /// Run the server with this configuration.
    Run(Config),
    /// `-h/--help` (or `--version`): print this text and exit with status 0.
    Help(String),
    /// `--show-config`: print this text (the effective configuration) and exit with status 0,
    /// binding nothing.
    ShowConfig(String),
}

/// A configuration the server cannot run with: every problem found, one line each (a
/// command-line mistake names the flag; a file's names the file and line and quotes it), ready
/// to print after `wsgilab serve: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    lines: Vec<String>,
    shown: Option<String>,
}

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        ConfigError {
            lines: vec![message.into()],
            shown: None,
        }
    }

    /// Every problem, one line each.
    pub fn lines(&self) -> &[String] {
        &self.lines
    }

    /// The problems as one text, a line each (the same text as `Display`).
    pub fn message(&self) -> String {
        self.lines.join("\n")
    }

    /// With `--show-config`: the effective configuration as far as it could be read, to print
    /// before the errors.
    pub fn show_config(&self) -> Option<&str> {
        self.shown.as_deref()
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message())
    }
}

impl std::error::Error for ConfigError {}

/// The protocol a listening socket speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Protocol {
    /// HTTP/1.x, one request per connection: the connection is closed after each response, as
    /// uWSGI's `--http-socket` does.
    Http,
    /// HTTP/1.1 with keep-alive (`--http11-socket`).
    Http11,
    /// uWSGI's binary protocol (`--socket`, `--uwsgi-socket`; what nginx's `uwsgi_pass` speaks).
    Uwsgi,
}

impl Protocol {
    /// uWSGI's name for the protocol (`http`, `http11`, `uwsgi`), as its stats server shows it.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::Http => "http",
            Protocol::Http11 => "http11",
            Protocol::Uwsgi => "uwsgi",
        }
    }
}

impl fmt::Display for Protocol {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// One listening socket asked for on the command line or in an ini file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SocketSpec {
    /// The address exactly as typed (`:8000`, `localhost:8000`, ...): uWSGI's logs show this.
    pub spec: String,
    /// The address to bind (`:8000` is `0.0.0.0:8000`, `localhost` is `127.0.0.1`).
    pub addr: SocketAddr,
    /// What the socket speaks.
    pub protocol: Protocol,
    /// The option that declared it, without dashes: `http-socket`, `http`, `http11-socket`,
    /// `socket` or `uwsgi-socket`. (`http` is served like `http-socket`: uWSGI would start a
    /// separate HTTP router process in front of the workers instead.)
    pub option: &'static str,
}

/// An address for a TCP listener that is not a request socket (the stats server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsSpec {
    /// The address exactly as typed.
    pub spec: String,
    /// The address to bind.
    pub addr: SocketAddr,
}

/// Everything the server reads from its command line and ini files. Field names follow uWSGI's
/// flags; defaults are uWSGI's. [`Config::default`] is what `wsgilab serve` with no arguments
/// gives.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    // --- sockets ---
    /// Listening sockets in the order they were given (ini files first, then the command line),
    /// from `--http-socket`, `--http`, `--http11-socket`, `-s/--socket` and `--uwsgi-socket`.
    /// Empty is allowed: the caller reports it as uWSGI does (`The -s/--socket option is missing
    /// and stdin is not a socket.`).
    pub sockets: Vec<SocketSpec>,

    // --- app ---
    /// `-w/--module/--wsgi`: the dotted module path, possibly with `:callable`, as typed.
    pub module: Option<String>,
    /// `--callable`: the name of the WSGI callable (default `application`).
    pub callable: String,
    /// `--wsgi-file/--file` (or a lone `app.py`/`app.wsgi` argument): a Python file to load as
    /// the app.
    pub wsgi_file: Option<PathBuf>,
    /// `--chdir`: the directory to change to before loading the app.
    pub chdir: Option<PathBuf>,
    /// `-H/--virtualenv/--venv/--home/--pyhome`: the Python home (virtualenv); the last one given
    /// wins.
    pub virtualenv: Option<PathBuf>,
    /// `--pythonpath/--python-path/--pp`: directories added to `sys.path`, in order.
    pub pythonpath: Vec<PathBuf>,
    /// `--need-app`: exit (status 22) when the app cannot be loaded, instead of serving 500s.
    pub need_app: bool,
    /// `--lazy-apps` (or uWSGI's older `--lazy`): each worker loads the app after it is spawned,
    /// instead of the master loading it once before forking.
    pub lazy_apps: bool,

    // --- processes ---
    /// `-M/--master`: run a master process that supervises the workers.
    pub master: bool,
    /// `-p/--processes/--workers`: the number of worker processes (default 1).
    pub processes: u32,
    /// `--threads`: request threads per worker (default 1).
    pub threads: u32,
    /// `-T/--enable-threads`: let the app start its own Python threads (uWSGI enables them by
    /// default since 2.0.27; the flag is kept for what it says in the banner).
    pub enable_threads: bool,
    /// `--thunder-lock`: serialise `accept()` between workers.
    pub thunder_lock: bool,
    /// `--die-on-term`: SIGTERM stops the server (uWSGI 2.0's default is to reload on SIGTERM).
    pub die_on_term: bool,
    /// `--stats/--stats-server`: the address of the stats server (one JSON document per
    /// connection).
    pub stats: Option<StatsSpec>,
    /// `--stats-http`: prefix the stats JSON with HTTP headers.
    pub stats_http: bool,

    // --- limits ---
    /// `-l/--listen`: the listen backlog (default 100).
    pub listen: u32,
    /// `TCP_DEFER_ACCEPT` on the server socket, for `--socket-timeout` seconds, as uWSGI
    /// does; `--no-defer-accept` turns it off.
    pub defer_accept: bool,
    /// `-b/--buffer-size`: the largest request head (or uwsgi packet) accepted, in bytes
    /// (default 4096, at most 65535).
    pub buffer_size: usize,
    /// `--limit-post`: the largest request body accepted, in bytes; 0 = unlimited (default).
    pub limit_post: u64,
    /// `-z/--socket-timeout`: seconds to wait on a client's socket (default 4).
    pub socket_timeout: u64,
    /// `--http-timeout`: seconds the HTTP side waits for a client (default 60, uWSGI's HTTP
    /// router default).
    pub http_timeout: u64,
    /// `-t/--harakiri`: seconds a request may run before its worker is killed; 0 = off.
    pub harakiri: u64,
    /// `-R/--max-requests`: requests a worker serves before it is recycled; 0 = off.
    pub max_requests: u64,
    /// `--reload-on-rss`: recycle a worker whose resident memory exceeds this many megabytes;
    /// 0 = off.
    pub reload_on_rss: u64,
    /// `--worker-reload-mercy`: seconds a worker may take to stop gracefully (default 60).
    pub worker_reload_mercy: u64,
    /// `--min-worker-lifetime`: seconds a worker must live before it may be recycled
    /// (default 10).
    pub min_worker_lifetime: u64,

    // --- logging ---
    /// `-L/--disable-logging`: no per-request log lines.
    pub disable_logging: bool,

    // --- where it came from ---
    /// The ini files read, in order, as typed (with `:section` when one was given), nested ones
    /// included: uWSGI logs `[uWSGI] getting INI configuration from FILE` for each.
    pub ini_files: Vec<String>,
    /// The format of each of `ini_files`, as uWSGI names it in that log line (`INI`, `YAML`,
    /// `JSON`, `XML`).
    pub config_formats: Vec<&'static str>,
    /// Lines to log at start-up about options that were accepted but act differently from uWSGI
    /// (options accepted for compatibility with no effect, `--http` served without a router).
    pub warnings: Vec<String>,
}

impl Default for Config {
    /// uWSGI's defaults: what `wsgilab serve` with no arguments gives.
    fn default() -> Self {
        match parse_serve_args_in(&[], Path::new("/"), &|_| {
            Err(io::Error::from(io::ErrorKind::NotFound))
        }) {
            Ok(ConfigOutcome::Run(config)) => config,
            other => unreachable!("empty command line must parse: {other:?}"),
        }
    }
}

impl Config {
    /// The module to import and the callable to take from it: `--module pkg.mod:app` gives
    /// `("pkg.mod", "app")`; without `:callable`, `--callable` (default `application`) applies.
    /// `None` without `--module`.
    pub fn module_and_callable(&self) -> Option<(String, String)> {
        let module = self.module.as_deref()?;
        match module.rsplit_once(':') {
            Some((m, c)) if !c.is_empty() => Some((m.to_string(), c.to_string())),
            Some((m, _)) => Some((m.to_string(), self.callable.clone())),
            None => Some((module.to_string(), self.callable.clone())),
        }
    }
}

/// Parses `wsgilab serve`'s arguments (without `wsgilab` and `serve`) against the real machine:
/// its file system, its environment (`UWSGI_*` variables), its host name.
pub fn parse_serve_args(args: &[OsString]) -> Result<ConfigOutcome, ConfigError> {
    parse_serve_args_host(args, &RealHost)
}

/// [`parse_serve_args`] with the working directory and the file reader given, and an empty
/// environment: relative paths are joined to `cwd` and read with `read_file`.
pub fn parse_serve_args_in(
    args: &[OsString],
    cwd: &Path,
    read_file: &dyn Fn(&Path) -> io::Result<String>,
) -> Result<ConfigOutcome, ConfigError> {
    let host = FilesHost {
        cwd: cwd.to_path_buf(),
        read_file,
        env: Vec::new(),
    };
    parse_serve_args_host(args, &host)
}

/// A host made of a file reader and an environment (what tests and the lab's callers need): a
/// path is a file when it can be read; directories are the parents of files.
pub struct FilesHost<'a> {
    pub cwd: PathBuf,
    pub read_file: &'a dyn Fn(&Path) -> io::Result<String>,
    pub env: Vec<(String, String)>,
}

/// Fixed machine facts for hosts that are not the real machine, so a parse is deterministic.
pub fn fixed_facts(cwd: &Path) -> placeholders::MachineFacts {
    placeholders::MachineFacts {
        cwd: cwd.display().to_string(),
        hostname: "localhost".into(),
        cpus: 1,
        uid: 1000,
        user: "user".into(),
        gid: 1000,
        group: "user".into(),
        now_micros: 0,
        binary: "/usr/local/bin/wsgilab".into(),
    }
}

impl ConfigHost for FilesHost<'_> {
    fn cwd(&self) -> PathBuf {
        self.cwd.clone()
    }
    fn read_file(&self, path: &Path) -> io::Result<String> {
        (self.read_file)(path)
    }
    fn is_file(&self, path: &Path) -> bool {
        (self.read_file)(path).is_ok()
    }
    fn is_dir(&self, path: &Path) -> bool {
        path == Path::new("/") || path == self.cwd
    }
    fn list_dir(&self, _path: &Path) -> Vec<String> {
        Vec::new()
    }
    fn env_vars(&self) -> Vec<(String, String)> {
        self.env.clone()
    }
    fn facts(&self) -> placeholders::MachineFacts {
        fixed_facts(&self.cwd)
    }
}

/// The whole pipeline against any [`ConfigHost`]: read every source, expand, check each
/// option against the policy table and its value with clap, build the [`Config`].
pub fn parse_serve_args_host(
    args: &[OsString],
    host: &dyn ConfigHost,
) -> Result<ConfigOutcome, ConfigError> {
    let args: Vec<String> = args
        .iter()
        .map(|a| a.to_string_lossy().into_owned())
        .collect();
    let read = reader::Reader::new(host).read(&args);
    if read.help {
        return Ok(ConfigOutcome::Help(cli::help_text()));
    }
    if read.version {
        return Ok(ConfigOutcome::Help(cli::version_text()));
    }
    let mut errors = read.errors.clone();
    let mut warnings = read.warnings.clone();
    let built = to_config(&read.entries, &mut errors, &mut warnings);
    let built = built.map(|mut c| {
        let mut all = warnings.clone();
        all.append(&mut c.warnings);
        c.warnings = all;
        c.ini_files = read.files.clone();
        c.config_formats = read.formats.clone();
        c
    });
    sort_by_place(&mut errors, &read.files);
    if read.show_config {
        let text = show::render(&read.entries, built.as_ref(), &warnings, &errors);
        if errors.is_empty() {
            return Ok(ConfigOutcome::ShowConfig(text));
        }
        return Err(ConfigError {
            lines: errors,
            shown: Some(text),
        });
    }
    match built {
        Some(config) if errors.is_empty() => Ok(ConfigOutcome::Run(config)),
        _ => Err(ConfigError {
            lines: errors,
            shown: None,
        }),
    }
}

/// Puts the errors in the order of the files and lines they are about (command-line ones
/// first), so a file's problems read from top to bottom.
fn sort_by_place(errors: &mut [String], files: &[String]) {
    let place = |m: &String| -> (usize, usize) {
        let mut parts = m.splitn(3, ':');
        let (Some(file), Some(line)) = (parts.next(), parts.next()) else {
            return (0, 0);
        };
        let Ok(line) = line.parse::<usize>() else {
            return (0, 0);
        };
        let rank = files
            .iter()
            .position(|f| reader::split_section(f).0 == file)
            .map_or(usize::MAX, |i| i + 1);
        (rank, line)
    };
    errors.sort_by_key(place);
}

/// The clap ids of the options whose value is a number: read as uWSGI reads numbers (strtol:
/// the leading integer, the rest ignored, with a warning).
const NUMERIC: [&str; 13] = [
    "processes",
    "threads",
    "listen",
    "buffer_size",
    "limit_post",
    "socket_timeout",
    "http_timeout",
    "harakiri",
    "max_requests",
    "reload_on_rss",
    "worker_reload_mercy",
    "min_worker_lifetime",
    "post_buffering",
];

/// The step from entries to a [`Config`]: each option is looked up in the policy table;
/// implemented ones become `--key=value` arguments for clap (each value checked alone so an
/// error names its origin), in order, so the last single value wins and lists accumulate.
fn to_config(
    entries: &[Entry],
    errors: &mut Vec<String>,
    warnings: &mut Vec<String>,
) -> Option<Config> {
    let cmd = cli::serve_command();
    let mut argv: Vec<String> = vec![cli::BIN_NAME.to_string()];
    let mut flags: BTreeMap<String, (bool, String)> = BTreeMap::new();
    let mut warned: Vec<&str> = Vec::new();
    for e in entries.iter().filter(|e| !e.language) {
        let Some(opt) = options::lookup(&e.key) else {
            continue; // a placeholder
        };
        let cmdline = e.origin.is_command_line();
        let display = if cmdline {
            format!("--{}", e.key)
        } else {
            e.key.clone()
        };
        if let Some(arg) = cli::find_long(&cmd, &e.key) {
            // A reference uWSGI could not expand stays in the value as text; wsgilab would use
            // that text (chdir to a literal `%(base)`), so here it is an error.
            if !e.unresolved.is_empty() {
                errors.extend(e.unresolved.iter().map(|u| e.origin.message(u)));
                continue;
            }
            if let Some(v) = &e.value {
                if let Some((_, _, r)) = ['$', '@', '%']
                    .iter()
                    .find_map(|&s| placeholders::find_reference(v, s).map(|f| (s, f)))
                    .map(|(s, (a, b, _))| (s, a, &v[a..b]))
                {
                    errors.push(e.origin.message(&format!(
                        "the value still holds '{r}' after expansion (it came through a \
                         placeholder whose own reference could not be expanded; uWSGI would use \
                         the text as it is)"
                    )));
                    continue;
                }
            }
            if !arg.get_action().takes_values() {
                let on = !reader::is_false(e.value.as_deref());
                if let Some(v) = e.value.as_deref() {
                    let word = v.trim().to_ascii_lowercase();
                    if on && !matches!(word.as_str(), "" | "true" | "yes" | "on" | "1") {
                        warnings.push(e.origin.message(&format!(
                            "'{}' is a yes/no option: uWSGI reads '{v}' as true (only false, \
                             off, no and 0 are false); write true or false",
                            e.key
                        )));
                    }
                }
                flags.insert(arg.get_id().to_string(), (on, e.key.clone()));
                continue;
            }
            let mut value = e.value.clone();
            if NUMERIC.contains(&arg.get_id().as_str()) {
                if let Some(v) = value.clone() {
                    match placeholders::leading_integer(&v) {
                        // uWSGI reads no number as 0; for post-buffering (no effect in
                        // wsgilab) that is harmless, so it is said, not refused.
                        (None, _) if arg.get_id() == "post_buffering" => {
                            warnings.push(e.origin.message(&format!(
                                "'{}' is read as 0, as uWSGI reads a value without a number \
                                 (write a number of bytes)",
                                e.key
                            )));
                            value = Some("0".to_string());
                        }
                        (None, _) => {
                            errors.push(e.origin.message(&format!(
                                "invalid value '{v}' for '{display}': expected a whole number"
                            )));
                            continue;
                        }
                        (Some(n), rest) => {
                            if !rest.trim().is_empty() {
                                warnings.push(e.origin.message(&format!(
                                    "'{}' is read as {n}, as uWSGI reads numbers: '{}' after \
                                     the number is ignored (write just {n})",
                                    e.key,
                                    rest.trim()
                                )));
                            }
                            let mut n = n;
                            // uWSGI's uwsgi_opt_set_16bit clamps buffer-size at 65535 (so the
                            // common `buffer-size = 65536` is 65535); wsgilab says so.
                            if arg.get_id() == "buffer_size" && n > MAX_BUFFER_SIZE as i64 {
                                warnings.push(e.origin.message(&format!(
                                    "'{}' is read as {MAX_BUFFER_SIZE}: uWSGI keeps the buffer \
                                     size in 16 bits and lowers {n} to its maximum (write \
                                     {MAX_BUFFER_SIZE})",
                                    e.key
                                )));
                                n = MAX_BUFFER_SIZE as i64;
                            }
                            value = Some(n.to_string());
                        }
                    }
                }
            }
            let text = match &value {
                Some(v) => format!("--{}={v}", e.key),
                None => format!("--{}", e.key),
            };
            if let Err(err) = cmd
                .clone()
                .try_get_matches_from([cli::BIN_NAME, text.as_str()])
            {
                if !matches!(
                    err.kind(),
                    ErrorKind::DisplayHelp | ErrorKind::DisplayVersion
                ) {
                    let key = (!cmdline).then_some(e.key.as_str());
                    let mut m = cli::condense_body(&err, key);
                    if cmdline {
                        // clap saw `--key=value`; the user may have typed `--key value`.
                        m = m.replace(
                            &format!("'--{}={}'", e.key, value.unwrap_or_default()),
                            &format!("'--{}'", e.key),
                        );
                    }
                    errors.push(e.origin.message(&m));
                }
                continue;
            }
            argv.push(text);
            continue;
        }
        match opt.policy {
            options::Policy::Warn(reason) => {
                if !warned.contains(&opt.name) {
                    warned.push(opt.name);
                    warnings.push(format!(
                        "'{}' ({}) is accepted for uWSGI compatibility and ignored: {reason}",
                        e.key,
                        e.origin.place()
                    ));
                }
            }
            options::Policy::Refuse(reason) => errors.push(e.origin.message(&format!(
                "'{display}' is a uWSGI option that wsgilab refuses: {reason}"
            ))),
            // Every implemented option is a clap argument (a test checks it); the reader acted
            // on the language's own keys already.
            options::Policy::Implemented | options::Policy::Reader => {}
        }
    }
    for (on, key) in flags.values() {
        if *on {
            argv.push(format!("--{key}"));
        }
    }
    let matches = match cmd.try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => {
            errors.push(cli::condense(&e).message());
            return None;
        }
    };
    let parsed = match cli::ServeArgs::from_arg_matches(&matches) {
        Ok(p) => p,
        Err(e) => {
            errors.push(cli::condense(&e).message());
            return None;
        }
    };
    match cli::build_config(parsed, &matches, Vec::new()) {
        Ok(c) => Some(c),
        Err(e) => {
            errors.extend(e.lines);
            None
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::cli::{find_long, serve_command};
    use super::*;
    use std::collections::BTreeMap;
    use std::net::{IpAddr, Ipv6Addr};

    /// Parses `args` with these in-memory files (paths relative to `/proj`).
    fn parse_with(args: &[&str], files: &[(&str, &str)]) -> Result<ConfigOutcome, ConfigError> {
        let files: BTreeMap<PathBuf, String> = files
            .iter()
            .map(|(p, t)| (Path::new("/proj").join(p), t.to_string()))
            .collect();
        let args: Vec<OsString> = args.iter().map(OsString::from).collect();
        parse_serve_args_in(&args, Path::new("/proj"), &|p| {
            files
                .get(p)
                .cloned()
                .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
        })
    }

    fn cfg(args: &[&str]) -> Config {
        cfg_with(args, &[])
    }

    fn cfg_with(args: &[&str], files: &[(&str, &str)]) -> Config {
        match parse_with(args, files) {
            Ok(ConfigOutcome::Run(c)) => c,
            other => panic!("expected a config for {args:?}, got {other:?}"),
        }
    }

    fn err(args: &[&str]) -> String {
        err_with(args, &[])
    }

    fn err_with(args: &[&str], files: &[(&str, &str)]) -> String {
        match parse_with(args, files) {
            Err(e) => {
                let s = e.to_string();
                assert!(!s.contains('\n'), "error must be one line: {s:?}");
                s
            }
            other => panic!("expected an error for {args:?}, got {other:?}"),
        }
    }

    fn v4(a: [u8; 4], port: u16) -> SocketAddr {
        SocketAddr::from((a, port))
    }

    #[test]
    fn defaults_are_uwsgis() {
        let c = Config::default();
        assert!(c.sockets.is_empty());
        assert_eq!(c.module, None);
        assert_eq!(c.callable, "application");
        assert_eq!(c.processes, 1);
        assert_eq!(c.threads, 1);
        assert!(!c.master);
        assert_eq!(c.listen, 100);
        assert!(c.defer_accept);
        assert_eq!(c.buffer_size, 4096);
        assert_eq!(c.limit_post, 0);
        assert_eq!(c.socket_timeout, 4);
        assert_eq!(c.http_timeout, 60);
        assert_eq!(c.harakiri, 0);
        assert_eq!(c.max_requests, 0);
        assert_eq!(c.reload_on_rss, 0);
        assert_eq!(c.worker_reload_mercy, 60);
        assert_eq!(c.min_worker_lifetime, 10);
        assert!(!c.disable_logging && !c.need_app && !c.lazy_apps);
        assert!(c.warnings.is_empty() && c.ini_files.is_empty());
        assert_eq!(c, cfg(&[]));
    }

    #[test]
    fn socket_flags_keep_their_order_and_protocol() {
        let c = cfg(&[
            "--http-socket",
            ":8000",
            "-s",
            "127.0.0.1:3031",
            "--http11-socket",
            "127.0.0.1:8001",
            "--http",
            "0.0.0.0:8002",
            "--uwsgi-socket",
            "127.0.0.1:3032",
            "--socket=127.0.0.1:3033",
            "--http-socket=127.0.0.1:8003",
        ]);
        let got: Vec<(&str, Protocol, &str)> = c
            .sockets
            .iter()
            .map(|s| (s.spec.as_str(), s.protocol, s.option))
            .collect();
        assert_eq!(
            got,
            vec![
                (":8000", Protocol::Http, "http-socket"),
                ("127.0.0.1:3031", Protocol::Uwsgi, "socket"),
                ("127.0.0.1:8001", Protocol::Http11, "http11-socket"),
                ("0.0.0.0:8002", Protocol::Http, "http"),
                ("127.0.0.1:3032", Protocol::Uwsgi, "uwsgi-socket"),
                ("127.0.0.1:3033", Protocol::Uwsgi, "socket"),
                ("127.0.0.1:8003", Protocol::Http, "http-socket"),
            ]
        );
        assert!(c.warnings.iter().any(|w| w.starts_with("--http:")));
    }

    #[test]
    fn protocol_applies_to_socket_only() {
        let c = cfg(&[
            "--socket",
            ":3031",
            "--protocol",
            "http",
            "--uwsgi-socket",
            ":3032",
        ]);
        assert_eq!(c.sockets[0].protocol, Protocol::Http);
        assert_eq!(c.sockets[1].protocol, Protocol::Uwsgi);
        let c = cfg(&["--socket-protocol=uwsgi", "-s", ":3031"]);
        assert_eq!(c.sockets[0].protocol, Protocol::Uwsgi);
        assert_eq!(
            err(&["--protocol", "fastcgi"]),
            "invalid value 'fastcgi' for '--protocol': expected one of http, uwsgi"
        );
    }

    #[test]
    fn address_forms() {
        let addr = |s: &str| cfg(&["--http-socket", s]).sockets[0].addr;
        assert_eq!(addr(":8000"), v4([0, 0, 0, 0], 8000));
        assert_eq!(addr("127.0.0.1:8000"), v4([127, 0, 0, 1], 8000));
        assert_eq!(addr("0.0.0.0:8000"), v4([0, 0, 0, 0], 8000));
        assert_eq!(addr("localhost:8000"), v4([127, 0, 0, 1], 8000));
        assert_eq!(addr("LOCALHOST:80"), v4([127, 0, 0, 1], 80));
        assert_eq!(
            addr("[::1]:8000"),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::LOCALHOST), 8000)
        );
        assert_eq!(
            addr("[::]:8000"),
            SocketAddr::new(IpAddr::V6(Ipv6Addr::UNSPECIFIED), 8000)
        );
        assert_eq!(addr("127.0.0.1:0"), v4([127, 0, 0, 1], 0));
        let c = cfg(&["--http-socket", "localhost:8000"]);
        assert_eq!(c.sockets[0].spec, "localhost:8000");
    }

    #[test]
    fn bad_addresses_say_why() {
        assert_eq!(
            err(&["--http-socket", ":70000"]),
            "invalid value ':70000' for '--http-socket': port 70000 is out of range (0 to 65535)"
        );
        assert_eq!(
            err(&["--http-socket", "127.0.0.1"]),
            "invalid value '127.0.0.1' for '--http-socket': no port; write it as \
             127.0.0.1:8000 (or :8000 for every interface)"
        );
        assert!(err(&["--http-socket", "127.0.0.1:"]).contains("no port after '127.0.0.1:'"));
        assert!(err(&["--socket", ":http"]).contains("invalid port 'http'"));
        assert!(err(&["--socket", "::1:8000"]).contains("[::1]:8000"));
        assert!(err(&["--socket", "[::1]"]).contains("no port after [::1]"));
        assert!(err(&["--socket", "/tmp/app.sock"]).contains("UNIX sockets are not supported"));
        assert!(err(&["-s", "no.such.host.invalid:80"]).contains("cannot resolve host"));
        assert_eq!(err(&["--http-socket"]), "'--http-socket' needs a value");
    }

    #[test]
    fn app_flags_and_aliases() {
        let c = cfg(&["--module", "mysite.wsgi", "--chdir", "/srv/mysite"]);
        assert_eq!(c.module.as_deref(), Some("mysite.wsgi"));
        assert_eq!(c.chdir, Some(PathBuf::from("/srv/mysite")));
        assert_eq!(cfg(&["-w", "a.b"]).module.as_deref(), Some("a.b"));
        assert_eq!(cfg(&["--wsgi", "a.b"]).module.as_deref(), Some("a.b"));
        assert_eq!(cfg(&["--callable", "app"]).callable, "app");
        assert_eq!(
            cfg(&["--wsgi-file", "app.py"]).wsgi_file,
            Some(PathBuf::from("app.py"))
        );
        assert_eq!(
            cfg(&["--file", "app.wsgi"]).wsgi_file,
            Some(PathBuf::from("app.wsgi"))
        );
        for flag in ["--virtualenv", "--venv", "--home", "--pyhome", "-H"] {
            assert_eq!(
                cfg(&[flag, "/v"]).virtualenv,
                Some(PathBuf::from("/v")),
                "{flag}"
            );
        }
        // One option under all its names: the last wins.
        assert_eq!(
            cfg(&[
                "--home",
                "/a",
                "--venv",
                "/b",
                "-H",
                "/c",
                "--virtualenv",
                "/d"
            ])
            .virtualenv,
            Some(PathBuf::from("/d"))
        );
        let c = cfg(&["--pythonpath", "/a", "--python-path", "/b", "--pp", "/c"]);
        assert_eq!(
            c.pythonpath,
            vec![
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/c")
            ]
        );
        let c = cfg(&["--need-app", "--lazy-apps"]);
        assert!(c.need_app && c.lazy_apps);
        assert!(cfg(&["--lazy"]).lazy_apps);
        // A lone app.py is --wsgi-file.
        assert_eq!(cfg(&["app.py"]).wsgi_file, Some(PathBuf::from("app.py")));
    }

    #[test]
    fn module_and_callable() {
        let c = cfg(&["--module", "mysite.wsgi"]);
        assert_eq!(
            c.module_and_callable(),
            Some(("mysite.wsgi".into(), "application".into()))
        );
        let c = cfg(&["--module", "mysite.wsgi", "--callable", "app"]);
        assert_eq!(
            c.module_and_callable(),
            Some(("mysite.wsgi".into(), "app".into()))
        );
        let c = cfg(&["--module", "flaskr:create_app", "--callable", "app"]);
        assert_eq!(
            c.module_and_callable(),
            Some(("flaskr".into(), "create_app".into()))
        );
        assert_eq!(cfg(&[]).module_and_callable(), None);
    }

    #[test]
    fn process_flags() {
        let c = cfg(&[
            "--master",
            "--processes",
            "4",
            "--threads",
            "2",
            "--enable-threads",
            "--thunder-lock",
            "--die-on-term",
            "--stats",
            "127.0.0.1:9191",
            "--stats-http",
        ]);
        assert!(c.master && c.enable_threads && c.thunder_lock && c.die_on_term && c.stats_http);
        assert_eq!((c.processes, c.threads), (4, 2));
        let stats = c.stats.unwrap();
        assert_eq!(stats.spec, "127.0.0.1:9191");
        assert_eq!(stats.addr, v4([127, 0, 0, 1], 9191));
        let c = cfg(&["-M", "-p", "3", "-T"]);
        assert!(c.master && c.enable_threads);
        assert_eq!(c.processes, 3);
        assert_eq!(cfg(&["--workers", "5"]).processes, 5);
        assert_eq!(cfg(&["--workers=6"]).processes, 6);
        assert_eq!(
            cfg(&["--stats-server", ":9191"]).stats.unwrap().addr,
            v4([0, 0, 0, 0], 9191)
        );
        // uWSGI: the last value of a single-valued option wins.
        assert_eq!(cfg(&["-p", "2", "--processes", "8"]).processes, 8);
        assert!(cfg(&["--master", "--master"]).master);
    }

    #[test]
    fn limit_flags() {
        let c = cfg(&[
            "--listen",
            "1024",
            "--buffer-size",
            "65535",
            "--limit-post",
            "1048576",
            "--socket-timeout",
            "10",
            "--http-timeout",
            "30",
            "--harakiri",
            "20",
            "--max-requests",
            "1000",
            "--reload-on-rss",
            "512",
            "--worker-reload-mercy",
            "5",
            "--min-worker-lifetime",
            "1",
        ]);
        assert_eq!(c.listen, 1024);
        assert_eq!(c.buffer_size, 65535);
        assert_eq!(c.limit_post, 1048576);
        assert_eq!(c.socket_timeout, 10);
        assert_eq!(c.http_timeout, 30);
        assert_eq!(c.harakiri, 20);
        assert_eq!(c.max_requests, 1000);
        assert_eq!(c.reload_on_rss, 512);
        assert_eq!(c.worker_reload_mercy, 5);
        assert_eq!(c.min_worker_lifetime, 1);
        let c = cfg(&["-l", "4", "-b", "8192", "-z", "3", "-t", "2", "-R", "50"]);
        assert_eq!(
            (
                c.listen,
                c.buffer_size,
                c.socket_timeout,
                c.harakiri,
                c.max_requests
            ),
            (4, 8192, 3, 2, 50)
        );
        assert!(cfg(&["-L"]).disable_logging);
        assert!(cfg(&["--disable-logging"]).disable_logging);
        assert!(!cfg(&["--no-defer-accept"]).defer_accept);
        let ini = cfg_with(
            &["--ini", "a.ini"],
            &[("a.ini", "[uwsgi]\nno-defer-accept = true\n")],
        );
        assert!(!ini.defer_accept);
    }

    #[test]
    fn bad_values() {
        assert_eq!(
            err(&["--processes", "abc"]),
            "invalid value 'abc' for '--processes': expected a whole number"
        );
        assert_eq!(
            err(&["-p", "-1"]),
            "invalid value '-1' for '--processes': expected a whole number"
        );
        assert_eq!(
            err(&["--processes", "0"]),
            "invalid value '0' for '--processes': expected at least 1"
        );
        // uWSGI clamps the buffer size to 16 bits (uwsgi_opt_set_16bit); wsgilab says so.
        let c = cfg(&["--buffer-size", "65536"]);
        assert_eq!(c.buffer_size, 65535);
        assert!(
            c.warnings[0].contains("is read as 65535"),
            "{:?}",
            c.warnings
        );
        // uWSGI reads numbers with atoi/strtol: the leading integer, the rest ignored (said).
        let c = cfg(&["--harakiri", "2.5"]);
        assert_eq!(c.harakiri, 2);
        assert!(c.warnings[0].contains("'.5' after the number is ignored"));
        assert_eq!(
            err(&["--harakiri", "soon"]),
            "invalid value 'soon' for '--harakiri': expected a whole number"
        );
        assert!(err(&["--listen", "99999999999"]).contains("too large"));
        assert_eq!(err(&["--processes"]), "'--processes' needs a value");
        assert!(err(&["--plugins", "php"]).contains("plugin 'php' is not available"));
        assert_eq!(
            err(&["--master=yes"]),
            "'--master' takes no value (write just --master)"
        );
    }

    #[test]
    fn unknown_flags_suggest_the_closest() {
        assert_eq!(
            err(&["--htp-socket", ":8000"]),
            "unknown option '--htp-socket' (did you mean --http-socket?)"
        );
        assert_eq!(
            err(&["--proceses", "2"]),
            "unknown option '--proceses' (did you mean --processes?)"
        );
        assert!(err(&["--emperor", "/etc/uwsgi"]).starts_with(
            "'--emperor' is a uWSGI option that wsgilab refuses: wsgilab does not run an emperor"
        ));
        assert_eq!(
            err(&["--frobnicate", "3"]),
            "unknown option '--frobnicate' (not a uWSGI option; see 'wsgilab serve --help')"
        );
        assert!(err(&["stray"]).starts_with("unexpected argument 'stray'"));
        assert!(err(&["--master", "4"]).starts_with("unexpected argument '4'"));
    }

    #[test]
    fn help_lists_groups_and_defaults() {
        let text = match parse_with(&["--help"], &[]).unwrap() {
            ConfigOutcome::Help(t) => t,
            other => panic!("{other:?}"),
        };
        for needle in [
            "Sockets:",
            "App:",
            "Processes:",
            "Limits:",
            "Logging:",
            "--http-socket <ADDR>",
            "--buffer-size <BYTES>",
            "[default: 4096]",
            "[default: 100]",
            "[default: application]",
            "wsgilab serve",
        ] {
            assert!(text.contains(needle), "help lacks {needle:?}:\n{text}");
        }
        assert!(matches!(
            parse_with(&["-h"], &[]).unwrap(),
            ConfigOutcome::Help(_)
        ));
        assert_eq!(
            parse_with(&["--version"], &[]).unwrap(),
            ConfigOutcome::Help(format!("wsgilab {}\n", env!("CARGO_PKG_VERSION")))
        );
    }

    #[test]
    fn no_app_and_no_socket_is_not_an_error() {
        let c = cfg(&["--master"]);
        assert!(c.sockets.is_empty() && c.module.is_none() && c.wsgi_file.is_none());
    }

    #[test]
    fn compat_options_are_accepted_with_a_warning() {
        let c = cfg(&[
            "--vacuum",
            "--plugins",
            "python3,http",
            "--chmod-socket=664",
            "--single-interpreter",
        ]);
        assert_eq!(c.warnings.len(), 4, "{:?}", c.warnings);
        assert!(c.warnings[0].contains("--vacuum"));
        let c = cfg(&["--chmod-socket", "--plugin", "python311"]);
        assert_eq!(c.warnings.len(), 2);
    }

    // ----- ini files -----

    const APP_INI: &str = "\
; a comment
# another comment

[other]
processes = 99
bogus-key = not read

[uwsgi]
http-socket = :8000
module = mysite.wsgi:application
master = true
processes = 4
pythonpath = /a
pythonpath = /b
enable-threads = off
lazy-apps = yes
  harakiri   =   30
";

    #[test]
    fn ini_reads_the_uwsgi_section() {
        let c = cfg_with(&["--ini", "app.ini"], &[("app.ini", APP_INI)]);
        assert_eq!(c.sockets.len(), 1);
        assert_eq!(c.sockets[0].addr, v4([0, 0, 0, 0], 8000));
        assert_eq!(c.module.as_deref(), Some("mysite.wsgi:application"));
        assert!(c.master && c.lazy_apps && !c.enable_threads);
        assert_eq!(c.processes, 4);
        assert_eq!(c.harakiri, 30);
        assert_eq!(c.pythonpath, vec![PathBuf::from("/a"), PathBuf::from("/b")]);
        assert_eq!(c.ini_files, vec!["app.ini".to_string()]);
        // A lone app.ini is read like --ini app.ini.
        assert_eq!(cfg_with(&["app.ini"], &[("app.ini", APP_INI)]), c);
    }

    #[test]
    fn ini_other_section() {
        let c = cfg_with(
            &["--ini", "app.ini:other"],
            &[("app.ini", "[other]\nprocesses=7\n")],
        );
        assert_eq!(c.processes, 7);
        assert_eq!(c.ini_files, vec!["app.ini:other".to_string()]);
        // uWSGI only warns when the section is missing, and reads nothing.
        let c = cfg_with(
            &["--ini", "app.ini"],
            &[("app.ini", "[other]\nprocesses=7\n")],
        );
        assert_eq!(c.processes, 1);
        assert!(c.warnings[0]
            .starts_with("can't find section \"uwsgi\" in INI configuration file app.ini"));
    }

    #[test]
    fn ini_booleans() {
        for (v, expected) in [
            ("true", true),
            ("1", true),
            ("yes", true),
            ("on", true),
            ("TRUE", true),
            ("", true),
            ("false", false),
            ("0", false),
            ("no", false),
            ("off", false),
        ] {
            let text = format!("[uwsgi]\nmaster = {v}\n");
            assert_eq!(
                cfg_with(&["--ini", "a.ini"], &[("a.ini", &text)]).master,
                expected,
                "master = {v}"
            );
        }
        // uWSGI's uwsgi_opt_true: anything but false/off/no/0 is true; wsgilab says so.
        let c = cfg_with(
            &["--ini", "a.ini"],
            &[("a.ini", "[uwsgi]\n\nmaster = maybe\n")],
        );
        assert!(c.master);
        assert_eq!(
            c.warnings,
            [
                "a.ini:3: 'master = maybe': 'master' is a yes/no option: uWSGI reads 'maybe' as \
              true (only false, off, no and 0 are false); write true or false"
            ]
        );
    }

    #[test]
    fn the_last_value_wins_in_uwsgis_order_and_lists_accumulate() {
        // uWSGI reads `--ini` where it stands on the command line (the option is immediate),
        // and the last value of a single-valued option wins: an ini named after
        // `--processes 2` overrides it, one named before does not.
        let args = [
            "--processes",
            "2",
            "--ini",
            "app.ini",
            "--pythonpath",
            "/c",
            "--http-socket",
            ":9000",
        ];
        let c = cfg_with(&args, &[("app.ini", APP_INI)]);
        assert_eq!(c.processes, 4, "the ini comes after --processes 2");
        assert_eq!(c.harakiri, 30, "the ini value stays when not overridden");
        assert_eq!(
            c.pythonpath,
            vec![
                PathBuf::from("/a"),
                PathBuf::from("/b"),
                PathBuf::from("/c")
            ]
        );
        let specs: Vec<&str> = c.sockets.iter().map(|s| s.spec.as_str()).collect();
        assert_eq!(specs, vec![":8000", ":9000"], "in the order given");
        let c = cfg_with(&["--ini", "app.ini", "-p", "2"], &[("app.ini", APP_INI)]);
        assert_eq!(c.processes, 2, "the command line after the ini wins");
        // A lone file is read after every option (getopt moves it to the end).
        let c = cfg_with(&["app.ini", "-p", "2"], &[("app.ini", APP_INI)]);
        assert_eq!(c.processes, 4);
    }

    #[test]
    fn several_ini_files_in_order() {
        let c = cfg_with(
            &["--ini", "base.ini", "--ini", "local.ini"],
            &[
                (
                    "base.ini",
                    "[uwsgi]\nprocesses = 2\nlisten = 50\nsocket = :3031\n",
                ),
                ("local.ini", "[uwsgi]\nprocesses = 3\nsocket = :3032\n"),
            ],
        );
        assert_eq!((c.processes, c.listen), (3, 50));
        assert_eq!(c.sockets.len(), 2);
        assert_eq!(c.ini_files, vec!["base.ini", "local.ini"]);
    }

    #[test]
    fn ini_aliases_and_nested_ini() {
        let c = cfg_with(
            &["--ini", "conf/app.ini"],
            &[
                (
                    "conf/app.ini",
                    "[uwsgi]\nhome = /venv\nworkers = 3\nini = %dmore.ini\n",
                ),
                ("conf/more.ini", "[uwsgi]\nwsgi = x.y\n"),
            ],
        );
        assert_eq!(c.virtualenv, Some(PathBuf::from("/venv")));
        assert_eq!(c.processes, 3);
        assert_eq!(c.module.as_deref(), Some("x.y"));
        assert_eq!(c.ini_files, vec!["conf/app.ini", "/proj/conf/more.ini"]);
        assert!(
            err_with(&["--ini", "a.ini"], &[("a.ini", "[uwsgi]\nini = a.ini\n")])
                .contains("includes itself")
        );
    }

    #[test]
    fn ini_magic_variables() {
        let c = cfg_with(
            &["--ini", "./deploy/mysite.ini"],
            &[(
                "deploy/mysite.ini",
                "[uwsgi]\nchdir = %d\nmodule = %n.wsgi\nwsgi-file = %d%n.py\npythonpath = 100%%\n",
            )],
        );
        assert_eq!(c.chdir, Some(PathBuf::from("/proj/deploy/")));
        assert_eq!(c.module.as_deref(), Some("mysite.wsgi"));
        assert_eq!(c.wsgi_file, Some(PathBuf::from("/proj/deploy/mysite.py")));
        assert_eq!(c.pythonpath, vec![PathBuf::from("100%")]);
    }

    #[test]
    fn every_error_at_once_with_file_line_and_text() {
        let text = "[uwsgi]\nprocesses = abc\nhttp-socket = :99999\nuid = www-data\n\
                    protocol = spdy\nchdir = %(base)/app\nsocket = $(NO_SUCH_PORT)\n";
        let e = parse_with(&["--ini", "app.ini"], &[("app.ini", text)]).unwrap_err();
        assert_eq!(
            e.lines(),
            [
                "app.ini:2: 'processes = abc': invalid value 'abc' for 'processes': expected a \
                 whole number",
                "app.ini:3: 'http-socket = :99999': invalid value ':99999' for 'http-socket': \
                 port 99999 is out of range (0 to 65535)",
                "app.ini:4: 'uid = www-data': 'uid' is a uWSGI option that wsgilab refuses: \
                 wsgilab does not drop privileges yet: ignoring it would run the app as the \
                 user that started it (often root)",
                "app.ini:5: 'protocol = spdy': invalid value 'spdy' for 'protocol': expected one \
                 of http, uwsgi",
                "app.ini:6: 'chdir = %(base)/app': '%(base)': 'base' is not defined (define it \
                 as 'NAME = VALUE' before use, or fix the spelling)",
                "app.ini:7: 'socket = $(NO_SUCH_PORT)': '$(NO_SUCH_PORT)': the environment \
                 variable NO_SUCH_PORT is not set (set it, or guard the line with 'if-env = \
                 NO_SUCH_PORT')",
            ]
        );
        // Unknown keys are placeholders, as in uWSGI: one warning lists those never used.
        let c = cfg_with(
            &["--ini", "app.ini"],
            &[(
                "app.ini",
                "[uwsgi]\nhtp-socket = :8000\nvaccum = true\nbase = /srv\nchdir = %(base)\n",
            )],
        );
        assert_eq!(c.chdir, Some(PathBuf::from("/srv")));
        let w: Vec<&String> = c
            .warnings
            .iter()
            .filter(|w| w.contains("never used"))
            .collect();
        assert_eq!(w.len(), 1, "{:?}", c.warnings);
        assert!(
            w[0].contains("'htp-socket' (app.ini:2, did you mean http-socket?)")
                && w[0].contains("'vaccum' (app.ini:3, did you mean vacuum?)")
                && !w[0].contains("base"),
            "{}",
            w[0]
        );
        // With strict, they are errors.
        let e = parse_with(
            &["--ini", "app.ini", "--strict"],
            &[("app.ini", "[uwsgi]\nhtp-socket = :8000\nvaccum = true\n")],
        )
        .unwrap_err();
        assert_eq!(e.lines().len(), 2, "{e}");
        assert!(
            e.lines()[0].starts_with(
                "app.ini:2: 'htp-socket = :8000': 'htp-socket' is not a \
                                          uWSGI option, and strict mode allows no placeholders \
                                          (did you mean http-socket?)"
            ),
            "{e}"
        );
    }

    #[test]
    fn missing_ini_file_names_the_path() {
        assert_eq!(
            err(&["--ini", "nope.ini"]),
            "ini file 'nope.ini' not found (looked for /proj/nope.ini)"
        );
    }

    #[test]
    fn ini_from_the_real_file_system() {
        let dir = std::env::temp_dir().join(format!("wsgilab-config-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let ini = dir.join("site.ini");
        std::fs::write(&ini, "[uwsgi]\nhttp-socket = 127.0.0.1:8123\nchdir = %d\n").unwrap();
        let args = vec![OsString::from("--ini"), ini.clone().into_os_string()];
        let result = parse_serve_args(&args);
        std::fs::remove_dir_all(&dir).ok();
        let ConfigOutcome::Run(c) = result.unwrap() else {
            panic!("expected a config")
        };
        assert_eq!(c.sockets[0].addr, v4([127, 0, 0, 1], 8123));
        assert_eq!(c.chdir, Some(PathBuf::from(format!("{}/", dir.display()))));
        let missing = parse_serve_args(&[OsString::from("--ini"), OsString::from("/no/such.ini")]);
        assert_eq!(
            missing.unwrap_err().to_string(),
            "ini file '/no/such.ini' not found (looked for /no/such.ini)"
        );
    }

    #[test]
    fn boolean_keys_are_found_by_inspecting_clap() {
        let cmd = serve_command();
        let flag = |k: &str| !find_long(&cmd, k).unwrap().get_action().takes_values();
        assert!(flag("master") && flag("need-app") && flag("disable-logging") && flag("vacuum"));
        assert!(!flag("processes") && !flag("http-socket") && !flag("home"));
    }
}
