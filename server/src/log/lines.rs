//! The uWSGI log lines that something reads back: the lab's runner, `replay --real`, the
//! invariants, the explanation, the HTML page and the tests. Each line is a type with a
//! `Display` (what the server writes) and a `parse` (what a reader accepts), side by side, so a
//! reworded line changes both or fails the round-trip tests below, instead of making a reader
//! skip silently. The texts are uWSGI 2.0's (core/master.c, core/master_utils.c,
//! core/socket.c, plugins/python); the lines only wsgilab writes start with `wsgilab:`.
//!
//! Lines nobody reads back (the banner, the hints) stay plain `format!`s where they are
//! written.

use std::fmt;

use crate::procs::Signal;

/// A cursor over a line: literal pieces must match, numbers are read in decimal.
struct Scan<'a> {
    rest: &'a str,
}

impl<'a> Scan<'a> {
    fn new(line: &'a str) -> Self {
        Scan { rest: line }
    }

    fn lit(&mut self, text: &str) -> Option<()> {
        self.rest = self.rest.strip_prefix(text)?;
        Some(())
    }

    fn num<T: std::str::FromStr>(&mut self) -> Option<T> {
        let end = self
            .rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(self.rest.len());
        let (digits, rest) = self.rest.split_at(end);
        let value = digits.parse().ok()?;
        self.rest = rest;
        Some(value)
    }

    fn hex(&mut self) -> Option<usize> {
        self.lit("0x")?;
        let end = self
            .rest
            .find(|c: char| !c.is_ascii_hexdigit())
            .unwrap_or(self.rest.len());
        let (digits, rest) = self.rest.split_at(end);
        let value = usize::from_str_radix(digits, 16).ok()?;
        self.rest = rest;
        Some(value)
    }

    /// The text up to the first `stop` (not included), which is consumed.
    fn until(&mut self, stop: &str) -> Option<&'a str> {
        let (before, after) = self.rest.split_once(stop)?;
        self.rest = after;
        Some(before)
    }

    fn end(&self) -> Option<()> {
        self.rest.is_empty().then_some(())
    }
}

/// Splits `CTIME - REST` as uWSGI's timestamped master lines are written.
fn after_ctime<'a>(line: &'a str, marker: &str) -> Option<(&'a str, Scan<'a>)> {
    let at = line.find(marker)?;
    let mut scan = Scan::new(&line[at..]);
    scan.lit(marker)?;
    Some((&line[..at], scan))
}

/// `spawned uWSGI master process (pid: 1001)`, or after a binary reload
/// `gracefully (RE)spawned uWSGI master process (pid: 1001)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MasterSpawned {
    pub pid: u32,
    /// The master re-executed itself (SIGHUP while preforking) and is starting again.
    pub reexecuted: bool,
}

impl fmt::Display for MasterSpawned {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let how = if self.reexecuted {
            "gracefully (RE)spawned"
        } else {
            "spawned"
        };
        write!(f, "{how} uWSGI master process (pid: {})", self.pid)
    }
}

impl MasterSpawned {
    pub fn parse(line: &str) -> Option<Self> {
        let (reexecuted, rest) = match line.strip_prefix("gracefully (RE)") {
            Some(rest) => (true, rest),
            None => (false, line),
        };
        let mut s = Scan::new(rest);
        s.lit("spawned uWSGI master process (pid: ")?;
        let pid = s.num()?;
        s.lit(")")?;
        s.end()?;
        Some(MasterSpawned { pid, reexecuted })
    }
}

/// How a worker came to be, as its start line says.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum HowStarted {
    /// `spawned uWSGI worker 2 (pid: 1003, cores: 1)`: forked by the master at start-up.
    Spawned { cores: usize },
    /// `spawned uWSGI worker 1 (and the only) (pid: 1001, cores: 1)`: no master, the process
    /// that was started serves.
    OnlyWorker { cores: usize },
    /// `Respawned uWSGI worker 1 (new pid: 1004)`: the master replaced a worker that left.
    Respawned,
}

