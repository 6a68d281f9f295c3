//! `wsgilab replay --real`: a scenario run on this machine instead of in the simulation, so that
//! the two can be compared (tests/sim_vs_real.rs does, for every scenario marked `real = true`).
//!
//! The scenario's files are written under a fresh temporary root (`/srv/app/app.py` becomes
//! `$ROOT/srv/app/app.py`); a directory with a `pyvenv.cfg` becomes a real virtualenv made by the
//! Python wsgilab embeds, with the scenario's packages in its site-packages (a scenario's
//! modelled `django/` is real Python source and is used as it is: no scenario that runs for real
//! gets as far as using Django's code). This very binary then runs `wsgilab serve` with the
//! scenario's command line — paths rebased, every port mapped to a free one, the same address
//! family and 127.0.0.1-versus-any binding — from the rebased working directory, with the
//! scenario's environment, in a process group of its own that is killed when the run ends
//! (or the replay is interrupted, or panics). Clients are tokio tasks on loopback that keep the
//! scenario's timing and slowness and write the same [`RequestRecord`]s as the simulated
//! clients; faults are real signals, to the master or to a worker found from the log; a busy
//! port is held by a real listener that answers like the simulation's "older server".
//!
//! What comes out is a [`RunOutput`] like the simulation's, from measured times, so the same
//! request table and log render. Its events are only what can be seen from outside: the
//! server's log lines, the clients' own events, the faults, and the SYN retransmissions a
//! client's `connect()` must have waited for (inferred from how long it took: the kernel does
//! not tell). Time 0 is the moment the server finished starting — when its log shows what the
//! simulated server's log showed at virtual time 0 (its workers spawned, its app loaded) — since
//! the simulated server starts in no time and a real one takes a few hundred milliseconds.

use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::os::unix::process::{CommandExt, ExitStatusExt};
use std::path::{Component, Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use server::log::lines::{
    AppReady, HowStarted, MasterSpawned, NoAppLoaded, OperationalMode, SocketBound, WorkerStarted,
};
use sim::scenario::client::{
    answer_as_old_version, client_number, run_connection, ClientWorld, Plan,
};
use sim::scenario::record::{RequestRecord, RunOutput};
use sim::scenario::{split_command, Fault, FaultTarget, Scenario, SERVER_HOST};
use sim::trace::{Category, Event, EventKind};
use tokio::net::TcpStream;

/// The interpreter whose libpython this binary embeds: the one that must make the virtualenvs.
const PYTHON: &str = env!("WSGILAB_PYTHON_EXECUTABLE");
const PYTHON_VERSION: &str = env!("WSGILAB_PYTHON_VERSION");

/// How long a server may take to start (Python's start and the app's import included).
const STARTUP_LIMIT: Duration = Duration::from_secs(20);

/// `wsgilab replay --real`: the scenario's runs, measured; and the scenario as its expectations
/// can be checked for real (the trace-event kinds it expects are the simulation's inner view:
/// only the outcomes, the log and the exit status can be seen from outside). A scenario that
/// cannot run here, or a run that cannot be set up, is told on stderr and ends with status 2.
pub fn replay(
    origin: &str,
    mut scenario: Scenario,
    seed: u64,
) -> Result<(Scenario, Vec<RunOutput>), std::process::ExitCode> {
    if !scenario.real {
        eprintln!(
            "wsgilab replay --real: {origin} runs only in the simulation: {}",
            scenario
                .simulated_only
                .as_deref()
                .unwrap_or("it is not marked `real = true`")
        );
        return Err(std::process::ExitCode::from(2));
    }
    let simulated = sim::scenario::run::run_scenario(&scenario, seed);
    let runs = match run_real(&scenario, &simulated) {
        Ok(runs) => runs,
        Err(e) => {
            eprintln!("wsgilab replay --real: {origin}: {e}");
            return Err(std::process::ExitCode::from(2));
        }
    };
    eprintln!(
        "(ran for real: times are measured on this machine, from the moment the server had started; the timeline holds only what can be seen from outside the server)"
    );
    scenario.expect.events.clear();
    for variant in &mut scenario.variants {
        if let Some(expect) = &mut variant.expect {
            expect.events.clear();
        }
    }
    Ok((scenario, runs))
}

/// Runs every command line of the scenario for real. `simulated` are the same scenario's
/// simulated runs, in the same order: they give each client's start time (jitter included) and
/// what "started" means for the server.
pub fn run_real(scenario: &Scenario, simulated: &[RunOutput]) -> Result<Vec<RunOutput>, String> {
    scenario
        .commands()
        .into_iter()
        .zip(simulated)
        .map(|((variant, command), sim)| run_one(scenario, variant, &command, sim))
        .collect()
}

fn run_one(
    scenario: &Scenario,
    variant: Option<String>,
    command: &str,
    sim: &RunOutput,
) -> Result<RunOutput, String> {
    let root = TempRoot::new()?;
    materialise(scenario, &root.path)?;
    let args = split_command(command)?;
    let ports = PortMap::new(scenario, &args)?;
    let args: Vec<String> = args
        .iter()
        .map(|a| rebase_arg(a, &root.path, &ports))
        .collect();
    rebase_config_files(scenario, &root.path, &ports)?;
    let cwd = rebase(&root.path, &scenario.machine.cwd);
    std::fs::create_dir_all(&cwd).map_err(|e| format!("cannot create {}: {e}", cwd.display()))?;
    let env = environment(scenario, &root.path);
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the event loop: {e}"))?;
    let faults = scenario.faults_of(variant.as_deref()).to_vec();
    let setup = Setup {
        scenario,
        sim,
        root: &root.path,
        cwd: &cwd,
        args: &args,
        env: &env,
        ports: &ports,
        faults: &faults,
    };
    let (events, requests, exit_status) = runtime.block_on(drive(setup))?;
    let end_us = events.last().map_or(0, |e| e.at_us);
    Ok(RunOutput {
        variant,
        command: command.to_string(),
        seed: sim.seed,
        events,
        requests,
        exit_status,
        servers: vec![SERVER_HOST.to_string()],
        end_us,
    })
}

/// Everything one run needs, prepared.
struct Setup<'a> {
    scenario: &'a Scenario,
    sim: &'a RunOutput,
    root: &'a Path,
    cwd: &'a Path,
    args: &'a [String],
    env: &'a BTreeMap<String, String>,
    ports: &'a PortMap,
    faults: &'a [Fault],
}

