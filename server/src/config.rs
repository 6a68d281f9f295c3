//! The server's configuration: uWSGI's command line and `.ini` files, turned into one typed
//! [`Config`].
//!
//! `wsgilab serve ARGS...` accepts what a user would type after `uwsgi`: the same long flag names
//! (and the aliases and short letters uWSGI gives them), the same defaults, repeatable socket
//! flags whose order is kept, and `--ini` files read the way uWSGI reads them (the `[uwsgi]`
//! section, `key = value` lines, repeated keys, yes/no booleans, `%d`/`%n` magic variables).
//!
//! How it works: the command line is parsed by clap once on its own (so its mistakes are
//! reported against the flag the user typed); every `--ini` file is then turned into a list of
//! `--key=value` arguments, each checked alone so that a bad value is reported with its file and
//! line; finally the ini arguments are placed *before* the command line and everything is parsed
//! again with `args_override_self`, so that for single-valued options the command line wins and
//! repeatable options accumulate, ini values first. Every error is condensed to one line.
//!
//! Reading files goes through a callback ([`parse_serve_args_in`]), so the simulated lab can
//! parse a scenario's command line against the scenario's own files.

use std::ffi::OsString;
use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::{Component, Path, PathBuf};

use clap::builder::ArgAction;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, CommandFactory, FromArgMatches, Parser, ValueEnum};

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
}

/// A command line or ini file the server cannot run with. Its `Display` is one line naming the
/// flag (or the file and line) and what is wrong, ready to print after `wsgilab: `.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    message: String,
}

impl ConfigError {
    fn new(message: impl Into<String>) -> Self {
        ConfigError {
            message: message.into(),
        }
    }

    /// The one-line message (the same text as `Display`).
    pub fn message(&self) -> &str {
        &self.message
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
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

/// Parses `wsgilab serve`'s arguments (without `wsgilab` and `serve`), reading ini files from the
/// file system relative to the current directory.
pub fn parse_serve_args(args: &[OsString]) -> Result<ConfigOutcome, ConfigError> {
    let cwd = std::env::current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    parse_serve_args_in(args, &cwd, &|path| std::fs::read_to_string(path))
}

/// [`parse_serve_args`] with the working directory and the file reader given: relative ini paths
/// are joined to `cwd` and read with `read_file` (the simulation passes the scenario's files).
pub fn parse_serve_args_in(
    args: &[OsString],
    cwd: &Path,
    read_file: &dyn Fn(&Path) -> io::Result<String>,
) -> Result<ConfigOutcome, ConfigError> {
    let cmd = serve_command();

    // 1. The command line alone: its own mistakes, help, and the ini files it names.
    let mut argv: Vec<OsString> = vec![OsString::from(BIN_NAME)];
    argv.extend(args.iter().cloned());
    let cli = match cmd.clone().try_get_matches_from(&argv) {
        Ok(m) => m,
        Err(e) => return help_or_error(e),
    };
    let cli_args = ServeArgs::from_arg_matches(&cli).map_err(|e| condense(&e))?;
    let mut ini_specs = cli_args.ini.clone();
    for file in &cli_args.files {
        match lone_file_kind(file) {
            LoneFile::Ini => ini_specs.push(file.clone()),
            LoneFile::Python => {}
            LoneFile::Other => {
                return Err(ConfigError::new(format!(
                    "unexpected argument '{file}' (options start with '--'; a lone file must be \
                     a .ini, .py or .wsgi file)"
                )))
            }
        }
    }

    // 2. The ini files, each entry checked on its own so errors name the file and line.
    let mut loader = IniLoader {
        cmd: &cmd,
        cwd,
        read_file,
        args: Vec::new(),
        files: Vec::new(),
        stack: Vec::new(),
    };
    for spec in &ini_specs {
        loader.load(spec, None)?;
    }
    if loader
        .args
        .iter()
        .any(|a| a == "--help" || a == "--version")
    {
        let mut argv = vec![OsString::from(BIN_NAME)];
        argv.extend(loader.args.iter().map(OsString::from));
        if let Err(e) = cmd.clone().try_get_matches_from(argv) {
            return help_or_error(e);
        }
    }

    // 3. Everything together: ini first, so the command line wins for single values.
    let mut all: Vec<OsString> = vec![OsString::from(BIN_NAME)];
    all.extend(loader.args.iter().map(OsString::from));
    all.extend(args.iter().cloned());
    let matches = match cmd.clone().try_get_matches_from(&all) {
        Ok(m) => m,
        Err(e) => return help_or_error(e),
    };
    let parsed = ServeArgs::from_arg_matches(&matches).map_err(|e| condense(&e))?;
    let ini_files = loader.files;
    build_config(parsed, &matches, ini_files).map(ConfigOutcome::Run)
}

// ---------------------------------------------------------------------------------------------
// The clap command
// ---------------------------------------------------------------------------------------------

const BIN_NAME: &str = "wsgilab serve";

const ABOUT: &str = "Serve a WSGI app the way uWSGI does: type your uWSGI command line with \
`uwsgi` replaced by `wsgilab serve`. Options take uWSGI's names and defaults, and may also come \
from --ini files ([uwsgi] section, `key = value`, command line wins).";

const AFTER_HELP: &str = "Examples:
  wsgilab serve --http-socket :8000 --module mysite.wsgi --master --processes 2
  wsgilab serve --ini uwsgi.ini --processes 4
  wsgilab serve --socket 127.0.0.1:3031 --chdir /srv/mysite -w mysite.wsgi -H /srv/venv

Addresses: :8000 (every IPv4 interface), 127.0.0.1:8000, [::1]:8000, localhost:8000.";

/// The raw clap view of the command line; [`build_config`] turns it into a [`Config`].
#[derive(Parser, Debug)]
#[command(
    name = "wsgilab",
    bin_name = BIN_NAME,
    about = ABOUT,
    after_help = AFTER_HELP,
    version,
    args_override_self = true,
    allow_negative_numbers = true,
    max_term_width = 100
)]
struct ServeArgs {
    // ----- sockets -----
    /// Bind an HTTP socket; the connection is closed after each response
    #[arg(long = "http-socket", value_name = "ADDR", value_parser = parse_addr, action = ArgAction::Append, help_heading = "Sockets")]
    http_socket: Vec<Addr>,