/// A worker's start: the line every reader uses to map a worker number to its pid.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerStarted {
    /// The worker's number, from 1.
    pub slot: usize,
    pub pid: u32,
    pub how: HowStarted,
}

impl fmt::Display for WorkerStarted {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (slot, pid) = (self.slot, self.pid);
        match self.how {
            HowStarted::Spawned { cores } => {
                write!(
                    f,
                    "spawned uWSGI worker {slot} (pid: {pid}, cores: {cores})"
                )
            }
            HowStarted::OnlyWorker { cores } => write!(
                f,
                "spawned uWSGI worker {slot} (and the only) (pid: {pid}, cores: {cores})"
            ),
            HowStarted::Respawned => write!(f, "Respawned uWSGI worker {slot} (new pid: {pid})"),
        }
    }
}

impl WorkerStarted {
    pub fn parse(line: &str) -> Option<Self> {
        if let Some(rest) = line.strip_prefix("Respawned uWSGI worker ") {
            let mut s = Scan::new(rest);
            let slot = s.num()?;
            s.lit(" (new pid: ")?;
            let pid = s.num()?;
            s.lit(")")?;
            s.end()?;
            return Some(WorkerStarted {
                slot,
                pid,
                how: HowStarted::Respawned,
            });
        }
        let mut s = Scan::new(line);
        s.lit("spawned uWSGI worker ")?;
        let slot = s.num()?;
        let only = s.lit(" (and the only)").is_some();
        s.lit(" (pid: ")?;
        let pid = s.num()?;
        s.lit(", cores: ")?;
        let cores = s.num()?;
        s.lit(")")?;
        s.end()?;
        let how = if only {
            HowStarted::OnlyWorker { cores }
        } else {
            HowStarted::Spawned { cores }
        };
        Some(WorkerStarted { slot, pid, how })
    }

    /// The pid of worker `slot` as the last start line in `lines` announced it.
    pub fn last_pid<'l>(
        lines: impl DoubleEndedIterator<Item = &'l str>,
        slot: usize,
    ) -> Option<u32> {
        lines
            .rev()
            .filter_map(WorkerStarted::parse)
            .find(|s| s.slot == slot)
            .map(|s| s.pid)
    }
}

/// `worker 2 buried after 1 seconds`: a worker the master stopped has exited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerBuried {
    pub slot: usize,
    pub seconds: u64,
}

impl fmt::Display for WorkerBuried {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worker {} buried after {} seconds",
            self.slot, self.seconds
        )
    }
}

impl WorkerBuried {
    pub fn parse(line: &str) -> Option<Self> {
        let mut s = Scan::new(line);
        s.lit("worker ")?;
        let slot = s.num()?;
        s.lit(" buried after ")?;
        let seconds = s.num()?;
        s.lit(" seconds")?;
        s.end()?;
        Some(WorkerBuried { slot, seconds })
    }
}

/// `DAMN ! worker 1 (pid: 1002) died, killed by signal 9 :( trying respawn ...` (or without the
/// signal, for a worker that exited by itself): a worker left without being asked to.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkerDied {
    pub slot: usize,
    pub pid: u32,
    /// The signal that killed it; `None` when it exited with a status.
    pub signal: Option<i32>,
}

impl fmt::Display for WorkerDied {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "DAMN ! worker {} (pid: {}) died", self.slot, self.pid)?;
        if let Some(signal) = self.signal {
            write!(f, ", killed by signal {signal}")?;
        }
        f.write_str(" :( trying respawn ...")
    }
}

impl WorkerDied {
    pub fn parse(line: &str) -> Option<Self> {
        let mut s = Scan::new(line);
        s.lit("DAMN ! worker ")?;
        let slot = s.num()?;
        s.lit(" (pid: ")?;
        let pid = s.num()?;
        s.lit(") died")?;
        let signal = match s.lit(", killed by signal ") {
            Some(()) => Some(s.num()?),
            None => None,
        };
        s.lit(" :( trying respawn ...")?;
        s.end()?;
        Some(WorkerDied { slot, pid, signal })
    }
}

