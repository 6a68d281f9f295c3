//! A simulated server machine running the real `wsgilab serve`: the same `prepare`, `Master`
//! and worker code as the binary, over the simulated network, processes and Python. The
//! scenario runner builds on this; tests use it directly.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use server::config::{parse_serve_args_host, ConfigHost, ConfigOutcome};
use server::instance::Exit;
use server::master::REEXECUTED_ENV;
use server::procs::Procs;

use crate::files::FileTree;
use crate::net::SimNet;
use crate::procs::{as_process, Machine, MachineSpec, SimSupervisor};
use crate::python::{AppBehaviour, PythonInstall, SimPython};
use crate::trace::{Category, EventKind, Trace};

/// Everything about the server machine and the command typed on it.
#[derive(Clone, Debug, Default)]
pub struct ServerSetup {
    pub machine: MachineSpec,
    pub files: FileTree,
    pub python: PythonInstall,
    pub app: AppBehaviour,
    /// Where the command was typed.
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    /// What followed `wsgilab serve` (or `uwsgi`) on the command line.
    pub args: Vec<String>,
}

/// The hello-world app at `/srv/app/hello.py`.
pub const HELLO_SOURCE: &str = "def application(environ, start_response):\n    start_response('200 OK', [('Content-Type', 'text/plain')])\n    return [b'Hello, World!']\n";

impl ServerSetup {
    /// A machine with the hello-world app in `/srv/app/hello.py` — its source, and what it does
    /// declared beside it, since the model does not run Python — and `args` typed in
    /// `/srv/app`.
    pub fn hello_world(args: &[&str]) -> ServerSetup {
        let mut files = FileTree::new();
        files.add_file("/srv/app/hello.py", HELLO_SOURCE);
        let mut setup = ServerSetup {
            files,
            cwd: "/srv/app".into(),
            args: args.iter().map(|s| s.to_string()).collect(),
            ..ServerSetup::default()
        };
        setup.app.default.body = Some("Hello, World!".into());
        setup.app.default.content_type = "text/plain".into();
        setup
    }
}

/// Runs the server process on the current turmoil host (named `net.host()`) until it exits;
/// its exit status. The host's machine is returned through `on_machine` as soon as it exists,
/// for faults (kills) and inspection.
pub async fn run_server(
    setup: ServerSetup,
    net: SimNet,
    trace: Trace,
    on_machine: impl FnOnce(&Machine),
) -> i32 {
    let host = net.host().to_string();
    let machine = Machine::new(
        &host,
        setup.machine.clone(),
        setup.files.clone(),
        trace.clone(),
    );
    on_machine(&machine);
    let pid = machine.start_process("wsgilab serve", &setup.cwd, setup.env.clone());
    let process_machine = machine.clone();
    let main = as_process(pid, async move {
        let machine = process_machine;
        loop {
            match run_image(&setup, &net, &trace, &machine, pid).await {
                Exit::Code(status) => return exit(&machine, pid, status),
                Exit::ReplacedByExec => {
                    // uWSGI's "binary reloading": the same program, pid and command line, with
                    // the listening sockets kept open; it starts from the top, banner and
                    // import included.
                    machine.trace.record(
                        &machine.host,
                        Some(pid),
                        Category::Proc,
                        EventKind::Exec,
                        format!("pid {pid} re-executes itself (exec): same pid, same command line, the listening socket kept open"),
                    );
                    machine.set_env(pid, REEXECUTED_ENV, "1");
                }
            }
        }
    });
    // The process's main task, so that a signal that kills the process stops it too.
    let task = tokio::task::spawn_local(main);
    machine.adopt_task(pid, task.abort_handle());
    match task.await {
        Ok(status) => status,
        // Killed: the shell's `$?` for a death by signal.
        Err(_) => 128 + machine.death_signal(pid).unwrap_or(9),
    }
}

