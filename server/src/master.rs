//! The master: forks the workers, keeps the scoreboard from their messages, and supervises
//! them as uWSGI's master does — respawning the dead (with a back-off for those that die at
//! start-up), harakiri for requests that run too long, recycling, graceful and immediate stops,
//! graceful reloads, the listen-queue check and the stats server.
//!
//! Its clock is a one-second tick, like uWSGI's master loop: harakiri fires at N ± 1 s.

use std::io;
use std::time::Duration;

use tokio::io::AsyncWriteExt;
use tokio::time::{sleep_until, Instant};

use crate::config::Config;
use crate::http::response::PlainResponse;
use crate::instance::Exit;
use crate::log::lines::{
    Goodbye, GracefullyKilling, HarakiriOnWorker, HowStarted, ListenQueueFull, MasterSpawned,
    NoMercy, StopSignal, WorkerBuried, WorkerDied, WorkerStarted,
};
use crate::net::{Listener, Net};
use crate::procs::{
    ExitStatus, ForkHooks, MasterEvent, MasterMessage, Procs, SharedCounter, Signal, Supervisor,
    WorkerMessage,
};
use crate::python::Python;
use crate::scoreboard::{Scoreboard, WorkerSlot, WorkerStatus};
use crate::serve::Prepared;
use crate::stats;
use crate::worker::{worker_process, WorkerSpec};

/// Set in the environment of a master that re-executed itself for a reload.
pub const REEXECUTED_ENV: &str = "WSGILAB_REEXECUTED";

/// A worker that dies sooner than this after being spawned died "at start-up".
const QUICK_DEATH: Duration = Duration::from_secs(1);
/// The longest the master waits before respawning a worker that keeps dying at start-up.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// What the master is doing as a whole.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    Running,
    /// This image of the master was replaced by exec() (simulated): it ends now.
    Replaced,
    /// Workers are being asked (or forced) to leave; then the master exits, or re-executes
    /// itself (a preforking reload).
    Stopping {
        deadline: Instant,
        then: AfterStop,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum AfterStop {
    Exit,
    /// uWSGI's "binary reloading": a fresh master, with the listening socket kept open, imports
    /// the app again.
    Reexec,
}

/// The master and everything it supervises.
pub struct Master<'a, N: Net, P: Procs, S: Supervisor, Y: Python> {
    net: &'a N,
    procs: &'a P,
    supervisor: &'a S,
    python: &'a Y,
    prepared: &'a Prepared<N::Listener, Y::App>,
    stats_listener: Option<N::Listener>,
    stats_http: bool,
    harakiri: Option<Duration>,
    mercy: Duration,
    die_on_term: bool,
    socket_name: String,
    board: Scoreboard,
    phase: Phase,
    listen_queue_errors: u64,
    started: Instant,
    /// The worker list as last shown to the supervisor.
    shown_statuses: Vec<WorkerStatus>,
    /// Requests served by every worker of this master, in memory they share (`req: N/M`).
    total_requests: SharedCounter,
}

