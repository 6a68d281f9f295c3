//! The state of the machine at every moment of a run, derived from its trace once, in Rust:
//! per listening socket the accept queue (which connections, in order), the half-open
//! connections and the SYNs dropped so far; the master's worker list; each worker's pid, core
//! count and request; each connection's state on the server and its client's view; the log
//! lines so far. Stored as change lists over the run's distinct event times ("steps"), so that
//! the HTML page (`html.rs`) can show the state at a cursor with binary searches instead of
//! holding a copy per event. [`States::at`] reads the same lists back, for the tests.

use std::collections::BTreeMap;

use serde::Serialize;

use super::record::RunOutput;
use crate::trace::{Category, EventKind};
use server::log::lines::{HowStarted, WorkerStarted};

/// A connection's state as the server holds it.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ConnState {
    /// SYN sent (or retransmitted); no SYN-ACK yet.
    SynSent,
    /// SYN-ACK sent, no usable ACK (or the ACK was dropped on a full accept queue).
    HalfOpen,
    /// Established, in the accept queue.
    Queued,
    /// Accepted: the worker reads and parses the request (or waits for the next one).
    Reading,
    InApp,
    Writing,
    /// The server forgot a half-open connection its client still believes connected.
    Forgotten,
    Closed,
}

impl ConnState {
    pub fn words(self) -> &'static str {
        match self {
            ConnState::SynSent => "SYN sent",
            ConnState::HalfOpen => "half-open",
            ConnState::Queued => "queued",
            ConnState::Reading => "being read",
            ConnState::InApp => "in the app",
            ConnState::Writing => "writing",
            ConnState::Forgotten => "forgotten by the server",
            ConnState::Closed => "closed",
        }
    }
}

/// A value that changes at some steps: `(step, value)`, steps increasing.
pub type Series<T> = Vec<(usize, T)>;

fn set<T: PartialEq>(series: &mut Series<T>, step: usize, value: T) {
    if series.last().is_some_and(|(_, v)| *v == value) {
        return;
    }
    if series.last().is_some_and(|(s, _)| *s == step) {
        series.pop();
        if series.last().is_some_and(|(_, v)| *v == value) {
            return;
        }
    }
    series.push((step, value));
}

/// A list that changes one member at a time (an accept queue): the changes, and the whole list
/// every [`CHECKPOINT`] changes, so that reading it at a step replays at most that many.
#[derive(Clone, Debug, Default, Serialize)]
pub struct ListLog {
    /// `(step, member, added)`, in order.
    pub ops: Vec<(usize, usize, bool)>,
    /// `(ops applied, list)`: the list after the first `ops applied` changes.
    pub checkpoints: Vec<(usize, Vec<usize>)>,
    #[serde(skip)]
    current: Vec<usize>,
}

/// Changes between two full copies of a [`ListLog`].
pub const CHECKPOINT: usize = 32;

impl ListLog {
    fn change(&mut self, step: usize, member: usize, added: bool) {
        if self.ops.len().is_multiple_of(CHECKPOINT) {
            self.checkpoints
                .push((self.ops.len(), self.current.clone()));
        }
        self.ops.push((step, member, added));
        if added {
            self.current.push(member);
        } else {
            self.current.retain(|m| *m != member);
        }
    }

    fn contains(&self, member: usize) -> bool {
        self.current.contains(&member)
    }

    /// The list after `step`, oldest member first.
    pub fn at(&self, step: usize) -> Vec<usize> {
        let n = self.ops.partition_point(|(s, _, _)| *s <= step);
        let c = self
            .checkpoints
            .partition_point(|(applied, _)| *applied <= n);
        let Some((applied, list)) = c.checked_sub(1).map(|c| &self.checkpoints[c]) else {
            return Vec::new();
        };
        let mut list = list.clone();
        for (_, member, added) in &self.ops[*applied..n] {
            if *added {
                list.push(*member);
            } else {
                list.retain(|m| m != member);
            }
        }
        list
    }
}

