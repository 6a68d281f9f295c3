//! Turning a replay into what a person reads: the narrated timeline with the master's worker
//! list beside each event, the table of requests split into phases, the server's log as uWSGI
//! would print it, and the explanation. Each request's phases come from joining what its
//! client saw with the trace's events about its connection ([`request_phases`]).

use std::collections::BTreeMap;
use std::fmt::Write;

use super::explain::explain;
use super::phases::request_phases;
use super::record::{latency_stats, ms, outcome_summary, RunOutput};
use super::{Scenario, SERVER_HOST};
use crate::trace::{Category, Event, EventKind};

/// The whole text of a replay: header, then each run (one per variant), then the comparison.
pub fn render_text(name: &str, scenario: &Scenario, runs: &[RunOutput]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "=== {name}: {} ===", scenario.title);
    out.push('\n');
    for line in wrap(&scenario.teaches, 96) {
        let _ = writeln!(out, "  {line}");
    }
    out.push('\n');
    let _ = writeln!(
        out,
        "machine: {} cores, working directory {}; seed {}",
        scenario.machine.cores,
        scenario.machine.cwd.display(),
        runs.first().map_or(scenario.seed, |r| r.seed)
    );
    for run in runs {
        out.push('\n');
        render_run(&mut out, scenario, run);
    }
    if runs.len() > 1 {
        out.push('\n');
        render_comparison(&mut out, runs);
    }
    out
}

/// Timeline lines beyond this are summarised (the JSON trace has them all).
const TIMELINE_LIMIT: usize = 400;

fn render_run(out: &mut String, scenario: &Scenario, run: &RunOutput) {
    if let Some(variant) = &run.variant {
        let _ = writeln!(out, "##### variant: {variant}");
        out.push('\n');
    }
    let _ = writeln!(out, "$ {}", run.command);
    out.push('\n');
    let _ = writeln!(
        out,
        "--- timeline (virtual time; [worker list] as the master sees it) ---"
    );
    render_timeline(out, run);
    out.push('\n');
    let _ = writeln!(out, "--- requests (ms) ---");
    render_requests(out, run);
    out.push('\n');
    let _ = writeln!(out, "--- server log ---");
    let log: Vec<&Event> = run
        .events
        .iter()
        .filter(|e| e.category == Category::Log)
        .collect();
    if log.is_empty() {
        let _ = writeln!(out, "(nothing)");
    }
    // With several machines logging, each line says whose it is.
    let several = log.iter().any(|e| e.host != log[0].host);
    let width = log.iter().map(|e| e.host.len()).max().unwrap_or(0);
    for event in log {
        if several {
            let _ = writeln!(out, "{:<width$}| {}", event.host, event.text);
        } else {
            let _ = writeln!(out, "{}", event.text);
        }
    }
    out.push('\n');
    let _ = writeln!(out, "--- what happened ---");
    for paragraph in explain(scenario, run) {
        let mut first = true;
        for line in wrap(&paragraph, 94) {
            let _ = writeln!(out, "{} {line}", if first { "*" } else { " " });
            first = false;
        }
    }
}

