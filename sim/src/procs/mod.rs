//! The simulated machine's processes: a process table (pid, parent, working directory,
//! environment, resident memory, liveness), the CPUs ([`scheduler`]), and the process seam
//! implemented over them — [`SimProcs`] for one process's view of itself, [`SimSupervisor`]
//! for the master's forking, signalling and hearing from workers.
//!
//! A simulated process is a set of tasks on its turmoil host. Forking spawns the worker's
//! task; killing aborts every task of the process, which drops its sockets as the kernel would
//! close them.

pub mod scheduler;

use std::collections::BTreeMap;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use server::procs::{
    ExitStatus, ForkHooks, LocalTime, MasterEvent, MasterMessage, Procs, Signal, Supervisor,
    SystemInfo, WorkerLink, WorkerMessage,
};
use server::scoreboard::WorkerStatus;
use tokio::sync::{mpsc, Notify};
use tokio::task::AbortHandle;

use crate::files::{normalize, FileTree};
use crate::trace::{Category, EventKind, Trace};
use scheduler::Cpus;

/// What the simulated machine reports about itself (uWSGI's banner reads it).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MachineSpec {
    pub nodename: String,
    pub cores: usize,
    pub somaxconn: u32,
    pub process_limit: Option<u64>,
    pub page_size: u64,
    pub max_fds: u64,
    /// Wall-clock seconds at the start of the run (the scenario's epoch).
    pub epoch_unix: u64,
    pub uid: u32,
}

impl Default for MachineSpec {
    fn default() -> Self {
        MachineSpec {
            nodename: "vm".into(),
            cores: 2,
            somaxconn: 4096,
            process_limit: Some(96365),
            page_size: 4096,
            max_fds: 20000,
            // Mon Nov 23 2026 23:24:50 UTC: the day uwsgi-facts.md was observed.
            epoch_unix: 1_795_476_290,
            uid: 1000,
        }
    }
}

/// One entry of the process table.
#[derive(Debug)]
pub struct Process {
    pub pid: u32,
    pub parent: Option<u32>,
    pub name: String,
    pub cwd: PathBuf,
    pub env: BTreeMap<String, String>,
    pub rss: u64,
    pub alive: bool,
    /// The signal it died of, if it was killed.
    pub killed_by: Option<i32>,
    tasks: Vec<AbortHandle>,
}

struct MachineState {
    spec: MachineSpec,
    files: FileTree,
    processes: BTreeMap<u32, Process>,
    next_pid: u32,
    /// Where the death of a child is reported (its parent's SIGCHLD): the master's supervisor.
    exits: Option<mpsc::UnboundedSender<MasterEvent>>,
    /// Where a server without a master hears SIGINT, SIGQUIT and SIGTERM
    /// ([`Procs::stop_signal`]).
    stop_listener: Option<mpsc::UnboundedSender<Signal>>,
    /// The last `ctime` formatted, and for which Unix second.
    ctime: Option<(u64, String)>,
}

/// One simulated machine (a turmoil host): its processes, files and CPUs.
#[derive(Clone)]
pub struct Machine {
    state: Arc<Mutex<MachineState>>,
    pub cpus: Cpus,
    pub trace: Trace,
    pub host: String,
}

impl Machine {
    pub fn new(host: &str, spec: MachineSpec, files: FileTree, trace: Trace) -> Machine {
        Machine {
            cpus: Cpus::new(spec.cores),
            state: Arc::new(Mutex::new(MachineState {
                spec,
                files,
                processes: BTreeMap::new(),
                next_pid: 1000,
                exits: None,
                stop_listener: None,
                ctime: None,
            })),
            trace,
            host: host.to_string(),
        }
    }

