//! `wsgilab serve` in one process, as uWSGI runs without `--master` and with one process: print
//! the banner, bind the socket, start the interpreter, import the app, then serve.
//!
//! Every step reports through the process seam's log exactly what uWSGI prints for it, and on a
//! failure adds wsgilab's `hint:` lines.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::app_loader::AppLoader;
use crate::config::{Config, Protocol, SocketSpec};
use crate::hints;
use crate::http::Limits;
use crate::log::banner_head;
use crate::log::lines::{HowStarted, OperationalMode, SocketBound, WorkerStarted};
use crate::net::{Listener, Net};
use crate::procs::{Procs, SharedCounter, SystemInfo};
use crate::python::{AppSource, InterpreterInfo, InterpreterSetup, Python};
use crate::worker::{worker_process, NoMaster, WorkerSettings, WorkerSpec};

/// A server that is ready to accept: the socket is bound, the interpreter started, and the
/// app imported (or not, or left to the workers with --lazy-apps).
pub struct Prepared<L, A> {
    pub listener: L,
    pub app: Option<A>,
    pub settings: WorkerSettings,
    pub loader: AppLoader,
    /// `--master` or more than one process: a master supervises forked workers.
    pub master_mode: bool,
}

/// Everything up to the first accept. `Err(status)` is the exit status after a fatal problem,
/// already explained in the log.
pub fn prepare<N: Net, P: Procs, Y: Python>(
    config: &Config,
    net: &N,
    procs: &P,
    python: &mut Y,
) -> Result<Prepared<N::Listener, Y::App>, i32> {
    let system = procs.system();
    let cwd = procs.current_dir().unwrap_or_else(|_| PathBuf::from("/"));
    announce(config, procs, &system, &cwd);
    let socket = check_instance(config, procs, &system)?;
    enter_chdir(config, procs)?;
    let cwd = procs.current_dir().unwrap_or(cwd);
    let socket_timeout = Duration::from_secs(config.socket_timeout.max(1));
    let listener = bind(config, net, procs, socket, socket_timeout)?;
    let info = start_interpreter(config, procs, python, &cwd)?;
    let master_mode = config.master || config.processes > 1;
    procs.log(&OperationalMode::of(config.processes, config.threads).to_string());
    let loader = app_loader(config, cwd, info.address);
    // --lazy-apps: each worker imports the app after the fork; otherwise (uWSGI's default)
    // the master imports it once and the workers inherit it.
    let app = if master_mode && config.lazy_apps {
        procs.log("wsgilab: --lazy-apps: each worker imports the app after it is forked");
        None
    } else {
        loader.load(procs, python)?
    };
    procs.log("*** uWSGI is running in multiple interpreter mode ***");
    if !master_mode {
        let only = WorkerStarted {
            slot: 1,
            pid: procs.pid(),
            how: HowStarted::OnlyWorker { cores: 1 },
        };
        procs.log(&only.to_string());
    }
    Ok(Prepared {
        listener,
        app,
        settings: worker_settings(config, socket, socket_timeout),
        loader,
        master_mode,
    })
}

/// Where the configuration came from, the banner, and the configuration's warnings.
fn announce(config: &Config, procs: &impl Procs, system: &SystemInfo, cwd: &Path) {
    for (i, file) in config.ini_files.iter().enumerate() {
        let format = config.config_formats.get(i).copied().unwrap_or("INI");
        procs.log(&format!(
            "[uWSGI] getting {format} configuration from {file}"
        ));
    }
    for line in banner_head(procs, system, &cwd.display().to_string()) {
        procs.log(&line);
    }
    for warning in &config.warnings {
        procs.log(&format!("wsgilab: {warning}"));
    }
}

