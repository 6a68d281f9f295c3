//! The process seam: what one process of the server knows about itself and its machine — pid,
//! clock, working directory, environment variables, files, limits — and where its log goes.
//!
//! Spawning and supervising worker processes joins this seam with the master. [`real`] reads
//! the running system; the simulation keeps a process table and a file tree from the scenario.

pub mod real;

use std::io;
use std::path::{Path, PathBuf};

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

    fn now_ctime(&self) -> String {
        self.local_time(self.unix_time()).ctime()
    }
}