/// The worker list after each event, where it changes: the master's own (its Board events),
/// or, for a server without a master, the one serving process's — busy while a request is in
/// the app (it is the only process, so the app's calls say it all).
fn board_changes(run: &RunOutput) -> Vec<Option<(String, String)>> {
    let mut changes = vec![None; run.events.len()];
    let mastered: Vec<&str> = run
        .events
        .iter()
        .filter(|e| e.category == Category::Board)
        .map(|e| e.host.as_str())
        .collect();
    let mut in_app: BTreeMap<&str, i64> = BTreeMap::new();
    // The process the command started, per host: when it is gone, so is the server.
    let mut started: BTreeMap<&str, u32> = BTreeMap::new();
    let mut listening: BTreeMap<&str, bool> = BTreeMap::new();
    for (i, e) in run.events.iter().enumerate() {
        if e.category == Category::Board {
            changes[i] = Some((e.host.clone(), e.text.clone()));
            continue;
        }
        let host = e.host.as_str();
        if !run.servers.contains(&e.host) || mastered.contains(&host) {
            continue;
        }
        match (e.category, e.kind) {
            (Category::Proc, EventKind::Exec) => {
                if let Some(pid) = e.pid {
                    started.entry(host).or_insert(pid);
                }
                continue;
            }
            // Another program's socket, bound before the command was typed, is not the server's.
            (Category::Net, EventKind::Listen) if started.contains_key(host) => {
                listening.insert(host, true);
            }
            (Category::App, EventKind::AppStart) => *in_app.entry(host).or_insert(0) += 1,
            (Category::App, EventKind::AppEnd | EventKind::Raise | EventKind::Crash) => {
                let n = in_app.entry(host).or_insert(0);
                *n = (*n - 1).max(0);
            }
            (Category::Proc, EventKind::Killed | EventKind::Exit) => {
                in_app.insert(host, 0);
                if e.pid.is_some() && e.pid == started.get(host).copied() {
                    listening.insert(host, false);
                }
            }
            _ => continue,
        }
        let text = match (listening.get(host), in_app.get(host).copied().unwrap_or(0)) {
            (Some(true), 0) => "[idle]".to_string(),
            (Some(true), 1) => "[busy]".to_string(),
            (Some(true), n) => format!("[busy ×{n}]"),
            _ => "-".to_string(),
        };
        changes[i] = Some((e.host.clone(), text));
    }
    changes
}