impl<'a, N, P, S, Y> Master<'a, N, P, S, Y>
where
    N: Net + Clone + Send + Sync + 'static,
    N::Stream: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
    P: Procs + Clone + Send + Sync + 'static,
    S: Supervisor,
    Y: Python + ForkHooks + Clone + Send + 'static,
    Y::App: Clone + Send + Sync + 'static,
{
    pub fn new(
        config: &Config,
        net: &'a N,
        procs: &'a P,
        supervisor: &'a S,
        python: &'a Y,
        prepared: &'a Prepared<N::Listener, Y::App>,
    ) -> io::Result<Self> {
        let stats_listener = match &config.stats {
            Some(spec) => {
                let listener = net.bind(spec.addr, 100)?;
                procs.log(&format!(
                    "stats server enabled on {} fd: {}",
                    spec.spec,
                    listener.fd()
                ));
                Some(listener)
            }
            None => None,
        };
        let now = Instant::now();
        Ok(Master {
            net,
            procs,
            supervisor,
            python,
            prepared,
            stats_listener,
            stats_http: config.stats_http,
            harakiri: (config.harakiri > 0).then(|| Duration::from_secs(config.harakiri)),
            mercy: Duration::from_secs(config.worker_reload_mercy),
            die_on_term: config.die_on_term,
            socket_name: config
                .sockets
                .first()
                .map(|s| s.spec.clone())
                .unwrap_or_default(),
            // One core per thread: a worker reports each thread's request on its own core.
            board: Scoreboard::new(
                config.processes.max(1) as usize,
                config.threads.max(1) as usize,
                now,
                procs.unix_time(),
            ),
            phase: Phase::Running,
            listen_queue_errors: 0,
            started: now,
            shown_statuses: Vec::new(),
            total_requests: supervisor.shared_counter(),
        })
    }

    /// The scoreboard as it stands (for tests and the lab).
    pub fn scoreboard(&self) -> &Scoreboard {
        &self.board
    }

    /// Spawns the workers and supervises them until the instance stops; the exit status.
    pub async fn run(&mut self) -> Exit {
        let respawned = self.procs.env_var(REEXECUTED_ENV).is_some();
        self.procs.log(
            &MasterSpawned {
                pid: self.procs.pid(),
                reexecuted: respawned,
            }
            .to_string(),
        );
        for index in 0..self.board.slots.len() {
            self.spawn(index, false);
        }
        self.show_board();
        let mut next_tick = self.started + Duration::from_secs(1);
        loop {
            enum Wake<C> {
                Event(MasterEvent),
                Stats(io::Result<C>),
                Tick,
            }
            let wake = tokio::select! {
                biased;
                event = self.supervisor.next_event() => Wake::Event(event),
                _ = sleep_until(next_tick) => Wake::Tick,
                conn = accept_optional(self.stats_listener.as_ref()) => Wake::Stats(conn),
            };
            match wake {
                Wake::Event(MasterEvent::Signal(signal)) => self.on_signal(signal),
                Wake::Event(MasterEvent::Exited { pid, status }) => self.on_exit(pid, status),
                Wake::Event(MasterEvent::Message { pid, message }) => self.on_message(pid, message),
                Wake::Stats(Ok(stream)) => self.serve_stats(stream).await,
                Wake::Stats(Err(_)) => {}
                Wake::Tick => {
                    next_tick += Duration::from_secs(1);
                    self.tick();
                }
            }
            self.show_board();
            if let Phase::Stopping { then, .. } = self.phase {
                if self
                    .board
                    .slots
                    .iter()
                    .all(|s| s.status == WorkerStatus::Dead)
                {
                    if then == AfterStop::Reexec {
                        self.reexec();
                        if matches!(self.phase, Phase::Replaced) {
                            return Exit::ReplacedByExec;
                        }
                        continue;
                    }
                    self.procs.log(&Goodbye.to_string());
                    return Exit::Code(0);
                }
            }
        }
    }

    fn show_board(&mut self) {
        // Compared in place: the real master wakes for every batch of reports, and its list
        // rarely changes between two.
        let unchanged = self
            .board
            .slots
            .iter()
            .map(|s| s.status)
            .eq(self.shown_statuses.iter().copied());
        if !unchanged {
            let statuses = self.board.statuses();
            self.supervisor.board_changed(&statuses);
            self.shown_statuses = statuses;
        }
    }

    fn spawn(&mut self, index: usize, respawn: bool) {
        let id = self.board.slots[index].id;
        let shared = match self.net.share(&self.prepared.listener) {
            Ok(shared) => shared,
            Err(e) => {
                self.procs.log(&format!(
                    "wsgilab: cannot hand the socket to worker {id}: {e}; retrying in 1 s"
                ));
                self.board.slots[index].respawn_at = Some(Instant::now() + Duration::from_secs(1));
                return;
            }
        };
        let spec = WorkerSpec {
            id,
            net: self.net.clone(),
            shared,
            procs: self.procs.clone(),
            python: self.python.clone(),
            app: self.prepared.app.clone(),
            lazy: if self.prepared.app.is_none() && self.prepared.loader.source.is_some() {
                Some(self.prepared.loader.clone())
            } else {
                None
            },
            settings: self.prepared.settings.clone(),
            total_requests: self.total_requests.clone(),
        };
        let spawned = self
            .supervisor
            .spawn_worker(self.python, move |link| worker_process(spec, link));
        let now = Instant::now();
        let now_unix = self.procs.unix_time();
        let slot = &mut self.board.slots[index];
        match spawned {
            Ok(pid) => {
                let (respawns, quick_deaths, harakiris) =
                    (slot.respawn_count, slot.quick_deaths, slot.harakiri_count);
                let (requests, exceptions, tx, micros) =
                    (slot.requests, slot.exceptions, slot.tx, slot.total_micros);
                *slot = WorkerSlot::new(id, slot.cores.len(), now, now_unix);
                slot.pid = pid;
                slot.status = WorkerStatus::Starting;
                slot.quick_deaths = quick_deaths;
                slot.harakiri_count = harakiris;
                slot.respawn_count = respawns + u64::from(respawn);
                // uWSGI's counters are per worker slot, across respawns.
                (slot.requests, slot.exceptions, slot.tx, slot.total_micros) =
                    (requests, exceptions, tx, micros);
                let how = if respawn {
                    HowStarted::Respawned
                } else {
                    HowStarted::Spawned {
                        cores: slot.cores.len(),
                    }
                };
                let started = WorkerStarted { slot: id, pid, how };
                self.procs.log(&started.to_string());
            }
            Err(e) => {
                self.procs.log(&format!(
                    "fork(): {e} [wsgilab master]; worker {id} will be retried in 1 s"
                ));
                slot.respawn_at = Some(now + Duration::from_secs(1));
            }
        }
    }

    fn on_signal(&mut self, signal: Signal) {
        match signal {
            Signal::Int | Signal::Quit => {
                self.procs.log(&StopSignal::Kill.to_string());
                let now_unix = self.procs.unix_time();
                for slot in self
                    .board
                    .slots
                    .iter_mut()
                    .filter(|s| s.status != WorkerStatus::Dead)
                {
                    slot.cursed_at_unix = Some(now_unix);
                    let _ = self.supervisor.kill(slot.pid, Signal::Kill);
                }
                self.phase = Phase::Stopping {
                    deadline: Instant::now() + self.mercy,
                    then: AfterStop::Exit,
                };
            }
            Signal::Term => {
                let line = StopSignal::Term {
                    die_on_term: self.die_on_term,
                };
                self.procs.log(&line.to_string());
                self.stop_gracefully(AfterStop::Exit);
            }
            Signal::Hup => {
                if self.prepared.app.is_some() {
                    // Preforking: the workers' app is the master's import, so only a new
                    // master can import new code. As uWSGI does: drain, then re-execute.
                    self.procs.log(&StopSignal::Hup { lazy: false }.to_string());
                    self.stop_gracefully(AfterStop::Reexec);
                    return;
                }
                self.procs.log(&StopSignal::Hup { lazy: true }.to_string());
                self.procs.log("...gracefully killing workers...");
                for slot in self
                    .board
                    .slots
                    .iter_mut()
                    .filter(|s| s.status != WorkerStatus::Dead)
                {
                    let line = GracefullyKilling {
                        slot: slot.id,
                        pid: slot.pid,
                    };
                    self.procs.log(&line.to_string());
                    self.supervisor.send(slot.pid, MasterMessage::Stop);
                    slot.status = WorkerStatus::Stopping;
                    slot.stop_asked_at = Some(Instant::now());
                    slot.cursed_at_unix = Some(self.procs.unix_time());
                }
            }
            other => self
                .procs
                .log(&format!("wsgilab: master ignores {}", other.name())),
        }
    }

    fn stop_gracefully(&mut self, then: AfterStop) {
        self.procs.log("...gracefully killing workers...");
        let now = Instant::now();
        let now_unix = self.procs.unix_time();
        for slot in self.board.slots.iter_mut() {
            if slot.status == WorkerStatus::Dead {
                slot.respawn_at = None;
                continue;
            }
            let line = GracefullyKilling {
                slot: slot.id,
                pid: slot.pid,
            };
            self.procs.log(&line.to_string());
            self.supervisor.send(slot.pid, MasterMessage::Stop);
            slot.status = WorkerStatus::Stopping;
            slot.stop_asked_at = Some(now);
            slot.cursed_at_unix = Some(now_unix);
        }
        self.phase = Phase::Stopping {
            deadline: now + self.mercy,
            then,
        };
    }

    fn on_message(&mut self, pid: u32, message: WorkerMessage) {
        let now = Instant::now();
        let unix = self.procs.unix_time();
        // Readiness does not reset the respawn back-off: a worker that loads its app and then
        // dies at once (its socket gone, say) must not be respawned in a tight loop. Only a
        // worker that lived past QUICK_DEATH does (`on_exit`).
        self.board.apply(pid, message, now, unix);
    }

    fn on_exit(&mut self, pid: u32, status: ExitStatus) {
        let now = Instant::now();
        let Some(index) = self
            .board
            .slots
            .iter()
            .position(|s| s.pid == pid && s.status != WorkerStatus::Dead)
        else {
            return;
        };
        let stopping = matches!(self.phase, Phase::Stopping { .. });
        let slot = &mut self.board.slots[index];
        let lived = now.saturating_duration_since(slot.spawned_at);
        let was_ready = slot.status != WorkerStatus::Starting;
        let in_flight = slot
            .oldest_request()
            .map(|(_, r)| format!("{} {} ({})", r.method, r.uri, r.remote));
        let asked_to_stop = slot.stop_asked_at.is_some();
        let retiring = slot.retiring;
        slot.status = WorkerStatus::Dead;
        for core in &mut slot.cores {
            core.request = None;
        }
        let cursed_at = slot.cursed_at_unix.take();
        if stopping || (asked_to_stop && status == ExitStatus::Code(0)) {
            // As uWSGI's master.c counts it: whole wall-clock seconds from the last time the
            // master told the worker to go (now, if it never did) to its death.
            let now_unix = self.procs.unix_time();
            let line = WorkerBuried {
                slot: slot.id,
                seconds: now_unix.saturating_sub(cursed_at.unwrap_or(now_unix)),
            };
            self.procs.log(&line.to_string());
            if stopping {
                return;
            }
        } else if retiring && status == ExitStatus::Code(0) {
            // It said why it leaves, and logged its Seeya.
        } else {
            match status {
                ExitStatus::Signal(signal) => {
                    if signal == Signal::Segv {
                        self.procs.log(&format!(
                            "!!! uWSGI process {pid} got Segmentation Fault !!!"
                        ));
                    }
                    let line = WorkerDied {
                        slot: slot.id,
                        pid,
                        signal: Some(signal.number()),
                    };
                    self.procs.log(&line.to_string());
                }
                ExitStatus::Code(code) => {
                    let line = WorkerDied {
                        slot: slot.id,
                        pid,
                        signal: None,
                    };
                    self.procs.log(&line.to_string());
                    self.procs.log(&format!(
                        "wsgilab: worker {} exited with status {code}",
                        slot.id
                    ));
                }
            }
            if let Some(request) = in_flight {
                self.procs.log(&format!(
                    "wsgilab: the client of {request} got no response: the worker died while serving it and the kernel closed the connection"
                ));
            }
        }
        let expected = asked_to_stop || (retiring && status == ExitStatus::Code(0));
        if !expected && (!was_ready || lived < QUICK_DEATH) {
            slot.quick_deaths += 1;
        } else {
            slot.quick_deaths = 0;
        }
        if slot.quick_deaths >= 2 {
            let wait = Duration::from_secs(1 << (slot.quick_deaths - 2).min(5)).min(MAX_BACKOFF);
            self.procs.log(&format!(
                "worker respawning too fast !!! i have to sleep a bit ({} seconds)...",
                wait.as_secs()
            ));
            self.procs.log(&format!(
                "wsgilab: worker {} died {} ms after it was spawned, {} times in a row (a start-up failure?): waiting {} s before the next respawn",
                slot.id,
                lived.as_millis(),
                slot.quick_deaths,
                wait.as_secs()
            ));
            slot.respawn_at = Some(now + wait);
        } else {
            self.spawn(index, true);
        }
    }

    fn tick(&mut self) {
        let now = Instant::now();
        if let Some(limit) = self.harakiri {
            self.harakiri_check(now, limit);
        }
        self.listen_queue_check();
        match self.phase {
            Phase::Running => {
                let due: Vec<usize> = (0..self.board.slots.len())
                    .filter(|&i| {
                        let slot = &self.board.slots[i];
                        slot.status == WorkerStatus::Dead
                            && slot.respawn_at.is_some_and(|at| at <= now)
                    })
                    .collect();
                for index in due {
                    self.spawn(index, true);
                }
                // A reloading worker that outstays the mercy.
                let mercy = self.mercy;
                for index in 0..self.board.slots.len() {
                    let slot = &self.board.slots[index];
                    if slot.stop_asked_at.is_some_and(|at| now >= at + mercy)
                        && slot.status != WorkerStatus::Dead
                    {
                        self.no_mercy(index);
                    }
                }
            }
            Phase::Stopping { deadline, .. } if now >= deadline => {
                for index in 0..self.board.slots.len() {
                    if self.board.slots[index].status != WorkerStatus::Dead {
                        self.no_mercy(index);
                    }
                }
            }
            Phase::Stopping { .. } | Phase::Replaced => {}
        }
    }

    /// Replaces the master's program with a fresh copy of itself, the listening socket kept
    /// open. If that fails, the reload falls back to forking new workers from this master.
    fn reexec(&mut self) {
        let binary = self.procs.system().binary_path;
        self.procs.log("binary reloading uWSGI...");
        self.procs.log(&format!("running {}", binary.display()));
        let addr = self.prepared.listener.local_addr();
        let error = match addr {
            Ok(addr) => self
                .supervisor
                .reexec(&[(addr, self.prepared.listener.fd())]),
            Err(e) => e,
        };
        if error
            .get_ref()
            .is_some_and(|e| e.is::<crate::procs::ProgramReplaced>())
        {
            self.phase = Phase::Replaced;
            return;
        }
        self.procs.log(&format!(
            "wsgilab: cannot re-execute the master ({error}); new workers are forked from the app imported at start-up instead"
        ));
        self.phase = Phase::Running;
        for index in 0..self.board.slots.len() {
            self.spawn(index, true);
        }
    }

    /// Kills a worker that outstayed the mercy. As uWSGI's `uwsgi_curse` does, the kill is
    /// when the master last told it to go: its burial counts from here.
    fn no_mercy(&mut self, index: usize) {
        let now_unix = self.procs.unix_time();
        let slot = &mut self.board.slots[index];
        let line = NoMercy {
            slot: slot.id,
            pid: slot.pid,
        };
        self.procs.log(&line.to_string());
        slot.cursed_at_unix = Some(now_unix);
        let _ = self.supervisor.kill(slot.pid, Signal::Kill);
    }

    fn harakiri_check(&mut self, now: Instant, limit: Duration) {
        let ctime = self.procs.now_ctime();
        for slot in &mut self.board.slots {
            if slot.status == WorkerStatus::Dead {
                continue;
            }
            let Some((core, request)) = slot.oldest_request() else {
                continue;
            };
            if now.saturating_duration_since(request.since) < limit {
                continue;
            }
            let lines = [
                HarakiriOnWorker {
                    ctime: ctime.clone(),
                    slot: slot.id,
                    pid: slot.pid,
                }
                .to_string(),
                format!("{ctime} - HARAKIRI !!! worker {} status !!!", slot.id),
                format!(
                    "{ctime} - HARAKIRI [core {core}] {} - {} {} since {}",
                    request.remote, request.method, request.uri, request.since_unix
                ),
                format!(
                    "{ctime} - HARAKIRI !!! end of worker {} status !!!",
                    slot.id
                ),
                format!("HARAKIRI triggered by worker {} core {core} !!!", slot.id),
            ];
            for line in lines {
                self.procs.log(&line);
            }
            self.procs.log(&format!(
                "wsgilab: --harakiri {}: {} {} ran for more than {} s; the worker is killed, so its client gets no response",
                limit.as_secs(),
                request.method,
                request.uri,
                limit.as_secs()
            ));
            slot.harakiri_count += 1;
            let _ = self.supervisor.kill(slot.pid, Signal::Kill);
            // One kill is enough; the exit will clear the request.
            for core in &mut slot.cores {
                core.request = None;
            }
        }
    }

    fn listen_queue_check(&mut self) {
        let Some((queued, max)) = self.prepared.listener.queue_depth() else {
            return;
        };
        if max > 0 && queued >= max {
            self.listen_queue_errors += 1;
            let line = ListenQueueFull {
                ctime: self.procs.now_ctime(),
                socket: self.socket_name.clone(),
                fd: self.prepared.listener.fd(),
                queued,
                max,
            };
            self.procs.log(&line.to_string());
        }
    }

    async fn serve_stats(&self, (mut stream, _peer): (N::Stream, std::net::SocketAddr)) {
        let system = self.procs.system();
        let cwd = self
            .procs
            .current_dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default();
        let instance = stats::Instance {
            master_pid: self.procs.pid(),
            uid: system.uid,
            gid: system.gid,
            cwd: &cwd,
            socket_name: &self.socket_name,
            queue: self.prepared.listener.queue_depth().unwrap_or((0, 0)),
            listen_queue_errors: self.listen_queue_errors,
        };
        let body = stats::document(&instance, &self.board, Instant::now()).to_string();
        let out = if self.stats_http {
            PlainResponse::new("HTTP/1.0", 200, "OK", "application/json", body.as_bytes()).bytes
        } else {
            body.into_bytes()
        };
        let write = async {
            stream.write_all(&out).await?;
            stream.shutdown().await
        };
        // A stats client that does not read must not stall the master.
        let _ = tokio::time::timeout(Duration::from_secs(1), write).await;
    }
}

async fn accept_optional<L: Listener>(
    listener: Option<&L>,
) -> io::Result<(L::Stream, std::net::SocketAddr)> {
    match listener {
        Some(listener) => listener.accept().await,
        None => std::future::pending().await,
    }
}
