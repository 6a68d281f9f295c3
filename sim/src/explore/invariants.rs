//! Invariants: what must hold in every run's trace, whatever the scenario. Each has a name and
//! says which event broke it. They read only the trace and the clients' records, as a person
//! reading the timeline would, so a violation can be checked by eye in `wsgilab replay`.
//!
//! The master's worker list is a *view* built from messages, so it may lag what the workers do;
//! the rules below say exactly how much (see [`scoreboard`]).

use std::collections::BTreeMap;

use crate::scenario::record::RunOutput;
use crate::scenario::{Outcome, Scenario, SERVER_HOST};
use crate::trace::{Category, Event, EventKind};
use server::log::lines::{request_line_pid, MasterSpawned, StopSignal, WorkerStarted};
use server::scoreboard::WorkerStatus;

/// A broken invariant: which, when, and the event that broke it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Violation {
    pub invariant: &'static str,
    pub at_us: u64,
    pub message: String,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "[{}] at {}: {}",
            self.invariant,
            crate::scenario::record::ms(self.at_us),
            self.message
        )
    }
}

/// The longest the worker list may disagree with the workers: the master reads its channel
/// in the same virtual instant the worker writes it, so anything longer is a missed update.
pub const BOARD_LAG_US: u64 = 50_000;
/// A worker that dies after start-up is respawned at once (the next master loop); 2 s allows
/// for a death noticed only at the next tick.
pub const RESPAWN_US: u64 = 2_000_000;
/// A worker dying at start-up is respawned after a back-off of at most 32 s (uWSGI's cap),
/// plus the master's 1 s tick.
pub const RESPAWN_BACKOFF_US: u64 = 35_000_000;

/// Every invariant, on one run.
pub fn check_run(scenario: &Scenario, run: &RunOutput) -> Vec<Violation> {
    let facts = Facts::of(scenario, run);
    let mut out = Vec::new();
    no_sim_error(run, &mut out);
    one_outcome(scenario, run, &mut out);
    failure_causes(run, &mut out);
    accepted_not_dropped(run, &mut out);
    scoreboard(&facts, run, &mut out);
    busy_bound(&facts, run, &mut out);
    workers_announced(&facts, run, &mut out);
    respawn(&facts, run, &mut out);
    graceful(&facts, run, &mut out);
    out
}

fn violation(out: &mut Vec<Violation>, invariant: &'static str, at_us: u64, message: String) {
    out.push(Violation {
        invariant,
        at_us,
        message,
    });
}

/// What the invariants need to know about the server, read once from the command line and
/// the trace.
#[derive(Debug, Default)]
pub struct Facts {
    pub processes: usize,
    pub threads: usize,
    pub master_mode: bool,
    pub master_pid: Option<u32>,
    /// When the master died, if it did.
    pub master_death: Option<usize>,
    /// Trace index of each worker spawn: (index, slot, pid).
    pub spawns: Vec<(usize, usize, u32)>,
}

impl Facts {
    pub fn of(scenario: &Scenario, run: &RunOutput) -> Facts {
        let mut facts = Facts::default();
        // Read as the simulated server read it: the scenario's files and environment.
        let setup = crate::scenario::run::server_setup(scenario, &run.command);
        if let Ok(server::config::ConfigOutcome::Run(config)) = crate::world::parse_command(&setup)
        {
            facts.processes = config.processes.max(1) as usize;
            facts.threads = config.threads.max(1) as usize;
            facts.master_mode = config.master || config.processes > 1;
        }
        for (i, e) in server_events(run) {
            if e.category == Category::Log {
                if let Some(master) = MasterSpawned::parse(&e.text) {
                    facts.master_pid = Some(master.pid);
                }
                if let Some(started) = WorkerStarted::parse(&e.text) {
                    facts.spawns.push((i, started.slot, started.pid));
                }
            }
            if facts.master_death.is_none()
                && e.category == Category::Proc
                && matches!(e.kind, EventKind::Killed | EventKind::Exit)
                && e.pid.is_some()
                && e.pid == facts.master_pid
            {
                facts.master_death = Some(i);
            }
        }
        facts
    }

    /// The slot of worker `pid`.
    fn slot_of(&self, pid: u32) -> Option<usize> {
        self.spawns
            .iter()
            .find(|(_, _, p)| *p == pid)
            .map(|(_, s, _)| *s)
    }
}

fn server_events(run: &RunOutput) -> impl Iterator<Item = (usize, &Event)> {
    run.events
        .iter()
        .enumerate()
        .filter(|(_, e)| e.host == SERVER_HOST)
}