/// `Gracefully killing worker 1 (pid: 1002)...`: the master asked a worker to finish and leave.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct GracefullyKilling {
    pub slot: usize,
    pub pid: u32,
}

impl fmt::Display for GracefullyKilling {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "Gracefully killing worker {} (pid: {})...",
            self.slot, self.pid
        )
    }
}

impl GracefullyKilling {
    pub fn parse(line: &str) -> Option<Self> {
        let mut s = Scan::new(line);
        s.lit("Gracefully killing worker ")?;
        let slot = s.num()?;
        s.lit(" (pid: ")?;
        let pid = s.num()?;
        s.lit(")...")?;
        s.end()?;
        Some(GracefullyKilling { slot, pid })
    }
}

/// `worker 1 (pid: 1002) is taking too much time to die...NO MERCY !!!`: the mercy ran out.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NoMercy {
    pub slot: usize,
    pub pid: u32,
}

impl fmt::Display for NoMercy {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "worker {} (pid: {}) is taking too much time to die...NO MERCY !!!",
            self.slot, self.pid
        )
    }
}

impl NoMercy {
    pub fn parse(line: &str) -> Option<Self> {
        let mut s = Scan::new(line);
        s.lit("worker ")?;
        let slot = s.num()?;
        s.lit(" (pid: ")?;
        let pid = s.num()?;
        s.lit(") is taking too much time to die...NO MERCY !!!")?;
        s.end()?;
        Some(NoMercy { slot, pid })
    }
}

/// `...The work of process 1002 is done. Seeya!`: a worker leaving on its own (max-requests,
/// reload-on-rss, a graceful stop), written by the worker.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WorkDone {
    pub pid: u32,
}

impl fmt::Display for WorkDone {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "...The work of process {} is done. Seeya!", self.pid)
    }
}

impl WorkDone {
    pub fn parse(line: &str) -> Option<Self> {
        let mut s = Scan::new(line);
        s.lit("...The work of process ")?;
        let pid = s.num()?;
        s.lit(" is done. Seeya!")?;
        s.end()?;
        Some(WorkDone { pid })
    }
}

/// `uwsgi socket 0 bound to TCP address :8000 fd 3`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SocketBound {
    pub index: usize,
    /// The address as uWSGI prints it: as typed when it starts with ':', else resolved.
    pub addr: String,
    pub fd: i32,
}

impl fmt::Display for SocketBound {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "uwsgi socket {} bound to TCP address {} fd {}",
            self.index, self.addr, self.fd
        )
    }
}

impl SocketBound {
    pub fn parse(line: &str) -> Option<Self> {
        let mut s = Scan::new(line);
        s.lit("uwsgi socket ")?;
        let index = s.num()?;
        s.lit(" bound to TCP address ")?;
        let addr = s.until(" fd ")?.to_string();
        let fd = s.num()?;
        s.end()?;
        Some(SocketBound { index, addr, fd })
    }
}

/// How the instance serves, from `*** Operational MODE: preforking ***`.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum OperationalMode {
    SingleProcess,
    Preforking,
    Threaded,
    PreforkingThreaded,
}

impl OperationalMode {
    /// The mode for this many processes and threads per process.
    pub fn of(processes: u32, threads: u32) -> Self {
        match (processes > 1, threads > 1) {
            (false, false) => OperationalMode::SingleProcess,
            (true, false) => OperationalMode::Preforking,
            (false, true) => OperationalMode::Threaded,
            (true, true) => OperationalMode::PreforkingThreaded,
        }
    }

    /// uWSGI's word for it.
    pub fn name(self) -> &'static str {
        match self {
            OperationalMode::SingleProcess => "single process",
            OperationalMode::Preforking => "preforking",
            OperationalMode::Threaded => "threaded",
            OperationalMode::PreforkingThreaded => "preforking+threaded",
        }
    }

    pub fn parse(line: &str) -> Option<Self> {
        let mut s = Scan::new(line);
        s.lit("*** Operational MODE: ")?;
        let name = s.until(" ***")?;
        s.end()?;
        [
            OperationalMode::SingleProcess,
            OperationalMode::Preforking,
            OperationalMode::Threaded,
            OperationalMode::PreforkingThreaded,
        ]
        .into_iter()
        .find(|m| m.name() == name)
    }
}

