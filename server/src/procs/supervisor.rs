//! The real master's side of the process seam: workers are forked from the master, talk to it
//! over a socketpair (one JSON message per line), and are reaped on SIGCHLD so none is left a
//! zombie.
//!
//! The master runs a single-threaded tokio runtime, so the child of a fork has exactly one
//! thread: the one that forked, still inside the master's runtime. The child never touches
//! that runtime again; it runs the worker on a fresh thread with a runtime of its own, then
//! `_exit`s without unwinding into the master's code.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::io::{self, BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixStream as StdUnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use futures_util::StreamExt;
use nix::sys::signal::{self as nix_signal, SigHandler};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGQUIT, SIGTERM};
use signal_hook_tokio::Signals;
use tokio::io::AsyncBufReadExt;
use tokio::sync::mpsc;
use tokio::sync::Notify;

use super::{
    ExitStatus, ForkHooks, MasterEvent, MasterMessage, SharedCounter, Signal, Supervisor,
    WorkerLink, WorkerMessage,
};

/// The master process's workers, as the OS runs them.
///
/// Signals reach the master through signal-hook's pipe, not tokio's: every tokio runtime
/// with I/O shares one process-wide signal pipe, which the forked workers' runtimes would
/// inherit and drain, stealing the master's SIGINT.
pub struct RealSupervisor {
    events_tx: mpsc::UnboundedSender<Incoming>,
    // Async mutexes, never contended: the master's one task holds them across the wait, and
    // a wait cancelled by the master's select releases them.
    events_rx: tokio::sync::Mutex<mpsc::UnboundedReceiver<Incoming>>,
    /// Workers reaped whose channel is still open, and channels closed before their reaping:
    /// a worker's exit is reported once both happened, so every message it sent comes first.
    reaped: RefCell<BTreeMap<u32, ExitStatus>>,
    closed: RefCell<std::collections::BTreeSet<u32>>,
    ready: RefCell<std::collections::VecDeque<MasterEvent>>,
    /// The master's end of each worker's channel, for writing. Written directly rather than
    /// through tokio: a freshly registered socket is not yet known to be writable to tokio,
    /// and a Stop must not be lost to that.
    to_workers: RefCell<BTreeMap<u32, StdUnixStream>>,
    signals: tokio::sync::Mutex<Signals>,
}

/// What the channel readers report.
enum Incoming {
    Message { pid: u32, message: WorkerMessage },
    Closed { pid: u32 },
}

impl RealSupervisor {
    /// Installs the master's signal handlers; call inside the master's runtime, before the
    /// first spawn.
    pub fn new() -> io::Result<RealSupervisor> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Ok(RealSupervisor {
            events_tx,
            events_rx: tokio::sync::Mutex::new(events_rx),
            reaped: RefCell::new(BTreeMap::new()),
            closed: RefCell::new(Default::default()),
            ready: RefCell::new(Default::default()),
            to_workers: RefCell::new(BTreeMap::new()),
            signals: tokio::sync::Mutex::new(Signals::new([
                SIGHUP, SIGINT, SIGQUIT, SIGTERM, SIGCHLD,
            ])?),
        })
    }

    /// Collects every child that has exited, so no zombie stays behind.
    fn reap(&self) {
        loop {
            match waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => self.exited(pid, ExitStatus::Code(code)),
                Ok(WaitStatus::Signaled(pid, sig, _)) => {
                    self.exited(pid, ExitStatus::Signal(Signal::from_number(sig as i32)))
                }
                Ok(WaitStatus::StillAlive) | Err(_) => return,
                Ok(_) => continue,
            }
        }
    }

    fn exited(&self, pid: Pid, status: ExitStatus) {
        let pid = pid.as_raw() as u32;
        self.to_workers.borrow_mut().remove(&pid);
        if self.closed.borrow_mut().remove(&pid) {
            self.ready
                .borrow_mut()
                .push_back(MasterEvent::Exited { pid, status });
        } else {
            self.reaped.borrow_mut().insert(pid, status);
        }
    }

    fn channel_closed(&self, pid: u32) {
        match self.reaped.borrow_mut().remove(&pid) {
            Some(status) => self
                .ready
                .borrow_mut()
                .push_back(MasterEvent::Exited { pid, status }),
            None => {
                self.closed.borrow_mut().insert(pid);
            }
        }
    }
}

impl Supervisor for RealSupervisor {
    type Link = RealLink;