/// `[pid: 1003|app: 0|...`: the request log line a worker writes when a request is done,
/// just before it tells the master it is idle again.
fn request_log_pid(e: &Event) -> Option<u32> {
    if e.category != Category::Log {
        return None;
    }
    request_line_pid(&e.text)
}

/// no_panic (the turmoil half): the simulation itself stopped with an error.
fn no_sim_error(run: &RunOutput, out: &mut Vec<Violation>) {
    for e in &run.events {
        if e.kind == EventKind::SimError {
            violation(out, "no_panic", e.at_us, e.text.clone());
        }
    }
}

/// one_outcome: every planned client appears, its requests numbered 1..k with k at most its
/// `requests`, each ended in exactly one known outcome (never `unfinished`: the generated
/// scenarios give up long before the time limit), announced by exactly one client `outcome`
/// event; only a successful response lets a kept-alive connection carry the next request.
fn one_outcome(scenario: &Scenario, run: &RunOutput, out: &mut Vec<Violation>) {
    let mut by_client: BTreeMap<&str, Vec<&crate::scenario::record::RequestRecord>> =
        BTreeMap::new();
    for r in &run.requests {
        by_client.entry(r.client.as_str()).or_default().push(r);
    }
    let planned: u32 = scenario.clients.iter().map(|g| g.count).sum();
    if by_client.len() != planned as usize {
        violation(
            out,
            "one_outcome",
            run.end_us,
            format!(
                "{planned} clients were planned, {} have records",
                by_client.len()
            ),
        );
    }
    let mut outcome_events: BTreeMap<&str, usize> = BTreeMap::new();
    for e in &run.events {
        if e.category == Category::Client && e.kind == EventKind::Outcome {
            if let Some((label, _)) = e.text.split_once(": ") {
                *outcome_events.entry(label).or_default() += 1;
            }
        }
    }
    for (client, records) in &by_client {
        for (i, r) in records.iter().enumerate() {
            if r.seq as usize != i + 1 {
                violation(
                    out,
                    "one_outcome",
                    r.start_us,
                    format!(
                        "{client}: request {} recorded where {} was expected",
                        r.seq,
                        i + 1
                    ),
                );
            }
            if r.outcome == Outcome::Unfinished {
                violation(
                    out,
                    "one_outcome",
                    r.start_us,
                    format!(
                        "{client} request {}: outcome {:?} ({}) is not an end",
                        r.seq, r.outcome, r.detail
                    ),
                );
            }
            if i + 1 < records.len() && !r.outcome.is_status() {
                violation(
                    out,
                    "one_outcome",
                    r.start_us,
                    format!(
                        "{client} request {} failed ({}) yet the connection carried another",
                        r.seq, r.outcome
                    ),
                );
            }
        }
        let told = outcome_events.get(client).copied().unwrap_or(0);
        if told != records.len() {
            violation(
                out,
                "one_outcome",
                records[0].start_us,
                format!(
                    "{client}: {} request(s) but {told} outcome event(s) in the trace",
                    records.len()
                ),
            );
        }
    }
}

/// failure_causes: a request that failed without the client choosing it (refused, reset,
/// timeout, no_response, cut) has an event in the trace, during its life, that names why:
/// nothing listening, a dropped SYN, a process killed or exiting, a socket closed with
/// connections in its queue, or a server log line. (`gave_up` and `client_closed` are the
/// client's own decision, whose event is its outcome.)
///
/// Refined for kept-alive connections: the server may close an idle kept-alive connection at
/// any moment (RFC 9112 §9.3.1; here a worker retiring because another of its threads reached
/// --max-requests), and a request the client sent as the FIN crossed it gets nothing. Its
/// cause is the server's FIN on that connection, since the previous request began.
fn failure_causes(run: &RunOutput, out: &mut Vec<Violation>) {
    for (k, r) in run.requests.iter().enumerate() {
        let end = r.done_us.unwrap_or(run.end_us);
        if closed_while_idle(run, k) {
            continue;
        }
        let during = |e: &&Event| e.at_us >= r.start_us && e.at_us <= end;
        use EventKind as K;
        let kinds: &[EventKind] = match r.outcome {
            Outcome::Refused => &[K::Refused],
            Outcome::Timeout => &[K::SynDropped, K::SynRetry, K::SynackRetransmit],
            Outcome::Reset | Outcome::NoResponse | Outcome::Cut => &[
                K::Refused,
                K::Reset,
                K::Close,
                K::Killed,
                K::Exit,
                K::Kill,
                K::Log,
            ],
            _ => continue,
        };
        let cause = run
            .events
            .iter()
            .filter(during)
            .filter(|e| e.host != r.host)
            .find(|e| {
                kinds.contains(&e.kind)
                    && (e.kind != EventKind::Log || request_log_pid(e).is_none())
            });
        if cause.is_none() {
            violation(
                out,
                "failure_causes",
                end,
                format!(
                    "{} request {} ended {:?} ({}) and no event between {} and {} says why",
                    r.client,
                    r.seq,
                    r.outcome,
                    r.detail,
                    crate::scenario::record::ms(r.start_us),
                    crate::scenario::record::ms(end)
                ),
            );
        }
    }
}