type Outcome = (Vec<Event>, Vec<RequestRecord>, Option<i32>);

async fn drive(setup: Setup<'_>) -> Result<Outcome, String> {
    let scenario = setup.scenario;
    let mut early_events = Vec::new();
    // The older program holding a port must be there before the server tries to bind it.
    let mut squatters = Vec::new();
    for port in &scenario.machine.busy_ports {
        let real = setup.ports.get(*port);
        let listener = tokio::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, real))
            .await
            .map_err(|e| format!("cannot hold port {real} (the scenario's {port}): {e}"))?;
        early_events.push((
            Category::Proc,
            EventKind::Squatter,
            format!(
                "an older server is already running and listens on port {port} (really {real})"
            ),
        ));
        squatters.push(tokio::spawn(serve_old_version(listener)));
    }
    let mut server = ServerProcess::spawn(&setup)?;
    let t0 = tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => return Err("interrupted".into()),
        t0 = wait_started(&mut server, setup.sim) => t0,
    };
    let shared = Shared {
        t0,
        events: Arc::default(),
        requests: Arc::default(),
    };
    for (category, kind, text) in early_events {
        shared.record(category, None, kind, text);
    }
    shared.record(
        Category::Proc,
        None,
        EventKind::Spawn,
        format!(
            "wsgilab serve {} started (pid {}) in {}; it took {} ms to start",
            setup.args.join(" "),
            server.pid,
            setup.cwd.display(),
            server
                .started
                .map_or(0, |s| t0.duration_since(s).as_millis())
        ),
    );
    let plans = plan_clients(scenario, setup.sim);
    let mut clients = Vec::new();
    for plan in plans {
        let addr = SocketAddr::new(
            IpAddr::V4(Ipv4Addr::LOCALHOST),
            setup.ports.get(plan.group.port),
        );
        let shared = shared.clone();
        clients.push(tokio::spawn(async move {
            tokio::time::sleep_until(shared.at(plan.start)).await;
            run_connection(&shared, &plan, addr).await;
        }));
    }
    let mut faults = setup.faults.to_vec();
    faults.sort_by_key(|f| f.at_ms);
    let limit = shared.at(Duration::from_secs(scenario.time_limit_s));
    let run = async {
        for fault in &faults {
            tokio::time::sleep_until(shared.at(Duration::from_millis(fault.at_ms))).await;
            apply_fault(fault, &server, &shared);
        }
        for client in clients {
            let _ = client.await;
        }
        // What follows the last client (respawns, the master's tick), unless the server is gone.
        let linger = tokio::time::Instant::now() + Duration::from_millis(scenario.linger_ms);
        while tokio::time::Instant::now() < linger && server.exited().is_none() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    };
    tokio::select! {
        biased;
        _ = tokio::signal::ctrl_c() => return Err("interrupted".into()),
        _ = tokio::time::timeout_at(limit, run) => {}
    }
    let exit_status = server.exited();
    server.stop();
    for squatter in squatters {
        squatter.abort();
    }
    let mut events = server.log_events(t0);
    events.extend(
        shared
            .events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .drain(..),
    );
    // Stable: log lines keep their order, and a client's events theirs.
    events.sort_by_key(|e| e.at_us);
    let mut requests = shared
        .requests
        .lock()
        .unwrap_or_else(|e| e.into_inner())
        .clone();
    requests.sort_by_key(|r| (client_number(&r.client), r.seq));
    Ok((events, requests, exit_status))
}

