//! A simulated server machine running the real `wsgilab serve`: the same `prepare`, `Master`
//! and worker code as the binary, over the simulated network, processes and Python. The
//! scenario runner builds on this; tests use it directly.

use std::collections::BTreeMap;
use std::ffi::OsString;
use std::io;
use std::path::PathBuf;
use std::sync::Arc;

use server::config::{parse_serve_args_host, ConfigHost, ConfigOutcome};
use server::master::{Master, REEXECUTED_ENV, REPLACED_BY_EXEC};
use server::procs::Procs;

use crate::files::FileTree;
use crate::net::SimNet;
use crate::procs::{as_process, Machine, MachineSpec, SimSupervisor};
use crate::python::{AppBehaviour, PythonInstall, SimPython};
use crate::trace::{Category, Trace};

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
            let status = run_image(&setup, &net, &trace, &machine, pid).await;
            if status != REPLACED_BY_EXEC {
                return exit(&machine, pid, status);
            }
            // uWSGI's "binary reloading": the same program, pid and command line, with the
            // listening sockets kept open; it starts from the top, banner and import included.
            machine.trace.record(
                &machine.host,
                Some(pid),
                Category::Proc,
                "exec",
                format!("pid {pid} re-executes itself (exec): same pid, same command line, the listening socket kept open"),
            );
            machine.set_env(pid, REEXECUTED_ENV, "1");
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
        facts
    }
}

/// Reads the scenario's command line as `wsgilab serve` reads its own, against the scenario's
/// files and environment.
pub fn parse_command(setup: &ServerSetup) -> Result<ConfigOutcome, server::config::ConfigError> {
    let args: Vec<OsString> = setup.args.iter().map(OsString::from).collect();
    parse_serve_args_host(&args, &SimConfigHost { setup })
}

/// One image of the `wsgilab serve` program, from its command line to its exit status (or
/// [`REPLACED_BY_EXEC`]).
async fn run_image(
    setup: &ServerSetup,
    net: &SimNet,
    trace: &Trace,
    machine: &Machine,
    pid: u32,
) -> i32 {
    let procs = machine.procs(pid);
    let config = match parse_command(setup) {
        Ok(ConfigOutcome::Run(config)) => config,
        Ok(ConfigOutcome::Help(text)) | Ok(ConfigOutcome::ShowConfig(text)) => {
            for line in text.lines() {
                procs.log(line);
            }
            return 0;
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
            return 2;
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
    let prepared = match server::serve::prepare(&config, net, &procs, &mut python) {
        Ok(prepared) => prepared,
        Err(status) => return status,
    };
    if prepared.master_mode {
        let supervisor = SimSupervisor::new(machine.clone(), pid).with_net(net.clone());
        match Master::new(&config, net, &procs, &supervisor, &python, &prepared) {
            Ok(mut master) => master.run().await,
            Err(e) => {
                procs.log(&format!("wsgilab: cannot start the stats server: {e}"));
                1
            }
        }
    } else {
        server::serve::serve(&prepared, net, &procs, &python).await
    }
}

fn exit(machine: &Machine, pid: u32, status: i32) -> i32 {
    machine.trace.record(
        &machine.host,
        Some(pid),
        Category::Proc,
        "exit",
        format!("pid {pid} exited with status {status}"),
    );
    status
}
