//! The explanation of a replay, derived from its trace alone: how the requests ended, the first
//! cause of each kind of failure, and where the time went (the bottleneck). Also the check of
//! the scenario's expectations.

use std::collections::BTreeMap;

use super::phases::{request_phases, Phases};
use super::record::{ms, outcome_summary, server_log, RequestRecord, RunOutput};
use super::{Outcome, Scenario, SERVER_HOST};
use crate::trace::{Category, Event, EventKind};
use server::log::lines::{
    AppReady, HarakiriOnWorker, HowStarted, ListenQueueFull, NoAppLoaded, NoPythonApp,
    OperationalMode, SocketBound, WorkerStarted,
};

/// The one sentence that best says what a run teaches: the first failure's cause, else what
/// the kernel did, else where the time went.
pub fn key_point(scenario: &Scenario, run: &RunOutput) -> Option<String> {
    let phases = request_phases(run);
    let log = server_log(&run.events);
    failures(run, &phases, &log)
        .into_iter()
        .chain(network(run))
        .chain(bottleneck(scenario, run, &phases))
        .next()
        .or_else(|| Some(startup(run, &log)).filter(|_| run.requests.is_empty()))
}

/// Paragraphs, most important first.
pub fn explain(scenario: &Scenario, run: &RunOutput) -> Vec<String> {
    let mut out = Vec::new();
    let log = server_log(&run.events);
    out.push(startup(run, &log));
    if !run.requests.is_empty() {
        out.push(format!(
            "{} request{}: {}.",
            run.requests.len(),
            if run.requests.len() == 1 { "" } else { "s" },
            outcome_summary(&run.requests)
        ));
    }
    let phases = request_phases(run);
    out.extend(failures(run, &phases, &log));
    out.extend(network(run));
    if let Some(b) = bottleneck(scenario, run, &phases) {
        out.push(b);
    }
    out.extend(process_events(run));
    // Every worker that retries the import repeats the hints; each is worth saying once.
    let mut hints: Vec<&str> = Vec::new();
    let traced_hints = run
        .events
        .iter()
        .filter(|e| e.category != Category::Log)
        .map(|e| e.text.as_str());
    for line in log
        .iter()
        .copied()
        .chain(traced_hints)
        .filter(|l| l.starts_with("hint: "))
    {
        if !hints.contains(&line) {
            hints.push(line);
            out.push(format!("wsgilab's {line}"));
        }
    }
    out
}

fn startup(run: &RunOutput, log: &[&str]) -> String {
    let mode = log
        .iter()
        .find_map(|l| OperationalMode::parse(l))
        .map(OperationalMode::name);
    let bound = log
        .iter()
        .find_map(|l| SocketBound::parse(l))
        .map(|b| b.to_string());
    let mut text = match (&mode, &bound) {
        (Some(mode), Some(bound)) => format!("The server started in {mode} mode ({bound})."),
        (None, Some(bound)) => format!("The server started ({bound})."),
        _ => "The server never got as far as listening.".to_string(),
    };
    let app = log.iter().any(|l| AppReady::parse(l).is_some());
    let no_app = log.iter().any(|l| NoAppLoaded::parse(l).is_some());
    if app {
        text.push_str(" The app was imported.");
    } else if no_app {
        let cause = log
            .iter()
            .find(|l| l.contains("Error: ") && !l.starts_with(' '))
            .map_or(String::new(), |l| format!(": {l}"));
        text.push_str(&format!(" The app could not be imported{cause}."));
    }
    match run.exit_status {
        Some(status) => {
            let last = log
                .iter()
                .rev()
                .find(|l| !l.starts_with("hint: ") && !l.is_empty())
                .map_or(String::new(), |l| format!(" Its last words: \"{l}\""));
            text.push_str(&format!(" It exited with status {status}.{last}"));
        }
        None => text.push_str(" It was still running at the end of the run."),
    }
    text
}

/// The first cause of each kind of failed request.
fn failures(run: &RunOutput, phases: &[Phases], log: &[&str]) -> Vec<String> {
    let mut seen: BTreeMap<Outcome, String> = BTreeMap::new();
    for (r, p) in run.requests.iter().zip(phases) {
        let ok = r.outcome.is_success();
        if ok || seen.contains_key(&r.outcome) {
            continue;
        }
        let cause = cause_of(run, r, p, log);
        seen.insert(
            r.outcome,
            format!("{} ({}) first: {cause}", r.client, r.outcome),
        );
    }
    seen.into_values().collect()
}