    /// Like --http-socket (uWSGI would start a separate HTTP router process)
    #[arg(long = "http", value_name = "ADDR", value_parser = parse_addr, action = ArgAction::Append, help_heading = "Sockets")]
    http: Vec<Addr>,

    /// Bind an HTTP/1.1 socket with keep-alive
    #[arg(long = "http11-socket", value_name = "ADDR", value_parser = parse_addr, action = ArgAction::Append, help_heading = "Sockets")]
    http11_socket: Vec<Addr>,

    /// Bind a socket speaking the default protocol (uwsgi, or --protocol)
    #[arg(short = 's', long = "socket", value_name = "ADDR", value_parser = parse_addr, action = ArgAction::Append, help_heading = "Sockets")]
    socket: Vec<Addr>,

    /// Bind a socket speaking the uwsgi binary protocol (for nginx's uwsgi_pass)
    #[arg(long = "uwsgi-socket", value_name = "ADDR", value_parser = parse_addr, action = ArgAction::Append, help_heading = "Sockets")]
    uwsgi_socket: Vec<Addr>,

    /// The protocol of --socket sockets [default: uwsgi]
    #[arg(
        long = "protocol",
        visible_alias = "socket-protocol",
        value_name = "NAME",
        value_enum,
        help_heading = "Sockets"
    )]
    protocol: Option<ProtocolArg>,

    // ----- app -----
    /// Import this module and serve its callable (dotted.path[:callable])
    #[arg(
        short = 'w',
        long = "module",
        visible_alias = "wsgi",
        value_name = "MODULE",
        help_heading = "App"
    )]
    module: Option<String>,

    /// The name of the WSGI callable
    #[arg(
        long = "callable",
        value_name = "NAME",
        default_value = "application",
        help_heading = "App"
    )]
    callable: String,

    /// Load this Python file as the app
    #[arg(
        long = "wsgi-file",
        visible_alias = "file",
        value_name = "FILE",
        help_heading = "App"
    )]
    wsgi_file: Option<PathBuf>,

    /// Change to this directory before loading the app
    #[arg(long = "chdir", value_name = "DIR", help_heading = "App")]
    chdir: Option<PathBuf>,

    /// The virtualenv (Python home) to run in
    #[arg(short = 'H', long = "virtualenv", visible_aliases = ["venv", "home", "pyhome"], value_name = "DIR", help_heading = "App")]
    virtualenv: Option<PathBuf>,

    /// Add a directory to sys.path (repeatable)
    #[arg(long = "pythonpath", visible_aliases = ["python-path", "pp"], value_name = "DIR", action = ArgAction::Append, help_heading = "App")]
    pythonpath: Vec<PathBuf>,

    /// Exit if the app cannot be loaded (instead of answering 500)
    #[arg(long = "need-app", help_heading = "App")]
    need_app: bool,

    /// Load the app in each worker after it is spawned, not once in the master
    #[arg(long = "lazy-apps", help_heading = "App")]
    lazy_apps: bool,

    /// uWSGI's older lazy mode: treated as --lazy-apps
    #[arg(long = "lazy", help_heading = "App")]
    lazy: bool,

    // ----- processes -----
    /// Run a master process that supervises the workers
    #[arg(short = 'M', long = "master", help_heading = "Processes")]
    master: bool,

    /// Number of worker processes
    #[arg(short = 'p', long = "processes", visible_alias = "workers", value_name = "N", default_value_t = 1, value_parser = parse_at_least_one, help_heading = "Processes")]
    processes: u32,

    /// Request threads per worker
    #[arg(long = "threads", value_name = "N", default_value_t = 1, value_parser = parse_at_least_one, help_heading = "Processes")]
    threads: u32,

    /// Let the app start Python threads
    #[arg(short = 'T', long = "enable-threads", help_heading = "Processes")]
    enable_threads: bool,

    /// Serialise accept() between workers
    #[arg(long = "thunder-lock", help_heading = "Processes")]
    thunder_lock: bool,

    /// Stop on SIGTERM (uWSGI 2.0 reloads on SIGTERM otherwise)
    #[arg(long = "die-on-term", help_heading = "Processes")]
    die_on_term: bool,

    /// Serve stats as JSON on this address
    #[arg(long = "stats", visible_alias = "stats-server", value_name = "ADDR", value_parser = parse_addr, help_heading = "Processes")]
    stats: Option<Addr>,

    /// Prefix the stats JSON with HTTP headers
    #[arg(long = "stats-http", help_heading = "Processes")]
    stats_http: bool,

    // ----- limits -----
    /// Listen backlog (the accept queue)
    #[arg(short = 'l', long = "listen", value_name = "N", default_value_t = 100, value_parser = parse_u32, help_heading = "Limits")]
    listen: u32,

    /// Accept a connection as soon as its handshake completes, not when its request arrives
    #[arg(long = "no-defer-accept", help_heading = "Limits")]
    no_defer_accept: bool,

    /// Largest request head in bytes (at most 65535)
    #[arg(short = 'b', long = "buffer-size", value_name = "BYTES", default_value_t = 4096, value_parser = parse_buffer_size, help_heading = "Limits")]
    buffer_size: usize,

    /// Largest request body in bytes (0 = unlimited)
    #[arg(long = "limit-post", value_name = "BYTES", default_value_t = 0, value_parser = parse_u64, help_heading = "Limits")]
    limit_post: u64,

    /// Seconds to wait on a client socket
    #[arg(short = 'z', long = "socket-timeout", value_name = "SECS", default_value_t = 4, value_parser = parse_u64, help_heading = "Limits")]
    socket_timeout: u64,

    /// Seconds the HTTP side waits for a client
    #[arg(long = "http-timeout", value_name = "SECS", default_value_t = 60, value_parser = parse_u64, help_heading = "Limits")]
    http_timeout: u64,

    /// Kill a worker whose request runs longer than this (seconds, 0 = off)
    #[arg(short = 't', long = "harakiri", value_name = "SECS", default_value_t = 0, value_parser = parse_u64, help_heading = "Limits")]
    harakiri: u64,

    /// Recycle a worker after this many requests (0 = off)
    #[arg(short = 'R', long = "max-requests", value_name = "N", default_value_t = 0, value_parser = parse_u64, help_heading = "Limits")]
    max_requests: u64,

    /// Recycle a worker whose RSS exceeds this many megabytes (0 = off)
    #[arg(long = "reload-on-rss", value_name = "MB", default_value_t = 0, value_parser = parse_u64, help_heading = "Limits")]
    reload_on_rss: u64,

    /// Seconds a worker may take to stop gracefully
    #[arg(long = "worker-reload-mercy", value_name = "SECS", default_value_t = 60, value_parser = parse_u64, help_heading = "Limits")]
    worker_reload_mercy: u64,

    /// Seconds a worker must live before it may be recycled
    #[arg(long = "min-worker-lifetime", value_name = "SECS", default_value_t = 10, value_parser = parse_u64, help_heading = "Limits")]
    min_worker_lifetime: u64,

    // ----- logging -----
    /// No per-request log lines
    #[arg(short = 'L', long = "disable-logging", help_heading = "Logging")]
    disable_logging: bool,

    // ----- config files -----
    /// Read options from the [uwsgi] section of an ini file (FILE[:section]); repeatable
    #[arg(long = "ini", value_name = "FILE", action = ArgAction::Append, help_heading = "Config files")]
    ini: Vec<String>,

    /// A lone app.ini (read like --ini) or app.py/app.wsgi (like --wsgi-file), as uWSGI allows
    #[arg(value_name = "FILE", help_heading = "Config files")]
    files: Vec<String>,

    // ----- accepted for compatibility -----
    /// Accepted, no effect (wsgilab has no UNIX sockets to remove)
    #[arg(
        long = "vacuum",
        help_heading = "Accepted for uWSGI compatibility (no effect)"
    )]
    vacuum: bool,

    /// Accepted for python and http plugins (built in)
    #[arg(long = "plugins", visible_alias = "plugin", value_name = "LIST", value_parser = parse_plugins, action = ArgAction::Append, help_heading = "Accepted for uWSGI compatibility (no effect)")]
    plugins: Vec<String>,

    /// Accepted, no effect (wsgilab has no UNIX sockets)
    #[arg(short = 'C', long = "chmod-socket", visible_alias = "chmod", value_name = "MODE", num_args = 0..=1, default_missing_value = "", help_heading = "Accepted for uWSGI compatibility (no effect)")]
    chmod_socket: Option<String>,

    /// Accepted, no effect (one interpreter per process)
    #[arg(
        short = 'i',
        long = "single-interpreter",
        help_heading = "Accepted for uWSGI compatibility (no effect)"
    )]
    single_interpreter: bool,

    /// Accepted, no effect
    #[arg(
        long = "no-orphans",
        help_heading = "Accepted for uWSGI compatibility (no effect)"
    )]
    no_orphans: bool,

    /// Accepted, no effect
    #[arg(
        long = "auto-procname",
        help_heading = "Accepted for uWSGI compatibility (no effect)"
    )]
    auto_procname: bool,

    /// Accepted, no effect (bodies are always readable by the app)
    #[arg(long = "post-buffering", value_name = "BYTES", value_parser = parse_u64, help_heading = "Accepted for uWSGI compatibility (no effect)")]
    post_buffering: Option<u64>,

    /// Accepted, no effect
    #[arg(
        long = "ignore-sigpipe",
        help_heading = "Accepted for uWSGI compatibility (no effect)"
    )]
    ignore_sigpipe: bool,

    /// Accepted, no effect
    #[arg(
        long = "ignore-write-errors",
        help_heading = "Accepted for uWSGI compatibility (no effect)"
    )]
    ignore_write_errors: bool,

    /// Accepted, no effect
    #[arg(
        long = "disable-write-exception",
        help_heading = "Accepted for uWSGI compatibility (no effect)"
    )]
    disable_write_exception: bool,
}

