//! Each request's phases — connecting, waiting in the accept queue, being read, in the app,
//! being written — from joining what its client saw with the trace's events about its
//! connection. The table, the explanation and the HTML page all read them.

use std::collections::BTreeMap;

use super::record::{RequestRecord, RunOutput};
use crate::trace::{Category, Event, EventKind};

/// A request's life, phase by phase (microseconds); `None` where the phase did not happen.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Phases {
    /// From `connect()` to its return: SYN retransmissions included.
    pub connect: Option<u64>,
    pub syn_retries: u32,
    /// ACKs (or request retransmissions) the server dropped because its queue was full.
    pub acks_dropped: u32,
    /// From the connection's establishment on the server to `accept()`.
    pub queue: Option<u64>,
    /// From `accept()` (or the request's start on a kept-alive connection) to the app's call:
    /// waiting for the request's bytes, reading and parsing them.
    pub read_parse: Option<u64>,
    pub app: Option<u64>,
    /// From the app's return to the client's last byte.
    pub write: Option<u64>,
    pub total: Option<u64>,
    /// The worker process that served it.
    pub worker_pid: Option<u32>,
    /// How the app ended (`app_end`, `raise`, `crash`, `hang`), if it was called.
    pub app_end_kind: Option<EventKind>,
}

/// Every request's phases, in the order of `run.requests`.
pub fn request_phases(run: &RunOutput) -> Vec<Phases> {
    let mut by_conn: BTreeMap<&str, Vec<&Event>> = BTreeMap::new();
    for event in &run.events {
        if let Some(conn) = &event.conn {
            by_conn.entry(conn.as_str()).or_default().push(event);
        }
    }
    run.requests
        .iter()
        .map(|r| phases_of(r, r.conn.as_deref().and_then(|c| by_conn.get(c))))
        .collect()
}

fn phases_of(r: &RequestRecord, events: Option<&Vec<&Event>>) -> Phases {
    let none = Vec::new();
    let events = events.unwrap_or(&none);
    let first = |kind: EventKind, category: Category| {
        events
            .iter()
            .find(|e| e.kind == kind && e.category == category)
            .map(|e| e.at_us)
    };
    let mut p = Phases {
        connect: r.connected_us.map(|c| c - r.start_us),
        syn_retries: events
            .iter()
            .filter(|e| e.kind == EventKind::SynRetry)
            .count() as u32,
        acks_dropped: events
            .iter()
            .filter(|e| e.kind == EventKind::AckDropped)
            .count() as u32,
        total: r.done_us.map(|d| d - r.start_us),
        ..Phases::default()
    };
    let accepted = first(EventKind::Accepted, Category::Net);
    if r.seq == 1 {
        let established = first(EventKind::Established, Category::Net).or(r.connected_us);
        if let (Some(est), Some(acc)) = (established, accepted) {
            p.queue = Some(acc.saturating_sub(est));
        }
    }
    let app_starts: Vec<&&Event> = events
        .iter()
        .filter(|e| e.category == Category::App && e.kind == EventKind::AppStart)
        .collect();
    if let Some(start) = app_starts.get(r.seq as usize - 1) {
        let from = if r.seq == 1 {
            accepted
        } else {
            Some(r.start_us)
        };
        p.read_parse = from.map(|f| start.at_us.saturating_sub(f));
        p.worker_pid = start.pid;
        let end = events.iter().find(|e| {
            e.category == Category::App
                && e.at_us >= start.at_us
                && e.pid == start.pid
                && matches!(
                    e.kind,
                    EventKind::AppEnd | EventKind::Raise | EventKind::Crash | EventKind::Hang
                )
                && !std::ptr::eq(**e, **start)
        });
        if let Some(end) = end {
            p.app_end_kind = Some(end.kind);
            if end.kind != EventKind::Hang {
                p.app = Some(end.at_us - start.at_us);
                p.write = r.done_us.map(|d| d.saturating_sub(end.at_us));
            }
        }
    }
    p
}