// ---------------------------------------------------------------------------------------------
// The files

/// A fresh directory under the system's temporary directory, removed when dropped.
struct TempRoot {
    path: PathBuf,
}

impl TempRoot {
    fn new() -> Result<TempRoot, String> {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("wsgilab-real-{}-{n}", std::process::id()));
        if path.exists() {
            std::fs::remove_dir_all(&path)
                .map_err(|e| format!("cannot empty {}: {e}", path.display()))?;
        }
        std::fs::create_dir_all(&path)
            .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
        // The server reports its working directory as the kernel resolves it: un-rebasing its
        // log needs the same spelling (the temporary directory may be behind a symlink).
        let path = path
            .canonicalize()
            .map_err(|e| format!("cannot resolve {}: {e}", path.display()))?;
        Ok(TempRoot { path })
    }
}

impl Drop for TempRoot {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.path);
    }
}

/// `/srv/app` under `root`.
fn rebase(root: &Path, path: &Path) -> PathBuf {
    let mut out = root.to_path_buf();
    for c in path.components() {
        if let Component::Normal(part) = c {
            out.push(part);
        }
    }
    out
}

/// Writes the scenario's files under `root`; a directory holding a `pyvenv.cfg` is made a real
/// virtualenv first, and its `lib/pythonX.Y/` follows the real Python's version.
fn materialise(scenario: &Scenario, root: &Path) -> Result<(), String> {
    let venvs: Vec<&str> = scenario
        .files
        .keys()
        .filter_map(|p| p.strip_suffix("/pyvenv.cfg"))
        .collect();
    for venv in &venvs {
        let dir = rebase(root, Path::new(venv));
        // No pip: nothing is installed with it, and ensurepip costs seconds.
        let output = Command::new(PYTHON)
            .args(["-m", "venv", "--without-pip"])
            .arg(&dir)
            .env_remove("PYTHONHOME")
            .env_remove("PYTHONPATH")
            .output()
            .map_err(|e| format!("cannot run {PYTHON} -m venv: {e}"))?;
        if !output.status.success() {
            return Err(format!(
                "{PYTHON} -m venv {} failed ({}): {}",
                dir.display(),
                output.status,
                String::from_utf8_lossy(&output.stderr).trim()
            ));
        }
    }
    for dir in &scenario.dirs {
        let dir = rebase(root, Path::new(dir));
        std::fs::create_dir_all(&dir)
            .map_err(|e| format!("cannot create {}: {e}", dir.display()))?;
    }
    for (path, content) in &scenario.files {
        let in_venv = venvs.iter().find(|v| {
            path.strip_prefix(*v)
                .is_some_and(|rest| rest.starts_with('/'))
        });
        let target = match in_venv {
            // The real virtualenv's own pyvenv.cfg names the real Python.
            Some(_) if path.ends_with("/pyvenv.cfg") => continue,
            Some(venv) => {
                let rest = &path[venv.len() + 1..];
                let rest = match rest.strip_prefix("lib/python") {
                    Some(after) => match after.split_once('/') {
                        Some((_, tail)) => format!("lib/python{PYTHON_VERSION}/{tail}"),
                        None => rest.to_string(),
                    },
                    None => rest.to_string(),
                };
                rebase(root, &Path::new(venv).join(rest))
            }
            None => rebase(root, Path::new(path)),
        };
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent)
                .map_err(|e| format!("cannot create {}: {e}", parent.display()))?;
        }
        std::fs::write(&target, content)
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    Ok(())
}