/// `--protocol`'s values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum ProtocolArg {
    Http,
    Uwsgi,
}

fn serve_command() -> clap::Command {
    ServeArgs::command()
}

/// An address as typed and as resolved (the value of every ADDR option).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Addr {
    spec: String,
    addr: SocketAddr,
}

fn build_config(
    a: ServeArgs,
    matches: &ArgMatches,
    ini_files: Vec<String>,
) -> Result<Config, ConfigError> {
    // Sockets from every socket option, in the order they appeared.
    let default_protocol = match a.protocol {
        Some(ProtocolArg::Http) => Protocol::Http,
        Some(ProtocolArg::Uwsgi) | None => Protocol::Uwsgi,
    };
    let mut indexed: Vec<(usize, SocketSpec)> = Vec::new();
    let groups: [(&str, &'static str, Protocol, &Vec<Addr>); 5] = [
        ("http_socket", "http-socket", Protocol::Http, &a.http_socket),
        ("http", "http", Protocol::Http, &a.http),
        (
            "http11_socket",
            "http11-socket",
            Protocol::Http11,
            &a.http11_socket,
        ),
        ("socket", "socket", default_protocol, &a.socket),
        (
            "uwsgi_socket",
            "uwsgi-socket",
            Protocol::Uwsgi,
            &a.uwsgi_socket,
        ),
    ];
    for (id, option, protocol, addrs) in groups {
        let indices: Vec<usize> = matches
            .indices_of(id)
            .map(|i| i.collect())
            .unwrap_or_default();
        for (i, addr) in addrs.iter().enumerate() {
            let index = indices.get(i).copied().unwrap_or(usize::MAX);
            indexed.push((
                index,
                SocketSpec {
                    spec: addr.spec.clone(),
                    addr: addr.addr,
                    protocol,
                    option,
                },
            ));
        }
    }
    indexed.sort_by_key(|(i, _)| *i);
    let sockets = indexed.into_iter().map(|(_, s)| s).collect();

    // A lone app.py / app.wsgi is --wsgi-file, as uWSGI's python plugin treats it.
    let mut wsgi_file = a.wsgi_file;
    if let Some(file) = a
        .files
        .iter()
        .rev()
        .find(|f| matches!(lone_file_kind(f), LoneFile::Python))
    {
        wsgi_file = Some(PathBuf::from(file));
    }

    let mut warnings = Vec::new();
    if !a.http.is_empty() {
        warnings.push(
            "--http: uWSGI would start a separate HTTP router process in front of the workers; \
             wsgilab's workers answer HTTP themselves, as with --http-socket"
                .to_string(),
        );
    }
    let no_effect: [(&str, bool); 9] = [
        ("vacuum", a.vacuum),
        ("plugins", !a.plugins.is_empty()),
        ("chmod-socket", a.chmod_socket.is_some()),
        ("single-interpreter", a.single_interpreter),
        ("no-orphans", a.no_orphans),
        ("auto-procname", a.auto_procname),
        ("post-buffering", a.post_buffering.is_some()),
        ("ignore-sigpipe", a.ignore_sigpipe),
        ("ignore-write-errors", a.ignore_write_errors),
    ];
    for (name, given) in no_effect
        .into_iter()
        .chain([("disable-write-exception", a.disable_write_exception)])
    {
        if given {
            warnings.push(format!(
                "--{name} is accepted for uWSGI compatibility and has no effect in wsgilab"
            ));
        }
    }

    Ok(Config {
        sockets,
        module: a.module,
        callable: a.callable,
        wsgi_file,
        chdir: a.chdir,
        virtualenv: a.virtualenv,
        pythonpath: a.pythonpath,
        need_app: a.need_app,
        lazy_apps: a.lazy_apps || a.lazy,
        master: a.master,
        processes: a.processes,
        threads: a.threads,
        enable_threads: a.enable_threads,
        thunder_lock: a.thunder_lock,
        die_on_term: a.die_on_term,
        stats: a.stats.map(|s| StatsSpec {
            spec: s.spec,
            addr: s.addr,
        }),
        stats_http: a.stats_http,
        listen: a.listen,
        buffer_size: a.buffer_size,
        limit_post: a.limit_post,
        socket_timeout: a.socket_timeout,
        defer_accept: !a.no_defer_accept,
        http_timeout: a.http_timeout,
        harakiri: a.harakiri,
        max_requests: a.max_requests,
        reload_on_rss: a.reload_on_rss,
        worker_reload_mercy: a.worker_reload_mercy,
        min_worker_lifetime: a.min_worker_lifetime,
        disable_logging: a.disable_logging,
        ini_files,
        warnings,
    })
}

enum LoneFile {
    Ini,
    Python,
    Other,
}

/// What a positional argument is, by its extension (`app.ini[:section]`, `app.py`, `app.wsgi`).
fn lone_file_kind(file: &str) -> LoneFile {
    let (path, _) = split_ini_section(file);
    if path.ends_with(".ini") {
        LoneFile::Ini
    } else if file.ends_with(".py") || file.ends_with(".wsgi") {
        LoneFile::Python
    } else {
        LoneFile::Other
    }
}

// ---------------------------------------------------------------------------------------------
// Values
// ---------------------------------------------------------------------------------------------

/// Parses an address in uWSGI's forms: `:8000`, `127.0.0.1:8000`, `[::1]:8000`, `localhost:8000`
/// or `host:8000` (resolved, IPv4 preferred, like uWSGI's `gethostbyname`).
fn parse_addr(spec: &str) -> Result<Addr, String> {
    let example = "write it as HOST:PORT, e.g. 127.0.0.1:8000 or :8000";
    if spec.is_empty() {
        return Err(format!("expected an address; {example}"));
    }
    let (host, port) =
        if let Some(rest) = spec.strip_prefix('[') {
            let (host, after) = rest
                .split_once(']')
                .ok_or_else(|| format!("missing ']' after the IPv6 address; {example}"))?;
            let port = after
                .strip_prefix(':')
                .ok_or_else(|| format!("no port after [{host}]; write it as [{host}]:8000"))?;
            (host, port)
        } else {
            match spec.rsplit_once(':') {
                Some((host, _)) if host.contains(':') => return Err(
                    "an IPv6 address goes in brackets with its port after them, e.g. [::1]:8000"
                        .to_string(),
                ),
                Some((host, port)) => (host, port),
                None if spec.contains('/') || spec.ends_with(".sock") || spec.starts_with('@') => {
                    return Err(
                        "UNIX sockets are not supported by wsgilab; use a TCP address \
                            such as 127.0.0.1:8000"
                            .to_string(),
                    )
                }
                None => {
                    return Err(format!(
                        "no port; write it as {spec}:8000 (or :8000 for every interface)"
                    ))
                }
            }
        };
    if port.is_empty() {
        return Err(format!("no port after '{host}:'; {example}"));
    }
    if !port.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!(
            "invalid port '{port}': expected a number from 0 to 65535"
        ));
    }
    let port: u16 = port
        .parse()
        .map_err(|_| format!("port {port} is out of range (0 to 65535)"))?;
    let ip: IpAddr = if host.is_empty() || host == "*" {
        IpAddr::V4(Ipv4Addr::UNSPECIFIED)
    } else if host.eq_ignore_ascii_case("localhost") {
        IpAddr::V4(Ipv4Addr::LOCALHOST)
    } else if let Ok(ip) = host.parse::<IpAddr>() {
        ip
    } else {
        let resolved: Vec<SocketAddr> = (host, port)
            .to_socket_addrs()
            .map_err(|_| format!("cannot resolve host '{host}'; use an IP address"))?
            .collect();
        resolved
            .iter()
            .find(|a| a.is_ipv4())
            .or(resolved.first())
            .map(|a| a.ip())
            .ok_or_else(|| format!("cannot resolve host '{host}'; use an IP address"))?
    };
    Ok(Addr {
        spec: spec.to_string(),
        addr: SocketAddr::new(ip, port),
    })
}

