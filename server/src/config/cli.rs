//! The typed side of the command line: clap's `ServeArgs` (which also gives `--help`), the
//! value parsers (addresses, numbers, plugins), and the step from parsed arguments to a
//! [`Config`].
//!
//! The configuration language hands this module a list of `--key=value` arguments in uWSGI's
//! order; clap checks each value and, with `args_override_self`, lets the last single value
//! win while repeatable options accumulate, as uWSGI's option functions do.

use std::net::{IpAddr, Ipv4Addr, SocketAddr, ToSocketAddrs};
use std::path::PathBuf;

use clap::builder::ArgAction;
use clap::error::{ContextKind, ContextValue, ErrorKind};
use clap::{ArgMatches, CommandFactory, Parser, ValueEnum};

use super::{Config, ConfigError, Protocol, SocketSpec, StatsSpec, MAX_BUFFER_SIZE};

// ---------------------------------------------------------------------------------------------
// The clap command
// ---------------------------------------------------------------------------------------------

pub(super) const BIN_NAME: &str = "wsgilab serve";

const ABOUT: &str = "Serve a WSGI app the way uWSGI does: type your uWSGI command line with \
`uwsgi` replaced by `wsgilab serve`. Options take uWSGI's names and defaults, and may also come \
from config files (--ini, --yaml, --json, --xml) and UWSGI_* environment variables, read as \
uWSGI reads them: in order, the last value of an option winning. --show-config shows the result.";

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
pub(super) struct ServeArgs {
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
    // These are read by the configuration language (reader.rs) before clap sees anything;
    // they are declared here so that --help lists them.
    /// Read options from the [uwsgi] section of an ini file (FILE[:section]); repeatable
    #[arg(long = "ini", value_name = "FILE", action = ArgAction::Append, help_heading = "Config files")]
    ini: Vec<String>,

    /// Read options from a yaml file (FILE[:section])
    #[arg(short = 'y', long = "yaml", visible_alias = "yml", value_name = "FILE", action = ArgAction::Append, help_heading = "Config files")]
    yaml: Vec<String>,

    /// Read options from a json file (FILE[:section])
    #[arg(short = 'j', long = "json", visible_alias = "js", value_name = "FILE", action = ArgAction::Append, help_heading = "Config files")]
    json: Vec<String>,

    /// Read options from an xml file (FILE[:id])
    #[arg(short = 'x', long = "xml", value_name = "FILE", action = ArgAction::Append, help_heading = "Config files")]
    xml: Vec<String>,

    /// Print the effective configuration, each value with where it came from, and exit
    #[arg(long = "show-config", help_heading = "Config files")]
    show_config: bool,

    /// Refuse keys that are not uWSGI options (no placeholders)
    #[arg(long = "strict", help_heading = "Config files")]
    strict: bool,

    /// A lone app.ini/.yml/.json/.xml (read like --ini) or app.py/app.wsgi (like --wsgi-file)
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

pub(super) fn serve_command() -> clap::Command {
    ServeArgs::command()
}

/// An address as typed and as resolved (the value of every ADDR option).
#[derive(Debug, Clone, PartialEq, Eq)]
struct Addr {
    spec: String,
    addr: SocketAddr,
}

pub(super) fn build_config(
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

    let wsgi_file = a.wsgi_file;

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
        config_formats: Vec::new(),
        warnings,
    })
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
    // uWSGI reads the port with atoi: spaces around it are fine (`: 5000`).
    let port = port.trim();
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

pub(super) fn find_long<'c>(cmd: &'c clap::Command, key: &str) -> Option<&'c clap::Arg> {
    cmd.get_arguments().find(|a| {
        a.get_long() == Some(key) || a.get_all_aliases().is_some_and(|al| al.contains(&key))
    })
}

// ---------------------------------------------------------------------------------------------
// Errors: clap's multi-line messages condensed to one line
// ---------------------------------------------------------------------------------------------

/// The `--help` text.
pub(super) fn help_text() -> String {
    serve_command().render_help().to_string()
}

/// The `--version` text.
pub(super) fn version_text() -> String {
    format!("wsgilab {}\n", env!("CARGO_PKG_VERSION"))
}

/// A clap error as one line.
pub(super) fn condense(e: &clap::Error) -> ConfigError {
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

pub(super) fn condense_body(e: &clap::Error, ini_key: Option<&str>) -> String {
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