impl fmt::Display for OperationalMode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "*** Operational MODE: {} ***", self.name())
    }
}

/// `WSGI app 0 (mountpoint='') ready in 0 seconds on interpreter 0x7f... pid: 1001 (default app)`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AppReady {
    pub seconds: u64,
    pub interpreter: usize,
    pub pid: u32,
}

impl fmt::Display for AppReady {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "WSGI app 0 (mountpoint='') ready in {} seconds on interpreter {:#x} pid: {} (default app)",
            self.seconds, self.interpreter, self.pid
        )
    }
}

impl AppReady {
    pub fn parse(line: &str) -> Option<Self> {
        let mut s = Scan::new(line);
        s.lit("WSGI app 0 (mountpoint='') ready in ")?;
        let seconds = s.num()?;
        s.lit(" seconds on interpreter ")?;
        let interpreter = s.hex()?;
        s.lit(" pid: ")?;
        let pid = s.num()?;
        s.lit(" (default app)")?;
        s.end()?;
        Some(AppReady {
            seconds,
            interpreter,
            pid,
        })
    }
}

/// `*** no app loaded. going in full dynamic mode ***` (serving 500s) or
/// `*** no app loaded. GAME OVER ***` (`--need-app`: exiting).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum NoAppLoaded {
    DynamicMode,
    GameOver,
}

impl fmt::Display for NoAppLoaded {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

impl NoAppLoaded {
    fn text(self) -> &'static str {
        match self {
            NoAppLoaded::DynamicMode => "*** no app loaded. going in full dynamic mode ***",
            NoAppLoaded::GameOver => "*** no app loaded. GAME OVER ***",
        }
    }

    pub fn parse(line: &str) -> Option<Self> {
        [NoAppLoaded::DynamicMode, NoAppLoaded::GameOver]
            .into_iter()
            .find(|l| l.text() == line)
    }
}

/// `--- no python application found, check your startup logs for errors ---`: a request came
/// to a worker without an app.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct NoPythonApp;

impl NoPythonApp {
    const TEXT: &'static str =
        "--- no python application found, check your startup logs for errors ---";

    pub fn parse(line: &str) -> Option<Self> {
        (line == Self::TEXT).then_some(NoPythonApp)
    }
}

impl fmt::Display for NoPythonApp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::TEXT)
    }
}

/// `Thu Dec  3 18:32:18 2026 - *** HARAKIRI ON WORKER 1 (pid: 1002, try: 1, graceful: no) ***`:
/// the first of the master's harakiri lines.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct HarakiriOnWorker {
    pub ctime: String,
    pub slot: usize,
    pub pid: u32,
}

impl fmt::Display for HarakiriOnWorker {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} - *** HARAKIRI ON WORKER {} (pid: {}, try: 1, graceful: no) ***",
            self.ctime, self.slot, self.pid
        )
    }
}

impl HarakiriOnWorker {
    pub fn parse(line: &str) -> Option<Self> {
        let (ctime, mut s) = after_ctime(line, " - *** HARAKIRI ON WORKER ")?;
        let slot = s.num()?;
        s.lit(" (pid: ")?;
        let pid = s.num()?;
        s.lit(", try: 1, graceful: no) ***")?;
        s.end()?;
        Some(HarakiriOnWorker {
            ctime: ctime.to_string(),
            slot,
            pid,
        })
    }
}

/// `... - *** uWSGI listen queue of socket ":8000" (fd: 3) full !!! (5/4) ***`: the master's
/// once-a-second look at the accept queue found it full.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ListenQueueFull {
    pub ctime: String,
    /// The socket as typed.
    pub socket: String,
    pub fd: i32,
    pub queued: u32,
    pub max: u32,
}