fn parse_u64(s: &str) -> Result<u64, String> {
    if s.is_empty() || !s.bytes().all(|b| b.is_ascii_digit()) {
        return Err("expected a whole number".to_string());
    }
    s.parse::<u64>()
        .map_err(|_| format!("the number is too large (at most {})", u64::MAX))
}

fn parse_u32(s: &str) -> Result<u32, String> {
    let n = parse_u64(s)?;
    u32::try_from(n).map_err(|_| format!("the number is too large (at most {})", u32::MAX))
}

fn parse_at_least_one(s: &str) -> Result<u32, String> {
    match parse_u32(s)? {
        0 => Err("expected at least 1".to_string()),
        n => Ok(n),
    }
}

fn parse_buffer_size(s: &str) -> Result<usize, String> {
    match parse_u64(s)? {
        0 => Err("expected at least 1".to_string()),
        n if n > MAX_BUFFER_SIZE as u64 => Err(format!(
            "the maximum is {MAX_BUFFER_SIZE} (uWSGI keeps the buffer size in 16 bits)"
        )),
        n => Ok(n as usize),
    }
}

/// `--plugins python3,http`: the Python and HTTP plugins are built in; any other is refused.
fn parse_plugins(s: &str) -> Result<String, String> {
    for name in s.split(',').map(str::trim).filter(|n| !n.is_empty()) {
        let base = name
            .trim_end_matches("_plugin.so")
            .trim_end_matches("_plugin");
        let python = base
            .strip_prefix("python")
            .is_some_and(|v| v.bytes().all(|b| b.is_ascii_digit()));
        if !(python || base == "http" || base == "corerouter") {
            return Err(format!(
                "plugin '{name}' is not available: wsgilab serves WSGI (Python) apps over \
                 HTTP and uwsgi only"
            ));
        }
    }
    Ok(s.to_string())
}