    fn spawn_worker<F, Fut>(&self, hooks: &dyn ForkHooks, main: F) -> io::Result<u32>
    where
        F: FnOnce(RealLink) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = i32> + 'static,
    {
        let (master_end, worker_end) = StdUnixStream::pair()?;
        hooks.before_fork();
        // SAFETY: the master is single-threaded apart from threads the app's import may have
        // started (as in uWSGI); the child only runs the worker on a new thread and _exits.
        match unsafe { fork() } {
            Ok(ForkResult::Child) => {
                hooks.after_fork_child();
                drop(master_end);
                for other in self.to_workers.borrow().values() {
                    // Other workers' channels are the master's business; a copy here would
                    // keep them open after the master closed them.
                    // SAFETY: closing fds this process will never use again.
                    unsafe { nix::libc::close(other.as_raw_fd()) };
                }
                for sig in [
                    nix_signal::Signal::SIGHUP,
                    nix_signal::Signal::SIGINT,
                    nix_signal::Signal::SIGQUIT,
                    nix_signal::Signal::SIGTERM,
                    nix_signal::Signal::SIGCHLD,
                ] {
                    // SAFETY: restoring default dispositions; the master's handlers write to
                    // the master's pipes, which the worker must not touch.
                    unsafe {
                        let _ = nix_signal::signal(sig, SigHandler::SigDfl);
                    }
                }
                super::Procs::tune_allocator(&super::real::RealProcs);
                let worker = std::thread::spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread()
                        .enable_all()
                        .build()
                    {
                        Ok(runtime) => runtime,
                        Err(e) => {
                            eprintln!("wsgilab worker: cannot start its event loop: {e}");
                            return 1;
                        }
                    };
                    runtime.block_on(async move { main(RealLink::new(worker_end)).await })
                });
                let code = worker.join().unwrap_or(1);
                let _ = io::stderr().flush();
                // SAFETY: leave without running the master's destructors or atexit handlers.
                unsafe { nix::libc::_exit(code) }
            }
            Ok(ForkResult::Parent { child }) => {
                hooks.after_fork_parent();
                drop(worker_end);
                let pid = child.as_raw() as u32;
                master_end.set_nonblocking(true)?;
                let writer = master_end.try_clone()?;
                let read = tokio::net::UnixStream::from_std(master_end)?;
                self.to_workers.borrow_mut().insert(pid, writer);
                let events = self.events_tx.clone();
                tokio::spawn(async move {
                    let mut lines = tokio::io::BufReader::new(read).lines();
                    while let Ok(Some(line)) = lines.next_line().await {
                        if let Ok(message) = serde_json::from_str::<WorkerMessage>(&line) {
                            let _ = events.send(Incoming::Message { pid, message });
                        }
                    }
                    let _ = events.send(Incoming::Closed { pid });
                });
                Ok(pid)
            }
            Err(e) => {
                hooks.after_fork_parent();
                Err(e.into())
            }
        }
    }

    /// In an anonymous shared mapping made by the master: every worker forked afterwards adds
    /// to the same page, as uWSGI's workers do to its shared `uwsgi.workers` array. If the
    /// mapping cannot be made, each process counts its own.
    fn shared_counter(&self) -> SharedCounter {
        use nix::libc;
        // SAFETY: a fresh anonymous mapping of one page, asked of the kernel with no address;
        // nothing else aliases it.
        let page = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                4096,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_ANONYMOUS,
                -1,
                0,
            )
        };
        if page == libc::MAP_FAILED {
            return SharedCounter::local();
        }
        // SAFETY: the page is zeroed (0 is a valid AtomicU64), page-aligned, and never
        // unmapped, so the reference is valid for the life of this process and of the children
        // that inherit the mapping.
        let cell: &'static std::sync::atomic::AtomicU64 =
            unsafe { &*(page as *const std::sync::atomic::AtomicU64) };
        SharedCounter::mapped(cell)
    }

    fn kill(&self, pid: u32, signal: Signal) -> io::Result<()> {
        let sig = nix_signal::Signal::try_from(signal.number()).map_err(io::Error::from)?;
        nix_signal::kill(Pid::from_raw(pid as i32), sig).map_err(io::Error::from)
    }

    fn send(&self, pid: u32, message: MasterMessage) {
        if let Some(mut writer) = self.to_workers.borrow().get(&pid) {
            let mut line = serde_json::to_vec(&message).unwrap_or_default();
            line.push(b'\n');
            // A few bytes into a socketpair the worker drains: never full in practice; a
            // worker that cannot take them is stuck and will meet the mercy timeout instead.
            let _ = writer.write_all(&line);
        }
    }

    fn reexec(&self, keep: &[(std::net::SocketAddr, i32)]) -> io::Error {
        use std::os::unix::process::CommandExt;
        for &(_, fd) in keep {
            // SAFETY: fcntl on a descriptor this process owns; only its flags change.
            unsafe { nix::libc::fcntl(fd, nix::libc::F_SETFD, 0) };
        }
        let sockets: Vec<String> = keep
            .iter()
            .map(|(addr, fd)| format!("{addr}={fd}"))
            .collect();
        let exe = match std::env::current_exe() {
            Ok(exe) => exe,
            Err(e) => return e,
        };
        std::process::Command::new(exe)
            .args(std::env::args_os().skip(1))
            .env(crate::net::real::INHERITED_SOCKETS_ENV, sockets.join(","))
            .env(crate::master::REEXECUTED_ENV, "1")
            .exec()
    }

    async fn next_event(&self) -> MasterEvent {
        loop {
            if let Some(event) = self.ready.borrow_mut().pop_front() {
                return event;
            }
            let mut signals = self.signals.lock().await;
            let mut events = self.events_rx.lock().await;
            let wake = tokio::select! {
                biased;
                signal = signals.next() => match signal {
                    Some(SIGCHLD) | None => None,
                    Some(n) => return MasterEvent::Signal(Signal::from_number(n)),
                },
                incoming = events.recv() => incoming,
                // A SIGCHLD merged with another or lost to a race: look anyway, once a second.
                _ = tokio::time::sleep(Duration::from_secs(1)) => None,
            };
            drop((signals, events));
            match wake {
                Some(Incoming::Message { pid, message }) => {
                    return MasterEvent::Message { pid, message }
                }
                Some(Incoming::Closed { pid }) => self.channel_closed(pid),
                None => self.reap(),
            }
        }
    }
}