impl fmt::Display for ListenQueueFull {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{} - *** uWSGI listen queue of socket \"{}\" (fd: {}) full !!! ({}/{}) ***",
            self.ctime, self.socket, self.fd, self.queued, self.max
        )
    }
}

impl ListenQueueFull {
    pub fn parse(line: &str) -> Option<Self> {
        let (ctime, mut s) = after_ctime(line, " - *** uWSGI listen queue of socket \"")?;
        let socket = s.until("\" (fd: ")?.to_string();
        let fd = s.num()?;
        s.lit(") full !!! (")?;
        let queued = s.num()?;
        s.lit("/")?;
        let max = s.num()?;
        s.lit(") ***")?;
        s.end()?;
        Some(ListenQueueFull {
            ctime: ctime.to_string(),
            socket,
            fd,
            queued,
            max,
        })
    }
}

/// What the master says when a signal stops or reloads the instance.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum StopSignal {
    /// SIGINT or SIGQUIT: `SIGINT/SIGQUIT received...killing workers...`.
    Kill,
    /// SIGTERM: a graceful stop (uWSGI 2.0 reloads unless `--die-on-term`, said in the line).
    Term { die_on_term: bool },
    /// SIGHUP: a graceful reload, by re-executing the master or (`lazy`) by replacing each
    /// worker.
    Hup { lazy: bool },
}

impl StopSignal {
    /// The instance stops or its master is replaced: every worker goes (a lazy reload
    /// replaces them one by one instead).
    pub fn ends_every_worker(self) -> bool {
        !matches!(self, StopSignal::Hup { lazy: true })
    }

    const ALL: [StopSignal; 5] = [
        StopSignal::Kill,
        StopSignal::Term { die_on_term: true },
        StopSignal::Term { die_on_term: false },
        StopSignal::Hup { lazy: false },
        StopSignal::Hup { lazy: true },
    ];

    pub fn parse(line: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|s| s.text() == line)
    }

    fn text(self) -> &'static str {
        match self {
            StopSignal::Kill => "SIGINT/SIGQUIT received...killing workers...",
            StopSignal::Term { die_on_term: true } => "SIGTERM received (--die-on-term): stopping gracefully",
            StopSignal::Term { die_on_term: false } => "wsgilab: SIGTERM received: stopping gracefully (uWSGI 2.0 would reload here instead; --die-on-term makes it stop)",
            StopSignal::Hup { lazy: false } => "wsgilab: SIGHUP received: graceful reload: the workers finish their requests, then the master re-executes itself and imports the app again; the socket stays open, so connections wait in the queue instead of failing",
            StopSignal::Hup { lazy: true } => "wsgilab: SIGHUP received: graceful reload: each worker finishes its requests and is replaced by a new one that imports the app again (--lazy-apps); the socket stays open, so connections wait in the queue instead of failing",
        }
    }
}

impl fmt::Display for StopSignal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.text())
    }
}

/// What a server without a master says when a signal stops it: `SIGINT received...killing
/// workers...` (or SIGQUIT), or for SIGTERM wsgilab's own line: without a master uWSGI's worker
/// ends on SIGTERM too (`end_me`, core/uwsgi.c); only its master reloads on it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct UnmasteredStop {
    /// SIGINT, SIGQUIT or SIGTERM.
    pub signal: Signal,
}

impl fmt::Display for UnmasteredStop {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.signal {
            Signal::Term => f.write_str("wsgilab: SIGTERM received: stopping (as uWSGI does without a master; with --master, uWSGI 2.0 reloads on SIGTERM unless --die-on-term)"),
            other => write!(f, "{} received...killing workers...", other.name()),
        }
    }
}

impl UnmasteredStop {
    pub fn parse(line: &str) -> Option<Self> {
        [Signal::Int, Signal::Quit, Signal::Term]
            .into_iter()
            .map(|signal| UnmasteredStop { signal })
            .find(|stop| stop.to_string() == line)
    }
}

/// `goodbye to uWSGI.`: the master's last line.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Goodbye;

impl fmt::Display for Goodbye {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(Self::TEXT)
    }
}