    fn lock(&self) -> MutexGuard<'_, MachineState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Starts a process as a shell would: `name` run in `cwd` with `env`.
    pub fn start_process(&self, name: &str, cwd: &Path, env: BTreeMap<String, String>) -> u32 {
        let pid = self.new_pid();
        self.lock().processes.insert(
            pid,
            Process {
                pid,
                parent: None,
                name: name.into(),
                cwd: normalize(cwd),
                env,
                rss: 10 << 20,
                alive: true,
                killed_by: None,
                tasks: Vec::new(),
            },
        );
        self.trace.record(
            &self.host,
            Some(pid),
            Category::Proc,
            EventKind::Exec,
            format!("{name} started (pid {pid})"),
        );
        pid
    }

    fn new_pid(&self) -> u32 {
        let mut state = self.lock();
        state.next_pid += 1;
        state.next_pid
    }

    /// A child with a copy of the parent's working directory, environment and memory.
    fn fork(&self, parent: u32, name: &str) -> u32 {
        let pid = self.new_pid();
        let mut state = self.lock();
        let (cwd, env, rss) = match state.processes.get(&parent) {
            Some(p) => (p.cwd.clone(), p.env.clone(), p.rss),
            None => (PathBuf::from("/"), BTreeMap::new(), 10 << 20),
        };
        state.processes.insert(
            pid,
            Process {
                pid,
                parent: Some(parent),
                name: name.into(),
                cwd,
                env,
                rss,
                alive: true,
                killed_by: None,
                tasks: Vec::new(),
            },
        );
        pid
    }

    /// Makes `task` one of process `pid`'s: it is aborted when the process dies.
    pub fn adopt_task(&self, pid: u32, task: AbortHandle) {
        self.add_task(pid, task);
    }

    /// The signal that killed `pid`, if one did.
    pub fn death_signal(&self, pid: u32) -> Option<i32> {
        self.lock().processes.get(&pid).and_then(|p| p.killed_by)
    }

    fn add_task(&self, pid: u32, task: AbortHandle) {
        if let Some(p) = self.lock().processes.get_mut(&pid) {
            p.tasks.push(task);
        }
    }

    /// Ends a process: its tasks are aborted, so its sockets close.
    fn terminate(&self, pid: u32) -> bool {
        let tasks = match self.lock().processes.get_mut(&pid) {
            Some(p) if p.alive => {
                p.alive = false;
                std::mem::take(&mut p.tasks)
            }
            _ => return false,
        };
        for task in tasks {
            task.abort();
        }
        true
    }

    /// Delivers `signal` with its default action (the process ends), as the kernel does to a
    /// worker: its tasks stop, its sockets close, its parent hears of it.
    pub fn kill(&self, pid: u32, signal: Signal) -> bool {
        if !self.terminate(pid) {
            return false;
        }
        if let Some(p) = self.lock().processes.get_mut(&pid) {
            p.killed_by = Some(signal.number());
        }
        self.trace.record(
            &self.host,
            Some(pid),
            Category::Proc,
            EventKind::Killed,
            format!("pid {pid} killed by {}", signal.name()),
        );
        let exits = self.lock().exits.clone();
        if let Some(exits) = exits {
            let _ = exits.send(MasterEvent::Exited {
                pid,
                status: ExitStatus::Signal(signal),
            });
        }
        true
    }

    /// The app's way of using this machine: CPU time on the shared cores, sleeps, crashes and
    /// leaks, each charged to the process whose task runs it.
    pub fn executor(&self) -> SimExecutor {
        SimExecutor {
            machine: self.clone(),
        }
    }

    /// Sends `signal` to the process the command started, as `kill -TERM <pid>` would: a
    /// master's handler (its supervisor's event queue) receives it, or, without a master, the
    /// server's wait for a stop signal (SIGINT, SIGQUIT, SIGTERM). False when nothing handles
    /// it: the signal's default action applies.
    pub fn signal_master(&self, signal: Signal) -> bool {
        let (exits, stop_listener) = {
            let state = self.lock();
            (state.exits.clone(), state.stop_listener.clone())
        };
        match (exits, stop_listener) {
            (Some(exits), _) => exits.send(MasterEvent::Signal(signal)).is_ok(),
            (None, Some(listener))
                if matches!(signal, Signal::Int | Signal::Quit | Signal::Term) =>
            {
                listener.send(signal).is_ok()
            }
            _ => false,
        }
    }