// ---------------------------------------------------------------------------------------------
// Ini files
// ---------------------------------------------------------------------------------------------

/// Splits `file.ini:section` (uWSGI's form) into the path and the section; without a section,
/// or when the part after the last ':' looks like a path, the section is `uwsgi`.
fn split_ini_section(spec: &str) -> (&str, &str) {
    match spec.rsplit_once(':') {
        Some((path, section))
            if !path.is_empty() && !section.is_empty() && !section.contains('/') =>
        {
            (path, section)
        }
        _ => (spec, "uwsgi"),
    }
}

struct IniLoader<'a> {
    cmd: &'a clap::Command,
    cwd: &'a Path,
    read_file: &'a dyn Fn(&Path) -> io::Result<String>,
    /// The arguments the ini files stand for, in order (`--key=value` or `--flag`).
    args: Vec<String>,
    /// The files read, as typed.
    files: Vec<String>,
    /// The files being read (for nested `ini = ...` loops).
    stack: Vec<PathBuf>,
}

impl IniLoader<'_> {
    /// Reads `spec` (`FILE[:section]`); `from` is the (file, line) of the `ini =` that named it.
    fn load(&mut self, spec: &str, from: Option<(&str, usize)>) -> Result<(), ConfigError> {
        let at = |msg: String| match from {
            Some((file, line)) => ConfigError::new(format!("{file} line {line}: {msg}")),
            None => ConfigError::new(msg),
        };
        let (path_str, section) = split_ini_section(spec);
        let full = normalize(&self.cwd.join(path_str));
        if self.stack.contains(&full) {
            return Err(at(format!(
                "ini file '{path_str}' includes itself (through 'ini = ...')"
            )));
        }
        if self.stack.len() >= 16 {
            return Err(at(format!("ini files nested too deeply at '{path_str}'")));
        }
        let text = (self.read_file)(&full).map_err(|e| {
            if e.kind() == io::ErrorKind::NotFound {
                at(format!(
                    "ini file '{path_str}' not found (looked for {})",
                    full.display()
                ))
            } else {
                at(format!("cannot read ini file '{path_str}': {e}"))
            }
        })?;
        self.files.push(spec.to_string());
        self.stack.push(full.clone());
        let result = self.load_text(path_str, &full, section, &text);
        self.stack.pop();
        result
    }

    fn load_text(
        &mut self,
        name: &str,
        full: &Path,
        section: &str,
        text: &str,
    ) -> Result<(), ConfigError> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut current: Option<&str> = None;
        let mut found_section = false;
        for (i, raw) in text.lines().enumerate() {
            let line_no = i + 1;
            let err = |msg: String| ConfigError::new(format!("{name} line {line_no}: {msg}"));
            let line = raw.trim();
            if line.is_empty() || line.starts_with(';') || line.starts_with('#') {
                continue;
            }
            if let Some(rest) = line.strip_prefix('[') {
                let header = rest
                    .strip_suffix(']')
                    .ok_or_else(|| err(format!("expected '[section]', found '{line}'")))?;
                current = Some(header.trim());
                found_section |= header.trim() == section;
                continue;
            }
            if current != Some(section) {
                continue; // other sections are not uWSGI's business
            }
            let (key, value) = line
                .split_once('=')
                .ok_or_else(|| err(format!("expected 'key = value', found '{line}'")))?;
            let key = key.trim();
            let value = expand_magic(value.trim(), full);
            if key.is_empty() {
                return Err(err(format!("expected 'key = value', found '{line}'")));
            }
            self.entry(name, line_no, key, &value)?;
        }
        if !found_section {
            return Err(ConfigError::new(format!(
                "ini file '{name}' has no [{section}] section{}",
                if section == "uwsgi" {
                    " (uWSGI reads only that one; use --ini FILE:SECTION for another)"
                } else {
                    ""
                }
            )));
        }
        Ok(())
    }

    /// One `key = value` line of the section: checked alone, then recorded as an argument.
    fn entry(
        &mut self,
        file: &str,
        line: usize,
        key: &str,
        value: &str,
    ) -> Result<(), ConfigError> {
        let at = |msg: String| ConfigError::new(format!("{file} line {line}: {msg}"));
        let Some(arg) = find_long(self.cmd, key) else {
            let hint = suggest(self.cmd, key)
                .map(|s| format!(" (did you mean {s}?)"))
                .unwrap_or_default();
            return Err(at(format!("unknown option '{key}'{hint}")));
        };
        if arg.get_id() == "ini" {
            return self.load(value, Some((file, line)));
        }
        let flag_like = !arg.get_action().takes_values();
        let argument = if flag_like {
            match value.to_ascii_lowercase().as_str() {
                "" | "true" | "1" | "yes" | "on" => format!("--{key}"),
                "false" | "0" | "no" | "off" => return Ok(()),
                _ => {
                    return Err(at(format!(
                        "'{key}' is a yes/no option: expected true or false, found '{value}'"
                    )))
                }
            }
        } else {
            format!("--{key}={value}")
        };
        // Check this entry on its own so that a bad value names the file and line.
        if let Err(e) = self
            .cmd
            .clone()
            .try_get_matches_from([BIN_NAME, argument.as_str()])
        {
            if !matches!(e.kind(), ErrorKind::DisplayHelp | ErrorKind::DisplayVersion) {
                return Err(at(condense_body(&e, Some(key))));
            }
        }
        self.args.push(argument);
        Ok(())
    }
}