impl Goodbye {
    const TEXT: &'static str = "goodbye to uWSGI.";

    pub fn parse(line: &str) -> Option<Self> {
        (line == Self::TEXT).then_some(Goodbye)
    }
}

/// The pid of a request log line (`[pid: 1003|app: 0|req: 1/1] ...`, see
/// [`super::RequestLog`]): the worker that served it.
pub fn request_line_pid(line: &str) -> Option<u32> {
    let mut s = Scan::new(line);
    s.lit("[pid: ")?;
    let pid = s.num()?;
    s.lit("|app: ")?;
    Some(pid)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Each line as uWSGI 2.0.31 prints it (the reference), and read back to the same value.
    fn pinned<T: fmt::Display + PartialEq + fmt::Debug>(
        value: T,
        text: &str,
        parse: fn(&str) -> Option<T>,
    ) {
        assert_eq!(value.to_string(), text);
        assert_eq!(parse(text).as_ref(), Some(&value), "{text}");
        // A line with something after it is another line.
        assert_eq!(parse(&format!("{text}x")), None, "{text}");
    }

    #[test]
    fn every_line_reads_back_as_written() {
        pinned(
            MasterSpawned {
                pid: 1001,
                reexecuted: false,
            },
            "spawned uWSGI master process (pid: 1001)",
            MasterSpawned::parse,
        );
        pinned(
            MasterSpawned {
                pid: 7,
                reexecuted: true,
            },
            "gracefully (RE)spawned uWSGI master process (pid: 7)",
            MasterSpawned::parse,
        );
        pinned(
            WorkerStarted {
                slot: 2,
                pid: 1003,
                how: HowStarted::Spawned { cores: 4 },
            },
            "spawned uWSGI worker 2 (pid: 1003, cores: 4)",
            WorkerStarted::parse,
        );
        pinned(
            WorkerStarted {
                slot: 1,
                pid: 1001,
                how: HowStarted::OnlyWorker { cores: 1 },
            },
            "spawned uWSGI worker 1 (and the only) (pid: 1001, cores: 1)",
            WorkerStarted::parse,
        );
        pinned(
            WorkerStarted {
                slot: 1,
                pid: 1004,
                how: HowStarted::Respawned,
            },
            "Respawned uWSGI worker 1 (new pid: 1004)",
            WorkerStarted::parse,
        );
        pinned(
            WorkerBuried {
                slot: 3,
                seconds: 12,
            },
            "worker 3 buried after 12 seconds",
            WorkerBuried::parse,
        );
        pinned(
            WorkerDied {
                slot: 1,
                pid: 1002,
                signal: Some(9),
            },
            "DAMN ! worker 1 (pid: 1002) died, killed by signal 9 :( trying respawn ...",
            WorkerDied::parse,
        );
        pinned(
            WorkerDied {
                slot: 2,
                pid: 1003,
                signal: None,
            },
            "DAMN ! worker 2 (pid: 1003) died :( trying respawn ...",
            WorkerDied::parse,
        );
        pinned(
            GracefullyKilling { slot: 1, pid: 1002 },
            "Gracefully killing worker 1 (pid: 1002)...",
            GracefullyKilling::parse,
        );
        pinned(
            NoMercy { slot: 1, pid: 1002 },
            "worker 1 (pid: 1002) is taking too much time to die...NO MERCY !!!",
            NoMercy::parse,
        );
        pinned(
            WorkDone { pid: 1002 },
            "...The work of process 1002 is done. Seeya!",
            WorkDone::parse,
        );
        pinned(
            SocketBound {
                index: 0,
                addr: ":8000".into(),
                fd: 3,
            },
            "uwsgi socket 0 bound to TCP address :8000 fd 3",
            SocketBound::parse,
        );
        pinned(
            OperationalMode::PreforkingThreaded,
            "*** Operational MODE: preforking+threaded ***",
            OperationalMode::parse,
        );
        pinned(
            AppReady {
                seconds: 0,
                interpreter: 0x7f00_dead_beef,
                pid: 1001,
            },
            "WSGI app 0 (mountpoint='') ready in 0 seconds on interpreter 0x7f00deadbeef pid: 1001 (default app)",
            AppReady::parse,
        );
        pinned(
            NoAppLoaded::GameOver,
            "*** no app loaded. GAME OVER ***",
            NoAppLoaded::parse,
        );
        pinned(
            NoAppLoaded::DynamicMode,
            "*** no app loaded. going in full dynamic mode ***",
            NoAppLoaded::parse,
        );
        pinned(
            NoPythonApp,
            "--- no python application found, check your startup logs for errors ---",
            NoPythonApp::parse,
        );
        pinned(
            HarakiriOnWorker {
                ctime: "Thu Jan  1 00:00:05 1970".into(),
                slot: 2,
                pid: 1003,
            },
            "Thu Jan  1 00:00:05 1970 - *** HARAKIRI ON WORKER 2 (pid: 1003, try: 1, graceful: no) ***",
            HarakiriOnWorker::parse,
        );
        pinned(
            ListenQueueFull {
                ctime: "Thu Jan  1 00:00:02 1970".into(),
                socket: "127.0.0.1:8000".into(),
                fd: 3,
                queued: 5,
                max: 4,
            },
            "Thu Jan  1 00:00:02 1970 - *** uWSGI listen queue of socket \"127.0.0.1:8000\" (fd: 3) full !!! (5/4) ***",
            ListenQueueFull::parse,
        );
        pinned(
            StopSignal::Kill,
            "SIGINT/SIGQUIT received...killing workers...",
            StopSignal::parse,
        );
        pinned(Goodbye, "goodbye to uWSGI.", Goodbye::parse);
        pinned(
            UnmasteredStop {
                signal: Signal::Int,
            },
            "SIGINT received...killing workers...",
            UnmasteredStop::parse,
        );
        pinned(
            UnmasteredStop {
                signal: Signal::Term,
            },
            "wsgilab: SIGTERM received: stopping (as uWSGI does without a master; with --master, uWSGI 2.0 reloads on SIGTERM unless --die-on-term)",
            UnmasteredStop::parse,
        );
        for signal in StopSignal::ALL {
            assert_eq!(StopSignal::parse(&signal.to_string()), Some(signal));
        }
        for (processes, threads) in [(1, 1), (2, 1), (1, 2), (2, 2)] {
            let mode = OperationalMode::of(processes, threads);
            assert_eq!(OperationalMode::parse(&mode.to_string()), Some(mode));
        }
    }

    #[test]
    fn a_line_of_another_kind_is_not_read_as_this_one() {
        let respawned = "Respawned uWSGI worker 1 (new pid: 1004)";
        assert_eq!(MasterSpawned::parse(respawned), None);
        assert_eq!(WorkerBuried::parse(respawned), None);
        assert_eq!(NoMercy::parse("worker 3 buried after 12 seconds"), None);
        assert_eq!(
            WorkerStarted::parse("spawned uWSGI worker 1 (pid: x, cores: 1)"),
            None
        );
        assert_eq!(
            request_line_pid("[pid: 1003|app: 0|req: 1/1] 127.0.0.1 () {...}"),
            Some(1003)
        );
        assert_eq!(request_line_pid("[pid: 1003] something else"), None);
    }

    #[test]
    fn the_last_start_line_of_a_worker_gives_its_pid() {
        let log = [
            "spawned uWSGI worker 1 (pid: 1002, cores: 1)",
            "spawned uWSGI worker 2 (pid: 1003, cores: 1)",
            "DAMN ! worker 1 (pid: 1002) died, killed by signal 9 :( trying respawn ...",
            "Respawned uWSGI worker 1 (new pid: 1004)",
        ];
        assert_eq!(WorkerStarted::last_pid(log.iter().copied(), 1), Some(1004));
        assert_eq!(WorkerStarted::last_pid(log.iter().copied(), 2), Some(1003));
        assert_eq!(WorkerStarted::last_pid(log.iter().copied(), 3), None);
    }
}