/// What must hold before anything is bound: one socket to serve, a backlog the kernel allows.
fn check_instance<'c>(
    config: &'c Config,
    procs: &impl Procs,
    system: &SystemInfo,
) -> Result<&'c SocketSpec, i32> {
    let Some(socket) = config.sockets.first() else {
        procs.log("The -s/--socket option is missing and stdin is not a socket.");
        procs.log(&format!(
            "hint: tell wsgilab where to listen and what to serve, e.g. wsgilab serve --http-socket :8000 --module {}",
            if config.module_and_callable().is_some() || config.wsgi_file.is_some() { "<as you did>" } else { "mysite.wsgi" }
        ));
        return Err(1);
    };
    if config.sockets.len() > 1 {
        procs.log(&format!(
            "wsgilab: only one socket can be served for now; {} more were given ({}). Keep one.",
            config.sockets.len() - 1,
            config.sockets[1..]
                .iter()
                .map(|s| s.spec.as_str())
                .collect::<Vec<_>>()
                .join(", ")
        ));
        return Err(1);
    }
    if config.listen > system.somaxconn {
        procs.log(&format!(
            "Listen queue size is greater than the system max net.core.somaxconn ({}).",
            system.somaxconn
        ));
        procs.log(&format!(
            "hint: use --listen {} or less, or raise the limit: sysctl -w net.core.somaxconn={}",
            system.somaxconn, config.listen
        ));
        return Err(1);
    }
    Ok(socket)
}

/// `--chdir`, before the socket is bound and the app imported, as uWSGI does.
fn enter_chdir(config: &Config, procs: &impl Procs) -> Result<(), i32> {
    if let Some(dir) = &config.chdir {
        if let Err(e) = procs.set_current_dir(dir) {
            procs.log(&format!(
                "chdir(): {} [core/uwsgi.c line 2094]",
                os_error_text(&e)
            ));
            procs.log(&format!("hint: --chdir {}: {e}", dir.display()));
            return Err(1);
        }
    }
    Ok(())
}

/// Binds the socket with `--listen` as its backlog, and defers accepting until a client has
/// sent something (TCP_DEFER_ACCEPT), unless `--no-defer-accept`.
fn bind<N: Net>(
    config: &Config,
    net: &N,
    procs: &impl Procs,
    socket: &SocketSpec,
    socket_timeout: Duration,
) -> Result<N::Listener, i32> {
    let listener = match net.bind(socket.addr, config.listen) {
        Ok(listener) => listener,
        Err(e) => {
            log_bind_error(procs, &socket.spec, socket.addr, &e);
            return Err(1);
        }
    };
    let bound = SocketBound {
        index: 0,
        addr: display_addr(&listener, &socket.spec),
        fd: listener.fd(),
    };
    procs.log(&bound.to_string());
    if config.defer_accept {
        if let Err(e) = listener.defer_accept(socket_timeout) {
            // As uWSGI: the socket works without it; workers may wake for silent clients.
            procs.log(&format!(
                "setsockopt(TCP_DEFER_ACCEPT): {}",
                os_error_text(&e)
            ));
        }
    }
    Ok(listener)
}

/// Starts the interpreter (the virtualenv, `sys.path`) and says so as uWSGI does.
fn start_interpreter<Y: Python>(
    config: &Config,
    procs: &impl Procs,
    python: &mut Y,
    cwd: &Path,
) -> Result<InterpreterInfo, i32> {
    let setup = InterpreterSetup {
        virtualenv: config.virtualenv.clone(),
        pythonpath: config.pythonpath.clone(),
    };
    let info = match python.start(&setup) {
        Ok(info) => info,
        Err(failure) => {
            for line in &failure.lines {
                procs.log(line);
            }
            for line in hints::for_start_failure(procs, &failure, cwd) {
                procs.log(&line);
            }
            return Err(1);
        }
    };
    if let Some(venv) = &config.virtualenv {
        procs.log(&format!("Set PythonHome to {}", venv.display()));
    }
    procs.log(&format!("Python version: {}", info.version));
    procs.log(&format!(
        "Python main interpreter initialized at {:#x}",
        info.address
    ));
    procs.log("python threads support enabled");
    procs.log(&format!(
        "your server socket listen backlog is limited to {} connections",
        config.listen
    ));
    procs.log(&format!(
        "your mercy for graceful operations on workers is {} seconds",
        config.worker_reload_mercy
    ));
    Ok(info)
}

/// What the app is (`--module`, `--wsgi-file`) and where it is imported from.
fn app_loader(config: &Config, cwd: PathBuf, interpreter: usize) -> AppLoader {
    let source = match (config.module_and_callable(), &config.wsgi_file) {
        (Some((module, callable)), _) => Some(AppSource::Module { module, callable }),
        (None, Some(path)) => Some(AppSource::File {
            path: path.clone(),
            callable: config.callable.clone(),
        }),
        (None, None) => None,
    };
    AppLoader {
        source,
        need_app: config.need_app,
        cwd,
        virtualenv: config.virtualenv.clone(),
        interpreter,
    }
}