/// The scenario machine as the configuration reader sees it: the scenario's files, the
/// directory the command was typed in, its environment and host name.
pub struct SimConfigHost<'a> {
    pub setup: &'a ServerSetup,
}

impl ConfigHost for SimConfigHost<'_> {
    fn cwd(&self) -> PathBuf {
        self.setup.cwd.clone()
    }
    fn read_file(&self, path: &std::path::Path) -> io::Result<String> {
        self.setup
            .files
            .read(path)
            .map(str::to_string)
            .ok_or_else(|| io::Error::from_raw_os_error(2))
    }
    fn is_file(&self, path: &std::path::Path) -> bool {
        self.setup.files.is_file(path)
    }
    fn is_dir(&self, path: &std::path::Path) -> bool {
        self.setup.files.is_dir(path)
    }
    fn list_dir(&self, path: &std::path::Path) -> Vec<String> {
        self.setup.files.list(path)
    }
    fn env_vars(&self) -> Vec<(String, String)> {
        self.setup
            .env
            .iter()
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect()
    }
    fn facts(&self) -> server::config::placeholders::MachineFacts {
        let mut facts = server::config::fixed_facts(&self.setup.cwd);
        facts.hostname = self.setup.machine.nodename.clone();
        facts.cpus = self.setup.machine.cores as u32;
        facts.uid = self.setup.machine.uid;
        // `%t`/`%T` read the simulated machine's clock, which starts at its epoch.
        facts.now_micros = self.setup.machine.epoch_unix * 1_000_000;
        facts
    }
}

/// Reads the scenario's command line as `wsgilab serve` reads its own, against the scenario's
/// files and environment.
pub fn parse_command(setup: &ServerSetup) -> Result<ConfigOutcome, server::config::ConfigError> {
    let args: Vec<OsString> = setup.args.iter().map(OsString::from).collect();
    parse_serve_args_host(&args, &SimConfigHost { setup })
}

/// One image of the `wsgilab serve` program, from its command line to its exit (or its
/// replacement by `exec()`).
async fn run_image(
    setup: &ServerSetup,
    net: &SimNet,
    trace: &Trace,
    machine: &Machine,
    pid: u32,
) -> Exit {
    let procs = machine.procs(pid);
    let config = match parse_command(setup) {
        Ok(ConfigOutcome::Run(config)) => config,
        Ok(ConfigOutcome::Help(text)) | Ok(ConfigOutcome::ShowConfig(text)) => {
            for line in text.lines() {
                procs.log(line);
            }
            return Exit::Code(0);
        }
        Err(e) => {
            if let Some(shown) = e.show_config() {
                for line in shown.lines() {
                    procs.log(line);
                }
            }
            for line in e.lines() {
                procs.log(&format!("wsgilab serve: {line}"));
            }
            return Exit::Code(2);
        }
    };
    let mut python = SimPython::new(
        setup.python.clone(),
        setup.files.clone(),
        Arc::new(procs.clone()),
        machine.executor(),
    )
    .with_behaviour(setup.app.clone())
    .with_trace(trace.clone(), &machine.host);
    let supervisor = || Ok(SimSupervisor::new(machine.clone(), pid).with_net(net.clone()));
    server::instance::run(&config, net, &procs, supervisor, &mut python).await
}

fn exit(machine: &Machine, pid: u32, status: i32) -> i32 {
    machine.trace.record(
        &machine.host,
        Some(pid),
        Category::Proc,
        EventKind::Exit,
        format!("pid {pid} exited with status {status}"),
    );
    status
}