fn render_timeline(out: &mut String, run: &RunOutput) {
    let shown: Vec<&Event> = run
        .events
        .iter()
        .filter(|e| e.category != Category::Log && e.category != Category::Board)
        .collect();
    let changes = board_changes(run);
    let width = changes
        .iter()
        .flatten()
        .map(|(_, text)| text.chars().count())
        .max()
        .unwrap_or(1);
    // Each server's worker list as it stands at this point of the trace.
    let mut boards: BTreeMap<&str, &str> = run.servers.iter().map(|s| (s.as_str(), "-")).collect();
    let several = run.servers.len() > 1;
    let width = if several {
        run.servers
            .iter()
            .map(|server| {
                let widest = changes
                    .iter()
                    .flatten()
                    .filter(|(host, _)| host == server)
                    .map(|(_, text)| text.chars().count())
                    .max()
                    .unwrap_or(1);
                server.len() + 1 + widest
            })
            .sum::<usize>()
            + run.servers.len()
            - 1
    } else {
        width
    };
    let mut board = "-".to_string();
    let mut printed = 0;
    for (event, change) in run.events.iter().zip(&changes) {
        if let Some((host, text)) = change {
            if let Some(slot) = boards.get_mut(host.as_str()) {
                *slot = text.as_str();
            }
            board = if several {
                boards
                    .iter()
                    .map(|(host, b)| format!("{host}:{b}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                boards.get(SERVER_HOST).copied().unwrap_or("-").to_string()
            };
        }
        if event.category == Category::Board {
            continue;
        }
        if event.category == Category::Log {
            continue;
        }
        if printed == TIMELINE_LIMIT {
            let _ = writeln!(
                out,
                "... {} more events (`--format json` lists them all)",
                shown.len() - TIMELINE_LIMIT
            );
            break;
        }
        printed += 1;
        let who = match event.pid {
            Some(pid) => format!("{} {pid}", event.host),
            None => event.host.clone(),
        };
        let _ = writeln!(
            out,
            "{:>12}  {board:<width$}  {who:<12} {}",
            ms(event.at_us),
            event.text
        );
    }
}

fn render_requests(out: &mut String, run: &RunOutput) {
    if run.requests.is_empty() {
        let _ = writeln!(out, "(no requests)");
        return;
    }
    let phases = request_phases(run);
    let cell =
        |v: Option<u64>| v.map_or("-".to_string(), |us| format!("{:.1}", us as f64 / 1000.0));
    let label_width = run
        .requests
        .iter()
        .map(|r| r.client.len())
        .max()
        .unwrap_or(6)
        .max(6);
    let what_width = run
        .requests
        .iter()
        .map(|r| r.method.len() + 1 + r.path.len())
        .max()
        .unwrap_or(7)
        .clamp(7, 24);
    let _ = writeln!(
        out,
        "{:<label_width$}  {:<what_width$}  {:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  outcome",
        "client", "request", "connect", "queue", "read", "app", "write", "total"
    );
    for (r, p) in run.requests.iter().zip(&phases) {
        let mut what = format!("{} {}", r.method, r.path);
        if what.len() > what_width {
            what.truncate(what_width);
        }
        let mut connect = cell(p.connect);
        if p.syn_retries > 0 {
            connect = format!("{connect}*");
        }
        let _ =
            writeln!(
            out,
            "{:<label_width$}  {what:<what_width$}  {connect:>9} {:>9} {:>9} {:>9} {:>9} {:>9}  {}",
            if r.seq > 1 { format!("{} ({})", r.client, r.seq) } else { r.client.clone() },
            cell(p.queue),
            cell(p.read_parse),
            cell(p.app),
            cell(p.write),
            cell(p.total),
            r.detail
        );
    }
    if phases.iter().any(|p| p.syn_retries > 0) {
        let _ = writeln!(out, "(* connect() waited for SYN retransmissions)");
    }
    let _ = writeln!(out, "outcomes: {}", outcome_summary(&run.requests));
}

/// Throughput and latency of each variant, side by side.
fn render_comparison(out: &mut String, runs: &[RunOutput]) {
    let _ = writeln!(out, "=== the variants compared ===");
    let width = runs
        .iter()
        .map(|r| r.variant.as_deref().unwrap_or("").len())
        .max()
        .unwrap_or(7)
        .max(7);
    let _ = writeln!(
        out,
        "{:<width$}  {:>9}  {:>11}  {:>11}  {:>11}  outcomes",
        "variant", "requests", "mean (ms)", "max (ms)", "span (ms)"
    );
    for run in runs {
        let stats = latency_stats(&run.requests);
        let _ = writeln!(
            out,
            "{:<width$}  {:>9}  {:>11}  {:>11}  {:>11}  {}",
            run.variant.as_deref().unwrap_or(""),
            run.requests.len(),
            stats.map_or("-".into(), |s| format!("{:.1}", s.mean_us as f64 / 1000.0)),
            stats.map_or("-".into(), |s| format!("{:.1}", s.max_us as f64 / 1000.0)),
            stats.map_or("-".into(), |s| format!("{:.1}", s.span_us as f64 / 1000.0)),
            outcome_summary(&run.requests)
        );
    }
    let _ = writeln!(
        out,
        "(mean and max: each request's total time; span: first request's start to last response)"
    );
}

/// Greedy word wrap.
pub fn wrap(text: &str, width: usize) -> Vec<String> {
    let mut lines = Vec::new();
    for paragraph in text.split("\n\n") {
        let mut line = String::new();
        for word in paragraph.split_whitespace() {
            if !line.is_empty() && line.len() + 1 + word.len() > width {
                lines.push(std::mem::take(&mut line));
            }
            if !line.is_empty() {
                line.push(' ');
            }
            line.push_str(word);
        }
        if !line.is_empty() {
            lines.push(line);
        }
        lines.push(String::new());
    }
    while lines.last().is_some_and(String::is_empty) {
        lines.pop();
    }
    lines
}

/// The raw trace and the client records, as JSON.
pub fn render_json(name: &str, scenario: &Scenario, runs: &[RunOutput]) -> String {
    #[derive(serde::Serialize)]
    struct Doc<'a> {
        scenario: &'a str,
        title: &'a str,
        runs: &'a [RunOutput],
    }
    serde_json::to_string_pretty(&Doc {
        scenario: name,
        title: &scenario.title,
        runs,
    })
    .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"))
}