/// The value of `series` after `step` (`None` before its first change).
pub fn value_at<T>(series: &Series<T>, step: usize) -> Option<&T> {
    let i = series.partition_point(|(s, _)| *s <= step);
    i.checked_sub(1).map(|i| &series[i].1)
}

#[derive(Clone, Debug, Serialize)]
pub struct ListenerStates {
    pub host: String,
    pub addr: String,
    /// How many established connections the accept queue holds (backlog + 1).
    pub limit: u32,
    /// The accept queue, oldest first (connection indexes).
    pub queue: ListLog,
    pub half_open: ListLog,
    pub syns_dropped: Series<u32>,
}

#[derive(Clone, Debug, Serialize)]
pub struct ConnStates {
    /// The client's address (`ip:port`).
    pub addr: String,
    /// `client#3`, from the request table.
    pub client: String,
    /// The requests made on it (indexes into `run.requests`).
    pub requests: Vec<usize>,
    pub listener: Option<usize>,
    pub state: Series<ConnState>,
    /// What the client sees: `connect() returned`, `waiting for the response`, ...
    pub view: Series<String>,
}

#[derive(Clone, Debug, Serialize)]
pub struct WorkerStates {
    pub host: String,
    /// The worker's number, from 1.
    pub slot: usize,
    pub pid: Series<u32>,
    pub cores: Series<u32>,
    /// The request in its app (index into `run.requests`), if any.
    pub request: Series<Option<usize>>,
}

#[derive(Clone, Debug, Serialize)]
pub struct BoardStates {
    pub host: String,
    pub list: Series<Vec<&'static str>>,
}

/// Everything the page's cursor shows, as change lists over the steps.
#[derive(Clone, Debug, Serialize)]
pub struct States {
    /// The run's distinct event times (µs); step `k` is the state after every event at
    /// `times[k]`.
    pub times: Vec<u64>,
    /// Each event's step (in trace order).
    pub event_step: Vec<usize>,
    pub listeners: Vec<ListenerStates>,
    pub conns: Vec<ConnStates>,
    pub workers: Vec<WorkerStates>,
    pub boards: Vec<BoardStates>,
    /// Indexes of the log events (category `log`) in trace order.
    pub log: Vec<usize>,
    /// Each request's events (indexes into the trace).
    pub request_events: Vec<Vec<usize>>,
    /// Times a request starts or ends, sorted, distinct (Page Up/Down).
    pub boundaries: Vec<u64>,
}

/// What [`States::at`] reads back at one time.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Snapshot {
    /// Per listener: its queue (client addresses, oldest first), half-open ones, SYNs dropped.
    pub queues: Vec<(Vec<String>, Vec<String>, u32)>,
    /// Per master: its list.
    pub boards: Vec<Vec<&'static str>>,
    /// Per connection (client address): its state and its client's view.
    pub conns: BTreeMap<String, (ConnState, String)>,
}

impl States {
    /// The step whose time is the last at or before `t_us` (`None` before the first event).
    pub fn step_at(&self, t_us: u64) -> Option<usize> {
        self.times.partition_point(|t| *t <= t_us).checked_sub(1)
    }

    pub fn at(&self, t_us: u64) -> Snapshot {
        let step = self.step_at(t_us);
        let addrs = |v: Vec<usize>| v.iter().map(|c| self.conns[*c].addr.clone()).collect();
        let get = |s: &ListLog| step.map(|k| addrs(s.at(k)));
        Snapshot {
            queues: self
                .listeners
                .iter()
                .map(|l| {
                    (
                        get(&l.queue).unwrap_or_default(),
                        get(&l.half_open).unwrap_or_default(),
                        step.and_then(|k| value_at(&l.syns_dropped, k))
                            .copied()
                            .unwrap_or(0),
                    )
                })
                .collect(),
            boards: self
                .boards
                .iter()
                .map(|b| {
                    step.and_then(|k| value_at(&b.list, k))
                        .cloned()
                        .unwrap_or_default()
                })
                .collect(),
            conns: self
                .conns
                .iter()
                .filter_map(|c| {
                    let k = step?;
                    let state = *value_at(&c.state, k)?;
                    let view = value_at(&c.view, k).cloned().unwrap_or_default();
                    Some((c.addr.clone(), (state, view)))
                })
                .collect(),
        }
    }
}

