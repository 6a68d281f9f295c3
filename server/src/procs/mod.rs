//! The process seam: what one process of the server knows about itself and its machine — pid,
//! clock, working directory, environment variables, files, limits — and where its log goes.
//!
//! [`Supervisor`] is the master's part: forking workers, signalling them, hearing how they died,
//! and the message channel between master and workers. [`real`] reads the running system and
//! forks real processes; the simulation keeps a process table and a file tree from the scenario.

pub mod real;
pub mod supervisor;

use std::io;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use crate::scoreboard::WorkerStatus;

/// Facts about the machine and this process, as uWSGI's banner prints them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SystemInfo {
    pub nodename: String,
    /// `Linux-6.18.44 #1 SMP PREEMPT_DYNAMIC @0`: sysname, release and version.
    pub os: String,
    pub machine: String,
    pub cores: usize,
    /// RLIMIT_NPROC, `None` when unlimited.
    pub process_limit: Option<u64>,
    pub page_size: u64,
    /// RLIMIT_NOFILE (soft).
    pub max_fds: u64,
    /// `net.core.somaxconn`: the kernel's cap on a listening socket's backlog.
    pub somaxconn: u32,
    pub binary_path: PathBuf,
    pub uid: u32,
    pub gid: u32,
    pub is_root: bool,
}

/// A broken-down local time, for log lines (`Mon Nov 23 23:24:52 2026`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LocalTime {
    pub year: i32,
    /// 1..=12
    pub month: u32,
    pub day: u32,
    pub hour: u32,
    pub minute: u32,
    pub second: u32,
    /// 0 = Sunday
    pub weekday: u32,
}

impl LocalTime {
    /// The 24-character form of C's `ctime()`, which uWSGI's logs use.
    pub fn ctime(&self) -> String {
        const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
        const MONTHS: [&str; 12] = [
            "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
        ];
        format!(
            "{} {} {:2} {:02}:{:02}:{:02} {}",
            DAYS[self.weekday as usize % 7],
            MONTHS[(self.month as usize + 11) % 12],
            self.day,
            self.hour,
            self.minute,
            self.second,
            self.year
        )
    }
}

/// One process's view of itself and its machine.
pub trait Procs {
    fn pid(&self) -> u32;
    fn system(&self) -> SystemInfo;
    /// Seconds since the Unix epoch (the simulation's clock starts at the scenario's epoch).
    fn unix_time(&self) -> u64;
    fn local_time(&self, unix_time: u64) -> LocalTime;
    /// Writes one line to the process's log (stderr for a real process).
    fn log(&self, line: &str);

    fn current_dir(&self) -> io::Result<PathBuf>;
    fn set_current_dir(&self, dir: &Path) -> io::Result<()>;
    fn env_var(&self, name: &str) -> Option<String>;
    fn is_dir(&self, path: &Path) -> bool;
    fn is_file(&self, path: &Path) -> bool;
    /// Names of a directory's entries, sorted.
    fn read_dir(&self, path: &Path) -> io::Result<Vec<String>>;
    fn read_to_string(&self, path: &Path) -> io::Result<String>;

    /// This process's resident memory, in bytes.
    fn rss_bytes(&self) -> u64;

    /// Runs a worker's `cores` serving loops at once — uWSGI's `--threads`: threads of one
    /// process, sharing its interpreter and GIL — and returns when all have ended. Core 0 runs
    /// on the calling task.
    fn run_cores<F, Fut>(&self, cores: usize, core: F) -> impl std::future::Future<Output = ()>
    where
        F: Fn(usize) -> Fut + Send + Sync + 'static,
        Fut: std::future::Future<Output = ()> + 'static;

    fn now_ctime(&self) -> String {
        self.local_time(self.unix_time()).ctime()
    }

    /// Waits for a signal that asks this process to stop — SIGINT, SIGQUIT or SIGTERM — as a
    /// server without a master hears it (a master hears its signals from its
    /// [`Supervisor`]).
    fn stop_signal(&self) -> impl std::future::Future<Output = Signal>;

    /// Sets the memory allocator up for a process that serves requests (a worker, or a server
    /// without a master once its app is imported). Nothing to do where there is no allocator
    /// to tune.
    fn tune_allocator(&self) {}
}

/// The signals the server reacts to, by their Linux numbers.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Signal {
    Hup,
    Int,
    Quit,
    Kill,
    Segv,
    Term,
    Other(i32),
}

impl Signal {
    pub fn number(self) -> i32 {
        match self {
            Signal::Hup => 1,
            Signal::Int => 2,
            Signal::Quit => 3,
            Signal::Kill => 9,
            Signal::Segv => 11,
            Signal::Term => 15,
            Signal::Other(n) => n,
        }
    }

    pub fn from_number(n: i32) -> Signal {
        match n {
            1 => Signal::Hup,
            2 => Signal::Int,
            3 => Signal::Quit,
            9 => Signal::Kill,
            11 => Signal::Segv,
            15 => Signal::Term,
            n => Signal::Other(n),
        }
    }

    pub fn name(self) -> String {
        match self {
            Signal::Hup => "SIGHUP".into(),
            Signal::Int => "SIGINT".into(),
            Signal::Quit => "SIGQUIT".into(),
            Signal::Kill => "SIGKILL".into(),
            Signal::Segv => "SIGSEGV".into(),
            Signal::Term => "SIGTERM".into(),
            Signal::Other(n) => format!("signal {n}"),
        }
    }
}

/// How a child process ended.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ExitStatus {
    Code(i32),
    Signal(Signal),
}