/// The environment the command was typed in: a plain shell's, then the scenario's, its paths
/// rebased where they name something the scenario made.
fn environment(scenario: &Scenario, root: &Path) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    env.insert(
        "PATH".to_string(),
        "/usr/local/bin:/usr/bin:/bin".to_string(),
    );
    env.insert("LANG".to_string(), "C.UTF-8".to_string());
    env.insert("HOME".to_string(), root.display().to_string());
    for (name, value) in &scenario.machine.env {
        let value = value
            .split(':')
            .map(|part| {
                let rebased = rebase(root, Path::new(part));
                if part.starts_with('/') && rebased.exists() {
                    rebased.display().to_string()
                } else {
                    part.to_string()
                }
            })
            .collect::<Vec<_>>()
            .join(":");
        env.insert(name.clone(), value);
    }
    env
}

// ---------------------------------------------------------------------------------------------
// The command line

/// The scenario's ports (in its command, its clients, its busy ports) → free ports here.
struct PortMap(BTreeMap<u16, u16>);

impl PortMap {
    fn new(scenario: &Scenario, args: &[String]) -> Result<PortMap, String> {
        let mut wanted: Vec<u16> = args
            .iter()
            .filter_map(|a| address_port(value_of(a)).map(|(_, p)| p))
            .collect();
        // Ports written in the scenario's config files (`http-socket = :8000`) too.
        for (_, value) in config_values(scenario) {
            wanted.extend(address_port(value).map(|(_, p)| p));
        }
        wanted.extend(scenario.clients.iter().map(|c| c.port));
        wanted.extend(&scenario.machine.busy_ports);
        wanted.sort_unstable();
        wanted.dedup();
        let mut map = BTreeMap::new();
        // Held together until all are chosen, so no two scenario ports get the same one.
        let mut held = Vec::new();
        for port in wanted {
            let listener = std::net::TcpListener::bind((Ipv4Addr::UNSPECIFIED, 0))
                .map_err(|e| format!("cannot find a free port: {e}"))?;
            let free = listener
                .local_addr()
                .map_err(|e| format!("cannot find a free port: {e}"))?
                .port();
            held.push(listener);
            map.insert(port, free);
        }
        Ok(PortMap(map))
    }

    fn get(&self, port: u16) -> u16 {
        self.0.get(&port).copied().unwrap_or(port)
    }
}

/// `--flag=value` → `value`; anything else as it is.
fn value_of(arg: &str) -> &str {
    match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with('-') => value,
        _ => arg,
    }
}

/// `:8000`, `127.0.0.1:8000`, `[::1]:8000`, `localhost:8000` → (host part, port).
fn address_port(value: &str) -> Option<(&str, u16)> {
    let (host, port) = value.rsplit_once(':')?;
    let port: u16 = port.parse().ok()?;
    let plausible = host.is_empty()
        || (host.starts_with('[') && host.ends_with(']'))
        || host
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '.' || c == '-');
    plausible.then_some((host, port))
}