/// Request `k` was sent on a kept-alive connection the server had already closed (its FIN
/// left at or before the request did, after the previous request began): the connection was
/// idle, not dropped mid-request.
fn closed_while_idle(run: &RunOutput, k: usize) -> bool {
    let r = &run.requests[k];
    if r.seq == 1 || !matches!(r.outcome, Outcome::NoResponse | Outcome::Reset) {
        return false;
    }
    let since = k
        .checked_sub(1)
        .map_or(r.start_us, |p| run.requests[p].start_us);
    let sent = r.sent_us.unwrap_or(r.start_us);
    run.events.iter().any(|e| {
        e.host == SERVER_HOST
            && e.category == Category::Net
            && e.kind == EventKind::Fin
            && e.conn == r.conn
            && e.at_us >= since
            && e.at_us <= sent
    })
}

/// accepted_not_dropped: a connection a worker accepted ends in a response, in the client's
/// own hang-up, or with a reason on record while it was open: a server log line (other than
/// a request's own log line) or a process killed or exiting.
fn accepted_not_dropped(run: &RunOutput, out: &mut Vec<Violation>) {
    let mut last: BTreeMap<&str, (usize, &crate::scenario::record::RequestRecord)> =
        BTreeMap::new();
    for (k, r) in run.requests.iter().enumerate() {
        if let Some(conn) = &r.conn {
            last.insert(conn.as_str(), (k, r));
        }
    }
    for (_, e) in server_events(run) {
        if e.category != Category::Net || e.kind != EventKind::Accepted {
            continue;
        }
        let Some(conn) = e.conn.as_deref() else {
            continue;
        };
        let Some(&(k, r)) = last.get(conn) else {
            continue;
        };
        if r.outcome.is_status()
            || matches!(r.outcome, Outcome::ClientClosed | Outcome::GaveUp)
            || closed_while_idle(run, k)
        {
            continue;
        }
        let end = r.done_us.unwrap_or(run.end_us);
        let reason = server_events(run).any(|(_, x)| {
            x.at_us >= e.at_us
                && x.at_us <= end
                && ((x.category == Category::Log && request_log_pid(x).is_none())
                    || (x.category == Category::Proc
                        && matches!(
                            x.kind,
                            EventKind::Kill | EventKind::Killed | EventKind::Exit
                        )))
        });
        if !reason {
            violation(
                out,
                "accepted_not_dropped",
                end,
                format!(
                    "the connection of {} ({conn}), accepted at {}, ended {:?} ({}) with no reason logged",
                    r.client,
                    crate::scenario::record::ms(e.at_us),
                    r.outcome,
                    r.detail
                ),
            );
        }
    }
}

/// Each worker's requests in progress, step by step: (trace index, time, pid, count after).
/// A request begins with the app's call (`app_start`) and ends with its log line (written
/// just before the worker reports idle) or the worker's death.
fn busy_steps(facts: &Facts, run: &RunOutput) -> Vec<(usize, u64, u32, usize)> {
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    let mut steps = Vec::new();
    for (i, e) in server_events(run) {
        let change = if e.category == Category::App && e.kind == EventKind::AppStart {
            e.pid.map(|p| (p, 1i64))
        } else if let Some(pid) = request_log_pid(e) {
            // A request refused before the app (400, 408, 431) is logged too without having
            // started: such a line ends nothing.
            Some((pid, -1))
        } else if e.category == Category::Proc
            && matches!(e.kind, EventKind::Killed | EventKind::Exit)
        {
            e.pid.map(|p| (p, i64::MIN))
        } else {
            None
        };
        let Some((pid, delta)) = change else { continue };
        if facts.slot_of(pid).is_none() && delta != 1 {
            continue;
        }
        let count = counts.entry(pid).or_default();
        let new = match delta {
            i64::MIN => 0,
            -1 => count.saturating_sub(1),
            _ => *count + 1,
        };
        if new != *count || delta == 1 {
            *count = new;
            steps.push((i, e.at_us, pid, new));
        }
    }
    steps
}

