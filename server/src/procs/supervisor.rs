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

use nix::sys::signal::{self as nix_signal, SigHandler};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{fork, ForkResult, Pid};
use tokio::io::AsyncBufReadExt;
use tokio::signal::unix::{signal, Signal as TokioSignal, SignalKind};
use tokio::sync::mpsc;
use tokio::sync::Notify;

use super::{
    ExitStatus, ForkHooks, MasterEvent, MasterMessage, Signal, Supervisor, WorkerLink,
    WorkerMessage,
};

/// The master process's workers, as the OS runs them.
pub struct RealSupervisor {
    events_tx: mpsc::UnboundedSender<MasterEvent>,
    events_rx: RefCell<mpsc::UnboundedReceiver<MasterEvent>>,
    /// The master's end of each worker's channel, for writing. Written directly rather than
    /// through tokio: a freshly registered socket is not yet known to be writable to tokio,
    /// and a Stop must not be lost to that.
    to_workers: RefCell<BTreeMap<u32, StdUnixStream>>,
    signals: RefCell<Signals>,
}

struct Signals {
    hup: TokioSignal,
    int: TokioSignal,
    quit: TokioSignal,
    term: TokioSignal,
    child: TokioSignal,
}

impl RealSupervisor {
    /// Installs the master's signal handlers; call inside the master's runtime, before the
    /// first spawn.
    pub fn new() -> io::Result<RealSupervisor> {
        let (events_tx, events_rx) = mpsc::unbounded_channel();
        Ok(RealSupervisor {
            events_tx,
            events_rx: RefCell::new(events_rx),
            to_workers: RefCell::new(BTreeMap::new()),
            signals: RefCell::new(Signals {
                hup: signal(SignalKind::hangup())?,
                int: signal(SignalKind::interrupt())?,
                quit: signal(SignalKind::quit())?,
                term: signal(SignalKind::terminate())?,
                child: signal(SignalKind::child())?,
            }),
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
        let _ = self.events_tx.send(MasterEvent::Exited { pid, status });
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
                let worker = std::thread::spawn(move || {
                    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
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
                            let _ = events.send(MasterEvent::Message { pid, message });
                        }
                    }
                });
                Ok(pid)
            }
            Err(e) => {
                hooks.after_fork_parent();
                Err(e.into())
            }
        }
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

    async fn next_event(&self) -> MasterEvent {
        loop {
            if let Ok(event) = self.events_rx.borrow_mut().try_recv() {
                return event;
            }
            let mut guard = self.signals.borrow_mut();
            let signals = &mut *guard;
            let mut events = self.events_rx.borrow_mut();
            let reap = tokio::select! {
                biased;
                _ = signals.child.recv() => true,
                _ = signals.int.recv() => return MasterEvent::Signal(Signal::Int),
                _ = signals.quit.recv() => return MasterEvent::Signal(Signal::Quit),
                _ = signals.term.recv() => return MasterEvent::Signal(Signal::Term),
                _ = signals.hup.recv() => return MasterEvent::Signal(Signal::Hup),
                event = events.recv() => match event {
                    Some(event) => return event,
                    None => false,
                },
                // A SIGCHLD merged with another or lost to a race: look anyway, once a second.
                _ = tokio::time::sleep(Duration::from_secs(1)) => true,
            };
            drop((guard, events));
            if reap {
                self.reap();
            }
        }
    }
}

/// A worker's end of the socketpair.
pub struct RealLink {
    writer: Mutex<StdUnixStream>,
    stop: Arc<StopFlag>,
}

#[derive(Default)]
struct StopFlag {
    stopped: AtomicBool,
    notify: Notify,
}

impl RealLink {
    fn new(stream: StdUnixStream) -> RealLink {
        let stop = Arc::new(StopFlag::default());
        if let Ok(reader) = stream.try_clone() {
            let stop = stop.clone();
            // A thread of its own: the worker's cores may be blocked in Python at any moment,
            // and the master's word must still arrive.
            std::thread::spawn(move || {
                let mut lines = BufReader::new(reader).lines();
                loop {
                    match lines.next() {
                        Some(Ok(line)) => {
                            if matches!(serde_json::from_str::<MasterMessage>(&line), Ok(MasterMessage::Stop)) {
                                break;
                            }
                        }
                        // EOF or error: the master is gone, and an orphan must not serve on.
                        _ => break,
                    }
                }
                stop.stopped.store(true, Ordering::SeqCst);
                stop.notify.notify_waiters();
            });
        }
        RealLink { writer: Mutex::new(stream), stop }
    }
}

impl WorkerLink for RealLink {
    fn send(&self, message: WorkerMessage) {
        let mut line = serde_json::to_vec(&message).unwrap_or_default();
        line.push(b'\n');
        if let Ok(mut writer) = self.writer.lock() {
            let _ = writer.write_all(&line);
        }
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
