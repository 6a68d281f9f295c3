//! The replay as one self-contained HTML page (`wsgilab replay 07 --html page.html`): the
//! explanation, then an SVG chart over virtual time — one lane per worker showing when it was
//! busy, one bar per request split into its phases, markers for signals, kills, forks and exits —
//! then the request table and the server's log. Inline CSS and SVG only, so that the file opens
//! anywhere without a network. It is built from the trace alone, in trace order, with no clock
//! and no hash-map order: the same replay gives the same bytes.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde::Serialize;

use super::explain::explain;
use super::phases::{request_phases, Phases};
use super::record::{latency_stats, ms, outcome_summary, RequestRecord, RunOutput};
use super::states::{derive_states, States};
use super::{Outcome, Scenario, SERVER_HOST};
use crate::trace::{Category, Event, EventKind};
use server::log::lines::WorkerStarted;
use server::scoreboard::WorkerStatus;

/// The whole page: a header, then one section per run (one per variant).
pub fn render_html(name: &str, scenario: &Scenario, runs: &[RunOutput]) -> String {
    let mut out = String::new();
    let title = format!("{name}: {}", scenario.title);
    let _ = write!(
        out,
        "<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n<title>wsgilab replay — {}</title>\n<style>{CSS}</style>\n</head>\n<body>\n",
        esc(&title)
    );
    let _ = writeln!(out, "<header>\n<h1>{}</h1>", esc(&title));
    for paragraph in scenario.teaches.split("\n\n") {
        let words = paragraph.split_whitespace().collect::<Vec<_>>().join(" ");
        if !words.is_empty() {
            let _ = writeln!(out, "<p class=\"teaches\">{}</p>", esc(&words));
        }
    }
    let _ = writeln!(
        out,
        "<p class=\"machine\">machine: {} cores, working directory {}; seed {}; all times are virtual</p>\n</header>",
        scenario.machine.cores,
        esc(&scenario.machine.cwd.display().to_string()),
        runs.first().map_or(scenario.seed, |r| r.seed)
    );
    if runs.len() > 1 {
        render_comparison(&mut out, runs);
    }
    if runs.is_empty() {
        let _ = writeln!(out, "<p>(nothing was replayed)</p>");
    }
    for (i, run) in runs.iter().enumerate() {
        render_run(&mut out, scenario, run, i + 1);
    }
    if !runs.is_empty() {
        // The time cursor: all of its UI is built by this script, so that without scripts the
        // page is what it was; it only displays the states computed in Rust (`states.rs`).
        let _ = writeln!(out, "<script>{CURSOR_JS}</script>");
    }
    out.push_str("</body>\n</html>\n");
    out
}

const CSS: &str = "
body { font-family: 'DejaVu Sans', Verdana, Arial, sans-serif; font-size: 14px; color: #212529;
  margin: 16px 24px; max-width: 1340px; }