fn cause_of(run: &RunOutput, r: &RequestRecord, p: &Phases, log: &[&str]) -> String {
    let after = |e: &Event| e.at_us >= r.start_us && r.done_us.is_none_or(|d| e.at_us <= d);
    // What happened to the worker serving it.
    if let Some(pid) = p.worker_pid {
        if let Some(h) = log_after(run, r.start_us, HarakiriOnWorker::parse) {
            if h.pid == pid {
                return format!(
                    "its worker (pid {pid}) was still in the app when --harakiri ran out, and the master killed it: \"{h}\"; a harakiri'd request gets no response"
                );
            }
        }
        if let Some(kill) = run.events.iter().find(|e| {
            after(e)
                && e.category == Category::Proc
                && e.kind == EventKind::Killed
                && e.pid == Some(pid)
        }) {
            return format!(
                "{} while it served this request; the kernel closed the connection, so the client read EOF with nothing",
                kill.text
            );
        }
        if p.app_end_kind == Some(EventKind::Raise) {
            return "the app raised an exception (traceback in the log); wsgilab answers 500 with a body where uWSGI would close the connection without a response".into();
        }
    }
    if r.outcome == Outcome::Status(500) && log.iter().any(|l| NoPythonApp::parse(l).is_some()) {
        let error = log
            .iter()
            .find(|l| l.contains("Error: ") && !l.starts_with(' '))
            .map_or(String::new(), |l| format!(" ({l})"));
        return format!(
            "no app was loaded at start-up{error}, so the worker answers every request with 500"
        );
    }
    if r.outcome == Outcome::Status(431) || r.outcome == Outcome::Status(414) {
        return format!(
            "the request head was bigger than --buffer-size; wsgilab answers {} where uWSGI resets the connection (\"invalid HTTP request size\")",
            r.outcome
        );
    }
    if r.outcome == Outcome::Status(408) {
        return "the client was too slow to send its request: dropped after --socket-timeout/--http-timeout, its worker freed".into();
    }
    match r.outcome {
        Outcome::Reset => {
            // The kernel's own account of the RST that hit this connection.
            let rst = run.events.iter().find(|e| {
                e.category == Category::Net
                    && e.kind == EventKind::Reset
                    && e.conn.is_some()
                    && e.conn == r.conn
                    && e.host != r.host
            });
            match rst {
                Some(e) if e.text.contains("still in the accept queue") => format!(
                    "{} — the listening socket was closed (the server stopped) while this connection waited in its accept queue, so the kernel reset it",
                    e.text
                ),
                Some(e) => format!("{}: {}", r.detail, e.text),
                None => r.detail.clone(),
            }
        }
        Outcome::Refused => {
            let listen = run
                .events
                .iter()
                .rfind(|e| e.kind == EventKind::Listen && e.at_us <= r.start_us);
            if let Some(l) =
                listen.filter(|l| l.text.contains("127.0.0.1") && r.host != SERVER_HOST)
            {
                return format!(
                    "the server listens on 127.0.0.1 only ({}), which another host cannot reach: its SYN got a RST. Bind to :8000 or 0.0.0.0:8000",
                    l.text
                );
            }
            match run.exit_status {
                Some(status) => format!("nothing listened on the server's port: the server had exited (status {status}), so its SYN got a RST"),
                None => "nothing listened on that port: its SYN got a RST".into(),
            }
        }
        Outcome::Timeout => format!(
            "connect() gave up after {} SYN retransmissions went unanswered",
            p.syn_retries
        ),
        Outcome::ClientClosed => r.detail.clone(),
        Outcome::GaveUp => format!("{}; the server was still busy with it", r.detail),
        Outcome::Unfinished => "it had no answer when the run ended".into(),
        _ => r.detail.clone(),
    }
}

/// The first log line from `from_us` on that `parse` reads.
fn log_after<T>(run: &RunOutput, from_us: u64, parse: impl Fn(&str) -> Option<T>) -> Option<T> {
    run.events
        .iter()
        .filter(|e| e.category == Category::Log && e.at_us >= from_us)
        .find_map(|e| parse(&e.text))
}