    /// The live processes, in pid order: (pid, parent, name).
    pub fn processes(&self) -> Vec<(u32, Option<u32>, String)> {
        self.lock()
            .processes
            .values()
            .filter(|p| p.alive)
            .map(|p| (p.pid, p.parent, p.name.clone()))
            .collect()
    }

    /// Sets an environment variable of process `pid` (as its new image's environment).
    pub fn set_env(&self, pid: u32, name: &str, value: &str) {
        if let Some(p) = self.lock().processes.get_mut(&pid) {
            p.env.insert(name.to_string(), value.to_string());
        }
    }

    pub fn is_alive(&self, pid: u32) -> bool {
        self.lock().processes.get(&pid).is_some_and(|p| p.alive)
    }

    /// The resident memory of a process, as the table has it (a dead process keeps its
    /// last figure).
    pub fn rss(&self, pid: u32) -> Option<u64> {
        self.lock().processes.get(&pid).map(|p| p.rss)
    }

    pub fn grow_rss(&self, pid: u32, bytes: u64) {
        if let Some(p) = self.lock().processes.get_mut(&pid) {
            p.rss += bytes;
        }
    }

    pub fn files(&self) -> FileTree {
        self.lock().files.clone()
    }

    pub fn spec(&self) -> MachineSpec {
        self.lock().spec.clone()
    }

    /// The process's view of itself.
    pub fn procs(&self, pid: u32) -> SimProcs {
        SimProcs {
            machine: self.clone(),
            pid,
        }
    }
}

tokio::task_local! {
    /// The simulated process whose task is running. A forked worker gets a copy of the
    /// master's handles (as a real fork copies memory), so "which process am I" must come from
    /// the running task, as `getpid()` comes from the running process.
    static CURRENT_PID: u32;
}

/// Runs `future` as (a task of) process `pid`.
pub async fn as_process<F: std::future::Future>(pid: u32, future: F) -> F::Output {
    CURRENT_PID.scope(pid, future).await
}

/// The process whose task is running, if any.
pub fn current_pid() -> Option<u32> {
    CURRENT_PID.try_with(|pid| *pid).ok()
}

/// One simulated process's view of itself and its machine.
#[derive(Clone)]
pub struct SimProcs {
    pub machine: Machine,
    /// The process this handle was made for; the running task's process wins (see
    /// [`current_pid`]).
    pub pid: u32,
}

impl SimProcs {
    fn current(&self) -> u32 {
        current_pid().unwrap_or(self.pid)
    }

    fn with_process<T>(&self, f: impl FnOnce(&mut Process) -> T) -> Option<T> {
        let pid = self.current();
        self.machine.lock().processes.get_mut(&pid).map(f)
    }

    fn absolute(&self, path: &Path) -> PathBuf {
        let cwd = self
            .with_process(|p| p.cwd.clone())
            .unwrap_or_else(|| PathBuf::from("/"));
        normalize(&cwd.join(path))
    }
}

impl Procs for SimProcs {
    fn pid(&self) -> u32 {
        self.current()
    }

    fn system(&self) -> SystemInfo {
        let spec = self.machine.spec();
        SystemInfo {
            nodename: spec.nodename.clone(),
            os: "Linux-6.18.44 #1 SMP PREEMPT_DYNAMIC @0".into(),
            machine: "x86_64".into(),
            cores: spec.cores,
            process_limit: spec.process_limit,
            page_size: spec.page_size,
            max_fds: spec.max_fds,
            somaxconn: spec.somaxconn,
            binary_path: PathBuf::from("/usr/local/bin/wsgilab"),
            uid: spec.uid,
            gid: spec.uid,
            is_root: spec.uid == 0,
        }
    }

