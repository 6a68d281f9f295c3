//! What a run leaves behind, the data every view of it reads: each request as its client lived
//! it ([`RequestRecord`]), the trace, the exit status ([`RunOutput`]), and the summaries drawn
//! from them. Times are virtual microseconds from the start of the run.

use std::collections::BTreeMap;

use serde::Serialize;

use super::Outcome;
use crate::trace::{Category, Event};

/// One request as its client lived it (times in virtual microseconds from the start).
#[derive(Clone, Debug, Serialize, PartialEq, Eq)]
pub struct RequestRecord {
    /// `client#3`: the group's name and the client's number in the run.
    pub client: String,
    pub host: String,
    /// The connection, by the client's address, once known.
    pub conn: Option<String>,
    /// The request's number on its connection (1 unless keep-alive).
    pub seq: u32,
    pub method: String,
    pub path: String,
    pub start_us: u64,
    pub connected_us: Option<u64>,
    pub sent_us: Option<u64>,
    pub first_byte_us: Option<u64>,
    pub done_us: Option<u64>,
    /// `200`, `refused`, `reset`, `no_response`, `timeout`, `gave_up`, `client_closed`,
    /// `cut`, `unfinished`.
    pub outcome: Outcome,
    /// The outcome in words (`200 OK, 13 bytes`, `connect(): ECONNREFUSED`, ...).
    pub detail: String,
}

/// One replay of one command line.
#[derive(Clone, Debug, Serialize)]
pub struct RunOutput {
    pub variant: Option<String>,
    pub command: String,
    pub seed: u64,
    pub events: Vec<Event>,
    pub requests: Vec<RequestRecord>,
    /// The server process's exit status (on `server`); `None` if it was still running at the
    /// end.
    pub exit_status: Option<i32>,
    /// Every server machine, `server` first.
    pub servers: Vec<String>,
    pub end_us: u64,
}

/// The servers' log lines of a run, as printed (and the balancer's, if there is one).
pub fn server_log(events: &[Event]) -> Vec<&str> {
    events
        .iter()
        .filter(|e| e.category == Category::Log)
        .map(|e| e.text.as_str())
        .collect()
}

/// Outcome → count.
pub fn outcome_counts(requests: &[RequestRecord]) -> BTreeMap<Outcome, u32> {
    let mut counts = BTreeMap::new();
    for r in requests {
        *counts.entry(r.outcome).or_insert(0) += 1;
    }
    counts
}

/// `1024.000 ms` style, for microseconds.
pub fn ms(us: u64) -> String {
    format!("{}.{:03} ms", us / 1000, us % 1000)
}

/// `3 × 200, 1 × refused`.
pub fn outcome_summary(requests: &[RequestRecord]) -> String {
    let counts = outcome_counts(requests);
    if counts.is_empty() {
        return "none".into();
    }
    counts
        .iter()
        .map(|(outcome, n)| format!("{n} × {outcome}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// Latency of the requests that got a response.
#[derive(Clone, Copy, Debug)]
pub struct LatencyStats {
    pub mean_us: u64,
    pub max_us: u64,
    /// From the first start to the last response.
    pub span_us: u64,
}

pub fn latency_stats(requests: &[RequestRecord]) -> Option<LatencyStats> {
    let answered: Vec<&RequestRecord> = requests
        .iter()
        .filter(|r| r.outcome.is_status() && r.done_us.is_some())
        .collect();
    if answered.is_empty() {
        return None;
    }
    let totals: Vec<u64> = answered
        .iter()
        .map(|r| r.done_us.unwrap_or(0) - r.start_us)
        .collect();
    let start = answered.iter().map(|r| r.start_us).min().unwrap_or(0);
    let end = answered.iter().filter_map(|r| r.done_us).max().unwrap_or(0);
    Some(LatencyStats {
        mean_us: totals.iter().sum::<u64>() / totals.len() as u64,
        max_us: totals.iter().copied().max().unwrap_or(0),
        span_us: end - start,
    })
}
