//! The trace: every event of a simulated run with its virtual time, in the order it happened.
//! It is the lab's raw output (`--format json`) and what the timeline, the request table, the
//! server log and the explanation are rendered from. Nothing in it may depend on anything but
//! the scenario and the seed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::{Deserialize, Serialize};
use server::scoreboard::WorkerStatus;

/// What part of the machine an event comes from.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Category {
    /// SYN, SYN-ACK, ACK, accept queue, RST, FIN, data.
    Net,
    /// spawn, exit, signals, the scheduler.
    Proc,
    /// The app: import, call, CPU, sleep, response.
    App,
    /// A line of the server's log, as printed.
    Log,
    /// The clients: request sent, response received, outcome.
    Client,
    /// The master's worker list changed.
    Board,
}

/// Declares [`EventKind`] from one list of variants and their names, so that the JSON trace
/// (serde) and the text (`name`, `Display`) cannot spell a kind two ways.
macro_rules! event_kinds {
    ($($(#[$group:meta])* $variant:ident = $name:literal,)*) => {
        /// What an event is, by the part of the machine that records it, named in snake_case
        /// (`syn_dropped`, `app_start`, ...) as the JSON trace writes it.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
        pub enum EventKind {
            $($(#[$group])* #[serde(rename = $name)] $variant,)*
        }

        impl EventKind {
            /// The name the JSON trace gives it.
            pub fn name(self) -> &'static str {
                match self {
                    $(EventKind::$variant => $name,)*
                }
            }
        }
    };
}

event_kinds! {
    // The network (sim/src/net/kernel.rs)
    Listen = "listen",
    SynSent = "syn_sent",
    SynDropped = "syn_dropped",
    SynFlood = "syn_flood",
    SynRetry = "syn_retry",
    Synack = "synack",
    SynackRetransmit = "synack_retransmit",
    AckDropped = "ack_dropped",
    HalfOpenExpired = "half_open_expired",
    Established = "established",
    Accepted = "accepted",
    Connected = "connected",
    Refused = "refused",
    Reset = "reset",
    Timeout = "timeout",
    DataRetransmit = "data_retransmit",
    DataDelivered = "data_delivered",
    Fin = "fin",
    Close = "close",
    // Processes (sim/src/procs/, sim/src/world.rs, the runner's faults)
    Exec = "exec",
    Fork = "fork",
    Spawn = "spawn",
    Exit = "exit",
    Signal = "signal",
    Kill = "kill",
    Killed = "killed",
    FaultMissed = "fault_missed",
    Squatter = "squatter",
    // The interpreter and the app (sim/src/python/)
    PythonStart = "python_start",
    PythonStartFailed = "python_start_failed",
    Import = "import",
    ImportFailed = "import_failed",
    ImportThread = "import_thread",
    ImportConnection = "import_connection",
    ForkThreadMissing = "fork_thread_missing",
    ForkConnectionShared = "fork_connection_shared",
    QuerySharedConnection = "query_shared_connection",
    QueryWaits = "query_waits",
    Hint = "hint",
    AppStart = "app_start",
    Cpu = "cpu",
    Sleep = "sleep",
    Leak = "leak",
    Hang = "hang",
    Crash = "crash",
    Raise = "raise",
    AppEnd = "app_end",
    // The clients (sim/src/scenario/client.rs)
    Connect = "connect",
    Sent = "sent",
    Outcome = "outcome",
    // The server's log and the master's worker list
    Log = "log",
    Board = "board",
    // The lab itself
    Lab = "lab",
    SimError = "sim_error",
}

impl std::fmt::Display for EventKind {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

/// One event.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Event {
    /// Virtual time since the start of the run, in microseconds.
    pub at_us: u64,
    /// The simulated host (`server`, `client1`, ...).
    pub host: String,
    /// The process it happened in, where there is one.
    pub pid: Option<u32>,
    pub category: Category,
    /// The connection the event concerns, by its client's address (`ip:port`): how the
    /// request table matches the kernel's, the worker's and the client's events.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub conn: Option<String>,
    /// What it is (`syn_dropped`, `spawn`, `app_end`, ...).
    pub kind: EventKind,
    /// What happened, in words.
    pub text: String,
    /// The master's worker list, for a [`Category::Board`] event (its `text` is the list as
    /// printed). Not in the JSON trace, which has the text.
    #[serde(skip)]
    pub board: Option<Vec<WorkerStatus>>,
}

/// The shared recorder; cloned into every part of the simulated world. The world runs on one
/// thread (turmoil's), but the seams it implements ask for `Send + Sync` handles, because the
/// real ones cross threads; hence `Arc<Mutex<_>>`, never contended.
///
/// Events are kept compact while the run records them (host names interned, the
/// connection as an address) and become [`Event`]s when read: recording is on every
/// request's path, reading happens once.
#[derive(Clone, Default)]
pub struct Trace(Arc<Mutex<Recorded>>);

/// An event as recorded: [`Event`] with its repeated strings replaced by indexes.
struct Raw {
    at_us: u64,
    host: u32,
    pid: Option<u32>,
    category: Category,
    conn: Option<SocketAddr>,
    kind: EventKind,
    text: String,
    board: Option<Vec<WorkerStatus>>,
}

#[derive(Default)]
struct Recorded {
    events: Vec<Raw>,
    /// Host names, each stored once.
    names: Vec<String>,
    index: BTreeMap<String, u32>,
}

impl Recorded {
    fn intern(&mut self, name: &str) -> u32 {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.names.len() as u32;
        self.names.push(name.to_string());
        self.index.insert(name.to_string(), i);
        i
    }

    fn event(&self, raw: &Raw) -> Event {
        Event {
            at_us: raw.at_us,
            host: self.names[raw.host as usize].clone(),
            pid: raw.pid,
            category: raw.category,
            conn: raw.conn.map(|c| c.to_string()),
            kind: raw.kind,
            text: raw.text.clone(),
            board: raw.board.clone(),
        }
    }
}

impl Trace {
    pub fn record(
        &self,
        host: &str,
        pid: Option<u32>,
        category: Category,
        kind: EventKind,
        text: impl Into<String>,
    ) {
        self.push(host, pid, category, None, kind, text.into(), None);
    }

    /// Records the master's worker list, printed as `[busy, idle, ...]`.
    pub fn record_board(&self, host: &str, master: u32, statuses: &[WorkerStatus]) {
        // Twice per request: built in one allocation.
        let mut text =
            String::with_capacity(2 + statuses.iter().map(|s| s.name().len() + 2).sum::<usize>());
        text.push('[');
        for (i, status) in statuses.iter().enumerate() {
            if i > 0 {
                text.push_str(", ");
            }
            text.push_str(status.name());
        }
        text.push(']');
        let board = Some(statuses.to_vec());
        self.push(
            host,
            Some(master),
            Category::Board,
            None,
            EventKind::Board,
            text,
            board,
        );
    }

    /// Records an event about one connection, named by its client's address.
    pub fn record_conn(
        &self,
        host: &str,
        pid: Option<u32>,
        category: Category,
        conn: Option<SocketAddr>,
        kind: EventKind,
        text: impl Into<String>,
    ) {
        self.push(host, pid, category, conn, kind, text.into(), None);
    }

    #[allow(clippy::too_many_arguments)] // the fields of one event, each named at the call
    fn push(
        &self,
        host: &str,
        pid: Option<u32>,
        category: Category,
        conn: Option<SocketAddr>,
        kind: EventKind,
        text: String,
        board: Option<Vec<WorkerStatus>>,
    ) {
        let at_us = now().as_micros() as u64;
        let mut recorded = self.lock();
        let host = recorded.intern(host);
        recorded.events.push(Raw {
            at_us,
            host,
            pid,
            category,
            conn,
            kind,
            text,
            board,
        });
    }

    pub fn events(&self) -> Vec<Event> {
        let recorded = self.lock();
        recorded.events.iter().map(|e| recorded.event(e)).collect()
    }

    pub fn len(&self) -> usize {
        self.lock().events.len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().events.is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Recorded> {
        // A panic elsewhere must not hide the trace that explains it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Virtual time since the start of the simulation (zero outside one).
pub fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}
