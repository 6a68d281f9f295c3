//! The trace: every event of a simulated run with its virtual time, in the order it happened.
//! It is the lab's raw output (`--format json`) and what the timeline, the request table, the
//! server log and the explanation are rendered from. Nothing in it may depend on anything but
//! the scenario and the seed.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use serde::Serialize;

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
    /// A short machine-readable kind (`syn_dropped`, `spawn`, `request_done`, ...).
    pub kind: String,
    /// What happened, in words.
    pub text: String,
}

/// The shared recorder; cloned into every part of the simulated world. The world runs on one
/// thread (turmoil's), but the seams it implements ask for `Send + Sync` handles, because the
/// real ones cross threads; hence `Arc<Mutex<_>>`, never contended.
#[derive(Clone, Default)]
pub struct Trace(Arc<Mutex<Vec<Event>>>);

impl Trace {
    pub fn record(
        &self,
        host: &str,
        pid: Option<u32>,
        category: Category,
        kind: &str,
        text: impl Into<String>,
    ) {
        self.push(host, pid, category, None, kind, text.into());
    }

    /// Records an event about one connection, named by its client's address.
    pub fn record_conn(
        &self,
        host: &str,
        pid: Option<u32>,
        category: Category,
        conn: Option<std::net::SocketAddr>,
        kind: &str,
        text: impl Into<String>,
    ) {
        self.push(
            host,
            pid,
            category,
            conn.map(|c| c.to_string()),
            kind,
            text.into(),
        );
    }

    fn push(
        &self,
        host: &str,
        pid: Option<u32>,
        category: Category,
        conn: Option<String>,
        kind: &str,
        text: String,
    ) {
        let at = now();
        self.lock().push(Event {
            at_us: at.as_micros() as u64,
            host: host.to_string(),
            pid,
            category,
            conn,
            kind: kind.to_string(),
            text,
        });
    }

    pub fn events(&self) -> Vec<Event> {
        self.lock().clone()
    }

    pub fn len(&self) -> usize {
        self.lock().len()
    }

    pub fn is_empty(&self) -> bool {
        self.lock().is_empty()
    }

    fn lock(&self) -> MutexGuard<'_, Vec<Event>> {
        // A panic elsewhere must not hide the trace that explains it.
        self.0.lock().unwrap_or_else(|e| e.into_inner())
    }
}

/// Virtual time since the start of the simulation (zero outside one).
pub fn now() -> Duration {
    turmoil::sim_elapsed().unwrap_or_default()
}