/// Worker → master, over the channel the process seam owns (a socketpair between real
/// processes). The master's scoreboard is built from these and nothing else.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum WorkerMessage {
    /// The worker has its app (or knows it has none) and accepts connections.
    Ready { app_loaded: bool },
    /// A core is serving a request, which started `elapsed_us` before the message was sent.
    Busy {
        core: usize,
        method: String,
        uri: String,
        remote: String,
        elapsed_us: u64,
    },
    /// A core finished `requests` requests (one, unless the channel merged several): the last
    /// one's status, their total time, how many raised, bytes sent, the worker's memory.
    Idle {
        core: usize,
        requests: u64,
        status: u16,
        micros: u64,
        exceptions: u64,
        tx: u64,
        rss: u64,
    },
    /// The worker leaves by itself once its current requests are done (max-requests,
    /// reload-on-rss); the master respawns it.
    Retiring { reason: String },
}

/// Master → worker.
#[derive(Clone, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum MasterMessage {
    /// Finish the requests in hand, accept no more, exit.
    Stop,
}

/// What the master waits for.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum MasterEvent {
    Signal(Signal),
    Exited { pid: u32, status: ExitStatus },
    Message { pid: u32, message: WorkerMessage },
}

/// What the Python seam must do around a fork (CPython's `PyOS_BeforeFork` and friends).
pub trait ForkHooks {
    fn before_fork(&self);
    fn after_fork_parent(&self);
    fn after_fork_child(&self);
}

/// The master's side of the process seam: starting, signalling and hearing from workers.
pub trait Supervisor {
    type Link: WorkerLink + 'static;

    /// Forks a worker process that runs `main` (with its end of the channel) and exits with
    /// its result. Returns the worker's pid.
    fn spawn_worker<F, Fut>(&self, hooks: &dyn ForkHooks, main: F) -> io::Result<u32>
    where
        F: FnOnce(Self::Link) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = i32> + 'static;

    fn kill(&self, pid: u32, signal: Signal) -> io::Result<()>;

    fn send(&self, pid: u32, message: MasterMessage);

    /// Replaces the master's program with a fresh copy of itself (same pid, same command
    /// line), keeping the listening sockets given (address, fd) open for it. Returns only if
    /// that failed — or, where the exec is simulated, with [`ProgramReplaced`]: the old image
    /// must then end at once, and the world runs the new one.
    fn reexec(&self, keep: &[(std::net::SocketAddr, i32)]) -> io::Error;

    /// The next signal to the master, child exit, or worker message.
    fn next_event(&self) -> impl std::future::Future<Output = MasterEvent>;

    /// The master's worker list changed (`[busy, idle, ...]`). Nothing to do for a real
    /// master; the lab draws its timeline from it.
    fn board_changed(&self, _statuses: &[WorkerStatus]) {}

    /// A new counter the master and every worker it forks from now on add to and read:
    /// uWSGI's `uwsgi.workers[0].requests`, the `M` of `req: N/M`. Where all the processes
    /// share one address space (the simulation), plain memory is enough.
    fn shared_counter(&self) -> SharedCounter {
        SharedCounter::local()
    }
}

/// A count that every process of an instance adds to and reads, as uWSGI keeps its totals in
/// memory the master shares with the workers it forks (`uwsgi.workers[0].requests`, written by
/// each worker in `uwsgi_close_request`, core/utils.c). No lock: as in uWSGI, one atomic add.
#[derive(Clone, Debug)]
pub struct SharedCounter(CounterCell);

#[derive(Clone, Debug)]
enum CounterCell {
    /// In this process's memory: shared by the threads and simulated processes that hold a
    /// clone, not across a real fork.
    Local(Arc<AtomicU64>),
    /// In a shared mapping that stays mapped for the life of the process (and of its children).
    Mapped(&'static AtomicU64),
}

impl SharedCounter {
    pub fn local() -> SharedCounter {
        SharedCounter(CounterCell::Local(Arc::new(AtomicU64::new(0))))
    }

    /// A counter in memory the caller mapped shared (and never unmaps).
    pub fn mapped(cell: &'static AtomicU64) -> SharedCounter {
        SharedCounter(CounterCell::Mapped(cell))
    }

    fn cell(&self) -> &AtomicU64 {
        match &self.0 {
            CounterCell::Local(cell) => cell,
            CounterCell::Mapped(cell) => cell,
        }
    }

    /// Adds `n`; the new total.
    pub fn add(&self, n: u64) -> u64 {
        self.cell().fetch_add(n, Ordering::Relaxed).wrapping_add(n)
    }

    pub fn get(&self) -> u64 {
        self.cell().load(Ordering::Relaxed)
    }
}

impl Default for SharedCounter {
    fn default() -> Self {
        SharedCounter::local()
    }
}

/// The "error" a simulated `exec()` returns when it worked: this image of the program is
/// over (a real `exec()` never returns).
#[derive(Debug)]
pub struct ProgramReplaced;

impl std::fmt::Display for ProgramReplaced {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("the program was replaced by exec()")
    }
}

impl std::error::Error for ProgramReplaced {}

/// A worker's end of its channel to the master.
pub trait WorkerLink: Send + Sync {
    /// Whether anyone hears the reports: a worker without a master skips building them.
    fn has_master(&self) -> bool {
        true
    }

    fn send(&self, message: WorkerMessage);

    /// A core began serving a request: [`WorkerMessage::Busy`], from borrowed parts, so that a
    /// link which usually drops it unsent (the request ends before the next report) can keep
    /// it without allocating.
    fn request_started(&self, core: usize, method: &str, uri: &str, remote: &str) {
        self.send(WorkerMessage::Busy {
            core,
            method: method.to_owned(),
            uri: uri.to_owned(),
            remote: remote.to_owned(),
            elapsed_us: 0,
        });
    }

    /// Resolves once the master asked this worker to stop (or is gone).
    fn stop_requested(&self) -> impl std::future::Future<Output = ()>;
}