    fn unix_time(&self) -> u64 {
        // Read for every request's log line: no copy of the whole spec.
        let epoch = self.machine.lock().spec.epoch_unix;
        epoch + crate::trace::now().as_secs()
    }

    fn local_time(&self, unix_time: u64) -> LocalTime {
        utc(unix_time)
    }

    /// Every request's log line has one: formatted once per simulated second.
    fn now_ctime(&self) -> String {
        let now = self.unix_time();
        let mut state = self.machine.lock();
        match &state.ctime {
            Some((at, text)) if *at == now => text.clone(),
            _ => {
                let text = utc(now).ctime();
                state.ctime = Some((now, text.clone()));
                text
            }
        }
    }

    fn log(&self, line: &str) {
        self.machine.trace.record(
            &self.machine.host,
            Some(self.pid),
            Category::Log,
            EventKind::Log,
            line,
        );
    }

    fn current_dir(&self) -> io::Result<PathBuf> {
        self.with_process(|p| p.cwd.clone())
            .ok_or_else(|| io::ErrorKind::NotFound.into())
    }

    fn set_current_dir(&self, dir: &Path) -> io::Result<()> {
        let dir = self.absolute(dir);
        if !self.machine.lock().files.is_dir(&dir) {
            return Err(io::Error::from_raw_os_error(2));
        }
        self.with_process(|p| p.cwd = dir);
        Ok(())
    }

    fn env_var(&self, name: &str) -> Option<String> {
        self.with_process(|p| p.env.get(name).cloned()).flatten()
    }

    fn is_dir(&self, path: &Path) -> bool {
        let path = self.absolute(path);
        self.machine.lock().files.is_dir(&path)
    }

    fn is_file(&self, path: &Path) -> bool {
        let path = self.absolute(path);
        self.machine.lock().files.is_file(&path)
    }

    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>> {
        let path = self.absolute(path);
        let state = self.machine.lock();
        if !state.files.is_dir(&path) {
            return Err(io::Error::from_raw_os_error(2));
        }
        Ok(state.files.list(&path))
    }

    fn read_to_string(&self, path: &Path) -> io::Result<String> {
        let path = self.absolute(path);
        self.machine
            .lock()
            .files
            .read(&path)
            .map(str::to_string)
            .ok_or_else(|| io::Error::from_raw_os_error(2))
    }

    fn rss_bytes(&self) -> u64 {
        self.with_process(|p| p.rss).unwrap_or(0)
    }

    async fn stop_signal(&self) -> Signal {
        let (tx, mut rx) = mpsc::unbounded_channel();
        self.machine.lock().stop_listener = Some(tx);
        match rx.recv().await {
            Some(signal) => signal,
            None => std::future::pending().await,
        }
    }

    async fn run_cores<F, Fut>(&self, cores: usize, core: F)
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + 'static,
    {
        let core = Arc::new(core);
        let pid = self.current();
        let mut others = Vec::new();
        for index in 1..cores {
            let core = core.clone();
            let handle =
                tokio::task::spawn_local(as_process(pid, async move { core(index).await }));
            self.machine.add_task(pid, handle.abort_handle());
            others.push(handle);
        }
        core(0).await;
        for handle in others {
            let _ = handle.await;
        }
    }
}

/// The interpreter's view of its process: the one whose task runs, and the machine's
/// process table for who else is alive.
impl crate::python::ProcessView for SimProcs {
    fn pid(&self) -> Option<u32> {
        Some(self.current())
    }

    fn cwd(&self) -> PathBuf {
        self.current_dir().unwrap_or_else(|_| PathBuf::from("/"))
    }

    fn env(&self, name: &str) -> Option<String> {
        self.env_var(name)
    }

    fn is_alive(&self, pid: u32) -> bool {
        self.machine.is_alive(pid)
    }
}