/// scoreboard: the master's worker list (`[busy, idle]`, Board events) agrees with what the
/// workers do. A worker is *inside a request* from its app's call to its request log line (or
/// its death). The list is built from the workers' messages, so:
///
/// 1. it may lag, but never by more than [`BOARD_LAG_US`]: a slot shown `busy` while its
///    worker is in no request (or dead), or shown `idle`/`starting` while its worker is in
///    one, for longer than that is a violation — a missed or stale update;
/// 2. `stopping` (asked to leave, finishing) and `dead` are not checked against requests.
///
/// Not checked once the master is gone (nobody updates the list) or without a master.
fn scoreboard(facts: &Facts, run: &RunOutput, out: &mut Vec<Violation>) {
    if !facts.master_mode || facts.master_pid.is_none() {
        return;
    }
    let steps = busy_steps(facts, run);
    let stop_at = facts.master_death.unwrap_or(usize::MAX);
    // Change points of the (board, workers) state, in trace order.
    let mut points: Vec<(usize, u64)> = steps.iter().map(|s| (s.0, s.1)).collect();
    let boards: Vec<(usize, &Event)> = server_events(run)
        .filter(|(_, e)| e.category == Category::Board)
        .collect();
    points.extend(boards.iter().map(|(i, e)| (*i, e.at_us)));
    points.extend(
        facts
            .spawns
            .iter()
            .map(|(i, _, _)| (*i, run.events[*i].at_us)),
    );
    points.sort();
    points.dedup();
    let mut mismatch_since: BTreeMap<usize, (u64, String)> = BTreeMap::new();
    let mut reported: BTreeMap<usize, bool> = BTreeMap::new();
    let mut board: Vec<WorkerStatus> = Vec::new();
    let mut pid_of: BTreeMap<usize, u32> = BTreeMap::new();
    let mut count: BTreeMap<u32, usize> = BTreeMap::new();
    let (mut si, mut bi, mut pi) = (0, 0, 0);
    // `began`: when the state being judged began (the previous change point).
    let check = |slot: usize,
                 began: u64,
                 at: u64,
                 shown: WorkerStatus,
                 busy: bool,
                 pid: u32,
                 since: &mut BTreeMap<usize, (u64, String)>,
                 reported: &mut BTreeMap<usize, bool>,
                 out: &mut Vec<Violation>| {
        let wrong = match shown {
            WorkerStatus::Busy => !busy,
            WorkerStatus::Idle | WorkerStatus::Starting => busy,
            WorkerStatus::Stopping | WorkerStatus::Dead => false,
        };
        if !wrong {
            since.remove(&slot);
            return;
        }
        let entry = since.entry(slot).or_insert_with(|| {
            (
                began,
                format!(
                    "worker {slot} (pid {pid}) shown {} while it is {}",
                    shown.name(),
                    if busy {
                        "inside a request"
                    } else {
                        "in no request"
                    }
                ),
            )
        });
        if at.saturating_sub(entry.0) > BOARD_LAG_US
            && !reported.get(&slot).copied().unwrap_or(false)
        {
            reported.insert(slot, true);
            violation(
                out,
                "scoreboard",
                entry.0,
                format!(
                    "{} for {} (more than the {} allowed for the master to catch up)",
                    entry.1,
                    crate::scenario::record::ms(at - entry.0),
                    crate::scenario::record::ms(BOARD_LAG_US)
                ),
            );
        }
    };
    let end_point = (usize::MAX, run.end_us);
    let mut began = 0;
    for &(index, at) in points.iter().chain(std::iter::once(&end_point)) {
        // Judge the state that held up to this point, then apply this point's changes.
        if index >= stop_at && index != usize::MAX {
            break;
        }
        let judge_at = if index == usize::MAX {
            run.events.get(stop_at).map_or(at, |e| e.at_us).min(at)
        } else {
            at
        };
        for (slot0, shown) in board.iter().enumerate() {
            let slot = slot0 + 1;
            if let Some(&pid) = pid_of.get(&slot) {
                let busy = count.get(&pid).copied().unwrap_or(0) > 0;
                check(
                    slot,
                    began,
                    judge_at,
                    *shown,
                    busy,
                    pid,
                    &mut mismatch_since,
                    &mut reported,
                    out,
                );
            }
        }
        began = at;
        while si < steps.len() && steps[si].0 <= index {
            count.insert(steps[si].2, steps[si].3);
            si += 1;
        }
        while bi < boards.len() && boards[bi].0 <= index {
            board = boards[bi].1.board.clone().unwrap_or_default();
            bi += 1;
        }
        while pi < facts.spawns.len() && facts.spawns[pi].0 <= index {
            pid_of.insert(facts.spawns[pi].1, facts.spawns[pi].2);
            pi += 1;
        }
    }
}