/// What the kernel did: full queues, dropped SYNs and ACKs.
fn network(run: &RunOutput) -> Vec<String> {
    fn of_kind(run: &RunOutput, kind: EventKind) -> impl Iterator<Item = &Event> {
        run.events.iter().filter(move |e| e.kind == kind)
    }
    let connections = |kind: EventKind| {
        let mut conns: Vec<&str> = of_kind(run, kind)
            .filter_map(|e| e.conn.as_deref())
            .collect();
        conns.sort_unstable();
        conns.dedup();
        conns.len()
    };
    let mut out = Vec::new();
    let dropped = of_kind(run, EventKind::SynDropped).count();
    if dropped > 0 {
        let first = of_kind(run, EventKind::SynDropped)
            .next()
            .map_or(0, |e| e.at_us);
        let clients = connections(EventKind::SynDropped);
        out.push(format!(
            "The accept queue was full: {dropped} SYN{} from {clients} client{} dropped (the first at {}); each client's kernel retransmitted its SYN, 1 s later at first, then backing off. A connection whose SYN is dropped waits in the client's kernel, invisible to the server and its log.",
            if dropped == 1 { "" } else { "s" },
            if clients == 1 { " was" } else { "s were" },
            ms(first),
        ));
    }
    let half_open = connections(EventKind::AckDropped);
    if half_open > 0 {
        out.push(format!(
            "{half_open} connection{} completed the handshake on the client's side only: the SYN found room, connect() returned and the client sent its request, but the queue had filled by the time its ACK arrived, so the server dropped the ACK (and the request's retransmissions) and kept the connection half-open until a retransmission found room.",
            if half_open == 1 { "" } else { "s" }
        ));
    }
    if let Some(line) = server_log(&run.events)
        .into_iter()
        .find(|l| ListenQueueFull::parse(l).is_some())
    {
        out.push(format!(
            "The master saw the queue full when it sampled it: \"{line}\"."
        ));
    }
    out
}

/// Where the answered requests' time went.
fn bottleneck(scenario: &Scenario, run: &RunOutput, phases: &[Phases]) -> Option<String> {
    let answered: Vec<(&RequestRecord, &Phases)> = run
        .requests
        .iter()
        .zip(phases)
        .filter(|(r, p)| r.outcome.is_status() && p.total.is_some())
        .collect();
    if answered.is_empty() {
        return None;
    }
    let sum =
        |f: &dyn Fn(&Phases) -> Option<u64>| answered.iter().filter_map(|(_, p)| f(p)).sum::<u64>();
    let total = sum(&|p| p.total).max(1);
    let mean = total / answered.len() as u64;
    let retried = answered
        .iter()
        .any(|(_, p)| p.syn_retries > 0 || p.acks_dropped > 0);
    let queued = sum(&|p| p.queue);
    // Below this, every phase is a few network round trips: nothing waited for anything.
    if mean < 20_000 && !retried && queued < 1_000 {
        return Some(format!(
            "Nothing waited: a request took {} on average, mostly network round trips (the link between the hosts has {} of latency each way, and a connection costs one round trip before the request can be sent).",
            ms(mean),
            ms(link_latency_us(scenario))
        ));
    }
    let parts = [
        (
            if retried {
                "connecting (SYN retransmissions)"
            } else {
                "connecting (the TCP handshake)"
            },
            sum(&|p| p.connect),
        ),
        ("waiting in the accept queue", sum(&|p| p.queue)),
        ("sending and reading the request", sum(&|p| p.read_parse)),
        ("in the app", sum(&|p| p.app)),
        ("writing the response", sum(&|p| p.write)),
    ];
    let (name, biggest) = parts.iter().max_by_key(|(_, v)| *v).copied()?;
    let share = biggest * 100 / total;
    if share < 25 {
        let accounted: u64 = parts.iter().map(|(_, v)| v).sum();
        if accounted * 2 >= total {
            // The phases add up: the time was spread over them.
            let mut shares: Vec<(&str, u64)> = parts
                .iter()
                .map(|(name, v)| (*name, v * 100 / total))
                .filter(|(_, share)| *share > 0)
                .collect();
            shares.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
            return Some(format!(
                "Where the time went: a request took {} on average end to end, spread over its phases with none above a quarter ({}).",
                ms(mean),
                shares
                    .iter()
                    .map(|(name, share)| format!("{share}% {name}"))
                    .collect::<Vec<_>>()
                    .join(", ")
            ));
        }
        let unseen = if scenario.balancer.is_some() {
            "a request through a balancer is served on another connection, behind it"
        } else {
            "the rest passed inside the server, where the client's connection does not show it: in the accept queue, in the app, writing the response"
        };
        return Some(format!(
            "Where the time went: a request took {} on average end to end; the phases seen from the client's connection account for little of it ({unseen}).",
            ms(mean)
        ));
    }
    let mut text = format!(
        "Where the time went: {share}% of the answered requests' time was spent {name} (mean total {}).",
        ms(mean)
    );
    let workers = board_size(run);
    let cores = scenario.machine.cores;
    if name.starts_with("waiting in the accept queue") || name.starts_with("connecting") {
        text.push_str(&format!(
            " The workers were the bottleneck: {} could serve only {} request{} at a time, so the others waited in the kernel until a worker called accept().",
            match workers { Some(1) => "the one worker".to_string(), Some(n) => format!("the {n} workers"), None => "the server".to_string() },
            workers.unwrap_or(1),
            if workers == Some(1) { "" } else { "s" }
        ));
    } else if name == "in the app" {
        let declared = |kind: EventKind| -> u64 {
            run.events
                .iter()
                .filter(|e| e.kind == kind)
                .filter_map(|e| declared_ms(&e.text))
                .sum()
        };
        let (cpu_ms, sleep_ms) = (declared(EventKind::Cpu), declared(EventKind::Sleep));
        let app_ms = sum(&|p| p.app) / 1000;
        let stretched = app_ms > (cpu_ms + sleep_ms) + (cpu_ms + sleep_ms) / 5;
        if cpu_ms > 0 && stretched {
            let threads = run.command.contains("--threads");
            text.push_str(&format!(
                " The requests' {cpu_ms} ms of CPU (and {sleep_ms} ms of waiting) took {app_ms} ms inside the app: requests computing at the same time share the machine's {cores} core{}{}.",
                if cores == 1 { "" } else { "s" },
                if threads {
                    ", and the threads of one process share one GIL, so only one of them runs Python at a time, on one core"
                } else {
                    " (k runnable processes on c cores each run at c/k of full speed)"
                }
            ));
            if workers.is_some_and(|w| w > cores) && !threads {
                text.push_str(" More processes than cores cannot serve CPU-bound requests faster: they only share the cores more thinly.");
            }
        } else if cpu_ms > 0 && cpu_ms >= sleep_ms {
            text.push_str(" The app is CPU-bound and each request had a core to itself.");
        } else if sleep_ms > 0 {
            text.push_str(" The app mostly waits (I/O: a database, an API) without using the CPU; a waiting worker is still busy, so more workers (or threads) let more requests wait at the same time.");
        }
    } else if name == "sending and reading the request" {
        text.push_str(" The clients were slow to send their requests, and a worker that is reading a request can do nothing else: slow clients hold workers.");
    }
    Some(text)
}