/// `127.0.0.1:8000` in `... listens on 127.0.0.1:8000 with backlog 4: ... holds up to 5 ...`.
fn word_after<'a>(text: &'a str, marker: &str) -> Option<&'a str> {
    let rest = &text[text.find(marker)? + marker.len()..];
    let end = rest
        .find(|c: char| c.is_whitespace() || c == ')' || c == ',')
        .unwrap_or(rest.len());
    Some(rest[..end].trim_end_matches([',', ';', ':']))
}

/// Derives the states from the run's trace.
pub fn derive_states(run: &RunOutput) -> States {
    let events = &run.events;
    let mut times: Vec<u64> = Vec::new();
    let mut event_step = Vec::with_capacity(events.len());
    for e in events {
        if times.last() != Some(&e.at_us) {
            times.push(e.at_us);
        }
        event_step.push(times.len() - 1);
    }
    // Connections in the order they first appear; their requests from the request table.
    let mut conn_index: BTreeMap<&str, usize> = BTreeMap::new();
    let mut conns: Vec<ConnStates> = Vec::new();
    let mut client_of: BTreeMap<&str, (&str, Vec<usize>)> = BTreeMap::new();
    for (i, r) in run.requests.iter().enumerate() {
        if let Some(c) = r.conn.as_deref() {
            let entry = client_of
                .entry(c)
                .or_insert((r.client.as_str(), Vec::new()));
            entry.1.push(i);
        }
    }
    let mut request_events: Vec<Vec<usize>> = vec![Vec::new(); run.requests.len()];
    let mut listeners: Vec<ListenerStates> = Vec::new();
    let mut listener_index: BTreeMap<(String, String), usize> = BTreeMap::new();
    // Working state.
    let mut dropped: Vec<u32> = Vec::new();
    let mut outcomes_seen: Vec<usize> = Vec::new();
    let mut app_starts: Vec<usize> = Vec::new();
    let mut workers: Vec<WorkerStates> = Vec::new();
    let mut worker_of_pid: BTreeMap<(String, u32), usize> = BTreeMap::new();
    let mut boards: Vec<BoardStates> = Vec::new();
    let mut board_of_host: BTreeMap<String, usize> = BTreeMap::new();
    let mut log = Vec::new();
    for (i, e) in events.iter().enumerate() {
        let step = event_step[i];
        if e.category == Category::Log {
            log.push(i);
            if let Some(started) = WorkerStarted::parse(&e.text) {
                let key = (e.host.clone(), started.slot);
                let w = match workers.iter().position(|w| (w.host.clone(), w.slot) == key) {
                    Some(w) => w,
                    None => {
                        workers.push(WorkerStates {
                            host: e.host.clone(),
                            slot: started.slot,
                            pid: Vec::new(),
                            cores: Vec::new(),
                            request: Vec::new(),
                        });
                        workers.len() - 1
                    }
                };
                set(&mut workers[w].pid, step, started.pid);
                if let HowStarted::Spawned { cores } | HowStarted::OnlyWorker { cores } =
                    started.how
                {
                    set(&mut workers[w].cores, step, cores as u32);
                }
                set(&mut workers[w].request, step, None);
                worker_of_pid.insert((e.host.clone(), started.pid), w);
            }
            continue;
        }
        if let Some(board) = &e.board {
            let b = *board_of_host.entry(e.host.clone()).or_insert_with(|| {
                boards.push(BoardStates {
                    host: e.host.clone(),
                    list: Vec::new(),
                });
                boards.len() - 1
            });
            set(
                &mut boards[b].list,
                step,
                board.iter().map(|s| s.name()).collect(),
            );
            continue;
        }
        if e.category == Category::Net && e.kind == EventKind::Listen {
            if let Some(addr) =
                word_after(&e.text, "listens on ").or_else(|| word_after(&e.text, "("))
            {
                let limit = word_after(&e.text, "holds up to ").and_then(|n| n.parse().ok());
                let key = (e.host.clone(), addr.to_string());
                match listener_index.get(&key) {
                    Some(&l) => {
                        if let Some(limit) = limit {
                            listeners[l].limit = limit;
                        }
                    }
                    None => {
                        listener_index.insert(key, listeners.len());
                        listeners.push(ListenerStates {
                            host: e.host.clone(),
                            addr: addr.to_string(),
                            limit: limit.unwrap_or(0),
                            queue: ListLog::default(),
                            half_open: ListLog::default(),
                            syns_dropped: vec![(step, 0)],
                        });
                        dropped.push(0);
                    }
                }
            }
            continue;
        }
        let Some(addr) = e.conn.as_deref() else {
            continue;
        };
        let c = *conn_index.entry(addr).or_insert_with(|| {
            let (client, requests) = client_of.get(addr).cloned().unwrap_or_default();
            conns.push(ConnStates {
                addr: addr.to_string(),
                client: client.to_string(),
                requests,
                listener: None,
                state: Vec::new(),
                view: Vec::new(),
            });
            outcomes_seen.push(0);
            app_starts.push(0);
            conns.len() - 1
        });
        // The request this event belongs to: the one in progress on the connection.
        let current = conns[c]
            .requests
            .get(outcomes_seen[c].min(conns[c].requests.len().saturating_sub(1)))
            .copied();
        if let Some(r) = current {
            request_events[r].push(i);
        }
        // The listener: named in the text, or the only one on the host.
        if conns[c].listener.is_none() && e.category == Category::Net {
            let named = listeners
                .iter()
                .position(|l| l.host == e.host && e.text.contains(l.addr.as_str()));
            let only = {
                let mut on_host = listeners
                    .iter()
                    .enumerate()
                    .filter(|(_, l)| l.host == e.host);
                match (on_host.next(), on_host.next()) {
                    (Some((l, _)), None) => Some(l),
                    _ => None,
                }
            };
            if matches!(
                e.kind,
                EventKind::SynDropped
                    | EventKind::Synack
                    | EventKind::AckDropped
                    | EventKind::Established
                    | EventKind::Accepted
            ) {
                conns[c].listener = named.or(only);
            }
        }
        let listener = conns[c].listener;
        let state_now = conns[c].state.last().map(|(_, s)| *s);
        let mut new_state = None;
        let mut view: Option<String> = None;
        match (e.category, e.kind) {
            (Category::Net, EventKind::SynSent) => {
                new_state = Some(ConnState::SynSent);
                view = Some("connect() waiting: SYN sent".into());
            }
            (Category::Net, EventKind::SynRetry) => {
                view = Some("connect() waiting: SYN retransmitted".into());
            }
            (Category::Net, EventKind::SynDropped) => {
                if let Some(l) = listener {
                    dropped[l] += 1;
                    set(&mut listeners[l].syns_dropped, step, dropped[l]);
                }
            }
            (Category::Net, EventKind::Synack | EventKind::AckDropped) => {
                if matches!(
                    state_now,
                    None | Some(ConnState::SynSent | ConnState::HalfOpen)
                ) {
                    new_state = Some(ConnState::HalfOpen);
                }
            }
            (Category::Net, EventKind::Connected) => view = Some("connect() returned".into()),
            (Category::Net, EventKind::Established) => new_state = Some(ConnState::Queued),
            (Category::Net, EventKind::Accepted) => new_state = Some(ConnState::Reading),
            (Category::Net, EventKind::HalfOpenExpired) => new_state = Some(ConnState::Forgotten),
            (Category::Net, EventKind::Refused) => {
                new_state = Some(ConnState::Closed);
                view = Some("connect() failed: ECONNREFUSED".into());
            }
            (Category::Net, EventKind::Timeout) if state_now == Some(ConnState::SynSent) => {
                new_state = Some(ConnState::Closed);
                view = Some("connect() failed: ETIMEDOUT".into());
            }
            (Category::Net, EventKind::Reset) => {
                if matches!(
                    state_now,
                    Some(ConnState::SynSent | ConnState::HalfOpen | ConnState::Queued)
                ) {
                    new_state = Some(ConnState::Closed);
                }
            }
            (Category::App, EventKind::AppStart) => {
                new_state = Some(ConnState::InApp);
                let r = conns[c].requests.get(app_starts[c]).copied();
                app_starts[c] += 1;
                if let Some(w) = e.pid.and_then(|p| worker_of_pid.get(&(e.host.clone(), p))) {
                    set(&mut workers[*w].request, step, r);
                }
            }
            (Category::App, EventKind::AppEnd | EventKind::Raise | EventKind::Crash) => {
                new_state = Some(ConnState::Writing);
                if let Some(w) = e.pid.and_then(|p| worker_of_pid.get(&(e.host.clone(), p))) {
                    set(&mut workers[*w].request, step, None);
                }
            }
            (Category::Client, EventKind::Sent) => {
                view = Some("waiting for the response".into());
                if state_now == Some(ConnState::Writing) {
                    // The next request on a kept-alive connection.
                    new_state = Some(ConnState::Reading);
                }
            }
            (Category::Client, EventKind::Connected) => {
                view = Some("connect() returned".into());
            }
            (Category::Client, EventKind::Outcome) => {
                outcomes_seen[c] += 1;
                let last = outcomes_seen[c] >= conns[c].requests.len();
                let detail = current.map_or(String::new(), |r| run.requests[r].detail.clone());
                view = Some(format!("done: {detail}"));
                new_state = Some(if last {
                    ConnState::Closed
                } else {
                    ConnState::Reading
                });
            }
            _ => {}
        }
        if let Some(s) = new_state {
            if let Some(l) = listener {
                let l = &mut listeners[l];
                let (queued, half) = (s == ConnState::Queued, s == ConnState::HalfOpen);
                if l.queue.contains(c) != queued {
                    l.queue.change(step, c, queued);
                }
                if l.half_open.contains(c) != half {
                    l.half_open.change(step, c, half);
                }
            }
            set(&mut conns[c].state, step, s);
        }
        if let Some(v) = view {
            set(&mut conns[c].view, step, v);
        }
    }
    let mut boundaries: Vec<u64> = run
        .requests
        .iter()
        .flat_map(|r| [Some(r.start_us), r.done_us])
        .flatten()
        .collect();
    boundaries.sort_unstable();
    boundaries.dedup();
    States {
        times,
        event_step,
        listeners,
        conns,
        workers,
        boards,
        log,
        request_events,
        boundaries,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::scenario::parse;
    use crate::scenario::run::run_scenario;

    fn run_08() -> RunOutput {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../scenarios/08-accept-queue-full.toml"
        );
        let text = std::fs::read_to_string(path).expect("scenario 08");
        let scenario = parse(&text, "08-accept-queue-full").expect("parses");
        run_scenario(&scenario, scenario.seed).remove(0)
    }

    #[test]
    fn scenario_08_at_given_moments() {
        let run = run_08();
        let states = derive_states(&run);
        assert_eq!(states.listeners.len(), 1);
        assert_eq!(states.listeners[0].addr, "127.0.0.1:8000");
        assert_eq!(states.listeners[0].limit, 5);
        // 107 ms: two taken by the workers, five queued, the eighth SYN dropped.
        let s = states.at(107_000);
        let (queue, half, dropped) = &s.queues[0];
        assert_eq!(queue.len(), 5, "{queue:?}");
        assert_eq!(queue[0], "127.0.0.1:32772", "oldest first");
        assert!(half.is_empty());
        assert_eq!(*dropped, 1);
        assert_eq!(s.boards, [vec!["busy", "busy"]]);
        // 1.12 s: the retransmitted SYNs all got a SYN-ACK; two joined the queue, seven
        // stay half-open while their clients believe they are connected.
        let s = states.at(1_120_000);
        let (queue, half, dropped) = &s.queues[0];
        assert_eq!(queue.len(), 5);
        assert_eq!(half.len(), 7, "{half:?}");
        assert_eq!(*dropped, 9);
        assert_eq!(
            s.conns["127.0.0.1:32798"],
            (ConnState::HalfOpen, "waiting for the response".to_string())
        );
        assert_eq!(s.conns["127.0.0.1:32790"].0, ConnState::Queued);
        assert_eq!(s.conns["127.0.0.1:32768"].0, ConnState::Closed);
        assert_eq!(s.conns["127.0.0.1:32772"].0, ConnState::InApp);
        // 7.68 s: the last half-open connection got in and was accepted at once.
        let s = states.at(7_680_000);
        assert!(s.queues[0].0.is_empty() && s.queues[0].1.is_empty());
        assert_eq!(s.conns["127.0.0.1:32798"].0, ConnState::InApp);
        // Before anything: nothing.
        let s = states.at(0);
        assert_eq!(s.boards, [vec!["idle", "idle"]]);
        // The workers: pids from the log, the request in the app.
        let w2 = &states.workers[1];
        assert_eq!(
            value_at(&w2.pid, states.step_at(200_000).unwrap()),
            Some(&1003)
        );
        let r = value_at(&w2.request, states.step_at(200_000).unwrap())
            .copied()
            .flatten();
        assert_eq!(r.map(|r| run.requests[r].client.as_str()), Some("client#2"));
    }

    /// The queue's length after every `established` and `accept()` equals what the kernel
    /// printed in that event (`joins the accept queue of ... (4/5)`, `3/5 left in the queue`).
    #[test]
    fn the_queue_agrees_with_every_kernel_event() {
        let run = run_08();
        let states = derive_states(&run);
        let mut checked = 0;
        for (i, e) in run.events.iter().enumerate() {
            let printed = match e.kind {
                EventKind::Established => e.text.rsplit('(').next(),
                EventKind::Accepted => e.text.rsplit("; ").next(),
                _ => None,
            };
            let Some(n) = printed
                .and_then(|p| p.split('/').next())
                .and_then(|n| n.parse::<usize>().ok())
            else {
                continue;
            };
            // The state right after this event: replay the trace up to it.
            let upto = RunOutput {
                events: run.events[..=i].to_vec(),
                ..run.clone()
            };
            let partial = derive_states(&upto);
            let queue = partial.listeners[0].queue.at(partial.times.len() - 1);
            assert_eq!(queue.len(), n, "after event {i}: {}", e.text);
            // The whole run's lists, read at the step this event ends, say the same.
            let step = states.event_step[i];
            if states.event_step.get(i + 1) != Some(&step) {
                assert_eq!(
                    states.listeners[0].queue.at(step),
                    partial.listeners[0].queue.at(step)
                );
            }
            checked += 1;
        }
        assert!(checked >= 30, "{checked} events checked");
        // And the full derivation's last state is an empty queue.
        let last = states.times.len() - 1;
        assert!(states.listeners[0].queue.at(last).is_empty());
    }

    /// Read at any step, a list kept as changes and checkpoints equals the list kept whole.
    #[test]
    fn a_list_log_reads_back_across_its_checkpoints() {
        let (mut log, mut whole, mut copies) = (ListLog::default(), Vec::new(), Vec::new());
        for step in 0..200usize {
            let member = (step * 7) % 13;
            let added = !whole.contains(&member);
            log.change(step, member, added);
            if added {
                whole.push(member);
            } else {
                whole.retain(|m| *m != member);
            }
            copies.push(whole.clone());
        }
        assert!(log.checkpoints.len() > 5);
        for (step, copy) in copies.iter().enumerate() {
            assert_eq!(&log.at(step), copy, "at step {step}");
        }
    }

    #[test]
    fn derivation_is_deterministic() {
        let run = run_08();
        let a = serde_json::to_string(&derive_states(&run)).unwrap();
        let b = serde_json::to_string(&derive_states(&run)).unwrap();
        assert_eq!(a, b);
    }
}