/// Expands uWSGI's magic variables in an ini value: `%d` the file's directory (with a trailing
/// slash), `%n` its name without extension, `%s` its name, `%e` its extension, `%p` its full
/// path, `%c` the name of its directory, `%%` a percent sign. Others are left as they are.
fn expand_magic(value: &str, file: &Path) -> String {
    if !value.contains('%') {
        return value.to_string();
    }
    let dir = file.parent().unwrap_or(Path::new("/"));
    let mut dir_s = dir.display().to_string();
    if !dir_s.ends_with('/') {
        dir_s.push('/');
    }
    let os = |s: Option<&std::ffi::OsStr>| {
        s.map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default()
    };
    let mut out = String::with_capacity(value.len());
    let mut chars = value.chars().peekable();
    while let Some(c) = chars.next() {
        if c != '%' {
            out.push(c);
            continue;
        }
        let replacement = match chars.peek() {
            Some('d') => dir_s.clone(),
            Some('n') => os(file.file_stem()),
            Some('s') => os(file.file_name()),
            Some('e') => os(file.extension()),
            Some('p') => file.display().to_string(),
            Some('c') => os(dir.file_name()),
            Some('%') => "%".to_string(),
            _ => {
                out.push('%');
                continue;
            }
        };
        chars.next();
        out.push_str(&replacement);
    }
    out
}