/// What every worker serves with.
fn worker_settings(
    config: &Config,
    socket: &SocketSpec,
    socket_timeout: Duration,
) -> WorkerSettings {
    WorkerSettings {
        limits: Limits {
            max_head: config.buffer_size,
            max_body: (config.limit_post > 0).then_some(config.limit_post),
        },
        keep_alive: socket.protocol == Protocol::Http11,
        uwsgi_protocol: socket.protocol == Protocol::Uwsgi,
        socket_timeout,
        body_timeout: Duration::from_secs(config.http_timeout.max(1)),
        disable_logging: config.disable_logging,
        multithread: config.threads > 1,
        multiprocess: config.processes > 1,
        max_requests: config.max_requests,
        reload_on_rss: config.reload_on_rss << 20,
        threads: config.threads.max(1) as usize,
    }
}

/// Serves in this very process, as uWSGI does without a master and with one process: the
/// process is its only worker. Returns when the listener fails for good; the exit status.
pub async fn serve<N, P, Y>(
    prepared: &Prepared<N::Listener, Y::App>,
    net: &N,
    procs: &P,
    python: &Y,
) -> i32
where
    N: Net + Clone + Send + Sync + 'static,
    N::Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    P: Procs + Clone + Send + Sync + 'static,
    Y: Python + Clone,
    Y::App: Clone + Send + Sync + 'static,
{
    let shared = match net.share(&prepared.listener) {
        Ok(shared) => shared,
        Err(e) => {
            procs.log(&format!("wsgilab: cannot use the socket: {e}"));
            return 1;
        }
    };
    let spec = WorkerSpec {
        id: 1,
        net: net.clone(),
        shared,
        procs: procs.clone(),
        python: python.clone(),
        app: prepared.app.clone(),
        lazy: None,
        settings: prepared.settings.clone(),
        // Without a master the one process's own count is the instance's.
        total_requests: SharedCounter::local(),
    };
    worker_process(spec, NoMaster).await
}

fn log_bind_error(procs: &impl Procs, spec: &str, addr: std::net::SocketAddr, e: &io::Error) {
    match e.kind() {
        io::ErrorKind::AddrInUse => {
            procs.log(&format!(
                "probably another instance of uWSGI is running on the same address ({addr})."
            ));
            procs.log("bind(): Address already in use [core/socket.c line 769]");
            procs.log(&format!(
                "hint: something already listens on {addr}: stop it (ss -ltnp 'sport = :{}' shows who), or pick another port",
                addr.port()
            ));
        }
        io::ErrorKind::PermissionDenied => {
            procs.log("bind(): Permission denied [core/socket.c line 769]");
            procs.log(&format!(
                "hint: ports below 1024 need root (or CAP_NET_BIND_SERVICE); use a port such as {} and put nginx in front",
                if addr.port() == 80 { 8000 } else { 8000 + addr.port() }
            ));
        }
        io::ErrorKind::AddrNotAvailable => {
            procs.log(&format!(
                "bind(): {} [core/socket.c line 769]",
                os_error_text(e)
            ));
            procs.log(&format!("hint: {spec}: this machine has no such address; use :PORT for every interface or 127.0.0.1:PORT"));
        }
        _ => procs.log(&format!(
            "bind(): {} [core/socket.c line 769]",
            os_error_text(e)
        )),
    }
}

/// The C library's text for an error (`Address already in use`), without Rust's decoration.
fn os_error_text(e: &io::Error) -> String {
    let text = e.to_string();
    match text.find(" (os error") {
        Some(i) => text[..i].to_string(),
        None => text,
    }
}

fn display_addr(listener: &impl Listener, spec: &str) -> String {
    match listener.local_addr() {
        // uWSGI prints the address as typed (`:8000`), with the port resolved.
        Ok(addr) if spec.starts_with(':') => format!(":{}", addr.port()),
        Ok(addr) => addr.to_string(),
        Err(_) => spec.to_string(),
    }
}