/// One argument of the command line with its port remapped or its absolute path rebased.
/// The `key = value` lines of the scenario's ini files: (file, value). A config file names
/// paths and ports just as the command line does, so they are rebased the same way.
fn config_values(scenario: &Scenario) -> Vec<(&str, &str)> {
    scenario
        .files
        .iter()
        .filter(|(path, _)| path.ends_with(".ini"))
        .flat_map(|(path, text)| {
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(move |(_, v)| (path.as_str(), v.trim()))
        })
        .collect()
}

/// Rewrites the scenario's ini files under `root` with their paths rebased and their ports
/// mapped, value by value, as [`rebase_arg`] does for the command line.
fn rebase_config_files(scenario: &Scenario, root: &Path, ports: &PortMap) -> Result<(), String> {
    for (path, text) in scenario.files.iter().filter(|(p, _)| p.ends_with(".ini")) {
        let rewritten: Vec<String> = text
            .lines()
            .map(|line| match line.split_once('=') {
                Some((key, value)) if !line.trim_start().starts_with([';', '#']) => {
                    format!("{key}= {}", rebase_arg(value.trim(), root, ports))
                }
                _ => line.to_string(),
            })
            .collect();
        let target = rebase(root, Path::new(path));
        std::fs::write(&target, rewritten.join("\n") + "\n")
            .map_err(|e| format!("cannot write {}: {e}", target.display()))?;
    }
    Ok(())
}

fn rebase_arg(arg: &str, root: &Path, ports: &PortMap) -> String {
    let (prefix, value) = match arg.split_once('=') {
        Some((flag, value)) if flag.starts_with('-') => (format!("{flag}="), value),
        _ => (String::new(), arg),
    };
    if let Some((host, port)) = address_port(value) {
        return format!("{prefix}{host}:{}", ports.get(port));
    }
    if value.starts_with('/') {
        return format!("{prefix}{}", rebase(root, Path::new(value)).display());
    }
    arg.to_string()
}

// ---------------------------------------------------------------------------------------------
// The server process

/// The real `wsgilab serve`, in a process group of its own; the whole group is killed on drop.
struct ServerProcess {
    child: Child,
    pid: u32,
    /// When it was spawned.
    started: Option<Instant>,
    /// Its log (stdout and stderr, one pipe), line by line with the time each line was read,
    /// the temporary root taken out of the paths.
    log: Arc<Mutex<Vec<(Instant, String)>>>,
    log_done: Arc<AtomicBool>,
    exit: Option<i32>,
    stopped: bool,
}

impl ServerProcess {
    fn spawn(setup: &Setup<'_>) -> Result<ServerProcess, String> {
        let exe = std::env::current_exe()
            .map_err(|e| format!("cannot find this program's own binary: {e}"))?;
        let (reader, writer) = io::pipe().map_err(|e| format!("cannot make a pipe: {e}"))?;
        let writer2 = writer
            .try_clone()
            .map_err(|e| format!("cannot make a pipe: {e}"))?;
        let mut command = Command::new(&exe);
        command
            .arg("serve")
            .args(setup.args)
            .current_dir(setup.cwd)
            .env_clear()
            .envs(setup.env)
            .stdin(Stdio::null())
            .stdout(writer)
            .stderr(writer2)
            .process_group(0);
        let started = Instant::now();
        let child = command
            .spawn()
            .map_err(|e| format!("cannot start {} serve: {e}", exe.display()))?;
        // The command holds the pipe's write ends: dropping it lets the reader see EOF once
        // the server's processes are gone.
        drop(command);
        let pid = child.id();
        let log: Arc<Mutex<Vec<(Instant, String)>>> = Arc::default();
        let log_done = Arc::new(AtomicBool::new(false));
        {
            let (log, log_done) = (log.clone(), log_done.clone());
            let root = setup.root.display().to_string();
            // The log speaks of the scenario's ports, as the simulated server's does.
            let ports: Vec<(String, String)> = setup
                .ports
                .0
                .iter()
                .map(|(theirs, ours)| (format!(":{ours}"), format!(":{theirs}")))
                .collect();
            std::thread::spawn(move || {
                let mut reader = BufReader::new(reader);
                let mut line = Vec::new();
                while let Ok(n) = reader.read_until(b'\n', &mut line) {
                    if n == 0 {
                        break;
                    }
                    let at = Instant::now();
                    let mut text = String::from_utf8_lossy(&line)
                        .trim_end_matches(['\n', '\r'])
                        .replace(&root, "");
                    for (ours, theirs) in &ports {
                        text = text.replace(ours, theirs);
                    }
                    log.lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((at, text));
                    line.clear();
                }
                log_done.store(true, Ordering::SeqCst);
            });
        }
        Ok(ServerProcess {
            child,
            pid,
            started: Some(started),
            log,
            log_done,
            exit: None,
            stopped: false,
        })
    }