/// Removes `.` components (and resolves `..` lexically) so `%d` reads well.
fn normalize(path: &Path) -> PathBuf {
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                if !out.pop() {
                    out.push("..");
                }
            }
            other => out.push(other.as_os_str()),
        }
    }
    out
}

/// The argument whose long name or alias is `key`.
fn find_long<'c>(cmd: &'c clap::Command, key: &str) -> Option<&'c clap::Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(key) || a.get_all_aliases().is_some_and(|al| al.contains(&key))
    })
}

/// The known long name closest to `key`, if one is close.
fn suggest(cmd: &clap::Command, key: &str) -> Option<String> {
    let dashed = key.replace('_', "-");
    let names: Vec<&str> = cmd
        .get_arguments()
        .flat_map(|a| {
            a.get_long()
                .into_iter()
                .chain(a.get_all_aliases().unwrap_or_default())
        })
        .collect();
    if names.contains(&dashed.as_str()) {
        return Some(dashed);
    }
    let limit = if key.len() > 8 { 3 } else { 2 };
    names
        .into_iter()
        .map(|n| (levenshtein(&dashed, n), n))
        .filter(|(d, _)| *d <= limit)
        .min()
        .map(|(_, n)| n.to_string())
}

fn levenshtein(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    for (i, ca) in a.chars().enumerate() {
        let mut cur = vec![i + 1];
        for (j, cb) in b.iter().enumerate() {
            let cost = usize::from(ca != *cb);
            cur.push((prev[j] + cost).min(prev[j + 1] + 1).min(cur[j] + 1));
        }
        prev = cur;
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Errors: clap's multi-line messages condensed to one line
// ---------------------------------------------------------------------------------------------

fn help_or_error(e: clap::Error) -> Result<ConfigOutcome, ConfigError> {
    match e.kind() {
        ErrorKind::DisplayHelp | ErrorKind::DisplayHelpOnMissingArgumentOrSubcommand => {
            Ok(ConfigOutcome::Help(e.to_string()))
        }
        ErrorKind::DisplayVersion => Ok(ConfigOutcome::Help(e.to_string())),
        _ => Err(condense(&e)),
    }
}

fn condense(e: &clap::Error) -> ConfigError {
    ConfigError::new(condense_body(e, None))
}

fn context_str(e: &clap::Error, kind: ContextKind) -> Option<String> {
    match e.get(kind)? {
        ContextValue::String(s) => Some(s.clone()),
        ContextValue::Strings(v) => Some(v.join(", ")),
        ContextValue::StyledStr(s) => Some(s.to_string()),
        ContextValue::StyledStrs(v) => Some(
            v.iter()
                .map(|s| s.to_string())
                .collect::<Vec<_>>()
                .join("; "),
        ),
        ContextValue::Number(n) => Some(n.to_string()),
        _ => None,
    }
}

/// The flag clap names, without its value placeholder: `--processes <N>` → `--processes`; in an
/// ini file, the key as written.
fn flag_name(e: &clap::Error, ini_key: Option<&str>) -> String {
    if let Some(key) = ini_key {
        return key.to_string();
    }
    let arg = context_str(e, ContextKind::InvalidArg).unwrap_or_default();
    let arg = arg.split([' ', '=']).next().unwrap_or("").to_string();
    // `-p, --processes` style: keep the long form when clap gives both.
    arg.rsplit(", ").next().unwrap_or(&arg).to_string()
}

fn condense_body(e: &clap::Error, ini_key: Option<&str>) -> String {
    let flag = flag_name(e, ini_key);
    let value = context_str(e, ContextKind::InvalidValue);
    match e.kind() {
        ErrorKind::UnknownArgument => {
            let arg = context_str(e, ContextKind::InvalidArg).unwrap_or_default();
            let arg = arg.split('=').next().unwrap_or("").to_string();
            match context_str(e, ContextKind::SuggestedArg) {
                Some(s) => format!("unknown option '{arg}' (did you mean {s}?)"),
                None if arg.starts_with('-') => format!(
                    "unknown option '{arg}' (wsgilab serve does not implement it; see \
                     'wsgilab serve --help')"
                ),
                None => format!(
                    "unexpected argument '{arg}' (options start with '--'; a lone file must be \
                     a .ini, .py or .wsgi file)"
                ),
            }
        }
        ErrorKind::InvalidValue => match value.as_deref() {
            Some("") | None => format!("'{flag}' needs a value"),
            Some(v) => {
                let valid = context_str(e, ContextKind::ValidValue)
                    .map(|v| format!(": expected one of {v}"))
                    .unwrap_or_default();
                format!("invalid value '{v}' for '{flag}'{valid}")
            }
        },
        ErrorKind::ValueValidation => {
            let reason = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "not a valid value".to_string());
            format!(
                "invalid value '{}' for '{flag}': {reason}",
                value.unwrap_or_default()
            )
        }
        ErrorKind::NoEquals => format!("'{flag}' needs its value after '=' (e.g. {flag}=VALUE)"),
        ErrorKind::TooManyValues | ErrorKind::WrongNumberOfValues | ErrorKind::TooFewValues => {
            let cmd = serve_command();
            let long = flag.trim_start_matches('-');
            match find_long(&cmd, long) {
                Some(arg) if !arg.get_action().takes_values() => {
                    format!("'{flag}' takes no value (write just {flag})")
                }
                _ => format!("wrong number of values for '{flag}'"),
            }
        }
        ErrorKind::ArgumentConflict => {
            let other = context_str(e, ContextKind::PriorArg).unwrap_or_default();
            format!("'{flag}' cannot be used with '{other}'")
        }
        ErrorKind::InvalidUtf8 => format!("'{flag}' needs a UTF-8 value"),
        _ => {
            let text = e.to_string();
            let first = text
                .lines()
                .find(|l| !l.trim().is_empty())
                .unwrap_or("invalid command line");
            first.trim_start_matches("error: ").to_string()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Tests
// ---------------------------------------------------------------------------------------------

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::net::Ipv6Addr;

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
        assert_eq!(
            err(&["--buffer-size", "65536"]),
            "invalid value '65536' for '--buffer-size': the maximum is 65535 (uWSGI keeps the \
             buffer size in 16 bits)"
        );
        assert_eq!(
            err(&["--harakiri", "2.5"]),
            "invalid value '2.5' for '--harakiri': expected a whole number"
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
        assert!(err(&["--emperor", "/etc/uwsgi"])
            .starts_with("unknown option '--emperor' (wsgilab serve does not implement it"));
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
            "--chmod-socket",
            "664",
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
        assert_eq!(
            err_with(
                &["--ini", "app.ini"],
                &[("app.ini", "[other]\nprocesses=7\n")]
            ),
            "ini file 'app.ini' has no [uwsgi] section (uWSGI reads only that one; use --ini \
             FILE:SECTION for another)"
        );
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
        assert_eq!(
            err_with(
                &["--ini", "a.ini"],
                &[("a.ini", "[uwsgi]\n\nmaster = maybe\n")]
            ),
            "a.ini line 3: 'master' is a yes/no option: expected true or false, found 'maybe'"
        );
    }

    #[test]
    fn command_line_wins_over_ini_and_lists_accumulate() {
        let c = cfg_with(
            &[
                "--processes",
                "2",
                "--ini",
                "app.ini",
                "--pythonpath",
                "/c",
                "--http-socket",
                ":9000",
            ],
            &[("app.ini", APP_INI)],
        );
        assert_eq!(c.processes, 2, "the command line wins");
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
        assert_eq!(specs, vec![":8000", ":9000"], "ini sockets first");
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
        assert_eq!(
            expand_magic("%s %e %p %c %x", Path::new("/a/b/c.ini")),
            "c.ini ini /a/b/c.ini b %x"
        );
    }

    #[test]
    fn ini_errors_name_file_and_line() {
        let e = |text: &str| err_with(&["--ini", "app.ini"], &[("app.ini", text)]);
        assert_eq!(
            e("[uwsgi]\nprocesses = 2\n\n; c\n\n\nmaster\n"),
            "app.ini line 7: expected 'key = value', found 'master'"
        );
        assert_eq!(
            e("[uwsgi]\nprocesses = abc\n"),
            "app.ini line 2: invalid value 'abc' for 'processes': expected a whole number"
        );
        assert_eq!(
            e("[uwsgi]\nhttp-socket = :99999\n"),
            "app.ini line 2: invalid value ':99999' for 'http-socket': port 99999 is out of \
             range (0 to 65535)"
        );
        assert_eq!(
            e("[uwsgi]\nprocesses = 2\nhtp-socket = :8000\n"),
            "app.ini line 3: unknown option 'htp-socket' (did you mean http-socket?)"
        );
        assert_eq!(
            e("[uwsgi]\nhttp_socket = :8000\n"),
            "app.ini line 2: unknown option 'http_socket' (did you mean http-socket?)"
        );
        assert_eq!(
            e("[uwsgi]\nemperor = /etc/vassals\n"),
            "app.ini line 2: unknown option 'emperor'"
        );
        assert_eq!(
            e("[uwsgi\nprocesses = 2\n"),
            "app.ini line 1: expected '[section]', found '[uwsgi'"
        );
        assert_eq!(
            e("[uwsgi]\nprotocol = spdy\n"),
            "app.ini line 2: invalid value 'spdy' for 'protocol': expected one of http, uwsgi"
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