/// busy_bound: requests in progress never exceed one per thread of a worker, nor
/// processes × threads in all.
fn busy_bound(facts: &Facts, run: &RunOutput, out: &mut Vec<Violation>) {
    if facts.processes == 0 {
        return;
    }
    let limit = facts.processes * facts.threads;
    let mut counts: BTreeMap<u32, usize> = BTreeMap::new();
    let mut said = false;
    for (i, at, pid, count) in busy_steps(facts, run) {
        counts.insert(pid, count);
        let total: usize = counts.values().sum();
        if !said && (count > facts.threads || total > limit) {
            said = true;
            violation(
                out,
                "busy_bound",
                at,
                format!(
                    "{}: pid {pid} is in {count} request(s) and all workers in {total}, over --threads {} / processes × threads = {limit}",
                    run.events[i].text, facts.threads
                ),
            );
        }
    }
}

/// workers_announced: with a master, every process that runs the app (other than the master,
/// which imports it before forking) was announced by a worker start line
/// ([`WorkerStarted`]). This is what the other invariants read workers from: were that line
/// reworded or lost, they would find no workers and check nothing, so this one fails instead.
fn workers_announced(facts: &Facts, run: &RunOutput, out: &mut Vec<Violation>) {
    if !facts.master_mode {
        return;
    }
    let mut reported = Vec::new();
    for (_, e) in server_events(run) {
        let Some(pid) = e.pid else { continue };
        if e.category != Category::App
            || Some(pid) == facts.master_pid
            || facts.slot_of(pid).is_some()
            || reported.contains(&pid)
        {
            continue;
        }
        reported.push(pid);
        violation(
            out,
            "workers_announced",
            e.at_us,
            format!(
                "process {pid} ran the app ({}: {}) but no \"spawned uWSGI worker N (pid: {pid}, ...)\" or \"Respawned uWSGI worker N (new pid: {pid})\" line announced it",
                e.kind, e.text
            ),
        );
    }
}

/// respawn: with a master, a worker that dies is replaced in its slot within [`RESPAWN_US`]
/// if it had lived a second or more, else within [`RESPAWN_BACKOFF_US`] (the master backs off
/// from a worker that keeps dying at start-up). Not expected when the master is stopping (SIGINT, SIGTERM), reloading
/// by re-executing itself (it forks every worker anew once the last is gone, which waits for
/// the slowest request), dead, or when the run ended before the bound.
fn respawn(facts: &Facts, run: &RunOutput, out: &mut Vec<Violation>) {
    if !facts.master_mode {
        return;
    }
    let stopping_from = server_events(run)
        .find(|(_, e)| {
            e.category == Category::Log
                && StopSignal::parse(&e.text).is_some_and(StopSignal::ends_every_worker)
        })
        .map_or(usize::MAX, |(i, _)| i);
    for (i, e) in server_events(run) {
        if e.category != Category::Proc || !matches!(e.kind, EventKind::Killed | EventKind::Exit) {
            continue;
        }
        let Some(pid) = e.pid else { continue };
        let Some(slot) = facts.slot_of(pid) else {
            continue;
        };
        // Only the slot's current worker: an older one is already replaced.
        if facts
            .spawns
            .iter()
            .rev()
            .find(|(at, s, _)| *at < i && *s == slot)
            .map(|s| s.2)
            != Some(pid)
        {
            continue;
        }
        if i > stopping_from || facts.master_death.is_some_and(|d| d <= i) {
            continue;
        }
        // Judged from the trace, not from what the master says: a worker that lived a second
        // or more got through start-up, and the master must not back off from it.
        let spawned_at = facts
            .spawns
            .iter()
            .rev()
            .find(|(at, s, _)| *at < i && *s == slot)
            .map_or(0, |(at, _, _)| run.events[*at].at_us);
        let bound = if e.at_us - spawned_at < 1_000_000 {
            RESPAWN_BACKOFF_US
        } else {
            RESPAWN_US
        };
        let replaced = facts
            .spawns
            .iter()
            .find(|(j, s, _)| *j > i && *s == slot)
            .map(|(j, _, _)| run.events[*j].at_us);
        let master_gone_before = |t: u64| {
            facts.master_death.is_some_and(|d| run.events[d].at_us <= t)
                || stopping_from != usize::MAX && run.events[stopping_from].at_us <= t
        };
        match replaced {
            Some(t) if t - e.at_us <= bound => {}
            Some(t) if master_gone_before(e.at_us + bound) => {
                let _ = t;
            }
            None if run.end_us < e.at_us + bound || master_gone_before(e.at_us + bound) => {}
            other => violation(
                out,
                "respawn",
                e.at_us,
                format!(
                    "worker {slot} ({}) was {} (allowed: {})",
                    e.text,
                    other.map_or("never replaced".to_string(), |t| format!(
                        "replaced only after {}",
                        crate::scenario::record::ms(t - e.at_us)
                    )),
                    crate::scenario::record::ms(bound)
                ),
            ),
        }
    }
}