/// How long the worker's reports may wait before they go to the master. The master's own
/// clock ticks once a second, so this costs it nothing, and it spares a busy worker two
/// syscalls (and the master two wake-ups) per request.
const REPORT_EVERY: Duration = Duration::from_millis(50);

/// A worker's end of the socketpair. Reports about requests are merged per core and sent by a
/// reporter thread at most every [`REPORT_EVERY`]; Ready and Retiring go at once.
pub struct RealLink {
    reports: Arc<Reports>,
    stop: Arc<StopFlag>,
}

#[derive(Default)]
struct StopFlag {
    stopped: AtomicBool,
    notify: Notify,
}

/// What the worker said and the master has not heard yet.
struct Reports {
    writer: Mutex<StdUnixStream>,
    pending: Mutex<Pending>,
    /// Wakes the reporter for a message that must not wait.
    urgent: std::sync::Condvar,
}

#[derive(Default)]
struct Pending {
    cores: BTreeMap<usize, CoreReport>,
    urgent: Vec<WorkerMessage>,
    closed: bool,
}

#[derive(Default)]
struct CoreReport {
    /// Requests finished since the last report, merged into one Idle.
    done: Option<WorkerMessage>,
    /// The request in progress.
    busy: BusyRequest,
}

/// The request a core is serving, kept in buffers that the next request reuses: almost every
/// request ends before the next report, so its Busy is never sent.
#[derive(Default)]
struct BusyRequest {
    method: String,
    uri: String,
    remote: String,
    /// When it started; `None` when the core is idle.
    since: Option<std::time::Instant>,
}

impl BusyRequest {
    fn set(&mut self, method: &str, uri: &str, remote: &str) {
        for (buffer, text) in [
            (&mut self.method, method),
            (&mut self.uri, uri),
            (&mut self.remote, remote),
        ] {
            buffer.clear();
            buffer.push_str(text);
        }
        self.since = Some(std::time::Instant::now());
    }

    fn message(&self, core: usize) -> Option<WorkerMessage> {
        let since = self.since?;
        Some(WorkerMessage::Busy {
            core,
            method: self.method.clone(),
            uri: self.uri.clone(),
            remote: self.remote.clone(),
            elapsed_us: since.elapsed().as_micros() as u64,
        })
    }
}