    /// Its exit status if it has exited (a death by signal as the shell's 128 + N).
    fn exited(&mut self) -> Option<i32> {
        if self.exit.is_none() {
            if let Ok(Some(status)) = self.child.try_wait() {
                self.exit = status.code().or_else(|| status.signal().map(|s| 128 + s));
            }
        }
        self.exit
    }

    fn log_lines(&self) -> Vec<String> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(_, l)| l.clone())
            .collect()
    }

    /// Kills the whole process group (workers included), reaps the server, and waits a
    /// moment for the last log lines.
    fn stop(&mut self) {
        if self.stopped {
            return;
        }
        self.stopped = true;
        signal_group(self.pid, 9);
        let _ = self.child.kill();
        let _ = self.child.wait();
        let deadline = Instant::now() + Duration::from_secs(2);
        while !self.log_done.load(Ordering::SeqCst) && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// The log as trace events, timed from `t0` (lines from before it at 0).
    fn log_events(&self, t0: Instant) -> Vec<Event> {
        self.log
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .map(|(at, text)| Event {
                at_us: at.saturating_duration_since(t0).as_micros() as u64,
                host: SERVER_HOST.to_string(),
                pid: None,
                category: Category::Log,
                conn: None,
                kind: EventKind::Log,
                text: text.clone(),
                board: None,
            })
            .collect()
    }
}

impl Drop for ServerProcess {
    fn drop(&mut self) {
        self.stop();
    }
}

/// `kill -SIG -- -PGID`: the whole process group.
fn signal_group(pgid: u32, signal: i32) {
    let _ = Command::new("kill")
        .arg(format!("-{signal}"))
        .arg("--")
        .arg(format!("-{pgid}"))
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status();
}