/// A small simulated world for tests: server machines running the real `wsgilab serve`, client
/// hosts, one trace, turmoil's clock at the machines' epoch (never the real clock). Tests build
/// it in a few lines instead of wiring turmoil by hand:
///
/// ```no_run
/// # use std::time::Duration;
/// # use sim::world::{get, ServerSetup, TestWorld};
/// let mut world = TestWorld::new(Duration::from_secs(60));
/// world.server("server", ServerSetup::hello_world(&["--http-socket", ":8000", "--wsgi-file", "hello.py"]));
/// world.client("client", |net| async move {
///     let answer = get(&net, "server", 8000, "/").await?;
///     assert!(answer.starts_with("HTTP/1.1 200 OK"));
///     Ok(())
/// });
/// let done = world.run();
/// ```
pub struct TestWorld {
    sim: turmoil::Sim<'static>,
    trace: Trace,
    /// The first server's network; the others and the clients are hosts on it.
    net: Option<SimNet>,
    machines: Arc<std::sync::Mutex<BTreeMap<String, Machine>>>,
}

/// What a [`TestWorld`] run leaves: the trace and each server's machine.
pub struct TestRun {
    pub events: Vec<crate::trace::Event>,
    pub machines: BTreeMap<String, Machine>,
}

impl TestWorld {
    /// A world that stops after `duration` of virtual time.
    pub fn new(duration: std::time::Duration) -> TestWorld {
        let epoch = MachineSpec::default().epoch_unix;
        TestWorld {
            sim: turmoil::Builder::new()
                .epoch(std::time::UNIX_EPOCH + std::time::Duration::from_secs(epoch))
                .simulation_duration(duration)
                .build(),
            trace: Trace::default(),
            net: None,
            machines: Arc::default(),
        }
    }

    fn net_for(&mut self, host: &str) -> SimNet {
        match &self.net {
            Some(net) => net.with_host(host, crate::net::Sysctls::default()),
            None => {
                let net = SimNet::new(self.trace.clone(), host, crate::net::Sysctls::default());
                self.net = Some(net.clone());
                net
            }
        }
    }

    /// A server machine `host` running `setup`'s command line.
    pub fn server(&mut self, host: &str, setup: ServerSetup) -> &mut Self {
        let net = self.net_for(host);
        let (trace, machines, name) = (self.trace.clone(), self.machines.clone(), host.to_string());
        self.sim.host(host, move || {
            let (setup, net, trace, machines, name) = (
                setup.clone(),
                net.clone(),
                trace.clone(),
                machines.clone(),
                name.clone(),
            );
            async move {
                run_server(setup, net, trace, |m| {
                    let mut machines = machines.lock().unwrap_or_else(|e| e.into_inner());
                    machines.insert(name, m.clone());
                })
                .await;
                Ok(())
            }
        });
        self
    }

    /// A client host running `client` with its network; it starts 100 ms into the run, once
    /// the servers have imported their app and bound their sockets.
    pub fn client<F, Fut>(&mut self, host: &str, client: F) -> &mut Self
    where
        F: FnOnce(SimNet) -> Fut,
        Fut: std::future::Future<Output = turmoil::Result> + 'static,
    {
        let net = self.net_for(host);
        let run = client(net);
        self.sim.client(host, async move {
            tokio::time::sleep(std::time::Duration::from_millis(100)).await;
            run.await
        });
        self
    }

    /// Runs the world until every client is done; panics if the simulation fails.
    pub fn run(mut self) -> TestRun {
        self.sim.run().expect("the simulation runs to its end");
        let machines =
            std::mem::take(&mut *self.machines.lock().unwrap_or_else(|e| e.into_inner()));
        TestRun {
            events: self.trace.events(),
            machines,
        }
    }
}

/// `GET path HTTP/1.1` to `host:port` on a new connection, read to its end: the response.
pub async fn get(net: &SimNet, host: &str, port: u16, path: &str) -> io::Result<String> {
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let server = std::net::SocketAddr::new(turmoil::lookup(host), port);
    let mut stream = net.connect(server).await?;
    stream
        .write_all(format!("GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n").as_bytes())
        .await?;
    let mut response = Vec::new();
    stream.read_to_end(&mut response).await?;
    Ok(String::from_utf8_lossy(&response).into_owned())
}