/// graceful: after SIGTERM or SIGHUP reaches the master, every request whose connection a
/// worker had already accepted (and, on a kept-alive connection, that was already sent)
/// still gets its response — unless its own worker died (a crash route, harakiri, a kill),
/// a later immediate stop (SIGINT, SIGKILL) came first, or the client gave up by itself.
fn graceful(facts: &Facts, run: &RunOutput, out: &mut Vec<Violation>) {
    if !facts.master_mode {
        return;
    }
    let signals: Vec<(usize, u64, &str)> = server_events(run)
        .filter(|(_, e)| e.category == Category::Proc && e.kind == EventKind::Kill)
        .filter_map(|(i, e)| {
            let graceful = e.text.starts_with("kill -TERM ") || e.text.starts_with("kill -HUP ");
            (graceful && e.text.contains("(master)")).then_some((i, e.at_us, e.text.as_str()))
        })
        .collect();
    let accepted: BTreeMap<&str, (usize, u64)> = server_events(run)
        .filter(|(_, e)| e.category == Category::Net && e.kind == EventKind::Accepted)
        .filter_map(|(i, e)| Some((e.conn.as_deref()?, (i, e.at_us))))
        .collect();
    for &(si, st, what) in &signals {
        for r in &run.requests {
            let Some(conn) = r.conn.as_deref() else {
                continue;
            };
            let Some(&(ai, _)) = accepted.get(conn) else {
                continue;
            };
            // Accepted (and sent) before the signal, and not over by then.
            let already = ai < si
                && (r.seq == 1 || r.sent_us.is_some_and(|s| s < st))
                && r.done_us.is_none_or(|d| d >= st);
            if !already
                || r.outcome.is_status()
                || matches!(r.outcome, Outcome::ClientClosed | Outcome::GaveUp)
            {
                continue;
            }
            let end = r.done_us.unwrap_or(run.end_us);
            // Its worker (the one whose app was called for this connection) died, or an
            // immediate stop or kill came in between.
            let served_by: Vec<u32> = run
                .events
                .iter()
                .filter(|e| {
                    e.category == Category::App
                        && e.kind == EventKind::AppStart
                        && e.conn.as_deref() == Some(conn)
                })
                .filter_map(|e| e.pid)
                .collect();
            let excused = server_events(run).any(|(j, e)| {
                j > ai
                    && e.at_us <= end
                    && e.category == Category::Proc
                    && ((e.kind == EventKind::Killed
                        && e.pid.is_some_and(|p| served_by.contains(&p)))
                        || (e.kind == EventKind::Kill
                            && (e.text.contains("(master)") || e.text.contains("every process"))
                            && !e.text.starts_with("kill -TERM ")
                            && !e.text.starts_with("kill -HUP ")))
            });
            if !excused {
                violation(
                    out,
                    "graceful",
                    end,
                    format!(
                        "{} request {} ({conn}) was accepted before `{what}` at {} yet ended {:?}: {}",
                        r.client,
                        r.seq,
                        crate::scenario::record::ms(st),
                        r.outcome,
                        r.detail
                    ),
                );
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! Each invariant, broken on a hand-made trace; and the same trace repaired passes.
    use super::*;
    use crate::scenario::record::RequestRecord;

    const MASTER: u32 = 1001;
    const WORKER: u32 = 1002;
    const CONN: &str = "192.168.0.2:32768";

    fn scenario(command: &str) -> Scenario {
        let text = format!(
            "title = \"t\"\nteaches = \"t\"\ncommand = \"{command}\"\n[machine]\ncwd = \"/srv\"\n[[clients]]\n"
        );
        crate::scenario::parse(&text, "t.toml").expect("a valid scenario")
    }

    fn ev(
        at_ms: u64,
        pid: Option<u32>,
        category: Category,
        conn: Option<&str>,
        kind: EventKind,
        text: &str,
    ) -> Event {
        Event {
            at_us: at_ms * 1000,
            host: if category == Category::Client {
                "client".into()
            } else {
                SERVER_HOST.into()
            },
            pid,
            category,
            conn: conn.map(str::to_string),
            kind,
            text: text.into(),
            // A worker list written as the simulation prints it, `[busy, idle]`.
            board: (category == Category::Board).then(|| {
                text.trim_matches(['[', ']'])
                    .split(", ")
                    .filter(|s| !s.is_empty())
                    .map(|s| match s {
                        "busy" => WorkerStatus::Busy,
                        "idle" => WorkerStatus::Idle,
                        "starting" => WorkerStatus::Starting,
                        "stopping" => WorkerStatus::Stopping,
                        _ => WorkerStatus::Dead,
                    })
                    .collect()
            }),
        }
    }

    fn log(at_ms: u64, text: &str) -> Event {
        ev(
            at_ms,
            Some(MASTER),
            Category::Log,
            None,
            EventKind::Log,
            text,
        )
    }

    /// A master with one worker, started at 0.
    fn started() -> Vec<Event> {
        vec![
            log(0, &format!("spawned uWSGI master process (pid: {MASTER})")),
            log(
                0,
                &format!("spawned uWSGI worker 1 (pid: {WORKER}, cores: 1)"),
            ),
            ev(
                0,
                Some(MASTER),
                Category::Board,
                None,
                EventKind::Board,
                "[idle]",
            ),
        ]
    }

    fn record(outcome: &str, done_ms: u64) -> RequestRecord {
        RequestRecord {
            client: "client#1".into(),
            host: "client".into(),
            conn: Some(CONN.into()),
            seq: 1,
            method: "GET".into(),
            path: "/".into(),
            start_us: 100_000,
            connected_us: Some(102_000),
            sent_us: Some(102_000),
            first_byte_us: None,
            done_us: Some(done_ms * 1000),
            outcome: outcome.parse().expect("an outcome"),
            detail: outcome.into(),
        }
    }

    fn outcome_event(done_ms: u64) -> Event {
        ev(
            done_ms,
            None,
            Category::Client,
            Some(CONN),
            EventKind::Outcome,
            "client#1: it ended",
        )
    }

    fn run(events: Vec<Event>, requests: Vec<RequestRecord>, end_ms: u64) -> RunOutput {
        RunOutput {
            variant: None,
            command: "uwsgi --http-socket :8000 --master --processes 1".into(),
            seed: 0,
            events,
            requests,
            exit_status: None,
            servers: vec![SERVER_HOST.into()],
            end_us: end_ms * 1000,
        }
    }

    fn broken(run: &RunOutput) -> Vec<&'static str> {
        let mut names: Vec<&'static str> = check_run(&scenario(&run.command), run)
            .iter()
            .map(|v| v.invariant)
            .collect();
        names.dedup();
        names
    }

    /// The connection accepted at 103 ms.
    fn accepted() -> Event {
        ev(
            103,
            None,
            Category::Net,
            Some(CONN),
            EventKind::Accepted,
            "accept() takes it",
        )
    }

    /// The request accepted at 103 ms and the app called for it, the master told.
    fn accepted_and_called() -> [Event; 3] {
        [
            accepted(),
            ev(
                103,
                Some(WORKER),
                Category::App,
                Some(CONN),
                EventKind::AppStart,
                "called for GET /",
            ),
            ev(
                103,
                Some(MASTER),
                Category::Board,
                None,
                EventKind::Board,
                "[busy]",
            ),
        ]
    }

    /// One request served at 103..104 ms, as the simulation traces it.
    fn served() -> RunOutput {
        let mut events = started();
        events.extend(accepted_and_called());
        events.extend([
            ev(
                104,
                Some(WORKER),
                Category::App,
                Some(CONN),
                EventKind::AppEnd,
                "returned 200 OK",
            ),
            log(
                104,
                &format!("[pid: {WORKER}|app: 0|req: 1/1] 192.168.0.2 GET / => generated 2 bytes"),
            ),
            ev(
                104,
                Some(MASTER),
                Category::Board,
                None,
                EventKind::Board,
                "[idle]",
            ),
            outcome_event(105),
        ]);
        run(events, vec![record("200", 105)], 600)
    }

    #[test]
    fn a_served_request_breaks_nothing() {
        assert_eq!(broken(&served()), Vec::<&str>::new());
    }

    #[test]
    fn no_panic_a_simulation_error() {
        let mut r = served();
        r.events.push(ev(
            500,
            None,
            Category::Proc,
            None,
            EventKind::SimError,
            "the simulation stopped: boom",
        ));
        assert_eq!(broken(&r), ["no_panic"]);
    }

    #[test]
    fn one_outcome_an_unfinished_request_and_a_missing_outcome_event() {
        let mut r = served();
        r.requests[0].outcome = Outcome::Unfinished;
        assert!(broken(&r).contains(&"one_outcome"));
        let mut r = served();
        r.events.retain(|e| e.kind != EventKind::Outcome);
        assert_eq!(broken(&r), ["one_outcome"]);
    }

    #[test]
    fn a_reworded_worker_start_line_breaks_an_invariant_instead_of_hiding_workers() {
        assert_eq!(broken(&served()), Vec::<&str>::new());
        let mut r = served();
        for e in &mut r.events {
            e.text = e.text.replace("spawned uWSGI worker", "spawned worker");
        }
        assert_eq!(broken(&r), ["workers_announced"]);
    }

    #[test]
    fn failure_causes_a_reset_nobody_explains() {
        let mut r = served();
        r.events.retain(|e| {
            e.category != Category::App && e.category != Category::Log
                || e.text.starts_with("spawned")
        });
        r.events
            .retain(|e| e.category != Category::Board || e.text == "[idle]");
        r.requests[0].outcome = Outcome::NoResponse;
        let names = broken(&r);
        assert!(names.contains(&"failure_causes"), "{names:?}");
    }

    #[test]
    fn accepted_not_dropped_a_reset_without_a_logged_reason() {
        let mut events = started();
        events.extend([
            accepted(),
            ev(
                104,
                None,
                Category::Net,
                Some(CONN),
                EventKind::Reset,
                "RST to 192.168.0.2:32768",
            ),
            outcome_event(105),
        ]);
        let r = run(events, vec![record("reset", 105)], 600);
        assert_eq!(broken(&r), ["accepted_not_dropped"]);
    }

    #[test]
    fn scoreboard_a_busy_worker_shown_idle() {
        let mut r = served();
        // The app takes a second, and the list never says busy.
        r.events
            .retain(|e| !(e.category == Category::Board && e.text == "[busy]"));
        for e in &mut r.events {
            if e.at_us == 104_000 {
                e.at_us = 1_104_000;
            }
            if e.kind == EventKind::Outcome {
                e.at_us = 1_105_000;
            }
        }
        r.requests[0].done_us = Some(1_105_000);
        r.end_us = 2_000_000;
        assert_eq!(broken(&r), ["scoreboard"]);
    }

    #[test]
    fn scoreboard_a_stale_busy() {
        let mut r = served();
        // The idle update never comes.
        r.events
            .retain(|e| !(e.category == Category::Board && e.at_us == 104_000));
        assert_eq!(broken(&r), ["scoreboard"]);
    }

    #[test]
    fn busy_bound_two_requests_in_a_one_thread_worker() {
        let mut r = served();
        let second = ev(
            103,
            Some(WORKER),
            Category::App,
            Some("192.168.0.2:32770"),
            EventKind::AppStart,
            "called for GET /",
        );
        r.events.insert(4, second);
        assert!(broken(&r).contains(&"busy_bound"), "{:?}", broken(&r));
    }

    #[test]
    fn respawn_a_dead_worker_never_replaced() {
        let mut r = served();
        r.events.push(ev(
            1500,
            Some(WORKER),
            Category::Proc,
            None,
            EventKind::Killed,
            "pid 1002 killed by SIGKILL",
        ));
        r.events.push(ev(
            1500,
            Some(MASTER),
            Category::Board,
            None,
            EventKind::Board,
            "[dead]",
        ));
        r.end_us = 5_000_000;
        assert_eq!(broken(&r), ["respawn"]);
        // Replaced at once: fine.
        r.events
            .push(log(1500, "Respawned uWSGI worker 1 (new pid: 1003)"));
        assert_eq!(broken(&r), Vec::<&str>::new());
    }

    #[test]
    fn graceful_an_accepted_request_lost_to_sigterm() {
        let mut events = started();
        events.extend(accepted_and_called());
        events.extend([
            ev(
                110,
                Some(MASTER),
                Category::Proc,
                None,
                EventKind::Kill,
                "kill -TERM 1001 (master), typed by the operator",
            ),
            log(110, "wsgilab: SIGTERM received: stopping gracefully"),
            ev(
                120,
                Some(WORKER),
                Category::Proc,
                None,
                EventKind::Exit,
                "pid 1002 exited with status 0",
            ),
            ev(
                120,
                Some(MASTER),
                Category::Board,
                None,
                EventKind::Board,
                "[dead]",
            ),
            outcome_event(121),
        ]);
        let r = run(events, vec![record("no_response", 121)], 600);
        assert_eq!(broken(&r), ["graceful"]);
    }
}