/// The civil UTC date of a Unix time (Howard Hinnant's days-to-civil algorithm): the simulated
/// machine keeps UTC, so its logs do not depend on the host's time zone.
pub fn utc(unix_time: u64) -> LocalTime {
    let days = (unix_time / 86_400) as i64;
    let secs = unix_time % 86_400;
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = (yoe + era * 400 + i64::from(month <= 2)) as i32;
    LocalTime {
        year,
        month,
        day,
        hour: (secs / 3600) as u32,
        minute: (secs / 60 % 60) as u32,
        second: (secs % 60) as u32,
        // 1970-01-01 was a Thursday.
        weekday: ((days + 4).rem_euclid(7)) as u32,
    }
}

/// The master's side: forks are tasks, the channel is an in-memory queue.
pub struct SimSupervisor {
    machine: Machine,
    master: u32,
    /// The host's network, whose sockets an exec() keeps open.
    net: Option<crate::net::SimNet>,
    events_tx: mpsc::UnboundedSender<MasterEvent>,
    events_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<MasterEvent>>,
    links: Mutex<BTreeMap<u32, Arc<LinkState>>>,
}

/// A handle the scenario runner keeps to send signals to the master, as `kill` would.
#[derive(Clone)]
pub struct MasterSignals {
    events_tx: mpsc::UnboundedSender<MasterEvent>,
}

impl MasterSignals {
    pub fn send(&self, signal: Signal) {
        let _ = self.events_tx.send(MasterEvent::Signal(signal));
    }
}

impl SimSupervisor {
    pub fn new(machine: Machine, master: u32) -> SimSupervisor {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        machine.lock().exits = Some(events_tx.clone());
        SimSupervisor {
            machine,
            master,
            net: None,
            events_tx,
            events_rx: tokio::sync::Mutex::new(events_rx),
            links: Mutex::new(BTreeMap::new()),
        }
    }

    /// The network of the master's host, for its exec().
    pub fn with_net(mut self, net: crate::net::SimNet) -> SimSupervisor {
        self.net = Some(net);
        self
    }

    pub fn signals(&self) -> MasterSignals {
        MasterSignals {
            events_tx: self.events_tx.clone(),
        }
    }
}

impl Supervisor for SimSupervisor {
    type Link = SimLink;

    fn spawn_worker<F, Fut>(&self, hooks: &dyn ForkHooks, main: F) -> io::Result<u32>
    where
        F: FnOnce(SimLink) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = i32> + 'static,
    {
        hooks.before_fork();
        let pid = self.machine.fork(self.master, "worker");
        self.machine.trace.record(
            &self.machine.host,
            Some(pid),
            Category::Proc,
            EventKind::Fork,
            format!("forked from {} as pid {pid}", self.master),
        );
        // The child's hook runs in the child, as it does after a real fork: "which process am
        // I" answers the new pid there.
        CURRENT_PID.sync_scope(pid, || hooks.after_fork_child());
        hooks.after_fork_parent();
        let link = Arc::new(LinkState {
            pid,
            events_tx: self.events_tx.clone(),
            stop: AtomicBool::new(false),
            notify: Notify::new(),
        });
        self.links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .insert(pid, link.clone());
        let machine = self.machine.clone();
        let events = self.events_tx.clone();
        let task = tokio::task::spawn_local(as_process(pid, async move {
            let code = main(SimLink(link)).await;
            // The process returns from main: it exits, its remaining tasks go with it.
            if machine.terminate(pid) {
                machine.trace.record(
                    &machine.host,
                    Some(pid),
                    Category::Proc,
                    EventKind::Exit,
                    format!("pid {pid} exited with status {code}"),
                );
                let _ = events.send(MasterEvent::Exited {
                    pid,
                    status: ExitStatus::Code(code),
                });
            }
        }));
        self.machine.add_task(pid, task.abort_handle());
        Ok(pid)
    }