/// The one-way latency between hosts, as the simulation applies it (whole milliseconds).
fn link_latency_us(scenario: &Scenario) -> u64 {
    let latency = scenario
        .machine
        .sysctls
        .apply(crate::net::Sysctls::default())
        .link_latency;
    (latency.as_micros() as u64).div_ceil(1000) * 1000
}

/// `computes for 120 ms of CPU` → 120.
fn declared_ms(text: &str) -> Option<u64> {
    let words: Vec<&str> = text.split_whitespace().collect();
    words
        .windows(2)
        .find(|w| w[1] == "ms")
        .and_then(|w| w[0].parse().ok())
}

/// The number of workers in the master's list, if there is a master.
fn board_size(run: &RunOutput) -> Option<usize> {
    run.events
        .iter()
        .find_map(|e| e.board.as_ref())
        .map(Vec::len)
}

/// Deaths, respawns and signals, in order; deaths at the same moment together.
fn process_events(run: &RunOutput) -> Vec<String> {
    let mut out = Vec::new();
    let several = run.servers.len() > 1;
    let on = |e: &Event| {
        if several {
            format!(" on {}", e.host)
        } else {
            String::new()
        }
    };
    let mut deaths: Vec<&Event> = Vec::new();
    let flush = |deaths: &mut Vec<&Event>, out: &mut Vec<String>| {
        if let Some(first) = deaths.first() {
            let text = if deaths.len() == 1 {
                first.text.clone()
            } else {
                let pids: Vec<String> = deaths
                    .iter()
                    .filter_map(|e| e.pid)
                    .map(|p| p.to_string())
                    .collect();
                let how = first
                    .text
                    .rsplit(" killed by ")
                    .next()
                    .unwrap_or("a signal");
                format!("pids {} killed by {how}", pids.join(", "))
            };
            out.push(format!("At {}{} {text}.", ms(first.at_us), on(first)));
        }
        deaths.clear();
    };
    for e in &run.events {
        if e.category != Category::Proc {
            continue;
        }
        let same_moment = deaths.first().is_some_and(|d| {
            d.at_us == e.at_us
                && d.host == e.host
                && d.text.rsplit(" killed by ").next() == e.text.rsplit(" killed by ").next()
        });
        if e.kind != EventKind::Killed || !same_moment {
            flush(&mut deaths, &mut out);
        }
        match e.kind {
            EventKind::Kill => out.push(format!(
                "At {}{} the operator typed {}.",
                ms(e.at_us),
                on(e),
                e.text.trim_end_matches(", typed by the operator")
            )),
            EventKind::Killed => deaths.push(e),
            _ => {}
        }
    }
    flush(&mut deaths, &mut out);
    let log = server_log(&run.events);
    let respawns = log
        .iter()
        .filter_map(|l| WorkerStarted::parse(l))
        .filter(|s| s.how == HowStarted::Respawned)
        .count();
    if respawns > 0 {
        out.push(format!(
            "The master respawned {respawns} worker{} (\"Respawned uWSGI worker ...\" in the log).",
            if respawns == 1 { "" } else { "s" }
        ));
    }
    let count = |needle: &str| {
        log.iter()
            .filter(|l| l.starts_with("nginx:") && l.contains(needle))
            .count()
    };
    let (premature, refused, disabled) = (
        count("upstream prematurely closed connection"),
        count("(111: Connection refused) while connecting to upstream"),
        count("upstream server temporarily disabled"),
    );
    if premature + refused > 0 {
        out.push(format!(
            "The balancer met {premature} backend connection{} closed before a response and {refused} refused connect{}; each time it retried the request on the next backend (nothing had been sent to the client yet) and left the failed one out for its fail_timeout ({disabled} time{}). The clients saw only the delay.",
            if premature == 1 { "" } else { "s" },
            if refused == 1 { "" } else { "s" },
            if disabled == 1 { "" } else { "s" },
        ));
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    const MINIMAL: &str = "title = \"t\"\nteaches = \"x\"\ncommand = \"uwsgi --http-socket :8000\"\n[machine]\ncwd = \"/srv\"\n";

    fn answered() -> RequestRecord {
        RequestRecord {
            client: "client#1".into(),
            host: "client".into(),
            conn: None,
            seq: 1,
            method: "GET".into(),
            path: "/".into(),
            start_us: 0,
            connected_us: None,
            sent_us: None,
            first_byte_us: None,
            done_us: None,
            outcome: Outcome::Status(200),
            detail: "200 OK".into(),
        }
    }

    fn run() -> RunOutput {
        RunOutput {
            variant: None,
            command: "uwsgi".into(),
            seed: 0,
            events: Vec::new(),
            requests: vec![answered()],
            exit_status: None,
            servers: vec!["server".into()],
            end_us: 0,
        }
    }

    /// A request of 1 s whose phases (in ms) are these.
    fn phases(connect: u64, queue: u64, read: u64, app: u64, write: u64) -> Phases {
        Phases {
            connect: Some(connect * 1000),
            queue: Some(queue * 1000),
            read_parse: Some(read * 1000),
            app: Some(app * 1000),
            write: Some(write * 1000),
            total: Some(1_000_000),
            ..Phases::default()
        }
    }

    fn scenario(file: &str) -> Scenario {
        let path = format!("{}/../scenarios/{file}", env!("CARGO_MANIFEST_DIR"));
        let text = std::fs::read_to_string(&path).expect("bundled scenario");
        crate::scenario::parse(&text, &path).expect("valid scenario")
    }

    #[test]
    fn time_the_client_cannot_see_is_put_behind_a_balancer_only_where_there_is_one() {
        let plain = crate::scenario::parse(MINIMAL, "m.toml").unwrap();
        let unseen = [phases(150, 0, 10, 0, 10)];
        let text = bottleneck(&plain, &run(), &unseen).unwrap();
        assert!(text.contains("account for little of it"), "{text}");
        assert!(text.contains("inside the server"), "{text}");
        assert!(!text.contains("balancer"), "{text}");
        let balanced = scenario("21-load-balancer.toml");
        assert!(balanced.balancer.is_some());
        let text = bottleneck(&balanced, &run(), &unseen).unwrap();
        assert!(text.contains("through a balancer"), "{text}");
    }

    #[test]
    fn time_spread_over_the_phases_is_said_so() {
        let plain = crate::scenario::parse(MINIMAL, "m.toml").unwrap();
        let spread = [phases(200, 200, 200, 240, 160)];
        let text = bottleneck(&plain, &run(), &spread).unwrap();
        assert!(
            text.contains("spread over its phases with none above a quarter (24% in the app, 20% connecting (the TCP handshake), 20% sending and reading the request, 20% waiting in the accept queue, 16% writing the response)"),
            "{text}"
        );
        assert!(!text.contains("account for little"), "{text}");
    }
}