h1 { font-size: 21px; margin: 0 0 6px; }
h2 { font-size: 18px; margin: 22px 0 6px; padding-top: 10px; border-top: 2px solid #adb5bd; }
h3 { font-size: 15px; margin: 14px 0 4px; }
p.teaches { margin: 4px 0; color: #495057; max-width: 1100px; }
p.machine { margin: 4px 0; color: #868e96; font-size: 12px; }
pre.command { background: #212529; color: #f8f9fa; padding: 5px 9px; margin: 6px 0;
  border-radius: 3px; font-size: 13px; white-space: pre-wrap; }
ul.explain { margin: 4px 0; padding-left: 22px; max-width: 1150px; }
ul.explain li { margin: 2px 0; }
.legend { font-size: 12px; margin: 2px 0 4px; }
.legend span.item { display: inline-block; margin-right: 14px; white-space: nowrap; }
.legend svg { vertical-align: middle; margin-right: 4px; }
svg.chart { display: block; font-family: 'DejaVu Sans', Verdana, Arial, sans-serif; }
svg.chart text { font-size: 11px; fill: #343a40; }
svg.chart text.head { font-size: 12px; font-weight: bold; fill: #212529; }
svg.chart text.sub { font-size: 10px; fill: #868e96; }
svg.chart text.fail { fill: #c92a2a; font-weight: bold; }
svg.chart g.req:hover rect, svg.chart g.lane rect:hover { opacity: 0.75; }
table.requests { border-collapse: collapse; font-size: 12px; }
table.requests th, table.requests td { border: 1px solid #dee2e6; padding: 2px 6px; }
table.requests th { background: #f1f3f5; }
table.requests td.n { text-align: right; font-variant-numeric: tabular-nums; }
table.requests tr.failed td { background: #fff0f0; }
table.requests tr.failed td.outcome { color: #c92a2a; font-weight: bold; }
table.compare { border-collapse: collapse; font-size: 13px; }
table.compare th, table.compare td { border: 1px solid #dee2e6; padding: 2px 8px; }
pre.log { background: #f8f9fa; border: 1px solid #dee2e6; padding: 6px 8px; font-size: 12px;
  overflow-x: auto; max-height: 480px; margin: 4px 0; }
pre.log span.t { color: #adb5bd; }
pre.log span.h { color: #1864ab; }
";

/// Escapes text for HTML content and attribute values alike.
fn esc(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            // Control characters (a raw request's bytes) would make the page invalid.
            c if c.is_control() && c != '\n' && c != '\t' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out
}

fn render_comparison(out: &mut String, runs: &[RunOutput]) {
    let _ = writeln!(
        out,
        "<h3>The variants compared</h3>\n<table class=\"compare\">\n<tr><th>variant</th><th>requests</th><th>mean (ms)</th><th>max (ms)</th><th>span (ms)</th><th>outcomes</th></tr>"
    );
    for (i, run) in runs.iter().enumerate() {
        let stats = latency_stats(&run.requests);
        let cell = |v: Option<u64>| v.map_or("-".into(), |us| format!("{:.1}", us as f64 / 1000.0));
        let _ = writeln!(
            out,
            "<tr><td><a href=\"#run-{}\">{}</a></td><td>{}</td><td>{}</td><td>{}</td><td>{}</td><td>{}</td></tr>",
            i + 1,
            esc(run.variant.as_deref().unwrap_or("")),
            run.requests.len(),
            cell(stats.map(|s| s.mean_us)),
            cell(stats.map(|s| s.max_us)),
            cell(stats.map(|s| s.span_us)),
            esc(&outcome_summary(&run.requests))
        );
    }
    let _ = writeln!(out, "</table>");
}

fn render_run(out: &mut String, scenario: &Scenario, run: &RunOutput, n: usize) {
    let variant_attr = run
        .variant
        .as_deref()
        .map(|v| format!(" data-variant=\"{}\"", esc(v)))
        .unwrap_or_default();
    let _ = writeln!(out, "<section class=\"run\" id=\"run-{n}\"{variant_attr}>");
    if let Some(variant) = &run.variant {
        let _ = writeln!(out, "<h2>Variant: {}</h2>", esc(variant));
    }
    let _ = writeln!(out, "<pre class=\"command\">$ {}</pre>", esc(&run.command));
    let _ = writeln!(out, "<h3>What happened</h3>\n<ul class=\"explain\">");
    for paragraph in explain(scenario, run) {
        let _ = writeln!(out, "<li>{}</li>", esc(&paragraph));
    }
    let _ = writeln!(out, "</ul>");
    let phases = request_phases(run);
    let _ = writeln!(out, "<h3>Timeline</h3>");
    render_legend(out);
    let end_us = render_chart(out, run, &phases);
    render_states(out, run, &phases, end_us, n);
    let _ = writeln!(out, "<h3>Requests (ms)</h3>");
    render_table(out, run, &phases);
    let _ = writeln!(
        out,
        "<h3>Server log</h3>\n<pre class=\"log\">{}</pre>",
        render_log(run)
    );
    let _ = writeln!(out, "</section>");
}

// ---- colours -------------------------------------------------------------------------------

/// A request's phases, in the order they happen, with their colour and legend label.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Connect,
    Queue,
    Read,
    App,
    Write,
    /// Connected on the client's side, but the server dropped its ACK because the accept
    /// queue was full: the connection waits half-open until a retransmission finds room.
    HalfOpen,
    /// Time that is none of the above: the network between client and server, a request
    /// that never reached a worker, or whatever the trace does not attribute.
    Other,
}

impl Phase {
    fn colour(self) -> &'static str {
        match self {
            Phase::Connect => "#339af0",
            Phase::Queue => "#fcc419",
            Phase::Read => "#51cf66",
            Phase::App => "#845ef7",
            Phase::Write => "#f06595",
            Phase::HalfOpen => "#ffa8a8",
            Phase::Other => "#ced4da",
        }
    }

    fn name(self) -> &'static str {
        match self {
            Phase::Connect => "connect",
            Phase::Queue => "queue wait",
            Phase::Read => "read+parse",
            Phase::App => "app",
            Phase::Write => "write",
            Phase::HalfOpen => "half-open (ACK dropped)",
            Phase::Other => "network / waiting",
        }
    }
}

const PHASES: [Phase; 7] = [
    Phase::Connect,
    Phase::HalfOpen,
    Phase::Queue,
    Phase::Read,
    Phase::App,
    Phase::Write,
    Phase::Other,
];

/// A worker's status, as the master's list spells it.
fn status_colour(status: &str) -> &'static str {
    match status {
        "busy" => "#e8590c",
        "idle" => "#b2f2bb",
        "starting" => "#a5d8ff",
        "stopping" => "#ffc078",
        "dead" => "#868e96",
        _ => "#e9ecef",
    }
}

const STATUSES: [&str; 5] = ["busy", "idle", "starting", "stopping", "dead"];

/// The process events drawn as markers, with their legend label.
const MARKERS: [(EventKind, &str); 5] = [
    (EventKind::Kill, "signal typed by the operator"),
    (EventKind::Signal, "signal sent by the server"),
    (EventKind::Killed, "killed by a signal"),
    (EventKind::Fork, "fork / respawn"),
    (EventKind::Exit, "exit"),
];

const FAIL: &str = "#c92a2a";

fn marker_shape(kind: EventKind, x: f64, y: f64) -> String {
    match kind {
        EventKind::Kill => format!(
            "<path d=\"M{:.1},{:.1} l12,0 l-6,10 z\" fill=\"#e03131\" stroke=\"#fff\" stroke-width=\"1\"/>",
            x - 6.0,
            y - 5.0
        ),
        EventKind::Signal => format!(
            "<path d=\"M{x:.1},{:.1} l6,6 l-6,6 l-6,-6 z\" fill=\"#f59f00\" stroke=\"#fff\" stroke-width=\"1\"/>",
            y - 6.0
        ),
        EventKind::Killed => format!(
            "<path d=\"M{:.1},{:.1} l10,10 m0,-10 l-10,10\" stroke=\"{FAIL}\" stroke-width=\"3\"/>",
            x - 5.0,
            y - 5.0
        ),
        EventKind::Fork => format!(
            "<circle cx=\"{x:.1}\" cy=\"{y:.1}\" r=\"5\" fill=\"#2b8a3e\" stroke=\"#fff\" stroke-width=\"1\"/>"
        ),
        _ => format!(
            "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"9\" height=\"9\" fill=\"#343a40\" stroke=\"#fff\" stroke-width=\"1\"/>",
            x - 4.5,
            y - 4.5
        ),
    }
}

fn render_legend(out: &mut String) {
    let swatch = |fill: &str| {
        format!("<svg width=\"14\" height=\"12\"><rect width=\"14\" height=\"12\" fill=\"{fill}\"/></svg>")
    };
    let _ = write!(out, "<div class=\"legend\"><b>workers:</b> ");
    for status in STATUSES {
        let _ = write!(
            out,
            "<span class=\"item\">{}{status}</span>",
            swatch(status_colour(status))
        );
    }
    let _ = write!(out, "&nbsp; <b>events:</b> ");
    for (kind, label) in MARKERS {
        let _ = write!(
            out,
            "<span class=\"item\"><svg width=\"14\" height=\"14\">{}</svg>{label}</span>",
            marker_shape(kind, 7.0, 7.0)
        );
    }
    let _ = write!(out, "</div>\n<div class=\"legend\"><b>requests:</b> ");
    for phase in PHASES {
        let _ = write!(
            out,
            "<span class=\"item\">{}{}</span>",
            swatch(phase.colour()),
            phase.name()
        );
    }
    let _ = writeln!(
        out,
        "<span class=\"item\"><svg width=\"14\" height=\"12\"><defs>{SYN_PATTERN}</defs><rect width=\"14\" height=\"12\" fill=\"url(#syn-retry)\"/></svg>connect that waited for SYN retransmissions</span><span class=\"item\"><svg width=\"14\" height=\"12\"><rect x=\"1\" y=\"1\" width=\"12\" height=\"10\" fill=\"none\" stroke=\"{FAIL}\" stroke-width=\"2\"/></svg>failed (outcome in red)</span></div>"
    );
}

/// Diagonal stripes in the connect colour: a `connect()` that waited for retransmitted SYNs.
const SYN_PATTERN: &str = "<pattern id=\"syn-retry\" patternUnits=\"userSpaceOnUse\" width=\"6\" height=\"6\" patternTransform=\"rotate(45)\"><rect width=\"6\" height=\"6\" fill=\"#d0ebff\"/><rect width=\"3\" height=\"6\" fill=\"#1864ab\"/></pattern>";

// ---- the chart -----------------------------------------------------------------------------

const WIDTH: f64 = 1320.0;
/// Room for the lane and request labels.
const LEFT: f64 = 200.0;
/// Room for the outcome after the last bars.
const RIGHT: f64 = 120.0;
const LANE_H: f64 = 22.0;
const LANE_GAP: f64 = 6.0;
const REQ_H: f64 = 12.0;
const REQ_GAP: f64 = 4.0;

/// Virtual time → x.
struct Scale {
    end_us: u64,
}

impl Scale {
    fn x(&self, us: u64) -> f64 {
        LEFT + (WIDTH - LEFT - RIGHT) * (us.min(self.end_us) as f64 / self.end_us.max(1) as f64)
    }
}

/// A span of a worker's lane in one status.
struct Span {
    from: u64,
    to: u64,
    status: String,
    /// Added to the hover title (how many requests at once, in single-process mode).
    note: String,
}

struct Lane {
    /// The worker's number on its machine, from 1.
    n: usize,
    /// The processes that held the slot, in order.
    pids: Vec<u32>,
    spans: Vec<Span>,
}

/// A row of the workers' part of the chart: a worker's lane, or a machine's master row, where
/// the events of its master (and of processes that are no worker) go.
struct Row {
    host: String,
    label: String,
    lane: Option<Lane>,
}

/// The server machines of a run, `server` first.
fn servers(run: &RunOutput) -> Vec<&str> {
    if run.servers.is_empty() {
        vec![SERVER_HOST]
    } else {
        run.servers.iter().map(String::as_str).collect()
    }
}

fn host_events<'a>(run: &'a RunOutput, host: &'a str) -> impl Iterator<Item = &'a Event> + 'a {
    run.events.iter().filter(move |e| e.host == host)
}

/// Worker number (from 1) → its pids, and pid → worker number, as the server's log announced
/// them (`spawned uWSGI worker 2 (pid: 1003, ...)`, `Respawned uWSGI worker 1 (new pid: 1004)`).
fn worker_pids(run: &RunOutput, host: &str) -> BTreeMap<u32, usize> {
    let mut by_pid = BTreeMap::new();
    for e in host_events(run, host).filter(|e| e.category == Category::Log) {
        if let Some(started) = WorkerStarted::parse(&e.text) {
            by_pid.insert(started.pid, started.slot);
        }
    }
    by_pid
}

/// One lane per slot of the master's worker list, from its `Board` events.
fn board_lanes(run: &RunOutput, host: &str, end_us: u64) -> Option<Vec<Lane>> {
    let boards: Vec<(u64, &[WorkerStatus])> = host_events(run, host)
        .filter_map(|e| Some((e.at_us, e.board.as_deref()?)))
        .collect();
    let slots = boards.iter().map(|(_, b)| b.len()).max()?;
    if slots == 0 {
        return None;
    }
    let mut lanes: Vec<Lane> = (1..=slots)
        .map(|n| Lane {
            n,
            pids: Vec::new(),
            spans: Vec::new(),
        })
        .collect();
    for (pid, n) in worker_pids(run, host) {
        if let Some(lane) = lanes.get_mut(n - 1) {
            lane.pids.push(pid);
        }
    }
    // Each slot's status holds from one list to the next.
    let mut current: Vec<Option<(u64, String)>> = vec![None; slots];
    for (at, board) in &boards {
        for (slot, state) in current.iter_mut().enumerate() {
            let status = board.get(slot).map(|s| s.name().to_string());
            let changed = state.as_ref().map(|(_, s)| Some(s)) != Some(status.as_ref());
            if !changed {
                continue;
            }
            if let Some((from, old)) = state.take() {
                lanes[slot].spans.push(Span {
                    from,
                    to: *at,
                    status: old,
                    note: String::new(),
                });
            }
            *state = status.map(|s| (*at, s));
        }
    }
    // A master killed outright (SIGKILL, the OOM killer) writes no last list: its workers
    // went with it, so their lanes stop where it died rather than run on in their last status.
    let master = host_events(run, host)
        .find(|e| e.category == Category::Proc && e.kind == EventKind::Exec)
        .and_then(|e| e.pid);
    let master_gone = host_events(run, host)
        .find(|e| {
            e.category == Category::Proc
                && matches!(e.kind, EventKind::Killed | EventKind::Exit)
                && e.pid.is_some()
                && e.pid == master
        })
        .map(|e| e.at_us);
    for (slot, state) in current.into_iter().enumerate() {
        if let Some((from, status)) = state {
            let to = end_us.max(from);
            match master_gone {
                Some(gone) if gone < to && status != "dead" => {
                    let gone = gone.max(from);
                    lanes[slot].spans.push(Span {
                        from,
                        to: gone,
                        status,
                        note: String::new(),
                    });
                    lanes[slot].spans.push(Span {
                        from: gone,
                        to,
                        status: "dead".into(),
                        note: " (its master died: the list ends there)".into(),
                    });
                }
                _ => lanes[slot].spans.push(Span {
                    from,
                    to,
                    status,
                    note: String::new(),
                }),
            }
        }
    }
    Some(lanes)
}

/// Without a master there is no worker list: one lane per process that ran the app, busy
/// while it was inside the app (several requests at once with threads).
fn process_lanes(run: &RunOutput, host: &str, end_us: u64) -> Vec<Lane> {
    let mut pids: Vec<u32> = Vec::new();
    for e in host_events(run, host) {
        if e.category == Category::App && e.kind == EventKind::AppStart {
            if let Some(pid) = e.pid {
                if !pids.contains(&pid) {
                    pids.push(pid);
                }
            }
        }
    }
    let mut lanes = Vec::new();
    for (i, pid) in pids.iter().enumerate() {
        let mine: Vec<&Event> = host_events(run, host)
            .filter(|e| e.pid == Some(*pid))
            .collect();
        let born = mine
            .iter()
            .find(|e| {
                e.category == Category::Proc && matches!(e.kind, EventKind::Exec | EventKind::Fork)
            })
            .or(mine.first())
            .map_or(0, |e| e.at_us);
        let died = mine
            .iter()
            .find(|e| {
                e.category == Category::Proc
                    && matches!(e.kind, EventKind::Killed | EventKind::Exit)
            })
            .map(|e| e.at_us);
        let mut spans = Vec::new();
        let (mut busy, mut peak, mut since) = (0u32, 0u32, born);
        for e in mine.iter().filter(|e| e.category == Category::App) {
            let delta: i32 = match e.kind {
                EventKind::AppStart => 1,
                // A hung app never ends: it stays busy.
                EventKind::AppEnd | EventKind::Raise | EventKind::Crash => -1,
                _ => 0,
            };
            if delta == 0 || (delta < 0 && busy == 0) {
                continue;
            }
            let before = busy;
            busy = if delta > 0 { busy + 1 } else { busy - 1 };
            peak = peak.max(busy);
            if before == 0 || busy == 0 {
                spans.push(Span {
                    from: since,
                    to: e.at_us,
                    status: if before == 0 { "idle" } else { "busy" }.into(),
                    note: busy_note(before, peak),
                });
                since = e.at_us;
                peak = busy;
            }
        }
        let last = died.unwrap_or(end_us).max(since);
        spans.push(Span {
            from: since,
            to: last,
            status: if busy > 0 { "busy" } else { "idle" }.into(),
            note: busy_note(busy, peak),
        });
        if let Some(died) = died {
            spans.push(Span {
                from: died.max(since),
                to: end_us.max(died),
                status: "dead".into(),
                note: String::new(),
            });
        }
        lanes.push(Lane {
            n: i + 1,
            pids: vec![*pid],
            spans,
        });
    }
    lanes
}

fn busy_note(busy: u32, peak: u32) -> String {
    if busy > 0 && peak > 1 {
        format!(" (up to {peak} requests at once)")
    } else {
        String::new()
    }
}

/// The absolute spans of a request's phases: connect from the client's start; then, on the
/// server, from the connection's establishment (or the request's start on a kept-alive
/// connection) queue, read+parse, app and write, each as long as [`request_phases`] measured.
fn request_spans(
    r: &RequestRecord,
    p: &Phases,
    established: Option<u64>,
    end_us: u64,
) -> Vec<(Phase, u64, u64)> {
    let end = r.done_us.unwrap_or(end_us).max(r.start_us);
    let mut spans = Vec::new();
    let mut t = r.start_us;
    let mut push = |phase: Phase, from: u64, to: u64, t: &mut u64| {
        let from = from.max(*t).min(end);
        let to = to.max(from).min(end);
        if from > *t {
            spans.push((Phase::Other, *t, from));
        }
        spans.push((phase, from, to));
        *t = to;
    };
    match p.connect {
        Some(c) => push(Phase::Connect, r.start_us, r.start_us + c, &mut t),
        // connect() never returned: the whole request was an attempt to connect.
        None if r.connected_us.is_none() => push(Phase::Connect, r.start_us, end, &mut t),
        None => {}
    }
    let mut server_t = if r.seq == 1 {
        established.or(r.connected_us).unwrap_or(t)
    } else {
        r.start_us
    };
    if r.seq == 1 && p.acks_dropped > 0 && server_t > t {
        push(Phase::HalfOpen, t, server_t, &mut t);
    }
    if let Some(q) = p.queue {
        push(Phase::Queue, server_t, server_t + q, &mut t);
        server_t += q;
    }
    if let Some(read) = p.read_parse {
        push(Phase::Read, server_t, server_t + read, &mut t);
        server_t += read;
        match p.app {
            Some(app) => {
                push(Phase::App, server_t, server_t + app, &mut t);
                server_t += app;
                if let Some(w) = p.write {
                    push(Phase::Write, server_t, server_t + w, &mut t);
                }
            }
            // Called and never returned (a hang): the app held it to the end.
            None => push(Phase::App, server_t, end, &mut t),
        }
    }
    if t < end {
        spans.push((Phase::Other, t, end));
    }
    // Zero-length phases say nothing on a chart; the title still lists them.
    spans.retain(|(_, from, to)| to > from);
    spans
}

fn is_failure(outcome: Outcome) -> bool {
    !outcome.status().is_some_and(|s| (100..400).contains(&s))
}

/// `1.5 s` or `250 ms`, precise enough for the step between ticks.
fn tick_label(us: u64, step: u64, in_seconds: bool) -> String {
    if in_seconds {
        let decimals = if step >= 1_000_000 {
            0
        } else if step >= 100_000 {
            1
        } else {
            2
        };
        format!("{:.*} s", decimals, us as f64 / 1e6)
    } else {
        let decimals = if step >= 1000 {
            0
        } else if step >= 100 {
            1
        } else {
            3
        };
        format!("{:.*} ms", decimals, us as f64 / 1e3)
    }
}

/// A round step (1, 2 or 5 × 10^k µs) giving about ten ticks.
fn tick_step(end_us: u64) -> u64 {
    let target = (end_us / 10).max(1);
    let mut magnitude = 1u64;
    loop {
        for m in [1, 2, 5] {
            if magnitude * m >= target {
                return magnitude * m;
            }
        }
        magnitude = magnitude.saturating_mul(10);
        if magnitude == u64::MAX {
            return target;
        }
    }
}

/// Every server machine's rows (its master's, if something happens to it, then one per
/// worker), each process event with the row it is drawn on, and whether the lanes came from
/// the masters' lists (`Some(true)`), from the app's events (`Some(false)`) or both (`None`).
fn worker_rows(run: &RunOutput, end_us: u64) -> (Vec<Row>, Vec<(usize, &Event)>, Option<bool>) {
    let hosts = servers(run);
    let several = hosts.len() > 1;
    let (mut rows, mut placed) = (Vec::new(), Vec::new());
    let (mut from_boards, mut from_apps) = (0, 0);
    for host in hosts {
        let (lanes, from_board) = match board_lanes(run, host, end_us) {
            Some(lanes) => (lanes, true),
            None => (process_lanes(run, host, end_us), false),
        };
        if from_board {
            from_boards += 1;
        } else {
            from_apps += 1;
        }
        // Markers go on the lane of their process; the master's (and unknown ones) on a row
        // above the machine's lanes.
        let slot_of: BTreeMap<u32, usize> = if from_board {
            worker_pids(run, host)
                .into_iter()
                .map(|(pid, n)| (pid, n - 1))
                .collect()
        } else {
            lanes
                .iter()
                .enumerate()
                .flat_map(|(i, l)| l.pids.iter().map(move |p| (*p, i)))
                .collect()
        };
        let lane_of = |e: &Event| {
            e.pid
                .and_then(|p| slot_of.get(&p).copied())
                .filter(|i| *i < lanes.len())
        };
        let events: Vec<&Event> = host_events(run, host)
            .filter(|e| e.category == Category::Proc && MARKERS.iter().any(|(k, _)| *k == e.kind))
            .collect();
        let prefix = if several {
            format!("{host} · ")
        } else {
            String::new()
        };
        let master_row = if events.iter().any(|e| lane_of(e).is_none()) {
            let master_pid = host_events(run, host)
                .find(|e| e.category == Category::Proc && e.kind == EventKind::Exec)
                .and_then(|e| e.pid);
            let label = match (from_board, master_pid) {
                (true, Some(pid)) => format!("{prefix}master (pid {pid})"),
                (true, None) => format!("{prefix}master"),
                (false, _) => format!("{prefix}other processes"),
            };
            rows.push(Row {
                host: host.to_string(),
                label,
                lane: None,
            });
            Some(rows.len() - 1)
        } else {
            None
        };
        let first_lane = rows.len();
        for e in events {
            if let Some(row) = lane_of(e).map(|i| first_lane + i).or(master_row) {
                placed.push((row, e));
            }
        }
        for lane in lanes {
            rows.push(Row {
                host: host.to_string(),
                label: format!("{prefix}worker {}", lane.n),
                lane: Some(lane),
            });
        }
    }
    let origin = match (from_boards, from_apps) {
        (_, 0) => Some(true),
        (0, _) => Some(false),
        _ => None,
    };
    (rows, placed, origin)
}

/// Draws the chart; returns the time its axis ends at.
fn render_chart(out: &mut String, run: &RunOutput, phases: &[Phases]) -> u64 {
    let hosts = servers(run);
    let last_event = run
        .events
        .iter()
        .filter(|e| hosts.contains(&e.host.as_str()))
        .map(|e| e.at_us)
        .max()
        .unwrap_or(0);
    let last_done = run
        .requests
        .iter()
        .filter_map(|r| r.done_us)
        .max()
        .unwrap_or(0);
    let end_us = run.end_us.max(last_event).max(last_done).max(1000);
    let scale = Scale { end_us };
    let (rows, markers, origin) = worker_rows(run, end_us);
    let layout = ChartLayout::new(rows.len(), run.requests.len());
    let _ = writeln!(
        out,
        "<svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{:.0}\" viewBox=\"0 0 {WIDTH} {:.0}\" role=\"img\" aria-label=\"workers and requests over virtual time\">\n<defs>{SYN_PATTERN}</defs>",
        layout.height, layout.height
    );
    chart_axis(out, &scale, &layout);
    chart_lanes(out, &rows, origin, &scale, &layout);
    chart_requests(out, run, phases, &scale, &layout);
    chart_markers(out, &markers, &scale, &layout);
    let _ = writeln!(out, "</svg>");
    end_us
}

/// Where the chart's parts sit, top to bottom.
struct ChartLayout {
    axis_top: f64,
    workers_head: f64,
    rows_top: f64,
    requests_head: f64,
    requests_top: f64,
    plot_bottom: f64,
    height: f64,
}

impl ChartLayout {
    fn new(rows: usize, requests: usize) -> ChartLayout {
        let axis_top = 18.0;
        let mut y = axis_top + 8.0;
        let workers_head = y + 12.0;
        y += 20.0;
        let rows_top = y;
        y += (LANE_H + LANE_GAP) * rows.max(1) as f64;
        let requests_head = y + 14.0;
        y += 22.0;
        let requests_top = y;
        y += (REQ_H + REQ_GAP) * requests.max(1) as f64;
        ChartLayout {
            axis_top,
            workers_head,
            rows_top,
            requests_head,
            requests_top,
            plot_bottom: y,
            height: y + 24.0,
        }
    }

    /// The top of the workers' row `i`.
    fn row_top(&self, i: usize) -> f64 {
        self.rows_top + (LANE_H + LANE_GAP) * i as f64
    }
}

/// The time axis, above and below, with a grid line at each tick.
fn chart_axis(out: &mut String, scale: &Scale, layout: &ChartLayout) {
    let (end_us, axis_top, plot_bottom) = (scale.end_us, layout.axis_top, layout.plot_bottom);
    let step = tick_step(end_us);
    let in_seconds = end_us >= 2_000_000;
    let _ = writeln!(out, "<g class=\"axis\">");
    let mut t = 0;
    while t <= end_us {
        let x = scale.x(t);
        let label = tick_label(t, step, in_seconds);
        let _ = writeln!(
            out,
            "<line x1=\"{x:.1}\" y1=\"{axis_top:.1}\" x2=\"{x:.1}\" y2=\"{plot_bottom:.1}\" stroke=\"#e9ecef\"/><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text><text x=\"{x:.1}\" y=\"{:.1}\" text-anchor=\"middle\">{label}</text>",
            axis_top - 4.0,
            plot_bottom + 14.0
        );
        t += step;
    }
    let _ = writeln!(
        out,
        "<text class=\"sub\" x=\"4\" y=\"{:.1}\">virtual time →</text></g>",
        axis_top - 4.0
    );
}

/// The workers' lanes (busy, idle, ... as the master's list shows them), or a master's row.
fn chart_lanes(
    out: &mut String,
    rows: &[Row],
    origin: Option<bool>,
    scale: &Scale,
    layout: &ChartLayout,
) {
    let workers_head = layout.workers_head;
    let row_top = |i: usize| layout.row_top(i);
    let _ = writeln!(
        out,
        "<text class=\"head\" x=\"4\" y=\"{workers_head:.1}\">{}</text>",
        match origin {
            Some(true) => "workers, as the master's list shows them",
            Some(false) => "worker processes (no master: busy while inside the app)",
            None =>
                "workers (from each master's list; without a master, busy while inside the app)",
        }
    );
    if !rows.iter().any(|r| r.lane.is_some()) {
        let _ = writeln!(
            out,
            "<text class=\"sub\" x=\"{LEFT}\" y=\"{:.1}\">no worker ever ran the app</text>",
            row_top(rows.len()) + LANE_H / 2.0 + 4.0
        );
    }
    for (i, row) in rows.iter().enumerate() {
        let top = row_top(i);
        let Some(lane) = &row.lane else {
            let _ = writeln!(
                out,
                "<g class=\"master\" data-host=\"{}\"><text x=\"4\" y=\"{:.1}\">{}</text><line x1=\"{LEFT}\" y1=\"{:.1}\" x2=\"{:.1}\" y2=\"{:.1}\" stroke=\"#adb5bd\" stroke-dasharray=\"2,3\"/></g>",
                esc(&row.host),
                top + LANE_H / 2.0 + 4.0,
                esc(&row.label),
                top + LANE_H / 2.0,
                WIDTH - RIGHT,
                top + LANE_H / 2.0
            );
            continue;
        };
        let pids = lane
            .pids
            .iter()
            .map(u32::to_string)
            .collect::<Vec<_>>()
            .join(" → ");
        let _ = writeln!(
            out,
            "<g class=\"lane\" data-host=\"{}\" data-worker=\"{}\"><text x=\"4\" y=\"{:.1}\">{}</text>",
            esc(&row.host),
            lane.n,
            top + 10.0,
            esc(&row.label)
        );
        if !pids.is_empty() {
            let _ = writeln!(
                out,
                "<text class=\"sub\" x=\"4\" y=\"{:.1}\">pid {pids}</text>",
                top + 21.0
            );
        }
        for span in &lane.spans {
            let x = scale.x(span.from);
            // A request served in no time is still a moment of work: keep it visible.
            let width = (scale.x(span.to) - x).max(if span.status == "busy" { 2.0 } else { 0.0 });
            if width <= 0.0 {
                continue;
            }
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{LANE_H}\" fill=\"{}\"><title>{}: {} from {} to {} ({}){}</title></rect>",
                status_colour(&span.status),
                esc(&row.label),
                esc(&span.status),
                ms(span.from),
                ms(span.to),
                ms(span.to - span.from),
                esc(&span.note)
            );
        }
        let _ = writeln!(out, "</g>");
    }
}

/// One bar per request, split into its phases, with its outcome beside it.
fn chart_requests(
    out: &mut String,
    run: &RunOutput,
    phases: &[Phases],
    scale: &Scale,
    layout: &ChartLayout,
) {
    let (end_us, requests_head, requests_top) =
        (scale.end_us, layout.requests_head, layout.requests_top);
    let _ = writeln!(
        out,
        "<text class=\"head\" x=\"4\" y=\"{requests_head:.1}\">requests, one bar each from connect() to the last byte</text>"
    );
    if run.requests.is_empty() {
        let _ = writeln!(
            out,
            "<text class=\"sub\" x=\"{LEFT}\" y=\"{:.1}\">no requests</text>",
            requests_top + REQ_H
        );
    }
    let established = establishment_times(run);
    for (i, (r, p)) in run.requests.iter().zip(phases).enumerate() {
        let top = requests_top + (REQ_H + REQ_GAP) * i as f64;
        let spans = request_spans(
            r,
            p,
            r.conn.as_deref().and_then(|c| established.get(c).copied()),
            end_us,
        );
        let failed = is_failure(r.outcome);
        let mut label = if r.seq > 1 {
            format!("{} ({}) {} {}", r.client, r.seq, r.method, r.path)
        } else {
            format!("{} {} {}", r.client, r.method, r.path)
        };
        if label.chars().count() > 30 {
            label = label.chars().take(29).collect::<String>() + "…";
        }
        let _ = writeln!(
            out,
            "<g class=\"req\" data-request=\"{}\" data-outcome=\"{}\"><title>{}</title>",
            i + 1,
            r.outcome,
            esc(&request_title(r, p, &spans))
        );
        let _ = writeln!(
            out,
            "<text x=\"4\" y=\"{:.1}\"{}>{}</text>",
            top + REQ_H - 2.0,
            if failed { " class=\"fail\"" } else { "" },
            esc(&label)
        );
        for (phase, from, to) in &spans {
            let x = scale.x(*from);
            let width = (scale.x(*to) - x).max(1.0);
            let fill = if *phase == Phase::Connect && p.syn_retries > 0 {
                "url(#syn-retry)"
            } else {
                phase.colour()
            };
            let _ = writeln!(
                out,
                "<rect x=\"{x:.1}\" y=\"{top:.1}\" width=\"{width:.1}\" height=\"{REQ_H}\" fill=\"{fill}\"/>"
            );
        }
        let bar_from = scale.x(r.start_us);
        let bar_to = scale.x(r.done_us.unwrap_or(end_us)).max(bar_from + 1.0);
        if failed {
            let _ = writeln!(
                out,
                "<rect x=\"{:.1}\" y=\"{:.1}\" width=\"{:.1}\" height=\"{:.1}\" fill=\"none\" stroke=\"{FAIL}\" stroke-width=\"1.5\"/>",
                bar_from - 1.0,
                top - 1.0,
                bar_to - bar_from + 2.0,
                REQ_H + 2.0
            );
        }
        let mut tag = r.outcome.to_string();
        if p.syn_retries > 0 {
            tag = format!(
                "{tag} · {} SYN retr{}",
                p.syn_retries,
                if p.syn_retries == 1 { "y" } else { "ies" }
            );
        }
        let _ = writeln!(
            out,
            "<text x=\"{:.1}\" y=\"{:.1}\"{}>{}</text></g>",
            bar_to + 4.0,
            top + REQ_H - 2.0,
            if failed { " class=\"fail\"" } else { "" },
            esc(&tag)
        );
    }
}

/// Markers last, over the lanes and bars; an operator's signal also gets a line across the
/// chart, so that its effect on the requests below can be seen.
fn chart_markers(
    out: &mut String,
    markers: &[(usize, &Event)],
    scale: &Scale,
    layout: &ChartLayout,
) {
    let (axis_top, plot_bottom) = (layout.axis_top, layout.plot_bottom);
    let row_top = |i: usize| layout.row_top(i);
    let mut taken: BTreeMap<(usize, i64), u32> = BTreeMap::new();
    for (row, event) in markers {
        let x = scale.x(event.at_us);
        let row_y = row_top(*row) + LANE_H / 2.0;
        // Several events at one moment on one row sit side by side (the title has the time).
        let seen = taken.entry((*row, x.round() as i64)).or_insert(0);
        let dx = f64::from(*seen) * 11.0;
        *seen += 1;
        if event.kind == EventKind::Kill {
            let _ = writeln!(
                out,
                "<line x1=\"{x:.1}\" y1=\"{axis_top:.1}\" x2=\"{x:.1}\" y2=\"{plot_bottom:.1}\" stroke=\"#e03131\" stroke-width=\"1\" stroke-dasharray=\"4,3\"/>"
            );
        }
        let _ = writeln!(
            out,
            "<g class=\"marker\" data-kind=\"{}\"><title>{}: {}</title>{}</g>",
            event.kind,
            ms(event.at_us),
            esc(&event.text),
            marker_shape(event.kind, x + dx, row_y)
        );
    }
}

/// Connection → when the server saw it established (the start of its queue wait).
fn establishment_times(run: &RunOutput) -> BTreeMap<&str, u64> {
    let mut times = BTreeMap::new();
    for e in &run.events {
        if let (Some(conn), Category::Net, EventKind::Established) = (&e.conn, e.category, e.kind) {
            times.entry(conn.as_str()).or_insert(e.at_us);
        }
    }
    times
}

/// The hover text of a request's bar: what it was, how it ended, and each phase's exact span.
fn request_title(r: &RequestRecord, p: &Phases, spans: &[(Phase, u64, u64)]) -> String {
    let mut text = format!(
        "{}{} {} {} — {}\nstarted at {}",
        r.client,
        if r.seq > 1 {
            format!(" (request {} on the connection)", r.seq)
        } else {
            String::new()
        },
        r.method,
        r.path,
        r.detail,
        ms(r.start_us)
    );
    match r.done_us {
        Some(done) => {
            let _ = write!(
                text,
                ", ended at {} (total {})",
                ms(done),
                ms(done.saturating_sub(r.start_us))
            );
        }
        None => text.push_str(", still going at the end of the run"),
    }
    if let Some(pid) = p.worker_pid {
        let _ = write!(text, "; served by pid {pid}");
    }
    for (phase, from, to) in spans {
        let _ = write!(
            text,
            "\n{}: {} ({} → {})",
            phase.name(),
            ms(to - from),
            ms(*from),
            ms(*to)
        );
    }
    if p.syn_retries > 0 {
        let _ = write!(
            text,
            "\nconnect() waited for {} SYN retransmission{} (the accept queue was full)",
            p.syn_retries,
            if p.syn_retries == 1 { "" } else { "s" }
        );
    }
    if p.acks_dropped > 0 {
        let _ = write!(
            text,
            "\nthe server dropped {} ACK{} of this connection (its queue was full)",
            p.acks_dropped,
            if p.acks_dropped == 1 { "" } else { "s" }
        );
    }
    if let Some(kind) = p.app_end_kind.filter(|k| *k != EventKind::AppEnd) {
        let _ = write!(text, "\nthe app ended with: {kind}");
    }
    text
}

fn render_table(out: &mut String, run: &RunOutput, phases: &[Phases]) {
    if run.requests.is_empty() {
        let _ = writeln!(out, "<p>(no requests)</p>");
        return;
    }
    let cell =
        |v: Option<u64>| v.map_or("-".to_string(), |us| format!("{:.1}", us as f64 / 1000.0));
    let _ = writeln!(
        out,
        "<table class=\"requests\">\n<tr><th>#</th><th>client</th><th>request</th><th>worker pid</th><th>connect</th><th>queue</th><th>read+parse</th><th>app</th><th>write</th><th>total</th><th>outcome</th></tr>"
    );
    for (i, (r, p)) in run.requests.iter().zip(phases).enumerate() {
        let mut connect = cell(p.connect);
        if p.syn_retries > 0 {
            connect = format!("{connect}*");
        }
        let client = if r.seq > 1 {
            format!("{} ({})", r.client, r.seq)
        } else {
            r.client.clone()
        };
        let _ = writeln!(
            out,
            "<tr{}><td class=\"n\">{}</td><td>{}</td><td>{} {}</td><td class=\"n\">{}</td><td class=\"n\">{connect}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"n\">{}</td><td class=\"outcome\">{}</td></tr>",
            if is_failure(r.outcome) { " class=\"failed\"" } else { "" },
            i + 1,
            esc(&client),
            esc(&r.method),
            esc(&r.path),
            p.worker_pid.map_or("-".into(), |pid| pid.to_string()),
            cell(p.queue),
            cell(p.read_parse),
            cell(p.app),
            cell(p.write),
            cell(p.total),
            esc(&r.detail)
        );
    }
    let _ = writeln!(out, "</table>");
    if phases.iter().any(|p| p.syn_retries > 0) {
        let _ = writeln!(
            out,
            "<p class=\"machine\">* connect() waited for SYN retransmissions</p>"
        );
    }
    let _ = writeln!(
        out,
        "<p class=\"machine\">outcomes: {}</p>",
        esc(&outcome_summary(&run.requests))
    );
}

/// The server's log as printed, each line after its virtual time; with several machines
/// logging (servers, a balancer), each line also says whose it is.
fn render_log(run: &RunOutput) -> String {
    let lines: Vec<&Event> = run
        .events
        .iter()
        .filter(|e| e.category == Category::Log)
        .collect();
    let several = lines.iter().any(|e| e.host != lines[0].host);
    let width = lines.iter().map(|e| e.host.len()).max().unwrap_or(0);
    let mut out = String::new();
    for e in lines {
        let _ = write!(out, "<span class=\"t\">{:>12}</span>  ", ms(e.at_us));
        if several {
            let _ = write!(out, "<span class=\"h\">{:<width$}</span> ", esc(&e.host));
        }
        let _ = writeln!(out, "{}", esc(&e.text));
    }
    if out.is_empty() {
        out.push_str("(nothing)");
    }
    out
}

/// What the cursor's script displays for one run: the states of `states.rs`, the events, and
/// each request's bar (its phases and its worker's lane), as JSON in an inert script element.
#[derive(Serialize)]
struct PageStates<'a> {
    run: usize,
    variant: Option<&'a str>,
    end_us: u64,
    /// The chart's x for time 0 and for `end_us`.
    x0: f64,
    x1: f64,
    #[serde(flatten)]
    states: &'a States,
    /// `[at_us, kind, host, text]`, in trace order.
    events: Vec<(u64, &'static str, &'a str, &'a str)>,
    requests: Vec<PageRequest>,
}

#[derive(Serialize)]
struct PageRequest {
    label: String,
    outcome: String,
    /// The worker that ran its app: `[host, slot]`.
    lane: Option<(String, usize)>,
    /// `[phase, from_us, to_us]`.
    spans: Vec<(&'static str, u64, u64)>,
}

fn render_states(out: &mut String, run: &RunOutput, phases: &[Phases], end_us: u64, n: usize) {
    let states = derive_states(run);
    let established = establishment_times(run);
    let requests = run
        .requests
        .iter()
        .zip(phases)
        .map(|(r, p)| {
            let est = r.conn.as_deref().and_then(|c| established.get(c).copied());
            let lane = p.worker_pid.and_then(|pid| {
                states
                    .workers
                    .iter()
                    .find(|w| w.pid.iter().any(|(_, p)| *p == pid))
                    .map(|w| (w.host.clone(), w.slot))
            });
            PageRequest {
                label: format!("{} {} {}", r.client, r.method, r.path),
                outcome: r.detail.clone(),
                lane,
                spans: request_spans(r, p, est, end_us)
                    .into_iter()
                    .map(|(phase, from, to)| (phase.name(), from, to))
                    .collect(),
            }
        })
        .collect();
    let page = PageStates {
        run: n,
        variant: run.variant.as_deref(),
        end_us,
        x0: LEFT,
        x1: WIDTH - RIGHT,
        states: &states,
        events: run
            .events
            .iter()
            .map(|e| (e.at_us, e.kind.name(), e.host.as_str(), e.text.as_str()))
            .collect(),
        requests,
    };
    let json = serde_json::to_string(&page).unwrap_or_else(|_| "null".into());
    // `<`, `>` and `&` only occur inside JSON strings, where `\u003c` and the like mean the
    // same: no `</script>`, and no raw markup anywhere in the page's bytes.
    let _ = writeln!(
        out,
        "<script type=\"application/json\" class=\"states\" data-run=\"{n}\">{}</script>",
        json.replace('<', "\\u003c")
            .replace('>', "\\u003e")
            .replace('&', "\\u0026")
    );
}

/// The cursor: slider, clicks on the chart, ← → (previous/next event), Page Up/Down
/// (previous/next request boundary), play/pause in virtual time; the state at the cursor beside
/// each chart; a clicked request's phases and events. It reads the JSON above and computes
/// nothing but binary searches.
const CURSOR_JS: &str = include_str!("cursor.js");

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_is_escaped_for_content_and_attributes() {
        assert_eq!(
            esc("<a href=\"x\">Tom's & co</a>\u{1}"),
            "&lt;a href=&quot;x&quot;&gt;Tom&#39;s &amp; co&lt;/a&gt;\\x01"
        );
    }

    #[test]
    fn ticks_are_round_and_labelled_in_the_right_unit() {
        assert_eq!(tick_step(3_108_000), 500_000);
        assert_eq!(tick_step(454_000), 50_000);
        assert_eq!(tick_step(1), 1);
        assert_eq!(tick_label(1_500_000, 500_000, true), "1.5 s");
        assert_eq!(tick_label(50_000, 50_000, false), "50 ms");
    }
}