impl Reports {
    fn lock(&self) -> std::sync::MutexGuard<'_, Pending> {
        self.pending.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Sends what is pending, in the order the master must apply it: per core the finished
    /// requests, then the one in progress; then the urgent messages.
    fn flush(&self) {
        let (cores, urgent) = {
            let mut pending = self.lock();
            (
                std::mem::take(&mut pending.cores),
                std::mem::take(&mut pending.urgent),
            )
        };
        let mut out = Vec::new();
        let mut push = |message: &WorkerMessage| {
            if let Ok(line) = serde_json::to_vec(message) {
                out.extend_from_slice(&line);
                out.push(b'\n');
            }
        };
        for (core, report) in cores {
            if let Some(done) = &report.done {
                push(done);
            }
            if let Some(busy) = report.busy.message(core) {
                push(&busy);
            }
        }
        for message in &urgent {
            push(message);
        }
        if !out.is_empty() {
            if let Ok(mut writer) = self.writer.lock() {
                let _ = writer.write_all(&out);
            }
        }
    }
}

impl RealLink {
    fn new(stream: StdUnixStream) -> RealLink {
        let stop = Arc::new(StopFlag::default());
        if let Ok(reader) = stream.try_clone() {
            let stop = stop.clone();
            // A thread of its own: the worker's cores may be blocked in Python at any moment,
            // and the master's word must still arrive.
            std::thread::spawn(move || {
                // Until Stop, or EOF or an error: the master is gone, and an orphan must not
                // serve on.
                for line in BufReader::new(reader).lines().map_while(Result::ok) {
                    if matches!(
                        serde_json::from_str::<MasterMessage>(&line),
                        Ok(MasterMessage::Stop)
                    ) {
                        break;
                    }
                }
                stop.stopped.store(true, Ordering::SeqCst);
                stop.notify.notify_waiters();
            });
        }
        let reports = Arc::new(Reports {
            writer: Mutex::new(stream),
            pending: Mutex::new(Pending::default()),
            urgent: std::sync::Condvar::new(),
        });
        let reporter = reports.clone();
        std::thread::spawn(move || loop {
            let closed = {
                let pending = reporter.lock();
                let (pending, _) = reporter
                    .urgent
                    .wait_timeout_while(pending, REPORT_EVERY, |p| p.urgent.is_empty() && !p.closed)
                    .unwrap_or_else(|e| e.into_inner());
                pending.closed
            };
            if closed {
                return;
            }
            reporter.flush();
        });
        RealLink { reports, stop }
    }
}

impl Drop for RealLink {
    fn drop(&mut self) {
        // The worker is leaving: the master hears everything before it hears of the exit.
        self.reports.lock().closed = true;
        self.reports.urgent.notify_all();
        self.reports.flush();
    }
}

impl WorkerLink for RealLink {
    fn send(&self, message: WorkerMessage) {
        let mut pending = self.reports.lock();
        match message {
            WorkerMessage::Busy {
                core,
                method,
                uri,
                remote,
                ..
            } => {
                drop(pending);
                self.request_started(core, &method, &uri, &remote);
            }
            WorkerMessage::Idle {
                core,
                requests,
                status,
                micros,
                exceptions,
                tx,
                rss,
            } => {
                let report = pending.cores.entry(core).or_default();
                report.busy.since = None;
                report.done = Some(match report.done.take() {
                    Some(WorkerMessage::Idle {
                        requests: r0,
                        micros: m0,
                        exceptions: e0,
                        tx: t0,
                        rss: rss0,
                        ..
                    }) => WorkerMessage::Idle {
                        core,
                        requests: r0 + requests,
                        status,
                        micros: m0 + micros,
                        exceptions: e0 + exceptions,
                        tx: t0 + tx,
                        rss: if rss > 0 { rss } else { rss0 },
                    },
                    _ => WorkerMessage::Idle {
                        core,
                        requests,
                        status,
                        micros,
                        exceptions,
                        tx,
                        rss,
                    },
                });
            }
            urgent => {
                pending.urgent.push(urgent);
                self.reports.urgent.notify_all();
            }
        }
    }

    fn request_started(&self, core: usize, method: &str, uri: &str, remote: &str) {
        let mut pending = self.reports.lock();
        pending
            .cores
            .entry(core)
            .or_default()
            .busy
            .set(method, uri, remote);
    }

    async fn stop_requested(&self) {
        loop {
            let notified = self.stop.notify.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.stop.stopped.load(Ordering::SeqCst) {
                return;
            }
            notified.await;
        }
    }
}