fn signal_pid(pid: u32, signal: i32) -> bool {
    Command::new("kill")
        .arg(format!("-{signal}"))
        .arg(pid.to_string())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Log lines that say a server has got somewhere in its start: the real server has started
/// when its log has as many of each as the simulated one had at virtual time 0.
/// Whether a log line is one kind of start-up milestone.
type Marker = fn(&str) -> bool;

const STARTUP_MARKERS: &[Marker] = &[
    |l| SocketBound::parse(l).is_some(),
    |l| OperationalMode::parse(l).is_some(),
    |l| AppReady::parse(l).is_some(),
    |l| NoAppLoaded::parse(l).is_some(),
    |l| MasterSpawned::parse(l).is_some_and(|m| !m.reexecuted),
    |l| WorkerStarted::parse(l).is_some_and(|w| w.how != HowStarted::Respawned),
];

/// Waits until the server has started as far as the simulated one had at time 0 (or it exited,
/// or [`STARTUP_LIMIT`] passed); that moment is time 0 of the run.
async fn wait_started(server: &mut ServerProcess, sim: &RunOutput) -> Instant {
    let first_activity = sim
        .requests
        .iter()
        .map(|r| r.start_us)
        .min()
        .unwrap_or(u64::MAX);
    let startup: Vec<&str> = sim
        .events
        .iter()
        .filter(|e| e.category == Category::Log && e.at_us < first_activity.max(1))
        .map(|e| e.text.as_str())
        .collect();
    let wanted: Vec<(Marker, usize)> = STARTUP_MARKERS
        .iter()
        .map(|&m| (m, startup.iter().filter(|l| m(l)).count()))
        .filter(|(_, n)| *n > 0)
        .collect();
    // A server the simulation saw exit during its start: wait for the real one to exit too.
    let sim_exits_at_start = sim.exit_status.is_some()
        && sim.events.iter().any(|e| {
            e.category == Category::Proc && e.kind == EventKind::Exit && e.at_us < first_activity
        });
    let deadline = Instant::now() + STARTUP_LIMIT;
    loop {
        if server.exited().is_some() || Instant::now() > deadline {
            return Instant::now();
        }
        if !sim_exits_at_start {
            let log = server.log_lines();
            let started = wanted
                .iter()
                .all(|(marker, n)| log.iter().filter(|l| marker(l)).count() >= *n);
            if started {
                return Instant::now();
            }
        }
        tokio::time::sleep(Duration::from_millis(2)).await;
    }
}

/// Sends the fault's signal for real, as `kill -SIG pid` would.
fn apply_fault(fault: &Fault, server: &ServerProcess, shared: &Shared) {
    let number = fault.signal.0;
    if fault.to == FaultTarget::All {
        shared.record(
            Category::Proc,
            None,
            EventKind::Kill,
            format!(
                "kill -{} of every process of the server at once (process group {})",
                fault.short_signal(),
                server.pid
            ),
        );
        signal_group(server.pid, number);
        return;
    }
    let log = server.log_lines();
    let Some(pid) = fault.target_pid(Some(server.pid), log.iter().map(String::as_str)) else {
        shared.record(
            Category::Proc,
            None,
            EventKind::FaultMissed,
            fault.missed("no such process is running"),
        );
        return;
    };
    shared.record(Category::Proc, Some(pid), EventKind::Kill, fault.typed(pid));
    if !signal_pid(pid, number) {
        shared.record(
            Category::Proc,
            Some(pid),
            EventKind::FaultMissed,
            format!(
                "kill -{} {pid} ({}): no such process",
                fault.short_signal(),
                fault.to
            ),
        );
    }
}

/// The program that already had the port: it answers every request, with the old code (the
/// simulation's squatter, byte for byte).
async fn serve_old_version(listener: tokio::net::TcpListener) {
    while let Ok((stream, _)) = listener.accept().await {
        tokio::spawn(answer_as_old_version(stream));
    }
}

// ---------------------------------------------------------------------------------------------
// The clients (as the simulation's, sim/src/scenario/run.rs, over real sockets)

/// What the clients and the run share.
#[derive(Clone)]
struct Shared {
    t0: Instant,
    events: Arc<Mutex<Vec<Event>>>,
    requests: Arc<Mutex<Vec<RequestRecord>>>,
}

impl Shared {
    fn now_us(&self) -> u64 {
        self.t0.elapsed().as_micros() as u64
    }

    /// The moment `offset` after time 0, for tokio's timers.
    fn at(&self, offset: Duration) -> tokio::time::Instant {
        tokio::time::Instant::from_std(self.t0 + offset)
    }

    fn record(&self, category: Category, pid: Option<u32>, kind: EventKind, text: String) {
        self.record_at(self.now_us(), category, pid, None, kind, text);
    }

    fn record_at(
        &self,
        at_us: u64,
        category: Category,
        pid: Option<u32>,
        conn: Option<&str>,
        kind: EventKind,
        text: String,
    ) {
        let host = if category == Category::Client {
            "client"
        } else {
            SERVER_HOST
        };
        self.events
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(Event {
                at_us,
                host: host.to_string(),
                pid,
                category,
                conn: conn.map(str::to_string),
                kind,
                text,
                // The real master keeps its worker list to itself.
                board: None,
            });
    }
}

impl ClientWorld for Shared {
    type Stream = TcpStream;

    async fn connect(&self, addr: SocketAddr) -> io::Result<TcpStream> {
        let stream = TcpStream::connect(addr).await?;
        // Byte by byte means byte by byte: Nagle would gather a slow client's bytes.
        let _ = stream.set_nodelay(true);
        Ok(stream)
    }

    fn local_addr(stream: &TcpStream) -> Option<SocketAddr> {
        stream.local_addr().ok()
    }

    fn now_us(&self) -> u64 {
        Shared::now_us(self)
    }

    fn say(&self, _host: &str, conn: Option<&str>, kind: EventKind, text: String) {
        self.record_at(self.now_us(), Category::Client, None, conn, kind, text);
    }

    fn requests(&self) -> &Mutex<Vec<RequestRecord>> {
        &self.requests
    }

    /// A SYN dropped for a full accept queue is invisible but for the time connect() took:
    /// each retransmission it must have waited for is written down (the table's `*`).
    fn connected(&self, record: &RequestRecord) {
        let conn = record.conn.as_deref();
        let took = Duration::from_micros(record.connected_us.unwrap_or(0) - record.start_us);
        for (i, retry) in syn_retry_times().iter().enumerate() {
            // A retransmission answered at once returns a few ms after it was sent.
            if *retry > took + Duration::from_millis(50) {
                break;
            }
            self.record_at(
                record.start_us + retry.as_micros() as u64,
                Category::Net,
                None,
                conn,
                EventKind::SynRetry,
                format!(
                    "{} retransmits its SYN (attempt {}, {:.3} s after connect(); inferred: connect() took {})",
                    conn.unwrap_or("?"),
                    i + 2,
                    retry.as_secs_f64(),
                    sim::scenario::record::ms(took.as_micros() as u64)
                ),
            );
        }
    }

    fn describe_target(&self, addr: SocketAddr) -> String {
        format!(" (really {addr})")
    }
}

/// Every client connection, numbered as the simulation numbers them, starting when the
/// simulated one started (so a seed's jitter is the same).
fn plan_clients(scenario: &Scenario, sim: &RunOutput) -> Vec<Plan> {
    let mut plans = sim::scenario::client::plan_clients(scenario, sim.seed);
    for plan in &mut plans {
        if let Some(r) = sim
            .requests
            .iter()
            .find(|r| r.client == plan.label && r.seq == 1)
        {
            plan.start = Duration::from_micros(r.start_us);
        }
    }
    plans
}

/// Seconds after `connect()` at which this kernel retransmits an unanswered SYN:
/// `tcp_syn_linear_timeouts` tries 1 s apart, then doubling.
fn syn_retry_times() -> Vec<Duration> {
    let read = |name: &str, default: u32| {
        std::fs::read_to_string(format!("/proc/sys/net/ipv4/{name}"))
            .ok()
            .and_then(|s| s.trim().parse().ok())
            .unwrap_or(default)
    };
    let linear = read("tcp_syn_linear_timeouts", 0);
    let retries = read("tcp_syn_retries", 6);
    let mut times = Vec::new();
    let (mut at, mut gap) = (0u64, 1u64);
    for i in 0..retries {
        at += gap;
        times.push(Duration::from_secs(at));
        if i + 1 >= linear {
            gap *= 2;
        }
    }
    times
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn addresses_keep_their_host_and_get_the_mapped_port() {
        let ports = PortMap([(8000, 41000)].into_iter().collect());
        let root = Path::new("/tmp/r");
        assert_eq!(rebase_arg(":8000", root, &ports), ":41000");
        assert_eq!(
            rebase_arg("127.0.0.1:8000", root, &ports),
            "127.0.0.1:41000"
        );
        assert_eq!(
            rebase_arg("--http-socket=[::1]:8000", root, &ports),
            "--http-socket=[::1]:41000"
        );
        assert_eq!(
            rebase_arg("/home/alice/venv", root, &ports),
            "/tmp/r/home/alice/venv"
        );
        assert_eq!(
            rebase_arg("--chdir=/srv/app", root, &ports),
            "--chdir=/tmp/r/srv/app"
        );
        assert_eq!(rebase_arg("mysite.wsgi", root, &ports), "mysite.wsgi");
        assert_eq!(rebase_arg("--processes", root, &ports), "--processes");
    }

    #[test]
    fn the_first_syn_retries_are_a_second_apart_then_double() {
        // Whatever this machine's sysctls, the schedule grows and starts at 1 s.
        let times = syn_retry_times();
        if let Some(first) = times.first() {
            assert_eq!(*first, Duration::from_secs(1));
        }
        assert!(times.windows(2).all(|w| w[0] < w[1]));
    }
}
