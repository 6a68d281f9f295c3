//! The trace: every event of a simulated run with its virtual time, in the order it happened.
//! It is the lab's raw output (`--format json`) and what the timeline, the request table, the
//! server log and the explanation are rendered from. Nothing in it may depend on anything but
//! the scenario and the seed.

use std::collections::BTreeMap;
use std::net::SocketAddr;
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
///
/// Events are kept compact while the run records them (host and kind interned, the
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
    kind: u32,
    text: String,
}

#[derive(Default)]
struct Recorded {
    events: Vec<Raw>,
    /// Host names and kinds, each stored once.
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
            kind: self.names[raw.kind as usize].clone(),
            text: raw.text.clone(),
        }
    }
}

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
        conn: Option<SocketAddr>,
        kind: &str,
        text: impl Into<String>,
    ) {
        self.push(host, pid, category, conn, kind, text.into());
    }

    fn push(
        &self,
        host: &str,
        pid: Option<u32>,
        category: Category,
        conn: Option<SocketAddr>,
        kind: &str,
        text: String,
    ) {
        let at_us = now().as_micros() as u64;
        let mut recorded = self.lock();
        let host = recorded.intern(host);
        let kind = recorded.intern(kind);
        recorded.events.push(Raw {
            at_us,
            host,
            pid,
            category,
            conn,
            kind,
            text,
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