    fn kill(&self, pid: u32, signal: Signal) -> io::Result<()> {
        if !self.machine.is_alive(pid) {
            return Err(io::Error::from_raw_os_error(3)); // ESRCH
        }
        self.machine.trace.record(
            &self.machine.host,
            Some(pid),
            Category::Proc,
            EventKind::Signal,
            format!("{} sent to pid {pid}", signal.name()),
        );
        // A worker keeps the default dispositions: every signal the master sends ends it.
        if self.machine.terminate(pid) {
            self.machine.trace.record(
                &self.machine.host,
                Some(pid),
                Category::Proc,
                EventKind::Killed,
                format!("pid {pid} killed by {}", signal.name()),
            );
            let _ = self.events_tx.send(MasterEvent::Exited {
                pid,
                status: ExitStatus::Signal(signal),
            });
        }
        Ok(())
    }

    fn send(&self, pid: u32, message: MasterMessage) {
        if let Some(link) = self
            .links
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .get(&pid)
        {
            match message {
                MasterMessage::Stop => {
                    link.stop.store(true, Ordering::SeqCst);
                    link.notify.notify_waiters();
                }
            }
        }
    }

    /// The exec() of the master: its listening sockets are kept open, and this image ends;
    /// [`crate::world::run_server`] then runs the new one in the same process.
    fn reexec(&self, keep: &[(std::net::SocketAddr, i32)]) -> io::Error {
        let Some(net) = &self.net else {
            return io::Error::new(
                io::ErrorKind::Unsupported,
                "this simulated machine has no network to keep sockets open on",
            );
        };
        for (addr, _) in keep {
            net.keep_for_exec(*addr);
        }
        io::Error::other(server::procs::ProgramReplaced)
    }

    fn board_changed(&self, statuses: &[WorkerStatus]) {
        self.machine
            .trace
            .record_board(&self.machine.host, self.master, statuses);
    }

    async fn next_event(&self) -> MasterEvent {
        let mut events = self.events_rx.lock().await;
        match events.recv().await {
            Some(event) => event,
            // The supervisor holds a sender, so the queue never closes.
            None => std::future::pending().await,
        }
    }
}

/// [`crate::python::AppExecutor`] over a simulated machine.
#[derive(Clone)]
pub struct SimExecutor {
    machine: Machine,
}

impl crate::python::AppExecutor for SimExecutor {
    async fn cpu(&self, d: std::time::Duration) {
        let pid = current_pid().unwrap_or(0);
        self.machine.cpus.run(pid, d).await;
    }

    async fn sleep(&self, d: std::time::Duration) {
        tokio::time::sleep(d).await;
    }

    async fn crash(&self, signal: i32) {
        if let Some(pid) = current_pid() {
            self.machine.kill(pid, Signal::from_number(signal));
        }
        // The process is gone; its tasks are being aborted.
        std::future::pending::<()>().await;
    }

    fn grow_rss(&self, bytes: u64) {
        if let Some(pid) = current_pid() {
            self.machine.grow_rss(pid, bytes);
        }
    }

    async fn hang(&self) {
        std::future::pending::<()>().await;
    }
}

struct LinkState {
    pid: u32,
    events_tx: mpsc::UnboundedSender<MasterEvent>,
    stop: AtomicBool,
    notify: Notify,
}

/// A simulated worker's end of its channel to the master.
pub struct SimLink(Arc<LinkState>);

impl WorkerLink for SimLink {
    fn send(&self, message: WorkerMessage) {
        let _ = self.0.events_tx.send(MasterEvent::Message {
            pid: self.0.pid,
            message,
        });
    }

    async fn stop_requested(&self) {
        loop {
            let notified = self.0.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.0.stop.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn utc_dates() {
        assert_eq!(utc(0).ctime(), "Thu Jan  1 00:00:00 1970");
        assert_eq!(utc(1_795_476_290).ctime(), "Mon Nov 23 23:24:50 2026");
        assert_eq!(utc(951_782_400).ctime(), "Tue Feb 29 00:00:00 2000");
    }
}
